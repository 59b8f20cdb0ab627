/* report_words.c - a failed check's witness in plain words: the witness
 * lines parsed back into events (who called what: an operation invoked
 * while another of the session is in progress is a racer's), and one
 * sentence a reader without pgfault's vocabulary understands ("close() was
 * accepted while open() was still authenticating, ..."). Used by the HTML
 * page (above each sequence diagram, and under the verdict) and the
 * console summary. Plain text out; each writer escapes for its format. */
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "report_internal.h"

static const char *jstr(json_t *j, const char *k)
{
    const char *v = json_string_value(json_object_get(j, k));
    return v;
}

bool pgf__wev_is(const pgf__wev *e, const char *t)
{
    return e->type != NULL && strcmp(e->type, t) == 0;
}

/* "authenticating" for CONNECTING_AUTH: the state in plain words. */
static const char *state_words(const char *st)
{
    static const struct {
        const char *state, *words;
    } w[] = {{"NEW", "not yet started"},
             {"CONNECTING_SOCKET", "opening its socket"},
             {"CONNECTING_SSL", "negotiating SSL"},
             {"CONNECTING_STARTUP", "sending its startup message"},
             {"CONNECTING_AUTH", "authenticating"},
             {"CONNECTING_PARAMS", "reading the server's parameters"},
             {"READY", "idle"},
             {"BUSY", "running its query"},
             {"CANCELING", "canceling its query"},
             {"CLOSING", "closing"},
             {"FAILED", "failed"},
             {"CLOSED", "closed"}};
    for (size_t i = 0; st != NULL && i < sizeof w / sizeof w[0]; i++)
        if (strcmp(w[i].state, st) == 0)
            return w[i].words;
    return st ? st : "in an unknown state";
}

/* Parse the witness and decide who made each call: an invoke while another
 * operation of the session is in progress is a racer's. Returns the count
 * parsed (events that are not JSON objects are skipped). */
size_t pgf__parse_witness(const pgf_report_check *c, pgf__wev *ev)
{
    size_t n = 0;
    int64_t inprog[64];
    int inlane[64];
    size_t nin = 0;
    for (size_t i = 0; i < c->witness.len; i++) {
        json_t *j = json_loads(c->witness.items[i], 0, NULL);
        if (!json_is_object(j)) {
            json_decref(j);
            continue;
        }
        pgf__wev *e = &ev[n++];
        memset(e, 0, sizeof *e);
        e->j = j;
        e->type = jstr(j, "type");
        e->op = jstr(j, "op");
        e->from = jstr(j, "from");
        e->to = jstr(j, "to");
        e->error = jstr(j, "error");
        e->phase = jstr(j, "phase");
        e->action = jstr(j, "action");
        e->rule = jstr(j, "rule");
        e->reason = jstr(j, "reason");
        json_t *id = json_object_get(j, "op_id");
        e->op_id = json_is_integer(id) ? (int64_t)json_integer_value(id) : -1;
        json_t *t = json_object_get(j, "time_ns");
        e->t = json_is_integer(t) ? (uint64_t)json_integer_value(t) : 0;
        e->lane = PGF__LANE_APP;
        if (pgf__wev_is(e, "invoke")) {
            e->lane = nin > 0 ? PGF__LANE_RACER : PGF__LANE_APP;
            if (nin < 64) {
                inprog[nin] = e->op_id;
                inlane[nin++] = e->lane;
            }
        } else if (pgf__wev_is(e, "ok") || pgf__wev_is(e, "fail") || pgf__wev_is(e, "info")) {
            for (size_t k = 0; k < nin; k++) {
                if (inprog[k] != e->op_id)
                    continue;
                e->lane = inlane[k];
                memmove(&inprog[k], &inprog[k + 1], (nin - k - 1) * sizeof inprog[0]);
                memmove(&inlane[k], &inlane[k + 1], (nin - k - 1) * sizeof inlane[0]);
                nin--;
                break;
            }
        }
    }
    return n;
}

