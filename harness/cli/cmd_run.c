/* cmd_run.c - `pgfault run` and `pgfault replay`: load scenarios (files,
 * built-in names, or the whole built-in suite), apply command-line
 * overrides, and hand them to the run library (harness/driver/run.h). */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "outdir.h"
#include "usage.h"
#include "pgfault/log.h"
#include "pgfault/run.h"
#include "pgfault/scenario.h"
#include "pgfault/session.h"

#define MAX_SCENARIOS 64

static volatile sig_atomic_t stop_flag;

/* A stop that does not finish: the run is stuck inside a call (a session
 * manager that deadlocked on its own lock never returns to the loop that
 * reads stop_flag, a console nobody reads blocks it in write()). It ends
 * anyway, exit 3, PGFAULT_STOP_GRACE_S after the first signal or
 * STOP_GRACE2_S after the second, and says so; a third signal ends it at
 * once. Reports are complete only when the stop finished in time. */
#define STOP_GRACE_S  20 /* PGFAULT_STOP_GRACE_S; under Kubernetes' default 30 s before SIGKILL */
#define STOP_GRACE2_S 5
static unsigned stop_grace_s = STOP_GRACE_S;

static void say(const char *msg)
{
    ssize_t n = write(STDERR_FILENO, msg, strlen(msg)); /* async-signal-safe */
    (void)n;
}

static char alarm_msg[256]; /* composed before any signal can come */

static void on_alarm(int sig)
{
    (void)sig;
    say(alarm_msg);
    _exit(PGF_EXIT_INTERNAL);
}

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = stop_flag + 1; /* counted: a new signal while reports are written stops that too */
    if (stop_flag == 1) {
        alarm(stop_grace_s);
    } else if (stop_flag == 2) {
        alarm(stop_grace_s > 0 && stop_grace_s < STOP_GRACE2_S ? stop_grace_s : STOP_GRACE2_S);
    } else {
        say("pgfault run: third signal: exiting now, reports incomplete (exit 3)\n");
        _exit(PGF_EXIT_INTERNAL);
    }
}

static void run_usage(FILE *f)
{
    pgf__cli_usage_print(f, "run");
}

static int load_builtin(const char *name, pgf_scenario *sc, char *err, size_t errlen)
{
    int i = pgf_scenario_builtin_find(name);
    if (i < 0) {
        snprintf(err, errlen, "no built-in scenario '%s' (pgfault run --list)", name);
        return PGF_ENOTFOUND;
    }
    char source[128];
    snprintf(source, sizeof source, "builtin:%s", pgf_scenario_builtin_name((size_t)i));
    const char *text = pgf_scenario_builtin_text((size_t)i);
    return pgf_scenario_load_string(text, strlen(text), source, sc, err, errlen);
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || *s == '-')
        return false;
    *out = v;
    return true;
}

/* A report's server.external has its password masked as **** (config.h);
 * sending "****" would only fail authentication. Remove it, in place, in
 * each form the mask writes (password=**** keyword or query parameter,
 * user:****@ userinfo), so libpq falls back to PGPASSWORD or ~/.pgpass.
 * True when something was removed. */
static bool drop_masked_password(char *conninfo)
{
    bool dropped = false;
    char *p;
    while ((p = strstr(conninfo, ":****@")) != NULL) { /* URL userinfo */
        memmove(p, p + 5, strlen(p + 5) + 1);
        dropped = true;
    }
    for (char *from = conninfo; (p = strstr(from, "password")) != NULL;) {
        char *v = p + strlen("password");
        while (*v == ' ' || *v == '\t')
            v++;
        bool eq = *v == '=';
        if (eq)
            v++;
        while (*v == ' ' || *v == '\t')
            v++;
        bool boundary = p == conninfo || strchr(" \t?&", p[-1]) != NULL;
        if (!boundary || !eq || strncmp(v, "****", 4) != 0 ||
            (v[4] != '\0' && strchr(" \t&#", v[4]) == NULL)) {
            from = p + 1; /* sslpassword=, a real password, or not a keyword */
            continue;
        }
        char *end = v + 4;
        if (p > conninfo && p[-1] == '&')
            p--; /* "&password=****" */
        else if (p > conninfo && p[-1] == '?' && *end == '&')
            end++; /* "?password=****&x" -> "?x" */
        else if (p > conninfo && p[-1] == '?')
            p--; /* "?password=****" at the end */
        while (p > conninfo && (p[-1] == ' ' || p[-1] == '\t'))
            p--;
        memmove(p, end, strlen(end) + 1);
        dropped = true;
        from = p;
    }
    return dropped;
}

