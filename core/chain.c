/*
 * The hook chain (see chain.h). Verdicts follow libmilter: the first
 * module that does not CONTINUE decides the step. A reply whose class does
 * not match the verdict is replaced by the core's default, an unknown
 * verdict becomes TEMPFAIL 451 4.3.0.
 *
 * RCPT is a walk: the client's address, then every rewrite target, each
 * run through the whole chain (depth and count limits, loop detection).
 * The client's recipient is accepted only if every branch ends claimed;
 * any TEMPFAIL wins over a REJECT, so an outage never becomes a 5xx.
 * Recipients a module adds with modmta_rcpt_add() during the walk (bcc)
 * are the module's responsibility: they are appended as final recipients,
 * without running the chain on them, when the client's recipient is
 * accepted, and dropped when it is not.
 * A rewrite may carry an envelope sender (modmta_rcpt_rewrite_sender,
 * owner-NAME): the final recipients below it get it, the innermost one
 * winning; a recipient already in the envelope keeps its sender.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/log.h>

#include "conf_priv.h"
#include "ctx_priv.h"
#include "dns_priv.h"
#include "shared_priv.h"
#include "chain.h"
#include "chain_budget.h"
#include "modload.h"
#include "own_addrs.h"

/* Hard bound on rewrite levels, whatever the config says: each level is a
 * stack frame. */
#define CHAIN_DEPTH_MAX 64

enum chain_hook {
    CHAIN_CONNECT,
    CHAIN_HELO,
    CHAIN_AUTH,
    CHAIN_MAIL,
    CHAIN_RCPT,
    CHAIN_DATA,
    CHAIN_QUEUED,
    CHAIN_DELIVER,
    CHAIN_DISCONNECT,
    CHAIN_HEADER,          /* ABI 1.6 */
    CHAIN_EOH,
    CHAIN_BODY,
    CHAIN_ABORT,
    CHAIN_UNKNOWN,
    CHAIN_EHLO,
    CHAIN_VERBS,
    CHAIN_SERVE,
    CHAIN_NHOOKS
};

struct chain_inst {
    const modmta_module *mod; /* as modload normalised it */
    void *inst;
    modmta_host *host;
    struct chain_budget budget; /* hook_timeout, on_hook_timeout */
};

struct chain {
    struct chain_inst *insts; /* config order */
    size_t ninsts;
    struct chain_inst **hooks[CHAIN_NHOOKS];
    size_t nhooks[CHAIN_NHOOKS];
    modmta_host *core_host;   /* local domains for the claim rule */
    struct modmta_owner *owners; /* instances with owns_domain; every host
                                  * of the chain borrows this array */
    size_t nowners;
    modmta_dns *dns;          /* the generation's resolver (lent too) */
    modmta_shared *shared;    /* the generation's shared state (lent) */
    struct sockaddr_storage *own; /* own_addrs_build(): lent to hosts */
    size_t nown;
    chain_trace_fn *trace;    /* chain_set_trace(); NULL in the daemon */
    void *trace_arg;
};

/* What on_header and on_body take besides arg. */
struct chain_piece {
    const char *value;             /* on_header */
    const unsigned char *chunk;    /* on_body */
    size_t len;
};

struct chain_reply {
    int code;
    char esc[16];
    char text[512];
};

/* A final recipient of a walk and its envelope sender (NULL: the
 * message's). */
struct chain_final {
    const char *addr;
    const char *sender;
};

/* One RCPT walk. */
struct chain_walk {
    struct chain *ch;
    modmta_ctx *ctx;
    const char *orig;                     /* the client's address */
    long max_depth, max_targets, ntargets;
    const char *path[CHAIN_DEPTH_MAX + 1]; /* addresses being expanded */
    const char *sender;                   /* of the innermost expansion
                                           * that set one, else NULL */
    struct chain_final *finals;
    size_t nfinals, finals_cap;
    int discarded;
    int rejected;
    struct chain_reply rej;               /* the first rejection */
};

static int chain_implements(const modmta_module *m, enum chain_hook h);
static int chain_add(struct chain *ch, const struct config *cfg,
                     int is_root, size_t i, json_t *el, const char **names,
                     struct config_errors *errs);
static const char *chain_instance_name(json_t *el, const char *module,
                                       const char *path,
                                       struct config_errors *errs);
static int chain_index(struct chain *ch);
static int chain_index_owners(struct chain *ch);
static modmta_verdict chain_call(const struct chain_inst *ci,
                                 enum chain_hook h, modmta_ctx *ctx,
                                 const char *arg, int flag,
                                 const struct chain_piece *pc);
static modmta_verdict chain_call_timed(const struct chain *ch,
                                       const struct chain_inst *ci,
                                       enum chain_hook h, modmta_ctx *ctx,
                                       const char *arg, int flag,
                                       const struct chain_piece *pc);
static modmta_verdict chain_verdict(modmta_ctx *ctx, modmta_verdict v);
static void chain_leave(modmta_ctx *ctx, const modmta_host *core);
static void chain_default(modmta_ctx *ctx, int code, const char *esc,
                          const char *text);
static void chain_phase_default(modmta_ctx *ctx, modmta_phase phase,
                                modmta_verdict v);
static modmta_verdict chain_run(struct chain *ch, modmta_ctx *ctx,
                                enum chain_hook h, modmta_phase phase,
                                const char *arg, int flag);
static void chain_run_all(struct chain *ch, modmta_ctx *ctx,
                          enum chain_hook h, modmta_phase phase,
                          const char *arg, int flag);
static modmta_verdict chain_rcpt_eval(struct chain_walk *w, const char *addr,
                                      long depth);
static modmta_verdict chain_rcpt_expand(struct chain_walk *w,
                                        const char *addr, long depth);
static modmta_verdict chain_walk_final(struct chain_walk *w,
                                       const char *addr);
