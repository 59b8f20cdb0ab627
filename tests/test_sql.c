/* test_sql.c - the fake server's SQL responder (fakes/server/sql.h), sans
 * I/O: statements and a session in, results out.
 *
 * Table-driven: each row is one statement run on a session in a given
 * transaction state, with the kind, column, value, tag, SQLSTATE and
 * transaction state PostgreSQL 15 would give. The syntax-error row is also
 * checked against the ErrorResponse recorded from a real server
 * (a_simple_misc.hex). What this does not test: the bytes on the wire
 * (test_server.c does, through a real socket).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/proto.h"
#include "sql.h"
#include "testutil.h"

static void exec_str(pgf_sql_session *s, const char *sql, pgf_sql_result *r)
{
    pgf_sql_exec(s, sql, strlen(sql), NULL, 0, r);
}

static const char *kind_name(pgf_sql_kind k)
{
    switch (k) {
    case PGF_SQL_ROWS:
        return "ROWS";
    case PGF_SQL_COMMAND:
        return "COMMAND";
    case PGF_SQL_EMPTY:
        return "EMPTY";
    case PGF_SQL_ERROR:
        return "ERROR";
    case PGF_SQL_SLEEP:
        return "SLEEP";
    }
    return "?";
}

/* One statement and what PostgreSQL 15 answers. NULL fields are not checked. */
typedef struct sql_case {
    const char *sql;
    char txn_before; /* session state before: 'I', 'T', 'E' */
    pgf_sql_kind kind;
    const char *col; /* first column name */
    uint32_t type;   /* first column type OID (0 = not checked) */
    const char *value;
    const char *tag;
    const char *sqlstate;
    const char *msg; /* error message, exact */
    const char *position;
    char txn_after;
    const char *notice_sqlstate; /* a WARNING goes with the result */
} sql_case;

