/* pool.c - see pool.h. Entries live in one array allocated up front
 * (stable pointers for callbacks); waiters are a FIFO list with a timer
 * each. Everything runs on the pool's loop thread. */
#include "pgfault/pool.h"
#include "pgfault/timer.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "pgfault/rng.h"

enum entry_state { E_FREE, E_OPENING, E_IDLE, E_PINGING, E_OUT, E_CLOSING };

struct entry {
    pgf_pool *pool;
    pgf_session *s;
    enum entry_state st;
};

struct waiter {
    pgf_pool *pool;
    pgf_pool_acquire_cb cb;
    void *arg;
    pgf_timer *timer; /* acquire timeout (virtual in sim mode) */
    struct waiter *next;
};

struct pgf_pool {
    struct event_base *base;
    pgf_pool_opts o;
    struct entry *entries;
    int nentries; /* max_size + max_overflow */
    struct waiter *head, *tail;
    pgf_rng rng;
    unsigned auth_failures;
    uint64_t auth_block_until;
    pgf_health auth_health;
    bool freeing;
    struct event *kick; /* runs dispatch() from the loop */
    pgf_pool_stats st;
};

static void dispatch(pgf_pool *p);

static int count(const pgf_pool *p, enum entry_state st)
{
    int n = 0;
    for (int i = 0; i < p->nentries; i++)
        n += p->entries[i].st == st;
    return n;
}

static struct waiter *pop_waiter(pgf_pool *p)
{
    struct waiter *w = p->head;
    if (w != NULL) {
        p->head = w->next;
        if (p->head == NULL)
            p->tail = NULL;
    }
    return w;
}

static void waiter_done(struct waiter *w, pgf_session *s, int err, const pgf_health *h)
{
    pgf_pool *p = w->pool;
    pgf_pool_acquire_cb cb = w->cb;
    void *arg = w->arg;
    pgf_timer_free(w->timer);
    free(w);
    cb(p, s, err, h, arg);
}

static void entry_closed(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    struct entry *e = arg;
    pgf_pool *p = e->pool;
    pgf_session_free(s); /* inside its callback: deferred by the session */
    e->s = NULL;
    e->st = E_FREE;
    if (!p->freeing)
        dispatch(p);
}

/* Close for good; the entry frees up when the close completes. */
static void invalidate_entry(struct entry *e)
{
    pgf_pool *p = e->pool;
    p->st.invalidated++;
    e->st = E_CLOSING;
    if (pgf__session_invalidate(e->s, entry_closed, e) != 0) {
        /* already closed (or closing by someone else): just drop it */
        pgf_session_free(e->s);
        e->s = NULL;
        e->st = E_FREE;
    }
}

static bool hand_out(pgf_pool *p, struct entry *e)
{
    /* BUG (PGF_BUG_FAILED_RETURNED_TO_POOL) / (PGF_BUG_RELEASE_AFTER_CLOSE):
     * a connection the pool should have dropped is handed out anyway. */
    bool force =
        pgf_session_state(e->s) != PGF_SESS_READY &&
        (p->o.session.bugs & (PGF_BUG_FAILED_RETURNED_TO_POOL | PGF_BUG_RELEASE_AFTER_CLOSE)) != 0;
    if (pgf__session_mark(e->s, PGF_OP_acquire, force) != 0) {
        invalidate_entry(e);
        return false;
    }
    struct waiter *w = pop_waiter(p);
    e->st = E_OUT;
    pgf_health ok;
    pgf_health_set_ok(&ok);
    waiter_done(w, e->s, 0, &ok);
    return true;
}

static void pinged(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    struct entry *e = arg;
    pgf_pool *p = e->pool;
    if (p->freeing || e->st != E_PINGING || e->s != s) /* a second completion: see opened() */
        return;
    if (err != 0) {
        pgf_log_info("[pool] pre-ping of session %llu failed: %s",
                     (unsigned long long)pgf_session_id(s), h ? h->message : "");
        if (pgf_session_state(s) != PGF_SESS_CLOSED)
            invalidate_entry(e);
    } else if (p->head != NULL) {
        hand_out(p, e);
    } else {
        e->st = E_IDLE;
    }
    dispatch(p);
}

static void opened(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    struct entry *e = arg;
    pgf_pool *p = e->pool;
    /* A second completion of the same open (a session layer that calls
     * back twice: PGF_BUG_CALLBACK_TWICE) is ignored, as a pool must: taken
     * as news, it made the entry idle again while it was out, handed the
     * session out twice and closed it under the first borrower, whose
     * pointer the driver then used after the free (ASan). The history
     * still has both completions: the checker's to find. */
    if (p->freeing || e->st != E_OPENING || e->s != s)
        return;
    if (err == 0) {
        p->st.opened++;
        p->auth_failures = 0;
        e->st = E_IDLE;
        if (p->head != NULL)
            hand_out(p, e);
        dispatch(p);
        return;
    }
    p->st.open_failed++;
    pgf_health fail = h != NULL ? *h : (pgf_health){0};
    if (h != NULL && h->reason == PGF_HEALTH_AUTH_FAILED) {
        /* Do not hammer the server with a wrong password. */
        uint64_t wait =
            pgf_backoff_ns(PGF_MS_NS(p->o.auth_backoff_base_ms),
                           PGF_MS_NS(p->o.auth_backoff_cap_ms), p->auth_failures++, &p->rng);
        p->auth_block_until = pgf_clock_now(p->base) + wait;
        p->auth_health = *h;
    }
    invalidate_entry(e);
    struct waiter *w = pop_waiter(p);
    if (w != NULL)
        waiter_done(w, NULL, err, &fail);
    dispatch(p);
}

