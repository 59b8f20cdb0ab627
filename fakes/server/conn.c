/* conn.c - one client connection of the fake server.
 *
 * Three layers, top to bottom:
 *   - protocol handlers: startup, authentication, simple and extended
 *     query, cancel, terminate, as PostgreSQL 15 answers them;
 *   - fault points: before each backend message of interest and after
 *     each frontend message, the fault engine is asked (fault.h) and the
 *     action is carried out here;
 *   - the byte pump: input is framed by proto.c; output is a queue of
 *     chunks, each with a not-before time and an optional close marker, so
 *     delays, drips, stalls, truncation, FIN and RST all happen at an
 *     exact byte position without blocking the loop.
 *
 * A connection is only touched on its server's loop thread. Closing
 * removes its events and moves it to the server's reap list; it is freed
 * after the current callback returns, never inside it.
 */
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
#include "server_int.h"

enum conn_state {
    ST_STARTUP,        /* waiting for SSLRequest/GSSENCRequest/StartupMessage/CancelRequest */
    ST_AUTH_PASSWORD,  /* sent R 3, waiting for p */
    ST_AUTH_MD5,       /* sent R 5, waiting for p */
    ST_AUTH_SASL_INIT, /* sent R 10, waiting for SASLInitialResponse */
    ST_AUTH_SASL_FIN,  /* sent R 11, waiting for SASLResponse */
    ST_READY,          /* processing queries */
    ST_CLOSED,
};

static const char *const state_names[] = {"startup", "auth",  "auth",  "auth",
                                          "auth",    "query", "closed"};

enum close_kind { CK_NONE = 0, CK_FIN, CK_RST, CK_SHUT_WR };

typedef struct chunk {
    struct chunk *next;
    uint64_t not_before; /* monotonic ns; 0 = now */
    enum close_kind close;
    size_t off;
    pgf_buf data;
} chunk;

typedef struct prepared {
    char *name;
    char *query;
    uint16_t nparams;
    uint16_t ntypes; /* declared in Parse (may be fewer than nparams) */
    uint32_t *types;
} prepared;

typedef struct portal {
    char *name;
    char *query;
    int nparams;
    char **params;
    uint16_t nformats;
    int16_t *formats; /* result formats */
} portal;

struct pgf__conn {
    pgf_server *srv;
    pgf__conn *prev, *next;
    uint64_t id;
    int fd;
    bool is_unix;
    char peer[64];
    enum conn_state state;
    bool ssl_answered;
    bool counted_backend;
    struct event *rev, *wev;
    pgf_timer *wtimer, *stall_timer, *sleep_timer, *deadline;

    pgf_buf in;
    chunk *out_head, *out_tail;
    bool out_closed; /* a close marker is queued: nothing more may be queued */
    bool ignore_input;

    /* startup */
    char *user, *database, *app;
    const pgf__user *u; /* NULL for an unknown role */
    uint8_t md5_salt[4];
    pgf_scram_state *scram; /* only during a SCRAM exchange */
    int32_t pid, key;
    pgf_sql_session sql;
    pgf_rng rng;

    /* queries */
    char *q_text; /* simple query being executed */
    size_t *q_off, *q_len;
    int q_n, q_next;
    bool extended_sleep;       /* a sleeping statement came from Execute */
    pgf_sql_result *sleep_res; /* the pg_sleep statement in progress, allocated while sleeping */
    bool busy;                 /* a pg_sleep is running: input waits */
    bool skip_to_sync;
    prepared *stmts;
    int nstmts;
    portal *portals;
    int nportals;
    int16_t *cur_formats; /* result formats of the executing portal */
    uint16_t cur_nformats;
    const char *cur_query; /* for fault filters */

    /* faults */
    pgf_fault_conn *fc;
    bool stalled;
    uint32_t drip_slice, drip_ms;
    int trunc_msgs; /* >0: whole messages still allowed before closing */
    bool trunc_reset;
    long trunc_next_bytes; /* >=0: truncate the next queued message to this */
};

static void flush_out(pgf__conn *c);
static void process_input(pgf__conn *c);

/* Connections by phase, for the control API's stats. */
static int phase_group(enum conn_state st)
{
    switch (st) {
    case ST_STARTUP:
        return 0;
    case ST_AUTH_PASSWORD:
    case ST_AUTH_MD5:
    case ST_AUTH_SASL_INIT:
    case ST_AUTH_SASL_FIN:
        return 1;
    case ST_READY:
        return 2;
    case ST_CLOSED:
        return -1;
    }
    return -1;
}

static void set_state(pgf__conn *c, enum conn_state st)
{
    int from = phase_group(c->state), to = phase_group(st);
    if (from != to) {
        if (from >= 0)
            atomic_fetch_sub(&c->srv->stats.by_phase[from], 1);
        if (to >= 0)
            atomic_fetch_add(&c->srv->stats.by_phase[to], 1);
    }
    c->state = st;
}
static void conn_close(pgf__conn *c, enum close_kind how, const char *why);

/* ------------------------------------------------------------------ */
/* output queue                                                        */

static chunk *chunk_new(pgf__conn *c, uint64_t not_before)
{
    chunk *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->not_before = not_before;
    pgf_buf_init(&k->data);
    if (c->out_tail)
        c->out_tail->next = k;
    else
        c->out_head = k;
    c->out_tail = k;
    return k;
}

