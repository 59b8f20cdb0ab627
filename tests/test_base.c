/* test_base.c - errors, buffers, random streams. */
#include <stdlib.h>
#include <string.h>

#include "pgfault/buf.h"
#include "pgfault/err.h"
#include "pgf_test.h"
#include "pgfault/rng.h"

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

static const pgf_test base_tests[] = {
    {"err_table_roundtrip", err_table_roundtrip},
    {"buf_builds_network_order", buf_builds_network_order},
    {"rng_streams_are_independent_and_stable", rng_streams_are_independent_and_stable},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_base[] = {
    {"base", NULL, NULL, base_tests},
    PGF_SUITES_END,
};
