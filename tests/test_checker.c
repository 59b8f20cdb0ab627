/* test_checker.c - history format, spec loader and checker.
 *
 * Fixtures: tests/data/spec_session.json (the docs/spec-format.md machine with
 * NEW..FAILED and open/check/cancel/close) and tests/data/histories/
 * (valid_basic.jsonl and one v_<kind>.jsonl per violation kind). Malformed
 * input is generated into a temp dir so each case names its line.
 */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/check.h"
#include "pgfault/history.h"
#include "pgfault/machine.h"
#include "pgf_test.h"
#include "pgfault/rng.h"
#include "pgfault/spec.h"
#include "testutil.h"

#define SPEC_PATH PGF_TEST_DATA_DIR "/spec_session.json"
#define HIST_DIR  PGF_TEST_DATA_DIR "/histories/"

static pgf_spec *load_spec(void)
{
    char err[512] = "";
    pgf_spec *s = NULL;
    int rc = pgf_spec_load(SPEC_PATH, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "spec: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return s;
}

/* ---- spec -------------------------------------------------------------- */

static void spec_loads_contract_fixture(void)
{
    pgf_spec *s = load_spec();
    CU_ASSERT_EQUAL(pgf_spec_state_count(s), 7);
    CU_ASSERT_EQUAL(pgf_spec_op_count(s), 4);
    int NEW = pgf_spec_state_find(s, "NEW"), READY = pgf_spec_state_find(s, "READY"),
        BUSY = pgf_spec_state_find(s, "BUSY"), CLOSING = pgf_spec_state_find(s, "CLOSING"),
        CLOSED = pgf_spec_state_find(s, "CLOSED"),
        CONNECTING = pgf_spec_state_find(s, "CONNECTING");
    int open = pgf_spec_op_find(s, "open"), check = pgf_spec_op_find(s, "check"),
        close = pgf_spec_op_find(s, "close");
    CU_ASSERT(NEW >= 0 && READY >= 0 && BUSY >= 0 && CLOSED >= 0 && open >= 0 && close >= 0);
    CU_ASSERT_EQUAL(pgf_spec_initial(s), NEW);
    CU_ASSERT_EQUAL(pgf_spec_state_find(s, "NOPE"), -1);
    CU_ASSERT(pgf_spec_state_terminal(s, CLOSED));
    CU_ASSERT_FALSE(pgf_spec_state_terminal(s, READY));
    CU_ASSERT(pgf_spec_op_may_start(s, open, NEW));
    CU_ASSERT_FALSE(pgf_spec_op_may_start(s, open, READY));
    /* "*" = every non-terminal state, never a terminal one */
    CU_ASSERT(pgf_spec_op_may_start(s, close, BUSY));
    CU_ASSERT(pgf_spec_op_may_start(s, close, NEW));
    CU_ASSERT_FALSE(pgf_spec_op_may_start(s, close, CLOSED));
    CU_ASSERT(pgf_spec_op_preempts(s, close));
    CU_ASSERT_FALSE(pgf_spec_op_preempts(s, check));
    CU_ASSERT(pgf_spec_op_ends_in(s, open, READY));
    CU_ASSERT_FALSE(pgf_spec_op_ends_in(s, open, CONNECTING));
    CU_ASSERT(pgf_spec_op_passes(s, close, CLOSING));
    CU_ASSERT(pgf_spec_transition_ok(s, open, NEW, CONNECTING));
    CU_ASSERT_FALSE(pgf_spec_transition_ok(s, open, NEW, READY));
    CU_ASSERT_FALSE(pgf_spec_transition_ok(s, check, NEW, CONNECTING)); /* owned by open */
    CU_ASSERT(pgf_spec_transition_ok(s, close, BUSY, CLOSING));         /* from "*" */
    CU_ASSERT_FALSE(pgf_spec_transition_ok(s, close, CLOSED, CLOSING));
    CU_ASSERT_EQUAL(strlen(pgf_spec_digest(s)), 64u);
    pgf_spec_free(s);
    pgf_spec_free(NULL);
}

static const char SPEC_HEAD[] = "{\"format\":\"pgfault-spec\",\"version\":1,\"initial\":\"NEW\","
                                "\"states\":[{\"name\":\"NEW\",\"terminal\":false},"
                                "{\"name\":\"UP\",\"terminal\":false},"
                                "{\"name\":\"CLOSED\",\"terminal\":true}],";

static void spec_rejects_bad_specs_clearly(void)
{
    static const struct {
        const char *tail; /* appended to SPEC_HEAD, or a whole text when head == 0 */
        int head;
        const char *want;
    } cases[] = {
        {"\"operations\":[{\"name\":\"open\",\"from\":[],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false}],\"transitions\":[]}",
         1, "operations[0] (\"open\"): \"from\" is empty"},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false}],\"transitions\":[{\"from\":\"NEW\",\"to\":\"DOWN\",\"op\":\"open\"}]"
         "}",
         1, "transitions[0] (NEW -> DOWN): unknown state \"DOWN\""},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false}],\"transitions\":[{\"from\":\"NEW\",\"to\":\"UP\",\"op\":\"nope\"}]}",
         1, "unknown operation \"nope\""},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false}],\"transitions\":[{\"from\":\"CLOSED\",\"to\":\"UP\",\"op\":\"open\"}"
         "]}",
         1, "leaves terminal state \"CLOSED\""},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"SIDEWAYS\"],\"during\":[]"
         ","
         "\"preempts\":false}],\"transitions\":[]}",
         1, "\"to\" names unknown state \"SIDEWAYS\""},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":\"yes\"}],\"transitions\":[]}",
         1, "\"preempts\" must be a boolean"},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false},{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],"
         "\"during\":[],\"preempts\":false}],\"transitions\":[]}",
         1, "duplicate operation \"open\""},
        {"\"operations\":[{\"name\":\"open\",\"from\":[\"CLOSED\"],\"to\":[\"UP\"],\"during\":[],"
         "\"preempts\":false}],\"transitions\":[]}",
         1, "includes a terminal state"},
        {"{\"format\":\"pgfault-spec\",\"version\":1,\n\"initial\":\"NEW\",,}", 0, "t.json:2:"},
        {"{\"format\":\"other\",\"version\":1}", 0, "\"format\" must be \"pgfault-spec\""},
        {"{\"format\":\"pgfault-spec\",\"version\":2}", 0, "unsupported spec \"version\""},
        {"{\"format\":\"pgfault-spec\",\"version\":1,\"initial\":\"X\",\"states\":[{\"name\":\"X\","
         "\"terminal\":false}]}",
         0, "no terminal state"},
        {"{\"format\":\"pgfault-spec\",\"version\":1,\"initial\":\"Z\",\"states\":[{\"name\":\"Z\","
         "\"terminal\":true}]}",
         0, "\"initial\" state \"Z\" is terminal"},
        {"{\"format\":\"pgfault-spec\",\"version\":1,\"initial\":\"A\",\"states\":[{\"name\":\"A\","
         "\"terminal\":false},{\"name\":\"A\",\"terminal\":true}]}",
         0, "duplicate state \"A\""},
        {"[1,2,3]", 0, "must be a JSON object"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[2048];
        snprintf(text, sizeof text, "%s%s", cases[i].head ? SPEC_HEAD : "", cases[i].tail);
        char err[512] = "";
        pgf_spec *s = NULL;
        int rc = pgf_spec_parse(text, strlen(text), "t.json", &s, err, sizeof err);
        CU_ASSERT(rc < 0);
        CU_ASSERT_PTR_NULL(s);
        if (strstr(err, cases[i].want) == NULL || strncmp(err, "t.json", 6) != 0) {
            fprintf(stderr, "case %zu: got \"%s\", want \"%s\"\n", i, err, cases[i].want);
            CU_FAIL("spec error message");
        }
    }
    /* the valid head with a minimal tail loads */
    char ok[2048];
    snprintf(ok, sizeof ok, "%s%s", SPEC_HEAD,
             "\"operations\":[{\"name\":\"open\",\"from\":[\"NEW\"],\"to\":[\"UP\"],"
             "\"during\":[],\"preempts\":false,\"extra\":1}],"
             "\"transitions\":[{\"from\":\"NEW\",\"to\":\"UP\",\"op\":\"open\"}],\"more\":true}");
    char err[256];
    pgf_spec *s = NULL;
    CU_ASSERT_EQUAL(pgf_spec_parse(ok, strlen(ok), "t.json", &s, err, sizeof err), 0);
    pgf_spec_free(s);
    /* the one file reader's answer (file.h), as for scenario and rule files */
    CU_ASSERT_EQUAL(pgf_spec_load("/nonexistent/spec.json", &s, err, sizeof err), PGF_ENOTFOUND);
    CU_ASSERT_STRING_EQUAL(err, "/nonexistent/spec.json: cannot open: No such file or directory");
}

