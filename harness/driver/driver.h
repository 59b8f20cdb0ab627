/* driver.h - runs one scenario: the embedded fake server (or an external
 * one), many concurrent simulated health checks through the session
 * manager, racers that call close/cancel at chosen moments, and the
 * recorder that turns all of it into a history.
 *
 * --mode sim: one thread, one event loop for clients and server, unix
 * sockets, a virtual clock (timer.h); the same seed gives the same
 * history, byte for byte. --mode stress: the server on its own thread,
 * worker threads each with an event_base, racers on their own thread.
 */
#ifndef PGF_DRIVER_H
#define PGF_DRIVER_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/faultlog.h"
#include "pgfault/health.h"
#include "pgfault/report.h"
#include "lathist.h"
#include "overtime.h"
#include "recorder.h"
#include "pgfault/scenario.h"
#include "pgfault/server.h"

typedef struct pgf_driver_opts {
    FILE *progress;              /* periodic progress lines; NULL = none */
    bool tty;                    /* progress redraws one line */
    volatile sig_atomic_t *stop; /* set by a signal handler: wind down early */
    const char *faults_log_path; /* stream the fault log here (NULL = memory only) */
    bool no_record;              /* record no history (benchmarks: the recorder's cost) */
    /* Stream the history while the run goes on (recorder.h): the driver
     * drains the recorder into sink from its supervising thread (stress:
     * every tick; sim: whenever the loop is quiescent). The caller drains
     * the rest (final) after pgf_driver_run returns. NULL: the records
     * stay in the recorder for pgf_recorder_merge. */
    pgf_recorder_sink sink;
    void *sink_arg;
    size_t window; /* the reorder window (0 = PGF_RECORDER_WINDOW_DEFAULT) */
    /* The caller's live verdict (called with sink_arg, on the thread that
     * drains): violations found so far and the first one's kind (NULL if
     * none), for the progress line; true = stop the run now (--fail-fast). */
    bool (*live)(void *arg, uint64_t *violations, const char **first_kind);
} pgf_driver_opts;

/* Everything a run produced. */
typedef struct pgf_run {
    const pgf_scenario *sc;
    pgf_recorder *rec;
    pgf_fault_engine *engine;
    uint64_t checks;                            /* health checks completed */
    uint64_t outcomes[PGF_HEALTH_REASON_COUNT]; /* by classified reason */
    pgf_lathist lat[PGF_HEALTH_REASON_COUNT];   /* every check's latency (ns) per outcome */
    /* The over-time charts: every check in time bins (on the history's
     * clock, virtual in sim mode) and a uniform sample of latency dots,
     * in fixed memory (overtime.h). */
    pgf_overtime ot;
    uint64_t racer_fired;
    uint64_t api_errors; /* calls refused with PGF_EILLEGAL_STATE (racers' misuse included) */
    pgf_server_stats server;
    uint64_t proxy_sessions;          /* server.proxy: sessions forwarded upstream */
    uint64_t proxy_upstream_failures; /* ... of which the upstream was unreachable */
    uint64_t duration_ns;             /* virtual in sim mode */
    uint64_t wall_ns;
    uint64_t load_ns;     /* wall clock, the first session's start to the end of the load */
    uint64_t load_end_ns; /* pgf_now_ns() at the end of the load (0: unknown) */
    uint64_t start_wall_us;
    bool interrupted;
    /* Non-empty: the run stopped before its end on purpose (--fail-fast
     * at the first violation) and says why; the history is complete up to
     * there, every session closed. */
    char stopped_early[160];
    char harness_error[256]; /* non-empty: the harness itself failed */
    /* Non-empty: the run could not finish -- a simulation went quiescent
     * with operations outstanding, an operation outlived its deadline by
     * the watchdog's grace, or a stress run passed its end plus the grace.
     * A verdict on the session manager (exit 1), not a harness failure:
     * the history up to that point is kept and checked. Names the
     * operation when one is known. */
    char stuck[512];
} pgf_run;

/* The longest each operation may take in a run of sc, in ms: its declared
 * deadline (scenario or session defaults) -- open: connect; check: query;
 * cancel: cancel; close/invalidate: close; acquire/release: none (0). A
 * preempted operation ends at its preempter's pace (the checker does not
 * hold it to its own deadline). The checker's deadline property and the
 * watchdog use it. */
void pgf_driver_op_deadlines_ms(const pgf_scenario *sc, uint64_t ms[PGF_OP_COUNT]);

/* Run sc. Returns 0 with *out filled (even when checks will fail), or a
 * PGF_E* code with err set when the harness could not run (cannot bind,
 * out of fds). Caller frees *out with pgf_run_free. */
int pgf_driver_run(const pgf_scenario *sc, const pgf_driver_opts *o, pgf_run **out, char *err,
                   size_t errlen) PGF_NODISCARD;
void pgf_run_free(pgf_run *r);

#endif
