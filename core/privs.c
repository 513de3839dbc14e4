/* Dropping root, checked, and preparing directories for the new user. */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "privs.h"

int
privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r)
{
    struct passwd pw, *res = NULL;
    char buf[4096];

    if (getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || res == NULL)
        return MODMTA_E_NOTFOUND;
    *uid_r = pw.pw_uid;
    *gid_r = pw.pw_gid;
    return 0;
}

int
privs_drop(const char *user, modmta_err *err_r)
{
    uid_t uid;
    gid_t gid;

    if (privs_lookup(user, &uid, &gid) < 0) {
        modmta_err_set(err_r, "$.user", "no such user \"%s\"", user);
        return MODMTA_E_CONFIG;
    }
    if (uid == 0) {
        modmta_err_set(err_r, "$.user",
                       "user \"%s\" is root: choose an unprivileged account",
                       user);
        return MODMTA_E_CONFIG;
    }
    if (initgroups(user, gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0) {
        modmta_err_set(err_r, "$.user", "cannot become \"%s\": %s", user,
                       strerror(errno));
        return MODMTA_E_PERM;
    }
    /* Checked: every id is the user's and root cannot be regained. */
    if (getuid() != uid || geteuid() != uid || getgid() != gid ||
        getegid() != gid || setuid(0) == 0) {
        modmta_err_set(err_r, "$.user", "privilege drop to \"%s\" did not "
                       "hold", user);
        return MODMTA_E_PERM;
    }
    return 0;
}

int
privs_prepare_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
                  modmta_err *err_r)
{
    char buf[PATH_MAX];
    char *p;
    struct stat st;

    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        modmta_err_set(err_r, NULL, "%s: path too long", path);
        return MODMTA_E_LIMIT;
    }
    for (p = buf + 1; ; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char c = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST) {
            modmta_err_set(err_r, NULL, "%s: cannot create: %s", buf,
                           strerror(errno));
            return MODMTA_E_IO;
        }
        *p = c;
        if (c == '\0')
            break;
    }
    if (stat(buf, &st) < 0 || !S_ISDIR(st.st_mode)) {
        modmta_err_set(err_r, NULL, "%s: not a directory", buf);
        return MODMTA_E_IO;
    }
    if (geteuid() == 0 && (st.st_uid != uid || st.st_gid != gid) &&
        chown(buf, uid, gid) < 0) {
        modmta_err_set(err_r, NULL, "%s: cannot chown: %s", buf,
                       strerror(errno));
        return MODMTA_E_IO;
    }
    return 0;
}
