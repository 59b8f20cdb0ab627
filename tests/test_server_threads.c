/* test_server_threads.c - the fake server on several event loops
 * (pgf_server_config.threads, `pgfault serve --threads N`), driven by real
 * libpq.
 *
 * What must hold with N loops that one loop gives for free: both loops
 * serve (per-loop accepted counts, exact round robin by connection id);
 * max_connections is exact when logins race on different loops; a
 * CancelRequest arriving on one loop cancels a backend on another; the
 * same seed gives every connection the same fault decisions with 1 and 2
 * loops (compared line by line in the fault log, per connection); a live
 * rule edit reaches the connections of every loop; stop ends every loop and
 * closes every connection; the observers are called one at a time (they
 * count with plain integers here, so TSan sees any overlap); sim mode
 * refuses threads > 1. The whole `server` suite of test_server.c also runs
 * on two loops (`server_threads2`).
 *
 * Every wait has a deadline; nothing asserts on elapsed time.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/rules.h"
#include "pgfault/server.h"
#include "pgfault/timer.h"
#include "pgf_test.h"
#include "testutil.h"

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define DEADLINE_MS 30000
#else
#define DEADLINE_MS 8000
#endif
#define MAXC 64

static const pgf_server_user users[] = {
    {"trusty", "", PGF_AUTH_METHOD_TRUST, false},
};

/* Observer counts: plain integers on purpose (the server serializes the
 * observers; TSan reports any two calls that overlap). */
typedef struct obs {
    uint64_t opened, closed_notes, accepted_events, closed_events, faults;
} obs;

static void obs_conn(void *arg, pgf_server_conn_note note, const pgf_server_conn_info *info)
{
    obs *o = arg;
    (void)info;
    if (note == PGF_CONN_NOTE_OPEN)
        o->opened++;
    else if (note == PGF_CONN_NOTE_CLOSED)
        o->closed_notes++;
}

static void obs_event(void *arg, const char *event, const struct pgf_fault_ctx *ctx,
                      const char *cause, const char *fault_rule)
{
    obs *o = arg;
    (void)ctx, (void)cause, (void)fault_rule;
    if (strcmp(event, "accepted") == 0)
        o->accepted_events++;
    else if (strcmp(event, "closed") == 0)
        o->closed_events++;
}

static void obs_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                      const struct pgf_fault_action *a)
{
    obs *o = arg;
    (void)ctx, (void)phase, (void)a;
    o->faults++;
}

typedef struct tsrv {
    pgf_server *srv;
    char *dir;
    int port;
    obs o;
} tsrv;

static bool start(tsrv *t, int threads, int max_connections, pgf_fault_engine *e)
{
    memset(t, 0, sizeof *t);
    t->dir = pgf_t_mkdtemp("thr");
    if (t->dir == NULL)
        return false;
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.unix_socket_dir = t->dir;
    cfg.users = users;
    cfg.nusers = 1;
    cfg.max_connections = max_connections;
    cfg.seed = 42;
    cfg.quiet = true;
    cfg.faults = e;
    cfg.threads = threads;
    cfg.on_conn = obs_conn;
    cfg.on_conn_arg = &t->o;
    cfg.on_event = obs_event;
    cfg.on_event_arg = &t->o;
    cfg.on_fault = obs_fault;
    cfg.on_fault_arg = &t->o;
    char err[256];
    if (pgf_server_new(&cfg, NULL, &t->srv, err, sizeof err) != 0 ||
        pgf_server_start_thread(t->srv, err, sizeof err) != 0) {
        fprintf(stderr, "\n  server: %s\n", err);
        pgf_server_free(t->srv);
        t->srv = NULL;
        return false;
    }
    t->port = pgf_server_port(t->srv);
    return true;
}

static void stop(tsrv *t)
{
    pgf_server_free(t->srv);
    t->srv = NULL;
    pgf_t_rmtree(t->dir);
    free(t->dir);
    t->dir = NULL;
}

static pgf_server_stats stats(const tsrv *t)
{
    pgf_server_stats st;
    pgf_server_get_stats(t->srv, &st);
    return st;
}

