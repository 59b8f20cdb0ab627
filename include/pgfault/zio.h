/* zio.h - zstd-compressed streams as ordinary FILE*s (libzstd + glibc
 * fopencookie), so the history reader and writer stream a
 * history.jsonl.zst exactly as a history.jsonl: nothing is held whole in
 * memory (one zstd window and one buffer either way).
 */
#ifndef PGF_ZIO_H
#define PGF_ZIO_H

#include <stdbool.h>
#include <stdio.h>

/* Open `path` for reading; a file that starts with the zstd frame magic is
 * decompressed on the fly, anything else is read as it is. A corrupt or
 * truncated zstd stream makes a read fail (ferror, errno EBADMSG), never a
 * silent early EOF. NULL with errno set when the file cannot be opened. */
FILE *pgf_zio_open_read(const char *path);

/* A stream whose bytes are zstd-compressed (level 3, checksummed) into
 * `dst`. fclose() of the returned stream ends the frame and flushes `dst`
 * but does not close it; it returns EOF when anything could not be
 * written. NULL with errno set on failure. */
FILE *pgf_zio_wrap_write(FILE *dst);

/* true when `path` names a compressed history (ends in ".zst"). */
bool pgf_zio_is_zst_name(const char *path);

#endif