static void raw_queue(pgf__conn *c, const uint8_t *p, size_t n)
{
    if (c->out_closed || c->state == ST_CLOSED || n == 0)
        return;
    chunk *k = c->out_tail;
    if (k == NULL || k->close != CK_NONE || k->off > 0)
        k = chunk_new(c, 0);
    if (k == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    pgf_buf_put(&k->data, p, n);
}

static void queue_close(pgf__conn *c, enum close_kind how)
{
    if (c->out_closed || c->state == ST_CLOSED)
        return;
    chunk *k = chunk_new(c, 0);
    if (k == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    k->close = how;
    c->out_closed = true;
}

static void queue_delay(pgf__conn *c, uint32_t ms)
{
    if (c->out_closed)
        return;
    chunk_new(c, pgf__server_now(c->srv) + PGF_MS_NS(ms));
}

/* Queue one complete backend message, honouring a pending truncation. */
static void queue_msg(pgf__conn *c, const uint8_t *p, size_t n)
{
    if (c->trunc_next_bytes >= 0) {
        size_t keep = (size_t)c->trunc_next_bytes < n ? (size_t)c->trunc_next_bytes : n;
        c->trunc_next_bytes = -1;
        raw_queue(c, p, keep);
        queue_close(c, c->trunc_reset ? CK_RST : CK_FIN);
        return;
    }
    if (c->trunc_msgs > 0) {
        raw_queue(c, p, n);
        if (--c->trunc_msgs == 0)
            queue_close(c, c->trunc_reset ? CK_RST : CK_FIN);
        return;
    }
    raw_queue(c, p, n);
}

static void queue_buf(pgf__conn *c, pgf_buf *b)
{
    if (b->failed) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    queue_msg(c, b->data, b->len);
}

/* ------------------------------------------------------------------ */
/* closing                                                             */

static void free_events(pgf__conn *c)
{
    struct event **evs[] = {&c->rev, &c->wev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    pgf_timer **tms[] = {&c->wtimer, &c->stall_timer, &c->sleep_timer, &c->deadline};
    for (size_t i = 0; i < sizeof tms / sizeof tms[0]; i++) {
        pgf_timer_free(*tms[i]);
        *tms[i] = NULL;
    }
}

static void conn_close(pgf__conn *c, enum close_kind how, const char *why)
{
    if (c->state == ST_CLOSED)
        return;
    pgf_log_debug("[conn %llu %s] close (%s): %s", (unsigned long long)c->id, state_names[c->state],
                  how == CK_RST ? "reset" : "fin", why);
    free_events(c);
    if (c->fd >= 0) {
        if (how == CK_RST) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else {
            /* FIN first; unread input at close(2) would turn it into an RST. */
            shutdown(c->fd, SHUT_WR);
            char sink[4096];
            while (read(c->fd, sink, sizeof sink) > 0)
                ;
        }
        close(c->fd);
        c->fd = -1;
    }
    set_state(c, ST_CLOSED);
    if (c->counted_backend) {
        c->srv->backends--;
        c->counted_backend = false;
    }
    atomic_fetch_sub(&c->srv->stats.active, 1);
    atomic_fetch_add(&c->srv->stats.closed, 1);
    pgf__server_reap(c->srv, c);
}

void pgf__conn_abort(pgf__conn *c)
{
    conn_close(c, CK_FIN, "server stopping");
}

void pgf__conn_free(pgf__conn *c)
{
    if (c == NULL)
        return;
    free_events(c);
    if (c->fd >= 0)
        close(c->fd);
    pgf_buf_free(&c->in);
    for (chunk *k = c->out_head; k;) {
        chunk *n = k->next;
        pgf_buf_free(&k->data);
        free(k);
        k = n;
    }
    for (int i = 0; i < c->nstmts; i++) {
        free(c->stmts[i].name);
        free(c->stmts[i].query);
        free(c->stmts[i].types);
    }
    free(c->stmts);
    for (int i = 0; i < c->nportals; i++) {
        portal *p = &c->portals[i];
        free(p->name);
        free(p->query);
        for (int j = 0; j < p->nparams; j++)
            free(p->params[j]);
        free(p->params);
        free(p->formats);
    }
    free(c->portals);
    free(c->q_text);
    free(c->q_off);
    free(c->q_len);
    free(c->user);
    free(c->database);
    free(c->app);
    free(c->scram);
    free(c->sleep_res);
    pgf_sql_session_free(&c->sql);
    if (c->fc)
        pgf_fault_conn_free(c->fc);
    free(c);
}

/* ------------------------------------------------------------------ */
/* the byte pump                                                       */

static void flush_out(pgf__conn *c)
{
    while (c->state != ST_CLOSED && !c->stalled && c->out_head != NULL) {
        chunk *k = c->out_head;
        uint64_t now = pgf__server_now(c->srv);
        if (k->not_before > now) {
            pgf_timer_arm(c->wtimer, k->not_before - now);
            return;
        }
        if (k->off < k->data.len) {
            size_t n = k->data.len - k->off;
            if (c->drip_slice > 0 && n > c->drip_slice)
                n = c->drip_slice;
            ssize_t w = send(c->fd, k->data.data + k->off, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    event_add(c->wev, NULL);
                    return;
                }
                conn_close(c, CK_RST, strerror(errno));
                return;
            }
            k->off += (size_t)w;
            if (c->drip_slice > 0 && k->off < k->data.len) {
                k->not_before = now + PGF_MS_NS(c->drip_ms);
                continue;
            }
            if (k->off < k->data.len)
                continue;
        }
        /* chunk fully written */
        enum close_kind ck = k->close;
        c->out_head = k->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        pgf_buf_free(&k->data);
        free(k);
        if (ck == CK_SHUT_WR) {
            shutdown(c->fd, SHUT_WR);
            c->ignore_input = true;
        } else if (ck != CK_NONE) {
            conn_close(c, ck, "as queued");
            return;
        }
    }
}

static void on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_sim_activity();
    flush_out(arg);
}

static void on_wtimer(void *arg)
{
    flush_out(arg);
}

static void on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pgf__conn *c = arg;
    pgf_sim_activity();
    /* Read into a per-thread scratch buffer and keep only what arrived:
     * an idle connection then holds no 16 KB input buffer. */
    static _Thread_local uint8_t scratch[16384];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(fd, scratch, sizeof scratch, 0);
        if (n > 0) {
            if (c->ignore_input)
                continue;
            pgf_buf_put(&c->in, scratch, (size_t)n);
            if (c->in.failed) {
                conn_close(c, CK_RST, "out of memory");
                return;
            }
            /* Bound what a stalled or busy connection buffers. */
            if (c->in.len > 2 * PGF_PROTO_MAX_MSG_LEN) {
                conn_close(c, CK_RST, "input buffer limit");
                return;
            }
            if ((size_t)n < sizeof scratch)
                break;
            continue;
        }
        if (n == 0) {
            conn_close(c, CK_FIN, "client closed the connection");
            return;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            break;
        conn_close(c, CK_RST, strerror(errno));
        return;
    }
    process_input(c);
    if (c->state != ST_CLOSED)
        flush_out(c);
}

/* ------------------------------------------------------------------ */
/* building messages                                                   */

static void send_error(pgf__conn *c, const char *severity, const char *sqlstate, const char *msg,
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
    queue_buf(c, &b);
    pgf_buf_free(&b);
}

static void send_fatal(pgf__conn *c, const char *sqlstate, const char *msg)
{
    send_error(c, "FATAL", sqlstate, msg, NULL, NULL);
    queue_close(c, CK_FIN);
}

/* ------------------------------------------------------------------ */
/* fault points                                                        */

enum { GO = 0, STOP = 1 };

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
}

static void auth_failed(pgf__conn *c)
{
    char msg[256];
    snprintf(msg, sizeof msg, "password authentication failed for user \"%s\"",
             c->user ? c->user : "");
    atomic_fetch_add(&c->srv->stats.auth_failed, 1);
    send_fatal(c, "28P01", msg);
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
                 state_names[c->state], a->rule ? a->rule : "?", pgf_action_name(a->kind),
                 pgf_phase_name(ph));
    switch (a->kind) {
    case PGF_ACTION_NONE:
        break;
    case PGF_ACTION_AUTH_FAIL:
        auth_failed(c);
        return STOP;
    case PGF_ACTION_ERROR: {
        const char *sev = a->severity ? a->severity : "ERROR";
        send_error(c, sev, a->sqlstate ? a->sqlstate : "XX000",
                   a->message ? a->message : "fault injected by pgfault", a->detail, a->hint);
        /* FATAL and WARNING (crash-shutdown style notices) end the session;
         * so does any error outside the query cycle, as in PostgreSQL,
         * where every error before ReadyForQuery is fatal. */
        bool in_query =
            c->state == ST_READY && (ph == PGF_PHASE_QUERY || ph == PGF_PHASE_ROW_DESCRIPTION ||
                                     ph == PGF_PHASE_DATA_ROW || ph == PGF_PHASE_COMMAND_COMPLETE);
        if (strcmp(sev, "ERROR") != 0 || !in_query)
            queue_close(c, CK_FIN);
        return STOP;
    }
    case PGF_ACTION_CLOSE:
        if (a->reset)
            conn_close(c, CK_RST, "fault");
        else
            queue_close(c, CK_FIN);
        return STOP;
    case PGF_ACTION_RESET:
        conn_close(c, CK_RST, "fault");
        return STOP;
    case PGF_ACTION_HALF_CLOSE:
        if (a->direction == 'r') {
            c->ignore_input = true;
            break;
        }
        queue_close(c, CK_SHUT_WR);
        return STOP;
    case PGF_ACTION_TRUNCATE:
        c->trunc_reset = a->reset;
        if (a->messages > 0) {
            c->trunc_msgs = (int)a->messages;
        } else if (msg != NULL) {
            raw_queue(c, msg, a->bytes < len ? a->bytes : len);
            queue_close(c, a->reset ? CK_RST : CK_FIN);
            return STOP;
        } else {
            c->trunc_next_bytes = a->bytes;
        }
        break;
    case PGF_ACTION_STALL:
        /* Stall here, not earlier: what was queued before this point (the
         * AuthenticationOk before parameter-status, say) still goes out. */
        flush_out(c);
        if (c->state == ST_CLOSED)
            return STOP;
        c->stalled = true;
        if (a->ms > 0)
            pgf_timer_arm(c->stall_timer, PGF_MS_NS(a->ms));
        break;
    case PGF_ACTION_DELAY:
        queue_delay(c, a->ms);
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
            raw_queue(c, junk, m);
            done += m;
        }
        break;
    }
    case PGF_ACTION_REFUSE:
        if (a->ms > 0)
            pgf__server_refuse_for(c->srv, a->ms);
        conn_close(c, CK_FIN, "refused by fault");
        return STOP;
    case PGF_ACTION_COUNT:
        break;
    }
    if (msg != NULL)
        queue_msg(c, msg, len);
    return GO;
}

