/* usage.c - the CLI's usage text as data (see usage.h), and the --help
 * printer and getopt table built from it. The man page generator
 * (mangen.c) reads the same tables. */
#include "usage.h"

#include <string.h>

#include "cli.h"
#include "pgfault/check.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

const char pgf__cli_overview[] =
    "pgfault reproduces database session failures on demand, deterministically, and checks\n"
    "that the code under test never makes an illegal state transition. It runs a fake\n"
    "PostgreSQL 15 server that injects faults at exact protocol points, drives a session\n"
    "manager with a declared state machine through many concurrent health checks while\n"
    "racers call close and cancel, records a history and checks it.";

const char pgf__cli_exit_codes[] =
    "0 ok, 1 violations found, 2 bad usage/config, 3 harness failure";

const char pgf__cli_environment[] =
    "PGFAULT_LOG sets the log level (error, warn, info, debug, trace) like --log-level.\n"
    "PGFAULT_CONTROL is the default control API address of `pgfault faults`.\n"
    "PGFAULT_USERS holds `pgfault serve` roles, one NAME:PASSWORD:METHOD per line.\n"
    "PGFAULT_STOP_GRACE_S is how long `pgfault run` may take to stop after SIGINT/SIGTERM\n"
    "before it exits 3 anyway (default 20 s; 0 waits for ever).\n"
    "DATABASE_URL, POSTGRES_HOST, POSTGRES_PORT, POSTGRES_DB, POSTGRES_USER,\n"
    "POSTGRES_PASSWORD and libpq's PG* variables are what `pgfault url` resolves.";

