/* wire_checks.h - checks of any client from the fake server's side of the
 * wire (wire_checks.c): connections left open beyond the idle floor,
 * abandoned mid-startup, idle in transaction, a Query before ReadyForQuery,
 * bytes after Terminate, and who logged in during a storm. Fed by the
 * server's (or the proxy's) on_conn observer; driver-private (target runs use it).
 */
#ifndef PGF_WIRE_CHECKS_H
#define PGF_WIRE_CHECKS_H

#include <stdint.h>

#include "pgfault/server.h"
#include "target_http.h"

typedef struct pgf__wire pgf__wire;

/* start_ns: the run's time origin (monotonic). NULL on ENOMEM. */
pgf__wire *pgf__wire_new(uint64_t start_ns);
void pgf__wire_free(pgf__wire *w);
/* The server's on_conn observer (arg = the pgf__wire); any thread. */
void pgf__wire_on_conn(void *arg, pgf_server_conn_note note, const pgf_server_conn_info *info);
/* Logins seen so far, and how many of them were refused (the server's
 * auth counters, for a run through the proxy, which has none). */
void pgf__wire_login_counts(pgf__wire *w, uint64_t *logins, uint64_t *refused);
/* Snapshot the connections open now: "the end" for the checks. Once. */
void pgf__wire_mark_end(pgf__wire *w);
/* Append the wire-side checks to r (the snapshot is taken now if not yet).
 * when: "after 2000 ms quiet" (goes into names and messages). */
void pgf__wire_checks(pgf__wire *w, pgf_target_result *r, int idle_floor, const char *when);
/* Witness lines for a login-storm check: logins from from_ns on, per client. */
void pgf__wire_storm_witness(pgf__wire *w, pgf_target_check *c, uint64_t from_ns);

#endif
