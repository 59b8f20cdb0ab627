/* server.c - the fake server's lifecycle: configuration, listeners (TCP
 * and unix socket), its own thread, the worker loops (server_int.h: one
 * acceptor on loop 0 hands connections to N loops), stop, statistics, and
 * the connection registry (live lists, cancel lookup, reap lists, the
 * max_connections count). Connections themselves live in conn.c and its
 * layers (conn_int.h). */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pgfault/accept_guard.h"
#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "pgfault/loop.h"
#include "pgfault/net.h"
#include "conn_int.h"

int pgf_auth_method_parse(const char *s)
{
    if (strcmp(s, "trust") == 0)
        return PGF_AUTH_METHOD_TRUST;
    if (strcmp(s, "password") == 0)
        return PGF_AUTH_METHOD_PASSWORD;
    if (strcmp(s, "md5") == 0)
        return PGF_AUTH_METHOD_MD5;
    if (strcmp(s, "scram-sha-256") == 0 || strcmp(s, "scram") == 0)
        return PGF_AUTH_METHOD_SCRAM;
    return -1;
}

const char *pgf_auth_method_name(pgf_auth_method m)
{
    switch (m) {
    case PGF_AUTH_METHOD_TRUST:
        return "trust";
    case PGF_AUTH_METHOD_PASSWORD:
        return "password";
    case PGF_AUTH_METHOD_MD5:
        return "md5";
    case PGF_AUTH_METHOD_SCRAM:
        return "scram-sha-256";
    }
    return "?";
}

uint64_t pgf__server_now(const pgf_server *s)
{
    return s->clock != NULL ? pgf_simclock_now(s->clock) : pgf_now_ns();
}

int64_t pgf__server_wall_us(const pgf_server *s)
{
    if (s->clock != NULL) /* sim: a fixed day plus the virtual clock, the same in every replay */
        return (int64_t)1767225600 * 1000000 + (int64_t)(pgf_simclock_now(s->clock) / 1000);
    return (int64_t)pgf_wall_us();
}

uint64_t pgf__server_elapsed_ns(const pgf_server *s)
{
    return pgf__server_now(s) - s->start_ns;
}

static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf__server_reap_all(arg);
}

/* Take everything from the loop's inbox (under its lock), then act on it
 * without the lock. */
static pgf__inbox_item *inbox_take(pgf__loop *l)
{
    pthread_mutex_lock(&l->inbox_mu);
    pgf__inbox_item *it = l->inbox;
    l->inbox = l->inbox_tail = NULL;
    pthread_mutex_unlock(&l->inbox_mu);
    return it;
}

static void cancel_here(pgf__loop *l, int32_t pid, int32_t key);

static void on_inbox(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf__loop *l = arg;
    pgf_sim_activity();
    for (pgf__inbox_item *it = inbox_take(l), *next; it != NULL; it = next) {
        next = it->next;
        if (it->kind == PGF__INBOX_CONN) {
            if (l->stopped)
                close(it->fd);
            else
                pgf__conn_start(l, it->fd, it->addrlen ? (struct sockaddr *)&it->addr : NULL,
                                it->addrlen, it->is_unix, it->id);
        } else if (!l->stopped) {
            cancel_here(l, it->pid, it->key);
        }
        free(it);
    }
}

/* Post an item to loop `to` and wake it. */
static void inbox_post(pgf__loop *to, pgf__inbox_item *it)
{
    it->next = NULL;
    pthread_mutex_lock(&to->inbox_mu);
    if (to->inbox_tail != NULL)
        to->inbox_tail->next = it;
    else
        to->inbox = it;
    to->inbox_tail = it;
    pthread_mutex_unlock(&to->inbox_mu);
    event_active(to->inbox_ev, EV_TIMEOUT, 0);
}

void pgf__server_hand_off(pgf__loop *to, int fd, const struct sockaddr *addr, int addrlen,
                          bool is_unix, uint64_t id)
{
    pgf__inbox_item *it = calloc(1, sizeof *it);
    if (it == NULL) {
        close(fd);
        return;
    }
    it->kind = PGF__INBOX_CONN;
    it->fd = fd;
    it->is_unix = is_unix;
    it->id = id;
    if (addr != NULL && addrlen > 0 && (size_t)addrlen <= sizeof it->addr) {
        memcpy(&it->addr, addr, (size_t)addrlen);
        it->addrlen = addrlen;
    }
    inbox_post(to, it);
}