/* Longest duration_ms a scenario gets when the whole built-in suite runs. */
#define SUITE_MAX_DURATION_MS 5000

/* What the command line says. */
typedef struct run_opts {
    bool replay;
    const char *cmd; /* "run" or "replay", for messages */
    const char *names[MAX_SCENARIOS];
    int nnames;
    bool list, list_json, explain, quiet, shrink, no_check, fail_fast, history_zstd;
    unsigned shard_k, shard_n; /* --shard K/N; 0 = all */
    bool have_seed, have_mode, have_sessions, have_iter, have_dur, have_threads, have_bugs;
    uint64_t seed, sessions, iterations, duration, threads;
    unsigned bugs;
    pgf_run_mode mode;
    const char *out, *spec_path;
} run_opts;

/* Returned by the helpers when the command should go on. */
#define RUN_CONTINUE (-1)

/* --sessions, --iterations, --duration, --threads: bounded integers. */
static int run_opt_count(run_opts *o, int c, const char *arg)
{
    uint64_t v;
    uint64_t max = c == 'n' ? 100000 : c == 't' ? 256 : c == 'i' ? 100000000 : 604800000;
    if (!parse_u64(arg, &v) || v > max || (c == 'n' && v == 0)) {
        fprintf(stderr, "pgfault %s: --%s '%s': expected an integer in [%d, %" PRIu64 "]\n", o->cmd,
                c == 'n'   ? "sessions"
                : c == 'i' ? "iterations"
                : c == 'd' ? "duration"
                           : "threads",
                arg, c == 'n' ? 1 : 0, max);
        return PGF_EXIT_USAGE;
    }
    if (c == 'n')
        o->sessions = v, o->have_sessions = true;
    else if (c == 'i')
        o->iterations = v, o->have_iter = true;
    else if (c == 'd')
        o->duration = v, o->have_dur = true;
    else
        o->threads = v, o->have_threads = true;
    return RUN_CONTINUE;
}

static int run_opt_shard(run_opts *o, const char *arg)
{
    char *end = NULL;
    errno = 0;
    unsigned long k = strtoul(arg, &end, 10);
    unsigned long nn = end && *end == '/' ? strtoul(end + 1, &end, 10) : 0;
    if (errno != 0 || end == NULL || *end != '\0' || k < 1 || nn < 1 || k > nn || nn > 100000 ||
        arg[0] == '-') {
        fprintf(stderr, "pgfault %s: --shard '%s': expected K/N with 1 <= K <= N\n", o->cmd, arg);
        return PGF_EXIT_USAGE;
    }
    o->shard_k = (unsigned)k, o->shard_n = (unsigned)nn;
    return RUN_CONTINUE;
}

static int run_opt_log_level(run_opts *o, const char *arg)
{
    int lvl = pgf_log_level_parse(arg);
    if (lvl < 0) {
        fprintf(stderr,
                "pgfault %s: --log-level '%s': expected error, warn, info, debug "
                "or trace\n",
                o->cmd, arg);
        return PGF_EXIT_USAGE;
    }
    pgf_log_level_set(lvl);
    return RUN_CONTINUE;
}

