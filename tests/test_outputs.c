/* test_outputs.c - nothing lost, no secret shown (issue 11), in-process:
 * the output set (harness/driver/outdir.c) committed, replaced, aborted and
 * verified; the linear escapers on a multi-MB string; DATABASE_URL errors
 * that never contain the password, whatever form it was given in.
 * The whole-process cases (full disk, SIGKILL, SIGTERM while writing, the
 * grep of every output of every command) are tests/e2e/outputs.sh and
 * tests/e2e/secrets.sh. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "atomic.h"
#include "outdir.h"
#include "pgf_test.h"
#include "pgfault/config.h"
#include "pgfault/secret.h"
#include "report_internal.h"
#include "testutil.h"

static char *path2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void put(const char *dir, const char *rel, const char *text)
{
    char *p = path2(dir, rel);
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs(text, f);
    fclose(f);
    free(p);
}

static char *get(const char *dir, const char *rel)
{
    char *p = path2(dir, rel);
    FILE *f = fopen(p, "r");
    free(p);
    if (f == NULL)
        return NULL;
    char *buf = calloc(1, 4096);
    size_t n = fread(buf, 1, 4095, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static bool exists(const char *dir, const char *rel)
{
    char *p = path2(dir, rel);
    bool e = access(p, F_OK) == 0;
    free(p);
    return e;
}

static int entries_in(const char *dir)
{
    int n = 0;
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "ls -A '%s' | grep -c '^\\.pgfault-new' || true", dir);
    FILE *f = popen(cmd, "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &n) != 1)
            n = -1;
        pclose(f);
    }
    return n;
}

/* ---- the output set ---- */

static void set_commit_replace_verify(void)
{
    char *root = pgf_t_mkdtemp("outdir");
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    char *out = path2(root, "a/b/out"); /* parents are created */
    char err[1024] = "";

    /* run 1: a suite-shaped set */
    pgf_outdir *od = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(out, &od, err, sizeof err), 0);
    const char *st = pgf_outdir_stage(od);
    CU_ASSERT_PTR_NOT_NULL(strstr(st, "/.pgfault-new."));
    CU_ASSERT_FALSE(exists(out, "report.json")); /* nothing visible before the commit */
    put(st, "report.json", "{\"run\":1}\n");
    char *sub = path2(st, "s1");
    CU_ASSERT_EQUAL(mkdir(sub, 0755), 0);
    free(sub);
    put(st, "s1/history.jsonl", "one\n");
    CU_ASSERT_FALSE(exists(out, "report.json"));
    char id1[64];
    snprintf(id1, sizeof id1, "%s", pgf_outdir_run_id(od));
    CU_ASSERT_EQUAL(pgf_outdir_commit(od, err, sizeof err), 0);
    pgf_outdir_free(od);
    char *c = get(out, "report.json");
    CU_ASSERT(c != NULL && strcmp(c, "{\"run\":1}\n") == 0);
    free(c);
    CU_ASSERT_EQUAL(entries_in(out), 0);
    char *hist = path2(out, "s1/history.jsonl");
    char rid[64];
    CU_ASSERT_EQUAL(pgf_outdir_verify(hist, rid, sizeof rid, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(rid, id1);

    /* a foreign file stays through every later commit */
    put(out, "mine.txt", "keep\n");

    /* run 2 aborted: run 1 intact, staging gone */
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(out, &od, err, sizeof err), 0);
    put(pgf_outdir_stage(od), "report.json", "{\"run\":2}\n");
    pgf_outdir_free(od);
    c = get(out, "report.json");
    CU_ASSERT(c != NULL && strcmp(c, "{\"run\":1}\n") == 0);
    free(c);
    CU_ASSERT_EQUAL(entries_in(out), 0);

    /* run 3, a single-scenario set: s1/ (only the old manifest's) goes */
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(out, &od, err, sizeof err), 0);
    put(pgf_outdir_stage(od), "report.json", "{\"run\":3}\n");
    put(pgf_outdir_stage(od), "history.jsonl", "three\n");
    CU_ASSERT_EQUAL(pgf_outdir_commit(od, err, sizeof err), 0);
    pgf_outdir_free(od);
    CU_ASSERT_FALSE(exists(out, "s1"));
    c = get(out, "mine.txt");
    CU_ASSERT(c != NULL && strcmp(c, "keep\n") == 0);
    free(c);
    char *h3 = path2(out, "history.jsonl");
    CU_ASSERT_EQUAL(pgf_outdir_verify(h3, NULL, 0, err, sizeof err), 0);

    /* a changed file is refused, naming it and the run */
    put(out, "history.jsonl", "tampered\n");
    CU_ASSERT_EQUAL(pgf_outdir_verify(h3, NULL, 0, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, h3));
    /* a file no manifest lists is not the set's business */
    char *mine = path2(out, "mine.txt");
    CU_ASSERT_EQUAL(pgf_outdir_verify(mine, rid, sizeof rid, err, sizeof err), 0);
    CU_ASSERT_STRING_EQUAL(rid, "");

    free(mine);
    free(h3);
    free(hist);
    free(out);
    pgf_t_rmtree(root);
    free(root);
}

