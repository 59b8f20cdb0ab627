/* test_pictures.c - what the report's pictures keep while the history
 * streams by (harness/driver/pictures.h): over a long run of short
 * sessions the timeline's sample stays at its fixed size and the records
 * held for it stay bounded (garbage from sessions that left the sample is
 * compacted), and the sample depends only on the seed and the session ids. */
#include <stdio.h>
#include <stdlib.h>

#include "pgf_test.h"
#include "pictures.h"
#include "pgfault/report.h"

/* One short session: open (NEW -> CONNECTING_SOCKET -> ... -> READY), a
 * check, close; about 12 records. A fault on every 50th. */
static int feed_session(pgf__pics *p, int64_t s, uint64_t *seq, int64_t *op_id)
{
    static const char *const path[][2] = {{"NEW", "CONNECTING_SOCKET"},
                                          {"CONNECTING_SOCKET", "CONNECTING_STARTUP"},
                                          {"CONNECTING_STARTUP", "CONNECTING_AUTH"},
                                          {"CONNECTING_AUTH", "CONNECTING_PARAMS"},
                                          {"CONNECTING_PARAMS", "READY"}};
    pgf_rec r = {0};
    r.session = s;
    r.conn = PGF_REC_NONE;
    r.thread = 0;
#define PUT()                           \
    do {                                \
        r.seq = (*seq)++;               \
        r.time_ns = r.seq * 1000;       \
        int e_ = pgf__pics_feed(p, &r); \
        if (e_ != 0)                    \
            return e_;                  \
    } while (0)
    int64_t open_id = (*op_id)++;
    r.type = PGF_REC_INVOKE, r.op = "open", r.op_id = open_id;
    PUT();
    if (s % 50 == 0) {
        pgf_rec f = r;
        r.type = PGF_REC_FAULT, r.op = NULL, r.op_id = PGF_REC_NONE;
        r.phase = "startup", r.action = "delay", r.rule = "slow";
        PUT();
        r = f;
        r.phase = r.action = r.rule = NULL;
    }
    for (size_t i = 0; i < sizeof path / sizeof path[0]; i++) {
        r.type = PGF_REC_TRANSITION, r.from = path[i][0], r.to = path[i][1];
        PUT();
    }
    r.from = r.to = NULL;
    r.type = PGF_REC_OK;
    PUT();
    int64_t close_id = (*op_id)++;
    r.type = PGF_REC_INVOKE, r.op = "close", r.op_id = close_id;
    PUT();
    r.type = PGF_REC_TRANSITION, r.from = "READY", r.to = "CLOSING";
    PUT();
    r.from = "CLOSING", r.to = "CLOSED";
    PUT();
    r.from = r.to = NULL;
    r.type = PGF_REC_OK;
    PUT();
#undef PUT
    return 0;
}

static void test_bounded_over_a_long_run(void)
{
    pgf__pics *p = pgf__pics_new(31);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    uint64_t seq = 0;
    int64_t op_id = 1;
    size_t held_max = 0;
    for (int64_t s = 1; s <= 300000; s++) {
        CU_ASSERT_EQUAL_FATAL(feed_session(p, s, &seq, &op_id), 0);
        if (pgf__pics_held(p) > held_max)
            held_max = pgf__pics_held(p);
    }
    size_t cap = PGF_REPORT_HTML_MAX_SESSIONS + PGF_REPORT_HTML_MAX_FAILING;
    CU_ASSERT_EQUAL(pgf__pics_sampled(p), cap);
    /* 3.6M records went by; what is held stays within the compaction
     * bound: the live sample (13 records a session) + 10,000 records of
     * sessions that left it (20,687 without compaction) */
    CU_ASSERT_TRUE(held_max <= cap * 13 + 10000 + 13);
    pgf__pics_free(p);
}

/* The same seed and ids give the same sample; another seed another one. */
static void test_sample_depends_on_seed_only(void)
{
    pgf__pics *a = pgf__pics_new(7), *b = pgf__pics_new(7), *c = pgf__pics_new(8);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    uint64_t sa = 0, sb = 0, sc = 0;
    int64_t oa = 1, ob = 1, oc = 1;
    for (int64_t s = 1; s <= 5000; s++) {
        CU_ASSERT_EQUAL_FATAL(feed_session(a, s, &sa, &oa), 0);
        CU_ASSERT_EQUAL_FATAL(feed_session(b, s, &sb, &ob), 0);
        CU_ASSERT_EQUAL_FATAL(feed_session(c, s, &sc, &oc), 0);
    }
    CU_ASSERT_EQUAL(pgf__pics_held(a), pgf__pics_held(b));
    CU_ASSERT_NOT_EQUAL(pgf__pics_held(a) == pgf__pics_held(c) &&
                            pgf__pics_sampled(a) == pgf__pics_sampled(c) &&
                            pgf__pics_sample_digest(a) == pgf__pics_sample_digest(c),
                        1);
    CU_ASSERT_EQUAL(pgf__pics_sample_digest(a), pgf__pics_sample_digest(b));
    pgf__pics_free(a);
    pgf__pics_free(b);
    pgf__pics_free(c);
}

static const pgf_test pictures_tests[] = {
    {"bounded_over_a_long_run", test_bounded_over_a_long_run},
    {"sample_depends_on_seed_only", test_sample_depends_on_seed_only},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_pictures[] = {
    {"pictures_stream", NULL, NULL, pictures_tests},
    PGF_SUITES_END,
};
