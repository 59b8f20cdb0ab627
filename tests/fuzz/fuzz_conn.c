/* fuzz_conn.c - stateful libFuzzer target: whole client connections driven
 * through the real fake-server code (fakes/server: conn.c, pump.c,
 * startup.c, query.c, sql.c) and the real fault engine, in-process, on the
 * simulated clock (base/timer.h), as `pgfault run --mode sim` runs it.
 *
 * One server is made once (SCRAM verifiers cost PBKDF2) on an event_base
 * with a virtual clock; it never listens. Each input opens up to three
 * connections as unix socketpairs handed to pgf__conn_accept(), so the
 * byte pump, its chunk queue and close paths are the real ones.
 *
 * Input: byte 0 picks a fault rule set (below; 0 = none). Then ops, one
 * byte each (low nibble = op, high nibble mod 3 = connection), some with
 * argument bytes:
 *   0 startup (arg: user + flags)            8 Query (arg: which)
 *   1 password / md5 response (arg: right?)   9 Flush or Terminate (arg)
 *   2 Parse (arg: name, query)               10 raw bytes (arg: len, bytes)
 *   3 Bind (args: portal/stmt, params, fmts) 11 run the loop and read
 *   4 Execute (arg: portal, max rows)        12 advance the virtual clock
 *   5 Describe (arg: S/P, name)              13 CancelRequest for this conn
 *   6 Close (arg: S/P, name)                 14 client half-close / close
 *   7 Sync                                   15 stop/start reading (backpressure)
 * Startup's argument: user = arg % 6; 0x80 SSLRequest first, 0x40 protocol
 * 3.1, 0x20 application_name, 0x10 options (0x08: valid ones, else refused).
 * After each op the loop runs until quiet. At the end every client closes
 * and the loop runs (advancing time, bounded); then the promises are
 * checked: every connection was closed and reaped (no leak, no stuck
 * connection), the counters agree. The sanitizers check the rest.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): as a libFuzzer binary with
 * -DPGF_FUZZ=ON (make fuzz), and in every build linked with replay_main.c
 * as the ctest fuzz_conn_corpus replaying corpus/conn (seeded from
 * tests/data/transcripts by make_corpus_conn.py, plus what fuzzing found).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "pgfault/auth.h"
#include "pgfault/buf.h"
#include "pgfault/fault.h"
#include "pgfault/log.h"
#include "pgfault/proto.h"
#include "pgfault/rules.h"
#include "pgfault/server.h"
#include "pgfault/timer.h"
#include "server_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCONN 3

static const char *const rule_sets[] = {
    NULL,
    "rules:\n  - {name: r, phase: data-row, action: truncate, bytes: 3, then: reset}\n",
    "rules:\n  - {name: r, phase: query, action: error, sqlstate: '40P01', message: x, "
    "probability: 0.5}\n",
    "rules:\n  - {name: a, phase: row-description, action: delay, ms: 5}\n"
    "  - {name: b, phase: command-complete, action: drip, slice: 2, ms: 1}\n",
    "rules:\n  - {name: r, phase: ready, action: half-close, direction: write, after: 1}\n",
    "rules:\n  - {name: r, phase: query, action: stall, ms: 20}\n",
    "rules:\n  - {name: a, phase: auth-request, action: garbage, bytes: 8, budget: 1}\n"
    "  - {name: b, phase: data-row, action: reset, nth: 2}\n",
    "rules:\n  - {name: r, phase: command-complete, action: truncate, messages: 2}\n",
    "rules:\n  - {name: r, phase: idle, action: error, preset: crash-shutdown, nth: 2}\n",
    "rules:\n  - {name: a, phase: sasl-continue, action: delay, ms: 3}\n"
    "  - {name: b, phase: auth-ok, action: stall, ms: 7}\n",
    "rules:\n  - {name: r, phase: data-row, action: bandwidth, bytes_per_sec: 100}\n",
    "rules:\n  - {name: a, phase: query, action: error, severity: FATAL, sqlstate: '57P01', "
    "message: bye, nth: 3}\n"
    "  - {name: b, phase: accept, action: refuse, ms: 5, nth: 2, scope: global}\n",
    "rules:\n  - {name: r, phase: cancel, action: close}\n"
    "  - {name: s, phase: parameter-status, action: truncate, bytes: 2}\n",
    "rules:\n  - {name: r, phase: startup, action: error, preset: too-many-clients, "
    "probability: 0.3}\n"
    "  - {name: h, phase: query, action: half-close, direction: read, nth: 2}\n",
};
#define NRULESETS (sizeof rule_sets / sizeof rule_sets[0])

static const char *const users[] = {"u_trust", "u_pw", "u_md5", "u_scram", "nobody", ""};
static const char *const queries[] = {
    "SELECT 1",
    "SELECT 1; SELECT 2; SELECT 3",
    "SELECT pg_sleep(0.01)",
    "SELECT 1; SELECT pg_sleep(0.02); SELECT 2",
    "BEGIN",
    "COMMIT",
    "SELEC 1",
    "SELECT $1::int",
    "",
    "SHOW server_version",
    "SET application_name = 'x'",
    "SELECT 1; SELEC 2; SELECT 3",
    "SELECT current_user",
    ";;;",
    "SELECT 'a;b'; SELECT 2",
    "ROLLBACK",
    "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY",
    "BEGIN ISOLATION LEVEL REPEATABLE READ NOT DEFERRABLE",
    "SET TRANSACTION ISOLATION LEVEL READ COMMITTED",
    "SELECT now()",
    "SET statement_timeout = '15ms'; SELECT pg_sleep(0.05)",
    "SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL",
    "SET x.y = -1; RESET x.y; RESET ROLE; SET ROLE r",
};
#define NQUERIES (sizeof queries / sizeof queries[0])

typedef struct fconn {
    int fd; /* client side; -1 = not open / closed */
    bool reading;
    /* what the client learnt from the server's output */
    uint8_t md5_salt[4];
    int32_t pid, key;
    bool have_key;
    pgf_buf out; /* bytes received, framed loosely */
} fconn;

