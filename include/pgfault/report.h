/* report.h - the in-memory report of one pgfault run, and its writers.
 *
 * The harness fills a plain report model while (or after) it runs and then
 * asks for the outputs: junit.xml, report.json, report.html and a console
 * summary. The model knows nothing about the harness internals: states,
 * operations, fault phases and actions are plain strings, times are plain
 * nanoseconds (virtual time in --mode sim, monotonic time in --mode stress).
 *
 * What this does not do: run anything, read histories, decide what passed.
 * A scenario fails when one of its checks failed; the report just says so.
 *
 * Ownership and text:
 * - Every string argument is borrowed and COPIED; the caller may free it
 *   right after the call. NULL is accepted where noted and means "absent".
 * - Text may come off the wire. On the way in, every byte sequence that is
 *   not valid UTF-8 is replaced by the four characters "\xNN" (and so is
 *   NUL in the *_n variants that take a length), so the model only holds
 *   valid UTF-8. Each writer then escapes for its format (XML-illegal
 *   control characters become "\xNN" text in junit.xml and report.html;
 *   every control character does on the console, so no escape sequence
 *   from the wire reaches a terminal).
 * - Handles returned by the builder (pgf_report_scenario, pgf_report_check)
 *   are owned by the report and valid until pgf_report_free().
 * - Builder calls return 0 or a negative PGF_E* code. An allocation failure
 *   also marks the report as failed (sticky, like pgf_buf): the writers then
 *   refuse with PGF_ENOMEM rather than write a silently incomplete report.
 *
 * Threading: a report is not thread-safe; fill it from one thread (merge the
 * workers' results after joining them).
 */
#ifndef PGF_REPORT_H
#define PGF_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "pgfault/err.h"

/* Version of the report.json schema (docs/report-format.md). */
#define PGF_REPORT_FORMAT_VERSION 1

/* How a health check ended. The names are the strings used in every output. */
#define PGF_REPORT_OUTCOME_MAP(X)                   \
    X(HEALTHY, "healthy")                           \
    X(AUTH_FAILED, "auth_failed")                   \
    X(UNREACHABLE, "unreachable")                   \
    X(TIMEOUT, "timeout")                           \
    X(SERVER_ERROR, "server_error")                 \
    X(CONNECTION_LOST, "connection_lost")           \
    X(CANCELED, "canceled")                         \
    X(TOO_MANY_CONNECTIONS, "too_many_connections") \
    X(SHUTTING_DOWN, "shutting_down")               \
    X(PROTOCOL_ERROR, "protocol_error")             \
    X(CONFIG_ERROR, "config_error")

typedef enum pgf_report_outcome {
#define PGF__REPORT_OUTCOME_ENUM(name, str) PGF_REPORT_##name,
    PGF_REPORT_OUTCOME_MAP(PGF__REPORT_OUTCOME_ENUM)
#undef PGF__REPORT_OUTCOME_ENUM
        PGF_REPORT_OUTCOME_COUNT
} pgf_report_outcome;

/* "auth_failed" for PGF_REPORT_AUTH_FAILED; "unknown" when out of range. */
const char *pgf_report_outcome_name(pgf_report_outcome o);
/* "auth_failed" -> PGF_REPORT_AUTH_FAILED; -1 if unknown. */
int pgf_report_outcome_parse(const char *s);

typedef struct pgf_report pgf_report;
typedef struct pgf_report_scenario pgf_report_scenario;
typedef struct pgf_report_check pgf_report_check;

/* Run metadata. All strings copied; NULL = absent. */
typedef struct pgf_report_meta {
    const char *tool_version; /* PGF_VERSION (pgfault/version.h) */
    uint64_t seed;
    const char *mode; /* "sim" | "stress" */
    const char *name; /* scenario file name or "built-in suite" */
    const char *description;
    uint64_t start_wall_us;     /* pgf_wall_us() at start; 0 = unknown */
    uint64_t end_wall_us;       /* pgf_wall_us() at end; 0 = unknown */
    uint64_t duration_ns;       /* run duration, wall clock (each scenario's own clock is in
                                 * pgf_report_scenario_set_timing) */
    bool interrupted;           /* stopped by SIGINT/SIGTERM: results are partial */
    const char *replay_command; /* "pgfault replay out/report.json" */
    const char *out_dir;        /* where the reports go; used by the console summary */
} pgf_report_meta;

