/* serve_history.h - `pgfault serve --history FILE`: the server's view of its
 * clients, written as a pgfault history (docs/history-format.md) so that
 * `pgfault check --server-history` can join a service's own history with
 * the faults (docs/introspection.md, "Faults linked to clients"). */
#ifndef PGF_SERVE_HISTORY_H
#define PGF_SERVE_HISTORY_H

#include <stdint.h>

#include "pgfault/server.h"

typedef struct pgf_serve_history pgf_serve_history;

/* Open FILE and write the meta line. NULL + message in err on failure. */
pgf_serve_history *pgf_serve_history_open(const char *path, uint64_t seed, char *err,
                                          unsigned errlen);
/* Hooks for pgf_server_config.on_fault / on_event (arg: the history). */
void pgf_serve_history_on_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                                const struct pgf_fault_action *a);
void pgf_serve_history_on_event(void *arg, const char *event, const struct pgf_fault_ctx *ctx,
                                const char *cause, const char *fault_rule);
/* Write the closing `server` record (no connection open) and close. NULL ok. */
void pgf_serve_history_close(pgf_serve_history *h);

#endif
