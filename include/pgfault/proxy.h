/* proxy.h - a protocol-aware fault proxy in front of a real PostgreSQL.
 *
 * The proxy accepts PostgreSQL clients (TCP and/or a unix-socket
 * directory), opens one upstream connection per client session, frames
 * both directions message by message with the codec in proto.h, and asks
 * the same fault engine as the fake server (fault.h) at the same protocol
 * phases: the same rule file gives the same kind of misbehaviour whether
 * the other end is the fake or a real database.
 *
 * Choices (documented in docs/proxy.md):
 *  - SSLRequest / GSSENCRequest are answered 'N' by the proxy; the upstream
 *    connection is plaintext. No certificates are needed on loopback.
 *  - Authentication passes through untouched (SCRAM works end to end); the
 *    proxy never sees a password it could use.
 *  - BackendKeyData passes through unchanged; a CancelRequest is forwarded
 *    on a new upstream connection with the same pid and key.
 *  - The upstream connection is opened when the client's StartupMessage
 *    arrives (SSL negotiation and CancelRequests need none); if it cannot
 *    be opened the client gets FATAL 57P03 naming the upstream and the
 *    reason, the proxy keeps running and the event is in the fault log.
 *
 * One event loop: pgf_proxy_start() on the caller's event_base, or
 * pgf_proxy_start_thread() on the proxy's own thread. pgf_proxy_stop() and
 * pgf_proxy_get_stats() may be called from any thread.
 */
#ifndef PGF_PROXY_H
#define PGF_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/server.h" /* pgf_server_conn_fn: one wire observer for both */

struct event_base;
struct pgf_fault_engine;
struct pgf_fault_ctx;
struct pgf_fault_action;

/* Called on the proxy's loop for every fault that fires, after the engine
 * decided and before the proxy carries the action out (the same shape as
 * pgf_server_fault_fn, so one observer serves both). */
typedef void (*pgf_proxy_fault_fn)(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                                   const struct pgf_fault_action *action);

typedef struct pgf_proxy_config {
    const char *const *listen; /* "HOST:PORT" ("[::1]:PORT"); port 0 = any free port */
    int nlisten;
    const char *unix_socket_dir; /* NULL = none; socket is DIR/.s.PGSQL.<port> */
    int unix_port;               /* 0 = the first TCP port bound (or 5432) */
    /* "HOST:PORT", "[V6]:PORT", a socket directory ("/run/postgresql",
     * port upstream_port) or a socket file ("/tmp/x/.s.PGSQL.5433"). */
    const char *upstream;
    int upstream_port;               /* for a socket directory; 0 = 5432 */
    uint32_t connect_timeout_ms;     /* upstream connect deadline; 0 = 5000 */
    struct pgf_fault_engine *faults; /* borrowed; NULL = pass-through */
    const char *fault_log;           /* append enriched fault records here (JSON lines) */
    bool quiet;                      /* do not print "listening ..." lines */
    pgf_proxy_fault_fn on_fault;     /* optional observer of fired faults */
    void *on_fault_arg;
    /* Optional observer of what each client does, in the fake server's
     * terms (server.h): open, startup, login (the upstream's
     * AuthenticationOk, or an error / auth-fail before it), transaction
     * status changes, a Query before ReadyForQuery, bytes after Terminate,
     * closed (the client side). Called on the proxy's loop; lets the
     * wire-side checks of target runs (docs/targets.md) judge a service
     * talking to a real database through the proxy. */
    pgf_server_conn_fn on_conn;
    void *on_conn_arg;
} pgf_proxy_config;

typedef struct pgf_proxy pgf_proxy;

/* Create (copies cfg; resolves the upstream address once). base NULL: the
 * proxy makes its own base for pgf_proxy_start_thread(). On error returns
 * a PGF_E* code and writes a message naming the problem into err. */
int pgf_proxy_new(const pgf_proxy_config *cfg, struct event_base *base, pgf_proxy **out, char *err,
                  size_t errlen) PGF_NODISCARD;
/* Bind and listen on every configured address (on the proxy's base). */
int pgf_proxy_start(pgf_proxy *p, char *err, size_t errlen) PGF_NODISCARD;
/* Bind, then run the proxy's own base on a new thread. */
int pgf_proxy_start_thread(pgf_proxy *p, char *err, size_t errlen) PGF_NODISCARD;
/* Stop listening and close every connection (both sides); joins the
 * proxy's own thread. Any thread; idempotent. */
void pgf_proxy_stop(pgf_proxy *p);
/* Stops first if needed. NULL is a no-op. */
void pgf_proxy_free(pgf_proxy *p);

/* Stop (false) or resume (true) accepting; open sessions are untouched.
 * Loop thread (the control API's /down and /up). */
int pgf_proxy_set_listening(pgf_proxy *p, bool up);
bool pgf_proxy_listening(const pgf_proxy *p);

/* "tcp 127.0.0.1:6432", "unix /tmp/x/.s.PGSQL.6432". Returns the count. */
int pgf_proxy_addresses(const pgf_proxy *p, char (*out)[256], int n);
/* The first TCP port bound, or 0. */
int pgf_proxy_port(const pgf_proxy *p);
/* The proxy's event_base (to serve the control API on the same loop;
 * attach before pgf_proxy_start_thread). */
struct event_base *pgf_proxy_base(pgf_proxy *p);

typedef struct pgf_proxy_stats {
    uint64_t accepted;          /* client connections accepted */
    uint64_t active;            /* client connections open now */
    uint64_t sessions;          /* StartupMessages forwarded upstream */
    uint64_t upstream_failures; /* upstream unreachable or timed out (client got 57P03) */
    uint64_t cancels;           /* CancelRequests forwarded */
    uint64_t faults_fired;
    uint64_t bytes_to_upstream;
    uint64_t bytes_to_client;
} pgf_proxy_stats;

/* Counters are atomics; any thread. */
void pgf_proxy_get_stats(const pgf_proxy *p, pgf_proxy_stats *out);
/* The same as a JSON object text (for the control API). Caller frees. */
char *pgf_proxy_stats_json(const pgf_proxy *p);

#endif
