/* diffclient.c - pgf_diffclient: one fixed set of libpq client sessions,
 * printed as a transcript of what the client observes, so that the same
 * program run against a real PostgreSQL 15 and against `pgfault serve` can
 * be diffed (tests/e2e/differential.sh).
 *
 *   pgf_diffclient HOST PORT
 *
 * Roles expected on the server (scripts/pg-reference creates them; the
 * differential script configures the fake the same way): pgf_trust
 * (trust), pgf_password / pgf_password_pw (password), pgf_md5 / pgf_md5_pw
 * (md5), pgf_scram / pgf_scram_pw (scram-sha-256); database `pgf` exists and
 * `nodb` does not; unknown roles get SCRAM (mock authentication).
 *
 * Printed per step: PQstatus, PQtransactionStatus, result status,
 * SQLSTATE, primary message, position, column names and type OIDs, values,
 * and the connection error text. Not printed, because they legitimately
 * differ: backend PID and cancel key (only "nonzero" is printed),
 * server_version / version(), the F/L/R (file/line/routine) error fields,
 * and the port number in libpq's error prefix (the script normalizes it).
 * Every wait is bounded (10 s); a deadline miss prints "TIMEOUT".
 */
#include <libpq-fe.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEADLINE_MS 10000

static const char *host, *port;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Print s with newlines and tabs escaped, so one step is one line. */
static void put_escaped(const char *s)
{
    for (; s != NULL && *s; s++) {
        if (*s == '\n')
            fputs("\\n", stdout);
        else if (*s == '\t')
            fputs("\\t", stdout);
        else
            putchar(*s);
    }
}

static const char *status_name(ConnStatusType s)
{
    return s == CONNECTION_OK ? "OK" : s == CONNECTION_BAD ? "BAD" : "OTHER";
}

static const char *txn_name(PGTransactionStatusType t)
{
    switch (t) {
    case PQTRANS_IDLE:
        return "IDLE";
    case PQTRANS_ACTIVE:
        return "ACTIVE";
    case PQTRANS_INTRANS:
        return "INTRANS";
    case PQTRANS_INERROR:
        return "INERROR";
    case PQTRANS_UNKNOWN:
        return "UNKNOWN";
    }
    return "?";
}

/* Connect with the async API and a deadline. */
static const char *conn_options; /* libpq's "options" for connect_as; NULL: none */

static PGconn *connect_as(const char *user, const char *password, const char *db)
{
    const char *keys[] = {"host",
                          "port",
                          "user",
                          "password",
                          "dbname",
                          "sslmode",
                          "gssencmode",
                          "application_name",
                          conn_options ? "options" : NULL,
                          NULL};
    const char *vals[] = {host,     port,      user,         password,     db,
                          "prefer", "disable", "diffclient", conn_options, NULL};
    PGconn *c = PQconnectStartParams(keys, vals, 0);
    if (c == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(3);
    }
    long long deadline = now_ms() + DEADLINE_MS;
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    while (PQstatus(c) != CONNECTION_BAD && st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
        struct pollfd p = {PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
        long long left = deadline - now_ms();
        if (left <= 0) {
            printf("  TIMEOUT connecting\n");
            break;
        }
        poll(&p, 1, (int)left);
        st = PQconnectPoll(c);
    }
    return c;
}

static void print_conn(const char *what, PGconn *c)
{
    printf("connect %s: status=%s", what, status_name(PQstatus(c)));
    if (PQstatus(c) == CONNECTION_OK) {
        printf(" txn=%s pid=%s protocol=%d\n", txn_name(PQtransactionStatus(c)),
               PQbackendPID(c) != 0 ? "nonzero" : "zero", PQprotocolVersion(c));
    } else {
        printf(" error=");
        put_escaped(PQerrorMessage(c));
        printf("\n");
    }
}

static void print_params(PGconn *c)
{
    static const char *const names[] = {
        "application_name",
        "client_encoding",
        "DateStyle",
        "default_transaction_read_only",
        "in_hot_standby",
        "integer_datetimes",
        "IntervalStyle",
        "is_superuser",
        "server_encoding",
        "session_authorization",
        "standard_conforming_strings",
        "TimeZone",
    };
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = PQparameterStatus(c, names[i]);
        printf("  param %s=%s\n", names[i], v ? v : "(not reported)");
    }
    printf("  server_version_num=%s\n", PQserverVersion(c) / 10000 == 15 ? "15xxxx" : "other");
}

