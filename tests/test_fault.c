/* test_fault.c - the fault engine without a server: rule parsing (every
 * action, every error message with its file:line:col), decision semantics,
 * determinism, the fault log and coverage, and the documented examples. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgf_test.h"
#include "pgfault/rules.h"
#include "testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static pgf_fault_rules *parse_ok(const char *yaml)
{
    char err[1024] = "";
    pgf_fault_rules *r =
        pgf_fault_rules_parse_yaml(yaml, strlen(yaml), "faults.yaml", err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "\nunexpected parse error: %s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    return r;
}

static void expect_err(const char *text, bool json, const char *want)
{
    char err[1024] = "";
    pgf_fault_rules *r =
        json ? pgf_fault_rules_parse_json(text, strlen(text), "request body", err, sizeof err)
             : pgf_fault_rules_parse_yaml(text, strlen(text), "faults.yaml", err, sizeof err);
    CU_ASSERT_PTR_NULL(r);
    pgf_fault_rules_free(r);
    if (strcmp(err, want) != 0)
        fprintf(stderr, "\n got: %s\nwant: %s\n", err, want);
    CU_ASSERT_STRING_EQUAL(err, want);
}

static pgf_fault_engine *engine_with(const char *yaml, uint64_t seed)
{
    pgf_fault_engine *e = pgf_fault_engine_new(seed);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    pgf_fault_engine_set_rules(e, parse_ok(yaml));
    return e;
}

static pgf_fault_ctx mkctx(uint64_t conn)
{
    pgf_fault_ctx c = {
        .conn_id = conn,
        .user = "alice",
        .database = "app",
        .application_name = "psql",
        .client_addr = "127.0.0.1:40000",
        .query = "SELECT 1",
        .msg_type = 'Q',
        .elapsed_ns = 0,
    };
    return c;
}

/* Fire pattern of `n` calls at `phase` on one connection: "..x.x" */
static void pattern(pgf_fault_engine *e, pgf_fault_conn *c, pgf_phase phase,
                    const pgf_fault_ctx *ctx, int n, char *out)
{
    pgf_fault_action a;
    for (int i = 0; i < n; i++)
        out[i] = pgf_fault_decide(e, c, phase, ctx, &a) ? 'x' : '.';
    out[n] = '\0';
}

/* ---- parsing: every action --------------------------------------------- */

static void parse_every_action(void)
{
    pgf_fault_engine *e = engine_with(
        "rules:\n"
        "  - {name: a-none, phase: accept, action: none, match: {conn: 1}}\n"
        "  - {name: a-refuse, phase: accept, action: refuse, ms: 250, match: {conn: 2}}\n"
        "  - {name: s-auth, phase: auth-response, action: auth-fail}\n"
        "  - {name: q-err, phase: query, action: error, preset: serialization-failure,"
        "     match: {conn: 1}}\n"
        "  - {name: q-custom, phase: query, action: error, severity: FATAL, sqlstate: 'XX001',"
        "     message: 'boom for %u on %d (100%%)', detail: d, hint: h, match: {conn: 2}}\n"
        "  - {name: q-close, phase: query, action: close, match: {conn: 3}}\n"
        "  - {name: q-reset, phase: query, action: reset, match: {conn: 4}}\n"
        "  - {name: q-half, phase: query, action: half-close, direction: read, match: {conn: 5}}\n"
        "  - {name: q-trunc, phase: query, action: truncate, messages: 2, match: {conn: 6}}\n"
        "  - {name: d-trunc, phase: data-row, action: truncate, bytes: 3, then: reset}\n"
        "  - {name: i-stall, phase: idle, action: stall}\n"
        "  - {name: r-delay, phase: ready, action: delay, ms: 40}\n"
        "  - {name: p-drip, phase: parameter-status, action: drip, slice: 2, ms: 5}\n"
        "  - {name: t-bw, phase: row-description, action: bandwidth, bytes_per_sec: 100}\n"
        "  - {name: c-garbage, phase: command-complete, action: garbage}\n",
        1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    pgf_fault_conn *c1 = pgf_fault_conn_new(e, 1), *c2 = pgf_fault_conn_new(e, 2);

    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_ACCEPT, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_NONE);
    CU_ASSERT_STRING_EQUAL(a.rule, "a-none");
    CU_ASSERT_EQUAL(a.event_seq, 1);

    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_AUTH_RESPONSE, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_AUTH_FAIL);
    CU_ASSERT_STRING_EQUAL(a.severity, "FATAL");
    CU_ASSERT_STRING_EQUAL(a.sqlstate, "28P01");
    CU_ASSERT_STRING_EQUAL(a.message, "password authentication failed for user \"alice\"");

    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_QUERY, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_ERROR);
    CU_ASSERT_STRING_EQUAL(a.severity, "ERROR");
    CU_ASSERT_STRING_EQUAL(a.sqlstate, "40001");
    CU_ASSERT_STRING_EQUAL(a.message, "could not serialize access due to concurrent update");
    CU_ASSERT_PTR_NULL(a.detail);

    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_DATA_ROW, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_TRUNCATE);
    CU_ASSERT_EQUAL(a.bytes, 3);
    CU_ASSERT_EQUAL(a.messages, 0);
    CU_ASSERT_TRUE(a.reset);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_IDLE, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_STALL);
    CU_ASSERT_EQUAL(a.ms, 0);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_READY, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_DELAY);
    CU_ASSERT_EQUAL(a.ms, 40);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_PARAMETER_STATUS, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_DRIP);
    CU_ASSERT_EQUAL(a.slice, 2);
    CU_ASSERT_EQUAL(a.ms, 5);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_ROW_DESCRIPTION, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_BANDWIDTH);
    CU_ASSERT_EQUAL(a.bytes_per_sec, 100);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c1, PGF_PHASE_COMMAND_COMPLETE, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_GARBAGE);
    CU_ASSERT_EQUAL(a.bytes, 16); /* the default */

    ctx = mkctx(2);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c2, PGF_PHASE_ACCEPT, &ctx, &a));
    CU_ASSERT_EQUAL(a.kind, PGF_ACTION_REFUSE);
    CU_ASSERT_EQUAL(a.ms, 250);
    CU_ASSERT_TRUE(pgf_fault_decide(e, c2, PGF_PHASE_QUERY, &ctx, &a));
    CU_ASSERT_STRING_EQUAL(a.rule, "q-custom");
    CU_ASSERT_STRING_EQUAL(a.severity, "FATAL");
    CU_ASSERT_STRING_EQUAL(a.sqlstate, "XX001");
    CU_ASSERT_STRING_EQUAL(a.message, "boom for alice on app (100%)");
    CU_ASSERT_STRING_EQUAL(a.detail, "d");
    CU_ASSERT_STRING_EQUAL(a.hint, "h");

    struct {
        uint64_t conn;
        pgf_action_kind kind;
    } q[] = {{3, PGF_ACTION_CLOSE},
             {4, PGF_ACTION_RESET},
             {5, PGF_ACTION_HALF_CLOSE},
             {6, PGF_ACTION_TRUNCATE}};
    for (size_t i = 0; i < 4; i++) {
        pgf_fault_conn *c = pgf_fault_conn_new(e, q[i].conn);
        ctx = mkctx(q[i].conn);
        CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
        CU_ASSERT_EQUAL(a.kind, q[i].kind);
        if (q[i].kind == PGF_ACTION_HALF_CLOSE)
            CU_ASSERT_EQUAL(a.direction, 'r');
        if (q[i].kind == PGF_ACTION_TRUNCATE) {
            CU_ASSERT_EQUAL(a.messages, 2);
            CU_ASSERT_FALSE(a.reset);
        }
        pgf_fault_conn_free(c);
    }
    pgf_fault_conn_free(c1);
    pgf_fault_conn_free(c2);
    pgf_fault_engine_free(e);
}

