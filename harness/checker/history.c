/* history.c - history records: reader (validating, line-numbered), loader
 * with string interning, buffered writer and the SHA-256 digest.
 *
 * The reader parses each line on its own with json_loadb, so one bad line
 * is reported as "file:line[:col]: message" and never takes the rest of
 * the process down. The canonical form of a record is written directly,
 * in the fixed key order of docs/history-format.md, byte for byte what
 * jansson's compact dump would give (it is the hot path of a run; see
 * pgf_rec_format); `wall` is appended after the canonical bytes so the
 * digest can skip it without re-encoding. Nothing here knows
 * about states or operations: that is the checker's business.
 */
#include "pgfault/history.h"
#include "pgfault/zio.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "pgfault/buf.h"
#include "pgfault/enum_names.h"
#include "history_internal.h"

#define PGF__REC_TYPE_STR(name, str) str,
PGF_ENUM_NAMES(pgf_rec_type, pgf_rec_type_name, pgf_rec_type_parse, PGF_REC_TYPE_COUNT, "?",
               PGF_REC_TYPE_MAP(PGF__REC_TYPE_STR))
#undef PGF__REC_TYPE_STR

void pgf_rec_init(pgf_rec *r, pgf_rec_type type)
{
    memset(r, 0, sizeof *r);
    r->type = type;
    r->session = r->op_id = r->conn = r->thread = PGF_REC_NONE;
    r->conns_open = r->conns_accepted = r->conns_closed = r->sessions_open = PGF_REC_NONE;
    r->wall_us = PGF_REC_NONE;
    r->backend_pid = r->client_port = PGF_REC_NONE;
}

/* ---- canonical JSON ---------------------------------------------------- */

static json_t *meta_to_json(const pgf_hist_meta *m)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    int rc = 0;
    rc |= json_object_set_new(o, "type", json_string("meta"));
    rc |= json_object_set_new(o, "format", json_string(PGF_HISTORY_FORMAT));
    rc |= json_object_set_new(o, "version", json_integer(m->version));
    if (m->has_seed) {
        /* JSON integers are int64 here; larger seeds go as decimal strings. */
        if (m->seed <= (uint64_t)INT64_MAX) {
            rc |= json_object_set_new(o, "seed", json_integer((json_int_t)m->seed));
        } else {
            char s[32];
            snprintf(s, sizeof s, "%" PRIu64, m->seed);
            rc |= json_object_set_new(o, "seed", json_string(s));
        }
    }
    if (m->mode != NULL)
        rc |= json_object_set_new(o, "mode", json_string(m->mode));
    if (m->tool != NULL)
        rc |= json_object_set_new(o, "tool", json_string(m->tool));
    if (m->spec_digest != NULL)
        rc |= json_object_set_new(o, "spec_digest", json_string(m->spec_digest));
    if (m->spec_json != NULL) {
        json_error_t je;
        json_t *spec = json_loads(m->spec_json, JSON_REJECT_DUPLICATES, &je);
        if (spec == NULL || !json_is_object(spec)) {
            json_decref(spec);
            json_decref(o);
            return NULL;
        }
        rc |= json_object_set_new(o, "spec", spec);
    }
    if (m->deadlines_json != NULL) {
        json_error_t je;
        json_t *dl = json_loads(m->deadlines_json, 0, &je);
        if (dl == NULL || !json_is_object(dl)) {
            json_decref(dl);
            json_decref(o);
            return NULL;
        }
        rc |= json_object_set_new(o, "deadlines", dl);
    }
    if (rc != 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- the hot path: records straight to bytes ---------------------------
 *
 * Every record of a run goes through pgf_rec_format on the consumer thread,
 * and building a json_t per record (a malloc per key and value, a hash
 * table, a callback dump) was four fifths of that thread's time (perf,
 * bench/soak). Records have a fixed schema, so they are written here
 * directly, byte for byte what json_dumpb(pgf__hist_rec_json(r),
 * JSON_COMPACT) gives for valid UTF-8 (test_history's
 * format_matches_jansson holds the two together). One difference, on
 * purpose: a string that is not valid UTF-8 (a server message in another
 * client_encoding, say) has each bad byte written as U+FFFD instead of
 * failing the whole history. */

typedef struct fmt_out {
    char *p, *end;
    bool over;
} fmt_out;

static void fmt_put(fmt_out *o, const char *s, size_t n)
{
    if (o->over || (size_t)(o->end - o->p) < n) {
        o->over = true;
        return;
    }
    memcpy(o->p, s, n);
    o->p += n;
}

/* Two digits at a time: a record has five or six integers, and a digit
 * loop of one division per digit was a third of the formatting (bench/
 * stream_cost). */
