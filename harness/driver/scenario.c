/* scenario.c - scenario files: YAML -> pgf_scenario, with every mistake
 * reported as file:line:col and what was expected; and the reverse
 * (pgf_scenario_write_yaml) for --explain, replay and shrink output.
 * The schema is documented in scenarios/README.md; the `faults:` list is
 * validated by the fault module itself, so it is exactly the schema of
 * `pgfault serve --faults`. */
#include "pgfault/scenario.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "pgfault/answers.h"
#include "pgfault/config.h"
#include "pgfault/doc.h"
#include "pgfault/file.h"
#include "pgfault/rules.h"
#include "pgfault/session.h"
#include "docval.h"

const char *pgf_run_mode_name(pgf_run_mode m)
{
    return m == PGF_MODE_SIM ? "sim" : "stress";
}

void pgf_scenario_defaults(pgf_scenario *sc)
{
    memset(sc, 0, sizeof *sc);
    sc->seed = 1;
    sc->mode = PGF_MODE_SIM;
    sc->unix_socket = false;
    sc->sessions = 10;
    sc->iterations = 10;
    sc->think_ms = 10;
    sc->connect_timeout_ms = 5000;
    sc->query_timeout_ms = 5000;
    sc->pool_size = 5;
    sc->pool_timeout_ms = 5000;
    pgf_target_init(&sc->target);
}

static void free_user(pgf_server_user *u)
{
    free((char *)u->name);
    free((char *)u->password);
}

void pgf_scenario_clear(pgf_scenario *sc)
{
    free(sc->name);
    free(sc->description);
    free(sc->source);
    for (int i = 0; i < sc->nusers; i++)
        free_user(&sc->users[i]);
    for (int i = 0; i < sc->ndatabases; i++)
        free(sc->databases[i]);
    free(sc->external);
    free(sc->proxy_upstream);
    free(sc->socket_subdir);
    pgf_answers_free(sc->answers);
    free(sc->user);
    free(sc->password);
    free(sc->password_src);
    free(sc->database);
    pgf_fault_rules_free(sc->rules);
    pgf_fault_rules_free(sc->rules2);
    free(sc->query);
    pgf_target_clear(&sc->target);
    pgf_scenario_defaults(sc);
}

/* ---- sections ---- */

static bool parse_users(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    if (n->kind != PGF_DOC_SEQ)
        return pgf__docv_err(v, n, "'server.users' must be a list, got %s", pgf__docv_kind(n));
    if (n->n > PGF_SCENARIO_MAX_USERS)
        return pgf__docv_err(v, n, "'server.users': at most %d users", PGF_SCENARIO_MAX_USERS);
    static const char *const keys[] = {"name", "password", "method", "superuser"};
    for (size_t i = 0; i < n->n; i++) {
        const pgf_doc *u = n->kids[i];
        if (!pgf__docv_only_keys(v, u, "a server user", keys, 4))
            return false;
        pgf_server_user *su = &sc->users[sc->nusers++];
        su->method = PGF_AUTH_METHOD_SCRAM;
        char *name = NULL, *pw = NULL, *method = NULL;
        const pgf_doc *x;
        if ((x = pgf_doc_get(u, "name")) == NULL)
            return pgf__docv_err(v, u, "a server user needs 'name'");
        if (!pgf__docv_str(v, x, "name", &name))
            return false;
        su->name = name;
        if ((x = pgf_doc_get(u, "password")) != NULL) {
            if (!pgf__docv_str(v, x, "password", &pw))
                return false;
        } else {
            pw = strdup("");
        }
        su->password = pw;
        if ((x = pgf_doc_get(u, "method")) != NULL) {
            if (!pgf__docv_str(v, x, "method", &method))
                return false;
            int m = pgf_auth_method_parse(method);
            free(method);
            if (m < 0)
                return pgf__docv_err(
                    v, x, "'method' must be one of: trust, password, md5, scram-sha-256");
            su->method = (pgf_auth_method)m;
        }
        su->superuser = strcmp(name, "postgres") == 0;
        if ((x = pgf_doc_get(u, "superuser")) != NULL &&
            !pgf__docv_bool(v, x, "superuser", &su->superuser))
            return false;
    }
    return true;
}

/* ${NAME} in server.proxy.upstream and client.password from pgfault's
 * environment, so one scenario file serves every CI job and holds no
 * secret ("${STAGING_DB_ADDR}", "${APP_DB_PASSWORD}"); an unset name is an
 * error at its line, never an empty value. */
static bool expand_env(pgf__docv *v, const pgf_doc *x, const char *what, char **s)
{
    char out[1024];
    size_t k = 0;
    for (const char *in = *s; *in;) {
        const char *close = in[0] == '$' && in[1] == '{' ? strchr(in, '}') : NULL;
        if (close == NULL) {
            if (k + 1 >= sizeof out)
                return pgf__docv_err(v, x, "'%s' is too long", what);
            out[k++] = *in++;
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(close - in - 2), in + 2);
        const char *val = getenv(name);
        if (val == NULL || *val == '\0')
            return pgf__docv_err(v, x, "'%s': environment variable %s is not set", what, name);
        size_t n = strlen(val);
        if (k + n + 1 >= sizeof out)
            return pgf__docv_err(v, x, "'%s' is too long", what);
        memcpy(out + k, val, n);
        k += n;
        in = close + 1;
    }
    out[k] = '\0';
    char *d = strdup(out);
    if (d == NULL)
        return pgf__docv_err(v, x, "out of memory");
    free(*s);
    *s = d;
    return true;
}

