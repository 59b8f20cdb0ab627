/* recorder.c - per-thread history buffers drained by sequence while the
 * run goes on (recorder.h).
 *
 * Each producing thread appends to its own chain of fixed-size chunks
 * (compact records, room for whole ones, and the strings they point to:
 * crec below); a record becomes visible to
 * the consumer when the chunk's count is published (release/acquire). The
 * one consumer (pgf_recorder_drain) merges the chains' heads by seq: it
 * emits strictly in seq order, waits out a gap (a thread that took a seq
 * and has not appended its record yet) while at most `window` records are
 * waiting, and hands fully consumed chunks back to a pool the producers
 * take new chunks from, so a long run holds a bounded number of chunks. */
#include "recorder.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/err.h"
#include "pgfault/health.h"
#include "pgfault/timer.h"

/* Records per chunk, the string room and the full records every chunk
 * carries: a chunk is sealed when any runs out (a string that does not fit
 * the room goes to a block of its own, freed with the chunk's reuse). */
#define CHUNK_RECS PGF_RECORDER_CHUNK_RECS
#define CHUNK_STR  32768
#define CHUNK_FULL PGF_RECORDER_CHUNK_WHOLE

/* A record as a producing thread writes it: one cache line. The session
 * manager's events and the health verdicts - all but a few records of a
 * run - fit it; any other record (a fault, a failure with its
 * classification, the server's counters) is a whole pgf_rec in the chunk's
 * `full` room, pointed to. A pgf_rec is 200 bytes: written on the load's
 * core and read on the draining thread's, about 15 per health check, it
 * moved four cache lines between the cores per record (bench/soak). */
#define CREC_NONE 0xff /* op/from/to absent */
typedef struct crec {
    uint64_t seq;
    uint64_t time_ns;
    int64_t session;
    int64_t op_id;
    const char *cause;  /* in the chunk's string room */
    const char *reason; /* a static name */
    pgf_rec *full;      /* non-NULL: the record is that (the fields above but seq unused) */
    int32_t thread;
    uint8_t type;
    uint8_t op, from, to; /* pgf_sess_op / pgf_sess_state, or CREC_NONE */
} crec;
_Static_assert(sizeof(crec) == 64, "a compact record is one cache line");

typedef struct big_str {
    struct big_str *next;
    char data[];
} big_str;

typedef struct chunk {
    _Atomic(struct chunk *) next; /* set once by the producer: the chunk is sealed */
    atomic_size_t n;              /* records published */
    struct chunk *pool_next;      /* in the recorder's free pool */
    size_t str_used;              /* producer only */
    size_t full_used;             /* producer only */
    big_str *big;                 /* producer only until sealed */
    char str[CHUNK_STR];
    _Alignas(64) crec recs[CHUNK_RECS];
    pgf_rec full[CHUNK_FULL];
} chunk;

/* The producer's and the consumer's fields live on cache lines of their
 * own: sharing one, every record moved that line between the two cores
 * (with the drain on a core of its own, 13-17% of the load at 1 and 100
 * sessions; bench/soak). */
typedef struct recbuf {
    struct recbuf *next; /* registry list */
    pgf_recorder *owner;
    int thread;
    chunk *tail;                /* producer: the chunk being filled */
    size_t wn;                  /* producer: records in tail, published or being written */
    atomic_uint_fast64_t total; /* producer: records committed (pgf_recorder_count) */
    _Alignas(64) chunk *head;   /* consumer: the oldest chunk not fully consumed */
    size_t rd;                  /* consumer: next record in head */
    size_t avail;               /* consumer: head's published count, as last read */
    char pad_[64 - sizeof(chunk *) - 2 * sizeof(size_t)];
} recbuf;

/* Deep copies for pgf_recorder_merge (the whole-array form). */
struct keep_block {
    struct keep_block *next;
    size_t used, cap;
    char data[];
};
typedef struct keep_block keep_block;

