/* httpc.h - a minimal blocking HTTP client for the control API (evhttp).
 *
 * Used by `pgfault faults` and by the tests. It runs libevent's evhttp
 * client on an event_base until the response arrives or the deadline
 * passes. Passing the base the control API is served on makes a
 * single-threaded round trip possible (the tests do that).
 * Not a general HTTP client: no redirects, no TLS, no chunked uploads.
 */
#ifndef PGF_FAULT_HTTPC_H
#define PGF_FAULT_HTTPC_H

#include <stddef.h>

#include "pgfault/err.h"

struct event_base;

typedef struct pgf_http_response {
    int status; /* HTTP status (200, 400, ...) */
    char *body; /* NUL-terminated; caller frees with free() */
    size_t len;
} pgf_http_response;

/* METHOD ("GET", "POST", "DELETE"; "PUT", "PATCH" for tests) PATH on "HOST:PORT" with an optional
 * JSON body. base NULL = a private base. Returns 0 with *resp filled (any HTTP status),
 * PGF_ECONNECT when the server cannot be reached, PGF_ETIMEDOUT after timeout_ms; err names the
 * address. */
int pgf_http_request(struct event_base *base, const char *hostport, const char *method,
                     const char *path, const char *body, int timeout_ms, pgf_http_response *resp,
                     char *err, size_t errlen) PGF_NODISCARD;
void pgf_http_response_clear(pgf_http_response *r);

#endif