static modmta_verdict chain_walk_reject(struct chain_walk *w);
static modmta_verdict chain_walk_tempfail(struct chain_walk *w);
static void chain_rcpt_unclaimed(struct chain_walk *w, const char *addr);
static modmta_verdict chain_rcpt_commit(struct chain_walk *w, size_t added0);
static modmta_dstatus chain_dstatus(modmta_ctx *ctx, modmta_dstatus s);
static const modmta_verb *chain_verb_lookup(struct chain *ch,
                                            const char *verb,
                                            const struct chain_inst **ci_r);
static const struct chain_inst *chain_server(struct chain *ch,
                                             const char *protocol);

/* ---- building ---- */

struct chain *
chain_build(const struct config *cfg, int is_root, struct config_errors *errs)
{
    size_t count = 0, i;
    const char **names = NULL;
    struct chain *ch;
    int failed = 0;
    json_t *el;

    if (cfg->modules != NULL && !json_is_array(cfg->modules)) {
        config_errors_add(errs, "$.modules", "expected an array");
        failed = 1;
    } else {
        count = json_array_size(cfg->modules);
    }
    ch = calloc(1, sizeof(*ch));
    if (ch != NULL) {
        modmta_err err;

        ch->insts = calloc(count + 1, sizeof(*ch->insts));
        ch->core_host = modmta_host_new("core", "$", cfg->hostname,
                                        cfg->spool, cfg->local_domains,
                                        is_root);
        ch->dns = modmta_dns_new(cfg->dns.servers, cfg->dns.timeout,
                                 cfg->dns.trust_anchor, &err);
        ch->own = own_addrs_build(cfg, &ch->nown);
        ch->shared = modmta_shared_new(cfg->redis, &err);
        if (ch->shared == NULL)
            config_errors_add(errs, err.path, "%s", err.msg);
        if (ch->core_host != NULL) {
            if (modmta_host_set_recipient_delimiter(
                    ch->core_host, cfg->recipient_delimiter) < 0)
                config_errors_add(errs, "$", "out of memory");
            modmta_host_set_net(ch->core_host, ch->dns, ch->own, ch->nown);
            modmta_host_set_shared(ch->core_host, ch->shared);
        }
    }
    names = calloc(count + 1, sizeof(*names));
    if (ch == NULL || ch->insts == NULL || ch->core_host == NULL ||
        ch->dns == NULL || ch->shared == NULL || names == NULL) {
        config_errors_add(errs, "$.modules", "out of memory");
        failed = 1;
    } else {
        /* Every element, even after a failure: all errors in one pass. */
        json_array_foreach(cfg->modules, i, el)
            if (chain_add(ch, cfg, is_root, i, el, names, errs) < 0)
                failed = 1;
        if (!failed && chain_index(ch) < 0) {
            config_errors_add(errs, "$.modules", "out of memory");
            failed = 1;
        }
    }
    free(names);
    if (failed) {
        chain_free(ch);
        return NULL;
    }
    return ch;
}

void
chain_free(struct chain *ch)
{
    size_t i;

    if (ch == NULL)
        return;
    for (i = ch->ninsts; i > 0; i--) {
        struct chain_inst *ci = &ch->insts[i - 1];

        if (ci->mod->destroy != NULL)
            ci->mod->destroy(ci->inst);
        modmta_host_free(ci->host);
    }
    for (i = 0; i < CHAIN_NHOOKS; i++)
        free(ch->hooks[i]);
    free(ch->insts);
    free(ch->owners);
    modmta_host_free(ch->core_host);
    modmta_dns_free(ch->dns);
    modmta_shared_free(ch->shared);
    free(ch->own);
    free(ch);
}

/* Every error create() recorded on the host (modmta_conf_error), and
 * err when it is not one of them (a module that sets err_r only). */
static void
chain_create_errors(const modmta_host *host, const modmta_err *err,
                    const char *path, struct config_errors *errs)
{
    size_t i, n = conf_errors_count(host);
    const modmta_err *e;
    int listed = 0;

    for (i = 0; i < n; i++) {
        e = conf_errors_get(host, i);
        config_errors_add(errs, e->path, "%s", e->msg);
        listed |= strcmp(e->path, err->path) == 0 &&
                  strcmp(e->msg, err->msg) == 0;
    }
    if (conf_errors_dropped(host) > 0)
        config_errors_add(errs, path, "%zu more errors not listed",
                          conf_errors_dropped(host));
    if (!listed && (n == 0 || err->msg[0] != '\0'))
        config_errors_add(errs, err->path[0] ? err->path : path, "%s",
                          err->msg[0] ? err->msg : "create() failed");
}

/* One element of "modules": check it, load its module, create the
 * instance. names[i] records the instance name for the duplicate check. */
static int
chain_add(struct chain *ch, const struct config *cfg, int is_root, size_t i,
          json_t *el, const char **names, struct config_errors *errs)
{
    char path[48], mpath[64], npath[64];
    const modmta_module *mod;
    const char *module, *name;
    struct chain_budget budget;
    struct chain_inst *ci;
    modmta_err err;
    int dup = 0, bad;
    size_t j;

    snprintf(path, sizeof(path), "$.modules[%zu]", i);
    snprintf(mpath, sizeof(mpath), "%s.module", path);
    snprintf(npath, sizeof(npath), "%s.name", path);
    if (!json_is_object(el)) {
        config_errors_add(errs, path, "expected an object");
        return -1;
    }
    module = json_string_value(json_object_get(el, "module"));
    if (module == NULL) {
        config_errors_add(errs, mpath, "required, a string");
        return -1;
    }
    name = chain_instance_name(el, module, npath, errs);
    if (name == NULL)
        return -1;
    for (j = 0; j < i && !dup; j++) {
        if (names[j] != NULL && strcmp(names[j], name) == 0) {
            config_errors_add(errs, npath, "duplicate instance name \"%s\" "
                              "(already $.modules[%zu])", name, j);
            dup = 1;
        }
    }
    if (!dup)
        names[i] = name;
    bad = chain_budget_parse(el, path, &budget, errs) < 0;
    /* Load and create even a duplicate or an entry whose core keys are
     * wrong, to report every error in one pass; such an instance is
     * destroyed at once. */
    mod = modload_load(cfg->module_path, module, mpath, errs);
    if (mod == NULL)
        return -1;
    ci = &ch->insts[ch->ninsts];
    ci->host = modmta_host_new(name, path, cfg->hostname, cfg->spool,
                               cfg->local_domains, is_root);
    if (ci->host == NULL ||
        modmta_host_set_recipient_delimiter(ci->host,
                                            cfg->recipient_delimiter) < 0) {
        modmta_host_free(ci->host);
        ci->host = NULL;
        config_errors_add(errs, path, "out of memory");
        return -1;
    }
    modmta_host_set_net(ci->host, ch->dns, ch->own, ch->nown);
    modmta_host_set_shared(ci->host, ch->shared);
    memset(&err, 0, sizeof(err));
    ci->inst = mod->create(el, ci->host, &err);
    if (ci->inst == NULL || conf_errors_count(ci->host) > 0 || dup || bad) {
        if (ci->inst == NULL || conf_errors_count(ci->host) > 0)
            chain_create_errors(ci->host, &err, path, errs);
        if (ci->inst != NULL && mod->destroy != NULL)
            mod->destroy(ci->inst);
        ci->inst = NULL;
        modmta_host_free(ci->host);
        ci->host = NULL;
        return -1;
    }
    ci->mod = mod;
    ci->budget = budget;
    ch->ninsts++;
    return 0;
}

