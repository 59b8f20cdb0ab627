/* fault.h - the fault engine's contract with the fake server.
 *
 * The server asks the engine at every protocol boundary of every
 * connection ("phase") whether a fault fires there. The engine matches
 * its rules (where + what + when), draws every random decision from a
 * stream derived from (run seed, connection number, rule), records each
 * fired fault in the fault log, and returns an action. The server carries
 * the action out; the engine never touches a socket.
 *
 * Threading: pgf_fault_decide() and the pgf_fault_conn functions are
 * called only on the loop thread that serves the connection; connections
 * served by different loops (pgf_server with threads > 1) may decide at
 * the same time, and each one's decisions depend only on the seed, its id
 * and its own calls (scope: global counters excepted). The rule set is immutable once
 * installed; pgf_fault_engine_set_rules() (any thread) swaps it atomically
 * and the next decision sees the new set, including on connections that
 * are already open.
 */
#ifndef PGF_FAULT_H
#define PGF_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"

/* Protocol phases where a rule can fire. "before X" points decide before
 * the server sends X; "after X" points after it received X. */
#define PGF_PHASE_MAP(X)                                                                     \
    X(ACCEPT, "accept")                     /* a TCP/unix connection was accepted */         \
    X(SSL_REQUEST, "ssl-request")           /* after SSLRequest/GSSENCRequest */             \
    X(STARTUP, "startup")                   /* after StartupMessage */                       \
    X(AUTH_REQUEST, "auth-request")         /* before the auth request (R 3/5/10) */         \
    X(AUTH_RESPONSE, "auth-response")       /* after the client's password / SASL message */ \
    X(SASL_CONTINUE, "sasl-continue")       /* before AuthenticationSASLContinue */          \
    X(SASL_FINAL, "sasl-final")             /* before AuthenticationSASLFinal */             \
    X(AUTH_OK, "auth-ok")                   /* before AuthenticationOk */                    \
    X(PARAMETER_STATUS, "parameter-status") /* before the ParameterStatus messages */        \
    X(READY, "ready")                       /* before ReadyForQuery */                       \
    X(QUERY, "query")                       /* after a query (Q, or Parse/Execute) */        \
    X(ROW_DESCRIPTION, "row-description")   /* before RowDescription */                      \
    X(DATA_ROW, "data-row")                 /* before a DataRow */                           \
    X(COMMAND_COMPLETE, "command-complete") /* before CommandComplete */                     \
    X(IDLE, "idle")                         /* connection idle after ReadyForQuery */        \
    X(CANCEL, "cancel")                     /* after a CancelRequest */                      \
    X(TERMINATE, "terminate")               /* after Terminate */

typedef enum pgf_phase {
#define PGF__PHASE_ENUM(name, str) PGF_PHASE_##name,
    PGF_PHASE_MAP(PGF__PHASE_ENUM)
#undef PGF__PHASE_ENUM
        PGF_PHASE_COUNT
} pgf_phase;

const char *pgf_phase_name(pgf_phase p);
/* "data-row" -> PGF_PHASE_DATA_ROW; -1 if unknown. */
int pgf_phase_parse(const char *s);

#define PGF_ACTION_MAP(X)                                                               \
    X(NONE, "none")                                                                     \
    X(AUTH_FAIL, "auth-fail")   /* FATAL 28P01 for the connection's user, then close */ \
    X(ERROR, "error")           /* ErrorResponse (ERROR or FATAL; FATAL closes) */      \
    X(CLOSE, "close")           /* FIN */                                               \
    X(RESET, "reset")           /* RST (SO_LINGER 0) */                                 \
    X(HALF_CLOSE, "half-close") /* shutdown(2) one direction */                         \
    X(TRUNCATE, "truncate")     /* first N bytes of the message, then close/reset */    \
    X(STALL, "stall")           /* stop reading and writing, forever or for ms */       \
    X(DELAY, "delay")           /* hold output for ms (+ jitter) */                     \
    X(DRIP, "drip")             /* send output in slices with pauses */                 \
    X(BANDWIDTH, "bandwidth")   /* limit output to bytes per second */                  \
    X(GARBAGE, "garbage")       /* send bytes that are not a valid message */           \
    X(REFUSE, "refuse")         /* accept then close; or stop accepting for a window */

