/* check.h - the checker: a pure function from (spec, history records) to
 * violations.
 *
 * pgf_check() replays every session's records against the spec in one
 * pass (O(records), per-session state in hash maps) and reports all
 * violations counted by kind, plus, per session, the FIRST violation with
 * its witness: the records of that session that led to it (Knossos/Elle
 * style), bounded in size. It does no I/O; printing is pgf_check_print()
 * / pgf_check_print_json(). Semantics: docs/history-format.md.
 */
#ifndef PGF_CHECK_H
#define PGF_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/err.h"
#include "pgfault/history.h"
#include "pgfault/spec.h"

/* Violation kinds: enum name, stable string (reports, JSON), meaning. */
#define PGF_VIOLATION_MAP(X)                                                                      \
    X(ILLEGAL_START, "illegal_start",                                                             \
      "op started outside its `from` states, then changed state or did not fail with "            \
      "PGF_EILLEGAL_STATE")                                                                       \
    X(CONCURRENT_TRANSITION, "concurrent_transition",                                             \
      "state changed by another, non-preempting op while an op was in progress (or by an op "     \
      "after it was preempted)")                                                                  \
    X(PREEMPTED_NOT_CANCELED, "preempted_not_canceled",                                           \
      "a preempted op did not complete with fail PGF_ECANCELED")                                  \
    X(BAD_END_STATE, "bad_end_state", "an op completed in a state not in its `to` states")        \
    X(ILLEGAL_TRANSITION, "illegal_transition", "a transition not listed in the spec table")      \
    X(TRANSITION_FROM_TERMINAL, "transition_from_terminal", "a transition left a terminal state") \
    X(FROM_MISMATCH, "from_mismatch",                                                             \
      "a transition's `from` is not the state the session was in (a lost or reordered event)")    \
    X(ORPHAN_TRANSITION, "orphan_transition",                                                     \
      "a transition attributed to an op_id that is not in progress")                              \
    X(NOT_CLOSED, "not_closed", "a session did not end in a terminal state")                      \
    X(MISSING_COMPLETION, "missing_completion", "an invoked op never completed")                  \
    X(LATE_COMPLETION, "late_completion",                                                         \
      "an op reached its end state by its own transition, but another op changed the state "      \
      "before it completed (its completion lost, or held back until a close aborted it)")         \
    X(DOUBLE_COMPLETION, "double_completion", "an op completed more than once")                   \
    X(UNMATCHED_COMPLETION, "unmatched_completion",                                               \
      "a completion with no matching invoke (unknown op_id, other session or op)")                \
    X(DUPLICATE_OP_ID, "duplicate_op_id", "an op_id was invoked twice")                           \
    X(UNDECLARED_OP, "undeclared_op", "an op that the spec does not declare")                     \
    X(USE_AFTER_CLOSE, "use_after_close",                                                         \
      "an op on a terminal session changed state or did not fail with PGF_EILLEGAL_STATE")        \
    X(CONNECTION_LEAK, "connection_leak", "the final server record shows connections still open") \
    X(SERVER_COUNT_MISMATCH, "server_count_mismatch",                                             \
      "server counts disagree (accepted - closed vs open vs sessions_open)")                      \
    X(MISCLASSIFIED_HEALTH, "misclassified_health",                                               \
      "a health result's reason is not the one the injected fault predicts")                      \
    X(DEADLINE_EXCEEDED, "deadline_exceeded",                                                     \
      "an accepted op completed later than its declared deadline plus the tolerance (a stall "    \
      "past the deadline must end in timeout, at the deadline)")                                  \
    X(SPEC_DRIFT, "spec_drift",                                                                   \
      "the state machine compiled into the session manager differs from the pinned, reviewed "    \
      "spec (docs/spec.json): extra or missing transitions")

typedef enum pgf_violation_kind {
#define PGF__VIOL_ENUM(name, str, doc) PGF_VIOL_##name,
    PGF_VIOLATION_MAP(PGF__VIOL_ENUM)
#undef PGF__VIOL_ENUM
        PGF_VIOL_COUNT
} pgf_violation_kind;

const char *pgf_violation_name(pgf_violation_kind k);
const char *pgf_violation_doc(pgf_violation_kind k);

#define PGF_CHECK_MAX_DEADLINES 16

/* Deadlines are properties: every accepted op named here must complete
 * within deadline_ns + tolerance_ns of its invoke (record times: virtual
 * in sim mode). Ops not named (or with 0) have no deadline. */
typedef struct pgf_check_deadlines {
    unsigned n;
    char op[PGF_CHECK_MAX_DEADLINES][32];
    uint64_t ns[PGF_CHECK_MAX_DEADLINES];
    uint64_t tolerance_ns;
} pgf_check_deadlines;

typedef struct pgf_check_opts {
    unsigned witness_max;                 /* records per witness; 0 = default (32) */
    const pgf_check_deadlines *deadlines; /* NULL = deadlines not checked */
} pgf_check_opts;

/* Parse a history meta line's "deadlines" object ({"open": ms, ...,
 * "tolerance": ms}, docs/history-format.md). Returns 0, or PGF_EPARSE
 * with the reason in err. */
int pgf_check_deadlines_parse(const char *json, pgf_check_deadlines *d, char *err,
                              size_t errlen) PGF_NODISCARD;
/* The same object as compact JSON text; caller frees with free(). NULL on
 * ENOMEM. */
char *pgf_check_deadlines_json(const pgf_check_deadlines *d);

#define PGF_CHECK_WITNESS_DEFAULT 32
#define PGF_CHECK_NO_RECORD       SIZE_MAX

typedef struct pgf_violation {
    pgf_violation_kind kind;
    int64_t session; /* PGF_REC_NONE for server-wide violations */
    size_t at;       /* index of the record that showed it; PGF_CHECK_NO_RECORD at end */
    char message[256];
    size_t *witness; /* indices into the records, ascending */
    size_t nwitness;
} pgf_violation;

typedef struct pgf_check_result {
    uint64_t counts[PGF_VIOL_COUNT];
    uint64_t total;
    /* First violation of each session (and the first server-wide one), in
     * the order they were detected. */
    pgf_violation *first;
    size_t nfirst;
    uint64_t records;
    uint64_t sessions;
    uint64_t ops;
} pgf_check_result;

/* Check `n` records (borrowed) against `spec`. opts may be NULL. Returns 0
 * and *out (caller frees with pgf_check_result_free), or PGF_ENOMEM. A
 * history with violations is a successful check: see (*out)->total. */
PGF_NODISCARD int pgf_check(const pgf_spec *spec, const pgf_rec *recs, size_t n,
                            const pgf_check_opts *opts, pgf_check_result **out);
void pgf_check_result_free(pgf_check_result *r);

/* Health classification: the reason a fault predicts for the health check
 * it hits, or NULL when it predicts none (delays, garbage, ...). Table in
 * classify.c, documented in docs/history-format.md. */
const char *pgf_check_predict_reason(const char *action, const char *sqlstate);

/* Readable summary with witnesses (records printed as their canonical
 * lines prefixed with the source line). */
void pgf_check_print(FILE *f, const pgf_check_result *r, const pgf_rec *recs, const char *name);
/* The same as one JSON document. Returns 0 or a negative code. */
int pgf_check_print_json(FILE *f, const pgf_check_result *r, const pgf_rec *recs, const char *name);

#endif
