/* test_reports.c - the report model and its writers: a rich fixture (a
 * failing and a passing scenario, an illegal edge, hostile bytes 0x00-0xFF
 * off the wire) written to a temp dir in every format; report.json read back
 * with jansson; junit.xml validated by xmllint against tests/data/junit-10.xsd;
 * report.html rendered by headless Chromium (ids present, script ran, no
 * console error); the console summary; the atomic writes (no temp files left,
 * a failed write leaves the old file intact).
 *
 * xmllint and chromium are required: a missing tool is a FAILED test, not a
 * skipped one (scripts/install-deps installs both). */
#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "atomic.h"
#include "pgf_test.h"
#include "pgfault/health.h"
#include "pgfault/report.h"
#include "report_internal.h"
#include "pgfault/rng.h"
#include "pgfault/version.h"
#include "testutil.h"

extern char **environ;

#define REPLAY "pgfault run scenarios/incident.yaml --seed 42 --mode sim"

/* ---- fixture -------------------------------------------------------------------------------- */

static char all_bytes[256];    /* 0x00..0xFF */
static char hostile_cstr[300]; /* 0x01..0xFF plus markup that must not survive */

static void init_bytes(void)
{
    for (int i = 0; i < 256; i++)
        all_bytes[i] = (char)i;
    size_t n = 0;
    for (int i = 1; i < 256; i++)
        hostile_cstr[n++] = (char)i;
    const char *tail = "</script><!--<script>]]>&amp;\"'\xEF\xBF\xBE\xC0\xAF";
    memcpy(hostile_cstr + n, tail, strlen(tail) + 1);
}

static const char *const states[] = {"IDLE",     "CONNECTING", "AUTHENTICATING", "READY",
                                     "CHECKING", "CLOSING",    "CLOSED",         "FAILED"};

static pgf_report *build_fixture(bool failing, bool interrupted)
{
    init_bytes();
    pgf_report *r = pgf_report_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_report_meta m = {
        .tool_version = PGF_VERSION,
        .seed = 42,
        .mode = "sim",
        .name = "fixture <suite> & \"co\"",
        .description = "report writer fixture",
        .start_wall_us = 1796000000000000ULL,
        .end_wall_us = 1796000012345000ULL,
        .duration_ns = 12345000000ULL,
        .interrupted = interrupted,
        .replay_command = failing ? REPLAY : NULL,
        .out_dir = "out",
    };
    CU_ASSERT_EQUAL(pgf_report_set_meta(r, &m), 0);
    json_t *cfg = json_pack("{s:i,s:i,s:s,s:[s,s]}", "sessions", 64, "threads", 1, "server",
                            "embedded", "racers", "close@CONNECTING", "cancel@CHECKING");
    CU_ASSERT_EQUAL(pgf_report_set_config(r, cfg), 0);
    json_decref(cfg);
    CU_ASSERT_EQUAL(pgf_report_config_set(r, "hostile", hostile_cstr), 0);

    pgf_rng rng;
    pgf_rng_init(&rng, 42, 0, 0);
    for (int sc = 0; sc < 2; sc++) {
        bool fails = failing && sc == 0;
        pgf_report_scenario *s = pgf_report_add_scenario(
            r, sc == 0 ? "incident-close-race <b>" : "auth-storm",
            sc == 0 ? "health checks racing close against connect" : hostile_cstr);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_EQUAL(pgf_report_scenario_set_run(s, 42 + (uint64_t)sc, NULL, 2000000000ULL), 0);
        for (size_t i = 0; i < sizeof states / sizeof states[0]; i++)
            CU_ASSERT_EQUAL(pgf_report_add_state(s, states[i]), 0);
        struct {
            const char *from, *to, *op;
            uint64_t n;
        } edges[] = {
            {"IDLE", "CONNECTING", "connect", 900},   {"CONNECTING", "AUTHENTICATING", "poll", 880},
            {"AUTHENTICATING", "READY", "poll", 700}, {"AUTHENTICATING", "FAILED", "poll", 180},
            {"READY", "CHECKING", "check", 2000},     {"CHECKING", "READY", "check", 1990},
            {"READY", "CLOSING", "close", 690},       {"CLOSING", "CLOSED", "close", 690},
            {"FAILED", "CLOSED", "close", 180},       {"CONNECTING", "CLOSING", "close", 17},
            {"CHECKING", "CHECKING", "cancel", 4},    {"CLOSED", "IDLE", "reopen", 0},
        };
        for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++)
            CU_ASSERT_EQUAL(
                pgf_report_add_edge(s, edges[i].from, edges[i].to, edges[i].op, edges[i].n, true),
                0);
        if (fails) {
            CU_ASSERT_EQUAL(pgf_report_add_edge(s, "CONNECTING", "CLOSED", "close", 3, false), 0);
            CU_ASSERT_EQUAL(pgf_report_add_edge(s, "CLOSED", "CHECKING", "check", 1, false), 0);
        }
        /* outcomes + latency */
        static const pgf_report_outcome outs[] = {PGF_REPORT_HEALTHY, PGF_REPORT_AUTH_FAILED,
                                                  PGF_REPORT_CONNECTION_LOST, PGF_REPORT_TIMEOUT};
        static const uint64_t counts[] = {1700, 180, 90, 20};
        for (size_t o = 0; o < 4; o++) {
            CU_ASSERT_EQUAL(pgf_report_count_outcome(s, outs[o], counts[o]), 0);
            for (uint64_t k = 0; k < counts[o]; k++) {
                uint64_t base = outs[o] == PGF_REPORT_TIMEOUT ? 5000000000ULL : 200000ULL;
                uint64_t ns = base + pgf_rng_below(&rng, base * 4);
                CU_ASSERT_EQUAL(pgf_report_add_latency(s, outs[o], ns, 1), 0);
            }
        }
        /* timeline: 60 sessions, a few states each, faults on some */
        for (uint64_t sess = 1; sess <= 60; sess++) {
            uint64_t t = sess * 7000000ULL;
            const char *seq[] = {"CONNECTING", "AUTHENTICATING", "READY", "CHECKING",
                                 "READY",      "CLOSING",        "CLOSED"};
            for (size_t i = 0; i < sizeof seq / sizeof seq[0]; i++) {
                uint64_t d = 2000000ULL + pgf_rng_below(&rng, 30000000ULL);
                CU_ASSERT_EQUAL(pgf_report_add_span(s, sess, seq[i], t, t + d), 0);
                t += d;
            }
            if (sess % 7 == 0)
                CU_ASSERT_EQUAL(pgf_report_add_fault_mark(s, sess, sess * 7000000ULL + 3000000ULL,
                                                          "auth-response", "auth-fail", "storm"),
                                0);
        }
        CU_ASSERT_EQUAL(pgf_report_add_fault_mark(s, 0, 150000000ULL, "accept", "refuse", NULL), 0);
        /* operations (one raced and one that never completed), a violation
         * on a session past the first 40, a late fault window, samples */
        CU_ASSERT_EQUAL(pgf_report_scenario_set_timing(s, "sim", 1500000000ULL), 0);
        pgf_report_scenario_set_sessions(s, 300);
        CU_ASSERT_EQUAL(pgf_report_add_op(s, 14, 101, "open", 98000000ULL, 130000000ULL, "fail",
                                          "PGF_ECLOSED", false),
                        0);
        CU_ASSERT_EQUAL(
            pgf_report_add_op(s, 14, 117, "close", 110000000ULL, 110000000ULL, "ok", NULL, true),
            0);
        CU_ASSERT_EQUAL(
            pgf_report_add_op(s, 55, 300, "check", 400000000ULL, 900000000ULL, NULL, NULL, false),
            0);
        CU_ASSERT_EQUAL(pgf_report_add_op(s, 1, 1, "bad", 10, 5, "ok", NULL, false), PGF_EINVAL);
        if (fails)
            CU_ASSERT_EQUAL(pgf_report_add_violation_mark(s, 57, 410000000ULL, "use_after_close"),
                            0);
        CU_ASSERT_EQUAL(pgf_report_add_fault_window(s, "late-storm", 2000000000ULL, 2500000000ULL),
                        0);
        for (uint64_t k = 0; k < 500; k++)
            CU_ASSERT_EQUAL(pgf_report_add_sample(s,
                                                  k % 5 ? PGF_REPORT_HEALTHY : PGF_REPORT_TIMEOUT,
                                                  k * 4000000ULL, 1000000ULL + k * 1000ULL),
                            0);
        /* coverage */
        CU_ASSERT_EQUAL(pgf_report_add_rule(s, "storm", "auth-response", "auth-fail", 180), 0);
        CU_ASSERT_EQUAL(pgf_report_add_rule(s, "rst-mid-query", "data-row", "reset", 90), 0);
        CU_ASSERT_EQUAL(pgf_report_add_rule(s, "never-fires", "sasl-final", "stall", 0), 0);
        CU_ASSERT_EQUAL(pgf_report_add_op_coverage(s, "check", "CONNECTING_AUTH", 7, 7), 0);
        CU_ASSERT_EQUAL(pgf_report_add_op_coverage(s, "close", "CONNECTING_AUTH", 5, 0), 0);
        CU_ASSERT_EQUAL(pgf_report_add_coverage(s, "auth-response", "auth-fail", 180), 0);
        CU_ASSERT_EQUAL(pgf_report_add_coverage(s, "data-row", "reset", 90), 0);
        CU_ASSERT_EQUAL(pgf_report_add_coverage(s, "accept", "refuse", 1), 0);
        /* checks */
        pgf_report_check *c =
            pgf_report_add_check(s, "every session ends CLOSED", true, "invariant", NULL);
        CU_ASSERT_PTR_NOT_NULL(c);
        c = pgf_report_add_check(s, "auth_failed between 5% and 40%", true, "expectation",
                                 "auth_failed 9.0%");
        CU_ASSERT_PTR_NOT_NULL(c);
        if (fails) {
            c = pgf_report_add_check(s, "no illegal transition", false, "illegal_transition",
                                     "session 14: close moved CONNECTING -> CLOSED while "
                                     "connect was in progress");
            CU_ASSERT_PTR_NOT_NULL_FATAL(c);
            pgf_report_check_set_session(c, 14);
            CU_ASSERT_EQUAL(pgf_report_check_add_witness(
                                c, "{\"seq\":101,\"type\":\"invoke\",\"session\":14,\"op\":"
                                   "\"connect\"}"),
                            0);
            CU_ASSERT_EQUAL(pgf_report_check_add_witness_n(c, all_bytes, sizeof all_bytes), 0);
            CU_ASSERT_EQUAL(pgf_report_check_add_witness(
                                c, "{\"seq\":117,\"type\":\"transition\",\"from\":\"CONNECTING\","
                                   "\"to\":\"CLOSED\",\"op\":\"close\"}"),
                            0);
            c = pgf_report_add_check(s, hostile_cstr, false, hostile_cstr, hostile_cstr);
            CU_ASSERT_PTR_NOT_NULL_FATAL(c);
            pgf_report_check_set_session(c, 28);
            CU_ASSERT_EQUAL(pgf_report_check_add_witness_n(c, all_bytes, sizeof all_bytes), 0);
            CU_ASSERT_EQUAL(pgf_report_count_violation(s, "illegal_transition", 3), 0);
            CU_ASSERT_EQUAL(pgf_report_count_violation(s, "use_after_close", 1), 0);
            CU_ASSERT_EQUAL(pgf_report_count_violation(s, "illegal_transition", 1), 0);
        }
    }
    return r;
}

