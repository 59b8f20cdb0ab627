/* proto.h - sans-I/O PostgreSQL v3 protocol codec (server side).
 *
 * Bytes in, structured messages out; structured messages in, bytes out.
 * Nothing here touches a socket, a clock or a random generator, which is
 * what makes it unit-testable against the recorded transcripts and
 * fuzzable (tests/fuzz/fuzz_proto.c).
 *
 * Parsers distrust lengths: a length word is checked against the bytes
 * available and a maximum before anything is allocated, and every string
 * must be NUL-terminated inside its message. Parsed structures point into
 * the caller's buffer (borrowed; valid while that buffer is unchanged).
 *
 * Builders append one complete message to a pgf_buf (buf.h); allocation
 * failure sets the buffer's sticky `failed` flag.
 */
#ifndef PGF_PROTO_H
#define PGF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/buf.h"
#include "pgfault/err.h"

/* Startup-phase request codes (the Int32 after the length word). */
#define PGF_PROTO_V3             196608u   /* 3.0 = 0x00030000 */
#define PGF_PROTO_SSL_REQUEST    80877103u /* 1234.5679 */
#define PGF_PROTO_GSSENC_REQUEST 80877104u /* 1234.5680 */
#define PGF_PROTO_CANCEL_REQUEST 80877102u /* 1234.5678 */

/* Frontend message type bytes (PG 15 client headers have no protocol.h). */
enum {
    PGF_FE_BIND = 'B',
    PGF_FE_CLOSE = 'C',
    PGF_FE_DESCRIBE = 'D',
    PGF_FE_EXECUTE = 'E',
    PGF_FE_FLUSH = 'H',
    PGF_FE_PARSE = 'P',
    PGF_FE_QUERY = 'Q',
    PGF_FE_SYNC = 'S',
    PGF_FE_TERMINATE = 'X',
    PGF_FE_PASSWORD = 'p', /* also SASLInitialResponse / SASLResponse */
    PGF_FE_COPY_DATA = 'd',
    PGF_FE_COPY_DONE = 'c',
    PGF_FE_COPY_FAIL = 'f',
    PGF_FE_FUNCTION_CALL = 'F',
};

/* Backend message type bytes. */
enum {
    PGF_BE_AUTH = 'R',
    PGF_BE_PARAMETER_STATUS = 'S',
    PGF_BE_BACKEND_KEY = 'K',
    PGF_BE_READY = 'Z',
    PGF_BE_ROW_DESCRIPTION = 'T',
    PGF_BE_DATA_ROW = 'D',
    PGF_BE_COMMAND_COMPLETE = 'C',
    PGF_BE_ERROR = 'E',
    PGF_BE_NOTICE = 'N',
    PGF_BE_EMPTY_QUERY = 'I',
    PGF_BE_PARSE_COMPLETE = '1',
    PGF_BE_BIND_COMPLETE = '2',
    PGF_BE_CLOSE_COMPLETE = '3',
    PGF_BE_NO_DATA = 'n',
    PGF_BE_PORTAL_SUSPENDED = 's',
    PGF_BE_PARAMETER_DESCRIPTION = 't',
    PGF_BE_NEGOTIATE_PROTOCOL = 'v',
};

/* Authentication request codes (the Int32 after 'R'). */
enum {
    PGF_AUTH_OK = 0,
    PGF_AUTH_CLEARTEXT = 3,
    PGF_AUTH_MD5 = 5,
    PGF_AUTH_SASL = 10,
    PGF_AUTH_SASL_CONTINUE = 11,
    PGF_AUTH_SASL_FINAL = 12,
};

/* Default maximum message length accepted from a client. PostgreSQL allows
 * up to 1 GB for most messages but only 10000 bytes for startup packets. */
#define PGF_PROTO_MAX_STARTUP_LEN 10000u
#define PGF_PROTO_MAX_MSG_LEN     (64u * 1024u * 1024u)