/* server.proxy: {upstream, upstream_port, connect_timeout_ms} */
static bool parse_proxy(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    static const char *const keys[] = {"upstream", "upstream_port", "connect_timeout_ms"};
    if (n->kind != PGF_DOC_MAP)
        return pgf__docv_err(v, n, "'server.proxy' must be a map with 'upstream: HOST:PORT'");
    if (!pgf__docv_only_keys(v, n, "'server.proxy'", keys, 3))
        return false;
    const pgf_doc *x = pgf_doc_get(n, "upstream");
    if (x == NULL)
        return pgf__docv_err(v, n,
                             "'server.proxy' needs 'upstream: HOST:PORT' (or a socket directory)");
    if (!pgf__docv_str(v, x, "upstream", &sc->proxy_upstream))
        return false;
    if (strstr(sc->proxy_upstream, "${") != NULL &&
        !expand_env(v, x, "server.proxy.upstream", &sc->proxy_upstream))
        return false;
    if (sc->proxy_upstream[0] == '\0')
        return pgf__docv_err(v, x, "'server.proxy.upstream' must not be empty");
    unsigned u;
    if ((x = pgf_doc_get(n, "upstream_port")) != NULL) {
        if (!pgf__docv_uns(v, x, "upstream_port", 1, 65535, &u))
            return false;
        sc->proxy_upstream_port = (int)u;
    }
    if ((x = pgf_doc_get(n, "connect_timeout_ms")) != NULL &&
        !pgf__docv_uns(v, x, "connect_timeout_ms", 1, 3600000, &sc->proxy_connect_timeout_ms))
        return false;
    return true;
}

static bool parse_server(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    static const char *const keys[] = {"users",           "databases", "transport",
                                       "max_connections", "external",  "proxy",
                                       "socket_subdir",   "answers",   "threads"};
    if (!pgf__docv_only_keys(v, n, "'server'", keys, 9))
        return false;
    const pgf_doc *x;
    if ((x = pgf_doc_get(n, "answers")) != NULL && !pgf__docv_is_null(x)) {
        /* canned answers: the same validator as `pgfault serve --answers` */
        if (pgf_answers_from_doc(x, v->source, &sc->answers, v->err, v->errlen) != 0) {
            v->failed = true;
            return false;
        }
    }
    if ((x = pgf_doc_get(n, "users")) != NULL && !parse_users(v, x, sc))
        return false;
    if ((x = pgf_doc_get(n, "databases")) != NULL) {
        if (x->kind != PGF_DOC_SEQ)
            return pgf__docv_err(v, x, "'server.databases' must be a list of names");
        if (x->n > PGF_SCENARIO_MAX_DBS)
            return pgf__docv_err(v, x, "'server.databases': at most %d", PGF_SCENARIO_MAX_DBS);
        for (size_t i = 0; i < x->n; i++) {
            char *d = NULL;
            if (!pgf__docv_str(v, x->kids[i], "databases[]", &d))
                return false;
            sc->databases[sc->ndatabases++] = d;
        }
    }
    if ((x = pgf_doc_get(n, "transport")) != NULL) {
        char *t = NULL;
        if (!pgf__docv_str(v, x, "transport", &t))
            return false;
        bool ok = strcmp(t, "unix") == 0 || strcmp(t, "tcp") == 0;
        sc->unix_socket = strcmp(t, "unix") == 0;
        free(t);
        if (!ok)
            return pgf__docv_err(v, x, "'transport' must be unix or tcp");
    }
    if ((x = pgf_doc_get(n, "max_connections")) != NULL) {
        unsigned m;
        if (!pgf__docv_uns(v, x, "max_connections", 0, 1000000, &m))
            return false;
        sc->max_connections = (int)m;
    }
    /* server.threads: the embedded server's event loops (docs/server-threads.md) */
    if ((x = pgf_doc_get(n, "threads")) != NULL &&
        !pgf__docv_uns(v, x, "threads", 1, PGF_SERVER_MAX_THREADS, &sc->server_threads))
        return false;
    if ((x = pgf_doc_get(n, "external")) != NULL && !pgf__docv_is_null(x) &&
        !pgf__docv_str(v, x, "external", &sc->external))
        return false;
    if ((x = pgf_doc_get(n, "proxy")) != NULL && !pgf__docv_is_null(x) && !parse_proxy(v, x, sc))
        return false;
    if ((x = pgf_doc_get(n, "socket_subdir")) != NULL) {
        if (!pgf__docv_str(v, x, "socket_subdir", &sc->socket_subdir))
            return false;
        if (strstr(sc->socket_subdir, "..") != NULL || sc->socket_subdir[0] == '/')
            return pgf__docv_err(v, x, "'socket_subdir' must be a relative path without '..'");
    }
    return true;
}

static bool parse_client(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    static const char *const keys[] = {"user", "password", "database"};
    if (!pgf__docv_only_keys(v, n, "'client'", keys, 3))
        return false;
    const pgf_doc *x;
    if ((x = pgf_doc_get(n, "user")) != NULL && !pgf__docv_str(v, x, "user", &sc->user))
        return false;
    if ((x = pgf_doc_get(n, "password")) != NULL && !pgf__docv_is_null(x)) {
        if (!pgf__docv_str(v, x, "password", &sc->password))
            return false;
        if (strstr(sc->password, "${") != NULL) {
            free(sc->password_src);
            sc->password_src = strdup(sc->password);
            if (sc->password_src == NULL)
                return pgf__docv_err(v, x, "out of memory");
            if (!expand_env(v, x, "client.password", &sc->password))
                return false;
        }
    }
    if ((x = pgf_doc_get(n, "database")) != NULL && !pgf__docv_str(v, x, "database", &sc->database))
        return false;
    return true;
}

