/* The SMTP session state machine (smtp_session.c) over a socketpair: the
 * test thread is the client, the session runs on its own thread. The hook
 * chain is a tiny fake defined here (it replaces chain.c at link time);
 * the queue is the real one in a temporary spool. */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <cmocka.h>
#include <files.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "chain.h"
#include "conn_priv.h"
#include "ctx_priv.h"
#include "generation.h"
#include "queue.h"
#include "scheduler.h"
#include "smtp_session.h"
#include "tls.h"

/* ---- the fake chain (and what the session calls beside it) ---- */

static modmta_verdict fake_connect_verdict;
static int fake_released, fake_queued, fake_disconnected, fake_submitted;
static int fake_addhdr;
static int fake_data_421; /* on_data answers 421 */
static char fake_served[32];
static int fake_aborted;
static int fake_stream;         /* the streaming fakes are on */
static char fake_stream_seen[256]; /* "H:name;" ... "E;" "B:size;" "Z;" */
static int fake_data_lines;     /* on_data rejects with a 3-line reply */

void generation_release(generation *g) { fake_released++; }
void scheduler_submit(scheduler *s, const char *id) { fake_submitted++; }

modmta_verdict
chain_connect(struct chain *ch, modmta_ctx *ctx)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_CONNECT, NULL, NULL, NULL);
    if (fake_connect_verdict == MODMTA_REJECT)
        modmta_reply(ctx, 554, "5.7.1", "go away");
    return fake_connect_verdict;
}

/* A hook's TEMPFAIL: 421 (the session ends) for a name or address
 * starting with "close", 451 for one starting with "busy"; else
 * CONTINUE. */
static modmta_verdict
fake_tempfail(modmta_ctx *ctx, const char *what)
{
    if (strncmp(what, "close", 5) == 0) {
        modmta_reply(ctx, 421, "4.7.0", "limit hit by %s", what);
        return MODMTA_TEMPFAIL;
    }
    if (strncmp(what, "busy", 4) == 0) {
        modmta_reply(ctx, 451, "4.3.0", "busy %s", what);
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_helo(struct chain *ch, modmta_ctx *ctx, const char *helo)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_HELO, NULL, NULL, NULL);
    if (strcmp(helo, "bad.example") == 0) {
        modmta_reply(ctx, 550, "5.7.1", "bad helo");
        return MODMTA_REJECT;
    }
    return fake_tempfail(ctx, helo);
}

modmta_verdict
chain_mail(struct chain *ch, modmta_ctx *ctx, const char *sender)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_MAIL, NULL, NULL, NULL);
    if (strncmp(sender, "bad", 3) == 0) {
        modmta_reply(ctx, 550, "5.7.1", "<%s>: Sender rejected", sender);
        return MODMTA_REJECT;
    }
    return fake_tempfail(ctx, sender);
}

modmta_verdict
chain_rcpt(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
           const struct config_limits *lim)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_RCPT, NULL, NULL, NULL);
    if (strncmp(rcpt, "unknown", 7) == 0) {
        modmta_reply(ctx, 550, "5.1.1", "<%s>: User unknown", rcpt);
        return MODMTA_REJECT;
    }
    if (fake_tempfail(ctx, rcpt) == MODMTA_TEMPFAIL)
        return MODMTA_TEMPFAIL;
    /* "list@..." expands to two members, and a module adds a copy
     * nobody is notified about (a bcc) */
    if (strncmp(rcpt, "list@", 5) == 0) {
        modmta_ctx_add_rcpt(ctx, "m1@mx.test");
        modmta_ctx_add_rcpt(ctx, "m2@mx.test");
        assert_int_equal(modmta_rcpt_add_flags(ctx, "archive@mx.test",
                                               MODMTA_RCPT_NO_DSN), 0);
        modmta_ctx_add_rcpt(ctx, "archive@mx.test");
        return MODMTA_ACCEPT;
    }
    /* "olist@..." is a list with its own owner (owner-NAME) */
    if (strncmp(rcpt, "olist@", 6) == 0) {
        modmta_ctx_add_rcpt(ctx, "m3@mx.test");
        modmta_ctx_set_rcpt_sender(ctx, "m3@mx.test", "owner-olist@mx.test");
        return MODMTA_ACCEPT;
    }
    modmta_ctx_add_rcpt(ctx, rcpt);
    return MODMTA_ACCEPT;
}

modmta_verdict
chain_data(struct chain *ch, modmta_ctx *ctx)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_DATA, NULL, NULL, NULL);
    if (fake_addhdr)
        assert_int_equal(modmta_hdr_add(ctx, "X-Fake", "yes"), 0);
    if (fake_data_421)
        return fake_tempfail(ctx, "close-data");
    if (fake_data_lines) {
        const char *lines[] = {"one", "two", "three"};

        assert_int_equal(modmta_reply_lines(ctx, 550, "5.7.1", lines, 3), 0);
        return MODMTA_REJECT;
    }
    return MODMTA_CONTINUE;
}

void chain_queued(struct chain *ch, modmta_ctx *ctx) { fake_queued++; }
void chain_abort(struct chain *ch, modmta_ctx *ctx) { fake_aborted++; }
int chain_streams(const struct chain *ch) { return fake_stream; }
size_t chain_count(const struct chain *ch) { return 1; }

static void
fake_seen(const char *fmt, const char *arg, long n)
{
    size_t len = strlen(fake_stream_seen);

    snprintf(fake_stream_seen + len, sizeof(fake_stream_seen) - len, fmt,
             arg != NULL ? arg : "", n);
}

