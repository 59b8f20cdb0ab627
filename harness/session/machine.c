/* machine.c - lookups over the state machine tables of machine.h and the
 * spec generators (JSON via jansson, YAML via libyaml from the same JSON
 * tree, DOT for the docs diagram). No runtime state. */
#include "pgfault/machine.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "pgfault/buf.h"

struct state_row {
    const char *name;
    bool terminal;
    pgf_sess_deadline deadline;
    const char *group;
    const char *doc;
};

static const struct state_row states[PGF_SESS_STATE_COUNT] = {
#define STATE_ROW(name, term, dl, group, doc) {#name, term, PGF_DEADLINE_##dl, group, doc},
    PGF_SESS_STATE_MAP(STATE_ROW)
#undef STATE_ROW
};

struct op_row {
    const char *name;
    bool preempts;
    bool session;
    const char *doc;
};

static const struct op_row ops[PGF_OP_COUNT] = {{"none", false, false, "no operation"},
#define OP_ROW(name, pre, sess, doc) {#name, pre, sess, doc},
                                                PGF_SESS_OP_MAP(OP_ROW)
#undef OP_ROW
};

enum set_kind { SET_FROM, SET_TO, SET_DURING };
#define PGF_SESS_ANY (-1)
struct set_row {
    pgf_sess_op op;
    enum set_kind kind;
    int state; /* PGF_SESS_ANY = every non-terminal state */
};

#define PGF__ST_ANY         PGF_SESS_ANY
#define SET_STATE_VALUE(st) PGF__ST_##st
static const struct set_row sets[] = {
#define SET_ROW(op, kind, st)      {PGF_OP_##op, SET_##kind, SET_STATE_VALUE(st)},
#define PGF__ST_NEW                PGF_SESS_NEW
#define PGF__ST_CONNECTING_SOCKET  PGF_SESS_CONNECTING_SOCKET
#define PGF__ST_CONNECTING_SSL     PGF_SESS_CONNECTING_SSL
#define PGF__ST_CONNECTING_STARTUP PGF_SESS_CONNECTING_STARTUP
#define PGF__ST_CONNECTING_AUTH    PGF_SESS_CONNECTING_AUTH
#define PGF__ST_CONNECTING_PARAMS  PGF_SESS_CONNECTING_PARAMS
#define PGF__ST_READY              PGF_SESS_READY
#define PGF__ST_BUSY               PGF_SESS_BUSY
#define PGF__ST_CANCELING          PGF_SESS_CANCELING
#define PGF__ST_CLOSING            PGF_SESS_CLOSING
#define PGF__ST_FAILED             PGF_SESS_FAILED
#define PGF__ST_CLOSED             PGF_SESS_CLOSED
    PGF_SESS_OP_SETS(SET_ROW)
#undef SET_ROW
};
#define NSETS (sizeof sets / sizeof sets[0])

struct trans_row {
    pgf_sess_state from, to;
    pgf_sess_op op;
    const char *doc;
};

static const struct trans_row transitions[] = {
#define TRANS_ROW(from, to, op, doc) {PGF_SESS_##from, PGF_SESS_##to, PGF_OP_##op, doc},
    PGF_SESS_TRANSITION_MAP(TRANS_ROW)
#undef TRANS_ROW
};
#define NTRANS (sizeof transitions / sizeof transitions[0])

static bool state_ok(pgf_sess_state s)
{
    return (unsigned)s < PGF_SESS_STATE_COUNT;
}

static bool op_ok(pgf_sess_op op)
{
    return (unsigned)op < PGF_OP_COUNT;
}

const char *pgf_session_state_name(pgf_sess_state s)
{
    return state_ok(s) ? states[s].name : "?";
}

const char *pgf_session_state_doc(pgf_sess_state s)
{
    return state_ok(s) ? states[s].doc : "?";
}

const char *pgf_session_state_group(pgf_sess_state s)
{
    return state_ok(s) ? states[s].group : "?";
}

bool pgf_session_state_terminal(pgf_sess_state s)
{
    return state_ok(s) && states[s].terminal;
}

pgf_sess_deadline pgf_session_state_deadline(pgf_sess_state s)
{
    return state_ok(s) ? states[s].deadline : PGF_DEADLINE_NONE;
}