/* A new, empty report; NULL on ENOMEM. Free with pgf_report_free(). */
pgf_report *pgf_report_new(void);
/* Frees the report and everything it owns; NULL is a no-op. */
void pgf_report_free(pgf_report *r);

/* Set (replace) the run metadata; strings copied. */
PGF_NODISCARD int pgf_report_set_meta(pgf_report *r, const pgf_report_meta *m);
/* Echo of the effective configuration. `config` is borrowed and deep-copied
 * (must be a JSON object); replaces what was set before. */
PGF_NODISCARD int pgf_report_set_config(pgf_report *r, const json_t *config);
/* Set one key of the configuration echo to a string value (copied). */
PGF_NODISCARD int pgf_report_config_set(pgf_report *r, const char *key, const char *value);

/* True when every check of every scenario passed (an interrupted run with no
 * failed check passes; the verdict says it was interrupted). */
bool pgf_report_passed(const pgf_report *r);

/* ---- scenarios ------------------------------------------------------------------------------ */

/* Add a scenario (in run order). `description` may be NULL. Returns a handle
 * owned by the report, or NULL on ENOMEM/EINVAL. */
pgf_report_scenario *pgf_report_add_scenario(pgf_report *r, const char *name,
                                             const char *description);
/* Per-scenario seed, replay command (NULL = use the run's), duration. */
PGF_NODISCARD int pgf_report_scenario_set_run(pgf_report_scenario *s, uint64_t seed,
                                              const char *replay_command, uint64_t duration_ns);

/* Which clock a scenario's times are on ("sim": virtual time, anything else:
 * monotonic wall time) and how long it took on the wall clock (the time every
 * one of its checks needed; junit.xml reports it). `mode` is copied. */
PGF_NODISCARD int pgf_report_scenario_set_timing(pgf_report_scenario *s, const char *mode,
                                                 uint64_t wall_ns);
/* Where a scenario's wall-clock time went (report.json load_ms and
 * verdict_ms): the load, from the first session's start to the end of the
 * load; the verdict, from the end of the load to the scenario's final
 * verdict (history committed, checker finished, expectations judged). */
void pgf_report_scenario_set_phases(pgf_report_scenario *s, uint64_t load_ns, uint64_t verdict_ns);
/* The run stopped before its end on purpose, and why (--fail-fast at the
 * first violation); copied. report.json: the scenario's `stopped_early`. */
PGF_NODISCARD int pgf_report_scenario_set_stopped_early(pgf_report_scenario *s, const char *why);
/* Checks the run itself kept no sample of (its sample is a part of them):
 * counted as dropped, like those past PGF_REPORT_MAX_SAMPLES. */
void pgf_report_scenario_add_samples_dropped(pgf_report_scenario *s, uint64_t n);
/* Fired faults the run did not keep as timeline marks (they hit sessions
 * the timeline does not draw): counted with the marks on sessions not
 * drawn. report.json: the timeline's `faults_not_listed`. */
void pgf_report_scenario_add_marks_not_kept(pgf_report_scenario *s, uint64_t n);
/* Something the scenario's pictures needed could not be kept (out of
 * memory): the report's writers then refuse, as for their own failures. */
void pgf_report_scenario_set_incomplete(pgf_report_scenario *s);
/* How many sessions the run had in all (the M of the timeline's "showing N
 * of M"); the timeline holds only the sessions the harness added. */
void pgf_report_scenario_set_sessions(pgf_report_scenario *s, uint64_t total);

/* A check or expectation, with its verdict. `kind` classifies a failure
 * ("illegal_transition", "use_after_close", "expectation"...); `message` says
 * what went wrong (or what was checked). Both may be NULL. Returns a handle
 * owned by the report, NULL on ENOMEM/EINVAL. */
