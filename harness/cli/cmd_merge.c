/* cmd_merge.c - `pgfault merge SHARD_DIR... --out DIR`: one report.json,
 * junit.xml and report.html from the output sets of `pgfault run --shard
 * K/N` (a CI matrix, GitLab parallel:, a Kubernetes Indexed Job).
 *
 * Every input is validated before anything is written (nothing merged on
 * bad input, exit 2, the file named): each shard's report.json and
 * histories must match its manifest (not truncated or changed), each
 * history's records must be in strictly increasing seq order (streamed,
 * plain or .zst), every shard must come from this pgfault version and the
 * same spec and split (count N), no index twice and none missing.
 *
 * report.json is the shards' documents combined (scenarios in shard order,
 * each tagged with its shard and directory; summary summed); junit.xml and
 * report.html are written by the report module from the scenarios' checks,
 * outcomes and replay commands (the per-scenario timelines and plots stay in
 * each shard's own report.html).
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "outdir.h"
#include "pgfault/history.h"
#include "pgfault/report.h"
#include "pgfault/version.h"
#include "usage.h"

#define MAX_SHARDS 4096

typedef struct shard {
    const char *dir;
    char path[4200]; /* DIR/report.json */
    json_t *rep;
    json_int_t index, count;
    const char *spec_digest;
} shard;