static const pgf__cli_row serve_opts[] = {
    {"listen", "HOST:PORT", 'l',
     "TCP address (repeatable; default 127.0.0.1:54320;\n"
     "port 0 picks a free port; IPv6 as [::1]:PORT)"},
    {"unix-socket-dir", "DIR", 'u', "also listen on DIR/.s.PGSQL.<port> (libpq host=DIR)"},
    {"no-tcp", NULL, 'T', "only the unix socket"},
    {"user", "NAME:PASSWORD:METHOD", 'U',
     "a role (repeatable); METHOD is trust, password, md5\n"
     "or scram-sha-256 (default postgres:postgres:scram-sha-256).\n"
     "A role named postgres is a superuser. The password is\n"
     "visible in `ps`: prefer --user-file or PGFAULT_USERS."},
    {"user-file", "FILE", 'P',
     "roles, one NAME:PASSWORD:METHOD per line ('#' comments);\n"
     "FILE must not be readable by group or others (chmod 600)"},
    {"database", "NAME", 'd', "accept only these databases (repeatable; default any)"},
    {"max-connections", "N", 'm', "beyond N: FATAL 53300 (default unlimited)"},
    {"threads", "N|cores", 'j',
     "event loops: one accepts, all serve (default 1; cores = one\n"
     "per core; docs/server-threads.md)"},
    {"seed", "N|random", 's', "seed for keys, salts, nonces and faults (default 1)"},
    {"faults", "FILE", 'F', "fault rules (YAML, docs/faults.md)"},
    {"fault-log", "FILE", 'O', "append every fired fault as a JSON line"},
    {"control", "HOST:PORT", 'C', "serve the HTTP control API (`pgfault faults`) there"},
    {"allow-remote-control", NULL, 'R', "let --control listen on a non-loopback address"},
    {"log-level", "LEVEL", 'L', "error, warn, info, debug, trace (default warn)"},
    {"quiet", NULL, 'q', "do not print the listening lines"},
    {"history", "FILE", 'H',
     "write the server's view (connections, queries, faults,\n"
     "with client address, pid, application_name) as a\n"
     "history for `pgfault check --server-history`"},
    {"answers", "FILE", 'A',
     "canned answers (YAML) for the application's own\n"
     "statements (docs/introspection.md)"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row faults_cmds[] = {
    {"list", NULL, 0, "the installed rules (JSON)"},
    {"get NAME", NULL, 0, "one rule"},
    {"add FILE_OR_JSON", NULL, 0, "add rules from a YAML/JSON file, or inline JSON ('{...}')"},
    {"update NAME JSON", NULL, 0, "merge JSON keys into a rule (null removes a key)"},
    {"remove NAME", NULL, 0, "delete a rule"},
    {"reset", NULL, 0,
     "back to healthy: remove all rules, clear their counters, resume\n"
     "accepting (after down); coverage and log are kept"},
    {"stats | log | coverage | version", NULL, 0,
     "the server's counters, fault log, coverage, version"},
    {"down | up", NULL, 0, "stop / resume accepting connections"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row faults_opts[] = {
    {"control", "HOST:PORT", 'c',
     "control API address (default $PGFAULT_CONTROL or " PGF_CLI_DEFAULT_CONTROL ")"},
    {"timeout", "MS", 't', "per-request timeout (default 5000)"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row run_opts[] = {
    {"scenario", "NAME", 'S', "a built-in scenario by name (repeatable)"},
    {"list", NULL, 'l', "list the built-in scenarios and exit"},
    {"json", NULL, 'J', "with --list: the list as JSON (name, description, mode, seed, sessions)"},
    {"seed", "N", 's', "override the seed (same seed + sim mode = same history)"},
    {"mode", "sim|stress", 'm', "override the mode"},
    {"sessions", "N", 'n', "override workload.sessions"},
    {"iterations", "N", 'i', "override workload.iterations"},
    {"duration", "MS", 'd', "override workload.duration_ms (e.g. a short soak in CI)"},
    {"threads", "N", 't', "override workload.threads (stress mode)"},
    {"bugs", "LIST", 'b', "turn on deliberate session-manager bugs (comma list)"},
    {"out", "DIR", 'o', "where reports go (default out/)"},
    {"shrink", NULL, 'k', "on failure, search a smaller reproduction (sim mode)"},
    {"fail-fast", NULL, 'F', "stop a run at its first violation, and the suite after it"},
    {"no-check", NULL, 'N', "record and check nothing (to measure their overhead)"},
    {"history-zstd", NULL, 'Z', "write history.jsonl.zst (zstd) instead of history.jsonl"},
    {"shard", "K/N", 'K', "run only shard K of N (1-based) of the scenarios (docs/soak.md)"},
    {"spec", "FILE", 'P', "an adapter target's state machine (docs/adapter-protocol.md)"},
    {"explain", NULL, 'e', "print the resolved scenarios, defaults included, and exit"},
    {"quiet", NULL, 'q', "nothing on stdout"},
    {"log-level", "LEVEL", 'L', "error, warn, info, debug, trace"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row check_opts[] = {
    {"spec", "FILE", 0,
     "spec JSON (`pgfault spec --format json`); default: the spec embedded\n"
     "in the history's meta line, else the compiled-in one if this build\n"
     "has the session module"},
    {"json", NULL, 0, "print the result as JSON on stdout"},
    {"witness", "N", 0,
     "at most N records per witness (default " STR(PGF_CHECK_WITNESS_DEFAULT) ")"},
    {"digest", NULL, 0,
     "also print the history's determinism digest (SHA-256, wall\n"
     "times excluded)"},
    {"server-history", "SERVER.jsonl", 0,
     "the history of `pgfault serve --history`: link HISTORY's health\n"
     "results that name a backend_pid (or client_port) to the faults on\n"
     "that connection; a misclassified one counts as a violation"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row proxy_opts[] = {
    {"upstream", "ADDR", 'U',
     "the real server: HOST:PORT, [V6]:PORT, a unix socket\n"
     "directory or a .s.PGSQL.N socket file (required)"},
    {"upstream-port", "N", 'P', "port of the socket in a directory (default 5432)"},
    {"connect-timeout", "MS", 't',
     "upstream connect deadline (default 5000); past it,\n"
     "or when refused, the client gets FATAL 57P03"},
    {"listen", "HOST:PORT", 'l',
     "TCP address (repeatable; default 127.0.0.1:6432;\n"
     "port 0 picks a free port)"},
    {"unix-socket-dir", "DIR", 'u', "also listen on DIR/.s.PGSQL.<port>"},
    {"no-tcp", NULL, 'T', "only the unix socket"},
    {"faults", "FILE", 'F', "fault rules (YAML, docs/faults.md)"},
    {"fault-log", "FILE", 'O',
     "append every fired fault and upstream failure as a JSON\n"
     "line with client, application_name, upstream_pid, wall_time"},
    {"control", "HOST:PORT", 'C', "serve the HTTP control API (`pgfault faults`) there"},
    {"allow-remote-control", NULL, 'R', "let --control listen on a non-loopback address"},
    {"seed", "N", 's', "seed for fault decisions (default 1)"},
    {"log-level", "LEVEL", 'L', "error, warn, info, debug, trace (default warn)"},
    {"quiet", NULL, 'q', "do not print the listening lines"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row merge_opts[] = {
    {"out", "DIR", 0, "where the merged report.json, junit.xml and report.html go"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row spec_opts[] = {
    {"format", "json|yaml|dot", 0, "output format (default json)"},
    {"output", "FILE", 0, "write to FILE instead of stdout"},
    {NULL, NULL, 0, NULL},
};

static const pgf__cli_row url_opts[] = {
    {"check", NULL, 0,
     "also connect and run SELECT 1 with the settings as the service gets\n"
     "them (DATABASE_URL: as libpq parses it), printing the classified health"},
    {"as-url", NULL, 0,
     "with --check: connect with the URL a service pastes together from the\n"
     "settings (postgresql://USER:PASSWORD@HOST:PORT/DB, unencoded)"},
    {"timeout", "MS", 0, "the --check deadline"},
    {NULL, NULL, 0, NULL},
};

const pgf__cli_usage pgf__cli_usages[] = {
    {"serve", "[OPTIONS]",
     "Run a fake PostgreSQL 15 server that real clients (libpq, psql, pgbench,\n"
     "psycopg, asyncpg, ...) accept, until SIGINT or SIGTERM (then exit 0).\n"
     "Prints one line per listener on stdout, e.g.\n"
     "  listening tcp 127.0.0.1:54320\n"
     "  listening unix /tmp/pg/.s.PGSQL.54320",
     NULL, serve_opts, "0 stopped by a signal, 2 bad usage or fault rules, 3 cannot listen"},
    {"proxy", "--upstream HOST:PORT|SOCKETDIR [OPTIONS]",
     "Sit between PostgreSQL clients and a real PostgreSQL, frame both directions\n"
     "by message and apply the same fault rules as `pgfault serve`, at the same\n"
     "protocol phases (docs/proxy.md). Authentication passes through (SCRAM end to\n"
     "end); SSLRequest is answered 'N' and the upstream is plaintext; BackendKeyData\n"
     "passes through unchanged and CancelRequests are forwarded; an unreachable\n"
     "upstream gives the client FATAL 57P03. Runs until SIGINT or SIGTERM.\n"
     "Prints, e.g.\n"
     "  listening tcp 127.0.0.1:6432\n"
     "  upstream 127.0.0.1:5432",
     NULL, proxy_opts, "0 stopped by a signal, 2 bad usage or fault rules, 3 cannot listen"},
    {"faults", "[--control HOST:PORT] [--timeout MS] COMMAND [ARGS]",
     "Read and change the fault rules of a running `pgfault serve --control` through its\n"
     "HTTP control API.",
     faults_cmds, faults_opts,
     "0 ok, 2 bad usage or rejected request, 3 server unreachable or failed"},
    {"run", "[SCENARIO.yaml ...] [OPTIONS]",
     "Run scenarios against the embedded fake server (or an external one): many\n"
     "concurrent health checks through the session manager while faults fire and\n"
     "racers call close/cancel, then check the history for illegal transitions.\n"
     "With no scenario, runs the built-in suite (scenarios/*.yaml).\n"
     "\n"
     "Outputs in DIR: history.jsonl, faults.jsonl, report.json, junit.xml, report.html\n"
     "(a suite puts each scenario's history in DIR/NAME/).",
     NULL, run_opts,
     "0 all checks passed, 1 violations or failed expectations, 2 invalid\n"
     "scenario or usage, 3 the harness itself failed"},
    {"replay", "OUT/report.json [run options]",
     "Re-run the scenarios recorded in a report, with the same seed and mode. Takes the\n"
     "options of `pgfault run`.",
     NULL, run_opts,
     "0 all checks passed, 1 violations or failed expectations, 2 invalid\n"
     "report or usage, 3 the harness itself failed"},
    {"check",
     "HISTORY.jsonl|RUN_DIR [--spec FILE] [--json] [--witness N] [--digest] [--server-history "
     "FILE]",
     "Check a recorded history (docs/history-format.md; '-' reads stdin; a run's --out\n"
     "directory checks the history.jsonl or history.jsonl.zst in it) against the\n"
     "session state-machine spec and report every violation, with the first one of each\n"
     "session and the records that led to it.",
     NULL, check_opts,
     "0 no violations, 1 violations, 2 bad usage or malformed input,\n"
     "3 internal failure"},
    {"merge", "SHARD_DIR... --out DIR",
     "Combine the output directories of `pgfault run --shard K/N` (one per shard, all N of\n"
     "them) into one report.json, junit.xml and report.html; every scenario keeps its\n"
     "shard and replay command (docs/soak.md). Refused, with the file named and nothing\n"
     "written: a truncated, changed or reordered history or report, a shard of another\n"
     "pgfault version, spec or split, an index given twice or missing.",
     NULL, merge_opts,
     "0 every check passed, 1 violations or failed expectations, 2 bad usage or\n"
     "bad input, 3 internal failure"},
    {"spec", "[--format json|yaml|dot] [--output FILE]",
     "Print the session manager's declared state machine: states, operations\n"
     "(from/to/during/preempts) and every legal transition. json and yaml follow\n"
     "the checker's spec format (version 1); dot is the docs diagram\n"
     "(docs/state-machine.dot is this output).",
     NULL, spec_opts, "0 ok, 2 bad usage, 3 cannot write"},
    {"url", "[--check [--as-url]] [--timeout MS]",
     "Resolve the connection settings a service would use, from (highest first)\n"
     "DATABASE_URL, POSTGRES_HOST/POSTGRES_PORT/POSTGRES_DB/POSTGRES_USER/\n"
     "POSTGRES_PASSWORD, then libpq's PG* variables; print them (password shown\n"
     "as ****) and the equivalent URLs:\n"
     "  libpq     postgresql://...          (psql, libpq, psycopg)\n"
     "  asyncpg   postgresql+asyncpg://...  (SQLAlchemy async)\n"
     "  psycopg2  postgresql+psycopg2://... (SQLAlchemy sync)\n"
     "Mistakes libpq accepts silently are reported on stderr: POSTGRES_HOST=db:5432\n"
     "(a port in the host), a raw '@' (or '/', '?', '#') in DATABASE_URL's password,\n"
     "a password that a URL must percent-encode (shown encoded, masked).",
     NULL, url_opts, "0 ok, 1 --check unhealthy, 2 missing/invalid settings or an error above"},
    {NULL, NULL, NULL, NULL, NULL, NULL},
};

const pgf__cli_usage *pgf__cli_usage_find(const char *name)
{
    for (const pgf__cli_usage *u = pgf__cli_usages; u->name != NULL; u++)
        if (strcmp(u->name, name) == 0)
            return u;
    return NULL;
}

/* Print `text`, continuation lines indented by `indent` columns. */
static void print_indented(FILE *f, const char *text, int indent)
{
    for (const char *p = text; *p != '\0'; p++) {
        fputc(*p, f);
        if (*p == '\n')
            fprintf(f, "%*s", indent, "");
    }
    fputc('\n', f);
}

static void print_rows(FILE *f, const char *title, const pgf__cli_row *rows, int is_opt)
{
    if (rows == NULL)
        return;
    enum { COL = 24 };
    fprintf(f, "\n%s:\n", title);
    for (const pgf__cli_row *r = rows; r->name != NULL; r++) {
        char term[128];
        snprintf(term, sizeof term, "%s%s%s%s", is_opt ? "--" : "", r->name, r->arg ? " " : "",
                 r->arg ? r->arg : "");
        if ((int)strlen(term) + 4 > COL) /* at least two spaces before the help */
            fprintf(f, "  %s\n%*s", term, COL, "");
        else
            fprintf(f, "  %-*s", COL - 2, term);
        print_indented(f, r->help, COL);
    }
    if (is_opt)
        fprintf(f, "  %-*s%s\n", COL - 2, "-h, --help", "this text");
}

void pgf__cli_usage_print(FILE *f, const char *name)
{
    const pgf__cli_usage *u = pgf__cli_usage_find(name);
    if (u == NULL)
        return;
    fprintf(f, "usage: pgfault %s %s\n\n%s\n", u->name, u->synopsis, u->description);
    print_rows(f, "commands", u->cmds, 0);
    print_rows(f, "options", u->opts, 1);
    fprintf(f, "\nexit codes: ");
    print_indented(f, u->exit_codes, 12);
}

int pgf__cli_longopts(const char *name, struct option *out, size_t n)
{
    const pgf__cli_usage *u = pgf__cli_usage_find(name);
    size_t k = 0;
    if (u == NULL)
        return -1;
    for (const pgf__cli_row *r = u->opts; r != NULL && r->name != NULL; r++) {
        if (k + 3 > n) /* this row, --help, the terminator */
            return -1;
        out[k++] = (struct option){r->name, r->arg ? required_argument : no_argument, NULL, r->val};
    }
    if (k + 2 > n)
        return -1;
    out[k++] = (struct option){"help", no_argument, NULL, 'h'};
    out[k] = (struct option){NULL, 0, NULL, 0};
    return 0;
}
