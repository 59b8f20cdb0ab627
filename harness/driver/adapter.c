/* adapter.c - run a scenario whose `target:` is an adapter process
 * (`target: {exec: [CMD, ...]}`): a session manager in any language,
 * driven over JSON lines on its stdin/stdout (docs/adapter-protocol.md).
 *
 * pgfault is the workload and the racers: `sessions` slots each loop
 * open -> check -> close (or acquire -> check -> release) through the
 * adapter, and when the adapter reports a session entering a racer's `at`
 * state, pgfault sends the racer's op for that session. Every request is
 * an `invoke` record; the adapter's completions and transitions become
 * `ok`/`fail`/`transition` records, in the order they arrive; fired faults
 * come from the fake server as usual. The checker then judges the history
 * against the adapter's own spec (`target.spec` or `--spec`).
 *
 * One event loop on this thread (the pipes, think and racer timers, a 50 ms
 * watchdog); the fake server runs on its own thread.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgfault/clock.h"
#include "pgfault/rng.h"
#include "pgfault/rules.h"
#include "service.h"
#include "target_http.h"
#include "wire_checks.h"

typedef struct actx actx;

enum step { ST_IDLE, ST_OPEN, ST_CHECK, ST_CLOSE };

typedef struct aslot {
    actx *a;
    unsigned idx;
    unsigned iter;
    int64_t session; /* current session id (0 = none) */
    enum step step;
    struct event *think;
    bool done;
} aslot;

typedef struct pending {
    int64_t session;
    const char *op; /* static string */
    aslot *slot;    /* NULL for a racer's call */
    uint64_t deadline;
    bool open;
    bool invoked; /* its invoke record is written (the adapter's, or at completion) */
} pending;

typedef struct rjob {
    actx *a;
    int64_t session;
    const pgf_racer *r;
    struct event *ev;
    struct rjob *next;
} rjob;

struct actx {
    const pgf_scenario *sc;
    const pgf_driver_opts *o;
    pgf_run *res;
    pgf_target_result *out;
    struct event_base *base;
    pgf__tsrv ts;
    pgf_service svc;
    bool svc_started;
    struct bufferevent *to, *from;
    bool ready;
    bool adapter_eof;
    aslot *slots;
    unsigned active;
    pending *pend;
    size_t npend, cappend; /* index = op id - 1 */
    int64_t next_session;
    uint64_t racer_count[PGF_SCENARIO_MAX_RACERS];
    uint64_t racer_fired;
    rjob *jobs;
    struct event *watchdog;
    struct event *rotate;
    uint64_t start_ns;
    uint64_t op_timeout_ns;
    uint64_t lines;
    uint64_t bad_lines;
    char first_bad[300];
    char timeout_msg[300];
    pgf__wire *wire;
    bool stop_now;
    volatile sig_atomic_t *stop;
};

static void stop_loop(actx *a)
{
    a->stop_now = true;
    event_base_loopbreak(a->base);
}

/* ---- talking to the adapter ---- */

static int64_t send_op(actx *a, const char *op, int64_t session, aslot *sl)
{
    if (a->npend == a->cappend) {
        size_t cap = a->cappend ? a->cappend * 2 : 256;
        pending *p = realloc(a->pend, cap * sizeof *p);
        if (p == NULL)
            return -1;
        a->pend = p;
        a->cappend = cap;
    }
    int64_t id = (int64_t)++a->npend;
    pending *pd = &a->pend[id - 1];
    *pd = (pending){session, op, sl, pgf_now_ns() + a->op_timeout_ns, true, false};
    char line[160];
    if (session > 0)
        snprintf(line, sizeof line, "{\"op\":\"%s\",\"id\":%" PRId64 ",\"session\":%" PRId64 "}\n",
                 op, id, session);
    else
        snprintf(line, sizeof line, "{\"op\":\"%s\",\"id\":%" PRId64 "}\n", op, id);
    bufferevent_write(a->to, line, strlen(line));
    return id;
}

static void slot_step(aslot *sl);

