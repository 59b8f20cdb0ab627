/* relay_limit.c - the floor for any user-space TCP relay on this machine.
 *
 * The yardstick for `pgfault proxy`'s per-query cost: the same shape of
 * work (one thread, one epoll, a client socket and an upstream socket per
 * session, every byte read from one and written to the other) minus
 * everything the proxy adds (framing, fault points, evbuffers, libevent).
 * Whatever this costs per query under `pgbench`, no relay can cost less
 * with the same system calls; the difference to the proxy is what
 * pgfault's own code costs.
 *
 *   relay_limit --upstream HOST:PORT|/path/.s.PGSQL.N [--listen-port N] [--threads N]
 *
 * Listens on 127.0.0.1 (port 0 by default: printed as "listening tcp
 * 127.0.0.1:PORT", the same line `pgfault proxy` prints), connects one
 * upstream socket per accepted client, relays until SIGTERM/SIGINT. Each
 * readable socket gets one recv() into a 64 KB buffer and one send() of what
 * it read to the peer; a short send parks the rest and waits for EPOLLOUT
 * (reading that side stops meanwhile). TCP_NODELAY on both TCP sockets.
 * --threads N runs N such loops, each with its own SO_REUSEPORT listener on
 * the same port (the kernel spreads connections over them): what a
 * multi-threaded proxy would gain when one thread competes for CPU with
 * PostgreSQL's backends.
 *
 * What it does not do: anything with the PostgreSQL protocol or faults.
 * A benchmark helper, not part of pgfault.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define MAX_EVENTS 256
#define BUF_LEN    65536

typedef struct end {
    int fd;
    struct end *peer;
    char *pend; /* bytes read from this end not yet written to the peer */
    size_t npend;
} end;

static atomic_int stop_flag; /* set by the signal handler, read by every loop */
static struct sockaddr_storage up_sa;
static socklen_t up_len;
/* A session: its two ends, on the loop's list until exit (a closed pair's
 * fds are -1; events later in the same epoll batch may still point at it). */
typedef struct pair_blk {
    struct pair_blk *next;
    end e[2];
} pair_blk;

static _Thread_local int epfd;        /* each loop thread's own */
static _Thread_local pair_blk *pairs; /* each loop thread's sessions */

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void nodelay(int fd)
{
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static int parse_upstream(const char *s)
{
    if (s[0] == '/') {
        struct sockaddr_un *sun = (struct sockaddr_un *)&up_sa;
        if (strlen(s) >= sizeof sun->sun_path)
            return -1;
        sun->sun_family = AF_UNIX;
        memcpy(sun->sun_path, s, strlen(s) + 1);
        up_len = sizeof *sun;
        return 0;
    }
    char host[256];
    const char *colon = strrchr(s, ':');
    if (colon == NULL || (size_t)(colon - s) >= sizeof host)
        return -1;
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    struct addrinfo hints = {0}, *res = NULL;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &res) != 0 || res == NULL)
        return -1;
    memcpy(&up_sa, res->ai_addr, res->ai_addrlen);
    up_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

static void watch(end *e, uint32_t events)
{
    struct epoll_event ev = {.events = events, .data.ptr = e};
    (void)epoll_ctl(epfd, EPOLL_CTL_MOD, e->fd, &ev);
}

/* Write what `from` parked; returns false when the pair must close. */
static bool drain(end *from)
{
    end *to = from->peer;
    while (from->npend > 0) {
        ssize_t n = send(to->fd, from->pend, from->npend, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n <= 0)
            return false;
        memmove(from->pend, from->pend + n, from->npend - (size_t)n);
        from->npend -= (size_t)n;
    }
    free(from->pend);
    from->pend = NULL;
    watch(to, EPOLLIN);
    watch(from, EPOLLIN);
    return true;
}

static bool relay(end *from)
{
    static _Thread_local char buf[BUF_LEN];
    end *to = from->peer;
    ssize_t n = recv(from->fd, buf, sizeof buf, 0);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
        return false;
    if (n < 0)
        return true;
    ssize_t w = send(to->fd, buf, (size_t)n, MSG_NOSIGNAL);
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
        return false;
    if (w < 0)
        w = 0;
    if (w < n) {
        from->pend = malloc((size_t)(n - w));
        if (from->pend == NULL)
            return false;
        memcpy(from->pend, buf + w, (size_t)(n - w));
        from->npend = (size_t)(n - w);
        watch(from, 0);      /* stop reading this side ... */
        watch(to, EPOLLOUT); /* ... until the peer drains */
    }
    return true;
}

