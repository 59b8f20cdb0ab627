/* test_proto.c - the v3 codec against the transcripts recorded from a real
 * PostgreSQL 15 (the .hex files in tests/data/transcripts).
 *
 * Builders: the named messages are built from literal values and must equal
 * the recorded bytes; then every server message of every transcript is
 * decoded here (independently of proto.c) and rebuilt through the builders.
 * Parsers: every recorded client message frames and parses, every cut point
 * of it is NEED_MORE, bad lengths and malformed bodies are errors, and
 * mutated or random input never escapes its buffer (run under ASan).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/proto.h"
#include "pgfault/rng.h"
#include "testutil.h"

/* ---- helpers ---- */

static int load(const char *name, pgf_t_msg **msgs)
{
    int n = pgf_t_load_hex(name, msgs);
    if (n <= 0)
        fprintf(stderr, "\n  cannot load transcript %s\n", name);
    CU_ASSERT_FATAL(n > 0);
    return n;
}

/* For sweeps: some transcripts are empty (the client gave up locally). */
static int load_any(const char *name, pgf_t_msg **msgs)
{
    int n = pgf_t_load_hex(name, msgs);
    CU_ASSERT_FATAL(n >= 0);
    return n;
}

/* The k-th (0-based) message from `dir` whose first byte is `type`. */
static const pgf_t_msg *nth(const pgf_t_msg *m, int n, char dir, uint8_t type, int k)
{
    for (int i = 0; i < n; i++)
        if (m[i].dir == dir && m[i].len > 0 && m[i].bytes[0] == type && k-- == 0)
            return &m[i];
    return NULL;
}

static int same_bytes(const pgf_buf *b, const pgf_t_msg *m, const char *what)
{
    if (m == NULL) {
        fprintf(stderr, "\n  %s: recorded message not found\n", what);
        return 0;
    }
    if (b->failed || b->len != m->len || memcmp(b->data, m->bytes, m->len) != 0) {
        fprintf(stderr, "\n  %s: built %zu bytes, recorded %zu bytes:\n   built ", what, b->len,
                m->len);
        for (size_t i = 0; i < b->len; i++)
            fprintf(stderr, "%02x", b->data[i]);
        fprintf(stderr, "\n   rec.  ");
        for (size_t i = 0; i < m->len; i++)
            fprintf(stderr, "%02x", m->bytes[i]);
        fprintf(stderr, "\n");
        return 0;
    }
    return 1;
}

/* Every transcript name (without .hex), sorted; caller frees. */
static int list_transcripts(char ***out)
{
    DIR *d = opendir(PGF_TEST_DATA_DIR "/transcripts");
    CU_ASSERT_FATAL(d != NULL);
    char **names = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 5 || strcmp(e->d_name + l - 4, ".hex") != 0)
            continue;
        char **nn = realloc(names, (size_t)(n + 1) * sizeof *names);
        CU_ASSERT_FATAL(nn != NULL);
        names = nn;
        names[n] = strndup(e->d_name, l - 4);
        CU_ASSERT_FATAL(names[n] != NULL);
        n++;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: stable report order */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    *out = names;
    return n;
}

static void free_names(char **names, int n)
{
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* ---- builders: named messages from literal values ---- */

static const char *const trust_params[13][2] = {
    {"application_name", "pqprobe"},
    {"client_encoding", "UTF8"},
    {"DateStyle", "ISO, MDY"},
    {"default_transaction_read_only", "off"},
    {"in_hot_standby", "off"},
    {"integer_datetimes", "on"},
    {"IntervalStyle", "postgres"},
    {"is_superuser", "off"},
    {"server_encoding", "UTF8"},
    {"server_version", "15.18 (Debian 15.18-0+deb12u1)"},
    {"session_authorization", "u_trust"},
    {"standard_conforming_strings", "on"},
    {"TimeZone", "Etc/UTC"},
};

static void build_trust_startup_reply(void)
{
    pgf_t_msg *m;
    int n = load("a_trust_simple_query", &m);
    pgf_buf b = PGF_BUF_INIT;

    pgf_msg_auth(&b, PGF_AUTH_OK, NULL, 0);
    CU_ASSERT(same_bytes(&b, &m[1], "AuthenticationOk"));
    for (int i = 0; i < 13; i++) {
        pgf_buf_reset(&b);
        pgf_msg_parameter_status(&b, trust_params[i][0], trust_params[i][1]);
        CU_ASSERT(same_bytes(&b, &m[2 + i], trust_params[i][0]));
    }
    pgf_buf_reset(&b);
    pgf_msg_backend_key(&b, 0x5391, 0x63b6de4b);
    CU_ASSERT(same_bytes(&b, &m[15], "BackendKeyData"));
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'I');
    CU_ASSERT(same_bytes(&b, &m[16], "ReadyForQuery"));

    /* SELECT 1 */
    pgf_col col = {"?column?", 0, 0, 23, 4, -1, 0};
    pgf_buf_reset(&b);
    pgf_msg_row_description(&b, &col, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'T', 0), "RowDescription"));
    const char *one[] = {"1"};
    pgf_buf_reset(&b);
    pgf_msg_data_row(&b, one, NULL, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'D', 0), "DataRow"));
    pgf_buf_reset(&b);
    pgf_msg_command_complete(&b, "SELECT 1");
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'C', 0), "CommandComplete"));
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'I');
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'Z', 1), "ReadyForQuery after SELECT"));
    pgf_buf_free(&b);
    pgf_t_msgs_free(m, n);
}

static void build_simple_misc(void)
{
    pgf_t_msg *m;
    int n = load("a_simple_misc", &m);
    pgf_buf b = PGF_BUF_INIT;

    pgf_msg_empty(&b, PGF_BE_EMPTY_QUERY);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'I', 0), "EmptyQueryResponse"));
    /* 'two' is text: typlen -1, typmod -1 */
    pgf_col col = {"?column?", 0, 0, 25, -1, -1, 0};
    pgf_buf_reset(&b);
    pgf_msg_row_description(&b, &col, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'T', 1), "RowDescription text"));
    const char *two[] = {"two"};
    const int32_t lens[] = {3};
    pgf_buf_reset(&b);
    pgf_msg_data_row(&b, two, lens, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'D', 1), "DataRow with lens"));
    pgf_buf_reset(&b);
    pgf_msg_command_complete(&b, "BEGIN");
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'C', 2), "CommandComplete BEGIN"));
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'T');
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'Z', 5), "ReadyForQuery T"));
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'E');
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'Z', 6), "ReadyForQuery E"));
    pgf_buf_reset(&b);
    pgf_msg_command_complete(&b, "SET");
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'C', 4), "CommandComplete SET"));
    pgf_buf_reset(&b);
    pgf_msg_parameter_status(&b, "application_name", "changed");
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'S', 13), "ParameterStatus after SET"));
    pgf_buf_free(&b);
    pgf_t_msgs_free(m, n);
}