/* The op's invoke record: when the adapter says it started the call (its
 * own {"type":"invoke"}, in order with its transitions), else just before
 * its completion. */
static void record_invoke(actx *a, int64_t id)
{
    pending *pd = &a->pend[id - 1];
    if (pd->invoked)
        return;
    pd->invoked = true;
    pgf_rec r;
    pgf_rec_init(&r, PGF_REC_INVOKE);
    r.session = pd->session > 0 ? pd->session : PGF_REC_NONE;
    r.op_id = id;
    r.op = pd->op;
    if (a->o == NULL || !a->o->no_record)
        pgf_recorder_put(a->res->rec, &r);
}

static void slot_next_iteration(aslot *sl)
{
    actx *a = sl->a;
    sl->iter++;
    sl->step = ST_IDLE;
    sl->session = 0;
    if (a->stop_now || (a->sc->iterations > 0 && sl->iter >= a->sc->iterations) ||
        (a->sc->duration_ms > 0 && pgf_now_ns() - a->start_ns >= a->sc->duration_ms * 1000000ULL)) {
        sl->done = true;
        if (--a->active == 0)
            event_base_loopbreak(a->base);
        return;
    }
    struct timeval tv = {a->sc->think_ms / 1000, (a->sc->think_ms % 1000) * 1000};
    event_add(sl->think, &tv);
}

static void on_think(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    slot_step(arg);
}

/* Start the slot's next operation. */
static void slot_step(aslot *sl)
{
    actx *a = sl->a;
    bool pool = a->sc->pool;
    switch (sl->step) {
    case ST_IDLE:
        sl->step = ST_OPEN;
        if (pool) {
            send_op(a, "acquire", 0, sl);
        } else {
            sl->session = ++a->next_session;
            send_op(a, "open", sl->session, sl);
        }
        return;
    case ST_OPEN:
    case ST_CHECK:
    case ST_CLOSE:
        return; /* waiting for a completion */
    }
}

static void health_of(actx *a, const pending *pd, bool ok, const char *reason, int64_t id)
{
    /* a check's verdict, or a failed open/acquire (as the built-in driver) */
    bool verdict = strcmp(pd->op, "check") == 0 ||
                   (!ok && (strcmp(pd->op, "open") == 0 || strcmp(pd->op, "acquire") == 0));
    if (!verdict || pd->slot == NULL)
        return;
    const char *rs = ok ? "ok" : (reason && *reason ? reason : "connection_lost");
    if (!ok && strcmp(rs, "canceled") == 0)
        return;
    int k = ok ? PGF_HEALTH_HEALTHY : pgf_health_reason_parse(rs);
    pgf_health_reason o = k >= 0 ? (pgf_health_reason)k : PGF_HEALTH_CONNECTION_LOST;
    a->res->checks++;
    a->res->outcomes[o]++;
    if (a->o == NULL || !a->o->no_record)
        pgf_recorder_health(a->res->rec, pd->session, id, rs, NULL);
}

static void on_completion(actx *a, json_t *j, bool ok)
{
    json_t *jid = json_object_get(j, "id");
    int64_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
    if (id < 1 || (size_t)id > a->npend || !a->pend[id - 1].open) {
        a->bad_lines++;
        if (a->first_bad[0] == '\0')
            snprintf(a->first_bad, sizeof a->first_bad,
                     "line %" PRIu64 ": a completion for unknown or finished id %" PRId64, a->lines,
                     id);
        return;
    }
    pending *pd = &a->pend[id - 1];
    pd->open = false;
    json_t *js = json_object_get(j, "session");
    if (pd->session <= 0 && json_is_integer(js))
        pd->session = json_integer_value(js); /* acquire names its session */
    record_invoke(a, id);
    const char *error = json_string_value(json_object_get(j, "error"));
    const char *message = json_string_value(json_object_get(j, "message"));
    const char *reason = json_string_value(json_object_get(j, "reason"));
    pgf_rec r;
    pgf_rec_init(&r, ok ? PGF_REC_OK : PGF_REC_FAIL);
    r.session = pd->session > 0 ? pd->session : PGF_REC_NONE;
    r.op_id = id;
    r.op = pd->op;
    r.error = ok ? NULL : (error ? error : "error");
    r.cause = message;
    r.reason = ok ? NULL : reason;
    if (a->o == NULL || !a->o->no_record)
        pgf_recorder_put(a->res->rec, &r);
    health_of(a, pd, ok, reason, id);
    aslot *sl = pd->slot;
    if (sl == NULL || sl->done)
        return;
    bool pool = a->sc->pool;
    switch (sl->step) {
    case ST_OPEN:
        if (pool && ok)
            sl->session = pd->session;
        if (pool && !ok) {
            slot_next_iteration(sl);
            return;
        }
        sl->step = ok ? ST_CHECK : ST_CLOSE;
        send_op(a, ok ? "check" : "close", sl->session, sl);
        return;
    case ST_CHECK:
        sl->step = ST_CLOSE;
        send_op(a, pool ? "release" : "close", sl->session, sl);
        return;
    case ST_CLOSE:
        slot_next_iteration(sl);
        return;
    case ST_IDLE:
        return;
    }
}

