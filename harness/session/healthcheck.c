/* healthcheck.c - pgf_health_check(): one synchronous open, query, close
 * through a session on a private event loop (healthcheck.h). Kept apart
 * from health.c, the pure classification table the session itself uses,
 * so the table does not depend on the session built on top of it. */
#include "pgfault/healthcheck.h"

#include <event2/event.h>
#include <stdio.h>
#include <string.h>

#include "pgfault/session.h"

struct sync_check {
    struct event_base *base;
    pgf_session *s;
    pgf_health h;
    int rc;
    bool done;
};

static void sync_closed(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    struct sync_check *c = arg;
    c->done = true;
    event_base_loopbreak(c->base);
}

static void sync_finish(struct sync_check *c, int err, const pgf_health *h)
{
    if (h != NULL)
        c->h = *h;
    c->rc = err;
    if (pgf_session_close(c->s, sync_closed, c) != 0) {
        c->done = true;
        event_base_loopbreak(c->base);
    }
}

static void sync_checked(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    sync_finish(arg, err, h);
}

static void sync_opened(pgf_session *s, pgf_sess_op op, int err, const pgf_health *h, void *arg)
{
    struct sync_check *c = arg;
    if (err != 0 || pgf_session_check(s, sync_checked, c) != 0)
        sync_finish(c, err != 0 ? err : PGF_EINTERNAL, h);
}

static void sync_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct sync_check *c = arg;
    pgf_sess_state st = pgf_session_state(c->s);
    pgf_health_classify(NULL, "timeout expired", pgf_session_state_name(st), &c->h);
    c->rc = PGF_ETIMEDOUT;
    if (pgf_session_close(c->s, sync_closed, c) != 0)
        event_base_loopbreak(c->base);
}

int pgf_health_check(const char *const *keywords, const char *const *values, const char *query,
                     unsigned timeout_ms, pgf_health *h)
{
    struct sync_check c;
    memset(&c, 0, sizeof c);
    pgf_health_classify(NULL, "internal error", "", &c.h);
    c.rc = PGF_EINTERNAL;
    if (timeout_ms == 0)
        timeout_ms = 10000;
    c.base = pgf_session_base_new();
    if (c.base == NULL)
        return *h = c.h, PGF_ENOMEM;
    pgf_session_opts o = {0};
    o.keywords = keywords;
    o.values = values;
    o.check_query = query;
    o.connect_timeout_ms = timeout_ms;
    o.query_timeout_ms = timeout_ms;
    struct event *deadline = evtimer_new(c.base, sync_deadline, &c);
    int rc = pgf_session_new(c.base, &o, &c.s);
    if (rc != 0 || deadline == NULL) {
        c.rc = rc != 0 ? rc : PGF_ENOMEM;
        goto out;
    }
    struct timeval tv = {(time_t)(timeout_ms / 1000 + 1), 0};
    evtimer_add(deadline, &tv);
    if (pgf_session_open(c.s, sync_opened, &c) != 0)
        goto out;
    while (!c.done && event_base_dispatch(c.base) == 0 && !c.done)
        ;
out:
    if (deadline != NULL)
        event_free(deadline);
    pgf_session_free(c.s);
    event_base_free(c.base);
    if (c.rc == 0)
        pgf_health_set_ok(&c.h);
    *h = c.h;
    return c.rc;
}
