/* proxy.c - the fault proxy: one client connection, one upstream
 * connection, both framed by message, faults applied at the fake server's
 * phases.
 *
 * Three layers, as in the fake server but sharing none of its code:
 *  - the pump: two sockets per session, each with a read and a write
 *    event and an input and output evbuffer (`side`). Client-bound bytes
 *    go through `out`, a shaping queue that carries delay, drip, stall and
 *    close-after-flush; upstream-bound bytes go straight to the upstream's
 *    output. Both are written at the end of every callback, EV_WRITE only
 *    armed on EAGAIN. Reading from one side stops while the other side's
 *    output is above PGF__HIGH (backpressure), so a slow client never
 *    makes the proxy buffer a whole result set.
 *  - framing: both directions are cut into messages with a 5-byte header
 *    peek (startup-phase packets with an 8-byte one) and checked lengths;
 *    only the messages a phase needs are pulled up and parsed (proto.h).
 *  - fault points: before a backend message of interest and after a
 *    frontend message of interest the engine is asked (fault.h) and the
 *    action is carried out here; an injected ERROR keeps the session in
 *    step with the upstream (see docs/proxy.md).
 *
 * Objects are never freed in their own callbacks: a closing session is
 * put on the reap list and freed from the reap event.
 * Not here: TLS (SSLRequest gets 'N'), key mapping (BackendKeyData passes
 * through unchanged, so a CancelRequest is forwarded as it came).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <jansson.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "pgfault/buf.h"
#include "pgfault/clock.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
#include "pgfault/net.h"
#include "pgfault/proto.h"
#include "pgfault/proxy.h"
#include "pgfault/rng.h"

#define PGF__HIGH          (256u * 1024u) /* output above this stops reading the other side */
#define PGF__MAX_LISTENERS 8
#define PGF__MAX_BE_MSG    (1024u * 1024u * 1024u) /* PostgreSQL's own limit */

enum { GO = 0, STOP = 1 };
typedef enum { CK_NONE, CK_FIN, CK_RST, CK_SHUT_WR } close_kind;
typedef enum { CS_STARTUP, CS_AUTH, CS_READY, CS_CANCEL } conn_state;

typedef struct named {
    struct named *next;
    char kind; /* 'S' statement, 'P' portal */
    char *query;
    char name[]; /* flexible */
} named;

/* One socket of a session: raw events rather than bufferevents (the
 * profile showed bufferevents' per-write event toggling and FIONREAD doubling
 * the syscalls per query); `out` is written at the end of every callback and
 * EV_WRITE is armed only when the kernel buffer is full. */
typedef struct side {
    evutil_socket_t fd; /* -1: none */
    struct event *rev, *wev;
    struct evbuffer *in, *out;
    bool reading, writing, eof;
} side;

typedef struct pconn {
    pgf_proxy *px;
    uint64_t id;
    struct pconn *prev, *next; /* live list */
    struct pconn *reap_next;
    bool on_reap;
    side cli, up;
    pgf_fault_conn *fc;
    conn_state st;
    char peer[64];
    char *user, *database, *app, *query;
    int32_t be_pid;
    bool up_connected, up_dead, up_failed, cli_dead, ps_seen;
    /* client-bound shaping queue */
    struct evbuffer *out;
    struct event *out_timer;
    uint64_t hold_until;
    uint32_t drip_slice, drip_ms;
    bool stalled;
    struct event *stall_timer, *connect_timer;
    struct event *hangup; /* while stalled: the client's FIN (EV_CLOSED), without reading */
    /* truncation, injected errors */
    int64_t trunc_next_bytes; /* -1 = none */
    int trunc_msgs;
    bool trunc_reset;
    bool swallow_to_z, skip_to_sync, ignore_input, out_closed, query_err;
    pgf_buf pending_err; /* ErrorResponse to send before the next ReadyForQuery */
    close_kind cli_close;
    pgf_rng rng;
    named *named; /* prepared statements and portals (query texts) */
    int nnamed;
    unsigned simple_pending; /* simple Queries forwarded, not yet answered by ReadyForQuery */
    /* the wire observer's view (on_conn) */
    char txn;              /* the last ReadyForQuery's status; 0 before one */
    bool login_noted;      /* LOGIN reported */
    bool terminated;       /* the client sent Terminate */
    bool after_terminate;  /* ... and then more bytes */
    const char *close_why; /* a literal: why the session ended */
} pconn;

struct pgf_proxy {
    struct event_base *base;
    bool own_base;
    pthread_t thread;
    bool thread_started;
    char **listen;
    int nlisten;
    char *unix_dir;
    int unix_port;
    char unix_path[256];
    struct sockaddr_storage up_sa;
    socklen_t up_salen;
    char up_name[300];
    uint32_t connect_timeout_ms;
    pgf_fault_engine *faults;
    FILE *flog;
    pgf_proxy_fault_fn on_fault;
    void *on_fault_arg;
    pgf_server_conn_fn on_conn;
    void *on_conn_arg;
    bool quiet;
    struct evconnlistener *listeners[PGF__MAX_LISTENERS];
    int nlisteners;
    bool listening;
    char addrs[PGF__MAX_LISTENERS][256];
    int naddrs;
    int port;
    struct event *stop_ev, *reap_ev, *relisten_ev;
    pconn *conns, *reap;
    uint64_t next_id;
    uint64_t start_ns;
    atomic_bool stopped;
    bool stop_done; /* on_stop ran (loop thread) */
    struct {
        atomic_uint_fast64_t accepted, active, sessions, upstream_failures, cancels, faults_fired,
            to_up, to_cli;
    } st;
};

static pthread_once_t evthread_once = PTHREAD_ONCE_INIT;
static void init_evthread(void)
{
    evthread_use_pthreads();
}

static void conn_close(pconn *c, close_kind k, bool now, const char *why);

/* Tell the wire observer (config.on_conn) what this client did. */
static void note(pconn *c, pgf_server_conn_note n, bool auth_ok)
{
    if (c->px->on_conn == NULL)
        return;
    pgf_server_conn_info in = {0};
    in.conn_id = c->id;
    in.peer = c->peer;
    in.application_name = c->app;
    in.user = c->user;
    in.ready = c->txn != 0;
    in.auth_ok = auth_ok;
    in.txn = c->txn ? c->txn : 'I';
    in.why = c->close_why ? c->close_why : "client closed";
    c->px->on_conn(c->px->on_conn_arg, n, &in);
}

static void note_login(pconn *c, bool ok)
{
    if (c->login_noted)
        return;
    c->login_noted = true;
    note(c, PGF_CONN_NOTE_LOGIN, ok);
}

static void flush_out(pconn *c);
static void process_cli(pconn *c);
static void process_up(pconn *c);
static void update_flow(pconn *c);
static void pump(pconn *c);
static void upstream_unreachable(pconn *c, const char *reason);

/* ------------------------------------------------------------------ */
/* lifecycle of a session                                              */

static void side_free(side *s)
{
    if (s->rev)
        event_free(s->rev);
    if (s->wev)
        event_free(s->wev);
    if (s->fd >= 0)
        close(s->fd);
    if (s->in)
        evbuffer_free(s->in);
    if (s->out)
        evbuffer_free(s->out);
    memset(s, 0, sizeof *s);
    s->fd = -1;
}

static void side_stop(side *s)
{
    if (s->rev && s->reading)
        event_del(s->rev);
    if (s->wev && s->writing)
        event_del(s->wev);
    s->reading = s->writing = false;
}

static void side_want_read(side *s, bool on)
{
    if (s->rev == NULL || on == s->reading)
        return;
    s->reading = on;
    if (on)
        event_add(s->rev, NULL);
    else
        event_del(s->rev);
}

/* Write what is queued; arm EV_WRITE only when the kernel says EAGAIN.
 * Returns 0, or -1 when the socket failed (errno set). */
static int side_flush(side *s)
{
    if (s->fd < 0 || s->out == NULL)
        return 0;
    while (evbuffer_get_length(s->out) > 0) {
        int n = evbuffer_write(s->out, s->fd);
        if (n > 0)
            continue;
        if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
            if (!s->writing) {
                s->writing = true;
                event_add(s->wev, NULL);
            }
            return 0;
        }
        return -1;
    }
    if (s->writing) {
        s->writing = false;
        event_del(s->wev);
    }
    return 0;
}

