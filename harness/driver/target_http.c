/* target_http.c - see target_http.h. The order of one run:
 *
 *   fake server (own thread) -> free PORT -> service started with the
 *   server's coordinates -> GET until it answers at all (ready) -> fault
 *   rules on -> `sessions` clients GET the health URL `iterations` times
 *   (think time, duration, faults_after) -> rules off -> recovery probes
 *   -> quiet period -> count the server's open connections -> SIGTERM
 *   (SIGKILL after the grace) -> scan the service's output for traces.
 *
 * Everything on this side runs on one event_base (evhttp client requests,
 * a 50 ms sampler of the server's counters and of the service's liveness);
 * the fault hook runs on the server thread and only touches atomics and
 * the recorder. Real time only: sim mode's virtual clock cannot make an
 * external process wait.
 */
#include "target_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <netinet/in.h>
#include <regex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgfault/clock.h"
#include "pgfault/config.h"
#include "pgfault/log.h"
#include "pgfault/proxy.h"
#include "pgfault/rules.h"
#include "service.h"
#include "wire_checks.h"

extern char **environ;

/* ------------------------------------------------------------------ */
/* results                                                             */

typedef struct resp {
    uint64_t t0, t1; /* since run start */
    unsigned client;
    int status; /* 0 = no HTTP response */
    char what[32];
    char reason[64]; /* the body's `reason` / `status` field */
    char body[200];
} resp;

typedef struct sample {
    uint64_t t;
    uint64_t logins;
    uint64_t auth_failed;
} sample;

typedef struct tgt tgt;

typedef struct client {
    tgt *t;
    unsigned idx;
    unsigned iter;
    struct evhttp_connection *conn;
    struct event *think;
    uint64_t t0;
    char what[32];
    bool done;
    bool probe;        /* a one-off probe (ready wait, recovery) */
    bool probe_record; /* recovery probes are responses of the run */
    int probe_status;
} client;

struct tgt {
    const pgf_scenario *sc;
    const pgf_target *tg;
    const pgf_driver_opts *o;
    pgf_run *res;
    struct event_base *base;
    pgf__tsrv ts;
    pgf_service svc;
    bool svc_started;
    char port[16];
    char url[1024];
    struct evhttp_uri *uri;
    char host[256];
    int hport;
    char path[1024];
    uint64_t start_ns;
    uint64_t load_end_ns; /* duration deadline (0 = none) */
    unsigned active;
    client *clients;
    resp *resps;
    size_t nresps, capresps;
    sample *samples;
    size_t nsamples, capsamples;
    struct event *sampler;
    struct event *rotate;
    atomic_uint_fast64_t last_fault_ns;  /* +1, 0 = none */
    atomic_uint_fast64_t first_28p01_ns; /* +1, 0 = none */
    atomic_uint_fast64_t faults;
    uint64_t died_at_ns; /* +1 */
    volatile sig_atomic_t *stop;
    bool interrupted;
    pgf_target_result *out;
    pgf__wire *wire;
};

static uint64_t now_rel(tgt *t)
{
    return pgf_now_ns() - t->start_ns;
}

/* A witness line on a check: at most 64, of up to 1023 characters. */
#define witness(c, ...) pgf__target_witness((c), 64, 1024, __VA_ARGS__)

pgf_target_check *pgf__target_check_add(pgf_target_result *r, const char *name, bool passed,
                                        const char *kind, const char *fmt, ...)
{
    pgf_target_check *p = realloc(r->checks, (r->n + 1) * sizeof *p);
    if (p == NULL)
        return NULL;
    r->checks = p;
    pgf_target_check *c = &p[r->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->name, sizeof c->name, "%s", name);
    c->passed = passed;
    snprintf(c->kind, sizeof c->kind, "%s", passed ? "" : kind);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->msg, sizeof c->msg, fmt, ap);
    va_end(ap);
    return c;
}

void pgf__target_witness(pgf_target_check *c, size_t max, size_t linelen, const char *fmt, ...)
{
    if (c == NULL || c->nwitness >= max)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, linelen < sizeof line ? linelen : sizeof line, fmt, ap);
    va_end(ap);
    char **p = realloc(c->witness, (c->nwitness + 1) * sizeof *p);
    if (p == NULL)
        return;
    c->witness = p;
    if ((p[c->nwitness] = strdup(line)) != NULL)
        c->nwitness++;
}

void pgf_target_result_free(pgf_target_result *r)
{
    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        for (size_t k = 0; k < r->checks[i].nwitness; k++)
            free(r->checks[i].witness[k]);
        free(r->checks[i].witness);
    }
    free(r->checks);
    free(r);
}

static bool in_list(const int *l, int n, int v)
{
    for (int i = 0; i < n; i++)
        if (l[i] == v)
            return true;
    return false;
}

/* ------------------------------------------------------------------ */
/* the server side: fault hook and counters                           */

static void on_fault(void *arg, const struct pgf_fault_ctx *ctx, int phase,
                     const struct pgf_fault_action *a)
{
    tgt *t = arg;
    uint64_t now = now_rel(t) + 1;
    atomic_store(&t->last_fault_ns, now);
    atomic_fetch_add(&t->faults, 1);
    bool is_28p01 = a->kind == PGF_ACTION_AUTH_FAIL ||
                    (a->sqlstate != NULL && strcmp(a->sqlstate, "28P01") == 0);
    uint_fast64_t zero = 0;
    if (is_28p01)
        atomic_compare_exchange_strong(&t->first_28p01_ns, &zero, now);
    if (t->o == NULL || !t->o->no_record)
        pgf_recorder_fault(t->res->rec, ctx->conn_id, -1, (pgf_phase)phase, a, ctx->elapsed_ns);
}

static void take_sample(tgt *t)
{
    uint64_t logins, refused;
    pgf__tsrv_logins(&t->ts, t->wire, &logins, &refused);
    if (t->nsamples == t->capsamples) {
        size_t cap = t->capsamples ? t->capsamples * 2 : 256;
        sample *p = realloc(t->samples, cap * sizeof *p);
        if (p == NULL)
            return;
        t->samples = p;
        t->capsamples = cap;
    }
    t->samples[t->nsamples++] = (sample){now_rel(t), logins, refused};
    if (t->svc_started && t->died_at_ns == 0 && pgf_service_poll(&t->svc))
        t->died_at_ns = now_rel(t) + 1;
    if (t->stop != NULL && *t->stop && !t->interrupted) {
        t->interrupted = true;
        event_base_loopbreak(t->base);
    }
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    take_sample(arg);
}

