/* faultlog.c - the fault log (JSON lines in memory and to a file) and the
 * fault-site coverage (phases x actions, fires per rule name).
 *
 * Each event is rendered once, when it fires, into its JSON line with
 * jansson (keys in a fixed order), so the bytes depend only on the
 * decision and its ctx: two engines fed the same calls log identical
 * bytes. Everything here takes log_mu; decide() only reaches this file
 * when a fault fires. Not here: deciding (engine.c).
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "pgfault/clock.h"
#include "pgfault/faultlog.h"
#include "pgfault/rules.h"

static json_t *params_json(const pgf_fault_action *a)
{
    json_t *p = json_object();
    switch (a->kind) {
    case PGF_ACTION_ERROR:
    case PGF_ACTION_AUTH_FAIL:
        json_object_set_new(p, "severity", json_string(a->severity));
        json_object_set_new(p, "sqlstate", json_string(a->sqlstate));
        json_object_set_new(p, "message", json_string(a->message));
        if (a->detail)
            json_object_set_new(p, "detail", json_string(a->detail));
        if (a->hint)
            json_object_set_new(p, "hint", json_string(a->hint));
        break;
    case PGF_ACTION_TRUNCATE:
        if (a->messages)
            json_object_set_new(p, "messages", json_integer(a->messages));
        else
            json_object_set_new(p, "bytes", json_integer(a->bytes));
        json_object_set_new(p, "then", json_string(a->reset ? "reset" : "close"));
        break;
    case PGF_ACTION_HALF_CLOSE:
        json_object_set_new(p, "direction", json_string(a->direction == 'r' ? "read" : "write"));
        break;
    case PGF_ACTION_CLOSE:
    case PGF_ACTION_RESET:
        if (a->side != 0)
            json_object_set_new(p, "side", json_string(a->side == 'u' ? "upstream" : "both"));
        break;
    case PGF_ACTION_STALL:
    case PGF_ACTION_DELAY:
    case PGF_ACTION_REFUSE:
        json_object_set_new(p, "ms", json_integer(a->ms));
        break;
    case PGF_ACTION_DRIP:
        json_object_set_new(p, "slice", json_integer(a->slice));
        json_object_set_new(p, "ms", json_integer(a->ms));
        break;
    case PGF_ACTION_BANDWIDTH:
        json_object_set_new(p, "bytes_per_sec", json_integer(a->bytes_per_sec));
        break;
    case PGF_ACTION_GARBAGE:
        json_object_set_new(p, "bytes", json_integer(a->bytes));
        break;
    default:
        break;
    }
    return p;
}

static char *render(uint64_t seq, uint64_t conn_id, pgf_phase phase, const pgf__rule *r,
                    const pgf_fault_action *a, const pgf_fault_ctx *ctx, bool with_time)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "seq", json_integer((json_int_t)seq));
    if (with_time)
        json_object_set_new(o, "elapsed_ns", json_integer((json_int_t)ctx->elapsed_ns));
    /* Who: the fields a service's own log or history is joined on. The
     * client address and the wall time vary between identical runs, so the
     * deterministic (NO_TIME) lines leave them out. */
    if (with_time && ctx->wall_us != 0) {
        char ts[40];
        pgf_wall_iso8601(ctx->wall_us, ts, sizeof ts);
        json_object_set_new(o, "wall_time", json_string(ts));
    }
    if (with_time && ctx->client_socket != NULL) {
        json_object_set_new(o, "client_socket", json_string(ctx->client_socket));
    } else if (with_time && ctx->client_addr != NULL) {
        const char *colon = strrchr(ctx->client_addr, ':');
        if (colon != NULL) {
            const char *h = ctx->client_addr;
            size_t hl = (size_t)(colon - h);
            if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']') /* IPv6 "[::1]:port" */
                h++, hl -= 2;
            json_object_set_new(o, "client_addr", json_stringn(h, hl));
            json_object_set_new(o, "client_port", json_integer(strtol(colon + 1, NULL, 10)));
        }
    }
    json_object_set_new(o, "conn", json_integer((json_int_t)conn_id));
    json_object_set_new(o, "phase", json_string(pgf_phase_name(phase)));
    json_object_set_new(o, "rule", json_string(r->name));
    json_object_set_new(o, "action", json_string(pgf_action_name(a->kind)));
    json_object_set_new(o, "params", params_json(a));
    if (ctx->msg_type >= 0x20 && ctx->msg_type < 0x7f) {
        char t[2] = {(char)ctx->msg_type, 0};
        json_object_set_new(o, "msg_type", json_string(t));
    } else if (ctx->msg_type != 0) {
        json_object_set_new(o, "msg_type", json_integer(ctx->msg_type));
    }
    if (ctx->backend_pid != 0)
        json_object_set_new(o, "backend_pid", json_integer(ctx->backend_pid));
    if (ctx->application_name != NULL)
        json_object_set_new(o, "application_name", json_string(ctx->application_name));
    if (ctx->user != NULL)
        json_object_set_new(o, "user", json_string(ctx->user));
    if (ctx->database != NULL)
        json_object_set_new(o, "database", json_string(ctx->database));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

