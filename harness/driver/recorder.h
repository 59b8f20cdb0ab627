/* recorder.h - collects a run's history without serializing the workers.
 *
 * Session events (the session manager's recorder hook) and fired faults
 * (the fake server's fault hook) are appended to a buffer owned by the
 * thread that produced them; every record carries a global sequence number
 * (pgf_seq_next()). While the run goes on, one consumer thread calls
 * pgf_recorder_drain(), which merges the buffers' heads by sequence and
 * hands each record, strictly in seq order, to a sink (run.c: history
 * writer, checker, report aggregates); drained buffer chunks are reused,
 * so memory stays at a fixed level however long the run (docs/soak.md).
 * Producers take a lock only for their first record and once per chunk
 * (1024 records).
 */
#ifndef PGF_RECORDER_H
#define PGF_RECORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/fault.h"
#include "pgfault/history.h"
#include "pgfault/session.h"

typedef struct pgf_recorder pgf_recorder;

/* clock_base: the event_base whose clock stamps records (the sim loop in
 * sim mode; NULL = CLOCK_MONOTONIC); start_ns is subtracted. */
pgf_recorder *pgf_recorder_new(struct event_base *clock_base, uint64_t start_ns);
void pgf_recorder_free(pgf_recorder *r);

/* The session manager's recorder hook (arg = the recorder). */
void pgf_recorder_session_event(const pgf_session_event *ev, void *arg);
/* A fault fired (called on the server's loop). session: the session the
 * connection belongs to (from its application_name), or -1. */
void pgf_recorder_fault(pgf_recorder *r, uint64_t conn, int64_t session, pgf_phase phase,
                        const pgf_fault_action *a, uint64_t time_ns);
/* A health result observed from outside (an HTTP target's response):
 * session = the polling client, reason = the classified verdict ("ok",
 * "unhealthy", "server_error", "timeout", ...), cause = free text
 * (status, latency, the body's reason). Strings are copied. */
void pgf_recorder_health(pgf_recorder *r, int64_t session, int64_t op_id, const char *reason,
                         const char *cause);
/* Any record (an adapter's invoke/ok/fail/transition): seq, time and
 * thread are set here; its strings are copied. */
void pgf_recorder_put(pgf_recorder *r, const pgf_rec *rec);
/* The final server facts. */
void pgf_recorder_server(pgf_recorder *r, int64_t open, int64_t accepted, int64_t closed,
                         int64_t sessions_open);

/* The consumer. A sink gets each record in seq order; the record and its
 * strings are borrowed for the call (the sink may rewrite strings in place:
 * run.c scrubs secrets). Non-zero from the sink stops the drain: the
 * recorder is then failed with that code. */
typedef int (*pgf_recorder_sink)(void *arg, const pgf_rec *rec);
void pgf_recorder_set_sink(pgf_recorder *r, pgf_recorder_sink fn, void *arg);

/* The reorder window: a gap in seq (a thread took a seq and has not
 * appended its record) is waited out while at most this many records are
 * waiting behind it; past that, pgf_recorder_drain fails. */
#define PGF_RECORDER_WINDOW_DEFAULT 1000000
void pgf_recorder_set_window(pgf_recorder *r, size_t window); /* 0 = the default */

/* A chunk holds PGF_RECORDER_CHUNK_RECS records, of which at most
 * PGF_RECORDER_CHUNK_WHOLE are whole pgf_recs (a fault, a failure with its
 * classification, the server's counters, pgf_recorder_put); the session
 * manager's other events take one cache line each. */
#define PGF_RECORDER_CHUNK_RECS  1024
#define PGF_RECORDER_CHUNK_WHOLE 256

/* Backpressure: once some thread has called pgf_recorder_drain (it is
 * then "the drainer"), another thread that needs a new chunk while this
 * many chunks are written and not yet drained waits
 * for the drainer to free one -- at most 100 ms a chunk, so a drainer that
 * is itself waiting on that thread slows the run, never hangs it. The
 * history's memory stays near this bound when producers outrun the
 * consumer (the checker's cost then shows as throughput). */
#define PGF_RECORDER_INFLIGHT 64

/* Emit every record that can be emitted in order (one consumer thread at a
 * time; producers keep running). final: the producers have stopped, so a
 * gap is a seq nobody will record (a muted or failed record) and is
 * skipped. Returns 0, or a negative PGF_E* code with pgf_recorder_error()
 * naming the seq and thread: a record older than one already emitted, the
 * window exceeded, or the sink's own failure. Sticky. */
PGF_NODISCARD int pgf_recorder_drain(pgf_recorder *r, bool final);
const char *pgf_recorder_error(const pgf_recorder *r); /* NULL if none */

typedef struct pgf_recorder_stats {
    uint64_t recorded;       /* records appended */
    uint64_t emitted;        /* handed to the sink */
    size_t chunks_allocated; /* ever malloc'ed: bounded once drains keep up */
    size_t chunks_pooled;    /* drained, waiting for reuse */
    unsigned threads;        /* producing threads seen */
    uint64_t waits;          /* times a producer waited for the drain (backpressure) */
    uint64_t waited_ns;      /* ... and how long in all */
    bool failed;             /* a record was lost (out of memory) */
} pgf_recorder_stats;
void pgf_recorder_get_stats(pgf_recorder *r, pgf_recorder_stats *st);

/* Deep copies of records (strings owned by the store), in the order
 * added: what a consumer keeps when it needs the whole history. */
typedef struct pgf_rec_store {
    pgf_rec *recs;
    size_t n, cap;
    struct keep_block *blocks;
} pgf_rec_store;
PGF_NODISCARD int pgf_rec_store_add(pgf_rec_store *st, const pgf_rec *rec);
void pgf_rec_store_free(pgf_rec_store *st); /* leaves it empty, reusable */

/* The whole history as one array (targets, tests): drains (final) into a
 * copy owned by the recorder, valid until pgf_recorder_free; replaces any
 * sink. Call once, after every producing thread has stopped; NULL with
 * *n = 0 on failure (or an empty history). Idempotent. */
const pgf_rec *pgf_recorder_merge(pgf_recorder *r, size_t *n);

/* Totals, any time (atomics). */
uint64_t pgf_recorder_count(const pgf_recorder *r);

#endif
