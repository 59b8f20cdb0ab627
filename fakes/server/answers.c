/* answers.c - canned answers for an application's own statements (see
 * include/pgfault/answers.h and docs/introspection.md).
 *
 * Validated once, from the document tree (so every mistake is reported as
 * file:line:col), into an immutable list the connections only read. Values
 * are checked against their column's type here, so what goes on the wire is
 * always something PostgreSQL could have sent; binary forms are derived by
 * sql.c (jsonb's is built here). Only types whose binary form the fake can
 * produce are accepted, because asyncpg and pgjdbc ask for binary results.
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <regex.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgfault/answers.h"
#include "sql.h"

typedef struct answer {
    char *source; /* the statement or the regex as written */
    int *types;   /* index into types[] per column */
    char *norm;   /* exact statement, normalized; NULL when regex */
    regex_t re;
    bool has_re;
    char sqlstate[6];
    char *message; /* an ERROR answer when non-NULL */
    pgf_col *cols;
    int ncols;
    pgf_sql_value **rows;
    int nrows;
    uint64_t delay_ms;
    char tag[32];
} answer;

struct pgf_answers {
    answer *v;
    int n;
};

static const struct {
    const char *name;
    uint32_t oid;
    int16_t typlen;
    char kind; /* 'i' integer, 'f' float, 'b' bool, 't' text, 'j' jsonb */
    long long min, max;
} types[] = {
    {"bool", 16, 1, 'b', 0, 0},
    {"boolean", 16, 1, 'b', 0, 0},
    {"int2", 21, 2, 'i', -32768, 32767},
    {"smallint", 21, 2, 'i', -32768, 32767},
    {"int4", 23, 4, 'i', -2147483648LL, 2147483647LL},
    {"int", 23, 4, 'i', -2147483648LL, 2147483647LL},
    {"integer", 23, 4, 'i', -2147483648LL, 2147483647LL},
    {"int8", 20, 8, 'i', INT64_MIN, INT64_MAX},
    {"bigint", 20, 8, 'i', INT64_MIN, INT64_MAX},
    {"oid", 26, 4, 'i', 0, 4294967295LL},
    {"float4", 700, 4, 'f', 0, 0},
    {"real", 700, 4, 'f', 0, 0},
    {"float8", 701, 8, 'f', 0, 0},
    {"double precision", 701, 8, 'f', 0, 0},
    {"text", 25, -1, 't', 0, 0},
    {"varchar", 1043, -1, 't', 0, 0},
    {"name", 19, 64, 't', 0, 0},
    {"json", 114, -1, 't', 0, 0},
    {"jsonb", 3802, -1, 'j', 0, 0},
};
#define NTYPES (sizeof types / sizeof types[0])
#define TYPE_LIST                                                                             \
    "bool, int2, int4, int8, oid, float4, float8, text, varchar, name, json, jsonb (and the " \
    "aliases boolean, smallint, int, integer, bigint, real, double precision)"

typedef struct vctx {
    const char *source;
    char *err;
    size_t errlen;
} vctx;

static int verr(vctx *v, const pgf_doc *at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int verr(vctx *v, const pgf_doc *at, const char *fmt, ...)
{
    int n =
        snprintf(v->err, v->errlen, "%s:%d:%d: ", v->source, at ? at->line : 0, at ? at->col : 0);
    if (n < 0 || (size_t)n >= v->errlen)
        return PGF_EPARSE;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->err + n, v->errlen - (size_t)n, fmt, ap);
    va_end(ap);
    return PGF_EPARSE;
}

/* An error at a map key: "unknown key 'K' <what>". */
static int key_err(vctx *v, const pgf_doc *m, size_t i, const char *what)
{
    snprintf(v->err, v->errlen, "%s:%d:%d: unknown key '%s' %s", v->source, m->key_line[i],
             m->key_col[i], m->keys[i], what);
    return PGF_EPARSE;
}

static bool is_null(const pgf_doc *d)
{
    return d->kind == PGF_DOC_SCALAR &&
           (d->stype == PGF_DOC_NULL ||
            (d->stype == PGF_DOC_PLAIN &&
             (strcmp(d->text, "null") == 0 || strcmp(d->text, "~") == 0 || d->text[0] == '\0')));
}

