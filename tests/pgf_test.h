/* pgf_test.h - the shared CUnit runner's registration types.
 *
 * Each tests/test_<module>.c defines one table:
 *
 *     const pgf_suite pgf_suites_<module>[] = {
 *         {"proto_framing", NULL, NULL, framing_tests},
 *         PGF_SUITES_END,
 *     };
 *
 * CMake finds the files, generates the registry, and registers one ctest
 * per suite (the runner lists them after it is built), so `ctest` output
 * names the suite that broke. Run one suite or test by hand with
 * `pgf_tests -s SUITE [-t TEST]`; `-l` lists them.
 */
#ifndef PGF_TEST_H
#define PGF_TEST_H

#include <CUnit/CUnit.h>

typedef struct pgf_test {
    const char *name;
    void (*fn)(void);
} pgf_test;

typedef struct pgf_suite {
    const char *name;
    int (*setup)(void);    /* may be NULL; non-zero fails the suite */
    int (*teardown)(void); /* may be NULL */
    const pgf_test *tests; /* terminated by PGF_TESTS_END */
} pgf_suite;

#define PGF_TESTS_END \
    {                 \
        NULL, NULL    \
    }
#define PGF_SUITES_END         \
    {                          \
        NULL, NULL, NULL, NULL \
    }

#endif
