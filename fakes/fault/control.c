/* control.c - the HTTP control API (see control.h for the endpoints).
 *
 * Runs on the caller's event_base (the server's loop). Every edit builds a
 * complete new rule set from JSON - the current rules' canonical JSON plus
 * or minus the change - and runs it through the same validator as a YAML
 * file; only a set that validates is swapped in, so a bad request changes
 * nothing. Not here: the listener (hooks), the decisions (engine.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <inttypes.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "pgfault/accept_guard.h"
#include "pgfault/control.h"
#include "pgfault/faultlog.h"
#include "pgfault/rules.h"
#include "pgfault/version.h"

struct pgf_fault_control {
    struct evhttp *http;
    pgf_fault_engine *e;
    pgf_fault_control_hooks hooks;
    struct evconnlistener *listener;
    pgf_accept_guard *guard;
    pgf_fault_control *next_guarded;
};

/* Controls with a listener, to find the guard from the listener in the
 * accept error callback (its argument belongs to evhttp). */
static pthread_mutex_t guarded_mu = PTHREAD_MUTEX_INITIALIZER;
static pgf_fault_control *guarded;

static bool guard_register(pgf_fault_control *c)
{
    pthread_mutex_lock(&guarded_mu);
    c->next_guarded = guarded;
    guarded = c;
    pthread_mutex_unlock(&guarded_mu);
    return true;
}

static void guard_unregister(pgf_fault_control *c)
{
    pthread_mutex_lock(&guarded_mu);
    for (pgf_fault_control **p = &guarded; *p != NULL; p = &(*p)->next_guarded)
        if (*p == c) {
            *p = c->next_guarded;
            break;
        }
    pthread_mutex_unlock(&guarded_mu);
}

static void on_accept_error(struct evconnlistener *l, void *arg)
{
    (void)arg;
    pgf_accept_guard *g = NULL;
    pthread_mutex_lock(&guarded_mu);
    for (pgf_fault_control *c = guarded; c != NULL && g == NULL; c = c->next_guarded)
        if (c->listener == l)
            g = c->guard;
    pthread_mutex_unlock(&guarded_mu);
    if (g != NULL)
        pgf_accept_guard_on_error(g, l);
}

int pgf_fault_split_hostport(const char *addr, char *host, size_t hostlen, int *port)
{
    if (addr == NULL)
        return PGF_EINVAL;
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *rb = strchr(addr, ']');
        if (rb == NULL || rb[1] != ':')
            return PGF_EINVAL;
        h = addr + 1;
        hl = (size_t)(rb - h);
        colon = rb + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL)
            return PGF_EINVAL;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen)
        return PGF_EINVAL;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > 65535)
        return PGF_EINVAL;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

static bool is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (strcmp(host, "localhost") == 0)
        return true;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    if (inet_pton(AF_INET6, host, &a6) == 1)
        return IN6_IS_ADDR_LOOPBACK(&a6);
    return false;
}

/* ---- replies ------------------------------------------------------------ */

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *json)
{
    struct evbuffer *b = evbuffer_new();
    if (b == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    if (json != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        evbuffer_add(b, json, strlen(json));
        evbuffer_add(b, "\n", 1);
    }
    evhttp_send_reply(req, code, reason, b);
    evbuffer_free(b);
}

static void reply_json(struct evhttp_request *req, int code, const char *reason, json_t *j)
{
    char *s = j ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (s == NULL) {
        evhttp_send_error(req, 500, "out of memory");
        return;
    }
    reply_text(req, code, reason, s);
    free(s);
}

static void reply_error(struct evhttp_request *req, int code, const char *reason, const char *msg)
{
    json_t *o = json_object();
    json_object_set_new(o, "error", json_string(msg));
    reply_json(req, code, reason, o);
}

/* ---- rule-set edits --------------------------------------------------- */

static json_t *current_rules_array(pgf_fault_engine *e)
{
    pgf_fault_rules *rs = pgf_fault_engine_rules(e);
    char *s = pgf_fault_rules_to_json(rs);
    pgf_fault_rules_free(rs);
    json_t *a = s ? json_loads(s, 0, NULL) : NULL;
    free(s);
    return a;
}

/* Validate `arr` as a whole set and install it; 0, or 400 with err. */
static int install_array(pgf_fault_control *c, json_t *arr, char *err, size_t errlen)
{
    char *s = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return 500;
    }
    pgf_fault_rules *rs = pgf_fault_rules_parse_json(s, strlen(s), "request body", err, errlen);
    free(s);
    if (rs == NULL)
        return 400;
    pgf_fault_engine_set_rules(c->e, rs);
    return 0;
}

