/* sql.c - the fake server's tiny SQL responder (see sql.h).
 *
 * Recognition is by small hand-written token matching, on purpose: the set
 * of statements is closed and documented, and anything outside it gets an
 * honest error instead of a guess.
 */
#include "sql.h"

#include "pgfault/buf.h"

#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Type OIDs as PostgreSQL 15 reports them. */
enum {
    OID_BOOL = 16,
    OID_NAME = 19,
    OID_INT8 = 20,
    OID_INT4 = 23,
    OID_TEXT = 25,
    OID_VOID = 2278,
    OID_TIMESTAMPTZ = 1184,
};

/* GUC defaults; `reported` ones go out as ParameterStatus at startup, in
 * this (PostgreSQL's case-insensitive alphabetical) order. */
struct guc_default {
    const char *name;
    const char *value; /* NULL: computed per session */
    bool reported;
};

static const struct guc_default gucs[] = {
    {"application_name", "", true},
    {"client_encoding", "UTF8", true},
    {"DateStyle", "ISO, MDY", true},
    {"default_transaction_read_only", "off", true},
    {"in_hot_standby", "off", true},
    {"integer_datetimes", "on", true},
    {"IntervalStyle", "postgres", true},
    {"is_superuser", NULL, true},
    {"server_encoding", "UTF8", true},
    {"server_version", PGF_SQL_SERVER_VERSION, true},
    {"session_authorization", NULL, true},
    {"standard_conforming_strings", "on", true},
    {"TimeZone", "Etc/UTC", true},
    /* not reported, but SHOW-able and settable */
    {"default_transaction_isolation", "read committed", false},
    {"transaction_isolation", "read committed", false},
    {"transaction_read_only", "off", false},
    {"transaction_deferrable", "off", false},
    {"extra_float_digits", "1", false},
    {"search_path", "\"$user\", public", false},
    {"statement_timeout", "0", false},
    {"lock_timeout", "0", false},
    {"idle_in_transaction_session_timeout", "0", false},
    {"idle_session_timeout", "0", false},
    {"max_connections", "100", false},
    {"server_version_num", "150018", false},
    {"bytea_output", "hex", false},
    {"lc_messages", "C.UTF-8", false},
    {"lc_monetary", "C.UTF-8", false},
    {"lc_numeric", "C.UTF-8", false},
    {"lc_time", "C.UTF-8", false},
    {"datestyle", NULL, false}, /* aliases resolved by case-insensitive lookup */
    {"geqo", "on", false},
    {"jit", "on", false},
    {"work_mem", "4MB", false},
    {"synchronous_commit", "on", false},
    {"row_security", "on", false},
    {"tcp_keepalives_idle", "0", false},
    {"tcp_keepalives_interval", "0", false},
    {"tcp_keepalives_count", "0", false},
    {"password_encryption", "scram-sha-256", false},
    {"client_min_messages", "notice", false},
    {"log_statement", "none", false},
    {"timezone_abbreviations", "Default", false},
    {"default_transaction_deferrable", "off", false},
    {"options", "", false},
};
#define NGUCS (sizeof gucs / sizeof gucs[0])

static const struct guc_default *find_guc(const char *name, size_t len)
{
    for (size_t i = 0; i < NGUCS; i++)
        if (gucs[i].value != NULL || gucs[i].reported)
            if (strlen(gucs[i].name) == len && strncasecmp(gucs[i].name, name, len) == 0)
                return &gucs[i];
    return NULL;
}

void pgf_sql_session_init(pgf_sql_session *s, const char *user, const char *database,
                          bool superuser)
{
    memset(s, 0, sizeof *s);
    s->txn = 'I';
    s->user = user;
    s->database = database;
    s->superuser = superuser;
}

void pgf_sql_session_free(pgf_sql_session *s)
{
    free(s->gucs);
    s->gucs = NULL;
    s->ngucs = s->nbase = s->cap = 0;
    free(s->tx_before);
    free(s->tx_local);
    s->tx_before = NULL;
    s->tx_local = NULL;
    s->tx_nbefore = s->tx_nlocal = 0;
    s->tx_saved = false;
}

/* Slots [0, nbase) hold the startup packet's values (the session defaults
 * RESET returns to); later slots hold SET values and take precedence.
 * from: where to start looking (0 to read, nbase to set or reset). */
static int session_slot(const pgf_sql_session *s, const char *canon, int from)
{
    for (int i = s->ngucs - 1; i >= from; i--)
        if (strcmp(s->gucs[i].name, canon) == 0)
            return i;
    return -1;
}

void pgf_sql_session_mark_defaults(pgf_sql_session *s)
{
    s->nbase = s->ngucs;
}

bool pgf_sql_guc_known(const char *name)
{
    /* Custom placeholders ("myapp.setting") are accepted, as PostgreSQL does. */
    return find_guc(name, strlen(name)) != NULL || strchr(name, '.') != NULL;
}

const char *pgf_sql_reported_guc_at(int i)
{
    /* The reported entries come first in the table, in PostgreSQL's order. */
    if (i < 0 || (size_t)i >= NGUCS || !gucs[i].reported)
        return NULL;
    return gucs[i].name;
}

const char *pgf_sql_reported_guc(const char *name)
{
    const struct guc_default *g = find_guc(name, strlen(name));
    return g != NULL && g->reported ? g->name : NULL;
}

/* PostgreSQL canonicalizes a few values; mimic the ones clients look at.
 * current: the value before (DateStyle keeps its order when only the style
 * is given, as check_datestyle does). */
static void canonical_value(const char *canon, const char *value, const char *current, char *out,
                            size_t outlen)
{
    if (strcmp(canon, "DateStyle") == 0) {
        const char *style = NULL, *order = NULL;
        char tmp[128];
        snprintf(tmp, sizeof tmp, "%s", value);
        for (char *save = NULL, *tok = strtok_r(tmp, ", \t", &save); tok != NULL;
             tok = strtok_r(NULL, ", \t", &save)) {
            if (strcasecmp(tok, "iso") == 0)
                style = "ISO";
            else if (strcasecmp(tok, "sql") == 0)
                style = "SQL";
            else if (strcasecmp(tok, "postgres") == 0)
                style = "Postgres";
            else if (strcasecmp(tok, "german") == 0)
                style = "German", order = order ? order : "DMY";
            else if (strcasecmp(tok, "dmy") == 0 || strcasecmp(tok, "euro") == 0 ||
                     strcasecmp(tok, "european") == 0)
                order = "DMY";
            else if (strcasecmp(tok, "mdy") == 0 || strcasecmp(tok, "us") == 0 ||
                     strcasecmp(tok, "noneuro") == 0 || strcasecmp(tok, "noneuropean") == 0)
                order = "MDY";
            else if (strcasecmp(tok, "ymd") == 0)
                order = "YMD";
        }
        const char *comma = current ? strchr(current, ',') : NULL;
        char cur_style[16] = "ISO";
        if (comma != NULL && (size_t)(comma - current) < sizeof cur_style)
            snprintf(cur_style, sizeof cur_style, "%.*s", (int)(comma - current), current);
        snprintf(out, outlen, "%s, %s", style ? style : cur_style,
                 order   ? order
                 : comma ? comma + 2
                         : "MDY");
        return;
    }
    if (strcmp(canon, "client_encoding") == 0 &&
        (strcasecmp(value, "utf8") == 0 || strcasecmp(value, "utf-8") == 0 ||
         strcasecmp(value, "unicode") == 0)) {
        snprintf(out, outlen, "UTF8");
        return;
    }
    snprintf(out, outlen, "%s", value);
}

enum { GUC_OK = 0, GUC_UNKNOWN = -1, GUC_FULL = -2, GUC_NOMEM = -3 };

/* Remember the settings before the open block first changes one (what
 * ROLLBACK restores). False on out of memory. */
static bool tx_save(pgf_sql_session *s)
{
    if (s->txn == 'I' || s->tx_saved)
        return true;
    if (s->ngucs > 0) {
        s->tx_before = malloc((size_t)s->ngucs * sizeof *s->tx_before);
        if (s->tx_before == NULL)
            return false;
        memcpy(s->tx_before, s->gucs, (size_t)s->ngucs * sizeof *s->tx_before);
    }
    s->tx_nbefore = s->ngucs;
    s->tx_saved = true;
    return true;
}

