/* test_config.c - connection settings from an explicit environment: the
 * incident's examples (Cloud SQL socket directory, URL-encoded password,
 * missing password), precedence, exact error messages, URL rendering and
 * masking. The process environment is never touched. */
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/config.h"
#include "pgf_test.h"

struct resolve_case {
    const char *name;
    const char *env[8];
    const char *err;   /* NULL = must succeed */
    const char *kw[6]; /* expected keyword=value pairs */
    const char *val[6];
    const char *libpq_url;   /* unmasked */
    const char *asyncpg_url; /* masked */
};

static const struct resolve_case cases[] = {
    {"cloud sql socket directory from POSTGRES_*",
     {"POSTGRES_HOST=/cloudsql/project:region:instance", "POSTGRES_DB=app", "POSTGRES_USER=svc",
      "POSTGRES_PASSWORD=s3cret"},
     NULL,
     {"host", "dbname", "user", "password"},
     {"/cloudsql/project:region:instance", "app", "svc", "s3cret"},
     "postgresql://svc:s3cret@/app?host=/cloudsql/project:region:instance",
     "postgresql+asyncpg://svc:****@/app?host=/cloudsql/project:region:instance"},
    {"raw password with reserved characters gets encoded",
     {"POSTGRES_HOST=db.internal", "POSTGRES_PORT=6432", "POSTGRES_DB=my db", "POSTGRES_USER=svc",
      "POSTGRES_PASSWORD=p@ss/w%rd x:y"},
     NULL,
     {"host", "port", "dbname", "password"},
     {"db.internal", "6432", "my db", "p@ss/w%rd x:y"},
     "postgresql://svc:p%40ss%2Fw%25rd%20x%3Ay@db.internal:6432/my%20db",
     "postgresql+asyncpg://svc:****@db.internal:6432/my%20db"},
    {"URL-encoded password in DATABASE_URL is decoded by libpq",
     {"DATABASE_URL=postgresql://svc:p%40ss%2F%25%20x@10.0.0.5:5432/app"},
     NULL,
     {"host", "port", "password", "user", "dbname"},
     {"10.0.0.5", "5432", "p@ss/% x", "svc", "app"},
     "postgresql://svc:p%40ss%2F%25%20x@10.0.0.5:5432/app",
     "postgresql+asyncpg://svc:****@10.0.0.5:5432/app"},
    {"SQLAlchemy asyncpg URL with IPv6 host",
     {"DATABASE_URL=postgresql+asyncpg://u:pw@[::1]:5433/db"},
     NULL,
     {"host", "port"},
     {"::1", "5433"},
     "postgresql://u:pw@[::1]:5433/db",
     "postgresql+asyncpg://u:****@[::1]:5433/db"},
    {"DATABASE_URL wins over POSTGRES_*",
     {"DATABASE_URL=postgres://a:b@h1/d1", "POSTGRES_HOST=h2", "POSTGRES_PASSWORD=zz"},
     NULL,
     {"host", "user", "password"},
     {"h1", "a", "b"},
     "postgresql://a:b@h1/d1",
     NULL},
    {"unix socket URL with host query parameter and port",
     {"DATABASE_URL=postgresql://u:pw@/db?host=/cloudsql/p:r:i&port=5433"},
     NULL,
     {"host", "port"},
     {"/cloudsql/p:r:i", "5433"},
     "postgresql://u:pw@/db?host=/cloudsql/p:r:i&port=5433",
     NULL},
    {"PG* variables fill what POSTGRES_* leave out",
     {"POSTGRES_HOST=h", "POSTGRES_DB=d", "POSTGRES_USER=u", "PGPASSWORD=frompg",
      "PGSSLMODE=require"},
     NULL,
     {"password", "sslmode"},
     {"frompg", "require"},
     "postgresql://u:frompg@h/d?sslmode=require",
     "postgresql+asyncpg://u:****@h/d?ssl=require"},
    {"only PG* variables",
     {"PGHOST=localhost", "PGUSER=me"},
     NULL,
     {"host", "user"},
     {"localhost", "me"},
     "postgresql://me@localhost/",
     NULL},
    {"missing password (the incident)",
     {"POSTGRES_HOST=/cloudsql/project:region:instance", "POSTGRES_DB=app", "POSTGRES_USER=svc"},
     "POSTGRES_PASSWORD is not set",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"empty password",
     {"POSTGRES_HOST=h", "POSTGRES_DB=d", "POSTGRES_USER=u", "POSTGRES_PASSWORD="},
     "POSTGRES_PASSWORD is set but empty",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"several missing",
     {"POSTGRES_HOST=h"},
     "POSTGRES_DB is not set; POSTGRES_USER is not set; POSTGRES_PASSWORD is not set",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"bad port",
     {"POSTGRES_HOST=h", "POSTGRES_DB=d", "POSTGRES_USER=u", "POSTGRES_PASSWORD=p",
      "POSTGRES_PORT=54x"},
     "POSTGRES_PORT: '54x' is not a port number",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"nothing set",
     {NULL},
     "no connection settings: set DATABASE_URL, or POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, "
     "POSTGRES_USER and POSTGRES_PASSWORD, or libpq's PG* variables",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"wrong scheme, password masked",
     {"DATABASE_URL=mysql://root:hunter2@db/app"},
     "DATABASE_URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB, got "
     "'mysql://root:****@db/app'",
     {NULL},
     {NULL},
     NULL,
     NULL},
    {"asyncpg-only query parameter",
     {"DATABASE_URL=postgresql+asyncpg://u:hunter2@h/d?ssl=require"},
     "DATABASE_URL: invalid URI query parameter: \"ssl\"",
     {NULL},
     {NULL},
     NULL,
     NULL},
};