typedef struct err_case {
    const char *transcript;
    uint8_t type; /* 'E' or 'N' */
    int nth;
    pgf_error_fields f;
} err_case;

static const err_case err_cases[] = {
    {"a_simple_misc",
     'E',
     0,
     {"ERROR", "22012", "division by zero", NULL, NULL, NULL, NULL, "int.c", "869", "int4div"}},
    {"a_simple_misc",
     'E',
     1,
     {"ERROR", "42601", "syntax error at or near \"SELEC\"", NULL, NULL, "1", NULL, "scan.l",
      "1188", "scanner_yyerror"}},
    {"a_simple_misc",
     'N',
     0,
     {"NOTICE", "00000", "hello", NULL, NULL, NULL,
      "PL/pgSQL function inline_code_block line 1 at RAISE", "pl_exec.c", "3891",
      "exec_stmt_raise"}},
    {"e_scram_wrong",
     'E',
     0,
     {"FATAL", "28P01", "password authentication failed for user \"u_scram\"", NULL, NULL, NULL,
      NULL, "auth.c", "334", "auth_failed"}},
    {"l_max_conn_too_many_clients",
     'E',
     0,
     {"FATAL", "53300", "sorry, too many clients already", NULL, NULL, NULL, NULL, "proc.c", "357",
      "InitProcess"}},
    {"k_terminate_idle",
     'E',
     0,
     {"FATAL", "57P01", "terminating connection due to administrator command", NULL, NULL, NULL,
      NULL, "postgres.c", "3211", "ProcessInterrupts"}},
    {"j_db_not_exist",
     'E',
     0,
     {"FATAL", "3D000", "database \"no_such_db\" does not exist", NULL, NULL, NULL, NULL,
      "postinit.c", "948", "InitPostgres"}},
    {"k_kill9_backend_running.conn2",
     'N',
     0,
     {"WARNING", "57P02", "terminating connection because of crash of another server process",
      "The postmaster has commanded this server process to roll back the current transaction "
      "and exit, because another server process exited abnormally and possibly corrupted "
      "shared memory.",
      "In a moment you should be able to reconnect to the database and repeat your command.", NULL,
      NULL, "postgres.c", "2895", "quickdie"}},
};

static void build_errors(void)
{
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++) {
        const err_case *c = &err_cases[i];
        pgf_t_msg *m;
        int n = load(c->transcript, &m);
        pgf_buf b = PGF_BUF_INIT;
        if (c->type == 'E')
            pgf_msg_error(&b, &c->f);
        else
            pgf_msg_notice(&b, &c->f);
        char what[128];
        snprintf(what, sizeof what, "%s %c %s", c->transcript, c->type, c->f.sqlstate);
        CU_ASSERT(same_bytes(&b, nth(m, n, 'S', c->type, c->nth), what));
        pgf_buf_free(&b);
        pgf_t_msgs_free(m, n);
    }
}

static void build_auth_requests(void)
{
    pgf_t_msg *m;
    pgf_buf b = PGF_BUF_INIT;
    int n = load("d_scram_ok", &m);
    const char *mech[] = {"SCRAM-SHA-256"};
    pgf_msg_auth_sasl(&b, mech, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'R', 0), "AuthenticationSASL"));
    static const char cont[] = "r=myYjauH69Q5kFgTe6feGBbFeQC7jy48eqCKMD09FgcmP0qPn,"
                               "s=Stm+DvqYYzXHJHqK+gNoTw==,i=4096";
    pgf_buf_reset(&b);
    pgf_msg_auth(&b, PGF_AUTH_SASL_CONTINUE, cont, strlen(cont));
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'R', 1), "AuthenticationSASLContinue"));
    static const char fin[] = "v=jZv0AU1esN98MIswLRi6Y2TG8m1KkfWySIN/oHvit0w=";
    pgf_buf_reset(&b);
    pgf_msg_auth(&b, PGF_AUTH_SASL_FINAL, fin, strlen(fin));
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'R', 2), "AuthenticationSASLFinal"));
    pgf_t_msgs_free(m, n);

    n = load("c_md5_ok", &m);
    static const uint8_t salt[4] = {0xdd, 0x8e, 0x7c, 0x14};
    pgf_buf_reset(&b);
    pgf_msg_auth(&b, PGF_AUTH_MD5, salt, 4);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'R', 0), "AuthenticationMD5Password"));
    pgf_t_msgs_free(m, n);

    n = load("b_password_ok", &m);
    pgf_buf_reset(&b);
    pgf_msg_auth(&b, PGF_AUTH_CLEARTEXT, NULL, 0);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'R', 0), "AuthenticationCleartextPassword"));
    pgf_t_msgs_free(m, n);
    pgf_buf_free(&b);
}

