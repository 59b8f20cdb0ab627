/* run.c - see run.h. The order of work for each scenario:
 * driver (history) -> checker (violations) -> expectations -> report,
 * then, for a failure with --shrink, smaller candidate scenarios in sim
 * mode until no smaller one fails the same way. */
#include "pgfault/run.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pgfault/check.h"
#include "pgfault/config.h"
#include "pgfault/clock.h"
#include "atomic.h"
#include "driver.h"
#include "outdir.h"
#include "pictures.h"
#include "target_http.h"
#include "pgfault/faultlog.h"
#include "pgfault/history.h"
#include "pgfault/zio.h"
#include "pgfault/log.h"
#include "pgfault/machine.h"
#include "pgfault/health.h"
#include "pgfault/report.h"
#include "pgfault/rules.h"
#include "pgfault/secret.h"
#include "pgfault/session.h"
#include "pgfault/spec.h"
#include "pgfault/version.h"

/* Tolerance on every declared deadline: virtual time is exact in sim mode
 * (a deadline fires at its instant); real time carries scheduling noise. */
#define DEADLINE_TOLERANCE_SIM_MS    50
#define DEADLINE_TOLERANCE_STRESS_MS 5000

static void scenario_deadlines(const pgf_scenario *sc, pgf_check_deadlines *d)
{
    uint64_t ms[PGF_OP_COUNT];
    pgf_driver_op_deadlines_ms(sc, ms);
    memset(d, 0, sizeof *d);
    for (int k = 1; k < PGF_OP_COUNT; k++) {
        if (ms[k] == 0)
            continue;
        snprintf(d->op[d->n], sizeof d->op[0], "%s", pgf_session_op_name((pgf_sess_op)k));
        d->ns[d->n++] = PGF_MS_NS(ms[k]);
    }
    d->tolerance_ns = PGF_MS_NS(sc->mode == PGF_MODE_SIM ? DEADLINE_TOLERANCE_SIM_MS
                                                         : DEADLINE_TOLERANCE_STRESS_MS);
}

/* spec_drift: the machine compiled into the session manager against the
 * pinned spec. Added to the checker's result as one server-wide violation
 * naming the extra and missing rows. */
static int add_spec_drift(const pgf_spec *pinned, pgf_check_result *res, char *err, size_t errlen)
{
    const char *text = pgf_session_spec_json_text();
    pgf_spec *compiled = NULL;
    if (text == NULL)
        return PGF_ENOMEM;
    int e = pgf_spec_parse(text, strlen(text), "<compiled machine.h>", &compiled, err, errlen);
    if (e != 0)
        return e;
    pgf_violation v;
    memset(&v, 0, sizeof v);
    int nd = pgf_spec_diff(pinned, compiled, v.message, sizeof v.message);
    pgf_spec_free(compiled);
    if (nd == 0)
        return 0;
    pgf_violation *nf = realloc(res->first, (res->nfirst + 1) * sizeof *nf);
    if (nf == NULL)
        return PGF_ENOMEM;
    v.kind = PGF_VIOL_SPEC_DRIFT;
    v.session = PGF_REC_NONE;
    v.at = PGF_CHECK_NO_RECORD;
    res->first = nf;
    res->first[res->nfirst++] = v;
    res->counts[PGF_VIOL_SPEC_DRIFT] += (uint64_t)nd;
    res->total += (uint64_t)nd;
    return 0;
}

/* Report building is best-effort per item: a failed allocation sets the
 * report's own failure flag and the writers refuse to write a partial file. */
static inline void ignore_(int rc)
{
    (void)rc;
}

typedef struct outcome {
    pgf_run *run;
    pgf_check_result *check;
    bool passed;
    char first_failure[128];     /* name of the first failed check: what shrinking preserves */
    bool unchecked;              /* --no-check: no history was recorded */
    int64_t checks_to_violation; /* health checks completed before the first violation; -1 none */
    char digest[65];
    bool lost_output;          /* history.jsonl or faults.jsonl could not be written */
    pgf_target_result *target; /* an HTTP target's own checks (target_http.h) */
    pgf__pics *pics;           /* what the report's pictures need, gathered as it streams */
} outcome;

#define HIST_ZSTD_FRAME (64 * 1024)

/* The history being written while the run goes on: path NULL gives only
 * the digest; otherwise the file is committed atomically at the end
 * (hist_close), or not at all (hist_abort). */
typedef struct hist_out {
    pgf_atomic_file af;
    bool have_file;
    FILE *zf;        /* history.jsonl.zst (--history-zstd): compressed as written */
    pgf_zio_out *zh; /* ... and read back from (the checker's witnesses) */
    pgf_hist_writer *w;
} hist_out;

static int hist_open(hist_out *h, const pgf_scenario *sc, const char *path,
                     const char *deadlines_json, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    if (path != NULL) {
        char *dir = strdup(path), *slash = dir ? strrchr(dir, '/') : NULL;
        int oe = slash ? (*slash = '\0', pgf_atomic_file_open(&h->af, dir, slash + 1, err, errlen))
                       : PGF_ENOMEM;
        free(dir);
        if (oe != 0)
            return oe;
        h->have_file = true;
    }
    /* frames of 64 kB: a witness line read back costs at most that much
     * decompression (and the frames compress as well as one: 1.83 against
     * 2.02 MB for 20 MB of a 10,000-session history at level 3;
     * level 1, zio.c, is smaller still on 64 kB frames) */
    h->zf = path != NULL && pgf_zio_is_zst_name(path)
                ? pgf_zio_wrap_write_h(h->af.fp, HIST_ZSTD_FRAME, &h->zh)
                : NULL;
    h->w = pgf_hist_writer_new_fp(h->zf != NULL ? h->zf : h->af.fp);
    int e = h->w == NULL || (h->zf == NULL && path != NULL && pgf_zio_is_zst_name(path))
                ? PGF_ENOMEM
                : 0;
    /* only a sim run is replayed exactly: elsewhere the digest checks nothing */
    if (h->w != NULL && (sc->mode != PGF_MODE_SIM || sc->target.kind != PGF_TARGET_BUILTIN))
        pgf_hist_writer_no_digest(h->w);
    if (e == 0) {
        pgf_hist_meta m = {0};
        m.version = PGF_HISTORY_VERSION;
        m.has_seed = true;
        m.seed = sc->seed;
        m.mode = pgf_run_mode_name(sc->mode);
        m.tool = "pgfault " PGF_VERSION;
        m.spec_json = NULL;
        m.deadlines_json = deadlines_json;
        m.wall_us = PGF_REC_NONE;
        e = pgf_hist_writer_meta(h->w, &m);
    }
    if (e != 0)
        snprintf(err, errlen, "%s: cannot start the history: %s", path ? path : "history",
                 pgf_strerror(e));
    return e;
}