static struct event_base *base;
static pgf_simclock *clk;
static pgf_server *srv;
static pgf_fault_engine *eng;
static pgf_fault_rules *rules[NRULESETS];

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_conn: broken promise: %s\n", what);
        abort();
    }
}

static void init_once(void)
{
    if (base != NULL)
        return;
    if (getenv("PGFAULT_LOG") == NULL)
        pgf_log_level_set(PGF_LOG_ERROR);
    base = event_base_new();
    must(base != NULL, "event_base_new");
    clk = pgf_simclock_attach(base, 1000000000ull);
    eng = pgf_fault_engine_new(42);
    for (size_t i = 1; i < NRULESETS; i++) {
        char err[256];
        rules[i] = pgf_fault_rules_parse_yaml(rule_sets[i], strlen(rule_sets[i]), "<fuzz>", err,
                                              sizeof err);
        if (rules[i] == NULL) {
            fprintf(stderr, "fuzz_conn: rule set %zu: %s\n", i, err);
            abort();
        }
    }
    static const pgf_server_user su[] = {
        {"u_trust", "", PGF_AUTH_METHOD_TRUST, false},
        {"u_pw", "pw", PGF_AUTH_METHOD_PASSWORD, false},
        {"u_md5", "pw", PGF_AUTH_METHOD_MD5, false},
        {"u_scram", "pw", PGF_AUTH_METHOD_SCRAM, false},
    };
    pgf_server_config cfg = {0};
    cfg.users = su;
    cfg.nusers = 4;
    cfg.seed = 7;
    cfg.quiet = true;
    cfg.faults = eng;
    char err[256];
    must(pgf_server_new(&cfg, base, &srv, err, sizeof err) == 0, "pgf_server_new");
}

static void put_msg(pgf_buf *b, uint8_t type, const void *body, size_t len)
{
    pgf_buf_put_u8(b, type);
    pgf_buf_put_be32(b, (uint32_t)(len + 4));
    pgf_buf_put(b, body, len);
}

