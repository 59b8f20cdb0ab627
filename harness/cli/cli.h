/* cli.h - subcommand entry points and the CLI's shared conventions.
 *
 * Exit codes (the CI contract, Jepsen-style):
 *   0  everything passed / command succeeded
 *   1  violations found (run, check, replay)
 *   2  bad usage, invalid scenario or configuration
 *   3  the harness itself failed (cannot bind, out of fds, I/O error)
 */
#ifndef PGF_CLI_H
#define PGF_CLI_H

enum {
    PGF_EXIT_OK = 0,
    PGF_EXIT_VIOLATIONS = 1,
    PGF_EXIT_USAGE = 2,
    PGF_EXIT_INTERNAL = 3,
};

/* `pgfault faults` talks to this control API address by default. */
#define PGF_CLI_DEFAULT_CONTROL "127.0.0.1:8474"

/* Subcommands (their usage text is in usage.c). Declared weak so a build without a module still
 * links and says the subcommand is unavailable instead of failing to build. */
#define PGF_SUBCOMMANDS(X)                                             \
    X(serve, "run the fake PostgreSQL server")                         \
    X(proxy, "apply fault rules in front of a real PostgreSQL")        \
    X(faults, "list/add/remove/reset fault rules of a running server") \
    X(run, "run a scenario (or the built-in suite) and check it")      \
    X(check, "check a recorded history offline")                       \
    X(replay, "replay a failed run from its report.json")              \
    X(merge, "merge the outputs of `run --shard K/N` into one report") \
    X(spec, "print the session state machine (json|yaml|dot)")         \
    X(url, "resolve connection settings from the environment and print URLs")

#define PGF__CMD_DECL(name, help) int pgf_cmd_##name(int argc, char **argv) __attribute__((weak));
PGF_SUBCOMMANDS(PGF__CMD_DECL)
#undef PGF__CMD_DECL

#endif