static const char digits2[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

static void fmt_int(fmt_out *o, int64_t v)
{
    /* digits end at t + 24; the 24 bytes from q are copied at once (a
     * fixed-size copy is two moves, the call memcpy(n) was a quarter of
     * the checker stage at 10,000 sessions: bench/stream_cost) */
    char t[48], *e = t + 24, *q = e;
    memset(e, 0, 24); /* defined bytes past the digits (copied, never kept) */
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    while (u >= 100) {
        unsigned d = (unsigned)(u % 100) * 2;
        u /= 100;
        *--q = digits2[d + 1];
        *--q = digits2[d];
    }
    if (u >= 10) {
        *--q = digits2[u * 2 + 1];
        *--q = digits2[u * 2];
    } else {
        *--q = (char)('0' + u);
    }
    if (v < 0)
        *--q = '-';
    if (!o->over && (size_t)(o->end - o->p) >= 24) {
        memcpy(o->p, q, 24); /* what follows the digits is overwritten next */
        o->p += e - q;
        return;
    }
    fmt_put(o, q, (size_t)(e - q));
}

/* Length of the valid UTF-8 sequence at s (as jansson accepts it: no
 * overlongs, no surrogates, nothing above U+10FFFF), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, const unsigned char *end)
{
    unsigned c = s[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - s) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0;
    return n;
}

/* Whether any of the 8 bytes in x needs more than a copy: a control byte,
 * a byte >= 0x80 (UTF-8, checked one at a time), '"' or '\\' (the classic
 * SWAR tests; exact as a yes/no). Most strings are plain ASCII names. */
static bool word_special(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t ctl = (x - ones * 0x20) & ~x;
    uint64_t zq = (q - ones) & ~q, zb = (b - ones) & ~b;
    return ((x | ctl | zq | zb) & highs) != 0;
}

/* The bytes jansson escapes with a letter; other control bytes get \u00XX. */
static const char short_escape[128] = {['"'] = '"',  ['\\'] = '\\', ['\b'] = 'b', ['\f'] = 'f',
                                       ['\n'] = 'n', ['\r'] = 'r',  ['\t'] = 't'};

static void fmt_str(fmt_out *o, const char *str)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *s = (const unsigned char *)str, *end = s + strlen(str), *run = s;
    bool tail_tried = end - s < 8; /* the tail, once: its last 8 bytes at once */
    fmt_put(o, "\"", 1);
    while (s < end) {
        uint64_t w;
        if (end - s >= 8) {
            if (memcpy(&w, s, 8), !word_special(w)) {
                s += 8;
                continue;
            }
        } else if (!tail_tried) {
            /* fewer than 8 left: the string's last 8 bytes, overlapping
             * what was already looked at; all plain, so is the tail */
            tail_tried = true;
            if (memcpy(&w, end - 8, 8), !word_special(w)) {
                s = end;
                continue;
            }
        }
        unsigned c = *s;
        if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
            s++;
            continue;
        }
        size_t n = c < 0x80 ? 1 : utf8_len(s, end);
        if (n > 1) {
            s += n;
            continue;
        }
        fmt_put(o, (const char *)run, (size_t)(s - run));
        if (n == 0) {
            fmt_put(o, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that is not UTF-8 */
        } else if (short_escape[c] != 0) {
            char e[2] = {'\\', short_escape[c]};
            fmt_put(o, e, sizeof e);
        } else {
            char e[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            fmt_put(o, e, sizeof e);
        }
        run = ++s;
    }
    fmt_put(o, (const char *)run, (size_t)(s - run));
    fmt_put(o, "\"", 1);
}

/* `,"type":"NAME"` for each record type, written as it is: the names are
 * identifiers, nothing in them to escape (format_matches_jansson holds it). */
#define PGF__REC_TYPE_KEY(name, str) {",\"type\":\"" str "\"", sizeof(",\"type\":\"" str "\"") - 1},
static const struct {
    const char *s;
    size_t n;
} type_keys[] = {PGF_REC_TYPE_MAP(PGF__REC_TYPE_KEY)};
#undef PGF__REC_TYPE_KEY
_Static_assert(sizeof type_keys / sizeof type_keys[0] == PGF_REC_TYPE_COUNT,
               "one type key per record type");

int pgf_rec_format(const pgf_rec *r, char *buf, size_t len)
{
    if (len == 0)
        return PGF_ETOOBIG;
    fmt_out o = {buf, buf + len - 1, false}; /* room for the NUL */
#define KEY(lit) fmt_put(&o, lit, sizeof lit - 1)
#define PUT_INT(key, v)                \
    do {                               \
        if ((v) != PGF_REC_NONE) {     \
            KEY(",\"" key "\":");      \
            fmt_int(&o, (int64_t)(v)); \
        }                              \
    } while (0)
#define PUT_STR(key, v)           \
    do {                          \
        if ((v) != NULL) {        \
            KEY(",\"" key "\":"); \
            fmt_str(&o, (v));     \
        }                         \
    } while (0)
    /* the order of pgf__hist_rec_json, which is docs/history-format.md's */
    KEY("{\"seq\":");
    fmt_int(&o, (int64_t)r->seq);
    KEY(",\"time_ns\":");
    fmt_int(&o, (int64_t)r->time_ns);
    if ((unsigned)r->type < (unsigned)PGF_REC_TYPE_COUNT) {
        fmt_put(&o, type_keys[r->type].s, type_keys[r->type].n);
    } else {
        KEY(",\"type\":");
        fmt_str(&o, pgf_rec_type_name(r->type));
    }
    PUT_INT("session", r->session);
    PUT_STR("op", r->op);
    PUT_INT("op_id", r->op_id);
    PUT_STR("from", r->from);
    PUT_STR("to", r->to);
    PUT_STR("cause", r->cause);
    PUT_STR("error", r->error);
    PUT_STR("reason", r->reason);
    PUT_INT("conn", r->conn);
    PUT_STR("phase", r->phase);
    PUT_STR("rule", r->rule);
    PUT_STR("action", r->action);
    PUT_STR("sqlstate", r->sqlstate);
    PUT_INT("conns_open", r->conns_open);
    PUT_INT("conns_accepted", r->conns_accepted);
    PUT_INT("conns_closed", r->conns_closed);
    PUT_INT("sessions_open", r->sessions_open);
    PUT_INT("thread", r->thread);
    KEY("}");
#undef KEY
#undef PUT_INT
#undef PUT_STR
    if (o.over)
        return PGF_ETOOBIG;
    *o.p = '\0';
    return (int)(o.p - buf);
}

/* pgf_rec_format for a record of any size: into buf when it fits, else
 * into a malloc'd buffer handed back in *heap (free it). NULL if memory
 * runs out. */
static const char *rec_line(const pgf_rec *r, char *buf, size_t len, char **heap, int *n)
{
    *heap = NULL;
    if ((*n = pgf_rec_format(r, buf, len)) >= 0)
        return buf;
    for (size_t cap = len * 4; cap <= ((size_t)1 << 30) && *n == PGF_ETOOBIG; cap *= 4) {
        free(*heap);
        if ((*heap = malloc(cap)) == NULL)
            return NULL;
        *n = pgf_rec_format(r, *heap, cap);
    }
    if (*n < 0) {
        free(*heap);
        *heap = NULL;
        return NULL;
    }
    return *heap;
}

/* A record as a jansson object (for reports that embed records): the
 * canonical line of pgf_rec_format, parsed, so the two never disagree. */
json_t *pgf__hist_rec_json(const pgf_rec *r)
{
    char buf[4096], *heap;
    int n;
    const char *line = rec_line(r, buf, sizeof buf, &heap, &n);
    json_t *o = line != NULL ? json_loadb(line, (size_t)n, 0, NULL) : NULL;
    free(heap);
    return o;
}

/* A malloc'd canonical line (no newline) or NULL. */
static char *dump_alloc(json_t *o)
{
    return o == NULL ? NULL : json_dumps(o, JSON_COMPACT);
}

static void hex_digest(EVP_MD_CTX *md, char hex[65])
{
    unsigned char d[EVP_MAX_MD_SIZE];
    unsigned int dl = 0;
    EVP_MD_CTX *copy = EVP_MD_CTX_new();
    if (copy == NULL || EVP_MD_CTX_copy_ex(copy, md) != 1 || EVP_DigestFinal_ex(copy, d, &dl) != 1)
        dl = 0;
    EVP_MD_CTX_free(copy);
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", i < dl ? d[i] : 0);
    hex[64] = '\0';
}

static void hash_line(EVP_MD_CTX *md, const char *line, size_t n)
{
    EVP_DigestUpdate(md, line, n);
    EVP_DigestUpdate(md, "\n", 1);
}

void pgf_history_digest(const pgf_hist_meta *meta, const pgf_rec *recs, size_t n, char hex[65])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        memset(hex, '0', 64);
        hex[64] = '\0';
        EVP_MD_CTX_free(md);
        return;
    }
    if (meta != NULL) {
        json_t *o = meta_to_json(meta);
        char *s = dump_alloc(o);
        json_decref(o);
        if (s != NULL)
            hash_line(md, s, strlen(s));
        free(s);
    }
    char buf[4096];
    for (size_t i = 0; i < n; i++) {
        char *heap;
        int len;
        const char *line = rec_line(&recs[i], buf, sizeof buf, &heap, &len);
        if (line != NULL)
            hash_line(md, line, (size_t)len);
        free(heap);
    }
    hex_digest(md, hex);
    EVP_MD_CTX_free(md);
}

