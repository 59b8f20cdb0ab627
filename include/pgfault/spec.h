/* spec.h - the session state machine as data, loaded from its JSON form.
 *
 * The format is the contract of docs/spec-format.md (`pgfault spec --format
 * json`): states (one initial, some terminal), operations with their
 * `from` / `to` / `during` states and whether they preempt, and the table
 * of legal transitions, each owned by an operation. This module parses and
 * validates that JSON into an immutable in-memory spec; it names no state
 * itself. It does not check histories (check.h does).
 */
#ifndef PGF_SPEC_H
#define PGF_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"

#define PGF_SPEC_FORMAT     "pgfault-spec"
#define PGF_SPEC_VERSION    1
#define PGF_SPEC_MAX_STATES 64

typedef struct pgf_spec pgf_spec;

/* Parse and validate spec JSON text. `origin` names it in messages
 * ("spec.json", "<history meta>"). On error returns a negative code and
 * writes "origin[:line:col]: message" into err. Caller frees the spec. */
PGF_NODISCARD int pgf_spec_parse(const char *json, size_t len, const char *origin, pgf_spec **out,
                                 char *err, size_t errlen);
/* The same from a file. */
PGF_NODISCARD int pgf_spec_load(const char *path, pgf_spec **out, char *err, size_t errlen);
void pgf_spec_free(pgf_spec *s);

/* Hex SHA-256 of the canonical spec (compact JSON, sorted keys): what a
 * history's meta `spec_digest` refers to. Borrowed, 64 hex digits. */
const char *pgf_spec_digest(const pgf_spec *s);

int pgf_spec_state_count(const pgf_spec *s);
const char *pgf_spec_state_name(const pgf_spec *s, int state);
bool pgf_spec_state_terminal(const pgf_spec *s, int state);
/* Index of a state, or -1. */
int pgf_spec_state_find(const pgf_spec *s, const char *name);
int pgf_spec_initial(const pgf_spec *s);

int pgf_spec_op_count(const pgf_spec *s);
const char *pgf_spec_op_name(const pgf_spec *s, int op);
/* Index of an operation, or -1. */
int pgf_spec_op_find(const pgf_spec *s, const char *name);
bool pgf_spec_op_preempts(const pgf_spec *s, int op);
/* May `op` start in `state`? (`"*"` = any non-terminal state.) */
bool pgf_spec_op_may_start(const pgf_spec *s, int op, int state);
/* Is `state` one of op's `to` states? */
bool pgf_spec_op_ends_in(const pgf_spec *s, int op, int state);
/* Is `state` one of op's `during` states? */
bool pgf_spec_op_passes(const pgf_spec *s, int op, int state);
/* Does a completion's `error` mean code (PGF_EILLEGAL_STATE: refused,
 * nothing changed; PGF_ECANCELED: preempted)? True for the PGF_E* name
 * itself, and for the names the spec's optional "errors" object lists
 * ("refused": [...], "canceled": [...]): a session manager in another
 * language keeps its own exception names. */
bool pgf_spec_error_means(const pgf_spec *s, const char *error, int code);
/* Is from -> to listed with "op": op? */
bool pgf_spec_transition_ok(const pgf_spec *s, int op, int from, int to);

/* The pinned, reviewed spec: docs/spec.json as compiled in (static,
 * NUL-terminated JSON). What runs check histories against. */
const char *pgf_spec_pinned_json(void);

/* Compare two specs by name (states, ops, transitions, from/to/during
 * sets, terminal states, preemption). Returns the number of differences
 * and writes the first ones into buf ("extra transition READY -> BUSY by
 * cancel; missing ..."): "extra" = in `compiled` only, "missing" = in
 * `pinned` only. 0 = same machine. */
int pgf_spec_diff(const pgf_spec *pinned, const pgf_spec *compiled, char *buf, size_t len);

#endif
