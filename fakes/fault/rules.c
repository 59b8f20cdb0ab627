/* rules.c - the one validator: neutral tree (tree.c) -> immutable rule set.
 *
 * Every key, type, range and cross-check of the rule schema lives here, and
 * both YAML and JSON come through it, so they accept exactly the same
 * documents. It also builds each rule's canonical JSON (the keys the user
 * gave, typed, in a fixed order), which the control API serves back and
 * re-parses when it edits a set. It does not decide anything (engine.c).
 */
#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault_int.h"
#include "pgfault/file.h"
#include "pgfault/rng.h"
#include "pgfault/rules.h"

/* ---- error reporting -------------------------------------------------- */

struct vctx {
    const char *source;
    char *err;
    size_t errlen;
    const char *rule; /* name of the rule being checked, for messages */
};

static void verr(struct vctx *v, int line, int col, const char *fmt, ...) PGF_PRINTF(4, 5);
static void verr(struct vctx *v, int line, int col, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char where[64] = "";
    if (v->rule != NULL)
        snprintf(where, sizeof where, " in rule '%.40s'", v->rule);
    if (line > 0)
        snprintf(v->err, v->errlen, "%s:%d:%d: %s%s", v->source, line, col, msg, where);
    else
        snprintf(v->err, v->errlen, "%s: %s%s", v->source, msg, where);
}

/* Messages where the rule name must sit before a parenthesised list. */
static void verr_list(struct vctx *v, int line, int col, const char *msg, const char *list)
{
    char where[64] = "";
    if (v->rule != NULL)
        snprintf(where, sizeof where, " in rule '%.40s'", v->rule);
    if (line > 0)
        snprintf(v->err, v->errlen, "%s:%d:%d: %s%s (%s)", v->source, line, col, msg, where, list);
    else
        snprintf(v->err, v->errlen, "%s: %s%s (%s)", v->source, msg, where, list);
}

static const char *node_type_name(const pgf_doc *n)
{
    if (n->kind == PGF_DOC_MAP)
        return "a map";
    if (n->kind == PGF_DOC_SEQ)
        return "a list";
    switch (n->stype) {
    case PGF_DOC_STRING:
        return "a string";
    case PGF_DOC_INT:
        return "an integer";
    case PGF_DOC_REAL:
        return "a number";
    case PGF_DOC_BOOL:
        return "a boolean";
    case PGF_DOC_NULL:
        return "null";
    case PGF_DOC_PLAIN:
        return "a scalar";
    }
    return "a value";
}

/* ---- typed getters ---------------------------------------------------- */

static int map_find(const pgf_doc *m, const char *key)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->keys[i], key) == 0)
            return (int)i;
    return -1;
}

static bool get_str(struct vctx *v, const pgf_doc *n, const char *key, const char **out)
{
    if (n->kind != PGF_DOC_SCALAR || (n->stype != PGF_DOC_STRING && n->stype != PGF_DOC_PLAIN)) {
        verr(v, n->line, n->col, "'%s' must be a string, got %s", key, node_type_name(n));
        return false;
    }
    *out = n->text;
    return true;
}

static bool get_uint(struct vctx *v, const pgf_doc *n, const char *key, uint64_t lo, uint64_t hi,
                     uint64_t *out)
{
    if (n->kind != PGF_DOC_SCALAR || (n->stype != PGF_DOC_INT && n->stype != PGF_DOC_PLAIN)) {
        verr(v, n->line, n->col, "'%s' must be an integer, got %s", key, node_type_name(n));
        return false;
    }
    const char *s = n->text;
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]) && !(s[0] == '-' && isdigit((unsigned char)s[1]))) {
        verr(v, n->line, n->col, "'%s' must be an integer, got '%.40s'", key, s);
        return false;
    }
    long long x = strtoll(s, &end, 10);
    if (*end != '\0') {
        verr(v, n->line, n->col, "'%s' must be an integer, got '%.40s'", key, s);
        return false;
    }
    if (errno == ERANGE || x < 0 || (uint64_t)x < lo || (uint64_t)x > hi) {
        verr(v, n->line, n->col, "'%s' is out of range: %.40s (allowed %llu..%llu)", key, s,
             (unsigned long long)lo, (unsigned long long)hi);
        return false;
    }
    *out = (uint64_t)x;
    return true;
}

static bool get_double(struct vctx *v, const pgf_doc *n, const char *key, double lo, double hi,
                       double *out)
{
    if (n->kind != PGF_DOC_SCALAR ||
        (n->stype != PGF_DOC_INT && n->stype != PGF_DOC_REAL && n->stype != PGF_DOC_PLAIN)) {
        verr(v, n->line, n->col, "'%s' must be a number, got %s", key, node_type_name(n));
        return false;
    }
    char *end;
    errno = 0;
    double x = strtod(n->text, &end);
    if (*end != '\0' || end == n->text || errno == ERANGE || !isfinite(x)) {
        verr(v, n->line, n->col, "'%s' must be a number, got '%.40s'", key, n->text);
        return false;
    }
    if (x < lo || x > hi) {
        verr(v, n->line, n->col, "'%s' is out of range: %.40s (allowed %g..%g)", key, n->text, lo,
             hi);
        return false;
    }
    *out = x;
    return true;
}

/* ---- vocabulary --------------------------------------------------------- */

