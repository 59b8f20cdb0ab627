/* engine.c - pgf_fault_decide(): match rules, count, draw, fire.
 *
 * Deterministic by construction: every random draw comes from the stream
 * (engine seed, connection id, rule name hash), created lazily per
 * connection and rule, so connection 17's decisions do not depend on any
 * other connection. Counters are per connection unless a rule says
 * `scope: global` (then they depend on the order connections reach the
 * phase: deterministic only when that order is, e.g. in sim mode).
 *
 * Rule sets are immutable and refcounted. set_rules() (any thread) swaps
 * the installed pointer under a mutex and bumps an atomic generation;
 * decide() compares one atomic per call and takes the mutex only when the
 * generation moved. When it does, the connection carries its counters over
 * for the rules whose canonical text did not change, so adding a rule does
 * not disturb the others.
 *
 * Threads: a connection's state (pgf_fault_conn) is touched only by the
 * loop that serves it, so several loops (pgf_server with threads > 1) may
 * decide at once. What they share is behind locks: the installed set
 * (`mu`), the `scope: global` counters (`g_mu`, taken only when a global
 * rule is reached), the log (`log_mu`).
 *
 * Not here: parsing (rules.c), the log and coverage bookkeeping
 * (faultlog.c), sockets (the server carries actions out).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_int.h"
#include "pgfault/faultlog.h"
#include "pgfault/rng.h"
#include "pgfault/rules.h"

struct rule_state {
    uint64_t hits;       /* matches counted in this rule's scope */
    uint64_t fired;      /* fires in this rule's scope */
    uint64_t conn_fired; /* fires on this connection (budget) */
    pgf_rng rng;
    bool rng_ready;
};

struct pgf_fault_conn {
    pgf_fault_engine *e;
    uint64_t conn_id;
    pgf_fault_rules *rules; /* the set `st` is laid out for (own ref) */
    uint64_t gen;           /* the engine's generation `rules` came with */
    uint64_t epoch;
    struct rule_state *st;
    /* expanded texts handed out in pgf_fault_action */
    char message[512], detail[1024], hint[512];
};

pgf_fault_engine *pgf_fault_engine_new(uint64_t seed)
{
    pgf_fault_engine *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->seed = seed;
    pthread_mutex_init(&e->mu, NULL);
    pthread_mutex_init(&e->g_mu, NULL);
    pthread_mutex_init(&e->log_mu, NULL);
    atomic_init(&e->gen, 1);
    atomic_init(&e->epoch, 1);
    atomic_init(&e->fired_total, 0);
    e->log_limit = 100000;
    return e;
}

void pgf_fault_engine_free(pgf_fault_engine *e)
{
    if (e == NULL)
        return;
    pgf_fault_rules_free(e->rules);
    pgf_fault_rules_free(e->g_rules);
    free(e->gstate);
    pgf__faultlog_destroy(e);
    pthread_mutex_destroy(&e->mu);
    pthread_mutex_destroy(&e->g_mu);
    pthread_mutex_destroy(&e->log_mu);
    free(e);
}

uint64_t pgf_fault_engine_seed(const pgf_fault_engine *e)
{
    return e->seed;
}

uint64_t pgf_fault_engine_fired(const pgf_fault_engine *e)
{
    return atomic_load_explicit(&((pgf_fault_engine *)e)->fired_total, memory_order_relaxed);
}

void pgf_fault_engine_set_rules(pgf_fault_engine *e, pgf_fault_rules *rules)
{
    pthread_mutex_lock(&e->mu);
    pgf_fault_rules *old = e->rules;
    e->rules = rules;
    atomic_fetch_add_explicit(&e->gen, 1, memory_order_release);
    pthread_mutex_unlock(&e->mu);
    pgf_fault_rules_free(old);
}

pgf_fault_rules *pgf_fault_engine_rules(pgf_fault_engine *e)
{
    pthread_mutex_lock(&e->mu);
    pgf_fault_rules *r = pgf_fault_rules_ref(e->rules);
    pthread_mutex_unlock(&e->mu);
    return r;
}

void pgf_fault_engine_reset(pgf_fault_engine *e)
{
    /* Coverage is history, like the log: what fired before a reset still
     * fired (the exit line and /coverage report it), so it is kept. */
    pgf_fault_engine_set_rules(e, NULL);
    atomic_fetch_add_explicit(&e->epoch, 1, memory_order_release);
}

/* Lay `nstate` states out for `to`, carrying over those of unchanged rules
 * from `from`/`old`. Returns the new array (NULL if `to` is empty or on
 * ENOMEM: then counters restart, which is safe). */
