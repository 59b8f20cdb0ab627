/* classify.c - what health-check reason an injected fault predicts.
 *
 * Kept as data so the table in docs/history-format.md and this one are the
 * same rows: match on the fault's action and, for "error", on a SQLSTATE
 * prefix (first match wins). A fault that predicts nothing (delay, drip,
 * bandwidth, garbage, half-close, an error with another SQLSTATE) is not
 * checked: its effect depends on timeouts and the client. A fault record's
 * own `reason` field overrides this table (the checker does that).
 */
#include <stddef.h>
#include <string.h>

#include "pgfault/check.h"

static const struct {
    const char *action;
    const char *sqlstate_prefix; /* NULL = any */
    const char *reason;
} predictions[] = {
    {"auth-fail", NULL, "auth_failed"},
    {"error", "28", "auth_failed"}, /* 28P01 invalid_password, 28000 invalid_authorization */
    {"error", "53300", "too_many_connections"},
    {"error", "57P01", "shutting_down"},  /* admin_shutdown */
    {"error", "57P02", "shutting_down"},  /* crash_shutdown (a WARNING, then EOF) */
    {"error", "57P03", "shutting_down"},  /* cannot_connect_now */
    {"error", "57014", "canceled"},       /* query_canceled */
    {"error", "08P01", "protocol_error"}, /* protocol_violation */
    {"error", "3D000", "server_error"},   /* invalid_catalog_name: a wrong database */
    {"close", NULL, "connection_lost"},
    {"reset", NULL, "connection_lost"},
    {"truncate", NULL, "connection_lost"},
    {"refuse", NULL, "connection_lost"},
    {"stall", NULL, "timeout"},
};

const char *pgf_check_predict_reason(const char *action, const char *sqlstate)
{
    if (action == NULL)
        return NULL;
    for (size_t i = 0; i < sizeof predictions / sizeof predictions[0]; i++) {
        if (strcmp(predictions[i].action, action) != 0)
            continue;
        const char *p = predictions[i].sqlstate_prefix;
        if (p != NULL && (sqlstate == NULL || strncmp(sqlstate, p, strlen(p)) != 0))
            continue;
        return predictions[i].reason;
    }
    return NULL;
}