pgf_report_check *pgf_report_add_check(pgf_report_scenario *s, const char *name, bool passed,
                                       const char *kind, const char *message);
/* The session the witness is about (0 = none); the HTML timeline draws
 * these sessions first. */
void pgf_report_check_set_session(pgf_report_check *c, uint64_t session);
/* Append one line of the violation witness (a history line or event), in
 * order, oldest first. The _n variant takes raw bytes (NUL allowed). */
PGF_NODISCARD int pgf_report_check_add_witness(pgf_report_check *c, const char *line);
PGF_NODISCARD int pgf_report_check_add_witness_n(pgf_report_check *c, const char *bytes,
                                                 size_t len);

/* Health-check outcomes: add `n` to the count of outcome `o`. */
PGF_NODISCARD int pgf_report_count_outcome(pgf_report_scenario *s, pgf_report_outcome o,
                                           uint64_t n);
/* Latency samples of outcome `o` (does not touch the outcome count): `n`
 * samples of `ns` each. Kept in a log-linear histogram (16 sub-buckets per
 * power of two, so percentiles are within 6.25%; min and max are exact). */
PGF_NODISCARD int pgf_report_add_latency(pgf_report_scenario *s, pgf_report_outcome o, uint64_t ns,
                                         uint64_t n);

/* Latency percentiles of one outcome, in ns (all 0 when count == 0). */
typedef struct pgf_report_latency {
    uint64_t count, min, p50, p90, p99, max, mean;
} pgf_report_latency;
void pgf_report_latency_get(const pgf_report_scenario *s, pgf_report_outcome o,
                            pgf_report_latency *out);

/* State machine: the declared states, in display order (duplicates ignored). */
PGF_NODISCARD int pgf_report_add_state(pgf_report_scenario *s, const char *state);
/* An observed (or declared, with count 0) edge. Adding the same
 * (from, to, op, legal) again adds to its count; unknown states are appended
 * to the state list. `op` may be NULL. */
PGF_NODISCARD int pgf_report_add_edge(pgf_report_scenario *s, const char *from, const char *to,
                                      const char *op, uint64_t count, bool legal);

/* Timeline: session `session` was in `state` from start_ns to end_ns. */
PGF_NODISCARD int pgf_report_add_span(pgf_report_scenario *s, uint64_t session, const char *state,
                                      uint64_t start_ns, uint64_t end_ns);
/* Timeline: a fault fired at t_ns on `session` (0 = not tied to a session).
 * `rule` may be NULL. */
PGF_NODISCARD int pgf_report_add_fault_mark(pgf_report_scenario *s, uint64_t session, uint64_t t_ns,
                                            const char *phase, const char *action,
                                            const char *rule);

/* Timeline: an operation on `session`, drawn as a bar from invoke_ns to
 * end_ns (Jepsen's timeline). `result` is "ok", "fail", "info" or NULL (it
 * never completed: end_ns is then the end of the run); `error` may be NULL.
 * `raced`: it was invoked while another operation of the same session was in
 * progress (a racer's call); drawn in the racer lane of that session's row. */
PGF_NODISCARD int pgf_report_add_op(pgf_report_scenario *s, uint64_t session, uint64_t op_id,
                                    const char *op, uint64_t invoke_ns, uint64_t end_ns,
                                    const char *result, const char *error, bool raced);
/* Timeline: the checker found a violation of `kind` at t_ns on `session`;
 * sessions with one are drawn first and always. */
PGF_NODISCARD int pgf_report_add_violation_mark(pgf_report_scenario *s, uint64_t session,
                                                uint64_t t_ns, const char *kind);
/* A time window in which fault rule `rule` was armed (its from_ms/until_ms);
 * shaded on the timeline and on the latency-over-time plot. */
PGF_NODISCARD int pgf_report_add_fault_window(pgf_report_scenario *s, const char *rule,
                                              uint64_t start_ns, uint64_t end_ns);
