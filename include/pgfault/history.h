/* history.h - the pgfault history: records, a streaming reader, a writer
 * and the determinism digest.
 *
 * A history is JSON lines (docs/history-format.md): a `meta` line, then one
 * record per line in global `seq` order. This header gives
 *   - pgf_rec: one record as plain C data (what the checker consumes);
 *   - a streaming reader that validates every line and reports
 *     "file:line[:col]: message" for anything malformed (never crashes);
 *   - pgf_history: a whole file loaded into memory (interned strings);
 *   - a buffered writer with a fixed key order, which also computes the
 *     digest of what it wrote;
 *   - the digest (SHA-256 over the canonical lines without `wall` fields).
 * It does not judge a history: that is check.h.
 */
#ifndef PGF_HISTORY_H
#define PGF_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/err.h"

#define PGF_HISTORY_FORMAT  "pgfault-history"
#define PGF_HISTORY_VERSION 1

#define PGF_REC_TYPE_MAP(X)                                                      \
    X(INVOKE, "invoke")         /* an operation started */                       \
    X(OK, "ok")                 /* it completed successfully */                  \
    X(FAIL, "fail")             /* it completed with an error (`error`) */       \
    X(INFO, "info")             /* it completed with an indeterminate outcome */ \
    X(TRANSITION, "transition") /* a session changed state */                    \
    X(FAULT, "fault")           /* the fault engine fired a fault */             \
    X(SERVER, "server")         /* server-side facts (connection counts) */      \
    X(HEALTH, "health")         /* a health-check result with its classified reason */

typedef enum pgf_rec_type {
#define PGF__REC_TYPE_ENUM(name, str) PGF_REC_##name,
    PGF_REC_TYPE_MAP(PGF__REC_TYPE_ENUM)
#undef PGF__REC_TYPE_ENUM
        PGF_REC_TYPE_COUNT
} pgf_rec_type;

const char *pgf_rec_type_name(pgf_rec_type t);
/* "invoke" -> PGF_REC_INVOKE; -1 if unknown. */
int pgf_rec_type_parse(const char *s);

#define PGF_REC_NONE (-1) /* value of an absent integer field */

/* One record. Absent strings are NULL, absent integers PGF_REC_NONE.
 * Who owns the strings is said by whoever hands out the record. */
typedef struct pgf_rec {
    uint64_t seq;     /* global order, strictly increasing */
    uint64_t time_ns; /* virtual (sim) or monotonic time since run start */
    pgf_rec_type type;
    uint32_t line;    /* 1-based source line (0 when built in memory) */
    int64_t session;  /* session id */
    int64_t op_id;    /* operation instance id, unique in the history */
    int64_t conn;     /* server connection id (1-based, accept order) */
    int64_t thread;   /* worker thread that recorded it */
    const char *op;   /* operation name (spec `operations[].name`) */
    const char *from; /* transition: state before */
    const char *to;   /* transition: state after */
    const char *cause;
    const char *error;  /* PGF_E* name (fail/info) */
    const char *reason; /* health: classified reason; fault: predicted one */
    const char *phase;  /* fault: protocol phase */
    const char *rule;   /* fault: rule name */
    const char *action; /* fault: action ("auth-fail", "close", ...) */
    const char *sqlstate;
    /* server */
    int64_t conns_open;
    int64_t conns_accepted;
    int64_t conns_closed;
    int64_t sessions_open;
    /* who (records of `pgfault serve --history` and foreign histories):
     * the backend pid the client was given, the client's TCP port */
    int64_t backend_pid;
    int64_t client_port;
    /* wall-clock microseconds since the epoch; never part of the digest.
     * The reader does not keep it (it may be any JSON value in a file). */
    int64_t wall_us;
} pgf_rec;

/* A record with every optional field absent. */
void pgf_rec_init(pgf_rec *r, pgf_rec_type type);

/* The first line of a history. */
typedef struct pgf_hist_meta {
    int version;
    bool has_seed;
    uint64_t seed;
    const char *mode;        /* "sim" | "stress" | free text; may be NULL */
    const char *tool;        /* "pgfault 0.1.0"; may be NULL */
    const char *spec_digest; /* hex SHA-256 of the canonical spec; may be NULL */
    const char *spec_json;   /* embedded spec as compact JSON text; may be NULL */
    /* the deadlines the run declared, compact JSON {"open": ms, ...,
     * "tolerance": ms} (pgf_check_deadlines_parse); may be NULL */
    const char *deadlines_json;
    int64_t wall_us; /* run start, wall clock; PGF_REC_NONE if absent */
} pgf_hist_meta;

/* ---- streaming reader ------------------------------------------------- */

typedef struct pgf_hist_reader pgf_hist_reader;

/* Open `path` ("-" = stdin) and read its meta line. On error returns a
 * negative code and writes "path:line[:col]: message" into err. */
