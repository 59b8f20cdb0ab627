/* test_session_fixture.c - see test_session_fixture.h. The scripted server
 * speaks just enough of the v3 protocol (bytes as in
 * data/transcripts/a_trust_simple_query.hex) to drive libpq to each
 * connect sub-phase; it is not the project's fake server. */
#include "test_session_fixture.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pgfault/buf.h"
#include "pgfault/clock.h"
#include "pgfault/healthcheck.h"
#include "pgf_test.h"
#include "testutil.h"

/* ---- scripted server ---- */

struct fx_server {
    fx_mode mode;
    struct event_base *base;
    struct evconnlistener *lis;
    pthread_t thread;
    int port;
    atomic_long accepted;
    struct fx_conn *conns; /* server thread only (and fx_stop after the join) */
};

struct fx_conn {
    fx_server *srv;
    struct bufferevent *bev;
    struct fx_conn *prev, *next; /* srv->conns: freed at stop */
    bool started;
    int queries;
};

static void put_msg(struct evbuffer *out, char type, const pgf_buf *body)
{
    uint8_t hdr[5] = {(uint8_t)type};
    uint32_t len = htonl((uint32_t)(body->len + 4));
    memcpy(hdr + 1, &len, 4);
    evbuffer_add(out, hdr, 5);
    evbuffer_add(out, body->data, body->len);
}

static void put_error(struct evbuffer *out, const char *code, const char *msg)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_u8(&b, 'S'), pgf_buf_put_cstr(&b, "FATAL");
    pgf_buf_put_u8(&b, 'V'), pgf_buf_put_cstr(&b, "FATAL");
    pgf_buf_put_u8(&b, 'C'), pgf_buf_put_cstr(&b, code);
    pgf_buf_put_u8(&b, 'M'), pgf_buf_put_cstr(&b, msg);
    pgf_buf_put_u8(&b, 0);
    put_msg(out, 'E', &b);
    pgf_buf_free(&b);
}

static void put_auth_ok(struct evbuffer *out)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_be32(&b, 0);
    put_msg(out, 'R', &b);
    pgf_buf_free(&b);
}

static void put_ready_params(struct evbuffer *out)
{
    static const char *const ps[][2] = {
        {"client_encoding", "UTF8"},
        {"server_version", "15.18 (Debian 15.18-0+deb12u1)"},
        {"standard_conforming_strings", "on"},
    };
    pgf_buf b = PGF_BUF_INIT;
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        pgf_buf_reset(&b);
        pgf_buf_put_cstr(&b, ps[i][0]);
        pgf_buf_put_cstr(&b, ps[i][1]);
        put_msg(out, 'S', &b);
    }
    pgf_buf_reset(&b);
    pgf_buf_put_be32(&b, 4242);
    pgf_buf_put_be32(&b, 0x5eC2e7);
    put_msg(out, 'K', &b);
    pgf_buf_reset(&b);
    pgf_buf_put_u8(&b, 'I');
    put_msg(out, 'Z', &b);
    pgf_buf_free(&b);
}

static void put_select1(struct evbuffer *out)
{
    /* T, D, C, Z exactly as PostgreSQL 15 answers SELECT 1 */
    static const uint8_t t[] = {0x54, 0,    0,    0,    0x21, 0, 1, '?', 'c', 'o',
                                'l',  'u',  'm',  'n',  '?',  0, 0, 0,   0,   0, /* table oid */
                                0,    0,                                         /* attnum */
                                0,    0,    0,    0x17,                          /* int4 */
                                0,    4,                                         /* typlen */
                                0xff, 0xff, 0xff, 0xff, 0,    0};
    static const uint8_t d[] = {0x44, 0, 0, 0, 0x0b, 0, 1, 0, 0, 0, 1, '1'};
    static const uint8_t c[] = {0x43, 0, 0, 0, 0x0d, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0};
    static const uint8_t z[] = {0x5a, 0, 0, 0, 5, 'I'};
    evbuffer_add(out, t, sizeof t);
    evbuffer_add(out, d, sizeof d);
    evbuffer_add(out, c, sizeof c);
    evbuffer_add(out, z, sizeof z);
}

static void conn_free(struct bufferevent *bev, struct fx_conn *c)
{
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    bufferevent_free(bev);
    free(c);
}

static void conn_event(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        conn_free(bev, arg);
}

static void close_when_flushed(struct bufferevent *bev, void *arg)
{
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        conn_free(bev, arg);
}

