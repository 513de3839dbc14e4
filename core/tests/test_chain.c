/*
 * The hook chain with real modules: core/tests/modules/script.so (its
 * behaviour set by its JSON section) and good.so, from MODULE_DIR.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <modmta/modmta.h>

#include "chain.h"
#include "ctx_priv.h"
#include "fake.h"

static char *test_domains[] = { "example.com", "localhost", NULL };
static char *test_path[] = { NULL, NULL };
static struct config cfg;
static struct config_limits lim = { .rewrite_depth = 10,
                                    .rewrite_max = 1000 };

struct fx {
    json_t *mods;
    struct chain *ch;
    modmta_host *core;
    modmta_ctx *ctx;
};

static int
setup_env(void **state)
{
    test_path[0] = getenv("MODULE_DIR");
    if (test_path[0] == NULL)
        return -1;
    cfg.hostname = "mx.test";
    cfg.spool = ".";
    cfg.module_path = test_path;
    cfg.local_domains = test_domains;
    return 0;
}

/* JSON written with ' for " to keep the tests readable. */
static json_t *
js(const char *text)
{
    char buf[4096];
    json_error_t jerr;
    json_t *j;
    size_t i;

    snprintf(buf, sizeof(buf), "%s", text);
    for (i = 0; buf[i]; i++)
        if (buf[i] == '\'')
            buf[i] = '"';
    j = json_loads(buf, 0, &jerr);
    if (j == NULL)
        fail_msg("bad test JSON: %s: %s", jerr.text, buf);
    return j;
}

static struct chain *
build(json_t *mods, struct config_errors *errs)
{
    cfg.modules = mods;
    return chain_build(&cfg, 0, errs);
}

static void
fx_build(struct fx *f, const char *modules)
{
    struct config_errors errs = { 0 };
    size_t i;

    f->mods = js(modules);
    f->ch = build(f->mods, &errs);
    for (i = 0; i < errs.n; i++)
        print_error("%s\n", errs.msgs[i]);
    assert_non_null(f->ch);
    f->core = modmta_host_new("core", "$", "mx.test", ".", test_domains, 0);
    f->ctx = modmta_ctx_new(f->core);
    assert_non_null(f->ctx);
    modmta_ctx_set_sender(f->ctx, "Q1", "s@example.org");
}

static void
fx_free(struct fx *f)
{
    modmta_ctx_free(f->ctx);
    modmta_host_free(f->core);
    chain_free(f->ch);
    json_decref(f->mods);
}

static void
assert_reply(const struct fx *f, int code, const char *esc, const char *text)
{
    assert_int_equal(f->ctx->reply_code, code);
    assert_string_equal(f->ctx->reply_esc, esc);
    if (text != NULL)
        assert_string_equal(f->ctx->reply_text, text);
}

static void
assert_rcpts(const struct fx *f, const char *const *want, size_t n)
{
    size_t i;

    assert_int_equal(modmta_rcpt_count(f->ctx), n);
    for (i = 0; i < n; i++)
        assert_string_equal(modmta_rcpt_at(f->ctx, i), want[i]);
}

/* ---- building ---- */

static void
test_duplicate_instance(void **state)
{
    struct config_errors errs = { 0 };
    json_t *m;

    m = js("[{'module':'script'},{'module':'good'},{'module':'script'}]");
    assert_null(build(m, &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "$.modules[2].name: duplicate "
                           "instance name \"script\" (already "
                           "$.modules[0])"));
    config_errors_free(&errs);
    json_decref(m);

    m = js("[{'module':'script','name':'x'},{'module':'good','name':'x'}]");
    assert_null(build(m, &errs));
    assert_int_equal(errs.n, 1);
    assert_non_null(strstr(errs.msgs[0], "$.modules[1].name: duplicate "
                           "instance name \"x\" (already $.modules[0])"));
    config_errors_free(&errs);
    json_decref(m);
}

static void
test_all_errors_collected(void **state)
{
    static const char *want[] = {
        "$.modules[0].module: module \"nosuch\" not found",
        "$.modules[1].module: ",
        "$.modules[2].fail: bad key",
        "$.modules[3].module: required",
        "$.modules[4]: expected an object",
        "$.modules[5].name: invalid instance name",
    };
    struct config_errors errs = { 0 };
    json_t *m;
    size_t i;

    m = js("[{'module':'nosuch'},{'module':'badmajor'},"
           "{'module':'script','fail':'bad key'},{},5,"
           "{'module':'good','name':'a b'},{'module':'good'}]");
    assert_null(build(m, &errs));
    assert_int_equal(errs.n, 6);
    for (i = 0; i < 6; i++)
        assert_non_null(strstr(errs.msgs[i], want[i]));
    assert_non_null(strstr(errs.msgs[1], "ABI 2."));
    config_errors_free(&errs);
    json_decref(m);
}