PGF_NODISCARD int pgf_hist_reader_open(const char *path, pgf_hist_reader **out, char *err,
                                       size_t errlen);
/* Same over an open stream (not closed by the reader); `name` is used in
 * messages. */
PGF_NODISCARD int pgf_hist_reader_open_fp(FILE *f, const char *name, pgf_hist_reader **out,
                                          char *err, size_t errlen);
/* Borrowed; valid until pgf_hist_reader_free. */
const pgf_hist_meta *pgf_hist_reader_meta(const pgf_hist_reader *r);
/* Next record: 1 and *rec filled (strings borrowed until the next call),
 * 0 at end of input, negative with "name:line[:col]: message" in err. */
PGF_NODISCARD int pgf_hist_reader_next(pgf_hist_reader *r, pgf_rec *rec, char *err, size_t errlen);
/* The line the last record came from, as read (no newline; valid until the
 * next call), NULL when there is none: for pgf_checker_feed_line. */
const char *pgf_hist_reader_line(const pgf_hist_reader *r, size_t *n);
void pgf_hist_reader_free(pgf_hist_reader *r);

/* ---- a whole history in memory ---------------------------------------- */

typedef struct pgf_history pgf_history;

/* Read every line of `path` ("-" = stdin). Caller frees with
 * pgf_history_free. Errors as for the reader. */
PGF_NODISCARD int pgf_history_load(const char *path, pgf_history **out, char *err, size_t errlen);
PGF_NODISCARD int pgf_history_load_fp(FILE *f, const char *name, pgf_history **out, char *err,
                                      size_t errlen);
void pgf_history_free(pgf_history *h);
const pgf_hist_meta *pgf_history_meta(const pgf_history *h);
/* Borrowed array of *n records, valid until pgf_history_free. */
const pgf_rec *pgf_history_records(const pgf_history *h, size_t *n);

/* ---- writer ----------------------------------------------------------- */

/* Not thread-safe: workers record into their own buffers and one thread
 * writes the merged records in seq order. */
typedef struct pgf_hist_writer pgf_hist_writer;

/* Write to `path` (created/truncated). Records are buffered and written one
 * line each, keys in the fixed order of docs/history-format.md. */
PGF_NODISCARD int pgf_hist_writer_open(const char *path, pgf_hist_writer **out);
/* Write to an open stream (not closed by the writer; NULL = write nothing,
 * only compute the digest). */
PGF_NODISCARD pgf_hist_writer *pgf_hist_writer_new_fp(FILE *f);
/* The meta line; call once, first. */
PGF_NODISCARD int pgf_hist_writer_meta(pgf_hist_writer *w, const pgf_hist_meta *m);
PGF_NODISCARD int pgf_hist_writer_put(pgf_hist_writer *w, const pgf_rec *r);
/* The line the last pgf_hist_writer_put wrote (no '\n'; a `wall` field
 * included when it had one), valid until the next call on the writer; NULL
 * when there is none. The streaming checker keeps its witnesses from it
 * (pgf_checker_feed_line) instead of formatting them again. */
const char *pgf_hist_writer_last(const pgf_hist_writer *w, size_t *n);
/* Where that line starts in the stream: bytes the writer had written
 * before it, the meta line included (uncompressed). A file the stream
 * goes to unchanged holds the line at this offset once flushed, for
 * pgf_checker_feed_line_at. */
uint64_t pgf_hist_writer_last_pos(const pgf_hist_writer *w);
/* Flush buffered lines to the stream. */
PGF_NODISCARD int pgf_hist_writer_flush(pgf_hist_writer *w);
/* Hex SHA-256 (65 bytes with NUL) of everything written so far, wall
 * fields excluded: equal to pgf_history_digest() of the same records. */
void pgf_hist_writer_digest(const pgf_hist_writer *w, char hex[65]);
/* Do not compute the digest (call before the first line; pgf_hist_writer_digest
 * then gives ""). For a history no run can reproduce (stress mode, a service
 * under test), whose digest checks no determinism: SHA-256 was a sixth of the
 * history thread's time there. The output set's manifest still hashes the
 * file, and `pgfault check FILE --digest` computes it on demand. */
void pgf_hist_writer_no_digest(pgf_hist_writer *w);
/* Flushes, closes a file it opened, frees. Returns the first write error. */
int pgf_hist_writer_close(pgf_hist_writer *w);

/* ---- canonical form and digest ---------------------------------------- */

/* The canonical line of a record (no `wall`, no newline) into buf, NUL
 * terminated; returns its length, or a negative code (PGF_ETOOBIG if it
 * does not fit). */
int pgf_rec_format(const pgf_rec *r, char *buf, size_t len);
/* SHA-256 over the canonical meta line and records, each followed by '\n',
 * `wall` fields excluded. meta may be NULL (records only). */
void pgf_history_digest(const pgf_hist_meta *meta, const pgf_rec *recs, size_t n, char hex[65]);

#endif
