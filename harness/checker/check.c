/* check.c - the pure checker (see check.h): one pass over the records.
 *
 * Per session: the current state (or "unknown" after a record that named
 * an unknown state, until the next transition resynchronises it), the
 * list of ops in progress (usually 0-2 long), a pending predictive fault,
 * and the index of its last record. Per op instance: its session, status
 * at start (legal / illegal start / on a terminal session / undeclared),
 * whether it was preempted and by which op. Sessions, op_ids and
 * connections are found through open-addressing hash maps, so the whole
 * check is O(records). Each record yields at most one violation, chosen by
 * a fixed priority, so counts do not double up.
 *
 * A witness is the chain of records of the same session ending at the
 * violating one (each record keeps the index of its session's previous
 * record), cut to witness_max, plus the fault record that a health
 * misclassification refers to. No I/O happens here.
 */
#include "pgfault/check.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define NONE_IDX SIZE_MAX

static const char *const viol_names[] = {
#define PGF__VIOL_STR(name, str, doc) str,
    PGF_VIOLATION_MAP(PGF__VIOL_STR)
#undef PGF__VIOL_STR
};
static const char *const viol_docs[] = {
#define PGF__VIOL_DOC(name, str, doc) doc,
    PGF_VIOLATION_MAP(PGF__VIOL_DOC)
#undef PGF__VIOL_DOC
};

const char *pgf_violation_name(pgf_violation_kind k)
{
    return (unsigned)k < PGF_VIOL_COUNT ? viol_names[k] : "?";
}

const char *pgf_violation_doc(pgf_violation_kind k)
{
    return (unsigned)k < PGF_VIOL_COUNT ? viol_docs[k] : "?";
}

/* ---- uint64 -> uint64 open-addressing map ------------------------------ */

