/* cmd_serve.c - `pgfault serve`: run the fake PostgreSQL server until
 * SIGINT/SIGTERM. A thin layer over fakes/server/server.h.
 *
 * Roles come from --user-file FILE (mode 0600 or stricter, checked),
 * PGFAULT_USERS (the same lines in the environment) and --user; a password
 * given with --user is visible to every local user in `ps` (a warning says
 * so, and it is blanked from our argv as soon as it is read). No password
 * is ever printed: errors name the file and line, never the line. */
#include <errno.h>
#include <event2/event.h>
#include <sys/stat.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_common.h"
#include "pgfault/answers.h"
#include "usage.h"
#include "pgfault/control.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
#include "pgfault/loop.h"
#include "pgfault/rules.h"
#include "pgfault/secret.h"
#include "pgfault/server.h"
#include "serve_history.h"

#define MAX_ITEMS 64

static void serve_usage(FILE *f)
{
    pgf__cli_usage_print(f, "serve");
}

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
    /* the per-loop accepted counts: which loop was handed how many */
    char loops[PGF_SERVER_MAX_THREADS * 24 + 2] = "[";
    size_t off = 1;
    for (int i = 0; i < st.threads && off < sizeof loops; i++)
        off += (size_t)snprintf(loops + off, sizeof loops - off, "%s%" PRIu64, i ? "," : "",
                                st.loop_accepted[i]);
    if (off < sizeof loops - 1)
        snprintf(loops + off, sizeof loops - off, "]");
    size_t cap = 768 + sizeof loops;
    char *buf = malloc(cap);
    if (buf == NULL)
        return NULL;
    snprintf(buf, cap,
             "{\"accepted\":%" PRIu64 ",\"active\":%" PRIu64 ",\"closed\":%" PRIu64
             ",\"auth_ok\":%" PRIu64 ",\"auth_failed\":%" PRIu64 ",\"queries\":%" PRIu64
             ",\"cancel_requests\":%" PRIu64 ",\"canceled\":%" PRIu64
             ",\"protocol_errors\":%" PRIu64 ",\"faults_fired\":%" PRIu64
             ",\"by_phase\":{\"startup\":%" PRIu64 ",\"auth\":%" PRIu64 ",\"query\":%" PRIu64
             "},\"listening\":%s,\"threads\":%d,\"loop_accepted\":%s}",
             st.accepted, st.active, st.closed, st.auth_ok, st.auth_failed, st.queries,
             st.cancel_requests, st.canceled, st.protocol_errors, st.faults_fired, st.by_phase[0],
             st.by_phase[1], st.by_phase[2], pgf_server_listening(arg) ? "true" : "false",
             st.threads, loops);
    return buf;
}

static void stop_server(void *arg)
{
    pgf_server_stop(arg);
}

/* NAME:PASSWORD:METHOD; the password may itself contain ':'. spec is
 * modified and must outlive the server (an owned copy, never argv). */
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

/* Owned copies of every role spec, freed at exit. */
typedef struct user_specs {
    char *items[MAX_ITEMS];
    int n;
} user_specs;

static void user_specs_free(user_specs *us)
{
    for (int i = 0; i < us->n; i++) {
        memset(us->items[i], 0, strlen(us->items[i])); /* no password left in freed memory */
        free(us->items[i]);
    }
    us->n = 0;
}

#define USER_FORMAT \
    "expected NAME:PASSWORD:METHOD with METHOD one of trust, password, md5, scram-sha-256"

/* Add one role from text[len]; `where` names it in errors (never the text). */
static int add_user(user_specs *us, pgf_server_user *users, int *nusers, const char *text,
                    size_t len, const char *where)
{
    if (*nusers == MAX_ITEMS || us->n == MAX_ITEMS) {
        fprintf(stderr, "pgfault serve: %s: more than %d roles\n", where, MAX_ITEMS);
        return -1;
    }
    char *copy = strndup(text, len);
    if (copy == NULL) {
        fprintf(stderr, "pgfault serve: out of memory\n");
        return -1;
    }
    us->items[us->n++] = copy;
    if (parse_user(copy, &users[*nusers]) != 0) {
        fprintf(stderr, "pgfault serve: %s: " USER_FORMAT "\n", where);
        return -1;
    }
    (void)pgf_secret_add(users[*nusers].password); /* never in a log line */
    (*nusers)++;
    return 0;
}