/* ---- writer ------------------------------------------------------------ */

#define WRITER_FLUSH_AT (64 * 1024)

/* Lines are formatted straight into `out` and digested a buffer at a time
 * (a digest update per line, twice, was a tenth of the writer; bench/
 * stream_cost). `hashed` is how much of `out` the digest has seen: all of
 * it but what a `wall` field added, which is never part of the digest. */
struct pgf_hist_writer {
    FILE *f;
    bool own;
    int err;
    pgf_buf out;
    size_t hashed;
    size_t last_at, last_len; /* the last line put, in `out` (pgf_hist_writer_last) */
    uint64_t passed;          /* bytes handed to the stream before out[0] */
    EVP_MD_CTX *md;           /* NULL: no digest (pgf_hist_writer_no_digest) */
};

pgf_hist_writer *pgf_hist_writer_new_fp(FILE *f)
{
    pgf_hist_writer *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->f = f;
    pgf_buf_init(&w->out);
    w->md = EVP_MD_CTX_new();
    if (w->md == NULL || EVP_DigestInit_ex(w->md, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(w->md);
        free(w);
        return NULL;
    }
    return w;
}

int pgf_hist_writer_open(const char *path, pgf_hist_writer **out)
{
    *out = NULL;
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return PGF_EIO;
    pgf_hist_writer *w = pgf_hist_writer_new_fp(f);
    if (w == NULL) {
        fclose(f);
        return PGF_ENOMEM;
    }
    w->own = true;
    *out = w;
    return 0;
}

/* Digest what `out` holds beyond `hashed`. */
static void writer_hash(pgf_hist_writer *w)
{
    if (w->md != NULL && w->out.len > w->hashed)
        EVP_DigestUpdate(w->md, w->out.data + w->hashed, w->out.len - w->hashed);
    w->hashed = w->out.len;
}

/* The canonical line just appended at out[at..] (with its '\n'): add the
 * `wall` field when given (only in a file; never in the digest), and
 * remember the line for pgf_hist_writer_last. */
static int writer_end_line(pgf_hist_writer *w, size_t at, int64_t wall_us)
{
    size_t n = w->out.len - at; /* the line and its '\n' */
    if (wall_us != PGF_REC_NONE && w->f != NULL && n >= 3 && w->out.data[w->out.len - 2] == '}') {
        char tail[48];
        fmt_out o = {tail, tail + sizeof tail, false};
        fmt_put(&o, ",\"wall\":", 8);
        fmt_int(&o, wall_us);
        fmt_put(&o, "}\n", 2);
        writer_hash(w);  /* the canonical line, '}' and '\n' included */
        w->out.len -= 2; /* then the same line with `wall` for the file */
        pgf_buf_put(&w->out, tail, (size_t)(o.p - tail));
        if (w->out.failed)
            return w->err = PGF_ENOMEM;
        w->hashed = w->out.len;
    }
    w->last_at = at;
    w->last_len = w->out.len - at - 1;
    return 0;
}

/* Before a line: a full buffer goes to the file (or, for a writer that
 * only digests, into the digest), so the last line stays readable until
 * the next one (pgf_hist_writer_last). */
static int writer_room(pgf_hist_writer *w)
{
    w->last_len = 0;
    if (w->out.len < WRITER_FLUSH_AT)
        return 0;
    if (w->f != NULL)
        return pgf_hist_writer_flush(w);
    writer_hash(w);
    w->passed += w->out.len;
    pgf_buf_reset(&w->out);
    w->hashed = 0;
    return 0;
}

/* Append a canonical line given as text. */
static int writer_line(pgf_hist_writer *w, const char *line, size_t n, int64_t wall_us)
{
    int e = writer_room(w);
    if (e != 0)
        return e;
    size_t at = w->out.len;
    pgf_buf_put(&w->out, line, n);
    pgf_buf_put_u8(&w->out, '\n');
    if (w->out.failed)
        return w->err = PGF_ENOMEM;
    return writer_end_line(w, at, wall_us);
}

const char *pgf_hist_writer_last(const pgf_hist_writer *w, size_t *n)
{
    *n = w->last_len;
    return w->last_len > 0 ? (const char *)w->out.data + w->last_at : NULL;
}

uint64_t pgf_hist_writer_last_pos(const pgf_hist_writer *w)
{
    return w->passed + w->last_at;
}

int pgf_hist_writer_meta(pgf_hist_writer *w, const pgf_hist_meta *m)
{
    json_t *o = meta_to_json(m);
    char *s = dump_alloc(o);
    json_decref(o);
    if (s == NULL)
        return PGF_EINVAL;
    int rc = writer_line(w, s, strlen(s), m->wall_us);
    free(s);
    return rc;
}

int pgf_hist_writer_put(pgf_hist_writer *w, const pgf_rec *r)
{
    int e = writer_room(w);
    if (e != 0)
        return e;
    /* most lines fit the room reserved here: formatted in place */
    if (!pgf_buf_reserve(&w->out, 1024))
        return w->err = PGF_ENOMEM;
    size_t at = w->out.len;
    int n = pgf_rec_format(r, (char *)w->out.data + at, w->out.cap - at);
    if (n >= 0) {
        w->out.len = at + (size_t)n;
        pgf_buf_put_u8(&w->out, '\n');
        return writer_end_line(w, at, r->wall_us);
    }
    char buf[4096], *heap;
    const char *line = rec_line(r, buf, sizeof buf, &heap, &n);
    if (line == NULL)
        return w->err = PGF_ENOMEM;
    int rc = writer_line(w, line, (size_t)n, r->wall_us);
    free(heap);
    return rc;
}

int pgf_hist_writer_flush(pgf_hist_writer *w)
{
    writer_hash(w);
    if (w->f != NULL && w->out.len > 0) {
        if (fwrite(w->out.data, 1, w->out.len, w->f) != w->out.len && w->err == 0)
            w->err = PGF_EIO;
        w->passed += w->out.len;
        pgf_buf_reset(&w->out);
        w->hashed = 0;
        w->last_len = 0;
    }
    if (w->f != NULL && fflush(w->f) != 0 && w->err == 0)
        w->err = PGF_EIO;
    return w->err;
}

void pgf_hist_writer_digest(const pgf_hist_writer *w, char hex[65])
{
    /* what is still buffered goes into the digest first: the writer is the
     * caller's, never a const object, and the lines it digests do not
     * change (only when they are digested) */
    writer_hash((pgf_hist_writer *)w);
    if (w->md == NULL)
        hex[0] = '\0';
    else
        hex_digest(w->md, hex);
}

void pgf_hist_writer_no_digest(pgf_hist_writer *w)
{
    EVP_MD_CTX_free(w->md);
    w->md = NULL;
}

int pgf_hist_writer_close(pgf_hist_writer *w)
{
    if (w == NULL)
        return 0;
    int rc = pgf_hist_writer_flush(w);
    if (w->own && fclose(w->f) != 0 && rc == 0)
        rc = PGF_EIO;
    pgf_buf_free(&w->out);
    EVP_MD_CTX_free(w->md);
    free(w);
    return rc;
}

/* ---- a line back into a record ----------------------------------------- */

/* The optional fields a line may carry beyond seq, time_ns and type: the
 * reader and pgf__hist_line_rec read them from this one list. */
static const struct {
    const char *key;
    size_t off;
} rec_ints[] =
    {
        {"session", offsetof(pgf_rec, session)},
        {"op_id", offsetof(pgf_rec, op_id)},
        {"conn", offsetof(pgf_rec, conn)},
        {"thread", offsetof(pgf_rec, thread)},
        {"conns_open", offsetof(pgf_rec, conns_open)},
        {"conns_accepted", offsetof(pgf_rec, conns_accepted)},
        {"conns_closed", offsetof(pgf_rec, conns_closed)},
        {"sessions_open", offsetof(pgf_rec, sessions_open)},
        {"backend_pid", offsetof(pgf_rec, backend_pid)},
        {"client_port", offsetof(pgf_rec, client_port)},
},
  rec_strs[] = {
      {"op", offsetof(pgf_rec, op)},         {"from", offsetof(pgf_rec, from)},
      {"to", offsetof(pgf_rec, to)},         {"cause", offsetof(pgf_rec, cause)},
      {"error", offsetof(pgf_rec, error)},   {"reason", offsetof(pgf_rec, reason)},
      {"phase", offsetof(pgf_rec, phase)},   {"rule", offsetof(pgf_rec, rule)},
      {"action", offsetof(pgf_rec, action)}, {"sqlstate", offsetof(pgf_rec, sqlstate)},
};
#define REC_INT(r, i) ((int64_t *)(void *)((char *)(r) + rec_ints[i].off))
#define REC_STR(r, i) ((const char **)(void *)((char *)(r) + rec_strs[i].off))
#define NFIELDS(a)    (sizeof(a) / sizeof((a)[0]))

/* The checker's witnesses: lenient (the line is one the history already
 * holds), every field a line can carry. */
int pgf__hist_line_rec(const char *line, size_t n, pgf_rec *r, json_t **hold)
{
    json_t *o = *hold = json_loadb(line, n, 0, NULL);
    const char *type = json_string_value(json_object_get(o, "type"));
    int t = type != NULL ? pgf_rec_type_parse(type) : -1;
    if (t < 0) {
        json_decref(o);
        *hold = NULL;
        return PGF_EPARSE;
    }
    pgf_rec_init(r, (pgf_rec_type)t);
    json_t *v = json_object_get(o, "seq");
    r->seq = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    v = json_object_get(o, "time_ns");
    r->time_ns = json_is_integer(v) ? (uint64_t)json_integer_value(v) : 0;
    for (size_t i = 0; i < NFIELDS(rec_ints); i++) {
        v = json_object_get(o, rec_ints[i].key);
        if (json_is_integer(v))
            *REC_INT(r, i) = (int64_t)json_integer_value(v);
    }
    for (size_t i = 0; i < NFIELDS(rec_strs); i++)
        *REC_STR(r, i) = json_string_value(json_object_get(o, rec_strs[i].key));
    return 0;
}

/* ---- reader ------------------------------------------------------------ */

struct pgf_hist_reader {
    FILE *f;
    bool own;
    char *name;
    char *line;
    size_t cap;
    size_t line_len; /* the current record's line (pgf_hist_reader_line); 0 none */
    uint32_t lineno;
    json_t *cur;      /* the current record's object (strings borrowed from it) */
    json_t *meta_obj; /* keeps meta strings alive */
    char *spec_text;
    char *deadlines_text;
    pgf_hist_meta meta;
    bool have_prev;
    uint64_t prev_seq;
};

static int rerr(pgf_hist_reader *r, char *err, size_t errlen, const char *fmt, ...)
    PGF_PRINTF(4, 5);
static int rerr(pgf_hist_reader *r, char *err, size_t errlen, const char *fmt, ...)
{
    char where[512];
    snprintf(where, sizeof where, "%s:%u", r->name, r->lineno);
    va_list ap;
    va_start(ap, fmt);
    int rc = pgf_err_vprintf(err, errlen, PGF_EPARSE, where, fmt, ap);
    va_end(ap);
    return rc;
}

/* Read the next non-blank line into r->line; 1, 0 at EOF, <0 on I/O error. */
static int read_line(pgf_hist_reader *r, size_t *len, char *err, size_t errlen)
{
    for (;;) {
        errno = 0;
        ssize_t n = getline(&r->line, &r->cap, r->f);
        /* a line cut short by a read error (a .zst that ends inside a
         * frame hands over the blocks it could decode first) is that
         * error, not a line with bad JSON */
        if (n < 0 || (r->line[n - 1] != '\n' && ferror(r->f))) {
            if (ferror(r->f)) {
                r->lineno++;
                int e = errno ? errno : EIO;
                rerr(r, err, errlen, "read error: %s%s", strerror(e),
                     e == EBADMSG ? " (a corrupt or truncated zstd stream)" : "");
                return PGF_EIO;
            }
            return 0;
        }
        r->lineno++;
        while (n > 0 && (r->line[n - 1] == '\n' || r->line[n - 1] == '\r'))
            n--;
        size_t i = 0;
        while (i < (size_t)n && (r->line[i] == ' ' || r->line[i] == '\t'))
            i++;
        if (i == (size_t)n)
            continue; /* blank lines are allowed and skipped */
        *len = (size_t)n;
        return 1;
    }
}

static json_t *parse_line(pgf_hist_reader *r, size_t len, char *err, size_t errlen)
{
    json_error_t je;
    json_t *o = json_loadb(r->line, len, JSON_REJECT_DUPLICATES, &je);
    if (o == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s:%u:%d: invalid JSON: %s", r->name, r->lineno, je.column,
                     je.text);
        return NULL;
    }
    if (!json_is_object(o)) {
        json_decref(o);
        rerr(r, err, errlen, "a history line must be a JSON object");
        return NULL;
    }
    return o;
}