static const char *scalar(vctx *v, const pgf_doc *d, const char *what, int *rc)
{
    if (d == NULL || d->kind != PGF_DOC_SCALAR || is_null(d)) {
        *rc = verr(v, d, "%s must be a string", what);
        return NULL;
    }
    return d->text;
}

/* Check one value against its column type; fill the cell (owned copies). */
static int value(vctx *v, const pgf_doc *d, int t, pgf_sql_value *out)
{
    memset(out, 0, sizeof *out);
    if (d->kind != PGF_DOC_SCALAR)
        return verr(v, d, "a value must be a scalar (or null), not a %s",
                    d->kind == PGF_DOC_MAP ? "map" : "list");
    if (is_null(d))
        return 0;
    const char *text = d->text;
    switch (types[t].kind) {
    case 'i': {
        char *end;
        errno = 0;
        long long x = strtoll(d->text, &end, 10);
        if (d->text[0] == '\0' || *end != '\0' || errno != 0 || x < types[t].min ||
            x > types[t].max)
            return verr(v, d, "'%s' is not a valid %s value", d->text, types[t].name);
        break;
    }
    case 'f': {
        char *end;
        strtod(d->text, &end);
        if (d->text[0] == '\0' || *end != '\0')
            return verr(v, d, "'%s' is not a valid %s value", d->text, types[t].name);
        break;
    }
    case 'b': {
        static const char *const yes[] = {"true", "t", "yes", "on", "1"};
        static const char *const no[] = {"false", "f", "no", "off", "0"};
        text = NULL;
        for (size_t i = 0; i < 5 && text == NULL; i++) {
            if (strcasecmp(d->text, yes[i]) == 0)
                text = "t";
            else if (strcasecmp(d->text, no[i]) == 0)
                text = "f";
        }
        if (text == NULL)
            return verr(v, d, "'%s' is not a valid boolean value", d->text);
        break;
    }
    default:
        break;
    }
    out->text = strdup(text);
    if (out->text == NULL)
        return verr(v, d, "out of memory");
    out->tlen = (int32_t)strlen(text);
    if (types[t].kind == 'j') { /* jsonb binary: version 1, then the text */
        uint8_t *b = malloc((size_t)out->tlen + 1);
        if (b == NULL)
            return verr(v, d, "out of memory");
        b[0] = 1;
        memcpy(b + 1, text, (size_t)out->tlen);
        out->bin = b;
        out->blen = out->tlen + 1;
    }
    return 0;
}

static int columns(vctx *v, const pgf_doc *seq, answer *a, int *tix)
{
    if (seq->kind != PGF_DOC_SEQ || seq->n == 0)
        return verr(v, seq, "columns must be a non-empty list of {name, type}");
    a->ncols = (int)seq->n;
    a->cols = calloc(seq->n, sizeof *a->cols);
    if (a->cols == NULL)
        return verr(v, seq, "out of memory");
    for (size_t i = 0; i < seq->n; i++) {
        const pgf_doc *c = seq->kids[i];
        if (c->kind != PGF_DOC_MAP)
            return verr(v, c, "a column must be a map with name and type");
        for (size_t k = 0; k < c->n; k++)
            if (strcmp(c->keys[k], "name") != 0 && strcmp(c->keys[k], "type") != 0)
                return key_err(v, c, k, "in a column (expected name, type)");
        int rc = 0;
        const char *name =
            scalar(v, pgf_doc_get(c, "name") ? pgf_doc_get(c, "name") : c, "a column's name", &rc);
        if (name == NULL)
            return rc;
        const pgf_doc *td = pgf_doc_get(c, "type");
        const char *type = scalar(v, td ? td : c, "a column's type", &rc);
        if (type == NULL)
            return rc;
        int t = -1;
        for (size_t k = 0; k < NTYPES && t < 0; k++)
            if (strcasecmp(type, types[k].name) == 0)
                t = (int)k;
        if (t < 0)
            return verr(v, td, "unsupported column type '%s' (supported: " TYPE_LIST ")", type);
        tix[i] = t;
        pgf_col *col = &a->cols[i];
        col->name = strdup(name);
        if (col->name == NULL)
            return verr(v, c, "out of memory");
        col->type_oid = types[t].oid;
        col->typlen = types[t].typlen;
        col->typmod = -1;
    }
    return 0;
}