static int array_find(json_t *arr, const char *name)
{
    size_t i;
    json_t *r;
    json_array_foreach(arr, i, r)
    {
        const char *n = json_string_value(json_object_get(r, "name"));
        if (n != NULL && strcmp(n, name) == 0)
            return (int)i;
    }
    return -1;
}

static void rules_add(pgf_fault_control *c, struct evhttp_request *req, const char *body,
                      size_t len)
{
    char err[1024];
    /* Validate the new rules alone first, for messages about them. */
    pgf_fault_rules *add = pgf_fault_rules_parse_json(body, len, "request body", err, sizeof err);
    if (add == NULL) {
        reply_error(req, 400, "Bad Request", err);
        return;
    }
    json_t *doc = json_loadb(body, len, JSON_DECODE_ANY, NULL);
    bool single = json_is_object(doc) && json_object_get(doc, "rules") == NULL;
    json_t *items = single ? NULL : json_is_array(doc) ? doc : json_object_get(doc, "rules");
    size_t nitems = single ? 1 : json_array_size(items);
    for (size_t i = 0; i < nitems; i++) {
        json_t *r = single ? doc : json_array_get(items, i);
        if (!json_is_string(json_object_get(r, "name"))) {
            snprintf(err, sizeof err,
                     "request body: missing 'name' in rule %zu (rules added "
                     "through the API must be named)",
                     i + 1);
            json_decref(doc);
            pgf_fault_rules_free(add);
            reply_error(req, 400, "Bad Request", err);
            return;
        }
    }
    json_decref(doc);
    json_t *arr = current_rules_array(c->e);
    json_t *added = json_array();
    /* The names in use, hashed: one linear search per added rule was
     * quadratic for a bulk install of thousands. */
    json_t *names = json_object();
    size_t k;
    json_t *cur;
    json_array_foreach(arr, k, cur)
    {
        const char *n = json_string_value(json_object_get(cur, "name"));
        if (n != NULL)
            json_object_set_new(names, n, json_true());
    }
    int code = 0;
    for (size_t i = 0; arr && i < pgf_fault_rules_count(add); i++) {
        const char *name = pgf_fault_rules_name(add, i);
        if (json_object_get(names, name) != NULL) {
            snprintf(err, sizeof err, "rule '%s' already exists (update it with POST /rules/%s)",
                     name, name);
            code = 409;
            break;
        }
        json_t *r = json_loads(pgf_fault_rules_rule_json(add, i), 0, NULL);
        json_array_append(arr, r);
        json_array_append_new(added, r);
    }
    if (arr == NULL) {
        code = 500;
        snprintf(err, sizeof err, "out of memory");
    }
    if (code == 0)
        code = install_array(c, arr, err, sizeof err);
    json_decref(arr);
    json_decref(names);
    pgf_fault_rules_free(add);
    if (code != 0) {
        json_decref(added);
        reply_error(req, code, code == 409 ? "Conflict" : "Bad Request", err);
        return;
    }
    if (single) {
        json_t *one = json_incref(json_array_get(added, 0));
        json_decref(added);
        reply_json(req, 201, "Created", one);
    } else {
        reply_json(req, 201, "Created", added);
    }
}