/* Field accessors: 1 present, 0 absent, <0 wrong type (error written). */
static int get_str(pgf_hist_reader *r, json_t *o, const char *key, const char **out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = NULL;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_string(v))
        return rerr(r, err, errlen, "field '%s' must be a string", key);
    *out = json_string_value(v);
    return 1;
}

static int get_int(pgf_hist_reader *r, json_t *o, const char *key, int64_t *out, char *err,
                   size_t errlen)
{
    json_t *v = json_object_get(o, key);
    *out = PGF_REC_NONE;
    if (v == NULL || json_is_null(v))
        return 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return rerr(r, err, errlen, "field '%s' must be a non-negative integer", key);
    *out = (int64_t)json_integer_value(v);
    return 1;
}

static int read_meta(pgf_hist_reader *r, char *err, size_t errlen)
{
    size_t len = 0;
    int rc = read_line(r, &len, err, errlen);
    if (rc < 0)
        return rc;
    if (rc == 0) {
        r->lineno = r->lineno ? r->lineno : 1;
        return rerr(r, err, errlen, "empty history: expected a meta line");
    }
    json_t *o = parse_line(r, len, err, errlen);
    if (o == NULL)
        return PGF_EPARSE;
    r->meta_obj = o;
    const char *type = NULL, *format = NULL;
    if (get_str(r, o, "type", &type, err, errlen) < 0 ||
        get_str(r, o, "format", &format, err, errlen) < 0)
        return PGF_EPARSE;
    if (type == NULL || strcmp(type, "meta") != 0)
        return rerr(r, err, errlen, "the first line must be a meta record (\"type\":\"meta\")");
    if (format == NULL || strcmp(format, PGF_HISTORY_FORMAT) != 0)
        return rerr(r, err, errlen, "meta: \"format\" must be \"%s\"", PGF_HISTORY_FORMAT);
    int64_t version = 0;
    if (get_int(r, o, "version", &version, err, errlen) < 0)
        return PGF_EPARSE;
    if (version != PGF_HISTORY_VERSION)
        return rerr(r, err, errlen, "meta: unsupported history version %" PRId64 " (want %d)",
                    version, PGF_HISTORY_VERSION);
    r->meta.version = (int)version;
    json_t *seed = json_object_get(o, "seed");
    if (seed != NULL && !json_is_null(seed)) {
        if (json_is_integer(seed) && json_integer_value(seed) >= 0) {
            r->meta.seed = (uint64_t)json_integer_value(seed);
        } else if (json_is_string(seed)) {
            const char *s = json_string_value(seed);
            char *end = NULL;
            errno = 0;
            unsigned long long v = strtoull(s, &end, 10);
            if (*s < '0' || *s > '9' || *end != '\0' || errno != 0)
                return rerr(r, err, errlen, "meta: \"seed\" is not a decimal integer");
            r->meta.seed = v;
        } else {
            return rerr(r, err, errlen, "meta: \"seed\" must be an integer or decimal string");
        }
        r->meta.has_seed = true;
    }
    if (get_str(r, o, "mode", &r->meta.mode, err, errlen) < 0 ||
        get_str(r, o, "tool", &r->meta.tool, err, errlen) < 0 ||
        get_str(r, o, "spec_digest", &r->meta.spec_digest, err, errlen) < 0)
        return PGF_EPARSE;
    json_t *spec = json_object_get(o, "spec");
    if (spec != NULL && !json_is_null(spec)) {
        if (!json_is_object(spec))
            return rerr(r, err, errlen, "meta: \"spec\" must be an object");
        r->spec_text = json_dumps(spec, JSON_COMPACT);
        if (r->spec_text == NULL)
            return PGF_ENOMEM;
        r->meta.spec_json = r->spec_text;
    }
    json_t *dl = json_object_get(o, "deadlines");
    if (dl != NULL && !json_is_null(dl)) {
        if (!json_is_object(dl))
            return rerr(r, err, errlen, "meta: \"deadlines\" must be an object");
        r->deadlines_text = json_dumps(dl, JSON_COMPACT | JSON_SORT_KEYS);
        if (r->deadlines_text == NULL)
            return PGF_ENOMEM;
        r->meta.deadlines_json = r->deadlines_text;
    }
    r->meta.wall_us = PGF_REC_NONE;
    json_t *wall = json_object_get(o, "wall");
    if (json_is_integer(wall))
        r->meta.wall_us = (int64_t)json_integer_value(wall);
    return 0;
}

