/* rules.h - fault rule sets: parse YAML or JSON into an immutable set.
 *
 * A rule set is parsed from a YAML file or string (libyaml) or from JSON
 * (jansson, the control API's format). Both are first turned into one
 * neutral tree and checked by the same validator, so the two syntaxes
 * cannot drift: the same keys, types, ranges and messages. The schema is
 * documented in docs/faults.md.
 *
 * Errors are written into a caller buffer and name the place:
 * "faults.yaml:7:5: unknown key 'probabilty' in rule 'r1' (expected one
 * of: ...)". JSON has no positions; its errors name the source and the
 * rule instead ("request body: ...").
 *
 * A pgf_fault_rules is immutable after parsing and reference-counted, so
 * any thread may read it; pgf_fault_engine_set_rules() (fault.h) takes
 * the caller's reference.
 */
#ifndef PGF_FAULT_RULES_H
#define PGF_FAULT_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"
#include "pgfault/fault.h"

/* Parse a YAML rule file. On error returns NULL and writes a message into
 * err. Caller frees with pgf_fault_rules_free(). */
pgf_fault_rules *pgf_fault_rules_parse_file(const char *path, char *err, size_t errlen);
/* Parse YAML text (`len` bytes, need not be NUL-terminated); `source` names
 * it in error messages ("faults.yaml", "<string>"). */
pgf_fault_rules *pgf_fault_rules_parse_yaml(const char *text, size_t len, const char *source,
                                            char *err, size_t errlen);
/* Parse JSON text: a rule-set document {"version":1,"rules":[...]}, an array
 * of rules, or one rule object. Same schema and validation as YAML. */
pgf_fault_rules *pgf_fault_rules_parse_json(const char *text, size_t len, const char *source,
                                            char *err, size_t errlen);
/* Parse either: JSON if the first non-blank byte is '{' or '[', else YAML. */
pgf_fault_rules *pgf_fault_rules_parse_string(const char *text, size_t len, const char *source,
                                              char *err, size_t errlen);

/* An empty set (no rules). Caller frees. NULL on ENOMEM. */
pgf_fault_rules *pgf_fault_rules_new_empty(void);
/* Add one reference (any thread). Returns r. */
pgf_fault_rules *pgf_fault_rules_ref(pgf_fault_rules *r);
/* Drop one reference; frees at zero. NULL is a no-op. */
void pgf_fault_rules_free(pgf_fault_rules *r);

size_t pgf_fault_rules_count(const pgf_fault_rules *r);
/* Name of rule i (borrowed, valid while r lives); NULL if out of range. */
const char *pgf_fault_rules_name(const pgf_fault_rules *r, size_t i);
/* Index of the rule called `name`, or -1. */
int pgf_fault_rules_find(const pgf_fault_rules *r, const char *name);
/* Canonical JSON of rule i: only the keys the user gave, typed, compact
 * (borrowed). Parsing it back gives the same rule. */
const char *pgf_fault_rules_rule_json(const pgf_fault_rules *r, size_t i);
/* The whole set as a JSON array of canonical rules. Caller frees (free()). */
char *pgf_fault_rules_to_json(const pgf_fault_rules *r);

/* Validate a parsed document (doc.h) into a rule set: a list of rules, a
 * map with `rules:`, or one rule. Errors name source:line:col. */
struct pgf_doc;
pgf_fault_rules *pgf_fault_rules_from_doc(const struct pgf_doc *root, const char *source, char *err,
                                          size_t errlen);

#endif