pgf__loop *pgf__server_loop_of(pgf_server *s, uint64_t id)
{
    return &s->loops[id == 0 ? 0 : (id - 1) % (uint64_t)s->nloops];
}

void pgf__server_obs_lock(pgf_server *s)
{
    if (s->nloops > 1)
        pthread_mutex_lock(&s->obs_mu);
}

void pgf__server_obs_unlock(pgf_server *s)
{
    if (s->nloops > 1)
        pthread_mutex_unlock(&s->obs_mu);
}

bool pgf__server_reserve_backend(pgf_server *s)
{
    /* One compare-and-swap: two loops cannot both take the last slot. */
    int n = atomic_load(&s->backends);
    do {
        if (s->max_connections > 0 && n >= s->max_connections)
            return false;
    } while (!atomic_compare_exchange_weak(&s->backends, &n, n + 1));
    return true;
}

void pgf__server_release_backend(pgf_server *s)
{
    atomic_fetch_sub(&s->backends, 1);
}

/* The accept guard may enable the listeners again after its back-off
 * unless the server was told to stop listening. */
static bool may_listen(void *arg)
{
    pgf_server *s = arg;
    return s->listeners_enabled && !s->stopped;
}

static void on_relisten(void *arg)
{
    pgf_server *s = arg;
    for (int i = 0; i < s->nlisteners; i++)
        evconnlistener_enable(s->listeners[i]);
    s->listeners_enabled = true;
}

static void refuse_now(pgf_server *s, uint32_t ms)
{
    if (s->stopped)
        return;
    for (int i = 0; i < s->nlisteners; i++)
        evconnlistener_disable(s->listeners[i]);
    s->listeners_enabled = false;
    pgf_timer_arm(s->relisten, PGF_MS_NS(ms));
}

static void on_refuse(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_server *s = arg;
    uint32_t ms = atomic_exchange(&s->refuse_ms, 0);
    if (ms > 0)
        refuse_now(s, ms);
}

void pgf__server_refuse_for(pgf__loop *from, uint32_t ms)
{
    pgf_server *s = from->srv;
    if (from->index == 0) {
        refuse_now(s, ms);
        return;
    }
    /* The listeners are loop 0's: ask it (the longest window wins). */
    unsigned cur = atomic_load(&s->refuse_ms);
    while (cur < ms && !atomic_compare_exchange_weak(&s->refuse_ms, &cur, ms))
        ;
    event_active(s->refuse_ev, EV_TIMEOUT, 0);
}

/* Close every connection of loop l and free them (on l's thread). */
static void loop_shutdown(pgf__loop *l)
{
    if (l->stopped)
        return;
    l->stopped = true;
    pgf__server_close_all(l);
    pgf__server_reap_all(l);
    /* connections handed to l that it never started */
    for (pgf__inbox_item *it = inbox_take(l), *next; it != NULL; it = next) {
        next = it->next;
        if (it->kind == PGF__INBOX_CONN)
            close(it->fd);
        free(it);
    }
}

static void on_loop_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf__loop *l = arg;
    loop_shutdown(l);
    event_base_loopexit(l->base, NULL);
}

static void *loop_thread(void *arg)
{
    pgf__loop *l = arg;
    /* No listener here: an idle worker loop must wait for its inbox. */
    event_base_loop(l->base, EVLOOP_NO_EXIT_ON_EMPTY);
    /* a stop that raced the start: nothing may stay open */
    loop_shutdown(l);
    return NULL;
}

/* Loops 1..N-1: close their connections, leave their loops, join them. */
static void stop_workers(pgf_server *s)
{
    for (int i = 1; i < s->nloops; i++) {
        pgf__loop *l = &s->loops[i];
        if (!l->thread_started)
            continue;
        event_active(l->stop_ev, EV_TIMEOUT, 0);
        pthread_join(l->thread, NULL);
        l->thread_started = false;
    }
}

static void do_stop(pgf_server *s)
{
    if (s->stopped)
        return;
    s->stopped = true;
    for (int i = 0; i < s->nlisteners; i++) {
        pgf_accept_guard_forget(s->accept_guard, s->listeners[i]);
        evconnlistener_free(s->listeners[i]);
        s->listeners[i] = NULL;
    }
    s->nlisteners = 0;
    if (s->unix_path[0] != '\0')
        unlink(s->unix_path);
    /* Nothing more is handed out: stop the workers, then loop 0 (loops
     * is NULL only when pgf_server_new ran out of memory). */
    if (s->loops != NULL) {
        stop_workers(s);
        loop_shutdown(&s->loops[0]);
    }
    if (s->own_base)
        event_base_loopexit(s->base, NULL);
}

