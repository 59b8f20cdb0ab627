/* driver.c - see driver.h.
 *
 * A "slot" is one simulated health-check client: it loops open -> check
 * -> close (or pool acquire -> check -> release) until its iterations or
 * the duration are used up. Slots live on a worker's event_base; racers
 * fire from the session recorder hook (which only decides and enqueues)
 * and call the session API from the racer thread (stress) or from a
 * deferred event on the same loop (sim). A slot frees its session only
 * when the session is CLOSED and no racer job still refers to it.
 */
#include "driver.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pgfault/clock.h"
#include "pgfault/config.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
#include "pgfault/pool.h"
#include "pgfault/proxy.h"
#include "pgfault/rules.h"
#include "pgfault/rng.h"
#include "pgfault/session.h"
#include "pgfault/timer.h"
#include "watchdog.h"

typedef struct worker worker;
typedef struct run_ctx run_ctx;

typedef struct slot {
    worker *w;
    unsigned index;
    unsigned iter;
    pgf_session *s;
    uint64_t sid; /* s's id when a pool handed it out: compared without touching s
                   * (a buggy pool may free a session a slot still points to) */
    uint64_t t0;
    bool checking; /* pool workload: a check on s is out (its completion counts once) */
    bool closing;
    bool done;
    atomic_int racer_pending;
    bool wait_racers;
    pgf_timer *think;
    unsigned trig_count[PGF_SCENARIO_MAX_RACERS];
    const char *vals[16]; /* per-session copy of the conninfo values */
    char appname[32];     /* "pgf-s<id>": links server-side faults to sessions */
    /* exploration (sc->explore): the pause between steps and what follows it */
    pgf_timer *step;
    int step_next; /* STEP_CHECK or STEP_CLOSE */
    unsigned explore_count;
} slot;

enum { STEP_CHECK = 1, STEP_CLOSE = 2 };

struct worker {
    run_ctx *rc;
    int index;
    struct event_base *base;
    pthread_t thread;
    bool thread_started;
    slot *slots;
    unsigned nslots;
    unsigned active;
    pgf_pool *pool;
    /* per-worker results, merged after join */
    uint64_t checks;
    uint64_t outcomes[PGF_HEALTH_REASON_COUNT];
    pgf_lathist lat[PGF_HEALTH_REASON_COUNT];
    /* throughput bins and latency dots for the over-time charts (fixed
     * memory, overtime.h) */
    pgf_overtime ot;
};

typedef struct racer_job {
    struct racer_job *next;
    slot *sl;
    pgf_session *s;
    const pgf_racer *r; /* NULL: an exploration call of `op`, once */
    pgf_sess_op op;
    uint64_t due_ns;  /* stress: real time to fire */
    pgf_timer *timer; /* sim: delayed job */
} racer_job;

struct run_ctx {
    const pgf_scenario *sc;
    const pgf_driver_opts *o;
    pgf_run *res;
    bool sim;
    struct event_base *sim_base;
    pgf_simclock *clock;
    pgf_server *server;
    pgf_proxy *proxy;                /* server.proxy: in front of a real server */
    PQconninfoOption *external_opts; /* server.external, parsed: the conninfo used */
    char sockdir[256];
    char host[300];
    char port[16];
    worker *workers;
    int nworkers;
    uint64_t start_ns;
    uint64_t rec_start; /* run_now() when the recorder started: the history's time 0 */
    uint64_t end_ns;    /* duration deadline on the run clock (0 = none) */
    atomic_bool stopping;
    atomic_uint_fast64_t racer_count[PGF_SCENARIO_MAX_RACERS];
    atomic_uint_fast64_t racer_fired;
    atomic_uint_fast64_t api_errors;
    atomic_uint_fast64_t checks_done;
    atomic_uint_fast64_t live_outcomes[PGF_HEALTH_REASON_COUNT]; /* for progress lines */
    atomic_int workers_left;
    atomic_uint_fast64_t next_session_id;
    int app_index; /* index of application_name in kw/vals */
    /* stress racer thread */
    pthread_t racer_thread;
    bool racer_started;
    pthread_mutex_t rq_lock;
    pthread_cond_t rq_cond;
    racer_job *rq_head, *rq_tail;
    bool rq_quit;
    /* mid-run changes */
    pgf_timer *rotate_timer;
    const char *kw[16];
    const char *vals[16];
    char appname[64];
    /* stuck runs: the watchdog (sim) and the switch that stops recording
     * once the verdict is in, so teardown's own closes do not paper over
     * the operations that never completed */
    pgf_watchdog *wd;
    atomic_bool mute;
};

static uint64_t run_now(run_ctx *rc)
{
    return rc->clock != NULL ? pgf_simclock_now(rc->clock) : pgf_now_ns();
}

/* ------------------------------------------------------------------ */
/* results                                                             */

static void add_outcome(worker *w, pgf_health_reason reason, uint64_t ns)
{
    w->checks++;
    atomic_fetch_add(&w->rc->checks_done, 1);
    atomic_fetch_add(&w->rc->live_outcomes[reason], 1);
    w->outcomes[reason]++;
    /* fixed memory whatever the run's length (lathist.h, overtime.h) */
    if (pgf_lathist_add(&w->lat[reason], ns) != 0)
        return;
    /* when it ended, on the history's clock: the over-time charts */
    pgf_ot_add(&w->ot, reason == PGF_HEALTH_HEALTHY, (unsigned)reason,
               run_now(w->rc) - w->rc->rec_start, ns);
}

static pgf_health_reason reason_of(int err, const pgf_health *h)
{
    if (err == 0)
        return PGF_HEALTH_HEALTHY;
    if (h != NULL && !h->healthy)
        return h->reason;
    return err == PGF_ECANCELED ? PGF_HEALTH_CANCELED : PGF_HEALTH_CONNECTION_LOST;
}

/* ------------------------------------------------------------------ */
/* slots                                                               */

static void slot_begin(slot *sl);
static void slot_closed(slot *sl);
static void explore_in_callback(slot *sl, pgf_session *s);

static bool slot_should_stop(slot *sl)
{
    run_ctx *rc = sl->w->rc;
    if (atomic_load(&rc->stopping))
        return true;
    if (rc->sc->iterations > 0 && sl->iter >= rc->sc->iterations)
        return true;
    if (rc->end_ns > 0 && run_now(rc) >= rc->end_ns)
        return true;
    return false;
}

static void slot_finish(slot *sl)
{
    sl->done = true;
    worker *w = sl->w;
    if (--w->active == 0 && !w->rc->sim)
        event_base_loopexit(w->base, NULL);
}

static void on_think(void *arg)
{
    pgf_sim_activity();
    slot_begin(arg);
}

static void slot_next(slot *sl)
{
    run_ctx *rc = sl->w->rc;
    if (slot_should_stop(sl)) {
        slot_finish(sl);
        return;
    }
    /* A zero think time still goes through the loop, so one slot never
     * starves the others and the sim schedule stays fair. */
    pgf_timer_arm(sl->think, PGF_MS_NS(rc->sc->think_ms));
}

static void on_closed_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    (void)s;
    (void)op;
    (void)err;
    (void)h;
    pgf_sim_activity();
    slot_closed(arg);
}

static void slot_close(slot *sl)
{
    if (sl->closing)
        return;
    sl->closing = true;
    int rc = pgf_session_close(sl->s, on_closed_cb, sl);
    if (rc == 0)
        return;
    /* Refused: a racer's close got there first. Either it has completed
     * (CLOSED) or its callback is still to come, and the slot resumes when
     * that callback brings racer_pending to zero. */
    pgf_sess_state st = pgf_session_state(sl->s);
    if (st == PGF_SESS_CLOSED || atomic_load(&sl->racer_pending) == 0) {
        if (st != PGF_SESS_CLOSED)
            pgf_log_warn("[slot %u] close refused in state %s with no racer pending: %s", sl->index,
                         pgf_session_state_name(st), pgf_strerror(rc));
        slot_closed(sl);
        return;
    }
    sl->wait_racers = true;
}