static void hist_abort(hist_out *h)
{
    if (h->w == NULL && !h->have_file)
        return;
    (void)pgf_hist_writer_close(h->w);
    if (h->zf != NULL)
        fclose(h->zf);
    if (h->have_file)
        pgf_atomic_file_abort(&h->af);
    memset(h, 0, sizeof *h);
}

/* Flush, take the digest, commit (the exact system error in err). */
static int hist_close(hist_out *h, char hex[65], char *err, size_t errlen)
{
    int e = pgf_hist_writer_flush(h->w);
    pgf_hist_writer_digest(h->w, hex);
    int ce = pgf_hist_writer_close(h->w);
    if (h->zf != NULL && fclose(h->zf) != 0)
        ce = PGF_EIO;
    h->w = NULL;
    h->zf = NULL;
    if (!h->have_file)
        return e != 0 ? e : ce;
    h->have_file = false;
    if (e != 0 || ce != 0)
        return pgf_atomic_file_fail(&h->af, "write failed", err, errlen);
    return pgf_atomic_file_commit(&h->af, err, errlen);
}

/* server.external: every check found it unreachable; server.proxy: every
 * upstream connection failed. Fills msg with the masked address. */
static bool real_server_unreachable(const pgf_scenario *sc, const pgf_run *r, char *msg, size_t len)
{
    char masked[512];
    if (sc->external != NULL && r->checks > 0 && r->outcomes[PGF_HEALTH_UNREACHABLE] == r->checks) {
        pgf_config_mask_url(sc->external, masked, sizeof masked);
        snprintf(msg, len,
                 "every health check (%" PRIu64 ") found the external server unreachable (%s): "
                 "is it up, and is the address right?",
                 r->checks, masked);
        return true;
    }
    if (sc->proxy_upstream != NULL && r->proxy_sessions > 0 &&
        r->proxy_upstream_failures == r->proxy_sessions) {
        pgf_config_mask_url(sc->proxy_upstream, masked, sizeof masked);
        snprintf(msg, len,
                 "the proxy could not reach its upstream (%s) for any of %" PRIu64
                 " sessions: is it up, and is the address right?",
                 masked, r->proxy_sessions);
        return true;
    }
    return false;
}

/* A failed check: the verdict is fail, and the first one is remembered
 * (what shrinking must preserve). */
static void fail_as(outcome *oc, bool *all, const char *name)
{
    *all = false;
    if (oc->first_failure[0] == '\0')
        snprintf(oc->first_failure, sizeof oc->first_failure, "%s", name);
}

/* The checker's part: one check per violation kind, whatever the outcome
 * (CI test history keys on testcase names, so they must not change with
 * it), the first violation of a kind with its witness. */
static void evaluate_checker(outcome *oc, pgf_report_scenario *rs, bool *all)
{
    for (int k = 0; k < PGF_VIOL_COUNT; k++) {
        pgf_violation_kind kind = (pgf_violation_kind)k;
        char name[96];
        snprintf(name, sizeof name, "checker: no %s", pgf_violation_name(kind));
        if (oc->check->counts[k] == 0) {
            if (rs)
                pgf_report_add_check(rs, name, true, NULL, pgf_violation_doc(kind));
            continue;
        }
        fail_as(oc, all, name);
        if (rs == NULL)
            continue;
        const pgf_violation *first = NULL;
        for (size_t f = 0; f < oc->check->nfirst && first == NULL; f++)
            if (oc->check->first[f].kind == kind)
                first = &oc->check->first[f];
        char msg[512];
        if (first != NULL)
            snprintf(msg, sizeof msg, "%" PRIu64 " x %s: %s", oc->check->counts[k],
                     pgf_violation_name(kind), first->message);
        else /* the checker lists a session's first violation only */
            snprintf(msg, sizeof msg,
                     "%" PRIu64 " x %s, each on a session with an earlier violation (whose own "
                     "check has the witness): %s",
                     oc->check->counts[k], pgf_violation_name(kind), pgf_violation_doc(kind));
        pgf_report_check *c = pgf_report_add_check(rs, name, false, pgf_violation_name(kind), msg);
        if (c == NULL || first == NULL)
            continue;
        if (first->session != PGF_REC_NONE)
            pgf_report_check_set_session(c, (uint64_t)first->session);
        for (size_t wi = 0; wi < first->nwitness; wi++) {
            char line[1024];
            pgf_rec_format(&first->wrec[wi], line, sizeof line);
            if (pgf_report_check_add_witness(c, line) != 0)
                break;
        }
    }
}

/* A service target's checks: the service judged from outside. */
static void evaluate_target(outcome *oc, pgf_report_scenario *rs, bool *all)
{
    for (size_t i = 0; oc->target != NULL && i < oc->target->n; i++) {
        const pgf_target_check *tc = &oc->target->checks[i];
        if (!tc->passed)
            fail_as(oc, all, tc->name);
        pgf_report_check *c = rs ? pgf_report_add_check(rs, tc->name, tc->passed,
                                                        tc->passed ? NULL : tc->kind, tc->msg)
                                 : NULL;
        for (size_t k = 0; c != NULL && k < tc->nwitness; k++)
            if (pgf_report_check_add_witness(c, tc->witness[k]) != 0)
                break;
    }
}