static void on_rotate(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_run *res = arg;
    pgf_fault_engine_set_rules(res->engine, pgf_fault_rules_ref(res->sc->rules2));
}

struct event *pgf__target_rotate_new(struct event_base *base, pgf_run *res)
{
    const pgf_scenario *sc = res->sc;
    struct event *ev = evtimer_new(base, on_rotate, res);
    struct timeval tv = {(time_t)(sc->rules2_at_ms / 1000),
                         (suseconds_t)(sc->rules2_at_ms % 1000) * 1000};
    if (ev)
        evtimer_add(ev, &tv);
    return ev;
}

int pgf__target_run_open(pgf_run *res, const pgf_scenario *sc, const pgf_driver_opts *o,
                         uint64_t *t0, struct event_base **base, pgf__wire **wire, char *err,
                         size_t errlen)
{
    res->sc = sc;
    res->start_wall_us = pgf_wall_us();
    *t0 = pgf_now_ns();
    res->rec = pgf_recorder_new(NULL, *t0);
    res->engine = pgf_fault_engine_new(sc->seed);
    *base = event_base_new();
    if (res->rec == NULL || res->engine == NULL || *base == NULL) {
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    int e;
    if (o != NULL && o->faults_log_path != NULL &&
        (e = pgf_fault_log_open(res->engine, o->faults_log_path, 0, err, errlen)) != 0)
        return e;
    *wire = pgf__wire_new(*t0);
    if (*wire == NULL) {
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    return 0;
}

/* server.proxy: the fault proxy in front of the real database, listening
 * where the fake would (TCP on a free loopback port, the unix socket
 * directory when asked); the same fault hook and wire observer. The
 * service gets the proxy's address, never the upstream's. */
static int start_proxy(pgf__tsrv *ts, const pgf_scenario *sc, const char *udir,
                       pgf_fault_engine *engine, pgf_server_fault_fn on_fault_fn, void *arg,
                       pgf__wire *wire, char *err, size_t errlen)
{
    static const char *const tcp[] = {"127.0.0.1:0"};
    pgf_proxy_config cfg = {0};
    cfg.listen = tcp;
    cfg.nlisten = 1;
    cfg.unix_socket_dir = udir;
    cfg.unix_port = udir != NULL ? 5432 : 0;
    cfg.upstream = sc->proxy_upstream;
    cfg.upstream_port = sc->proxy_upstream_port;
    cfg.connect_timeout_ms = sc->proxy_connect_timeout_ms;
    cfg.faults = engine;
    cfg.quiet = true;
    cfg.on_fault = on_fault_fn;
    cfg.on_fault_arg = arg;
    if (wire != NULL) {
        cfg.on_conn = pgf__wire_on_conn;
        cfg.on_conn_arg = wire;
    }
    int e = pgf_proxy_new(&cfg, NULL, &ts->proxy, err, errlen);
    if (e == 0)
        e = pgf_proxy_start_thread(ts->proxy, err, errlen);
    if (e != 0)
        return e;
    if (udir != NULL) {
        snprintf(ts->pghost, sizeof ts->pghost, "%s", udir);
        snprintf(ts->pgport, sizeof ts->pgport, "5432");
    } else {
        snprintf(ts->pghost, sizeof ts->pghost, "127.0.0.1");
        snprintf(ts->pgport, sizeof ts->pgport, "%d", pgf_proxy_port(ts->proxy));
    }
    return 0;
}

void pgf__tsrv_logins(const pgf__tsrv *ts, pgf__wire *wire, uint64_t *logins, uint64_t *refused)
{
    *logins = *refused = 0;
    if (ts->server != NULL) {
        pgf_server_stats st;
        pgf_server_get_stats(ts->server, &st);
        *logins = st.auth_ok + st.auth_failed;
        *refused = st.auth_failed;
    } else if (wire != NULL) {
        pgf__wire_login_counts(wire, logins, refused);
    }
}

void pgf__tsrv_final_stats(const pgf__tsrv *ts, pgf_run *res)
{
    if (ts->server != NULL)
        pgf_server_get_stats(ts->server, &res->server);
    if (ts->proxy != NULL) {
        pgf_proxy_stats ps;
        pgf_proxy_get_stats(ts->proxy, &ps);
        res->proxy_sessions = ps.sessions;
        res->proxy_upstream_failures = ps.upstream_failures;
    }
}

void pgf__tsrv_describe(const pgf__tsrv *ts, const pgf_scenario *sc, char *out, size_t len)
{
    if (ts->proxy == NULL) {
        snprintf(out, len, "%s:%s", ts->pghost, ts->pgport);
        return;
    }
    char masked[512];
    pgf_config_mask_url(sc->proxy_upstream, masked, sizeof masked);
    snprintf(out, len, "%s:%s (the fault proxy, upstream %s)", ts->pghost, ts->pgport, masked);
}

int pgf__tsrv_start(pgf__tsrv *ts, const pgf_scenario *sc, pgf_fault_engine *engine,
                    pgf_server_fault_fn on_fault_fn, void *arg, pgf__wire *wire, char *err,
                    size_t errlen)
{
    static const char *const tcp[] = {"127.0.0.1:0"};
    pgf_server_config cfg = {0};
    cfg.listen = tcp;
    cfg.nlisten = 1;
    char udir[512] = "";
    if (sc->unix_socket) {
        const char *tmp = getenv("TMPDIR");
        snprintf(ts->sockdir, sizeof ts->sockdir, "%s/pgfault-svc-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(ts->sockdir) == NULL) {
            snprintf(err, errlen, "cannot create a socket directory under %s",
                     tmp && *tmp ? tmp : "/tmp");
            ts->sockdir[0] = '\0';
            return PGF_EIO;
        }
        snprintf(udir, sizeof udir, "%s", ts->sockdir);
        if (sc->socket_subdir != NULL) {
            /* mkdir -p TMP/cloudsql/p:r:i, as Cloud SQL's proxy lays it out */
            char part[512];
            snprintf(part, sizeof part, "%s/%s", ts->sockdir, sc->socket_subdir);
            for (char *p = part + strlen(ts->sockdir) + 1; *p; p++) {
                if (*p != '/')
                    continue;
                *p = '\0';
                mkdir(part, 0700);
                *p = '/';
            }
            if (mkdir(part, 0700) != 0 && errno != EEXIST) {
                snprintf(err, errlen, "cannot create %s: %s", part, strerror(errno));
                return PGF_EIO;
            }
            snprintf(udir, sizeof udir, "%s", part);
        }
        cfg.unix_socket_dir = udir;
        cfg.unix_port = 5432;
    }
    if (sc->proxy_upstream != NULL)
        return start_proxy(ts, sc, cfg.unix_socket_dir, engine, on_fault_fn, arg, wire, err,
                           errlen);
    cfg.users = sc->users;
    cfg.nusers = sc->nusers;
    cfg.databases = (const char *const *)sc->databases;
    cfg.ndatabases = sc->ndatabases;
    cfg.max_connections = sc->max_connections;
    cfg.seed = sc->seed;
    cfg.faults = engine;
    cfg.quiet = true;
    cfg.on_fault = on_fault_fn;
    cfg.on_fault_arg = arg;
    if (wire != NULL) {
        cfg.on_conn = pgf__wire_on_conn;
        cfg.on_conn_arg = wire;
    }
    int e = pgf_server_new(&cfg, NULL, &ts->server, err, errlen);
    if (e == 0)
        e = pgf_server_start_thread(ts->server, err, errlen);
    if (e != 0)
        return e;
    if (sc->unix_socket) {
        snprintf(ts->pghost, sizeof ts->pghost, "%s", udir);
        snprintf(ts->pgport, sizeof ts->pgport, "5432");
    } else {
        snprintf(ts->pghost, sizeof ts->pghost, "127.0.0.1");
        snprintf(ts->pgport, sizeof ts->pgport, "%d", pgf_server_port(ts->server));
    }
    return 0;
}

void pgf__tsrv_stop(pgf__tsrv *ts, const pgf_scenario *sc)
{
    if (ts->server != NULL) {
        pgf_server_stop(ts->server);
        pgf_server_free(ts->server);
    }
    if (ts->proxy != NULL) {
        pgf_proxy_stop(ts->proxy);
        pgf_proxy_free(ts->proxy);
    }
    ts->proxy = NULL;
    if (ts->sockdir[0] != '\0') {
        /* the subdirectories made for socket_subdir, deepest first */
        if (sc->socket_subdir != NULL) {
            char part[512];
            snprintf(part, sizeof part, "%s/%s", ts->sockdir, sc->socket_subdir);
            while (strlen(part) > strlen(ts->sockdir)) {
                rmdir(part);
                char *sl = strrchr(part, '/');
                if (sl == NULL)
                    break;
                *sl = '\0';
            }
        }
        rmdir(ts->sockdir);
    }
    ts->server = NULL;
    ts->sockdir[0] = '\0';
}

/* ------------------------------------------------------------------ */
/* the service's environment                                           */

int pgf__free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* RFC 3986 userinfo / path-segment / query encoding: unreserved kept. */
static void pct(const char *s, char *out, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *s && k + 4 < len; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~') {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = '\0';
}

static const char *env_get(const pgf__envset *e, const char *key)
{
    size_t kl = strlen(key);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], key, kl) == 0 && e->v[i][kl] == '=')
            return e->v[i] + kl + 1;
    return NULL;
}