/* ---- helpers -------------------------------------------------------------------------------- */

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *p = malloc((size_t)n + 1);
    if (p != NULL && fread(p, 1, (size_t)n, f) != (size_t)n) {
        free(p);
        p = NULL;
    }
    fclose(f);
    if (p != NULL) {
        p[n] = '\0';
        if (len)
            *len = (size_t)n;
    }
    return p;
}

static char *path_in(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Entries of dir whose name contains ".tmp.". */
static int temp_files_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Run argv (PATH lookup) with stdout/stderr to files in dir; returns the exit
 * status (0..255), 127 when the program is missing, -1 on spawn failure. */
static int run(const char *dir, char *const argv[], char **out, char **err)
{
    char *outp = path_in(dir, "cmd.out"), *errp = path_in(dir, "cmd.err");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_addopen(&fa, 2, errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    int status = -1;
    if (rc == ENOENT) {
        status = 127;
    } else if (rc == 0) {
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
            ;
        status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (out)
        *out = slurp(outp, NULL);
    if (err)
        *err = slurp(errp, NULL);
    unlink(outp);
    unlink(errp);
    free(outp);
    free(errp);
    return status;
}

static bool have_program(const char *dir, const char *prog)
{
    char *argv[] = {"sh", "-c", NULL, NULL};
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s", prog);
    argv[2] = cmd;
    return run(dir, argv, NULL, NULL) == 0;
}

/* ---- model ---------------------------------------------------------------------------------- */

static void outcome_names_roundtrip(void)
{
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++)
        CU_ASSERT_EQUAL(pgf_report_outcome_parse(pgf_report_outcome_name((pgf_report_outcome)o)),
                        o);
    CU_ASSERT_STRING_EQUAL(pgf_report_outcome_name(PGF_REPORT_TOO_MANY_CONNECTIONS),
                           "too_many_connections");
    /* the same strings as the session's health reasons (run.c ties the enums) */
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++)
        CU_ASSERT_STRING_EQUAL(pgf_report_outcome_name((pgf_report_outcome)o),
                               pgf_health_reason_name((pgf_health_reason)o));
    CU_ASSERT_EQUAL(pgf_report_outcome_parse("nope"), -1);
    CU_ASSERT_STRING_EQUAL(pgf_report_outcome_name((pgf_report_outcome)99), "unknown");
}

static void histogram_buckets_cover_values(void)
{
    uint64_t vals[] = {0, 1, 15, 16, 17, 31, 32, 33, 1000, 123456789, 1ULL << 40, UINT64_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        unsigned idx = pgf__hist_index(vals[i]);
        CU_ASSERT(idx < PGF__HIST_BUCKETS);
        CU_ASSERT(pgf__hist_lower(idx) <= vals[i]);
        CU_ASSERT(pgf__hist_upper(idx) >= vals[i]);
        /* relative width at most 1/16 */
        CU_ASSERT(pgf__hist_upper(idx) - pgf__hist_lower(idx) <= pgf__hist_lower(idx) / 16 + 1);
    }
    for (unsigned i = 1; i < PGF__HIST_BUCKETS; i++)
        CU_ASSERT_EQUAL(pgf__hist_lower(i), pgf__hist_upper(i - 1) + 1);
}

static void latency_percentiles_are_close(void)
{
    pgf_report *r = pgf_report_new();
    pgf_report_scenario *s = pgf_report_add_scenario(r, "lat", NULL);
    /* 1..1000 us, shuffled order does not matter */
    for (uint64_t i = 1000; i >= 1; i--)
        CU_ASSERT_EQUAL(pgf_report_add_latency(s, PGF_REPORT_HEALTHY, i * 1000, 1), 0);
    pgf_report_latency l;
    pgf_report_latency_get(s, PGF_REPORT_HEALTHY, &l);
    CU_ASSERT_EQUAL(l.count, 1000);
    CU_ASSERT_EQUAL(l.min, 1000);
    CU_ASSERT_EQUAL(l.max, 1000000);
    CU_ASSERT_EQUAL(l.mean, 500500);
    CU_ASSERT(l.p50 >= 500000 && l.p50 <= 500000 * 17 / 16);
    CU_ASSERT(l.p90 >= 900000 && l.p90 <= 900000 * 17 / 16);
    CU_ASSERT(l.p99 >= 990000 && l.p99 <= 1000000);
    /* weighted add == repeated adds; other outcomes untouched */
    CU_ASSERT_EQUAL(pgf_report_add_latency(s, PGF_REPORT_TIMEOUT, 7, 3), 0);
    pgf_report_latency_get(s, PGF_REPORT_TIMEOUT, &l);
    CU_ASSERT(l.count == 3 && l.p50 == 7 && l.p99 == 7 && l.max == 7);
    pgf_report_latency_get(s, PGF_REPORT_CANCELED, &l);
    CU_ASSERT_EQUAL(l.count, 0);
    CU_ASSERT_EQUAL(pgf_report_add_latency(s, PGF_REPORT_OUTCOME_COUNT, 1, 1), PGF_EINVAL);
    pgf_report_free(r);
}

static void builder_merges_and_rejects(void)
{
    pgf_report_free(NULL); /* no-op */
    pgf_report *r = pgf_report_new();
    CU_ASSERT_PTR_NULL(pgf_report_add_scenario(r, NULL, NULL));
    CU_ASSERT_PTR_NULL(pgf_report_add_scenario(NULL, "x", NULL));
    pgf_report_scenario *s = pgf_report_add_scenario(r, "s", NULL);
    CU_ASSERT_EQUAL(pgf_report_add_edge(s, "A", "B", "go", 2, true), 0);
    CU_ASSERT_EQUAL(pgf_report_add_edge(s, "A", "B", "go", 3, true), 0);
    CU_ASSERT_EQUAL(pgf_report_add_edge(s, "A", "B", "go", 1, false), 0); /* separate: illegal */
    CU_ASSERT_EQUAL(pgf_report_add_edge(s, "A", "B", NULL, 1, true), 0);  /* separate: no op */
    CU_ASSERT_EQUAL(s->edges.len, 3);
    CU_ASSERT_EQUAL(s->edges.items[0].count, 5);
    CU_ASSERT_EQUAL(s->states.len, 2); /* states appended by add_edge, deduplicated */
    CU_ASSERT_EQUAL(pgf_report_add_state(s, "A"), 0);
    CU_ASSERT_EQUAL(s->states.len, 2);
    CU_ASSERT_EQUAL(pgf_report_add_span(s, 1, "A", 10, 5), PGF_EINVAL); /* end before start */
    CU_ASSERT_EQUAL(pgf_report_add_rule(s, "r", "ready", "close", 0), 0);
    CU_ASSERT_EQUAL(s->cells.len, 1); /* the rule's site shows in the heat table */
    CU_ASSERT_EQUAL(pgf_report_count_outcome(s, (pgf_report_outcome)-1, 1), PGF_EINVAL);
    CU_ASSERT_PTR_NULL(pgf_report_add_check(s, NULL, true, NULL, NULL));
    CU_ASSERT_EQUAL(pgf_report_set_config(r, NULL), PGF_EINVAL);
    json_t *arr = json_array();
    CU_ASSERT_EQUAL(pgf_report_set_config(r, arr), PGF_EINVAL); /* must be an object */
    json_decref(arr);
    CU_ASSERT_TRUE(pgf_report_passed(r));
    CU_ASSERT_PTR_NOT_NULL(pgf_report_add_check(s, "c", false, NULL, NULL));
    CU_ASSERT_FALSE(pgf_report_passed(r));
    pgf_report_free(r);
}

static void text_is_sanitized_on_the_way_in(void)
{
    pgf_report *r = pgf_report_new();
    pgf_report_scenario *s = pgf_report_add_scenario(r, "caf\xC3\xA9 \xFF", NULL);
    CU_ASSERT_STRING_EQUAL(s->name, "caf\xC3\xA9 \\xff"); /* valid UTF-8 kept, bad byte shown */
    pgf_report_check *c = pgf_report_add_check(s, "c", false, NULL, NULL);
    CU_ASSERT_EQUAL(pgf_report_check_add_witness_n(c, "a\0b\xED\xA0\x80", 6), 0);
    CU_ASSERT_STRING_EQUAL(c->witness.items[0], "a\\x00b\\xed\\xa0\\x80"); /* NUL, surrogate */
    CU_ASSERT_EQUAL(pgf_report_check_add_witness_n(c, all_bytes, 0), 0);
    CU_ASSERT_STRING_EQUAL(c->witness.items[1], "");
    /* The model copies: the caller's buffer may change afterwards. */
    char buf[] = "mutable";
    CU_ASSERT_EQUAL(pgf_report_check_add_witness(c, buf), 0);
    buf[0] = 'X';
    CU_ASSERT_STRING_EQUAL(c->witness.items[2], "mutable");
    /* Escapers */
    pgf_buf b = PGF_BUF_INIT;
    pgf__xml_escape(&b, "<a href=\"x\">&'\t\x01\xEF\xBF\xBF", true);
    pgf_buf_put_u8(&b, 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data,
                           "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&#9;\\x01\xEF\xBF\xBD");
    pgf_buf_reset(&b);
    pgf__console_escape(&b, "ok\x1b[31mred\n\xC2\x9B", false);
    pgf_buf_put_u8(&b, 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "ok\\x1b[31mred\\x0a\\u009b");
    pgf_buf_free(&b);
    pgf_report_free(r);
}

/* ---- writers -------------------------------------------------------------------------------- */

static void json_parses_back_with_documented_keys(void)
{
    char *dir = pgf_t_mkdtemp("reports-json");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    pgf_report *r = build_fixture(true, false);
    char err[512] = "";
    CU_ASSERT_EQUAL(pgf_report_write_json(r, dir, err, sizeof err), 0);
    char *p = path_in(dir, "report.json");
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (j == NULL)
        fprintf(stderr, "report.json: %s at %d:%d\n", je.text, je.line, je.column);
    CU_ASSERT_PTR_NOT_NULL_FATAL(j);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(j, "format")), "pgfault-report");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(j, "version")), 1);
    const char *top[] = {"tool", "run", "summary", "config", "scenarios"};
    for (size_t i = 0; i < sizeof top / sizeof top[0]; i++)
        CU_ASSERT_PTR_NOT_NULL(json_object_get(j, top[i]));
    json_t *run = json_object_get(j, "run");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(run, "seed")), "42");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(run, "mode")), "sim");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(run, "replay_command")), REPLAY);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(run, "started_at")),
                           "2026-11-30T00:53:20.000Z");
    CU_ASSERT(json_is_false(json_object_get(run, "interrupted")));
    json_t *sum = json_object_get(j, "summary");
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(sum, "verdict")), "fail");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sum, "checks_failed")), 2);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sum, "violations")), 5);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(sum, "health_checks")), 2 * 1990);
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(json_object_get(j, "config"), "sessions")),
                    64);
    json_t *s0 = json_array_get(json_object_get(j, "scenarios"), 0);
    const char *skeys[] = {"name",        "description",    "passed",          "seed",
                           "duration_ns", "replay_command", "checks",          "health_checks",
                           "outcomes",    "latency",        "state_machine",   "timeline",
                           "coverage",    "violations",     "violations_total"};
    for (size_t i = 0; i < sizeof skeys / sizeof skeys[0]; i++) {
        if (json_object_get(s0, skeys[i]) == NULL)
            fprintf(stderr, "missing scenario key %s\n", skeys[i]);
        CU_ASSERT_PTR_NOT_NULL(json_object_get(s0, skeys[i]));
    }
    CU_ASSERT(json_is_false(json_object_get(s0, "passed")));
    CU_ASSERT_EQUAL(json_object_size(json_object_get(s0, "outcomes")), PGF_REPORT_OUTCOME_COUNT);
    json_t *lat = json_object_get(json_object_get(s0, "latency"), "healthy");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(lat, "count")), 1700);
    CU_ASSERT(json_integer_value(json_object_get(lat, "p99_ns")) >=
              json_integer_value(json_object_get(lat, "p50_ns")));
    CU_ASSERT(json_array_size(json_object_get(lat, "histogram")) > 3);
    json_t *sm = json_object_get(s0, "state_machine");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(sm, "states")), 8);
    size_t illegal = 0, idx;
    json_t *e;
    json_array_foreach(json_object_get(sm, "edges"), idx, e) illegal +=
        json_is_false(json_object_get(e, "legal"));
    CU_ASSERT_EQUAL(illegal, 2);
    json_t *tl = json_object_get(s0, "timeline");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(tl, "sessions")), 60);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(
                        json_array_get(json_object_get(tl, "sessions"), 0), "spans")),
                    7);
    CU_ASSERT_EQUAL(json_array_size(json_object_get(tl, "faults")), 9);
    json_t *cov = json_object_get(s0, "coverage");
    CU_ASSERT_EQUAL(json_array_size(json_object_get(cov, "never_fired")), 1);
    CU_ASSERT_STRING_EQUAL(
        json_string_value(json_array_get(json_object_get(cov, "never_fired"), 0)), "never-fires");
    CU_ASSERT_EQUAL(json_integer_value(
                        json_object_get(json_object_get(s0, "violations"), "illegal_transition")),
                    4);
    /* The witness with every byte survives as text: NUL and invalid bytes as \xNN. */
    json_t *chk = json_array_get(json_object_get(s0, "checks"), 2);
    CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(chk, "kind")), "illegal_transition");
    CU_ASSERT_EQUAL(json_integer_value(json_object_get(chk, "session")), 14);
    const char *w = json_string_value(json_array_get(json_object_get(chk, "witness"), 1));
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT(strncmp(w, "\\x00\x01\x02", 6) == 0);
    CU_ASSERT(strstr(w, "\\x80\\x81") != NULL);
    CU_ASSERT(strstr(w, "\\xff") != NULL);
    json_decref(j);
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);
    free(p);
    pgf_report_free(r);
    pgf_t_rmtree(dir);
    free(dir);
}

