/* test_session_pg.c - the session manager against a real PostgreSQL 15
 * started for this suite (initdb in a temp dir as `postgres`, unix socket
 * + 127.0.0.1 on a free port; stopped in teardown). Classification of
 * real failures, cancel of a running pg_sleep, close of a running query
 * from another thread, pg_terminate_backend while idle. */
#include <event2/event.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/healthcheck.h"
#include "pgfault/session.h"
#include "test_session_fixture.h"

static fx_pg pg;

static int pg_setup(void)
{
    return fx_pg_start(&pg) == 0 ? 0 : 1; /* a failed setup fails the suite, not skips it */
}

static int pg_teardown(void)
{
    fx_pg_stop(&pg);
    return 0;
}

static void expect_health(const char *user, const char *pw, const char *db, int want_rc,
                          pgf_health_reason want, const char *sqlstate)
{
    fx_conninfo ci;
    fx_conninfo_tcp(&ci, pg.port, user, pw, db, NULL);
    pgf_health h;
    int rc = pgf_health_check(ci.kw, ci.val, NULL, 10000, &h);
    char line[512];
    pgf_health_format(&h, line, sizeof line);
    if (rc != want_rc || h.reason != want)
        fprintf(stderr, "%s/%s: %s\n", user, db, line);
    CU_ASSERT_EQUAL(rc, want_rc);
    CU_ASSERT_EQUAL(h.reason, want);
    CU_ASSERT_STRING_EQUAL(h.sqlstate, sqlstate);
    CU_ASSERT_PTR_NULL(strstr(line, "pw_scram")); /* never the password */
}

static void healthy_trust_and_scram(void)
{
    expect_health("u_trust", NULL, "postgres", 0, PGF_HEALTH_HEALTHY, "");
    expect_health("u_scram", "pw_scram", "postgres", 0, PGF_HEALTH_HEALTHY, "");
}

static void real_failures_are_classified(void)
{
    expect_health("u_scram", "wrong", "postgres", PGF_EAUTH, PGF_HEALTH_AUTH_FAILED, "28P01");
    expect_health("u_scram", NULL, "postgres", PGF_EAUTH, PGF_HEALTH_AUTH_FAILED, "");
    expect_health("no_such_role", NULL, "postgres", PGF_EAUTH, PGF_HEALTH_AUTH_FAILED, "28000");
    expect_health("u_trust", NULL, "no_such_db", PGF_ESERVER, PGF_HEALTH_SERVER_ERROR, "3D000");
    expect_health("u_limited", NULL, "postgres", PGF_ESERVER, PGF_HEALTH_TOO_MANY_CONNECTIONS,
                  "53300");
}

typedef struct pg_live {
    struct event_base *base;
    pgf_session *s;
    fx_conninfo ci;
    fx_recorder rec;
} pg_live;

static void pg_open(pg_live *l, const char *query)
{
    memset(l, 0, sizeof *l);
    l->base = pgf_session_base_new();
    fx_recorder_init(&l->rec);
    fx_conninfo_tcp(&l->ci, pg.port, "u_trust", NULL, "postgres", NULL);
    pgf_session_opts o = {.keywords = l->ci.kw, .values = l->ci.val, .check_query = query};
    o.recorder = fx_record;
    o.recorder_arg = &l->rec;
    CU_ASSERT_EQUAL_FATAL(pgf_session_new(l->base, &o, &l->s), 0);
    fx_calls open = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l->s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l->base, &open, 1, 10000));
    CU_ASSERT_EQUAL(open.err, 0);
}

static void pg_close(pg_live *l)
{
    if (pgf_session_state(l->s) != PGF_SESS_CLOSED) {
        fx_calls c = {0};
        CU_ASSERT_EQUAL(pgf_session_close(l->s, fx_cb, &c), 0);
        CU_ASSERT_TRUE(fx_run_until_calls(l->base, &c, 1, 5000));
    }
    pgf_session_free(l->s);
    event_base_free(l->base);
    fx_recorder_destroy(&l->rec);
    CU_ASSERT_TRUE(fx_wait_cancel_threads(10000));
    pgf_session_counters k;
    pgf_session_counters_get(&k);
    CU_ASSERT_EQUAL(k.pgconns, 0);
}

