/* report_console.c - the summary printed at the end of every run: one
 * screen, verdict first, then counts, the first violations and what to do
 * next. Everything that may have come off the wire is printed with control
 * characters escaped, so no terminal escape sequence gets through. */
#include <string.h>

#include "report_internal.h"

#define MAX_SCENARIO_LINES 8
#define MAX_VIOLATIONS     3
#define MAX_WITNESS_LINES  4
#define MAX_TEXT           150

/* Print `s` escaped and cut to at most `max` bytes on a character boundary. */
static void text(FILE *out, const char *s, size_t max)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf__console_escape(&b, s ? s : "", false);
    if (b.failed) {
        pgf_buf_free(&b);
        fputs("(out of memory)", out);
        return;
    }
    size_t n = b.len;
    if (n > max) {
        n = max;
        while (n > 0 && (b.data[n] & 0xC0) == 0x80) /* don't split a UTF-8 sequence */
            n--;
    }
    fwrite(b.data, 1, n, out);
    if (n < b.len)
        fputs("...", out);
    pgf_buf_free(&b);
}

static void ms(FILE *out, uint64_t ns)
{
    if (ns < 1000000)
        fprintf(out, "%.1fus", (double)ns / 1e3);
    else if (ns < 10000000000ULL)
        fprintf(out, "%.1fms", (double)ns / 1e6);
    else
        fprintf(out, "%.1fs", (double)ns / 1e9);
}

static void scenario_line(FILE *out, const pgf_report_scenario *s)
{
    fprintf(out, "  %s ", pgf__scenario_passed(s) ? "PASS" : "FAIL");
    text(out, s->name, 40);
    fprintf(out, ": %llu checks", (unsigned long long)pgf__scenario_health_checks(s));
    for (int o = 1; o < PGF_REPORT_OUTCOME_COUNT; o++)
        if (s->outcomes[o] > 0)
            fprintf(out, ", %s %llu", pgf_report_outcome_name((pgf_report_outcome)o),
                    (unsigned long long)s->outcomes[o]);
    pgf_report_latency l;
    pgf_report_latency_get(s, PGF_REPORT_HEALTHY, &l);
    if (l.count > 0) {
        fputs(", healthy p99 ", out);
        ms(out, l.p99);
        if (pgf__scenario_virtual(s))
            fputs(" (virtual)", out);
    }
    uint64_t v = pgf__scenario_violations(s);
    if (v > 0)
        fprintf(out, ", %llu violations", (unsigned long long)v);
    fputc('\n', out);
}