/* A file written through atomic.h is not read back for the manifest: its
 * digest was taken as it was written, and is used while the file keeps its
 * inode, size and mtime (a history of GBs made the commit O(the run)). A
 * file changed since is read again. Shown both ways: a same-size change
 * with its mtime put back (invisible to that key on purpose) commits the
 * digest of the bytes written, which verify then refuses; a plain change
 * commits the new content's digest, which verify accepts. */
static void written_digest_used_while_unchanged(void)
{
    char *root = pgf_t_mkdtemp("outdir-digest");
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    char *out = path2(root, "out");
    char err[1024] = "";
    pgf_outdir *od = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(out, &od, err, sizeof err), 0);
    const char *st = pgf_outdir_stage(od);
    const char *names[2] = {"kept.jsonl", "changed.jsonl"};
    for (int i = 0; i < 2; i++) {
        pgf_atomic_file af;
        CU_ASSERT_EQUAL_FATAL(pgf_atomic_file_open(&af, st, names[i], err, sizeof err), 0);
        for (int k = 0; k < 1000; k++)
            fprintf(af.fp, "{\"seq\":%d}\n", k);
        CU_ASSERT_EQUAL_FATAL(pgf_atomic_file_commit(&af, err, sizeof err), 0);
    }
    /* kept.jsonl: the same size, mtime restored */
    char *kept = path2(st, names[0]);
    struct stat before;
    CU_ASSERT_EQUAL_FATAL(stat(kept, &before), 0);
    int fd = open(kept, O_WRONLY);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_EQUAL(pwrite(fd, "X", 1, 0), 1);
    struct timespec times[2] = {before.st_atim, before.st_mtim};
    CU_ASSERT_EQUAL(futimens(fd, times), 0);
    close(fd);
    /* changed.jsonl: a plain append */
    char *changed = path2(st, names[1]);
    FILE *f = fopen(changed, "a");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    fputs("{\"seq\":1000}\n", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgf_outdir_commit(od, err, sizeof err), 0);
    pgf_outdir_free(od);
    char *kept_out = path2(out, names[0]), *changed_out = path2(out, names[1]);
    CU_ASSERT_EQUAL(pgf_outdir_verify(kept_out, NULL, 0, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "does not match"));
    CU_ASSERT_EQUAL(pgf_outdir_verify(changed_out, NULL, 0, err, sizeof err), 0);
    free(kept_out);
    free(changed_out);
    free(kept);
    free(changed);
    free(out);
    pgf_t_rmtree(root);
    free(root);
}

static void stale_staging_is_discarded(void)
{
    char *root = pgf_t_mkdtemp("outdir-crash");
    CU_ASSERT_PTR_NOT_NULL_FATAL(root);
    char err[1024];
    /* A staging directory left by a dead process (a pid that cannot be
     * alive) before its commit began (no staged manifest) is discarded;
     * completing one that crashed mid-commit is tests/e2e/outputs.sh. */
    pgf_outdir *od = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(root, &od, err, sizeof err), 0);
    put(pgf_outdir_stage(od), "a.txt", "new a\n");
    CU_ASSERT_EQUAL(pgf_outdir_commit(od, err, sizeof err), 0);
    pgf_outdir_free(od);
    char *stale = path2(root, ".pgfault-new.999999999.abcdef");
    CU_ASSERT_EQUAL_FATAL(mkdir(stale, 0755), 0);
    put(stale, "b.txt", "crashed b\n");
    put(stale, "junk.tmp", "x");
    CU_ASSERT_EQUAL_FATAL(pgf_outdir_begin(root, &od, err, sizeof err), 0);
    CU_ASSERT_FALSE(exists(root, ".pgfault-new.999999999.abcdef"));
    CU_ASSERT_FALSE(exists(root, "b.txt"));
    pgf_outdir_free(od);
    free(stale);
    pgf_t_rmtree(root);
    free(root);
}

