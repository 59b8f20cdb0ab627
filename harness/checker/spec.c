/* spec.c - parse and validate the state-machine spec JSON (see spec.h).
 *
 * States become indices (at most 64, so a set of states is one uint64_t
 * mask); operations keep their from/to/during masks; the transition table
 * becomes, per (operation, from state), the mask of allowed `to` states,
 * so every question the checker asks is O(1). Errors name the place:
 * "origin:line:col" for JSON syntax, "origin: operations[1] (\"open\"):
 * ..." for meaning (jansson keeps no positions for values).
 */
#include "pgfault/spec.h"
#include "pgfault/file.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct spec_state {
    char *name;
    bool terminal;
} spec_state;

typedef struct spec_op {
    char *name;
    uint64_t from; /* "*" expanded to every non-terminal state */
    uint64_t to;
    uint64_t during;
    bool preempts;
} spec_op;

struct pgf_spec {
    int initial;
    int nstates;
    spec_state *states;
    int nops;
    spec_op *ops;
    uint64_t *allow; /* [op * nstates + from] -> mask of `to` */
    char digest[65];
    /* "errors": a foreign session manager's own error names that mean
     * PGF_EILLEGAL_STATE ("refused") or PGF_ECANCELED ("canceled") */
    json_t *refused, *canceled;
};

static int serr(char *err, size_t errlen, const char *origin, const char *fmt, ...)
    PGF_PRINTF(4, 5);
static int serr(char *err, size_t errlen, const char *origin, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pgf_err_vprintf(err, errlen, PGF_EPARSE, origin, fmt, ap);
    va_end(ap);
    return rc;
}

void pgf_spec_free(pgf_spec *s)
{
    if (s == NULL)
        return;
    for (int i = 0; i < s->nstates; i++)
        free(s->states[i].name);
    for (int i = 0; i < s->nops; i++)
        free(s->ops[i].name);
    free(s->states);
    free(s->ops);
    free(s->allow);
    json_decref(s->refused);
    json_decref(s->canceled);
    free(s);
}

int pgf_spec_state_find(const pgf_spec *s, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < s->nstates; i++)
        if (strcmp(s->states[i].name, name) == 0)
            return i;
    return -1;
}

int pgf_spec_op_find(const pgf_spec *s, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < s->nops; i++)
        if (strcmp(s->ops[i].name, name) == 0)
            return i;
    return -1;
}

static uint64_t nonterminal_mask(const pgf_spec *s)
{
    uint64_t m = 0;
    for (int i = 0; i < s->nstates; i++)
        if (!s->states[i].terminal)
            m |= 1ULL << i;
    return m;
}

/* A list of state names into a mask; `star` allows "*" (non-terminal).
 * `what` is the place for messages. */
static int state_list(pgf_spec *s, json_t *arr, bool star, bool nonempty, uint64_t *mask,
                      const char *origin, const char *what, char *err, size_t errlen)
{
    *mask = 0;
    if (!json_is_array(arr))
        return serr(err, errlen, origin, "%s must be an array of state names", what);
    if (nonempty && json_array_size(arr) == 0)
        return serr(err, errlen, origin, "%s is empty", what);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return serr(err, errlen, origin, "%s[%zu] must be a string", what, i);
        const char *name = json_string_value(v);
        if (strcmp(name, "*") == 0) {
            if (!star)
                return serr(err, errlen, origin, "%s: \"*\" is only allowed in \"from\"", what);
            *mask |= nonterminal_mask(s);
            continue;
        }
        int st = pgf_spec_state_find(s, name);
        if (st < 0)
            return serr(err, errlen, origin, "%s names unknown state \"%s\"", what, name);
        *mask |= 1ULL << st;
    }
    return 0;
}