static void resolve_table(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct resolve_case *t = &cases[i];
        pgf_config c;
        char err[512];
        int rc = pgf_config_resolve(t->env, &c, err, sizeof err);
        if ((rc == 0) != (t->err == NULL) || (t->err != NULL && strcmp(err, t->err) != 0))
            fprintf(stderr, "case '%s': rc %d err '%s'\n", t->name, rc, err);
        if (t->err != NULL) {
            CU_ASSERT_EQUAL(rc, PGF_EINVAL);
            CU_ASSERT_STRING_EQUAL(err, t->err);
            CU_ASSERT_PTR_NULL(strstr(err, "hunter2"));
            pgf_config_clear(&c);
            continue;
        }
        CU_ASSERT_EQUAL_FATAL(rc, 0);
        for (int k = 0; k < 6 && t->kw[k] != NULL; k++) {
            const char *v = pgf_config_get(&c, t->kw[k]);
            CU_ASSERT_PTR_NOT_NULL(v);
            if (v != NULL)
                CU_ASSERT_STRING_EQUAL(v, t->val[k]);
        }
        char *url = NULL;
        CU_ASSERT_EQUAL(pgf_config_url(&c, PGF_URL_LIBPQ, false, &url), 0);
        if (strcmp(url, t->libpq_url) != 0)
            fprintf(stderr, "case '%s': url %s\n", t->name, url);
        CU_ASSERT_STRING_EQUAL(url, t->libpq_url);
        /* round trip: libpq reads our URL back to the same settings */
        char *perr = NULL;
        PQconninfoOption *opts = PQconninfoParse(url, &perr);
        CU_ASSERT_PTR_NOT_NULL(opts);
        for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
            if (o->val != NULL)
                CU_ASSERT_STRING_EQUAL(o->val, pgf_config_get(&c, o->keyword));
        PQconninfoFree(opts);
        PQfreemem(perr);
        free(url);
        if (t->asyncpg_url != NULL) {
            CU_ASSERT_EQUAL(pgf_config_url(&c, PGF_URL_ASYNCPG, true, &url), 0);
            CU_ASSERT_STRING_EQUAL(url, t->asyncpg_url);
            free(url);
        }
        /* the human summary never shows the password */
        char *text = NULL;
        CU_ASSERT_EQUAL(pgf_config_describe(&c, &text), 0);
        const char *pw = pgf_config_get(&c, "password");
        if (pw != NULL && strlen(pw) >= 5) /* short ones occur in other words */
            CU_ASSERT_PTR_NULL(strstr(text, pw));
        if (pw != NULL)
            CU_ASSERT_PTR_NOT_NULL(strstr(text, "= ****"));
        free(text);
        pgf_config_clear(&c);
    }
}

static void psycopg2_url_and_notes(void)
{
    const char *env[] = {"DATABASE_URL=postgresql+asyncpg://u:pw@h/d", "POSTGRES_HOST=x", NULL};
    pgf_config c;
    char err[256];
    CU_ASSERT_EQUAL_FATAL(pgf_config_resolve(env, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(c.source, PGF_CONFIG_FROM_DATABASE_URL);
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes, "'+asyncpg' ignored"));
    CU_ASSERT_PTR_NOT_NULL(strstr(c.notes, "POSTGRES_* variables ignored"));
    char *url;
    CU_ASSERT_EQUAL(pgf_config_url(&c, PGF_URL_PSYCOPG2, true, &url), 0);
    CU_ASSERT_STRING_EQUAL(url, "postgresql+psycopg2://u:****@h/d");
    free(url);
    pgf_config_clear(&c);
}

