/* test_join.c - linking a foreign history's health results to the faults of
 * the server's history (harness/checker/join.c), records built in memory.
 *
 * The server side: conn 1 (pid 10001, port 50001) got FATAL 57P01 at
 * query; conn 2 (port 50002) was closed at startup, before BackendKeyData,
 * so it has no pid; conn 3 (pid 10003) only had a delay (predicts nothing).
 * What this does not test: reading files and the CLI (e2e/orm_faultlink.sh).
 */
#include <string.h>

#include "pgf_test.h"
#include "pgfault/join.h"

static pgf_rec rec(pgf_rec_type t, int64_t conn, int64_t pid, int64_t port)
{
    pgf_rec r;
    pgf_rec_init(&r, t);
    r.conn = conn;
    r.backend_pid = pid;
    r.client_port = port;
    return r;
}

static pgf_rec fault(int64_t conn, const char *action, const char *sqlstate, const char *reason)
{
    pgf_rec r = rec(PGF_REC_FAULT, conn, PGF_REC_NONE, PGF_REC_NONE);
    r.action = action;
    r.sqlstate = sqlstate;
    r.reason = reason;
    r.rule = "r";
    return r;
}

static pgf_rec health(const char *reason, int64_t pid, int64_t port)
{
    pgf_rec r = rec(PGF_REC_HEALTH, PGF_REC_NONE, pid, port);
    r.session = 1;
    r.reason = reason;
    return r;
}

static void links_by_pid_and_port(void)
{
    pgf_rec server[] = {
        rec(PGF_REC_SERVER, 1, PGF_REC_NONE, 50001), /* accepted: no pid yet */
        rec(PGF_REC_SERVER, 1, 10001, 50001),        /* authenticated */
        fault(1, "delay", NULL, NULL),               /* predicts nothing: skipped */
        fault(1, "error", "57P01", NULL),            /* predicts shutting_down */
        rec(PGF_REC_SERVER, 2, PGF_REC_NONE, 50002),
        fault(2, "close", NULL, NULL), /* before BackendKeyData: connection_lost */
        rec(PGF_REC_SERVER, 3, 10003, 50003),
        fault(3, "delay", NULL, NULL),
        fault(3, "close", NULL, ""), /* its own reason "": predicts nothing */
    };
    pgf_rec foreign[] = {
        health("shutting_down", 10001, PGF_REC_NONE),   /* agrees */
        health("connection_lost", PGF_REC_NONE, 50002), /* by port: agrees */
        health("timeout", 10001, PGF_REC_NONE),         /* misclassified */
        health("ok", 10001, PGF_REC_NONE),              /* not judged */
        health("server_error", 10003, PGF_REC_NONE),    /* no predictive fault */
        health("timeout", 4242, PGF_REC_NONE),          /* unknown pid */
        health("timeout", PGF_REC_NONE, PGF_REC_NONE),  /* names nothing: not linked */
    };
    pgf_join_result *j = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_join(foreign, 7, server, 9, &j), 0);
    CU_ASSERT_EQUAL(j->n, 6);
    CU_ASSERT_EQUAL(j->links[0].verdict, PGF_JOIN_AGREES);
    CU_ASSERT_EQUAL(j->links[0].conn, 1);
    CU_ASSERT_PTR_EQUAL(j->links[0].fault, &server[3]);
    CU_ASSERT_STRING_EQUAL(j->links[0].predicted, "shutting_down");
    CU_ASSERT_STRING_EQUAL(j->links[0].by, "backend_pid");
    CU_ASSERT_EQUAL(j->links[1].verdict, PGF_JOIN_AGREES);
    CU_ASSERT_EQUAL(j->links[1].conn, 2);
    CU_ASSERT_STRING_EQUAL(j->links[1].by, "client_port");
    CU_ASSERT_EQUAL(j->links[2].verdict, PGF_JOIN_MISCLASSIFIED);
    CU_ASSERT_EQUAL(j->links[3].verdict, PGF_JOIN_AGREES);
    CU_ASSERT_EQUAL(j->links[4].verdict, PGF_JOIN_NO_FAULT);
    CU_ASSERT_EQUAL(j->links[4].conn, 3);
    CU_ASSERT_EQUAL(j->links[5].verdict, PGF_JOIN_NO_CONN);
    CU_ASSERT_EQUAL(j->misclassified, 1);
    CU_ASSERT_EQUAL(j->no_fault, 1);
    CU_ASSERT_EQUAL(j->no_conn, 1);
    pgf_join_result_free(j);
}

static void port_names_the_latest_connection(void)
{
    /* the kernel reused port 50001: the later connection is the one */
    pgf_rec server[] = {
        rec(PGF_REC_SERVER, 1, PGF_REC_NONE, 50001),
        fault(1, "auth-fail", "28P01", NULL),
        rec(PGF_REC_SERVER, 5, PGF_REC_NONE, 50001),
        fault(5, "stall", NULL, NULL),
    };
    pgf_rec foreign[] = {health("timeout", PGF_REC_NONE, 50001)};
    pgf_join_result *j = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_join(foreign, 1, server, 4, &j), 0);
    CU_ASSERT_EQUAL(j->links[0].conn, 5);
    CU_ASSERT_EQUAL(j->links[0].verdict, PGF_JOIN_AGREES);
    pgf_join_result_free(j);
}

static const pgf_test join_tests[] = {
    {"links_by_pid_and_port", links_by_pid_and_port},
    {"port_names_the_latest_connection", port_names_the_latest_connection},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_join[] = {
    {"join", NULL, NULL, join_tests},
    PGF_SUITES_END,
};