/* Ask the engine at phase ph; see apply() for the return value. */
static int fault_point(pgf__conn *c, pgf_phase ph, uint8_t type, const uint8_t *msg, size_t len)
{
    pgf_fault_action a;
    if (c->srv->faults != NULL && c->fc != NULL && c->state != ST_CLOSED) {
        pgf_fault_ctx ctx;
        fill_ctx(c, &ctx, type);
        if (pgf_fault_decide(c->srv->faults, c->fc, ph, &ctx, &a)) {
            if (c->srv->on_fault != NULL)
                c->srv->on_fault(c->srv->on_fault_arg, &ctx, ph, &a);
            return apply(c, ph, &a, msg, len);
        }
    }
    if (msg != NULL)
        queue_msg(c, msg, len);
    return GO;
}

/* Send a built message through the fault point ph. */
static int send_at(pgf__conn *c, pgf_phase ph, pgf_buf *b)
{
    if (b->failed) {
        conn_close(c, CK_RST, "out of memory");
        return STOP;
    }
    return fault_point(c, ph, b->len ? b->data[0] : 0, b->data, b->len);
}

static void on_stall_end(void *arg)
{
    pgf__conn *c = arg;
    c->stalled = false;
    process_input(c);
    if (c->state != ST_CLOSED)
        flush_out(c);
}

/* ------------------------------------------------------------------ */
/* startup and authentication                                          */

static const pgf__user *find_user(pgf_server *s, const char *name)
{
    for (int i = 0; i < s->nusers; i++)
        if (strcmp(s->users[i].name, name) == 0)
            return &s->users[i];
    return NULL;
}

static bool database_ok(pgf_server *s, const char *db)
{
    if (s->ndatabases == 0)
        return true;
    for (int i = 0; i < s->ndatabases; i++)
        if (strcmp(s->databases[i], db) == 0)
            return true;
    return false;
}

/* The method an unknown role is challenged with: PostgreSQL picks it from
 * the pg_hba line; the fake's "hba" is the first user's method. */
static pgf_auth_method hba_method(pgf_server *s)
{
    return s->nusers > 0 ? s->users[0].method : PGF_AUTH_METHOD_TRUST;
}

static void finish_startup(pgf__conn *c)
{
    /* AuthenticationOk, then role/database checks, as PostgreSQL's
     * InitPostgres does them after authentication. */
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_auth(&b, PGF_AUTH_OK, NULL, 0);
    int r = send_at(c, PGF_PHASE_AUTH_OK, &b);
    pgf_buf_free(&b);
    if (r == STOP)
        return;
    if (c->u == NULL) {
        char msg[256];
        snprintf(msg, sizeof msg, "role \"%s\" does not exist", c->user);
        atomic_fetch_add(&c->srv->stats.auth_failed, 1);
        send_fatal(c, "28000", msg);
        return;
    }
    if (!database_ok(c->srv, c->database)) {
        char msg[256];
        snprintf(msg, sizeof msg, "database \"%s\" does not exist", c->database);
        send_fatal(c, "3D000", msg);
        return;
    }
    atomic_fetch_add(&c->srv->stats.auth_ok, 1);
    set_state(c, ST_READY);
    if (c->deadline)
        pgf_timer_cancel(c->deadline);

    /* The 13 ParameterStatus messages, in PostgreSQL's order (sql.c's table). */
    const char *name;
    for (int i = 0; (name = pgf_sql_reported_guc_at(i)) != NULL; i++) {
        pgf_buf_reset(&b);
        pgf_msg_parameter_status(&b, name, pgf_sql_get_guc(&c->sql, name));
        r = i == 0 ? send_at(c, PGF_PHASE_PARAMETER_STATUS, &b) : (queue_buf(c, &b), GO);
        if (r == STOP || c->out_closed) {
            pgf_buf_free(&b);
            return;
        }
    }
    pgf_buf_reset(&b);
    pgf_msg_backend_key(&b, c->pid, c->key);
    queue_buf(c, &b);
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'I');
    r = send_at(c, PGF_PHASE_READY, &b);
    pgf_buf_free(&b);
    if (r == GO)
        fault_point(c, PGF_PHASE_IDLE, 0, NULL, 0);
}

static void begin_auth(pgf__conn *c)
{
    pgf_auth_method m = c->u ? c->u->method : hba_method(c->srv);
    if (c->u == NULL && m == PGF_AUTH_METHOD_MD5)
        m = PGF_AUTH_METHOD_SCRAM; /* PostgreSQL's mock auth for md5 lines is SCRAM */
    pgf_buf b = PGF_BUF_INIT;
    switch (m) {
    case PGF_AUTH_METHOD_TRUST:
        pgf_buf_free(&b);
        finish_startup(c);
        return;
    case PGF_AUTH_METHOD_PASSWORD:
        pgf_msg_auth(&b, PGF_AUTH_CLEARTEXT, NULL, 0);
        set_state(c, ST_AUTH_PASSWORD);
        break;
    case PGF_AUTH_METHOD_MD5:
        for (int i = 0; i < 4; i++)
            c->md5_salt[i] = (uint8_t)pgf_rng_next(&c->rng);
        pgf_msg_auth(&b, PGF_AUTH_MD5, c->md5_salt, 4);
        c->state = ST_AUTH_MD5;
        break;
    case PGF_AUTH_METHOD_SCRAM: {
        static const char *const mechs[] = {"SCRAM-SHA-256"};
        pgf_msg_auth_sasl(&b, mechs, 1);
        set_state(c, ST_AUTH_SASL_INIT);
        break;
    }
    }
    send_at(c, PGF_PHASE_AUTH_REQUEST, &b);
    pgf_buf_free(&b);
}

