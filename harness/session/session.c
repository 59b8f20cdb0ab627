/* session.c - the session manager: libpq async connect/query/cancel
 * driven by libevent, every state change through set_state().
 *
 * Layout: call-side validation (any thread, under s->mu) -> command flags
 * -> on_cmd() on the loop -> start_open / start_check / do_cancel /
 * do_close; socket readiness -> on_sock(); deadlines -> on_timer().
 * Completion: complete() reports ok/fail under the mutex, then calls the
 * callback outside it. Freeing is deferred past callbacks (reap()).
 *
 * Not here: pooling (pool.c), configuration (config.c), the pure
 * classification table (health.c).
 */
#include "pgfault/session.h"
#include "pgfault/timer.h"

#include <errno.h>
#include <event2/event.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "pgfault/loop.h"

#define CMD_OPEN   0x1u
#define CMD_CHECK  0x2u
#define CMD_CANCEL 0x4u
#define CMD_CLOSE  0x8u
#define CMD_BUG    0x10u /* PGF_BUG_CLOSE_FREES_DURING_CONNECT cleanup */

static atomic_uint_fast64_t g_op_id;
static atomic_uint_fast64_t g_session_id;
static atomic_long g_live_sessions;
static atomic_long g_live_pgconns;
static atomic_long g_live_cancel_threads;

/* One operation slot: the main op (open/check), a cancel, a close. */
struct opslot {
    pgf_sess_op op; /* PGF_OP_NONE = empty */
    uint64_t id;
    pgf_session_cb cb;
    void *arg;
    bool preempted; /* main op aborted by cancel/close: completes with ECANCELED */
};

struct pgf_session {
    uint64_t id;
    struct event_base *base;
    pthread_mutex_t mu;
    /* ---- under mu ---- */
    pgf_sess_state state;
    struct opslot main, cancel, close;
    unsigned pending; /* CMD_* for the loop */
    char last_error[256];
    bool bug_dropped;    /* PGF_BUG_CLOSE_FREES_DURING_CONNECT happened */
    unsigned bugs;       /* PGF_BUG_* (opts; immutable, read without mu) */
    uint64_t last_op_id; /* of the last accepted slot-less (pool) operation */
    /* ---- loop thread only ---- */
    PGconn *conn;
    struct event *sock_ev;
    int sock_fd;  /* libpq's socket when watched (compared, never polled) */
    int watch_fd; /* our duplicate of it, the one the loop polls; -1 none */
    short sock_what;
    pgf_timer *timer;    /* the state's deadline (virtual in sim mode) */
    pgf_simclock *clock; /* non-NULL when the base runs on a simulated clock */
    struct event *cmd_ev;
    bool flush_pending; /* query not fully sent yet */
    bool got_error;     /* an error result arrived for the check */
    char sqlstate[6];   /* of the first error result */
    char errmsg[256];   /* of the first error result */
    /* A "server going away" message libpq passed to the notice receiver
     * instead of a result: a FATAL read while idle, or the WARNING notice
     * of an immediate/crash shutdown (57P01/57P02) before EOF. */
    char goodbye_state[6];
    char goodbye_msg[256];
    int cb_depth;
    bool free_requested;
    /* ---- immutable after new ---- */
    char **keywords;
    char **values;
    char *check_query;
    unsigned timeout_ms[5]; /* by pgf_sess_deadline */
    pgf_session_recorder_fn recorder;
    void *recorder_arg;
};

static void on_sock(evutil_socket_t fd, short what, void *arg);
static void on_timer(void *arg);
static void on_cmd(evutil_socket_t fd, short what, void *arg);
static void really_free(pgf_session *s);

struct event_base *pgf_session_base_new(void)
{
    return pgf_loop_base_new();
}

const char *pgf_session_event_kind_name(pgf_session_event_kind k)
{
    switch (k) {
    case PGF_SEV_TRANSITION:
        return "transition";
    case PGF_SEV_INVOKE:
        return "invoke";
    case PGF_SEV_OK:
        return "ok";
    case PGF_SEV_FAIL:
        return "fail";
    }
    return "?";
}

/* ---- bugs ---- */

static bool bug(const pgf_session *s, unsigned bit)
{
    return (s->bugs & bit) != 0;
}

int pgf_session_bugs_parse(const char *list, unsigned *mask)
{
    *mask = 0;
    if (list == NULL || *list == '\0' || strcmp(list, "none") == 0)
        return 0;
    const char *p = list;
    while (*p != '\0') {
        size_t n = strcspn(p, ",");
        bool found = false;
#define BUG_MATCH(name, bit, str, doc)                           \
    if (!found && n == strlen(str) && strncmp(p, str, n) == 0) { \
        *mask |= bit;                                            \
        found = true;                                            \
    }
        PGF_BUG_MAP(BUG_MATCH)
#undef BUG_MATCH
        if (!found)
            return PGF_EINVAL;
        p += n;
        if (*p == ',')
            p++;
    }
    return 0;
}

void pgf_session_ids_reset(void)
{
    atomic_store(&g_op_id, 0);
    atomic_store(&g_session_id, 0);
}

void pgf_session_counters_get(pgf_session_counters *c)
{
    c->sessions = atomic_load(&g_live_sessions);
    c->pgconns = atomic_load(&g_live_pgconns);
    c->cancel_threads = atomic_load(&g_live_cancel_threads);
}

/* ---- events (caller holds s->mu) ---- */

static void emit(pgf_session *s, pgf_session_event_kind kind, pgf_sess_op op, uint64_t op_id,
                 pgf_sess_state from, pgf_sess_state to, const char *cause, int err,
                 const pgf_health *h)
{
    /* seq is taken under the session's mutex so one session's events are
     * in seq order; across sessions seq is still a total order. */
    uint64_t seq = pgf_seq_next();
    if (s->recorder == NULL)
        return;
    pgf_session_event ev = {kind,  seq, s->clock ? pgf_simclock_now(s->clock) : pgf_now_ns(),
                            s->id, op,  op_id,
                            from,  to,  cause ? cause : "",
                            err,   h};
    s->recorder(&ev, s->recorder_arg);
}