static int parse_states(pgf_spec *s, json_t *root, const char *origin, char *err, size_t errlen)
{
    json_t *states = json_object_get(root, "states");
    if (!json_is_array(states) || json_array_size(states) == 0)
        return serr(err, errlen, origin, "\"states\" must be a non-empty array");
    if (json_array_size(states) > PGF_SPEC_MAX_STATES)
        return serr(err, errlen, origin, "too many states (%zu, at most %d)",
                    json_array_size(states), PGF_SPEC_MAX_STATES);
    s->states = calloc(json_array_size(states), sizeof *s->states);
    if (s->states == NULL)
        return PGF_ENOMEM;
    size_t i;
    json_t *v;
    bool any_terminal = false;
    json_array_foreach(states, i, v)
    {
        json_t *name = json_object_get(v, "name");
        json_t *term = json_object_get(v, "terminal");
        if (!json_is_object(v))
            return serr(err, errlen, origin, "states[%zu] must be an object", i);
        if (!json_is_string(name) || json_string_length(name) == 0)
            return serr(err, errlen, origin, "states[%zu]: \"name\" must be a non-empty string", i);
        const char *n = json_string_value(name);
        if (strcmp(n, "*") == 0)
            return serr(err, errlen, origin, "states[%zu]: \"*\" is reserved", i);
        if (pgf_spec_state_find(s, n) >= 0)
            return serr(err, errlen, origin, "states[%zu]: duplicate state \"%s\"", i, n);
        if (!json_is_boolean(term))
            return serr(err, errlen, origin, "states[%zu] (\"%s\"): \"terminal\" must be a boolean",
                        i, n);
        s->states[i].name = strdup(n);
        if (s->states[i].name == NULL)
            return PGF_ENOMEM;
        s->states[i].terminal = json_is_true(term);
        any_terminal |= s->states[i].terminal;
        s->nstates = (int)i + 1;
    }
    if (!any_terminal)
        return serr(err, errlen, origin, "no terminal state: a session could never end");
    json_t *init = json_object_get(root, "initial");
    if (!json_is_string(init))
        return serr(err, errlen, origin, "\"initial\" must be a state name");
    s->initial = pgf_spec_state_find(s, json_string_value(init));
    if (s->initial < 0)
        return serr(err, errlen, origin, "\"initial\" names unknown state \"%s\"",
                    json_string_value(init));
    if (s->states[s->initial].terminal)
        return serr(err, errlen, origin, "\"initial\" state \"%s\" is terminal",
                    json_string_value(init));
    return 0;
}

static int parse_ops(pgf_spec *s, json_t *root, const char *origin, char *err, size_t errlen)
{
    json_t *ops = json_object_get(root, "operations");
    if (!json_is_array(ops) || json_array_size(ops) == 0)
        return serr(err, errlen, origin, "\"operations\" must be a non-empty array");
    s->ops = calloc(json_array_size(ops), sizeof *s->ops);
    if (s->ops == NULL)
        return PGF_ENOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(ops, i, v)
    {
        if (!json_is_object(v))
            return serr(err, errlen, origin, "operations[%zu] must be an object", i);
        json_t *name = json_object_get(v, "name");
        if (!json_is_string(name) || json_string_length(name) == 0)
            return serr(err, errlen, origin, "operations[%zu]: \"name\" must be a non-empty string",
                        i);
        const char *n = json_string_value(name);
        if (pgf_spec_op_find(s, n) >= 0)
            return serr(err, errlen, origin, "operations[%zu]: duplicate operation \"%s\"", i, n);
        spec_op *op = &s->ops[i];
        op->name = strdup(n);
        if (op->name == NULL)
            return PGF_ENOMEM;
        s->nops = (int)i + 1;
        char what[160];
        int rc;
        snprintf(what, sizeof what, "operations[%zu] (\"%s\"): \"from\"", i, n);
        if ((rc = state_list(s, json_object_get(v, "from"), true, true, &op->from, origin, what,
                             err, errlen)) < 0)
            return rc;
        if ((op->from & ~nonterminal_mask(s)) != 0)
            return serr(err, errlen, origin, "%s includes a terminal state", what);
        snprintf(what, sizeof what, "operations[%zu] (\"%s\"): \"to\"", i, n);
        if ((rc = state_list(s, json_object_get(v, "to"), false, true, &op->to, origin, what, err,
                             errlen)) < 0)
            return rc;
        snprintf(what, sizeof what, "operations[%zu] (\"%s\"): \"during\"", i, n);
        if ((rc = state_list(s, json_object_get(v, "during"), false, false, &op->during, origin,
                             what, err, errlen)) < 0)
            return rc;
        json_t *pre = json_object_get(v, "preempts");
        if (!json_is_boolean(pre))
            return serr(err, errlen, origin,
                        "operations[%zu] (\"%s\"): \"preempts\" must be a boolean", i, n);
        op->preempts = json_is_true(pre);
    }
    return 0;
}