modmta_verdict
chain_header(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
             const char *name, const char *value)
{
    fake_seen("H:%s;", name, 0);
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_eoh(struct chain *ch, modmta_ctx *ctx, unsigned char *done)
{
    fake_seen("E%s;", NULL, 0);
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_body(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
           const unsigned char *chunk, size_t len)
{
    if (chunk != NULL)
        fake_seen("B%s:%ld;", NULL, (long)len);
    else
        fake_seen("Z%s:%ld;", NULL, (long)modmta_body_size(ctx));
    return MODMTA_CONTINUE;
}

static char fake_auth[64]; /* "user/success" of the last chain_auth */

modmta_verdict
chain_auth(struct chain *ch, modmta_ctx *ctx, const char *user, int success)
{
    snprintf(fake_auth, sizeof(fake_auth), "%s/%d", user, success);
    return MODMTA_CONTINUE;
}
void chain_disconnect(struct chain *ch, modmta_ctx *ctx)
{
    fake_disconnected++;
}

void
chain_ehlo(struct chain *ch, modmta_ctx *ctx)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_EHLO, NULL, NULL, NULL);
    modmta_ehlo_add(ctx, "XFAKE-KW");
}

static modmta_verdict
fake_verb(void *inst, modmta_ctx *ctx, modmta_conn *conn, const char *args)
{
    return MODMTA_ACCEPT;
}

static const modmta_verb fake_verbs[] = {{"XFAKE", fake_verb}};

const modmta_verb *
chain_find_verb(struct chain *ch, const char *verb, void **inst_r)
{
    *inst_r = NULL;
    return strcmp(verb, "XFAKE") == 0 || strcmp(verb, "AUTH") == 0
               ? &fake_verbs[0] : NULL;
}

static modmta_verdict
fake_auth_verb(modmta_ctx *ctx, const char *args)
{
    if (strcmp(args, "good") == 0) {
        modmta_set_auth_user(ctx, "bob");
        modmta_reply(ctx, 235, "2.7.0", "ok");
        return MODMTA_ACCEPT;
    }
    if (strcmp(args, "bye") == 0) {
        modmta_reply(ctx, 421, "4.7.0", "too many");
        return MODMTA_TEMPFAIL;
    }
    modmta_set_auth_tried(ctx, "eve");
    modmta_reply(ctx, 535, "5.7.8", "bad");
    return MODMTA_REJECT;
}

modmta_verdict
chain_run_verb(struct chain *ch, modmta_ctx *ctx, modmta_conn *conn,
               const char *verb, const char *args)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, NULL, NULL, NULL);
    if (strcmp(verb, "AUTH") == 0) /* "good", "bad" or "bye" */
        return fake_auth_verb(ctx, args);
    modmta_reply(ctx, 250, "2.0.0", "fake verb ok %s", args);
    return MODMTA_ACCEPT;
}

/* A module's on_unknown: "VETO ..." refused with its own reply naming
 * the line, "LATER" tempfailed, anything else left to the core. */
