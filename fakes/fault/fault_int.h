/* fault_int.h - fault module internals shared between its .c files:
 * the parsed rule model, the neutral document tree the validator reads,
 * and the engine's view of a rule set. Not for use outside fakes/fault/. */
#ifndef PGF_FAULT_INT_H
#define PGF_FAULT_INT_H

#include <regex.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/fault.h"

#include "pgfault/doc.h"

/* ---- the rule model --------------------------------------------------- */

typedef enum pgf__scope {
    PGF__SCOPE_CONN = 0,
    PGF__SCOPE_GLOBAL = 1,
} pgf__scope;

typedef struct pgf__rule {
    char *name;
    uint64_t id_hash; /* pgf_hash_str(name): the rule's random stream id */
    pgf_phase phase;
    /* where: filters (NULL / 0 = any) */
    char *user, *database, *application_name, *client_addr;
    char *query;       /* substring */
    char *query_regex; /* source text */
    regex_t re;
    bool has_re;
    uint64_t conn_lo, conn_hi; /* 0,0 = any connection */
    /* what */
    pgf_fault_action act; /* template; strings point into this rule */
    char *preset;
    char *severity, *sqlstate, *message, *detail, *hint;
    uint32_t jitter_ms;
    /* when */
    double probability;                        /* 1.0 = always */
    uint64_t nth, every, after, times, budget; /* 0 = unset */
    uint64_t from_ms, until_ms;                /* until 0 = no end */
    pgf__scope scope;
    /* canonical JSON of the rule as given (keys typed), and its identity */
    char *canon;
} pgf__rule;

struct pgf_fault_rules {
    atomic_int refs;
    size_t n;
    pgf__rule *rules;
    /* by_phase[p] lists rule indices at phase p in file order */
    size_t *by_phase[PGF_PHASE_COUNT];
    size_t by_phase_n[PGF_PHASE_COUNT];
};

/* Validate a tree into a rule set. Accepted roots: {version?, rules: [...]},
 * a bare list of rules, or one rule object (a map with phase/action). */
/* pgf_fault_rules_from_doc() is declared in rules.h. */

/* Is `a` valid at `p`? */
bool pgf__action_valid_at(pgf_action_kind a, pgf_phase p);

#endif