/* "name", or the module name; it appears in every log line. */
static const char *
chain_instance_name(json_t *el, const char *module, const char *path,
                    struct config_errors *errs)
{
    static const char ok[] = "abcdefghijklmnopqrstuvwxyz"
                             "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-";
    json_t *v = json_object_get(el, "name");
    const char *name;

    if (v == NULL)
        return module;
    name = json_string_value(v);
    if (name == NULL) {
        config_errors_add(errs, path, "expected a string");
        return NULL;
    }
    if (*name == '\0' || strspn(name, ok) != strlen(name)) {
        config_errors_add(errs, path, "invalid instance name \"%s\" "
                          "(expected letters, digits, _ . -)", name);
        return NULL;
    }
    return name;
}

static int
chain_implements(const modmta_module *m, enum chain_hook h)
{
    switch (h) {
    case CHAIN_CONNECT: return m->on_connect != NULL;
    case CHAIN_HELO: return m->on_helo != NULL;
    case CHAIN_AUTH: return m->on_auth != NULL;
    case CHAIN_MAIL: return m->on_mail != NULL;
    case CHAIN_RCPT: return m->on_rcpt != NULL;
    case CHAIN_DATA: return m->on_data != NULL;
    case CHAIN_QUEUED: return m->on_queued != NULL;
    case CHAIN_DELIVER: return m->deliver != NULL || m->route != NULL;
    case CHAIN_DISCONNECT: return m->on_disconnect != NULL;
    case CHAIN_HEADER: return m->on_header != NULL;
    case CHAIN_EOH: return m->on_eoh != NULL;
    case CHAIN_BODY: return m->on_body != NULL;
    case CHAIN_ABORT: return m->on_abort != NULL;
    case CHAIN_UNKNOWN: return m->on_unknown != NULL;
    case CHAIN_EHLO: return m->ehlo != NULL;
    case CHAIN_VERBS: return m->verbs != NULL && m->verbs[0].name != NULL;
    case CHAIN_SERVE: return m->serve != NULL;
    case CHAIN_NHOOKS: break;
    }
    return 0;
}

/* One array per hook with only the instances that implement it (the
 * descriptor's fields past the module's size are already NULL). */
static int
chain_index(struct chain *ch)
{
    size_t h, i;

    for (h = 0; h < CHAIN_NHOOKS; h++) {
        ch->hooks[h] = calloc(ch->ninsts + 1, sizeof(*ch->hooks[h]));
        if (ch->hooks[h] == NULL)
            return -1;
        for (i = 0; i < ch->ninsts; i++)
            if (chain_implements(ch->insts[i].mod, h))
                ch->hooks[h][ch->nhooks[h]++] = &ch->insts[i];
    }
    return chain_index_owners(ch);
}

/* The instances that declared owns_domain, lent to every host of the
 * chain so that modmta_is_inbound_domain() sees the whole chain. */
static int
chain_index_owners(struct chain *ch)
{
    size_t i;

    ch->owners = calloc(ch->ninsts + 1, sizeof(*ch->owners));
    if (ch->owners == NULL)
        return -1;
    for (i = 0; i < ch->ninsts; i++) {
        if (ch->insts[i].mod->owns_domain == NULL)
            continue;
        ch->owners[ch->nowners].owns_domain = ch->insts[i].mod->owns_domain;
        ch->owners[ch->nowners++].inst = ch->insts[i].inst;
    }
    for (i = 0; i < ch->ninsts; i++)
        modmta_host_set_owners(ch->insts[i].host, ch->owners, ch->nowners);
    modmta_host_set_owners(ch->core_host, ch->owners, ch->nowners);
    return 0;
}

/* ---- verdicts and replies ---- */

static modmta_verdict
chain_call(const struct chain_inst *ci, enum chain_hook h, modmta_ctx *ctx,
           const char *arg, int flag, const struct chain_piece *pc)
{
    const modmta_module *m = ci->mod;

    switch (h) {
    case CHAIN_CONNECT: return m->on_connect(ci->inst, ctx);
    case CHAIN_HELO: return m->on_helo(ci->inst, ctx, arg);
    case CHAIN_AUTH: return m->on_auth(ci->inst, ctx, arg, flag);
    case CHAIN_MAIL: return m->on_mail(ci->inst, ctx, arg);
    case CHAIN_RCPT: return m->on_rcpt(ci->inst, ctx, arg);
    case CHAIN_DATA: return m->on_data(ci->inst, ctx);
    case CHAIN_QUEUED: return m->on_queued(ci->inst, ctx);
    case CHAIN_DELIVER: return m->route(ci->inst, ctx, arg);
    case CHAIN_DISCONNECT:
        m->on_disconnect(ci->inst, ctx);
        return MODMTA_CONTINUE;
    case CHAIN_HEADER: return m->on_header(ci->inst, ctx, arg, pc->value);
    case CHAIN_EOH: return m->on_eoh(ci->inst, ctx);
    case CHAIN_BODY: return m->on_body(ci->inst, ctx, pc->chunk, pc->len);
    case CHAIN_ABORT:
        m->on_abort(ci->inst, ctx);
        return MODMTA_CONTINUE;
    case CHAIN_UNKNOWN: return m->on_unknown(ci->inst, ctx, arg);
    default:
        /* Not a budgeted hook: never called with one. */
        return MODMTA_TEMPFAIL;
    }
}