static void slot_closed(slot *sl)
{
    if (atomic_load(&sl->racer_pending) > 0) {
        sl->wait_racers = true;
        return;
    }
    sl->wait_racers = false;
    if (sl->s != NULL) {
        pgf_session_free(sl->s); /* deferred by the session if inside its callback */
        sl->s = NULL;
    }
    slot_next(sl);
}

/* Exploration: a seeded pause of 0-4 ms before the slot's next step, so
 * that exploration calls land on an idle READY session too. */
static bool explore_pause(slot *sl, int next)
{
    run_ctx *rc = sl->w->rc;
    if (!rc->sc->explore)
        return false;
    pgf_rng g;
    pgf_rng_init(&g, rc->sc->seed, pgf_session_id(sl->s), 0xE2000000ULL | (uint64_t)next);
    sl->step_next = next;
    pgf_timer_arm(sl->step, PGF_MS_NS(pgf_rng_below(&g, 5)));
    return true;
}

static void on_check_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    (void)s;
    (void)op;
    slot *sl = arg;
    pgf_sim_activity();
    add_outcome(sl->w, reason_of(err, h), run_now(sl->w->rc) - sl->t0);
    explore_in_callback(sl, s);
    if (err == 0 && explore_pause(sl, STEP_CLOSE))
        return;
    slot_close(sl);
}

static void on_step(void *arg)
{
    slot *sl = arg;
    pgf_sim_activity();
    if (sl->s == NULL || sl->closing)
        return;
    if (sl->step_next == STEP_CHECK && pgf_session_check(sl->s, on_check_cb, sl) == 0) {
        /* a second caller right behind the first: the check is in
         * progress but not started (the session is still READY) */
        explore_in_callback(sl, sl->s);
        return;
    }
    if (sl->step_next == STEP_CHECK) {
        /* an exploration call moved the session on during the pause */
        atomic_fetch_add(&sl->w->rc->api_errors, 1);
        add_outcome(sl->w, PGF_HEALTH_CANCELED, run_now(sl->w->rc) - sl->t0);
    }
    slot_close(sl);
}

static void on_open_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    (void)op;
    slot *sl = arg;
    pgf_sim_activity();
    explore_in_callback(sl, s);
    if (err == 0 && explore_pause(sl, STEP_CHECK))
        return;
    if (err == 0) {
        int rc = pgf_session_check(s, on_check_cb, sl);
        if (rc == 0)
            return;
        /* A racer moved the session on between open's completion and now. */
        atomic_fetch_add(&sl->w->rc->api_errors, 1);
        add_outcome(sl->w, PGF_HEALTH_CANCELED, run_now(sl->w->rc) - sl->t0);
    } else {
        add_outcome(sl->w, reason_of(err, h), run_now(sl->w->rc) - sl->t0);
    }
    slot_close(sl);
}

static void recorder_hook(const pgf_session_event *ev, void *arg);
static void explore_at_new(slot *sl);

static void slot_begin(slot *sl)
{
    worker *w = sl->w;
    run_ctx *rc = w->rc;
    if (slot_should_stop(sl)) {
        slot_finish(sl);
        return;
    }
    sl->iter++;
    sl->closing = false;
    pgf_session_opts o = {0};
    o.id = atomic_fetch_add(&rc->next_session_id, 1) + 1;
    memcpy(sl->vals, rc->vals, sizeof sl->vals);
    snprintf(sl->appname, sizeof sl->appname, "pgf-s%llu", (unsigned long long)o.id);
    sl->vals[rc->app_index] = sl->appname;
    o.keywords = rc->kw;
    o.values = sl->vals;
    o.check_query = rc->sc->query;
    o.connect_timeout_ms = rc->sc->connect_timeout_ms;
    o.query_timeout_ms = rc->sc->query_timeout_ms;
    o.recorder = recorder_hook;
    o.recorder_arg = sl;
    o.bugs = rc->sc->bugs;
    int e = pgf_session_new(w->base, &o, &sl->s);
    if (e != 0) {
        snprintf(rc->res->harness_error, sizeof rc->res->harness_error,
                 "cannot create a session: %s", pgf_strerror(e));
        atomic_store(&rc->stopping, true);
        slot_finish(sl);
        return;
    }
    sl->t0 = run_now(rc);
    if (rc->sc->explore)
        explore_at_new(sl);
    e = pgf_session_open(sl->s, on_open_cb, sl);
    if (e != 0 && rc->sc->explore) {
        /* an exploration call at NEW closed it first: refused, as it must be */
        atomic_fetch_add(&rc->api_errors, 1);
        add_outcome(w, PGF_HEALTH_CANCELED, 0);
        slot_close(sl);
        return;
    }
    if (e != 0) {
        snprintf(rc->res->harness_error, sizeof rc->res->harness_error,
                 "open refused on a new session: %s", pgf_strerror(e));
        atomic_store(&rc->stopping, true);
        pgf_session_free(sl->s);
        sl->s = NULL;
        slot_finish(sl);
    }
}

/* ---- pool workload: acquire -> check -> release ---- */

static void pool_slot_begin(slot *sl);
static void racers_on_transition(slot *sl, pgf_session *s, pgf_sess_state to);

static void on_pool_think(void *arg)
{
    pgf_sim_activity();
    pool_slot_begin(arg);
}

static void pool_next(slot *sl)
{
    if (slot_should_stop(sl)) {
        slot_finish(sl);
        return;
    }
    pgf_timer_arm(sl->think, PGF_MS_NS(sl->w->rc->sc->think_ms));
}

/* Give the checked-out session back the way application code does: in a
 * `finally`, whatever happened to it (healthy, failed, or closed under it
 * by a racer). It is the pool's job to notice a FAILED or CLOSED
 * connection on release; if the driver invalidated failed ones itself, the
 * pool's release rules (and PGF_BUG_FAILED_RETURNED_TO_POOL /
 * PGF_BUG_RELEASE_AFTER_CLOSE) would never be exercised. A release the
 * pool refuses (mid-operation, closed) is followed by invalidate. Waits
 * until no racer job refers to the session. */
static void pool_give_back(slot *sl)
{
    if (atomic_load(&sl->racer_pending) > 0) {
        sl->wait_racers = true;
        return;
    }
    sl->wait_racers = false;
    pgf_session *s = sl->s;
    sl->s = NULL;
    if (s != NULL && pgf_pool_release(sl->w->pool, s) != 0) {
        atomic_fetch_add(&sl->w->rc->api_errors, 1);
        /* Refused too (not checked out from this pool): the pool never had
         * it, so there is nothing to leak; count the second API error. */
        if (pgf_pool_invalidate(sl->w->pool, s) != 0)
            atomic_fetch_add(&sl->w->rc->api_errors, 1);
    }
    pool_next(sl);
}

static void on_pool_check(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    (void)op;
    (void)s;
    slot *sl = arg;
    pgf_sim_activity();
    /* A second completion (PGF_BUG_CALLBACK_TWICE) is the checker's to
     * report from the history; taken as news here, it gave the session
     * back twice and began the slot's next iteration twice. */
    if (!sl->checking)
        return;
    sl->checking = false;
    add_outcome(sl->w, reason_of(err, h), run_now(sl->w->rc) - sl->t0);
    pool_give_back(sl);
}

static void on_acquired(pgf_pool *p, pgf_session *s, int err, const pgf_health *h, void *arg)
{
    (void)p;
    slot *sl = arg;
    pgf_sim_activity();
    if (err != 0 || s == NULL) {
        add_outcome(sl->w, reason_of(err ? err : PGF_EIO, h), run_now(sl->w->rc) - sl->t0);
        pool_next(sl);
        return;
    }
    sl->s = s;
    sl->sid = pgf_session_id(s);
    sl->checking = true;
    if (pgf_session_check(s, on_pool_check, sl) != 0) {
        sl->checking = false;
        /* Handed out in a state where a check is refused (a connection the
         * pool should have dropped): count it and give it back. */
        atomic_fetch_add(&sl->w->rc->api_errors, 1);
        add_outcome(sl->w, PGF_HEALTH_CANCELED, run_now(sl->w->rc) - sl->t0);
        pool_give_back(sl);
    }
}