static bool parse_workload(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    static const char *const keys[] = {
        "sessions",           "threads",          "iterations", "duration_ms", "query", "think_ms",
        "connect_timeout_ms", "query_timeout_ms", "pool",       "explore"};
    if (!pgf__docv_only_keys(v, n, "'workload'", keys, 10))
        return false;
    const pgf_doc *x;
    if ((x = pgf_doc_get(n, "explore")) && !pgf__docv_bool(v, x, "explore", &sc->explore))
        return false;
    if ((x = pgf_doc_get(n, "sessions")) &&
        !pgf__docv_uns(v, x, "sessions", 1, 100000, &sc->sessions))
        return false;
    if ((x = pgf_doc_get(n, "threads")) && !pgf__docv_uns(v, x, "threads", 0, 256, &sc->threads))
        return false;
    if ((x = pgf_doc_get(n, "iterations")) &&
        !pgf__docv_uns(v, x, "iterations", 0, 100000000, &sc->iterations))
        return false;
    if ((x = pgf_doc_get(n, "duration_ms")) &&
        !pgf__docv_u64(v, x, "duration_ms", 0, 7 * 24 * 3600 * 1000ULL, &sc->duration_ms))
        return false;
    if ((x = pgf_doc_get(n, "query")) && !pgf__docv_str(v, x, "query", &sc->query))
        return false;
    if ((x = pgf_doc_get(n, "think_ms")) &&
        !pgf__docv_uns(v, x, "think_ms", 0, 3600000, &sc->think_ms))
        return false;
    if ((x = pgf_doc_get(n, "connect_timeout_ms")) &&
        !pgf__docv_uns(v, x, "connect_timeout_ms", 1, 3600000, &sc->connect_timeout_ms))
        return false;
    if ((x = pgf_doc_get(n, "query_timeout_ms")) &&
        !pgf__docv_uns(v, x, "query_timeout_ms", 1, 3600000, &sc->query_timeout_ms))
        return false;
    if ((x = pgf_doc_get(n, "pool")) != NULL && !pgf__docv_is_null(x)) {
        static const char *const pk[] = {"size", "overflow", "timeout_ms", "pre_ping"};
        if (!pgf__docv_only_keys(v, x, "'workload.pool'", pk, 4))
            return false;
        sc->pool = true;
        const pgf_doc *y;
        if ((y = pgf_doc_get(x, "size")) && !pgf__docv_uns(v, y, "size", 1, 10000, &sc->pool_size))
            return false;
        if ((y = pgf_doc_get(x, "overflow")) &&
            !pgf__docv_uns(v, y, "overflow", 0, 10000, &sc->pool_overflow))
            return false;
        if ((y = pgf_doc_get(x, "timeout_ms")) &&
            !pgf__docv_uns(v, y, "timeout_ms", 1, 3600000, &sc->pool_timeout_ms))
            return false;
        if ((y = pgf_doc_get(x, "pre_ping")) && !pgf__docv_bool(v, y, "pre_ping", &sc->pre_ping))
            return false;
    }
    if (sc->iterations == 0 && sc->duration_ms == 0)
        return pgf__docv_err(v, n, "'workload' needs 'iterations' or 'duration_ms' (or both)");
    return true;
}

