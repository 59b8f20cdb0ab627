/* report_internal.h - the report model's layout, shared by report.c (the
 * builder) and the writers (report_json.c, report_junit.c, report_html.c,
 * report_console.c). Not part of the public API: the harness uses report.h.
 * Every string held here is valid UTF-8 without NUL (report.c sanitizes on
 * the way in). */
#ifndef PGF_REPORT_INTERNAL_H
#define PGF_REPORT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "pgfault/buf.h"
#include "pgfault/report.h"

/* Log-linear histogram: values < 16 get their own bucket, then 16 buckets per
 * power of two. 61 * 16 buckets cover all of uint64. */
#define PGF__HIST_SUB     16
#define PGF__HIST_BUCKETS (61 * PGF__HIST_SUB)

typedef struct pgf__hist {
    uint64_t *buckets; /* PGF__HIST_BUCKETS entries, allocated on first sample */
    uint64_t count, min, max;
    long double sum;
} pgf__hist;

unsigned pgf__hist_index(uint64_t v);
uint64_t pgf__hist_lower(unsigned idx);
uint64_t pgf__hist_upper(unsigned idx);
uint64_t pgf__hist_quantile(const pgf__hist *h, double q);

/* A growable array of T: `items`, `len`, `cap`. */
#define PGF__VEC(T)      \
    struct {             \
        T *items;        \
        size_t len, cap; \
    }

struct pgf_report_check {
    pgf_report *report;
    char *name, *kind, *message; /* kind/message may be NULL */
    bool passed;
    uint64_t session;
    PGF__VEC(char *) witness;
};

typedef struct pgf__edge {
    char *from, *to, *op; /* op may be NULL */
    uint64_t count;
    bool legal;
} pgf__edge;

typedef struct pgf__span {
    uint64_t session;
    char *state;
    uint64_t start_ns, end_ns;
} pgf__span;

typedef struct pgf__mark {
    uint64_t session, t_ns;
    char *phase, *action, *rule; /* rule may be NULL */
} pgf__mark;

typedef struct pgf__op {
    uint64_t session, op_id, invoke_ns, end_ns;
    char *op, *result, *error; /* result/error may be NULL */
    bool raced;                /* invoked while another op of its session was in progress */
} pgf__op;

typedef struct pgf__vmark {
    uint64_t session, t_ns;
    char *kind;
} pgf__vmark;

typedef struct pgf__window {
    char *rule;
    uint64_t start_ns, end_ns;
} pgf__window;

typedef struct pgf__sample {
    uint64_t t_ns, latency_ns;
    pgf_report_outcome outcome;
} pgf__sample;

typedef struct pgf__rule {
    char *name, *phase, *action;
    uint64_t fired;
} pgf__rule;

typedef struct pgf__cell {
    char *phase, *action;
    uint64_t fired;
} pgf__cell;

/* (operation x state) coverage: calls made in that state, and how many of
 * them were refused (PGF_EILLEGAL_STATE) */
typedef struct pgf__opcell {
    char *op, *state;
    uint64_t calls, refused;
} pgf__opcell;

typedef struct pgf__kv {
    char *key;
    uint64_t n;
} pgf__kv;

struct pgf_report_scenario {
    pgf_report *report;
    char *name, *description, *replay_command;
    uint64_t seed, duration_ns;
    bool has_run;
    char *mode;              /* the clock of its times: "sim" = virtual; NULL = unknown */
    uint64_t wall_ns;        /* wall-clock time it took; 0 = unknown */
    uint64_t sessions_total; /* sessions in the run; 0 = unknown (count the timeline's) */
    char *stopped_early;     /* why the run stopped before its end; NULL = it did not */
    bool has_phases;         /* load_ns/verdict_ns set (pgf_report_scenario_set_phases) */
    uint64_t load_ns, verdict_ns;
    uint64_t samples_dropped; /* samples beyond PGF_REPORT_MAX_SAMPLES */
    uint64_t marks_not_kept;  /* fault marks the run did not keep (undrawn sessions) */
    PGF__VEC(pgf_report_check *) checks;
    uint64_t outcomes[PGF_REPORT_OUTCOME_COUNT];
    pgf__hist latency[PGF_REPORT_OUTCOME_COUNT];
    PGF__VEC(char *) states;
    PGF__VEC(pgf__edge) edges;
    PGF__VEC(pgf__span) spans;
    PGF__VEC(pgf__mark) marks;
    PGF__VEC(pgf__op) ops;
    PGF__VEC(pgf__vmark) vmarks;
    PGF__VEC(pgf__window) windows;
    PGF__VEC(pgf__sample) samples;
    uint64_t tput_bin_ns; /* pgf_report_set_throughput; 0 = not set */
    size_t tput_n;
    uint64_t *tput_ok, *tput_bad;
    PGF__VEC(pgf__rule) rules;
    PGF__VEC(pgf__cell) cells;
    PGF__VEC(pgf__opcell) opcells;
    PGF__VEC(pgf__kv) violations;
};

