/* config.c - resolve connection settings from an explicit environment
 * (see config.h for the precedence) and render them as URLs. URL parsing
 * is libpq's (PQconninfoParse); the list of PG* variables is libpq's
 * (PQconndefaults). This file only builds URLs and masks passwords. */
#include "pgfault/config.h"

#include <ctype.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/buf.h"

static const char *env_get(const char *const *env, const char *name)
{
    size_t n = strlen(name);
    for (; env != NULL && *env != NULL; env++)
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    return NULL;
}

const char *pgf_config_source_name(pgf_config_source s)
{
    switch (s) {
    case PGF_CONFIG_FROM_DATABASE_URL:
        return "DATABASE_URL";
    case PGF_CONFIG_FROM_POSTGRES_VARS:
        return "POSTGRES_* variables";
    case PGF_CONFIG_FROM_PG_VARS:
        return "libpq PG* variables";
    }
    return "?";
}

void pgf_config_clear(pgf_config *c)
{
    for (int i = 0; i < c->n; i++) {
        free((char *)c->keywords[i]);
        free((char *)c->values[i]);
    }
    memset(c, 0, sizeof *c);
}

const char *pgf_config_get(const pgf_config *c, const char *kw)
{
    for (int i = 0; i < c->n; i++)
        if (strcmp(c->keywords[i], kw) == 0)
            return c->values[i];
    return NULL;
}

/* Set (or override) a keyword. */
static int set_kw(pgf_config *c, const char *kw, const char *val, const char *origin)
{
    char *v = strdup(val);
    if (v == NULL)
        return PGF_ENOMEM;
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->keywords[i], kw) == 0) {
            free((char *)c->values[i]);
            c->values[i] = v;
            snprintf(c->origin[i], sizeof c->origin[i], "%s", origin);
            return 0;
        }
    }
    char *k = strdup(kw);
    if (k == NULL || c->n >= PGF_CONFIG_MAX) {
        free(k);
        free(v);
        return k == NULL ? PGF_ENOMEM : PGF_ETOOBIG;
    }
    c->keywords[c->n] = k;
    c->values[c->n] = v;
    snprintf(c->origin[c->n], sizeof c->origin[c->n], "%s", origin);
    c->n++;
    c->keywords[c->n] = NULL;
    c->values[c->n] = NULL;
    return 0;
}

static void mask_userinfo(const char *in, char *out, size_t len)
{
    if (len == 0)
        return;
    size_t o = 0;
    const char *p = in;
    while (*p != '\0' && o + 1 < len) {
        const char *sch = strstr(p, "://");
        if (sch == NULL)
            break;
        /* copy through "://" */
        while (p < sch + 3 && o + 1 < len)
            out[o++] = *p++;
        /* userinfo ends at the last '@' before the next '/', '?', '#', space or quote */
        size_t span = strcspn(p, "/?# \"'");
        const char *at = NULL;
        for (size_t i = 0; i < span; i++)
            if (p[i] == '@')
                at = p + i;
        const char *colon = NULL;
        if (at != NULL)
            for (const char *q = p; q < at; q++)
                if (*q == ':') {
                    colon = q;
                    break;
                }
        if (colon != NULL) {
            while (p <= colon && o + 1 < len)
                out[o++] = *p++;
            for (const char *m = "****"; *m != '\0' && o + 1 < len; m++)
                out[o++] = *m;
            p = at;
        }
    }
    while (*p != '\0' && o + 1 < len)
        out[o++] = *p++;
    out[o] = '\0';
}

/* Is in[i..] the keyword "password" (a key=value conninfo or a URL query
 * parameter) followed by optional blanks and '='? Returns the offset of
 * the value, or 0. */
