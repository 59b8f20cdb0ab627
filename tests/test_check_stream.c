/* test_check_stream.c - the streaming checker (pgf_checker): the same
 * verdicts fed one record at a time from the streaming reader (whose
 * strings die at the next record) as from the batch wrapper over a loaded
 * history, and bounded state over a long synthetic history.
 */
#include <dirent.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgf_test.h"
#include "pgfault/check.h"
#include "pgfault/history.h"
#include "pgfault/spec.h"

#define SPEC_PATH PGF_TEST_DATA_DIR "/spec_session.json"
#define HIST_DIR  PGF_TEST_DATA_DIR "/histories/"

static pgf_spec *load_spec(void)
{
    char err[512] = "";
    pgf_spec *s = NULL;
    int rc = pgf_spec_load(SPEC_PATH, &s, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "spec: %s\n", err);
    CU_ASSERT_EQUAL_FATAL(rc, 0);
    return s;
}

static bool same_result(const pgf_check_result *a, const pgf_check_result *b, const char *what)
{
    bool same = a->total == b->total && memcmp(a->counts, b->counts, sizeof a->counts) == 0 &&
                a->nfirst == b->nfirst && a->records == b->records && a->sessions == b->sessions &&
                a->ops == b->ops && a->first_dropped == b->first_dropped;
    for (size_t i = 0; same && i < a->nfirst; i++) {
        const pgf_violation *x = &a->first[i], *y = &b->first[i];
        same = x->kind == y->kind && x->session == y->session && x->at == y->at &&
               x->at_time_ns == y->at_time_ns && strcmp(x->message, y->message) == 0 &&
               x->nwitness == y->nwitness;
        for (size_t w = 0; same && w < x->nwitness; w++) {
            char l1[2048], l2[2048];
            same = x->witness[w] == y->witness[w] && x->wrec[w].line == y->wrec[w].line &&
                   pgf_rec_format(&x->wrec[w], l1, sizeof l1) >= 0 &&
                   pgf_rec_format(&y->wrec[w], l2, sizeof l2) >= 0 && strcmp(l1, l2) == 0;
        }
    }
    if (!same)
        fprintf(stderr, "%s: streamed and batch results differ\n", what);
    return same;
}

/* A history written to memory, for witnesses read back by reference
 * (pgf_checker_feed_line_at): the checker's reader over it. */
typedef struct memhist {
    char *buf;
    size_t len, cap;
    unsigned reads; /* lines read back */
    int fail;       /* nonzero: what every read returns */
} memhist;

static uint64_t memhist_put(memhist *m, const char *line, size_t n)
{
    if (m->len + n + 1 > m->cap) {
        m->cap = 2 * (m->len + n + 1);
        m->buf = realloc(m->buf, m->cap);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m->buf);
    }
    uint64_t pos = m->len;
    memcpy(m->buf + m->len, line, n);
    m->buf[m->len + n] = '\n';
    m->len += n + 1;
    return pos;
}

static int memhist_read(void *arg, uint64_t pos, char *buf, size_t n)
{
    memhist *m = arg;
    if (m->fail != 0)
        return m->fail;
    CU_ASSERT_FATAL(pos + n <= m->len);
    /* a line, whole: from a line start to just before its '\n' */
    CU_ASSERT(pos == 0 || m->buf[pos - 1] == '\n');
    CU_ASSERT(m->buf[pos + n] == '\n');
    memcpy(buf, m->buf + pos, n);
    m->reads++;
    return 0;
}

/* Feed rec to c by reference: its line goes to m, the checker keeps where. */
static int feed_at(pgf_checker *c, memhist *m, const pgf_rec *rec)
{
    static char line[200000];
    int n = pgf_rec_format(rec, line, sizeof line);
    CU_ASSERT_FATAL(n > 0);
    uint64_t pos = memhist_put(m, line, (size_t)n);
    return pgf_checker_feed_line_at(c, rec, line, (size_t)n, pos);
}

/* One fixture, checked three ways: loaded whole + pgf_check, record by
 * record from the streaming reader (each record's strings are overwritten
 * by the next read, so a witness that kept a borrowed pointer shows), and
 * record by record with the witnesses kept by reference and read back. */
