/* test_recorder.c - the streaming recorder (harness/driver/recorder.h):
 * records from many threads reach the sink strictly in seq order while the
 * producers run; a gap is waited out within the reorder window and is a
 * harness error (naming the seq and thread) past it; a record older than
 * one already emitted is an error, never a silent misorder; drained chunks
 * are reused, so a long feed holds a fixed number of them; the
 * whole-array form (pgf_recorder_merge) still gives the sorted history. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/clock.h"
#include "pgfault/err.h"
#include "pgfault/health.h"
#include "recorder.h"

typedef struct seen {
    uint64_t n, last, first;
    bool in_order;
    size_t long_cause; /* records whose cause was the long string, intact */
} seen;

static const char *long_text(void)
{
    static char buf[40000];
    if (buf[0] == '\0') {
        memset(buf, 'x', sizeof buf - 1);
        buf[sizeof buf - 1] = '\0';
    }
    return buf;
}

static int sink_check(void *arg, const pgf_rec *rec)
{
    seen *s = arg;
    if (s->n == 0)
        s->first = rec->seq;
    else if (rec->seq != s->last + 1)
        s->in_order = false;
    s->last = rec->seq;
    s->n++;
    if (rec->cause != NULL && strcmp(rec->cause, long_text()) == 0)
        s->long_cause++;
    return 0;
}

static void put(pgf_recorder *r, int64_t session, const char *cause)
{
    pgf_rec rec;
    pgf_rec_init(&rec, PGF_REC_INFO);
    rec.session = session;
    rec.cause = cause;
    pgf_recorder_put(r, &rec);
}

/* ---- in order across threads ---- */

#define NTHREADS   4
#define PER_THREAD 50000

typedef struct producer {
    pgf_recorder *r;
    int id;
    atomic_int *left;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < PER_THREAD; i++)
        put(p->r, p->id, i % 97 == 0 ? "a cause that needs copying" : NULL);
    atomic_fetch_sub(p->left, 1);
    return NULL;
}

static void test_threads_in_order(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    atomic_int left = NTHREADS;
    pthread_t th[NTHREADS];
    producer p[NTHREADS];
    for (int i = 0; i < NTHREADS; i++) {
        p[i] = (producer){r, i, &left};
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, produce, &p[i]), 0);
    }
    /* drain while they produce: the consumer side of a stress run */
    while (atomic_load(&left) > 0)
        CU_ASSERT_EQUAL_FATAL(pgf_recorder_drain(r, false), 0);
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(th[i], NULL);
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0);
    CU_ASSERT_PTR_NULL(pgf_recorder_error(r));
    CU_ASSERT_TRUE(s.in_order);
    CU_ASSERT_EQUAL(s.first, 1);
    CU_ASSERT_EQUAL(s.n, (uint64_t)NTHREADS * PER_THREAD);
    pgf_recorder_stats st;
    pgf_recorder_get_stats(r, &st);
    CU_ASSERT_EQUAL(st.emitted, (uint64_t)NTHREADS * PER_THREAD);
    CU_ASSERT_EQUAL(st.recorded, st.emitted);
    CU_ASSERT_EQUAL(st.threads, NTHREADS);
    CU_ASSERT_FALSE(st.failed);
    pgf_recorder_free(r);
}

/* ---- the reorder window ---- */

static void test_gap_waits_then_skips_at_the_end(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_recorder_set_window(r, 100);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    put(r, 1, NULL);                    /* seq 1 */
    put(r, 1, NULL);                    /* seq 2 */
    CU_ASSERT_EQUAL(pgf_seq_next(), 3); /* taken, never recorded: a gap */
    for (int i = 0; i < 100; i++)       /* seq 4..103: exactly the window */
        put(r, 1, NULL);
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, false), 0);
    CU_ASSERT_EQUAL(s.n, 2); /* stops before the gap */
    CU_ASSERT_EQUAL(s.last, 2);
    /* the producers are done: the gap is a seq nobody will record */
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0);
    CU_ASSERT_EQUAL(s.n, 102);
    CU_ASSERT_EQUAL(s.last, 103);
    pgf_recorder_free(r);
}