static const char *const common_keys[] = {
    "name",  "description", "phase", "action", "match",   "probability", "nth",
    "every", "after",       "times", "budget", "from_ms", "until_ms",    "scope",
};
#define N_COMMON (sizeof common_keys / sizeof common_keys[0])

static const char *const match_keys[] = {
    "user", "database", "application_name", "client_addr", "query", "query_regex", "conn",
};
#define N_MATCH (sizeof match_keys / sizeof match_keys[0])

/* Parameters each action takes (NULL-terminated). */
static const char *const *action_params(pgf_action_kind a)
{
    static const char *const none[] = {NULL};
    static const char *const error[] = {"preset", "severity", "sqlstate", "message",
                                        "detail", "hint",     NULL};
    static const char *const half[] = {"direction", NULL};
    static const char *const side[] = {"side", NULL};
    static const char *const trunc[] = {"bytes", "messages", "then", NULL};
    static const char *const ms[] = {"ms", NULL};
    static const char *const delay[] = {"ms", "jitter_ms", NULL};
    static const char *const drip[] = {"slice", "ms", NULL};
    static const char *const bw[] = {"bytes_per_sec", NULL};
    static const char *const garbage[] = {"bytes", NULL};
    switch (a) {
    case PGF_ACTION_ERROR:
        return error;
    case PGF_ACTION_HALF_CLOSE:
        return half;
    case PGF_ACTION_CLOSE:
    case PGF_ACTION_RESET:
        return side;
    case PGF_ACTION_TRUNCATE:
        return trunc;
    case PGF_ACTION_STALL:
    case PGF_ACTION_REFUSE:
        return ms;
    case PGF_ACTION_DELAY:
        return delay;
    case PGF_ACTION_DRIP:
        return drip;
    case PGF_ACTION_BANDWIDTH:
        return bw;
    case PGF_ACTION_GARBAGE:
        return garbage;
    default:
        return none;
    }
}

static bool is_any_param(const char *k)
{
    for (int a = 0; a < PGF_ACTION_COUNT; a++)
        for (const char *const *p = action_params((pgf_action_kind)a); *p; p++)
            if (strcmp(*p, k) == 0)
                return true;
    return false;
}

static bool in_list(const char *const *l, size_t n, const char *k)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(l[i], k) == 0)
            return true;
    return false;
}

static void join_list(char *buf, size_t len, const char *const *l, size_t n,
                      const char *const *more)
{
    size_t off = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < n && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", l[i]);
    for (; more && *more && off < len; more++)
        off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? ", " : "", *more);
}

typedef struct preset {
    const char *name, *severity, *sqlstate, *message, *detail, *hint;
} preset;

