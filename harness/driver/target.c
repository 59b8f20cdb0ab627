/* target.c - the `target:` section of a scenario: which service to start,
 * with what environment, and which HTTP health URL to drive (target.h).
 * Only parsing, defaults and the YAML echo live here; running a target is
 * target_http.c. Errors name file:line:col like every scenario error. */
#include "pgfault/target.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "docval.h"

void pgf_target_init(pgf_target *t)
{
    memset(t, 0, sizeof *t);
    t->kind = PGF_TARGET_BUILTIN;
    t->ready_timeout_ms = 10000;
    t->stop_grace_ms = 3000;
    t->timeout_ms = 2000;
    t->quiet_ms = 2000;
    t->storm_logins_per_s = 20;
}

void pgf_target_clear(pgf_target *t)
{
    for (int i = 0; i < t->argc; i++)
        free(t->argv[i]);
    for (int i = 0; i < t->nenv; i++) {
        free(t->env_key[i]);
        free(t->env_val[i]);
    }
    free(t->dir);
    free(t->url);
    free(t->spec_path);
    pgf_target_init(t);
}

static bool status_list(pgf__docv *c, const pgf_doc *n, const char *key, int *out, int *nout)
{
    if (n->kind != PGF_DOC_SEQ || n->n == 0 || n->n > PGF_TARGET_MAX_STATUS)
        return pgf__docv_err(c, n, "'%s' must be a list of 1 to %d HTTP status codes", key,
                             PGF_TARGET_MAX_STATUS);
    for (size_t i = 0; i < n->n; i++) {
        uint64_t x;
        if (!pgf__docv_u64(c, n->kids[i], key, 100, 599, &x))
            return false;
        out[i] = (int)x;
    }
    *nout = (int)n->n;
    return true;
}

static bool parse_env_timeouts(pgf__docv *c, const pgf_doc *n, pgf_target *t);

static bool parse_argv(pgf__docv *c, const pgf_doc *x, const char *key, pgf_target *t)
{
    if (x->kind != PGF_DOC_SEQ || x->n == 0 || x->n > PGF_TARGET_MAX_ARGS)
        return pgf__docv_err(c, x, "'%s' must be a list of 1 to %d strings (no shell is involved)",
                             key, PGF_TARGET_MAX_ARGS);
    for (size_t i = 0; i < x->n; i++) {
        char *s = NULL;
        if (!pgf__docv_str(c, x->kids[i], key, &s))
            return false;
        t->argv[t->argc++] = s;
    }
    return true;
}

static bool parse_service(pgf__docv *c, const pgf_doc *n, pgf_target *t)
{
    static const char *const keys[] = {"command", "env", "ready_timeout_ms", "stop_grace_ms"};
    if (!pgf__docv_only_keys(c, n, "'target.service'", keys, 4))
        return false;
    const pgf_doc *x = pgf_doc_get(n, "command");
    if (x == NULL)
        return pgf__docv_err(c, n, "'target.service' needs 'command' (a list: [python3, app.py])");
    if (!parse_argv(c, x, "command", t))
        return false;
    return parse_env_timeouts(c, n, t);
}

static bool parse_env_timeouts(pgf__docv *c, const pgf_doc *n, pgf_target *t)
{
    const pgf_doc *x;
    if ((x = pgf_doc_get(n, "env")) != NULL) {
        if (x->kind != PGF_DOC_MAP)
            return pgf__docv_err(c, x, "'env' must map variable names to strings");
        if (x->n > PGF_TARGET_MAX_ENV)
            return pgf__docv_err(c, x, "'env': at most %d variables", PGF_TARGET_MAX_ENV);
        for (size_t i = 0; i < x->n; i++) {
            char *v = NULL;
            if (!pgf__docv_str(c, x->kids[i], x->keys[i], &v))
                return false;
            t->env_key[t->nenv] = strdup(x->keys[i]);
            t->env_val[t->nenv++] = v;
            if (t->env_key[t->nenv - 1] == NULL)
                return pgf__docv_err(c, x, "out of memory");
        }
    }
    if ((x = pgf_doc_get(n, "ready_timeout_ms")) != NULL &&
        !pgf__docv_uns(c, x, "ready_timeout_ms", 1, 600000, &t->ready_timeout_ms))
        return false;
    if ((x = pgf_doc_get(n, "stop_grace_ms")) != NULL &&
        !pgf__docv_uns(c, x, "stop_grace_ms", 0, 600000, &t->stop_grace_ms))
        return false;
    return true;
}