static void on_stop(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    do_stop(arg);
}

static char *xstrdup(const char *s, bool *oom)
{
    char *p = strdup(s ? s : "");
    if (p == NULL)
        *oom = true;
    return p;
}

int pgf_server_new(const pgf_server_config *cfg, struct event_base *base, pgf_server **out,
                   char *err, size_t errlen)
{
    *out = NULL;
    /* Parse the recorded introspection answers now (once per process), not
     * on the first connection that needs them: no client pays for it. */
    (void)pgf__catalog_count();
    if (pgf_loop_threads_init() != 0) {
        snprintf(err, errlen, "cannot turn on libevent's thread support");
        return PGF_EINTERNAL;
    }
    pgf_server *s = calloc(1, sizeof *s);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    bool oom = false;
    s->seed = cfg->seed;
    s->faults = cfg->faults;
    s->on_fault = cfg->on_fault;
    s->answers = cfg->answers;
    s->on_event = cfg->on_event;
    s->on_event_arg = cfg->on_event_arg;
    s->on_fault_arg = cfg->on_fault_arg;
    s->on_conn = cfg->on_conn;
    s->on_conn_arg = cfg->on_conn_arg;
    s->max_connections = cfg->max_connections;
    s->unix_port = cfg->unix_port;
    s->nloops = cfg->threads > 1 ? cfg->threads : 1;
    if (cfg->threads > PGF_SERVER_MAX_THREADS || cfg->threads < 0) {
        snprintf(err, errlen, "threads %d: expected 1..%d", cfg->threads, PGF_SERVER_MAX_THREADS);
        free(s);
        return PGF_EINVAL;
    }
    if (s->nloops > 1 && base != NULL && pgf_simclock_of(base) != NULL) {
        snprintf(err, errlen,
                 "threads %d: sim mode keeps one event loop (its virtual clock is one loop's)",
                 s->nloops);
        free(s);
        return PGF_EINVAL;
    }
    pthread_mutex_init(&s->obs_mu, NULL);
    if (cfg->nlisten > PGF_SERVER_MAX_LISTENERS - 1) {
        snprintf(err, errlen, "too many --listen addresses (at most %d)",
                 PGF_SERVER_MAX_LISTENERS - 1);
        free(s);
        return PGF_EINVAL;
    }
    s->listen = calloc((size_t)cfg->nlisten + 1, sizeof *s->listen);
    oom |= s->listen == NULL;
    for (int i = 0; i < cfg->nlisten && !oom; i++)
        s->listen[s->nlisten++] = xstrdup(cfg->listen[i], &oom);
    if (cfg->unix_socket_dir != NULL)
        s->unix_dir = xstrdup(cfg->unix_socket_dir, &oom);
    static const pgf_server_user default_user = {"postgres", "postgres", PGF_AUTH_METHOD_SCRAM,
                                                 true};
    const pgf_server_user *users = cfg->nusers > 0 ? cfg->users : &default_user;
    int nusers = cfg->nusers > 0 ? cfg->nusers : 1;
    s->users = calloc((size_t)nusers, sizeof *s->users);
    oom |= s->users == NULL;
    for (int i = 0; i < nusers && !oom; i++) {
        pgf__user *u = &s->users[s->nusers++];
        u->name = xstrdup(users[i].name, &oom);
        u->password = xstrdup(users[i].password, &oom);
        u->method = users[i].method;
        u->superuser = users[i].superuser;
        if (oom)
            break;
        /* The verifier is computed once per user: PBKDF2 is the expensive
         * part of SCRAM and must not run per connection. */
        pgf_rng r;
        pgf_rng_init(&r, s->seed, pgf_hash_str(u->name), 0x73616c74);
        uint8_t salt[PGF_SCRAM_SALT_LEN];
        for (size_t k = 0; k < sizeof salt; k++)
            salt[k] = (uint8_t)pgf_rng_next(&r);
        if (pgf_scram_secret_make(u->password, salt, sizeof salt, PGF_SCRAM_ITERATIONS,
                                  &u->secret) != 0) {
            snprintf(err, errlen, "cannot derive the SCRAM verifier for user '%s'", u->name);
            pgf_server_free(s);
            return PGF_EINTERNAL;
        }
    }
    if (cfg->ndatabases > 0 && !oom) {
        s->databases = calloc((size_t)cfg->ndatabases, sizeof *s->databases);
        oom |= s->databases == NULL;
        for (int i = 0; i < cfg->ndatabases && !oom; i++)
            s->databases[s->ndatabases++] = xstrdup(cfg->databases[i], &oom);
    }
    if (!oom) {
        if (base == NULL) {
            s->base = event_base_new();
            s->own_base = true;
        } else {
            s->base = base;
        }
        oom |= s->base == NULL;
    }
    if (!oom) {
        s->stop_ev = event_new(s->base, -1, 0, on_stop, s);
        s->refuse_ev = event_new(s->base, -1, 0, on_refuse, s);
        s->relisten = pgf_timer_new(s->base, on_relisten, s);
        s->accept_guard = pgf_accept_guard_new(s->base, "[server]", may_listen, s);
        s->clock = pgf_simclock_of(s->base);
        s->start_ns = pgf__server_now(s);
        oom |= !s->stop_ev || !s->refuse_ev || !s->relisten || !s->accept_guard;
    }
    if (!oom) {
        s->loops = calloc((size_t)s->nloops, sizeof *s->loops);
        oom |= s->loops == NULL;
    }
    for (int i = 0; !oom && i < s->nloops; i++) {
        pgf__loop *l = &s->loops[i];
        l->srv = s;
        l->index = i;
        pthread_mutex_init(&l->inbox_mu, NULL);
        l->inbox_mu_ready = true;
        l->base = i == 0 ? s->base : pgf_loop_base_new();
        oom |= l->base == NULL;
        if (oom)
            break;
        l->reap_ev = event_new(l->base, -1, 0, on_reap, l);
        l->inbox_ev = event_new(l->base, -1, 0, on_inbox, l);
        if (i > 0)
            l->stop_ev = event_new(l->base, -1, 0, on_loop_stop, l);
        oom |= !l->reap_ev || !l->inbox_ev || (i > 0 && !l->stop_ev);
    }
    if (oom) {
        snprintf(err, errlen, "out of memory");
        pgf_server_free(s);
        return PGF_ENOMEM;
    }
    *out = s;
    return 0;
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr, int len,
                      void *arg)
{
    (void)l;
    pgf_server *s = arg;
    pgf_sim_activity();
    bool is_unix = addr == NULL || addr->sa_family == AF_UNIX;
    /* The listeners live on loop 0: this is the acceptor. */
    pgf__conn_accept(s, fd, addr, len, is_unix);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    pgf_server *s = arg;
    /* Out of fds: shed one client, back off, log once a second (instead
     * of spinning on the listener). */
    pgf_accept_guard_on_error(s->accept_guard, l);
}

