/* outdir.c - a run's output files committed as one set (see outdir.h):
 * staging directory, manifest.json written last, crash recovery on the next
 * run, and the readers' check. */
#include "outdir.h"

#include "atomic.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "atomic.h"
#include "pgfault/version.h"

#define MANIFEST      "manifest.json"
#define STAGE_PREFIX  ".pgfault-new."
#define PREV_DIR      ".prev" /* inside the staging directory: the old files, for rollback */
#define MANIFEST_KIND "pgfault-output-set"

typedef struct entry {
    char *path; /* relative to OUT */
    uint64_t bytes;
    char sha256[65];
} entry;

typedef struct entries {
    entry *items;
    size_t len, cap;
} entries;

struct pgf_outdir {
    char *out;   /* as given */
    char *stage; /* OUT/.pgfault-new.PID.XXXXXX */
    char run_id[64];
    bool committed;
};

static char *join(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 2;
    char *p = malloc(n);
    if (p != NULL)
        snprintf(p, n, "%s/%s", a, b);
    return p;
}

static void entries_free(entries *es)
{
    for (size_t i = 0; i < es->len; i++)
        free(es->items[i].path);
    free(es->items);
    memset(es, 0, sizeof *es);
}

static entry *entries_add(entries *es, const char *path)
{
    if (es->len == es->cap) {
        size_t nc = es->cap ? es->cap * 2 : 16;
        entry *n = realloc(es->items, nc * sizeof *n);
        if (n == NULL)
            return NULL;
        es->items = n;
        es->cap = nc;
    }
    entry *e = &es->items[es->len];
    memset(e, 0, sizeof *e);
    e->path = strdup(path);
    if (e->path == NULL)
        return NULL;
    es->len++;
    return e;
}

static const entry *entries_find(const entries *es, const char *path)
{
    for (size_t i = 0; i < es->len; i++)
        if (strcmp(es->items[i].path, path) == 0)
            return &es->items[i];
    return NULL;
}

static int cmp_entry(const void *a, const void *b)
{
    return strcmp(((const entry *)a)->path, ((const entry *)b)->path);
}

/* ---- paths ---- */

int pgf_outdir_check_path(const char *out, char *err, size_t errlen)
{
    if (out == NULL || *out == '\0')
        return pgf_err_printf(err, errlen, PGF_EINVAL, "--out: empty directory name");
    size_t n = strlen(out);
    if (n > PGF_OUTDIR_MAX)
        return pgf_err_printf(
            err, errlen, PGF_EINVAL,
            "--out: the directory name is %zu characters long; at most %d are accepted "
            "(nothing was created)",
            n, PGF_OUTDIR_MAX);
    for (const char *p = out; *p != '\0';) {
        size_t k = strcspn(p, "/");
        if (k > NAME_MAX)
            return pgf_err_printf(
                err, errlen, PGF_EINVAL,
                "--out: the path component '%.20s...' is %zu characters long; at most %d "
                "are accepted (nothing was created)",
                p, k, NAME_MAX);
        p += k;
        while (*p == '/')
            p++;
    }
    return 0;
}

static int mkdir_p(const char *dir, char *err, size_t errlen)
{
    char *tmp = strdup(dir);
    if (tmp == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    int rc = 0;
    for (char *p = tmp + 1; rc == 0; p++) {
        bool end = *p == '\0';
        if (!end && *p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0755) != 0 && errno != EEXIST)
            rc = pgf_err_printf(err, errlen, PGF_EIO, "cannot create directory %s: %s", tmp,
                                strerror(errno));
        if (end)
            break;
        *p = '/';
    }
    free(tmp);
    return rc;
}