static bool parse_http(pgf__docv *c, const pgf_doc *n, pgf_target *t)
{
    static const char *const keys[] = {"url", "healthy_status", "unhealthy_status", "timeout_ms",
                                       "quiet_ms"};
    if (!pgf__docv_only_keys(c, n, "'target.http'", keys, 5))
        return false;
    const pgf_doc *x = pgf_doc_get(n, "url");
    if (x == NULL)
        return pgf__docv_err(
            c, n, "'target.http' needs 'url' (e.g. \"http://127.0.0.1:${PORT}/healthz\")");
    if (!pgf__docv_str(c, x, "url", &t->url))
        return false;
    if (strncmp(t->url, "http://", 7) != 0)
        return pgf__docv_err(c, x, "'url' must start with http:// (got '%s')", t->url);
    if ((x = pgf_doc_get(n, "healthy_status")) != NULL &&
        !status_list(c, x, "healthy_status", t->healthy_status, &t->nhealthy))
        return false;
    if ((x = pgf_doc_get(n, "unhealthy_status")) != NULL &&
        !status_list(c, x, "unhealthy_status", t->unhealthy_status, &t->nunhealthy))
        return false;
    if ((x = pgf_doc_get(n, "timeout_ms")) != NULL &&
        !pgf__docv_uns(c, x, "timeout_ms", 1, 600000, &t->timeout_ms))
        return false;
    if ((x = pgf_doc_get(n, "quiet_ms")) != NULL &&
        !pgf__docv_uns(c, x, "quiet_ms", 0, 600000, &t->quiet_ms))
        return false;
    return true;
}

bool pgf_target_parse(const pgf_doc *n, const char *source, const char *scenario_path,
                      pgf_target *t, char *err, size_t errlen)
{
    pgf__docv c = {source, err, errlen, false};
    static const char *const keys[] = {"service",          "http",          "exec", "env", "spec",
                                       "ready_timeout_ms", "stop_grace_ms", "dir"};
    if (!pgf__docv_only_keys(&c, n, "'target'", keys, 8))
        return false;
    t->line = n->line;
    const pgf_doc *x = pgf_doc_get(n, "exec");
    if (x != NULL) {
        /* an adapter process (docs/adapter-protocol.md) */
        static const char *const bad[] = {"service", "http"};
        for (int i = 0; i < 2; i++)
            if (pgf_doc_get(n, bad[i]) != NULL)
                return pgf__docv_err(
                    &c, pgf_doc_get(n, bad[i]),
                    "'target.%s' does not go with 'target.exec' (an adapter is driven "
                    "through its stdin/stdout, not a URL)",
                    bad[i]);
        t->kind = PGF_TARGET_EXEC;
        if (!parse_argv(&c, x, "exec", t) || !parse_env_timeouts(&c, n, t))
            return false;
        if ((x = pgf_doc_get(n, "spec")) != NULL && !pgf__docv_str(&c, x, "spec", &t->spec_path))
            return false;
    } else {
        static const char *const http_only[] = {"env", "spec", "ready_timeout_ms", "stop_grace_ms"};
        for (int i = 0; i < 4; i++)
            if (pgf_doc_get(n, http_only[i]) != NULL)
                return pgf__docv_err(
                    &c, pgf_doc_get(n, http_only[i]),
                    "'target.%s' goes with 'target.exec' (for an HTTP target, write it "
                    "under 'target.service')",
                    http_only[i]);
        x = pgf_doc_get(n, "http");
        if (x == NULL)
            return pgf__docv_err(
                &c, n,
                "'target' needs 'http' (the service's health URL) or 'exec' (an adapter "
                "command)");
        t->kind = PGF_TARGET_HTTP;
        if (!parse_http(&c, x, t))
            return false;
        if ((x = pgf_doc_get(n, "service")) != NULL && !parse_service(&c, x, t))
            return false;
    }
    if (t->nhealthy == 0)
        t->healthy_status[t->nhealthy++] = 200;
    if (t->nunhealthy == 0)
        t->unhealthy_status[t->nunhealthy++] = 503;
    /* The service runs in the scenario file's directory: `command: [python3,
     * app.py]` then means the app.py beside the scenario. */
    const char *slash = scenario_path ? strrchr(scenario_path, '/') : NULL;
    if (slash == NULL)
        t->dir = strdup(".");
    else if (slash == scenario_path)
        t->dir = strdup("/");
    else
        t->dir = strndup(scenario_path, (size_t)(slash - scenario_path));
    if (t->dir == NULL)
        return pgf__docv_err(&c, n, "out of memory");
    /* target.dir: the process's working directory, relative to the
     * scenario's (written by --explain, so a replay runs it in the same place) */
    const pgf_doc *xd = pgf_doc_get(n, "dir");
    if (xd != NULL) {
        char *d = NULL;
        if (!pgf__docv_str(&c, xd, "dir", &d))
            return false;
        char *full = NULL;
        if (d[0] != '/' && asprintf(&full, "%s/%s", t->dir, d) < 0) {
            free(d);
            return pgf__docv_err(&c, n, "out of memory");
        }
        free(t->dir);
        if (full != NULL) {
            free(d);
            t->dir = full;
        } else {
            t->dir = d;
        }
    }
    if (t->spec_path != NULL && t->spec_path[0] != '/') {
        char *full = NULL;
        if (asprintf(&full, "%s/%s", t->dir, t->spec_path) < 0)
            return pgf__docv_err(&c, n, "out of memory");
        free(t->spec_path);
        t->spec_path = full;
    }
    /* absolute paths, so the echo in reports and --explain stands alone */
    char *abs = realpath(t->dir, NULL);
    if (abs != NULL) {
        free(t->dir);
        t->dir = abs;
    }
    abs = t->spec_path ? realpath(t->spec_path, NULL) : NULL;
    if (abs != NULL) {
        free(t->spec_path);
        t->spec_path = abs;
    }
    return true;
}