static void cov_add_name(pgf_fault_engine *e, const char *name)
{
    for (size_t i = 0; i < e->ncov; i++)
        if (strcmp(e->cov_names[i], name) == 0) {
            e->cov_counts[i]++;
            return;
        }
    char **nn = realloc(e->cov_names, (e->ncov + 1) * sizeof *nn);
    if (nn == NULL)
        return;
    e->cov_names = nn;
    uint64_t *nc = realloc(e->cov_counts, (e->ncov + 1) * sizeof *nc);
    if (nc == NULL)
        return;
    e->cov_counts = nc;
    nn[e->ncov] = strdup(name);
    if (nn[e->ncov] == NULL)
        return;
    nc[e->ncov++] = 1;
}

/* Double the ring (up to log_limit), oldest first from index 0. */
static int ring_grow(pgf_fault_engine *e)
{
    size_t nc = e->cap ? e->cap * 2 : 64;
    if (nc > e->log_limit)
        nc = e->log_limit;
    char **nl = malloc(nc * sizeof *nl);
    uint64_t *ns = malloc(nc * sizeof *ns);
    if (nl == NULL || ns == NULL) {
        free(nl);
        free(ns);
        return PGF_ENOMEM;
    }
    for (size_t i = 0; i < e->nlines; i++) {
        nl[i] = e->lines[(e->head + i) % e->cap];
        ns[i] = e->line_seq[(e->head + i) % e->cap];
    }
    free(e->lines);
    free(e->line_seq);
    e->lines = nl;
    e->line_seq = ns;
    e->cap = nc;
    e->head = 0;
    return 0;
}

uint64_t pgf__faultlog_record(pgf_fault_engine *e, uint64_t conn_id, pgf_phase phase,
                              const pgf__rule *r, const pgf_fault_action *a,
                              const pgf_fault_ctx *ctx)
{
    atomic_fetch_add_explicit(&e->fired_total, 1, memory_order_relaxed);
    pthread_mutex_lock(&e->log_mu);
    uint64_t seq = ++e->seq;
    e->cov[phase][a->kind]++;
    e->cov_total++;
    cov_add_name(e, r->name);
    char *line = render(seq, conn_id, phase, r, a, ctx, true);
    if (line != NULL && e->stream != NULL) {
        int w = 0;
        if (e->stream_flags & PGF_FAULT_LOG_NO_TIME) {
            char *l2 = render(seq, conn_id, phase, r, a, ctx, false);
            w = l2 != NULL ? fprintf(e->stream, "%s\n", l2) : (errno = ENOMEM, -1);
            free(l2);
        } else {
            w = fprintf(e->stream, "%s\n", line);
        }
        if ((w < 0 || fflush(e->stream) != 0) && e->stream_errno == 0)
            e->stream_errno = errno ? errno : EIO; /* kept: a full disk is named, not hidden */
    }
    if (line == NULL || e->log_limit == 0) {
        e->dropped++;
        free(line);
    } else {
        if (e->nlines < e->log_limit && e->nlines == e->cap && ring_grow(e) != 0) {
            e->dropped++;
            free(line);
            goto out;
        }
        if (e->nlines >= e->log_limit) { /* full: the oldest gives way */
            free(e->lines[e->head]);
            e->head = (e->head + 1) % e->cap;
            e->nlines--;
            e->dropped++;
        }
        size_t at = (e->head + e->nlines) % e->cap;
        e->lines[at] = line;
        e->line_seq[at] = seq;
        e->nlines++;
    }
out:
    pthread_mutex_unlock(&e->log_mu);
    return seq;
}

