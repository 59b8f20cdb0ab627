/* cmd_serve_history.c - the history `pgfault serve --history FILE` writes
 * (see serve_history.h). Not a subcommand: it lives beside cmd_serve.c.
 *
 * One JSON line per connection event (type `server`, with the connection
 * counts the checker verifies, plus `event`, `conn`, `backend_pid`, the
 * client's address and port or socket path, `application_name`, `user`,
 * `database`, `query`, `cause`, `fault_rule`) and per fired fault (type
 * `fault`, with the same client fields). Extra keys are allowed by the
 * history format, so the file is also a valid history for `pgfault check`.
 * Written from the server's loop thread only; flushed per line so a killed
 * server leaves a readable prefix.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/fault.h"
#include "serve_history.h"

struct pgf_serve_history {
    FILE *f;
    uint64_t seq, last_ns;
    int64_t accepted, closed;
};

pgf_serve_history *pgf_serve_history_open(const char *path, uint64_t seed, char *err,
                                          unsigned errlen)
{
    pgf_serve_history *h = calloc(1, sizeof *h);
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->f = fopen(path, "w");
    if (h->f == NULL) {
        snprintf(err, errlen, "%s: cannot open history: %s", path, strerror(errno));
        free(h);
        return NULL;
    }
    fprintf(h->f,
            "{\"type\":\"meta\",\"format\":\"pgfault-history\",\"version\":1,\"seed\":%llu,"
            "\"mode\":\"serve\",\"tool\":\"pgfault serve\",\"wall\":%llu}\n",
            (unsigned long long)(seed > INT64_MAX ? 0 : seed), (unsigned long long)pgf_wall_us());
    fflush(h->f);
    return h;
}

/* The fields that join a record with a service's own logs. */
static void who(json_t *o, const struct pgf_fault_ctx *ctx)
{
    if (ctx->conn_id != 0)
        json_object_set_new(o, "conn", json_integer((json_int_t)ctx->conn_id));
    if (ctx->backend_pid != 0)
        json_object_set_new(o, "backend_pid", json_integer(ctx->backend_pid));
    if (ctx->client_socket != NULL) {
        json_object_set_new(o, "client_socket", json_string(ctx->client_socket));
    } else if (ctx->client_addr != NULL) {
        const char *colon = strrchr(ctx->client_addr, ':');
        if (colon != NULL) {
            const char *h = ctx->client_addr;
            size_t hl = (size_t)(colon - h);
            if (hl >= 2 && h[0] == '[' && h[hl - 1] == ']')
                h++, hl -= 2;
            json_object_set_new(o, "client_addr", json_stringn(h, hl));
            json_object_set_new(o, "client_port", json_integer(strtol(colon + 1, NULL, 10)));
        }
    }
    if (ctx->application_name != NULL)
        json_object_set_new(o, "application_name", json_string(ctx->application_name));
    if (ctx->user != NULL)
        json_object_set_new(o, "user", json_string(ctx->user));
    if (ctx->database != NULL)
        json_object_set_new(o, "database", json_string(ctx->database));
}

static json_t *record(pgf_serve_history *h, const char *type, uint64_t time_ns, uint64_t wall_us)
{
    json_t *o = json_object();
    if (time_ns == 0)
        time_ns = h->last_ns; /* the closing record: the last time seen */
    h->last_ns = time_ns;
    json_object_set_new(o, "seq", json_integer((json_int_t)++h->seq));
    json_object_set_new(o, "time_ns", json_integer((json_int_t)time_ns));
    json_object_set_new(o, "type", json_string(type));
    json_object_set_new(o, "wall", json_integer((json_int_t)(wall_us ? wall_us : pgf_wall_us())));
    return o;
}

static void emit(pgf_serve_history *h, json_t *o)
{
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s != NULL) {
        fprintf(h->f, "%s\n", s);
        fflush(h->f);
    }
    free(s);
    json_decref(o);
}

static void counts(pgf_serve_history *h, json_t *o)
{
    json_object_set_new(o, "conns_open", json_integer(h->accepted - h->closed));
    json_object_set_new(o, "conns_accepted", json_integer(h->accepted));
    json_object_set_new(o, "conns_closed", json_integer(h->closed));
}

void pgf_serve_history_on_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                                const struct pgf_fault_action *a)
{
    pgf_serve_history *h = arg;
    json_t *o = record(h, "fault", ctx->elapsed_ns, ctx->wall_us);
    who(o, ctx);
    json_object_set_new(o, "phase", json_string(pgf_phase_name((pgf_phase)phase)));
    json_object_set_new(o, "rule", json_string(a->rule ? a->rule : ""));
    json_object_set_new(o, "action", json_string(pgf_action_name(a->kind)));
    if ((a->kind == PGF_ACTION_ERROR || a->kind == PGF_ACTION_AUTH_FAIL) && a->sqlstate)
        json_object_set_new(o, "sqlstate", json_string(a->sqlstate));
    emit(h, o);
}

void pgf_serve_history_on_event(void *arg, const char *event, const struct pgf_fault_ctx *ctx,
                                const char *cause, const char *fault_rule)
{
    pgf_serve_history *h = arg;
    if (strcmp(event, "accepted") == 0)
        h->accepted++;
    else if (strcmp(event, "closed") == 0)
        h->closed++;
    json_t *o = record(h, "server", ctx->elapsed_ns, ctx->wall_us);
    counts(h, o);
    json_object_set_new(o, "event", json_string(event));
    who(o, ctx);
    if (strcmp(event, "query") == 0 && ctx->query != NULL)
        json_object_set_new(o, "query", json_string(ctx->query));
    if (cause != NULL)
        json_object_set_new(o, "cause", json_string(cause));
    if (fault_rule != NULL)
        json_object_set_new(o, "fault_rule", json_string(fault_rule));
    emit(h, o);
}

void pgf_serve_history_close(pgf_serve_history *h)
{
    if (h == NULL)
        return;
    json_t *o = record(h, "server", 0, 0);
    counts(h, o);
    json_object_set_new(o, "event", json_string("stopped"));
    emit(h, o);
    fclose(h->f);
    free(h);
}