static int parse_transitions(pgf_spec *s, json_t *root, const char *origin, char *err,
                             size_t errlen)
{
    json_t *tr = json_object_get(root, "transitions");
    if (!json_is_array(tr))
        return serr(err, errlen, origin, "\"transitions\" must be an array");
    s->allow = calloc((size_t)s->nops * (size_t)s->nstates, sizeof *s->allow);
    if (s->allow == NULL)
        return PGF_ENOMEM;
    size_t i;
    json_t *v;
    json_array_foreach(tr, i, v)
    {
        if (!json_is_object(v))
            return serr(err, errlen, origin, "transitions[%zu] must be an object", i);
        json_t *jf = json_object_get(v, "from"), *jt = json_object_get(v, "to"),
               *jo = json_object_get(v, "op");
        if (!json_is_string(jf) || !json_is_string(jt) || !json_is_string(jo))
            return serr(err, errlen, origin,
                        "transitions[%zu]: \"from\", \"to\" and \"op\" must be strings", i);
        const char *f = json_string_value(jf), *t = json_string_value(jt),
                   *o = json_string_value(jo);
        int op = pgf_spec_op_find(s, o);
        if (op < 0)
            return serr(err, errlen, origin,
                        "transitions[%zu] (%s -> %s): unknown operation \"%s\"", i, f, t, o);
        int to = pgf_spec_state_find(s, t);
        if (to < 0)
            return serr(err, errlen, origin, "transitions[%zu] (%s -> %s): unknown state \"%s\"", i,
                        f, t, t);
        uint64_t from;
        if (strcmp(f, "*") == 0) {
            from = nonterminal_mask(s);
        } else {
            int fi = pgf_spec_state_find(s, f);
            if (fi < 0)
                return serr(err, errlen, origin,
                            "transitions[%zu] (%s -> %s): unknown state \"%s\"", i, f, t, f);
            if (s->states[fi].terminal)
                return serr(err, errlen, origin,
                            "transitions[%zu] (%s -> %s): leaves terminal state \"%s\"", i, f, t,
                            f);
            from = 1ULL << fi;
        }
        for (int st = 0; st < s->nstates; st++)
            if (from & (1ULL << st))
                s->allow[(size_t)op * (size_t)s->nstates + (size_t)st] |= 1ULL << to;
    }
    return 0;
}

static void compute_digest(pgf_spec *s, json_t *root)
{
    char *canon = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    if (canon == NULL || EVP_Digest(canon, strlen(canon), d, &dl, EVP_sha256(), NULL) != 1)
        dl = 0;
    free(canon);
    for (unsigned i = 0; i < 32; i++)
        snprintf(s->digest + 2 * i, 3, "%02x", i < dl ? d[i] : 0);
    s->digest[64] = '\0';
}

/* Optional "errors": {"refused": [names], "canceled": [names]}. */
static int parse_errors(pgf_spec *s, json_t *root, const char *origin, char *err, size_t errlen)
{
    json_t *e = json_object_get(root, "errors");
    if (e == NULL)
        return 0;
    if (!json_is_object(e))
        return serr(err, errlen, origin,
                    "\"errors\" must be an object {refused: [...], canceled: [...]}");
    static const char *const keys[] = {"refused", "canceled"};
    for (int k = 0; k < 2; k++) {
        json_t *arr = json_object_get(e, keys[k]);
        if (arr == NULL)
            continue;
        size_t i;
        json_t *v;
        if (!json_is_array(arr))
            return serr(err, errlen, origin, "\"errors.%s\" must be a list of error names",
                        keys[k]);
        json_array_foreach(arr, i, v) if (!json_is_string(v)) return serr(
            err, errlen, origin, "\"errors.%s\"[%zu] must be a string", keys[k], i);
        if (k == 0)
            s->refused = json_incref(arr);
        else
            s->canceled = json_incref(arr);
    }
    return 0;
}