/* Texts as PostgreSQL 15 sends them (docs/faults.md; docs/postgres15-facts.md sections 5-7). */
static const preset presets[] = {
    {"admin-shutdown", "FATAL", "57P01", "terminating connection due to administrator command",
     NULL, NULL},
    {"immediate-shutdown", "WARNING", "57P01",
     "terminating connection due to immediate shutdown command", NULL, NULL},
    {"crash-shutdown", "WARNING", "57P02",
     "terminating connection because of crash of another server process",
     "The postmaster has commanded this server process to roll back the current transaction and "
     "exit, because another server process exited abnormally and possibly corrupted shared "
     "memory.",
     "In a moment you should be able to reconnect to the database and repeat your command."},
    {"too-many-clients", "FATAL", "53300", "sorry, too many clients already", NULL, NULL},
    {"cannot-connect-now", "FATAL", "57P03", "the database system is starting up", NULL, NULL},
    {"protocol-violation", "FATAL", "08P01", "invalid frontend message type 0", NULL, NULL},
    {"query-canceled", "ERROR", "57014", "canceling statement due to user request", NULL, NULL},
    {"serialization-failure", "ERROR", "40001",
     "could not serialize access due to concurrent update", NULL, NULL},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

/* ---- rule lifecycle --------------------------------------------------- */

static void rule_clear(pgf__rule *r)
{
    free(r->name);
    free(r->user);
    free(r->database);
    free(r->application_name);
    free(r->client_addr);
    free(r->query);
    free(r->query_regex);
    if (r->has_re)
        regfree(&r->re);
    free(r->preset);
    free(r->severity);
    free(r->sqlstate);
    free(r->message);
    free(r->detail);
    free(r->hint);
    free(r->canon);
    memset(r, 0, sizeof *r);
}

static void rules_destroy(pgf_fault_rules *rs)
{
    for (size_t i = 0; i < rs->n; i++)
        rule_clear(&rs->rules[i]);
    free(rs->rules);
    for (int p = 0; p < PGF_PHASE_COUNT; p++)
        free(rs->by_phase[p]);
    free(rs);
}

pgf_fault_rules *pgf_fault_rules_new_empty(void)
{
    pgf_fault_rules *rs = calloc(1, sizeof *rs);
    if (rs != NULL)
        atomic_init(&rs->refs, 1);
    return rs;
}

pgf_fault_rules *pgf_fault_rules_ref(pgf_fault_rules *r)
{
    if (r != NULL)
        atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void pgf_fault_rules_free(pgf_fault_rules *r)
{
    if (r == NULL)
        return;
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        rules_destroy(r);
}

size_t pgf_fault_rules_count(const pgf_fault_rules *r)
{
    return r ? r->n : 0;
}

const char *pgf_fault_rules_name(const pgf_fault_rules *r, size_t i)
{
    return r && i < r->n ? r->rules[i].name : NULL;
}

int pgf_fault_rules_find(const pgf_fault_rules *r, const char *name)
{
    for (size_t i = 0; r && i < r->n; i++)
        if (strcmp(r->rules[i].name, name) == 0)
            return (int)i;
    return -1;
}

const char *pgf_fault_rules_rule_json(const pgf_fault_rules *r, size_t i)
{
    return r && i < r->n ? r->rules[i].canon : NULL;
}

char *pgf_fault_rules_to_json(const pgf_fault_rules *r)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    for (size_t i = 0; r && i < r->n; i++) {
        json_t *j = json_loads(r->rules[i].canon, 0, NULL);
        if (j == NULL || json_array_append_new(arr, j) != 0) {
            json_decref(arr);
            return NULL;
        }
    }
    char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(arr);
    return s;
}

/* ---- one rule ----------------------------------------------------------- */

static bool dupstr(struct vctx *v, char **dst, const char *s)
{
    *dst = strdup(s);
    if (*dst == NULL) {
        verr(v, 0, 0, "out of memory");
        return false;
    }
    return true;
}

static bool valid_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

/* A message template may use %u (user), %d (database) and %%. */
static bool check_template(struct vctx *v, const pgf_doc *n, const char *key, const char *s)
{
    for (; *s; s++) {
        if (*s != '%')
            continue;
        s++;
        if (*s != 'u' && *s != 'd' && *s != '%') {
            verr(v, n->line, n->col, "'%s' has an unknown escape '%%%c' (use %%u, %%d or %%%%)",
                 key, *s ? *s : ' ');
            return false;
        }
    }
    return true;
}

static bool want_str(struct vctx *v, const pgf_doc *map, const char *key, json_t *canon, char **dst)
{
    int i = map_find(map, key);
    if (i < 0)
        return true;
    const char *s;
    if (!get_str(v, map->kids[i], key, &s))
        return false;
    json_object_set_new(canon, key, json_string(s));
    return dupstr(v, dst, s);
}

static bool want_uint(struct vctx *v, const pgf_doc *map, const char *key, uint64_t lo, uint64_t hi,
                      json_t *canon, uint64_t *dst, bool *given)
{
    int i = map_find(map, key);
    if (given)
        *given = i >= 0;
    if (i < 0)
        return true;
    if (!get_uint(v, map->kids[i], key, lo, hi, dst))
        return false;
    json_object_set_new(canon, key, json_integer((json_int_t)*dst));
    return true;
}

static bool parse_match(struct vctx *v, pgf__rule *r, const pgf_doc *m, json_t *canon)
{
    if (m->kind != PGF_DOC_MAP) {
        verr(v, m->line, m->col, "'match' must be a map, got %s", node_type_name(m));
        return false;
    }
    for (size_t i = 0; i < m->n; i++) {
        if (!in_list(match_keys, N_MATCH, m->keys[i])) {
            char list[256], msg[160];
            join_list(list, sizeof list, match_keys, N_MATCH, NULL);
            snprintf(msg, sizeof msg, "unknown key '%.60s' in 'match'", m->keys[i]);
            char full[300];
            snprintf(full, sizeof full, "expected one of: %s", list);
            verr_list(v, m->key_line[i], m->key_col[i], msg, full);
            return false;
        }
    }
    json_t *jm = json_object();
    json_object_set_new(canon, "match", jm);
    if (!want_str(v, m, "user", jm, &r->user) || !want_str(v, m, "database", jm, &r->database) ||
        !want_str(v, m, "application_name", jm, &r->application_name) ||
        !want_str(v, m, "client_addr", jm, &r->client_addr) ||
        !want_str(v, m, "query", jm, &r->query) ||
        !want_str(v, m, "query_regex", jm, &r->query_regex))
        return false;
    if (r->query_regex != NULL) {
        int rc = regcomp(&r->re, r->query_regex, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char buf[160];
            regerror(rc, &r->re, buf, sizeof buf);
            const pgf_doc *n = m->kids[map_find(m, "query_regex")];
            verr(v, n->line, n->col, "'query_regex' is not a valid POSIX extended regex: %s", buf);
            return false;
        }
        r->has_re = true;
    }
    int ci = map_find(m, "conn");
    if (ci >= 0) {
        const pgf_doc *c = m->kids[ci];
        if (c->kind == PGF_DOC_SEQ) {
            if (c->n != 2) {
                verr(v, c->line, c->col, "'conn' range must be [FROM, TO], got %zu items", c->n);
                return false;
            }
            if (!get_uint(v, c->kids[0], "conn", 1, UINT32_MAX, &r->conn_lo) ||
                !get_uint(v, c->kids[1], "conn", 1, UINT32_MAX, &r->conn_hi))
                return false;
            if (r->conn_hi < r->conn_lo) {
                verr(v, c->line, c->col, "'conn' range [%llu, %llu] is empty",
                     (unsigned long long)r->conn_lo, (unsigned long long)r->conn_hi);
                return false;
            }
            json_t *a = json_array();
            json_array_append_new(a, json_integer((json_int_t)r->conn_lo));
            json_array_append_new(a, json_integer((json_int_t)r->conn_hi));
            json_object_set_new(jm, "conn", a);
        } else {
            if (!get_uint(v, c, "conn", 1, UINT32_MAX, &r->conn_lo))
                return false;
            r->conn_hi = r->conn_lo;
            json_object_set_new(jm, "conn", json_integer((json_int_t)r->conn_lo));
        }
    }
    /* Filters that can never match at this phase are mistakes, say so. */
    bool no_session = r->phase == PGF_PHASE_ACCEPT || r->phase == PGF_PHASE_SSL_REQUEST ||
                      r->phase == PGF_PHASE_CANCEL;
    const char *sess[] = {"user", "database", "application_name"};
    for (int k = 0; k < 3 && no_session; k++) {
        int i = map_find(m, sess[k]);
        if (i >= 0) {
            verr(v, m->key_line[i], m->key_col[i],
                 "filter '%s' can never match at phase '%s' (not known before the startup "
                 "message)",
                 sess[k], pgf_phase_name(r->phase));
            return false;
        }
    }
    bool query_phase = r->phase == PGF_PHASE_QUERY || r->phase == PGF_PHASE_ROW_DESCRIPTION ||
                       r->phase == PGF_PHASE_DATA_ROW || r->phase == PGF_PHASE_COMMAND_COMPLETE;
    const char *qk[] = {"query", "query_regex"};
    for (int k = 0; k < 2 && !query_phase; k++) {
        int i = map_find(m, qk[k]);
        if (i >= 0) {
            verr(v, m->key_line[i], m->key_col[i],
                 "filter '%s' can only match at phases query, row-description, data-row, "
                 "command-complete, not '%s'",
                 qk[k], pgf_phase_name(r->phase));
            return false;
        }
    }
    return true;
}

static bool parse_error_params(struct vctx *v, pgf__rule *r, const pgf_doc *m, json_t *canon)
{
    const preset *p = NULL;
    if (!want_str(v, m, "preset", canon, &r->preset))
        return false;
    if (r->preset != NULL) {
        for (size_t i = 0; i < N_PRESETS; i++)
            if (strcmp(presets[i].name, r->preset) == 0)
                p = &presets[i];
        if (p == NULL) {
            const char *names[N_PRESETS + 1];
            for (size_t i = 0; i < N_PRESETS; i++)
                names[i] = presets[i].name;
            char list[400], msg[160];
            join_list(list, sizeof list, names, N_PRESETS, NULL);
            const pgf_doc *n = m->kids[map_find(m, "preset")];
            snprintf(msg, sizeof msg, "unknown preset '%.60s'", r->preset);
            char full[440];
            snprintf(full, sizeof full, "expected one of: %s", list);
            verr_list(v, n->line, n->col, msg, full);
            return false;
        }
    }
    if (!want_str(v, m, "severity", canon, &r->severity) ||
        !want_str(v, m, "sqlstate", canon, &r->sqlstate) ||
        !want_str(v, m, "message", canon, &r->message) ||
        !want_str(v, m, "detail", canon, &r->detail) || !want_str(v, m, "hint", canon, &r->hint))
        return false;
    if (r->severity != NULL) {
        if (strcmp(r->severity, "ERROR") != 0 && strcmp(r->severity, "FATAL") != 0 &&
            strcmp(r->severity, "WARNING") != 0) {
            const pgf_doc *n = m->kids[map_find(m, "severity")];
            verr(v, n->line, n->col,
                 "'severity' must be ERROR, FATAL or WARNING (WARNING = notice then close), got "
                 "'%.40s'",
                 r->severity);
            return false;
        }
    }
    if (r->sqlstate != NULL) {
        bool ok = strlen(r->sqlstate) == 5;
        for (int i = 0; ok && i < 5; i++)
            ok = isdigit((unsigned char)r->sqlstate[i]) || isupper((unsigned char)r->sqlstate[i]);
        if (!ok) {
            const pgf_doc *n = m->kids[map_find(m, "sqlstate")];
            verr(v, n->line, n->col,
                 "'sqlstate' must be 5 characters of 0-9 or A-Z (like 40001), got '%.40s'",
                 r->sqlstate);
            return false;
        }
    }
    const char *tk[] = {"message", "detail", "hint"};
    char *tv[] = {r->message, r->detail, r->hint};
    for (int k = 0; k < 3; k++)
        if (tv[k] != NULL && !check_template(v, m->kids[map_find(m, tk[k])], tk[k], tv[k]))
            return false;
    if (r->message == NULL && p == NULL) {
        verr(v, m->line, m->col, "action 'error' needs a 'message' or a 'preset'");
        return false;
    }
    /* Fill the rest from the preset, then from defaults. */
    struct {
        char **dst;
        const char *pv, *dv;
    } fill[] = {
        {&r->severity, p ? p->severity : NULL, "ERROR"},
        {&r->sqlstate, p ? p->sqlstate : NULL, "XX000"},
        {&r->message, p ? p->message : NULL, NULL},
        {&r->detail, p ? p->detail : NULL, NULL},
        {&r->hint, p ? p->hint : NULL, NULL},
    };
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++) {
        if (*fill[i].dst != NULL)
            continue;
        const char *s = fill[i].pv ? fill[i].pv : fill[i].dv;
        if (s != NULL && !dupstr(v, fill[i].dst, s))
            return false;
    }
    return true;
}

