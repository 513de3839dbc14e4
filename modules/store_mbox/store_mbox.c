/*
 * store_mbox: local delivery to mbox files, one per user, in one
 * directory ("/var/mail/bob"). Claims local recipients at RCPT (so
 * unknown users are refused during the dialogue) and appends at delivery
 * with mbox_write. See README.md for the keys and the rules.
 */
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "mbox_write.h"

#define STORE_MBOX_STALE_LOCK_S 300
#define STORE_MBOX_LOCK_TIMEOUT_MAX 3600

enum store_mbox_users {
    STORE_MBOX_ANY = 0,    /* any safe local part */
    STORE_MBOX_SYSTEM = 1, /* getpwnam_r must know it */
    STORE_MBOX_MAP = 2,    /* the map must have it */
};

/* What a recipient is to this instance. */
enum store_mbox_kind {
    STORE_MBOX_NOT_OURS = 0, /* not a local domain */
    STORE_MBOX_BAD_NAME = 1, /* local part unusable as a file name */
    STORE_MBOX_UNKNOWN = 2,  /* no such user */
    STORE_MBOX_TEMP = 3,     /* the user lookup failed */
    STORE_MBOX_OK = 4,
};

struct store_mbox_conf {
    char *directory;
    json_t *users;
    int fsync;
    char **domains;
    long long lock_timeout;
};

struct store_mbox {
    struct store_mbox_conf conf;
    char *dir; /* absolute: the daemon may chdir after create() */
    enum store_mbox_users users;
    modmta_map *map;
    const modmta_host *host;
};

struct store_mbox_user {
    char name[MODMTA_ADDR_LOCAL_MAX + 1]; /* lower case: the file name */
    int has_pw;
    uid_t uid;
    gid_t gid;
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
    if (sm->map != NULL)
        modmta_map_close(sm->map);
    modmta_conf_free_options(store_mbox_opts, &sm->conf);
    free(sm->dir);
    free(sm);
}

static int
store_mbox_conf_users(struct store_mbox *sm, const modmta_host *host,
                      modmta_err *err_r)
{
    const json_t *u = sm->conf.users;
    char path[256];

    snprintf(path, sizeof(path), "%s.users", modmta_host_path(host));
    if (u == NULL || (json_is_string(u) &&
                      strcmp(json_string_value(u), "any") == 0)) {
        sm->users = STORE_MBOX_ANY;
        return 0;
    }
    if (json_is_string(u) && strcmp(json_string_value(u), "system") == 0) {
        sm->users = STORE_MBOX_SYSTEM;
        return 0;
    }
    sm->map = modmta_map_open_host(u, host, path, err_r);
    if (sm->map == NULL)
        return MODMTA_E_CONFIG;
    sm->users = STORE_MBOX_MAP;
    return 0;
}

/* mkdir -p, each missing level mode 0755. 0 or an errno. */
static int
store_mbox_mkdirs(const char *dir)
{
    char *p = strdup(dir), *s, c;
    struct stat st;
    int e = 0;

    if (p == NULL)
        return ENOMEM;
    for (s = p + 1; e == 0; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        c = *s;
        *s = '\0';
        if (mkdir(p, 0755) < 0 && errno != EEXIST)
            e = errno;
        *s = c;
        if (c == '\0')
            break;
    }
    if (e == 0 && stat(dir, &st) < 0)
        e = errno;
    else if (e == 0 && !S_ISDIR(st.st_mode))
        e = ENOTDIR;
    free(p);
    return e;
}

static int
store_mbox_conf_directory(struct store_mbox *sm, const modmta_host *host,
                          modmta_err *err_r)
{
    char path[256];
    int e;

    snprintf(path, sizeof(path), "%s.directory", modmta_host_path(host));
    if (sm->conf.directory[0] == '\0') {
        modmta_err_set(err_r, path, "must not be empty");
        return MODMTA_E_CONFIG;
    }
    /* Kept as written, not made absolute: a relative directory resolves
     * from the daemon's working directory (it never changes it), which
     * works after the privilege drop even where an ancestor directory is
     * closed to the daemon's user (a checkout under /root). */
    e = store_mbox_mkdirs(sm->conf.directory);
    if (e == 0 && (sm->dir = strdup(sm->conf.directory)) == NULL)
        e = errno;
    if (e != 0) {
        modmta_err_set(err_r, path, "%s: %s", sm->conf.directory,
                       strerror(e));
        return MODMTA_E_CONFIG;
    }
    if (access(sm->dir, W_OK | X_OK) < 0)
        modmta_log_host(host, MODMTA_LOG_WARN,
                        "directory=%s is not writable by uid %lu", sm->dir,
                        (unsigned long)geteuid());
    return 0;
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
    if (store_mbox_conf_users(sm, host, err_r) < 0 ||
        store_mbox_conf_directory(sm, host, err_r) < 0)
        goto fail;
    return sm;
fail:
    store_mbox_destroy(sm);
    return NULL;
}

/* ---- recipients ---- */

static int
store_mbox_is_local(const struct store_mbox *sm, const char *domain)
{
    char **d;

    if (domain[0] == '\0')
        return 1;
    if (sm->conf.domains == NULL)
        return modmta_host_is_local_domain(sm->host, domain);
    for (d = sm->conf.domains; *d != NULL; d++)
        if (modmta_domain_equal(*d, domain))
            return 1;
    return 0;
}

/* Copy the local part, lower-cased, into name if it is safe as a file
 * name in the mail directory: 1..64 octets of RFC 5322 atext or '.'
 * without '/', no leading dot, no "..", and not ending in ".lock" (that
 * is another mailbox's dot-lock). */