static void handle_startup(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_server *s = c->srv;
    if (m->code == PGF_PROTO_SSL_REQUEST || m->code == PGF_PROTO_GSSENC_REQUEST) {
        if (fault_point(c, PGF_PHASE_SSL_REQUEST, 0, NULL, 0) == STOP)
            return;
        if (c->ssl_answered) {
            /* PostgreSQL: a second negotiation request is an unsupported protocol. */
            char msg[128];
            snprintf(msg, sizeof msg,
                     "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                     m->code >> 16, m->code & 0xffff);
            send_fatal(c, "0A000", msg);
            return;
        }
        c->ssl_answered = true;
        /* through queue_msg, so a truncate at ssl-request cuts this answer */
        queue_msg(c, (const uint8_t *)"N", 1);
        return;
    }
    if (m->code == PGF_PROTO_CANCEL_REQUEST) {
        pgf_cancel_req cr;
        atomic_fetch_add(&s->stats.cancel_requests, 1);
        if (pgf_proto_parse_cancel(m, &cr) != 0) {
            conn_close(c, CK_FIN, "malformed cancel request");
            return;
        }
        if (fault_point(c, PGF_PHASE_CANCEL, 0, NULL, 0) == STOP)
            return;
        pgf__server_cancel(s, cr.pid, cr.key);
        /* PostgreSQL answers nothing and closes. */
        queue_close(c, CK_FIN);
        return;
    }
    uint16_t major = (uint16_t)(m->code >> 16), minor = (uint16_t)(m->code & 0xffff);
    if (major != 3) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "FATAL:  unsupported frontend protocol %u.%u: server supports 3.0 to 3.0\n", major,
                 minor);
        pgf_buf b = PGF_BUF_INIT;
        if (major < 3) {
            pgf_msg_v2_error(&b, msg);
            queue_buf(c, &b);
            queue_close(c, CK_FIN);
        } else {
            snprintf(msg, sizeof msg,
                     "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0", major,
                     minor);
            send_fatal(c, "0A000", msg);
        }
        pgf_buf_free(&b);
        return;
    }
    pgf_startup st;
    const char *err = NULL;
    if (pgf_proto_parse_startup(m, &st, &err) != 0) {
        atomic_fetch_add(&s->stats.protocol_errors, 1);
        send_fatal(c, "08P01", err ? err : "invalid startup packet layout");
        return;
    }
    const char *user = pgf_startup_get(&st, "user");
    const char *db = pgf_startup_get(&st, "database");
    const char *app = pgf_startup_get(&st, "application_name");
    c->user = strdup(user ? user : "");
    c->database = strdup(db && *db ? db : (user ? user : ""));
    c->app = strdup(app ? app : "");
    if (c->user == NULL || c->database == NULL || c->app == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (fault_point(c, PGF_PHASE_STARTUP, 0, NULL, 0) == STOP)
        return;
    if (user == NULL || *user == '\0') {
        send_fatal(c, "28000", "no PostgreSQL user name specified in startup packet");
        return;
    }
    if (s->max_connections > 0 && s->backends >= s->max_connections) {
        send_fatal(c, "53300", "sorry, too many clients already");
        return;
    }
    s->backends++;
    c->counted_backend = true;
    c->u = find_user(s, c->user);
    pgf_sql_session_init(&c->sql, c->user, c->database, c->u ? c->u->superuser : false);

    /* _pq_. options and minor versions > 0: NegotiateProtocolVersion first. */
    const char *unknown_opts[PGF_PROTO_MAX_PARAMS];
    int nunknown = 0;
    const char *bad_guc = NULL;
    for (int i = 0; i < st.nparams; i++) {
        const char *k = st.keys[i];
        if (strncmp(k, "_pq_.", 5) == 0) {
            unknown_opts[nunknown++] = k;
        } else if (strcmp(k, "user") == 0 || strcmp(k, "database") == 0 ||
                   strcmp(k, "replication") == 0 || strcmp(k, "options") == 0) {
            continue;
        } else if (!pgf_sql_set_guc(&c->sql, k, st.values[i]) && bad_guc == NULL) {
            bad_guc = k;
        }
    }
    pgf_sql_session_mark_defaults(&c->sql);
    if (minor > 0 || nunknown > 0) {
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_negotiate_protocol(&b, PGF_PROTO_V3, unknown_opts, nunknown);
        queue_buf(c, &b);
        pgf_buf_free(&b);
    }
    if (bad_guc != NULL) {
        /* PostgreSQL applies startup GUCs after authentication. */
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_auth(&b, PGF_AUTH_OK, NULL, 0);
        queue_buf(c, &b);
        pgf_buf_free(&b);
        char msg[200];
        snprintf(msg, sizeof msg, "unrecognized configuration parameter \"%s\"", bad_guc);
        send_fatal(c, "42704", msg);
        return;
    }
    set_state(c, ST_STARTUP); /* begin_auth moves on */
    begin_auth(c);
}

static void handle_password(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *pw = NULL;
    if (m->type != PGF_FE_PASSWORD || pgf_proto_parse_password(m, &pw) != 0) {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[96];
        snprintf(msg, sizeof msg, "expected password response, got message type %d", m->type);
        send_fatal(c, "08P01", msg);
        return;
    }
    if (fault_point(c, PGF_PHASE_AUTH_RESPONSE, m->type, NULL, 0) == STOP)
        return;
    bool ok = false;
    if (c->u != NULL) {
        if (c->state == ST_AUTH_PASSWORD) {
            ok = pgf_auth_streq(pw, c->u->password);
        } else {
            char want[36];
            pgf_md5_response(c->user, c->u->password, c->md5_salt, want);
            ok = pgf_auth_streq(pw, want);
        }
    }
    if (!ok) {
        auth_failed(c);
        return;
    }
    finish_startup(c);
}

static void handle_sasl(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *err = NULL;
    if (m->type != PGF_FE_PASSWORD) {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[96];
        snprintf(msg, sizeof msg, "expected SASL response, got message type %d", m->type);
        send_fatal(c, "08P01", msg);
        return;
    }
    if (fault_point(c, PGF_PHASE_AUTH_RESPONSE, m->type, NULL, 0) == STOP)
        return;
    pgf_buf out = PGF_BUF_INIT;
    pgf_buf msg = PGF_BUF_INIT;
    if (c->state == ST_AUTH_SASL_INIT) {
        const char *mech = NULL;
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (pgf_proto_parse_sasl_initial(m, &mech, &data, &dlen) != 0 ||
            strcmp(mech, "SCRAM-SHA-256") != 0) {
            send_fatal(c, "08P01", "client selected an invalid SASL authentication mechanism");
            goto done;
        }
        uint8_t nonce[PGF_SCRAM_RAW_NONCE_LEN];
        for (size_t i = 0; i < sizeof nonce; i++)
            nonce[i] = (uint8_t)pgf_rng_next(&c->rng);
        free(c->scram);
        c->scram = calloc(1, sizeof *c->scram);
        if (c->scram == NULL) {
            conn_close(c, CK_RST, "out of memory");
            goto done;
        }
        c->scram->mock = c->u == NULL;
        if (c->scram->mock) {
            /* PostgreSQL's mock salt depends only on the role name and a
             * server secret, so probing cannot tell a missing role apart. */
            uint8_t seed[8];
            for (int i = 0; i < 8; i++)
                seed[i] = (uint8_t)(c->srv->seed >> (8 * i));
            pgf_scram_mock_salt(c->user, seed, sizeof seed, c->scram->mock_salt);
        }
        const pgf_scram_secret *sec = c->u ? &c->u->secret : NULL;
        if (pgf_scram_first(c->scram, sec, data, dlen, nonce, &out, &err) != 0) {
            send_fatal(c, "08P01", err ? err : "malformed SCRAM message");
            goto done;
        }
        pgf_msg_auth(&msg, PGF_AUTH_SASL_CONTINUE, out.data, out.len);
        set_state(c, ST_AUTH_SASL_FIN);
        send_at(c, PGF_PHASE_SASL_CONTINUE, &msg);
    } else {
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (pgf_proto_parse_sasl_response(m, &data, &dlen) != 0) {
            send_fatal(c, "08P01", "malformed SCRAM message");
            goto done;
        }
        if (c->scram == NULL) {
            send_fatal(c, "08P01", "malformed SCRAM message");
            goto done;
        }
        int r = pgf_scram_final(c->scram, data, dlen, &out, &err);
        free(c->scram);
        c->scram = NULL;
        if (r == PGF_EAUTH || (r == 0 && c->u == NULL)) {
            auth_failed(c);
            goto done;
        }
        if (r != 0) {
            send_fatal(c, "08P01", err ? err : "malformed SCRAM message");
            goto done;
        }
        pgf_msg_auth(&msg, PGF_AUTH_SASL_FINAL, out.data, out.len);
        if (send_at(c, PGF_PHASE_SASL_FINAL, &msg) == GO)
            finish_startup(c);
    }
done:
    pgf_buf_free(&out);
    pgf_buf_free(&msg);
}