/* One role per line; blank lines and '#' comments skipped; `name` for errors. */
static int add_user_lines(user_specs *us, pgf_server_user *users, int *nusers, const char *text,
                          const char *name)
{
    int lineno = 0;
    for (const char *p = text; *p != '\0';) {
        size_t len = strcspn(p, "\n");
        lineno++;
        size_t l = len;
        while (l > 0 && (p[l - 1] == '\r' || p[l - 1] == ' ' || p[l - 1] == '\t'))
            l--;
        size_t lead = strspn(p, " \t");
        if (lead < l && p[lead] != '#') {
            char where[600];
            snprintf(where, sizeof where, "%s:%d", name, lineno);
            if (add_user(us, users, nusers, p + lead, l - lead, where) != 0)
                return -1;
        }
        p += len;
        if (*p == '\n')
            p++;
    }
    return 0;
}

static int load_user_file(const char *path, user_specs *us, pgf_server_user *users, int *nusers)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fprintf(stderr, "pgfault serve: --user-file %s: %s\n", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fprintf(stderr, "pgfault serve: --user-file %s: not a regular file\n", path);
        fclose(f);
        return -1;
    }
    if ((st.st_mode & 077) != 0) {
        fprintf(stderr,
                "pgfault serve: --user-file %s: mode %04o lets other local users read the "
                "passwords; run chmod 600 %s\n",
                path, (unsigned)(st.st_mode & 07777), path);
        fclose(f);
        return -1;
    }
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f); /* the whole file (it has no NUL) */
    int rc = 0;
    if (n < 0 && ferror(f)) {
        fprintf(stderr, "pgfault serve: --user-file %s: %s\n", path, strerror(errno));
        rc = -1;
    } else if (n > 0 && (size_t)n != strlen(text)) {
        fprintf(stderr, "pgfault serve: --user-file %s: contains a NUL byte\n", path);
        rc = -1;
    } else if (n > 0) {
        rc = add_user_lines(us, users, nusers, text, path);
    }
    if (text != NULL) {
        memset(text, 0, cap);
        free(text);
    }
    fclose(f);
    return rc;
}

/* Is the control API's host a loopback address? */
static bool loopback_host(const char *host)
{
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "::1") == 0 ||
           strcmp(host, "localhost") == 0;
}

/* Everything the command line (and PGFAULT_USERS) says; cfg points into it. */
typedef struct serve_opts {
    const char *listen[MAX_ITEMS];
    const char *dbs[MAX_ITEMS];
    pgf_server_user users[MAX_ITEMS];
    int nlisten, ndbs, nusers;
    bool warned_user;
    bool no_tcp, quiet, seed_random, remote_control;
    const char *faults_path, *fault_log, *control_addr, *answers_path, *history_path;
    pgf_server_config cfg;
} serve_opts;

/* Returned by the parsing helpers when serve should go on. */
#define SERVE_CONTINUE (-1)

/* --user NAME:PASSWORD:METHOD: add it, warn once, blank the password in argv. */
static int serve_opt_user(serve_opts *o, user_specs *specs, char *arg)
{
    if (add_user(specs, o->users, &o->nusers, arg, strlen(arg), "--user") != 0)
        return PGF_EXIT_USAGE;
    const pgf_server_user *u = &o->users[o->nusers - 1];
    if (u->method != PGF_AUTH_METHOD_TRUST && !o->warned_user) {
        fprintf(stderr,
                "pgfault serve: warning: --user puts the password of role '%s' in "
                "the process list of every local user (ps); use --user-file FILE "
                "(mode 0600) or PGFAULT_USERS instead (--user with a password is "
                "deprecated)\n",
                u->name);
        o->warned_user = true;
    }
    /* Blank it in our argv, so ps shows it no longer than needed. */
    char *pw = strchr(arg, ':'), *end = strrchr(arg, ':');
    if (pw != NULL && end != NULL && end > pw)
        memset(pw + 1, '*', (size_t)(end - pw - 1));
    return SERVE_CONTINUE;
}

static int serve_opt_max_connections(serve_opts *o, const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 10);
    if (*end != '\0' || v < 0 || v > 1000000) {
        fprintf(stderr, "pgfault serve: --max-connections '%s': expected 0..1000000\n", arg);
        return PGF_EXIT_USAGE;
    }
    o->cfg.max_connections = (int)v;
    return SERVE_CONTINUE;
}