static int bad(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int bad(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("pgfault merge: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs(" (nothing merged)\n", stderr);
    va_end(ap);
    return PGF_EXIT_USAGE;
}

/* A history listed in the manifest: its records in strictly increasing seq
 * order (a reordered or spliced history is refused, not re-sorted). */
static int check_history(const char *path)
{
    char err[512];
    pgf_hist_reader *r = NULL;
    if (pgf_hist_reader_open(path, &r, err, sizeof err) != 0)
        return bad("%s", err);
    pgf_rec rec;
    int64_t last = -1;
    unsigned n = 0;
    int rc;
    while ((rc = pgf_hist_reader_next(r, &rec, err, sizeof err)) == 1) {
        n++;
        if ((int64_t)rec.seq <= last) {
            int e =
                bad("%s:%u: record seq %" PRIu64 " after seq %" PRId64 ": the history is reordered",
                    path, rec.line, rec.seq, last);
            pgf_hist_reader_free(r);
            return e;
        }
        last = (int64_t)rec.seq;
    }
    pgf_hist_reader_free(r);
    if (rc < 0)
        return bad("%s", err);
    return 0;
}

/* Load and validate one shard directory. */
static int load_shard(shard *s)
{
    char err[512], mpath[4200];
    snprintf(s->path, sizeof s->path, "%s/report.json", s->dir);
    snprintf(mpath, sizeof mpath, "%s/manifest.json", s->dir);
    json_error_t je;
    json_t *man = json_load_file(mpath, 0, &je);
    if (man == NULL)
        return bad("%s: %s (not the output of a finished `pgfault run --shard`?)", mpath, je.text);
    json_t *files = json_object_get(man, "files");
    size_t i;
    json_t *f;
    int rc = json_is_array(files) ? 0 : bad("%s: no \"files\" list", mpath);
    json_array_foreach(files, i, f)
    {
        const char *p = json_string_value(json_object_get(f, "path"));
        if (rc != 0 || p == NULL)
            continue;
        size_t len = strlen(p);
        bool hist = (len >= 13 && strcmp(p + len - 13, "history.jsonl") == 0) ||
                    (len >= 17 && strcmp(p + len - 17, "history.jsonl.zst") == 0);
        if (!hist && strcmp(p, "report.json") != 0)
            continue;
        char fp[4200];
        snprintf(fp, sizeof fp, "%s/%s", s->dir, p);
        if (pgf_outdir_verify(fp, NULL, 0, err, sizeof err) != 0)
            rc = bad("%s", err);
        else if (hist)
            rc = check_history(fp);
    }
    json_decref(man);
    if (rc != 0)
        return rc;
    s->rep = json_load_file(s->path, 0, &je);
    if (s->rep == NULL)
        return bad("%s:%d:%d: %s", s->path, je.line, je.column, je.text);
    const char *format = json_string_value(json_object_get(s->rep, "format"));
    if (format == NULL || strcmp(format, "pgfault-report") != 0 ||
        json_integer_value(json_object_get(s->rep, "version")) != 1)
        return bad("%s: not a pgfault report (format pgfault-report, version 1)", s->path);
    const char *ver =
        json_string_value(json_object_get(json_object_get(s->rep, "tool"), "version"));
    if (ver == NULL || strcmp(ver, PGF_VERSION) != 0)
        return bad("%s: written by pgfault %s, this is pgfault %s", s->path, ver ? ver : "?",
                   PGF_VERSION);
    json_t *sh = json_object_get(json_object_get(s->rep, "config"), "shard");
    if (!json_is_object(sh))
        return bad("%s: not a shard (run it with --shard K/N)", s->path);
    s->index = json_integer_value(json_object_get(sh, "index"));
    s->count = json_integer_value(json_object_get(sh, "count"));
    s->spec_digest = json_string_value(json_object_get(sh, "spec_digest"));
    if (s->index < 1 || s->count < 1 || s->index > s->count || s->spec_digest == NULL)
        return bad("%s: config.shard is malformed", s->path);
    if (!json_is_array(json_object_get(s->rep, "scenarios")))
        return bad("%s: no scenarios list", s->path);
    return 0;
}

static int by_index(const void *a, const void *b)
{
    const shard *x = a, *y = b;
    return x->index < y->index ? -1 : x->index > y->index;
}

static uint64_t u64(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (json_is_string(v))
        return strtoull(json_string_value(v), NULL, 10);
    return json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
}

/* The merged report.json: the first shard's document with the run, summary,
 * scenarios and config replaced. NULL on ENOMEM. */
static json_t *merge_json(shard *sh, int n, const char *out)
{
    json_t *m = json_deep_copy(sh[0].rep);
    json_t *scs = json_array(), *cfg_scs = json_array(), *shards = json_array();
    if (m == NULL || scs == NULL || cfg_scs == NULL || shards == NULL)
        goto fail;
    uint64_t start = UINT64_MAX, end = 0, nsc = 0, nscf = 0, checks = 0, checksf = 0, hc = 0,
             viol = 0;
    bool interrupted = false;
    for (int k = 0; k < n; k++) {
        json_t *r = sh[k].rep, *run = json_object_get(r, "run"),
               *sum = json_object_get(r, "summary");
        uint64_t a = u64(run, "started_at_us"), b = u64(run, "ended_at_us");
        if (a && a < start)
            start = a;
        if (b > end)
            end = b;
        nsc += u64(sum, "scenarios");
        nscf += u64(sum, "scenarios_failed");
        checks += u64(sum, "checks");
        checksf += u64(sum, "checks_failed");
        hc += u64(sum, "health_checks");
        viol += u64(sum, "violations");
        interrupted = interrupted || json_is_true(json_object_get(sum, "interrupted"));
        char tag[64];
        snprintf(tag, sizeof tag, "%" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT, sh[k].index,
                 sh[k].count);
        size_t i;
        json_t *s;
        json_array_foreach(json_object_get(r, "scenarios"), i, s)
        {
            json_t *c = json_deep_copy(s);
            if (c == NULL || json_object_set_new(c, "shard", json_string(tag)) != 0 ||
                json_object_set_new(c, "shard_dir", json_string(sh[k].dir)) != 0 ||
                json_array_append_new(scs, c) != 0)
                goto fail;
        }
        json_array_extend(cfg_scs, json_object_get(json_object_get(r, "config"), "scenarios"));
        json_t *one = json_pack("{s:I,s:s,s:s}", "index", sh[k].index, "dir", sh[k].dir, "report",
                                sh[k].path);
        if (one == NULL || json_array_append_new(shards, one) != 0)
            goto fail;
    }
    bool passed = checksf == 0;
    json_t *sum = json_pack("{s:s,s:b,s:b,s:I,s:I,s:I,s:I,s:I,s:I}", "verdict",
                            passed ? "pass" : "fail", "passed", passed, "interrupted", interrupted,
                            "scenarios", (json_int_t)nsc, "scenarios_failed", (json_int_t)nscf,
                            "checks", (json_int_t)checks, "checks_failed", (json_int_t)checksf,
                            "health_checks", (json_int_t)hc, "violations", (json_int_t)viol);
    json_t *run = json_deep_copy(json_object_get(sh[0].rep, "run"));
    json_t *cfg = json_pack("{s:O,s:I,s:O}", "scenarios", cfg_scs, "shard_count", sh[0].count,
                            "shards", shards);
    if (sum == NULL || run == NULL || cfg == NULL) {
        json_decref(sum);
        json_decref(run);
        json_decref(cfg);
        goto fail;
    }
    char name[64];
    snprintf(name, sizeof name, "%d merged shards", n);
    json_object_set_new(run, "name", json_string(name));
    json_object_set_new(run, "interrupted", json_boolean(interrupted));
    json_object_set_new(run, "out_dir", json_string(out));
    /* every scenario keeps its own; this re-runs them all (config.scenarios) */
    char replay[4200];
    snprintf(replay, sizeof replay, "pgfault replay %s/report.json", out);
    json_object_set_new(run, "replay_command", json_string(replay));
    if (start != UINT64_MAX && end >= start) {
        json_object_set_new(run, "started_at_us", json_integer((json_int_t)start));
        json_object_set_new(run, "ended_at_us", json_integer((json_int_t)end));
        json_object_set_new(run, "duration_ns", json_integer((json_int_t)((end - start) * 1000)));
        json_object_del(run, "started_at");
        json_object_del(run, "ended_at");
    }
    json_object_set_new(m, "run", run);
    json_object_set_new(m, "summary", sum);
    json_object_set_new(m, "config", cfg);
    json_object_set_new(m, "scenarios", scs);
    json_decref(cfg_scs);
    json_decref(shards);
    return m;
fail:
    json_decref(m);
    json_decref(scs);
    json_decref(cfg_scs);
    json_decref(shards);
    return NULL;
}

/* The merged scenarios as a report model, for junit.xml, report.html and
 * the console summary. NULL on ENOMEM. */
static pgf_report *merge_report(json_t *m)
{
    pgf_report *r = pgf_report_new();
    if (r == NULL)
        return NULL;
    json_t *run = json_object_get(m, "run");
    pgf_report_meta meta = {0};
    meta.tool_version = PGF_VERSION;
    meta.mode = json_string_value(json_object_get(run, "mode"));
    meta.name = json_string_value(json_object_get(run, "name"));
    meta.description = "scenarios of `pgfault run --shard K/N`, merged";
    meta.start_wall_us = u64(run, "started_at_us");
    meta.end_wall_us = u64(run, "ended_at_us");
    meta.duration_ns = u64(run, "duration_ns");
    meta.interrupted = json_is_true(json_object_get(run, "interrupted"));
    meta.out_dir = json_string_value(json_object_get(run, "out_dir"));
    meta.replay_command = json_string_value(json_object_get(run, "replay_command"));
    bool ok = pgf_report_set_meta(r, &meta) == 0 &&
              pgf_report_set_config(r, json_object_get(m, "config")) == 0;
    json_t *cfg_scs = json_object_get(json_object_get(m, "config"), "scenarios");
    size_t i;
    json_t *s;
    json_array_foreach(json_object_get(m, "scenarios"), i, s)
    {
        if (!ok)
            break;
        char desc[2048];
        snprintf(desc, sizeof desc, "%s (shard %s: %s)",
                 json_string_value(json_object_get(s, "description"))
                     ? json_string_value(json_object_get(s, "description"))
                     : "",
                 json_string_value(json_object_get(s, "shard")),
                 json_string_value(json_object_get(s, "shard_dir")));
        pgf_report_scenario *rs =
            pgf_report_add_scenario(r, json_string_value(json_object_get(s, "name")), desc);
        ok = rs != NULL &&
             pgf_report_scenario_set_run(rs, u64(s, "seed"),
                                         json_string_value(json_object_get(s, "replay_command")),
                                         u64(s, "duration_ns")) == 0;
        json_t *c = json_array_get(cfg_scs, i);
        if (ok && c != NULL && json_string_value(json_object_get(c, "mode")) != NULL)
            ok = pgf_report_scenario_set_timing(rs, json_string_value(json_object_get(c, "mode")),
                                                u64(c, "wall_ms") * 1000000) == 0;
        const char *oname;
        json_t *ov;
        json_object_foreach(json_object_get(s, "outcomes"), oname, ov)
        {
            int o = pgf_report_outcome_parse(oname);
            if (ok && o >= 0 && json_integer_value(ov) > 0)
                ok = pgf_report_count_outcome(rs, (pgf_report_outcome)o,
                                              (uint64_t)json_integer_value(ov)) == 0;
        }
        json_object_foreach(json_object_get(s, "violations"), oname, ov)
        {
            if (ok && json_integer_value(ov) > 0)
                ok = pgf_report_count_violation(rs, oname, (uint64_t)json_integer_value(ov)) == 0;
        }
        size_t j;
        json_t *ck;
        json_array_foreach(json_object_get(s, "checks"), j, ck)
        {
            if (!ok)
                break;
            pgf_report_check *pc =
                pgf_report_add_check(rs, json_string_value(json_object_get(ck, "name")),
                                     json_is_true(json_object_get(ck, "passed")),
                                     json_string_value(json_object_get(ck, "kind")),
                                     json_string_value(json_object_get(ck, "message")));
            ok = pc != NULL;
            if (!ok)
                break;
            pgf_report_check_set_session(pc, u64(ck, "session"));
            size_t w;
            json_t *wl;
            json_array_foreach(json_object_get(ck, "witness"), w, wl)
            {
                if (ok && json_is_string(wl))
                    ok = pgf_report_check_add_witness(pc, json_string_value(wl)) == 0;
            }
        }
    }
    if (!ok) {
        pgf_report_free(r);
        return NULL;
    }
    return r;
}

int pgf_cmd_merge(int argc, char **argv)
{
    static shard sh[MAX_SHARDS];
    int n = 0, rc = PGF_EXIT_USAGE;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            pgf__cli_usage_print(stdout, "merge");
            return PGF_EXIT_OK;
        } else if (strcmp(a, "--out") == 0 && i + 1 < argc) {
            out = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "pgfault merge: unknown or incomplete option '%s'\n", a);
            pgf__cli_usage_print(stderr, "merge");
            return PGF_EXIT_USAGE;
        } else if (n == MAX_SHARDS) {
            fprintf(stderr, "pgfault merge: more than %d shards\n", MAX_SHARDS);
            return PGF_EXIT_USAGE;
        } else {
            memset(&sh[n], 0, sizeof sh[n]);
            sh[n++].dir = a;
        }
    }
    if (n == 0 || out == NULL) {
        fprintf(stderr, "pgfault merge: give the shard directories and --out DIR\n");
        pgf__cli_usage_print(stderr, "merge");
        return PGF_EXIT_USAGE;
    }
    char err[512];
    if (pgf_outdir_check_path(out, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault merge: %s\n", err);
        return PGF_EXIT_USAGE;
    }
    json_t *m = NULL;
    pgf_report *rep = NULL;
    pgf_outdir *od = NULL;
    for (int k = 0; k < n; k++)
        if (load_shard(&sh[k]) != 0)
            goto done;
    for (int k = 1; k < n; k++) {
        if (sh[k].count != sh[0].count) {
            bad("%s: shard %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT
                " of another split than %s (of %" JSON_INTEGER_FORMAT ")",
                sh[k].path, sh[k].index, sh[k].count, sh[0].path, sh[0].count);
            goto done;
        }
        if (strcmp(sh[k].spec_digest, sh[0].spec_digest) != 0) {
            bad("%s: recorded with spec %.12s..., %s with %.12s...", sh[k].path, sh[k].spec_digest,
                sh[0].path, sh[0].spec_digest);
            goto done;
        }
    }
    qsort(sh, (size_t)n, sizeof sh[0], by_index);
    for (int k = 1; k < n; k++)
        if (sh[k].index == sh[k - 1].index) {
            bad("%s: shard %" JSON_INTEGER_FORMAT "/%" JSON_INTEGER_FORMAT " again (also %s)",
                sh[k].path, sh[k].index, sh[k].count, sh[k - 1].path);
            goto done;
        }
    if (n != sh[0].count) {
        char missing[256] = "";
        size_t len = 0;
        for (json_int_t want = 1, k = 0; want <= sh[0].count && len < sizeof missing - 16; want++) {
            if (k < n && sh[k].index == want) {
                k++;
                continue;
            }
            len += (size_t)snprintf(missing + len, sizeof missing - len, "%s%" JSON_INTEGER_FORMAT,
                                    len ? ", " : "", want);
        }
        bad("%d of %" JSON_INTEGER_FORMAT " shards given; missing: %s", n, sh[0].count, missing);
        goto done;
    }
    rc = PGF_EXIT_INTERNAL;
    m = merge_json(sh, n, out);
    rep = m != NULL ? merge_report(m) : NULL;
    if (rep == NULL) {
        fprintf(stderr, "pgfault merge: out of memory\n");
        goto done;
    }
    if (pgf_outdir_begin(out, &od, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault merge: %s\n", err);
        goto done;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/report.json", pgf_outdir_stage(od));
    if (json_dump_file(m, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0) {
        fprintf(stderr, "pgfault merge: cannot write %s\n", path);
        goto done;
    }
    if (pgf_report_write_junit(rep, pgf_outdir_stage(od), err, sizeof err) != 0 ||
        pgf_report_write_html(rep, pgf_outdir_stage(od), err, sizeof err) != 0 ||
        pgf_outdir_commit(od, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault merge: %s\n", err);
        goto done;
    }
    pgf_report_print_summary(rep, stdout);
    rc = json_is_true(json_object_get(json_object_get(m, "summary"), "passed"))
             ? PGF_EXIT_OK
             : PGF_EXIT_VIOLATIONS;
done:
    pgf_outdir_free(od);
    pgf_report_free(rep);
    json_decref(m);
    for (int k = 0; k < n; k++)
        json_decref(sh[k].rep);
    return rc;
}
