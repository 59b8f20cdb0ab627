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

/* Run sc (sc->target.kind == PGF_TARGET_HTTP) writing the service's
 * output into out_dir (service.stdout, service.stderr). On success *run
 * (free with pgf_run_free) and *res (free with pgf_target_result_free)
 * are filled, even when checks fail; a PGF_E* code and err when the
 * harness itself could not run (server cannot bind, ...). */
int pgf_target_http_run(const pgf_scenario *sc, const pgf_driver_opts *o, const char *out_dir,
                        pgf_run **run, pgf_target_result **res, char *err,
                        size_t errlen) PGF_NODISCARD;
void pgf_target_result_free(pgf_target_result *r);

#endif
