/* test_fault_classify.c - each fault action, injected by the fault engine
 * into the in-process fake server, classified by the session manager.
 *
 * One table: (action, SQLSTATE, rule) -> the health reason and session
 * phase docs/session-manager.md and health.h document. Each row runs
 * pgf_health_check() (open, SELECT 1, close on a private loop) against a
 * fresh fake server with that one rule. A second pass holds the table
 * against the checker's prediction table (pgf_check_predict_reason in
 * harness/checker/check.h): for every (action, SQLSTATE) the checker
 * predicts, there must be live rows, and the session manager must classify
 * every one of them as predicted, or the harness would report false
 * misclassified_health violations. The test fails if the two ever drift.
 */
#include "pgfault/check.h"
#include "fault_live.h"
#include "pgfault/health.h"
#include "pgfault/healthcheck.h"
#include "pgfault/session.h"

typedef struct cls_case {
    const char *action;   /* as in the fault log (what the checker sees) */
    const char *sqlstate; /* the injected error's SQLSTATE, "" for none */
    const char *rule;     /* the rule's body */
    const char *user, *password;
    const char *reason; /* documented health reason */
    const char *phase;  /* session phase in the health result */
} cls_case;

#define RULE(body) "rules:\n  - {name: r, " body "}\n"

static const cls_case cases[] = {
    /* authentication */
    {"auth-fail", "", RULE("phase: auth-response, action: auth-fail"), "alice", "secret",
     "auth_failed", "auth"},
    {"auth-fail", "", RULE("phase: startup, action: auth-fail"), "bob", "bobpw", "auth_failed",
     "auth"},
    {"auth-fail", "", RULE("phase: auth-ok, action: auth-fail"), "trusty", "", "auth_failed",
     "auth"},
    {"error", "28P01",
     RULE("phase: sasl-final, action: error, severity: FATAL, sqlstate: 28P01, message: "
          "'password authentication failed for user \"%u\"'"),
     "alice", "secret", "auth_failed", "auth"},
    {"error", "28000",
     RULE("phase: startup, action: error, severity: FATAL, sqlstate: '28000', message: 'role "
          "\"%u\" is not permitted to log in'"),
     "trusty", "", "auth_failed", "auth"},
    {"error", "28000",
     RULE("phase: query, action: error, severity: FATAL, sqlstate: '28000', message: 'role "
          "\"%u\" is not permitted to log in'"),
     "trusty", "", "auth_failed", "query"},
    /* connection limits and shutdown */
    {"error", "53300", RULE("phase: startup, action: error, preset: too-many-clients"), "alice",
     "secret", "too_many_connections", "auth"},
    {"error", "53300",
     RULE("phase: auth-ok, action: error, severity: FATAL, sqlstate: '53300', message: 'too "
          "many connections for role \"%u\"'"),
     "trusty", "", "too_many_connections", "auth"},
    {"error", "53300",
     RULE("phase: query, action: error, severity: FATAL, sqlstate: '53300', message: 'sorry, "
          "too many clients already'"),
     "trusty", "", "too_many_connections", "query"},
    {"error", "57P01", RULE("phase: auth-ok, action: error, preset: admin-shutdown"), "trusty", "",
     "shutting_down", "auth"},
    {"error", "57P01", RULE("phase: query, action: error, preset: admin-shutdown"), "trusty", "",
     "shutting_down", "query"},
    {"error", "57P01", RULE("phase: idle, action: error, preset: admin-shutdown"), "trusty", "",
     "shutting_down", "query"},
    {"error", "57P03", RULE("phase: startup, action: error, preset: cannot-connect-now"), "bob",
     "bobpw", "shutting_down", "auth"},
    {"error", "57P03", RULE("phase: query, action: error, preset: cannot-connect-now"), "trusty",
     "", "shutting_down", "query"},
    {"error", "57P02", RULE("phase: idle, action: error, preset: crash-shutdown"), "trusty", "",
     "shutting_down", "query"},
    {"error", "57P02", RULE("phase: query, action: error, preset: crash-shutdown"), "trusty", "",
     "shutting_down", "query"},
    /* other server errors keep their SQLSTATE */
    {"error", "57014", RULE("phase: query, action: error, preset: query-canceled"), "trusty", "",
     "canceled", "query"},
    {"error", "40001", RULE("phase: data-row, action: error, preset: serialization-failure"),
     "trusty", "", "server_error", "query"},
    {"error", "08P01", RULE("phase: query, action: error, preset: protocol-violation"), "trusty",
     "", "protocol_error", "query"},
    {"error", "08P01", RULE("phase: startup, action: error, preset: protocol-violation"), "bob",
     "bobpw", "protocol_error", "auth"},
    {"error", "3D000",
     RULE("phase: startup, action: error, severity: FATAL, sqlstate: 3D000, message: 'database "
          "\"%d\" does not exist'"),
     "bob", "bobpw", "server_error", "auth"},
    {"error", "3D000",
     RULE("phase: query, action: error, severity: FATAL, sqlstate: 3D000, message: 'database "
          "\"%d\" does not exist'"),
     "trusty", "", "server_error", "query"},
    {"error", "XX000", RULE("phase: startup, action: error, message: boom, severity: FATAL"), "bob",
     "bobpw", "server_error", "auth"},
    /* the connection goes away */
    {"close", "", RULE("phase: accept, action: close"), "alice", "secret", "connection_lost",
     "auth"},
    {"close", "", RULE("phase: startup, action: close"), "alice", "secret", "connection_lost",
     "auth"},
    {"close", "", RULE("phase: query, action: close"), "trusty", "", "connection_lost", "query"},
    {"reset", "", RULE("phase: auth-response, action: reset"), "bob", "bobpw", "connection_lost",
     "auth"},
    {"reset", "", RULE("phase: query, action: reset"), "trusty", "", "connection_lost", "query"},
    {"half-close", "", RULE("phase: auth-request, action: half-close"), "bob", "bobpw",
     "connection_lost", "auth"},
    {"half-close", "", RULE("phase: query, action: half-close"), "trusty", "", "connection_lost",
     "query"},
    {"truncate", "", RULE("phase: sasl-continue, action: truncate, bytes: 10"), "alice", "secret",
     "connection_lost", "auth"},
    {"truncate", "", RULE("phase: parameter-status, action: truncate, bytes: 5"), "trusty", "",
     "connection_lost", "params"},
    {"truncate", "", RULE("phase: data-row, action: truncate, bytes: 4, then: reset"), "trusty", "",
     "connection_lost", "query"},
    {"truncate", "", RULE("phase: query, action: truncate, messages: 1"), "trusty", "",
     "connection_lost", "query"},
    {"refuse", "", RULE("phase: accept, action: refuse"), "alice", "secret", "connection_lost",
     "auth"},
    {"refuse", "", RULE("phase: accept, action: refuse, ms: 200"), "alice", "secret",
     "connection_lost", "auth"},
    /* nobody answers */
    {"stall", "", RULE("phase: auth-request, action: stall"), "bob", "bobpw", "timeout", "auth"},
    {"stall", "", RULE("phase: parameter-status, action: stall"), "trusty", "", "timeout",
     "params"},
    {"stall", "", RULE("phase: query, action: stall"), "trusty", "", "timeout", "query"},
    {"half-close", "", RULE("phase: idle, action: half-close, direction: read"), "trusty", "",
     "timeout", "query"},
    /* bytes that make no sense */
    {"garbage", "", RULE("phase: auth-request, action: garbage"), "bob", "bobpw", "protocol_error",
     "auth"},
    {"garbage", "", RULE("phase: parameter-status, action: garbage"), "trusty", "",
     "protocol_error", "auth"},
    {"garbage", "", RULE("phase: data-row, action: garbage, bytes: 32"), "trusty", "",
     "protocol_error", "query"},
    /* slow but healthy */
    {"delay", "", RULE("phase: auth-request, action: delay, ms: 50"), "bob", "bobpw", "healthy",
     ""},
    {"drip", "", RULE("phase: parameter-status, action: drip, slice: 64, ms: 2"), "trusty", "",
     "healthy", ""},
    {"bandwidth", "", RULE("phase: query, action: bandwidth, bytes_per_sec: 4000"), "trusty", "",
     "healthy", ""},
    {"none", "", RULE("phase: query, action: none"), "trusty", "", "healthy", ""},
};
#define NCASES (sizeof cases / sizeof cases[0])