/* xmllint --schema; returns its exit status, prints its complaints. */
static int xmllint_validate(const char *dir, const char *file)
{
    char *xml = path_in(dir, file);
    char *argv[] = {"xmllint", "--noout", "--schema", PGF_TEST_DATA_DIR "/junit-10.xsd", xml, NULL};
    char *out = NULL, *err = NULL;
    int rc = run(dir, argv, &out, &err);
    if (rc != 0)
        fprintf(stderr, "xmllint %s -> %d\n%s%s\n", xml, rc, out ? out : "", err ? err : "");
    free(out);
    free(err);
    free(xml);
    return rc;
}

static char *xpath(const char *dir, const char *file, const char *expr)
{
    char *xml = path_in(dir, file);
    char *argv[] = {"xmllint", "--xpath", (char *)expr, xml, NULL};
    char *out = NULL;
    run(dir, argv, &out, NULL);
    free(xml);
    size_t n = out ? strlen(out) : 0;
    while (n > 0 && out[n - 1] == '\n')
        out[--n] = '\0';
    return out;
}

static void junit_validates_against_schema(void)
{
    char *dir = pgf_t_mkdtemp("reports-junit");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    if (!have_program(dir, "xmllint"))
        CU_FAIL_FATAL("xmllint is missing: install libxml2-utils (scripts/install-deps)");
    char err[512] = "";
    for (int variant = 0; variant < 3; variant++) {
        /* failing with hostile bytes; passing; interrupted */
        pgf_report *r = build_fixture(variant != 1, variant == 2);
        CU_ASSERT_EQUAL(pgf_report_write_junit(r, dir, err, sizeof err), 0);
        CU_ASSERT_EQUAL(xmllint_validate(dir, "junit.xml"), 0);
        char *n = xpath(dir, "junit.xml", "count(//testsuite)");
        CU_ASSERT(n != NULL && strcmp(n, "2") == 0);
        free(n);
        n = xpath(dir, "junit.xml", "count(//testcase/failure)");
        CU_ASSERT(n != NULL && strcmp(n, variant == 1 ? "0" : "2") == 0);
        free(n);
        n = xpath(dir, "junit.xml", "count(//testcase/error[@type='interrupted'])");
        CU_ASSERT(n != NULL && strcmp(n, variant == 2 ? "2" : "0") == 0);
        free(n);
        if (variant == 0) {
            n = xpath(dir, "junit.xml", "string(//testsuite[1]/@failures)");
            CU_ASSERT(n != NULL && strcmp(n, "2") == 0);
            free(n);
            /* The failure body carries the witness and the replay command. */
            n = xpath(dir, "junit.xml",
                      "string(//testcase[@name='no illegal transition']/failure)");
            CU_ASSERT(n != NULL && strstr(n, "witness (3 events") != NULL);
            CU_ASSERT(n != NULL && strstr(n, "replay: " REPLAY) != NULL);
            CU_ASSERT(n != NULL && strstr(n, "\"seq\":117") != NULL);
            free(n);
            n = xpath(dir, "junit.xml",
                      "string(//testcase[@name='no illegal transition']/failure/@type)");
            CU_ASSERT(n != NULL && strcmp(n, "illegal_transition") == 0);
            free(n);
            /* Markup that came off the wire stays text. */
            size_t len;
            char *p = path_in(dir, "junit.xml");
            char *x = slurp(p, &len);
            CU_ASSERT(x != NULL && strstr(x, "</script>") == NULL);
            CU_ASSERT(x != NULL && strstr(x, "<b>") == NULL);
            CU_ASSERT(x != NULL && memchr(x, '\0', len) == NULL);
            free(x);
            free(p);
        }
        pgf_report_free(r);
    }
    /* An empty report is still valid JUnit. */
    pgf_report *r = pgf_report_new();
    CU_ASSERT_EQUAL(pgf_report_write_junit(r, dir, err, sizeof err), 0);
    CU_ASSERT_EQUAL(xmllint_validate(dir, "junit.xml"), 0);
    pgf_report_free(r);
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);
    pgf_t_rmtree(dir);
    free(dir);
}

