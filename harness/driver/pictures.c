/* pictures.c - see pictures.h. What the report's figures are made of:
 *
 * - the timeline holds every session with a violation (up to
 *   PGF_REPORT_HTML_MAX_FAILING) and PGF_REPORT_HTML_MAX_SESSIONS others:
 *   their state spans (a terminal state is a zero-length span, never a bar
 *   to the end of the run), their operations from invoke to completion, the
 *   violations the checker found on them;
 * - fired faults on those sessions (and server-wide ones, up to a cap)
 *   become marks; the page counts the others. Every rule with
 *   from_ms/until_ms is a fault window;
 * - every health check the driver counted, with its latency and the time
 *   it ended, is a sample for the latency and throughput over time plots
 *   (also with --no-check, and for pool timeouts that never reach a session).
 *
 * The history streams by once (run.c), so nothing here may keep it all. The
 * coverage and the edge counts are running totals; state is kept only for
 * open sessions and operations (and the last CLOSED_KEPT closed sessions).
 * The timeline's sample is chosen as sessions appear: each session id gets
 * a key from a seeded hash, and the TRACKED sessions with the smallest keys
 * so far are kept with their records (bottom-k sampling: a uniform sample
 * over the whole run, whatever its length, without knowing it in advance; a
 * session a fault hits gets a smaller key, so sampled sessions with faults
 * outlive those without). A session's key is fixed and the threshold only
 * falls, so a session left out once is never taken later, with half its
 * records missing. A session with a violation that the sample missed is
 * drawn from its witness (the checker's copies of its last records up to
 * the violation). Records of sessions that leave the sample are garbage,
 * compacted when they outweigh the live ones: about TRACKED * ln(sessions /
 * TRACKED) sessions ever enter the sample, so that stays small. */
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

/* ---- the stream: running totals and the sampled sessions ---------------- */

/* u64 -> u32, open addressing with backward-shift deletion (keys stored
 * +1: 0 is an empty slot). */
typedef struct imap {
    uint64_t *k;
    uint32_t *v;
    size_t cap, n;
} imap;

static size_t imap_home(const imap *m, uint64_t key)
{
    return (size_t)(key * 0x9E3779B97F4A7C15ULL >> 17) & (m->cap - 1);
}

static bool imap_get(const imap *m, uint64_t key, uint32_t *v)
{
    if (m->n == 0)
        return false;
    for (size_t j = imap_home(m, key);; j = (j + 1) & (m->cap - 1)) {
        if (m->k[j] == 0)
            return false;
        if (m->k[j] == key + 1) {
            *v = m->v[j];
            return true;
        }
    }
}

static int imap_put(imap *m, uint64_t key, uint32_t v)
{
    if (2 * (m->n + 1) > m->cap) {
        imap old = *m;
        size_t cap = old.cap ? old.cap * 2 : 64;
        m->k = calloc(cap, sizeof *m->k);
        m->v = calloc(cap, sizeof *m->v);
        if (m->k == NULL || m->v == NULL) {
            free(m->k);
            free(m->v);
            *m = old;
            return PGF_ENOMEM;
        }
        m->cap = cap;
        m->n = 0;
        for (size_t i = 0; i < old.cap; i++)
            if (old.k[i] != 0)
                ignore_(imap_put(m, old.k[i] - 1, old.v[i]));
        free(old.k);
        free(old.v);
    }
    size_t j = imap_home(m, key);
    while (m->k[j] != 0 && m->k[j] != key + 1)
        j = (j + 1) & (m->cap - 1);
    if (m->k[j] == 0)
        m->n++;
    m->k[j] = key + 1;
    m->v[j] = v;
    return 0;
}

static void imap_del(imap *m, uint64_t key)
{
    if (m->n == 0)
        return;
    size_t j = imap_home(m, key);
    while (m->k[j] != key + 1) {
        if (m->k[j] == 0)
            return;
        j = (j + 1) & (m->cap - 1);
    }
    m->n--;
    /* backward shift: pull later entries of the run into the hole */
    for (size_t i = (j + 1) & (m->cap - 1); m->k[i] != 0; i = (i + 1) & (m->cap - 1)) {
        size_t h = imap_home(m, m->k[i] - 1);
        bool movable = j <= i ? (h <= j || h > i) : (h <= j && h > i);
        if (movable) {
            m->k[j] = m->k[i];
            m->v[j] = m->v[i];
            j = i;
        }
    }
    m->k[j] = 0;
}

static void imap_free(imap *m)
{
    free(m->k);
    free(m->v);
    memset(m, 0, sizeof *m);
}