void pgf_report_print_summary(const pgf_report *r, FILE *out)
{
    if (r == NULL || out == NULL)
        return;
    pgf__totals t;
    pgf__report_totals(r, &t);
    bool pass = t.checks_failed == 0;

    if (pass)
        fprintf(out, "pgfault: PASS - all %zu verdict checks passed in %zu scenario%s", t.checks,
                t.scenarios, t.scenarios == 1 ? "" : "s");
    else
        fprintf(out, "pgfault: FAIL - %zu of %zu verdict checks failed in %zu of %zu scenario%s",
                t.checks_failed, t.checks, t.scenarios_failed, t.scenarios,
                t.scenarios == 1 ? "" : "s");
    fputs(r->interrupted ? " (INTERRUPTED: partial results)\n" : "\n", out);
    fprintf(out, "  seed %llu, mode %s, ", (unsigned long long)r->seed, r->mode ? r->mode : "?");
    ms(out, r->duration_ns);
    fputs(" wall", out);
    if (r->scenarios.len == 1 && r->scenarios.items[0]->has_run &&
        pgf__scenario_virtual(r->scenarios.items[0])) {
        fputs(" (", out);
        ms(out, r->scenarios.items[0]->duration_ns);
        fputs(" virtual)", out);
    }
    fprintf(out, ", %llu health checks, %llu violations\n", (unsigned long long)t.health_checks,
            (unsigned long long)t.violations);

    /* Scenarios, failed ones first, capped. */
    size_t shown = 0;
    for (int pass_round = 0; pass_round < 2; pass_round++) {
        for (size_t i = 0; i < r->scenarios.len; i++) {
            const pgf_report_scenario *s = r->scenarios.items[i];
            if (pgf__scenario_passed(s) != (pass_round == 1))
                continue;
            if (shown++ < MAX_SCENARIO_LINES)
                scenario_line(out, s);
        }
    }
    if (shown > MAX_SCENARIO_LINES)
        fprintf(out, "  ... and %zu more scenarios (see the reports)\n",
                shown - MAX_SCENARIO_LINES);

    if (!pass) {
        fputs("\nfirst violations:\n", out);
        size_t n = 0;
        /* failed checks with a witness first (what the HTML's "what went
         * wrong" shows), then the others */
        for (int round = 0; round < 2; round++)
            for (size_t i = 0; i < r->scenarios.len; i++) {
                const pgf_report_scenario *s = r->scenarios.items[i];
                for (size_t j = 0; j < s->checks.len; j++) {
                    const pgf_report_check *c = s->checks.items[j];
                    if (c->passed || (c->witness.len > 0) != (round == 0) || n++ >= MAX_VIOLATIONS)
                        continue;
                    fputs("  ", out);
                    text(out, s->name, 40);
                    fputs(" / ", out);
                    text(out, c->name, 60);
                    if (c->kind != NULL) {
                        fputs(" [", out);
                        text(out, c->kind, 40);
                        fputc(']', out);
                    }
                    if (c->session != 0)
                        fprintf(out, " session %llu", (unsigned long long)c->session);
                    fputs("\n    ", out);
                    text(out, c->message ? c->message : "check failed", MAX_TEXT);
                    fputc('\n', out);
                    /* in plain words, when the witness says enough */
                    pgf_buf says = PGF_BUF_INIT;
                    if (pgf__check_sentence(c, &says) == 0 && says.len > 0) {
                        pgf_buf_put_u8(&says, 0);
                        if (!says.failed) {
                            fputs("    in plain words: ", out);
                            text(out, (const char *)says.data, 400);
                            fputc('\n', out);
                        }
                    }
                    pgf_buf_free(&says);
                    size_t w = c->witness.len,
                           from = w > MAX_WITNESS_LINES ? w - MAX_WITNESS_LINES : 0;
                    if (w > 0)
                        fprintf(out, "    witness (last %zu of %zu events):\n", w - from, w);
                    for (size_t k = from; k < w; k++) {
                        fputs("      ", out);
                        text(out, c->witness.items[k], MAX_TEXT);
                        fputc('\n', out);
                    }
                }
            }
        if (n > MAX_VIOLATIONS)
            fprintf(out, "  ... and %zu more failed checks\n", n - MAX_VIOLATIONS);
    }

    fputs("\nnext:\n", out);
    if (!pass && r->replay_command != NULL) {
        fputs("  reproduce: ", out);
        text(out, r->replay_command, 400);
        fputc('\n', out);
    } else if (!pass) {
        for (size_t i = 0; i < r->scenarios.len; i++) {
            const pgf_report_scenario *s = r->scenarios.items[i];
            if (!pgf__scenario_passed(s) && pgf__scenario_replay(s) != NULL) {
                fputs("  reproduce: ", out);
                text(out, pgf__scenario_replay(s), 400);
                fputc('\n', out);
                break;
            }
        }
    }
    if (r->out_dir != NULL) {
        fputs("  open ", out);
        text(out, r->out_dir, 200);
        fputs("/report.html in a browser (verdict, state machine, timeline, witnesses)\n", out);
        fputs("  CI: ", out);
        text(out, r->out_dir, 200);
        fputs("/junit.xml; machine-readable: ", out);
        text(out, r->out_dir, 200);
        fputs("/report.json\n", out);
    }
    if (r->interrupted)
        fputs("  the run was interrupted: rerun without interrupting for a full verdict\n", out);
    else if (pass)
        fputs("  nothing to do: every check passed\n", out);
}
