/* test_pictures.c - what the report's pictures keep while the history
 * streams by (harness/driver/pictures.h): over a long run of short
 * sessions the timeline's sample stays at its fixed size and the records
 * held for it stay bounded (garbage from sessions that left the sample is
 * compacted), and the sample depends only on the seed and the session ids. */
#include <stdbool.h>
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

/* The sample as a plain model computes it: a session enters on its first
 * record with its key while the sample has room or its key is below the
 * largest one there (which then leaves); a fault on a sampled session
 * shifts its key >> 4. Sessions run interleaved, 25 at a time, so records
 * of sessions that left the sample keep coming; after each 25 the session
 * with the largest key is hit by a fault. */
enum { MODEL_CAP = PGF_REPORT_HTML_MAX_SESSIONS + PGF_REPORT_HTML_MAX_FAILING };
typedef struct model {
    int64_t id[MODEL_CAP];
    uint64_t key[MODEL_CAP];
    bool faulted[MODEL_CAP];
    size_t n;
} model;

static long model_find(const model *m, int64_t s)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->id[i] == s)
            return (long)i;
    return -1;
}

static void model_feed(model *m, const pgf__pics *p, const pgf_rec *r)
{
    long i = model_find(m, r->session);
    if (i >= 0) {
        if (r->type == PGF_REC_FAULT && !m->faulted[i]) {
            m->faulted[i] = true;
            m->key[i] >>= 4;
        }
        return;
    }
    uint64_t key = pgf__pics_key(p, r->session);
    size_t at = m->n, big = 0;
    if (m->n == MODEL_CAP) {
        for (size_t j = 1; j < m->n; j++)
            if (m->key[j] > m->key[big])
                big = j;
        if (key >= m->key[big])
            return;
        at = big;
    } else {
        m->n++;
    }
    m->id[at] = r->session, m->key[at] = key, m->faulted[at] = false;
}

static void test_sample_is_bottom_k_interleaved(void)
{
    pgf__pics *p = pgf__pics_new(11);
    model *m = calloc(1, sizeof *m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    enum { SESSIONS = 20000, AT_ONCE = 25, STEPS = 6 };
    static const char *const steps[STEPS][2] = {
        {NULL, NULL}, {"NEW", "CONNECTING_SOCKET"}, {"CONNECTING_SOCKET", "READY"},
        {NULL, NULL}, {"READY", "CLOSING"},         {"CLOSING", "CLOSED"}};
    uint64_t seq = 1;
    bool agree = true;
    for (int64_t first = 1; first <= SESSIONS && agree; first += AT_ONCE) {
        for (int k = 0; k < STEPS; k++) {
            for (int64_t s = first; s < first + AT_ONCE; s++) {
                pgf_rec r = {0};
                r.seq = seq++;
                r.time_ns = r.seq * 1000;
                r.session = s;
                r.conn = PGF_REC_NONE;
                r.op = "open";
                r.op_id = s;
                r.type = k == 0 ? PGF_REC_INVOKE : k == 3 ? PGF_REC_FAULT : PGF_REC_TRANSITION;
                r.from = steps[k][0], r.to = steps[k][1];
                if (k == 3) {
                    if (s % 7 != 0)
                        continue; /* a fault on every 7th session, mid-connect */
                    r.op = NULL, r.op_id = PGF_REC_NONE;
                    r.phase = "startup", r.action = "delay", r.rule = "slow";
                }
                CU_ASSERT_EQUAL_FATAL(pgf__pics_feed(p, &r), 0);
                model_feed(m, p, &r);
            }
        }
        /* a fault on the session with the largest key, the next to leave:
         * the sample's threshold must fall with its key */
        size_t big = 0;
        for (size_t j = 1; j < m->n; j++)
            if (m->key[j] > m->key[big])
                big = j;
        if (m->n == MODEL_CAP && !m->faulted[big]) {
            pgf_rec f = {0};
            f.seq = seq++;
            f.time_ns = f.seq * 1000;
            f.type = PGF_REC_FAULT;
            f.session = m->id[big];
            f.conn = f.op_id = PGF_REC_NONE;
            f.phase = "query", f.action = "delay", f.rule = "late";
            CU_ASSERT_EQUAL_FATAL(pgf__pics_feed(p, &f), 0);
            model_feed(m, p, &f);
        }
        agree = pgf__pics_sample_check(p) == 0 && pgf__pics_sampled(p) == m->n;
        for (size_t i = 0; i < m->n && agree; i++)
            agree = pgf__pics_sampled_has(p, m->id[i]);
    }
    CU_ASSERT_TRUE(agree);
    CU_ASSERT_EQUAL(pgf__pics_sampled(p), MODEL_CAP);
    /* a session that left the sample is not found in it any more */
    size_t out = 0;
    for (int64_t s = 1; s <= SESSIONS; s++)
        if (model_find(m, s) < 0) {
            out++;
            CU_ASSERT_FALSE_FATAL(pgf__pics_sampled_has(p, s));
        }
    CU_ASSERT_EQUAL(out, SESSIONS - MODEL_CAP);
    free(m);
    pgf__pics_free(p);
}

static const pgf_test pictures_tests[] = {
    {"bounded_over_a_long_run", test_bounded_over_a_long_run},
    {"sample_depends_on_seed_only", test_sample_depends_on_seed_only},
    {"sample_is_bottom_k_interleaved", test_sample_is_bottom_k_interleaved},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_pictures[] = {
    {"pictures_stream", NULL, NULL, pictures_tests},
    PGF_SUITES_END,
};