/* --threads N|cores: event loops (server.h); 1..PGF_SERVER_MAX_THREADS. */
static int serve_opt_threads(serve_opts *o, const char *arg)
{
    long v;
    if (strcmp(arg, "cores") == 0) {
        v = sysconf(_SC_NPROCESSORS_ONLN);
        v = v < 1 ? 1 : v > PGF_SERVER_MAX_THREADS ? PGF_SERVER_MAX_THREADS : v;
    } else {
        char *end;
        errno = 0;
        v = strtol(arg, &end, 10);
        if (*arg == '\0' || *end != '\0' || errno != 0 || v < 1 || v > PGF_SERVER_MAX_THREADS) {
            fprintf(stderr, "pgfault serve: --threads '%s': expected 1..%d or 'cores'\n", arg,
                    PGF_SERVER_MAX_THREADS);
            return PGF_EXIT_USAGE;
        }
    }
    o->cfg.threads = (int)v;
    return SERVE_CONTINUE;
}

static int serve_opt_seed(serve_opts *o, const char *arg)
{
    if (strcmp(arg, "random") == 0) {
        o->seed_random = true;
        return SERVE_CONTINUE;
    }
    char *end;
    o->cfg.seed = strtoull(arg, &end, 0);
    if (*arg == '\0' || *end != '\0') {
        fprintf(stderr, "pgfault serve: --seed '%s': expected an integer or 'random'\n", arg);
        return PGF_EXIT_USAGE;
    }
    return SERVE_CONTINUE;
}

/* Apply one getopt result; SERVE_CONTINUE or the exit code. */
static int serve_opt(serve_opts *o, user_specs *specs, int c, char *arg)
{
    switch (c) {
    case 'l':
        if (o->nlisten == MAX_ITEMS - 1) {
            fprintf(stderr, "pgfault serve: too many --listen\n");
            return PGF_EXIT_USAGE;
        }
        o->listen[o->nlisten++] = arg;
        return SERVE_CONTINUE;
    case 'u':
        o->cfg.unix_socket_dir = arg;
        return SERVE_CONTINUE;
    case 'T':
        o->no_tcp = true;
        return SERVE_CONTINUE;
    case 'U':
        return serve_opt_user(o, specs, arg);
    case 'P':
        if (load_user_file(arg, specs, o->users, &o->nusers) != 0)
            return PGF_EXIT_USAGE;
        return SERVE_CONTINUE;
    case 'd':
        if (o->ndbs == MAX_ITEMS) {
            fprintf(stderr, "pgfault serve: too many --database\n");
            return PGF_EXIT_USAGE;
        }
        o->dbs[o->ndbs++] = arg;
        return SERVE_CONTINUE;
    case 'm':
        return serve_opt_max_connections(o, arg);
    case 'j':
        return serve_opt_threads(o, arg);
    case 's':
        return serve_opt_seed(o, arg);
    case 'L':
        if (pgf__cli_log_level("serve", arg) != 0)
            return PGF_EXIT_USAGE;
        return SERVE_CONTINUE;
    case 'q':
        o->quiet = true;
        return SERVE_CONTINUE;
    case 'F':
        o->faults_path = arg;
        return SERVE_CONTINUE;
    case 'O':
        o->fault_log = arg;
        return SERVE_CONTINUE;
    case 'A':
        o->answers_path = arg;
        return SERVE_CONTINUE;
    case 'H':
        o->history_path = arg;
        return SERVE_CONTINUE;
    case 'C':
        o->control_addr = arg;
        return SERVE_CONTINUE;
    case 'R':
        o->remote_control = true;
        return SERVE_CONTINUE;
    case 'h':
        serve_usage(stdout);
        return PGF_EXIT_OK;
    default:
        serve_usage(stderr);
        return PGF_EXIT_USAGE;
    }
}

