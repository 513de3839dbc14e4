/*
 * store_mbox: append one message to an mbox file (mboxrd flavour), with
 * the locks mutt, s-nail and Dovecot respect: a dot-lock "<mbox>.lock"
 * and an fcntl write lock on the whole file (modmta/mbox.h). A failed append leaves the
 * mailbox exactly as it was (truncated back to its former size).
 * Kept apart from the module so it can be tested without a context.
 */
#ifndef STORE_MBOX_MBOX_WRITE_H
#define STORE_MBOX_MBOX_WRITE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

/* Results of mbox_write_append() besides the negative MODMTA_E_* codes. */
enum {
    MBOX_WRITE_DONE = 0,      /* appended (and fsync'ed if asked) */
    MBOX_WRITE_DUPLICATE = 1, /* dedup found the message already there */
};

typedef struct mbox_write_req {
    const char *mailbox;  /* path of the mbox file */
    const char *message;  /* spooled message, CRLF line ends */
    const char *sender;   /* envelope sender, "" for <> */
    const char *rcpt;     /* written as Delivered-To */
    const char *orcpt;    /* written as X-Original-To, or NULL */
    time_t date;          /* date of the From_ line */
    const char *queue_id; /* with dedup: the "id QUEUEID" to look for */
    int dedup;            /* scan the mailbox before appending */
    int fsync;            /* fsync before reporting success */
    int lock_timeout_ms;  /* give up on both locks after this (0: one try) */
    int stale_lock_s;     /* a dot-lock older than this is removed */
    int set_owner;        /* chown a mailbox this call creates to uid:gid */
    uid_t uid;
    gid_t gid;
} mbox_write_req;

/* Append the message to req->mailbox, created mode 0600 if missing.
 * Returns MBOX_WRITE_DONE, MBOX_WRITE_DUPLICATE, or:
 *   MODMTA_E_TIMEOUT  a lock is held by someone else (mailbox locked),
 *   MODMTA_E_PERM     the mailbox is a symlink, not a regular file or
 *                     has more than one link (refused, left alone),
 *   MODMTA_E_NOSPACE  disk full, quota or file size limit,
 *   MODMTA_E_IO       any other failure,
 *   MODMTA_E_INVAL    a path too long.
 * On error `why` (may be NULL) holds a reason for logs and DSNs; on
 * success it is empty, or notes a repair worth logging (the half-written
 * message of a writer that died holding the lock, cut away). */
int mbox_write_append(const mbox_write_req *req, char *why, size_t whylen);

struct mbox_job;

/* For mbox_group.c: append the jobs (all for jobs[0]'s mailbox) under
 * one pair of locks, waiting for them until deadline (CLOCK_MONOTONIC),
 * and one fsync; each job's rc and why are set as mbox_write_append()
 * returns them. */
void mbox_write_batch(struct mbox_job *const *jobs, size_t n,
                      const struct timespec *deadline);

#endif