static void mask_url(void)
{
    char out[256];
    pgf_config_mask_url("x postgresql://u:p%40ss@h/d and postgres://a:b@c", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "x postgresql://u:****@h/d and postgres://a:****@c");
    pgf_config_mask_url("postgresql://u@h/d", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "postgresql://u@h/d");
    /* key=value conninfos and URL query parameters (server.external) */
    pgf_config_mask_url("host=h password=s3cret user=u", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "host=h password=**** user=u");
    pgf_config_mask_url("password = 'a b\\' c' dbname=d", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "password = **** dbname=d");
    pgf_config_mask_url("postgresql:///d?host=/s&password=pw&user=u", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "postgresql:///d?host=/s&password=****&user=u");
    pgf_config_mask_url("xpassword=keep", out, sizeof out);
    CU_ASSERT_STRING_EQUAL(out, "xpassword=keep");
    char *e = pgf_config_pct_encode("a b/c:d@e", true);
    CU_ASSERT_STRING_EQUAL(e, "a%20b/c:d@e");
    free(e);
}

/* Warnings for what libpq accepts silently: `want` substrings in order,
 * `errors` the count of serious ones; the password never in the text. */
static void expect_warnings(const char *const *env, int errors, const char *want1,
                            const char *want2, const char *password)
{
    pgf_config c;
    char err[256];
    bool ok = pgf_config_resolve(env, &c, err, sizeof err) == 0;
    char *w = NULL;
    CU_ASSERT_EQUAL(pgf_config_warnings(env, ok ? &c : NULL, &w), errors);
    if (want1 == NULL) {
        CU_ASSERT_PTR_NULL(w);
    } else {
        CU_ASSERT_PTR_NOT_NULL_FATAL(w);
        if (strstr(w, want1) == NULL || (want2 && strstr(w, want2) == NULL))
            fprintf(stderr, "warnings: %s\n", w);
        CU_ASSERT_PTR_NOT_NULL(strstr(w, want1));
        if (want2)
            CU_ASSERT_PTR_NOT_NULL(strstr(w, want2));
        if (password)
            CU_ASSERT_PTR_NULL(strstr(w, password));
    }
    free(w);
    pgf_config_clear(&c);
}

static void warnings_for_silent_mistakes(void)
{
    const char *hostport[] = {"POSTGRES_HOST=db:5432", "POSTGRES_DB=d", "POSTGRES_USER=u",
                              "POSTGRES_PASSWORD=pw", NULL};
    expect_warnings(hostport, 1, "error: POSTGRES_HOST=db:5432 holds a port",
                    "Set POSTGRES_HOST=db and POSTGRES_PORT=5432", NULL);
    const char *ipv6[] = {"POSTGRES_HOST=::1", "POSTGRES_DB=d", "POSTGRES_USER=u",
                          "POSTGRES_PASSWORD=pw", NULL};
    expect_warnings(ipv6, 0, NULL, NULL, NULL);
    const char *sock[] = {"POSTGRES_HOST=/cloudsql/p:r:i", "POSTGRES_DB=d", "POSTGRES_USER=u",
                          "POSTGRES_PASSWORD=pw", NULL};
    expect_warnings(sock, 0, NULL, NULL, NULL);
    const char *rawat[] = {"DATABASE_URL=postgresql://u:se@cret@db/d", NULL};
    expect_warnings(rawat, 1, "DATABASE_URL has 2 '@'", "%40", "cret");
    const char *rawslash[] = {"DATABASE_URL=postgresql://u:se/cret@db/d", NULL};
    expect_warnings(rawslash, 1, "DATABASE_URL has a '/' before the '@'", "%2F", "cret");
    const char *encoded[] = {"DATABASE_URL=postgresql://u:se%40c%2Fret@db/d", NULL};
    expect_warnings(encoded, 0, NULL, NULL, NULL);
    const char *special[] = {"POSTGRES_HOST=db", "POSTGRES_DB=d", "POSTGRES_USER=u",
                             "POSTGRES_PASSWORD=ab@c:d+", NULL};
    expect_warnings(special, 0, "warning: POSTGRES_PASSWORD contains '@', ':', '+'",
                    "write it as **%40*%3A*%2B ", "ab@c");
    const char *plain[] = {"POSTGRES_HOST=db", "POSTGRES_DB=d", "POSTGRES_USER=u",
                           "POSTGRES_PASSWORD=Plain-pass_1.x~", NULL};
    expect_warnings(plain, 0, NULL, NULL, NULL);
    /* the raw URL a service would paste together */
    pgf_config c;
    char err[256], *raw = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_config_resolve(special, &c, err, sizeof err), 0);
    CU_ASSERT_EQUAL(pgf_config_raw_url(&c, &raw), 0);
    CU_ASSERT_STRING_EQUAL(raw, "postgresql://u:ab@c:d+@db/d");
    free(raw);
    pgf_config_clear(&c);
}

static const pgf_test config_tests[] = {
    {"warnings_for_silent_mistakes", warnings_for_silent_mistakes},
    {"resolve_table", resolve_table},
    {"psycopg2_url_and_notes", psycopg2_url_and_notes},
    {"mask_url", mask_url},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_config[] = {
    {"config", NULL, NULL, config_tests},
    PGF_SUITES_END,
};