static int rows(vctx *v, const pgf_doc *seq, answer *a, const int *tix)
{
    if (seq->kind != PGF_DOC_SEQ)
        return verr(v, seq, "rows must be a list of lists");
    a->nrows = (int)seq->n;
    a->rows = calloc(seq->n ? seq->n : 1, sizeof *a->rows);
    if (a->rows == NULL)
        return verr(v, seq, "out of memory");
    for (size_t i = 0; i < seq->n; i++) {
        const pgf_doc *r = seq->kids[i];
        if (r->kind != PGF_DOC_SEQ)
            return verr(v, r, "a row must be a list of values");
        if ((int)r->n != a->ncols)
            return verr(v, r, "this row has %zu values for %d columns", r->n, a->ncols);
        a->rows[i] = calloc((size_t)a->ncols, sizeof *a->rows[i]);
        if (a->rows[i] == NULL)
            return verr(v, r, "out of memory");
        for (size_t j = 0; j < r->n; j++) {
            int rc = value(v, r->kids[j], tix[j], &a->rows[i][j]);
            if (rc != 0)
                return rc;
        }
    }
    snprintf(a->tag, sizeof a->tag, "SELECT %d", a->nrows);
    return 0;
}

static int error(vctx *v, const pgf_doc *m, answer *a)
{
    if (m->kind != PGF_DOC_MAP)
        return verr(v, m, "error must be a map with sqlstate and message");
    for (size_t k = 0; k < m->n; k++)
        if (strcmp(m->keys[k], "sqlstate") != 0 && strcmp(m->keys[k], "message") != 0)
            return key_err(v, m, k, "in error (expected sqlstate, message)");
    int rc = 0;
    const pgf_doc *sd = pgf_doc_get(m, "sqlstate"), *md = pgf_doc_get(m, "message");
    const char *st = scalar(v, sd ? sd : m, "error.sqlstate", &rc);
    if (st == NULL)
        return rc;
    bool ok = strlen(st) == 5;
    for (int i = 0; ok && i < 5; i++)
        ok = isdigit((unsigned char)st[i]) || isupper((unsigned char)st[i]);
    if (!ok)
        return verr(v, sd, "sqlstate '%s' is not five digits or upper-case letters", st);
    const char *msg = scalar(v, md ? md : m, "error.message", &rc);
    if (msg == NULL)
        return rc;
    memcpy(a->sqlstate, st, 6);
    a->message = strdup(msg);
    return a->message != NULL ? 0 : verr(v, m, "out of memory");
}

