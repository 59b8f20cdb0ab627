/* wire_checks.c - judging a client from the server's side of the wire.
 *
 * The fake server tells its on_conn observer (server.h) what each client
 * does: connects, logs in or is refused, leaves a transaction open, sends a
 * Query before ReadyForQuery, sends bytes after Terminate, closes. This
 * module keeps that per connection (the observer runs on the server's
 * thread: one mutex, taken per note), snapshots what is still open at the
 * end of a target run's quiet period, and turns it into checks that name
 * the client by address and application_name. It needs nothing from the
 * client: any driver, any language.
 */
#include "wire_checks.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"

typedef struct wconn {
    uint64_t id;
    char peer[64], app[64], user[64];
    uint64_t open_ns, close_ns;
    bool ready, closed, login_failed;
    char txn;
    char why[48];
    unsigned early_queries;
    bool after_terminate;
} wconn;

typedef struct wlogin {
    uint64_t t;
    bool ok;
    uint64_t conn;
} wlogin;

struct pgf__wire {
    pthread_mutex_t lock;
    uint64_t start_ns;
    wconn *c;
    size_t n, cap;
    wlogin *l;
    size_t nl, capl;
    uint64_t first_refused; /* +1 */
    /* the snapshot at the end of the quiet period */
    wconn *end;
    size_t nend;
    bool ended;
};

pgf__wire *pgf__wire_new(uint64_t start_ns)
{
    pgf__wire *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    pthread_mutex_init(&w->lock, NULL);
    w->start_ns = start_ns;
    return w;
}

void pgf__wire_free(pgf__wire *w)
{
    if (w == NULL)
        return;
    pthread_mutex_destroy(&w->lock);
    free(w->c);
    free(w->l);
    free(w->end);
    free(w);
}

static wconn *find(pgf__wire *w, uint64_t id)
{
    /* connection ids are handed out in accept order: search from the end */
    for (size_t i = w->n; i-- > 0;)
        if (w->c[i].id == id)
            return &w->c[i];
    return NULL;
}

void pgf__wire_on_conn(void *arg, pgf_server_conn_note note, const pgf_server_conn_info *in)
{
    pgf__wire *w = arg;
    uint64_t now = pgf_now_ns() - w->start_ns;
    pthread_mutex_lock(&w->lock);
    wconn *c = find(w, in->conn_id);
    if (c == NULL && note == PGF_CONN_NOTE_OPEN) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 64;
            wconn *p = realloc(w->c, cap * sizeof *p);
            if (p == NULL)
                goto out;
            w->c = p;
            w->cap = cap;
        }
        c = &w->c[w->n++];
        memset(c, 0, sizeof *c);
        c->id = in->conn_id;
        c->open_ns = now;
        c->txn = 'I';
        snprintf(c->peer, sizeof c->peer, "%s", in->peer ? in->peer : "?");
    }
    if (c == NULL)
        goto out;
    if (in->application_name)
        snprintf(c->app, sizeof c->app, "%s", in->application_name);
    if (in->user)
        snprintf(c->user, sizeof c->user, "%s", in->user);
    c->ready |= in->ready || (note == PGF_CONN_NOTE_LOGIN && in->auth_ok);
    switch (note) {
    case PGF_CONN_NOTE_OPEN:
    case PGF_CONN_NOTE_STARTUP:
        break;
    case PGF_CONN_NOTE_LOGIN:
        c->login_failed = !in->auth_ok;
        if (!in->auth_ok && w->first_refused == 0)
            w->first_refused = now + 1;
        if (w->nl == w->capl) {
            size_t cap = w->capl ? w->capl * 2 : 128;
            wlogin *p = realloc(w->l, cap * sizeof *p);
            if (p == NULL)
                goto out;
            w->l = p;
            w->capl = cap;
        }
        w->l[w->nl++] = (wlogin){now, in->auth_ok, in->conn_id};
        break;
    case PGF_CONN_NOTE_TXN:
        c->txn = in->txn;
        break;
    case PGF_CONN_NOTE_EARLY_QUERY:
        c->early_queries++;
        break;
    case PGF_CONN_NOTE_AFTER_TERMINATE:
        c->after_terminate = true;
        break;
    case PGF_CONN_NOTE_CLOSED:
        c->closed = true;
        c->close_ns = now;
        snprintf(c->why, sizeof c->why, "%s", in->why ? in->why : "");
        break;
    }
out:
    pthread_mutex_unlock(&w->lock);
}

void pgf__wire_login_counts(pgf__wire *w, uint64_t *logins, uint64_t *refused)
{
    pthread_mutex_lock(&w->lock);
    uint64_t bad = 0;
    for (size_t i = 0; i < w->nl; i++)
        bad += !w->l[i].ok;
    *logins = w->nl;
    *refused = bad;
    pthread_mutex_unlock(&w->lock);
}

void pgf__wire_mark_end(pgf__wire *w)
{
    pthread_mutex_lock(&w->lock);
    if (!w->ended) {
        w->ended = true;
        size_t k = 0;
        for (size_t i = 0; i < w->n; i++)
            k += !w->c[i].closed;
        w->end = calloc(k ? k : 1, sizeof *w->end);
        for (size_t i = 0; i < w->n && w->end; i++)
            if (!w->c[i].closed)
                w->end[w->nend++] = w->c[i];
    }
    pthread_mutex_unlock(&w->lock);
}

static void describe(const wconn *c, char *buf, size_t len)
{
    snprintf(buf, len, "conn %" PRIu64 " from %s (application_name '%s', user '%s')", c->id,
             c->peer, c->app, c->user[0] ? c->user : "?");
}