static const sql_case cases[] = {
    /* health checks and literals */
    {"SELECT 1", 'I', PGF_SQL_ROWS, "?column?", 23, "1", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"SELECT 1;", 'I', PGF_SQL_ROWS, "?column?", 23, "1", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"  select   1  ", 'I', PGF_SQL_ROWS, "?column?", 23, "1", "SELECT 1", NULL, NULL, NULL, 'I',
     NULL},
    {"SELECT 42", 'I', PGF_SQL_ROWS, "?column?", 23, "42", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"SELECT -7", 'I', PGF_SQL_ROWS, "?column?", 23, "-7", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"SELECT 2147483647", 'I', PGF_SQL_ROWS, "?column?", 23, "2147483647", "SELECT 1", NULL, NULL,
     NULL, 'I', NULL},
    {"SELECT 3000000000", 'I', PGF_SQL_ROWS, "?column?", 20, "3000000000", "SELECT 1", NULL, NULL,
     NULL, 'I', NULL},
    {"SELECT 1::int", 'I', PGF_SQL_ROWS, "int4", 23, "1", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"SELECT 5::bigint", 'I', PGF_SQL_ROWS, "int8", 20, "5", "SELECT 1", NULL, NULL, NULL, 'I',
     NULL},
    {"SELECT 3000000000::int", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "22003",
     "integer out of range", NULL, 'I', NULL},
    {"SELECT 1 AS one", 'I', PGF_SQL_ROWS, "one", 23, "1", "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"SELECT 'text'", 'I', PGF_SQL_ROWS, "?column?", 25, "text", "SELECT 1", NULL, NULL, NULL, 'I',
     NULL},
    {"SELECT 'it''s'", 'I', PGF_SQL_ROWS, "?column?", 25, "it's", "SELECT 1", NULL, NULL, NULL, 'I',
     NULL},
    {"SELECT version()", 'I', PGF_SQL_ROWS, "version", 25, NULL, "SELECT 1", NULL, NULL, NULL, 'I',
     NULL},
    {"SELECT current_database()", 'I', PGF_SQL_ROWS, "current_database", 19, "appdb", "SELECT 1",
     NULL, NULL, NULL, 'I', NULL},
    {"SELECT pg_catalog.pg_is_in_recovery()", 'I', PGF_SQL_ROWS, "pg_is_in_recovery", 16, "f",
     "SELECT 1", NULL, NULL, NULL, 'I', NULL},
    {"", 'I', PGF_SQL_EMPTY, NULL, 0, NULL, NULL, NULL, NULL, NULL, 'I', NULL},
    /* SHOW / SET / RESET / DISCARD */
    {"SHOW server_version", 'I', PGF_SQL_ROWS, "server_version", 25, PGF_SQL_SERVER_VERSION, "SHOW",
     NULL, NULL, NULL, 'I', NULL},
    {"SHOW datestyle", 'I', PGF_SQL_ROWS, "DateStyle", 25, "ISO, MDY", "SHOW", NULL, NULL, NULL,
     'I', NULL},
    {"SHOW transaction isolation level", 'I', PGF_SQL_ROWS, "transaction_isolation", 25,
     "read committed", "SHOW", NULL, NULL, NULL, 'I', NULL},
    {"SHOW no_such_guc", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42704",
     "unrecognized configuration parameter \"no_such_guc\"", NULL, 'I', NULL},
    {"SET statement_timeout = 0", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "SET", NULL, NULL, NULL, 'I',
     NULL},
    {"SET no_such_guc = 1", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42704",
     "unrecognized configuration parameter \"no_such_guc\"", NULL, 'I', NULL},
    {"RESET statement_timeout", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "RESET", NULL, NULL, NULL, 'I',
     NULL},
    {"DISCARD ALL", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "DISCARD ALL", NULL, NULL, NULL, 'I',
     NULL},
    {"DISCARD ALL", 'T', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "25001",
     "DISCARD ALL cannot run inside a transaction block", NULL, 'E', NULL},
    /* transactions */
    {"BEGIN", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "BEGIN", NULL, NULL, NULL, 'T', NULL},
    {"START TRANSACTION", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "START TRANSACTION", NULL, NULL,
     NULL, 'T', NULL},
    {"BEGIN", 'T', PGF_SQL_COMMAND, NULL, 0, NULL, "BEGIN", NULL, NULL, NULL, 'T', "25001"},
    {"COMMIT", 'T', PGF_SQL_COMMAND, NULL, 0, NULL, "COMMIT", NULL, NULL, NULL, 'I', NULL},
    {"COMMIT", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "COMMIT", NULL, NULL, NULL, 'I', "25P01"},
    {"COMMIT", 'E', PGF_SQL_COMMAND, NULL, 0, NULL, "ROLLBACK", NULL, NULL, NULL, 'I', NULL},
    {"ROLLBACK", 'T', PGF_SQL_COMMAND, NULL, 0, NULL, "ROLLBACK", NULL, NULL, NULL, 'I', NULL},
    {"ROLLBACK", 'E', PGF_SQL_COMMAND, NULL, 0, NULL, "ROLLBACK", NULL, NULL, NULL, 'I', NULL},
    {"ROLLBACK", 'I', PGF_SQL_COMMAND, NULL, 0, NULL, "ROLLBACK", NULL, NULL, NULL, 'I', "25P01"},
    {"SELECT 1", 'E', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "25P02",
     "current transaction is aborted, commands ignored until end of transaction block", NULL, 'E',
     NULL},
    {"SELECT 1", 'T', PGF_SQL_ROWS, "?column?", 23, "1", "SELECT 1", NULL, NULL, NULL, 'T', NULL},
    {"SELEC 1", 'T', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42601",
     "syntax error at or near \"SELEC\"", "1", 'E', NULL},
    /* pg_sleep */
    {"SELECT pg_sleep(0.25)", 'I', PGF_SQL_SLEEP, "pg_sleep", 2278, NULL, "SELECT 1", NULL, NULL,
     NULL, 'I', NULL},
    {"select pg_catalog.pg_sleep(2)", 'I', PGF_SQL_SLEEP, "pg_sleep", 2278, NULL, "SELECT 1", NULL,
     NULL, NULL, 'I', NULL},
    /* errors */
    {"SELEC 1", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42601",
     "syntax error at or near \"SELEC\"", "1", 'I', NULL},
    {"  hello world", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42601",
     "syntax error at or near \"hello\"", "3", 'I', NULL},
    {"SET", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "42601", "syntax error at end of input", "4",
     'I', NULL},
    {"CREATE TABLE t (a int)", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "0A000", NULL, NULL, 'I',
     NULL},
    {"SELECT * FROM pg_class", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "0A000", NULL, NULL, 'I',
     NULL},
    {"INSERT INTO t VALUES (1)", 'T', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "0A000", NULL, NULL, 'E',
     NULL},
    /* refused by name, not as an unknown setting "role" (42704) */
    {"SET ROLE app_tenant", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "0A000",
     "pgfault fake server does not implement this statement: SET ROLE", NULL, 'I', NULL},
    {"SET SESSION AUTHORIZATION other", 'I', PGF_SQL_ERROR, NULL, 0, NULL, NULL, "0A000",
     "pgfault fake server does not implement this statement: SET SESSION AUTHORIZATION", NULL, 'I',
     NULL},
};