static int env_set(pgf__envset *e, const char *key, const char *val)
{
    size_t kl = strlen(key);
    char *kv = malloc(kl + strlen(val) + 2);
    if (kv == NULL)
        return PGF_ENOMEM;
    sprintf(kv, "%s=%s", key, val);
    for (size_t i = 0; i < e->n; i++)
        if (strncmp(e->v[i], key, kl) == 0 && e->v[i][kl] == '=') {
            free(e->v[i]);
            e->v[i] = kv;
            return 0;
        }
    if (e->n + 2 > e->cap) {
        size_t cap = e->cap ? e->cap * 2 : 64;
        char **p = realloc(e->v, cap * sizeof *p);
        if (p == NULL) {
            free(kv);
            return PGF_ENOMEM;
        }
        e->v = p;
        e->cap = cap;
    }
    e->v[e->n++] = kv;
    e->v[e->n] = NULL;
    return 0;
}

void pgf__envset_free(pgf__envset *e)
{
    for (size_t i = 0; i < e->n; i++)
        free(e->v[i]);
    free(e->v);
}

/* ${NAME} from the service's environment being built (PORT, POSTGRES_*),
 * then pgfault's own; an unknown name expands to "". */
void pgf__target_expand(const pgf__envset *e, const char *in, char *out, size_t len)
{
    size_t k = 0;
    while (*in && k + 1 < len) {
        const char *close = in[0] == '$' && in[1] == '{' ? strchr(in, '}') : NULL;
        if (close == NULL) {
            out[k++] = *in++;
            continue;
        }
        char name[128];
        snprintf(name, sizeof name, "%.*s", (int)(close - in - 2), in + 2);
        const char *v = env_get(e, name);
        if (v == NULL)
            v = getenv(name);
        for (; v && *v && k + 1 < len; v++)
            out[k++] = *v;
        in = close + 1;
    }
    out[k] = '\0';
}

int pgf__target_env(pgf__envset *e, const pgf_scenario *sc, const pgf__tsrv *ts, const char *port,
                    char *err, size_t errlen)
{
    const pgf_target *tg = &sc->target;
    static const char *const ours[] = {"PORT",         "POSTGRES_HOST", "POSTGRES_PORT",
                                       "POSTGRES_DB",  "POSTGRES_USER", "POSTGRES_PASSWORD",
                                       "DATABASE_URL", "PGHOST",        "PGPORT",
                                       "PGDATABASE",   "PGUSER",        "PGPASSWORD",
                                       "PGSERVICE",    "PGSERVICEFILE", "PGPASSFILE",
                                       "PGOPTIONS",    "PGSSLMODE"};
    int rc = 0;
    for (char **p = environ; *p && rc == 0; p++) {
        bool skip = false;
        for (size_t i = 0; i < sizeof ours / sizeof ours[0] && !skip; i++) {
            size_t kl = strlen(ours[i]);
            skip = strncmp(*p, ours[i], kl) == 0 && (*p)[kl] == '=';
        }
        const char *eq = strchr(*p, '=');
        if (skip || eq == NULL)
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(eq - *p), *p);
        rc = env_set(e, key, eq + 1);
    }
    const char *pw = sc->password ? sc->password : "";
    char u[256], p[512], d[256], h[1024], url[2300];
    pct(sc->user, u, sizeof u);
    pct(pw, p, sizeof p);
    pct(sc->database, d, sizeof d);
    if (sc->unix_socket) {
        pct(ts->pghost, h, sizeof h);
        snprintf(url, sizeof url, "postgresql://%s:%s@/%s?host=%s&port=%s", u, p, d, h, ts->pgport);
    } else {
        snprintf(url, sizeof url, "postgresql://%s:%s@%s:%s/%s", u, p, ts->pghost, ts->pgport, d);
    }
    if (rc == 0)
        rc = env_set(e, "PORT", port);
    if (rc == 0)
        rc = env_set(e, "POSTGRES_HOST", ts->pghost);
    if (rc == 0)
        rc = env_set(e, "POSTGRES_PORT", ts->pgport);
    if (rc == 0)
        rc = env_set(e, "POSTGRES_DB", sc->database);
    if (rc == 0)
        rc = env_set(e, "POSTGRES_USER", sc->user);
    if (rc == 0)
        rc = env_set(e, "POSTGRES_PASSWORD", pw);
    if (rc == 0)
        rc = env_set(e, "DATABASE_URL", url);
    if (rc == 0)
        rc = env_set(e, "PGHOST", ts->pghost);
    if (rc == 0)
        rc = env_set(e, "PGPORT", ts->pgport);
    if (rc == 0)
        rc = env_set(e, "PGDATABASE", sc->database);
    if (rc == 0)
        rc = env_set(e, "PGUSER", sc->user);
    if (rc == 0)
        rc = env_set(e, "PGPASSWORD", pw);
    for (int i = 0; i < tg->nenv && rc == 0; i++) {
        char v[4096];
        pgf__target_expand(e, tg->env_val[i], v, sizeof v);
        rc = env_set(e, tg->env_key[i], v);
    }
    if (rc != 0)
        snprintf(err, errlen, "out of memory building the service's environment");
    return rc;
}