/* Read what the kernel has (bounded rounds through a per-thread scratch
 * buffer, so an idle session holds no read buffer). 0 ok, -1 failed;
 * s->eof set at end of stream. */
static int side_read(side *s)
{
    static _Thread_local uint8_t scratch[16384];
    for (int rounds = 0; rounds < 8; rounds++) {
        ssize_t n = recv(s->fd, scratch, sizeof scratch, 0);
        if (n > 0) {
            if (evbuffer_add(s->in, scratch, (size_t)n) != 0)
                return -1;
            if ((size_t)n < sizeof scratch)
                return 0;
            continue;
        }
        if (n == 0) {
            s->eof = true;
            return 0;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        return -1;
    }
    return 0;
}

static int side_init(side *s, struct event_base *base, evutil_socket_t fd, event_callback_fn rcb,
                     event_callback_fn wcb, void *arg)
{
    s->fd = fd;
    s->rev = event_new(base, fd, EV_READ | EV_PERSIST, rcb, arg);
    s->wev = event_new(base, fd, EV_WRITE | EV_PERSIST, wcb, arg);
    s->in = evbuffer_new();
    s->out = evbuffer_new();
    return s->rev && s->wev && s->in && s->out ? 0 : -1;
}

static void schedule_reap(pconn *c)
{
    if (c->on_reap)
        return;
    c->on_reap = true;
    c->reap_next = c->px->reap;
    c->px->reap = c;
    event_active(c->px->reap_ev, EV_TIMEOUT, 0);
}

static void conn_free(pconn *c)
{
    pgf_proxy *px = c->px;
    if (c->prev)
        c->prev->next = c->next;
    else if (px->conns == c)
        px->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    side_free(&c->up);
    side_free(&c->cli);
    if (c->out)
        evbuffer_free(c->out);
    if (c->out_timer)
        event_free(c->out_timer);
    if (c->stall_timer)
        event_free(c->stall_timer);
    if (c->hangup)
        event_free(c->hangup);
    if (c->connect_timer)
        event_free(c->connect_timer);
    pgf_fault_conn_free(c->fc);
    pgf_buf_free(&c->pending_err);
    free(c->user);
    free(c->database);
    free(c->app);
    free(c->query);
    while (c->named != NULL) {
        named *n = c->named;
        c->named = n->next;
        free(n->query);
        free(n);
    }
    atomic_fetch_sub(&px->st.active, 1);
    free(c);
}

/* Free what is dead: the upstream side once closed, the session once its
 * client side is closed and no upstream work (a cancel) is in flight. */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_proxy *px = arg;
    while (px->reap != NULL) {
        pconn *c = px->reap;
        px->reap = c->reap_next;
        c->on_reap = false;
        if (c->up.fd >= 0 && c->up_dead) {
            /* Best effort: a Terminate queued for a polite close. */
            if (c->up_connected)
                (void)evbuffer_write(c->up.out, c->up.fd);
            side_free(&c->up);
        }
        if (c->cli_dead && c->up.fd < 0)
            conn_free(c);
    }
}

static void up_close(pconn *c, bool polite)
{
    if (c->up.fd < 0 || c->up_dead)
        return;
    c->up_dead = true;
    side_stop(&c->up);
    if (c->connect_timer)
        event_del(c->connect_timer);
    if (polite && c->up_connected && c->st != CS_CANCEL) {
        static const uint8_t term[5] = {'X', 0, 0, 0, 4};
        evbuffer_add(c->up.out, term, sizeof term);
    }
    schedule_reap(c);
}

/* Drop the upstream connection abruptly (a `side: upstream|both` close or
 * reset): no Terminate, nothing queued, RST when asked. */
