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

#include "cli.h"
#include "cli_common.h"
#include "pgfault/answers.h"
#include "usage.h"
#include "pgfault/control.h"
#include "pgfault/fault.h"
#include "pgfault/faultlog.h"
#include "pgfault/log.h"
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

static int serve_main(int argc, char **argv, user_specs *specs)
{
    struct option opts[32];
    if (pgf__cli_longopts("serve", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    const char *listen[MAX_ITEMS];
    const char *dbs[MAX_ITEMS];
    pgf_server_user users[MAX_ITEMS];
    int nlisten = 0, ndbs = 0, nusers = 0;
    bool warned_user = false;
    bool no_tcp = false, quiet = false, seed_random = false, remote_control = false;
    const char *faults_path = NULL, *fault_log = NULL, *control_addr = NULL, *answers_path = NULL,
               *history_path = NULL;
    pgf_server_config cfg = {0};
    cfg.seed = 1;
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
        case 'U': {
            if (add_user(specs, users, &nusers, optarg, strlen(optarg), "--user") != 0)
                return PGF_EXIT_USAGE;
            const pgf_server_user *u = &users[nusers - 1];
            if (u->method != PGF_AUTH_METHOD_TRUST && !warned_user) {
                fprintf(stderr,
                        "pgfault serve: warning: --user puts the password of role '%s' in "
                        "the process list of every local user (ps); use --user-file FILE "
                        "(mode 0600) or PGFAULT_USERS instead (--user with a password is "
                        "deprecated)\n",
                        u->name);
                warned_user = true;
            }
            /* Blank it in our argv, so ps shows it no longer than needed. */
            char *pw = strchr(optarg, ':'), *end = strrchr(optarg, ':');
            if (pw != NULL && end != NULL && end > pw)
                memset(pw + 1, '*', (size_t)(end - pw - 1));
            break;
        }
        case 'P':
            if (load_user_file(optarg, specs, users, &nusers) != 0)
                return PGF_EXIT_USAGE;
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
        case 'L':
            if (pgf__cli_log_level("serve", optarg) != 0)
                return PGF_EXIT_USAGE;
            break;
        case 'q':
            quiet = true;
            break;
        case 'F':
            faults_path = optarg;
            break;
        case 'O':
            fault_log = optarg;
            break;
        case 'A':
            answers_path = optarg;
            break;
        case 'H':
            history_path = optarg;
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
    const char *env_users = getenv("PGFAULT_USERS");
    if (env_users != NULL && *env_users != '\0' &&
        add_user_lines(specs, users, &nusers, env_users, "PGFAULT_USERS line") != 0)
        return PGF_EXIT_USAGE;
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

    if (control_addr != NULL && remote_control) {
        char host[256];
        int port;
        if (pgf_fault_split_hostport(control_addr, host, sizeof host, &port) == 0 &&
            !loopback_host(host))
            fprintf(stderr,
                    "pgfault serve: warning: the control API on %s has no authentication: "
                    "anyone who can reach it can change the fault rules and break every "
                    "connection (--allow-remote-control)\n",
                    control_addr);
    }
    char err[512];
    /* Canned answers and faults first: a bad file must stop us before we listen. */
    pgf_answers *answers = NULL;
    if (answers_path != NULL && pgf_answers_load(answers_path, &answers, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault serve: %s\n", err);
        return PGF_EXIT_USAGE;
    }
    cfg.answers = answers;
    pgf_fault_rules *rules;
    if (pgf__cli_load_rules("serve", faults_path, &rules) != 0) {
        pgf_answers_free(answers);
        return PGF_EXIT_USAGE;
    }
    pgf_fault_engine *engine = NULL;
    size_t nrules = 0;
    if (rules != NULL || control_addr != NULL || fault_log != NULL) {
        engine = pgf_fault_engine_new(cfg.seed);
        if (engine == NULL) {
            fprintf(stderr, "pgfault serve: out of memory\n");
            pgf_fault_rules_free(rules);
            pgf_answers_free(answers);
            return PGF_EXIT_INTERNAL;
        }
        nrules = rules != NULL ? pgf_fault_rules_count(rules) : 0;
        pgf_fault_engine_set_rules(engine, rules); /* takes rules */
        if (fault_log != NULL &&
            pgf_fault_log_open(engine, fault_log, PGF_FAULT_LOG_APPEND, err, sizeof err) != 0) {
            fprintf(stderr, "pgfault serve: %s\n", err);
            pgf_fault_engine_free(engine);
            pgf_answers_free(answers);
            return PGF_EXIT_USAGE;
        }
    }
    cfg.faults = engine;
    pgf_serve_history *hist = NULL;
    if (history_path != NULL) {
        hist = pgf_serve_history_open(history_path, cfg.seed, err, sizeof err);
        if (hist == NULL) {
            fprintf(stderr, "pgfault serve: %s\n", err);
            pgf_fault_engine_free(engine);
            pgf_answers_free(answers);
            return PGF_EXIT_USAGE;
        }
        cfg.on_fault = pgf_serve_history_on_fault;
        cfg.on_fault_arg = hist;
        cfg.on_event = pgf_serve_history_on_event;
        cfg.on_event_arg = hist;
    }
    struct event_base *base = event_base_new();
    if (base == NULL) {
        fprintf(stderr, "pgfault serve: cannot create an event loop\n");
        pgf_serve_history_close(hist);
        pgf_fault_engine_free(engine);
        pgf_answers_free(answers);
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
        pgf_serve_history_close(hist);
        event_base_free(base);
        pgf_fault_engine_free(engine);
        pgf_answers_free(answers);
        return rc == PGF_EINVAL ? PGF_EXIT_USAGE : PGF_EXIT_INTERNAL;
    }
    pgf__cli_stopper stopper = {.base = base, .tag = "[serve]", .stop = stop_server, .obj = srv};
    pgf__cli_stopper_add(&stopper);
    if (!quiet) {
        char addrs[16][256];
        int n = pgf_server_addresses(srv, addrs, 16);
        printf("seed %" PRIu64 "\n", cfg.seed);
        if (faults_path != NULL)
            printf("faults %s (%zu rules)\n", faults_path, nrules);
        if (answers_path != NULL)
            printf("answers %s (%d answers)\n", answers_path, pgf_answers_count(answers));
        for (int i = 0; i < n && i < 16; i++)
            printf("listening %s\n", addrs[i]);
        if (ctl != NULL)
            pgf__cli_print_control(control_addr, control_port);
        fflush(stdout);
    }
    event_base_dispatch(base);
    pgf_server_stats st;
    pgf_server_get_stats(srv, &st);
    pgf_log_info("[serve] stopped: %" PRIu64 " connections, %" PRIu64 " queries", st.accepted,
                 st.queries);
    if (engine != NULL && !quiet) {
        pgf__cli_print_coverage(engine);
    }
    pgf__cli_stopper_free(&stopper);
    pgf_fault_control_free(ctl);
    pgf_server_free(srv);
    pgf_serve_history_close(hist);
    event_base_free(base);
    pgf_fault_engine_free(engine);
    pgf_answers_free(answers);
    return PGF_EXIT_OK;
}

int pgf_cmd_serve(int argc, char **argv)
{
    user_specs specs = {0};
    int rc = serve_main(argc, argv, &specs);
    user_specs_free(&specs);
    return rc;
}
