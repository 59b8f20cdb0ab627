/* zio.c - zstd streams behind FILE* (zio.h).
 *
 * Why a FILE*: the history reader (getline) and writer (fputs/fwrite) stay
 * one code path for plain and compressed histories, and both stream. */
#include "pgfault/zio.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
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
    if (n < sizeof magic && ferror(f)) {
        /* a directory (EISDIR), an unreadable device: that errno, not a
         * later read error without one */
        int e = errno ? errno : EIO;
        fclose(f);
        errno = e;
        return NULL;
    }
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

/* A frame's start: in the bytes given (uncompressed) and in dst. */
typedef struct zframe {
    uint64_t u, c;
} zframe;

struct pgf_zio_out {
    FILE *dst;
    ZSTD_CCtx *c;
    void *outbuf;
    size_t outcap;
    bool bad;
    /* for pgf_zio_read_back: totals, and where every frame starts */
    size_t frame_bytes; /* end a frame after this many bytes; 0 = one frame */
    uint64_t in_total, out_total;
    zframe *frames;
    size_t nframes, capframes;
    bool open_frame; /* bytes given since the last frame ended */
    /* the last frames decompressed for a read: bytes [cache_u, cache_u + cache_len) */
    ZSTD_DCtx *d;
    char *cache;
    size_t cache_len, cache_cap;
    uint64_t cache_u;
};
typedef struct pgf_zio_out zout;

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
        z->out_total += out.pos;
        bool done = mode == ZSTD_e_continue ? in->pos == in->size : left == 0;
        if (done)
            return 0;
    }
}

/* End the frame being written (if any bytes went into it) and note where
 * the next one starts. */
static int zout_end_frame(zout *z)
{
    if (!z->open_frame)
        return 0;
    ZSTD_inBuffer in = {NULL, 0, 0};
    if (zout_pump(z, &in, ZSTD_e_end) != 0)
        return -1;
    z->open_frame = false;
    if (z->nframes == z->capframes) {
        size_t ncap = z->capframes ? 2 * z->capframes : 64;
        zframe *nf = realloc(z->frames, ncap * sizeof *nf);
        if (nf == NULL) {
            z->bad = true;
            errno = ENOMEM;
            return -1;
        }
        z->frames = nf;
        z->capframes = ncap;
    }
    z->frames[z->nframes++] = (zframe){z->in_total, z->out_total};
    return 0;
}

static ssize_t zout_write(void *cookie, const char *buf, size_t size)
{
    zout *z = cookie;
    if (z->bad) {
        errno = EIO;
        return -1;
    }
    /* frames of frame_bytes each (the last one shorter): a read back
     * decompresses one or two, not the stream from its start */
    for (size_t done = 0; done < size;) {
        size_t piece = size - done;
        uint64_t in_frame = z->in_total - z->frames[z->nframes - 1].u;
        if (z->frame_bytes > 0 && piece > z->frame_bytes - in_frame)
            piece = (size_t)(z->frame_bytes - in_frame);
        ZSTD_inBuffer in = {buf + done, piece, 0};
        if (zout_pump(z, &in, ZSTD_e_continue) != 0)
            return -1;
        z->in_total += piece;
        z->open_frame = true;
        done += piece;
        if (z->frame_bytes > 0 && z->in_total - z->frames[z->nframes - 1].u >= z->frame_bytes &&
            zout_end_frame(z) != 0)
            return -1;
    }
    return (ssize_t)size;
}

static int zout_close(void *cookie)
{
    zout *z = cookie;
    ZSTD_inBuffer in = {NULL, 0, 0};
    /* the last frame; an empty stream still gets one (a reader knows it by
     * its magic), a stream whose last frame a read back already ended not */
    int rc = z->bad ? -1 : z->open_frame || z->in_total == 0 ? zout_pump(z, &in, ZSTD_e_end) : 0;
    if (fflush(z->dst) != 0 || ferror(z->dst))
        rc = -1;
    ZSTD_freeCCtx(z->c);
    ZSTD_freeDCtx(z->d);
    free(z->outbuf);
    free(z->frames);
    free(z->cache);
    free(z);
    return rc;
}

/* Decompress dst's frames from frame k on into the cache until it holds
 * [pos, end). */