static void html_is_self_contained(void)
{
    char *dir = pgf_t_mkdtemp("reports-html");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    pgf_report *r = build_fixture(true, true);
    char err[512] = "";
    CU_ASSERT_EQUAL(pgf_report_write_html(r, dir, err, sizeof err), 0);
    char *p = path_in(dir, "report.html");
    char *h = slurp(p, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const char *ids[] = {"id=\"verdict\"",    "id=\"state-machine\"", "id=\"timeline\"",
                         "id=\"latency\"",    "id=\"coverage\"",      "id=\"violations\"",
                         "id=\"report-data\""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(h, ids[i]));
    /* No network: nothing is loaded from anywhere. */
    CU_ASSERT_PTR_NULL(strstr(h, "src=\"http"));
    CU_ASSERT_PTR_NULL(strstr(h, "href=\"http"));
    CU_ASSERT_PTR_NULL(strstr(h, "<link"));
    CU_ASSERT_PTR_NULL(strstr(h, "@import"));
    /* Exactly the three scripts we wrote: hostile text never opens or closes one. */
    size_t opens = 0, closes = 0;
    for (const char *q = h; (q = strstr(q, "<script")) != NULL; q++)
        opens++;
    for (const char *q = h; (q = strstr(q, "</script")) != NULL; q++)
        closes++;
    CU_ASSERT_EQUAL(opens, 3);
    CU_ASSERT_EQUAL(closes, 3);
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "INTERRUPTED"));
    /* 300 sessions in the run; 60 recorded: the failing ones (14, 28, 57)
     * first, then 40 others */
    /* (operation x state) coverage: calls, refused in brackets */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "class=\"heat opcov\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "title=\"called 7, refused 7\">7 (7)</td>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "title=\"called 5\">5</td>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "showing 43 of 300 sessions"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "data-session=\"57\""));
    CU_ASSERT(strstr(h, "data-session=\"57\"") < strstr(h, "data-session=\"1\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "class=\"op racer\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "never completed"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "late-storm"));
    /* the axis reaches the late fault window (2.5 s), past every span */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, ">2.50s</text>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "class=\"lot\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "class=\"tput\""));
    /* the wall-clock duration is not called virtual; the sim one is */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "12.3s wall-clock"));
    CU_ASSERT_PTR_NULL(strstr(h, "12.3s (virtual time)"));
    /* the witness as a sequence diagram with its plain-words sentence */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "<svg class=\"seq\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "<p class=\"plain\">"));
    /* ... and the first one with a witness under the verdict, linked to it */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "What went wrong in incident-close-race &lt;b&gt; (session "
                                     "14): close() moved the session from CONNECTING to CLOSED"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "href=\"#viol-0-"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "ILLEGAL close"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "never-fires"));
    free(h);
    free(p);
    pgf_report_free(r);
    pgf_t_rmtree(dir);
    free(dir);
}

