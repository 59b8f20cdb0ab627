/* cmd_serve.c - `pgfault serve`: run the fake PostgreSQL server until
 * SIGINT/SIGTERM. A thin layer over fakes/server/server.h. */
#include <event2/event.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "usage.h"
#include "pgfault/control.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
#include "pgfault/rules.h"
#include "pgfault/server.h"

#define MAX_ITEMS 64

static void serve_usage(FILE *f)
{
    pgf__cli_usage_print(f, "serve");
}

struct serve_ctx {
    pgf_server *srv;
    struct event_base *base;
};

static int hook_set_listening(void *arg, bool up)
{
    return pgf_server_set_listening(arg, up);
}

static bool hook_is_listening(void *arg)
{
    return pgf_server_listening(arg);
}

static char *hook_stats_json(void *arg)
{
    pgf_server_stats st;
    pgf_server_get_stats(arg, &st);
    char *buf = malloc(768);
    if (buf == NULL)
        return NULL;
    snprintf(buf, 768,
             "{\"accepted\":%" PRIu64 ",\"active\":%" PRIu64 ",\"closed\":%" PRIu64
             ",\"auth_ok\":%" PRIu64 ",\"auth_failed\":%" PRIu64 ",\"queries\":%" PRIu64
             ",\"cancel_requests\":%" PRIu64 ",\"canceled\":%" PRIu64
             ",\"protocol_errors\":%" PRIu64 ",\"faults_fired\":%" PRIu64
             ",\"by_phase\":{\"startup\":%" PRIu64 ",\"auth\":%" PRIu64 ",\"query\":%" PRIu64
             "},\"listening\":%s}",
             st.accepted, st.active, st.closed, st.auth_ok, st.auth_failed, st.queries,
             st.cancel_requests, st.canceled, st.protocol_errors, st.faults_fired, st.by_phase[0],
             st.by_phase[1], st.by_phase[2], pgf_server_listening(arg) ? "true" : "false");
    return buf;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    struct serve_ctx *ctx = arg;
    pgf_log_info("[serve] signal %d: stopping", (int)sig);
    pgf_server_stop(ctx->srv);
    event_base_loopexit(ctx->base, NULL);
}

/* NAME:PASSWORD:METHOD; the password may itself contain ':'. */
static int parse_user(char *spec, pgf_server_user *u)
{
    char *first = strchr(spec, ':');
    char *last = strrchr(spec, ':');
    if (first == NULL || last == first)
        return -1;
    *first = '\0';
    *last = '\0';
    int m = pgf_auth_method_parse(last + 1);
    if (m < 0 || spec[0] == '\0')
        return -1;
    u->name = spec;
    u->password = first + 1;
    u->method = (pgf_auth_method)m;
    u->superuser = strcmp(spec, "postgres") == 0;
    return 0;
}

/* What the command line asked for. cfg points into the arrays. */
struct serve_args {
    const char *listen[MAX_ITEMS];
    const char *dbs[MAX_ITEMS];
    pgf_server_user users[MAX_ITEMS];
    bool quiet, remote_control;
    const char *faults_path, *fault_log, *control_addr;
    pgf_server_config cfg;
};

/* Parse and check the options into *a. Returns -1 to go on, else the exit
 * code (usage errors are printed). */