struct pgf_report {
    bool failed; /* sticky: an allocation failed while building */
    char *tool_version, *mode, *name, *description, *replay_command, *out_dir;
    uint64_t seed, start_wall_us, end_wall_us, duration_ns;
    bool interrupted;
    json_t *config; /* object, never NULL */
    PGF__VEC(pgf_report_scenario *) scenarios;
};

/* Append a string literal (length computed by the compiler). */
#define PGF__PUT_LIT(b, lit) pgf_buf_put((b), "" lit, sizeof(lit) - 1)

/* Totals over the whole report, for verdict lines. */
typedef struct pgf__totals {
    size_t scenarios, scenarios_failed, checks, checks_failed;
    uint64_t health_checks, violations;
} pgf__totals;
void pgf__report_totals(const pgf_report *r, pgf__totals *t);
bool pgf__scenario_passed(const pgf_report_scenario *s);
uint64_t pgf__scenario_health_checks(const pgf_report_scenario *s);
uint64_t pgf__scenario_violations(const pgf_report_scenario *s);
/* True when the scenario's times are virtual (sim mode). */
bool pgf__scenario_virtual(const pgf_report_scenario *s);
/* The replay command of a scenario (its own, else the run's; may be NULL). */
const char *pgf__scenario_replay(const pgf_report_scenario *s);

/* Append `s` to `b` escaped for XML 1.0 text and attribute values (&<>"'
 * and tab/LF/CR as character references when `attr`; XML-illegal code
 * points become "\xNN" or U+FFFD). `s` must be valid UTF-8 (model strings are). */
void pgf__xml_escape(pgf_buf *b, const char *s, bool attr);
/* Append `s` to `b` with every control character (C0, DEL, C1) as "\xNN",
 * except LF when keep_newlines. */
void pgf__console_escape(pgf_buf *b, const char *s, bool keep_newlines);

/* ---- a witness in plain words (report_words.c) ---- */

/* Who made a call in a witness: the application's health-check loop, or a
 * racer (an operation invoked while another of the session is in
 * progress); the session and the server are the other lanes of a diagram. */
enum { PGF__LANE_APP, PGF__LANE_SESSION, PGF__LANE_RACER, PGF__LANE_SERVER, PGF__LANES };

/* One witness event, parsed from its history line (strings borrowed from
 * `j`, which the caller releases with json_decref). */
typedef struct pgf__wev {
    json_t *j;
    const char *type, *op, *from, *to, *error, *phase, *action, *rule, *reason;
    int64_t op_id;
    uint64_t t;
    int lane; /* invoke/completion: PGF__LANE_APP or PGF__LANE_RACER */
} pgf__wev;

/* Parse c's witness into ev[] (room for c->witness.len); lines that are not
 * JSON objects are skipped. Returns how many were parsed. */
size_t pgf__parse_witness(const pgf_report_check *c, pgf__wev *ev);
bool pgf__wev_is(const pgf__wev *e, const char *type);
/* Append the plain-words sentence of a failed check (plain text, nothing
 * when there is none to say) to out. */
void pgf__witness_sentence(pgf_buf *out, const pgf_report_check *c, const pgf__wev *ev, size_t n);
/* The same from the check alone (parses its witness). 0 or PGF_ENOMEM. */
int pgf__check_sentence(const pgf_report_check *c, pgf_buf *out);

/* Fill err[errlen] (when err != NULL) and return code: the base formatter. */
#define pgf__report_err pgf_err_printf
/* Writers refuse a report whose building failed. */
int pgf__report_check_built(const pgf_report *r, char *err, size_t errlen);

#endif
