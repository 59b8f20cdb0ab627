/* lathist.c - log-linear latency histogram (lathist.h). */
#include "lathist.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t index_of(uint64_t v)
{
    if (v < PGF_LATHIST_SUB)
        return (size_t)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= SUB_BITS */
    unsigned shift = e - PGF_LATHIST_SUB_BITS;
    uint64_t sub = v >> shift; /* in [SUB, 2 SUB) */
    return (size_t)(shift + 1) * PGF_LATHIST_SUB + (size_t)(sub - PGF_LATHIST_SUB);
}

static void bounds_of(size_t i, uint64_t *lo, uint64_t *hi)
{
    if (i < PGF_LATHIST_SUB) {
        *lo = *hi = i;
        return;
    }
    unsigned shift = (unsigned)(i / PGF_LATHIST_SUB) - 1;
    uint64_t sub = PGF_LATHIST_SUB + i % PGF_LATHIST_SUB;
    *lo = sub << shift;
    *hi = *lo + ((uint64_t)1 << shift) - 1;
}

static int ensure(pgf_lathist *h)
{
    if (h->b == NULL) {
        h->b = calloc(PGF_LATHIST_BUCKETS, sizeof *h->b);
        if (h->b == NULL)
            return PGF_ENOMEM;
    }
    return 0;
}

int pgf_lathist_add(pgf_lathist *h, uint64_t ns)
{
    if (ensure(h) != 0)
        return PGF_ENOMEM;
    h->b[index_of(ns)]++;
    if (h->count == 0 || ns < h->min)
        h->min = ns;
    if (h->count == 0 || ns > h->max)
        h->max = ns;
    h->count++;
    return 0;
}

int pgf_lathist_merge(pgf_lathist *dst, const pgf_lathist *src)
{
    if (src->count == 0)
        return 0;
    if (ensure(dst) != 0)
        return PGF_ENOMEM;
    for (size_t i = 0; i < PGF_LATHIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    if (dst->count == 0 || src->min < dst->min)
        dst->min = src->min;
    if (dst->count == 0 || src->max > dst->max)
        dst->max = src->max;
    dst->count += src->count;
    return 0;
}

uint64_t pgf_lathist_percentile(const pgf_lathist *h, double p)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)ceil(p * (double)h->count);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (size_t i = 0; i < PGF_LATHIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= rank) {
            uint64_t lo, hi;
            bounds_of(i, &lo, &hi);
            return hi < h->min ? h->min : hi > h->max ? h->max : hi;
        }
    }
    return h->max;
}

uint64_t pgf_lathist_bucket(const pgf_lathist *h, size_t i, uint64_t *lo, uint64_t *hi)
{
    bounds_of(i, lo, hi);
    return h->b != NULL && i < PGF_LATHIST_BUCKETS ? h->b[i] : 0;
}

void pgf_lathist_free(pgf_lathist *h)
{
    free(h->b);
    memset(h, 0, sizeof *h);
}