static void print_result(PGconn *c, const PGresult *r)
{
    if (r == NULL) {
        printf("  result=NULL error=");
        put_escaped(PQerrorMessage(c));
        printf("\n");
        return;
    }
    const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    const char *sev = PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    printf("  status=%s", PQresStatus(PQresultStatus(r)));
    if (state != NULL) {
        printf(" severity=%s sqlstate=%s message=", sev ? sev : "-", state);
        put_escaped(msg);
        printf(" position=%s text=", pos ? pos : "-");
        put_escaped(PQresultErrorMessage(r));
    }
    printf(" tag=%s", PQcmdStatus((PGresult *)r));
    if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK) {
        for (int i = 0; i < PQnfields(r); i++)
            printf(" col=%s:%u:%d", PQfname(r, i), PQftype(r, i), PQfformat(r, i));
        for (int t = 0; t < PQntuples(r); t++)
            for (int i = 0; i < PQnfields(r); i++) {
                printf(" val=");
                if (PQgetisnull(r, t, i))
                    printf("NULL");
                else if (PQfformat(r, i) == 1)
                    for (int k = 0; k < PQgetlength(r, t, i); k++)
                        printf("%02x", (unsigned char)PQgetvalue(r, t, i)[k]);
                else
                    put_escaped(PQgetvalue(r, t, i));
            }
    }
    printf("\n");
}

/* After the command completed. */
static void print_txn(PGconn *c)
{
    printf("  txn=%s\n", txn_name(PQtransactionStatus(c)));
}

static void on_notice(void *arg, const PGresult *r)
{
    (void)arg;
    printf("  notice severity=%s sqlstate=%s message=",
           PQresultErrorField(r, PG_DIAG_SEVERITY_NONLOCALIZED),
           PQresultErrorField(r, PG_DIAG_SQLSTATE));
    put_escaped(PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY));
    printf("\n");
}

/* Wait for the next result with a deadline; NULL when the command is done. */
static PGresult *next_result(PGconn *c)
{
    long long deadline = now_ms() + DEADLINE_MS;
    while (PQisBusy(c)) {
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        long long left = deadline - now_ms();
        if (left <= 0) {
            printf("  TIMEOUT waiting for a result\n");
            return NULL;
        }
        poll(&p, 1, (int)left);
        if (!PQconsumeInput(c))
            break;
    }
    return PQgetResult(c);
}

/* Run a simple query; print every result. */
static void step(PGconn *c, const char *sql)
{
    printf("query ");
    put_escaped(sql);
    printf("\n");
    if (!PQsendQuery(c, sql)) {
        printf("  send failed: ");
        put_escaped(PQerrorMessage(c));
        printf("\n");
        return;
    }
    PGresult *r;
    while ((r = next_result(c)) != NULL) {
        print_result(c, r);
        PQclear(r);
    }
    print_txn(c);
}

/* A value that differs between servers by design (a pid, a clock): print
 * the result's shape and what is true of the value, never the value. */
static PGresult *volatile_one(PGconn *c, const char *sql, int fmt)
{
    PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, fmt);
    printf("volatile %s resultformat=%d: status=%s", sql, fmt, PQresStatus(PQresultStatus(r)));
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1 && PQntuples(r) == 1)
        printf(" col=%s:%u:%d len=%s", PQfname(r, 0), PQftype(r, 0), PQfformat(r, 0),
               fmt == 1 ? (PQgetlength(r, 0, 0) == 8 ? "8" : "other") : "text");
    else
        printf(" %s", PQresultErrorField(r, PG_DIAG_SQLSTATE)
                          ? PQresultErrorField(r, PG_DIAG_SQLSTATE)
                          : "");
    printf("\n");
    return r;
}

