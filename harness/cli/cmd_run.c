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

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = stop_flag + 1; /* counted: a new signal while reports are written stops that too */
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

static int run_main(int argc, char **argv, bool replay)
{
    struct option opts[32];
    if (pgf__cli_longopts("run", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    const char *names[MAX_SCENARIOS];
    int nnames = 0;
    bool list = false, list_json = false, explain = false, quiet = false, shrink = false,
         no_check = false, fail_fast = false, history_zstd = false;
    unsigned shard_k = 0, shard_n = 0; /* --shard K/N; 0 = all */
    bool have_seed = false, have_mode = false, have_sessions = false, have_iter = false,
         have_dur = false, have_threads = false, have_bugs = false;
    uint64_t seed = 0, sessions = 0, iterations = 0, duration = 0, threads = 0;
    unsigned bugs = 0;
    pgf_run_mode mode = PGF_MODE_SIM;
    const char *out = NULL, *spec_path = NULL;
    const char *cmd = replay ? "replay" : "run";
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'S':
            if (nnames == MAX_SCENARIOS) {
                fprintf(stderr, "pgfault %s: too many scenarios\n", cmd);
                return PGF_EXIT_USAGE;
            }
            names[nnames++] = optarg;
            break;
        case 'l':
            list = true;
            break;
        case 'J':
            list_json = true;
            break;
        case 'P':
            spec_path = optarg;
            break;
        case 's':
            if (!parse_u64(optarg, &seed)) {
                fprintf(stderr, "pgfault %s: --seed '%s': expected a non-negative integer\n", cmd,
                        optarg);
                return PGF_EXIT_USAGE;
            }
            have_seed = true;
            break;
        case 'm':
            if (strcmp(optarg, "sim") != 0 && strcmp(optarg, "stress") != 0) {
                fprintf(stderr, "pgfault %s: --mode '%s': expected sim or stress\n", cmd, optarg);
                return PGF_EXIT_USAGE;
            }
            mode = strcmp(optarg, "sim") == 0 ? PGF_MODE_SIM : PGF_MODE_STRESS;
            have_mode = true;
            break;
        case 'n':
        case 'i':
        case 'd':
        case 't': {
            uint64_t v;
            uint64_t max = c == 'n' ? 100000 : c == 't' ? 256 : c == 'i' ? 100000000 : 604800000;
            if (!parse_u64(optarg, &v) || v > max || (c == 'n' && v == 0)) {
                fprintf(stderr, "pgfault %s: --%s '%s': expected an integer in [%d, %" PRIu64 "]\n",
                        cmd,
                        c == 'n'   ? "sessions"
                        : c == 'i' ? "iterations"
                        : c == 'd' ? "duration"
                                   : "threads",
                        optarg, c == 'n' ? 1 : 0, max);
                return PGF_EXIT_USAGE;
            }
            if (c == 'n')
                sessions = v, have_sessions = true;
            else if (c == 'i')
                iterations = v, have_iter = true;
            else if (c == 'd')
                duration = v, have_dur = true;
            else
                threads = v, have_threads = true;
            break;
        }
        case 'b':
            if (pgf_session_bugs_parse(optarg, &bugs) != 0) {
                fprintf(stderr, "pgfault %s: --bugs '%s': unknown bug name\n", cmd, optarg);
                return PGF_EXIT_USAGE;
            }
            have_bugs = true;
            break;
        case 'o': {
            char perr[256];
            if (pgf_outdir_check_path(optarg, perr, sizeof perr) != 0) {
                fprintf(stderr, "pgfault %s: %s\n", cmd, perr);
                return PGF_EXIT_USAGE;
            }
            out = optarg;
            break;
        }
        case 'k':
            shrink = true;
            break;
        case 'F':
            fail_fast = true;
            break;
        case 'N':
            no_check = true;
            break;
        case 'Z':
            history_zstd = true;
            break;
        case 'K': {
            char *end = NULL;
            errno = 0;
            unsigned long k = strtoul(optarg, &end, 10);
            unsigned long nn = end && *end == '/' ? strtoul(end + 1, &end, 10) : 0;
            if (errno != 0 || end == NULL || *end != '\0' || k < 1 || nn < 1 || k > nn ||
                nn > 100000 || optarg[0] == '-') {
                fprintf(stderr, "pgfault %s: --shard '%s': expected K/N with 1 <= K <= N\n", cmd,
                        optarg);
                return PGF_EXIT_USAGE;
            }
            shard_k = (unsigned)k, shard_n = (unsigned)nn;
            break;
        }
        case 'e':
            explain = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'L': {
            int lvl = pgf_log_level_parse(optarg);
            if (lvl < 0) {
                fprintf(stderr,
                        "pgfault %s: --log-level '%s': expected error, warn, info, debug "
                        "or trace\n",
                        cmd, optarg);
                return PGF_EXIT_USAGE;
            }
            pgf_log_level_set(lvl);
            break;
        }
        case 'h':
            if (replay)
                pgf__cli_usage_print(stdout, "replay");
            else
                run_usage(stdout);
            return PGF_EXIT_OK;
        default:
            if (!replay)
                run_usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    if (list_json && !list) {
        fprintf(stderr, "pgfault %s: --json goes with --list\n", cmd);
        return PGF_EXIT_USAGE;
    }
    if (list && list_json) {
        /* The same list as JSON, for scripts: name, description, mode, seed. */
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
    if (list) {
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

    static pgf_scenario storage[MAX_SCENARIOS];
    pgf_scenario *scs[MAX_SCENARIOS];
    int n = 0;
    char err[1024];
    int rc = PGF_EXIT_OK;
    json_t *report = NULL;
    if (replay) {
        if (optind >= argc) {
            fprintf(stderr, "pgfault replay: give the report.json of the run to replay\n");
            return PGF_EXIT_USAGE;
        }
        json_error_t je;
        if (pgf_outdir_verify(argv[optind], NULL, 0, err, sizeof err) != 0) {
            fprintf(stderr, "pgfault replay: %s\n", err);
            return PGF_EXIT_USAGE;
        }
        report = json_load_file(argv[optind], 0, &je);
        if (report == NULL) {
            /* jansson gives line -1 when the file could not be read at all */
            if (je.line < 1)
                fprintf(stderr, "pgfault replay: %s: %s (give the report.json a run wrote)\n",
                        argv[optind], access(argv[optind], R_OK) != 0 ? strerror(errno) : je.text);
            else
                fprintf(stderr, "pgfault replay: %s:%d:%d: %s\n", argv[optind], je.line, je.column,
                        je.text);
            return PGF_EXIT_USAGE;
        }
        json_t *arr = json_object_get(json_object_get(report, "config"), "scenarios");
        if (!json_is_array(arr) || json_array_size(arr) == 0) {
            fprintf(stderr,
                    "pgfault replay: %s: no config.scenarios[] to replay (not a pgfault "
                    "report?)\n",
                    argv[optind]);
            json_decref(report);
            return PGF_EXIT_USAGE;
        }
        for (size_t i = 0; i < json_array_size(arr) && n < MAX_SCENARIOS; i++) {
            json_t *e = json_array_get(arr, i);
            const char *name = json_string_value(json_object_get(e, "name"));
            const char *yaml = json_string_value(json_object_get(e, "yaml"));
            if (yaml == NULL)
                continue;
            bool wanted = nnames == 0;
            for (int k = 0; k < nnames && !wanted; k++)
                wanted = name && strcmp(names[k], name) == 0;
            if (!wanted)
                continue;
            char source[256];
            snprintf(source, sizeof source, "%s#%s", argv[optind], name ? name : "?");
            if (pgf_scenario_load_string(yaml, strlen(yaml), source, &storage[n], err,
                                         sizeof err) != 0) {
                fprintf(stderr, "pgfault replay: %s\n", err);
                rc = PGF_EXIT_USAGE;
                goto done;
            }
            if (storage[n].external != NULL && drop_masked_password(storage[n].external) && !quiet)
                printf("note: %s: the report masks server.external's password; libpq takes it "
                       "from PGPASSWORD or ~/.pgpass\n",
                       storage[n].name);
            scs[n] = &storage[n];
            n++;
        }
        optind++;
    } else {
        for (int i = optind; i < argc && n < MAX_SCENARIOS; i++) {
            if (pgf_scenario_load_file(argv[i], &storage[n], err, sizeof err) != 0) {
                fprintf(stderr, "pgfault run: %s\n", err);
                rc = PGF_EXIT_USAGE;
                goto done;
            }
            scs[n] = &storage[n];
            n++;
        }
        optind = argc;
        for (int k = 0; k < nnames && n < MAX_SCENARIOS; k++) {
            if (load_builtin(names[k], &storage[n], err, sizeof err) != 0) {
                fprintf(stderr, "pgfault run: %s\n", err);
                rc = PGF_EXIT_USAGE;
                goto done;
            }
            scs[n] = &storage[n];
            n++;
        }
        if (n == 0) {
            for (size_t i = 0; i < pgf_scenario_builtin_count() && n < MAX_SCENARIOS; i++) {
                if (load_builtin(pgf_scenario_builtin_name(i), &storage[n], err, sizeof err) != 0) {
                    fprintf(stderr, "pgfault run: %s\n", err);
                    rc = PGF_EXIT_USAGE;
                    goto done;
                }
                /* The whole suite is the demo: a long profile (the one-hour
                 * soak) runs a short slice of itself unless --duration says
                 * otherwise; `--scenario soak` runs it in full. */
                if (!have_dur && storage[n].duration_ms > SUITE_MAX_DURATION_MS) {
                    if (!quiet)
                        printf("note: %s runs %d ms of its %llu ms profile in the whole-suite run "
                               "(pgfault run --scenario %s for all of it)\n",
                               storage[n].name, SUITE_MAX_DURATION_MS,
                               (unsigned long long)storage[n].duration_ms, storage[n].name);
                    storage[n].duration_ms = SUITE_MAX_DURATION_MS;
                }
                scs[n] = &storage[n];
                n++;
            }
        }
    }
    if (optind < argc) {
        fprintf(stderr, "pgfault %s: unexpected argument '%s'\n", cmd, argv[optind]);
        rc = PGF_EXIT_USAGE;
        goto done;
    }
    if (shard_n > 0) {
        /* Deterministic split: the i-th scenario (command-line order, then
         * the built-in order) belongs to shard i mod N + 1. */
        int total = n, kept = 0;
        for (int i = 0; i < total; i++) {
            if ((unsigned)i % shard_n == shard_k - 1)
                scs[kept++] = scs[i];
            else
                pgf_scenario_clear(scs[i]);
        }
        n = kept;
        if (n == 0) {
            fprintf(stderr,
                    "pgfault %s: --shard %u/%u: no scenario falls in this shard (%d in all)\n", cmd,
                    shard_k, shard_n, total);
            rc = PGF_EXIT_USAGE;
            goto done;
        }
    }
    if (n == 0) {
        fprintf(stderr, "pgfault %s: no scenario to run\n", cmd);
        rc = PGF_EXIT_USAGE;
        goto done;
    }
    for (int i = 0; i < n; i++) {
        pgf_scenario *sc = scs[i];
        if (have_seed)
            sc->seed = seed;
        if (have_mode)
            sc->mode = mode;
        if (have_sessions)
            sc->sessions = (unsigned)sessions;
        if (have_iter)
            sc->iterations = (unsigned)iterations;
        if (have_dur)
            sc->duration_ms = duration;
        if (have_threads)
            sc->threads = (unsigned)threads;
        if (have_bugs)
            sc->bugs = bugs;
        if (sc->external != NULL && sc->mode == PGF_MODE_SIM) {
            fprintf(stderr,
                    "pgfault %s: %s: --mode sim cannot drive an external server "
                    "(server.external); use --mode stress\n",
                    cmd, sc->name);
            rc = PGF_EXIT_USAGE;
            goto done;
        }
        if (sc->target.kind != PGF_TARGET_BUILTIN && sc->mode == PGF_MODE_SIM) {
            fprintf(stderr,
                    "pgfault %s: %s: --mode sim cannot drive a service (target:): it runs in "
                    "real time; use --mode stress\n",
                    cmd, sc->name);
            rc = PGF_EXIT_USAGE;
            goto done;
        }
        if (sc->iterations == 0 && sc->duration_ms == 0) {
            fprintf(stderr, "pgfault %s: %s: with --iterations 0 give --duration\n", cmd, sc->name);
            rc = PGF_EXIT_USAGE;
            goto done;
        }
    }
    if (explain) {
        for (int i = 0; i < n; i++) {
            printf("---\n# %s\n", scs[i]->source);
            pgf_scenario_write_yaml(scs[i], stdout);
        }
        goto done;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pgf_run_opts ro = {0};
    ro.out_dir = out ? out : (replay ? "out/replay" : "out");
    ro.quiet = quiet;
    ro.shrink = shrink;
    ro.fail_fast = fail_fast;
    ro.no_check = no_check;
    ro.history_zstd = history_zstd;
    ro.shard_index = shard_k;
    ro.shard_count = shard_n;
    ro.spec_path = spec_path;
    ro.console = stdout;
    ro.stop = &stop_flag;
    ro.replay_base = "pgfault";
    rc = pgf_run_suite(scs, n, &ro);
done:
    for (int i = 0; i < n; i++)
        pgf_scenario_clear(scs[i]);
    json_decref(report);
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