/* Parse argv and PGFAULT_USERS into o and fill o->cfg; SERVE_CONTINUE or the exit code. */
static int serve_parse_args(int argc, char **argv, user_specs *specs, serve_opts *o)
{
    struct option opts[32];
    if (pgf__cli_longopts("serve", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    o->cfg.seed = 1;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = serve_opt(o, specs, c, optarg);
        if (rc != SERVE_CONTINUE)
            return rc;
    }
    if (optind < argc) {
        fprintf(stderr, "pgfault serve: unexpected argument '%s'\n", argv[optind]);
        return PGF_EXIT_USAGE;
    }
    const char *env_users = getenv("PGFAULT_USERS");
    if (env_users != NULL && *env_users != '\0' &&
        add_user_lines(specs, o->users, &o->nusers, env_users, "PGFAULT_USERS line") != 0)
        return PGF_EXIT_USAGE;
    if (o->no_tcp && o->cfg.unix_socket_dir == NULL) {
        fprintf(stderr, "pgfault serve: --no-tcp needs --unix-socket-dir\n");
        return PGF_EXIT_USAGE;
    }
    if (o->nlisten == 0 && !o->no_tcp)
        o->listen[o->nlisten++] = "127.0.0.1:54320";
    if (o->no_tcp)
        o->nlisten = 0;
    if (o->seed_random) {
        FILE *r = fopen("/dev/urandom", "rb");
        if (r == NULL || fread(&o->cfg.seed, sizeof o->cfg.seed, 1, r) != 1) {
            fprintf(stderr, "pgfault serve: cannot read /dev/urandom for --seed random\n");
            if (r)
                fclose(r);
            return PGF_EXIT_INTERNAL;
        }
        fclose(r);
    }
    o->cfg.listen = o->listen;
    o->cfg.nlisten = o->nlisten;
    o->cfg.users = o->users;
    o->cfg.nusers = o->nusers;
    o->cfg.databases = o->dbs;
    o->cfg.ndatabases = o->ndbs;
    return SERVE_CONTINUE;
}

/* Warn when the unauthenticated control API is reachable from other hosts. */
static void serve_warn_remote_control(const serve_opts *o)
{
    if (o->control_addr == NULL || !o->remote_control)
        return;
    char host[256];
    int port;
    if (pgf_fault_split_hostport(o->control_addr, host, sizeof host, &port) == 0 &&
        !loopback_host(host))
        fprintf(stderr,
                "pgfault serve: warning: the control API on %s has no authentication: "
                "anyone who can reach it can change the fault rules and break every "
                "connection (--allow-remote-control)\n",
                o->control_addr);
}

/* What serve owns while it runs; serve_res_free releases any subset. */
typedef struct serve_res {
    pgf_answers *answers;
    pgf_fault_engine *engine;
    size_t nrules;
    pgf_serve_history *hist;
    struct event_base *base;
    pgf_server *srv;
    pgf_fault_control *ctl;
    int control_port;
} serve_res;

static void serve_res_free(serve_res *r)
{
    pgf_fault_control_free(r->ctl);
    pgf_server_free(r->srv);
    pgf_serve_history_close(r->hist);
    if (r->base != NULL)
        event_base_free(r->base);
    pgf_fault_engine_free(r->engine);
    pgf_answers_free(r->answers);
}

/* Canned answers, fault rules, fault log and history, wired into o->cfg.
 * A bad file must stop us before we listen. */
static int serve_load_inputs(serve_opts *o, serve_res *r)
{
    char err[512];
    if (o->answers_path != NULL &&
        pgf_answers_load(o->answers_path, &r->answers, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault serve: %s\n", err);
        return PGF_EXIT_USAGE;
    }
    o->cfg.answers = r->answers;
    pgf_fault_rules *rules;
    if (pgf__cli_load_rules("serve", o->faults_path, &rules) != 0)
        return PGF_EXIT_USAGE;
    if (rules != NULL || o->control_addr != NULL || o->fault_log != NULL) {
        r->engine = pgf_fault_engine_new(o->cfg.seed);
        if (r->engine == NULL) {
            fprintf(stderr, "pgfault serve: out of memory\n");
            pgf_fault_rules_free(rules);
            return PGF_EXIT_INTERNAL;
        }
        r->nrules = rules != NULL ? pgf_fault_rules_count(rules) : 0;
        pgf_fault_engine_set_rules(r->engine, rules); /* takes rules */
        if (o->fault_log != NULL &&
            pgf_fault_log_open(r->engine, o->fault_log, PGF_FAULT_LOG_APPEND, err, sizeof err) !=
                0) {
            fprintf(stderr, "pgfault serve: %s\n", err);
            return PGF_EXIT_USAGE;
        }
    }
    o->cfg.faults = r->engine;
    if (o->history_path != NULL) {
        r->hist = pgf_serve_history_open(o->history_path, o->cfg.seed, err, sizeof err);
        if (r->hist == NULL) {
            fprintf(stderr, "pgfault serve: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        o->cfg.on_fault = pgf_serve_history_on_fault;
        o->cfg.on_fault_arg = r->hist;
        o->cfg.on_event = pgf_serve_history_on_event;
        o->cfg.on_event_arg = r->hist;
    }
    return SERVE_CONTINUE;
}

/* Event loop, server and control API; SERVE_CONTINUE or the exit code. */
static int serve_start(serve_opts *o, serve_res *r)
{
    char err[512];
    /* Made with libevent's thread support on: with --threads the worker
     * loops post cancels and refuse windows to this base. */
    r->base = pgf_loop_base_new();
    if (r->base == NULL) {
        fprintf(stderr, "pgfault serve: cannot create an event loop\n");
        return PGF_EXIT_INTERNAL;
    }
    int rc = pgf_server_new(&o->cfg, r->base, &r->srv, err, sizeof err);
    if (rc == 0)
        rc = pgf_server_start(r->srv, err, sizeof err);
    if (rc == 0 && o->control_addr != NULL) {
        pgf_fault_control_hooks hooks = {r->srv, hook_set_listening, hook_is_listening,
                                         hook_stats_json};
        r->control_port = pgf_fault_control_start(&r->ctl, r->base, r->engine, o->control_addr,
                                                  o->remote_control, &hooks, err, sizeof err);
        if (r->control_port < 0)
            rc = r->control_port;
    }
    if (rc != 0) {
        fprintf(stderr, "pgfault serve: %s\n", err);
        return rc == PGF_EINVAL ? PGF_EXIT_USAGE : PGF_EXIT_INTERNAL;
    }
    return SERVE_CONTINUE;
}

/* Print where we listen, run until SIGINT/SIGTERM, report. */
static void serve_loop(const serve_opts *o, serve_res *r)
{
    pgf__cli_stopper stopper = {
        .base = r->base, .tag = "[serve]", .stop = stop_server, .obj = r->srv};
    pgf__cli_stopper_add(&stopper);
    struct event *trimmer = pgf__cli_trimmer_add(r->base);
    if (!o->quiet) {
        char addrs[16][256];
        int n = pgf_server_addresses(r->srv, addrs, 16);
        printf("seed %" PRIu64 "\n", o->cfg.seed);
        if (o->cfg.threads > 1)
            printf("threads %d\n", o->cfg.threads);
        if (o->faults_path != NULL)
            printf("faults %s (%zu rules)\n", o->faults_path, r->nrules);
        if (o->answers_path != NULL)
            printf("answers %s (%d answers)\n", o->answers_path, pgf_answers_count(r->answers));
        for (int i = 0; i < n && i < 16; i++)
            printf("listening %s\n", addrs[i]);
        if (r->ctl != NULL)
            pgf__cli_print_control(o->control_addr, r->control_port);
        fflush(stdout);
    }
    event_base_dispatch(r->base);
    pgf_server_stats st;
    pgf_server_get_stats(r->srv, &st);
    pgf_log_info("[serve] stopped: %" PRIu64 " connections, %" PRIu64 " queries", st.accepted,
                 st.queries);
    if (r->engine != NULL && !o->quiet) {
        pgf__cli_print_coverage(r->engine);
    }
    if (trimmer != NULL)
        event_free(trimmer);
    pgf__cli_stopper_free(&stopper);
}

static int serve_main(int argc, char **argv, user_specs *specs)
{
    serve_opts o = {0};
    int rc = serve_parse_args(argc, argv, specs, &o);
    if (rc != SERVE_CONTINUE)
        return rc;
    serve_warn_remote_control(&o);
    serve_res r = {0};
    rc = serve_load_inputs(&o, &r);
    if (rc == SERVE_CONTINUE)
        rc = serve_start(&o, &r);
    if (rc == SERVE_CONTINUE) {
        serve_loop(&o, &r);
        rc = PGF_EXIT_OK;
    }
    serve_res_free(&r);
    return rc;
}

int pgf_cmd_serve(int argc, char **argv)
{
    user_specs specs = {0};
    int rc = serve_main(argc, argv, &specs);
    user_specs_free(&specs);
    return rc;
}