static bool timeout_case(const cls_case *k)
{
    return strcmp(k->reason, "timeout") == 0;
}

/* Run one row; fills *h. */
static void run_case(const cls_case *k, pgf_health *h)
{
    fl_srv t;
    fl_start(&t, k->rule, 3);
    char port[16];
    snprintf(port, sizeof port, "%d", t.port);
    const char *keys[] = {"host",   "port",    "user",       "password",
                          "dbname", "sslmode", "gssencmode", NULL};
    const char *vals[] = {"127.0.0.1", port,      k->user,   k->password,
                          "appdb",     "disable", "disable", NULL};
    int rc = pgf_health_check(keys, vals, NULL, timeout_case(k) ? 400 : FL_DEADLINE_MS, h);
    CU_ASSERT_EQUAL(rc, pgf_health_reason_err(h->reason));
    /* the rule did fire (the classification is about this fault) */
    CU_ASSERT(pgf_fault_engine_fired(t.eng) >= 1);
    fl_stop(&t);
}

static void each_action_classified(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        const cls_case *k = &cases[i];
        pgf_health h;
        run_case(k, &h);
        const char *got = pgf_health_reason_name(h.reason);
        bool ok = strcmp(got, k->reason) == 0 && strcmp(h.phase, k->phase) == 0;
        /* A SQLSTATE the server sent is kept. During connect libpq keeps
         * only text, so an unknown FATAL there (XX000 'boom') has none. */
        if (k->sqlstate[0] != '\0' && strcmp(k->sqlstate, "XX000") != 0)
            ok = ok && strcmp(h.sqlstate, k->sqlstate) == 0;
        if (!ok) {
            char buf[512];
            pgf_health_format(&h, buf, sizeof buf);
            fprintf(stderr, "\n  %s %s [%s]: want %s in %s, got %s\n", k->action, k->sqlstate,
                    k->rule + 21, k->reason, k->phase[0] ? k->phase : "-", buf);
        }
        CU_ASSERT(ok);
    }
    pgf_session_counters cnt;
    pgf_session_counters_get(&cnt);
    CU_ASSERT_EQUAL(cnt.sessions, 0);
    CU_ASSERT_EQUAL(cnt.pgconns, 0);
}