static void client_send(fconn *fc, const pgf_buf *b)
{
    if (fc->fd < 0 || b->failed)
        return;
    /* Nonblocking: what does not fit is dropped, as if the client gave up
     * writing (the server must cope with any prefix). */
    (void)!send(fc->fd, b->data, b->len, MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Scan what arrived for the md5 salt and BackendKeyData. */
static void learn(fconn *fc)
{
    size_t off = 0;
    while (fc->out.len - off >= 5) {
        const uint8_t *p = fc->out.data + off;
        uint32_t l = pgf_rd_be32(p + 1);
        if (l < 4 || l > (1u << 20)) {
            off = fc->out.len; /* garbage (a fault): stop framing */
            break;
        }
        if (fc->out.len - off < 1 + (size_t)l)
            break;
        if (p[0] == 'R' && l == 12 && pgf_rd_be32(p + 5) == PGF_AUTH_MD5)
            memcpy(fc->md5_salt, p + 9, 4);
        if (p[0] == 'K' && l == 12) {
            fc->pid = (int32_t)pgf_rd_be32(p + 5);
            fc->key = (int32_t)pgf_rd_be32(p + 9);
            fc->have_key = true;
        }
        off += 1 + l;
    }
    pgf_buf_consume(&fc->out, off);
}

static void client_read(fconn *fc)
{
    if (fc->fd < 0 || !fc->reading)
        return;
    uint8_t tmp[65536];
    for (;;) {
        ssize_t n = recv(fc->fd, tmp, sizeof tmp, MSG_DONTWAIT);
        if (n <= 0)
            break;
        pgf_buf_put(&fc->out, tmp, (size_t)n);
        learn(fc);
    }
}

/* Run the loop until nothing more happens (bounded), reading as we go. */
static void settle(fconn *cs)
{
    for (int i = 0; i < 200; i++) {
        uint64_t a0 = pgf_sim_activity_count();
        event_base_loop(base, EVLOOP_NONBLOCK);
        for (int k = 0; k < NCONN; k++)
            client_read(&cs[k]);
        if (pgf_sim_activity_count() == a0)
            return;
    }
}

static void open_conn(fconn *fc)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        return;
    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
    fc->fd = sv[0];
    fc->reading = true;
    pgf__conn_accept(srv, sv[1], NULL, 0, true);
}

/* An argument byte, 0 past the end. */
#define ARG() (i < size ? data[i++] : 0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    init_once();
    if (size == 0)
        return 0;
    size_t i = 0;
    uint8_t rs = data[i++] % NRULESETS;
    pgf_fault_engine_set_rules(eng, rs ? pgf_fault_rules_ref(rules[rs]) : NULL);

    pgf_server_stats before;
    pgf_server_get_stats(srv, &before);
    fconn cs[NCONN];
    for (int k = 0; k < NCONN; k++) {
        memset(&cs[k], 0, sizeof cs[k]);
        cs[k].fd = -1;
        pgf_buf_init(&cs[k].out);
    }
    int opened = 0;
    pgf_buf b = PGF_BUF_INIT;
    for (int ops = 0; i < size && ops < 4096; ops++) {
        uint8_t op = data[i++];
        fconn *fc = &cs[(op >> 4) % NCONN];
        op &= 0x0f;
        if (fc->fd < 0 && opened < NCONN * 2 && op != 12) {
            open_conn(fc);
            opened++;
            settle(cs);
        }
        pgf_buf_reset(&b);
        switch (op) {
        case 0: { /* startup */
            uint8_t a = ARG();
            if (a & 0x80) {
                uint8_t ssl[8] = {0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f};
                pgf_buf_put(&b, ssl, sizeof ssl);
            }
            size_t at = b.len;
            pgf_buf_put_be32(&b, 0);
            pgf_buf_put_be32(&b, (a & 0x40) ? PGF_PROTO_V3 + 1 : PGF_PROTO_V3);
            pgf_buf_put_cstr(&b, "user");
            pgf_buf_put_cstr(&b, users[a % 6]);
            pgf_buf_put_cstr(&b, "database");
            pgf_buf_put_cstr(&b, "db");
            if (a & 0x20) {
                pgf_buf_put_cstr(&b, "application_name");
                pgf_buf_put_cstr(&b, "fuzz");
            }
            if (a & 0x10) { /* startup options, as PGOPTIONS sends them */
                pgf_buf_put_cstr(&b, "options");
                pgf_buf_put_cstr(&b, (a & 0x08) ? "-c statement_timeout=1s --lock-timeout=2min "
                                                  "-c application_name=a\\ b"
                                                : "-c statement_timeout -x \\");
            }
            pgf_buf_put_u8(&b, 0);
            pgf_buf_patch_be32(&b, at, (uint32_t)(b.len - at));
            break;
        }
        case 1: { /* password message */
            uint8_t a = ARG();
            char resp[36];
            if (a & 1) {
                pgf_md5_response("u_md5", "pw", fc->md5_salt, resp);
            } else {
                snprintf(resp, sizeof resp, "%s", (a & 2) ? "pw" : "wrong");
            }
            put_msg(&b, 'p', resp, strlen(resp) + 1);
            break;
        }
        case 2: { /* Parse */
            uint8_t a = ARG();
            size_t at = b.len;
            pgf_buf_put_u8(&b, 'P');
            pgf_buf_put_be32(&b, 0);
            pgf_buf_put_cstr(&b, (a & 0x80) ? "s1" : "");
            pgf_buf_put_cstr(&b, queries[a % NQUERIES]);
            uint16_t nt = (a & 0x40) ? 1 : 0;
            pgf_buf_put_be16(&b, nt);
            if (nt)
                pgf_buf_put_be32(&b, 23);
            pgf_buf_patch_be32(&b, at + 1, (uint32_t)(b.len - at - 1));
            break;
        }
        case 3: { /* Bind */
            uint8_t a = ARG(), f = ARG();
            size_t at = b.len;
            pgf_buf_put_u8(&b, 'B');
            pgf_buf_put_be32(&b, 0);
            pgf_buf_put_cstr(&b, (a & 0x80) ? "p1" : "");
            pgf_buf_put_cstr(&b, (a & 0x40) ? "s1" : "");
            uint16_t np = a & 3;
            uint16_t npf = (f & 3) > np ? np : (f & 3);
            pgf_buf_put_be16(&b, npf);
            for (uint16_t k = 0; k < npf; k++)
                pgf_buf_put_be16(&b, (f >> 2) & 1);
            pgf_buf_put_be16(&b, np);
            for (uint16_t k = 0; k < np; k++) {
                if (f & 0x80) {
                    pgf_buf_put_be32(&b, 4);
                    pgf_buf_put_be32(&b, 7);
                } else if (f & 0x40) {
                    pgf_buf_put_be32(&b, 0xffffffffu);
                } else {
                    pgf_buf_put_be32(&b, 2);
                    pgf_buf_put(&b, "42", 2);
                }
            }
            uint16_t nrf = (f >> 3) & 3;
            pgf_buf_put_be16(&b, nrf);
            for (uint16_t k = 0; k < nrf; k++)
                pgf_buf_put_be16(&b, (f >> 5) & 1);
            pgf_buf_patch_be32(&b, at + 1, (uint32_t)(b.len - at - 1));
            break;
        }
        case 4: { /* Execute */
            uint8_t a = ARG();
            size_t at = b.len;
            pgf_buf_put_u8(&b, 'E');
            pgf_buf_put_be32(&b, 0);
            pgf_buf_put_cstr(&b, (a & 0x80) ? "p1" : "");
            pgf_buf_put_be32(&b, a & 3);
            pgf_buf_patch_be32(&b, at + 1, (uint32_t)(b.len - at - 1));
            break;
        }
        case 5:
        case 6: { /* Describe, Close */
            uint8_t a = ARG();
            char body[4] = {(a & 1) ? 'S' : 'P', 0, 0, 0};
            size_t len = 2;
            if (a & 2) {
                memcpy(body + 1, (a & 1) ? "s1" : "p1", 3);
                len = 4;
            }
            put_msg(&b, op == 5 ? 'D' : 'C', body, len);
            break;
        }
        case 7:
            put_msg(&b, 'S', NULL, 0);
            break;
        case 8: {
            const char *q = queries[ARG() % NQUERIES];
            put_msg(&b, 'Q', q, strlen(q) + 1);
            break;
        }
        case 9:
            put_msg(&b, (ARG() & 1) ? 'X' : 'H', NULL, 0);
            break;
        case 10: {
            size_t n = ARG();
            if (n > size - i)
                n = size - i;
            pgf_buf_put(&b, data + i, n);
            i += n;
            break;
        }
        case 11:
            break; /* settle() below */
        case 12:
            pgf_simclock_advance(clk);
            break;
        case 13: {
            int sv[2];
            if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
                break;
            uint8_t pkt[16];
            uint32_t w[4] = {htonl(16), htonl(PGF_PROTO_CANCEL_REQUEST),
                             htonl((uint32_t)(fc->have_key ? fc->pid : 10001)),
                             htonl((uint32_t)(fc->have_key ? fc->key : 1))};
            memcpy(pkt, w, sizeof pkt);
            (void)!send(sv[0], pkt, sizeof pkt, MSG_NOSIGNAL);
            pgf__conn_accept(srv, sv[1], NULL, 0, true);
            settle(cs);
            close(sv[0]);
            break;
        }
        case 14:
            if (fc->fd >= 0) {
                if (ARG() & 1) {
                    close(fc->fd);
                    fc->fd = -1;
                } else {
                    shutdown(fc->fd, SHUT_WR);
                }
            }
            break;
        case 15:
            fc->reading = !fc->reading;
            break;
        }
        if (b.len > 0)
            client_send(fc, &b);
        settle(cs);
    }
    pgf_buf_free(&b);

    /* Let timers run out (bounded), then every client goes away. */
    for (int k = 0; k < 64 && pgf_simclock_advance(clk); k++)
        settle(cs);
    for (int k = 0; k < NCONN; k++) {
        cs[k].reading = true;
        settle(cs);
        if (cs[k].fd >= 0)
            close(cs[k].fd);
        cs[k].fd = -1;
        pgf_buf_free(&cs[k].out);
    }
    for (int k = 0; k < 1000 && srv->loops[0].conns != NULL; k++) {
        settle(cs);
        if (srv->loops[0].conns != NULL)
            pgf_simclock_advance(clk);
    }
    must(srv->loops[0].conns == NULL, "a connection outlived its client");
    pgf__server_reap_all(&srv->loops[0]);
    /* Leave no timer armed into the next input (the relisten window). */
    pgf_server_set_listening(srv, true);
    pgf_server_stats after;
    pgf_server_get_stats(srv, &after);
    must(after.active == 0, "active connections after all closed");
    must(after.accepted - before.accepted == after.closed - before.closed,
         "accepted and closed disagree");
    for (int k = 0; k < 3; k++)
        must(after.by_phase[k] == 0, "a phase counter is not zero with no connection");
    return 0;
}