/* ------------------------------------------------------------------ */
/* HTTP client                                                         */

static void client_next(client *c);

static void push_resp(tgt *t, const resp *r)
{
    if (t->nresps == t->capresps) {
        size_t cap = t->capresps ? t->capresps * 2 : 256;
        resp *p = realloc(t->resps, cap * sizeof *p);
        if (p == NULL)
            return;
        t->resps = p;
        t->capresps = cap;
    }
    t->resps[t->nresps++] = *r;
}

/* The verdict of one response, as a health reason name. */
static const char *verdict(const pgf_target *tg, const resp *r)
{
    if (r->status == 0)
        return r->what;
    if (in_list(tg->healthy_status, tg->nhealthy, r->status))
        return "ok";
    if (in_list(tg->unhealthy_status, tg->nunhealthy, r->status))
        return r->reason[0] && pgf_health_reason_parse(r->reason) >= 0 ? r->reason : "unhealthy";
    return r->status >= 500 ? "server_error" : "bad_status";
}

static pgf_health_reason outcome_of(const char *v)
{
    if (strcmp(v, "ok") == 0)
        return PGF_HEALTH_HEALTHY;
    int r = pgf_health_reason_parse(v);
    if (r >= 0)
        return (pgf_health_reason)r;
    if (strcmp(v, "unreachable") == 0 || strcmp(v, "refused") == 0)
        return PGF_HEALTH_UNREACHABLE;
    if (strcmp(v, "timeout") == 0)
        return PGF_HEALTH_TIMEOUT;
    if (strcmp(v, "unhealthy") == 0 || strcmp(v, "server_error") == 0)
        return PGF_HEALTH_SERVER_ERROR;
    return PGF_HEALTH_CONNECTION_LOST;
}

static void record_resp(tgt *t, resp *r)
{
    push_resp(t, r);
    pgf_run *res = t->res;
    const char *v = verdict(t->tg, r);
    pgf_health_reason o = outcome_of(v);
    res->checks++;
    res->outcomes[o]++;
    uint64_t ns = r->t1 - r->t0;
    if (pgf_lathist_add(&res->lat[o], ns) != 0)
        snprintf(res->harness_error, sizeof res->harness_error, "out of memory keeping latencies");
    if (t->o == NULL || !t->o->no_record) {
        char cause[400];
        if (r->status)
            snprintf(cause, sizeof cause, "GET %.200s -> %d in %.1f ms%s%s", t->path, r->status,
                     (double)ns / 1e6, r->reason[0] ? ": " : "", r->reason);
        else
            snprintf(cause, sizeof cause, "GET %.200s -> no response (%s) after %.1f ms", t->path,
                     r->what, (double)ns / 1e6);
        pgf_recorder_health(res->rec, (int64_t)r->client + 1, (int64_t)res->checks, v, cause);
    }
}

static void on_req_error(enum evhttp_request_error e, void *arg)
{
    client *c = arg;
    const char *w = "no_response";
    switch (e) {
    case EVREQ_HTTP_TIMEOUT:
        w = "timeout";
        break;
    case EVREQ_HTTP_EOF:
        w = "connection_lost";
        break;
    case EVREQ_HTTP_INVALID_HEADER:
    case EVREQ_HTTP_DATA_TOO_LONG:
        w = "bad_response";
        break;
    case EVREQ_HTTP_BUFFER_ERROR:
        w = "unreachable";
        break;
    case EVREQ_HTTP_REQUEST_CANCEL:
        w = "canceled";
        break;
    }
    snprintf(c->what, sizeof c->what, "%s", w);
}

static void body_reason(const char *body, size_t n, char *out, size_t len)
{
    out[0] = '\0';
    json_t *j = json_loadb(body, n, 0, NULL);
    if (j == NULL)
        return;
    json_t *v = json_object_get(j, "reason");
    if (!json_is_string(v))
        v = json_object_get(j, "status");
    if (json_is_string(v))
        snprintf(out, len, "%s", json_string_value(v));
    json_decref(j);
}

static void on_response(struct evhttp_request *req, void *arg)
{
    client *c = arg;
    tgt *t = c->t;
    resp r = {0};
    r.t0 = c->t0;
    r.t1 = now_rel(t);
    r.client = c->idx;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    r.status = code;
    snprintf(r.what, sizeof r.what, "%s", c->what[0] ? c->what : "no_response");
    if (code > 0) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        size_t n = evbuffer_get_length(in);
        char buf[4096];
        if (n > sizeof buf - 1)
            n = sizeof buf - 1;
        evbuffer_copyout(in, buf, n);
        buf[n] = '\0';
        body_reason(buf, n, r.reason, sizeof r.reason);
        /* one line of the body for witnesses */
        size_t k = 0;
        for (size_t i = 0; i < n && k + 1 < sizeof r.body; i++)
            r.body[k++] = buf[i] == '\n' || buf[i] == '\r' ? ' ' : buf[i];
        r.body[k] = '\0';
    }
    c->what[0] = '\0';
    if (c->probe) {
        c->probe_status = code > 0 ? code : -1;
        c->done = true;
        if (c->probe_record)
            record_resp(t, &r);
        event_base_loopbreak(t->base);
        return;
    }
    record_resp(t, &r);
    c->iter++;
    if (t->interrupted || (t->sc->iterations > 0 && c->iter >= t->sc->iterations) ||
        (t->load_end_ns > 0 && pgf_now_ns() >= t->load_end_ns)) {
        c->done = true;
        if (--t->active == 0)
            event_base_loopbreak(t->base);
        return;
    }
    struct timeval tv = {t->sc->think_ms / 1000, (t->sc->think_ms % 1000) * 1000};
    event_add(c->think, &tv);
}