typedef struct u64map {
    uint64_t *keys; /* key + 1; 0 = empty */
    uint64_t *vals;
    size_t cap; /* power of two */
    size_t n;
} u64map;

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static void map_free(u64map *m)
{
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static bool map_get(const u64map *m, uint64_t key, uint64_t *val)
{
    if (m->cap == 0)
        return false;
    size_t j = mix(key) & (m->cap - 1);
    while (m->keys[j] != 0) {
        if (m->keys[j] == key + 1) {
            *val = m->vals[j];
            return true;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return false;
}

static int map_put(u64map *m, uint64_t key, uint64_t val)
{
    if ((m->n + 1) * 2 > m->cap) {
        size_t ncap = m->cap ? m->cap * 2 : 256;
        uint64_t *nk = calloc(ncap, sizeof *nk), *nv = calloc(ncap, sizeof *nv);
        if (nk == NULL || nv == NULL) {
            free(nk);
            free(nv);
            return PGF_ENOMEM;
        }
        for (size_t i = 0; i < m->cap; i++) {
            if (m->keys[i] == 0)
                continue;
            size_t j = mix(m->keys[i] - 1) & (ncap - 1);
            while (nk[j] != 0)
                j = (j + 1) & (ncap - 1);
            nk[j] = m->keys[i];
            nv[j] = m->vals[i];
        }
        free(m->keys);
        free(m->vals);
        m->keys = nk;
        m->vals = nv;
        m->cap = ncap;
    }
    size_t j = mix(key) & (m->cap - 1);
    while (m->keys[j] != 0 && m->keys[j] != key + 1)
        j = (j + 1) & (m->cap - 1);
    if (m->keys[j] == 0)
        m->n++;
    m->keys[j] = key + 1;
    m->vals[j] = val;
    return 0;
}

/* Keys are never removed; a "cleared" entry holds NONE_IDX. */

/* ---- checker state ----------------------------------------------------- */

#define STATE_UNKNOWN (-1)

typedef struct sess {
    int64_t id;
    int state;
    bool active_seen; /* had an invoke, completion or transition */
    bool violated;    /* first violation recorded */
    size_t last_rec;
    size_t pending_fault;
    size_t first_active; /* op index of the first op in progress, NONE_IDX */
} sess;

enum op_status { OP_LEGAL, OP_ILLEGAL_START, OP_AFTER_CLOSE, OP_UNDECLARED };

typedef struct opst {
    int64_t op_id;
    size_t invoke_rec;
    size_t sess;
    size_t next_active;
    int op;
    int preempted_by; /* spec op index, -1 = not preempted */
    uint8_t status;
    bool done;
    bool moved;
    bool busy_start; /* illegal start: another op was in progress */
    bool ended;      /* its own transition entered one of its `to` states */
    int end_state;
    bool flagged; /* a violation was already charged to this op */
} opst;

typedef struct ck {
    const pgf_spec *spec;
    const pgf_rec *recs;
    size_t n;
    unsigned wmax;
    pgf_check_result *res;
    size_t *prev; /* per record: previous record of the same session */
    sess *sessions;
    size_t nsess, capsess;
    opst *ops;
    size_t nops, capops;
    u64map sess_by_id, op_by_id, fault_by_conn;
    u64map slowed_conn; /* conn -> 1: a delay/drip/bandwidth fault fired on it */
    size_t last_server;
    bool server_violated;
    int err;
    const pgf_check_deadlines *dl;
    int64_t dl_ns[64]; /* by spec op index; -1 = no deadline */
} ck;

static int push_first(ck *c, const pgf_violation *v)
{
    pgf_check_result *r = c->res;
    pgf_violation *nf = realloc(r->first, (r->nfirst + 1) * sizeof *nf);
    if (nf == NULL)
        return PGF_ENOMEM;
    r->first = nf;
    r->first[r->nfirst++] = *v;
    return 0;
}

static int cmp_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return x < y ? -1 : x > y;
}

/* Record a violation. `s` may be NULL (server-wide); `at` is the record
 * that showed it (NONE_IDX at end of history); `extra` one more record
 * for the witness (NONE_IDX if none). */
static void violate(ck *c, pgf_violation_kind kind, sess *s, size_t at, size_t extra,
                    const char *fmt, ...) PGF_PRINTF(6, 7);
static void violate(ck *c, pgf_violation_kind kind, sess *s, size_t at, size_t extra,
                    const char *fmt, ...)
{
    c->res->counts[kind]++;
    c->res->total++;
    if (s != NULL ? s->violated : c->server_violated)
        return;
    if (s != NULL)
        s->violated = true;
    else
        c->server_violated = true;

    pgf_violation v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    v.session = s != NULL ? s->id : PGF_REC_NONE;
    v.at = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v.message, sizeof v.message, fmt, ap);
    va_end(ap);

    v.witness = malloc((c->wmax + 1) * sizeof *v.witness);
    if (v.witness == NULL) {
        c->err = PGF_ENOMEM;
        return;
    }
    size_t k = 0;
    size_t i = s != NULL ? (at != NONE_IDX ? at : s->last_rec) : at;
    while (i != NONE_IDX && k < c->wmax) {
        v.witness[k++] = i;
        i = s != NULL ? c->prev[i] : NONE_IDX;
    }
    if (extra != NONE_IDX) {
        bool have = false;
        for (size_t j = 0; j < k; j++)
            have |= v.witness[j] == extra;
        if (!have)
            v.witness[k++] = extra;
    }
    qsort(v.witness, k, sizeof *v.witness, cmp_size);
    v.nwitness = k;
    if (push_first(c, &v) < 0) {
        free(v.witness);
        c->err = PGF_ENOMEM;
    }
}

static sess *session_get(ck *c, int64_t id)
{
    uint64_t idx;
    if (map_get(&c->sess_by_id, (uint64_t)id, &idx))
        return &c->sessions[idx];
    if (c->nsess == c->capsess) {
        size_t ncap = c->capsess ? c->capsess * 2 : 64;
        sess *ns = realloc(c->sessions, ncap * sizeof *ns);
        if (ns == NULL)
            return NULL;
        c->sessions = ns;
        c->capsess = ncap;
    }
    if (map_put(&c->sess_by_id, (uint64_t)id, c->nsess) < 0)
        return NULL;
    sess *s = &c->sessions[c->nsess++];
    memset(s, 0, sizeof *s);
    s->id = id;
    s->state = pgf_spec_initial(c->spec);
    s->last_rec = s->pending_fault = s->first_active = NONE_IDX;
    return s;
}

/* Chain record i into its session's record list. */
static void chain(ck *c, sess *s, size_t i)
{
    c->prev[i] = s->last_rec;
    s->last_rec = i;
}

static const char *state_str(const ck *c, int st)
{
    return st == STATE_UNKNOWN ? "<unknown>" : pgf_spec_state_name(c->spec, st);
}

static bool is_err(const ck *c, const pgf_rec *r, int code)
{
    return r->type == PGF_REC_FAIL && pgf_spec_error_means(c->spec, r->error, code);
}

static void active_remove(ck *c, sess *s, size_t oi)
{
    size_t *p = &s->first_active;
    while (*p != NONE_IDX) {
        if (*p == oi) {
            *p = c->ops[oi].next_active;
            return;
        }
        p = &c->ops[*p].next_active;
    }
}

static void on_invoke(ck *c, sess *s, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    uint64_t existing;
    s->active_seen = true;
    if (map_get(&c->op_by_id, (uint64_t)r->op_id, &existing)) {
        violate(c, PGF_VIOL_DUPLICATE_OP_ID, s, i, NONE_IDX,
                "op_id %" PRId64 " invoked again (%s), first invoked at line %u", r->op_id, r->op,
                c->recs[c->ops[existing].invoke_rec].line);
        return;
    }
    if (c->nops == c->capops) {
        size_t ncap = c->capops ? c->capops * 2 : 256;
        opst *no = realloc(c->ops, ncap * sizeof *no);
        if (no == NULL) {
            c->err = PGF_ENOMEM;
            return;
        }
        c->ops = no;
        c->capops = ncap;
    }
    size_t oi = c->nops++;
    if (map_put(&c->op_by_id, (uint64_t)r->op_id, oi) < 0) {
        c->err = PGF_ENOMEM;
        return;
    }
    opst *o = &c->ops[oi];
    memset(o, 0, sizeof *o);
    o->op_id = r->op_id;
    o->invoke_rec = i;
    o->sess = (size_t)(s - c->sessions);
    o->next_active = NONE_IDX;
    o->preempted_by = -1;
    o->op = pgf_spec_op_find(c->spec, r->op);
    if (o->op < 0) {
        o->status = OP_UNDECLARED;
        o->flagged = true;
        violate(c, PGF_VIOL_UNDECLARED_OP, s, i, NONE_IDX,
                "op \"%s\" (op_id %" PRId64 ") is not declared in the spec", r->op, r->op_id);
        return;
    }
    if (s->state == STATE_UNKNOWN) {
        o->status = OP_LEGAL;
    } else if (pgf_spec_state_terminal(c->spec, s->state)) {
        o->status = OP_AFTER_CLOSE;
        return;
    } else if (!pgf_spec_op_may_start(c->spec, o->op, s->state)) {
        o->status = OP_ILLEGAL_START;
        return;
    } else if (!pgf_spec_op_preempts(c->spec, o->op) && s->first_active != NONE_IDX) {
        /* a non-preempting op may start only while nothing else is in
         * progress (a release in the middle of a check) */
        o->status = OP_ILLEGAL_START;
        o->busy_start = true;
        return;
    } else {
        o->status = OP_LEGAL;
    }
    o->next_active = s->first_active;
    s->first_active = oi;
}

static void on_transition(ck *c, sess *s, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    const pgf_spec *sp = c->spec;
    s->active_seen = true;
    int from = pgf_spec_state_find(sp, r->from);
    int to = pgf_spec_state_find(sp, r->to);
    int opi = pgf_spec_op_find(sp, r->op);
    int cur = s->state;
    size_t sidx = (size_t)(s - c->sessions);

    /* Who made this change? By op_id when given, else the op in progress
     * with that name. */
    opst *actor = NULL;
    bool orphan = false;
    if (r->op_id != PGF_REC_NONE) {
        uint64_t oi;
        if (map_get(&c->op_by_id, (uint64_t)r->op_id, &oi) && c->ops[oi].sess == sidx &&
            !c->ops[oi].done)
            actor = &c->ops[oi];
        else
            orphan = true;
    } else {
        for (size_t oi = s->first_active; oi != NONE_IDX; oi = c->ops[oi].next_active)
            if (c->ops[oi].op == opi) {
                actor = &c->ops[oi];
                break;
            }
    }
    char who[96];
    if (r->op_id != PGF_REC_NONE)
        snprintf(who, sizeof who, "%s#%" PRId64, r->op, r->op_id);
    else
        snprintf(who, sizeof who, "%s", r->op);

    int kind = -1;
    char msg[256] = "";
    if (actor != NULL && actor->status == OP_AFTER_CLOSE && !actor->flagged) {
        kind = PGF_VIOL_USE_AFTER_CLOSE;
        snprintf(msg, sizeof msg, "%s -> %s by %s, invoked on a terminal session", r->from, r->to,
                 who);
        actor->flagged = true;
    } else if (cur != STATE_UNKNOWN && pgf_spec_state_terminal(sp, cur)) {
        kind = PGF_VIOL_TRANSITION_FROM_TERMINAL;
        snprintf(msg, sizeof msg, "%s -> %s by %s leaves terminal state %s", r->from, r->to, who,
                 state_str(c, cur));
    } else if (actor != NULL && actor->status == OP_ILLEGAL_START) {
        kind = PGF_VIOL_ILLEGAL_START;
        snprintf(msg, sizeof msg,
                 "%s -> %s by %s, which was started outside its `from` states and must have "
                 "changed nothing",
                 r->from, r->to, who);
        actor->flagged = true;
    } else if (from < 0 || (cur != STATE_UNKNOWN && from != cur)) {
        kind = PGF_VIOL_FROM_MISMATCH;
        snprintf(msg, sizeof msg, "transition %s -> %s by %s, but the session was in %s%s", r->from,
                 r->to, who, state_str(c, cur), from < 0 ? " (unknown state name)" : "");
    } else if (to < 0 || opi < 0 || !pgf_spec_transition_ok(sp, opi, from, to)) {
        kind = PGF_VIOL_ILLEGAL_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s by %s is not in the transition table%s", r->from, r->to,
                 who,
                 to < 0    ? " (unknown state)"
                 : opi < 0 ? " (undeclared op)"
                           : "");
    } else if (orphan) {
        kind = PGF_VIOL_ORPHAN_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s attributed to %s, which is not in progress", r->from,
                 r->to, who);
    } else if (actor != NULL && actor->preempted_by >= 0) {
        kind = PGF_VIOL_CONCURRENT_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s by %s after it was preempted by %s", r->from, r->to,
                 who, pgf_spec_op_name(sp, actor->preempted_by));
    }

    /* An op that already entered one of its end states by its own
     * transition has nothing left to do but complete: another op moving
     * the session first means its completion was lost (or held back until
     * a close came to abort it). */
    bool mover_preempts = opi >= 0 && pgf_spec_op_preempts(sp, opi); /* else: the incident */
    for (size_t oi = s->first_active; oi != NONE_IDX && kind < 0 && mover_preempts;
         oi = c->ops[oi].next_active) {
        opst *q = &c->ops[oi];
        if (q == actor || !q->ended || q->flagged)
            continue;
        kind = PGF_VIOL_LATE_COMPLETION;
        snprintf(msg, sizeof msg,
                 "%s -> %s by %s while %s#%" PRId64 " had reached its end state %s but not "
                 "completed",
                 r->from, r->to, who, pgf_spec_op_name(sp, q->op), q->op_id,
                 state_str(c, q->end_state));
        q->flagged = true;
    }

    /* Every other op in progress: preempted, joined, or the incident. */
    bool preempts = opi >= 0 && pgf_spec_op_preempts(sp, opi);
    for (size_t oi = s->first_active; oi != NONE_IDX; oi = c->ops[oi].next_active) {
        opst *q = &c->ops[oi];
        if (q == actor)
            continue;
        if (preempts) {
            /* same-name preempting ops (close, close) join; a later
             * preempter takes over (check preempted by cancel, then by
             * close: the check may complete in CLOSING) */
            if (q->op != opi)
                q->preempted_by = opi;
            continue;
        }
        if (q->preempted_by >= 0)
            continue;
        if (kind < 0) {
            kind = PGF_VIOL_CONCURRENT_TRANSITION;
            snprintf(msg, sizeof msg,
                     "%s -> %s by %s while %s#%" PRId64 " was in progress (%s does not preempt)",
                     r->from, r->to, who, pgf_spec_op_name(sp, q->op), q->op_id, r->op);
        }
    }
    if (actor != NULL) {
        actor->moved = true;
        if (to >= 0 && actor->op >= 0 && actor->status == OP_LEGAL &&
            pgf_spec_op_ends_in(sp, actor->op, to) && !pgf_spec_op_passes(sp, actor->op, to)) {
            actor->ended = true;
            actor->end_state = to;
        }
    }
    s->state = to; /* STATE_UNKNOWN (-1) when the name is unknown: resync later */
    if (kind >= 0)
        violate(c, (pgf_violation_kind)kind, s, i, NONE_IDX, "%s", msg);
}

