/* cmd_check.c - `pgfault check HISTORY.jsonl [--spec FILE] [--json]`:
 * (or a run's output directory: its history.jsonl or history.jsonl.zst)
 * read a history one record at a time (plain or .zst) into the streaming
 * checker, print the verdict: memory is the checker's state, not the
 * file's size. With --server-history both files are loaded whole (the
 * join matches records across them).
 *
 * The spec comes from, in order: --spec FILE, the spec embedded in the
 * history's meta line, the session module's own table
 * (pgf_session_spec_json_text(): the CLI composes the layers, the checker
 * knows no session). Exit codes: 0 no violations, 1 violations,
 * 2 bad usage / malformed history or spec (message names file:line),
 * 3 internal failure (out of memory).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pgfault/check.h"
#include "cli.h"
#include "outdir.h"
#include "usage.h"
#include "pgfault/history.h"
#include "pgfault/machine.h"
#include "pgfault/join.h"
#include "pgfault/spec.h"

static void check_usage(FILE *f)
{
    pgf__cli_usage_print(f, "check");
}

/* A run of several scenarios keeps one history per scenario, in
 * DIR/NAME/: name them (one history is checked at a time). How many were
 * named; nothing printed when there are none. */
static size_t list_scenario_histories(const char *dir)
{
    struct dirent **ents = NULL;
    int ne = scandir(dir, &ents, NULL, alphasort);
    size_t n = 0, shown = 0;
    for (int i = 0; i < ne; i++) {
        for (int z = 0; z < 2 && ents[i]->d_name[0] != '.'; z++) {
            char p[4096];
            struct stat st;
            if ((size_t)snprintf(p, sizeof p, "%s/%s/history.jsonl%s", dir, ents[i]->d_name,
                                 z ? ".zst" : "") >= sizeof p ||
                stat(p, &st) != 0 || !S_ISREG(st.st_mode))
                continue;
            if (n++ == 0)
                fprintf(stderr,
                        "pgfault check: %s: a run of several scenarios, one history each; "
                        "check one at a time:\n",
                        dir);
            if (shown < 20) {
                fprintf(stderr, "  %s\n", p);
                shown++;
            }
        }
        free(ents[i]);
    }
    free(ents);
    if (n > shown)
        fprintf(stderr, "  (and %zu more)\n", n - shown);
    return n;
}

/* A run's output directory stands for the history in it: `pgfault check
 * OUT` after `pgfault run --out OUT`, plain or --history-zstd. *path is
 * replaced by buf when it is a directory; 0, or PGF_EXIT_USAGE with the
 * message printed. */
static int resolve_dir(const char **path, char *buf, size_t len)
{
    struct stat st;
    if (strcmp(*path, "-") == 0 || stat(*path, &st) != 0 || !S_ISDIR(st.st_mode))
        return 0; /* a file, stdin, or nothing: the reader names what is wrong */
    static const char *const names[] = {"history.jsonl", "history.jsonl.zst"};
    const char *found = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char p[4096];
        if ((size_t)snprintf(p, sizeof p, "%s/%s", *path, names[i]) >= sizeof p ||
            stat(p, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (found != NULL) {
            fprintf(stderr, "pgfault check: %s: holds both %s and %s; name the one to check\n",
                    *path, found, names[i]);
            return PGF_EXIT_USAGE;
        }
        found = names[i];
    }
    if (found == NULL) {
        if (list_scenario_histories(*path) == 0)
            fprintf(stderr,
                    "pgfault check: %s: a directory without history.jsonl or history.jsonl.zst "
                    "(a run's --out directory, or a history file)\n",
                    *path);
        return PGF_EXIT_USAGE;
    }
    if ((size_t)snprintf(buf, len, "%s%s%s", *path, (*path)[strlen(*path) - 1] == '/' ? "" : "/",
                         found) >= len) {
        fprintf(stderr, "pgfault check: %s: path too long\n", *path);
        return PGF_EXIT_USAGE;
    }
    *path = buf;
    return 0;
}

/* --server-history: the join (include/pgfault/join.h). */
static int join_server(const char *path, const pgf_rec *recs, size_t n, const char *server_path,
                       FILE *out)
{
    char err[512];
    pgf_history *sh = NULL;
    int rc = pgf_history_load(server_path, &sh, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "pgfault check: %s\n", err);
        return rc == PGF_ENOMEM ? PGF_EXIT_INTERNAL : PGF_EXIT_USAGE;
    }
    size_t ns = 0;
    const pgf_rec *srecs = pgf_history_records(sh, &ns);
    pgf_join_result *j = NULL;
    if (pgf_join(recs, n, srecs, ns, &j) < 0) {
        pgf_history_free(sh);
        fprintf(stderr, "pgfault check: out of memory\n");
        return PGF_EXIT_INTERNAL;
    }
    pgf_join_print(out, j, path, server_path);
    int code = j->misclassified > 0 ? PGF_EXIT_VIOLATIONS : PGF_EXIT_OK;
    pgf_join_result_free(j);
    pgf_history_free(sh);
    return code;
}

