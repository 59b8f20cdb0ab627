/* conn_int.h - one client connection of the fake server, shared by its
 * layers (not a public header):
 *   pump.c     the byte pump: output chunk queue, flush, read, close, free;
 *   conn.c     the connection's life: accept, state, fault points, framing
 *              and dispatch by state, the authentication deadline;
 *   startup.c  startup packet, SSL/GSS negotiation, authentication;
 *   query.c    simple and extended query, pg_sleep, cancel.
 * A connection is only touched on its loop's thread (c->loop, one of the
 * server's N loops). Closing removes its events and moves it to its loop's
 * reap list (server.c); it is freed after the current callback returns,
 * never inside it.
 */
#ifndef PGF_CONN_INT_H
#define PGF_CONN_INT_H

#include "server_int.h"

/* The connection's states, listed once: name (logs), the phase group its
 * /stats counter is kept under (-1: none), and the states it may move to.
 * pgf__conn_set_state() is the only writer of c->state; it checks the move
 * against this table and keeps the per-phase counters, so no path (say,
 * MD5) can change state without them. */
#define PGF_CONN_STATES(X)                                                                        \
    /* waiting for SSLRequest/GSSENCRequest/StartupMessage/CancelRequest */                       \
    X(ST_STARTUP, "startup", 0,                                                                   \
      S(ST_STARTUP) | S(ST_AUTH_PASSWORD) | S(ST_AUTH_MD5) | S(ST_AUTH_SASL_INIT) | S(ST_READY) | \
          S(ST_CLOSED))                                                                           \
    /* sent R 3, waiting for p */                                                                 \
    X(ST_AUTH_PASSWORD, "auth", 1, S(ST_READY) | S(ST_CLOSED))                                    \
    /* sent R 5, waiting for p */                                                                 \
    X(ST_AUTH_MD5, "auth", 1, S(ST_READY) | S(ST_CLOSED))                                         \
    /* sent R 10, waiting for SASLInitialResponse */                                              \
    X(ST_AUTH_SASL_INIT, "auth", 1, S(ST_AUTH_SASL_FIN) | S(ST_CLOSED))                           \
    /* sent R 11, waiting for SASLResponse */                                                     \
    X(ST_AUTH_SASL_FIN, "auth", 1, S(ST_READY) | S(ST_CLOSED))                                    \
    /* processing queries */                                                                      \
    X(ST_READY, "query", 2, S(ST_CLOSED))                                                         \
    X(ST_CLOSED, "closed", -1, 0)

enum conn_state {
#define X(st, name, group, next) st,
    PGF_CONN_STATES(X)
#undef X
};

enum close_kind { CK_NONE = 0, CK_FIN, CK_RST, CK_SHUT_WR };

typedef struct chunk {
    struct chunk *next;
    uint64_t not_before; /* monotonic ns; 0 = now */
    enum close_kind close;
    size_t off;
    pgf_buf data;
} chunk;

typedef struct prepared {
    char *name;
    char *query;
    uint16_t nparams;
    uint16_t ntypes; /* declared in Parse (may be fewer than nparams) */
    uint32_t *types;
} prepared;

typedef struct portal {
    char *name;
    char *query;
    int nparams;
    char **params;
    uint16_t nformats;
    int16_t *formats; /* result formats */
} portal;

struct pgf__conn {
    pgf_server *srv;
    pgf__loop *loop; /* the loop that serves it (server_int.h); only its thread touches c */
    pgf__conn *prev, *next;
    uint64_t id;
    int fd;
    bool is_unix;
    bool key_sent; /* BackendKeyData queued: fault records carry the pid */
    char peer[64];
    char last_fault[64]; /* rule name of the last fault fired here ("" none) */
    enum conn_state state;
    bool ssl_answered;
    bool counted_backend;
    struct event *rev, *wev;
    pgf_timer *resume_timer; /* due now: continue a Query, process input */
    pgf_timer *wtimer, *stall_timer, *sleep_timer, *deadline;
    pgf_timer *idle_timer; /* idle_session_timeout, idle_in_transaction_session_timeout */

    pgf_buf in;
    chunk *out_head, *out_tail;
    bool out_closed; /* a close marker is queued: nothing more may be queued */
    bool ignore_input;
    size_t out_bytes; /* queued, not yet written */
    bool out_blocked; /* out_bytes went over PGF_CONN_OUT_HIGH: input waits */
    bool reading;     /* rev is added */
    bool peer_eof;    /* the client closed its side: finish, then close */
    /* wire-side notes (pgf__conn_note) */
    bool terminated, ready_once, noted_after_term;
    char last_txn;
    size_t in_next; /* offset of the first input byte not yet dispatched */

    /* startup */
    char *user, *database, *app;
    const pgf__user *u; /* NULL for an unknown role */
    uint8_t md5_salt[4];
    pgf_scram_state *scram; /* only during a SCRAM exchange */
    int32_t pid, key;
    pgf_sql_session sql;
    pgf_rng rng;

    /* queries */
    char *q_text;            /* simple query being executed */
    uint32_t *q_off, *q_len; /* statements of q_text (a message is < 4 GB) */
    int q_n, q_next;
    bool extended_sleep;       /* a sleeping statement came from Execute */
    pgf_sql_result *sleep_res; /* the pg_sleep statement in progress, allocated while sleeping */
    bool busy;                 /* a pg_sleep is running: input waits */
    bool running;              /* a simple Query yielded between statements */
    bool skip_to_sync;
    prepared *stmts;
    int nstmts;
    portal *portals;
    int nportals;
    /* The statement being executed. Owned copies, never pointers into a
     * portal: Close or a new Bind may free the portal while a later message
     * (a simple Query before Sync, a fault point) still uses them. */
    char *exec_query;     /* Execute's copy of its portal's query */
    int16_t *cur_formats; /* result formats of the executing portal; NULL = text */
    uint16_t cur_nformats;
    const char *cur_query; /* q_text or exec_query, for fault filters */