static size_t password_value_at(const char *in, size_t i)
{
    static const char kw[] = "password";
    if (strncmp(in + i, kw, sizeof kw - 1) != 0)
        return 0;
    if (i > 0 && !(in[i - 1] == ' ' || in[i - 1] == '\t' || in[i - 1] == '?' || in[i - 1] == '&'))
        return 0;
    size_t j = i + sizeof kw - 1;
    while (in[j] == ' ' || in[j] == '\t')
        j++;
    if (in[j] != '=')
        return 0;
    j++;
    while (in[j] == ' ' || in[j] == '\t')
        j++;
    return j;
}

void pgf_config_mask_url(const char *in, char *out, size_t len)
{
    if (len == 0)
        return;
    /* URL userinfo first, then `password=...` in key=value conninfos and
     * URL query strings (quoted values with \' escapes, as libpq reads them). */
    char *tmp = malloc(len);
    if (tmp == NULL) {
        snprintf(out, len, "****");
        return;
    }
    mask_userinfo(in, tmp, len);
    size_t o = 0;
    for (size_t i = 0; tmp[i] != '\0' && o + 1 < len;) {
        size_t v = password_value_at(tmp, i);
        if (v == 0) {
            out[o++] = tmp[i++];
            continue;
        }
        while (i < v && o + 1 < len)
            out[o++] = tmp[i++];
        if (tmp[i] == '\'') {
            for (i++; tmp[i] != '\0' && tmp[i] != '\''; i++)
                if (tmp[i] == '\\' && tmp[i + 1] != '\0')
                    i++;
            if (tmp[i] == '\'')
                i++;
        } else {
            while (tmp[i] != '\0' && tmp[i] != ' ' && tmp[i] != '\t' && tmp[i] != '&')
                i++;
        }
        for (const char *m = "****"; *m != '\0' && o + 1 < len; m++)
            out[o++] = *m;
    }
    out[o] = '\0';
    free(tmp);
}

static bool valid_port(const char *s)
{
    /* libpq allows a comma-separated list matching a host list */
    if (s == NULL || *s == '\0')
        return false;
    const char *p = s;
    while (*p != '\0') {
        long v = 0;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 6)
            v = v * 10 + (*p++ - '0'), digits++;
        if (digits == 0 || v < 1 || v > 65535)
            return false;
        if (*p == ',')
            p++;
        else if (*p != '\0')
            return false;
    }
    return true;
}

/* Layer 3: libpq's PG* variables, from libpq's own option table. */
static int layer_pg_vars(const char *const *env, pgf_config *c, int *count)
{
    PQconninfoOption *opts = PQconndefaults();
    if (opts == NULL)
        return PGF_ENOMEM;
    int rc = 0;
    *count = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL && rc == 0; o++) {
        if (o->envvar == NULL)
            continue;
        const char *v = env_get(env, o->envvar);
        if (v == NULL || *v == '\0')
            continue;
        rc = set_kw(c, o->keyword, v, o->envvar);
        (*count)++;
    }
    PQconninfoFree(opts);
    return rc;
}

/* Replace every occurrence of secret[0..n) in msg with ****. */
static void scrub_one(char *msg, size_t len, const char *secret, size_t n)
{
    if (n == 0)
        return;
    char *at;
    size_t from = 0;
    while ((at = memmem(msg + from, strlen(msg + from), secret, n)) != NULL) {
        size_t tail = strlen(at + n);
        if ((size_t)(at - msg) + 4 + tail + 1 > len) {
            *at = '\0'; /* no room: cut the message rather than show the secret */
            return;
        }
        memmove(at + 4, at + n, tail + 1);
        memcpy(at, "****", 4);
        from = (size_t)(at - msg) + 4;
    }
}

/* The pieces of url's password (userinfo after the first ':' up to the last
 * '@' of the authority, and password=/sslpassword= query values) removed
 * from msg, whole and split at URL delimiters (libpq's errors quote the
 * fragments it could not parse: "'Zq' is not a port number"). Used on
 * messages about a rejected DATABASE_URL, which is echoed nowhere else. */