static void on_accept(int lfd)
{
    for (;;) {
        int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd < 0)
            return;
        nodelay(cfd);
        int ufd = socket(up_sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        /* a blocking connect: loopback or a local socket, and this is a
         * benchmark, not a server */
        if (ufd < 0 || connect(ufd, (struct sockaddr *)&up_sa, up_len) != 0) {
            perror("relay_limit: upstream connect");
            close(cfd);
            if (ufd >= 0)
                close(ufd);
            continue;
        }
        if (up_sa.ss_family != AF_UNIX)
            nodelay(ufd);
        int fl = fcntl(ufd, F_GETFL);
        (void)fcntl(ufd, F_SETFL, fl | O_NONBLOCK);
        pair_blk *pb = calloc(1, sizeof *pb);
        end *pair = pb ? pb->e : NULL;
        if (pair == NULL) {
            close(cfd);
            close(ufd);
            continue;
        }
        pb->next = pairs;
        pairs = pb;
        pair[0].fd = cfd;
        pair[1].fd = ufd;
        pair[0].peer = &pair[1];
        pair[1].peer = &pair[0];
        struct epoll_event ev0 = {.events = EPOLLIN, .data.ptr = &pair[0]};
        struct epoll_event ev1 = {.events = EPOLLIN, .data.ptr = &pair[1]};
        (void)epoll_ctl(epfd, EPOLL_CTL_ADD, cfd, &ev0);
        (void)epoll_ctl(epfd, EPOLL_CTL_ADD, ufd, &ev1);
    }
}

/* One loop: its own listener (SO_REUSEPORT: the kernel spreads new
 * connections over the threads' listeners) and its own epoll. */
static void *loop(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event lev = {.events = EPOLLIN, .data.ptr = NULL};
    (void)epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    struct epoll_event evs[MAX_EVENTS];
    while (!stop_flag) {
        int n = epoll_wait(epfd, evs, MAX_EVENTS, 200);
        for (int i = 0; i < n; i++) {
            end *e = evs[i].data.ptr;
            if (e == NULL) {
                on_accept(lfd);
                continue;
            }
            if (e->fd < 0)
                continue; /* closed earlier in this batch */
            bool ok = true;
            if (evs[i].events & EPOLLOUT)
                ok = drain(e->peer);
            if (ok && (evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && e->npend == 0)
                ok = relay(e);
            if (!ok) {
                /* mark both ends so later events of this batch skip them */
                end *p = e->peer;
                int fa = e->fd, fb = p->fd;
                e->fd = p->fd = -1;
                close(fa);
                close(fb);
                free(e->pend);
                free(p->pend);
                e->pend = p->pend = NULL;
            }
        }
    }
    while (pairs != NULL) {
        pair_blk *pb = pairs;
        pairs = pb->next;
        for (int i = 0; i < 2; i++) {
            if (pb->e[i].fd >= 0)
                close(pb->e[i].fd);
            free(pb->e[i].pend);
        }
        free(pb);
    }
    close(lfd);
    close(epfd);
    return NULL;
}

static int listen_on(int port)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    (void)setsockopt(lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sin;
    if (bind(lfd, (struct sockaddr *)&sin, sizeof sin) != 0 || listen(lfd, 1024) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &sl) != 0) {
        perror("relay_limit: listen");
        exit(1);
    }
    return lfd;
}

int main(int argc, char **argv)
{
    const char *upstream = NULL;
    int port = 0, threads = 1;
    static const struct option opts[] = {{"upstream", required_argument, NULL, 'u'},
                                         {"listen-port", required_argument, NULL, 'p'},
                                         {"threads", required_argument, NULL, 't'},
                                         {NULL, 0, NULL, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "u:p:t:", opts, NULL)) != -1) {
        if (o == 'u')
            upstream = optarg;
        else if (o == 'p')
            port = atoi(optarg);
        else if (o == 't')
            threads = atoi(optarg);
        else
            return 2;
    }
    if (upstream == NULL || parse_upstream(upstream) != 0 || threads < 1 || threads > 64) {
        fprintf(stderr, "usage: relay_limit --upstream HOST:PORT|/path/.s.PGSQL.N "
                        "[--listen-port N] [--threads 1-64]\n");
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal; /* no SA_RESTART: epoll_wait returns EINTR */
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int lfds[64];
    lfds[0] = listen_on(port);
    struct sockaddr_in sin;
    socklen_t sl = sizeof sin;
    (void)getsockname(lfds[0], (struct sockaddr *)&sin, &sl);
    for (int i = 1; i < threads; i++)
        lfds[i] = listen_on(ntohs(sin.sin_port));
    printf("listening tcp 127.0.0.1:%d\n", ntohs(sin.sin_port));
    fflush(stdout);
    pthread_t tids[64];
    for (int i = 1; i < threads; i++)
        pthread_create(&tids[i], NULL, loop, (void *)(intptr_t)lfds[i]);
    loop((void *)(intptr_t)lfds[0]);
    for (int i = 1; i < threads; i++)
        pthread_join(tids[i], NULL);
    return 0;
}
