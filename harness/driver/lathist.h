/* lathist.h - a fixed-memory latency histogram (log-linear buckets, the
 * HdrHistogram layout): exact below 128 ns, then 128 sub-buckets per power
 * of two, so a percentile read from it (the bucket's upper bound, clamped
 * to the exact min and max) is within 1/128 (0.79%) of the true
 * nearest-rank value. ~59 kB whatever the number of samples: a run's
 * latencies no longer grow with its length. Not thread-safe: one per
 * worker, merged after join. */
#ifndef PGF_LATHIST_H
#define PGF_LATHIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"

#define PGF_LATHIST_SUB_BITS 7
#define PGF_LATHIST_SUB      (1u << PGF_LATHIST_SUB_BITS)
#define PGF_LATHIST_BUCKETS  ((64 - PGF_LATHIST_SUB_BITS + 1) * PGF_LATHIST_SUB)

typedef struct pgf_lathist {
    uint64_t count, min, max;
    uint64_t *b; /* PGF_LATHIST_BUCKETS counts, allocated with the first sample */
} pgf_lathist;

/* Add one sample; PGF_ENOMEM (the sample is lost) if the buckets cannot
 * be allocated. */
PGF_NODISCARD int pgf_lathist_add(pgf_lathist *h, uint64_t ns);
/* Add every sample of src to dst. */
PGF_NODISCARD int pgf_lathist_merge(pgf_lathist *dst, const pgf_lathist *src);
/* Nearest-rank percentile (p in [0, 1]); 0 when empty. */
uint64_t pgf_lathist_percentile(const pgf_lathist *h, double p);
/* Bucket i's bounds (inclusive) and count, for i < PGF_LATHIST_BUCKETS. */
uint64_t pgf_lathist_bucket(const pgf_lathist *h, size_t i, uint64_t *lo, uint64_t *hi);
void pgf_lathist_free(pgf_lathist *h); /* leaves it empty */

#endif
