/* query.c - the query cycle of a fake-server connection: simple Query
 * (split into statements), the extended protocol (Parse, Bind, Describe,
 * Execute, Close, Sync), pg_sleep on a timer, cancel, as PostgreSQL 15
 * answers them. Statements are run by sql.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pgfault/clock.h"
#include "pgfault/log.h"
#include "conn_int.h"

/* ------------------------------------------------------------------ */
/* queries                                                             */

enum { Q_OK, Q_ERROR, Q_SLEEP, Q_GONE };

static int16_t col_format(const int16_t *formats, uint16_t n, int i)
{
    if (n == 0 || formats == NULL)
        return 0;
    return n == 1 ? formats[0] : (i < n ? formats[i] : 0);
}

static void build_row_description(pgf_buf *b, pgf_sql_result *r, const int16_t *formats,
                                  uint16_t nformats)
{
    int n = pgf_sql_result_ncols(r);
    pgf_col cols[PGF_SQL_MAX_TABLE_COLS];
    for (int i = 0; i < n; i++) {
        /* table answers share their columns: the format is this portal's */
        cols[i] = r->xcols != NULL ? r->xcols[i] : r->cols[i];
        cols[i].format = col_format(formats, nformats, i);
    }
    pgf_msg_row_description(b, cols, (uint16_t)n);
}

static void build_data_row(pgf_buf *b, const pgf_sql_result *r, int row, const int16_t *formats,
                           uint16_t nformats)
{
    int n = pgf_sql_result_ncols(r);
    const char *vals[PGF_SQL_MAX_TABLE_COLS];
    int32_t lens[PGF_SQL_MAX_TABLE_COLS];
    uint8_t bin[PGF_SQL_MAX_TABLE_COLS][16];
    for (int i = 0; i < n; i++) {
        /* Binary output (asyncpg and pgjdbc ask for it) as sql.c encodes it. */
        lens[i] =
            pgf_sql_result_value(r, row, i, col_format(formats, nformats, i), bin[i], &vals[i]);
        if (lens[i] < 0)
            vals[i] = NULL;
    }
    pgf_msg_data_row(b, vals, lens, (uint16_t)n);
}

/* An injected ERROR ended the statement: mirror PostgreSQL's state. */
static int stopped(pgf__conn *c)
{
    if (c->state == ST_CLOSED || c->out_closed)
        return Q_GONE;
    if (c->sql.txn == 'T')
        c->sql.txn = 'E';
    return Q_ERROR;
}

/* Rows and CommandComplete of a finished statement. */
static int emit_tail(pgf__conn *c, pgf_sql_result *r)
{
    pgf_buf b = PGF_BUF_INIT;
    int ret = Q_OK;
    if (r->kind == PGF_SQL_ROWS || r->kind == PGF_SQL_SLEEP) {
        for (int i = 0; i < pgf_sql_result_nrows(r) && ret == Q_OK; i++) {
            pgf_buf_reset(&b);
            build_data_row(&b, r, i, c->cur_formats, c->cur_nformats);
            if (pgf__conn_send_at(c, PGF_PHASE_DATA_ROW, &b) == STOP)
                ret = stopped(c);
        }
    }
    if (ret == Q_OK && r->has_notice) {
        pgf_buf_reset(&b);
        pgf_msg_notice(&b, &r->notice);
        pgf__conn_queue_buf(c, &b);
    }
    if (ret == Q_OK) {
        pgf_buf_reset(&b);
        pgf_msg_command_complete(&b, r->tag);
        if (pgf__conn_send_at(c, PGF_PHASE_COMMAND_COMPLETE, &b) == STOP)
            ret = stopped(c);
    }
    for (int i = 0; ret == Q_OK && i < r->nreports; i++) {
        pgf_buf_reset(&b);
        pgf_msg_parameter_status(&b, r->report_names[i], r->report_values[i]);
        pgf__conn_queue_buf(c, &b);
    }
    pgf_buf_free(&b);
    return ret;
}