static void on_completion(ck *c, sess *s, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    const pgf_spec *sp = c->spec;
    s->active_seen = true;
    uint64_t oi;
    size_t sidx = (size_t)(s - c->sessions);
    const char *type = pgf_rec_type_name(r->type);
    if (!map_get(&c->op_by_id, (uint64_t)r->op_id, &oi) || c->ops[oi].sess != sidx ||
        (r->op != NULL && c->ops[oi].op >= 0 &&
         strcmp(r->op, pgf_spec_op_name(sp, c->ops[oi].op)) != 0)) {
        violate(c, PGF_VIOL_UNMATCHED_COMPLETION, s, i, NONE_IDX,
                "%s for op_id %" PRId64 " (%s) with no matching invoke on this session", type,
                r->op_id, r->op != NULL ? r->op : "?");
        return;
    }
    opst *o = &c->ops[oi];
    const char *name = o->op >= 0 ? pgf_spec_op_name(sp, o->op) : (r->op ? r->op : "?");
    if (o->done) {
        violate(c, PGF_VIOL_DOUBLE_COMPLETION, s, i, NONE_IDX,
                "%s#%" PRId64 " completed again (%s)", name, o->op_id, type);
        return;
    }
    o->done = true;
    if (o->status == OP_LEGAL)
        active_remove(c, s, oi);
    const char *err = r->error != NULL ? r->error : "-";
    /* A preempted op ends when its preempter gets to it (a check canceled
     * near its deadline waits for the cancel): the preempter's own
     * deadline bounds that. */
    if (o->status == OP_LEGAL && o->preempted_by < 0 && o->op >= 0 && o->op < 64 &&
        c->dl_ns[o->op] >= 0) {
        uint64_t t0 = c->recs[o->invoke_rec].time_ns, limit = (uint64_t)c->dl_ns[o->op];
        uint64_t took = r->time_ns > t0 ? r->time_ns - t0 : 0;
        if (took > limit + c->dl->tolerance_ns) {
            violate(c, PGF_VIOL_DEADLINE_EXCEEDED, s, i, NONE_IDX,
                    "%s#%" PRId64 " completed %s%s%s after %.3f s; its deadline is %.3f s "
                    "(+%.3f s tolerance)",
                    name, o->op_id, type, r->error ? " " : "", r->error ? r->error : "",
                    (double)took / 1e9, (double)limit / 1e9, (double)c->dl->tolerance_ns / 1e9);
            return;
        }
    }
    bool illegal_err = is_err(c, r, PGF_EILLEGAL_STATE);
    switch ((enum op_status)o->status) {
    case OP_UNDECLARED:
        return;
    case OP_AFTER_CLOSE:
        if (!illegal_err && !o->flagged)
            violate(c, PGF_VIOL_USE_AFTER_CLOSE, s, i, NONE_IDX,
                    "%s#%" PRId64 " on a terminal session completed %s (error %s); it must fail "
                    "with PGF_EILLEGAL_STATE",
                    name, o->op_id, type, err);
        return;
    case OP_ILLEGAL_START:
        if (!illegal_err && !o->flagged)
            violate(c, PGF_VIOL_ILLEGAL_START, s, i, NONE_IDX,
                    "%s#%" PRId64 " started %s completed %s (error %s); it must fail with "
                    "PGF_EILLEGAL_STATE",
                    name, o->op_id,
                    o->busy_start ? "while another op was in progress"
                                  : "outside its `from` states",
                    type, err);
        return;
    case OP_LEGAL:
        break;
    }
    if (s->state == STATE_UNKNOWN)
        return;
    if (o->preempted_by >= 0) {
        int p = o->preempted_by;
        if (!is_err(c, r, PGF_ECANCELED))
            violate(c, PGF_VIOL_PREEMPTED_NOT_CANCELED, s, i, NONE_IDX,
                    "%s#%" PRId64 " was preempted by %s but completed %s (error %s), not fail "
                    "PGF_ECANCELED",
                    name, o->op_id, pgf_spec_op_name(sp, p), type, err);
        else if (!pgf_spec_op_ends_in(sp, p, s->state) && !pgf_spec_op_passes(sp, p, s->state))
            violate(c, PGF_VIOL_BAD_END_STATE, s, i, NONE_IDX,
                    "%s#%" PRId64 " (preempted by %s) completed in %s, which %s neither passes "
                    "through nor ends in",
                    name, o->op_id, pgf_spec_op_name(sp, p), state_str(c, s->state),
                    pgf_spec_op_name(sp, p));
        return;
    }
    if (r->type == PGF_REC_INFO || (illegal_err && !o->moved))
        return;
    if (!pgf_spec_op_ends_in(sp, o->op, s->state))
        violate(c, PGF_VIOL_BAD_END_STATE, s, i, NONE_IDX,
                "%s#%" PRId64 " completed %s in %s, not one of its `to` states", name, o->op_id,
                type, state_str(c, s->state));
}

