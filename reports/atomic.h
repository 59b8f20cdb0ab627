/* atomic.h - write a file so readers see the old one or the complete new one.
 *
 * The content goes to a temp file in the same directory
 * (DIR/.NAME.tmp.XXXXXX), which is flushed, fsync'ed, and renamed over
 * DIR/NAME; then the directory is fsync'ed so the rename survives a crash.
 * On any failure the temp file is removed and the old DIR/NAME is untouched.
 * Errors are negative PGF_E* codes with a message naming the path (and the
 * system error) in the caller's buffer.
 *
 * What this does not do: create DIR, lock against concurrent writers (the
 * last rename wins), or write anything but regular files.
 */
#ifndef PGF_ATOMIC_H
#define PGF_ATOMIC_H

#include <stddef.h>
#include <stdio.h>

#include "pgfault/err.h"

typedef struct pgf_atomic_file {
    FILE *fp;         /* write the content here (borrowed; do not fclose) */
    char *tmp_path;   /* DIR/.NAME.tmp.XXXXXX (owned) */
    char *final_path; /* DIR/NAME (owned) */
} pgf_atomic_file;

/* Create the temp file for DIR/NAME. On success af->fp is open for writing;
 * finish with pgf_atomic_file_commit() or pgf_atomic_file_abort(). */
PGF_NODISCARD int pgf_atomic_file_open(pgf_atomic_file *af, const char *dir, const char *name,
                                       char *err, size_t errlen);
/* Flush, fsync, close and rename over the final path. Always releases af
 * (on failure the temp file is removed). */
PGF_NODISCARD int pgf_atomic_file_commit(pgf_atomic_file *af, char *err, size_t errlen);
/* Close and remove the temp file; the final path is untouched. Safe on a
 * zeroed or already released af. */
void pgf_atomic_file_abort(pgf_atomic_file *af);

/* Convenience: write data[len] to DIR/NAME atomically. */
PGF_NODISCARD int pgf_atomic_write(const char *dir, const char *name, const void *data, size_t len,
                                   char *err, size_t errlen);

#endif