/* The checker's predictions and this table must agree, both ways. */
static void checker_predictions_agree(void)
{
    static const char *const sqlstates[] = {"",      "28P01", "28000", "53300", "57P01",
                                            "57P02", "57P03", "57014", "40001", "08P01",
                                            "08006", "3D000", "XX000", "40P01"};
    size_t predicted = 0;
    for (int a = 0; a < PGF_ACTION_COUNT; a++) {
        const char *action = pgf_action_name((pgf_action_kind)a);
        for (size_t s = 0; s < sizeof sqlstates / sizeof sqlstates[0]; s++) {
            if (a != PGF_ACTION_ERROR && s > 0)
                break; /* only errors carry a SQLSTATE */
            const char *want = pgf_check_predict_reason(action, sqlstates[s]);
            if (want == NULL)
                continue;
            predicted++;
            size_t rows = 0;
            for (size_t i = 0; i < NCASES; i++) {
                if (strcmp(cases[i].action, action) != 0 ||
                    strcmp(cases[i].sqlstate, a == PGF_ACTION_ERROR ? sqlstates[s] : "") != 0)
                    continue;
                rows++;
                if (strcmp(cases[i].reason, want) != 0)
                    fprintf(stderr, "\n  checker predicts %s for %s %s, table says %s [%s]\n", want,
                            action, sqlstates[s], cases[i].reason, cases[i].rule + 21);
                CU_ASSERT_STRING_EQUAL(cases[i].reason, want);
            }
            if (rows == 0 && !(a == PGF_ACTION_ERROR && sqlstates[s][0] == '\0'))
                fprintf(stderr, "\n  checker predicts %s for %s %s: no live row here\n", want,
                        action, sqlstates[s]);
            /* every prediction is backed by a live row (error needs a SQLSTATE) */
            if (!(a == PGF_ACTION_ERROR && sqlstates[s][0] == '\0'))
                CU_ASSERT(rows > 0);
        }
    }
    CU_ASSERT(predicted >= 10); /* the table is not empty by accident */
    /* and every row whose (action, SQLSTATE) the checker predicts uses its reason,
     * in any phase: the checker does not look at phases */
    for (size_t i = 0; i < NCASES; i++) {
        const char *want = pgf_check_predict_reason(cases[i].action, cases[i].sqlstate);
        if (want != NULL)
            CU_ASSERT_STRING_EQUAL(cases[i].reason, want);
    }
}

static const pgf_test classify_tests[] = {
    {"each_action_classified", each_action_classified},
    {"checker_predictions_agree", checker_predictions_agree},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_fault_classify[] = {
    {"fault_classify", NULL, NULL, classify_tests},
    PGF_SUITES_END,
};
