/* pictures.h - fills a report scenario's pictures from a checked run: the
 * outcome counts and latency histograms, the state machine with edge counts,
 * the timeline (operations, states, faults, violations), latency samples over
 * time, fault windows, coverage. It judges nothing: run.c adds the checks. */
#ifndef PGF_DRIVER_PICTURES_H
#define PGF_DRIVER_PICTURES_H

#include <stddef.h>

#include "driver.h"
#include "pgfault/check.h"
#include "pgfault/history.h"
#include "pgfault/report.h"

/* recs[n] is the merged history (may be empty with --no-check); ck may be
 * NULL then. Allocation failures mark the report (its writers then refuse). */
void pgf__fill_pictures(const pgf_scenario *sc, const pgf_run *r, const pgf_check_result *ck,
                        const pgf_rec *recs, size_t n, pgf_report_scenario *rs);

#endif
