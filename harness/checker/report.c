/* report.c - print a check result: a readable summary with witnesses, or
 * one JSON document. Only formatting; the verdict is check.c's. */
#include <inttypes.h>
#include <jansson.h>
#include <stdlib.h>

#include "pgfault/check.h"
#include "history_internal.h"

static void print_rec(FILE *f, const pgf_rec *r, bool mark)
{
    char buf[1024];
    int n = pgf_rec_format(r, buf, sizeof buf);
    fprintf(f, "    %s line %-6u %s\n", mark ? ">" : " ", r->line,
            n >= 0 ? buf : "(record too long to show)");
}

/* The witness record that showed the violation (the witness ends with
 * it); NULL when the witness does not hold it. */
static const pgf_rec *at_rec(const pgf_violation *v)
{
    for (size_t w = v->nwitness; w-- > 0;)
        if (v->witness[w] == v->at)
            return &v->wrec[w];
    return NULL;
}

static unsigned at_line(const pgf_violation *v)
{
    const pgf_rec *r = at_rec(v);
    return r != NULL ? r->line : 0;
}

void pgf_check_print(FILE *f, const pgf_check_result *r, const char *name)
{
    fprintf(f, "%s: %" PRIu64 " records, %" PRIu64 " sessions, %" PRIu64 " operations\n",
            name != NULL ? name : "history", r->records, r->sessions, r->ops);
    if (r->total == 0) {
        fprintf(f, "no violations\n");
        return;
    }
    fprintf(f, "%" PRIu64 " violation(s):\n", r->total);
    for (int k = 0; k < PGF_VIOL_COUNT; k++)
        if (r->counts[k] > 0)
            fprintf(f, "  %-26s %" PRIu64 "\n", pgf_violation_name((pgf_violation_kind)k),
                    r->counts[k]);
    fprintf(f, "\nfirst violation per session (%zu", r->nfirst);
    if (r->first_dropped > 0)
        fprintf(f, "; %" PRIu64 " more not listed", r->first_dropped);
    fprintf(f, "):\n");
    for (size_t i = 0; i < r->nfirst; i++) {
        const pgf_violation *v = &r->first[i];
        if (v->session != PGF_REC_NONE)
            fprintf(f, "\nsession %" PRId64 ": %s", v->session, pgf_violation_name(v->kind));
        else
            fprintf(f, "\nserver: %s", pgf_violation_name(v->kind));
        if (v->at != PGF_CHECK_NO_RECORD)
            fprintf(f, " at line %u", at_line(v));
        else
            fprintf(f, " at end of history");
        fprintf(f, "\n  %s\n  witness (%zu record%s):\n", v->message, v->nwitness,
                v->nwitness == 1 ? "" : "s");
        for (size_t w = 0; w < v->nwitness; w++)
            print_rec(f, &v->wrec[w], v->witness[w] == v->at);
    }
}

int pgf_check_print_json(FILE *f, const pgf_check_result *r, const char *name)
{
    json_t *o = json_object(), *counts = json_object(), *first = json_array();
    int rc = o == NULL || counts == NULL || first == NULL;
    if (rc != 0)
        goto fail;
    rc |= json_object_set_new(o, "history", json_string(name != NULL ? name : "history"));
    rc |= json_object_set_new(o, "records", json_integer((json_int_t)r->records));
    rc |= json_object_set_new(o, "sessions", json_integer((json_int_t)r->sessions));
    rc |= json_object_set_new(o, "operations", json_integer((json_int_t)r->ops));
    rc |= json_object_set_new(o, "violations", json_integer((json_int_t)r->total));
    rc |= json_object_set_new(o, "first_dropped", json_integer((json_int_t)r->first_dropped));
    for (int k = 0; k < PGF_VIOL_COUNT; k++)
        rc |= json_object_set_new(counts, pgf_violation_name((pgf_violation_kind)k),
                                  json_integer((json_int_t)r->counts[k]));
    for (size_t i = 0; i < r->nfirst && rc == 0; i++) {
        const pgf_violation *v = &r->first[i];
        json_t *jv = json_object(), *wit = json_array();
        if (jv == NULL || wit == NULL) {
            json_decref(jv);
            json_decref(wit);
            rc = -1;
            break;
        }
        rc |= json_object_set_new(jv, "kind", json_string(pgf_violation_name(v->kind)));
        rc |= json_object_set_new(
            jv, "session", v->session != PGF_REC_NONE ? json_integer(v->session) : json_null());
        rc |= json_object_set_new(
            jv, "line", v->at != PGF_CHECK_NO_RECORD ? json_integer(at_line(v)) : json_null());
        rc |= json_object_set_new(
            jv, "seq", at_rec(v) != NULL ? json_integer((json_int_t)at_rec(v)->seq) : json_null());
        rc |= json_object_set_new(jv, "time_ns", json_integer((json_int_t)v->at_time_ns));
        rc |= json_object_set_new(jv, "message", json_string(v->message));
        for (size_t w = 0; w < v->nwitness; w++) {
            json_t *jr = pgf__hist_rec_json(&v->wrec[w]);
            json_t *item = json_object();
            if (jr == NULL || item == NULL) {
                json_decref(jr);
                json_decref(item);
                rc = -1;
                break;
            }
            rc |= json_object_set_new(item, "line", json_integer(v->wrec[w].line));
            rc |= json_object_set_new(item, "record", jr);
            rc |= json_array_append_new(wit, item);
        }
        rc |= json_object_set_new(jv, "witness", wit);
        rc |= json_array_append_new(first, jv);
    }
    rc |= json_object_set_new(o, "counts", counts);
    counts = NULL;
    rc |= json_object_set_new(o, "first", first);
    first = NULL;
    if (rc == 0 && (json_dumpf(o, f, JSON_INDENT(2)) != 0 || fputc('\n', f) == EOF))
        rc = -1;
fail:
    json_decref(counts);
    json_decref(first);
    json_decref(o);
    return rc == 0 ? 0 : PGF_ENOMEM;
}