static void build_extended_and_negotiate(void)
{
    pgf_t_msg *m;
    pgf_buf b = PGF_BUF_INIT;
    int n = load("i_extended_raw_pipeline_error", &m);
    pgf_msg_empty(&b, PGF_BE_PARSE_COMPLETE);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', '1', 0), "ParseComplete"));
    pgf_buf_reset(&b);
    uint32_t oid = 23;
    pgf_msg_parameter_description(&b, &oid, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 't', 0), "ParameterDescription"));
    pgf_buf_reset(&b);
    pgf_msg_empty(&b, PGF_BE_CLOSE_COMPLETE);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', '3', 0), "CloseComplete"));
    pgf_t_msgs_free(m, n);

    n = load("i_extended_select1", &m);
    pgf_buf_reset(&b);
    pgf_msg_empty(&b, PGF_BE_BIND_COMPLETE);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', '2', 0), "BindComplete"));
    pgf_t_msgs_free(m, n);

    n = load("x_startup_protocol_3_1_with_pq_option", &m);
    const char *opts[] = {"_pq_.foo"};
    pgf_buf_reset(&b);
    pgf_msg_negotiate_protocol(&b, PGF_PROTO_V3, opts, 1);
    CU_ASSERT(same_bytes(&b, nth(m, n, 'S', 'v', 0), "NegotiateProtocolVersion"));
    pgf_t_msgs_free(m, n);

    /* The v2 error is not framed by the relay (no length word), so the
     * expected bytes come from docs/postgres15-facts.md §1: 'E' text '\0'. */
    static const char v2[] = "FATAL:  unsupported frontend protocol 2.0: server supports 3.0 to "
                             "3.0\n";
    pgf_buf_reset(&b);
    pgf_msg_v2_error(&b, v2);
    CU_ASSERT_FALSE(b.failed);
    CU_ASSERT_EQUAL(b.len, 1 + sizeof v2);
    CU_ASSERT_EQUAL(b.data[0], 'E');
    CU_ASSERT(memcmp(b.data + 1, v2, sizeof v2) == 0);

    /* NULL values in a DataRow are length -1 with no bytes. */
    pgf_buf_reset(&b);
    const char *vals[] = {NULL, "x"};
    pgf_msg_data_row(&b, vals, NULL, 2);
    static const uint8_t want[] = {'D', 0, 0, 0, 15, 0, 2, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 'x'};
    CU_ASSERT_EQUAL(b.len, sizeof want);
    CU_ASSERT(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);
    pgf_buf_free(&b);
}

/* ---- builders: every recorded server message, decoded here and rebuilt ---- */

typedef struct rd {
    const uint8_t *p;
    size_t left;
    int bad;
} rd;

static const char *rd_str(rd *r)
{
    const uint8_t *z = r->left ? memchr(r->p, 0, r->left) : NULL;
    if (z == NULL) {
        r->bad = 1;
        return "";
    }
    const char *s = (const char *)r->p;
    r->left -= (size_t)(z - r->p) + 1;
    r->p = z + 1;
    return s;
}

static uint32_t rd_n(rd *r, int n)
{
    if (r->left < (size_t)n) {
        r->bad = 1;
        return 0;
    }
    uint32_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    r->left -= (size_t)n;
    return v;
}

/* Rebuild one recorded server message; 0 if it is of a kind we do not build. */
static int rebuild(const uint8_t *m, size_t len, pgf_buf *b)
{
    rd r = {m + 5, len - 5, 0};
    switch (m[0]) {
    case 'R': {
        uint32_t code = rd_n(&r, 4);
        if (code == PGF_AUTH_SASL) {
            const char *mech[8];
            int k = 0;
            while (!r.bad && r.left > 1 && k < 8)
                mech[k++] = rd_str(&r);
            pgf_msg_auth_sasl(b, mech, k);
        } else {
            pgf_msg_auth(b, code, r.p, r.left);
        }
        return 1;
    }
    case 'S': {
        const char *k = rd_str(&r);
        const char *v = rd_str(&r);
        pgf_msg_parameter_status(b, k, v);
        return 1;
    }
    case 'K': {
        uint32_t pid = rd_n(&r, 4), key = rd_n(&r, 4);
        pgf_msg_backend_key(b, (int32_t)pid, (int32_t)key);
        return 1;
    }
    case 'Z':
        pgf_msg_ready(b, (char)rd_n(&r, 1));
        return 1;
    case 'C':
        pgf_msg_command_complete(b, rd_str(&r));
        return 1;
    case 'I':
    case '1':
    case '2':
    case '3':
    case 'n':
    case 's':
        pgf_msg_empty(b, m[0]);
        return 1;
    case 'E':
    case 'N': {
        pgf_error_fields f = {0};
        const char *v = NULL;
        for (;;) {
            uint32_t code = rd_n(&r, 1);
            if (r.bad || code == 0)
                break;
            const char *s = rd_str(&r);
            switch (code) {
            case 'S':
                f.severity = s;
                break;
            case 'V':
                v = s;
                break;
            case 'C':
                f.sqlstate = s;
                break;
            case 'M':
                f.message = s;
                break;
            case 'D':
                f.detail = s;
                break;
            case 'H':
                f.hint = s;
                break;
            case 'P':
                f.position = s;
                break;
            case 'W':
                f.where = s;
                break;
            case 'F':
                f.file = s;
                break;
            case 'L':
                f.line = s;
                break;
            case 'R':
                f.routine = s;
                break;
            default:
                return 0;
            }
        }
        if (v == NULL || f.severity == NULL || strcmp(v, f.severity) != 0)
            return 0;
        if (m[0] == 'E')
            pgf_msg_error(b, &f);
        else
            pgf_msg_notice(b, &f);
        return 1;
    }
    case 'T': {
        uint16_t nc = (uint16_t)rd_n(&r, 2);
        pgf_col cols[16];
        if (nc > 16)
            return 0;
        for (uint16_t i = 0; i < nc; i++) {
            cols[i].name = rd_str(&r);
            cols[i].table_oid = rd_n(&r, 4);
            cols[i].attnum = (int16_t)rd_n(&r, 2);
            cols[i].type_oid = rd_n(&r, 4);
            cols[i].typlen = (int16_t)rd_n(&r, 2);
            cols[i].typmod = (int32_t)rd_n(&r, 4);
            cols[i].format = (int16_t)rd_n(&r, 2);
        }
        pgf_msg_row_description(b, cols, nc);
        return 1;
    }
    case 'D': {
        uint16_t nv = (uint16_t)rd_n(&r, 2);
        const char *vals[16];
        int32_t lens[16];
        if (nv > 16)
            return 0;
        for (uint16_t i = 0; i < nv; i++) {
            lens[i] = (int32_t)rd_n(&r, 4);
            vals[i] = NULL;
            if (lens[i] >= 0 && (size_t)lens[i] <= r.left) {
                vals[i] = (const char *)r.p;
                r.p += lens[i];
                r.left -= (size_t)lens[i];
            }
        }
        pgf_msg_data_row(b, vals, lens, nv);
        return 1;
    }
    case 't': {
        uint16_t no = (uint16_t)rd_n(&r, 2);
        uint32_t oids[16];
        if (no > 16)
            return 0;
        for (uint16_t i = 0; i < no; i++)
            oids[i] = rd_n(&r, 4);
        pgf_msg_parameter_description(b, oids, no);
        return 1;
    }
    case 'v': {
        uint32_t ver = rd_n(&r, 4);
        uint32_t no = rd_n(&r, 4);
        const char *opts[8];
        if (no > 8)
            return 0;
        for (uint32_t i = 0; i < no; i++)
            opts[i] = rd_str(&r);
        pgf_msg_negotiate_protocol(b, ver, opts, (int)no);
        return 1;
    }
    default:
        return 0;
    }
}