static void up_abort(pconn *c, bool rst)
{
    if (c->up.fd < 0 || c->up_dead)
        return;
    evbuffer_drain(c->up.out, evbuffer_get_length(c->up.out));
    if (rst) {
        struct linger lg = {1, 0};
        setsockopt(c->up.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    up_close(c, false);
}

static void cli_kill(pconn *c, bool rst)
{
    if (c->cli_dead)
        return;
    c->cli_dead = true;
    c->cli_close = CK_NONE;
    note(c, PGF_CONN_NOTE_CLOSED, false);
    if (c->cli.fd >= 0) {
        side_stop(&c->cli);
        if (rst) {
            struct linger lg = {1, 0};
            setsockopt(c->cli.fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        }
    }
    if (c->out_timer)
        event_del(c->out_timer);
    if (c->stall_timer)
        event_del(c->stall_timer);
    if (c->hangup)
        event_del(c->hangup);
    schedule_reap(c);
}

/* A queued close happens once everything before it has reached the kernel. */
static void try_finish_close(pconn *c)
{
    if (c->cli_close == CK_NONE || c->cli_dead)
        return;
    if (c->out != NULL && evbuffer_get_length(c->out) > 0)
        return;
    if (evbuffer_get_length(c->cli.out) > 0)
        return;
    if (c->cli_close == CK_SHUT_WR) {
        shutdown(c->cli.fd, SHUT_WR);
        c->cli_close = CK_NONE;
        c->out_closed = true;
        return;
    }
    cli_kill(c, c->cli_close == CK_RST);
}

/* End the session: the upstream at once (politely), the client after what
 * is queued for it (now = true: at once, e.g. a reset). */
static void conn_close(pconn *c, close_kind k, bool now, const char *why)
{
    pgf_log_debug("[proxy %llu] close (%s): %s", (unsigned long long)c->id,
                  k == CK_RST       ? "reset"
                  : k == CK_SHUT_WR ? "half-close"
                                    : "fin",
                  why);
    if (c->close_why == NULL)
        c->close_why = why;
    up_close(c, k != CK_RST);
    if (c->cli_dead)
        return;
    if (now) {
        cli_kill(c, k == CK_RST);
        return;
    }
    if (k != CK_SHUT_WR)
        c->ignore_input = true;
    c->cli_close = k;
    flush_out(c);
    try_finish_close(c);
}

static bool closing(const pconn *c)
{
    return c->cli_dead || c->cli_close != CK_NONE || c->out_closed;
}

/* ------------------------------------------------------------------ */
/* client-bound output: the shaping queue                              */

static void emit(pconn *c, const void *p, size_t n)
{
    if (c->out_closed || c->cli_dead)
        return;
    evbuffer_add(c->out, p, n);
}

static void emit_buf(pconn *c, pgf_buf *b)
{
    if (b->failed) {
        conn_close(c, CK_RST, true, "out of memory");
        return;
    }
    emit(c, b->data, b->len);
}

static void on_out_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void arm_out_timer(pconn *c, uint64_t ns)
{
    if (c->out_timer == NULL)
        c->out_timer = evtimer_new(c->px->base, on_out_timer, c);
    if (c->out_timer == NULL) {
        conn_close(c, CK_RST, true, "out of memory");
        return;
    }
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
    evtimer_add(c->out_timer, &tv);
}

static void flush_out(pconn *c)
{
    if (c->cli_dead || c->cli.fd < 0)
        return;
    size_t n = evbuffer_get_length(c->out);
    if (n > 0 && !c->stalled && !(c->out_timer && evtimer_pending(c->out_timer, NULL))) {
        uint64_t now = pgf_now_ns();
        struct evbuffer *w = c->cli.out;
        if (c->hold_until > now) {
            arm_out_timer(c, c->hold_until - now);
        } else if (c->drip_slice > 0) {
            size_t m = n < c->drip_slice ? n : c->drip_slice;
            evbuffer_remove_buffer(c->out, w, m);
            atomic_fetch_add_explicit(&c->px->st.to_cli, m, memory_order_relaxed);
            if (n > m)
                arm_out_timer(c, PGF_MS_NS(c->drip_ms));
        } else {
            evbuffer_add_buffer(w, c->out);
            atomic_fetch_add_explicit(&c->px->st.to_cli, n, memory_order_relaxed);
        }
    }
    try_finish_close(c);
}

/* Backpressure: read a side only while the other side's queue is short. */
static void update_flow(pconn *c)
{
    if (c->cli_dead)
        return;
    size_t cli_q = evbuffer_get_length(c->out) + evbuffer_get_length(c->cli.out);
    bool up_live = c->up.fd >= 0 && !c->up_dead && c->up_connected;
    bool want_up = up_live && !c->stalled && !c->up.eof && cli_q < PGF__HIGH;
    bool want_cli = !c->stalled && !c->cli.eof && c->cli_close == CK_NONE &&
                    (!up_live || evbuffer_get_length(c->up.out) < PGF__HIGH);
    if (up_live)
        side_want_read(&c->up, want_up);
    side_want_read(&c->cli, want_cli);
}

/* ------------------------------------------------------------------ */
/* the fault log: the engine's record plus who it happened to          */

static void log_event(pconn *c, json_t *o)
{
    pgf_proxy *px = c->px;
    char when[40];
    pgf_wall_iso8601(pgf_wall_us(), when, sizeof when);
    json_object_set_new(o, "wall_time", json_string(when));
    json_object_set_new(o, "client", json_string(c->peer));
    if (c->app)
        json_object_set_new(o, "application_name", json_string(c->app));
    if (c->user)
        json_object_set_new(o, "user", json_string(c->user));
    if (c->database)
        json_object_set_new(o, "database", json_string(c->database));
    if (c->be_pid != 0)
        json_object_set_new(o, "upstream_pid", json_integer(c->be_pid));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL && px->flog != NULL) {
        fprintf(px->flog, "%s\n", s);
        fflush(px->flog);
    }
    free(s);
}

static void log_fault(pconn *c, const pgf_fault_action *a)
{
    if (c->px->flog == NULL)
        return;
    json_t *o = NULL;
    char *lines = pgf_fault_log_lines(c->px->faults, a->event_seq ? a->event_seq - 1 : 0);
    if (lines != NULL) {
        char *nl = strchr(lines, '\n');
        if (nl)
            *nl = '\0';
        o = json_loads(lines, 0, NULL);
        free(lines);
    }
    if (o == NULL || json_integer_value(json_object_get(o, "seq")) != (json_int_t)a->event_seq) {
        json_decref(o);
        o = json_object();
        json_object_set_new(o, "seq", json_integer((json_int_t)a->event_seq));
        json_object_set_new(o, "conn", json_integer((json_int_t)c->id));
        json_object_set_new(o, "rule", json_string(a->rule ? a->rule : "?"));
        json_object_set_new(o, "action", json_string(pgf_action_name(a->kind)));
    }
    log_event(c, o);
    json_decref(o);
}

/* ------------------------------------------------------------------ */
/* fault points                                                        */

static void build_error(pgf_buf *b, const char *sev, const char *sqlstate, const char *msg,
                        const char *detail, const char *hint)
{
    pgf_error_fields e = {0};
    e.severity = sev;
    e.sqlstate = sqlstate;
    e.message = msg;
    e.detail = detail;
    e.hint = hint;
    if (strcmp(sev, "WARNING") == 0 || strcmp(sev, "NOTICE") == 0)
        pgf_msg_notice(b, &e);
    else
        pgf_msg_error(b, &e);
}

/* FATAL to the client, then both sides close, as PostgreSQL does. */
static void send_fatal(pconn *c, const char *sqlstate, const char *msg, const char *detail)
{
    pgf_buf b = PGF_BUF_INIT;
    build_error(&b, "FATAL", sqlstate, msg, detail, NULL);
    emit_buf(c, &b);
    pgf_buf_free(&b);
    conn_close(c, CK_FIN, false, msg);
}

static void on_relisten(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)pgf_proxy_set_listening(arg, true);
}

/* A stalled session reads nothing, but a client that gives up and closes
 * must still end it: otherwise a `stall` forever would hold a real backend
 * until the proxy stops. EV_CLOSED sees the FIN without reading. */
static void on_hangup(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pconn *c = arg;
    pgf_log_debug("[proxy %llu] the client closed during a stall", (unsigned long long)c->id);
    up_close(c, false);
    cli_kill(c, false);
}

static void on_stall_end(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pconn *c = arg;
    c->stalled = false;
    if (c->hangup)
        event_del(c->hangup);
    flush_out(c);
    process_up(c);
    process_cli(c);
    pump(c);
}

/* Move `n` bytes of the upstream's input to the client, honouring a
 * pending truncation. */
static void emit_from_up(pconn *c, size_t n)
{
    struct evbuffer *in = c->up.in;
    if (c->out_closed || c->cli_dead || c->cli_close != CK_NONE) {
        evbuffer_drain(in, n);
        return;
    }
    if (c->trunc_next_bytes >= 0) {
        size_t keep = (size_t)c->trunc_next_bytes < n ? (size_t)c->trunc_next_bytes : n;
        evbuffer_remove_buffer(in, c->out, keep);
        evbuffer_drain(in, n - keep);
        c->trunc_next_bytes = -1;
        conn_close(c, c->trunc_reset ? CK_RST : CK_FIN, false, "truncated by fault");
        return;
    }
    evbuffer_remove_buffer(in, c->out, n);
    if (c->trunc_msgs > 0 && --c->trunc_msgs == 0)
        conn_close(c, c->trunc_reset ? CK_RST : CK_FIN, false, "truncated by fault");
}

/* Carry out a fired action. be_len > 0: the backend message of that length
 * at the front of the upstream input is about to be sent (a before-send
 * point); 0 at after-receive points. Returns GO (the caller forwards the
 * message as usual) or STOP (the fault replaced it or the session ends). */
static int apply(pconn *c, pgf_phase ph, const pgf_fault_action *a, size_t be_len)
{
    atomic_fetch_add(&c->px->st.faults_fired, 1);
    pgf_log_info("[proxy %llu] fault '%s': %s at %s", (unsigned long long)c->id,
                 a->rule ? a->rule : "?", pgf_action_name(a->kind), pgf_phase_name(ph));
    switch (a->kind) {
    case PGF_ACTION_NONE:
    case PGF_ACTION_COUNT:
        break;
    case PGF_ACTION_AUTH_FAIL: {
        note_login(c, false);
        char msg[256];
        snprintf(msg, sizeof msg, "password authentication failed for user \"%s\"",
                 c->user ? c->user : "");
        send_fatal(c, "28P01", msg, NULL);
        return STOP;
    }
    case PGF_ACTION_ERROR: {
        const char *sev = a->severity ? a->severity : "ERROR";
        pgf_buf b = PGF_BUF_INIT;
        build_error(&b, sev, a->sqlstate ? a->sqlstate : "XX000",
                    a->message ? a->message : "fault injected by pgfault", a->detail, a->hint);
        bool in_query = c->st == CS_READY && strcmp(sev, "ERROR") == 0 &&
                        (ph == PGF_PHASE_QUERY || ph == PGF_PHASE_ROW_DESCRIPTION ||
                         ph == PGF_PHASE_DATA_ROW || ph == PGF_PHASE_COMMAND_COMPLETE);
        if (!in_query) {
            /* FATAL, WARNING (crash-shutdown) and any error before
             * ReadyForQuery end the session, as in PostgreSQL. */
            emit_buf(c, &b);
            conn_close(c, CK_FIN, false, "error fault");
        } else if (ph == PGF_PHASE_QUERY) {
            /* The query is not forwarded; the error goes out before the
             * upstream's next ReadyForQuery (the caller asks for one). */
            pgf_buf_reset(&c->pending_err);
            pgf_buf_put(&c->pending_err, b.data, b.len);
            c->query_err = true;
        } else {
            /* Mid-result: the error replaces the rest of the result. */
            emit_buf(c, &b);
            evbuffer_drain(c->up.in, be_len);
            c->swallow_to_z = true;
        }
        pgf_buf_free(&b);
        return STOP;
    }
    case PGF_ACTION_CLOSE:
    case PGF_ACTION_RESET: {
        bool rst = a->kind == PGF_ACTION_RESET || a->reset;
        if (a->side == 'u' || a->side == 'b')
            up_abort(c, rst);
        if (a->side == 'u') {
            /* The backend saw its client vanish; the client sees the
             * server close, after what was already on its way. */
            conn_close(c, CK_FIN, false, "upstream closed by fault");
            return STOP;
        }
        if (a->kind == PGF_ACTION_RESET)
            conn_close(c, CK_RST, true, "reset fault");
        else
            conn_close(c, a->reset ? CK_RST : CK_FIN, false, "close fault");
        return STOP;
    }
    case PGF_ACTION_HALF_CLOSE:
        if (a->direction == 'r') {
            c->ignore_input = true;
            break;
        }
        conn_close(c, CK_SHUT_WR, false, "half-close fault");
        return STOP;
    case PGF_ACTION_TRUNCATE:
        c->trunc_reset = a->reset;
        if (a->messages > 0) {
            c->trunc_msgs = (int)a->messages;
        } else if (be_len > 0) {
            c->trunc_next_bytes = a->bytes;
            emit_from_up(c, be_len);
            return STOP;
        } else {
            c->trunc_next_bytes = a->bytes;
        }
        break;
    case PGF_ACTION_STALL:
        /* What was queued before this point still goes out. */
        flush_out(c);
        c->stalled = true;
        if (c->hangup == NULL && c->cli.fd >= 0)
            c->hangup = event_new(c->px->base, c->cli.fd, EV_CLOSED | EV_PERSIST, on_hangup, c);
        if (c->hangup != NULL)
            event_add(c->hangup, NULL);
        if (a->ms > 0) {
            if (c->stall_timer == NULL)
                c->stall_timer = evtimer_new(c->px->base, on_stall_end, c);
            if (c->stall_timer != NULL) {
                struct timeval tv = {a->ms / 1000, (suseconds_t)(a->ms % 1000) * 1000};
                evtimer_add(c->stall_timer, &tv);
            }
        }
        update_flow(c);
        break;
    case PGF_ACTION_DELAY:
        flush_out(c);
        c->hold_until = pgf_now_ns() + PGF_MS_NS(a->ms);
        break;
    case PGF_ACTION_DRIP:
        flush_out(c);
        c->drip_slice = a->slice ? a->slice : 1;
        c->drip_ms = a->ms;
        break;
    case PGF_ACTION_BANDWIDTH: {
        flush_out(c);
        uint32_t bps = a->bytes_per_sec ? a->bytes_per_sec : 1;
        c->drip_slice = bps / 20 ? bps / 20 : 1;
        c->drip_ms = bps / 20 ? 50 : 1000 / bps;
        break;
    }
    case PGF_ACTION_GARBAGE: {
        /* As the fake: 0xff type bytes and a length of -1 first, so every
         * client rejects it at once; the rest is seeded noise. */
        uint32_t n = a->bytes ? a->bytes : 16;
        for (uint32_t i = 0; i < n; i++) {
            uint8_t x = i < 5 ? 0xff : (uint8_t)pgf_rng_next(&c->rng);
            emit(c, &x, 1);
        }
        break;
    }
    case PGF_ACTION_REFUSE:
        if (a->ms > 0) {
            (void)pgf_proxy_set_listening(c->px, false);
            struct timeval tv = {a->ms / 1000, (suseconds_t)(a->ms % 1000) * 1000};
            evtimer_add(c->px->relisten_ev, &tv);
        }
        conn_close(c, CK_FIN, false, "refused by fault");
        return STOP;
    }
    return GO;
}

static int fault_point(pconn *c, pgf_phase ph, uint8_t type, size_t be_len)
{
    pgf_proxy *px = c->px;
    if (px->faults == NULL || c->fc == NULL || closing(c))
        return GO;
    pgf_fault_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    ctx.conn_id = c->id;
    ctx.user = c->user;
    ctx.database = c->database;
    ctx.application_name = c->app;
    ctx.client_addr = c->peer;
    ctx.query = c->query;
    ctx.msg_type = type;
    ctx.elapsed_ns = pgf_now_ns() - px->start_ns;
    ctx.backend_pid = c->be_pid;
    ctx.wall_us = pgf_wall_us();
    pgf_fault_action a;
    if (!pgf_fault_decide(px->faults, c->fc, ph, &ctx, &a))
        return GO;
    if (px->on_fault != NULL)
        px->on_fault(px->on_fault_arg, &ctx, ph, &a);
    log_fault(c, &a);
    return apply(c, ph, &a, be_len);
}

/* ------------------------------------------------------------------ */
/* upstream                                                            */

static void upstream_unreachable(pconn *c, const char *reason)
{
    pgf_proxy *px = c->px;
    if (c->up_failed)
        return;
    c->up_failed = true;
    atomic_fetch_add(&px->st.upstream_failures, 1);
    pgf_log_warn("[proxy %llu] upstream %s: %s", (unsigned long long)c->id, px->up_name, reason);
    json_t *o = json_object();
    json_object_set_new(o, "conn", json_integer((json_int_t)c->id));
    json_object_set_new(
        o, "event",
        json_string(c->st == CS_CANCEL ? "upstream-cancel-failed" : "upstream-unreachable"));
    json_object_set_new(o, "upstream", json_string(px->up_name));
    json_object_set_new(o, "error", json_string(reason));
    log_event(c, o);
    json_decref(o);
    if (c->st == CS_CANCEL) {
        up_close(c, false);
        return;
    }
    char detail[512];
    snprintf(detail, sizeof detail, "pgfault proxy: upstream %s: %s", px->up_name, reason);
    send_fatal(c, "57P03", "the database system is not accepting connections", detail);
}

/* The end of every callback: the shaping queue into the client's socket
 * buffer, both sockets written, queued closes carried out, reading
 * re-armed or paused (backpressure). */
static void pump(pconn *c)
{
    if (!c->cli_dead) {
        flush_out(c);
        if (side_flush(&c->cli) != 0) {
            /* the client is gone: nothing more can reach it */
            up_close(c, false);
            cli_kill(c, false);
        } else {
            try_finish_close(c);
        }
    }
    if (c->up.fd >= 0 && !c->up_dead && c->up_connected) {
        if (side_flush(&c->up) != 0) {
            conn_close(c, CK_FIN, false, "upstream write failed");
        } else if (c->st == CS_CANCEL && evbuffer_get_length(c->up.out) == 0) {
            /* the CancelRequest is out; PostgreSQL closes without a reply */
            up_close(c, false);
        }
    }
    update_flow(c);
}

static void on_up_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pconn *c = arg;
    int r = side_read(&c->up);
    process_up(c);
    if ((r != 0 || c->up.eof) && !c->up_dead) {
        /* The upstream went away: what it said is passed on, then the
         * client's connection closes too. */
        if (c->st == CS_CANCEL)
            up_close(c, false);
        else
            conn_close(c, CK_FIN, false, r != 0 ? "upstream error" : "upstream closed");
    }
    pump(c);
}