static struct rule_state *carry_over(const pgf_fault_rules *from, const struct rule_state *old,
                                     const pgf_fault_rules *to)
{
    size_t n = pgf_fault_rules_count(to);
    if (n == 0)
        return NULL;
    struct rule_state *st = calloc(n, sizeof *st);
    if (st == NULL || old == NULL || from == NULL)
        return st;
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < from->n; i++)
            if (strcmp(from->rules[i].canon, to->rules[j].canon) == 0) {
                st[j] = old[i];
                break;
            }
    return st;
}

/* The connection's loop: pick up a new rule set or a reset. */
static void conn_refresh(pgf_fault_conn *c)
{
    pgf_fault_engine *e = c->e;
    uint64_t gen = atomic_load_explicit(&e->gen, memory_order_acquire);
    if (gen != c->gen) {
        pthread_mutex_lock(&e->mu);
        pgf_fault_rules *r = pgf_fault_rules_ref(e->rules);
        gen = atomic_load_explicit(&e->gen, memory_order_relaxed);
        pthread_mutex_unlock(&e->mu);
        struct rule_state *st = carry_over(c->rules, c->st, r);
        free(c->st);
        c->st = st;
        pgf_fault_rules_free(c->rules);
        c->rules = r;
        c->gen = gen;
    }
    uint64_t epoch = atomic_load_explicit(&e->epoch, memory_order_acquire);
    if (epoch != c->epoch) {
        if (c->st != NULL)
            memset(c->st, 0, pgf_fault_rules_count(c->rules) * sizeof *c->st);
        c->epoch = epoch;
    }
}

/* With g_mu held: the global counters of rule r (of c's set), laid out
 * for the newest set any connection has seen; NULL when r is no longer in
 * it (a swap raced this decision: the rule is gone, it does not fire). */
static struct rule_state *global_state(pgf_fault_engine *e, const pgf_fault_conn *c, size_t idx)
{
    if (c->gen > e->g_gen) {
        struct rule_state *st = carry_over(e->g_rules, e->gstate, c->rules);
        free(e->gstate);
        e->gstate = st;
        pgf_fault_rules_free(e->g_rules);
        e->g_rules = pgf_fault_rules_ref(c->rules);
        e->g_gen = c->gen;
    }
    if (c->epoch > e->g_epoch) {
        if (e->gstate != NULL)
            memset(e->gstate, 0, pgf_fault_rules_count(e->g_rules) * sizeof *e->gstate);
        e->g_epoch = c->epoch;
    }
    if (e->gstate == NULL)
        return NULL;
    if (e->g_rules == c->rules)
        return &e->gstate[idx];
    for (size_t j = 0; j < e->g_rules->n; j++)
        if (strcmp(e->g_rules->rules[j].canon, c->rules->rules[idx].canon) == 0)
            return &e->gstate[j];
    return NULL;
}

pgf_fault_conn *pgf_fault_conn_new(pgf_fault_engine *e, uint64_t conn_id)
{
    pgf_fault_conn *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->e = e;
    c->conn_id = conn_id;
    conn_refresh(c);
    return c;
}

void pgf_fault_conn_free(pgf_fault_conn *c)
{
    if (c == NULL)
        return;
    pgf_fault_rules_free(c->rules);
    free(c->st);
    free(c);
}

static bool filter_eq(const char *want, const char *have)
{
    return want == NULL || (have != NULL && strcmp(want, have) == 0);
}

/* client_addr matches the whole "host:port" text or its host part. */
static bool addr_matches(const char *want, const char *have)
{
    if (want == NULL)
        return true;
    if (have == NULL)
        return false;
    if (strcmp(want, have) == 0)
        return true;
    const char *colon = strrchr(have, ':');
    size_t hl = colon ? (size_t)(colon - have) : strlen(have);
    if (hl > 1 && have[0] == '[' && have[hl - 1] == ']') { /* "[::1]:5432" */
        have++;
        hl -= 2;
    }
    return strlen(want) == hl && strncmp(want, have, hl) == 0;
}

static bool rule_matches(const pgf__rule *r, const pgf_fault_ctx *ctx, uint64_t conn_id)
{
    if (r->conn_lo != 0 && (conn_id < r->conn_lo || conn_id > r->conn_hi))
        return false;
    if (!filter_eq(r->user, ctx->user) || !filter_eq(r->database, ctx->database) ||
        !filter_eq(r->application_name, ctx->application_name) ||
        !addr_matches(r->client_addr, ctx->client_addr))
        return false;
    if (r->query != NULL && (ctx->query == NULL || strstr(ctx->query, r->query) == NULL))
        return false;
    if (r->has_re && (ctx->query == NULL || regexec(&r->re, ctx->query, 0, NULL, 0) != 0))
        return false;
    return true;
}

