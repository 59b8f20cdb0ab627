/* buf.h - growable byte buffer with a sticky failure flag.
 *
 * Builders append without checking each call (pgbouncer's pktbuf idea):
 * an allocation failure sets `failed`, later appends are no-ops, and the
 * caller checks once before using the bytes. Integers are appended in
 * network byte order, as the PostgreSQL protocol wants them.
 */
#ifndef PGF_BUF_H
#define PGF_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pgf_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
    bool failed;
} pgf_buf;

#define PGF_BUF_INIT      \
    {                     \
        NULL, 0, 0, false \
    }

void pgf_buf_init(pgf_buf *b);
/* Frees the storage; the struct may be reused after pgf_buf_init(). */
void pgf_buf_free(pgf_buf *b);
void pgf_buf_reset(pgf_buf *b); /* len = 0, failed = false, keeps storage */
/* Ensure room for `extra` more bytes; false (and failed set) on ENOMEM. */
bool pgf_buf_reserve(pgf_buf *b, size_t extra);

void pgf_buf_put(pgf_buf *b, const void *p, size_t n);
void pgf_buf_put_u8(pgf_buf *b, uint8_t v);
void pgf_buf_put_be16(pgf_buf *b, uint16_t v);
void pgf_buf_put_be32(pgf_buf *b, uint32_t v);
/* Appends the string and its terminating NUL. */
void pgf_buf_put_cstr(pgf_buf *b, const char *s);
void pgf_buf_printf(pgf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Overwrite 4 bytes at `off` (for back-patching a length word). */
void pgf_buf_patch_be32(pgf_buf *b, size_t off, uint32_t v);
/* Drop the first n bytes (n <= len). */
void pgf_buf_consume(pgf_buf *b, size_t n);

static inline uint32_t pgf_rd_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint16_t pgf_rd_be16(const uint8_t *p)
{
    return (uint16_t)(((uint16_t)p[0] << 8) | p[1]);
}

#endif
