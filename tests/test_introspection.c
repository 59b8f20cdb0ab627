/* test_introspection.c - recorded PostgreSQL answers (fakes/server/catalog.c)
 * and canned answers (fakes/server/answers.c), sans I/O: statements in,
 * results out.
 *
 * The expected values come from the golden files themselves or from the
 * PostgreSQL 15 catalog (pg_type oids are fixed across clusters): json is
 * 114, int4 23, _int4 1007 with element 23, int4range 3904 over int4. What
 * this does not test: the bytes on the wire and real clients (the orm_*.sh
 * end-to-end scripts do, against the fake and a real PostgreSQL).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <jansson.h>

#include "pgf_test.h"
#include "pgfault/answers.h"
#include "sql.h"
#include "testutil.h"

static void run(pgf_sql_session *s, const char *sql, const char *const *params, int n,
                pgf_sql_result *r)
{
    pgf_sql_exec(s, sql, strlen(sql), params, n, r);
}

static const char *cell(const pgf_sql_result *r, int row, int col)
{
    static uint8_t scratch[16];
    const char *out;
    int32_t len = pgf_sql_result_value(r, row, col, 0, scratch, &out);
    static char buf[256];
    if (len < 0)
        return NULL;
    snprintf(buf, sizeof buf, "%.*s", (int)len, out);
    return buf;
}

static int col_index(const pgf_sql_result *r, const char *name)
{
    for (int i = 0; i < r->nxcols; i++)
        if (strcmp(r->xcols[i].name, name) == 0)
            return i;
    return -1;
}

static void normalize_ignores_layout(void)
{
    static const char *const same[] = {
        "select  t.oid\n\tFROM pg_type t where typname = 'Hstore';",
        "SELECT t.oid FROM pg_type t WHERE typname = 'Hstore'",
        "-- lookup\nSELECT /* a */ t.oid FROM\npg_type t WHERE typname='Hstore'  ;  ",
    };
    char *first = pgf_sql_normalize(same[0], strlen(same[0]));
    CU_ASSERT_STRING_EQUAL(first, "select t.oid from pg_type t where typname = 'Hstore'");
    for (size_t i = 1; i < sizeof same / sizeof same[0]; i++) {
        char *n = pgf_sql_normalize(same[i], strlen(same[i]));
        CU_ASSERT_STRING_EQUAL(n, first);
        free(n);
    }
    /* string contents and quoted identifiers keep their case */
    char *q = pgf_sql_normalize("SELECT \"MyCol\" FROM t WHERE x = 'hstore'", 40);
    CU_ASSERT_STRING_EQUAL(q, "select \"MyCol\" from t where x = 'hstore'");
    free(q);
    free(first);
}

/* The "sql" of the golden file whose statement contains `needle`
 * (NULL: count the files into *count). Caller frees. */
static char *golden_sql(const char *needle, int *count)
{
    DIR *d = opendir(PGF_TEST_DATA_DIR "/introspection");
    CU_ASSERT_FATAL(d != NULL);
    char *found = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        size_t l = strlen(e->d_name);
        if (l < 6 || strcmp(e->d_name + l - 5, ".json") != 0)
            continue;
        n++;
        if (needle == NULL || found != NULL)
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/introspection/%s", PGF_TEST_DATA_DIR, e->d_name);
        json_t *j = json_load_file(path, 0, NULL);
        const char *sql = json_string_value(json_object_get(j, "sql"));
        if (sql != NULL && strstr(sql, needle) != NULL)
            found = strdup(sql);
        json_decref(j);
    }
    closedir(d);
    if (count != NULL)
        *count = n;
    return found;
}

static void catalog_loads_every_golden_file(void)
{
    int files = 0;
    golden_sql(NULL, &files);
    CU_ASSERT(files >= 10);
    CU_ASSERT_EQUAL(pgf__catalog_count(), files);
}