static void run_case(const sql_case *c, int idx)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "alice", "appdb", false);
    s.txn = c->txn_before;
    pgf_sql_result r;
    exec_str(&s, c->sql, &r);
    bool ok = r.kind == c->kind && s.txn == c->txn_after;
    if (ok && c->col != NULL)
        ok = r.ncols >= 1 && strcmp(r.cols[0].name, c->col) == 0;
    if (ok && c->type != 0)
        ok = r.ncols >= 1 && r.cols[0].type_oid == c->type;
    if (ok && c->value != NULL)
        ok = r.nrows == 1 && !r.nulls[0] && strcmp(r.values[0], c->value) == 0;
    if (ok && c->tag != NULL)
        ok = strcmp(r.tag, c->tag) == 0;
    if (ok && c->sqlstate != NULL)
        ok = r.error.sqlstate != NULL && strcmp(r.error.sqlstate, c->sqlstate) == 0 &&
             strcmp(r.error.severity, "ERROR") == 0;
    if (ok && c->msg != NULL)
        ok = r.error.message != NULL && strcmp(r.error.message, c->msg) == 0;
    if (ok && c->kind == PGF_SQL_ERROR)
        ok = c->position == NULL
                 ? r.error.position == NULL
                 : r.error.position != NULL && strcmp(r.error.position, c->position) == 0;
    if (ok)
        ok = c->notice_sqlstate == NULL
                 ? !r.has_notice
                 : r.has_notice && strcmp(r.notice.sqlstate, c->notice_sqlstate) == 0 &&
                       strcmp(r.notice.severity, "WARNING") == 0;
    if (!ok)
        fprintf(stderr,
                "\n  case %d \"%s\" (txn %c): got kind %s txn %c col '%s' type %u value '%s' tag "
                "'%s' sqlstate %s msg '%s' position %s notice %s",
                idx, c->sql, c->txn_before, kind_name(r.kind), s.txn, r.ncols ? r.cols[0].name : "",
                r.ncols ? r.cols[0].type_oid : 0, r.values[0], r.tag,
                r.error.sqlstate ? r.error.sqlstate : "-", r.error.message ? r.error.message : "",
                r.error.position ? r.error.position : "-", r.has_notice ? r.notice.sqlstate : "-");
    CU_ASSERT(ok);
}

static void statements_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i], (int)i);
}

static void pg_sleep_parses_durations(void)
{
    static const struct {
        const char *sql;
        uint64_t ms;
    } t[] = {
        {"SELECT pg_sleep(0)", 0},       {"SELECT pg_sleep(1)", 1000},
        {"SELECT pg_sleep(0.5)", 500},   {"SELECT pg_sleep(-1)", 0},
        {"SELECT pg_sleep(10);", 10000}, {"SELECT pg_sleep(100000)", 86400000},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
        pgf_sql_session_init(&s, "u", "d", false);
        pgf_sql_result r;
        exec_str(&s, t[i].sql, &r);
        if (r.kind != PGF_SQL_SLEEP || r.sleep_ms != t[i].ms)
            fprintf(stderr, "\n  %s: kind %s sleep_ms %llu (want %llu)", t[i].sql,
                    kind_name(r.kind), (unsigned long long)r.sleep_ms, (unsigned long long)t[i].ms);
        CU_ASSERT(r.kind == PGF_SQL_SLEEP && r.sleep_ms == t[i].ms);
    }
    /* With a parameter (extended protocol). */
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    const char *params[] = {"1.5"};
    const char *q = "SELECT pg_sleep($1)";
    pgf_sql_exec(&s, q, strlen(q), params, 1, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_SLEEP);
    CU_ASSERT_EQUAL(r.sleep_ms, 1500);
    CU_ASSERT_EQUAL(pgf_sql_param_type(q, 1), 701); /* float8, as PostgreSQL infers */
    /* NULL (and Describe, which knows no values yet): strict function, no sleep. */
    const char *null_param[] = {NULL};
    pgf_sql_exec(&s, q, strlen(q), null_param, 1, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_SLEEP);
    CU_ASSERT_EQUAL(r.sleep_ms, 0);
    pgf_sql_describe(&s, q, strlen(q), &r);
    CU_ASSERT_NOT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_EQUAL(r.cols[0].type_oid, 2278);
    /* Not a call: a syntax error, not a hang. */
    exec_str(&s, "SELECT pg_sleep(", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "42601");
}