static int parse_args(int argc, char **argv, struct serve_args *a)
{
    struct option opts[32];
    if (pgf__cli_longopts("serve", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    memset(a, 0, sizeof *a);
    pgf_server_config cfg = {0};
    cfg.seed = 1;
    const char **listen = a->listen, **dbs = a->dbs;
    pgf_server_user *users = a->users;
    int nlisten = 0, ndbs = 0, nusers = 0;
    bool no_tcp = false, quiet = false, seed_random = false, remote_control = false;
    const char *faults_path = NULL, *fault_log = NULL, *control_addr = NULL;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (nlisten == MAX_ITEMS - 1) {
                fprintf(stderr, "pgfault serve: too many --listen\n");
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
        case 'U':
            if (nusers == MAX_ITEMS || parse_user(optarg, &users[nusers]) != 0) {
                fprintf(stderr,
                        "pgfault serve: --user: expected NAME:PASSWORD:METHOD with METHOD one "
                        "of trust, password, md5, scram-sha-256\n");
                return PGF_EXIT_USAGE;
            }
            nusers++;
            break;
        case 'd':
            if (ndbs == MAX_ITEMS) {
                fprintf(stderr, "pgfault serve: too many --database\n");
                return PGF_EXIT_USAGE;
            }
            dbs[ndbs++] = optarg;
            break;
        case 'm': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v < 0 || v > 1000000) {
                fprintf(stderr, "pgfault serve: --max-connections '%s': expected 0..1000000\n",
                        optarg);
                return PGF_EXIT_USAGE;
            }
            cfg.max_connections = (int)v;
            break;
        }
        case 's':
            if (strcmp(optarg, "random") == 0) {
                seed_random = true;
            } else {
                char *end;
                cfg.seed = strtoull(optarg, &end, 0);
                if (*optarg == '\0' || *end != '\0') {
                    fprintf(stderr, "pgfault serve: --seed '%s': expected an integer or 'random'\n",
                            optarg);
                    return PGF_EXIT_USAGE;
                }
            }
            break;
        case 'L': {
            int lvl = pgf_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr,
                        "pgfault serve: --log-level '%s': expected error, warn, info, "
                        "debug or trace\n",
                        optarg);
                return PGF_EXIT_USAGE;
            }
            pgf_log_level_set(lvl);
            break;
        }
        case 'q':
            quiet = true;
            break;
        case 'F':
            faults_path = optarg;
            break;
        case 'O':
            fault_log = optarg;
            break;
        case 'C':
            control_addr = optarg;
            break;
        case 'R':
            remote_control = true;
            break;
        case 'h':
            serve_usage(stdout);
            return PGF_EXIT_OK;
        default:
            serve_usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgfault serve: unexpected argument '%s'\n", argv[optind]);
        return PGF_EXIT_USAGE;
    }
    if (no_tcp && cfg.unix_socket_dir == NULL) {
        fprintf(stderr, "pgfault serve: --no-tcp needs --unix-socket-dir\n");
        return PGF_EXIT_USAGE;
    }
    if (nlisten == 0 && !no_tcp)
        listen[nlisten++] = "127.0.0.1:54320";
    if (no_tcp)
        nlisten = 0;
    if (seed_random) {
        FILE *r = fopen("/dev/urandom", "rb");
        if (r == NULL || fread(&cfg.seed, sizeof cfg.seed, 1, r) != 1) {
            fprintf(stderr, "pgfault serve: cannot read /dev/urandom for --seed random\n");
            if (r)
                fclose(r);
            return PGF_EXIT_INTERNAL;
        }
        fclose(r);
    }
    cfg.listen = listen;
    cfg.nlisten = nlisten;
    cfg.users = users;
    cfg.nusers = nusers;
    cfg.databases = dbs;
    cfg.ndatabases = ndbs;
    a->cfg = cfg;
    a->quiet = quiet;
    a->remote_control = remote_control;
    a->faults_path = faults_path;
    a->fault_log = fault_log;
    a->control_addr = control_addr;
    return -1;
}

/* The fault engine, when rules, a fault log or the control API are asked
 * for (NULL otherwise, in *out). Returns -1 to go on, else the exit code. */