static void parse_presets(void)
{
    static const struct {
        const char *preset, *sev, *code, *msg;
    } want[] = {
        {"admin-shutdown", "FATAL", "57P01", "terminating connection due to administrator command"},
        {"crash-shutdown", "WARNING", "57P02",
         "terminating connection because of crash of another server process"},
        {"too-many-clients", "FATAL", "53300", "sorry, too many clients already"},
        {"cannot-connect-now", "FATAL", "57P03", "the database system is starting up"},
        {"protocol-violation", "FATAL", "08P01", "invalid frontend message type 0"},
        {"query-canceled", "ERROR", "57014", "canceling statement due to user request"},
        {"serialization-failure", "ERROR", "40001",
         "could not serialize access due to concurrent update"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char y[256];
        snprintf(y, sizeof y, "rules: [{phase: startup, action: error, preset: %s}]",
                 want[i].preset);
        pgf_fault_engine *e = engine_with(y, 1);
        pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
        pgf_fault_ctx ctx = mkctx(1);
        pgf_fault_action a;
        CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_STARTUP, &ctx, &a));
        CU_ASSERT_STRING_EQUAL(a.rule, "rule1"); /* unnamed rules get rule<N> */
        CU_ASSERT_STRING_EQUAL(a.severity, want[i].sev);
        CU_ASSERT_STRING_EQUAL(a.sqlstate, want[i].code);
        CU_ASSERT_STRING_EQUAL(a.message, want[i].msg);
        if (strcmp(want[i].preset, "crash-shutdown") == 0) {
            CU_ASSERT_STRING_EQUAL(a.detail,
                                   "The postmaster has commanded this server process to roll "
                                   "back the current transaction and exit, because another "
                                   "server process exited abnormally and possibly corrupted "
                                   "shared memory.");
            CU_ASSERT_STRING_EQUAL(
                a.hint,
                "In a moment you should be able to reconnect to the database and repeat your "
                "command.");
        }
        pgf_fault_conn_free(c);
        pgf_fault_engine_free(e);
    }
    /* a preset's fields can be overridden */
    pgf_fault_engine *e = engine_with(
        "rules: [{phase: query, action: error, preset: admin-shutdown, severity: ERROR}]", 1);
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
    CU_ASSERT_STRING_EQUAL(a.severity, "ERROR");
    CU_ASSERT_STRING_EQUAL(a.sqlstate, "57P01");
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