static void cancel_running_query(void)
{
    pg_live l;
    pg_open(&l, "SELECT pg_sleep(30)");
    fx_calls check = {0}, cancel = {0};
    CU_ASSERT_EQUAL(pgf_session_check(l.s, fx_cb, &check), 0);
    CU_ASSERT_TRUE(fx_run_until_state(l.base, l.s, PGF_SESS_BUSY, 5000));
    CU_ASSERT_EQUAL(pgf_session_cancel(l.s, fx_cb, &cancel), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &cancel, 1, 10000));
    CU_ASSERT_EQUAL(check.n, 1);
    CU_ASSERT_EQUAL(check.err, PGF_ECANCELED);
    CU_ASSERT_EQUAL(cancel.err, 0);
    /* the server's 57014 left the connection usable */
    CU_ASSERT_EQUAL(pgf_session_state(l.s), PGF_SESS_READY);
    char tr[1024];
    fx_transitions(&l.rec, tr, sizeof tr);
    CU_ASSERT_PTR_NOT_NULL(strstr(tr, "READY>BUSY BUSY>CANCELING CANCELING>READY"));
    pg_close(&l);
}

/* Returns close's result for the joining thread to assert (CUnit is not thread-safe). */
static void *closer(void *arg)
{
    static int rc;
    rc = pgf_session_close(arg, NULL, NULL);
    return &rc;
}

static void close_running_query_from_another_thread(void)
{
    pg_live l;
    pg_open(&l, "SELECT pg_sleep(30)");
    fx_calls check = {0};
    CU_ASSERT_EQUAL(pgf_session_check(l.s, fx_cb, &check), 0);
    CU_ASSERT_TRUE(fx_run_until_state(l.base, l.s, PGF_SESS_BUSY, 5000));
    pthread_t t;
    void *closed = NULL;
    CU_ASSERT_EQUAL_FATAL(pthread_create(&t, NULL, closer, l.s), 0);
    pthread_join(t, &closed);
    CU_ASSERT_EQUAL(*(int *)closed, 0);
    CU_ASSERT_TRUE(fx_run_until_state(l.base, l.s, PGF_SESS_CLOSED, 5000));
    CU_ASSERT_EQUAL(check.n, 1);
    CU_ASSERT_EQUAL(check.err, PGF_ECANCELED);
    pg_close(&l);
}

static void terminated_backend_is_shutting_down(void)
{
    pg_live l;
    pg_open(&l, NULL);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%d);", pgf_session_backend_pid(l.s));
    CU_ASSERT_EQUAL(fx_pg_sql(&pg, sql), 0);
    fx_calls check = {0};
    CU_ASSERT_EQUAL(pgf_session_check(l.s, fx_cb, &check), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &check, 1, 5000));
    CU_ASSERT_NOT_EQUAL(check.err, 0);
    if (check.h.reason != PGF_HEALTH_SHUTTING_DOWN)
        fprintf(stderr, "terminated: %s (%s)\n", pgf_health_reason_name(check.h.reason),
                check.h.message);
    CU_ASSERT_EQUAL(check.h.reason, PGF_HEALTH_SHUTTING_DOWN);
    CU_ASSERT_EQUAL(pgf_session_state(l.s), PGF_SESS_FAILED);
    pg_close(&l);
}

static const pgf_test pg_tests[] = {
    {"healthy_trust_and_scram", healthy_trust_and_scram},
    {"real_failures_are_classified", real_failures_are_classified},
    {"cancel_running_query", cancel_running_query},
    {"close_running_query_from_another_thread", close_running_query_from_another_thread},
    {"terminated_backend_is_shutting_down", terminated_backend_is_shutting_down},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_session_pg[] = {
    {"session_pg", pg_setup, pg_teardown, pg_tests},
    PGF_SUITES_END,
};