/* The hook's name in log lines. */
static const char *
chain_hook_name(enum chain_hook h)
{
    static const char *const names[] = {
        [CHAIN_CONNECT] = "on_connect", [CHAIN_HELO] = "on_helo",
        [CHAIN_AUTH] = "on_auth",       [CHAIN_MAIL] = "on_mail",
        [CHAIN_RCPT] = "on_rcpt",       [CHAIN_DATA] = "on_data",
        [CHAIN_QUEUED] = "on_queued",   [CHAIN_DELIVER] = "route",
        [CHAIN_DISCONNECT] = "on_disconnect", [CHAIN_HEADER] = "on_header",
        [CHAIN_EOH] = "on_eoh",         [CHAIN_BODY] = "on_body",
        [CHAIN_ABORT] = "on_abort",     [CHAIN_UNKNOWN] = "on_unknown",
    };

    return h < CHAIN_EHLO ? names[h] : "?";
}

/* A hook call under the instance's budget (chain_budget.h), told to the
 * tracer if there is one: the verdict the chain goes on with, checked
 * (chain_verdict) unless the hook is a notification, or
 * on_hook_timeout's when it overran. */
static modmta_verdict
chain_call_timed(const struct chain *ch, const struct chain_inst *ci,
                 enum chain_hook h, modmta_ctx *ctx, const char *arg,
                 int flag, const struct chain_piece *pc)
{
    int notify = h == CHAIN_AUTH || h == CHAIN_QUEUED ||
                 h == CHAIN_DISCONNECT || h == CHAIN_ABORT;
    struct chain_call call = {
        .instance = ci->host->instance, .hook = chain_hook_name(h),
        .arg = arg, .success = h == CHAIN_AUTH && flag,
    };
    struct chain_timer t;
    modmta_verdict v;

    if (ch->trace != NULL)
        ch->trace(ch->trace_arg, ctx, &call);
    chain_budget_start(&ci->budget, ctx, &t);
    v = call.returned = chain_call(ci, h, ctx, arg, flag, pc);
    call.timed_out = chain_budget_stop(&ci->budget, ctx, &t, call.hook,
                                       notify);
    if (call.timed_out)
        v = chain_budget_verdict(&ci->budget, ctx, notify);
    if (!notify)
        v = chain_verdict(ctx, v);
    if (ch->trace != NULL) {
        call.after = 1;
        call.verdict = v;
        ch->trace(ch->trace_arg, ctx, &call);
    }
    return v;
}

/* Check what the running module returned, while ctx still names it. */
static modmta_verdict
chain_verdict(modmta_ctx *ctx, modmta_verdict v)
{
    int want;

    switch (v) {
    case MODMTA_CONTINUE:
    case MODMTA_ACCEPT:
    case MODMTA_DISCARD:
        want = 2;
        break;
    case MODMTA_REJECT:
        want = 5;
        break;
    case MODMTA_TEMPFAIL:
        want = 4;
        break;
    default:
        modmta_log(ctx, MODMTA_LOG_ERR, "unknown verdict=%d: tempfail",
                   (int)v);
        modmta_ctx_reply_clear(ctx);
        modmta_ctx_reply_default(ctx, 451, "4.3.0",
                                 "Temporary internal error");
        return MODMTA_TEMPFAIL;
    }
    if (ctx->reply_code != 0 && ctx->reply_code / 100 != want) {
        modmta_log(ctx, MODMTA_LOG_WARN, "reply %d does not match "
                   "verdict=%d: core default used", ctx->reply_code, (int)v);
        modmta_ctx_reply_clear(ctx);
    }
    return v;
}

/* The core acts again: no module is running. */
static void
chain_leave(modmta_ctx *ctx, const modmta_host *core)
{
    ctx->mod = NULL;
    ctx->inst = NULL;
    ctx->host = core;
}

/* The default reply, or only its enhanced code if the module set a reply
 * without one (the class has already been checked). */
static void
chain_default(modmta_ctx *ctx, int code, const char *esc, const char *text)
{
    if (ctx->reply_code == 0)
        modmta_ctx_reply_default(ctx, code, esc, text);
    else if (ctx->reply_esc[0] == '\0' && ctx->reply_code / 100 == code / 100)
        snprintf(ctx->reply_esc, sizeof(ctx->reply_esc), "%s", esc);
}

static void
chain_phase_default(modmta_ctx *ctx, modmta_phase phase, modmta_verdict v)
{
    if (v == MODMTA_CONTINUE) {
        modmta_ctx_reply_clear(ctx);
    } else if (v == MODMTA_TEMPFAIL) {
        chain_default(ctx, 451, "4.7.1", "Try again later");
    } else if (v == MODMTA_REJECT) {
        switch (phase) {
        case MODMTA_PHASE_CONNECT:
            chain_default(ctx, 554, "5.7.1", "Access denied");
            break;
        case MODMTA_PHASE_MAIL:
            chain_default(ctx, 550, "5.7.1",
                          "Sender address rejected: Access denied");
            break;
        case MODMTA_PHASE_RCPT:
            chain_default(ctx, 550, "5.7.1",
                          "Recipient address rejected: Access denied");
            break;
        case MODMTA_PHASE_DATA:
            chain_default(ctx, 550, "5.7.1", "Message rejected");
            break;
        default:
            chain_default(ctx, 550, "5.7.1", "Access denied");
            break;
        }
    }
}