static void test_gap_past_the_window_fails(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_recorder_set_window(r, 100);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    put(r, 1, NULL);      /* seq 1 */
    (void)pgf_seq_next(); /* seq 2 never comes */
    for (int i = 0; i < 101; i++)
        put(r, 1, NULL);
    int e = pgf_recorder_drain(r, false);
    CU_ASSERT_EQUAL(e, PGF_EINTERNAL);
    const char *msg = pgf_recorder_error(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "seq 2 never arrived"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "seq 3 from thread 0"));
    CU_ASSERT_EQUAL(s.n, 1);
    /* sticky: nothing more is emitted, even at the end */
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), PGF_EINTERNAL);
    CU_ASSERT_EQUAL(s.n, 1);
    pgf_recorder_free(r);
}

static void test_late_record_fails(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    uint64_t old = pgf_seq_next();                   /* seq 1, taken by a session ... */
    put(r, 1, NULL);                                 /* seq 2 */
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0); /* the end: seq 1 skipped */
    CU_ASSERT_EQUAL(s.n, 1);
    /* ... which records it only now, after seq 2 was written */
    pgf_session_event ev = {0};
    ev.kind = PGF_SEV_INVOKE;
    ev.seq = old;
    ev.session_id = 7;
    ev.op = PGF_OP_open;
    ev.cause = "";
    pgf_recorder_session_event(&ev, r);
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), PGF_EINTERNAL);
    const char *msg = pgf_recorder_error(r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(msg);
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "seq 1 from thread 0 arrived after seq 2"));
    CU_ASSERT_EQUAL(s.n, 1);
    pgf_recorder_free(r);
}

/* ---- bounded memory ---- */

static void test_long_feed_reuses_chunks(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    size_t after_warmup = 0;
    for (int i = 0; i < 300000; i++) {
        /* every 1000th record carries a string bigger than a chunk's room */
        put(r, i, i % 1000 == 0 ? long_text() : "short");
        if (i % 500 == 499)
            CU_ASSERT_EQUAL_FATAL(pgf_recorder_drain(r, false), 0);
        if (i == 100000) {
            pgf_recorder_stats st;
            pgf_recorder_get_stats(r, &st);
            after_warmup = st.chunks_allocated;
        }
    }
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0);
    pgf_recorder_stats st;
    pgf_recorder_get_stats(r, &st);
    CU_ASSERT_EQUAL(st.emitted, 300000);
    CU_ASSERT_TRUE(s.in_order);
    CU_ASSERT_EQUAL(s.long_cause, 300);
    /* 300,000 records would need ~1,200 chunks kept (whole records,
     * pgf_recorder_put: 256 a chunk); drained ones are reused, so the
     * count stays where it was after warm-up: the 500 records between
     * two drains fill at most 3 chunks, and one more is being filled */
    CU_ASSERT_TRUE(after_warmup >= 1);
    CU_ASSERT_TRUE(st.chunks_allocated <= 4);
    CU_ASSERT_EQUAL(st.chunks_allocated, after_warmup);
    CU_ASSERT_TRUE(st.chunks_pooled + 1 >= st.chunks_allocated);
    pgf_recorder_free(r);
}

/* ---- the whole-array form ---- */

static void *produce_few(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < 3000; i++)
        put(p->r, p->id, "copied");
    return NULL;
}

static void test_merge_sorted(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pthread_t th[2];
    producer p[2] = {{r, 0, NULL}, {r, 1, NULL}};
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&th[i], NULL, produce_few, &p[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    size_t n = 0;
    const pgf_rec *recs = pgf_recorder_merge(r, &n);
    CU_ASSERT_EQUAL_FATAL(n, 6000);
    CU_ASSERT_PTR_NOT_NULL_FATAL(recs);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(recs[i].seq, i + 1);
        CU_ASSERT_STRING_EQUAL(recs[i].cause, "copied");
    }
    size_t n2 = 0;
    CU_ASSERT_PTR_EQUAL(pgf_recorder_merge(r, &n2), recs); /* idempotent */
    CU_ASSERT_EQUAL(n2, n);
    pgf_recorder_free(r);
}