modmta_verdict
chain_unknown(struct chain *ch, modmta_ctx *ctx, const char *line)
{
    (void)ch;
    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, NULL, NULL, NULL);
    if (strncmp(line, "VETO", 4) == 0) {
        modmta_reply(ctx, 554, "5.7.1", "vetoed %s", line);
        return MODMTA_REJECT;
    }
    if (strcmp(line, "LATER") == 0) {
        modmta_reply(ctx, 450, "4.7.1", "later");
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

int
chain_serve(struct chain *ch, const char *protocol, modmta_ctx *ctx,
            modmta_conn *conn)
{
    snprintf(fake_served, sizeof(fake_served), "%s", protocol);
    modmta_conn_printf(conn, "+OK fake\r\n");
    return 0;
}

/* ---- fixture ---- */

struct fx {
    char spool[64];
    char *domains[2];
    struct config cfg;
    struct config_listener lst;
    generation gen;
    queue *q;
    struct smtp_session_args a;
    volatile sig_atomic_t stop;
    int cfd;
    SSL_CTX *cctx;
    SSL *cssl;                 /* the client's TLS, once started */
    pthread_t t;
    char reply[8192];
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    modmta_err err;

    signal(SIGPIPE, SIG_IGN);
    modmta_test_tmpdir(fx->spool, sizeof(fx->spool), "test_smtp_sess");
    fx->q = queue_open(fx->spool, &err);
    assert_non_null(fx->q);
    fx->domains[0] = "mx.test";
    fx->cfg.hostname = "mx.test";
    fx->cfg.spool = fx->spool;
    fx->cfg.local_domains = fx->domains;
    fx->cfg.limits.message_size = 1000000;
    fx->cfg.limits.recipients = 100;
    fx->cfg.limits.command_timeout = 30;
    fx->cfg.limits.data_timeout = 30;
    fx->cfg.limits.errors = 20;
    fx->cfg.limits.max_hops = 50;
    fx->lst.name = "mx";
    fx->lst.protocol = "smtp";
    fx->lst.tls = TLS_NONE;
    fx->gen.cfg = &fx->cfg;
    fx->gen.refs = 1;
    fx->gen.host = modmta_host_new("core", "$", fx->cfg.hostname,
                                   fx->cfg.spool, fx->domains, 0);
    assert_non_null(fx->gen.host);
    fake_connect_verdict = MODMTA_CONTINUE;
    fake_released = fake_queued = fake_disconnected = fake_submitted = 0;
    fake_addhdr = 0;
    fake_data_421 = 0;
    fake_served[0] = '\0';
    fake_aborted = fake_stream = fake_data_lines = 0;
    fake_stream_seen[0] = '\0';
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    queue_close(fx->q);
    modmta_test_rmtree(fx->spool);
    modmta_host_free(fx->gen.host);
    if (fx->gen.tls != NULL)
        SSL_CTX_free(fx->gen.tls);
    SSL_free(fx->cssl);
    SSL_CTX_free(fx->cctx);
    free(fx);
    return 0;
}

static void *
session_main(void *arg)
{
    smtp_session_run(arg);
    return NULL;
}

/* Start the session; `early` is written before it runs. */
static void
start(struct fx *fx, const char *early)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)&fx->a.peer;
    struct timeval tv = {20, 0};
    int sv[2];

    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    setsockopt(sv[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    fx->cfd = sv[1];
    if (early != NULL)
        assert_true(send(fx->cfd, early, strlen(early), 0) > 0);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(40000);
    inet_pton(AF_INET, "127.0.0.1", &sin->sin_addr);
    fx->a.peerlen = sizeof(*sin);
    fx->a.gen = &fx->gen;
    fx->a.fd = sv[0];
    fx->a.listener = &fx->lst;
    fx->a.queue = fx->q;
    fx->a.shutting_down = &fx->stop;
    fx->a.session_id = "S1";
    fx->a.no_rdns = 1;
    assert_int_equal(pthread_create(&fx->t, NULL, session_main, &fx->a), 0);
}

/* Wait for the end of the session: 0 from recv (closed), then join. */
static void
finish(struct fx *fx)
{
    char c;

    if (fx->cssl != NULL)
        assert_true(SSL_read(fx->cssl, &c, 1) <= 0);
    else
        assert_int_equal(recv(fx->cfd, &c, 1, 0), 0);
    pthread_join(fx->t, NULL);
    close(fx->cfd);
    assert_int_equal(fake_released, 1);
}

/* Read one whole reply (all its lines) into fx->reply. */
static const char *
reply(struct fx *fx)
{
    size_t n = 0, bol = 0;
    char c;

    for (;;) {
        if (fx->cssl != NULL ? SSL_read(fx->cssl, &c, 1) != 1
                             : recv(fx->cfd, &c, 1, 0) != 1)
            fail_msg("connection closed; got \"%.*s\"", (int)n, fx->reply);
        fx->reply[n++] = c;
        assert_true(n < sizeof(fx->reply) - 1);
        if (c == '\n') {
            if (n - bol >= 4 && fx->reply[bol + 3] == ' ')
                break;
            bol = n;
        }
    }
    fx->reply[n] = '\0';
    return fx->reply;
}

static void
sendstr(struct fx *fx, const char *s)
{
    if (fx->cssl != NULL) {
        assert_int_equal(SSL_write(fx->cssl, s, (int)strlen(s)),
                         (int)strlen(s));
        return;
    }
    assert_int_equal(send(fx->cfd, s, strlen(s), 0), (ssize_t)strlen(s));
}

/* Send a command and check the start of the reply. */
static void
expect(struct fx *fx, const char *cmd, const char *prefix)
{
    if (cmd != NULL)
        sendstr(fx, cmd);
    reply(fx);
    if (strncmp(fx->reply, prefix, strlen(prefix)) != 0)
        fail_msg("after %s expected \"%s\", got \"%s\"",
                 cmd != NULL ? cmd : "(nothing)", prefix, fx->reply);
}

static int
count_cb(const queue_env *env, void *arg)
{
    (*(int *)arg)++;
    return 0;
}

static int
queued(struct fx *fx)
{
    int n = 0;

    queue_foreach(fx->q, count_cb, &n);
    return n;
}

/* The committed content of the message named in the last reply. */
static char *
content_of_reply(struct fx *fx, queue_env **env_r)
{
    char id[QUEUE_ID_MAX], path[512], *buf;
    const char *p = strstr(fx->reply, "queued as ");
    FILE *f;
    size_t n;

    assert_non_null(p);
    assert_int_equal(sscanf(p + 10, "%31[^\r]", id), 1);
    assert_int_equal(queue_load(fx->q, id, env_r), 0);
    assert_int_equal(queue_content_path(fx->q, id, path, sizeof(path)), 0);
    f = fopen(path, "rb");
    assert_non_null(f);
    buf = calloc(1, 65536);
    n = fread(buf, 1, 65535, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* ---- tests ---- */

static void
test_transaction(void **state)
{
    struct fx *fx = *state;
    queue_env *env;
    char *msg;

    start(fx, NULL);
    expect(fx, NULL, "220 mx.test ESMTP");
    expect(fx, "EHLO client.example\r\n", "250-mx.test\r\n");
    assert_non_null(strstr(fx->reply, "250-PIPELINING\r\n"));
    assert_non_null(strstr(fx->reply, "250-SIZE 1000000\r\n"));
    assert_non_null(strstr(fx->reply, "250-8BITMIME\r\n"));
    assert_non_null(strstr(fx->reply, "250-ENHANCEDSTATUSCODES\r\n"));
    assert_non_null(strstr(fx->reply, "250-XFAKE-KW\r\n"));
    assert_non_null(strstr(fx->reply, "250 SMTPUTF8\r\n"));
    assert_null(strstr(fx->reply, "STARTTLS"));
    expect(fx, "MAIL FROM:<alice@client.example> SIZE=100\r\n",
           "250 2.1.0 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 2.1.5 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: test\r\n\r\n..dot\r\nbody\r\n.\r\n",
           "250 2.0.0 Ok: queued as ");
    msg = content_of_reply(fx, &env);
    assert_string_equal(env->sender, "alice@client.example");
    assert_int_equal(env->nrcpts, 1);
    assert_string_equal(env->rcpts[0].addr, "bob@mx.test");
    assert_string_equal(env->rcpts[0].orcpt, "bob@mx.test");
    assert_string_equal(env->helo, "client.example");
    assert_string_equal(env->protocol, "ESMTP");
    assert_string_equal(env->client_addr, "127.0.0.1");
    assert_true(strncmp(msg, "Received: from client.example (unknown "
                        "[127.0.0.1])\r\n\tby mx.test (modmta) with ESMTP "
                        "id ", 80) == 0);
    assert_non_null(strstr(msg, "\r\n\tfor <bob@mx.test>; "));
    assert_non_null(strstr(msg, "\r\nSubject: test\r\n\r\n.dot\r\nbody\r\n"));
    assert_int_equal(strlen(strstr(msg, "\r\nSubject:")),
                     strlen("\r\nSubject: test\r\n\r\n.dot\r\nbody\r\n"));
    queue_env_free(env);
    free(msg);
    /* on_queued runs after the 250 is sent, before the next command */
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    assert_int_equal(fake_queued, 1);
    assert_int_equal(fake_submitted, 0); /* no scheduler in the test */
    finish(fx);
    assert_int_equal(fake_disconnected, 1);
}

/* on_abort: a transaction that ends before the end of DATA (RSET, QUIT,
 * a disconnect in DATA), never one that was queued or none at all. */
static void
test_abort(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO client.example\r\n", "250-");
    expect(fx, "RSET\r\n", "250 ");
    assert_int_equal(fake_aborted, 0);
    expect(fx, "MAIL FROM:<a@client.example>\r\n", "250 ");
    expect(fx, "RSET\r\n", "250 ");
    assert_int_equal(fake_aborted, 1);
    expect(fx, "MAIL FROM:<a@client.example>\r\n", "250 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 ");
    expect(fx, "EHLO client.example\r\n", "250-");
    assert_int_equal(fake_aborted, 2);
    expect(fx, "MAIL FROM:<a@client.example>\r\n", "250 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: x\r\n\r\nbody\r\n.\r\n", "250 2.0.0 Ok: queued");
    expect(fx, "RSET\r\n", "250 ");
    assert_int_equal(fake_aborted, 2);
    expect(fx, "MAIL FROM:<a@client.example>\r\n", "250 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    sendstr(fx, "Subject: cut\r\n");
    shutdown(fx->cfd, SHUT_WR);
    finish(fx);
    assert_int_equal(fake_aborted, 3);
}

/* The streaming hooks see the headers, the end of the header block, the
 * body and its end with the body's size, before on_data; a multi-line
 * reply of on_data reaches the client whole. */
static void
test_stream_and_reply_lines(void **state)
{
    struct fx *fx = *state;

    fake_stream = 1;
    fake_data_lines = 1;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO client.example\r\n", "250-");
    expect(fx, "MAIL FROM:<a@client.example>\r\n", "250 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: x\r\nTo: y\r\n\r\nbody\r\n.\r\n", "550");
    assert_string_equal(fx->reply, "550-5.7.1 one\r\n550-5.7.1 two\r\n"
                                   "550 5.7.1 three\r\n");
    assert_string_equal(fake_stream_seen, "H:Received;H:Subject;H:To;E;"
                                          "B:6;Z:6;");
    assert_int_equal(queued(fx), 0);
    assert_int_equal(fake_aborted, 0);
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
    assert_int_equal(fake_aborted, 0);
}

/* The dialogue of the administrators' how-tos, typed into telnet: no
 * HELO, paths without brackets, a recipient without a domain. Postfix
 * (smtpd_helo_required, strict_rfc821_envelopes off) and Sendmail take
 * it; so does modmta by default. */
static void
test_howto_dialogue(void **state)
{
    struct fx *fx = *state;
    queue_env *env;
    char *msg;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "MAIL FROM: youremail@Example.ORG\r\n", "250 2.1.0 ");
    expect(fx, "RCPT TO: root\r\n", "250 2.1.5 ");
    expect(fx, "rcpt to:user2@mx.test\r\n", "250 2.1.5 ");
    expect(fx, "RCPT TO:<postmaster>\r\n", "250 2.1.5 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "text\r\n.\r\n", "250 2.0.0 Ok: queued as ");
    msg = content_of_reply(fx, &env);
    assert_string_equal(env->sender, "youremail@example.org");
    assert_int_equal(env->nrcpts, 3);
    assert_string_equal(env->rcpts[0].addr, "root@mx.test");
    assert_string_equal(env->rcpts[1].addr, "user2@mx.test");
    assert_string_equal(env->rcpts[2].addr, "postmaster");
    assert_string_equal(env->protocol, "SMTP");
    assert_true(strncmp(msg, "Received: from unknown (unknown "
                        "[127.0.0.1])\r\n\tby mx.test (modmta) with SMTP ",
                        71) == 0);
    queue_env_free(env);
    free(msg);
    /* A sender without a domain is qualified too; <> stays empty. */
    expect(fx, "MAIL FROM:<alice>\r\n", "250 2.1.0 ");
    expect(fx, "RSET\r\n", "250 2.0.0 ");
    expect(fx, "MAIL FROM:<>\r\n", "250 2.1.0 ");
    expect(fx, "RSET\r\n", "250 2.0.0 ");
    /* A HELO a module refused cannot be skipped by sending none. */
    expect(fx, "HELO bad.example\r\n", "550 5.7.1 bad helo\r\n");
    expect(fx, "MAIL FROM:<a@b.example>\r\n", "503 5.5.1 ");
    expect(fx, "HELO good.example\r\n", "250 mx.test\r\n");
    expect(fx, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 ");
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

static void
test_pipelining(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    sendstr(fx, "EHLO c\r\nMAIL FROM:<a@c>\r\nRCPT TO:<b@mx.test>\r\n"
            "RCPT TO:<unknown@mx.test>\r\nRCPT TO:<c@mx.test>\r\nDATA\r\n");
    expect(fx, NULL, "250-mx.test");
    expect(fx, NULL, "250 2.1.0 ");
    expect(fx, NULL, "250 2.1.5 ");
    expect(fx, NULL, "550 5.1.1 <unknown@mx.test>: User unknown\r\n");
    expect(fx, NULL, "250 2.1.5 ");
    expect(fx, NULL, "354 ");
    sendstr(fx, "x\r\n.\r\nMAIL FROM:<>\r\nRCPT TO:<d@mx.test>\r\nRSET\r\n"
            "QUIT\r\n");
    expect(fx, NULL, "250 2.0.0 Ok: queued as ");
    expect(fx, NULL, "250 2.1.0 ");
    expect(fx, NULL, "250 2.1.5 ");
    expect(fx, NULL, "250 2.0.0 ");
    expect(fx, NULL, "221 2.0.0 ");
    finish(fx);
    assert_int_equal(queued(fx), 1);
}

static void
test_commands(void **state)
{
    struct fx *fx = *state;
    char longline[700];

    fx->cfg.limits.errors = 100;
    fx->cfg.smtp.helo_required = 1;
    fx->cfg.smtp.strict_envelopes = 1;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "MAIL FROM:<a@b>\r\n", "503 5.5.1 ");
    expect(fx, "HELO\r\n", "501 5.5.4 ");
    expect(fx, "HELO c.example\r\n", "250 mx.test\r\n");
    expect(fx, "RCPT TO:<a@b>\r\n", "503 5.5.1 ");
    expect(fx, "DATA\r\n", "503 5.5.1 ");
    expect(fx, "FOO\r\n", "500 5.5.1 ");
    expect(fx, "TURN\r\n", "502 5.5.1 ");
    expect(fx, "BDAT 10 LAST\r\n", "502 5.5.1 ");
    expect(fx, "VRFY root\r\n", "252 2.5.2 ");
    expect(fx, "EXPN staff\r\n", "502 5.5.1 ");
    expect(fx, "HELP\r\n", "214 2.0.0 ");
    expect(fx, "noop\r\n", "250 2.0.0 ");
    expect(fx, "RSET\r\n", "250 2.0.0 ");
    expect(fx, "STARTTLS\r\n", "502 5.5.1 ");
    expect(fx, "XFAKE hello\r\n", "250 2.0.0 fake verb ok hello\r\n");
    memset(longline, 'x', sizeof(longline));
    memcpy(longline, "NOOP ", 5);
    memcpy(longline + sizeof(longline) - 3, "\r\n", 3);
    expect(fx, longline, "500 5.5.2 ");
    expect(fx, "NOOP\nNOOP\r\n", "500 5.5.2 ");
    expect(fx, "NOOP\rNOOP\r\n", "500 5.5.2 ");
    expect(fx, "MAIL FROM:<bad@x.example>\r\n", "550 5.7.1 ");
    expect(fx, "MAIL FROM:<a b>\r\n", "501 5.1.7 ");
    expect(fx, "MAIL FROM:<a@b.example> FOO=1\r\n", "555 5.5.4 ");
    expect(fx, "MAIL FROM:<a@b.example> SIZE=1000001\r\n", "552 5.3.4 ");
    expect(fx, "MAIL FROM:<a@b.example>\r\n", "250 2.1.0 ");
    expect(fx, "MAIL FROM:<a@b.example>\r\n", "503 5.5.1 ");
    expect(fx, "RCPT TO:<x>\r\n", "501 5.1.3 ");
    expect(fx, "RCPT TO:x@y.example\r\n", "501 5.1.3 ");
    expect(fx, "RCPT TO:<x@y.example> NOTIFY=NEVR\r\n", "501 5.5.4 ");
    expect(fx, "RCPT TO:<x@y.example> XFORWARD=1\r\n", "555 5.5.4 ");
    expect(fx, "DATA\r\n", "503 5.5.1 ");
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

static void
test_error_limit(void **state)
{
    struct fx *fx = *state;

    fx->cfg.limits.errors = 3;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "FOO\r\n", "500 5.5.1 ");
    /* a module's refusal of an unknown command is an error too */
    expect(fx, "VETO this, 1\r\n", "554 5.7.1 vetoed VETO this, 1\r\n");
    expect(fx, "LATER\r\n", "450 4.7.1 later\r\n");
    expect(fx, NULL, "421 4.7.0 ");
    finish(fx);
}

/* 100 junk commands are free; past them each counts as an error. */
static void
test_junk_command_limit(void **state)
{
    struct fx *fx = *state;
    int i;

    fx->cfg.limits.errors = 3;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    for (i = 0; i < 100; i++)
        expect(fx, "NOOP\r\n", "250 2.0.0 ");
    expect(fx, "NOOP\r\n", "250 2.0.0 ");
    expect(fx, "RSET\r\n", "250 2.0.0 ");
    expect(fx, "HELO a\r\n", "250 ");
    expect(fx, NULL, "421 4.7.0 ");
    finish(fx);
}

static void
test_early_talker(void **state)
{
    struct fx *fx = *state;

    start(fx, "EHLO hasty\r\n");
    expect(fx, NULL, "554 5.5.0 ");
    finish(fx);
}

static void
test_connect_reject(void **state)
{
    struct fx *fx = *state;

    fake_connect_verdict = MODMTA_REJECT;
    start(fx, NULL);
    expect(fx, NULL, "554 5.7.1 mx.test go away\r\n");
    expect(fx, "EHLO c\r\n", "503 5.5.1 ");
    expect(fx, "MAIL FROM:<a@b>\r\n", "503 5.5.1 ");
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

/* The on_auth hooks run after an AUTH verb; a 421 from a verb closes. */
static void
test_auth_hooks(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "AUTH bad\r\n", "535 5.7.8 bad\r\n");
    assert_string_equal(fake_auth, "eve/0");
    expect(fx, "AUTH good\r\n", "235 2.7.0 ok\r\n");
    assert_string_equal(fake_auth, "bob/1");
    fake_auth[0] = '\0';
    expect(fx, "XFAKE x\r\n", "250 ");
    assert_string_equal(fake_auth, "");
    expect(fx, "AUTH bye\r\n", "421 4.7.0 too many\r\n");
    finish(fx);
}

/* auth_as (modmtatest --auth): authenticated from the first accepted
 * EHLO on, the on_auth hooks told once; an auth-required listener then
 * takes MAIL, and the message is ESMTPA with the identity. */
static void
test_auth_as(void **state)
{
    struct fx *fx = *state;
    queue_env *env;
    char *msg;

    fx->lst.auth = AUTH_REQUIRED;
    fx->a.auth_as = "carol";
    fake_auth[0] = '\0';
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO bad.example\r\n", "550 5.7.1 bad helo");
    assert_string_equal(fake_auth, "");
    expect(fx, "EHLO client.example\r\n", "250-mx.test\r\n");
    assert_string_equal(fake_auth, "carol/1");
    fake_auth[0] = '\0';
    expect(fx, "EHLO client.example\r\n", "250-mx.test\r\n");
    assert_string_equal(fake_auth, "");
    expect(fx, "MAIL FROM:<carol@mx.test>\r\n", "250 2.1.0 ");
    expect(fx, "RCPT TO:<bob@remote.test>\r\n", "250 2.1.5 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: test\r\n\r\nbody\r\n.\r\n",
           "250 2.0.0 Ok: queued as ");
    msg = content_of_reply(fx, &env);
    assert_string_equal(env->auth_user, "carol");
    assert_string_equal(env->protocol, "ESMTPA");
    assert_non_null(strstr(msg, " with ESMTPA id "));
    queue_env_free(env);
    free(msg);
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

/* A hook's 421 at HELO, MAIL, RCPT or DATA is sent and ends the session
 * (a rate limit, Postfix's smtpd); another 4xx leaves it open. */
static void
test_hook_421_helo_mail(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "HELO close.example\r\n",
           "421 4.7.0 limit hit by close.example\r\n");
    finish(fx);

    fake_released = 0;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<busy@c>\r\n", "451 4.3.0 busy busy@c\r\n");
    expect(fx, "MAIL FROM:<close@c>\r\n",
           "421 4.7.0 limit hit by close@c\r\n");
    finish(fx);
    assert_int_equal(queued(fx), 0);
}

static void
test_hook_421_rcpt(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "250 ");
    expect(fx, "RCPT TO:<busy@mx.test>\r\n", "451 4.3.0 ");
    /* pipelined behind the 421: never answered, never run */
    expect(fx, "RCPT TO:<close@mx.test>\r\nDATA\r\nfoo\r\n.\r\n",
           "421 4.7.0 limit hit by close@mx.test\r\n");
    finish(fx);
    assert_int_equal(queued(fx), 0);
    assert_int_equal(fake_disconnected, 1);
}

/* A message for r1 from a@c; its end of data answers `reply`. */
static void
send_one(struct fx *fx, const char *reply)
{
    expect(fx, "MAIL FROM:<a@c>\r\nRCPT TO:<r1@mx.test>\r\nDATA\r\n",
           "250 ");
    expect(fx, NULL, "250 ");
    expect(fx, NULL, "354 ");
    expect(fx, "Subject: s\r\n\r\nbody\r\n.\r\n", reply);
}

/* At the end of DATA: the message is not queued; the one committed
 * before it in the session stays. */
static void
test_hook_421_data(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    send_one(fx, "250 2.0.0 ");
    fake_data_421 = 1;
    send_one(fx, "421 4.7.0 limit hit by close-data\r\n");
    finish(fx);
    assert_int_equal(queued(fx), 1);
    assert_int_equal(fake_queued, 1);
}

static void
test_limits(void **state)
{
    struct fx *fx = *state;
    char big[300];

    fx->cfg.limits.recipients = 2;
    fx->cfg.limits.message_size = 100;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    assert_non_null(strstr(fx->reply, "250-SIZE 100\r\n"));
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "250 ");
    expect(fx, "RCPT TO:<r2@mx.test>\r\n", "250 ");
    expect(fx, "RCPT TO:<r3@mx.test>\r\n", "452 4.5.3 ");
    expect(fx, "DATA\r\n", "354 ");
    memset(big, 'x', sizeof(big));
    memcpy(big + sizeof(big) - 8, "\r\n.\r\n", 6);
    expect(fx, big, "552 5.3.4 ");
    /* the transaction is over; the session goes on */
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "503 5.5.1 ");
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "bare\nLF\r\n.\r\n", "554 5.5.0 ");
    expect(fx, "NOOP\r\n", "250 ");
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
    assert_int_equal(queued(fx), 0);
}

static void
test_smuggling(void **state)
{
    struct fx *fx = *state;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    /* "\n.\n" is no end: what follows is data, and the message is bad */
    sendstr(fx, "hi\r\n\n.\nMAIL FROM:<evil@c>\r\nRCPT TO:<v@mx.test>\r\n"
            "DATA\r\nsmuggled\r\n.\r\n");
    expect(fx, NULL, "554 5.5.0 ");
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
    assert_int_equal(queued(fx), 0);
}

static void
test_tls_and_auth_required(void **state)
{
    struct fx *fx = *state;

    fx->lst.tls = TLS_STARTTLS_REQUIRED;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<a@c>\r\n", "530 5.7.0 Must issue a STARTTLS");
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);

    fake_released = 0;
    fx->lst.tls = TLS_NONE;
    fx->lst.auth = AUTH_REQUIRED;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<a@c>\r\n", "530 5.7.0 Authentication required");
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
}

