/*
 * Who has a mailbox here: the "users"/"domains" rules of the local stores
 * (see local_user.h, and store_mbox's README for the rules themselves).
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hdr_scan.h"
#include "local_user.h"

int
local_users_init(local_users *lu, const json_t *users, char **domains,
                 const modmta_host *host, modmta_err *err_r)
{
    char path[256];

    memset(lu, 0, sizeof(*lu));
    lu->domains = domains;
    lu->host = host;
    snprintf(path, sizeof(path), "%s.users", modmta_host_path(host));
    if (users == NULL || (json_is_string(users) &&
                          strcmp(json_string_value(users), "any") == 0))
        return 0;
    if (json_is_string(users) &&
        strcmp(json_string_value(users), "system") == 0) {
        lu->source = LOCAL_USER_SYSTEM;
        return 0;
    }
    lu->map = modmta_map_open_host(users, host, path, err_r);
    if (lu->map == NULL)
        return MODMTA_E_CONFIG;
    lu->source = LOCAL_USER_MAP;
    return 0;
}

void
local_users_free(local_users *lu)
{
    if (lu->map != NULL)
        modmta_map_close(lu->map);
    lu->map = NULL;
}

static int
local_users_is_local(const local_users *lu, const char *domain)
{
    char **d;

    if (domain[0] == '\0')
        return 1;
    if (lu->domains == NULL)
        return modmta_host_is_local_domain(lu->host, domain);
    for (d = lu->domains; *d != NULL; d++)
        if (modmta_domain_equal(*d, domain))
            return 1;
    return 0;
}

/* 1..64 octets of RFC 5322 atext or '.' without '/', no leading dot (a
 * hidden file, a Maildir++ folder), no "..", and not ending in ".lock"
 * (another mbox's dot-lock). */
int
local_user_safe_name(const char *local, size_t len, char *out)
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
        out[i] = c;
    }
    out[len] = '\0';
    if (strstr(out, "..") != NULL)
        return 0;
    return !(len >= 5 && strcmp(out + len - 5, ".lock") == 0);
}

enum local_user_kind
local_user_account(const char *name, uid_t *uid_r, gid_t *gid_r)
{
    struct passwd pw, *res = NULL;
    size_t size = 4096;
    char *buf = NULL;
    int e;

    for (;;) {
        char *nbuf = realloc(buf, size);

        if (nbuf == NULL) {
            free(buf);
            return LOCAL_USER_TEMP;
        }
        buf = nbuf;
        e = getpwnam_r(name, &pw, buf, size, &res);
        if (e != ERANGE || size >= 1024 * 1024)
            break;
        size *= 2;
    }
    if (res != NULL) {
        *uid_r = pw.pw_uid;
        *gid_r = pw.pw_gid;
    }
    free(buf);
    if (res != NULL)
        return LOCAL_USER_OK;
    /* getpwnam_r(3): these also mean "no such user" */
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
        return LOCAL_USER_UNKNOWN;
    return LOCAL_USER_TEMP;
}

/* Who local part name (safe, lower case) is under the "users" rule. */
static enum local_user_kind
local_users_lookup(const local_users *lu, local_user *u)
{
    enum local_user_kind k;
    int rc;

    switch (lu->source) {
    case LOCAL_USER_SYSTEM:
        k = local_user_account(u->name, &u->uid, &u->gid);
        u->has_pw = k == LOCAL_USER_OK;
        return k;
    case LOCAL_USER_MAP:
        rc = modmta_map_lookup(lu->map, u->name, NULL);
        if (rc < 0)
            return LOCAL_USER_TEMP;
        return rc > 0 ? LOCAL_USER_OK : LOCAL_USER_UNKNOWN;
    default:
        return LOCAL_USER_OK;
    }
}

/* "user+ext": the whole local part when "users" knows it (an exact
 * entry wins, as in Postfix; "any" has no entries, so the extension is
 * always cut), else the user before the recipient_delimiter. */
enum local_user_kind
local_users_classify(const local_users *lu, const char *rcpt, local_user *u)
{
    const char *at = strrchr(rcpt, '@');
    size_t llen = at ? (size_t)(at - rcpt) : strlen(rcpt);
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 1], base[sizeof(local)];
    char ext[sizeof(local)];
    enum local_user_kind k;

    memset(u, 0, sizeof(*u));
    if (!local_users_is_local(lu, at ? at + 1 : ""))
        return LOCAL_USER_NOT_OURS;
    if (llen >= sizeof(local))
        return LOCAL_USER_BAD_NAME;
    memcpy(local, rcpt, llen);
    local[llen] = '\0';
    if (modmta_addr_split_extension(local,
                                    modmta_host_recipient_delimiter(lu->host),
                                    base, sizeof(base), ext,
                                    sizeof(ext)) != 1) {
        if (!local_user_safe_name(local, llen, u->name))
            return LOCAL_USER_BAD_NAME;
        return local_users_lookup(lu, u);
    }
    if (lu->source != LOCAL_USER_ANY &&
        local_user_safe_name(local, llen, u->name)) {
        k = local_users_lookup(lu, u);
        if (k != LOCAL_USER_UNKNOWN)
            return k;
        memset(u, 0, sizeof(*u));
    }
    if (!local_user_safe_name(base, strlen(base), u->name))
        return LOCAL_USER_BAD_NAME;
    snprintf(u->ext, sizeof(u->ext), "%s", ext);
    return local_users_lookup(lu, u);
}

