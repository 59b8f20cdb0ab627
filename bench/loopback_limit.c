/* loopback_limit.c - the raw loopback connection-rate limit of this machine.
 *
 * The yardstick for the fake server's connection rate: the same shape of
 * work as `pgbench -C -c 8 -j 2` minus everything PostgreSQL-specific.
 * One server thread (like the fake server's single event loop) accepts on
 * 127.0.0.1:0 with epoll, reads 8 bytes, writes them back and closes when
 * the client has closed. CLIENTS connections spread over THREADS client
 * threads (each with its own epoll) loop: non-blocking connect, write 8
 * bytes, read 8 bytes, close (the client closes first, as pgbench does
 * after Terminate), connect again. Prints one JSON object on stdout:
 *   {"connections": N, "seconds": S, "rate": R, "errors": E, ...,
 *    "server_cpu_us_per_conn": U}
 * where U is the echo server thread's own CPU time (user + system, which
 * includes most of the kernel's TCP work for its side) per connection.
 *
 * What it does not do: anything with the PostgreSQL protocol, TLS, or
 * unix sockets. It is a benchmark helper, not part of pgfault.
 */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#define MSG_LEN    8
#define MAX_EVENTS 256

static atomic_bool stop_flag;        /* clients stop */
static atomic_bool server_stop_flag; /* set after the clients joined: no spurious EOFs */
static struct sockaddr_in server_addr;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- server: one thread, one epoll, like the fake server's loop ---- */

typedef struct sconn {
    struct sconn *prev, *next; /* the server's live list, freed at stop */
    int fd;
    int got; /* bytes read so far */
    bool echoed;
    char buf[MSG_LEN];
} sconn;

typedef struct server_arg {
    int lfd;
    int efd;
    double cpu_s; /* CPU time of the server thread, user + system */
} server_arg;

static sconn *live; /* server thread only */

static void server_close(int efd, sconn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        live = c->next;
    if (c->next)
        c->next->prev = c->prev;
    epoll_ctl(efd, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

static void server_on_conn(int efd, sconn *c)
{
    for (;;) {
        char tmp[64];
        ssize_t n = read(c->fd, c->echoed ? tmp : c->buf + c->got,
                         c->echoed ? sizeof tmp : (size_t)(MSG_LEN - c->got));
        if (n == 0) { /* client closed */
            server_close(efd, c);
            return;
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            server_close(efd, c);
            return;
        }
        if (c->echoed)
            continue;
        c->got += (int)n;
        if (c->got == MSG_LEN) {
            /* 8 bytes fit any empty socket buffer: one write suffices. */
            if (write(c->fd, c->buf, MSG_LEN) != MSG_LEN) {
                server_close(efd, c);
                return;
            }
            c->echoed = true;
        }
    }
}

static void *server_main(void *p)
{
    server_arg *a = p;
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load(&server_stop_flag)) {
        int n = epoll_wait(a->efd, evs, MAX_EVENTS, 100);
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL) {
                for (;;) {
                    int fd = accept4(a->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
                    if (fd < 0)
                        break;
                    int one = 1;
                    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    sconn *c = calloc(1, sizeof *c);
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
                    if (epoll_ctl(a->efd, EPOLL_CTL_ADD, fd, &ev) != 0) {
                        close(fd);
                        free(c);
                        continue;
                    }
                    c->next = live;
                    if (live)
                        live->prev = c;
                    live = c;
                }
            } else {
                server_on_conn(a->efd, evs[i].data.ptr);
            }
        }
    }
    while (live != NULL)
        server_close(a->efd, live);
    struct timespec cpu;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu);
    a->cpu_s = (double)cpu.tv_sec + (double)cpu.tv_nsec / 1e9;
    return NULL;
}

/* ---- clients: THREADS threads, each with CLIENTS/THREADS slots ---- */

enum cstate { C_CONNECTING, C_READING };

typedef struct cslot {
    int fd;
    enum cstate st;
    int got;
} cslot;

typedef struct client_arg {
    int nslots;
    uint64_t done;
    uint64_t errors;
    int efd;
    cslot *slots;
} client_arg;

