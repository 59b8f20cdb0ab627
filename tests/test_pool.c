/* test_pool.c - the pool against scripted servers: reuse, acquire timeout,
 * pre-ping invalidating a broken connection (never handed out again),
 * release refused mid-operation, FAILED released -> invalidated, auth
 * backoff, and the two pool bugs of the bug mask. */
#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/pool.h"
#include "test_session_fixture.h"

struct acq {
    int n;
    int err;
    pgf_session *s;
    uint64_t id;
    pgf_health h;
};

static void acq_cb(pgf_pool *p, pgf_session *s, int err, const pgf_health *h, void *arg)
{
    struct acq *a = arg;
    a->n++;
    a->err = err;
    a->s = s;
    a->id = s != NULL ? pgf_session_id(s) : 0;
    if (h != NULL)
        a->h = *h;
}

static bool run_until_acq(struct event_base *b, struct acq *a, int n)
{
    fx_calls c = {0};
    for (int i = 0; i < 250 && a->n < n; i++)
        fx_run_until_calls(b, &c, 1, 20); /* 20 ms slices, bounded at ~5 s */
    return a->n >= n;
}

typedef struct pool_fx {
    fx_server *srv;
    struct event_base *base;
    fx_conninfo ci;
    fx_recorder rec;
    pgf_pool *pool;
    int fds_before;
} pool_fx;

/* PGF_BUG_* mask for the next pool_begin() only (the bug tests set it). */
static unsigned pool_bugs;

static void pool_begin(pool_fx *f, fx_mode mode, int max_size, bool pre_ping, unsigned acquire_ms)
{
    memset(f, 0, sizeof *f);
    f->fds_before = fx_fd_count();
    f->srv = fx_start(mode);
    f->base = pgf_session_base_new();
    fx_recorder_init(&f->rec);
    fx_conninfo_tcp(&f->ci, fx_port(f->srv), "u", NULL, "db", NULL);
    pgf_pool_opts o = {0};
    o.session.keywords = f->ci.kw;
    o.session.values = f->ci.val;
    o.session.recorder = fx_record;
    o.session.recorder_arg = &f->rec;
    o.session.connect_timeout_ms = 3000;
    o.session.query_timeout_ms = 3000;
    o.max_size = max_size;
    o.pre_ping = pre_ping;
    o.acquire_timeout_ms = acquire_ms;
    o.auth_backoff_base_ms = 60000; /* long enough that the second acquire is inside it */
    o.auth_backoff_cap_ms = 60000;
    o.seed = 42;
    o.session.bugs = pool_bugs;
    pool_bugs = 0;
    CU_ASSERT_EQUAL_FATAL(pgf_pool_new(f->base, &o, &f->pool), 0);
}

static void pool_end(pool_fx *f)
{
    pgf_pool_free(f->pool);
    /* let deferred frees and closes settle */
    fx_calls c = {0};
    fx_run_until_calls(f->base, &c, 1, 20);
    event_base_free(f->base);
    fx_stop(f->srv);
    fx_recorder_destroy(&f->rec);
    pgf_session_counters k;
    pgf_session_counters_get(&k);
    CU_ASSERT_EQUAL(k.sessions, 0);
    CU_ASSERT_EQUAL(k.pgconns, 0);
    CU_ASSERT_EQUAL(fx_fd_count(), f->fds_before);
}

static void reuses_idle_connection(void)
{
    pool_fx f;
    pool_begin(&f, FX_TRUST, 1, true, 2000);
    struct acq a = {0}, b = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_EQUAL(a.n, 0); /* never called back inside acquire */
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    CU_ASSERT_EQUAL(a.err, 0);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), 0);
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &b), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &b, 1));
    CU_ASSERT_EQUAL(b.err, 0);
    CU_ASSERT_EQUAL(b.id, a.id);
    pgf_pool_stats st;
    pgf_pool_get_stats(f.pool, &st);
    CU_ASSERT_EQUAL(st.opened, 1);
    CU_ASSERT_EQUAL(fx_count(&f.rec, PGF_SEV_OK, PGF_OP_check), 1); /* the pre-ping */
    CU_ASSERT_EQUAL(fx_count(&f.rec, PGF_SEV_OK, PGF_OP_acquire), 2);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, b.s), 0);
    pool_end(&f);
}