static struct opslot *slot_of(pgf_session *s, pgf_sess_op op)
{
    switch (op) {
    case PGF_OP_open:
    case PGF_OP_check:
        return &s->main;
    case PGF_OP_cancel:
        return &s->cancel;
    case PGF_OP_close:
    case PGF_OP_invalidate:
        return &s->close;
    default:
        return NULL;
    }
}

static bool op_active(pgf_session *s, pgf_sess_op op)
{
    struct opslot *sl = slot_of(s, op);
    return sl != NULL && sl->op == op;
}

/* ---- deadlines (loop thread) ---- */

static void arm_deadline(pgf_session *s, pgf_sess_state from, pgf_sess_state to)
{
    pgf_sess_deadline d = pgf_session_state_deadline(to);
    if (d == PGF_DEADLINE_CONNECT && pgf_session_state_connecting(from))
        return; /* one deadline for the whole open, across sub-phases */
    pgf_timer_cancel(s->timer);
    if (d == PGF_DEADLINE_NONE)
        return;
    pgf_timer_arm(s->timer, PGF_MS_NS(s->timeout_ms[d]));
}

/* The one place a state changes. Validates from->to against the table for
 * `op`, which must be in progress; applies, reports and (loop thread) arms
 * the new state's deadline. Returns PGF_EILLEGAL_STATE and changes nothing
 * when the table forbids it (only reachable when a bug branch moved the
 * state behind the loop's back). */
static int set_state(pgf_session *s, pgf_sess_state to, pgf_sess_op op, const char *cause)
{
    pthread_mutex_lock(&s->mu);
    pgf_sess_state from = s->state;
    if ((op == PGF_OP_open || op == PGF_OP_check) &&
        (s->close.op != PGF_OP_NONE || s->cancel.op != PGF_OP_NONE)) {
        /* A close/cancel was accepted on another thread and its command is
         * queued for this loop: the open/check it preempts must not move
         * the state any more (that is the checker's concurrent_transition,
         * found by the soak scenario in stress mode). Leave everything to
         * do_close/do_cancel, which run next on this loop. */
        pthread_mutex_unlock(&s->mu);
        pgf_log_debug("[session %llu] %s -> %s by %s deferred to the pending %s",
                      (unsigned long long)s->id, pgf_session_state_name(from),
                      pgf_session_state_name(to), pgf_session_op_name(op),
                      s->close.op != PGF_OP_NONE ? "close" : "cancel");
        return PGF_EILLEGAL_STATE;
    }
    if (!op_active(s, op) || !pgf_session_transition_allowed(from, to, op)) {
        pthread_mutex_unlock(&s->mu);
        pgf_log_error("[session %llu] refused transition %s -> %s by %s (%s)",
                      (unsigned long long)s->id, pgf_session_state_name(from),
                      pgf_session_state_name(to), pgf_session_op_name(op), cause);
        return PGF_EILLEGAL_STATE;
    }
    s->state = to;
    struct opslot *sl = slot_of(s, op);
    emit(s, PGF_SEV_TRANSITION, op, sl->id, from, to, cause, 0, NULL);
    pthread_mutex_unlock(&s->mu);
    pgf_log_debug("[session %llu %s] %s -> %s (%s)", (unsigned long long)s->id,
                  pgf_session_op_name(op), pgf_session_state_name(from), pgf_session_state_name(to),
                  cause);
    arm_deadline(s, from, to);
    return 0;
}

/* Complete the operation in `op`'s slot: report, free the slot, then call
 * the callback outside the lock. */
static void complete(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h)
{
    pthread_mutex_lock(&s->mu);
    struct opslot *slp = slot_of(s, op);
    if (slp == NULL || slp->op != op) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    struct opslot sl = *slp;
    memset(slp, 0, sizeof *slp);
    int times = 1;
    /* BUG (PGF_BUG_CALLBACK_TWICE): a completion reported and called back
     * twice, as when two code paths both believe they finish the op. */
    if (bug(s, PGF_BUG_CALLBACK_TWICE) && (op == PGF_OP_open || op == PGF_OP_check))
        times = 2;
    for (int i = 0; i < times; i++)
        emit(s, err == 0 ? PGF_SEV_OK : PGF_SEV_FAIL, op, sl.id, s->state, s->state,
             err == 0 ? "" : (h != NULL && h->message[0] ? h->message : pgf_strerror(err)), err, h);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < times && sl.cb != NULL; i++) {
        s->cb_depth++;
        sl.cb(s, op, err, h, sl.arg);
        s->cb_depth--;
    }
}

/* ---- socket watching (loop thread) ---- */

/* The loop watches its own duplicate of libpq's socket, never libpq's fd
 * number itself: libpq closes its socket on its own when the server goes
 * away (inside PQconsumeInput or PQconnectPoll), and by the time we unwatch,
 * another thread may have been handed that fd number (the fake server's
 * accept): event_del() would then call epoll_ctl() on someone else's socket
 * (TSan reported exactly that). The duplicate keeps the socket open until
 * unwatch() closes it, right after the event is gone. */
static void unwatch(pgf_session *s)
{
    if (s->sock_ev != NULL) {
        event_free(s->sock_ev);
        s->sock_ev = NULL;
    }
    if (s->watch_fd >= 0) {
        close(s->watch_fd);
        s->watch_fd = -1;
    }
    s->sock_fd = -1;
    s->sock_what = 0;
}

