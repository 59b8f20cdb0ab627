/* cli_common.c - option parsing, output and the signal stop shared by
 * cmd_serve.c and cmd_proxy.c; see cli_common.h. */
#include <event2/event.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_common.h"
#include "pgfault/control.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"

int pgf__cli_log_level(const char *cmd, const char *value)
{
    int lvl = pgf_log_level_parse(value);
    if (lvl < 0) {
        fprintf(stderr,
                "pgfault %s: --log-level '%s': expected error, warn, info, "
                "debug or trace\n",
                cmd, value);
        return -1;
    }
    pgf_log_level_set(lvl);
    return 0;
}

int pgf__cli_load_rules(const char *cmd, const char *path, pgf_fault_rules **out)
{
    char err[512];
    *out = NULL;
    if (path == NULL)
        return 0;
    *out = pgf_fault_rules_parse_file(path, err, sizeof err);
    if (*out == NULL) {
        fprintf(stderr, "pgfault %s: %s\n", cmd, err);
        return -1;
    }
    return 0;
}

void pgf__cli_print_control(const char *control_addr, int control_port)
{
    char host[256];
    int port;
    if (pgf_fault_split_hostport(control_addr, host, sizeof host, &port) == 0)
        printf("control http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
               strchr(host, ':') ? "]" : "", control_port);
}

void pgf__cli_print_coverage(pgf_fault_engine *engine)
{
    /* Fault-site coverage: which phase x action fired, which rules never did. */
    char *cov = pgf_fault_coverage_json(engine);
    if (cov != NULL)
        printf("coverage %s\n", cov);
    free(cov);
    fflush(stdout);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    pgf__cli_stopper *s = arg;
    pgf_log_info("%s signal %d: stopping", s->tag, (int)sig);
    s->stop(s->obj);
    event_base_loopexit(s->base, NULL);
}

void pgf__cli_stopper_add(pgf__cli_stopper *s)
{
    s->sigint = evsignal_new(s->base, SIGINT, on_signal, s);
    s->sigterm = evsignal_new(s->base, SIGTERM, on_signal, s);
    event_add(s->sigint, NULL);
    event_add(s->sigterm, NULL);
}

void pgf__cli_stopper_free(pgf__cli_stopper *s)
{
    event_free(s->sigint);
    event_free(s->sigterm);
}

static void on_trim(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
#ifdef __GLIBC__
    (void)malloc_trim(0);
#endif
}

struct event *pgf__cli_trimmer_add(struct event_base *base)
{
    struct event *ev = event_new(base, -1, EV_PERSIST, on_trim, NULL);
    struct timeval every = {5, 0};
    if (ev != NULL && event_add(ev, &every) != 0) {
        event_free(ev);
        ev = NULL;
    }
    return ev;
}