/* µs since 2000-01-01 UTC from a timestamptz printed as ISO in UTC. */
static long long ts_text_us(const char *v)
{
    struct tm tm = {0};
    char frac[8] = "";
    if (sscanf(v, "%d-%d-%d %d:%d:%d%7[.0-9]", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
               &tm.tm_min, &tm.tm_sec, frac) < 6)
        return -1;
    long long us = 0;
    if (frac[0] == '.') {
        us = atoll(frac + 1);
        for (size_t n = strlen(frac + 1); n < 6; n++)
            us *= 10;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return ((long long)timegm(&tm) - 946684800LL) * 1000000LL + us;
}

static long long ts_bin_us(const PGresult *r)
{
    const unsigned char *b = (const unsigned char *)PQgetvalue(r, 0, 0);
    unsigned long long v = 0;
    for (int k = 0; k < 8; k++)
        v = v << 8 | b[k];
    return (long long)v;
}

static void volatiles(PGconn *c)
{
    PGresult *r = volatile_one(c, "SELECT pg_backend_pid()", 0);
    printf("  pg_backend_pid() is BackendKeyData's pid: %s\n",
           PQntuples(r) == 1 && atoi(PQgetvalue(r, 0, 0)) == PQbackendPID(c) ? "yes" : "no");
    PQclear(r);
    long long now_client = ((long long)time(NULL) - 946684800LL) * 1000000LL;
    static const char *const clocks[] = {"SELECT now()",
                                         "SELECT CURRENT_TIMESTAMP",
                                         "SELECT pg_catalog.now()",
                                         "SELECT statement_timestamp()",
                                         "SELECT transaction_timestamp()",
                                         "SELECT now() AS t"};
    for (size_t i = 0; i < sizeof clocks / sizeof clocks[0]; i++) {
        r = volatile_one(c, clocks[i], 0);
        const char *v = PQntuples(r) == 1 ? PQgetvalue(r, 0, 0) : "";
        long long us = ts_text_us(v);
        size_t n = strlen(v);
        printf("  ISO, UTC (+00), no trailing zero: %s; within 60 s of the client's clock: %s\n",
               n > 3 && strcmp(v + n - 3, "+00") == 0 && !(strchr(v, '.') && v[n - 4] == '0')
                   ? "yes"
                   : "no",
               us >= 0 && llabs(us - now_client) < 60000000LL ? "yes" : "no");
        PQclear(r);
        r = volatile_one(c, clocks[i], 1);
        us = PQntuples(r) == 1 && PQgetlength(r, 0, 0) == 8 ? ts_bin_us(r) : -1;
        printf("  binary within 60 s of the client's clock: %s\n",
               us >= 0 && llabs(us - now_client) < 60000000LL ? "yes" : "no");
        PQclear(r);
    }
    /* now() is the transaction's start; statement_timestamp() moves on */
    PQclear(PQexec(c, "BEGIN"));
    PGresult *a = PQexec(c, "SELECT now()");
    PQclear(PQexec(c, "SELECT pg_sleep(0.02)"));
    PGresult *b = PQexec(c, "SELECT now()");
    PGresult *st = PQexec(c, "SELECT statement_timestamp()");
    PQclear(PQexec(c, "COMMIT"));
    bool ok = PQntuples(a) == 1 && PQntuples(b) == 1 && PQntuples(st) == 1;
    printf(
        "transaction: now() unchanged after pg_sleep(0.02): %s; statement_timestamp() later: %s\n",
        ok && strcmp(PQgetvalue(a, 0, 0), PQgetvalue(b, 0, 0)) == 0 ? "yes" : "no",
        ok && ts_text_us(PQgetvalue(st, 0, 0)) >= ts_text_us(PQgetvalue(a, 0, 0)) + 20000 ? "yes"
                                                                                          : "no");
    PQclear(a);
    PQclear(b);
    PQclear(st);
}

static void step_params(PGconn *c, const char *sql, int n, const char *const *vals, int fmt)
{
    printf("params ");
    put_escaped(sql);
    for (int i = 0; i < n; i++)
        printf(" $%d=%s", i + 1, vals[i] ? vals[i] : "NULL");
    printf(" resultformat=%d\n", fmt);
    PGresult *r = PQexecParams(c, sql, n, NULL, vals, NULL, NULL, fmt);
    print_result(c, r);
    PQclear(r);
    print_txn(c);
}

static void cancel_sleep(PGconn *c, const char *sql, bool extended)
{
    printf("cancel %s%s\n", sql, extended ? " (extended)" : "");
    const char *ten[] = {"10"};
    int ok =
        extended ? PQsendQueryParams(c, sql, 1, NULL, ten, NULL, NULL, 0) : PQsendQuery(c, sql);
    if (!ok) {
        printf("  send failed\n");
        return;
    }
    /* PostgreSQL does not flush anything before pg_sleep ends, so the
     * client cannot see when the statement started; a cancel that arrives
     * while the backend is still idle is ignored. So: cancel, and again
     * every 100 ms, until the result arrives (bounded). */
    long long deadline = now_ms() + DEADLINE_MS;
    int sent = 0;
    char errbuf[256] = "";
    for (;;) {
        PGcancel *cn = PQgetCancel(c);
        sent |= PQcancel(cn, errbuf, sizeof errbuf);
        PQfreeCancel(cn);
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        if (poll(&p, 1, 100) == 1)
            break;
        if (now_ms() > deadline) {
            printf("  TIMEOUT: no result after cancel\n");
            break;
        }
    }
    printf("  PQcancel=%d errbuf=%s\n", sent, errbuf);
    PGresult *r;
    while ((r = next_result(c)) != NULL) {
        print_result(c, r);
        PQclear(r);
    }
    print_txn(c);
}

/* An idle timeout ends the session: wait (event-driven, bounded) for the
 * server's FATAL and the close, then show what the client saw and what its
 * next query gets. */
static void idle_timeout(const char *what, const char *const *setup, size_t n)
{
    PGconn *c = connect_as("pgf_scram", "pgf_scram_pw", "pgf");
    printf("idle timeout: %s\n", what);
    if (PQstatus(c) != CONNECTION_OK) {
        printf("  connect failed\n");
        PQfinish(c);
        return;
    }
    PQsetNoticeReceiver(c, on_notice, NULL);
    for (size_t i = 0; i < n; i++)
        step(c, setup[i]);
    long long deadline = now_ms() + DEADLINE_MS;
    bool closed = false;
    while (!closed && now_ms() < deadline) {
        struct pollfd p = {PQsocket(c), POLLIN, 0};
        if (poll(&p, 1, (int)(deadline - now_ms())) < 1)
            continue;
        /* 0: the connection broke (libpq saw the FATAL and the close) */
        closed = !PQconsumeInput(c) || PQstatus(c) == CONNECTION_BAD;
        (void)PQisBusy(c); /* parses what came: the FATAL goes to the notice receiver */
    }
    printf("  ended by the server within %d s: %s; libpq says: ", DEADLINE_MS / 1000,
           closed ? "yes" : "no");
    put_escaped(PQerrorMessage(c));
    printf("\n");
    step(c, "SELECT 1");
    printf("  status after: %s\n", status_name(PQstatus(c)));
    PQfinish(c);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: pgf_diffclient HOST PORT\n");
        return 2;
    }
    host = argv[1];
    port = argv[2];
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* Logins: each method, and the failures. */
    static const struct {
        const char *what, *user, *pw, *db;
    } logins[] = {
        {"trust", "pgf_trust", NULL, "pgf"},
        {"password", "pgf_password", "pgf_password_pw", "pgf"},
        {"md5", "pgf_md5", "pgf_md5_pw", "pgf"},
        {"scram", "pgf_scram", "pgf_scram_pw", "pgf"},
        {"scram wrong password", "pgf_scram", "wrong", "pgf"},
        {"password wrong password", "pgf_password", "wrong", "pgf"},
        {"md5 wrong password", "pgf_md5", "wrong", "pgf"},
        {"scram no password", "pgf_scram", NULL, "pgf"},
        {"unknown database", "pgf_trust", NULL, "nodb"},
        {"unknown role (mock scram)", "pgf_nobody", "whatever", "pgf"},
    };
    for (size_t i = 0; i < sizeof logins / sizeof logins[0]; i++) {
        PGconn *c = connect_as(logins[i].user, logins[i].pw, logins[i].db);
        print_conn(logins[i].what, c);
        if (PQstatus(c) == CONNECTION_OK && i == 0)
            print_params(c);
        PQfinish(c);
    }

    /* Settings in the startup packet's options (PGOPTIONS, SQLAlchemy's
     * connect_args={"options": "-c statement_timeout=..."}). */
    static const char *const optsets[] = {
        "-c statement_timeout=5s",
        "-c statement_timeout=5s --lock_timeout=1500 -c application_name=a\\ b",
        "-cstatement_timeout=7s",
        "--lock-timeout=2min -c idle_in_transaction_session_timeout=3600000",
        "-c DateStyle=German",
        "-c no_such=1",
        "-x",
        "-c statement_timeout=abc",
        "-c statement_timeout=5parsecs",
        "-c statement_timeout=-1",
        "-c statement_timeout",
    };
    for (size_t i = 0; i < sizeof optsets / sizeof optsets[0]; i++) {
        conn_options = optsets[i];
        char what[160];
        snprintf(what, sizeof what, "options %s", optsets[i]);
        PGconn *oc = connect_as("pgf_scram", "pgf_scram_pw", "pgf");
        conn_options = NULL;
        print_conn(what, oc);
        if (PQstatus(oc) == CONNECTION_OK) {
            step(oc, "SHOW statement_timeout");
            step(oc, "SHOW lock_timeout");
            step(oc, "SHOW idle_in_transaction_session_timeout");
            step(oc, "SHOW application_name");
            printf("  param DateStyle=%s\n", PQparameterStatus(oc, "DateStyle"));
        }
        PQfinish(oc);
    }

    /* One SCRAM session through the statements. */
    PGconn *c = connect_as("pgf_scram", "pgf_scram_pw", "pgf");
    print_conn("session", c);
    if (PQstatus(c) != CONNECTION_OK)
        return 1;
    PQsetNoticeReceiver(c, on_notice, NULL);
    step(c, "SELECT 1");
    step(c, "SELECT 1;");
    step(c, "select 42");
    step(c, "SELECT -7");
    step(c, "SELECT 3000000000");
    step(c, "SELECT 'two'");
    step(c, "SELECT 1 AS one");
    step(c, "SELECT 5::bigint");
    step(c, "SELECT current_database()");
    step(c, "SHOW DateStyle");
    step(c, "SHOW TimeZone");
    step(c, "SHOW transaction isolation level");
    step(c, "SHOW no_such_setting");
    step(c, "");
    step(c, "SELEC 1");
    step(c, "  hello world");
    step(c, "SELECT 1; SELECT 'two'");
    step(c, "BEGIN");
    step(c, "BEGIN");
    step(c, "SELECT 1");
    step(c, "SELEC 1");
    step(c, "SELECT 1");
    step(c, "COMMIT");
    step(c, "COMMIT");
    step(c, "BEGIN");
    step(c, "SELEC 1");
    step(c, "ROLLBACK");
    step(c, "SET application_name = 'changed'");
    printf("  param application_name=%s\n", PQparameterStatus(c, "application_name"));
    step(c, "SHOW application_name");
    step(c, "SET DateStyle = 'German'");
    printf("  param DateStyle=%s\n", PQparameterStatus(c, "DateStyle"));
    step(c, "RESET DateStyle");
    printf("  param DateStyle=%s\n", PQparameterStatus(c, "DateStyle"));
    step(c, "DISCARD ALL");
    printf("  param application_name=%s\n", PQparameterStatus(c, "application_name"));

    /* Transaction characteristics: what JDBC pools and ORMs set on a
     * connection (pgjdbc's setTransactionIsolation, setReadOnly). */
    static const char *const xact[] = {
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SHOW transaction_isolation",
        "SHOW default_transaction_isolation",
        "BEGIN",
        "SHOW TRANSACTION ISOLATION LEVEL",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SHOW transaction_isolation",
        "SELECT 1",
        "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
        "ROLLBACK",
        "BEGIN ISOLATION LEVEL READ UNCOMMITTED, READ ONLY",
        "SHOW transaction_isolation",
        "SHOW transaction_read_only",
        "SELECT 1",
        "SET TRANSACTION READ ONLY",
        "SET transaction_read_only = off",
        "COMMIT",
        "START TRANSACTION READ ONLY NOT DEFERRABLE",
        "SHOW transaction_read_only",
        "SHOW transaction_deferrable",
        "SET TRANSACTION DEFERRABLE",
        "SHOW transaction_deferrable",
        "COMMIT",
        "BEGIN WORK",
        "SET transaction_isolation = 'serializable'",
        "SHOW transaction_isolation",
        "BEGIN ISOLATION LEVEL READ COMMITTED",
        "SHOW transaction_isolation",
        "COMMIT",
        "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
        "SET transaction_isolation = 'serializable'",
        "SHOW transaction_isolation",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
        "SHOW transaction_read_only",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE, ISOLATION LEVEL READ COMMITTED "
        "NOT DEFERRABLE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION",
        "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL bogus",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY,",
        "SET SESSION CHARACTERISTICS TRANSACTION READ ONLY",
        "SET TRANSACTION",
        "START",
        "BEGIN READ",
        "BEGIN",
        "SELECT 1",
        "BEGIN ISOLATION LEVEL SERIALIZABLE",
        "ROLLBACK",
        "SET default_transaction_isolation = 'Repeatable Read'",
        "SHOW transaction_isolation",
        "SET default_transaction_isolation = 'bogus'",
        "SET default_transaction_read_only = yes",
        "SHOW default_transaction_read_only",
        "SET default_transaction_read_only = maybe",
        "SET default_transaction_deferrable TO 'of'",
        "SHOW transaction_deferrable",
        "RESET default_transaction_isolation",
        "RESET default_transaction_read_only",
        "SHOW transaction_isolation",
    };
    for (size_t i = 0; i < sizeof xact / sizeof xact[0]; i++) {
        step(c, xact[i]);
        printf("  param default_transaction_read_only=%s\n",
               PQparameterStatus(c, "default_transaction_read_only"));
    }

    /* What pools run when a connection goes back (asyncpg's reset query,
     * one simple Query), and the other session resets. */
    step(c, "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;");
    step(c, "CLOSE foo");
    step(c, "DISCARD PLANS");
    step(c, "DISCARD TEMPORARY");
    step(c, "DISCARD bogus");
    step(c, "BEGIN");
    step(c, "DISCARD SEQUENCES");
    step(c, "CLOSE ALL");
    step(c, "COMMIT");
    step_params(c, "SELECT pg_advisory_unlock_all()", 0, NULL, 1);
    volatiles(c);

    /* Timeouts in ms with units, and statement_timeout ending pg_sleep. */
    static const char *const timeouts[] = {
        "SET statement_timeout = 200",
        "SHOW statement_timeout",
        "SET statement_timeout = '1s'",
        "SHOW statement_timeout",
        "SET statement_timeout = 60000",
        "SHOW statement_timeout",
        "SET statement_timeout = '1.5s'",
        "SHOW statement_timeout",
        "SET statement_timeout = '100us'",
        "SHOW statement_timeout",
        "SET statement_timeout = '3 s'",
        "SHOW statement_timeout",
        "SET statement_timeout = 86400000",
        "SHOW statement_timeout",
        "SET statement_timeout = 'abc'",
        "SET statement_timeout = '5 parsecs'",
        "SET statement_timeout = -1",
        "SET lock_timeout = '2h'",
        "SHOW lock_timeout",
        "SET idle_session_timeout = '90s'",
        "SHOW idle_session_timeout",
        "SET statement_timeout = 100",
        "SELECT pg_sleep(5)",
        "SELECT pg_sleep(0.01)",
        "BEGIN",
        "SELECT pg_sleep(5)",
        "SELECT 1",
        "ROLLBACK",
        "SELECT pg_sleep(5); SELECT 2",
        "RESET statement_timeout",
        "SHOW statement_timeout",
    };
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++)
        step(c, timeouts[i]);
    /* Settings and transaction blocks: SET LOCAL lasts until the block
     * ends, ROLLBACK gives back every SET of the block, COMMIT keeps them. */
    static const char *const blocks[] = {
        "SET application_name = 'a'",
        "SET LOCAL application_name = 'outside'",
        "SET LOCAL no_such_setting = 1",
        "BEGIN",
        "SET LOCAL application_name = 'b'",
        "SHOW application_name",
        "COMMIT",
        "SHOW application_name",
        "BEGIN",
        "SET application_name = 'c'",
        "SET x.y = '1'",
        "ROLLBACK",
        "SHOW application_name",
        "SHOW x.y",
        "BEGIN",
        "SET application_name = 'd'",
        "COMMIT",
        "BEGIN",
        "SET LOCAL statement_timeout = '100ms'",
        "SELECT pg_sleep(5)",
        "ROLLBACK",
        "SHOW statement_timeout",
        "SELECT pg_sleep(0.2)",
        "BEGIN",
        "SET LOCAL x.z = '1'",
        "SET x.z = '2'",
        "COMMIT",
        "SHOW x.z",
        "BEGIN",
        "SET x.w = '3'",
        "SET LOCAL x.w = '4'",
        "SHOW x.w",
        "COMMIT",
        "SHOW x.w",
        "BEGIN",
        "RESET ALL",
        "SHOW application_name",
        "ROLLBACK",
        "SHOW application_name",
        "BEGIN",
        "SET LOCAL DateStyle = 'German'",
        "SET LOCAL DateStyle TO DEFAULT",
        "SET LOCAL TimeZone = 'UTC'",
        "SELEC 1",
        "COMMIT",
        "SHOW DateStyle",
        "RESET application_name",
    };
    for (size_t i = 0; i < sizeof blocks / sizeof blocks[0]; i++) {
        step(c, blocks[i]);
        printf("  param application_name=%s DateStyle=%s\n",
               PQparameterStatus(c, "application_name"), PQparameterStatus(c, "DateStyle"));
    }
    static const char *const settings[] = {
        "RESET app.never",      "SHOW app.never",
        "SET app.tenant = 'a'", "SHOW app.tenant",
        "RESET app.tenant",     "SHOW app.tenant",
        "RESET ROLE",           "RESET SESSION AUTHORIZATION",
        "SHOW app.never2",
    };
    for (size_t i = 0; i < sizeof settings / sizeof settings[0]; i++)
        step(c, settings[i]);
    step(c, "SET statement_timeout = '100ms'");
    const char *v5[] = {"5"};
    step_params(c, "SELECT pg_sleep($1)", 1, v5, 0);
    step(c, "RESET statement_timeout");

    /* Extended protocol. */
    const char *v41[] = {"41"};
    const char *vnull[] = {NULL};
    step_params(c, "SELECT $1::int AS answer", 1, v41, 0);
    step_params(c, "SELECT $1::int AS answer", 1, v41, 1);
    step_params(c, "SELECT $1", 1, vnull, 0);
    step_params(c, "SELECT 42", 0, NULL, 1);
    step_params(c, "SELEC $1", 1, v41, 0);
    step_params(c, "", 0, NULL, 0);
    printf("prepare s1\n");
    PGresult *r = PQprepare(c, "s1", "SELECT $1::int AS answer", 1, NULL);
    print_result(c, r);
    PQclear(r);
    r = PQdescribePrepared(c, "s1");
    printf("describe s1: nparams=%d type0=%u nfields=%d field0=%s:%u\n", PQnparams(r),
           PQnparams(r) > 0 ? PQparamtype(r, 0) : 0, PQnfields(r),
           PQnfields(r) > 0 ? PQfname(r, 0) : "-", PQnfields(r) > 0 ? PQftype(r, 0) : 0);
    PQclear(r);
    const char *v7[] = {"7"};
    r = PQexecPrepared(c, "s1", 1, v7, NULL, NULL, 0);
    print_result(c, r);
    PQclear(r);
    printf("prepare s1 again\n");
    r = PQprepare(c, "s1", "SELECT 2", 0, NULL);
    print_result(c, r);
    PQclear(r);
    printf("execute missing\n");
    r = PQexecPrepared(c, "missing", 0, NULL, NULL, NULL, 0);
    print_result(c, r);
    PQclear(r);
    step(c, "BEGIN");
    step_params(c, "SELEC 1", 0, NULL, 0);
    step_params(c, "SELECT 1", 0, NULL, 0);
    step_params(c, "ROLLBACK", 0, NULL, 0);

    /* Cancel. */
    cancel_sleep(c, "SELECT pg_sleep(10)", false);
    step(c, "SELECT 1");
    cancel_sleep(c, "SELECT pg_sleep($1)", true);
    step(c, "SELECT 1");
    step(c, "BEGIN");
    cancel_sleep(c, "SELECT pg_sleep(10)", false);
    step(c, "ROLLBACK");
    static const char *const in_txn[] = {"SET idle_in_transaction_session_timeout = 100", "BEGIN",
                                         "SELECT 1"};
    idle_timeout("idle in transaction", in_txn, 3);
    static const char *const failed_txn[] = {"SET idle_in_transaction_session_timeout = '50ms'",
                                             "BEGIN", "SELEC 1"};
    idle_timeout("idle in a failed transaction", failed_txn, 3);
    static const char *const session[] = {"SET idle_session_timeout = 100"};
    idle_timeout("idle session", session, 1);
    printf("finish: status=%s txn=%s\n", status_name(PQstatus(c)),
           txn_name(PQtransactionStatus(c)));
    PQfinish(c);
    return 0;
}
