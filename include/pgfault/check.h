/* check.h - the checker: a pure function from (spec, history records) to
 * violations, fed one record at a time.
 *
 * pgf_checker replays every session's records against the spec as they
 * come (O(records), state only for sessions and operations still open,
 * docs/checker.md) and reports all violations counted by kind, plus, per
 * session, the FIRST violation with its witness: the records of that
 * session that led to it (Knossos/Elle style), bounded in size and copied
 * into the result. pgf_check() is the same over an array. It does no I/O;
 * printing is pgf_check_print() / pgf_check_print_json(). Semantics:
 * docs/history-format.md.
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

/* At most this many entries in pgf_check_result.first (plus the first one
 * of each kind not yet listed); the others are counted in first_dropped. */
#define PGF_CHECK_FIRST_MAX 1000

typedef struct pgf_violation {
    pgf_violation_kind kind;
    int64_t session;     /* PGF_REC_NONE for server-wide violations */
    size_t at;           /* ordinal (0-based) of the record that showed it; PGF_CHECK_NO_RECORD */
    uint64_t at_time_ns; /* that record's time_ns (at end of history: the last record's) */
    char message[256];
    size_t *witness; /* ordinals of the witness records, ascending */
    pgf_rec *wrec;   /* the witness records themselves (nwitness), owned by the result */
    size_t nwitness;
} pgf_violation;

typedef struct pgf_check_result {
    uint64_t counts[PGF_VIOL_COUNT];
    uint64_t total;
    /* First violation of each session (and the first server-wide one), in
     * the order they were detected: at most PGF_CHECK_FIRST_MAX of them,
     * plus the first of any kind not listed yet. counts stay exact. */
    pgf_violation *first;
    size_t nfirst;
    uint64_t first_dropped; /* first violations of sessions not listed (cap) */
    uint64_t records;
    uint64_t sessions;
    uint64_t ops;
} pgf_check_result;

/* ---- the streaming checker -------------------------------------------- */

typedef struct pgf_checker pgf_checker;

/* opts may be NULL (it is copied; opts->deadlines is borrowed and must
 * outlive the checker). spec is borrowed and must outlive the checker.
 * Returns 0 or PGF_ENOMEM. */
PGF_NODISCARD int pgf_checker_new(const pgf_spec *spec, const pgf_check_opts *opts,
                                  pgf_checker **out);
/* Feed one record, in history order (record i of the history is the i-th
 * call). The record and its strings are borrowed for this call only:
 * whatever a witness may need later is copied. Returns 0 or a negative
 * PGF_E* code (the checker is then unusable: free it). */
PGF_NODISCARD int pgf_checker_feed(pgf_checker *c, const pgf_rec *r);
/* The same, with the record's line as the history has it (what
 * pgf_hist_writer_last gives after pgf_hist_writer_put; a `wall` field may
 * be in it): the checker keeps that line as the witness instead of
 * formatting one (pgf_rec_format). line NULL = pgf_checker_feed. */
PGF_NODISCARD int pgf_checker_feed_line(pgf_checker *c, const pgf_rec *r, const char *line,
                                        size_t n);

/* Witnesses by reference. A checker with a reader keeps where a record's
 * line is in the history (`pos`, its byte offset, as
 * pgf_hist_writer_last_pos gives it) instead of a copy, and reads the line
 * back through the reader only to build a violation's witness (during a
 * feed or pgf_checker_finish: the history must stay readable until then).
 * The reader fills buf with the n bytes at pos and returns 0, or a negative
 * PGF_E* code, which the feed then returns. A record whose line carries
 * what the line does not (backend_pid, client_port), or fed with pos =
 * PGF_CHECK_NO_POS, is still copied. */
#define PGF_CHECK_NO_POS UINT64_MAX
typedef int (*pgf_checker_reader)(void *arg, uint64_t pos, char *buf, size_t n);
void pgf_checker_set_reader(pgf_checker *c, pgf_checker_reader fn, void *arg);
/* pgf_checker_feed_line, with the line's place in the history. */
PGF_NODISCARD int pgf_checker_feed_line_at(pgf_checker *c, const pgf_rec *r, const char *line,
                                           size_t n, uint64_t pos);
/* Live view while feeding: violations counted so far, and the first one
 * found (NULL if none; valid until the next feed/finish/free). */
uint64_t pgf_checker_violations(const pgf_checker *c);
const pgf_violation *pgf_checker_first(const pgf_checker *c);
/* End of history: runs the end-of-history checks (not_closed,
 * missing_completion, connection_leak), hands over the result (caller
 * frees with pgf_check_result_free) and frees the checker, whatever it
 * returns (0 or a negative code). */
PGF_NODISCARD int pgf_checker_finish(pgf_checker *c, pgf_check_result **out);
/* Abandon without a result. NULL is a no-op. */
void pgf_checker_free(pgf_checker *c);

/* What the checker holds right now (docs/checker.md): */
typedef struct pgf_checker_stats {
    size_t sessions_open;          /* sessions with their state and witness ring */
    size_t sessions_kept;          /* of which finished, kept a while for late records */
    size_t session_tombstone_runs; /* compacted sessions: runs of ids with one verdict state */
    size_t ops_open;               /* invoked, not completed */
    size_t ops_recent;             /* completed, remembered in full (bounded) */
    size_t op_id_runs;             /* older completed op_ids: runs of ids */
    size_t conns;                  /* connections with fault bookkeeping */
    size_t strings;                /* distinct interned strings (names, errors...) */
    size_t bytes;                  /* estimate of all of the above, in bytes */
} pgf_checker_stats;
void pgf_checker_stats_get(const pgf_checker *c, pgf_checker_stats *st);
size_t pgf_checker_live_sessions(const pgf_checker *c);
size_t pgf_checker_live_ops(const pgf_checker *c);

/* Check `n` records (borrowed) against `spec`: new + feed each + finish.
 * opts may be NULL. Returns 0 and *out (caller frees with
 * pgf_check_result_free), or PGF_ENOMEM. A history with violations is a
 * successful check: see (*out)->total. */
PGF_NODISCARD int pgf_check(const pgf_spec *spec, const pgf_rec *recs, size_t n,
                            const pgf_check_opts *opts, pgf_check_result **out);
void pgf_check_result_free(pgf_check_result *r);

/* Health classification: the reason a fault predicts for the health check
 * it hits, or NULL when it predicts none (delays, garbage, ...). Table in
 * classify.c, documented in docs/history-format.md. */
const char *pgf_check_predict_reason(const char *action, const char *sqlstate);

/* Readable summary with witnesses (records printed as their canonical
 * lines prefixed with the source line; from the result alone). */
void pgf_check_print(FILE *f, const pgf_check_result *r, const char *name);
/* The same as one JSON document. Returns 0 or a negative code. */
int pgf_check_print_json(FILE *f, const pgf_check_result *r, const char *name);

#endif