const char *
local_printable(const char *s, char *buf, size_t len)
{
    size_t i;

    for (i = 0; s[i] != '\0' && i + 1 < len; i++)
        buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? '?' : s[i];
    buf[i] = '\0';
    return buf;
}

modmta_verdict
local_users_rcpt_verdict(modmta_ctx *ctx, const char *rcpt,
                         enum local_user_kind kind)
{
    char buf[MODMTA_ADDR_PATH_MAX + 1];

    switch (kind) {
    case LOCAL_USER_OK:
        return MODMTA_ACCEPT;
    case LOCAL_USER_BAD_NAME:
        modmta_log(ctx, MODMTA_LOG_INFO,
                   "reject rcpt=<%s> reason=bad_mailbox_name",
                   local_printable(rcpt, buf, sizeof(buf)));
        modmta_reply(ctx, 550, "5.1.3", "Bad recipient mailbox name");
        return MODMTA_REJECT;
    case LOCAL_USER_TEMP:
        modmta_log(ctx, MODMTA_LOG_WARN,
                   "tempfail rcpt=<%s> reason=user_lookup_failed",
                   local_printable(rcpt, buf, sizeof(buf)));
        modmta_reply(ctx, 451, "4.3.0", "Temporary user lookup failure");
        return MODMTA_TEMPFAIL;
    default:
        return MODMTA_CONTINUE;
    }
}

int
local_users_deliver_check(const local_users *lu, modmta_ctx *ctx,
                          const char *rcpt, local_user *u,
                          modmta_dstatus *st_r)
{
    const char *msg = modmta_message_path(ctx);
    int rc;

    *st_r = MODMTA_DEFERRED;
    switch (local_users_classify(lu, rcpt, u)) {
    case LOCAL_USER_OK:
        break;
    case LOCAL_USER_TEMP:
        modmta_reply(ctx, 451, "4.3.0", "Temporary user lookup failure");
        return 1;
    default:
        *st_r = MODMTA_DECLINED;
        return 1;
    }
    if (msg == NULL) {
        modmta_reply(ctx, 451, "4.3.0", "no queued message");
        return 1;
    }
    rc = hdr_scan_has_loop(msg, rcpt);
    if (rc < 0) {
        modmta_reply(ctx, 451, "4.3.0", "cannot read the queued message");
        return 1;
    }
    if (rc > 0) {
        modmta_log(ctx, MODMTA_LOG_NOTICE, "loop rcpt=<%s>", rcpt);
        modmta_reply(ctx, 554, "5.4.6", "mail forwarding loop for %s", rcpt);
        *st_r = MODMTA_FAILED;
        return 1;
    }
    return 0;
}

/* mkdir -p, each missing level mode 0755. 0 or an errno. */
static int
local_dir_mkdirs(const char *dir)
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

int
local_dir_prepare(const char *directory, const modmta_host *host,
                  char **dir_r, modmta_err *err_r)
{
    char path[256];
    int e;

    *dir_r = NULL;
    snprintf(path, sizeof(path), "%s.directory", modmta_host_path(host));
    if (directory[0] == '\0') {
        modmta_err_set(err_r, path, "must not be empty");
        return MODMTA_E_CONFIG;
    }
    /* Kept as written, not made absolute: a relative directory resolves
     * from the daemon's working directory (it never changes it), which
     * works after the privilege drop even where an ancestor directory is
     * closed to the daemon's user (a checkout under /root). */
    e = local_dir_mkdirs(directory);
    if (e == 0 && (*dir_r = strdup(directory)) == NULL)
        e = errno;
    if (e != 0) {
        modmta_err_set(err_r, path, "%s: %s", directory, strerror(e));
        return MODMTA_E_CONFIG;
    }
    if (access(*dir_r, W_OK | X_OK) < 0)
        modmta_log_host(host, MODMTA_LOG_WARN,
                        "directory=%s is not writable by uid %lu", *dir_r,
                        (unsigned long)geteuid());
    return 0;
}
