/* check.c - the checker (see check.h), fed one record at a time.
 *
 * Per open session: the current state (or "unknown" after a record that
 * named an unknown state, until the next transition resynchronises it),
 * the list of ops in progress (usually 0-2 long), a pending predictive
 * fault, and a ring of its last witness_max records (copies whose strings
 * are interned once per checker). Per open op: its session, status at
 * start (legal / illegal start / on a terminal session / undeclared),
 * whether it was preempted and by which op. Sessions, op_ids and
 * connections are found through open-addressing hash maps, so the whole
 * check is O(records). Each record yields at most one violation, chosen by
 * a fixed priority, so counts do not double up.
 *
 * What is kept, and for how long (docs/checker.md): a session that is in a
 * terminal state with no op open is "finished"; the last KEEP_FINISHED
 * finished sessions keep everything (a late use-after-close still gets its
 * full witness), older ones are compacted to a tombstone (terminal state,
 * flags) stored as runs of session ids, and their connections' fault
 * bookkeeping is dropped. A completed op is remembered in full among the
 * last FIN_KEEP completed ones (duplicate and double completions name it),
 * then only as a run of op_ids (a duplicate is still caught). A witness is
 * the session's ring cut to witness_max, plus the fault record that a
 * health misclassification refers to, copied into the result. No I/O.
 */
#include "pgfault/check.h"

#include "history_internal.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define NONE_IDX      SIZE_MAX
#define KEEP_FINISHED 256   /* finished sessions kept whole before compaction */
#define FIN_KEEP      16384 /* completed ops remembered in full */

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
        size_t ncap = m->cap ? m->cap * 2 : 64;
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

/* Remove key (backward-shift deletion: no tombstones, so a map whose
 * entries come and go stays as large as its peak, never larger). */
static bool map_del(u64map *m, uint64_t key, uint64_t *old)
{
    if (m->cap == 0)
        return false;
    size_t mask = m->cap - 1, i = mix(key) & mask;
    while (m->keys[i] != key + 1) {
        if (m->keys[i] == 0)
            return false;
        i = (i + 1) & mask;
    }
    if (old != NULL)
        *old = m->vals[i];
    m->n--;
    for (;;) {
        m->keys[i] = 0;
        size_t k = i;
        for (;;) {
            k = (k + 1) & mask;
            if (m->keys[k] == 0)
                return true;
            size_t h = mix(m->keys[k] - 1) & mask;
            bool stays = i <= k ? (i < h && h <= k) : (i < h || h <= k);
            if (!stays)
                break;
        }
        m->keys[i] = m->keys[k];
        m->vals[i] = m->vals[k];
        i = k;
    }
}

/* ---- runs: a sorted set of id intervals with a value ------------------- */

/* Ids handed out in order (sessions, op_ids) that end the same way form
 * long runs: a finished thing costs nothing unless it differs from its
 * neighbours. Foreign histories with scattered ids degrade to one run per
 * id (32 bytes). */
typedef struct run {
    uint64_t lo, hi;
    uint64_t val;
    void *ptr; /* runs with a ptr never merge */
} run;

typedef struct runset {
    run *v;
    size_t n, cap;
} runset;

/* Index of the first run with lo > key. */
static size_t runs_upper(const runset *rs, uint64_t key)
{
    size_t lo = 0, hi = rs->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (rs->v[mid].lo <= key)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static run *runs_get(const runset *rs, uint64_t key)
{
    size_t i = runs_upper(rs, key);
    if (i == 0 || rs->v[i - 1].hi < key)
        return NULL;
    return &rs->v[i - 1];
}

static int runs_insert_at(runset *rs, size_t i, run r)
{
    if (rs->n == rs->cap) {
        size_t ncap = rs->cap ? rs->cap * 2 : 16;
        run *nv = realloc(rs->v, ncap * sizeof *nv);
        if (nv == NULL)
            return PGF_ENOMEM;
        rs->v = nv;
        rs->cap = ncap;
    }
    memmove(&rs->v[i + 1], &rs->v[i], (rs->n - i) * sizeof *rs->v);
    rs->v[i] = r;
    rs->n++;
    return 0;
}

/* Add key (not present) with val/ptr. */
static int runs_put(runset *rs, uint64_t key, uint64_t val, void *ptr)
{
    size_t i = runs_upper(rs, key);
    run *prev = i > 0 ? &rs->v[i - 1] : NULL, *next = i < rs->n ? &rs->v[i] : NULL;
    bool join_prev = ptr == NULL && prev != NULL && prev->ptr == NULL && prev->val == val &&
                     prev->hi != UINT64_MAX && prev->hi + 1 == key;
    bool join_next = ptr == NULL && next != NULL && next->ptr == NULL && next->val == val &&
                     key != UINT64_MAX && key + 1 == next->lo;
    if (join_prev && join_next) {
        prev->hi = next->hi;
        memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof *rs->v);
        rs->n--;
        return 0;
    }
    if (join_prev) {
        prev->hi = key;
        return 0;
    }
    if (join_next) {
        next->lo = key;
        return 0;
    }
    return runs_insert_at(rs, i, (run){key, key, val, ptr});
}

/* Remove key (present in *r). */
static int runs_del(runset *rs, run *r, uint64_t key)
{
    size_t i = (size_t)(r - rs->v);
    if (r->lo == r->hi) {
        memmove(&rs->v[i], &rs->v[i + 1], (rs->n - i - 1) * sizeof *rs->v);
        rs->n--;
    } else if (key == r->lo) {
        r->lo++;
    } else if (key == r->hi) {
        r->hi--;
    } else {
        run tail = {key + 1, r->hi, r->val, r->ptr};
        r->hi = key - 1;
        return runs_insert_at(rs, i + 1, tail);
    }
    return 0;
}

/* ---- interned strings ---------------------------------------------------- */

/* Record strings come from a small vocabulary (op, state, error, rule
 * names): each distinct one is stored once per checker. */
/* One slot per interned field of a record (REC_NAMES): the two strings it
 * last interned, tried before the hash (a run's records repeat a small
 * vocabulary: "check", "BUSY", "READY" ...). */
enum { F_op, F_from, F_to, F_error, F_reason, F_phase, F_rule, F_action, F_sqlstate, F_COUNT };

typedef struct strset {
    char **v;
    size_t cap, n, bytes;
    const char *recent[F_COUNT][2];
} strset;

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static const char *intern(strset *ss, const char *s, int *err)
{
    if (s == NULL)
        return NULL;
    if ((ss->n + 1) * 2 > ss->cap) {
        size_t ncap = ss->cap ? ss->cap * 2 : 64;
        char **nv = calloc(ncap, sizeof *nv);
        if (nv == NULL) {
            *err = PGF_ENOMEM;
            return NULL;
        }
        for (size_t i = 0; i < ss->cap; i++) {
            if (ss->v[i] == NULL)
                continue;
            size_t j = str_hash(ss->v[i]) & (ncap - 1);
            while (nv[j] != NULL)
                j = (j + 1) & (ncap - 1);
            nv[j] = ss->v[i];
        }
        free(ss->v);
        ss->v = nv;
        ss->cap = ncap;
    }
    size_t j = str_hash(s) & (ss->cap - 1);
    while (ss->v[j] != NULL) {
        if (strcmp(ss->v[j], s) == 0)
            return ss->v[j];
        j = (j + 1) & (ss->cap - 1);
    }
    size_t len = strlen(s) + 1;
    char *copy = malloc(len);
    if (copy == NULL) {
        *err = PGF_ENOMEM;
        return NULL;
    }
    memcpy(copy, s, len);
    ss->v[j] = copy;
    ss->n++;
    ss->bytes += len;
    return copy;
}

static void strset_free(strset *ss)
{
    for (size_t i = 0; i < ss->cap; i++)
        free(ss->v[i]);
    free(ss->v);
}

#define REC_STRS(X) \
    X(op) X(from) X(to) X(cause) X(error) X(reason) X(phase) X(rule) X(action) X(sqlstate)