/* ---- checking the fixtures --------------------------------------------- */

static pgf_check_result *check_file(const char *path, pgf_history **hout, unsigned wmax)
{
    char err[512] = "";
    pgf_history *h = NULL;
    int rc = pgf_history_load(path, &h, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    pgf_spec *s = load_spec();
    size_t n;
    const pgf_rec *recs = pgf_history_records(h, &n);
    pgf_check_opts o = {wmax, NULL};
    pgf_check_deadlines dl; /* a fixture's meta may declare deadlines */
    const pgf_hist_meta *meta = pgf_history_meta(h);
    if (meta->deadlines_json != NULL) {
        CU_ASSERT_EQUAL_FATAL(pgf_check_deadlines_parse(meta->deadlines_json, &dl, err, sizeof err),
                              0);
        o.deadlines = &dl;
    }
    pgf_check_result *res = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_check(s, recs, n, &o, &res), 0);
    pgf_spec_free(s);
    *hout = h;
    return res;
}

/* The pinned spec (docs/spec.json, compiled into the checker) is the
 * compiled machine.h table; a changed table is named row by row. */

static void spec_drift_names_rows(void)
{
    char err[256], msg[1024];
    pgf_spec *pinned = NULL, *compiled = NULL, *grown = NULL;
    const char *ctext = pgf_session_spec_json_text();
    CU_ASSERT_PTR_NOT_NULL_FATAL(ctext);
    CU_ASSERT_EQUAL_FATAL(pgf_spec_parse(pgf_spec_pinned_json(), strlen(pgf_spec_pinned_json()),
                                         "docs/spec.json", &pinned, err, sizeof err),
                          0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_spec_parse(ctext, strlen(ctext), "compiled", &compiled, err, sizeof err), 0);
    int nd = pgf_spec_diff(pinned, compiled, msg, sizeof msg);
    if (nd != 0)
        fprintf(stderr,
                "docs/spec.json is stale (pgfault spec --format json > docs/spec.json, "
                "then review): %s\n",
                msg);
    CU_ASSERT_EQUAL(nd, 0);
    CU_ASSERT_STRING_EQUAL(pgf_spec_digest(pinned), pgf_spec_digest(compiled));
    /* a machine.h that grew a row (cancel straight from READY to CLOSED) */
    const char *needle = "\"transitions\": [";
    const char *at = strstr(ctext, needle);
    CU_ASSERT_PTR_NOT_NULL_FATAL(at);
    size_t cut = (size_t)(at - ctext) + strlen(needle);
    char *text = malloc(strlen(ctext) + 128);
    CU_ASSERT_PTR_NOT_NULL_FATAL(text);
    snprintf(text, strlen(ctext) + 128,
             "%.*s{\"from\": \"READY\", \"to\": \"CLOSED\", "
             "\"op\": \"cancel\"}, %s",
             (int)cut, ctext, ctext + cut);
    CU_ASSERT_EQUAL_FATAL(pgf_spec_parse(text, strlen(text), "grown", &grown, err, sizeof err), 0);
    CU_ASSERT_EQUAL(pgf_spec_diff(pinned, grown, msg, sizeof msg), 1);
    CU_ASSERT_STRING_EQUAL(msg, "extra transition READY -> CLOSED by cancel");
    CU_ASSERT_EQUAL(pgf_spec_diff(grown, pinned, msg, sizeof msg), 1);
    CU_ASSERT_STRING_EQUAL(msg, "missing transition READY -> CLOSED by cancel");
    free(text);
    pgf_spec_free(grown);
    pgf_spec_free(compiled);
    pgf_spec_free(pinned);
}

static void valid_history_has_no_violations(void)
{
    pgf_history *h;
    pgf_check_result *r = check_file(HIST_DIR "valid_basic.jsonl", &h, 0);
    for (size_t i = 0; i < r->nfirst; i++)
        fprintf(stderr, "unexpected: %s: %s\n", pgf_violation_name(r->first[i].kind),
                r->first[i].message);
    CU_ASSERT_EQUAL(r->total, 0u);
    CU_ASSERT_EQUAL(r->nfirst, 0u);
    CU_ASSERT_EQUAL(r->sessions, 9u);
    CU_ASSERT_EQUAL(r->ops, 26u);
    const pgf_hist_meta *m = pgf_history_meta(h);
    CU_ASSERT(m->has_seed && m->seed == 42);
    CU_ASSERT_STRING_EQUAL(m->mode, "sim");
    pgf_check_result_free(r);
    pgf_check_result_free(NULL);
    pgf_history_free(h);
}

