/*
 * The hook chain of one generation: the module instances in config order,
 * and for each hook an array holding only the instances that implement it.
 * Each chain_* runs one hook through the chain, sets the ctx phase and
 * current instance around every call, applies the verdict rules, and
 * leaves the reply to send in the ctx (a module's, or the core default).
 */
#ifndef MODMTA_CORE_CHAIN_H
#define MODMTA_CORE_CHAIN_H

#include <modmta/module.h>
#include <modmta/ctx.h>

#include "config.h"

struct chain;

/* Load every module of cfg->modules and create its instance.
 * All errors go to errs with their JSON path. */
struct chain *chain_build(const struct config *cfg, int is_root,
                          struct config_errors *errs);
void chain_free(struct chain *ch);

modmta_verdict chain_connect(struct chain *ch, modmta_ctx *ctx);
modmta_verdict chain_helo(struct chain *ch, modmta_ctx *ctx, const char *helo);
modmta_verdict chain_auth(struct chain *ch, modmta_ctx *ctx, const char *user,
                          int success);
modmta_verdict chain_mail(struct chain *ch, modmta_ctx *ctx,
                          const char *sender);
/* RCPT: runs the chain on rcpt, re-runs it on every rewrite target (depth
 * and loop limits), applies the claim rule. On ACCEPT the final recipients
 * have been appended to the transaction (modmta_rcpt_count grows; a
 * DISCARDed recipient adds nothing). On REJECT/TEMPFAIL the reply is set
 * (550 5.1.1 unknown local user, 554 5.7.1 relay denied by default). */
modmta_verdict chain_rcpt(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
                          const struct config_limits *lim);
modmta_verdict chain_data(struct chain *ch, modmta_ctx *ctx);
void chain_queued(struct chain *ch, modmta_ctx *ctx);
/* on_abort of every instance that has it (ABI 1.6). */
void chain_abort(struct chain *ch, modmta_ctx *ctx);
/* A command neither the core nor a module verb knows (ABI 1.6
 * on_unknown), before the core's 500: REJECT or TEMPFAIL with a
 * module's reply (or the default for its class) in ctx, or CONTINUE (the
 * core replies 500, whatever the modules said). */
modmta_verdict chain_unknown(struct chain *ch, modmta_ctx *ctx,
                             const char *line);
/* The streaming hooks (ABI 1.6): 1 if an instance has one of them. */
int chain_streams(const struct chain *ch);
/* The number of instances: the size of the `done` array below, zeroed
 * for each message; an instance that returned ACCEPT is marked in it and
 * called no more for the message. Each returns CONTINUE, or the
 * message's verdict (REJECT, TEMPFAIL, DISCARD) with its reply in ctx:
 * stop streaming then. */
size_t chain_count(const struct chain *ch);
modmta_verdict chain_header(struct chain *ch, modmta_ctx *ctx,
                            unsigned char *done, const char *name,
                            const char *value);
modmta_verdict chain_eoh(struct chain *ch, modmta_ctx *ctx,
                         unsigned char *done);
/* chunk NULL, len 0: the end of the body. */
modmta_verdict chain_body(struct chain *ch, modmta_ctx *ctx,
                          unsigned char *done, const unsigned char *chunk,
                          size_t len);
void chain_disconnect(struct chain *ch, modmta_ctx *ctx);
/* Collect EHLO keywords from modules into the ctx (ctx_priv.h). */
void chain_ehlo(struct chain *ch, modmta_ctx *ctx);
/* A module verb ("AUTH"): NULL if none. */
const modmta_verb *chain_find_verb(struct chain *ch, const char *verb,
                                   void **inst_r);
/* Run a module-registered verb with phase handling; reply in ctx. */
modmta_verdict chain_run_verb(struct chain *ch, modmta_ctx *ctx,
                              modmta_conn *conn, const char *verb,
                              const char *args);
/* The module that serves `protocol` on a listener, or NULL. */
int chain_serve(struct chain *ch, const char *protocol, modmta_ctx *ctx,
                modmta_conn *conn);
int chain_has_server(struct chain *ch, const char *protocol);
/* Where one recipient goes at delivery (chain_route). */
struct chain_route {
    int claimed;            /* a route() claimed it: inst and dest */
    size_t inst;            /* the claiming (or offered) instance's index */
    const char *dest;       /* its destination (ctx's txn arena) */
    int discarded;          /* a route() discarded it */
    modmta_dstatus status;  /* not claimed: the result, reply in ctx
                             * (DELIVERED, DEFERRED, FAILED, or
                             * RELAYED_DSN when discarded) */
    int offered;            /* chain_route_dry: inst is the deliver()
                             * module it would be handed to (status
                             * DECLINED: nothing decided) */
};

/* Run one recipient through the deliver chain in config order: a module
 * with route() (ABI 1.3) claims it for a later chain_deliver_msg, or
 * decides it now (REJECT: FAILED, TEMPFAIL: DEFERRED, DISCARD); a module
 * with deliver() delivers it now unless it DECLINEs. All DECLINED gives
 * DEFERRED "no module delivers" (a config problem the administrator can
 * fix; Postfix defers too). ctx->decided_by names the instance. */
void chain_route(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
                 struct chain_route *r);
/* chain_route without delivering anything (modmtatest --route): route()
 * modules are called as chain_route calls them, but the first module
 * with deliver() and no route() is not: r->offered names it. */
void chain_route_dry(struct chain *ch, modmta_ctx *ctx, const char *rcpt,
                     struct chain_route *r);
/* Call instance inst's deliver_msg(ctx, dest) on the group in ctx
 * (modmta_ctx_dlv_group); the results are left in ctx->dlv. */
void chain_deliver_msg(struct chain *ch, size_t inst, modmta_ctx *ctx,
                       const char *dest);
/* One hook call of a module, as a tracer sees it (chain_set_trace): the
 * tracer is called before the call (after 0) and after it (after 1), on
 * the calling thread, with the ctx as the module has it (phase and
 * instance set; before: reply cleared). */
struct chain_call {
    const char *instance;
    const char *hook;       /* "on_connect" ... "on_disconnect", "route" */
    const char *arg;        /* HELO name, address, identity; NULL: none */
    int success;            /* on_auth: the authentication succeeded */
    int after;
    modmta_verdict returned; /* after: what the hook returned */
    int timed_out;          /* after: it overran its budget (then
                             * returned is discarded) */
    modmta_verdict verdict; /* after: what the chain goes on with:
                             * checked, on_hook_timeout's when it overran
                             * (for on_auth, on_queued, on_disconnect
                             * unused) */
};
typedef void chain_trace_fn(void *arg, modmta_ctx *ctx,
                            const struct chain_call *call);
/* Trace every budgeted hook call (on_connect ... on_disconnect, route())
 * of ch; NULL: none, as in the daemon. Set before any session uses ch:
 * the pointer is read without a lock. */
void chain_set_trace(struct chain *ch, chain_trace_fn *fn, void *arg);
/* The name of instance inst (its log name), NULL past the end. */
const char *chain_instance_at(const struct chain *ch, size_t inst);

#endif
