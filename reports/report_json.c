/* report_json.c - report.json: the whole model as one JSON document
 * (schema: docs/report-format.md, "format":"pgfault-report","version":1).
 * Built with jansson; the model's strings are valid UTF-8 already. */
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "pgfault/clock.h"
#include "report_internal.h"

/* jansson setters that steal a NULL value fail; `ok` collects that. */
static void set(json_t *o, const char *k, json_t *v, bool *ok)
{
    if (v == NULL || json_object_set_new(o, k, v) != 0)
        *ok = false;
}

static void push(json_t *a, json_t *v, bool *ok)
{
    if (v == NULL || json_array_append_new(a, v) != 0)
        *ok = false;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *u64(uint64_t v)
{
    /* json_int_t is 64-bit signed; nanosecond counts fit for 292 years. */
    return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

static json_t *u64_str(uint64_t v)
{
    char b[24];
    snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    return json_string(b);
}

static json_t *wall(uint64_t us)
{
    if (us == 0)
        return json_null();
    char b[40];
    pgf_wall_iso8601(us, b, sizeof b);
    return json_string(b);
}

static json_t *latency_json(const pgf_report_scenario *s, int o, bool *ok)
{
    pgf_report_latency l;
    pgf_report_latency_get(s, (pgf_report_outcome)o, &l);
    json_t *j = json_object();
    if (j == NULL) {
        *ok = false;
        return NULL;
    }
    set(j, "count", u64(l.count), ok);
    set(j, "min_ns", u64(l.min), ok);
    set(j, "mean_ns", u64(l.mean), ok);
    set(j, "p50_ns", u64(l.p50), ok);
    set(j, "p90_ns", u64(l.p90), ok);
    set(j, "p99_ns", u64(l.p99), ok);
    set(j, "max_ns", u64(l.max), ok);
    json_t *hist = json_array();
    const pgf__hist *h = &s->latency[o];
    for (unsigned i = 0; hist != NULL && i < PGF__HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0)
            continue;
        json_t *b = json_object();
        if (b != NULL) {
            set(b, "ge_ns", u64(pgf__hist_lower(i)), ok);
            set(b, "le_ns", u64(pgf__hist_upper(i)), ok);
            set(b, "count", u64(h->buckets[i]), ok);
        }
        push(hist, b, ok);
    }
    set(j, "histogram", hist, ok);
    return j;
}

static int cmp_span(const void *a, const void *b)
{
    const pgf__span *x = *(const pgf__span *const *)a, *y = *(const pgf__span *const *)b;
    if (x->session != y->session)
        return x->session < y->session ? -1 : 1;
    if (x->start_ns != y->start_ns)
        return x->start_ns < y->start_ns ? -1 : 1;
    return x < y ? -1 : x > y;
}

static json_t *timeline_json(const pgf_report_scenario *s, bool *ok)
{
    json_t *t = json_object(), *sessions = json_array(), *faults = json_array();
    if (t == NULL || sessions == NULL || faults == NULL) {
        json_decref(t);
        json_decref(sessions);
        json_decref(faults);
        *ok = false;
        return NULL;
    }
    /* Group the spans by session, in session then time order. */
    const pgf__span **order = malloc((s->spans.len + 1) * sizeof *order);
    if (order == NULL)
        *ok = false;
    for (size_t i = 0; order != NULL && i < s->spans.len; i++)
        order[i] = &s->spans.items[i];
    if (order != NULL)
        qsort(order, s->spans.len, sizeof *order, cmp_span);
    json_t *cur = NULL, *spans = NULL;
    for (size_t i = 0; order != NULL && i < s->spans.len; i++) {
        const pgf__span *sp = order[i];
        if (cur == NULL || sp->session != order[i - 1]->session) {
            cur = json_object();
            spans = json_array();
            if (cur != NULL && spans != NULL) {
                set(cur, "session", u64(sp->session), ok);
                json_object_set(cur, "spans", spans);
            }
            json_decref(spans);
            push(sessions, cur, ok);
            if (cur == NULL || spans == NULL)
                break;
        }
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "state", json_string(sp->state), ok);
            set(o, "start_ns", u64(sp->start_ns), ok);
            set(o, "end_ns", u64(sp->end_ns), ok);
        }
        push(spans, o, ok);
    }
    free(order);
    for (size_t i = 0; i < s->marks.len; i++) {
        const pgf__mark *m = &s->marks.items[i];
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "t_ns", u64(m->t_ns), ok);
            set(o, "session", u64(m->session), ok);
            set(o, "phase", json_string(m->phase), ok);
            set(o, "action", json_string(m->action), ok);
            set(o, "rule", str_or_null(m->rule), ok);
        }
        push(faults, o, ok);
    }
    set(t, "sessions", sessions, ok);
    set(t, "faults", faults, ok);
    set(t, "faults_not_listed", u64(s->marks_not_kept), ok);
    return t;
}

