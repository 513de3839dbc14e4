/*
 * A module that misbehaves on purpose (tests/e2e/test_misbehave.py).
 * It declares no capability. Config keys, each optional:
 *
 *   "verdict": {HOOK: integer}   return this raw value from HOOK (mail,
 *            rcpt, data; "deliver" for deliver()): out-of-range values
 *            the enums do not have
 *   "actions": HOOK    in HOOK (rcpt or data), call every action a
 *            capability guards and log each result as
 *            "misbehave: ACTION=RESULT"
 *   "crash": {HOOK: "path"}      in HOOK (rcpt, data or deliver), crash
 *            with a segmentation fault (a store through a null pointer)
 *            while the file at path exists
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/modmta.h>

struct misbehave {
    json_t *conf;
};

static void *
misbehave_create(const json_t *conf, const modmta_host *host,
                 modmta_err *err_r)
{
    struct misbehave *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    m->conf = json_incref((json_t *)conf);
    return m;
}

static void
misbehave_destroy(void *inst)
{
    struct misbehave *m = inst;

    json_decref(m->conf);
    free(m);
}

static void
misbehave_crash(const struct misbehave *m, const char *hook)
{
    const char *path = json_string_value(
        json_object_get(json_object_get(m->conf, "crash"), hook));

    if (path != NULL && access(path, F_OK) == 0) {
        volatile int *volatile nowhere = NULL;

        *nowhere = 1;
    }
}

static void
misbehave_report(modmta_ctx *ctx, const char *action, int rc)
{
    modmta_log(ctx, MODMTA_LOG_INFO, "misbehave: %s=%s", action,
               rc == 0 ? "ok" : modmta_strerror(rc));
}

/* Every action a capability guards; none may succeed. */
static void
misbehave_actions(const struct misbehave *m, modmta_ctx *ctx,
                  const char *hook)
{
    const char *body = "replaced\r\n";
    const char *when = json_string_value(json_object_get(m->conf,
                                                         "actions"));

    if (when == NULL || strcmp(when, hook) != 0)
        return;
    misbehave_report(ctx, "hdr_add", modmta_hdr_add(ctx, "X-Bad", "1"));
    misbehave_report(ctx, "hdr_change",
                     modmta_hdr_change(ctx, "Subject", 0, "changed"));
    misbehave_report(ctx, "hdr_delete", modmta_hdr_delete(ctx, "Subject", 0));
    misbehave_report(ctx, "sender_set",
                     modmta_sender_set(ctx, "evil@localhost"));
    misbehave_report(ctx, "rcpt_add", modmta_rcpt_add(ctx, "evil@localhost"));
    misbehave_report(ctx, "rcpt_remove",
                     modmta_rcpt_remove(ctx, "bob@localhost"));
    misbehave_report(ctx, "rcpt_rewrite",
                     modmta_rcpt_rewrite(ctx, "evil@localhost"));
    misbehave_report(ctx, "quarantine", modmta_quarantine(ctx, "bad"));
    misbehave_report(ctx, "body_replace",
                     modmta_body_replace(ctx, body, strlen(body)));
}

/* The configured raw value for hook, or dflt. */
static int
misbehave_value(const struct misbehave *m, const char *hook, int dflt)
{
    const json_t *v = json_object_get(json_object_get(m->conf, "verdict"),
                                      hook);

    return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static modmta_verdict
misbehave_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    return (modmta_verdict)misbehave_value(inst, "mail", MODMTA_CONTINUE);
}

static modmta_verdict
misbehave_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    misbehave_crash(inst, "rcpt");
    misbehave_actions(inst, ctx, "rcpt");
    return (modmta_verdict)misbehave_value(inst, "rcpt", MODMTA_CONTINUE);
}

static modmta_verdict
misbehave_on_data(void *inst, modmta_ctx *ctx)
{
    misbehave_crash(inst, "data");
    misbehave_actions(inst, ctx, "data");
    return (modmta_verdict)misbehave_value(inst, "data", MODMTA_CONTINUE);
}

static modmta_dstatus
misbehave_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    misbehave_crash(inst, "deliver");
    return (modmta_dstatus)misbehave_value(inst, "deliver", MODMTA_DECLINED);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "misbehave",
    .version = "1.0.0",
    .caps = 0,
    .create = misbehave_create,
    .destroy = misbehave_destroy,
    .on_mail = misbehave_on_mail,
    .on_rcpt = misbehave_on_rcpt,
    .on_data = misbehave_on_data,
    .deliver = misbehave_deliver,
};
