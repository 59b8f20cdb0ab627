/* file.c - pgf_file_read(): the one whole-file reader (file.h). */
#include "pgfault/file.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pgf_file_read(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;
        return pgf_err_printf(err, errlen, e == ENOENT ? PGF_ENOTFOUND : PGF_EIO,
                              "%s: cannot open: %s", path, strerror(e));
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (cap - n < 4096 + 1) { /* room for a read and the final NUL */
            size_t ncap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, ncap);
            if (nb == NULL) {
                rc = pgf_err_printf(err, errlen, PGF_ENOMEM, "%s: out of memory", path);
                goto fail;
            }
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (n > PGF_FILE_MAX) {
            rc = pgf_err_printf(err, errlen, PGF_ETOOBIG, "%s: larger than %zu MiB", path,
                                PGF_FILE_MAX >> 20);
            goto fail;
        }
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        rc = pgf_err_printf(err, errlen, PGF_EIO, "%s: read error", path);
        goto fail;
    }
    fclose(f);
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
fail:
    fclose(f);
    free(buf);
    return rc;
}