static bool wait_active(const tsrv *t, uint64_t want)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(DEADLINE_MS);
    while (stats(t).active != want) {
        if (pgf_now_ns() > deadline) {
            fprintf(stderr, "\n  active %llu, want %llu\n", (unsigned long long)stats(t).active,
                    (unsigned long long)want);
            return false;
        }
        poll(NULL, 0, 2); /* polling interval, not a timing assertion */
    }
    return true;
}

static int remaining_ms(uint64_t deadline)
{
    uint64_t now = pgf_now_ns();
    return now >= deadline ? 0 : (int)((deadline - now) / 1000000u) + 1;
}

/* Start n connections at once and drive them all to OK or FAILED
 * (bounded). unix_sock: through the socket directory. */
static void connect_many(const tsrv *t, PGconn **c, int n, bool unix_sock)
{
    char port[16];
    snprintf(port, sizeof port, "%d", t->port);
    const char *keys[] = {
        "host", "port", "user", "dbname", "gssencmode", "sslmode", "application_name", NULL};
    const char *vals[] = {unix_sock ? t->dir : "127.0.0.1",
                          port,
                          "trusty",
                          "postgres",
                          "disable",
                          "disable",
                          "test_threads",
                          NULL};
    PostgresPollingStatusType st[MAXC];
    for (int i = 0; i < n; i++) {
        c[i] = PQconnectStartParams(keys, vals, 0);
        st[i] = c[i] != NULL && PQstatus(c[i]) != CONNECTION_BAD ? PGRES_POLLING_WRITING
                                                                 : PGRES_POLLING_FAILED;
    }
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(DEADLINE_MS);
    for (;;) {
        struct pollfd p[MAXC];
        int idx[MAXC], np = 0;
        for (int i = 0; i < n; i++) {
            if (st[i] == PGRES_POLLING_OK || st[i] == PGRES_POLLING_FAILED)
                continue;
            p[np] = (struct pollfd){PQsocket(c[i]),
                                    st[i] == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
            idx[np++] = i;
        }
        if (np == 0)
            return;
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            CU_FAIL("connect deadline");
            return;
        }
        if (poll(p, (nfds_t)np, ms) < 0 && errno != EINTR)
            return;
        for (int k = 0; k < np; k++)
            if (p[k].revents != 0)
                st[idx[k]] = PQconnectPoll(c[idx[k]]);
    }
}

static PGconn *connect_one(const tsrv *t, bool unix_sock)
{
    PGconn *c = NULL;
    connect_many(t, &c, 1, unix_sock);
    return c;
}

/* The next result (bounded), or NULL when the command is done. */
static PGresult *result(PGconn *c)
{
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(DEADLINE_MS);
    while (PQisBusy(c)) {
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        int ms = remaining_ms(deadline);
        if (ms == 0) {
            CU_FAIL("result deadline");
            return NULL;
        }
        if (poll(&p, 1, ms) < 0 && errno != EINTR)
            return NULL;
        if (!PQconsumeInput(c))
            break;
    }
    return PQgetResult(c);
}

/* Run one query; returns the SQLSTATE of its first result ("" on success,
 * "conn" when the connection failed). */
static const char *run(PGconn *c, const char *sql, char *state, size_t len)
{
    snprintf(state, len, "conn");
    if (PQsendQuery(c, sql) != 1)
        return state;
    bool first = true;
    PGresult *r;
    while ((r = result(c)) != NULL) {
        if (first) {
            const char *s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
            ExecStatusType es = PQresultStatus(r);
            snprintf(state, len, "%s",
                     es == PGRES_TUPLES_OK || es == PGRES_COMMAND_OK ? "" : (s ? s : "conn"));
            first = false;
        }
        PQclear(r);
    }
    return state;
}

static void finish_all(PGconn **c, int n)
{
    for (int i = 0; i < n; i++) {
        PQfinish(c[i]);
        c[i] = NULL;
    }
}

/* ------------------------------------------------------------------ */