static int guc_put(pgf_sql_session *s, const char *name, const char *value)
{
    const struct guc_default *g = find_guc(name, strlen(name));
    char custom[64];
    const char *canon;
    if (g != NULL) {
        canon = g->name;
    } else if (strchr(name, '.') != NULL && strlen(name) < sizeof custom) {
        snprintf(custom, sizeof custom, "%s", name);
        for (char *p = custom; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        canon = custom;
    } else {
        return GUC_UNKNOWN;
    }
    if (!tx_save(s))
        return GUC_NOMEM;
    char v[sizeof s->gucs[0].value];
    canonical_value(canon, value, pgf_sql_get_guc(s, canon), v, sizeof v);
    int i = session_slot(s, canon, s->nbase);
    if (i < 0) {
        if (s->ngucs >= PGF_SQL_MAX_GUCS)
            return GUC_FULL; /* bounded memory per connection: refused, never dropped */
        if (s->ngucs == s->cap) {
            int cap = s->cap ? s->cap * 2 : 2;
            struct pgf_sql_guc *g2 = realloc(s->gucs, (size_t)cap * sizeof *g2);
            if (g2 == NULL)
                return GUC_NOMEM;
            s->gucs = g2;
            s->cap = cap;
        }
        i = s->ngucs++;
        snprintf(s->gucs[i].name, sizeof s->gucs[i].name, "%s", canon);
    }
    memcpy(s->gucs[i].value, v, sizeof v);
    return GUC_OK;
}

bool pgf_sql_set_guc(pgf_sql_session *s, const char *name, const char *value)
{
    return guc_put(s, name, value) == GUC_OK;
}

/* The statement's error for a setting guc_put refused. */
static void guc_put_error(int e, const char *name, pgf_sql_result *r);

/* False on out of memory (nothing changed). */
static bool reset_guc(pgf_sql_session *s, const char *canon)
{
    int i = session_slot(s, canon, s->nbase);
    if (i < 0)
        return true;
    if (!tx_save(s))
        return false;
    s->ngucs--;
    if (i != s->ngucs) {
        s->gucs[i] = s->gucs[s->ngucs];
    }
    return true;
}

/* SET LOCAL name in the open block: remember, the first time, the value
 * the name has at session level (what COMMIT gives back). */
static bool tx_local(pgf_sql_session *s, const char *canon)
{
    for (int k = 0; k < s->tx_nlocal; k++)
        if (strcmp(s->tx_local[k].name, canon) == 0)
            return true;
    struct pgf_sql_local *l = realloc(s->tx_local, (size_t)(s->tx_nlocal + 1) * sizeof *l);
    if (l == NULL)
        return false;
    s->tx_local = l;
    l = &s->tx_local[s->tx_nlocal++];
    snprintf(l->name, sizeof l->name, "%s", canon);
    int i = session_slot(s, canon, s->nbase);
    l->had = i >= 0;
    snprintf(l->value, sizeof l->value, "%s", i >= 0 ? s->gucs[i].value : "");
    return true;
}

/* A session-level SET or RESET of name in the open block: no longer local. */
static void tx_unlocal(pgf_sql_session *s, const char *canon)
{
    for (int k = 0; k < s->tx_nlocal; k++)
        if (strcmp(s->tx_local[k].name, canon) == 0) {
            s->tx_local[k] = s->tx_local[--s->tx_nlocal];
            return;
        }
}

/* The block ends: COMMIT keeps its session-level settings and gives back
 * the SET LOCAL ones; ROLLBACK (and COMMIT of a failed block) gives back
 * everything, as PostgreSQL does. */
static void tx_end(pgf_sql_session *s, bool commit)
{
    if (!s->tx_saved)
        return;
    if (commit) {
        for (int k = 0; k < s->tx_nlocal; k++) {
            const struct pgf_sql_local *l = &s->tx_local[k];
            int i = session_slot(s, l->name, s->nbase);
            if (l->had && i >= 0)
                snprintf(s->gucs[i].value, sizeof s->gucs[i].value, "%s", l->value);
            else if (!l->had && i >= 0)
                s->gucs[i] = s->gucs[--s->ngucs];
        }
    } else {
        /* Custom placeholders the block created stay, empty, as in
         * PostgreSQL: after the snapshot, in room made for them (a RESET
         * ALL in the block may have emptied the array since, so the
         * snapshot and they together can outgrow it; found by fuzz_conn). */
        char created[PGF_SQL_MAX_GUCS][sizeof s->gucs[0].name];
        int ncreated = 0;
        for (int i = s->nbase; i < s->ngucs; i++) {
            if (find_guc(s->gucs[i].name, strlen(s->gucs[i].name)) != NULL)
                continue;
            bool before = false;
            for (int k = 0; k < s->tx_nbefore && !before; k++)
                before = strcmp(s->tx_before[k].name, s->gucs[i].name) == 0;
            if (!before)
                memcpy(created[ncreated++], s->gucs[i].name, sizeof created[0]);
        }
        if (s->tx_nbefore + ncreated > s->cap) {
            struct pgf_sql_guc *g2 =
                realloc(s->gucs, (size_t)(s->tx_nbefore + ncreated) * sizeof *g2);
            if (g2 != NULL) {
                s->gucs = g2;
                s->cap = s->tx_nbefore + ncreated;
            } else {
                ncreated = s->cap - s->tx_nbefore; /* out of memory: the placeholders that fit */
            }
        }
        if (s->tx_nbefore > 0)
            memcpy(s->gucs, s->tx_before, (size_t)s->tx_nbefore * sizeof *s->gucs);
        s->ngucs = s->tx_nbefore;
        for (int k = 0; k < ncreated; k++) {
            memcpy(s->gucs[s->ngucs].name, created[k], sizeof created[0]);
            s->gucs[s->ngucs++].value[0] = '\0';
        }
    }
    free(s->tx_before);
    free(s->tx_local);
    s->tx_before = NULL;
    s->tx_local = NULL;
    s->tx_nbefore = s->tx_nlocal = 0;
    s->tx_saved = false;
}

/* transaction_isolation, _read_only, _deferrable: inside a transaction
 * block the block's own; outside one, the default the next one starts with
 * (PostgreSQL runs each statement in a transaction of its own). */
static const char *xact_guc(const pgf_sql_session *s, const char *canon)
{
    static const char *const names[3][2] = {
        {"transaction_isolation", "default_transaction_isolation"},
        {"transaction_read_only", "default_transaction_read_only"},
        {"transaction_deferrable", "default_transaction_deferrable"},
    };
    for (int k = 0; k < 3; k++) {
        if (strcmp(canon, names[k][0]) != 0)
            continue;
        if (s->txn == 'I' || s->xact.isolation == NULL)
            return pgf_sql_get_guc(s, names[k][1]);
        if (k == 0)
            return s->xact.isolation;
        return (k == 1 ? s->xact.read_only : s->xact.deferrable) ? "on" : "off";
    }
    return NULL;
}

const char *pgf_sql_get_guc(const pgf_sql_session *s, const char *name)
{
    const struct guc_default *g = find_guc(name, strlen(name));
    const char *canon = g != NULL ? g->name : name;
    const char *xv = g != NULL ? xact_guc(s, canon) : NULL;
    if (xv != NULL)
        return xv;
    int i = session_slot(s, canon, 0);
    if (i >= 0)
        return s->gucs[i].value;
    if (g == NULL)
        return NULL;
    if (strcmp(g->name, "is_superuser") == 0)
        return s->superuser ? "on" : "off";
    if (strcmp(g->name, "session_authorization") == 0)
        return s->user != NULL ? s->user : "";
    return g->value;
}

/* ---- statement splitting ---- */

int pgf_sql_split(const char *sql, void (*fn)(const char *stmt, size_t len, void *arg), void *arg)
{
    int count = 0;
    const char *start = sql, *p = sql;
    char quote = 0;
    for (;; p++) {
        char ch = *p;
        if (quote) {
            if (ch == '\0')
                goto flush;
            if (ch == quote)
                quote = 0;
            continue;
        }
        if (ch == '\'' || ch == '"') {
            quote = ch;
            continue;
        }
        if (ch == '-' && p[1] == '-') {
            while (p[1] != '\0' && p[1] != '\n')
                p++;
            continue;
        }
        if (ch == '/' && p[1] == '*') { /* block comments nest, as in PostgreSQL */
            int depth = 1;
            p++;
            while (depth > 0 && p[1] != '\0') {
                p++;
                if (p[0] == '/' && p[1] == '*')
                    depth++, p++;
                else if (p[0] == '*' && p[1] == '/')
                    depth--, p++;
            }
            if (depth > 0) /* unterminated: the rest is one statement */
                p += strlen(p) - 1;
            continue;
        }
        if (ch == '$' && (p == sql || !(isalnum((unsigned char)p[-1]) || p[-1] == '_'))) {
            /* Dollar quote $tag$...$tag$ (DO blocks); $1 is a parameter. */
            const char *t = p + 1;
            while (isalpha((unsigned char)*t) || *t == '_' ||
                   (t > p + 1 && isdigit((unsigned char)*t)))
                t++;
            if (*t == '$') {
                size_t taglen = (size_t)(t - p) + 1;
                const char *close = t + 1;
                while ((close = strchr(close, '$')) != NULL && strncmp(close, p, taglen) != 0)
                    close++;
                p = close != NULL ? close + taglen - 1 : p + strlen(p) - 1;
                continue;
            }
        }
        if (ch == ';' || ch == '\0') {
        flush:;
            const char *a = start, *b = p;
            while (a < b && isspace((unsigned char)*a))
                a++;
            while (b > a && isspace((unsigned char)b[-1]))
                b--;
            if (b > a) {
                fn(a, (size_t)(b - a), arg);
                count++;
            }
            if (*p == '\0')
                break;
            start = p + 1;
        }
    }
    return count;
}

/* ---- a minimal lexer ---- */

typedef struct lexer {
    const char *p, *end, *base;
} lexer;

typedef struct token {
    const char *s;
    size_t len;
    char kind; /* 'w' word, 'n' number, 's' string, 'p' $n param, 'o' operator/punct, 0 end */
} token;

static void skip_space(lexer *lx)
{
    for (;;) {
        while (lx->p < lx->end && isspace((unsigned char)*lx->p))
            lx->p++;
        if (lx->p + 1 < lx->end && lx->p[0] == '-' && lx->p[1] == '-') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
            continue;
        }
        if (lx->p + 1 < lx->end && lx->p[0] == '/' && lx->p[1] == '*') {
            const char *q = lx->p + 2;
            while (q + 1 < lx->end && !(q[0] == '*' && q[1] == '/'))
                q++;
            lx->p = q + 1 < lx->end ? q + 2 : lx->end;
            continue;
        }
        return;
    }
}

