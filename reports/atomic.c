/* atomic.c - temp file + fsync + rename (see atomic.h). */
#include "atomic.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void release(pgf_atomic_file *af)
{
    free(af->tmp_path);
    free(af->final_path);
    af->fp = NULL;
    af->tmp_path = NULL;
    af->final_path = NULL;
}

int pgf_atomic_file_open(pgf_atomic_file *af, const char *dir, const char *name, char *err,
                         size_t errlen)
{
    memset(af, 0, sizeof *af);
    if (dir == NULL || name == NULL || *name == '\0' || strchr(name, '/') != NULL)
        return pgf_err_printf(err, errlen, PGF_EINVAL, "atomic write: bad file name '%s'",
                              name ? name : "(null)");
    size_t n = strlen(dir) + strlen(name) + 32;
    af->final_path = malloc(n);
    af->tmp_path = malloc(n);
    if (af->final_path == NULL || af->tmp_path == NULL) {
        release(af);
        return pgf_err_printf(err, errlen, PGF_ENOMEM, "%s/%s: out of memory", dir, name);
    }
    snprintf(af->final_path, n, "%s/%s", dir, name);
    snprintf(af->tmp_path, n, "%s/.%s.tmp.XXXXXX", dir, name);
    int fd = mkostemp(af->tmp_path, O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        int rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: cannot create temp file %s: %s",
                                af->final_path, af->tmp_path, strerror(e));
        release(af);
        return rc;
    }
    /* mkostemp makes 0600; reports are meant to be read by CI and people. */
    (void)fchmod(fd, 0644);
    af->fp = fdopen(fd, "w");
    if (af->fp == NULL) {
        int e = errno;
        close(fd);
        unlink(af->tmp_path);
        int rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: %s", af->tmp_path, strerror(e));
        release(af);
        return rc;
    }
    return 0;
}

void pgf_atomic_file_abort(pgf_atomic_file *af)
{
    if (af == NULL)
        return;
    if (af->fp != NULL)
        fclose(af->fp);
    if (af->tmp_path != NULL)
        unlink(af->tmp_path);
    release(af);
}

int pgf_atomic_file_commit(pgf_atomic_file *af, char *err, size_t errlen)
{
    if (af == NULL || af->fp == NULL)
        return pgf_err_printf(err, errlen, PGF_EINVAL, "atomic write: file not open");
    int rc = 0, e = 0;
    const char *what = NULL;
    if (ferror(af->fp)) {
        /* stdio does not keep errno; a write error here is usually ENOSPC/EFBIG. */
        what = "write failed", e = errno ? errno : EIO;
    } else if (fflush(af->fp) != 0) {
        what = "write failed", e = errno;
    } else if (fsync(fileno(af->fp)) != 0) {
        what = "fsync failed", e = errno;
    }
    int close_rc = fclose(af->fp);
    af->fp = NULL;
    if (what == NULL && close_rc != 0)
        what = "close failed", e = errno;
    if (what == NULL && rename(af->tmp_path, af->final_path) != 0)
        what = "rename failed", e = errno;
    if (what != NULL) {
        rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: %s (%s); previous file left unchanged",
                            af->final_path, what, strerror(e));
        unlink(af->tmp_path);
        release(af);
        return rc;
    }
    /* Persist the rename: fsync the directory (best effort; some file systems
     * refuse fsync on directories, which is not an error for us). */
    char *slash = strrchr(af->final_path, '/');
    if (slash != NULL) {
        *slash = '\0';
        int dfd = open(*af->final_path ? af->final_path : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        *slash = '/';
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
    }
    release(af);
    return 0;
}

int pgf_atomic_write(const char *dir, const char *name, const void *data, size_t len, char *err,
                     size_t errlen)
{
    pgf_atomic_file af;
    int rc = pgf_atomic_file_open(&af, dir, name, err, errlen);
    if (rc != 0)
        return rc;
    if (len > 0 && fwrite(data, 1, len, af.fp) != len) {
        int e = errno;
        rc = pgf_err_printf(err, errlen, PGF_EIO,
                            "%s: write failed (%s); previous file left unchanged", af.final_path,
                            strerror(e));
        pgf_atomic_file_abort(&af);
        return rc;
    }
    return pgf_atomic_file_commit(&af, err, errlen);
}
