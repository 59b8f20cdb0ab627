/* test_zio.c - zstd streams behind FILE* (pgfault/zio.h): what is written
 * compressed reads back byte for byte (across many stdio buffers and
 * concatenated frames), a plain file passes through untouched, and a
 * truncated or corrupted stream is a read error (EBADMSG), never a quiet
 * early EOF. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgf_test.h"
#include "pgfault/zio.h"

static char tmpl[] = "/tmp/pgf-zio-XXXXXX";

/* Write n lines through a zstd stream into path (appending when `append`). */
static void write_lines(const char *path, int from, int n, bool append)
{
    FILE *dst = fopen(path, append ? "ab" : "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    FILE *z = pgf_zio_wrap_write(dst);
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    for (int i = from; i < from + n; i++)
        fprintf(z, "{\"seq\":%d,\"type\":\"invoke\",\"pad\":\"%0*d\"}\n", i, i % 50, 0);
    CU_ASSERT_EQUAL(fclose(z), 0);
    CU_ASSERT_EQUAL(fclose(dst), 0);
}

/* Read to the end or an error; returns how many lines in a row count up
 * from 0 (a corrupted line stops the count, not the read). */
static int read_lines(const char *path, int *err)
{
    FILE *f = pgf_zio_open_read(path);
    if (f == NULL)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int n = 0;
    bool in_order = true;
    errno = 0;
    while (getline(&line, &cap, f) >= 0) {
        int seq = -1;
        in_order = in_order && sscanf(line, "{\"seq\":%d", &seq) == 1 && seq == n;
        n += in_order;
    }
    *err = ferror(f) ? errno : 0;
    free(line);
    fclose(f);
    return n;
}

static void path_in(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmpl, name);
}

static void round_trip_and_frames(void)
{
    char p[256];
    path_in(p, sizeof p, "a.jsonl.zst");
    write_lines(p, 0, 50000, false); /* several MB: many stdio buffers and zstd blocks */
    write_lines(p, 50000, 10, true); /* a second frame, as `cat a.zst b.zst` */
    int err = -1;
    CU_ASSERT_EQUAL(read_lines(p, &err), 50010);
    CU_ASSERT_EQUAL(err, 0);
    CU_ASSERT_TRUE(pgf_zio_is_zst_name(p));
    CU_ASSERT_FALSE(pgf_zio_is_zst_name("history.jsonl"));
    CU_ASSERT_FALSE(pgf_zio_is_zst_name("zst"));
}

static void plain_passes_through(void)
{
    char p[256];
    path_in(p, sizeof p, "plain.jsonl");
    FILE *f = fopen(p, "w");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 3; i++)
        fprintf(f, "{\"seq\":%d}\n", i);
    fclose(f);
    int err = -1;
    CU_ASSERT_EQUAL(read_lines(p, &err), 3);
    CU_ASSERT_EQUAL(err, 0);
    path_in(p, sizeof p, "empty.jsonl"); /* shorter than the magic number */
    f = fopen(p, "w");
    fclose(f);
    CU_ASSERT_EQUAL(read_lines(p, &err), 0);
    CU_ASSERT_EQUAL(err, 0);
    path_in(p, sizeof p, "missing.jsonl");
    errno = 0;
    CU_ASSERT_PTR_NULL(pgf_zio_open_read(p));
    CU_ASSERT_EQUAL(errno, ENOENT);
}

static void truncated_and_corrupt_fail(void)
{
    char p[256], q[256];
    path_in(p, sizeof p, "whole.jsonl.zst");
    write_lines(p, 0, 20000, false);
    FILE *f = fopen(p, "rb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    static char buf[1 << 22];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    CU_ASSERT_FATAL(n > 1000 && n < sizeof buf);
    /* cut in the middle, and cut only the last bytes (the checksum) */
    size_t cuts[] = {n / 2, n - 2};
    for (size_t c = 0; c < 2; c++) {
        path_in(q, sizeof q, "cut.jsonl.zst");
        f = fopen(q, "wb");
        fwrite(buf, 1, cuts[c], f);
        fclose(f);
        int err = 0;
        int lines = read_lines(q, &err);
        CU_ASSERT(c == 1 || lines < 20000); /* without the checksum: all data, then the error */
        CU_ASSERT_EQUAL(err, EBADMSG);
    }
    buf[n / 2] ^= 0x5a;
    path_in(q, sizeof q, "flip.jsonl.zst");
    f = fopen(q, "wb");
    fwrite(buf, 1, n, f);
    fclose(f);
    int err = 0;
    (void)read_lines(q, &err);
    CU_ASSERT_EQUAL(err, EBADMSG); /* the block or the frame checksum is wrong */
}

static int setup(void)
{
    return mkdtemp(tmpl) != NULL ? 0 : -1;
}

static int teardown(void)
{
    const char *names[] = {"a.jsonl.zst",     "plain.jsonl",   "empty.jsonl",
                           "whole.jsonl.zst", "cut.jsonl.zst", "flip.jsonl.zst"};
    char p[256];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in(p, sizeof p, names[i]);
        unlink(p);
    }
    rmdir(tmpl);
    return 0;
}

