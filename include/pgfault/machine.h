/* machine.h - the session state machine, written once as data.
 *
 * Three X-macro tables declare the whole lifecycle: the states (with the
 * deadline each one arms), the operations (the states they may start
 * from, the states they must end in, the states they pass through, and
 * whether they preempt an operation in progress), and every legal
 * transition labelled with the operation that causes it. From them come
 * the enums and names below, the validation set_state() uses in
 * session.c, the checker's spec (`pgfault spec --format json|yaml`, format
 * in docs/spec-format.md) and the diagram docs/state-machine.dot.
 *
 * The rules are SQLAlchemy's orm/state_changes.py made checkable: an
 * operation starts only from one of its `from` states while no other
 * operation is in progress (unless it preempts); while it is in progress
 * every state change must be one of its transitions; it completes in one
 * of its `to` states. This file holds no runtime state and no I/O.
 */
#ifndef PGF_MACHINE_H
#define PGF_MACHINE_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"

/* Deadline a state arms when it is entered (see pgf_session_opts). */
typedef enum pgf_sess_deadline {
    PGF_DEADLINE_NONE,
    PGF_DEADLINE_CONNECT, /* whole open: armed on entering the CONNECTING group */
    PGF_DEADLINE_QUERY,   /* a check query in flight */
    PGF_DEADLINE_CANCEL,  /* waiting for a canceled query to end */
    PGF_DEADLINE_CLOSE,   /* closing */
} pgf_sess_deadline;

/* X(NAME, terminal, deadline, group, doc). `group` collects the connect
 * sub-phases under one name for readers (the checker ignores it). The
 * CONNECTING_* sub-phases map libpq's ConnStatusType as PQconnectPoll moves
 * (see pgf__session_phase_of() in session.c). */
#define PGF_SESS_STATE_MAP(X)                                                                     \
    X(NEW, false, NONE, "NEW", "created, no connection yet")                                      \
    X(CONNECTING_SOCKET, false, CONNECT, "CONNECTING",                                            \
      "TCP/unix connect in progress (libpq CONNECTION_STARTED/NEEDED)")                           \
    X(CONNECTING_SSL, false, CONNECT, "CONNECTING",                                               \
      "SSLRequest/GSSENCRequest sent, negotiating (CONNECTION_SSL_STARTUP/GSS_STARTUP)")          \
    X(CONNECTING_STARTUP, false, CONNECT, "CONNECTING",                                           \
      "socket connected, StartupMessage being sent (CONNECTION_MADE)")                            \
    X(CONNECTING_AUTH, false, CONNECT, "CONNECTING",                                              \
      "waiting for the authentication exchange (CONNECTION_AWAITING_RESPONSE)")                   \
    X(CONNECTING_PARAMS, false, CONNECT, "CONNECTING",                                            \
      "authenticated, reading ParameterStatus/BackendKeyData until ReadyForQuery "                \
      "(CONNECTION_AUTH_OK, SETENV, CHECK_*)")                                                    \
    X(READY, false, NONE, "READY", "connected and idle")                                          \
    X(BUSY, false, QUERY, "BUSY", "a check query is in flight")                                   \
    X(CANCELING, false, CANCEL, "CANCELING", "cancel request sent, waiting for the query to end") \
    X(CLOSING, false, CLOSE, "CLOSING",                                                           \
      "close accepted: in-flight operation aborted, connection being finished")                   \
    X(FAILED, false, NONE, "FAILED", "broken (connection already released); must be closed")      \
    X(CLOSED, true, NONE, "CLOSED", "closed; final")

typedef enum pgf_sess_state {
#define PGF__STATE_ENUM(name, term, dl, group, doc) PGF_SESS_##name,
    PGF_SESS_STATE_MAP(PGF__STATE_ENUM)
#undef PGF__STATE_ENUM
        PGF_SESS_STATE_COUNT
} pgf_sess_state;

/* Operations. X(name, preempts, session, doc); `session` is false for the
 * pool's operations (they are declared here too so the checker knows
 * them). Their from/to/during sets are the PGF_SESS_OP_*_MAP rows below. */
#define PGF_SESS_OP_MAP(X)                                                                     \
    X(open, false, true, "connect with PQconnectStartParams/PQconnectPoll")                    \
    X(check, false, true, "health query (default SELECT 1) with PQsendQuery")                  \
    X(cancel, true, true,                                                                      \
      "abort the open or the query in progress (PQcancel for a query); the aborted "           \
      "operation completes once with PGF_ECANCELED")                                           \
    X(close, true, true,                                                                       \
      "always accepted from a non-terminal state; aborts any operation in progress, whose "    \
      "callback fires once with PGF_ECANCELED before the session becomes CLOSED")              \
    X(acquire, false, false, "pool hands out an idle connection (after an optional pre-ping)") \
    X(release, false, false,                                                                   \
      "pool takes a connection back; refused while an operation is in progress")               \
    X(invalidate, true, false, "pool closes a broken or unwanted connection for good")

