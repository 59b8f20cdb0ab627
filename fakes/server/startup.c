/* startup.c - startup packet, SSL/GSS negotiation, CancelRequest and
 * authentication (trust, password, md5, SCRAM-SHA-256) of a fake-server
 * connection, as PostgreSQL 15 answers them, up to ReadyForQuery.
 */
#include <ctype.h>
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
/* startup and authentication                                          */

static const pgf__user *find_user(pgf_server *s, const char *name)
{
    for (int i = 0; i < s->nusers; i++)
        if (strcmp(s->users[i].name, name) == 0)
            return &s->users[i];
    return NULL;
}

static bool database_ok(pgf_server *s, const char *db)
{
    if (s->ndatabases == 0)
        return true;
    for (int i = 0; i < s->ndatabases; i++)
        if (strcmp(s->databases[i], db) == 0)
            return true;
    return false;
}

/* The method an unknown role is challenged with: PostgreSQL picks it from
 * the pg_hba line; the fake's "hba" is the first user's method. */
static pgf_auth_method hba_method(pgf_server *s)
{
    return s->nusers > 0 ? s->users[0].method : PGF_AUTH_METHOD_TRUST;
}

static void finish_startup(pgf__conn *c)
{
    /* AuthenticationOk, then role/database checks, as PostgreSQL's
     * InitPostgres does them after authentication. */
    pgf_buf b = PGF_BUF_INIT;
    pgf_msg_auth(&b, PGF_AUTH_OK, NULL, 0);
    int r = pgf__conn_send_at(c, PGF_PHASE_AUTH_OK, &b);
    pgf_buf_free(&b);
    if (r == STOP)
        return;
    if (c->u == NULL) {
        char msg[256];
        snprintf(msg, sizeof msg, "role \"%s\" does not exist", c->user);
        atomic_fetch_add(&c->srv->stats.auth_failed, 1);
        pgf__conn_note(c, PGF_CONN_NOTE_LOGIN, false, "28000");
        pgf__conn_send_fatal(c, "28000", msg);
        return;
    }
    if (!database_ok(c->srv, c->database)) {
        char msg[256];
        snprintf(msg, sizeof msg, "database \"%s\" does not exist", c->database);
        pgf__conn_send_fatal(c, "3D000", msg);
        return;
    }
    atomic_fetch_add(&c->srv->stats.auth_ok, 1);
    pgf__conn_note(c, PGF_CONN_NOTE_LOGIN, true, NULL);
    pgf__conn_set_state(c, ST_READY);
    if (c->deadline)
        pgf_timer_cancel(c->deadline);

    /* The 13 ParameterStatus messages, in PostgreSQL's order (sql.c's table). */
    const char *name;
    for (int i = 0; (name = pgf_sql_reported_guc_at(i)) != NULL; i++) {
        pgf_buf_reset(&b);
        pgf_msg_parameter_status(&b, name, pgf_sql_get_guc(&c->sql, name));
        r = i == 0 ? pgf__conn_send_at(c, PGF_PHASE_PARAMETER_STATUS, &b)
                   : (pgf__conn_queue_buf(c, &b), GO);
        if (r == STOP || c->out_closed) {
            pgf_buf_free(&b);
            return;
        }
    }
    pgf_buf_reset(&b);
    pgf_msg_backend_key(&b, c->pid, c->key);
    pgf__conn_queue_buf(c, &b);
    c->key_sent = true; /* from now on fault records name the backend pid */
    pgf__conn_event(c, "authenticated", NULL);
    pgf_buf_reset(&b);
    pgf_msg_ready(&b, 'I');
    c->ready_once = true;
    c->last_txn = 'I';
    r = pgf__conn_send_at(c, PGF_PHASE_READY, &b);
    pgf_buf_free(&b);
    if (r == GO)
        pgf__conn_arm_idle_timeout(c); /* idle_session_timeout from the startup options */
    if (r == GO && c->state != ST_CLOSED)
        pgf__conn_fault_point(c, PGF_PHASE_IDLE, 0, NULL, 0);
}