/* One `expect:` entry: whether it held, its check's name and message. */
static bool expect_holds(const pgf_scenario *sc, const outcome *oc, const pgf_expect *x, char *name,
                         size_t namelen, char *msg, size_t msglen)
{
    const pgf_run *r = oc->run;
    bool ok = true;
    switch (x->kind) {
    case PGF_EXPECT_NO_VIOLATIONS: /* the checker's own checks */
        break;
    case PGF_EXPECT_VIOLATIONS:
        ok = oc->check->total > 0;
        snprintf(name, namelen, "expect: the checker finds violations");
        snprintf(msg, msglen, "%" PRIu64 " violations found", oc->check->total);
        break;
    case PGF_EXPECT_REASON_SHARE: {
        double share = r->checks ? (double)r->outcomes[x->reason] / (double)r->checks : 0;
        ok = share >= x->min && share <= x->max;
        snprintf(name, namelen, "expect: %s in [%.0f%%, %.0f%%] of checks",
                 pgf_health_reason_name(x->reason), x->min * 100, x->max * 100);
        snprintf(msg, msglen, "%s was %.1f%% (%" PRIu64 " of %" PRIu64 ")",
                 pgf_health_reason_name(x->reason), share * 100, r->outcomes[x->reason], r->checks);
        break;
    }
    case PGF_EXPECT_P99_MS: {
        /* from the fixed histogram: within 0.79% (lathist.h) */
        pgf_lathist every = {0};
        bool oom = false;
        for (int k = 0; k < PGF_HEALTH_REASON_COUNT; k++)
            oom |= pgf_lathist_merge(&every, &r->lat[k]) != 0;
        double p99 = (double)pgf_lathist_percentile(&every, 0.99) / 1e6;
        pgf_lathist_free(&every);
        ok = p99 <= x->value && !oom;
        snprintf(name, namelen, "expect: p99 health-check latency <= %.0f ms", x->value);
        snprintf(msg, msglen, "p99 was %.2f ms%s", p99,
                 sc->mode == PGF_MODE_SIM ? " (virtual time)" : "");
        break;
    }
    case PGF_EXPECT_ALL_CLOSED:
        ok = oc->check->counts[PGF_VIOL_NOT_CLOSED] == 0 &&
             oc->check->counts[PGF_VIOL_CONNECTION_LEAK] == 0 && r->server.active == 0;
        snprintf(name, namelen, "expect: every session closed, no server connection left");
        snprintf(msg, msglen, "%" PRIu64 " server connections open at the end", r->server.active);
        break;
    case PGF_EXPECT_MIN_CHECKS:
        ok = (double)r->checks >= x->value;
        snprintf(name, namelen, "expect: at least %.0f health checks", x->value);
        snprintf(msg, msglen, "%" PRIu64 " health checks ran", r->checks);
        break;
    case PGF_EXPECT_MAX_LOGIN_RATE: {
        double secs = (double)r->duration_ns / 1e9;
        double logins = (double)(r->server.auth_ok + r->server.auth_failed);
        double rate = secs > 0 ? logins / secs : logins;
        ok = rate <= x->value;
        snprintf(name, namelen, "expect: at most %.0f logins per second at the server", x->value);
        snprintf(msg, msglen, "%.1f logins/s (%.0f logins in %.2f s%s)", rate, logins, secs,
                 sc->mode == PGF_MODE_SIM ? " virtual" : "");
        break;
    }
    }
    return ok;
}

/* The scenario's verdict, appending its checks to the report scenario (rs
 * may be NULL when only the verdict is wanted, as while shrinking): the real
 * server reached, the checker, a service target's own checks, the `expect:`
 * entries, the run finished, the harness sound. */
static bool evaluate(const pgf_scenario *sc, outcome *oc, pgf_report_scenario *rs)
{
    bool all = true;
    oc->first_failure[0] = '\0';
    const pgf_run *r = oc->run;
    /* a real server that was never reached tested nothing: fail, naming
     * the (masked) address, instead of passing on zero evidence */
    char unreach[640];
    if (real_server_unreachable(sc, r, unreach, sizeof unreach)) {
        fail_as(oc, &all, "real server reachable");
        if (rs)
            pgf_report_add_check(rs, "the real server was reachable", false, "unreachable",
                                 unreach);
    }
    bool want_violations = false;
    for (int i = 0; i < sc->nexpects; i++)
        want_violations |= sc->expects[i].kind == PGF_EXPECT_VIOLATIONS;
    if (oc->unchecked) {
        if (rs)
            pgf_report_add_check(rs, "history recorded and checked", true, NULL,
                                 "skipped: --no-check (throughput measurement)");
    } else if (!want_violations) {
        evaluate_checker(oc, rs, &all);
    }
    evaluate_target(oc, rs, &all);
    for (int i = 0; i < sc->nexpects; i++) {
        const pgf_expect *x = &sc->expects[i];
        /* handled above; and a target judges logins after 28P01 in its own check */
        if (x->kind == PGF_EXPECT_NO_VIOLATIONS ||
            (oc->target != NULL && x->kind == PGF_EXPECT_MAX_LOGIN_RATE))
            continue;
        char name[128], msg[256];
        bool ok = expect_holds(sc, oc, x, name, sizeof name, msg, sizeof msg);
        if (!ok)
            fail_as(oc, &all, name);
        if (rs)
            pgf_report_add_check(rs, name, ok, ok ? NULL : "expectation", msg);
    }
    if (r->stuck[0] != '\0') {
        /* A verdict, after the checker's own (which name the operations
         * that never completed, with witnesses). */
        fail_as(oc, &all, "run finished");
        if (rs)
            pgf_report_add_check(rs, "run finished: every operation completed", false, "stuck",
                                 r->stuck);
    }
    if (r->harness_error[0] != '\0') {
        fail_as(oc, &all, "harness error");
        if (rs)
            pgf_report_add_check(rs, "harness ran to completion", false, "harness",
                                 r->harness_error);
    } else if (rs) {
        pgf_report_add_check(rs, "harness ran to completion", true, NULL, "no harness error");
    }
    return all;
}

/* Texts that came off the wire (a server may quote a conninfo, password
 * and all, as a database name) lose every registered secret before they
 * reach the history or a report. */
static const pgf_rec *scrubbed(const pgf_rec *in, pgf_rec *tmp, char *own[7])
{
    /* Never in place: a record's strings may be string literals (the
     * recorder's names), and writing one crashed the run when a password
     * was a word like "close" (SIGSEGV). A field with a secret in it gets a
     * scrubbed copy, which the caller frees. type, op, from and to are
     * pgfault's own names (the checker reads them against the spec):
     * masking them could only corrupt the history, never hide a leak. */
    const char **f[] = {&tmp->cause, &tmp->error,  &tmp->reason,  &tmp->phase,
                        &tmp->rule,  &tmp->action, &tmp->sqlstate};
    const char *const v[] = {in->cause, in->error,  in->reason,  in->phase,
                             in->rule,  in->action, in->sqlstate};
    const pgf_rec *out = in;
    for (size_t k = 0; k < sizeof v / sizeof v[0]; k++) {
        own[k] = NULL;
        if (!pgf_secret_found(v[k]))
            continue;
        if (out == in) {
            *tmp = *in;
            out = tmp;
        }
        if ((own[k] = strdup(v[k])) != NULL)
            pgf_secret_scrub(own[k]);
        *f[k] = own[k] != NULL ? own[k] : "(scrubbed)"; /* out of memory: drop it */
    }
    return out;
}

/* The stream every recorded record goes through, in seq order, while the
 * run goes on (recorder.h): scrubbed, written to the history, fed to the
 * streaming checker (pgf_checker: a violation is known when it happens),
 * then into the running totals and the sampled sessions the report's
 * pictures are made of (pictures.c). Nothing keeps the whole history. */
typedef struct stream_ctx {
    hist_out h;
    outcome *oc;
    pgf_checker *checker;
    bool write_failed;
    bool fail_fast;          /* --fail-fast: a violation stops the run */
    uint64_t checks_seen;    /* completed health checks fed so far */
    int64_t checks_at_first; /* ... when the first violation showed; -1 none yet */
    char first_kind[64];     /* the first violation's kind, for the progress line */
    bool read_back;          /* the checker reads its witnesses back from the file */
    char read_err[512];      /* why a read back failed (file, offset, errno); "" none */
} stream_ctx;