/* Render `file` in headless Chromium; returns the dumped DOM (caller frees)
 * and the browser's stderr in *log. NULL when the browser failed. */
static char *chromium_dump(const char *dir, const char *file, char **log, const char *shot)
{
    char *url = malloc(strlen(dir) + strlen(file) + 16);
    sprintf(url, "file://%s/%s", dir, file);
    char *profile = path_in(dir, "profile");
    mkdir(profile, 0700);
    char udd[600], shotarg[600];
    snprintf(udd, sizeof udd, "--user-data-dir=%s", profile);
    snprintf(shotarg, sizeof shotarg, "--screenshot=%s", shot ? shot : "");
    char *argv[32];
    int n = 0;
    argv[n++] = "timeout";
    argv[n++] = "-k";
    argv[n++] = "10";
    argv[n++] = "90";
    argv[n++] = "chromium";
    argv[n++] = "--headless";
    argv[n++] = "--no-sandbox";
    argv[n++] = "--disable-gpu";
    argv[n++] = "--disable-quic";
    argv[n++] = "--no-first-run";
    argv[n++] = "--disable-background-networking";
    argv[n++] = "--disable-component-update";
    argv[n++] = "--disable-sync";
    argv[n++] = "--disable-dev-shm-usage";
    argv[n++] = udd;
    argv[n++] = "--enable-logging=stderr";
    argv[n++] = "--v=0";
    if (shot) {
        argv[n++] = shotarg;
        argv[n++] = "--window-size=1280,2000";
        argv[n++] = "--hide-scrollbars";
    } else {
        argv[n++] = "--dump-dom";
    }
    argv[n++] = url;
    argv[n] = NULL;
    char *out = NULL;
    int rc = run(dir, argv, &out, log);
    if (rc != 0) {
        fprintf(stderr, "chromium exited %d:\n%s\n", rc, log && *log ? *log : "");
        free(out);
        out = NULL;
    }
    free(url);
    free(profile);
    return out;
}