static const char *fault_prediction(const pgf_rec *f)
{
    if (f->reason != NULL) /* the recorder's own prediction; "" = none */
        return f->reason[0] != '\0' ? f->reason : NULL;
    return pgf_check_predict_reason(f->action, f->sqlstate);
}

/* A fault whose effect on the stream is arbitrary (garbage bytes) makes
 * what a later fault on the same connection does unpredictable: libpq may
 * already be out of sync when the connection is cut. Such a connection's
 * next health result is not checked against any prediction. */
#define AMBIGUOUS_IDX (SIZE_MAX - 1)

static void on_fault(ck *c, sess *s, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    if (fault_prediction(r) == NULL) {
        /* A slowing fault may push whatever comes next past a deadline:
         * on that connection, timeout is a legitimate outcome too. */
        bool slows = r->action != NULL &&
                     (strcmp(r->action, "delay") == 0 || strcmp(r->action, "drip") == 0 ||
                      strcmp(r->action, "bandwidth") == 0);
        if (slows && r->conn != PGF_REC_NONE && map_put(&c->slowed_conn, (uint64_t)r->conn, 1) < 0)
            c->err = PGF_ENOMEM;
        if (r->action == NULL || strcmp(r->action, "garbage") != 0)
            return;
        if (r->conn != PGF_REC_NONE) {
            uint64_t cur;
            if (!map_get(&c->fault_by_conn, (uint64_t)r->conn, &cur) || cur == NONE_IDX)
                if (map_put(&c->fault_by_conn, (uint64_t)r->conn, AMBIGUOUS_IDX) < 0)
                    c->err = PGF_ENOMEM;
        }
        if (s != NULL && s->pending_fault == NONE_IDX)
            s->pending_fault = AMBIGUOUS_IDX;
        return;
    }
    /* Two faults with different predictions on one connection (a stall,
     * then a reset already queued behind it): either may decide the
     * outcome, so neither is held against it. */
    const char *want = fault_prediction(r);
    if (r->conn != PGF_REC_NONE) {
        uint64_t cur;
        if (!map_get(&c->fault_by_conn, (uint64_t)r->conn, &cur) || cur == NONE_IDX) {
            if (map_put(&c->fault_by_conn, (uint64_t)r->conn, i) < 0)
                c->err = PGF_ENOMEM;
        } else if (cur != AMBIGUOUS_IDX && strcmp(fault_prediction(&c->recs[cur]), want) != 0) {
            if (map_put(&c->fault_by_conn, (uint64_t)r->conn, AMBIGUOUS_IDX) < 0)
                c->err = PGF_ENOMEM;
        }
    }
    /* the connection's earlier faults (at accept, before the session was
     * known) count for the session too: health records name no conn */
    uint64_t conn_now = NONE_IDX;
    bool conn_ambiguous = r->conn != PGF_REC_NONE &&
                          map_get(&c->fault_by_conn, (uint64_t)r->conn, &conn_now) &&
                          conn_now == AMBIGUOUS_IDX;
    if (s == NULL)
        return;
    if (conn_ambiguous)
        s->pending_fault = AMBIGUOUS_IDX;
    else if (s->pending_fault == NONE_IDX)
        s->pending_fault = i;
    else if (s->pending_fault != AMBIGUOUS_IDX &&
             strcmp(fault_prediction(&c->recs[s->pending_fault]), want) != 0)
        s->pending_fault = AMBIGUOUS_IDX;
}