/* mkdir -p of the directory part of OUT/rel. */
static int mkdir_parent(const char *root, const char *rel, char *err, size_t errlen)
{
    const char *slash = strrchr(rel, '/');
    if (slash == NULL)
        return 0;
    char *sub = strndup(rel, (size_t)(slash - rel));
    char *dir = sub ? join(root, sub) : NULL;
    int rc =
        dir ? mkdir_p(dir, err, errlen) : pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    free(sub);
    free(dir);
    return rc;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    (void)remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    (void)nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

/* ---- hashing ---- */

/* fsync (when sync) and hash root/rel. sync: a file being committed, whose
 * digest this process may have taken while writing it (atomic.h). */
static int hash_file(const char *path, bool sync, uint64_t *bytes, char hex[65], char *err,
                     size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pgf_err_printf(err, errlen, PGF_EIO, "%s: %s", path, strerror(errno));
    struct stat st;
    if (sync && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && pgf_atomic_known_sha256(&st, hex)) {
        int rc = fsync(fd) != 0 ? pgf_err_printf(err, errlen, PGF_EIO, "%s: fsync failed: %s", path,
                                                 strerror(errno))
                                : 0;
        close(fd);
        *bytes = (uint64_t)st.st_size;
        return rc;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(md);
        close(fd);
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "%s: out of memory", path);
    }
    int rc = 0;
    uint64_t total = 0;
    enum { CHUNK = 1 << 16 };
    unsigned char *buf = malloc(CHUNK);
    if (buf == NULL) {
        EVP_MD_CTX_free(md);
        close(fd);
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "%s: out of memory", path);
    }
    for (;;) {
        ssize_t n = read(fd, buf, CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: read failed: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        EVP_DigestUpdate(md, buf, (size_t)n);
        total += (uint64_t)n;
    }
    if (rc == 0 && sync && fsync(fd) != 0)
        rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: fsync failed: %s", path, strerror(errno));
    free(buf);
    unsigned char d[32];
    unsigned dl = 0;
    EVP_DigestFinal_ex(md, d, &dl);
    EVP_MD_CTX_free(md);
    close(fd);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
    *bytes = total;
    return rc;
}

/* ---- manifests ---- */

/* Load ROOT/manifest.json's file list; 0 with es empty and *id "" when
 * there is none. */
static int manifest_load(const char *root, entries *es, char *id, size_t idlen, char *err,
                         size_t errlen)
{
    memset(es, 0, sizeof *es);
    if (idlen > 0)
        id[0] = '\0';
    char *path = join(root, MANIFEST);
    if (path == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    if (access(path, F_OK) != 0) {
        free(path);
        return 0;
    }
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    const char *kind = json_string_value(json_object_get(j, "format"));
    json_t *files = json_object_get(j, "files");
    if (j == NULL || kind == NULL || strcmp(kind, MANIFEST_KIND) != 0 || !json_is_array(files)) {
        int rc =
            pgf_err_printf(err, errlen, PGF_EINVAL, "%s:%d:%d: not a pgfault manifest%s%s", path,
                           j ? 1 : je.line, j ? 1 : je.column, j ? "" : ": ", j ? "" : je.text);
        json_decref(j);
        free(path);
        return rc;
    }
    const char *rid = json_string_value(json_object_get(j, "run_id"));
    snprintf(id, idlen, "%s", rid ? rid : "?");
    int rc = 0;
    for (size_t i = 0; i < json_array_size(files) && rc == 0; i++) {
        json_t *f = json_array_get(files, i);
        const char *p = json_string_value(json_object_get(f, "path"));
        const char *h = json_string_value(json_object_get(f, "sha256"));
        json_t *b = json_object_get(f, "bytes");
        if (p == NULL || h == NULL || strlen(h) != 64 || !json_is_integer(b) ||
            strstr(p, "..") != NULL || p[0] == '/') {
            rc = pgf_err_printf(err, errlen, PGF_EINVAL, "%s: files[%zu] is malformed", path, i);
            break;
        }
        entry *e = entries_add(es, p);
        if (e == NULL) {
            rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
            break;
        }
        e->bytes = (uint64_t)json_integer_value(b);
        memcpy(e->sha256, h, 65);
    }
    json_decref(j);
    free(path);
    if (rc != 0)
        entries_free(es);
    return rc;
}

static int manifest_write(const char *dir, const char *run_id, const entries *es, char *err,
                          size_t errlen)
{
    json_t *files = json_array();
    char created[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *j =
        json_pack("{s:s, s:i, s:s, s:s, s:s, s:o}", "format", MANIFEST_KIND, "version", 1, "run_id",
                  run_id, "tool", "pgfault " PGF_VERSION, "created", created, "files", files);
    for (size_t i = 0; j != NULL && i < es->len; i++)
        json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "path", es->items[i].path,
                                               "bytes", (json_int_t)es->items[i].bytes, "sha256",
                                               es->items[i].sha256));
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (text == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "%s/%s: out of memory", dir, MANIFEST);
    size_t n = strlen(text);
    int rc = pgf_atomic_write(dir, MANIFEST, text, n, err, errlen);
    free(text);
    return rc;
}

