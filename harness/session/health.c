/* health.c - failure classification and backoff: pure functions over one
 * table, no I/O and no session (the one-shot check that drives a session
 * is healthcheck.c, a layer above). The libpq texts matched below are the
 * exact C-locale messages recorded from libpq 15 / PostgreSQL 15
 * (docs/postgres15-facts.md §1, §5, §6, §10); SQLSTATE, when libpq gives
 * one, always wins. */
#include "pgfault/health.h"

#include <stdio.h>
#include <string.h>

#include "pgfault/enum_names.h"

#define HR_STR(name, str, code, doc) str,
PGF_ENUM_NAMES(pgf_health_reason, pgf_health_reason_name, pgf_health_reason_parse,
               PGF_HEALTH_REASON_COUNT, "?", PGF_HEALTH_REASON_MAP(HR_STR))
#undef HR_STR

static const int reason_errs[PGF_HEALTH_REASON_COUNT] = {
#define HR_ERR(name, str, code, doc) code,
    PGF_HEALTH_REASON_MAP(HR_ERR)
#undef HR_ERR
};

int pgf_health_reason_err(pgf_health_reason r)
{
    return (unsigned)r < PGF_HEALTH_REASON_COUNT ? reason_errs[r] : PGF_EINTERNAL;
}

void pgf_health_set_ok(pgf_health *h)
{
    memset(h, 0, sizeof *h);
    h->healthy = true;
    h->reason = PGF_HEALTH_HEALTHY;
}

/* SQLSTATE -> reason. Exact codes first, then classes. */
static pgf_health_reason by_sqlstate(const char *ss)
{
    static const struct {
        const char *code;
        pgf_health_reason reason;
    } exact[] = {
        {"28P01", PGF_HEALTH_AUTH_FAILED},
        {"28000", PGF_HEALTH_AUTH_FAILED},
        {"53300", PGF_HEALTH_TOO_MANY_CONNECTIONS},
        {"57P01", PGF_HEALTH_SHUTTING_DOWN},
        {"57P02", PGF_HEALTH_SHUTTING_DOWN},
        {"57P03", PGF_HEALTH_SHUTTING_DOWN},
        {"57014", PGF_HEALTH_CANCELED},
        {"08P01", PGF_HEALTH_PROTOCOL_ERROR},
    };
    for (size_t i = 0; i < sizeof exact / sizeof exact[0]; i++)
        if (strcmp(ss, exact[i].code) == 0)
            return exact[i].reason;
    if (strncmp(ss, "08", 2) == 0)
        return PGF_HEALTH_CONNECTION_LOST;
    return PGF_HEALTH_SERVER_ERROR;
}

/* libpq text -> reason (and the SQLSTATE the server sent, which libpq does
 * not expose during connect). First match wins; order matters. */