static int
store_mbox_safe_name(const char *local, size_t len, char *name)
{
    static const char extra[] = "!#$%&'*+-=?^_`{|}~.";
    size_t i;

    if (len == 0 || len > MODMTA_ADDR_LOCAL_MAX || local[0] == '.')
        return 0;
    for (i = 0; i < len; i++) {
        char c = local[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        else if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') &&
                 (c == '\0' || strchr(extra, c) == NULL))
            return 0;
        name[i] = c;
    }
    name[len] = '\0';
    if (strstr(name, "..") != NULL)
        return 0;
    return !(len >= 5 && strcmp(name + len - 5, ".lock") == 0);
}

static enum store_mbox_kind
store_mbox_system_user(struct store_mbox_user *u)
{
    struct passwd pw, *res = NULL;
    size_t size = 4096;
    char *buf = NULL;
    int e;

    for (;;) {
        char *nbuf = realloc(buf, size);

        if (nbuf == NULL) {
            free(buf);
            return STORE_MBOX_TEMP;
        }
        buf = nbuf;
        e = getpwnam_r(u->name, &pw, buf, size, &res);
        if (e != ERANGE || size >= 1024 * 1024)
            break;
        size *= 2;
    }
    if (res != NULL) {
        u->has_pw = 1;
        u->uid = pw.pw_uid;
        u->gid = pw.pw_gid;
    }
    free(buf);
    if (res != NULL)
        return STORE_MBOX_OK;
    /* getpwnam_r(3): these also mean "no such user" */
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
        return STORE_MBOX_UNKNOWN;
    return STORE_MBOX_TEMP;
}

static enum store_mbox_kind
store_mbox_classify(const struct store_mbox *sm, const char *rcpt,
                    struct store_mbox_user *u)
{
    const char *at = strrchr(rcpt, '@');
    size_t llen = at ? (size_t)(at - rcpt) : strlen(rcpt);
    int rc;

    memset(u, 0, sizeof(*u));
    if (!store_mbox_is_local(sm, at ? at + 1 : ""))
        return STORE_MBOX_NOT_OURS;
    if (!store_mbox_safe_name(rcpt, llen, u->name))
        return STORE_MBOX_BAD_NAME;
    switch (sm->users) {
    case STORE_MBOX_SYSTEM:
        return store_mbox_system_user(u);
    case STORE_MBOX_MAP:
        rc = modmta_map_lookup(sm->map, u->name, NULL);
        if (rc < 0)
            return STORE_MBOX_TEMP;
        return rc > 0 ? STORE_MBOX_OK : STORE_MBOX_UNKNOWN;
    default:
        return STORE_MBOX_OK;
    }
}

/* The address for a log line: a hostile name must not forge lines. */
static const char *
store_mbox_printable(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < len; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

static modmta_verdict
store_mbox_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct store_mbox_user u;
    char buf[MODMTA_ADDR_PATH_MAX + 1];

    switch (store_mbox_classify(inst, rcpt, &u)) {
    case STORE_MBOX_OK:
        return MODMTA_ACCEPT;
    case STORE_MBOX_BAD_NAME:
        modmta_log(ctx, MODMTA_LOG_INFO,
                   "reject rcpt=<%s> reason=bad_mailbox_name",
                   store_mbox_printable(rcpt, buf, sizeof(buf)));
        modmta_reply(ctx, 550, "5.1.3", "Bad recipient mailbox name");
        return MODMTA_REJECT;
    case STORE_MBOX_TEMP:
        modmta_log(ctx, MODMTA_LOG_WARN,
                   "tempfail rcpt=<%s> reason=user_lookup_failed", rcpt);
        modmta_reply(ctx, 451, "4.3.0", "Temporary user lookup failure");
        return MODMTA_TEMPFAIL;
    default:
        return MODMTA_CONTINUE;
    }
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
    case MODMTA_E_PERM:
        modmta_log(ctx, MODMTA_LOG_WARN, "refused mailbox=%s reason=\"%s\"",
                   mailbox, why);
        modmta_reply(ctx, 451, "4.2.0", "%s", why);
        return MODMTA_DEFERRED;
    default:
        modmta_log(ctx, MODMTA_LOG_ERR, "failed mailbox=%s reason=\"%s\"",
                   mailbox, why);
        modmta_reply(ctx, 451, "4.3.0", "%s", why);
        return MODMTA_DEFERRED;
    }
}

static modmta_dstatus
store_mbox_deliver(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    const struct store_mbox *sm = inst;
    struct store_mbox_user u;
    mbox_write_req req;
    char mailbox[PATH_MAX], why[512];
    const char *sender = modmta_sender(ctx);
    int rc;

    switch (store_mbox_classify(sm, rcpt, &u)) {
    case STORE_MBOX_OK:
        break;
    case STORE_MBOX_TEMP:
        modmta_reply(ctx, 451, "4.3.0", "Temporary user lookup failure");
        return MODMTA_DEFERRED;
    default:
        return MODMTA_DECLINED;
    }
    if (modmta_message_path(ctx) == NULL) {
        modmta_reply(ctx, 451, "4.3.0", "no queued message");
        return MODMTA_DEFERRED;
    }
    rc = mbox_write_has_loop(modmta_message_path(ctx), rcpt);
    if (rc < 0) {
        modmta_reply(ctx, 451, "4.3.0", "cannot read the queued message");
        return MODMTA_DEFERRED;
    }
    if (rc > 0) {
        modmta_log(ctx, MODMTA_LOG_NOTICE, "loop rcpt=<%s>", rcpt);
        modmta_reply(ctx, 554, "5.4.6", "mail forwarding loop for %s", rcpt);
        return MODMTA_FAILED;
    }
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
