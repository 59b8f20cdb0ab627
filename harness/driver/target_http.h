/* target_http.h - run a scenario whose `target:` is a service's HTTP
 * health endpoint (docs/targets.md): the fake server on its own thread,
 * the service started with the server's coordinates, concurrent GETs while
 * the fault rules fire, then the checks that judge the service from the
 * outside. Driver-private: run.c calls it instead of pgf_driver_run().
 */
#ifndef PGF_TARGET_HTTP_H
#define PGF_TARGET_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "driver.h"
#include "pgfault/fault.h"
#include "pgfault/server.h"
#include "pgfault/scenario.h"

/* One verdict about the service: a JUnit testcase. */
typedef struct pgf_target_check {
    char name[120]; /* fits run.c's first_failure */
    bool passed;
    char kind[32]; /* failure kind (JUnit type); "" when passed */
    char msg[512];
    char **witness; /* lines: responses, log lines, counts */
    size_t nwitness;
} pgf_target_check;

typedef struct pgf_target_result {
    pgf_target_check *checks;
    size_t n;
} pgf_target_result;

/* Append a check to r (kind "" when it passed, msg from fmt); NULL when
 * out of memory. Shared by the HTTP, adapter and wire checks. */
pgf_target_check *pgf__target_check_add(pgf_target_result *r, const char *name, bool passed,
                                        const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* Append a witness line to c (nothing when c is NULL or holds max lines
 * already), cut to linelen - 1 characters (linelen at most 1024). */
void pgf__target_witness(pgf_target_check *c, size_t max, size_t linelen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Run sc (sc->target.kind == PGF_TARGET_HTTP) writing the service's
 * output into out_dir (service.stdout, service.stderr). On success *run
 * (free with pgf_run_free) and *res (free with pgf_target_result_free)
 * are filled, even when checks fail; a PGF_E* code and err when the
 * harness itself could not run (server cannot bind, ...). */
int pgf_target_http_run(const pgf_scenario *sc, const pgf_driver_opts *o, const char *out_dir,
                        pgf_run **run, pgf_target_result **res, char *err,
                        size_t errlen) PGF_NODISCARD;
void pgf_target_result_free(pgf_target_result *r);

/* The same for an adapter target (`target: {exec: [...]}`, adapter.c,
 * docs/adapter-protocol.md): the adapter's stderr goes to
 * out_dir/adapter.stderr; its checks: ready, every operation completed,
 * the protocol spoken, the process alive. */
int pgf_target_exec_run(const pgf_scenario *sc, const pgf_driver_opts *o, const char *out_dir,
                        pgf_run **run, pgf_target_result **res, char *err,
                        size_t errlen) PGF_NODISCARD;

/* ---- shared with adapter.c: the fake server and the service's environment ---- */

/* The database of a target run, on its own thread: the fake server, or
 * with server.proxy the fault proxy in front of the real one (proxy.h).
 * Either listens on TCP 127.0.0.1 (a free port) and, with server.transport
 * unix, on a socket in TMP/<socket_subdir>. pghost/pgport: what the
 * service connects to. */
struct pgf_proxy;
typedef struct pgf__tsrv {
    pgf_server *server;      /* NULL with server.proxy */
    struct pgf_proxy *proxy; /* server.proxy only */
    char sockdir[256];
    char pghost[512];
    char pgport[16];
} pgf__tsrv;
struct pgf__wire;
struct event;
struct event_base;
/* wire (may be NULL): the wire-side observer (wire_checks.h); the fault
 * hook and the observer are the same for the fake and the proxy. */
int pgf__tsrv_start(pgf__tsrv *ts, const pgf_scenario *sc, pgf_fault_engine *engine,
                    pgf_server_fault_fn on_fault_fn, void *arg, struct pgf__wire *wire, char *err,
                    size_t errlen) PGF_NODISCARD;
/* Stop and free the server, remove the socket directories. */
void pgf__tsrv_stop(pgf__tsrv *ts, const pgf_scenario *sc);
/* Logins so far and how many were refused: the fake's own counters, or
 * through the proxy what wire saw (the upstream's AuthenticationOk or an
 * error before it). Any thread. */
void pgf__tsrv_logins(const pgf__tsrv *ts, struct pgf__wire *wire, uint64_t *logins,
                      uint64_t *refused);
/* At the end of a run: the fake's counters into res->server, or the
 * proxy's sessions and upstream failures into res->proxy_* (run.c fails a
 * run whose every upstream connection failed). */
void pgf__tsrv_final_stats(const pgf__tsrv *ts, pgf_run *res);
/* "HOST:PORT" the service is given, plus " (the proxy, upstream UP)" with
 * server.proxy: the console's "database at ..." line. */
void pgf__tsrv_describe(const pgf__tsrv *ts, const pgf_scenario *sc, char *out, size_t len);

/* The start of a target run: res->sc, its wall clock, recorder and fault
 * engine (seeded from sc, logging to o->faults_log_path), a new event
 * base and wire observer; *t0 = the run's monotonic start. On error
 * (PGF_ENOMEM, the fault log's code) err says why; the caller frees. */
int pgf__target_run_open(pgf_run *res, const pgf_scenario *sc, const pgf_driver_opts *o,
                         uint64_t *t0, struct event_base **base, struct pgf__wire **wire, char *err,
                         size_t errlen) PGF_NODISCARD;
/* The timer that swaps in sc->rules2 at sc->rules2_at_ms (NULL if out of
 * memory). */
struct event *pgf__target_rotate_new(struct event_base *base, pgf_run *res);

/* A free loopback TCP port, or -1. */
int pgf__free_port(void);

/* An environment (NULL-terminated "K=V" strings, owned). */
typedef struct pgf__envset {
    char **v;
    size_t n, cap;
} pgf__envset;
/* pgfault's environment, minus PG* settings that could redirect the
 * service, plus PORT, POSTGRES_*, DATABASE_URL and PG* for ts, then the
 * scenario's target env (with ${NAME} expanded). */
int pgf__target_env(pgf__envset *e, const pgf_scenario *sc, const pgf__tsrv *ts, const char *port,
                    char *err, size_t errlen) PGF_NODISCARD;
void pgf__envset_free(pgf__envset *e);
/* ${NAME} from e, then from pgfault's environment ("" when unset). */
void pgf__target_expand(const pgf__envset *e, const char *in, char *out, size_t len);

#endif