int pgf_cmd_check(int argc, char **argv)
{
    const char *path = NULL, *spec_path = NULL, *text = NULL, *server_path = NULL;
    bool json = false, digest = false;
    unsigned witness = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            check_usage(stdout);
            return PGF_EXIT_OK;
        } else if (strcmp(a, "--spec") == 0 && i + 1 < argc) {
            spec_path = argv[++i];
        } else if (strcmp(a, "--server-history") == 0 && i + 1 < argc) {
            server_path = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = true;
        } else if (strcmp(a, "--digest") == 0) {
            digest = true;
        } else if (strcmp(a, "--witness") == 0 && i + 1 < argc) {
            char *end = NULL;
            long v = strtol(argv[++i], &end, 10);
            if (*end != '\0' || v < 1 || v > 100000) {
                fprintf(stderr, "pgfault check: --witness wants a number in 1..100000\n");
                return PGF_EXIT_USAGE;
            }
            witness = (unsigned)v;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "pgfault check: unknown or incomplete option '%s'\n", a);
            check_usage(stderr);
            return PGF_EXIT_USAGE;
        } else if (path == NULL) {
            path = a;
        } else {
            fprintf(stderr, "pgfault check: one history at a time ('%s')\n", a);
            return PGF_EXIT_USAGE;
        }
    }
    if (path == NULL) {
        check_usage(stderr);
        return PGF_EXIT_USAGE;
    }
    char dir_history[4096 + 32];
    int drc = resolve_dir(&path, dir_history, sizeof dir_history);
    if (drc != 0)
        return drc;

    char err[512];
    pgf_hist_reader *rd = NULL; /* the history, one record at a time */
    pgf_history *h = NULL;      /* ... or whole: the --server-history join needs every record */
    pgf_spec *spec = NULL;
    pgf_checker *ck = NULL;
    pgf_hist_writer *dw = NULL; /* --digest: a writer that only digests */
    pgf_check_result *res = NULL;
    /* A history from a run's output set must be the one its manifest lists
     * (outdir.h): never check a file from another run or a torn commit. */
    int rc = strcmp(path, "-") == 0 ? 0 : pgf_outdir_verify(path, NULL, 0, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "pgfault check: %s\n", err);
        return rc == PGF_ENOMEM ? PGF_EXIT_INTERNAL : PGF_EXIT_USAGE;
    }
    if (server_path != NULL)
        rc = pgf_history_load(path, &h, err, sizeof err);
    else
        rc = pgf_hist_reader_open(path, &rd, err, sizeof err);
    if (rc < 0) {
        fprintf(stderr, "pgfault check: %s\n", err);
        return rc == PGF_ENOMEM ? PGF_EXIT_INTERNAL : PGF_EXIT_USAGE;
    }
    const pgf_hist_meta *meta = h != NULL ? pgf_history_meta(h) : pgf_hist_reader_meta(rd);
    if (spec_path != NULL)
        rc = pgf_spec_load(spec_path, &spec, err, sizeof err);
    else if (meta->spec_json != NULL)
        rc = pgf_spec_parse(meta->spec_json, strlen(meta->spec_json), "<history meta spec>", &spec,
                            err, sizeof err);
    else if ((text = pgf_session_spec_json_text()) != NULL)
        rc = pgf_spec_parse(text, strlen(text), "<session spec>", &spec, err, sizeof err);
    else {
        snprintf(err, sizeof err, "out of memory building the session spec");
        rc = PGF_ENOMEM;
    }
    int exit_code = PGF_EXIT_USAGE;
    if (rc < 0) {
        fprintf(stderr, "pgfault check: %s\n", err);
        exit_code = rc == PGF_ENOMEM ? PGF_EXIT_INTERNAL : PGF_EXIT_USAGE;
        goto done;
    }
    if (meta->spec_digest != NULL && strcmp(meta->spec_digest, pgf_spec_digest(spec)) != 0)
        fprintf(stderr,
                "pgfault check: warning: the history was recorded with spec %.12s..., checking "
                "against %.12s...\n",
                meta->spec_digest, pgf_spec_digest(spec));

    pgf_check_opts opts = {witness, NULL};
    pgf_check_deadlines dl; /* the run's declared deadlines, from the meta line */
    if (meta->deadlines_json != NULL) {
        if (pgf_check_deadlines_parse(meta->deadlines_json, &dl, err, sizeof err) != 0) {
            fprintf(stderr, "pgfault check: %s:1: %s\n", path, err);
            goto done;
        }
        opts.deadlines = &dl;
    }
    exit_code = PGF_EXIT_INTERNAL;
    if (pgf_checker_new(spec, &opts, &ck) < 0 ||
        (digest &&
         ((dw = pgf_hist_writer_new_fp(NULL)) == NULL || pgf_hist_writer_meta(dw, meta) < 0))) {
        fprintf(stderr, "pgfault check: out of memory\n");
        goto done;
    }
    size_t n = 0;
    const pgf_rec *recs = h != NULL ? pgf_history_records(h, &n) : NULL;
    for (size_t i = 0; recs != NULL && i < n && rc >= 0; i++)
        if ((rc = pgf_checker_feed(ck, &recs[i])) >= 0 && dw != NULL)
            rc = pgf_hist_writer_put(dw, &recs[i]);
    /* streaming: memory stays what the checker holds, whatever the size;
     * the witnesses are the file's own lines */
    pgf_rec rec;
    while (rd != NULL && rc >= 0 && (rc = pgf_hist_reader_next(rd, &rec, err, sizeof err)) == 1) {
        size_t ln;
        const char *line = pgf_hist_reader_line(rd, &ln);
        if ((rc = pgf_checker_feed_line(ck, &rec, line, ln)) >= 0 && dw != NULL)
            rc = pgf_hist_writer_put(dw, &rec);
    }
    if (rc < 0) {
        if (rc == PGF_ENOMEM) {
            fprintf(stderr, "pgfault check: out of memory\n");
        } else {
            fprintf(stderr, "pgfault check: %s\n", err); /* file:line: what */
            exit_code = PGF_EXIT_USAGE;
        }
        goto done;
    }
    rc = pgf_checker_finish(ck, &res);
    ck = NULL;
    if (rc < 0) {
        fprintf(stderr, "pgfault check: %s\n", pgf_strerror(rc));
        goto done;
    }
    if (json) {
        errno = 0;
        if (pgf_check_print_json(stdout, res, path) < 0 || fflush(stdout) != 0) {
            /* The reader closed the pipe (`| head`): what it read is fine
             * and the verdict is still the exit code. */
            if (errno != EPIPE) {
                fprintf(stderr, "pgfault check: cannot write the result: %s\n",
                        errno ? strerror(errno) : "out of memory");
                goto done;
            }
        }
    } else {
        pgf_check_print(stdout, res, path);
    }
    if (dw != NULL) {
        char hex[65];
        pgf_hist_writer_digest(dw, hex);
        fprintf(json ? stderr : stdout, "digest %s\n", hex);
    }
    exit_code = res->total == 0 ? PGF_EXIT_OK : PGF_EXIT_VIOLATIONS;
    if (server_path != NULL) {
        int jrc = join_server(path, recs, n, server_path, json ? stderr : stdout);
        if (jrc != PGF_EXIT_OK && exit_code == PGF_EXIT_OK)
            exit_code = jrc;
        if (jrc == PGF_EXIT_USAGE || jrc == PGF_EXIT_INTERNAL)
            exit_code = jrc;
    }
done:
    if (dw != NULL)
        (void)pgf_hist_writer_close(dw);
    pgf_checker_free(ck);
    pgf_check_result_free(res);
    pgf_spec_free(spec);
    pgf_hist_reader_free(rd);
    pgf_history_free(h);
    return exit_code;
}