/* ------------------------------------------------------------------ */
/* queries                                                             */

enum { Q_OK, Q_ERROR, Q_SLEEP, Q_GONE };

static int16_t col_format(const int16_t *formats, uint16_t n, int i)
{
    if (n == 0 || formats == NULL)
        return 0;
    return n == 1 ? formats[0] : (i < n ? formats[i] : 0);
}

static void build_row_description(pgf_buf *b, pgf_sql_result *r, const int16_t *formats,
                                  uint16_t nformats)
{
    for (int i = 0; i < r->ncols; i++)
        r->cols[i].format = col_format(formats, nformats, i);
    pgf_msg_row_description(b, r->cols, (uint16_t)r->ncols);
}

static void build_data_row(pgf_buf *b, const pgf_sql_result *r, const int16_t *formats,
                           uint16_t nformats)
{
    const char *vals[PGF_SQL_MAX_COLS];
    int32_t lens[PGF_SQL_MAX_COLS];
    uint8_t bin[PGF_SQL_MAX_COLS][8];
    for (int i = 0; i < r->ncols; i++) {
        if (r->nulls[i]) {
            vals[i] = NULL;
            lens[i] = -1;
            continue;
        }
        vals[i] = r->values[i];
        lens[i] = (int32_t)strlen(r->values[i]);
        if (col_format(formats, nformats, i) != 1)
            continue;
        /* Binary output, as asyncpg and pgjdbc ask for it. */
        long long v = strtoll(r->values[i], NULL, 10);
        switch (r->cols[i].type_oid) {
        case 23:
            for (int k = 0; k < 4; k++)
                bin[i][k] = (uint8_t)((uint32_t)v >> (24 - 8 * k));
            vals[i] = (const char *)bin[i];
            lens[i] = 4;
            break;
        case 20:
            for (int k = 0; k < 8; k++)
                bin[i][k] = (uint8_t)((uint64_t)v >> (56 - 8 * k));
            vals[i] = (const char *)bin[i];
            lens[i] = 8;
            break;
        case 16:
            bin[i][0] = r->values[i][0] == 't';
            vals[i] = (const char *)bin[i];
            lens[i] = 1;
            break;
        case 2278:
            lens[i] = 0;
            break;
        default:
            break; /* text and name: the bytes are the binary form */
        }
    }
    pgf_msg_data_row(b, vals, lens, (uint16_t)r->ncols);
}

/* An injected ERROR ended the statement: mirror PostgreSQL's state. */
static int stopped(pgf__conn *c)
{
    if (c->state == ST_CLOSED || c->out_closed)
        return Q_GONE;
    if (c->sql.txn == 'T')
        c->sql.txn = 'E';
    return Q_ERROR;
}

/* Rows and CommandComplete of a finished statement. */
static int emit_tail(pgf__conn *c, pgf_sql_result *r)
{
    pgf_buf b = PGF_BUF_INIT;
    int ret = Q_OK;
    if (r->kind == PGF_SQL_ROWS || r->kind == PGF_SQL_SLEEP) {
        for (int i = 0; i < r->nrows && ret == Q_OK; i++) {
            pgf_buf_reset(&b);
            build_data_row(&b, r, c->cur_formats, c->cur_nformats);
            if (send_at(c, PGF_PHASE_DATA_ROW, &b) == STOP)
                ret = stopped(c);
        }
    }
    if (ret == Q_OK && r->has_notice) {
        pgf_buf_reset(&b);
        pgf_msg_notice(&b, &r->notice);
        queue_buf(c, &b);
    }
    if (ret == Q_OK) {
        pgf_buf_reset(&b);
        pgf_msg_command_complete(&b, r->tag);
        if (send_at(c, PGF_PHASE_COMMAND_COMPLETE, &b) == STOP)
            ret = stopped(c);
    }
    for (int i = 0; ret == Q_OK && i < r->nreports; i++) {
        pgf_buf_reset(&b);
        pgf_msg_parameter_status(&b, r->report_names[i], r->report_values[i]);
        queue_buf(c, &b);
    }
    pgf_buf_free(&b);
    return ret;
}

static int emit_result(pgf__conn *c, pgf_sql_result *r, bool send_rowdesc)
{
    pgf_buf b = PGF_BUF_INIT;
    int ret = Q_OK;
    switch (r->kind) {
    case PGF_SQL_ERROR:
        pgf_msg_error(&b, &r->error);
        queue_buf(c, &b);
        ret = Q_ERROR;
        break;
    case PGF_SQL_EMPTY:
        pgf_msg_empty(&b, PGF_BE_EMPTY_QUERY);
        queue_buf(c, &b);
        break;
    case PGF_SQL_COMMAND:
        ret = emit_tail(c, r);
        break;
    case PGF_SQL_ROWS:
    case PGF_SQL_SLEEP:
        if (send_rowdesc) {
            build_row_description(&b, r, c->cur_formats, c->cur_nformats);
            if (send_at(c, PGF_PHASE_ROW_DESCRIPTION, &b) == STOP) {
                ret = stopped(c);
                break;
            }
        }
        if (r->kind == PGF_SQL_SLEEP) {
            free(c->sleep_res);
            c->sleep_res = malloc(sizeof *c->sleep_res);
            if (c->sleep_res == NULL) {
                conn_close(c, CK_RST, "out of memory");
                ret = Q_GONE;
                break;
            }
            *c->sleep_res = *r;
            c->busy = true;
            pgf_timer_arm(c->sleep_timer, PGF_MS_NS(r->sleep_ms));
            ret = Q_SLEEP;
            break;
        }
        ret = emit_tail(c, r);
        break;
    }
    pgf_buf_free(&b);
    return ret;
}

static void send_ready(pgf__conn *c)
{
    free(c->q_text);
    free(c->q_off);
    free(c->q_len);
    c->q_text = NULL;
    c->q_off = c->q_len = NULL;
    c->q_n = c->q_next = 0;
    c->cur_query = NULL;
    c->cur_formats = NULL;
    c->cur_nformats = 0;
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_ready(&b, c->sql.txn);
    int r = send_at(c, PGF_PHASE_READY, &b);
    pgf_buf_free(&b);
    if (r == GO)
        fault_point(c, PGF_PHASE_IDLE, 0, NULL, 0);
}