static void scrub_url_secrets(const char *url, char *msg, size_t len)
{
    const char *spans[8][2];
    int nspans = 0;
    const char *auth = strstr(url, "://");
    if (auth != NULL) {
        auth += 3;
        size_t alen = strcspn(auth, "?#");
        const char *at = NULL;
        for (size_t i = 0; i < alen; i++)
            if (auth[i] == '@')
                at = auth + i;
        const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) {
            spans[nspans][0] = colon + 1;
            spans[nspans++][1] = at;
        }
    }
    for (const char *q = url; (q = strstr(q, "password=")) != NULL && nspans < 8; q++) {
        const char *v = q + strlen("password=");
        spans[nspans][0] = v;
        spans[nspans++][1] = v + strcspn(v, "&# ");
    }
    for (int k = 0; k < nspans; k++) {
        const char *b = spans[k][0], *e = spans[k][1];
        scrub_one(msg, len, b, (size_t)(e - b));
        for (const char *p = b; p < e;) {
            size_t n = strcspn(p, "/:@?&=#[],%' \"");
            if (p + n > e)
                n = (size_t)(e - p);
            if (n >= 2)
                scrub_one(msg, len, p, n);
            p += n + 1;
        }
    }
}

static int layer_url(const char *url, pgf_config *c, char *err, size_t errlen)
{
    char masked[512];
    pgf_config_mask_url(url, masked, sizeof masked);
    const char *rest = strstr(url, "://");
    size_t scheme_len = rest != NULL ? (size_t)(rest - url) : 0;
    /* Accept SQLAlchemy's "postgresql+driver://" by dropping the driver:
     * the rest of the URL means the same to libpq. */
    size_t base_len = strcspn(url, "+:");
    bool pg_scheme = rest != NULL && ((base_len == 10 && strncmp(url, "postgresql", 10) == 0) ||
                                      (base_len == 8 && strncmp(url, "postgres", 8) == 0));
    if (!pg_scheme) {
        snprintf(err, errlen,
                 "DATABASE_URL: expected postgresql://USER:PASSWORD@HOST:PORT/DB, got '%s'",
                 masked);
        scrub_url_secrets(url, err, errlen);
        return PGF_EINVAL;
    }
    if (base_len < scheme_len) {
        snprintf(c->notes + strlen(c->notes), sizeof c->notes - strlen(c->notes),
                 "DATABASE_URL: SQLAlchemy driver suffix '%.*s' ignored for libpq\n",
                 (int)(scheme_len - base_len), url + base_len);
    }
    size_t n = strlen("postgresql") + strlen(rest) + 1;
    char *libpq_url = malloc(n);
    if (libpq_url == NULL)
        return PGF_ENOMEM;
    snprintf(libpq_url, n, "postgresql%s", rest);
    char *perr = NULL;
    PQconninfoOption *opts = PQconninfoParse(libpq_url, &perr);
    free(libpq_url);
    if (opts == NULL) {
        char m[512];
        char *nl;
        pgf_config_mask_url(perr != NULL ? perr : "out of memory", m, sizeof m);
        if ((nl = strchr(m, '\n')) != NULL)
            *nl = '\0';
        /* libpq quotes the rest of the URL from where it gave up; when that
         * starts before the '@' ending the user info it holds a piece of the
         * password: cut the quote then. */
        char *q = strchr(m, '"'), *qe = q ? strrchr(q + 1, '"') : NULL;
        if (q != NULL && qe != NULL) {
            const char *at = strrchr(url, '@');
            char frag[512];
            snprintf(frag, sizeof frag, "%.*s", (int)(qe - q - 1), q + 1);
            const char *pos = frag[0] ? strstr(url, frag) : NULL;
            if (at != NULL && (pos == NULL || pos < at))
                snprintf(q, sizeof m - (size_t)(q - m),
                         "(the rest is not shown: it may hold the password)");
        }
        snprintf(err, errlen, "DATABASE_URL: %s", m);
        scrub_url_secrets(url, err, errlen);
        PQfreemem(perr);
        return PGF_EINVAL;
    }
    int rc = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL && rc == 0; o++)
        if (o->val != NULL)
            rc = set_kw(c, o->keyword, o->val, "DATABASE_URL");
    PQconninfoFree(opts);
    return rc;
}