static void every_violation_kind_is_caught_with_witness(void)
{
    static const struct {
        pgf_violation_kind kind;
        int64_t session;  /* PGF_REC_NONE: server-wide */
        unsigned line;    /* line of the violating record, 0 = end of history */
        unsigned witness; /* expected witness size */
    } cases[] = {
        {PGF_VIOL_ILLEGAL_START, 1, 3, 2},
        {PGF_VIOL_CONCURRENT_TRANSITION, 1, 9, 8},
        {PGF_VIOL_PREEMPTED_NOT_CANCELED, 1, 8, 7},
        {PGF_VIOL_BAD_END_STATE, 1, 4, 3},
        {PGF_VIOL_ILLEGAL_TRANSITION, 1, 3, 2},
        {PGF_VIOL_TRANSITION_FROM_TERMINAL, 1, 10, 9},
        {PGF_VIOL_FROM_MISMATCH, 1, 4, 3},
        {PGF_VIOL_ORPHAN_TRANSITION, 1, 6, 5},
        {PGF_VIOL_NOT_CLOSED, 1, 0, 4},
        {PGF_VIOL_MISSING_COMPLETION, 1, 0, 6},
        {PGF_VIOL_LATE_COMPLETION, 1, 6, 5},
        {PGF_VIOL_DOUBLE_COMPLETION, 1, 6, 5},
        {PGF_VIOL_UNMATCHED_COMPLETION, 1, 6, 5},
        {PGF_VIOL_DUPLICATE_OP_ID, 1, 6, 5},
        {PGF_VIOL_UNDECLARED_OP, 1, 6, 5},
        {PGF_VIOL_USE_AFTER_CLOSE, 1, 11, 10},
        {PGF_VIOL_CONNECTION_LEAK, PGF_REC_NONE, 10, 1},
        {PGF_VIOL_SERVER_COUNT_MISMATCH, PGF_REC_NONE, 10, 1},
        {PGF_VIOL_MISCLASSIFIED_HEALTH, 1, 6, 5},
        {PGF_VIOL_DEADLINE_EXCEEDED, 1, 9, 8},
    };
    /* one fixture per kind: the table covers them all but spec_drift, which
     * compares two specs, not a history (spec_drift_names_rows below) */
    CU_ASSERT_EQUAL(sizeof cases / sizeof cases[0], (size_t)PGF_VIOL_COUNT - 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[512];
        snprintf(path, sizeof path, HIST_DIR "v_%s.jsonl", pgf_violation_name(cases[i].kind));
        pgf_history *h;
        pgf_check_result *r = check_file(path, &h, 0);
        size_t n;
        const pgf_rec *recs = pgf_history_records(h, &n);
        bool good = r->total == 1 && r->counts[cases[i].kind] == 1 && r->nfirst == 1;
        if (good) {
            const pgf_violation *v = &r->first[0];
            good = v->kind == cases[i].kind && v->session == cases[i].session &&
                   v->nwitness == cases[i].witness && v->message[0] != '\0';
            if (cases[i].line == 0)
                good = good && v->at == PGF_CHECK_NO_RECORD;
            else
                good = good && v->at != PGF_CHECK_NO_RECORD && recs[v->at].line == cases[i].line &&
                       v->witness[v->nwitness - 1] == v->at;
            /* the witness is in history order and (but for a linked fault)
             * belongs to the violating session */
            for (size_t w = 0; good && w < v->nwitness; w++) {
                good = v->witness[w] < n && (w == 0 || v->witness[w - 1] < v->witness[w]);
                if (v->session != PGF_REC_NONE && recs[v->witness[w]].type != PGF_REC_FAULT)
                    good = good && recs[v->witness[w]].session == v->session;
            }
            if (cases[i].kind == PGF_VIOL_MISCLASSIFIED_HEALTH) {
                bool has_fault = false;
                for (size_t w = 0; w < v->nwitness; w++)
                    has_fault |= recs[v->witness[w]].type == PGF_REC_FAULT;
                good = good && has_fault;
            }
        }
        if (!good) {
            fprintf(stderr, "%s: total %llu, first %s at %zu (%zu witness): %s\n", path,
                    (unsigned long long)r->total,
                    r->nfirst ? pgf_violation_name(r->first[0].kind) : "-",
                    r->nfirst ? r->first[0].at : 0, r->nfirst ? r->first[0].nwitness : 0,
                    r->nfirst ? r->first[0].message : "");
            CU_FAIL("violation fixture");
        }
        pgf_check_result_free(r);
        pgf_history_free(h);
    }
}

static void witness_is_bounded(void)
{
    pgf_history *h;
    pgf_check_result *r = check_file(HIST_DIR "v_use_after_close.jsonl", &h, 3);
    CU_ASSERT_EQUAL_FATAL(r->nfirst, 1u);
    CU_ASSERT_EQUAL(r->first[0].nwitness, 3u);
    size_t n;
    const pgf_rec *recs = pgf_history_records(h, &n);
    /* the last records before (and including) the violation */
    CU_ASSERT_EQUAL(recs[r->first[0].witness[2]].line, 11u);
    CU_ASSERT_EQUAL(recs[r->first[0].witness[0]].line, 9u);
    pgf_check_result_free(r);
    pgf_history_free(h);
}

/* ---- in-memory histories ------------------------------------------------ */

typedef struct mem {
    pgf_rec r[64];
    size_t n;
} mem;

static pgf_rec *add(mem *m, pgf_rec_type t, int64_t session, const char *op, int64_t op_id)
{
    pgf_rec *r = &m->r[m->n++];
    pgf_rec_init(r, t);
    r->seq = m->n;
    r->time_ns = m->n * 10;
    r->session = session;
    r->op = op;
    r->op_id = op_id;
    return r;
}

static pgf_rec *tr(mem *m, int64_t s, const char *op, int64_t id, const char *from, const char *to)
{
    pgf_rec *r = add(m, PGF_REC_TRANSITION, s, op, id);
    r->from = from;
    r->to = to;
    return r;
}

static pgf_check_result *check_mem(const mem *m)
{
    pgf_spec *s = load_spec();
    pgf_check_result *res = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_check(s, m->r, m->n, NULL, &res), 0);
    pgf_spec_free(s);
    return res;
}

static void health_classification_follows_the_fault(void)
{
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("auth-fail", NULL), "auth_failed");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("error", "28P01"), "auth_failed");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("error", "53300"), "too_many_connections");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("error", "57P01"), "shutting_down");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("error", "57P03"), "shutting_down");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("close", NULL), "connection_lost");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("reset", NULL), "connection_lost");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("truncate", NULL), "connection_lost");
    CU_ASSERT_STRING_EQUAL(pgf_check_predict_reason("stall", NULL), "timeout");
    CU_ASSERT_PTR_NULL(pgf_check_predict_reason("delay", NULL));
    CU_ASSERT_PTR_NULL(pgf_check_predict_reason("error", "42601"));
    CU_ASSERT_PTR_NULL(pgf_check_predict_reason("error", NULL));
    CU_ASSERT_PTR_NULL(pgf_check_predict_reason(NULL, NULL));

    /* A reset on conn 7 then a check classified as a timeout: caught, and
     * linked by conn although the fault names no session. A second check
     * on the same conn, with no new fault, is not judged by the old one. */
    mem m = {.n = 0};
    add(&m, PGF_REC_INVOKE, 1, "open", 1);
    tr(&m, 1, "open", 1, "NEW", "CONNECTING");
    tr(&m, 1, "open", 1, "CONNECTING", "READY");
    add(&m, PGF_REC_OK, 1, "open", 1);
    pgf_rec *f = add(&m, PGF_REC_FAULT, PGF_REC_NONE, NULL, PGF_REC_NONE);
    f->conn = 7;
    f->action = "reset";
    pgf_rec *hr = add(&m, PGF_REC_HEALTH, 1, NULL, PGF_REC_NONE);
    hr->conn = 7;
    hr->reason = "timeout";
    hr = add(&m, PGF_REC_HEALTH, 1, NULL, PGF_REC_NONE);
    hr->conn = 7;
    hr->reason = "server_error";
    /* a fault's own `reason` overrides the table */
    f = add(&m, PGF_REC_FAULT, 1, NULL, PGF_REC_NONE);
    f->action = "delay";
    f->reason = "timeout";
    hr = add(&m, PGF_REC_HEALTH, 1, NULL, PGF_REC_NONE);
    hr->reason = "connection_lost";
    /* ... and "" says the fault predicts nothing */
    f = add(&m, PGF_REC_FAULT, 1, NULL, PGF_REC_NONE);
    f->action = "stall";
    f->reason = "";
    hr = add(&m, PGF_REC_HEALTH, 1, NULL, PGF_REC_NONE);
    hr->reason = "server_error";
    add(&m, PGF_REC_INVOKE, 1, "close", 2);
    tr(&m, 1, "close", 2, "READY", "CLOSING");
    tr(&m, 1, "close", 2, "CLOSING", "CLOSED");
    add(&m, PGF_REC_OK, 1, "close", 2);
    pgf_check_result *r = check_mem(&m);
    CU_ASSERT_EQUAL(r->total, 2u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_MISCLASSIFIED_HEALTH], 2u);
    CU_ASSERT_EQUAL_FATAL(r->nfirst, 1u);
    CU_ASSERT_EQUAL(r->first[0].at, 5u);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->first[0].message, "predicts \"connection_lost\""));
    /* the conn-only fault is pulled into the witness */
    bool has_fault = false;
    for (size_t i = 0; i < r->first[0].nwitness; i++)
        has_fault |= r->first[0].witness[i] == 4;
    CU_ASSERT(has_fault);
    pgf_check_result_free(r);
}