static void
test_starttls_injection(void **state)
{
    struct fx *fx = *state;

    fx->gen.tls = SSL_CTX_new(TLS_server_method());
    fx->lst.tls = TLS_STARTTLS;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    assert_non_null(strstr(fx->reply, "250-STARTTLS\r\n"));
    /* one segment: the MAIL was sent in clear with the STARTTLS */
    expect(fx, "STARTTLS\r\nMAIL FROM:<a@c>\r\n", "554 5.5.1 ");
    finish(fx);
}

static void
test_shutdown_and_timeout(void **state)
{
    struct fx *fx = *state;

    fx->stop = 1;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, NULL, "421 4.3.2 ");
    finish(fx);

    fake_released = 0;
    fx->stop = 0;
    fx->cfg.limits.command_timeout = 1;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, NULL, "421 4.4.2 ");
    finish(fx);
}

static void
test_on_data_header(void **state)
{
    struct fx *fx = *state;
    queue_env *env;
    char *msg;

    fake_addhdr = 1;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r1@mx.test>\r\n", "250 ");
    expect(fx, "RCPT TO:<r2@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: s\r\n\r\nbody\r\n.\r\n", "250 2.0.0 ");
    msg = content_of_reply(fx, &env);
    assert_int_equal(env->nrcpts, 2);
    assert_true(strncmp(msg, "Received: from c ", 17) == 0);
    assert_null(strstr(msg, "\tfor <")); /* two recipients */
    assert_non_null(strstr(msg, "Subject:"));
    assert_non_null(strstr(msg, "\r\nX-Fake: yes\r\n\r\nbody\r\n"));
    queue_env_free(env);
    free(msg);
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
}

