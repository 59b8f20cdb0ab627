/* fuzz_proto.c - libFuzzer target for the v3 codec and the SCRAM server.
 *
 * The input is what one client connection sends, preceded by one mode
 * byte: bit 0 = start in the startup phase; bits 1-2 = what a 'p' message
 * is (0 PasswordMessage, 1 SCRAM: SASLInitialResponse then SASLResponse,
 * 2 SASLResponse only, 3 every parser on every message). The rest is framed
 * message by message as the server would, each message is parsed, SCRAM
 * messages go through pgf_scram_first/final against a fixed verifier, and
 * the whole input is also framed as server traffic.
 *
 * Beyond the sanitizers it checks the parsers' promises: a framed message
 * lies inside the input, and every string or byte range handed out lies
 * inside its message body. A broken promise aborts.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with -DPGF_FUZZ=ON as a
 * libFuzzer binary, and in every build linked with replay_main.c as a ctest
 * that replays corpus/proto.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/auth.h"
#include "pgfault/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t *body_lo, *body_hi;

static void must(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_proto: broken promise: %s\n", what);
        abort();
    }
}

static void in_body_str(const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    must(p >= body_lo && p < body_hi, "string outside the body");
    must(memchr(p, 0, (size_t)(body_hi - p)) != NULL, "string not terminated in the body");
}

static void in_body_bytes(const uint8_t *p, size_t n)
{
    if (p == NULL) {
        must(n == 0, "NULL data with a length");
        return;
    }
    must(p >= body_lo && p <= body_hi && n <= (size_t)(body_hi - p), "bytes outside the body");
}

static const pgf_scram_secret *secret(void)
{
    static pgf_scram_secret s;
    static int ready;
    if (!ready) {
        must(pgf_scram_secret_parse(
                 "SCRAM-SHA-256$4096:Stm+DvqYYzXHJHqK+gNoTw==$5ft9wl2u2qEUjSzYeDuadmBDGibVzYX3VT82"
                 "hRV86J0=:6oTAKjJSp+iE91W111dt7vDY6+LQah73yZZeflUiDTQ=",
                 &s) == PGF_OK,
             "verifier parses");
        ready = 1;
    }
    return &s;
}

static void parse_as(const pgf_fe_msg *msg, uint8_t type, int pkind, pgf_scram_state *st,
                     pgf_buf *out)
{
    pgf_fe_msg m = *msg;
    m.type = type;
    int rc;
    switch (type) {
    case PGF_FE_QUERY: {
        const char *q;
        if (pgf_proto_parse_query(&m, &q) == PGF_OK)
            in_body_str(q);
        break;
    }
    case PGF_FE_PASSWORD:
        if (pkind == 0 || pkind == 3) {
            const char *pw;
            if (pgf_proto_parse_password(&m, &pw) == PGF_OK)
                in_body_str(pw);
        }
        if ((pkind == 1 && st->step == 0) || pkind == 3) {
            const char *mech;
            const uint8_t *d;
            size_t dl;
            if (pgf_proto_parse_sasl_initial(&m, &mech, &d, &dl) == PGF_OK) {
                in_body_str(mech);
                in_body_bytes(d, dl);
                static const uint8_t nonce[PGF_SCRAM_RAW_NONCE_LEN] = {1, 2, 3};
                const char *err = NULL;
                pgf_buf_reset(out);
                rc = pgf_scram_first(st, secret(), d, dl, nonce, out, &err);
                must(rc == PGF_OK || (rc < 0 && err != NULL), "scram_first error has a message");
                if (pkind == 1)
                    break;
            }
        }
        if (pkind == 1 || pkind == 2 || pkind == 3) {
            const uint8_t *d;
            size_t dl;
            if (pgf_proto_parse_sasl_response(&m, &d, &dl) == PGF_OK) {
                in_body_bytes(d, dl);
                const char *err = NULL;
                pgf_buf_reset(out);
                rc = pgf_scram_final(st, d, dl, out, &err);
                must(rc == PGF_OK || (rc < 0 && err != NULL), "scram_final error has a message");
            }
        }
        break;
    case PGF_FE_PARSE: {
        pgf_parse_msg p;
        if (pgf_proto_parse_parse(&m, &p) == PGF_OK) {
            in_body_str(p.stmt);
            in_body_str(p.query);
            in_body_bytes(p.param_types, (size_t)p.nparam_types * 4);
        }
        break;
    }
    case PGF_FE_BIND: {
        static pgf_bind_msg b;
        if (pgf_proto_parse_bind(&m, &b) == PGF_OK) {
            in_body_str(b.portal);
            in_body_str(b.stmt);
            must(b.nparams <= PGF_PROTO_MAX_BIND_PARAMS, "bind param count bounded");
            for (int i = 0; i < b.nparams; i++)
                in_body_bytes(b.values[i], b.lens[i] < 0 ? 0 : (size_t)b.lens[i]);
        }
        break;
    }
    case PGF_FE_DESCRIBE:
    case PGF_FE_CLOSE: {
        char kind;
        const char *name;
        if (pgf_proto_parse_describe_close(&m, &kind, &name) == PGF_OK) {
            must(kind == 'S' || kind == 'P', "describe kind");
            in_body_str(name);
        }
        break;
    }
    case PGF_FE_EXECUTE: {
        pgf_execute_msg e;
        if (pgf_proto_parse_execute(&m, &e) == PGF_OK)
            in_body_str(e.portal);
        break;
    }
    default:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    bool startup = mode & 1;
    int pkind = (mode >> 1) & 3;
    pgf_scram_state st = {0};
    pgf_buf out = PGF_BUF_INIT;

    size_t off = 0;
    while (off < size) {
        pgf_fe_msg msg;
        const char *err = NULL;
        int rc = pgf_proto_frame(data + off, size - off, startup,
                                 startup ? PGF_PROTO_MAX_STARTUP_LEN : 1u << 20, &msg, &err);
        if (rc == PGF_PROTO_NEED_MORE)
            break;
        if (rc < 0) {
            must(err != NULL, "framing error has a message");
            break;
        }
        must(rc == PGF_PROTO_OK, "frame result");
        must(msg.total_len <= size - off && msg.total_len >= (startup ? 8u : 5u),
             "framed message inside the input");
        must(msg.body + msg.body_len == data + off + msg.total_len, "body ends the message");
        body_lo = msg.body;
        body_hi = msg.body + msg.body_len;
        if (msg.type == 0) {
            if (msg.code == PGF_PROTO_CANCEL_REQUEST) {
                pgf_cancel_req c;
                if (pgf_proto_parse_cancel(&msg, &c) == PGF_OK)
                    must(msg.body_len == 8, "cancel is pid + key");
            } else {
                pgf_startup s;
                const char *e = NULL;
                rc = pgf_proto_parse_startup(&msg, &s, &e);
                must(rc == PGF_OK || e != NULL, "startup error has a message");
                for (int i = 0; rc == PGF_OK && i < s.nparams; i++) {
                    in_body_str(s.keys[i]);
                    in_body_str(s.values[i]);
                }
                if (rc == PGF_OK && s.nparams > 0)
                    (void)pgf_startup_get(&s, "user");
                if (msg.code >> 16 == 3)
                    startup = false;
            }
        } else if (pkind == 3) {
            static const uint8_t all[] = {'Q', 'p', 'P', 'B', 'D', 'C', 'E'};
            for (size_t i = 0; i < sizeof all; i++)
                parse_as(&msg, all[i], pkind, &st, &out);
        } else {
            parse_as(&msg, msg.type, pkind, &st, &out);
        }
        off += msg.total_len;
    }

    /* The same bytes as server traffic. */
    off = 0;
    while (off < size) {
        uint8_t type;
        size_t total;
        if (pgf_proto_frame_backend(data + off, size - off, &type, &total) != PGF_PROTO_OK)
            break;
        must(total >= 5 && total <= size - off, "backend message inside the input");
        off += total;
    }
    pgf_buf_free(&out);
    return 0;
}
