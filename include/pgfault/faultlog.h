/* faultlog.h - the engine's fault log, coverage, and run-time controls.
 *
 * Additions to fault.h for whoever watches the engine (the control API,
 * `pgfault serve` at exit, tests). Every fired fault is one event, kept in
 * memory as one JSON line and optionally streamed to a file:
 *
 *   {"seq":1,"elapsed_ns":1500000,"conn":17,"phase":"data-row","rule":"cut",
 *    "action":"truncate","params":{"bytes":3,"then":"close"},"msg_type":"D"}
 *
 * The same seed and the same sequence of pgf_fault_decide() calls (same
 * ctx values) give a byte-identical log. Real-time runs differ only in
 * elapsed_ns; open the stream with PGF_FAULT_LOG_NO_TIME to compare those.
 *
 * Threading: everything here may be called from any thread; the log and
 * coverage take a mutex that pgf_fault_decide() only takes when a fault
 * fires.
 */
#ifndef PGF_FAULT_LOG_H
#define PGF_FAULT_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/fault.h"

/* The installed rule set with one more reference (caller frees with
 * pgf_fault_rules_free), or NULL when there are none. */
pgf_fault_rules *pgf_fault_engine_rules(pgf_fault_engine *e);
/* Remove every rule and clear every rule counter (per connection, global).
 * The fault log and the coverage are history and are kept. Any thread. */
void pgf_fault_engine_reset(pgf_fault_engine *e);
/* Faults fired since creation (not cleared by reset). */
uint64_t pgf_fault_engine_fired(const pgf_fault_engine *e);

enum {
    PGF_FAULT_LOG_NO_TIME = 1u << 0, /* leave elapsed_ns out of the streamed lines */
    PGF_FAULT_LOG_APPEND = 1u << 1,  /* append to the file instead of truncating */
};
/* Stream every later event as a JSON line to `path` (flushed per event).
 * Replaces a previous stream. Returns 0 or a PGF_E* code with err filled. */
int pgf_fault_log_open(pgf_fault_engine *e, const char *path, unsigned flags, char *err,
                       size_t errlen) PGF_NODISCARD;
/* The errno of the first failed write to the stream (0: none), so a
 * caller can say "No space left on device" instead of committing a short
 * file. */
int pgf_fault_log_errno(pgf_fault_engine *e);
/* Keep the newest `max` events in memory (default 100000): an older one
 * gives way to a new one and is counted as dropped (every event is still
 * streamed to the log file). A long run holds a fixed amount. */
void pgf_fault_log_set_limit(pgf_fault_engine *e, size_t max);
size_t pgf_fault_log_count(pgf_fault_engine *e);
/* The in-memory events with seq > since_seq as JSON lines ("" when none).
 * Caller frees with free(); NULL on ENOMEM. */
char *pgf_fault_log_lines(pgf_fault_engine *e, uint64_t since_seq);
/* The same as {"events":[...],"dropped":N}. Caller frees. */
char *pgf_fault_log_json(pgf_fault_engine *e, uint64_t since_seq);

/* Fault-site coverage: phases x actions that fired, and every installed
 * rule with its count (0 = never fired). */
typedef struct pgf_fault_rule_coverage {
    char name[65];
    pgf_phase phase;
    pgf_action_kind action;
    uint64_t fired;
} pgf_fault_rule_coverage;

typedef struct pgf_fault_coverage {
    uint64_t fired[PGF_PHASE_COUNT][PGF_ACTION_COUNT];
    uint64_t total;
    size_t nrules;
    pgf_fault_rule_coverage *rules; /* owned; free with pgf_fault_coverage_clear */
} pgf_fault_coverage;

int pgf_fault_coverage_get(pgf_fault_engine *e, pgf_fault_coverage *out) PGF_NODISCARD;
void pgf_fault_coverage_clear(pgf_fault_coverage *c);
/* {"faults_fired":N,"fired":[{"phase":..,"action":..,"count":..}],
 *  "rules":[{"name":..,"phase":..,"action":..,"fired":..}],"never_fired":[names]}
 * Caller frees. */
char *pgf_fault_coverage_json(pgf_fault_engine *e);

#endif