static int slot_connect(client_arg *a, cslot *s)
{
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -1;
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->st = C_CONNECTING;
    s->got = 0;
    if (connect(s->fd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 &&
        errno != EINPROGRESS) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
    if (epoll_ctl(a->efd, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
        close(s->fd);
        s->fd = -1;
        return -1;
    }
    return 0;
}

/* Close the slot's socket and start the next connection. */
static void slot_restart(client_arg *a, cslot *s, bool ok)
{
    if (s->fd >= 0) {
        epoll_ctl(a->efd, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
        s->fd = -1;
    }
    if (ok)
        a->done++;
    else
        a->errors++;
    if (atomic_load(&stop_flag))
        return;
    while (slot_connect(a, s) != 0) {
        a->errors++;
        if (atomic_load(&stop_flag) || a->errors > 1000000)
            return;
    }
}

static void slot_event(client_arg *a, cslot *s, uint32_t events)
{
    if (s->st == C_CONNECTING) {
        int soerr = 0;
        socklen_t len = sizeof soerr;
        if ((events & (EPOLLERR | EPOLLHUP)) ||
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &len) != 0 || soerr != 0) {
            slot_restart(a, s, false);
            return;
        }
        static const char msg[MSG_LEN] = "pgfault!";
        if (write(s->fd, msg, MSG_LEN) != MSG_LEN) {
            slot_restart(a, s, false);
            return;
        }
        s->st = C_READING;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
        epoll_ctl(a->efd, EPOLL_CTL_MOD, s->fd, &ev);
        return;
    }
    char buf[MSG_LEN];
    ssize_t n = read(s->fd, buf, (size_t)(MSG_LEN - s->got));
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        slot_restart(a, s, false);
        return;
    }
    s->got += (int)n;
    if (s->got == MSG_LEN)
        slot_restart(a, s, true);
}

static void *client_main(void *p)
{
    client_arg *a = p;
    for (int i = 0; i < a->nslots; i++) {
        a->slots[i].fd = -1;
        if (slot_connect(a, &a->slots[i]) != 0)
            a->errors++;
    }
    struct epoll_event evs[MAX_EVENTS];
    while (!atomic_load(&stop_flag)) {
        int n = epoll_wait(a->efd, evs, MAX_EVENTS, 100);
        for (int i = 0; i < n; i++)
            slot_event(a, evs[i].data.ptr, evs[i].events);
    }
    for (int i = 0; i < a->nslots; i++)
        if (a->slots[i].fd >= 0)
            close(a->slots[i].fd);
    return NULL;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loopback_limit [-c CLIENTS] [-j THREADS] [-T SECONDS]\n"
               "Connect, write 8 bytes, read 8 bytes, close, in a loop, against an echo\n"
               "server thread in this process on 127.0.0.1; print the rate as JSON.\n"
               "Defaults: -c 8 -j 2 -T 5 (the shape of pgbench -C -c 8 -j 2).\n");
}

int main(int argc, char **argv)
{
    int clients = 8, threads = 2;
    double seconds = 5;
    int opt;
    while ((opt = getopt(argc, argv, "c:j:T:h")) != -1) {
        switch (opt) {
        case 'c':
            clients = atoi(optarg);
            break;
        case 'j':
            threads = atoi(optarg);
            break;
        case 'T':
            seconds = atof(optarg);
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (clients < 1 || threads < 1 || threads > clients || seconds <= 0 || seconds > 3600) {
        fprintf(stderr, "loopback_limit: need 1 <= THREADS <= CLIENTS and 0 < SECONDS <= 3600\n");
        return 2;
    }

    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server_addr.sin_port = 0;
    socklen_t alen = sizeof server_addr;
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&server_addr, sizeof server_addr) != 0 ||
        listen(lfd, 4096) != 0 || getsockname(lfd, (struct sockaddr *)&server_addr, &alen) != 0) {
        fprintf(stderr, "loopback_limit: cannot listen on 127.0.0.1: %s\n", strerror(errno));
        return 3;
    }
    server_arg sa = {.lfd = lfd, .efd = epoll_create1(EPOLL_CLOEXEC)};
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    if (sa.efd < 0 || epoll_ctl(sa.efd, EPOLL_CTL_ADD, lfd, &lev) != 0) {
        fprintf(stderr, "loopback_limit: epoll: %s\n", strerror(errno));
        return 3;
    }
    pthread_t st;
    if (pthread_create(&st, NULL, server_main, &sa) != 0) {
        fprintf(stderr, "loopback_limit: cannot start the server thread\n");
        return 3;
    }

    client_arg *ca = calloc((size_t)threads, sizeof *ca);
    pthread_t *ct = calloc((size_t)threads, sizeof *ct);
    if (ca == NULL || ct == NULL)
        return 3;
    uint64_t t0 = now_ns();
    for (int i = 0; i < threads; i++) {
        ca[i].nslots = clients / threads + (i < clients % threads ? 1 : 0);
        ca[i].slots = calloc((size_t)ca[i].nslots, sizeof *ca[i].slots);
        ca[i].efd = epoll_create1(EPOLL_CLOEXEC);
        if (ca[i].slots == NULL || ca[i].efd < 0 ||
            pthread_create(&ct[i], NULL, client_main, &ca[i]) != 0) {
            fprintf(stderr, "loopback_limit: cannot start client thread %d\n", i);
            return 3;
        }
    }
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    nanosleep(&ts, NULL);
    atomic_store(&stop_flag, true);
    uint64_t done = 0, errors = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(ct[i], NULL);
        done += ca[i].done;
        errors += ca[i].errors;
        free(ca[i].slots);
        close(ca[i].efd);
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    atomic_store(&server_stop_flag, true);
    pthread_join(st, NULL);
    close(lfd);
    close(sa.efd);
    free(ca);
    free(ct);
    printf("{\"connections\": %llu, \"seconds\": %.3f, \"rate\": %.1f, \"errors\": %llu, "
           "\"clients\": %d, \"threads\": %d, \"server_cpu_us_per_conn\": %.1f}\n",
           (unsigned long long)done, elapsed, (double)done / elapsed, (unsigned long long)errors,
           clients, threads, done ? sa.cpu_s * 1e6 / (double)done : 0.0);
    return 0;
}