static void on_health(ck *c, sess *s, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    size_t fault = NONE_IDX;
    if (r->conn != PGF_REC_NONE) {
        uint64_t f;
        if (map_get(&c->fault_by_conn, (uint64_t)r->conn, &f) && f != NONE_IDX) {
            fault = f;
            if (map_put(&c->fault_by_conn, (uint64_t)r->conn, NONE_IDX) < 0)
                c->err = PGF_ENOMEM;
        }
    }
    if (fault == NONE_IDX)
        fault = s->pending_fault;
    s->pending_fault = NONE_IDX;
    if (fault == NONE_IDX || fault == AMBIGUOUS_IDX || strcmp(r->reason, "ok") == 0)
        return;
    const pgf_rec *f = &c->recs[fault];
    const char *want = fault_prediction(f);
    uint64_t slowed = 0;
    if (strcmp(r->reason, "timeout") == 0 && f->conn != PGF_REC_NONE &&
        map_get(&c->slowed_conn, (uint64_t)f->conn, &slowed) && slowed)
        return;
    if (strcmp(want, r->reason) != 0)
        violate(c, PGF_VIOL_MISCLASSIFIED_HEALTH, s, i, fault,
                "health reason \"%s\", but fault %s%s%s (rule %s, line %u) predicts \"%s\"",
                r->reason, f->action, f->sqlstate != NULL ? " " : "",
                f->sqlstate != NULL ? f->sqlstate : "", f->rule != NULL ? f->rule : "-", f->line,
                want);
}

