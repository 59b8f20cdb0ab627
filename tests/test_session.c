/* test_session.c - the session state machine as data (every (state,
 * operation) pair, the spec and the diagram), classification, backoff, and
 * the session against scripted servers: each connect sub-phase and a query
 * parked, then closed from another thread. */
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/health.h"
#include "pgfault/machine.h"
#include "pgf_test.h"
#include "pgfault/session.h"
#include "pgfault/spec.h"
#include "test_session_fixture.h"

/* ---- every (state, operation) pair ---- */

/* Expected outcome of calling each session operation in each state, with
 * the operation a session in that state necessarily has in progress.
 * Written out by hand (not derived from machine.h) so a change of the
 * declared rules shows up here. 1 = accepted, 0 = PGF_EILLEGAL_STATE. */
static const struct {
    pgf_sess_state st;
    pgf_sess_op in_progress;
    int open, check, cancel, close;
} pair_table[] = {
    {PGF_SESS_NEW, PGF_OP_NONE, 1, 0, 0, 1},
    {PGF_SESS_CONNECTING_SOCKET, PGF_OP_open, 0, 0, 1, 1},
    {PGF_SESS_CONNECTING_SSL, PGF_OP_open, 0, 0, 1, 1},
    {PGF_SESS_CONNECTING_STARTUP, PGF_OP_open, 0, 0, 1, 1},
    {PGF_SESS_CONNECTING_AUTH, PGF_OP_open, 0, 0, 1, 1},
    {PGF_SESS_CONNECTING_PARAMS, PGF_OP_open, 0, 0, 1, 1},
    {PGF_SESS_READY, PGF_OP_NONE, 0, 1, 0, 1},
    {PGF_SESS_BUSY, PGF_OP_check, 0, 0, 1, 1},
    {PGF_SESS_CANCELING, PGF_OP_check, 0, 0, 0, 1},
    {PGF_SESS_CLOSING, PGF_OP_NONE, 0, 0, 0, 0},
    {PGF_SESS_FAILED, PGF_OP_NONE, 0, 0, 0, 1},
    {PGF_SESS_CLOSED, PGF_OP_NONE, 0, 0, 0, 0},
};

static const char *const kw_none[] = {"host", NULL};
static const char *const val_none[] = {"127.0.0.1", NULL};

static void every_state_operation_pair(void)
{
    CU_ASSERT_EQUAL(sizeof pair_table / sizeof pair_table[0], PGF_SESS_STATE_COUNT);
    struct event_base *base = pgf_session_base_new();
    int (*const fns[4])(pgf_session *, pgf_session_cb, void *) = {
        pgf_session_open, pgf_session_check, pgf_session_cancel, pgf_session_close};
    const pgf_sess_op opv[4] = {PGF_OP_open, PGF_OP_check, PGF_OP_cancel, PGF_OP_close};
    for (size_t i = 0; i < sizeof pair_table / sizeof pair_table[0]; i++) {
        int want[4] = {pair_table[i].open, pair_table[i].check, pair_table[i].cancel,
                       pair_table[i].close};
        for (int k = 0; k < 4; k++) {
            fx_recorder rec;
            fx_recorder_init(&rec);
            pgf_session_opts o = {.keywords = kw_none, .values = val_none};
            o.recorder = fx_record;
            o.recorder_arg = &rec;
            pgf_session *s = NULL;
            CU_ASSERT_EQUAL_FATAL(pgf_session_new(base, &o, &s), 0);
            pgf__session_force(s, pair_table[i].st, pair_table[i].in_progress);
            fx_calls calls = {0};
            int rc = fns[k](s, fx_cb, &calls);
            if ((rc == 0) != (want[k] == 1))
                fprintf(stderr, "state %s op %s: rc %d, want %s\n",
                        pgf_session_state_name(pair_table[i].st), pgf_session_op_name(opv[k]), rc,
                        want[k] ? "accepted" : "refused");
            CU_ASSERT_EQUAL(rc, want[k] ? 0 : PGF_EILLEGAL_STATE);
            /* a refused call changes nothing and never calls back */
            CU_ASSERT_EQUAL(pgf_session_state(s), pair_table[i].st);
            CU_ASSERT_EQUAL(calls.n, 0);
            CU_ASSERT_EQUAL(fx_count(&rec, PGF_SEV_INVOKE, opv[k]), 1);
            CU_ASSERT_EQUAL(fx_count(&rec, PGF_SEV_FAIL, opv[k]), want[k] ? 0 : 1);
            CU_ASSERT_EQUAL(fx_count(&rec, PGF_SEV_TRANSITION, PGF_OP_NONE), 0);
            if (!want[k]) {
                char msg[256];
                pgf_session_last_error(s, msg, sizeof msg);
                char head[64];
                snprintf(head, sizeof head, "Method '%s()' can't be called here",
                         pgf_session_op_name(opv[k]));
                CU_ASSERT_PTR_NOT_NULL(strstr(msg, head));
            }
            /* Free closes what is open: an accepted call completes exactly
             * once (with PGF_ECANCELED, the loop never ran). */
            pgf_session_free(s);
            CU_ASSERT_EQUAL(calls.n, want[k] ? 1 : 0);
            if (want[k] && opv[k] != PGF_OP_close)
                CU_ASSERT_EQUAL(calls.err, PGF_ECANCELED);
            fx_recorder_destroy(&rec);
        }
    }
    pgf_session_counters c;
    pgf_session_counters_get(&c);
    CU_ASSERT_EQUAL(c.sessions, 0);
    event_base_free(base);
}