static int read_back_failed(stream_ctx *st, uint64_t pos, size_t n, int err, int code)
{
    if (st->read_err[0] == '\0')
        snprintf(st->read_err, sizeof st->read_err,
                 "%s: cannot read a witness line back (%zu bytes at byte %" PRIu64 "%s): %s",
                 st->h.af.final_path ? st->h.af.final_path : "history", n, pos,
                 st->h.zf != NULL ? ", uncompressed" : "",
                 err ? strerror(err) : pgf_strerror(code));
    return code;
}

/* The checker's reader (pgf_checker_set_reader): a witness line, read back
 * from the history file being written, plain or .zst (decompressed from
 * the frame that holds it, pgf_zio_read_back). */
static int stream_read_back(void *arg, uint64_t pos, char *buf, size_t n)
{
    stream_ctx *st = arg;
    int fd = st->h.w != NULL ? pgf_atomic_file_fd(&st->h.af) : -1;
    if (fd < 0) /* closed already: a bug here, reported as the checker's failure */
        return read_back_failed(st, pos, n, 0, PGF_EINTERNAL);
    int e = pgf_hist_writer_flush(st->h.w); /* the line may still be in its buffer */
    if (e != 0)
        return read_back_failed(st, pos, n, 0, e);
    if (st->h.zf != NULL)
        return pgf_zio_read_back(st->h.zh, fd, pos, buf, n) == 0
                   ? 0
                   : read_back_failed(st, pos, n, errno, PGF_EIO);
    for (size_t got = 0; got < n;) {
        ssize_t k = pread(fd, buf + got, n - got, (off_t)(pos + got));
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return read_back_failed(st, pos, n, k < 0 ? errno : 0, PGF_EIO);
        got += (size_t)k;
    }
    return 0;
}

static bool completes_check(const pgf_rec *r)
{
    if (r->type != PGF_REC_OK && r->type != PGF_REC_FAIL)
        return false;
    int op = pgf_session_op_parse(r->op); /* the recorder's names: a pointer match */
    return op == PGF_OP_check || (r->type == PGF_REC_FAIL && op == PGF_OP_open);
}

static int stream_sink_(stream_ctx *st, const pgf_rec *rec);

static int stream_sink(void *arg, const pgf_rec *rec)
{
    if (pgf_secret_count() == 0) /* no password given: seven calls per record saved (perf) */
        return stream_sink_(arg, rec);
    pgf_rec tmp;
    char *own[7];
    const pgf_rec *r = scrubbed(rec, &tmp, own);
    int e = stream_sink_(arg, r);
    if (r != rec)
        for (size_t k = 0; k < 7; k++)
            free(own[k]);
    return e;
}

static int stream_sink_(stream_ctx *st, const pgf_rec *rec)
{
    int e = pgf_hist_writer_put(st->h.w, rec);
    if (e != 0) {
        st->write_failed = true;
        return e;
    }
    if (st->checker != NULL) {
        size_t n;
        const char *line = pgf_hist_writer_last(st->h.w, &n); /* the witness, as written */
        uint64_t pos = st->read_back ? pgf_hist_writer_last_pos(st->h.w) : PGF_CHECK_NO_POS;
        if ((e = pgf_checker_feed_line_at(st->checker, rec, line, n, pos)) != 0)
            return e;
        if (st->checks_at_first < 0 && pgf_checker_violations(st->checker) > 0) {
            /* how long it took to catch: completed health checks before
             * the record that showed the first violation */
            st->checks_at_first = (int64_t)st->checks_seen;
            const pgf_violation *v = pgf_checker_first(st->checker);
            snprintf(st->first_kind, sizeof st->first_kind, "%s",
                     v ? pgf_violation_name(v->kind) : "violation");
        }
    }
    if (completes_check(rec))
        st->checks_seen++;
    return pgf__pics_feed(st->oc->pics, rec);
}

/* The driver's live view (driver.h): violations so far, and whether the
 * run should stop (--fail-fast). */
static bool stream_live(void *arg, uint64_t *violations, const char **first_kind)
{
    stream_ctx *st = arg;
    *violations = st->checker != NULL ? pgf_checker_violations(st->checker) : 0;
    *first_kind = *violations > 0 ? st->first_kind : NULL;
    return st->fail_fast && *violations > 0;
}

/* The passwords of external servers, for pgf_secret_scrub(). */
static void register_secrets(pgf_scenario *const *scs, int n)
{
    for (int i = 0; i < n; i++) {
        if (scs[i]->external == NULL)
            continue;
        PQconninfoOption *opts = PQconninfoParse(scs[i]->external, NULL);
        for (PQconninfoOption *o = opts; o != NULL && o->keyword != NULL; o++)
            if (o->val != NULL &&
                (strcmp(o->keyword, "password") == 0 || strcmp(o->keyword, "sslpassword") == 0))
                (void)pgf_secret_add(o->val);
        PQconninfoFree(opts);
    }
}