static const struct text_rule {
    const char *needle;
    pgf_health_reason reason;
    const char *sqlstate;
} text_rules[] = {
    {"password authentication failed", PGF_HEALTH_AUTH_FAILED, "28P01"},
    {"no password supplied", PGF_HEALTH_AUTH_FAILED, ""},
    {"is not permitted to log in", PGF_HEALTH_AUTH_FAILED, "28000"},
    {"no PostgreSQL user name specified", PGF_HEALTH_AUTH_FAILED, "28000"},
    {"authentication failed for user", PGF_HEALTH_AUTH_FAILED, "28000"},
    {"no pg_hba.conf entry", PGF_HEALTH_AUTH_FAILED, "28000"},
    {"sorry, too many clients already", PGF_HEALTH_TOO_MANY_CONNECTIONS, "53300"},
    {"too many connections for", PGF_HEALTH_TOO_MANY_CONNECTIONS, "53300"},
    {"remaining connection slots are reserved", PGF_HEALTH_TOO_MANY_CONNECTIONS, "53300"},
    {"terminating connection due to administrator command", PGF_HEALTH_SHUTTING_DOWN, "57P01"},
    {"terminating connection due to immediate shutdown", PGF_HEALTH_SHUTTING_DOWN, "57P01"},
    {"terminating connection because of crash", PGF_HEALTH_SHUTTING_DOWN, "57P02"},
    {"the database system is shutting down", PGF_HEALTH_SHUTTING_DOWN, "57P03"},
    {"the database system is starting up", PGF_HEALTH_SHUTTING_DOWN, "57P03"},
    {"the database system is in recovery mode", PGF_HEALTH_SHUTTING_DOWN, "57P03"},
    {"canceling statement due to user request", PGF_HEALTH_CANCELED, "57014"},
    /* 'role "x" does not exist' is 28000; checked after the texts above */
    {"\" does not exist", PGF_HEALTH_SERVER_ERROR, "3D000"},
    {"Connection refused", PGF_HEALTH_UNREACHABLE, ""},
    {"No such file or directory", PGF_HEALTH_UNREACHABLE, ""},
    {"could not translate host name", PGF_HEALTH_UNREACHABLE, ""},
    {"Network is unreachable", PGF_HEALTH_UNREACHABLE, ""},
    {"No route to host", PGF_HEALTH_UNREACHABLE, ""},
    {"could not connect to server", PGF_HEALTH_UNREACHABLE, ""},
    {"timeout expired", PGF_HEALTH_TIMEOUT, ""},
    {"server closed the connection unexpectedly", PGF_HEALTH_CONNECTION_LOST, ""},
    {"Connection reset by peer", PGF_HEALTH_CONNECTION_LOST, ""},
    {"Broken pipe", PGF_HEALTH_CONNECTION_LOST, ""},
    {"no connection to the server", PGF_HEALTH_CONNECTION_LOST, ""},
    {"connection freed by close", PGF_HEALTH_CONNECTION_LOST, ""},
    {"expected authentication request from server", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"invalid frontend message type", PGF_HEALTH_PROTOCOL_ERROR, "08P01"},
    {"not supported", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"invalid message", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"unexpected message", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"lost synchronization", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"server does not support SSL", PGF_HEALTH_PROTOCOL_ERROR, ""},
    {"invalid connection option", PGF_HEALTH_CONFIG_ERROR, ""},
    {"invalid sslmode value", PGF_HEALTH_CONFIG_ERROR, ""},
    {"invalid port number", PGF_HEALTH_CONFIG_ERROR, ""},
    {"invalid integer value", PGF_HEALTH_CONFIG_ERROR, ""},
    {"out of memory", PGF_HEALTH_SERVER_ERROR, ""},
};

void pgf_health_classify(const char *sqlstate, const char *msg, const char *phase, pgf_health *h)
{
    memset(h, 0, sizeof *h);
    h->healthy = false;
    snprintf(h->phase, sizeof h->phase, "%s", phase != NULL ? phase : "");
    snprintf(h->message, sizeof h->message, "%s", msg != NULL ? msg : "");
    if (sqlstate != NULL && sqlstate[0] != '\0') {
        snprintf(h->sqlstate, sizeof h->sqlstate, "%s", sqlstate);
        h->reason = by_sqlstate(sqlstate);
        return;
    }
    const char *m = msg != NULL ? msg : "";
    /* A role that does not exist is an auth failure (28000), a database
     * that does not exist a server error (3D000): same suffix. */
    if (strstr(m, "FATAL:  role \"") != NULL && strstr(m, "\" does not exist") != NULL) {
        h->reason = PGF_HEALTH_AUTH_FAILED;
        snprintf(h->sqlstate, sizeof h->sqlstate, "28000");
        return;
    }
    for (size_t i = 0; i < sizeof text_rules / sizeof text_rules[0]; i++) {
        if (strstr(m, text_rules[i].needle) != NULL) {
            h->reason = text_rules[i].reason;
            snprintf(h->sqlstate, sizeof h->sqlstate, "%s", text_rules[i].sqlstate);
            return;
        }
    }
    /* Any other FATAL/ERROR text came from the server. */
    if (strstr(m, "FATAL:") != NULL || strstr(m, "ERROR:") != NULL)
        h->reason = PGF_HEALTH_SERVER_ERROR;
    else
        h->reason = PGF_HEALTH_CONNECTION_LOST;
}

void pgf_health_format(const pgf_health *h, char *buf, size_t len)
{
    if (h->healthy) {
        snprintf(buf, len, "healthy");
        return;
    }
    snprintf(buf, len, "unhealthy: %s in %s%s%s%s: %s", pgf_health_reason_name(h->reason),
             h->phase[0] ? h->phase : "?", h->sqlstate[0] ? " (" : "", h->sqlstate,
             h->sqlstate[0] ? ")" : "", h->message);
}

uint64_t pgf_backoff_ns(uint64_t base_ns, uint64_t cap_ns, unsigned attempt, pgf_rng *r)
{
    uint64_t ceil = base_ns;
    for (unsigned i = 0; i < attempt && ceil < cap_ns; i++)
        ceil = ceil > cap_ns / 2 ? cap_ns : ceil * 2;
    if (ceil > cap_ns)
        ceil = cap_ns;
    return pgf_rng_below(r, ceil + 1);
}