static void refusal_names_state_and_operation(void)
{
    struct event_base *base = pgf_session_base_new();
    pgf_session_opts o = {.keywords = kw_none, .values = val_none, .id = 77};
    pgf_session *s;
    CU_ASSERT_EQUAL_FATAL(pgf_session_new(base, &o, &s), 0);
    pgf__session_force(s, PGF_SESS_CONNECTING_AUTH, PGF_OP_open);
    char msg[256];
    CU_ASSERT_EQUAL(pgf_session_check(s, NULL, NULL), PGF_EILLEGAL_STATE);
    CU_ASSERT_STRING_EQUAL(pgf_session_last_error(s, msg, sizeof msg),
                           "Method 'check()' can't be called here; method 'open()' is already in "
                           "progress (session 77, state CONNECTING_AUTH)");
    CU_ASSERT_EQUAL(pgf_session_close(s, NULL, NULL), 0);
    CU_ASSERT_EQUAL(pgf_session_close(s, NULL, NULL), PGF_EILLEGAL_STATE);
    CU_ASSERT_STRING_EQUAL(pgf_session_last_error(s, msg, sizeof msg),
                           "Method 'close()' can't be called here; method 'close()' is already in "
                           "progress (session 77, state CONNECTING_AUTH)");
    pgf_session_free(s);
    event_base_free(base);
}

/* ---- the declared table itself ---- */

static void table_is_consistent(void)
{
    /* Every transition's op lists its target among its during/to states,
     * terminal states have no way out, and every non-terminal state can
     * reach CLOSED by close. */
    for (int f = 0; f < PGF_SESS_STATE_COUNT; f++) {
        for (int t = 0; t < PGF_SESS_STATE_COUNT; t++)
            for (int op = 1; op < PGF_OP_COUNT; op++)
                if (pgf_session_state_terminal((pgf_sess_state)f))
                    CU_ASSERT_FALSE(pgf_session_transition_allowed(
                        (pgf_sess_state)f, (pgf_sess_state)t, (pgf_sess_op)op));
        if (!pgf_session_state_terminal((pgf_sess_state)f) && f != PGF_SESS_CLOSING) {
            CU_ASSERT_TRUE(pgf_session_op_allowed_from(PGF_OP_close, (pgf_sess_state)f));
            CU_ASSERT_TRUE(
                pgf_session_transition_allowed((pgf_sess_state)f, PGF_SESS_CLOSING, PGF_OP_close));
        }
    }
    CU_ASSERT_TRUE(pgf_session_transition_allowed(PGF_SESS_CLOSING, PGF_SESS_CLOSED, PGF_OP_close));
    CU_ASSERT_FALSE(
        pgf_session_transition_allowed(PGF_SESS_CONNECTING_AUTH, PGF_SESS_CLOSED, PGF_OP_close));
    CU_ASSERT_FALSE(pgf_session_transition_allowed(PGF_SESS_READY, PGF_SESS_BUSY, PGF_OP_open));
    CU_ASSERT_EQUAL(pgf_session_state_parse("CONNECTING_PARAMS"), PGF_SESS_CONNECTING_PARAMS);
    CU_ASSERT_EQUAL(pgf_session_state_parse("nope"), -1);
    CU_ASSERT_EQUAL(pgf_session_op_parse("invalidate"), PGF_OP_invalidate);
    CU_ASSERT_STRING_EQUAL(pgf_session_state_group(PGF_SESS_CONNECTING_SSL), "CONNECTING");
}