/* SQLAlchemy's asyncpg dialect, on every new connection. */
static void asyncpg_type_by_oid(void)
{
    static const char q[] = "SELECT\n    t.oid,\n    t.typelem     AS elemtype,\n    t.typtype"
                            "     AS kind\nFROM\n    pg_catalog.pg_type AS t\nWHERE\n    t.oid = "
                            "$1\n";
    CU_ASSERT_EQUAL(pgf_sql_param_type(q, 1), 26); /* oid, as PostgreSQL describes it */
    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    const char *json[] = {"114"};
    pgf_sql_result r;
    run(&s, q, json, 1, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_EQUAL(pgf_sql_result_nrows(&r), 1);
    CU_ASSERT_EQUAL(pgf_sql_result_ncols(&r), 3);
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 0), "114");
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 2), "b");
    CU_ASSERT_EQUAL(r.xcols[0].type_oid, 26);
    CU_ASSERT_EQUAL(r.xcols[0].table_oid, 1247); /* pg_type */
    /* binary as PostgreSQL sent it */
    uint8_t scratch[16];
    const char *out;
    CU_ASSERT_EQUAL(pgf_sql_result_value(&r, 0, 0, 1, scratch, &out), 4);
    CU_ASSERT(memcmp(out, "\x00\x00\x00\x72", 4) == 0);
    pgf_sql_result_release(&r);
    /* a type oid that was never recorded: an honest error, not a guess */
    const char *other[] = {"999999"};
    run(&s, q, other, 1, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "0A000");
    pgf_sql_session_free(&s);
}

/* asyncpg's own introspection: any set of built-in types, merged. */
static void asyncpg_introspection_merges_elements(void)
{
    char *q = golden_sql("typeinfo_tree", NULL);
    CU_ASSERT_FATAL(q != NULL);
    CU_ASSERT_EQUAL(pgf_sql_param_type(q, 1), 1028); /* oid[] */

    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    pgf_sql_result r;
    const char *both[] = {"{1007,3904}"};
    run(&s, q, both, 1, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ROWS);
    /* _int4 and int4range at depth 0, int4 (their element / subtype) once, at depth 1 */
    CU_ASSERT_EQUAL(pgf_sql_result_nrows(&r), 3);
    CU_ASSERT_STRING_EQUAL(r.tag, "SELECT 3");
    int name = col_index(&r, "name"), depth = col_index(&r, "depth");
    CU_ASSERT_FATAL(name >= 0 && depth >= 0);
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, name), "int4");
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, depth), "1");
    CU_ASSERT_STRING_EQUAL(cell(&r, 1, depth), "0");
    CU_ASSERT_STRING_EQUAL(cell(&r, 2, depth), "0");
    pgf_sql_result_release(&r);
    CU_ASSERT_PTR_NULL(r.xalloc);
    /* one element not in pg_catalog (hstore is not installed): no answer */
    const char *bad[] = {"{1007,77777}"};
    run(&s, q, bad, 1, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    pgf_sql_result_release(&r);
    pgf_sql_session_free(&s);
    free(q);
}

/* psycopg's TypeInfo.fetch: json found, hstore refused as PostgreSQL does. */
static void psycopg_typeinfo_error_recorded(void)
{
    static const char q[] = "SELECT\n    typname AS name, oid, typarray AS array_oid,\n"
                            "    oid::regtype::text AS regtype, typdelim AS delimiter\n"
                            "FROM pg_type t\nWHERE t.oid = $1::regtype\nORDER BY t.oid\n";
    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    pgf_sql_result r;
    const char *hstore[] = {"hstore"};
    s.txn = 'T';
    run(&s, q, hstore, 1, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "42704");
    CU_ASSERT_STRING_EQUAL(r.error.message, "type \"hstore\" does not exist");
    CU_ASSERT_EQUAL(s.txn, 'E'); /* the transaction fails, as in PostgreSQL */
    s.txn = 'I';
    const char *json[] = {"json"};
    run(&s, q, json, 1, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 1), "114");
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 2), "199");
    /* Describe: the recorded columns, no rows */
    pgf_sql_describe(&s, q, strlen(q), &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_EQUAL(pgf_sql_result_ncols(&r), 5);
    CU_ASSERT_EQUAL(pgf_sql_result_nrows(&r), 0);
    pgf_sql_session_free(&s);
}