/* Every regular file under root/sub (sub "" = root), as paths relative to
 * root; the manifest and the rollback directory excluded. */
static int walk(const char *root, const char *sub, entries *es, char *err, size_t errlen)
{
    char *dir = *sub ? join(root, sub) : strdup(root);
    if (dir == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    DIR *d = opendir(dir);
    if (d == NULL) {
        int rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: %s", dir, strerror(errno));
        free(dir);
        return rc;
    }
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        if (*sub == '\0' &&
            (strcmp(de->d_name, MANIFEST) == 0 || strcmp(de->d_name, PREV_DIR) == 0))
            continue;
        char *rel = *sub ? join(sub, de->d_name) : strdup(de->d_name);
        char *full = rel ? join(root, rel) : NULL;
        struct stat st;
        if (full == NULL)
            rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
        else if (lstat(full, &st) != 0)
            rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: %s", full, strerror(errno));
        else if (S_ISDIR(st.st_mode))
            rc = walk(root, rel, es, err, errlen);
        else if (S_ISREG(st.st_mode) && entries_add(es, rel) == NULL)
            rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
        free(rel);
        free(full);
    }
    closedir(d);
    free(dir);
    return rc;
}

/* ---- step 2 and 3, shared by commit and crash recovery ---- */

/* Remove OUT/rel and the directories above it that became empty. */
static void remove_old(const char *out, const char *rel)
{
    char *p = join(out, rel);
    if (p == NULL)
        return;
    (void)unlink(p);
    for (char *s = strrchr(p, '/'); s != NULL && (size_t)(s - p) > strlen(out);
         s = strrchr(p, '/')) {
        *s = '\0';
        if (rmdir(p) != 0)
            break;
    }
    free(p);
}

/* Test hook: PGFAULT_TEST_KILL_AT_RENAME=N raises SIGKILL after the Nth
 * rename of a commit (a crash in step 2). */
static long kill_at_rename(void)
{
    const char *v = getenv("PGFAULT_TEST_KILL_AT_RENAME");
    return v != NULL && *v != '\0' ? strtol(v, NULL, 10) : -1;
}

/* Move stage/rel -> out/rel for every new entry (those still in stage),
 * then drop what only the old set had, then move the manifest. With
 * rollback (commit), a failed rename puts the old files back. */
static int install(const char *out, const char *stage, const entries *fresh, const entries *old,
                   bool rollback, char *err, size_t errlen)
{
    int rc = 0;
    size_t moved = 0; /* entries [0, moved) are in place */
    long kill_n = kill_at_rename();
    for (; moved < fresh->len && rc == 0; moved++) {
        const char *rel = fresh->items[moved].path;
        char *src = join(stage, rel), *dst = join(out, rel);
        if (src == NULL || dst == NULL) {
            rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
        } else if (access(src, F_OK) != 0) {
            /* already moved by the crashed run being completed */
        } else if ((rc = mkdir_parent(out, rel, err, errlen)) == 0 && rename(src, dst) != 0) {
            rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: cannot move the new file into place: %s",
                                dst, strerror(errno));
        }
        free(src);
        free(dst);
        if (rc != 0)
            break;
        if (kill_n >= 0 && (long)moved + 1 == kill_n)
            raise(SIGKILL);
    }
    if (rc != 0 && rollback) {
        /* Put back what was moved: the old file from stage/.prev, or nothing. */
        for (size_t i = 0; i < moved; i++) {
            const char *rel = fresh->items[i].path;
            char *dst = join(out, rel);
            char *prev_rel = join(PREV_DIR, rel);
            char *prev = prev_rel ? join(stage, prev_rel) : NULL;
            if (dst != NULL && prev != NULL && rename(prev, dst) != 0)
                (void)unlink(dst);
            free(dst);
            free(prev_rel);
            free(prev);
        }
        return rc;
    }
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < old->len; i++)
        if (entries_find(fresh, old->items[i].path) == NULL)
            remove_old(out, old->items[i].path);
    char *src = join(stage, MANIFEST), *dst = join(out, MANIFEST);
    if (src == NULL || dst == NULL)
        rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    else if (rename(src, dst) != 0)
        rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: cannot move the manifest into place: %s",
                            dst, strerror(errno));
    free(src);
    free(dst);
    fsync_dir(out);
    return rc;
}