static token next(lexer *lx)
{
    skip_space(lx);
    token t = {lx->p, 0, 0};
    if (lx->p >= lx->end)
        return t;
    unsigned char ch = (unsigned char)*lx->p;
    const char *q = lx->p;
    if (isalpha(ch) || ch == '_') {
        while (q < lx->end && (isalnum((unsigned char)*q) || *q == '_' || *q == '.'))
            q++;
        t.kind = 'w';
    } else if (isdigit(ch)) {
        while (q < lx->end && (isdigit((unsigned char)*q) || *q == '.'))
            q++;
        t.kind = 'n';
    } else if (ch == '\'') {
        q++;
        while (q < lx->end) {
            if (*q == '\'' && (q + 1 >= lx->end || q[1] != '\''))
                break;
            q += *q == '\'' ? 2 : 1;
        }
        if (q < lx->end)
            q++;
        t.kind = 's';
    } else if (ch == '"') {
        q++;
        while (q < lx->end && *q != '"')
            q++;
        if (q < lx->end)
            q++;
        t.kind = 'w';
    } else if (ch == '$' && q + 1 < lx->end && isdigit((unsigned char)q[1])) {
        q++;
        while (q < lx->end && isdigit((unsigned char)*q))
            q++;
        t.kind = 'p';
    } else if (ch == ':' && q + 1 < lx->end && q[1] == ':') {
        q += 2;
        t.kind = 'o';
    } else {
        q++;
        t.kind = 'o';
    }
    t.len = (size_t)(q - lx->p);
    lx->p = q;
    return t;
}

static bool is_word(token t, const char *w)
{
    return t.kind == 'w' && strlen(w) == t.len && strncasecmp(t.s, w, t.len) == 0;
}

static bool is_op(token t, const char *op)
{
    return t.kind == 'o' && strlen(op) == t.len && strncmp(t.s, op, t.len) == 0;
}

static void tok_copy(token t, char *out, size_t outlen)
{
    size_t n = t.len < outlen - 1 ? t.len : outlen - 1;
    memcpy(out, t.s, n);
    out[n] = '\0';
}

/* Unquote an identifier or string token into out (lower-casing bare words
 * when fold is set, as PostgreSQL does for identifiers). */
static void unquote(token t, char *out, size_t outlen, bool fold)
{
    if (t.len >= 2 && (t.s[0] == '\'' || t.s[0] == '"')) {
        size_t o = 0;
        for (size_t i = 1; i + 1 < t.len && o + 1 < outlen; i++) {
            out[o++] = t.s[i];
            if (t.s[i] == '\'' && t.s[i + 1] == '\'')
                i++;
        }
        out[o] = '\0';
        return;
    }
    tok_copy(t, out, outlen);
    if (fold)
        for (char *p = out; *p; p++)
            *p = (char)tolower((unsigned char)*p);
}

/* ---- results ---- */

static void set_error(pgf_sql_result *r, const char *sqlstate, const char *position,
                      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void set_error(pgf_sql_result *r, const char *sqlstate, const char *position,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->err_message, sizeof r->err_message, fmt, ap);
    va_end(ap);
    r->kind = PGF_SQL_ERROR;
    memset(&r->error, 0, sizeof r->error);
    r->error.severity = "ERROR";
    r->error.sqlstate = sqlstate;
    r->error.message = r->err_message;
    if (position != NULL) {
        snprintf(r->err_position, sizeof r->err_position, "%s", position);
        r->error.position = r->err_position;
    }
}

static void set_notice(pgf_sql_result *r, const char *sqlstate, const char *msg)
{
    r->has_notice = true;
    snprintf(r->notice_message, sizeof r->notice_message, "%s", msg);
    memset(&r->notice, 0, sizeof r->notice);
    r->notice.severity = "WARNING";
    r->notice.sqlstate = sqlstate;
    r->notice.message = r->notice_message;
}

static void add_col(pgf_sql_result *r, const char *name, uint32_t type)
{
    int i = r->ncols++;
    snprintf(r->col_names[i], sizeof r->col_names[i], "%s", name);
    pgf_col *c = &r->cols[i];
    memset(c, 0, sizeof *c);
    c->name = r->col_names[i];
    c->type_oid = type;
    c->typmod = -1;
    switch (type) {
    case OID_BOOL:
        c->typlen = 1;
        break;
    case OID_NAME:
        c->typlen = 64;
        break;
    case OID_INT8:
    case OID_TIMESTAMPTZ:
        c->typlen = 8;
        break;
    case OID_INT4:
    case OID_VOID:
        c->typlen = 4;
        break;
    default:
        c->typlen = -1;
    }
}

static void set_rows(pgf_sql_result *r, const char *tag)
{
    r->kind = PGF_SQL_ROWS;
    r->nrows = 1;
    snprintf(r->tag, sizeof r->tag, "%s", tag);
}

static void set_command(pgf_sql_result *r, const char *tag)
{
    r->kind = PGF_SQL_COMMAND;
    snprintf(r->tag, sizeof r->tag, "%s", tag);
}

static const char *const sql_keywords[] = {
    "SELECT",  "INSERT",     "UPDATE",   "DELETE",  "CREATE",   "DROP",     "ALTER",
    "WITH",    "VALUES",     "TABLE",    "EXPLAIN", "COPY",     "LISTEN",   "NOTIFY",
    "VACUUM",  "TRUNCATE",   "ANALYZE",  "GRANT",   "REVOKE",   "PREPARE",  "EXECUTE",
    "DO",      "CALL",       "LOCK",     "FETCH",   "DECLARE",  "CLOSE",    "CHECKPOINT",
    "COMMENT", "REINDEX",    "CLUSTER",  "LOAD",    "REFRESH",  "SECURITY", "MOVE",
    "IMPORT",  "MERGE",      "REASSIGN", "SHOW",    "SET",      "RESET",    "DISCARD",
    "BEGIN",   "START",      "COMMIT",   "END",     "ROLLBACK", "ABORT",    "SAVEPOINT",
    "RELEASE", "DEALLOCATE", "UNLISTEN",
};

static bool is_sql_keyword(token t)
{
    for (size_t i = 0; i < sizeof sql_keywords / sizeof sql_keywords[0]; i++)
        if (is_word(t, sql_keywords[i]))
            return true;
    return false;
}

static void syntax_error(pgf_sql_result *r, lexer *lx, token t)
{
    char near[64], pos[16];
    if (t.kind == 0) {
        snprintf(pos, sizeof pos, "%d", (int)(lx->end - lx->base) + 1);
        set_error(r, "42601", pos, "syntax error at end of input");
        return;
    }
    tok_copy(t, near, sizeof near);
    snprintf(pos, sizeof pos, "%d", (int)(t.s - lx->base) + 1);
    set_error(r, "42601", pos, "syntax error at or near \"%s\"", near);
}

static void unsupported(pgf_sql_result *r, const char *what)
{
    set_error(r, "0A000", NULL, "pgfault fake server does not implement this statement: %s", what);
    r->error.hint = "It answers SELECT 1, SELECT <integer>, version(), current_database(), "
                    "now(), pg_backend_pid(), pg_sleep(n), SHOW, SET, RESET, DISCARD, "
                    "transaction control and what application stacks send on connect and on "
                    "a pool's release; give it canned answers with --answers "
                    "(docs/introspection.md).";
}

/* ---- SELECT <one expression> [AS alias] ---- */

static bool parse_int64(const char *s, size_t len, int64_t *out)
{
    char tmp[32];
    if (len == 0 || len >= sizeof tmp)
        return false;
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    long long v = strtoll(tmp, &end, 10);
    if (errno != 0 || *end != '\0')
        return false;
    *out = v;
    return true;
}

/* A cast suffix "::type"; returns the OID or 0 when absent; -1 unknown. */
static long parse_cast(lexer *lx, char *type_name, size_t len)
{
    lexer save = *lx;
    token t = next(lx);
    if (!is_op(t, "::")) {
        *lx = save;
        return 0;
    }
    t = next(lx);
    if (t.kind != 'w')
        return -1;
    if (is_word(t, "int") || is_word(t, "integer") || is_word(t, "int4")) {
        snprintf(type_name, len, "int4");
        return OID_INT4;
    }
    if (is_word(t, "bigint") || is_word(t, "int8")) {
        snprintf(type_name, len, "int8");
        return OID_INT8;
    }
    if (is_word(t, "text") || is_word(t, "varchar")) {
        snprintf(type_name, len, "%s", is_word(t, "text") ? "text" : "varchar");
        return OID_TEXT;
    }
    if (is_word(t, "bool") || is_word(t, "boolean")) {
        snprintf(type_name, len, "bool");
        return OID_BOOL;
    }
    return -1;
}

static bool at_end(lexer *lx)
{
    lexer save = *lx;
    token t = next(lx);
    *lx = save;
    return t.kind == 0;
}