/* Run hook h until a module decides. */
static modmta_verdict
chain_run(struct chain *ch, modmta_ctx *ctx, enum chain_hook h,
          modmta_phase phase, const char *arg, int flag)
{
    const modmta_host *core = ctx->host;
    modmta_verdict v = MODMTA_CONTINUE;
    size_t i;

    modmta_ctx_enter(ctx, phase, NULL, NULL, NULL);
    for (i = 0; i < ch->nhooks[h] && v == MODMTA_CONTINUE; i++) {
        const struct chain_inst *ci = ch->hooks[h][i];

        modmta_ctx_enter(ctx, phase, ci->mod, ci->inst, ci->host);
        v = chain_call_timed(ch, ci, h, ctx, arg, flag, NULL);
        if (v != MODMTA_CONTINUE)
            modmta_log(ctx, MODMTA_LOG_DEBUG, "phase=%d verdict=%d",
                       (int)phase, (int)v);
    }
    chain_leave(ctx, core);
    chain_phase_default(ctx, phase, v);
    return v;
}

/* Every module, whatever the verdicts: the notifications. */
static void
chain_run_all(struct chain *ch, modmta_ctx *ctx, enum chain_hook h,
              modmta_phase phase, const char *arg, int flag)
{
    const modmta_host *core = ctx->host;
    size_t i;

    for (i = 0; i < ch->nhooks[h]; i++) {
        const struct chain_inst *ci = ch->hooks[h][i];

        modmta_ctx_enter(ctx, phase, ci->mod, ci->inst, ci->host);
        chain_call_timed(ch, ci, h, ctx, arg, flag, NULL);
    }
    chain_leave(ctx, core);
    modmta_ctx_reply_clear(ctx);
}

/* ---- session steps ---- */

modmta_verdict
chain_connect(struct chain *ch, modmta_ctx *ctx)
{
    return chain_run(ch, ctx, CHAIN_CONNECT, MODMTA_PHASE_CONNECT, NULL, 0);
}

modmta_verdict
chain_helo(struct chain *ch, modmta_ctx *ctx, const char *helo)
{
    return chain_run(ch, ctx, CHAIN_HELO, MODMTA_PHASE_HELO, helo, 0);
}

modmta_verdict
chain_auth(struct chain *ch, modmta_ctx *ctx, const char *user, int success)
{
    /* a notification: every module hears of it, whatever one says */
    chain_run_all(ch, ctx, CHAIN_AUTH, MODMTA_PHASE_AUTH, user, success);
    return MODMTA_CONTINUE;
}

modmta_verdict
chain_mail(struct chain *ch, modmta_ctx *ctx, const char *sender)
{
    return chain_run(ch, ctx, CHAIN_MAIL, MODMTA_PHASE_MAIL, sender, 0);
}

modmta_verdict
chain_data(struct chain *ch, modmta_ctx *ctx)
{
    return chain_run(ch, ctx, CHAIN_DATA, MODMTA_PHASE_DATA, NULL, 0);
}

void
chain_queued(struct chain *ch, modmta_ctx *ctx)
{
    chain_run_all(ch, ctx, CHAIN_QUEUED, MODMTA_PHASE_QUEUED, NULL, 0);
}

void
chain_disconnect(struct chain *ch, modmta_ctx *ctx)
{
    chain_run_all(ch, ctx, CHAIN_DISCONNECT, MODMTA_PHASE_DISCONNECT,
                  NULL, 0);
}

void
chain_abort(struct chain *ch, modmta_ctx *ctx)
{
    chain_run_all(ch, ctx, CHAIN_ABORT, MODMTA_PHASE_ABORT, NULL, 0);
}

modmta_verdict
chain_unknown(struct chain *ch, modmta_ctx *ctx, const char *line)
{
    const modmta_host *core = ctx->host;
    modmta_verdict v = MODMTA_CONTINUE;
    size_t i;

    for (i = 0; i < ch->nhooks[CHAIN_UNKNOWN] && v == MODMTA_CONTINUE; i++) {
        const struct chain_inst *ci = ch->hooks[CHAIN_UNKNOWN][i];

        modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, ci->mod, ci->inst,
                         ci->host);
        v = chain_call_timed(ch, ci, CHAIN_UNKNOWN, ctx, line, 0, NULL);
    }
    chain_leave(ctx, core);
    if (v == MODMTA_REJECT || v == MODMTA_TEMPFAIL)
        return v; /* the module's reply (a 4xx or 5xx, checked) */
    /* No module can make an unknown command succeed. */
    modmta_ctx_reply_clear(ctx);
    return MODMTA_CONTINUE;
}

/* ---- the message as a stream (ABI 1.6) ---- */

int
chain_streams(const struct chain *ch)
{
    return ch->nhooks[CHAIN_HEADER] + ch->nhooks[CHAIN_EOH] +
           ch->nhooks[CHAIN_BODY] > 0;
}

size_t
chain_count(const struct chain *ch)
{
    return ch->ninsts;
}

/* One step through the modules that still stream: ACCEPT retires the
 * module (done[its index]), REJECT, TEMPFAIL and DISCARD stop the stream
 * with the module's reply (defaults as at on_data). */
static modmta_verdict
chain_stream_step(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
                  enum chain_hook h, const char *arg,
                  const struct chain_piece *pc)
{
    const modmta_host *core = ctx->host;
    modmta_verdict v = MODMTA_CONTINUE;

    for (size_t i = 0; i < ch->nhooks[h] && v == MODMTA_CONTINUE; i++) {
        const struct chain_inst *ci = ch->hooks[h][i];
        size_t k = (size_t)(ci - ch->insts);

        if (done[k])
            continue;
        modmta_ctx_enter(ctx, MODMTA_PHASE_STREAM, ci->mod, ci->inst,
                         ci->host);
        v = chain_call_timed(ch, ci, h, ctx, arg, 0, pc);
        if (v == MODMTA_ACCEPT) {
            done[k] = 1;
            v = MODMTA_CONTINUE;
        }
    }
    chain_leave(ctx, core);
    chain_phase_default(ctx, MODMTA_PHASE_DATA, v);
    return v;
}

