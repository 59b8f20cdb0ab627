/* zio.c - zstd streams behind FILE* (zio.h).
 *
 * Why a FILE*: the history reader (getline) and writer (fputs/fwrite) stay
 * one code path for plain and compressed histories, and both stream. */
#include "pgfault/zio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

typedef struct zin {
    FILE *src;
    ZSTD_DCtx *d;
    ZSTD_inBuffer in;
    void *inbuf;
    size_t incap;
    size_t last; /* last ZSTD_decompressStream result: 0 = a frame just ended */
    bool eof, bad;
} zin;

static ssize_t zin_read(void *cookie, char *buf, size_t size)
{
    zin *z = cookie;
    if (z->bad) {
        errno = EBADMSG;
        return -1;
    }
    ZSTD_outBuffer out = {buf, size, 0};
    while (out.pos == 0) {
        if (z->in.pos == z->in.size && !z->eof) {
            size_t n = fread(z->inbuf, 1, z->incap, z->src);
            if (n == 0 && ferror(z->src))
                return -1;
            z->eof = n == 0;
            z->in.src = z->inbuf;
            z->in.size = n;
            z->in.pos = 0;
        }
        bool drained = z->in.pos == z->in.size && z->eof;
        if (drained && z->last == 0)
            break; /* every frame complete: the end */
        size_t r = ZSTD_decompressStream(z->d, &out, &z->in);
        if (ZSTD_isError(r) || (drained && out.pos == 0)) {
            /* corrupt, or the input ended inside a frame (truncated) */
            z->bad = true;
            errno = EBADMSG;
            return -1;
        }
        z->last = r;
    }
    return (ssize_t)out.pos;
}

static int zin_close(void *cookie)
{
    zin *z = cookie;
    int rc = fclose(z->src);
    ZSTD_freeDCtx(z->d);
    free(z->inbuf);
    free(z);
    return rc;
}

FILE *pgf_zio_open_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    unsigned char magic[4];
    size_t n = fread(magic, 1, sizeof magic, f);
    uint32_t m = (uint32_t)magic[0] | (uint32_t)magic[1] << 8 | (uint32_t)magic[2] << 16 |
                 (uint32_t)magic[3] << 24;
    if (n < sizeof magic || m != ZSTD_MAGICNUMBER) {
        if (fseek(f, 0, SEEK_SET) != 0) {
            int e = errno;
            fclose(f);
            errno = e;
            return NULL;
        }
        return f; /* plain text */
    }
    zin *z = calloc(1, sizeof *z);
    if (z == NULL)
        goto fail;
    z->src = f;
    z->incap = ZSTD_DStreamInSize();
    z->inbuf = malloc(z->incap);
    z->d = ZSTD_createDCtx();
    if (z->inbuf == NULL || z->d == NULL)
        goto fail;
    /* the magic already read is the start of the first frame */
    memcpy(z->inbuf, magic, sizeof magic);
    z->in.src = z->inbuf;
    z->in.size = sizeof magic;
    z->in.pos = 0;
    z->last = 1;
    cookie_io_functions_t io = {.read = zin_read, .close = zin_close};
    FILE *out = fopencookie(z, "r", io);
    if (out == NULL)
        goto fail;
    return out;
fail:
    if (z != NULL) {
        ZSTD_freeDCtx(z->d);
        free(z->inbuf);
        free(z);
    }
    fclose(f);
    errno = ENOMEM;
    return NULL;
}

typedef struct zout {
    FILE *dst;
    ZSTD_CCtx *c;
    void *outbuf;
    size_t outcap;
    bool bad;
} zout;

/* Compress `in` (mode: continue or end) and write what comes out to dst. */
static int zout_pump(zout *z, ZSTD_inBuffer *in, ZSTD_EndDirective mode)
{
    for (;;) {
        ZSTD_outBuffer out = {z->outbuf, z->outcap, 0};
        size_t left = ZSTD_compressStream2(z->c, &out, in, mode);
        if (ZSTD_isError(left)) {
            z->bad = true;
            errno = EIO;
            return -1;
        }
        if (out.pos > 0 && fwrite(z->outbuf, 1, out.pos, z->dst) != out.pos) {
            z->bad = true;
            return -1;
        }
        bool done = mode == ZSTD_e_continue ? in->pos == in->size : left == 0;
        if (done)
            return 0;
    }
}

static ssize_t zout_write(void *cookie, const char *buf, size_t size)
{
    zout *z = cookie;
    if (z->bad) {
        errno = EIO;
        return -1;
    }
    ZSTD_inBuffer in = {buf, size, 0};
    if (zout_pump(z, &in, ZSTD_e_continue) != 0)
        return -1;
    return (ssize_t)size;
}

static int zout_close(void *cookie)
{
    zout *z = cookie;
    ZSTD_inBuffer in = {NULL, 0, 0};
    int rc = z->bad ? -1 : zout_pump(z, &in, ZSTD_e_end);
    if (fflush(z->dst) != 0 || ferror(z->dst))
        rc = -1;
    ZSTD_freeCCtx(z->c);
    free(z->outbuf);
    free(z);
    return rc;
}

FILE *pgf_zio_wrap_write(FILE *dst)
{
    zout *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    z->dst = dst;
    z->outcap = ZSTD_CStreamOutSize();
    z->outbuf = malloc(z->outcap);
    z->c = ZSTD_createCCtx();
    if (z->outbuf == NULL || z->c == NULL ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, 3)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 1)))
        goto fail;
    cookie_io_functions_t io = {.write = zout_write, .close = zout_close};
    FILE *f = fopencookie(z, "w", io);
    if (f == NULL)
        goto fail;
    return f;
fail:
    ZSTD_freeCCtx(z->c);
    free(z->outbuf);
    free(z);
    errno = ENOMEM;
    return NULL;
}

bool pgf_zio_is_zst_name(const char *path)
{
    size_t n = path != NULL ? strlen(path) : 0;
    return n >= 4 && strcmp(path + n - 4, ".zst") == 0;
}
