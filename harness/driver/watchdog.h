/* watchdog.h - the per-operation watchdog of a run.
 *
 * Every operation the session manager accepts must complete. The driver
 * feeds the watchdog every invoke and completion it records; the watchdog
 * answers two questions: which operations are still outstanding (named
 * when a simulation goes quiescent with work left: a lost completion), and
 * which one is overdue (outstanding longer than its declared deadline plus
 * a grace: a hang that time alone will not end). It names the operation
 * (`check#42 on session 7`), so a stuck run is a verdict with a culprit,
 * not "simulation stuck". Not thread-safe: the sim loop only; stress runs
 * use the end-of-run grace instead (driver.c). No I/O.
 */
#ifndef PGF_WATCHDOG_H
#define PGF_WATCHDOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/machine.h"
#include "pgfault/session.h"

typedef struct pgf_watchdog pgf_watchdog;

/* bound_ns[op]: how long op may take (its deadline plus the grace). */
pgf_watchdog *pgf_watchdog_new(const uint64_t bound_ns[PGF_OP_COUNT]);
void pgf_watchdog_free(pgf_watchdog *w);
/* Feed one session event (transitions are ignored). */
void pgf_watchdog_event(pgf_watchdog *w, const pgf_session_event *ev);
/* Operations invoked and not completed. */
size_t pgf_watchdog_outstanding(const pgf_watchdog *w);
/* Describe the oldest outstanding operation ("open#12 on session 3,
 * invoked at +1.250 s") into buf; false when none. */
bool pgf_watchdog_oldest(const pgf_watchdog *w, uint64_t start_ns, char *buf, size_t len);
/* True (and buf names it) when an operation has been outstanding longer
 * than its bound at time now_ns. */
bool pgf_watchdog_overdue(pgf_watchdog *w, uint64_t now_ns, uint64_t start_ns, char *buf,
                          size_t len);

#endif