static void on_up_write(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pconn *c = arg;
    if (!c->up_connected && !c->up_dead) {
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
            soerr = errno;
        if (soerr != 0) {
            upstream_unreachable(c, strerror(soerr));
            pump(c);
            return;
        }
        c->up_connected = true;
        if (c->connect_timer)
            event_del(c->connect_timer);
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    pump(c);
}

static void on_connect_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pconn *c = arg;
    char msg[96];
    snprintf(msg, sizeof msg, "connect timed out after %u ms", c->px->connect_timeout_ms);
    upstream_unreachable(c, msg);
    pump(c);
}

/* Non-blocking connect to the upstream; what the caller queues in
 * c->up.out is written once it completes. */
static int up_connect(pconn *c)
{
    pgf_proxy *px = c->px;
    evutil_socket_t fd = socket(px->up_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        upstream_unreachable(c, strerror(errno));
        return -1;
    }
    c->connect_timer = evtimer_new(px->base, on_connect_timeout, c);
    if (side_init(&c->up, px->base, fd, on_up_read, on_up_write, c) != 0 ||
        c->connect_timer == NULL) {
        conn_close(c, CK_RST, true, "out of memory");
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&px->up_sa, px->up_salen) == 0) {
        c->up_connected = true;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        return 0;
    }
    if (errno != EINPROGRESS) {
        upstream_unreachable(c, strerror(errno));
        return -1;
    }
    struct timeval tv = {px->connect_timeout_ms / 1000,
                         (suseconds_t)(px->connect_timeout_ms % 1000) * 1000};
    evtimer_add(c->connect_timer, &tv);
    c->up.writing = true; /* EV_WRITE reports the connect's outcome */
    event_add(c->up.wev, NULL);
    return 0;
}

