/* auth.c - server side of PostgreSQL password authentication.
 *
 * Does: SCRAM-SHA-256 as PostgreSQL 15's auth-scram.c does it (verifier
 * derivation and parsing, server-first, client-final verification,
 * server-final, mock exchange for unknown roles), the MD5 response a client
 * must send, constant-time comparison and strict base64, all on libcrypto.
 *
 * Does not: pick nonces or salts (the caller passes the random bytes, so
 * the recorded transcripts replay exactly), SASLprep non-ASCII passwords,
 * channel binding (SCRAM-SHA-256-PLUS needs TLS, which the fake server does
 * not do), or send anything: results are appended to a pgf_buf.
 */
#include "pgfault/auth.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MALFORMED "malformed SCRAM message"

static void set_err(const char **errmsg, const char *msg)
{
    if (errmsg != NULL)
        *errmsg = msg;
}

/* ---- base64 ---- */

int pgf_b64_encode(const uint8_t *in, size_t len, char *out, size_t outcap)
{
    if (len > (size_t)INT32_MAX / 2 || (in == NULL && len > 0) || out == NULL)
        return -1;
    size_t need = (len + 2) / 3 * 4;
    if (outcap < need + 1)
        return -1;
    return EVP_EncodeBlock((unsigned char *)out, in, (int)len);
}

static bool b64_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           ch == '+' || ch == '/';
}

int pgf_b64_decode(const char *in, size_t len, uint8_t *out, size_t outcap)
{
    if ((in == NULL && len > 0) || len % 4 != 0 || len > (size_t)INT32_MAX / 2)
        return -1;
    /* EVP_DecodeBlock skips blanks and counts padding as zero bytes; accept
     * only the canonical alphabet with at most two '=' at the very end. */
    size_t pad = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)in[i];
        if (ch == '=') {
            if (i + 2 < len)
                return -1;
            pad++;
        } else if (!b64_char(ch) || pad > 0) {
            return -1;
        }
    }
    if (len == 0)
        return 0;
    size_t raw = len / 4 * 3;
    if (raw - pad > outcap)
        return -1;
    uint8_t stackbuf[768];
    uint8_t *tmp = raw <= sizeof stackbuf ? stackbuf : malloc(raw);
    if (tmp == NULL)
        return -1;
    int n = EVP_DecodeBlock(tmp, (const unsigned char *)in, (int)len);
    int rc = -1;
    if (n == (int)raw) {
        memcpy(out, tmp, raw - pad);
        rc = (int)(raw - pad);
    }
    if (tmp != stackbuf)
        free(tmp);
    return rc;
}

/* ---- primitives ---- */

static bool sha256(const void *in, size_t len, uint8_t out[PGF_SCRAM_KEY_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(in, len, out, &n, EVP_sha256(), NULL) == 1 && n == PGF_SCRAM_KEY_LEN;
}

static bool hmac256(const uint8_t *key, size_t key_len, const void *msg, size_t len,
                    uint8_t out[PGF_SCRAM_KEY_LEN])
{
    unsigned int n = 0;
    return HMAC(EVP_sha256(), key, (int)key_len, msg, len, out, &n) != NULL &&
           n == PGF_SCRAM_KEY_LEN;
}

bool pgf_auth_streq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return false;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb)
        return false;
    return CRYPTO_memcmp(a, b, la) == 0;
}

void pgf_md5_response(const char *user, const char *password, const uint8_t salt[4], char out[36])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t d[16];
    char h[33];
    unsigned int n = 0;
    memset(out, 0, 36);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL)
        return;
    /* md5hex(password + user) */
    if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 ||
        EVP_DigestUpdate(ctx, password, strlen(password)) != 1 ||
        EVP_DigestUpdate(ctx, user, strlen(user)) != 1 || EVP_DigestFinal_ex(ctx, d, &n) != 1)
        goto done;
    for (int i = 0; i < 16; i++) {
        h[2 * i] = hex[d[i] >> 4];
        h[2 * i + 1] = hex[d[i] & 15];
    }
    h[32] = '\0';
    /* "md5" + md5hex(that + salt) */
    if (EVP_DigestInit_ex(ctx, EVP_md5(), NULL) != 1 || EVP_DigestUpdate(ctx, h, 32) != 1 ||
        EVP_DigestUpdate(ctx, salt, 4) != 1 || EVP_DigestFinal_ex(ctx, d, &n) != 1)
        goto done;
    memcpy(out, "md5", 3);
    for (int i = 0; i < 16; i++) {
        out[3 + 2 * i] = hex[d[i] >> 4];
        out[3 + 2 * i + 1] = hex[d[i] & 15];
    }
    out[35] = '\0';
done:
    EVP_MD_CTX_free(ctx);
}

/* ---- verifiers ---- */