void pgf__faultlog_reset_coverage(pgf_fault_engine *e)
{
    pthread_mutex_lock(&e->log_mu);
    memset(e->cov, 0, sizeof e->cov);
    e->cov_total = 0;
    for (size_t i = 0; i < e->ncov; i++)
        free(e->cov_names[i]);
    free(e->cov_names);
    free(e->cov_counts);
    e->cov_names = NULL;
    e->cov_counts = NULL;
    e->ncov = 0;
    pthread_mutex_unlock(&e->log_mu);
}

void pgf__faultlog_destroy(pgf_fault_engine *e)
{
    pgf__faultlog_reset_coverage(e);
    for (size_t i = 0; i < e->nlines; i++)
        free(e->lines[(e->head + i) % e->cap]);
    free(e->lines);
    free(e->line_seq);
    if (e->stream != NULL)
        fclose(e->stream);
}

int pgf_fault_log_open(pgf_fault_engine *e, const char *path, unsigned flags, char *err,
                       size_t errlen)
{
    FILE *f = fopen(path, (flags & PGF_FAULT_LOG_APPEND) ? "a" : "w");
    if (f == NULL) {
        snprintf(err, errlen, "%s: cannot open fault log: %s", path, strerror(errno));
        return PGF_EIO;
    }
    pthread_mutex_lock(&e->log_mu);
    FILE *old = e->stream;
    e->stream = f;
    e->stream_flags = flags;
    e->stream_errno = 0;
    pthread_mutex_unlock(&e->log_mu);
    if (old != NULL)
        fclose(old);
    return 0;
}

int pgf_fault_log_errno(pgf_fault_engine *e)
{
    pthread_mutex_lock(&e->log_mu);
    int err = e->stream_errno;
    pthread_mutex_unlock(&e->log_mu);
    return err;
}

void pgf_fault_log_set_limit(pgf_fault_engine *e, size_t max)
{
    pthread_mutex_lock(&e->log_mu);
    e->log_limit = max;
    while (e->nlines > max) { /* the oldest go first */
        free(e->lines[e->head]);
        e->head = (e->head + 1) % e->cap;
        e->nlines--;
        e->dropped++;
    }
    pthread_mutex_unlock(&e->log_mu);
}

/* Index (0 = oldest held) of the first held event with seq > since. */
static size_t first_after(const pgf_fault_engine *e, uint64_t since)
{
    size_t i = 0;
    while (i < e->nlines && e->line_seq[(e->head + i) % e->cap] <= since)
        i++;
    return i;
}

size_t pgf_fault_log_count(pgf_fault_engine *e)
{
    pthread_mutex_lock(&e->log_mu);
    size_t n = e->nlines;
    pthread_mutex_unlock(&e->log_mu);
    return n;
}

/* Events are held in seq order, the newest log_limit of them. */
char *pgf_fault_log_lines(pgf_fault_engine *e, uint64_t since_seq)
{
    pthread_mutex_lock(&e->log_mu);
    size_t from = first_after(e, since_seq);
    size_t len = 1;
    for (size_t i = from; i < e->nlines; i++)
        len += strlen(e->lines[(e->head + i) % e->cap]) + 1;
    char *s = malloc(len), *p = s;
    if (s != NULL) {
        for (size_t i = from; i < e->nlines; i++) {
            const char *ln = e->lines[(e->head + i) % e->cap];
            size_t l = strlen(ln);
            memcpy(p, ln, l);
            p[l] = '\n';
            p += l + 1;
        }
        *p = '\0';
    }
    pthread_mutex_unlock(&e->log_mu);
    return s;
}