static bool parse_racers(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    if (n->kind != PGF_DOC_SEQ)
        return pgf__docv_err(v, n, "'racers' must be a list, got %s", pgf__docv_kind(n));
    if (n->n > PGF_SCENARIO_MAX_RACERS)
        return pgf__docv_err(v, n, "'racers': at most %d", PGF_SCENARIO_MAX_RACERS);
    static const char *const keys[] = {"name", "op",    "at",      "probability",
                                       "nth",  "times", "delay_ms"};
    for (size_t i = 0; i < n->n; i++) {
        const pgf_doc *r = n->kids[i];
        if (!pgf__docv_only_keys(v, r, "a racer", keys, 7))
            return false;
        pgf_racer *rc = &sc->racers[sc->nracers++];
        memset(rc, 0, sizeof *rc);
        rc->probability = 1.0;
        rc->times = 1;
        snprintf(rc->name, sizeof rc->name, "racer-%zu", i + 1);
        const pgf_doc *x;
        char *s = NULL;
        if ((x = pgf_doc_get(r, "name")) != NULL) {
            if (!pgf__docv_str(v, x, "name", &s))
                return false;
            snprintf(rc->name, sizeof rc->name, "%s", s);
            free(s);
            s = NULL;
        }
        if ((x = pgf_doc_get(r, "op")) == NULL)
            return pgf__docv_err(v, r, "racer '%s' needs 'op' (close, cancel, check or open)",
                                 rc->name);
        if (!pgf__docv_str(v, x, "op", &s))
            return false;
        int op = pgf_session_op_parse(s);
        free(s);
        s = NULL;
        if (op != PGF_OP_close && op != PGF_OP_cancel && op != PGF_OP_check && op != PGF_OP_open)
            return pgf__docv_err(v, x, "racer '%s': 'op' must be close, cancel, check or open",
                                 rc->name);
        rc->op = (pgf_sess_op)op;
        if ((x = pgf_doc_get(r, "at")) == NULL)
            return pgf__docv_err(
                v, r, "racer '%s' needs 'at' (a session state, e.g. CONNECTING_AUTH)", rc->name);
        if (!pgf__docv_str(v, x, "at", &s))
            return false;
        int st = pgf_session_state_parse(s);
        snprintf(rc->at_name, sizeof rc->at_name, "%s", s);
        if (st < 0 && sc->target.kind == PGF_TARGET_EXEC)
            st = 0; /* an adapter's own state: only at_name counts, checked at run time */
        if (st < 0) {
            char list[512] = "";
            for (int k = 0; k < PGF_SESS_STATE_COUNT; k++) {
                strncat(list, pgf_session_state_name((pgf_sess_state)k),
                        sizeof list - strlen(list) - 1);
                if (k + 1 < PGF_SESS_STATE_COUNT)
                    strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            pgf__docv_err(v, x, "racer '%s': unknown state '%s' (expected one of: %s)", rc->name, s,
                          list);
            free(s);
            return false;
        }
        free(s);
        rc->at = (pgf_sess_state)st;
        if ((x = pgf_doc_get(r, "probability")) &&
            !pgf__docv_double(v, x, "probability", 0, 1, &rc->probability))
            return false;
        if ((x = pgf_doc_get(r, "nth")) && !pgf__docv_u64(v, x, "nth", 0, UINT64_MAX / 2, &rc->nth))
            return false;
        if ((x = pgf_doc_get(r, "times")) && !pgf__docv_uns(v, x, "times", 1, 16, &rc->times))
            return false;
        if ((x = pgf_doc_get(r, "delay_ms")) &&
            !pgf__docv_uns(v, x, "delay_ms", 0, 3600000, &rc->delay_ms))
            return false;
    }
    return true;
}

static bool parse_bugs(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    char list[512] = "";
    if (n->kind == PGF_DOC_SCALAR) {
        snprintf(list, sizeof list, "%s", n->text);
    } else if (n->kind == PGF_DOC_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            if (n->kids[i]->kind != PGF_DOC_SCALAR)
                return pgf__docv_err(v, n->kids[i], "'bugs' must be a list of bug names");
            if (i)
                strncat(list, ",", sizeof list - strlen(list) - 1);
            strncat(list, n->kids[i]->text, sizeof list - strlen(list) - 1);
        }
    } else {
        return pgf__docv_err(v, n, "'bugs' must be a list of bug names or 'none'");
    }
    if (pgf_session_bugs_parse(list, &sc->bugs) != 0) {
        char names[512] = "";
#define PGF__BUG_NAME(name, bit, str, doc) \
    strncat(names, str ", ", sizeof names - strlen(names) - 1);
        PGF_BUG_MAP(PGF__BUG_NAME)
#undef PGF__BUG_NAME
        return pgf__docv_err(v, n, "unknown bug in '%s' (expected: none, %.*s)", list,
                             (int)(strlen(names) > 2 ? strlen(names) - 2 : 0), names);
    }
    return true;
}

static bool add_expect(pgf__docv *v, const pgf_doc *at, pgf_scenario *sc, pgf_expect e)
{
    if (sc->nexpects >= PGF_SCENARIO_MAX_EXPECTS)
        return pgf__docv_err(v, at, "too many expectations (at most %d)", PGF_SCENARIO_MAX_EXPECTS);
    e.line = at ? at->line : 0;
    sc->expects[sc->nexpects++] = e;
    return true;
}

