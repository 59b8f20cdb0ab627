/* atomic.h - write a file so readers see the old one or the complete new one.
 *
 * The content goes to a temp file in the same directory
 * (DIR/.NAME.tmp.XXXXXX), which is flushed, fsync'ed, and renamed over
 * DIR/NAME; then the directory is fsync'ed so the rename survives a crash.
 * On any failure the temp file is removed and the old DIR/NAME is untouched.
 * Errors are negative PGF_E* codes with a message naming the path and the
 * exact system error ("No space left on device", never a generic I/O
 * error): the FILE behind af->fp is a cookie stream over the fd that keeps
 * the errno of the first failed write(2), which stdio itself forgets.
 *
 * Writing can be cancelled: while pgf_atomic_set_cancel()'s flag differs from
 * its baseline, every write fails with ECANCELED (a signal that arrives while
 * a large report is written is honoured at once, and the old file stays).
 *
 * Test hooks (environment, read once per process; never set them outside
 * tests): PGFAULT_TEST_ENOSPC_AFTER=N makes writes fail with ENOSPC once N
 * bytes in total went through this module (a full disk without mounting
 * one); PGFAULT_TEST_KILL_AFTER=N raises SIGKILL there instead (a crash in
 * the middle of writing).
 *
 * What this does not do: create DIR, lock against concurrent writers (the
 * last rename wins), or write anything but regular files.
 */
#ifndef PGF_ATOMIC_H
#define PGF_ATOMIC_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pgfault/err.h"

typedef struct pgf_atomic_file {
    FILE *fp;         /* write the content here (borrowed; do not fclose) */
    char *tmp_path;   /* DIR/.NAME.tmp.XXXXXX (owned) */
    char *final_path; /* DIR/NAME (owned) */
    void *io;         /* the cookie stream's state (private) */
} pgf_atomic_file;

/* Create the temp file for DIR/NAME. On success af->fp is open for writing;
 * finish with pgf_atomic_file_commit() or pgf_atomic_file_abort(). */
PGF_NODISCARD int pgf_atomic_file_open(pgf_atomic_file *af, const char *dir, const char *name,
                                       char *err, size_t errlen);
/* Flush, fsync, close and rename over the final path. Always releases af
 * (on failure the temp file is removed). The message names the errno of
 * the first failed write, or of the failed fsync/close/rename. */
PGF_NODISCARD int pgf_atomic_file_commit(pgf_atomic_file *af, char *err, size_t errlen);
/* Close and remove the temp file; the final path is untouched. Safe on a
 * zeroed or already released af. */
void pgf_atomic_file_abort(pgf_atomic_file *af);

/* Give up after a writer's own failure (what = "write failed", ...): abort
 * like pgf_atomic_file_abort() and fill err naming the final path and the
 * errno of the first failed write when there was one. Returns the code. */
int pgf_atomic_file_fail(pgf_atomic_file *af, const char *what, char *err, size_t errlen);

/* The temp file's descriptor, open for reading too (pread what af->fp has
 * flushed: the streaming checker reads a witness's lines back this way);
 * -1 once released. Borrowed: do not close. */
int pgf_atomic_file_fd(const pgf_atomic_file *af);

/* Writeback of a file being written is started (sync_file_range, not
 * waited for) every PGF_ATOMIC_WRITEBACK_EVERY bytes, so the commit's fsync
 * waits for the last few MB, not for every dirty page of a long stream.
 * How many times it was started so far (0 where the system has no
 * sync_file_range or the file system refused it). */
#define PGF_ATOMIC_WRITEBACK_EVERY (8u << 20)
uint64_t pgf_atomic_file_writeback_hints(const pgf_atomic_file *af);

/* The SHA-256 (hex) of a file this process committed here, from the bytes
 * as they were written, if st (stat of the file now) shows the same inode
 * with the same size and mtime; false otherwise (read it yourself). */
struct stat;
bool pgf_atomic_known_sha256(const struct stat *st, char hex[65]);

/* Convenience: write data[len] to DIR/NAME atomically. */
PGF_NODISCARD int pgf_atomic_write(const char *dir, const char *name, const void *data, size_t len,
                                   char *err, size_t errlen);

/* Cancel writing while *flag != baseline (flag NULL: never). Process-wide,
 * like the signal handler that sets the flag. */
void pgf_atomic_set_cancel(const volatile sig_atomic_t *flag, sig_atomic_t baseline);

#endif
