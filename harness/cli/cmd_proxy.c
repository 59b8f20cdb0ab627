/* cmd_proxy.c - `pgfault proxy`: the fault proxy in front of a real
 * PostgreSQL until SIGINT/SIGTERM. A thin layer over fakes/proxy/proxy.h
 * (and the control API of fakes/fault/control.h on the same loop). Its usage
 * text is in usage.c. */
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_common.h"
#include "usage.h"
#include "pgfault/control.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
#include "pgfault/proxy.h"
#include "pgfault/rules.h"

#define MAX_LISTEN 7

static void proxy_usage(FILE *f)
{
    pgf__cli_usage_print(f, "proxy");
}

static int hook_set_listening(void *arg, bool up)
{
    return pgf_proxy_set_listening(arg, up);
}

static bool hook_is_listening(void *arg)
{
    return pgf_proxy_listening(arg);
}

static char *hook_stats_json(void *arg)
{
    return pgf_proxy_stats_json(arg);
}

static void stop_proxy(void *arg)
{
    pgf_proxy_stop(arg);
}

static int parse_uint(const char *flag, const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v > max) {
        fprintf(stderr, "pgfault proxy: %s '%s': expected an integer 0..%lu\n", flag, s, max);
        return -1;
    }
    *out = v;
    return 0;
}

int pgf_cmd_proxy(int argc, char **argv)
{
    struct option opts[32];
    if (pgf__cli_longopts("proxy", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    const char *listen[MAX_LISTEN + 1];
    int nlisten = 0;
    bool no_tcp = false, remote_control = false;
    const char *faults_path = NULL, *control_addr = NULL;
    uint64_t seed = 1;
    pgf_proxy_config cfg = {0};
    unsigned long v;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'U':
            cfg.upstream = optarg;
            break;
        case 'P':
            if (parse_uint("--upstream-port", optarg, 65535, &v) != 0)
                return PGF_EXIT_USAGE;
            cfg.upstream_port = (int)v;
            break;
        case 't':
            if (parse_uint("--connect-timeout", optarg, 3600000, &v) != 0)
                return PGF_EXIT_USAGE;
            cfg.connect_timeout_ms = (uint32_t)v;
            break;
        case 'l':
            if (nlisten == MAX_LISTEN) {
                fprintf(stderr, "pgfault proxy: at most %d --listen\n", MAX_LISTEN);
                return PGF_EXIT_USAGE;
            }
            listen[nlisten++] = optarg;
            break;
        case 'u':
            cfg.unix_socket_dir = optarg;
            break;
        case 'T':
            no_tcp = true;
            break;
        case 'F':
            faults_path = optarg;
            break;
        case 'O':
            cfg.fault_log = optarg;
            break;
        case 'C':
            control_addr = optarg;
            break;
        case 'R':
            remote_control = true;
            break;
        case 's': {
            char *end;
            seed = strtoull(optarg, &end, 0);
            if (*optarg == '\0' || *end != '\0') {
                fprintf(stderr, "pgfault proxy: --seed '%s': expected an integer\n", optarg);
                return PGF_EXIT_USAGE;
            }
            break;
        }
        case 'L':
            if (pgf__cli_log_level("proxy", optarg) != 0)
                return PGF_EXIT_USAGE;
            break;
        case 'q':
            cfg.quiet = true;
            break;
        case 'h':
            proxy_usage(stdout);
            return PGF_EXIT_OK;
        default:
            proxy_usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgfault proxy: unexpected argument '%s'\n", argv[optind]);
        return PGF_EXIT_USAGE;
    }
    if (cfg.upstream == NULL) {
        fprintf(stderr, "pgfault proxy: --upstream HOST:PORT|SOCKETDIR is required\n");
        return PGF_EXIT_USAGE;
    }
    if (no_tcp && cfg.unix_socket_dir == NULL) {
        fprintf(stderr, "pgfault proxy: --no-tcp needs --unix-socket-dir\n");
        return PGF_EXIT_USAGE;
    }
    if (nlisten == 0 && !no_tcp)
        listen[nlisten++] = "127.0.0.1:6432";
    if (no_tcp)
        nlisten = 0;
    cfg.listen = listen;
    cfg.nlisten = nlisten;

    char err[512];
    /* A bad rule file must stop us before we listen. */
    pgf_fault_rules *rules;
    if (pgf__cli_load_rules("proxy", faults_path, &rules) != 0)
        return PGF_EXIT_USAGE;
    /* Always an engine: the control API may add rules later. */
    pgf_fault_engine *engine = pgf_fault_engine_new(seed);
    struct event_base *base = event_base_new();
    if (engine == NULL || base == NULL) {
        fprintf(stderr, "pgfault proxy: out of memory\n");
        pgf_fault_rules_free(rules);
        pgf_fault_engine_free(engine);
        if (base)
            event_base_free(base);
        return PGF_EXIT_INTERNAL;
    }
    size_t nrules = rules != NULL ? pgf_fault_rules_count(rules) : 0;
    pgf_fault_engine_set_rules(engine, rules); /* takes rules */
    cfg.faults = engine;
    pgf_proxy *px = NULL;
    int rc = pgf_proxy_new(&cfg, base, &px, err, sizeof err);
    if (rc == 0 && !cfg.quiet) {
        printf("seed %" PRIu64 "\n", seed);
        if (faults_path != NULL)
            printf("faults %s (%zu rules)\n", faults_path, nrules);
    }
    if (rc == 0)
        rc = pgf_proxy_start(px, err, sizeof err);
    pgf_fault_control *ctl = NULL;
    int control_port = 0;
    if (rc == 0 && control_addr != NULL) {
        pgf_fault_control_hooks hooks = {px, hook_set_listening, hook_is_listening,
                                         hook_stats_json};
        control_port = pgf_fault_control_start(&ctl, base, engine, control_addr, remote_control,
                                               &hooks, err, sizeof err);
        if (control_port < 0)
            rc = control_port;
    }
    if (rc != 0) {
        fprintf(stderr, "pgfault proxy: %s\n", err);
        pgf_fault_control_free(ctl);
        pgf_proxy_free(px);
        event_base_free(base);
        pgf_fault_engine_free(engine);
        return rc == PGF_EINVAL || rc == PGF_EIO ? PGF_EXIT_USAGE : PGF_EXIT_INTERNAL;
    }
    if (ctl != NULL && !cfg.quiet) {
        pgf__cli_print_control(control_addr, control_port);
        fflush(stdout);
    }
    pgf__cli_stopper stopper = {.base = base, .tag = "[proxy]", .stop = stop_proxy, .obj = px};
    pgf__cli_stopper_add(&stopper);
    struct event *trimmer = pgf__cli_trimmer_add(base);
    event_base_dispatch(base);
    pgf_proxy_stats st;
    pgf_proxy_get_stats(px, &st);
    pgf_log_info("[proxy] stopped: %" PRIu64 " connections, %" PRIu64 " upstream failures",
                 st.accepted, st.upstream_failures);
    if (!cfg.quiet) {
        pgf__cli_print_coverage(engine);
    }
    if (trimmer != NULL)
        event_free(trimmer);
    pgf__cli_stopper_free(&stopper);
    pgf_fault_control_free(ctl);
    pgf_proxy_free(px);
    event_base_free(base);
    pgf_fault_engine_free(engine);
    return PGF_EXIT_OK;
}