/* ---- compact and whole records ---- */

static pgf_session_event sev(pgf_session_event_kind kind, pgf_sess_op op, uint64_t op_id,
                             pgf_sess_state from, pgf_sess_state to, const char *cause)
{
    pgf_session_event ev = {0};
    ev.kind = kind;
    ev.seq = pgf_seq_next();
    ev.time_ns = pgf_now_ns();
    ev.session_id = 9;
    ev.op = op;
    ev.op_id = op_id;
    ev.from = from;
    ev.to = to;
    ev.cause = cause;
    return ev;
}

/* The session manager's events travel as one-line records and whole
 * records as themselves; the sink sees the same pgf_rec either way, and a
 * compact record never shows a field an earlier whole one had. */
static void test_compact_records_come_out_whole(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    char cause[] = "socket connected";
    pgf_session_event ev = sev(PGF_SEV_INVOKE, PGF_OP_open, 4, PGF_SESS_NEW, PGF_SESS_NEW, "");
    pgf_recorder_session_event(&ev, r);
    ev = sev(PGF_SEV_TRANSITION, PGF_OP_open, 4, PGF_SESS_CONNECTING_SOCKET,
             PGF_SESS_CONNECTING_STARTUP, cause);
    pgf_recorder_session_event(&ev, r);
    memset(cause, '#', sizeof cause - 1); /* the recorder kept its own copy */
    pgf_health fail;
    pgf_health_classify(NULL, "password authentication failed", "auth", &fail);
    ev = sev(PGF_SEV_FAIL, PGF_OP_open, 4, PGF_SESS_FAILED, PGF_SESS_FAILED, "auth failed");
    ev.err = PGF_EAUTH;
    ev.health = &fail;
    pgf_recorder_session_event(&ev, r); /* a whole record, then its health verdict */
    pgf_health ok;
    pgf_health_set_ok(&ok);
    ev = sev(PGF_SEV_OK, PGF_OP_check, 5, PGF_SESS_READY, PGF_SESS_READY, "");
    ev.health = &ok;
    pgf_recorder_session_event(&ev, r); /* compact, then "health": "ok" */
    size_t n = 0;
    const pgf_rec *v = pgf_recorder_merge(r, &n);
    CU_ASSERT_EQUAL_FATAL(n, 6);
    for (size_t i = 0; i < n; i++) {
        CU_ASSERT_EQUAL(v[i].seq, i + 1);
        CU_ASSERT_EQUAL(v[i].session, 9);
        CU_ASSERT_EQUAL(v[i].thread, 0);
        CU_ASSERT_EQUAL(v[i].conn, PGF_REC_NONE);
        CU_ASSERT_EQUAL(v[i].wall_us, PGF_REC_NONE);
        CU_ASSERT_PTR_NULL(v[i].rule);
        CU_ASSERT_PTR_NULL(v[i].action);
        if (i > 0)
            CU_ASSERT_TRUE(v[i].time_ns >= v[i - 1].time_ns);
    }
    CU_ASSERT_EQUAL(v[0].type, PGF_REC_INVOKE);
    CU_ASSERT_STRING_EQUAL(v[0].op, "open");
    CU_ASSERT_EQUAL(v[0].op_id, 4);
    CU_ASSERT_PTR_NULL(v[0].from);
    CU_ASSERT_PTR_NULL(v[0].cause);
    CU_ASSERT_EQUAL(v[1].type, PGF_REC_TRANSITION);
    CU_ASSERT_STRING_EQUAL(v[1].from, "CONNECTING_SOCKET");
    CU_ASSERT_STRING_EQUAL(v[1].to, "CONNECTING_STARTUP");
    CU_ASSERT_STRING_EQUAL(v[1].cause, "socket connected");
    CU_ASSERT_EQUAL(v[2].type, PGF_REC_FAIL);
    CU_ASSERT_STRING_EQUAL(v[2].op, "open");
    CU_ASSERT_STRING_EQUAL(v[2].error, "PGF_EAUTH");
    CU_ASSERT_STRING_EQUAL(v[2].reason, "auth_failed");
    CU_ASSERT_STRING_EQUAL(v[2].cause, "auth failed");
    CU_ASSERT_EQUAL(v[3].type, PGF_REC_HEALTH);
    CU_ASSERT_STRING_EQUAL(v[3].reason, "auth_failed");
    CU_ASSERT_PTR_NULL(v[3].op);
    CU_ASSERT_EQUAL(v[4].type, PGF_REC_OK);
    CU_ASSERT_STRING_EQUAL(v[4].op, "check");
    CU_ASSERT_EQUAL(v[4].op_id, 5);
    CU_ASSERT_PTR_NULL(v[4].error); /* not the whole record's before it */
    CU_ASSERT_PTR_NULL(v[4].reason);
    CU_ASSERT_PTR_NULL(v[4].phase);
    CU_ASSERT_EQUAL(v[5].type, PGF_REC_HEALTH);
    CU_ASSERT_STRING_EQUAL(v[5].reason, "ok");
    CU_ASSERT_EQUAL(v[5].op_id, 5);
    pgf_recorder_free(r);
}