static void out_path_limits(void)
{
    char err[512];
    char *longname = malloc(PGF_OUTDIR_MAX + 2);
    memset(longname, 'a', PGF_OUTDIR_MAX + 1);
    longname[PGF_OUTDIR_MAX + 1] = '\0';
    for (int i = 100; i < PGF_OUTDIR_MAX; i += 100)
        longname[i] = '/';
    CU_ASSERT_EQUAL(pgf_outdir_check_path(longname, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "at most"));
    longname[PGF_OUTDIR_MAX] = '\0';
    CU_ASSERT_EQUAL(pgf_outdir_check_path(longname, err, sizeof err), 0);
    memset(longname, 'b', 300);
    longname[300] = '\0';
    CU_ASSERT_EQUAL(pgf_outdir_check_path(longname, err, sizeof err), PGF_EINVAL);
    CU_ASSERT_EQUAL(pgf_outdir_check_path("", err, sizeof err), PGF_EINVAL);
    CU_ASSERT_EQUAL(pgf_outdir_check_path("out/x", err, sizeof err), 0);
    free(longname);
}

/* ---- escaping: linear ---- */

static void escapers_are_linear(void)
{
    /* 8 MB of the worst mix (markup, multi-byte UTF-8, control bytes).
     * Quadratic escaping needs hours for this; linear, well under a
     * second. The ctest timeout is the bound: no wall-clock assertion. */
    size_t n = 8u << 20;
    char *s = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    static const char unit[] = "<&>\"'\xC3\xA9\x01z"; /* 9 bytes */
    for (size_t i = 0; i + 9 <= n; i += 9)
        memcpy(s + i, unit, 9);
    size_t used = n - n % 9;
    s[used] = '\0';
    pgf_buf b = PGF_BUF_INIT;
    pgf__xml_escape(&b, s, true);
    CU_ASSERT_FALSE(b.failed);
    /* &lt;&amp;&gt;&quot;&#39; é \x01 z = 4+5+4+6+5+2+4+1 */
    CU_ASSERT_EQUAL(b.len, used / 9 * 31);
    pgf_buf_reset(&b);
    pgf__console_escape(&b, s, false);
    CU_ASSERT_FALSE(b.failed);
    CU_ASSERT_EQUAL(b.len, used / 9 * 12);
    pgf_buf_free(&b);
    free(s);
}

/* ---- secrets ---- */

#define SECRET "Zq9Secret"

static void rejected_database_url_never_shows_the_password(void)
{
    static const char *const urls[] = {
        "postgresql://u:" SECRET "@h:badport/db",
        "postgresql://u:Zq/9Secret@h/db",    /* '/' inside: libpq reads port "Zq" */
        "postgresql://u:Zq9%Secret@h/db",    /* bad percent-encoding, echoed by libpq */
        "postgresql://u:" SECRET "@[::1/db", /* unterminated IPv6 */
        "mysql://u:" SECRET "@h/db",
        "postgresql://u@h/db?password=" SECRET "&bogus=1",
        "postgresql://u:" SECRET "@h/db?port=x",
        "host=h password=" SECRET,
        "host=h password='" SECRET " x'",
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char var[512];
        snprintf(var, sizeof var, "DATABASE_URL=%s", urls[i]);
        const char *env[] = {var, NULL};
        pgf_config c;
        char err[1024] = "";
        int rc = pgf_config_resolve(env, &c, err, sizeof err);
        CU_ASSERT_EQUAL(rc, PGF_EINVAL);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, "DATABASE_URL"));
        CU_ASSERT_PTR_NULL(strstr(err, SECRET));
        CU_ASSERT_PTR_NULL(strstr(err, "9Secret"));
        CU_ASSERT_PTR_NULL(strstr(err, "'Zq'"));
        if (strstr(err, SECRET) != NULL || strstr(err, "9Secret") != NULL)
            fprintf(stderr, "leak for %s: %s\n", urls[i], err);
        pgf_config_clear(&c);
    }
}