static void
test_serve(void **state)
{
    struct fx *fx = *state;

    fx->lst.protocol = "pop3";
    start(fx, NULL);
    expect(fx, NULL, "+OK fake");
    finish(fx);
    assert_string_equal(fake_served, "pop3");
}

/* A self-signed certificate and its key as PEM files in the spool. */
static void
make_cert(struct fx *fx, const char *cert, const char *key)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    X509 *x = X509_new();
    FILE *f;

    assert_non_null(pk);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, pk);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"mx.test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    assert_true(X509_sign(x, pk, EVP_sha256()) > 0);
    f = fopen(cert, "w");
    PEM_write_X509(f, x);
    fclose(f);
    f = fopen(key, "w");
    PEM_write_PrivateKey(f, pk, NULL, NULL, 0, NULL, NULL);
    fclose(f);
    X509_free(x);
    EVP_PKEY_free(pk);
}

static void
test_tls_ctx(void **state)
{
    struct fx *fx = *state;
    struct config_errors errs = {0};
    struct config_tls t = {0};
    char cert[128], key[128], cert2[128], key2[128];
    SSL_CTX *ctx;

    snprintf(cert, sizeof(cert), "%s/c.pem", fx->spool);
    snprintf(key, sizeof(key), "%s/k.pem", fx->spool);
    snprintf(cert2, sizeof(cert2), "%s/c2.pem", fx->spool);
    snprintf(key2, sizeof(key2), "%s/k2.pem", fx->spool);
    make_cert(fx, cert, key);
    make_cert(fx, cert2, key2);
    assert_null(tls_ctx_new(&t, &errs)); /* no cert: no TLS, no error */
    assert_int_equal(errs.n, 0);
    t.cert = cert;
    t.key = key;
    ctx = tls_ctx_new(&t, &errs);
    assert_non_null(ctx);
    assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
    tls_ctx_free(ctx);
    t.key = key2; /* another certificate's key */
    assert_null(tls_ctx_new(&t, &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "$.tls.key"));
    assert_non_null(strstr(errs.msgs[0], "does not match"));
    t.key = key;
    t.cert = "/nonexistent/cert.pem";
    t.min_version = "SSLv3";
    assert_null(tls_ctx_new(&t, &errs));
    assert_int_equal(errs.n, 3);
    assert_non_null(strstr(errs.msgs[1], "$.tls.min_version"));
    assert_non_null(strstr(errs.msgs[2], "$.tls.cert"));
    config_errors_free(&errs);
}

