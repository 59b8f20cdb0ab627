/* session.h - one database session on libpq's async API, driven by a
 * libevent loop, with the declared state machine of machine.h.
 *
 * Threading (the point of the project):
 *   - A session belongs to the event_base it was created on; everything
 *     that touches its PGconn runs on the thread dispatching that base.
 *     Make bases with pgf_session_base_new() (it turns on libevent's
 *     pthread locking, which cross-thread calls need).
 *   - pgf_session_open/check/cancel/close may be called from ANY thread at
 *     any moment. The call is validated synchronously against the table
 *     (under the session's mutex) and either rejected with
 *     PGF_EILLEGAL_STATE, changing nothing, or accepted and marshalled to
 *     the loop (mutex-protected command flags + event_active). Callbacks
 *     run on the loop thread.
 *   - close is always accepted from a non-terminal state. An operation in
 *     progress is aborted on the loop (never PQfinish under a running
 *     PQconnectPoll, never off the loop); its callback fires exactly once
 *     with PGF_ECANCELED, then the session becomes CLOSED and close's own
 *     callback fires.
 *   - A function that returns an error never calls its callback; an
 *     accepted operation calls its callback exactly once.
 *   - pgf_session_free() runs on the loop thread (or when no thread runs
 *     the loop), and may be called inside the session's own callback: the
 *     free is then deferred to a safe point after the callback returns.
 *
 * Every state change goes through one set_state() (session.c) that
 * validates against machine.h, arms the state's deadline (libpq ignores
 * connect_timeout under PQconnectPoll, so the session owns connect, query,
 * cancel and close timeouts) and reports the change to the recorder hook
 * while holding the session's mutex, so one session's events are in seq
 * order.
 */
#ifndef PGF_SESSION_H
#define PGF_SESSION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/health.h"
#include "pgfault/machine.h"

struct event_base;

typedef struct pgf_session pgf_session;

typedef enum pgf_session_event_kind {
    PGF_SEV_TRANSITION, /* from -> to, caused by op */
    PGF_SEV_INVOKE,     /* op called (also for calls rejected right away) */
    PGF_SEV_OK,         /* op completed successfully */
    PGF_SEV_FAIL,       /* op completed with err (and health, when classified) */
} pgf_session_event_kind;

const char *pgf_session_event_kind_name(pgf_session_event_kind k); /* "transition", "invoke", ... */

/* One recorded event. Pointers are valid only during the recorder call. */
typedef struct pgf_session_event {
    pgf_session_event_kind kind;
    uint64_t seq;     /* global, strictly increasing (atomic counter) */
    uint64_t time_ns; /* pgf_now_ns() */
    uint64_t session_id;
    pgf_sess_op op;           /* operation causing it / invoked / completed */
    uint64_t op_id;           /* global, unique per invocation */
    pgf_sess_state from;      /* transition: old state; other kinds: the current state */
    pgf_sess_state to;        /* transition: new state; other kinds: == from */
    const char *cause;        /* transition: why; fail: the error message; else "" */
    int err;                  /* fail: PGF_E* code; else 0 */
    const pgf_health *health; /* fail of open/check/cancel: classification; else NULL */
} pgf_session_event;

/* Called with the session's mutex held, on whatever thread made the
 * change: keep it short, never call back into the session. */
typedef void (*pgf_session_recorder_fn)(const pgf_session_event *ev, void *arg);

/* Completion callback of an accepted operation; loop thread; exactly once.
 * err is 0 or a PGF_E* code; h is the classification (NULL for close). */
typedef void (*pgf_session_cb)(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h,
                               void *arg);

typedef struct pgf_session_opts {
    const char *const *keywords; /* libpq keywords/values, NULL-terminated; copied */
    const char *const *values;
    const char *check_query;          /* NULL = "SELECT 1"; copied */
    unsigned connect_timeout_ms;      /* 0 = 10000; whole open, across sub-phases */
    unsigned query_timeout_ms;        /* 0 = 10000 */
    unsigned cancel_timeout_ms;       /* 0 = 5000: after a cancel request, until the query ends */
    unsigned close_timeout_ms;        /* 0 = 5000 */
    pgf_session_recorder_fn recorder; /* optional */
    void *recorder_arg;
    uint64_t id;   /* 0 = next global id */
    unsigned bugs; /* PGF_BUG_* mask for this session (below); 0 = the correct manager */
} pgf_session_opts;

/* An event_base safe for cross-thread calls (evthread_use_pthreads() done
 * once first). Caller frees with event_base_free(). NULL on failure. */
struct event_base *pgf_session_base_new(void);

/* Create a session in state NEW on `base` (borrowed; must outlive the
 * session). Caller frees with pgf_session_free(). */
int pgf_session_new(struct event_base *base, const pgf_session_opts *opts,
                    pgf_session **out) PGF_NODISCARD;
/* Free. Loop thread only (or while no thread dispatches the base). A
 * session that is not CLOSED is closed first (in-flight callbacks fire
 * with PGF_ECANCELED; close has no callback). Inside one of the session's
 * callbacks the free is deferred until the callback returns. NULL: no-op. */
void pgf_session_free(pgf_session *s);