static int watch(pgf_session *s, short what)
{
    int fd = PQsocket(s->conn); /* re-read after every poll: libpq may switch sockets */
    if (fd < 0)
        return PGF_EIO;
    if (s->sock_ev != NULL && s->sock_fd == fd && s->sock_what == what)
        return 0;
    unwatch(s);
    s->watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (s->watch_fd < 0)
        return PGF_EIO;
    s->sock_ev = event_new(s->base, s->watch_fd, what | EV_PERSIST, on_sock, s);
    if (s->sock_ev == NULL || event_add(s->sock_ev, NULL) != 0)
        return PGF_ENOMEM;
    s->sock_fd = fd;
    s->sock_what = what;
    return 0;
}

static void finish_conn(pgf_session *s)
{
    unwatch(s);
    if (s->conn != NULL) {
        PQfinish(s->conn);
        s->conn = NULL;
        atomic_fetch_sub(&g_live_pgconns, 1);
    }
}

/* ---- classification ---- */

static const char *phase_name(pgf_sess_state st)
{
    switch (st) {
    case PGF_SESS_CONNECTING_SOCKET:
        return "socket";
    case PGF_SESS_CONNECTING_SSL:
        return "ssl";
    case PGF_SESS_CONNECTING_STARTUP:
        return "startup";
    case PGF_SESS_CONNECTING_AUTH:
        return "auth";
    case PGF_SESS_CONNECTING_PARAMS:
        return "params";
    case PGF_SESS_BUSY:
        return "query";
    case PGF_SESS_CANCELING:
        return "cancel";
    default:
        return "idle";
    }
}

static void classify(pgf_session *s, const char *sqlstate, const char *msg, pgf_health *h)
{
    pgf_health_classify(sqlstate, msg, phase_name(s->state), h);
    /* BUG (PGF_BUG_AUTH_AS_CONNECTION_LOST): the classic mistake of calling
     * every failed connect a lost connection, so auth errors get retried. */
    if (bug(s, PGF_BUG_AUTH_AS_CONNECTION_LOST) && h->reason == PGF_HEALTH_AUTH_FAILED)
        h->reason = PGF_HEALTH_CONNECTION_LOST;
}

static void canceled_health(pgf_session *s, pgf_health *h, const char *why)
{
    memset(h, 0, sizeof *h);
    h->reason = PGF_HEALTH_CANCELED;
    snprintf(h->phase, sizeof h->phase, "%s", phase_name(s->state));
    snprintf(h->message, sizeof h->message, "%s", why);
}

/* ---- open ---- */

static pgf_sess_state phase_of(ConnStatusType st, pgf_sess_state cur)
{
    switch (st) {
    case CONNECTION_STARTED:
    case CONNECTION_NEEDED:
        return PGF_SESS_CONNECTING_SOCKET;
    case CONNECTION_MADE:
        return PGF_SESS_CONNECTING_STARTUP;
    case CONNECTION_SSL_STARTUP:
    case CONNECTION_GSS_STARTUP:
        return PGF_SESS_CONNECTING_SSL;
    case CONNECTION_AWAITING_RESPONSE:
        return PGF_SESS_CONNECTING_AUTH;
    case CONNECTION_AUTH_OK:
    case CONNECTION_SETENV:
    case CONNECTION_CHECK_WRITABLE:
    case CONNECTION_CHECK_STANDBY:
    case CONNECTION_CHECK_TARGET:
    case CONNECTION_CONSUME:
        return PGF_SESS_CONNECTING_PARAMS;
    default:
        return cur;
    }
}

/* Follow libpq to a new sub-phase. A move the table does not list (libpq
 * moved to another host inside one poll) is shown as a retry through
 * CONNECTING_SOCKET, which it was. */
static int follow_phase(pgf_session *s, pgf_sess_state to)
{
    pgf_sess_state cur = pgf_session_state(s);
    if (to == cur)
        return 0;
    if (!pgf_session_transition_allowed(cur, to, PGF_OP_open)) {
        int rc = set_state(s, PGF_SESS_CONNECTING_SOCKET, PGF_OP_open, "retry on a new socket");
        if (rc != 0 || to == PGF_SESS_CONNECTING_SOCKET)
            return rc;
    }
    return set_state(s, to, PGF_OP_open, pgf_session_state_doc(to));
}

static void open_failed(pgf_session *s, const pgf_health *h)
{
    finish_conn(s);
    if (set_state(s, PGF_SESS_FAILED, PGF_OP_open, h->message) != 0)
        return;
    complete(s, PGF_OP_open, pgf_health_reason_err(h->reason), h);
}

static void first_line(const char *in, char *out, size_t len)
{
    snprintf(out, len, "%s", in != NULL ? in : "");
    /* keep libpq's "failed: FATAL:  ..." on one line; drop trailing newline */
    size_t n = strlen(out);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        out[--n] = '\0';
}

/* libpq's notice receiver (loop thread, inside PQconsumeInput/PQconnectPoll):
 * remember why the server is going away, so that the EOF that follows is
 * classified by it (docs/postgres15-facts.md §5: the FATAL or WARNING reaches the notice
 * receiver, PQerrorMessage only says "server closed the connection"). */
static void on_notice(void *arg, const PGresult *res)
{
    pgf_session *s = arg;
    const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    bool fatal = sev != NULL && (strcmp(sev, "FATAL") == 0 || strcmp(sev, "PANIC") == 0);
    bool going = ss != NULL && strncmp(ss, "57P0", 4) == 0;
    if ((fatal || going) && ss != NULL && s->goodbye_state[0] == '\0') {
        snprintf(s->goodbye_state, sizeof s->goodbye_state, "%s", ss);
        first_line(PQresultErrorMessage(res), s->goodbye_msg, sizeof s->goodbye_msg);
    }
}

