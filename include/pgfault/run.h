/* run.h - `pgfault run` and `pgfault replay` as a library: run scenarios
 * through the driver, check each history, evaluate expectations, shrink a
 * failure, and write history.jsonl, faults.jsonl, report.json, junit.xml
 * and report.html. Exit codes as in cli.h.
 */
#ifndef PGF_RUN_H
#define PGF_RUN_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/scenario.h"

typedef struct pgf_run_opts {
    const char *out_dir;               /* default "out" */
    bool quiet;                        /* nothing on stdout */
    bool shrink;                       /* on failure, search a smaller reproduction */
    bool no_check;                     /* record and check nothing (measures their overhead) */
    FILE *console;                     /* summary and progress (stdout unless quiet) */
    volatile sig_atomic_t *stop;       /* SIGINT/SIGTERM flag */
    const char *replay_base;           /* how to call us in replay commands ("pgfault") */
    const char *const *argv_echo;      /* the command line, for the report */
    const char *spec_path;             /* --spec: an adapter target's state machine (overrides
                                          target.spec) */
    bool fail_fast;                    /* stop after the first scenario that fails */
    unsigned shard_index, shard_count; /* --shard K/N (1-based K; 0 = not sharded): recorded
                                          in report.json's config for `pgfault merge` */
    bool history_zstd; /* write history.jsonl.zst (libzstd) instead of history.jsonl */
} pgf_run_opts;

/* Run n scenarios (borrowed) as one suite; writes the reports and returns
 * the exit code (0 pass, 1 violations or failed expectations, 3 harness). */
int pgf_run_suite(pgf_scenario *const *scs, int n, const pgf_run_opts *o);

/* The determinism digest of one sim run (hex SHA-256 of its history without
 * wall times), for the self-check test. 0 or a PGF_E* code. A run that is
 * not replayed exactly (stress mode, a service) has none: hex is "". */
int pgf_run_digest(const pgf_scenario *sc, char hex[65], char *err, size_t errlen) PGF_NODISCARD;

#endif