static void parameters_and_casts(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    const char *params[] = {"41", NULL};
    const char *q1 = "SELECT $1::int AS answer";
    pgf_sql_exec(&s, q1, strlen(q1), params, 2, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(r.cols[0].name, "answer");
    CU_ASSERT_EQUAL(r.cols[0].type_oid, 23);
    CU_ASSERT_STRING_EQUAL(r.values[0], "41");
    const char *q2 = "SELECT $2";
    pgf_sql_exec(&s, q2, strlen(q2), params, 2, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT(r.nulls[0]);
    const char *q3 = "SELECT $3";
    pgf_sql_exec(&s, q3, strlen(q3), params, 2, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "42P02");
    CU_ASSERT_STRING_EQUAL(r.error.message, "there is no parameter $3");
    CU_ASSERT_EQUAL(pgf_sql_param_type("SELECT $1::int + $2", 1), 23);
    CU_ASSERT_EQUAL(pgf_sql_param_type("SELECT $1::int + $2", 2), 25);
    CU_ASSERT_EQUAL(pgf_sql_param_type("SELECT $10::bigint, $1", 1), 25); /* $1 is not $10 */
}

static void set_reports_parameter_status(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "alice", "appdb", false);
    pgf_sql_result r;
    /* As recorded (a_simple_misc): C "SET" then S application_name=changed. */
    exec_str(&s, "SET application_name = 'changed'", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    CU_ASSERT_STRING_EQUAL(r.tag, "SET");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.report_name);
    CU_ASSERT_STRING_EQUAL(r.report_name, "application_name");
    CU_ASSERT_STRING_EQUAL(r.report_value, "changed");
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "application_name"), "changed");
    exec_str(&s, "SHOW application_name", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "changed");
    /* DateStyle is canonicalized and reported under its canonical name. */
    exec_str(&s, "SET datestyle TO german", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.report_name);
    CU_ASSERT_STRING_EQUAL(r.report_name, "DateStyle");
    CU_ASSERT_STRING_EQUAL(r.report_value, "German, DMY");
    exec_str(&s, "SET DateStyle = 'SQL, DMY'", &r);
    CU_ASSERT_STRING_EQUAL(r.report_value, "SQL, DMY");
    /* Only the style given: PostgreSQL keeps the current order. */
    exec_str(&s, "SET DateStyle = ISO", &r);
    CU_ASSERT_STRING_EQUAL(r.report_value, "ISO, DMY");
    exec_str(&s, "SET DateStyle = 'YMD'", &r);
    CU_ASSERT_STRING_EQUAL(r.report_value, "ISO, YMD");
    exec_str(&s, "SET DateStyle = 'Postgres, US'", &r);
    CU_ASSERT_STRING_EQUAL(r.report_value, "Postgres, MDY");
    /* Same value again: nothing to report (PostgreSQL 14+). */
    exec_str(&s, "SET DateStyle = 'Postgres, MDY'", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    CU_ASSERT_EQUAL(r.nreports, 0);
    CU_ASSERT_PTR_NULL(r.report_name);
    exec_str(&s, "SET DateStyle = ISO", &r);
    exec_str(&s, "SET application_name = 'again'", &r);
    /* A non-reported GUC reports nothing. */
    exec_str(&s, "SET statement_timeout = '5s'", &r);
    CU_ASSERT_PTR_NULL(r.report_name);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "statement_timeout"), "5s");
    /* RESET goes back to the default and reports it. */
    exec_str(&s, "RESET application_name", &r);
    CU_ASSERT_STRING_EQUAL(r.tag, "RESET");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.report_name);
    CU_ASSERT_STRING_EQUAL(r.report_value, "");
    /* DISCARD ALL resets the rest and reports each reported GUC it changed. */
    exec_str(&s, "SET DateStyle = 'German'", &r);
    exec_str(&s, "SET application_name = 'again'", &r);
    exec_str(&s, "DISCARD ALL", &r);
    CU_ASSERT_EQUAL(r.nreports, 2);
    CU_ASSERT(r.nreports == 2 && strcmp(r.report_names[0], "application_name") == 0 &&
              strcmp(r.report_values[0], "") == 0 && strcmp(r.report_names[1], "DateStyle") == 0 &&
              strcmp(r.report_values[1], "ISO, MDY") == 0);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "statement_timeout"), "0");
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "DateStyle"), "ISO, MDY");
    /* Read-only parameters. */
    exec_str(&s, "SET server_version = '1'", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "55P02");
    /* Reported defaults and superuser. */
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "is_superuser"), "off");
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "session_authorization"), "alice");
    CU_ASSERT_STRING_EQUAL(pgf_sql_reported_guc("timezone"), "TimeZone");
    CU_ASSERT_PTR_NULL(pgf_sql_reported_guc("statement_timeout"));
    CU_ASSERT(pgf_sql_guc_known("myapp.custom"));
    CU_ASSERT_FALSE(pgf_sql_guc_known("no_such_guc"));
}