static void check_both_ways(const pgf_spec *spec, const char *path, unsigned wmax)
{
    char err[512];
    pgf_history *h = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_history_load(path, &h, err, sizeof err), 0);
    const pgf_hist_meta *meta = pgf_history_meta(h);
    pgf_check_deadlines dl;
    pgf_check_opts o = {wmax, NULL};
    if (meta->deadlines_json != NULL) {
        CU_ASSERT_EQUAL_FATAL(pgf_check_deadlines_parse(meta->deadlines_json, &dl, err, sizeof err),
                              0);
        o.deadlines = &dl;
    }
    size_t n;
    const pgf_rec *recs = pgf_history_records(h, &n);
    pgf_check_result *batch = NULL, *stream = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_check(spec, recs, n, &o, &batch), 0);

    pgf_hist_reader *rd = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_hist_reader_open(path, &rd, err, sizeof err), 0);
    pgf_checker *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, &o, &c), 0);
    pgf_rec rec;
    int rc;
    uint64_t seen = 0, fed = 0;
    while ((rc = pgf_hist_reader_next(rd, &rec, err, sizeof err)) == 1) {
        CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &rec), 0);
        fed++;
        /* the live view never goes back, and shows the first violation
         * as soon as it is counted */
        uint64_t now = pgf_checker_violations(c);
        CU_ASSERT(now >= seen);
        seen = now;
        const pgf_violation *first = pgf_checker_first(c);
        if (batch->nfirst > 0 && batch->first[0].at != PGF_CHECK_NO_RECORD &&
            batch->first[0].kind != PGF_VIOL_CONNECTION_LEAK /* found at the end */ &&
            fed > batch->first[0].at) {
            CU_ASSERT_PTR_NOT_NULL(first);
            if (first != NULL)
                CU_ASSERT_EQUAL(first->at, batch->first[0].at);
        }
        if (now == 0)
            CU_ASSERT_PTR_NULL(first);
    }
    CU_ASSERT_EQUAL(rc, 0);
    CU_ASSERT_EQUAL(fed, n);
    CU_ASSERT_EQUAL_FATAL(pgf_checker_finish(c, &stream), 0);
    CU_ASSERT(same_result(batch, stream, path));

    memhist m = {0};
    pgf_check_result *byref = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, &o, &c), 0);
    pgf_checker_set_reader(c, memhist_read, &m);
    for (size_t i = 0; i < n; i++)
        CU_ASSERT_EQUAL_FATAL(feed_at(c, &m, &recs[i]), 0);
    CU_ASSERT_EQUAL_FATAL(pgf_checker_finish(c, &byref), 0); /* end-of-history witnesses too */
    CU_ASSERT(same_result(batch, byref, path));
    /* a witness of a session's records was read back, not copied */
    bool session_witness = false;
    for (size_t i = 0; i < byref->nfirst; i++)
        session_witness |= byref->first[i].session != PGF_REC_NONE && byref->first[i].nwitness > 0;
    CU_ASSERT(!session_witness || m.reads > 0);
    pgf_check_result_free(byref);
    free(m.buf);
    /* the witness records are the history's, with the ordinals' lines */
    for (size_t i = 0; i < stream->nfirst; i++)
        for (size_t w = 0; w < stream->first[i].nwitness; w++) {
            CU_ASSERT(stream->first[i].witness[w] < n);
            CU_ASSERT_EQUAL(stream->first[i].wrec[w].line, recs[stream->first[i].witness[w]].line);
            CU_ASSERT_EQUAL(stream->first[i].wrec[w].seq, recs[stream->first[i].witness[w]].seq);
        }
    pgf_hist_reader_free(rd);
    pgf_check_result_free(batch);
    pgf_check_result_free(stream);
    pgf_history_free(h);
}

static void streamed_equals_batch_on_every_fixture(void)
{
    pgf_spec *spec = load_spec();
    DIR *d = opendir(HIST_DIR);
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct dirent *e;
    int files = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 7 || strcmp(e->d_name + len - 6, ".jsonl") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof path, HIST_DIR "%s", e->d_name);
        check_both_ways(spec, path, 0);
        check_both_ways(spec, path, 2); /* rings that wrap */
        files++;
    }
    closedir(d);
    CU_ASSERT(files >= 20);
    pgf_spec_free(spec);
}

/* ---- a long history ------------------------------------------------------ */

/* Sessions open, check and close, 100 at a time, round robin: 12 records
 * each (the first 9 from this table, the close's three below), plus 4 per extra check. */