static void on_racer_fire(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    rjob *j = arg;
    actx *a = j->a;
    if (!a->stop_now)
        for (unsigned k = 0; k < j->r->times; k++)
            send_op(a, pgf_session_op_name(j->r->op), j->session, NULL);
}

static void racers_on(actx *a, int64_t session, const char *to)
{
    const pgf_scenario *sc = a->sc;
    for (int i = 0; i < sc->nracers; i++) {
        const pgf_racer *r = &sc->racers[i];
        if (strcmp(r->at_name, to) != 0)
            continue;
        uint64_t n = ++a->racer_count[i];
        if (r->nth > 0 && n != r->nth)
            continue;
        pgf_rng rng;
        pgf_rng_init(&rng, sc->seed, (uint64_t)session, ((uint64_t)i << 32) | n);
        if (r->probability < 1 && pgf_rng_unit(&rng) >= r->probability)
            continue;
        rjob *j = calloc(1, sizeof *j);
        if (j == NULL)
            return;
        j->a = a;
        j->session = session;
        j->r = r;
        j->ev = evtimer_new(a->base, on_racer_fire, j);
        j->next = a->jobs;
        a->jobs = j;
        a->racer_fired++;
        struct timeval tv = {r->delay_ms / 1000, (r->delay_ms % 1000) * 1000};
        if (j->ev != NULL)
            evtimer_add(j->ev, &tv);
    }
}

static void on_line(actx *a, const char *line, size_t len)
{
    a->lines++;
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    if (type == NULL) {
        a->bad_lines++;
        if (a->first_bad[0] == '\0')
            snprintf(a->first_bad, sizeof a->first_bad, "line %" PRIu64 ": %s: %.*s", a->lines,
                     j ? "no \"type\"" : "not JSON", (int)(len > 160 ? 160 : len), line);
        json_decref(j);
        return;
    }
    if (strcmp(type, "ready") == 0) {
        a->ready = true;
        event_base_loopbreak(a->base);
    } else if (strcmp(type, "invoke") == 0) {
        json_t *jid = json_object_get(j, "id");
        int64_t id = json_is_integer(jid) ? json_integer_value(jid) : 0;
        if (id >= 1 && (size_t)id <= a->npend && a->pend[id - 1].open) {
            json_t *js = json_object_get(j, "session");
            if (a->pend[id - 1].session <= 0 && json_is_integer(js))
                a->pend[id - 1].session = json_integer_value(js);
            record_invoke(a, id);
        } else {
            a->bad_lines++;
            if (a->first_bad[0] == '\0')
                snprintf(a->first_bad, sizeof a->first_bad,
                         "line %" PRIu64 ": an invoke for unknown or finished id %" PRId64,
                         a->lines, id);
        }
    } else if (strcmp(type, "ok") == 0 || strcmp(type, "fail") == 0) {
        on_completion(a, j, strcmp(type, "ok") == 0);
    } else if (strcmp(type, "transition") == 0) {
        json_t *js = json_object_get(j, "session");
        const char *from = json_string_value(json_object_get(j, "from"));
        const char *to = json_string_value(json_object_get(j, "to"));
        const char *op = json_string_value(json_object_get(j, "op"));
        if (!json_is_integer(js) || to == NULL) {
            a->bad_lines++;
            if (a->first_bad[0] == '\0')
                snprintf(a->first_bad, sizeof a->first_bad,
                         "line %" PRIu64 ": a transition needs \"session\" and \"to\"", a->lines);
        } else {
            pgf_rec r;
            pgf_rec_init(&r, PGF_REC_TRANSITION);
            r.session = json_integer_value(js);
            r.from = from;
            r.to = to;
            r.op = op;
            r.cause = json_string_value(json_object_get(j, "cause"));
            if (a->o == NULL || !a->o->no_record)
                pgf_recorder_put(a->res->rec, &r);
            racers_on(a, r.session, to);
        }
    } else if (strcmp(type, "log") != 0) {
        a->bad_lines++;
        if (a->first_bad[0] == '\0')
            snprintf(a->first_bad, sizeof a->first_bad, "line %" PRIu64 ": unknown type \"%s\"",
                     a->lines, type);
    }
    json_decref(j);
}