static void rebuild_every_server_message(void)
{
    char **names;
    int nn = list_transcripts(&names);
    CU_ASSERT(nn >= 90);
    int rebuilt = 0;
    for (int t = 0; t < nn; t++) {
        pgf_t_msg *m;
        int n = load_any(names[t], &m);
        for (int i = 0; i < n; i++) {
            if (m[i].dir != 'S')
                continue;
            if (m[i].len == 1) { /* 'N'/'G' answer to SSLRequest/GSSENCRequest */
                CU_ASSERT(m[i].bytes[0] == 'N' || m[i].bytes[0] == 'G');
                continue;
            }
            uint8_t type = 0;
            size_t total = 0;
            CU_ASSERT_EQUAL(pgf_proto_frame_backend(m[i].bytes, m[i].len, &type, &total),
                            PGF_PROTO_OK);
            CU_ASSERT_EQUAL(total, m[i].len);
            CU_ASSERT_EQUAL(type, m[i].bytes[0]);
            for (size_t cut = 0; cut < m[i].len; cut++)
                CU_ASSERT_EQUAL(pgf_proto_frame_backend(m[i].bytes, cut, &type, &total),
                                PGF_PROTO_NEED_MORE);
            pgf_buf b = PGF_BUF_INIT;
            char what[160];
            snprintf(what, sizeof what, "%s line %d type %c", names[t], i + 1, m[i].bytes[0]);
            int ok = rebuild(m[i].bytes, m[i].len, &b);
            if (!ok)
                fprintf(stderr, "\n  %s: no builder\n", what);
            CU_ASSERT(ok && same_bytes(&b, &m[i], what));
            rebuilt += ok;
            pgf_buf_free(&b);
        }
        pgf_t_msgs_free(m, n);
    }
    CU_ASSERT(rebuilt > 1000);
    free_names(names, nn);
}

/* ---- parsers ---- */

/* Every string a parser hands out lies inside the framed body with its NUL. */
static int inside(const pgf_fe_msg *msg, const char *s)
{
    const uint8_t *p = (const uint8_t *)s;
    if (p < msg->body || p >= msg->body + msg->body_len)
        return 0;
    return memchr(p, 0, (size_t)(msg->body + msg->body_len - p)) != NULL;
}

/* Parse a framed client message the way the server will, given the last
 * authentication request code seen (for the three kinds of 'p'). */
static int parse_any(const pgf_fe_msg *msg, uint32_t last_auth)
{
    int rc = PGF_OK;
    if (msg->type == 0) {
        if (msg->code == PGF_PROTO_CANCEL_REQUEST) {
            pgf_cancel_req c;
            rc = pgf_proto_parse_cancel(msg, &c);
        } else if (msg->code == PGF_PROTO_SSL_REQUEST || msg->code == PGF_PROTO_GSSENC_REQUEST) {
            rc = msg->body_len == 0 ? PGF_OK : PGF_EPROTO;
        } else {
            pgf_startup s;
            const char *err = NULL;
            rc = pgf_proto_parse_startup(msg, &s, &err);
            for (int i = 0; rc == PGF_OK && i < s.nparams; i++)
                if (!inside(msg, s.keys[i]) || !inside(msg, s.values[i]))
                    rc = -1000;
            if (rc < 0 && rc != -1000)
                CU_ASSERT(err != NULL);
        }
        return rc;
    }
    switch (msg->type) {
    case PGF_FE_QUERY: {
        const char *q;
        rc = pgf_proto_parse_query(msg, &q);
        return rc == PGF_OK && !inside(msg, q) ? -1000 : rc;
    }
    case PGF_FE_PASSWORD: {
        if (last_auth == PGF_AUTH_SASL) {
            const char *mech;
            const uint8_t *d;
            size_t dl;
            rc = pgf_proto_parse_sasl_initial(msg, &mech, &d, &dl);
            if (rc == PGF_OK &&
                (!inside(msg, mech) || (d != NULL && d + dl > msg->body + msg->body_len)))
                rc = -1000;
        } else if (last_auth == PGF_AUTH_SASL_CONTINUE) {
            const uint8_t *d;
            size_t dl;
            rc = pgf_proto_parse_sasl_response(msg, &d, &dl);
        } else {
            const char *pw;
            rc = pgf_proto_parse_password(msg, &pw);
            if (rc == PGF_OK && !inside(msg, pw))
                rc = -1000;
        }
        return rc;
    }
    case PGF_FE_PARSE: {
        pgf_parse_msg p;
        rc = pgf_proto_parse_parse(msg, &p);
        if (rc == PGF_OK && (!inside(msg, p.stmt) || !inside(msg, p.query)))
            rc = -1000;
        return rc;
    }
    case PGF_FE_BIND: {
        pgf_bind_msg *bm = malloc(sizeof *bm);
        CU_ASSERT_FATAL(bm != NULL);
        rc = pgf_proto_parse_bind(msg, bm);
        if (rc == PGF_OK && (!inside(msg, bm->portal) || !inside(msg, bm->stmt)))
            rc = -1000;
        for (int i = 0; rc == PGF_OK && i < bm->nparams; i++)
            if (bm->values[i] != NULL && bm->values[i] + bm->lens[i] > msg->body + msg->body_len)
                rc = -1000;
        free(bm);
        return rc;
    }
    case PGF_FE_DESCRIBE:
    case PGF_FE_CLOSE: {
        char kind;
        const char *name;
        rc = pgf_proto_parse_describe_close(msg, &kind, &name);
        return rc == PGF_OK && !inside(msg, name) ? -1000 : rc;
    }
    case PGF_FE_EXECUTE: {
        pgf_execute_msg e;
        rc = pgf_proto_parse_execute(msg, &e);
        return rc == PGF_OK && !inside(msg, e.portal) ? -1000 : rc;
    }
    case PGF_FE_SYNC:
    case PGF_FE_FLUSH:
    case PGF_FE_TERMINATE:
        return msg->body_len == 0 ? PGF_OK : PGF_EPROTO;
    default:
        return PGF_EPROTO;
    }
}