static void connect_poll(pgf_session *s, PostgresPollingStatusType r)
{
    pgf_health h;
    char msg[256];
    for (;;) {
        if (r == PGRES_POLLING_FAILED) {
            first_line(PQerrorMessage(s->conn), msg, sizeof msg);
            if (s->goodbye_state[0] != '\0')
                classify(s, s->goodbye_state, s->goodbye_msg, &h);
            else
                classify(s, NULL, msg, &h);
            open_failed(s, &h);
            return;
        }
        if (r == PGRES_POLLING_OK) {
            PQsetnonblocking(s->conn, 1);
            unwatch(s);
            if (set_state(s, PGF_SESS_READY, PGF_OP_open, "ReadyForQuery received") == 0) {
                pgf_health ok;
                pgf_health_set_ok(&ok);
                complete(s, PGF_OP_open, 0, &ok);
            }
            return;
        }
        if (follow_phase(s, phase_of(PQstatus(s->conn), pgf_session_state(s))) != 0)
            return; /* state moved behind our back (bug branch); the loop cleans up */
        int rc = watch(s, r == PGRES_POLLING_READING ? EV_READ : EV_WRITE);
        if (rc == 0)
            return;
        /* libpq lost its socket without saying FAILED: poll again. */
        r = PQconnectPoll(s->conn);
        if (r != PGRES_POLLING_OK && r != PGRES_POLLING_FAILED && PQsocket(s->conn) < 0)
            r = PGRES_POLLING_FAILED;
    }
}

static void start_open(pgf_session *s)
{
    if (set_state(s, PGF_SESS_CONNECTING_SOCKET, PGF_OP_open, "PQconnectStartParams") != 0)
        return;
    s->conn =
        PQconnectStartParams((const char *const *)s->keywords, (const char *const *)s->values, 0);
    if (s->conn == NULL) {
        pgf_health h;
        classify(s, NULL, "out of memory allocating a PGconn", &h);
        open_failed(s, &h);
        return;
    }
    atomic_fetch_add(&g_live_pgconns, 1);
    s->goodbye_state[0] = '\0';
    s->goodbye_msg[0] = '\0';
    PQsetNoticeReceiver(s->conn, on_notice, s);
    if (PQstatus(s->conn) == CONNECTION_BAD) {
        connect_poll(s, PGRES_POLLING_FAILED);
        return;
    }
    /* libpq: after PQconnectStart, act as if the last poll said WRITING. */
    connect_poll(s, PGRES_POLLING_WRITING);
}

/* ---- check ---- */

static void query_done(pgf_session *s)
{
    pgf_health h;
    unwatch(s);
    bool canceling = pgf_session_state(s) == PGF_SESS_CANCELING;
    pgf_sess_op by = canceling ? PGF_OP_cancel : PGF_OP_check;
    bool broken = PQstatus(s->conn) == CONNECTION_BAD;
    if (broken) {
        char msg[256];
        first_line(PQerrorMessage(s->conn), msg, sizeof msg);
        if (s->sqlstate[0] == '\0' && s->goodbye_state[0] != '\0')
            classify(s, s->goodbye_state, s->goodbye_msg, &h);
        else
            classify(s, s->sqlstate, s->errmsg[0] ? s->errmsg : msg, &h);
        if (h.reason == PGF_HEALTH_SERVER_ERROR && s->sqlstate[0] == '\0')
            h.reason = PGF_HEALTH_CONNECTION_LOST;
        finish_conn(s);
        if (set_state(s, PGF_SESS_FAILED, by, h.message) != 0)
            return;
    } else {
        if (s->got_error)
            classify(s, s->sqlstate, s->errmsg, &h);
        else
            pgf_health_set_ok(&h);
        if (set_state(s, PGF_SESS_READY, by, canceling ? "query ended" : "query finished") != 0)
            return;
    }
    if (canceling) {
        pgf_health c;
        canceled_health(s, &c, "check canceled");
        complete(s, PGF_OP_check, PGF_ECANCELED, &c);
        complete(s, PGF_OP_cancel, broken ? pgf_health_reason_err(h.reason) : 0,
                 broken ? &h : NULL);
        return;
    }
    complete(s, PGF_OP_check, h.healthy ? 0 : pgf_health_reason_err(h.reason), &h);
}

static void query_io(pgf_session *s, short what)
{
    if (s->flush_pending && (what & EV_WRITE)) {
        int f = PQflush(s->conn);
        if (f < 0) {
            query_done(s);
            return;
        }
        s->flush_pending = f == 1;
    }
    if (what & EV_READ) {
        if (PQconsumeInput(s->conn) == 0) {
            query_done(s);
            return;
        }
        while (!PQisBusy(s->conn)) {
            PGresult *res = PQgetResult(s->conn);
            if (res == NULL) {
                query_done(s);
                return;
            }
            ExecStatusType st = PQresultStatus(res);
            if ((st == PGRES_FATAL_ERROR || st == PGRES_NONFATAL_ERROR) && !s->got_error) {
                const char *ss = PQresultErrorField(res, PG_DIAG_SQLSTATE);
                snprintf(s->sqlstate, sizeof s->sqlstate, "%s", ss ? ss : "");
                first_line(PQresultErrorMessage(res), s->errmsg, sizeof s->errmsg);
                s->got_error = true;
            }
            PQclear(res);
        }
        if (PQstatus(s->conn) == CONNECTION_BAD) {
            query_done(s);
            return;
        }
    }
    if (watch(s, EV_READ | (s->flush_pending ? EV_WRITE : 0)) != 0)
        query_done(s);
}

static void start_check(pgf_session *s)
{
    if (set_state(s, PGF_SESS_BUSY, PGF_OP_check, "PQsendQuery") != 0)
        return;
    s->got_error = false;
    s->sqlstate[0] = '\0';
    s->errmsg[0] = '\0';
    if (!PQsendQuery(s->conn, s->check_query)) {
        query_done(s);
        return;
    }
    int f = PQflush(s->conn);
    if (f < 0) {
        query_done(s);
        return;
    }
    s->flush_pending = f == 1;
    if (watch(s, EV_READ | (s->flush_pending ? EV_WRITE : 0)) != 0)
        query_done(s);
}

