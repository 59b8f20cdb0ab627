/* docval.h - reading a YAML document (pgfault/doc.h) against what a
 * scenario file allows: typed getters that name the place of the first
 * error as "source:line:col: message" (the first error wins; later ones
 * are not written over it). Shared by scenario.c and target.c (a
 * scenario's `target:` block), so both say the same thing for the same
 * mistake. Internal to the driver. */
#ifndef PGF_DRIVER_DOCVAL_H
#define PGF_DRIVER_DOCVAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/doc.h"

typedef struct pgf__docv {
    const char *source; /* the file, in messages */
    char *err;
    size_t errlen;
    bool failed; /* an error is in err */
} pgf__docv;

/* Write the error at `at` (its line:col when it has one); always false. */
bool pgf__docv_err(pgf__docv *v, const pgf_doc *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* "a map", "a list" or "a scalar". */
const char *pgf__docv_kind(const pgf_doc *n);
bool pgf__docv_is_null(const pgf_doc *n);
/* Every key of map m is one of allowed[n]; else the first stranger, named
 * with the list of allowed keys. */
bool pgf__docv_only_keys(pgf__docv *v, const pgf_doc *m, const char *what,
                         const char *const *allowed, size_t n);
/* A scalar as a string (malloc'd into *out, freeing the old value), an
 * integer or a number within [lo, hi], true/false (yes/no). */
bool pgf__docv_str(pgf__docv *v, const pgf_doc *n, const char *key, char **out);
bool pgf__docv_u64(pgf__docv *v, const pgf_doc *n, const char *key, uint64_t lo, uint64_t hi,
                   uint64_t *out);
bool pgf__docv_uns(pgf__docv *v, const pgf_doc *n, const char *key, unsigned lo, unsigned hi,
                   unsigned *out);
bool pgf__docv_double(pgf__docv *v, const pgf_doc *n, const char *key, double lo, double hi,
                      double *out);
bool pgf__docv_bool(pgf__docv *v, const pgf_doc *n, const char *key, bool *out);

/* s as a YAML scalar that reads back as s (JSON string syntax: valid YAML,
 * everything escaped); NULL as "". */
void pgf__docv_yaml_quote(FILE *f, const char *s);

#endif