/* 3 loops, 30 connections open at once: connection k is served by loop
 * (k - 1) % 3, so each loop has exactly 10; the observers saw each once. */
static void every_loop_serves(void)
{
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 3, 0, NULL));
    PGconn *c[30];
    connect_many(&t, c, 15, false);
    connect_many(&t, c + 15, 15, true); /* the unix-socket listener hands out too */
    int ok = 0;
    char st[16];
    for (int i = 0; i < 30; i++)
        ok += PQstatus(c[i]) == CONNECTION_OK &&
              strcmp(run(c[i], "SELECT 1", st, sizeof st), "") == 0;
    CU_ASSERT_EQUAL(ok, 30);
    pgf_server_stats s = stats(&t);
    CU_ASSERT_EQUAL(s.threads, 3);
    CU_ASSERT_EQUAL(s.accepted, 30);
    CU_ASSERT_EQUAL(s.active, 30);
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(s.loop_accepted[i], 10);
    CU_ASSERT_EQUAL(s.loop_accepted[3], 0);
    CU_ASSERT_EQUAL(s.by_phase[2], 30);
    finish_all(c, 30);
    CU_ASSERT(wait_active(&t, 0));
    s = stats(&t);
    CU_ASSERT_EQUAL(s.closed, 30);
    stop(&t);
    /* after stop (threads joined), the observers' counts are final */
    CU_ASSERT_EQUAL(t.o.opened, 30);
    CU_ASSERT_EQUAL(t.o.closed_notes, 30);
    CU_ASSERT_EQUAL(t.o.accepted_events, 30);
    CU_ASSERT_EQUAL(t.o.closed_events, 30);
}

/* max_connections 5 on 2 loops, 24 logins racing: exactly 5 get in, the
 * other 19 get 53300; once they leave, exactly 5 again. */
static void too_many_clients_exact(void)
{
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 2, 5, NULL));
    for (int round = 0; round < 2; round++) {
        PGconn *c[24];
        connect_many(&t, c, 24, round == 1);
        int ok = 0, full = 0;
        for (int i = 0; i < 24; i++) {
            if (PQstatus(c[i]) == CONNECTION_OK)
                ok++;
            else if (strstr(PQerrorMessage(c[i]), "sorry, too many clients already") != NULL)
                full++;
            else
                fprintf(stderr, "\n  unexpected: %s", PQerrorMessage(c[i]));
        }
        CU_ASSERT_EQUAL(ok, 5);
        CU_ASSERT_EQUAL(full, 19);
        pgf_server_stats s = stats(&t);
        CU_ASSERT(s.loop_accepted[0] > 0 && s.loop_accepted[1] > 0);
        finish_all(c, 24);
        CU_ASSERT(wait_active(&t, 0));
    }
    stop(&t);
}

/* Cancel the pg_sleep of conn on another loop: returns true when the query
 * ended with 57014. */
