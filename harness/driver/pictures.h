/* pictures.h - fills a report scenario's pictures from a checked run: the
 * outcome counts and latency histograms, the state machine with edge counts,
 * the timeline (operations, states, faults, violations), latency samples over
 * time, fault windows, coverage. It judges nothing: run.c adds the checks. */
#ifndef PGF_DRIVER_PICTURES_H
#define PGF_DRIVER_PICTURES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "driver.h"
#include "pgfault/check.h"
#include "pgfault/err.h"
#include "pgfault/history.h"
#include "pgfault/report.h"

/* What the pictures need, gathered as the history streams by (run.c's
 * sink feeds every record, in history order), in memory that does not grow
 * with the run's length: the (operation x state) coverage and the edge
 * counts as running totals, and the records of a bounded sample of
 * sessions for the timeline (see pictures.c). */
typedef struct pgf__pics pgf__pics;
/* seed: the scenario's; the timeline's sample depends only on it and the
 * session ids, so a sim run draws the same sessions every time. */
pgf__pics *pgf__pics_new(uint64_t seed);
/* 0, or PGF_ENOMEM (the pictures are then incomplete: the report is marked). */
PGF_NODISCARD int pgf__pics_feed(pgf__pics *p, const pgf_rec *rec);
void pgf__pics_free(pgf__pics *p);
/* Test hooks: records held for the timeline, sessions sampled. */
size_t pgf__pics_held(const pgf__pics *p);
size_t pgf__pics_sampled(const pgf__pics *p);
uint64_t pgf__pics_sample_digest(const pgf__pics *p); /* of the sampled ids, any order */
/* The session's sampling key (smallest kept; a fault hit shifts it >> 4),
 * whether the session is in the sample (by the index), and whether the
 * index and the sample agree (0; -1 if not). */
uint64_t pgf__pics_key(const pgf__pics *p, int64_t session);
bool pgf__pics_sampled_has(const pgf__pics *p, int64_t session);
int pgf__pics_sample_check(const pgf__pics *p);

/* p holds what streamed (nothing with --no-check); ck may be NULL then.
 * Allocation failures mark the report (its writers then refuse). */
void pgf__fill_pictures(const pgf_scenario *sc, const pgf_run *r, const pgf_check_result *ck,
                        pgf__pics *p, pgf_report_scenario *rs);

#endif