static void conn_read(struct bufferevent *bev, void *arg)
{
    struct fx_conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
    fx_mode mode = c->srv->mode;
    for (;;) {
        if (mode == FX_SILENT || (mode == FX_AUTHOK_STALL && c->started)) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        uint8_t h[8];
        if (!c->started) {
            if (evbuffer_copyout(in, h, 8) < 8)
                return;
            uint32_t len = pgf_rd_be32(h), code = pgf_rd_be32(h + 4);
            if (evbuffer_get_length(in) < len)
                return;
            evbuffer_drain(in, len);
            if (code == 80877103 || code == 80877104) { /* SSL/GSSENC request: no */
                evbuffer_add(out, "N", 1);
                continue;
            }
            if (code == 80877102) { /* CancelRequest: nothing to cancel here */
                conn_free(bev, c);
                return;
            }
            c->started = true;
            if (mode == FX_AUTH_FAIL || mode == FX_TOO_MANY) {
                if (mode == FX_AUTH_FAIL)
                    put_error(out, "28P01", "password authentication failed for user \"u\"");
                else
                    put_error(out, "53300", "sorry, too many clients already");
                bufferevent_setcb(bev, NULL, close_when_flushed, conn_event, c);
                return;
            }
            put_auth_ok(out);
            if (mode == FX_AUTHOK_STALL)
                return;
            put_ready_params(out);
            continue;
        }
        if (evbuffer_copyout(in, h, 5) < 5)
            return;
        uint32_t len = pgf_rd_be32(h + 1);
        if (evbuffer_get_length(in) < len + 1)
            return;
        evbuffer_drain(in, len + 1);
        if (h[0] == 'X') {
            conn_free(bev, c);
            return;
        }
        if (h[0] == 'Q') {
            c->queries++;
            if (mode == FX_QUERY_STALL)
                continue;
            put_select1(out);
            if (mode == FX_CLOSE_AFTER_QUERY) {
                bufferevent_setcb(bev, NULL, close_when_flushed, conn_event, c);
                return;
            }
        }
    }
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int n,
                      void *arg)
{
    fx_server *f = arg;
    atomic_fetch_add(&f->accepted, 1);
    if (f->mode == FX_CLOSE) {
        close(fd);
        return;
    }
    struct bufferevent *bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct fx_conn *c = calloc(1, sizeof *c);
    c->srv = f;
    c->bev = bev;
    c->next = f->conns;
    if (f->conns != NULL)
        f->conns->prev = c;
    f->conns = c;
    bufferevent_setcb(bev, conn_read, NULL, conn_event, c);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

static void *fx_thread(void *arg)
{
    fx_server *f = arg;
    event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

fx_server *fx_start(fx_mode mode)
{
    fx_server *f = calloc(1, sizeof *f);
    f->mode = mode;
    f->base = pgf_session_base_new();
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    f->lis =
        evconnlistener_new_bind(f->base, on_accept, f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                16, (struct sockaddr *)&sin, sizeof sin);
    if (f->lis == NULL) {
        event_base_free(f->base);
        free(f);
        return NULL;
    }
    socklen_t sl = sizeof sin;
    getsockname(evconnlistener_get_fd(f->lis), (struct sockaddr *)&sin, &sl);
    f->port = ntohs(sin.sin_port);
    pthread_create(&f->thread, NULL, fx_thread, f);
    return f;
}

int fx_port(const fx_server *f)
{
    return f->port;
}

long fx_accepted(fx_server *f)
{
    return atomic_load(&f->accepted);
}

static void free_bev(struct bufferevent *bev, void *arg)
{
    (void)arg;
}

/* Runs on the fixture's own thread, inside its loop. */
static void stop_in_loop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    event_base_loopbreak(arg);
}

void fx_stop(fx_server *f)
{
    if (f == NULL)
        return;
    /* Not event_base_loopbreak() from here: event_base_loop() clears the
     * break flag when it starts, so a stop that comes before the thread has
     * entered its loop (a test that never needed the server, on a loaded
     * machine) was lost and the join below hung (session_live timed out in
     * CI). A zero timeout queued on the base runs once the loop runs. */
    struct timeval now = {0, 0};
    if (event_base_once(f->base, -1, EV_TIMEOUT, stop_in_loop, f->base, &now) != 0)
        event_base_loopbreak(f->base);
    pthread_join(f->thread, NULL);
    evconnlistener_free(f->lis);
    (void)free_bev;
    while (f->conns != NULL)
        conn_free(f->conns->bev, f->conns);
    event_base_free(f->base);
    free(f);
}

/* ---- plain sockets ---- */

int fx_blackhole_start(fx_blackhole *b)
{
    memset(b, 0, sizeof *b);
    b->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (bind(b->listen_fd, (struct sockaddr *)&sin, sizeof sin) != 0 ||
        listen(b->listen_fd, 0) != 0 ||
        getsockname(b->listen_fd, (struct sockaddr *)&sin, &sl) != 0) {
        close(b->listen_fd);
        return -1;
    }
    b->port = ntohs(sin.sin_port);
    /* Fill the accept queue; further SYNs are dropped and connects hang. */
    for (int i = 0; i < 4; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fd, (struct sockaddr *)&sin, sizeof sin);
        b->fillers[b->nfillers++] = fd;
    }
    return 0;
}