bool pgf_session_state_connecting(pgf_sess_state s)
{
    return state_ok(s) && strcmp(states[s].group, "CONNECTING") == 0;
}

/* The recorder hands the history stream these very strings: a pointer
 * match first, then by name (a scan of strcmp per record was most of the
 * report pictures' time; bench/stream_cost). */
int pgf_session_state_parse(const char *name)
{
    for (int i = 0; name != NULL && i < PGF_SESS_STATE_COUNT; i++)
        if (states[i].name == name)
            return i;
    for (int i = 0; name != NULL && i < PGF_SESS_STATE_COUNT; i++)
        if (strcmp(states[i].name, name) == 0)
            return i;
    return -1;
}

const char *pgf_session_op_name(pgf_sess_op op)
{
    return op_ok(op) ? ops[op].name : "?";
}

const char *pgf_session_op_doc(pgf_sess_op op)
{
    return op_ok(op) ? ops[op].doc : "?";
}

bool pgf_session_op_preempts(pgf_sess_op op)
{
    return op_ok(op) && ops[op].preempts;
}

int pgf_session_op_parse(const char *name)
{
    for (int i = 1; name != NULL && i < PGF_OP_COUNT; i++)
        if (ops[i].name == name)
            return i;
    for (int i = 1; name != NULL && i < PGF_OP_COUNT; i++)
        if (strcmp(ops[i].name, name) == 0)
            return i;
    return -1;
}

static bool in_set(pgf_sess_op op, enum set_kind kind, pgf_sess_state s)
{
    for (size_t i = 0; i < NSETS; i++) {
        if (sets[i].op != op || sets[i].kind != kind)
            continue;
        if (sets[i].state == PGF_SESS_ANY ? !pgf_session_state_terminal(s)
                                          : sets[i].state == (int)s)
            return true;
    }
    return false;
}

bool pgf_session_op_allowed_from(pgf_sess_op op, pgf_sess_state s)
{
    return op_ok(op) && state_ok(s) && in_set(op, SET_FROM, s);
}

bool pgf_session_op_ends_in(pgf_sess_op op, pgf_sess_state s)
{
    return op_ok(op) && state_ok(s) && in_set(op, SET_TO, s);
}

const char *pgf_session_transition_doc(pgf_sess_state from, pgf_sess_state to, pgf_sess_op op)
{
    for (size_t i = 0; i < NTRANS; i++)
        if (transitions[i].from == from && transitions[i].to == to && transitions[i].op == op)
            return transitions[i].doc;
    return NULL;
}

bool pgf_session_transition_allowed(pgf_sess_state from, pgf_sess_state to, pgf_sess_op op)
{
    return pgf_session_transition_doc(from, to, op) != NULL;
}

int pgf_spec_format_parse(const char *s)
{
    if (s == NULL)
        return PGF_EINVAL;
    if (strcmp(s, "json") == 0)
        return PGF_SPEC_JSON;
    if (strcmp(s, "yaml") == 0)
        return PGF_SPEC_YAML;
    if (strcmp(s, "dot") == 0)
        return PGF_SPEC_DOT;
    return PGF_EINVAL;
}

/* ---- spec as a jansson tree ---- */

static json_t *state_list(pgf_sess_op op, enum set_kind kind)
{
    json_t *a = json_array();
    for (size_t i = 0; i < NSETS; i++) {
        if (sets[i].op != op || sets[i].kind != kind)
            continue;
        json_array_append_new(
            a, json_string(sets[i].state == PGF_SESS_ANY ? "*" : states[sets[i].state].name));
    }
    return a;
}