/* One backend message of `total` bytes is at the front of the upstream's
 * input: decide, then forward. */
static void handle_be(pconn *c, uint8_t type, const uint8_t *hdr, size_t hlen, size_t total)
{
    struct evbuffer *in = c->up.in;
    if (c->swallow_to_z && type != PGF_BE_READY) {
        evbuffer_drain(in, total);
        return;
    }
    int ph = -1;
    switch (type) {
    case PGF_BE_AUTH:
        if (hlen >= 9) {
            uint32_t code = pgf_rd_be32(hdr + 5);
            if (code == PGF_AUTH_OK)
                ph = PGF_PHASE_AUTH_OK;
            else if (code == PGF_AUTH_CLEARTEXT || code == PGF_AUTH_MD5 || code == PGF_AUTH_SASL)
                ph = PGF_PHASE_AUTH_REQUEST;
            else if (code == PGF_AUTH_SASL_CONTINUE)
                ph = PGF_PHASE_SASL_CONTINUE;
            else if (code == PGF_AUTH_SASL_FINAL)
                ph = PGF_PHASE_SASL_FINAL;
        }
        break;
    case PGF_BE_PARAMETER_STATUS:
        if (!c->ps_seen) {
            c->ps_seen = true;
            ph = PGF_PHASE_PARAMETER_STATUS;
        }
        break;
    case PGF_BE_BACKEND_KEY:
        if (total >= 13) {
            uint8_t k[13];
            evbuffer_copyout(in, k, sizeof k);
            c->be_pid = (int32_t)pgf_rd_be32(k + 5);
        }
        break;
    case PGF_BE_ERROR:
        /* an error before the first ReadyForQuery: the login was refused
         * (28P01, 3D000, 53300, 57P03 ...), as the fake reports it */
        if (c->st == CS_AUTH)
            note_login(c, false);
        break;
    case PGF_BE_READY:
        ph = PGF_PHASE_READY;
        if (c->simple_pending > 0)
            c->simple_pending--;
        c->swallow_to_z = false;
        if (c->pending_err.len > 0) {
            emit(c, c->pending_err.data, c->pending_err.len);
            pgf_buf_reset(&c->pending_err);
        }
        break;
    case PGF_BE_ROW_DESCRIPTION:
        /* As the fake: a simple Query's RowDescription is a fault point,
         * the one answering an extended-protocol Describe is not. */
        ph = c->st == CS_READY && c->simple_pending > 0 ? PGF_PHASE_ROW_DESCRIPTION : -1;
        break;
    case PGF_BE_DATA_ROW:
        ph = c->st == CS_READY ? PGF_PHASE_DATA_ROW : -1;
        break;
    case PGF_BE_COMMAND_COMPLETE:
        ph = c->st == CS_READY ? PGF_PHASE_COMMAND_COMPLETE : -1;
        break;
    default:
        break;
    }
    /* STOP: apply() consumed the message, or the session is closing and
     * the upstream input dies with it. */
    if (ph >= 0 && fault_point(c, (pgf_phase)ph, type, total) == STOP)
        return;
    uint8_t status = type == PGF_BE_READY && hlen >= 6 ? hdr[5] : 0;
    emit_from_up(c, total);
    if (ph == PGF_PHASE_AUTH_OK)
        note_login(c, true);
    if (status != 0 && status != (uint8_t)c->txn) {
        c->txn = (char)status;
        note(c, PGF_CONN_NOTE_TXN, true);
    }
    if (type == PGF_BE_READY && !closing(c)) {
        c->st = CS_READY;
        free(c->query);
        c->query = NULL;
        fault_point(c, PGF_PHASE_IDLE, 0, 0);
    }
}

static void process_up(pconn *c)
{
    if (c->up.fd < 0 || c->up_dead)
        return;
    struct evbuffer *in = c->up.in;
    while (!c->stalled && !c->up_dead && !c->cli_dead) {
        size_t avail = evbuffer_get_length(in);
        if (avail < 5)
            return;
        uint8_t hdr[9];
        size_t hlen = avail < sizeof hdr ? avail : sizeof hdr;
        evbuffer_copyout(in, hdr, hlen);
        uint32_t len = pgf_rd_be32(hdr + 1);
        if (len < 4 || len > PGF__MAX_BE_MSG) {
            /* Not PostgreSQL (or not in step): hand the bytes to the client
             * as they are, so its driver says what it would say talking to
             * that server directly ("expected authentication request from
             * server, but received H"), then close. */
            pgf_log_warn("[proxy %llu] upstream sent an invalid message length %u (type 0x%02x)",
                         (unsigned long long)c->id, len, hdr[0]);
            if (!closing(c))
                evbuffer_add_buffer(c->out, in);
            conn_close(c, CK_FIN, false, "upstream protocol violation");
            return;
        }
        size_t total = (size_t)len + 1;
        if (avail < total)
            return;
        handle_be(c, hdr[0], hdr, hlen, total);
    }
}

/* ------------------------------------------------------------------ */
/* client                                                              */

