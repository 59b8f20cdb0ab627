/* test_base.c - errors, buffers, random streams, whole-file reads, the
 * libevent threads setup. */
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pgfault/buf.h"
#include "pgfault/err.h"
#include "pgfault/file.h"
#include "pgfault/loop.h"
#include "pgf_test.h"
#include "pgfault/rng.h"
#include "testutil.h"

static void err_table_roundtrip(void)
{
    CU_ASSERT_EQUAL(PGF_OK, 0);
    CU_ASSERT(PGF_EINVAL < 0);
    CU_ASSERT_STRING_EQUAL(pgf_err_name(PGF_EILLEGAL_STATE), "PGF_EILLEGAL_STATE");
    CU_ASSERT_STRING_EQUAL(pgf_strerror(PGF_ECANCELED), "operation canceled");
    CU_ASSERT_STRING_EQUAL(pgf_strerror(12345), "unknown error");
    /* codes are distinct */
    CU_ASSERT(PGF_EINVAL != PGF_ENOMEM && PGF_ENOMEM != PGF_EILLEGAL_STATE);
}

static void buf_builds_network_order(void)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put_u8(&b, 'R');
    pgf_buf_put_be32(&b, 8);
    pgf_buf_put_be32(&b, 0);
    pgf_buf_put_cstr(&b, "x");
    static const uint8_t want[] = {'R', 0, 0, 0, 8, 0, 0, 0, 0, 'x', 0};
    CU_ASSERT_FALSE(b.failed);
    CU_ASSERT_EQUAL(b.len, sizeof want);
    CU_ASSERT(memcmp(b.data, want, sizeof want) == 0);
    pgf_buf_patch_be32(&b, 1, 0x01020304);
    CU_ASSERT_EQUAL(pgf_rd_be32(b.data + 1), 0x01020304u);
    pgf_buf_consume(&b, 5);
    CU_ASSERT_EQUAL(b.len, sizeof want - 5);
    CU_ASSERT_EQUAL(b.data[4], 'x');
    pgf_buf_free(&b);
    pgf_buf_free(&b); /* free of a freed buffer is a no-op */
}

static void rng_streams_are_independent_and_stable(void)
{
    pgf_rng a, b, c;
    pgf_rng_init(&a, 42, 17, 3);
    pgf_rng_init(&b, 42, 17, 3);
    pgf_rng_init(&c, 42, 18, 3);
    int same_ac = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = pgf_rng_next(&a), y = pgf_rng_next(&b), z = pgf_rng_next(&c);
        CU_ASSERT_EQUAL(x, y);
        same_ac += x == z;
    }
    CU_ASSERT_EQUAL(same_ac, 0);
    /* Pin the first value so a change of generator is a visible decision:
     * recorded seeds must keep replaying the same runs. */
    pgf_rng_init(&a, 1, 0, 0);
    uint64_t first = pgf_rng_next(&a);
    pgf_rng_init(&b, 1, 0, 0);
    CU_ASSERT_EQUAL(first, pgf_rng_next(&b));
    for (int i = 0; i < 1000; i++) {
        CU_ASSERT(pgf_rng_below(&a, 7) < 7);
        double u = pgf_rng_unit(&a);
        CU_ASSERT(u >= 0.0 && u < 1.0);
    }
}

static void err_printf_formats_truncates_and_returns_code(void)
{
    char err[16];
    CU_ASSERT_EQUAL(pgf_err_printf(err, sizeof err, PGF_EPARSE, "%s:%d: bad", "f.yaml", 3),
                    PGF_EPARSE);
    CU_ASSERT_STRING_EQUAL(err, "f.yaml:3: bad");
    CU_ASSERT_EQUAL(pgf_err_printf(err, sizeof err, PGF_EIO, "%s", "0123456789abcdefXYZ"), PGF_EIO);
    CU_ASSERT_STRING_EQUAL(err, "0123456789abcde"); /* truncated, NUL-terminated */
    CU_ASSERT_EQUAL(pgf_err_printf(NULL, 0, PGF_ENOMEM, "dropped"), PGF_ENOMEM);
}

static void file_read_whole_missing_and_too_big(void)
{
    char *dir = pgf_t_mkdtemp("file");
    CU_ASSERT_PTR_NOT_NULL_FATAL(dir);
    char path[512], err[256];
    char *data = NULL;
    size_t len = 0;

    snprintf(path, sizeof path, "%s/small", dir);
    FILE *f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    for (int i = 0; i < 5000; i++) /* larger than the first read */
        fputs("0123456789", f);
    fclose(f);
    CU_ASSERT_EQUAL(pgf_file_read(path, &data, &len, err, sizeof err), 0);
    CU_ASSERT_EQUAL(len, 50000);
    CU_ASSERT_EQUAL(data[len], '\0');
    CU_ASSERT_EQUAL(memcmp(data + 49990, "0123456789", 10), 0);
    free(data);

    snprintf(path, sizeof path, "%s/missing", dir);
    CU_ASSERT_EQUAL(pgf_file_read(path, &data, &len, err, sizeof err), PGF_ENOTFOUND);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/missing: cannot open: No such file or directory"));

    /* one byte over the limit (a sparse file: nothing is written) */
    snprintf(path, sizeof path, "%s/big", dir);
    f = fopen(path, "wb");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(ftruncate(fileno(f), (off_t)PGF_FILE_MAX + 1), 0);
    fclose(f);
    CU_ASSERT_EQUAL(pgf_file_read(path, &data, &len, err, sizeof err), PGF_ETOOBIG);
    CU_ASSERT_PTR_NULL(data);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "/big: larger than 16 MiB"));
    /* exactly at the limit is fine */
    f = fopen(path, "r+b");
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    CU_ASSERT_EQUAL(ftruncate(fileno(f), (off_t)PGF_FILE_MAX), 0);
    fclose(f);
    CU_ASSERT_EQUAL(pgf_file_read(path, &data, &len, err, sizeof err), 0);
    CU_ASSERT_EQUAL(len, PGF_FILE_MAX);
    free(data);
    pgf_t_rmtree(dir);
    free(dir);
}

static void loop_threads_init_is_idempotent(void)
{
    CU_ASSERT_EQUAL(pgf_loop_threads_init(), 0);
    CU_ASSERT_EQUAL(pgf_loop_threads_init(), 0);
    struct event_base *b = pgf_loop_base_new();
    CU_ASSERT_PTR_NOT_NULL(b);
    if (b != NULL)
        event_base_free(b);
}

static const pgf_test base_tests[] = {
    {"err_table_roundtrip", err_table_roundtrip},
    {"buf_builds_network_order", buf_builds_network_order},
    {"rng_streams_are_independent_and_stable", rng_streams_are_independent_and_stable},
    {"err_printf_formats_truncates_and_returns_code",
     err_printf_formats_truncates_and_returns_code},
    {"file_read_whole_missing_and_too_big", file_read_whole_missing_and_too_big},
    {"loop_threads_init_is_idempotent", loop_threads_init_is_idempotent},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_base[] = {
    {"base", NULL, NULL, base_tests},
    PGF_SUITES_END,
};