int pgf_scram_secret_make(const char *password, const uint8_t *salt, size_t salt_len,
                          int iterations, pgf_scram_secret *out)
{
    if (password == NULL || salt == NULL || out == NULL || iterations < 1 || salt_len == 0 ||
        salt_len > sizeof out->salt || strlen(password) > INT32_MAX)
        return PGF_EINVAL;
    uint8_t salted[PGF_SCRAM_KEY_LEN], client_key[PGF_SCRAM_KEY_LEN];
    int rc = PGF_EINTERNAL;
    memset(out, 0, sizeof *out);
    if (PKCS5_PBKDF2_HMAC(password, (int)strlen(password), salt, (int)salt_len, iterations,
                          EVP_sha256(), PGF_SCRAM_KEY_LEN, salted) != 1)
        goto fail;
    if (!hmac256(salted, sizeof salted, "Client Key", 10, client_key) ||
        !sha256(client_key, sizeof client_key, out->stored_key) ||
        !hmac256(salted, sizeof salted, "Server Key", 10, out->server_key))
        goto fail;
    out->iterations = iterations;
    memcpy(out->salt, salt, salt_len);
    out->salt_len = salt_len;
    rc = PGF_OK;
fail:
    OPENSSL_cleanse(salted, sizeof salted);
    OPENSSL_cleanse(client_key, sizeof client_key);
    return rc;
}

int pgf_scram_secret_parse(const char *verifier, pgf_scram_secret *out)
{
    static const char prefix[] = "SCRAM-SHA-256$";
    if (verifier == NULL || out == NULL)
        return PGF_EINVAL;
    memset(out, 0, sizeof *out);
    if (strncmp(verifier, prefix, sizeof prefix - 1) != 0)
        return PGF_EPARSE;
    const char *p = verifier + sizeof prefix - 1;
    /* iterations */
    long iter = 0;
    const char *q = p;
    while (*q >= '0' && *q <= '9' && q - p < 10)
        iter = iter * 10 + (*q++ - '0');
    if (q == p || *q != ':' || iter < 1 || iter > INT32_MAX)
        return PGF_EPARSE;
    p = q + 1;
    const char *dollar = strchr(p, '$');
    if (dollar == NULL)
        return PGF_EPARSE;
    int n = pgf_b64_decode(p, (size_t)(dollar - p), out->salt, sizeof out->salt);
    if (n <= 0)
        return PGF_EPARSE;
    out->salt_len = (size_t)n;
    p = dollar + 1;
    const char *colon = strchr(p, ':');
    if (colon == NULL)
        return PGF_EPARSE;
    uint8_t key[48];
    if (pgf_b64_decode(p, (size_t)(colon - p), key, sizeof key) != PGF_SCRAM_KEY_LEN)
        return PGF_EPARSE;
    memcpy(out->stored_key, key, PGF_SCRAM_KEY_LEN);
    p = colon + 1;
    if (pgf_b64_decode(p, strlen(p), key, sizeof key) != PGF_SCRAM_KEY_LEN)
        return PGF_EPARSE;
    memcpy(out->server_key, key, PGF_SCRAM_KEY_LEN);
    out->iterations = (int)iter;
    return PGF_OK;
}

void pgf_scram_mock_salt(const char *user, const uint8_t *seed, size_t seed_len,
                         uint8_t out[PGF_SCRAM_SALT_LEN])
{
    uint8_t d[PGF_SCRAM_KEY_LEN] = {0};
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned int n = 0;
    if (ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(ctx, user ? user : "", user ? strlen(user) : 0) == 1 &&
        EVP_DigestUpdate(ctx, seed, seed ? seed_len : 0) == 1)
        (void)EVP_DigestFinal_ex(ctx, d, &n);
    EVP_MD_CTX_free(ctx);
    memcpy(out, d, PGF_SCRAM_SALT_LEN);
}

/* ---- the exchange ---- */

/* Printable as RFC 5802 says for nonces: 0x21..0x7e except ','. */
static bool scram_printable(const char *s)
{
    for (; *s; s++)
        if (*s < 0x21 || *s > 0x7e || *s == ',')
            return false;
    return true;
}

/* Copy a SASL message into a NUL-terminated buffer; embedded NULs, empty
 * and oversized messages are malformed (PostgreSQL: "The message is
 * empty." / "Message length does not match input length."). */
static bool copy_msg(char *dst, size_t cap, const uint8_t *data, size_t len)
{
    if (data == NULL || len == 0 || len >= cap || memchr(data, '\0', len) != NULL)
        return false;
    memcpy(dst, data, len);
    dst[len] = '\0';
    return true;
}

/* Read "<attr>=" at *p and return the value up to ',' or the end; *p moves
 * past the ','. The input is modified (the ',' becomes NUL). */