bool pgf_target_parse_expect(const pgf_doc *expect, const char *source, pgf_target *t, char *err,
                             size_t errlen)
{
    pgf__docv c = {source, err, errlen, false};
    const pgf_doc *x;
    if ((x = pgf_doc_get(expect, "recovery_ms")) != NULL &&
        !pgf__docv_u64(&c, x, "recovery_ms", 1, 3600000, &t->recovery_ms))
        return false;
    if ((x = pgf_doc_get(expect, "idle_floor")) != NULL) {
        unsigned f;
        if (!pgf__docv_uns(&c, x, "idle_floor", 0, 100000, &f))
            return false;
        t->idle_floor = (int)f;
    }
    return true;
}

static void write_env(const pgf_target *t, FILE *f, const char *indent)
{
    fprintf(f, "%senv: {", indent);
    for (int i = 0; i < t->nenv; i++) {
        fprintf(f, "%s", i ? ", " : "");
        pgf__docv_yaml_quote(f, t->env_key[i]);
        fprintf(f, ": ");
        pgf__docv_yaml_quote(f, t->env_val[i]);
    }
    fprintf(f, "}\n%sready_timeout_ms: %u\n%sstop_grace_ms: %u\n", indent, t->ready_timeout_ms,
            indent, t->stop_grace_ms);
}

void pgf_target_write_yaml(const pgf_target *t, FILE *f)
{
    if (t->kind == PGF_TARGET_EXEC) {
        fprintf(f, "target:\n  exec: [");
        for (int i = 0; i < t->argc; i++) {
            fprintf(f, "%s", i ? ", " : "");
            pgf__docv_yaml_quote(f, t->argv[i]);
        }
        fprintf(f, "]\n  dir: ");
        pgf__docv_yaml_quote(f, t->dir);
        fprintf(f, "\n");
        write_env(t, f, "  ");
        if (t->spec_path != NULL) {
            fprintf(f, "  spec: ");
            pgf__docv_yaml_quote(f, t->spec_path);
            fprintf(f, "\n");
        }
        return;
    }
    if (t->kind != PGF_TARGET_HTTP)
        return;
    fprintf(f, "target:\n  dir: ");
    pgf__docv_yaml_quote(f, t->dir);
    fprintf(f, "\n");
    if (t->argc > 0) {
        fprintf(f, "  service:\n    command: [");
        for (int i = 0; i < t->argc; i++) {
            fprintf(f, "%s", i ? ", " : "");
            pgf__docv_yaml_quote(f, t->argv[i]);
        }
        fprintf(f, "]\n");
        write_env(t, f, "    ");
    }
    fprintf(f, "  http:\n    url: ");
    pgf__docv_yaml_quote(f, t->url);
    fprintf(f, "\n    healthy_status: [");
    for (int i = 0; i < t->nhealthy; i++)
        fprintf(f, "%s%d", i ? ", " : "", t->healthy_status[i]);
    fprintf(f, "]\n    unhealthy_status: [");
    for (int i = 0; i < t->nunhealthy; i++)
        fprintf(f, "%s%d", i ? ", " : "", t->unhealthy_status[i]);
    fprintf(f, "]\n    timeout_ms: %u\n    quiet_ms: %u\n", t->timeout_ms, t->quiet_ms);
}
