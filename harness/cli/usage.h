/* usage.h - the one source of the CLI's usage text.
 *
 * Every subcommand's synopsis, description, options and exit codes are
 * data in usage.c. `pgfault --help`, `pgfault SUBCOMMAND --help`, the
 * getopt_long tables of the subcommands that use getopt, and the man page
 * (pgfault.1, written at build time by mangen.c) are all produced from it,
 * so the help, the man page and the accepted options cannot drift apart.
 *
 * Text conventions (so one string serves both a terminal and roff):
 *   - a description is lines separated by '\n'; an empty line starts a new
 *     paragraph; a line starting with two spaces is an example, kept as is;
 *   - an option's help may continue on more lines ('\n'); --help indents
 *     them under the help column, the man page joins them.
 */
#ifndef PGF_CLI_USAGE_H
#define PGF_CLI_USAGE_H

#include <getopt.h>
#include <stdio.h>

typedef struct pgf__cli_row {
    const char *name; /* long option without "--" ("listen"), or a command ("add FILE_OR_JSON") */
    const char *arg;  /* option argument ("HOST:PORT"), NULL for none */
    int val;          /* getopt_long's return value for the option; 0 for command rows */
    const char *help;
} pgf__cli_row;

typedef struct pgf__cli_usage {
    const char *name;         /* "serve" */
    const char *synopsis;     /* after "pgfault serve " */
    const char *description;  /* see the conventions above */
    const pgf__cli_row *cmds; /* sub-commands (faults); NULL-name terminated, or NULL */
    const pgf__cli_row *opts; /* options; NULL-name terminated, or NULL */
    const char *exit_codes;   /* "0 ok, 2 ..." */
} pgf__cli_usage;

/* The top-level text (pgfault --help, the man page's DESCRIPTION). */
extern const char pgf__cli_overview[];
/* Exit codes of the whole tool, environment variables, as description text. */
extern const char pgf__cli_exit_codes[];
extern const char pgf__cli_environment[];

/* Every subcommand's usage, terminated by a NULL name. */
extern const pgf__cli_usage pgf__cli_usages[];

/* The usage of `name`, or NULL. */
const pgf__cli_usage *pgf__cli_usage_find(const char *name);
/* `pgfault NAME --help` text. */
void pgf__cli_usage_print(FILE *f, const char *name);
/* Fill `out` (n entries, the last one zeroed) with the getopt_long table of
 * `name`'s options plus --help ('h'). Returns 0, or -1 when n is too small. */
int pgf__cli_longopts(const char *name, struct option *out, size_t n);

#endif