static void pool_slot_begin(slot *sl)
{
    if (slot_should_stop(sl)) {
        slot_finish(sl);
        return;
    }
    sl->iter++;
    sl->t0 = run_now(sl->w->rc);
    if (pgf_pool_acquire(sl->w->pool, on_acquired, sl) != 0) {
        add_outcome(sl->w, PGF_HEALTH_TIMEOUT, 0);
        pool_next(sl);
    }
}

/* ------------------------------------------------------------------ */
/* racers                                                              */

static void racer_done(evutil_socket_t fd, short what, void *arg);

/* An accepted racer close/cancel completed (loop thread). */
static void racer_op_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    (void)s;
    (void)op;
    (void)err;
    (void)h;
    racer_done(-1, 0, arg);
}

static void racer_call(racer_job *j)
{
    run_ctx *rc = j->sl->w->rc;
    atomic_fetch_add(&rc->racer_fired, 1);
    pgf_sess_op op = j->r != NULL ? j->r->op : j->op;
    unsigned times = j->r != NULL ? j->r->times : 1;
    for (unsigned k = 0; k < times; k++) {
        int e;
        switch (op) {
        case PGF_OP_close:
        case PGF_OP_cancel:
        case PGF_OP_invalidate:
            /* The callback keeps the slot from freeing the session until
             * this operation is over. */
            atomic_fetch_add(&j->sl->racer_pending, 1);
            e = op == PGF_OP_close    ? pgf_session_close(j->s, racer_op_cb, j->sl)
                : op == PGF_OP_cancel ? pgf_session_cancel(j->s, racer_op_cb, j->sl)
                                      : pgf__session_invalidate(j->s, racer_op_cb, j->sl);
            if (e != 0)
                atomic_fetch_sub(&j->sl->racer_pending, 1);
            break;
        case PGF_OP_check:
            e = pgf_session_check(j->s, NULL, NULL);
            break;
        case PGF_OP_open:
            e = pgf_session_open(j->s, NULL, NULL);
            break;
        case PGF_OP_acquire:
        case PGF_OP_release:
            /* the pool's bookkeeping calls, validated by the session */
            e = pgf__session_mark(j->s, op, false);
            break;
        default:
            e = PGF_EINVAL;
            break;
        }
        if (e != 0)
            atomic_fetch_add(&rc->api_errors, 1);
    }
}

/* Back on the slot's loop: a job or a racer's operation no longer refers
 * to the session. */
static void racer_done(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    slot *sl = arg;
    pgf_sim_activity();
    if (atomic_fetch_sub(&sl->racer_pending, 1) == 1 && sl->wait_racers && !sl->done) {
        if (sl->w->rc->sc->pool)
            pool_give_back(sl);
        else
            slot_closed(sl);
    }
}

static void sim_job_fire(void *arg)
{
    racer_job *j = arg;
    pgf_sim_activity();
    racer_call(j);
    slot *sl = j->sl;
    pgf_timer_free(j->timer);
    free(j);
    racer_done(-1, 0, sl);
}

static void sim_job_now(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sim_job_fire(arg);
}

static void *racer_thread_main(void *arg)
{
    run_ctx *rc = arg;
    pthread_mutex_lock(&rc->rq_lock);
    for (;;) {
        while (rc->rq_head == NULL && !rc->rq_quit)
            pthread_cond_wait(&rc->rq_cond, &rc->rq_lock);
        if (rc->rq_head == NULL && rc->rq_quit)
            break;
        racer_job *j = rc->rq_head;
        rc->rq_head = j->next;
        if (rc->rq_head == NULL)
            rc->rq_tail = NULL;
        pthread_mutex_unlock(&rc->rq_lock);
        uint64_t now = pgf_now_ns();
        if (j->due_ns > now) {
            struct timespec ts = {(time_t)((j->due_ns - now) / 1000000000ULL),
                                  (long)((j->due_ns - now) % 1000000000ULL)};
            nanosleep(&ts, NULL);
        }
        racer_call(j);
        /* hand the slot back to its own loop */
        if (event_base_once(j->sl->w->base, -1, EV_TIMEOUT, racer_done, j->sl, NULL) != 0)
            atomic_fetch_sub(&j->sl->racer_pending, 1);
        free(j);
        pthread_mutex_lock(&rc->rq_lock);
    }
    pthread_mutex_unlock(&rc->rq_lock);
    return NULL;
}

/* Hand a job to whoever calls it: a deferred event (sim; a virtual timer
 * when delayed) or the racer thread (stress). */
static void enqueue_job(slot *sl, racer_job *j, unsigned delay_ms)
{
    run_ctx *rc = sl->w->rc;
    atomic_fetch_add(&sl->racer_pending, 1);
    if (rc->sim) {
        if (delay_ms == 0) {
            if (event_base_once(sl->w->base, -1, EV_TIMEOUT, sim_job_now, j, NULL) != 0) {
                atomic_fetch_sub(&sl->racer_pending, 1);
                free(j);
            }
        } else {
            j->timer = pgf_timer_new(sl->w->base, sim_job_fire, j);
            if (j->timer == NULL) {
                atomic_fetch_sub(&sl->racer_pending, 1);
                free(j);
                return;
            }
            pgf_timer_arm(j->timer, PGF_MS_NS(delay_ms));
        }
    } else {
        j->due_ns = pgf_now_ns() + PGF_MS_NS(delay_ms);
        pthread_mutex_lock(&rc->rq_lock);
        if (rc->rq_tail)
            rc->rq_tail->next = j;
        else
            rc->rq_head = j;
        rc->rq_tail = j;
        pthread_cond_signal(&rc->rq_cond);
        pthread_mutex_unlock(&rc->rq_lock);
    }
}

/* Called from the recorder hook (session mutex held): decide and enqueue,
 * never call the session here. */
static void racers_on_transition(slot *sl, pgf_session *s, pgf_sess_state to)
{
    run_ctx *rc = sl->w->rc;
    const pgf_scenario *sc = rc->sc;
    for (int i = 0; i < sc->nracers; i++) {
        const pgf_racer *r = &sc->racers[i];
        if (r->at != to)
            continue;
        uint64_t k = atomic_fetch_add(&rc->racer_count[i], 1) + 1;
        unsigned local = ++sl->trig_count[i];
        if (r->nth > 0 && k != r->nth)
            continue;
        if (r->probability < 1.0) {
            pgf_rng g;
            pgf_rng_init(&g, sc->seed, pgf_session_id(s), ((uint64_t)i << 32) | local);
            if (pgf_rng_unit(&g) >= r->probability)
                continue;
        }
        racer_job *j = calloc(1, sizeof *j);
        if (j == NULL)
            continue;
        j->sl = sl;
        j->s = s;
        j->r = r;
        enqueue_job(sl, j, r->delay_ms);
    }
}

/* Exploration, the generator half: on every transition of a slot's
 * session, with a seeded chance, call a random operation 0-3 ms later in
 * whatever state the session is then in (forbidden ones included: they
 * must be refused with PGF_EILLEGAL_STATE and change nothing). Same
 * (seed, session, count) -> same call, so sim runs replay exactly. */