int pgf_hist_reader_open_fp(FILE *f, const char *name, pgf_hist_reader **out, char *err,
                            size_t errlen)
{
    *out = NULL;
    pgf_hist_reader *r = calloc(1, sizeof *r);
    if (r == NULL)
        return PGF_ENOMEM;
    r->f = f;
    r->name = strdup(name != NULL ? name : "<history>");
    if (r->name == NULL) {
        free(r);
        return PGF_ENOMEM;
    }
    int rc = read_meta(r, err, errlen);
    if (rc < 0) {
        pgf_hist_reader_free(r);
        return rc;
    }
    *out = r;
    return 0;
}

int pgf_hist_reader_open(const char *path, pgf_hist_reader **out, char *err, size_t errlen)
{
    *out = NULL;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : pgf_zio_open_read(path); /* plain or .zst */
    if (f == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return PGF_EIO;
    }
    int rc = pgf_hist_reader_open_fp(f, is_stdin ? "<stdin>" : path, out, err, errlen);
    if (rc < 0) {
        if (!is_stdin)
            fclose(f);
        return rc;
    }
    (*out)->own = !is_stdin;
    return 0;
}

const pgf_hist_meta *pgf_hist_reader_meta(const pgf_hist_reader *r)
{
    return &r->meta;
}

