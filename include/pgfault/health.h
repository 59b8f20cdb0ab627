/* health.h - classified outcomes of opening and checking a connection.
 *
 * Every failed open/check/cancel carries a pgf_health: a reason from one
 * table (PGF_HEALTH_REASON_MAP), the connect sub-phase or session state
 * where it happened, the SQLSTATE when the server sent one, and libpq's
 * message (first line, never a password). Classification reads
 * PQresultErrorField(PG_DIAG_SQLSTATE) when a result exists, and libpq's
 * error text during connect (where libpq keeps no result: docs/postgres15-facts.md §5,
 * §10); the texts are the untranslated C-locale ones.
 *
 * This is the pure part (a table and functions over it, no I/O); the
 * synchronous one-shot check is pgf_health_check() in healthcheck.h, and
 * pools run the same check asynchronously (pool.h). Auth failures are not retried in a tight loop:
 * pgf_backoff_ns() gives the capped exponential delay with full jitter
 * that the pool applies (pool.h).
 */
#ifndef PGF_HEALTH_H
#define PGF_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/err.h"
#include "pgfault/rng.h"

/* X(NAME, "name", PGF error code, doc) */
#define PGF_HEALTH_REASON_MAP(X)                                                                 \
    X(HEALTHY, "healthy", 0, "connected and the check query succeeded")                          \
    X(AUTH_FAILED, "auth_failed", PGF_EAUTH, "28P01/28000, or libpq had no password to send")    \
    X(UNREACHABLE, "unreachable", PGF_ECONNECT,                                                  \
      "connection refused, host not found, no socket file")                                      \
    X(TIMEOUT, "timeout", PGF_ETIMEDOUT, "a deadline expired (phase says which)")                \
    X(SERVER_ERROR, "server_error", PGF_ESERVER, "the server reported an error (SQLSTATE kept)") \
    X(CONNECTION_LOST, "connection_lost", PGF_EIO, "EOF/RST from the server (phase says when)")  \
    X(CANCELED, "canceled", PGF_ECANCELED, "canceled or closed by the caller (or 57014)")        \
    X(TOO_MANY_CONNECTIONS, "too_many_connections", PGF_ESERVER, "53300")                        \
    X(SHUTTING_DOWN, "shutting_down", PGF_ESERVER, "57P01/57P02/57P03: server going away")       \
    X(PROTOCOL_ERROR, "protocol_error", PGF_EPROTO, "the server's bytes made no sense to libpq") \
    X(CONFIG_ERROR, "config_error", PGF_EINVAL, "libpq rejected the connection parameters")

typedef enum pgf_health_reason {
#define PGF__HR_ENUM(name, str, code, doc) PGF_HEALTH_##name,
    PGF_HEALTH_REASON_MAP(PGF__HR_ENUM)
#undef PGF__HR_ENUM
        PGF_HEALTH_REASON_COUNT
} pgf_health_reason;

typedef struct pgf_health {
    bool healthy;
    pgf_health_reason reason;
    char phase[32];    /* "auth", "params", "query", ... ("" when healthy) */
    char sqlstate[6];  /* "28P01" or "" */
    char message[256]; /* libpq's text, first line; "" when healthy */
} pgf_health;

const char *pgf_health_reason_name(pgf_health_reason r);
int pgf_health_reason_parse(const char *s); /* or -1 */
/* The PGF_E* code a failure with this reason completes with (0 for HEALTHY). */
int pgf_health_reason_err(pgf_health_reason r);

/* Classify a failure. `sqlstate` (may be NULL/"") wins when present;
 * otherwise libpq's error text is matched against the known messages.
 * `phase` names where it happened. Fills *h (never healthy). */
void pgf_health_classify(const char *sqlstate, const char *libpq_message, const char *phase,
                         pgf_health *h);
void pgf_health_set_ok(pgf_health *h);
/* "unhealthy: auth_failed in auth (28P01): FATAL:  password ..." */
void pgf_health_format(const pgf_health *h, char *buf, size_t len);

/* Backoff before retry number `attempt` (0-based): full jitter in
 * [0, min(cap, base * 2^attempt)], drawn from r, so a run is replayable
 * from its seed. */
uint64_t pgf_backoff_ns(uint64_t base_ns, uint64_t cap_ns, unsigned attempt, pgf_rng *r);

#endif