struct pgf_recorder {
    struct event_base *clock_base;
    pgf_simclock *clock;
    uint64_t start_ns;
    pthread_mutex_t lock; /* registry and chunk pool */
    recbuf *bufs;
    int nthreads;
    chunk *pool;
    size_t pool_n;
    /* backpressure (`lock`): once a thread drains, any other thread that
     * needs a chunk while PGF_RECORDER_INFLIGHT are written but not yet
     * drained waits for the drain to free one, at most BACKOFF_MS a chunk
     * (never for ever: the drainer may itself be waiting on that thread) */
    pthread_cond_t room;
    bool has_drainer;
    pthread_t drainer;
    uint64_t waits, waited_ns;
    atomic_size_t chunks_allocated;
    atomic_bool failed;
    /* consumer side */
    pgf_recorder_sink sink;
    void *sink_arg;
    size_t window;
    uint64_t next_seq; /* the seq the next emitted record must have */
    uint64_t emitted;
    uint64_t last_seq; /* of the last emitted record */
    bool any_emitted;
    int error;
    char errmsg[256];
    pgf_rec_store merged; /* pgf_recorder_merge's copy */
    pgf_rec cur;          /* the record being handed to the sink (expand) */
    bool merge_done;
};

/* One buffer per (thread, recorder). A thread records into few recorders
 * (one per run), so a tiny thread-local cache is enough. */
#define TLS_SLOTS 4
static _Thread_local struct {
    pgf_recorder *r;
    recbuf *b;
} tls[TLS_SLOTS];

#define BACKOFF_MS 100

/* Too many chunks written and not yet drained: wait (lock held) for the
 * drainer to hand one back, or for BACKOFF_MS. */
static void backpressure(pgf_recorder *r)
{
    if (!r->has_drainer || pthread_equal(r->drainer, pthread_self()))
        return;
    size_t inflight = atomic_load(&r->chunks_allocated) - r->pool_n;
    if (inflight < PGF_RECORDER_INFLIGHT || r->pool_n > 0)
        return;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t t0 = (uint64_t)until.tv_sec * 1000000000ULL + (uint64_t)until.tv_nsec;
    until.tv_nsec += BACKOFF_MS * 1000000L;
    until.tv_sec += until.tv_nsec / 1000000000L;
    until.tv_nsec %= 1000000000L;
    r->waits++;
    while (r->pool_n == 0 && pthread_cond_timedwait(&r->room, &r->lock, &until) == 0)
        ;
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->waited_ns += (uint64_t)t1.tv_sec * 1000000000ULL + (uint64_t)t1.tv_nsec - t0;
}

static chunk *chunk_get(pgf_recorder *r)
{
    pthread_mutex_lock(&r->lock);
    backpressure(r);
    chunk *c = r->pool;
    if (c != NULL) {
        r->pool = c->pool_next;
        r->pool_n--;
    }
    pthread_mutex_unlock(&r->lock);
    if (c == NULL) {
        c = malloc(sizeof *c);
        if (c == NULL)
            return NULL;
        atomic_fetch_add(&r->chunks_allocated, 1);
    }
    atomic_init(&c->next, NULL);
    atomic_init(&c->n, 0);
    c->pool_next = NULL;
    c->str_used = 0;
    c->full_used = 0;
    c->big = NULL;
    return c;
}

static void chunk_release_strings(chunk *c)
{
    for (big_str *s = c->big; s;) {
        big_str *nx = s->next;
        free(s);
        s = nx;
    }
    c->big = NULL;
}

static void chunk_put(pgf_recorder *r, chunk *c)
{
    chunk_release_strings(c);
    pthread_mutex_lock(&r->lock);
    c->pool_next = r->pool;
    r->pool = c;
    r->pool_n++;
    pthread_cond_signal(&r->room);
    pthread_mutex_unlock(&r->lock);
}

static recbuf *my_buf(pgf_recorder *r)
{
    for (int i = 0; i < TLS_SLOTS; i++)
        if (tls[i].r == r)
            return tls[i].b;
    recbuf *b = aligned_alloc(64, sizeof *b); /* its consumer half on a line of its own */
    if (b != NULL) {
        memset(b, 0, sizeof *b);
        atomic_init(&b->total, 0);
    }
    chunk *c = b != NULL ? chunk_get(r) : NULL;
    if (c == NULL) {
        free(b);
        return NULL;
    }
    b->owner = r;
    b->tail = b->head = c;
    pthread_mutex_lock(&r->lock);
    b->thread = r->nthreads++;
    b->next = r->bufs;
    r->bufs = b;
    pthread_mutex_unlock(&r->lock);
    /* evict the oldest slot: its recorder keeps the buffer in its registry */
    for (int i = TLS_SLOTS - 1; i > 0; i--)
        tls[i] = tls[i - 1];
    tls[0].r = r;
    tls[0].b = b;
    return b;
}