/* The names: a small vocabulary, interned. `cause` is free text that may
 * name a session, a port or a pid: interned, an hour-long soak's set grew
 * without end, so each copy owns its own (rec_release frees it). */
#define REC_NAMES(X) X(op) X(from) X(to) X(error) X(reason) X(phase) X(rule) X(action) X(sqlstate)

/* intern() behind the field's two most recent strings. */
static const char *intern_field(strset *ss, int f, const char *s, int *err)
{
    if (s == NULL)
        return NULL;
    const char **r = ss->recent[f];
    if (r[0] != NULL && strcmp(r[0], s) == 0)
        return r[0];
    if (r[1] != NULL && strcmp(r[1], s) == 0) {
        const char *t = r[1];
        r[1] = r[0];
        r[0] = t;
        return t;
    }
    const char *p = intern(ss, s, err);
    if (p != NULL) {
        r[1] = r[0];
        r[0] = p;
    }
    return p;
}

/* *dst = *src with interned names and an owned cause. */
static void rec_intern(strset *ss, pgf_rec *dst, const pgf_rec *src, int *err)
{
    *dst = *src;
#define PGF__INTERN(f) dst->f = intern_field(ss, F_##f, src->f, err);
    REC_NAMES(PGF__INTERN)
#undef PGF__INTERN
    dst->cause = NULL;
    if (src->cause != NULL && (dst->cause = strdup(src->cause)) == NULL)
        *err = PGF_ENOMEM;
}

/* What rec_intern gave the copy that is its own. */
static void rec_release(pgf_rec *r)
{
    free((char *)r->cause);
    r->cause = NULL;
}

/* ---- checker state ----------------------------------------------------- */

#define STATE_UNKNOWN (-1)

/* An owned copy of a fault record, shared by the connection and the
 * session that wait for the health result it predicts. */
typedef struct fcopy {
    unsigned refs;
    size_t ord;
    pgf_rec rec;
} fcopy;

/* "A fault with no checkable prediction" (garbage bytes, two faults that
 * disagree): the next health result is not checked. */
static fcopy ambiguous_fault;
#define AMBIG (&ambiguous_fault)

/* A witness: the record's line as the history has it (the writer's own
 * bytes, pgf_checker_feed_line), kept in its session's line buffer and
 * parsed back only for a violation. Copying a record with its strings
 * interned was the checker's largest cost (perf, bench/stream_cost); a
 * line is one memcpy. What a line does not carry is kept beside it.
 * With a reader (pgf_checker_feed_line_at) not even that: the entry keeps
 * where the line is in the history file, and the line is read back from
 * there. The copies were a fifth of the checker's time at 1,000 sessions
 * and most of its page faults at 10,000 (perf, bench/soak). */
typedef struct wrent {
    size_t ord;
    uint64_t at;   /* where the line is: in the session's lb, or (`ref`) in the history */
    uint32_t line; /* the record's source line (pgfault check) */
    uint32_t len;  /* of the line; when `who`, 16 more bytes follow it in lb: */
    bool who;      /* ... backend_pid and client_port (rare: foreign histories) */
    bool ref;      /* `at` is the line's offset in the history (the reader's) */
} wrent;

struct opst;

typedef struct sess {
    int64_t id;
    uint64_t ord; /* creation order: end-of-history violations come in this order */
    int state;
    bool active_seen; /* had an invoke, completion or transition */
    bool violated;    /* first violation recorded */
    bool queued;      /* in the finished FIFO */
    fcopy *pending;   /* NULL, AMBIG or a fault (a reference) */
    struct opst *first_active;
    size_t nopen; /* ops invoked, not completed, any status */
    wrent *ring;  /* last witness_max records */
    unsigned rn, rcap, rhead;
    char *lb; /* their lines; what evicted ones leave is reclaimed when full */
    uint32_t lused, lcap;
    struct sess *next_spare; /* in the checker's spares */
    int64_t *conns;          /* connections seen on its records */
    unsigned nconns, capconns;
} sess;

enum op_status { OP_LEGAL, OP_ILLEGAL_START, OP_AFTER_CLOSE, OP_UNDECLARED };

typedef struct opst {
    int64_t op_id;
    uint64_t ord;
    uint64_t invoke_time;
    uint32_t invoke_line;
    sess *s;
    struct opst *next_active;
    int op;
    int preempted_by; /* spec op index, -1 = not preempted */
    uint8_t status;
    bool moved;
    bool busy_start; /* illegal start: another op was in progress */
    bool ended;      /* its own transition entered one of its `to` states */
    int end_state;
    bool flagged; /* a violation was already charged to this op */
} opst;

/* A completed op, remembered in full for a while. */
typedef struct finop {
    int64_t op_id;
    int64_t session;
    uint32_t line;
    int op;
} finop;

/* Tombstone value: state, flags (a run of sessions shares one). */
#define TOMB_STATE(v)    ((int)((v)&0xffff))
#define TOMB_VIOLATED    (1u << 16)
#define TOMB_ACTIVE_SEEN (1u << 17)
#define TOMB_AMBIG       (1u << 18)

#define LMEMO_SETS 32
typedef struct lmemo {
    const char *src;
    int idx;
} lmemo;

struct pgf_checker {
    const pgf_spec *spec;
    lmemo lmemo[2][LMEMO_SETS][2]; /* [op, state]: spec_lookup */
    /* finished sessions and ops kept for reuse, with their buffers: a
     * malloc and a free per session and per op were an eighth of the
     * checker's time at 1,000 sessions (perf) */
    struct sess *spare;
    unsigned nspare;
    struct opst *ospare;
    unsigned nospare;
    unsigned wmax;
    pgf_check_result *res;
    int err;
    uint64_t nrec;
    uint64_t last_time;
    size_t cur_ord;
    uint64_t sess_ord, op_ord;
    /* the session of the previous record (NULL: none): a session's
     * records often come one after another, and the lookup per record was
     * a sixth of the checker's instructions (cachegrind, bench/
     * stream_cost, 1,000 sessions). Cleared when it leaves sess_by_id. */
    struct sess *last_s;
    /* the largest op_id invoked so far, and whether there was one: an
     * invoke above it cannot repeat an op_id, so the three lookups that
     * look for one are skipped (a recorder hands op_ids out in order) */
    int64_t max_op_id;
    bool any_op;
    u64map sess_by_id; /* id -> sess* */
    u64map op_by_id;   /* op_id -> opst*, open ops only */
    u64map fin_by_id;  /* op_id -> slot in fin */
    finop *fin;        /* FIN_KEEP slots, a ring */
    size_t nfin, finhead;
    runset old_ops;       /* older completed op_ids */
    runset tombs;         /* compacted sessions */
    u64map fault_by_conn; /* conn -> fcopy* (a reference) or AMBIG */
    u64map slowed_conn;   /* conn -> 1: a delay/drip/bandwidth fault fired on it */
    sess **kept;          /* finished sessions, oldest first (a ring) */
    size_t nkept, kepthead;
    bool have_server;
    size_t server_ord;
    pgf_rec last_server;
    bool server_violated;
    bool kind_listed[PGF_VIOL_COUNT];
    strset strs;
    const pgf_check_deadlines *dl;
    int64_t dl_ns[64];         /* by spec op index; -1 = no deadline */
    pgf_checker_reader reader; /* NULL: lines are copied */
    void *reader_arg;
};

typedef struct pgf_checker ck;

static fcopy *fault_ref(fcopy *f)
{
    if (f != NULL && f != AMBIG)
        f->refs++;
    return f;
}

static void fault_unref(fcopy *f)
{
    if (f != NULL && f != AMBIG && --f->refs == 0) {
        rec_release(&f->rec);
        free(f);
    }
}