/* Lines where Chromium logged a page console message or an uncaught error. */
static int console_errors(const char *log)
{
    int n = 0;
    /* Chromium logs "...:INFO:CONSOLE:1] ..." (older builds "CONSOLE(1)") */
    for (const char *q = log; q && (q = strstr(q, ":CONSOLE")) != NULL; q++) {
        const char *eol = strchr(q, '\n');
        fprintf(stderr, "console: %.*s\n", eol ? (int)(eol - q) : 200, q);
        n++;
    }
    for (const char *q = log; q && (q = strstr(q, "Uncaught")) != NULL; q++)
        n++;
    return n;
}

/* The throughput chart draws the run's exact bins, not its sample: dots
 * only in the first second, checks counted over ten; the caption says the
 * dots are a sample of how many checks. */
static void html_throughput_from_exact_bins(void)
{
    char *dir = pgf_t_mkdtemp("reports-tput");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    pgf_report *r = pgf_report_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_report_meta m = {.tool_version = PGF_VERSION,
                         .seed = 1,
                         .mode = "stress",
                         .name = "tput",
                         .duration_ns = 10000000000ULL};
    CU_ASSERT_EQUAL(pgf_report_set_meta(r, &m), 0);
    pgf_report_scenario *s = pgf_report_add_scenario(r, "soak", "bins");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pgf_report_scenario_set_run(s, 1, NULL, 10000000000ULL), 0);
    for (uint64_t k = 0; k < 100; k++)
        CU_ASSERT_EQUAL(pgf_report_add_sample(s, PGF_REPORT_HEALTHY, k * 10000000ULL, 2000000), 0);
    pgf_report_scenario_add_samples_dropped(s, 99900);
    CU_ASSERT_EQUAL(pgf_report_add_latency(s, PGF_REPORT_HEALTHY, 2000000, 98000), 0);
    CU_ASSERT_EQUAL(pgf_report_add_latency(s, PGF_REPORT_TIMEOUT, 9000000, 2000), 0);
    /* 1,000 bins of 10 ms: 100 checks each, 2 of them failed */
    uint64_t ok[1000], bad[1000];
    for (int i = 0; i < 1000; i++)
        ok[i] = 98, bad[i] = 2;
    CU_ASSERT_EQUAL(pgf_report_set_throughput(s, 0, 1000, ok, bad), PGF_EINVAL);
    CU_ASSERT_EQUAL(pgf_report_set_throughput(s, 10000000ULL, 1000, ok, bad), 0);
    char err[512] = "";
    CU_ASSERT_EQUAL_FATAL(pgf_report_write_html(r, dir, err, sizeof err), 0);
    char *p = path_in(dir, "report.html");
    char *h = slurp(p, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "100 of 100000 checks, a uniform sample"));
    /* 200-ms chart bins, each 20 of the run's: 1,960 healthy, 40 failed,
     * to the end of the run, though no dot is past 1 s */
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "in bins of 200ms"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "9.80s: 1960 healthy, 40 failed</title>"));
    CU_ASSERT_PTR_NOT_NULL(strstr(h, "0ns: 1960 healthy, 40 failed</title>"));
    free(h);
    free(p);
    pgf_report_free(r);
    pgf_t_rmtree(dir);
    free(dir);
}

static void html_renders_in_headless_chromium(void)
{
    char *dir = pgf_t_mkdtemp("reports-chromium");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    if (!have_program(dir, "chromium"))
        CU_FAIL_FATAL("chromium is missing: install it (scripts/install-deps)");
    pgf_report *r = build_fixture(true, false);
    char err[512] = "";
    CU_ASSERT_EQUAL(pgf_report_write_all(r, dir, err, sizeof err), 0);

    char *log = NULL;
    char *dom = chromium_dump(dir, "report.html", &log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-rendered=\"ok\""));
    CU_ASSERT_PTR_NULL(strstr(dom, "data-error"));
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-scenarios=\"2\""));
    const char *ids[] = {"id=\"verdict\"", "id=\"state-machine\"", "id=\"timeline\"",
                         "id=\"latency\"", "id=\"coverage\"",      "id=\"violations\""};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++)
        CU_ASSERT_PTR_NOT_NULL(strstr(dom, ids[i]));
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-verdict=\"fail\""));
    /* SVG figures made it into the DOM. */
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<svg class=\"sm\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "<svg class=\"tl\""));
    CU_ASSERT_EQUAL(console_errors(log), 0);
    free(dom);
    free(log);

    /* Negative control: the same check catches a page whose script throws. */
    static const char broken[] =
        "<!DOCTYPE html><html><head><script>window.onerror=function(m){document."
        "documentElement.dataset.error=String(m);};</script></head><body><script>"
        "nosuchfunction();document.body.dataset.rendered='ok';</script></body></html>";
    CU_ASSERT_EQUAL(
        pgf_atomic_write(dir, "broken.html", broken, sizeof broken - 1, err, sizeof err), 0);
    log = NULL;
    dom = chromium_dump(dir, "broken.html", &log, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
    CU_ASSERT_PTR_NOT_NULL(strstr(dom, "data-error"));
    CU_ASSERT_PTR_NULL(strstr(dom, "data-rendered=\"ok\""));
    CU_ASSERT(console_errors(log) > 0);
    free(dom);
    free(log);

    /* PGF_REPORT_OUT=dir keeps the fixture's reports, PGF_REPORT_SHOT=path a
     * screenshot, for a human to look at. */
    const char *keep = getenv("PGF_REPORT_OUT");
    if (keep != NULL && *keep)
        CU_ASSERT_EQUAL(pgf_report_write_all(r, keep, err, sizeof err), 0);
    const char *shot = getenv("PGF_REPORT_SHOT");
    if (shot != NULL && *shot) {
        log = NULL;
        char *o = chromium_dump(dir, "report.html", &log, shot);
        free(o);
        free(log);
    }
    pgf_report_free(r);
    pgf_t_rmtree(dir);
    free(dir);
}

