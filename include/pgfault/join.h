/* join.h - link a foreign history's health results to the faults that
 * caused them, through the server's own history (`pgfault serve
 * --history`): `pgfault check FOREIGN --server-history SERVER`.
 *
 * A service written in any language records its health checks as `health`
 * records naming the backend pid its connection was given (`backend_pid`,
 * from BackendKeyData) or, for failures before BackendKeyData, its local
 * TCP port (`client_port`). The join finds the server connection with that
 * pid (or port), then the first fault on it that predicts a reason
 * (classify.c), and says whether the health result agrees. Pure: records
 * in, links out. The join rules: docs/introspection.md.
 */
#ifndef PGF_JOIN_H
#define PGF_JOIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "pgfault/err.h"
#include "pgfault/history.h"

typedef enum pgf_join_verdict {
    PGF_JOIN_AGREES,        /* the fault predicts the reason the service reported */
    PGF_JOIN_MISCLASSIFIED, /* the fault predicts another reason */
    PGF_JOIN_NO_FAULT,      /* a failing result with no predictive fault on its connection */
    PGF_JOIN_NO_CONN,       /* names a pid/port the server never saw */
} pgf_join_verdict;

typedef struct pgf_join_link {
    const pgf_rec *health; /* in the foreign records */
    const pgf_rec *fault;  /* in the server records; NULL unless AGREES/MISCLASSIFIED */
    int64_t conn;          /* the server connection, or PGF_REC_NONE */
    const char *by;        /* "backend_pid" or "client_port" */
    const char *predicted; /* the fault's predicted reason, or NULL */
    pgf_join_verdict verdict;
} pgf_join_link;

typedef struct pgf_join_result {
    pgf_join_link *links; /* one per foreign health record that names a pid or port */
    size_t n;
    size_t agrees, misclassified, no_fault, no_conn;
} pgf_join_result;

PGF_NODISCARD int pgf_join(const pgf_rec *foreign, size_t nforeign, const pgf_rec *server,
                           size_t nserver, pgf_join_result **out);
void pgf_join_result_free(pgf_join_result *r);
/* One line per link, then a summary. */
void pgf_join_print(FILE *f, const pgf_join_result *r, const char *foreign_name,
                    const char *server_name);

#endif