/* Optional "[AS] alias" at the end; renames column 0. */
static bool parse_alias(lexer *lx, pgf_sql_result *r)
{
    lexer save = *lx;
    token t = next(lx);
    if (t.kind == 0) {
        *lx = save;
        return true;
    }
    if (is_word(t, "as"))
        t = next(lx);
    if (t.kind != 'w' || is_sql_keyword(t) || is_word(t, "from"))
        return false;
    unquote(t, r->col_names[0], sizeof r->col_names[0], t.s[0] != '"');
    return at_end(lx);
}

static bool fn_call(lexer *lx, token t, const char *name)
{
    if (!is_word(t, name)) {
        char qualified[64];
        snprintf(qualified, sizeof qualified, "pg_catalog.%s", name);
        if (!is_word(t, qualified))
            return false;
    }
    lexer save = *lx;
    if (is_op(next(lx), "(") && is_op(next(lx), ")"))
        return true;
    *lx = save;
    return false;
}

/* The settings in milliseconds (GUC_UNIT_MS) the fake knows. */
static bool is_ms_guc(const char *canon)
{
    return strcmp(canon, "statement_timeout") == 0 || strcmp(canon, "lock_timeout") == 0 ||
           strcmp(canon, "idle_in_transaction_session_timeout") == 0 ||
           strcmp(canon, "idle_session_timeout") == 0;
}

static const struct {
    const char *unit;
    double ms;
} ms_units[] = {{"us", 0.001},  {"ms", 1},      {"s", 1000},
                {"min", 60000}, {"h", 3600000}, {"d", 86400000}};

/* PostgreSQL's parse_int for a GUC in ms: a number (a fraction is rounded
 * to the nearest), optional spaces, an optional unit. 0 ok, 1 not a
 * number, 2 an unknown unit. */
static int parse_ms(const char *v, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (end == v || errno != 0)
        return 1;
    while (isspace((unsigned char)*end))
        end++;
    if (*end == '\0') {
        *out = d;
        return 0;
    }
    size_t n = strlen(end);
    while (n > 0 && isspace((unsigned char)end[n - 1]))
        n--;
    for (size_t i = 0; i < sizeof ms_units / sizeof ms_units[0]; i++)
        if (strlen(ms_units[i].unit) == n && strncmp(end, ms_units[i].unit, n) == 0) {
            *out = d * ms_units[i].ms;
            return 0;
        }
    return 2;
}

/* A setting in ms as SHOW prints it: the largest unit that divides it. */
static void format_ms(long long ms, char *out, size_t len)
{
    for (size_t i = sizeof ms_units / sizeof ms_units[0]; i-- > 1;) {
        long long u = (long long)ms_units[i].ms;
        if (ms != 0 && ms % u == 0) {
            snprintf(out, len, "%lld%s", ms / u, ms_units[i].unit);
            return;
        }
    }
    snprintf(out, len, "%lld", ms);
}

int64_t pgf_sql_guc_ms(const pgf_sql_session *s, const char *canon)
{
    /* after every ReadyForQuery: only the session's own slots are looked
     * at (a few), since every such setting defaults to 0, off */
    int i = session_slot(s, canon, 0);
    double ms = 0;
    return i >= 0 && parse_ms(s->gucs[i].value, &ms) == 0 && ms > 0 ? (int64_t)ms : 0;
}

/* now(): a timestamptz as PostgreSQL prints it with DateStyle ISO in UTC
 * ("2026-12-02 18:25:01.1234+00": trailing zeros of the fraction dropped).
 * False if the session's TimeZone or DateStyle asks for another form: the
 * fake has no time zone database, and a wrong answer is worse than none. */
static bool format_timestamptz(const pgf_sql_session *s, int64_t us, char *out, size_t len)
{
    const char *tz = pgf_sql_get_guc(s, "TimeZone");
    const char *ds = pgf_sql_get_guc(s, "DateStyle");
    static const char *const utc[] = {"UTC",       "Etc/UTC",      "GMT", "Etc/GMT",
                                      "Zulu",      "Etc/Zulu",     "UCT", "Etc/UCT",
                                      "Universal", "Etc/Universal"};
    bool is_utc = false;
    for (size_t i = 0; i < sizeof utc / sizeof utc[0] && tz != NULL; i++)
        is_utc = is_utc || strcasecmp(tz, utc[i]) == 0;
    if (!is_utc || ds == NULL || strncmp(ds, "ISO", 3) != 0)
        return false;
    time_t secs = (time_t)(us >= 0 ? us / 1000000 : (us - 999999) / 1000000);
    int frac = (int)(us - (int64_t)secs * 1000000);
    struct tm tm;
    if (gmtime_r(&secs, &tm) == NULL)
        return false;
    char f[16] = "";
    if (frac > 0) {
        snprintf(f, sizeof f, ".%06d", frac);
        for (size_t n = strlen(f); f[n - 1] == '0'; n--)
            f[n - 1] = '\0';
    }
    snprintf(out, len, "%04d-%02d-%02d %02d:%02d:%02d%s+00", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, f);
    return true;
}

static void exec_select(pgf_sql_session *s, lexer *lx, const char *const *params, int nparams,
                        pgf_sql_result *r)
{
    token t = next(lx);
    char type_name[16] = "";
    if (t.kind == 'n' || (is_op(t, "-") && lx->p < lx->end && isdigit((unsigned char)*lx->p))) {
        bool neg = t.kind == 'o';
        if (neg)
            t = next(lx);
        int64_t v;
        if (t.kind != 'n' || !parse_int64(t.s, t.len, &v)) {
            unsupported(r, "non-integer literal");
            return;
        }
        v = neg ? -v : v;
        long cast = parse_cast(lx, type_name, sizeof type_name);
        uint32_t type = (v > INT32_MAX || v < INT32_MIN) ? OID_INT8 : OID_INT4;
        if (cast < 0) {
            unsupported(r, "cast");
            return;
        }
        if (cast == OID_INT4 && type == OID_INT8) {
            set_error(r, "22003", NULL, "integer out of range");
            return;
        }
        if (cast > 0)
            type = (uint32_t)cast;
        add_col(r, cast > 0 ? type_name : "?column?", type);
        if (type == OID_BOOL)
            snprintf(r->values[0], sizeof r->values[0], "%s", v ? "t" : "f");
        else
            snprintf(r->values[0], sizeof r->values[0], "%" PRId64, v);
        if (!parse_alias(lx, r)) {
            unsupported(r, "SELECT with FROM or more than one expression");
            return;
        }
        set_rows(r, "SELECT 1");
        return;
    }
    if (t.kind == 'p') {
        int64_t idx;
        if (!parse_int64(t.s + 1, t.len - 1, &idx) || idx < 1 || idx > nparams) {
            set_error(r, "42P02", NULL, "there is no parameter $%.*s", (int)t.len - 1, t.s + 1);
            return;
        }
        long cast = parse_cast(lx, type_name, sizeof type_name);
        if (cast < 0) {
            unsupported(r, "cast");
            return;
        }
        add_col(r, cast > 0 ? type_name : "?column?", cast > 0 ? (uint32_t)cast : OID_TEXT);
        const char *v = params[idx - 1];
        if (v == NULL)
            r->nulls[0] = true;
        else
            snprintf(r->values[0], sizeof r->values[0], "%s", v);
        if (!parse_alias(lx, r)) {
            unsupported(r, "SELECT with FROM or more than one expression");
            return;
        }
        set_rows(r, "SELECT 1");
        return;
    }
    if (t.kind == 's') {
        add_col(r, "?column?", OID_TEXT);
        unquote(t, r->values[0], sizeof r->values[0], false);
        if (!parse_alias(lx, r)) {
            unsupported(r, "SELECT with FROM or more than one expression");
            return;
        }
        set_rows(r, "SELECT 1");
        return;
    }
    if (is_word(t, "true") || is_word(t, "false")) {
        add_col(r, "bool", OID_BOOL);
        snprintf(r->values[0], sizeof r->values[0], "%s", is_word(t, "true") ? "t" : "f");
    } else if (is_word(t, "null")) {
        add_col(r, "?column?", OID_TEXT);
        r->nulls[0] = true;
    } else if (fn_call(lx, t, "version")) {
        add_col(r, "version", OID_TEXT);
        snprintf(r->values[0], sizeof r->values[0],
                 "PostgreSQL 15.18 (pgfault fake server) on x86_64-pc-linux-gnu, compiled by "
                 "gcc, 64-bit");
    } else if (fn_call(lx, t, "current_database")) {
        add_col(r, "current_database", OID_NAME);
        snprintf(r->values[0], sizeof r->values[0], "%s", s->database ? s->database : "");
    } else if (fn_call(lx, t, "current_schema") || is_word(t, "current_schema")) {
        add_col(r, "current_schema", OID_NAME);
        snprintf(r->values[0], sizeof r->values[0], "public");
    } else if (is_word(t, "current_user") || is_word(t, "session_user") || is_word(t, "user")) {
        add_col(r, is_word(t, "session_user") ? "session_user" : "current_user", OID_NAME);
        snprintf(r->values[0], sizeof r->values[0], "%s", s->user ? s->user : "");
    } else if (fn_call(lx, t, "pg_backend_pid")) {
        add_col(r, "pg_backend_pid", OID_INT4);
        snprintf(r->values[0], sizeof r->values[0], "%d", (int)s->pid);
    } else if (fn_call(lx, t, "pg_advisory_unlock_all")) {
        /* asyncpg's pool runs it on every release; the fake holds no locks */
        add_col(r, "pg_advisory_unlock_all", OID_VOID);
    } else if (fn_call(lx, t, "now") || is_word(t, "current_timestamp") ||
               fn_call(lx, t, "transaction_timestamp") || fn_call(lx, t, "statement_timestamp")) {
        /* now() is the transaction's start, statement_timestamp() the statement's */
        bool stmt =
            is_word(t, "statement_timestamp") || is_word(t, "pg_catalog.statement_timestamp");
        int64_t us = s->txn != 'I' && !stmt ? s->xact.start_us : s->now_us;
        char name[32];
        tok_copy(t, name, sizeof name);
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        char *dot = strrchr(name, '.');
        add_col(r, dot != NULL ? dot + 1 : name, OID_TIMESTAMPTZ);
        if (!format_timestamptz(s, us, r->values[0], sizeof r->values[0])) {
            unsupported(r,
                        "a timestamp in a TimeZone other than UTC or a DateStyle other than ISO");
            return;
        }
    } else if (fn_call(lx, t, "pg_is_in_recovery")) {
        add_col(r, "pg_is_in_recovery", OID_BOOL);
        snprintf(r->values[0], sizeof r->values[0], "f");
    } else if (is_word(t, "pg_sleep") || is_word(t, "pg_catalog.pg_sleep")) {
        token a = next(lx), n = next(lx), b = next(lx);
        bool neg_arg = false;
        if (is_op(n, "-")) { /* pg_sleep(-1) sleeps 0 */
            neg_arg = true;
            n = b;
            b = next(lx);
        }
        if (!is_op(a, "(") || (n.kind != 'n' && n.kind != 'p') || !is_op(b, ")")) {
            syntax_error(r, lx, b);
            return;
        }
        char num[64];
        if (n.kind == 'p') {
            int64_t idx;
            if (!parse_int64(n.s + 1, n.len - 1, &idx) || idx < 1 || idx > nparams) {
                set_error(r, "42P02", NULL, "there is no parameter $%.*s", (int)n.len - 1, n.s + 1);
                return;
            }
            /* NULL (also what Describe passes): pg_sleep is strict, no sleep. */
            snprintf(num, sizeof num, "%s", params[idx - 1] ? params[idx - 1] : "0");
        } else {
            tok_copy(n, num, sizeof num);
        }
        double secs = strtod(num, NULL);
        if (neg_arg || secs < 0)
            secs = 0;
        if (secs > 86400.0)
            secs = 86400.0;
        add_col(r, "pg_sleep", OID_VOID);
        if (!parse_alias(lx, r)) {
            unsupported(r, "SELECT with FROM or more than one expression");
            return;
        }
        r->kind = PGF_SQL_SLEEP;
        r->nrows = 1;
        r->sleep_ms = (uint64_t)(secs * 1000.0 + 0.5);
        int64_t limit = pgf_sql_guc_ms(s, "statement_timeout");
        if (limit > 0 && r->sleep_ms > (uint64_t)limit) {
            r->sleep_ms = (uint64_t)limit; /* then 57014, as PostgreSQL's timer does */
            r->sleep_timeout = true;
        }
        snprintf(r->tag, sizeof r->tag, "SELECT 1");
        return;
    } else if (t.kind == 0) {
        /* "SELECT" alone returns one row with no columns. */
        set_rows(r, "SELECT 1");
        return;
    } else {
        unsupported(r, "SELECT of anything but a literal or a known function");
        return;
    }
    if (!parse_alias(lx, r)) {
        unsupported(r, "SELECT with FROM or more than one expression");
        return;
    }
    set_rows(r, "SELECT 1");
}

