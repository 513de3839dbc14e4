/*
 * A module whose behaviour its JSON section scripts, so that one .so can
 * stand for many modules in the chain tests:
 *
 *   "connect", "helo", "mail", "data", "xtest": a verdict name
 *   "reply": [code, "esc" or null, "text"]   set with those verdicts
 *   "rcpt": {"addr" or "*": "verdict" or {"verdict": ..., "rewrite":
 *            [...], "rewrite_sender": "addr", "add": [...],
 *            "reply": [...]}}
 *   "deliver": {"addr" or "*": "delivered|deferred|failed|declined|bogus"}
 *   "ehlo": "KEYWORD"
 *   "milter": {"sender" or "*": actions}, done at on_data before the
 *            "data" verdict, chosen by the envelope sender at MAIL; each
 *            action optional:
 *            {"add_header": [["Name", "value"], ...],
 *             "change_header": [["Name", idx, "value"], ...],
 *             "delete_header": [["Name", idx], ...],
 *             "add_rcpt": [...], "remove_rcpt": [...],
 *             "sender": "addr" ("" for <>), "quarantine": "reason"}
 *            an action that fails gives TEMPFAIL, 451 naming it
 *   "fail": "message"   create() fails, naming $.modules[N].fail
 *
 * A verdict name is continue, accept, reject, tempfail, discard or bogus
 * (an invalid value). Unset hooks continue.
 */
#include <string.h>

#include <modmta/modmta.h>

struct script_name {
    const char *name;
    int value;
};

static const struct script_name script_verdicts[] = {
    { "continue", MODMTA_CONTINUE }, { "accept", MODMTA_ACCEPT },
    { "reject", MODMTA_REJECT },     { "tempfail", MODMTA_TEMPFAIL },
    { "discard", MODMTA_DISCARD },   { "bogus", 42 },
    { NULL, 0 },
};

static const struct script_name script_dstatus[] = {
    { "delivered", MODMTA_DELIVERED }, { "deferred", MODMTA_DEFERRED },
    { "failed", MODMTA_FAILED },       { "declined", MODMTA_DECLINED },
    { "bogus", 42 },                   { NULL, 0 },
};

static int
script_lookup(const struct script_name *t, const char *name, int dflt)
{
    size_t i;

    for (i = 0; name != NULL && t[i].name != NULL; i++)
        if (strcmp(t[i].name, name) == 0)
            return t[i].value;
    return dflt;
}

static void
script_reply(modmta_ctx *ctx, const json_t *r)
{
    const char *esc = json_string_value(json_array_get(r, 1));
    const char *text = json_string_value(json_array_get(r, 2));

    if (json_is_array(r))
        modmta_reply(ctx, (int)json_integer_value(json_array_get(r, 0)),
                     esc, "%s", text != NULL ? text : "");
}

/* The verdict of a top-level key, with the top-level reply. */
static modmta_verdict
script_step(const json_t *conf, modmta_ctx *ctx, const char *key)
{
    const char *v = json_string_value(json_object_get(conf, key));

    if (v == NULL)
        return MODMTA_CONTINUE;
    script_reply(ctx, json_object_get(conf, "reply"));
    return script_lookup(script_verdicts, v, MODMTA_CONTINUE);
}

/* The entry for addr in the object at key, else its "*" entry. */
static const json_t *
script_entry(const json_t *conf, const char *key, const char *addr)
{
    const json_t *map = json_object_get(conf, key);
    const json_t *e = json_object_get(map, addr);

    return e != NULL ? e : json_object_get(map, "*");
}

static void *
script_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    const char *fail = json_string_value(json_object_get(conf, "fail"));
    char path[300];

    if (fail != NULL) {
        snprintf(path, sizeof(path), "%s.fail", modmta_host_path(host));
        modmta_err_set(err_r, path, "%s", fail);
        return NULL;
    }
    return json_incref((json_t *)conf);
}

static void
script_destroy(void *inst)
{
    json_decref(inst);
}

static modmta_verdict
script_on_connect(void *inst, modmta_ctx *ctx)
{
    return script_step(inst, ctx, "connect");
}

static modmta_verdict
script_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    return script_step(inst, ctx, "helo");
}

static modmta_verdict
script_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    return script_step(inst, ctx, "mail");
}

/* 0, or TEMPFAIL with a reply naming the failed action. */
static int
script_check(modmta_ctx *ctx, const char *action, int rc)
{
    if (rc >= 0)
        return 0;
    modmta_reply(ctx, 451, "4.3.0", "script: %s: %s", action,
                 modmta_strerror(rc));
    return -1;
}