static void
test_starttls(void **state)
{
    struct fx *fx = *state;
    struct config_errors errs = {0};
    struct config_tls t = {0};
    char cert[128], key[128], *msg;
    queue_env *env;

    snprintf(cert, sizeof(cert), "%s/c.pem", fx->spool);
    snprintf(key, sizeof(key), "%s/k.pem", fx->spool);
    make_cert(fx, cert, key);
    t.cert = cert;
    t.key = key;
    fx->gen.tls = tls_ctx_new(&t, &errs);
    assert_non_null(fx->gen.tls);
    fx->lst.tls = TLS_STARTTLS_REQUIRED;
    fx->cfg.smtp.helo_required = 1; /* so MAIL shows the state is gone */
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO c\r\n", "250-");
    assert_non_null(strstr(fx->reply, "250-STARTTLS\r\n"));
    expect(fx, "STARTTLS\r\n", "220 2.0.0 ");
    fx->cctx = SSL_CTX_new(TLS_client_method());
    fx->cssl = SSL_new(fx->cctx);
    SSL_set_fd(fx->cssl, fx->cfd);
    assert_int_equal(SSL_connect(fx->cssl), 1);
    /* all state is gone: EHLO again first */
    expect(fx, "MAIL FROM:<a@c>\r\n", "503 5.5.1 ");
    expect(fx, "EHLO c\r\n", "250-");
    assert_null(strstr(fx->reply, "STARTTLS"));
    expect(fx, "STARTTLS\r\n", "503 5.5.1 ");
    expect(fx, "MAIL FROM:<a@c>\r\n", "250 ");
    expect(fx, "RCPT TO:<r@mx.test>\r\n", "250 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: s\r\n\r\nhi\r\n.\r\n", "250 2.0.0 ");
    msg = content_of_reply(fx, &env);
    assert_string_equal(env->protocol, "ESMTPS");
    assert_non_null(strstr(msg, "with ESMTPS (TLSv1.3 with cipher "));
    queue_env_free(env);
    free(msg);
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
}

