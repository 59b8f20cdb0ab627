/* test_wire.c - the wire-side client checks (harness/driver/wire_checks.c)
 * fed by the fake server's on_conn observer: raw-socket clients on
 * loopback that each misbehave in one way, and the check that must name
 * them (by application_name), plus a well-behaved client that passes all.
 * The suite wire_checks_proxy runs the very same clients through the fault
 * proxy (proxy.h) in front of the fake, with the proxy's on_conn observer
 * feeding the checks instead: what a target run with server.proxy sees. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgf_test.h"
#include "pgfault/clock.h"
#include "pgfault/proxy.h"
#include "pgfault/server.h"
#include "wire_checks.h"

typedef struct wsrv {
    pgf_server *srv;
    pgf_proxy *px; /* the wire_checks_proxy suite: clients connect here */
    pgf__wire *wire;
    int port;
} wsrv;

static bool via_proxy; /* set by the suite's init */

static int init_proxy_suite(void)
{
    via_proxy = true;
    return 0;
}

static int clean_proxy_suite(void)
{
    via_proxy = false;
    return 0;
}

/* The proxy in front of the fake server: the proxy observes, the fake
 * does not (so only the proxy's notes reach the checks). */
static bool proxy_start(wsrv *w, char *err, size_t errlen)
{
    static const char *const listen[] = {"127.0.0.1:0"};
    char up[64];
    snprintf(up, sizeof up, "127.0.0.1:%d", pgf_server_port(w->srv));
    pgf_proxy_config pc = {0};
    pc.listen = listen;
    pc.nlisten = 1;
    pc.upstream = up;
    pc.quiet = true;
    pc.on_conn = pgf__wire_on_conn;
    pc.on_conn_arg = w->wire;
    if (pgf_proxy_new(&pc, NULL, &w->px, err, errlen) != 0 ||
        pgf_proxy_start_thread(w->px, err, errlen) != 0)
        return false;
    w->port = pgf_proxy_port(w->px);
    return true;
}

static bool wsrv_start(wsrv *w)
{
    static const pgf_server_user users[] = {
        {"trustu", "", PGF_AUTH_METHOD_TRUST, false},
        {"scramu", "pw", PGF_AUTH_METHOD_SCRAM, false},
        {"pwu", "right", PGF_AUTH_METHOD_PASSWORD, false},
    };
    static const char *const listen[] = {"127.0.0.1:0"};
    memset(w, 0, sizeof *w);
    w->wire = pgf__wire_new(pgf_now_ns());
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.users = users;
    cfg.nusers = 3;
    cfg.seed = 1;
    cfg.quiet = true;
    if (!via_proxy) {
        cfg.on_conn = pgf__wire_on_conn;
        cfg.on_conn_arg = w->wire;
    }
    char err[256];
    if (w->wire == NULL || pgf_server_new(&cfg, NULL, &w->srv, err, sizeof err) != 0 ||
        pgf_server_start_thread(w->srv, err, sizeof err) != 0)
        return false;
    w->port = pgf_server_port(w->srv);
    return !via_proxy || proxy_start(w, err, sizeof err);
}

static void wsrv_stop(wsrv *w)
{
    pgf_proxy_free(w->px); /* first: it notes its last closes into the wire */
    pgf_server_free(w->srv);
    pgf__wire_free(w->wire);
}

static int raw_connect(const wsrv *w)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)w->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static void send_startup(int fd, const char *user, const char *app)
{
    uint8_t b[256];
    size_t n = 8;
    const char *kv[] = {"user", user, "database", "postgres", "application_name", app};
    for (int i = 0; i < 6; i++) {
        size_t l = strlen(kv[i]) + 1;
        memcpy(b + n, kv[i], l);
        n += l;
    }
    b[n++] = 0;
    put32(b, (uint32_t)n);
    put32(b + 4, 196608);
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
}

/* 'Q' + text into b; returns the length */
static size_t query_msg(uint8_t *b, const char *sql)
{
    size_t l = strlen(sql) + 1;
    b[0] = 'Q';
    put32(b + 1, (uint32_t)(4 + l));
    memcpy(b + 5, sql, l);
    return 5 + l;
}

/* Read backend messages until `count` ReadyForQuery (or a message of type
 * stop_at) arrived, within 5 s. Returns the last ReadyForQuery status, or
 * the stop type, or 0. */