char *pgf_fault_log_json(pgf_fault_engine *e, uint64_t since_seq)
{
    json_t *o = json_object(), *arr = json_array();
    json_object_set_new(o, "events", arr);
    pthread_mutex_lock(&e->log_mu);
    for (size_t i = first_after(e, since_seq); i < e->nlines; i++)
        json_array_append_new(arr, json_loads(e->lines[(e->head + i) % e->cap], 0, NULL));
    json_object_set_new(o, "dropped", json_integer((json_int_t)e->dropped));
    pthread_mutex_unlock(&e->log_mu);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}

int pgf_fault_coverage_get(pgf_fault_engine *e, pgf_fault_coverage *out)
{
    memset(out, 0, sizeof *out);
    pgf_fault_rules *rs = pgf_fault_engine_rules(e);
    size_t n = pgf_fault_rules_count(rs);
    if (n > 0) {
        out->rules = calloc(n, sizeof *out->rules);
        if (out->rules == NULL) {
            pgf_fault_rules_free(rs);
            return PGF_ENOMEM;
        }
    }
    pthread_mutex_lock(&e->log_mu);
    memcpy(out->fired, e->cov, sizeof out->fired);
    out->total = e->cov_total;
    for (size_t i = 0; i < n; i++) {
        const pgf__rule *r = &rs->rules[i];
        pgf_fault_rule_coverage *rc = &out->rules[i];
        snprintf(rc->name, sizeof rc->name, "%s", r->name);
        rc->phase = r->phase;
        rc->action = r->act.kind;
        for (size_t k = 0; k < e->ncov; k++)
            if (strcmp(e->cov_names[k], r->name) == 0)
                rc->fired = e->cov_counts[k];
    }
    out->nrules = n;
    pthread_mutex_unlock(&e->log_mu);
    pgf_fault_rules_free(rs);
    return 0;
}

void pgf_fault_coverage_clear(pgf_fault_coverage *c)
{
    free(c->rules);
    memset(c, 0, sizeof *c);
}

char *pgf_fault_coverage_json(pgf_fault_engine *e)
{
    pgf_fault_coverage c;
    if (pgf_fault_coverage_get(e, &c) != 0)
        return NULL;
    json_t *o = json_object(), *fired = json_array(), *rules = json_array(), *never = json_array();
    json_object_set_new(o, "faults_fired", json_integer((json_int_t)c.total));
    for (int p = 0; p < PGF_PHASE_COUNT; p++)
        for (int a = 0; a < PGF_ACTION_COUNT; a++) {
            if (c.fired[p][a] == 0)
                continue;
            json_t *x = json_object();
            json_object_set_new(x, "phase", json_string(pgf_phase_name((pgf_phase)p)));
            json_object_set_new(x, "action", json_string(pgf_action_name((pgf_action_kind)a)));
            json_object_set_new(x, "count", json_integer((json_int_t)c.fired[p][a]));
            json_array_append_new(fired, x);
        }
    for (size_t i = 0; i < c.nrules; i++) {
        json_t *x = json_object();
        json_object_set_new(x, "name", json_string(c.rules[i].name));
        json_object_set_new(x, "phase", json_string(pgf_phase_name(c.rules[i].phase)));
        json_object_set_new(x, "action", json_string(pgf_action_name(c.rules[i].action)));
        json_object_set_new(x, "fired", json_integer((json_int_t)c.rules[i].fired));
        json_array_append_new(rules, x);
        if (c.rules[i].fired == 0)
            json_array_append_new(never, json_string(c.rules[i].name));
    }
    json_object_set_new(o, "fired", fired);
    json_object_set_new(o, "rules", rules);
    json_object_set_new(o, "never_fired", never);
    pgf_fault_coverage_clear(&c);
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(o);
    return s;
}
