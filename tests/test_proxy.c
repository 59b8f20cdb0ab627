/* test_proxy.c - the fault proxy in-process (fakes/proxy/proxy.h), each
 * server on its own thread, driven by real libpq:
 *  - pass-through: SCRAM end to end, queries, BackendKeyData unchanged (the
 *    cancel key works through the proxy);
 *  - the same fault rule through the proxy (in front of a fault-free fake)
 *    and on a fake that applies it itself gives libpq the same
 *    PQerrorMessage, SQLSTATE, result and connection status;
 *  - an unreachable upstream: FATAL 57P03 naming it, the proxy still serves,
 *    the failure counted;
 *  - scenario validation of server.proxy.
 * The real-PostgreSQL side is tests/e2e/proxy_real.sh. Every wait has a
 * deadline; listeners are 127.0.0.1:0.
 */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <arpa/inet.h>

#include "pgf_test.h"
#include "pgfault/clock.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/proxy.h"
#include "pgfault/rules.h"
#include "pgfault/scenario.h"
#include "pgfault/server.h"

static const pgf_server_user users[] = {
    {"scramu", "scram pw", PGF_AUTH_METHOD_SCRAM, false},
    {"trusty", "", PGF_AUTH_METHOD_TRUST, false},
};

static pgf_server *start_fake(pgf_fault_engine *e)
{
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.users = users;
    cfg.nusers = 2;
    cfg.seed = 7;
    cfg.faults = e;
    cfg.quiet = true;
    pgf_server *s = NULL;
    char err[256];
    if (pgf_server_new(&cfg, NULL, &s, err, sizeof err) != 0 ||
        pgf_server_start_thread(s, err, sizeof err) != 0) {
        fprintf(stderr, "\n  fake: %s\n", err);
        pgf_server_free(s);
        return NULL;
    }
    return s;
}

static pgf_proxy *start_proxy_timeout(const char *upstream, pgf_fault_engine *e, uint32_t ms);
static pgf_proxy *start_proxy(const char *upstream, pgf_fault_engine *e)
{
    return start_proxy_timeout(upstream, e, 3000);
}

static pgf_proxy *start_proxy_timeout(const char *upstream, pgf_fault_engine *e, uint32_t ms)
{
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_proxy_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.upstream = upstream;
    cfg.connect_timeout_ms = ms;
    cfg.faults = e;
    cfg.quiet = true;
    pgf_proxy *p = NULL;
    char err[256];
    if (pgf_proxy_new(&cfg, NULL, &p, err, sizeof err) != 0 ||
        pgf_proxy_start_thread(p, err, sizeof err) != 0) {
        fprintf(stderr, "\n  proxy: %s\n", err);
        pgf_proxy_free(p);
        return NULL;
    }
    return p;
}