/* Run the remaining statements of a simple query. */
static void run_simple(pgf__conn *c)
{
    while (c->q_next < c->q_n) {
        pgf_sql_result r;
        pgf_sql_exec(&c->sql, c->q_text + c->q_off[c->q_next], c->q_len[c->q_next], NULL, 0, &r);
        if (r.kind == PGF_SQL_ERROR && r.error.position != NULL) {
            /* PostgreSQL counts the position from the start of the whole
             * query string, not of the statement. */
            long pos = strtol(r.error.position, NULL, 10) + (long)c->q_off[c->q_next];
            snprintf(r.err_position, sizeof r.err_position, "%ld", pos);
            r.error.position = r.err_position;
        }
        int ret = emit_result(c, &r, true);
        if (ret == Q_SLEEP || ret == Q_GONE)
            return;
        c->q_next++;
        if (ret == Q_ERROR)
            break;
    }
    send_ready(c);
}

struct split_acc {
    pgf__conn *c;
    bool failed;
};

static void split_cb(const char *stmt, size_t len, void *arg)
{
    struct split_acc *a = arg;
    pgf__conn *c = a->c;
    size_t *o = realloc(c->q_off, (size_t)(c->q_n + 1) * sizeof *o);
    if (o == NULL) {
        a->failed = true;
        return;
    }
    c->q_off = o;
    size_t *l = realloc(c->q_len, (size_t)(c->q_n + 1) * sizeof *l);
    if (l == NULL) {
        a->failed = true;
        return;
    }
    c->q_len = l;
    c->q_off[c->q_n] = (size_t)(stmt - c->q_text);
    c->q_len[c->q_n] = len;
    c->q_n++;
}

static void handle_query(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *sql;
    if (pgf_proto_parse_query(m, &sql) != 0) {
        /* PostgreSQL: ERROR (not FATAL) from pq_getmsgstring; the session goes on. */
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        send_error(c, "ERROR", "08P01", "invalid string in message", NULL, NULL);
        if (c->sql.txn == 'T')
            c->sql.txn = 'E';
        send_ready(c);
        return;
    }
    atomic_fetch_add(&c->srv->stats.queries, 1);
    c->q_text = strdup(sql);
    if (c->q_text == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->cur_query = c->q_text;
    if (fault_point(c, PGF_PHASE_QUERY, m->type, NULL, 0) == STOP) {
        if (stopped(c) == Q_ERROR)
            send_ready(c);
        return;
    }
    struct split_acc acc = {c, false};
    pgf_sql_split(c->q_text, split_cb, &acc);
    if (acc.failed) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (c->q_n == 0) {
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_empty(&b, PGF_BE_EMPTY_QUERY);
        queue_buf(c, &b);
        pgf_buf_free(&b);
        send_ready(c);
        return;
    }
    run_simple(c);
}

static void on_sleep_done(void *arg)
{
    pgf__conn *c = arg;
    c->busy = false;
    pgf_sql_result *res = c->sleep_res;
    c->sleep_res = NULL;
    int ret = res != NULL ? emit_tail(c, res) : Q_ERROR;
    free(res);
    if (ret == Q_GONE)
        return;
    if (c->extended_sleep) {
        c->extended_sleep = false;
        if (ret == Q_ERROR)
            c->skip_to_sync = true;
    } else {
        c->q_next++;
        if (ret == Q_ERROR)
            c->q_next = c->q_n;
        run_simple(c);
    }
    if (c->state != ST_CLOSED && !c->busy)
        process_input(c);
    if (c->state != ST_CLOSED)
        flush_out(c);
}

void pgf__server_cancel(pgf_server *s, int32_t pid, int32_t key)
{
    for (pgf__conn *c = s->conns; c != NULL; c = c->next) {
        if (c->pid != pid || c->state != ST_READY)
            continue;
        if (c->key != key) {
            pgf_log_info("[conn %llu] wrong key in cancel request for process %d",
                         (unsigned long long)c->id, pid);
            return;
        }
        if (!c->busy)
            return; /* cancel while idle: nothing happens */
        pgf_timer_cancel(c->sleep_timer);
        free(c->sleep_res);
        c->sleep_res = NULL;
        c->busy = false;
        atomic_fetch_add(&s->stats.canceled, 1);
        send_error(c, "ERROR", "57014", "canceling statement due to user request", NULL, NULL);
        if (c->sql.txn == 'T')
            c->sql.txn = 'E';
        if (c->extended_sleep) {
            c->extended_sleep = false;
            c->skip_to_sync = true;
        } else {
            send_ready(c);
        }
        if (c->state != ST_CLOSED)
            process_input(c);
        if (c->state != ST_CLOSED)
            flush_out(c);
        return;
    }
}

/* ------------------------------------------------------------------ */
/* extended protocol                                                   */

static prepared *find_stmt(pgf__conn *c, const char *name)
{
    for (int i = 0; i < c->nstmts; i++)
        if (strcmp(c->stmts[i].name, name) == 0)
            return &c->stmts[i];
    return NULL;
}

static portal *find_portal(pgf__conn *c, const char *name)
{
    for (int i = 0; i < c->nportals; i++)
        if (strcmp(c->portals[i].name, name) == 0)
            return &c->portals[i];
    return NULL;
}

static void drop_stmt(pgf__conn *c, prepared *st)
{
    free(st->name);
    free(st->query);
    free(st->types);
    *st = c->stmts[--c->nstmts];
}

static void drop_portal(pgf__conn *c, portal *p)
{
    free(p->name);
    free(p->query);
    for (int j = 0; j < p->nparams; j++)
        free(p->params[j]);
    free(p->params);
    free(p->formats);
    *p = c->portals[--c->nportals];
}

/* An error inside an extended-protocol batch: report it and skip to Sync. */
static void ext_error(pgf__conn *c, const char *sqlstate, const char *msg)
{
    send_error(c, "ERROR", sqlstate, msg, NULL, NULL);
    if (c->sql.txn == 'T')
        c->sql.txn = 'E';
    c->skip_to_sync = true;
}

static void handle_parse(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_parse_msg p;
    if (pgf_proto_parse_parse(m, &p) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    {
        /* PostgreSQL parses at Parse: a syntax error is reported here, with
         * its position, and no ParseComplete. */
        pgf_sql_result chk;
        pgf_sql_describe(&c->sql, p.query, strlen(p.query), &chk);
        if (chk.kind == PGF_SQL_ERROR && strcmp(chk.error.sqlstate, "42601") == 0) {
            pgf_buf b = PGF_BUF_INIT;
            pgf_msg_error(&b, &chk.error);
            queue_buf(c, &b);
            pgf_buf_free(&b);
            if (c->sql.txn == 'T')
                c->sql.txn = 'E';
            c->skip_to_sync = true;
            return;
        }
    }
    prepared *old = find_stmt(c, p.stmt);
    if (old != NULL) {
        if (p.stmt[0] != '\0') {
            char msg[200];
            snprintf(msg, sizeof msg, "prepared statement \"%s\" already exists", p.stmt);
            ext_error(c, "42P05", msg);
            return;
        }
        drop_stmt(c, old);
    }
    if (c->nstmts >= 1024) {
        ext_error(c, "54000", "too many prepared statements in the pgfault fake server");
        return;
    }
    prepared *n = realloc(c->stmts, (size_t)(c->nstmts + 1) * sizeof *n);
    if (n == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->stmts = n;
    prepared *st = &c->stmts[c->nstmts];
    memset(st, 0, sizeof *st);
    st->name = strdup(p.stmt);
    st->query = strdup(p.query);
    st->nparams = p.nparam_types;
    st->ntypes = p.nparam_types;
    if (p.nparam_types > 0) {
        st->types = calloc(p.nparam_types, sizeof *st->types);
        if (st->types != NULL)
            for (uint16_t i = 0; i < p.nparam_types; i++)
                st->types[i] = pgf_rd_be32(p.param_types + 4 * i);
    }
    /* Count $n to learn how many parameters an untyped statement takes. */
    for (const char *q = p.query; (q = strchr(q, '$')) != NULL; q++) {
        long v = strtol(q + 1, NULL, 10);
        if (v > st->nparams && v <= PGF_PROTO_MAX_BIND_PARAMS)
            st->nparams = (uint16_t)v;
    }
    if (st->name == NULL || st->query == NULL || (p.nparam_types > 0 && st->types == NULL)) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->nstmts++;
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_PARSE_COMPLETE);
    queue_buf(c, &b);
    pgf_buf_free(&b);
}

/* Text form of a bound parameter (binary int2/int4/int8/float8 decoded). */
static char *param_text(const uint8_t *v, int32_t len, bool binary, uint32_t type)
{
    char tmp[64];
    if (!binary)
        return strndup((const char *)v, (size_t)len);
    if (len == 2) {
        snprintf(tmp, sizeof tmp, "%d", (int16_t)pgf_rd_be16(v));
    } else if (len == 4 && type != 700) {
        snprintf(tmp, sizeof tmp, "%d", (int32_t)pgf_rd_be32(v));
    } else if (len == 8) {
        uint64_t u = (uint64_t)pgf_rd_be32(v) << 32 | pgf_rd_be32(v + 4);
        if (type == 701) {
            double d;
            memcpy(&d, &u, sizeof d);
            snprintf(tmp, sizeof tmp, "%.17g", d);
        } else {
            snprintf(tmp, sizeof tmp, "%lld", (long long)(int64_t)u);
        }
    } else {
        return strndup((const char *)v, (size_t)len);
    }
    return strdup(tmp);
}

static void handle_bind(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_bind_msg bm;
    if (pgf_proto_parse_bind(m, &bm) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    prepared *st = find_stmt(c, bm.stmt);
    if (st == NULL) {
        char msg[200];
        if (bm.stmt[0] == '\0')
            snprintf(msg, sizeof msg, "unnamed prepared statement does not exist");
        else
            snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", bm.stmt);
        ext_error(c, "26000", msg);
        return;
    }
    if (bm.nparams != st->nparams) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "bind message supplies %u parameters, but prepared statement \"%s\" requires %u",
                 bm.nparams, bm.stmt, st->nparams);
        ext_error(c, "08P01", msg);
        return;
    }
    portal *old = find_portal(c, bm.portal);
    if (old != NULL)
        drop_portal(c, old);
    if (c->nportals >= 1024) {
        ext_error(c, "54000", "too many portals in the pgfault fake server");
        return;
    }
    portal *n = realloc(c->portals, (size_t)(c->nportals + 1) * sizeof *n);
    if (n == NULL) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->portals = n;
    portal *p = &c->portals[c->nportals++];
    memset(p, 0, sizeof *p);
    p->name = strdup(bm.portal);
    p->query = strdup(st->query);
    p->nparams = bm.nparams;
    p->params = calloc(bm.nparams ? bm.nparams : 1, sizeof *p->params);
    bool oom = p->name == NULL || p->query == NULL || p->params == NULL;
    /* The parameter format codes sit right after the two names. */
    const uint8_t *fmt = m->body + strlen(bm.portal) + 1 + strlen(bm.stmt) + 1 + 2;
    for (int i = 0; i < bm.nparams && !oom; i++) {
        if (bm.values[i] == NULL)
            continue;
        int16_t f = bm.nformats == 0   ? 0
                    : bm.nformats == 1 ? (int16_t)pgf_rd_be16(fmt)
                                       : (int16_t)pgf_rd_be16(fmt + 2 * i);
        uint32_t type = st->types != NULL && i < (int)st->ntypes && st->types[i] != 0
                            ? st->types[i]
                            : pgf_sql_param_type(st->query, i + 1);
        p->params[i] = param_text(bm.values[i], bm.lens[i], f == 1, type);
        oom = p->params[i] == NULL;
    }
    /* Result format codes follow the parameter values. */
    if (!oom && bm.nresult_formats > 0) {
        p->formats = calloc(bm.nresult_formats, sizeof *p->formats);
        oom = p->formats == NULL;
        if (!oom) {
            const uint8_t *q = m->body + m->body_len - 2 * (size_t)bm.nresult_formats;
            for (int i = 0; i < bm.nresult_formats; i++)
                p->formats[i] = (int16_t)pgf_rd_be16(q + 2 * i);
            p->nformats = bm.nresult_formats;
        }
    }
    if (oom) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_BIND_COMPLETE);
    queue_buf(c, &b);
    pgf_buf_free(&b);
}