/* ---- backpressure ---- */

typedef struct burst {
    pgf_recorder *r;
    int n;
} burst;

static void *produce_burst(void *arg)
{
    burst *b = arg;
    for (int i = 0; i < b->n; i++)
        put(b->r, 1, NULL);
    return NULL;
}

/* This thread drains once (it becomes the drainer), then stops draining
 * while another thread writes PGF_RECORDER_INFLIGHT + 4 chunks' worth: past
 * the bound that thread must wait for the drain (counted), each wait
 * ending at its 100 ms limit here, so it never hangs; everything still
 * reaches the sink in order. */
static void test_producer_waits_for_the_drain(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    CU_ASSERT_EQUAL_FATAL(pgf_recorder_drain(r, false), 0);
    burst b = {r, (PGF_RECORDER_INFLIGHT + 4) * PGF_RECORDER_CHUNK_WHOLE}; /* whole records */
    pthread_t th;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&th, NULL, produce_burst, &b), 0);
    pthread_join(th, NULL);
    pgf_recorder_stats st;
    pgf_recorder_get_stats(r, &st);
    CU_ASSERT_TRUE(st.waits >= 3);
    CU_ASSERT_TRUE(st.waited_ns > 0);
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0);
    CU_ASSERT_TRUE(s.in_order);
    CU_ASSERT_EQUAL(s.n, (uint64_t)b.n);
    pgf_recorder_free(r);
}

/* The drainer itself never waits: the same burst from this thread. */
static void test_drainer_never_waits(void)
{
    pgf_seq_reset();
    pgf_recorder *r = pgf_recorder_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    seen s = {0, 0, 0, true, 0};
    pgf_recorder_set_sink(r, sink_check, &s);
    CU_ASSERT_EQUAL_FATAL(pgf_recorder_drain(r, false), 0);
    burst b = {r, (PGF_RECORDER_INFLIGHT + 4) * PGF_RECORDER_CHUNK_WHOLE}; /* whole records */
    produce_burst(&b);
    pgf_recorder_stats st;
    pgf_recorder_get_stats(r, &st);
    CU_ASSERT_EQUAL(st.waits, 0);
    CU_ASSERT_EQUAL(pgf_recorder_drain(r, true), 0);
    CU_ASSERT_EQUAL(s.n, (uint64_t)b.n);
    pgf_recorder_free(r);
}

static const pgf_test recorder_tests[] = {
    {"threads_in_order", test_threads_in_order},
    {"gap_waits_then_skips_at_the_end", test_gap_waits_then_skips_at_the_end},
    {"gap_past_the_window_fails", test_gap_past_the_window_fails},
    {"late_record_fails", test_late_record_fails},
    {"long_feed_reuses_chunks", test_long_feed_reuses_chunks},
    {"merge_sorted", test_merge_sorted},
    {"compact_records_come_out_whole", test_compact_records_come_out_whole},
    {"producer_waits_for_the_drain", test_producer_waits_for_the_drain},
    {"drainer_never_waits", test_drainer_never_waits},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_recorder[] = {
    {"recorder_stream", NULL, NULL, recorder_tests},
    PGF_SUITES_END,
};