/* The status chain_route gives a recipient nobody claims. */
static modmta_dstatus
route_status(struct chain *ch, modmta_ctx *ctx, const char *rcpt)
{
    struct chain_route r;

    chain_route(ch, ctx, rcpt, &r);
    assert_false(r.claimed);
    return r.status;
}

static void
test_empty_chain(void **state)
{
    struct fx f;

    fx_build(&f, "[]");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_CONTINUE);
    assert_int_equal(f.ctx->reply_code, 0);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", NULL);
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DEFERRED);
    fx_free(&f);
}

/* Two instances and two generations share one load() of good.so. */
static void
test_load_once(void **state)
{
    struct fx f, g;

    fx_build(&f, "[{'module':'good','name':'g1'},"
                 "{'module':'good','name':'g2'}]");
    fx_build(&g, "[{'module':'good'}]");
    assert_int_equal(chain_helo(g.ch, g.ctx, "x"), MODMTA_ACCEPT);
    assert_reply(&g, 250, "", "loads=1 unloads=0");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_CONTINUE);
    fx_free(&g);
    fx_free(&f);
}

/* ---- verdicts ---- */

static void
test_first_decision_wins(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'good'},"
                 "{'module':'script','name':'a','connect':'continue',"
                 " 'reply':[550,'5.7.1','a']},"
                 "{'module':'script','name':'b','connect':'reject',"
                 " 'reply':[550,'5.7.1','b says no'],'mail':'accept'},"
                 "{'module':'script','name':'c','connect':'accept',"
                 " 'mail':'reject'}]");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", "b says no");
    /* The core acts again: no module is running, the host is the core's. */
    assert_null(f.ctx->mod);
    assert_ptr_equal(f.ctx->host, f.core);
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_ACCEPT);
    assert_int_equal(f.ctx->reply_code, 0);
    /* Nobody decides: CONTINUE, and a CONTINUE's reply is not kept. */
    assert_int_equal(chain_data(f.ch, f.ctx), MODMTA_CONTINUE);
    assert_int_equal(f.ctx->reply_code, 0);
    fx_free(&f);
}

/* The streaming steps (ABI 1.6): ACCEPT retires one module for the
 * message, REJECT is the message's verdict with the module's reply. */
static void
test_stream_steps(void **state)
{
    unsigned char done[4] = {0};
    struct fx f;

    fx_build(&f, "[{'module':'script'}]");
    assert_int_equal(chain_streams(f.ch), 0);
    fx_free(&f);

    fx_build(&f, "[{'module':'stream','name':'acc','accept_stream':true},"
                 "{'module':'script'},"
                 "{'module':'stream','eoh':'reject'}]");
    assert_int_equal(chain_streams(f.ch), 1);
    assert_int_equal(chain_count(f.ch), 3);
    assert_int_equal(chain_header(f.ch, f.ctx, done, "Subject", "x"),
                     MODMTA_CONTINUE);
    assert_int_equal(f.ctx->reply_code, 0);
    assert_int_equal(f.ctx->phase, MODMTA_PHASE_STREAM);
    assert_null(f.ctx->mod);
    assert_int_equal(done[0], 1);  /* acc said ACCEPT */
    assert_int_equal(done[2], 0);
    assert_int_equal(chain_eoh(f.ch, f.ctx, done), MODMTA_REJECT);
    assert_reply(&f, 554, "5.7.0", "stream says no");
    fx_free(&f);

    /* the end mark of the body, then on_abort (a notification) */
    memset(done, 0, sizeof(done));
    fx_build(&f, "[{'module':'stream','eoh':'reject'}]");
    assert_int_equal(chain_body(f.ch, f.ctx, done, NULL, 0),
                     MODMTA_CONTINUE);
    chain_abort(f.ch, f.ctx);
    assert_int_equal(f.ctx->phase, MODMTA_PHASE_ABORT);
    assert_int_equal(f.ctx->reply_code, 0);
    fx_free(&f);
}