static int send_get(client *c)
{
    tgt *t = c->t;
    if (c->conn == NULL) {
        c->conn = evhttp_connection_base_new(t->base, NULL, t->host, (ev_uint16_t)t->hport);
        if (c->conn == NULL)
            return PGF_ENOMEM;
        struct timeval tv = {t->tg->timeout_ms / 1000, (t->tg->timeout_ms % 1000) * 1000};
        evhttp_connection_set_timeout_tv(c->conn, &tv);
        evhttp_connection_set_retries(c->conn, 0);
    }
    struct evhttp_request *req = evhttp_request_new(on_response, c);
    if (req == NULL)
        return PGF_ENOMEM;
    evhttp_request_set_error_cb(req, on_req_error);
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", t->host);
    evhttp_add_header(h, "User-Agent", "pgfault");
    /* A fresh TCP connection per request: a keep-alive connection the
     * service closed while idle would otherwise count as its failure. */
    evhttp_add_header(h, "Connection", "close");
    c->t0 = now_rel(t);
    c->what[0] = '\0';
    if (evhttp_make_request(c->conn, req, EVHTTP_REQ_GET, t->path) != 0)
        return PGF_EIO;
    return 0;
}

static void on_think(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    client_next(arg);
}

static void client_next(client *c)
{
    tgt *t = c->t;
    if (send_get(c) != 0) {
        c->done = true;
        if (--t->active == 0)
            event_base_loopbreak(t->base);
    }
}

/* One GET on its own client, waiting for its answer (the loop keeps the
 * sampler going). Returns the status, or -1 for no response. record: keep
 * it as a response of the run (recovery probes), not ready probes. */
static int probe(tgt *t, bool record)
{
    client c = {0};
    c.t = t;
    c.idx = t->sc->sessions; /* probes are client N+1 in the history */
    c.probe = true;
    c.probe_record = record;
    if (send_get(&c) != 0) {
        if (c.conn)
            evhttp_connection_free(c.conn);
        return -1;
    }
    while (!c.done && !t->interrupted)
        event_base_loop(t->base, EVLOOP_ONCE);
    if (!c.done) {
        /* interrupted: the pending request dies with its connection */
        evhttp_connection_free(c.conn);
        return -1;
    }
    evhttp_connection_free(c.conn);
    return c.probe_status;
}

static void run_for(tgt *t, uint64_t ms)
{
    uint64_t end = pgf_now_ns() + ms * 1000000ULL;
    while (!t->interrupted && pgf_now_ns() < end) {
        uint64_t left = (end - pgf_now_ns()) / 1000;
        struct timeval tv = {(time_t)(left / 1000000), (suseconds_t)(left % 1000000)};
        event_base_loopexit(t->base, &tv);
        event_base_dispatch(t->base);
    }
}

/* ------------------------------------------------------------------ */
/* the service's output: exception traces                              */

typedef struct tracehit {
    char file[32];
    int line;
    char text[400];
} tracehit;

/* A trace starts at a Python traceback header, a JS/Java stack frame, or a
 * Go panic. For Python the witness is the header and the exception line
 * that ends the block; for a stack frame, the message line before it. */
static size_t scan_traces(const char *path, const char *label, tracehit *hits, size_t max,
                          size_t *total)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    regex_t frame, gopanic;
    regcomp(&frame, "^[[:space:]]+at [^ ].*(:[0-9]+(:[0-9]+)?\\)?|\\(native\\)|\\.java:[0-9]+\\))$",
            REG_EXTENDED | REG_NOSUB);
    regcomp(&gopanic, "^(panic: |goroutine [0-9]+ \\[|Exception in thread )",
            REG_EXTENDED | REG_NOSUB);
    char *line = NULL, prev[400] = "";
    size_t cap = 0, n = 0;
    int ln = 0, prevln = 0;
    bool in_py = false, in_frames = false;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        ln++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        bool hit = false;
        const char *text = line;
        int at = ln;
        if (strstr(line, "Traceback (most recent call last)") != NULL) {
            in_py = true;
            hit = true;
        } else if (in_py && line[0] != ' ' && line[0] != '\t' && line[0] != '\0') {
            in_py = false; /* the exception line closes the block */
            hit = true;
        } else if (!in_py && regexec(&frame, line, 0, NULL, 0) == 0) {
            if (!in_frames && prev[0] != '\0') {
                hit = true;
                text = prev;
                at = prevln;
                (*total)++;
            }
            in_frames = true;
        } else if (regexec(&gopanic, line, 0, NULL, 0) == 0) {
            hit = true;
        }
        if (!in_py && regexec(&frame, line, 0, NULL, 0) != 0)
            in_frames = false;
        if (hit) {
            if (text == line)
                (*total)++;
            if (n < max) {
                snprintf(hits[n].file, sizeof hits[n].file, "%s", label);
                hits[n].line = at;
                snprintf(hits[n].text, sizeof hits[n].text, "%s", text);
                n++;
            }
        }
        snprintf(prev, sizeof prev, "%s", line);
        prevln = ln;
    }
    free(line);
    regfree(&frame);
    regfree(&gopanic);
    fclose(f);
    return n;
}

static bool body_has_trace(const char *b)
{
    return strstr(b, "Traceback (most recent call last)") != NULL || strstr(b, "    at ") != NULL ||
           strstr(b, "goroutine ") != NULL;
}

/* ------------------------------------------------------------------ */
/* the checks                                                          */

static void fmt_resp(const tgt *t, const resp *r, char *buf, size_t len)
{
    if (r->status)
        snprintf(buf, len, "t=%.3fs client %u: GET %.200s -> %d in %.1f ms: %s",
                 (double)r->t0 / 1e9, r->client + 1, t->path, r->status,
                 (double)(r->t1 - r->t0) / 1e6, r->body);
    else
        snprintf(buf, len, "t=%.3fs client %u: GET %.200s -> no response (%s) after %.1f ms",
                 (double)r->t0 / 1e9, r->client + 1, t->path, r->what,
                 (double)(r->t1 - r->t0) / 1e6);
}