static bool parse_expect(pgf__docv *v, const pgf_doc *n, pgf_scenario *sc)
{
    static const char *const keys[] = {"violations", "reasons",        "p99_ms",      "all_closed",
                                       "min_checks", "max_login_rate", "recovery_ms", "idle_floor"};
    if (!pgf__docv_only_keys(v, n, "'expect'", keys, 8))
        return false;
    /* the service-target expectations (target.h) */
    if (!pgf_target_parse_expect(n, v->source, &sc->target, v->err, v->errlen)) {
        v->failed = true;
        return false;
    }
    const pgf_doc *x;
    if ((x = pgf_doc_get(n, "violations")) != NULL) {
        if (x->kind != PGF_DOC_SCALAR ||
            (strcmp(x->text, "none") != 0 && strcmp(x->text, "some") != 0))
            return pgf__docv_err(v, x, "'violations' must be none or some");
        if (strcmp(x->text, "some") == 0 &&
            !add_expect(v, x, sc, (pgf_expect){.kind = PGF_EXPECT_VIOLATIONS}))
            return false;
    }
    if ((x = pgf_doc_get(n, "reasons")) != NULL) {
        if (x->kind != PGF_DOC_MAP)
            return pgf__docv_err(v, x, "'reasons' must map a reason to [min, max] shares");
        for (size_t i = 0; i < x->n; i++) {
            int r = pgf_health_reason_parse(x->keys[i]);
            if (r < 0) {
                v->failed = true;
                snprintf(v->err, v->errlen,
                         "%s:%d:%d: unknown health reason '%s' (expected e.g. healthy, "
                         "auth_failed, unreachable, timeout, server_error, connection_lost, "
                         "canceled, too_many_connections, shutting_down)",
                         v->source, x->key_line[i], x->key_col[i], x->keys[i]);
                return false;
            }
            const pgf_doc *rng = x->kids[i];
            if (rng->kind != PGF_DOC_SEQ || rng->n != 2)
                return pgf__docv_err(v, rng, "'reasons.%s' must be [min, max] (shares 0..1)",
                                     x->keys[i]);
            pgf_expect e = {.kind = PGF_EXPECT_REASON_SHARE, .reason = (pgf_health_reason)r};
            if (!pgf__docv_double(v, rng->kids[0], "min", 0, 1, &e.min) ||
                !pgf__docv_double(v, rng->kids[1], "max", 0, 1, &e.max))
                return false;
            if (e.min > e.max)
                return pgf__docv_err(v, rng, "'reasons.%s': min %g is above max %g", x->keys[i],
                                     e.min, e.max);
            if (!add_expect(v, rng, sc, e))
                return false;
        }
    }
    pgf_expect e = {0};
    if ((x = pgf_doc_get(n, "p99_ms")) != NULL) {
        e = (pgf_expect){.kind = PGF_EXPECT_P99_MS};
        if (!pgf__docv_double(v, x, "p99_ms", 0, 1e9, &e.value) || !add_expect(v, x, sc, e))
            return false;
    }
    if ((x = pgf_doc_get(n, "all_closed")) != NULL) {
        bool b;
        if (!pgf__docv_bool(v, x, "all_closed", &b))
            return false;
        if (b && !add_expect(v, x, sc, (pgf_expect){.kind = PGF_EXPECT_ALL_CLOSED}))
            return false;
    }
    if ((x = pgf_doc_get(n, "min_checks")) != NULL) {
        e = (pgf_expect){.kind = PGF_EXPECT_MIN_CHECKS};
        if (!pgf__docv_double(v, x, "min_checks", 0, 1e12, &e.value) || !add_expect(v, x, sc, e))
            return false;
    }
    if ((x = pgf_doc_get(n, "max_login_rate")) != NULL) {
        e = (pgf_expect){.kind = PGF_EXPECT_MAX_LOGIN_RATE};
        if (!pgf__docv_double(v, x, "max_login_rate", 0, 1e9, &e.value) || !add_expect(v, x, sc, e))
            return false;
    }
    return true;
}