static int emit_result(pgf__conn *c, pgf_sql_result *r, bool send_rowdesc)
{
    pgf_buf b = PGF_BUF_INIT;
    int ret = Q_OK;
    switch (r->kind) {
    case PGF_SQL_ERROR:
        if (r->has_notice) { /* a WARNING raised before the statement failed comes first */
            pgf_msg_notice(&b, &r->notice);
            pgf__conn_queue_buf(c, &b);
            pgf_buf_reset(&b);
        }
        pgf_msg_error(&b, &r->error);
        pgf__conn_queue_buf(c, &b);
        ret = Q_ERROR;
        break;
    case PGF_SQL_EMPTY:
        pgf_msg_empty(&b, PGF_BE_EMPTY_QUERY);
        pgf__conn_queue_buf(c, &b);
        break;
    case PGF_SQL_COMMAND:
        ret = emit_tail(c, r);
        break;
    case PGF_SQL_ROWS:
    case PGF_SQL_SLEEP:
        if (send_rowdesc) {
            build_row_description(&b, r, c->cur_formats, c->cur_nformats);
            if (pgf__conn_send_at(c, PGF_PHASE_ROW_DESCRIPTION, &b) == STOP) {
                ret = stopped(c);
                break;
            }
        }
        if (r->kind == PGF_SQL_SLEEP) {
            free(c->sleep_res);
            c->sleep_res = malloc(sizeof *c->sleep_res);
            if (c->sleep_res == NULL) {
                pgf__conn_close(c, CK_RST, "out of memory");
                ret = Q_GONE;
                break;
            }
            *c->sleep_res = *r; /* owns r's xalloc now */
            c->busy = true;
            pgf_timer_arm(c->sleep_timer, PGF_MS_NS(r->sleep_ms));
            ret = Q_SLEEP;
            break;
        }
        ret = emit_tail(c, r);
        break;
    }
    pgf_buf_free(&b);
    return ret;
}

/* Forget the executing statement's query copy and result formats. */
static void clear_exec(pgf__conn *c)
{
    free(c->exec_query);
    free(c->cur_formats);
    c->exec_query = NULL;
    c->cur_formats = NULL;
    c->cur_nformats = 0;
    c->cur_query = NULL;
}