/* Header edits: [name, value], [name, idx, value] and [name, idx]. */
static int
script_headers(modmta_ctx *ctx, const json_t *m)
{
    const char *name, *value;
    size_t i, idx;
    json_t *a;

    json_array_foreach(json_object_get(m, "add_header"), i, a) {
        name = json_string_value(json_array_get(a, 0));
        value = json_string_value(json_array_get(a, 1));
        if (script_check(ctx, "add_header",
                         modmta_hdr_add(ctx, name, value)) < 0)
            return -1;
    }
    json_array_foreach(json_object_get(m, "change_header"), i, a) {
        name = json_string_value(json_array_get(a, 0));
        idx = (size_t)json_integer_value(json_array_get(a, 1));
        value = json_string_value(json_array_get(a, 2));
        if (script_check(ctx, "change_header",
                         modmta_hdr_change(ctx, name, idx, value)) < 0)
            return -1;
    }
    json_array_foreach(json_object_get(m, "delete_header"), i, a) {
        name = json_string_value(json_array_get(a, 0));
        idx = (size_t)json_integer_value(json_array_get(a, 1));
        if (script_check(ctx, "delete_header",
                         modmta_hdr_delete(ctx, name, idx)) < 0)
            return -1;
    }
    return 0;
}

/* Each address of the list at key, given to fn. */
static int
script_rcpts(modmta_ctx *ctx, const json_t *m, const char *key,
             int (*fn)(modmta_ctx *, const char *))
{
    size_t i;
    json_t *a;

    json_array_foreach(json_object_get(m, key), i, a)
        if (script_check(ctx, key, fn(ctx, json_string_value(a))) < 0)
            return -1;
    return 0;
}

/* The milter action set, as the "milter" object says. */
static int
script_milter(modmta_ctx *ctx, const json_t *m)
{
    const char *sender = json_string_value(json_object_get(m, "sender"));
    const char *q = json_string_value(json_object_get(m, "quarantine"));

    if (script_headers(ctx, m) < 0
        || script_rcpts(ctx, m, "add_rcpt", modmta_rcpt_add) < 0
        || script_rcpts(ctx, m, "remove_rcpt", modmta_rcpt_remove) < 0)
        return -1;
    if (sender != NULL
        && script_check(ctx, "sender", modmta_sender_set(ctx, sender)) < 0)
        return -1;
    if (q != NULL
        && script_check(ctx, "quarantine", modmta_quarantine(ctx, q)) < 0)
        return -1;
    return 0;
}

static modmta_verdict
script_on_data(void *inst, modmta_ctx *ctx)
{
    const char *sender = modmta_sender(ctx);
    const json_t *m = script_entry(inst, "milter", sender ? sender : "");

    if (m != NULL && script_milter(ctx, m) < 0)
        return MODMTA_TEMPFAIL;
    return script_step(inst, ctx, "data");
}

static void
script_each(modmta_ctx *ctx, const json_t *list,
            int (*fn)(modmta_ctx *, const char *))
{
    size_t i;
    json_t *a;

    json_array_foreach(list, i, a)
        fn(ctx, json_string_value(a));
}

static modmta_verdict
script_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const json_t *e = script_entry(inst, "rcpt", rcpt);

    if (json_is_string(e))
        return script_lookup(script_verdicts, json_string_value(e),
                             MODMTA_CONTINUE);
    script_each(ctx, json_object_get(e, "rewrite"), modmta_rcpt_rewrite);
    if (json_is_string(json_object_get(e, "rewrite_sender")))
        modmta_rcpt_rewrite_sender(ctx, json_string_value(
                                   json_object_get(e, "rewrite_sender")));
    script_each(ctx, json_object_get(e, "add"), modmta_rcpt_add);
    script_reply(ctx, json_object_get(e, "reply"));
    return script_lookup(script_verdicts,
                         json_string_value(json_object_get(e, "verdict")),
                         MODMTA_CONTINUE);
}

static modmta_dstatus
script_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const json_t *e = script_entry(inst, "deliver", rcpt);

    script_reply(ctx, json_object_get(inst, "reply"));
    return script_lookup(script_dstatus, json_string_value(e),
                         MODMTA_DECLINED);
}

static void
script_ehlo(void *inst, modmta_ctx *ctx)
{
    const char *kw = json_string_value(json_object_get(inst, "ehlo"));

    if (kw != NULL)
        modmta_ehlo_add(ctx, kw);
}

static modmta_verdict
script_xtest(void *inst, modmta_ctx *ctx, modmta_conn *conn,
             const char *args)
{
    return script_step(inst, ctx, "xtest");
}

static void
script_serve(void *inst, modmta_ctx *ctx, modmta_conn *conn)
{
    modmta_reply(ctx, 250, NULL, "served by %s",
                 modmta_host_instance(modmta_ctx_host(ctx)));
}

static const modmta_verb script_verbs[] = {
    { "XTEST", script_xtest },
    { NULL, NULL },
};

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "script",
    .version = "1.0.0",
    .caps = MODMTA_CAP_REWRITE | MODMTA_CAP_ADDRCPT | MODMTA_CAP_ADDHDRS
            | MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM | MODMTA_CAP_DELRCPT
            | MODMTA_CAP_QUARANTINE,
    .create = script_create,
    .destroy = script_destroy,
    .on_connect = script_on_connect,
    .on_helo = script_on_helo,
    .on_mail = script_on_mail,
    .on_rcpt = script_on_rcpt,
    .on_data = script_on_data,
    .deliver = script_deliver,
    .ehlo = script_ehlo,
    .verbs = script_verbs,
    .serve = script_serve,
};
