/* tree.c - YAML (libyaml events) and JSON (jansson) into one neutral tree.
 *
 * The validator (rules.c) only ever reads this tree, so both syntaxes get
 * the same checks and the same messages. YAML keeps line:col for every key
 * and value; JSON has none. Rejected here: YAML aliases (no sharing, so no
 * exponential expansion), non-scalar map keys, duplicate keys, more than
 * one document, nesting deeper than MAX_DEPTH. Not done here: any meaning.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "fault_int.h"

#define MAX_DEPTH 32

void pgf_doc_free(pgf_doc *n)
{
    if (n == NULL)
        return;
    for (size_t i = 0; i < n->n; i++) {
        pgf_doc_free(n->kids[i]);
        if (n->keys != NULL)
            free(n->keys[i]);
    }
    free(n->kids);
    free(n->keys);
    free(n->key_line);
    free(n->key_col);
    free(n->text);
    free(n);
}

static pgf_doc *node_new(pgf_doc_kind kind, int line, int col)
{
    pgf_doc *n = calloc(1, sizeof *n);
    if (n == NULL)
        return NULL;
    n->kind = kind;
    n->line = line;
    n->col = col;
    return n;
}

/* Append a child (and, for maps, its key). Takes `kid` and `key`. */
/* Arrays grow to the next power of two: one realloc per child made a
 * 5,000-rule list quadratic (issue 11: a bulk install stalled the loop). */
static size_t grown(size_t n)
{
    size_t c = 1;
    while (c < n)
        c <<= 1;
    return c;
}

static int node_add(pgf_doc *n, char *key, int kl, int kc, pgf_doc *kid)
{
    size_t m = n->n + 1;
    if (n->n > 0 && m <= grown(n->n)) {
        /* room left: the arrays already hold grown(n->n) slots */
        if (n->kind == PGF_DOC_MAP) {
            n->keys[n->n] = key;
            n->key_line[n->n] = kl;
            n->key_col[n->n] = kc;
        }
        n->kids[n->n] = kid;
        n->n = m;
        return 0;
    }
    m = grown(m); /* capacity */
    pgf_doc **kids = realloc(n->kids, m * sizeof *kids);
    if (kids == NULL)
        goto fail;
    n->kids = kids;
    if (n->kind == PGF_DOC_MAP) {
        char **keys = realloc(n->keys, m * sizeof *keys);
        if (keys == NULL)
            goto fail;
        n->keys = keys;
        int *ls = realloc(n->key_line, m * sizeof *ls);
        if (ls == NULL)
            goto fail;
        n->key_line = ls;
        int *cs = realloc(n->key_col, m * sizeof *cs);
        if (cs == NULL)
            goto fail;
        n->key_col = cs;
        keys[n->n] = key;
        ls[n->n] = kl;
        cs[n->n] = kc;
    }
    kids[n->n] = kid;
    n->n++;
    return 0;
fail:
    free(key);
    pgf_doc_free(kid);
    return PGF_ENOMEM;
}

static int map_has_key(const pgf_doc *n, const char *key)
{
    for (size_t i = 0; i < n->n; i++)
        if (strcmp(n->keys[i], key) == 0)
            return (int)i;
    return -1;
}

/* ---- YAML ------------------------------------------------------------- */

struct yctx {
    yaml_parser_t p;
    const char *source;
    char *err;
    size_t errlen;
};

static void yerr_at(struct yctx *y, const yaml_mark_t *m, const char *what)
{
    snprintf(y->err, y->errlen, "%s:%zu:%zu: %s", y->source, m->line + 1, m->column + 1, what);
}

static bool ynext(struct yctx *y, yaml_event_t *ev)
{
    if (yaml_parser_parse(&y->p, ev))
        return true;
    const char *prob = y->p.problem ? y->p.problem : "malformed YAML";
    char msg[256];
    if (y->p.context != NULL)
        snprintf(msg, sizeof msg, "YAML syntax error: %s %s", prob, y->p.context);
    else
        snprintf(msg, sizeof msg, "YAML syntax error: %s", prob);
    yaml_mark_t m = y->p.problem_mark;
    yerr_at(y, &m, msg);
    return false;
}

static pgf_doc *yparse_node(struct yctx *y, yaml_event_t *ev, int depth);