/* %u -> user, %d -> database, %% -> % (templates were checked at parse). */
static const char *expand(char *buf, size_t len, const char *tpl, const pgf_fault_ctx *ctx)
{
    if (tpl == NULL)
        return NULL;
    if (strchr(tpl, '%') == NULL)
        return tpl;
    size_t o = 0;
    for (const char *s = tpl; *s && o + 1 < len; s++) {
        const char *ins = NULL;
        if (*s == '%' && s[1] == 'u')
            ins = ctx->user ? ctx->user : "";
        else if (*s == '%' && s[1] == 'd')
            ins = ctx->database ? ctx->database : "";
        else if (*s == '%' && s[1] == '%')
            ins = "%";
        if (ins == NULL) {
            buf[o++] = *s;
            continue;
        }
        s++;
        for (; *ins && o + 1 < len; ins++)
            buf[o++] = *ins;
    }
    buf[o] = '\0';
    return buf;
}

static pgf_rng *rule_rng(const pgf_fault_engine *e, const pgf_fault_conn *c, const pgf__rule *r,
                         struct rule_state *cst)
{
    if (!cst->rng_ready) {
        pgf_rng_init(&cst->rng, e->seed, c->conn_id, r->id_hash);
        cst->rng_ready = true;
    }
    return &cst->rng;
}

/* Count a match of r in its scope (st) and decide whether it fires. */
static bool counts_fire(const pgf_fault_engine *e, pgf_fault_conn *c, const pgf__rule *r,
                        struct rule_state *st, struct rule_state *cst)
{
    uint64_t m = ++st->hits;
    if (m <= r->after)
        return false;
    m -= r->after;
    if (r->nth && m != r->nth)
        return false;
    if (r->every && m % r->every != 0)
        return false;
    if (r->times && st->fired >= r->times)
        return false;
    if (r->budget && cst->conn_fired >= r->budget)
        return false;
    if (r->probability < 1.0 && !(pgf_rng_unit(rule_rng(e, c, r, cst)) < r->probability))
        return false;
    st->fired++;
    cst->conn_fired++;
    return true;
}

bool pgf_fault_decide(pgf_fault_engine *e, pgf_fault_conn *c, pgf_phase phase,
                      const pgf_fault_ctx *ctx, pgf_fault_action *out)
{
    if ((unsigned)phase >= PGF_PHASE_COUNT)
        return false;
    conn_refresh(c);
    const pgf_fault_rules *rs = c->rules;
    if (rs == NULL || rs->by_phase_n[phase] == 0)
        return false;
    pgf_fault_ctx local;
    if (ctx == NULL) {
        memset(&local, 0, sizeof local);
        local.conn_id = c->conn_id;
        ctx = &local;
    }
    uint64_t el_ms = ctx->elapsed_ns / 1000000u;
    for (size_t k = 0; k < rs->by_phase_n[phase]; k++) {
        size_t idx = rs->by_phase[phase][k];
        const pgf__rule *r = &rs->rules[idx];
        if (el_ms < r->from_ms || (r->until_ms && el_ms >= r->until_ms))
            continue;
        if (!rule_matches(r, ctx, c->conn_id))
            continue;
        struct rule_state *cst = &c->st[idx];
        bool global = r->scope == PGF__SCOPE_GLOBAL;
        if (global)
            pthread_mutex_lock(&e->g_mu);
        struct rule_state *st = global ? global_state(e, c, idx) : cst;
        bool fire = st != NULL && counts_fire(e, c, r, st, cst);
        if (global)
            pthread_mutex_unlock(&e->g_mu);
        if (!fire)
            continue;

        *out = r->act;
        out->message = expand(c->message, sizeof c->message, r->act.message, ctx);
        out->detail = expand(c->detail, sizeof c->detail, r->act.detail, ctx);
        out->hint = expand(c->hint, sizeof c->hint, r->act.hint, ctx);
        if (r->act.kind == PGF_ACTION_DELAY && r->jitter_ms > 0) {
            /* ms +- jitter, uniform, clamped at 0 */
            uint64_t d = pgf_rng_below(rule_rng(e, c, r, cst), 2ull * r->jitter_ms + 1);
            int64_t ms = (int64_t)r->act.ms + (int64_t)d - (int64_t)r->jitter_ms;
            out->ms = ms < 0 ? 0 : (uint32_t)ms;
        }
        out->event_seq = pgf__faultlog_record(e, c->conn_id, phase, r, out, ctx);
        return true;
    }
    return false;
}
