/*
 * The local stores' unit-test fixture (fx.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include <fake.h>
#include <files.h>

#include "fx.h"

extern const modmta_module modmta_descriptor;

void *
fx_make(struct fx *fx, const char *conf_fmt, modmta_err *err)
{
    char text[1024];
    json_error_t jerr;
    json_t *conf;
    void *inst;

    snprintf(text, sizeof(text), conf_fmt, fx->mail);
    conf = json_loads(text, 0, &jerr);
    assert_non_null(conf);
    memset(err, 0, sizeof(*err));
    inst = modmta_descriptor.create(conf, fx->host, err);
    json_decref(conf);
    return inst;
}

void
fx_use(struct fx *fx, const char *conf_fmt)
{
    modmta_err err;

    if (fx->inst != NULL)
        modmta_descriptor.destroy(fx->inst);
    fx->inst = fx_make(fx, conf_fmt, &err);
    if (fx->inst == NULL)
        fail_msg("create: %s: %s", err.path, err.msg);
}

struct fx *
fx_new(const char *name, const char *mail_sub, const char *conf_fmt)
{
    struct fx *fx = calloc(1, sizeof(*fx));

    assert_non_null(fx);
    modmta_test_tmpdir(fx->dir, sizeof(fx->dir), name);
    snprintf(fx->mail, sizeof(fx->mail), "%s/%s", fx->dir, mail_sub);
    snprintf(fx->msg, sizeof(fx->msg), "%s/msg", fx->dir);
    modmta_test_write_file(fx->msg, FX_MSG);
    fx->host = modmta_test_host_new(name, "example.com", "localhost", NULL);
    fx->ctx = modmta_test_ctx_new(fx->host, "192.0.2.1");
    fx_use(fx, conf_fmt);
    return fx;
}

void
fx_free(struct fx *fx)
{
    modmta_descriptor.destroy(fx->inst);
    modmta_test_ctx_free(fx->ctx);
    modmta_test_host_free(fx->host);
    modmta_test_rmtree(fx->dir);
    free(fx);
}

modmta_verdict
fx_rcpt(struct fx *fx, const char *addr)
{
    modmta_test_enter(fx->ctx, MODMTA_PHASE_RCPT, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.on_rcpt(fx->inst, fx->ctx, addr);
}

modmta_dstatus
fx_deliver(struct fx *fx, const char *addr, const char *qid,
                 int maybe_done)
{
    modmta_test_set_delivery(fx->ctx, qid, "alice@remote.test", maybe_done);
    modmta_test_set_message(fx->ctx, fx->msg);
    modmta_test_enter(fx->ctx, MODMTA_PHASE_DELIVER, &modmta_descriptor,
                      fx->inst);
    return modmta_descriptor.deliver(fx->inst, fx->ctx, addr);
}
