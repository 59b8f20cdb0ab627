/* runner.c - the one CUnit runner for every unit and integration suite.
 *
 *   pgf_tests              run everything
 *   pgf_tests -s SUITE     run one suite (what each ctest does)
 *   pgf_tests -s S -t T    run one test
 *   pgf_tests -l           list suites and tests
 *   pgf_tests --cmake F    write one add_test() per suite into F (build step)
 */
#include "pgf_test.h"

#include <CUnit/Basic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry.h"

static int for_each_suite(int (*fn)(const pgf_suite *, void *), void *arg)
{
    for (size_t m = 0; pgf_registry[m] != NULL; m++)
        for (const pgf_suite *s = pgf_registry[m]; s->name != NULL; s++) {
            int rc = fn(s, arg);
            if (rc != 0)
                return rc;
        }
    return 0;
}

static int list_one(const pgf_suite *s, void *arg)
{
    (void)arg;
    printf("%s\n", s->name);
    for (const pgf_test *t = s->tests; t->name != NULL; t++)
        printf("  %s\n", t->name);
    return 0;
}

struct cmake_arg {
    FILE *f;
    const char *self;
};

static int cmake_one(const pgf_suite *s, void *arg)
{
    struct cmake_arg *a = arg;
    fprintf(a->f, "add_test([=[%s]=] \"%s\" -s [=[%s]=])\n", s->name, a->self, s->name);
    fprintf(a->f, "set_tests_properties([=[%s]=] PROPERTIES TIMEOUT 300 LABELS unit)\n", s->name);
    return 0;
}

struct add_arg {
    const char *suite;
    const char *test;
    int found;
};

static int add_one(const pgf_suite *s, void *arg)
{
    struct add_arg *a = arg;
    if (a->suite != NULL && strcmp(a->suite, s->name) != 0)
        return 0;
    CU_pSuite cs = CU_add_suite(s->name, s->setup, s->teardown);
    if (cs == NULL)
        return -1;
    for (const pgf_test *t = s->tests; t->name != NULL; t++) {
        if (a->test != NULL && strcmp(a->test, t->name) != 0)
            continue;
        if (CU_add_test(cs, t->name, t->fn) == NULL)
            return -1;
        a->found++;
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *suite = NULL, *test = NULL, *cmake = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-l") == 0) {
            return for_each_suite(list_one, NULL) == 0 ? 0 : 1;
        } else if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            suite = argv[++i];
        } else if (strcmp(argv[i], "-t") == 0 && i + 1 < argc) {
            test = argv[++i];
        } else if (strcmp(argv[i], "--cmake") == 0 && i + 1 < argc) {
            cmake = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [-l] [-s SUITE [-t TEST]] [--cmake FILE]\n", argv[0]);
            return 2;
        }
    }
    if (cmake != NULL) {
        FILE *f = fopen(cmake, "w");
        if (f == NULL) {
            perror(cmake);
            return 2;
        }
        struct cmake_arg a = {f, argv[0]};
        for_each_suite(cmake_one, &a);
        return fclose(f) == 0 ? 0 : 2;
    }
    /* A peer closing a socket under a test must not kill the runner. */
    signal(SIGPIPE, SIG_IGN);
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    struct add_arg a = {suite, test, 0};
    if (for_each_suite(add_one, &a) != 0) {
        fprintf(stderr, "cannot register tests: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    if (a.found == 0) {
        /* A filter that matches nothing is a broken invocation, not a pass. */
        fprintf(stderr, "no test matches suite=%s test=%s\n", suite ? suite : "*",
                test ? test : "*");
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
    CU_cleanup_registry();
    return failed == 0 ? 0 : 1;
}