modmta_verdict
chain_header(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
             const char *name, const char *value)
{
    struct chain_piece pc = {.value = value};

    return chain_stream_step(ch, ctx, done, CHAIN_HEADER, name, &pc);
}

modmta_verdict
chain_eoh(struct chain *ch, modmta_ctx *ctx, unsigned char *done)
{
    return chain_stream_step(ch, ctx, done, CHAIN_EOH, NULL, NULL);
}

modmta_verdict
chain_body(struct chain *ch, modmta_ctx *ctx, unsigned char *done,
           const unsigned char *chunk, size_t len)
{
    struct chain_piece pc = {.chunk = chunk, .len = len};

    return chain_stream_step(ch, ctx, done, CHAIN_BODY, NULL, &pc);
}

/* ---- RCPT ---- */

modmta_verdict
chain_rcpt(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
           const struct config_limits *lim)
{
    struct chain_walk w;
    size_t added0 = ctx->nadded;
    modmta_verdict v;

    memset(&w, 0, sizeof(w));
    w.ch = ch;
    w.ctx = ctx;
    w.orig = rcpt;
    w.max_depth = lim != NULL ? lim->rewrite_depth : 10;
    w.max_targets = lim != NULL ? lim->rewrite_max : 1000;
    if (w.max_depth > CHAIN_DEPTH_MAX)
        w.max_depth = CHAIN_DEPTH_MAX;

    v = chain_rcpt_eval(&w, rcpt, 0);
    if (v != MODMTA_TEMPFAIL && w.rejected) {
        ctx->reply_code = w.rej.code;
        memcpy(ctx->reply_esc, w.rej.esc, sizeof(ctx->reply_esc));
        memcpy(ctx->reply_text, w.rej.text, sizeof(ctx->reply_text));
        ctx->reply_nlines = 0; /* the walk keeps one line */
        v = MODMTA_REJECT;
    } else if (v != MODMTA_TEMPFAIL) {
        v = chain_rcpt_commit(&w, added0);
    }
    /* What modules added belongs to this recipient: handled above. */
    ctx->nadded = added0;
    modmta_ctx_set_rcpt_eval(ctx, NULL, 0);
    free(w.finals);
    return v;
}

/* Run the chain on addr, `depth` rewrites below the client's address.
 * Returns TEMPFAIL to stop the walk; a rejection is recorded in w and the
 * walk goes on, so that a TEMPFAIL further on still wins. */
static modmta_verdict
chain_rcpt_eval(struct chain_walk *w, const char *addr, long depth)
{
    modmta_verdict v;
    long i;

    /* Already being expanded: a loop. The address is its own final
     * recipient, as sendmail does for "a: a, b". */
    for (i = 0; i < depth; i++)
        if (strcasecmp(w->path[i], addr) == 0)
            return chain_walk_final(w, addr);

    modmta_ctx_set_rcpt_eval(w->ctx, w->orig, depth > 0);
    v = chain_run(w->ch, w->ctx, CHAIN_RCPT, MODMTA_PHASE_RCPT, addr, 0);
    switch (v) {
    case MODMTA_CONTINUE:
        chain_rcpt_unclaimed(w, addr);
        return chain_walk_reject(w);
    case MODMTA_REJECT:
        return chain_walk_reject(w);
    case MODMTA_TEMPFAIL:
        return MODMTA_TEMPFAIL;
    case MODMTA_DISCARD:
        w->discarded = 1;
        return MODMTA_DISCARD;
    default:
        break;
    }
    if (w->ctx->nrewrites == 0)
        return chain_walk_final(w, addr);
    return chain_rcpt_expand(w, addr, depth);
}

/* The deciding module accepted addr and rewrote it: walk its targets. */
static modmta_verdict
chain_rcpt_expand(struct chain_walk *w, const char *addr, long depth)
{
    modmta_ctx *ctx = w->ctx;
    modmta_verdict v = MODMTA_ACCEPT;
    const char **targets;
    size_t n = ctx->nrewrites, i;
    const char *outer = w->sender;

    if (depth + 1 > w->max_depth) {
        modmta_ctx_reply_clear(ctx);
        modmta_reply(ctx, 554, "5.4.6", "<%s>: mail forwarding loop",
                     w->orig);
        return chain_walk_reject(w);
    }
    /* The strings live in the txn arena; the array is reused by the
     * next module call. */
    targets = malloc(n * sizeof(*targets));
    if (targets == NULL)
        return chain_walk_tempfail(w);
    memcpy(targets, ctx->rewrites, n * sizeof(*targets));
    w->path[depth] = addr;
    if (ctx->rewrite_sender != NULL)
        w->sender = ctx->rewrite_sender;
    for (i = 0; i < n && v != MODMTA_TEMPFAIL; i++) {
        if (++w->ntargets > w->max_targets) {
            modmta_ctx_reply_clear(ctx);
            modmta_reply(ctx, 554, "5.4.6",
                         "<%s>: too many recipients from expansion",
                         w->orig);
            chain_walk_reject(w);
            break;
        }
        v = chain_rcpt_eval(w, targets[i], depth + 1);
    }
    free(targets);
    w->sender = outer;
    return v == MODMTA_TEMPFAIL ? MODMTA_TEMPFAIL : MODMTA_ACCEPT;
}

static modmta_verdict
chain_walk_final(struct chain_walk *w, const char *addr)
{
    if (w->nfinals == w->finals_cap) {
        size_t cap = w->finals_cap ? w->finals_cap * 2 : 4;
        struct chain_final *f = realloc(w->finals, cap * sizeof(*f));

        if (f == NULL)
            return chain_walk_tempfail(w);
        w->finals = f;
        w->finals_cap = cap;
    }
    w->finals[w->nfinals].addr = addr;
    w->finals[w->nfinals++].sender = w->sender;
    return MODMTA_ACCEPT;
}

static modmta_verdict
chain_walk_reject(struct chain_walk *w)
{
    modmta_ctx *ctx = w->ctx;

    if (!w->rejected) {
        w->rejected = 1;
        w->rej.code = ctx->reply_code;
        memcpy(w->rej.esc, ctx->reply_esc, sizeof(w->rej.esc));
        memcpy(w->rej.text, ctx->reply_text, sizeof(w->rej.text));
    }
    return MODMTA_REJECT;
}