static const struct {
    const char *var;
    const char *keyword;
    bool required;
} postgres_vars[] = {
    {"POSTGRES_HOST", "host", true},         {"POSTGRES_PORT", "port", false},
    {"POSTGRES_DB", "dbname", true},         {"POSTGRES_USER", "user", true},
    {"POSTGRES_PASSWORD", "password", true},
};
#define NPOSTGRES (sizeof postgres_vars / sizeof postgres_vars[0])

int pgf_config_resolve(const char *const *env, pgf_config *c, char *err, size_t errlen)
{
    memset(c, 0, sizeof *c);
    if (errlen > 0)
        err[0] = '\0';
    int npg = 0;
    int rc = layer_pg_vars(env, c, &npg);
    if (rc != 0)
        goto fail;
    const char *url = env_get(env, "DATABASE_URL");
    bool any_postgres = false;
    for (size_t i = 0; i < NPOSTGRES; i++)
        any_postgres = any_postgres || env_get(env, postgres_vars[i].var) != NULL;
    if (url != NULL && *url != '\0') {
        c->source = PGF_CONFIG_FROM_DATABASE_URL;
        rc = layer_url(url, c, err, errlen);
        if (rc != 0)
            goto fail;
        if (any_postgres)
            snprintf(c->notes + strlen(c->notes), sizeof c->notes - strlen(c->notes),
                     "POSTGRES_* variables ignored: DATABASE_URL takes precedence\n");
    } else if (any_postgres) {
        c->source = PGF_CONFIG_FROM_POSTGRES_VARS;
        char missing[256] = "";
        for (size_t i = 0; i < NPOSTGRES; i++) {
            const char *v = env_get(env, postgres_vars[i].var);
            if (v != NULL && *v != '\0') {
                rc = set_kw(c, postgres_vars[i].keyword, v, postgres_vars[i].var);
                if (rc != 0)
                    goto fail;
                continue;
            }
            if (!postgres_vars[i].required || pgf_config_get(c, postgres_vars[i].keyword) != NULL)
                continue;
            snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s %s",
                     missing[0] ? "; " : "", postgres_vars[i].var,
                     v == NULL ? "is not set" : "is set but empty");
        }
        if (missing[0] != '\0') {
            snprintf(err, errlen, "%s", missing);
            rc = PGF_EINVAL;
            goto fail;
        }
    } else if (npg > 0) {
        c->source = PGF_CONFIG_FROM_PG_VARS;
    } else {
        snprintf(err, errlen,
                 "no connection settings: set DATABASE_URL, or POSTGRES_HOST, POSTGRES_PORT, "
                 "POSTGRES_DB, POSTGRES_USER and POSTGRES_PASSWORD, or libpq's PG* variables");
        rc = PGF_EINVAL;
        goto fail;
    }
    for (int i = 0; i < c->n; i++) {
        if (strcmp(c->keywords[i], "port") == 0 && !valid_port(c->values[i])) {
            char shown[64];
            snprintf(shown, sizeof shown, "%s", c->values[i]);
            if (strcmp(c->origin[i], "DATABASE_URL") == 0)
                /* not echoed: the "port" may be a piece of a password with a raw
                 * '/' in it ("postgresql://u:pa/ss@db" reads host u, port pa) */
                snprintf(err, errlen, "DATABASE_URL: the port after the host is not a number");
            else
                snprintf(err, errlen, "%s: '%s' is not a port number", c->origin[i], shown);
            rc = PGF_EINVAL;
            goto fail;
        }
    }
    return 0;
fail:
    if (rc == PGF_ENOMEM && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "out of memory");
    if (rc == PGF_ETOOBIG && errlen > 0 && err[0] == '\0')
        snprintf(err, errlen, "too many connection parameters");
    return rc;
}