void pgf_hist_reader_free(pgf_hist_reader *r)
{
    if (r == NULL)
        return;
    if (r->own && r->f != NULL)
        fclose(r->f);
    json_decref(r->cur);
    json_decref(r->meta_obj);
    free(r->spec_text);
    free(r->deadlines_text);
    free(r->line);
    free(r->name);
    free(r);
}

/* Required fields per record type (docs/history-format.md). */
enum {
    F_SESSION = 1 << 0,
    F_OP = 1 << 1,
    F_OP_ID = 1 << 2,
    F_FROM = 1 << 3,
    F_TO = 1 << 4,
    F_ERROR = 1 << 5,
    F_REASON = 1 << 6,
    F_ACTION = 1 << 7,
};

static const unsigned required_fields[PGF_REC_TYPE_COUNT] = {
    [PGF_REC_INVOKE] = F_SESSION | F_OP | F_OP_ID,
    [PGF_REC_OK] = F_SESSION | F_OP_ID,
    [PGF_REC_FAIL] = F_SESSION | F_OP_ID | F_ERROR,
    [PGF_REC_INFO] = F_SESSION | F_OP_ID,
    [PGF_REC_TRANSITION] = F_SESSION | F_FROM | F_TO | F_OP,
    [PGF_REC_FAULT] = F_ACTION,
    [PGF_REC_SERVER] = 0,
    [PGF_REC_HEALTH] = F_SESSION | F_REASON,
};