static json_t *find_named(json_t *arr, const char *name)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) if (strcmp(json_string_value(json_object_get(v, "name")), name) ==
                                      0) return v;
    return NULL;
}

static void spec_json_follows_contract(void)
{
    char *text = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_session_spec(PGF_SPEC_JSON, &text), 0);
    json_error_t e;
    json_t *root = json_loads(text, 0, &e);
    free(text);
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(root, "format")), "pgfault-spec");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(root, "version")), 1);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(root, "initial")), "NEW");
    json_t *states = json_object_get(root, "states");
    json_t *ops = json_object_get(root, "operations");
    json_t *trans = json_object_get(root, "transitions");
    CU_ASSERT_EQUAL(json_array_size(states), PGF_SESS_STATE_COUNT);
    CU_ASSERT_EQUAL(json_array_size(ops), PGF_OP_COUNT - 1);
    json_t *closed = find_named(states, "CLOSED");
    CU_ASSERT_PTR_NOT_NULL_FATAL(closed);
    CU_ASSERT_TRUE(json_is_true(json_object_get(closed, "terminal")));
    json_t *close = find_named(ops, "close");
    CU_ASSERT_PTR_NOT_NULL_FATAL(close);
    CU_ASSERT_TRUE(json_is_true(json_object_get(close, "preempts")));
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(close, "from"), 0)),
                           "*");
    json_t *open = find_named(ops, "open");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_array_get(json_object_get(open, "from"), 0)),
                           "NEW");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(open, "during")), 5);
    /* every name used in operations and transitions is a declared state/op */
    size_t i;
    json_t *v;
    json_array_foreach(trans, i, v)
    {
        CU_ASSERT_PTR_NOT_NULL(find_named(states, json_string_value(json_object_get(v, "from"))));
        CU_ASSERT_PTR_NOT_NULL(find_named(states, json_string_value(json_object_get(v, "to"))));
        CU_ASSERT_PTR_NOT_NULL(find_named(ops, json_string_value(json_object_get(v, "op"))));
    }
    json_decref(root);
    CU_ASSERT_EQUAL(pgf_spec_format_parse("xml"), PGF_EINVAL);
    CU_ASSERT_EQUAL(pgf_session_spec(PGF_SPEC_YAML, &text), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "format: \"pgfault-spec\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "from: [\"*\"]"));
    free(text);
}