static void parse_every_client_message(void)
{
    char **names;
    int nn = list_transcripts(&names);
    int parsed = 0;
    for (int t = 0; t < nn; t++) {
        pgf_t_msg *m;
        int n = load_any(names[t], &m);
        uint32_t last_auth = 0;
        bool startup = true;
        for (int i = 0; i < n; i++) {
            if (m[i].dir == 'S') {
                if (m[i].bytes[0] == 'R' && m[i].len >= 9)
                    last_auth = pgf_rd_be32(m[i].bytes + 5);
                continue;
            }
            size_t max = startup ? PGF_PROTO_MAX_STARTUP_LEN : PGF_PROTO_MAX_MSG_LEN;
            pgf_fe_msg msg;
            const char *err = NULL;
            int rc = pgf_proto_frame(m[i].bytes, m[i].len, startup, max, &msg, &err);
            char what[160];
            snprintf(what, sizeof what, "%s line %d", names[t], i + 1);
            if (rc != PGF_PROTO_OK || msg.total_len != m[i].len)
                fprintf(stderr, "\n  %s: frame rc %d\n", what, rc);
            CU_ASSERT_EQUAL_FATAL(rc, PGF_PROTO_OK);
            CU_ASSERT_EQUAL(msg.total_len, m[i].len);
            for (size_t cut = 0; cut < m[i].len; cut++) {
                pgf_fe_msg part;
                CU_ASSERT_EQUAL(pgf_proto_frame(m[i].bytes, cut, startup, max, &part, &err),
                                PGF_PROTO_NEED_MORE);
            }
            rc = parse_any(&msg, last_auth);
            if (rc != PGF_OK)
                fprintf(stderr, "\n  %s: parse rc %d\n", what, rc);
            CU_ASSERT_EQUAL(rc, PGF_OK);
            parsed++;
            if (msg.type == 0 && (msg.code >> 16) >= 2 && (msg.code >> 16) <= 3)
                startup = false;
        }
        pgf_t_msgs_free(m, n);
    }
    CU_ASSERT(parsed > 300);
    free_names(names, nn);
}

/* The client side of a transcript as one byte stream frames into the same
 * messages (what the server sees when several arrive in one read). */
static void frame_concatenated_stream(void)
{
    pgf_t_msg *m;
    int n = load("p5_pgbench_t3_c1_prepared.conn2", &m);
    pgf_buf all = PGF_BUF_INIT;
    int count = 0;
    for (int i = 0; i < n; i++)
        if (m[i].dir == 'C') {
            pgf_buf_put(&all, m[i].bytes, m[i].len);
            count++;
        }
    CU_ASSERT_FATAL(!all.failed);
    size_t off = 0;
    int k = 0, i = 0;
    bool startup = true;
    while (off < all.len) {
        pgf_fe_msg msg;
        const char *err;
        int rc = pgf_proto_frame(all.data + off, all.len - off, startup,
                                 startup ? PGF_PROTO_MAX_STARTUP_LEN : PGF_PROTO_MAX_MSG_LEN, &msg,
                                 &err);
        CU_ASSERT_EQUAL_FATAL(rc, PGF_PROTO_OK);
        while (m[i].dir != 'C')
            i++;
        CU_ASSERT_EQUAL(msg.total_len, m[i].len);
        CU_ASSERT(memcmp(all.data + off, m[i].bytes, m[i].len) == 0);
        if (msg.type == 0 && msg.code == PGF_PROTO_V3)
            startup = false;
        off += msg.total_len;
        i++;
        k++;
    }
    CU_ASSERT_EQUAL(k, count);
    pgf_buf_free(&all);
    pgf_t_msgs_free(m, n);
}

