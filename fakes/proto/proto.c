/* proto.c - sans-I/O PostgreSQL v3 protocol codec (server side).
 *
 * Does: frame frontend messages (startup-phase and typed), parse the
 * frontend messages a fake server must understand, and build every backend
 * message byte-exact with what PostgreSQL 15 sends.
 *
 * Does not: read or write sockets, decide what a message means for the
 * session (that is fakes/server), or authenticate (auth.c).
 *
 * Every parser works on a bounded cursor over the framed body: each length
 * word is checked against the bytes that remain before it is used, every
 * string must find its NUL inside the body, and a message must be consumed
 * exactly (PostgreSQL's pq_getmsgend), so trailing garbage is an error.
 */
#include "pgfault/proto.h"

#include <string.h>

/* ---- framing ---- */

static void set_err(const char **errmsg, const char *msg)
{
    if (errmsg != NULL)
        *errmsg = msg;
}

int pgf_proto_frame(const uint8_t *data, size_t len, bool startup, size_t max_len, pgf_fe_msg *out,
                    const char **errmsg)
{
    if (data == NULL && len > 0)
        return PGF_EINVAL;
    if (startup) {
        if (len < 4)
            return PGF_PROTO_NEED_MORE;
        uint32_t plen = pgf_rd_be32(data);
        /* Checked before anything is buffered or allocated for the body. */
        if (plen < 8) {
            set_err(errmsg, "invalid length of startup packet");
            return PGF_EPROTO;
        }
        if (plen > max_len) {
            set_err(errmsg, "invalid length of startup packet");
            return PGF_ETOOBIG;
        }
        if (len < plen)
            return PGF_PROTO_NEED_MORE;
        out->type = 0;
        out->code = pgf_rd_be32(data + 4);
        out->body = data + 8;
        out->body_len = plen - 8;
        out->total_len = plen;
        return PGF_PROTO_OK;
    }
    if (len < 5)
        return PGF_PROTO_NEED_MORE;
    uint32_t mlen = pgf_rd_be32(data + 1);
    if (mlen < 4) {
        set_err(errmsg, "invalid message length");
        return PGF_EPROTO;
    }
    if (mlen > max_len) {
        set_err(errmsg, "invalid message length");
        return PGF_ETOOBIG;
    }
    if (len - 1 < mlen)
        return PGF_PROTO_NEED_MORE;
    out->type = data[0];
    out->code = 0;
    out->body = data + 5;
    out->body_len = mlen - 4;
    out->total_len = (size_t)mlen + 1;
    return PGF_PROTO_OK;
}

int pgf_proto_frame_backend(const uint8_t *data, size_t len, uint8_t *type, size_t *total_len)
{
    pgf_fe_msg m;
    int rc = pgf_proto_frame(data, len, false, PGF_PROTO_MAX_MSG_LEN, &m, NULL);
    if (rc != PGF_PROTO_OK)
        return rc;
    if (type != NULL)
        *type = m.type;
    if (total_len != NULL)
        *total_len = m.total_len;
    return PGF_PROTO_OK;
}

/* ---- bounded cursor ---- */

typedef struct cursor {
    const uint8_t *p;
    size_t left;
    bool bad;
} cursor;

static void cur_init(cursor *c, const pgf_fe_msg *msg)
{
    c->p = msg->body;
    c->left = msg->body_len;
    c->bad = false;
}

static const char *cur_cstr(cursor *c)
{
    if (c->bad)
        return NULL;
    const uint8_t *nul = c->left ? memchr(c->p, '\0', c->left) : NULL;
    if (nul == NULL) {
        c->bad = true;
        return NULL;
    }
    const char *s = (const char *)c->p;
    size_t n = (size_t)(nul - c->p) + 1;
    c->p += n;
    c->left -= n;
    return s;
}

static const uint8_t *cur_bytes(cursor *c, size_t n)
{
    if (c->bad || c->left < n) {
        c->bad = true;
        return NULL;
    }
    const uint8_t *s = c->p;
    c->p += n;
    c->left -= n;
    return s;
}

static uint8_t cur_u8(cursor *c)
{
    const uint8_t *p = cur_bytes(c, 1);
    return p ? p[0] : 0;
}

static uint16_t cur_be16(cursor *c)
{
    const uint8_t *p = cur_bytes(c, 2);
    return p ? pgf_rd_be16(p) : 0;
}

static uint32_t cur_be32(cursor *c)
{
    const uint8_t *p = cur_bytes(c, 4);
    return p ? pgf_rd_be32(p) : 0;
}

/* The message was well formed and consumed exactly. */
static int cur_end(const cursor *c)
{
    return (c->bad || c->left != 0) ? PGF_EPROTO : PGF_OK;
}

