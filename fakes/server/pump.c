/* pump.c - the byte pump of a fake-server connection (like pgbouncer's
 * sbuf.c): input is read into a buffer and handed to conn.c's framing;
 * output is a queue of chunks, each with a not-before time and an optional
 * close marker, so delays, drips, stalls, truncation, FIN and RST all happen
 * at an exact byte position without blocking the loop. It knows bytes and
 * chunks, not protocol messages.
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
/* output queue                                                        */

static chunk *chunk_new(pgf__conn *c, uint64_t not_before)
{
    chunk *k = calloc(1, sizeof *k);
    if (k == NULL)
        return NULL;
    k->not_before = not_before;
    pgf_buf_init(&k->data);
    if (c->out_tail)
        c->out_tail->next = k;
    else
        c->out_head = k;
    c->out_tail = k;
    return k;
}

void pgf__conn_queue_raw(pgf__conn *c, const uint8_t *p, size_t n)
{
    if (c->out_closed || c->state == ST_CLOSED || n == 0)
        return;
    chunk *k = c->out_tail;
    if (k == NULL || k->close != CK_NONE || k->off > 0)
        k = chunk_new(c, 0);
    if (k == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    pgf_buf_put(&k->data, p, n);
    c->out_bytes += n;
}

void pgf__conn_queue_close(pgf__conn *c, enum close_kind how)
{
    if (c->out_closed || c->state == ST_CLOSED)
        return;
    chunk *k = chunk_new(c, 0);
    if (k == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    k->close = how;
    c->out_closed = true;
}

void pgf__conn_queue_delay(pgf__conn *c, uint32_t ms)
{
    if (c->out_closed)
        return;
    chunk_new(c, pgf__server_now(c->srv) + PGF_MS_NS(ms));
}

/* Queue one complete backend message, honouring a pending truncation. */
void pgf__conn_queue_msg(pgf__conn *c, const uint8_t *p, size_t n)
{
    if (c->trunc_next_bytes >= 0) {
        size_t keep = (size_t)c->trunc_next_bytes < n ? (size_t)c->trunc_next_bytes : n;
        c->trunc_next_bytes = -1;
        pgf__conn_queue_raw(c, p, keep);
        pgf__conn_queue_close(c, c->trunc_reset ? CK_RST : CK_FIN);
        return;
    }
    if (c->trunc_msgs > 0) {
        pgf__conn_queue_raw(c, p, n);
        if (--c->trunc_msgs == 0)
            pgf__conn_queue_close(c, c->trunc_reset ? CK_RST : CK_FIN);
        return;
    }
    pgf__conn_queue_raw(c, p, n);
}

void pgf__conn_queue_buf(pgf__conn *c, pgf_buf *b)
{
    if (b->failed) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    pgf__conn_queue_msg(c, b->data, b->len);
}

/* ------------------------------------------------------------------ */
/* closing                                                             */

static void free_events(pgf__conn *c)
{
    struct event **evs[] = {&c->rev, &c->wev};
    for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
        if (*evs[i]) {
            event_free(*evs[i]);
            *evs[i] = NULL;
        }
    pgf_timer **tms[] = {&c->wtimer,   &c->stall_timer,  &c->sleep_timer,
                         &c->deadline, &c->resume_timer, &c->idle_timer};
    for (size_t i = 0; i < sizeof tms / sizeof tms[0]; i++) {
        pgf_timer_free(*tms[i]);
        *tms[i] = NULL;
    }
}

void pgf__conn_close(pgf__conn *c, enum close_kind how, const char *why)
{
    if (c->state == ST_CLOSED)
        return;
    pgf_log_debug("[conn %llu %s] close (%s): %s", (unsigned long long)c->id,
                  pgf__conn_state_name(c->state), how == CK_RST ? "reset" : "fin", why);
    pgf__conn_note(c, PGF_CONN_NOTE_CLOSED, false, why);
    pgf__conn_event(c, "closed", why);
    free_events(c);
    if (c->fd >= 0) {
        if (how == CK_RST) {
            struct linger lg = {1, 0};
            setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        } else {
            /* FIN first; unread input at close(2) would turn it into an RST. */
            shutdown(c->fd, SHUT_WR);
            char sink[4096];
            while (read(c->fd, sink, sizeof sink) > 0)
                ;
        }
        close(c->fd);
        c->fd = -1;
    }
    pgf__conn_set_state(c, ST_CLOSED);
    if (c->counted_backend) {
        pgf__server_release_backend(c->srv);
        c->counted_backend = false;
    }
    atomic_fetch_sub(&c->srv->stats.active, 1);
    atomic_fetch_add(&c->srv->stats.closed, 1);
    pgf__server_reap(c);
}

void pgf__conn_abort(pgf__conn *c)
{
    pgf__conn_close(c, CK_FIN, "server stopping");
}

void pgf__conn_free(pgf__conn *c)
{
    if (c == NULL)
        return;
    free_events(c);
    if (c->fd >= 0)
        close(c->fd);
    pgf_buf_free(&c->in);
    for (chunk *k = c->out_head; k;) {
        chunk *n = k->next;
        pgf_buf_free(&k->data);
        free(k);
        k = n;
    }
    for (int i = 0; i < c->nstmts; i++) {
        free(c->stmts[i].name);
        free(c->stmts[i].query);
        free(c->stmts[i].types);
    }
    free(c->stmts);
    for (int i = 0; i < c->nportals; i++) {
        portal *p = &c->portals[i];
        free(p->name);
        free(p->query);
        for (int j = 0; j < p->nparams; j++)
            free(p->params[j]);
        free(p->params);
        free(p->formats);
    }
    free(c->portals);
    free(c->q_text);
    free(c->exec_query);
    free(c->cur_formats);
    free(c->q_off);
    free(c->q_len);
    free(c->user);
    free(c->database);
    free(c->app);
    free(c->scram);
    if (c->sleep_res != NULL)
        pgf_sql_result_release(c->sleep_res);
    free(c->sleep_res);
    pgf_sql_session_free(&c->sql);
    if (c->fc)
        pgf_fault_conn_free(c->fc);
    free(c);
}

/* ------------------------------------------------------------------ */
/* the byte pump                                                       */

static void flush_queue(pgf__conn *c)
{
    while (c->state != ST_CLOSED && !c->stalled && c->out_head != NULL) {
        chunk *k = c->out_head;
        uint64_t now = pgf__server_now(c->srv);
        if (k->not_before > now) {
            pgf_timer_arm(c->wtimer, k->not_before - now);
            return;
        }
        if (k->off < k->data.len) {
            size_t n = k->data.len - k->off;
            if (c->drip_slice > 0 && n > c->drip_slice)
                n = c->drip_slice;
            ssize_t w = send(c->fd, k->data.data + k->off, n, MSG_NOSIGNAL);
            if (w < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    event_add(c->wev, NULL);
                    return;
                }
                pgf__conn_close(c, CK_RST, strerror(errno));
                return;
            }
            k->off += (size_t)w;
            c->out_bytes -= (size_t)w;
            if (c->drip_slice > 0 && k->off < k->data.len) {
                k->not_before = now + PGF_MS_NS(c->drip_ms);
                continue;
            }
            if (k->off < k->data.len)
                continue;
        }
        /* chunk fully written */
        enum close_kind ck = k->close;
        c->out_head = k->next;
        if (c->out_head == NULL)
            c->out_tail = NULL;
        pgf_buf_free(&k->data);
        free(k);
        if (ck == CK_SHUT_WR) {
            shutdown(c->fd, SHUT_WR);
            c->ignore_input = true;
            if (c->peer_eof) { /* both directions are done */
                pgf__conn_close(c, CK_FIN, "client closed the connection");
                return;
            }
        } else if (ck != CK_NONE) {
            pgf__conn_close(c, ck, "as queued");
            return;
        }
    }
}

void pgf__conn_flush(pgf__conn *c)
{
    flush_queue(c);
    /* Backpressure released: go on from the loop, not from here (flush runs
     * inside handlers, e.g. a stall fault). */
    if (c->state != ST_CLOSED && c->out_blocked && c->out_bytes <= PGF_CONN_OUT_LOW) {
        c->out_blocked = false;
        pgf__conn_resume_later(c);
    }
}

void pgf__conn_update_reading(pgf__conn *c)
{
    if (c->state == ST_CLOSED || c->rev == NULL)
        return;
    /* A stall fault (possibly endless) keeps reading, so a client that
     * leaves is still seen; the 2 x PGF_PROTO_MAX_MSG_LEN backstop in
     * on_read bounds it. */
    bool stuck = c->busy || c->running || c->out_blocked || c->out_closed;
    bool want = !c->peer_eof && !c->out_blocked && !(stuck && c->in.len >= PGF_CONN_IN_PAUSE);
    if (want == c->reading)
        return;
    if (want)
        event_add(c->rev, NULL);
    else
        event_del(c->rev);
    c->reading = want;
}

void pgf__conn_on_write(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pgf_sim_activity();
    pgf__conn_flush(arg);
}

void pgf__conn_on_wtimer(void *arg)
{
    pgf__conn_flush(arg);
}

void pgf__conn_on_read(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    pgf__conn *c = arg;
    pgf_sim_activity();
    /* Read into a per-thread scratch buffer and keep only what arrived:
     * an idle connection then holds no 16 KB input buffer. */
    static _Thread_local uint8_t scratch[16384];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = recv(fd, scratch, sizeof scratch, 0);
        if (n > 0) {
            if (c->ignore_input)
                continue;
            pgf_buf_put(&c->in, scratch, (size_t)n);
            if (c->in.failed) {
                pgf__conn_close(c, CK_RST, "out of memory");
                return;
            }
            /* Bound what a stalled or busy connection buffers. */
            if (c->in.len > 2 * PGF_PROTO_MAX_MSG_LEN) {
                pgf__conn_close(c, CK_RST, "input buffer limit");
                return;
            }
            if ((size_t)n < sizeof scratch)
                break;
            continue;
        }
        if (n == 0) {
            /* PostgreSQL sees EOF only when it next reads: what is running
             * finishes and its result is sent (a half-closed client still
             * reads it); pgf__conn_process_input closes after that. */
            c->peer_eof = true;
            break;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            break;
        pgf__conn_close(c, CK_RST, strerror(errno));
        return;
    }
    pgf__conn_process_input(c);
    if (c->state != ST_CLOSED)
        pgf__conn_flush(c);
}