static bool in_names(const json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    if (arr == NULL || name == NULL)
        return false;
    json_array_foreach((json_t *)arr, i,
                       v) if (strcmp(json_string_value(v), name) == 0) return true;
    return false;
}

bool pgf_spec_error_means(const pgf_spec *s, const char *error, int code)
{
    if (error == NULL)
        return false;
    if (strcmp(error, pgf_err_name(code)) == 0)
        return true;
    if (code == PGF_EILLEGAL_STATE)
        return in_names(s->refused, error);
    if (code == PGF_ECANCELED)
        return in_names(s->canceled, error);
    return false;
}

int pgf_spec_parse(const char *json, size_t len, const char *origin, pgf_spec **out, char *err,
                   size_t errlen)
{
    *out = NULL;
    if (origin == NULL)
        origin = "<spec>";
    json_error_t je;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &je);
    if (root == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s:%d:%d: invalid JSON: %s", origin, je.line, je.column,
                     je.text);
        return PGF_EPARSE;
    }
    int rc;
    pgf_spec *s = calloc(1, sizeof *s);
    if (s == NULL) {
        rc = PGF_ENOMEM;
        goto fail;
    }
    if (!json_is_object(root)) {
        rc = serr(err, errlen, origin, "a spec must be a JSON object");
        goto fail;
    }
    json_t *fmt = json_object_get(root, "format"), *ver = json_object_get(root, "version");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), PGF_SPEC_FORMAT) != 0) {
        rc = serr(err, errlen, origin, "\"format\" must be \"%s\"", PGF_SPEC_FORMAT);
        goto fail;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) != PGF_SPEC_VERSION) {
        rc = serr(err, errlen, origin, "unsupported spec \"version\" (want %d)", PGF_SPEC_VERSION);
        goto fail;
    }
    if ((rc = parse_states(s, root, origin, err, errlen)) < 0 ||
        (rc = parse_ops(s, root, origin, err, errlen)) < 0 ||
        (rc = parse_transitions(s, root, origin, err, errlen)) < 0)
        goto fail;
    if ((rc = parse_errors(s, root, origin, err, errlen)) < 0)
        goto fail;
    compute_digest(s, root);
    json_decref(root);
    *out = s;
    return 0;
fail:
    if (rc == PGF_ENOMEM)
        serr(err, errlen, origin, "out of memory");
    json_decref(root);
    pgf_spec_free(s);
    return rc;
}

int pgf_spec_load(const char *path, pgf_spec **out, char *err, size_t errlen)
{
    *out = NULL;
    char *data;
    size_t len;
    int rc = pgf_file_read(path, &data, &len, err, errlen);
    if (rc != 0)
        return rc;
    rc = pgf_spec_parse(data, len, path, out, err, errlen);
    free(data);
    return rc;
}

const char *pgf_spec_digest(const pgf_spec *s)
{
    return s->digest;
}

int pgf_spec_state_count(const pgf_spec *s)
{
    return s->nstates;
}

const char *pgf_spec_state_name(const pgf_spec *s, int state)
{
    return state >= 0 && state < s->nstates ? s->states[state].name : "?";
}

bool pgf_spec_state_terminal(const pgf_spec *s, int state)
{
    return state >= 0 && state < s->nstates && s->states[state].terminal;
}

int pgf_spec_initial(const pgf_spec *s)
{
    return s->initial;
}

int pgf_spec_op_count(const pgf_spec *s)
{
    return s->nops;
}

const char *pgf_spec_op_name(const pgf_spec *s, int op)
{
    return op >= 0 && op < s->nops ? s->ops[op].name : "?";
}

bool pgf_spec_op_preempts(const pgf_spec *s, int op)
{
    return op >= 0 && op < s->nops && s->ops[op].preempts;
}

static bool in_mask(uint64_t m, int state)
{
    return state >= 0 && state < 64 && (m & (1ULL << state)) != 0;
}

bool pgf_spec_op_may_start(const pgf_spec *s, int op, int state)
{
    return op >= 0 && op < s->nops && in_mask(s->ops[op].from, state);
}

bool pgf_spec_op_ends_in(const pgf_spec *s, int op, int state)
{
    return op >= 0 && op < s->nops && in_mask(s->ops[op].to, state);
}

