/* conn.c - one client connection of the fake server: accept, the state
 * (one set_state for every change), fault points (before each backend
 * message of interest and after each frontend message the fault engine is
 * asked, see fault.h, and the action is carried out here), framing of the
 * input and dispatch by state, the authentication deadline.
 *
 * The handlers live in startup.c and query.c, the byte pump in pump.c; see
 * conn_int.h for the layers.
 */
#include <assert.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "conn_int.h"

#define S(st) (1u << (st))
static const struct {
    const char *name;
    int group;     /* index into stats.by_phase, -1: not counted */
    unsigned next; /* S(state) bits: the states it may move to */
} states[] = {
#define X(st, nm, grp, nxt) [st] = {nm, grp, nxt},
    PGF_CONN_STATES(X)
#undef X
};
#undef S
_Static_assert(sizeof states / sizeof states[0] == ST_CLOSED + 1, "one row per state");
_Static_assert(sizeof(((pgf_server *)0)->stats.by_phase) /
                       sizeof(((pgf_server *)0)->stats.by_phase[0]) ==
                   3,
               "phase groups 0..2 are stats.by_phase");

const char *pgf__conn_state_name(enum conn_state st)
{
    return states[st].name;
}

/* The only writer of c->state (see PGF_CONN_STATES). */
void pgf__conn_set_state(pgf__conn *c, enum conn_state st)
{
    if (!(states[c->state].next & (1u << st))) {
        /* A bug in the server, never the client's doing. */
        pgf_log_error("[conn %llu %s] undeclared state change to %s", (unsigned long long)c->id,
                      states[c->state].name, states[st].name);
        assert(!"undeclared connection state change");
    }
    int from = states[c->state].group, to = states[st].group;
    if (from != to) {
        if (from >= 0)
            atomic_fetch_sub(&c->srv->stats.by_phase[from], 1);
        if (to >= 0)
            atomic_fetch_add(&c->srv->stats.by_phase[to], 1);
    }
    c->state = st;
}

/* ------------------------------------------------------------------ */
/* building messages                                                   */

void pgf__conn_send_error(pgf__conn *c, const char *severity, const char *sqlstate, const char *msg,
                          const char *detail, const char *hint)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_error_fields e = {0};
    e.severity = severity;
    e.sqlstate = sqlstate;
    e.message = msg;
    e.detail = detail;
    e.hint = hint;
    if (strcmp(severity, "WARNING") == 0 || strcmp(severity, "NOTICE") == 0)
        pgf_msg_notice(&b, &e);
    else
        pgf_msg_error(&b, &e);
    pgf__conn_queue_buf(c, &b);
    pgf_buf_free(&b);
}

void pgf__conn_send_fatal(pgf__conn *c, const char *sqlstate, const char *msg)
{
    pgf__conn_send_error(c, "FATAL", sqlstate, msg, NULL, NULL);
    pgf__conn_queue_close(c, CK_FIN);
}

/* ------------------------------------------------------------------ */
/* fault points                                                        */

static void fill_ctx(pgf__conn *c, pgf_fault_ctx *ctx, uint8_t msg_type)
{
    memset(ctx, 0, sizeof *ctx);
    ctx->conn_id = c->id;
    ctx->user = c->user;
    ctx->database = c->database;
    ctx->application_name = c->app;
    ctx->client_addr = c->peer;
    ctx->query = c->cur_query;
    ctx->msg_type = msg_type;
    ctx->elapsed_ns = pgf__server_elapsed_ns(c->srv);
    ctx->backend_pid = c->key_sent ? c->pid : 0;
    ctx->client_socket = c->is_unix ? c->srv->unix_path : NULL;
    ctx->wall_us = pgf_wall_us();
}

void pgf__conn_note(pgf__conn *c, pgf_server_conn_note note, bool auth_ok, const char *why)
{
    if (c->srv->on_conn == NULL)
        return;
    pgf_server_conn_info info = {
        c->id, c->peer, c->app, c->user, c->ready_once, auth_ok, c->sql.txn ? c->sql.txn : 'I',
        why};
    pgf__server_obs_lock(c->srv);
    c->srv->on_conn(c->srv->on_conn_arg, note, &info);
    pgf__server_obs_unlock(c->srv);
}