static void rule_one(pgf_fault_control *c, struct evhttp_request *req, const char *name,
                     const char *body, size_t len)
{
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    char err[1024];
    if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_DELETE && m != EVHTTP_REQ_POST) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST, DELETE");
        reply_error(req, 405, "Method Not Allowed", "use GET, POST or DELETE on /rules/NAME");
        return;
    }
    json_t *arr = current_rules_array(c->e);
    if (arr == NULL) {
        reply_error(req, 500, "Internal Server Error", "out of memory");
        return;
    }
    int i = array_find(arr, name);
    if (i < 0) {
        snprintf(err, sizeof err, "no rule named '%s'", name);
        reply_error(req, 404, "Not Found", err);
        goto out;
    }
    if (m == EVHTTP_REQ_GET) {
        reply_json(req, 200, "OK", json_incref(json_array_get(arr, (size_t)i)));
    } else if (m == EVHTTP_REQ_DELETE) {
        json_array_remove(arr, (size_t)i);
        int code = install_array(c, arr, err, sizeof err);
        if (code != 0)
            reply_error(req, code, "Bad Request", err);
        else
            reply_text(req, 204, "No Content", NULL);
    } else if (m == EVHTTP_REQ_POST) {
        json_error_t je;
        json_t *patch = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        if (patch == NULL || !json_is_object(patch)) {
            if (patch == NULL)
                snprintf(err, sizeof err, "request body:%d:%d: invalid JSON: %s", je.line,
                         je.column, je.text);
            else
                snprintf(err, sizeof err, "request body: an update must be a JSON object");
            json_decref(patch);
            reply_error(req, 400, "Bad Request", err);
            goto out;
        }
        json_t *rule = json_deep_copy(json_array_get(arr, (size_t)i));
        const char *k;
        json_t *v;
        json_object_foreach(patch, k, v)
        {
            if (strcmp(k, "name") == 0 &&
                !(json_is_string(v) && strcmp(json_string_value(v), name) == 0)) {
                snprintf(err, sizeof err,
                         "request body: 'name' cannot be changed by an update (delete and add)");
                json_decref(patch);
                json_decref(rule);
                reply_error(req, 400, "Bad Request", err);
                goto out;
            }
            if (json_is_null(v))
                json_object_del(rule, k);
            else
                json_object_set(rule, k, v);
        }
        json_decref(patch);
        json_array_set(arr, (size_t)i, rule);
        int code = install_array(c, arr, err, sizeof err);
        if (code != 0) {
            json_decref(rule);
            reply_error(req, code, "Bad Request", err);
            goto out;
        }
        /* answer with the canonical form of what was installed */
        pgf_fault_rules *rs = pgf_fault_engine_rules(c->e);
        int at = pgf_fault_rules_find(rs, name);
        json_t *canon = at >= 0 ? json_loads(pgf_fault_rules_rule_json(rs, (size_t)at), 0, NULL)
                                : json_incref(rule);
        pgf_fault_rules_free(rs);
        json_decref(rule);
        reply_json(req, 200, "OK", canon);
    } else {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, POST, DELETE");
        reply_error(req, 405, "Method Not Allowed", "use GET, POST or DELETE on /rules/NAME");
    }
out:
    json_decref(arr);
}

/* ---- dispatch ----------------------------------------------------------- */

static json_t *seed_json(uint64_t seed)
{
    if (seed <= (uint64_t)INT64_MAX)
        return json_integer((json_int_t)seed);
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRIu64, seed);
    return json_string(buf);
}

static const char *method_name(enum evhttp_cmd_type m)
{
    switch (m) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    }
    return "?";
}