static void forward(pconn *c, size_t n)
{
    struct evbuffer *in = c->cli.in;
    if (c->up.fd < 0 || c->up_dead) {
        evbuffer_drain(in, n);
        return;
    }
    evbuffer_remove_buffer(in, c->up.out, n);
    atomic_fetch_add_explicit(&c->px->st.to_up, n, memory_order_relaxed);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void start_cancel(pconn *c, const uint8_t *pkt, size_t len)
{
    c->st = CS_CANCEL;
    atomic_fetch_add(&c->px->st.cancels, 1);
    /* PostgreSQL closes a cancel connection without a reply. */
    cli_kill(c, false);
    if (up_connect(c) != 0)
        return;
    evbuffer_add(c->up.out, pkt, len);
}

static void handle_startup_packet(pconn *c, const uint8_t *p, size_t len)
{
    struct evbuffer *in = c->cli.in;
    pgf_fe_msg m;
    const char *em = NULL;
    int r = pgf_proto_frame(p, len, true, PGF_PROTO_MAX_STARTUP_LEN, &m, &em);
    if (r != PGF_PROTO_OK) {
        evbuffer_drain(in, len);
        send_fatal(c, "08P01", em ? em : "invalid startup packet", NULL);
        return;
    }
    if (m.code == PGF_PROTO_SSL_REQUEST || m.code == PGF_PROTO_GSSENC_REQUEST) {
        evbuffer_drain(in, len);
        if (fault_point(c, PGF_PHASE_SSL_REQUEST, 0, 0) == STOP)
            return;
        if (c->trunc_next_bytes >= 0) { /* truncate at ssl-request: the 'N' itself */
            emit(c, "N", c->trunc_next_bytes > 0 ? 1 : 0);
            c->trunc_next_bytes = -1;
            conn_close(c, c->trunc_reset ? CK_RST : CK_FIN, false, "truncated by fault");
            return;
        }
        emit(c, "N", 1);
        return;
    }
    if (m.code == PGF_PROTO_CANCEL_REQUEST) {
        uint8_t pkt[16];
        size_t n = len < sizeof pkt ? len : sizeof pkt;
        memcpy(pkt, p, n);
        evbuffer_drain(in, len);
        if (fault_point(c, PGF_PHASE_CANCEL, 0, 0) == STOP)
            return;
        start_cancel(c, pkt, n);
        return;
    }
    if ((m.code >> 16) == 3) {
        pgf_startup su;
        if (pgf_proto_parse_startup(&m, &su, &em) != 0) {
            evbuffer_drain(in, len);
            send_fatal(c, "08P01", em ? em : "invalid startup packet layout", NULL);
            return;
        }
        const char *user = pgf_startup_get(&su, "user");
        const char *db = pgf_startup_get(&su, "database");
        c->user = dup_or_null(user);
        c->database = dup_or_null(db && *db ? db : user);
        c->app = dup_or_null(pgf_startup_get(&su, "application_name"));
        note(c, PGF_CONN_NOTE_STARTUP, false);
    }
    /* The upstream gets the packet exactly as sent; PostgreSQL answers
     * anything we did not parse (other protocol versions) itself. */
    struct evbuffer *pkt = evbuffer_new();
    if (pkt == NULL) {
        conn_close(c, CK_RST, true, "out of memory");
        return;
    }
    evbuffer_remove_buffer(in, pkt, len);
    if (fault_point(c, PGF_PHASE_STARTUP, 0, 0) == STOP) {
        evbuffer_free(pkt);
        return;
    }
    c->st = CS_AUTH;
    atomic_fetch_add(&c->px->st.sessions, 1);
    if (up_connect(c) == 0) {
        atomic_fetch_add_explicit(&c->px->st.to_up, len, memory_order_relaxed);
        evbuffer_add_buffer(c->up.out, pkt);
    }
    evbuffer_free(pkt);
}

/* Statement and portal names -> query text, so a query point at Execute
 * sees the text the client prepared (PostgreSQL's prepared mode parses
 * once and executes many times). Bounded: beyond PGF__MAX_NAMED the
 * oldest entry is forgotten (a filter on `query` then misses it). */
#define PGF__MAX_NAMED 1024

static named *named_find(pconn *c, char kind, const char *name)
{
    for (named *n = c->named; n != NULL; n = n->next)
        if (n->kind == kind && strcmp(n->name, name) == 0)
            return n;
    return NULL;
}

static void named_drop(pconn *c, char kind, const char *name)
{
    for (named **pp = &c->named; *pp != NULL; pp = &(*pp)->next) {
        named *n = *pp;
        if (n->kind == kind && strcmp(n->name, name) == 0) {
            *pp = n->next;
            free(n->query);
            free(n);
            c->nnamed--;
            return;
        }
    }
}

static void named_set(pconn *c, char kind, const char *name, const char *query)
{
    named_drop(c, kind, name);
    if (c->nnamed >= PGF__MAX_NAMED) {
        named **pp = &c->named;
        while ((*pp)->next != NULL)
            pp = &(*pp)->next;
        free((*pp)->query);
        free(*pp);
        *pp = NULL;
        c->nnamed--;
    }
    size_t nl = strlen(name);
    named *n = malloc(sizeof *n + nl + 1);
    if (n == NULL)
        return;
    memcpy(n->name, name, nl + 1);
    n->kind = kind;
    n->query = dup_or_null(query);
    n->next = c->named;
    c->named = n;
    c->nnamed++;
}

/* The first two NUL-terminated strings of a message body, bounded. */
static bool two_strings(const uint8_t *body, size_t len, const char **a, const char **b)
{
    const uint8_t *z1 = memchr(body, 0, len);
    if (z1 == NULL)
        return false;
    *a = (const char *)body;
    if (b == NULL)
        return true;
    size_t off = (size_t)(z1 - body) + 1;
    if (off >= len || memchr(body + off, 0, len - off) == NULL)
        return false;
    *b = (const char *)body + off;
    return true;
}

static void track_extended(pconn *c, uint8_t type, size_t total)
{
    const uint8_t *p = evbuffer_pullup(c->cli.in, (ev_ssize_t)total);
    if (p == NULL || total < 5)
        return;
    const uint8_t *body = p + 5;
    size_t blen = total - 5;
    const char *a = NULL, *b = NULL;
    switch (type) {
    case PGF_FE_PARSE: /* statement name, query */
        if (two_strings(body, blen, &a, &b))
            named_set(c, 'S', a, b);
        break;
    case PGF_FE_BIND: /* portal name, statement name */
        if (two_strings(body, blen, &a, &b)) {
            named *st = named_find(c, 'S', b);
            named_set(c, 'P', a, st ? st->query : NULL);
        }
        break;
    case PGF_FE_CLOSE: /* 'S'|'P', name */
        if (blen > 1 && (body[0] == 'S' || body[0] == 'P') &&
            two_strings(body + 1, blen - 1, &a, NULL))
            named_drop(c, (char)body[0], a);
        break;
    case PGF_FE_EXECUTE: /* portal name */
        if (two_strings(body, blen, &a, NULL)) {
            named *pt = named_find(c, 'P', a);
            free(c->query);
            c->query = dup_or_null(pt ? pt->query : NULL);
        }
        break;
    default:
        break;
    }
}

static void handle_fe(pconn *c, uint8_t type, size_t total)
{
    struct evbuffer *in = c->cli.in;
    if (c->terminated && !c->after_terminate) {
        c->after_terminate = true;
        note(c, PGF_CONN_NOTE_AFTER_TERMINATE, true);
    }
    if (type == PGF_FE_QUERY && c->st == CS_READY && c->simple_pending > 0)
        note(c, PGF_CONN_NOTE_EARLY_QUERY, true); /* sent before the last one's ReadyForQuery */
    if (type == PGF_FE_TERMINATE)
        c->terminated = true;
    if (c->skip_to_sync) {
        if (type != PGF_FE_SYNC) {
            evbuffer_drain(in, total);
            return;
        }
        c->skip_to_sync = false;
        forward(c, total);
        return;
    }
    switch (type) {
    case PGF_FE_PASSWORD:
        if (c->st == CS_AUTH && fault_point(c, PGF_PHASE_AUTH_RESPONSE, type, 0) == STOP) {
            evbuffer_drain(in, total);
            return;
        }
        break;
    case PGF_FE_PARSE:
    case PGF_FE_BIND:
    case PGF_FE_CLOSE:
        track_extended(c, type, total);
        break;
    case PGF_FE_QUERY: {
        const uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)total);
        const char *sql = NULL;
        pgf_fe_msg m;
        const char *em = NULL;
        if (p != NULL &&
            pgf_proto_frame(p, total, false, PGF_PROTO_MAX_MSG_LEN, &m, &em) == PGF_PROTO_OK &&
            pgf_proto_parse_query(&m, &sql) != 0)
            sql = NULL;
        free(c->query);
        c->query = dup_or_null(sql);
    }
        /* a simple Query is also a query point */
        __attribute__((fallthrough));
    case PGF_FE_EXECUTE:
        if (type == PGF_FE_EXECUTE)
            track_extended(c, type, total);
        if (c->st == CS_READY && fault_point(c, PGF_PHASE_QUERY, type, 0) == STOP) {
            evbuffer_drain(in, total);
            if (c->query_err && !closing(c)) {
                c->query_err = false;
                if (type == PGF_FE_QUERY) {
                    /* a Sync makes the upstream answer ReadyForQuery */
                    static const uint8_t sync[5] = {'S', 0, 0, 0, 4};
                    if (c->up.fd >= 0 && !c->up_dead)
                        evbuffer_add(c->up.out, sync, sizeof sync);
                } else {
                    c->skip_to_sync = true;
                }
            }
            return;
        }
        break;
    case PGF_FE_TERMINATE:
        if (fault_point(c, PGF_PHASE_TERMINATE, type, 0) == STOP) {
            evbuffer_drain(in, total);
            return;
        }
        break;
    default:
        break;
    }
    if (type == PGF_FE_QUERY)
        c->simple_pending++;
    forward(c, total);
}