#define EXPLORE_CHANCE 0.35
static void explore_on_transition(slot *sl, pgf_session *s, pgf_sess_state to)
{
    run_ctx *rc = sl->w->rc;
    pgf_rng g;
    pgf_rng_init(&g, rc->sc->seed, pgf_session_id(s), 0xE1000000ULL | ++sl->explore_count);
    /* the short-lived states get a call every time, or they go unexplored */
    bool rare = to == PGF_SESS_CANCELING || to == PGF_SESS_CONNECTING_PARAMS;
    if (pgf_rng_unit(&g) >= (rare ? 1.0 : EXPLORE_CHANCE))
        return;
    racer_job *j = calloc(1, sizeof *j);
    if (j == NULL)
        return;
    j->sl = sl;
    j->s = s;
    j->op = (pgf_sess_op)(1 + pgf_rng_below(&g, PGF_OP_COUNT - 1));
    /* half at once (the next loop pass: short-lived states such as
     * CANCELING), half 1-3 ms later */
    unsigned delay = pgf_rng_below(&g, 2) == 0 ? 0 : 1 + (unsigned)pgf_rng_below(&g, 3);
    enqueue_job(sl, j, delay);
}

/* Exploration from inside a completion callback, as application code
 * reacting to a result does: the session may be mid-close (CLOSING: close
 * completes the operations it aborts before it finishes), FAILED or
 * READY; and right after the slot's own check call, while that check is
 * in progress but not started. The call is made synchronously, on the
 * loop. */
static void explore_in_callback(slot *sl, pgf_session *s)
{
    run_ctx *rc = sl->w->rc;
    if (!rc->sc->explore || rc->sc->pool)
        return;
    pgf_rng g;
    pgf_rng_init(&g, rc->sc->seed, pgf_session_id(s), 0xE4000000ULL | ++sl->explore_count);
    if (pgf_rng_unit(&g) >= EXPLORE_CHANCE)
        return;
    racer_job j = {0};
    j.sl = sl;
    j.s = s;
    j.op = (pgf_sess_op)(1 + pgf_rng_below(&g, PGF_OP_COUNT - 1));
    racer_call(&j);
}

/* Exploration at NEW (no transition leads there): before its open, a
 * fresh session sometimes gets another call first, synchronously. */
static void explore_at_new(slot *sl)
{
    run_ctx *rc = sl->w->rc;
    pgf_rng g;
    pgf_rng_init(&g, rc->sc->seed, pgf_session_id(sl->s), 0xE3000000ULL);
    if (pgf_rng_unit(&g) >= EXPLORE_CHANCE)
        return;
    static const pgf_sess_op at_new[] = {PGF_OP_check,   PGF_OP_cancel, PGF_OP_acquire,
                                         PGF_OP_release, PGF_OP_close,  PGF_OP_invalidate};
    racer_job j = {0};
    j.sl = sl;
    j.s = sl->s;
    j.op = at_new[pgf_rng_below(&g, sizeof at_new / sizeof at_new[0])];
    racer_call(&j);
}

/* Record a session event with the run's temp socket directory (random,
 * and quoted by libpq in its error messages) replaced by "$SOCKDIR", so the
 * same seed gives the same history byte for byte. */
static void record_event(run_ctx *rc, const pgf_session_event *ev)
{
    if ((rc->o != NULL && rc->o->no_record) || atomic_load(&rc->mute))
        return;
    if (rc->wd != NULL)
        pgf_watchdog_event(rc->wd, ev);
    const char *at =
        rc->sockdir[0] != '\0' && ev->cause != NULL ? strstr(ev->cause, rc->sockdir) : NULL;
    if (at == NULL) {
        pgf_recorder_session_event(ev, rc->res->rec);
        return;
    }
    char buf[1024];
    size_t out = 0, dlen = strlen(rc->sockdir);
    const char *p = ev->cause;
    while (*p != '\0' && out + 1 < sizeof buf) {
        if (strncmp(p, rc->sockdir, dlen) == 0) {
            int k = snprintf(buf + out, sizeof buf - out, "$SOCKDIR");
            out = k > 0 && out + (size_t)k < sizeof buf ? out + (size_t)k : sizeof buf - 1;
            p += dlen;
        } else {
            buf[out++] = *p++;
        }
    }
    buf[out] = '\0';
    pgf_session_event copy = *ev;
    copy.cause = buf;
    pgf_recorder_session_event(&copy, rc->res->rec);
}

/* The session manager's recorder hook, per session (arg = slot). */
static void recorder_hook(const pgf_session_event *ev, void *arg)
{
    slot *sl = arg;
    run_ctx *rc = sl->w->rc;
    record_event(rc, ev);
    if (ev->kind == PGF_SEV_TRANSITION && rc->sc->nracers > 0 && sl->s != NULL)
        racers_on_transition(sl, sl->s, ev->to);
    if (ev->kind == PGF_SEV_TRANSITION && rc->sc->explore && sl->s != NULL && !rc->sc->pool)
        explore_on_transition(sl, sl->s, ev->to);
}

/* The pool's sessions: record; racers act only on a session a slot has
 * checked out (from acquire until it is given back), never on one the
 * pool is opening, pinging or closing on its own. Transitions are reported
 * on the loop thread that owns the slots, so reading sl->s is safe. */
static void pool_recorder_hook(const pgf_session_event *ev, void *arg)
{
    worker *w = arg;
    record_event(w->rc, ev);
    if (ev->kind != PGF_SEV_TRANSITION || w->rc->sc->nracers == 0)
        return;
    for (unsigned k = 0; k < w->nslots; k++) {
        slot *sl = &w->slots[k];
        /* ev comes from a live session: a matching id means sl->s is it */
        if (sl->s != NULL && sl->sid == ev->session_id) {
            racers_on_transition(sl, sl->s, ev->to);
            return;
        }
    }
}

/* ------------------------------------------------------------------ */
/* the fake server's fault hook                                        */

static void on_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                     const struct pgf_fault_action *a)
{
    run_ctx *rc = arg;
    int64_t session = -1;
    if (ctx->application_name != NULL && strncmp(ctx->application_name, "pgf-s", 5) == 0)
        session = strtoll(ctx->application_name + 5, NULL, 10);
    if ((rc->o == NULL || !rc->o->no_record) && !atomic_load(&rc->mute))
        pgf_recorder_fault(rc->res->rec, ctx->conn_id, session, (pgf_phase)phase, a,
                           ctx->elapsed_ns);
}

/* ------------------------------------------------------------------ */
/* setup and teardown                                                  */

static void on_rotate(void *arg)
{
    run_ctx *rc = arg;
    if (rc->sc->rules2 != NULL)
        pgf_fault_engine_set_rules(rc->res->engine, pgf_fault_rules_ref(rc->sc->rules2));
}

/* server.proxy: the fault proxy on its own thread, in front of the real
 * server; the run's engine decides and every fired fault is recorded. */
static int start_proxy(run_ctx *rc, char *err, size_t errlen)
{
    const pgf_scenario *sc = rc->sc;
    static const char *const tcp[] = {"127.0.0.1:0"};
    pgf_proxy_config cfg = {0};
    if (sc->unix_socket) {
        const char *tmp = getenv("TMPDIR");
        snprintf(rc->sockdir, sizeof rc->sockdir, "%s/pgfault-run-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(rc->sockdir) == NULL) {
            snprintf(err, errlen, "cannot create a socket directory under %s", tmp ? tmp : "/tmp");
            rc->sockdir[0] = '\0';
            return PGF_EIO;
        }
        cfg.unix_socket_dir = rc->sockdir;
        cfg.unix_port = 5432;
    } else {
        cfg.listen = tcp;
        cfg.nlisten = 1;
    }
    cfg.upstream = sc->proxy_upstream;
    cfg.upstream_port = sc->proxy_upstream_port;
    cfg.connect_timeout_ms = sc->proxy_connect_timeout_ms;
    cfg.faults = rc->res->engine;
    cfg.quiet = true;
    cfg.on_fault = on_fault;
    cfg.on_fault_arg = rc;
    int e = pgf_proxy_new(&cfg, NULL, &rc->proxy, err, errlen);
    if (e == 0)
        e = pgf_proxy_start_thread(rc->proxy, err, errlen);
    if (e != 0)
        return e;
    if (cfg.unix_socket_dir != NULL) {
        snprintf(rc->host, sizeof rc->host, "%s", rc->sockdir);
        snprintf(rc->port, sizeof rc->port, "5432");
    } else {
        snprintf(rc->host, sizeof rc->host, "127.0.0.1");
        snprintf(rc->port, sizeof rc->port, "%d", pgf_proxy_port(rc->proxy));
    }
    return 0;
}

