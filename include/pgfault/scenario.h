/* scenario.h - one run, described: server, faults, workload, racers,
 * expectations. Loaded from a YAML file (scenario.c, schema in
 * scenarios/README.md) or built in; every field has an explicit default
 * (pgf_scenario_defaults) that `pgfault run --explain` prints.
 */
#ifndef PGF_SCENARIO_H
#define PGF_SCENARIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/err.h"
#include "pgfault/fault.h"
#include "pgfault/health.h"
#include "pgfault/machine.h"
#include "pgfault/server.h"
#include "pgfault/target.h"

typedef enum pgf_run_mode {
    PGF_MODE_SIM,    /* one thread, one loop, virtual time: deterministic */
    PGF_MODE_STRESS, /* worker threads, real time: races for real */
} pgf_run_mode;

const char *pgf_run_mode_name(pgf_run_mode m);

#define PGF_SCENARIO_MAX_USERS   8
#define PGF_SCENARIO_MAX_DBS     8
#define PGF_SCENARIO_MAX_RACERS  16
#define PGF_SCENARIO_MAX_EXPECTS 16

/* A racer: when a session enters state `at`, call `op` on it (from another
 * thread in stress mode), with a probability, or at the nth occurrence. */
typedef struct pgf_racer {
    char name[64];
    pgf_sess_op op;     /* close, cancel, check (misuse), release (pool misuse) */
    pgf_sess_state at;  /* trigger state */
    char at_name[64];   /* its name; for an adapter target, any state of its spec */
    double probability; /* default 1 */
    uint64_t nth;       /* only the nth time the trigger happens in a run (1-based); 0 = every */
    unsigned times;     /* calls per firing (2 = "close twice"); default 1 */
    unsigned delay_ms;  /* wait before calling (virtual in sim mode); default 0 */
} pgf_racer;

typedef enum pgf_expect_kind {
    PGF_EXPECT_NO_VIOLATIONS, /* the checker finds nothing (always present) */
    PGF_EXPECT_REASON_SHARE,  /* share of checks with `reason` within [min, max] */
    PGF_EXPECT_P99_MS,        /* p99 health-check latency <= value (sim: virtual ms) */
    PGF_EXPECT_ALL_CLOSED,    /* every session ended CLOSED, server has no connection */
    PGF_EXPECT_MIN_CHECKS,    /* at least `value` health checks ran */
    PGF_EXPECT_VIOLATIONS,    /* the checker DOES find violations (broken variants) */
    PGF_EXPECT_MAX_LOGIN_RATE /* server logins per (virtual) second <= value */
} pgf_expect_kind;

typedef struct pgf_expect {
    pgf_expect_kind kind;
    pgf_health_reason reason;
    double min, max;
    double value;
    int line; /* where it was written (0 = default) */
} pgf_expect;

typedef struct pgf_scenario {
    char *name;
    char *description;
    char *source; /* "scenarios/incident.yaml" or "builtin" */
    uint64_t seed;
    pgf_run_mode mode;

    /* server */
    int nusers;
    pgf_server_user users[PGF_SCENARIO_MAX_USERS]; /* strings owned */
    int ndatabases;
    char *databases[PGF_SCENARIO_MAX_DBS];
    bool unix_socket; /* listen (and connect) on a temp unix-socket dir */
    int max_connections;
    unsigned server_threads; /* server.threads: the embedded server's event loops (0/1 = one) */
    char *external; /* run against this libpq conninfo/URL instead of the embedded server */
    /* server.proxy: run the fault proxy (proxy.h) in front of this real
     * server and connect through it with client.user/password/database */
    char *proxy_upstream; /* "HOST:PORT" or a socket directory; NULL = no proxy */
    int proxy_upstream_port;
    unsigned proxy_connect_timeout_ms;
    char *socket_subdir;         /* unix: put the socket in TMP/<subdir> ("cloudsql/p:r:i") */
    struct pgf_answers *answers; /* server.answers: canned answers (owned); NULL = none */

    /* what the health checks connect with */
    char *user;
    char *password;
    /* client.password as written when it named the environment
     * ("${APP_DB_PASSWORD}", expanded into password): what the YAML echo
     * writes, so reports never hold a real server's password and a replay
     * reads it from the environment again. NULL otherwise. */
    char *password_src;
    char *database;

    /* faults: the rules and their source text (echoed in reports) */
    pgf_fault_rules *rules;
    char *faults_json;
    /* mid-run rule changes: after `at_ms`, switch to rules2 (e.g. a
     * rotated password). NULL = none. */
    uint64_t rules2_at_ms;
    pgf_fault_rules *rules2;

    /* workload */
    unsigned sessions;   /* concurrent simulated health-check clients */
    unsigned threads;    /* stress: worker threads (0 = cores) */
    unsigned iterations; /* health checks per client (0 = until duration) */
    uint64_t duration_ms;
    char *query;
    unsigned think_ms;
    unsigned connect_timeout_ms;
    unsigned query_timeout_ms;
    bool pool;
    unsigned pool_size, pool_overflow, pool_timeout_ms;
    bool pre_ping;
    /* systematic exploration (driver.c): every client pauses between its
     * steps and, at seeded random moments, calls a random operation
     * (open, check, cancel, close, acquire, release, invalidate) in
     * whatever state the session is in, forbidden ones included */
    bool explore;

    int nracers;
    pgf_racer racers[PGF_SCENARIO_MAX_RACERS];
    unsigned bugs; /* session manager bug mask (PGF_BUG_*) */

    int nexpects;
    pgf_expect expects[PGF_SCENARIO_MAX_EXPECTS];

    /* what is tested: the built-in session manager, or a service's HTTP
     * health endpoint (target.h, docs/targets.md) */
    pgf_target target;
} pgf_scenario;

/* Fill every field with its default (documented in scenarios/README.md). */
void pgf_scenario_defaults(pgf_scenario *sc);
/* Free owned strings and rules; the struct can be reused after defaults. */
void pgf_scenario_clear(pgf_scenario *sc);

/* Parse a YAML scenario. Errors name file:line:col and what was expected;
 * returns PGF_EPARSE / PGF_EINVAL and leaves *sc cleared. */
int pgf_scenario_load_file(const char *path, pgf_scenario *sc, char *err,
                           size_t errlen) PGF_NODISCARD;
int pgf_scenario_load_string(const char *text, size_t len, const char *source, pgf_scenario *sc,
                             char *err, size_t errlen) PGF_NODISCARD;

/* The built-in library (every scenarios/NAME.yaml compiled in). */
size_t pgf_scenario_builtin_count(void);
const char *pgf_scenario_builtin_name(size_t i);
const char *pgf_scenario_builtin_text(size_t i);
/* Find by name ("incident") or file name ("incident.yaml"); -1 if none. */
int pgf_scenario_builtin_find(const char *name);

/* Write the resolved scenario, defaults included, as YAML (--explain,
 * shrink output). */
void pgf_scenario_write_yaml(const pgf_scenario *sc, FILE *f);

#endif