/* Read back while writing (pgf_zio_read_back): every range asked for comes
 * back as written - from old frames, across frame ends, and from the frame
 * still being written (which the read ends) - and the file, frames ended
 * by reads included, is still one stream that reads back whole. */
static void read_back_while_writing(void)
{
    char p[256];
    path_in(p, sizeof p, "rb.jsonl.zst");
    FILE *dst = fopen(p, "w+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dst);
    pgf_zio_out *h = NULL;
    FILE *z = pgf_zio_wrap_write_h(dst, 4096, &h); /* small frames: many of them */
    CU_ASSERT_PTR_NOT_NULL_FATAL(z);
    CU_ASSERT_PTR_NOT_NULL_FATAL(h);
    size_t cap = 4 << 20, len = 0;
    char *src = malloc(cap), *got = malloc(cap);
    CU_ASSERT_FATAL(src != NULL && got != NULL);
    uint64_t x = 88172645463325252ULL; /* xorshift: the same lines every run */
    int reads = 0;
    for (int i = 0; len < cap - 20000; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        /* mostly short lines, some longer than a frame */
        int pad = x % 100 == 0 ? 9000 + (int)(x % 3000) : (int)(x % 200);
        int n = snprintf(src + len, cap - len, "{\"seq\":%d,\"pad\":\"%0*d\"}\n", i, pad, 0);
        CU_ASSERT_EQUAL_FATAL(fwrite(src + len, 1, (size_t)n, z), (size_t)n);
        len += (size_t)n;
        if (i % 97 != 0)
            continue;
        CU_ASSERT_EQUAL_FATAL(fflush(z), 0);
        /* the line just written (in the open frame), and one from anywhere before */
        uint64_t pos[2] = {len - (size_t)n, (x >> 20) % len};
        size_t want[2] = {(size_t)n, (size_t)((x >> 40) % 20000)};
        for (int k = 0; k < 2; k++) {
            if (pos[k] + want[k] > len)
                want[k] = len - pos[k];
            CU_ASSERT_EQUAL_FATAL(pgf_zio_read_back(h, fileno(dst), pos[k], got, want[k]), 0);
            CU_ASSERT_FATAL(memcmp(got, src + pos[k], want[k]) == 0);
            reads++;
        }
    }
    CU_ASSERT(reads > 100);
    /* not written yet: an error, not made-up bytes */
    CU_ASSERT_EQUAL(fflush(z), 0);
    errno = 0;
    CU_ASSERT_EQUAL(pgf_zio_read_back(h, fileno(dst), len - 10, got, 11), -1);
    CU_ASSERT_EQUAL(errno, EINVAL);
    CU_ASSERT_EQUAL(fclose(z), 0);
    CU_ASSERT_EQUAL(fclose(dst), 0);
    FILE *f = pgf_zio_open_read(p);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    size_t all = fread(got, 1, cap, f);
    CU_ASSERT_FALSE(ferror(f));
    CU_ASSERT_EQUAL(all, len);
    CU_ASSERT(memcmp(got, src, len) == 0);
    fclose(f);
    free(src);
    free(got);
}

static const pgf_test zio_tests[] = {
    {"round_trip_and_frames", round_trip_and_frames},
    {"plain_passes_through", plain_passes_through},
    {"truncated_and_corrupt_fail", truncated_and_corrupt_fail},
    {"read_back_while_writing", read_back_while_writing},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_zio[] = {
    {"zio", setup, teardown, zio_tests},
    PGF_SUITES_END,
};