/* Apply one getopt result; RUN_CONTINUE or the exit code. */
static int run_opt(run_opts *o, int c, char *arg)
{
    switch (c) {
    case 'S':
        if (o->nnames == MAX_SCENARIOS) {
            fprintf(stderr, "pgfault %s: too many scenarios\n", o->cmd);
            return PGF_EXIT_USAGE;
        }
        o->names[o->nnames++] = arg;
        return RUN_CONTINUE;
    case 'l':
        o->list = true;
        return RUN_CONTINUE;
    case 'J':
        o->list_json = true;
        return RUN_CONTINUE;
    case 'P':
        o->spec_path = arg;
        return RUN_CONTINUE;
    case 's':
        if (!parse_u64(arg, &o->seed)) {
            fprintf(stderr, "pgfault %s: --seed '%s': expected a non-negative integer\n", o->cmd,
                    arg);
            return PGF_EXIT_USAGE;
        }
        o->have_seed = true;
        return RUN_CONTINUE;
    case 'm':
        if (strcmp(arg, "sim") != 0 && strcmp(arg, "stress") != 0) {
            fprintf(stderr, "pgfault %s: --mode '%s': expected sim or stress\n", o->cmd, arg);
            return PGF_EXIT_USAGE;
        }
        o->mode = strcmp(arg, "sim") == 0 ? PGF_MODE_SIM : PGF_MODE_STRESS;
        o->have_mode = true;
        return RUN_CONTINUE;
    case 'n':
    case 'i':
    case 'd':
    case 't':
        return run_opt_count(o, c, arg);
    case 'b':
        if (pgf_session_bugs_parse(arg, &o->bugs) != 0) {
            fprintf(stderr,
                    "pgfault %s: --bugs '%s': unknown bug name (known: none"
#define PGF__BUG_NAME(name, bit, str, doc) ", " str
                    PGF_BUG_MAP(PGF__BUG_NAME)
#undef PGF__BUG_NAME
                        ")\n",
                    o->cmd, arg);
            return PGF_EXIT_USAGE;
        }
        o->have_bugs = true;
        return RUN_CONTINUE;
    case 'o': {
        char perr[256];
        if (pgf_outdir_check_path(arg, perr, sizeof perr) != 0) {
            fprintf(stderr, "pgfault %s: %s\n", o->cmd, perr);
            return PGF_EXIT_USAGE;
        }
        o->out = arg;
        return RUN_CONTINUE;
    }
    case 'k':
        o->shrink = true;
        return RUN_CONTINUE;
    case 'F':
        o->fail_fast = true;
        return RUN_CONTINUE;
    case 'N':
        o->no_check = true;
        return RUN_CONTINUE;
    case 'Z':
        o->history_zstd = true;
        return RUN_CONTINUE;
    case 'K':
        return run_opt_shard(o, arg);
    case 'e':
        o->explain = true;
        return RUN_CONTINUE;
    case 'q':
        o->quiet = true;
        return RUN_CONTINUE;
    case 'L':
        return run_opt_log_level(o, arg);
    case 'h':
        if (o->replay)
            pgf__cli_usage_print(stdout, "replay");
        else
            run_usage(stdout);
        return PGF_EXIT_OK;
    default:
        if (!o->replay)
            run_usage(stderr);
        return PGF_EXIT_USAGE;
    }
}