static json_t *scenario_json(const pgf_report *r, const pgf_report_scenario *s, bool *ok)
{
    json_t *j = json_object();
    if (j == NULL) {
        *ok = false;
        return NULL;
    }
    set(j, "name", json_string(s->name), ok);
    set(j, "description", str_or_null(s->description), ok);
    set(j, "passed", json_boolean(pgf__scenario_passed(s)), ok);
    set(j, "seed", u64_str(s->has_run ? s->seed : r->seed), ok);
    set(j, "duration_ns", u64(s->has_run ? s->duration_ns : r->duration_ns), ok);
    set(j, "replay_command", str_or_null(pgf__scenario_replay(s)), ok);
    set(j, "stopped_early", str_or_null(s->stopped_early), ok);
    if (s->has_phases) {
        set(j, "load_ms", json_real((double)(s->load_ns / 1000) / 1000.0), ok);
        set(j, "verdict_ms", json_real((double)(s->verdict_ns / 1000) / 1000.0), ok);
    }

    json_t *checks = json_array();
    for (size_t i = 0; checks != NULL && i < s->checks.len; i++) {
        const pgf_report_check *c = s->checks.items[i];
        json_t *o = json_object(), *w = json_array();
        if (o != NULL && w != NULL) {
            set(o, "name", json_string(c->name), ok);
            set(o, "passed", json_boolean(c->passed), ok);
            set(o, "kind", str_or_null(c->kind), ok);
            set(o, "message", str_or_null(c->message), ok);
            set(o, "session", u64(c->session), ok);
            for (size_t k = 0; k < c->witness.len; k++)
                push(w, json_string(c->witness.items[k]), ok);
            json_object_set(o, "witness", w);
        } else {
            *ok = false;
        }
        json_decref(w);
        push(checks, o, ok);
    }
    set(j, "checks", checks, ok);

    set(j, "health_checks", u64(pgf__scenario_health_checks(s)), ok);
    json_t *outcomes = json_object(), *lat = json_object();
    for (int o = 0; outcomes != NULL && lat != NULL && o < PGF_REPORT_OUTCOME_COUNT; o++) {
        set(outcomes, pgf_report_outcome_name((pgf_report_outcome)o), u64(s->outcomes[o]), ok);
        if (s->latency[o].count > 0)
            set(lat, pgf_report_outcome_name((pgf_report_outcome)o), latency_json(s, o, ok), ok);
    }
    set(j, "outcomes", outcomes, ok);
    set(j, "latency", lat, ok);

    json_t *sm = json_object(), *states = json_array(), *edges = json_array();
    for (size_t i = 0; states != NULL && i < s->states.len; i++)
        push(states, json_string(s->states.items[i]), ok);
    for (size_t i = 0; edges != NULL && i < s->edges.len; i++) {
        const pgf__edge *e = &s->edges.items[i];
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "from", json_string(e->from), ok);
            set(o, "to", json_string(e->to), ok);
            set(o, "op", str_or_null(e->op), ok);
            set(o, "count", u64(e->count), ok);
            set(o, "legal", json_boolean(e->legal), ok);
        }
        push(edges, o, ok);
    }
    if (sm != NULL) {
        set(sm, "states", states, ok);
        set(sm, "edges", edges, ok);
    } else {
        json_decref(states);
        json_decref(edges);
    }
    set(j, "state_machine", sm, ok);

    set(j, "timeline", timeline_json(s, ok), ok);

    json_t *cov = json_object(), *cells = json_array(), *rules = json_array(),
           *never = json_array();
    for (size_t i = 0; cells != NULL && i < s->cells.len; i++) {
        const pgf__cell *c = &s->cells.items[i];
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "phase", json_string(c->phase), ok);
            set(o, "action", json_string(c->action), ok);
            set(o, "fired", u64(c->fired), ok);
        }
        push(cells, o, ok);
    }
    for (size_t i = 0; rules != NULL && never != NULL && i < s->rules.len; i++) {
        const pgf__rule *x = &s->rules.items[i];
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "name", json_string(x->name), ok);
            set(o, "phase", json_string(x->phase), ok);
            set(o, "action", json_string(x->action), ok);
            set(o, "fired", u64(x->fired), ok);
        }
        push(rules, o, ok);
        if (x->fired == 0)
            push(never, json_string(x->name), ok);
    }
    if (cov != NULL) {
        set(cov, "cells", cells, ok);
        set(cov, "rules", rules, ok);
        set(cov, "never_fired", never, ok);
    } else {
        json_decref(cells);
        json_decref(rules);
        json_decref(never);
    }
    set(j, "coverage", cov, ok);

    json_t *ocov = json_object(), *ocells = json_array();
    for (size_t i = 0; ocells != NULL && i < s->opcells.len; i++) {
        const pgf__opcell *c = &s->opcells.items[i];
        json_t *o = json_object();
        if (o != NULL) {
            set(o, "op", json_string(c->op), ok);
            set(o, "state", json_string(c->state), ok);
            set(o, "calls", u64(c->calls), ok);
            set(o, "refused", u64(c->refused), ok);
        }
        push(ocells, o, ok);
    }
    if (ocov != NULL)
        set(ocov, "cells", ocells, ok);
    else
        json_decref(ocells);
    set(j, "op_coverage", ocov, ok);

    json_t *v = json_object();
    for (size_t i = 0; v != NULL && i < s->violations.len; i++)
        set(v, s->violations.items[i].key, u64(s->violations.items[i].n), ok);
    set(j, "violations", v, ok);
    set(j, "violations_total", u64(pgf__scenario_violations(s)), ok);
    return j;
}