static char *read_attr(char **p, char attr)
{
    char *s = *p;
    if (s[0] != attr || s[1] != '=')
        return NULL;
    s += 2;
    char *comma = strchr(s, ',');
    if (comma != NULL) {
        *comma = '\0';
        *p = comma + 1;
    } else {
        *p = s + strlen(s);
    }
    return s;
}

static int fail_first(pgf_scram_state *st, const char **errmsg, const char *msg)
{
    st->step = 2;
    set_err(errmsg, msg);
    return PGF_EPROTO;
}

int pgf_scram_first(pgf_scram_state *st, const pgf_scram_secret *secret, const uint8_t *data,
                    size_t len, const uint8_t raw_nonce[PGF_SCRAM_RAW_NONCE_LEN], pgf_buf *out,
                    const char **errmsg)
{
    char msg[1024];
    if (st == NULL || raw_nonce == NULL || out == NULL || (secret == NULL && !st->mock))
        return PGF_EINVAL;
    if (st->step != 0) {
        set_err(errmsg, "SCRAM exchange out of order");
        return PGF_EILLEGAL_STATE;
    }
    st->secret = secret;
    if (!copy_msg(msg, sizeof msg, data, len))
        return fail_first(st, errmsg, MALFORMED);
    char *p = msg;
    /* gs2-cbind-flag: 'n' (client does not support channel binding) or 'y'
     * (it does but thinks we do not). 'p' needs TLS, which we never have. */
    char flag = p[0];
    if (flag == 'p')
        return fail_first(st, errmsg, MALFORMED);
    if ((flag != 'n' && flag != 'y') || p[1] != ',')
        return fail_first(st, errmsg, MALFORMED);
    p += 2;
    if (p[0] == 'a' && p[1] == '=')
        return fail_first(st, errmsg,
                          "client uses authorization identity, but it is not supported");
    if (p[0] != ',')
        return fail_first(st, errmsg, MALFORMED);
    p++;
    /* client-first-message-bare: keep a copy before read_attr cuts it up */
    if (strlen(p) >= sizeof st->client_first_bare)
        return fail_first(st, errmsg, MALFORMED);
    strcpy(st->client_first_bare, p);
    if (p[0] == 'm' && p[1] == '=')
        return fail_first(st, errmsg, "client requires an unsupported SCRAM extension");
    if (read_attr(&p, 'n') == NULL) /* user name: ignored, as PostgreSQL */
        return fail_first(st, errmsg, MALFORMED);
    char *cnonce = read_attr(&p, 'r');
    if (cnonce == NULL || cnonce[0] == '\0' || !scram_printable(cnonce))
        return fail_first(st, errmsg, MALFORMED);
    /* Anything after the nonce is an extension, which we ignore. */
    char snonce[PGF_SCRAM_RAW_NONCE_LEN * 2];
    if (pgf_b64_encode(raw_nonce, PGF_SCRAM_RAW_NONCE_LEN, snonce, sizeof snonce) < 0)
        return fail_first(st, errmsg, "could not encode SCRAM nonce");
    int n = snprintf(st->nonce, sizeof st->nonce, "%s%s", cnonce, snonce);
    if (n < 0 || (size_t)n >= sizeof st->nonce)
        return fail_first(st, errmsg, MALFORMED);

    const uint8_t *salt;
    size_t salt_len;
    int iterations;
    if (secret != NULL) {
        salt = secret->salt;
        salt_len = secret->salt_len;
        iterations = secret->iterations;
    } else {
        salt = st->mock_salt;
        salt_len = PGF_SCRAM_SALT_LEN;
        iterations = PGF_SCRAM_ITERATIONS;
    }
    char salt64[100];
    if (pgf_b64_encode(salt, salt_len, salt64, sizeof salt64) < 0)
        return fail_first(st, errmsg, "could not encode SCRAM salt");
    n = snprintf(st->server_first, sizeof st->server_first, "r=%s,s=%s,i=%d", st->nonce, salt64,
                 iterations);
    if (n < 0 || (size_t)n >= sizeof st->server_first)
        return fail_first(st, errmsg, MALFORMED);
    st->cbind_flag = flag;
    pgf_buf_put(out, st->server_first, (size_t)n);
    if (out->failed)
        return fail_first(st, errmsg, "out of memory");
    st->step = 1;
    return PGF_OK;
}