enum { LONG_OPEN = 100, LONG_STEPS = 9, PLANT_AT = 1500000 };

typedef struct slot {
    int64_t session;
    int step;
    int64_t op_id;
    int checks_left; /* sessions run 1-3 checks, so they drift apart */
} slot;

static void next_record(slot *s, pgf_rec *r, int64_t *next_op)
{
    static const struct {
        pgf_rec_type type;
        const char *op, *from, *to;
        bool new_op;
    } steps[LONG_STEPS] = {
        {PGF_REC_INVOKE, "open", NULL, NULL, true},
        {PGF_REC_TRANSITION, "open", "NEW", "CONNECTING", false},
        {PGF_REC_TRANSITION, "open", "CONNECTING", "READY", false},
        {PGF_REC_OK, "open", NULL, NULL, false},
        {PGF_REC_INVOKE, "check", NULL, NULL, true},
        {PGF_REC_TRANSITION, "check", "READY", "BUSY", false},
        {PGF_REC_TRANSITION, "check", "BUSY", "READY", false},
        {PGF_REC_OK, "check", NULL, NULL, false},
        {PGF_REC_INVOKE, "close", NULL, NULL, true},
    };
    pgf_rec_init(r, steps[s->step].type);
    if (steps[s->step].new_op)
        s->op_id = (*next_op)++;
    r->session = s->session;
    r->op = steps[s->step].op;
    r->op_id = s->op_id;
    r->from = steps[s->step].from;
    r->to = steps[s->step].to;
}