/* Builds the collection whose start event is *ev (already consumed). */
static pgf_doc *yparse_collection(struct yctx *y, yaml_event_t *start, int depth)
{
    bool is_map = start->type == YAML_MAPPING_START_EVENT;
    pgf_doc *n = node_new(is_map ? PGF_DOC_MAP : PGF_DOC_SEQ, (int)start->start_mark.line + 1,
                          (int)start->start_mark.column + 1);
    if (n == NULL) {
        snprintf(y->err, y->errlen, "%s: out of memory", y->source);
        return NULL;
    }
    if (depth > MAX_DEPTH) {
        yerr_at(y, &start->start_mark, "nesting too deep");
        goto fail;
    }
    for (;;) {
        yaml_event_t ev;
        if (!ynext(y, &ev))
            goto fail;
        if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return n;
        }
        if (!is_map) {
            pgf_doc *kid = yparse_node(y, &ev, depth + 1);
            yaml_event_delete(&ev);
            if (kid == NULL || node_add(n, NULL, 0, 0, kid) != 0)
                goto fail;
            continue;
        }
        /* map: a scalar key, then a value */
        if (ev.type != YAML_SCALAR_EVENT) {
            yerr_at(y, &ev.start_mark, "a map key must be a plain name");
            yaml_event_delete(&ev);
            goto fail;
        }
        char *key = strndup((const char *)ev.data.scalar.value, ev.data.scalar.length);
        int kl = (int)ev.start_mark.line + 1, kc = (int)ev.start_mark.column + 1;
        if (key != NULL && map_has_key(n, key) >= 0) {
            char msg[200];
            snprintf(msg, sizeof msg, "duplicate key '%.100s'", key);
            yerr_at(y, &ev.start_mark, msg);
            free(key);
            yaml_event_delete(&ev);
            goto fail;
        }
        yaml_event_delete(&ev);
        if (key == NULL) {
            snprintf(y->err, y->errlen, "%s: out of memory", y->source);
            goto fail;
        }
        if (!ynext(y, &ev)) {
            free(key);
            goto fail;
        }
        pgf_doc *kid = yparse_node(y, &ev, depth + 1);
        yaml_event_delete(&ev);
        if (kid == NULL) {
            free(key);
            goto fail;
        }
        if (node_add(n, key, kl, kc, kid) != 0)
            goto fail;
    }
fail:
    pgf_doc_free(n);
    return NULL;
}

static pgf_doc *yparse_node(struct yctx *y, yaml_event_t *ev, int depth)
{
    switch (ev->type) {
    case YAML_SCALAR_EVENT: {
        pgf_doc *n =
            node_new(PGF_DOC_SCALAR, (int)ev->start_mark.line + 1, (int)ev->start_mark.column + 1);
        if (n == NULL)
            break;
        n->text = strndup((const char *)ev->data.scalar.value, ev->data.scalar.length);
        if (n->text == NULL) {
            pgf_doc_free(n);
            break;
        }
        if (ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
            n->stype = PGF_DOC_STRING;
        else if (strlen(n->text) != ev->data.scalar.length) {
            n->stype = PGF_DOC_STRING; /* embedded NUL: never a number */
        } else if (n->text[0] == '\0' || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0)
            n->stype = PGF_DOC_NULL;
        else
            n->stype = PGF_DOC_PLAIN;
        return n;
    }
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        return yparse_collection(y, ev, depth);
    case YAML_ALIAS_EVENT:
        yerr_at(y, &ev->start_mark, "YAML aliases (*name) are not supported in fault rules");
        return NULL;
    default:
        yerr_at(y, &ev->start_mark, "unexpected YAML event");
        return NULL;
    }
    snprintf(y->err, y->errlen, "%s: out of memory", y->source);
    return NULL;
}

pgf_doc *pgf_doc_from_yaml(const char *text, size_t len, const char *source, char *err,
                           size_t errlen)
{
    struct yctx y = {.source = source, .err = err, .errlen = errlen};
    pgf_doc *root = NULL;
    yaml_event_t ev;
    if (!yaml_parser_initialize(&y.p)) {
        snprintf(err, errlen, "%s: out of memory", source);
        return NULL;
    }
    yaml_parser_set_input_string(&y.p, (const unsigned char *)text, len);
    yaml_parser_set_encoding(&y.p, YAML_UTF8_ENCODING);
    /* STREAM-START, then DOCUMENT-START or STREAM-END (empty input) */
    if (!ynext(&y, &ev))
        goto fail;
    yaml_event_delete(&ev);
    if (!ynext(&y, &ev))
        goto fail;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = node_new(PGF_DOC_MAP, 1, 1); /* empty file: no rules */
        if (root == NULL)
            snprintf(err, errlen, "%s: out of memory", source);
        goto out;
    }
    yaml_event_delete(&ev);
    if (!ynext(&y, &ev))
        goto fail;
    root = yparse_node(&y, &ev, 0);
    yaml_event_delete(&ev);
    if (root == NULL)
        goto fail;
    if (!ynext(&y, &ev)) /* DOCUMENT-END */
        goto fail;
    yaml_event_delete(&ev);
    if (!ynext(&y, &ev))
        goto fail;
    if (ev.type != YAML_STREAM_END_EVENT) {
        yerr_at(&y, &ev.start_mark, "only one YAML document is allowed");
        yaml_event_delete(&ev);
        goto fail;
    }
    yaml_event_delete(&ev);
out:
    yaml_parser_delete(&y.p);
    return root;
fail:
    pgf_doc_free(root);
    yaml_parser_delete(&y.p);
    return NULL;
}