/* Run + check one scenario. hist_path/faults_path may be NULL (shrinking). */
static int run_one(const pgf_scenario *sc, const pgf_run_opts *o, const char *hist_path,
                   const char *faults_path, outcome *oc, char *err, size_t errlen)
{
    memset(oc, 0, sizeof *oc);
    pgf_check_deadlines dl;
    scenario_deadlines(sc, &dl);
    pgf_spec *spec = NULL;
    /* an adapter is judged against its own machine (--spec, target.spec) */
    const char *spec_path = sc->target.kind == PGF_TARGET_EXEC
                                ? (o != NULL && o->spec_path ? o->spec_path : sc->target.spec_path)
                                : NULL;
    int e;
    if (spec_path != NULL) {
        e = pgf_spec_load(spec_path, &spec, err, errlen);
    } else {
        /* the pinned, reviewed spec (docs/spec.json), never the session
         * manager's own table: a bug that adds a row to machine.h and uses
         * it must not be legal by construction (add_spec_drift compares) */
        const char *spec_text = pgf_spec_pinned_json();
        e = pgf_spec_parse(spec_text, strlen(spec_text), "docs/spec.json", &spec, err, errlen);
    }
    if (e != 0)
        return e;
    if ((oc->pics = pgf__pics_new(sc->seed)) == NULL) {
        snprintf(err, errlen, "out of memory");
        pgf_spec_free(spec);
        return PGF_ENOMEM;
    }
    /* The history is written while the run goes on (stream_sink). */
    stream_ctx st = {0};
    st.oc = oc;
    st.checks_at_first = -1;
    st.fail_fast = o != NULL && o->fail_fast;
    pgf_check_opts copts = {0, &dl};
    if (!(o != NULL && o->no_check) && pgf_checker_new(spec, &copts, &st.checker) != 0) {
        snprintf(err, errlen, "out of memory");
        pgf_spec_free(spec);
        return PGF_ENOMEM;
    }
    char *dl_json = pgf_check_deadlines_json(&dl);
    if (dl_json == NULL) {
        snprintf(err, errlen, "out of memory");
        pgf_spec_free(spec);
        return PGF_ENOMEM;
    }
    e = hist_open(&st.h, sc, hist_path, dl_json, err, errlen);
    free(dl_json);
    if (e != 0) {
        oc->lost_output = hist_path != NULL;
        hist_abort(&st.h);
        pgf_checker_free(st.checker);
        pgf_spec_free(spec);
        return e;
    }
    if (st.checker != NULL && st.h.have_file) {
        st.read_back = true;
        pgf_checker_set_reader(st.checker, stream_read_back, &st);
    }
    pgf_driver_opts dopts = {0};
    dopts.progress = o != NULL && !o->quiet ? o->console : NULL;
    dopts.tty = dopts.progress != NULL && isatty(fileno(dopts.progress));
    dopts.stop = o ? o->stop : NULL;
    dopts.faults_log_path = faults_path;
    dopts.no_record = o != NULL && o->no_check;
    dopts.sink = stream_sink;
    dopts.sink_arg = &st;
    dopts.live = stream_live;
    oc->unchecked = dopts.no_record;
    oc->checks_to_violation = -1;
    if (sc->target.kind != PGF_TARGET_BUILTIN) {
        /* the service's output goes beside the history */
        char dir[1024] = ".";
        const char *slash = hist_path ? strrchr(hist_path, '/') : NULL;
        if (slash != NULL)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - hist_path), hist_path);
        e = sc->target.kind == PGF_TARGET_EXEC
                ? pgf_target_exec_run(sc, &dopts, dir, &oc->run, &oc->target, err, errlen)
                : pgf_target_http_run(sc, &dopts, dir, &oc->run, &oc->target, err, errlen);
    } else {
        e = pgf_driver_run(sc, &dopts, &oc->run, err, errlen);
    }
    if (e == 0 && oc->run->load_end_ns == 0) { /* a target: its whole run is the load */
        oc->run->load_end_ns = pgf_now_ns();
        oc->run->load_ns = oc->run->wall_ns;
    }
    if (e == 0) {
        /* What the run left in the recorder (everything, for a target,
         * which does not drain while it runs). */
        pgf_recorder_set_sink(oc->run->rec, stream_sink, &st);
        if (pgf_recorder_drain(oc->run->rec, true) != 0) {
            snprintf(err, errlen, "%s%s%s", pgf_recorder_error(oc->run->rec),
                     st.read_err[0] ? "; " : "", st.read_err);
            oc->lost_output = st.write_failed && hist_path != NULL;
            e = PGF_EINTERNAL;
        }
    }
    int le = e == 0 && faults_path != NULL ? pgf_fault_log_errno(oc->run->engine) : 0;
    if (le != 0) {
        snprintf(err, errlen, "%s: write failed (%s)", faults_path, strerror(le));
        oc->lost_output = true;
        e = PGF_EIO;
    }
    if (e != 0) {
        hist_abort(&st.h);
        pgf_checker_free(st.checker);
        pgf_spec_free(spec);
        return e;
    }
    /* The end-of-history checks first: their witnesses may be read back
     * from the file, which must still be open. --no-check recorded
     * nothing: an empty history checks clean. */
    int ce = st.checker == NULL && pgf_checker_new(spec, &copts, &st.checker) != 0
                 ? PGF_ENOMEM
                 : pgf_checker_finish(st.checker, &oc->check);
    st.checker = NULL;                              /* freed by pgf_checker_finish */
    e = hist_close(&st.h, oc->digest, err, errlen); /* kept even when the checker failed */
    if (e != 0) {
        oc->lost_output = hist_path != NULL;
        pgf_spec_free(spec);
        return e;
    }
    e = ce;
    if (e == 0 && spec_path == NULL) /* our session manager: its table vs the pinned one */
        e = add_spec_drift(spec, oc->check, err, errlen);
    pgf_spec_free(spec);
    if (e != 0) {
        snprintf(err, errlen, "checker failed: %s", st.read_err[0] ? st.read_err : pgf_strerror(e));
        return e;
    }
    oc->checks_to_violation = st.checks_at_first;
    oc->passed = evaluate(sc, oc, NULL);
    return 0;
}

static void outcome_clear(outcome *oc)
{
    pgf_check_result_free(oc->check);
    pgf_run_free(oc->run);
    pgf_target_result_free(oc->target);
    pgf__pics_free(oc->pics);
    memset(oc, 0, sizeof *oc);
}

int pgf_run_digest(const pgf_scenario *sc, char hex[65], char *err, size_t errlen)
{
    outcome oc;
    int e = run_one(sc, NULL, NULL, NULL, &oc, err, errlen);
    if (e == 0)
        memcpy(hex, oc.digest, 65);
    outcome_clear(&oc);
    return e;
}

/* ---- shrinking ---- */

static bool still_fails(const pgf_scenario *cand, const char *failure, unsigned *runs)
{
    outcome oc;
    char err[256];
    (*runs)++;
    if (run_one(cand, NULL, NULL, NULL, &oc, err, sizeof err) != 0) {
        outcome_clear(&oc);
        return false;
    }
    bool same = !oc.passed && strcmp(oc.first_failure, failure) == 0;
    outcome_clear(&oc);
    return same;
}

/* Greedy shrink (Hypothesis-style, one dimension at a time): fewer
 * sessions, fewer iterations, fewer racers, fewer fault rules, shorter
 * run; keep a change only if the same first check still fails. sc is
 * modified in place (it is the caller's copy). */