static void parse_json_same_schema(void)
{
    char err[512];
    const char *j = "{\"name\":\"j1\",\"phase\":\"data-row\",\"action\":\"truncate\","
                    "\"bytes\":5,\"probability\":0.25,\"match\":{\"conn\":[2,4]}}";
    pgf_fault_rules *r = pgf_fault_rules_parse_json(j, strlen(j), "body", err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    CU_ASSERT_EQUAL(pgf_fault_rules_count(r), 1);
    CU_ASSERT_STRING_EQUAL(pgf_fault_rules_name(r, 0), "j1");
    /* canonical JSON: fixed key order, typed values */
    CU_ASSERT_STRING_EQUAL(pgf_fault_rules_rule_json(r, 0),
                           "{\"name\":\"j1\",\"phase\":\"data-row\",\"match\":{\"conn\":[2,4]},"
                           "\"action\":\"truncate\",\"bytes\":5,\"probability\":0.25}");
    /* the same rule in YAML has the same canonical form */
    pgf_fault_rules *y = parse_ok("- name: j1\n  phase: data-row\n  action: truncate\n"
                                  "  bytes: 5\n  probability: 0.25\n  match: {conn: [2, 4]}\n");
    CU_ASSERT_STRING_EQUAL(pgf_fault_rules_rule_json(y, 0), pgf_fault_rules_rule_json(r, 0));
    /* and the canonical form parses back to itself */
    char *all = pgf_fault_rules_to_json(r);
    pgf_fault_rules *back = pgf_fault_rules_parse_string(all, strlen(all), "x", err, sizeof err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(back);
    CU_ASSERT_STRING_EQUAL(pgf_fault_rules_rule_json(back, 0), pgf_fault_rules_rule_json(r, 0));
    free(all);
    pgf_fault_rules_free(back);
    pgf_fault_rules_free(y);
    pgf_fault_rules_free(r);
    /* empty documents are empty sets */
    r = parse_ok("");
    CU_ASSERT_EQUAL(pgf_fault_rules_count(r), 0);
    pgf_fault_rules_free(r);
    r = parse_ok("version: 1\nrules:\n");
    CU_ASSERT_EQUAL(pgf_fault_rules_count(r), 0);
    pgf_fault_rules_free(r);
}

/* ---- parsing: errors, exact ------------------------------------------- */

static void parse_errors_name_the_place(void)
{
    expect_err("rules:\n"
               "  - name: r1\n"
               "    phase: query\n"
               "    action: close\n"
               "    probabilty: 0.5\n",
               false,
               "faults.yaml:5:5: unknown key 'probabilty' in rule 'r1' (expected one of: name, "
               "description, phase, action, match, probability, nth, every, after, times, "
               "budget, from_ms, until_ms, scope, side)");
    expect_err("rules:\n  - name: r1\n    phase: data-rows\n    action: close\n", false,
               "faults.yaml:3:12: unknown phase 'data-rows' in rule 'r1' (did you mean "
               "'data-row'? expected one of: "
               "accept, ssl-request, startup, auth-request, auth-response, sasl-continue, "
               "sasl-final, auth-ok, parameter-status, ready, query, row-description, data-row, "
               "command-complete, idle, cancel, terminate)");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: explode\n", false,
               "faults.yaml:4:13: unknown action 'explode' in rule 'r1' (expected one of: none, "
               "auth-fail, error, close, reset, half-close, truncate, stall, delay, drip, "
               "bandwidth, garbage, refuse)");
    /* a misspelled action is named at its own line:col, before its
     * parameters could be taken for unknown keys */
    expect_err("rules:\n  - name: slow\n    phase: query\n    action: dely\n    ms: 200\n", false,
               "faults.yaml:4:13: unknown action 'dely' in rule 'slow' (did you mean 'delay'? "
               "expected one of: none, auth-fail, error, close, reset, half-close, truncate, "
               "stall, delay, drip, bandwidth, garbage, refuse)");
    expect_err("rules:\n  - name: r1\n    phase: data-row\n    action: auth-fail\n", false,
               "faults.yaml:4:13: action 'auth-fail' is not valid at phase 'data-row' in rule "
               "'r1' (valid at: startup, auth-request, auth-response, sasl-continue, sasl-final, "
               "auth-ok)");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: close\n"
               "    probability: \"high\"\n",
               false,
               "faults.yaml:5:18: 'probability' must be a number, got a string in rule 'r1'");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: close\n"
               "    probability: 1.5\n",
               false,
               "faults.yaml:5:18: 'probability' is out of range: 1.5 (allowed 0..1) in rule 'r1'");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: close\n    nth: 0\n", false,
               "faults.yaml:5:10: 'nth' is out of range: 0 (allowed 1..4294967295) in rule 'r1'");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: close\n    times: [1]\n", false,
               "faults.yaml:5:12: 'times' must be an integer, got a list in rule 'r1'");
    expect_err("rules:\n  - name: r1\n    phase: query\n    action: delay\n    ms: 5\n"
               "    slice: 3\n",
               false,
               "faults.yaml:6:5: key 'slice' is not a parameter of action 'delay' in rule 'r1' "
               "(delay takes: ms, jitter_ms)");
    expect_err("rules:\n  - {name: r1, phase: query, action: delay}\n", false,
               "faults.yaml:2:5: action 'delay' needs 'ms' in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: data-row, action: truncate}\n", false,
               "faults.yaml:2:5: action 'truncate' needs exactly one of 'bytes' or 'messages' in "
               "rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: error}\n", false,
               "faults.yaml:2:5: action 'error' needs a 'message' or a 'preset' in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: error, message: x, sqlstate: 4001}\n",
               false,
               "faults.yaml:2:67: 'sqlstate' must be 5 characters of 0-9 or A-Z (like 40001), "
               "got '4001' in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: error, message: '50%x'}\n", false,
               "faults.yaml:2:54: 'message' has an unknown escape '%x' (use %u, %d or %%) in "
               "rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: error, preset: kaboom}\n", false,
               "faults.yaml:2:53: unknown preset 'kaboom' in rule 'r1' (expected one of: "
               "admin-shutdown, immediate-shutdown, crash-shutdown, too-many-clients, "
               "cannot-connect-now, protocol-violation, query-canceled, serialization-failure)");
    expect_err("rules:\n  - {name: r1, phase: accept, action: close, match: {user: bob}}\n", false,
               "faults.yaml:2:54: filter 'user' can never match at phase 'accept' (not known "
               "before the startup message) in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: ready, action: close, match: {query: x}}\n", false,
               "faults.yaml:2:53: filter 'query' can only match at phases query, "
               "row-description, data-row, command-complete, not 'ready' in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, match: {qry: x}}\n", false,
               "faults.yaml:2:53: unknown key 'qry' in 'match' in rule 'r1' (expected one of: "
               "user, database, application_name, client_addr, query, query_regex, conn)");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, match: {query_regex: 'a(' }}\n",
               false,
               "faults.yaml:2:66: 'query_regex' is not a valid POSIX extended regex: Unmatched ( "
               "or \\( in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, match: {conn: [5, 2]}}\n",
               false, "faults.yaml:2:59: 'conn' range [5, 2] is empty in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, from_ms: 10, until_ms: 5}\n",
               false, "faults.yaml:2:58: 'until_ms' (5) must be after 'from_ms' (10) in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, nth: 2, every: 3}\n", false,
               "faults.yaml:2:53: 'nth' and 'every' cannot be combined in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close, scope: world}\n", false,
               "faults.yaml:2:52: 'scope' must be 'conn' or 'global', got 'world' in rule 'r1'");
    expect_err("rules:\n  - {name: r1, phase: query, action: close}\n"
               "  - {name: r1, phase: ready, action: close}\n",
               false, "faults.yaml:3:6: duplicate rule name 'r1' (rule 1 has it too)");
    expect_err("rules:\n  - {name: 'bad name', phase: query, action: close}\n", false,
               "faults.yaml:2:12: rule name 'bad name' must be 1-64 characters of A-Z a-z 0-9 - "
               "_ .");
    expect_err("rules:\n  - {name: r1, action: close}\n", false,
               "faults.yaml:2:5: missing 'phase' in rule 'r1'");
    expect_err("rulez: []\n", false,
               "faults.yaml:1:1: unknown top-level key 'rulez' (expected one of: version, rules)");
    expect_err("version: 2\nrules: []\n", false,
               "faults.yaml:1:10: 'version' is out of range: 2 (allowed 1..1)");
    expect_err("rules: 3\n", false, "faults.yaml:1:8: 'rules' must be a list, got a scalar");
    expect_err("rules:\n  - name: r1\n    name: r2\n", false,
               "faults.yaml:3:5: duplicate key 'name'");
    expect_err("rules:\n  - &a {name: r1, phase: query, action: close}\n  - *a\n", false,
               "faults.yaml:3:5: YAML aliases (*name) are not supported in fault rules");
    expect_err("rules:\n  - name: [r1\n", false,
               "faults.yaml:3:1: YAML syntax error: did not find expected ',' or ']' while "
               "parsing a flow sequence");
    expect_err("rules: []\n---\nrules: []\n", false,
               "faults.yaml:2:1: only one YAML document is allowed");
    /* JSON: same validator, no positions */
    expect_err("{\"name\":\"r1\",\"phase\":\"query\",\"action\":\"close\",\"probabilty\":0.5}",
               true,
               "request body: unknown key 'probabilty' in rule 'r1' (expected one of: name, "
               "description, phase, action, match, probability, nth, every, after, times, "
               "budget, from_ms, until_ms, scope, side)");
    expect_err("{\"name\":\"r1\",\"phase\":\"query\",\"action\":\"close\",\"nth\":\"2\"}", true,
               "request body: 'nth' must be an integer, got a string in rule 'r1'");
    expect_err("{\"name\":\"r1\",\"phase\":\"query\",\"action\":\"delay\",\"ms\":1.5}", true,
               "request body: 'ms' must be an integer, got a number in rule 'r1'");
    expect_err("{\"name\":\"r1\",\"phase\":", true,
               "request body:1:21: invalid JSON: unexpected token near end of file");
    expect_err("{\"name\":\"r1\",\"name\":\"r2\"}", true,
               "request body:1:19: invalid JSON: duplicate object key near '\"name\"'");
}