static bool auth_blocked(pgf_pool *p)
{
    return p->auth_block_until != 0 && pgf_clock_now(p->base) < p->auth_block_until;
}

static void dispatch(pgf_pool *p)
{
    while (p->head != NULL && !p->freeing) {
        if (auth_blocked(p)) {
            p->st.auth_blocked++;
            struct waiter *w = pop_waiter(p);
            waiter_done(w, NULL, PGF_EAUTH, &p->auth_health);
            continue;
        }
        struct entry *idle = NULL;
        for (int i = 0; i < p->nentries && idle == NULL; i++)
            if (p->entries[i].st == E_IDLE)
                idle = &p->entries[i];
        if (idle != NULL) {
            if (p->o.pre_ping && pgf_session_state(idle->s) == PGF_SESS_READY) {
                idle->st = E_PINGING;
                if (pgf_session_check(idle->s, pinged, idle) != 0)
                    invalidate_entry(idle);
                continue;
            }
            hand_out(p, idle);
            continue;
        }
        /* Open another connection if there is room and not enough are
         * already on the way for the waiters. */
        int waiting = 0;
        for (struct waiter *w = p->head; w != NULL; w = w->next)
            waiting++;
        int pending = count(p, E_OPENING) + count(p, E_PINGING);
        struct entry *slot = NULL;
        for (int i = 0; i < p->nentries && slot == NULL; i++)
            if (p->entries[i].st == E_FREE)
                slot = &p->entries[i];
        if (slot == NULL || pending >= waiting)
            return;
        pgf_session_opts so = p->o.session;
        so.id = 0;
        const char *vals[32];
        char app[64];
        if (p->o.app_prefix != NULL && p->o.next_id != NULL) {
            /* the session copies its conninfo: a stack copy will do */
            size_t n = 0;
            while (n + 1 < sizeof vals / sizeof vals[0] && so.keywords[n] != NULL) {
                vals[n] = so.values[n];
                if (strcmp(so.keywords[n], "application_name") == 0) {
                    so.id = p->o.next_id(p->o.next_id_arg);
                    snprintf(app, sizeof app, "%s%llu", p->o.app_prefix, (unsigned long long)so.id);
                    vals[n] = app;
                }
                n++;
            }
            vals[n] = NULL;
            if (so.keywords[n] == NULL)
                so.values = vals;
            else
                so.id = 0; /* too many keywords to copy: keep the template */
        }
        if (pgf_session_new(p->base, &so, &slot->s) != 0) {
            struct waiter *w = pop_waiter(p);
            pgf_health h;
            pgf_health_classify(NULL, "out of memory", "pool", &h);
            waiter_done(w, NULL, PGF_ENOMEM, &h);
            continue;
        }
        slot->st = E_OPENING;
        if (pgf_session_open(slot->s, opened, slot) != 0) {
            pgf_session_free(slot->s);
            slot->s = NULL;
            slot->st = E_FREE;
            return;
        }
    }
}

static void on_kick(evutil_socket_t fd, short what, void *arg)
{
    pgf_sim_activity();
    dispatch(arg);
}

static void waiter_timeout(void *arg)
{
    pgf_sim_activity();
    struct waiter *w = arg;
    pgf_pool *p = w->pool;
    struct waiter **pp = &p->head, *prev = NULL;
    while (*pp != NULL && *pp != w)
        prev = *pp, pp = &(*pp)->next;
    if (*pp == NULL)
        return;
    *pp = w->next;
    if (p->tail == w)
        p->tail = prev;
    p->st.timeouts++;
    pgf_health h;
    pgf_health_classify(NULL, "timeout expired waiting for a pooled connection", "acquire", &h);
    h.reason = PGF_HEALTH_TIMEOUT;
    waiter_done(w, NULL, PGF_ETIMEDOUT, &h);
}

