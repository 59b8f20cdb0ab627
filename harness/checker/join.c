/* join.c - a foreign history's health results linked to the faults of the
 * server's own history (see include/pgfault/join.h).
 *
 * The server history maps connections to backend pids and client ports
 * (any record with `conn` and `backend_pid` / `client_port`); its `fault`
 * records name their `conn`. A backend pid is unique per server run. A
 * client port may be reused by the kernel, and nothing but wall time
 * (optional in the format) orders two independent files, so a port names
 * the most recent connection seen from it. Each health result is judged
 * against the first fault on its connection that predicts a reason.
 */
#include <stdlib.h>
#include <string.h>

#include "pgfault/check.h"
#include "pgfault/join.h"

static int64_t conn_by(const pgf_rec *server, size_t n, bool pid, int64_t v)
{
    int64_t conn = PGF_REC_NONE;
    for (size_t i = 0; i < n; i++) {
        const pgf_rec *r = &server[i];
        if (r->conn == PGF_REC_NONE)
            continue;
        if ((pid ? r->backend_pid : r->client_port) == v)
            conn = r->conn; /* the most recent one */
    }
    return conn;
}

int pgf_join(const pgf_rec *foreign, size_t nforeign, const pgf_rec *server, size_t nserver,
             pgf_join_result **out)
{
    *out = NULL;
    pgf_join_result *res = calloc(1, sizeof *res);
    if (res == NULL)
        return PGF_ENOMEM;
    res->links = calloc(nforeign ? nforeign : 1, sizeof *res->links);
    if (res->links == NULL) {
        free(res);
        return PGF_ENOMEM;
    }
    for (size_t i = 0; i < nforeign; i++) {
        const pgf_rec *h = &foreign[i];
        if (h->type != PGF_REC_HEALTH)
            continue;
        bool pid = h->backend_pid != PGF_REC_NONE;
        if (!pid && h->client_port == PGF_REC_NONE)
            continue;
        pgf_join_link *l = &res->links[res->n++];
        l->health = h;
        l->by = pid ? "backend_pid" : "client_port";
        l->conn = conn_by(server, nserver, pid, pid ? h->backend_pid : h->client_port);
        if (l->conn == PGF_REC_NONE) {
            l->verdict = PGF_JOIN_NO_CONN;
            res->no_conn++;
            continue;
        }
        for (size_t j = 0; j < nserver && l->fault == NULL; j++) {
            const pgf_rec *f = &server[j];
            if (f->type != PGF_REC_FAULT || f->conn != l->conn)
                continue;
            /* a fault record's own reason overrides the table ("" = none) */
            const char *p = f->reason != NULL ? (f->reason[0] ? f->reason : NULL)
                                              : pgf_check_predict_reason(f->action, f->sqlstate);
            if (p != NULL) {
                l->fault = f;
                l->predicted = p;
            }
        }
        bool ok = h->reason != NULL && strcmp(h->reason, "ok") == 0;
        if (l->fault == NULL) {
            l->verdict = PGF_JOIN_NO_FAULT;
            if (!ok)
                res->no_fault++;
        } else if (ok || strcmp(h->reason, l->predicted) == 0) {
            /* ok: the check may have had its answer before the fault hit */
            l->verdict = PGF_JOIN_AGREES;
            res->agrees++;
        } else {
            l->verdict = PGF_JOIN_MISCLASSIFIED;
            res->misclassified++;
        }
    }
    *out = res;
    return 0;
}

void pgf_join_result_free(pgf_join_result *r)
{
    if (r == NULL)
        return;
    free(r->links);
    free(r);
}

void pgf_join_print(FILE *f, const pgf_join_result *r, const char *foreign_name,
                    const char *server_name)
{
    for (size_t i = 0; i < r->n; i++) {
        const pgf_join_link *l = &r->links[i];
        const pgf_rec *h = l->health;
        long long key = strcmp(l->by, "backend_pid") == 0 ? (long long)h->backend_pid
                                                          : (long long)h->client_port;
        fprintf(f, "%s:%u: health %s (%s %lld)", foreign_name, h->line, h->reason, l->by, key);
        switch (l->verdict) {
        case PGF_JOIN_NO_CONN:
            fprintf(f, ": no connection with this %s in %s\n", l->by, server_name);
            break;
        case PGF_JOIN_NO_FAULT:
            fprintf(f, " -> conn %lld: no fault that predicts a reason\n", (long long)l->conn);
            break;
        default:
            fprintf(f, " -> conn %lld -> %s:%u: fault %s (%s at %s%s%s) predicts %s: %s\n",
                    (long long)l->conn, server_name, l->fault->line,
                    l->fault->rule ? l->fault->rule : "?", l->fault->action,
                    l->fault->phase ? l->fault->phase : "?", l->fault->sqlstate ? ", " : "",
                    l->fault->sqlstate ? l->fault->sqlstate : "", l->predicted,
                    l->verdict == PGF_JOIN_AGREES ? "agrees" : "MISCLASSIFIED");
        }
    }
    fprintf(f,
            "join: %zu health results linked by pid or port: %zu agree with their fault, %zu "
            "misclassified, %zu failing without a fault, %zu unknown pid/port\n",
            r->n, r->agrees, r->misclassified, r->no_fault, r->no_conn);
}