/* ---- transaction characteristics ---- */

static const char *const iso_levels[] = {"serializable", "repeatable read", "read committed",
                                         "read uncommitted"};

static const char *iso_level(const char *v)
{
    for (size_t i = 0; i < sizeof iso_levels / sizeof iso_levels[0]; i++)
        if (v != NULL && strcasecmp(v, iso_levels[i]) == 0)
            return iso_levels[i];
    return NULL;
}

/* PostgreSQL's parse_bool: 1, 0, or -1 if the text is not a Boolean. */
static int parse_bool(const char *v)
{
    size_t n = v != NULL ? strlen(v) : 0;
    static const char *const words[] = {"true", "false", "yes", "no"};
    if (n == 0)
        return -1;
    for (int k = 0; k < 4; k++)
        if (strncasecmp(v, words[k], n) == 0 && n <= strlen(words[k]))
            return k % 2 == 0;
    if (n >= 2 && strncasecmp(v, "on", n) == 0 && n <= 2)
        return 1;
    if (n >= 2 && strncasecmp(v, "off", n) == 0 && n <= 3)
        return 0;
    if (strcmp(v, "1") == 0 || strcmp(v, "0") == 0)
        return v[0] == '1';
    return -1;
}

/* A transaction_mode_list (BEGIN, START TRANSACTION, SET TRANSACTION, SET
 * SESSION CHARACTERISTICS AS TRANSACTION); what is not given stays -1 or
 * NULL; a later mode overrides an earlier one, as in PostgreSQL. */
typedef struct xact_modes {
    const char *isolation;
    int read_only, deferrable;
} xact_modes;

static bool parse_xact_modes(lexer *lx, pgf_sql_result *r, bool need_one, xact_modes *m)
{
    m->isolation = NULL;
    m->read_only = m->deferrable = -1;
    for (int n = 0;; n++) {
        token t = next(lx);
        if (t.kind == 0 && !(need_one && n == 0))
            return true;
        if (n > 0 && is_op(t, ","))
            t = next(lx);
        token a = next(lx);
        if (is_word(t, "isolation") && is_word(a, "level")) {
            token w1 = next(lx);
            if (is_word(w1, "serializable")) {
                m->isolation = iso_levels[0];
                continue;
            }
            token w2 = next(lx);
            if (is_word(w1, "repeatable") && is_word(w2, "read"))
                m->isolation = iso_levels[1];
            else if (is_word(w1, "read") && is_word(w2, "committed"))
                m->isolation = iso_levels[2];
            else if (is_word(w1, "read") && is_word(w2, "uncommitted"))
                m->isolation = iso_levels[3];
            else {
                syntax_error(r, lx, is_word(w1, "read") || is_word(w1, "repeatable") ? w2 : w1);
                return false;
            }
        } else if (is_word(t, "read") && (is_word(a, "only") || is_word(a, "write"))) {
            m->read_only = is_word(a, "only");
        } else if (is_word(t, "not") && is_word(a, "deferrable")) {
            m->deferrable = 0;
        } else if (is_word(t, "deferrable")) {
            m->deferrable = 1;
            lx->p = a.s; /* one word: give the next one back */
        } else {
            bool two = is_word(t, "isolation") || is_word(t, "read") || is_word(t, "not");
            syntax_error(r, lx, two ? a : t);
            return false;
        }
    }
}

/* Change the open block's characteristics, with PostgreSQL's checks
 * (check_XactIsoLevel, check_transaction_read_only, _deferrable). */
static bool xact_apply(pgf_sql_session *s, const xact_modes *m, pgf_sql_result *r)
{
    if (m->isolation != NULL && m->isolation != s->xact.isolation && s->xact.snapshot) {
        set_error(r, "25001", NULL,
                  "SET TRANSACTION ISOLATION LEVEL must be called before any query");
        return false;
    }
    if (m->read_only == 0 && s->xact.read_only && s->xact.snapshot) {
        set_error(r, "25001", NULL, "transaction read-write mode must be set before any query");
        return false;
    }
    if (m->deferrable >= 0 && s->xact.snapshot) {
        set_error(r, "25001", NULL,
                  "SET TRANSACTION [NOT] DEFERRABLE must be called before any query");
        return false;
    }
    if (m->isolation != NULL)
        s->xact.isolation = m->isolation;
    if (m->read_only >= 0)
        s->xact.read_only = m->read_only;
    if (m->deferrable >= 0)
        s->xact.deferrable = m->deferrable;
    return true;
}

/* BEGIN [WORK | TRANSACTION] [modes], START TRANSACTION [modes]. */
static void exec_begin(pgf_sql_session *s, lexer *lx, pgf_sql_result *r, bool begin)
{
    const char *word = lx->p;
    token w = next(lx);
    if (!is_word(w, "transaction") && !(begin && is_word(w, "work"))) {
        if (!begin) {
            syntax_error(r, lx, w);
            return;
        }
        lx->p = word;
    }
    xact_modes m;
    if (!parse_xact_modes(lx, r, false, &m))
        return;
    if (s->txn != 'I') {
        set_notice(r, "25001", "there is already a transaction in progress");
        if (!xact_apply(s, &m, r))
            return;
    } else {
        const char *iso = iso_level(pgf_sql_get_guc(s, "default_transaction_isolation"));
        s->xact.isolation = iso != NULL ? iso : iso_levels[2];
        s->xact.read_only = parse_bool(pgf_sql_get_guc(s, "default_transaction_read_only")) == 1;
        s->xact.deferrable = parse_bool(pgf_sql_get_guc(s, "default_transaction_deferrable")) == 1;
        s->xact.snapshot = false;
        s->xact.start_us = s->now_us;
        (void)xact_apply(s, &m, r); /* no snapshot yet: cannot fail */
    }
    s->txn = 'T';
    set_command(r, begin ? "BEGIN" : "START TRANSACTION");
}