static void long_history_stays_bounded(void)
{
    pgf_spec *spec = load_spec();
    /* 2,000,000 records: ~125,000 sessions, never more than 100 open */
    pgf_checker *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, NULL, &c), 0);
    slot slots[LONG_OPEN];
    int64_t next_session = 1, next_op = 1;
    for (int i = 0; i < LONG_OPEN; i++)
        slots[i] = (slot){next_session, 0, 0, (int)(next_session % 3)}, next_session++;
    uint64_t ord = 0, planted_time = 0;
    int64_t planted_session = 0;
    size_t max_sessions = 0, max_ops = 0, max_bytes = 0, max_runs = 0;
    int k = 0;
    while (ord < 2000000) {
        pgf_rec r;
        char from[16] = "", to[16] = ""; /* strings that die with this record */
        if (ord == PLANT_AT) {
            /* a completion nobody invoked, on a session in progress */
            planted_session = slots[k].session;
            pgf_rec_init(&r, PGF_REC_OK);
            r.session = planted_session;
            r.op = "check";
            r.op_id = 999999999;
        } else {
            slot *s = &slots[k];
            int step = s->step;
            if (step < 9) {
                next_record(s, &r, &next_op);
            } else {
                /* the close: READY -> CLOSING, CLOSING -> CLOSED, ok */
                pgf_rec_init(&r, step == 11 ? PGF_REC_OK : PGF_REC_TRANSITION);
                r.session = s->session;
                r.op = "close";
                r.op_id = s->op_id;
                if (step == 9) {
                    r.from = "READY";
                    r.to = "CLOSING";
                } else if (step == 10) {
                    r.from = "CLOSING";
                    r.to = "CLOSED";
                }
            }
            if (r.from != NULL) {
                snprintf(from, sizeof from, "%s", r.from);
                snprintf(to, sizeof to, "%s", r.to);
                r.from = from;
                r.to = to;
            }
            if (++s->step == 8 && s->checks_left > 0) {
                s->checks_left--;
                s->step = 4;
            }
            if (s->step == 12)
                *s = (slot){next_session, 0, 0, (int)(next_session % 3)}, next_session++;
        }
        /* free text that names the session (as libpq's and the session
         * manager's messages do): a checker that interned it would keep one
         * string per session for ever (`strings` below stays small) */
        char cause[64];
        if (r.type == PGF_REC_OK && r.cause == NULL) {
            snprintf(cause, sizeof cause, "done (session %lld, op %lld)", (long long)r.session,
                     (long long)r.op_id);
            r.cause = cause;
        }
        r.seq = ord + 1;
        r.time_ns = 1000 * (ord + 1);
        r.line = (uint32_t)(ord + 2);
        if (ord == PLANT_AT)
            planted_time = r.time_ns;
        CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
        if (from[0] != '\0')
            memset(from, 'x', sizeof from - 1); /* the checker must have copied */
        from[0] = '\0';
        ord++;
        k = (k + 1) % LONG_OPEN;
        if (ord % 50000 == 0) {
            pgf_checker_stats st;
            pgf_checker_stats_get(c, &st);
            if (st.sessions_open > max_sessions)
                max_sessions = st.sessions_open;
            if (st.ops_open > max_ops)
                max_ops = st.ops_open;
            if (st.bytes > max_bytes)
                max_bytes = st.bytes;
            if (st.session_tombstone_runs + st.op_id_runs > max_runs)
                max_runs = st.session_tombstone_runs + st.op_id_runs;
            CU_ASSERT_EQUAL(pgf_checker_live_sessions(c), st.sessions_open);
            CU_ASSERT_EQUAL(pgf_checker_live_ops(c), st.ops_open);
            CU_ASSERT(st.sessions_kept <= 256);
            CU_ASSERT(st.strings < 32);
        }
        if (ord == PLANT_AT + 1) {
            CU_ASSERT_EQUAL(pgf_checker_violations(c), 1u);
            const pgf_violation *v = pgf_checker_first(c);
            CU_ASSERT_PTR_NOT_NULL_FATAL(v);
            CU_ASSERT_EQUAL(v->at, (size_t)PLANT_AT);
        }
    }
    fprintf(stderr,
            "long history: peak %zu sessions held (100 open + finished kept), %zu ops open, %zu "
            "runs, %zu bytes of checker state\n",
            max_sessions, max_ops, max_runs, max_bytes);
    /* open sessions + the 256 finished ones kept whole, never the ~180k */
    CU_ASSERT(max_sessions <= LONG_OPEN + 256 + 1);
    CU_ASSERT(max_ops <= LONG_OPEN + 1);
    CU_ASSERT(max_runs <= 2 * LONG_OPEN + 8);
    CU_ASSERT(max_bytes < 4u * 1024 * 1024);

    pgf_check_result *res = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_finish(c, &res), 0);
    CU_ASSERT_EQUAL(res->records, 2000000u);
    CU_ASSERT(res->sessions > 120000);
    /* the planted completion, and the open sessions at the end */
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_UNMATCHED_COMPLETION], 1u);
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_NOT_CLOSED] + res->counts[PGF_VIOL_MISSING_COMPLETION] +
                        res->counts[PGF_VIOL_UNMATCHED_COMPLETION],
                    res->total);
    CU_ASSERT_FATAL(res->nfirst >= 1);
    const pgf_violation *v = &res->first[0];
    CU_ASSERT_EQUAL(v->kind, PGF_VIOL_UNMATCHED_COMPLETION);
    CU_ASSERT_EQUAL(v->session, planted_session);
    CU_ASSERT_EQUAL(v->at, (size_t)PLANT_AT);
    CU_ASSERT_EQUAL(v->at_time_ns, planted_time);
    /* witness: that session's records so far, the planted one last, every
     * one a copy that outlived the caller's strings */
    CU_ASSERT(v->nwitness >= 2 && v->nwitness <= PGF_CHECK_WITNESS_DEFAULT);
    CU_ASSERT_EQUAL(v->witness[v->nwitness - 1], (size_t)PLANT_AT);
    CU_ASSERT_EQUAL(v->wrec[v->nwitness - 1].line, (uint32_t)PLANT_AT + 2);
    CU_ASSERT_EQUAL(v->wrec[v->nwitness - 1].op_id, 999999999);
    for (size_t w = 0; w < v->nwitness; w++) {
        CU_ASSERT_EQUAL(v->wrec[w].session, planted_session);
        CU_ASSERT_EQUAL(v->wrec[w].time_ns, 1000 * ((uint64_t)v->witness[w] + 1));
        if (w > 0)
            CU_ASSERT(v->witness[w - 1] < v->witness[w]);
        if (v->wrec[w].from != NULL)
            CU_ASSERT(strchr(v->wrec[w].from, 'x') == NULL);
    }
    pgf_check_result_free(res);
    pgf_spec_free(spec);
}

/* A session's life as records (type, op, from, to): open, then close;
 * then an op the spec does not declare (a violation). */
