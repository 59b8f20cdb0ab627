/* answers.h - canned answers: what the fake server replies to an
 * application's own statements (`pgfault serve --answers FILE`,
 * `server.answers` in scenarios).
 *
 * A YAML list; each item matches a statement (exact, after the
 * normalization of docs/introspection.md, or a POSIX extended regular
 * expression, case-insensitive) and answers with typed columns and rows or
 * with an ERROR, optionally after delay_ms (on the server's pgf_timer, so
 * sim mode stays deterministic). Format and examples: docs/introspection.md.
 * Immutable once loaded: any thread may read it.
 */
#ifndef PGF_ANSWERS_H
#define PGF_ANSWERS_H

#include <stddef.h>

#include "pgfault/doc.h"
#include "pgfault/err.h"

typedef struct pgf_answers pgf_answers;

/* Read a YAML answers file. On error returns a PGF_E* code and writes
 * "file:line:col: what" into err. */
int pgf_answers_load(const char *path, pgf_answers **out, char *err, size_t errlen) PGF_NODISCARD;
/* From a document tree (a sequence node); source names the file in errors. */
int pgf_answers_from_doc(const pgf_doc *seq, const char *source, pgf_answers **out, char *err,
                         size_t errlen) PGF_NODISCARD;
/* The answers as a JSON list that pgf_answers_from_doc() reads back (the
 * scenario writer: --explain, replay, shrink). Caller frees; NULL on ENOMEM. */
char *pgf_answers_to_json(const pgf_answers *a);
/* Number of answers. */
int pgf_answers_count(const pgf_answers *a);
/* NULL is a no-op. */
void pgf_answers_free(pgf_answers *a);

#endif