static void acquire_times_out(void)
{
    pool_fx f;
    pool_begin(&f, FX_TRUST, 1, false, 150);
    struct acq a = {0}, b = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &b), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &b, 1));
    CU_ASSERT_EQUAL(b.err, PGF_ETIMEDOUT);
    CU_ASSERT_PTR_NULL(b.s);
    CU_ASSERT_EQUAL(b.h.reason, PGF_HEALTH_TIMEOUT);
    pgf_pool_stats st;
    pgf_pool_get_stats(f.pool, &st);
    CU_ASSERT_EQUAL(st.timeouts, 1);
    CU_ASSERT_EQUAL(st.checked_out, 1);
    CU_ASSERT_EQUAL(fx_accepted(f.srv), 1); /* no second connection beyond max_size */
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), 0);
    pool_end(&f);
}

static void check_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    fx_cb(s, op, err, h, arg);
}

static void broken_connection_never_handed_out_again(void)
{
    /* The server drops each connection after answering one query: the
     * idle connection is dead when the pool pre-pings it. */
    pool_fx f;
    pool_begin(&f, FX_CLOSE_AFTER_QUERY, 2, true, 3000);
    struct acq a = {0}, b = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    fx_calls c = {0};
    CU_ASSERT_EQUAL(pgf_session_check(a.s, check_cb, &c), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(f.base, &c, 1, 3000));
    CU_ASSERT_EQUAL(c.err, 0);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), 0);
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &b), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &b, 1));
    CU_ASSERT_EQUAL(b.err, 0);
    CU_ASSERT_NOT_EQUAL(b.id, a.id);
    CU_ASSERT_EQUAL(pgf_session_state(b.s), PGF_SESS_READY);
    pgf_pool_stats st;
    pgf_pool_get_stats(f.pool, &st);
    CU_ASSERT_EQUAL(st.invalidated, 1);
    CU_ASSERT_EQUAL(st.opened, 2);
    CU_ASSERT_EQUAL(fx_count(&f.rec, PGF_SEV_OK, PGF_OP_invalidate), 1);
    /* every acquire handed out a READY session */
    for (int i = 0; i < f.rec.n; i++)
        if (f.rec.ev[i].op == PGF_OP_acquire)
            CU_ASSERT_EQUAL(f.rec.ev[i].from, PGF_SESS_READY);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, b.s), 0);
    pool_end(&f);
}

/* Returns close's result for the joining thread to assert (CUnit is not thread-safe). */
static void *close_thread(void *arg)
{
    static int rc;
    rc = pgf_session_close(arg, NULL, NULL);
    return &rc;
}

static void release_refused_mid_operation_and_after_close(void)
{
    pool_fx f;
    pool_begin(&f, FX_QUERY_STALL, 1, false, 3000);
    struct acq a = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    fx_calls c = {0};
    CU_ASSERT_EQUAL(pgf_session_check(a.s, check_cb, &c), 0);
    CU_ASSERT_TRUE(fx_run_until_state(f.base, a.s, PGF_SESS_BUSY, 3000));
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), PGF_EILLEGAL_STATE);
    char msg[256];
    CU_ASSERT_PTR_NOT_NULL(strstr(pgf_session_last_error(a.s, msg, sizeof msg),
                                  "Method 'release()' can't be called here; method 'check()' "
                                  "is already in progress"));
    pthread_t t;
    void *closed = NULL;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, close_thread, a.s), 0);
    pthread_join(t, &closed);
    CU_ASSERT_EQUAL(*(int *)closed, 0);
    CU_ASSERT_TRUE(fx_run_until_state(f.base, a.s, PGF_SESS_CLOSED, 3000));
    CU_ASSERT_EQUAL(c.n, 1);
    CU_ASSERT_EQUAL(c.err, PGF_ECANCELED);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), PGF_EILLEGAL_STATE);
    CU_ASSERT_EQUAL(pgf_pool_invalidate(f.pool, a.s), 0);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), PGF_EINVAL); /* not ours any more */
    pool_end(&f);
}