/* ---- crash recovery ---- */

/* A staging directory whose run is gone: complete its commit if it got to
 * step 2 (its manifest.json exists), else discard it. */
static void recover(const char *out, const char *name)
{
    char *stage = join(out, name);
    if (stage == NULL)
        return;
    char err[512], id[64];
    entries fresh, old;
    if (manifest_load(stage, &fresh, id, sizeof id, err, sizeof err) == 0 && fresh.len > 0 &&
        manifest_load(out, &old, id, sizeof id, err, sizeof err) == 0) {
        (void)install(out, stage, &fresh, &old, false, err, sizeof err);
        entries_free(&old);
    }
    entries_free(&fresh);
    rm_rf(stage);
    free(stage);
}

static void recover_all(const char *out)
{
    DIR *d = opendir(out);
    if (d == NULL)
        return;
    struct dirent *de;
    char *names[64];
    int n = 0;
    while ((de = readdir(d)) != NULL && n < 64) {
        if (strncmp(de->d_name, STAGE_PREFIX, strlen(STAGE_PREFIX)) != 0)
            continue;
        long pid = strtol(de->d_name + strlen(STAGE_PREFIX), NULL, 10);
        if (pid > 0 && pid != (long)getpid() && kill((pid_t)pid, 0) == 0)
            continue; /* a live run is writing there */
        names[n++] = strdup(de->d_name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) {
        if (names[i] != NULL)
            recover(out, names[i]);
        free(names[i]);
    }
}

/* ---- the public API ---- */

int pgf_outdir_begin(const char *out, pgf_outdir **odp, char *err, size_t errlen)
{
    *odp = NULL;
    int rc = pgf_outdir_check_path(out, err, errlen);
    if (rc != 0)
        return rc;
    if ((rc = mkdir_p(out, err, errlen)) != 0)
        return rc;
    recover_all(out);
    pgf_outdir *od = calloc(1, sizeof *od);
    if (od == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    od->out = strdup(out);
    char name[64];
    snprintf(name, sizeof name, STAGE_PREFIX "%ld.XXXXXX", (long)getpid());
    od->stage = od->out ? join(out, name) : NULL;
    if (od->stage == NULL) {
        pgf_outdir_free(od);
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    }
    if (mkdtemp(od->stage) == NULL) {
        rc = pgf_err_printf(err, errlen, PGF_EIO, "cannot create a staging directory in %s: %s",
                            out, strerror(errno));
        free(od->stage);
        od->stage = NULL;
        pgf_outdir_free(od);
        return rc;
    }
    (void)chmod(od->stage, 0755);
    uint32_t r = 0;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
        r = (uint32_t)time(NULL) ^ (uint32_t)getpid();
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y%m%dT%H%M%SZ", &tm);
    snprintf(od->run_id, sizeof od->run_id, "%s-%ld-%08" PRIx32, ts, (long)getpid(), r);
    *odp = od;
    return 0;
}

const char *pgf_outdir_stage(const pgf_outdir *od)
{
    return od->stage;
}

const char *pgf_outdir_final(const pgf_outdir *od)
{
    return od->out;
}

const char *pgf_outdir_run_id(const pgf_outdir *od)
{
    return od->run_id;
}

int pgf_outdir_commit(pgf_outdir *od, char *err, size_t errlen)
{
    entries fresh = {0}, old = {0};
    char old_id[64];
    int rc = walk(od->stage, "", &fresh, err, errlen);
    if (rc == 0)
        qsort(fresh.items, fresh.len, sizeof *fresh.items, cmp_entry);
    /* 1. the staged set, durable and hashed; its manifest */
    for (size_t i = 0; i < fresh.len && rc == 0; i++) {
        char *p = join(od->stage, fresh.items[i].path);
        rc = p ? hash_file(p, true, &fresh.items[i].bytes, fresh.items[i].sha256, err, errlen)
               : pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
        free(p);
    }
    if (rc == 0)
        rc = manifest_load(od->out, &old, old_id, sizeof old_id, err, errlen);
    /* Keep the old files reachable for rollback (hard links, best effort). */
    for (size_t i = 0; i < fresh.len && rc == 0; i++) {
        char *dst = join(od->out, fresh.items[i].path);
        char *prev_rel = join(PREV_DIR, fresh.items[i].path);
        struct stat st;
        if (dst != NULL && prev_rel != NULL && lstat(dst, &st) == 0 && S_ISREG(st.st_mode) &&
            mkdir_parent(od->stage, prev_rel, err, errlen) == 0) {
            char *prev = join(od->stage, prev_rel);
            if (prev != NULL)
                (void)link(dst, prev);
            free(prev);
        }
        free(dst);
        free(prev_rel);
    }
    if (rc == 0)
        rc = manifest_write(od->stage, od->run_id, &fresh, err, errlen);
    if (rc == 0)
        fsync_dir(od->stage);
    /* 2 and 3 */
    if (rc == 0)
        rc = install(od->out, od->stage, &fresh, &old, true, err, errlen);
    entries_free(&fresh);
    entries_free(&old);
    if (rc == 0) {
        od->committed = true;
        rm_rf(od->stage);
    }
    return rc;
}

void pgf_outdir_free(pgf_outdir *od)
{
    if (od == NULL)
        return;
    if (od->stage != NULL && !od->committed)
        rm_rf(od->stage);
    free(od->stage);
    free(od->out);
    free(od);
}

int pgf_outdir_verify(const char *file, char *run_id, size_t run_id_len, char *err, size_t errlen)
{
    if (run_id != NULL && run_id_len > 0)
        run_id[0] = '\0';
    char *copy = strdup(file);
    if (copy == NULL)
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "out of memory");
    /* candidates: (dir, base) and (dir/.., basename(dir)/base) */
    char *slash = strrchr(copy, '/');
    const char *base = slash ? slash + 1 : copy;
    char *dir =
        slash ? (slash == copy ? strdup("/") : strndup(copy, (size_t)(slash - copy))) : strdup(".");
    int rc = 0;
    bool found = false;
    for (int level = 0; level < 2 && !found && rc == 0 && dir != NULL; level++) {
        char root[PATH_MAX], rel[PATH_MAX];
        if (level == 0) {
            snprintf(root, sizeof root, "%s", dir);
            snprintf(rel, sizeof rel, "%s", base);
        } else {
            char *s2 = strrchr(dir, '/');
            if (s2 == NULL) {
                snprintf(root, sizeof root, ".");
                snprintf(rel, sizeof rel, "%s/%s", dir, base);
            } else {
                snprintf(root, sizeof root, "%.*s", (int)(s2 - dir), dir);
                snprintf(rel, sizeof rel, "%s/%s", s2 + 1, base);
            }
            if (strcmp(dir, ".") == 0 || strcmp(dir, "/") == 0)
                break;
        }
        entries es;
        char id[64];
        rc = manifest_load(root, &es, id, sizeof id, err, errlen);
        if (rc != 0)
            break;
        const entry *e = entries_find(&es, rel);
        if (e != NULL) {
            found = true;
            uint64_t bytes;
            char hex[65];
            rc = hash_file(file, false, &bytes, hex, err, errlen);
            if (rc == 0 && (bytes != e->bytes || strcmp(hex, e->sha256) != 0))
                rc = pgf_err_printf(err, errlen, PGF_EINVAL,
                                    "%s does not match %s/%s of run %s (%" PRIu64
                                    " bytes, expected %" PRIu64
                                    "): it was changed after the run, or the run was killed while "
                                    "committing its files (run it again)",
                                    file, root, MANIFEST, id, bytes, e->bytes);
            if (rc == 0 && run_id != NULL)
                snprintf(run_id, run_id_len, "%s", id);
        }
        entries_free(&es);
    }
    free(dir);
    free(copy);
    return rc;
}