void pgf__conn_auth_failed(pgf__conn *c)
{
    pgf__conn_note(c, PGF_CONN_NOTE_LOGIN, false, "28P01");
    char msg[256];
    snprintf(msg, sizeof msg, "password authentication failed for user \"%s\"",
             c->user ? c->user : "");
    atomic_fetch_add(&c->srv->stats.auth_failed, 1);
    pgf__conn_send_fatal(c, "28P01", msg);
}

/* Carry out a fired action. msg/len: the backend message about to be sent
 * at a before-send point (NULL at after-receive points). Returns GO when
 * the normal flow continues (msg, if any, has been queued), STOP when the
 * fault replaced it (an error was sent or the connection is closing). */
static int apply(pgf__conn *c, pgf_phase ph, const pgf_fault_action *a, const uint8_t *msg,
                 size_t len)
{
    atomic_fetch_add(&c->srv->stats.faults_fired, 1);
    pgf_log_info("[conn %llu %s] fault '%s': %s at %s", (unsigned long long)c->id,
                 pgf__conn_state_name(c->state), a->rule ? a->rule : "?", pgf_action_name(a->kind),
                 pgf_phase_name(ph));
    switch (a->kind) {
    case PGF_ACTION_NONE:
        break;
    case PGF_ACTION_AUTH_FAIL:
        pgf__conn_auth_failed(c);
        return STOP;
    case PGF_ACTION_ERROR: {
        const char *sev = a->severity ? a->severity : "ERROR";
        pgf__conn_send_error(c, sev, a->sqlstate ? a->sqlstate : "XX000",
                             a->message ? a->message : "fault injected by pgfault", a->detail,
                             a->hint);
        /* FATAL and WARNING (crash-shutdown style notices) end the session;
         * so does any error outside the query cycle, as in PostgreSQL,
         * where every error before ReadyForQuery is fatal. */
        bool in_query =
            c->state == ST_READY && (ph == PGF_PHASE_QUERY || ph == PGF_PHASE_ROW_DESCRIPTION ||
                                     ph == PGF_PHASE_DATA_ROW || ph == PGF_PHASE_COMMAND_COMPLETE);
        if (strcmp(sev, "ERROR") != 0 || !in_query)
            pgf__conn_queue_close(c, CK_FIN);
        return STOP;
    }
    case PGF_ACTION_CLOSE:
        if (a->reset)
            pgf__conn_close(c, CK_RST, "fault");
        else
            pgf__conn_queue_close(c, CK_FIN);
        return STOP;
    case PGF_ACTION_RESET:
        pgf__conn_close(c, CK_RST, "fault");
        return STOP;
    case PGF_ACTION_HALF_CLOSE:
        if (a->direction == 'r') {
            c->ignore_input = true;
            break;
        }
        pgf__conn_queue_close(c, CK_SHUT_WR);
        return STOP;
    case PGF_ACTION_TRUNCATE:
        c->trunc_reset = a->reset;
        if (a->messages > 0) {
            c->trunc_msgs = (int)a->messages;
        } else if (msg != NULL) {
            pgf__conn_queue_raw(c, msg, a->bytes < len ? a->bytes : len);
            pgf__conn_queue_close(c, a->reset ? CK_RST : CK_FIN);
            return STOP;
        } else {
            c->trunc_next_bytes = a->bytes;
        }
        break;
    case PGF_ACTION_STALL:
        /* Stall here, not earlier: what was queued before this point (the
         * AuthenticationOk before parameter-status, say) still goes out. */
        pgf__conn_flush(c);
        if (c->state == ST_CLOSED)
            return STOP;
        c->stalled = true;
        if (a->ms > 0)
            pgf_timer_arm(c->stall_timer, PGF_MS_NS(a->ms));
        break;
    case PGF_ACTION_DELAY:
        pgf__conn_queue_delay(c, a->ms);
        break;
    case PGF_ACTION_DRIP:
        c->drip_slice = a->slice ? a->slice : 1;
        c->drip_ms = a->ms;
        break;
    case PGF_ACTION_BANDWIDTH: {
        /* 20 slices a second approximates the rate without a timer storm. */
        uint32_t bps = a->bytes_per_sec ? a->bytes_per_sec : 1;
        c->drip_slice = bps / 20 ? bps / 20 : 1;
        c->drip_ms = bps / 20 ? 50 : 1000 / bps;
        break;
    }
    case PGF_ACTION_GARBAGE: {
        uint32_t n = a->bytes ? a->bytes : 16;
        uint8_t junk[256];
        for (uint32_t done = 0; done < n;) {
            uint32_t m = n - done < sizeof junk ? n - done : (uint32_t)sizeof junk;
            for (uint32_t i = 0; i < m; i++)
                junk[i] = (uint8_t)pgf_rng_next(&c->rng);
            /* A type byte no backend message has, then a length word of
             * -1: every client rejects it at once (libpq: "lost
             * synchronization with server: got message type ..., length
             * -1") instead of waiting for a random-length body that eats
             * the messages after it. The rest is random (seeded). */
            for (uint32_t i = 0; done == 0 && i < 5 && i < m; i++)
                junk[i] = 0xff;
            pgf__conn_queue_raw(c, junk, m);
            done += m;
        }
        break;
    }
    case PGF_ACTION_REFUSE:
        if (a->ms > 0)
            pgf__server_refuse_for(c->loop, a->ms);
        pgf__conn_close(c, CK_FIN, "refused by fault");
        return STOP;
    case PGF_ACTION_COUNT:
        break;
    }
    if (msg != NULL)
        pgf__conn_queue_msg(c, msg, len);
    return GO;
}