static void spontaneous_and_preempting_transitions(void)
{
    /* The incident in its raw form: a transition with no op_id made by a
     * non-preempting op (check) while open is in progress. */
    mem m = {.n = 0};
    add(&m, PGF_REC_INVOKE, 1, "open", 1);
    tr(&m, 1, "open", 1, "NEW", "CONNECTING");
    tr(&m, 1, "open", PGF_REC_NONE, "CONNECTING", "READY"); /* attributed by name: fine */
    tr(&m, 1, "check", PGF_REC_NONE, "READY", "BUSY");      /* nobody ran check: incident */
    pgf_check_result *r = check_mem(&m);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_CONCURRENT_TRANSITION], 1u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_MISSING_COMPLETION], 1u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_NOT_CLOSED], 1u);
    CU_ASSERT_EQUAL(r->total, 3u);
    CU_ASSERT_EQUAL_FATAL(r->nfirst, 1u); /* one session, one first violation */
    CU_ASSERT_EQUAL(r->first[0].kind, PGF_VIOL_CONCURRENT_TRANSITION);
    CU_ASSERT_PTR_NOT_NULL(strstr(r->first[0].message, "open#1"));
    pgf_check_result_free(r);

    /* A preempted op that keeps changing state is caught too. */
    m.n = 0;
    add(&m, PGF_REC_INVOKE, 2, "check", 1); /* illegal start in NEW ... */
    pgf_rec *f = add(&m, PGF_REC_FAIL, 2, "check", 1);
    f->error = "PGF_EILLEGAL_STATE"; /* ... refused properly */
    add(&m, PGF_REC_INVOKE, 2, "open", 2);
    tr(&m, 2, "open", 2, "NEW", "CONNECTING");
    add(&m, PGF_REC_INVOKE, 2, "close", 3);
    tr(&m, 2, "close", 3, "CONNECTING", "CLOSING");
    tr(&m, 2, "close", 3, "CLOSING", "CLOSING"); /* listed ("*" -> CLOSING) */
    tr(&m, 2, "close", 3, "CLOSING", "CLOSED");
    add(&m, PGF_REC_OK, 2, "close", 3);
    f = add(&m, PGF_REC_FAIL, 2, "open", 2);
    f->error = "PGF_ECANCELED";
    r = check_mem(&m);
    CU_ASSERT_EQUAL(r->total, 0u);
    pgf_check_result_free(r);
    m.n = 0;
    add(&m, PGF_REC_INVOKE, 3, "open", 1);
    tr(&m, 3, "open", 1, "NEW", "CONNECTING");
    add(&m, PGF_REC_INVOKE, 3, "close", 2);
    tr(&m, 3, "close", 2, "CONNECTING", "CLOSING");
    tr(&m, 3, "close", 2, "CLOSING", "CLOSED");
    add(&m, PGF_REC_OK, 3, "close", 2);
    f = add(&m, PGF_REC_FAIL, 3, "open", 1);
    f->error = "PGF_ECANCELED";
    add(&m, PGF_REC_INFO, 3, "open", 1); /* a second completion */
    r = check_mem(&m);
    CU_ASSERT_EQUAL(r->total, 1u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_DOUBLE_COMPLETION], 1u);
    pgf_check_result_free(r);
}

/* ---- reader: malformed input -------------------------------------------- */

static char *tmpdir;

static int checker_setup(void)
{
    tmpdir = pgf_t_mkdtemp("checker");
    return tmpdir == NULL;
}

static int checker_teardown(void)
{
    if (tmpdir != NULL)
        pgf_t_rmtree(tmpdir);
    free(tmpdir);
    tmpdir = NULL;
    return 0;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(fwrite(data, 1, len, f), len);
    fclose(f);
}

#define META "{\"type\":\"meta\",\"format\":\"pgfault-history\",\"version\":1}\n"
#define REC1 \
    "{\"seq\":1,\"time_ns\":5,\"type\":\"invoke\",\"session\":1,\"op\":\"open\",\"op_id\":1}\n"

static void malformed_lines_give_file_line(void)
{
    static const struct {
        const char *text;
        unsigned line;
        const char *want;
    } cases[] = {
        {"", 1, "empty history"},
        {"\n\n", 2, "empty history"},
        {REC1, 1, "first line must be a meta record"},
        {"{\"type\":\"meta\",\"format\":\"pgfault-history\",\"version\":2}\n", 1,
         "unsupported history version 2"},
        {"{\"type\":\"meta\",\"format\":\"jepsen\",\"version\":1}\n", 1, "\"format\" must be"},
        {META REC1 "{\"seq\":2,\"time_ns\":5,\"type\":\"ok\",\"session\":1,\"op_id\":1\n", 3,
         "invalid JSON"},
        {META REC1 "[1,2]\n", 3, "must be a JSON object"},
        {META REC1 "{\"seq\":2,\"time_ns\":5,\"type\":\"wat\"}\n", 3,
         "unknown record type \"wat\""},
        {META REC1 "{\"time_ns\":5,\"type\":\"ok\",\"session\":1,\"op_id\":1}\n", 3,
         "without \"seq\""},
        {META REC1 "{\"seq\":1,\"time_ns\":5,\"type\":\"ok\",\"session\":1,\"op_id\":1}\n", 3,
         "seq 1 is not greater than the previous seq 1"},
        {META REC1 "{\"seq\":2,\"time_ns\":5,\"type\":\"ok\",\"session\":-4,\"op_id\":1}\n", 3,
         "'session' must be a non-negative integer"},
        {META REC1 "{\"seq\":2,\"time_ns\":5,\"type\":\"ok\",\"session\":\"1\",\"op_id\":1}\n", 3,
         "'session' must be a non-negative integer"},
        {META REC1 "\n\n{\"seq\":2,\"time_ns\":5,\"type\":\"fail\",\"session\":1,\"op_id\":1}\n", 5,
         "fail record without required field 'error'"},
        {META
         "{\"seq\":1,\"time_ns\":5,\"type\":\"transition\",\"session\":1,\"from\":\"A\",\"op\":"
         "\"x\"}\n",
         2, "without required field 'to'"},
        {META "{\"seq\":1,\"time_ns\":5,\"type\":\"invoke\",\"session\":1,\"op\":7,\"op_id\":1}\n",
         2, "'op' must be a string"},
        {META "{\"seq\":1,\"time_ns\":5,\"type\":\"server\"}\n", 2, "server record without any"},
        {META "{\"seq\":1,\"time_ns\":5,\"type\":\"server\",\"conns_accepted\":3}\n", 2,
         "go together"},
        {META META, 2, "a second meta record"},
        {META "{\"seq\":1,\"seq\":2,\"time_ns\":5,\"type\":\"server\",\"conns_open\":0}\n", 2,
         "duplicate"},
        {META "\x01\x02\xff\xfe garbage\n", 2, "invalid JSON"},
        {META
         "{\"seq\":1,\"time_ns\":5,\"type\":\"health\",\"session\":1,\"reason\":\"a\\u0000b\"}\n",
         2, "invalid JSON"},
    };
    char path[600];
    snprintf(path, sizeof path, "%s/bad.jsonl", tmpdir);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(path, cases[i].text, strlen(cases[i].text));
        char err[512] = "", want_prefix[700];
        pgf_history *h = NULL;
        int rc = pgf_history_load(path, &h, err, sizeof err);
        snprintf(want_prefix, sizeof want_prefix, "%s:%u:", path, cases[i].line);
        if (rc >= 0 || h != NULL || strncmp(err, want_prefix, strlen(want_prefix)) != 0 ||
            strstr(err, cases[i].want) == NULL) {
            fprintf(stderr, "case %zu: rc %d, err \"%s\", want \"%s...%s\"\n", i, rc, err,
                    want_prefix, cases[i].want);
            CU_FAIL("malformed history message");
        }
        pgf_history_free(h);
    }
    /* a missing file names the path */
    char err[512];
    pgf_history *h = NULL;
    CU_ASSERT(pgf_history_load("/nonexistent/h.jsonl", &h, err, sizeof err) < 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/h.jsonl"));
}