static void
test_default_replies(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','connect':'reject','helo':'reject',"
                 "'mail':'tempfail','data':'discard'}]");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_REJECT);
    assert_reply(&f, 554, "5.7.1", NULL);
    assert_int_equal(chain_helo(f.ch, f.ctx, "x"), MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.7.1", NULL);
    assert_int_equal(chain_data(f.ch, f.ctx), MODMTA_DISCARD);
    assert_int_equal(f.ctx->reply_code, 0);
    fx_free(&f);

    fx_build(&f, "[{'module':'script','data':'reject'}]");
    assert_int_equal(chain_data(f.ch, f.ctx), MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    fx_free(&f);
}

static void
test_reply_class_corrected(void **state)
{
    struct fx f;

    /* REJECT with a 4xx reply: the default replaces it. */
    fx_build(&f, "[{'module':'script','mail':'reject',"
                 "'reply':[451,'4.1.1','wrong class']}]");
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    assert_string_not_equal(f.ctx->reply_text, "wrong class");
    fx_free(&f);

    /* A reply without enhanced code gets the default's. */
    fx_build(&f, "[{'module':'script','mail':'reject',"
                 "'reply':[553,null,'no such sender']}]");
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_REJECT);
    assert_reply(&f, 553, "5.7.1", "no such sender");
    fx_free(&f);
}

static void
test_unknown_verdict(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','connect':'bogus',"
                 "'reply':[550,'5.7.1','ignored']},"
                 "{'module':'script','name':'s2','connect':'accept'}]");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.3.0", NULL);
    fx_free(&f);
}

/* ---- RCPT ---- */

static const char mbox[] =
    "{'module':'script','name':'mbox','rcpt':{"
    "'a@example.com':'accept','b@example.com':'accept',"
    "'c@example.com':'accept','x4@example.com':'accept',"
    "'user@remote.org':'accept',"
    "'tmp@example.com':'tempfail','bad@example.com':'reject',"
    "'d@example.com':'discard'}}";

static void
fx_alias(struct fx *f, const char *alias_rcpt)
{
    char buf[2048];

    snprintf(buf, sizeof(buf), "[{'module':'script','name':'alias',"
             "'rcpt':%s},%s]", alias_rcpt, mbox);
    fx_build(f, buf);
}

static void
test_claim_rule(void **state)
{
    static const char *want[] = { "a@example.com", "user@remote.org" };
    struct fx f;

    fx_alias(&f, "{}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(f.ctx->reply_code, 0);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "nobody@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", "<nobody@example.com>: Recipient "
                 "address rejected: User unknown in local recipient table");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "U@LocalHost.", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "postmaster", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "x@remote.org", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 554, "5.7.1", "<x@remote.org>: Relay access denied");
    /* A module's own verdicts at RCPT. */
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "user@remote.org", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "bad@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "tmp@example.com", &lim),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.7.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "d@example.com", &lim),
                     MODMTA_DISCARD);
    assert_rcpts(&f, want, 2);
    assert_null(f.ctx->rcpt_original);
    fx_free(&f);
}