enum {
    TRACKED = PGF_REPORT_HTML_MAX_SESSIONS + PGF_REPORT_HTML_MAX_FAILING, /* sampled sessions */
    TRACK_RECS = 600,      /* records kept per sampled session (~200 operations on its row) */
    SERVER_MARKS = 2000,   /* server-wide fault marks kept */
    CLOSED_KEPT = 1 << 16, /* closed sessions whose state the coverage remembers */
    MAXE = 256,            /* distinct (from, to, op) edges */
};

typedef struct trk {
    int64_t session;
    uint64_t key;
    uint32_t nrecs;
    bool faulted;
} trk;

struct pgf__pics {
    uint64_t seed;
    /* coverage: the state each open session is in, the cell of each open op */
    uint64_t calls[PGF_OP_COUNT][PGF_SESS_STATE_COUNT];
    uint64_t refused[PGF_OP_COUNT][PGF_SESS_STATE_COUNT];
    imap state, cell;
    int64_t *closed; /* ring of the last CLOSED_KEPT terminal sessions */
    size_t nclosed;
    int64_t forgot_max; /* highest session id forgotten after closing */
    uint8_t forgot_state;
    /* edges: (from, to, op) -> count; strings owned */
    struct {
        char *from, *to, *op;
        uint64_t n;
    } edges[MAXE];
    int ne;
    /* (op, from, to) of the session manager's names -> edge index + 1:
     * the common case without a strcmp scan of the edges */
    int16_t edge_ix[PGF_OP_COUNT][PGF_SESS_STATE_COUNT][PGF_SESS_STATE_COUNT];
    /* the sample */
    trk trk[TRACKED];
    size_t ntrk;
    uint64_t maxkey;    /* largest key in the sample (valid when full) */
    imap trk_ix;        /* session -> index in trk */
    pgf_rec_store kept; /* records of sampled sessions, server-wide faults */
    size_t garbage;     /* kept records of sessions that left the sample */
    uint64_t server_marks, marks_not_kept;
    bool failed;
};

static uint64_t mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

pgf__pics *pgf__pics_new(uint64_t seed)
{
    pgf__pics *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->closed = malloc(CLOSED_KEPT * sizeof *p->closed);
    if (p->closed == NULL) {
        free(p);
        return NULL;
    }
    p->seed = seed;
    p->forgot_max = -1;
    return p;
}

void pgf__pics_free(pgf__pics *p)
{
    if (p == NULL)
        return;
    imap_free(&p->state);
    imap_free(&p->cell);
    imap_free(&p->trk_ix);
    free(p->closed);
    for (int k = 0; k < p->ne; k++) {
        free(p->edges[k].from);
        free(p->edges[k].to);
        free(p->edges[k].op);
    }
    pgf_rec_store_free(&p->kept);
    free(p);
}

size_t pgf__pics_held(const pgf__pics *p)
{
    return p->kept.n;
}

size_t pgf__pics_sampled(const pgf__pics *p)
{
    return p->ntrk;
}

uint64_t pgf__pics_sample_digest(const pgf__pics *p)
{
    uint64_t d = 0;
    for (size_t i = 0; i < p->ntrk; i++)
        d += mix64((uint64_t)p->trk[i].session);
    return d;
}

uint64_t pgf__pics_key(const pgf__pics *p, int64_t session)
{
    return mix64(p->seed ^ mix64((uint64_t)session)) >> 1;
}

bool pgf__pics_sampled_has(const pgf__pics *p, int64_t session)
{
    uint32_t ix;
    return imap_get(&p->trk_ix, (uint64_t)session, &ix) && ix < p->ntrk &&
           p->trk[ix].session == session;
}

int pgf__pics_sample_check(const pgf__pics *p)
{
    if (p->trk_ix.n != p->ntrk)
        return -1;
    uint64_t mx = 0;
    for (size_t i = 0; i < p->ntrk; i++) {
        uint32_t ix;
        if (!imap_get(&p->trk_ix, (uint64_t)p->trk[i].session, &ix) || ix != i)
            return -1;
        if (p->trk[i].key > mx)
            mx = p->trk[i].key;
    }
    return mx == p->maxkey ? 0 : -1;
}

/* The state a session is in for the coverage: NEW before its first
 * transition; a session forgotten after it closed is in the state the
 * forgotten ones closed in. */
static int cov_state(const pgf__pics *p, int64_t session)
{
    uint32_t v;
    if (imap_get(&p->state, (uint64_t)session, &v))
        return (int)v;
    return session <= p->forgot_max ? p->forgot_state : 0;
}