static fcopy *fault_new(ck *c, const pgf_rec *r)
{
    fcopy *f = calloc(1, sizeof *f);
    if (f == NULL) {
        c->err = PGF_ENOMEM;
        return NULL;
    }
    f->ord = c->cur_ord;
    rec_intern(&c->strs, &f->rec, r, &c->err);
    return f;
}

static fcopy *conn_fault(const ck *c, int64_t conn)
{
    uint64_t v;
    return map_get(&c->fault_by_conn, (uint64_t)conn, &v) ? (fcopy *)(uintptr_t)v : NULL;
}

static void conn_fault_set(ck *c, int64_t conn, fcopy *f)
{
    uint64_t old;
    if (map_del(&c->fault_by_conn, (uint64_t)conn, &old))
        fault_unref((fcopy *)(uintptr_t)old);
    if (f != NULL && map_put(&c->fault_by_conn, (uint64_t)conn, (uint64_t)(uintptr_t)f) < 0)
        c->err = PGF_ENOMEM;
    else
        fault_ref(f);
}

static void set_pending(sess *s, fcopy *f)
{
    fault_ref(f);
    fault_unref(s->pending);
    s->pending = f;
}

/* ---- the result -------------------------------------------------------- */

/* Deep copies of k records into one block: the pgf_rec array first, then
 * their strings. One free() releases it. */
static pgf_rec *copy_block(const pgf_rec *const *src, size_t k)
{
    size_t bytes = k * sizeof(pgf_rec);
    for (size_t i = 0; i < k; i++) {
#define PGF__LEN(f) bytes += src[i]->f != NULL ? strlen(src[i]->f) + 1 : 0;
        REC_STRS(PGF__LEN)
#undef PGF__LEN
    }
    pgf_rec *out = malloc(bytes ? bytes : 1);
    if (out == NULL)
        return NULL;
    char *p = (char *)(out + k);
    for (size_t i = 0; i < k; i++) {
        out[i] = *src[i];
#define PGF__CPY(f)                          \
    if (src[i]->f != NULL) {                 \
        size_t len_ = strlen(src[i]->f) + 1; \
        memcpy(p, src[i]->f, len_);          \
        out[i].f = p;                        \
        p += len_;                           \
    }
        REC_STRS(PGF__CPY)
#undef PGF__CPY
    }
    return out;
}

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

/* Record a violation. `s` may be NULL (server-wide); `at`/`atrec` the
 * record that showed it (NONE_IDX/NULL at end of history); `extra` one
 * more record for the witness (NULL if none). */
static void violate(ck *c, pgf_violation_kind kind, sess *s, size_t at, const pgf_rec *atrec,
                    const fcopy *extra, const char *fmt, ...) PGF_PRINTF(7, 8);
static void violate(ck *c, pgf_violation_kind kind, sess *s, size_t at, const pgf_rec *atrec,
                    const fcopy *extra, const char *fmt, ...)
{
    c->res->counts[kind]++;
    c->res->total++;
    if (s != NULL ? s->violated : c->server_violated)
        return;
    if (s != NULL)
        s->violated = true;
    else
        c->server_violated = true;
    if (c->res->nfirst >= PGF_CHECK_FIRST_MAX && c->kind_listed[kind]) {
        c->res->first_dropped++;
        return;
    }
    c->kind_listed[kind] = true;

    pgf_violation v;
    memset(&v, 0, sizeof v);
    v.kind = kind;
    v.session = s != NULL ? s->id : PGF_REC_NONE;
    v.at = at;
    v.at_time_ns = atrec != NULL ? atrec->time_ns : c->last_time;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v.message, sizeof v.message, fmt, ap);
    va_end(ap);

    size_t room = (size_t)c->wmax + 1;
    const pgf_rec **src = malloc(room * sizeof *src);
    v.witness = malloc(room * sizeof *v.witness);
    if (src == NULL || v.witness == NULL) {
        free(src);
        free(v.witness);
        c->err = PGF_ENOMEM;
        return;
    }
    size_t k = 0;
    /* the ring's lines, parsed back (their strings borrowed from hold[]) */
    pgf_rec *parsed = s != NULL && s->rn > 0 ? malloc(s->rn * sizeof *parsed) : NULL;
    json_t **hold = s != NULL && s->rn > 0 ? calloc(s->rn, sizeof *hold) : NULL;
    if (s != NULL && s->rn > 0 && (parsed == NULL || hold == NULL)) {
        free(parsed);
        free(hold);
        free(src);
        free(v.witness);
        c->err = PGF_ENOMEM;
        return;
    }
    if (s != NULL) {
        /* the ring holds the session's last records, the violating one
         * last (or, at end of history, its last record) */
        unsigned start = s->rn < c->wmax ? 0 : s->rhead;
        for (unsigned j = 0; j < s->rn; j++) {
            const wrent *e = &s->ring[(start + j) % s->rn];
            char *back = NULL; /* a `ref` line, read back from the history */
            if (e->ref) {
                int re = (back = malloc(e->len + 1)) == NULL
                             ? PGF_ENOMEM
                             : c->reader(c->reader_arg, e->at, back, e->len);
                if (re != 0) {
                    free(back);
                    c->err = re < 0 ? re : PGF_EIO;
                    continue;
                }
            }
            const char *text = back != NULL ? back : s->lb + e->at;
            int pe = pgf__hist_line_rec(text, e->len, &parsed[j], &hold[j]);
            free(back); /* the record's strings are hold[j]'s */
            if (pe != 0) {
                /* our own bytes: a line that does not parse is a bug here
                 * (or, read back, a history file changed under the run) */
                c->err = PGF_EINTERNAL;
                continue;
            }
            parsed[j].line = e->line;
            if (e->who) {
                memcpy(&parsed[j].backend_pid, s->lb + e->at + e->len, 8);
                memcpy(&parsed[j].client_port, s->lb + e->at + e->len + 8, 8);
            }
            v.witness[k] = e->ord;
            src[k++] = &parsed[j];
        }
    } else if (atrec != NULL) {
        v.witness[k] = at;
        src[k++] = atrec;
    }
    if (extra != NULL && extra != AMBIG) {
        size_t pos = k;
        while (pos > 0 && v.witness[pos - 1] > extra->ord)
            pos--;
        if (pos == 0 || v.witness[pos - 1] != extra->ord) {
            memmove(&v.witness[pos + 1], &v.witness[pos], (k - pos) * sizeof *v.witness);
            memmove(&src[pos + 1], &src[pos], (k - pos) * sizeof *src);
            v.witness[pos] = extra->ord;
            src[pos] = &extra->rec;
            k++;
        }
    }
    v.nwitness = k;
    v.wrec = copy_block(src, k);
    free(src);
    for (unsigned j = 0; hold != NULL && j < s->rn; j++)
        json_decref(hold[j]);
    free(hold);
    free(parsed);
    if (v.wrec == NULL || push_first(c, &v) < 0) {
        free(v.witness);
        free(v.wrec);
        c->err = PGF_ENOMEM;
    }
}

/* ---- sessions ----------------------------------------------------------- */

static void session_free(sess *s);

static sess *session_new(ck *c, int64_t id)
{
    sess *s = c->spare;
    if (s != NULL) { /* a finished one: its buffers stay, emptied */
        c->spare = s->next_spare;
        c->nspare--;
        sess keep = *s;
        memset(s, 0, sizeof *s);
        s->ring = keep.ring;
        s->rcap = keep.rcap;
        s->lb = keep.lb;
        s->lcap = keep.lcap;
        s->conns = keep.conns;
        s->capconns = keep.capconns;
    } else if ((s = calloc(1, sizeof *s)) == NULL) {
        return NULL;
    }
    if (map_put(&c->sess_by_id, (uint64_t)id, (uint64_t)(uintptr_t)s) < 0) {
        session_free(s);
        return NULL;
    }
    s->id = id;
    s->ord = c->sess_ord++;
    s->state = pgf_spec_initial(c->spec);
    return s;
}