static void shrink(pgf_scenario *sc, const char *failure, FILE *log)
{
    unsigned runs = 0;
    unsigned s0 = sc->sessions, i0 = sc->iterations;
    int r0 = sc->nracers;
    size_t f0 = sc->rules ? pgf_fault_rules_count(sc->rules) : 0;
    bool progress = true;
    while (progress && runs < 200) {
        progress = false;
        while (sc->sessions > 1) {
            unsigned keep = sc->sessions;
            sc->sessions = keep / 2;
            if (still_fails(sc, failure, &runs)) {
                progress = true;
                continue;
            }
            sc->sessions = keep - 1;
            if (still_fails(sc, failure, &runs)) {
                progress = true;
                continue;
            }
            sc->sessions = keep;
            break;
        }
        while (sc->iterations > 1) {
            unsigned keep = sc->iterations;
            sc->iterations = keep / 2;
            if (still_fails(sc, failure, &runs)) {
                progress = true;
                continue;
            }
            sc->iterations = keep;
            break;
        }
        for (int i = sc->nracers - 1; i >= 0; i--) {
            pgf_racer saved = sc->racers[i];
            memmove(&sc->racers[i], &sc->racers[i + 1],
                    (size_t)(sc->nracers - i - 1) * sizeof sc->racers[0]);
            sc->nracers--;
            if (still_fails(sc, failure, &runs)) {
                progress = true;
                continue;
            }
            memmove(&sc->racers[i + 1], &sc->racers[i],
                    (size_t)(sc->nracers - i) * sizeof sc->racers[0]);
            sc->racers[i] = saved;
            sc->nracers++;
        }
        size_t nrules = sc->rules ? pgf_fault_rules_count(sc->rules) : 0;
        for (size_t i = nrules; i-- > 0 && sc->rules != NULL;) {
            /* rebuild the set without rule i from the rules' own JSON */
            size_t cnt = pgf_fault_rules_count(sc->rules);
            json_t *arr = json_array();
            for (size_t k = 0; k < cnt; k++) {
                if (k == i)
                    continue;
                json_t *v = json_loads(pgf_fault_rules_rule_json(sc->rules, k), 0, NULL);
                if (v)
                    json_array_append_new(arr, v);
            }
            char *text = json_dumps(arr, JSON_COMPACT);
            json_decref(arr);
            char err[256];
            pgf_fault_rules *smaller =
                text ? pgf_fault_rules_parse_json(text, strlen(text), "shrink", err, sizeof err)
                     : NULL;
            free(text);
            if (smaller == NULL)
                continue;
            pgf_fault_rules *saved = sc->rules;
            sc->rules = smaller;
            if (still_fails(sc, failure, &runs)) {
                pgf_fault_rules_free(saved);
                progress = true;
            } else {
                sc->rules = saved;
                pgf_fault_rules_free(smaller);
            }
        }
    }
    if (log != NULL)
        fprintf(log,
                "shrink: %u candidate runs; sessions %u -> %u, iterations %u -> %u, racers %d -> "
                "%d, fault rules %zu -> %zu\n",
                runs, s0, sc->sessions, i0, sc->iterations, r0, sc->nracers, f0,
                sc->rules ? pgf_fault_rules_count(sc->rules) : 0);
}

/* ---- the suite ---- */

static char *scenario_yaml(const pgf_scenario *sc)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (f == NULL)
        return NULL;
    pgf_scenario_write_yaml(sc, f);
    fclose(f);
    return buf;
}

/* The scenario as its source describes it, before any command-line
 * override: a built-in, a file, or one scenario of a report
 * ("OUT/report.json#NAME"). 0 and *base filled, or an error. */
static int load_source(const pgf_scenario *sc, pgf_scenario *base)
{
    char err[512];
    const char *src = sc->source != NULL ? sc->source : "";
    if (strncmp(src, "builtin:", 8) == 0) {
        int i = pgf_scenario_builtin_find(src + 8);
        if (i < 0)
            return PGF_ENOTFOUND;
        const char *t = pgf_scenario_builtin_text((size_t)i);
        return pgf_scenario_load_string(t, strlen(t), src, base, err, sizeof err);
    }
    const char *hash = strrchr(src, '#');
    if (hash == NULL)
        return pgf_scenario_load_file(src, base, err, sizeof err);
    char path[1024];
    snprintf(path, sizeof path, "%.*s", (int)(hash - src), src);
    json_t *rep = json_load_file(path, 0, NULL);
    json_t *arr = json_object_get(json_object_get(rep, "config"), "scenarios");
    int e = PGF_ENOTFOUND;
    for (size_t i = 0; e == PGF_ENOTFOUND && i < json_array_size(arr); i++) {
        json_t *x = json_array_get(arr, i);
        const char *name = json_string_value(json_object_get(x, "name"));
        const char *yaml = json_string_value(json_object_get(x, "yaml"));
        if (name != NULL && yaml != NULL && strcmp(name, hash + 1) == 0)
            e = pgf_scenario_load_string(yaml, strlen(yaml), src, base, err, sizeof err);
    }
    json_decref(rep);
    return e;
}

static void appendf(char *buf, size_t len, size_t *k, const char *fmt, ...) PGF_PRINTF(4, 5);
static void appendf(char *buf, size_t len, size_t *k, const char *fmt, ...)
{
    if (len == 0 || *k + 1 >= len)
        return;
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(buf + *k, len - *k, fmt, ap);
    va_end(ap);
    *k = w < 0 ? len - 1 : (*k + (size_t)w < len ? *k + (size_t)w : len - 1);
}

/* The exact command that replays sc: its source, then every setting that
 * differs from what the source says (an override, or the suite's soak
 * slice), so the printed command gives the same digest. When the source
 * cannot be read back, every overridable setting is spelled out. */
static void replay_command(const pgf_scenario *sc, const pgf_run_opts *o, const char *out_dir,
                           char *buf, size_t len)
{
    const char *self = o->replay_base ? o->replay_base : "pgfault";
    const char *src = sc->source != NULL ? sc->source : "";
    const char *hash = strrchr(src, '#');
    size_t k = 0;
#define APPEND(...) appendf(buf, len, &k, __VA_ARGS__)
    if (strncmp(src, "builtin:", 8) == 0 || src[0] == '\0')
        APPEND("%s run --scenario %s", self, sc->name);
    else if (hash != NULL)
        APPEND("%s replay %.*s --scenario %s", self, (int)(hash - src), src, hash + 1);
    else
        APPEND("%s run %s", self, src);
    APPEND(" --seed %" PRIu64 " --mode %s", sc->seed, pgf_run_mode_name(sc->mode));
    pgf_scenario base;
    bool have = load_source(sc, &base) == 0;
    if (!have || base.sessions != sc->sessions)
        APPEND(" --sessions %u", sc->sessions);
    if (!have || base.iterations != sc->iterations)
        APPEND(" --iterations %u", sc->iterations);
    if (!have || base.duration_ms != sc->duration_ms)
        APPEND(" --duration %" PRIu64, sc->duration_ms);
    if ((!have && sc->mode == PGF_MODE_STRESS) || (have && base.threads != sc->threads))
        APPEND(" --threads %u", sc->threads);
    if ((!have && sc->bugs != 0) || (have && base.bugs != sc->bugs)) {
        APPEND(" --bugs ");
        bool first = true;
#define BUG_NAME(name, bit, str, doc)          \
    if (sc->bugs & (bit)) {                    \
        APPEND("%s%s", first ? "" : ",", str); \
        first = false;                         \
    }
        PGF_BUG_MAP(BUG_NAME)
#undef BUG_NAME
        if (first)
            APPEND("none");
    }
    APPEND(" --out %s/replay", out_dir);
#undef APPEND
    if (have)
        pgf_scenario_clear(&base);
}