static modmta_verdict
chain_walk_tempfail(struct chain_walk *w)
{
    modmta_ctx_reply_clear(w->ctx);
    modmta_ctx_reply_default(w->ctx, 451, "4.3.0",
                             "Temporary internal error");
    return MODMTA_TEMPFAIL;
}

/* Nobody claimed addr: unknown user at an inbound domain (local, or
 * one a module owns), or relaying denied. The text
 * names the client's address, whatever was rewritten. */
static void
chain_rcpt_unclaimed(struct chain_walk *w, const char *addr)
{
    const char *at = strrchr(addr, '@');
    char text[512];

    if (at == NULL || at[1] == '\0' ||
        modmta_host_is_inbound_domain(w->ch->core_host, at + 1)) {
        snprintf(text, sizeof(text), "<%s>: Recipient address rejected: "
                 "User unknown in local recipient table", w->orig);
        modmta_ctx_reply_default(w->ctx, 550, "5.1.1", text);
    } else {
        snprintf(text, sizeof(text), "<%s>: Relay access denied", w->orig);
        modmta_ctx_reply_default(w->ctx, 554, "5.7.1", text);
    }
}

/* Every branch ended claimed (or discarded): append the final
 * recipients, then those modules added. */
static modmta_verdict
chain_rcpt_commit(struct chain_walk *w, size_t added0)
{
    modmta_ctx *ctx = w->ctx;
    const struct chain_final *f;
    size_t i;
    int r;

    modmta_ctx_reply_clear(ctx);
    for (i = 0; i < w->nfinals; i++) {
        f = &w->finals[i];
        r = modmta_ctx_add_rcpt(ctx, f->addr);
        if (r == 1 && f->sender != NULL)
            r = modmta_ctx_set_rcpt_sender(ctx, f->addr, f->sender);
        if (r < 0)
            return chain_walk_tempfail(w);
    }
    for (i = added0; i < ctx->nadded; i++)
        if (modmta_ctx_add_rcpt(ctx, ctx->added[i]) < 0)
            return chain_walk_tempfail(w);
    if (w->nfinals == 0 && w->discarded)
        return MODMTA_DISCARD;
    return MODMTA_ACCEPT;
}

/* ---- delivery ---- */

static modmta_dstatus
chain_dstatus(modmta_ctx *ctx, modmta_dstatus s)
{
    int want;

    switch (s) {
    case MODMTA_DECLINED:
        return s;
    case MODMTA_DELIVERED:
        want = 2;
        break;
    case MODMTA_DEFERRED:
        want = 4;
        break;
    case MODMTA_FAILED:
        want = 5;
        break;
    default:
        modmta_log(ctx, MODMTA_LOG_ERR, "unknown delivery status=%d: "
                   "deferred", (int)s);
        modmta_ctx_reply_clear(ctx);
        modmta_ctx_reply_default(ctx, 451, "4.3.0",
                                 "Temporary internal error");
        return MODMTA_DEFERRED;
    }
    if (ctx->reply_code != 0 && ctx->reply_code / 100 != want) {
        modmta_log(ctx, MODMTA_LOG_WARN, "reply %d does not match "
                   "status=%d: core default used", ctx->reply_code, (int)s);
        modmta_ctx_reply_clear(ctx);
    }
    return s;
}

/* route(): a verdict, as chain_verdict reads it, into what it means for
 * the recipient; the destination when claimed. */
static int
chain_route_one(const struct chain *ch, const struct chain_inst *ci,
                modmta_ctx *ctx, const char *rcpt, struct chain_route *r)
{
    modmta_verdict v;
    const char *at;

    ctx->dlv_route = NULL;
    modmta_ctx_enter(ctx, MODMTA_PHASE_ROUTE, ci->mod, ci->inst, ci->host);
    v = chain_call_timed(ch, ci, CHAIN_DELIVER, ctx, rcpt, 0, NULL);
    switch (v) {
    case MODMTA_CONTINUE:
        return 0;
    case MODMTA_ACCEPT:
        at = strrchr(rcpt, '@');
        r->claimed = 1;
        r->dest = ctx->dlv_route != NULL ? ctx->dlv_route
                  : at != NULL && at[1] != '\0'
                      ? modmta_txn_strdup(ctx, at + 1)
                      : modmta_txn_strdup(ctx, ci->host->hostname);
        if (r->dest == NULL) {
            r->claimed = 0;
            r->status = MODMTA_DEFERRED;
            modmta_ctx_reply_clear(ctx);
            chain_default(ctx, 451, "4.3.0", "out of memory");
        }
        return 1;
    case MODMTA_DISCARD:
        r->discarded = 1;
        r->status = MODMTA_RELAYED_DSN;
        chain_default(ctx, 250, "2.0.0", "discarded");
        return 1;
    case MODMTA_REJECT:
        r->status = MODMTA_FAILED;
        chain_default(ctx, 550, "5.0.0", "delivery failed");
        return 1;
    default:                    /* TEMPFAIL, or a bad verdict made so */
        r->status = MODMTA_DEFERRED;
        chain_default(ctx, 451, "4.3.0", "temporary failure");
        return 1;
    }
}

/* chain_route, or (dry) chain_route_dry. */
static void
chain_route_walk(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
                 struct chain_route *r, int dry)
{
    const modmta_host *core = ctx->host;
    modmta_dstatus s = MODMTA_DECLINED;
    size_t i;