static int read_until(int fd, int count, char stop_at)
{
    uint8_t buf[8192];
    size_t have = 0;
    int got = 0, last = 0;
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(5000);
    while (got < count && pgf_now_ns() < deadline) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(fd, buf + have, sizeof buf - have);
        if (n <= 0)
            return last;
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= 5) {
            uint32_t len = ((uint32_t)buf[off + 1] << 24) | ((uint32_t)buf[off + 2] << 16) |
                           ((uint32_t)buf[off + 3] << 8) | buf[off + 4];
            if (have - off < 1 + len)
                break;
            if (buf[off] == 'Z') {
                got++;
                last = buf[off + 5];
            }
            if (stop_at && buf[off] == (uint8_t)stop_at)
                return stop_at;
            off += 1 + len;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    return last;
}

/* until the observed side (the server, or the proxy's client side) has
 * closed n connections (or 5 s) */
static void wait_closed(const wsrv *w, uint64_t n)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(5000);
    do {
        uint64_t closed;
        if (w->px != NULL) {
            pgf_proxy_stats ps;
            pgf_proxy_get_stats(w->px, &ps);
            closed = ps.accepted - ps.active;
        } else {
            pgf_server_stats st;
            pgf_server_get_stats(w->srv, &st);
            closed = st.closed;
        }
        if (closed >= n)
            return;
        usleep(5000);
    } while (pgf_now_ns() < deadline);
}

static const pgf_target_check *find_check(const pgf_target_result *r, const char *prefix)
{
    for (size_t i = 0; i < r->n; i++)
        if (strncmp(r->checks[i].name, prefix, strlen(prefix)) == 0)
            return &r->checks[i];
    return NULL;
}

static bool witness_has(const pgf_target_check *c, const char *needle)
{
    for (size_t i = 0; c && i < c->nwitness; i++)
        if (strstr(c->witness[i], needle) != NULL)
            return true;
    return false;
}

static size_t failed(const pgf_target_result *r)
{
    size_t k = 0;
    for (size_t i = 0; i < r->n; i++)
        k += !r->checks[i].passed;
    return k;
}

static void test_clean_client_passes(void)
{
    wsrv w;
    CU_ASSERT_FATAL(wsrv_start(&w));
    int fd = raw_connect(&w);
    CU_ASSERT_FATAL(fd >= 0);
    send_startup(fd, "trustu", "good-client");
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'I');
    uint8_t b[64];
    size_t n = query_msg(b, "SELECT 1");
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'I');
    uint8_t x[5] = {'X', 0, 0, 0, 4};
    CU_ASSERT_EQUAL(write(fd, x, 5), 5);
    wait_closed(&w, 1);
    close(fd);
    pgf_target_result r = {0};
    pgf__wire_checks(w.wire, &r, 0, "at the end");
    CU_ASSERT_EQUAL(r.n, 5);
    CU_ASSERT_EQUAL(failed(&r), 0);
    pgf_target_result *rp = malloc(sizeof *rp);
    *rp = r;
    pgf_target_result_free(rp);
    wsrv_stop(&w);
}

static void test_query_before_ready(void)
{
    wsrv w;
    CU_ASSERT_FATAL(wsrv_start(&w));
    int fd = raw_connect(&w);
    CU_ASSERT_FATAL(fd >= 0);
    send_startup(fd, "trustu", "pipeliner");
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'I');
    uint8_t b[128];
    size_t n = query_msg(b, "SELECT 1");
    n += query_msg(b + n, "SELECT 2"); /* one write: the second before the first's Z */
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    CU_ASSERT_EQUAL(read_until(fd, 2, 0), 'I');
    close(fd);
    wait_closed(&w, 1);
    pgf_target_result *r = calloc(1, sizeof *r);
    pgf__wire_checks(w.wire, r, 0, "at the end");
    const pgf_target_check *c = find_check(r, "wire: no Query sent before ReadyForQuery");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->passed);
    CU_ASSERT_STRING_EQUAL(c->kind, "query_before_ready");
    CU_ASSERT_TRUE(witness_has(c, "application_name 'pipeliner'"));
    CU_ASSERT_EQUAL(failed(r), 1);
    pgf_target_result_free(r);
    wsrv_stop(&w);
}

static void test_bytes_after_terminate(void)
{
    wsrv w;
    CU_ASSERT_FATAL(wsrv_start(&w));
    int fd = raw_connect(&w);
    CU_ASSERT_FATAL(fd >= 0);
    send_startup(fd, "trustu", "chatty");
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'I');
    uint8_t b[64] = {'X', 0, 0, 0, 4};
    size_t n = 5 + query_msg(b + 5, "SELECT 1");
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    wait_closed(&w, 1);
    close(fd);
    pgf_target_result *r = calloc(1, sizeof *r);
    pgf__wire_checks(w.wire, r, 0, "at the end");
    const pgf_target_check *c = find_check(r, "wire: nothing sent after Terminate");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->passed);
    CU_ASSERT_TRUE(witness_has(c, "application_name 'chatty'"));
    CU_ASSERT_EQUAL(failed(r), 1);
    pgf_target_result_free(r);
    wsrv_stop(&w);
}

