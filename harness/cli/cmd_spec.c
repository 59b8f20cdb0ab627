/* cmd_spec.c - `pgfault spec`: print the session state machine from
 * harness/session/machine.h as JSON/YAML (the checker's spec) or DOT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "usage.h"
#include "pgfault/machine.h"

static void usage(FILE *f)
{
    pgf__cli_usage_print(f, "spec");
}

int pgf_cmd_spec(int argc, char **argv)
{
    const char *format = "json", *output = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return PGF_EXIT_OK;
        } else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
            format = argv[++i];
        } else if (strncmp(argv[i], "--format=", 9) == 0) {
            format = argv[i] + 9;
        } else if ((strcmp(argv[i], "--output") == 0 || strcmp(argv[i], "-o") == 0) &&
                   i + 1 < argc) {
            output = argv[++i];
        } else {
            fprintf(stderr, "pgfault spec: unknown argument '%s'\n", argv[i]);
            usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    int fmt = pgf_spec_format_parse(format);
    if (fmt < 0) {
        fprintf(stderr, "pgfault spec: --format: '%s' is not json, yaml or dot\n", format);
        return PGF_EXIT_USAGE;
    }
    char *text = NULL;
    int rc = pgf_session_spec((pgf_spec_format)fmt, &text);
    if (rc != 0) {
        fprintf(stderr, "pgfault spec: %s\n", pgf_strerror(rc));
        return PGF_EXIT_INTERNAL;
    }
    FILE *f = output != NULL ? fopen(output, "w") : stdout;
    if (f == NULL) {
        perror(output);
        free(text);
        return PGF_EXIT_INTERNAL;
    }
    fputs(text, f);
    free(text);
    if ((output != NULL ? fclose(f) : fflush(f)) != 0) {
        perror(output != NULL ? output : "stdout");
        return PGF_EXIT_INTERNAL;
    }
    return PGF_EXIT_OK;
}