/* The one plain-words sentence above a witness. */
void pgf__witness_sentence(pgf_buf *t, const pgf_report_check *c, const pgf__wev *ev, size_t n)
{
    const pgf__wev *last = n ? &ev[n - 1] : NULL;
    const char *kind = c->kind ? c->kind : "";
    /* The operation in progress (other than the last event's) when it happened. */
    const char *other = NULL, *state = NULL;
    int64_t open_ids[64];
    const char *open_ops[64];
    size_t nopen = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const pgf__wev *e = &ev[i];
        if (pgf__wev_is(e, "transition"))
            state = e->to;
        if (pgf__wev_is(e, "invoke") && nopen < 64) {
            open_ids[nopen] = e->op_id;
            open_ops[nopen++] = e->op;
        } else if (pgf__wev_is(e, "ok") || pgf__wev_is(e, "fail") || pgf__wev_is(e, "info")) {
            for (size_t k = 0; k < nopen; k++)
                if (open_ids[k] == e->op_id) {
                    open_ids[k] = open_ids[--nopen];
                    open_ops[k] = open_ops[nopen];
                    break;
                }
        }
    }
    for (size_t k = 0; last && k < nopen && other == NULL; k++)
        if (open_ids[k] != last->op_id && open_ops[k] != NULL)
            other = open_ops[k];
    size_t start = t->len;
    if (last != NULL && pgf__wev_is(last, "transition") && last->op &&
        (strcmp(kind, "illegal_transition") == 0 || strcmp(kind, "concurrent_transition") == 0)) {
        bool illegal = strcmp(kind, "illegal_transition") == 0;
        if (other)
            pgf_buf_printf(t,
                           "%s() was accepted while %s() was still %s, and it moved the "
                           "session from %s straight to %s",
                           last->op, other, state_words(last->from), last->from ? last->from : "?",
                           last->to ? last->to : "?");
        else
            pgf_buf_printf(t, "%s() moved the session from %s to %s", last->op,
                           last->from ? last->from : "?", last->to ? last->to : "?");
        pgf_buf_printf(t, "%s.",
                       illegal ? ": the state machine has no such step"
                       : other ? "; only an operation that preempts (close, cancel) may "
                                 "change the state while another is in progress"
                               : " while another operation was in progress");
    } else if (last != NULL && strcmp(kind, "use_after_close") == 0) {
        pgf_buf_printf(t,
                       "%s() was called on a session that was already %s, and it %s instead "
                       "of failing with PGF_EILLEGAL_STATE.",
                       last->op ? last->op : "an operation", state_words(state),
                       pgf__wev_is(last, "transition") ? "changed the session's state"
                                                       : "went ahead");
    } else if (last != NULL && strcmp(kind, "preempted_not_canceled") == 0) {
        pgf_buf_printf(t,
                       "%s() was preempted (a close or cancel cut in), but it then ended with "
                       "'%s%s%s' instead of failing with PGF_ECANCELED.",
                       last->op ? last->op : "an operation", last->type ? last->type : "?",
                       last->error ? " " : "", last->error ? last->error : "");
    } else if (last != NULL && strcmp(kind, "bad_end_state") == 0) {
        pgf_buf_printf(t,
                       "%s() reported '%s' while the session was %s, a state it may not end "
                       "in.",
                       last->op ? last->op : "an operation", last->type ? last->type : "?",
                       state_words(state));
    } else if (last != NULL && strcmp(kind, "misclassified_health") == 0) {
        const char *action = NULL;
        for (size_t i = 0; i < n; i++)
            if (pgf__wev_is(&ev[i], "fault"))
                action = ev[i].action;
        pgf_buf_printf(t,
                       "the server injected a '%s' fault, but the health check reported '%s', "
                       "not the reason that fault must produce.",
                       action ? action : "?", last->reason ? last->reason : "?");
    } else if (last == NULL && strcmp(kind, "preempted_not_canceled") == 0) {
        pgf_buf_printf(t, "an operation was preempted (a close or cancel cut in while it ran), "
                          "but it did not then fail with PGF_ECANCELED as the state machine "
                          "requires.");
    } else if (last == NULL && strcmp(kind, "illegal_transition") == 0) {
        pgf_buf_printf(t, "a session changed state in a way the state machine does not allow.");
    } else if (strcmp(kind, "missing_completion") == 0) {
        pgf_buf_printf(t, "an operation was called and never returned.");
    } else if (strcmp(kind, "not_closed") == 0) {
        pgf_buf_printf(t, "the session ended the run %s instead of closed.", state_words(state));
    }
    /* capitalize the first letter for the reader, unless it is a
     * function name ("close() was ...") */
    if (!t->failed && t->len > start) {
        char *txt = (char *)t->data + start;
        size_t k = 0;
        while (start + k < t->len && txt[k] != ' ' && txt[k] != '(')
            k++;
        if (txt[0] >= 'a' && txt[0] <= 'z' && (start + k == t->len || txt[k] != '('))
            txt[0] = (char)(txt[0] - 'a' + 'A');
    }
}

int pgf__check_sentence(const pgf_report_check *c, pgf_buf *out)
{
    pgf__wev *ev = calloc(c->witness.len + 1, sizeof *ev);
    if (ev == NULL)
        return PGF_ENOMEM;
    size_t n = pgf__parse_witness(c, ev);
    pgf__witness_sentence(out, c, ev, n);
    for (size_t i = 0; i < n; i++)
        json_decref(ev[i].j);
    free(ev);
    return out->failed ? PGF_ENOMEM : 0;
}
