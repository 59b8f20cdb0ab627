/* fault_live.h - a fake server with a fault engine, in-process on its own
 * thread, and bounded libpq / raw-socket clients for it. Shared by
 * test_fault_actions.c and test_fault_classify.c (header-only statics so
 * each test file stays one translation unit; not a library).
 *
 * Every wait has a deadline; nothing asserts an upper bound on time.
 * Listeners: 127.0.0.1:0 and a private temp unix-socket directory.
 */
#ifndef PGF_TEST_FAULT_LIVE_H
#define PGF_TEST_FAULT_LIVE_H

#include <errno.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pgfault/buf.h"
#include "pgfault/clock.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgf_test.h"
#include "pgfault/proto.h"
#include "pgfault/rules.h"
#include "pgfault/server.h"
#include "testutil.h"

#define FL_DEADLINE_MS 5000

/* Each test file uses a subset of these helpers. */
#define FL_FN static __attribute__((unused))

/* libpq's text for EOF (and for ECONNRESET) on a connection: docs/postgres15-facts.md §5. */
#define FL_CLOSED_TEXT                                                                        \
    "server closed the connection unexpectedly\n\tThis probably means the server terminated " \
    "abnormally\n\tbefore or while processing the request.\n"

typedef struct fl_srv {
    pgf_server *srv;
    pgf_fault_engine *eng;
    char *dir;
    int port;
} fl_srv;

/* alice: SCRAM (first user: unknown roles get SCRAM), bob: cleartext
 * password, trusty: trust. */
static const pgf_server_user fl_users[] = {
    {"alice", "secret", PGF_AUTH_METHOD_SCRAM, false},
    {"bob", "bobpw", PGF_AUTH_METHOD_PASSWORD, false},
    {"trusty", "", PGF_AUTH_METHOD_TRUST, false},
};

/* Parse `yaml` into a fresh engine (seed) and start a server on its own
 * thread. Returns false (after a CU failure) on any error. */
FL_FN bool fl_start(fl_srv *t, const char *yaml, uint64_t seed)
{
    memset(t, 0, sizeof *t);
    char err[512];
    t->eng = pgf_fault_engine_new(seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->eng);
    if (yaml != NULL) {
        pgf_fault_rules *r =
            pgf_fault_rules_parse_yaml(yaml, strlen(yaml), "<test>", err, sizeof err);
        if (r == NULL)
            fprintf(stderr, "\n  rules: %s\n", err);
        CU_ASSERT_PTR_NOT_NULL_FATAL(r);
        pgf_fault_engine_set_rules(t->eng, r);
    }
    t->dir = pgf_t_mkdtemp("faults");
    CU_ASSERT_PTR_NOT_NULL_FATAL(t->dir);
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.unix_socket_dir = t->dir;
    cfg.users = fl_users;
    cfg.nusers = (int)(sizeof fl_users / sizeof fl_users[0]);
    cfg.seed = seed;
    cfg.quiet = true;
    cfg.faults = t->eng;
    if (pgf_server_new(&cfg, NULL, &t->srv, err, sizeof err) != 0 ||
        pgf_server_start_thread(t->srv, err, sizeof err) != 0) {
        fprintf(stderr, "\n  server: %s\n", err);
        CU_FAIL_FATAL("server start");
    }
    t->port = pgf_server_port(t->srv);
    return true;
}

FL_FN void fl_stop(fl_srv *t)
{
    pgf_server_free(t->srv);
    pgf_fault_engine_free(t->eng);
    if (t->dir != NULL) {
        pgf_t_rmtree(t->dir);
        free(t->dir);
    }
    memset(t, 0, sizeof *t);
}