void pgf__conn_event(pgf__conn *c, const char *event, const char *cause)
{
    if (c->srv->on_event == NULL)
        return;
    pgf_fault_ctx ctx;
    fill_ctx(c, &ctx, 0);
    bool closed = strcmp(event, "closed") == 0;
    pgf__server_obs_lock(c->srv);
    c->srv->on_event(c->srv->on_event_arg, event, &ctx, cause,
                     closed && c->last_fault[0] != '\0' ? c->last_fault : NULL);
    pgf__server_obs_unlock(c->srv);
}

/* Ask the engine at phase ph; see apply() for the return value. */
int pgf__conn_fault_point(pgf__conn *c, pgf_phase ph, uint8_t type, const uint8_t *msg, size_t len)
{
    pgf_fault_action a;
    if (c->srv->faults != NULL && c->fc != NULL && c->state != ST_CLOSED) {
        pgf_fault_ctx ctx;
        fill_ctx(c, &ctx, type);
        if (pgf_fault_decide(c->srv->faults, c->fc, ph, &ctx, &a)) {
            if (c->srv->on_fault != NULL) {
                pgf__server_obs_lock(c->srv);
                c->srv->on_fault(c->srv->on_fault_arg, &ctx, ph, &a);
                pgf__server_obs_unlock(c->srv);
            }
            snprintf(c->last_fault, sizeof c->last_fault, "%s", a.rule ? a.rule : "");
            return apply(c, ph, &a, msg, len);
        }
    }
    if (msg != NULL)
        pgf__conn_queue_msg(c, msg, len);
    return GO;
}

/* Send a built message through the fault point ph. */
int pgf__conn_send_at(pgf__conn *c, pgf_phase ph, pgf_buf *b)
{
    if (b->failed) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return STOP;
    }
    return pgf__conn_fault_point(c, ph, b->len ? b->data[0] : 0, b->data, b->len);
}

