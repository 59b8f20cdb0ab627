/* test_overtime.c - the over-time charts' data (harness/driver/overtime.h):
 * throughput bins stay exact while they fold and whatever the run's
 * length; the latency dots are a fixed-size sample spread over the whole
 * run (the first-million arrays they replace kept only its start); merging
 * workers keeps every count and each worker's share of dots; a seed
 * replays the same dots. */
#include <stdlib.h>
#include <string.h>

#include "overtime.h"
#include "pgf_test.h"

/* A check every step_ns for `secs` seconds, latencies from lat0; every
 * 7th fails. */
static uint64_t feed_lat(pgf_overtime *ot, double secs, uint64_t step_ns, uint64_t lat0)
{
    uint64_t n = 0;
    for (uint64_t t = 0; t < (uint64_t)(secs * 1e9); t += step_ns, n++)
        pgf_ot_add(ot, n % 7 != 0, n % 7 != 0 ? 0 : 3, t, lat0 + n % 5000);
    return n;
}

static uint64_t feed(pgf_overtime *ot, double secs, uint64_t step_ns)
{
    return feed_lat(ot, secs, step_ns, 1000);
}

static void sum_bins(const pgf_overtime *ot, uint64_t *ok, uint64_t *bad)
{
    *ok = *bad = 0;
    for (uint32_t i = 0; i < ot->nbins; i++) {
        *ok += ot->ok[i];
        *bad += ot->bad[i];
    }
}

static void bins_fold_and_stay_exact(void)
{
    pgf_overtime ot;
    pgf_ot_init(&ot, 1000, 1, 1);
    /* 50 s at one check per 250 us: 4,096 1-ms bins cover 4 s, 10-ms bins
     * 41 s, so the bins folded twice */
    uint64_t n = feed(&ot, 50.0, 250000);
    CU_ASSERT_EQUAL(ot.bin_ns, 100 * PGF_OT_BIN0_NS);
    CU_ASSERT_TRUE(ot.nbins <= PGF_OT_BINS);
    CU_ASSERT_EQUAL(ot.nbins, 500u);
    uint64_t ok, bad;
    sum_bins(&ot, &ok, &bad);
    CU_ASSERT_EQUAL(ok + bad, n);
    CU_ASSERT_EQUAL(bad, (n + 6) / 7);
    /* every 100 ms bin holds exactly 400 checks */
    for (uint32_t i = 0; i < ot.nbins; i++)
        CU_ASSERT_EQUAL(ot.ok[i] + ot.bad[i], 400u);
    CU_ASSERT_EQUAL(ot.seen, n);
    CU_ASSERT_EQUAL(ot.ndots, 1000u);
    pgf_ot_free(&ot);
}

/* The dots cover the whole run: a quarter of them in each quarter, within
 * sampling noise (1,000 dots: a quarter's count is ~250 +- 14). */
static void dots_are_uniform_over_the_run(void)
{
    pgf_overtime ot;
    pgf_ot_init(&ot, 1000, 7, 1);
    feed(&ot, 20.0, 250000); /* 80,000 checks */
    CU_ASSERT_EQUAL_FATAL(ot.ndots, 1000u);
    unsigned q[4] = {0};
    for (size_t i = 0; i < ot.ndots; i++)
        q[ot.dots[i].t_ns * 4 / 20000000000ULL]++;
    for (int k = 0; k < 4; k++)
        CU_ASSERT_TRUE(q[k] > 180 && q[k] < 320);
    pgf_ot_free(&ot);
}

static void same_seed_same_dots(void)
{
    pgf_overtime a, b, c;
    pgf_ot_init(&a, 300, 11, 2);
    pgf_ot_init(&b, 300, 11, 2);
    pgf_ot_init(&c, 300, 12, 2);
    feed(&a, 3.0, 100000);
    feed(&b, 3.0, 100000);
    feed(&c, 3.0, 100000);
    size_t same_ab = 0, same_ac = 0;
    for (size_t i = 0; i < 300; i++) {
        same_ab += a.dots[i].t_ns == b.dots[i].t_ns && a.dots[i].latency_ns == b.dots[i].latency_ns;
        same_ac += a.dots[i].t_ns == c.dots[i].t_ns;
    }
    CU_ASSERT_EQUAL(same_ab, 300u);
    CU_ASSERT_TRUE(same_ac < 30);
    pgf_ot_free(&a);
    pgf_ot_free(&b);
    pgf_ot_free(&c);
}

/* Two workers on different bin widths: the merge has every check, in the
 * widest bins, and each worker's share of the dots is its share of the
 * checks. */
static void merge_keeps_counts_and_shares(void)
{
    pgf_overtime w1, w2, all;
    pgf_ot_init(&w1, 500, 3, 1);
    pgf_ot_init(&w2, 500, 3, 2);
    uint64_t n1 = feed_lat(&w1, 6.0, 250000, 1000);         /* 24,000; 10-ms bins */
    uint64_t n2 = feed_lat(&w2, 2.0, 62500, 1000000000ULL); /* 32,000; 1-ms bins */
    CU_ASSERT_EQUAL(n1, 24000u);
    CU_ASSERT_EQUAL(n2, 32000u);
    CU_ASSERT_EQUAL(w1.bin_ns, 10 * PGF_OT_BIN0_NS);
    CU_ASSERT_EQUAL(w2.bin_ns, PGF_OT_BIN0_NS);
    pgf_ot_init(&all, 500, 3, 0);
    pgf_overtime *parts[] = {&w1, &w2};
    CU_ASSERT_EQUAL_FATAL(pgf_ot_merge(&all, parts, 2), 0);
    CU_ASSERT_EQUAL(all.bin_ns, 10 * PGF_OT_BIN0_NS);
    uint64_t ok, bad, ok1, bad1, ok2, bad2;
    sum_bins(&all, &ok, &bad);
    sum_bins(&w1, &ok1, &bad1);
    sum_bins(&w2, &ok2, &bad2);
    CU_ASSERT_EQUAL(ok, ok1 + ok2);
    CU_ASSERT_EQUAL(bad, bad1 + bad2);
    CU_ASSERT_EQUAL(all.seen, n1 + n2);
    /* the merge's first 10-ms bin: w1's first bin and w2's first ten */
    uint64_t first = w1.ok[0] + w1.bad[0];
    for (int i = 0; i < 10; i++)
        first += w2.ok[i] + w2.bad[i];
    CU_ASSERT_EQUAL(all.ok[0] + all.bad[0], first);
    CU_ASSERT_EQUAL(first, 40u + 160u);
    /* 500 dots: 24/56 of them from w1 (214), the rest from w2 */
    CU_ASSERT_EQUAL(all.ndots, 500u);
    size_t from2 = 0;
    for (size_t i = 0; i < all.ndots; i++)
        from2 += all.dots[i].latency_ns >= 1000000000ULL;
    CU_ASSERT_EQUAL(from2, 286u);
    pgf_ot_free(&w1);
    pgf_ot_free(&w2);
    pgf_ot_free(&all);
}

static const pgf_test overtime_tests[] = {
    {"bins_fold_and_stay_exact", bins_fold_and_stay_exact},
    {"dots_are_uniform_over_the_run", dots_are_uniform_over_the_run},
    {"same_seed_same_dots", same_seed_same_dots},
    {"merge_keeps_counts_and_shares", merge_keeps_counts_and_shares},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_overtime[] = {
    {"overtime", NULL, NULL, overtime_tests},
    PGF_SUITES_END,
};
