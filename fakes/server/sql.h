/* sql.h - what the fake server answers to the SQL it is sent.
 *
 * Sans-I/O: a statement and the session's state in, a result out. It
 * recognises what health checks and drivers send (SELECT 1, SELECT <int>,
 * version(), current_database(), now(), pg_backend_pid(), SHOW/SET/RESET/
 * DISCARD, a pool's reset statements, transaction control and
 * characteristics (isolation level, read only), pg_sleep, the connect-time queries of
 * psycopg, asyncpg, node-postgres, pgjdbc and SQLAlchemy) and answers anything else with a
 * real-looking ERROR (42601 for what does not start like SQL, 0A000 for
 * SQL the fake does not implement). It is not a SQL engine.
 */
#ifndef PGF_SQL_H
#define PGF_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/answers.h"
#include "pgfault/proto.h"

#define PGF_SQL_MAX_GUCS       48
#define PGF_SQL_MAX_COLS       4
#define PGF_SQL_MAX_TABLE_COLS 64 /* columns of a table answer (catalog, canned) */
#define PGF_SQL_MAX_REPORTS    13 /* GUCs PostgreSQL reports with ParameterStatus */

/* One value of a result row too wide or too long for the fixed slots of
 * pgf_sql_result (recorded introspection answers, canned answers). */
typedef struct pgf_sql_value {
    const char *text;   /* NULL: SQL NULL */
    const uint8_t *bin; /* the binary form as PostgreSQL sent it; NULL: derived from text */
    int32_t tlen, blen;
} pgf_sql_value;

/* Per-connection SQL state. */
typedef struct pgf_sql_session {
    char txn;                   /* 'I' idle, 'T' in transaction, 'E' failed transaction */
    const pgf_answers *answers; /* borrowed: canned answers, consulted first; NULL = none */
    const char *user;
    const char *database;
    bool superuser;
    int32_t pid;    /* the BackendKeyData pid: pg_backend_pid() */
    int64_t now_us; /* wall time of the statement being run (µs since the Unix
                     * epoch), set by the caller before each pgf_sql_exec:
                     * statement_timestamp(); now() is the block's start */
    int ngucs;
    int nbase; /* the first nbase slots are the startup packet's values */
    int cap;
    /* Settings the client changed, allocated on demand (most connections
     * change none or one): an idle connection costs what it uses. */
    struct pgf_sql_guc {
        char name[64];
        char value[128];
    } * gucs;
    /* The open transaction block's characteristics (BEGIN's modes, SET
     * TRANSACTION), valid while txn != 'I'; outside a block SHOW
     * transaction_* answers the session's default_transaction_* values. */
    struct pgf_sql_xact {
        const char *isolation; /* "read committed", ... (static strings) */
        bool read_only;
        bool deferrable;
        bool snapshot;    /* a query ran: isolation and read-write are fixed */
        int64_t start_us; /* now() inside the block */
    } xact;
    /* Settings in the open block (sql.c tx_*): all of them as they were
     * before the block first changed one (what ROLLBACK restores), and the
     * names it SET LOCAL with their session-level values (what COMMIT
     * restores). Empty outside a block. */
    bool tx_saved;
    int tx_nbefore, tx_nlocal;
    struct pgf_sql_guc *tx_before;
    struct pgf_sql_local {
        char name[64];
        char value[128];
        bool had; /* a session-level value existed (else: back to the default) */
    } * tx_local;
} pgf_sql_session;

typedef enum pgf_sql_kind {
    PGF_SQL_ROWS,    /* RowDescription, DataRow(s), CommandComplete */
    PGF_SQL_COMMAND, /* CommandComplete only */
    PGF_SQL_EMPTY,   /* EmptyQueryResponse */
    PGF_SQL_ERROR,   /* ErrorResponse */
    PGF_SQL_SLEEP,   /* pg_sleep: RowDescription now, the row after sleep_ms */
} pgf_sql_kind;

typedef struct pgf_sql_result {
    pgf_sql_kind kind;
    int ncols;
    pgf_col cols[PGF_SQL_MAX_COLS];
    char col_names[PGF_SQL_MAX_COLS][64];
    int nrows; /* 0 or 1 */
    char values[PGF_SQL_MAX_COLS][256];
    bool nulls[PGF_SQL_MAX_COLS];
    char tag[64];
    pgf_error_fields error;
    char err_message[256];
    char err_position[16];
    bool has_notice;
    pgf_error_fields notice;
    char notice_message[128];
    uint64_t sleep_ms;
    bool sleep_timeout; /* statement_timeout ends the sleep: 57014, not the row */
    /* Reported GUCs whose value the statement changed (SET, RESET, RESET
     * ALL, DISCARD ALL): a ParameterStatus for each after CommandComplete,
     * in startup order. report_name/report_value is the first of them. */
    const char *report_name;
    char report_value[128];
    int nreports;
    const char *report_names[PGF_SQL_MAX_REPORTS];
    char report_values[PGF_SQL_MAX_REPORTS][128];
    /* A table answer (catalog.c, answers.c): when xcols != NULL, the
     * columns and rows are these, not cols/values above. The pointers are
     * borrowed from immutable data, except xalloc, which the result owns:
     * call pgf_sql_result_release() when done with it. */
    const pgf_col *xcols;
    int nxcols;
    const pgf_sql_value *const *xrows;
    int nxrows;
    void *xalloc;
} pgf_sql_result;