static int check_required(pgf_hist_reader *r, const pgf_rec *rec, char *err, size_t errlen)
{
    unsigned need = required_fields[rec->type];
    static const struct {
        unsigned bit;
        const char *name;
    } names[] = {{F_SESSION, "session"}, {F_OP, "op"},        {F_OP_ID, "op_id"},
                 {F_FROM, "from"},       {F_TO, "to"},        {F_ERROR, "error"},
                 {F_REASON, "reason"},   {F_ACTION, "action"}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!(need & names[i].bit))
            continue;
        bool present;
        switch (names[i].bit) {
        case F_SESSION:
            present = rec->session != PGF_REC_NONE;
            break;
        case F_OP:
            present = rec->op != NULL;
            break;
        case F_OP_ID:
            present = rec->op_id != PGF_REC_NONE;
            break;
        case F_FROM:
            present = rec->from != NULL;
            break;
        case F_TO:
            present = rec->to != NULL;
            break;
        case F_ERROR:
            present = rec->error != NULL;
            break;
        case F_REASON:
            present = rec->reason != NULL;
            break;
        default:
            present = rec->action != NULL;
            break;
        }
        if (!present)
            return rerr(r, err, errlen, "%s record without required field '%s'",
                        pgf_rec_type_name(rec->type), names[i].name);
    }
    if (rec->type == PGF_REC_SERVER && rec->conns_open == PGF_REC_NONE &&
        rec->conns_accepted == PGF_REC_NONE && rec->conns_closed == PGF_REC_NONE &&
        rec->sessions_open == PGF_REC_NONE)
        return rerr(r, err, errlen,
                    "server record without any of conns_open, conns_accepted, conns_closed, "
                    "sessions_open");
    if (rec->type == PGF_REC_SERVER &&
        (rec->conns_accepted == PGF_REC_NONE) != (rec->conns_closed == PGF_REC_NONE))
        return rerr(r, err, errlen, "server record: conns_accepted and conns_closed go together");
    return 0;
}

int pgf_hist_reader_next(pgf_hist_reader *r, pgf_rec *rec, char *err, size_t errlen)
{
    json_decref(r->cur);
    r->cur = NULL;
    r->line_len = 0;
    size_t len = 0;
    int rc = read_line(r, &len, err, errlen);
    if (rc <= 0)
        return rc;
    json_t *o = parse_line(r, len, err, errlen);
    if (o == NULL)
        return PGF_EPARSE;
    r->cur = o;

    const char *type = NULL;
    if (get_str(r, o, "type", &type, err, errlen) < 0)
        return PGF_EPARSE;
    if (type == NULL)
        return rerr(r, err, errlen, "record without \"type\"");
    int t = pgf_rec_type_parse(type);
    if (t < 0) {
        if (strcmp(type, "meta") == 0)
            return rerr(r, err, errlen, "a second meta record (only the first line is meta)");
        return rerr(r, err, errlen,
                    "unknown record type \"%s\" (invoke|ok|fail|info|transition|fault|server|"
                    "health)",
                    type);
    }
    pgf_rec_init(rec, (pgf_rec_type)t);
    rec->line = r->lineno;

    int64_t seq = 0, time_ns = 0;
    if (get_int(r, o, "seq", &seq, err, errlen) < 0 ||
        get_int(r, o, "time_ns", &time_ns, err, errlen) < 0)
        return PGF_EPARSE;
    if (seq == PGF_REC_NONE)
        return rerr(r, err, errlen, "record without \"seq\"");
    if (time_ns == PGF_REC_NONE)
        return rerr(r, err, errlen, "record without \"time_ns\"");
    if (r->have_prev && (uint64_t)seq <= r->prev_seq)
        return rerr(r, err, errlen,
                    "seq %" PRId64 " is not greater than the previous seq %" PRIu64
                    " (records must be in global seq order)",
                    seq, r->prev_seq);
    rec->seq = (uint64_t)seq;
    rec->time_ns = (uint64_t)time_ns;

    for (size_t i = 0; i < NFIELDS(rec_ints); i++)
        if (get_int(r, o, rec_ints[i].key, REC_INT(rec, i), err, errlen) < 0)
            return PGF_EPARSE;
    for (size_t i = 0; i < NFIELDS(rec_strs); i++)
        if (get_str(r, o, rec_strs[i].key, REC_STR(rec, i), err, errlen) < 0)
            return PGF_EPARSE;
    if (check_required(r, rec, err, errlen) < 0)
        return PGF_EPARSE;
    r->have_prev = true;
    r->prev_seq = rec->seq;
    r->line_len = len;
    return 1;
}