static void checker_accepts_builtin_spec(void)
{
    /* the checker (harness/checker/spec.c) validates our compiled-in spec */
    pgf_spec *sp = NULL;
    char err[256] = "";
    const char *text = pgf_session_spec_json_text();
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    int rc = pgf_spec_parse(text, strlen(text), "builtin", &sp, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "checker rejects spec: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(pgf_spec_state_count(sp), PGF_SESS_STATE_COUNT);
    int ready = pgf_spec_state_find(sp, "READY"), busy = pgf_spec_state_find(sp, "BUSY");
    int check = pgf_spec_op_find(sp, "check"), close = pgf_spec_op_find(sp, "close");
    CU_ASSERT_TRUE(pgf_spec_transition_ok(sp, check, ready, busy));
    CU_ASSERT_FALSE(pgf_spec_transition_ok(sp, close, ready, busy));
    CU_ASSERT_TRUE(pgf_spec_op_preempts(sp, close));
    pgf_spec_free(sp);
}

static void committed_diagram_is_generated(void)
{
    char *dot = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_session_spec(PGF_SPEC_DOT, &dot), 0);
    FILE *f = fopen(PGF_TEST_DATA_DIR "/../../docs/state-machine.dot", "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char *file = calloc(1, 1 << 20);
    size_t n = fread(file, 1, (1 << 20) - 1, f);
    fclose(f);
    file[n] = '\0';
    if (strcmp(file, dot) != 0)
        fprintf(stderr, "docs/state-machine.dot is stale: regenerate with "
                        "`pgfault spec --format dot -o docs/state-machine.dot`\n");
    CU_ASSERT_STRING_EQUAL(file, dot);
    free(file);
    free(dot);
}

/* ---- classification and backoff ---- */

static void classification_table(void)
{
    static const struct {
        const char *sqlstate, *msg;
        pgf_health_reason want;
        const char *want_sqlstate;
    } cases[] = {
        /* exact libpq texts, docs/postgres15-facts.md §1, §5, §6, §10 */
        {NULL,
         "connection to server at \"127.0.0.1\", port 54330 failed: FATAL:  password "
         "authentication failed for user \"u_scram\"",
         PGF_HEALTH_AUTH_FAILED, "28P01"},
        {NULL,
         "connection to server at \"127.0.0.1\", port 54330 failed: fe_sendauth: no password "
         "supplied",
         PGF_HEALTH_AUTH_FAILED, ""},
        {NULL,
         "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  role "
         "\"no_such_role\" does not exist",
         PGF_HEALTH_AUTH_FAILED, "28000"},
        {NULL,
         "connection to server at \"127.0.0.1\", port 5432 failed: FATAL:  database "
         "\"no_such_db\" does not exist",
         PGF_HEALTH_SERVER_ERROR, "3D000"},
        {NULL,
         "connection to server at \"127.0.0.1\", port 54330 failed: FATAL:  sorry, too many "
         "clients already",
         PGF_HEALTH_TOO_MANY_CONNECTIONS, "53300"},
        {NULL, "FATAL:  too many connections for role \"u_limited\"",
         PGF_HEALTH_TOO_MANY_CONNECTIONS, "53300"},
        {NULL,
         "FATAL:  terminating connection due to administrator command\nserver closed the "
         "connection unexpectedly",
         PGF_HEALTH_SHUTTING_DOWN, "57P01"},
        {NULL,
         "connection to server at \"127.0.0.1\", port 54329 failed: Connection refused\n\tIs "
         "the server running on that host and accepting TCP/IP connections?",
         PGF_HEALTH_UNREACHABLE, ""},
        {NULL,
         "connection to server on socket \"/cloudsql/p:r:i/.s.PGSQL.5432\" failed: No such "
         "file or directory",
         PGF_HEALTH_UNREACHABLE, ""},
        {NULL,
         "server closed the connection unexpectedly\n\tThis probably means the server "
         "terminated abnormally",
         PGF_HEALTH_CONNECTION_LOST, ""},
        {NULL, "failed: expected authentication request from server, but received H",
         PGF_HEALTH_PROTOCOL_ERROR, ""},
        {NULL, "failed: FATAL:  fake says no", PGF_HEALTH_SERVER_ERROR, ""},
        {"57014", "ERROR:  canceling statement due to user request", PGF_HEALTH_CANCELED, "57014"},
        {"22012", "ERROR:  division by zero", PGF_HEALTH_SERVER_ERROR, "22012"},
        {"57P03", "FATAL:  the database system is shutting down", PGF_HEALTH_SHUTTING_DOWN,
         "57P03"},
        {"28000", "x", PGF_HEALTH_AUTH_FAILED, "28000"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgf_health h;
        pgf_health_classify(cases[i].sqlstate, cases[i].msg, "auth", &h);
        if (h.reason != cases[i].want)
            fprintf(stderr, "case %zu: got %s\n", i, pgf_health_reason_name(h.reason));
        CU_ASSERT_EQUAL(h.reason, cases[i].want);
        CU_ASSERT_STRING_EQUAL(h.sqlstate, cases[i].want_sqlstate);
        CU_ASSERT_FALSE(h.healthy);
        CU_ASSERT_STRING_EQUAL(h.phase, "auth");
    }
    CU_ASSERT_EQUAL(pgf_health_reason_err(PGF_HEALTH_AUTH_FAILED), PGF_EAUTH);
    CU_ASSERT_EQUAL(pgf_health_reason_parse("shutting_down"), PGF_HEALTH_SHUTTING_DOWN);
}

static void backoff_is_jittered_capped_and_replayable(void)
{
    pgf_rng a, b;
    pgf_rng_init(&a, 7, 1, 2);
    pgf_rng_init(&b, 7, 1, 2);
    uint64_t max_seen = 0;
    int distinct = 0;
    uint64_t prev = UINT64_MAX;
    for (unsigned i = 0; i < 40; i++) {
        uint64_t x = pgf_backoff_ns(100, 1000, i, &a);
        CU_ASSERT_EQUAL(x, pgf_backoff_ns(100, 1000, i, &b));
        uint64_t ceil = i >= 4 ? 1000 : 100u << i;
        CU_ASSERT(x <= ceil);
        max_seen = x > max_seen ? x : max_seen;
        distinct += x != prev;
        prev = x;
    }
    CU_ASSERT(max_seen > 500); /* the cap is reached, not just the base */
    CU_ASSERT(distinct > 30);  /* jitter, not a fixed schedule */
    /* huge attempt numbers do not overflow */
    CU_ASSERT(pgf_backoff_ns(1, UINT64_MAX / 2, 200, &a) <= UINT64_MAX / 2);
}

static void bug_flags_parse(void)
{
    unsigned m;
    CU_ASSERT_EQUAL(pgf_session_bugs_parse("callback-twice,release-after-close", &m), 0);
    CU_ASSERT_EQUAL(m, PGF_BUG_CALLBACK_TWICE | PGF_BUG_RELEASE_AFTER_CLOSE);
    CU_ASSERT_EQUAL(pgf_session_bugs_parse("none", &m), 0);
    CU_ASSERT_EQUAL(m, 0);
    CU_ASSERT_EQUAL(pgf_session_bugs_parse("callback-twice,nope", &m), PGF_EINVAL);
}

/* ---- against scripted servers ---- */

struct closer {
    pgf_session *s;
    fx_calls calls;
    int rc;
};

static void *close_from_thread(void *arg)
{
    struct closer *c = arg;
    c->rc = pgf_session_close(c->s, fx_cb, &c->calls);
    return NULL;
}

typedef struct live {
    struct event_base *base;
    fx_recorder rec;
    pgf_session *s;
    fx_conninfo ci;
    int fds_before;
} live;

/* PGF_BUG_* mask for the next live_begin() only (the bug tests set it). */
static unsigned live_bugs;

static void live_begin(live *l, int port, const char *sslmode, unsigned connect_ms)
{
    memset(l, 0, sizeof *l);
    l->fds_before = fx_fd_count();
    l->base = pgf_session_base_new();
    fx_recorder_init(&l->rec);
    fx_conninfo_tcp(&l->ci, port, "u", NULL, "db", sslmode);
    pgf_session_opts o = {.keywords = l->ci.kw, .values = l->ci.val};
    o.recorder = fx_record;
    o.recorder_arg = &l->rec;
    o.connect_timeout_ms = connect_ms;
    o.query_timeout_ms = connect_ms;
    o.bugs = live_bugs;
    live_bugs = 0;
    CU_ASSERT_EQUAL_FATAL(pgf_session_new(l->base, &o, &l->s), 0);
}

static void live_end(live *l)
{
    pgf_session_free(l->s);
    event_base_free(l->base);
    fx_recorder_destroy(&l->rec);
    pgf_session_counters c;
    pgf_session_counters_get(&c);
    CU_ASSERT_EQUAL(c.pgconns, 0);
    CU_ASSERT_EQUAL(c.sessions, 0);
}

static void open_check_close_trust(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_TRUST);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    live l;
    live_begin(&l, fx_port(f), NULL, 5000);
    fx_calls open = {0}, check = {0}, close = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &open, 1, 5000));
    CU_ASSERT_EQUAL(open.err, 0);
    CU_ASSERT_EQUAL(pgf_session_check(l.s, fx_cb, &check), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &check, 1, 5000));
    CU_ASSERT_EQUAL(check.err, 0);
    CU_ASSERT_TRUE(check.h.healthy);
    CU_ASSERT_EQUAL(pgf_session_close(l.s, fx_cb, &close), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &close, 1, 5000));
    char tr[1024];
    fx_transitions(&l.rec, tr, sizeof tr);
    CU_ASSERT_STRING_EQUAL(tr, "NEW>CONNECTING_SOCKET CONNECTING_SOCKET>CONNECTING_STARTUP "
                               "CONNECTING_STARTUP>CONNECTING_AUTH CONNECTING_AUTH>READY "
                               "READY>BUSY BUSY>READY READY>CLOSING CLOSING>CLOSED");
    /* seq strictly increasing, one invoke and one completion per op */
    for (int i = 1; i < l.rec.n; i++)
        CU_ASSERT(l.rec.ev[i].seq > l.rec.ev[i - 1].seq);
    CU_ASSERT_EQUAL(fx_count(&l.rec, PGF_SEV_OK, PGF_OP_open), 1);
    CU_ASSERT_EQUAL(fx_count(&l.rec, PGF_SEV_OK, PGF_OP_check), 1);
    CU_ASSERT_EQUAL(fx_count(&l.rec, PGF_SEV_OK, PGF_OP_close), 1);
    CU_ASSERT_EQUAL(open.n + check.n + close.n, 3);
    live_end(&l);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