/* A witness line on a check: at most 32, of up to 599 characters. */
#define wit(c, ...) pgf__target_witness((c), 32, 600, __VA_ARGS__)

void pgf__wire_checks(pgf__wire *w, pgf_target_result *r, int idle_floor, const char *when)
{
    pgf__wire_mark_end(w);
    pthread_mutex_lock(&w->lock);
    char name[160], d[256];

    /* what is still open at the end */
    size_t open = w->nend, mid_startup = 0, in_txn = 0;
    for (size_t i = 0; i < w->nend; i++) {
        mid_startup += !w->end[i].ready;
        in_txn += w->end[i].ready && w->end[i].txn != 'I';
    }
    snprintf(name, sizeof name, "no server connection left open beyond the idle floor (%d) %s",
             idle_floor, when);
    pgf_target_check *c = pgf__target_check_add(
        r, name, (int64_t)open <= idle_floor, "connection_leak",
        "%zu connection(s) still open at the server %s (floor %d; %zu accepted in all)", open, when,
        idle_floor, w->n);
    for (size_t i = 0; i < w->nend && c && !c->passed; i++) {
        describe(&w->end[i], d, sizeof d);
        wit(c, "%s: open since t=%.3fs, %s", d, (double)w->end[i].open_ns / 1e9,
            !w->end[i].ready       ? "never finished startup"
            : w->end[i].txn == 'I' ? "idle"
            : w->end[i].txn == 'T' ? "idle in transaction"
                                   : "idle in failed transaction");
    }

    c = pgf__target_check_add(
        r, "wire: no connection abandoned mid-startup and left open", mid_startup == 0,
        "abandoned_startup",
        "%zu connection(s) still open %s that never finished startup (the client stopped "
        "waiting but did not close)",
        mid_startup, when);
    for (size_t i = 0; i < w->nend && c && !c->passed; i++)
        if (!w->end[i].ready) {
            describe(&w->end[i], d, sizeof d);
            wit(c, "%s: opened at t=%.3fs, still in startup/authentication", d,
                (double)w->end[i].open_ns / 1e9);
        }

    c = pgf__target_check_add(
        r, "wire: no connection left idle in transaction", in_txn == 0, "idle_in_transaction",
        "%zu connection(s) open %s inside a transaction (after a fault, the client never "
        "rolled back)",
        in_txn, when);
    for (size_t i = 0; i < w->nend && c && !c->passed; i++)
        if (w->end[i].ready && w->end[i].txn != 'I') {
            describe(&w->end[i], d, sizeof d);
            wit(c, "%s: transaction status '%c'", d, w->end[i].txn);
        }

    /* protocol misuse over the whole run */
    size_t early = 0, after = 0;
    for (size_t i = 0; i < w->n; i++) {
        early += w->c[i].early_queries > 0;
        after += w->c[i].after_terminate;
    }
    c = pgf__target_check_add(r, "wire: no Query sent before ReadyForQuery (simple protocol)",
                              early == 0, "query_before_ready",
                              "%zu connection(s) sent a Query before the previous one's "
                              "ReadyForQuery",
                              early);
    for (size_t i = 0; i < w->n && c && !c->passed; i++)
        if (w->c[i].early_queries > 0) {
            describe(&w->c[i], d, sizeof d);
            wit(c, "%s: %u Query message(s) ahead of ReadyForQuery", d, w->c[i].early_queries);
        }
    c = pgf__target_check_add(r, "wire: nothing sent after Terminate", after == 0,
                              "after_terminate", "%zu connection(s) sent bytes after Terminate",
                              after);
    for (size_t i = 0; i < w->n && c && !c->passed; i++)
        if (w->c[i].after_terminate) {
            describe(&w->c[i], d, sizeof d);
            wit(c, "%s", d);
        }
    pthread_mutex_unlock(&w->lock);
}

void pgf__wire_storm_witness(pgf__wire *w, pgf_target_check *c, uint64_t from_ns)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    /* logins after from_ns, per client (peer + application_name), top 5 */
    typedef struct agg {
        const wconn *c;
        unsigned ok, refused;
    } agg;
    agg top[64];
    size_t ntop = 0;
    for (size_t i = 0; i < w->nl; i++) {
        if (w->l[i].t < from_ns)
            continue;
        const wconn *cn = find(w, w->l[i].conn);
        if (cn == NULL)
            continue;
        size_t k;
        for (k = 0; k < ntop; k++)
            if (strcmp(top[k].c->app, cn->app) == 0 &&
                strncmp(top[k].c->peer, cn->peer, strcspn(cn->peer, ":")) == 0)
                break;
        if (k == ntop) {
            if (ntop == 64)
                continue;
            top[ntop++] = (agg){cn, 0, 0};
        }
        if (w->l[i].ok)
            top[k].ok++;
        else
            top[k].refused++;
    }
    for (size_t n = 0; n < 5 && ntop > 0; n++) {
        size_t best = 0;
        for (size_t k = 1; k < ntop; k++)
            if (top[k].ok + top[k].refused > top[best].ok + top[best].refused)
                best = k;
        wit(c, "application_name '%s' from %.*s: %u logins, %u refused", top[best].c->app,
            (int)strcspn(top[best].c->peer, ":"), top[best].c->peer, top[best].ok,
            top[best].refused);
        top[best] = top[--ntop];
    }
    pthread_mutex_unlock(&w->lock);
}
