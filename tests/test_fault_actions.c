/* test_fault_actions.c - every fault action against a real libpq client.
 *
 * A fake server runs in-process on its own thread with a fault engine
 * whose rules each test installs from YAML. For each action (and each
 * error preset) the tests assert what libpq observes: the exact error
 * text (docs/postgres15-facts.md §5, §10), PQstatus, the SQLSTATE when there is one, the
 * connect status where it failed, and the phase in the fault log. Raw
 * sockets show what libpq hides: RST vs FIN (ECONNRESET vs EOF) and the
 * exact bytes of a truncated message. Delay, drip, bandwidth and stall
 * are checked for bytes and order, and for time only as a lower bound on
 * CLOCK_MONOTONIC ("not before X"); nothing asserts an upper bound.
 *
 * Also here: determinism (two runs, same seed, same client script:
 * identical fault logs; another seed: a different log) and the control
 * API on a live server (a rule added at run time hits an already-open
 * libpq connection; a bad request gets 400 and changes nothing).
 */
#include <event2/event.h>
#include <pthread.h>

#include "pgfault/control.h"
#include "fault_live.h"
#include "httpc.h"

/* Does the fault log hold an event with this phase and action? */
static bool log_has(pgf_fault_engine *e, const char *phase, const char *action)
{
    char *s = pgf_fault_log_lines(e, 0);
    char want[128];
    snprintf(want, sizeof want, "\"phase\":\"%s\"", phase);
    bool ok = s != NULL && strstr(s, want) != NULL;
    snprintf(want, sizeof want, "\"action\":\"%s\"", action);
    ok = ok && strstr(s, want) != NULL;
    if (!ok)
        fprintf(stderr, "\n  fault log lacks %s/%s:\n%s", phase, action, s ? s : "(null)");
    free(s);
    return ok;
}

static bool str_eq(const char *what, const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return true;
    fprintf(stderr, "\n  %s:\n    got  [%s]\n    want [%s]\n", what, got, want);
    return false;
}

/* ------------------------------------------------------------------ */
/* faults during connect                                               */

typedef struct connect_case {
    const char *name;
    const char *yaml;
    const char *user, *password;
    const char *want;     /* PQerrorMessage after the "connection to server ... failed: " prefix */
    ConnStatusType where; /* the libpq status in which it failed */
    const char *phase, *action;
} connect_case;

#define R1(body) "rules:\n  - {name: r, " body "}\n"

static const connect_case connect_cases[] = {
    {"auth-fail at auth-response", R1("phase: auth-response, action: auth-fail"), "alice", "secret",
     "FATAL:  password authentication failed for user \"alice\"\n", CONNECTION_AWAITING_RESPONSE,
     "auth-response", "auth-fail"},
    {"auth-fail at startup", R1("phase: startup, action: auth-fail"), "bob", "bobpw",
     "FATAL:  password authentication failed for user \"bob\"\n", CONNECTION_AWAITING_RESPONSE,
     "startup", "auth-fail"},
    {"auth-fail at auth-ok (trust)", R1("phase: auth-ok, action: auth-fail"), "trusty", "",
     "FATAL:  password authentication failed for user \"trusty\"\n", CONNECTION_AWAITING_RESPONSE,
     "auth-ok", "auth-fail"},
    {"too-many-clients", R1("phase: startup, action: error, preset: too-many-clients"), "alice",
     "secret", "FATAL:  sorry, too many clients already\n", CONNECTION_AWAITING_RESPONSE, "startup",
     "error"},
    {"cannot-connect-now", R1("phase: startup, action: error, preset: cannot-connect-now"), "alice",
     "secret", "FATAL:  the database system is starting up\n", CONNECTION_AWAITING_RESPONSE,
     "startup", "error"},
    {"admin-shutdown at auth-ok", R1("phase: auth-ok, action: error, preset: admin-shutdown"),
     "trusty", "", "FATAL:  terminating connection due to administrator command\n",
     CONNECTION_AWAITING_RESPONSE, "auth-ok", "error"},
    {"protocol-violation", R1("phase: auth-request, action: error, preset: protocol-violation"),
     "bob", "bobpw", "FATAL:  invalid frontend message type 0\n", CONNECTION_AWAITING_RESPONSE,
     "auth-request", "error"},
    {"crash-shutdown (WARNING) at startup",
     R1("phase: startup, action: error, preset: crash-shutdown"), "alice", "secret",
     "expected authentication request from server, but received N\n", CONNECTION_AWAITING_RESPONSE,
     "startup", "error"},
    {"custom FATAL 28000 with %u",
     R1("phase: startup, action: error, severity: FATAL, sqlstate: '28000', message: "
        "'role \"%u\" is not permitted to log in'"),
     "trusty", "", "FATAL:  role \"trusty\" is not permitted to log in\n",
     CONNECTION_AWAITING_RESPONSE, "startup", "error"},
    {"ERROR before ReadyForQuery is fatal", R1("phase: auth-ok, action: error, message: nope"),
     "trusty", "", "ERROR:  nope\n", CONNECTION_AWAITING_RESPONSE, "auth-ok", "error"},
    {"close at accept", R1("phase: accept, action: close"), "alice", "secret", FL_CLOSED_TEXT,
     CONNECTION_AWAITING_RESPONSE, "accept", "close"},
    {"close at startup", R1("phase: startup, action: close"), "alice", "secret", FL_CLOSED_TEXT,
     CONNECTION_AWAITING_RESPONSE, "startup", "close"},
    {"reset at startup", R1("phase: startup, action: reset"), "alice", "secret", FL_CLOSED_TEXT,
     CONNECTION_AWAITING_RESPONSE, "startup", "reset"},
    {"half-close (write) at auth-request", R1("phase: auth-request, action: half-close"), "bob",
     "bobpw", FL_CLOSED_TEXT, CONNECTION_AWAITING_RESPONSE, "auth-request", "half-close"},
    {"truncate inside AuthenticationSASLContinue",
     R1("phase: sasl-continue, action: truncate, bytes: 10"), "alice", "secret", FL_CLOSED_TEXT,
     CONNECTION_AWAITING_RESPONSE, "sasl-continue", "truncate"},
    {"truncate inside ParameterStatus", R1("phase: parameter-status, action: truncate, bytes: 5"),
     "trusty", "", FL_CLOSED_TEXT, CONNECTION_AUTH_OK, "parameter-status", "truncate"},
    {"truncate auth request then reset",
     R1("phase: auth-request, action: truncate, bytes: 3, then: reset"), "bob", "bobpw",
     FL_CLOSED_TEXT, CONNECTION_AWAITING_RESPONSE, "auth-request", "truncate"},
    {"truncate to 1 message at auth-ok", R1("phase: auth-ok, action: truncate, messages: 1"),
     "trusty", "", FL_CLOSED_TEXT, CONNECTION_AUTH_OK, "auth-ok", "truncate"},
    {"garbage instead of an auth request", R1("phase: auth-request, action: garbage, bytes: 8"),
     "bob", "bobpw", "expected authentication request from server, but received \377\n",
     CONNECTION_AWAITING_RESPONSE, "auth-request", "garbage"},
    {"garbage before ParameterStatus", R1("phase: parameter-status, action: garbage, bytes: 8"),
     "trusty", "", "lost synchronization with server: got message type \"\377\", length -1\n",
     CONNECTION_AUTH_OK, "parameter-status", "garbage"},
    {"refuse (accept then close)", R1("phase: accept, action: refuse"), "alice", "secret",
     FL_CLOSED_TEXT, CONNECTION_AWAITING_RESPONSE, "accept", "refuse"},
};