typedef enum pgf_sess_op {
    PGF_OP_NONE = 0,
#define PGF__OP_ENUM(name, pre, sess, doc) PGF_OP_##name,
    PGF_SESS_OP_MAP(PGF__OP_ENUM)
#undef PGF__OP_ENUM
        PGF_OP_COUNT
} pgf_sess_op;

/* Where each operation may start, end, and what it passes through.
 * X(op, kind, STATE) with kind FROM, TO or DURING; `ANY` in a FROM row
 * means every non-terminal state ("*" in the spec). */
#define PGF_SESS_OP_SETS(X)             \
    X(open, FROM, NEW)                  \
    X(open, TO, READY)                  \
    X(open, TO, FAILED)                 \
    X(open, DURING, CONNECTING_SOCKET)  \
    X(open, DURING, CONNECTING_SSL)     \
    X(open, DURING, CONNECTING_STARTUP) \
    X(open, DURING, CONNECTING_AUTH)    \
    X(open, DURING, CONNECTING_PARAMS)  \
    X(check, FROM, READY)               \
    X(check, TO, READY)                 \
    X(check, TO, FAILED)                \
    X(check, DURING, BUSY)              \
    X(cancel, FROM, CONNECTING_SOCKET)  \
    X(cancel, FROM, CONNECTING_SSL)     \
    X(cancel, FROM, CONNECTING_STARTUP) \
    X(cancel, FROM, CONNECTING_AUTH)    \
    X(cancel, FROM, CONNECTING_PARAMS)  \
    X(cancel, FROM, BUSY)               \
    X(cancel, TO, READY)                \
    X(cancel, TO, FAILED)               \
    X(cancel, DURING, CANCELING)        \
    X(close, FROM, ANY)                 \
    X(close, TO, CLOSED)                \
    X(close, DURING, CLOSING)           \
    X(acquire, FROM, READY)             \
    X(acquire, TO, READY)               \
    X(release, FROM, READY)             \
    X(release, FROM, FAILED)            \
    X(release, TO, READY)               \
    X(release, TO, FAILED)              \
    X(invalidate, FROM, ANY)            \
    X(invalidate, TO, CLOSED)           \
    X(invalidate, DURING, CLOSING)

/* Every legal transition: X(FROM, TO, op, why). Nothing else may happen.
 * The connect sub-phases may skip forward (libpq can do several steps in
 * one poll) and may go back to CONNECTING_SOCKET (libpq tries the next
 * address or host, or retries without SSL under sslmode=prefer). */
#define PGF__SESS_PHASE_ROWS(X, P)                               \
    X(P, READY, open, "ReadyForQuery received")                  \
    X(P, FAILED, open, "connection attempt failed or timed out") \
    X(P, FAILED, cancel, "open canceled")                        \
    X(P, CLOSING, close, "close during open")                    \
    X(P, CLOSING, invalidate, "invalidated during open")