static const char *const LIFE[9][4] = {
    {"invoke", "open", NULL, NULL},
    {"transition", "open", "NEW", "CONNECTING"},
    {"transition", "open", "CONNECTING", "READY"},
    {"ok", "open", NULL, NULL},
    {"invoke", "close", NULL, NULL},
    {"transition", "close", "READY", "CLOSING"},
    {"transition", "close", "CLOSING", "CLOSED"},
    {"ok", "close", NULL, NULL},
    {"invoke", "frobnicate", NULL, NULL},
};

/* Sessions compacted long ago still judge a late record like the whole
 * history would: a use after close, not a fresh session. */
static void late_record_on_compacted_session(void)
{
    pgf_spec *spec = load_spec();
    pgf_checker *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, NULL, &c), 0);
    const char *const(*seq)[4] = LIFE;
    uint64_t ord = 0;
    int64_t op = 1;
    for (int64_t s = 1; s <= 2000; s++) {
        for (size_t i = 0; i < 8; i++) {
            pgf_rec r;
            pgf_rec_init(&r, (pgf_rec_type)pgf_rec_type_parse(seq[i][0]));
            r.seq = ++ord;
            r.time_ns = ord;
            r.session = s;
            r.op = seq[i][1];
            r.from = seq[i][2];
            r.to = seq[i][3];
            if (i == 4)
                op++;
            r.op_id = op;
            CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
        }
        op++;
    }
    pgf_checker_stats st;
    pgf_checker_stats_get(c, &st);
    CU_ASSERT(st.sessions_open <= 257);
    CU_ASSERT(st.session_tombstone_runs >= 1 && st.session_tombstone_runs <= 2);
    /* session 1 was compacted: a check on it now is a use after close */
    pgf_rec r;
    pgf_rec_init(&r, PGF_REC_INVOKE);
    r.seq = ++ord;
    r.session = 1;
    r.op = "check";
    r.op_id = 100000;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
    pgf_rec_init(&r, PGF_REC_OK);
    r.seq = ++ord;
    r.session = 1;
    r.op = "check";
    r.op_id = 100000;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
    /* and op_id 1 (session 1's open) is still a duplicate */
    pgf_rec_init(&r, PGF_REC_INVOKE);
    r.seq = ++ord;
    r.session = 2000;
    r.op = "check";
    r.op_id = 1;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
    pgf_check_result *res = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_finish(c, &res), 0);
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_USE_AFTER_CLOSE], 1u);
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_DUPLICATE_OP_ID], 1u);
    CU_ASSERT_EQUAL(res->total, 2u);
    CU_ASSERT_EQUAL(res->sessions, 2000u);
    pgf_check_result_free(res);
    pgf_spec_free(spec);
}

/* More sessions violate than the first list keeps: counts stay exact, the
 * rest is counted as dropped. */
static void first_list_is_capped(void)
{
    pgf_spec *spec = load_spec();
    pgf_checker *c = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, NULL, &c), 0);
    uint64_t ord = 0;
    for (int64_t s = 1; s <= PGF_CHECK_FIRST_MAX + 500; s++) {
        pgf_rec r;
        pgf_rec_init(&r, PGF_REC_TRANSITION); /* NEW -> READY: not in the table */
        r.seq = ++ord;
        r.session = s;
        r.op = "open";
        r.from = "NEW";
        r.to = "READY";
        CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
    }
    pgf_rec r;
    pgf_rec_init(&r, PGF_REC_OK); /* a new kind past the cap is still listed */
    r.seq = ++ord;
    r.session = 5000;
    r.op = "open";
    r.op_id = 7;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_feed(c, &r), 0);
    pgf_check_result *res = NULL;
    CU_ASSERT_EQUAL_FATAL(pgf_checker_finish(c, &res), 0);
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_ILLEGAL_TRANSITION], (uint64_t)PGF_CHECK_FIRST_MAX + 500);
    CU_ASSERT_EQUAL(res->counts[PGF_VIOL_UNMATCHED_COMPLETION], 1u);
    CU_ASSERT_EQUAL(res->nfirst, (size_t)PGF_CHECK_FIRST_MAX + 1);
    CU_ASSERT_EQUAL(res->first_dropped, 500u);
    CU_ASSERT_EQUAL(res->first[PGF_CHECK_FIRST_MAX].kind, PGF_VIOL_UNMATCHED_COMPLETION);
    pgf_check_result_free(res);
    pgf_spec_free(spec);
}

