/* overtime.h - what the report's two over-time charts are drawn from, in
 * fixed memory whatever the run's length:
 *   - throughput: every health check counted (healthy / failed) in time
 *     bins of 1 ms x 10^k; when a check ends past the last bin, the bins
 *     are folded ten into one and the width grows tenfold, so 4,096 bins
 *     cover 4 s, then 41 s, 6.8 min, 68 min, 11 h... and every count
 *     stays exact;
 *   - latency dots: a uniform sample (reservoir, seeded) of the checks,
 *     whatever point of the run they ended at.
 * Before this the run kept the first million checks' (time, latency)
 * pairs: 16 MB that grew for the first minutes of a big soak, and charts
 * that went blank after the millionth check.
 * Not thread-safe: one per worker, merged after join. */
#ifndef PGF_OVERTIME_H
#define PGF_OVERTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/rng.h"

#define PGF_OT_BINS    4096
#define PGF_OT_BIN0_NS 1000000ULL /* the first bin width, 1 ms */
#define PGF_OT_DOTS    8192       /* latency dots kept in a run */

typedef struct pgf_ot_dot {
    uint64_t t_ns, latency_ns;
    uint8_t reason; /* pgf_health_reason */
} pgf_ot_dot;

typedef struct pgf_overtime {
    uint64_t bin_ns;    /* width of a bin */
    uint32_t nbins;     /* bins in use (the last one with a check, + 1) */
    uint64_t *ok, *bad; /* PGF_OT_BINS each, allocated with the first check */
    pgf_ot_dot *dots;   /* the reservoir */
    size_t ndots, capdots;
    uint64_t seen; /* checks offered to the reservoir */
    pgf_rng rng;
    bool failed; /* out of memory: the charts are incomplete */
} pgf_overtime;

/* Keep at most cap dots; the reservoir's choices are drawn from (seed,
 * stream), so a replayed run keeps the same dots. */
void pgf_ot_init(pgf_overtime *ot, size_t cap, uint64_t seed, uint64_t stream);
/* One check that ended at t_ns (since the run's start) after latency_ns. */
void pgf_ot_add(pgf_overtime *ot, bool healthy, unsigned reason, uint64_t t_ns,
                uint64_t latency_ns);
/* Fold the n parts into dst (initialised, empty): the bins at the widest
 * part's width, and a dot sample in which each part has its share of its
 * checks (at most dst's cap). */
PGF_NODISCARD int pgf_ot_merge(pgf_overtime *dst, pgf_overtime *const *parts, int n);
void pgf_ot_free(pgf_overtime *ot);

#endif
