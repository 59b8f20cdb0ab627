/* docval.c - typed reads of a YAML document for scenario files (docval.h). */
#include "docval.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

bool pgf__docv_err(pgf__docv *v, const pgf_doc *at, const char *fmt, ...)
{
    if (v->failed)
        return false;
    v->failed = true;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (at != NULL && at->line > 0)
        snprintf(v->err, v->errlen, "%s:%d:%d: %s", v->source, at->line, at->col, msg);
    else
        snprintf(v->err, v->errlen, "%s: %s", v->source, msg);
    return false;
}

const char *pgf__docv_kind(const pgf_doc *n)
{
    if (n->kind == PGF_DOC_MAP)
        return "a map";
    if (n->kind == PGF_DOC_SEQ)
        return "a list";
    return "a scalar";
}

/* Every key of map m must be in allowed; reports the first stranger. */
bool pgf__docv_only_keys(pgf__docv *v, const pgf_doc *m, const char *what,
                         const char *const *allowed, size_t n)
{
    if (m->kind != PGF_DOC_MAP)
        return pgf__docv_err(v, m, "%s must be a map, got %s", what, pgf__docv_kind(m));
    for (size_t i = 0; i < m->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < n && !ok; k++)
            ok = strcmp(m->keys[i], allowed[k]) == 0;
        if (!ok) {
            char list[512] = "";
            for (size_t k = 0; k < n; k++) {
                strncat(list, allowed[k], sizeof list - strlen(list) - 1);
                if (k + 1 < n)
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            if (v->failed)
                return false;
            v->failed = true;
            snprintf(v->err, v->errlen, "%s:%d:%d: unknown key '%s' in %s (expected one of: %s)",
                     v->source, m->key_line[i], m->key_col[i], m->keys[i], what, list);
            return false;
        }
    }
    return true;
}

bool pgf__docv_is_null(const pgf_doc *n)
{
    return n->kind == PGF_DOC_SCALAR && n->stype == PGF_DOC_NULL;
}

bool pgf__docv_str(pgf__docv *v, const pgf_doc *n, const char *key, char **out)
{
    if (n->kind != PGF_DOC_SCALAR || pgf__docv_is_null(n))
        return pgf__docv_err(v, n, "'%s' must be a string, got %s", key,
                             pgf__docv_is_null(n) ? "null" : pgf__docv_kind(n));
    char *s = strdup(n->text);
    if (s == NULL)
        return pgf__docv_err(v, n, "out of memory");
    free(*out);
    *out = s;
    return true;
}

bool pgf__docv_u64(pgf__docv *v, const pgf_doc *n, const char *key, uint64_t lo, uint64_t hi,
                   uint64_t *out)
{
    if (n->kind != PGF_DOC_SCALAR || n->stype == PGF_DOC_STRING || pgf__docv_is_null(n))
        return pgf__docv_err(v, n, "'%s' must be an integer in [%" PRIu64 ", %" PRIu64 "]", key, lo,
                             hi);
    char *end;
    errno = 0;
    unsigned long long x = strtoull(n->text, &end, 10);
    if (errno != 0 || *end != '\0' || n->text[0] == '-' || n->text[0] == '\0')
        return pgf__docv_err(v, n,
                             "'%s' must be an integer in [%" PRIu64 ", %" PRIu64 "], got '%s'", key,
                             lo, hi, n->text);
    if (x < lo || x > hi)
        return pgf__docv_err(v, n, "'%s' out of range: %llu (expected %" PRIu64 "..%" PRIu64 ")",
                             key, x, lo, hi);
    *out = x;
    return true;
}

bool pgf__docv_uns(pgf__docv *v, const pgf_doc *n, const char *key, unsigned lo, unsigned hi,
                   unsigned *out)
{
    uint64_t x;
    if (!pgf__docv_u64(v, n, key, lo, hi, &x))
        return false;
    *out = (unsigned)x;
    return true;
}

bool pgf__docv_double(pgf__docv *v, const pgf_doc *n, const char *key, double lo, double hi,
                      double *out)
{
    if (n->kind != PGF_DOC_SCALAR || n->stype == PGF_DOC_STRING || pgf__docv_is_null(n))
        return pgf__docv_err(v, n, "'%s' must be a number in [%g, %g]", key, lo, hi);
    char *end;
    double x = strtod(n->text, &end);
    if (*end != '\0' || n->text[0] == '\0' || isnan(x))
        return pgf__docv_err(v, n, "'%s' must be a number in [%g, %g], got '%s'", key, lo, hi,
                             n->text);
    if (x < lo || x > hi)
        return pgf__docv_err(v, n, "'%s' out of range: %g (expected %g..%g)", key, x, lo, hi);
    *out = x;
    return true;
}

bool pgf__docv_bool(pgf__docv *v, const pgf_doc *n, const char *key, bool *out)
{
    if (n->kind == PGF_DOC_SCALAR && n->stype != PGF_DOC_STRING) {
        if (strcmp(n->text, "true") == 0 || strcmp(n->text, "yes") == 0) {
            *out = true;
            return true;
        }
        if (strcmp(n->text, "false") == 0 || strcmp(n->text, "no") == 0) {
            *out = false;
            return true;
        }
    }
    return pgf__docv_err(v, n, "'%s' must be true or false", key);
}

void pgf__docv_yaml_quote(FILE *f, const char *s)
{
    /* JSON string syntax is valid YAML and escapes everything. */
    json_t *j = json_string(s ? s : "");
    char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;
    fputs(t ? t : "\"\"", f);
    free(t);
    json_decref(j);
}