static int start_server(run_ctx *rc, char *err, size_t errlen)
{
    const pgf_scenario *sc = rc->sc;
    if (sc->external != NULL) {
        /* The caller's conninfo, parsed here: the session manager connects
         * with expand_dbname off, so a URL or key=value string must become
         * keywords itself. The driver only adds application_name. */
        char *perr = NULL;
        rc->external_opts = PQconninfoParse(sc->external, &perr);
        if (rc->external_opts == NULL) {
            char masked[512];
            pgf_config_mask_url(sc->external, masked, sizeof masked);
            snprintf(err, errlen, "server.external '%s': %s", masked,
                     perr ? perr : "out of memory");
            PQfreemem(perr);
            return PGF_EINVAL;
        }
        int n = 0;
        for (PQconninfoOption *o = rc->external_opts; o->keyword != NULL; o++)
            n += o->val != NULL && o->val[0] != '\0';
        if (n > 13) {
            snprintf(err, errlen, "server.external: %d options, at most 13 are supported", n);
            return PGF_EINVAL;
        }
        return 0;
    }
    if (sc->proxy_upstream != NULL)
        return start_proxy(rc, err, errlen);
    pgf_server_config cfg = {0};
    static const char *const tcp[] = {"127.0.0.1:0"};
    if (sc->unix_socket || rc->sim) {
        const char *tmp = getenv("TMPDIR");
        snprintf(rc->sockdir, sizeof rc->sockdir, "%s/pgfault-run-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(rc->sockdir) == NULL) {
            snprintf(err, errlen, "cannot create a socket directory under %s", tmp ? tmp : "/tmp");
            rc->sockdir[0] = '\0';
            return PGF_EIO;
        }
        cfg.unix_socket_dir = rc->sockdir;
        cfg.unix_port = 5432;
    } else {
        cfg.listen = tcp;
        cfg.nlisten = 1;
    }
    cfg.users = sc->users;
    cfg.nusers = sc->nusers;
    cfg.databases = (const char *const *)sc->databases;
    cfg.ndatabases = sc->ndatabases;
    cfg.max_connections = sc->max_connections;
    cfg.seed = sc->seed;
    cfg.answers = sc->answers;
    cfg.faults = rc->res->engine;
    cfg.quiet = true;
    cfg.on_fault = on_fault;
    cfg.on_fault_arg = rc;
    cfg.threads = (int)sc->server_threads; /* > 1 only in stress mode (scenario.c) */
    int e = pgf_server_new(&cfg, rc->sim ? rc->sim_base : NULL, &rc->server, err, errlen);
    if (e != 0)
        return e;
    e = rc->sim ? pgf_server_start(rc->server, err, errlen)
                : pgf_server_start_thread(rc->server, err, errlen);
    if (e != 0)
        return e;
    if (cfg.unix_socket_dir != NULL) {
        snprintf(rc->host, sizeof rc->host, "%s", rc->sockdir);
        snprintf(rc->port, sizeof rc->port, "5432");
    } else {
        snprintf(rc->host, sizeof rc->host, "127.0.0.1");
        snprintf(rc->port, sizeof rc->port, "%d", pgf_server_port(rc->server));
    }
    return 0;
}

static void build_conninfo(run_ctx *rc)
{
    const pgf_scenario *sc = rc->sc;
    int n = 0;
    if (sc->external != NULL) {
        for (PQconninfoOption *o = rc->external_opts; o != NULL && o->keyword != NULL; o++) {
            if (o->val == NULL || o->val[0] == '\0' || strcmp(o->keyword, "application_name") == 0)
                continue;
            rc->kw[n] = o->keyword;
            rc->vals[n++] = o->val;
        }
    } else {
        rc->kw[n] = "host";
        rc->vals[n++] = rc->host;
        rc->kw[n] = "port";
        rc->vals[n++] = rc->port;
        rc->kw[n] = "dbname";
        rc->vals[n++] = sc->database;
        rc->kw[n] = "user";
        rc->vals[n++] = sc->user;
        if (sc->password != NULL) {
            rc->kw[n] = "password";
            rc->vals[n++] = sc->password;
        }
        /* Reproducible runs must not pick up the caller's environment. */
        rc->kw[n] = "sslmode";
        rc->vals[n++] = "disable";
        rc->kw[n] = "gssencmode";
        rc->vals[n++] = "disable";
    }
    rc->app_index = n;
    rc->kw[n] = "application_name";
    rc->vals[n++] = "pgfault";
    rc->kw[n] = NULL;
    rc->vals[n] = NULL;
}

static uint64_t next_session_id(void *arg)
{
    run_ctx *rc = arg;
    return atomic_fetch_add(&rc->next_session_id, 1) + 1;
}

