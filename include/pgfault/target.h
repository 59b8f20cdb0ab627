/* target.h - what a scenario tests when it is not pgfault's own session
 * manager: the user's service, reached over its HTTP health endpoint
 * (`target: {service: ..., http: ...}` in a scenario, docs/targets.md).
 *
 * This header is the parsed `target:` section (filled by scenario.c via
 * pgf_target_parse) and the knobs of its checks. Running a target is
 * target_http.c (driver-private); starting and stopping the service
 * process is service.c. A scenario without `target:` has kind
 * PGF_TARGET_BUILTIN and runs exactly as before.
 */
#ifndef PGF_TARGET_H
#define PGF_TARGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/doc.h"

typedef enum pgf_target_kind {
    PGF_TARGET_BUILTIN, /* pgfault's own session manager (the default) */
    PGF_TARGET_HTTP,    /* a service's HTTP health endpoint */
    PGF_TARGET_EXEC,    /* an adapter process speaking docs/adapter-protocol.md */
} pgf_target_kind;

#define PGF_TARGET_MAX_ARGS   32
#define PGF_TARGET_MAX_ENV    32
#define PGF_TARGET_MAX_STATUS 8

typedef struct pgf_target {
    pgf_target_kind kind;
    /* target.service (http) or target.exec (adapter): the process pgfault
     * starts and stops */
    int argc;
    char *argv[PGF_TARGET_MAX_ARGS + 1]; /* NULL-terminated; owned */
    int nenv;
    char *env_key[PGF_TARGET_MAX_ENV]; /* owned */
    char *env_val[PGF_TARGET_MAX_ENV]; /* owned; values may contain ${PORT} etc. */
    char *dir;                         /* the scenario file's directory (cwd of the service) */
    unsigned ready_timeout_ms;         /* default 10000 */
    unsigned stop_grace_ms;            /* SIGTERM -> SIGKILL; default 3000 */
    char *spec_path; /* exec: the adapter's state machine (docs/spec-format.md); NULL = built-in */
    /* target.http */
    char *url; /* may contain ${PORT}; http:// only */
    int nhealthy, nunhealthy;
    int healthy_status[PGF_TARGET_MAX_STATUS];   /* default [200] */
    int unhealthy_status[PGF_TARGET_MAX_STATUS]; /* default [503] */
    unsigned timeout_ms;                         /* per request; default 2000 */
    unsigned quiet_ms; /* after the load: wait this long, then count the server's
                          open connections (default 2000) */
    /* checks (also settable under expect:) */
    uint64_t recovery_ms;      /* 0 = report only */
    int idle_floor;            /* server connections the service's pool may keep (default 0) */
    double storm_logins_per_s; /* after a 28P01: at most this many logins/s (default 20) */
    int line;                  /* where `target:` was written */
} pgf_target;

void pgf_target_init(pgf_target *t);
void pgf_target_clear(pgf_target *t);

/* Parse the `target:` map. scenario_path locates the service's working
 * directory. Errors name file:line:col (source) into err; returns false. */
bool pgf_target_parse(const pgf_doc *n, const char *source, const char *scenario_path,
                      pgf_target *t, char *err, size_t errlen);
/* Parse the target keys of `expect:` (recovery_ms, idle_floor,
 * storm_logins_per_s). Returns false with err set on a bad value. */
bool pgf_target_parse_expect(const pgf_doc *expect, const char *source, pgf_target *t, char *err,
                             size_t errlen);

/* Write the section as YAML (for --explain and the report's config). */
void pgf_target_write_yaml(const pgf_target *t, FILE *f);

#endif
