/* test_session_fixture.h - what the session suites share: a scripted
 * PostgreSQL-ish server on its own thread (127.0.0.1:0) that behaves in one
 * of a few ways per test, an event recorder, loop helpers, fd counting,
 * and a real PostgreSQL 15 started in a temp dir (initdb as `postgres`).
 * Everything started here is stopped by the matching stop function. */
#ifndef PGF_TEST_SESSION_FIXTURE_H
#define PGF_TEST_SESSION_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "pgfault/session.h"

typedef enum fx_mode {
    FX_SILENT,            /* accept, read, never answer (stall in ssl/auth) */
    FX_CLOSE,             /* accept and close at once */
    FX_AUTHOK_STALL,      /* answer AuthenticationOk, then nothing (stall in params) */
    FX_TRUST,             /* full trust handshake; SELECT answered like PG 15 */
    FX_QUERY_STALL,       /* trust handshake; queries never answered */
    FX_AUTH_FAIL,         /* FATAL 28P01 after the startup packet, close */
    FX_TOO_MANY,          /* FATAL 53300 after the startup packet, close */
    FX_CLOSE_AFTER_QUERY, /* trust; close the connection after the first query's answer */
} fx_mode;

typedef struct fx_server fx_server;
/* Start on 127.0.0.1:0; returns NULL on failure. */
fx_server *fx_start(fx_mode mode);
int fx_port(const fx_server *f);
long fx_accepted(fx_server *f);
void fx_stop(fx_server *f);

/* A listening socket whose accept queue is full, so connect() stays in
 * progress (parks libpq in CONNECTING_SOCKET). */
typedef struct fx_blackhole {
    int listen_fd;
    int fillers[8];
    int nfillers;
    int port;
} fx_blackhole;
int fx_blackhole_start(fx_blackhole *b);
void fx_blackhole_stop(fx_blackhole *b);
/* A port on 127.0.0.1 nobody listens on. */
int fx_refused_port(void);

/* Recorded events (copied; thread-safe append). */
typedef struct fx_event {
    pgf_session_event_kind kind;
    uint64_t seq, session_id, op_id;
    pgf_sess_op op;
    pgf_sess_state from, to;
    int err;
    int reason; /* pgf_health_reason or -1 */
} fx_event;

typedef struct fx_recorder {
    pthread_mutex_t mu;
    fx_event ev[512];
    int n;
} fx_recorder;
void fx_recorder_init(fx_recorder *r);
void fx_recorder_destroy(fx_recorder *r);
void fx_record(const pgf_session_event *ev, void *arg); /* pgf_session_recorder_fn */
/* "NEW>CONNECTING_SOCKET CONNECTING_SOCKET>..." of the transitions. */
void fx_transitions(fx_recorder *r, char *buf, size_t len);
int fx_count(fx_recorder *r, pgf_session_event_kind kind, pgf_sess_op op);

/* Callback counter (pgf_session_cb). */
typedef struct fx_calls {
    int n;
    int err;
    pgf_sess_op op;
    pgf_health h;
} fx_calls;
void fx_cb(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg);

/* Run the loop until *flag (int, read atomically) is non-zero or the state
 * of s is `st` (pass -1 / NULL to ignore one), or timeout_ms passes.
 * Returns true when the condition held. */
bool fx_run_until_state(struct event_base *b, pgf_session *s, int st, unsigned timeout_ms);
bool fx_run_until_calls(struct event_base *b, const fx_calls *c, int n, unsigned timeout_ms);

/* Open file descriptors of this process. */
int fx_fd_count(void);
/* Wait (bounded) until no PQcancel helper thread is running. */
bool fx_wait_cancel_threads(unsigned timeout_ms);

/* libpq keywords/values for 127.0.0.1:port (sslmode=disable unless ssl). */
typedef struct fx_conninfo {
    const char *kw[12];
    const char *val[12];
    char port[16];
} fx_conninfo;
void fx_conninfo_tcp(fx_conninfo *ci, int port, const char *user, const char *password,
                     const char *db, const char *sslmode);

/* A real PostgreSQL 15 in a temp dir: unix socket + 127.0.0.1:port.
 * Users: postgres (trust over the socket), u_trust (trust on TCP),
 * u_scram / pw_scram (scram on TCP), u_limited (CONNECTION LIMIT 0). */
typedef struct fx_pg {
    char *dir;
    int port;
    bool running;
} fx_pg;
int fx_pg_start(fx_pg *pg);
void fx_pg_stop(fx_pg *pg);
/* Run SQL as postgres over the socket (psql -c); 0 on success. */
int fx_pg_sql(const fx_pg *pg, const char *sql);

#endif
