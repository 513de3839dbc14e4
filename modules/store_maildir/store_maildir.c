/*
 * store_maildir: local delivery into Maildirs, one per user,
 * "<directory>/<user>/" with tmp/ new/ cur/, as Dovecot reads them
 * (mail_location = maildir:<directory>/%n). Claims local recipients at
 * RCPT like store_mbox (the same "users" and "domains" rules, in
 * modules/common), refuses a recipient whose Maildir++ quota is known to
 * be full, and delivers with maildir_write. See README.md.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "local_user.h"
#include "store_result.h"
#include "maildir_name.h"
#include "maildir_quota.h"
#include "maildir_write.h"

struct store_maildir_conf {
    char *directory;
    json_t *users;
    int fsync;
    char **domains;
    char *owner;
    long long quota;
    long long quota_messages;
    json_t *quotas;
    int over_quota; /* STORE_MAILDIR_BOUNCE or _DEFER */
    int extension_folders;
};

enum { STORE_MAILDIR_BOUNCE = 0, STORE_MAILDIR_DEFER = 1 };

struct store_maildir {
    struct store_maildir_conf conf;
    char *dir; /* as configured: relative to the daemon's directory */
    local_users users;
    maildir_quota quota; /* everyone's unless "quotas" says otherwise */
    modmta_map *quotas;
    int defer_over_quota;
    int has_owner; /* "owner": every Maildir belongs to owner_uid */
    uid_t owner_uid;
    gid_t owner_gid;
    const modmta_host *host;
};