static void begin_auth(pgf__conn *c)
{
    pgf_auth_method m = c->u ? c->u->method : hba_method(c->srv);
    if (c->u == NULL && m == PGF_AUTH_METHOD_MD5)
        m = PGF_AUTH_METHOD_SCRAM; /* PostgreSQL's mock auth for md5 lines is SCRAM */
    pgf_buf b = PGF_BUF_INIT;
    switch (m) {
    case PGF_AUTH_METHOD_TRUST:
        pgf_buf_free(&b);
        finish_startup(c);
        return;
    case PGF_AUTH_METHOD_PASSWORD:
        pgf_msg_auth(&b, PGF_AUTH_CLEARTEXT, NULL, 0);
        pgf__conn_set_state(c, ST_AUTH_PASSWORD);
        break;
    case PGF_AUTH_METHOD_MD5:
        for (int i = 0; i < 4; i++)
            c->md5_salt[i] = (uint8_t)pgf_rng_next(&c->rng);
        pgf_msg_auth(&b, PGF_AUTH_MD5, c->md5_salt, 4);
        pgf__conn_set_state(c, ST_AUTH_MD5);
        break;
    case PGF_AUTH_METHOD_SCRAM: {
        static const char *const mechs[] = {"SCRAM-SHA-256"};
        pgf_msg_auth_sasl(&b, mechs, 1);
        pgf__conn_set_state(c, ST_AUTH_SASL_INIT);
        break;
    }
    }
    pgf__conn_send_at(c, PGF_PHASE_AUTH_REQUEST, &b);
    pgf_buf_free(&b);
}

#define PGF_OPTIONS_MAX_WORDS 32

/* The startup packet's "options" as PostgreSQL reads them (pg_split_opts,
 * process_postgres_switches): words split on unescaped spaces, a backslash
 * escaping the next character; "-c name=value", "-cname=value" and
 * "--name=value" set a parameter (checked as SET checks it). Anything else
 * is refused as PostgreSQL refuses it. False with *bad the error. */
static bool apply_options(pgf__conn *c, const char *opts, pgf_sql_result *bad)
{
    char words[PGF_OPTIONS_MAX_WORDS][256];
    int n = 0;
    for (const char *p = opts; *p != '\0';) {
        while (isspace((unsigned char)*p))
            p++;
        if (*p == '\0')
            break;
        size_t len = 0;
        bool fits = n < PGF_OPTIONS_MAX_WORDS;
        while (*p != '\0' && !isspace((unsigned char)*p)) {
            if (*p == '\\' && p[1] != '\0')
                p++;
            if (fits && len + 1 < sizeof words[0])
                words[n][len++] = *p;
            else
                fits = false;
            p++;
        }
        if (!fits) { /* refused, never cut short: a limit of the fake's, not PostgreSQL's */
            memset(bad, 0, sizeof *bad);
            bad->kind = PGF_SQL_ERROR;
            bad->error.sqlstate = "54000";
            snprintf(bad->err_message, sizeof bad->err_message,
                     "pgfault fake server: options has more than %d words or a word longer "
                     "than %zu bytes",
                     PGF_OPTIONS_MAX_WORDS, sizeof words[0] - 1);
            return false;
        }
        words[n++][len] = '\0';
    }
    for (int i = 0; i < n; i++) {
        const char *set = NULL;
        if (strcmp(words[i], "-c") == 0 && i + 1 < n)
            set = words[++i];
        else if (strncmp(words[i], "-c", 2) == 0 && words[i][2] != '\0')
            set = words[i] + 2;
        else if (strncmp(words[i], "--", 2) == 0 && words[i][2] != '\0')
            set = words[i] + 2;
        memset(bad, 0, sizeof *bad);
        if (set == NULL) {
            bad->kind = PGF_SQL_ERROR;
            bad->error.sqlstate = "42601";
            snprintf(bad->err_message, sizeof bad->err_message,
                     "invalid command-line argument for server process: %.180s", words[i]);
            bad->error.hint = "Try \"postgres --help\" for more information.";
            return false;
        }
        char name[128];
        const char *eq = strchr(set, '=');
        if (eq == NULL) {
            bad->kind = PGF_SQL_ERROR;
            bad->error.sqlstate = "42601";
            snprintf(bad->err_message, sizeof bad->err_message, "%s%.180s requires a value",
                     words[i][1] == '-' ? "--" : "-c ", set); /* a message: a long word is cut */
            return false;
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - set), set);
        for (char *q = name; *q; q++)
            if (*q == '-')
                *q = '_'; /* PostgreSQL accepts --lock-timeout for lock_timeout */
        if (!pgf_sql_set_guc_checked(&c->sql, name, eq + 1, bad))
            return false;
    }
    return true;
}