static void random_garbage_never_crashes(void)
{
    /* Mutate a valid history byte by byte with a fixed seed: every result
     * is either a loaded history that the checker digests, or an error
     * that names the file and a line. */
    FILE *src = fopen(HIST_DIR "valid_basic.jsonl", "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    static char orig[65536];
    size_t len = fread(orig, 1, sizeof orig, src);
    fclose(src);
    CU_ASSERT_FATAL(len > 100 && len < sizeof orig);
    static char mut[65536];
    char path[600];
    snprintf(path, sizeof path, "%s/fuzz.jsonl", tmpdir);
    pgf_spec *spec = load_spec();
    pgf_rng rng;
    pgf_rng_init(&rng, 7, 0, 0);
    int errors = 0, loaded = 0;
    for (int iter = 0; iter < 300; iter++) {
        memcpy(mut, orig, len);
        int flips = 1 + (int)pgf_rng_below(&rng, 4);
        for (int k = 0; k < flips; k++)
            mut[pgf_rng_below(&rng, len)] = (char)pgf_rng_below(&rng, 256);
        size_t mlen = iter % 10 == 0 ? pgf_rng_below(&rng, len) : len; /* truncations too */
        write_file(path, mut, mlen);
        char err[512] = "";
        pgf_history *h = NULL;
        if (pgf_history_load(path, &h, err, sizeof err) < 0) {
            errors++;
            CU_ASSERT(strncmp(err, path, strlen(path)) == 0 && err[strlen(path)] == ':');
            continue;
        }
        loaded++;
        size_t n;
        const pgf_rec *recs = pgf_history_records(h, &n);
        pgf_check_result *r = NULL;
        CU_ASSERT_EQUAL(pgf_check(spec, recs, n, NULL, &r), 0);
        pgf_check_result_free(r);
        pgf_history_free(h);
    }
    CU_ASSERT(errors > 0);
    CU_ASSERT(errors + loaded == 300);
    pgf_spec_free(spec);
}

/* ---- writer and digest --------------------------------------------------- */

static void fill_sample(mem *m)
{
    m->n = 0;
    add(m, PGF_REC_INVOKE, 1, "open", 1)->thread = 0;
    tr(m, 1, "open", 1, "NEW", "CONNECTING");
    pgf_rec *f = add(m, PGF_REC_FAULT, 1, NULL, PGF_REC_NONE);
    f->conn = 1;
    f->phase = "auth-response";
    f->rule = "r1";
    f->action = "auth-fail";
    f->sqlstate = "28P01";
    tr(m, 1, "open", 1, "CONNECTING", "FAILED")->cause = "auth \"quoted\"\n";
    pgf_rec *h = add(m, PGF_REC_HEALTH, 1, NULL, 1);
    h->reason = "auth_failed";
    h->conn = 1;
    add(m, PGF_REC_FAIL, 1, "open", 1)->error = "PGF_EAUTH";
    pgf_rec *s = add(m, PGF_REC_SERVER, PGF_REC_NONE, NULL, PGF_REC_NONE);
    s->conns_open = 0;
    s->conns_accepted = 1;
    s->conns_closed = 1;
}

static void write_history(const char *path, const pgf_hist_meta *meta, mem *m, int64_t wall,
                          char hex[65])
{
    pgf_hist_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_hist_writer_open(path, &w), 0);
    CU_ASSERT_EQUAL(pgf_hist_writer_meta(w, meta), 0);
    for (size_t i = 0; i < m->n; i++) {
        m->r[i].wall_us = wall >= 0 ? wall + (int64_t)i : PGF_REC_NONE;
        CU_ASSERT_EQUAL(pgf_hist_writer_put(w, &m->r[i]), 0);
    }
    pgf_hist_writer_digest(w, hex);
    CU_ASSERT_EQUAL(pgf_hist_writer_close(w), 0);
}

static void canonical_line_has_fixed_key_order(void)
{
    mem m;
    fill_sample(&m);
    char buf[512];
    int n = pgf_rec_format(&m.r[2], buf, sizeof buf);
    CU_ASSERT_STRING_EQUAL(buf, "{\"seq\":3,\"time_ns\":30,\"type\":\"fault\",\"session\":1,"
                                "\"conn\":1,\"phase\":\"auth-response\",\"rule\":\"r1\","
                                "\"action\":\"auth-fail\",\"sqlstate\":\"28P01\"}");
    CU_ASSERT_EQUAL(n, (int)strlen(buf));
    CU_ASSERT_EQUAL(pgf_rec_format(&m.r[2], buf, 10), PGF_ETOOBIG);
}

