/* auth.h - server side of PostgreSQL password authentication.
 *
 * SCRAM-SHA-256 (RFC 5802 / RFC 7677, as PostgreSQL implements it: no
 * channel binding without TLS, empty user name in client-first) and MD5,
 * on OpenSSL's libcrypto (PKCS5_PBKDF2_HMAC, HMAC, SHA256, MD5).
 *
 * Sans-I/O and deterministic: the caller supplies the random bytes (nonce,
 * salt), so tests replay the recorded transcripts exactly and the server
 * decides where randomness comes from.
 */
#ifndef PGF_AUTH_H
#define PGF_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pgfault/buf.h"
#include "pgfault/err.h"

#define PGF_SCRAM_KEY_LEN       32
#define PGF_SCRAM_SALT_LEN      16
#define PGF_SCRAM_ITERATIONS    4096
#define PGF_SCRAM_RAW_NONCE_LEN 18 /* base64: 24 chars, as PostgreSQL */

/* A SCRAM verifier as pg_authid stores it. Computed once per user. */
typedef struct pgf_scram_secret {
    int iterations;
    uint8_t salt[64];
    size_t salt_len;
    uint8_t stored_key[PGF_SCRAM_KEY_LEN];
    uint8_t server_key[PGF_SCRAM_KEY_LEN];
} pgf_scram_secret;

/* Derive a verifier from a password (PBKDF2-HMAC-SHA-256). The password is
 * used as given (no SASLprep beyond ASCII passthrough). */
int pgf_scram_secret_make(const char *password, const uint8_t *salt, size_t salt_len,
                          int iterations, pgf_scram_secret *out) PGF_NODISCARD;
/* Parse "SCRAM-SHA-256$<iter>:<salt b64>$<StoredKey b64>:<ServerKey b64>". */
int pgf_scram_secret_parse(const char *verifier, pgf_scram_secret *out) PGF_NODISCARD;

/* One SCRAM exchange on one connection. Zero-initialize, then call
 * pgf_scram_first() with the SASLInitialResponse data, then
 * pgf_scram_final() with the SASLResponse data. */
typedef struct pgf_scram_state {
    int step;  /* 0 before first, 1 after first, 2 done */
    bool mock; /* unknown role: run the exchange, always fail */
    const pgf_scram_secret *secret;
    char client_first_bare[512];
    char server_first[512];
    char nonce[256]; /* client nonce + server nonce */
    char cbind_flag; /* gs2 header flag from client-first: 'n' or 'y' */
    /* Mock exchanges (mock=true, secret NULL) announce this salt; the caller
     * fills it, e.g. with pgf_scram_mock_salt(), so a role keeps one salt. */
    uint8_t mock_salt[PGF_SCRAM_SALT_LEN];
} pgf_scram_state;

/* PostgreSQL's mock salt: the first PGF_SCRAM_SALT_LEN bytes of
 * SHA-256(user || seed), stable per user for one server seed, so probing
 * cannot tell a missing role from an existing one by its salt changing. */
void pgf_scram_mock_salt(const char *user, const uint8_t *seed, size_t seed_len,
                         uint8_t out[PGF_SCRAM_SALT_LEN]);

/* Handle client-first ("n,,n=,r=<nonce>"); append server-first
 * ("r=<nonce><server nonce>,s=<salt>,i=<iter>") to out. raw_nonce is
 * PGF_SCRAM_RAW_NONCE_LEN bytes from the caller. secret NULL with mock=true
 * runs a mock exchange (salt from st->mock_salt, PGF_SCRAM_ITERATIONS).
 * secret is borrowed and must outlive the exchange. Returns 0, or PGF_EPROTO with
 * *errmsg a PostgreSQL message ("malformed SCRAM message", ...). */
int pgf_scram_first(pgf_scram_state *st, const pgf_scram_secret *secret, const uint8_t *data,
                    size_t len, const uint8_t raw_nonce[PGF_SCRAM_RAW_NONCE_LEN], pgf_buf *out,
                    const char **errmsg) PGF_NODISCARD;

/* Handle client-final ("c=biws,r=<nonce>,p=<proof>"); on a correct proof
 * append server-final ("v=<signature>") to out and return 0. A wrong proof
 * (or a mock exchange) returns PGF_EAUTH; malformed input PGF_EPROTO. */
int pgf_scram_final(pgf_scram_state *st, const uint8_t *data, size_t len, pgf_buf *out,
                    const char **errmsg) PGF_NODISCARD;

/* "md5" + md5hex(md5hex(password + user) + salt): what a client must send
 * for AuthenticationMD5Password. out has room for 36 bytes (35 + NUL). */
void pgf_md5_response(const char *user, const char *password, const uint8_t salt[4], char out[36]);

/* Constant-time string comparison (for passwords and MD5 responses). */
bool pgf_auth_streq(const char *a, const char *b);

/* Standard base64 (RFC 4648, with padding); returns length written or -1. */
int pgf_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap);
int pgf_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap);

#endif