bool pgf_spec_op_passes(const pgf_spec *s, int op, int state)
{
    return op >= 0 && op < s->nops && in_mask(s->ops[op].during, state);
}

bool pgf_spec_transition_ok(const pgf_spec *s, int op, int from, int to)
{
    if (op < 0 || op >= s->nops || from < 0 || from >= s->nstates)
        return false;
    return in_mask(s->allow[(size_t)op * (size_t)s->nstates + (size_t)from], to);
}

/* ---- drift between the pinned spec and a compiled one ---- */

typedef struct diffbuf {
    char *buf;
    size_t len, used;
    int n;
} diffbuf;

static void diff_add(diffbuf *d, const char *what, const char *fmt, ...) PGF_PRINTF(3, 4);
static void diff_add(diffbuf *d, const char *what, const char *fmt, ...)
{
    d->n++;
    if (d->used + 1 >= d->len)
        return;
    int k = snprintf(d->buf + d->used, d->len - d->used, "%s%s ", d->used ? "; " : "", what);
    if (k > 0)
        d->used = d->used + (size_t)k < d->len ? d->used + (size_t)k : d->len - 1;
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(d->buf + d->used, d->len - d->used, fmt, ap);
    va_end(ap);
    if (k > 0)
        d->used = d->used + (size_t)k < d->len ? d->used + (size_t)k : d->len - 1;
}

/* Everything `a` has that `b` lacks, labelled `what` ("extra"/"missing"). */
static void diff_one_way(const pgf_spec *a, const pgf_spec *b, const char *what, diffbuf *d)
{
    int ns = pgf_spec_state_count(a), no = pgf_spec_op_count(a);
    for (int st = 0; st < ns; st++) {
        const char *sn = pgf_spec_state_name(a, st);
        int bst = pgf_spec_state_find(b, sn);
        if (bst < 0)
            diff_add(d, what, "state %s", sn);
        else if (pgf_spec_state_terminal(a, st) && !pgf_spec_state_terminal(b, bst))
            diff_add(d, what, "terminal state %s", sn);
    }
    for (int op = 0; op < no; op++) {
        const char *on = pgf_spec_op_name(a, op);
        int bop = pgf_spec_op_find(b, on);
        if (bop < 0) {
            diff_add(d, what, "op %s", on);
            continue;
        }
        if (pgf_spec_op_preempts(a, op) && !pgf_spec_op_preempts(b, bop))
            diff_add(d, what, "preemption by %s", on);
        for (int f = 0; f < ns; f++) {
            int bf = pgf_spec_state_find(b, pgf_spec_state_name(a, f));
            if (pgf_spec_op_may_start(a, op, f) && (bf < 0 || !pgf_spec_op_may_start(b, bop, bf)))
                diff_add(d, what, "start of %s from %s", on, pgf_spec_state_name(a, f));
            if (pgf_spec_op_ends_in(a, op, f) && (bf < 0 || !pgf_spec_op_ends_in(b, bop, bf)))
                diff_add(d, what, "end of %s in %s", on, pgf_spec_state_name(a, f));
            if (pgf_spec_op_passes(a, op, f) && (bf < 0 || !pgf_spec_op_passes(b, bop, bf)))
                diff_add(d, what, "%s passing through %s", on, pgf_spec_state_name(a, f));
            for (int t = 0; t < ns; t++) {
                if (!pgf_spec_transition_ok(a, op, f, t))
                    continue;
                int bt = pgf_spec_state_find(b, pgf_spec_state_name(a, t));
                if (bf < 0 || bt < 0 || !pgf_spec_transition_ok(b, bop, bf, bt))
                    diff_add(d, what, "transition %s -> %s by %s", pgf_spec_state_name(a, f),
                             pgf_spec_state_name(a, t), on);
            }
        }
    }
}

int pgf_spec_diff(const pgf_spec *pinned, const pgf_spec *compiled, char *buf, size_t len)
{
    diffbuf d = {buf, len, 0, 0};
    if (len > 0)
        buf[0] = '\0';
    diff_one_way(compiled, pinned, "extra", &d);
    diff_one_way(pinned, compiled, "missing", &d);
    return d.n;
}