static bool parse_params(struct vctx *v, pgf__rule *r, const pgf_doc *m, json_t *canon)
{
    pgf_fault_action *a = &r->act;
    uint64_t x = 0;
    bool given = false;
    switch (a->kind) {
    case PGF_ACTION_ERROR:
        if (!parse_error_params(v, r, m, canon))
            return false;
        break;
    case PGF_ACTION_AUTH_FAIL:
        if (!dupstr(v, &r->severity, "FATAL") || !dupstr(v, &r->sqlstate, "28P01") ||
            !dupstr(v, &r->message, "password authentication failed for user \"%u\""))
            return false;
        break;
    case PGF_ACTION_HALF_CLOSE: {
        a->direction = 'w';
        int i = map_find(m, "direction");
        if (i >= 0) {
            const char *s;
            if (!get_str(v, m->kids[i], "direction", &s))
                return false;
            if (strcmp(s, "read") == 0)
                a->direction = 'r';
            else if (strcmp(s, "write") != 0) {
                verr(v, m->kids[i]->line, m->kids[i]->col,
                     "'direction' must be 'read' or 'write', got '%.40s'", s);
                return false;
            }
            json_object_set_new(canon, "direction", json_string(s));
        }
        break;
    }
    case PGF_ACTION_CLOSE:
    case PGF_ACTION_RESET: {
        /* Which connection: only the proxy has two; the fake server has
         * one and closes it whatever the side. */
        int i = map_find(m, "side");
        if (i >= 0) {
            const char *s;
            if (!get_str(v, m->kids[i], "side", &s))
                return false;
            if (strcmp(s, "upstream") == 0)
                a->side = 'u';
            else if (strcmp(s, "both") == 0)
                a->side = 'b';
            else if (strcmp(s, "client") != 0) {
                verr(v, m->kids[i]->line, m->kids[i]->col,
                     "'side' must be 'client', 'upstream' or 'both', got '%.40s'", s);
                return false;
            }
            json_object_set_new(canon, "side", json_string(s));
        }
        break;
    }
    case PGF_ACTION_TRUNCATE: {
        bool gb, gm;
        if (!want_uint(v, m, "bytes", 0, UINT32_MAX, canon, &x, &gb))
            return false;
        a->bytes = (uint32_t)x;
        if (!want_uint(v, m, "messages", 1, UINT32_MAX, canon, &x, &gm))
            return false;
        if (gm)
            a->messages = (uint32_t)x;
        if (gb == gm) {
            verr(v, m->line, m->col,
                 "action 'truncate' needs exactly one of 'bytes' or 'messages'");
            return false;
        }
        int i = map_find(m, "then");
        if (i >= 0) {
            const char *s;
            if (!get_str(v, m->kids[i], "then", &s))
                return false;
            if (strcmp(s, "reset") == 0)
                a->reset = true;
            else if (strcmp(s, "close") != 0) {
                verr(v, m->kids[i]->line, m->kids[i]->col,
                     "'then' must be 'close' or 'reset', got '%.40s'", s);
                return false;
            }
            json_object_set_new(canon, "then", json_string(s));
        }
        break;
    }
    case PGF_ACTION_STALL:
    case PGF_ACTION_REFUSE:
        if (!want_uint(v, m, "ms", 0, 86400000, canon, &x, NULL))
            return false;
        a->ms = (uint32_t)x;
        break;
    case PGF_ACTION_DELAY:
        if (!want_uint(v, m, "ms", 0, 86400000, canon, &x, &given))
            return false;
        if (!given) {
            verr(v, m->line, m->col, "action 'delay' needs 'ms'");
            return false;
        }
        a->ms = (uint32_t)x;
        x = 0;
        if (!want_uint(v, m, "jitter_ms", 0, 86400000, canon, &x, NULL))
            return false;
        r->jitter_ms = (uint32_t)x;
        break;
    case PGF_ACTION_DRIP:
        x = 1;
        if (!want_uint(v, m, "slice", 1, 65536, canon, &x, NULL))
            return false;
        a->slice = (uint32_t)x;
        x = 10;
        if (!want_uint(v, m, "ms", 0, 60000, canon, &x, NULL))
            return false;
        a->ms = (uint32_t)x;
        break;
    case PGF_ACTION_BANDWIDTH:
        if (!want_uint(v, m, "bytes_per_sec", 1, UINT32_MAX, canon, &x, &given))
            return false;
        if (!given) {
            verr(v, m->line, m->col, "action 'bandwidth' needs 'bytes_per_sec'");
            return false;
        }
        a->bytes_per_sec = (uint32_t)x;
        break;
    case PGF_ACTION_GARBAGE:
        x = 16;
        if (!want_uint(v, m, "bytes", 1, 1 << 20, canon, &x, NULL))
            return false;
        a->bytes = (uint32_t)x;
        break;
    default:
        break;
    }
    a->severity = r->severity;
    a->sqlstate = r->sqlstate;
    a->message = r->message;
    a->detail = r->detail;
    a->hint = r->hint;
    return true;
}