static sess *session_get(ck *c, int64_t id)
{
    if (c->last_s != NULL && c->last_s->id == id)
        return c->last_s;
    uint64_t v;
    if (map_get(&c->sess_by_id, (uint64_t)id, &v))
        return c->last_s = (sess *)(uintptr_t)v;
    run *t = runs_get(&c->tombs, (uint64_t)id);
    sess *s = session_new(c, id);
    if (s == NULL)
        return NULL;
    c->last_s = s;
    if (t == NULL) {
        c->res->sessions++;
        return s;
    }
    /* a record for a compacted session: back from its tombstone */
    s->state = TOMB_STATE(t->val);
    s->violated = (t->val & TOMB_VIOLATED) != 0;
    s->active_seen = (t->val & TOMB_ACTIVE_SEEN) != 0;
    s->pending = (t->val & TOMB_AMBIG) ? AMBIG : (fcopy *)t->ptr; /* the reference moves */
    if (runs_del(&c->tombs, t, (uint64_t)id) < 0)
        c->err = PGF_ENOMEM;
    return s;
}

#define WHO_BYTES 16 /* backend_pid, client_port after a line (wrent.who) */

/* Room for n more bytes in s's line buffer: the live lines move to a fresh
 * buffer of twice their size (amortized: only when the evicted ones have
 * left at least as much behind). */
static bool lines_room(ck *c, sess *s, size_t n)
{
    if ((size_t)s->lcap - s->lused >= n)
        return true;
    size_t live = 0;
    for (unsigned i = 0; i < s->rn; i++)
        if (!s->ring[i].ref)
            live += s->ring[i].len + (s->ring[i].who ? WHO_BYTES : 0);
    size_t cap = 2 * (live + n);
    if (cap < 1024)
        cap = 1024; /* 10,000 open sessions: every byte here is 10 MB */
    char *nb = cap <= UINT32_MAX ? malloc(cap) : NULL;
    if (nb == NULL) {
        c->err = PGF_ENOMEM;
        return false;
    }
    uint32_t used = 0;
    for (unsigned i = 0; i < s->rn; i++) {
        wrent *e = &s->ring[i];
        size_t sz = e->len + (e->who ? WHO_BYTES : 0);
        if (sz == 0 || e->ref) /* the slot being refilled (lb may be NULL), or not in lb */
            continue;
        memcpy(nb + used, s->lb + e->at, sz);
        e->at = used;
        used += (uint32_t)sz;
    }
    free(s->lb);
    s->lb = nb;
    s->lused = used;
    s->lcap = (uint32_t)cap;
    return true;
}

/* Keep r's line as s's newest witness: where it is in the history (`pos`,
 * with a reader), or a copy. */
static void ring_push(ck *c, sess *s, const pgf_rec *r, const char *line, size_t n, uint64_t pos)
{
    wrent *e;
    if (s->rn < c->wmax) {
        if (s->rn == s->rcap) {
            unsigned ncap = s->rcap ? s->rcap * 2 : 16; /* a check is ~15 records */
            if (ncap > c->wmax)
                ncap = c->wmax;
            wrent *nr = realloc(s->ring, ncap * sizeof *nr);
            if (nr == NULL) {
                c->err = PGF_ENOMEM;
                return;
            }
            s->ring = nr;
            s->rcap = ncap;
        }
        e = &s->ring[s->rn++];
    } else {
        e = &s->ring[s->rhead];
        s->rhead = (s->rhead + 1) % c->wmax;
    }
    e->len = 0; /* not live while the buffer makes room */
    e->who = false;
    e->ref = false;
    e->ord = c->cur_ord;
    e->line = r->line;
    bool who = r->backend_pid != PGF_REC_NONE || r->client_port != PGF_REC_NONE;
    if (pos != PGF_CHECK_NO_POS && !who && n <= UINT32_MAX) {
        e->at = pos;
        e->len = (uint32_t)n;
        e->ref = true;
        return;
    }
    if (!lines_room(c, s, n + (who ? WHO_BYTES : 0)))
        return;
    memcpy(s->lb + s->lused, line, n);
    if (who) {
        memcpy(s->lb + s->lused + n, &r->backend_pid, sizeof r->backend_pid);
        memcpy(s->lb + s->lused + n + 8, &r->client_port, sizeof r->client_port);
    }
    e->at = s->lused;
    e->len = (uint32_t)n;
    e->who = who;
    s->lused += (uint32_t)n + (who ? WHO_BYTES : 0);
}

static void session_conn(ck *c, sess *s, int64_t conn)
{
    for (unsigned i = 0; i < s->nconns; i++)
        if (s->conns[i] == conn)
            return;
    if (s->nconns == s->capconns) {
        unsigned ncap = s->capconns ? s->capconns * 2 : 2;
        int64_t *nc = realloc(s->conns, ncap * sizeof *nc);
        if (nc == NULL) {
            c->err = PGF_ENOMEM;
            return;
        }
        s->conns = nc;
        s->capconns = ncap;
    }
    s->conns[s->nconns++] = conn;
}

static void session_free(sess *s)
{
    fault_unref(s->pending);
    free(s->ring);
    free(s->lb);
    free(s->conns);
    free(s);
}

#define SPARES_MAX 256

/* Keep s for session_new (bounded; a session whose buffers grew large is
 * freed instead), or free it. */
static void session_recycle(ck *c, sess *s)
{
    if (c->nspare >= SPARES_MAX || s->lcap > 16384 || s->capconns > 8) {
        session_free(s);
        return;
    }
    fault_unref(s->pending);
    s->pending = NULL;
    s->next_spare = c->spare;
    c->spare = s;
    c->nspare++;
}

static bool finished(const ck *c, const sess *s)
{
    return s->state != STATE_UNKNOWN && pgf_spec_state_terminal(c->spec, s->state) && s->nopen == 0;
}

/* Replace a finished session by its tombstone; its connections' fault
 * bookkeeping goes with it. */
static void compact(ck *c, sess *s)
{
    uint64_t val = (uint64_t)(unsigned)s->state | (s->violated ? TOMB_VIOLATED : 0) |
                   (s->active_seen ? TOMB_ACTIVE_SEEN : 0) | (s->pending == AMBIG ? TOMB_AMBIG : 0);
    void *ptr = s->pending != AMBIG ? s->pending : NULL;
    if (runs_put(&c->tombs, (uint64_t)s->id, val, ptr) < 0) {
        c->err = PGF_ENOMEM;
        return;
    }
    s->pending = NULL; /* the tombstone holds the reference now */
    for (unsigned i = 0; i < s->nconns; i++) {
        conn_fault_set(c, s->conns[i], NULL);
        map_del(&c->slowed_conn, (uint64_t)s->conns[i], NULL);
    }
    map_del(&c->sess_by_id, (uint64_t)s->id, NULL);
    if (c->last_s == s)
        c->last_s = NULL;
    session_recycle(c, s);
}

static void after_record(ck *c, sess *s)
{
    if (s->queued || !finished(c, s))
        return;
    if (c->nkept == KEEP_FINISHED) {
        sess *old = c->kept[c->kepthead];
        c->kepthead = (c->kepthead + 1) % KEEP_FINISHED;
        c->nkept--;
        old->queued = false;
        if (finished(c, old))
            compact(c, old);
    }
    c->kept[(c->kepthead + c->nkept) % KEEP_FINISHED] = s;
    c->nkept++;
    s->queued = true;
}

/* ---- ops ---------------------------------------------------------------- */

static const char *state_str(const ck *c, int st)
{
    return st == STATE_UNKNOWN ? "<unknown>" : pgf_spec_state_name(c->spec, st);
}

/* The spec's index of a state or op name (-1: not in it), behind a memo
 * keyed by the caller's pointer: a run's recorder hands over the same few
 * static strings millions of times, and a scan of strcmp over every state
 * and op was a third of the checker's time (bench/stream_cost). A memo
 * entry is only trusted when the spec's name still equals the string (the
 * pointer may be a buffer that now holds another). */
