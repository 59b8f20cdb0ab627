/* timer.h - one-shot timers on an event_base, in real or simulated time.
 *
 * Every deadline, delay, stall and sleep in pgfault (the fake server's
 * and the session manager's) goes through this API instead of libevent's
 * evtimer, so that `pgfault run --mode sim` can run clients and server on
 * one loop with a virtual clock: time only moves when nothing else can
 * happen, and then jumps to the earliest deadline (FoundationDB-style).
 * The order of events then never depends on the machine's speed or load.
 *
 * Real mode (the default): a pgf_timer is a libevent timer.
 * Sim mode: pgf_simclock_attach(base) before creating timers on that base;
 * timers go to a heap ordered by (deadline, arm sequence) and only fire
 * from pgf_simclock_advance(), which the sim driver calls when the loop
 * is quiescent. Timers are owned by the loop thread of their base.
 */
#ifndef PGF_TIMER_H
#define PGF_TIMER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;

typedef struct pgf_timer pgf_timer;
typedef void (*pgf_timer_cb)(void *arg);

/* NULL on allocation failure. */
pgf_timer *pgf_timer_new(struct event_base *base, pgf_timer_cb cb, void *arg);
/* Fire once, ns nanoseconds from now (re-arming replaces the deadline). */
void pgf_timer_arm(pgf_timer *t, uint64_t ns);
void pgf_timer_cancel(pgf_timer *t);
bool pgf_timer_pending(const pgf_timer *t);
/* Cancels and frees; NULL is a no-op. */
void pgf_timer_free(pgf_timer *t);

/* Now, in ns, on the clock of this base: virtual in sim mode, else
 * CLOCK_MONOTONIC. */
uint64_t pgf_clock_now(struct event_base *base);

typedef struct pgf_simclock pgf_simclock;
/* Put base on a virtual clock starting at start_ns. One clock per base. */
pgf_simclock *pgf_simclock_attach(struct event_base *base, uint64_t start_ns);
/* The clock attached to base, or NULL (real time). */
pgf_simclock *pgf_simclock_of(struct event_base *base);
/* Detach and free (pending sim timers must have been freed first). */
void pgf_simclock_detach(pgf_simclock *c);
/* Jump to the earliest pending deadline and fire every timer due then, in
 * arm order. Returns false when no timer is pending. */
bool pgf_simclock_advance(pgf_simclock *c);
uint64_t pgf_simclock_now(const pgf_simclock *c);
/* Number of pending sim timers. */
unsigned pgf_simclock_pending(const pgf_simclock *c);

/* Quiescence detection for the sim driver: I/O callbacks call
 * pgf_sim_activity() (a thread-local counter bump, ~free), and the driver
 * loops the base until the counter stops moving before advancing time. */
extern _Thread_local uint64_t pgf__sim_activity;
static inline void pgf_sim_activity(void)
{
    pgf__sim_activity++;
}
static inline uint64_t pgf_sim_activity_count(void)
{
    return pgf__sim_activity;
}

#endif