static void
test_implicit_tls(void **state)
{
    struct fx *fx = *state;
    struct config_errors errs = {0};
    struct config_tls t = {0};
    char cert[128], key[128];

    snprintf(cert, sizeof(cert), "%s/c.pem", fx->spool);
    snprintf(key, sizeof(key), "%s/k.pem", fx->spool);
    make_cert(fx, cert, key);
    t.cert = cert;
    t.key = key;
    fx->gen.tls = tls_ctx_new(&t, &errs);
    fx->lst.tls = TLS_IMPLICIT;
    start(fx, NULL);
    fx->cctx = SSL_CTX_new(TLS_client_method());
    fx->cssl = SSL_new(fx->cctx);
    SSL_set_fd(fx->cssl, fx->cfd);
    assert_int_equal(SSL_connect(fx->cssl), 1);
    expect(fx, NULL, "220 mx.test ESMTP");
    expect(fx, "EHLO c\r\n", "250-");
    assert_null(strstr(fx->reply, "STARTTLS"));
    expect(fx, "QUIT\r\n", "221 ");
    finish(fx);
}

/* RFC 3461: the DSN parameters are kept with the message; expanded
 * recipients inherit their client recipient's, a module's copy has
 * none; the MAIL parameters a next hop needs are kept, SIZE is not. */