static void failed_release(unsigned bugs, bool want_same)
{
    pool_fx f;
    pool_bugs = bugs;
    pool_begin(&f, FX_CLOSE_AFTER_QUERY, 1, false, 3000);
    struct acq a = {0}, b = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    fx_calls c1 = {0}, c2 = {0};
    CU_ASSERT_EQUAL(pgf_session_check(a.s, check_cb, &c1), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(f.base, &c1, 1, 3000));
    CU_ASSERT_EQUAL(pgf_session_check(a.s, check_cb, &c2), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(f.base, &c2, 1, 3000));
    CU_ASSERT_EQUAL(c2.h.reason, PGF_HEALTH_CONNECTION_LOST);
    CU_ASSERT_STRING_EQUAL(c2.h.phase, "query");
    CU_ASSERT_EQUAL(pgf_session_state(a.s), PGF_SESS_FAILED);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), 0);
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &b), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &b, 1));
    CU_ASSERT_EQUAL(b.err, 0);
    CU_ASSERT_EQUAL(b.id == a.id, want_same);
    /* the history shows an acquire from FAILED exactly when the bug is on */
    int bad = 0;
    for (int i = 0; i < f.rec.n; i++)
        bad += f.rec.ev[i].op == PGF_OP_acquire && f.rec.ev[i].kind == PGF_SEV_OK &&
               f.rec.ev[i].from == PGF_SESS_FAILED;
    CU_ASSERT_EQUAL(bad, want_same ? 1 : 0);
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, b.s), 0);
    pool_end(&f);
}

static void failed_connection_released_is_invalidated(void)
{
    failed_release(0, false);
}

static void bug_failed_returned_to_pool(void)
{
    failed_release(PGF_BUG_FAILED_RETURNED_TO_POOL, true);
}

static void bug_release_after_close(void)
{
    pool_fx f;
    /* (the correct pool refuses it: release_refused_mid_operation_and_after_close) */
    pool_bugs = PGF_BUG_RELEASE_AFTER_CLOSE;
    pool_begin(&f, FX_TRUST, 1, false, 3000);
    struct acq a = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    fx_calls c = {0};
    CU_ASSERT_EQUAL(pgf_session_close(a.s, check_cb, &c), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(f.base, &c, 1, 3000));
    CU_ASSERT_EQUAL(pgf_pool_release(f.pool, a.s), 0);
    int bad = 0;
    for (int i = 0; i < f.rec.n; i++)
        bad += f.rec.ev[i].op == PGF_OP_release && f.rec.ev[i].kind == PGF_SEV_OK &&
               f.rec.ev[i].from == PGF_SESS_CLOSED;
    CU_ASSERT_EQUAL(bad, 1);
    pool_end(&f);
}

static void auth_failure_backs_off(void)
{
    pool_fx f;
    pool_begin(&f, FX_AUTH_FAIL, 2, false, 3000);
    struct acq a = {0}, b = {0};
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &a), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &a, 1));
    CU_ASSERT_EQUAL(a.err, PGF_EAUTH);
    CU_ASSERT_EQUAL(a.h.reason, PGF_HEALTH_AUTH_FAILED);
    CU_ASSERT_EQUAL(pgf_pool_acquire(f.pool, acq_cb, &b), 0);
    CU_ASSERT_TRUE(run_until_acq(f.base, &b, 1));
    CU_ASSERT_EQUAL(b.err, PGF_EAUTH);
    CU_ASSERT_EQUAL(fx_accepted(f.srv), 1); /* no second attempt inside the backoff */
    pgf_pool_stats st;
    pgf_pool_get_stats(f.pool, &st);
    CU_ASSERT_EQUAL(st.auth_blocked, 1);
    pool_end(&f);
}

static const pgf_test pool_tests[] = {
    {"reuses_idle_connection", reuses_idle_connection},
    {"acquire_times_out", acquire_times_out},
    {"broken_connection_never_handed_out_again", broken_connection_never_handed_out_again},
    {"release_refused_mid_operation_and_after_close",
     release_refused_mid_operation_and_after_close},
    {"failed_connection_released_is_invalidated", failed_connection_released_is_invalidated},
    {"bug_failed_returned_to_pool", bug_failed_returned_to_pool},
    {"bug_release_after_close", bug_release_after_close},
    {"auth_failure_backs_off", auth_failure_backs_off},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_pool[] = {
    {"pool", NULL, NULL, pool_tests},
    PGF_SUITES_END,
};