static void parse_values(void)
{
    pgf_t_msg *m;
    pgf_fe_msg msg;
    const char *err;

    /* StartupMessage parameters */
    int n = load("a_trust_simple_query", &m);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(m[0].bytes, m[0].len, true, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL(msg.code, PGF_PROTO_V3);
    pgf_startup s;
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_startup(&msg, &s, &err), PGF_OK);
    CU_ASSERT_EQUAL(s.major, 3);
    CU_ASSERT_EQUAL(s.minor, 0);
    CU_ASSERT_EQUAL(s.nparams, 3);
    CU_ASSERT_STRING_EQUAL(pgf_startup_get(&s, "user"), "u_trust");
    CU_ASSERT_STRING_EQUAL(pgf_startup_get(&s, "database"), "db_trust");
    CU_ASSERT_STRING_EQUAL(pgf_startup_get(&s, "application_name"), "pqprobe");
    CU_ASSERT_PTR_NULL(pgf_startup_get(&s, "options"));
    const pgf_t_msg *q = nth(m, n, 'C', 'Q', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(q->bytes, q->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err), PGF_PROTO_OK);
    const char *sql;
    CU_ASSERT_EQUAL(pgf_proto_parse_query(&msg, &sql), PGF_OK);
    CU_ASSERT_STRING_EQUAL(sql, "SELECT 1");
    pgf_t_msgs_free(m, n);

    /* protocol 3.1 with an _pq_ option; protocol 2.0 */
    n = load("x_startup_protocol_3_1_with_pq_option", &m);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(m[0].bytes, m[0].len, true, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_startup(&msg, &s, &err), PGF_OK);
    CU_ASSERT_EQUAL(s.major, 3);
    CU_ASSERT_EQUAL(s.minor, 1);
    CU_ASSERT_STRING_EQUAL(pgf_startup_get(&s, "_pq_.foo"), "bar");
    pgf_t_msgs_free(m, n);
    n = load("x_startup_protocol_2_0", &m);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(m[0].bytes, m[0].len, true, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_startup(&msg, &s, &err), PGF_OK);
    CU_ASSERT_EQUAL(s.major, 2);
    pgf_t_msgs_free(m, n);

    /* SSLRequest */
    n = load("f_sslrequest_then_startup", &m);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(m[0].bytes, m[0].len, true, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL(msg.code, PGF_PROTO_SSL_REQUEST);
    CU_ASSERT_EQUAL(msg.body_len, 0);
    pgf_t_msgs_free(m, n);

    /* CancelRequest carries the pid/key of the BackendKeyData of conn 1 */
    pgf_t_msg *k;
    int nk = load("m_cancel_raw_right_key", &k);
    const pgf_t_msg *key = nth(k, nk, 'S', 'K', 0);
    CU_ASSERT_FATAL(key != NULL);
    n = load("m_cancel_raw_right_key.conn2", &m);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(m[0].bytes, m[0].len, true, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL(msg.code, PGF_PROTO_CANCEL_REQUEST);
    pgf_cancel_req c;
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_cancel(&msg, &c), PGF_OK);
    CU_ASSERT_EQUAL(c.pid, (int32_t)pgf_rd_be32(key->bytes + 5));
    CU_ASSERT_EQUAL(c.key, (int32_t)pgf_rd_be32(key->bytes + 9));
    pgf_t_msgs_free(m, n);
    pgf_t_msgs_free(k, nk);

    /* Extended protocol with a parameter */
    n = load("i_extended_param", &m);
    const pgf_t_msg *p = nth(m, n, 'C', 'P', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(p->bytes, p->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err), PGF_PROTO_OK);
    pgf_parse_msg pm;
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_parse(&msg, &pm), PGF_OK);
    CU_ASSERT_STRING_EQUAL(pm.stmt, "");
    CU_ASSERT_STRING_EQUAL(pm.query, "SELECT $1::int + 1 AS answer");
    const pgf_t_msg *bb = nth(m, n, 'C', 'B', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(bb->bytes, bb->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err),
        PGF_PROTO_OK);
    pgf_bind_msg bm;
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_bind(&msg, &bm), PGF_OK);
    CU_ASSERT_EQUAL(bm.nparams, 1);
    CU_ASSERT_EQUAL(bm.lens[0], 2);
    CU_ASSERT(memcmp(bm.values[0], "41", 2) == 0);
    CU_ASSERT_EQUAL(bm.nformats, 0);
    CU_ASSERT_EQUAL(bm.nresult_formats, 1);
    const pgf_t_msg *d = nth(m, n, 'C', 'D', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(d->bytes, d->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err), PGF_PROTO_OK);
    char kind = 0;
    const char *name;
    CU_ASSERT_EQUAL(pgf_proto_parse_describe_close(&msg, &kind, &name), PGF_OK);
    CU_ASSERT_EQUAL(kind, 'P');
    CU_ASSERT_STRING_EQUAL(name, "");
    const pgf_t_msg *e = nth(m, n, 'C', 'E', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(e->bytes, e->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err), PGF_PROTO_OK);
    pgf_execute_msg ex;
    CU_ASSERT_EQUAL(pgf_proto_parse_execute(&msg, &ex), PGF_OK);
    CU_ASSERT_STRING_EQUAL(ex.portal, "");
    CU_ASSERT_EQUAL(ex.max_rows, 0);
    pgf_t_msgs_free(m, n);

    /* Close 'S' "stmt1" */
    n = load("i_extended_raw_pipeline_error", &m);
    const pgf_t_msg *cl = nth(m, n, 'C', 'C', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(cl->bytes, cl->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL(pgf_proto_parse_describe_close(&msg, &kind, &name), PGF_OK);
    CU_ASSERT_EQUAL(kind, 'S');
    CU_ASSERT_STRING_EQUAL(name, "stmt1");
    pgf_t_msgs_free(m, n);

    /* SASLInitialResponse and SASLResponse */
    n = load("d_scram_ok", &m);
    const pgf_t_msg *p1 = nth(m, n, 'C', 'p', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(p1->bytes, p1->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err),
        PGF_PROTO_OK);
    const char *mech;
    const uint8_t *data;
    size_t dlen;
    CU_ASSERT_EQUAL_FATAL(pgf_proto_parse_sasl_initial(&msg, &mech, &data, &dlen), PGF_OK);
    CU_ASSERT_STRING_EQUAL(mech, "SCRAM-SHA-256");
    static const char cf[] = "n,,n=,r=myYjauH69Q5kFgTe6feGBbFe";
    CU_ASSERT_EQUAL(dlen, strlen(cf));
    CU_ASSERT(memcmp(data, cf, strlen(cf)) == 0);
    const pgf_t_msg *p2 = nth(m, n, 'C', 'p', 1);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(p2->bytes, p2->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err),
        PGF_PROTO_OK);
    CU_ASSERT_EQUAL(pgf_proto_parse_sasl_response(&msg, &data, &dlen), PGF_OK);
    CU_ASSERT_EQUAL(dlen, p2->len - 5);
    CU_ASSERT(dlen > 7 && memcmp(data, "c=biws,", 7) == 0);
    pgf_t_msgs_free(m, n);

    /* PasswordMessage with an md5 response */
    n = load("c_md5_ok", &m);
    const pgf_t_msg *pw = nth(m, n, 'C', 'p', 0);
    CU_ASSERT_EQUAL_FATAL(
        pgf_proto_frame(pw->bytes, pw->len, false, PGF_PROTO_MAX_MSG_LEN, &msg, &err),
        PGF_PROTO_OK);
    const char *pass;
    CU_ASSERT_EQUAL(pgf_proto_parse_password(&msg, &pass), PGF_OK);
    CU_ASSERT_STRING_EQUAL(pass, "md5fca0aa5e796d8aab0a925c08aeeb878a");
    pgf_t_msgs_free(m, n);
}

typedef struct len_case {
    const char *name;
    bool startup;
    size_t max;
    uint8_t bytes[9];
    size_t len;
    int want;
    const char *errmsg;
} len_case;

static const len_case len_cases[] = {
    {"startup len 0", true, 10000, {0, 0, 0, 0}, 4, PGF_EPROTO, "invalid length of startup packet"},
    {"startup len 4", true, 10000, {0, 0, 0, 4}, 4, PGF_EPROTO, "invalid length of startup packet"},
    {"startup len 7", true, 10000, {0, 0, 0, 7}, 4, PGF_EPROTO, "invalid length of startup packet"},
    {"startup len 10001",
     true,
     10000,
     {0, 0, 0x27, 0x11},
     4,
     PGF_ETOOBIG,
     "invalid length of startup packet"},
    {"startup len 2^32-1",
     true,
     10000,
     {0xff, 0xff, 0xff, 0xff},
     4,
     PGF_ETOOBIG,
     "invalid length of startup packet"},
    {"startup len 8 ok", true, 10000, {0, 0, 0, 8, 4, 0xd2, 0x16, 0x2f}, 8, PGF_PROTO_OK, NULL},
    {"startup len 10000 short",
     true,
     10000,
     {0, 0, 0x27, 0x10, 0, 3},
     6,
     PGF_PROTO_NEED_MORE,
     NULL},
    {"typed len 0", false, 1u << 20, {'Q', 0, 0, 0, 0}, 5, PGF_EPROTO, "invalid message length"},
    {"typed len 3", false, 1u << 20, {'Q', 0, 0, 0, 3}, 5, PGF_EPROTO, "invalid message length"},
    {"typed len max+1", false, 100, {'Q', 0, 0, 0, 101}, 5, PGF_ETOOBIG, "invalid message length"},
    {"typed len 2^31",
     false,
     PGF_PROTO_MAX_MSG_LEN,
     {'Q', 0x80, 0, 0, 0},
     5,
     PGF_ETOOBIG,
     "invalid message length"},
    {"typed len 4 ok", false, 100, {'S', 0, 0, 0, 4}, 5, PGF_PROTO_OK, NULL},
    {"typed len max short", false, 100, {'Q', 0, 0, 0, 100, 'x'}, 6, PGF_PROTO_NEED_MORE, NULL},
};