static void handle(struct evhttp_request *req, void *arg)
{
    pgf_fault_control *c = arg;
    enum evhttp_cmd_type m = evhttp_request_get_command(req);
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
    if (path == NULL || path[0] == '\0')
        path = "/";
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    const char *body = len ? (const char *)evbuffer_pullup(in, -1) : "";
    bool get = m == EVHTTP_REQ_GET, post = m == EVHTTP_REQ_POST;

    if (strcmp(path, "/version") == 0 && get) {
        json_t *o = json_object();
        json_object_set_new(o, "version", json_string(PGF_VERSION));
        json_object_set_new(o, "seed", seed_json(pgf_fault_engine_seed(c->e)));
        reply_json(req, 200, "OK", o);
    } else if (strcmp(path, "/rules") == 0 && get) {
        reply_json(req, 200, "OK", current_rules_array(c->e));
    } else if (strcmp(path, "/rules") == 0 && post) {
        rules_add(c, req, body, len);
    } else if (strncmp(path, "/rules/", 7) == 0 && path[7] != '\0') {
        char *name = evhttp_uridecode(path + 7, 0, NULL);
        if (name == NULL) {
            reply_error(req, 500, "Internal Server Error", "out of memory");
            return;
        }
        rule_one(c, req, name, body, len);
        free(name);
    } else if (strcmp(path, "/reset") == 0 && post) {
        /* Back to a healthy server: no rules, and listening again if /down
         * stopped it. Coverage and the log are history and stay. */
        pgf_fault_engine_reset(c->e);
        if (c->hooks.set_listening != NULL &&
            (c->hooks.is_listening == NULL || !c->hooks.is_listening(c->hooks.arg))) {
            int rc = c->hooks.set_listening(c->hooks.arg, true);
            if (rc != 0) {
                char err[256];
                snprintf(err, sizeof err, "rules cleared, but cannot resume the listener: %s",
                         pgf_strerror(rc));
                reply_error(req, 500, "Internal Server Error", err);
                return;
            }
        }
        reply_text(req, 204, "No Content", NULL);
    } else if (strcmp(path, "/stats") == 0 && get) {
        json_t *o = json_object();
        pgf_fault_rules *rs = pgf_fault_engine_rules(c->e);
        json_object_set_new(o, "seed", seed_json(pgf_fault_engine_seed(c->e)));
        json_object_set_new(o, "rules", json_integer((json_int_t)pgf_fault_rules_count(rs)));
        pgf_fault_rules_free(rs);
        json_object_set_new(o, "faults_fired",
                            json_integer((json_int_t)pgf_fault_engine_fired(c->e)));
        json_object_set_new(o, "log_events", json_integer((json_int_t)pgf_fault_log_count(c->e)));
        if (c->hooks.is_listening)
            json_object_set_new(o, "listening", json_boolean(c->hooks.is_listening(c->hooks.arg)));
        if (c->hooks.stats_json) {
            char *s = c->hooks.stats_json(c->hooks.arg);
            json_t *sj = s ? json_loads(s, 0, NULL) : NULL;
            free(s);
            if (sj != NULL)
                json_object_set_new(o, "server", sj);
        }
        reply_json(req, 200, "OK", o);
    } else if (strcmp(path, "/log") == 0 && get) {
        uint64_t since = 0;
        if (query != NULL) {
            struct evkeyvalq q;
            if (evhttp_parse_query_str(query, &q) != 0) {
                reply_error(req, 400, "Bad Request", "malformed query string");
                return;
            }
            const char *s = evhttp_find_header(&q, "since");
            char *end = NULL;
            errno = 0;
            if (s != NULL)
                since = strtoull(s, &end, 10);
            if (s != NULL && (*s < '0' || *s > '9' || *end != '\0' || errno != 0)) {
                char msg[200];
                snprintf(msg, sizeof msg,
                         "since=%.80s: expected a sequence number (a non-negative integer, "
                         "the 'seq' of the last event you have)",
                         s);
                evhttp_clear_headers(&q);
                reply_error(req, 400, "Bad Request", msg);
                return;
            }
            evhttp_clear_headers(&q);
        }
        char *s = pgf_fault_log_json(c->e, since);
        if (s == NULL)
            reply_error(req, 500, "Internal Server Error", "out of memory");
        else
            reply_text(req, 200, "OK", s);
        free(s);
    } else if (strcmp(path, "/coverage") == 0 && get) {
        char *s = pgf_fault_coverage_json(c->e);
        if (s == NULL)
            reply_error(req, 500, "Internal Server Error", "out of memory");
        else
            reply_text(req, 200, "OK", s);
        free(s);
    } else if ((strcmp(path, "/down") == 0 || strcmp(path, "/up") == 0) && post) {
        bool up = strcmp(path, "/up") == 0;
        if (c->hooks.set_listening == NULL) {
            reply_error(req, 501, "Not Implemented", "this server cannot toggle its listener");
            return;
        }
        int rc = c->hooks.set_listening(c->hooks.arg, up);
        if (rc != 0) {
            char err[256];
            snprintf(err, sizeof err, "cannot %s the listener: %s", up ? "resume" : "stop",
                     pgf_strerror(rc));
            reply_error(req, 500, "Internal Server Error", err);
            return;
        }
        json_t *o = json_object();
        json_object_set_new(o, "listening", json_boolean(up));
        reply_json(req, 200, "OK", o);
    } else {
        static const char *const known[] = {"/version", "/rules",    "/reset", "/stats",
                                            "/log",     "/coverage", "/down",  "/up"};
        bool exists = strncmp(path, "/rules/", 7) == 0;
        for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
            exists = exists || strcmp(path, known[i]) == 0;
        char msg[300];
        if (exists) {
            snprintf(msg, sizeof msg, "method %s not allowed on %.200s", method_name(m), path);
            evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
                              strncmp(path, "/rules", 6) == 0 ? "GET, POST, DELETE"
                              : strcmp(path, "/reset") == 0 || strcmp(path, "/down") == 0 ||
                                      strcmp(path, "/up") == 0
                                  ? "POST"
                                  : "GET");
            reply_error(req, 405, "Method Not Allowed", msg);
        } else {
            snprintf(msg, sizeof msg, "no such endpoint: %.200s", path);
            reply_error(req, 404, "Not Found", msg);
        }
    }
}