static int item(vctx *v, const pgf_doc *m, answer *a)
{
    static const char *const keys[] = {"statement", "regex", "columns",
                                       "rows",      "error", "delay_ms"};
    if (m->kind != PGF_DOC_MAP)
        return verr(v, m,
                    "an answer must be a map (statement or regex, then columns and rows "
                    "or error)");
    for (size_t k = 0; k < m->n; k++) {
        bool known = false;
        for (size_t j = 0; j < sizeof keys / sizeof keys[0]; j++)
            known = known || strcmp(m->keys[k], keys[j]) == 0;
        if (!known)
            return key_err(v, m, k, "(expected statement, regex, columns, rows, error, delay_ms)");
    }
    const pgf_doc *st = pgf_doc_get(m, "statement"), *re = pgf_doc_get(m, "regex");
    const pgf_doc *cols = pgf_doc_get(m, "columns"), *rs = pgf_doc_get(m, "rows");
    const pgf_doc *err = pgf_doc_get(m, "error"), *delay = pgf_doc_get(m, "delay_ms");
    if ((st == NULL) == (re == NULL))
        return verr(v, st && re ? re : m, "an answer needs exactly one of statement or regex");
    if ((cols == NULL) == (err == NULL))
        return verr(v, cols && err ? err : m, "an answer needs exactly one of columns or error");
    if (rs != NULL && cols == NULL)
        return verr(v, rs, "rows need columns");
    int rc = 0;
    if (st != NULL) {
        const char *s = scalar(v, st, "statement", &rc);
        if (s == NULL)
            return rc;
        a->source = strdup(s);
        a->norm = pgf_sql_normalize(s, strlen(s));
        if (a->norm == NULL || a->source == NULL)
            return verr(v, st, "out of memory");
        if (a->norm[0] == '\0')
            return verr(v, st, "statement is empty");
    } else {
        const char *s = scalar(v, re, "regex", &rc);
        if (s == NULL)
            return rc;
        a->source = strdup(s);
        if (a->source == NULL)
            return verr(v, re, "out of memory");
        int e = regcomp(&a->re, s, REG_EXTENDED | REG_ICASE | REG_NOSUB);
        if (e != 0) {
            char msg[128];
            regerror(e, &a->re, msg, sizeof msg);
            return verr(v, re, "bad regular expression '%s': %s", s, msg);
        }
        a->has_re = true;
    }
    if (delay != NULL) {
        const char *s = scalar(v, delay, "delay_ms", &rc);
        if (s == NULL)
            return rc;
        char *end;
        errno = 0;
        unsigned long long ms = strtoull(s, &end, 10);
        if (s[0] == '\0' || s[0] == '-' || *end != '\0' || errno != 0 || ms > 3600000)
            return verr(v, delay, "delay_ms must be an integer from 0 to 3600000, not '%s'", s);
        if (err != NULL && ms > 0)
            return verr(v, delay, "delay_ms applies to answers with rows, not to errors");
        a->delay_ms = ms;
    }
    if (err != NULL)
        return error(v, err, a);
    int tix[64];
    if (cols->kind == PGF_DOC_SEQ && cols->n > sizeof tix / sizeof tix[0])
        return verr(v, cols, "at most %zu columns", sizeof tix / sizeof tix[0]);
    rc = columns(v, cols, a, tix);
    if (rc != 0)
        return rc;
    a->types = malloc((size_t)a->ncols * sizeof *a->types);
    if (a->types == NULL)
        return verr(v, cols, "out of memory");
    memcpy(a->types, tix, (size_t)a->ncols * sizeof *a->types);
    if (rs == NULL) {
        snprintf(a->tag, sizeof a->tag, "SELECT 0");
        return 0;
    }
    return rows(v, rs, a, tix);
}

int pgf_answers_from_doc(const pgf_doc *seq, const char *source, pgf_answers **out, char *err,
                         size_t errlen)
{
    vctx v = {source, err, errlen};
    *out = NULL;
    if (seq == NULL || seq->kind != PGF_DOC_SEQ)
        return verr(&v, seq,
                    "answers must be a list of {statement or regex, columns and rows "
                    "or error}");
    pgf_answers *a = calloc(1, sizeof *a);
    if (a == NULL || (a->v = calloc(seq->n ? seq->n : 1, sizeof *a->v)) == NULL) {
        free(a);
        return verr(&v, seq, "out of memory");
    }
    for (size_t i = 0; i < seq->n; i++) {
        a->n++;
        int rc = item(&v, seq->kids[i], &a->v[i]);
        if (rc != 0) {
            pgf_answers_free(a);
            return rc;
        }
    }
    *out = a;
    return 0;
}

int pgf_answers_load(const char *path, pgf_answers **out, char *err, size_t errlen)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return PGF_EIO;
    }
    char *text = NULL;
    size_t len = 0, cap = 0, n;
    int rc = 0;
    do {
        if (cap - len < 4096) {
            char *nt = cap > (16u << 20) ? NULL : realloc(text, cap ? cap * 2 : 8192);
            if (nt == NULL) {
                snprintf(err, errlen, "%s: too large or out of memory", path);
                rc = PGF_ENOMEM;
                goto done;
            }
            text = nt;
            cap = cap ? cap * 2 : 8192;
        }
        n = fread(text + len, 1, cap - len - 1, f);
        len += n;
    } while (n > 0);
    if (ferror(f)) {
        snprintf(err, errlen, "%s: read error", path);
        rc = PGF_EIO;
        goto done;
    }
    text[len] = '\0';
    pgf_doc *root = pgf_doc_from_yaml(text, len, path, err, errlen);
    if (root == NULL) {
        rc = PGF_EPARSE;
        goto done;
    }
    rc = pgf_answers_from_doc(root, path, out, err, errlen);
    pgf_doc_free(root);
done:
    free(text);
    fclose(f);
    return rc;
}

