/* config.h - where a service's connection settings come from, resolved
 * the way the incident's fix does it, and the URLs that say the same.
 *
 * Sources, per libpq keyword, highest first (docs/session-manager.md):
 *   1. DATABASE_URL (postgresql:// or postgres://; a SQLAlchemy dialect
 *      suffix such as postgresql+asyncpg:// is accepted and ignored),
 *      parsed by libpq's PQconninfoParse (percent-decoding included).
 *      When it is set the POSTGRES_* variables are ignored (and listed as
 *      such in the notes).
 *   2. POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER,
 *      POSTGRES_PASSWORD (raw values, no encoding). If any is set, host,
 *      db, user and password are required (from these or from layer 3);
 *      POSTGRES_HOST may be a unix-socket directory such as
 *      /cloudsql/project:region:instance.
 *   3. libpq's own PG* variables (PGHOST, PGPASSWORD, PGSSLMODE, ... the
 *      list comes from PQconndefaults()), filling what 1/2 leave out.
 * The environment is an explicit NULL-terminated "NAME=value" array (pass
 * `environ` in a program), so tests never touch the process environment.
 * Passwords are never printed: every text this module makes for humans
 * masks them as ****.
 */
#ifndef PGF_CONFIG_H
#define PGF_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "pgfault/err.h"

#define PGF_CONFIG_MAX 48

typedef enum pgf_config_source {
    PGF_CONFIG_FROM_DATABASE_URL,
    PGF_CONFIG_FROM_POSTGRES_VARS,
    PGF_CONFIG_FROM_PG_VARS,
} pgf_config_source;

typedef struct pgf_config {
    pgf_config_source source;
    int n;
    /* NULL-terminated, ready for PQconnectStartParams(keywords, values, 0);
     * the strings are owned by the config */
    const char *keywords[PGF_CONFIG_MAX + 1];
    const char *values[PGF_CONFIG_MAX + 1];
    char origin[PGF_CONFIG_MAX + 1][24]; /* "DATABASE_URL", "POSTGRES_HOST", "PGSSLMODE" */
    char notes[512];                     /* e.g. ignored variables; "" if none */
} pgf_config;

/* Resolve from env. 0, or PGF_EINVAL with a message in err naming the
 * variable ("POSTGRES_PASSWORD is not set", "POSTGRES_PORT: 'abc' is not a
 * port number", "DATABASE_URL: ..."). The message never contains a
 * password. Caller releases *out with pgf_config_clear() (also on error). */
int pgf_config_resolve(const char *const *env, pgf_config *out, char *err,
                       size_t errlen) PGF_NODISCARD;
void pgf_config_clear(pgf_config *c);
/* Value of a libpq keyword, or NULL. */
const char *pgf_config_get(const pgf_config *c, const char *keyword);
const char *pgf_config_source_name(pgf_config_source s);

typedef enum pgf_url_kind {
    PGF_URL_LIBPQ,    /* postgresql://          (libpq, psql, psycopg) */
    PGF_URL_ASYNCPG,  /* postgresql+asyncpg://  (SQLAlchemy async) */
    PGF_URL_PSYCOPG2, /* postgresql+psycopg2:// (SQLAlchemy sync) */
} pgf_url_kind;

/* The settings as a URL of that kind, user/password/db percent-encoded,
 * IPv6 hosts bracketed, a unix-socket directory as ?host=/dir. mask=true
 * writes the password as ****. Caller frees *out. */
int pgf_config_url(const pgf_config *c, pgf_url_kind kind, bool mask, char **out) PGF_NODISCARD;
/* Percent-encode for a URL component: unreserved characters stay, and in
 * query values also '/', ':' and '@'. Caller frees. NULL on ENOMEM. */
char *pgf_config_pct_encode(const char *s, bool query_value);
/* Human summary, one "keyword = value  (origin)" per line, password
 * masked. Caller frees *out. */
int pgf_config_describe(const pgf_config *c, char **out) PGF_NODISCARD;
/* Mistakes libpq accepts silently, one line each into *out (caller frees;
 * NULL when there are none), passwords never shown:
 *   "error: ..."   the settings cannot work as meant: POSTGRES_HOST (or
 *                  PGHOST) holding a port ("db:5432"); a raw '@', '/', '?'
 *                  or '#' in DATABASE_URL's password;
 *   "warning: ..." a password (from POSTGRES_PASSWORD or PG*) with
 *                  characters a URL must percent-encode, shown encoded and
 *                  masked except for those characters ("*%40**%3A*").
 * `c` is the resolved config, or NULL when resolving failed (the URL checks
 * still run). Returns the number of errors, or PGF_ENOMEM. */
int pgf_config_warnings(const char *const *env, const pgf_config *c, char **out);
/* The URL a service gets by pasting the raw values into
 * postgresql://USER:PASSWORD@HOST:PORT/DB (no percent-encoding): what
 * `pgfault url --check --as-url` connects with. Contains the password:
 * never print it. Caller frees *out. */
int pgf_config_raw_url(const pgf_config *c, char **out) PGF_NODISCARD;
/* Copy `in` to out replacing the password of any "scheme://user:PASS@",
 * any key=value "password=..." (quoted or not) and any URL query
 * "password=..." with ****, for echoing conninfos and libpq's errors. */
void pgf_config_mask_url(const char *in, char *out, size_t len);

#endif