static bool parse_root(pgf__docv *v, const pgf_doc *root, pgf_scenario *sc)
{
    static const char *const keys[] = {
        "name",         "description", "seed",   "mode", "server", "client", "faults",
        "faults_after", "workload",    "racers", "bugs", "expect", "target"};
    if (!pgf__docv_only_keys(v, root, "the scenario", keys, 13))
        return false;
    const pgf_doc *x;
    if ((x = pgf_doc_get(root, "name")) == NULL)
        return pgf__docv_err(v, root, "a scenario needs 'name'");
    if (!pgf__docv_str(v, x, "name", &sc->name))
        return false;
    for (const char *p = sc->name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
            return pgf__docv_err(
                v, x, "'name' may only contain a-z, 0-9, '-' and '_' (it names a directory)");
    if ((x = pgf_doc_get(root, "description")) &&
        !pgf__docv_str(v, x, "description", &sc->description))
        return false;
    if ((x = pgf_doc_get(root, "seed")) && !pgf__docv_u64(v, x, "seed", 0, UINT64_MAX, &sc->seed))
        return false;
    if ((x = pgf_doc_get(root, "mode")) != NULL) {
        if (x->kind != PGF_DOC_SCALAR ||
            (strcmp(x->text, "sim") != 0 && strcmp(x->text, "stress") != 0))
            return pgf__docv_err(v, x, "'mode' must be sim or stress");
        sc->mode = strcmp(x->text, "sim") == 0 ? PGF_MODE_SIM : PGF_MODE_STRESS;
    }
    if ((x = pgf_doc_get(root, "server")) && !parse_server(v, x, sc))
        return false;
    if ((x = pgf_doc_get(root, "client")) && !parse_client(v, x, sc))
        return false;
    if ((x = pgf_doc_get(root, "faults")) != NULL && !pgf__docv_is_null(x)) {
        if (x->kind != PGF_DOC_SEQ)
            return pgf__docv_err(v, x,
                                 "'faults' must be a list of fault rules (see docs/faults.md)");
        sc->rules = pgf_fault_rules_from_doc(x, v->source, v->err, v->errlen);
        if (sc->rules == NULL) {
            v->failed = true;
            return false;
        }
    }
    if ((x = pgf_doc_get(root, "faults_after")) != NULL) {
        static const char *const fk[] = {"at_ms", "rules"};
        if (!pgf__docv_only_keys(v, x, "'faults_after'", fk, 2))
            return false;
        const pgf_doc *y;
        if ((y = pgf_doc_get(x, "at_ms")) == NULL)
            return pgf__docv_err(v, x, "'faults_after' needs 'at_ms'");
        if (!pgf__docv_u64(v, y, "at_ms", 1, UINT64_MAX / 1000000, &sc->rules2_at_ms))
            return false;
        if ((y = pgf_doc_get(x, "rules")) == NULL || y->kind != PGF_DOC_SEQ)
            return pgf__docv_err(v, x, "'faults_after' needs 'rules' (a list of fault rules)");
        sc->rules2 = pgf_fault_rules_from_doc(y, v->source, v->err, v->errlen);
        if (sc->rules2 == NULL) {
            v->failed = true;
            return false;
        }
    }
    if ((x = pgf_doc_get(root, "workload")) && !parse_workload(v, x, sc))
        return false;
    /* Sim mode's virtual clock jumps whenever its own loop is idle: with a
     * real server on the other end every network wait would look idle and
     * deadlines would fire at once. */
    if (sc->external != NULL && sc->mode == PGF_MODE_SIM && pgf_doc_get(root, "target") == NULL)
        return pgf__docv_err(v, pgf_doc_get(pgf_doc_get(root, "server"), "external"),
                             "'server.external' needs 'mode: stress' (sim mode runs the embedded "
                             "server on its own virtual clock)");
    if (sc->proxy_upstream != NULL && sc->external != NULL)
        return pgf__docv_err(v, pgf_doc_get(pgf_doc_get(root, "server"), "proxy"),
                             "'server.proxy' and 'server.external' exclude each other (the proxy "
                             "connects to its upstream; clients connect to the proxy)");
    /* (a target defaults to stress: its own check below names a 'mode: sim') */
    if (sc->proxy_upstream != NULL && sc->mode == PGF_MODE_SIM &&
        pgf_doc_get(root, "target") == NULL)
        return pgf__docv_err(v, pgf_doc_get(pgf_doc_get(root, "server"), "proxy"),
                             "'server.proxy' needs 'mode: stress' (a real server does not run on "
                             "sim mode's virtual clock)");
    if ((x = pgf_doc_get(root, "target")) != NULL) {
        if (!pgf_target_parse(x, v->source, v->source, &sc->target, v->err, v->errlen)) {
            v->failed = true;
            return false;
        }
        /* A service is a real process on real sockets: it cannot live on
         * the sim loop's virtual clock. Unset mode means stress here. */
        const pgf_doc *m = pgf_doc_get(root, "mode");
        if (m != NULL && sc->mode == PGF_MODE_SIM)
            return pgf__docv_err(
                v, m,
                "'target' needs 'mode: stress' (sim mode's virtual clock cannot drive "
                "an external service process)");
        sc->mode = PGF_MODE_STRESS;
        /* Targets start the embedded fake server, or the fault proxy in
         * front of a real one, themselves (target_http.c). */
        const pgf_doc *srv = pgf_doc_get(root, "server");
        if (sc->external != NULL)
            return pgf__docv_err(
                v, pgf_doc_get(srv, "external"),
                "a 'target' cannot use 'server.external' (no faults could reach the "
                "service): write 'server: {proxy: {upstream: HOST:PORT}}' to test it "
                "against a real database through the fault proxy");
        if (sc->proxy_upstream != NULL) {
            /* The fake's own settings mean nothing in front of a real
             * database: say so rather than ignore them. */
            static const char *const fake_only[] = {"users", "databases", "max_connections",
                                                    "answers"};
            for (size_t i = 0; i < sizeof fake_only / sizeof fake_only[0]; i++)
                if (pgf_doc_get(srv, fake_only[i]) != NULL)
                    return pgf__docv_err(
                        v, pgf_doc_get(srv, fake_only[i]),
                        "'server.%s' configures the embedded fake server; with "
                        "'server.proxy' the real database decides (give the service "
                        "its role in 'client: {user, password, database}')",
                        fake_only[i]);
        }
        const pgf_doc *rs = pgf_doc_get(root, "racers");
        if (sc->target.kind == PGF_TARGET_HTTP && rs != NULL && rs->kind == PGF_DOC_SEQ &&
            rs->n > 0)
            return pgf__docv_err(
                v, pgf_doc_get(root, "racers"),
                "'racers' call pgfault's own session manager; a 'target' service is "
                "driven only through its health URL");
    }
    if (sc->server_threads > 1 &&
        (sc->external != NULL || sc->proxy_upstream != NULL || pgf_doc_get(root, "target")))
        return pgf__docv_err(
            v, pgf_doc_get(pgf_doc_get(root, "server"), "threads"),
            "'server.threads' sets the event loops of the driver's embedded fake server: "
            "not supported with %s",
            sc->external != NULL         ? "'server.external'"
            : sc->proxy_upstream != NULL ? "'server.proxy'"
                                         : "a 'target' yet");
    if (sc->server_threads > 1 && sc->mode == PGF_MODE_SIM)
        return pgf__docv_err(
            v, pgf_doc_get(pgf_doc_get(root, "server"), "threads"),
            "'server.threads: %u' needs 'mode: stress' (sim mode keeps one event loop: "
            "its virtual clock is that loop's)",
            sc->server_threads);
    if ((x = pgf_doc_get(root, "racers")) != NULL && !pgf__docv_is_null(x) &&
        !parse_racers(v, x, sc))
        return false;
    if ((x = pgf_doc_get(root, "bugs")) && !parse_bugs(v, x, sc))
        return false;
    if ((x = pgf_doc_get(root, "expect")) && !parse_expect(v, x, sc))
        return false;
    return true;
}

/* Fill what the file left out from what it said. */
static int finish(pgf_scenario *sc, pgf__docv *v)
{
    if (sc->nusers == 0) {
        sc->users[0].name = strdup("postgres");
        sc->users[0].password = strdup("postgres");
        sc->users[0].method = PGF_AUTH_METHOD_SCRAM;
        sc->users[0].superuser = true;
        sc->nusers = 1;
    }
    if (sc->user == NULL)
        sc->user = strdup(sc->users[0].name);
    if (sc->password == NULL && sc->external == NULL)
        for (int i = 0; i < sc->nusers; i++)
            if (strcmp(sc->users[i].name, sc->user) == 0)
                sc->password = strdup(sc->users[i].password);
    if (sc->database == NULL)
        sc->database = strdup(sc->ndatabases > 0 ? sc->databases[0] : "postgres");
    if (sc->query == NULL)
        sc->query = strdup("SELECT 1");
    if (sc->description == NULL)
        sc->description = strdup("");
    if (sc->user == NULL || sc->database == NULL || sc->query == NULL || sc->description == NULL) {
        snprintf(v->err, v->errlen, "%s: out of memory", v->source);
        return PGF_ENOMEM;
    }
    return 0;
}

int pgf_scenario_load_string(const char *text, size_t len, const char *source, pgf_scenario *sc,
                             char *err, size_t errlen)
{
    pgf_scenario_defaults(sc);
    pgf__docv v = {source, err, errlen, false};
    pgf_doc *root = pgf_doc_from_yaml(text, len, source, err, errlen);
    if (root == NULL)
        return PGF_EPARSE;
    bool ok = parse_root(&v, root, sc);
    pgf_doc_free(root);
    if (!ok) {
        pgf_scenario_clear(sc);
        return PGF_EPARSE;
    }
    sc->source = strdup(source);
    int e = finish(sc, &v);
    if (e != 0 || sc->source == NULL) {
        pgf_scenario_clear(sc);
        return e ? e : PGF_ENOMEM;
    }
    return 0;
}

int pgf_scenario_load_file(const char *path, pgf_scenario *sc, char *err, size_t errlen)
{
    pgf_scenario_defaults(sc);
    char *buf;
    size_t len;
    int e = pgf_file_read(path, &buf, &len, err, errlen);
    if (e != 0)
        return e;
    e = pgf_scenario_load_string(buf, len, path, sc, err, errlen);
    free(buf);
    return e;
}

/* ---- writing ---- */

void pgf_scenario_write_yaml(const pgf_scenario *sc, FILE *f)
{
    fprintf(f, "name: ");
    pgf__docv_yaml_quote(f, sc->name);
    fprintf(f, "\ndescription: ");
    pgf__docv_yaml_quote(f, sc->description);
    fprintf(f, "\nseed: %" PRIu64 "\nmode: %s\n", sc->seed, pgf_run_mode_name(sc->mode));
    fprintf(f, "server:\n");
    /* behind server.proxy the real database has the roles: no fake users */
    if (!sc->proxy_upstream)
        fprintf(f, "  users:\n");
    for (int i = 0; i < sc->nusers && !sc->proxy_upstream; i++) {
        fprintf(f, "    - {name: ");
        pgf__docv_yaml_quote(f, sc->users[i].name);
        /* Fake-server credentials defined by the scenario itself: needed to replay. */
        fprintf(f, ", password: ");
        pgf__docv_yaml_quote(f, sc->users[i].password);
        fprintf(f, ", method: %s, superuser: %s}\n", pgf_auth_method_name(sc->users[i].method),
                sc->users[i].superuser ? "true" : "false");
    }
    if (!sc->proxy_upstream) {
        fprintf(f, "  databases: [");
        for (int i = 0; i < sc->ndatabases; i++) {
            fprintf(f, "%s", i ? ", " : "");
            pgf__docv_yaml_quote(f, sc->databases[i]);
        }
        fprintf(f, "]\n  max_connections: %d\n", sc->max_connections);
    }
    fprintf(f, "  transport: %s\n", sc->unix_socket ? "unix" : "tcp");
    if (sc->server_threads > 1)
        fprintf(f, "  threads: %u\n", sc->server_threads);
    if (sc->socket_subdir) {
        fprintf(f, "  socket_subdir: ");
        pgf__docv_yaml_quote(f, sc->socket_subdir);
        fprintf(f, "\n");
    }
    if (sc->answers != NULL) {
        char *a = pgf_answers_to_json(sc->answers);
        fprintf(f, "  answers: %s\n", a ? a : "[]");
        free(a);
    }
    if (sc->external) {
        /* never write a real server's password: mask it */
        char masked[1024];
        pgf_config_mask_url(sc->external, masked, sizeof masked);
        fprintf(f, "  external: ");
        pgf__docv_yaml_quote(f, masked);
        fprintf(f, "\n");
    }
    if (sc->proxy_upstream) {
        fprintf(f, "  proxy:\n    upstream: ");
        pgf__docv_yaml_quote(f, sc->proxy_upstream);
        fprintf(f, "\n");
        if (sc->proxy_upstream_port)
            fprintf(f, "    upstream_port: %d\n", sc->proxy_upstream_port);
        if (sc->proxy_connect_timeout_ms)
            fprintf(f, "    connect_timeout_ms: %u\n", sc->proxy_connect_timeout_ms);
    }
    fprintf(f, "client:\n  user: ");
    pgf__docv_yaml_quote(f, sc->user);
    /* A real server's password (behind server.proxy) is never written:
     * only its ${NAME} form, which a replay expands again. */
    if (sc->password_src != NULL) {
        fprintf(f, "\n  password: ");
        pgf__docv_yaml_quote(f, sc->password_src);
    } else if (sc->password && !sc->external && !sc->proxy_upstream) {
        fprintf(f, "\n  password: ");
        pgf__docv_yaml_quote(f, sc->password);
    }
    fprintf(f, "\n  database: ");
    pgf__docv_yaml_quote(f, sc->database);
    fprintf(f, "\n");
    char *rules = sc->rules ? pgf_fault_rules_to_json(sc->rules) : NULL;
    fprintf(f, "faults: %s\n", rules ? rules : "[]");
    free(rules);
    if (sc->rules2) {
        char *r2 = pgf_fault_rules_to_json(sc->rules2);
        fprintf(f, "faults_after:\n  at_ms: %" PRIu64 "\n  rules: %s\n", sc->rules2_at_ms,
                r2 ? r2 : "[]");
        free(r2);
    }
    fprintf(f,
            "workload:\n  sessions: %u\n  threads: %u\n  iterations: %u\n  duration_ms: %" PRIu64
            "\n  query: ",
            sc->sessions, sc->threads, sc->iterations, sc->duration_ms);
    pgf__docv_yaml_quote(f, sc->query);
    fprintf(f, "\n  think_ms: %u\n  connect_timeout_ms: %u\n  query_timeout_ms: %u\n", sc->think_ms,
            sc->connect_timeout_ms, sc->query_timeout_ms);
    if (sc->explore)
        fprintf(f, "  explore: true\n");
    if (sc->pool)
        fprintf(f, "  pool: {size: %u, overflow: %u, timeout_ms: %u, pre_ping: %s}\n",
                sc->pool_size, sc->pool_overflow, sc->pool_timeout_ms,
                sc->pre_ping ? "true" : "false");
    fprintf(f, "racers:%s\n", sc->nracers ? "" : " []");
    for (int i = 0; i < sc->nracers; i++) {
        const pgf_racer *r = &sc->racers[i];
        fprintf(f, "  - {name: ");
        pgf__docv_yaml_quote(f, r->name);
        fprintf(
            f, ", op: %s, at: %s, probability: %g, nth: %" PRIu64 ", times: %u, delay_ms: %u}\n",
            pgf_session_op_name(r->op), r->at_name[0] ? r->at_name : pgf_session_state_name(r->at),
            r->probability, r->nth, r->times, r->delay_ms);
    }
    pgf_target_write_yaml(&sc->target, f);
    fprintf(f, "bugs: [");
    bool first = true;
#define PGF__BUG_W(name, bit, str, doc)             \
    if (sc->bugs & (bit)) {                         \
        fprintf(f, "%s%s", first ? "" : ", ", str); \
        first = false;                              \
    }
    PGF_BUG_MAP(PGF__BUG_W)
#undef PGF__BUG_W
    fprintf(f, "]\nexpect:\n");
    bool any_reason = false;
    for (int i = 0; i < sc->nexpects; i++) {
        const pgf_expect *e = &sc->expects[i];
        switch (e->kind) {
        case PGF_EXPECT_VIOLATIONS:
            fprintf(f, "  violations: some\n");
            break;
        case PGF_EXPECT_P99_MS:
            fprintf(f, "  p99_ms: %g\n", e->value);
            break;
        case PGF_EXPECT_ALL_CLOSED:
            fprintf(f, "  all_closed: true\n");
            break;
        case PGF_EXPECT_MIN_CHECKS:
            fprintf(f, "  min_checks: %g\n", e->value);
            break;
        case PGF_EXPECT_MAX_LOGIN_RATE:
            fprintf(f, "  max_login_rate: %g\n", e->value);
            break;
        case PGF_EXPECT_REASON_SHARE:
            if (!any_reason)
                fprintf(f, "  reasons:\n");
            any_reason = true;
            fprintf(f, "    %s: [%g, %g]\n", pgf_health_reason_name(e->reason), e->min, e->max);
            break;
        case PGF_EXPECT_NO_VIOLATIONS:
            break;
        }
    }
    if (sc->nexpects == 0)
        fprintf(f, "  violations: none\n");
    if (sc->target.recovery_ms > 0)
        fprintf(f, "  recovery_ms: %" PRIu64 "\n", sc->target.recovery_ms);
    if (sc->target.kind != PGF_TARGET_BUILTIN)
        fprintf(f, "  idle_floor: %d\n", sc->target.idle_floor);
}

/* ---- the built-in library (generated by CMake from the files in scenarios/) ---- */

typedef struct pgf__builtin {
    const char *name;
    const char *text;
} pgf__builtin;
extern const pgf__builtin pgf__builtin_scenarios[];
extern const size_t pgf__builtin_scenario_count;

size_t pgf_scenario_builtin_count(void)
{
    return pgf__builtin_scenario_count;
}

const char *pgf_scenario_builtin_name(size_t i)
{
    return i < pgf__builtin_scenario_count ? pgf__builtin_scenarios[i].name : NULL;
}

const char *pgf_scenario_builtin_text(size_t i)
{
    return i < pgf__builtin_scenario_count ? pgf__builtin_scenarios[i].text : NULL;
}

int pgf_scenario_builtin_find(const char *name)
{
    size_t n = strlen(name);
    if (n > 5 && strcmp(name + n - 5, ".yaml") == 0)
        n -= 5;
    for (size_t i = 0; i < pgf__builtin_scenario_count; i++)
        if (strlen(pgf__builtin_scenarios[i].name) == n &&
            strncmp(pgf__builtin_scenarios[i].name, name, n) == 0)
            return (int)i;
    return -1;
}
