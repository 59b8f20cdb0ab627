/* server.h - the fake PostgreSQL server, as a library.
 *
 * One pgf_server listens on TCP addresses and/or a unix-socket directory
 * and speaks the v3 protocol to real clients (libpq, psql, pgbench,
 * psycopg, asyncpg, ...) the way PostgreSQL 15 does, asking the fault
 * engine (fault.h) at each protocol boundary whether to misbehave.
 *
 * It runs on a libevent event_base: either one the caller owns
 * (pgf_server_start() then the caller dispatches the base; sim mode runs
 * client and server on one loop), or on its own thread
 * (pgf_server_start_thread()). All of the server's objects belong to
 * that loop; pgf_server_stop() and pgf_server_get_stats() may be called
 * from any thread.
 *
 * With cfg.threads = N > 1 the server runs N event loops: the base above
 * is loop 0, which accepts every connection and hands connection id k to
 * loop (k - 1) % N; loops 1..N-1 run on threads of their own, started by
 * pgf_server_start() and joined by pgf_server_stop(). The observers below
 * are then called from any of the N loop threads, one call at a time (the
 * server serializes them). Sim mode (a base on a virtual clock) keeps one
 * loop: threads > 1 there is an error. docs/server-threads.md says why one
 * acceptor rather than SO_REUSEPORT.
 *
 * What it does not do: TLS (SSLRequest is answered 'N'), GSSAPI, COPY,
 * replication, real SQL. Queries it does not recognize get a real-looking
 * ERROR (see sql.h).
 */
#ifndef PGF_SERVER_H
#define PGF_SERVER_H

/* The most event loops one server runs (cfg.threads). */
#define PGF_SERVER_MAX_THREADS 64

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"

struct event_base;
struct pgf_fault_engine;
struct pgf_fault_ctx;
struct pgf_fault_action;

typedef enum pgf_auth_method {
    PGF_AUTH_METHOD_TRUST,
    PGF_AUTH_METHOD_PASSWORD,
    PGF_AUTH_METHOD_MD5,
    PGF_AUTH_METHOD_SCRAM,
} pgf_auth_method;

/* "trust", "password", "md5", "scram-sha-256" -> method, or -1. */
int pgf_auth_method_parse(const char *s);
const char *pgf_auth_method_name(pgf_auth_method m);

typedef struct pgf_server_user {
    const char *name;
    const char *password; /* never logged */
    pgf_auth_method method;
    bool superuser; /* is_superuser=on in ParameterStatus */
} pgf_server_user;

/* Called on the loop serving the connection for every fault that fires, after the engine
 * decided and before the server carries the action out. */
typedef void (*pgf_server_fault_fn)(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                                    const struct pgf_fault_action *action);

/* What the server sees of each client, for wire-side checks of any client
 * (a service's pool, a driver): called on the loop serving the connection. */
typedef enum pgf_server_conn_note {
    PGF_CONN_NOTE_OPEN,            /* accepted */
    PGF_CONN_NOTE_STARTUP,         /* the startup packet was accepted (user, application_name) */
    PGF_CONN_NOTE_LOGIN,           /* authentication ended (info->auth_ok) */
    PGF_CONN_NOTE_TXN,             /* the transaction status in ReadyForQuery changed (info->txn) */
    PGF_CONN_NOTE_EARLY_QUERY,     /* a Query sent before the previous one's ReadyForQuery */
    PGF_CONN_NOTE_AFTER_TERMINATE, /* bytes after Terminate */
    PGF_CONN_NOTE_CLOSED,          /* closed (info->why) */
} pgf_server_conn_note;

typedef struct pgf_server_conn_info {
    uint64_t conn_id;
    const char *peer;             /* "127.0.0.1:40000" or "unix" */
    const char *application_name; /* NULL before the startup packet */
    const char *user;
    bool ready;   /* startup finished (ReadyForQuery sent once) */
    bool auth_ok; /* LOGIN: authenticated; false: refused (28P01, 28000, ...) */
    char txn;     /* 'I', 'T' or 'E' */
    const char *why;
} pgf_server_conn_info;

typedef void (*pgf_server_conn_fn)(void *arg, pgf_server_conn_note note,
                                   const pgf_server_conn_info *info);