static void digest_ignores_wall_and_sees_everything_else(void)
{
    mem m;
    fill_sample(&m);
    pgf_hist_meta meta = {.version = 1,
                          .has_seed = true,
                          .seed = 9,
                          .mode = "sim",
                          .tool = "pgfault test",
                          .wall_us = 1700000000000000};
    char p1[600], p2[600], d1[65], d2[65], d3[65];
    snprintf(p1, sizeof p1, "%s/w1.jsonl", tmpdir);
    snprintf(p2, sizeof p2, "%s/w2.jsonl", tmpdir);
    write_history(p1, &meta, &m, 1000, d1);
    meta.wall_us = 1800000000000000;
    write_history(p2, &meta, &m, 99999, d2);
    CU_ASSERT_STRING_EQUAL(d1, d2); /* wall times differ, digest does not */

    /* the files do differ (wall is really written) */
    char err[512];
    pgf_history *h1 = NULL, *h2 = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(p1, &h1, err, sizeof err), 0);
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(p2, &h2, err, sizeof err), 0);
    FILE *f = fopen(p1, "r");
    char line[512];
    CU_ASSERT_PTR_NOT_NULL(fgets(line, sizeof line, f));
    CU_ASSERT_PTR_NOT_NULL(strstr(line, "\"wall\":1700000000000000"));
    fclose(f);

    /* read back: same records, same digest as the writer computed */
    size_t n1, n2;
    const pgf_rec *r1 = pgf_history_records(h1, &n1);
    pgf_history_records(h2, &n2);
    CU_ASSERT_EQUAL(n1, m.n);
    CU_ASSERT_EQUAL(n2, m.n);
    pgf_history_digest(pgf_history_meta(h1), r1, n1, d3);
    CU_ASSERT_STRING_EQUAL(d1, d3);
    CU_ASSERT_STRING_EQUAL(r1[3].cause, "auth \"quoted\"\n");
    CU_ASSERT_STRING_EQUAL(r1[2].sqlstate, "28P01");
    CU_ASSERT_EQUAL(r1[6].conns_accepted, 1);
    CU_ASSERT_EQUAL(r1[0].thread, 0);
    CU_ASSERT_EQUAL(r1[1].thread, PGF_REC_NONE);
    CU_ASSERT_EQUAL(pgf_history_meta(h1)->seed, 9u);
    pgf_history_free(h1);
    pgf_history_free(h2);

    /* any other change changes the digest */
    char base[65], d[65];
    pgf_history_digest(&meta, m.r, m.n, base);
    CU_ASSERT_STRING_EQUAL(base, d1);
    m.r[4].reason = "connection_lost";
    pgf_history_digest(&meta, m.r, m.n, d);
    CU_ASSERT_STRING_NOT_EQUAL(d, base);
    m.r[4].reason = "auth_failed";
    m.r[1].time_ns++;
    pgf_history_digest(&meta, m.r, m.n, d);
    CU_ASSERT_STRING_NOT_EQUAL(d, base);
    m.r[1].time_ns--;
    meta.seed = 10;
    pgf_history_digest(&meta, m.r, m.n, d);
    CU_ASSERT_STRING_NOT_EQUAL(d, base);
    meta.seed = 9;
    pgf_history_digest(&meta, m.r, m.n - 1, d); /* a record fewer */
    CU_ASSERT_STRING_NOT_EQUAL(d, base);
    pgf_history_digest(&meta, m.r, m.n, d);
    CU_ASSERT_STRING_EQUAL(d, base);
}

static void meta_embeds_the_spec(void)
{
    /* The driver embeds the spec: `pgfault check` then needs no --spec. */
    pgf_spec *s = load_spec();
    FILE *f = fopen(SPEC_PATH, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char text[16384];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    pgf_hist_meta meta = {.version = 1,
                          .spec_json = text,
                          .spec_digest = pgf_spec_digest(s),
                          .wall_us = PGF_REC_NONE};
    char path[600], hex[65], err[512];
    snprintf(path, sizeof path, "%s/embed.jsonl", tmpdir);
    mem m;
    fill_sample(&m);
    write_history(path, &meta, &m, -1, hex);
    pgf_history *h = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(path, &h, err, sizeof err), 0);
    const pgf_hist_meta *hm = pgf_history_meta(h);
    CU_ASSERT_PTR_NOT_NULL_FATAL(hm->spec_json);
    pgf_spec *s2 = NULL;
    CU_ASSERT_EQUAL_FATAL(
        pgf_spec_parse(hm->spec_json, strlen(hm->spec_json), "meta", &s2, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(pgf_spec_digest(s2), pgf_spec_digest(s));
    CU_ASSERT_STRING_EQUAL(hm->spec_digest, pgf_spec_digest(s));
    CU_ASSERT_FALSE(hm->has_seed);
    pgf_spec_free(s2);
    pgf_spec_free(s);
    pgf_history_free(h);
}

/* ---- scale ------------------------------------------------------------ */

static void large_history_checks_in_one_pass(void)
{
    /* 100,000 records: 12,500 sessions of open/close (8 records each),
     * interleaved 50 sessions at a time like concurrent workers, written
     * through the writer, loaded, checked. Then one completion is dropped
     * and exactly that is reported. */
    enum { SESSIONS = 12500, PER = 8, WAVE = 50 };
    size_t n = (size_t)SESSIONS * PER;
    pgf_rec *recs = calloc(n, sizeof *recs);
    CU_ASSERT_PTR_NOT_NULL_FATAL(recs);
    static const struct {
        pgf_rec_type t;
        const char *op, *from, *to;
        int id;
    } steps[PER] = {
        {PGF_REC_INVOKE, "open", NULL, NULL, 0},
        {PGF_REC_TRANSITION, "open", "NEW", "CONNECTING", 0},
        {PGF_REC_TRANSITION, "open", "CONNECTING", "READY", 0},
        {PGF_REC_OK, "open", NULL, NULL, 0},
        {PGF_REC_INVOKE, "close", NULL, NULL, 1},
        {PGF_REC_TRANSITION, "close", "READY", "CLOSING", 1},
        {PGF_REC_TRANSITION, "close", "CLOSING", "CLOSED", 1},
        {PGF_REC_OK, "close", NULL, NULL, 1},
    };
    size_t k = 0;
    for (int wave = 0; wave < SESSIONS / WAVE; wave++)
        for (int step = 0; step < PER; step++)
            for (int j = 0; j < WAVE; j++) {
                int64_t sid = (int64_t)wave * WAVE + j + 1000000; /* sparse ids */
                pgf_rec *r = &recs[k++];
                pgf_rec_init(r, steps[step].t);
                r->seq = k;
                r->time_ns = k * 3;
                r->session = sid;
                r->op = steps[step].op;
                r->op_id = sid * 2 + steps[step].id;
                r->from = steps[step].from;
                r->to = steps[step].to;
            }
    CU_ASSERT_EQUAL_FATAL(k, n);

    char path[600];
    snprintf(path, sizeof path, "%s/big.jsonl", tmpdir);
    pgf_hist_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_hist_writer_open(path, &w), 0);
    pgf_hist_meta meta = {.version = 1, .wall_us = PGF_REC_NONE};
    CU_ASSERT_EQUAL(pgf_hist_writer_meta(w, &meta), 0);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL(pgf_hist_writer_put(w, &recs[i]), 0);
    CU_ASSERT_EQUAL(pgf_hist_writer_close(w), 0);

    char err[512];
    pgf_history *h = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(path, &h, err, sizeof err), 0);
    size_t hn;
    const pgf_rec *hr = pgf_history_records(h, &hn);
    CU_ASSERT_EQUAL_FATAL(hn, n);
    pgf_spec *spec = load_spec();
    pgf_check_result *r = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_check(spec, hr, hn, NULL, &r), 0);
    CU_ASSERT_EQUAL(r->total, 0u);
    CU_ASSERT_EQUAL(r->sessions, (uint64_t)SESSIONS);
    CU_ASSERT_EQUAL(r->ops, (uint64_t)SESSIONS * 2);
    CU_ASSERT_EQUAL(r->records, (uint64_t)n);
    pgf_check_result_free(r);

    /* drop the open `ok` of one session in the middle: it reached READY
     * but had not completed when close moved the session (late), and it
     * never completes (missing) */
    size_t victim = (size_t)(SESSIONS / WAVE / 2) * PER * WAVE + 3 * WAVE + 17;
    CU_ASSERT_EQUAL_FATAL(recs[victim].type, PGF_REC_OK);
    recs[victim].type = PGF_REC_INFO; /* indeterminate is still a completion: no violation */
    CU_ASSERT_EQUAL_FATAL(pgf_check(spec, recs, n, NULL, &r), 0);
    CU_ASSERT_EQUAL(r->total, 0u);
    pgf_check_result_free(r);
    int64_t victim_session = recs[victim].session;
    memmove(&recs[victim], &recs[victim + 1], (n - victim - 1) * sizeof *recs);
    CU_ASSERT_EQUAL_FATAL(pgf_check(spec, recs, n - 1, NULL, &r), 0);
    CU_ASSERT_EQUAL(r->total, 2u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_MISSING_COMPLETION], 1u);
    CU_ASSERT_EQUAL(r->counts[PGF_VIOL_LATE_COMPLETION], 1u);
    CU_ASSERT_EQUAL_FATAL(r->nfirst, 1u);
    CU_ASSERT_EQUAL(r->first[0].session, victim_session);
    pgf_check_result_free(r);

    pgf_spec_free(spec);
    pgf_history_free(h);
    free(recs);
}