static bool parse_when(struct vctx *v, pgf__rule *r, const pgf_doc *m, json_t *canon)
{
    r->probability = 1.0;
    int i = map_find(m, "probability");
    if (i >= 0) {
        if (!get_double(v, m->kids[i], "probability", 0.0, 1.0, &r->probability))
            return false;
        json_object_set_new(canon, "probability", json_real(r->probability));
    }
    if (!want_uint(v, m, "nth", 1, UINT32_MAX, canon, &r->nth, NULL) ||
        !want_uint(v, m, "every", 1, UINT32_MAX, canon, &r->every, NULL) ||
        !want_uint(v, m, "after", 0, UINT32_MAX, canon, &r->after, NULL) ||
        !want_uint(v, m, "times", 1, UINT32_MAX, canon, &r->times, NULL) ||
        !want_uint(v, m, "budget", 1, UINT32_MAX, canon, &r->budget, NULL) ||
        !want_uint(v, m, "from_ms", 0, UINT32_MAX, canon, &r->from_ms, NULL) ||
        !want_uint(v, m, "until_ms", 1, UINT32_MAX, canon, &r->until_ms, NULL))
        return false;
    if (r->nth && r->every) {
        i = map_find(m, "every");
        verr(v, m->key_line[i], m->key_col[i], "'nth' and 'every' cannot be combined");
        return false;
    }
    if (r->until_ms && r->until_ms <= r->from_ms) {
        i = map_find(m, "until_ms");
        verr(v, m->key_line[i], m->key_col[i], "'until_ms' (%llu) must be after 'from_ms' (%llu)",
             (unsigned long long)r->until_ms, (unsigned long long)r->from_ms);
        return false;
    }
    i = map_find(m, "scope");
    if (i >= 0) {
        const char *s;
        if (!get_str(v, m->kids[i], "scope", &s))
            return false;
        if (strcmp(s, "global") == 0)
            r->scope = PGF__SCOPE_GLOBAL;
        else if (strcmp(s, "conn") != 0) {
            verr(v, m->kids[i]->line, m->kids[i]->col,
                 "'scope' must be 'conn' or 'global', got '%.40s'", s);
            return false;
        }
        json_object_set_new(canon, "scope", json_string(s));
    }
    return true;
}