/* Result of a framing parse. Negative values are pgf_err codes. */
enum {
    PGF_PROTO_NEED_MORE = 0,
    PGF_PROTO_OK = 1,
};

/* One framed frontend message. For startup-phase packets type == 0, `code`
 * is the request code and `body` starts after it. For typed messages
 * `body` starts after the length word. */
typedef struct pgf_fe_msg {
    uint8_t type;  /* 0 for a startup-phase packet */
    uint32_t code; /* startup-phase request code, else 0 */
    const uint8_t *body;
    size_t body_len;
    size_t total_len; /* bytes this message occupies in the input */
} pgf_fe_msg;

/* Frame one message from the front of data[0..len).
 * startup: true while the connection expects a startup-phase packet.
 * max_len: largest length word accepted (PGF_PROTO_MAX_STARTUP_LEN or
 *          PGF_PROTO_MAX_MSG_LEN for typed messages).
 * Returns PGF_PROTO_OK (out filled), PGF_PROTO_NEED_MORE, or PGF_EPROTO /
 * PGF_ETOOBIG with *errmsg set to a static PostgreSQL-style message
 * ("invalid length of startup packet", "invalid message length"). */
int pgf_proto_frame(const uint8_t *data, size_t len, bool startup, size_t max_len, pgf_fe_msg *out,
                    const char **errmsg) PGF_NODISCARD;

/* StartupMessage parameters (after the protocol code): key\0value\0...\0 */
#define PGF_PROTO_MAX_PARAMS 64
typedef struct pgf_startup {
    uint16_t major, minor; /* from the code */
    int nparams;
    const char *keys[PGF_PROTO_MAX_PARAMS];
    const char *values[PGF_PROTO_MAX_PARAMS];
} pgf_startup;

/* Parse a StartupMessage (msg->type == 0). PGF_EPROTO on malformed input
 * (*errmsg: "invalid startup packet layout: expected terminator as last
 * byte", as PostgreSQL says). */
int pgf_proto_parse_startup(const pgf_fe_msg *msg, pgf_startup *out,
                            const char **errmsg) PGF_NODISCARD;
/* Value for key, or NULL. */
const char *pgf_startup_get(const pgf_startup *s, const char *key);

typedef struct pgf_cancel_req {
    int32_t pid;
    int32_t key;
} pgf_cancel_req;
int pgf_proto_parse_cancel(const pgf_fe_msg *msg, pgf_cancel_req *out) PGF_NODISCARD;

/* 'Q': the query string (NUL-terminated inside the body). */
int pgf_proto_parse_query(const pgf_fe_msg *msg, const char **sql) PGF_NODISCARD;

/* 'p' as a PasswordMessage: the password/md5 string. */
int pgf_proto_parse_password(const pgf_fe_msg *msg, const char **password) PGF_NODISCARD;
/* 'p' as SASLInitialResponse: mechanism name and the initial data (len may
 * be 0; a data length of -1 in the message means none and gives NULL). */
int pgf_proto_parse_sasl_initial(const pgf_fe_msg *msg, const char **mechanism,
                                 const uint8_t **data, size_t *data_len) PGF_NODISCARD;
/* 'p' as SASLResponse: the whole body is the data. */
int pgf_proto_parse_sasl_response(const pgf_fe_msg *msg, const uint8_t **data,
                                  size_t *data_len) PGF_NODISCARD;

/* Extended protocol. */
#define PGF_PROTO_MAX_BIND_PARAMS 256
typedef struct pgf_parse_msg {
    const char *stmt;
    const char *query;
    uint16_t nparam_types;
    const uint8_t *param_types; /* nparam_types Int32 OIDs, network order */
} pgf_parse_msg;
int pgf_proto_parse_parse(const pgf_fe_msg *msg, pgf_parse_msg *out) PGF_NODISCARD;