static void
test_rewrite_reruns_chain(void **state)
{
    static const char *want[] = { "a@example.com", "b@example.com" };
    struct fx f;

    fx_alias(&f, "{'list@example.com':{'verdict':'accept',"
                 "'rewrite':['a@example.com','b@example.com']}}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "list@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_rcpts(&f, want, 2);
    fx_free(&f);
}

/* A rewrite's envelope sender goes to the final recipients below it, the
 * innermost winning; a recipient already accepted keeps its own. */
static void
test_rewrite_sender(void **state)
{
    struct fx f;

    fx_alias(&f, "{'outer@example.com':{'verdict':'accept',"
                 "'rewrite':['list1@example.com','a@example.com',"
                 "'sub@example.com'],"
                 "'rewrite_sender':'owner-outer@example.com'},"
                 "'list1@example.com':{'verdict':'accept',"
                 "'rewrite':['b@example.com','c@example.com'],"
                 "'rewrite_sender':'owner-list1@example.com'},"
                 "'sub@example.com':{'verdict':'accept',"
                 "'rewrite':['x4@example.com']}}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "c@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "outer@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(modmta_rcpt_count(f.ctx), 4);
    assert_null(modmta_ctx_rcpt_sender(f.ctx, "c@example.com"));
    assert_string_equal(modmta_ctx_rcpt_sender(f.ctx, "a@example.com"),
                        "owner-outer@example.com");
    assert_string_equal(modmta_ctx_rcpt_sender(f.ctx, "b@example.com"),
                        "owner-list1@example.com");
    assert_string_equal(modmta_ctx_rcpt_sender(f.ctx, "x4@example.com"),
                        "owner-outer@example.com");
    fx_free(&f);
}

static void
test_rewrite_unclaimed_target(void **state)
{
    struct fx f;

    fx_alias(&f, "{'list@example.com':{'verdict':'accept',"
                 "'rewrite':['a@example.com','z@example.com']},"
                 "'fwd@example.com':{'verdict':'accept',"
                 "'rewrite':['z@elsewhere.net']}}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "list@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", "<list@example.com>: Recipient "
                 "address rejected: User unknown in local recipient table");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "fwd@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 554, "5.7.1", "<fwd@example.com>: Relay access "
                 "denied");
    /* All or nothing: a@example.com was not added. */
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    fx_free(&f);
}

static void
test_rewrite_loop(void **state)
{
    static const char *want[] = { "a@example.com", "c@example.com",
                                  "b@example.com" };
    struct fx f;

    /* a -> b, c; b -> a: a is its own final recipient, c once. */
    fx_alias(&f, "{'a@example.com':{'verdict':'accept',"
                 "'rewrite':['b@example.com','c@example.com',"
                 "'c@example.com']},"
                 "'b@example.com':{'verdict':'accept',"
                 "'rewrite':['a@example.com']}}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_rcpts(&f, want, 2);
    /* From b: b -> a -> (b: final), c. */
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "b@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_rcpts(&f, want, 3);
    fx_free(&f);
}

static void
test_rewrite_depth_limit(void **state)
{
    static const char *want[] = { "x4@example.com" };
    struct config_limits l = lim;
    struct fx f;

    fx_alias(&f, "{'x1@example.com':{'verdict':'accept',"
                 "'rewrite':['x2@example.com']},"
                 "'x2@example.com':{'verdict':'accept',"
                 "'rewrite':['x3@example.com']},"
                 "'x3@example.com':{'verdict':'accept',"
                 "'rewrite':['x4@example.com']}}");
    l.rewrite_depth = 2;
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "x1@example.com", &l),
                     MODMTA_REJECT);
    assert_reply(&f, 554, "5.4.6", NULL);
    assert_non_null(strstr(f.ctx->reply_text, "x1@example.com"));
    assert_non_null(strstr(f.ctx->reply_text, "loop"));
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    l.rewrite_depth = 3;
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "x1@example.com", &l),
                     MODMTA_ACCEPT);
    assert_rcpts(&f, want, 1);
    fx_free(&f);
}

static void
test_rewrite_max_targets(void **state)
{
    struct config_limits l = lim;
    struct fx f;

    fx_alias(&f, "{'list@example.com':{'verdict':'accept','rewrite':"
                 "['a@example.com','b@example.com','c@example.com']}}");
    l.rewrite_max = 2;
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "list@example.com", &l),
                     MODMTA_REJECT);
    assert_reply(&f, 554, "5.4.6", NULL);
    assert_non_null(strstr(f.ctx->reply_text, "too many recipients"));
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    l.rewrite_max = 3;
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "list@example.com", &l),
                     MODMTA_ACCEPT);
    assert_int_equal(modmta_rcpt_count(f.ctx), 3);
    fx_free(&f);
}

static void
test_rewrite_tempfail_wins(void **state)
{
    struct fx f;

    fx_alias(&f, "{'l1@example.com':{'verdict':'accept','rewrite':"
                 "['bad@example.com','tmp@example.com']},"
                 "'l2@example.com':{'verdict':'accept','rewrite':"
                 "['a@example.com','bad@example.com','d@example.com']},"
                 "'l3@example.com':{'verdict':'accept','rewrite':"
                 "['d@example.com']},"
                 "'l4@example.com':{'verdict':'accept','rewrite':"
                 "['tmp@example.com','bad@example.com']}}");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "l1@example.com", &lim),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.7.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "l4@example.com", &lim),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.7.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "l2@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    /* Every branch discarded: the recipient is accepted and dropped. */
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "l3@example.com", &lim),
                     MODMTA_DISCARD);
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    fx_free(&f);
}

static void
test_added_recipients(void **state)
{
    static const char *want[] = { "a@example.com", "archive@example.com" };
    struct fx f;

    fx_build(&f, "[{'module':'script','name':'bcc','rcpt':{'*':"
                 "{'verdict':'continue','add':['archive@example.com']}}},"
                 "{'module':'script','name':'mbox','rcpt':"
                 "{'a@example.com':'accept'}}]");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "nobody@example.com", &lim),
                     MODMTA_REJECT);
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    assert_int_equal(f.ctx->nadded, 0);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_rcpts(&f, want, 2);
    assert_int_equal(f.ctx->nadded, 0);
    fx_free(&f);
}

