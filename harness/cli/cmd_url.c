/* cmd_url.c - `pgfault url`: resolve connection settings from the
 * environment (config.h precedence), print them with the password masked,
 * and the equivalent libpq / SQLAlchemy URLs; optionally try them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "usage.h"
#include "pgfault/config.h"
#include "pgfault/health.h"
#include "pgfault/healthcheck.h"
#include "pgfault/secret.h"

extern char **environ;

static void usage(FILE *f)
{
    pgf__cli_usage_print(f, "url");
}

int pgf_cmd_url(int argc, char **argv)
{
    bool check = false, as_url = false;
    unsigned timeout_ms = 10000;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return PGF_EXIT_OK;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (strcmp(argv[i], "--as-url") == 0) {
            as_url = true;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            unsigned long v = strtoul(argv[++i], &end, 10);
            if (*end != '\0' || v == 0 || v > 3600000) {
                fprintf(stderr, "pgfault url: --timeout: '%s' is not a number of ms\n", argv[i]);
                return PGF_EXIT_USAGE;
            }
            timeout_ms = (unsigned)v;
        } else {
            fprintf(stderr, "pgfault url: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    pgf_config c;
    char err[512];
    if (as_url && !check) {
        fprintf(stderr, "pgfault url: --as-url goes with --check\n");
        return PGF_EXIT_USAGE;
    }
    bool resolved = pgf_config_resolve((const char *const *)environ, &c, err, sizeof err) == 0;
    if (!resolved)
        fprintf(stderr, "pgfault url: %s\n", err);
    /* What libpq would accept but the user surely did not mean. */
    char *warn = NULL;
    int serious = pgf_config_warnings((const char *const *)environ, resolved ? &c : NULL, &warn);
    for (char *line = warn, *nl; line != NULL && *line != '\0'; line = nl + 1) {
        nl = strchr(line, '\n');
        if (nl == NULL)
            nl = line + strlen(line) - 1;
        fprintf(stderr, "pgfault url: %.*s\n", (int)(nl - line), line);
    }
    free(warn);
    if (!resolved) {
        pgf_config_clear(&c);
        return PGF_EXIT_USAGE;
    }
    /* Whatever libpq or the server says back (--check) loses the password. */
    (void)pgf_secret_add(pgf_config_get(&c, "password"));
    char *text = NULL;
    int rc = pgf_config_describe(&c, &text);
    if (rc == 0)
        fputs(text, stdout);
    free(text);
    static const struct {
        pgf_url_kind kind;
        const char *label;
    } kinds[] = {
        {PGF_URL_LIBPQ, "libpq"}, {PGF_URL_ASYNCPG, "asyncpg"}, {PGF_URL_PSYCOPG2, "psycopg2"}};
    for (size_t i = 0; rc == 0 && i < sizeof kinds / sizeof kinds[0]; i++) {
        char *url = NULL;
        rc = pgf_config_url(&c, kinds[i].kind, true, &url);
        if (rc == 0)
            printf("%-9s %s\n", kinds[i].label, url);
        free(url);
    }
    int exit_code = rc != 0 ? PGF_EXIT_INTERNAL : serious > 0 ? PGF_EXIT_USAGE : PGF_EXIT_OK;
    if (rc == 0 && check) {
        pgf_health h;
        char line[512];
        pgf_config uc;
        const pgf_config *use = &c;
        const char *how = c.source == PGF_CONFIG_FROM_DATABASE_URL ? "DATABASE_URL as libpq "
                                                                     "parses it"
                                                                   : "keywords";
        memset(&uc, 0, sizeof uc);
        if (as_url) {
            /* The URL form a service pastes together, parsed as a service's
             * libpq would parse its DATABASE_URL. */
            char *raw = NULL;
            rc = pgf_config_raw_url(&c, &raw);
            char *envv = raw ? malloc(strlen(raw) + 16) : NULL;
            if (envv != NULL)
                sprintf(envv, "DATABASE_URL=%s", raw);
            const char *const uenv[] = {envv, NULL};
            bool oom = envv == NULL;
            bool ok = !oom && pgf_config_resolve(uenv, &uc, err, sizeof err) == 0;
            free(envv);
            free(raw);
            if (!ok) {
                /* libpq's complaint may quote a piece of the password: not shown */
                printf("check     unhealthy: the unencoded URL form does not parse%s\n",
                       oom ? " (out of memory)"
                           : ": a value needs percent-encoding (see the warnings above)");
                pgf_config_clear(&uc);
                pgf_config_clear(&c);
                return PGF_EXIT_VIOLATIONS;
            }
            use = &uc;
            how = "the unencoded URL form";
        }
        pgf_health_check(use->keywords, use->values, NULL, timeout_ms, &h);
        pgf_health_format(&h, line, sizeof line);
        pgf_secret_scrub(line);
        printf("check     %s  (connected with %s)\n", line, how);
        if (!h.healthy && exit_code == PGF_EXIT_OK)
            exit_code = PGF_EXIT_VIOLATIONS;
        pgf_config_clear(&uc);
    }
    pgf_config_clear(&c);
    return exit_code;
}
