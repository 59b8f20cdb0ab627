/* healthcheck.h - one synchronous health check through a session.
 *
 * Opens a session (session.h) with the given libpq settings, runs one
 * query, closes it, all on a private event loop within a deadline, and
 * classifies the outcome with health.h's table. For command-line tools and
 * tests; an application's pool runs the same check asynchronously (pool.h).
 */
#ifndef PGF_HEALTHCHECK_H
#define PGF_HEALTHCHECK_H

#include "pgfault/health.h"

/* One synchronous health check: open with these libpq keyword/value
 * arrays (NULL-terminated; borrowed), run `query` (NULL = "SELECT 1"),
 * close, all within timeout_ms (0 = 10 s) on a private event loop. Fills
 * *h and returns 0 when healthy, else the reason's PGF_E* code. Any
 * thread (it owns its loop). */
int pgf_health_check(const char *const *keywords, const char *const *values, const char *query,
                     unsigned timeout_ms, pgf_health *h);

#endif