/* Edit distance of a and b (optimal string alignment, so a swapped pair
 * counts 1); both at most 63 bytes, else a large number. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return 1000;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            size_t best = sub < del ? sub : del;
            best = best < ins ? best : ins;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

/* The one name in names[n] close enough to `s` to be what was meant
 * (distance <= 2 and less than half its length), or NULL. */
static const char *did_you_mean(const char *s, const char *const *names, int n)
{
    const char *best = NULL;
    size_t bd = 3;
    for (int i = 0; i < n; i++) {
        size_t d = edit_distance(s, names[i]);
        if (d < bd && d * 2 < strlen(names[i])) {
            bd = d;
            best = names[i];
        }
    }
    return best;
}

static bool parse_enum(struct vctx *v, const pgf_doc *m, const char *key,
                       int (*parse)(const char *), const char *(*name)(int), int count, int *out)
{
    int i = map_find(m, key);
    if (i < 0) {
        verr(v, m->line, m->col, "missing '%s'", key);
        return false;
    }
    const char *s;
    if (!get_str(v, m->kids[i], key, &s))
        return false;
    *out = parse(s);
    if (*out < 0) {
        const char *names[32];
        int n = 0;
        for (int k = 0; k < count && n < 32; k++)
            names[n++] = name(k);
        char list[512], msg[160], full[640];
        join_list(list, sizeof list, names, (size_t)n, NULL);
        snprintf(msg, sizeof msg, "unknown %s '%.60s'", key, s);
        const char *near = did_you_mean(s, names, n);
        char hint[96] = "";
        if (near != NULL)
            snprintf(hint, sizeof hint, "did you mean '%s'? ", near);
        snprintf(full, sizeof full, "%sexpected one of: %s", hint, list);
        verr_list(v, m->kids[i]->line, m->kids[i]->col, msg, full);
        return false;
    }
    return true;
}

static const char *phase_name_i(int i)
{
    return pgf_phase_name((pgf_phase)i);
}
static const char *action_name_i(int i)
{
    return pgf_action_name((pgf_action_kind)i);
}