static void check_statuses(tgt *t)
{
    const pgf_target *tg = t->tg;
    size_t bad5 = 0, other = 0;
    for (size_t i = 0; i < t->nresps; i++) {
        const resp *r = &t->resps[i];
        if (r->status == 0 || in_list(tg->healthy_status, tg->nhealthy, r->status) ||
            in_list(tg->unhealthy_status, tg->nunhealthy, r->status))
            continue;
        if (r->status >= 500)
            bad5++;
        else
            other++;
    }
    char unh[64] = "";
    for (int i = 0; i < tg->nunhealthy; i++)
        snprintf(unh + strlen(unh), sizeof unh - strlen(unh), "%s%d", i ? "/" : "",
                 tg->unhealthy_status[i]);
    char name[160];
    snprintf(name, sizeof name, "no 5xx other than the declared unhealthy status (%s)", unh);
    pgf_target_check *c =
        pgf__target_check_add(t->out, name, bad5 == 0, "http_5xx",
                              "%zu of %zu responses were an undeclared 5xx", bad5, t->nresps);
    for (size_t i = 0; i < t->nresps && c && !c->passed; i++) {
        const resp *r = &t->resps[i];
        if (r->status >= 500 && !in_list(tg->unhealthy_status, tg->nunhealthy, r->status)) {
            char line[600];
            fmt_resp(t, r, line, sizeof line);
            witness(c, "%s", line);
        }
    }
    c = pgf__target_check_add(
        t->out, "every response carries a declared healthy or unhealthy status", other == 0,
        "http_status", "%zu of %zu responses had an undeclared status below 500", other, t->nresps);
    for (size_t i = 0; i < t->nresps && c && !c->passed; i++) {
        const resp *r = &t->resps[i];
        if (r->status > 0 && r->status < 500 &&
            !in_list(tg->healthy_status, tg->nhealthy, r->status) &&
            !in_list(tg->unhealthy_status, tg->nunhealthy, r->status)) {
            char line[600];
            fmt_resp(t, r, line, sizeof line);
            witness(c, "%s", line);
        }
    }
}

static void check_deadline(tgt *t)
{
    uint64_t limit = (uint64_t)t->tg->timeout_ms * 1000000ULL;
    size_t late = 0;
    for (size_t i = 0; i < t->nresps; i++)
        late += t->resps[i].status == 0 || t->resps[i].t1 - t->resps[i].t0 > limit;
    char name[160];
    snprintf(name, sizeof name, "every response within its deadline (%u ms)", t->tg->timeout_ms);
    pgf_target_check *c =
        pgf__target_check_add(t->out, name, late == 0, "deadline",
                              "%zu of %zu requests got no response in time", late, t->nresps);
    for (size_t i = 0; i < t->nresps && c && !c->passed; i++)
        if (t->resps[i].status == 0 || t->resps[i].t1 - t->resps[i].t0 > limit) {
            char line[600];
            fmt_resp(t, &t->resps[i], line, sizeof line);
            witness(c, "%s", line);
        }
}

static void check_traces(tgt *t, const char *out_dir)
{
    tracehit hits[24];
    size_t n = 0, total = 0;
    char path[1200];
    snprintf(path, sizeof path, "%s/service.stderr", out_dir);
    n += scan_traces(path, "service.stderr", hits, 24, &total);
    snprintf(path, sizeof path, "%s/service.stdout", out_dir);
    n += scan_traces(path, "service.stdout", hits + n, 24 - n, &total);
    size_t bodies = 0;
    for (size_t i = 0; i < t->nresps; i++)
        bodies += t->resps[i].status > 0 && body_has_trace(t->resps[i].body);
    pgf_target_check *c = pgf__target_check_add(
        t->out, "no exception trace in a response body or the service's output",
        total == 0 && bodies == 0, "exception_trace",
        "%zu trace line(s) in the service's output, %zu response bodies with a trace%s%s", total,
        bodies, n > 0 ? "; first: " : "", n > 0 ? hits[n > 1 ? 1 : 0].text : "");
    for (size_t i = 0; i < n && c; i++)
        witness(c, "%s:%d: %s", hits[i].file, hits[i].line, hits[i].text);
    for (size_t i = 0; i < t->nresps && c && bodies > 0; i++)
        if (t->resps[i].status > 0 && body_has_trace(t->resps[i].body)) {
            char line[600];
            fmt_resp(t, &t->resps[i], line, sizeof line);
            witness(c, "%s", line);
        }
}

static void check_recovery(tgt *t, uint64_t last_fault)
{
    const pgf_target *tg = t->tg;
    char name[160];
    if (tg->recovery_ms > 0)
        snprintf(name, sizeof name, "health green again within %" PRIu64 " ms of the last fault",
                 tg->recovery_ms);
    else
        snprintf(name, sizeof name, "health green again after the last fault (time reported)");
    if (last_fault == 0) {
        pgf__target_check_add(t->out, name, true, "", "no fault fired: nothing to recover from");
        return;
    }
    uint64_t lf = last_fault - 1;
    const resp *green = NULL;
    for (size_t i = 0; i < t->nresps; i++) {
        const resp *r = &t->resps[i];
        if (r->t0 >= lf && in_list(tg->healthy_status, tg->nhealthy, r->status) &&
            (green == NULL || r->t1 < green->t1))
            green = r;
    }
    if (green == NULL) {
        pgf_target_check *c = pgf__target_check_add(
            t->out, name, false, "no_recovery",
            "never healthy again after the last fault at t=%.3fs", (double)lf / 1e9);
        for (size_t i = t->nresps > 5 ? t->nresps - 5 : 0; i < t->nresps && c; i++) {
            char line[600];
            fmt_resp(t, &t->resps[i], line, sizeof line);
            witness(c, "%s", line);
        }
        return;
    }
    uint64_t rec = green->t1 - lf;
    bool ok = tg->recovery_ms == 0 || rec <= tg->recovery_ms * 1000000ULL;
    pgf_target_check *c = pgf__target_check_add(
        t->out, name, ok, "slow_recovery", "recovered %.0f ms after the last fault (at t=%.3fs)",
        (double)rec / 1e6, (double)lf / 1e9);
    char line[600];
    fmt_resp(t, green, line, sizeof line);
    witness(c, "first healthy response after the last fault: %s", line);
}