static void on_server(ck *c, size_t i)
{
    const pgf_rec *r = &c->recs[i];
    c->last_server = i;
    if (r->conns_accepted == PGF_REC_NONE)
        return;
    int64_t diff = r->conns_accepted - r->conns_closed;
    if (diff < 0 || (r->conns_open != PGF_REC_NONE && diff != r->conns_open))
        violate(c, PGF_VIOL_SERVER_COUNT_MISMATCH, NULL, i, NONE_IDX,
                "server: accepted %" PRId64 " - closed %" PRId64 " = %" PRId64
                ", but conns_open is %" PRId64,
                r->conns_accepted, r->conns_closed, diff, r->conns_open);
    else if (r->sessions_open != PGF_REC_NONE && diff != r->sessions_open)
        violate(c, PGF_VIOL_SERVER_COUNT_MISMATCH, NULL, i, NONE_IDX,
                "server: accepted %" PRId64 " - closed %" PRId64 " = %" PRId64
                " connections, but the session manager holds %" PRId64,
                r->conns_accepted, r->conns_closed, diff, r->sessions_open);
}

static void at_end(ck *c)
{
    const pgf_spec *sp = c->spec;
    for (size_t oi = 0; oi < c->nops; oi++) {
        opst *o = &c->ops[oi];
        if (o->done)
            continue;
        violate(c, PGF_VIOL_MISSING_COMPLETION, &c->sessions[o->sess], NONE_IDX, NONE_IDX,
                "%s#%" PRId64 " was invoked but never completed",
                o->op >= 0 ? pgf_spec_op_name(sp, o->op) : "?", o->op_id);
    }
    for (size_t si = 0; si < c->nsess; si++) {
        sess *s = &c->sessions[si];
        if (!s->active_seen || s->state == STATE_UNKNOWN || pgf_spec_state_terminal(sp, s->state))
            continue;
        violate(c, PGF_VIOL_NOT_CLOSED, s, NONE_IDX, NONE_IDX,
                "session %" PRId64 " ends in %s, not a terminal state", s->id,
                state_str(c, s->state));
    }
    if (c->last_server != NONE_IDX) {
        const pgf_rec *r = &c->recs[c->last_server];
        int64_t open = r->conns_open != PGF_REC_NONE       ? r->conns_open
                       : r->conns_accepted != PGF_REC_NONE ? r->conns_accepted - r->conns_closed
                                                           : 0;
        if (open > 0)
            violate(c, PGF_VIOL_CONNECTION_LEAK, NULL, c->last_server, NONE_IDX,
                    "%" PRId64 " connection(s) still open at the server at the end", open);
        else if (r->sessions_open != PGF_REC_NONE && r->sessions_open > 0)
            violate(c, PGF_VIOL_CONNECTION_LEAK, NULL, c->last_server, NONE_IDX,
                    "the session manager still holds %" PRId64 " connection(s) at the end",
                    r->sessions_open);
    }
}

