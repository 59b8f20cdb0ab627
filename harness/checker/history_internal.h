/* history_internal.h - shared between history.c and report.c only: the
 * jansson form of a record in the canonical key order. */
#ifndef PGF_HISTORY_INTERNAL_H
#define PGF_HISTORY_INTERNAL_H

#include <jansson.h>

#include "pgfault/history.h"

/* New reference, or NULL on ENOMEM. No `wall` field. */
json_t *pgf__hist_rec_json(const pgf_rec *r);

#endif