/* The value of a setting PostgreSQL checks, made canonical in place (the
 * isolation levels and Booleans of the transaction characteristics, the
 * timeouts in ms); false with r set if it is not a valid one. */
static bool check_value(const char *canon, char *value, size_t len, pgf_sql_result *r)
{
    if (is_ms_guc(canon)) {
        double d = 0;
        int e = parse_ms(value, &d);
        if (e != 0) {
            set_error(r, "22023", NULL, "invalid value for parameter \"%s\": \"%s\"", canon, value);
            if (e == 2)
                r->error.hint = "Valid units for this parameter are \"us\", \"ms\", \"s\", "
                                "\"min\", \"h\", and \"d\".";
            return false;
        }
        double ms = rint(d);
        if (ms < 0 || ms > 2147483647.0) {
            set_error(r, "22023", NULL,
                      "%.0f ms is outside the valid range for parameter \"%s\" (0 .. 2147483647)",
                      ms, canon);
            return false;
        }
        format_ms((long long)ms, value, len);
        return true;
    }
    if (strcmp(canon, "default_transaction_isolation") == 0 ||
        strcmp(canon, "transaction_isolation") == 0) {
        const char *iso = iso_level(value);
        if (iso == NULL) {
            set_error(r, "22023", NULL, "invalid value for parameter \"%s\": \"%s\"", canon, value);
            r->error.hint = "Available values: serializable, repeatable read, read committed, read "
                            "uncommitted.";
            return false;
        }
        snprintf(value, len, "%s", iso);
    } else if (strcmp(canon, "default_transaction_read_only") == 0 ||
               strcmp(canon, "default_transaction_deferrable") == 0 ||
               strcmp(canon, "transaction_read_only") == 0 ||
               strcmp(canon, "transaction_deferrable") == 0) {
        int b = parse_bool(value);
        if (b < 0) {
            set_error(r, "22023", NULL, "parameter \"%s\" requires a Boolean value", canon);
            return false;
        }
        snprintf(value, len, "%s", b ? "on" : "off");
    }
    return true;
}

bool pgf_sql_set_guc_checked(pgf_sql_session *s, const char *name, const char *value,
                             pgf_sql_result *r)
{
    memset(r, 0, sizeof *r);
    const struct guc_default *g = find_guc(name, strlen(name));
    char v[sizeof s->gucs[0].value];
    snprintf(v, sizeof v, "%s", value);
    if (g != NULL && !check_value(g->name, v, sizeof v, r))
        return false;
    int e = guc_put(s, name, v);
    if (e != GUC_OK) {
        guc_put_error(e, name, r);
        return false;
    }
    return true;
}

/* ---- SET / SHOW / RESET ---- */