/* One suite run: what run_scenario() accumulates for finish_suite(). */
typedef struct suite {
    const pgf_run_opts *o;
    const char *out;
    FILE *con; /* console, NULL when quiet */
    pgf_report *rep;
    json_t *config, *jscs; /* report.json's "config" and its "scenarios" array */
    uint64_t start_wall, t0;
    int exit_code;
    bool interrupted;
    char first_replay[1024];
    /* Every file goes to a staging directory, committed as one set at the
     * end (outdir.h): a failure or a crash leaves OUT's previous run intact. */
    pgf_outdir *od;
    const char *stage;
    FILE *notes_f; /* lines naming files, printed once they exist */
    char *notes;
    size_t notes_len;
    char lost[512]; /* why an output of the run is missing: then nothing is committed */
} suite;

/* Messages name files by where they will be, not by the staging directory. */
static void unstage(char *msg, const char *stage, const char *out)
{
    pgf_secret_scrub(msg);
    char *at = strstr(msg, stage);
    size_t sl = strlen(stage), ol = strlen(out);
    if (at == NULL || ol > sl)
        return;
    memmove(at + ol, at + sl, strlen(at + sl) + 1);
    memcpy(at, out, ol);
}

static void lose(suite *st, const char *why)
{
    if (st->lost[0] == '\0')
        snprintf(st->lost, sizeof st->lost, "%s", why);
}

/* The scenario's entry in the report's config (borrowed from the array;
 * NULL on ENOMEM, the report then lacks it). */
static json_t *config_entry(suite *st, const pgf_scenario *sc)
{
    char *yaml = scenario_yaml(sc);
    pgf_secret_scrub(yaml); /* the writer masks conninfos; this catches the rest */
    json_t *js = json_pack("{s:s, s:s, s:s?}", "name", sc->name, "seed", "", "yaml", yaml);
    free(yaml);
    if (js == NULL)
        return NULL;
    char seedbuf[32];
    snprintf(seedbuf, sizeof seedbuf, "%" PRIu64, sc->seed);
    json_object_set_new(js, "seed", json_string(seedbuf));
    json_array_append_new(st->jscs, js);
    return js;
}

static void config_entry_results(json_t *js, const outcome *oc)
{
    if (js == NULL)
        return;
    json_object_set_new(js, "checks", json_integer((json_int_t)oc->run->checks));
    json_object_set_new(js, "violations", json_integer((json_int_t)oc->check->total));
    json_object_set_new(js, "wall_ms", json_integer((json_int_t)(oc->run->wall_ns / 1000000)));
    json_object_set_new(js, "checks_until_first_violation",
                        oc->checks_to_violation >= 0
                            ? json_integer((json_int_t)oc->checks_to_violation)
                            : json_null());
    json_object_set_new(js, "digest",
                        oc->digest[0] != '\0' ? json_string(oc->digest) : json_null());
}

/* --shrink on a failed scenario: search, then write OUT/NAME.shrunk.yaml. */
static void shrink_and_save(suite *st, pgf_scenario *sc, const outcome *oc)
{
    if (sc->mode != PGF_MODE_SIM || st->interrupted) {
        if (st->con)
            fprintf(st->con, "shrink: only --mode sim runs are shrunk (they replay exactly)\n");
        return;
    }
    char failure[128];
    snprintf(failure, sizeof failure, "%s", oc->first_failure);
    shrink(sc, failure, st->con);
    char name[300], err[512];
    snprintf(name, sizeof name, "%s.shrunk.yaml", sc->name);
    pgf_atomic_file af;
    if (pgf_atomic_file_open(&af, st->stage, name, err, sizeof err) != 0) {
        lose(st, err);
        return;
    }
    pgf_scenario_write_yaml(sc, af.fp);
    if (pgf_atomic_file_commit(&af, err, sizeof err) != 0)
        lose(st, err);
    else if (st->notes_f != NULL)
        fprintf(st->notes_f, "shrink: smallest failing scenario written to %s/%s\n", st->out, name);
}

/* Run scenario sc (one of n) into its directory and add it to the report.
 * Returns false when the suite must stop (a directory cannot be made). */
static bool run_scenario(suite *st, pgf_scenario *sc, int n)
{
    char err[512], dir[1024], hist[1100], faults[1100];
    if (n == 1)
        snprintf(dir, sizeof dir, "%s", st->stage);
    else
        snprintf(dir, sizeof dir, "%s/%s", st->stage, sc->name);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST) { /* one level inside the stage */
        fprintf(stderr, "pgfault run: cannot create %s: %s\n", dir, strerror(errno));
        st->exit_code = 3;
        return false;
    }
    snprintf(hist, sizeof hist, "%s/history.jsonl%s", dir, st->o->history_zstd ? ".zst" : "");
    snprintf(faults, sizeof faults, "%s/faults.jsonl", dir);
    if (st->con)
        fprintf(st->con, "== %s (%s, seed %" PRIu64 ", %u sessions)\n", sc->name,
                pgf_run_mode_name(sc->mode), sc->seed, sc->sessions);
    json_t *js = config_entry(st, sc);
    outcome oc;
    int e = run_one(sc, st->o, hist, faults, &oc, err, sizeof err);
    pgf_report_scenario *rs = pgf_report_add_scenario(st->rep, sc->name, sc->description);
    char replay[1024];
    replay_command(sc, st->o, st->out, replay, sizeof replay);
    if (e != 0) {
        unstage(err, st->stage, st->out);
        if (oc.lost_output)
            lose(st, err);
        fprintf(stderr, "pgfault run: %s: %s\n", sc->name, err);
        if (rs)
            pgf_report_add_check(rs, "harness ran to completion", false, "harness", err);
        st->exit_code = 3;
        outcome_clear(&oc);
        return true;
    }
    if (oc.run->interrupted)
        st->interrupted = true;
    if (rs != NULL) {
        ignore_(pgf_report_scenario_set_run(rs, sc->seed, replay, oc.run->duration_ns));
        (void)evaluate(sc, &oc, rs);
        pgf__fill_pictures(sc, oc.run, oc.check, oc.pics, rs);
        if (oc.run->stopped_early[0] != '\0')
            ignore_(pgf_report_scenario_set_stopped_early(rs, oc.run->stopped_early));
        uint64_t t = pgf_now_ns();
        pgf_report_scenario_set_phases(rs, oc.run->load_ns,
                                       t > oc.run->load_end_ns ? t - oc.run->load_end_ns : 0);
    }
    if (st->con)
        fprintf(st->con, "   %" PRIu64 " checks, %" PRIu64 " violations, %s%s%.12s%s\n",
                oc.run->checks, oc.check->total, oc.passed ? "PASS" : "FAIL",
                oc.digest[0] ? "  (digest " : "", oc.digest, oc.digest[0] ? ")" : "");
    if (st->con && oc.run->stopped_early[0] != '\0')
        fprintf(st->con, "   %s\n", oc.run->stopped_early);
    char unreach[640];
    if (real_server_unreachable(sc, oc.run, unreach, sizeof unreach))
        fprintf(stderr, "pgfault run: %s: %s\n", sc->name, unreach);
    config_entry_results(js, &oc);
    if (!oc.passed) {
        if (st->exit_code == 0)
            st->exit_code = oc.run->harness_error[0] ? 3 : 1;
        if (st->first_replay[0] == '\0')
            snprintf(st->first_replay, sizeof st->first_replay, "%s", replay);
        if (st->o->shrink)
            shrink_and_save(st, sc, &oc);
    }
    outcome_clear(&oc);
    return true;
}