static void check_storm(tgt *t, double limit)
{
    /* After the first 28P01: injected (auth-fail) or real (a wrong
     * password: the server's own auth_failed counter moved). */
    uint64_t first = atomic_load(&t->first_28p01_ns);
    for (size_t i = 0; i < t->nsamples; i++)
        if (t->samples[i].auth_failed > 0) {
            uint64_t at = (i > 0 ? t->samples[i - 1].t : t->samples[i].t) + 1;
            if (first == 0 || at < first)
                first = at;
            break;
        }
    char name[160];
    snprintf(name, sizeof name, "no login storm after 28P01 (at most %.0f logins/s at the server)",
             limit);
    if (first == 0) {
        pgf__target_check_add(t->out, name, true, "",
                              "no 28P01 was injected or answered: nothing to check");
        return;
    }
    uint64_t f = first - 1;
    uint64_t worst = 0, worst_at = 0;
    for (size_t i = 0; i < t->nsamples; i++) {
        if (t->samples[i].t < f)
            continue;
        for (size_t k = i; k < t->nsamples && t->samples[k].t <= t->samples[i].t + 1000000000ULL;
             k++) {
            uint64_t d = t->samples[k].logins - t->samples[i].logins;
            if (d > worst) {
                worst = d;
                worst_at = t->samples[i].t;
            }
        }
    }
    bool ok = (double)worst <= limit;
    pgf_target_check *c = pgf__target_check_add(
        t->out, name, ok, "login_storm",
        "at most %" PRIu64 " logins in one second after the first 28P01 (t=%.3fs); "
        "busiest second from t=%.3fs",
        worst, (double)f / 1e9, (double)worst_at / 1e9);
    if (!ok)
        pgf__wire_storm_witness(t->wire, c, worst_at);
}

/* ------------------------------------------------------------------ */
/* the run                                                             */

static int parse_url(tgt *t, char *err, size_t errlen)
{
    t->uri = evhttp_uri_parse(t->url);
    const char *host = t->uri ? evhttp_uri_get_host(t->uri) : NULL;
    if (host == NULL) {
        snprintf(err, errlen, "%s: target.http.url '%s' is not a valid http:// URL", t->sc->source,
                 t->url);
        return PGF_EINVAL;
    }
    snprintf(t->host, sizeof t->host, "%s", host);
    t->hport = evhttp_uri_get_port(t->uri) > 0 ? evhttp_uri_get_port(t->uri) : 80;
    const char *path = evhttp_uri_get_path(t->uri), *q = evhttp_uri_get_query(t->uri);
    snprintf(t->path, sizeof t->path, "%s%s%s", path && *path ? path : "/", q ? "?" : "",
             q ? q : "");
    return 0;
}

static void tail_file(pgf_target_check *c, const char *path, const char *label, int nlines)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char ring[16][512];
    int n = 0;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = '\0';
        snprintf(ring[n % 16], sizeof ring[0], "%s", line);
        n++;
    }
    fclose(f);
    if (nlines > 16)
        nlines = 16;
    for (int i = n > nlines ? n - nlines : 0; i < n; i++)
        witness(c, "%s: %s", label, ring[i % 16]);
}

