/* pool.h - a small connection pool of sessions (the one behind the
 * incident's get_db_dependency, after SQLAlchemy's QueuePool).
 *
 * max_size connections kept, max_overflow more opened under load and
 * closed on release; acquire waits up to acquire_timeout_ms (FIFO);
 * pre_ping runs the session's check on an idle connection before handing
 * it out; a connection that fails (open, ping, or released FAILED) is
 * invalidated (closed with the `invalidate` operation and freed) and never
 * handed out again. Release is refused (PGF_EILLEGAL_STATE) while the
 * session has an operation in progress or is CLOSED: the rule is release's
 * `from` set in machine.h. After an authentication failure the pool does
 * not reconnect in a tight loop: acquires fail fast with PGF_EAUTH until a
 * backoff (exponential, full jitter from the pool's seeded pgf_rng) ends.
 *
 * Threading: a pool belongs to one event_base; call every pgf_pool_*
 * function on that loop's thread. Sessions handed out may still be closed
 * or canceled from any thread (session.h).
 */
#ifndef PGF_POOL_H
#define PGF_POOL_H

#include <stdbool.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/health.h"
#include "pgfault/session.h"

struct event_base;
typedef struct pgf_pool pgf_pool;

typedef struct pgf_pool_opts {
    pgf_session_opts session;    /* template for new sessions (id is ignored) */
    int max_size;                /* 0 = 5 */
    int max_overflow;            /* 0 = none */
    unsigned acquire_timeout_ms; /* 0 = 30000 */
    bool pre_ping;
    unsigned auth_backoff_base_ms; /* 0 = 500 */
    unsigned auth_backoff_cap_ms;  /* 0 = 30000 */
    uint64_t seed;                 /* backoff jitter stream */
    /* Per-connection application_name: when app_prefix is set, every new
     * connection takes its session id from next_id(next_id_arg) and the
     * application_name "<app_prefix><id>" (in place of the template's),
     * so a fault the server injects names the pooled session it hit and
     * its health result can be checked against it. NULL = the template's
     * name and ids. */
    const char *app_prefix;
    uint64_t (*next_id)(void *arg);
    void *next_id_arg;
} pgf_pool_opts;

/* Acquire result: s is checked out to the caller (err 0), or NULL with err
 * (PGF_ETIMEDOUT, PGF_EAUTH, the open's error, PGF_ECANCELED on pool free)
 * and h describing why. Loop thread; exactly once per accepted acquire. */
typedef void (*pgf_pool_acquire_cb)(pgf_pool *p, pgf_session *s, int err, const pgf_health *h,
                                    void *arg);

int pgf_pool_new(struct event_base *base, const pgf_pool_opts *o, pgf_pool **out) PGF_NODISCARD;
/* Closes and frees every connection (checked out ones too: do not use them
 * afterwards); pending acquires fail with PGF_ECANCELED. NULL: no-op. */
void pgf_pool_free(pgf_pool *p);

/* 0 = accepted (cb fires once); an error means cb never fires. */
int pgf_pool_acquire(pgf_pool *p, pgf_pool_acquire_cb cb, void *arg) PGF_NODISCARD;
/* Give back a checked-out session. 0; PGF_EILLEGAL_STATE when the session
 * is mid-operation or CLOSED (it stays checked out: release it later, or
 * pgf_pool_invalidate it); PGF_EINVAL if it is not checked out from p. */
int pgf_pool_release(pgf_pool *p, pgf_session *s) PGF_NODISCARD;
/* Close a checked-out session for good and drop it from the pool. */
int pgf_pool_invalidate(pgf_pool *p, pgf_session *s) PGF_NODISCARD;

typedef struct pgf_pool_stats {
    int idle, checked_out, opening, pinging, closing, waiting;
    uint64_t opened, open_failed, invalidated, timeouts, auth_blocked;
} pgf_pool_stats;
void pgf_pool_get_stats(const pgf_pool *p, pgf_pool_stats *st);

#endif
