/* history_internal.h - shared between history.c, check.c and report.c only:
 * the jansson form of a record in the canonical key order, and back. */
#ifndef PGF_HISTORY_INTERNAL_H
#define PGF_HISTORY_INTERNAL_H

#include <jansson.h>

#include "pgfault/history.h"

/* New reference, or NULL on ENOMEM. No `wall` field. */
json_t *pgf__hist_rec_json(const pgf_rec *r);

/* One line as pgf_rec_format (or the writer, `wall` and all) wrote it, back
 * into a record whose strings are borrowed from *hold (json_decref it):
 * how the checker turns the lines it keeps into witnesses. 0, or
 * PGF_EPARSE. `line`, `backend_pid`, `client_port` are not in a line. */
int pgf__hist_line_rec(const char *line, size_t n, pgf_rec *r, json_t **hold);

#endif
