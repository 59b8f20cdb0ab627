/* recorder.h - collects a run's history without serializing the workers.
 *
 * Session events (the session manager's recorder hook) and fired faults
 * (the fake server's fault hook) are appended to a buffer owned by the
 * thread that produced them; every record carries a global sequence number
 * (pgf_seq_next()). After the run, the buffers are merged by sequence into
 * one history (history.h records), which the checker reads and
 * history.jsonl is written from. Nothing here takes a lock on the hot
 * path except the first record of a new thread.
 */
#ifndef PGF_RECORDER_H
#define PGF_RECORDER_H

#include <stddef.h>
#include <stdint.h>

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

/* Merge every thread's buffer by sequence. The records (and their strings)
 * stay owned by the recorder and valid until pgf_recorder_free. Call once,
 * after every producing thread has stopped. */
const pgf_rec *pgf_recorder_merge(pgf_recorder *r, size_t *n);

/* Totals, any time (atomics). */
uint64_t pgf_recorder_count(const pgf_recorder *r);

#endif
