/* doc.h - the neutral document tree that YAML and JSON files become.
 *
 * Fault rule files, control-API bodies and scenario files are all read
 * into this tree first (tree.c: libyaml events, jansson), keeping the
 * line:col of every key and value, so every validator can name the exact
 * place of a mistake (`file:line:col: unknown key ...`) whatever the syntax.
 */
#ifndef PGF_DOC_H
#define PGF_DOC_H

#include <stddef.h>

typedef enum pgf_doc_kind {
    PGF_DOC_MAP,
    PGF_DOC_SEQ,
    PGF_DOC_SCALAR,
} pgf_doc_kind;

/* Scalar types. YAML plain scalars are untyped (PLAIN): the validator
 * interprets them as the key requires. YAML quoted scalars and JSON strings
 * are STRING; JSON numbers/booleans/null keep their JSON type. */
typedef enum pgf_doc_scalar {
    PGF_DOC_PLAIN,
    PGF_DOC_STRING,
    PGF_DOC_INT,
    PGF_DOC_REAL,
    PGF_DOC_BOOL,
    PGF_DOC_NULL,
} pgf_doc_scalar;

typedef struct pgf_doc pgf_doc;
struct pgf_doc {
    pgf_doc_kind kind;
    pgf_doc_scalar stype; /* scalars only */
    char *text;           /* scalars: the text ("true", "12", "0.5" for JSON) */
    int line, col;        /* 1-based; 0 = unknown (JSON) */
    size_t n;             /* children (map: pairs) */
    char **keys;          /* map only: key texts */
    int *key_line, *key_col;
    pgf_doc **kids;
};

void pgf_doc_free(pgf_doc *n);
/* Build the tree. NULL + message in err on failure. */
pgf_doc *pgf_doc_from_yaml(const char *text, size_t len, const char *source, char *err,
                           size_t errlen);
pgf_doc *pgf_doc_from_json(const char *text, size_t len, const char *source, char *err,
                           size_t errlen);

/* The child of map `m` under `key`, or NULL (also when m is not a map). */
const pgf_doc *pgf_doc_get(const pgf_doc *m, const char *key);

#endif
