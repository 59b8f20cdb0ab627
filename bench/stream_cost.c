/* stream_cost.c - what each stage of a run's history stream costs per
 * record, on a recorded history replayed in memory (no load, no threads):
 * the writer (format, write, and the digest when the history is a sim
 * run's: run.c digests only those), the streaming checker, the report's
 * pictures, and all three the way run.c's stream_sink chains them.
 *
 *   stream_cost HISTORY [ROUNDS [STAGE]]
 *
 * The names a run's recorder hands the stream are the session manager's
 * own static strings (machine.c's tables), not copies: the replay points
 * op/from/to at those, so lookups see what they see in a run. Each stage's
 * figure is the best of ROUNDS (default 5), in ns per record. Part of the
 * soak bench (issue 17: the checker's overhead); bench/README. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pgfault/check.h"
#include "pgfault/history.h"
#include "pgfault/machine.h"
#include "pgfault/spec.h"
#include "pictures.h"

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static const char *static_state(const char *s)
{
    int i = s ? pgf_session_state_parse(s) : -1;
    return i >= 0 ? pgf_session_state_name((pgf_sess_state)i) : s;
}

static const char *static_op(const char *s)
{
    int i = s ? pgf_session_op_parse(s) : -1;
    return i >= 0 ? pgf_session_op_name((pgf_sess_op)i) : s;
}

enum { S_WRITE = 1, S_CHECK = 2, S_PICS = 4, S_ALL = 7 };

static double stage(const pgf_rec *recs, size_t n, const pgf_spec *spec, int what, bool digest)
{
    pgf_hist_writer *w = NULL;
    pgf_checker *ck = NULL;
    pgf__pics *p = NULL;
    if ((what & S_WRITE) && pgf_hist_writer_open("/dev/null", &w) != 0)
        return -1;
    if (w != NULL && !digest) /* as run.c: only a sim run's history is digested */
        pgf_hist_writer_no_digest(w);
    if ((what & S_CHECK) && pgf_checker_new(spec, NULL, &ck) != 0)
        return -1;
    if ((what & S_PICS) && (p = pgf__pics_new(1)) == NULL)
        return -1;
    double t0 = now_s();
    for (size_t i = 0; i < n; i++) {
        if (w != NULL && pgf_hist_writer_put(w, &recs[i]) != 0)
            return -1;
        size_t len = 0; /* as run.c's stream_sink: the writer's line is the witness */
        const char *line = w != NULL ? pgf_hist_writer_last(w, &len) : NULL;
        if (ck != NULL && pgf_checker_feed_line(ck, &recs[i], line, len) != 0)
            return -1;
        if (p != NULL && pgf__pics_feed(p, &recs[i]) != 0)
            return -1;
    }
    if (w != NULL && pgf_hist_writer_close(w) != 0)
        return -1;
    double t = now_s() - t0;
    if (ck != NULL) {
        pgf_check_result *res = NULL;
        if (pgf_checker_finish(ck, &res) != 0)
            return -1;
        pgf_check_result_free(res); /* finish freed the checker */
    }
    pgf__pics_free(p);
    return t * 1e9 / (double)n;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: stream_cost HISTORY [ROUNDS [write|check|pics|all]]\n");
        return 2;
    }
    char *end = NULL;
    long rounds = argc > 2 ? strtol(argv[2], &end, 10) : 5;
    if (argc > 2 && (*end != '\0' || rounds < 1 || rounds > 1000)) {
        fprintf(stderr, "stream_cost: ROUNDS '%s': expected 1..1000\n", argv[2]);
        return 2;
    }
    char err[512];
    pgf_history *h = NULL;
    if (pgf_history_load(argv[1], &h, err, sizeof err) != 0) {
        fprintf(stderr, "stream_cost: %s\n", err);
        return 2;
    }
    size_t n;
    const pgf_rec *src = pgf_history_records(h, &n);
    pgf_rec *recs = malloc((n ? n : 1) * sizeof *recs);
    if (recs == NULL)
        return 2;
    for (size_t i = 0; i < n; i++) {
        recs[i] = src[i];
        recs[i].line = 0; /* built in memory, as a run's are */
        recs[i].op = static_op(src[i].op);
        recs[i].from = static_state(src[i].from);
        recs[i].to = static_state(src[i].to);
    }
    const char *text = pgf_spec_pinned_json();
    pgf_spec *spec = NULL;
    if (pgf_spec_parse(text, strlen(text), "docs/spec.json", &spec, err, sizeof err) != 0) {
        fprintf(stderr, "stream_cost: %s\n", err);
        return 2;
    }
    static const struct {
        const char *name;
        int what;
    } stages[] = {{"write", S_WRITE},
                  {"check", S_CHECK},
                  {"pics", S_PICS},
                  {"all", S_ALL},
                  {"none", 0}}; /* "none": only with STAGE, the load alone (perf stat) */
    bool known = argc <= 3;
    for (size_t k = 0; k < sizeof stages / sizeof stages[0] && !known; k++)
        known = strcmp(argv[3], stages[k].name) == 0;
    if (!known) {
        fprintf(stderr, "stream_cost: STAGE '%s': expected write, check, pics, all or none\n",
                argv[3]);
        return 2;
    }
    const pgf_hist_meta *meta = pgf_history_meta(h);
    bool digest = meta != NULL && meta->mode != NULL && strcmp(meta->mode, "sim") == 0;
    printf("%zu records (%s mode: %s), best of %ld rounds, ns per record\n", n,
           meta != NULL && meta->mode != NULL ? meta->mode : "unknown",
           digest ? "digested, as a sim run" : "no digest, as a run outside sim", rounds);
    for (size_t k = 0; k < sizeof stages / sizeof stages[0]; k++) {
        if (argc > 3 ? strcmp(argv[3], stages[k].name) != 0 : stages[k].what == 0)
            continue;
        double best = -1;
        for (long r = 0; r < rounds; r++) {
            double ns = stage(recs, n, spec, stages[k].what, digest);
            if (ns < 0) {
                fprintf(stderr, "stream_cost: stage %s failed\n", stages[k].name);
                return 1;
            }
            if (best < 0 || ns < best)
                best = ns;
        }
        printf("%-6s %7.1f\n", stages[k].name, best);
    }
    free(recs);
    pgf_spec_free(spec);
    pgf_history_free(h);
    return 0;
}