char *pgf_answers_to_json(const pgf_answers *a)
{
    json_t *list = json_array();
    for (int i = 0; list != NULL && i < a->n; i++) {
        const answer *x = &a->v[i];
        json_t *o = json_object();
        json_object_set_new(o, x->has_re ? "regex" : "statement", json_string(x->source));
        if (x->message != NULL) {
            json_t *e = json_object();
            json_object_set_new(e, "sqlstate", json_string(x->sqlstate));
            json_object_set_new(e, "message", json_string(x->message));
            json_object_set_new(o, "error", e);
        } else {
            json_t *cols = json_array(), *rows = json_array();
            for (int c = 0; c < x->ncols; c++) {
                json_t *col = json_object();
                json_object_set_new(col, "name", json_string(x->cols[c].name));
                json_object_set_new(col, "type", json_string(types[x->types[c]].name));
                json_array_append_new(cols, col);
            }
            for (int r = 0; r < x->nrows; r++) {
                json_t *row = json_array();
                for (int c = 0; c < x->ncols; c++)
                    json_array_append_new(row, x->rows[r][c].text != NULL
                                                   ? json_string(x->rows[r][c].text)
                                                   : json_null());
                json_array_append_new(rows, row);
            }
            json_object_set_new(o, "columns", cols);
            json_object_set_new(o, "rows", rows);
            if (x->delay_ms > 0)
                json_object_set_new(o, "delay_ms", json_integer((json_int_t)x->delay_ms));
        }
        json_array_append_new(list, o);
    }
    char *s = list != NULL ? json_dumps(list, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(list);
    return s;
}

int pgf_answers_count(const pgf_answers *a)
{
    return a != NULL ? a->n : 0;
}

void pgf_answers_free(pgf_answers *a)
{
    if (a == NULL)
        return;
    for (int i = 0; i < a->n; i++) {
        answer *x = &a->v[i];
        free(x->norm);
        free(x->source);
        free(x->types);
        if (x->has_re)
            regfree(&x->re);
        free(x->message);
        for (int c = 0; c < x->ncols && x->cols != NULL; c++)
            free((char *)x->cols[c].name);
        free(x->cols);
        for (int r = 0; r < x->nrows && x->rows != NULL; r++) {
            for (int c = 0; c < x->ncols && x->rows[r] != NULL; c++) {
                free((char *)x->rows[r][c].text);
                free((uint8_t *)x->rows[r][c].bin);
            }
            free(x->rows[r]);
        }
        free(x->rows);
    }
    free(a->v);
    free(a);
}

bool pgf__answers_match(const pgf_answers *a, const char *stmt, size_t len, const char *norm,
                        bool describe_only, pgf_sql_result *r)
{
    char *raw = NULL;
    for (int i = 0; i < a->n; i++) {
        const answer *x = &a->v[i];
        bool hit;
        if (x->has_re) {
            if (raw == NULL) {
                while (len > 0 && (stmt[len - 1] == ';' || isspace((unsigned char)stmt[len - 1])))
                    len--;
                raw = strndup(stmt, len);
                if (raw == NULL)
                    return false;
            }
            hit = regexec(&x->re, raw, 0, NULL, 0) == 0;
        } else {
            hit = strcmp(x->norm, norm) == 0;
        }
        if (!hit)
            continue;
        free(raw);
        memset(r, 0, sizeof *r);
        if (x->message != NULL) {
            if (describe_only) { /* the error comes at execution, as in PostgreSQL */
                r->kind = PGF_SQL_COMMAND;
                return true;
            }
            r->kind = PGF_SQL_ERROR;
            snprintf(r->err_message, sizeof r->err_message, "%s", x->message);
            r->error.severity = "ERROR";
            r->error.sqlstate = x->sqlstate;
            r->error.message = r->err_message;
            return true;
        }
        r->kind = x->delay_ms > 0 && !describe_only ? PGF_SQL_SLEEP : PGF_SQL_ROWS;
        r->sleep_ms = x->delay_ms;
        r->xcols = x->cols;
        r->nxcols = x->ncols;
        r->xrows = describe_only ? NULL : (const pgf_sql_value *const *)x->rows;
        r->nxrows = describe_only ? 0 : x->nrows;
        snprintf(r->tag, sizeof r->tag, "%s", x->tag);
        return true;
    }
    free(raw);
    return false;
}
