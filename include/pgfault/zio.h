/* zio.h - zstd-compressed streams as ordinary FILE*s (libzstd + glibc
 * fopencookie), so the history reader and writer stream a
 * history.jsonl.zst exactly as a history.jsonl: nothing is held whole in
 * memory (one zstd window and one buffer either way).
 */
#ifndef PGF_ZIO_H
#define PGF_ZIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Open `path` for reading; a file that starts with the zstd frame magic is
 * decompressed on the fly, anything else is read as it is. A corrupt or
 * truncated zstd stream makes a read fail (ferror, errno EBADMSG), never a
 * silent early EOF. NULL with errno set when the file cannot be opened. */
FILE *pgf_zio_open_read(const char *path);

/* A stream whose bytes are zstd-compressed (level 1, checksummed) into
 * `dst`. fclose() of the returned stream ends the frame and flushes `dst`
 * but does not close it; it returns EOF when anything could not be
 * written. NULL with errno set on failure. */
FILE *pgf_zio_wrap_write(FILE *dst);

/* The same, for a stream whose bytes can be read back while it is written
 * (the streaming checker's witnesses): a frame ends every `frame_bytes`
 * bytes given (0: only at the end), so a read decompresses a frame or two,
 * not the stream from its start; *h is the handle for pgf_zio_read_back,
 * valid until fclose(). A stream of several frames is still one zstd
 * stream to every reader (`zstd -d`, pgf_zio_open_read). */
typedef struct pgf_zio_out pgf_zio_out;
FILE *pgf_zio_wrap_write_h(FILE *dst, size_t frame_bytes, pgf_zio_out **h);

/* Read back n bytes at offset pos of the uncompressed bytes given to h's
 * stream so far (fflush that stream first), from fd: the file dst writes
 * to, open for reading, dst's bytes starting at its offset 0. When pos + n
 * reaches into the frame being written, that frame is ended (and dst
 * flushed) first. The frames last decompressed are kept for the next read.
 * 0, or -1 with errno (EINVAL: not written yet; EBADMSG: the file's bytes
 * are not what was written). */
int pgf_zio_read_back(pgf_zio_out *h, int fd, uint64_t pos, char *buf, size_t n);

/* true when `path` names a compressed history (ends in ".zst"). */
bool pgf_zio_is_zst_name(const char *path);

#endif