/* Park the session at `target` (state), close it from another thread, and
 * check the contract: in-flight op called back once with ECANCELED, then
 * CLOSED, close called back once, nothing leaked. */
static void park_and_close(int port, const char *sslmode, pgf_sess_state target, bool query)
{
    live l;
    live_begin(&l, port, sslmode, 20000);
    fx_calls open = {0}, check = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    fx_calls *inflight = &open;
    if (query) {
        CU_ASSERT_TRUE_FATAL(fx_run_until_calls(l.base, &open, 1, 5000));
        CU_ASSERT_EQUAL(pgf_session_check(l.s, fx_cb, &check), 0);
        inflight = &check;
    }
    bool parked = fx_run_until_state(l.base, l.s, (int)target, 5000);
    if (!parked)
        fprintf(stderr, "not parked at %s (state %s)\n", pgf_session_state_name(target),
                pgf_session_state_name(pgf_session_state(l.s)));
    CU_ASSERT_TRUE(parked);
    /* still parked after more loop turns */
    fx_run_until_state(l.base, l.s, PGF_SESS_CLOSED, 50);
    CU_ASSERT_EQUAL(pgf_session_state(l.s), target);
    struct closer c = {l.s, {0}, -1};
    pthread_t t;
    pthread_create(&t, NULL, close_from_thread, &c);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(c.rc, 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &c.calls, 1, 5000));
    CU_ASSERT_EQUAL(pgf_session_state(l.s), PGF_SESS_CLOSED);
    CU_ASSERT_EQUAL(inflight->n, 1);
    CU_ASSERT_EQUAL(inflight->err, PGF_ECANCELED);
    CU_ASSERT_EQUAL(c.calls.n, 1);
    CU_ASSERT_EQUAL(c.calls.err, 0);
    char tr[1024], want[128];
    fx_transitions(&l.rec, tr, sizeof tr);
    snprintf(want, sizeof want, "%s>CLOSING CLOSING>CLOSED", pgf_session_state_name(target));
    size_t n = strlen(tr), m = strlen(want);
    CU_ASSERT(n >= m && strcmp(tr + n - m, want) == 0);
    /* the in-flight completion was reported before CLOSED */
    int fail_at = -1, closed_at = -1;
    for (int i = 0; i < l.rec.n; i++) {
        if (l.rec.ev[i].kind == PGF_SEV_FAIL && l.rec.ev[i].err == PGF_ECANCELED)
            fail_at = i;
        if (l.rec.ev[i].kind == PGF_SEV_TRANSITION && l.rec.ev[i].to == PGF_SESS_CLOSED)
            closed_at = i;
    }
    CU_ASSERT(fail_at >= 0 && fail_at < closed_at);
    live_end(&l);
}