FL_FN int fl_remaining_ms(uint64_t deadline)
{
    uint64_t now = pgf_now_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

/* 'connection to server at "127.0.0.1", port N failed: ' */
FL_FN void fl_prefix(const fl_srv *t, char *buf, size_t len)
{
    snprintf(buf, len, "connection to server at \"127.0.0.1\", port %d failed: ", t->port);
}

/* The fault log without elapsed_ns (real-time runs differ only there). */
FL_FN char *fl_log_untimed(pgf_fault_engine *e)
{
    char *s = pgf_fault_log_lines(e, 0);
    if (s == NULL)
        return NULL;
    char *w = s;
    for (const char *r = s; *r;) {
        if (strncmp(r, "\"elapsed_ns\":", 13) == 0) {
            /* and what follows it up to "conn": wall_time and the client
             * address, which the untimed stream leaves out too */
            const char *conn = strstr(r, "\"conn\":");
            r = conn != NULL ? conn : r + 13;
            continue;
        }
        *w++ = *r++;
    }
    *w = '\0';
    return s;
}

/* ------------------------------------------------------------------ */
/* libpq with deadlines                                                */

/* A notice receiver installed on the next connections before they connect
 * (notices can arrive in the same read as ReadyForQuery). */
static PQnoticeReceiver fl_notice_rx;
static void *fl_notice_arg;

/* libpq 15's async API, after it saw EOF in PQconsumeInput, appends
 * "invalid socket\n" when PQgetResult then waits on the dropped socket
 * (PQexec, which reads inside PQgetResult, does not: docs/postgres15-facts.md §5 texts).
 * Strip that tail so the texts compare to the documented ones. */
FL_FN void fl_strip_async_tail(char *s)
{
    static const char tail[] = "invalid socket\n";
    size_t n = strlen(s), t = sizeof tail - 1;
    if (n >= t && strcmp(s + n - t, tail) == 0)
        s[n - t] = '\0';
}

typedef struct fl_conn {
    PGconn *c;
    bool timed_out;      /* our own deadline ended the connect */
    ConnStatusType last; /* the last status before OK/BAD: where it failed */
    uint64_t elapsed_ns; /* from PQconnectStartParams to the end */
} fl_conn;

/* Async connect over TCP, sslmode=disable, bounded by deadline_ms.
 * Always leaves a PGconn in o->c (caller PQfinish()es it). */
FL_FN void fl_connect(const fl_srv *t, const char *user, const char *password, const char *app,
                      int deadline_ms, fl_conn *o)
{
    memset(o, 0, sizeof *o);
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    const char *keys[] = {"host",   "port",       "user",    "password",
                          "dbname", "gssencmode", "sslmode", "application_name",
                          NULL};
    const char *vals[] = {"127.0.0.1", port,      user,      password ? password : "",
                          "appdb",     "disable", "disable", app ? app : "fault_test",
                          NULL};
    uint64_t t0 = pgf_now_ns();
    uint64_t deadline = t0 + PGF_MS_NS(deadline_ms);
    o->c = PQconnectStartParams(keys, vals, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(o->c);
    if (fl_notice_rx != NULL)
        PQsetNoticeReceiver(o->c, fl_notice_rx, fl_notice_arg);
    o->last = PQstatus(o->c);
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(o->c) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
           st != PGRES_POLLING_FAILED) {
        struct pollfd p = {PQsocket(o->c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        int ms = fl_remaining_ms(deadline);
        if (ms == 0) {
            o->timed_out = true;
            break;
        }
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            break;
        if (p.revents == 0)
            continue;
        ConnStatusType before = PQstatus(o->c);
        st = PQconnectPoll(o->c);
        if (PQstatus(o->c) != CONNECTION_BAD && PQstatus(o->c) != CONNECTION_OK)
            o->last = PQstatus(o->c);
        else
            o->last = before;
    }
    o->elapsed_ns = pgf_now_ns() - t0;
}

FL_FN bool fl_connect_ok(const fl_srv *t, const char *user, const char *password, const char *app,
                         fl_conn *o)
{
    fl_connect(t, user, password, app, FL_DEADLINE_MS, o);
    if (PQstatus(o->c) != CONNECTION_OK) {
        fprintf(stderr, "\n  connect as %s: %s%s\n", user, PQerrorMessage(o->c),
                o->timed_out ? " (deadline)" : "");
        return false;
    }
    return true;
}

typedef struct fl_query {
    bool send_failed;
    bool timed_out;
    int nresults;
    ExecStatusType status; /* of the first error result, else of the last result */
    char sqlstate[6];      /* of the first error result */
    char errmsg[512];      /* PQresultErrorMessage of the first error result */
    char value[64];        /* first value of the last tuples result */
    int ntuples;
    uint64_t elapsed_ns;
} fl_query;

/* PQsendQuery + results until NULL or the deadline. */
FL_FN void fl_exec(PGconn *c, const char *sql, int deadline_ms, fl_query *q)
{
    memset(q, 0, sizeof *q);
    q->status = PGRES_EMPTY_QUERY;
    uint64_t t0 = pgf_now_ns();
    uint64_t deadline = t0 + PGF_MS_NS(deadline_ms);
    if (!PQsendQuery(c, sql)) {
        q->send_failed = true;
        q->status = PGRES_FATAL_ERROR;
        snprintf(q->errmsg, sizeof q->errmsg, "%s", PQerrorMessage(c));
        return;
    }
    bool got_error = false;
    for (;;) {
        while (PQisBusy(c)) {
            struct pollfd p = {PQsocket(c), POLLIN, 0};
            int ms = fl_remaining_ms(deadline);
            if (ms == 0 || p.fd < 0) {
                q->timed_out = ms == 0;
                q->elapsed_ns = pgf_now_ns() - t0;
                return;
            }
            poll(&p, 1, ms);
            if (!PQconsumeInput(c) && PQstatus(c) == CONNECTION_BAD)
                break;
        }
        PGresult *r = PQgetResult(c);
        if (r == NULL)
            break;
        q->nresults++;
        ExecStatusType s = PQresultStatus(r);
        if (s == PGRES_FATAL_ERROR && !got_error) {
            got_error = true;
            q->status = s;
            const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            snprintf(q->sqlstate, sizeof q->sqlstate, "%s", ss ? ss : "");
            snprintf(q->errmsg, sizeof q->errmsg, "%s", PQresultErrorMessage(r));
            fl_strip_async_tail(q->errmsg);
        } else if (!got_error) {
            q->status = s;
        }
        if (s == PGRES_TUPLES_OK) {
            q->ntuples = PQntuples(r);
            if (q->ntuples > 0)
                snprintf(q->value, sizeof q->value, "%s", PQgetvalue(r, 0, 0));
        }
        PQclear(r);
        if (PQstatus(c) == CONNECTION_BAD && !PQisBusy(c)) {
            /* drain what libpq still has, without blocking */
            continue;
        }
    }
    q->elapsed_ns = pgf_now_ns() - t0;
}

FL_FN bool fl_select1(PGconn *c)
{
    fl_query q;
    fl_exec(c, "SELECT 1", FL_DEADLINE_MS, &q);
    bool ok = q.status == PGRES_TUPLES_OK && strcmp(q.value, "1") == 0;
    if (!ok)
        fprintf(stderr, "\n  SELECT 1: %s %s\n", PQresStatus(q.status), q.errmsg);
    return ok;
}

/* ------------------------------------------------------------------ */
/* raw sockets                                                         */

typedef struct fl_raw {
    int fd;
    uint8_t buf[65536];
    size_t len;
    int end_errno; /* after fl_raw_read_to_end: 0 = EOF (FIN), else recv's errno */
} fl_raw;

FL_FN bool fl_raw_open(fl_raw *r, const fl_srv *t)
{
    memset(r, 0, sizeof *r);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)t->port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    if (r->fd >= 0 && connect(r->fd, (struct sockaddr *)&a, sizeof a) == 0) {
        int one = 1;
        setsockopt(r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return true;
    }
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    CU_FAIL("raw connect");
    return false;
}

FL_FN void fl_raw_close(fl_raw *r)
{
    if (r->fd >= 0)
        close(r->fd);
    r->fd = -1;
}

FL_FN void fl_raw_send(fl_raw *r, const void *p, size_t n)
{
    CU_ASSERT_EQUAL(send(r->fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Read until EOF, an error, or the deadline; the bytes stay in r->buf.
 * Returns 1 at EOF/error (r->end_errno says which), -1 at the deadline. */
FL_FN int fl_raw_read_to_end(fl_raw *r, int deadline_ms)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(deadline_ms);
    for (;;) {
        struct pollfd p = {r->fd, POLLIN, 0};
        int ms = fl_remaining_ms(deadline);
        if (ms == 0 || poll(&p, 1, ms) <= 0)
            return -1;
        if (r->len == sizeof r->buf)
            return -1;
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (n > 0) {
            r->len += (size_t)n;
            continue;
        }
        r->end_errno = n == 0 ? 0 : errno;
        return 1;
    }
}

/* Read until buf holds at least one complete message at offset `off`;
 * returns its total length (type + length word + body), 0 at EOF/deadline. */
FL_FN size_t fl_raw_msg_at(fl_raw *r, size_t off)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(FL_DEADLINE_MS);
    for (;;) {
        if (r->len >= off + 5) {
            uint32_t l = pgf_rd_be32(r->buf + off + 1);
            if (l >= 4 && r->len >= off + 1 + (size_t)l)
                return 1 + (size_t)l;
        }
        struct pollfd p = {r->fd, POLLIN, 0};
        int ms = fl_remaining_ms(deadline);
        if (ms == 0 || poll(&p, 1, ms) <= 0 || r->len == sizeof r->buf)
            return 0;
        ssize_t n = recv(r->fd, r->buf + r->len, sizeof r->buf - r->len, 0);
        if (n <= 0)
            return 0;
        r->len += (size_t)n;
    }
}

/* Drop the first n bytes of the buffer. */
FL_FN void fl_raw_consume(fl_raw *r, size_t n)
{
    memmove(r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

FL_FN void fl_raw_startup(fl_raw *r, const char *user)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_be32(&b, 0);
    pgf_buf_put_be32(&b, PGF_PROTO_V3);
    pgf_buf_put_cstr(&b, "user");
    pgf_buf_put_cstr(&b, user);
    pgf_buf_put_cstr(&b, "database");
    pgf_buf_put_cstr(&b, "appdb");
    pgf_buf_put_u8(&b, 0);
    pgf_buf_patch_be32(&b, 0, (uint32_t)b.len);
    fl_raw_send(r, b.data, b.len);
    pgf_buf_free(&b);
}

FL_FN void fl_raw_typed(fl_raw *r, uint8_t type, const void *body, size_t len)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_u8(&b, type);
    pgf_buf_put_be32(&b, (uint32_t)(len + 4));
    pgf_buf_put(&b, body, len);
    fl_raw_send(r, b.data, b.len);
    pgf_buf_free(&b);
}

/* Trust login: consume everything through ReadyForQuery. */
FL_FN bool fl_raw_login(fl_raw *r, const fl_srv *t, const char *user)
{
    if (!fl_raw_open(r, t))
        return false;
    fl_raw_startup(r, user);
    for (;;) {
        size_t n = fl_raw_msg_at(r, 0);
        if (n == 0)
            return false;
        uint8_t type = r->buf[0];
        fl_raw_consume(r, n);
        if (type == 'E')
            return false;
        if (type == 'Z')
            return true;
    }
}

#endif
