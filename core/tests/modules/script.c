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
 *   "queued": a verdict name for on_queued (ignored by the core)
 *   "queued_wait": "path"   on_queued waits (up to 30 s) for the file to
 *            exist, then logs "queued: marker seen" or "... missing"
 *
 * on_auth logs "auth user=U success=N" (its verdict, "auth", is not
 * used by the core).
 *
 * Before its verdict, each hook (HOOK: connect, helo, auth, mail, rcpt,
 * data, queued, deliver, disconnect) does what these say for it, in
 * order:
 *   "expect_deadline": {HOOK: true|false}  the call must (not) have a
 *            deadline (modmta_ctx_deadline), else TEMPFAIL 451
 *   "sleep": {HOOK: ms or "deadline"}  sleep ms, or until just past the
 *            call's deadline
 *   "shared_get": {HOOK: "key"}  modmta_shared_get; logs "shared_get
 *            key=K rc=N"; an error gives TEMPFAIL 451
 *   "notes": {HOOK: {"name": "string" or integer}}  set these notes; a
 *            failure gives TEMPFAIL 451 naming it
 *   "notes_log": {HOOK: ["name", ...]}  log each note: "note name=N
 *            int=V", "note name=N str=<V>" or "note name=N absent"
 *
 * A verdict name is continue, accept, reject, tempfail, discard or bogus
 * (an invalid value). Unset hooks continue.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "test_sleep.h"

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

struct script {
    json_t *conf;
    const modmta_host *host;
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
    struct script *sc;
    char path[300];

    if (fail != NULL) {
        snprintf(path, sizeof(path), "%s.fail", modmta_host_path(host));
        modmta_err_set(err_r, path, "%s", fail);
        return NULL;
    }
    if ((sc = calloc(1, sizeof(*sc))) == NULL) {
        modmta_err_set(err_r, NULL, "out of memory");
        return NULL;
    }
    sc->conf = json_incref((json_t *)conf);
    sc->host = host;
    return sc;
}

static void
script_destroy(void *inst)
{
    struct script *sc = inst;

    json_decref(sc->conf);
    free(sc);
}

/* The "sleep" entry of hook: ms, or "deadline" (until just past it). */
static void
script_sleep(const json_t *conf, modmta_ctx *ctx, const char *hook)
{
    const json_t *v = json_object_get(json_object_get(conf, "sleep"), hook);

    if (json_is_integer(v))
        test_sleep_ms(json_integer_value(v));
    else if (json_is_string(v))
        test_sleep_past_deadline(ctx);
}

static int
script_fail(modmta_ctx *ctx, const char *what)
{
    modmta_reply(ctx, 451, "4.3.0", "script: %s", what);
    return -1;
}

static int
script_set_notes(modmta_ctx *ctx, const json_t *notes)
{
    const char *name;
    const json_t *v;
    char what[128];
    int rc;

    json_object_foreach((json_t *)notes, name, v) {
        rc = json_is_integer(v)
                 ? modmta_note_set_int(ctx, name, json_integer_value(v))
                 : modmta_note_set_str(ctx, name, json_string_value(v));
        if (rc < 0) {
            snprintf(what, sizeof(what), "note %s: %s", name,
                     modmta_strerror(rc));
            return script_fail(ctx, what);
        }
    }
    return 0;
}

static void
script_log_notes(modmta_ctx *ctx, const json_t *names)
{
    const char *name, *str;
    long long n;
    size_t i;
    json_t *a;

    json_array_foreach(names, i, a) {
        name = json_string_value(a);
        if (modmta_note_get_int(ctx, name, &n) == 1)
            modmta_log(ctx, MODMTA_LOG_INFO, "note name=%s int=%lld", name,
                       n);
        else if (modmta_note_get_str(ctx, name, &str) == 1)
            modmta_log(ctx, MODMTA_LOG_INFO, "note name=%s str=<%s>", name,
                       str);
        else
            modmta_log(ctx, MODMTA_LOG_INFO, "note name=%s absent", name);
    }
}

static int
script_shared_get(const struct script *sc, modmta_ctx *ctx, const char *key)
{
    char *value = NULL;
    int rc = modmta_shared_get(modmta_host_shared(sc->host), key, &value);

    modmta_log(ctx, MODMTA_LOG_INFO, "shared_get key=%s rc=%d", key, rc);
    modmta_free(value);
    return rc < 0 ? script_fail(ctx, "shared_get failed") : 0;
}

/* What the per-hook keys say for hook (see the top): 0, or -1 with a
 * 451 reply set. */
