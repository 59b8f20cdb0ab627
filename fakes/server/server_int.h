/* server_int.h - internals shared by server.c (listeners, lifecycle,
 * registry, loops) and the connection layers (conn_int.h). Not a public
 * header.
 *
 * Loops: a server has 1..PGF_SERVER_MAX_THREADS event loops (pgf__loop).
 * Loop 0 runs on the server's base (the caller's, or the server's own
 * thread) and owns the listeners, the accept guard, the refuse window and
 * the control API's listening switch; it is also a worker. Loops 1..N-1
 * run on their own bases and threads. Loop 0 accepts every connection,
 * numbers it (the connection id, in accept order) and hands it to loop
 * (id - 1) % N through that loop's inbox: a connection's loop is a function
 * of its id, and everything about a connection (its events, its fault
 * state, its cancel lookup) belongs to that loop alone. Cross-loop
 * requests (a handed-off socket, a CancelRequest for another loop's
 * backend, a refuse window asked for by a fault on a worker) go through an
 * inbox or an event_active, never by touching another loop's objects. */
#ifndef PGF_SERVER_INT_H
#define PGF_SERVER_INT_H

#include <event2/event.h>
#include <event2/listener.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>

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

/* What one loop is handed by another (loop 0's acceptor, a cancel). */
typedef struct pgf__inbox_item {
    struct pgf__inbox_item *next;
    enum { PGF__INBOX_CONN, PGF__INBOX_CANCEL } kind;
    int fd; /* CONN: the accepted socket, owned by the item until taken */
    bool is_unix;
    uint64_t id;
    struct sockaddr_storage addr;
    int addrlen;
    int32_t pid, key; /* CANCEL */
} pgf__inbox_item;

typedef struct pgf__loop {
    pgf_server *srv;
    int index;
    struct event_base *base; /* loop 0: the server's base; others: their own */
    pthread_t thread;        /* loops 1..N-1 */
    bool thread_started;
    bool stopped;           /* loop thread only */
    struct event *stop_ev;  /* loops 1..N-1: close everything and leave the loop */
    struct event *reap_ev;  /* free the reap list outside the callbacks */
    struct event *inbox_ev; /* take what other loops posted */
    pthread_mutex_t inbox_mu;
    bool inbox_mu_ready;
    pgf__inbox_item *inbox, *inbox_tail;
    /* connections: doubly linked, this loop's thread only */
    pgf__conn *conns;
    pgf__conn *reap; /* closed, waiting to be freed outside their callbacks */
} pgf__loop;

struct pgf_server {
    struct event_base *base; /* loop 0's */
    bool own_base;
    pthread_t thread;
    bool thread_started;
    atomic_bool stopping;
    bool stopped;
    struct event *stop_ev;
    struct event *refuse_ev; /* loop 0: a worker asked for a refuse window */
    atomic_uint refuse_ms;   /* the longest window asked for since the last refuse_ev */
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

    /* the loops: [0] on the server's base, [1..nloops-1] on their threads */
    pgf__loop *loops;
    int nloops;
    /* observers (on_conn, on_event, on_fault) are called under this lock
     * when there are several loops, so an observer sees one call at a time */
    pthread_mutex_t obs_mu;
    uint64_t next_conn_id; /* loop 0 (the acceptor) only */
    atomic_int backends;   /* connections past startup that count against max_connections */

    struct {
        atomic_uint_fast64_t accepted, active, closed, auth_ok, auth_failed, queries,
            cancel_requests, canceled, protocol_errors, faults_fired;
        atomic_uint_fast64_t by_phase[3]; /* startup, auth, query */
        atomic_uint_fast64_t loop_accepted[PGF_SERVER_MAX_THREADS];
    } stats;
};

/* conn.c, pump.c */
/* Loop 0 (the acceptor): number a new connection and start it on its loop
 * (at once when that is loop 0, else through the loop's inbox). */
void pgf__conn_accept(pgf_server *s, int fd, const struct sockaddr *addr, int addrlen,
                      bool is_unix);
/* On the connection's own loop: set it up and run the accept fault point. */
void pgf__conn_start(pgf__loop *l, int fd, const struct sockaddr *addr, int addrlen, bool is_unix,
                     uint64_t id);
/* Close at once (server stop). */
void pgf__conn_abort(pgf__conn *c);
void pgf__conn_free(pgf__conn *c);
/* server.c: the registry. Cancel the query running on the backend with
 * this pid/key, if any (on its own loop: from loop l directly when it is
 * l's, else through its loop's inbox). */
void pgf__server_cancel(pgf__loop *l, int32_t pid, int32_t key);
/* The loop that serves connection id: (id - 1) % nloops. */
pgf__loop *pgf__server_loop_of(pgf_server *s, uint64_t id);
/* Post a handed-off connection to its loop (takes fd). */
void pgf__server_hand_off(pgf__loop *to, int fd, const struct sockaddr *addr, int addrlen,
                          bool is_unix, uint64_t id);
/* Move a closed connection to its loop's reap list (freed after this callback). */
void pgf__server_reap(pgf__conn *c);
/* Free every connection on the loop's reap list; close every live connection. */
void pgf__server_reap_all(pgf__loop *l);
void pgf__server_close_all(pgf__loop *l);
/* Stop accepting for ms milliseconds (REFUSE with a window); from any loop. */
void pgf__server_refuse_for(pgf__loop *from, uint32_t ms);
/* Reserve a backend slot under max_connections (exact across loops), or
 * false when the server is full; release it with pgf__server_release_backend. */
bool pgf__server_reserve_backend(pgf_server *s);
void pgf__server_release_backend(pgf_server *s);
/* Call the observers, one call at a time across loops. */
void pgf__server_obs_lock(pgf_server *s);
void pgf__server_obs_unlock(pgf_server *s);
uint64_t pgf__server_elapsed_ns(const pgf_server *s);
/* Now on the server's clock (virtual in sim mode). */
uint64_t pgf__server_now(const pgf_server *s);
/* Wall time for SQL's now() (µs since the Unix epoch); in sim mode
 * 2026-01-01 00:00 UTC plus the virtual clock. */
int64_t pgf__server_wall_us(const pgf_server *s);

#endif