static void connect_faults(void)
{
    for (size_t i = 0; i < sizeof connect_cases / sizeof connect_cases[0]; i++) {
        const connect_case *k = &connect_cases[i];
        fl_srv t;
        fl_start(&t, k->yaml, 1);
        fl_conn o;
        fl_connect(&t, k->user, k->password, NULL, FL_DEADLINE_MS, &o);
        char want[600];
        fl_prefix(&t, want, sizeof want);
        strncat(want, k->want, sizeof want - strlen(want) - 1);
        bool ok = !o.timed_out && PQstatus(o.c) == CONNECTION_BAD;
        ok = str_eq(k->name, PQerrorMessage(o.c), want) && ok;
        /* After AuthenticationOk libpq may parse on in the same poll call
         * (same read): then it failed "in" AWAITING_RESPONSE. */
        bool where_ok = o.last == k->where ||
                        (k->where == CONNECTION_AUTH_OK && o.last == CONNECTION_AWAITING_RESPONSE);
        if (!where_ok) {
            fprintf(stderr, "\n  %s: failed in status %d, want %d\n", k->name, (int)o.last,
                    (int)k->where);
            ok = false;
        }
        ok = log_has(t.eng, k->phase, k->action) && ok;
        if (!ok)
            fprintf(stderr, "  (case '%s')\n", k->name);
        CU_ASSERT(ok);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

/* stall forever: only the client's own deadline ends the connect. */
static void stall_forever_ends_by_client_deadline(void)
{
    static const char *const phases[] = {"accept", "startup", "auth-request", "auth-ok",
                                         "parameter-status"};
    for (size_t i = 0; i < sizeof phases / sizeof phases[0]; i++) {
        char yaml[160];
        snprintf(yaml, sizeof yaml, R1("phase: %s, action: stall"), phases[i]);
        fl_srv t;
        fl_start(&t, yaml, 1);
        fl_conn o;
        fl_connect(&t, "bob", "bobpw", NULL, 300, &o);
        CU_ASSERT(o.timed_out);
        CU_ASSERT(PQstatus(o.c) != CONNECTION_OK && PQstatus(o.c) != CONNECTION_BAD);
        CU_ASSERT(o.elapsed_ns >= PGF_MS_NS(300));
        CU_ASSERT(log_has(t.eng, phases[i], "stall"));
        /* Output queued before the stall point still went out: at
         * parameter-status libpq has its AuthenticationOk. */
        if (strcmp(phases[i], "parameter-status") == 0)
            CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_AUTH_OK);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

/* Timed faults during connect: the connection succeeds, not before X. */
static void timed_connect_faults(void)
{
    static const struct {
        const char *yaml, *user, *pw;
        unsigned not_before_ms;
    } cases[] = {
        {R1("phase: auth-ok, action: stall, ms: 200"), "trusty", "", 200},
        {R1("phase: auth-request, action: delay, ms: 200"), "bob", "bobpw", 200},
        {R1("phase: sasl-final, action: delay, ms: 100, jitter_ms: 50"), "alice", "secret", 50},
        {R1("phase: parameter-status, action: drip, slice: 32, ms: 10"), "trusty", "", 60},
        {R1("phase: parameter-status, action: bandwidth, bytes_per_sec: 2000"), "trusty", "", 100},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_srv t;
        fl_start(&t, cases[i].yaml, 1);
        fl_conn o;
        CU_ASSERT(fl_connect_ok(&t, cases[i].user, cases[i].pw, NULL, &o));
        if (o.elapsed_ns < PGF_MS_NS(cases[i].not_before_ms))
            fprintf(stderr, "\n  %s: connected after %llu ns\n", cases[i].yaml,
                    (unsigned long long)o.elapsed_ns);
        CU_ASSERT(o.elapsed_ns >= PGF_MS_NS(cases[i].not_before_ms));
        /* nothing lost or reordered on the way */
        const char *v = PQparameterStatus(o.c, "server_version");
        CU_ASSERT(v != NULL && strncmp(v, "15.", 3) == 0);
        CU_ASSERT(PQbackendPID(o.c) != 0);
        CU_ASSERT(fl_select1(o.c));
        CU_ASSERT_EQUAL(pgf_fault_engine_fired(t.eng), 1);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

/* refuse with a window: the refused connection sees EOF; one that arrives
 * in the window waits in the kernel's accept queue and is served after it. */
static void refuse_window(void)
{
    fl_srv t;
    fl_start(&t, R1("phase: accept, match: {conn: 1}, action: refuse, ms: 300"), 1);
    uint64_t t0 = pgf_now_ns();
    fl_conn a;
    fl_connect(&t, "trusty", "", NULL, FL_DEADLINE_MS, &a);
    char want[600];
    fl_prefix(&t, want, sizeof want);
    strncat(want, FL_CLOSED_TEXT, sizeof want - strlen(want) - 1);
    CU_ASSERT(str_eq("refused", PQerrorMessage(a.c), want));
    CU_ASSERT(log_has(t.eng, "accept", "refuse"));
    fl_conn b;
    CU_ASSERT(fl_connect_ok(&t, "trusty", "", NULL, &b));
    CU_ASSERT(pgf_now_ns() - t0 >= PGF_MS_NS(300));
    CU_ASSERT(fl_select1(b.c));
    PQfinish(a.c);
    PQfinish(b.c);
    fl_stop(&t);
}

/* ------------------------------------------------------------------ */
/* faults around a query                                               */

typedef struct query_case {
    const char *name;
    const char *yaml;
    ExecStatusType status;
    const char *sqlstate;   /* of the error result */
    const char *result_msg; /* PQresultErrorMessage */
    const char *conn_msg;   /* PQerrorMessage, NULL = same as result_msg */
    ConnStatusType after;   /* PQstatus afterwards */
    const char *phase, *action;
} query_case;

#define ADMIN "FATAL:  terminating connection due to administrator command\n"

static const query_case query_cases[] = {
    {"admin-shutdown at query", R1("phase: query, action: error, preset: admin-shutdown"),
     PGRES_FATAL_ERROR, "57P01", ADMIN, ADMIN FL_CLOSED_TEXT, CONNECTION_BAD, "query", "error"},
    {"protocol-violation at query", R1("phase: query, action: error, preset: protocol-violation"),
     PGRES_FATAL_ERROR, "08P01", "FATAL:  invalid frontend message type 0\n",
     "FATAL:  invalid frontend message type 0\n" FL_CLOSED_TEXT, CONNECTION_BAD, "query", "error"},
    {"query-canceled at query", R1("phase: query, action: error, preset: query-canceled, times: 1"),
     PGRES_FATAL_ERROR, "57014", "ERROR:  canceling statement due to user request\n", NULL,
     CONNECTION_OK, "query", "error"},
    {"serialization-failure at data-row",
     R1("phase: data-row, action: error, preset: serialization-failure, times: 1"),
     PGRES_FATAL_ERROR, "40001", "ERROR:  could not serialize access due to concurrent update\n",
     NULL, CONNECTION_OK, "data-row", "error"},
    {"custom ERROR with detail and hint",
     R1("phase: row-description, action: error, sqlstate: 40P01, message: deadlock detected, "
        "detail: 'Process 1 waits in database %d.', hint: See server log., times: 1"),
     PGRES_FATAL_ERROR, "40P01",
     "ERROR:  deadlock detected\nDETAIL:  Process 1 waits in database appdb.\nHINT:  See server "
     "log.\n",
     NULL, CONNECTION_OK, "row-description", "error"},
    {"close at query", R1("phase: query, action: close"), PGRES_FATAL_ERROR, "", FL_CLOSED_TEXT,
     NULL, CONNECTION_BAD, "query", "close"},
    {"reset at query", R1("phase: query, action: reset"), PGRES_FATAL_ERROR, "", FL_CLOSED_TEXT,
     NULL, CONNECTION_BAD, "query", "reset"},
    {"half-close (write) at query", R1("phase: query, action: half-close"), PGRES_FATAL_ERROR, "",
     FL_CLOSED_TEXT, NULL, CONNECTION_BAD, "query", "half-close"},
    {"truncate inside a DataRow", R1("phase: data-row, action: truncate, bytes: 4"),
     PGRES_FATAL_ERROR, "", FL_CLOSED_TEXT, NULL, CONNECTION_BAD, "data-row", "truncate"},
    {"truncate to 2 messages", R1("phase: query, action: truncate, messages: 2"), PGRES_FATAL_ERROR,
     "", FL_CLOSED_TEXT, NULL, CONNECTION_BAD, "query", "truncate"},
    {"truncate CommandComplete then reset",
     R1("phase: command-complete, action: truncate, bytes: 3, then: reset"), PGRES_FATAL_ERROR, "",
     FL_CLOSED_TEXT, NULL, CONNECTION_BAD, "command-complete", "truncate"},
    {"garbage before CommandComplete", R1("phase: command-complete, action: garbage, bytes: 8"),
     PGRES_FATAL_ERROR, "",
     "lost synchronization with server: got message type \"\377\", length -1\n", NULL,
     CONNECTION_BAD, "command-complete", "garbage"},
};

static void query_faults(void)
{
    for (size_t i = 0; i < sizeof query_cases / sizeof query_cases[0]; i++) {
        const query_case *k = &query_cases[i];
        fl_srv t;
        fl_start(&t, k->yaml, 1);
        fl_conn o;
        CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
        fl_query q;
        fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
        bool ok = !q.timed_out;
        if (q.status != k->status) {
            fprintf(stderr, "\n  %s: status %s\n", k->name, PQresStatus(q.status));
            ok = false;
        }
        ok = str_eq(k->name, q.sqlstate, k->sqlstate) && ok;
        ok = str_eq(k->name, q.errmsg, k->result_msg) && ok;
        char connmsg[1024];
        snprintf(connmsg, sizeof connmsg, "%s", PQerrorMessage(o.c));
        fl_strip_async_tail(connmsg);
        ok = str_eq(k->name, connmsg, k->conn_msg ? k->conn_msg : k->result_msg) && ok;
        if (PQstatus(o.c) != k->after) {
            fprintf(stderr, "\n  %s: PQstatus %d\n", k->name, (int)PQstatus(o.c));
            ok = false;
        }
        ok = log_has(t.eng, k->phase, k->action) && ok;
        if (k->after == CONNECTION_OK)
            ok = fl_select1(o.c) && ok; /* an ERROR keeps the session */
        if (!ok)
            fprintf(stderr, "  (case '%s')\n", k->name);
        CU_ASSERT(ok);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

/* stall forever during a query, and half-close of the read side: the
 * server never answers; only the client's deadline ends the wait. */
static void query_never_answered(void)
{
    static const char *const yamls[] = {
        R1("phase: row-description, action: stall"),
        R1("phase: query, action: stall"),
        R1("phase: idle, action: half-close, direction: read"),
    };
    for (size_t i = 0; i < sizeof yamls / sizeof yamls[0]; i++) {
        fl_srv t;
        fl_start(&t, yamls[i], 1);
        fl_conn o;
        CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
        fl_query q;
        fl_exec(o.c, "SELECT 1", 300, &q);
        CU_ASSERT(q.timed_out);
        CU_ASSERT(q.elapsed_ns >= PGF_MS_NS(300));
        CU_ASSERT_EQUAL(q.nresults, 0);
        CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_OK);
        CU_ASSERT_EQUAL(pgf_fault_engine_fired(t.eng), 1);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

static void timed_query_faults(void)
{
    static const struct {
        const char *yaml;
        unsigned not_before_ms;
    } cases[] = {
        {R1("phase: row-description, action: delay, ms: 150"), 150},
        {R1("phase: query, action: stall, ms: 150"), 150},
        {R1("phase: data-row, action: drip, slice: 2, ms: 10"), 40}, /* >= 6 slices of DataRow+ */
        {R1("phase: query, action: bandwidth, bytes_per_sec: 1000"), 50},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_srv t;
        fl_start(&t, cases[i].yaml, 1);
        fl_conn o;
        CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
        fl_query q;
        fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
        CU_ASSERT(q.status == PGRES_TUPLES_OK && strcmp(q.value, "1") == 0);
        if (q.elapsed_ns < PGF_MS_NS(cases[i].not_before_ms))
            fprintf(stderr, "\n  %s: answered after %llu ns\n", cases[i].yaml,
                    (unsigned long long)q.elapsed_ns);
        CU_ASSERT(q.elapsed_ns >= PGF_MS_NS(cases[i].not_before_ms));
        CU_ASSERT_EQUAL(PQtransactionStatus(o.c), PQTRANS_IDLE);
        PQfinish(o.c);
        fl_stop(&t);
    }
}

/* crash-shutdown while idle: a WARNING notice (with PostgreSQL's DETAIL and
 * HINT), then EOF; libpq hands the notice to the notice receiver and the
 * next query fails with the "server closed" text (docs/postgres15-facts.md §5). */
static void on_notice(void *arg, const PGresult *r)
{
    char *buf = arg;
    strncat(buf, PQresultErrorMessage(r), 1023 - strlen(buf));
    const char *ss = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    strncat(buf, ss ? ss : "-", 1023 - strlen(buf));
}

static void crash_shutdown_notice(void)
{
    fl_srv t;
    fl_start(&t, R1("phase: idle, action: error, preset: crash-shutdown"), 1);
    char notices[1024] = "";
    fl_notice_rx = on_notice;
    fl_notice_arg = notices;
    fl_conn o;
    bool connected = fl_connect_ok(&t, "trusty", "", NULL, &o);
    fl_notice_rx = NULL;
    fl_notice_arg = NULL;
    CU_ASSERT_FATAL(connected);
    fl_query q;
    fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
    CU_ASSERT(str_eq("notice", notices,
                     "WARNING:  terminating connection because of crash of another server "
                     "process\nDETAIL:  The postmaster has commanded this server process to roll "
                     "back the current transaction and exit, because another server process "
                     "exited abnormally and possibly corrupted shared memory.\nHINT:  In a moment "
                     "you should be able to reconnect to the database and repeat your "
                     "command.\n57P02"));
    CU_ASSERT(str_eq("query", q.errmsg, FL_CLOSED_TEXT));
    CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_BAD);
    CU_ASSERT(log_has(t.eng, "idle", "error"));
    PQfinish(o.c);
    fl_stop(&t);
}

/* none: logged and counted, nothing else. */
static void none_is_a_probe(void)
{
    fl_srv t;
    fl_start(&t, R1("phase: query, action: none"), 1);
    fl_conn o;
    CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
    CU_ASSERT(fl_select1(o.c));
    CU_ASSERT(fl_select1(o.c));
    CU_ASSERT_EQUAL(pgf_fault_engine_fired(t.eng), 2);
    CU_ASSERT(log_has(t.eng, "query", "none"));
    PQfinish(o.c);
    fl_stop(&t);
}

/* ------------------------------------------------------------------ */
/* raw sockets: what libpq hides                                       */

/* FIN gives recv() == 0, RST gives ECONNRESET: distinguishable. */
static void rst_vs_fin(void)
{
    static const struct {
        const char *yaml;
        int want_errno;
    } cases[] = {
        {R1("phase: startup, action: close"), 0},
        {R1("phase: startup, action: reset"), ECONNRESET},
        {R1("phase: accept, action: refuse"), 0},
        {R1("phase: auth-request, action: half-close"), 0},
        {R1("phase: startup, action: error, preset: admin-shutdown"), 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_srv t;
        fl_start(&t, cases[i].yaml, 1);
        fl_raw r;
        CU_ASSERT_FATAL(fl_raw_open(&r, &t));
        fl_raw_startup(&r, "bob");
        CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
        if (r.end_errno != cases[i].want_errno)
            fprintf(stderr, "\n  %s: recv ended with errno %d (%s)\n", cases[i].yaml, r.end_errno,
                    strerror(r.end_errno));
        CU_ASSERT_EQUAL(r.end_errno, cases[i].want_errno);
        fl_raw_close(&r);
        fl_stop(&t);
    }
    /* RST in the middle of a session, after a complete query */
    fl_srv t;
    fl_start(&t, R1("phase: query, action: reset, after: 1"), 1);
    fl_raw r;
    CU_ASSERT_FATAL(fl_raw_login(&r, &t, "trusty"));
    fl_raw_typed(&r, 'Q', "SELECT 1", 9);
    size_t n = 0, off = 0;
    while ((n = fl_raw_msg_at(&r, off)) > 0 && r.buf[off] != 'Z')
        off += n;
    CU_ASSERT(n > 0);
    r.len = 0;
    fl_raw_typed(&r, 'Q', "SELECT 1", 9);
    CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
    CU_ASSERT_EQUAL(r.end_errno, ECONNRESET);
    CU_ASSERT_EQUAL(r.len, 0);
    fl_raw_close(&r);
    fl_stop(&t);
}

/* truncate: exactly N bytes of the chosen message, then EOF. */
static void truncate_sasl_continue_bytes(void)
{
    fl_srv t;
    fl_start(&t, R1("phase: sasl-continue, action: truncate, bytes: 12"), 1);
    fl_raw r;
    CU_ASSERT_FATAL(fl_raw_open(&r, &t));
    fl_raw_startup(&r, "alice");
    size_t n = fl_raw_msg_at(&r, 0); /* AuthenticationSASL */
    CU_ASSERT_FATAL(n > 0 && r.buf[0] == 'R' && pgf_rd_be32(r.buf + 5) == 10);
    fl_raw_consume(&r, n);
    static const char first[] = "n,,n=,r=fyko+d2lbbFgONRv9qkxdawL";
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_cstr(&b, "SCRAM-SHA-256");
    pgf_buf_put_be32(&b, (uint32_t)strlen(first));
    pgf_buf_put(&b, first, strlen(first));
    fl_raw_typed(&r, 'p', b.data, b.len);
    pgf_buf_free(&b);
    CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
    CU_ASSERT_EQUAL(r.end_errno, 0);
    CU_ASSERT_EQUAL(r.len, 12);
    /* R, a length covering the whole message, code 11, then 3 bytes of "r=..." */
    CU_ASSERT(r.buf[0] == 'R' && pgf_rd_be32(r.buf + 1) > 12 && pgf_rd_be32(r.buf + 5) == 11);
    CU_ASSERT(memcmp(r.buf + 9, "r=f", 3) == 0);
    fl_raw_close(&r);
    fl_stop(&t);
}

static void truncate_parameter_status_bytes(void)
{
    fl_srv t;
    fl_start(&t, R1("phase: parameter-status, action: truncate, bytes: 6"), 1);
    fl_raw r;
    CU_ASSERT_FATAL(fl_raw_open(&r, &t));
    fl_raw_startup(&r, "trusty");
    CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
    CU_ASSERT_EQUAL(r.end_errno, 0);
    /* AuthenticationOk (9 bytes), then 6 bytes of the first ParameterStatus */
    CU_ASSERT_EQUAL(r.len, 9 + 6);
    static const uint8_t auth_ok[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0};
    CU_ASSERT(r.len >= 15 && memcmp(r.buf, auth_ok, 9) == 0 && r.buf[9] == 'S' &&
              memcmp(r.buf + 14, "a", 1) == 0); /* "application_name" */
    fl_raw_close(&r);
    fl_stop(&t);
}

static void truncate_data_row(void)
{
    static const struct {
        const char *yaml;
        size_t data_row_bytes; /* bytes of the DataRow after the whole RowDescription */
    } cases[] = {
        {R1("phase: data-row, action: truncate, bytes: 7"), 7},
        {R1("phase: data-row, action: truncate, bytes: 0"), 0},
        {R1("phase: query, action: truncate, messages: 2"), 12},    /* T and a whole D */
        {R1("phase: query, action: truncate, bytes: 5"), SIZE_MAX}, /* 5 bytes of T */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        fl_srv t;
        fl_start(&t, cases[i].yaml, 1);
        fl_raw r;
        CU_ASSERT_FATAL(fl_raw_login(&r, &t, "trusty"));
        fl_raw_typed(&r, 'Q', "SELECT 1", 9);
        CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
        CU_ASSERT_EQUAL(r.end_errno, 0);
        if (cases[i].data_row_bytes == SIZE_MAX) {
            CU_ASSERT(r.len == 5 && r.buf[0] == 'T');
        } else {
            uint32_t tlen = r.len >= 5 ? 1 + pgf_rd_be32(r.buf + 1) : 0;
            CU_ASSERT(r.buf[0] == 'T' && tlen == 34);
            if (r.len != tlen + cases[i].data_row_bytes)
                fprintf(stderr, "\n  %s: %zu bytes\n", cases[i].yaml, r.len);
            CU_ASSERT_EQUAL(r.len, tlen + cases[i].data_row_bytes);
            if (cases[i].data_row_bytes > 0)
                CU_ASSERT(r.len > tlen && r.buf[tlen] == 'D');
        }
        fl_raw_close(&r);
        fl_stop(&t);
    }
}

/* truncate at ssl-request cuts the one-byte answer itself. */
static void truncate_ssl_answer(void)
{
    for (uint32_t keep = 0; keep <= 1; keep++) {
        char yaml[128];
        snprintf(yaml, sizeof yaml, R1("phase: ssl-request, action: truncate, bytes: %u"), keep);
        fl_srv t;
        fl_start(&t, yaml, 1);
        fl_raw r;
        CU_ASSERT_FATAL(fl_raw_open(&r, &t));
        pgf_buf b = PGF_BUF_INIT;
        pgf_buf_put_be32(&b, 8);
        pgf_buf_put_be32(&b, PGF_PROTO_SSL_REQUEST);
        fl_raw_send(&r, b.data, b.len);
        pgf_buf_free(&b);
        CU_ASSERT_EQUAL(fl_raw_read_to_end(&r, FL_DEADLINE_MS), 1);
        CU_ASSERT_EQUAL(r.end_errno, 0);
        CU_ASSERT_EQUAL(r.len, keep);
        if (keep == 1)
            CU_ASSERT_EQUAL(r.buf[0], 'N');
        fl_raw_close(&r);
        fl_stop(&t);
    }
}

/* The whole startup response of trusty's first connection, raw. */
static size_t startup_bytes(const char *yaml, uint8_t *out, size_t cap, uint64_t *elapsed)
{
    fl_srv t;
    fl_start(&t, yaml, 5);
    fl_raw r;
    CU_ASSERT_FATAL(fl_raw_open(&r, &t));
    uint64_t t0 = pgf_now_ns();
    fl_raw_startup(&r, "trusty");
    size_t off = 0, n;
    while ((n = fl_raw_msg_at(&r, off)) > 0) {
        off += n;
        if (r.buf[off - n] == 'Z')
            break;
    }
    *elapsed = pgf_now_ns() - t0;
    CU_ASSERT(n > 0);
    size_t len = off < cap ? off : cap;
    memcpy(out, r.buf, len);
    fl_raw_close(&r);
    fl_stop(&t);
    return len;
}

/* delay, drip and bandwidth change when bytes arrive, never which bytes or
 * their order: the stream equals the undisturbed one. */
static void slow_output_keeps_bytes(void)
{
    uint8_t ref[4096], got[4096];
    uint64_t el;
    size_t nref = startup_bytes(NULL, ref, sizeof ref, &el);
    CU_ASSERT_FATAL(nref > 9 + 200);
    size_t after = nref - 9; /* after AuthenticationOk */
    static const struct {
        const char *yaml;
        size_t slice;
        unsigned ms;
        unsigned not_before_ms; /* 0: from slice/ms */
    } cases[] = {
        {R1("phase: parameter-status, action: drip, slice: 16, ms: 5"), 16, 5, 0},
        {R1("phase: parameter-status, action: drip, ms: 1"), 1, 1, 0},
        {R1("phase: parameter-status, action: bandwidth, bytes_per_sec: 4000"), 200, 50, 0},
        {R1("phase: ready, action: delay, ms: 120"), 0, 0, 120},
        {R1("phase: auth-ok, action: delay, ms: 60, jitter_ms: 30"), 0, 0, 30},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t n = startup_bytes(cases[i].yaml, got, sizeof got, &el);
        CU_ASSERT_EQUAL(n, nref);
        CU_ASSERT(n == nref && memcmp(got, ref, n) == 0);
        uint64_t lower = PGF_MS_NS(cases[i].not_before_ms);
        if (cases[i].slice > 0)
            lower = (uint64_t)((after + cases[i].slice - 1) / cases[i].slice - 1) *
                    PGF_MS_NS(cases[i].ms);
        if (el < lower)
            fprintf(stderr, "\n  %s: %llu ns < %llu\n", cases[i].yaml, (unsigned long long)el,
                    (unsigned long long)lower);
        CU_ASSERT(el >= lower);
    }
}

/* ------------------------------------------------------------------ */
/* determinism                                                         */

static const char det_rules[] =
    "rules:\n"
    "  - {name: coin, phase: query, action: none, probability: 0.5}\n"
    "  - {name: slow, phase: row-description, action: delay, ms: 1, jitter_ms: 1, "
    "probability: 0.3}\n"
    "  - {name: third, phase: data-row, action: error, preset: serialization-failure, every: 3}\n"
    "  - {name: hello, phase: startup, action: none}\n";

/* A fixed client script: 3 connections, one after the other, 8 queries each. */
static char *det_run(uint64_t seed, const char *dir)
{
    fl_srv t;
    fl_start(&t, det_rules, seed);
    char path[512], err[256];
    snprintf(path, sizeof path, "%s/faults.jsonl", dir);
    CU_ASSERT_EQUAL(pgf_fault_log_open(t.eng, path, PGF_FAULT_LOG_NO_TIME, err, sizeof err), 0);
    for (int c = 0; c < 3; c++) {
        fl_conn o;
        CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
        for (int q = 0; q < 8; q++) {
            fl_query r;
            fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &r);
            CU_ASSERT(!r.timed_out && PQstatus(o.c) == CONNECTION_OK);
        }
        PQfinish(o.c);
    }
    char *lines = fl_log_untimed(t.eng);
    fl_stop(&t); /* closes the stream */
    /* the streamed file (no time) is the in-memory log without elapsed_ns */
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char file[65536];
    size_t n = fread(file, 1, sizeof file - 1, f);
    file[n] = '\0';
    fclose(f);
    CU_ASSERT(str_eq("streamed log", file, lines));
    return lines;
}

static void same_seed_same_log(void)
{
    char *dir = pgf_t_mkdtemp("det");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char *a = det_run(42, dir);
    char *b = det_run(42, dir);
    char *c = det_run(43, dir);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT(strlen(a) > 0 && strstr(a, "\"rule\":\"coin\"") != NULL);
    CU_ASSERT(str_eq("same seed", b, a));
    CU_ASSERT(strcmp(a, c) != 0);
    free(a);
    free(b);
    free(c);
    pgf_t_rmtree(dir);
    free(dir);
}

/* ------------------------------------------------------------------ */
/* control API on a live server                                        */

typedef struct live {
    struct event_base *base;
    pgf_server *srv;
    pgf_fault_engine *eng;
    pgf_fault_control *ctl;
    pthread_t th;
    char addr[64];
    int port;
} live;

static int live_set_listening(void *arg, bool up)
{
    return pgf_server_set_listening(arg, up);
}
static bool live_is_listening(void *arg)
{
    return pgf_server_listening(arg);
}

static void *live_loop(void *arg)
{
    event_base_dispatch(((live *)arg)->base);
    return NULL;
}

static char *http(live *l, const char *method, const char *path, const char *body, int *status)
{
    char err[256];
    pgf_http_response r;
    int rc =
        pgf_http_request(NULL, l->addr, method, path, body, FL_DEADLINE_MS, &r, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "\n  %s %s: %s\n", method, path, err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    *status = r.status;
    return r.body;
}

static void control_live_rules(void)
{
    live l = {0};
    char err[256];
    l.base = event_base_new();
    l.eng = pgf_fault_engine_new(9);
    CU_ASSERT_FATAL(l.base != NULL && l.eng != NULL);
    static const char *const listen[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = listen;
    cfg.nlisten = 1;
    cfg.users = fl_users;
    cfg.nusers = 3;
    cfg.quiet = true;
    cfg.faults = l.eng;
    CU_ASSERT_EQUAL_FATAL(pgf_server_new(&cfg, l.base, &l.srv, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(pgf_server_start(l.srv, err, sizeof err), 0);
    pgf_fault_control_hooks hooks = {l.srv, live_set_listening, live_is_listening, NULL};
    int cport = pgf_fault_control_start(&l.ctl, l.base, l.eng, "127.0.0.1:0", false, &hooks, err,
                                        sizeof err);
    CU_ASSERT_FATAL(cport > 0);
    snprintf(l.addr, sizeof l.addr, "127.0.0.1:%d", cport);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&l.th, NULL, live_loop, &l), 0);

    fl_srv t = {0};
    t.port = pgf_server_port(l.srv);
    fl_conn o;
    CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
    CU_ASSERT(fl_select1(o.c));

    /* add a rule: the already-open connection's next query gets it */
    int st;
    char *body = http(&l, "POST", "/rules",
                      "{\"name\":\"live\",\"phase\":\"query\",\"action\":\"error\","
                      "\"preset\":\"serialization-failure\"}",
                      &st);
    CU_ASSERT_EQUAL(st, 201);
    free(body);
    fl_query q;
    fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
    CU_ASSERT(str_eq("live rule", q.sqlstate, "40001"));
    CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_OK);

    /* bad requests: 400 naming the problem, and nothing changes */
    char *before = http(&l, "GET", "/rules", NULL, &st);
    static const struct {
        const char *method, *path, *body, *needle;
    } bad[] = {
        {"POST", "/rules",
         "{\"name\":\"x\",\"phase\":\"query\",\"action\":\"close\",\"probabilty\":1}",
         "probabilty"},
        {"POST", "/rules", "{not json", "JSON"},
        {"POST", "/rules/live", "{\"phase\":\"data-rows\"}", "data-rows"},
        {"POST", "/rules",
         "[{\"name\":\"ok1\",\"phase\":\"query\",\"action\":\"close\"},"
         "{\"name\":\"bad\",\"phase\":\"query\",\"action\":\"explode\"}]",
         "explode"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *b = http(&l, bad[i].method, bad[i].path, bad[i].body, &st);
        CU_ASSERT_EQUAL(st, 400);
        if (st != 400 || strstr(b, bad[i].needle) == NULL)
            fprintf(stderr, "\n  %s %s -> %d %s\n", bad[i].method, bad[i].path, st, b);
        CU_ASSERT_PTR_NOT_NULL(strstr(b, bad[i].needle));
        free(b);
        char *after = http(&l, "GET", "/rules", NULL, &st);
        CU_ASSERT(str_eq("rules after a bad request", after, before));
        free(after);
    }
    free(before);
    /* ... and the connection still sees exactly the old rule */
    fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
    CU_ASSERT(str_eq("rule kept", q.sqlstate, "40001"));
    CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_OK);

    /* update it at run time: now it closes the connection */
    body = http(&l, "POST", "/rules/live", "{\"preset\":null,\"action\":\"close\"}", &st);
    CU_ASSERT_EQUAL(st, 200);
    free(body);
    fl_exec(o.c, "SELECT 1", FL_DEADLINE_MS, &q);
    CU_ASSERT(str_eq("updated rule", q.errmsg, FL_CLOSED_TEXT));
    CU_ASSERT_EQUAL(PQstatus(o.c), CONNECTION_BAD);
    PQfinish(o.c);

    /* delete: a new connection is untouched */
    body = http(&l, "DELETE", "/rules/live", NULL, &st);
    CU_ASSERT_EQUAL(st, 204);
    free(body);
    CU_ASSERT_FATAL(fl_connect_ok(&t, "trusty", "", NULL, &o));
    CU_ASSERT(fl_select1(o.c));
    PQfinish(o.c);
    body = http(&l, "GET", "/coverage", NULL, &st);
    CU_ASSERT(st == 200 && strstr(body, "\"faults_fired\":3") != NULL);
    free(body);

    event_base_loopexit(l.base, NULL);
    pthread_join(l.th, NULL);
    pgf_fault_control_free(l.ctl);
    pgf_server_free(l.srv);
    pgf_fault_engine_free(l.eng);
    event_base_free(l.base);
}

static const pgf_test action_tests[] = {
    {"connect_faults", connect_faults},
    {"stall_forever_ends_by_client_deadline", stall_forever_ends_by_client_deadline},
    {"timed_connect_faults", timed_connect_faults},
    {"refuse_window", refuse_window},
    {"query_faults", query_faults},
    {"query_never_answered", query_never_answered},
    {"timed_query_faults", timed_query_faults},
    {"crash_shutdown_notice", crash_shutdown_notice},
    {"none_is_a_probe", none_is_a_probe},
    PGF_TESTS_END,
};

static const pgf_test raw_tests[] = {
    {"rst_vs_fin", rst_vs_fin},
    {"truncate_sasl_continue_bytes", truncate_sasl_continue_bytes},
    {"truncate_parameter_status_bytes", truncate_parameter_status_bytes},
    {"truncate_data_row", truncate_data_row},
    {"truncate_ssl_answer", truncate_ssl_answer},
    {"slow_output_keeps_bytes", slow_output_keeps_bytes},
    PGF_TESTS_END,
};

static const pgf_test det_tests[] = {
    {"same_seed_same_log", same_seed_same_log},
    {"control_live_rules", control_live_rules},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_fault_actions[] = {
    {"fault_actions_libpq", NULL, NULL, action_tests},
    {"fault_actions_raw", NULL, NULL, raw_tests},
    {"fault_actions_replay_control", NULL, NULL, det_tests},
    PGF_SUITES_END,
};