void pgf__conn_handle_startup(pgf__conn *c, const pgf_fe_msg *m)
{
    pgf_server *s = c->srv;
    if (m->code == PGF_PROTO_SSL_REQUEST || m->code == PGF_PROTO_GSSENC_REQUEST) {
        if (pgf__conn_fault_point(c, PGF_PHASE_SSL_REQUEST, 0, NULL, 0) == STOP)
            return;
        if (c->ssl_answered) {
            /* PostgreSQL: a second negotiation request is an unsupported protocol. */
            char msg[128];
            snprintf(msg, sizeof msg,
                     "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0",
                     m->code >> 16, m->code & 0xffff);
            pgf__conn_send_fatal(c, "0A000", msg);
            return;
        }
        c->ssl_answered = true;
        /* through pgf__conn_queue_msg, so a truncate at ssl-request cuts this answer */
        pgf__conn_queue_msg(c, (const uint8_t *)"N", 1);
        return;
    }
    if (m->code == PGF_PROTO_CANCEL_REQUEST) {
        pgf_cancel_req cr;
        atomic_fetch_add(&s->stats.cancel_requests, 1);
        if (pgf_proto_parse_cancel(m, &cr) != 0) {
            pgf__conn_close(c, CK_FIN, "malformed cancel request");
            return;
        }
        if (pgf__conn_fault_point(c, PGF_PHASE_CANCEL, 0, NULL, 0) == STOP)
            return;
        pgf__server_cancel(c->loop, cr.pid, cr.key);
        /* PostgreSQL answers nothing and closes. */
        pgf__conn_queue_close(c, CK_FIN);
        return;
    }
    uint16_t major = (uint16_t)(m->code >> 16), minor = (uint16_t)(m->code & 0xffff);
    if (major != 3) {
        char msg[160];
        snprintf(msg, sizeof msg,
                 "FATAL:  unsupported frontend protocol %u.%u: server supports 3.0 to 3.0\n", major,
                 minor);
        pgf_buf b = PGF_BUF_INIT;
        if (major < 3) {
            pgf_msg_v2_error(&b, msg);
            pgf__conn_queue_buf(c, &b);
            pgf__conn_queue_close(c, CK_FIN);
        } else {
            snprintf(msg, sizeof msg,
                     "unsupported frontend protocol %u.%u: server supports 3.0 to 3.0", major,
                     minor);
            pgf__conn_send_fatal(c, "0A000", msg);
        }
        pgf_buf_free(&b);
        return;
    }
    pgf_startup st;
    const char *err = NULL;
    if (pgf_proto_parse_startup(m, &st, &err) != 0) {
        atomic_fetch_add(&s->stats.protocol_errors, 1);
        pgf__conn_send_fatal(c, "08P01", err ? err : "invalid startup packet layout");
        return;
    }
    const char *user = pgf_startup_get(&st, "user");
    const char *db = pgf_startup_get(&st, "database");
    const char *app = pgf_startup_get(&st, "application_name");
    c->user = strdup(user ? user : "");
    c->database = strdup(db && *db ? db : (user ? user : ""));
    c->app = strdup(app ? app : "");
    if (c->user == NULL || c->database == NULL || c->app == NULL) {
        pgf__conn_close(c, CK_RST, "out of memory");
        return;
    }
    if (pgf__conn_fault_point(c, PGF_PHASE_STARTUP, 0, NULL, 0) == STOP)
        return;
    if (user == NULL || *user == '\0') {
        pgf__conn_send_fatal(c, "28000", "no PostgreSQL user name specified in startup packet");
        return;
    }
    if (!pgf__server_reserve_backend(s)) {
        pgf__conn_send_fatal(c, "53300", "sorry, too many clients already");
        return;
    }
    c->counted_backend = true;
    c->u = find_user(s, c->user);
    pgf_sql_session_init(&c->sql, c->user, c->database, c->u ? c->u->superuser : false);
    c->sql.pid = c->pid;
    c->sql.answers = c->srv->answers;

    /* _pq_. options and minor versions > 0: NegotiateProtocolVersion first. */
    const char *unknown_opts[PGF_PROTO_MAX_PARAMS];
    int nunknown = 0;
    pgf_sql_result bad; /* the first refused setting: FATAL after AuthenticationOk */
    bool have_bad = false;
    /* "options" first (-c name=value, --name=value), then the other
     * parameters, which win over it, as in PostgreSQL. */
    for (int i = 0; i < st.nparams; i++)
        if (strcmp(st.keys[i], "options") == 0 && !have_bad)
            have_bad = !apply_options(c, st.values[i], &bad);
    for (int i = 0; i < st.nparams; i++) {
        const char *k = st.keys[i];
        pgf_sql_result r;
        if (strncmp(k, "_pq_.", 5) == 0) {
            unknown_opts[nunknown++] = k;
        } else if (strcmp(k, "user") == 0 || strcmp(k, "database") == 0 ||
                   strcmp(k, "replication") == 0 || strcmp(k, "options") == 0) {
            continue;
        } else if (!pgf_sql_set_guc_checked(&c->sql, k, st.values[i], &r) && !have_bad) {
            bad = r;
            have_bad = true;
        }
    }
    pgf_sql_session_mark_defaults(&c->sql);
    if (minor > 0 || nunknown > 0) {
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_negotiate_protocol(&b, PGF_PROTO_V3, unknown_opts, nunknown);
        pgf__conn_queue_buf(c, &b);
        pgf_buf_free(&b);
    }
    if (have_bad) {
        /* PostgreSQL applies startup GUCs after authentication. */
        pgf_buf b = PGF_BUF_INIT;
        pgf_msg_auth(&b, PGF_AUTH_OK, NULL, 0);
        pgf__conn_queue_buf(c, &b);
        pgf_buf_free(&b);
        pgf__conn_send_error(c, "FATAL", bad.error.sqlstate, bad.err_message, NULL, bad.error.hint);
        pgf__conn_queue_close(c, CK_FIN);
        return;
    }
    pgf__conn_set_state(c, ST_STARTUP); /* begin_auth moves on */
    pgf__conn_note(c, PGF_CONN_NOTE_STARTUP, false, NULL);
    begin_auth(c);
}

