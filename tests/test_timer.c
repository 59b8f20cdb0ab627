/* test_timer.c - the simulated clock: order, cancellation, re-arming. */
#include <event2/event.h>

#include "pgf_test.h"
#include "pgfault/timer.h"

static char fired[16];
static int nfired;
static pgf_timer *rearm_target;

static void mark(void *arg)
{
    fired[nfired++] = *(const char *)arg;
}

static void mark_and_arm(void *arg)
{
    mark(arg);
    pgf_timer_arm(rearm_target, 5);
}

static void sim_fires_in_deadline_then_arm_order(void)
{
    struct event_base *base = event_base_new();
    pgf_simclock *clk = pgf_simclock_attach(base, 1000);
    CU_ASSERT_PTR_EQUAL(pgf_simclock_of(base), clk);
    static const char a = 'a', b = 'b', c = 'c', d = 'd';
    pgf_timer *ta = pgf_timer_new(base, mark, (void *)&a);
    pgf_timer *tb = pgf_timer_new(base, mark, (void *)&b);
    pgf_timer *tc = pgf_timer_new(base, mark_and_arm, (void *)&c);
    pgf_timer *td = pgf_timer_new(base, mark, (void *)&d);
    rearm_target = td;
    nfired = 0;
    pgf_timer_arm(ta, 30);
    pgf_timer_arm(tb, 10);
    pgf_timer_arm(tc, 10);
    CU_ASSERT_EQUAL(pgf_simclock_pending(clk), 3);
    CU_ASSERT_EQUAL(pgf_clock_now(base), 1000);
    CU_ASSERT_TRUE(pgf_simclock_advance(clk)); /* t=1010: b then c (arm order) */
    CU_ASSERT_EQUAL(pgf_simclock_now(clk), 1010);
    CU_ASSERT_EQUAL(nfired, 2);
    CU_ASSERT_TRUE(pgf_timer_pending(td)); /* armed by c for 1015 */
    pgf_timer_arm(ta, 1);                  /* re-arm replaces: now 1011 */
    CU_ASSERT_TRUE(pgf_simclock_advance(clk));
    CU_ASSERT_EQUAL(pgf_simclock_now(clk), 1011);
    pgf_timer_cancel(td);
    CU_ASSERT_FALSE(pgf_simclock_advance(clk)); /* nothing left */
    CU_ASSERT_EQUAL(nfired, 3);
    CU_ASSERT_NSTRING_EQUAL(fired, "bca", 3);
    pgf_timer_free(ta);
    pgf_timer_free(tb);
    pgf_timer_free(tc);
    pgf_timer_free(td);
    pgf_timer_free(NULL);
    pgf_simclock_detach(clk);
    CU_ASSERT_PTR_NULL(pgf_simclock_of(base));
    event_base_free(base);
}

static void real_timer_fires_on_the_loop(void)
{
    struct event_base *base = event_base_new();
    static const char x = 'x';
    nfired = 0;
    pgf_timer *t = pgf_timer_new(base, mark, (void *)&x);
    pgf_timer_arm(t, 1000000); /* 1 ms */
    CU_ASSERT_TRUE(pgf_timer_pending(t));
    event_base_dispatch(base); /* returns when no events remain */
    CU_ASSERT_EQUAL(nfired, 1);
    CU_ASSERT_FALSE(pgf_timer_pending(t));
    pgf_timer_free(t);
    event_base_free(base);
}

static const pgf_test timer_tests[] = {
    {"sim_fires_in_deadline_then_arm_order", sim_fires_in_deadline_then_arm_order},
    {"real_timer_fires_on_the_loop", real_timer_fires_on_the_loop},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_timer[] = {
    {"timer", NULL, NULL, timer_tests},
    PGF_SUITES_END,
};