/* ---- parsers ---- */

int pgf_proto_parse_startup(const pgf_fe_msg *msg, pgf_startup *out, const char **errmsg)
{
    static const char layout[] = "invalid startup packet layout: expected terminator as last byte";
    if (msg == NULL || out == NULL || msg->type != 0)
        return PGF_EINVAL;
    memset(out, 0, sizeof *out);
    out->major = (uint16_t)(msg->code >> 16);
    out->minor = (uint16_t)(msg->code & 0xffffu);
    cursor c;
    cur_init(&c, msg);
    for (;;) {
        if (c.left == 0) {
            set_err(errmsg, layout);
            return PGF_EPROTO;
        }
        if (c.p[0] == '\0')
            break;
        const char *key = cur_cstr(&c);
        const char *value = cur_cstr(&c);
        if (c.bad) {
            set_err(errmsg, layout);
            return PGF_EPROTO;
        }
        if (out->nparams == PGF_PROTO_MAX_PARAMS) {
            set_err(errmsg, "too many parameters in startup packet");
            return PGF_ETOOBIG;
        }
        out->keys[out->nparams] = key;
        out->values[out->nparams] = value;
        out->nparams++;
    }
    if (c.left != 1) { /* the terminator must be the last byte */
        set_err(errmsg, layout);
        return PGF_EPROTO;
    }
    return PGF_OK;
}

const char *pgf_startup_get(const pgf_startup *s, const char *key)
{
    if (s == NULL || key == NULL)
        return NULL;
    for (int i = 0; i < s->nparams; i++)
        if (strcmp(s->keys[i], key) == 0)
            return s->values[i];
    return NULL;
}

int pgf_proto_parse_cancel(const pgf_fe_msg *msg, pgf_cancel_req *out)
{
    if (msg == NULL || out == NULL || msg->type != 0 || msg->code != PGF_PROTO_CANCEL_REQUEST)
        return PGF_EINVAL;
    if (msg->body_len != 8)
        return PGF_EPROTO;
    out->pid = (int32_t)pgf_rd_be32(msg->body);
    out->key = (int32_t)pgf_rd_be32(msg->body + 4);
    return PGF_OK;
}

/* A body that is exactly one NUL-terminated string. */
static int one_cstr(const pgf_fe_msg *msg, uint8_t type, const char **s)
{
    if (msg == NULL || s == NULL || msg->type != type)
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    const char *v = cur_cstr(&c);
    int rc = cur_end(&c);
    if (rc == PGF_OK)
        *s = v;
    return rc;
}

int pgf_proto_parse_query(const pgf_fe_msg *msg, const char **sql)
{
    return one_cstr(msg, PGF_FE_QUERY, sql);
}

int pgf_proto_parse_password(const pgf_fe_msg *msg, const char **password)
{
    return one_cstr(msg, PGF_FE_PASSWORD, password);
}

int pgf_proto_parse_sasl_initial(const pgf_fe_msg *msg, const char **mechanism,
                                 const uint8_t **data, size_t *data_len)
{
    if (msg == NULL || mechanism == NULL || data == NULL || data_len == NULL ||
        msg->type != PGF_FE_PASSWORD)
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    const char *mech = cur_cstr(&c);
    int32_t n = (int32_t)cur_be32(&c);
    const uint8_t *d = NULL;
    if (n < -1)
        c.bad = true;
    else if (n >= 0)
        d = cur_bytes(&c, (size_t)n);
    int rc = cur_end(&c);
    if (rc != PGF_OK)
        return rc;
    *mechanism = mech;
    *data = d;
    *data_len = n < 0 ? 0 : (size_t)n;
    return PGF_OK;
}

int pgf_proto_parse_sasl_response(const pgf_fe_msg *msg, const uint8_t **data, size_t *data_len)
{
    if (msg == NULL || data == NULL || data_len == NULL || msg->type != PGF_FE_PASSWORD)
        return PGF_EINVAL;
    *data = msg->body;
    *data_len = msg->body_len;
    return PGF_OK;
}

int pgf_proto_parse_parse(const pgf_fe_msg *msg, pgf_parse_msg *out)
{
    if (msg == NULL || out == NULL || msg->type != PGF_FE_PARSE)
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    const char *stmt = cur_cstr(&c);
    const char *query = cur_cstr(&c);
    uint16_t n = cur_be16(&c);
    const uint8_t *types = cur_bytes(&c, (size_t)n * 4);
    int rc = cur_end(&c);
    if (rc != PGF_OK)
        return rc;
    out->stmt = stmt;
    out->query = query;
    out->nparam_types = n;
    out->param_types = types;
    return PGF_OK;
}