static pgf_fault_engine *engine_with(const char *yaml)
{
    pgf_fault_engine *e = pgf_fault_engine_new(3);
    if (yaml != NULL) {
        char err[256];
        pgf_fault_rules *r =
            pgf_fault_rules_parse_yaml(yaml, strlen(yaml), "<test>", err, sizeof err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        pgf_fault_engine_set_rules(e, r);
    }
    return e;
}

static PGconn *connect_to(int port, const char *user, const char *pw, const char *app)
{
    char ci[512];
    snprintf(ci, sizeof ci,
             "host=127.0.0.1 port=%d user=%s password='%s' dbname=postgres sslmode=prefer "
             "gssencmode=disable connect_timeout=5 application_name=%s",
             port, user, pw, app);
    return PQconnectdb(ci);
}

/* What libpq observed, as one comparable line per step. */
static void observe(int port, const char *app, char *out, size_t len)
{
    PGconn *c = connect_to(port, "scramu", "scram pw", app);
    size_t o = 0;
    o += (size_t)snprintf(out + o, len - o, "connect=%d", PQstatus(c));
    if (PQstatus(c) != CONNECTION_OK) {
        const char *m = PQerrorMessage(c);
        const char *f = strstr(m, "failed: "); /* drop the port-bearing prefix */
        snprintf(out + o, len - o, " err=%s", f ? f : m);
        PQfinish(c);
        return;
    }
    const char *qs[] = {"SELECT 1", "SELECT 2", "SELECT 3"};
    for (int i = 0; i < 3 && o < len; i++) {
        PGresult *r = PQexec(c, qs[i]);
        const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        o += (size_t)snprintf(out + o, len - o, " | %s=%s sqlstate=%s val=%s conn=%d err=%s", qs[i],
                              PQresStatus(PQresultStatus(r)), st ? st : "-",
                              PQntuples(r) > 0 ? PQgetvalue(r, 0, 0) : "-", PQstatus(c),
                              PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
}

static const char *const RULES =
    "rules:\n"
    "  - {name: a, phase: auth-response, action: auth-fail,"
    " match: {application_name: t-auth}}\n"
    "  - {name: b, phase: query, action: error, severity: ERROR,"
    " sqlstate: '40001', message: serialize, match:"
    " {application_name: t-err, query: 'SELECT 2'}}\n"
    "  - {name: c, phase: query, action: error, preset: admin-shutdown,"
    " nth: 2, match: {application_name: t-fatal}}\n"
    "  - {name: d, phase: data-row, action: truncate, bytes: 3,"
    " match: {application_name: t-trunc}}\n"
    "  - {name: e, phase: row-description, action: error, severity:"
    " ERROR, sqlstate: '57014', message: stop, match:"
    " {application_name: t-row}}\n"
    "  - {name: f, phase: startup, action: close,"
    " match: {application_name: t-close}}\n";

static void same_as_fake(void)
{
    pgf_fault_engine *e_fake = engine_with(RULES), *e_proxy = engine_with(RULES);
    pgf_server *faulty = start_fake(e_fake), *clean = start_fake(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(faulty);
    CU_ASSERT_PTR_NOT_NULL_FATAL(clean);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pgf_server_port(clean));
    pgf_proxy *px = start_proxy(up, e_proxy);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    const char *apps[] = {"t-none", "t-auth", "t-err", "t-fatal", "t-trunc", "t-row", "t-close"};
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++) {
        char a[2048], b[2048];
        observe(pgf_server_port(faulty), apps[i], a, sizeof a);
        observe(pgf_proxy_port(px), apps[i], b, sizeof b);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "\n  %s\n  fake:  %s\n  proxy: %s\n", apps[i], a, b);
        CU_ASSERT_STRING_EQUAL(a, b);
    }
    /* and the plain session really went through: */
    char a[2048];
    observe(pgf_proxy_port(px), "t-none", a, sizeof a);
    CU_ASSERT_PTR_NOT_NULL(strstr(a, "SELECT 3=PGRES_TUPLES_OK sqlstate=- val=3"));
    pgf_proxy_stats st;
    pgf_proxy_get_stats(px, &st);
    CU_ASSERT_EQUAL(st.faults_fired, pgf_fault_engine_fired(e_proxy));
    CU_ASSERT(st.faults_fired >= 6);
    pgf_proxy_free(px);
    pgf_server_free(faulty);
    pgf_server_free(clean);
    pgf_fault_engine_free(e_fake);
    pgf_fault_engine_free(e_proxy);
}

/* The documented examples (scenarios/faults-examples.yaml, the ones picked by
 * application_name; ex-stall's 5 s stall is left out): fresh servers, the
 * same sequence of connections, so conn-numbered and seeded rules decide the
 * same on both. */
static void examples_same_as_fake(void)
{
    const char *path = PGF_TEST_DATA_DIR "/../../scenarios/faults-examples.yaml";
    char err[512];
    pgf_fault_rules *r1 = pgf_fault_rules_parse_file(path, err, sizeof err);
    pgf_fault_rules *r2 = pgf_fault_rules_parse_file(path, err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r2);
    pgf_fault_engine *e_fake = pgf_fault_engine_new(7), *e_proxy = pgf_fault_engine_new(7);
    pgf_fault_engine_set_rules(e_fake, r1);
    pgf_fault_engine_set_rules(e_proxy, r2);
    pgf_server *faulty = start_fake(e_fake), *clean = start_fake(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(faulty);
    CU_ASSERT_PTR_NOT_NULL_FATAL(clean);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pgf_server_port(clean));
    pgf_proxy *px = start_proxy(up, e_proxy);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    static const char *const apps[] = {
        "ex-none",      "ex-admin-shutdown", "ex-error",    "ex-crash", "ex-limit",
        "ex-limit",     "ex-limit",          "ex-limit",    "ex-close", "ex-reset",
        "ex-reset",     "ex-half-close",     "ex-truncate", "ex-delay", "ex-drip",
        "ex-bandwidth", "ex-garbage",
    };
    for (size_t i = 0; i < sizeof apps / sizeof apps[0]; i++) {
        char a[2048], b[2048];
        observe(pgf_server_port(faulty), apps[i], a, sizeof a);
        observe(pgf_proxy_port(px), apps[i], b, sizeof b);
        if (strcmp(a, b) != 0)
            fprintf(stderr, "\n  %s\n  fake:  %s\n  proxy: %s\n", apps[i], a, b);
        CU_ASSERT_STRING_EQUAL(a, b);
    }
    CU_ASSERT_EQUAL(pgf_fault_engine_fired(e_fake), pgf_fault_engine_fired(e_proxy));
    CU_ASSERT(pgf_fault_engine_fired(e_proxy) >= 12);
    pgf_proxy_free(px);
    pgf_server_free(faulty);
    pgf_server_free(clean);
    pgf_fault_engine_free(e_fake);
    pgf_fault_engine_free(e_proxy);
}

static void cancel_passes_through(void)
{
    pgf_server *fake = start_fake(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(fake);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pgf_server_port(fake));
    pgf_proxy *px = start_proxy(up, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    PGconn *c = connect_to(pgf_proxy_port(px), "trusty", "", "t-cancel");
    CU_ASSERT_EQUAL_FATAL(PQstatus(c), CONNECTION_OK);
    CU_ASSERT(PQbackendPID(c) != 0);
    CU_ASSERT_EQUAL_FATAL(PQsendQuery(c, "SELECT pg_sleep(20)"), 1);
    PGcancel *cn = PQgetCancel(c);
    char errbuf[256];
    /* The sleep has started once the server holds the query; a cancel that
     * arrives before it is harmless to retry, so try until it lands. */
    PGresult *r = NULL;
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(10000);
    while (r == NULL && pgf_now_ns() < deadline) {
        CU_ASSERT_EQUAL(PQcancel(cn, errbuf, sizeof errbuf), 1);
        for (int i = 0; i < 50 && PQisBusy(c); i++) {
            usleep(10000); /* polling interval, not a timing assertion */
            PQconsumeInput(c);
        }
        if (!PQisBusy(c))
            r = PQgetResult(c);
    }
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    const char *st = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    CU_ASSERT_STRING_EQUAL(st ? st : "", "57014");
    PQclear(r);
    while ((r = PQgetResult(c)) != NULL)
        PQclear(r);
    PQfreeCancel(cn);
    PQfinish(c);
    pgf_proxy_stats ps;
    pgf_proxy_get_stats(px, &ps);
    CU_ASSERT(ps.cancels >= 1);
    pgf_server_stats ss;
    pgf_server_get_stats(fake, &ss);
    CU_ASSERT(ss.canceled >= 1);
    pgf_proxy_free(px);
    pgf_server_free(fake);
}

static void upstream_down(void)
{
    /* a port nothing listens on: bind, read the port, close */
    pgf_server *tmp = start_fake(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(tmp);
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pgf_server_port(tmp));
    pgf_server_free(tmp);
    pgf_proxy *px = start_proxy(up, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    for (int i = 0; i < 2; i++) {
        PGconn *c = connect_to(pgf_proxy_port(px), "u", "p", "t-down");
        CU_ASSERT_EQUAL(PQstatus(c), CONNECTION_BAD);
        const char *m = PQerrorMessage(c);
        CU_ASSERT_PTR_NOT_NULL(
            strstr(m, "FATAL:  the database system is not accepting connections"));
        char want[128];
        snprintf(want, sizeof want, "DETAIL:  pgfault proxy: upstream %s: Connection refused", up);
        CU_ASSERT_PTR_NOT_NULL(strstr(m, want));
        CU_ASSERT_PTR_NULL(strstr(m, "'p'"));
        PQfinish(c);
    }
    pgf_proxy_stats st;
    pgf_proxy_get_stats(px, &st);
    CU_ASSERT_EQUAL(st.upstream_failures, 2);
    CU_ASSERT_EQUAL(st.accepted, 2);
    CU_ASSERT(pgf_proxy_listening(px));
    pgf_proxy_free(px);
}

/* A bad length word: the connection closes without a message (PostgreSQL
 * logs it as COMMERROR); the upstream is never contacted. */
static void bad_length_closes(void)
{
    pgf_proxy *px = start_proxy("127.0.0.1:1", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)pgf_proxy_port(px));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    static const unsigned char bad[8] = {0, 0, 0, 4, 0, 3, 0, 0};
    CU_ASSERT_EQUAL(send(fd, bad, sizeof bad, 0), 8);
    struct pollfd p = {fd, POLLIN, 0};
    CU_ASSERT_EQUAL(poll(&p, 1, 5000), 1);
    char buf[64];
    CU_ASSERT_EQUAL(recv(fd, buf, sizeof buf, 0), 0);
    close(fd);
    pgf_proxy_stats st;
    pgf_proxy_get_stats(px, &st);
    CU_ASSERT_EQUAL(st.sessions, 0);
    CU_ASSERT_EQUAL(st.upstream_failures, 0);
    pgf_proxy_free(px);
}

/* An upstream that never completes the handshake: a listener whose accept
 * queue is full drops SYNs. The client gets 57P03 naming the timeout. */
static void upstream_slow_times_out(void)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    CU_ASSERT_EQUAL_FATAL(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    CU_ASSERT_EQUAL_FATAL(listen(l, 0), 0);
    socklen_t al = sizeof a;
    getsockname(l, (struct sockaddr *)&a, &al);
    int fill[4];
    for (int i = 0; i < 4; i++) { /* fill the accept queue; never accepted */
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        (void)connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", ntohs(a.sin_port));
    pgf_proxy *px = start_proxy_timeout(up, NULL, 300);
    CU_ASSERT_PTR_NOT_NULL_FATAL(px);
    PGconn *c = connect_to(pgf_proxy_port(px), "u", "p", "t-slow");
    CU_ASSERT_EQUAL(PQstatus(c), CONNECTION_BAD);
    char want[160];
    snprintf(want, sizeof want,
             "DETAIL:  pgfault proxy: upstream %s: connect timed out after 300 ms", up);
    if (strstr(PQerrorMessage(c), want) == NULL)
        fprintf(stderr, "\n  got: %s", PQerrorMessage(c));
    CU_ASSERT_PTR_NOT_NULL(strstr(PQerrorMessage(c), want));
    PQfinish(c);
    pgf_proxy_free(px);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(l);
}

static void bad_config(void)
{
    pgf_proxy_config cfg = {0};
    static const char *const listen[] = {"127.0.0.1:0"};
    cfg.listen = listen;
    cfg.nlisten = 1;
    pgf_proxy *p = NULL;
    char err[256];
    CU_ASSERT_EQUAL(pgf_proxy_new(&cfg, NULL, &p, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--upstream is required"));
    cfg.upstream = "no-port";
    CU_ASSERT_EQUAL(pgf_proxy_new(&cfg, NULL, &p, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "--upstream 'no-port': expected HOST:PORT"));
    CU_ASSERT_PTR_NULL(p);
}

static void scenario_proxy_keys(void)
{
    pgf_scenario sc;
    char err[512];
    const char *ok = "name: p\nmode: stress\nserver:\n  proxy: {upstream: '127.0.0.1:5432', "
                     "upstream_port: 6000, connect_timeout_ms: 700}\n";
    CU_ASSERT_EQUAL_FATAL(pgf_scenario_load_string(ok, strlen(ok), "p.yaml", &sc, err, sizeof err),
                          0);
    CU_ASSERT_STRING_EQUAL(sc.proxy_upstream, "127.0.0.1:5432");
    CU_ASSERT_EQUAL(sc.proxy_upstream_port, 6000);
    CU_ASSERT_EQUAL(sc.proxy_connect_timeout_ms, 700);
    pgf_scenario_clear(&sc);
    static const struct {
        const char *yaml, *want;
    } bad[] = {
        {"name: p\nserver:\n  proxy: {upstream: 'h:1'}\n",
         "p.yaml:3:10: 'server.proxy' needs 'mode: stress'"},
        {"name: p\nmode: stress\nserver:\n  proxy: {port: 1}\n",
         "p.yaml:4:11: unknown key 'port' in 'server.proxy'"},
        {"name: p\nmode: stress\nserver:\n  proxy: {upstream_port: 1}\n",
         "p.yaml:4:10: 'server.proxy' needs 'upstream: HOST:PORT'"},
        {"name: p\nmode: stress\nserver:\n  external: 'host=x'\n  proxy: {upstream: 'h:1'}\n",
         "p.yaml:5:10: 'server.proxy' and 'server.external' exclude each other"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = pgf_scenario_load_string(bad[i].yaml, strlen(bad[i].yaml), "p.yaml", &sc, err,
                                          sizeof err);
        CU_ASSERT(rc != 0);
        if (strstr(err, bad[i].want) == NULL)
            fprintf(stderr, "\n  got:  %s\n  want: %s\n", err, bad[i].want);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].want));
    }
}

/* close/reset `side` (only the proxy has two connections) */
static void close_side_rule(void)
{
    char err[512];
    const char *y = "rules:\n  - {name: s, phase: query, action: reset, side: upstream}\n";
    pgf_fault_rules *r = pgf_fault_rules_parse_yaml(y, strlen(y), "f.yaml", err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_STRING_EQUAL(
        pgf_fault_rules_rule_json(r, 0),
        "{\"name\":\"s\",\"phase\":\"query\",\"action\":\"reset\",\"side\":\"upstream\"}");
    pgf_fault_rules_free(r);
    y = "rules:\n  - {name: s, phase: query, action: close, side: server}\n";
    CU_ASSERT_PTR_NULL(pgf_fault_rules_parse_yaml(y, strlen(y), "f.yaml", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(
        strstr(err, "f.yaml:2:50: 'side' must be 'client', 'upstream' or 'both', got 'server'"));
    y = "rules:\n  - {name: s, phase: query, action: delay, side: both}\n";
    CU_ASSERT_PTR_NULL(pgf_fault_rules_parse_yaml(y, strlen(y), "f.yaml", err, sizeof err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "key 'side' is not a parameter of action 'delay'"));
}

static const pgf_test proxy_tests[] = {
    {"close_side_rule", close_side_rule},
    {"same_as_fake", same_as_fake},
    {"examples_same_as_fake", examples_same_as_fake},
    {"cancel_passes_through", cancel_passes_through},
    {"upstream_down", upstream_down},
    {"bad_length_closes", bad_length_closes},
    {"upstream_slow_times_out", upstream_slow_times_out},
    {"bad_config", bad_config},
    {"scenario_proxy_keys", scenario_proxy_keys},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_proxy[] = {
    {"proxy", NULL, NULL, proxy_tests},
    PGF_SUITES_END,
};
