/* report.c - the report model: builder, text sanitizing, latency histograms,
 * totals and the escapers the writers share. It writes no files (the
 * report_*.c writers do) and decides no verdicts beyond "a scenario fails when
 * a check failed". */
#include "pgfault/report.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "pgfault/enum_names.h"
#include "pgfault/secret.h"
#include "report_internal.h"

#define PGF__REPORT_OUTCOME_STR(name, str) str,
PGF_ENUM_NAMES(pgf_report_outcome, pgf_report_outcome_name, pgf_report_outcome_parse,
               PGF_REPORT_OUTCOME_COUNT, "unknown", PGF_REPORT_OUTCOME_MAP(PGF__REPORT_OUTCOME_STR))
#undef PGF__REPORT_OUTCOME_STR

/* ---- text ----------------------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if invalid
 * (overlong forms, surrogates and code points above U+10FFFF are invalid). */
static size_t utf8_valid_len(const unsigned char *p, size_t n, uint32_t *cp)
{
    unsigned char c = p[0];
    size_t len;
    uint32_t v, min;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        len = 2, v = c & 0x1F, min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3, v = c & 0x0F, min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4, v = c & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        v = (v << 6) | (p[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return len;
}

/* A copy of bytes[len] as valid UTF-8 without NUL: bad bytes become "\xNN". */
static char *sanitize_n(const char *bytes, size_t len)
{
    const unsigned char *p = (const unsigned char *)bytes;
    size_t out = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = p[i] == 0 ? 0 : utf8_valid_len(p + i, len - i, &cp);
        out += k ? k : 4;
        i += k ? k : 1;
    }
    char *s = malloc(out + 1), *w = s;
    if (s == NULL)
        return NULL;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = p[i] == 0 ? 0 : utf8_valid_len(p + i, len - i, &cp);
        if (k) {
            memcpy(w, p + i, k);
            w += k;
            i += k;
        } else {
            static const char hex[] = "0123456789abcdef";
            *w++ = '\\', *w++ = 'x', *w++ = hex[p[i] >> 4], *w++ = hex[p[i] & 15];
            i++;
        }
    }
    *w = '\0';
    pgf_secret_scrub(s); /* every string of every report passes here */
    return s;
}

/* Sanitized copy of an optional string: *out = NULL for NULL. 0 or ENOMEM. */
static int dup_opt(pgf_report *r, const char *s, char **out)
{
    *out = NULL;
    if (s == NULL)
        return 0;
    *out = sanitize_n(s, strlen(s));
    if (*out == NULL) {
        r->failed = true;
        return PGF_ENOMEM;
    }
    return 0;
}

static int replace_str(pgf_report *r, char **slot, const char *s)
{
    char *copy;
    int rc = dup_opt(r, s, &copy);
    if (rc != 0)
        return rc;
    free(*slot);
    *slot = copy;
    return 0;
}

/* The bytes utf8_valid_len() may look at in a NUL-terminated string: at most
 * the 4 of the longest sequence. Bounding this is what keeps the escapers
 * linear; strlen() of the rest of the string per character made a 1 MB
 * description take 22 s and a 10 MB one over ten minutes (issue 11). */
static size_t utf8_avail(const unsigned char *p)
{
    return strnlen((const char *)p, 4);
}

void pgf__xml_escape(pgf_buf *b, const char *s, bool attr)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        unsigned char c = *p;
        switch (c) {
        case '&':
            PGF__PUT_LIT(b, "&amp;");
            p++;
            continue;
        case '<':
            PGF__PUT_LIT(b, "&lt;");
            p++;
            continue;
        case '>':
            PGF__PUT_LIT(b, "&gt;");
            p++;
            continue;
        case '"':
            PGF__PUT_LIT(b, "&quot;");
            p++;
            continue;
        case '\'':
            PGF__PUT_LIT(b, "&#39;");
            p++;
            continue;
        case '\t':
        case '\n':
        case '\r':
            /* Attribute values normalize whitespace; keep it as references. */
            if (attr)
                pgf_buf_printf(b, "&#%d;", c);
            else
                pgf_buf_put_u8(b, c);
            p++;
            continue;
        default:
            break;
        }
        if (c < 0x20) {
            pgf_buf_printf(b, "\\x%02x", c);
            p++;
            continue;
        }
        uint32_t cp;
        size_t k = utf8_valid_len(p, utf8_avail(p), &cp);
        if (k == 0) { /* cannot happen for model strings; stay safe anyway */
            pgf_buf_printf(b, "\\x%02x", c);
            p++;
            continue;
        }
        if (cp == 0xFFFE || cp == 0xFFFF)
            PGF__PUT_LIT(b, "\xEF\xBF\xBD"); /* not XML 1.0 characters: U+FFFD */
        else
            pgf_buf_put(b, p, k);
        p += k;
    }
}