static void frame_bad_lengths(void)
{
    for (size_t i = 0; i < sizeof len_cases / sizeof len_cases[0]; i++) {
        const len_case *c = &len_cases[i];
        pgf_fe_msg msg;
        const char *err = NULL;
        int rc = pgf_proto_frame(c->bytes, c->len, c->startup, c->max, &msg, &err);
        if (rc != c->want)
            fprintf(stderr, "\n  %s: rc %d want %d\n", c->name, rc, c->want);
        CU_ASSERT_EQUAL(rc, c->want);
        if (c->errmsg != NULL) {
            CU_ASSERT_PTR_NOT_NULL_FATAL(err);
            CU_ASSERT_STRING_EQUAL(err, c->errmsg);
        }
    }
    /* Backend framing shares the typed rules. */
    static const uint8_t bad[] = {'Z', 0, 0, 0, 2};
    CU_ASSERT_EQUAL(pgf_proto_frame_backend(bad, sizeof bad, NULL, NULL), PGF_EPROTO);
}

typedef struct body_case {
    const char *name;
    uint8_t type; /* 0: startup (code V3) */
    const char *body;
    size_t len;
    int want;
} body_case;

#define BODY(s) s, sizeof(s) - 1

static const body_case body_cases[] = {
    {"startup: empty", 0, BODY(""), PGF_EPROTO},
    {"startup: only terminator", 0, BODY("\0"), PGF_OK},
    {"startup: no terminator", 0, BODY("user\0u\0"), PGF_EPROTO},
    {"startup: key without value", 0, BODY("user\0"), PGF_EPROTO},
    {"startup: key unterminated", 0, BODY("user"), PGF_EPROTO},
    {"startup: value unterminated", 0, BODY("user\0u"), PGF_EPROTO},
    {"startup: byte after terminator", 0, BODY("user\0u\0\0x"), PGF_EPROTO},
    {"startup: two terminators", 0, BODY("user\0u\0\0\0"), PGF_EPROTO},
    {"startup: ok", 0, BODY("user\0u\0database\0d\0\0"), PGF_OK},
    {"Q: empty body", 'Q', BODY(""), PGF_EPROTO},
    {"Q: no NUL", 'Q', BODY("SELECT 1"), PGF_EPROTO},
    {"Q: trailing byte", 'Q', BODY("SELECT 1\0x"), PGF_EPROTO},
    {"Q: empty query", 'Q', BODY("\0"), PGF_OK},
    {"p: password no NUL", 'p', BODY("secret"), PGF_EPROTO},
    {"p: password two strings", 'p', BODY("a\0b\0"), PGF_EPROTO},
    {"P: missing param count", 'P', BODY("\0SELECT 1\0"), PGF_EPROTO},
    {"P: param types short", 'P', BODY("\0SELECT 1\0\0\2\0\0\0\x17"), PGF_EPROTO},
    {"P: ok with one type", 'P', BODY("s\0SELECT $1\0\0\1\0\0\0\x17"), PGF_OK},
    {"P: trailing", 'P', BODY("\0SELECT 1\0\0\0x"), PGF_EPROTO},
    {"B: ok no params", 'B', BODY("\0\0\0\0\0\0\0\1\0\0"), PGF_OK},
    {"B: NULL param", 'B', BODY("\0\0\0\0\0\1\xff\xff\xff\xff\0\0"), PGF_OK},
    {"B: param len -2", 'B', BODY("\0\0\0\0\0\1\xff\xff\xff\xfe\0\0"), PGF_EPROTO},
    {"B: param len past end", 'B', BODY("\0\0\0\0\0\1\0\0\0\x09x\0\0"), PGF_EPROTO},
    {"B: formats != params", 'B', BODY("\0\0\0\2\0\0\0\0\0\1\0\0\0\1x\0\0"), PGF_EPROTO},
    {"B: too many params", 'B', BODY("\0\0\0\0\x01\x01"), PGF_ETOOBIG},
    {"B: result formats short", 'B', BODY("\0\0\0\0\0\0\0\2\0\0"), PGF_EPROTO},
    {"D: bad kind", 'D', BODY("X\0"), PGF_EPROTO},
    {"D: name unterminated", 'D', BODY("Sname"), PGF_EPROTO},
    {"C: ok", 'C', BODY("Pcur\0"), PGF_OK},
    {"E: short max_rows", 'E', BODY("\0\0\0"), PGF_EPROTO},
    {"E: trailing", 'E', BODY("\0\0\0\0\0\0"), PGF_EPROTO},
    {"E: ok", 'E', BODY("p\0\0\0\0\x0a"), PGF_OK},
};