static void handle_describe(pgf__conn *c, const pgf_fe_msg *m)
{
    char kind;
    const char *name;
    if (pgf_proto_parse_describe_close(m, &kind, &name) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_sql_result r;
    if (kind == 'S') {
        prepared *st = find_stmt(c, name);
        if (st == NULL) {
            char msg[200];
            snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", name);
            ext_error(c, "26000", msg);
            goto out;
        }
        uint32_t oids[PGF_PROTO_MAX_BIND_PARAMS];
        for (int i = 0; i < st->nparams; i++)
            oids[i] = st->types != NULL && i < st->ntypes && st->types[i] != 0
                          ? st->types[i]
                          : pgf_sql_param_type(st->query, i + 1);
        pgf_msg_parameter_description(&b, oids, st->nparams);
        pgf_sql_describe(&c->sql, st->query, strlen(st->query), &r);
        if (r.kind == PGF_SQL_ERROR) {
            pgf_buf_reset(&b);
            ext_error(c, r.error.sqlstate, r.error.message);
            goto out;
        }
        if (r.kind == PGF_SQL_ROWS || r.kind == PGF_SQL_SLEEP)
            build_row_description(&b, &r, NULL, 0);
        else
            pgf_msg_empty(&b, PGF_BE_NO_DATA);
    } else {
        portal *p = find_portal(c, name);
        if (p == NULL) {
            char msg[200];
            snprintf(msg, sizeof msg, "portal \"%s\" does not exist", name);
            ext_error(c, "34000", msg);
            goto out;
        }
        pgf_sql_describe(&c->sql, p->query, strlen(p->query), &r);
        if (r.kind == PGF_SQL_ERROR) {
            ext_error(c, r.error.sqlstate, r.error.message);
            goto out;
        }
        if (r.kind == PGF_SQL_ROWS || r.kind == PGF_SQL_SLEEP) {
            build_row_description(&b, &r, p->formats, p->nformats);
            queue_buf(c, &b);
            pgf_buf_reset(&b);
        } else {
            pgf_msg_empty(&b, PGF_BE_NO_DATA);
        }
    }
    if (b.len > 0)
        queue_buf(c, &b);
out:
    pgf_buf_free(&b);
}

static void handle_execute(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_execute_msg em;
    if (pgf_proto_parse_execute(m, &em) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    portal *p = find_portal(c, em.portal);
    if (p == NULL) {
        char msg[200];
        snprintf(msg, sizeof msg, "portal \"%s\" does not exist", em.portal);
        ext_error(c, "34000", msg);
        return;
    }
    atomic_fetch_add(&c->srv->stats.queries, 1);
    c->cur_query = p->query;
    c->cur_formats = p->formats;
    c->cur_nformats = p->nformats;
    if (fault_point(c, PGF_PHASE_QUERY, m->type, NULL, 0) == STOP) {
        if (stopped(c) == Q_ERROR)
            c->skip_to_sync = true;
        return;
    }
    /* One statement per portal, as PostgreSQL requires in the extended protocol. */
    pgf_sql_result r;
    size_t len = strlen(p->query);
    while (len > 0 &&
           (p->query[len - 1] == ';' || p->query[len - 1] == ' ' || p->query[len - 1] == '\n'))
        len--;
    pgf_sql_exec(&c->sql, p->query, len, (const char *const *)p->params, p->nparams, &r);
    int ret = emit_result(c, &r, false);
    if (ret == Q_SLEEP) {
        c->extended_sleep = true;
        /* the result's formats are kept in cur_formats */
    } else if (ret == Q_ERROR) {
        c->skip_to_sync = true;
    }
}

static void handle_close_msg(pgf__conn *c, const pgf_fe_msg *m)
{
    char kind;
    const char *name;
    if (pgf_proto_parse_describe_close(m, &kind, &name) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    if (kind == 'S') {
        prepared *st = find_stmt(c, name);
        if (st)
            drop_stmt(c, st);
    } else {
        portal *p = find_portal(c, name);
        if (p)
            drop_portal(c, p);
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_CLOSE_COMPLETE);
    queue_buf(c, &b);
    pgf_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* dispatch                                                            */

static void dispatch(pgf__conn *c, const pgf_fe_msg *m)
{
    switch (c->state) {
    case ST_STARTUP:
        handle_startup(c, m);
        return;
    case ST_AUTH_PASSWORD:
    case ST_AUTH_MD5:
        handle_password(c, m);
        return;
    case ST_AUTH_SASL_INIT:
    case ST_AUTH_SASL_FIN:
        handle_sasl(c, m);
        return;
    case ST_READY:
        break;
    case ST_CLOSED:
        return;
    }
    if (m->type == PGF_FE_TERMINATE) {
        if (fault_point(c, PGF_PHASE_TERMINATE, m->type, NULL, 0) == GO)
            queue_close(c, CK_FIN);
        return;
    }
    if (c->skip_to_sync && m->type != PGF_FE_SYNC)
        return;
    switch (m->type) {
    case PGF_FE_QUERY:
        handle_query(c, m);
        return;
    case PGF_FE_PARSE:
        handle_parse(c, m);
        return;
    case PGF_FE_BIND:
        handle_bind(c, m);
        return;
    case PGF_FE_DESCRIBE:
        handle_describe(c, m);
        return;
    case PGF_FE_EXECUTE:
        handle_execute(c, m);
        return;
    case PGF_FE_CLOSE:
        handle_close_msg(c, m);
        return;
    case PGF_FE_FLUSH:
        return; /* output is flushed after every batch of input anyway */
    case PGF_FE_COPY_DATA:
    case PGF_FE_COPY_DONE:
    case PGF_FE_COPY_FAIL:
        return; /* outside COPY PostgreSQL accepts and ignores these */
    case PGF_FE_SYNC: {
        c->skip_to_sync = false;
        portal *p = find_portal(c, "");
        if (p != NULL)
            drop_portal(c, p);
        send_ready(c);
        return;
    }
    default: {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[64];
        snprintf(msg, sizeof msg, "invalid frontend message type %d", m->type);
        send_fatal(c, "08P01", msg);
        return;
    }
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

static void process_input(pgf__conn *c)
{
    size_t off = 0;
    while (c->state != ST_CLOSED && !c->stalled && !c->busy && !c->out_closed && !c->ignore_input &&
           off < c->in.len) {
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
            send_fatal(c, "08P01", msg);
            off = c->in.len;
            break;
        }
        pgf_fe_msg m;
        const char *err = NULL;
        int r =
            pgf_proto_frame(c->in.data + off, c->in.len - off, startup,
                            startup ? PGF_PROTO_MAX_STARTUP_LEN : PGF_PROTO_MAX_MSG_LEN, &m, &err);
        if (r == PGF_PROTO_NEED_MORE)
            break;
        if (r < 0) {
            atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
            pgf_log_info("[conn %llu %s] protocol violation: %s", (unsigned long long)c->id,
                         state_names[c->state], err ? err : pgf_strerror(r));
            /* PostgreSQL reports a bad length word as COMMERROR: to its log
             * only; the client just sees the connection close. */
            conn_close(c, CK_FIN, err ? err : "invalid message length");
            return;
        }
        dispatch(c, &m);
        off += m.total_len;
    }
    if (c->state != ST_CLOSED) {
        pgf_buf_consume(&c->in, off);
        /* Give back a large buffer once it is drained (a big message passed). */
        if (c->in.len == 0 && c->in.cap > 4096)
            pgf_buf_free(&c->in);
    }
}

static void on_deadline(void *arg)
{
    pgf__conn *c = arg;
    /* authentication_timeout: PostgreSQL exits without a word. */
    conn_close(c, CK_FIN, "authentication timeout");
}

void pgf__conn_accept(pgf_server *s, int fd, const struct sockaddr *addr, int addrlen, bool is_unix)
{
    pgf__conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        close(fd);
        return;
    }
    c->srv = s;
    c->fd = fd;
    c->id = ++s->next_conn_id;
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
    c->rev = event_new(s->base, fd, EV_READ | EV_PERSIST, on_read, c);
    c->wev = event_new(s->base, fd, EV_WRITE, on_write, c);
    c->wtimer = pgf_timer_new(s->base, on_wtimer, c);
    c->stall_timer = pgf_timer_new(s->base, on_stall_end, c);
    c->sleep_timer = pgf_timer_new(s->base, on_sleep_done, c);
    c->deadline = pgf_timer_new(s->base, on_deadline, c);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    atomic_fetch_add(&s->stats.accepted, 1);
    atomic_fetch_add(&s->stats.active, 1);
    atomic_fetch_add(&s->stats.by_phase[0], 1); /* calloc'd state is ST_STARTUP */
    if (!c->rev || !c->wev || !c->wtimer || !c->stall_timer || !c->sleep_timer || !c->deadline) {
        conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (s->faults != NULL)
        c->fc = pgf_fault_conn_new(s->faults, c->id);
    event_add(c->rev, NULL);
    pgf_timer_arm(c->deadline, PGF_MS_NS(60000));
    pgf_log_debug("[conn %llu accept] from %s", (unsigned long long)c->id, c->peer);
    fault_point(c, PGF_PHASE_ACCEPT, 0, NULL, 0);
    if (c->state != ST_CLOSED)
        flush_out(c);
}

/* Unlink from the live list; the server frees it from its reap event. */
void pgf__server_reap(pgf_server *s, pgf__conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (s->conns == c)
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = s->reap;
    s->reap = c;
    if (s->reap_ev)
        event_active(s->reap_ev, EV_TIMEOUT, 0);
}

void pgf__server_reap_all(pgf_server *s)
{
    while (s->reap != NULL) {
        pgf__conn *c = s->reap;
        s->reap = c->next;
        pgf__conn_free(c);
    }
}

void pgf__server_close_all(pgf_server *s)
{
    while (s->conns != NULL)
        pgf__conn_abort(s->conns);
}