/* The report's metadata, every output file, the console summary. */
static void finish_suite(suite *st, pgf_scenario *const *scs, int n)
{
    char err[512];
    pgf_report_meta meta = {0};
    meta.tool_version = PGF_VERSION;
    meta.seed = n == 1 ? scs[0]->seed : 0;
    meta.mode = n == 1 ? pgf_run_mode_name(scs[0]->mode) : "mixed";
    meta.name = n == 1 ? scs[0]->name : "built-in suite";
    meta.description = n == 1 ? scs[0]->description : "every scenario in scenarios/";
    meta.start_wall_us = st->start_wall;
    meta.end_wall_us = pgf_wall_us();
    meta.duration_ns = pgf_now_ns() - st->t0;
    meta.interrupted = st->interrupted;
    char replay_all[1200];
    snprintf(replay_all, sizeof replay_all, "%s replay %s/report.json",
             st->o->replay_base ? st->o->replay_base : "pgfault", st->out);
    meta.replay_command = st->first_replay[0] ? st->first_replay : replay_all;
    meta.out_dir = st->out;
    if (pgf_report_set_meta(st->rep, &meta) != 0 ||
        pgf_report_set_config(st->rep, st->config) != 0) {
        fprintf(stderr, "pgfault run: out of memory building the report\n");
        st->exit_code = 3;
    }
    /* What ran is on the console before the (maybe long) writing; a signal
     * from here on stops the writing, and OUT keeps the previous run. */
    if (st->con != NULL)
        fflush(st->con);
    if (st->o->stop != NULL)
        pgf_atomic_set_cancel(st->o->stop, *st->o->stop);
    bool written = st->lost[0] == '\0' &&
                   pgf_report_write_all(st->rep, st->stage, err, sizeof err) == 0 &&
                   pgf_outdir_commit(st->od, err, sizeof err) == 0;
    pgf_atomic_set_cancel(NULL, 0);
    if (!written) {
        if (st->lost[0] != '\0')
            snprintf(err, sizeof err, "%s", st->lost);
        unstage(err, st->stage, st->out);
        fprintf(stderr,
                "pgfault run: %s\npgfault run: nothing written; %s keeps its previous files\n", err,
                st->out);
        st->exit_code = 3;
        meta.out_dir = NULL; /* the summary must not point at files that are not there */
        meta.replay_command = st->first_replay[0] ? st->first_replay : NULL;
        ignore_(pgf_report_set_meta(st->rep, &meta));
    }
    if (st->notes_f != NULL) {
        fclose(st->notes_f);
        st->notes_f = NULL;
        if (written && st->con != NULL && st->notes != NULL)
            fputs(st->notes, st->con);
    }
    if (st->con != NULL)
        pgf_report_print_summary(st->rep, st->con);
    if (st->first_replay[0] != '\0' && written)
        fprintf(st->con ? st->con : stderr, "replay: %s\n   or: %s\n", st->first_replay,
                replay_all);
    else if (st->first_replay[0] != '\0')
        fprintf(st->con ? st->con : stderr, "replay: %s\n", st->first_replay);
    if (st->interrupted && st->exit_code == 0)
        st->exit_code = 1; /* partial results are not a pass */
}

/* config.shard: which shard this is and of what (the spec's digest too),
 * so `pgfault merge` refuses shards of another version, spec or split. */
static json_t *shard_entry(const pgf_run_opts *o)
{
    const char *text = pgf_session_spec_json_text();
    pgf_spec *spec = NULL;
    char err[256];
    if (text == NULL ||
        pgf_spec_parse(text, strlen(text), "<session spec>", &spec, err, sizeof err) != 0)
        return NULL;
    json_t *sh = json_pack("{s:I,s:I,s:s,s:s}", "index", (json_int_t)o->shard_index, "count",
                           (json_int_t)o->shard_count, "spec_digest", pgf_spec_digest(spec), "tool",
                           "pgfault " PGF_VERSION);
    pgf_spec_free(spec);
    return sh;
}

int pgf_run_suite(pgf_scenario *const *scs, int n, const pgf_run_opts *o)
{
    suite st = {.o = o, .out = o->out_dir ? o->out_dir : "out"};
    st.con = o->quiet ? NULL : (o->console ? o->console : stdout);
    char err[512];
    if (pgf_outdir_begin(st.out, &st.od, err, sizeof err) != 0) {
        fprintf(stderr, "pgfault run: %s\n", err);
        return 3;
    }
    st.stage = pgf_outdir_stage(st.od);
    register_secrets(scs, n);
    st.notes_f = open_memstream(&st.notes, &st.notes_len);
    st.rep = pgf_report_new();
    st.config = json_object();
    st.jscs = json_array();
    if (st.rep == NULL || st.config == NULL || st.jscs == NULL) {
        fprintf(stderr, "pgfault run: out of memory\n");
        pgf_outdir_free(st.od);
        if (st.notes_f != NULL)
            fclose(st.notes_f);
        free(st.notes);
        pgf_report_free(st.rep);
        json_decref(st.config);
        json_decref(st.jscs);
        return 3;
    }
    json_object_set_new(st.config, "scenarios", st.jscs);
    if (o->shard_count > 0) {
        json_t *sh = shard_entry(o);
        if (sh == NULL) {
            fprintf(stderr, "pgfault run: out of memory\n");
            st.exit_code = 3;
        }
        json_object_set_new(st.config, "shard", sh);
    }
    st.start_wall = pgf_wall_us();
    st.t0 = pgf_now_ns();
    for (int i = 0; i < n; i++) {
        if (o->stop && *o->stop) {
            st.interrupted = true;
            break;
        }
        if (!run_scenario(&st, scs[i], n))
            break;
        if (o->fail_fast && st.exit_code != 0) {
            if (st.con && i + 1 < n)
                fprintf(st.con, "--fail-fast: %d scenario(s) not run\n", n - i - 1);
            break;
        }
    }
    finish_suite(&st, scs, n);
    pgf_outdir_free(st.od);
    free(st.notes);
    json_decref(st.config);
    pgf_report_free(st.rep);
    return st.exit_code;
}