typedef enum pgf_action_kind {
#define PGF__ACTION_ENUM(name, str) PGF_ACTION_##name,
    PGF_ACTION_MAP(PGF__ACTION_ENUM)
#undef PGF__ACTION_ENUM
        PGF_ACTION_COUNT
} pgf_action_kind;

const char *pgf_action_name(pgf_action_kind a);
int pgf_action_parse(const char *s);

/* What the server must do. Strings are borrowed from the rule set and
 * valid until the next pgf_fault_decide() on the same connection. */
typedef struct pgf_fault_action {
    pgf_action_kind kind;
    const char *rule;   /* rule name */
    uint64_t event_seq; /* sequence number of the fault-log record */
    /* ERROR (and presets) */
    const char *severity; /* "ERROR", "FATAL", "WARNING" (a WARNING is a NoticeResponse + close) */
    const char *sqlstate;
    const char *message; /* may contain %u (user) / %d (database) already expanded */
    const char *detail;
    const char *hint;
    /* TRUNCATE: keep `bytes` bytes of the hit message (or, when messages > 0,
     * the first `messages` whole messages of the batch), then close, or
     * reset when `reset` is true. CLOSE/HALF_CLOSE use `reset`/`direction`. */
    uint32_t bytes;
    uint32_t messages;
    bool reset;
    char direction; /* HALF_CLOSE: 'r' (stop reading), 'w' (shutdown write) */
    char side;      /* CLOSE/RESET in the proxy: 0 the client, 'u' the upstream, 'b' both */
    /* STALL (ms 0 = forever), DELAY (ms + jitter already drawn), DRIP (slice, ms pause),
     * BANDWIDTH (bytes_per_sec), GARBAGE (bytes), REFUSE (ms window, 0 = this one only) */
    uint32_t ms;
    uint32_t slice;
    uint32_t bytes_per_sec;
} pgf_fault_action;

/* What the server knows about the connection at a decision point. */
typedef struct pgf_fault_ctx {
    uint64_t conn_id; /* 1-based, in accept order */
    const char *user; /* NULL before startup */
    const char *database;
    const char *application_name;
    const char *client_addr; /* "127.0.0.1:40000" or "unix" */
    const char *query;       /* current query text in query phases, else NULL */
    uint8_t msg_type; /* backend message about to be sent / frontend message received, 0 if none */
    uint64_t elapsed_ns; /* since server start (virtual time in sim mode) */
    /* Who the connection is, so faults join a service's own logs (the
     * fault log writes them; docs/introspection.md). */
    int32_t backend_pid;       /* the pid sent in BackendKeyData; 0 before it */
    const char *client_socket; /* unix-socket path the client came through; NULL for TCP */
    uint64_t wall_us;          /* wall clock (pgf_wall_us) at the decision; 0 unknown */
} pgf_fault_ctx;

typedef struct pgf_fault_engine pgf_fault_engine;
typedef struct pgf_fault_rules pgf_fault_rules; /* an immutable, parsed rule set */
typedef struct pgf_fault_conn pgf_fault_conn;   /* per-connection decision state */

pgf_fault_engine *pgf_fault_engine_new(uint64_t seed);
void pgf_fault_engine_free(pgf_fault_engine *e);
uint64_t pgf_fault_engine_seed(const pgf_fault_engine *e);
/* Install a rule set (takes ownership; NULL = no rules). Any thread. */
void pgf_fault_engine_set_rules(pgf_fault_engine *e, pgf_fault_rules *rules);

/* Per connection: created at accept, freed at close (server loop only). */
pgf_fault_conn *pgf_fault_conn_new(pgf_fault_engine *e, uint64_t conn_id);
void pgf_fault_conn_free(pgf_fault_conn *c);

/* Does a fault fire at this phase? Returns true and fills *out (and appends
 * a record to the fault log) when one does; false otherwise. At most one
 * action per call: the first matching rule in file order that fires. */
bool pgf_fault_decide(pgf_fault_engine *e, pgf_fault_conn *c, pgf_phase phase,
                      const pgf_fault_ctx *ctx, pgf_fault_action *out);

#endif
