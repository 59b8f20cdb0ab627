/* catalog.c - PostgreSQL 15's recorded answers to the statements application
 * stacks send on connect and first use (SQLAlchemy's dialects, asyncpg's and
 * psycopg's type introspection, pgjdbc, node-postgres, knex, Sequelize).
 *
 * The data are the golden files of tests/data/introspection/, written by
 * scripts/capture-introspection against a real PostgreSQL 15 and compiled in
 * by fakes/server/CMakeLists.txt; nothing here is typed by hand. They are
 * parsed once (jansson) into an immutable table that every thread reads.
 *
 * Matching (docs/introspection.md): the normalized statement text, then the
 * parameter values exactly as recorded. A statement recorded with
 * "per_element": k (an oid[] parameter, asyncpg's introspection) is answered
 * for any set of built-in types as the union of the single-type answers,
 * duplicates dropped, ordered by "merge_order_desc" (as the query's own
 * ORDER BY ... DESC does). What is not recorded is not answered here: sql.c
 * keeps its error.
 */
#include <ctype.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/log.h"
#include "sql.h"

typedef struct pgf__builtin_text {
    const char *name;
    const char *text;
} pgf__builtin_text;
extern const pgf__builtin_text pgf__introspection_files[];

typedef struct cat_answer {
    char **params; /* NULL entries: SQL NULL */
    int nparams;
    char *sqlstate, *message; /* an ERROR answer when sqlstate != NULL */
    char tag[32];
    int nrows;
    pgf_sql_value **rows;
} cat_answer;

typedef struct cat_entry {
    char *norm;
    uint32_t *ptypes;
    int nptypes;
    pgf_col *cols;
    int ncols;
    cat_answer *answers;
    int nanswers;
    int per_element; /* 1-based parameter answered element by element; 0 none */
    int order_col;   /* column the merged rows are ordered by (descending); -1 none */
} cat_entry;

static cat_entry *entries;
static int nentries;
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* Out of memory while loading: the entry is skipped (and what it had
 * allocated stays: the catalog lives as long as the process). */
static char *dup(const char *s)
{
    return strdup(s != NULL ? s : "");
}

static void *alloc(size_t n, size_t size)
{
    return calloc(n ? n : 1, size);
}

static int hexval(char c)
{
    return isdigit((unsigned char)c) ? c - '0' : (tolower((unsigned char)c) - 'a' + 10);
}

static bool load_value(json_t *cell, pgf_sql_value *v)
{
    memset(v, 0, sizeof *v);
    if (json_is_null(cell))
        return true;
    json_t *t = json_array_get(cell, 0), *b = json_array_get(cell, 1);
    if (!json_is_string(t) || !json_is_string(b))
        return false;
    v->tlen = (int32_t)json_string_length(t);
    v->text = dup(json_string_value(t));
    if (v->text == NULL)
        return false;
    const char *hex = json_string_value(b);
    size_t hl = strlen(hex);
    uint8_t *bin = alloc(hl / 2 + 1, 1);
    if (bin == NULL)
        return false;
    for (size_t i = 0; i + 1 < hl; i += 2)
        bin[i / 2] = (uint8_t)(hexval(hex[i]) << 4 | hexval(hex[i + 1]));
    v->bin = bin;
    v->blen = (int32_t)(hl / 2);
    return true;
}

static bool load_answer(json_t *a, int ncols, cat_answer *out)
{
    json_t *params = json_object_get(a, "params");
    out->nparams = (int)json_array_size(params);
    out->params = alloc((size_t)out->nparams, sizeof *out->params);
    if (out->params == NULL)
        return false;
    for (int i = 0; i < out->nparams; i++) {
        json_t *p = json_array_get(params, (size_t)i);
        out->params[i] = json_is_string(p) ? dup(json_string_value(p)) : NULL;
        if (json_is_string(p) && out->params[i] == NULL)
            return false;
    }
    json_t *err = json_object_get(a, "error");
    if (err != NULL) {
        out->sqlstate = dup(json_string_value(json_object_get(err, "sqlstate")));
        out->message = dup(json_string_value(json_object_get(err, "message")));
        return out->sqlstate != NULL && out->message != NULL;
    }
    snprintf(out->tag, sizeof out->tag, "%s",
             json_string_value(json_object_get(a, "tag"))
                 ? json_string_value(json_object_get(a, "tag"))
                 : "SELECT 0");
    json_t *rows = json_object_get(a, "rows");
    out->nrows = (int)json_array_size(rows);
    out->rows = alloc((size_t)out->nrows, sizeof *out->rows);
    if (out->rows == NULL)
        return false;
    for (int i = 0; i < out->nrows; i++) {
        json_t *row = json_array_get(rows, (size_t)i);
        if ((int)json_array_size(row) != ncols)
            return false;
        out->rows[i] = alloc((size_t)ncols, sizeof *out->rows[i]);
        if (out->rows[i] == NULL)
            return false;
        for (int j = 0; j < ncols; j++)
            if (!load_value(json_array_get(row, (size_t)j), &out->rows[i][j]))
                return false;
    }
    return true;
}