/* Replace every byte that is not part of a valid UTF-8 sequence with '?'.
 * libpq quotes what the server sent in its messages, and a garbage fault
 * sends arbitrary bytes: the history is JSON and must stay writable (the
 * explore scenario found this). */
static void utf8_sanitize(char *p)
{
    unsigned char *u = (unsigned char *)p;
    while (*u != 0) {
        size_t n = *u < 0x80           ? 1
                   : (*u >> 5) == 0x6  ? 2
                   : (*u >> 4) == 0xe  ? 3
                   : (*u >> 3) == 0x1e ? 4
                                       : 0;
        bool ok = n > 0 && !(n == 2 && *u < 0xc2) && !(n == 4 && *u > 0xf4);
        for (size_t k = 1; ok && k < n; k++)
            ok = (u[k] & 0xc0) == 0x80;
        if (ok && n == 3) {
            unsigned cp = ((u[0] & 0x0fu) << 12) | ((u[1] & 0x3fu) << 6) | (u[2] & 0x3fu);
            ok = cp >= 0x800 && (cp < 0xd800 || cp > 0xdfff);
        }
        if (ok && n == 4) {
            unsigned cp = ((u[0] & 0x07u) << 18) | ((u[1] & 0x3fu) << 12);
            ok = cp >= 0x10000 && cp <= 0x10ffff;
        }
        if (!ok) {
            *u++ = '?';
            continue;
        }
        u += n;
    }
}

/* A string for a record being written into b's tail chunk: it lives as
 * long as the chunk (until the consumer has emitted the record). */
static const char *intern(recbuf *b, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    chunk *c = b->tail;
    char *p;
    if (CHUNK_STR - c->str_used >= len) {
        p = c->str + c->str_used;
        c->str_used += len;
    } else {
        big_str *bs = malloc(sizeof *bs + len);
        if (bs == NULL) {
            atomic_store(&b->owner->failed, true);
            return NULL;
        }
        bs->next = c->big;
        c->big = bs;
        p = bs->data;
    }
    memcpy(p, s, len);
    utf8_sanitize(p);
    return p;
}

/* The slot for the next record of b (not visible until commit()); with
 * `full`, its crec points to a whole pgf_rec in the chunk. */
static crec *push_(pgf_recorder *r, recbuf *b, bool full)
{
    if (b == NULL) {
        atomic_store(&r->failed, true);
        return NULL;
    }
    chunk *c = b->tail;
    if (b->wn == CHUNK_RECS || c->str_used > CHUNK_STR * 3 / 4 ||
        (full && c->full_used == CHUNK_FULL)) {
        chunk *nc = chunk_get(r);
        if (nc == NULL) {
            atomic_store(&r->failed, true);
            return NULL;
        }
        atomic_store_explicit(&c->next, nc, memory_order_release);
        b->tail = c = nc;
        b->wn = 0;
    }
    crec *cr = &c->recs[b->wn];
    cr->full = full ? &c->full[c->full_used++] : NULL;
    return cr;
}

/* A whole record: the slot's pgf_rec (seq, time and thread copied into
 * the crec by commit_full). */
static pgf_rec *push(pgf_recorder *r, recbuf *b)
{
    crec *cr = push_(r, b, true);
    return cr != NULL ? cr->full : NULL;
}

