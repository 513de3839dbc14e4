/*
 * The hook chain of the session harness: it replaces core/chain.c at
 * link time, as core/tests/test_smtp_session.c's does, so that the real
 * session reaches every state without module files to load (a harness
 * cannot dlopen modules: see meson.build). Recipients are accepted and
 * senders too, except those starting with "bad" (550) or "busy" (451),
 * so that both verdicts run; AUTH is the real auth_sasl module,
 * compiled in, driving the SDK's SASL exchange over the connection.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/module.h>

#include "chain.h"
#include "ctx_priv.h"
#include "fuzz_input.h"
#include "generation.h"
#include "scheduler.h"
#include "session_chain.h"

extern const modmta_module modmta_descriptor; /* auth_sasl.c */

static modmta_host *auth_host;
static void *auth_inst;
static modmta_verb auth_verb;
static int streams, queued;

void
session_chain_init(const char *dir, const char *hostname)
{
    static const char entries[] = "alice:{PLAIN}secret\n"
                                  "bob@example.org:{PLAIN}pass word\n";
    char passdb[256], conf[512];
    json_t *j;
    modmta_err err;

    snprintf(passdb, sizeof(passdb), "%s/passdb", dir);
    if (fuzz_write_file(passdb, entries, sizeof(entries) - 1) < 0)
        abort();
    snprintf(conf, sizeof(conf), "{\"passdb\": \"file:%s\", \"mechanisms\":"
             " [\"PLAIN\", \"LOGIN\", \"CRAM-MD5\"], \"max_failures\": 0,"
             " \"allow_plaintext_loopback\": true}", passdb);
    j = json_loads(conf, 0, NULL);
    auth_host = modmta_host_new("auth_sasl", "$.modules[0]", hostname, dir,
                                NULL, 0);
    if (j == NULL || auth_host == NULL)
        abort();
    auth_inst = modmta_descriptor.create(j, auth_host, &err);
    json_decref(j);
    if (auth_inst == NULL) {
        fprintf(stderr, "auth_sasl: %s: %s\n", err.path, err.msg);
        abort();
    }
    auth_verb.name = "AUTH";
    auth_verb.handler = modmta_descriptor.commands[0].handler;
}

void session_chain_set_streams(int on) { streams = on; }

int
session_chain_queued(void)
{
    int was = queued;

    queued = 0;
    return was;
}

void generation_release(generation *g) { (void)g; }
void scheduler_submit(scheduler *s, const char *id) { (void)s; (void)id; }

modmta_verdict
chain_connect(struct chain *ch, modmta_ctx *ctx)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_CONNECT, NULL, NULL, NULL);
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_helo(struct chain *ch, modmta_ctx *ctx, const char *helo)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_HELO, NULL, NULL, NULL);
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_mail(struct chain *ch, modmta_ctx *ctx, const char *sender)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_MAIL, NULL, NULL, NULL);
    if (strncmp(sender, "bad", 3) == 0) {
        modmta_reply(ctx, 550, "5.7.1", "<%s>: Sender rejected", sender);
        return MODMTA_REJECT;
    }
    if (strncmp(sender, "busy", 4) == 0) {
        modmta_reply(ctx, 451, "4.3.0", "busy %s", sender);
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_rcpt(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
           const struct config_limits *lim)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_RCPT, NULL, NULL, NULL);
    modmta_ctx_add_rcpt(ctx, rcpt);
    return MODMTA_ACCEPT;
}

modmta_verdict
chain_data(struct chain *ch, modmta_ctx *ctx)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_DATA, NULL, NULL, NULL);
    return MODMTA_CONTINUE;
}

void chain_queued(struct chain *ch, modmta_ctx *ctx) { queued = 1; }
void chain_abort(struct chain *ch, modmta_ctx *ctx) { }
void chain_disconnect(struct chain *ch, modmta_ctx *ctx) { }
int chain_streams(const struct chain *ch) { return streams; }
size_t chain_count(const struct chain *ch) { return 1; }

modmta_verdict
chain_header(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
             const char *name, const char *value)
{
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_eoh(struct chain *ch, modmta_ctx *ctx, unsigned char *done)
{
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_body(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
           const unsigned char *chunk, size_t len)
{
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_auth(struct chain *ch, modmta_ctx *ctx, const char *user, int success)
{
    return MODMTA_CONTINUE;
}

/* As chain.c: the module entered, its verdict's reply defaulted. */
void
chain_ehlo(struct chain *ch, modmta_ctx *ctx)
{
    const modmta_host *core = ctx->host;

    modmta_ctx_enter(ctx, MODMTA_PHASE_EHLO, &modmta_descriptor, auth_inst,
                     auth_host);
    modmta_descriptor.ehlo(auth_inst, ctx);
    ctx->mod = NULL;
    ctx->inst = NULL;
    ctx->host = core;
    modmta_ctx_reply_clear(ctx);
}

const modmta_verb *
chain_find_verb(struct chain *ch, const char *verb, void **inst_r)
{
    if (strcasecmp(verb, "AUTH") != 0)
        return NULL;
    if (inst_r != NULL)
        *inst_r = auth_inst;
    return &auth_verb;
}

modmta_verdict
chain_run_verb(struct chain *ch, modmta_ctx *ctx, modmta_conn *conn,
               const char *verb, const char *args)
{
    const modmta_host *core = ctx->host;
    modmta_verdict v;

    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, NULL, NULL, NULL);
    if (strcasecmp(verb, "AUTH") != 0) {
        modmta_ctx_reply_default(ctx, 500, "5.5.2",
                                 "Error: command not recognized");
        return MODMTA_REJECT;
    }
    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, &modmta_descriptor, auth_inst,
                     auth_host);
    v = auth_verb.handler(auth_inst, ctx, conn, args);
    ctx->mod = NULL;
    ctx->inst = NULL;
    ctx->host = core;
    if (ctx->reply_code == 0)
        modmta_ctx_reply_default(ctx, v == MODMTA_REJECT ? 550
                                 : v == MODMTA_TEMPFAIL ? 454 : 250,
                                 v == MODMTA_REJECT ? "5.7.0"
                                 : v == MODMTA_TEMPFAIL ? "4.7.0" : "2.0.0",
                                 "Ok");
    return v;
}

modmta_verdict
chain_unknown(struct chain *ch, modmta_ctx *ctx, const char *line)
{
    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, NULL, NULL, NULL);
    return MODMTA_CONTINUE;
}

int
chain_serve(struct chain *ch, const char *protocol, modmta_ctx *ctx,
            modmta_conn *conn)
{
    return -1; /* the harness's listeners all speak SMTP */
}