/* ---- delivery ---- */

/* A module built against ABI 1.2 delivers through deliver() in a 1.3
 * chain, after a transport that does not claim the recipient. */
static void
test_abi12_module_delivers(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'transport','route':{'*':'continue'}},"
                 "{'module':'abi12'}]");
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DELIVERED);
    assert_reply(&f, 250, "2.0.0", "stored by abi12");
    fx_free(&f);
}

static void
test_deliver_declined_falls_through(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','name':'d1','deliver':{'*':'declined'},"
                 "'reply':[550,'5.1.1','ignored']},"
                 "{'module':'script','name':'d2','deliver':"
                 "{'a@example.com':'delivered','f@example.com':'failed',"
                 "'q@example.com':'deferred','x@example.com':'bogus'}}]");
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DELIVERED);
    assert_int_equal(f.ctx->reply_code / 100, 2);
    assert_int_equal(route_status(f.ch, f.ctx, "f@example.com"),
                     MODMTA_FAILED);
    assert_int_equal(f.ctx->reply_code / 100, 5);
    assert_int_equal(route_status(f.ch, f.ctx, "q@example.com"),
                     MODMTA_DEFERRED);
    assert_int_equal(f.ctx->reply_code / 100, 4);
    assert_int_equal(route_status(f.ch, f.ctx, "x@example.com"),
                     MODMTA_DEFERRED);
    assert_reply(&f, 451, "4.3.0", NULL);
    assert_int_equal(route_status(f.ch, f.ctx, "n@example.com"),
                     MODMTA_DEFERRED);
    assert_reply(&f, 451, "4.3.5", "no module delivers this recipient");
    assert_null(f.ctx->mod);
    fx_free(&f);
}

/* ---- hook time budgets ---- */

static void
test_budget_config(void **state)
{
    static const char *want[] = {
        "$.modules[0].hook_timeout: expected a time from 1ms to 1h",
        "$.modules[1].hook_timeout: expected a time",
        "$.modules[2].hook_timeout: expected a time",
        "$.modules[3].hook_timeout: expected a time",
        "$.modules[4].hook_timeout: expected a time",
        "$.modules[5].on_hook_timeout: expected \"tempfail\" or "
        "\"continue\"",
        "$.modules[6].on_hook_timeout: expected",
    };
    struct config_errors errs = { 0 };
    struct fx f;
    json_t *m;

    m = js("[{'module':'script','name':'a','hook_timeout':'0ms'},"
           "{'module':'script','name':'b','hook_timeout':'2h'},"
           "{'module':'script','name':'c','hook_timeout':'1.5s'},"
           "{'module':'script','name':'d','hook_timeout':-1},"
           "{'module':'script','name':'e','hook_timeout':3601},"
           "{'module':'script','name':'f','on_hook_timeout':'fail'},"
           "{'module':'script','name':'g','on_hook_timeout':1}]");
    assert_null(build(m, &errs));
    assert_int_equal(errs.n, 7);
    for (size_t i = 0; i < errs.n; i++)
        assert_non_null(strstr(errs.msgs[i], want[i]));
    config_errors_free(&errs);
    json_decref(m);
    /* every form of a good one */
    fx_build(&f, "[{'module':'script','name':'a','hook_timeout':'250ms'},"
                 "{'module':'script','name':'b','hook_timeout':'2s',"
                 "'on_hook_timeout':'continue'},"
                 "{'module':'script','name':'c','hook_timeout':'1m',"
                 "'on_hook_timeout':'tempfail'},"
                 "{'module':'script','name':'d','hook_timeout':3600}]");
    fx_free(&f);
}

/* Every verdict hook and route() has a deadline; deliver() has none. */
static void
test_budget_deadlines(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','expect_deadline':{'connect':true,"
                 "'helo':true,'mail':true,'rcpt':true,'data':true,"
                 "'deliver':false},'rcpt':{'*':'accept'},"
                 "'deliver':{'*':'delivered'}}]");
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_CONTINUE);
    assert_int_equal(chain_helo(f.ch, f.ctx, "client.test"),
                     MODMTA_CONTINUE);
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_CONTINUE);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(chain_data(f.ch, f.ctx), MODMTA_CONTINUE);
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DELIVERED);
    /* none left behind for the core */
    assert_int_equal(modmta_ctx_deadline(f.ctx), 0);
    fx_free(&f);
}