static void process_cli(pconn *c)
{
    if (c->cli_dead)
        return;
    struct evbuffer *in = c->cli.in;
    while (!c->stalled && !c->cli_dead) {
        size_t avail = evbuffer_get_length(in);
        if (avail == 0)
            return;
        if (c->ignore_input || c->st == CS_CANCEL) {
            evbuffer_drain(in, avail);
            return;
        }
        if (c->st == CS_STARTUP) {
            if (avail < 8)
                return;
            uint8_t hdr[8];
            evbuffer_copyout(in, hdr, sizeof hdr);
            uint32_t len = pgf_rd_be32(hdr);
            if (len < 8 || len > PGF_PROTO_MAX_STARTUP_LEN) {
                /* PostgreSQL reports a bad length word as COMMERROR: to its
                 * log only; the client just sees the connection close. */
                pgf_log_warn("[proxy %llu] invalid length of startup packet from %s",
                             (unsigned long long)c->id, c->peer);
                evbuffer_drain(in, avail);
                conn_close(c, CK_FIN, false, "invalid length of startup packet");
                return;
            }
            if (avail < len)
                return;
            uint8_t *p = evbuffer_pullup(in, (ev_ssize_t)len);
            if (p == NULL) {
                conn_close(c, CK_RST, true, "out of memory");
                return;
            }
            handle_startup_packet(c, p, len);
            continue;
        }
        if (avail < 5)
            return;
        uint8_t hdr[5];
        evbuffer_copyout(in, hdr, sizeof hdr);
        uint32_t len = pgf_rd_be32(hdr + 1);
        if (len < 4 || len > PGF_PROTO_MAX_MSG_LEN) {
            pgf_log_warn("[proxy %llu] invalid message length from %s", (unsigned long long)c->id,
                         c->peer);
            evbuffer_drain(in, avail);
            conn_close(c, CK_FIN, false, "invalid message length");
            return;
        }
        size_t total = (size_t)len + 1;
        if (avail < total)
            return;
        handle_fe(c, hdr[0], total);
    }
}

static void on_cli_read(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pconn *c = arg;
    int r = side_read(&c->cli);
    if (r == 0)
        process_cli(c);
    if (r != 0 || c->cli.eof) {
        /* The client left (EOF) or its socket failed: the upstream goes
         * too, after what was forwarded to it (a Terminate, say). */
        if (c->st != CS_CANCEL)
            up_close(c, false);
        cli_kill(c, false);
    }
    pump(c);
}

static void on_cli_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int alen,
                      void *arg)
{
    (void)l;
    pgf_proxy *px = arg;
    pconn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->px = px;
    c->id = ++px->next_id;
    c->cli.fd = c->up.fd = -1;
    c->trunc_next_bytes = -1;
    pgf_buf_init(&c->pending_err);
    pgf_rng_init(&c->rng, px->faults ? pgf_fault_engine_seed(px->faults) : 0, c->id, 0x6761726267);
    snprintf(c->peer, sizeof c->peer, "unix");
    pgf_net_format_addr(addr, alen, c->peer, sizeof c->peer, NULL);
    if (addr != NULL && addr->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->next = px->conns;
    if (px->conns)
        px->conns->prev = c;
    px->conns = c;
    atomic_fetch_add(&px->st.accepted, 1);
    atomic_fetch_add(&px->st.active, 1);
    evutil_make_socket_nonblocking(fd);
    c->out = evbuffer_new();
    if (side_init(&c->cli, px->base, fd, on_cli_read, on_cli_write, c) != 0 || c->out == NULL) {
        c->cli_dead = true;
        schedule_reap(c);
        return;
    }
    if (px->faults != NULL)
        c->fc = pgf_fault_conn_new(px->faults, c->id);
    note(c, PGF_CONN_NOTE_OPEN, false);
    pgf_log_debug("[proxy %llu] accept from %s", (unsigned long long)c->id, c->peer);
    fault_point(c, PGF_PHASE_ACCEPT, 0, 0);
    pump(c);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)l;
    (void)arg;
    int e = EVUTIL_SOCKET_ERROR();
    pgf_log_warn("[proxy] accept failed: %s", evutil_socket_error_to_string(e));
}

/* ------------------------------------------------------------------ */
/* the proxy object                                                    */

static int resolve_upstream(pgf_proxy *px, const char *up, int port, char *err, size_t errlen)
{
    if (up == NULL || *up == '\0') {
        snprintf(err, errlen, "--upstream is required (HOST:PORT or a socket directory)");
        return PGF_EINVAL;
    }
    if (up[0] == '/') {
        struct sockaddr_un *sun = (struct sockaddr_un *)&px->up_sa;
        struct stat sb;
        char path[sizeof sun->sun_path + 64];
        if (stat(up, &sb) == 0 && S_ISDIR(sb.st_mode))
            snprintf(path, sizeof path, "%s/.s.PGSQL.%d", up, port ? port : 5432);
        else
            snprintf(path, sizeof path, "%s", up);
        if (strlen(path) >= sizeof sun->sun_path) {
            snprintf(err, errlen, "--upstream '%s': socket path too long", up);
            return PGF_EINVAL;
        }
        memset(sun, 0, sizeof *sun);
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, path, strlen(path) + 1); /* length checked above */
        px->up_salen = sizeof *sun;
        snprintf(px->up_name, sizeof px->up_name, "%s", path);
        return 0;
    }
    char host[256], ports[16];
    if (pgf_net_split_hostport(up, host, sizeof host, ports, sizeof ports) != 0 ||
        host[0] == '\0') {
        snprintf(err, errlen,
                 "--upstream '%s': expected HOST:PORT, [V6]:PORT or a socket directory", up);
        return PGF_EINVAL;
    }
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    int gai = getaddrinfo(host, ports, &hints, &res);
    if (gai != 0 || res == NULL) {
        snprintf(err, errlen, "--upstream '%s': %s", up, gai_strerror(gai));
        return PGF_EINVAL;
    }
    memcpy(&px->up_sa, res->ai_addr, res->ai_addrlen);
    px->up_salen = (socklen_t)res->ai_addrlen;
    freeaddrinfo(res);
    snprintf(px->up_name, sizeof px->up_name, "%s", up);
    return 0;
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_proxy *px = arg;
    if (px->stop_done)
        return;
    px->stop_done = true;
    for (int i = 0; i < px->nlisteners; i++)
        evconnlistener_free(px->listeners[i]);
    px->nlisteners = 0;
    px->listening = false;
    if (px->unix_path[0] != '\0')
        unlink(px->unix_path);
    for (pconn *c = px->conns; c != NULL; c = c->next) {
        up_close(c, true);
        cli_kill(c, false);
    }
    on_reap(-1, 0, px);
    if (px->own_base)
        event_base_loopexit(px->base, NULL);
}

