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

#include "fault.h"

/* ---- neutral tree: what YAML and JSON both become ---------------------- */

typedef enum pgf__node_kind {
    PGF__N_MAP,
    PGF__N_SEQ,
    PGF__N_SCALAR,
} pgf__node_kind;

/* Scalar types. YAML plain scalars are untyped (PLAIN): the validator
 * interprets them as the key requires. YAML quoted scalars and JSON strings
 * are STRING; JSON numbers/booleans/null keep their JSON type. */
typedef enum pgf__scalar_type {
    PGF__S_PLAIN,
    PGF__S_STRING,
    PGF__S_INT,
    PGF__S_REAL,
    PGF__S_BOOL,
    PGF__S_NULL,
} pgf__scalar_type;

typedef struct pgf__node pgf__node;
struct pgf__node {
    pgf__node_kind kind;
    pgf__scalar_type stype; /* scalars only */
    char *text;             /* scalars: the text ("true", "12", "0.5" for JSON) */
    int line, col;          /* 1-based; 0 = unknown (JSON) */
    size_t n;               /* children (map: pairs) */
    char **keys;            /* map only: key texts */
    int *key_line, *key_col;
    pgf__node **kids;
};

void pgf__node_free(pgf__node *n);
/* Build the tree. NULL + message in err on failure. */
pgf__node *pgf__tree_from_yaml(const char *text, size_t len, const char *source, char *err,
                               size_t errlen);
pgf__node *pgf__tree_from_json(const char *text, size_t len, const char *source, char *err,
                               size_t errlen);

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
pgf_fault_rules *pgf__rules_from_tree(const pgf__node *root, const char *source, char *err,
                                      size_t errlen);

/* Is `a` valid at `p`? */
bool pgf__action_valid_at(pgf_action_kind a, pgf_phase p);

#endif