typedef struct pgf_bind_msg {
    const char *portal;
    const char *stmt;
    uint16_t nformats;
    uint16_t nparams;                                 /* at most PGF_PROTO_MAX_BIND_PARAMS */
    const uint8_t *values[PGF_PROTO_MAX_BIND_PARAMS]; /* NULL for SQL NULL */
    int32_t lens[PGF_PROTO_MAX_BIND_PARAMS];          /* -1 for SQL NULL */
    uint16_t nresult_formats;
} pgf_bind_msg;
int pgf_proto_parse_bind(const pgf_fe_msg *msg, pgf_bind_msg *out) PGF_NODISCARD;

/* 'D' Describe and 'C' Close: kind 'S' (statement) or 'P' (portal), name. */
int pgf_proto_parse_describe_close(const pgf_fe_msg *msg, char *kind,
                                   const char **name) PGF_NODISCARD;

typedef struct pgf_execute_msg {
    const char *portal;
    int32_t max_rows;
} pgf_execute_msg;
int pgf_proto_parse_execute(const pgf_fe_msg *msg, pgf_execute_msg *out) PGF_NODISCARD;

/* ---- Builders: each appends one complete backend message. ---- */

/* 'R' with code and optional payload (salt, SASL data, mechanism list). */
void pgf_msg_auth(pgf_buf *b, uint32_t code, const void *extra, size_t extra_len);
/* AuthenticationSASL with the mechanism list ("SCRAM-SHA-256\0\0"). */
void pgf_msg_auth_sasl(pgf_buf *b, const char *const *mechanisms, int n);
void pgf_msg_parameter_status(pgf_buf *b, const char *name, const char *value);
void pgf_msg_backend_key(pgf_buf *b, int32_t pid, int32_t key);
void pgf_msg_ready(pgf_buf *b, char txn_status); /* 'I', 'T' or 'E' */
/* A message with no body: '1', '2', '3', 'n', 'I', 's'. */
void pgf_msg_empty(pgf_buf *b, uint8_t type);
void pgf_msg_command_complete(pgf_buf *b, const char *tag);

typedef struct pgf_col {
    const char *name;
    uint32_t table_oid;
    int16_t attnum;
    uint32_t type_oid;
    int16_t typlen;
    int32_t typmod;
    int16_t format; /* 0 text */
} pgf_col;
void pgf_msg_row_description(pgf_buf *b, const pgf_col *cols, uint16_t ncols);
/* values[i] NULL means SQL NULL; lens[i] may be NULL to use strlen. */
void pgf_msg_data_row(pgf_buf *b, const char *const *values, const int32_t *lens, uint16_t n);
void pgf_msg_parameter_description(pgf_buf *b, const uint32_t *oids, uint16_t n);
/* NegotiateProtocolVersion: newest minor supported + unrecognized options. */
void pgf_msg_negotiate_protocol(pgf_buf *b, uint32_t newest_version, const char *const *opts,
                                int n);

/* ErrorResponse / NoticeResponse fields, in the order PostgreSQL writes
 * them: S V C M D H P W F L R. NULL fields are omitted. `severity` is
 * written as both S and V (PostgreSQL's localized and non-localized
 * severities are equal in the C locale). */
typedef struct pgf_error_fields {
    const char *severity; /* "FATAL", "ERROR", "WARNING", "NOTICE" */
    const char *sqlstate;
    const char *message;
    const char *detail;
    const char *hint;
    const char *position;
    const char *where;
    const char *file;
    const char *line;
    const char *routine;
} pgf_error_fields;
void pgf_msg_error(pgf_buf *b, const pgf_error_fields *e);  /* 'E' */
void pgf_msg_notice(pgf_buf *b, const pgf_error_fields *e); /* 'N' */
/* Protocol-2 style error for unsupported old clients: 'E' text '\0', no length. */
void pgf_msg_v2_error(pgf_buf *b, const char *text);

/* Backend message at the front of data (for tests, the fault engine's
 * "which message is this" and truncation). Same contract as
 * pgf_proto_frame for typed messages; no startup-phase form. */
int pgf_proto_frame_backend(const uint8_t *data, size_t len, uint8_t *type,
                            size_t *total_len) PGF_NODISCARD;

#endif
