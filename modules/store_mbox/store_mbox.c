/*
 * store_mbox: local delivery to mbox files, one per user, in one
 * directory ("/var/mail/bob"). Claims local recipients at RCPT (so
 * unknown users are refused during the dialogue) and appends at delivery
 * with mbox_write. See README.md for the keys and the rules.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "local_user.h"
#include "store_result.h"
#include "mbox_write.h"

#define STORE_MBOX_STALE_LOCK_S 300
#define STORE_MBOX_LOCK_TIMEOUT_MAX 3600

struct store_mbox_conf {
    char *directory;
    json_t *users;
    int fsync;
    char **domains;
    long long lock_timeout;
};

struct store_mbox {
    struct store_mbox_conf conf;
    char *dir; /* as configured: relative to the daemon's directory */
    local_users users;
    const modmta_host *host;
};

static const modmta_option store_mbox_opts[] = {
    MODMTA_OPTION_STRING("directory", struct store_mbox_conf, directory,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_JSON("users", struct store_mbox_conf, users, 0),
    MODMTA_OPTION_BOOL("fsync", struct store_mbox_conf, fsync, 0),
    MODMTA_OPTION_STRLIST("domains", struct store_mbox_conf, domains, 0),
    MODMTA_OPTION_SECONDS("lock_timeout", struct store_mbox_conf,
                          lock_timeout, 0, 0, STORE_MBOX_LOCK_TIMEOUT_MAX),
    MODMTA_OPTION_END
};

/* ---- configuration ---- */

static void
store_mbox_destroy(void *inst)
{
    struct store_mbox *sm = inst;

    if (sm == NULL)
        return;
    local_users_free(&sm->users);
    modmta_conf_free_options(store_mbox_opts, &sm->conf);
    free(sm->dir);
    free(sm);
}

static void *
store_mbox_create(const json_t *conf, const modmta_host *host,
                  modmta_err *err_r)
{
    struct store_mbox *sm = calloc(1, sizeof(*sm));

    if (sm == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    sm->host = host;
    sm->conf.fsync = 1;
    sm->conf.lock_timeout = 10;
    if (modmta_conf_parse_options(conf, host, store_mbox_opts, &sm->conf,
                                  err_r) < 0)
        goto fail;
    if (local_users_init(&sm->users, sm->conf.users, sm->conf.domains, host,
                         err_r) < 0 ||
        local_dir_prepare(sm->conf.directory, host, &sm->dir, err_r) < 0)
        goto fail;
    return sm;
fail:
    store_mbox_destroy(sm);
    return NULL;
}

/* ---- recipients ---- */

static modmta_verdict
store_mbox_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct store_mbox *sm = inst;
    local_user u;

    return local_users_rcpt_verdict(ctx, rcpt, local_users_classify(
                                                   &sm->users, rcpt, &u));
}

/* ---- delivery ---- */

static modmta_dstatus
store_mbox_result(modmta_ctx *ctx, const char *mailbox, int rc,
                  const char *why)
{
    if (rc >= 0 && why[0] != '\0')
        modmta_log(ctx, MODMTA_LOG_NOTICE, "repair mailbox=%s reason=\"%s\"",
                   mailbox, why);
    switch (rc) {
    case MBOX_WRITE_DONE:
        modmta_reply(ctx, 250, "2.0.0", "delivered to mailbox");
        return MODMTA_DELIVERED;
    case MBOX_WRITE_DUPLICATE:
        modmta_log(ctx, MODMTA_LOG_INFO,
                   "duplicate mailbox=%s reason=already_delivered", mailbox);
        modmta_reply(ctx, 250, "2.0.0",
                     "delivered to mailbox (found there after a crash)");
        return MODMTA_DELIVERED;
    case MODMTA_E_TIMEOUT:
        modmta_reply(ctx, 451, "4.2.0", "%s", why);
        return MODMTA_DEFERRED;
    default:
        return store_result_deferred(ctx, "mailbox", mailbox, rc, why);
    }
}

static modmta_dstatus
store_mbox_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct store_mbox *sm = inst;
    local_user u;
    mbox_write_req req;
    char mailbox[PATH_MAX], why[512];
    const char *sender = modmta_sender(ctx);
    modmta_dstatus st;
    int rc;

    if (local_users_deliver_check(&sm->users, ctx, rcpt, &u, &st))
        return st;
    if ((size_t)snprintf(mailbox, sizeof(mailbox), "%s/%s", sm->dir,
                         u.name) >= sizeof(mailbox)) {
        modmta_reply(ctx, 451, "4.3.0", "mailbox path too long");
        return MODMTA_DEFERRED;
    }
    memset(&req, 0, sizeof(req));
    req.mailbox = mailbox;
    req.message = modmta_message_path(ctx);
    req.sender = sender != NULL ? sender : "";
    req.rcpt = rcpt;
    req.orcpt = modmta_dlv_original_rcpt(ctx);
    req.date = time(NULL);
    req.queue_id = modmta_queue_id(ctx);
    req.dedup = modmta_dlv_maybe_done(ctx);
    req.fsync = sm->conf.fsync;
    req.lock_timeout_ms = (int)sm->conf.lock_timeout * 1000;
    req.stale_lock_s = STORE_MBOX_STALE_LOCK_S;
    /* Only root can give a new mailbox to its user. */
    req.set_owner = u.has_pw && geteuid() == 0;
    req.uid = u.uid;
    req.gid = u.gid;
    rc = mbox_write_append(&req, why, sizeof(why));
    return store_mbox_result(ctx, mailbox, rc, why);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "store_mbox",
    .version = "1.0.0",
    .create = store_mbox_create,
    .destroy = store_mbox_destroy,
    .on_rcpt = store_mbox_on_rcpt,
    .deliver = store_mbox_deliver,
};
