/*
 * Shared by the local stores (store_mbox, store_maildir): who has a
 * mailbox here. One instance's "users" and "domains" keys, the safe
 * mailbox name of a recipient, the RCPT answer, the mail directory made
 * at create(). A static library linked into each store module (private:
 * not part of the SDK).
 */
#ifndef MODULES_COMMON_LOCAL_USER_H
#define MODULES_COMMON_LOCAL_USER_H

#include <stddef.h>
#include <sys/types.h>

#include <modmta/modmta.h>

/* Where "users" says a user exists. */
enum local_user_source {
    LOCAL_USER_ANY = 0,    /* any safe local part */
    LOCAL_USER_SYSTEM = 1, /* getpwnam_r must know it */
    LOCAL_USER_MAP = 2,    /* the map must have it */
};

/* What a recipient is to a store instance. */
enum local_user_kind {
    LOCAL_USER_NOT_OURS = 0, /* not one of the instance's domains */
    LOCAL_USER_BAD_NAME = 1, /* local part unusable as a file name */
    LOCAL_USER_UNKNOWN = 2,  /* no such user */
    LOCAL_USER_TEMP = 3,     /* the user lookup failed */
    LOCAL_USER_OK = 4,
};

typedef struct local_users {
    enum local_user_source source;
    modmta_map *map;          /* LOCAL_USER_MAP */
    char **domains;           /* borrowed; NULL: the host's local_domains */
    const modmta_host *host;
} local_users;

typedef struct local_user {
    char name[MODMTA_ADDR_LOCAL_MAX + 1]; /* lower case: the file name */
    /* The address extension cut off name (recipient_delimiter), as
     * written: "" when none. Not checked: not safe as a file name. */
    char ext[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    int has_pw;                           /* uid and gid are the account's */
    uid_t uid;
    gid_t gid;
} local_user;

/* Read the "users" value (NULL: "any"); domains (may be NULL) stays the
 * caller's. 0 or MODMTA_E_CONFIG with err_r naming "<path>.users". */
int local_users_init(local_users *lu, const json_t *users, char **domains,
                     const modmta_host *host, modmta_err *err_r);
void local_users_free(local_users *lu);

/* Classify rcpt ("user@domain" or "user") and fill u: with the host's
 * recipient_delimiter, "user+ext" is the user "user+ext" when "users"
 * knows it (an exact entry wins), else "user" with u->ext "ext". */
enum local_user_kind local_users_classify(const local_users *lu,
                                          const char *rcpt, local_user *u);

/* The RCPT answer for a kind: ACCEPT for OK, 550 5.1.3 for a bad name,
 * 451 4.3.0 for a failed lookup, CONTINUE otherwise (the core's claim
 * rule answers for unknown users). */
modmta_verdict local_users_rcpt_verdict(modmta_ctx *ctx, const char *rcpt,
                                        enum local_user_kind kind);

/* What every local store checks at delivery before it writes: the user
 * rules (DECLINED: not ours; a failed lookup defers), a queued message,
 * and the mail-loop check (a Delivered-To naming rcpt fails it with
 * 554 5.4.6). 0 to go on (u filled), else 1 with the status in *st_r and
 * the reply set. */
int local_users_deliver_check(const local_users *lu, modmta_ctx *ctx,
                              const char *rcpt, local_user *u,
                              modmta_dstatus *st_r);

/* 1 if name (1..64 octets, copied lower-cased into out, which has room
 * for MODMTA_ADDR_LOCAL_MAX + 1) is safe as a file name in a mail
 * directory, else 0. */
int local_user_safe_name(const char *local, size_t len, char *out);

/* An account's uid and gid: LOCAL_USER_OK, LOCAL_USER_UNKNOWN or
 * LOCAL_USER_TEMP (the lookup failed). */
enum local_user_kind local_user_account(const char *name, uid_t *uid_r,
                                        gid_t *gid_r);

/* Check the "directory" key's value (made with its missing parents, mode
 * 0755, warned about when the daemon cannot write it) and copy it into
 * *dir_r. 0 or MODMTA_E_CONFIG with err_r naming "<path>.directory". */
int local_dir_prepare(const char *directory, const modmta_host *host,
                      char **dir_r, modmta_err *err_r);

/* s with control characters as '?', for a log line. */
const char *local_printable(const char *s, char *buf, size_t len);

#endif
