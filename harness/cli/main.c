/* main.c - `pgfault SUBCOMMAND ...`: dispatch, --help and --version.
 * Every subcommand lives in its own cmd_<name>.c. */
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "pgfault/version.h"
#include "usage.h"

struct subcommand {
    const char *name;
    const char *help;
    int (*fn)(int argc, char **argv);
};

static const struct subcommand subcommands[] = {
#define PGF__CMD_ROW(name, help) {#name, help, pgf_cmd_##name},
    PGF_SUBCOMMANDS(PGF__CMD_ROW)
#undef PGF__CMD_ROW
};

static void usage(FILE *f)
{
    fprintf(f, "usage: pgfault SUBCOMMAND [OPTIONS]\n\nsubcommands:\n");
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++)
        if (subcommands[i].fn != NULL)
            fprintf(f, "  %-8s %s\n", subcommands[i].name, subcommands[i].help);
    fprintf(f,
            "\n`pgfault help SUBCOMMAND` (or `pgfault SUBCOMMAND --help`) describes each one\n"
            "(and `man pgfault` all).\n"
            "exit codes: %s\n",
            pgf__cli_exit_codes);
}

int main(int argc, char **argv)
{
    /* Peers closing sockets must surface as EPIPE, not kill the process. */
    signal(SIGPIPE, SIG_IGN);
    /* `pgfault help CMD` is `pgfault CMD --help`. */
    if (argc >= 3 && strcmp(argv[1], "help") == 0) {
        for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
            if (strcmp(argv[2], subcommands[i].name) != 0 || subcommands[i].fn == NULL)
                continue;
            char *args[] = {argv[2], "--help", NULL};
            return subcommands[i].fn(2, args);
        }
        fprintf(stderr, "pgfault help: unknown subcommand '%s'\n", argv[2]);
        usage(stderr);
        return PGF_EXIT_USAGE;
    }
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? PGF_EXIT_USAGE : PGF_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        printf("pgfault %s\n", PGF_VERSION);
        return PGF_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof subcommands / sizeof subcommands[0]; i++) {
        if (strcmp(argv[1], subcommands[i].name) != 0)
            continue;
        if (subcommands[i].fn == NULL) {
            fprintf(stderr, "pgfault: '%s' is not available in this build\n", argv[1]);
            return PGF_EXIT_USAGE;
        }
        return subcommands[i].fn(argc - 1, argv + 1);
    }
    fprintf(stderr, "pgfault: unknown subcommand '%s'\n", argv[1]);
    usage(stderr);
    return PGF_EXIT_USAGE;
}
