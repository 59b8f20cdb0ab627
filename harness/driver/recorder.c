/* recorder.c - per-thread history buffers merged by sequence (recorder.h). */
#include "recorder.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/health.h"
#include "pgfault/timer.h"

/* Strings that outlive the producing call are interned into per-buffer
 * arenas; the common ones (state, op, reason names) are static already. */
typedef struct arena_block {
    struct arena_block *next;
    size_t used, cap;
    char data[];
} arena_block;

typedef struct recbuf {
    struct recbuf *next; /* registry list */
    pgf_recorder *owner;
    int thread;
    pgf_rec *recs;
    size_t n, cap;
    arena_block *arena;
} recbuf;

struct pgf_recorder {
    struct event_base *clock_base;
    pgf_simclock *clock;
    uint64_t start_ns;
    pthread_mutex_t lock; /* registry only */
    recbuf *bufs;
    int nthreads;
    atomic_uint_fast64_t count;
    pgf_rec *merged;
    size_t nmerged;
    bool failed;
};

/* One buffer per (thread, recorder). A thread records into few recorders
 * (one per run), so a tiny thread-local cache is enough. */
#define TLS_SLOTS 4
static _Thread_local struct {
    pgf_recorder *r;
    recbuf *b;
} tls[TLS_SLOTS];

static recbuf *my_buf(pgf_recorder *r)
{
    for (int i = 0; i < TLS_SLOTS; i++)
        if (tls[i].r == r)
            return tls[i].b;
    recbuf *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->owner = r;
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

static const char *intern(recbuf *b, const char *s)
{
    if (s == NULL)
        return NULL;
    size_t len = strlen(s) + 1;
    if (b->arena == NULL || b->arena->cap - b->arena->used < len) {
        size_t cap = len > 16384 ? len : 16384;
        arena_block *a = malloc(sizeof *a + cap);
        if (a == NULL)
            return NULL;
        a->next = b->arena;
        a->used = 0;
        a->cap = cap;
        b->arena = a;
    }
    char *p = b->arena->data + b->arena->used;
    memcpy(p, s, len);
    utf8_sanitize(p);
    b->arena->used += len;
    return p;
}

static pgf_rec *push(pgf_recorder *r, recbuf *b)
{
    if (b == NULL) {
        r->failed = true;
        return NULL;
    }
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        pgf_rec *p = realloc(b->recs, cap * sizeof *p);
        if (p == NULL) {
            r->failed = true;
            return NULL;
        }
        b->recs = p;
        b->cap = cap;
    }
    atomic_fetch_add(&r->count, 1);
    return &b->recs[b->n++];
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
    r->clock_base = clock_base;
    r->clock = clock_base != NULL ? pgf_simclock_of(clock_base) : NULL;
    r->start_ns = start_ns;
    return r;
}

void pgf_recorder_free(pgf_recorder *r)
{
    if (r == NULL)
        return;
    for (recbuf *b = r->bufs; b;) {
        recbuf *next = b->next;
        for (arena_block *a = b->arena; a;) {
            arena_block *an = a->next;
            free(a);
            a = an;
        }
        free(b->recs);
        free(b);
        b = next;
    }
    /* Forget this recorder in this thread's cache (other threads have
     * stopped by contract). */
    for (int i = 0; i < TLS_SLOTS; i++)
        if (tls[i].r == r)
            tls[i].r = NULL;
    free(r->merged);
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void pgf_recorder_session_event(const pgf_session_event *ev, void *arg)
{
    pgf_recorder *r = arg;
    recbuf *b = my_buf(r);
    pgf_rec *rec = push(r, b);
    if (rec == NULL)
        return;
    static const pgf_rec_type types[] = {
        [PGF_SEV_TRANSITION] = PGF_REC_TRANSITION,
        [PGF_SEV_INVOKE] = PGF_REC_INVOKE,
        [PGF_SEV_OK] = PGF_REC_OK,
        [PGF_SEV_FAIL] = PGF_REC_FAIL,
    };
    pgf_rec_init(rec, types[ev->kind]);
    rec->seq = ev->seq;
    rec->time_ns = now(r);
    rec->session = (int64_t)ev->session_id;
    rec->op_id = (int64_t)ev->op_id;
    rec->thread = b->thread;
    rec->op = pgf_session_op_name(ev->op);
    if (ev->kind == PGF_SEV_TRANSITION) {
        rec->from = pgf_session_state_name(ev->from);
        rec->to = pgf_session_state_name(ev->to);
        rec->cause = intern(b, ev->cause);
    } else if (ev->kind == PGF_SEV_FAIL) {
        rec->error = pgf_err_name(ev->err);
        rec->cause = intern(b, ev->cause);
        if (ev->health != NULL && !ev->health->healthy) {
            rec->reason = pgf_health_reason_name(ev->health->reason);
            if (ev->health->sqlstate[0] != '\0')
                rec->sqlstate = intern(b, ev->health->sqlstate);
            if (ev->health->phase[0] != '\0')
                rec->phase = intern(b, ev->health->phase);
        }
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
    pgf_rec *hr = push(r, b);
    if (hr == NULL)
        return;
    pgf_rec_init(hr, PGF_REC_HEALTH);
    hr->seq = pgf_seq_next();
    hr->time_ns = now(r);
    hr->session = (int64_t)ev->session_id;
    hr->op_id = (int64_t)ev->op_id;
    hr->thread = b->thread;
    hr->reason = ev->health->healthy ? "ok" : pgf_health_reason_name(ev->health->reason);
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
}

static int by_seq(const void *a, const void *b)
{
    const pgf_rec *x = a, *y = b;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

const pgf_rec *pgf_recorder_merge(pgf_recorder *r, size_t *n)
{
    if (r->merged == NULL) {
        size_t total = 0;
        for (recbuf *b = r->bufs; b; b = b->next)
            total += b->n;
        r->merged = malloc((total ? total : 1) * sizeof *r->merged);
        if (r->merged == NULL) {
            *n = 0;
            return NULL;
        }
        size_t k = 0;
        for (recbuf *b = r->bufs; b; b = b->next) {
            memcpy(r->merged + k, b->recs, b->n * sizeof *b->recs);
            k += b->n;
        }
        qsort(r->merged, total, sizeof *r->merged, by_seq);
        r->nmerged = total;
    }
    *n = r->nmerged;
    return r->merged;
}

uint64_t pgf_recorder_count(const pgf_recorder *r)
{
    return atomic_load(&((pgf_recorder *)r)->count);
}