int pgf_scram_final(pgf_scram_state *st, const uint8_t *data, size_t len, pgf_buf *out,
                    const char **errmsg)
{
    char msg[2048];
    if (st == NULL || out == NULL)
        return PGF_EINVAL;
    if (st->step != 1) {
        set_err(errmsg, "SCRAM exchange out of order");
        return PGF_EILLEGAL_STATE;
    }
    st->step = 2; /* one try, whatever happens */
    if (!copy_msg(msg, sizeof msg, data, len)) {
        set_err(errmsg, MALFORMED);
        return PGF_EPROTO;
    }
    /* client-final-message-without-proof ends where ",p=" begins */
    char *proof_at = strstr(msg, ",p=");
    if (proof_at == NULL) {
        set_err(errmsg, MALFORMED);
        return PGF_EPROTO;
    }
    size_t without_proof_len = (size_t)(proof_at - msg);
    char *p = msg;
    char *cbind = read_attr(&p, 'c');
    if (cbind == NULL || p > proof_at + 1) {
        set_err(errmsg, MALFORMED);
        return PGF_EPROTO;
    }
    /* Without TLS the only valid channel-binding data is the gs2 header:
     * "n,," -> "biws", "y,," -> "eSws". */
    const char *want = st->cbind_flag == 'y' ? "eSws" : "biws";
    if (strcmp(cbind, want) != 0) {
        set_err(errmsg, "unexpected SCRAM channel-binding attribute in client-final-message");
        return PGF_EPROTO;
    }
    char *nonce = read_attr(&p, 'r');
    if (nonce == NULL || p > proof_at + 1) {
        set_err(errmsg, MALFORMED);
        return PGF_EPROTO;
    }
    /* Extensions between the nonce and the proof are ignored. */
    p = proof_at + 1;
    if (strchr(p, ',') != NULL) {
        set_err(errmsg, MALFORMED); /* "Garbage found at the end of client-final-message." */
        return PGF_EPROTO;
    }
    char *proof64 = read_attr(&p, 'p');
    uint8_t proof[PGF_SCRAM_KEY_LEN + 16];
    if (proof64 == NULL ||
        pgf_b64_decode(proof64, strlen(proof64), proof, sizeof proof) != PGF_SCRAM_KEY_LEN) {
        set_err(errmsg, MALFORMED); /* "Malformed proof in client-final-message." */
        return PGF_EPROTO;
    }
    if (strcmp(nonce, st->nonce) != 0) {
        set_err(errmsg, "invalid SCRAM response"); /* "Nonce does not match." */
        return PGF_EPROTO;
    }
    if (st->mock || st->secret == NULL) {
        set_err(errmsg, "password authentication failed");
        return PGF_EAUTH;
    }

    /* AuthMessage = client-first-bare "," server-first "," client-final-without-proof.
     * The message buffer was cut up by read_attr; rebuild from the input. */
    pgf_buf auth = PGF_BUF_INIT;
    pgf_buf_put(&auth, st->client_first_bare, strlen(st->client_first_bare));
    pgf_buf_put_u8(&auth, ',');
    pgf_buf_put(&auth, st->server_first, strlen(st->server_first));
    pgf_buf_put_u8(&auth, ',');
    pgf_buf_put(&auth, data, without_proof_len);
    int rc = PGF_EAUTH;
    uint8_t client_sig[PGF_SCRAM_KEY_LEN], client_key[PGF_SCRAM_KEY_LEN], stored[PGF_SCRAM_KEY_LEN],
        server_sig[PGF_SCRAM_KEY_LEN];
    if (auth.failed) {
        rc = PGF_ENOMEM;
        set_err(errmsg, "out of memory");
        goto done;
    }
    const pgf_scram_secret *sec = st->secret;
    if (!hmac256(sec->stored_key, PGF_SCRAM_KEY_LEN, auth.data, auth.len, client_sig)) {
        rc = PGF_EINTERNAL;
        set_err(errmsg, "could not calculate client signature");
        goto done;
    }
    for (int i = 0; i < PGF_SCRAM_KEY_LEN; i++)
        client_key[i] = proof[i] ^ client_sig[i];
    if (!sha256(client_key, sizeof client_key, stored)) {
        rc = PGF_EINTERNAL;
        set_err(errmsg, "could not hash stored key");
        goto done;
    }
    if (CRYPTO_memcmp(stored, sec->stored_key, PGF_SCRAM_KEY_LEN) != 0) {
        set_err(errmsg, "password authentication failed");
        goto done;
    }
    if (!hmac256(sec->server_key, PGF_SCRAM_KEY_LEN, auth.data, auth.len, server_sig)) {
        rc = PGF_EINTERNAL;
        set_err(errmsg, "could not calculate server signature");
        goto done;
    }
    char sig64[64];
    int n = pgf_b64_encode(server_sig, sizeof server_sig, sig64, sizeof sig64);
    if (n < 0) {
        rc = PGF_EINTERNAL;
        set_err(errmsg, "could not encode server signature");
        goto done;
    }
    pgf_buf_put(out, "v=", 2);
    pgf_buf_put(out, sig64, (size_t)n);
    rc = out->failed ? PGF_ENOMEM : PGF_OK;
done:
    OPENSSL_cleanse(client_key, sizeof client_key);
    pgf_buf_free(&auth);
    return rc;
}