static int listen_tcp(pgf_server *s, const char *spec, char *err, size_t errlen)
{
    struct evconnlistener *l;
    int bound;
    int rc = pgf_net_listen_tcp(s->base, spec, "127.0.0.1:54320", on_accept, s, &l,
                                s->addrs[s->naddrs], sizeof s->addrs[0], &bound, err, errlen);
    if (rc != 0)
        return rc;
    evconnlistener_set_error_cb(l, on_accept_error);
    s->naddrs++;
    if (s->port == 0)
        s->port = bound;
    s->listeners[s->nlisteners++] = l;
    return 0;
}

static int listen_unix(pgf_server *s, char *err, size_t errlen)
{
    int port = s->unix_port ? s->unix_port : (s->port ? s->port : 5432);
    struct sockaddr_un sun = {0};
    sun.sun_family = AF_UNIX;
    int n = snprintf(sun.sun_path, sizeof sun.sun_path, "%s/.s.PGSQL.%d", s->unix_dir, port);
    if (n < 0 || (size_t)n >= sizeof sun.sun_path) {
        snprintf(err, errlen, "--unix-socket-dir '%s': path too long for a unix socket",
                 s->unix_dir);
        return PGF_EINVAL;
    }
    struct stat st;
    if (stat(s->unix_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "--unix-socket-dir '%s': not a directory", s->unix_dir);
        return PGF_EINVAL;
    }
    /* A stale socket from a killed run would make bind fail: remove it, as
     * the postmaster does, but only if it is a socket. */
    if (lstat(sun.sun_path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(sun.sun_path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof sun) != 0 || listen(fd, 4096) != 0) {
        snprintf(err, errlen, "cannot listen on unix socket %s: %s", sun.sun_path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return PGF_EBIND;
    }
    /* backlog 0: listen(fd, 4096) above stands (with -1 libevent would call
     * listen(fd, 128) again, and 1,000 clients connecting at once got
     * refused) */
    struct evconnlistener *l =
        evconnlistener_new(s->base, on_accept, s, LEV_OPT_CLOSE_ON_FREE, 0, fd);
    if (l == NULL) {
        close(fd);
        snprintf(err, errlen, "cannot listen on unix socket %s", sun.sun_path);
        return PGF_EBIND;
    }
    evconnlistener_set_error_cb(l, on_accept_error);
    snprintf(s->unix_path, sizeof s->unix_path, "%s", sun.sun_path);
    snprintf(s->addrs[s->naddrs++], sizeof s->addrs[0], "unix %s", sun.sun_path);
    s->listeners[s->nlisteners++] = l;
    return 0;
}

int pgf_server_start(pgf_server *s, char *err, size_t errlen)
{
    for (int i = 0; i < s->nlisten; i++) {
        int rc = listen_tcp(s, s->listen[i], err, errlen);
        if (rc != 0)
            return rc;
    }
    if (s->unix_dir != NULL) {
        int rc = listen_unix(s, err, errlen);
        if (rc != 0)
            return rc;
    }
    if (s->nlisteners == 0) {
        snprintf(err, errlen, "nothing to listen on: give --listen or --unix-socket-dir");
        return PGF_EINVAL;
    }
    s->listeners_enabled = true;
    s->start_ns = pgf__server_now(s);
    for (int i = 1; i < s->nloops; i++) {
        pgf__loop *l = &s->loops[i];
        if (pthread_create(&l->thread, NULL, loop_thread, l) != 0) {
            snprintf(err, errlen, "cannot start event loop thread %d of %d", i + 1, s->nloops);
            return PGF_EINTERNAL;
        }
        l->thread_started = true;
    }
    if (s->nloops > 1)
        pgf_log_info("[server] %d event loops: loop 0 accepts, connection k is served by loop "
                     "(k - 1) %% %d",
                     s->nloops, s->nloops);
    return 0;
}

static void *server_thread(void *arg)
{
    pgf_server *s = arg;
    event_base_dispatch(s->base);
    return NULL;
}

int pgf_server_start_thread(pgf_server *s, char *err, size_t errlen)
{
    if (!s->own_base) {
        snprintf(err, errlen, "server was created on a caller's event_base");
        return PGF_EINVAL;
    }
    int rc = pgf_server_start(s, err, errlen);
    if (rc != 0)
        return rc;
    if (pthread_create(&s->thread, NULL, server_thread, s) != 0) {
        snprintf(err, errlen, "cannot start the server thread");
        return PGF_EINTERNAL;
    }
    s->thread_started = true;
    return 0;
}

void pgf_server_stop(pgf_server *s)
{
    if (s == NULL || atomic_exchange(&s->stopping, true))
        return;
    if (s->thread_started) {
        event_active(s->stop_ev, EV_TIMEOUT, 0);
        pthread_join(s->thread, NULL);
        s->thread_started = false;
    } else {
        do_stop(s);
    }
}

void pgf_server_free(pgf_server *s)
{
    if (s == NULL)
        return;
    pgf_server_stop(s);
    if (!s->stopped && s->base != NULL)
        do_stop(s);
    if (s->stop_ev)
        event_free(s->stop_ev);
    if (s->refuse_ev)
        event_free(s->refuse_ev);
    for (int i = 0; s->loops != NULL && i < s->nloops; i++) {
        pgf__loop *l = &s->loops[i];
        /* a cancel posted to a loop that had already stopped */
        for (pgf__inbox_item *it = l->inbox_mu_ready ? inbox_take(l) : NULL, *next; it != NULL;
             it = next) {
            next = it->next;
            if (it->kind == PGF__INBOX_CONN)
                close(it->fd);
            free(it);
        }
        struct event *evs[] = {l->stop_ev, l->reap_ev, l->inbox_ev};
        for (size_t k = 0; k < sizeof evs / sizeof evs[0]; k++)
            if (evs[k] != NULL)
                event_free(evs[k]);
        if (i > 0 && l->base != NULL)
            event_base_free(l->base);
        if (l->inbox_mu_ready)
            pthread_mutex_destroy(&l->inbox_mu);
    }
    free(s->loops);
    pthread_mutex_destroy(&s->obs_mu);
    pgf_timer_free(s->relisten);
    pgf_accept_guard_free(s->accept_guard);
    if (s->own_base && s->base)
        event_base_free(s->base);
    for (int i = 0; i < s->nlisten; i++)
        free(s->listen[i]);
    free(s->listen);
    free(s->unix_dir);
    for (int i = 0; i < s->nusers; i++) {
        free(s->users[i].name);
        free(s->users[i].password);
    }
    free(s->users);
    for (int i = 0; i < s->ndatabases; i++)
        free(s->databases[i]);
    free(s->databases);
    free(s);
}

int pgf_server_set_listening(pgf_server *s, bool up)
{
    if (s->stopped)
        return PGF_ECLOSED;
    for (int i = 0; i < s->nlisteners; i++) {
        if (up)
            evconnlistener_enable(s->listeners[i]);
        else
            evconnlistener_disable(s->listeners[i]);
    }
    if (up)
        pgf_timer_cancel(s->relisten);
    s->listeners_enabled = up;
    return 0;
}

bool pgf_server_listening(const pgf_server *s)
{
    return s->listeners_enabled && !s->stopped;
}

int pgf_server_addresses(const pgf_server *s, char (*out)[256], int n)
{
    for (int i = 0; i < s->naddrs && i < n; i++)
        memcpy(out[i], s->addrs[i], sizeof out[i]);
    return s->naddrs;
}

int pgf_server_port(const pgf_server *s)
{
    return s->port;
}

void pgf_server_get_stats(const pgf_server *s, pgf_server_stats *o)
{
    pgf_server *m = (pgf_server *)s; /* atomics are read-only here */
    o->accepted = atomic_load(&m->stats.accepted);
    o->active = atomic_load(&m->stats.active);
    o->closed = atomic_load(&m->stats.closed);
    o->auth_ok = atomic_load(&m->stats.auth_ok);
    o->auth_failed = atomic_load(&m->stats.auth_failed);
    o->queries = atomic_load(&m->stats.queries);
    o->cancel_requests = atomic_load(&m->stats.cancel_requests);
    o->canceled = atomic_load(&m->stats.canceled);
    o->protocol_errors = atomic_load(&m->stats.protocol_errors);
    o->faults_fired = atomic_load(&m->stats.faults_fired);
    for (int i = 0; i < 3; i++)
        o->by_phase[i] = atomic_load(&m->stats.by_phase[i]);
    o->threads = s->nloops;
    for (int i = 0; i < PGF_SERVER_MAX_THREADS; i++)
        o->loop_accepted[i] = i < s->nloops ? atomic_load(&m->stats.loop_accepted[i]) : 0;
}

/* ------------------------------------------------------------------ */
/* the connection registry                                             */

/* Unlink from its loop's live list; the loop frees it from its reap event. */
void pgf__server_reap(pgf__conn *c)
{
    pgf__loop *l = c->loop;
    if (c->prev)
        c->prev->next = c->next;
    else if (l->conns == c)
        l->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = NULL;
    c->next = l->reap;
    l->reap = c;
    if (l->reap_ev)
        event_active(l->reap_ev, EV_TIMEOUT, 0);
}

void pgf__server_reap_all(pgf__loop *l)
{
    while (l->reap != NULL) {
        pgf__conn *c = l->reap;
        l->reap = c->next;
        pgf__conn_free(c);
    }
}

void pgf__server_close_all(pgf__loop *l)
{
    while (l->conns != NULL)
        pgf__conn_abort(l->conns);
}

/* CancelRequest: the backend with this pid is served by the loop of its
 * connection id (pid = 10000 + id, conn.c); that loop looks it up. */
void pgf__server_cancel(pgf__loop *l, int32_t pid, int32_t key)
{
    pgf_server *s = l->srv;
    if (pid <= 10000)
        return; /* no backend of ours */
    pgf__loop *owner = pgf__server_loop_of(s, (uint64_t)pid - 10000u);
    if (owner == l) {
        cancel_here(l, pid, key);
        return;
    }
    pgf__inbox_item *it = calloc(1, sizeof *it);
    if (it == NULL)
        return;
    it->kind = PGF__INBOX_CANCEL;
    it->fd = -1;
    it->pid = pid;
    it->key = key;
    inbox_post(owner, it);
}

/* On the owning loop: find the backend by pid; the key must match. */
static void cancel_here(pgf__loop *l, int32_t pid, int32_t key)
{
    for (pgf__conn *c = l->conns; c != NULL; c = c->next) {
        if (c->pid != pid || c->state != ST_READY)
            continue;
        if (c->key != key) {
            pgf_log_info("[conn %llu] wrong key in cancel request for process %d",
                         (unsigned long long)c->id, pid);
            return;
        }
        pgf__conn_cancel(c);
        return;
    }
}
