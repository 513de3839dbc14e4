/*
 * Privileges: after binding its ports as root, the daemon becomes the
 * configured user (supplementary groups, gid, uid — in that order) and
 * checks that it cannot get root back.
 */
#ifndef MODMTA_CORE_PRIVS_H
#define MODMTA_CORE_PRIVS_H

#include <sys/types.h>

#include <modmta/err.h>

/* uid/gid of a user name; MODMTA_E_NOTFOUND if there is none. */
int privs_lookup(const char *user, uid_t *uid_r, gid_t *gid_r);
/* Become `user` for good. 0, or <0 with err_r filled. */
int privs_drop(const char *user, modmta_err *err_r);
/* mkdir -p `path` (mode for the dirs it creates) and, when running as
 * root, give the last component to uid:gid. */
int privs_prepare_dir(const char *path, mode_t mode, uid_t uid, gid_t gid,
                      modmta_err *err_r);

#endif