/* (operation x state) coverage: the state a session was in when an
 * operation was invoked is the `to` of its last transition (NEW before
 * any), because a session's invoke and transitions are recorded under its
 * one mutex, in order. */
static int cov_feed(pgf__pics *p, const pgf_rec *r)
{
    if (r->session < 0 || r->op == NULL)
        return 0;
    if (r->type == PGF_REC_TRANSITION && r->to != NULL) {
        int to = pgf_session_state_parse(r->to);
        if (to < 0)
            return 0;
        if (imap_put(&p->state, (uint64_t)r->session, (uint32_t)to) != 0)
            return PGF_ENOMEM;
        if (pgf_session_state_terminal((pgf_sess_state)to)) {
            /* keep the last CLOSED_KEPT closed sessions, forget older ones */
            size_t slot = p->nclosed++ % CLOSED_KEPT;
            if (p->nclosed > CLOSED_KEPT) {
                int64_t old = p->closed[slot];
                uint32_t st;
                if (imap_get(&p->state, (uint64_t)old, &st) &&
                    pgf_session_state_terminal((pgf_sess_state)st)) {
                    imap_del(&p->state, (uint64_t)old);
                    if (old > p->forgot_max)
                        p->forgot_max = old;
                    p->forgot_state = (uint8_t)st;
                }
            }
            p->closed[slot] = r->session;
        }
    } else if (r->type == PGF_REC_INVOKE && r->op_id >= 0) {
        int op = pgf_session_op_parse(r->op);
        if (op <= 0 || op >= PGF_OP_COUNT)
            return 0;
        int st = cov_state(p, r->session);
        p->calls[op][st]++;
        return imap_put(&p->cell, (uint64_t)r->op_id, (uint32_t)(op * PGF_SESS_STATE_COUNT + st));
    } else if ((r->type == PGF_REC_FAIL || r->type == PGF_REC_OK) && r->op_id >= 0) {
        uint32_t c;
        if (!imap_get(&p->cell, (uint64_t)r->op_id, &c))
            return 0;
        if (r->type == PGF_REC_FAIL && r->error != NULL &&
            strcmp(r->error, "PGF_EILLEGAL_STATE") == 0)
            p->refused[c / PGF_SESS_STATE_COUNT][c % PGF_SESS_STATE_COUNT]++;
        imap_del(&p->cell, (uint64_t)r->op_id); /* completed: its cell is done */
    }
    return 0;
}

static int edge_feed(pgf__pics *p, const pgf_rec *rec)
{
    if (rec->type != PGF_REC_TRANSITION || !rec->from || !rec->to || !rec->op)
        return 0;
    int op = pgf_session_op_parse(rec->op), from = pgf_session_state_parse(rec->from),
        to = pgf_session_state_parse(rec->to);
    int16_t *ix =
        op > 0 && op < PGF_OP_COUNT && from >= 0 && to >= 0 ? &p->edge_ix[op][from][to] : NULL;
    if (ix != NULL && *ix > 0) {
        p->edges[*ix - 1].n++;
        return 0;
    }
    int k;
    for (k = 0; k < p->ne; k++)
        if (strcmp(p->edges[k].from, rec->from) == 0 && strcmp(p->edges[k].to, rec->to) == 0 &&
            strcmp(p->edges[k].op, rec->op) == 0)
            break;
    if (k == p->ne) {
        if (p->ne == MAXE)
            return 0;
        char *f = strdup(rec->from), *t = strdup(rec->to), *o = strdup(rec->op);
        if (f == NULL || t == NULL || o == NULL) {
            free(f);
            free(t);
            free(o);
            return PGF_ENOMEM;
        }
        p->edges[k].from = f;
        p->edges[k].to = t;
        p->edges[k].op = o;
        p->edges[k].n = 0;
        p->ne++;
    }
    p->edges[k].n++;
    if (ix != NULL)
        *ix = (int16_t)(k + 1);
    return 0;
}

/* The largest key in the sample: the next session to leave it when it is
 * full. TRACKED compares, where rebuilding the index each time a session
 * entered (a calloc and TRACKED inserts) was a fifth of the pictures' cost
 * on a 5 s run at 1,000 sessions (bench/stream_cost under callgrind). */
static void trk_maxkey(pgf__pics *p)
{
    p->maxkey = 0;
    for (size_t i = 0; i < p->ntrk; i++)
        if (p->trk[i].key > p->maxkey)
            p->maxkey = p->trk[i].key;
}

