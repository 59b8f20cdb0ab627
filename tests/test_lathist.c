/* test_lathist.c - the fixed-memory latency histogram (harness/driver/
 * lathist.h): its percentiles stay within 1/128 of the exact nearest-rank
 * value over nine decades, small values are exact, min and max are exact,
 * and merging two histograms equals one fed with both. */
#include <math.h>
#include <stdlib.h>

#include "lathist.h"
#include "pgf_test.h"
#include "pgfault/rng.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t exact(const uint64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p * (double)n);
    return sorted[(rank < 1 ? 1 : rank) - 1];
}

static void test_percentiles_within_bound(void)
{
    enum { N = 200000 };
    uint64_t *v = malloc(N * sizeof *v);
    CU_ASSERT_PTR_NOT_NULL_FATAL(v);
    pgf_rng g;
    pgf_rng_init(&g, 42, 1, 2);
    pgf_lathist h = {0};
    for (size_t i = 0; i < N; i++) {
        /* log-uniform over 1 ns .. ~1000 s */
        double e = (double)pgf_rng_below(&g, 1000000) / 1000000.0 * 12.0;
        v[i] = (uint64_t)pow(10.0, e);
        CU_ASSERT_EQUAL_FATAL(pgf_lathist_add(&h, v[i]), 0);
    }
    qsort(v, N, sizeof *v, cmp_u64);
    CU_ASSERT_EQUAL(h.count, N);
    CU_ASSERT_EQUAL(h.min, v[0]);
    CU_ASSERT_EQUAL(h.max, v[N - 1]);
    const double ps[] = {0.0, 0.01, 0.25, 0.5, 0.9, 0.99, 0.999, 1.0};
    for (size_t k = 0; k < sizeof ps / sizeof ps[0]; k++) {
        uint64_t want = exact(v, N, ps[k]), got = pgf_lathist_percentile(&h, ps[k]);
        CU_ASSERT_TRUE(got >= want);
        CU_ASSERT_TRUE((double)(got - want) <= (double)want / 128.0);
    }
    pgf_lathist_free(&h);
    free(v);
}

static void test_small_values_exact(void)
{
    pgf_lathist h = {0};
    for (uint64_t x = 1; x <= 100; x++)
        CU_ASSERT_EQUAL(pgf_lathist_add(&h, x), 0);
    CU_ASSERT_EQUAL(pgf_lathist_percentile(&h, 0.5), 50);
    CU_ASSERT_EQUAL(pgf_lathist_percentile(&h, 0.99), 99);
    CU_ASSERT_EQUAL(pgf_lathist_percentile(&h, 1.0), 100);
    pgf_lathist empty = {0};
    CU_ASSERT_EQUAL(pgf_lathist_percentile(&empty, 0.99), 0);
    pgf_lathist_free(&h);
}

static void test_merge_equals_one(void)
{
    pgf_lathist a = {0}, b = {0}, both = {0};
    for (uint64_t x = 1000; x < 500000; x += 997) {
        CU_ASSERT_EQUAL(pgf_lathist_add(x % 2 ? &a : &b, x * 3), 0);
        CU_ASSERT_EQUAL(pgf_lathist_add(&both, x * 3), 0);
    }
    CU_ASSERT_EQUAL(pgf_lathist_merge(&a, &b), 0);
    CU_ASSERT_EQUAL(a.count, both.count);
    CU_ASSERT_EQUAL(a.min, both.min);
    CU_ASSERT_EQUAL(a.max, both.max);
    for (size_t i = 0; i < PGF_LATHIST_BUCKETS; i++) {
        uint64_t lo, hi;
        CU_ASSERT_EQUAL_FATAL(pgf_lathist_bucket(&a, i, &lo, &hi),
                              pgf_lathist_bucket(&both, i, &lo, &hi));
        CU_ASSERT_TRUE_FATAL(lo <= hi);
    }
    pgf_lathist_free(&a);
    pgf_lathist_free(&b);
    pgf_lathist_free(&both);
}

static const pgf_test lathist_tests[] = {
    {"percentiles_within_bound", test_percentiles_within_bound},
    {"small_values_exact", test_small_values_exact},
    {"merge_equals_one", test_merge_equals_one},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_lathist[] = {
    {"lathist", NULL, NULL, lathist_tests},
    PGF_SUITES_END,
};