static void send_ready(pgf__conn *c)
{
    free(c->q_text);
    free(c->q_off);
    free(c->q_len);
    c->q_text = NULL;
    c->q_off = c->q_len = NULL;
    c->q_n = c->q_next = 0;
    clear_exec(c);
    /* a Query already waiting behind this one was sent before its ReadyForQuery */
    if (c->in.len > c->in_next && c->in.data[c->in_next] == PGF_FE_QUERY)
        pgf__conn_note(c, PGF_CONN_NOTE_EARLY_QUERY, false, NULL);
    if (c->sql.txn != c->last_txn) {
        c->last_txn = c->sql.txn;
        pgf__conn_note(c, PGF_CONN_NOTE_TXN, false, NULL);
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_ready(&b, c->sql.txn);
    int r = pgf__conn_send_at(c, PGF_PHASE_READY, &b);
    pgf_buf_free(&b);
    if (r == GO)
        pgf__conn_arm_idle_timeout(c);
    if (r == GO && c->state != ST_CLOSED)
        pgf__conn_fault_point(c, PGF_PHASE_IDLE, 0, NULL, 0);
}

/* Run the remaining statements of a simple query, PGF_CONN_STMT_BATCH at
 * a time: then yield to the loop (other connections go on) and continue
 * from resume_timer, or from the flush that drains a blocked output queue. */
static void run_simple(pgf__conn *c)
{
    c->running = false;
    for (int done = 0; c->q_next < c->q_n; done++) {
        if (c->out_bytes > PGF_CONN_OUT_HIGH) {
            c->running = true;
            c->out_blocked = true; /* pgf__conn_flush resumes */
            return;
        }
        if (done == PGF_CONN_STMT_BATCH) {
            c->running = true;
            pgf__conn_resume_later(c);
            return;
        }
        pgf_sql_result r;
        c->sql.now_us = pgf__server_wall_us(c->srv);
        pgf_sql_exec(&c->sql, c->q_text + c->q_off[c->q_next], c->q_len[c->q_next], NULL, 0, &r);
        if (r.kind == PGF_SQL_ERROR && r.error.position != NULL) {
            /* PostgreSQL counts the position from the start of the whole
             * query string, not of the statement. */
            long pos = strtol(r.error.position, NULL, 10) + (long)c->q_off[c->q_next];
            snprintf(r.err_position, sizeof r.err_position, "%ld", pos);
            r.error.position = r.err_position;
        }
        int ret = emit_result(c, &r, true);
        if (ret != Q_SLEEP) /* a sleeping result moved to c->sleep_res */
            pgf_sql_result_release(&r);
        if (ret == Q_SLEEP || ret == Q_GONE)
            return;
        c->q_next++;
        if (ret == Q_ERROR)
            break;
    }
    send_ready(c);
}

struct split_acc {
    pgf__conn *c;
    int cap; /* slots in q_off/q_len */
    bool failed;
};

static void split_cb(const char *stmt, size_t len, void *arg)
{
    struct split_acc *a = arg;
    pgf__conn *c = a->c;
    if (a->failed)
        return;
    if (c->q_n == a->cap) {
        /* Doubling: one realloc per statement was quadratic for a Query of
         * 300,000 statements (ASan's realloc always copies). */
        int cap = a->cap ? 2 * a->cap : 16;
        uint32_t *o = realloc(c->q_off, (size_t)cap * sizeof *o);
        if (o == NULL) {
            a->failed = true;
            return;
        }
        c->q_off = o;
        uint32_t *l = realloc(c->q_len, (size_t)cap * sizeof *l);
        if (l == NULL) {
            a->failed = true;
            return;
        }
        c->q_len = l;
        a->cap = cap;
    }
    c->q_off[c->q_n] = (uint32_t)(stmt - c->q_text);
    c->q_len[c->q_n] = (uint32_t)len;
    c->q_n++;
}

static void handle_query(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *sql;
    if (pgf_proto_parse_query(m, &sql) != 0) {
        /* PostgreSQL: ERROR (not FATAL) from pq_getmsgstring; the session goes on. */
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        pgf__conn_send_error(c, "ERROR", "08P01", "invalid string in message", NULL, NULL);
        if (c->sql.txn == 'T')
            c->sql.txn = 'E';
        send_ready(c);
        return;
    }
    atomic_fetch_add(&c->srv->stats.queries, 1);
    /* A simple Query answers in text whatever an earlier Execute of this
     * batch asked for (a Query before Sync is legal). */
    clear_exec(c);
    free(c->q_text);
    c->q_text = strdup(sql);
    if (c->q_text == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->cur_query = c->q_text;
    pgf__conn_event(c, "query", NULL);
    if (pgf__conn_fault_point(c, PGF_PHASE_QUERY, m->type, NULL, 0) == STOP) {
        if (stopped(c) == Q_ERROR)
            send_ready(c);
        return;
    }
    struct split_acc acc = {c, 0, false};
    pgf_sql_split(c->q_text, split_cb, &acc);
    if (acc.failed) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (c->q_n == 0) {
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_empty(&b, PGF_BE_EMPTY_QUERY);
        pgf__conn_queue_buf(c, &b);
        pgf_buf_free(&b);
        send_ready(c);
        return;
    }
    run_simple(c);
}

void pgf__conn_on_sleep_done(void *arg)
{
    pgf__conn *c = arg;
    c->busy = false;
    pgf_sql_result *res = c->sleep_res;
    c->sleep_res = NULL;
    int ret;
    if (res != NULL && res->sleep_timeout) {
        /* statement_timeout ran out before pg_sleep did */
        pgf__conn_send_error(c, "ERROR", "57014", "canceling statement due to statement timeout",
                             NULL, NULL);
        if (c->sql.txn == 'T')
            c->sql.txn = 'E';
        ret = Q_ERROR;
    } else {
        ret = res != NULL ? emit_tail(c, res) : Q_ERROR;
    }
    if (res != NULL)
        pgf_sql_result_release(res);
    free(res);
    if (ret == Q_GONE) {
        /* A fault cut the result: what it queued (a truncated message, a
         * close marker) still goes out now, not at the next read. */
        if (c->state != ST_CLOSED)
            pgf__conn_flush(c);
        return;
    }
    if (c->extended_sleep) {
        c->extended_sleep = false;
        if (ret == Q_ERROR)
            c->skip_to_sync = true;
    } else {
        c->q_next++;
        if (ret == Q_ERROR)
            c->q_next = c->q_n;
        run_simple(c);
    }
    if (c->state != ST_CLOSED)
        pgf__conn_process_input(c);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}

void pgf__conn_query_continue(pgf__conn *c)
{
    run_simple(c);
}

/* A CancelRequest with the right key for c (server.c found it by pid). */
void pgf__conn_cancel(pgf__conn *c)
{
    pgf_server *s = c->srv;
    if (c->running && !c->busy) {
        /* between statements of a long Query: the rest is not run */
        c->running = false;
        c->q_next = c->q_n;
        atomic_fetch_add(&s->stats.canceled, 1);
        pgf__conn_send_error(c, "ERROR", "57014", "canceling statement due to user request", NULL,
                             NULL);
        if (c->sql.txn == 'T')
            c->sql.txn = 'E';
        send_ready(c);
        if (c->state != ST_CLOSED)
            pgf__conn_flush(c);
        pgf__conn_resume_later(c);
        return;
    }
    if (!c->busy)
        return; /* cancel while idle: nothing happens */
    pgf_timer_cancel(c->sleep_timer);
    if (c->sleep_res != NULL)
        pgf_sql_result_release(c->sleep_res);
    free(c->sleep_res);
    c->sleep_res = NULL;
    c->busy = false;
    atomic_fetch_add(&s->stats.canceled, 1);
    pgf__conn_send_error(c, "ERROR", "57014", "canceling statement due to user request", NULL,
                         NULL);
    if (c->sql.txn == 'T')
        c->sql.txn = 'E';
    if (c->extended_sleep) {
        c->extended_sleep = false;
        c->skip_to_sync = true;
    } else {
        send_ready(c);
    }
    if (c->state != ST_CLOSED)
        pgf__conn_process_input(c);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}

/* ------------------------------------------------------------------ */
/* extended protocol                                                   */

static prepared *find_stmt(pgf__conn *c, const char *name)
{
    for (int i = 0; i < c->nstmts; i++)
        if (strcmp(c->stmts[i].name, name) == 0)
            return &c->stmts[i];
    return NULL;
}

static portal *find_portal(pgf__conn *c, const char *name)
{
    for (int i = 0; i < c->nportals; i++)
        if (strcmp(c->portals[i].name, name) == 0)
            return &c->portals[i];
    return NULL;
}

static void drop_stmt(pgf__conn *c, prepared *st)
{
    free(st->name);
    free(st->query);
    free(st->types);
    *st = c->stmts[--c->nstmts];
}

static void drop_portal(pgf__conn *c, portal *p)
{
    free(p->name);
    free(p->query);
    for (int j = 0; j < p->nparams; j++)
        free(p->params[j]);
    free(p->params);
    free(p->formats);
    *p = c->portals[--c->nportals];
}

/* An error inside an extended-protocol batch: report it and skip to Sync. */
static void ext_error(pgf__conn *c, const char *sqlstate, const char *msg)
{
    pgf__conn_send_error(c, "ERROR", sqlstate, msg, NULL, NULL);
    if (c->sql.txn == 'T')
        c->sql.txn = 'E';
    c->skip_to_sync = true;
}

static void handle_parse(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_parse_msg p;
    if (pgf_proto_parse_parse(m, &p) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    {
        /* PostgreSQL parses at Parse: a syntax error is reported here, with
         * its position, and no ParseComplete. */
        pgf_sql_result chk;
        pgf_sql_describe(&c->sql, p.query, strlen(p.query), &chk);
        if (chk.kind == PGF_SQL_ERROR && strcmp(chk.error.sqlstate, "42601") == 0) {
            pgf_buf b = PGF_BUF_INIT;
            pgf_msg_error(&b, &chk.error);
            pgf__conn_queue_buf(c, &b);
            pgf_buf_free(&b);
            if (c->sql.txn == 'T')
                c->sql.txn = 'E';
            c->skip_to_sync = true;
            return;
        }
    }
    prepared *old = find_stmt(c, p.stmt);
    if (old != NULL) {
        if (p.stmt[0] != '\0') {
            char msg[200];
            snprintf(msg, sizeof msg, "prepared statement \"%s\" already exists", p.stmt);
            ext_error(c, "42P05", msg);
            return;
        }
        drop_stmt(c, old);
    }
    if (c->nstmts >= 1024) {
        ext_error(c, "54000", "too many prepared statements in the pgfault fake server");
        return;
    }
    prepared *n = realloc(c->stmts, (size_t)(c->nstmts + 1) * sizeof *n);
    if (n == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->stmts = n;
    prepared *st = &c->stmts[c->nstmts];
    memset(st, 0, sizeof *st);
    st->name = strdup(p.stmt);
    st->query = strdup(p.query);
    st->nparams = p.nparam_types;
    st->ntypes = p.nparam_types;
    if (p.nparam_types > 0) {
        st->types = calloc(p.nparam_types, sizeof *st->types);
        if (st->types != NULL)
            for (uint16_t i = 0; i < p.nparam_types; i++)
                st->types[i] = pgf_rd_be32(p.param_types + 4 * i);
    }
    /* Count $n to learn how many parameters an untyped statement takes. */
    for (const char *q = p.query; (q = strchr(q, '$')) != NULL; q++) {
        long v = strtol(q + 1, NULL, 10);
        if (v > st->nparams && v <= PGF_PROTO_MAX_BIND_PARAMS)
            st->nparams = (uint16_t)v;
    }
    if (st->name == NULL || st->query == NULL || (p.nparam_types > 0 && st->types == NULL)) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->nstmts++;
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_PARSE_COMPLETE);
    pgf__conn_queue_buf(c, &b);
    pgf_buf_free(&b);
}

/* "{1,2,3}" from a one-dimensional binary array of int4/oid/int8 (what
 * asyncpg sends for its type introspection's oid[]); NULL if malformed. */
static char *array_text(const uint8_t *v, int32_t len)
{
    if (len < 12)
        return NULL;
    int32_t ndim = (int32_t)pgf_rd_be32(v);
    if (ndim == 0)
        return strdup("{}");
    if (ndim != 1 || len < 20)
        return NULL;
    int32_t n = (int32_t)pgf_rd_be32(v + 12);
    if (n < 0 || n > 100000)
        return NULL;
    pgf_buf b = PGF_BUF_INIT;
    pgf_buf_put(&b, "{", 1);
    const uint8_t *p = v + 20, *end = v + len;
    for (int32_t i = 0; i < n; i++) {
        if (end - p < 4)
            goto bad;
        int32_t el = (int32_t)pgf_rd_be32(p);
        p += 4;
        if (el != 4 && el != 8)
            goto bad; /* NULL elements and other widths: not an int array */
        if (end - p < el)
            goto bad;
        if (el == 4)
            pgf_buf_printf(&b, "%s%u", i ? "," : "", pgf_rd_be32(p));
        else
            pgf_buf_printf(&b, "%s%lld", i ? "," : "",
                           (long long)((uint64_t)pgf_rd_be32(p) << 32 | pgf_rd_be32(p + 4)));
        p += el;
    }
    pgf_buf_put(&b, "}", 2);
    if (b.failed)
        goto bad;
    return (char *)b.data;
bad:
    pgf_buf_free(&b);
    return NULL;
}

/* Text form of a bound parameter (binary int2/int4/int8/float8 and int
 * arrays decoded). */
static char *param_text(const uint8_t *v, int32_t len, bool binary, uint32_t type)
{
    char tmp[64];
    if (!binary)
        return strndup((const char *)v, (size_t)len);
    if (type == 1028 || type == 1007 || type == 1016) { /* oid[], int4[], int8[] */
        char *t = array_text(v, len);
        if (t != NULL)
            return t;
    }
    if (len == 2) {
        snprintf(tmp, sizeof tmp, "%d", (int16_t)pgf_rd_be16(v));
    } else if (len == 4 && type != 700) {
        snprintf(tmp, sizeof tmp, "%d", (int32_t)pgf_rd_be32(v));
    } else if (len == 8) {
        uint64_t u = (uint64_t)pgf_rd_be32(v) << 32 | pgf_rd_be32(v + 4);
        if (type == 701) {
            double d;
            memcpy(&d, &u, sizeof d);
            snprintf(tmp, sizeof tmp, "%.17g", d);
        } else {
            snprintf(tmp, sizeof tmp, "%lld", (long long)(int64_t)u);
        }
    } else {
        return strndup((const char *)v, (size_t)len);
    }
    return strdup(tmp);
}

static void handle_bind(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_bind_msg bm;
    if (pgf_proto_parse_bind(m, &bm) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    prepared *st = find_stmt(c, bm.stmt);
    if (st == NULL) {
        char msg[200];
        if (bm.stmt[0] == '\0')
            snprintf(msg, sizeof msg, "unnamed prepared statement does not exist");
        else
            snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", bm.stmt);
        ext_error(c, "26000", msg);
        return;
    }
    if (bm.nparams != st->nparams) {
        char msg[200];
        snprintf(msg, sizeof msg,
                 "bind message supplies %u parameters, but prepared statement \"%s\" requires %u",
                 bm.nparams, bm.stmt, st->nparams);
        ext_error(c, "08P01", msg);
        return;
    }
    portal *old = find_portal(c, bm.portal);
    if (old != NULL)
        drop_portal(c, old);
    if (c->nportals >= 1024) {
        ext_error(c, "54000", "too many portals in the pgfault fake server");
        return;
    }
    portal *n = realloc(c->portals, (size_t)(c->nportals + 1) * sizeof *n);
    if (n == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    c->portals = n;
    portal *p = &c->portals[c->nportals++];
    memset(p, 0, sizeof *p);
    p->name = strdup(bm.portal);
    p->query = strdup(st->query);
    p->nparams = bm.nparams;
    p->params = calloc(bm.nparams ? bm.nparams : 1, sizeof *p->params);
    bool oom = p->name == NULL || p->query == NULL || p->params == NULL;
    /* The parameter format codes sit right after the two names. */
    const uint8_t *fmt = m->body + strlen(bm.portal) + 1 + strlen(bm.stmt) + 1 + 2;
    for (int i = 0; i < bm.nparams && !oom; i++) {
        if (bm.values[i] == NULL)
            continue;
        int16_t f = bm.nformats == 0   ? 0
                    : bm.nformats == 1 ? (int16_t)pgf_rd_be16(fmt)
                                       : (int16_t)pgf_rd_be16(fmt + 2 * i);
        uint32_t type = st->types != NULL && i < (int)st->ntypes && st->types[i] != 0
                            ? st->types[i]
                            : pgf_sql_param_type(st->query, i + 1);
        p->params[i] = param_text(bm.values[i], bm.lens[i], f == 1, type);
        oom = p->params[i] == NULL;
    }
    /* Result format codes follow the parameter values. */
    if (!oom && bm.nresult_formats > 0) {
        p->formats = calloc(bm.nresult_formats, sizeof *p->formats);
        oom = p->formats == NULL;
        if (!oom) {
            const uint8_t *q = m->body + m->body_len - 2 * (size_t)bm.nresult_formats;
            for (int i = 0; i < bm.nresult_formats; i++)
                p->formats[i] = (int16_t)pgf_rd_be16(q + 2 * i);
            p->nformats = bm.nresult_formats;
        }
    }
    if (oom) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_BIND_COMPLETE);
    pgf__conn_queue_buf(c, &b);
    pgf_buf_free(&b);
}

static void handle_describe(pgf__conn *c, const pgf_fe_msg *m)
{
    char kind;
    const char *name;
    if (pgf_proto_parse_describe_close(m, &kind, &name) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_sql_result r;
    if (kind == 'S') {
        prepared *st = find_stmt(c, name);
        if (st == NULL) {
            char msg[200];
            snprintf(msg, sizeof msg, "prepared statement \"%s\" does not exist", name);
            ext_error(c, "26000", msg);
            goto out;
        }
        uint32_t oids[PGF_PROTO_MAX_BIND_PARAMS];
        for (int i = 0; i < st->nparams; i++)
            oids[i] = st->types != NULL && i < st->ntypes && st->types[i] != 0
                          ? st->types[i]
                          : pgf_sql_param_type(st->query, i + 1);
        pgf_msg_parameter_description(&b, oids, st->nparams);
        pgf_sql_describe(&c->sql, st->query, strlen(st->query), &r);
        if (r.kind == PGF_SQL_ERROR) {
            pgf_buf_reset(&b);
            ext_error(c, r.error.sqlstate, r.error.message);
            goto out;
        }
        if (r.kind == PGF_SQL_ROWS || r.kind == PGF_SQL_SLEEP)
            build_row_description(&b, &r, NULL, 0);
        else
            pgf_msg_empty(&b, PGF_BE_NO_DATA);
    } else {
        portal *p = find_portal(c, name);
        if (p == NULL) {
            char msg[200];
            snprintf(msg, sizeof msg, "portal \"%s\" does not exist", name);
            ext_error(c, "34000", msg);
            goto out;
        }
        pgf_sql_describe(&c->sql, p->query, strlen(p->query), &r);
        if (r.kind == PGF_SQL_ERROR) {
            ext_error(c, r.error.sqlstate, r.error.message);
            goto out;
        }
        if (r.kind == PGF_SQL_ROWS || r.kind == PGF_SQL_SLEEP) {
            build_row_description(&b, &r, p->formats, p->nformats);
            pgf__conn_queue_buf(c, &b);
            pgf_buf_reset(&b);
        } else {
            pgf_msg_empty(&b, PGF_BE_NO_DATA);
        }
    }
    if (b.len > 0)
        pgf__conn_queue_buf(c, &b);
out:
    pgf_buf_free(&b);
}

static void handle_execute(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_execute_msg em;
    if (pgf_proto_parse_execute(m, &em) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    portal *p = find_portal(c, em.portal);
    if (p == NULL) {
        char msg[200];
        snprintf(msg, sizeof msg, "portal \"%s\" does not exist", em.portal);
        ext_error(c, "34000", msg);
        return;
    }
    atomic_fetch_add(&c->srv->stats.queries, 1);
    clear_exec(c);
    c->exec_query = strdup(p->query);
    if (p->nformats > 0)
        c->cur_formats = malloc(p->nformats * sizeof *c->cur_formats);
    if (c->exec_query == NULL || (p->nformats > 0 && c->cur_formats == NULL)) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (p->nformats > 0)
        memcpy(c->cur_formats, p->formats, p->nformats * sizeof *c->cur_formats);
    c->cur_nformats = p->nformats;
    c->cur_query = c->exec_query;
    pgf__conn_event(c, "query", NULL);
    if (pgf__conn_fault_point(c, PGF_PHASE_QUERY, m->type, NULL, 0) == STOP) {
        if (stopped(c) == Q_ERROR)
            c->skip_to_sync = true;
        return;
    }
    /* One statement per portal, as PostgreSQL requires in the extended protocol. */
    pgf_sql_result r;
    size_t len = strlen(p->query);
    while (len > 0 &&
           (p->query[len - 1] == ';' || p->query[len - 1] == ' ' || p->query[len - 1] == '\n'))
        len--;
    c->sql.now_us = pgf__server_wall_us(c->srv);
    pgf_sql_exec(&c->sql, p->query, len, (const char *const *)p->params, p->nparams, &r);
    int ret = emit_result(c, &r, false);
    if (ret != Q_SLEEP) /* a sleeping result moved to c->sleep_res */
        pgf_sql_result_release(&r);
    if (ret == Q_SLEEP) {
        c->extended_sleep = true;
        /* the result's formats are kept in cur_formats (a copy) */
    } else if (ret == Q_ERROR) {
        c->skip_to_sync = true;
    }
}

static void handle_close_msg(pgf__conn *c, const pgf_fe_msg *m)
{
    char kind;
    const char *name;
    if (pgf_proto_parse_describe_close(m, &kind, &name) != 0) {
        ext_error(c, "08P01", "insufficient data left in message");
        return;
    }
    if (kind == 'S') {
        prepared *st = find_stmt(c, name);
        if (st)
            drop_stmt(c, st);
    } else {
        portal *p = find_portal(c, name);
        if (p)
            drop_portal(c, p);
    }
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_empty(&b, PGF_BE_CLOSE_COMPLETE);
    pgf__conn_queue_buf(c, &b);
    pgf_buf_free(&b);
}

/* ------------------------------------------------------------------ */
/* dispatch of a message in the query cycle                           */

void pgf__conn_handle_ready(pgf__conn *c, const pgf_fe_msg *m)
{
    if (m->type == PGF_FE_TERMINATE) {
        c->terminated = true;
        pgf__conn_event(c, "terminated", NULL);
        if (pgf__conn_fault_point(c, PGF_PHASE_TERMINATE, m->type, NULL, 0) == GO)
            pgf__conn_queue_close(c, CK_FIN);
        return;
    }
    if (c->skip_to_sync && m->type != PGF_FE_SYNC)
        return;
    switch (m->type) {
    case PGF_FE_QUERY:
        handle_query(c, m);
        return;
    case PGF_FE_PARSE:
        handle_parse(c, m);
        return;
    case PGF_FE_BIND:
        handle_bind(c, m);
        return;
    case PGF_FE_DESCRIBE:
        handle_describe(c, m);
        return;
    case PGF_FE_EXECUTE:
        handle_execute(c, m);
        return;
    case PGF_FE_CLOSE:
        handle_close_msg(c, m);
        return;
    case PGF_FE_FLUSH:
        return; /* output is flushed after every batch of input anyway */
    case PGF_FE_COPY_DATA:
    case PGF_FE_COPY_DONE:
    case PGF_FE_COPY_FAIL:
        return; /* outside COPY PostgreSQL accepts and ignores these */
    case PGF_FE_SYNC: {
        c->skip_to_sync = false;
        portal *p = find_portal(c, "");
        if (p != NULL)
            drop_portal(c, p);
        send_ready(c);
        return;
    }
    default: {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[64];
        snprintf(msg, sizeof msg, "invalid frontend message type %d", m->type);
        pgf__conn_send_fatal(c, "08P01", msg);
        return;
    }
    }
}