void fx_blackhole_stop(fx_blackhole *b)
{
    for (int i = 0; i < b->nfillers; i++)
        close(b->fillers[i]);
    close(b->listen_fd);
}

int fx_refused_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sin = {0};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    bind(fd, (struct sockaddr *)&sin, sizeof sin);
    getsockname(fd, (struct sockaddr *)&sin, &sl);
    close(fd);
    return ntohs(sin.sin_port);
}

/* ---- recorder ---- */

void fx_recorder_init(fx_recorder *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
}

void fx_recorder_destroy(fx_recorder *r)
{
    pthread_mutex_destroy(&r->mu);
}

void fx_record(const pgf_session_event *ev, void *arg)
{
    fx_recorder *r = arg;
    pthread_mutex_lock(&r->mu);
    if (r->n < (int)(sizeof r->ev / sizeof r->ev[0])) {
        fx_event *e = &r->ev[r->n++];
        e->kind = ev->kind;
        e->seq = ev->seq;
        e->session_id = ev->session_id;
        e->op_id = ev->op_id;
        e->op = ev->op;
        e->from = ev->from;
        e->to = ev->to;
        e->err = ev->err;
        e->reason = ev->health != NULL ? (int)ev->health->reason : -1;
    }
    pthread_mutex_unlock(&r->mu);
}

void fx_transitions(fx_recorder *r, char *buf, size_t len)
{
    pthread_mutex_lock(&r->mu);
    size_t o = 0;
    buf[0] = '\0';
    for (int i = 0; i < r->n && o < len; i++)
        if (r->ev[i].kind == PGF_SEV_TRANSITION)
            o += (size_t)snprintf(buf + o, len - o, "%s%s>%s", o ? " " : "",
                                  pgf_session_state_name(r->ev[i].from),
                                  pgf_session_state_name(r->ev[i].to));
    pthread_mutex_unlock(&r->mu);
}

int fx_count(fx_recorder *r, pgf_session_event_kind kind, pgf_sess_op op)
{
    pthread_mutex_lock(&r->mu);
    int n = 0;
    for (int i = 0; i < r->n; i++)
        n += r->ev[i].kind == kind && r->ev[i].op == op;
    pthread_mutex_unlock(&r->mu);
    return n;
}

void fx_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    fx_calls *c = arg;
    c->n++;
    c->err = err;
    c->op = op;
    if (h != NULL)
        c->h = *h;
}

/* ---- loop helpers ---- */

static bool run_until(struct event_base *b, bool (*done)(void *), void *arg, unsigned timeout_ms)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(timeout_ms);
    while (!done(arg)) {
        if (pgf_now_ns() >= deadline)
            return false;
        struct timeval tv = {0, 20000};
        event_base_loopexit(b, &tv);
        event_base_loop(b, 0);
    }
    return true;
}

struct st_arg {
    pgf_session *s;
    int st;
};

static bool st_done(void *arg)
{
    struct st_arg *a = arg;
    return (int)pgf_session_state(a->s) == a->st;
}

bool fx_run_until_state(struct event_base *b, pgf_session *s, int st, unsigned timeout_ms)
{
    struct st_arg a = {s, st};
    return run_until(b, st_done, &a, timeout_ms);
}

struct calls_arg {
    const fx_calls *c;
    int n;
};

static bool calls_done(void *arg)
{
    struct calls_arg *a = arg;
    return a->c->n >= a->n;
}

bool fx_run_until_calls(struct event_base *b, const fx_calls *c, int n, unsigned timeout_ms)
{
    struct calls_arg a = {c, n};
    return run_until(b, calls_done, &a, timeout_ms);
}

int fx_fd_count(void)
{
    DIR *d = opendir("/proc/self/fd");
    int n = 0;
    if (d == NULL)
        return -1;
    while (readdir(d) != NULL)
        n++;
    closedir(d);
    return n;
}

bool fx_wait_cancel_threads(unsigned timeout_ms)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(timeout_ms);
    for (;;) {
        pgf_session_counters c;
        pgf_session_counters_get(&c);
        if (c.cancel_threads == 0)
            return true;
        if (pgf_now_ns() >= deadline)
            return false;
        usleep(2000);
    }
}