static bool cancel_from_other_loop(tsrv *t, PGconn *victim)
{
    uint64_t q = stats(t).queries;
    if (PQsendQuery(victim, "SELECT pg_sleep(60)") != 1)
        return false;
    uint64_t deadline = pgf_now_ns() + PGF_MS_NS(DEADLINE_MS);
    while (stats(t).queries < q + 1 && pgf_now_ns() < deadline)
        poll(NULL, 0, 2);
    PGcancel *cn = PQgetCancel(victim);
    char errbuf[256] = "";
    int sent = PQcancel(cn, errbuf, sizeof errbuf);
    PQfreeCancel(cn);
    CU_ASSERT_EQUAL(sent, 1);
    PGresult *r = result(victim);
    bool canceled = r != NULL && PQresultErrorField(r, PG_DIAG_SQLSTATE) != NULL &&
                    strcmp(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014") == 0;
    PQclear(r);
    while ((r = result(victim)) != NULL)
        PQclear(r);
    return canceled;
}

/* Connection 1 is loop 0's, 2 loop 1's; the cancel requests are
 * connections 3 (loop 0, for the backend on loop 1) and 4 (loop 1, for
 * the backend on loop 0). */
static void cancel_crosses_loops(void)
{
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 2, 0, NULL));
    PGconn *a = connect_one(&t, false), *b = connect_one(&t, false);
    CU_ASSERT_FATAL(PQstatus(a) == CONNECTION_OK && PQstatus(b) == CONNECTION_OK);
    CU_ASSERT_EQUAL(stats(&t).loop_accepted[0], 1);
    CU_ASSERT_EQUAL(stats(&t).loop_accepted[1], 1);
    CU_ASSERT(cancel_from_other_loop(&t, b)); /* request on loop 0, backend on loop 1 */
    CU_ASSERT(cancel_from_other_loop(&t, a)); /* request on loop 1, backend on loop 0 */
    pgf_server_stats s = stats(&t);
    CU_ASSERT_EQUAL(s.cancel_requests, 2);
    CU_ASSERT_EQUAL(s.canceled, 2);
    CU_ASSERT_EQUAL(s.loop_accepted[0], 2);
    CU_ASSERT_EQUAL(s.loop_accepted[1], 2);
    char st[16];
    CU_ASSERT_STRING_EQUAL(run(a, "SELECT 1", st, sizeof st), "");
    CU_ASSERT_STRING_EQUAL(run(b, "SELECT 1", st, sizeof st), "");
    PQfinish(a);
    PQfinish(b);
    CU_ASSERT(wait_active(&t, 0));
    stop(&t);
}

/* ------------------------------------------------------------------ */
/* the same fault decisions per connection with 1 and 2 loops          */

static const char rules_yaml[] = "rules:\n"
                                 "  - name: flaky-query\n"
                                 "    phase: query\n"
                                 "    action: error\n"
                                 "    sqlstate: 40001\n"
                                 "    message: flaky\n"
                                 "    probability: 0.3\n"
                                 "  - name: slow-rows\n"
                                 "    phase: row-description\n"
                                 "    action: delay\n"
                                 "    ms: 2\n"
                                 "    jitter_ms: 2\n"
                                 "    probability: 0.5\n"
                                 "  - name: every-third-ready\n"
                                 "    phase: ready\n"
                                 "    action: none\n"
                                 "    every: 3\n"
                                 "  - name: odd-accept\n"
                                 "    phase: accept\n"
                                 "    action: none\n"
                                 "    probability: 0.5\n";

static pgf_fault_engine *engine_with(const char *yaml)
{
    pgf_fault_engine *e = pgf_fault_engine_new(42);
    if (e == NULL)
        return NULL;
    if (yaml != NULL) {
        char err[256];
        pgf_fault_rules *r =
            pgf_fault_rules_parse_yaml(yaml, strlen(yaml), "<test>", err, sizeof err);
        if (r == NULL) {
            fprintf(stderr, "\n  rules: %s\n", err);
            pgf_fault_engine_free(e);
            return NULL;
        }
        pgf_fault_engine_set_rules(e, r);
    }
    return e;
}

/* The fault log as one text per connection: each fired fault's decision
 * (phase, rule, action, params; not its time, address or global seq), in
 * the connection's own order. */
