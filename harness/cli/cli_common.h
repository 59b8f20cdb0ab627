/* cli_common.h - the pieces `pgfault serve` and `pgfault proxy` share:
 * both run a fake (server or proxy) with fault rules and an optional
 * control API on one event loop until SIGINT/SIGTERM, and parse, print
 * and stop the same way. `cmd` is the subcommand name for messages. */
#ifndef PGF_CLI_COMMON_H
#define PGF_CLI_COMMON_H

#include <stdbool.h>

#include "pgfault/fault.h"
#include "pgfault/rules.h"

struct event;
struct event_base;

/* --log-level VALUE: sets the level, or prints the error and returns -1. */
int pgf__cli_log_level(const char *cmd, const char *value);

/* --faults PATH parsed before anything listens: 0 with *out set (NULL if
 * path is NULL), or the error printed and -1. */
int pgf__cli_load_rules(const char *cmd, const char *path, pgf_fault_rules **out);

/* "control http://HOST:PORT" (brackets for an IPv6 host) on stdout. */
void pgf__cli_print_control(const char *control_addr, int control_port);

/* "coverage {...}" of the engine's fault sites on stdout. */
void pgf__cli_print_coverage(pgf_fault_engine *engine);

/* SIGINT/SIGTERM on `base`: log "TAG signal N: stopping", call stop(obj)
 * and leave the loop. Add with pgf__cli_stopper_add, free after the loop. */
typedef struct pgf__cli_stopper {
    struct event_base *base;
    const char *tag; /* "[serve]" */
    void (*stop)(void *obj);
    void *obj;
    struct event *sigint, *sigterm;
} pgf__cli_stopper;

void pgf__cli_stopper_add(pgf__cli_stopper *s);
void pgf__cli_stopper_free(pgf__cli_stopper *s);

/* For the long-lived commands (serve, proxy): give the heap's free pages
 * back every 5 s (glibc malloc_trim). After ~3 million connections a
 * `pgfault serve` spent 28% more CPU per connection than a fresh one, in
 * malloc's slow path over a fragmented heap; a trim restored it. Returns
 * the timer (free it with event_free after the loop) or NULL. */
struct event *pgf__cli_trimmer_add(struct event_base *base);

#endif