static void close_parked_in_socket(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_blackhole b;
    CU_ASSERT_EQUAL_FATAL(fx_blackhole_start(&b), 0);
    park_and_close(b.port, NULL, PGF_SESS_CONNECTING_SOCKET, false);
    fx_blackhole_stop(&b);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void close_parked_in_ssl(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_SILENT);
    park_and_close(fx_port(f), "require", PGF_SESS_CONNECTING_SSL, false);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void close_parked_in_auth(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_SILENT);
    park_and_close(fx_port(f), NULL, PGF_SESS_CONNECTING_AUTH, false);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void close_parked_in_params(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_AUTHOK_STALL);
    park_and_close(fx_port(f), NULL, PGF_SESS_CONNECTING_PARAMS, false);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void close_parked_in_query(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_QUERY_STALL);
    park_and_close(fx_port(f), NULL, PGF_SESS_BUSY, true);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void open_failure(fx_mode mode, int port, pgf_health_reason want, const char *phase)
{
    int fds0 = fx_fd_count();
    fx_server *f = port == 0 ? fx_start(mode) : NULL;
    live l;
    live_begin(&l, port != 0 ? port : fx_port(f), NULL, 300);
    fx_calls open = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &open, 1, 5000));
    CU_ASSERT_EQUAL(open.n, 1);
    CU_ASSERT_EQUAL(open.err, pgf_health_reason_err(want));
    if (open.h.reason != want)
        fprintf(stderr, "got %s (%s)\n", pgf_health_reason_name(open.h.reason), open.h.message);
    CU_ASSERT_EQUAL(open.h.reason, want);
    CU_ASSERT_STRING_EQUAL(open.h.phase, phase);
    CU_ASSERT_EQUAL(pgf_session_state(l.s), PGF_SESS_FAILED);
    /* FAILED holds no connection */
    pgf_session_counters c;
    pgf_session_counters_get(&c);
    CU_ASSERT_EQUAL(c.pgconns, 0);
    CU_ASSERT_EQUAL(pgf_session_check(l.s, NULL, NULL), PGF_EILLEGAL_STATE);
    live_end(&l);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void refused_is_unreachable(void)
{
    open_failure(FX_CLOSE, fx_refused_port(), PGF_HEALTH_UNREACHABLE, "socket");
}

