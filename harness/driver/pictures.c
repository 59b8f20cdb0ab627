/* pictures.c - see pictures.h. What the report's figures are made of:
 *
 * - the timeline holds every session with a violation (up to
 *   PGF_REPORT_HTML_MAX_FAILING) and PGF_REPORT_HTML_MAX_SESSIONS others,
 *   picked evenly over the run (up to half of them among the sessions a
 *   fault hit, so the marks have rows): their state spans (a terminal state is a
 *   zero-length span, never a bar to the end of the run), their operations
 *   from invoke to completion, the violations the checker found on them;
 * - every fired fault becomes a mark (the page counts those on sessions it
 *   does not draw), and every rule with from_ms/until_ms a fault window;
 * - every health check the driver counted, with its latency and the time
 *   it ended (pgf_run.lat_end), is a sample for the latency and throughput
 *   over time plots (also with --no-check, and for pool timeouts that never
 *   reach a session).
 * Sessions are found by binary search in a sorted id array, operations by
 * op_id, so filling is O(records log sessions). */
#include "pictures.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/machine.h"
#include "pgfault/rules.h"

/* Report building is best-effort per item: a failed allocation sets the
 * report's own failure flag and the writers refuse to write a partial file. */
static inline void ignore_(int rc)
{
    (void)rc;
}

/* The reports keep their own outcome table (they know no session); it
 * must list the session's health reasons in the same order, or this does
 * not compile (an unknown reason used to become connection_lost silently).
 * tests/test_reports.c checks the strings agree too. */
_Static_assert((int)PGF_REPORT_OUTCOME_COUNT == (int)PGF_HEALTH_REASON_COUNT,
               "report outcomes and health reasons differ in number");
#define PGF__OUTCOME_TIE(name, str, code, doc)                       \
    _Static_assert((int)PGF_REPORT_##name == (int)PGF_HEALTH_##name, \
                   "report outcome " str " out of step with its health reason");
PGF_HEALTH_REASON_MAP(PGF__OUTCOME_TIE)
#undef PGF__OUTCOME_TIE

static pgf_report_outcome outcome_of(pgf_health_reason r)
{
    return (pgf_report_outcome)r;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct pending {
    int64_t op_id;
    const char *op;
    uint64_t t;
    bool raced;
} pending;

/* Per drawn session: its current state and the operations in progress. */
/* A long-lived (pooled) session can change state millions of times: the
 * timeline keeps its first PER_SESSION state changes and operations. */
enum { PER_SESSION = 1000 };

typedef struct tl_session {
    const char *state;
    uint64_t since;
    bool seen;
    size_t nspans, nopsdone;
    pending *ops;
    size_t nops, capops;
} tl_session;

/* Per-session flags (bit 0: seen, bit 1: a fault hit it), open-addressed
 * by session id. */
typedef struct sess_flags {
    int64_t session; /* PGF_REC_NONE = empty slot */
    unsigned flags;
} sess_flags;

static sess_flags *flags_slot(sess_flags *tab, size_t mask, int64_t session)
{
    size_t h = (size_t)((uint64_t)session * 0x9E3779B97F4A7C15ULL) & mask;
    while (tab[h].session != PGF_REC_NONE && tab[h].session != session)
        h = (h + 1) & mask;
    tab[h].session = session;
    return &tab[h];
}

/* Add up to `want` of list[n] to sel (skipping those already in it), spread
 * evenly over the list. */
static void pick_evenly(int64_t *sel, size_t *nsel, const int64_t *list, size_t n, size_t want)
{
    size_t added = 0;
    for (size_t k = 0; k < want && k < n && added < want; k++) {
        int64_t s = list[n <= want ? k : k * n / want];
        bool have = false;
        for (size_t j = 0; j < *nsel && !have; j++)
            have = sel[j] == s;
        if (!have) {
            sel[(*nsel)++] = s;
            added++;
        }
    }
}

static bool in_sorted(const int64_t *v, size_t n, int64_t x)
{
    return n > 0 && bsearch(&x, v, n, sizeof *v, cmp_i64) != NULL;
}

static void add_windows(pgf_report_scenario *rs, const pgf_fault_rules *rules, uint64_t base_ns,
                        uint64_t end_ns, bool whole_run)
{
    size_t n = rules ? pgf_fault_rules_count(rules) : 0;
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loads(pgf_fault_rules_rule_json(rules, i), 0, NULL);
        if (j == NULL)
            continue;
        json_t *from = json_object_get(j, "from_ms"), *until = json_object_get(j, "until_ms");
        if (json_is_integer(from) || json_is_integer(until) || whole_run) {
            uint64_t a =
                base_ns +
                (json_is_integer(from) ? (uint64_t)json_integer_value(from) * 1000000ULL : 0);
            uint64_t z = json_is_integer(until)
                             ? base_ns + (uint64_t)json_integer_value(until) * 1000000ULL
                             : end_ns;
            if (z < a)
                z = a;
            ignore_(pgf_report_add_fault_window(rs, pgf_fault_rules_name(rules, i), a, z));
        }
        json_decref(j);
    }
}