/* A hook that returns after its deadline: its verdict and reply are
 * discarded, tempfail answers 451 4.3.0 and ends the step. */
static void
test_budget_tempfail(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','name':'slow','hook_timeout':'20ms',"
                 "'sleep':{'mail':'deadline','rcpt':'deadline'},"
                 "'mail':'reject','reply':[554,'5.7.1','go away'],"
                 "'rcpt':{'*':'accept'}},"
                 "{'module':'script','name':'after','mail':'accept',"
                 "'rcpt':{'*':'accept'}}]");
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.3.0", "Try again later: time limit exceeded");
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 451, "4.3.0", NULL);
    assert_int_equal(modmta_rcpt_count(f.ctx), 0);
    fx_free(&f);
}

/* on_hook_timeout continue: as if the hook had said CONTINUE, so the
 * next module decides. */
static void
test_budget_continue(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','name':'slow','hook_timeout':'20ms',"
                 "'on_hook_timeout':'continue',"
                 "'sleep':{'mail':'deadline','rcpt':'deadline'},"
                 "'mail':'reject','rcpt':{'*':'accept'}},"
                 "{'module':'script','name':'after','mail':'accept',"
                 "'rcpt':{'b@example.com':'accept'}}]");
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_ACCEPT);
    assert_int_equal(f.ctx->reply_code, 0);
    /* slow's claim does not count: a@ is nobody's */
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "a@example.com", &lim),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.1.1", NULL);
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "b@example.com", &lim),
                     MODMTA_ACCEPT);
    fx_free(&f);
}

/* Slow but within its budget: the verdict stands. */
static void
test_budget_within(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'script','hook_timeout':'10s',"
                 "'sleep':{'mail':30},'mail':'reject'}]");
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.1", NULL);
    fx_free(&f);
}

/* route() is budgeted: tempfail defers the recipient, continue passes
 * it to the next module. */
static void
test_budget_route(void **state)
{
    struct fx f;

    fx_build(&f, "[{'module':'transport','hook_timeout':'20ms',"
                 "'route_overrun':true,'route':{'*':'dest:x'}},"
                 "{'module':'script','deliver':{'*':'delivered'}}]");
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DEFERRED);
    assert_reply(&f, 451, "4.3.0", "Try again later: time limit exceeded");
    fx_free(&f);
    fx_build(&f, "[{'module':'transport','hook_timeout':'20ms',"
                 "'on_hook_timeout':'continue','route_overrun':true,"
                 "'route':{'*':'dest:x'}},"
                 "{'module':'script','deliver':{'*':'delivered'}}]");
    assert_int_equal(route_status(f.ch, f.ctx, "a@example.com"),
                     MODMTA_DELIVERED);
    fx_free(&f);
}

/* ---- the tracer and the dry route (modmtatest) ---- */

struct trace_rec {
    char what[96];            /* "instance hook arg" */
    int after, timed_out;
    modmta_verdict returned, verdict;
};

struct trace_log {
    struct trace_rec recs[32];
    size_t n;
};

static void
trace_cb(void *arg, modmta_ctx *ctx, const struct chain_call *call)
{
    struct trace_log *log = arg;
    struct trace_rec *r = &log->recs[log->n++];

    assert_true(log->n <= 32);
    assert_string_equal(modmta_host_instance(ctx->host), call->instance);
    snprintf(r->what, sizeof(r->what), "%s %s %s", call->instance,
             call->hook, call->arg != NULL ? call->arg : "-");
    r->after = call->after;
    r->timed_out = call->timed_out;
    r->returned = call->returned;
    r->verdict = call->verdict;
}

static void
assert_trace(const struct trace_rec *r, const char *what, int after,
             modmta_verdict returned, modmta_verdict verdict)
{
    assert_string_equal(r->what, what);
    assert_int_equal(r->after, after);
    if (after) {
        assert_int_equal(r->returned, returned);
        assert_int_equal(r->verdict, verdict);
    }
}