/* ---- cancel ---- */

static void *cancel_thread(void *arg)
{
    /* PQcancel blocks (new connection, waits for the server to close it),
     * so it never runs on the loop. The thread owns the PGcancel and
     * touches nothing else: the session learns the outcome from its own
     * connection (57014) or from the cancel deadline. */
    PGcancel *c = arg;
    char errbuf[256];
    if (!PQcancel(c, errbuf, sizeof errbuf))
        pgf_log_info("cancel request failed: %s", errbuf);
    PQfreeCancel(c);
    atomic_fetch_sub(&g_live_cancel_threads, 1);
    return NULL;
}

/* ---- cancel from the loop ----
 *
 * libpq 15 cancels only with PQcancel(), which blocks (new connection, then
 * it waits for the server to close it), so it needs a thread, and a thread
 * makes the order of events depend on the OS: --mode sim could not promise
 * "same seed, same history" for a run with cancels. libpq 15 keeps the
 * cancel key only inside PGcancel (libpq-int.h: struct pg_cancel { SockAddr
 * raddr; int be_pid; int be_key; ... }). We read the key only when the pid
 * stored next to it equals PQbackendPID() -- proof the layout is the one we
 * know -- and then send the 16-byte CancelRequest ourselves, non-blocking,
 * from the loop, to the address the session is connected to. Otherwise (a
 * different libpq) we fall back to PQcancel on a thread. */
struct pg15_cancel_prefix {
    struct {
        struct sockaddr_storage addr;
        socklen_t salen;
    } raddr; /* libpq's SockAddr, padding included */
    int be_pid;
    int be_key;
};

typedef struct inline_cancel {
    struct event *ev;
    uint8_t pkt[16];
} inline_cancel;