static bool starts_with(const char *s, const char *prefix)
{
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The console summary of r, as a malloc'd string (*len its length). */
static char *summary_text(const pgf_report *r, size_t *len)
{
    char *text = NULL;
    FILE *f = open_memstream(&text, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    pgf_report_print_summary(r, f);
    fclose(f);
    return text;
}

static void console_summary_fits_one_screen(void)
{
    pgf_report *r = build_fixture(true, false);
    size_t len = 0;
    char *text = summary_text(r, &len);
    fputs(text, stderr); /* what a person sees; shown in the test log */
    CU_ASSERT(
        starts_with(text, "pgfault: FAIL - 2 of 6 verdict checks failed in 1 of 2 scenarios\n"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "reproduce: " REPLAY));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "out/report.html"));
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "no illegal transition"));
    /* nothing from the wire reaches the terminal raw */
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)text[i] < 0x20 && text[i] != '\n')
            CU_FAIL("raw control character in the console summary");
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        lines += text[i] == '\n';
    CU_ASSERT(lines <= 40);
    free(text);
    pgf_report_free(r);

    r = build_fixture(false, false);
    text = summary_text(r, &len);
    CU_ASSERT(starts_with(text, "pgfault: PASS - all 4 verdict checks passed in 2 scenarios\n"));
    CU_ASSERT_PTR_NULL(strstr(text, "reproduce:"));
    free(text);
    pgf_report_free(r);
}

/* A failed check with a witness leads, wherever a failure is named first:
 * a kind whose violations all came after their session's first has none
 * (the checker lists a session's first violation only), and a reader
 * must first see one they can act on. */
static void witnessed_failure_named_first(void)
{
    pgf_report *r = pgf_report_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r);
    pgf_report_meta m = {.tool_version = PGF_VERSION, .seed = 1, .mode = "sim", .name = "lead"};
    CU_ASSERT_EQUAL(pgf_report_set_meta(r, &m), 0);
    pgf_report_scenario *s = pgf_report_add_scenario(r, "lead", NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_EQUAL(pgf_report_scenario_set_run(s, 1, NULL, 1000000ULL), 0);
    CU_ASSERT_PTR_NOT_NULL(pgf_report_add_check(s, "checker: no bare_kind", false, "bare_kind",
                                                "7 x bare_kind, each after another"));
    pgf_report_check *c = pgf_report_add_check(s, "checker: no witnessed_kind", false,
                                               "witnessed_kind", "7 x witnessed_kind: here");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    pgf_report_check_set_session(c, 3);
    CU_ASSERT_EQUAL(pgf_report_check_add_witness(c, "{\"seq\":1}"), 0);

    size_t len = 0;
    char *text = summary_text(r, &len);
    const char *list = strstr(text, "first violations:");
    CU_ASSERT_PTR_NOT_NULL_FATAL(list);
    const char *w = strstr(list, "no witnessed_kind"), *bare = strstr(list, "no bare_kind");
    CU_ASSERT_PTR_NOT_NULL_FATAL(w);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bare);
    CU_ASSERT(w < bare);
    free(text);

    char *dir = pgf_t_mkdtemp("reports-lead");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char err[256], path[1024];
    CU_ASSERT_EQUAL_FATAL(pgf_report_write_all(r, dir, err, sizeof err), 0);
    snprintf(path, sizeof path, "%s/report.html", dir);
    char *h = slurp(path, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    const char *col = strstr(h, "<th>first failure</th>");
    CU_ASSERT_PTR_NOT_NULL_FATAL(col);
    const char *cell = strstr(col, "<a href=\"#viol-0\">");
    CU_ASSERT_PTR_NOT_NULL_FATAL(cell);
    CU_ASSERT(strncmp(cell + strlen("<a href=\"#viol-0\">"), "checker: no witnessed_kind", 26) ==
              0);
    free(h);
    pgf_t_rmtree(dir);
    free(dir);
    pgf_report_free(r);
}

/* ---- atomicity ------------------------------------------------------------------------------ */

static void atomic_write_replaces_or_keeps(void)
{
    char *dir = pgf_t_mkdtemp("reports-atomic");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char err[512] = "";
    char *p = path_in(dir, "f.txt");
    CU_ASSERT_EQUAL(pgf_atomic_write(dir, "f.txt", "old\n", 4, err, sizeof err), 0);
    struct stat st;
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL(st.st_mode & 0777, 0644);

    /* An aborted write leaves the old file and no temp file. */
    pgf_atomic_file af;
    CU_ASSERT_EQUAL_FATAL(pgf_atomic_file_open(&af, dir, "f.txt", err, sizeof err), 0);
    fputs("half a new fi", af.fp);
    fflush(af.fp);
    CU_ASSERT_EQUAL(temp_files_in(dir), 1); /* the partial content is only in the temp file */
    char *c = slurp(p, NULL);
    CU_ASSERT(c != NULL && strcmp(c, "old\n") == 0);
    free(c);
    pgf_atomic_file_abort(&af);
    pgf_atomic_file_abort(&af); /* twice is fine */
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);

    /* A failing rename (the target is a non-empty directory) names the path. */
    char *sub = path_in(dir, "blocked");
    mkdir(sub, 0755);
    char *inner = path_in(sub, "x");
    FILE *f = fopen(inner, "w");
    fclose(f);
    int rc = pgf_atomic_write(dir, "blocked", "data", 4, err, sizeof err);
    CU_ASSERT_EQUAL(rc, PGF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, sub));
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);

    /* A missing directory names the path. */
    char *gone = path_in(dir, "no/such");
    rc = pgf_atomic_write(gone, "f.txt", "x", 1, err, sizeof err);
    CU_ASSERT_EQUAL(rc, PGF_EIO);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, gone));
    CU_ASSERT_EQUAL(pgf_atomic_write(dir, "a/b", "x", 1, err, sizeof err), PGF_EINVAL);

    /* A successful replace. */
    CU_ASSERT_EQUAL(pgf_atomic_write(dir, "f.txt", "new\n", 4, err, sizeof err), 0);
    c = slurp(p, NULL);
    CU_ASSERT(c != NULL && strcmp(c, "new\n") == 0);
    free(c);
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);
    free(gone);
    free(inner);
    free(sub);
    free(p);
    pgf_t_rmtree(dir);
    free(dir);
}

/* A long stream has its writeback started every PGF_ATOMIC_WRITEBACK_EVERY
 * bytes (so the commit's fsync waits for the tail only), a short one never,
 * and the content is whole either way. */