static int spec_lookup(ck *c, const char *name, bool state)
{
    if (name == NULL)
        return -1;
    uint64_t k = (uint64_t)(uintptr_t)name * 0x9E3779B97F4A7C15ULL;
    lmemo *m = c->lmemo[state][(k >> 32) % LMEMO_SETS];
    for (int w = 0; w < 2; w++) {
        if (m[w].src != name)
            continue;
        const char *is =
            state ? pgf_spec_state_name(c->spec, m[w].idx) : pgf_spec_op_name(c->spec, m[w].idx);
        if (strcmp(is, name) == 0)
            return m[w].idx;
    }
    int idx = state ? pgf_spec_state_find(c->spec, name) : pgf_spec_op_find(c->spec, name);
    if (idx >= 0) {
        m[1] = m[0];
        m[0] = (lmemo){name, idx};
    }
    return idx;
}

static int spec_state(ck *c, const char *name)
{
    return spec_lookup(c, name, true);
}

static int spec_op(ck *c, const char *name)
{
    return spec_lookup(c, name, false);
}

static bool is_err(const ck *c, const pgf_rec *r, int code)
{
    return r->type == PGF_REC_FAIL && pgf_spec_error_means(c->spec, r->error, code);
}

static opst *op_open(const ck *c, int64_t op_id)
{
    uint64_t v;
    return map_get(&c->op_by_id, (uint64_t)op_id, &v) ? (opst *)(uintptr_t)v : NULL;
}

static const finop *op_recent(const ck *c, int64_t op_id)
{
    uint64_t v;
    return map_get(&c->fin_by_id, (uint64_t)op_id, &v) ? &c->fin[v] : NULL;
}

static void active_remove(sess *s, opst *o)
{
    opst **p = &s->first_active;
    while (*p != NULL) {
        if (*p == o) {
            *p = o->next_active;
            return;
        }
        p = &(*p)->next_active;
    }
}

/* The op completed: out of the open ops, into the recent ones (the oldest
 * recent one becomes a bare op_id in a run). */
static void op_finish(ck *c, opst *o)
{
    map_del(&c->op_by_id, (uint64_t)o->op_id, NULL);
    if (o->status == OP_LEGAL)
        active_remove(o->s, o);
    o->s->nopen--;
    if (c->nfin == FIN_KEEP) {
        finop *old = &c->fin[c->finhead];
        map_del(&c->fin_by_id, (uint64_t)old->op_id, NULL);
        if (runs_put(&c->old_ops, (uint64_t)old->op_id, 0, NULL) < 0)
            c->err = PGF_ENOMEM;
        c->finhead = (c->finhead + 1) % FIN_KEEP;
        c->nfin--;
    }
    size_t slot = (c->finhead + c->nfin) % FIN_KEEP;
    c->fin[slot] = (finop){o->op_id, o->s->id, o->invoke_line, o->op};
    c->nfin++;
    if (map_put(&c->fin_by_id, (uint64_t)o->op_id, slot) < 0)
        c->err = PGF_ENOMEM;
}

static void on_invoke(ck *c, sess *s, const pgf_rec *r)
{
    s->active_seen = true;
    if (!c->any_op || r->op_id > c->max_op_id) { /* new: cannot be a repeat */
        c->any_op = true;
        c->max_op_id = r->op_id;
    } else {
        const opst *live = op_open(c, r->op_id);
        const finop *fin = live == NULL ? op_recent(c, r->op_id) : NULL;
        if (live != NULL || fin != NULL) {
            violate(c, PGF_VIOL_DUPLICATE_OP_ID, s, c->cur_ord, r, NULL,
                    "op_id %" PRId64 " invoked again (%s), first invoked at line %u", r->op_id,
                    r->op, live != NULL ? live->invoke_line : fin->line);
            return;
        }
        if (runs_get(&c->old_ops, (uint64_t)r->op_id) != NULL) {
            violate(c, PGF_VIOL_DUPLICATE_OP_ID, s, c->cur_ord, r, NULL,
                    "op_id %" PRId64 " invoked again (%s), first invoked more than %d ops ago",
                    r->op_id, r->op, FIN_KEEP);
            return;
        }
    }
    opst *o = c->ospare;
    if (o != NULL) {
        c->ospare = o->next_active;
        c->nospare--;
        memset(o, 0, sizeof *o);
    } else {
        o = calloc(1, sizeof *o);
    }
    if (o == NULL || map_put(&c->op_by_id, (uint64_t)r->op_id, (uint64_t)(uintptr_t)o) < 0) {
        free(o);
        c->err = PGF_ENOMEM;
        return;
    }
    c->res->ops++;
    o->op_id = r->op_id;
    o->ord = c->op_ord++;
    o->invoke_time = r->time_ns;
    o->invoke_line = r->line;
    o->s = s;
    o->preempted_by = -1;
    s->nopen++;
    o->op = spec_op(c, r->op);
    if (o->op < 0) {
        o->status = OP_UNDECLARED;
        o->flagged = true;
        violate(c, PGF_VIOL_UNDECLARED_OP, s, c->cur_ord, r, NULL,
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
    } else if (!pgf_spec_op_preempts(c->spec, o->op) && s->first_active != NULL) {
        /* a non-preempting op may start only while nothing else is in
         * progress (a release in the middle of a check) */
        o->status = OP_ILLEGAL_START;
        o->busy_start = true;
        return;
    } else {
        o->status = OP_LEGAL;
    }
    o->next_active = s->first_active;
    s->first_active = o;
}

/* "op#id" (or "op") of a transition, for its violation message. */
static const char *who_of(const pgf_rec *r, char *who, size_t n)
{
    if (r->op_id != PGF_REC_NONE)
        snprintf(who, n, "%s#%" PRId64, r->op, r->op_id);
    else
        snprintf(who, n, "%s", r->op);
    return who;
}

static void on_transition(ck *c, sess *s, const pgf_rec *r)
{
    const pgf_spec *sp = c->spec;
    s->active_seen = true;
    int from = spec_state(c, r->from);
    int to = spec_state(c, r->to);
    int opi = spec_op(c, r->op);
    int cur = s->state;

    /* Who made this change? By op_id when given, else the op in progress
     * with that name. */
    opst *actor = NULL;
    bool orphan = false;
    if (r->op_id != PGF_REC_NONE) {
        opst *o = op_open(c, r->op_id);
        if (o != NULL && o->s == s)
            actor = o;
        else
            orphan = true;
    } else {
        for (opst *o = s->first_active; o != NULL; o = o->next_active)
            if (o->op == opi) {
                actor = o;
                break;
            }
    }
    char who[96]; /* "op#id", written only for a message (WHO) */
#define WHO who_of(r, who, sizeof who)

    int kind = -1;
    char msg[256] = "";
    if (actor != NULL && actor->status == OP_AFTER_CLOSE && !actor->flagged) {
        kind = PGF_VIOL_USE_AFTER_CLOSE;
        snprintf(msg, sizeof msg, "%s -> %s by %s, invoked on a terminal session", r->from, r->to,
                 WHO);
        actor->flagged = true;
    } else if (cur != STATE_UNKNOWN && pgf_spec_state_terminal(sp, cur)) {
        kind = PGF_VIOL_TRANSITION_FROM_TERMINAL;
        snprintf(msg, sizeof msg, "%s -> %s by %s leaves terminal state %s", r->from, r->to, WHO,
                 state_str(c, cur));
    } else if (actor != NULL && actor->status == OP_ILLEGAL_START) {
        kind = PGF_VIOL_ILLEGAL_START;
        snprintf(msg, sizeof msg,
                 "%s -> %s by %s, which was started outside its `from` states and must have "
                 "changed nothing",
                 r->from, r->to, WHO);
        actor->flagged = true;
    } else if (from < 0 || (cur != STATE_UNKNOWN && from != cur)) {
        kind = PGF_VIOL_FROM_MISMATCH;
        snprintf(msg, sizeof msg, "transition %s -> %s by %s, but the session was in %s%s", r->from,
                 r->to, WHO, state_str(c, cur), from < 0 ? " (unknown state name)" : "");
    } else if (to < 0 || opi < 0 || !pgf_spec_transition_ok(sp, opi, from, to)) {
        kind = PGF_VIOL_ILLEGAL_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s by %s is not in the transition table%s", r->from, r->to,
                 WHO,
                 to < 0    ? " (unknown state)"
                 : opi < 0 ? " (undeclared op)"
                           : "");
    } else if (orphan) {
        kind = PGF_VIOL_ORPHAN_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s attributed to %s, which is not in progress", r->from,
                 r->to, WHO);
    } else if (actor != NULL && actor->preempted_by >= 0) {
        kind = PGF_VIOL_CONCURRENT_TRANSITION;
        snprintf(msg, sizeof msg, "%s -> %s by %s after it was preempted by %s", r->from, r->to,
                 WHO, pgf_spec_op_name(sp, actor->preempted_by));
    }

    /* An op that already entered one of its end states by its own
     * transition has nothing left to do but complete: another op moving
     * the session first means its completion was lost (or held back until
     * a close came to abort it). */
    bool mover_preempts = opi >= 0 && pgf_spec_op_preempts(sp, opi); /* else: the incident */
    for (opst *q = s->first_active; q != NULL && kind < 0 && mover_preempts; q = q->next_active) {
        if (q == actor || !q->ended || q->flagged)
            continue;
        kind = PGF_VIOL_LATE_COMPLETION;
        snprintf(msg, sizeof msg,
                 "%s -> %s by %s while %s#%" PRId64 " had reached its end state %s but not "
                 "completed",
                 r->from, r->to, WHO, pgf_spec_op_name(sp, q->op), q->op_id,
                 state_str(c, q->end_state));
        q->flagged = true;
    }

    /* Every other op in progress: preempted, joined, or the incident. */
    bool preempts = opi >= 0 && pgf_spec_op_preempts(sp, opi);
    for (opst *q = s->first_active; q != NULL; q = q->next_active) {
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
                     r->from, r->to, WHO, pgf_spec_op_name(sp, q->op), q->op_id, r->op);
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
        violate(c, (pgf_violation_kind)kind, s, c->cur_ord, r, NULL, "%s", msg);
