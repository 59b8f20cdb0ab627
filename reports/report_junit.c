/* report_junit.c - junit.xml: one <testsuite> per scenario, one <testcase>
 * per check or expectation, a <failure> carrying the violation witness and
 * the replay command. The harness adds the same checks whatever the outcome
 * (one per violation kind, one per expectation), so testcase names are
 * stable and CI test history works; each testcase's time is the wall-clock
 * time of the scenario run that produced its evidence. Valid against tests/data/junit-10.xsd (what
 * Jenkins, GitLab and GitHub reporters read). Every piece of text is escaped: the model holds valid
 * UTF-8, and pgf__xml_escape() turns XML-illegal control characters into "\xNN" text. */
#include <string.h>
#include <unistd.h>

#include "atomic.h"
#include "pgfault/clock.h"
#include "report_internal.h"

static void esc(pgf_buf *b, const char *s)
{
    pgf__xml_escape(b, s ? s : "", false);
}

static void attr(pgf_buf *b, const char *name, const char *v)
{
    pgf_buf_printf(b, " %s=\"", name);
    pgf__xml_escape(b, v ? v : "", true);
    pgf_buf_put_u8(b, '"');
}

static void property(pgf_buf *b, const char *name, const char *v)
{
    PGF__PUT_LIT(b, "      <property");
    attr(b, "name", name);
    attr(b, "value", v);
    PGF__PUT_LIT(b, "/>\n");
}

static double secs(uint64_t ns)
{
    return (double)ns / 1e9;
}

/* The scenario summary for <system-out> (escaped by the caller). */
static void scenario_summary(pgf_buf *t, const pgf_report_scenario *s)
{
    pgf_buf_printf(t, "scenario %s: %s\n", s->name, pgf__scenario_passed(s) ? "PASS" : "FAIL");
    pgf_buf_printf(t, "health checks: %llu\n", (unsigned long long)pgf__scenario_health_checks(s));
    if (s->wall_ns != 0)
        pgf_buf_printf(t, "wall-clock time: %.3f s\n", secs(s->wall_ns));
    if (s->has_run)
        pgf_buf_printf(t, "run duration: %.3f s (%s)\n", secs(s->duration_ns),
                       pgf__scenario_virtual(s) ? "virtual time, --mode sim" : "wall clock");
    if (pgf__scenario_virtual(s))
        pgf_buf_printf(t, "latencies below are in virtual time (--mode sim)\n");
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++) {
        if (s->outcomes[o] == 0 && s->latency[o].count == 0)
            continue;
        pgf_buf_printf(t, "  %-22s %llu", pgf_report_outcome_name((pgf_report_outcome)o),
                       (unsigned long long)s->outcomes[o]);
        pgf_report_latency l;
        pgf_report_latency_get(s, (pgf_report_outcome)o, &l);
        if (l.count > 0)
            pgf_buf_printf(t, "  p50 %.3fms p90 %.3fms p99 %.3fms max %.3fms", l.p50 / 1e6,
                           l.p90 / 1e6, l.p99 / 1e6, l.max / 1e6);
        pgf_buf_put_u8(t, '\n');
    }
    if (s->violations.len > 0) {
        pgf_buf_printf(t, "violations: %llu\n", (unsigned long long)pgf__scenario_violations(s));
        for (size_t i = 0; i < s->violations.len; i++)
            pgf_buf_printf(t, "  %s: %llu\n", s->violations.items[i].key,
                           (unsigned long long)s->violations.items[i].n);
    }
    size_t never = 0;
    for (size_t i = 0; i < s->rules.len; i++)
        never += s->rules.items[i].fired == 0;
    if (s->rules.len > 0)
        pgf_buf_printf(t, "fault rules: %zu, never fired: %zu\n", s->rules.len, never);
}

/* Wall-clock seconds of a scenario: what CI systems add up. The virtual
 * duration of a sim run is not how long CI waited for it. */
static double scenario_secs(const pgf_report *r, const pgf_report_scenario *s)
{
    if (s->wall_ns != 0)
        return secs(s->wall_ns);
    if (r->scenarios.len == 1 && r->duration_ns != 0)
        return secs(r->duration_ns);
    return secs(s->has_run ? s->duration_ns : 0);
}

