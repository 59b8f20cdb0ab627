/* deadline.c - the deadlines a history is checked against, as the meta
 * line carries them: {"open": 10000, "check": 15000, ..., "tolerance": 50}
 * (milliseconds; docs/history-format.md). The property itself is checked
 * in check.c (deadline_exceeded); this file only reads and writes the
 * object, so `pgfault check` checks a history with the deadlines of the
 * run that recorded it. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/check.h"

int pgf_check_deadlines_parse(const char *json, pgf_check_deadlines *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    json_error_t je;
    json_t *o = json_loads(json, 0, &je);
    if (o == NULL || !json_is_object(o)) {
        snprintf(err, errlen, "meta: \"deadlines\" must be an object of milliseconds");
        json_decref(o);
        return PGF_EPARSE;
    }
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0) {
            snprintf(err, errlen, "meta: deadlines.%s must be a non-negative integer (ms)", k);
            json_decref(o);
            return PGF_EPARSE;
        }
        uint64_t ns = (uint64_t)json_integer_value(v) * 1000000ULL;
        if (strcmp(k, "tolerance") == 0) {
            d->tolerance_ns = ns;
            continue;
        }
        if (d->n == PGF_CHECK_MAX_DEADLINES || strlen(k) >= sizeof d->op[0]) {
            snprintf(err, errlen, "meta: deadlines: too many entries or name too long (%s)", k);
            json_decref(o);
            return PGF_EPARSE;
        }
        snprintf(d->op[d->n], sizeof d->op[0], "%s", k);
        d->ns[d->n++] = ns;
    }
    json_decref(o);
    return 0;
}

char *pgf_check_deadlines_json(const pgf_check_deadlines *d)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    for (unsigned i = 0; i < d->n && i < PGF_CHECK_MAX_DEADLINES; i++)
        json_object_set_new(o, d->op[i], json_integer((json_int_t)(d->ns[i] / 1000000ULL)));
    json_object_set_new(o, "tolerance", json_integer((json_int_t)(d->tolerance_ns / 1000000ULL)));
    char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    return text;
}
