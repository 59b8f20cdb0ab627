/* watchdog.c - see watchdog.h. op_ids are dense per run (they restart at 1
 * for every scenario), so the outstanding set is an array indexed by
 * op_id with a low-water mark below which every operation is done: the
 * overdue scan is O(operations in flight), not O(history). */
#include "watchdog.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { W_NONE, W_OUT, W_DONE };

typedef struct wentry {
    uint64_t t_ns;
    int64_t session;
    uint8_t op;
    uint8_t st;
} wentry;

struct pgf_watchdog {
    uint64_t bound_ns[PGF_OP_COUNT];
    wentry *e;
    size_t cap;
    size_t low; /* every op_id below is done (or never used) */
    size_t hi;  /* one past the largest op_id seen */
    size_t out;
};

pgf_watchdog *pgf_watchdog_new(const uint64_t bound_ns[PGF_OP_COUNT])
{
    pgf_watchdog *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    memcpy(w->bound_ns, bound_ns, sizeof w->bound_ns);
    w->low = 1;
    return w;
}

void pgf_watchdog_free(pgf_watchdog *w)
{
    if (w == NULL)
        return;
    free(w->e);
    free(w);
}

static wentry *slot_for(pgf_watchdog *w, uint64_t id)
{
    if (id > (uint64_t)SIZE_MAX / 2)
        return NULL;
    if ((size_t)id >= w->cap) {
        size_t ncap = w->cap ? w->cap : 1024;
        while (ncap <= (size_t)id)
            ncap *= 2;
        wentry *ne = realloc(w->e, ncap * sizeof *ne);
        if (ne == NULL)
            return NULL;
        memset(ne + w->cap, 0, (ncap - w->cap) * sizeof *ne);
        w->e = ne;
        w->cap = ncap;
    }
    if ((size_t)id + 1 > w->hi)
        w->hi = (size_t)id + 1;
    return &w->e[id];
}

void pgf_watchdog_event(pgf_watchdog *w, const pgf_session_event *ev)
{
    if (w == NULL || ev->op_id == 0)
        return;
    if (ev->kind == PGF_SEV_TRANSITION)
        return;
    wentry *e = slot_for(w, ev->op_id);
    if (e == NULL)
        return;
    if (ev->kind == PGF_SEV_INVOKE) {
        if (e->st == W_NONE) {
            e->st = W_OUT;
            e->t_ns = ev->time_ns;
            e->session = (int64_t)ev->session_id;
            e->op = (uint8_t)ev->op;
            w->out++;
        }
    } else if (e->st == W_OUT) {
        e->st = W_DONE;
        w->out--;
    }
    while (w->low < w->hi && w->e[w->low].st != W_OUT)
        w->low++;
}

size_t pgf_watchdog_outstanding(const pgf_watchdog *w)
{
    return w != NULL ? w->out : 0;
}

static void describe(const pgf_watchdog *w, size_t i, uint64_t start_ns, char *buf, size_t len)
{
    const wentry *e = &w->e[i];
    uint64_t rel = e->t_ns >= start_ns ? e->t_ns - start_ns : 0;
    snprintf(buf, len, "%s#%zu on session %" PRId64 ", invoked at +%.3f s",
             pgf_session_op_name((pgf_sess_op)e->op), i, e->session, (double)rel / 1e9);
}

bool pgf_watchdog_oldest(const pgf_watchdog *w, uint64_t start_ns, char *buf, size_t len)
{
    if (w == NULL || w->out == 0)
        return false;
    for (size_t i = w->low; i < w->hi; i++)
        if (w->e[i].st == W_OUT) {
            describe(w, i, start_ns, buf, len);
            return true;
        }
    return false;
}

bool pgf_watchdog_overdue(pgf_watchdog *w, uint64_t now_ns, uint64_t start_ns, char *buf,
                          size_t len)
{
    if (w == NULL || w->out == 0)
        return false;
    for (size_t i = w->low; i < w->hi; i++) {
        const wentry *e = &w->e[i];
        if (e->st != W_OUT || e->op >= PGF_OP_COUNT)
            continue;
        uint64_t bound = w->bound_ns[e->op];
        if (now_ns > e->t_ns && now_ns - e->t_ns > bound) {
            char what[160];
            describe(w, i, start_ns, what, sizeof what);
            snprintf(buf, len, "%s, still outstanding after %.3f s (bound %.3f s)", what,
                     (double)(now_ns - e->t_ns) / 1e9, (double)bound / 1e9);
            return true;
        }
    }
    return false;
}