static char *decisions_by_conn(pgf_fault_engine *e, char *out[MAXC + 1])
{
    char *lines = pgf_fault_log_lines(e, 0);
    if (lines == NULL)
        return NULL;
    for (char *line = strtok(lines, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        json_int_t conn = json_integer_value(json_object_get(o, "conn"));
        static const char *const varying[] = {"seq",         "elapsed_ns",  "wall_time",
                                              "client_addr", "client_port", "client_socket"};
        for (size_t i = 0; i < sizeof varying / sizeof varying[0]; i++)
            json_object_del(o, varying[i]);
        char *d = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        json_decref(o);
        if (d != NULL && conn >= 1 && conn <= MAXC) {
            size_t had = out[conn] ? strlen(out[conn]) : 0;
            char *n = realloc(out[conn], had + strlen(d) + 2);
            if (n != NULL) {
                memcpy(n + had, d, strlen(d));
                n[had + strlen(d)] = '\n';
                n[had + strlen(d) + 1] = '\0';
                out[conn] = n;
            }
        }
        free(d);
    }
    return lines;
}

/* 12 connections, opened one after the other (so their ids are the same
 * in both runs), then 8 queries on each, interleaved. */
static void fault_workload(int threads, char *out[MAXC + 1], uint64_t *fired)
{
    pgf_fault_engine *e = engine_with(rules_yaml);
    CU_ASSERT_FATAL(e != NULL);
    tsrv t;
    CU_ASSERT_FATAL(start(&t, threads, 0, e));
    PGconn *c[12];
    for (int i = 0; i < 12; i++) {
        c[i] = connect_one(&t, i % 2 == 1);
        CU_ASSERT(PQstatus(c[i]) == CONNECTION_OK);
    }
    char st[16];
    for (int round = 0; round < 8; round++)
        for (int i = 0; i < 12; i++) {
            const char *s = run(c[i], "SELECT 1", st, sizeof st);
            CU_ASSERT(strcmp(s, "") == 0 || strcmp(s, "40001") == 0);
        }
    finish_all(c, 12);
    CU_ASSERT(wait_active(&t, 0));
    stop(&t);
    *fired = t.o.faults;
    free(decisions_by_conn(e, out));
    pgf_fault_engine_free(e);
}

static void same_decisions_per_connection(void)
{
    char *one[MAXC + 1] = {0}, *two[MAXC + 1] = {0};
    uint64_t fired1 = 0, fired2 = 0;
    fault_workload(1, one, &fired1);
    fault_workload(2, two, &fired2);
    CU_ASSERT(fired1 > 12); /* the rules do fire: the comparison means something */
    CU_ASSERT_EQUAL(fired1, fired2);
    int with_faults = 0;
    for (int k = 1; k <= MAXC; k++) {
        with_faults += one[k] != NULL;
        if ((one[k] == NULL) != (two[k] == NULL) ||
            (one[k] != NULL && strcmp(one[k], two[k]) != 0)) {
            fprintf(stderr, "\n  conn %d: 1 loop:\n%s  2 loops:\n%s", k, one[k] ? one[k] : "-\n",
                    two[k] ? two[k] : "-\n");
            CU_FAIL("a connection's fault decisions differ between 1 and 2 loops");
        }
        free(one[k]);
        free(two[k]);
    }
    CU_ASSERT_EQUAL(with_faults, 12);
}

/* A rule installed while connections are open on both loops applies to
 * all of them at their next query; removing it, likewise. */
static void live_rule_edit_reaches_every_loop(void)
{
    pgf_fault_engine *e = engine_with(NULL);
    CU_ASSERT_FATAL(e != NULL);
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 2, 0, e));
    PGconn *c[6];
    connect_many(&t, c, 6, false);
    char st[16];
    for (int i = 0; i < 6; i++)
        CU_ASSERT_STRING_EQUAL(run(c[i], "SELECT 1", st, sizeof st), "");
    CU_ASSERT_EQUAL(stats(&t).loop_accepted[0], 3);
    CU_ASSERT_EQUAL(stats(&t).loop_accepted[1], 3);
    static const char edit[] =
        "- {name: all-fail, phase: query, action: error, sqlstate: 55000, message: m}\n";
    char err[256];
    pgf_fault_rules *r = pgf_fault_rules_parse_yaml(edit, strlen(edit), "<edit>", err, sizeof err);
    CU_ASSERT_FATAL(r != NULL);
    pgf_fault_engine_set_rules(e, r);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_STRING_EQUAL(run(c[i], "SELECT 1", st, sizeof st), "55000");
    pgf_fault_engine_set_rules(e, NULL);
    for (int i = 0; i < 6; i++)
        CU_ASSERT_STRING_EQUAL(run(c[i], "SELECT 1", st, sizeof st), "");
    CU_ASSERT_EQUAL(stats(&t).faults_fired, 6);
    finish_all(c, 6);
    stop(&t);
    pgf_fault_engine_free(e);
}