/* Sequelize's connect-time type query, sent as a simple query. */
static void sequelize_ranges_query(void)
{
    char *rec = golden_sql("WITH ranges AS", NULL);
    CU_ASSERT_FATAL(rec != NULL);
    free(rec);
    /* whitespace differences do not matter */
    static const char q[] =
        "WITH ranges AS (  SELECT pg_range.rngtypid, pg_type.typname AS rngtypname,  "
        "pg_type.typarray AS rngtyparray, pg_range.rngsubtype FROM pg_range LEFT OUTER JOIN "
        "pg_type ON pg_type.oid = pg_range.rngtypid)SELECT pg_type.typname, pg_type.typtype, "
        "pg_type.oid, pg_type.typarray, ranges.rngtypname, ranges.rngtypid, ranges.rngtyparray "
        "FROM pg_type LEFT OUTER JOIN ranges ON pg_type.oid = ranges.rngsubtype WHERE "
        "(pg_type.typtype IN('b', 'e'));";
    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    pgf_sql_result r;
    run(&s, q, NULL, 0, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT(pgf_sql_result_nrows(&r) > 100);
    bool int4 = false, hstore = false;
    for (int i = 0; i < pgf_sql_result_nrows(&r); i++) {
        const char *name = cell(&r, i, 0);
        int4 = int4 || (name && strcmp(name, "int4") == 0);
        hstore = hstore || (name && strcmp(name, "hstore") == 0);
    }
    CU_ASSERT(int4);
    CU_ASSERT(!hstore);
    pgf_sql_session_free(&s);
}

static void unknown_statements_keep_their_error(void)
{
    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    pgf_sql_result r;
    run(&s, "SELECT * FROM pg_type", NULL, 0, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "0A000");
    run(&s, "WITH x AS (SELECT 1) SELECT * FROM x", NULL, 0, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "0A000");
    pgf_sql_session_free(&s);
}

/* ---- canned answers ---- */

static pgf_answers *parse(const char *yaml, char *err, size_t errlen, int *rc)
{
    pgf_doc *d = pgf_doc_from_yaml(yaml, strlen(yaml), "answers.yaml", err, errlen);
    if (d == NULL) {
        *rc = PGF_EPARSE;
        return NULL;
    }
    pgf_answers *a = NULL;
    *rc = pgf_answers_from_doc(d, "answers.yaml", &a, err, errlen);
    pgf_doc_free(d);
    return a;
}

static const char canned[] = "- statement: SELECT count(*) FROM users\n"
                             "  columns: [{name: count, type: int8}]\n"
                             "  rows: [[42]]\n"
                             "- regex: '^select 1 from pg_stat_activity'\n"
                             "  columns:\n"
                             "    - {name: '?column?', type: int4}\n"
                             "    - {name: ok, type: bool}\n"
                             "    - {name: note, type: text}\n"
                             "    - {name: doc, type: jsonb}\n"
                             "  rows:\n"
                             "    - [1, true, null, '{\"a\": 1}']\n"
                             "    - [2, off, hello, '{}']\n"
                             "  delay_ms: 250\n"
                             "- statement: select * from broken\n"
                             "  error: {sqlstate: 42P01, message: relation \"broken\" does not "
                             "exist}\n"
                             "- statement: SELECT 1\n"
                             "  columns: [{name: one, type: int4}]\n"
                             "  rows: [[7]]\n";

static void canned_answers_served(void)
{
    char err[256] = "";
    int rc;
    pgf_answers *a = parse(canned, err, sizeof err, &rc);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    CU_ASSERT_EQUAL(pgf_answers_count(a), 4);
    pgf_sql_session s;
    pgf_sql_session_init(&s, "u", "db", false);
    s.answers = a;
    pgf_sql_result r;
    run(&s, "select COUNT(*)\n  from users;", NULL, 0, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(r.tag, "SELECT 1");
    CU_ASSERT_EQUAL(r.xcols[0].type_oid, 20);
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 0), "42");
    uint8_t scratch[16];
    const char *out;
    CU_ASSERT_EQUAL(pgf_sql_result_value(&r, 0, 0, 1, scratch, &out), 8);
    CU_ASSERT(memcmp(out, "\0\0\0\0\0\0\0\x2a", 8) == 0);

    run(&s, "SELECT 1 FROM pg_stat_activity WHERE pid = 3", NULL, 0, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_SLEEP); /* rows after delay_ms */
    CU_ASSERT_EQUAL(r.sleep_ms, 250);
    CU_ASSERT_STRING_EQUAL(r.tag, "SELECT 2");
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 1), "t");
    CU_ASSERT_PTR_NULL(cell(&r, 0, 2));
    CU_ASSERT_STRING_EQUAL(cell(&r, 1, 1), "f");
    CU_ASSERT_EQUAL(pgf_sql_result_value(&r, 0, 3, 1, scratch, &out), 9);
    CU_ASSERT(memcmp(out, "\x01{\"a\": 1}", 9) == 0);

    s.txn = 'T';
    run(&s, "SELECT * FROM broken", NULL, 0, &r);
    CU_ASSERT_EQUAL_FATAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "42P01");
    CU_ASSERT_STRING_EQUAL(r.error.message, "relation \"broken\" does not exist");
    CU_ASSERT_EQUAL(s.txn, 'E');
    s.txn = 'I';
    /* canned answers come before the built-in ones */
    run(&s, "SELECT 1", NULL, 0, &r);
    CU_ASSERT_STRING_EQUAL(cell(&r, 0, 0), "7");
    /* what no answer matches falls through */
    run(&s, "SELECT 2", NULL, 0, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(r.values[0], "2");
    pgf_sql_session_free(&s);
    pgf_answers_free(a);
}