/* Called on the loop serving the connection for each connection event, the server's view
 * of its clients (`pgfault serve --history`): event is "accepted",
 * "authenticated" (BackendKeyData sent), "query" (ctx->query is the text),
 * "terminated" (the client sent Terminate) or "closed" (cause: why;
 * fault_rule: the last fault that fired on the connection, or NULL). */
typedef void (*pgf_server_event_fn)(void *arg, const char *event, const struct pgf_fault_ctx *ctx,
                                    const char *cause, const char *fault_rule);

typedef struct pgf_server_config {
    const char *const *listen; /* "HOST:PORT" (IPv6 as "[::1]:PORT"); port 0 = any free */
    int nlisten;
    const char *unix_socket_dir;  /* NULL = none; socket is DIR/.s.PGSQL.<port> */
    int unix_port;                /* port number in the socket name; 0 = first TCP port (or 5432) */
    const pgf_server_user *users; /* copied; default: postgres:postgres:scram-sha-256 */
    int nusers;
    const char *const *databases; /* NULL/0 = any database name accepted */
    int ndatabases;
    int max_connections;             /* 0 = unlimited; beyond it: FATAL 53300 */
    uint64_t seed;                   /* for PIDs, keys, salts, nonces (deterministic runs) */
    struct pgf_fault_engine *faults; /* borrowed; NULL = no faults */
    bool quiet;                      /* do not print "listening ..." lines */
    pgf_server_fault_fn on_fault;    /* optional observer of fired faults */
    void *on_fault_arg;
    pgf_server_conn_fn on_conn; /* optional observer of what clients do (wire-side checks) */
    void *on_conn_arg;
    const struct pgf_answers *answers; /* borrowed, outlives the server; NULL = none */
    pgf_server_event_fn on_event;      /* optional observer of connection events */
    void *on_event_arg;
    int threads; /* event loops (0 or 1 = one); at most PGF_SERVER_MAX_THREADS; sim mode: 1 */
} pgf_server_config;

typedef struct pgf_server pgf_server;

/* Create (copies cfg). base NULL: the server makes its own base for
 * pgf_server_start_thread(). With cfg->threads > 1 a caller's base must
 * have been made with libevent's thread support on (pgf_loop_base_new(),
 * loop.h): the worker loops post to it. On error returns a PGF_E* code and writes a
 * message naming the problem into err. */
int pgf_server_new(const pgf_server_config *cfg, struct event_base *base, pgf_server **out,
                   char *err, size_t errlen) PGF_NODISCARD;
/* Bind and listen on every configured address (on the caller's base). */
int pgf_server_start(pgf_server *s, char *err, size_t errlen) PGF_NODISCARD;
/* Bind, then run the server's own base on a new thread. */
int pgf_server_start_thread(pgf_server *s, char *err, size_t errlen) PGF_NODISCARD;
/* Stop listening, close every connection, and (own thread) join it.
 * Safe from any thread; idempotent. */
void pgf_server_stop(pgf_server *s);
/* Frees everything; stops first if needed. NULL is a no-op. */
void pgf_server_free(pgf_server *s);

/* Stop (up=false) or resume accepting new connections; open ones are
 * untouched (the control API's `down`/`up`). Loop thread. */
int pgf_server_set_listening(pgf_server *s, bool up);
bool pgf_server_listening(const pgf_server *s);

/* Listener addresses after start, e.g. "tcp 127.0.0.1:54321" and
 * "unix /tmp/x/.s.PGSQL.54321". Returns the count; fills up to n. */
int pgf_server_addresses(const pgf_server *s, char (*out)[256], int n);
/* The first TCP port actually bound (useful with port 0), or 0. */
int pgf_server_port(const pgf_server *s);

typedef struct pgf_server_stats {
    uint64_t accepted; /* connections accepted */
    uint64_t active;   /* open right now */
    uint64_t closed;
    uint64_t auth_ok;
    uint64_t auth_failed;
    uint64_t queries;
    uint64_t cancel_requests;
    uint64_t canceled; /* queries actually canceled */
    uint64_t protocol_errors;
    uint64_t faults_fired;
    uint64_t by_phase[3]; /* open connections in startup, authentication, query phases */
    int threads;          /* event loops */
    uint64_t loop_accepted[PGF_SERVER_MAX_THREADS]; /* connections each loop was handed */
} pgf_server_stats;

/* Counters are atomics; any thread. */
void pgf_server_get_stats(const pgf_server *s, pgf_server_stats *out);

#endif