static json_t *spec_tree(void)
{
    json_t *root = json_object();
    json_object_set_new(root, "format", json_string("pgfault-spec"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "initial", json_string(states[PGF_SESS_NEW].name));
    static const char *const deadline_names[] = {"none", "connect", "query", "cancel", "close"};
    json_t *st = json_array();
    for (int i = 0; i < PGF_SESS_STATE_COUNT; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(states[i].name));
        json_object_set_new(o, "terminal", json_boolean(states[i].terminal));
        json_object_set_new(o, "doc", json_string(states[i].doc));
        json_object_set_new(o, "group", json_string(states[i].group));
        json_object_set_new(o, "deadline", json_string(deadline_names[states[i].deadline]));
        json_array_append_new(st, o);
    }
    json_object_set_new(root, "states", st);
    json_t *op = json_array();
    for (int i = 1; i < PGF_OP_COUNT; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(ops[i].name));
        json_object_set_new(o, "from", state_list((pgf_sess_op)i, SET_FROM));
        json_object_set_new(o, "to", state_list((pgf_sess_op)i, SET_TO));
        json_object_set_new(o, "during", state_list((pgf_sess_op)i, SET_DURING));
        json_object_set_new(o, "preempts", json_boolean(ops[i].preempts));
        json_object_set_new(o, "scope", json_string(ops[i].session ? "session" : "pool"));
        json_object_set_new(o, "doc", json_string(ops[i].doc));
        json_array_append_new(op, o);
    }
    json_object_set_new(root, "operations", op);
    json_t *tr = json_array();
    for (size_t i = 0; i < NTRANS; i++) {
        json_t *o = json_object();
        json_object_set_new(o, "from", json_string(states[transitions[i].from].name));
        json_object_set_new(o, "to", json_string(states[transitions[i].to].name));
        json_object_set_new(o, "op", json_string(ops[transitions[i].op].name));
        json_object_set_new(o, "doc", json_string(transitions[i].doc));
        json_array_append_new(tr, o);
    }
    json_object_set_new(root, "transitions", tr);
    return root;
}

/* ---- YAML from the same tree ---- */

static int yaml_out(void *data, unsigned char *buffer, size_t size)
{
    pgf_buf_put(data, buffer, size);
    return !((pgf_buf *)data)->failed;
}

static int emit_scalar(yaml_emitter_t *em, const char *s, bool plain_ok)
{
    yaml_event_t ev;
    yaml_scalar_event_initialize(
        &ev, NULL, NULL, (yaml_char_t *)s, (int)strlen(s), plain_ok, !plain_ok,
        plain_ok ? YAML_ANY_SCALAR_STYLE : YAML_DOUBLE_QUOTED_SCALAR_STYLE);
    return yaml_emitter_emit(em, &ev);
}

static int emit_json(yaml_emitter_t *em, json_t *j)
{
    yaml_event_t ev;
    char num[32];
    switch (json_typeof(j)) {
    case JSON_OBJECT: {
        yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
        if (!yaml_emitter_emit(em, &ev))
            return 0;
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            if (!emit_scalar(em, k, true) || !emit_json(em, v))
                return 0;
        }
        yaml_mapping_end_event_initialize(&ev);
        return yaml_emitter_emit(em, &ev);
    }
    case JSON_ARRAY: {
        /* Short lists of names read best inline: from: [NEW]. */
        bool flat = true;
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v) flat = flat && json_is_string(v);
        yaml_sequence_start_event_initialize(
            &ev, NULL, NULL, 1, flat ? YAML_FLOW_SEQUENCE_STYLE : YAML_BLOCK_SEQUENCE_STYLE);
        if (!yaml_emitter_emit(em, &ev))
            return 0;
        json_array_foreach(j, i, v)
        {
            if (!emit_json(em, v))
                return 0;
        }
        yaml_sequence_end_event_initialize(&ev);
        return yaml_emitter_emit(em, &ev);
    }
    case JSON_STRING:
        /* Quote strings so "*" or "NEW" never turn into aliases/other types. */
        return emit_scalar(em, json_string_value(j), false);
    case JSON_INTEGER:
        snprintf(num, sizeof num, "%lld", (long long)json_integer_value(j));
        return emit_scalar(em, num, true);
    case JSON_TRUE:
        return emit_scalar(em, "true", true);
    case JSON_FALSE:
        return emit_scalar(em, "false", true);
    default:
        return emit_scalar(em, "null", true);
    }
}