    memset(r, 0, sizeof(*r));
    ctx->decided_by = NULL;
    for (i = 0; i < ch->nhooks[CHAIN_DELIVER]; i++) {
        const struct chain_inst *ci = ch->hooks[CHAIN_DELIVER][i];

        if (ci->mod->route == NULL && dry) {
            /* deliver() would deliver it: not called */
            r->offered = 1;
            r->status = MODMTA_DECLINED;
        }
        if (r->offered || ci->mod->route != NULL) {
            if (!r->offered && !chain_route_one(ch, ci, ctx, rcpt, r))
                continue;
            r->inst = (size_t)(ci - ch->insts);
            ctx->decided_by = ci->host->instance;
            chain_leave(ctx, core);
            return;
        }
        modmta_ctx_enter(ctx, MODMTA_PHASE_DELIVER, ci->mod, ci->inst,
                         ci->host);
        s = chain_dstatus(ctx, ci->mod->deliver(ci->inst, ctx, rcpt));
        if (s != MODMTA_DECLINED) {
            ctx->decided_by = ci->host->instance;
            break;
        }
    }
    chain_leave(ctx, core);
    switch (s) {
    case MODMTA_DELIVERED:
        chain_default(ctx, 250, "2.0.0", "delivered");
        break;
    case MODMTA_DEFERRED:
        chain_default(ctx, 451, "4.3.0", "temporary failure");
        break;
    case MODMTA_FAILED:
        chain_default(ctx, 550, "5.0.0", "delivery failed");
        break;
    default:
        modmta_ctx_reply_clear(ctx);
        chain_default(ctx, 451, "4.3.5", "no module delivers this recipient");
        s = MODMTA_DEFERRED;
        break;
    }
    r->status = s;
}

void
chain_route(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
            struct chain_route *r)
{
    chain_route_walk(ch, ctx, rcpt, r, 0);
}

void
chain_route_dry(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
                struct chain_route *r)
{
    chain_route_walk(ch, ctx, rcpt, r, 1);
}

void
chain_set_trace(struct chain *ch, chain_trace_fn *fn, void *arg)
{
    ch->trace = fn;
    ch->trace_arg = arg;
}

void
chain_deliver_msg(struct chain *ch, size_t inst, modmta_ctx *ctx,
                  const char *dest)
{
    const modmta_host *core = ctx->host;
    const struct chain_inst *ci = &ch->insts[inst];

    modmta_ctx_enter(ctx, MODMTA_PHASE_DELIVER, ci->mod, ci->inst, ci->host);
    ctx->decided_by = ci->host->instance;
    ci->mod->deliver_msg(ci->inst, ctx, dest);
    chain_leave(ctx, core);
}

const char *
chain_instance_at(const struct chain *ch, size_t inst)
{
    return inst < ch->ninsts ? ch->insts[inst].host->instance : NULL;
}

/* ---- extensions ---- */

void
chain_ehlo(struct chain *ch, modmta_ctx *ctx)
{
    const modmta_host *core = ctx->host;
    size_t i;

    for (i = 0; i < ch->nhooks[CHAIN_EHLO]; i++) {
        const struct chain_inst *ci = ch->hooks[CHAIN_EHLO][i];

        modmta_ctx_enter(ctx, MODMTA_PHASE_EHLO, ci->mod, ci->inst,
                         ci->host);
        ci->mod->ehlo(ci->inst, ctx);
    }
    chain_leave(ctx, core);
    modmta_ctx_reply_clear(ctx);
}

static const modmta_verb *
chain_verb_lookup(struct chain *ch, const char *verb,
                  const struct chain_inst **ci_r)
{
    size_t i, j;

    for (i = 0; i < ch->nhooks[CHAIN_VERBS]; i++) {
        const struct chain_inst *ci = ch->hooks[CHAIN_VERBS][i];
        const modmta_verb *vb = ci->mod->verbs;

        for (j = 0; vb[j].name != NULL; j++) {
            if (strcasecmp(vb[j].name, verb) == 0 && vb[j].handler) {
                *ci_r = ci;
                return &vb[j];
            }
        }
    }
    return NULL;
}

const modmta_verb *
chain_find_verb(struct chain *ch, const char *verb, void **inst_r)
{
    const struct chain_inst *ci;
    const modmta_verb *vb = chain_verb_lookup(ch, verb, &ci);

    if (vb != NULL && inst_r != NULL)
        *inst_r = ci->inst;
    return vb;
}

modmta_verdict
chain_run_verb(struct chain *ch, modmta_ctx *ctx, modmta_conn *conn,
               const char *verb, const char *args)
{
    const modmta_host *core = ctx->host;
    const struct chain_inst *ci;
    const modmta_verb *vb;
    modmta_verdict v;

    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, NULL, NULL, NULL);
    vb = chain_verb_lookup(ch, verb, &ci);
    if (vb == NULL) {
        modmta_ctx_reply_default(ctx, 500, "5.5.2",
                                 "Error: command not recognized");
        return MODMTA_REJECT;
    }
    modmta_ctx_enter(ctx, MODMTA_PHASE_VERB, ci->mod, ci->inst, ci->host);
    v = chain_verdict(ctx, vb->handler(ci->inst, ctx, conn, args));
    chain_leave(ctx, core);
    if (v == MODMTA_REJECT)
        chain_default(ctx, 550, "5.7.0", "Command rejected");
    else if (v == MODMTA_TEMPFAIL)
        chain_default(ctx, 454, "4.7.0", "Temporary failure, try again");
    else
        chain_default(ctx, 250, "2.0.0", "Ok");
    return v;
}

static const struct chain_inst *
chain_server(struct chain *ch, const char *protocol)
{
    size_t i;

    for (i = 0; i < ch->nhooks[CHAIN_SERVE]; i++)
        if (strcmp(ch->hooks[CHAIN_SERVE][i]->mod->name, protocol) == 0)
            return ch->hooks[CHAIN_SERVE][i];
    return NULL;
}

int
chain_serve(struct chain *ch, const char *protocol, modmta_ctx *ctx,
            modmta_conn *conn)
{
    const struct chain_inst *ci = chain_server(ch, protocol);
    const modmta_host *core = ctx->host;

    if (ci == NULL)
        return MODMTA_E_NOTFOUND;
    modmta_ctx_enter(ctx, MODMTA_PHASE_SERVE, ci->mod, ci->inst, ci->host);
    ci->mod->serve(ci->inst, ctx, conn);
    chain_leave(ctx, core);
    return 0;
}

int
chain_has_server(struct chain *ch, const char *protocol)
{
    return chain_server(ch, protocol) != NULL;
}