int pgf_fault_control_start(pgf_fault_control **out, struct event_base *base, pgf_fault_engine *e,
                            const char *addr, bool allow_nonloopback,
                            const pgf_fault_control_hooks *hooks, char *err, size_t errlen)
{
    char host[256];
    int port;
    *out = NULL;
    if (pgf_fault_split_hostport(addr, host, sizeof host, &port) != 0) {
        snprintf(err, errlen, "control address '%s' must be HOST:PORT (e.g. 127.0.0.1:8474)",
                 addr ? addr : "(null)");
        return PGF_EINVAL;
    }
    if (!allow_nonloopback && !is_loopback(host)) {
        snprintf(err, errlen,
                 "control address '%s' is not loopback; the control API has no authentication, "
                 "allow it explicitly to bind there",
                 addr);
        return PGF_EINVAL;
    }
    pgf_fault_control *c = calloc(1, sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    c->e = e;
    if (hooks != NULL)
        c->hooks = *hooks;
    c->http = evhttp_new(base);
    if (c->http == NULL) {
        snprintf(err, errlen, "cannot create the HTTP server");
        goto fail;
    }
    evhttp_set_max_body_size(c->http, 1 << 20);
    evhttp_set_max_headers_size(c->http, 16 << 10);
    /* Every method reaches handle(), which answers 405 with JSON (libevent
     * itself would answer 501 with HTML). */
    evhttp_set_allowed_methods(c->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                            EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                            EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    /* A connection that sends nothing (or stops half-way) is closed after
     * this long, so silent clients cannot use up the process's fds. */
    pgf_fault_control_set_idle_timeout(c, PGF_FAULT_CONTROL_IDLE_TIMEOUT_MS);
    evhttp_set_gencb(c->http, handle, c);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(c->http, host, (uint16_t)port);
    if (bs == NULL) {
        snprintf(err, errlen, "cannot bind the control API to %s: %s", addr, strerror(errno));
        goto fail_bind;
    }
    /* Out of fds: back off instead of spinning (accept_guard.h). The error
     * callback gets evhttp's argument, so the guard is found by listener. */
    c->guard = pgf_accept_guard_new(base, "[control]", NULL, NULL);
    c->listener = evhttp_bound_socket_get_listener(bs);
    if (c->guard == NULL || !guard_register(c)) {
        snprintf(err, errlen, "out of memory");
        goto fail_bind;
    }
    evconnlistener_set_error_cb(c->listener, on_accept_error);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl) != 0) {
        snprintf(err, errlen, "getsockname: %s", strerror(errno));
        goto fail_bind;
    }
    int bound = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *out = c;
    return bound;
fail_bind:
    guard_unregister(c);
    evhttp_free(c->http);
    pgf_accept_guard_free(c->guard);
    free(c);
    return PGF_EBIND;
fail:
    if (c->http)
        evhttp_free(c->http);
    free(c);
    return PGF_ENOMEM;
}

void pgf_fault_control_free(pgf_fault_control *c)
{
    if (c == NULL)
        return;
    guard_unregister(c);
    evhttp_free(c->http);
    pgf_accept_guard_free(c->guard);
    free(c);
}

void pgf_fault_control_set_idle_timeout(pgf_fault_control *c, unsigned ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    evhttp_set_timeout_tv(c->http, &tv);
}