void pgf_check_result_free(pgf_check_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nfirst; i++)
        free(r->first[i].witness);
    free(r->first);
    free(r);
}

int pgf_check(const pgf_spec *spec, const pgf_rec *recs, size_t n, const pgf_check_opts *opts,
              pgf_check_result **out)
{
    *out = NULL;
    ck c;
    memset(&c, 0, sizeof c);
    c.spec = spec;
    c.recs = recs;
    c.n = n;
    c.wmax = opts != NULL && opts->witness_max > 0 ? opts->witness_max : PGF_CHECK_WITNESS_DEFAULT;
    c.last_server = NONE_IDX;
    c.dl = opts != NULL ? opts->deadlines : NULL;
    for (int k = 0; k < 64; k++)
        c.dl_ns[k] = -1;
    for (unsigned k = 0; c.dl != NULL && k < c.dl->n && k < PGF_CHECK_MAX_DEADLINES; k++) {
        int op = pgf_spec_op_find(spec, c.dl->op[k]);
        if (op >= 0 && op < 64 && c.dl->ns[k] > 0)
            c.dl_ns[op] = (int64_t)c.dl->ns[k];
    }
    c.res = calloc(1, sizeof *c.res);
    c.prev = malloc((n ? n : 1) * sizeof *c.prev);
    if (c.res == NULL || c.prev == NULL) {
        c.err = PGF_ENOMEM;
        goto done;
    }
    for (size_t i = 0; i < n && c.err == 0; i++) {
        const pgf_rec *r = &recs[i];
        c.prev[i] = NONE_IDX;
        sess *s = NULL;
        if (r->session != PGF_REC_NONE) {
            s = session_get(&c, r->session);
            if (s == NULL) {
                c.err = PGF_ENOMEM;
                break;
            }
            chain(&c, s, i);
        }
        switch (r->type) {
        case PGF_REC_INVOKE:
            if (s != NULL && r->op != NULL && r->op_id != PGF_REC_NONE)
                on_invoke(&c, s, i);
            break;
        case PGF_REC_OK:
        case PGF_REC_FAIL:
        case PGF_REC_INFO:
            if (s != NULL && r->op_id != PGF_REC_NONE)
                on_completion(&c, s, i);
            break;
        case PGF_REC_TRANSITION:
            if (s != NULL && r->from != NULL && r->to != NULL && r->op != NULL)
                on_transition(&c, s, i);
            break;
        case PGF_REC_FAULT:
            on_fault(&c, s, i);
            break;
        case PGF_REC_HEALTH:
            if (s != NULL && r->reason != NULL)
                on_health(&c, s, i);
            break;
        case PGF_REC_SERVER:
            on_server(&c, i);
            break;
        case PGF_REC_TYPE_COUNT:
            break;
        }
    }
    if (c.err == 0)
        at_end(&c);
    if (c.err == 0) {
        c.res->records = n;
        c.res->sessions = c.nsess;
        c.res->ops = c.nops;
    }
done:
    free(c.prev);
    free(c.sessions);
    free(c.ops);
    map_free(&c.sess_by_id);
    map_free(&c.op_by_id);
    map_free(&c.fault_by_conn);
    map_free(&c.slowed_conn);
    if (c.err != 0) {
        pgf_check_result_free(c.res);
        return c.err;
    }
    *out = c.res;
    return 0;
}