static void accept_and_close_is_connection_lost(void)
{
    open_failure(FX_CLOSE, 0, PGF_HEALTH_CONNECTION_LOST, "auth");
}

static void silent_server_times_out_in_auth(void)
{
    open_failure(FX_SILENT, 0, PGF_HEALTH_TIMEOUT, "auth");
}

static void fatal_28p01_is_auth_failed(void)
{
    open_failure(FX_AUTH_FAIL, 0, PGF_HEALTH_AUTH_FAILED, "auth");
}

static void fatal_53300_is_too_many(void)
{
    open_failure(FX_TOO_MANY, 0, PGF_HEALTH_TOO_MANY_CONNECTIONS, "auth");
}

static void cancel_during_open(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_SILENT);
    live l;
    live_begin(&l, fx_port(f), NULL, 20000);
    fx_calls open = {0}, cancel = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_state(l.base, l.s, PGF_SESS_CONNECTING_AUTH, 5000));
    CU_ASSERT_EQUAL(pgf_session_cancel(l.s, fx_cb, &cancel), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &cancel, 1, 5000));
    CU_ASSERT_EQUAL(open.n, 1);
    CU_ASSERT_EQUAL(open.err, PGF_ECANCELED);
    CU_ASSERT_EQUAL(cancel.err, 0);
    CU_ASSERT_EQUAL(pgf_session_state(l.s), PGF_SESS_FAILED);
    live_end(&l);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

/* ---- the deliberate bugs show in the history ---- */