/* Publish the record push_() returned. */
static void commit_c(recbuf *b)
{
    b->wn++;
    atomic_store_explicit(&b->tail->n, b->wn, memory_order_release);
    /* this thread's own line: no read-modify-write shared by the producers */
    atomic_store_explicit(&b->total, atomic_load_explicit(&b->total, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

/* Publish the whole record push() returned. */
static void commit(pgf_recorder *r, recbuf *b)
{
    (void)r;
    crec *cr = &b->tail->recs[b->wn];
    cr->seq = cr->full->seq;
    commit_c(b);
}

static uint64_t now(pgf_recorder *r)
{
    uint64_t t = r->clock != NULL ? pgf_simclock_now(r->clock) : pgf_now_ns();
    return t >= r->start_ns ? t - r->start_ns : 0;
}

pgf_recorder *pgf_recorder_new(struct event_base *clock_base, uint64_t start_ns)
{
    pgf_recorder *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    pthread_mutex_init(&r->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->room, &ca);
    pthread_condattr_destroy(&ca);
    r->clock_base = clock_base;
    r->clock = clock_base != NULL ? pgf_simclock_of(clock_base) : NULL;
    r->start_ns = start_ns;
    r->window = PGF_RECORDER_WINDOW_DEFAULT;
    pgf_rec_init(&r->cur, PGF_REC_INFO);
    /* every seq taken from now on is this recorder's to see */
    r->next_seq = pgf_seq_peek() + 1;
    return r;
}

void pgf_recorder_free(pgf_recorder *r)
{
    if (r == NULL)
        return;
    for (recbuf *b = r->bufs; b;) {
        recbuf *next = b->next;
        for (chunk *c = b->head; c;) {
            chunk *cn = atomic_load(&c->next);
            chunk_release_strings(c);
            free(c);
            c = cn;
        }
        free(b);
        b = next;
    }
    for (chunk *c = r->pool; c;) {
        chunk *cn = c->pool_next;
        free(c);
        c = cn;
    }
    /* Forget this recorder in this thread's cache (other threads have
     * stopped by contract). */
    for (int i = 0; i < TLS_SLOTS; i++)
        if (tls[i].r == r)
            tls[i].r = NULL;
    pgf_rec_store_free(&r->merged);
    pthread_cond_destroy(&r->room);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

/* The event's time relative to the run's start: the session took it with
 * the same clock (no second clock read per record). */
static uint64_t ev_time(const pgf_recorder *r, const pgf_session_event *ev)
{
    return ev->time_ns >= r->start_ns ? ev->time_ns - r->start_ns : 0;
}

void pgf_recorder_session_event(const pgf_session_event *ev, void *arg)
{
    pgf_recorder *r = arg;
    recbuf *b = my_buf(r);
    static const pgf_rec_type types[] = {
        [PGF_SEV_TRANSITION] = PGF_REC_TRANSITION,
        [PGF_SEV_INVOKE] = PGF_REC_INVOKE,
        [PGF_SEV_OK] = PGF_REC_OK,
        [PGF_SEV_FAIL] = PGF_REC_FAIL,
    };
    uint64_t t = r->clock != NULL ? now(r) : ev_time(r, ev);
    if (ev->kind == PGF_SEV_FAIL) { /* rare, and with more to say: a whole record */
        pgf_rec *rec = push(r, b);
        if (rec == NULL)
            return;
        pgf_rec_init(rec, PGF_REC_FAIL);
        rec->seq = ev->seq;
        rec->time_ns = t;
        rec->session = (int64_t)ev->session_id;
        rec->op_id = (int64_t)ev->op_id;
        rec->thread = b->thread;
        rec->op = pgf_session_op_name(ev->op);
        rec->error = pgf_err_name(ev->err);
        rec->cause = intern(b, ev->cause);
        if (ev->health != NULL && !ev->health->healthy) {
            rec->reason = pgf_health_reason_name(ev->health->reason);
            if (ev->health->sqlstate[0] != '\0')
                rec->sqlstate = intern(b, ev->health->sqlstate);
            if (ev->health->phase[0] != '\0')
                rec->phase = intern(b, ev->health->phase);
        }
        commit(r, b);
    } else {
        crec *cr = push_(r, b, false);
        if (cr == NULL)
            return;
        cr->seq = ev->seq;
        cr->time_ns = t;
        cr->session = (int64_t)ev->session_id;
        cr->op_id = (int64_t)ev->op_id;
        cr->thread = b->thread;
        cr->type = (uint8_t)types[ev->kind];
        cr->op = (uint8_t)ev->op;
        bool tr = ev->kind == PGF_SEV_TRANSITION;
        cr->from = tr ? (uint8_t)ev->from : CREC_NONE;
        cr->to = tr ? (uint8_t)ev->to : CREC_NONE;
        cr->cause = tr ? intern(b, ev->cause) : NULL;
        cr->reason = NULL;
        commit_c(b);
    }
    /* The health-check verdict as its own `health` record (history-format:
     * the checker compares it with the fault that preceded it; without it
     * misclassified_health could never fire - an auth failure reported as
     * connection_lost went unnoticed). Written for every completed check
     * and for an open that failed (the check's verdict then); not for a
     * result the caller canceled (close/cancel), which says nothing about
     * what the fault did. */
    bool verdict = (ev->kind == PGF_SEV_OK && ev->op == PGF_OP_check) ||
                   (ev->kind == PGF_SEV_FAIL && (ev->op == PGF_OP_check || ev->op == PGF_OP_open));
    if (!verdict || ev->health == NULL ||
        (!ev->health->healthy && ev->health->reason == PGF_HEALTH_CANCELED))
        return;
    crec *hr = push_(r, b, false);
    if (hr == NULL)
        return;
    hr->seq = pgf_seq_next();
    hr->time_ns = r->clock != NULL ? now(r) : t;
    hr->session = (int64_t)ev->session_id;
    hr->op_id = (int64_t)ev->op_id;
    hr->thread = b->thread;
    hr->type = PGF_REC_HEALTH;
    hr->op = hr->from = hr->to = CREC_NONE;
    hr->cause = NULL;
    hr->reason = ev->health->healthy ? "ok" : pgf_health_reason_name(ev->health->reason);
    commit_c(b);
}

void pgf_recorder_fault(pgf_recorder *r, uint64_t conn, int64_t session, pgf_phase phase,
                        const pgf_fault_action *a, uint64_t time_ns)
{
    (void)time_ns;
    recbuf *b = my_buf(r);
    pgf_rec *rec = push(r, b);
    if (rec == NULL)
        return;
    pgf_rec_init(rec, PGF_REC_FAULT);
    rec->seq = pgf_seq_next();
    rec->time_ns = now(r);
    rec->conn = (int64_t)conn;
    rec->session = session >= 0 ? session : PGF_REC_NONE;
    rec->thread = b->thread;
    rec->phase = pgf_phase_name(phase);
    rec->action = pgf_action_name(a->kind);
    rec->rule = intern(b, a->rule);
    if (a->sqlstate != NULL)
        rec->sqlstate = intern(b, a->sqlstate);
    commit(r, b);
}

void pgf_recorder_health(pgf_recorder *r, int64_t session, int64_t op_id, const char *reason,
                         const char *cause)
{
    recbuf *b = my_buf(r);
    pgf_rec *rec = push(r, b);
    if (rec == NULL)
        return;
    pgf_rec_init(rec, PGF_REC_HEALTH);
    rec->seq = pgf_seq_next();
    rec->time_ns = now(r);
    rec->session = session;
    rec->op_id = op_id;
    rec->thread = b->thread;
    rec->reason = intern(b, reason);
    rec->cause = intern(b, cause);
    commit(r, b);
}

void pgf_recorder_put(pgf_recorder *r, const pgf_rec *src)
{
    recbuf *b = my_buf(r);
    pgf_rec *rec = push(r, b);
    if (rec == NULL)
        return;
    *rec = *src;
    rec->seq = pgf_seq_next();
    rec->time_ns = now(r);
    rec->thread = b->thread;
    rec->op = intern(b, src->op);
    rec->from = intern(b, src->from);
    rec->to = intern(b, src->to);
    rec->cause = intern(b, src->cause);
    rec->error = intern(b, src->error);
    rec->reason = intern(b, src->reason);
    rec->phase = intern(b, src->phase);
    rec->rule = intern(b, src->rule);
    rec->action = intern(b, src->action);
    rec->sqlstate = intern(b, src->sqlstate);
    commit(r, b);
}

void pgf_recorder_server(pgf_recorder *r, int64_t open, int64_t accepted, int64_t closed,
                         int64_t sessions_open)
{
    recbuf *b = my_buf(r);
    pgf_rec *rec = push(r, b);
    if (rec == NULL)
        return;
    pgf_rec_init(rec, PGF_REC_SERVER);
    rec->seq = pgf_seq_next();
    rec->time_ns = now(r);
    rec->thread = b->thread;
    rec->conns_open = open;
    rec->conns_accepted = accepted;
    rec->conns_closed = closed;
    rec->sessions_open = sessions_open;
    commit(r, b);
}

/* ---- the consumer ---- */

void pgf_recorder_set_sink(pgf_recorder *r, pgf_recorder_sink fn, void *arg)
{
    r->sink = fn;
    r->sink_arg = arg;
}

void pgf_recorder_set_window(pgf_recorder *r, size_t window)
{
    r->window = window > 0 ? window : PGF_RECORDER_WINDOW_DEFAULT;
}

/* b's oldest unconsumed record, or NULL; recycles chunks it has finished. */
static crec *peek(pgf_recorder *r, recbuf *b)
{
    for (;;) {
        chunk *c = b->head;
        /* the producer's count is read again only when what it published
         * last time is used up: one look at its line per batch */
        if (b->rd < b->avail)
            return &c->recs[b->rd];
        b->avail = atomic_load_explicit(&c->n, memory_order_acquire);
        if (b->rd < b->avail)
            return &c->recs[b->rd];
        chunk *nx = atomic_load_explicit(&c->next, memory_order_acquire);
        if (nx == NULL)
            return NULL;
        /* sealed: its count is final now (published before next) */
        b->avail = atomic_load_explicit(&c->n, memory_order_acquire);
        if (b->rd < b->avail)
            continue;
        b->head = nx;
        b->rd = 0;
        b->avail = 0;
        chunk_put(r, c);
    }
}

/* The record a crec stands for, as the sink sees it. r->cur's other
 * fields stay as pgf_rec_init left them: a compact record never has them. */
static const pgf_rec *expand(pgf_recorder *r, const crec *c)
{
    if (c->full != NULL)
        return c->full;
    pgf_rec *d = &r->cur;
    d->type = (pgf_rec_type)c->type;
    d->seq = c->seq;
    d->time_ns = c->time_ns;
    d->session = c->session;
    d->op_id = c->op_id;
    d->thread = c->thread;
    d->op = c->op != CREC_NONE ? pgf_session_op_name((pgf_sess_op)c->op) : NULL;
    d->from = c->from != CREC_NONE ? pgf_session_state_name((pgf_sess_state)c->from) : NULL;
    d->to = c->to != CREC_NONE ? pgf_session_state_name((pgf_sess_state)c->to) : NULL;
    d->cause = c->cause;
    d->reason = c->reason;
    return d;
}

static int fail(pgf_recorder *r, int e, const char *fmt, ...) PGF_PRINTF(3, 4);
static int fail(pgf_recorder *r, int e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->errmsg, sizeof r->errmsg, fmt, ap);
    va_end(ap);
    r->error = e;
    return e;
}

int pgf_recorder_drain(pgf_recorder *r, bool final)
{
    if (r->error != 0)
        return r->error;
    if (r->sink == NULL)
        return 0; /* nobody to hand records to: keep them */
    pthread_mutex_lock(&r->lock);
    recbuf *bufs = r->bufs;          /* the list only grows at its front */
    if (!final && !r->has_drainer) { /* producers may now wait for this thread */
        r->drainer = pthread_self();
        r->has_drainer = true;
    }
    pthread_mutex_unlock(&r->lock);
    for (;;) {
        crec *best = NULL;
        recbuf *bb = NULL;
        for (recbuf *b = bufs; b; b = b->next) {
            crec *x = peek(r, b);
            if (x == NULL)
                continue;
            if (x->seq < r->next_seq)
                return fail(r, PGF_EINTERNAL,
                            "history out of order: seq %" PRIu64 " from thread %d arrived after "
                            "seq %" PRIu64 " was written",
                            x->seq, b->thread, r->any_emitted ? r->last_seq : r->next_seq - 1);
            if (best == NULL || x->seq < best->seq) {
                best = x;
                bb = b;
            }
        }
        if (best == NULL)
            return 0;
        if (best->seq != r->next_seq && !final) {
            /* a gap: a thread took the seq and has not appended its record
             * yet. Wait for it, but not for ever. */
            uint64_t waiting = pgf_recorder_count(r) - r->emitted;
            if (waiting > r->window)
                return fail(r, PGF_EINTERNAL,
                            "history reorder window exceeded: seq %" PRIu64 " never arrived "
                            "while %" PRIu64 " records waited (window %zu); the oldest waiting "
                            "is seq %" PRIu64 " from thread %d",
                            r->next_seq, waiting, r->window, best->seq, bb->thread);
            return 0;
        }
        int e = r->sink(r->sink_arg, expand(r, best));
        if (e != 0)
            return fail(r, e, "history consumer failed at seq %" PRIu64 ": %s", best->seq,
                        pgf_strerror(e));
        r->last_seq = best->seq;
        r->next_seq = best->seq + 1;
        r->any_emitted = true;
        r->emitted++;
        bb->rd++;
    }
}

const char *pgf_recorder_error(const pgf_recorder *r)
{
    return r->error != 0 ? r->errmsg : NULL;
}

void pgf_recorder_get_stats(pgf_recorder *r, pgf_recorder_stats *st)
{
    memset(st, 0, sizeof *st);
    st->recorded = pgf_recorder_count(r);
    st->emitted = r->emitted;
    st->chunks_allocated = atomic_load(&r->chunks_allocated);
    pthread_mutex_lock(&r->lock);
    st->chunks_pooled = r->pool_n;
    st->threads = (unsigned)r->nthreads;
    st->waits = r->waits;
    st->waited_ns = r->waited_ns;
    pthread_mutex_unlock(&r->lock);
    st->failed = atomic_load(&r->failed);
}

/* ---- the whole-array form ---- */

void pgf_rec_store_free(pgf_rec_store *st)
{
    for (keep_block *k = st->blocks; k;) {
        keep_block *kn = k->next;
        free(k);
        k = kn;
    }
    free(st->recs);
    memset(st, 0, sizeof *st);
}

static const char *keep_str(pgf_rec_store *st, const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    keep_block *kb = st->blocks;
    if (kb == NULL || kb->cap - kb->used < len) {
        size_t cap = len > 65536 ? len : 65536;
        kb = malloc(sizeof *kb + cap);
        if (kb == NULL) {
            *oom = true;
            return NULL;
        }
        kb->next = st->blocks;
        kb->used = 0;
        kb->cap = cap;
        st->blocks = kb;
    }
    char *p = kb->data + kb->used;
    memcpy(p, s, len);
    kb->used += len;
    return p;
}

int pgf_rec_store_add(pgf_rec_store *st, const pgf_rec *src)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 4096;
        pgf_rec *p = realloc(st->recs, cap * sizeof *p);
        if (p == NULL)
            return PGF_ENOMEM;
        st->recs = p;
        st->cap = cap;
    }
    pgf_rec *d = &st->recs[st->n];
    bool oom = false;
    *d = *src;
    d->op = keep_str(st, src->op, &oom);
    d->from = keep_str(st, src->from, &oom);
    d->to = keep_str(st, src->to, &oom);
    d->cause = keep_str(st, src->cause, &oom);
    d->error = keep_str(st, src->error, &oom);
    d->reason = keep_str(st, src->reason, &oom);
    d->phase = keep_str(st, src->phase, &oom);
    d->rule = keep_str(st, src->rule, &oom);
    d->action = keep_str(st, src->action, &oom);
    d->sqlstate = keep_str(st, src->sqlstate, &oom);
    if (oom)
        return PGF_ENOMEM;
    st->n++;
    return 0;
}

static int keep_rec(void *arg, const pgf_rec *src)
{
    return pgf_rec_store_add(arg, src);
}

const pgf_rec *pgf_recorder_merge(pgf_recorder *r, size_t *n)
{
    if (!r->merge_done) {
        r->merge_done = true;
        pgf_recorder_set_sink(r, keep_rec, &r->merged);
        if (pgf_recorder_drain(r, true) != 0) {
            *n = 0;
            return NULL;
        }
    }
    *n = r->merged.n;
    return r->merged.recs;
}

uint64_t pgf_recorder_count(const pgf_recorder *r)
{
    pgf_recorder *w = (pgf_recorder *)r;
    pthread_mutex_lock(&w->lock);
    recbuf *bufs = w->bufs; /* the list only grows at its front */
    pthread_mutex_unlock(&w->lock);
    uint64_t n = 0;
    for (recbuf *b = bufs; b != NULL; b = b->next)
        n += atomic_load_explicit(&b->total, memory_order_relaxed);
    return n;
}