int pgf_proto_parse_bind(const pgf_fe_msg *msg, pgf_bind_msg *out)
{
    if (msg == NULL || out == NULL || msg->type != PGF_FE_BIND)
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    out->portal = cur_cstr(&c);
    out->stmt = cur_cstr(&c);
    out->nformats = cur_be16(&c);
    (void)cur_bytes(&c, (size_t)out->nformats * 2);
    out->nparams = cur_be16(&c);
    if (c.bad)
        return PGF_EPROTO;
    if (out->nparams > PGF_PROTO_MAX_BIND_PARAMS)
        return PGF_ETOOBIG;
    /* PostgreSQL: "bind message has %d parameter formats but %d parameters" */
    if (out->nformats > 1 && out->nformats != out->nparams)
        return PGF_EPROTO;
    for (uint16_t i = 0; i < out->nparams; i++) {
        int32_t n = (int32_t)cur_be32(&c);
        if (n < -1)
            c.bad = true;
        out->lens[i] = n;
        out->values[i] = n < 0 ? NULL : cur_bytes(&c, (size_t)n);
        if (c.bad)
            return PGF_EPROTO;
    }
    out->nresult_formats = cur_be16(&c);
    (void)cur_bytes(&c, (size_t)out->nresult_formats * 2);
    return cur_end(&c);
}

int pgf_proto_parse_describe_close(const pgf_fe_msg *msg, char *kind, const char **name)
{
    if (msg == NULL || kind == NULL || name == NULL ||
        (msg->type != PGF_FE_DESCRIBE && msg->type != PGF_FE_CLOSE))
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    uint8_t k = cur_u8(&c);
    const char *n = cur_cstr(&c);
    int rc = cur_end(&c);
    if (rc != PGF_OK)
        return rc;
    if (k != 'S' && k != 'P') /* "invalid DESCRIBE message subtype %d" */
        return PGF_EPROTO;
    *kind = (char)k;
    *name = n;
    return PGF_OK;
}

int pgf_proto_parse_execute(const pgf_fe_msg *msg, pgf_execute_msg *out)
{
    if (msg == NULL || out == NULL || msg->type != PGF_FE_EXECUTE)
        return PGF_EINVAL;
    cursor c;
    cur_init(&c, msg);
    const char *portal = cur_cstr(&c);
    int32_t max_rows = (int32_t)cur_be32(&c);
    int rc = cur_end(&c);
    if (rc != PGF_OK)
        return rc;
    out->portal = portal;
    out->max_rows = max_rows;
    return PGF_OK;
}

/* ---- builders ---- */

/* Start a typed message; returns the offset of its length word. */
static size_t msg_begin(pgf_buf *b, uint8_t type)
{
    pgf_buf_put_u8(b, type);
    size_t off = b->len;
    pgf_buf_put_be32(b, 0);
    return off;
}

/* Back-patch the length word (it counts itself, not the type byte). */
static void msg_end(pgf_buf *b, size_t off)
{
    if (b->failed)
        return;
    size_t n = b->len - off;
    if (n > INT32_MAX) {
        b->failed = true;
        return;
    }
    pgf_buf_patch_be32(b, off, (uint32_t)n);
}

void pgf_msg_auth(pgf_buf *b, uint32_t code, const void *extra, size_t extra_len)
{
    size_t off = msg_begin(b, PGF_BE_AUTH);
    pgf_buf_put_be32(b, code);
    if (extra != NULL && extra_len > 0)
        pgf_buf_put(b, extra, extra_len);
    msg_end(b, off);
}

void pgf_msg_auth_sasl(pgf_buf *b, const char *const *mechanisms, int n)
{
    size_t off = msg_begin(b, PGF_BE_AUTH);
    pgf_buf_put_be32(b, PGF_AUTH_SASL);
    for (int i = 0; i < n; i++)
        pgf_buf_put_cstr(b, mechanisms[i]);
    pgf_buf_put_u8(b, 0); /* the list ends with an empty name */
    msg_end(b, off);
}

void pgf_msg_parameter_status(pgf_buf *b, const char *name, const char *value)
{
    size_t off = msg_begin(b, PGF_BE_PARAMETER_STATUS);
    pgf_buf_put_cstr(b, name);
    pgf_buf_put_cstr(b, value);
    msg_end(b, off);
}

void pgf_msg_backend_key(pgf_buf *b, int32_t pid, int32_t key)
{
    size_t off = msg_begin(b, PGF_BE_BACKEND_KEY);
    pgf_buf_put_be32(b, (uint32_t)pid);
    pgf_buf_put_be32(b, (uint32_t)key);
    msg_end(b, off);
}