/* scope: global counters are shared by the loops: `times: 4` fires
 * exactly 4 times over 16 queries spread on 2 loops. */
static void global_scope_counts_across_loops(void)
{
    pgf_fault_engine *e = engine_with(
        "- {name: four, phase: query, action: error, message: m, scope: global, times: 4}\n");
    CU_ASSERT_FATAL(e != NULL);
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 2, 0, e));
    PGconn *c[4];
    connect_many(&t, c, 4, false);
    char st[16];
    int failed = 0;
    for (int round = 0; round < 4; round++)
        for (int i = 0; i < 4; i++)
            failed += strcmp(run(c[i], "SELECT 1", st, sizeof st), "") != 0;
    CU_ASSERT_EQUAL(failed, 4);
    finish_all(c, 4);
    stop(&t);
    pgf_fault_engine_free(e);
}

/* Stop with connections open on 3 loops: every loop ends, every client
 * sees its connection closed, and the counts agree. */
static void stop_closes_every_loop(void)
{
    tsrv t;
    CU_ASSERT_FATAL(start(&t, 3, 0, NULL));
    PGconn *c[9];
    connect_many(&t, c, 9, false);
    for (int i = 0; i < 9; i++)
        CU_ASSERT(PQstatus(c[i]) == CONNECTION_OK);
    /* one of them mid-query on each loop */
    for (int i = 0; i < 3; i++)
        CU_ASSERT(PQsendQuery(c[i], "SELECT pg_sleep(60)") == 1);
    pgf_server_stop(t.srv);
    pgf_server_stats s = stats(&t);
    CU_ASSERT_EQUAL(s.active, 0);
    CU_ASSERT_EQUAL(s.accepted, 9);
    CU_ASSERT_EQUAL(s.closed, 9);
    CU_ASSERT(s.loop_accepted[0] == 3 && s.loop_accepted[1] == 3 && s.loop_accepted[2] == 3);
    char st[16];
    for (int i = 0; i < 9; i++) {
        if (i < 3) {
            PGresult *r;
            while ((r = result(c[i])) != NULL)
                PQclear(r);
        } else {
            run(c[i], "SELECT 1", st, sizeof st);
        }
        CU_ASSERT_EQUAL(PQstatus(c[i]), CONNECTION_BAD);
    }
    finish_all(c, 9);
    stop(&t);
    CU_ASSERT_EQUAL(t.o.closed_events, 9);
}

/* Sim mode keeps one loop: a virtual clock belongs to one base. */
static void sim_mode_refuses_threads(void)
{
    struct event_base *base = event_base_new();
    CU_ASSERT_FATAL(base != NULL);
    pgf_simclock *clk = pgf_simclock_attach(base, 1000);
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.threads = 2;
    cfg.quiet = true;
    pgf_server *s = NULL;
    char err[256] = "";
    CU_ASSERT_EQUAL(pgf_server_new(&cfg, base, &s, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NULL(s);
    CU_ASSERT(strstr(err, "sim mode keeps one event loop") != NULL);
    cfg.threads = PGF_SERVER_MAX_THREADS + 1;
    CU_ASSERT_EQUAL(pgf_server_new(&cfg, NULL, &s, err, sizeof err), PGF_EINVAL);
    CU_ASSERT(strstr(err, "threads 65: expected 1..64") != NULL);
    pgf_simclock_detach(clk);
    event_base_free(base);
}

static const pgf_test thread_tests[] = {
    {"every_loop_serves", every_loop_serves},
    {"too_many_clients_exact", too_many_clients_exact},
    {"cancel_crosses_loops", cancel_crosses_loops},
    {"same_decisions_per_connection", same_decisions_per_connection},
    {"live_rule_edit_reaches_every_loop", live_rule_edit_reaches_every_loop},
    {"global_scope_counts_across_loops", global_scope_counts_across_loops},
    {"stop_closes_every_loop", stop_closes_every_loop},
    {"sim_mode_refuses_threads", sim_mode_refuses_threads},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_server_threads[] = {
    {"server_threads", NULL, NULL, thread_tests},
    PGF_SUITES_END,
};