static void reset_returns_to_startup_values(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    CU_ASSERT(pgf_sql_set_guc(&s, "application_name", "psql"));
    CU_ASSERT(pgf_sql_set_guc(&s, "datestyle", "german"));
    pgf_sql_session_mark_defaults(&s);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "DateStyle"), "German, DMY");
    pgf_sql_result r;
    exec_str(&s, "SET application_name = 'x'", &r);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "application_name"), "x");
    exec_str(&s, "RESET application_name", &r);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "application_name"), "psql");
    CU_ASSERT(r.nreports == 1 && strcmp(r.report_values[0], "psql") == 0);
    exec_str(&s, "SET application_name = 'y'", &r);
    exec_str(&s, "SET DateStyle = 'ISO'", &r);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "DateStyle"), "ISO, DMY");
    exec_str(&s, "DISCARD ALL", &r);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "application_name"), "psql");
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "DateStyle"), "German, DMY");
    CU_ASSERT_EQUAL(r.nreports, 2);
    exec_str(&s, "RESET ALL", &r);
    CU_ASSERT_EQUAL(r.nreports, 0); /* nothing changed */
}

static void transaction_walk(void)
{
    /* The a_simple_misc sequence: BEGIN, error, 25P02, ROLLBACK. */
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    exec_str(&s, "BEGIN", &r);
    CU_ASSERT_EQUAL(s.txn, 'T');
    exec_str(&s, "SELECT nonsense FROM nowhere", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_EQUAL(s.txn, 'E');
    exec_str(&s, "SELECT 1", &r);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "25P02");
    CU_ASSERT_EQUAL(s.txn, 'E');
    exec_str(&s, "SHOW server_version", &r); /* SHOW too is refused */
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "25P02");
    exec_str(&s, "ROLLBACK", &r);
    CU_ASSERT_STRING_EQUAL(r.tag, "ROLLBACK");
    CU_ASSERT_EQUAL(s.txn, 'I');
    /* Savepoints. */
    exec_str(&s, "SAVEPOINT a", &r);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "25P01");
    exec_str(&s, "BEGIN", &r);
    exec_str(&s, "SAVEPOINT a", &r);
    CU_ASSERT_STRING_EQUAL(r.tag, "SAVEPOINT");
    exec_str(&s, "SELEC", &r);
    CU_ASSERT_EQUAL(s.txn, 'E');
    exec_str(&s, "ROLLBACK TO SAVEPOINT a", &r);
    CU_ASSERT_STRING_EQUAL(r.tag, "ROLLBACK");
    CU_ASSERT_EQUAL(s.txn, 'T');
    exec_str(&s, "END", &r);
    CU_ASSERT_STRING_EQUAL(r.tag, "COMMIT");
    CU_ASSERT_EQUAL(s.txn, 'I');
}