static void on_stall_end(void *arg)
{
    pgf__conn *c = arg;
    c->stalled = false;
    pgf__conn_process_input(c);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static void dispatch(pgf__conn *c, const pgf_fe_msg *m)
{
    switch (c->state) {
    case ST_STARTUP:
        pgf__conn_handle_startup(c, m);
        return;
    case ST_AUTH_PASSWORD:
    case ST_AUTH_MD5:
        pgf__conn_handle_password(c, m);
        return;
    case ST_AUTH_SASL_INIT:
    case ST_AUTH_SASL_FIN:
        pgf__conn_handle_sasl(c, m);
        return;
    case ST_READY:
        pgf__conn_handle_ready(c, m);
        return;
    case ST_CLOSED:
        return;
    }
}

/* The message types PostgreSQL accepts in this state (before the length
 * word is read). */
static bool known_type(const pgf__conn *c, uint8_t t)
{
    if (c->state != ST_READY)
        return t == PGF_FE_PASSWORD;
    return strchr("QPBDECHSXFdcf", t) != NULL && t != 0;
}

/* Largest length word accepted for the next message (docs/proto.md). */
static uint32_t max_len(const pgf__conn *c, uint8_t type)
{
    if (c->state == ST_STARTUP)
        return PGF_PROTO_MAX_STARTUP_LEN;
    if (c->state != ST_READY)
        return PGF_CONN_MAX_AUTH_MSG_LEN;
    return strchr("QPBFd", type) != NULL ? PGF_PROTO_MAX_MSG_LEN : PGF_CONN_MAX_SMALL_MSG_LEN;
}

void pgf__conn_process_input(pgf__conn *c)
{
    size_t off = 0;
    while (c->state != ST_CLOSED && !c->stalled && !c->busy && !c->running && !c->out_blocked &&
           !c->out_closed && !c->ignore_input && off < c->in.len) {
        bool startup = c->state == ST_STARTUP;
        if (!startup && !known_type(c, c->in.data[off])) {
            /* PostgreSQL reads the type byte first and rejects it before
             * looking at the length word. */
            atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
            char msg[96];
            if (c->state == ST_READY)
                snprintf(msg, sizeof msg, "invalid frontend message type %d", c->in.data[off]);
            else
                snprintf(msg, sizeof msg, "expected %s response, got message type %d",
                         c->state == ST_AUTH_SASL_INIT || c->state == ST_AUTH_SASL_FIN ? "SASL"
                                                                                       : "password",
                         c->in.data[off]);
            pgf__conn_send_fatal(c, "08P01", msg);
            off = c->in.len;
            break;
        }
        pgf_fe_msg m;
        const char *err = NULL;
        int r = pgf_proto_frame(c->in.data + off, c->in.len - off, startup,
                                max_len(c, c->in.data[off]), &m, &err);
        if (r == PGF_PROTO_NEED_MORE)
            break;
        if (r < 0) {
            atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
            pgf_log_info("[conn %llu %s] protocol violation: %s", (unsigned long long)c->id,
                         pgf__conn_state_name(c->state), err ? err : pgf_strerror(r));
            /* PostgreSQL reports a bad length word as COMMERROR: to its log
             * only; the client just sees the connection close. */
            pgf__conn_close(c, CK_FIN, err ? err : "invalid message length");
            return;
        }
        c->in_next = off + m.total_len;
        if (c->idle_timer != NULL)
            pgf_timer_cancel(c->idle_timer); /* a message came: not idle any more */
        dispatch(c, &m);
        off += m.total_len;
        /* Backpressure: the client is not reading what we send. */
        if (c->out_bytes > PGF_CONN_OUT_HIGH)
            c->out_blocked = true;
    }
    if (c->terminated && off < c->in.len && !c->noted_after_term) {
        c->noted_after_term = true;
        pgf__conn_note(c, PGF_CONN_NOTE_AFTER_TERMINATE, false, NULL);
    }
    c->in_next = 0;
    if (c->state == ST_CLOSED)
        return;
    pgf_buf_consume(&c->in, off);
    /* Give back a large buffer once it is drained (a big message passed). */
    if (c->in.len == 0 && c->in.cap > 4096)
        pgf_buf_free(&c->in);
    if (c->peer_eof) {
        /* The client is gone: once nothing more can be processed, close
         * after what is queued, as PostgreSQL exits at its next read. */
        if (c->stalled || (c->out_closed && c->out_head == NULL))
            pgf__conn_close(c, CK_FIN, "client closed the connection");
        else if (!c->busy && !c->running && !c->out_blocked)
            pgf__conn_queue_close(c, CK_FIN); /* a close already queued does it */
    }
    pgf__conn_update_reading(c);
}

static void on_resume(void *arg)
{
    pgf__conn *c = arg;
    pgf_sim_activity();
    if (c->running && !c->busy && !c->out_blocked)
        pgf__conn_query_continue(c);
    if (c->state != ST_CLOSED)
        pgf__conn_process_input(c);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}

void pgf__conn_resume_later(pgf__conn *c)
{
    /* A timer due now, not event_active(): libevent runs events activated
     * from an active callback in the same pass, so a Query yielding that
     * way would never let the loop poll the other sockets. A due timer
     * runs after the next poll (and in sim mode at the same virtual time). */
    if (c->resume_timer != NULL)
        pgf_timer_arm(c->resume_timer, 0);
}

/* PostgreSQL's idle timeouts (14+): FATAL, then the backend exits. */
static void on_idle_timeout(void *arg)
{
    pgf__conn *c = arg;
    if (c->state == ST_CLOSED || c->busy || c->running)
        return;
    pgf_sim_activity();
    if (c->sql.txn == 'I')
        pgf__conn_send_fatal(c, "57P05", "terminating connection due to idle-session timeout");
    else
        pgf__conn_send_fatal(c, "25P03",
                             "terminating connection due to idle-in-transaction timeout");
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}

void pgf__conn_arm_idle_timeout(pgf__conn *c)
{
    int64_t ms = pgf_sql_guc_ms(&c->sql, c->sql.txn == 'I' ? "idle_session_timeout"
                                                           : "idle_in_transaction_session_timeout");
    if (ms > 0 && c->idle_timer != NULL)
        pgf_timer_arm(c->idle_timer, PGF_MS_NS((uint64_t)ms));
}

static void on_deadline(void *arg)
{
    pgf__conn *c = arg;
    /* authentication_timeout: PostgreSQL exits without a word. */
    pgf__conn_close(c, CK_FIN, "authentication timeout");
}

void pgf__conn_accept(pgf_server *s, int fd, const struct sockaddr *addr, int addrlen, bool is_unix)
{
    /* The id is the accept order, given out here by the one acceptor; the
     * id alone picks the loop, so which loop serves a connection (and
     * everything seeded by its id: pid, key, fault decisions) does not
     * depend on scheduling. */
    uint64_t id = ++s->next_conn_id;
    pgf__loop *l = pgf__server_loop_of(s, id);
    if (l->index == 0)
        pgf__conn_start(l, fd, addr, addrlen, is_unix, id);
    else
        pgf__server_hand_off(l, fd, addr, addrlen, is_unix, id);
}

void pgf__conn_start(pgf__loop *l, int fd, const struct sockaddr *addr, int addrlen, bool is_unix,
                     uint64_t id)
{
    pgf_server *s = l->srv;
    pgf__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = s;
    c->loop = l;
    c->fd = fd;
    c->id = id;
    c->is_unix = is_unix;
    c->trunc_next_bytes = -1;
    c->pid = (int32_t)(10000 + c->id % 2000000000u);
    pgf_rng_init(&c->rng, s->seed, c->id, 0x6b6579);
    c->key = (int32_t)pgf_rng_next(&c->rng);
    pgf_buf_init(&c->in);
    if (is_unix || addr == NULL) {
        snprintf(c->peer, sizeof c->peer, "unix");
    } else {
        char host[INET6_ADDRSTRLEN] = "?";
        int port = 0;
        if (addr->sa_family == AF_INET && addrlen >= (int)sizeof(struct sockaddr_in)) {
            const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
            inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
            port = ntohs(in->sin_port);
            snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
        } else if (addr->sa_family == AF_INET6) {
            const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
            inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
            port = ntohs(in6->sin6_port);
            snprintf(c->peer, sizeof c->peer, "[%s]:%d", host, port);
        }
    }
    evutil_make_socket_nonblocking(fd);
    if (!is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    c->rev = event_new(l->base, fd, EV_READ | EV_PERSIST, pgf__conn_on_read, c);
    c->wev = event_new(l->base, fd, EV_WRITE, pgf__conn_on_write, c);
    c->wtimer = pgf_timer_new(l->base, pgf__conn_on_wtimer, c);
    c->stall_timer = pgf_timer_new(l->base, on_stall_end, c);
    c->sleep_timer = pgf_timer_new(l->base, pgf__conn_on_sleep_done, c);
    c->deadline = pgf_timer_new(l->base, on_deadline, c);
    c->idle_timer = pgf_timer_new(l->base, on_idle_timeout, c);
    c->resume_timer = pgf_timer_new(l->base, on_resume, c);
    c->next = l->conns;
    if (l->conns)
        l->conns->prev = c;
    l->conns = c;
    atomic_fetch_add(&s->stats.accepted, 1);
    atomic_fetch_add(&s->stats.loop_accepted[l->index], 1);
    atomic_fetch_add(&s->stats.active, 1);
    /* calloc'd state is ST_STARTUP: count it as set_state would */
    atomic_fetch_add(&s->stats.by_phase[states[ST_STARTUP].group], 1);
    if (!c->rev || !c->wev || !c->wtimer || !c->stall_timer || !c->sleep_timer || !c->deadline ||
        !c->resume_timer || !c->idle_timer) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (s->faults != NULL)
        c->fc = pgf_fault_conn_new(s->faults, c->id);
    event_add(c->rev, NULL);
    c->reading = true;
    pgf_timer_arm(c->deadline, PGF_MS_NS(60000));
    pgf_log_debug("[conn %llu accept] from %s", (unsigned long long)c->id, c->peer);
    pgf__conn_note(c, PGF_CONN_NOTE_OPEN, false, NULL);
    pgf__conn_event(c, "accepted", NULL);
    pgf__conn_fault_point(c, PGF_PHASE_ACCEPT, 0, NULL, 0);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}