    /* faults */
    pgf_fault_conn *fc;
    bool stalled;
    uint32_t drip_slice, drip_ms;
    int trunc_msgs; /* >0: whole messages still allowed before closing */
    bool trunc_reset;
    long trunc_next_bytes; /* >=0: truncate the next queued message to this */
};

/* Limits, as PostgreSQL 15 has them (docs/proto.md, "Limits"). */
/* Largest message before authentication is done (PG_MAX_AUTH_TOKEN_LENGTH);
 * the startup packet has its own cap, PGF_PROTO_MAX_STARTUP_LEN. */
#define PGF_CONN_MAX_AUTH_MSG_LEN 65535u
/* Largest Sync/Flush/Terminate/Close/Describe/Execute/CopyDone/CopyFail
 * (PQ_SMALL_MESSAGE_LIMIT); Query/Parse/Bind/CopyData/FunctionCall may be up
 * to PGF_PROTO_MAX_MSG_LEN. */
#define PGF_CONN_MAX_SMALL_MSG_LEN 10000u
/* Output backpressure: above HIGH bytes queued for the client the server
 * stops processing and reading that client (as PostgreSQL's blocking send
 * does); below LOW it goes on. */
#define PGF_CONN_OUT_HIGH (1024u * 1024u)
#define PGF_CONN_OUT_LOW  (256u * 1024u)
/* Unprocessed input kept while the connection cannot process it (busy,
 * stalled, blocked on output) before the server stops reading it. */
#define PGF_CONN_IN_PAUSE (256u * 1024u)
/* Statements of one simple Query run per loop turn: a Query with a million
 * statements must not hold up the other connections. */
#define PGF_CONN_STMT_BATCH 64

/* Result of a fault point: GO when the normal flow continues (the message,
 * if any, was queued), STOP when the fault replaced it. */
enum { GO = 0, STOP = 1 };

/* conn.c */
const char *pgf__conn_state_name(enum conn_state st);
/* The one place a connection changes state (keeps the per-phase stats). */
void pgf__conn_set_state(pgf__conn *c, enum conn_state st);
void pgf__conn_process_input(pgf__conn *c);
/* Continue later from the loop (a yielded Query, input after backpressure);
 * never re-entered from inside a handler. */
void pgf__conn_resume_later(pgf__conn *c);
void pgf__conn_send_error(pgf__conn *c, const char *severity, const char *sqlstate, const char *msg,
                          const char *detail, const char *hint);
/* FATAL error, then close after it is sent. */
void pgf__conn_send_fatal(pgf__conn *c, const char *sqlstate, const char *msg);
void pgf__conn_auth_failed(pgf__conn *c);
/* Tell the server's on_conn observer (if any) what this client did. */
void pgf__conn_note(pgf__conn *c, pgf_server_conn_note note, bool auth_ok, const char *why);
/* Ask the fault engine at phase ph; msg (may be NULL) is queued on GO. */
int pgf__conn_fault_point(pgf__conn *c, pgf_phase ph, uint8_t type, const uint8_t *msg, size_t len);
/* Send a built message through the fault point ph. */
int pgf__conn_send_at(pgf__conn *c, pgf_phase ph, pgf_buf *b);

/* pump.c */
void pgf__conn_queue_raw(pgf__conn *c, const uint8_t *p, size_t n);
void pgf__conn_queue_close(pgf__conn *c, enum close_kind how);
void pgf__conn_queue_delay(pgf__conn *c, uint32_t ms);
/* Queue one complete backend message, honouring a pending truncation. */
void pgf__conn_queue_msg(pgf__conn *c, const uint8_t *p, size_t n);
void pgf__conn_queue_buf(pgf__conn *c, pgf_buf *b);
void pgf__conn_flush(pgf__conn *c);
/* After ReadyForQuery: arm the idle timeout the session's settings ask for
 * (idle_in_transaction_session_timeout in a block, idle_session_timeout
 * outside one); the next message disarms it. */
void pgf__conn_arm_idle_timeout(pgf__conn *c);
void pgf__conn_close(pgf__conn *c, enum close_kind how, const char *why);
/* Report a connection event to the server's observer, if any. */
void pgf__conn_event(pgf__conn *c, const char *event, const char *cause);
void pgf__conn_on_read(evutil_socket_t fd, short what, void *arg);
void pgf__conn_on_write(evutil_socket_t fd, short what, void *arg);
void pgf__conn_on_wtimer(void *arg);
/* Add or remove the read event as the connection's state wants. */
void pgf__conn_update_reading(pgf__conn *c);

/* startup.c */
void pgf__conn_handle_startup(pgf__conn *c, const pgf_fe_msg *m);
void pgf__conn_handle_password(pgf__conn *c, const pgf_fe_msg *m);
void pgf__conn_handle_sasl(pgf__conn *c, const pgf_fe_msg *m);

/* query.c */
/* A message in the query cycle (state ST_READY). */
void pgf__conn_handle_ready(pgf__conn *c, const pgf_fe_msg *m);
void pgf__conn_on_sleep_done(void *arg);
/* Run the next batch of a yielded simple Query. */
void pgf__conn_query_continue(pgf__conn *c);
/* Cancel the running statement of c (its key was checked). */
void pgf__conn_cancel(pgf__conn *c);

#endif