/* The recorded ErrorResponse for "SELEC 1": C, M and P must match. */
static void syntax_error_matches_transcript(void)
{
    pgf_t_msg *m = NULL;
    int n = pgf_t_load_hex("a_simple_misc", &m);
    CU_ASSERT_FATAL(n > 0);
    const pgf_t_msg *err = NULL;
    for (int i = 0; i + 1 < n; i++)
        if (m[i].dir == 'C' && m[i].len > 5 && m[i].bytes[0] == 'Q' &&
            strcmp((const char *)m[i].bytes + 5, "SELEC 1") == 0 && m[i + 1].bytes[0] == 'E')
            err = &m[i + 1];
    CU_ASSERT_PTR_NOT_NULL_FATAL(err);
    /* Decode the recorded fields. */
    char rec_c[8] = "", rec_m[128] = "", rec_p[8] = "", rec_s[16] = "";
    for (size_t o = 5; o < err->len && err->bytes[o] != 0;) {
        char f = (char)err->bytes[o++];
        const char *v = (const char *)err->bytes + o;
        size_t vl = strlen(v);
        char *dst = f == 'C'   ? rec_c
                    : f == 'M' ? rec_m
                    : f == 'P' ? rec_p
                    : f == 'S' ? rec_s
                               : NULL;
        size_t cap = f == 'M' ? sizeof rec_m : f == 'S' ? sizeof rec_s : 8;
        if (dst != NULL)
            snprintf(dst, cap, "%s", v);
        o += vl + 1;
    }
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u_trust", "db_trust", false);
    pgf_sql_result r;
    exec_str(&s, "SELEC 1", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(rec_s, "ERROR");
    CU_ASSERT_STRING_EQUAL(r.error.severity, rec_s);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, rec_c);
    CU_ASSERT_STRING_EQUAL(r.error.message, rec_m);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r.error.position);
    CU_ASSERT_STRING_EQUAL(r.error.position, rec_p);
    pgf_t_msgs_free(m, n);
}

/* ---- split ---- */

typedef struct split_acc {
    int n;
    char stmts[8][64];
} split_acc;

static void split_cb(const char *stmt, size_t len, void *arg)
{
    split_acc *a = arg;
    if (a->n < 8)
        snprintf(a->stmts[a->n], sizeof a->stmts[0], "%.*s", (int)len, stmt);
    a->n++;
}

static void split_statements(void)
{
    static const struct {
        const char *sql;
        int n;
        const char *stmts[4];
    } t[] = {
        {"", 0, {NULL}},
        {"  ;  ; ", 0, {NULL}},
        {"SELECT 1", 1, {"SELECT 1"}},
        {"SELECT 1;", 1, {"SELECT 1"}},
        {"SELECT 1; SELECT 'two'", 2, {"SELECT 1", "SELECT 'two'"}},
        {"SELECT 'a;b'; SELECT 2", 2, {"SELECT 'a;b'", "SELECT 2"}},
        {"SELECT \"x;y\"; SELECT 3", 2, {"SELECT \"x;y\"", "SELECT 3"}},
        {"SELECT 1 -- c;omment\n; SELECT 2", 2, {"SELECT 1 -- c;omment", "SELECT 2"}},
        {"BEGIN;SELECT 1;COMMIT", 3, {"BEGIN", "SELECT 1", "COMMIT"}},
        {"SELECT 'it''s;'; SELECT 4", 2, {"SELECT 'it''s;'", "SELECT 4"}},
        {"SELECT 'unterminated;", 1, {"SELECT 'unterminated;"}},
        {"SELECT 1 /* a;b */; SELECT 5", 2, {"SELECT 1 /* a;b */", "SELECT 5"}},
        {"SELECT /* x /* nested; */ y; */ 6; SELECT 7",
         2,
         {"SELECT /* x /* nested; */ y; */ 6", "SELECT 7"}},
        {"DO $$BEGIN RAISE NOTICE 'hello'; END$$; SELECT 8",
         2,
         {"DO $$BEGIN RAISE NOTICE 'hello'; END$$", "SELECT 8"}},
        {"DO $f$ a; $$ b; $f$;SELECT $1", 2, {"DO $f$ a; $$ b; $f$", "SELECT $1"}},
        {"SELECT $1;SELECT $2", 2, {"SELECT $1", "SELECT $2"}},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        split_acc a = {0};
        int rc = pgf_sql_split(t[i].sql, split_cb, &a);
        bool ok = rc == t[i].n && a.n == t[i].n;
        for (int k = 0; ok && k < t[i].n; k++)
            ok = strcmp(a.stmts[k], t[i].stmts[k]) == 0;
        if (!ok) {
            fprintf(stderr, "\n  split \"%s\": %d statements (want %d):", t[i].sql, rc, t[i].n);
            for (int k = 0; k < a.n && k < 8; k++)
                fprintf(stderr, " [%s]", a.stmts[k]);
        }
        CU_ASSERT(ok);
    }
}