int pgf_target_http_run(const pgf_scenario *sc, const pgf_driver_opts *o, const char *out_dir,
                        pgf_run **run, pgf_target_result **resout, char *err, size_t errlen)
{
    *run = NULL;
    *resout = NULL;
    if (sc->mode == PGF_MODE_SIM) {
        snprintf(err, errlen,
                 "%s: a 'target' service runs in real time: sim mode cannot drive an external "
                 "process (use --mode stress)",
                 sc->source ? sc->source : sc->name);
        return PGF_EUSAGE;
    }
    tgt *t = calloc(1, sizeof *t);
    pgf_run *res = calloc(1, sizeof *res);
    pgf_target_result *out = calloc(1, sizeof *out);
    pgf__envset env = {0};
    int e = 0;
    if (t == NULL || res == NULL || out == NULL) {
        free(t);
        free(res);
        free(out);
        snprintf(err, errlen, "out of memory");
        return PGF_ENOMEM;
    }
    t->sc = sc;
    t->tg = &sc->target;
    t->o = o;
    t->res = res;
    t->out = out;
    t->stop = o ? o->stop : NULL;
    if ((e = pgf__target_run_open(res, sc, o, &t->start_ns, &t->base, &t->wire, err, errlen)) != 0)
        goto done;
    if ((e = pgf__tsrv_start(&t->ts, sc, res->engine, on_fault, t, t->wire, err, errlen)) != 0)
        goto done;
    int port = pgf__free_port();
    if (port <= 0) {
        snprintf(err, errlen, "cannot find a free port for the service");
        e = PGF_EBIND;
        goto done;
    }
    snprintf(t->port, sizeof t->port, "%d", port);
    if ((e = pgf__target_env(&env, sc, &t->ts, t->port, err, errlen)) != 0)
        goto done;
    pgf__target_expand(&env, t->tg->url, t->url, sizeof t->url);
    if ((e = parse_url(t, err, errlen)) != 0)
        goto done;
    t->sampler = event_new(t->base, -1, EV_PERSIST, on_sample, t);
    struct timeval every = {0, 50000};
    if (t->sampler == NULL || event_add(t->sampler, &every) != 0) {
        snprintf(err, errlen, "out of memory");
        e = PGF_ENOMEM;
        goto done;
    }

    char outp[1200], errp[1200];
    snprintf(outp, sizeof outp, "%s/service.stdout", out_dir);
    snprintf(errp, sizeof errp, "%s/service.stderr", out_dir);
    FILE *con = o ? o->progress : NULL;
    if (t->tg->argc > 0) {
        char *argv[PGF_TARGET_MAX_ARGS + 1];
        char expanded[PGF_TARGET_MAX_ARGS][1024];
        for (int i = 0; i < t->tg->argc; i++) {
            pgf__target_expand(&env, t->tg->argv[i], expanded[i], sizeof expanded[i]);
            argv[i] = expanded[i];
        }
        argv[t->tg->argc] = NULL;
        e = pgf_service_start(&t->svc, argv, env.v, t->tg->dir, outp, errp, err, errlen);
        if (e != 0)
            goto done;
        t->svc_started = true;
        if (con) {
            char db[700];
            pgf__tsrv_describe(&t->ts, sc, db, sizeof db);
            fprintf(con, "   service pid %d (%s) on port %s, database at %s\n", (int)t->svc.pid,
                    argv[0], t->port, db);
        }
    }

    /* 1. ready: the URL answers at all */
    uint64_t ready_deadline = pgf_now_ns() + (uint64_t)t->tg->ready_timeout_ms * 1000000ULL;
    bool ready = false;
    while (!ready && !t->interrupted && pgf_now_ns() < ready_deadline && (t->died_at_ns == 0)) {
        ready = probe(t, false) > 0;
        if (!ready)
            run_for(t, 100);
    }
    pgf_target_check *c = pgf__target_check_add(
        t->out, "the service started and answered its health URL", ready, "not_ready",
        ready ? "answered %s after %.0f ms" : "no HTTP answer from %s within %.0f ms", t->url,
        (double)now_rel(t) / 1e6);
    if (!ready) {
        if (t->svc_started) {
            pgf_service_poll(&t->svc);
            char d[128];
            pgf_service_describe(&t->svc, d, sizeof d);
            witness(c, "service: %s", d);
            tail_file(c, errp, "service.stderr", 12);
        }
        goto finish;
    }

    /* 2. the load, with the fault rules on */
    if (sc->rules != NULL)
        pgf_fault_engine_set_rules(res->engine, pgf_fault_rules_ref(sc->rules));
    uint64_t load_t0 = pgf_now_ns();
    t->load_end_ns = sc->duration_ms > 0 ? load_t0 + sc->duration_ms * 1000000ULL : 0;
    if (sc->rules2 != NULL) {
        t->rotate = pgf__target_rotate_new(t->base, res);
    }
    t->clients = calloc(sc->sessions, sizeof *t->clients);
    if (t->clients == NULL) {
        snprintf(err, errlen, "out of memory");
        e = PGF_ENOMEM;
        goto done;
    }
    for (unsigned i = 0; i < sc->sessions; i++) {
        client *cl = &t->clients[i];
        cl->t = t;
        cl->idx = i;
        cl->think = evtimer_new(t->base, on_think, cl);
        if (cl->think == NULL) {
            snprintf(err, errlen, "out of memory");
            e = PGF_ENOMEM;
            goto done;
        }
    }
    for (unsigned i = 0; i < sc->sessions; i++) {
        t->active++;
        client_next(&t->clients[i]);
    }
    while (t->active > 0 && !t->interrupted)
        event_base_loop(t->base, EVLOOP_ONCE);
    res->duration_ns = pgf_now_ns() - load_t0;
    if (t->rotate)
        evtimer_del(t->rotate);
    /* The schedule of faults ends with the load. */
    pgf_fault_engine_set_rules(res->engine, NULL);

    /* 3. recovery: probe until green (bounded) when the load did not end green */
    uint64_t last_fault = atomic_load(&t->last_fault_ns);
    if (last_fault > 0 && !t->interrupted) {
        uint64_t bound = t->tg->recovery_ms > 0 ? t->tg->recovery_ms : 10000;
        uint64_t until = pgf_now_ns() + (bound + t->tg->timeout_ms) * 1000000ULL;
        bool green = false;
        for (size_t i = 0; i < t->nresps && !green; i++)
            green = t->resps[i].t0 >= last_fault - 1 &&
                    in_list(t->tg->healthy_status, t->tg->nhealthy, t->resps[i].status);
        while (!green && !t->interrupted && pgf_now_ns() < until && t->died_at_ns == 0) {
            int st = probe(t, true);
            green = st > 0 && in_list(t->tg->healthy_status, t->tg->nhealthy, st);
            if (!green)
                run_for(t, 100);
        }
    }

    /* 4. quiet period, then what the server still holds open */
    run_for(t, t->tg->quiet_ms);
    take_sample(t);
    pgf__tsrv_final_stats(&t->ts, res);
    char when[64];
    snprintf(when, sizeof when, "after %u ms quiet", t->tg->quiet_ms);
    pgf__wire_checks(t->wire, t->out, t->tg->idle_floor, when);
    /* No `server` record: the checker would judge it against zero sessions;
     * the floor is this check's business. */

finish:
    check_statuses(t);
    check_deadline(t);
    check_recovery(t, atomic_load(&t->last_fault_ns));
    double storm = t->tg->storm_logins_per_s;
    for (int i = 0; i < sc->nexpects; i++)
        if (sc->expects[i].kind == PGF_EXPECT_MAX_LOGIN_RATE)
            storm = sc->expects[i].value;
    check_storm(t, storm);
    if (t->svc_started) {
        bool died = pgf_service_poll(&t->svc);
        char d[128];
        pgf_service_describe(&t->svc, d, sizeof d);
        c = pgf__target_check_add(t->out, "the service process never died", !died, "service_died",
                                  died ? "%s during the run (at t=%.3fs)"
                                       : "%s until pgfault stopped it",
                                  d, (double)(t->died_at_ns ? t->died_at_ns - 1 : 0) / 1e9);
        if (died)
            tail_file(c, errp, "service.stderr", 12);
        pgf_service_stop(&t->svc, t->tg->stop_grace_ms);
        if (con) {
            pgf_service_describe(&t->svc, d, sizeof d);
            fprintf(con, "   service stopped: %s%s\n", d,
                    t->svc.killed ? " (SIGKILL after the grace period)" : "");
        }
    }
    check_traces(t, out_dir);
    res->interrupted = t->interrupted;
    if (con)
        fprintf(con, "   %zu responses, %" PRIu64 " faults fired\n", t->nresps,
                (uint64_t)atomic_load(&t->faults));

done:
    if (t->svc_started)
        pgf_service_stop(&t->svc, t->tg->stop_grace_ms);
    if (t->clients != NULL) {
        for (unsigned i = 0; i < sc->sessions; i++) {
            if (t->clients[i].conn)
                evhttp_connection_free(t->clients[i].conn);
            if (t->clients[i].think)
                event_free(t->clients[i].think);
        }
        free(t->clients);
    }
    pgf__tsrv_stop(&t->ts, sc);
    pgf__wire_free(t->wire);
    if (t->sampler)
        event_free(t->sampler);
    if (t->rotate)
        event_free(t->rotate);
    if (t->uri)
        evhttp_uri_free(t->uri);
    if (t->base)
        event_base_free(t->base);
    pgf__envset_free(&env);
    free(t->resps);
    free(t->samples);
    res->wall_ns = pgf_now_ns() - t->start_ns;
    free(t);
    if (e != 0) {
        pgf_run_free(res);
        pgf_target_result_free(out);
        return e;
    }
    *run = res;
    *resout = out;
    return 0;
}