static bool load_entry(json_t *doc, cat_entry *e)
{
    const char *sql = json_string_value(json_object_get(doc, "sql"));
    json_t *cols = json_object_get(doc, "columns"), *pt = json_object_get(doc, "param_types");
    json_t *answers = json_object_get(doc, "answers");
    if (sql == NULL || !json_is_array(cols) || !json_is_array(answers))
        return false;
    e->norm = pgf_sql_normalize(sql, strlen(sql));
    if (e->norm == NULL)
        return false;
    e->nptypes = (int)json_array_size(pt);
    e->ptypes = alloc((size_t)e->nptypes, sizeof *e->ptypes);
    if (e->ptypes == NULL)
        return false;
    for (int i = 0; i < e->nptypes; i++)
        e->ptypes[i] = (uint32_t)json_integer_value(json_array_get(pt, (size_t)i));
    e->ncols = (int)json_array_size(cols);
    if (e->ncols > PGF_SQL_MAX_TABLE_COLS)
        return false;
    e->cols = alloc((size_t)e->ncols, sizeof *e->cols);
    if (e->cols == NULL)
        return false;
    e->order_col = -1;
    const char *order = json_string_value(json_object_get(doc, "merge_order_desc"));
    for (int i = 0; i < e->ncols; i++) {
        json_t *c = json_array_get(cols, (size_t)i);
        pgf_col *col = &e->cols[i];
        col->name = dup(json_string_value(json_object_get(c, "name")));
        if (col->name == NULL)
            return false;
        col->table_oid = (uint32_t)json_integer_value(json_object_get(c, "table_oid"));
        col->attnum = (int16_t)json_integer_value(json_object_get(c, "attnum"));
        col->type_oid = (uint32_t)json_integer_value(json_object_get(c, "type_oid"));
        col->typlen = (int16_t)json_integer_value(json_object_get(c, "typlen"));
        col->typmod = (int32_t)json_integer_value(json_object_get(c, "typmod"));
        if (order != NULL && strcmp(order, col->name) == 0)
            e->order_col = i;
    }
    e->per_element = (int)json_integer_value(json_object_get(doc, "per_element"));
    e->nanswers = (int)json_array_size(answers);
    e->answers = alloc((size_t)e->nanswers, sizeof *e->answers);
    if (e->answers == NULL)
        return false;
    for (int i = 0; i < e->nanswers; i++)
        if (!load_answer(json_array_get(answers, (size_t)i), e->ncols, &e->answers[i]))
            return false;
    return true;
}

static void load(void)
{
    int n = 0;
    while (pgf__introspection_files[n].name != NULL)
        n++;
    entries = alloc((size_t)n, sizeof *entries);
    if (entries == NULL) {
        pgf_log_error("introspection catalog: out of memory; no recorded answers");
        return;
    }
    for (int i = 0; i < n; i++) {
        json_error_t jerr;
        json_t *doc = json_loads(pgf__introspection_files[i].text, 0, &jerr);
        if (doc == NULL || !load_entry(doc, &entries[nentries])) {
            /* Compiled-in data the build produced: a bad file is a bug. */
            pgf_log_error("introspection catalog: tests/data/introspection/%s.json:%d: %s",
                          pgf__introspection_files[i].name, doc == NULL ? jerr.line : 0,
                          doc == NULL ? jerr.text : "out of memory or unexpected layout");
            json_decref(doc);
            continue;
        }
        nentries++;
        json_decref(doc);
    }
}

static const cat_entry *find(const char *norm)
{
    pthread_once(&load_once, load);
    for (int i = 0; i < nentries; i++)
        if (strcmp(entries[i].norm, norm) == 0)
            return &entries[i];
    return NULL;
}

int pgf__catalog_count(void)
{
    pthread_once(&load_once, load);
    return nentries;
}

uint32_t pgf__catalog_param_type(const char *norm, int n)
{
    const cat_entry *e = find(norm);
    return e != NULL && n >= 1 && n <= e->nptypes ? e->ptypes[n - 1] : 0;
}

static bool same_params(const cat_answer *a, const char *const *params, int nparams, int skip)
{
    if (a->nparams != nparams)
        return false;
    for (int i = 0; i < nparams; i++) {
        if (i == skip)
            continue;
        const char *p = params[i], *q = a->params[i];
        if ((p == NULL) != (q == NULL) || (p != NULL && strcmp(p, q) != 0))
            return false;
    }
    return true;
}

static void answer_rows(const cat_entry *e, const cat_answer *a, pgf_sql_result *r)
{
    r->kind = PGF_SQL_ROWS;
    r->xcols = e->cols;
    r->nxcols = e->ncols;
    r->xrows = (const pgf_sql_value *const *)a->rows;
    r->nxrows = a->nrows;
    snprintf(r->tag, sizeof r->tag, "%s", a->tag);
}