static int make_workers(run_ctx *rc, char *err, size_t errlen)
{
    const pgf_scenario *sc = rc->sc;
    int nw =
        rc->sim ? 1 : (int)(sc->threads ? sc->threads : (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    if (nw < 1)
        nw = 1;
    if ((unsigned)nw > sc->sessions)
        nw = (int)(sc->sessions ? sc->sessions : 1);
    rc->workers = calloc((size_t)nw, sizeof *rc->workers);
    if (rc->workers == NULL)
        goto oom;
    rc->nworkers = nw;
    for (int i = 0; i < nw; i++) {
        worker *w = &rc->workers[i];
        w->rc = rc;
        w->index = i;
        pgf_ot_init(&w->ot, PGF_OT_DOTS / (size_t)nw, sc->seed, (uint64_t)i + 1);
        w->base = rc->sim ? rc->sim_base : pgf_session_base_new();
        if (w->base == NULL)
            goto oom;
        w->nslots = sc->sessions / (unsigned)nw + ((unsigned)i < sc->sessions % (unsigned)nw);
        w->slots = calloc(w->nslots ? w->nslots : 1, sizeof *w->slots);
        if (w->slots == NULL)
            goto oom;
        for (unsigned k = 0; k < w->nslots; k++) {
            slot *sl = &w->slots[k];
            sl->w = w;
            sl->index = (unsigned)i + k * (unsigned)nw;
            sl->think = pgf_timer_new(w->base, sc->pool ? on_pool_think : on_think, sl);
            sl->step = pgf_timer_new(w->base, on_step, sl);
            if (sl->think == NULL || sl->step == NULL)
                goto oom;
        }
        if (sc->pool) {
            pgf_pool_opts po = {0};
            po.session.keywords = rc->kw;
            po.session.values = rc->vals;
            po.session.check_query = sc->query;
            po.session.connect_timeout_ms = sc->connect_timeout_ms;
            po.session.query_timeout_ms = sc->query_timeout_ms;
            po.session.recorder = pool_recorder_hook;
            po.session.recorder_arg = w;
            po.session.bugs = sc->bugs;
            po.max_size = (int)sc->pool_size;
            po.max_overflow = (int)sc->pool_overflow;
            po.acquire_timeout_ms = sc->pool_timeout_ms;
            po.pre_ping = sc->pre_ping;
            po.seed = sc->seed + (uint64_t)i;
            po.app_prefix = "pgf-s"; /* links the server's faults to pooled sessions */
            po.next_id = next_session_id;
            po.next_id_arg = rc;
            if (pgf_pool_new(w->base, &po, &w->pool) != 0)
                goto oom;
        }
    }
    return 0;
oom:
    snprintf(err, errlen, "out of memory setting up %u sessions", sc->sessions);
    return PGF_ENOMEM;
}

static void start_slots(worker *w)
{
    w->active = w->nslots;
    for (unsigned k = 0; k < w->nslots; k++) {
        if (w->rc->sc->pool)
            pool_slot_begin(&w->slots[k]);
        else
            slot_begin(&w->slots[k]);
    }
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    start_slots(w);
    if (w->active > 0)
        event_base_dispatch(w->base);
    /* let pool sessions close before the loop goes away */
    if (w->pool != NULL) {
        pgf_pool_free(w->pool);
        w->pool = NULL;
        event_base_loop(w->base, EVLOOP_NONBLOCK);
    }
    atomic_fetch_sub(&w->rc->workers_left, 1);
    return NULL;
}

static void progress(run_ctx *rc, bool final)
{
    FILE *f = rc->o ? rc->o->progress : NULL;
    if (f == NULL)
        return;
    double el = (double)(pgf_now_ns() - rc->start_ns) / 1e9;
    uint64_t checks = atomic_load(&rc->checks_done);
    /* failures by reason, most frequent first (at most three) */
    char fails[160] = "";
    uint64_t shown[3] = {0};
    for (int k = 0; k < 3; k++) {
        int best = -1;
        uint64_t bn = 0;
        for (int r = 1; r < PGF_HEALTH_REASON_COUNT; r++) {
            uint64_t n = atomic_load(&rc->live_outcomes[r]);
            bool used = false;
            for (int j = 0; j < k; j++)
                used |= shown[j] == (uint64_t)r + 1;
            if (!used && n > bn) {
                bn = n;
                best = r;
            }
        }
        if (best < 0)
            break;
        shown[k] = (uint64_t)best + 1;
        size_t len = strlen(fails);
        snprintf(fails + len, sizeof fails - len, "%s%s %llu",
                 k ? ", " : "  failed: ", pgf_health_reason_name((pgf_health_reason)best),
                 (unsigned long long)bn);
    }
    /* remaining: by duration, else by the share of planned checks done */
    char rem[48] = "";
    const pgf_scenario *sc = rc->sc;
    if (!final && rc->end_ns > 0 && !rc->sim) {
        uint64_t now = run_now(rc);
        snprintf(rem, sizeof rem, "  %.0fs left",
                 now < rc->end_ns ? (double)(rc->end_ns - now) / 1e9 : 0.0);
    } else if (!final && sc->iterations > 0 && checks > 0) {
        double total = (double)sc->iterations * sc->sessions;
        double left = total > (double)checks ? el * (total - (double)checks) / (double)checks : 0;
        snprintf(rem, sizeof rem, "  ~%.0fs left", left);
    }
    /* live verdicts: the caller's streaming checker, fed by stream() on
     * this same thread */
    char viol[96] = "violations: not checked";
    uint64_t nviol = 0;
    const char *kind = NULL;
    if (rc->o->live != NULL && !rc->o->no_record) {
        (void)rc->o->live(rc->o->sink_arg, &nviol, &kind);
        snprintf(viol, sizeof viol, "violations %llu%s%s%s", (unsigned long long)nviol,
                 kind ? " (first: " : "", kind ? kind : "", kind ? ")" : "");
    }
    fprintf(f, "%s[%s] %5.1fs%s  checks %llu (%.0f/s)%s  racers %llu  %s%s", rc->o->tty ? "\r" : "",
            sc->name, el, rem, (unsigned long long)checks, el > 0 ? (double)checks / el : 0.0,
            fails, (unsigned long long)atomic_load(&rc->racer_fired), viol,
            rc->o->tty && !final ? "\033[K" : "\n");
    fflush(f);
}

/* Hand what the recorder can order to the caller's sink (recorder.h).
 * A failure (the reorder window exceeded, the history unwritable) stops
 * the run: the caller's final drain reports the recorder's message. With
 * --fail-fast, the first violation the caller's checker reports stops it
 * too: no new work starts, open sessions close, the rest drains. */
static void stream(run_ctx *rc)
{
    if (rc->o == NULL || rc->o->sink == NULL || pgf_recorder_error(rc->res->rec) != NULL)
        return;
    if (pgf_recorder_drain(rc->res->rec, false) != 0) {
        atomic_store(&rc->stopping, true);
        return;
    }
    uint64_t nviol = 0;
    const char *kind = NULL;
    if (rc->o->live != NULL && rc->o->live(rc->o->sink_arg, &nviol, &kind) &&
        rc->res->stopped_early[0] == '\0') {
        snprintf(rc->res->stopped_early, sizeof rc->res->stopped_early,
                 "--fail-fast: stopped at the first violation (%s), %.3f s into the run",
                 kind ? kind : "violation", (double)(run_now(rc) - rc->rec_start) / 1e9);
        atomic_store(&rc->stopping, true);
    }
}

/* Sim: run the single loop until every slot is done. Time moves only when
 * nothing else can happen. A loop with nothing left to happen while slots
 * still wait, an operation the watchdog finds overdue, or a loop that
 * keeps itself busy without ever letting time move, ends the run as
 * stuck (a verdict: res->stuck), not as a harness failure. */
#define SIM_WATCHDOG_GRACE_MS  10000u  /* beyond an op's declared deadline */
#define SIM_MAX_SPINS_PER_TICK 2000000 /* loop passes without time moving */
static int sim_run(run_ctx *rc, char *err, size_t errlen)
{
    (void)err;
    (void)errlen;
    worker *w = &rc->workers[0];
    start_slots(w);
    uint64_t spins = 0, busy = 0;
    uint64_t start = run_now(rc), next_scan = start;
    while (w->active > 0) {
        if (rc->o && rc->o->stop && *rc->o->stop) {
            atomic_store(&rc->stopping, true);
            rc->res->interrupted = true;
        }
        uint64_t a0 = pgf_sim_activity_count();
        event_base_loop(rc->sim_base, EVLOOP_NONBLOCK);
        if (pgf_sim_activity_count() != a0) {
            if (++busy > SIM_MAX_SPINS_PER_TICK) {
                char op[200] = "no operation outstanding";
                pgf_watchdog_oldest(rc->wd, start, op, sizeof op);
                snprintf(rc->res->stuck, sizeof rc->res->stuck,
                         "livelock: the loop ran %d passes without letting virtual time move "
                         "(oldest outstanding: %s)",
                         SIM_MAX_SPINS_PER_TICK, op);
                return 0;
            }
            continue;
        }
        pgf_session_counters cnt;
        pgf_session_counters_get(&cnt);
        if (cnt.cancel_threads > 0) {
            /* PQcancel runs on a helper thread: let it reach the server. */
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
            continue;
        }
        /* Confirm quiescence once more, then let time jump. */
        event_base_loop(rc->sim_base, EVLOOP_NONBLOCK);
        if (pgf_sim_activity_count() != a0)
            continue;
        busy = 0;
        stream(rc);
        if (!pgf_simclock_advance(rc->clock)) {
            char op[200] = "";
            size_t out = pgf_watchdog_outstanding(rc->wd);
            if (pgf_watchdog_oldest(rc->wd, start, op, sizeof op))
                snprintf(rc->res->stuck, sizeof rc->res->stuck,
                         "nothing left to happen with %zu operation(s) outstanding; the first "
                         "never completed: %s",
                         out, op);
            else
                snprintf(rc->res->stuck, sizeof rc->res->stuck,
                         "nothing left to happen with %u client(s) still waiting and no "
                         "operation outstanding (a lost callback or pool hand-out)",
                         w->active);
            return 0;
        }
        uint64_t now = run_now(rc);
        if (now >= next_scan) {
            next_scan = now + PGF_MS_NS(1000);
            char why[400];
            if (pgf_watchdog_overdue(rc->wd, now, start, why, sizeof why)) {
                snprintf(rc->res->stuck, sizeof rc->res->stuck, "watchdog: %s", why);
                return 0;
            }
        }
        if ((++spins & 0xffff) == 0)
            progress(rc, false);
    }
    if (w->pool != NULL) {
        pgf_pool_free(w->pool);
        w->pool = NULL;
    }
    /* Drain: server-side closes of the last connections. */
    for (int i = 0; i < 1000; i++) {
        uint64_t a0 = pgf_sim_activity_count();
        event_base_loop(rc->sim_base, EVLOOP_NONBLOCK);
        pgf_server_stats st = {0};
        if (rc->server != NULL)
            pgf_server_get_stats(rc->server, &st);
        if (pgf_sim_activity_count() != a0)
            continue;
        if (st.active == 0)
            break;
        /* A connection whose client left may still be running a statement
         * (a pg_sleep): PostgreSQL finishes it before it sees the EOF, and so
         * does the fake. Let simulated time reach its end. */
        if (!pgf_simclock_advance(rc->clock))
            break;
        /* quiescent with connections still open at the server: let its
         * own timers run (output a delay fault holds back, then the close
         * the client's EOF asked for) */
        if (pgf_sim_activity_count() == a0 && !pgf_simclock_advance(rc->clock))
            break;
    }
    return 0;
}

#define STRESS_GRACE_MS 5000u

/* Give the heap's free pages back to the kernel every TRIM_EVERY_MS.
 * Thousands of sessions churn libpq's 16 kB buffers through the workers'
 * malloc arenas; the holes they leave are never handed back by free()
 * (only the top of an arena is), so a soak's RSS crept towards the
 * arenas' high-water mark (10,000 sessions: +22 MB/min with the history
 * off, while the bytes in use stayed flat; malloc_stats). malloc_trim
 * releases the free pages inside the arenas too. */
#define TRIM_EVERY_MS 5000
static void trim_heap(void)
{
#ifdef __GLIBC__
    (void)malloc_trim(0); /* 0-90 ms at 10,000 sessions, on this thread */
#endif
}

static int stress_run(run_ctx *rc, char *err, size_t errlen)
{
    if (rc->sc->nracers > 0) {
        if (pthread_create(&rc->racer_thread, NULL, racer_thread_main, rc) != 0) {
            snprintf(err, errlen, "cannot start the racer thread");
            return PGF_EINTERNAL;
        }
        rc->racer_started = true;
    }
    atomic_store(&rc->workers_left, rc->nworkers);
    for (int i = 0; i < rc->nworkers; i++) {
        if (pthread_create(&rc->workers[i].thread, NULL, worker_main, &rc->workers[i]) != 0) {
            snprintf(err, errlen, "cannot start worker thread %d", i);
            atomic_store(&rc->stopping, true);
            atomic_fetch_sub(&rc->workers_left, rc->nworkers - i);
            break;
        }
        rc->workers[i].thread_started = true;
    }
    uint64_t last = pgf_now_ns();
    /* The end-of-run grace: past the end plus the longest deadline (or
     * that long without a single recorded event), the run is stuck. */
    uint64_t dl[PGF_OP_COUNT], grace = PGF_MS_NS(STRESS_GRACE_MS);
    pgf_driver_op_deadlines_ms(rc->sc, dl);
    for (int k = 0; k < PGF_OP_COUNT; k++)
        if (PGF_MS_NS(dl[k]) + PGF_MS_NS(STRESS_GRACE_MS) > grace)
            grace = PGF_MS_NS(dl[k]) + PGF_MS_NS(STRESS_GRACE_MS);
    uint64_t last_count = pgf_recorder_count(rc->res->rec), last_change = last, last_trim = last;
    while (atomic_load(&rc->workers_left) > 0) {
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
        uint64_t now = pgf_now_ns(), count = pgf_recorder_count(rc->res->rec);
        if (count != last_count) {
            last_count = count;
            last_change = now;
        }
        bool past_end = rc->end_ns > 0 && now > rc->end_ns + grace;
        bool silent = (rc->o == NULL || !rc->o->no_record) && now - last_change > grace;
        if ((past_end || silent) && rc->res->stuck[0] == '\0') {
            snprintf(rc->res->stuck, sizeof rc->res->stuck,
                     "%s: %d worker(s) still running %.1f s after %s",
                     past_end ? "past the end plus the grace" : "no event recorded for the grace",
                     atomic_load(&rc->workers_left), (double)grace / 1e9,
                     past_end ? "the end" : "the last event");
            atomic_store(&rc->mute, true);
            atomic_store(&rc->stopping, true);
            for (int i = 0; i < rc->nworkers; i++)
                if (rc->workers[i].thread_started)
                    event_base_loopbreak(rc->workers[i].base);
        }
        if (rc->o && rc->o->stop && *rc->o->stop && !atomic_load(&rc->stopping)) {
            atomic_store(&rc->stopping, true);
            rc->res->interrupted = true;
        }
        stream(rc);
        if (pgf_now_ns() - last >= 1000000000ULL) {
            last = pgf_now_ns();
            progress(rc, false);
        }
        /* every second in the first ten, while every session connects
         * at once; then every TRIM_EVERY_MS */
        if (pgf_now_ns() - last_trim >=
            PGF_MS_NS(pgf_now_ns() - rc->start_ns < PGF_MS_NS(10000) ? 1000 : TRIM_EVERY_MS)) {
            trim_heap();
            last_trim = pgf_now_ns();
        }
    }
    for (int i = 0; i < rc->nworkers; i++)
        if (rc->workers[i].thread_started)
            pthread_join(rc->workers[i].thread, NULL);
    if (rc->racer_started) {
        pthread_mutex_lock(&rc->rq_lock);
        rc->rq_quit = true;
        pthread_cond_signal(&rc->rq_cond);
        pthread_mutex_unlock(&rc->rq_lock);
        pthread_join(rc->racer_thread, NULL);
        rc->racer_started = false;
    }
    /* The server sees the clients' FINs asynchronously: wait, bounded. */
    if (rc->server != NULL) {
        uint64_t deadline = pgf_now_ns() + PGF_MS_NS(5000);
        for (;;) {
            pgf_server_stats st;
            pgf_server_get_stats(rc->server, &st);
            if (st.active == 0 || pgf_now_ns() > deadline)
                break;
            struct timespec ts = {0, 1000000};
            nanosleep(&ts, NULL);
        }
    }
    return 0;
}

static void merge_results(run_ctx *rc)
{
    pgf_run *res = rc->res;
    for (int i = 0; i < rc->nworkers; i++) {
        worker *w = &rc->workers[i];
        res->checks += w->checks;
        for (int r = 0; r < PGF_HEALTH_REASON_COUNT; r++) {
            res->outcomes[r] += w->outcomes[r];
            if (pgf_lathist_merge(&res->lat[r], &w->lat[r]) != 0)
                snprintf(res->harness_error, sizeof res->harness_error,
                         "out of memory merging latencies");
        }
    }
    pgf_overtime **parts = calloc((size_t)rc->nworkers + 1, sizeof *parts);
    for (int i = 0; parts != NULL && i < rc->nworkers; i++)
        parts[i] = &rc->workers[i].ot;
    if (parts == NULL || pgf_ot_merge(&res->ot, parts, rc->nworkers) != 0)
        snprintf(res->harness_error, sizeof res->harness_error,
                 "out of memory merging the over-time charts");
    free(parts);
    res->racer_fired = atomic_load(&rc->racer_fired);
    res->api_errors = atomic_load(&rc->api_errors);
}

static void teardown(run_ctx *rc)
{
    /* The racer thread (joined by now) may have handed completions back to
     * a worker loop after it stopped: run them while the slots still exist. */
    for (int i = 0; i < rc->nworkers; i++)
        if (!rc->sim && rc->workers[i].base != NULL)
            for (int k = 0; k < 4; k++)
                event_base_loop(rc->workers[i].base, EVLOOP_NONBLOCK);
    for (int i = 0; i < rc->nworkers; i++) {
        worker *w = &rc->workers[i];
        if (w->pool != NULL)
            pgf_pool_free(w->pool);
        for (unsigned k = 0; k < w->nslots; k++) {
            if (w->slots[k].s != NULL)
                pgf_session_free(w->slots[k].s);
            pgf_timer_free(w->slots[k].think);
            pgf_timer_free(w->slots[k].step);
        }
        free(w->slots);
        for (int r = 0; r < PGF_HEALTH_REASON_COUNT; r++) {
            pgf_lathist_free(&w->lat[r]);
        }
        pgf_ot_free(&w->ot);
        if (!rc->sim && w->base != NULL)
            event_base_free(w->base);
    }
    free(rc->workers);
    pgf_timer_free(rc->rotate_timer);
    if (rc->server != NULL) {
        pgf_server_stop(rc->server);
        pgf_server_free(rc->server);
    }
    if (rc->proxy != NULL) {
        pgf_proxy_stop(rc->proxy);
        pgf_proxy_free(rc->proxy);
    }
    if (rc->external_opts != NULL)
        PQconninfoFree(rc->external_opts);
    if (rc->sockdir[0] != '\0')
        rmdir(rc->sockdir);
    if (rc->clock != NULL)
        pgf_simclock_detach(rc->clock);
    if (rc->sim_base != NULL)
        event_base_free(rc->sim_base);
    pthread_mutex_destroy(&rc->rq_lock);
    pthread_cond_destroy(&rc->rq_cond);
    pgf_watchdog_free(rc->wd);
}

int pgf_driver_run(const pgf_scenario *sc, const pgf_driver_opts *o, pgf_run **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    pgf_run *res = calloc(1, sizeof *res);
    run_ctx *rc = calloc(1, sizeof *rc);
    if (res == NULL || rc == NULL) {
        free(res);
        free(rc);
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    pthread_mutex_init(&rc->rq_lock, NULL);
    pthread_cond_init(&rc->rq_cond, NULL);
    rc->sc = sc;
    rc->o = o;
    rc->res = res;
    res->sc = sc;
    pgf_ot_init(&res->ot, PGF_OT_DOTS, sc->seed, 0);
    rc->sim = sc->mode == PGF_MODE_SIM;
    /* Each scenario numbers its events, op_ids and sessions from 1, so a
     * scenario inside a suite replays with the digest it has alone. */
    pgf_seq_reset();
    pgf_session_ids_reset();
    res->start_wall_us = pgf_wall_us();
    rc->start_ns = pgf_now_ns();
    int e = 0;
    if (rc->sim) {
        uint64_t dl[PGF_OP_COUNT];
        pgf_driver_op_deadlines_ms(sc, dl);
        for (int k = 0; k < PGF_OP_COUNT; k++)
            dl[k] = PGF_MS_NS(dl[k] + SIM_WATCHDOG_GRACE_MS);
        rc->wd = pgf_watchdog_new(dl);
        if (rc->wd == NULL) {
            snprintf(err, errlen, "out of memory");
            e = PGF_ENOMEM;
            goto done;
        }
        rc->sim_base = pgf_session_base_new();
        /* Virtual time starts at an arbitrary but fixed point. */
        rc->clock = rc->sim_base ? pgf_simclock_attach(rc->sim_base, 1000000000ULL) : NULL;
        if (rc->clock == NULL) {
            snprintf(err, errlen, "cannot set up the simulation loop");
            e = PGF_ENOMEM;
            goto done;
        }
    }
    rc->rec_start = run_now(rc);
    res->rec = pgf_recorder_new(rc->sim_base, rc->rec_start);
    res->engine = pgf_fault_engine_new(sc->seed);
    if (res->rec == NULL || res->engine == NULL) {
        snprintf(err, errlen, "out of memory");
        e = PGF_ENOMEM;
        goto done;
    }
    if (o != NULL && o->sink != NULL) {
        pgf_recorder_set_sink(res->rec, o->sink, o->sink_arg);
        pgf_recorder_set_window(res->rec, o->window);
    }
    /* A run takes every fired fault from the recorder and faults.jsonl;
     * the engine's in-memory copy (for a control API's /log) need only
     * hold the newest few, or an hour-long soak holds them all. */
    pgf_fault_log_set_limit(res->engine, 1000);
    if (sc->rules != NULL)
        pgf_fault_engine_set_rules(res->engine, pgf_fault_rules_ref(sc->rules));
    if (o != NULL && o->faults_log_path != NULL &&
        (e = pgf_fault_log_open(res->engine, o->faults_log_path,
                                rc->sim ? PGF_FAULT_LOG_NO_TIME : 0, err, errlen)) != 0)
        goto done;
    if ((e = start_server(rc, err, errlen)) != 0)
        goto done;
    build_conninfo(rc);
    if ((e = make_workers(rc, err, errlen)) != 0)
        goto done;
    uint64_t t0 = run_now(rc);
    rc->end_ns = sc->duration_ms > 0 ? t0 + PGF_MS_NS(sc->duration_ms) : 0;
    if (sc->rules2 != NULL && sc->rules2_at_ms > 0) {
        rc->rotate_timer =
            pgf_timer_new(rc->sim ? rc->sim_base : rc->workers[0].base, on_rotate, rc);
        if (rc->rotate_timer != NULL)
            pgf_timer_arm(rc->rotate_timer, PGF_MS_NS(sc->rules2_at_ms));
    }
    uint64_t load0 = pgf_now_ns();
    e = rc->sim ? sim_run(rc, err, errlen) : stress_run(rc, err, errlen);
    res->duration_ns = run_now(rc) - t0;
    res->load_end_ns = pgf_now_ns();
    res->load_ns = res->load_end_ns - load0;
    if (e != 0)
        goto done;
    merge_results(rc);
    pgf_session_counters cnt;
    pgf_session_counters_get(&cnt);
    if (rc->proxy != NULL) {
        pgf_proxy_stats ps;
        pgf_proxy_get_stats(rc->proxy, &ps);
        res->proxy_sessions = ps.sessions;
        res->proxy_upstream_failures = ps.upstream_failures;
    }
    if (rc->server != NULL) {
        pgf_server_get_stats(rc->server, &res->server);
        if ((o == NULL || !o->no_record) && !atomic_load(&rc->mute))
            pgf_recorder_server(res->rec, (int64_t)res->server.active,
                                (int64_t)res->server.accepted, (int64_t)res->server.closed,
                                cnt.pgconns);
    }
    progress(rc, true);
done:
    /* A stuck run's history ends where it got stuck: what teardown closes
     * on the way out is not the session manager's doing. */
    if (res->stuck[0] != '\0')
        atomic_store(&rc->mute, true);
    res->wall_ns = pgf_now_ns() - rc->start_ns;
    teardown(rc);
    free(rc);
    if (e != 0) {
        pgf_run_free(res);
        return e;
    }
    *out = res;
    return 0;
}

void pgf_driver_op_deadlines_ms(const pgf_scenario *sc, uint64_t ms[PGF_OP_COUNT])
{
    /* the session manager's defaults (session.c) when the scenario gives 0 */
    uint64_t connect = sc->connect_timeout_ms ? sc->connect_timeout_ms : 10000;
    uint64_t query = sc->query_timeout_ms ? sc->query_timeout_ms : 10000;
    uint64_t cancel = 5000, close = 5000;
    for (int k = 0; k < PGF_OP_COUNT; k++)
        ms[k] = 0;
    ms[PGF_OP_open] = connect;
    ms[PGF_OP_check] = query; /* a canceled check: preempted, see check.c */
    ms[PGF_OP_cancel] = cancel;
    ms[PGF_OP_close] = close;
    ms[PGF_OP_invalidate] = close;
}

void pgf_run_free(pgf_run *r)
{
    if (r == NULL)
        return;
    pgf_recorder_free(r->rec);
    pgf_fault_engine_free(r->engine);
    for (int i = 0; i < PGF_HEALTH_REASON_COUNT; i++) {
        pgf_lathist_free(&r->lat[i]);
    }
    pgf_ot_free(&r->ot);
    free(r);
}