static void on_read(struct bufferevent *bev, void *arg)
{
    actx *a = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t n;
    char *line;
    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_LF)) != NULL) {
        if (n > 0)
            on_line(a, line, n);
        free(line);
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    actx *a = arg;
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        a->adapter_eof = true;
        stop_loop(a);
    }
}

static void on_watchdog(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    actx *a = arg;
    if (a->stop != NULL && *a->stop) {
        a->res->interrupted = true;
        stop_loop(a);
        return;
    }
    uint64_t now = pgf_now_ns();
    for (size_t i = 0; i < a->npend; i++)
        if (a->pend[i].open && now > a->pend[i].deadline) {
            snprintf(a->timeout_msg, sizeof a->timeout_msg,
                     "%s#%zu (session %" PRId64 ") got no completion within %" PRIu64 " ms",
                     a->pend[i].op, i + 1, a->pend[i].session, a->op_timeout_ns / 1000000);
            stop_loop(a);
            return;
        }
    if (a->svc_started && pgf_service_poll(&a->svc))
        stop_loop(a);
}

static void on_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                     const struct pgf_fault_action *act)
{
    actx *a = arg;
    /* adapters may name their connections pgf-s<session> to link faults */
    int64_t session = -1;
    if (ctx->application_name != NULL && strncmp(ctx->application_name, "pgf-s", 5) == 0)
        session = strtoll(ctx->application_name + 5, NULL, 10);
    if (a->o == NULL || !a->o->no_record)
        pgf_recorder_fault(a->res->rec, ctx->conn_id, session, (pgf_phase)phase, act,
                           ctx->elapsed_ns);
}