static void
test_trace(void **state)
{
    struct trace_log log = { .n = 0 };
    struct fx f;

    fx_build(&f, "[{'module':'script','name':'a','mail':'bogus',"
                 "'rcpt':{'l@example.com':{'verdict':'accept',"
                 "'rewrite':['m@example.com']}}},"
                 "{'module':'script','name':'b','hook_timeout':'20ms',"
                 "'on_hook_timeout':'continue','sleep':{'connect':"
                 "'deadline'},'connect':'reject',"
                 "'rcpt':{'*':'accept'}}]");
    chain_set_trace(f.ch, trace_cb, &log);
    /* b overran: its REJECT discarded, the chain goes on as CONTINUE */
    assert_int_equal(chain_connect(f.ch, f.ctx), MODMTA_CONTINUE);
    assert_int_equal(log.n, 4);
    assert_trace(&log.recs[0], "a on_connect -", 0, 0, 0);
    assert_trace(&log.recs[1], "a on_connect -", 1, MODMTA_CONTINUE,
                 MODMTA_CONTINUE);
    assert_trace(&log.recs[3], "b on_connect -", 1, MODMTA_REJECT,
                 MODMTA_CONTINUE);
    assert_true(log.recs[3].timed_out);
    /* an unknown verdict, as returned and as the chain reads it */
    log.n = 0;
    assert_int_equal(chain_mail(f.ch, f.ctx, "s@example.org"),
                     MODMTA_TEMPFAIL);
    assert_int_equal(log.n, 2);
    assert_trace(&log.recs[1], "a on_mail s@example.org", 1, 42,
                 MODMTA_TEMPFAIL);
    assert_false(log.recs[1].timed_out);
    /* the rewrite walk: each address through the chain, in order */
    log.n = 0;
    assert_int_equal(chain_rcpt(f.ch, f.ctx, "l@example.com", &lim),
                     MODMTA_ACCEPT);
    assert_int_equal(log.n, 6);
    assert_trace(&log.recs[1], "a on_rcpt l@example.com", 1,
                 MODMTA_ACCEPT, MODMTA_ACCEPT);
    assert_trace(&log.recs[3], "a on_rcpt m@example.com", 1,
                 MODMTA_CONTINUE, MODMTA_CONTINUE);
    assert_trace(&log.recs[5], "b on_rcpt m@example.com", 1,
                 MODMTA_ACCEPT, MODMTA_ACCEPT);
    /* notifications are traced too */
    log.n = 0;
    chain_disconnect(f.ch, f.ctx);
    assert_int_equal(log.n, 4);
    assert_trace(&log.recs[3], "b on_disconnect -", 1, MODMTA_CONTINUE,
                 MODMTA_CONTINUE);
    fx_free(&f);
}

static void
test_auth_notifies_every_module(void **state)
{
    struct trace_log log = { .n = 0 };
    struct fx f;

    /* on_auth is a notification: a REJECT from the first module does not
     * keep the second from hearing of the AUTH */
    fx_build(&f, "[{'module':'script','name':'a','auth':'reject'},"
                 "{'module':'script','name':'b'}]");
    chain_set_trace(f.ch, trace_cb, &log);
    assert_int_equal(chain_auth(f.ch, f.ctx, "alice", 1), MODMTA_CONTINUE);
    assert_int_equal(log.n, 4);
    assert_trace(&log.recs[1], "a on_auth alice", 1, MODMTA_REJECT,
                 MODMTA_REJECT);
    assert_trace(&log.recs[3], "b on_auth alice", 1, MODMTA_CONTINUE,
                 MODMTA_CONTINUE);
    assert_int_equal(f.ctx->reply_code, 0);
    fx_free(&f);
}

static void
test_route_dry(void **state)
{
    struct trace_log log = { .n = 0 };
    struct chain_route r;
    struct fx f;

    fx_build(&f, "[{'module':'transport','route':{'b@example.com':"
                 "'dest:relay.test','f@example.com':'reject'}},"
                 "{'module':'script','name':'mbox','deliver':"
                 "{'*':'delivered'}}]");
    chain_set_trace(f.ch, trace_cb, &log);
    chain_route_dry(f.ch, f.ctx, "b@example.com", &r);
    assert_true(r.claimed);
    assert_false(r.offered);
    assert_int_equal(r.inst, 0);
    assert_string_equal(r.dest, "relay.test");
    assert_int_equal(log.n, 2);
    assert_trace(&log.recs[1], "transport route b@example.com", 1,
                 MODMTA_ACCEPT, MODMTA_ACCEPT);
    /* the deliver() module is named, not called: nothing decided */
    chain_route_dry(f.ch, f.ctx, "a@example.com", &r);
    assert_false(r.claimed);
    assert_true(r.offered);
    assert_int_equal(r.inst, 1);
    assert_int_equal(r.status, MODMTA_DECLINED);
    assert_string_equal(f.ctx->decided_by, "mbox");
    assert_int_equal(f.ctx->reply_code, 0);
    assert_int_equal(log.n, 4);
    /* a route() decision stands as in chain_route */
    chain_route_dry(f.ch, f.ctx, "f@example.com", &r);
    assert_false(r.offered);
    assert_int_equal(r.status, MODMTA_FAILED);
    assert_int_equal(f.ctx->reply_code, 550);
    assert_null(f.ctx->mod);
    fx_free(&f);
}