static void parse_malformed_bodies(void)
{
    for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
        const body_case *c = &body_cases[i];
        pgf_fe_msg msg = {c->type, c->type ? 0 : PGF_PROTO_V3, (const uint8_t *)c->body, c->len,
                          c->len + 5};
        int rc = parse_any(&msg, 0);
        if (rc != c->want)
            fprintf(stderr, "\n  %s: rc %d want %d\n", c->name, rc, c->want);
        CU_ASSERT_EQUAL(rc, c->want);
    }
    /* SASLInitialResponse specifics */
    static const struct {
        const char *name;
        const char *body;
        size_t len;
        int want;
        int null_data;
    } sasl[] = {
        {"no data (-1)", BODY("SCRAM-SHA-256\0\xff\xff\xff\xff"), PGF_OK, 1},
        {"empty data", BODY("SCRAM-SHA-256\0\0\0\0\0"), PGF_OK, 0},
        {"len -2", BODY("SCRAM-SHA-256\0\xff\xff\xff\xfe"), PGF_EPROTO, 0},
        {"len past end", BODY("SCRAM-SHA-256\0\0\0\0\x05n,,"), PGF_EPROTO, 0},
        {"trailing", BODY("SCRAM-SHA-256\0\0\0\0\x01nn"), PGF_EPROTO, 0},
        {"no mechanism NUL", BODY("SCRAM"), PGF_EPROTO, 0},
    };
    for (size_t i = 0; i < sizeof sasl / sizeof sasl[0]; i++) {
        pgf_fe_msg msg = {'p', 0, (const uint8_t *)sasl[i].body, sasl[i].len, sasl[i].len + 5};
        const char *mech;
        const uint8_t *data = (const uint8_t *)"";
        size_t dl = 99;
        int rc = pgf_proto_parse_sasl_initial(&msg, &mech, &data, &dl);
        if (rc != sasl[i].want)
            fprintf(stderr, "\n  sasl %s: rc %d\n", sasl[i].name, rc);
        CU_ASSERT_EQUAL(rc, sasl[i].want);
        if (rc == PGF_OK && sasl[i].null_data)
            CU_ASSERT(data == NULL && dl == 0);
    }
    /* Cancel must be exactly pid + key. */
    pgf_fe_msg cm = {0, PGF_PROTO_CANCEL_REQUEST, (const uint8_t *)"12345678", 7, 15};
    pgf_cancel_req cr;
    CU_ASSERT_EQUAL(pgf_proto_parse_cancel(&cm, &cr), PGF_EPROTO);
    /* A parser refuses a message of another type. */
    pgf_fe_msg wrong = {'Q', 0, (const uint8_t *)"x\0", 2, 7};
    pgf_execute_msg ex;
    CU_ASSERT_EQUAL(pgf_proto_parse_execute(&wrong, &ex), PGF_EINVAL);
}

/* Mutations of recorded client messages and random bytes: every result is
 * a known code and every handed-out pointer is inside the input (the
 * fuzz target does the same without a bound; this is the bounded CI run). */
static void garbage_never_escapes(void)
{
    static const char *const sources[] = {"i_extended_param", "d_scram_ok", "a_trust_simple_query",
                                          "m_cancel_raw_right_key.conn2",
                                          "x_startup_protocol_3_1_with_pq_option"};
    pgf_rng rng;
    pgf_rng_init(&rng, 20240601, 7, 0);
    int runs = 0;
    for (size_t s = 0; s < sizeof sources / sizeof sources[0]; s++) {
        pgf_t_msg *m;
        int n = load(sources[s], &m);
        for (int i = 0; i < n; i++) {
            if (m[i].dir != 'C')
                continue;
            for (int iter = 0; iter < 300; iter++) {
                size_t len = m[i].len;
                uint8_t *b = malloc(len + 8);
                CU_ASSERT_FATAL(b != NULL);
                memcpy(b, m[i].bytes, len);
                int flips = 1 + (int)pgf_rng_below(&rng, 4);
                for (int f = 0; f < flips && len > 0; f++) {
                    size_t at = pgf_rng_below(&rng, len);
                    b[at] = pgf_rng_below(&rng, 3) == 0 ? 0 : (uint8_t)pgf_rng_next(&rng);
                }
                if (pgf_rng_below(&rng, 4) == 0 && len > 1)
                    len = pgf_rng_below(&rng, len);
                bool startup = b[0] == 0;
                pgf_fe_msg msg;
                const char *err;
                int rc = pgf_proto_frame(b, len, startup, PGF_PROTO_MAX_STARTUP_LEN, &msg, &err);
                CU_ASSERT(rc == PGF_PROTO_OK || rc == PGF_PROTO_NEED_MORE || rc == PGF_EPROTO ||
                          rc == PGF_ETOOBIG);
                if (rc == PGF_PROTO_OK) {
                    CU_ASSERT(msg.total_len <= len);
                    for (uint32_t auth = 0; auth <= PGF_AUTH_SASL_CONTINUE; auth++) {
                        if (msg.type != 'p' && auth > 0)
                            break;
                        int prc = parse_any(&msg, auth);
                        CU_ASSERT(prc == PGF_OK || prc == PGF_EPROTO || prc == PGF_ETOOBIG ||
                                  prc == PGF_EINVAL);
                    }
                }
                free(b);
                runs++;
            }
        }
        pgf_t_msgs_free(m, n);
    }
    /* Random bytes behind a valid header of every type. */
    static const uint8_t types[] = {'Q', 'P', 'B', 'D', 'C', 'E', 'p', 'S', 'X', 0};
    for (int iter = 0; iter < 5000; iter++) {
        uint8_t b[64];
        size_t blen = pgf_rng_below(&rng, 40);
        for (size_t j = 0; j < blen; j++) {
            uint64_t r = pgf_rng_below(&rng, 8);
            b[9 + j] = r < 3 ? 0 : r < 4 ? 0xff : (uint8_t)pgf_rng_next(&rng);
        }
        uint8_t t = types[pgf_rng_below(&rng, sizeof types)];
        pgf_fe_msg msg = {t, t ? 0 : PGF_PROTO_V3, b + 9, blen, blen + 5};
        for (uint32_t auth = 0; auth <= PGF_AUTH_SASL_CONTINUE; auth++) {
            int prc = parse_any(&msg, auth);
            CU_ASSERT(prc == PGF_OK || prc == PGF_EPROTO || prc == PGF_ETOOBIG);
        }
        runs++;
    }
    CU_ASSERT(runs > 5000);
}

static const pgf_test builder_tests[] = {
    {"trust_startup_reply", build_trust_startup_reply},
    {"simple_misc", build_simple_misc},
    {"errors_and_notices", build_errors},
    {"auth_requests", build_auth_requests},
    {"extended_negotiate_v2", build_extended_and_negotiate},
    {"rebuild_every_server_message", rebuild_every_server_message},
    PGF_TESTS_END,
};

static const pgf_test parser_tests[] = {
    {"every_client_message", parse_every_client_message},
    {"concatenated_stream", frame_concatenated_stream},
    {"values", parse_values},
    {"bad_lengths", frame_bad_lengths},
    {"malformed_bodies", parse_malformed_bodies},
    {"garbage_never_escapes", garbage_never_escapes},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_proto[] = {
    {"proto_builders", NULL, NULL, builder_tests},
    {"proto_parsers", NULL, NULL, parser_tests},
    PGF_SUITES_END,
};