#define PGF_SESS_TRANSITION_MAP(X)                                                              \
    X(NEW, CONNECTING_SOCKET, open, "PQconnectStartParams")                                     \
    X(NEW, CLOSING, close, "close before open")                                                 \
    X(NEW, CLOSING, invalidate, "invalidated before open")                                      \
    X(CONNECTING_SOCKET, CONNECTING_SSL, open, "connected, TLS/GSS negotiation")                \
    X(CONNECTING_SOCKET, CONNECTING_STARTUP, open, "connected")                                 \
    X(CONNECTING_SOCKET, CONNECTING_AUTH, open, "StartupMessage sent")                          \
    X(CONNECTING_SOCKET, CONNECTING_PARAMS, open, "authenticated")                              \
    PGF__SESS_PHASE_ROWS(X, CONNECTING_SOCKET)                                                  \
    X(CONNECTING_SSL, CONNECTING_SOCKET, open, "retry on a new socket")                         \
    X(CONNECTING_SSL, CONNECTING_STARTUP, open, "SSL refused or established")                   \
    X(CONNECTING_SSL, CONNECTING_AUTH, open, "StartupMessage sent")                             \
    X(CONNECTING_SSL, CONNECTING_PARAMS, open, "authenticated")                                 \
    PGF__SESS_PHASE_ROWS(X, CONNECTING_SSL)                                                     \
    X(CONNECTING_STARTUP, CONNECTING_SOCKET, open, "retry on a new socket")                     \
    X(CONNECTING_STARTUP, CONNECTING_SSL, open, "SSLRequest sent")                              \
    X(CONNECTING_STARTUP, CONNECTING_AUTH, open, "StartupMessage sent")                         \
    X(CONNECTING_STARTUP, CONNECTING_PARAMS, open, "authenticated")                             \
    PGF__SESS_PHASE_ROWS(X, CONNECTING_STARTUP)                                                 \
    X(CONNECTING_AUTH, CONNECTING_SOCKET, open, "retry the next address or host")               \
    X(CONNECTING_AUTH, CONNECTING_PARAMS, open, "AuthenticationOk received")                    \
    PGF__SESS_PHASE_ROWS(X, CONNECTING_AUTH)                                                    \
    X(CONNECTING_PARAMS, CONNECTING_SOCKET, open, "retry the next host (target_session_attrs)") \
    PGF__SESS_PHASE_ROWS(X, CONNECTING_PARAMS)                                                  \
    X(READY, BUSY, check, "PQsendQuery")                                                        \
    X(READY, CLOSING, close, "close")                                                           \
    X(READY, CLOSING, invalidate, "invalidate")                                                 \
    X(BUSY, READY, check, "query finished")                                                     \
    X(BUSY, FAILED, check, "connection lost or query timed out")                                \
    X(BUSY, CANCELING, cancel, "cancel request sent")                                           \
    X(BUSY, CLOSING, close, "close during a query")                                             \
    X(BUSY, CLOSING, invalidate, "invalidated during a query")                                  \
    X(CANCELING, READY, cancel, "query ended, connection usable")                               \
    X(CANCELING, FAILED, cancel, "connection lost or cancel timed out")                         \
    X(CANCELING, CLOSING, close, "close while canceling")                                       \
    X(CANCELING, CLOSING, invalidate, "invalidated while canceling")                            \
    X(FAILED, CLOSING, close, "close a broken connection")                                      \
    X(FAILED, CLOSING, invalidate, "invalidate a broken connection")                            \
    X(CLOSING, CLOSED, close, "connection finished")                                            \
    X(CLOSING, CLOSED, invalidate, "connection finished")

const char *pgf_session_state_name(pgf_sess_state s); /* "READY"; "?" if out of range */
const char *pgf_session_state_doc(pgf_sess_state s);
/* "CONNECTING" for the connect sub-phases, else the state's own name. */
const char *pgf_session_state_group(pgf_sess_state s);
bool pgf_session_state_terminal(pgf_sess_state s);
pgf_sess_deadline pgf_session_state_deadline(pgf_sess_state s);
bool pgf_session_state_connecting(pgf_sess_state s);
/* "READY" -> PGF_SESS_READY; -1 if unknown. */
int pgf_session_state_parse(const char *name);

const char *pgf_session_op_name(pgf_sess_op op); /* "close"; "none" for PGF_OP_NONE */
const char *pgf_session_op_doc(pgf_sess_op op);
bool pgf_session_op_preempts(pgf_sess_op op);
int pgf_session_op_parse(const char *name);

/* May `op` start while the session is in state `s` (ignoring other
 * operations in progress)? */
bool pgf_session_op_allowed_from(pgf_sess_op op, pgf_sess_state s);
/* Is `s` one of `op`'s end states? */
bool pgf_session_op_ends_in(pgf_sess_op op, pgf_sess_state s);
/* Is from -> to listed with `op`? */
bool pgf_session_transition_allowed(pgf_sess_state from, pgf_sess_state to, pgf_sess_op op);
/* Why the row exists ("PQsendQuery"); NULL if the transition is not listed. */
const char *pgf_session_transition_doc(pgf_sess_state from, pgf_sess_state to, pgf_sess_op op);

typedef enum pgf_spec_format {
    PGF_SPEC_JSON,
    PGF_SPEC_YAML,
    PGF_SPEC_DOT,
} pgf_spec_format;

/* "json" | "yaml" | "dot" -> format, or PGF_EINVAL. */
int pgf_spec_format_parse(const char *s);
/* The spec in the given format (docs/spec-format.md for json/yaml), NUL
 * terminated, with a final newline. Caller frees *out with free(). */
int pgf_session_spec(pgf_spec_format fmt, char **out) PGF_NODISCARD;

/* The JSON spec as static text, built once (thread-safe); NULL on ENOMEM.
 * The composition roots (the driver, `pgfault check`) parse it with
 * pgf_spec_parse() (spec.h): the checker itself knows no session module. */
const char *pgf_session_spec_json_text(void);

#endif