int pgf_proxy_new(const pgf_proxy_config *cfg, struct event_base *base, pgf_proxy **out, char *err,
                  size_t errlen)
{
    *out = NULL;
    pthread_once(&evthread_once, init_evthread);
    if (cfg->nlisten > PGF__MAX_LISTENERS - 1) {
        snprintf(err, errlen, "too many --listen addresses (at most %d)", PGF__MAX_LISTENERS - 1);
        return PGF_EINVAL;
    }
    if (cfg->nlisten == 0 && cfg->unix_socket_dir == NULL) {
        snprintf(err, errlen, "nothing to listen on (give --listen or --unix-socket-dir)");
        return PGF_EINVAL;
    }
    pgf_proxy *px = calloc(1, sizeof *px);
    if (px == NULL) {
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    int e = resolve_upstream(px, cfg->upstream, cfg->upstream_port, err, errlen);
    if (e != 0) {
        free(px);
        return e;
    }
    bool oom = false;
    px->listen = calloc((size_t)cfg->nlisten + 1, sizeof *px->listen);
    oom |= px->listen == NULL;
    for (int i = 0; i < cfg->nlisten && !oom; i++) {
        px->listen[i] = strdup(cfg->listen[i]);
        oom |= px->listen[i] == NULL;
        px->nlisten = i + 1;
    }
    if (cfg->unix_socket_dir != NULL && !oom) {
        px->unix_dir = strdup(cfg->unix_socket_dir);
        oom |= px->unix_dir == NULL;
    }
    px->unix_port = cfg->unix_port;
    px->connect_timeout_ms = cfg->connect_timeout_ms ? cfg->connect_timeout_ms : 5000;
    px->faults = cfg->faults;
    px->on_fault = cfg->on_fault;
    px->on_fault_arg = cfg->on_fault_arg;
    px->on_conn = cfg->on_conn;
    px->on_conn_arg = cfg->on_conn_arg;
    px->quiet = cfg->quiet;
    if (!oom) {
        px->own_base = base == NULL;
        px->base = base ? base : event_base_new();
        oom |= px->base == NULL;
    }
    if (!oom) {
        px->stop_ev = event_new(px->base, -1, 0, on_stop, px);
        px->reap_ev = event_new(px->base, -1, 0, on_reap, px);
        px->relisten_ev = evtimer_new(px->base, on_relisten, px);
        oom |= !px->stop_ev || !px->reap_ev || !px->relisten_ev;
    }
    if (oom) {
        snprintf(err, errlen, "out of memory");
        pgf_proxy_free(px);
        return PGF_ENOMEM;
    }
    if (cfg->fault_log != NULL) {
        px->flog = fopen(cfg->fault_log, "a");
        if (px->flog == NULL) {
            snprintf(err, errlen, "%s: cannot open fault log: %s", cfg->fault_log, strerror(errno));
            pgf_proxy_free(px);
            return PGF_EIO;
        }
    }
    px->start_ns = pgf_now_ns();
    *out = px;
    return 0;
}

static int listen_tcp(pgf_proxy *px, const char *spec, char *err, size_t errlen)
{
    struct evconnlistener *l;
    int bound;
    int e = pgf_net_listen_tcp(px->base, spec, "127.0.0.1:6432", on_accept, px, &l,
                               px->addrs[px->naddrs], sizeof px->addrs[0], &bound, err, errlen);
    if (e != 0)
        return e;
    evconnlistener_set_error_cb(l, on_accept_error);
    px->naddrs++;
    if (px->port == 0)
        px->port = bound;
    px->listeners[px->nlisteners++] = l;
    return 0;
}

static int listen_unix(pgf_proxy *px, char *err, size_t errlen)
{
    int port = px->unix_port ? px->unix_port : px->port ? px->port : 5432;
    struct sockaddr_un sun;
    memset(&sun, 0, sizeof sun);
    sun.sun_family = AF_UNIX;
    int n = snprintf(px->unix_path, sizeof px->unix_path, "%s/.s.PGSQL.%d", px->unix_dir, port);
    if (n < 0 || (size_t)n >= sizeof sun.sun_path) {
        snprintf(err, errlen, "--unix-socket-dir '%s': socket path too long", px->unix_dir);
        px->unix_path[0] = '\0';
        return PGF_EINVAL;
    }
    memcpy(sun.sun_path, px->unix_path, (size_t)n + 1);
    unlink(px->unix_path);
    struct evconnlistener *l = evconnlistener_new_bind(
        px->base, on_accept, px, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 4096,
        (struct sockaddr *)&sun, sizeof sun);
    if (l == NULL) {
        snprintf(err, errlen, "cannot listen on %s: %s", px->unix_path, strerror(errno));
        px->unix_path[0] = '\0';
        return PGF_EBIND;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    snprintf(px->addrs[px->naddrs++], sizeof px->addrs[0], "unix %.240s", px->unix_path);
    px->listeners[px->nlisteners++] = l;
    return 0;
}

int pgf_proxy_start(pgf_proxy *px, char *err, size_t errlen)
{
    for (int i = 0; i < px->nlisten; i++) {
        int e = listen_tcp(px, px->listen[i], err, errlen);
        if (e != 0)
            return e;
    }
    if (px->unix_dir != NULL) {
        int e = listen_unix(px, err, errlen);
        if (e != 0)
            return e;
    }
    px->listening = true;
    if (!px->quiet) {
        for (int i = 0; i < px->naddrs; i++)
            printf("listening %s\n", px->addrs[i]);
        printf("upstream %s\n", px->up_name);
        fflush(stdout);
    }
    return 0;
}

static void *proxy_thread(void *arg)
{
    pgf_proxy *px = arg;
    event_base_dispatch(px->base);
    return NULL;
}

int pgf_proxy_start_thread(pgf_proxy *px, char *err, size_t errlen)
{
    if (!px->own_base) {
        snprintf(err, errlen, "pgf_proxy_start_thread needs a proxy created with base NULL");
        return PGF_EINVAL;
    }
    int e = pgf_proxy_start(px, err, errlen);
    if (e != 0)
        return e;
    if (pthread_create(&px->thread, NULL, proxy_thread, px) != 0) {
        snprintf(err, errlen, "cannot start the proxy thread");
        return PGF_EINTERNAL;
    }
    px->thread_started = true;
    return 0;
}

void pgf_proxy_stop(pgf_proxy *px)
{
    if (px == NULL || atomic_exchange(&px->stopped, true))
        return;
    event_active(px->stop_ev, EV_TIMEOUT, 0);
    if (px->thread_started) {
        pthread_join(px->thread, NULL);
        px->thread_started = false;
    }
}

void pgf_proxy_free(pgf_proxy *px)
{
    if (px == NULL)
        return;
    if (px->thread_started)
        pgf_proxy_stop(px);
    atomic_store(&px->stopped, true);
    if (px->stop_ev != NULL)
        on_stop(-1, 0, px);     /* no loop runs it any more; a no-op if one did */
    while (px->conns != NULL) { /* only if the loop never ran the reap */
        pconn *c = px->conns;
        c->up_dead = c->cli_dead = true;
        conn_free(c);
    }
    if (px->stop_ev)
        event_free(px->stop_ev);
    if (px->reap_ev)
        event_free(px->reap_ev);
    if (px->relisten_ev)
        event_free(px->relisten_ev);
    if (px->own_base && px->base)
        event_base_free(px->base);
    for (int i = 0; i < px->nlisten; i++)
        free(px->listen[i]);
    free(px->listen);
    free(px->unix_dir);
    if (px->flog)
        fclose(px->flog);
    free(px);
}

int pgf_proxy_set_listening(pgf_proxy *px, bool up)
{
    for (int i = 0; i < px->nlisteners; i++) {
        if (up)
            evconnlistener_enable(px->listeners[i]);
        else
            evconnlistener_disable(px->listeners[i]);
    }
    px->listening = up && px->nlisteners > 0;
    return 0;
}

bool pgf_proxy_listening(const pgf_proxy *px)
{
    return px->listening;
}

int pgf_proxy_addresses(const pgf_proxy *px, char (*out)[256], int n)
{
    for (int i = 0; i < px->naddrs && i < n; i++)
        snprintf(out[i], 256, "%s", px->addrs[i]);
    return px->naddrs;
}

int pgf_proxy_port(const pgf_proxy *px)
{
    return px->port;
}

struct event_base *pgf_proxy_base(pgf_proxy *px)
{
    return px->base;
}

void pgf_proxy_get_stats(const pgf_proxy *px, pgf_proxy_stats *o)
{
    pgf_proxy *p = (pgf_proxy *)px;
    o->accepted = atomic_load(&p->st.accepted);
    o->active = atomic_load(&p->st.active);
    o->sessions = atomic_load(&p->st.sessions);
    o->upstream_failures = atomic_load(&p->st.upstream_failures);
    o->cancels = atomic_load(&p->st.cancels);
    o->faults_fired = atomic_load(&p->st.faults_fired);
    o->bytes_to_upstream = atomic_load(&p->st.to_up);
    o->bytes_to_client = atomic_load(&p->st.to_cli);
}

char *pgf_proxy_stats_json(const pgf_proxy *px)
{
    pgf_proxy_stats s;
    pgf_proxy_get_stats(px, &s);
    json_t *o = json_object();
    json_object_set_new(o, "accepted", json_integer((json_int_t)s.accepted));
    json_object_set_new(o, "active", json_integer((json_int_t)s.active));
    json_object_set_new(o, "sessions", json_integer((json_int_t)s.sessions));
    json_object_set_new(o, "upstream_failures", json_integer((json_int_t)s.upstream_failures));
    json_object_set_new(o, "cancels", json_integer((json_int_t)s.cancels));
    json_object_set_new(o, "faults_fired", json_integer((json_int_t)s.faults_fired));
    json_object_set_new(o, "bytes_to_upstream", json_integer((json_int_t)s.bytes_to_upstream));
    json_object_set_new(o, "bytes_to_client", json_integer((json_int_t)s.bytes_to_client));
    json_object_set_new(o, "upstream", json_string(px->up_name));
    json_object_set_new(o, "listening", json_boolean(px->listening));
    char *str = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return str;
}