static bool parse_rule(struct vctx *v, pgf__rule *r, const pgf_doc *m, size_t index)
{
    json_t *canon = NULL;
    v->rule = NULL;
    if (m->kind != PGF_DOC_MAP) {
        verr(v, m->line, m->col, "rule %zu must be a map, got %s", index + 1, node_type_name(m));
        return false;
    }
    /* Name first, so every later message can say which rule. */
    char autoname[32];
    const char *name = autoname;
    snprintf(autoname, sizeof autoname, "rule%zu", index + 1);
    int ni = map_find(m, "name");
    if (ni >= 0) {
        if (!get_str(v, m->kids[ni], "name", &name))
            return false;
        if (!valid_name(name)) {
            verr(v, m->kids[ni]->line, m->kids[ni]->col,
                 "rule name '%.64s' must be 1-64 characters of A-Z a-z 0-9 - _ .", name);
            return false;
        }
    }
    if (!dupstr(v, &r->name, name))
        return false;
    v->rule = r->name;
    r->id_hash = pgf_hash_str(r->name);

    int phase = -1, action = -1;
    /* Unknown keys before anything else: a typo is the likeliest mistake. */
    int ai = map_find(m, "action");
    if (ai >= 0 && m->kids[ai]->kind == PGF_DOC_SCALAR) {
        action = pgf_action_parse(m->kids[ai]->text);
        /* A misspelled action first: its parameters would otherwise be
         * reported as unknown keys, on the wrong line. */
        if (action < 0 &&
            !parse_enum(v, m, "action", pgf_action_parse, action_name_i, PGF_ACTION_COUNT, &action))
            return false;
    }
    for (size_t i = 0; i < m->n; i++) {
        const char *k = m->keys[i];
        if (in_list(common_keys, N_COMMON, k))
            continue;
        if (action >= 0) {
            const char *const *params = action_params((pgf_action_kind)action);
            bool ok = false;
            for (const char *const *p = params; *p; p++)
                ok = ok || strcmp(*p, k) == 0;
            if (ok)
                continue;
            if (is_any_param(k)) {
                char list[256], msg[200];
                join_list(list, sizeof list, params, 0, params);
                snprintf(msg, sizeof msg, "key '%.60s' is not a parameter of action '%s'", k,
                         pgf_action_name((pgf_action_kind)action));
                char full[300];
                snprintf(full, sizeof full, "%s takes: %s",
                         pgf_action_name((pgf_action_kind)action), list[0] ? list : "nothing");
                verr_list(v, m->key_line[i], m->key_col[i], msg, full);
                return false;
            }
        }
        char list[600], msg[160], full[640];
        join_list(list, sizeof list, common_keys, N_COMMON,
                  action >= 0 ? action_params((pgf_action_kind)action) : NULL);
        snprintf(msg, sizeof msg, "unknown key '%.60s'", k);
        snprintf(full, sizeof full, "expected one of: %s", list);
        verr_list(v, m->key_line[i], m->key_col[i], msg, full);
        return false;
    }
    if (!parse_enum(v, m, "phase", pgf_phase_parse, phase_name_i, PGF_PHASE_COUNT, &phase) ||
        !parse_enum(v, m, "action", pgf_action_parse, action_name_i, PGF_ACTION_COUNT, &action))
        return false;
    r->phase = (pgf_phase)phase;
    r->act.kind = (pgf_action_kind)action;
    if (!pgf__action_valid_at(r->act.kind, r->phase)) {
        const pgf_doc *n = m->kids[map_find(m, "action")];
        const char *ok[PGF_PHASE_COUNT];
        size_t nok = 0;
        for (int p = 0; p < PGF_PHASE_COUNT; p++)
            if (pgf__action_valid_at(r->act.kind, (pgf_phase)p))
                ok[nok++] = pgf_phase_name((pgf_phase)p);
        char list[400], msg[160], full[440];
        join_list(list, sizeof list, ok, nok, NULL);
        snprintf(msg, sizeof msg, "action '%s' is not valid at phase '%s'",
                 pgf_action_name(r->act.kind), pgf_phase_name(r->phase));
        snprintf(full, sizeof full, "valid at: %s", list);
        verr_list(v, n->line, n->col, msg, full);
        return false;
    }

    canon = json_object();
    if (canon == NULL) {
        verr(v, 0, 0, "out of memory");
        return false;
    }
    json_object_set_new(canon, "name", json_string(r->name));
    int di = map_find(m, "description");
    if (di >= 0) {
        const char *s;
        if (!get_str(v, m->kids[di], "description", &s))
            goto fail;
        json_object_set_new(canon, "description", json_string(s));
    }
    json_object_set_new(canon, "phase", json_string(pgf_phase_name(r->phase)));
    int mi = map_find(m, "match");
    if (mi >= 0 && !parse_match(v, r, m->kids[mi], canon))
        goto fail;
    json_object_set_new(canon, "action", json_string(pgf_action_name(r->act.kind)));
    if (!parse_params(v, r, m, canon) || !parse_when(v, r, m, canon))
        goto fail;
    r->act.rule = r->name;
    r->canon = json_dumps(canon, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(canon);
    if (r->canon == NULL) {
        verr(v, 0, 0, "out of memory");
        return false;
    }
    return true;
fail:
    json_decref(canon);
    return false;
}

/* ---- the set -------------------------------------------------------------- */

pgf_fault_rules *pgf_fault_rules_from_doc(const pgf_doc *root, const char *source, char *err,
                                          size_t errlen)
{
    struct vctx v = {.source = source, .err = err, .errlen = errlen};
    const pgf_doc *list = NULL;
    const pgf_doc *single = NULL;
    pgf_fault_rules *rs = pgf_fault_rules_new_empty();
    if (rs == NULL) {
        verr(&v, 0, 0, "out of memory");
        return NULL;
    }
    if (root->kind == PGF_DOC_SEQ) {
        list = root;
    } else if (root->kind == PGF_DOC_MAP &&
               (map_find(root, "phase") >= 0 || map_find(root, "action") >= 0) &&
               map_find(root, "rules") < 0) {
        single = root; /* one rule object (control API) */
    } else if (root->kind == PGF_DOC_MAP) {
        static const char *const top[] = {"version", "rules"};
        for (size_t i = 0; i < root->n; i++) {
            if (!in_list(top, 2, root->keys[i])) {
                char msg[160];
                snprintf(msg, sizeof msg, "unknown top-level key '%.60s'", root->keys[i]);
                verr_list(&v, root->key_line[i], root->key_col[i], msg,
                          "expected one of: version, rules");
                goto fail;
            }
        }
        int vi = map_find(root, "version");
        uint64_t ver;
        if (vi >= 0 && !get_uint(&v, root->kids[vi], "version", 1, 1, &ver))
            goto fail;
        int ri = map_find(root, "rules");
        if (ri >= 0) {
            list = root->kids[ri];
            if (list->kind == PGF_DOC_SCALAR && list->stype == PGF_DOC_NULL) {
                list = NULL; /* "rules:" with nothing: an empty set */
            } else if (list->kind != PGF_DOC_SEQ) {
                verr(&v, list->line, list->col, "'rules' must be a list, got %s",
                     node_type_name(list));
                goto fail;
            }
        }
    } else {
        verr(&v, root->line, root->col,
             "a fault rule file must be a map with 'rules:' (or a list of rules), got %s",
             node_type_name(root));
        goto fail;
    }
    size_t n = single ? 1 : list ? list->n : 0;
    if (n > 10000) {
        verr(&v, 0, 0, "too many rules (%zu; at most 10000)", n);
        goto fail;
    }
    /* Names seen so far, hashed (open addressing, 2n slots): a quadratic
     * duplicate check made installing 5,000 rules stall the server's loop
     * for seconds (issue 11). Slot value: rule index + 1, 0 = empty. */
    size_t nslots = 1;
    while (nslots < 2 * n)
        nslots <<= 1;
    size_t *slots = NULL;
    if (n > 0) {
        rs->rules = calloc(n, sizeof *rs->rules);
        slots = calloc(nslots, sizeof *slots);
        if (rs->rules == NULL || slots == NULL) {
            free(slots);
            verr(&v, 0, 0, "out of memory");
            goto fail;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const pgf_doc *m = single ? single : list->kids[i];
        pgf__rule *r = &rs->rules[i];
        rs->n = i + 1; /* so a failure frees what was built */
        if (!parse_rule(&v, r, m, i)) {
            free(slots);
            goto fail;
        }
        size_t h = (size_t)pgf_hash_str(r->name) & (nslots - 1);
        while (slots[h] != 0 && strcmp(rs->rules[slots[h] - 1].name, r->name) != 0)
            h = (h + 1) & (nslots - 1);
        if (slots[h] == 0) {
            slots[h] = i + 1;
            continue;
        }
        size_t j = slots[h] - 1;
        int ni = map_find(m, "name");
        v.rule = NULL;
        verr(&v, ni >= 0 ? m->key_line[ni] : m->line, ni >= 0 ? m->key_col[ni] : m->col,
             "duplicate rule name '%s' (rule %zu has it too)", r->name, j + 1);
        free(slots);
        goto fail;
    }
    free(slots);
    for (size_t i = 0; i < rs->n; i++)
        rs->by_phase_n[rs->rules[i].phase]++;
    for (int p = 0; p < PGF_PHASE_COUNT; p++) {
        if (rs->by_phase_n[p] == 0)
            continue;
        rs->by_phase[p] = malloc(rs->by_phase_n[p] * sizeof(size_t));
        if (rs->by_phase[p] == NULL) {
            verr(&v, 0, 0, "out of memory");
            goto fail;
        }
        size_t k = 0;
        for (size_t i = 0; i < rs->n; i++)
            if (rs->rules[i].phase == (pgf_phase)p)
                rs->by_phase[p][k++] = i;
    }
    return rs;
fail:
    rules_destroy(rs);
    return NULL;
}

pgf_fault_rules *pgf_fault_rules_parse_yaml(const char *text, size_t len, const char *source,
                                            char *err, size_t errlen)
{
    pgf_doc *root = pgf_doc_from_yaml(text, len, source, err, errlen);
    if (root == NULL)
        return NULL;
    pgf_fault_rules *rs = pgf_fault_rules_from_doc(root, source, err, errlen);
    pgf_doc_free(root);
    return rs;
}

pgf_fault_rules *pgf_fault_rules_parse_json(const char *text, size_t len, const char *source,
                                            char *err, size_t errlen)
{
    pgf_doc *root = pgf_doc_from_json(text, len, source, err, errlen);
    if (root == NULL)
        return NULL;
    pgf_fault_rules *rs = pgf_fault_rules_from_doc(root, source, err, errlen);
    pgf_doc_free(root);
    return rs;
}

pgf_fault_rules *pgf_fault_rules_parse_string(const char *text, size_t len, const char *source,
                                              char *err, size_t errlen)
{
    size_t i = 0;
    while (i < len && isspace((unsigned char)text[i]))
        i++;
    if (i < len && (text[i] == '{' || text[i] == '['))
        return pgf_fault_rules_parse_json(text, len, source, err, errlen);
    return pgf_fault_rules_parse_yaml(text, len, source, err, errlen);
}

pgf_fault_rules *pgf_fault_rules_parse_file(const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    if (pgf_file_read(path, &buf, &len, err, errlen) != 0)
        return NULL;
    pgf_fault_rules *rs = pgf_fault_rules_parse_yaml(buf, len, path, err, errlen);
    free(buf);
    return rs;
}