void fx_conninfo_tcp(fx_conninfo *ci, int port, const char *user, const char *password,
                     const char *db, const char *sslmode)
{
    int n = 0;
    snprintf(ci->port, sizeof ci->port, "%d", port);
    ci->kw[n] = "host", ci->val[n++] = "127.0.0.1";
    ci->kw[n] = "port", ci->val[n++] = ci->port;
    ci->kw[n] = "user", ci->val[n++] = user != NULL ? user : "u";
    ci->kw[n] = "dbname", ci->val[n++] = db != NULL ? db : "postgres";
    ci->kw[n] = "sslmode", ci->val[n++] = sslmode != NULL ? sslmode : "disable";
    ci->kw[n] = "gssencmode", ci->val[n++] = "disable";
    if (password != NULL)
        ci->kw[n] = "password", ci->val[n++] = password;
    ci->kw[n] = NULL, ci->val[n] = NULL;
}

/* ---- real PostgreSQL ---- */

#define PGBIN "/usr/lib/postgresql/15/bin/"

static int run_as_postgres(const char *cmd)
{
    char full[8192];
    snprintf(full, sizeof full, "runuser -u postgres -- sh -c '%s' >/dev/null 2>&1", cmd);
    int st = system(full);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int fx_pg_start(fx_pg *pg)
{
    memset(pg, 0, sizeof *pg);
    if (access(PGBIN "initdb", X_OK) != 0)
        return -1;
    pg->dir = pgf_t_mkdtemp("sessionpg");
    if (pg->dir == NULL)
        return -1;
    char cmd[3072];
    snprintf(cmd, sizeof cmd, "chown postgres %s", pg->dir);
    if (system(cmd) != 0)
        goto fail;
    snprintf(cmd, sizeof cmd,
             PGBIN "initdb -D %s/data -A trust -U postgres -E UTF8 --locale=C.UTF-8 --no-sync",
             pg->dir);
    if (run_as_postgres(cmd) != 0)
        goto fail;
    snprintf(cmd, sizeof cmd, "%s/data/pg_hba.conf", pg->dir);
    FILE *f = fopen(cmd, "w");
    if (f == NULL)
        goto fail;
    fprintf(f, "local all all trust\n"
               "host all u_scram 127.0.0.1/32 scram-sha-256\n"
               "host all all 127.0.0.1/32 trust\n");
    fclose(f);
    pg->port = fx_refused_port();
    snprintf(cmd, sizeof cmd,
             PGBIN "pg_ctl -D %s/data -l %s/log -w -t 60 -o \"-p %d -k %s "
                   "-c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=20\" start",
             pg->dir, pg->dir, pg->port, pg->dir);
    if (run_as_postgres(cmd) != 0)
        goto fail;
    pg->running = true;
    if (fx_pg_sql(pg, "CREATE ROLE u_trust LOGIN; CREATE ROLE u_scram LOGIN PASSWORD "
                      "'pw_scram'; CREATE ROLE u_limited LOGIN CONNECTION LIMIT 0;") != 0)
        goto fail;
    return 0;
fail:
    fx_pg_stop(pg);
    return -1;
}

int fx_pg_sql(const fx_pg *pg, const char *sql)
{
    /* SQL goes through a file: no shell quoting of the statement. */
    char path[1024], cmd[4096];
    snprintf(path, sizeof path, "%s/stmt.sql", pg->dir);
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return -1;
    fputs(sql, f);
    fclose(f);
    chmod(path, 0644);
    snprintf(cmd, sizeof cmd,
             "/usr/bin/psql -X -q -v ON_ERROR_STOP=1 -h %s -p %d -U postgres -d postgres -f %s",
             pg->dir, pg->port, path);
    return run_as_postgres(cmd);
}

void fx_pg_stop(fx_pg *pg)
{
    if (pg->running) {
        char cmd[1024];
        snprintf(cmd, sizeof cmd, PGBIN "pg_ctl -D %s/data -m immediate -w -t 30 stop", pg->dir);
        run_as_postgres(cmd);
        pg->running = false;
    }
    if (pg->dir != NULL) {
        pgf_t_rmtree(pg->dir);
        free(pg->dir);
        pg->dir = NULL;
    }
}

/* ---- the fixture's own check ---- */

static void fixture_server_answers_select1(void)
{
    fx_server *f = fx_start(FX_TRUST);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fx_conninfo ci;
    fx_conninfo_tcp(&ci, fx_port(f), "u", NULL, "db", NULL);
    pgf_health h;
    CU_ASSERT_EQUAL(pgf_health_check(ci.kw, ci.val, NULL, 5000, &h), 0);
    CU_ASSERT_TRUE(h.healthy);
    fx_stop(f);
}

static const pgf_test fixture_tests[] = {
    {"scripted_server_answers_select1", fixture_server_answers_select1},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_session_fixture[] = {
    {"session_fixture", NULL, NULL, fixture_tests},
    PGF_SUITES_END,
};