/* (operation x state) coverage from the history: the state a session was
 * in when an operation was invoked is the `to` of its last transition
 * (NEW before any), because a session's invoke and transitions are
 * recorded under its one mutex, in order. Session and op ids are dense per
 * run (they restart at 1), so plain arrays index them. */
static void add_op_coverage(const pgf_rec *recs, size_t n, pgf_report_scenario *rs)
{
    uint64_t calls[PGF_OP_COUNT][PGF_SESS_STATE_COUNT] = {{0}};
    uint64_t refused[PGF_OP_COUNT][PGF_SESS_STATE_COUNT] = {{0}};
    int64_t maxs = 0, maxo = 0;
    for (size_t i = 0; i < n; i++) {
        if (recs[i].session > maxs)
            maxs = recs[i].session;
        if (recs[i].op_id > maxo)
            maxo = recs[i].op_id;
    }
    uint8_t *st = calloc((size_t)maxs + 1, 1);
    uint16_t *cell = calloc((size_t)maxo + 1, sizeof *cell); /* op * STATES + state + 1 */
    if (st == NULL || cell == NULL)
        goto done;
    for (size_t i = 0; i < n; i++) {
        const pgf_rec *r = &recs[i];
        if (r->session < 0 || r->op == NULL)
            continue;
        if (r->type == PGF_REC_TRANSITION && r->to != NULL) {
            int to = pgf_session_state_parse(r->to);
            if (to >= 0)
                st[r->session] = (uint8_t)to;
        } else if (r->type == PGF_REC_INVOKE && r->op_id >= 0) {
            int op = pgf_session_op_parse(r->op);
            if (op <= 0 || op >= PGF_OP_COUNT)
                continue;
            calls[op][st[r->session]]++;
            cell[r->op_id] = (uint16_t)(op * PGF_SESS_STATE_COUNT + st[r->session] + 1);
        } else if (r->type == PGF_REC_FAIL && r->op_id >= 0 && cell[r->op_id] != 0 &&
                   r->error != NULL && strcmp(r->error, "PGF_EILLEGAL_STATE") == 0) {
            int c = cell[r->op_id] - 1;
            refused[c / PGF_SESS_STATE_COUNT][c % PGF_SESS_STATE_COUNT]++;
            cell[r->op_id] = 0;
        }
    }
    for (int op = 1; op < PGF_OP_COUNT; op++)
        for (int k = 0; k < PGF_SESS_STATE_COUNT; k++)
            if (calls[op][k] > 0)
                ignore_(pgf_report_add_op_coverage(rs, pgf_session_op_name((pgf_sess_op)op),
                                                   pgf_session_state_name((pgf_sess_state)k),
                                                   calls[op][k], refused[op][k]));
done:
    free(st);
    free(cell);
}

/* The run's histogram into the report's coarser one: the exact min and
 * max as themselves, every other sample as the middle of its bucket
 * (which falls in the same report bucket: 128 sub-buckets refine 16). */