const char *pgf_hist_reader_line(const pgf_hist_reader *r, size_t *n)
{
    *n = r->line_len;
    return r->line_len > 0 ? r->line : NULL;
}

/* ---- loaded history ---------------------------------------------------- */

/* Interned strings: a history repeats a handful of names ("open",
 * "READY") millions of times; each is stored once. */
typedef struct strtab {
    char **slots;
    size_t cap; /* power of two */
    size_t n;
} strtab;

struct pgf_history {
    pgf_hist_meta meta;
    char *meta_mode, *meta_tool, *meta_digest, *meta_spec, *meta_deadlines;
    pgf_rec *recs;
    size_t n, cap;
    strtab strs;
};

static uint64_t str_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static const char *intern(strtab *t, const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    if (t->n * 2 >= t->cap) {
        size_t ncap = t->cap ? t->cap * 2 : 64;
        char **ns = calloc(ncap, sizeof *ns);
        if (ns == NULL) {
            *oom = true;
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->slots[i] == NULL)
                continue;
            size_t j = str_hash(t->slots[i]) & (ncap - 1);
            while (ns[j] != NULL)
                j = (j + 1) & (ncap - 1);
            ns[j] = t->slots[i];
        }
        free(t->slots);
        t->slots = ns;
        t->cap = ncap;
    }
    size_t j = str_hash(s) & (t->cap - 1);
    while (t->slots[j] != NULL) {
        if (strcmp(t->slots[j], s) == 0)
            return t->slots[j];
        j = (j + 1) & (t->cap - 1);
    }
    t->slots[j] = strdup(s);
    if (t->slots[j] == NULL) {
        *oom = true;
        return NULL;
    }
    t->n++;
    return t->slots[j];
}

static char *dup_or_null(const char *s, bool *oom)
{
    if (s == NULL)
        return NULL;
    char *d = strdup(s);
    if (d == NULL)
        *oom = true;
    return d;
}

int pgf_history_load_fp(FILE *f, const char *name, pgf_history **out, char *err, size_t errlen)
{
    *out = NULL;
    pgf_hist_reader *r = NULL;
    int rc = pgf_hist_reader_open_fp(f, name, &r, err, errlen);
    if (rc < 0)
        return rc;
    pgf_history *h = calloc(1, sizeof *h);
    bool oom = h == NULL;
    if (oom)
        goto fail;
    h->meta = r->meta;
    h->meta.mode = h->meta_mode = dup_or_null(r->meta.mode, &oom);
    h->meta.tool = h->meta_tool = dup_or_null(r->meta.tool, &oom);
    h->meta.spec_digest = h->meta_digest = dup_or_null(r->meta.spec_digest, &oom);
    h->meta.spec_json = h->meta_spec = dup_or_null(r->meta.spec_json, &oom);
    h->meta.deadlines_json = h->meta_deadlines = dup_or_null(r->meta.deadlines_json, &oom);
    if (oom)
        goto fail;
    for (;;) {
        pgf_rec rec;
        rc = pgf_hist_reader_next(r, &rec, err, errlen);
        if (rc < 0)
            goto fail;
        if (rc == 0)
            break;
        if (h->n == h->cap) {
            size_t ncap = h->cap ? h->cap * 2 : 1024;
            pgf_rec *nr = realloc(h->recs, ncap * sizeof *nr);
            if (nr == NULL) {
                oom = true;
                goto fail;
            }
            h->recs = nr;
            h->cap = ncap;
        }
        const char **strs[] = {&rec.op,     &rec.from,  &rec.to,   &rec.cause,  &rec.error,
                               &rec.reason, &rec.phase, &rec.rule, &rec.action, &rec.sqlstate};
        for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
            *strs[i] = intern(&h->strs, *strs[i], &oom);
        if (oom)
            goto fail;
        h->recs[h->n++] = rec;
    }
    pgf_hist_reader_free(r);
    *out = h;
    return 0;
fail:
    if (oom && err != NULL && errlen > 0)
        snprintf(err, errlen, "%s: out of memory", name != NULL ? name : "<history>");
    pgf_hist_reader_free(r);
    pgf_history_free(h);
    return oom ? PGF_ENOMEM : rc;
}

int pgf_history_load(const char *path, pgf_history **out, char *err, size_t errlen)
{
    *out = NULL;
    bool is_stdin = strcmp(path, "-") == 0;
    FILE *f = is_stdin ? stdin : pgf_zio_open_read(path); /* plain or .zst */
    if (f == NULL) {
        if (err != NULL && errlen > 0)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return PGF_EIO;
    }
    int rc = pgf_history_load_fp(f, is_stdin ? "<stdin>" : path, out, err, errlen);
    if (!is_stdin)
        fclose(f);
    return rc;
}

void pgf_history_free(pgf_history *h)
{
    if (h == NULL)
        return;
    for (size_t i = 0; i < h->strs.cap; i++)
        free(h->strs.slots[i]);
    free(h->strs.slots);
    free(h->recs);
    free(h->meta_mode);
    free(h->meta_tool);
    free(h->meta_digest);
    free(h->meta_spec);
    free(h->meta_deadlines);
    free(h);
}

const pgf_hist_meta *pgf_history_meta(const pgf_history *h)
{
    return &h->meta;
}

const pgf_rec *pgf_history_records(const pgf_history *h, size_t *n)
{
    *n = h->n;
    return h->recs;
}