static const modmta_option store_maildir_opts[] = {
    MODMTA_OPTION_STRING("directory", struct store_maildir_conf, directory,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_JSON("users", struct store_maildir_conf, users, 0),
    MODMTA_OPTION_BOOL("fsync", struct store_maildir_conf, fsync, 0),
    MODMTA_OPTION_STRLIST("domains", struct store_maildir_conf, domains, 0),
    MODMTA_OPTION_STRING("owner", struct store_maildir_conf, owner, 0),
    MODMTA_OPTION_SIZE("quota", struct store_maildir_conf, quota, 0, 0,
                       LLONG_MAX),
    MODMTA_OPTION_RANGE("quota_messages", struct store_maildir_conf,
                        quota_messages, 0, 0, LLONG_MAX),
    MODMTA_OPTION_JSON("quotas", struct store_maildir_conf, quotas, 0),
    MODMTA_OPTION_ENUM("over_quota", struct store_maildir_conf, over_quota, 0,
                       "bounce", "defer"),
    MODMTA_OPTION_BOOL("extension_folders", struct store_maildir_conf,
                       extension_folders, 0),
    MODMTA_OPTION_END
};

/* ---- configuration ---- */

static void
store_maildir_destroy(void *inst)
{
    struct store_maildir *sm = inst;

    if (sm == NULL)
        return;
    local_users_free(&sm->users);
    if (sm->quotas != NULL)
        modmta_map_close(sm->quotas);
    modmta_conf_free_options(store_maildir_opts, &sm->conf);
    free(sm->dir);
    free(sm);
}

static int
store_maildir_conf_quota(struct store_maildir *sm, const modmta_host *host,
                         modmta_err *err_r)
{
    char path[256];

    sm->quota.bytes = sm->conf.quota;
    sm->quota.count = sm->conf.quota_messages;
    sm->defer_over_quota = sm->conf.over_quota == STORE_MAILDIR_DEFER;
    if (sm->conf.quotas == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s.quotas", modmta_host_path(host));
    sm->quotas = modmta_map_open_host(sm->conf.quotas, host, path, err_r);
    return sm->quotas != NULL ? 0 : MODMTA_E_CONFIG;
}

static int
store_maildir_conf_owner(struct store_maildir *sm, const modmta_host *host,
                         modmta_err *err_r)
{
    char path[256];

    if (sm->conf.owner == NULL)
        return 0;
    snprintf(path, sizeof(path), "%s.owner", modmta_host_path(host));
    switch (local_user_account(sm->conf.owner, &sm->owner_uid,
                               &sm->owner_gid)) {
    case LOCAL_USER_OK:
        break;
    case LOCAL_USER_UNKNOWN:
        modmta_err_set(err_r, path, "no such account: %s", sm->conf.owner);
        return MODMTA_E_CONFIG;
    default:
        modmta_err_set(err_r, path, "cannot look up %s", sm->conf.owner);
        return MODMTA_E_CONFIG;
    }
    sm->has_owner = 1;
    if (!modmta_host_is_root(host))
        modmta_log_host(host, MODMTA_LOG_WARN, "owner=%s needs deliveries "
                        "to run as root: Maildirs will belong to uid %lu",
                        sm->conf.owner, (unsigned long)geteuid());
    return 0;
}

static void *
store_maildir_create(const json_t *conf, const modmta_host *host,
                     modmta_err *err_r)
{
    struct store_maildir *sm = calloc(1, sizeof(*sm));

    if (sm == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    sm->host = host;
    sm->conf.fsync = 1;
    sm->conf.extension_folders = 1;
    if (modmta_conf_parse_options(conf, host, store_maildir_opts, &sm->conf,
                                  err_r) < 0 ||
        store_maildir_conf_quota(sm, host, err_r) < 0 ||
        store_maildir_conf_owner(sm, host, err_r) < 0 ||
        local_users_init(&sm->users, sm->conf.users, sm->conf.domains, host,
                         err_r) < 0 ||
        local_dir_prepare(sm->conf.directory, host, &sm->dir, err_r) < 0) {
        store_maildir_destroy(sm);
        return NULL;
    }
    return sm;
}

/* ---- per user ---- */

/* The user's quota: the defaults, or what "quotas" says (its items
 * replace the defaults'). 0, or MODMTA_E_TEMP (lookup failed) or
 * MODMTA_E_INVAL (a malformed entry). */
static int
store_maildir_user_quota(const struct store_maildir *sm, const char *user,
                         maildir_quota *q)
{
    char *value = NULL;
    int rc;

    *q = sm->quota;
    if (sm->quotas == NULL)
        return 0;
    rc = modmta_map_lookup(sm->quotas, user, &value);
    if (rc < 0)
        return MODMTA_E_TEMP;
    if (rc > 0 && maildir_quota_parse_rule(value, q) < 0)
        rc = MODMTA_E_INVAL;
    else
        rc = 0;
    modmta_free(value);
    return rc;
}

static int
store_maildir_path(const struct store_maildir *sm, const char *user,
                   char *out, size_t len)
{
    return (size_t)snprintf(out, len, "%s/%s", sm->dir, user) < len ? 0 : -1;
}

/* ---- RCPT ---- */

/* 1 if the user's Maildir is known to have no room for the message (its
 * declared SIZE, or any message at all): 552 5.2.2 set. */
static int
store_maildir_rcpt_full(const struct store_maildir *sm, modmta_ctx *ctx,
                        const char *rcpt, const local_user *u)
{
    const char *size_param = modmta_mail_param(ctx, "SIZE");
    char maildir[PATH_MAX], buf[MODMTA_ADDR_PATH_MAX + 1];
    long long size = 0;
    maildir_quota q;

    if (store_maildir_user_quota(sm, u->name, &q) < 0 ||
        (q.bytes == 0 && q.count == 0) ||
        store_maildir_path(sm, u->name, maildir, sizeof(maildir)) < 0)
        return 0; /* delivery will tell */
    if (size_param != NULL)
        size = strtoll(size_param, NULL, 10);
    if (size < 0)
        size = 0;
    if (!maildir_write_known_full(maildir, &q, size))
        return 0;
    modmta_log(ctx, MODMTA_LOG_INFO, "reject rcpt=<%s> reason=over_quota",
               local_printable(rcpt, buf, sizeof(buf)));
    modmta_reply(ctx, 552, "5.2.2", "Mailbox full");
    return 1;
}

static modmta_verdict
store_maildir_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct store_maildir *sm = inst;
    enum local_user_kind kind;
    local_user u;

    kind = local_users_classify(&sm->users, rcpt, &u);
    if (kind == LOCAL_USER_OK && store_maildir_rcpt_full(sm, ctx, rcpt, &u))
        return MODMTA_REJECT;
    return local_users_rcpt_verdict(ctx, rcpt, kind);
}

/* ---- delivery ---- */

static modmta_dstatus
store_maildir_result(const struct store_maildir *sm, modmta_ctx *ctx,
                     const char *maildir, int rc, const char *why)
{
    switch (rc) {
    case MAILDIR_WRITE_DONE:
        if (why[0] != '\0')
            modmta_log(ctx, MODMTA_LOG_WARN, "delivered maildir=%s "
                       "reason=\"%s\"", maildir, why);
        modmta_reply(ctx, 250, "2.0.0", "delivered to maildir");
        return MODMTA_DELIVERED;
    case MAILDIR_WRITE_DUPLICATE:
        modmta_log(ctx, MODMTA_LOG_INFO,
                   "duplicate maildir=%s reason=already_delivered", maildir);
        modmta_reply(ctx, 250, "2.0.0",
                     "delivered to maildir (found there after a crash)");
        return MODMTA_DELIVERED;
    case MAILDIR_WRITE_TAKEN:
        modmta_log(ctx, MODMTA_LOG_WARN, "delivered maildir=%s reason=\"%s"
                   ", but a reader already took the message\"", maildir,
                   why);
        modmta_reply(ctx, 250, "2.0.0", "delivered to maildir");
        return MODMTA_DELIVERED;
    case MAILDIR_WRITE_OVER_QUOTA:
        modmta_log(ctx, MODMTA_LOG_NOTICE, "over_quota maildir=%s "
                   "reason=\"%s\"", maildir, why);
        if (sm->defer_over_quota) {
            modmta_reply(ctx, 452, "4.2.2", "%s", why);
            return MODMTA_DEFERRED;
        }
        modmta_reply(ctx, 552, "5.2.2", "%s", why);
        return MODMTA_FAILED;
    default:
        return store_result_deferred(ctx, "maildir", maildir, rc, why);
    }
}

/* Whose the files are: "owner", else (as store_mbox) the recipient's
 * account; only root can give them away. */
static void
store_maildir_owner(const struct store_maildir *sm, const local_user *u,
                    maildir_req *req)
{
    if (geteuid() != 0)
        return;
    if (sm->has_owner) {
        req->set_owner = 1;
        req->uid = sm->owner_uid;
        req->gid = sm->owner_gid;
    } else if (u->has_pw) {
        req->set_owner = 1;
        req->uid = u->uid;
        req->gid = u->gid;
    }
}

static modmta_dstatus
store_maildir_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct store_maildir *sm = inst;
    const char *sender = modmta_sender(ctx), *qid = modmta_queue_id(ctx);
    char maildir[PATH_MAX], why[512], folder[MAILDIR_FOLDER_MAX + 1];
    modmta_dstatus st;
    maildir_req req;
    local_user u;
    int rc;

    if (local_users_deliver_check(&sm->users, ctx, rcpt, &u, &st))
        return st;
    if (store_maildir_path(sm, u.name, maildir, sizeof(maildir)) < 0) {
        modmta_reply(ctx, 451, "4.3.0", "Maildir path too long");
        return MODMTA_DEFERRED;
    }
    memset(&req, 0, sizeof(req));
    rc = store_maildir_user_quota(sm, u.name, &req.quota);
    if (rc < 0) {
        modmta_log(ctx, MODMTA_LOG_WARN, "tempfail user=%s reason=%s",
                   u.name, rc == MODMTA_E_TEMP ? "quota_lookup_failed"
                                               : "bad_quota_entry");
        modmta_reply(ctx, 451, "4.3.0", "%s", rc == MODMTA_E_TEMP ?
                     "Temporary quota lookup failure" : "Bad quota entry");
        return MODMTA_DEFERRED;
    }
    req.maildir = maildir;
    if (sm->conf.extension_folders && maildir_folder_name(u.ext, folder))
        req.folder = folder;
    req.message = modmta_message_path(ctx);
    req.sender = sender != NULL ? sender : "";
    req.rcpt = rcpt;
    req.orcpt = modmta_dlv_original_rcpt(ctx);
    req.queue_id = qid != NULL ? qid : "";
    req.hostname = modmta_host_hostname(sm->host);
    req.dedup = modmta_dlv_maybe_done(ctx);
    req.fsync = sm->conf.fsync;
    store_maildir_owner(sm, &u, &req);
    rc = maildir_write(&req, why, sizeof(why));
    return store_maildir_result(sm, ctx, maildir, rc, why);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "store_maildir",
    .version = "1.0.0",
    .create = store_maildir_create,
    .destroy = store_maildir_destroy,
    .on_rcpt = store_maildir_on_rcpt,
    .deliver = store_maildir_deliver,
};