json_t *pgf_report_to_json(const pgf_report *r)
{
    if (r == NULL)
        return NULL;
    bool ok = true;
    json_t *j = json_object();
    if (j == NULL)
        return NULL;
    pgf__totals t;
    pgf__report_totals(r, &t);
    set(j, "format", json_string("pgfault-report"), &ok);
    set(j, "version", json_integer(PGF_REPORT_FORMAT_VERSION), &ok);

    json_t *tool = json_object();
    if (tool != NULL) {
        set(tool, "name", json_string("pgfault"), &ok);
        set(tool, "version", str_or_null(r->tool_version), &ok);
    }
    set(j, "tool", tool, &ok);

    json_t *run = json_object();
    if (run != NULL) {
        set(run, "name", str_or_null(r->name), &ok);
        set(run, "description", str_or_null(r->description), &ok);
        set(run, "seed", u64_str(r->seed), &ok);
        set(run, "mode", str_or_null(r->mode), &ok);
        set(run, "started_at", wall(r->start_wall_us), &ok);
        set(run, "ended_at", wall(r->end_wall_us), &ok);
        set(run, "started_at_us", u64(r->start_wall_us), &ok);
        set(run, "ended_at_us", u64(r->end_wall_us), &ok);
        set(run, "duration_ns", u64(r->duration_ns), &ok);
        set(run, "time_base",
            json_string(r->mode && strcmp(r->mode, "sim") == 0 ? "virtual" : "monotonic"), &ok);
        set(run, "interrupted", json_boolean(r->interrupted), &ok);
        set(run, "replay_command", str_or_null(r->replay_command), &ok);
        set(run, "out_dir", str_or_null(r->out_dir), &ok);
    }
    set(j, "run", run, &ok);

    json_t *sum = json_object();
    if (sum != NULL) {
        set(sum, "verdict", json_string(t.checks_failed ? "fail" : "pass"), &ok);
        set(sum, "passed", json_boolean(t.checks_failed == 0), &ok);
        set(sum, "interrupted", json_boolean(r->interrupted), &ok);
        set(sum, "scenarios", u64(t.scenarios), &ok);
        set(sum, "scenarios_failed", u64(t.scenarios_failed), &ok);
        set(sum, "checks", u64(t.checks), &ok);
        set(sum, "checks_failed", u64(t.checks_failed), &ok);
        set(sum, "health_checks", u64(t.health_checks), &ok);
        set(sum, "violations", u64(t.violations), &ok);
    }
    set(j, "summary", sum, &ok);
    set(j, "config", json_deep_copy(r->config), &ok);

    json_t *scs = json_array();
    for (size_t i = 0; scs != NULL && i < r->scenarios.len; i++)
        push(scs, scenario_json(r, r->scenarios.items[i], &ok), &ok);
    set(j, "scenarios", scs, &ok);
    if (!ok) {
        json_decref(j);
        return NULL;
    }
    return j;
}

int pgf_report_write_json(const pgf_report *r, const char *dir, char *err, size_t errlen)
{
    int rc = pgf__report_check_built(r, err, errlen);
    if (rc != 0)
        return rc;
    json_t *j = pgf_report_to_json(r);
    if (j == NULL)
        return pgf__report_err(err, errlen, PGF_ENOMEM, "%s/report.json: out of memory", dir);
    pgf_atomic_file af;
    rc = pgf_atomic_file_open(&af, dir, "report.json", err, errlen);
    if (rc == 0) {
        if (json_dumpf(j, af.fp, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
            fputc('\n', af.fp) == EOF) {
            rc = pgf_atomic_file_fail(&af, "write failed", err, errlen);
        } else {
            rc = pgf_atomic_file_commit(&af, err, errlen);
        }
    }
    json_decref(j);
    return rc;
}
