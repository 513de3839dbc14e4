/*
 * store_maildir: deliver one message into a Maildir, the way qmail laid
 * down and Dovecot reads it: write it into tmp/ under a unique name,
 * fsync, hard-link it into new/ (never replacing a file), remove the tmp/
 * name, fsync new/. A reader sees the whole message or nothing. Kept
 * apart from the module so it can be tested without a context.
 */
#ifndef STORE_MAILDIR_WRITE_H
#define STORE_MAILDIR_WRITE_H

#include <stddef.h>
#include <sys/types.h>

#include "maildir_quota.h"

/* Results of maildir_write() besides the negative MODMTA_E_* codes. */
enum {
    MAILDIR_WRITE_DONE = 0,       /* in new/ (and fsync'ed if asked) */
    MAILDIR_WRITE_DUPLICATE = 1,  /* dedup found it already delivered */
    MAILDIR_WRITE_OVER_QUOTA = 2, /* it does not fit the user's quota */
    MAILDIR_WRITE_TAKEN = 3,      /* new/'s fsync failed, but a reader
                                   * took the message before it could be
                                   * taken back: delivered */
};

typedef struct maildir_req {
    const char *maildir;  /* the Maildir (made, with tmp/ new/ cur/) */
    const char *folder;   /* NULL: INBOX; else a Maildir++ folder name
                           * that maildir_folder_name() accepted */
    const char *message;  /* spooled message, CRLF line ends */
    const char *sender;   /* envelope sender, "" for <> */
    const char *rcpt;     /* written as Delivered-To */
    const char *orcpt;    /* written as X-Original-To, or NULL */
    const char *queue_id; /* with rcpt, makes the delivery's token */
    const char *hostname; /* the host part of the unique name */
    int dedup;            /* look for the token before delivering */
    int fsync;            /* fsync before reporting success */
    maildir_quota quota;  /* limits; both 0: no quota kept */
    int set_owner;        /* chown what this call creates to uid:gid */
    uid_t uid;
    gid_t gid;
} maildir_req;

/* A delivery counted in maildirsize without the Maildir's lock
 * (maildir_quota_lock): the count may be off until the next rebuild. */
#define MAILDIR_WRITE_UNLOCKED "maildirsize counted without the Maildir's " \
                               "lock (held elsewhere, or flock failing)"

/* Deliver. Returns MAILDIR_WRITE_DONE, _DUPLICATE, _OVER_QUOTA, _TAKEN
 * (`why` says which fsync failed), or:
 *   MODMTA_E_PERM     the Maildir, its tmp/ or its new/ is a symbolic
 *                     link or not a directory, or (with set_owner) it is
 *                     owned by someone else; or the daemon may not write
 *                     it,
 *   MODMTA_E_NOSPACE  disk full, disk quota, file size limit,
 *   MODMTA_E_IO       any other failure,
 *   MODMTA_E_INVAL    a path too long.
 * `why` (may be NULL) holds a reason for logs and DSNs; after
 * MAILDIR_WRITE_DONE it is empty, or MAILDIR_WRITE_UNLOCKED. */
int maildir_write(const maildir_req *req, char *why, size_t whylen);

/* At RCPT: 1 if the Maildir's maildirsize (read only; never rebuilt
 * here) shows it cannot take `size` more octets (0: is it already
 * full?), 0 if it can or nothing is known. */
int maildir_write_known_full(const char *maildir, const maildir_quota *q,
                             long long size);

#endif