static void
test_dsn_params(void **state)
{
    struct fx *fx = *state;
    queue_env *env;
    const queue_rcpt *r;
    char *msg;

    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO client.example\r\n", "250-mx.test\r\n");
    assert_non_null(strstr(fx->reply, "250-DSN\r\n"));
    /* before the modules' keywords */
    assert_true(strstr(fx->reply, "250-DSN\r\n") <
                strstr(fx->reply, "250-XFAKE-KW\r\n"));
    expect(fx, "MAIL FROM:<alice@client.example> ret=hdrs SIZE=100 "
           "ENVID=QQ+2B1 BODY=8bitmime\r\n", "250 2.1.0 ");
    expect(fx, "RCPT TO:<bob@mx.test> NOTIFY=success,FAILURE "
           "ORCPT=rfc822;bob+2Bx@mx.test\r\n", "250 2.1.5 ");
    expect(fx, "RCPT TO:<list@mx.test> NOTIFY=NEVER\r\n", "250 2.1.5 ");
    expect(fx, "RCPT TO:<carol@mx.test> NOTIFY=DELAY,\r\n", "501 5.5.4 ");
    expect(fx, "RCPT TO:<carol@mx.test>\r\n", "250 2.1.5 ");
    expect(fx, "RCPT TO:<olist@mx.test> NOTIFY=SUCCESS,DELAY "
           "ORCPT=rfc822;olist@mx.test\r\n", "250 2.1.5 ");
    expect(fx, "DATA\r\n", "354 ");
    expect(fx, "Subject: dsn\r\n\r\nbody\r\n.\r\n",
           "250 2.0.0 Ok: queued as ");
    msg = content_of_reply(fx, &env);
    assert_int_equal(env->nparams, 3);
    assert_string_equal(env->params[0].name, "RET");
    assert_string_equal(env->params[0].value, "HDRS");
    assert_string_equal(env->params[1].name, "ENVID");
    assert_string_equal(env->params[1].value, "QQ+2B1");
    assert_string_equal(env->params[2].name, "BODY");
    assert_string_equal(env->params[2].value, "8BITMIME");
    assert_int_equal(env->nrcpts, 6);
    r = &env->rcpts[0];
    assert_string_equal(r->addr, "bob@mx.test");
    assert_int_equal(r->notify, QNOTIFY_SUCCESS | QNOTIFY_FAILURE);
    assert_string_equal(r->orcpt_param, "rfc822;bob+2Bx@mx.test");
    for (int i = 1; i <= 2; i++) {
        r = &env->rcpts[i];
        assert_string_equal(r->orcpt, "list@mx.test");
        assert_int_equal(r->notify, QNOTIFY_NEVER);
        assert_null(r->orcpt_param);
        assert_int_equal(r->no_dsn, 0);
    }
    r = &env->rcpts[3];
    assert_string_equal(r->addr, "archive@mx.test");
    assert_int_equal(r->no_dsn, 1);
    assert_int_equal(r->notify, 0);
    r = &env->rcpts[4];
    assert_string_equal(r->addr, "carol@mx.test");
    assert_int_equal(r->notify, 0);
    assert_null(r->orcpt_param);
    /* the member of a list with its owner: the client's NOTIFY and
     * ORCPT stop at the expansion (RFC 3461 6.2.7.3) */
    r = &env->rcpts[5];
    assert_string_equal(r->addr, "m3@mx.test");
    assert_string_equal(r->sender, "owner-olist@mx.test");
    assert_int_equal(r->notify, 0);
    assert_null(r->orcpt_param);
    queue_env_free(env);
    free(msg);
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

/* Send a message with n Received: fields of its own. */
static void
send_hops(struct fx *fx, int n, const char *want)
{
    expect(fx, "MAIL FROM:<alice@client.example>\r\n", "250 2.1.0 ");
    expect(fx, "RCPT TO:<bob@mx.test>\r\n", "250 2.1.5 ");
    expect(fx, "DATA\r\n", "354 ");
    for (int i = 0; i < n; i++)
        sendstr(fx, i % 2 ? "Received: from a by b; Sat, 5 Dec 2026\r\n"
                          : "received: from a\r\n\tby b; Sat, 5 Dec 2026\r\n");
    expect(fx, "Subject: loop\r\n\r\nbody\r\n.\r\n", want);
}

/* limits.max_hops: more Received: fields, ours included, than the limit
 * is a loop: 554 5.4.6, nothing queued. */
static void
test_max_hops(void **state)
{
    struct fx *fx = *state;

    fx->cfg.limits.max_hops = 5;
    start(fx, NULL);
    expect(fx, NULL, "220 ");
    expect(fx, "EHLO client.example\r\n", "250-");
    send_hops(fx, 5, "554 5.4.6 Too many hops");
    assert_int_equal(queued(fx), 0);
    send_hops(fx, 4, "250 2.0.0 Ok: queued as ");
    assert_int_equal(queued(fx), 1);
    expect(fx, "QUIT\r\n", "221 2.0.0 ");
    finish(fx);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_transaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stream_and_reply_lines, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_howto_dialogue, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipelining, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junk_command_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_error_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_early_talker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_connect_reject, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_auth_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_auth_as, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_421_helo_mail, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hook_421_rcpt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hook_421_data, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smuggling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_and_auth_required, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_starttls_injection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_shutdown_and_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_on_data_header, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serve, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tls_ctx, setup, teardown),
        cmocka_unit_test_setup_teardown(test_starttls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_implicit_tls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dsn_params, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_hops, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