static int zout_fill(zout *z, int fd, size_t k, uint64_t end)
{
    if (z->d == NULL && (z->d = ZSTD_createDCtx()) == NULL) {
        errno = ENOMEM;
        return -1;
    }
    ZSTD_DCtx_reset(z->d, ZSTD_reset_session_only);
    z->cache_u = z->frames[k].u;
    z->cache_len = 0;
    uint64_t at = z->frames[k].c;
    char inbuf[16384];
    while (z->cache_u + z->cache_len < end) {
        if (at >= z->out_total) {
            errno = EIO; /* the bytes are not in the file: a bug here */
            return -1;
        }
        size_t want = z->out_total - at < sizeof inbuf ? (size_t)(z->out_total - at) : sizeof inbuf;
        ssize_t got = pread(fd, inbuf, want, (off_t)at);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0) {
            if (got == 0)
                errno = EIO;
            return -1;
        }
        at += (uint64_t)got;
        ZSTD_inBuffer in = {inbuf, (size_t)got, 0};
        while (in.pos < in.size) {
            if (z->cache_cap - z->cache_len < ZSTD_DStreamOutSize()) {
                size_t ncap = z->cache_cap ? 2 * z->cache_cap : 2 * ZSTD_DStreamOutSize();
                char *nc = realloc(z->cache, ncap);
                if (nc == NULL) {
                    errno = ENOMEM;
                    return -1;
                }
                z->cache = nc;
                z->cache_cap = ncap;
            }
            ZSTD_outBuffer out = {z->cache + z->cache_len, z->cache_cap - z->cache_len, 0};
            size_t r = ZSTD_decompressStream(z->d, &out, &in);
            if (ZSTD_isError(r)) {
                errno = EBADMSG;
                return -1;
            }
            z->cache_len += out.pos;
        }
    }
    return 0;
}

int pgf_zio_read_back(pgf_zio_out *z, int fd, uint64_t pos, char *buf, size_t n)
{
    if (z->bad || pos + n > z->in_total) {
        errno = z->bad ? EIO : EINVAL;
        return -1;
    }
    if (n == 0)
        return 0;
    /* bytes still in the frame being written: end it, and get them out */
    if (z->open_frame && pos + n > z->frames[z->nframes - 1].u && zout_end_frame(z) != 0)
        return -1;
    if (fflush(z->dst) != 0)
        return -1;
    if (z->cache_len == 0 || pos < z->cache_u || pos + n > z->cache_u + z->cache_len) {
        size_t lo = 0, hi = z->nframes; /* the last frame starting at or before pos */
        while (hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            if (z->frames[mid].u <= pos)
                lo = mid;
            else
                hi = mid;
        }
        if (zout_fill(z, fd, lo, pos + n) != 0) {
            z->cache_len = 0;
            return -1;
        }
    }
    memcpy(buf, z->cache + (pos - z->cache_u), n);
    return 0;
}

FILE *pgf_zio_wrap_write(FILE *dst)
{
    return pgf_zio_wrap_write_h(dst, 0, NULL);
}

FILE *pgf_zio_wrap_write_h(FILE *dst, size_t frame_bytes, pgf_zio_out **h)
{
    zout *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    z->dst = dst;
    z->frame_bytes = frame_bytes;
    z->frames = malloc(64 * sizeof *z->frames);
    if (z->frames == NULL) {
        free(z);
        errno = ENOMEM;
        return NULL;
    }
    z->capframes = 64;
    z->frames[z->nframes++] = (zframe){0, 0};
    z->outcap = ZSTD_CStreamOutSize();
    z->outbuf = malloc(z->outcap);
    z->c = ZSTD_createCCtx();
    /* level 1: on histories cut into 64 kB frames it is both faster and
     * smaller than the default 3 (a 1,000-session stress run: 166 against
     * 195 bytes a health check, 1.2-1.6 us less of the draining thread's
     * CPU a check; the `soak` profile: 578 against 650 kB for 8 s). The
     * per-frame start of level 3's larger tables is what it pays. */
    if (z->outbuf == NULL || z->c == NULL ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_compressionLevel, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(z->c, ZSTD_c_checksumFlag, 1)))
        goto fail;
    cookie_io_functions_t io = {.write = zout_write, .close = zout_close};
    FILE *f = fopencookie(z, "w", io);
    if (f == NULL)
        goto fail;
    if (h != NULL)
        *h = z;
    return f;
fail:
    ZSTD_freeCCtx(z->c);
    free(z->outbuf);
    free(z->frames);
    free(z);
    errno = ENOMEM;
    return NULL;
}

bool pgf_zio_is_zst_name(const char *path)
{
    size_t n = path != NULL ? strlen(path) : 0;
    return n >= 4 && strcmp(path + n - 4, ".zst") == 0;
}