static void on_cancel_writable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    inline_cancel *ic = arg;
    pgf_sim_activity();
    /* Best effort, like PQcancel: a lost request ends at the cancel deadline. */
    ssize_t w = send(fd, ic->pkt, sizeof ic->pkt, MSG_NOSIGNAL);
    (void)w;
    event_free(ic->ev);
    close(fd);
    free(ic);
    atomic_fetch_sub(&g_live_cancel_threads, 1);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static bool cancel_from_loop(pgf_session *s, PGcancel *c)
{
    int pid = PQbackendPID(s->conn);
    const struct pg15_cancel_prefix *l = (const struct pg15_cancel_prefix *)(const void *)c;
    if (pid == 0 || l->be_pid != pid)
        return false;
    struct sockaddr_storage peer;
    socklen_t plen = sizeof peer;
    if (getpeername(PQsocket(s->conn), (struct sockaddr *)&peer, &plen) != 0)
        return false;
    int fd = socket(peer.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    if (connect(fd, (struct sockaddr *)&peer, plen) != 0 && errno != EINPROGRESS) {
        close(fd);
        return false;
    }
    inline_cancel *ic = calloc(1, sizeof *ic);
    if (ic == NULL) {
        close(fd);
        return false;
    }
    put_be32(ic->pkt, 16);
    put_be32(ic->pkt + 4, 80877102u); /* CancelRequest code */
    put_be32(ic->pkt + 8, (uint32_t)pid);
    put_be32(ic->pkt + 12, (uint32_t)l->be_key);
    ic->ev = event_new(s->base, fd, EV_WRITE, on_cancel_writable, ic);
    if (ic->ev == NULL || event_add(ic->ev, NULL) != 0) {
        if (ic->ev != NULL)
            event_free(ic->ev);
        free(ic);
        close(fd);
        return false;
    }
    atomic_fetch_add(&g_live_cancel_threads, 1);
    return true;
}

static void do_cancel(pgf_session *s)
{
    pgf_sess_state st = pgf_session_state(s);
    if (pgf_session_state_connecting(st)) {
        finish_conn(s);
        if (set_state(s, PGF_SESS_FAILED, PGF_OP_cancel, "open canceled") != 0)
            return;
        pgf_health h;
        canceled_health(s, &h, "open canceled");
        complete(s, PGF_OP_open, PGF_ECANCELED, &h);
        complete(s, PGF_OP_cancel, 0, NULL);
        return;
    }
    if (st != PGF_SESS_BUSY) {
        /* The operation ended before the loop saw the request: nothing to
         * cancel, and the session is in one of cancel's end states. */
        complete(s, PGF_OP_cancel, 0, NULL);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->main.preempted = true;
    pthread_mutex_unlock(&s->mu);
    PGcancel *c = PQgetCancel(s->conn);
    pthread_t t;
    pthread_attr_t attr;
    bool started = false;
    if (c != NULL && cancel_from_loop(s, c)) {
        PQfreeCancel(c);
        c = NULL;
        started = true;
    }
    if (c != NULL && pthread_attr_init(&attr) == 0) {
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        atomic_fetch_add(&g_live_cancel_threads, 1);
        started = pthread_create(&t, &attr, cancel_thread, c) == 0;
        if (!started)
            atomic_fetch_sub(&g_live_cancel_threads, 1);
        pthread_attr_destroy(&attr);
    }
    if (!started) {
        /* No way to ask the server: drop the connection instead. */
        if (c != NULL)
            PQfreeCancel(c);
        finish_conn(s);
        if (set_state(s, PGF_SESS_CANCELING, PGF_OP_cancel, "cannot send cancel request") != 0 ||
            set_state(s, PGF_SESS_FAILED, PGF_OP_cancel, "connection dropped to cancel") != 0)
            return;
        pgf_health h;
        canceled_health(s, &h, "check canceled");
        complete(s, PGF_OP_check, PGF_ECANCELED, &h);
        complete(s, PGF_OP_cancel, 0, NULL);
        return;
    }
    if (set_state(s, PGF_SESS_CANCELING, PGF_OP_cancel, "cancel request sent") != 0)
        return;
    /* The query may have finished after the cancel was accepted (its
     * transition was deferred to us, and the socket is no longer watched):
     * end it now as canceled; otherwise keep reading until it ends. */
    if (!PQisBusy(s->conn) || watch(s, EV_READ | (s->flush_pending ? EV_WRITE : 0)) != 0)
        query_done(s);
}

/* ---- close ---- */

static void do_close(pgf_session *s)
{
    pthread_mutex_lock(&s->mu);
    pgf_sess_op op = s->close.op;
    pthread_mutex_unlock(&s->mu);
    if (op == PGF_OP_NONE)
        return;
    if (pgf_session_state(s) != PGF_SESS_CLOSING &&
        set_state(s, PGF_SESS_CLOSING, op, "close requested") != 0)
        return;
    /* On the loop, between polls: finishing here can never race a running
     * PQconnectPoll. */
    finish_conn(s);
    pgf_health h;
    canceled_health(s, &h, op == PGF_OP_close ? "closed" : "invalidated");
    snprintf(h.phase, sizeof h.phase, "closing");
    /* BUG (PGF_BUG_LOST_COMPLETION): the aborted open is forgotten, its
     * slot cleared without a completion or a callback. */
    if (bug(s, PGF_BUG_LOST_COMPLETION) && op_active(s, PGF_OP_open)) {
        pthread_mutex_lock(&s->mu);
        memset(&s->main, 0, sizeof s->main);
        pthread_mutex_unlock(&s->mu);
    }
    complete(s, PGF_OP_open, PGF_ECANCELED, &h);
    complete(s, PGF_OP_check, PGF_ECANCELED, &h);
    complete(s, PGF_OP_cancel, PGF_ECANCELED, &h);
    if (set_state(s, PGF_SESS_CLOSED, op, "connection finished") != 0)
        return;
    complete(s, op, 0, NULL);
}

/* ---- loop entry points ---- */

static void reap(pgf_session *s)
{
    if (s->free_requested && s->cb_depth == 0)
        really_free(s);
}

static void on_cmd(evutil_socket_t fd, short what, void *arg)
{
    pgf_session *s = arg;
    pgf_sim_activity();
    pthread_mutex_lock(&s->mu);
    unsigned cmd = s->pending;
    s->pending = 0;
    pgf_sess_state st = s->state;
    pgf_sess_op main_op = s->main.op;
    pthread_mutex_unlock(&s->mu);
    s->cb_depth++;
    if (cmd & CMD_BUG) {
        /* BUG (PGF_BUG_CLOSE_FREES_DURING_CONNECT), second half: the
         * connection was "freed" by close on another thread; whatever the
         * loop was doing completes with ECLOSED. */
        finish_conn(s);
        pgf_timer_cancel(s->timer);
        pgf_health h;
        pgf_health_classify(NULL, "connection freed by close", "closed", &h);
        complete(s, PGF_OP_open, PGF_ECLOSED, &h);
    } else if (cmd & CMD_CLOSE) {
        do_close(s);
    } else {
        if (cmd & CMD_CANCEL)
            do_cancel(s);
        if ((cmd & CMD_OPEN) && main_op == PGF_OP_open && st == PGF_SESS_NEW)
            start_open(s);
        if ((cmd & CMD_CHECK) && main_op == PGF_OP_check && st == PGF_SESS_READY)
            start_check(s);
    }
    s->cb_depth--;
    reap(s);
}

static void on_sock(evutil_socket_t fd, short what, void *arg)
{
    pgf_session *s = arg;
    pgf_sim_activity();
    s->cb_depth++;
    pgf_sess_state st = pgf_session_state(s);
    if (s->conn == NULL) {
        unwatch(s);
    } else if (pgf_session_state_connecting(st)) {
        connect_poll(s, PQconnectPoll(s->conn));
    } else if (st == PGF_SESS_BUSY || st == PGF_SESS_CANCELING) {
        query_io(s, what);
    } else {
        /* READY: the server spoke unasked (FATAL before close, notices). */
        PQconsumeInput(s->conn);
        if (PQstatus(s->conn) == CONNECTION_BAD)
            unwatch(s);
    }
    s->cb_depth--;
    reap(s);
}

static void on_timer(void *arg)
{
    pgf_session *s = arg;
    pgf_sim_activity();
    s->cb_depth++;
    pgf_sess_state st = pgf_session_state(s);
    pgf_health h;
    memset(&h, 0, sizeof h);
    h.reason = PGF_HEALTH_TIMEOUT;
    snprintf(h.phase, sizeof h.phase, "%s", phase_name(st));
    snprintf(h.message, sizeof h.message, "%s timeout expired in phase %s",
             st == PGF_SESS_CANCELING ? "cancel"
             : st == PGF_SESS_BUSY    ? "query"
             : st == PGF_SESS_CLOSING ? "close"
                                      : "connect",
             phase_name(st));
    if (pgf_session_state_connecting(st)) {
        open_failed(s, &h);
    } else if (st == PGF_SESS_BUSY) {
        finish_conn(s);
        if (set_state(s, PGF_SESS_FAILED, PGF_OP_check, h.message) == 0)
            complete(s, PGF_OP_check, PGF_ETIMEDOUT, &h);
    } else if (st == PGF_SESS_CANCELING) {
        finish_conn(s);
        if (set_state(s, PGF_SESS_FAILED, PGF_OP_cancel, h.message) == 0) {
            pgf_health c;
            canceled_health(s, &c, "check canceled");
            complete(s, PGF_OP_check, PGF_ECANCELED, &c);
            complete(s, PGF_OP_cancel, PGF_ETIMEDOUT, &h);
        }
    }
    s->cb_depth--;
    reap(s);
}

/* ---- call side (any thread) ---- */

static void kick(pgf_session *s, unsigned cmd)
{
    /* caller holds s->mu */
    s->pending |= cmd;
    event_active(s->cmd_ev, EV_READ, 0);
}

/* Validate a call and reserve its slot (caller holds s->mu). On refusal
 * writes the SQLAlchemy-style message and reports invoke + fail. */
static int reserve(pgf_session *s, pgf_sess_op op, pgf_session_cb cb, void *arg)
{
    pgf_sess_state st = s->state;
    const char *busy = NULL;
    if (s->close.op != PGF_OP_NONE)
        busy = pgf_session_op_name(s->close.op);
    else if (op == PGF_OP_cancel && s->cancel.op != PGF_OP_NONE)
        busy = "cancel";
    else if (!pgf_session_op_preempts(op) && s->main.op != PGF_OP_NONE)
        busy = pgf_session_op_name(s->main.op);
    else if (!pgf_session_op_preempts(op) && s->cancel.op != PGF_OP_NONE)
        busy = "cancel";
    uint64_t id = atomic_fetch_add(&g_op_id, 1) + 1;
    emit(s, PGF_SEV_INVOKE, op, id, st, st, "", 0, NULL);
    if (busy != NULL) {
        snprintf(s->last_error, sizeof s->last_error,
                 "Method '%s()' can't be called here; method '%s()' is already in progress "
                 "(session %llu, state %s)",
                 pgf_session_op_name(op), busy, (unsigned long long)s->id,
                 pgf_session_state_name(st));
    } else if (!pgf_session_op_allowed_from(op, st)) {
        snprintf(s->last_error, sizeof s->last_error,
                 "Method '%s()' can't be called here; session %llu is %s", pgf_session_op_name(op),
                 (unsigned long long)s->id, pgf_session_state_name(st));
    } else {
        /* Pool operations (acquire, release) occupy no slot: they start
         * and end in the same call. */
        struct opslot *sl = slot_of(s, op);
        if (sl != NULL)
            *sl = (struct opslot){op, id, cb, arg, false};
        else
            s->last_op_id = id;
        return 0;
    }
    emit(s, PGF_SEV_FAIL, op, id, st, st, s->last_error, PGF_EILLEGAL_STATE, NULL);
    return PGF_EILLEGAL_STATE;
}

static int call(pgf_session *s, pgf_sess_op op, unsigned cmd, pgf_session_cb cb, void *arg)
{
    if (s == NULL)
        return PGF_EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc = reserve(s, op, cb, arg);
    if (rc == 0)
        kick(s, cmd);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int pgf_session_open(pgf_session *s, pgf_session_cb cb, void *arg)
{
    return call(s, PGF_OP_open, CMD_OPEN, cb, arg);
}

int pgf_session_check(pgf_session *s, pgf_session_cb cb, void *arg)
{
    return call(s, PGF_OP_check, CMD_CHECK, cb, arg);
}

int pgf_session_cancel(pgf_session *s, pgf_session_cb cb, void *arg)
{
    return call(s, PGF_OP_cancel, CMD_CANCEL, cb, arg);
}

static int close_as(pgf_session *s, pgf_sess_op op, pgf_session_cb cb, void *arg)
{
    if (s == NULL)
        return PGF_EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc = reserve(s, op, cb, arg);
    if (rc == 0 && bug(s, PGF_BUG_CLOSE_FREES_DURING_CONNECT) &&
        pgf_session_state_connecting(s->state)) {
        /* BUG (PGF_BUG_CLOSE_FREES_DURING_CONNECT): close "frees" the
         * connection right here on the calling thread while open is still
         * polling: straight to CLOSED (no CLOSING), open not aborted. The
         * real PQfinish is still done on the loop (CMD_BUG) so the
         * process stays memory-safe; the history shows the bug. */
        pgf_sess_state from = s->state;
        s->state = PGF_SESS_CLOSED;
        s->bug_dropped = true;
        emit(s, PGF_SEV_TRANSITION, op, s->close.id, from, PGF_SESS_CLOSED, "connection freed", 0,
             NULL);
        struct opslot sl = s->close;
        memset(&s->close, 0, sizeof s->close);
        emit(s, PGF_SEV_OK, op, sl.id, PGF_SESS_CLOSED, PGF_SESS_CLOSED, "", 0, NULL);
        kick(s, CMD_BUG);
        pthread_mutex_unlock(&s->mu);
        /* its callback fires here, on the caller's thread: part of the bug */
        if (sl.cb != NULL)
            sl.cb(s, op, 0, NULL, sl.arg);
        return 0;
    }
    if (rc == 0)
        kick(s, CMD_CLOSE);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

int pgf_session_close(pgf_session *s, pgf_session_cb cb, void *arg)
{
    return close_as(s, PGF_OP_close, cb, arg);
}

int pgf__session_invalidate(pgf_session *s, pgf_session_cb cb, void *arg)
{
    return close_as(s, PGF_OP_invalidate, cb, arg);
}

int pgf__session_mark(pgf_session *s, pgf_sess_op op, bool force)
{
    if (s == NULL)
        return PGF_EINVAL;
    pthread_mutex_lock(&s->mu);
    int rc;
    if (force) {
        uint64_t id = atomic_fetch_add(&g_op_id, 1) + 1;
        emit(s, PGF_SEV_INVOKE, op, id, s->state, s->state, "", 0, NULL);
        emit(s, PGF_SEV_OK, op, id, s->state, s->state, "", 0, NULL);
        rc = 0;
    } else {
        rc = reserve(s, op, NULL, NULL);
        if (rc == 0)
            emit(s, PGF_SEV_OK, op, s->last_op_id, s->state, s->state, "", 0, NULL);
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void pgf__session_force(pgf_session *s, pgf_sess_state st, pgf_sess_op main_op)
{
    pthread_mutex_lock(&s->mu);
    s->state = st;
    if (main_op != PGF_OP_NONE)
        s->main = (struct opslot){main_op, atomic_fetch_add(&g_op_id, 1) + 1, NULL, NULL, false};
    if (st == PGF_SESS_CANCELING)
        s->cancel =
            (struct opslot){PGF_OP_cancel, atomic_fetch_add(&g_op_id, 1) + 1, NULL, NULL, false};
    if (st == PGF_SESS_CLOSING)
        s->close =
            (struct opslot){PGF_OP_close, atomic_fetch_add(&g_op_id, 1) + 1, NULL, NULL, false};
    pthread_mutex_unlock(&s->mu);
}

struct event_base *pgf__session_base(pgf_session *s)
{
    return s->base;
}

/* ---- lifecycle ---- */

static char **copy_strv(const char *const *v, size_t n)
{
    char **out = calloc(n + 1, sizeof *out);
    if (out == NULL)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        out[i] = strdup(v[i] != NULL ? v[i] : "");
        if (out[i] == NULL) {
            for (size_t j = 0; j < i; j++)
                free(out[j]);
            free(out);
            return NULL;
        }
    }
    return out;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++)
        free(v[i]);
    free(v);
}

int pgf_session_new(struct event_base *base, const pgf_session_opts *o, pgf_session **out)
{
    *out = NULL;
    if (base == NULL || o == NULL || o->keywords == NULL || o->values == NULL)
        return PGF_EINVAL;
    if (pgf_loop_threads_init() != 0)
        return PGF_EINTERNAL;
    pgf_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return PGF_ENOMEM;
    size_t n = 0;
    while (o->keywords[n] != NULL)
        n++;
    s->base = base;
    s->id = o->id != 0 ? o->id : atomic_fetch_add(&g_session_id, 1) + 1;
    s->state = PGF_SESS_NEW;
    s->sock_fd = -1;
    s->watch_fd = -1;
    s->recorder = o->recorder;
    s->recorder_arg = o->recorder_arg;
    s->bugs = o->bugs;
    s->timeout_ms[PGF_DEADLINE_CONNECT] = o->connect_timeout_ms ? o->connect_timeout_ms : 10000;
    s->timeout_ms[PGF_DEADLINE_QUERY] = o->query_timeout_ms ? o->query_timeout_ms : 10000;
    s->timeout_ms[PGF_DEADLINE_CANCEL] = o->cancel_timeout_ms ? o->cancel_timeout_ms : 5000;
    s->timeout_ms[PGF_DEADLINE_CLOSE] = o->close_timeout_ms ? o->close_timeout_ms : 5000;
    pthread_mutex_init(&s->mu, NULL);
    s->keywords = copy_strv(o->keywords, n);
    s->values = copy_strv(o->values, n);
    s->check_query = strdup(o->check_query != NULL ? o->check_query : "SELECT 1");
    s->timer = pgf_timer_new(base, on_timer, s);
    s->clock = pgf_simclock_of(base);
    s->cmd_ev = event_new(base, -1, EV_PERSIST, on_cmd, s);
    if (s->keywords == NULL || s->values == NULL || s->check_query == NULL || s->timer == NULL ||
        s->cmd_ev == NULL)
        goto fail;
    atomic_fetch_add(&g_live_sessions, 1);
    *out = s;
    return 0;
fail:
    free_strv(s->keywords);
    free_strv(s->values);
    free(s->check_query);
    pgf_timer_free(s->timer);
    if (s->cmd_ev != NULL)
        event_free(s->cmd_ev);
    pthread_mutex_destroy(&s->mu);
    free(s);
    return PGF_ENOMEM;
}

static void really_free(pgf_session *s)
{
    pgf_sess_state st = pgf_session_state(s);
    if (!pgf_session_state_terminal(st)) {
        /* Close on the way out: callbacks of in-flight ops still fire once. */
        pthread_mutex_lock(&s->mu);
        if (s->close.op == PGF_OP_NONE) {
            uint64_t id = atomic_fetch_add(&g_op_id, 1) + 1;
            emit(s, PGF_SEV_INVOKE, PGF_OP_close, id, st, st, "", 0, NULL);
            s->close = (struct opslot){PGF_OP_close, id, NULL, NULL, false};
        }
        pthread_mutex_unlock(&s->mu);
        s->cb_depth++;
        do_close(s);
        s->cb_depth--;
    }
    finish_conn(s);
    pgf_timer_free(s->timer);
    event_free(s->cmd_ev);
    free_strv(s->keywords);
    free_strv(s->values);
    free(s->check_query);
    pthread_mutex_destroy(&s->mu);
    free(s);
    atomic_fetch_sub(&g_live_sessions, 1);
}

void pgf_session_free(pgf_session *s)
{
    if (s == NULL)
        return;
    if (s->free_requested)
        return;
    s->free_requested = true;
    if (s->cb_depth > 0)
        return; /* inside one of its callbacks: reaped when they return */
    really_free(s);
}

pgf_sess_state pgf_session_state(pgf_session *s)
{
    pthread_mutex_lock(&s->mu);
    pgf_sess_state st = s->state;
    pthread_mutex_unlock(&s->mu);
    return st;
}

pgf_sess_op pgf_session_current_op(pgf_session *s)
{
    pthread_mutex_lock(&s->mu);
    pgf_sess_op op = s->main.op != PGF_OP_NONE     ? s->main.op
                     : s->cancel.op != PGF_OP_NONE ? s->cancel.op
                                                   : s->close.op;
    pthread_mutex_unlock(&s->mu);
    return op;
}

uint64_t pgf_session_id(const pgf_session *s)
{
    return s->id;
}

const char *pgf_session_last_error(pgf_session *s, char *buf, size_t len)
{
    pthread_mutex_lock(&s->mu);
    snprintf(buf, len, "%s", s->last_error);
    pthread_mutex_unlock(&s->mu);
    return buf;
}

int pgf_session_backend_pid(pgf_session *s)
{
    return s->conn != NULL ? PQbackendPID(s->conn) : 0;
}
