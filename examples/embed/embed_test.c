/* embed_test.c - pgfault's fake server inside a C project's own CUnit suite.
 *
 * What a project that embeds pgfault writes: the suite's setup starts the
 * fake PostgreSQL server in-process, on its own thread, on a free loopback
 * port, with one fault rule (the first login fails with the exact 28P01
 * "password authentication failed" text); the tests connect with libpq as
 * the code under test would; the teardown stops and frees everything.
 *
 * Built out of the pgfault tree against an installed pgfault, with either
 *   cc embed_test.c $(pkg-config --cflags --libs pgfault cunit)   (Makefile)
 *   find_package(pgfault) + pgfault::server                        (CMakeLists.txt)
 * tests/e2e/install_embed.sh does both. Exit status: 0 when every test
 * passed, 1 otherwise.
 *
 * libpq does not expose the SQLSTATE of an error received while
 * connecting, so the test checks 28P01's exact message and the fault log
 * (the rule fired, with action auth-fail) instead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <libpq-fe.h>

#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/rules.h"
#include "pgfault/server.h"
#include "pgfault/version.h"

/* One rule: the first authentication response gets FATAL 28P01. */
static const char rules_yaml[] = "rules:\n"
                                 "  - name: first-login-fails\n"
                                 "    phase: auth-response\n"
                                 "    action: auth-fail\n"
                                 "    times: 1\n"
                                 "    scope: global\n"; /* once per server, not per connection */

static pgf_fault_engine *engine;
static pgf_server *server;
static char conninfo[256];

static int suite_setup(void)
{
    char err[512];
    engine = pgf_fault_engine_new(42);
    if (engine == NULL)
        return -1;
    pgf_fault_rules *rules =
        pgf_fault_rules_parse_yaml(rules_yaml, strlen(rules_yaml), "<embed>", err, sizeof err);
    if (rules == NULL) {
        fprintf(stderr, "embed: rules: %s\n", err);
        return -1;
    }
    pgf_fault_engine_set_rules(engine, rules); /* takes the reference */

    static const char *const listen[] = {"127.0.0.1:0"}; /* port 0: any free port */
    static const pgf_server_user users[] = {
        {"app", "s3cret", PGF_AUTH_METHOD_SCRAM, false},
    };
    pgf_server_config cfg = {
        .listen = listen,
        .nlisten = 1,
        .users = users,
        .nusers = 1,
        .seed = 42,
        .faults = engine,
        .quiet = true,
    };
    if (pgf_server_new(&cfg, NULL, &server, err, sizeof err) != 0 ||
        pgf_server_start_thread(server, err, sizeof err) != 0) {
        fprintf(stderr, "embed: server: %s\n", err);
        return -1;
    }
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d user=app password=s3cret dbname=app connect_timeout=10",
             pgf_server_port(server));
    return 0;
}

static int suite_teardown(void)
{
    pgf_server_free(server); /* stops the thread and closes every connection */
    pgf_fault_engine_free(engine);
    return 0;
}

static void first_login_gets_28P01(void)
{
    PGconn *c = PQconnectdb(conninfo);
    CU_ASSERT_EQUAL(PQstatus(c), CONNECTION_BAD);
    CU_ASSERT_PTR_NOT_NULL(
        strstr(PQerrorMessage(c), "FATAL:  password authentication failed for user \"app\""));
    PQfinish(c);

    pgf_server_stats st;
    pgf_server_get_stats(server, &st);
    CU_ASSERT_EQUAL(st.faults_fired, 1);
    char *log = pgf_fault_log_lines(engine, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(log);
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "\"rule\":\"first-login-fails\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(log, "\"action\":\"auth-fail\""));
    free(log);
}

static void second_login_works(void)
{
    PGconn *c = PQconnectdb(conninfo);
    CU_ASSERT_EQUAL_FATAL(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SELECT 1");
    CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_TUPLES_OK);
    CU_ASSERT_STRING_EQUAL(PQgetvalue(r, 0, 0), "1");
    PQclear(r);
    PQfinish(c);
}

int main(void)
{
    printf("pgfault %s (version number %d)\n", PGF_VERSION, PGF_VERSION_NUMBER);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 1;
    CU_pSuite s = CU_add_suite("embedded_fake_server", suite_setup, suite_teardown);
    if (s == NULL || CU_add_test(s, "first_login_gets_28P01", first_login_gets_28P01) == NULL ||
        CU_add_test(s, "second_login_works", second_login_works) == NULL) {
        CU_cleanup_registry();
        return 1;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    /* A failed suite setup is a failure too, not a skipped suite. */
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    return failed == 0 && ran == 2 ? 0 : 1;
}