static void add_latencies(pgf_report_scenario *rs, pgf_report_outcome o, const pgf_lathist *h)
{
    if (h->count == 0)
        return;
    ignore_(pgf_report_add_latency(rs, o, h->min, 1));
    if (h->count > 1)
        ignore_(pgf_report_add_latency(rs, o, h->max, 1));
    size_t imin = SIZE_MAX, imax = SIZE_MAX;
    for (size_t i = 0; i < PGF_LATHIST_BUCKETS; i++) {
        uint64_t lo, hi, n = pgf_lathist_bucket(h, i, &lo, &hi);
        if (n == 0)
            continue;
        if (imin == SIZE_MAX && h->min >= lo && h->min <= hi) {
            imin = i;
            n--;
        }
        if (h->count > 1 && imax == SIZE_MAX && h->max >= lo && h->max <= hi && n > 0) {
            imax = i;
            n--;
        }
        uint64_t mid = lo + (hi - lo) / 2; /* unbiased for the mean */
        mid = mid < h->min ? h->min : mid > h->max ? h->max : mid;
        if (n > 0)
            ignore_(pgf_report_add_latency(rs, o, mid, n));
    }
}

void pgf__fill_pictures(const pgf_scenario *sc, const pgf_run *r, const pgf_check_result *ck,
                        const pgf_rec *recs, size_t n, pgf_report_scenario *rs)
{
    add_op_coverage(recs, n, rs);
    for (int k = 0; k < PGF_HEALTH_REASON_COUNT; k++) {
        if (r->outcomes[k] == 0)
            continue;
        pgf_report_outcome o = outcome_of((pgf_health_reason)k);
        ignore_(pgf_report_count_outcome(rs, o, r->outcomes[k]));
        add_latencies(rs, o, &r->lat[k]);
        for (size_t i = 0; i < r->nsample[k]; i++)
            ignore_(pgf_report_add_sample(rs, o, r->sample_end[k][i], r->sample_lat[k][i]));
    }
    pgf_report_scenario_add_samples_dropped(rs, r->samples_dropped);
    for (int st = 0; st < PGF_SESS_STATE_COUNT; st++)
        ignore_(pgf_report_add_state(rs, pgf_session_state_name((pgf_sess_state)st)));
    ignore_(pgf_report_scenario_set_timing(rs, pgf_run_mode_name(sc->mode), r->wall_ns));
    if (ck != NULL)
        pgf_report_scenario_set_sessions(rs, ck->sessions);

    /* edge counts: (from, to, op) -> count, small fixed table */
    enum { MAXE = 256 };
    struct {
        const char *from, *to, *op;
        uint64_t n;
    } edges[MAXE];
    int ne = 0;

    /* Which sessions the timeline holds: every session with a violation,
     * then others (see below). */
    size_t cap = PGF_REPORT_HTML_MAX_FAILING + PGF_REPORT_HTML_MAX_SESSIONS;
    int64_t *sel = malloc(cap * sizeof *sel);
    tl_session *tls = calloc(cap, sizeof *tls);
    /* at most one distinct session per record: the table never fills */
    size_t nwith = 0, tabsize = 16;
    for (size_t i = 0; i < n; i++)
        nwith += recs[i].session != PGF_REC_NONE;
    while (tabsize < 2 * nwith + 16)
        tabsize *= 2;
    sess_flags *cyc = malloc(tabsize * sizeof *cyc);
    if (sel == NULL || tls == NULL || cyc == NULL)
        goto done;
    for (size_t i = 0; i < tabsize; i++)
        cyc[i] = (sess_flags){PGF_REC_NONE, 0};
    size_t nsel = 0, nfail = 0;
    for (size_t f = 0; ck != NULL && f < ck->nfirst && nfail < PGF_REPORT_HTML_MAX_FAILING; f++) {
        int64_t s = ck->first[f].session;
        if (s == PGF_REC_NONE)
            continue;
        bool have = false;
        for (size_t k = 0; k < nsel && !have; k++)
            have = sel[k] == s;
        if (!have) {
            sel[nsel++] = s;
            nfail++;
        }
    }
    /* The others: sessions a fault hit, then any, each picked evenly
     * over the run (not just its first seconds). */
    int64_t *appear = calloc(n + 1, sizeof *appear), *faulted = calloc(n + 1, sizeof *faulted);
    if (appear == NULL || faulted == NULL) {
        free(appear);
        free(faulted);
        goto done;
    }
    size_t nappear = 0, nhit = 0;
    for (size_t i = 0; i < n; i++) {
        const pgf_rec *rec = &recs[i];
        if (rec->session == PGF_REC_NONE ||
            (rec->type != PGF_REC_TRANSITION && rec->type != PGF_REC_INVOKE &&
             rec->type != PGF_REC_FAULT))
            continue;
        sess_flags *c = flags_slot(cyc, tabsize - 1, rec->session);
        if (!(c->flags & 1) && rec->type != PGF_REC_FAULT) {
            c->flags |= 1;
            appear[nappear++] = rec->session;
        }
        if (!(c->flags & 2) && rec->type == PGF_REC_FAULT) {
            c->flags |= 2;
            faulted[nhit++] = rec->session;
        }
    }
    size_t room = PGF_REPORT_HTML_MAX_SESSIONS;
    pick_evenly(sel, &nsel, faulted, nhit, room / 2);
    pick_evenly(sel, &nsel, appear, nappear, nfail + room - nsel);
    free(appear);
    free(faulted);
    qsort(sel, nsel, sizeof *sel, cmp_i64);

    /* Violations on the timeline: where each session's first one showed. */
    for (size_t f = 0; ck != NULL && f < ck->nfirst; f++) {
        const pgf_violation *v = &ck->first[f];
        if (v->session == PGF_REC_NONE || !in_sorted(sel, nsel, v->session))
            continue;
        uint64_t t = v->at != PGF_CHECK_NO_RECORD ? v->at_time_ns : r->duration_ns;
        ignore_(pgf_report_add_violation_mark(rs, (uint64_t)v->session, t,
                                              pgf_violation_name(v->kind)));
    }

    for (size_t i = 0; i < n; i++) {
        const pgf_rec *rec = &recs[i];
        if (rec->type == PGF_REC_TRANSITION && rec->from && rec->to && rec->op) {
            int k;
            for (k = 0; k < ne; k++)
                if (strcmp(edges[k].from, rec->from) == 0 && strcmp(edges[k].to, rec->to) == 0 &&
                    strcmp(edges[k].op, rec->op) == 0)
                    break;
            if (k == ne && ne < MAXE) {
                edges[ne].from = rec->from;
                edges[ne].to = rec->to;
                edges[ne].op = rec->op;
                edges[ne].n = 0;
                ne++;
            }
            if (k < ne)
                edges[k].n++;
        }
        if (rec->type == PGF_REC_FAULT) {
            uint64_t s = rec->session == PGF_REC_NONE ? 0 : (uint64_t)rec->session;
            ignore_(pgf_report_add_fault_mark(rs, s, rec->time_ns, rec->phase ? rec->phase : "?",
                                              rec->action ? rec->action : "?", rec->rule));
            continue;
        }
        if (rec->session == PGF_REC_NONE)
            continue;
        const int64_t *hit = nsel ? bsearch(&rec->session, sel, nsel, sizeof *sel, cmp_i64) : NULL;
        if (hit == NULL)
            continue;
        tl_session *t = &tls[hit - sel];
        if (rec->type == PGF_REC_TRANSITION && rec->from && rec->to) {
            uint64_t start = t->seen ? t->since : rec->time_ns;
            if (t->nspans++ < PER_SESSION)
                ignore_(pgf_report_add_span(rs, (uint64_t)rec->session, rec->from, start,
                                            rec->time_ns < start ? start : rec->time_ns));
            t->seen = true;
            t->since = rec->time_ns;
            t->state = rec->to;
        } else if (rec->type == PGF_REC_INVOKE && rec->op && rec->op_id != PGF_REC_NONE) {
            if (t->nops == t->capops) {
                size_t nc = t->capops ? t->capops * 2 : 4;
                pending *p = realloc(t->ops, nc * sizeof *p);
                if (p == NULL)
                    continue;
                t->ops = p;
                t->capops = nc;
            }
            t->ops[t->nops] = (pending){rec->op_id, rec->op, rec->time_ns, t->nops > 0};
            t->nops++;
        } else if ((rec->type == PGF_REC_OK || rec->type == PGF_REC_FAIL ||
                    rec->type == PGF_REC_INFO) &&
                   rec->op_id != PGF_REC_NONE) {
            for (size_t k = 0; k < t->nops; k++) {
                if (t->ops[k].op_id != rec->op_id)
                    continue;
                uint64_t end = rec->time_ns < t->ops[k].t ? t->ops[k].t : rec->time_ns;
                if (t->nopsdone++ < PER_SESSION)
                    ignore_(pgf_report_add_op(
                        rs, (uint64_t)rec->session, (uint64_t)rec->op_id, t->ops[k].op, t->ops[k].t,
                        end, pgf_rec_type_name(rec->type), rec->error, t->ops[k].raced));
                memmove(&t->ops[k], &t->ops[k + 1], (t->nops - k - 1) * sizeof t->ops[0]);
                t->nops--;
                break;
            }
        }
    }
    uint64_t end = r->duration_ns;
    for (size_t k = 0; k < nsel; k++) {
        tl_session *t = &tls[k];
        if (t->state != NULL && t->nspans < PER_SESSION) {
            int st = pgf_session_state_parse(t->state);
            bool terminal = st >= 0 && pgf_session_state_terminal((pgf_sess_state)st);
            /* A terminal state is a point (a tick), not a bar to the end. */
            uint64_t stop = terminal || end < t->since ? t->since : end;
            ignore_(pgf_report_add_span(rs, (uint64_t)sel[k], t->state, t->since, stop));
        }
        for (size_t j = 0; j < t->nops; j++) /* never completed */
            ignore_(pgf_report_add_op(rs, (uint64_t)sel[k], (uint64_t)t->ops[j].op_id, t->ops[j].op,
                                      t->ops[j].t, end > t->ops[j].t ? end : t->ops[j].t, NULL,
                                      NULL, t->ops[j].raced));
    }
    for (int k = 0; k < ne; k++) {
        int from = pgf_session_state_parse(edges[k].from),
            to = pgf_session_state_parse(edges[k].to);
        int op = pgf_session_op_parse(edges[k].op);
        bool legal = from >= 0 && to >= 0 && op >= 0 &&
                     pgf_session_transition_allowed((pgf_sess_state)from, (pgf_sess_state)to,
                                                    (pgf_sess_op)op);
        ignore_(
            pgf_report_add_edge(rs, edges[k].from, edges[k].to, edges[k].op, edges[k].n, legal));
    }
    add_windows(rs, sc->rules, 0, sc->rules2 ? sc->rules2_at_ms * 1000000ULL : end, false);
    if (sc->rules2 != NULL)
        add_windows(rs, sc->rules2, sc->rules2_at_ms * 1000000ULL, end, true);

    pgf_fault_coverage cov;
    if (pgf_fault_coverage_get(r->engine, &cov) == 0) {
        for (int p = 0; p < PGF_PHASE_COUNT; p++)
            for (int a = 0; a < PGF_ACTION_COUNT; a++)
                if (cov.fired[p][a] > 0)
                    ignore_(pgf_report_add_coverage(rs, pgf_phase_name((pgf_phase)p),
                                                    pgf_action_name((pgf_action_kind)a),
                                                    cov.fired[p][a]));
        for (size_t i = 0; i < cov.nrules; i++)
            ignore_(pgf_report_add_rule(rs, cov.rules[i].name, pgf_phase_name(cov.rules[i].phase),
                                        pgf_action_name(cov.rules[i].action), cov.rules[i].fired));
        pgf_fault_coverage_clear(&cov);
    }
    for (int k = 0; ck != NULL && k < PGF_VIOL_COUNT; k++)
        if (ck->counts[k] > 0)
            ignore_(pgf_report_count_violation(rs, pgf_violation_name((pgf_violation_kind)k),
                                               ck->counts[k]));
done:
    for (size_t k = 0; tls != NULL && k < cap; k++)
        free(tls[k].ops);
    free(tls);
    free(sel);
    free(cyc);
}