static void masks_every_conninfo_form(void)
{
    static const char *const forms[] = {
        "postgresql://u:" SECRET "@h/db",
        "postgres://u:" SECRET "@h:5432/db?sslmode=disable",
        "postgresql://u@h/db?password=" SECRET,
        "postgresql://u@h/db?sslmode=disable&password=" SECRET "&x=1",
        "host=h user=u password=" SECRET " dbname=d",
        "host=h password = '" SECRET " with space' dbname=d",
    };
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        char out[512];
        pgf_config_mask_url(forms[i], out, sizeof out);
        CU_ASSERT_PTR_NULL(strstr(out, SECRET));
        CU_ASSERT_PTR_NOT_NULL(strstr(out, "****"));
    }
}

static void registered_secrets_are_blanked(void)
{
    pgf_secret_clear();
    CU_ASSERT_EQUAL(pgf_secret_count(), 0);
    CU_ASSERT_EQUAL(pgf_secret_add(SECRET), 0);
    CU_ASSERT_EQUAL(pgf_secret_add(SECRET), 1); /* known */
    CU_ASSERT_EQUAL(pgf_secret_count(), 1);     /* once, whatever was refused */
    CU_ASSERT_EQUAL(pgf_secret_add("pw"), 1);   /* too short to mask usefully */
    CU_ASSERT_EQUAL(pgf_secret_add(NULL), 1);
    char msg[] = "FATAL: database \"host=h password=" SECRET " dbname=d\" (" SECRET SECRET ")";
    size_t before = strlen(msg);
    CU_ASSERT_TRUE(pgf_secret_found(msg)); /* the test before a copy is scrubbed */
    CU_ASSERT_FALSE(pgf_secret_found("password=********* dbname=d"));
    CU_ASSERT_FALSE(pgf_secret_found(NULL));
    pgf_secret_scrub(msg);
    CU_ASSERT_FALSE(pgf_secret_found(msg));
    CU_ASSERT_EQUAL(strlen(msg), before); /* in place, same length */
    CU_ASSERT_PTR_NULL(strstr(msg, SECRET));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "password=********* dbname=d"));
    CU_ASSERT_PTR_NOT_NULL(strstr(msg, "(******************)"));
    /* the report model blanks them in everything it is given */
    pgf_report *r = pgf_report_new();
    pgf_report_scenario *sc = pgf_report_add_scenario(r, "s", "uses " SECRET);
    CU_ASSERT_PTR_NOT_NULL_FATAL(sc);
    CU_ASSERT_PTR_NULL(strstr(sc->description, SECRET));
    pgf_report_free(r);
    pgf_secret_clear();
    CU_ASSERT_EQUAL(pgf_secret_count(), 0);
    char keep[] = "x " SECRET;
    CU_ASSERT_FALSE(pgf_secret_found(keep));
    pgf_secret_scrub(keep);
    CU_ASSERT_PTR_NOT_NULL(strstr(keep, SECRET)); /* cleared: nothing to blank */
}

static const pgf_test set_tests[] = {
    {"set_commit_replace_verify", set_commit_replace_verify},
    {"stale_staging_is_discarded", stale_staging_is_discarded},
    {"written_digest_used_while_unchanged", written_digest_used_while_unchanged},
    {"out_path_limits", out_path_limits},
    PGF_TESTS_END,
};

static const pgf_test escape_tests[] = {
    {"escapers_are_linear", escapers_are_linear},
    PGF_TESTS_END,
};

static const pgf_test secret_tests[] = {
    {"rejected_database_url_never_shows_the_password",
     rejected_database_url_never_shows_the_password},
    {"masks_every_conninfo_form", masks_every_conninfo_form},
    {"registered_secrets_are_blanked", registered_secrets_are_blanked},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_outputs[] = {
    {"outputs_set", NULL, NULL, set_tests},
    {"outputs_escaping", NULL, NULL, escape_tests},
    {"outputs_secrets", NULL, NULL, secret_tests},
    PGF_SUITES_END,
};