/* A health check of outcome `o` completed at t_ns after latency_ns (the
 * latency and throughput over time plots). At most PGF_REPORT_MAX_SAMPLES are
 * kept per scenario; the rest are counted and the plot says so. */
PGF_NODISCARD int pgf_report_add_sample(pgf_report_scenario *s, pgf_report_outcome o, uint64_t t_ns,
                                        uint64_t latency_ns);
#define PGF_REPORT_MAX_SAMPLES 1000000
/* Throughput over time: every check counted, healthy (ok[k]) and failed
 * (bad[k]), in n bins of bin_ns from the start; copied. When set, the
 * throughput chart is drawn from these exact counts (in bins that are a
 * whole number of these) instead of from the samples, which may then be a
 * sample. Replaces an earlier call. */
PGF_NODISCARD int pgf_report_set_throughput(pgf_report_scenario *s, uint64_t bin_ns, size_t n,
                                            const uint64_t *ok, const uint64_t *bad);

/* Fault-site coverage: a rule of the fault set (with the phase and action it
 * targets) and how often it fired. Adding a rule again adds to its count.
 * Rules with count 0 at write time are listed as never fired. */
PGF_NODISCARD int pgf_report_add_rule(pgf_report_scenario *s, const char *rule, const char *phase,
                                      const char *action, uint64_t fired);
/* Operation coverage: add `calls` (of which `refused` were refused with
 * PGF_EILLEGAL_STATE) to the operation x state cell -- the state the
 * session was in when the operation was called. report.json:
 * scenarios[].op_coverage.cells[] = {op, state, calls, refused}. */
PGF_NODISCARD int pgf_report_add_op_coverage(pgf_report_scenario *s, const char *op,
                                             const char *state, uint64_t calls, uint64_t refused);
/* Fault-site coverage: add `fired` to the phase x action cell. Use count 0
 * to make a phase or action appear in the table even though nothing fired. */
PGF_NODISCARD int pgf_report_add_coverage(pgf_report_scenario *s, const char *phase,
                                          const char *action, uint64_t fired);

/* Violations counted by kind (all of them, not only the first per session). */
PGF_NODISCARD int pgf_report_count_violation(pgf_report_scenario *s, const char *kind, uint64_t n);

/* ---- outputs -------------------------------------------------------------------------------- */

/* The whole report as JSON (the report.json document); NULL on ENOMEM.
 * Caller owns the reference (json_decref). */
json_t *pgf_report_to_json(const pgf_report *r);

/* Each writer writes DIR/<file> atomically (temp file in DIR, fsync,
 * rename): readers see the old file or the complete new one, never a part.
 * DIR must exist. On failure returns a negative PGF_E* code and, when `err`
 * is not NULL, a message naming the path in err[errlen]. */
PGF_NODISCARD int pgf_report_write_json(const pgf_report *r, const char *dir, char *err,
                                        size_t errlen); /* report.json */
PGF_NODISCARD int pgf_report_write_junit(const pgf_report *r, const char *dir, char *err,
                                         size_t errlen); /* junit.xml */
PGF_NODISCARD int pgf_report_write_html(const pgf_report *r, const char *dir, char *err,
                                        size_t errlen); /* report.html */
/* Creates DIR if missing (one level), then writes the three files. Stops at
 * the first failure. */
PGF_NODISCARD int pgf_report_write_all(const pgf_report *r, const char *dir, char *err,
                                       size_t errlen);

/* The console summary: one screen, verdict first, then counts, the first
 * violations, and what to do next (replay command, report paths from
 * meta.out_dir). Control characters are escaped. */
void pgf_report_print_summary(const pgf_report *r, FILE *out);

/* Sessions without a violation drawn at most in the HTML timeline (the page
 * says when it cut); sessions with a violation are always drawn, up to
 * PGF_REPORT_HTML_MAX_FAILING. */
#define PGF_REPORT_HTML_MAX_SESSIONS 40
#define PGF_REPORT_HTML_MAX_FAILING  200

#endif
