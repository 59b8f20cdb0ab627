/* engine_int.h - the engine object, shared by engine.c (decisions) and
 * faultlog.c (log, coverage). Not for use outside fakes/fault/. */
#ifndef PGF_FAULT_ENGINE_INT_H
#define PGF_FAULT_ENGINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "pgfault/fault.h"
#include "fault_int.h"

struct rule_state;

struct pgf_fault_engine {
    uint64_t seed;
    /* installed rule set: `mu` guards the pointer only */
    pthread_mutex_t mu;
    pgf_fault_rules *rules;
    atomic_uint_fast64_t gen;   /* bumped by every set_rules */
    atomic_uint_fast64_t epoch; /* bumped by every reset */
    atomic_uint_fast64_t fired_total;
    /* scope: global counters, shared by every loop that decides (a server
     * may run several): `g_mu`, taken only when a global rule is reached.
     * Laid out for g_rules, the newest rule set a deciding connection has
     * seen (generation g_gen). */
    pthread_mutex_t g_mu;
    pgf_fault_rules *g_rules;
    uint64_t g_gen, g_epoch;
    struct rule_state *gstate;
    /* fault log and coverage: `log_mu` */
    pthread_mutex_t log_mu;
    uint64_t seq;
    /* the newest events, a ring of at most log_limit: lines[(head + i) %
     * cap] for i < nlines, oldest first, with their seqs */
    char **lines;
    uint64_t *line_seq;
    size_t nlines, cap, head, log_limit;
    uint64_t dropped; /* events not (or no longer) held */
    FILE *stream;
    unsigned stream_flags;
    int stream_errno; /* errno of the first failed write to stream; 0 if none */
    uint64_t cov[PGF_PHASE_COUNT][PGF_ACTION_COUNT];
    uint64_t cov_total;
    char **cov_names; /* fired counts by rule name, across rule-set changes */
    uint64_t *cov_counts;
    size_t ncov;
};

/* Record a fired fault; returns its sequence number (loop thread). */
uint64_t pgf__faultlog_record(pgf_fault_engine *e, uint64_t conn_id, pgf_phase phase,
                              const pgf__rule *r, const pgf_fault_action *a,
                              const pgf_fault_ctx *ctx);
void pgf__faultlog_reset_coverage(pgf_fault_engine *e);
void pgf__faultlog_destroy(pgf_fault_engine *e);

#endif