static void canned_answer_errors_name_the_place(void)
{
    static const struct {
        const char *yaml, *err;
    } bad[] = {
        {"- statement: x\n  columns: [{name: a, type: money}]\n",
         "answers.yaml:2:29: unsupported column type 'money'"},
        {"- statement: x\n  columns: [{name: a, type: int4}]\n  rows: [[1, 2]]\n",
         "answers.yaml:3:10: this row has 2 values for 1 columns"},
        {"- statement: x\n  columns: [{name: a, type: int2}]\n  rows: [[70000]]\n",
         "answers.yaml:3:11: '70000' is not a valid int2 value"},
        {"- statement: x\n  error: {sqlstate: 42p01, message: m}\n",
         "answers.yaml:2:21: sqlstate '42p01' is not five digits or upper-case letters"},
        {"- statement: x\n  regex: y\n  error: {sqlstate: 42P01, message: m}\n",
         "answers.yaml:2:10: an answer needs exactly one of statement or regex"},
        {"- regex: '('\n  error: {sqlstate: 42P01, message: m}\n",
         "answers.yaml:1:10: bad regular expression '('"},
        {"- statement: x\n  colums: []\n", "answers.yaml:2:3: unknown key 'colums'"},
        {"- statement: x\n  error: {sqlstate: 42P01, message: m}\n  delay_ms: 5\n",
         "answers.yaml:3:13: delay_ms applies to answers with rows"},
        {"statement: x\n", "answers.yaml:1:1: answers must be a list"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[256] = "";
        int rc;
        pgf_answers *a = parse(bad[i].yaml, err, sizeof err, &rc);
        CU_ASSERT_PTR_NULL(a);
        CU_ASSERT_EQUAL(rc, PGF_EPARSE);
        if (strncmp(err, bad[i].err, strlen(bad[i].err)) != 0) {
            fprintf(stderr, "\ncase %zu: got '%s'\n      want '%s...'\n", i, err, bad[i].err);
            CU_FAIL("wrong error message");
        }
    }
}

static const pgf_test introspection_tests[] = {
    {"normalize_ignores_layout", normalize_ignores_layout},
    {"catalog_loads_every_golden_file", catalog_loads_every_golden_file},
    {"asyncpg_type_by_oid", asyncpg_type_by_oid},
    {"asyncpg_introspection_merges_elements", asyncpg_introspection_merges_elements},
    {"psycopg_typeinfo_error_recorded", psycopg_typeinfo_error_recorded},
    {"sequelize_ranges_query", sequelize_ranges_query},
    {"unknown_statements_keep_their_error", unknown_statements_keep_their_error},
    {"canned_answers_served", canned_answers_served},
    {"canned_answer_errors_name_the_place", canned_answer_errors_name_the_place},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_introspection[] = {
    {"introspection", NULL, NULL, introspection_tests},
    PGF_SUITES_END,
};