/* Witnesses are kept as lines and parsed back for a violation: what comes
 * back is the records as fed, awkward strings, a 100 kB cause, the source
 * line and the foreign fields a line does not carry included; whether the
 * line came from the caller (feed_line) or was formatted (feed); and after
 * the ring wrapped many times over a session's line buffer. */
static void witnesses_come_back_as_fed(void)
{
    pgf_spec *spec = load_spec();
    static char big[100001];
    memset(big, 'x', sizeof big - 1);
    big[500] = '\n';
    const char *causes[] = {"plain", "a \"quoted\"\\path\ttab", "caf\xc3\xa9 \xe2\x82\xac", big};
    for (int mode = 0; mode < 3; mode++) { /* 0 feed, 1 feed_line, 2 feed_line_at */
        pgf_check_opts o = {4, NULL};      /* a ring of 4: it wraps */
        pgf_checker *c = NULL;
        memhist m = {0};
        CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, &o, &c), 0);
        if (mode == 2)
            pgf_checker_set_reader(c, memhist_read, &m);
        pgf_rec r;
        uint64_t seq = 0;
        int64_t op = 1;
        /* 50 checks on one session first: the ring wraps, its line buffer
         * is compacted again and again */
        for (int i = 0; i < 4 + 50 * 4 + 3; i++) {
            static const char *const opening[][4] = {
                {"invoke", "open", NULL, NULL},
                {"transition", "open", "NEW", "CONNECTING"},
                {"transition", "open", "CONNECTING", "READY"},
                {"ok", "open", NULL, NULL},
            };
            static const char *const cyc[][4] = {
                {"invoke", "check", NULL, NULL},
                {"transition", "check", "READY", "BUSY"},
                {"transition", "check", "BUSY", "READY"},
                {"ok", "check", NULL, NULL},
            };
            const char *const *e = i < 4 ? opening[i] : cyc[(i - 4) % 4];
            pgf_rec_init(&r, (pgf_rec_type)pgf_rec_type_parse(e[0]));
            r.seq = ++seq;
            r.time_ns = seq * 10;
            r.session = 7;
            r.op = e[1];
            r.from = e[2];
            r.to = e[3];
            r.op_id = i < 4 ? 1 : 2 + (i - 4) / 4;
            r.cause = causes[i % 4];
            r.line = (uint32_t)(i + 2);
            r.backend_pid = i % 3 == 0 ? 4242 : PGF_REC_NONE;
            r.client_port = i % 3 == 1 ? 50123 : PGF_REC_NONE;
            r.conn = 3;
            char line[200000];
            int n = pgf_rec_format(&r, line, sizeof line);
            CU_ASSERT_FATAL(n > 0);
            int rc = mode == 2   ? feed_at(c, &m, &r)
                     : mode == 1 ? pgf_checker_feed_line(c, &r, line, (size_t)n)
                                 : pgf_checker_feed(c, &r);
            CU_ASSERT_EQUAL_FATAL(rc, 0);
            op = r.op_id;
        }
        CU_ASSERT_EQUAL(pgf_checker_violations(c), 0u);
        /* an op the spec does not declare: a violation, witnessed by the
         * last 4 records (the 4th of them this one) */
        pgf_rec_init(&r, PGF_REC_INVOKE);
        r.seq = ++seq;
        r.time_ns = seq * 10;
        r.session = 7;
        r.op = "frobnicate";
        r.op_id = op + 1;
        r.cause = causes[3];
        r.line = 999;
        r.backend_pid = 77;
        CU_ASSERT_EQUAL_FATAL(
            mode ? pgf_checker_feed_line(c, &r, NULL, 0) : pgf_checker_feed(c, &r), 0);
        const pgf_violation *v = pgf_checker_first(c);
        CU_ASSERT_PTR_NOT_NULL_FATAL(v);
        CU_ASSERT_EQUAL(v->kind, PGF_VIOL_UNDECLARED_OP);
        CU_ASSERT_EQUAL_FATAL(v->nwitness, 4u);
        const pgf_rec *w = v->wrec;
        /* the records before it: i = 204, 205, 206 (seq 205..207) */
        for (size_t k = 0; k < 3; k++) {
            int i = 204 + (int)k;
            CU_ASSERT_EQUAL(w[k].seq, (uint64_t)i + 1);
            CU_ASSERT_EQUAL(w[k].time_ns, ((uint64_t)i + 1) * 10);
            CU_ASSERT_EQUAL(w[k].line, (uint32_t)(i + 2));
            CU_ASSERT_EQUAL(w[k].backend_pid, i % 3 == 0 ? 4242 : PGF_REC_NONE);
            CU_ASSERT_EQUAL(w[k].client_port, i % 3 == 1 ? 50123 : PGF_REC_NONE);
            CU_ASSERT_EQUAL(w[k].conn, 3);
            CU_ASSERT_EQUAL(w[k].session, 7);
            CU_ASSERT_STRING_EQUAL(w[k].cause, causes[i % 4]);
        }
        CU_ASSERT_STRING_EQUAL(w[3].op, "frobnicate");
        CU_ASSERT_STRING_EQUAL(w[3].cause, big);
        CU_ASSERT_EQUAL(w[3].line, 999u);
        CU_ASSERT_EQUAL(w[3].backend_pid, 77);
        CU_ASSERT_EQUAL(v->witness[3], (size_t)seq - 1); /* ordinals, 0-based */
        /* by reference: the lines without backend_pid or client_port
         * were read back (one of the three before it), the others kept */
        CU_ASSERT_EQUAL(m.reads, mode == 2 ? 1u : 0u);
        pgf_check_result *res = NULL;
        CU_ASSERT_EQUAL(pgf_checker_finish(c, &res), 0);
        pgf_check_result_free(res);
        free(m.buf);
    }
    pgf_spec_free(spec);
}