static int make_engine(const struct serve_args *a, pgf_fault_engine **out, size_t *nrules)
{
    char err[512];
    *out = NULL;
    *nrules = 0;
    /* Faults first: a bad rule file must stop us before we listen. */
    pgf_fault_rules *rules = NULL;
    if (a->faults_path != NULL) {
        rules = pgf_fault_rules_parse_file(a->faults_path, err, sizeof err);
        if (rules == NULL) {
            fprintf(stderr, "pgfault serve: %s\n", err);
            return PGF_EXIT_USAGE;
        }
    }
    if (rules == NULL && a->control_addr == NULL && a->fault_log == NULL)
        return -1;
    pgf_fault_engine *engine = pgf_fault_engine_new(a->cfg.seed);
    if (engine == NULL) {
        fprintf(stderr, "pgfault serve: out of memory\n");
        pgf_fault_rules_free(rules);
        return PGF_EXIT_INTERNAL;
    }
    *nrules = rules != NULL ? pgf_fault_rules_count(rules) : 0;
    pgf_fault_engine_set_rules(engine, rules); /* takes rules */
    if (a->fault_log != NULL &&
        pgf_fault_log_open(engine, a->fault_log, PGF_FAULT_LOG_APPEND, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault serve: %s\n", err);
        pgf_fault_engine_free(engine);
        return PGF_EXIT_USAGE;
    }
    *out = engine;
    return -1;
}

int pgf_cmd_serve(int argc, char **argv)
{
    struct serve_args a;
    int code = parse_args(argc, argv, &a);
    if (code >= 0)
        return code;
    pgf_fault_engine *engine;
    size_t nrules;
    if ((code = make_engine(&a, &engine, &nrules)) >= 0)
        return code;
    pgf_server_config cfg = a.cfg;
    const char *faults_path = a.faults_path, *control_addr = a.control_addr;
    bool quiet = a.quiet, remote_control = a.remote_control;
    char err[512];
    cfg.faults = engine;
    struct event_base *base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "pgfault serve: cannot create an event loop\n");
        pgf_fault_engine_free(engine);
        return PGF_EXIT_INTERNAL;
    }
    pgf_server *srv = NULL;
    int rc = pgf_server_new(&cfg, base, &srv, err, sizeof err);
    if (rc == 0)
        rc = pgf_server_start(srv, err, sizeof err);
    pgf_fault_control *ctl = NULL;
    int control_port = 0;
    if (rc == 0 && control_addr != NULL) {
        pgf_fault_control_hooks hooks = {srv, hook_set_listening, hook_is_listening,
                                         hook_stats_json};
        control_port = pgf_fault_control_start(&ctl, base, engine, control_addr, remote_control,
                                               &hooks, err, sizeof err);
        if (control_port < 0)
            rc = control_port;
    }
    if (rc != 0) {
        fprintf(stderr, "pgfault serve: %s\n", err);
        pgf_fault_control_free(ctl);
        pgf_server_free(srv);
        event_base_free(base);
        pgf_fault_engine_free(engine);
        return rc == PGF_EINVAL ? PGF_EXIT_USAGE : PGF_EXIT_INTERNAL;
    }
    struct serve_ctx ctx = {srv, base};
    struct event *sigint = evsignal_new(base, SIGINT, on_signal, &ctx);
    struct event *sigterm = evsignal_new(base, SIGTERM, on_signal, &ctx);
    event_add(sigint, NULL);
    event_add(sigterm, NULL);
    if (!quiet) {
        char addrs[16][256];
        int n = pgf_server_addresses(srv, addrs, 16);
        printf("seed %" PRIu64 "\n", cfg.seed);
        if (faults_path != NULL)
            printf("faults %s (%zu rules)\n", faults_path, nrules);
        for (int i = 0; i < n && i < 16; i++)
            printf("listening %s\n", addrs[i]);
        if (ctl != NULL) {
            char host[256];
            int port;
            if (pgf_fault_split_hostport(control_addr, host, sizeof host, &port) == 0)
                printf("control http://%s%s%s:%d\n", strchr(host, ':') ? "[" : "", host,
                       strchr(host, ':') ? "]" : "", control_port);
        }
        fflush(stdout);
    }
    event_base_dispatch(base);
    pgf_server_stats st;
    pgf_server_get_stats(srv, &st);
    pgf_log_info("[serve] stopped: %" PRIu64 " connections, %" PRIu64 " queries", st.accepted,
                 st.queries);
    if (engine != NULL && !quiet) {
        /* Fault-site coverage: which phase x action fired, which rules never did. */
        char *cov = pgf_fault_coverage_json(engine);
        if (cov != NULL)
            printf("coverage %s\n", cov);
        free(cov);
        fflush(stdout);
    }
    event_free(sigint);
    event_free(sigterm);
    pgf_fault_control_free(ctl);
    pgf_server_free(srv);
    event_base_free(base);
    pgf_fault_engine_free(engine);
    return PGF_EXIT_OK;
}