/* Operations: 0 = accepted (cb will fire once), or PGF_EILLEGAL_STATE
 * (message in pgf_session_last_error) / PGF_EINVAL; then nothing changed
 * and cb never fires. Any thread. cb may be NULL. PGF_NODISCARD: a caller
 * that ignores the result may wait for a callback that never comes. */
int pgf_session_open(pgf_session *s, pgf_session_cb cb, void *arg) PGF_NODISCARD;
int pgf_session_check(pgf_session *s, pgf_session_cb cb, void *arg) PGF_NODISCARD;
int pgf_session_cancel(pgf_session *s, pgf_session_cb cb, void *arg) PGF_NODISCARD;
int pgf_session_close(pgf_session *s, pgf_session_cb cb, void *arg) PGF_NODISCARD;

/* Snapshots (any thread; may be stale by the time they return). */
pgf_sess_state pgf_session_state(pgf_session *s);
/* The main operation in progress (open/check), else the preempting one, else NONE. */
pgf_sess_op pgf_session_current_op(pgf_session *s);
uint64_t pgf_session_id(const pgf_session *s);
/* The message of the last rejected call, e.g. "Method 'check()' can't be
 * called here; method 'open()' is already in progress (session 3, state
 * CONNECTING_AUTH)". Copies into buf; returns buf. */
const char *pgf_session_last_error(pgf_session *s, char *buf, size_t len);
/* libpq's server PID of the connection (loop thread), or 0. */
int pgf_session_backend_pid(pgf_session *s);

/* Live counters, for leak assertions in tests (atomics, any thread). */
typedef struct pgf_session_counters {
    long sessions;       /* pgf_session objects not yet freed */
    long pgconns;        /* PGconn objects not yet PQfinish'ed */
    long cancel_threads; /* cancel requests still being sent (loop or fallback thread) */
} pgf_session_counters;
void pgf_session_counters_get(pgf_session_counters *c);
/* Number op_ids and unnamed session ids from 1 again. Only between runs
 * (no session alive): each scenario of a suite then replays exactly. */
void pgf_session_ids_reset(void);

/* ---- deliberate bugs, for testing the harness and checker ----
 * Each bit turns on one small, clearly marked wrong branch; 0 (the
 * default) is the correct manager. The wrong branches are written so the
 * mistake shows in the recorded history without corrupting memory.
 * X(NAME, bit, "flag-name", what goes wrong) */
#define PGF_BUG_MAP(X)                                                                        \
    X(CLOSE_FREES_DURING_CONNECT, 0x01, "close-frees-during-connect",                         \
      "close during open drops the connection on the calling thread: CONNECTING_* -> CLOSED " \
      "without CLOSING, and open completes with PGF_ECLOSED instead of PGF_ECANCELED")        \
    X(FAILED_RETURNED_TO_POOL, 0x02, "failed-returned-to-pool",                               \
      "pool release keeps a FAILED connection idle and hands it out again")                   \
    X(CALLBACK_TWICE, 0x04, "callback-twice",                                                 \
      "open/check completion callbacks (and their ok/fail events) fire twice")                \
    X(AUTH_AS_CONNECTION_LOST, 0x08, "auth-as-connection-lost",                               \
      "an authentication failure is classified as connection_lost")                           \
    X(RELEASE_AFTER_CLOSE, 0x10, "release-after-close",                                       \
      "pool release of a CLOSED connection is accepted and the connection kept idle")         \
    X(LOST_COMPLETION, 0x20, "lost-completion",                                               \
      "close during open never completes the open: its callback never fires (the run is "     \
      "stuck; the verdict names the open)")

enum {
#define PGF__BUG_ENUM(name, bit, str, doc) PGF_BUG_##name = bit,
    PGF_BUG_MAP(PGF__BUG_ENUM)
#undef PGF__BUG_ENUM
};

/* The mask is an option of each session (pgf_session_opts.bugs) and pool
 * (pgf_pool_opts.session.bugs), fixed at creation: a test that turns a bug
 * on cannot leave it on for the next one, and two runs in one process do
 * not share it. */
/* "callback-twice,release-after-close" (or "none") -> mask; PGF_EINVAL
 * naming nothing else. */
int pgf_session_bugs_parse(const char *list, unsigned *mask) PGF_NODISCARD;

/* ---- for pool.c (same library) ---- */

/* Record a pool operation on the session (acquire, release) that has no
 * state change: validated like any operation, reported as invoke + ok, or
 * invoke + fail(PGF_EILLEGAL_STATE). `force` skips the validation (bug
 * injection only). Any thread. */
int pgf__session_mark(pgf_session *s, pgf_sess_op op, bool force) PGF_NODISCARD;
/* Close with the pool's `invalidate` operation label. */
int pgf__session_invalidate(pgf_session *s, pgf_session_cb cb, void *arg) PGF_NODISCARD;
struct event_base *pgf__session_base(pgf_session *s);
/* Tests only: put a fresh, never-opened session into `st` with `main_op`
 * (and, for CANCELING/CLOSING, the cancel/close op) marked in progress, so
 * the table of (state, operation) calls can be checked without a server.
 * No PGconn is involved; free it with pgf_session_free(). */
void pgf__session_force(pgf_session *s, pgf_sess_state st, pgf_sess_op main_op);

#endif