void pgf__conn_handle_password(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *pw = NULL;
    if (m->type != PGF_FE_PASSWORD || pgf_proto_parse_password(m, &pw) != 0) {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[96];
        snprintf(msg, sizeof msg, "expected password response, got message type %d", m->type);
        pgf__conn_send_fatal(c, "08P01", msg);
        return;
    }
    if (pgf__conn_fault_point(c, PGF_PHASE_AUTH_RESPONSE, m->type, NULL, 0) == STOP)
        return;
    bool ok = false;
    if (c->u != NULL) {
        if (c->state == ST_AUTH_PASSWORD) {
            ok = pgf_auth_streq(pw, c->u->password);
        } else {
            char want[36];
            pgf_md5_response(c->user, c->u->password, c->md5_salt, want);
            ok = pgf_auth_streq(pw, want);
        }
    }
    if (!ok) {
        pgf__conn_auth_failed(c);
        return;
    }
    finish_startup(c);
}

void pgf__conn_handle_sasl(pgf__conn *c, const pgf_fe_msg *m)
{
    const char *err = NULL;
    if (m->type != PGF_FE_PASSWORD) {
        atomic_fetch_add(&c->srv->stats.protocol_errors, 1);
        char msg[96];
        snprintf(msg, sizeof msg, "expected SASL response, got message type %d", m->type);
        pgf__conn_send_fatal(c, "08P01", msg);
        return;
    }
    if (pgf__conn_fault_point(c, PGF_PHASE_AUTH_RESPONSE, m->type, NULL, 0) == STOP)
        return;
    pgf_buf out = PGF_BUF_INIT;
    pgf_buf msg = PGF_BUF_INIT;
    if (c->state == ST_AUTH_SASL_INIT) {
        const char *mech = NULL;
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (pgf_proto_parse_sasl_initial(m, &mech, &data, &dlen) != 0 ||
            strcmp(mech, "SCRAM-SHA-256") != 0) {
            pgf__conn_send_fatal(c, "08P01",
                                 "client selected an invalid SASL authentication mechanism");
            goto done;
        }
        uint8_t nonce[PGF_SCRAM_RAW_NONCE_LEN];
        for (size_t i = 0; i < sizeof nonce; i++)
            nonce[i] = (uint8_t)pgf_rng_next(&c->rng);
        free(c->scram);
        c->scram = calloc(1, sizeof *c->scram);
        if (c->scram == NULL) {
            pgf__conn_close(c, CK_RST, "out of memory");
            goto done;
        }
        c->scram->mock = c->u == NULL;
        if (c->scram->mock) {
            /* PostgreSQL's mock salt depends only on the role name and a
             * server secret, so probing cannot tell a missing role apart. */
            uint8_t seed[8];
            for (int i = 0; i < 8; i++)
                seed[i] = (uint8_t)(c->srv->seed >> (8 * i));
            pgf_scram_mock_salt(c->user, seed, sizeof seed, c->scram->mock_salt);
        }
        const pgf_scram_secret *sec = c->u ? &c->u->secret : NULL;
        if (pgf_scram_first(c->scram, sec, data, dlen, nonce, &out, &err) != 0) {
            pgf__conn_send_fatal(c, "08P01", err ? err : "malformed SCRAM message");
            goto done;
        }
        pgf_msg_auth(&msg, PGF_AUTH_SASL_CONTINUE, out.data, out.len);
        pgf__conn_set_state(c, ST_AUTH_SASL_FIN);
        pgf__conn_send_at(c, PGF_PHASE_SASL_CONTINUE, &msg);
    } else {
        const uint8_t *data = NULL;
        size_t dlen = 0;
        if (pgf_proto_parse_sasl_response(m, &data, &dlen) != 0) {
            pgf__conn_send_fatal(c, "08P01", "malformed SCRAM message");
            goto done;
        }
        if (c->scram == NULL) {
            pgf__conn_send_fatal(c, "08P01", "malformed SCRAM message");
            goto done;
        }
        int r = pgf_scram_final(c->scram, data, dlen, &out, &err);
        free(c->scram);
        c->scram = NULL;
        if (r == PGF_EAUTH || (r == 0 && c->u == NULL)) {
            pgf__conn_auth_failed(c);
            goto done;
        }
        if (r != 0) {
            pgf__conn_send_fatal(c, "08P01", err ? err : "malformed SCRAM message");
            goto done;
        }
        pgf_msg_auth(&msg, PGF_AUTH_SASL_FINAL, out.data, out.len);
        if (pgf__conn_send_at(c, PGF_PHASE_SASL_FINAL, &msg) == GO)
            finish_startup(c);
    }
done:
    pgf_buf_free(&out);
    pgf_buf_free(&msg);
}