int pgf_target_exec_run(const pgf_scenario *sc, const pgf_driver_opts *o, const char *out_dir,
                        pgf_run **run, pgf_target_result **resout, char *err, size_t errlen)
{
    *run = NULL;
    *resout = NULL;
    if (sc->mode == PGF_MODE_SIM) {
        snprintf(err, errlen, "%s: an adapter target runs in real time (use --mode stress)",
                 sc->source ? sc->source : sc->name);
        return PGF_EUSAGE;
    }
    actx *a = calloc(1, sizeof *a);
    pgf_run *res = calloc(1, sizeof *res);
    pgf_target_result *out = calloc(1, sizeof *out);
    pgf__envset env = {0};
    int to_fd = -1, from_fd = -1;
    int e = 0;
    if (a == NULL || res == NULL || out == NULL) {
        free(a);
        free(res);
        free(out);
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    a->sc = sc;
    a->o = o;
    a->res = res;
    a->out = out;
    a->stop = o ? o->stop : NULL;
    a->op_timeout_ns =
        ((uint64_t)sc->connect_timeout_ms + sc->query_timeout_ms + 5000) * 1000000ULL;
    uint64_t t0;
    if ((e = pgf__target_run_open(res, sc, o, &t0, &a->base, &a->wire, err, errlen)) != 0)
        goto done;
    if ((e = pgf__tsrv_start(&a->ts, sc, res->engine, on_fault, a, a->wire, err, errlen)) != 0)
        goto done;
    if ((e = pgf__target_env(&env, sc, &a->ts, "0", err, errlen)) != 0)
        goto done;
    char *argv[PGF_TARGET_MAX_ARGS + 1];
    char expanded[PGF_TARGET_MAX_ARGS][1024];
    for (int i = 0; i < sc->target.argc; i++) {
        pgf__target_expand(&env, sc->target.argv[i], expanded[i], sizeof expanded[i]);
        argv[i] = expanded[i];
    }
    argv[sc->target.argc] = NULL;
    char errp[1200];
    snprintf(errp, sizeof errp, "%s/adapter.stderr", out_dir);
    if ((e = pgf_service_start_piped(&a->svc, argv, env.v, sc->target.dir, errp, &to_fd, &from_fd,
                                     err, errlen)) != 0)
        goto done;
    a->svc_started = true;
    evutil_make_socket_nonblocking(to_fd);
    evutil_make_socket_nonblocking(from_fd);
    a->to = bufferevent_socket_new(a->base, to_fd, BEV_OPT_CLOSE_ON_FREE);
    a->from = bufferevent_socket_new(a->base, from_fd, BEV_OPT_CLOSE_ON_FREE);
    a->watchdog = event_new(a->base, -1, EV_PERSIST, on_watchdog, a);
    if (a->to == NULL || a->from == NULL || a->watchdog == NULL) {
        if (a->to == NULL)
            close(to_fd);
        if (a->from == NULL)
            close(from_fd);
        snprintf(err, errlen, "out of memory");
        e = PGF_ENOMEM;
        goto done;
    }
    bufferevent_setcb(a->from, on_read, NULL, on_event, a);
    bufferevent_setcb(a->to, NULL, NULL, on_event, a);
    bufferevent_enable(a->from, EV_READ);
    bufferevent_enable(a->to, EV_WRITE);
    struct timeval every = {0, 50000};
    event_add(a->watchdog, &every);
    FILE *con = o ? o->progress : NULL;
    if (con) {
        char db[700];
        pgf__tsrv_describe(&a->ts, sc, db, sizeof db);
        fprintf(con, "   adapter pid %d (%s), database at %s\n", (int)a->svc.pid, argv[0], db);
    }

    /* 1. {"type":"ready"} */
    uint64_t ready_deadline = pgf_now_ns() + (uint64_t)sc->target.ready_timeout_ms * 1000000ULL;
    while (!a->ready && !a->stop_now && pgf_now_ns() < ready_deadline)
        event_base_loop(a->base, EVLOOP_ONCE);
    pgf_target_check *c = pgf__target_check_add(
        a->out, "the adapter started and said ready", a->ready, "not_ready",
        a->ready ? "ready after %.0f ms" : "no {\"type\":\"ready\"} within %.0f ms",
        (double)(pgf_now_ns() - t0) / 1e6);
    if (!a->ready)
        goto finish;
    a->stop_now = false;

    /* 2. the workload, racers on the adapter's transitions */
    if (sc->rules != NULL)
        pgf_fault_engine_set_rules(res->engine, pgf_fault_rules_ref(sc->rules));
    a->start_ns = pgf_now_ns();
    if (sc->rules2 != NULL) {
        a->rotate = pgf__target_rotate_new(a->base, res);
    }
    a->slots = calloc(sc->sessions, sizeof *a->slots);
    if (a->slots == NULL) {
        snprintf(err, errlen, "out of memory");
        e = PGF_ENOMEM;
        goto done;
    }
    for (unsigned i = 0; i < sc->sessions; i++) {
        a->slots[i] = (aslot){.a = a, .idx = i};
        a->slots[i].think = evtimer_new(a->base, on_think, &a->slots[i]);
        if (a->slots[i].think == NULL) {
            snprintf(err, errlen, "out of memory");
            e = PGF_ENOMEM;
            goto done;
        }
    }
    a->active = sc->sessions;
    for (unsigned i = 0; i < sc->sessions; i++)
        slot_step(&a->slots[i]);
    while (a->active > 0 && !a->stop_now)
        event_base_loop(a->base, EVLOOP_ONCE);
    /* late racer calls: wait (bounded) for their completions */
    for (bool open = true; open && !a->stop_now;) {
        open = false;
        for (size_t i = 0; i < a->npend && !open; i++)
            open = a->pend[i].open;
        for (rjob *j = a->jobs; j && !open; j = j->next)
            open = j->ev != NULL && evtimer_pending(j->ev, NULL);
        if (open)
            event_base_loop(a->base, EVLOOP_ONCE);
    }
    res->duration_ns = pgf_now_ns() - a->start_ns;
    pgf_fault_engine_set_rules(res->engine, NULL);
    /* what the adapter's manager still holds at the server, before quit */
    for (int k = 0; k < 10; k++)
        event_base_loop(a->base, EVLOOP_NONBLOCK);
    pgf__wire_checks(a->wire, a->out, sc->target.idle_floor, "when the workload ended");
    bufferevent_write(a->to, "{\"op\":\"quit\"}\n", 14);
    /* let the quit line reach the pipe */
    for (int k = 0; k < 20 && evbuffer_get_length(bufferevent_get_output(a->to)) > 0; k++)
        event_base_loop(a->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);

finish:;
    size_t unanswered = 0;
    for (size_t i = 0; i < a->npend; i++)
        unanswered += a->pend[i].open;
    c = pgf__target_check_add(a->out, "the adapter completed every operation",
                              a->timeout_msg[0] == '\0' && unanswered == 0, "adapter_timeout",
                              "%s%s%zu of %zu operations unanswered", a->timeout_msg,
                              a->timeout_msg[0] ? "; " : "", unanswered, a->npend);
    c = pgf__target_check_add(
        a->out, "the adapter spoke the protocol", a->bad_lines == 0, "adapter_protocol",
        "%" PRIu64 " of %" PRIu64 " lines were not protocol messages%s%s", a->bad_lines, a->lines,
        a->first_bad[0] ? "; first: " : "", a->first_bad);
    bool died = a->svc_started && pgf_service_poll(&a->svc);
    char d[128] = "";
    if (a->svc_started)
        pgf_service_describe(&a->svc, d, sizeof d);
    c = pgf__target_check_add(a->out, "the adapter process never died", !died, "adapter_died",
                              died ? "%s before pgfault sent quit" : "%s until quit", d);
    if (a->svc_started)
        pgf_service_stop(&a->svc, sc->target.stop_grace_ms);
    pgf__tsrv_final_stats(&a->ts, res);
    res->racer_fired = a->racer_fired;
    (void)c;

done:
    if (a->svc_started)
        pgf_service_stop(&a->svc, sc->target.stop_grace_ms);
    if (a->to)
        bufferevent_free(a->to);
    if (a->from)
        bufferevent_free(a->from);
    for (rjob *j = a->jobs; j;) {
        rjob *next = j->next;
        if (j->ev)
            event_free(j->ev);
        free(j);
        j = next;
    }
    if (a->slots) {
        for (unsigned i = 0; i < sc->sessions; i++)
            if (a->slots[i].think)
                event_free(a->slots[i].think);
        free(a->slots);
    }
    if (a->watchdog)
        event_free(a->watchdog);
    if (a->rotate)
        event_free(a->rotate);
    pgf__tsrv_stop(&a->ts, sc);
    pgf__wire_free(a->wire);
    if (a->base)
        event_base_free(a->base);
    pgf__envset_free(&env);
    free(a->pend);
    res->wall_ns = pgf_now_ns() - t0;
    free(a);
    if (e != 0) {
        pgf_run_free(res);
        pgf_target_result_free(out);
        return e;
    }
    *run = res;
    *resout = out;
    return 0;
}