/* Rebuild the kept records without those of sessions that left the sample. */
static int compact(pgf__pics *p)
{
    pgf_rec_store fresh = {0};
    for (size_t i = 0; i < p->kept.n; i++) {
        const pgf_rec *r = &p->kept.recs[i];
        uint32_t ix;
        if (r->session != PGF_REC_NONE && !imap_get(&p->trk_ix, (uint64_t)r->session, &ix))
            continue;
        if (pgf_rec_store_add(&fresh, r) != 0) {
            pgf_rec_store_free(&fresh);
            return PGF_ENOMEM;
        }
    }
    pgf_rec_store_free(&p->kept);
    p->kept = fresh;
    p->garbage = 0;
    return 0;
}

/* The sampled session's index, taking it into the sample if its key is
 * small enough; -1 = not sampled. */
static long trk_find(pgf__pics *p, int64_t session, int *err)
{
    uint32_t ix;
    if (imap_get(&p->trk_ix, (uint64_t)session, &ix))
        return (long)ix;
    uint64_t key = pgf__pics_key(p, session);
    if (p->ntrk == TRACKED && key >= p->maxkey)
        return -1;
    size_t at = p->ntrk;
    if (p->ntrk == TRACKED) { /* the largest key leaves */
        for (at = 0; p->trk[at].key != p->maxkey; at++)
            ;
        p->garbage += p->trk[at].nrecs;
        imap_del(&p->trk_ix, (uint64_t)p->trk[at].session);
    } else {
        p->ntrk++;
    }
    p->trk[at] = (trk){session, key, 0, false};
    trk_maxkey(p);
    if ((*err = imap_put(&p->trk_ix, (uint64_t)session, (uint32_t)at)) != 0)
        return -1;
    if (p->garbage > 10000 && p->garbage > p->kept.n / 2 && (*err = compact(p)) != 0)
        return -1;
    return (long)at;
}

int pgf__pics_feed(pgf__pics *p, const pgf_rec *rec)
{
    int e = cov_feed(p, rec);
    if (e == 0)
        e = edge_feed(p, rec);
    if (e == 0 && rec->type == PGF_REC_FAULT && rec->session == PGF_REC_NONE) {
        if (p->server_marks < SERVER_MARKS) {
            p->server_marks++;
            e = pgf_rec_store_add(&p->kept, rec);
        } else {
            p->marks_not_kept++;
        }
    } else if (e == 0 && rec->session != PGF_REC_NONE &&
               (rec->type == PGF_REC_TRANSITION || rec->type == PGF_REC_INVOKE ||
                rec->type == PGF_REC_FAULT || rec->type == PGF_REC_OK ||
                rec->type == PGF_REC_FAIL || rec->type == PGF_REC_INFO)) {
        long i = trk_find(p, rec->session, &e);
        if (i < 0) {
            p->marks_not_kept += e == 0 && rec->type == PGF_REC_FAULT;
        } else if (p->trk[i].nrecs < TRACK_RECS) {
            p->trk[i].nrecs++;
            if (rec->type == PGF_REC_FAULT && !p->trk[i].faulted) {
                p->trk[i].faulted = true;
                p->trk[i].key >>= 4; /* a session a fault hit: keep it longer */
                trk_maxkey(p);
            }
            if (e == 0)
                e = pgf_rec_store_add(&p->kept, rec);
        }
    }
    if (e != 0)
        p->failed = true;
    return e;
}

