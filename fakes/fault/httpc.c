/* httpc.c - blocking request/response over libevent's evhttp client.
 *
 * One connection per request, run on the given base (or a private one)
 * until the response or the error callback fires, bounded by a timeout
 * that evhttp enforces. Not here: retries, redirects, TLS.
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/clock.h"
#include "pgfault/control.h"
#include "httpc.h"

struct call {
    bool done;
    int status;
    enum evhttp_request_error error;
    bool failed;
    char *body;
    size_t len;
};

static void on_done(struct evhttp_request *req, void *arg)
{
    struct call *c = arg;
    c->done = true;
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        c->failed = true;
        return;
    }
    c->status = evhttp_request_get_response_code(req);
    struct evbuffer *b = evhttp_request_get_input_buffer(req);
    size_t n = evbuffer_get_length(b);
    c->body = malloc(n + 1);
    if (c->body == NULL) {
        c->failed = true;
        return;
    }
    evbuffer_remove(b, c->body, n);
    c->body[n] = '\0';
    c->len = n;
}

static void on_error(enum evhttp_request_error e, void *arg)
{
    struct call *c = arg;
    c->error = e;
    c->failed = true;
    c->done = true;
}

int pgf_http_request(struct event_base *base, const char *hostport, const char *method,
                     const char *path, const char *body, int timeout_ms, pgf_http_response *resp,
                     char *err, size_t errlen)
{
    char host[256];
    int port, rc = PGF_ECONNECT;
    memset(resp, 0, sizeof *resp);
    if (pgf_fault_split_hostport(hostport, host, sizeof host, &port) != 0 || port == 0) {
        snprintf(err, errlen, "'%s' is not HOST:PORT", hostport ? hostport : "(null)");
        return PGF_EINVAL;
    }
    enum evhttp_cmd_type cmd;
    if (strcmp(method, "GET") == 0)
        cmd = EVHTTP_REQ_GET;
    else if (strcmp(method, "POST") == 0)
        cmd = EVHTTP_REQ_POST;
    else if (strcmp(method, "DELETE") == 0)
        cmd = EVHTTP_REQ_DELETE;
    else if (strcmp(method, "PUT") == 0)
        cmd = EVHTTP_REQ_PUT;
    else if (strcmp(method, "PATCH") == 0)
        cmd = EVHTTP_REQ_PATCH;
    else {
        snprintf(err, errlen, "unsupported method %s", method);
        return PGF_EINVAL;
    }
    struct event_base *own = NULL;
    if (base == NULL) {
        base = own = event_base_new();
        if (base == NULL) {
            snprintf(err, errlen, "out of memory");
            return PGF_ENOMEM;
        }
    }
    struct call call = {0};
    struct evhttp_connection *conn =
        evhttp_connection_base_new(base, NULL, host, (unsigned short)port);
    struct evhttp_request *req = conn ? evhttp_request_new(on_done, &call) : NULL;
    if (req == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = PGF_ENOMEM;
        goto out;
    }
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    evhttp_connection_set_timeout_tv(conn, &tv);
    evhttp_connection_set_retries(conn, 0);
    evhttp_request_set_error_cb(req, on_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", hostport);
    evhttp_add_header(h, "Connection", "close");
    if (body != NULL) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add(evhttp_request_get_output_buffer(req), body, strlen(body));
    }
    uint64_t t0 = pgf_now_ns();
    if (evhttp_make_request(conn, req, cmd, path) != 0) {
        snprintf(err, errlen, "cannot reach pgfault control at %s: request failed", hostport);
        goto out; /* evhttp freed req */
    }
    while (!call.done)
        if (event_base_loop(base, EVLOOP_ONCE) < 0)
            break;
    if (!call.done || call.failed) {
        const char *why = "connection failed";
        rc = PGF_ECONNECT;
        /* libevent reports a failed connect() as a timeout too: tell them
         * apart by the time it took. */
        bool slow = pgf_now_ns() - t0 >= PGF_MS_NS(timeout_ms) * 9 / 10;
        if (call.done && call.error == EVREQ_HTTP_TIMEOUT && slow) {
            why = "timed out";
            rc = PGF_ETIMEDOUT;
        } else if (call.done && call.error == EVREQ_HTTP_EOF) {
            why = "connection closed before a response";
        } else if (call.done) {
            why = "connection refused or failed (is the server running with --control?)";
        }
        snprintf(err, errlen, "cannot reach pgfault control at %s: %s", hostport, why);
        free(call.body);
        goto out;
    }
    resp->status = call.status;
    resp->body = call.body;
    resp->len = call.len;
    rc = 0;
out:
    if (conn != NULL)
        evhttp_connection_free(conn);
    if (own != NULL)
        event_base_free(own);
    return rc;
}

void pgf_http_response_clear(pgf_http_response *r)
{
    free(r->body);
    r->body = NULL;
    r->len = 0;
}