static bool same_row(const pgf_sql_value *a, const pgf_sql_value *b, int ncols)
{
    for (int j = 0; j < ncols; j++) {
        if ((a[j].text == NULL) != (b[j].text == NULL))
            return false;
        if (a[j].text != NULL &&
            (a[j].tlen != b[j].tlen || memcmp(a[j].text, b[j].text, (size_t)a[j].tlen) != 0))
            return false;
    }
    return true;
}

/* "{1007,3904}" -> the union of the answers recorded for "{1007}" and
 * "{3904}". Returns false if an element was not recorded. */
static bool merge_elements(const cat_entry *e, const char *const *params, int nparams,
                           pgf_sql_result *r)
{
    int k = e->per_element - 1;
    const char *set = params[k];
    size_t sl = strlen(set);
    if (sl < 2 || set[0] != '{' || set[sl - 1] != '}')
        return false;
    /* At most every recorded answer's rows. */
    size_t cap = 0;
    for (int i = 0; i < e->nanswers; i++)
        cap += (size_t)e->answers[i].nrows;
    const pgf_sql_value **rows = calloc(cap ? cap : 1, sizeof *rows);
    if (rows == NULL)
        return false;
    size_t n = 0;
    const char *p = set + 1;
    while (*p != '}') {
        const char *q = p;
        while (*q != ',' && *q != '}')
            q++;
        char want[40];
        snprintf(want, sizeof want, "{%.*s}", (int)(q - p < 30 ? q - p : 30), p);
        const cat_answer *a = NULL;
        for (int i = 0; i < e->nanswers && a == NULL; i++)
            if (e->answers[i].sqlstate == NULL && e->answers[i].params[k] != NULL &&
                strcmp(e->answers[i].params[k], want) == 0 &&
                same_params(&e->answers[i], params, nparams, k))
                a = &e->answers[i];
        if (a == NULL) {
            free(rows);
            return false;
        }
        for (int i = 0; i < a->nrows; i++) {
            bool dup = false;
            for (size_t j = 0; j < n && !dup; j++)
                dup = same_row(rows[j], a->rows[i], e->ncols);
            if (!dup)
                rows[n++] = a->rows[i];
        }
        p = *q == ',' ? q + 1 : q;
    }
    if (e->order_col >= 0) { /* stable insertion sort, descending */
        int c = e->order_col;
        for (size_t i = 1; i < n; i++) {
            const pgf_sql_value *x = rows[i];
            long xv = x[c].text ? strtol(x[c].text, NULL, 10) : 0;
            size_t j = i;
            while (j > 0 &&
                   (rows[j - 1][c].text ? strtol(rows[j - 1][c].text, NULL, 10) : 0) < xv) {
                rows[j] = rows[j - 1];
                j--;
            }
            rows[j] = x;
        }
    }
    r->kind = PGF_SQL_ROWS;
    r->xcols = e->cols;
    r->nxcols = e->ncols;
    r->xrows = (const pgf_sql_value *const *)rows;
    r->nxrows = (int)n;
    r->xalloc = rows;
    snprintf(r->tag, sizeof r->tag, "SELECT %zu", n);
    return true;
}

bool pgf__catalog_answer(const char *norm, const char *const *params, int nparams,
                         bool describe_only, pgf_sql_result *r)
{
    const cat_entry *e = find(norm);
    if (e == NULL)
        return false;
    memset(r, 0, sizeof *r);
    if (describe_only) {
        r->kind = PGF_SQL_ROWS;
        r->xcols = e->cols;
        r->nxcols = e->ncols;
        return true;
    }
    for (int i = 0; i < e->nanswers; i++) {
        const cat_answer *a = &e->answers[i];
        if (!same_params(a, params, nparams, -1))
            continue;
        if (a->sqlstate != NULL) {
            r->kind = PGF_SQL_ERROR;
            snprintf(r->err_message, sizeof r->err_message, "%s", a->message);
            r->error.severity = "ERROR";
            r->error.sqlstate = a->sqlstate;
            r->error.message = r->err_message;
            return true;
        }
        answer_rows(e, a, r);
        return true;
    }
    if (e->per_element >= 1 && e->per_element <= nparams && params[e->per_element - 1] != NULL &&
        merge_elements(e, params, nparams, r))
        return true;
    r->kind = PGF_SQL_ERROR;
    snprintf(r->err_message, sizeof r->err_message,
             "pgfault fake server has no recorded answer for this statement with these "
             "parameters");
    r->error.severity = "ERROR";
    r->error.sqlstate = "0A000";
    r->error.message = r->err_message;
    r->error.hint = "The recorded answers are in tests/data/introspection "
                    "(scripts/capture-introspection).";
    return true;
}
