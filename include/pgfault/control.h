/* control.h - the HTTP control API of a running fake server.
 *
 * Toxiproxy-shaped JSON over HTTP/1.1 (libevent's evhttp, jansson), served
 * on the server's own event_base so every request runs on the loop thread
 * that also runs pgf_fault_decide(); rule edits still go through
 * pgf_fault_engine_set_rules() (a new, fully validated set swapped in
 * whole: nothing is ever half-applied).
 *
 *   GET    /version            {"version":"0.1.0","seed":42}
 *   GET    /rules              [rule, ...]  (canonical JSON, file order)
 *   POST   /rules              add: one rule object or an array -> 201 + the rule(s)
 *   GET    /rules/NAME         the rule, or 404
 *   POST   /rules/NAME         update: merge the body's keys into the rule (null deletes one)
 *   DELETE /rules/NAME         204, or 404
 *   POST   /reset              remove all rules, clear counters and coverage -> 204
 *   GET    /stats {"seed":..,"rules":..,"faults_fired":..,"listening":..,"server":{..}} GET
 * /log[?since=SEQ]    {"events":[...],"dropped":N} GET    /coverage           see faultlog.h POST
 * /down, POST /up     stop / resume accepting connections (via hooks)
 *
 * Errors: {"error":"message"} with 400 (bad JSON, unknown field, invalid
 * value: the message names it), 404, 405, 409 (name taken), 501 (no hook).
 *
 * Binds to loopback only unless allow_nonloopback is set. Not here: the
 * listener itself (the server owns it and acts through the hooks).
 */
#ifndef PGF_FAULT_CONTROL_H
#define PGF_FAULT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"
#include "pgfault/fault.h"

struct event_base;

/* Filled by the server; all called on the event_base's thread. Any may be
 * NULL (then /down and /up answer 501 and /stats has no "server"). */
typedef struct pgf_fault_control_hooks {
    void *arg;
    /* up=false: stop accepting (close or disable the listener); true: resume.
     * Returns 0 or a PGF_E* code. */
    int (*set_listening)(void *arg, bool up);
    /* Is the listener accepting right now? */
    bool (*is_listening)(void *arg);
    /* The server's statistics as a JSON object text (e.g. from
     * pgf_server_get_stats, plus connections by phase); malloc'd, the
     * control API frees it. NULL = none. */
    char *(*stats_json)(void *arg);
} pgf_fault_control_hooks;

typedef struct pgf_fault_control pgf_fault_control;

/* Serve the API on `base` at addr "HOST:PORT" (port 0 = any free port).
 * A HOST that is not a loopback address (127.0.0.0/8, ::1, localhost) is
 * refused unless allow_nonloopback. The engine and hooks are borrowed and
 * must outlive the control. Returns the bound port (> 0) and sets *out, or
 * a PGF_E* code with a message in err. */
int pgf_fault_control_start(pgf_fault_control **out, struct event_base *base, pgf_fault_engine *e,
                            const char *addr, bool allow_nonloopback,
                            const pgf_fault_control_hooks *hooks, char *err,
                            size_t errlen) PGF_NODISCARD;
/* Stop serving and free (on the base's thread). NULL is a no-op. */
void pgf_fault_control_free(pgf_fault_control *c);

/* A connection that sends no complete request for this long is closed
 * (default below; silent clients must not use up the fds). */
#define PGF_FAULT_CONTROL_IDLE_TIMEOUT_MS 10000u
void pgf_fault_control_set_idle_timeout(pgf_fault_control *c, unsigned ms);

/* Split "HOST:PORT" / "[V6]:PORT" into host and port. 0 or PGF_EINVAL. */
int pgf_fault_split_hostport(const char *addr, char *host, size_t hostlen, int *port) PGF_NODISCARD;

#endif