static int
script_pre(const struct script *sc, modmta_ctx *ctx, const char *hook)
{
    const json_t *c = sc->conf;
    const json_t *want = json_object_get(json_object_get(c,
                                         "expect_deadline"), hook);
    const char *key = json_string_value(json_object_get(json_object_get(c,
                                        "shared_get"), hook));

    if (json_is_boolean(want) &&
        json_is_true(want) != (modmta_ctx_deadline(ctx) != 0))
        return script_fail(ctx, "deadline not as expected");
    script_sleep(c, ctx, hook);
    if (key != NULL && script_shared_get(sc, ctx, key) < 0)
        return -1;
    if (script_set_notes(ctx, json_object_get(json_object_get(c, "notes"),
                                              hook)) < 0)
        return -1;
    script_log_notes(ctx, json_object_get(json_object_get(c, "notes_log"),
                                          hook));
    return 0;
}

/* The hook's verdict: script_pre, then the top-level key's. */
static modmta_verdict
script_hook(void *inst, modmta_ctx *ctx, const char *hook)
{
    const struct script *sc = inst;

    if (script_pre(sc, ctx, hook) < 0)
        return MODMTA_TEMPFAIL;
    return script_step(sc->conf, ctx, hook);
}

static modmta_verdict
script_on_connect(void *inst, modmta_ctx *ctx)
{
    return script_hook(inst, ctx, "connect");
}

static modmta_verdict
script_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    return script_hook(inst, ctx, "helo");
}

static modmta_verdict
script_on_auth(void *inst, modmta_ctx *ctx, const char *user, int success)
{
    modmta_log(ctx, MODMTA_LOG_INFO, "auth user=%s success=%d", user,
               success);
    return script_hook(inst, ctx, "auth");
}

static modmta_verdict
script_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    return script_hook(inst, ctx, "mail");
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
    const struct script *sc = inst;
    const char *sender = modmta_sender(ctx);
    const json_t *m = script_entry(sc->conf, "milter", sender ? sender : "");

    if (m != NULL && script_milter(ctx, m) < 0)
        return MODMTA_TEMPFAIL;
    return script_hook(inst, ctx, "data");
}

/* Wait for the "queued_wait" file: what on_queued does is then known to
 * come after something the test did once it had the 250. */
static void
script_queued_wait(modmta_ctx *ctx, const char *path)
{
    int i;

    for (i = 0; i < 3000 && access(path, F_OK) != 0; i++)
        test_sleep_ms(10);
    modmta_log(ctx, MODMTA_LOG_INFO, "queued: marker %s",
               access(path, F_OK) == 0 ? "seen" : "missing");
}

static modmta_verdict
script_on_queued(void *inst, modmta_ctx *ctx)
{
    const struct script *sc = inst;
    const char *path = json_string_value(json_object_get(sc->conf,
                                                         "queued_wait"));

    if (path != NULL)
        script_queued_wait(ctx, path);
    return script_hook(inst, ctx, "queued");
}

static void
script_on_disconnect(void *inst, modmta_ctx *ctx)
{
    script_pre(inst, ctx, "disconnect");
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
    const struct script *sc = inst;
    const json_t *e = script_entry(sc->conf, "rcpt", rcpt);

    if (script_pre(sc, ctx, "rcpt") < 0)
        return MODMTA_TEMPFAIL;
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
    const struct script *sc = inst;
    const json_t *e = script_entry(sc->conf, "deliver", rcpt);

    if (script_pre(sc, ctx, "deliver") < 0)
        return MODMTA_DEFERRED;
    script_reply(ctx, json_object_get(sc->conf, "reply"));
    return script_lookup(script_dstatus, json_string_value(e),
                         MODMTA_DECLINED);
}

static void
script_ehlo(void *inst, modmta_ctx *ctx)
{
    const struct script *sc = inst;
    const char *kw = json_string_value(json_object_get(sc->conf, "ehlo"));

    if (kw != NULL)
        modmta_ehlo_add(ctx, kw);
}

static modmta_verdict
script_xtest(void *inst, modmta_ctx *ctx, modmta_conn *conn,
             const char *args)
{
    return script_step(((const struct script *)inst)->conf, ctx, "xtest");
}

static void
script_serve(void *inst, modmta_ctx *ctx, modmta_conn *conn)
{
    modmta_reply(ctx, 250, NULL, "served by %s",
                 modmta_host_instance(modmta_ctx_host(ctx)));
}

static const modmta_command script_commands[] = {
    MODMTA_COMMAND("XTEST", script_xtest),
    MODMTA_COMMAND_END
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
    .on_auth = script_on_auth,
    .on_mail = script_on_mail,
    .on_rcpt = script_on_rcpt,
    .on_data = script_on_data,
    .on_queued = script_on_queued,
    .deliver = script_deliver,
    .on_disconnect = script_on_disconnect,
    .ehlo = script_ehlo,
    .commands = script_commands,
    .serve = script_serve,
};
