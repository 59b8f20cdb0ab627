/* accept_guard.c - back-off and a reserve fd for listeners out of file
 * descriptors; see accept_guard.h for why. */
#include <errno.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgfault/accept_guard.h"
#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "pgfault/timer.h"

#define GUARD_MAX_LISTENERS 32
#define BACKOFF_MIN_MS      100u
#define BACKOFF_MAX_MS      1000u

struct pgf_accept_guard {
    struct event_base *base;
    char what[64];
    pgf_accept_guard_may_enable_fn may_enable;
    void *arg;
    int reserve_fd;
    pgf_timer *timer;
    struct evconnlistener *off[GUARD_MAX_LISTENERS]; /* disabled by us */
    int noff;
    uint32_t backoff_ms;
    uint64_t last_error_ns, last_log_ns, held_back, errors;
};

static int open_reserve(void)
{
    return open("/dev/null", O_RDONLY | O_CLOEXEC);
}

static void on_timer(void *arg)
{
    pgf_accept_guard *g = arg;
    if (g->may_enable != NULL && !g->may_enable(g->arg)) {
        g->noff = 0; /* the owner keeps them off; it enables them itself */
        return;
    }
    for (int i = 0; i < g->noff; i++)
        evconnlistener_enable(g->off[i]);
    g->noff = 0;
}

pgf_accept_guard *pgf_accept_guard_new(struct event_base *base, const char *what,
                                       pgf_accept_guard_may_enable_fn may_enable, void *arg)
{
    pgf_accept_guard *g = calloc(1, sizeof *g);
    if (g == NULL)
        return NULL;
    g->base = base;
    snprintf(g->what, sizeof g->what, "%s", what ? what : "[listener]");
    g->may_enable = may_enable;
    g->arg = arg;
    g->backoff_ms = BACKOFF_MIN_MS;
    g->reserve_fd = open_reserve();
    g->timer = pgf_timer_new(base, on_timer, g);
    if (g->timer == NULL) {
        pgf_accept_guard_free(g);
        return NULL;
    }
    return g;
}

void pgf_accept_guard_free(pgf_accept_guard *g)
{
    if (g == NULL)
        return;
    pgf_timer_free(g->timer);
    if (g->reserve_fd >= 0)
        close(g->reserve_fd);
    free(g);
}

void pgf_accept_guard_forget(pgf_accept_guard *g, struct evconnlistener *l)
{
    if (g == NULL)
        return;
    for (int i = 0; i < g->noff; i++)
        if (g->off[i] == l)
            g->off[i--] = g->off[--g->noff];
}

uint64_t pgf_accept_guard_errors(const pgf_accept_guard *g)
{
    return g ? g->errors : 0;
}

void pgf_accept_guard_on_error(pgf_accept_guard *g, struct evconnlistener *l)
{
    int e = EVUTIL_SOCKET_ERROR();
    if (e != EMFILE && e != ENFILE && e != ENOBUFS && e != ENOMEM) {
        pgf_log_debug("%s accept: %s", g->what, strerror(e));
        return;
    }
    g->errors++;
    uint64_t now = pgf_clock_now(g->base);
    /* Errors keep coming: back off longer; after a quiet spell, start over. */
    if (g->last_error_ns != 0 && now - g->last_error_ns < PGF_MS_NS(2 * BACKOFF_MAX_MS))
        g->backoff_ms = g->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : g->backoff_ms * 2;
    else
        g->backoff_ms = BACKOFF_MIN_MS;
    g->last_error_ns = now;
    /* Shed one pending client with the reserve fd: a clean close now is
     * better than a connection that waits in the backlog for nothing. */
    if (g->reserve_fd >= 0) {
        close(g->reserve_fd);
        g->reserve_fd = -1;
        int fd = accept(evconnlistener_get_fd(l), NULL, NULL);
        if (fd >= 0)
            close(fd);
        g->reserve_fd = open_reserve();
    }
    if (g->last_log_ns == 0 || now - g->last_log_ns >= PGF_MS_NS(1000)) {
        if (g->held_back > 0)
            pgf_log_warn("%s accept: %s; not accepting for %u ms (%llu more such errors since "
                         "the last message)",
                         g->what, strerror(e), g->backoff_ms, (unsigned long long)g->held_back);
        else
            pgf_log_warn("%s accept: %s; not accepting for %u ms", g->what, strerror(e),
                         g->backoff_ms);
        g->last_log_ns = now;
        g->held_back = 0;
    } else {
        g->held_back++;
    }
    bool known = false;
    for (int i = 0; i < g->noff; i++)
        known = known || g->off[i] == l;
    if (!known && g->noff < GUARD_MAX_LISTENERS)
        g->off[g->noff++] = l;
    evconnlistener_disable(l);
    pgf_timer_arm(g->timer, PGF_MS_NS(g->backoff_ms));
}