static void atomic_stream_starts_writeback(void)
{
    char *dir = pgf_t_mkdtemp("reports-writeback");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char err[512] = "";
    pgf_atomic_file af;
    CU_ASSERT_EQUAL_FATAL(pgf_atomic_file_open(&af, dir, "h.jsonl", err, sizeof err), 0);
    static char block[64 * 1024];
    memset(block, 'x', sizeof block);
    size_t total = PGF_ATOMIC_WRITEBACK_EVERY * 5 / 2, put = 0;
    while (put < total) {
        CU_ASSERT_EQUAL_FATAL(fwrite(block, 1, sizeof block, af.fp), sizeof block);
        put += sizeof block;
    }
    CU_ASSERT_EQUAL(fflush(af.fp), 0);
    CU_ASSERT_EQUAL(pgf_atomic_file_writeback_hints(&af), 2);
    CU_ASSERT_EQUAL(pgf_atomic_file_commit(&af, err, sizeof err), 0);
    char *p = path_in(dir, "h.jsonl");
    struct stat st;
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_EQUAL((size_t)st.st_size, put);

    /* its digest was taken as it was written: the file's own SHA-256 */
    size_t n = 0;
    char *c = slurp(p, &n);
    CU_ASSERT_FATAL(c != NULL && n == put);
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned dl = 0;
    CU_ASSERT_EQUAL(EVP_Digest(c, n, d, &dl, EVP_sha256(), NULL), 1);
    char want[65], got[65] = "";
    for (unsigned i = 0; i < 32; i++)
        snprintf(want + 2 * i, 3, "%02x", d[i]);
    free(c);
    CU_ASSERT_TRUE(pgf_atomic_known_sha256(&st, got));
    CU_ASSERT_STRING_EQUAL(got, want);
    /* changed since (size and mtime move): not known, read it again */
    FILE *f = fopen(p, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("more", f);
    fclose(f);
    CU_ASSERT_EQUAL(stat(p, &st), 0);
    CU_ASSERT_FALSE(pgf_atomic_known_sha256(&st, got));
    CU_ASSERT_EQUAL_FATAL(pgf_atomic_file_open(&af, dir, "small", err, sizeof err), 0);
    fputs("short\n", af.fp);
    CU_ASSERT_EQUAL(fflush(af.fp), 0);
    CU_ASSERT_EQUAL(pgf_atomic_file_writeback_hints(&af), 0);
    CU_ASSERT_EQUAL(pgf_atomic_file_commit(&af, err, sizeof err), 0);
    free(p);
    pgf_t_rmtree(dir);
    free(dir);
}

/* A writer that runs out of file space mid-write (RLIMIT_FSIZE in a child)
 * fails with the path named and leaves the previous report byte-identical. */
static void failed_report_write_keeps_old_file(void)
{
    char *dir = pgf_t_mkdtemp("reports-efbig");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char err[512] = "";
    pgf_report *small = pgf_report_new();
    CU_ASSERT_EQUAL(pgf_report_write_all(small, dir, err, sizeof err), 0);
    const char *files[] = {"report.json", "junit.xml", "report.html"};
    char *before[3];
    size_t before_len[3];
    for (int i = 0; i < 3; i++) {
        char *p = path_in(dir, files[i]);
        before[i] = slurp(p, &before_len[i]);
        CU_ASSERT_PTR_NOT_NULL(before[i]);
        free(p);
    }
    pgf_report *big = build_fixture(true, false);
    for (int i = 0; i < 3; i++) {
        int pfd[2];
        CU_ASSERT_EQUAL_FATAL(pipe(pfd), 0);
        pid_t pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            signal(SIGXFSZ, SIG_IGN);
            /* room for the old file's size, not for the new report */
            rlim_t lim = (rlim_t)before_len[i] + 1024;
            struct rlimit rl = {lim, lim};
            setrlimit(RLIMIT_FSIZE, &rl);
            char cerr[512] = "";
            int rc = i == 0   ? pgf_report_write_json(big, dir, cerr, sizeof cerr)
                     : i == 1 ? pgf_report_write_junit(big, dir, cerr, sizeof cerr)
                              : pgf_report_write_html(big, dir, cerr, sizeof cerr);
            ssize_t wr = write(pfd[1], cerr, strlen(cerr));
            (void)wr;
            _exit(rc == 0 ? 0 : 1);
        }
        close(pfd[1]);
        char cerr[512] = "";
        ssize_t got = read(pfd[0], cerr, sizeof cerr - 1);
        cerr[got > 0 ? got : 0] = '\0';
        close(pfd[0]);
        int status;
        waitpid(pid, &status, 0);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 1);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 1))
            fprintf(stderr, "%s: child status %d: %s\n", files[i], status, cerr);
        char *p = path_in(dir, files[i]);
        CU_ASSERT_PTR_NOT_NULL(strstr(cerr, p));
        size_t len;
        char *now = slurp(p, &len);
        CU_ASSERT(now != NULL && len == before_len[i] && memcmp(now, before[i], len) == 0);
        free(now);
        free(p);
        CU_ASSERT_EQUAL(temp_files_in(dir), 0);
    }
    for (int i = 0; i < 3; i++)
        free(before[i]);
    /* Without the limit the same report writes fine. */
    CU_ASSERT_EQUAL(pgf_report_write_all(big, dir, err, sizeof err), 0);
    CU_ASSERT_EQUAL(temp_files_in(dir), 0);
    pgf_report_free(big);
    pgf_report_free(small);
    pgf_t_rmtree(dir);
    free(dir);
}

static void writers_refuse_a_broken_report(void)
{
    char *dir = pgf_t_mkdtemp("reports-broken");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    pgf_report *r = build_fixture(false, false);
    r->failed = true; /* what an allocation failure while building leaves behind */
    char err[512] = "";
    CU_ASSERT_EQUAL(pgf_report_write_all(r, dir, err, sizeof err), PGF_ENOMEM);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "out of memory"));
    char *p = path_in(dir, "report.json");
    CU_ASSERT_NOT_EQUAL(access(p, F_OK), 0);
    free(p);
    CU_ASSERT_EQUAL(pgf_report_write_json(NULL, dir, err, sizeof err), PGF_EINVAL);
    pgf_report_free(r);
    pgf_t_rmtree(dir);
    free(dir);
}

static const pgf_test model_tests[] = {
    {"outcome_names_roundtrip", outcome_names_roundtrip},
    {"histogram_buckets_cover_values", histogram_buckets_cover_values},
    {"latency_percentiles_are_close", latency_percentiles_are_close},
    {"builder_merges_and_rejects", builder_merges_and_rejects},
    {"text_is_sanitized_on_the_way_in", text_is_sanitized_on_the_way_in},
    PGF_TESTS_END,
};

static const pgf_test writer_tests[] = {
    {"json_parses_back_with_documented_keys", json_parses_back_with_documented_keys},
    {"junit_validates_against_schema", junit_validates_against_schema},
    {"html_is_self_contained", html_is_self_contained},
    {"html_throughput_from_exact_bins", html_throughput_from_exact_bins},
    {"console_summary_fits_one_screen", console_summary_fits_one_screen},
    {"witnessed_failure_named_first", witnessed_failure_named_first},
    {"atomic_write_replaces_or_keeps", atomic_write_replaces_or_keeps},
    {"atomic_stream_starts_writeback", atomic_stream_starts_writeback},
    {"failed_report_write_keeps_old_file", failed_report_write_keeps_old_file},
    {"writers_refuse_a_broken_report", writers_refuse_a_broken_report},
    PGF_TESTS_END,
};

static const pgf_test html_tests[] = {
    {"html_renders_in_headless_chromium", html_renders_in_headless_chromium},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_reports[] = {
    {"reports_model", NULL, NULL, model_tests},
    {"reports_writers", NULL, NULL, writer_tests},
    {"reports_html", NULL, NULL, html_tests},
    PGF_SUITES_END,
};