static void streaming_reader_counts_records(void)
{
    pgf_hist_reader *rd = NULL;
    char err[512];
    CU_ASSERT_EQUAL_FATAL(pgf_hist_reader_open(HIST_DIR "valid_basic.jsonl", &rd, err, sizeof err),
                          0);
    CU_ASSERT_EQUAL(pgf_hist_reader_meta(rd)->version, 1);
    pgf_rec rec;
    int rc, count = 0, types[PGF_REC_TYPE_COUNT] = {0};
    uint64_t last = 0;
    while ((rc = pgf_hist_reader_next(rd, &rec, err, sizeof err)) == 1) {
        count++;
        types[rec.type]++;
        CU_ASSERT(rec.seq > last);
        CU_ASSERT_EQUAL(rec.line, (uint32_t)count + 1);
        last = rec.seq;
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(count, 100);
    CU_ASSERT_EQUAL(types[PGF_REC_SERVER], 1);
    CU_ASSERT_EQUAL(types[PGF_REC_FAULT], 3);
    CU_ASSERT_EQUAL(types[PGF_REC_INVOKE], 26);
    pgf_hist_reader_free(rd);
    pgf_hist_reader_free(NULL);
    CU_ASSERT_STRING_EQUAL(pgf_rec_type_name(PGF_REC_HEALTH), "health");
    CU_ASSERT_EQUAL(pgf_rec_type_parse("transition"), PGF_REC_TRANSITION);
    CU_ASSERT_EQUAL(pgf_rec_type_parse("meta"), -1);
    CU_ASSERT_STRING_EQUAL(pgf_violation_name(PGF_VIOL_USE_AFTER_CLOSE), "use_after_close");
}

/* ---- the direct formatter against jansson --------------------------------- */

/* What pgf_rec_format wrote before it was made direct: jansson, keys in
 * the documented order, compact. Kept here as the reference. */
static char *jansson_line(const pgf_rec *r)
{
    json_t *o = json_object();
#define J_INT(key, v)                                                   \
    do {                                                                \
        if ((v) != PGF_REC_NONE)                                        \
            json_object_set_new(o, key, json_integer((json_int_t)(v))); \
    } while (0)
#define J_STR(key, v)                                    \
    do {                                                 \
        if ((v) != NULL)                                 \
            json_object_set_new(o, key, json_string(v)); \
    } while (0)
    json_object_set_new(o, "seq", json_integer((json_int_t)r->seq));
    json_object_set_new(o, "time_ns", json_integer((json_int_t)r->time_ns));
    json_object_set_new(o, "type", json_string(pgf_rec_type_name(r->type)));
    J_INT("session", r->session);
    J_STR("op", r->op);
    J_INT("op_id", r->op_id);
    J_STR("from", r->from);
    J_STR("to", r->to);
    J_STR("cause", r->cause);
    J_STR("error", r->error);
    J_STR("reason", r->reason);
    J_INT("conn", r->conn);
    J_STR("phase", r->phase);
    J_STR("rule", r->rule);
    J_STR("action", r->action);
    J_STR("sqlstate", r->sqlstate);
    J_INT("conns_open", r->conns_open);
    J_INT("conns_accepted", r->conns_accepted);
    J_INT("conns_closed", r->conns_closed);
    J_INT("sessions_open", r->sessions_open);
    J_INT("thread", r->thread);
#undef J_INT
#undef J_STR
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* A random valid UTF-8 string: printable ASCII, every control byte, the
 * characters JSON escapes, and 2-, 3- and 4-byte sequences. */
static void random_utf8(pgf_rng *g, char *out, size_t cap)
{
    static const char *const pieces[] = {"\"",
                                         "\\",
                                         "/",
                                         "\x7f",
                                         "\xc3\xa9",
                                         "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80",
                                         "\xef\xbf\xbd",
                                         "\xdf\xbf",
                                         "\xf4\x8f\xbf\xbf"};
    size_t n = 0, want = (size_t)pgf_rng_below(g, 40);
    for (size_t i = 0; i < want; i++) {
        char one[2] = {0, 0};
        const char *p = one;
        switch (pgf_rng_below(g, 3)) {
        case 0:
            one[0] = (char)(0x20 + pgf_rng_below(g, 0x5f));
            break;
        case 1:
            one[0] = (char)(1 + pgf_rng_below(g, 0x1f));
            break;
        default:
            p = pieces[pgf_rng_below(g, sizeof pieces / sizeof pieces[0])];
            break;
        }
        size_t l = strlen(p);
        if (n + l + 1 > cap)
            break;
        memcpy(out + n, p, l);
        n += l;
    }
    out[n] = '\0';
}

static void format_matches_jansson(void)
{
    pgf_rng g;
    pgf_rng_init(&g, 17, 1, 2);
    static const int64_t ints[] = {0, 1, -2, 9, 10, 4096, INT64_MAX, INT64_MIN + 1, 1234567890123};
    char strs[10][200];
    int mismatches = 0;
    for (int iter = 0; iter < 20000; iter++) {
        pgf_rec r;
        pgf_rec_init(&r, (pgf_rec_type)pgf_rng_below(&g, PGF_REC_TYPE_COUNT));
        r.seq = pgf_rng_next(&g) >> 1;
        r.time_ns = pgf_rng_next(&g) >> (1 + pgf_rng_below(&g, 60));
        int64_t *ip[] = {&r.session,    &r.op_id,          &r.conn,         &r.thread,
                         &r.conns_open, &r.conns_accepted, &r.conns_closed, &r.sessions_open};
        for (size_t k = 0; k < sizeof ip / sizeof ip[0]; k++)
            if (pgf_rng_below(&g, 2))
                *ip[k] = ints[pgf_rng_below(&g, sizeof ints / sizeof ints[0])];
        const char **sp[] = {&r.op,     &r.from,  &r.to,   &r.cause,  &r.error,
                             &r.reason, &r.phase, &r.rule, &r.action, &r.sqlstate};
        for (size_t k = 0; k < sizeof sp / sizeof sp[0]; k++) {
            if (pgf_rng_below(&g, 2)) {
                random_utf8(&g, strs[k], sizeof strs[k]);
                *sp[k] = strs[k];
            }
        }
        char buf[4096];
        int n = pgf_rec_format(&r, buf, sizeof buf);
        char *ref = jansson_line(&r);
        CU_ASSERT_PTR_NOT_NULL_FATAL(ref);
        if (n < 0 || strcmp(buf, ref) != 0) {
            if (mismatches++ < 3)
                fprintf(stderr, "\n  direct:  %s\n  jansson: %s\n", n >= 0 ? buf : "(error)", ref);
        }
        free(ref);
    }
    CU_ASSERT_EQUAL(mismatches, 0);
}

/* Bytes that are not UTF-8 become U+FFFD, one per bad byte, and the line
 * stays valid JSON; a record bigger than any stack buffer still writes. */
/* The writer formats into its buffer and digests a buffer at a time; a
 * `wall` field is cut out of the digest wherever it falls. Thousands of
 * lines (several 64 kB flushes), wall on some of them, a digest taken in
 * the middle: the file's, a digest-only writer's and the recomputed
 * digest all agree. */
static void digest_across_flushes(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/flushes.jsonl", tmpdir);
    pgf_hist_writer *w = NULL, *d = pgf_hist_writer_new_fp(NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    CU_ASSERT_EQUAL_FATAL(pgf_hist_writer_open(path, &w), 0);
    pgf_hist_meta meta = {.version = 1, .mode = "stress", .wall_us = 1700000000000000};
    CU_ASSERT_EQUAL(pgf_hist_writer_meta(w, &meta), 0);
    CU_ASSERT_EQUAL(pgf_hist_writer_meta(d, &meta), 0);
    char mid_w[65] = "", mid_d[65] = "";
    for (int i = 0; i < 4000; i++) {
        pgf_rec r;
        pgf_rec_init(&r, PGF_REC_TRANSITION);
        r.seq = (uint64_t)i + 1;
        r.time_ns = (uint64_t)i * 1000003u;
        r.session = i % 97;
        r.op = "check";
        r.op_id = i;
        r.from = "READY";
        r.to = "BUSY";
        r.cause = i % 5 == 0 ? "a \"quoted\" cause\twith escapes" : "query sent";
        r.wall_us = i % 3 == 0 ? 1700000000000000 + i : PGF_REC_NONE;
        CU_ASSERT_EQUAL(pgf_hist_writer_put(w, &r), 0);
        r.wall_us = PGF_REC_NONE;
        CU_ASSERT_EQUAL(pgf_hist_writer_put(d, &r), 0);
        if (i == 1234) { /* mid-buffer: what is buffered counts */
            pgf_hist_writer_digest(w, mid_w);
            pgf_hist_writer_digest(d, mid_d);
        }
    }
    CU_ASSERT_STRING_EQUAL(mid_w, mid_d);
    char hw[65], hd[65], hr[65];
    pgf_hist_writer_digest(w, hw);
    pgf_hist_writer_digest(d, hd);
    CU_ASSERT_STRING_EQUAL(hw, hd);
    CU_ASSERT_STRING_NOT_EQUAL(hw, mid_w);
    CU_ASSERT_EQUAL(pgf_hist_writer_close(w), 0);
    CU_ASSERT_EQUAL(pgf_hist_writer_close(d), 0);
    pgf_history *h = NULL;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(path, &h, err, sizeof err), 0);
    size_t n = 0;
    const pgf_rec *recs = pgf_history_records(h, &n);
    CU_ASSERT_EQUAL(n, 4000u);
    pgf_history_digest(pgf_history_meta(h), recs, n, hr);
    CU_ASSERT_STRING_EQUAL(hw, hr);
    pgf_history_free(h);
    /* and the wall fields did reach the file */
    FILE *f = fopen(path, "r");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    char line[512];
    int walls = 0;
    while (fgets(line, sizeof line, f) != NULL)
        walls += strstr(line, "\"wall\":") != NULL;
    fclose(f);
    CU_ASSERT_EQUAL(walls, 1 + 1334); /* the meta line, every third record */
}

static void format_survives_bad_utf8_and_size(void)
{
    pgf_rec r;
    pgf_rec_init(&r, PGF_REC_TRANSITION);
    r.seq = 1;
    r.session = 1;
    r.op = "open";
    r.op_id = 1;
    r.from = "NEW";
    r.to = "CONNECTING";
    r.cause = "a\xff"
              "b\xc0\x80"
              "c\xed\xa0\x80"
              "d\xe2\x82";
    char buf[512];
    int n = pgf_rec_format(&r, buf, sizeof buf);
    CU_ASSERT_TRUE_FATAL(n > 0);
    CU_ASSERT_PTR_NOT_NULL(strstr(buf, "\"cause\":\"a\xef\xbf\xbd"
                                       "b\xef\xbf\xbd\xef\xbf\xbd"
                                       "c\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                       "d\xef\xbf\xbd\xef\xbf\xbd\""));
    json_t *o = json_loads(buf, 0, NULL);
    CU_ASSERT_PTR_NOT_NULL(o);
    json_decref(o);

    /* a 100 kB cause: the writer and the digest take it whole */
    size_t big = 100000;
    char *cause = malloc(big + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(cause);
    memset(cause, 'x', big);
    cause[big] = '\0';
    cause[500] = '\n';
    r.cause = cause;
    CU_ASSERT_EQUAL(pgf_rec_format(&r, buf, sizeof buf), PGF_ETOOBIG);
    char path[512];
    snprintf(path, sizeof path, "%s/big.jsonl", tmpdir);
    pgf_hist_writer *w = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_hist_writer_open(path, &w), 0);
    pgf_hist_meta meta = {.version = 1};
    CU_ASSERT_EQUAL(pgf_hist_writer_meta(w, &meta), 0);
    CU_ASSERT_EQUAL(pgf_hist_writer_put(w, &r), 0);
    char hw[65], hd[65];
    pgf_hist_writer_digest(w, hw);
    CU_ASSERT_EQUAL(pgf_hist_writer_close(w), 0);
    pgf_history *h = NULL;
    char err[256];
    int lrc = pgf_history_load(path, &h, err, sizeof err);
    if (lrc != 0)
        fprintf(stderr, "\n  load: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(lrc, 0);
    size_t nr = 0;
    const pgf_rec *back = pgf_history_records(h, &nr);
    CU_ASSERT_EQUAL_FATAL(nr, 1u);
    CU_ASSERT_STRING_EQUAL(back[0].cause, cause);
    pgf_history_digest(pgf_history_meta(h), back, nr, hd);
    CU_ASSERT_STRING_EQUAL(hw, hd);
    pgf_history_free(h);
    free(cause);
}

static const pgf_test spec_tests[] = {
    {"spec_loads_contract_fixture", spec_loads_contract_fixture},
    {"spec_rejects_bad_specs_clearly", spec_rejects_bad_specs_clearly},
    PGF_TESTS_END,
};

static const pgf_test check_tests[] = {
    {"valid_history_has_no_violations", valid_history_has_no_violations},
    {"spec_drift_names_rows", spec_drift_names_rows},
    {"every_violation_kind_is_caught_with_witness", every_violation_kind_is_caught_with_witness},
    {"witness_is_bounded", witness_is_bounded},
    {"health_classification_follows_the_fault", health_classification_follows_the_fault},
    {"spontaneous_and_preempting_transitions", spontaneous_and_preempting_transitions},
    PGF_TESTS_END,
};

static const pgf_test history_tests[] = {
    {"streaming_reader_counts_records", streaming_reader_counts_records},
    {"malformed_lines_give_file_line", malformed_lines_give_file_line},
    {"random_garbage_never_crashes", random_garbage_never_crashes},
    {"canonical_line_has_fixed_key_order", canonical_line_has_fixed_key_order},
    {"format_matches_jansson", format_matches_jansson},
    {"format_survives_bad_utf8_and_size", format_survives_bad_utf8_and_size},
    {"digest_ignores_wall_and_sees_everything_else", digest_ignores_wall_and_sees_everything_else},
    {"digest_across_flushes", digest_across_flushes},
    {"meta_embeds_the_spec", meta_embeds_the_spec},
    {"large_history_checks_in_one_pass", large_history_checks_in_one_pass},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_checker[] = {
    {"checker_spec", NULL, NULL, spec_tests},
    {"checker_check", NULL, NULL, check_tests},
    {"checker_history", checker_setup, checker_teardown, history_tests},
    PGF_SUITES_END,
};