static void test_idle_in_transaction_and_abandoned_startup(void)
{
    wsrv w;
    CU_ASSERT_FATAL(wsrv_start(&w));
    int fd = raw_connect(&w);
    CU_ASSERT_FATAL(fd >= 0);
    send_startup(fd, "trustu", "forgot-rollback");
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'I');
    uint8_t b[64];
    size_t n = query_msg(b, "BEGIN");
    CU_ASSERT_EQUAL(write(fd, b, n), (ssize_t)n);
    CU_ASSERT_EQUAL(read_until(fd, 1, 0), 'T');
    /* a client that starts SCRAM and walks away without closing */
    int fd2 = raw_connect(&w);
    CU_ASSERT_FATAL(fd2 >= 0);
    send_startup(fd2, "scramu", "walked-away");
    CU_ASSERT_EQUAL(read_until(fd2, 1, 'R'), 'R');
    pgf_target_result *r = calloc(1, sizeof *r);
    pgf__wire_checks(w.wire, r, 0, "at the end");
    const pgf_target_check *c = find_check(r, "wire: no connection left idle in transaction");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->passed);
    CU_ASSERT_TRUE(witness_has(c, "application_name 'forgot-rollback'"));
    c = find_check(r, "wire: no connection abandoned mid-startup");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->passed);
    CU_ASSERT_TRUE(witness_has(c, "application_name 'walked-away'"));
    CU_ASSERT_FALSE(witness_has(c, "forgot-rollback"));
    c = find_check(r, "no server connection left open beyond the idle floor (0)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_FALSE(c->passed);
    CU_ASSERT_EQUAL(c->nwitness, 2);
    CU_ASSERT_EQUAL(failed(r), 3);
    pgf_target_result_free(r);
    /* the same two connections are within a floor of 2 */
    pgf__wire *again = w.wire;
    pgf_target_result *r2 = calloc(1, sizeof *r2);
    pgf__wire_checks(again, r2, 2, "at the end");
    c = find_check(r2, "no server connection left open beyond the idle floor (2)");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_TRUE(c->passed);
    pgf_target_result_free(r2);
    close(fd);
    close(fd2);
    wsrv_stop(&w);
}

/* A refused login (28P01 for a wrong cleartext password) and a good one:
 * the login counts the login-storm check samples (through the proxy: the
 * upstream's ErrorResponse before AuthenticationOk, and its R 0). */
static void test_login_refused_counted(void)
{
    wsrv w;
    CU_ASSERT_FATAL(wsrv_start(&w));
    static const char *const pws[] = {"wrong", "right"};
    for (int i = 0; i < 2; i++) {
        int fd = raw_connect(&w);
        CU_ASSERT_FATAL(fd >= 0);
        send_startup(fd, "pwu", i == 0 ? "bad-password" : "good-password");
        CU_ASSERT_EQUAL(read_until(fd, 1, 'R'), 'R');
        uint8_t b[64];
        size_t l = strlen(pws[i]) + 1;
        b[0] = 'p';
        put32(b + 1, (uint32_t)(4 + l));
        memcpy(b + 5, pws[i], l);
        CU_ASSERT_EQUAL(write(fd, b, 5 + l), (ssize_t)(5 + l));
        CU_ASSERT_EQUAL(read_until(fd, 1, i == 0 ? 'E' : 0), i == 0 ? 'E' : 'I');
        close(fd);
        wait_closed(&w, (uint64_t)i + 1);
    }
    uint64_t logins = 0, refused = 0;
    pgf__wire_login_counts(w.wire, &logins, &refused);
    CU_ASSERT_EQUAL(logins, 2);
    CU_ASSERT_EQUAL(refused, 1);
    wsrv_stop(&w);
}

static const pgf_test wire_tests[] = {
    {"clean_client_passes", test_clean_client_passes},
    {"query_before_ready", test_query_before_ready},
    {"bytes_after_terminate", test_bytes_after_terminate},
    {"idle_in_transaction_and_abandoned_startup", test_idle_in_transaction_and_abandoned_startup},
    {"login_refused_counted", test_login_refused_counted},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_wire[] = {
    {"wire_checks", NULL, NULL, wire_tests},
    {"wire_checks_proxy", init_proxy_suite, clean_proxy_suite, wire_tests},
    PGF_SUITES_END,
};