static void parse_file_errors_name_the_file(void)
{
    char *dir = pgf_t_mkdtemp("fault");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512], err[512];
    snprintf(path, sizeof path, "%s/faults.yaml", dir);
    FILE *f = fopen(path, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("rules:\n  - name: r1\n    phase: query\n    action: close\n    probabilty: 1\n", f);
    fclose(f);
    pgf_fault_rules *r = pgf_fault_rules_parse_file(path, err, sizeof err);
    CU_ASSERT_PTR_NULL(r);
    char want[600];
    snprintf(want, sizeof want, "%s:5:5: unknown key 'probabilty' in rule 'r1'", path);
    CU_ASSERT_NSTRING_EQUAL(err, want, strlen(want));
    snprintf(path, sizeof path, "%s/missing.yaml", dir);
    r = pgf_fault_rules_parse_file(path, err, sizeof err);
    CU_ASSERT_PTR_NULL(r);
    snprintf(want, sizeof want, "%s: cannot open: No such file or directory", path);
    CU_ASSERT_STRING_EQUAL(err, want);
    pgf_t_rmtree(dir);
    free(dir);
}

/* ---- decisions -------------------------------------------------------------- */

static void decide_nth_every_after_times(void)
{
    pgf_fault_engine *e =
        engine_with("rules:\n"
                    "  - {name: n, phase: query, action: close, nth: 3, match: {conn: 1}}\n"
                    "  - {name: ev, phase: query, action: close, every: 2, after: 1,"
                    "     match: {conn: 2}}\n"
                    "  - {name: t, phase: query, action: close, times: 2, after: 2,"
                    "     match: {conn: 3}}\n"
                    "  - {name: b, phase: query, action: close, every: 2, budget: 2,"
                    "     match: {conn: 4}}\n",
                    1);
    char got[16];
    const char *want[] = {"..x.....", "..x.x.x.", "..xx....", ".x.x...."};
    for (uint64_t id = 1; id <= 4; id++) {
        pgf_fault_conn *c = pgf_fault_conn_new(e, id);
        pgf_fault_ctx ctx = mkctx(id);
        pattern(e, c, PGF_PHASE_QUERY, &ctx, 8, got);
        CU_ASSERT_STRING_EQUAL(got, want[id - 1]);
        pgf_fault_conn_free(c);
    }
    /* counters are per connection: a new connection starts over */
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pattern(e, c, PGF_PHASE_QUERY, &ctx, 4, got);
    CU_ASSERT_STRING_EQUAL(got, "..x.");
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

static void decide_global_scope(void)
{
    pgf_fault_engine *e =
        engine_with("rules: [{name: g, phase: startup, action: close, nth: 3, scope: global}]", 1);
    pgf_fault_action a;
    int fired_on = 0;
    for (uint64_t id = 1; id <= 5; id++) {
        pgf_fault_conn *c = pgf_fault_conn_new(e, id);
        pgf_fault_ctx ctx = mkctx(id);
        if (pgf_fault_decide(e, c, PGF_PHASE_STARTUP, &ctx, &a)) {
            CU_ASSERT_EQUAL(fired_on, 0);
            fired_on = (int)id;
        }
        pgf_fault_conn_free(c);
    }
    CU_ASSERT_EQUAL(fired_on, 3);
    pgf_fault_engine_free(e);
}

static void decide_probability_window_and_first_match(void)
{
    pgf_fault_engine *e = engine_with("rules:\n"
                                      "  - {name: never, phase: query, action: close,"
                                      "     probability: 0}\n"
                                      "  - {name: win, phase: query, action: reset,"
                                      "     from_ms: 100, until_ms: 200}\n"
                                      "  - {name: half, phase: query, action: none,"
                                      "     probability: 0.5}\n"
                                      "  - {name: rest, phase: query, action: delay, ms: 1}\n",
                                      7);
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    int half = 0, rest = 0;
    for (int i = 0; i < 1000; i++) {
        ctx.elapsed_ns = (uint64_t)(i % 300) * 1000000u;
        CU_ASSERT_TRUE_FATAL(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
        CU_ASSERT_STRING_NOT_EQUAL(a.rule, "never");
        bool in_window = i % 300 >= 100 && i % 300 < 200;
        CU_ASSERT_EQUAL(strcmp(a.rule, "win") == 0, in_window);
        half += strcmp(a.rule, "half") == 0;
        rest += strcmp(a.rule, "rest") == 0;
    }
    /* 700 draws at p=0.5: far from 0 and from all of them (seeded, so exact each run) */
    CU_ASSERT(half > 280 && half < 420);
    CU_ASSERT_EQUAL(half + rest, 1000 - 300); /* 300 calls fall in the window */
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

static void decide_filters(void)
{
    pgf_fault_engine *e = engine_with(
        "rules:\n"
        "  - {name: u, phase: query, action: none, match: {user: bob}}\n"
        "  - {name: d, phase: query, action: none, match: {database: other}}\n"
        "  - {name: app, phase: query, action: none, match: {application_name: pgbench}}\n"
        "  - {name: addr, phase: query, action: none, match: {client_addr: 10.0.0.1}}\n"
        "  - {name: sub, phase: query, action: none, match: {query: 'FROM t'}}\n"
        "  - {name: re, phase: query, action: none, match: {query_regex: '^UPDATE +x'}}\n"
        "  - {name: range, phase: query, action: none, match: {conn: [10, 12]}}\n",
        1);
    struct {
        const char *user, *db, *app, *addr, *query;
        uint64_t conn;
        const char *want;
    } cases[] = {
        {"bob", "app", "psql", "127.0.0.1:1", "SELECT 1", 1, "u"},
        {"alice", "other", "psql", "127.0.0.1:1", "SELECT 1", 1, "d"},
        {"alice", "app", "pgbench", "127.0.0.1:1", "SELECT 1", 1, "app"},
        {"alice", "app", "psql", "10.0.0.1:5555", "SELECT 1", 1, "addr"},
        {"alice", "app", "psql", "10.0.0.12:5555", "SELECT 1", 1, NULL},
        {"alice", "app", "psql", "unix", "SELECT a FROM t", 1, "sub"},
        {"alice", "app", "psql", "unix", "UPDATE   x SET", 1, "re"},
        {"alice", "app", "psql", "unix", "update x SET", 1, NULL},
        {"alice", "app", "psql", "unix", NULL, 11, "range"},
        {"alice", "app", "psql", "unix", NULL, 13, NULL},
        {NULL, NULL, NULL, NULL, NULL, 1, NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        pgf_fault_conn *c = pgf_fault_conn_new(e, cases[i].conn);
        pgf_fault_ctx ctx = {.conn_id = cases[i].conn,
                             .user = cases[i].user,
                             .database = cases[i].db,
                             .application_name = cases[i].app,
                             .client_addr = cases[i].addr,
                             .query = cases[i].query};
        pgf_fault_action a;
        bool fired = pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a);
        CU_ASSERT_EQUAL(fired, cases[i].want != NULL);
        if (fired && cases[i].want != NULL)
            CU_ASSERT_STRING_EQUAL(a.rule, cases[i].want);
        pgf_fault_conn_free(c);
    }
    pgf_fault_engine_free(e);
}

static void decide_delay_jitter_in_range(void)
{
    pgf_fault_engine *e =
        engine_with("rules: [{name: j, phase: ready, action: delay, ms: 100, jitter_ms: 30}]", 3);
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    uint32_t lo = 1000, hi = 0;
    for (int i = 0; i < 500; i++) {
        CU_ASSERT_TRUE_FATAL(pgf_fault_decide(e, c, PGF_PHASE_READY, &ctx, &a));
        lo = a.ms < lo ? a.ms : lo;
        hi = a.ms > hi ? a.ms : hi;
    }
    CU_ASSERT(lo >= 70 && hi <= 130);
    CU_ASSERT(lo < 80 && hi > 120); /* it does vary */
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

static void decide_runtime_swap_and_reset(void)
{
    pgf_fault_engine *e = engine_with("rules: [{name: a, phase: query, action: none, nth: 3}]", 1);
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    char got[8];
    pattern(e, c, PGF_PHASE_QUERY, &ctx, 2, got);
    CU_ASSERT_STRING_EQUAL(got, "..");
    /* add a rule at run time: applies to this open connection, and rule a
     * keeps its count (unchanged rules carry their counters over) */
    pgf_fault_engine_set_rules(e, parse_ok("rules:\n"
                                           "  - {name: a, phase: query, action: none, nth: 3}\n"
                                           "  - {name: b, phase: ready, action: close}\n"));
    CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
    CU_ASSERT_STRING_EQUAL(a.rule, "a");
    CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_READY, &ctx, &a));
    CU_ASSERT_STRING_EQUAL(a.rule, "b");
    /* a changed rule starts over */
    pgf_fault_engine_set_rules(e, parse_ok("rules: [{name: a, phase: query, action: close, "
                                           "nth: 3}]"));
    pattern(e, c, PGF_PHASE_QUERY, &ctx, 4, got);
    CU_ASSERT_STRING_EQUAL(got, "..x.");
    CU_ASSERT_FALSE(pgf_fault_decide(e, c, PGF_PHASE_READY, &ctx, &a));
    /* reset: no rules; counters cleared when rules come back */
    pgf_fault_rules *keep = pgf_fault_engine_rules(e);
    pgf_fault_engine_reset(e);
    CU_ASSERT_PTR_NULL(pgf_fault_engine_rules(e));
    CU_ASSERT_FALSE(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
    pgf_fault_engine_set_rules(e, keep);
    pattern(e, c, PGF_PHASE_QUERY, &ctx, 4, got);
    CU_ASSERT_STRING_EQUAL(got, "..x.");
    CU_ASSERT_EQUAL(pgf_fault_engine_fired(e), 4);
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

/* ---- determinism, log, coverage ------------------------------------------ */

static const char *det_rules =
    "rules:\n"
    "  - {name: flaky, phase: query, action: error, preset: query-canceled, probability: 0.3}\n"
    "  - {name: slow, phase: ready, action: delay, ms: 50, jitter_ms: 40, probability: 0.5}\n"
    "  - {name: cut, phase: data-row, action: truncate, bytes: 2, probability: 0.1}\n";

/* A fixed "client script": 6 connections interleaved round-robin. */
static void run_script(pgf_fault_engine *e, uint64_t only_conn)
{
    pgf_fault_conn *c[7] = {0};
    for (uint64_t id = 1; id <= 6; id++)
        c[id] = pgf_fault_conn_new(e, id);
    pgf_fault_action a;
    for (int step = 0; step < 40; step++)
        for (uint64_t id = 1; id <= 6; id++) {
            if (only_conn && id != only_conn)
                continue;
            pgf_fault_ctx ctx = mkctx(id);
            ctx.elapsed_ns = (uint64_t)step * 1000000u;
            ctx.msg_type = 'Q';
            pgf_fault_decide(e, c[id], PGF_PHASE_QUERY, &ctx, &a);
            ctx.msg_type = 'D';
            pgf_fault_decide(e, c[id], PGF_PHASE_DATA_ROW, &ctx, &a);
            ctx.msg_type = 'Z';
            pgf_fault_decide(e, c[id], PGF_PHASE_READY, &ctx, &a);
        }
    for (uint64_t id = 1; id <= 6; id++)
        pgf_fault_conn_free(c[id]);
}

/* The log lines of one connection with seq and time removed. */
static char *conn_events(const char *lines, uint64_t conn)
{
    char *out = calloc(1, strlen(lines) + 1), *o = out;
    char tag[32];
    snprintf(tag, sizeof tag, "\"conn\":%llu,", (unsigned long long)conn);
    for (const char *l = lines; *l;) {
        const char *nl = strchr(l, '\n');
        size_t n = nl ? (size_t)(nl - l) : strlen(l);
        const char *p = strstr(l, tag);
        if (p != NULL && p < l + n) {
            memcpy(o, p, n - (size_t)(p - l));
            o += n - (size_t)(p - l);
            *o++ = '\n';
        }
        l += n + (nl ? 1 : 0);
    }
    return out;
}

static void determinism_same_seed_same_log(void)
{
    pgf_fault_engine *a = engine_with(det_rules, 42), *b = engine_with(det_rules, 42),
                     *c = engine_with(det_rules, 43);
    run_script(a, 0);
    run_script(b, 0);
    run_script(c, 0);
    char *la = pgf_fault_log_lines(a, 0), *lb = pgf_fault_log_lines(b, 0),
         *lc = pgf_fault_log_lines(c, 0);
    CU_ASSERT(strlen(la) > 1000); /* probability rules did fire */
    CU_ASSERT_STRING_EQUAL(la, lb);
    CU_ASSERT_STRING_NOT_EQUAL(la, lc);
    CU_ASSERT_NSTRING_EQUAL(la, "{\"seq\":1,\"elapsed_ns\":", 22);

    /* connection 4 decides the same alone as among the others */
    pgf_fault_engine *alone = engine_with(det_rules, 42);
    run_script(alone, 4);
    char *ls = pgf_fault_log_lines(alone, 0);
    char *x = conn_events(la, 4), *y = conn_events(ls, 4);
    CU_ASSERT(strlen(x) > 100);
    CU_ASSERT_STRING_EQUAL(x, y);
    free(x);
    free(y);
    free(ls);
    free(la);
    free(lb);
    free(lc);
    pgf_fault_engine_free(alone);
    pgf_fault_engine_free(a);
    pgf_fault_engine_free(b);
    pgf_fault_engine_free(c);
}

static void log_stream_and_since(void)
{
    char *dir = pgf_t_mkdtemp("faultlog");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char p1[512], p2[512], err[256];
    snprintf(p1, sizeof p1, "%s/a.jsonl", dir);
    snprintf(p2, sizeof p2, "%s/b.jsonl", dir);
    pgf_fault_engine *a = engine_with(det_rules, 9), *b = engine_with(det_rules, 9);
    CU_ASSERT_EQUAL(pgf_fault_log_open(a, p1, PGF_FAULT_LOG_NO_TIME, err, sizeof err), 0);
    CU_ASSERT_EQUAL(pgf_fault_log_open(b, p2, PGF_FAULT_LOG_NO_TIME, err, sizeof err), 0);
    run_script(a, 0);
    run_script(b, 0);
    size_t n = pgf_fault_log_count(a);
    CU_ASSERT(n > 10);
    pgf_fault_engine_free(a);
    pgf_fault_engine_free(b);
    char buf1[65536], buf2[65536];
    FILE *f1 = fopen(p1, "r"), *f2 = fopen(p2, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f2);
    size_t n1 = fread(buf1, 1, sizeof buf1 - 1, f1), n2 = fread(buf2, 1, sizeof buf2 - 1, f2);
    fclose(f1);
    fclose(f2);
    buf1[n1] = buf2[n2] = '\0';
    CU_ASSERT(n1 > 0);
    CU_ASSERT_EQUAL(n1, n2);
    CU_ASSERT_STRING_EQUAL(buf1, buf2);
    CU_ASSERT_PTR_NULL(strstr(buf1, "elapsed_ns"));
    size_t lines = 0;
    for (char *p = buf1; *p; p++)
        lines += *p == '\n';
    CU_ASSERT_EQUAL(lines, n);
    CU_ASSERT_NOT_EQUAL(
        pgf_fault_log_open(a = pgf_fault_engine_new(1), "/nonexistent/x/y", 0, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(err,
                           "/nonexistent/x/y: cannot open fault log: No such file or directory");
    pgf_fault_engine_free(a);

    /* since: only the later events; one event's exact bytes */
    a = engine_with("rules: [{name: r, phase: data-row, action: truncate, bytes: 3}]", 1);
    pgf_fault_conn *c = pgf_fault_conn_new(a, 17);
    pgf_fault_ctx ctx = mkctx(17);
    ctx.msg_type = 'D';
    ctx.elapsed_ns = 1500000;
    pgf_fault_action act;
    CU_ASSERT_TRUE(pgf_fault_decide(a, c, PGF_PHASE_DATA_ROW, &ctx, &act));
    CU_ASSERT_TRUE(pgf_fault_decide(a, c, PGF_PHASE_DATA_ROW, &ctx, &act));
    CU_ASSERT_EQUAL(act.event_seq, 2);
    char *s = pgf_fault_log_lines(a, 1);
    CU_ASSERT_STRING_EQUAL(s,
                           "{\"seq\":2,\"elapsed_ns\":1500000,\"client_addr\":\"127.0.0.1\","
                           "\"client_port\":40000,\"conn\":17,\"phase\":\"data-row\","
                           "\"rule\":\"r\",\"action\":\"truncate\",\"params\":{\"bytes\":3,"
                           "\"then\":\"close\"},\"msg_type\":\"D\",\"application_name\":\"psql\","
                           "\"user\":\"alice\",\"database\":\"app\"}\n");
    free(s);
    pgf_fault_log_set_limit(a, 2);
    CU_ASSERT_TRUE(pgf_fault_decide(a, c, PGF_PHASE_DATA_ROW, &ctx, &act));
    CU_ASSERT_EQUAL(pgf_fault_log_count(a), 2);
    s = pgf_fault_log_json(a, 5);
    CU_ASSERT_STRING_EQUAL(s, "{\"events\":[],\"dropped\":1}");
    free(s);
    /* the newest two are held (seq 2 and 3); the oldest gave way */
    s = pgf_fault_log_lines(a, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(strncmp(s, "{\"seq\":2,", 7), 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(s, "\n{\"seq\":3,"));
    free(s);
    s = pgf_fault_log_lines(a, 2);
    CU_ASSERT_EQUAL(strncmp(s, "{\"seq\":3,", 7), 0);
    free(s);
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(a);
    pgf_t_rmtree(dir);
    free(dir);
}

static void coverage_reports_fired_and_never(void)
{
    pgf_fault_engine *e = engine_with("rules:\n"
                                      "  - {name: q, phase: query, action: close}\n"
                                      "  - {name: idle, phase: idle, action: stall}\n"
                                      "  - {name: d, phase: data-row, action: none}\n",
                                      1);
    pgf_fault_conn *c = pgf_fault_conn_new(e, 1);
    pgf_fault_ctx ctx = mkctx(1);
    pgf_fault_action a;
    for (int i = 0; i < 3; i++)
        CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_QUERY, &ctx, &a));
    CU_ASSERT_TRUE(pgf_fault_decide(e, c, PGF_PHASE_DATA_ROW, &ctx, &a));
    pgf_fault_coverage cov;
    CU_ASSERT_EQUAL_FATAL(pgf_fault_coverage_get(e, &cov), 0);
    CU_ASSERT_EQUAL(cov.total, 4);
    CU_ASSERT_EQUAL(cov.fired[PGF_PHASE_QUERY][PGF_ACTION_CLOSE], 3);
    CU_ASSERT_EQUAL(cov.fired[PGF_PHASE_DATA_ROW][PGF_ACTION_NONE], 1);
    CU_ASSERT_EQUAL(cov.fired[PGF_PHASE_IDLE][PGF_ACTION_STALL], 0);
    CU_ASSERT_EQUAL_FATAL(cov.nrules, 3);
    CU_ASSERT_STRING_EQUAL(cov.rules[1].name, "idle");
    CU_ASSERT_EQUAL(cov.rules[1].fired, 0);
    CU_ASSERT_EQUAL(cov.rules[0].fired, 3);
    pgf_fault_coverage_clear(&cov);
    char *s = pgf_fault_coverage_json(e);
    CU_ASSERT_STRING_EQUAL(
        s, "{\"faults_fired\":4,\"fired\":[{\"phase\":\"query\",\"action\":\"close\",\"count\":3},"
           "{\"phase\":\"data-row\",\"action\":\"none\",\"count\":1}],\"rules\":[{\"name\":\"q\","
           "\"phase\":\"query\",\"action\":\"close\",\"fired\":3},{\"name\":\"idle\",\"phase\":"
           "\"idle\",\"action\":\"stall\",\"fired\":0},{\"name\":\"d\",\"phase\":\"data-row\","
           "\"action\":\"none\",\"fired\":1}],\"never_fired\":[\"idle\"]}");
    free(s);
    pgf_fault_conn_free(c);
    pgf_fault_engine_free(e);
}

static void examples_file_covers_every_action(void)
{
    char err[1024];
    pgf_fault_rules *r = pgf_fault_rules_parse_file(
        PGF_TEST_DATA_DIR "/../../scenarios/faults-examples.yaml", err, sizeof err);
    if (r == NULL)
        fprintf(stderr, "\n%s\n", err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_fault_engine *e = pgf_fault_engine_new(1);
    pgf_fault_engine_set_rules(e, r);
    pgf_fault_coverage cov;
    CU_ASSERT_EQUAL_FATAL(pgf_fault_coverage_get(e, &cov), 0);
    bool seen[PGF_ACTION_COUNT] = {0};
    for (size_t i = 0; i < cov.nrules; i++)
        seen[cov.rules[i].action] = true;
    for (int k = 0; k < PGF_ACTION_COUNT; k++) {
        if (!seen[k])
            fprintf(stderr, "\nno example for action %s\n", pgf_action_name((pgf_action_kind)k));
        CU_ASSERT_TRUE(seen[k]);
    }
    pgf_fault_coverage_clear(&cov);
    pgf_fault_engine_free(e);
}

static void names_roundtrip(void)
{
    for (int p = 0; p < PGF_PHASE_COUNT; p++)
        CU_ASSERT_EQUAL(pgf_phase_parse(pgf_phase_name((pgf_phase)p)), p);
    for (int a = 0; a < PGF_ACTION_COUNT; a++)
        CU_ASSERT_EQUAL(pgf_action_parse(pgf_action_name((pgf_action_kind)a)), a);
    CU_ASSERT_EQUAL(pgf_phase_parse("nope"), -1);
    CU_ASSERT_EQUAL(pgf_action_parse(NULL), -1);
    CU_ASSERT_STRING_EQUAL(pgf_phase_name(PGF_PHASE_COUNT), "?");
    pgf_fault_engine_free(NULL);
    pgf_fault_conn_free(NULL);
    pgf_fault_rules_free(NULL);
}

static const pgf_test parse_tests[] = {
    {"names_roundtrip", names_roundtrip},
    {"parse_every_action", parse_every_action},
    {"parse_presets", parse_presets},
    {"parse_json_same_schema", parse_json_same_schema},
    {"parse_errors_name_the_place", parse_errors_name_the_place},
    {"parse_file_errors_name_the_file", parse_file_errors_name_the_file},
    {"examples_file_covers_every_action", examples_file_covers_every_action},
    PGF_TESTS_END,
};

static const pgf_test engine_tests[] = {
    {"decide_nth_every_after_times", decide_nth_every_after_times},
    {"decide_global_scope", decide_global_scope},
    {"decide_probability_window_and_first_match", decide_probability_window_and_first_match},
    {"decide_filters", decide_filters},
    {"decide_delay_jitter_in_range", decide_delay_jitter_in_range},
    {"decide_runtime_swap_and_reset", decide_runtime_swap_and_reset},
    {"determinism_same_seed_same_log", determinism_same_seed_same_log},
    {"log_stream_and_since", log_stream_and_since},
    {"coverage_reports_fired_and_never", coverage_reports_fired_and_never},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_fault[] = {
    {"fault_parse", NULL, NULL, parse_tests},
    {"fault_engine", NULL, NULL, engine_tests},
    PGF_SUITES_END,
};