static void describe_does_not_change_session(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    const char *q = "SELECT $1::int + 1 AS answer";
    pgf_sql_describe(&s, "SELECT 1", 8, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_EQUAL(r.ncols, 1);
    CU_ASSERT_EQUAL(r.cols[0].type_oid, 23);
    pgf_sql_describe(&s, "SELECT pg_sleep(5)", 18, &r);
    CU_ASSERT(r.kind == PGF_SQL_ROWS || r.kind == PGF_SQL_SLEEP);
    CU_ASSERT_EQUAL(r.cols[0].type_oid, 2278);
    pgf_sql_describe(&s, "BEGIN", 5, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    CU_ASSERT_EQUAL(s.txn, 'I');
    pgf_sql_describe(&s, "SET application_name = 'x'", 26, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    CU_ASSERT_STRING_EQUAL(pgf_sql_get_guc(&s, "application_name"), "");
    pgf_sql_describe(&s, "SELEC 1", 7, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    (void)q;
    /* In a failed transaction Describe still answers (PostgreSQL describes
     * statements without executing them). */
    s.txn = 'E';
    pgf_sql_describe(&s, "SELECT 1", 8, &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_EQUAL(s.txn, 'E');
}

/* Garbage in never escapes its buffer (ASan) nor hangs. */
static void random_statements_never_crash(void)
{
    static const char alphabet[] = "SELECT pg_sleep(1)$1::int'\";--/* */ \n\tAS x,-0123456789";
    uint64_t x = 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < 5000; i++) {
        char sql[48];
        size_t len = 0;
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        size_t want = x % sizeof sql;
        while (len < want) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            sql[len++] = alphabet[x % (sizeof alphabet - 1)];
        }
        pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
        pgf_sql_session_init(&s, "u", "d", false);
        pgf_sql_result r;
        const char *params[] = {"1"};
        /* Not NUL-terminated on purpose: exec takes (ptr, len). */
        char *heap = malloc(len ? len : 1);
        CU_ASSERT_FATAL(heap != NULL);
        memcpy(heap, sql, len);
        pgf_sql_exec(&s, heap, len, params, 1, &r);
        CU_ASSERT(r.kind >= PGF_SQL_ROWS && r.kind <= PGF_SQL_SLEEP);
        if (r.kind == PGF_SQL_ERROR)
            CU_ASSERT(r.error.sqlstate != NULL && strlen(r.error.sqlstate) == 5);
        pgf_sql_describe(&s, heap, len, &r);
        free(heap);
    }
}

/* now() and its kin from the caller's clock (sim mode gives a virtual
 * one): ISO in UTC with the fraction's trailing zeros dropped, the block's
 * start inside a transaction, the binary form consistent with the text,
 * and a refusal, not a wrong answer, in a zone the fake cannot convert to. */
static void clock_functions(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    s.now_us = 1767225600LL * 1000000 + 500000; /* 2026-01-01 00:00:00.5 UTC */
    exec_str(&s, "SELECT now()", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(r.col_names[0], "now");
    CU_ASSERT_EQUAL(r.cols[0].type_oid, 1184);
    CU_ASSERT_STRING_EQUAL(r.values[0], "2026-01-01 00:00:00.5+00");
    uint8_t scratch[16];
    const char *bin;
    CU_ASSERT_EQUAL(pgf_sql_result_value(&r, 0, 0, 1, scratch, &bin), 8);
    uint64_t v = 0;
    for (int k = 0; k < 8; k++)
        v = v << 8 | (uint8_t)bin[k];
    CU_ASSERT_EQUAL((int64_t)v, (1767225600LL - 946684800LL) * 1000000 + 500000);
    s.now_us = 1767225600LL * 1000000;
    exec_str(&s, "SELECT CURRENT_TIMESTAMP AS t", &r);
    CU_ASSERT_STRING_EQUAL(r.col_names[0], "t");
    CU_ASSERT_STRING_EQUAL(r.values[0], "2026-01-01 00:00:00+00");
    exec_str(&s, "BEGIN", &r);
    s.now_us += 1234567;
    exec_str(&s, "SELECT now()", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "2026-01-01 00:00:00+00"); /* the block's start */
    exec_str(&s, "SELECT statement_timestamp()", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "2026-01-01 00:00:01.234567+00");
    exec_str(&s, "COMMIT", &r);
    exec_str(&s, "SET TimeZone = 'Europe/Berlin'", &r);
    exec_str(&s, "SELECT now()", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "0A000");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.err_message, "TimeZone other than UTC"));
    exec_str(&s, "SET TimeZone = 'UTC'", &r);
    exec_str(&s, "SET DateStyle = 'German'", &r);
    exec_str(&s, "SELECT now()", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    s.pid = 12345;
    exec_str(&s, "SELECT pg_backend_pid()", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "12345");
}

/* Bounded memory per connection, and never a SET accepted then dropped:
 * past PGF_SQL_MAX_GUCS changed settings the next new one is refused. */
static void too_many_settings_refused(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    char sql[64];
    for (int i = 0; i < PGF_SQL_MAX_GUCS; i++) {
        snprintf(sql, sizeof sql, "SET app.s%d = 'v'", i);
        exec_str(&s, sql, &r);
        CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    }
    exec_str(&s, "SET app.one_more = 'v'", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR);
    CU_ASSERT_STRING_EQUAL(r.error.sqlstate, "54000");
    CU_ASSERT_PTR_NOT_NULL(strstr(r.err_message, "app.one_more"));
    exec_str(&s, "SHOW app.one_more", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ERROR); /* not there */
    exec_str(&s, "SET app.s3 = 'w'", &r);   /* an existing one still changes */
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    exec_str(&s, "SHOW app.s3", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "w");
}

/* ROLLBACK gives back the settings before the block, and keeps (empty) the
 * custom placeholders the block created, also when a RESET ALL in the
 * block emptied the array and the two together outgrow it (fuzz_conn
 * found the overflow; ASan runs this). */
static void rollback_restores_settings(void)
{
    pgf_sql_session s __attribute__((cleanup(pgf_sql_session_free)));
    pgf_sql_session_init(&s, "u", "d", false);
    pgf_sql_result r;
    char sql[64];
    for (int i = 0; i < 16; i++) { /* the array's capacity is exactly 16 now */
        snprintf(sql, sizeof sql, "SET app.s%d = 'v%d'", i, i);
        exec_str(&s, sql, &r);
    }
    exec_str(&s, "BEGIN", &r);
    exec_str(&s, "RESET ALL", &r);
    exec_str(&s, "SET app.new1 = 'x'", &r);
    exec_str(&s, "SET app.new2 = 'y'", &r);
    exec_str(&s, "SET LOCAL statement_timeout = '1s'", &r);
    exec_str(&s, "ROLLBACK", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_COMMAND);
    exec_str(&s, "SHOW app.s15", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "v15");
    exec_str(&s, "SHOW app.new2", &r);
    CU_ASSERT_EQUAL(r.kind, PGF_SQL_ROWS);
    CU_ASSERT_STRING_EQUAL(r.values[0], "");
    exec_str(&s, "SHOW statement_timeout", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "0");
    exec_str(&s, "BEGIN", &r);
    exec_str(&s, "SET LOCAL app.s1 = 'local'", &r);
    exec_str(&s, "SET app.s2 = 'kept'", &r);
    exec_str(&s, "COMMIT", &r);
    exec_str(&s, "SHOW app.s1", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "v1");
    exec_str(&s, "SHOW app.s2", &r);
    CU_ASSERT_STRING_EQUAL(r.values[0], "kept");
}

static const pgf_test sql_tests[] = {
    {"rollback_restores_settings", rollback_restores_settings},
    {"too_many_settings_refused", too_many_settings_refused},
    {"clock_functions", clock_functions},
    {"statements_table", statements_table},
    {"pg_sleep_parses_durations", pg_sleep_parses_durations},
    {"parameters_and_casts", parameters_and_casts},
    {"set_reports_parameter_status", set_reports_parameter_status},
    {"reset_returns_to_startup_values", reset_returns_to_startup_values},
    {"transaction_walk", transaction_walk},
    {"syntax_error_matches_transcript", syntax_error_matches_transcript},
    {"split_statements", split_statements},
    {"describe_does_not_change_session", describe_does_not_change_session},
    {"random_statements_never_crash", random_statements_never_crash},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_sql[] = {
    {"sql", NULL, NULL, sql_tests},
    PGF_SUITES_END,
};