char *pgf_config_pct_encode(const char *s, bool query_value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = malloc(n * 3 + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (isalnum(*p) || *p == '-' || *p == '.' || *p == '_' || *p == '~' ||
            (query_value && (*p == '/' || *p == ':' || *p == '@'))) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

static void put_enc(pgf_buf *b, const char *s, bool query_value)
{
    char *e = pgf_config_pct_encode(s, query_value);
    if (e == NULL) {
        b->failed = true;
        return;
    }
    pgf_buf_put(b, e, strlen(e));
    free(e);
}

/* Keywords that live in the URL's authority/path, not in its query. */
static bool in_authority(const char *kw)
{
    return strcmp(kw, "host") == 0 || strcmp(kw, "port") == 0 || strcmp(kw, "user") == 0 ||
           strcmp(kw, "password") == 0 || strcmp(kw, "dbname") == 0;
}

int pgf_config_url(const pgf_config *c, pgf_url_kind kind, bool mask, char **out)
{
    *out = NULL;
    pgf_buf b = PGF_BUF_INIT;
    const char *host = pgf_config_get(c, "host");
    const char *port = pgf_config_get(c, "port");
    const char *user = pgf_config_get(c, "user");
    const char *pass = pgf_config_get(c, "password");
    const char *db = pgf_config_get(c, "dbname");
    pgf_buf_printf(&b, "%s://",
                   kind == PGF_URL_ASYNCPG    ? "postgresql+asyncpg"
                   : kind == PGF_URL_PSYCOPG2 ? "postgresql+psycopg2"
                                              : "postgresql");
    if (user != NULL && *user != '\0') {
        put_enc(&b, user, false);
        if (pass != NULL && *pass != '\0') {
            pgf_buf_put_u8(&b, ':');
            if (mask)
                pgf_buf_printf(&b, "****");
            else
                put_enc(&b, pass, false);
        }
        pgf_buf_put_u8(&b, '@');
    }
    /* A unix-socket directory (or a host list) cannot sit in the authority:
     * it goes in ?host=, which libpq, psycopg2 and asyncpg all read. */
    bool host_in_query =
        host != NULL && (host[0] == '/' || host[0] == '@' || strchr(host, ',') != NULL);
    bool port_in_query = host_in_query && port != NULL && strcmp(port, "5432") != 0;
    if (host != NULL && !host_in_query) {
        if (strchr(host, ':') != NULL)
            pgf_buf_printf(&b, "[%s]", host); /* IPv6 literal */
        else
            put_enc(&b, host, false);
        if (port != NULL && strchr(port, ',') == NULL)
            pgf_buf_printf(&b, ":%s", port);
    }
    pgf_buf_put_u8(&b, '/');
    if (db != NULL)
        put_enc(&b, db, false);
    char sep = '?';
    if (host_in_query) {
        pgf_buf_printf(&b, "%chost=", sep);
        put_enc(&b, host, true);
        sep = '&';
    }
    if (port_in_query) {
        pgf_buf_printf(&b, "%cport=", sep);
        put_enc(&b, port, true);
        sep = '&';
    }
    for (int i = 0; i < c->n; i++) {
        const char *kw = c->keywords[i];
        if (in_authority(kw))
            continue;
        if (kind == PGF_URL_ASYNCPG) {
            /* asyncpg's SQLAlchemy dialect knows `ssl`, not libpq's keywords */
            if (strcmp(kw, "sslmode") != 0)
                continue;
            kw = "ssl";
        }
        pgf_buf_printf(&b, "%c", sep);
        put_enc(&b, kw, true);
        pgf_buf_put_u8(&b, '=');
        put_enc(&b, c->values[i], true);
        sep = '&';
    }
    pgf_buf_put_u8(&b, 0);
    if (b.failed) {
        pgf_buf_free(&b);
        return PGF_ENOMEM;
    }
    *out = (char *)b.data;
    return 0;
}

int pgf_config_describe(const pgf_config *c, char **out)
{
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_printf(&b, "source: %s\n", pgf_config_source_name(c->source));
    static const char *const order[] = {"host", "hostaddr", "port", "dbname", "user", "password"};
    for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
        for (int i = 0; i < c->n; i++)
            if (strcmp(c->keywords[i], order[k]) == 0) {
                bool pw = strcmp(order[k], "password") == 0;
                const char *v = c->values[i];
                const char *note = strcmp(order[k], "host") == 0 && (v[0] == '/' || v[0] == '@')
                                       ? ", unix socket directory"
                                       : "";
                pgf_buf_printf(&b, "  %-18s = %-40s (%s%s)\n", order[k], pw ? "****" : v,
                               c->origin[i], note);
            }
    for (int i = 0; i < c->n; i++) {
        bool listed = false;
        for (size_t k = 0; k < sizeof order / sizeof order[0]; k++)
            listed = listed || strcmp(c->keywords[i], order[k]) == 0;
        if (!listed)
            pgf_buf_printf(&b, "  %-18s = %-40s (%s)\n", c->keywords[i], c->values[i],
                           c->origin[i]);
    }
    if (pgf_config_get(c, "host") == NULL)
        pgf_buf_printf(&b, "  %-18s = %-40s (libpq default)\n", "host", "(unix socket default)");
    if (pgf_config_get(c, "port") == NULL)
        pgf_buf_printf(&b, "  %-18s = %-40s (libpq default)\n", "port", "5432");
    if (c->notes[0] != '\0')
        pgf_buf_printf(&b, "note: %s", c->notes);
    pgf_buf_put_u8(&b, 0);
    if (b.failed) {
        pgf_buf_free(&b);
        return PGF_ENOMEM;
    }
    *out = (char *)b.data;
    return 0;
}

/* ---- mistakes libpq accepts silently ------------------------------------------------------- */

static bool needs_pct(unsigned char ch)
{
    return !(isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~');
}

/* The password as it must appear in a URL, every character that stays as
 * it is shown as '*': "p@ss:w" -> "*%40**%3A*". */
static void masked_encoding(pgf_buf *b, const char *pw)
{
    static const char hex[] = "0123456789ABCDEF";
    for (const unsigned char *p = (const unsigned char *)pw; *p != '\0'; p++) {
        if (needs_pct(*p))
            pgf_buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
        else
            pgf_buf_put_u8(b, '*');
    }
}

/* The distinct characters of pw a URL must percent-encode, quoted:
 * "'@', ':'". Non-printable or non-ASCII bytes are named by their code. */
static void list_specials(pgf_buf *b, const char *pw)
{
    bool seen[256] = {false};
    bool first = true;
    for (const unsigned char *p = (const unsigned char *)pw; *p != '\0'; p++) {
        if (!needs_pct(*p) || seen[*p])
            continue;
        seen[*p] = true;
        if (*p > 0x20 && *p < 0x7F)
            pgf_buf_printf(b, "%s'%c'", first ? "" : ", ", *p);
        else
            pgf_buf_printf(b, "%sbyte 0x%02X", first ? "" : ", ", *p);
        first = false;
    }
}

/* A host value that carries a port ("db:5432"): one ':' and digits after
 * it. IPv6 literals have several colons; socket directories start with '/'. */
static bool host_with_port(const char *h)
{
    const char *colon = strchr(h, ':');
    if (h[0] == '/' || h[0] == '@' || colon == NULL || strchr(colon + 1, ':') != NULL ||
        colon == h || colon[1] == '\0')
        return false;
    for (const char *p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return false;
    return true;
}

int pgf_config_warnings(const char *const *env, const pgf_config *c, char **out)
{
    *out = NULL;
    pgf_buf b = PGF_BUF_INIT;
    int serious = 0;
    const char *url = env_get(env, "DATABASE_URL");
    bool from_url = url != NULL && *url != '\0';
    if (from_url) {
        /* One '@' ends the user info, and nothing before it may be a raw
         * '/', '?' or '#' (those end the host part). */
        const char *r = strstr(url, "://");
        r = r ? r + 3 : url;
        int ats = 0;
        for (const char *p = r; *p; p++)
            ats += *p == '@';
        const char *last_at = strrchr(r, '@');
        size_t delim = strcspn(r, "/?#");
        if (ats > 1) {
            /* The host libpq read is not shown: it holds a piece of the password. */
            pgf_buf_printf(&b,
                           "error: DATABASE_URL has %d '@': a raw '@' in the password must "
                           "be written %%40, else libpq takes the rest of the password as "
                           "part of the host name\n",
                           ats);
            serious++;
        }
        if (last_at != NULL && (size_t)(last_at - r) > delim) {
            pgf_buf_printf(&b,
                           "error: DATABASE_URL has a '%c' before the '@' that ends the user "
                           "and password: a raw '/', '?' or '#' in the password must be "
                           "written %%2F, %%3F or %%23\n",
                           r[delim]);
            serious++;
        }
    }
    static const char *const host_vars[] = {"POSTGRES_HOST", "PGHOST"};
    for (size_t i = 0; i < sizeof host_vars / sizeof host_vars[0]; i++) {
        const char *h = env_get(env, host_vars[i]);
        if (h == NULL || !host_with_port(h))
            continue;
        if (c != NULL &&
            (pgf_config_get(c, "host") == NULL || strcmp(pgf_config_get(c, "host"), h) != 0))
            continue; /* not the value in use */
        const char *colon = strchr(h, ':');
        pgf_buf_printf(&b,
                       "error: %s=%s holds a port: libpq looks for a host named '%s' (URLs show "
                       "it as [%s]). Set %s=%.*s and %s=%s\n",
                       host_vars[i], h, h, h, host_vars[i], (int)(colon - h), h,
                       i == 0 ? "POSTGRES_PORT" : "PGPORT", colon + 1);
        serious++;
    }
    const char *pw = c ? pgf_config_get(c, "password") : NULL;
    if (!from_url && pw != NULL) {
        bool special = false;
        for (const unsigned char *p = (const unsigned char *)pw; *p && !special; p++)
            special = needs_pct(*p);
        if (special) {
            const char *var =
                c->source == PGF_CONFIG_FROM_POSTGRES_VARS ? "POSTGRES_PASSWORD" : "the password";
            pgf_buf_printf(&b, "warning: %s contains ", var);
            list_specials(&b, pw);
            pgf_buf_printf(&b, ", which a URL must percent-encode: pasted raw into a "
                               "DATABASE_URL it breaks the URL or changes the password. In a "
                               "URL write it as ");
            masked_encoding(&b, pw);
            pgf_buf_printf(&b, " (each * one unchanged character; the URLs below are "
                               "encoded already)\n");
        }
    }
    if (b.len == 0 && !b.failed)
        return serious;
    pgf_buf_put_u8(&b, 0);
    if (b.failed) {
        pgf_buf_free(&b);
        return PGF_ENOMEM;
    }
    *out = (char *)b.data;
    return serious;
}

int pgf_config_raw_url(const pgf_config *c, char **out)
{
    *out = NULL;
    const char *host = pgf_config_get(c, "host"), *port = pgf_config_get(c, "port"),
               *user = pgf_config_get(c, "user"), *pass = pgf_config_get(c, "password"),
               *db = pgf_config_get(c, "dbname");
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_printf(&b, "postgresql://%s%s%s%s%s%s%s/%s", user ? user : "", user && pass ? ":" : "",
                   user && pass ? pass : "", user ? "@" : "", host && host[0] != '/' ? host : "",
                   port && host && host[0] != '/' ? ":" : "",
                   port && host && host[0] != '/' ? port : "", db ? db : "");
    if (host && host[0] == '/')
        pgf_buf_printf(&b, "?host=%s%s%s", host, port ? "&port=" : "", port ? port : "");
    pgf_buf_put_u8(&b, 0);
    if (b.failed) {
        pgf_buf_free(&b);
        return PGF_ENOMEM;
    }
    *out = (char *)b.data;
    return 0;
}
