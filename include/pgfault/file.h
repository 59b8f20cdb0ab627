/* file.h - reading a whole file into memory, with one size limit.
 *
 * Scenario files, fault rule files and spec files are all read the same
 * way: the whole file, at most PGF_FILE_MAX bytes, with an error that
 * names the path. (Writing goes through reports/atomic.h.)
 */
#ifndef PGF_FILE_H
#define PGF_FILE_H

#include <stddef.h>

#include "pgfault/err.h"

/* The largest file pgfault reads into memory (16 MiB). */
#define PGF_FILE_MAX ((size_t)16 << 20)

/* Read the file at `path`. On success *out is the contents plus a
 * terminating NUL (not counted in *len); caller frees it with free().
 * Errors, with "PATH: ..." written into err: PGF_ENOTFOUND (no such file),
 * PGF_EIO (cannot open or read), PGF_ETOOBIG (over PGF_FILE_MAX),
 * PGF_ENOMEM. */
int pgf_file_read(const char *path, char **out, size_t *len, char *err,
                  size_t errlen) PGF_NODISCARD;

#endif