static void bug_callback_twice(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_TRUST);
    live l;
    live_bugs = PGF_BUG_CALLBACK_TWICE;
    live_begin(&l, fx_port(f), NULL, 5000);
    fx_calls open = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &open, 1, 5000));
    CU_ASSERT_EQUAL(open.n, 2);
    CU_ASSERT_EQUAL(fx_count(&l.rec, PGF_SEV_OK, PGF_OP_open), 2);
    live_end(&l);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void bug_close_frees_during_connect(void)
{
    int fds0 = fx_fd_count(); /* before any server: their sockets close asynchronously */
    fx_server *f = fx_start(FX_SILENT);
    live l;
    live_bugs = PGF_BUG_CLOSE_FREES_DURING_CONNECT;
    live_begin(&l, fx_port(f), NULL, 20000);
    fx_calls open = {0}, close = {0};
    CU_ASSERT_EQUAL(pgf_session_open(l.s, fx_cb, &open), 0);
    CU_ASSERT_TRUE(fx_run_until_state(l.base, l.s, PGF_SESS_CONNECTING_AUTH, 5000));
    CU_ASSERT_EQUAL(pgf_session_close(l.s, fx_cb, &close), 0);
    CU_ASSERT_TRUE(fx_run_until_calls(l.base, &open, 1, 5000));
    char tr[1024];
    fx_transitions(&l.rec, tr, sizeof tr);
    /* straight to CLOSED (not a listed transition), open not canceled */
    CU_ASSERT_PTR_NOT_NULL(strstr(tr, "CONNECTING_AUTH>CLOSED"));
    CU_ASSERT_FALSE(
        pgf_session_transition_allowed(PGF_SESS_CONNECTING_AUTH, PGF_SESS_CLOSED, PGF_OP_close));
    CU_ASSERT_EQUAL(open.err, PGF_ECLOSED);
    live_end(&l);
    fx_stop(f);
    CU_ASSERT_EQUAL(fx_fd_count(), fds0);
}

static void bug_auth_as_connection_lost(void)
{
    live_bugs = PGF_BUG_AUTH_AS_CONNECTION_LOST;
    open_failure(FX_AUTH_FAIL, 0, PGF_HEALTH_CONNECTION_LOST, "auth");
    /* the option belonged to that session: the next one is correct again */
    open_failure(FX_AUTH_FAIL, 0, PGF_HEALTH_AUTH_FAILED, "auth");
}

static const pgf_test machine_tests[] = {
    {"every_state_operation_pair", every_state_operation_pair},
    {"refusal_names_state_and_operation", refusal_names_state_and_operation},
    {"table_is_consistent", table_is_consistent},
    {"spec_json_follows_contract", spec_json_follows_contract},
    {"committed_diagram_is_generated", committed_diagram_is_generated},
    {"checker_accepts_builtin_spec", checker_accepts_builtin_spec},
    {"classification_table", classification_table},
    {"backoff_is_jittered_capped_and_replayable", backoff_is_jittered_capped_and_replayable},
    {"bug_flags_parse", bug_flags_parse},
    PGF_TESTS_END,
};

static const pgf_test live_tests[] = {
    {"open_check_close_trust", open_check_close_trust},
    {"close_parked_in_socket", close_parked_in_socket},
    {"close_parked_in_ssl", close_parked_in_ssl},
    {"close_parked_in_auth", close_parked_in_auth},
    {"close_parked_in_params", close_parked_in_params},
    {"close_parked_in_query", close_parked_in_query},
    {"refused_is_unreachable", refused_is_unreachable},
    {"accept_and_close_is_connection_lost", accept_and_close_is_connection_lost},
    {"silent_server_times_out_in_auth", silent_server_times_out_in_auth},
    {"fatal_28p01_is_auth_failed", fatal_28p01_is_auth_failed},
    {"fatal_53300_is_too_many", fatal_53300_is_too_many},
    {"cancel_during_open", cancel_during_open},
    {"bug_callback_twice", bug_callback_twice},
    {"bug_close_frees_during_connect", bug_close_frees_during_connect},
    {"bug_auth_as_connection_lost", bug_auth_as_connection_lost},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_session[] = {
    {"session_machine", NULL, NULL, machine_tests},
    {"session_live", NULL, NULL, live_tests},
    PGF_SUITES_END,
};