/* ---- JSON ------------------------------------------------------------- */

static pgf_doc *jconv(const json_t *j, int depth)
{
    pgf_doc *n = NULL;
    char num[64];
    if (depth > MAX_DEPTH)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        n = node_new(PGF_DOC_MAP, 0, 0);
        if (n == NULL)
            return NULL;
        const char *k;
        json_t *v;
        json_object_foreach((json_t *)j, k, v)
        {
            pgf_doc *kid = jconv(v, depth + 1);
            char *key = strdup(k);
            if (kid == NULL || key == NULL || node_add(n, key, 0, 0, kid) != 0) {
                if (kid == NULL || key == NULL) {
                    pgf_doc_free(kid);
                    free(key);
                }
                pgf_doc_free(n);
                return NULL;
            }
        }
        return n;
    }
    case JSON_ARRAY: {
        n = node_new(PGF_DOC_SEQ, 0, 0);
        if (n == NULL)
            return NULL;
        size_t i;
        json_t *v;
        json_array_foreach((json_t *)j, i, v)
        {
            pgf_doc *kid = jconv(v, depth + 1);
            if (kid == NULL || node_add(n, NULL, 0, 0, kid) != 0) {
                pgf_doc_free(n);
                return NULL;
            }
        }
        return n;
    }
    default:
        break;
    }
    n = node_new(PGF_DOC_SCALAR, 0, 0);
    if (n == NULL)
        return NULL;
    switch (json_typeof(j)) {
    case JSON_STRING:
        n->stype = PGF_DOC_STRING;
        n->text = strndup(json_string_value(j), json_string_length(j));
        break;
    case JSON_INTEGER:
        n->stype = PGF_DOC_INT;
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(j));
        n->text = strdup(num);
        break;
    case JSON_REAL:
        n->stype = PGF_DOC_REAL;
        snprintf(num, sizeof num, "%.17g", json_real_value(j));
        n->text = strdup(num);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        n->stype = PGF_DOC_BOOL;
        n->text = strdup(json_is_true(j) ? "true" : "false");
        break;
    default:
        n->stype = PGF_DOC_NULL;
        n->text = strdup("null");
        break;
    }
    if (n->text == NULL) {
        pgf_doc_free(n);
        return NULL;
    }
    return n;
}

pgf_doc *pgf_doc_from_json(const char *text, size_t len, const char *source, char *err,
                           size_t errlen)
{
    json_error_t je;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
    if (j == NULL) {
        snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", source, je.line, je.column, je.text);
        return NULL;
    }
    pgf_doc *n = jconv(j, 0);
    json_decref(j);
    if (n == NULL)
        snprintf(err, errlen, "%s: JSON nested too deeply or out of memory", source);
    return n;
}

const pgf_doc *pgf_doc_get(const pgf_doc *m, const char *key)
{
    if (m == NULL || m->kind != PGF_DOC_MAP)
        return NULL;
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return m->kids[i];
    return NULL;
}