static void exec_set(pgf_sql_session *s, lexer *lx, pgf_sql_result *r)
{
    token t = next(lx);
    bool local = is_word(t, "local"); /* until the end of the block */
    if (is_word(t, "session") || is_word(t, "local")) {
        lexer save = *lx;
        token u = next(lx);
        if (is_word(t, "session") && is_word(u, "characteristics")) {
            /* the defaults every later transaction starts with */
            token as = next(lx), tr = next(lx);
            if (!is_word(as, "as") || !is_word(tr, "transaction")) {
                syntax_error(r, lx, is_word(as, "as") ? tr : as);
                return;
            }
            xact_modes m;
            if (!parse_xact_modes(lx, r, true, &m))
                return;
            const char *names[3] = {"default_transaction_isolation",
                                    "default_transaction_read_only",
                                    "default_transaction_deferrable"};
            const char *vals[3] = {m.isolation,
                                   m.read_only < 0 ? NULL
                                   : m.read_only   ? "on"
                                                   : "off",
                                   m.deferrable < 0 ? NULL
                                   : m.deferrable   ? "on"
                                                    : "off"};
            for (int k = 0; k < 3; k++) {
                int e = vals[k] != NULL ? guc_put(s, names[k], vals[k]) : GUC_OK;
                if (e != GUC_OK) {
                    guc_put_error(e, names[k], r);
                    return;
                }
                if (vals[k] != NULL)
                    tx_unlocal(s, names[k]);
            }
            set_command(r, "SET"); /* pgf_sql_exec reports default_transaction_read_only */
            return;
        }
        if (is_word(u, "authorization")) {
            unsupported(r, "SET SESSION AUTHORIZATION");
            return;
        }
        *lx = save;
        t = next(lx);
    }
    if (is_word(t, "role")) { /* roles and their memberships are not modelled */
        unsupported(r, "SET ROLE");
        return;
    }
    if (is_word(t, "transaction")) { /* this block's characteristics */
        const char *rest = lx->p;
        if (is_word(next(lx), "snapshot")) {
            unsupported(r, "SET TRANSACTION SNAPSHOT");
            return;
        }
        lx->p = rest;
        xact_modes m;
        if (!parse_xact_modes(lx, r, true, &m))
            return;
        if (s->txn == 'I')
            set_notice(r, "25P01", "SET TRANSACTION can only be used in transaction blocks");
        else if (!xact_apply(s, &m, r))
            return;
        set_command(r, "SET");
        return;
    }
    char name[64];
    if (is_word(t, "time")) {
        token z = next(lx);
        if (!is_word(z, "zone")) {
            syntax_error(r, lx, z);
            return;
        }
        snprintf(name, sizeof name, "TimeZone");
    } else if (is_word(t, "names")) {
        snprintf(name, sizeof name, "client_encoding");
    } else if (t.kind == 'w') {
        unquote(t, name, sizeof name, t.s[0] != '"');
        token eq = next(lx);
        if (!is_op(eq, "=") && !is_word(eq, "to")) {
            syntax_error(r, lx, eq);
            return;
        }
    } else {
        syntax_error(r, lx, t);
        return;
    }
    /* value: one or more tokens up to the end, joined by ", " */
    char value[128] = "";
    size_t used = 0;
    for (;;) {
        token v = next(lx);
        if (v.kind == 0)
            break;
        if (is_op(v, ","))
            continue;
        char part[128];
        if (is_word(v, "default") || is_word(v, "local")) {
            part[0] = '\0';
        } else if (is_op(v, "-") && lx->p < lx->end && isdigit((unsigned char)*lx->p)) {
            token num = next(lx); /* a negative number is one value */
            snprintf(part, sizeof part, "-%.*s", (int)num.len, num.s);
        } else {
            unquote(v, part, sizeof part, false);
        }
        if (part[0] == '\0' && is_word(v, "default")) {
            const struct guc_default *g = find_guc(name, strlen(name));
            if (local && s->txn == 'I') {
                set_notice(r, "25P01", "SET LOCAL can only be used in transaction blocks");
            } else if (g != NULL) {
                if (local ? !tx_save(s) || !tx_local(s, g->name) || !reset_guc(s, g->name)
                          : !reset_guc(s, g->name)) {
                    guc_put_error(GUC_NOMEM, name, r);
                    return;
                }
                if (!local)
                    tx_unlocal(s, g->name);
            }
            set_command(r, "SET");
            return;
        }
        int n = snprintf(value + used, sizeof value - used, "%s%s", used ? ", " : "", part);
        if (n > 0)
            used += (size_t)n < sizeof value - used ? (size_t)n : 0;
    }
    if (used == 0) {
        syntax_error(r, lx, next(lx));
        return;
    }
    const struct guc_default *g = find_guc(name, strlen(name));
    if (g != NULL && !check_value(g->name, value, sizeof value, r))
        return;
    if (g != NULL && strncmp(g->name, "transaction_", 12) == 0) {
        /* the open block's own characteristic, not a session setting (and
         * outside a block, the statement's own transaction: no effect) */
        xact_modes m = {NULL, -1, -1};
        if (strcmp(g->name, "transaction_isolation") == 0)
            m.isolation = iso_level(value);
        else if (strcmp(g->name, "transaction_read_only") == 0)
            m.read_only = parse_bool(value);
        else
            m.deferrable = parse_bool(value);
        if (s->txn != 'I' && !xact_apply(s, &m, r))
            return;
        set_command(r, "SET");
        return;
    }
    if (g != NULL &&
        (strcmp(g->name, "server_version") == 0 || strcmp(g->name, "server_encoding") == 0 ||
         strcmp(g->name, "integer_datetimes") == 0 || strcmp(g->name, "in_hot_standby") == 0 ||
         strcmp(g->name, "is_superuser") == 0 || strcmp(g->name, "max_connections") == 0 ||
         strcmp(g->name, "server_version_num") == 0)) {
        set_error(r, "55P02", NULL, "parameter \"%s\" cannot be changed", name);
        return;
    }
    if (local && s->txn == 'I') {
        /* PostgreSQL warns first, then checks, then has no effect: the
         * statement is its own block */
        set_notice(r, "25P01", "SET LOCAL can only be used in transaction blocks");
        if (g == NULL && strchr(name, '.') == NULL) {
            guc_put_error(GUC_UNKNOWN, name, r);
            return;
        }
        set_command(r, "SET");
        return;
    }
    char canon[64];
    snprintf(canon, sizeof canon, "%s", g != NULL ? g->name : name);
    if (g == NULL)
        for (char *p = canon; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    if (local && (g != NULL || strchr(name, '.') != NULL) && (!tx_save(s) || !tx_local(s, canon))) {
        guc_put_error(GUC_NOMEM, name, r);
        return;
    }
    int e = guc_put(s, name, value);
    if (e != GUC_OK) {
        guc_put_error(e, name, r);
        return;
    }
    if (!local)
        tx_unlocal(s, canon);
    set_command(r, "SET"); /* pgf_sql_exec reports the change, if any */
}

static void guc_put_error(int e, const char *name, pgf_sql_result *r)
{
    if (e == GUC_UNKNOWN)
        set_error(r, "42704", NULL, "unrecognized configuration parameter \"%s\"", name);
    else if (e == GUC_FULL)
        set_error(r, "54000", NULL,
                  "pgfault fake server: more than %d settings in one session (\"%s\" refused)",
                  PGF_SQL_MAX_GUCS, name);
    else
        set_error(r, "53200", NULL, "out of memory");
}

static void exec_reset(pgf_sql_session *s, lexer *lx, pgf_sql_result *r)
{
    token t = next(lx);
    if (is_word(t, "all")) {
        if (!tx_save(s)) {
            guc_put_error(GUC_NOMEM, "all", r);
            return;
        }
        s->ngucs = s->nbase; /* back to the startup values */
        s->tx_nlocal = 0;    /* nothing local left to give back at COMMIT */
        set_command(r, "RESET");
        return;
    }
    if (is_word(t, "role") || (is_word(t, "session") && is_word(next(lx), "authorization"))) {
        set_command(r, "RESET"); /* SET ROLE is refused: the role is always the session's */
        return;
    }
    char name[64];
    unquote(t, name, sizeof name, t.s[0] != '"');
    const struct guc_default *g = find_guc(name, strlen(name));
    if (g == NULL && strchr(name, '.') != NULL) {
        /* a custom placeholder: PostgreSQL keeps it, empty */
        int e = guc_put(s, name, "");
        if (e != GUC_OK) {
            guc_put_error(e, name, r);
            return;
        }
        for (char *p = name; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        tx_unlocal(s, name);
        set_command(r, "RESET");
        return;
    }
    if (g == NULL) {
        set_error(r, "42704", NULL, "unrecognized configuration parameter \"%s\"", name);
        return;
    }
    if (!reset_guc(s, g->name)) {
        guc_put_error(GUC_NOMEM, name, r);
        return;
    }
    tx_unlocal(s, g->name);
    set_command(r, "RESET");
}

static void exec_show(const pgf_sql_session *s, lexer *lx, pgf_sql_result *r)
{
    token t = next(lx);
    char name[64];
    if (is_word(t, "transaction")) {
        token a = next(lx), b = next(lx);
        if (!is_word(a, "isolation") || !is_word(b, "level")) {
            syntax_error(r, lx, b);
            return;
        }
        snprintf(name, sizeof name, "transaction_isolation");
    } else if (is_word(t, "time")) {
        next(lx);
        snprintf(name, sizeof name, "TimeZone");
    } else if (t.kind == 'w') {
        unquote(t, name, sizeof name, t.s[0] != '"');
    } else {
        syntax_error(r, lx, t);
        return;
    }
    if (strcasecmp(name, "all") == 0) {
        unsupported(r, "SHOW ALL");
        return;
    }
    const char *v = pgf_sql_get_guc(s, name);
    if (v == NULL) {
        set_error(r, "42704", NULL, "unrecognized configuration parameter \"%s\"", name);
        return;
    }
    const struct guc_default *g = find_guc(name, strlen(name));
    add_col(r, g != NULL ? g->name : name, OID_TEXT);
    snprintf(r->values[0], sizeof r->values[0], "%s", v);
    set_rows(r, "SHOW");
}

/* ---- dispatch ---- */

/* Whether a statement starting with t takes a snapshot in PostgreSQL (a
 * query does; utility commands of transactions and settings do not). */
static bool takes_snapshot(token t)
{
    static const char *const utility[] = {
        "show",  "set",       "reset",   "begin",   "start",      "commit",   "end",   "rollback",
        "abort", "savepoint", "release", "discard", "deallocate", "unlisten", "close",
    };
    for (size_t i = 0; i < sizeof utility / sizeof utility[0]; i++)
        if (is_word(t, utility[i]))
            return false;
    return true;
}

static void run(pgf_sql_session *s, const char *stmt, size_t len, const char *const *params,
                int nparams, pgf_sql_result *r, bool describe_only)
{
    memset(r, 0, sizeof *r);
    /* A single statement may end in ';' (extended protocol, pgbench scripts). */
    while (len > 0 && (stmt[len - 1] == ';' || isspace((unsigned char)stmt[len - 1])))
        len--;
    lexer lx = {stmt, stmt + len, stmt};
    token t = next(&lx);
    if (t.kind == 0) {
        r->kind = PGF_SQL_EMPTY;
        return;
    }
    bool ends_txn =
        is_word(t, "commit") || is_word(t, "end") || is_word(t, "rollback") || is_word(t, "abort");
    if (s->txn == 'E' && !ends_txn && !describe_only) {
        set_error(r, "25P02", NULL,
                  "current transaction is aborted, commands ignored until end of transaction "
                  "block");
        return;
    }
    char *norm = NULL;
    if (s->answers != NULL) {
        norm = pgf_sql_normalize(stmt, len);
        if (norm != NULL && pgf__answers_match(s->answers, stmt, len, norm, describe_only, r)) {
            free(norm);
            goto done;
        }
    }
    if (is_word(t, "select")) {
        exec_select(s, &lx, params, nparams, r);
    } else if (is_word(t, "show")) {
        exec_show(s, &lx, r);
    } else if (describe_only && is_sql_keyword(t)) {
        set_command(r, ""); /* no rows; what does not parse falls through to 42601 */
    } else if (is_word(t, "set")) {
        exec_set(s, &lx, r);
    } else if (is_word(t, "reset")) {
        exec_reset(s, &lx, r);
    } else if (is_word(t, "discard")) {
        token a = next(&lx);
        if (is_word(a, "plans") || is_word(a, "sequences") || is_word(a, "temp") ||
            is_word(a, "temporary")) {
            /* nothing of the kind is kept here */
            set_command(r, is_word(a, "plans")       ? "DISCARD PLANS"
                           : is_word(a, "sequences") ? "DISCARD SEQUENCES"
                                                     : "DISCARD TEMP");
        } else if (!is_word(a, "all")) {
            syntax_error(r, &lx, a);
        } else if (s->txn != 'I') {
            set_error(r, "25001", NULL, "DISCARD ALL cannot run inside a transaction block");
        } else {
            s->ngucs = s->nbase; /* back to the startup values */
            set_command(r, "DISCARD ALL");
        }
    } else if (is_word(t, "begin") || is_word(t, "start")) {
        exec_begin(s, &lx, r, is_word(t, "begin"));
    } else if (is_word(t, "commit") || is_word(t, "end")) {
        if (s->txn == 'I')
            set_notice(r, "25P01", "there is no transaction in progress");
        set_command(r, s->txn == 'E' ? "ROLLBACK" : "COMMIT");
        tx_end(s, s->txn == 'T');
        s->txn = 'I';
    } else if (is_word(t, "rollback") || is_word(t, "abort")) {
        token a = next(&lx);
        if (is_word(a, "to")) {
            if (s->txn == 'I') {
                set_error(r, "25P01", NULL,
                          "ROLLBACK TO SAVEPOINT can only be used in transaction blocks");
            } else {
                s->txn = 'T';
                set_command(r, "ROLLBACK");
            }
            return;
        }
        if (s->txn == 'I')
            set_notice(r, "25P01", "there is no transaction in progress");
        tx_end(s, false);
        s->txn = 'I';
        set_command(r, "ROLLBACK");
    } else if (is_word(t, "savepoint") || is_word(t, "release")) {
        if (s->txn == 'I')
            set_error(r, "25P01", NULL, "%s can only be used in transaction blocks",
                      is_word(t, "savepoint") ? "SAVEPOINT" : "RELEASE SAVEPOINT");
        else
            set_command(r, is_word(t, "savepoint") ? "SAVEPOINT" : "RELEASE");
    } else if (is_word(t, "deallocate")) {
        set_command(r, "DEALLOCATE ALL");
    } else if (is_word(t, "unlisten")) {
        set_command(r, "UNLISTEN");
    } else if (is_word(t, "close")) {
        /* CLOSE ALL is in asyncpg's pool reset query; there are no cursors */
        token a = next(&lx);
        if (is_word(a, "all")) {
            set_command(r, "CLOSE CURSOR ALL");
        } else if (a.kind == 'w') {
            char name[64];
            unquote(a, name, sizeof name, a.s[0] != '"');
            set_error(r, "34000", NULL, "cursor \"%s\" does not exist", name);
        } else {
            syntax_error(r, &lx, a);
        }
    } else if (is_sql_keyword(t)) {
        char kw[32];
        tok_copy(t, kw, sizeof kw);
        for (char *p = kw; *p; p++)
            *p = (char)toupper((unsigned char)*p);
        unsupported(r, kw);
    } else {
        syntax_error(r, &lx, t);
    }
    /* What the hand-written answers refuse may be a statement an
     * application stack sends on connect: PostgreSQL's recorded answer. */
    bool refused = r->kind == PGF_SQL_ERROR && strcmp(r->error.sqlstate, "0A000") == 0;
    bool described_blind = describe_only && r->kind == PGF_SQL_COMMAND && is_word(t, "with");
    if ((refused || described_blind) && (is_word(t, "select") || is_word(t, "with"))) {
        if (norm == NULL)
            norm = pgf_sql_normalize(stmt, len);
        pgf_sql_result rec;
        memset(&rec, 0, sizeof rec);
        if (norm != NULL && pgf__catalog_answer(norm, params, nparams, describe_only, &rec))
            *r = rec;
    }
    free(norm);
done:
    if (s->txn == 'T' && r->kind != PGF_SQL_ERROR && takes_snapshot(t))
        s->xact.snapshot =
            true; /* (PostgreSQL's Parse takes one too; Describe here runs on a copy) */
    if (!describe_only && r->kind == PGF_SQL_ERROR && s->txn == 'T')
        s->txn = 'E';
}

void pgf_sql_exec(pgf_sql_session *s, const char *stmt, size_t len, const char *const *params,
                  int nparams, pgf_sql_result *out)
{
    /* PostgreSQL (14+) sends ParameterStatus for a reported GUC only when
     * its value differs from the last one reported: compare before/after. */
    char before[PGF_SQL_MAX_REPORTS][128];
    int n = 0;
    for (size_t i = 0; i < NGUCS && n < PGF_SQL_MAX_REPORTS; i++)
        if (gucs[i].reported)
            snprintf(before[n++], sizeof before[0], "%s", pgf_sql_get_guc(s, gucs[i].name));
    run(s, stmt, len, params, nparams, out, false);
    if (out->kind == PGF_SQL_ERROR)
        return;
    n = 0;
    for (size_t i = 0; i < NGUCS && n < PGF_SQL_MAX_REPORTS; i++) {
        if (!gucs[i].reported)
            continue;
        const char *now = pgf_sql_get_guc(s, gucs[i].name);
        if (strcmp(now, before[n++]) != 0) {
            int k = out->nreports++;
            out->report_names[k] = gucs[i].name;
            snprintf(out->report_values[k], sizeof out->report_values[k], "%s", now);
        }
    }
    if (out->nreports > 0) {
        out->report_name = out->report_names[0];
        snprintf(out->report_value, sizeof out->report_value, "%s", out->report_values[0]);
    }
}

void pgf_sql_describe(const pgf_sql_session *s, const char *stmt, size_t len, pgf_sql_result *out)
{
    /* Describe must not change the session: run on a copy. Parameters are
     * unknown at Describe time; treat them as NULL text. */
    static const char *const nulls[PGF_PROTO_MAX_BIND_PARAMS];
    pgf_sql_session copy = *s;
    run(&copy, stmt, len, nulls, PGF_PROTO_MAX_BIND_PARAMS, out, true);
}

uint32_t pgf_sql_param_type(const char *query, int n)
{
    char needle[16];
    int nl = snprintf(needle, sizeof needle, "$%d", n);
    for (const char *p = query; (p = strstr(p, needle)) != NULL; p += nl) {
        if (isdigit((unsigned char)p[nl]))
            continue; /* $1 must not match $10 */
        lexer lx = {p + nl, query + strlen(query), query};
        char name[16];
        long oid = parse_cast(&lx, name, sizeof name);
        if (oid > 0)
            return (uint32_t)oid;
        /* pg_sleep($1) takes float8 */
        if (p - query >= 9 && strncasecmp(p - 9, "pg_sleep(", 9) == 0)
            return 701;
    }
    /* A recorded connect-time statement: the type PostgreSQL described. */
    char *norm = pgf_sql_normalize(query, strlen(query));
    uint32_t rec = norm != NULL ? pgf__catalog_param_type(norm, n) : 0;
    free(norm);
    return rec != 0 ? rec : OID_TEXT;
}

/* ---- normalization and table results ---- */

char *pgf_sql_normalize(const char *stmt, size_t len)
{
    pgf_buf b = PGF_BUF_INIT;
    while (len > 0 && (stmt[len - 1] == ';' || isspace((unsigned char)stmt[len - 1])))
        len--;
    lexer lx = {stmt, stmt + len, stmt};
    for (token t = next(&lx); t.kind != 0; t = next(&lx)) {
        if (b.len > 0)
            pgf_buf_put(&b, " ", 1);
        if (t.kind == 'w' && t.s[0] != '"') {
            for (size_t i = 0; i < t.len; i++) {
                char c = (char)tolower((unsigned char)t.s[i]);
                pgf_buf_put(&b, &c, 1);
            }
        } else {
            pgf_buf_put(&b, t.s, t.len);
        }
    }
    pgf_buf_put(&b, "", 1);
    if (b.failed) {
        pgf_buf_free(&b);
        return NULL;
    }
    return (char *)b.data; /* the buffer's bytes are malloc'd: the caller frees */
}

void pgf_sql_result_release(pgf_sql_result *r)
{
    free(r->xalloc);
    r->xalloc = NULL;
}

int pgf_sql_result_ncols(const pgf_sql_result *r)
{
    return r->xcols != NULL ? r->nxcols : r->ncols;
}

int pgf_sql_result_nrows(const pgf_sql_result *r)
{
    return r->xcols != NULL ? r->nxrows : r->nrows;
}

int32_t pgf_sql_binary(uint32_t type_oid, const char *text, int32_t tlen, uint8_t scratch[16],
                       const char **out)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%.*s", (int)(tlen < 63 ? tlen : 63), text);
    *out = (const char *)scratch;
    switch (type_oid) {
    case OID_BOOL:
        scratch[0] = tmp[0] == 't';
        return 1;
    case 21: { /* int2 */
        long v = strtol(tmp, NULL, 10);
        scratch[0] = (uint8_t)((uint16_t)v >> 8);
        scratch[1] = (uint8_t)v;
        return 2;
    }
    case OID_INT4:
    case 26: { /* oid */
        uint32_t v = type_oid == 26 ? (uint32_t)strtoul(tmp, NULL, 10)
                                    : (uint32_t)(int32_t)strtol(tmp, NULL, 10);
        for (int k = 0; k < 4; k++)
            scratch[k] = (uint8_t)(v >> (24 - 8 * k));
        return 4;
    }
    case OID_INT8: {
        uint64_t v = (uint64_t)strtoll(tmp, NULL, 10);
        for (int k = 0; k < 8; k++)
            scratch[k] = (uint8_t)(v >> (56 - 8 * k));
        return 8;
    }
    case 700: { /* float4 */
        float f = strtof(tmp, NULL);
        uint32_t v;
        memcpy(&v, &f, sizeof v);
        for (int k = 0; k < 4; k++)
            scratch[k] = (uint8_t)(v >> (24 - 8 * k));
        return 4;
    }
    case 701: { /* float8 */
        double d = strtod(tmp, NULL);
        uint64_t v;
        memcpy(&v, &d, sizeof v);
        for (int k = 0; k < 8; k++)
            scratch[k] = (uint8_t)(v >> (56 - 8 * k));
        return 8;
    }
    case OID_VOID:
        return 0;
    case OID_TIMESTAMPTZ: { /* µs since 2000-01-01 00:00 UTC; the text is format_timestamptz's */
        struct tm tm = {0};
        int usec = 0;
        char frac[8] = "";
        if (sscanf(tmp, "%d-%d-%d %d:%d:%d%7[.0-9]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                   &tm.tm_hour, &tm.tm_min, &tm.tm_sec, frac) < 6)
            return -2;
        if (frac[0] == '.') {
            size_t n = strlen(frac + 1);
            usec = atoi(frac + 1);
            for (; n < 6; n++)
                usec *= 10;
        }
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        int64_t v = ((int64_t)timegm(&tm) - 946684800) * 1000000 + usec;
        for (int k = 0; k < 8; k++)
            scratch[k] = (uint8_t)((uint64_t)v >> (56 - 8 * k));
        return 8;
    }
    case 3802: /* jsonb: version byte 1, then the text; needs the caller's copy */
        return -2;
    case OID_TEXT:
    case OID_NAME:
    case 18:   /* "char" */
    case 114:  /* json */
    case 1043: /* varchar */
    case 1042: /* bpchar */
        *out = text;
        return tlen;
    default:
        return -2;
    }
}

int32_t pgf_sql_result_value(const pgf_sql_result *r, int row, int col, int16_t format,
                             uint8_t scratch[16], const char **out)
{
    if (r->xcols == NULL) {
        if (r->nulls[col])
            return -1;
        int32_t tlen = (int32_t)strlen(r->values[col]);
        *out = r->values[col];
        if (format != 1)
            return tlen;
        int32_t n = pgf_sql_binary(r->cols[col].type_oid, r->values[col], tlen, scratch, out);
        if (n == -2) { /* no binary form known: the text bytes, as before */
            *out = r->values[col];
            return tlen;
        }
        return n;
    }
    const pgf_sql_value *v = &r->xrows[row][col];
    if (v->text == NULL)
        return -1;
    if (format != 1) {
        *out = v->text;
        return v->tlen;
    }
    if (v->bin != NULL) {
        *out = (const char *)v->bin;
        return v->blen;
    }
    int32_t n = pgf_sql_binary(r->xcols[col].type_oid, v->text, v->tlen, scratch, out);
    if (n == -2) { /* answers.c stores binary forms it cannot derive here (jsonb) */
        *out = v->text;
        return v->tlen;
    }
    return n;
}