void pgf__console_escape(pgf_buf *b, const char *s, bool keep_newlines)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p != '\0') {
        uint32_t cp;
        size_t k = utf8_valid_len(p, utf8_avail(p), &cp);
        if (k == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0)) {
            if (k != 0 && cp == '\n' && keep_newlines)
                pgf_buf_put_u8(b, '\n');
            else if (k > 1)
                pgf_buf_printf(b, "\\u%04x", (unsigned)cp);
            else
                pgf_buf_printf(b, "\\x%02x", *p);
            p += k ? k : 1;
            continue;
        }
        pgf_buf_put(b, p, k);
        p += k;
    }
}

int pgf__report_check_built(const pgf_report *r, char *err, size_t errlen)
{
    if (r == NULL)
        return pgf__report_err(err, errlen, PGF_EINVAL, "report: no report to write");
    if (r->failed)
        return pgf__report_err(err, errlen, PGF_ENOMEM,
                               "report: out of memory while it was built; not writing a "
                               "partial report");
    return 0;
}

/* ---- vectors -------------------------------------------------------------------------------- */

/* Make room for one more item in a PGF__VEC; false on ENOMEM. */
static bool vec_grow(void **items, size_t *cap, size_t len, size_t size)
{
    if (len < *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 8;
    void *p = realloc(*items, ncap * size);
    if (p == NULL)
        return false;
    *items = p;
    *cap = ncap;
    return true;
}

#define VEC_PUSH_ROOM(r, v)                                              \
    (vec_grow((void **)&(v).items, &(v).cap, (v).len, sizeof *(v).items) \
         ? true                                                          \
         : ((r)->failed = true, false))

/* ---- histogram ------------------------------------------------------------------------------ */

unsigned pgf__hist_index(uint64_t v)
{
    if (v < PGF__HIST_SUB)
        return (unsigned)v;
    unsigned e = 63u - (unsigned)__builtin_clzll(v); /* >= 4 */
    unsigned sub = (unsigned)(v >> (e - 4)) & (PGF__HIST_SUB - 1);
    return (e - 3) * PGF__HIST_SUB + sub;
}

uint64_t pgf__hist_lower(unsigned idx)
{
    if (idx < PGF__HIST_SUB)
        return idx;
    unsigned e = idx / PGF__HIST_SUB + 3, sub = idx % PGF__HIST_SUB;
    return (uint64_t)(PGF__HIST_SUB + sub) << (e - 4);
}

uint64_t pgf__hist_upper(unsigned idx)
{
    if (idx < PGF__HIST_SUB)
        return idx;
    unsigned e = idx / PGF__HIST_SUB + 3;
    return pgf__hist_lower(idx) + ((uint64_t)1 << (e - 4)) - 1;
}

uint64_t pgf__hist_quantile(const pgf__hist *h, double q)
{
    if (h->count == 0)
        return 0;
    uint64_t rank = (uint64_t)((long double)q * (long double)h->count + 0.999999L);
    if (rank < 1)
        rank = 1;
    if (rank > h->count)
        rank = h->count;
    uint64_t seen = 0;
    for (unsigned i = 0; i < PGF__HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t v = pgf__hist_upper(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

/* ---- model ---------------------------------------------------------------------------------- */

pgf_report *pgf_report_new(void)
{
    pgf_report *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->config = json_object();
    if (r->config == NULL) {
        free(r);
        return NULL;
    }
    return r;
}

static void check_free(pgf_report_check *c)
{
    if (c == NULL)
        return;
    free(c->name);
    free(c->kind);
    free(c->message);
    for (size_t i = 0; i < c->witness.len; i++)
        free(c->witness.items[i]);
    free(c->witness.items);
    free(c);
}

static void scenario_free(pgf_report_scenario *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->description);
    free(s->replay_command);
    for (size_t i = 0; i < s->checks.len; i++)
        check_free(s->checks.items[i]);
    free(s->checks.items);
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++)
        free(s->latency[o].buckets);
    for (size_t i = 0; i < s->states.len; i++)
        free(s->states.items[i]);
    free(s->states.items);
    for (size_t i = 0; i < s->edges.len; i++) {
        free(s->edges.items[i].from);
        free(s->edges.items[i].to);
        free(s->edges.items[i].op);
    }
    free(s->edges.items);
    for (size_t i = 0; i < s->spans.len; i++)
        free(s->spans.items[i].state);
    free(s->spans.items);
    for (size_t i = 0; i < s->marks.len; i++) {
        free(s->marks.items[i].phase);
        free(s->marks.items[i].action);
        free(s->marks.items[i].rule);
    }
    free(s->marks.items);
    for (size_t i = 0; i < s->ops.len; i++) {
        free(s->ops.items[i].op);
        free(s->ops.items[i].result);
        free(s->ops.items[i].error);
    }
    free(s->ops.items);
    for (size_t i = 0; i < s->vmarks.len; i++)
        free(s->vmarks.items[i].kind);
    free(s->vmarks.items);
    for (size_t i = 0; i < s->windows.len; i++)
        free(s->windows.items[i].rule);
    free(s->windows.items);
    free(s->samples.items);
    free(s->tput_ok);
    free(s->tput_bad);
    free(s->mode);
    free(s->stopped_early);
    for (size_t i = 0; i < s->rules.len; i++) {
        free(s->rules.items[i].name);
        free(s->rules.items[i].phase);
        free(s->rules.items[i].action);
    }
    free(s->rules.items);
    for (size_t i = 0; i < s->cells.len; i++) {
        free(s->cells.items[i].phase);
        free(s->cells.items[i].action);
    }
    free(s->cells.items);
    for (size_t i = 0; i < s->opcells.len; i++) {
        free(s->opcells.items[i].op);
        free(s->opcells.items[i].state);
    }
    free(s->opcells.items);
    for (size_t i = 0; i < s->violations.len; i++)
        free(s->violations.items[i].key);
    free(s->violations.items);
    free(s);
}

void pgf_report_free(pgf_report *r)
{
    if (r == NULL)
        return;
    free(r->tool_version);
    free(r->mode);
    free(r->name);
    free(r->description);
    free(r->replay_command);
    free(r->out_dir);
    json_decref(r->config);
    for (size_t i = 0; i < r->scenarios.len; i++)
        scenario_free(r->scenarios.items[i]);
    free(r->scenarios.items);
    free(r);
}

int pgf_report_set_meta(pgf_report *r, const pgf_report_meta *m)
{
    if (r == NULL || m == NULL)
        return PGF_EINVAL;
    int rc = 0;
    if ((rc = replace_str(r, &r->tool_version, m->tool_version)) != 0 ||
        (rc = replace_str(r, &r->mode, m->mode)) != 0 ||
        (rc = replace_str(r, &r->name, m->name)) != 0 ||
        (rc = replace_str(r, &r->description, m->description)) != 0 ||
        (rc = replace_str(r, &r->replay_command, m->replay_command)) != 0 ||
        (rc = replace_str(r, &r->out_dir, m->out_dir)) != 0)
        return rc;
    r->seed = m->seed;
    r->start_wall_us = m->start_wall_us;
    r->end_wall_us = m->end_wall_us;
    r->duration_ns = m->duration_ns;
    r->interrupted = m->interrupted;
    return 0;
}

int pgf_report_set_config(pgf_report *r, const json_t *config)
{
    if (r == NULL || !json_is_object(config))
        return PGF_EINVAL;
    json_t *copy = json_deep_copy(config);
    if (copy == NULL) {
        r->failed = true;
        return PGF_ENOMEM;
    }
    json_decref(r->config);
    r->config = copy;
    return 0;
}

int pgf_report_config_set(pgf_report *r, const char *key, const char *value)
{
    if (r == NULL || key == NULL || value == NULL)
        return PGF_EINVAL;
    char *k = sanitize_n(key, strlen(key)), *v = sanitize_n(value, strlen(value));
    json_t *js = v ? json_string(v) : NULL;
    int rc = (k && js) ? json_object_set_new(r->config, k, js) : -1;
    if (rc != 0 && js != NULL && k == NULL)
        json_decref(js);
    free(k);
    free(v);
    if (rc != 0) {
        r->failed = true;
        return PGF_ENOMEM;
    }
    return 0;
}

bool pgf__scenario_passed(const pgf_report_scenario *s)
{
    for (size_t i = 0; i < s->checks.len; i++)
        if (!s->checks.items[i]->passed)
            return false;
    return true;
}

uint64_t pgf__scenario_health_checks(const pgf_report_scenario *s)
{
    uint64_t n = 0;
    for (int o = 0; o < PGF_REPORT_OUTCOME_COUNT; o++)
        n += s->outcomes[o];
    return n;
}

uint64_t pgf__scenario_violations(const pgf_report_scenario *s)
{
    uint64_t n = 0;
    for (size_t i = 0; i < s->violations.len; i++)
        n += s->violations.items[i].n;
    return n;
}

bool pgf__scenario_virtual(const pgf_report_scenario *s)
{
    const char *m = s->mode ? s->mode : s->report->mode;
    return m != NULL && strcmp(m, "sim") == 0;
}

const char *pgf__scenario_replay(const pgf_report_scenario *s)
{
    return s->replay_command ? s->replay_command : s->report->replay_command;
}

void pgf__report_totals(const pgf_report *r, pgf__totals *t)
{
    memset(t, 0, sizeof *t);
    for (size_t i = 0; i < r->scenarios.len; i++) {
        const pgf_report_scenario *s = r->scenarios.items[i];
        t->scenarios++;
        t->scenarios_failed += !pgf__scenario_passed(s);
        t->checks += s->checks.len;
        for (size_t j = 0; j < s->checks.len; j++)
            t->checks_failed += !s->checks.items[j]->passed;
        t->health_checks += pgf__scenario_health_checks(s);
        t->violations += pgf__scenario_violations(s);
    }
}

bool pgf_report_passed(const pgf_report *r)
{
    for (size_t i = 0; r != NULL && i < r->scenarios.len; i++)
        if (!pgf__scenario_passed(r->scenarios.items[i]))
            return false;
    return true;
}

pgf_report_scenario *pgf_report_add_scenario(pgf_report *r, const char *name,
                                             const char *description)
{
    if (r == NULL || name == NULL)
        return NULL;
    if (!VEC_PUSH_ROOM(r, r->scenarios))
        return NULL;
    pgf_report_scenario *s = calloc(1, sizeof *s);
    if (s == NULL) {
        r->failed = true;
        return NULL;
    }
    s->report = r;
    if (dup_opt(r, name, &s->name) != 0 || dup_opt(r, description, &s->description) != 0) {
        scenario_free(s);
        return NULL;
    }
    r->scenarios.items[r->scenarios.len++] = s;
    return s;
}

int pgf_report_scenario_set_run(pgf_report_scenario *s, uint64_t seed, const char *replay_command,
                                uint64_t duration_ns)
{
    if (s == NULL)
        return PGF_EINVAL;
    int rc = replace_str(s->report, &s->replay_command, replay_command);
    if (rc != 0)
        return rc;
    s->seed = seed;
    s->duration_ns = duration_ns;
    s->has_run = true;
    return 0;
}

int pgf_report_scenario_set_timing(pgf_report_scenario *s, const char *mode, uint64_t wall_ns)
{
    if (s == NULL)
        return PGF_EINVAL;
    int rc = replace_str(s->report, &s->mode, mode);
    if (rc != 0)
        return rc;
    s->wall_ns = wall_ns;
    return 0;
}

void pgf_report_scenario_set_phases(pgf_report_scenario *s, uint64_t load_ns, uint64_t verdict_ns)
{
    if (s == NULL)
        return;
    s->load_ns = load_ns;
    s->verdict_ns = verdict_ns;
    s->has_phases = true;
}

int pgf_report_scenario_set_stopped_early(pgf_report_scenario *s, const char *why)
{
    if (s == NULL)
        return PGF_EINVAL;
    return replace_str(s->report, &s->stopped_early, why);
}

void pgf_report_scenario_add_samples_dropped(pgf_report_scenario *s, uint64_t n)
{
    if (s != NULL)
        s->samples_dropped += n;
}

void pgf_report_scenario_set_incomplete(pgf_report_scenario *s)
{
    if (s != NULL)
        s->report->failed = true;
}

void pgf_report_scenario_add_marks_not_kept(pgf_report_scenario *s, uint64_t n)
{
    if (s != NULL)
        s->marks_not_kept += n;
}

void pgf_report_scenario_set_sessions(pgf_report_scenario *s, uint64_t total)
{
    if (s != NULL)
        s->sessions_total = total;
}

pgf_report_check *pgf_report_add_check(pgf_report_scenario *s, const char *name, bool passed,
                                       const char *kind, const char *message)
{
    if (s == NULL || name == NULL)
        return NULL;
    pgf_report *r = s->report;
    if (!VEC_PUSH_ROOM(r, s->checks))
        return NULL;
    pgf_report_check *c = calloc(1, sizeof *c);
    if (c == NULL) {
        r->failed = true;
        return NULL;
    }
    c->passed = passed;
    c->report = r;
    if (dup_opt(r, name, &c->name) != 0 || dup_opt(r, kind, &c->kind) != 0 ||
        dup_opt(r, message, &c->message) != 0) {
        check_free(c);
        return NULL;
    }
    s->checks.items[s->checks.len++] = c;
    return c;
}

void pgf_report_check_set_session(pgf_report_check *c, uint64_t session)
{
    if (c != NULL)
        c->session = session;
}

int pgf_report_check_add_witness_n(pgf_report_check *c, const char *bytes, size_t len)
{
    if (c == NULL || (bytes == NULL && len > 0))
        return PGF_EINVAL;
    if (!VEC_PUSH_ROOM(c->report, c->witness))
        return PGF_ENOMEM;
    char *line = sanitize_n(bytes ? bytes : "", len);
    if (line == NULL) {
        c->report->failed = true;
        return PGF_ENOMEM;
    }
    c->witness.items[c->witness.len++] = line;
    return 0;
}

int pgf_report_check_add_witness(pgf_report_check *c, const char *line)
{
    if (line == NULL)
        return PGF_EINVAL;
    return pgf_report_check_add_witness_n(c, line, strlen(line));
}

int pgf_report_count_outcome(pgf_report_scenario *s, pgf_report_outcome o, uint64_t n)
{
    if (s == NULL || (unsigned)o >= PGF_REPORT_OUTCOME_COUNT)
        return PGF_EINVAL;
    s->outcomes[o] += n;
    return 0;
}

int pgf_report_add_latency(pgf_report_scenario *s, pgf_report_outcome o, uint64_t ns, uint64_t n)
{
    if (s == NULL || (unsigned)o >= PGF_REPORT_OUTCOME_COUNT)
        return PGF_EINVAL;
    if (n == 0)
        return 0;
    pgf__hist *h = &s->latency[o];
    if (h->buckets == NULL) {
        h->buckets = calloc(PGF__HIST_BUCKETS, sizeof *h->buckets);
        if (h->buckets == NULL) {
            s->report->failed = true;
            return PGF_ENOMEM;
        }
        h->min = ns;
        h->max = ns;
    }
    h->buckets[pgf__hist_index(ns)] += n;
    if (ns < h->min)
        h->min = ns;
    if (ns > h->max)
        h->max = ns;
    h->count += n;
    h->sum += (long double)ns * (long double)n;
    return 0;
}

void pgf_report_latency_get(const pgf_report_scenario *s, pgf_report_outcome o,
                            pgf_report_latency *out)
{
    memset(out, 0, sizeof *out);
    if (s == NULL || (unsigned)o >= PGF_REPORT_OUTCOME_COUNT || s->latency[o].count == 0)
        return;
    const pgf__hist *h = &s->latency[o];
    out->count = h->count;
    out->min = h->min;
    out->max = h->max;
    out->mean = (uint64_t)(h->sum / (long double)h->count);
    out->p50 = pgf__hist_quantile(h, 0.50);
    out->p90 = pgf__hist_quantile(h, 0.90);
    out->p99 = pgf__hist_quantile(h, 0.99);
}

static int find_str(char *const *items, size_t len, const char *s)
{
    for (size_t i = 0; i < len; i++)
        if (strcmp(items[i], s) == 0)
            return (int)i;
    return -1;
}

int pgf_report_add_state(pgf_report_scenario *s, const char *state)
{
    if (s == NULL || state == NULL)
        return PGF_EINVAL;
    char *copy;
    int rc = dup_opt(s->report, state, &copy);
    if (rc != 0)
        return rc;
    if (find_str(s->states.items, s->states.len, copy) >= 0) {
        free(copy);
        return 0;
    }
    if (!VEC_PUSH_ROOM(s->report, s->states)) {
        free(copy);
        return PGF_ENOMEM;
    }
    s->states.items[s->states.len++] = copy;
    return 0;
}

static bool opt_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

int pgf_report_add_edge(pgf_report_scenario *s, const char *from, const char *to, const char *op,
                        uint64_t count, bool legal)
{
    if (s == NULL || from == NULL || to == NULL)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    int rc;
    if ((rc = pgf_report_add_state(s, from)) != 0 || (rc = pgf_report_add_state(s, to)) != 0)
        return rc;
    pgf__edge e = {0};
    e.count = count;
    e.legal = legal;
    if (dup_opt(r, from, &e.from) != 0 || dup_opt(r, to, &e.to) != 0 || dup_opt(r, op, &e.op) != 0)
        goto fail;
    for (size_t i = 0; i < s->edges.len; i++) {
        pgf__edge *x = &s->edges.items[i];
        if (x->legal == legal && strcmp(x->from, e.from) == 0 && strcmp(x->to, e.to) == 0 &&
            opt_eq(x->op, e.op)) {
            x->count += count;
            free(e.from);
            free(e.to);
            free(e.op);
            return 0;
        }
    }
    if (!VEC_PUSH_ROOM(r, s->edges))
        goto fail;
    s->edges.items[s->edges.len++] = e;
    return 0;
fail:
    free(e.from);
    free(e.to);
    free(e.op);
    return PGF_ENOMEM;
}

int pgf_report_add_span(pgf_report_scenario *s, uint64_t session, const char *state,
                        uint64_t start_ns, uint64_t end_ns)
{
    if (s == NULL || state == NULL || end_ns < start_ns)
        return PGF_EINVAL;
    pgf__span sp = {session, NULL, start_ns, end_ns};
    if (dup_opt(s->report, state, &sp.state) != 0)
        return PGF_ENOMEM;
    if (!VEC_PUSH_ROOM(s->report, s->spans)) {
        free(sp.state);
        return PGF_ENOMEM;
    }
    s->spans.items[s->spans.len++] = sp;
    return 0;
}

int pgf_report_add_fault_mark(pgf_report_scenario *s, uint64_t session, uint64_t t_ns,
                              const char *phase, const char *action, const char *rule)
{
    if (s == NULL || phase == NULL || action == NULL)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    pgf__mark m = {session, t_ns, NULL, NULL, NULL};
    if (dup_opt(r, phase, &m.phase) != 0 || dup_opt(r, action, &m.action) != 0 ||
        dup_opt(r, rule, &m.rule) != 0 || !VEC_PUSH_ROOM(r, s->marks)) {
        free(m.phase);
        free(m.action);
        free(m.rule);
        return PGF_ENOMEM;
    }
    s->marks.items[s->marks.len++] = m;
    return 0;
}

int pgf_report_add_op(pgf_report_scenario *s, uint64_t session, uint64_t op_id, const char *op,
                      uint64_t invoke_ns, uint64_t end_ns, const char *result, const char *error,
                      bool raced)
{
    if (s == NULL || op == NULL || end_ns < invoke_ns)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    pgf__op x = {session, op_id, invoke_ns, end_ns, NULL, NULL, NULL, raced};
    if (dup_opt(r, op, &x.op) != 0 || dup_opt(r, result, &x.result) != 0 ||
        dup_opt(r, error, &x.error) != 0 || !VEC_PUSH_ROOM(r, s->ops)) {
        free(x.op);
        free(x.result);
        free(x.error);
        return PGF_ENOMEM;
    }
    s->ops.items[s->ops.len++] = x;
    return 0;
}

int pgf_report_add_violation_mark(pgf_report_scenario *s, uint64_t session, uint64_t t_ns,
                                  const char *kind)
{
    if (s == NULL || kind == NULL)
        return PGF_EINVAL;
    pgf__vmark m = {session, t_ns, NULL};
    if (dup_opt(s->report, kind, &m.kind) != 0 || !VEC_PUSH_ROOM(s->report, s->vmarks)) {
        free(m.kind);
        return PGF_ENOMEM;
    }
    s->vmarks.items[s->vmarks.len++] = m;
    return 0;
}

int pgf_report_add_fault_window(pgf_report_scenario *s, const char *rule, uint64_t start_ns,
                                uint64_t end_ns)
{
    if (s == NULL || rule == NULL || end_ns < start_ns)
        return PGF_EINVAL;
    pgf__window w = {NULL, start_ns, end_ns};
    if (dup_opt(s->report, rule, &w.rule) != 0 || !VEC_PUSH_ROOM(s->report, s->windows)) {
        free(w.rule);
        return PGF_ENOMEM;
    }
    s->windows.items[s->windows.len++] = w;
    return 0;
}

int pgf_report_add_sample(pgf_report_scenario *s, pgf_report_outcome o, uint64_t t_ns,
                          uint64_t latency_ns)
{
    if (s == NULL || (unsigned)o >= PGF_REPORT_OUTCOME_COUNT)
        return PGF_EINVAL;
    if (s->samples.len >= PGF_REPORT_MAX_SAMPLES) {
        s->samples_dropped++;
        return 0;
    }
    if (!VEC_PUSH_ROOM(s->report, s->samples))
        return PGF_ENOMEM;
    s->samples.items[s->samples.len++] = (pgf__sample){t_ns, latency_ns, o};
    return 0;
}

int pgf_report_set_throughput(pgf_report_scenario *s, uint64_t bin_ns, size_t n, const uint64_t *ok,
                              const uint64_t *bad)
{
    if (s == NULL || bin_ns == 0 || n == 0 || ok == NULL || bad == NULL)
        return PGF_EINVAL;
    uint64_t *o = malloc(n * sizeof *o), *b = malloc(n * sizeof *b);
    if (o == NULL || b == NULL) {
        free(o);
        free(b);
        return PGF_ENOMEM;
    }
    memcpy(o, ok, n * sizeof *o);
    memcpy(b, bad, n * sizeof *b);
    free(s->tput_ok);
    free(s->tput_bad);
    s->tput_ok = o;
    s->tput_bad = b;
    s->tput_n = n;
    s->tput_bin_ns = bin_ns;
    return 0;
}

int pgf_report_add_coverage(pgf_report_scenario *s, const char *phase, const char *action,
                            uint64_t fired)
{
    if (s == NULL || phase == NULL || action == NULL)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    pgf__cell c = {NULL, NULL, fired};
    if (dup_opt(r, phase, &c.phase) != 0 || dup_opt(r, action, &c.action) != 0)
        goto fail;
    for (size_t i = 0; i < s->cells.len; i++) {
        pgf__cell *x = &s->cells.items[i];
        if (strcmp(x->phase, c.phase) == 0 && strcmp(x->action, c.action) == 0) {
            x->fired += fired;
            free(c.phase);
            free(c.action);
            return 0;
        }
    }
    if (!VEC_PUSH_ROOM(r, s->cells))
        goto fail;
    s->cells.items[s->cells.len++] = c;
    return 0;
fail:
    free(c.phase);
    free(c.action);
    return PGF_ENOMEM;
}

int pgf_report_add_op_coverage(pgf_report_scenario *s, const char *op, const char *state,
                               uint64_t calls, uint64_t refused)
{
    if (s == NULL || op == NULL || state == NULL)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    for (size_t i = 0; i < s->opcells.len; i++) {
        pgf__opcell *x = &s->opcells.items[i];
        if (strcmp(x->op, op) == 0 && strcmp(x->state, state) == 0) {
            x->calls += calls;
            x->refused += refused;
            return 0;
        }
    }
    pgf__opcell c = {NULL, NULL, calls, refused};
    if (dup_opt(r, op, &c.op) != 0 || dup_opt(r, state, &c.state) != 0 ||
        !VEC_PUSH_ROOM(r, s->opcells)) {
        free(c.op);
        free(c.state);
        return PGF_ENOMEM;
    }
    s->opcells.items[s->opcells.len++] = c;
    return 0;
}

int pgf_report_add_rule(pgf_report_scenario *s, const char *rule, const char *phase,
                        const char *action, uint64_t fired)
{
    if (s == NULL || rule == NULL || phase == NULL || action == NULL)
        return PGF_EINVAL;
    pgf_report *r = s->report;
    pgf__rule x = {NULL, NULL, NULL, fired};
    /* The rule's site shows in the heat table even when it never fired. */
    int rc = pgf_report_add_coverage(s, phase, action, 0);
    if (rc != 0)
        return rc;
    if (dup_opt(r, rule, &x.name) != 0 || dup_opt(r, phase, &x.phase) != 0 ||
        dup_opt(r, action, &x.action) != 0)
        goto fail;
    for (size_t i = 0; i < s->rules.len; i++) {
        pgf__rule *y = &s->rules.items[i];
        if (strcmp(y->name, x.name) == 0 && strcmp(y->phase, x.phase) == 0 &&
            strcmp(y->action, x.action) == 0) {
            y->fired += fired;
            free(x.name);
            free(x.phase);
            free(x.action);
            return 0;
        }
    }
    if (!VEC_PUSH_ROOM(r, s->rules))
        goto fail;
    s->rules.items[s->rules.len++] = x;
    return 0;
fail:
    free(x.name);
    free(x.phase);
    free(x.action);
    return PGF_ENOMEM;
}

int pgf_report_count_violation(pgf_report_scenario *s, const char *kind, uint64_t n)
{
    if (s == NULL || kind == NULL)
        return PGF_EINVAL;
    char *k;
    if (dup_opt(s->report, kind, &k) != 0)
        return PGF_ENOMEM;
    for (size_t i = 0; i < s->violations.len; i++) {
        if (strcmp(s->violations.items[i].key, k) == 0) {
            s->violations.items[i].n += n;
            free(k);
            return 0;
        }
    }
    if (!VEC_PUSH_ROOM(s->report, s->violations)) {
        free(k);
        return PGF_ENOMEM;
    }
    s->violations.items[s->violations.len].key = k;
    s->violations.items[s->violations.len++].n = n;
    return 0;
}

int pgf_report_write_all(const pgf_report *r, const char *dir, char *err, size_t errlen)
{
    if (dir == NULL)
        return pgf__report_err(err, errlen, PGF_EINVAL, "report: no output directory");
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return pgf__report_err(err, errlen, PGF_EIO, "%s: cannot create directory: %s", dir,
                               strerror(errno));
    int rc = pgf_report_write_json(r, dir, err, errlen);
    if (rc == 0)
        rc = pgf_report_write_junit(r, dir, err, errlen);
    if (rc == 0)
        rc = pgf_report_write_html(r, dir, err, errlen);
    return rc;
}