void pgf_msg_ready(pgf_buf *b, char txn_status)
{
    size_t off = msg_begin(b, PGF_BE_READY);
    pgf_buf_put_u8(b, (uint8_t)txn_status);
    msg_end(b, off);
}

void pgf_msg_empty(pgf_buf *b, uint8_t type)
{
    size_t off = msg_begin(b, type);
    msg_end(b, off);
}

void pgf_msg_command_complete(pgf_buf *b, const char *tag)
{
    size_t off = msg_begin(b, PGF_BE_COMMAND_COMPLETE);
    pgf_buf_put_cstr(b, tag);
    msg_end(b, off);
}

void pgf_msg_row_description(pgf_buf *b, const pgf_col *cols, uint16_t ncols)
{
    size_t off = msg_begin(b, PGF_BE_ROW_DESCRIPTION);
    pgf_buf_put_be16(b, ncols);
    for (uint16_t i = 0; i < ncols; i++) {
        const pgf_col *c = &cols[i];
        pgf_buf_put_cstr(b, c->name);
        pgf_buf_put_be32(b, c->table_oid);
        pgf_buf_put_be16(b, (uint16_t)c->attnum);
        pgf_buf_put_be32(b, c->type_oid);
        pgf_buf_put_be16(b, (uint16_t)c->typlen);
        pgf_buf_put_be32(b, (uint32_t)c->typmod);
        pgf_buf_put_be16(b, (uint16_t)c->format);
    }
    msg_end(b, off);
}

void pgf_msg_data_row(pgf_buf *b, const char *const *values, const int32_t *lens, uint16_t n)
{
    size_t off = msg_begin(b, PGF_BE_DATA_ROW);
    pgf_buf_put_be16(b, n);
    for (uint16_t i = 0; i < n; i++) {
        if (values[i] == NULL) {
            pgf_buf_put_be32(b, UINT32_MAX); /* -1: SQL NULL */
            continue;
        }
        size_t len = lens != NULL && lens[i] >= 0 ? (size_t)lens[i] : strlen(values[i]);
        if (len > INT32_MAX) {
            b->failed = true;
            return;
        }
        pgf_buf_put_be32(b, (uint32_t)len);
        pgf_buf_put(b, values[i], len);
    }
    msg_end(b, off);
}

void pgf_msg_parameter_description(pgf_buf *b, const uint32_t *oids, uint16_t n)
{
    size_t off = msg_begin(b, PGF_BE_PARAMETER_DESCRIPTION);
    pgf_buf_put_be16(b, n);
    for (uint16_t i = 0; i < n; i++)
        pgf_buf_put_be32(b, oids[i]);
    msg_end(b, off);
}

void pgf_msg_negotiate_protocol(pgf_buf *b, uint32_t newest_version, const char *const *opts, int n)
{
    size_t off = msg_begin(b, PGF_BE_NEGOTIATE_PROTOCOL);
    pgf_buf_put_be32(b, newest_version);
    pgf_buf_put_be32(b, (uint32_t)(n < 0 ? 0 : n));
    for (int i = 0; i < n; i++)
        pgf_buf_put_cstr(b, opts[i]);
    msg_end(b, off);
}

static void put_field(pgf_buf *b, char code, const char *value)
{
    if (value == NULL)
        return;
    pgf_buf_put_u8(b, (uint8_t)code);
    pgf_buf_put_cstr(b, value);
}

/* Field order is PostgreSQL's send_message_to_frontend(). */
static void error_like(pgf_buf *b, uint8_t type, const pgf_error_fields *e)
{
    size_t off = msg_begin(b, type);
    put_field(b, 'S', e->severity);
    put_field(b, 'V', e->severity);
    put_field(b, 'C', e->sqlstate);
    put_field(b, 'M', e->message);
    put_field(b, 'D', e->detail);
    put_field(b, 'H', e->hint);
    put_field(b, 'P', e->position);
    put_field(b, 'W', e->where);
    put_field(b, 'F', e->file);
    put_field(b, 'L', e->line);
    put_field(b, 'R', e->routine);
    pgf_buf_put_u8(b, 0);
    msg_end(b, off);
}

void pgf_msg_error(pgf_buf *b, const pgf_error_fields *e)
{
    error_like(b, PGF_BE_ERROR, e);
}

void pgf_msg_notice(pgf_buf *b, const pgf_error_fields *e)
{
    error_like(b, PGF_BE_NOTICE, e);
}

void pgf_msg_v2_error(pgf_buf *b, const char *text)
{
    pgf_buf_put_u8(b, PGF_BE_ERROR);
    pgf_buf_put_cstr(b, text);
}