#undef WHO
}

/* A completion of an op no longer open: a second one for an op of this
 * session, or one that matches nothing. */
static void completion_not_open(ck *c, sess *s, const pgf_rec *r, const opst *other)
{
    const pgf_spec *sp = c->spec;
    const char *type = pgf_rec_type_name(r->type);
    const finop *f = other == NULL ? op_recent(c, r->op_id) : NULL;
    if (f != NULL && f->session == s->id &&
        (r->op == NULL || f->op < 0 || strcmp(r->op, pgf_spec_op_name(sp, f->op)) == 0)) {
        violate(c, PGF_VIOL_DOUBLE_COMPLETION, s, c->cur_ord, r, NULL,
                "%s#%" PRId64 " completed again (%s)",
                f->op >= 0 ? pgf_spec_op_name(sp, f->op) : (r->op ? r->op : "?"), r->op_id, type);
        return;
    }
    if (other == NULL && f == NULL && runs_get(&c->old_ops, (uint64_t)r->op_id) != NULL) {
        /* completed more than FIN_KEEP ops ago: which session it was on
         * is forgotten (docs/checker.md) */
        violate(c, PGF_VIOL_DOUBLE_COMPLETION, s, c->cur_ord, r, NULL,
                "%s#%" PRId64 " completed again (%s), more than %d ops after it completed",
                r->op ? r->op : "?", r->op_id, type, FIN_KEEP);
        return;
    }
    violate(c, PGF_VIOL_UNMATCHED_COMPLETION, s, c->cur_ord, r, NULL,
            "%s for op_id %" PRId64 " (%s) with no matching invoke on this session", type, r->op_id,
            r->op != NULL ? r->op : "?");
}