int pgf_pool_new(struct event_base *base, const pgf_pool_opts *o, pgf_pool **out)
{
    *out = NULL;
    if (base == NULL || o == NULL || o->session.keywords == NULL || o->max_size < 0 ||
        o->max_overflow < 0)
        return PGF_EINVAL;
    pgf_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return PGF_ENOMEM;
    p->base = base;
    p->o = *o;
    if (p->o.max_size == 0)
        p->o.max_size = 5;
    if (p->o.acquire_timeout_ms == 0)
        p->o.acquire_timeout_ms = 30000;
    if (p->o.auth_backoff_base_ms == 0)
        p->o.auth_backoff_base_ms = 500;
    if (p->o.auth_backoff_cap_ms == 0)
        p->o.auth_backoff_cap_ms = 30000;
    p->nentries = p->o.max_size + p->o.max_overflow;
    p->entries = calloc((size_t)p->nentries, sizeof *p->entries);
    if (p->entries == NULL) {
        free(p);
        return PGF_ENOMEM;
    }
    for (int i = 0; i < p->nentries; i++)
        p->entries[i].pool = p;
    p->kick = event_new(base, -1, 0, on_kick, p);
    if (p->kick == NULL) {
        free(p->entries);
        free(p);
        return PGF_ENOMEM;
    }
    pgf_rng_init(&p->rng, o->seed, 0x706f6f6c /* "pool" */, 0);
    *out = p;
    return 0;
}

void pgf_pool_free(pgf_pool *p)
{
    if (p == NULL)
        return;
    p->freeing = true;
    struct waiter *w;
    pgf_health h;
    pgf_health_classify(NULL, "pool closed", "acquire", &h);
    h.reason = PGF_HEALTH_CANCELED;
    while ((w = pop_waiter(p)) != NULL)
        waiter_done(w, NULL, PGF_ECANCELED, &h);
    for (int i = 0; i < p->nentries; i++)
        if (p->entries[i].s != NULL) {
            pgf_session *s = p->entries[i].s;
            p->entries[i].s = NULL;
            p->entries[i].st = E_FREE;
            pgf_session_free(s);
        }
    event_free(p->kick);
    free(p->entries);
    free(p);
}

int pgf_pool_acquire(pgf_pool *p, pgf_pool_acquire_cb cb, void *arg)
{
    if (p == NULL || cb == NULL || p->freeing)
        return PGF_EINVAL;
    struct waiter *w = calloc(1, sizeof *w);
    if (w == NULL)
        return PGF_ENOMEM;
    w->pool = p;
    w->cb = cb;
    w->arg = arg;
    w->timer = pgf_timer_new(p->base, waiter_timeout, w);
    if (w->timer == NULL) {
        free(w);
        return PGF_ENOMEM;
    }
    pgf_timer_arm(w->timer, PGF_MS_NS(p->o.acquire_timeout_ms));
    if (p->tail != NULL)
        p->tail->next = w;
    else
        p->head = w;
    p->tail = w;
    /* Results always arrive through the loop, never inside this call. */
    event_active(p->kick, EV_TIMEOUT, 0);
    return 0;
}

static struct entry *find_out(pgf_pool *p, pgf_session *s)
{
    for (int i = 0; i < p->nentries; i++)
        if (p->entries[i].s == s && p->entries[i].st == E_OUT)
            return &p->entries[i];
    return NULL;
}

int pgf_pool_release(pgf_pool *p, pgf_session *s)
{
    if (p == NULL || s == NULL)
        return PGF_EINVAL;
    struct entry *e = find_out(p, s);
    if (e == NULL)
        return PGF_EINVAL;
    pgf_sess_state st = pgf_session_state(s);
    /* BUG (PGF_BUG_RELEASE_AFTER_CLOSE): a closed connection is taken back
     * as if it were fine. */
    bool force = st == PGF_SESS_CLOSED && (p->o.session.bugs & PGF_BUG_RELEASE_AFTER_CLOSE);
    int rc = pgf__session_mark(s, PGF_OP_release, force);
    if (rc != 0)
        return rc;
    if (force) {
        e->st = E_IDLE;
    } else if (st == PGF_SESS_FAILED) {
        /* BUG (PGF_BUG_FAILED_RETURNED_TO_POOL): keep the broken one. */
        if (p->o.session.bugs & PGF_BUG_FAILED_RETURNED_TO_POOL)
            e->st = E_IDLE;
        else
            invalidate_entry(e);
    } else if (count(p, E_IDLE) + count(p, E_OUT) + count(p, E_PINGING) > p->o.max_size) {
        invalidate_entry(e); /* overflow connection: not kept */
    } else {
        e->st = E_IDLE;
    }
    dispatch(p);
    return 0;
}

int pgf_pool_invalidate(pgf_pool *p, pgf_session *s)
{
    if (p == NULL || s == NULL)
        return PGF_EINVAL;
    struct entry *e = find_out(p, s);
    if (e == NULL)
        return PGF_EINVAL;
    invalidate_entry(e);
    dispatch(p);
    return 0;
}

void pgf_pool_get_stats(const pgf_pool *p, pgf_pool_stats *st)
{
    *st = p->st;
    st->idle = count(p, E_IDLE);
    st->checked_out = count(p, E_OUT);
    st->opening = count(p, E_OPENING);
    st->pinging = count(p, E_PINGING);
    st->closing = count(p, E_CLOSING);
    st->waiting = 0;
    for (struct waiter *w = p->head; w != NULL; w = w->next)
        st->waiting++;
}