static void testcase(pgf_buf *b, const pgf_report_scenario *s, const pgf_report_check *c)
{
    PGF__PUT_LIT(b, "    <testcase");
    attr(b, "name", c->name);
    PGF__PUT_LIT(b, " classname=\"pgfault.");
    pgf__xml_escape(b, s->name, true);
    pgf_buf_printf(b, "\" time=\"%.3f\"", scenario_secs(s->report, s));
    if (c->passed) {
        PGF__PUT_LIT(b, "/>\n");
        return;
    }
    PGF__PUT_LIT(b, ">\n      <failure");
    attr(b, "message", c->message ? c->message : "check failed");
    attr(b, "type", c->kind ? c->kind : "violation");
    pgf_buf_put_u8(b, '>');
    pgf_buf body = PGF_BUF_INIT;
    pgf_buf_printf(&body, "%s\n", c->message ? c->message : "check failed");
    if (c->kind != NULL)
        pgf_buf_printf(&body, "kind: %s\n", c->kind);
    if (c->session != 0)
        pgf_buf_printf(&body, "session: %llu\n", (unsigned long long)c->session);
    if (c->witness.len > 0) {
        pgf_buf_printf(&body, "\nwitness (%zu events, oldest first):\n", c->witness.len);
        for (size_t i = 0; i < c->witness.len; i++) {
            /* one event per line: control characters inside it shown as \xNN */
            PGF__PUT_LIT(&body, "  ");
            pgf__console_escape(&body, c->witness.items[i], false);
            pgf_buf_put_u8(&body, '\n');
        }
    }
    const char *replay = pgf__scenario_replay(s);
    if (replay != NULL)
        pgf_buf_printf(&body, "\nreplay: %s\n", replay);
    pgf_buf_put_u8(&body, '\0');
    if (body.failed)
        b->failed = true;
    else
        esc(b, (const char *)body.data);
    pgf_buf_free(&body);
    PGF__PUT_LIT(b, "</failure>\n    </testcase>\n");
}

static void testsuite(pgf_buf *b, const pgf_report *r, const pgf_report_scenario *s)
{
    size_t failures = 0;
    for (size_t i = 0; i < s->checks.len; i++)
        failures += !s->checks.items[i]->passed;
    char host[256] = "localhost", ts[40] = "";
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = '\0';
    if (r->start_wall_us != 0) {
        pgf_wall_iso8601(r->start_wall_us, ts, sizeof ts);
        ts[19] = '\0'; /* JUnit timestamps have no fraction or zone: ISO8601_DATETIME_PATTERN */
    }
    PGF__PUT_LIT(b, "  <testsuite");
    attr(b, "name", s->name);
    pgf_buf_printf(b, " tests=\"%zu\" failures=\"%zu\" errors=\"%d\" skipped=\"0\" time=\"%.3f\"",
                   s->checks.len + (r->interrupted ? 1 : 0), failures, r->interrupted ? 1 : 0,
                   scenario_secs(r, s));
    if (*ts)
        attr(b, "timestamp", ts);
    attr(b, "hostname", host);
    PGF__PUT_LIT(b, ">\n    <properties>\n");
    char num[32];
    snprintf(num, sizeof num, "%llu", (unsigned long long)(s->has_run ? s->seed : r->seed));
    property(b, "seed", num);
    property(b, "mode", r->mode ? r->mode : "");
    property(b, "pgfault.version", r->tool_version ? r->tool_version : "");
    if (pgf__scenario_replay(s) != NULL)
        property(b, "replay", pgf__scenario_replay(s));
    if (s->description != NULL)
        property(b, "description", s->description);
    property(b, "interrupted", r->interrupted ? "true" : "false");
    PGF__PUT_LIT(b, "    </properties>\n");
    for (size_t i = 0; i < s->checks.len; i++)
        testcase(b, s, s->checks.items[i]);
    if (r->interrupted) {
        PGF__PUT_LIT(b, "    <testcase name=\"run completed\"");
        PGF__PUT_LIT(b, " classname=\"pgfault.");
        pgf__xml_escape(b, s->name, true);
        pgf_buf_printf(b, "%s",
                       "\" time=\"0\">\n      <error message=\"run interrupted by a signal; "
                       "results are partial\" type=\"interrupted\"/>\n    </testcase>\n");
    }
    pgf_buf out = PGF_BUF_INIT;
    scenario_summary(&out, s);
    pgf_buf_put_u8(&out, '\0');
    PGF__PUT_LIT(b, "    <system-out>");
    if (out.failed)
        b->failed = true;
    else
        esc(b, (const char *)out.data);
    pgf_buf_free(&out);
    PGF__PUT_LIT(b, "</system-out>\n  </testsuite>\n");
}

int pgf_report_write_junit(const pgf_report *r, const char *dir, char *err, size_t errlen)
{
    int rc = pgf__report_check_built(r, err, errlen);
    if (rc != 0)
        return rc;
    pgf__totals t;
    pgf__report_totals(r, &t);
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites");
    attr(&b, "name", r->name ? r->name : "pgfault");
    pgf_buf_printf(&b, " tests=\"%zu\" failures=\"%zu\" errors=\"%zu\" time=\"%.3f\">\n",
                   t.checks + (r->interrupted ? t.scenarios : 0), t.checks_failed,
                   r->interrupted ? t.scenarios : 0, secs(r->duration_ns));
    for (size_t i = 0; i < r->scenarios.len; i++)
        testsuite(&b, r, r->scenarios.items[i]);
    pgf_buf_printf(&b, "</testsuites>\n");
    if (b.failed) {
        pgf_buf_free(&b);
        return pgf__report_err(err, errlen, PGF_ENOMEM, "%s/junit.xml: out of memory", dir);
    }
    rc = pgf_atomic_write(dir, "junit.xml", b.data, b.len, err, errlen);
    pgf_buf_free(&b);
    return rc;
}