/* Free what a result owns (a merged table answer). Idempotent. */
void pgf_sql_result_release(pgf_sql_result *r);
/* Column and row counts of a result (the fixed slots or the table). */
int pgf_sql_result_ncols(const pgf_sql_result *r);
int pgf_sql_result_nrows(const pgf_sql_result *r);
/* Value of column `col` of row `row` in `format` (0 text, 1 binary).
 * Returns the length and points *out at the bytes (scratch may be used,
 * 16 bytes), or -1 for SQL NULL. */
int32_t pgf_sql_result_value(const pgf_sql_result *r, int row, int col, int16_t format,
                             uint8_t scratch[16], const char **out);

/* Binary form of a text value of a simple type (bool, int2/4/8, oid,
 * float4/8; text-like types are their own bytes; jsonb gets its version
 * byte). Returns the length, -2 if the type has no binary form here. */
int32_t pgf_sql_binary(uint32_t type_oid, const char *text, int32_t tlen, uint8_t scratch[16],
                       const char **out);

/* The normalized form statements are matched by (docs/introspection.md):
 * comments dropped, tokens joined by one space, unquoted words
 * lower-cased, trailing ';' dropped. Caller frees; NULL on out of memory. */
char *pgf_sql_normalize(const char *stmt, size_t len);

/* ---- catalog.c: recorded answers of PostgreSQL 15 (tests/data/introspection) ---- */

/* Fill r with PostgreSQL's recorded answer to this statement and these
 * parameters; false if the statement was not recorded. describe_only:
 * columns only. Thread-safe (the catalog is loaded once, immutable). */
bool pgf__catalog_answer(const char *norm, const char *const *params, int nparams,
                         bool describe_only, pgf_sql_result *r);
/* Recorded type of parameter n (1-based) of a recorded statement, or 0. */
uint32_t pgf__catalog_param_type(const char *norm, int n);
/* Number of recorded statements (tests). */
int pgf__catalog_count(void);

/* ---- answers.c: canned answers ---- */

/* Fill r from the first canned answer that matches; false if none does. */
bool pgf__answers_match(const pgf_answers *a, const char *stmt, size_t len, const char *norm,
                        bool describe_only, pgf_sql_result *r);

void pgf_sql_session_init(pgf_sql_session *s, const char *user, const char *database,
                          bool superuser);
/* Free the settings; the session can be initialized again. */
void pgf_sql_session_free(pgf_sql_session *s);
/* After the startup packet's GUCs are set: they become the values RESET,
 * RESET ALL and DISCARD ALL return to, as in PostgreSQL. */
void pgf_sql_session_mark_defaults(pgf_sql_session *s);
/* Set a GUC (startup packet or SET). Returns false if the name is unknown. */
bool pgf_sql_set_guc(pgf_sql_session *s, const char *name, const char *value);
/* The same with PostgreSQL's checks of the value (time units and ranges,
 * Booleans, isolation levels, read-only parameters): false with r an
 * ERROR (sqlstate, message, hint) if the name or value is refused. */
bool pgf_sql_set_guc_checked(pgf_sql_session *s, const char *name, const char *value,
                             pgf_sql_result *r);
/* A setting in milliseconds that defaults to 0, off (statement_timeout, the
 * idle timeouts), by its canonical name: its value, 0 when off. */
int64_t pgf_sql_guc_ms(const pgf_sql_session *s, const char *canon);
/* Current value of a GUC (defaults included), or NULL if unknown. */
const char *pgf_sql_get_guc(const pgf_sql_session *s, const char *name);
/* Is this a GUC PostgreSQL reports with ParameterStatus? Returns its
 * canonical spelling, or NULL. */
const char *pgf_sql_reported_guc(const char *name);
/* The i-th GUC PostgreSQL reports at startup, in its order (i from 0), or
 * NULL past the last: what the server sends as ParameterStatus. */
const char *pgf_sql_reported_guc_at(int i);
/* Would PostgreSQL accept this name as a startup parameter? */
bool pgf_sql_guc_known(const char *name);

/* Split a simple-query string into statements (on ';' outside quotes and
 * comments). Calls fn for each non-empty statement; returns the number of
 * statements, 0 for an empty query string. */
int pgf_sql_split(const char *sql, void (*fn)(const char *stmt, size_t len, void *arg), void *arg);

/* Execute one statement (no trailing ';'). params are the text values of
 * $1..$n from a Bind (NULL entries are SQL NULL). */
void pgf_sql_exec(pgf_sql_session *s, const char *stmt, size_t len, const char *const *params,
                  int nparams, pgf_sql_result *out);

/* Describe a statement without running it (extended protocol Describe):
 * fills cols/ncols (kind ROWS) or kind COMMAND for no data, ERROR if it
 * would fail to parse. Does not change the session. */
void pgf_sql_describe(const pgf_sql_session *s, const char *stmt, size_t len, pgf_sql_result *out);

/* Type OID PostgreSQL would infer for $n in query ("$1::int" -> int4;
 * untyped -> text). */
uint32_t pgf_sql_param_type(const char *query, int n);

/* The server_version ParameterStatus and version() text. */
#define PGF_SQL_SERVER_VERSION "15.18 (Debian 15.18-0+deb12u1)"

#endif