static void completion_judge(ck *c, sess *s, const pgf_rec *r, const opst *o)
{
    const pgf_spec *sp = c->spec;
    const char *type = pgf_rec_type_name(r->type);
    const char *name = o->op >= 0 ? pgf_spec_op_name(sp, o->op) : (r->op ? r->op : "?");
    const char *err = r->error != NULL ? r->error : "-";
    /* A preempted op ends when its preempter gets to it (a check canceled
     * near its deadline waits for the cancel): the preempter's own
     * deadline bounds that. */
    if (o->status == OP_LEGAL && o->preempted_by < 0 && o->op >= 0 && o->op < 64 &&
        c->dl_ns[o->op] >= 0) {
        uint64_t t0 = o->invoke_time, limit = (uint64_t)c->dl_ns[o->op];
        uint64_t took = r->time_ns > t0 ? r->time_ns - t0 : 0;
        if (took > limit + c->dl->tolerance_ns) {
            violate(c, PGF_VIOL_DEADLINE_EXCEEDED, s, c->cur_ord, r, NULL,
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
            violate(c, PGF_VIOL_USE_AFTER_CLOSE, s, c->cur_ord, r, NULL,
                    "%s#%" PRId64 " on a terminal session completed %s (error %s); it must fail "
                    "with PGF_EILLEGAL_STATE",
                    name, o->op_id, type, err);
        return;
    case OP_ILLEGAL_START:
        if (!illegal_err && !o->flagged)
            violate(c, PGF_VIOL_ILLEGAL_START, s, c->cur_ord, r, NULL,
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
            violate(c, PGF_VIOL_PREEMPTED_NOT_CANCELED, s, c->cur_ord, r, NULL,
                    "%s#%" PRId64 " was preempted by %s but completed %s (error %s), not fail "
                    "PGF_ECANCELED",
                    name, o->op_id, pgf_spec_op_name(sp, p), type, err);
        else if (!pgf_spec_op_ends_in(sp, p, s->state) && !pgf_spec_op_passes(sp, p, s->state))
            violate(c, PGF_VIOL_BAD_END_STATE, s, c->cur_ord, r, NULL,
                    "%s#%" PRId64 " (preempted by %s) completed in %s, which %s neither passes "
                    "through nor ends in",
                    name, o->op_id, pgf_spec_op_name(sp, p), state_str(c, s->state),
                    pgf_spec_op_name(sp, p));
        return;
    }
    if (r->type == PGF_REC_INFO || (illegal_err && !o->moved))
        return;
    if (!pgf_spec_op_ends_in(sp, o->op, s->state))
        violate(c, PGF_VIOL_BAD_END_STATE, s, c->cur_ord, r, NULL,
                "%s#%" PRId64 " completed %s in %s, not one of its `to` states", name, o->op_id,
                type, state_str(c, s->state));
}

static void on_completion(ck *c, sess *s, const pgf_rec *r)
{
    s->active_seen = true;
    opst *o = op_open(c, r->op_id);
    if (o == NULL || o->s != s || (r->op != NULL && o->op >= 0 && spec_op(c, r->op) != o->op)) {
        completion_not_open(c, s, r, o);
        return;
    }
    op_finish(c, o);
    completion_judge(c, s, r, o);
    if (c->nospare < SPARES_MAX) { /* for on_invoke */
        o->next_active = c->ospare;
        c->ospare = o;
        c->nospare++;
    } else {
        free(o);
    }
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
static void on_fault(ck *c, sess *s, const pgf_rec *r)
{
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
        if (r->conn != PGF_REC_NONE && conn_fault(c, r->conn) == NULL)
            conn_fault_set(c, r->conn, AMBIG);
        if (s != NULL && s->pending == NULL)
            set_pending(s, AMBIG);
        return;
    }
    /* Two faults with different predictions on one connection (a stall,
     * then a reset already queued behind it): either may decide the
     * outcome, so neither is held against it. */
    const char *want = fault_prediction(r);
    fcopy *f = NULL; /* this fault's copy, made once if anyone keeps it */
    if (r->conn != PGF_REC_NONE) {
        fcopy *cur = conn_fault(c, r->conn);
        if (cur == NULL) {
            if ((f = fault_new(c, r)) == NULL)
                return;
            fault_ref(f);
            conn_fault_set(c, r->conn, f);
        } else if (cur != AMBIG && strcmp(fault_prediction(&cur->rec), want) != 0) {
            conn_fault_set(c, r->conn, AMBIG);
        }
    }
    /* the connection's earlier faults (at accept, before the session was
     * known) count for the session too: health records name no conn */
    bool conn_ambiguous = r->conn != PGF_REC_NONE && conn_fault(c, r->conn) == AMBIG;
    if (s != NULL) {
        if (conn_ambiguous)
            set_pending(s, AMBIG);
        else if (s->pending == NULL) {
            if (f == NULL && (f = fault_ref(fault_new(c, r))) == NULL)
                return;
            set_pending(s, f);
        } else if (s->pending != AMBIG && strcmp(fault_prediction(&s->pending->rec), want) != 0)
            set_pending(s, AMBIG);
    }
    fault_unref(f);
}

static void on_health(ck *c, sess *s, const pgf_rec *r)
{
    fcopy *fault = NULL; /* a reference */
    if (r->conn != PGF_REC_NONE) {
        uint64_t v;
        if (map_del(&c->fault_by_conn, (uint64_t)r->conn, &v))
            fault = (fcopy *)(uintptr_t)v; /* the map's reference moves here */
    }
    if (fault == NULL) {
        fault = s->pending;
        s->pending = NULL;
    } else {
        set_pending(s, NULL);
    }
    if (fault == NULL || fault == AMBIG || strcmp(r->reason, "ok") == 0)
        goto out;
    const pgf_rec *f = &fault->rec;
    const char *want = fault_prediction(f);
    uint64_t slowed = 0;
    if (strcmp(r->reason, "timeout") == 0 && f->conn != PGF_REC_NONE &&
        map_get(&c->slowed_conn, (uint64_t)f->conn, &slowed) && slowed)
        goto out;
    if (strcmp(want, r->reason) != 0)
        violate(c, PGF_VIOL_MISCLASSIFIED_HEALTH, s, c->cur_ord, r, fault,
                "health reason \"%s\", but fault %s%s%s (rule %s, line %u) predicts \"%s\"",
                r->reason, f->action, f->sqlstate != NULL ? " " : "",
                f->sqlstate != NULL ? f->sqlstate : "", f->rule != NULL ? f->rule : "-", f->line,
                want);
out:
    fault_unref(fault);
}

static void on_server(ck *c, const pgf_rec *r)
{
    c->have_server = true;
    c->server_ord = c->cur_ord;
    rec_release(&c->last_server);
    rec_intern(&c->strs, &c->last_server, r, &c->err);
    if (r->conns_accepted == PGF_REC_NONE)
        return;
    int64_t diff = r->conns_accepted - r->conns_closed;
    if (diff < 0 || (r->conns_open != PGF_REC_NONE && diff != r->conns_open))
        violate(c, PGF_VIOL_SERVER_COUNT_MISMATCH, NULL, c->cur_ord, r, NULL,
                "server: accepted %" PRId64 " - closed %" PRId64 " = %" PRId64
                ", but conns_open is %" PRId64,
                r->conns_accepted, r->conns_closed, diff, r->conns_open);
    else if (r->sessions_open != PGF_REC_NONE && diff != r->sessions_open)
        violate(c, PGF_VIOL_SERVER_COUNT_MISMATCH, NULL, c->cur_ord, r, NULL,
                "server: accepted %" PRId64 " - closed %" PRId64 " = %" PRId64
                " connections, but the session manager holds %" PRId64,
                r->conns_accepted, r->conns_closed, diff, r->sessions_open);
}

static int cmp_op_ord(const void *a, const void *b)
{
    const opst *x = *(const opst *const *)a, *y = *(const opst *const *)b;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int cmp_sess_ord(const void *a, const void *b)
{
    const sess *x = *(const sess *const *)a, *y = *(const sess *const *)b;
    return x->ord < y->ord ? -1 : x->ord > y->ord;
}

/* The values of a map of pointers, sorted by cmp. NULL and *n = 0 when
 * empty; NULL with c->err on ENOMEM. */
static void **map_values(ck *c, const u64map *m, size_t *n, int (*cmp)(const void *, const void *))
{
    *n = 0;
    if (m->n == 0)
        return NULL;
    void **v = malloc(m->n * sizeof *v);
    if (v == NULL) {
        c->err = PGF_ENOMEM;
        return NULL;
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0)
            v[(*n)++] = (void *)(uintptr_t)m->vals[i];
    qsort(v, *n, sizeof *v, cmp);
    return v;
}

static void at_end(ck *c)
{
    const pgf_spec *sp = c->spec;
    size_t n;
    void **ops = map_values(c, &c->op_by_id, &n, cmp_op_ord);
    for (size_t i = 0; i < n; i++) {
        const opst *o = ops[i];
        violate(c, PGF_VIOL_MISSING_COMPLETION, o->s, NONE_IDX, NULL, NULL,
                "%s#%" PRId64 " was invoked but never completed",
                o->op >= 0 ? pgf_spec_op_name(sp, o->op) : "?", o->op_id);
    }
    free(ops);
    void **ss = map_values(c, &c->sess_by_id, &n, cmp_sess_ord);
    for (size_t i = 0; i < n; i++) {
        sess *s = ss[i];
        if (!s->active_seen || s->state == STATE_UNKNOWN || pgf_spec_state_terminal(sp, s->state))
            continue;
        violate(c, PGF_VIOL_NOT_CLOSED, s, NONE_IDX, NULL, NULL,
                "session %" PRId64 " ends in %s, not a terminal state", s->id,
                state_str(c, s->state));
    }
    free(ss);
    if (c->have_server) {
        const pgf_rec *r = &c->last_server;
        int64_t open = r->conns_open != PGF_REC_NONE       ? r->conns_open
                       : r->conns_accepted != PGF_REC_NONE ? r->conns_accepted - r->conns_closed
                                                           : 0;
        if (open > 0)
            violate(c, PGF_VIOL_CONNECTION_LEAK, NULL, c->server_ord, r, NULL,
                    "%" PRId64 " connection(s) still open at the server at the end", open);
        else if (r->sessions_open != PGF_REC_NONE && r->sessions_open > 0)
            violate(c, PGF_VIOL_CONNECTION_LEAK, NULL, c->server_ord, r, NULL,
                    "the session manager still holds %" PRId64 " connection(s) at the end",
                    r->sessions_open);
    }
}

/* ---- public ------------------------------------------------------------- */

void pgf_check_result_free(pgf_check_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->nfirst; i++) {
        free(r->first[i].witness);
        free(r->first[i].wrec);
    }
    free(r->first);
    free(r);
}

int pgf_checker_new(const pgf_spec *spec, const pgf_check_opts *opts, pgf_checker **out)
{
    *out = NULL;
    ck *c = calloc(1, sizeof *c);
    if (c == NULL)
        return PGF_ENOMEM;
    c->spec = spec;
    c->wmax = opts != NULL && opts->witness_max > 0 ? opts->witness_max : PGF_CHECK_WITNESS_DEFAULT;
    c->dl = opts != NULL ? opts->deadlines : NULL;
    for (int k = 0; k < 64; k++)
        c->dl_ns[k] = -1;
    for (unsigned k = 0; c->dl != NULL && k < c->dl->n && k < PGF_CHECK_MAX_DEADLINES; k++) {
        int op = pgf_spec_op_find(spec, c->dl->op[k]);
        if (op >= 0 && op < 64 && c->dl->ns[k] > 0)
            c->dl_ns[op] = (int64_t)c->dl->ns[k];
    }
    c->res = calloc(1, sizeof *c->res);
    c->fin = malloc(FIN_KEEP * sizeof *c->fin);
    c->kept = malloc(KEEP_FINISHED * sizeof *c->kept);
    if (c->res == NULL || c->fin == NULL || c->kept == NULL) {
        pgf_checker_free(c);
        return PGF_ENOMEM;
    }
    *out = c;
    return 0;
}

int pgf_checker_feed(pgf_checker *c, const pgf_rec *r)
{
    if (c->err != 0 || r->session == PGF_REC_NONE)
        return pgf_checker_feed_line(c, r, NULL, 0);
    /* the witness is the record's line: written here as the writer would */
    char buf[2048], *heap = NULL;
    int n = pgf_rec_format(r, buf, sizeof buf);
    for (size_t cap = sizeof buf * 8; n == PGF_ETOOBIG && cap <= ((size_t)1 << 30); cap *= 8) {
        free(heap);
        if ((heap = malloc(cap)) == NULL)
            return c->err = PGF_ENOMEM;
        n = pgf_rec_format(r, heap, cap);
    }
    int e =
        n < 0 ? (c->err = PGF_ENOMEM) : pgf_checker_feed_line(c, r, heap ? heap : buf, (size_t)n);
    free(heap);
    return e;
}

void pgf_checker_set_reader(pgf_checker *c, pgf_checker_reader fn, void *arg)
{
    c->reader = fn;
    c->reader_arg = arg;
}

int pgf_checker_feed_line(pgf_checker *c, const pgf_rec *r, const char *line, size_t n)
{
    return pgf_checker_feed_line_at(c, r, line, n, PGF_CHECK_NO_POS);
}

int pgf_checker_feed_line_at(pgf_checker *c, const pgf_rec *r, const char *line, size_t n,
                             uint64_t pos)
{
    if (c->err != 0)
        return c->err;
    if (line == NULL && r->session != PGF_REC_NONE)
        return pgf_checker_feed(c, r); /* formats the line, comes back */
    if (c->reader == NULL)
        pos = PGF_CHECK_NO_POS;
    c->cur_ord = (size_t)c->nrec++;
    c->last_time = r->time_ns;
    sess *s = NULL;
    if (r->session != PGF_REC_NONE) {
        s = session_get(c, r->session);
        if (s == NULL)
            return c->err = PGF_ENOMEM;
        ring_push(c, s, r, line, n, pos);
        if (c->err != 0)
            return c->err;
        if (r->conn != PGF_REC_NONE)
            session_conn(c, s, r->conn);
    }
    switch (r->type) {
    case PGF_REC_INVOKE:
        if (s != NULL && r->op != NULL && r->op_id != PGF_REC_NONE)
            on_invoke(c, s, r);
        break;
    case PGF_REC_OK:
    case PGF_REC_FAIL:
    case PGF_REC_INFO:
        if (s != NULL && r->op_id != PGF_REC_NONE)
            on_completion(c, s, r);
        break;
    case PGF_REC_TRANSITION:
        if (s != NULL && r->from != NULL && r->to != NULL && r->op != NULL)
            on_transition(c, s, r);
        break;
    case PGF_REC_FAULT:
        on_fault(c, s, r);
        break;
    case PGF_REC_HEALTH:
        if (s != NULL && r->reason != NULL)
            on_health(c, s, r);
        break;
    case PGF_REC_SERVER:
        on_server(c, r);
        break;
    case PGF_REC_TYPE_COUNT:
        break;
    }
    if (s != NULL && c->err == 0)
        after_record(c, s);
    return c->err;
}

uint64_t pgf_checker_violations(const pgf_checker *c)
{
    return c->res->total;
}

const pgf_violation *pgf_checker_first(const pgf_checker *c)
{
    return c->res->nfirst > 0 ? &c->res->first[0] : NULL;
}

int pgf_checker_finish(pgf_checker *c, pgf_check_result **out)
{
    *out = NULL;
    if (c->err == 0)
        at_end(c);
    int err = c->err;
    if (err == 0) {
        c->res->records = c->nrec;
        *out = c->res;
        c->res = NULL;
    }
    pgf_checker_free(c);
    return err;
}

void pgf_checker_free(pgf_checker *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->op_by_id.cap; i++)
        if (c->op_by_id.keys[i] != 0)
            free((void *)(uintptr_t)c->op_by_id.vals[i]);
    for (size_t i = 0; i < c->sess_by_id.cap; i++)
        if (c->sess_by_id.keys[i] != 0)
            session_free((sess *)(uintptr_t)c->sess_by_id.vals[i]);
    for (size_t i = 0; i < c->fault_by_conn.cap; i++)
        if (c->fault_by_conn.keys[i] != 0)
            fault_unref((fcopy *)(uintptr_t)c->fault_by_conn.vals[i]);
    for (size_t i = 0; i < c->tombs.n; i++)
        fault_unref(c->tombs.v[i].ptr);
    while (c->spare != NULL) {
        sess *nx = c->spare->next_spare;
        session_free(c->spare);
        c->spare = nx;
    }
    while (c->ospare != NULL) {
        opst *nx = c->ospare->next_active;
        free(c->ospare);
        c->ospare = nx;
    }
    map_free(&c->sess_by_id);
    map_free(&c->op_by_id);
    map_free(&c->fin_by_id);
    map_free(&c->fault_by_conn);
    map_free(&c->slowed_conn);
    free(c->tombs.v);
    free(c->old_ops.v);
    free(c->fin);
    free(c->kept);
    rec_release(&c->last_server);
    strset_free(&c->strs);
    pgf_check_result_free(c->res);
    free(c);
}

void pgf_checker_stats_get(const pgf_checker *c, pgf_checker_stats *st)
{
    memset(st, 0, sizeof *st);
    st->sessions_open = c->sess_by_id.n;
    st->sessions_kept = c->nkept;
    st->session_tombstone_runs = c->tombs.n;
    st->ops_open = c->op_by_id.n;
    st->ops_recent = c->nfin;
    st->op_id_runs = c->old_ops.n;
    st->conns = c->fault_by_conn.n + c->slowed_conn.n;
    st->strings = c->strs.n;
    size_t b = sizeof *c + FIN_KEEP * sizeof *c->fin + KEEP_FINISHED * sizeof *c->kept;
    for (size_t i = 0; i < c->sess_by_id.cap; i++) {
        if (c->sess_by_id.keys[i] == 0)
            continue;
        const sess *s = (const sess *)(uintptr_t)c->sess_by_id.vals[i];
        b += sizeof *s + s->rcap * sizeof *s->ring + s->lcap + s->capconns * sizeof *s->conns;
    }
    for (const sess *s = c->spare; s != NULL; s = s->next_spare)
        b += sizeof *s + s->rcap * sizeof *s->ring + s->lcap + s->capconns * sizeof *s->conns;
    b += (c->op_by_id.n + c->nospare) * sizeof(opst);
    b += 2 * sizeof(uint64_t) *
         (c->sess_by_id.cap + c->op_by_id.cap + c->fin_by_id.cap + c->fault_by_conn.cap +
          c->slowed_conn.cap);
    b += (c->tombs.cap + c->old_ops.cap) * sizeof(run);
    b += c->strs.cap * sizeof(char *) + c->strs.bytes;
    st->bytes = b;
}

size_t pgf_checker_live_sessions(const pgf_checker *c)
{
    return c->sess_by_id.n;
}

size_t pgf_checker_live_ops(const pgf_checker *c)
{
    return c->op_by_id.n;
}

int pgf_check(const pgf_spec *spec, const pgf_rec *recs, size_t n, const pgf_check_opts *opts,
              pgf_check_result **out)
{
    *out = NULL;
    pgf_checker *c;
    int e = pgf_checker_new(spec, opts, &c);
    if (e != 0)
        return e;
    for (size_t i = 0; i < n; i++) {
        if ((e = pgf_checker_feed(c, &recs[i])) != 0) {
            pgf_checker_free(c);
            return e;
        }
    }
    return pgf_checker_finish(c, out);
}