static int cmp_rec_seq(const void *a, const void *b)
{
    const pgf_rec *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
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

static void add_op_coverage(const pgf__pics *p, pgf_report_scenario *rs)
{
    for (int op = 1; op < PGF_OP_COUNT; op++)
        for (int k = 0; k < PGF_SESS_STATE_COUNT; k++)
            if (p->calls[op][k] > 0)
                ignore_(pgf_report_add_op_coverage(rs, pgf_session_op_name((pgf_sess_op)op),
                                                   pgf_session_state_name((pgf_sess_state)k),
                                                   p->calls[op][k], p->refused[op][k]));
}

/* The records the timeline draws, by seq: the sampled sessions' and the
 * kept server-wide faults, plus the witnesses of violations on sessions the
 * sample missed. Caller frees. */
static pgf_rec *timeline_records(const pgf__pics *p, const pgf_check_result *ck, size_t *n)
{
    size_t cap = p->kept.n;
    for (size_t f = 0; ck != NULL && f < ck->nfirst; f++)
        cap += ck->first[f].nwitness;
    pgf_rec *v = malloc((cap + 1) * sizeof *v);
    if (v == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < p->kept.n; i++) {
        const pgf_rec *r = &p->kept.recs[i];
        uint32_t ix;
        if (r->session == PGF_REC_NONE || imap_get(&p->trk_ix, (uint64_t)r->session, &ix))
            v[k++] = *r;
    }
    for (size_t f = 0; ck != NULL && f < ck->nfirst; f++) {
        const pgf_violation *vi = &ck->first[f];
        uint32_t ix;
        if (vi->session != PGF_REC_NONE &&
            imap_get(&p->trk_ix, (uint64_t)vi->session, &ix)) /* drawn whole already */
            continue;
        for (size_t w = 0; vi->wrec != NULL && w < vi->nwitness; w++)
            v[k++] = vi->wrec[w];
    }
    qsort(v, k, sizeof *v, cmp_rec_seq);
    size_t u = 0; /* one copy of each (witnesses may share records) */
    for (size_t i = 0; i < k; i++)
        if (u == 0 || v[u - 1].seq != v[i].seq)
            v[u++] = v[i];
    *n = u;
    return v;
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
                        pgf__pics *p, pgf_report_scenario *rs)
{
    if (p->failed)
        pgf_report_scenario_set_incomplete(rs);
    add_op_coverage(p, rs);
    pgf_report_scenario_add_marks_not_kept(rs, p->marks_not_kept);
    size_t n = 0;
    pgf_rec *recs = timeline_records(p, ck, &n);
    if (recs == NULL) {
        pgf_report_scenario_set_incomplete(rs);
        return;
    }
    for (int k = 0; k < PGF_HEALTH_REASON_COUNT; k++) {
        if (r->outcomes[k] == 0)
            continue;
        pgf_report_outcome o = outcome_of((pgf_health_reason)k);
        ignore_(pgf_report_count_outcome(rs, o, r->outcomes[k]));
        add_latencies(rs, o, &r->lat[k]);
    }
    /* the over-time charts: exact throughput bins, sampled latency dots */
    const pgf_overtime *ot = &r->ot;
    for (size_t i = 0; i < ot->ndots; i++)
        ignore_(pgf_report_add_sample(rs, outcome_of((pgf_health_reason)ot->dots[i].reason),
                                      ot->dots[i].t_ns, ot->dots[i].latency_ns));
    pgf_report_scenario_add_samples_dropped(rs, ot->seen - ot->ndots);
    if (ot->nbins > 0 && pgf_report_set_throughput(rs, ot->bin_ns, ot->nbins, ot->ok, ot->bad) != 0)
        pgf_report_scenario_set_incomplete(rs);
    if (ot->failed)
        pgf_report_scenario_set_incomplete(rs);
    for (int st = 0; st < PGF_SESS_STATE_COUNT; st++)
        ignore_(pgf_report_add_state(rs, pgf_session_state_name((pgf_sess_state)st)));
    ignore_(pgf_report_scenario_set_timing(rs, pgf_run_mode_name(sc->mode), r->wall_ns));
    if (ck != NULL)
        pgf_report_scenario_set_sessions(rs, ck->sessions);

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
                pending *np = realloc(t->ops, nc * sizeof *np);
                if (np == NULL)
                    continue;
                t->ops = np;
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
    for (int k = 0; k < p->ne; k++) {
        int from = pgf_session_state_parse(p->edges[k].from),
            to = pgf_session_state_parse(p->edges[k].to);
        int op = pgf_session_op_parse(p->edges[k].op);
        bool legal = from >= 0 && to >= 0 && op >= 0 &&
                     pgf_session_transition_allowed((pgf_sess_state)from, (pgf_sess_state)to,
                                                    (pgf_sess_op)op);
        ignore_(pgf_report_add_edge(rs, p->edges[k].from, p->edges[k].to, p->edges[k].op,
                                    p->edges[k].n, legal));
    }
    add_windows(rs, sc->rules, 0, sc->rules2 ? sc->rules2_at_ms * 1000000ULL : end, false);
    if (sc->rules2 != NULL)
        add_windows(rs, sc->rules2, sc->rules2_at_ms * 1000000ULL, end, true);

    pgf_fault_coverage cov;
    if (pgf_fault_coverage_get(r->engine, &cov) == 0) {
        for (int ph = 0; ph < PGF_PHASE_COUNT; ph++)
            for (int a = 0; a < PGF_ACTION_COUNT; a++)
                if (cov.fired[ph][a] > 0)
                    ignore_(pgf_report_add_coverage(rs, pgf_phase_name((pgf_phase)ph),
                                                    pgf_action_name((pgf_action_kind)a),
                                                    cov.fired[ph][a]));
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
    free(recs);
}