/* --list --json: the same list as JSON, for scripts: name, description, mode, seed. */
static int run_list_json(void)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr != NULL && i < pgf_scenario_builtin_count(); i++) {
        pgf_scenario sc;
        char err[512];
        const char *t = pgf_scenario_builtin_text(i);
        json_t *o;
        if (pgf_scenario_load_string(t, strlen(t), pgf_scenario_builtin_name(i), &sc, err,
                                     sizeof err) == 0) {
            char seedtxt[32];
            snprintf(seedtxt, sizeof seedtxt, "%" PRIu64, sc.seed);
            o = json_pack("{s:s, s:s?, s:s, s:s, s:i}", "name", sc.name, "description",
                          sc.description, "mode", pgf_run_mode_name(sc.mode), "seed", seedtxt,
                          "sessions", (int)sc.sessions);
            pgf_scenario_clear(&sc);
        } else {
            o = json_pack("{s:s, s:s}", "name", pgf_scenario_builtin_name(i), "error", err);
        }
        if (o == NULL || json_array_append_new(arr, o) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    if (arr == NULL || json_dumpf(arr, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) != 0 ||
        fputc('\n', stdout) == EOF || fflush(stdout) != 0) {
        json_decref(arr);
        if (errno == EPIPE)
            return PGF_EXIT_OK; /* the reader stopped early (| head): not our failure */
        fprintf(stderr, "pgfault run: cannot print the list\n");
        return PGF_EXIT_INTERNAL;
    }
    json_decref(arr);
    return PGF_EXIT_OK;
}

/* --list: one line per built-in scenario. */
static int run_list(void)
{
    for (size_t i = 0; i < pgf_scenario_builtin_count(); i++) {
        pgf_scenario sc;
        char err[512];
        const char *t = pgf_scenario_builtin_text(i);
        if (pgf_scenario_load_string(t, strlen(t), pgf_scenario_builtin_name(i), &sc, err,
                                     sizeof err) == 0) {
            printf("%-24s %s\n", sc.name, sc.description);
            pgf_scenario_clear(&sc);
        } else {
            printf("%-24s (invalid: %s)\n", pgf_scenario_builtin_name(i), err);
        }
    }
    return PGF_EXIT_OK;
}

/* The scenarios being run, in order; storage is their backing store. */
typedef struct run_set {
    pgf_scenario *storage;
    pgf_scenario *scs[MAX_SCENARIOS];
    int n;
    json_t *report; /* replay: the report read */
} run_set;

/* replay: the scenarios recorded in report.json at argv[optind] (those --scenario names). */
static int run_load_report(const run_opts *o, int argc, char **argv, run_set *s)
{
    char err[1024];
    if (optind >= argc) {
        fprintf(stderr, "pgfault replay: give the report.json of the run to replay\n");
        return PGF_EXIT_USAGE;
    }
    json_error_t je;
    if (pgf_outdir_verify(argv[optind], NULL, 0, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault replay: %s\n", err);
        return PGF_EXIT_USAGE;
    }
    s->report = json_load_file(argv[optind], 0, &je);
    if (s->report == NULL) {
        /* jansson gives line -1 when the file could not be read at all */
        if (je.line < 1)
            fprintf(stderr, "pgfault replay: %s: %s (give the report.json a run wrote)\n",
                    argv[optind], access(argv[optind], R_OK) != 0 ? strerror(errno) : je.text);
        else
            fprintf(stderr, "pgfault replay: %s:%d:%d: %s\n", argv[optind], je.line, je.column,
                    je.text);
        return PGF_EXIT_USAGE;
    }
    json_t *arr = json_object_get(json_object_get(s->report, "config"), "scenarios");
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        fprintf(stderr,
                "pgfault replay: %s: no config.scenarios[] to replay (not a pgfault "
                "report?)\n",
                argv[optind]);
        return PGF_EXIT_USAGE;
    }
    for (size_t i = 0; i < json_array_size(arr) && s->n < MAX_SCENARIOS; i++) {
        json_t *e = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *yaml = json_string_value(json_object_get(e, "yaml"));
        if (yaml == NULL)
            continue;
        bool wanted = o->nnames == 0;
        for (int k = 0; k < o->nnames && !wanted; k++)
            wanted = name && strcmp(o->names[k], name) == 0;
        if (!wanted)
            continue;
        pgf_scenario *sc = &s->storage[s->n];
        char source[256];
        snprintf(source, sizeof source, "%s#%s", argv[optind], name ? name : "?");
        if (pgf_scenario_load_string(yaml, strlen(yaml), source, sc, err, sizeof err) != 0) {
            fprintf(stderr, "pgfault replay: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        if (sc->external != NULL && drop_masked_password(sc->external) && !o->quiet)
            printf("note: %s: the report masks server.external's password; libpq takes it "
                   "from PGPASSWORD or ~/.pgpass\n",
                   sc->name);
        s->scs[s->n] = sc;
        s->n++;
    }
    optind++;
    return RUN_CONTINUE;
}

/* No scenario named: the whole built-in suite, long profiles cut short. */
static int run_load_suite(const run_opts *o, run_set *s)
{
    char err[1024];
    for (size_t i = 0; i < pgf_scenario_builtin_count() && s->n < MAX_SCENARIOS; i++) {
        pgf_scenario *sc = &s->storage[s->n];
        if (load_builtin(pgf_scenario_builtin_name(i), sc, err, sizeof err) != 0) {
            fprintf(stderr, "pgfault run: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        /* The whole suite is the demo: a long profile (the one-hour
         * soak) runs a short slice of itself unless --duration says
         * otherwise; `--scenario soak` runs it in full. */
        if (!o->have_dur && sc->duration_ms > SUITE_MAX_DURATION_MS) {
            if (!o->quiet)
                printf("note: %s runs %d ms of its %llu ms profile in the whole-suite run "
                       "(pgfault run --scenario %s for all of it)\n",
                       sc->name, SUITE_MAX_DURATION_MS, (unsigned long long)sc->duration_ms,
                       sc->name);
            sc->duration_ms = SUITE_MAX_DURATION_MS;
        }
        s->scs[s->n] = sc;
        s->n++;
    }
    return RUN_CONTINUE;
}

/* run: scenario files from argv, then --scenario names, else the whole suite. */
static int run_load_args(const run_opts *o, int argc, char **argv, run_set *s)
{
    char err[1024];
    for (int i = optind; i < argc && s->n < MAX_SCENARIOS; i++) {
        if (pgf_scenario_load_file(argv[i], &s->storage[s->n], err, sizeof err) != 0) {
            fprintf(stderr, "pgfault run: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        s->scs[s->n] = &s->storage[s->n];
        s->n++;
    }
    optind = argc;
    for (int k = 0; k < o->nnames && s->n < MAX_SCENARIOS; k++) {
        if (load_builtin(o->names[k], &s->storage[s->n], err, sizeof err) != 0) {
            fprintf(stderr, "pgfault run: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        s->scs[s->n] = &s->storage[s->n];
        s->n++;
    }
    if (s->n == 0)
        return run_load_suite(o, s);
    return RUN_CONTINUE;
}

/* --shard K/N: keep the scenarios of this shard, clear the others. */
static int run_select_shard(const run_opts *o, run_set *s)
{
    /* Deterministic split: the i-th scenario (command-line order, then
     * the built-in order) belongs to shard i mod N + 1. */
    int total = s->n, kept = 0;
    for (int i = 0; i < total; i++) {
        if ((unsigned)i % o->shard_n == o->shard_k - 1)
            s->scs[kept++] = s->scs[i];
        else
            pgf_scenario_clear(s->scs[i]);
    }
    s->n = kept;
    if (s->n == 0) {
        fprintf(stderr, "pgfault %s: --shard %u/%u: no scenario falls in this shard (%d in all)\n",
                o->cmd, o->shard_k, o->shard_n, total);
        return PGF_EXIT_USAGE;
    }
    return RUN_CONTINUE;
}

/* Command-line overrides onto one scenario, then check the result can run. */
static int run_apply_overrides(const run_opts *o, pgf_scenario *sc)
{
    if (o->have_seed)
        sc->seed = o->seed;
    if (o->have_mode)
        sc->mode = o->mode;
    if (o->have_sessions)
        sc->sessions = (unsigned)o->sessions;
    if (o->have_iter)
        sc->iterations = (unsigned)o->iterations;
    if (o->have_dur)
        sc->duration_ms = o->duration;
    if (o->have_threads)
        sc->threads = (unsigned)o->threads;
    if (o->have_bugs)
        sc->bugs = o->bugs;
    if (sc->external != NULL && sc->mode == PGF_MODE_SIM) {
        fprintf(stderr,
                "pgfault %s: %s: --mode sim cannot drive an external server "
                "(server.external); use --mode stress\n",
                o->cmd, sc->name);
        return PGF_EXIT_USAGE;
    }
    if (sc->server_threads > 1 && sc->mode == PGF_MODE_SIM) {
        fprintf(stderr,
                "pgfault %s: %s: --mode sim keeps one event loop (server.threads: %u); use "
                "--mode stress\n",
                o->cmd, sc->name, sc->server_threads);
        return PGF_EXIT_USAGE;
    }
    if (sc->target.kind != PGF_TARGET_BUILTIN && sc->mode == PGF_MODE_SIM) {
        fprintf(stderr,
                "pgfault %s: %s: --mode sim cannot drive a service (target:): it runs in "
                "real time; use --mode stress\n",
                o->cmd, sc->name);
        return PGF_EXIT_USAGE;
    }
    if (sc->iterations == 0 && sc->duration_ms == 0) {
        fprintf(stderr, "pgfault %s: %s: with --iterations 0 give --duration\n", o->cmd, sc->name);
        return PGF_EXIT_USAGE;
    }
    return RUN_CONTINUE;
}

/* Resolve the scenarios to run into s; RUN_CONTINUE or the exit code. */
static int run_resolve(const run_opts *o, int argc, char **argv, run_set *s)
{
    int rc = o->replay ? run_load_report(o, argc, argv, s) : run_load_args(o, argc, argv, s);
    if (rc != RUN_CONTINUE)
        return rc;
    if (optind < argc) {
        fprintf(stderr, "pgfault %s: unexpected argument '%s'\n", o->cmd, argv[optind]);
        return PGF_EXIT_USAGE;
    }
    if (o->shard_n > 0 && (rc = run_select_shard(o, s)) != RUN_CONTINUE)
        return rc;
    if (s->n == 0) {
        fprintf(stderr, "pgfault %s: no scenario to run\n", o->cmd);
        return PGF_EXIT_USAGE;
    }
    for (int i = 0; i < s->n; i++)
        if ((rc = run_apply_overrides(o, s->scs[i])) != RUN_CONTINUE)
            return rc;
    return RUN_CONTINUE;
}

/* Run the suite until done or SIGINT/SIGTERM. */
static int run_dispatch(const run_opts *o, run_set *s)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sa.sa_handler = on_alarm;
    sigaction(SIGALRM, &sa, NULL);
    const char *g = getenv("PGFAULT_STOP_GRACE_S");
    if (g != NULL && *g != '\0') {
        char *end;
        unsigned long v = strtoul(g, &end, 10);
        if (*end != '\0' || v > 86400 || *g == '-') {
            fprintf(stderr,
                    "pgfault %s: PGFAULT_STOP_GRACE_S=%s: want whole seconds, 0-86400 (0: wait for "
                    "ever)\n",
                    o->cmd, g);
            return PGF_EXIT_USAGE;
        }
        stop_grace_s = (unsigned)v;
    }
    snprintf(alarm_msg, sizeof alarm_msg,
             "pgfault %s: the run did not stop in time after SIGINT/SIGTERM (%u s after the "
             "first signal, PGFAULT_STOP_GRACE_S; %d s after a second): stuck inside a call, or "
             "writing to a console nobody reads? Exiting, reports incomplete (exit 3)\n",
             o->cmd, stop_grace_s, STOP_GRACE2_S);
    pgf_run_opts ro = {0};
    ro.out_dir = o->out ? o->out : (o->replay ? "out/replay" : "out");
    ro.quiet = o->quiet;
    ro.shrink = o->shrink;
    ro.fail_fast = o->fail_fast;
    ro.no_check = o->no_check;
    ro.history_zstd = o->history_zstd;
    ro.shard_index = o->shard_k;
    ro.shard_count = o->shard_n;
    ro.spec_path = o->spec_path;
    ro.console = stdout;
    ro.stop = &stop_flag;
    ro.replay_base = "pgfault";
    int rc = pgf_run_suite(s->scs, s->n, &ro);
    /* What the console still holds goes out while the grace still runs:
     * exit()'s own flush comes after alarm(0) and would wait for ever on a
     * pipe nobody reads (seen in CI: the run stopped in time, then its one
     * thread left sat in anon_pipe_write). */
    fflush(stdout);
    fflush(stderr);
    alarm(0); /* stopped in time */
    return rc;
}

static int run_main(int argc, char **argv, bool replay)
{
    struct option opts[32];
    if (pgf__cli_longopts("run", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    run_opts o = {0};
    o.replay = replay;
    o.cmd = replay ? "replay" : "run";
    o.mode = PGF_MODE_SIM;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int orc = run_opt(&o, c, optarg);
        if (orc != RUN_CONTINUE)
            return orc;
    }
    if (o.list_json && !o.list) {
        fprintf(stderr, "pgfault %s: --json goes with --list\n", o.cmd);
        return PGF_EXIT_USAGE;
    }
    if (o.list)
        return o.list_json ? run_list_json() : run_list();

    static pgf_scenario storage[MAX_SCENARIOS];
    run_set s = {.storage = storage};
    int rc = run_resolve(&o, argc, argv, &s);
    if (rc == RUN_CONTINUE && o.explain) {
        for (int i = 0; i < s.n; i++) {
            printf("---\n# %s\n", s.scs[i]->source);
            pgf_scenario_write_yaml(s.scs[i], stdout);
        }
        rc = PGF_EXIT_OK;
    } else if (rc == RUN_CONTINUE) {
        rc = run_dispatch(&o, &s);
    }
    for (int i = 0; i < s.n; i++)
        pgf_scenario_clear(s.scs[i]);
    json_decref(s.report);
    return rc;
}

int pgf_cmd_run(int argc, char **argv)
{
    return run_main(argc, argv, false);
}

int pgf_cmd_replay(int argc, char **argv)
{
    return run_main(argc, argv, true);
}
