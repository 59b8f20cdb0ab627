/* timer.c - real (libevent) and simulated timers; see timer.h. */
#include "pgfault/timer.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"

_Thread_local uint64_t pgf__sim_activity;

struct pgf_simclock {
    struct event_base *base;
    uint64_t now;
    uint64_t seq;
    pgf_timer **heap;
    unsigned n, cap;
};

struct pgf_timer {
    pgf_timer_cb cb;
    void *arg;
    struct event *ev;    /* real mode */
    pgf_simclock *clock; /* sim mode */
    uint64_t deadline;
    uint64_t seq;
    int heap_index; /* -1 when not pending in the sim heap */
};

/* base -> simclock registry; tiny, looked up only when a timer is created. */
#define MAX_CLOCKS 64
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pgf_simclock *clocks[MAX_CLOCKS];

static pgf_simclock *clock_for(struct event_base *base)
{
    pgf_simclock *found = NULL;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_CLOCKS; i++)
        if (clocks[i] != NULL && clocks[i]->base == base)
            found = clocks[i];
    pthread_mutex_unlock(&reg_lock);
    return found;
}

pgf_simclock *pgf_simclock_of(struct event_base *base)
{
    return clock_for(base);
}

pgf_simclock *pgf_simclock_attach(struct event_base *base, uint64_t start_ns)
{
    pgf_simclock *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->base = base;
    c->now = start_ns;
    pthread_mutex_lock(&reg_lock);
    int slot = -1;
    for (int i = 0; i < MAX_CLOCKS && slot < 0; i++)
        if (clocks[i] == NULL)
            slot = i;
    if (slot >= 0)
        clocks[slot] = c;
    pthread_mutex_unlock(&reg_lock);
    if (slot < 0) {
        free(c);
        return NULL;
    }
    return c;
}

void pgf_simclock_detach(pgf_simclock *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < MAX_CLOCKS; i++)
        if (clocks[i] == c)
            clocks[i] = NULL;
    pthread_mutex_unlock(&reg_lock);
    for (unsigned i = 0; i < c->n; i++)
        c->heap[i]->heap_index = -1;
    free(c->heap);
    free(c);
}

uint64_t pgf_simclock_now(const pgf_simclock *c)
{
    return c->now;
}

unsigned pgf_simclock_pending(const pgf_simclock *c)
{
    return c->n;
}

static bool before(const pgf_timer *a, const pgf_timer *b)
{
    return a->deadline < b->deadline || (a->deadline == b->deadline && a->seq < b->seq);
}

static void heap_swap(pgf_simclock *c, unsigned i, unsigned j)
{
    pgf_timer *t = c->heap[i];
    c->heap[i] = c->heap[j];
    c->heap[j] = t;
    c->heap[i]->heap_index = (int)i;
    c->heap[j]->heap_index = (int)j;
}

static void sift_up(pgf_simclock *c, unsigned i)
{
    while (i > 0) {
        unsigned p = (i - 1) / 2;
        if (!before(c->heap[i], c->heap[p]))
            break;
        heap_swap(c, i, p);
        i = p;
    }
}

static void sift_down(pgf_simclock *c, unsigned i)
{
    for (;;) {
        unsigned l = 2 * i + 1, r = l + 1, m = i;
        if (l < c->n && before(c->heap[l], c->heap[m]))
            m = l;
        if (r < c->n && before(c->heap[r], c->heap[m]))
            m = r;
        if (m == i)
            return;
        heap_swap(c, i, m);
        i = m;
    }
}

static void heap_remove(pgf_simclock *c, pgf_timer *t)
{
    unsigned i = (unsigned)t->heap_index;
    t->heap_index = -1;
    c->n--;
    if (i == c->n)
        return;
    c->heap[i] = c->heap[c->n];
    c->heap[i]->heap_index = (int)i;
    sift_down(c, i);
    sift_up(c, i);
}

static int heap_push(pgf_simclock *c, pgf_timer *t)
{
    if (c->n == c->cap) {
        unsigned cap = c->cap ? c->cap * 2 : 64;
        pgf_timer **h = realloc(c->heap, cap * sizeof *h);
        if (h == NULL)
            return -1;
        c->heap = h;
        c->cap = cap;
    }
    t->heap_index = (int)c->n;
    c->heap[c->n++] = t;
    sift_up(c, (unsigned)t->heap_index);
    return 0;
}

bool pgf_simclock_advance(pgf_simclock *c)
{
    if (c->n == 0)
        return false;
    uint64_t due = c->heap[0]->deadline;
    if (due > c->now)
        c->now = due;
    /* Fire everything due now, earliest-armed first; callbacks may arm
     * new timers (at or after now) and those are honoured in order too. */
    while (c->n > 0 && c->heap[0]->deadline <= c->now) {
        pgf_timer *t = c->heap[0];
        heap_remove(c, t);
        t->cb(t->arg);
    }
    return true;
}

static void on_real(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_timer *t = arg;
    t->cb(t->arg);
}

pgf_timer *pgf_timer_new(struct event_base *base, pgf_timer_cb cb, void *arg)
{
    pgf_timer *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->cb = cb;
    t->arg = arg;
    t->heap_index = -1;
    t->clock = clock_for(base);
    if (t->clock == NULL) {
        t->ev = evtimer_new(base, on_real, t);
        if (t->ev == NULL) {
            free(t);
            return NULL;
        }
    }
    return t;
}

void pgf_timer_arm(pgf_timer *t, uint64_t ns)
{
    if (t->clock != NULL) {
        if (t->heap_index >= 0)
            heap_remove(t->clock, t);
        t->deadline = t->clock->now + ns;
        t->seq = ++t->clock->seq;
        if (heap_push(t->clock, t) != 0)
            abort(); /* cannot keep the simulation's promise: fail loudly */
        return;
    }
    struct timeval tv = {(time_t)(ns / 1000000000ULL), (suseconds_t)(ns % 1000000000ULL / 1000)};
    evtimer_add(t->ev, &tv);
}

void pgf_timer_cancel(pgf_timer *t)
{
    if (t == NULL)
        return;
    if (t->clock != NULL) {
        if (t->heap_index >= 0)
            heap_remove(t->clock, t);
        return;
    }
    evtimer_del(t->ev);
}

bool pgf_timer_pending(const pgf_timer *t)
{
    if (t->clock != NULL)
        return t->heap_index >= 0;
    return evtimer_pending(t->ev, NULL) != 0;
}

void pgf_timer_free(pgf_timer *t)
{
    if (t == NULL)
        return;
    pgf_timer_cancel(t);
    if (t->ev)
        event_free(t->ev);
    free(t);
}

uint64_t pgf_clock_now(struct event_base *base)
{
    pgf_simclock *c = clock_for(base);
    return c != NULL ? c->now : pgf_now_ns();
}
