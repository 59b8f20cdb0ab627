/* cmd_faults.c - `pgfault faults`: talk to a running server's control API.
 *
 * A thin HTTP client (fakes/fault/httpc.h) over the endpoints in
 * fakes/fault/control.h. Rule files are validated locally first, so a typo
 * is reported with file:line:col before anything is sent. Exit codes: 0 ok,
 * 2 bad usage or a request the server rejected (4xx), 3 the server cannot
 * be reached or failed (5xx).
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "usage.h"
#include "httpc.h"
#include "pgfault/rules.h"

static void usage(FILE *f)
{
    pgf__cli_usage_print(f, "faults");
}

/* Pretty-print a JSON body (or pass it through when it is not JSON). */
static void print_body(const char *body)
{
    json_t *j = json_loads(body, JSON_DECODE_ANY, NULL);
    if (j == NULL) {
        fputs(body, stdout);
        return;
    }
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    json_decref(j);
    if (s != NULL)
        printf("%s\n", s);
    free(s);
}

static int call(const char *control, int timeout_ms, const char *method, const char *path,
                const char *body)
{
    char err[512];
    pgf_http_response r;
    int rc = pgf_http_request(NULL, control, method, path, body, timeout_ms, &r, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "pgfault faults: %s\n", err);
        return rc == PGF_EINVAL ? PGF_EXIT_USAGE : PGF_EXIT_INTERNAL;
    }
    int ret = PGF_EXIT_OK;
    if (r.status >= 200 && r.status < 300) {
        if (r.len > 0)
            print_body(r.body);
    } else {
        json_t *j = json_loads(r.body, 0, NULL);
        const char *msg = json_string_value(json_object_get(j, "error"));
        fprintf(stderr, "pgfault faults: %s %s: HTTP %d: %s\n", method, path, r.status,
                msg ? msg : r.body);
        json_decref(j);
        ret = r.status >= 500 ? PGF_EXIT_INTERNAL : PGF_EXIT_USAGE;
    }
    pgf_http_response_clear(&r);
    return ret;
}

/* The request body for `add`: inline JSON as given, or a file validated
 * here and sent as a JSON array of canonical rules. */
static char *add_body(const char *arg)
{
    size_t i = 0;
    while (arg[i] == ' ' || arg[i] == '\t' || arg[i] == '\n')
        i++;
    if (arg[i] == '{' || arg[i] == '[')
        return strdup(arg);
    char err[1024];
    pgf_fault_rules *rs = pgf_fault_rules_parse_file(arg, err, sizeof err);
    if (rs == NULL) {
        fprintf(stderr, "pgfault faults: %s\n", err);
        return NULL;
    }
    char *s = pgf_fault_rules_to_json(rs);
    pgf_fault_rules_free(rs);
    return s;
}

/* Percent-encode a rule name for the path (names are [A-Za-z0-9._-] but be safe). */
static void path_for(char *buf, size_t len, const char *name)
{
    size_t o = (size_t)snprintf(buf, len, "/rules/");
    for (; *name && o + 4 < len; name++) {
        unsigned char ch = (unsigned char)*name;
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '-' || ch == '_' || ch == '.')
            buf[o++] = (char)ch;
        else
            o += (size_t)snprintf(buf + o, len - o, "%%%02X", ch);
    }
    buf[o] = '\0';
}

int pgf_cmd_faults(int argc, char **argv)
{
    const char *control = getenv("PGFAULT_CONTROL");
    if (control == NULL || control[0] == '\0')
        control = PGF_CLI_DEFAULT_CONTROL;
    int timeout_ms = 5000;
    struct option opts[8];
    if (pgf__cli_longopts("faults", opts, sizeof opts / sizeof opts[0]) != 0)
        return PGF_EXIT_INTERNAL;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, "+c:t:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            control = optarg;
            break;
        case 't': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end != '\0' || v <= 0 || v > 3600000) {
                fprintf(stderr, "pgfault faults: --timeout must be 1..3600000 ms\n");
                return PGF_EXIT_USAGE;
            }
            timeout_ms = (int)v;
            break;
        }
        case 'h':
            usage(stdout);
            return PGF_EXIT_OK;
        default:
            usage(stderr);
            return PGF_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return PGF_EXIT_USAGE;
    }
    const char *cmd = argv[optind];
    int nargs = argc - optind - 1;
    char **args = argv + optind + 1;
    char path[512];

    struct simple {
        const char *cmd, *method, *path;
    } simple[] = {
        {"list", "GET", "/rules"},        {"reset", "POST", "/reset"},
        {"stats", "GET", "/stats"},       {"log", "GET", "/log"},
        {"coverage", "GET", "/coverage"}, {"version", "GET", "/version"},
        {"down", "POST", "/down"},        {"up", "POST", "/up"},
    };
    for (size_t i = 0; i < sizeof simple / sizeof simple[0]; i++) {
        if (strcmp(cmd, simple[i].cmd) != 0)
            continue;
        if (nargs != 0) {
            fprintf(stderr, "pgfault faults: '%s' takes no arguments\n", cmd);
            return PGF_EXIT_USAGE;
        }
        return call(control, timeout_ms, simple[i].method, simple[i].path, NULL);
    }
    if (strcmp(cmd, "get") == 0 || strcmp(cmd, "remove") == 0) {
        if (nargs != 1) {
            fprintf(stderr, "pgfault faults: '%s' needs a rule NAME\n", cmd);
            return PGF_EXIT_USAGE;
        }
        path_for(path, sizeof path, args[0]);
        return call(control, timeout_ms, cmd[0] == 'g' ? "GET" : "DELETE", path, NULL);
    }
    if (strcmp(cmd, "update") == 0) {
        if (nargs != 2) {
            fprintf(stderr, "pgfault faults: 'update' needs NAME and a JSON object\n");
            return PGF_EXIT_USAGE;
        }
        path_for(path, sizeof path, args[0]);
        return call(control, timeout_ms, "POST", path, args[1]);
    }
    if (strcmp(cmd, "add") == 0) {
        if (nargs != 1) {
            fprintf(stderr, "pgfault faults: 'add' needs a rule file or inline JSON\n");
            return PGF_EXIT_USAGE;
        }
        char *body = add_body(args[0]);
        if (body == NULL)
            return PGF_EXIT_USAGE;
        int rc = call(control, timeout_ms, "POST", "/rules", body);
        free(body);
        return rc;
    }
    fprintf(stderr, "pgfault faults: unknown command '%s'\n", cmd);
    usage(stderr);
    return PGF_EXIT_USAGE;
}