static int to_yaml(json_t *root, char **out)
{
    pgf_buf b = PGF_BUF_INIT;
    yaml_emitter_t em;
    yaml_event_t ev;
    int ok = yaml_emitter_initialize(&em);
    if (!ok)
        return PGF_ENOMEM;
    yaml_emitter_set_output(&em, yaml_out, &b);
    yaml_emitter_set_width(&em, 100);
    yaml_emitter_set_unicode(&em, 1);
    yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
    ok = yaml_emitter_emit(&em, &ev);
    if (ok) {
        yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1);
        ok = yaml_emitter_emit(&em, &ev);
    }
    ok = ok && emit_json(&em, root);
    if (ok) {
        yaml_document_end_event_initialize(&ev, 1);
        ok = yaml_emitter_emit(&em, &ev);
    }
    if (ok) {
        yaml_stream_end_event_initialize(&ev);
        ok = yaml_emitter_emit(&em, &ev);
    }
    ok = ok && yaml_emitter_flush(&em);
    yaml_emitter_delete(&em);
    pgf_buf_put_u8(&b, 0);
    if (!ok || b.failed) {
        pgf_buf_free(&b);
        return ok ? PGF_ENOMEM : PGF_EINTERNAL;
    }
    *out = (char *)b.data;
    return 0;
}

/* ---- DOT ---- */

static int to_dot(char **out)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_printf(&b, "// generated by `pgfault spec --format dot` from harness/session/machine.h;"
                       " do not edit\n");
    pgf_buf_printf(&b, "digraph pgfault_session {\n    rankdir=LR;\n"
                       "    node [shape=box, style=rounded, fontname=\"Helvetica\"];\n"
                       "    edge [fontname=\"Helvetica\", fontsize=10];\n");
    pgf_buf_printf(&b, "    subgraph cluster_connecting {\n        label=\"CONNECTING (open)\";\n");
    for (int i = 0; i < PGF_SESS_STATE_COUNT; i++)
        if (pgf_session_state_connecting((pgf_sess_state)i))
            pgf_buf_printf(&b, "        %s;\n", states[i].name);
    pgf_buf_printf(&b, "    }\n");
    for (int i = 0; i < PGF_SESS_STATE_COUNT; i++) {
        if (pgf_session_state_connecting((pgf_sess_state)i))
            continue;
        pgf_buf_printf(&b, "    %s%s;\n", states[i].name,
                       states[i].terminal  ? " [peripheries=2]"
                       : i == PGF_SESS_NEW ? " [style=\"rounded,bold\"]"
                                           : "");
    }
    for (size_t i = 0; i < NTRANS; i++) {
        const struct trans_row *t = &transitions[i];
        const char *color = ops[t->op].preempts ? "firebrick" : "black";
        const char *style = ops[t->op].session ? "solid" : "dashed";
        pgf_buf_printf(&b, "    %s -> %s [label=\"%s\", color=%s, style=%s];\n",
                       states[t->from].name, states[t->to].name, ops[t->op].name, color, style);
    }
    pgf_buf_printf(&b, "}\n");
    pgf_buf_put_u8(&b, 0);
    if (b.failed) {
        pgf_buf_free(&b);
        return PGF_ENOMEM;
    }
    *out = (char *)b.data;
    return 0;
}

int pgf_session_spec(pgf_spec_format fmt, char **out)
{
    *out = NULL;
    if (fmt == PGF_SPEC_DOT)
        return to_dot(out);
    json_t *root = spec_tree();
    if (root == NULL)
        return PGF_ENOMEM;
    int rc = 0;
    if (fmt == PGF_SPEC_JSON) {
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s == NULL) {
            rc = PGF_ENOMEM;
        } else {
            size_t n = strlen(s);
            *out = malloc(n + 2);
            if (*out == NULL)
                rc = PGF_ENOMEM;
            else
                memcpy(*out, s, n), memcpy(*out + n, "\n", 2);
            free(s);
        }
    } else if (fmt == PGF_SPEC_YAML) {
        rc = to_yaml(root, out);
    } else {
        rc = PGF_EINVAL;
    }
    json_decref(root);
    return rc;
}

static char *builtin_json;
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

static void build_builtin(void)
{
    if (pgf_session_spec(PGF_SPEC_JSON, &builtin_json) != 0)
        builtin_json = NULL;
}

const char *pgf_session_spec_json_text(void)
{
    pthread_once(&builtin_once, build_builtin);
    return builtin_json;
}