/* A line that cannot be read back is the feed's error (the run's: "checker
 * failed"), never a witness with a hole, during the history (case 1) and at
 * its end (case 2); a checker without violations never reads (case 0). */
static void witness_read_back_failure_is_an_error(void)
{
    pgf_spec *spec = load_spec();
    const char *const(*steps)[4] = LIFE;
    /* case 0: open and close; 1: open, then an undeclared op; 2: open, and
     * the session is left in READY (not_closed, found at the end) */
    static const int order[3][9] = {
        {0, 1, 2, 3, 4, 5, 6, 7, -1}, {0, 1, 2, 3, 8, -1}, {0, 1, 2, 3, -1}};
    for (int t = 0; t < 3; t++) {
        pgf_checker *c = NULL;
        memhist m = {0};
        m.fail = PGF_EIO;
        CU_ASSERT_EQUAL_FATAL(pgf_checker_new(spec, NULL, &c), 0);
        pgf_checker_set_reader(c, memhist_read, &m);
        int last = 0;
        for (int i = 0; order[t][i] >= 0; i++) {
            const char *const *e = steps[order[t][i]];
            pgf_rec r;
            pgf_rec_init(&r, (pgf_rec_type)pgf_rec_type_parse(e[0]));
            r.seq = (uint64_t)i + 1;
            r.time_ns = r.seq * 10;
            r.session = 1;
            r.op = e[1];
            r.from = e[2];
            r.to = e[3];
            r.op_id = order[t][i] < 4 ? 1 : 2;
            last = feed_at(c, &m, &r);
        }
        pgf_check_result *res = NULL;
        int fin = pgf_checker_finish(c, &res);
        CU_ASSERT_EQUAL(last, t == 1 ? PGF_EIO : 0);
        CU_ASSERT_EQUAL(fin, t == 0 ? 0 : PGF_EIO);
        CU_ASSERT_EQUAL(res == NULL, t != 0);
        if (res != NULL)
            CU_ASSERT_EQUAL(res->total, 0u);
        pgf_check_result_free(res);
        free(m.buf);
    }
    pgf_spec_free(spec);
}

static const pgf_test stream_tests[] = {
    {"streamed_equals_batch_on_every_fixture", streamed_equals_batch_on_every_fixture},
    {"long_history_stays_bounded", long_history_stays_bounded},
    {"late_record_on_compacted_session", late_record_on_compacted_session},
    {"first_list_is_capped", first_list_is_capped},
    {"witnesses_come_back_as_fed", witnesses_come_back_as_fed},
    {"witness_read_back_failure_is_an_error", witness_read_back_failure_is_an_error},
    PGF_TESTS_END,
};

const pgf_suite pgf_suites_check_stream[] = {
    {"checker_stream", NULL, NULL, stream_tests},
    PGF_SUITES_END,
};
