/* server_int.h - internals shared by server.c (listeners, lifecycle,
 * registry) and the connection layers (conn_int.h). Not a public header. */
#ifndef PGF_SERVER_INT_H
#define PGF_SERVER_INT_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>

#include "pgfault/auth.h"
#include "pgfault/buf.h"
#include "pgfault/fault.h"
#include "pgfault/proto.h"
#include "pgfault/rng.h"
#include "pgfault/server.h"
#include "sql.h"
#include "pgfault/timer.h"

#define PGF_SERVER_MAX_LISTENERS 16

typedef struct pgf__user {
    char *name;
    char *password;
    pgf_auth_method method;
    bool superuser;
    pgf_scram_secret secret; /* computed once at server creation */
} pgf__user;

typedef struct pgf__conn pgf__conn;

struct pgf_server {
    struct event_base *base;
    bool own_base;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    bool stopped;
    struct event *stop_ev;
    struct event *reap_ev;
    pgf_timer *relisten;
    struct pgf_accept_guard *accept_guard; /* EMFILE back-off, reserve fd */
    pgf_simclock *clock;                   /* non-NULL in sim mode: virtual time */

    struct evconnlistener *listeners[PGF_SERVER_MAX_LISTENERS];
    int nlisteners;
    bool listeners_enabled;
    char addrs[PGF_SERVER_MAX_LISTENERS][256];
    int naddrs;
    int port;
    char unix_path[256];

    /* configuration (owned copies) */
    char **listen;
    int nlisten;
    char *unix_dir;
    int unix_port;
    pgf__user *users;
    int nusers;
    char **databases;
    int ndatabases;
    int max_connections;
    uint64_t seed;
    pgf_fault_engine *faults;
    const pgf_answers *answers; /* borrowed canned answers */
    pgf_server_event_fn on_event;
    void *on_event_arg;
    pgf_server_fault_fn on_fault;
    void *on_fault_arg;
    pgf_server_conn_fn on_conn;
    void *on_conn_arg;
    uint64_t start_ns;

    /* connections: doubly linked, loop thread only */
    pgf__conn *conns;
    pgf__conn *reap; /* closed, waiting to be freed outside their callbacks */
    uint64_t next_conn_id;
    int backends; /* connections past startup that count against max_connections */

    struct {
        atomic_uint_fast64_t accepted, active, closed, auth_ok, auth_failed, queries,
            cancel_requests, canceled, protocol_errors, faults_fired;
        atomic_uint_fast64_t by_phase[3]; /* startup, auth, query */
    } stats;
};

/* conn.c, pump.c */
void pgf__conn_accept(pgf_server *s, int fd, const struct sockaddr *addr, int addrlen,
                      bool is_unix);
/* Close at once (server stop). */
void pgf__conn_abort(pgf__conn *c);
void pgf__conn_free(pgf__conn *c);
/* server.c: the registry. Cancel the query running on the backend with
 * this pid/key, if any. */
void pgf__server_cancel(pgf_server *s, int32_t pid, int32_t key);
/* Move a closed connection to the reap list (freed after this callback). */
void pgf__server_reap(pgf_server *s, pgf__conn *c);
/* Free every connection on the reap list; close every live connection. */
void pgf__server_reap_all(pgf_server *s);
void pgf__server_close_all(pgf_server *s);
/* Stop accepting for ms milliseconds (REFUSE with a window). */
void pgf__server_refuse_for(pgf_server *s, uint32_t ms);
uint64_t pgf__server_elapsed_ns(const pgf_server *s);
/* Now on the server's clock (virtual in sim mode). */
uint64_t pgf__server_now(const pgf_server *s);

#endif