/* ---- extensions ---- */

static void
test_ehlo_verbs_serve(void **state)
{
    void *inst = NULL;
    struct fx f;

    fx_build(&f, "[{'module':'good'},"
                 "{'module':'script','name':'s1','ehlo':'X-ONE',"
                 "'xtest':'reject'},"
                 "{'module':'script','name':'s2','ehlo':'X-TWO',"
                 "'xtest':'accept'}]");
    chain_ehlo(f.ch, f.ctx);
    assert_int_equal(f.ctx->nehlo, 2);
    assert_string_equal(f.ctx->ehlo[0], "X-ONE");
    assert_string_equal(f.ctx->ehlo[1], "X-TWO");

    assert_non_null(chain_find_verb(f.ch, "xtest", &inst));
    assert_non_null(inst);
    assert_null(chain_find_verb(f.ch, "NOPE", &inst));
    /* The first instance with the verb handles it. */
    assert_int_equal(chain_run_verb(f.ch, f.ctx, NULL, "XTEST", ""),
                     MODMTA_REJECT);
    assert_reply(&f, 550, "5.7.0", NULL);
    assert_int_equal(chain_run_verb(f.ch, f.ctx, NULL, "NOPE", ""),
                     MODMTA_REJECT);
    assert_int_equal(f.ctx->reply_code, 500);

    assert_int_equal(chain_has_server(f.ch, "script"), 1);
    assert_int_equal(chain_has_server(f.ch, "good"), 0);
    assert_int_equal(chain_serve(f.ch, "script", f.ctx, NULL), 0);
    assert_reply(&f, 250, "", "served by s1");
    assert_ptr_equal(f.ctx->host, f.core);
    assert_int_equal(chain_serve(f.ch, "pop3", f.ctx, NULL),
                     MODMTA_E_NOTFOUND);
    fx_free(&f);

    fx_build(&f, "[{'module':'script','xtest':'accept'}]");
    assert_int_equal(chain_run_verb(f.ch, f.ctx, NULL, "XTEST", ""),
                     MODMTA_ACCEPT);
    assert_reply(&f, 250, "2.0.0", NULL);
    fx_free(&f);
    fx_build(&f, "[{'module':'script','xtest':'tempfail'}]");
    assert_int_equal(chain_run_verb(f.ch, f.ctx, NULL, "XTEST", ""),
                     MODMTA_TEMPFAIL);
    assert_reply(&f, 454, "4.7.0", NULL);
    fx_free(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_duplicate_instance),
        cmocka_unit_test(test_all_errors_collected),
        cmocka_unit_test(test_empty_chain),
        cmocka_unit_test(test_load_once),
        cmocka_unit_test(test_first_decision_wins),
        cmocka_unit_test(test_default_replies),
        cmocka_unit_test(test_stream_steps),
        cmocka_unit_test(test_reply_class_corrected),
        cmocka_unit_test(test_unknown_verdict),
        cmocka_unit_test(test_claim_rule),
        cmocka_unit_test(test_rewrite_reruns_chain),
        cmocka_unit_test(test_rewrite_sender),
        cmocka_unit_test(test_rewrite_unclaimed_target),
        cmocka_unit_test(test_rewrite_loop),
        cmocka_unit_test(test_rewrite_depth_limit),
        cmocka_unit_test(test_rewrite_max_targets),
        cmocka_unit_test(test_rewrite_tempfail_wins),
        cmocka_unit_test(test_added_recipients),
        cmocka_unit_test(test_deliver_declined_falls_through),
        cmocka_unit_test(test_abi12_module_delivers),
        cmocka_unit_test(test_budget_config),
        cmocka_unit_test(test_budget_deadlines),
        cmocka_unit_test(test_budget_tempfail),
        cmocka_unit_test(test_budget_continue),
        cmocka_unit_test(test_budget_within),
        cmocka_unit_test(test_budget_route),
        cmocka_unit_test(test_trace),
        cmocka_unit_test(test_auth_notifies_every_module),
        cmocka_unit_test(test_route_dry),
        cmocka_unit_test(test_ehlo_verbs_serve),
    };

    return cmocka_run_group_tests(tests, setup_env, NULL);
}
