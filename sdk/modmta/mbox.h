/*
 * modmta SDK: mailbox locks, the protocol mbox readers and writers of a
 * Unix host share (mutt, s-nail, procmail, Dovecot's mbox driver,
 * Postfix local(8)); store_mbox and pop3 use it. See "Mailbox locks" in
 * docs/sdk.md.
 *
 * Two locks, always in this order:
 * - a dot-lock, the file "<mbox>.lock", born holding "PID\n" of its
 *   maker; before an append the writer rewrites it as "PID SIZE\n", the
 *   mailbox size before the append. A dot-lock is removed as stale when
 *   its PID is a process that no longer exists, when it is our own PID
 *   but older than this process, or when it is older than stale_s (its
 *   owner may then be alive: its size note is never trusted; a writer
 *   refreshes its lock with modmta_mbox_lock_note() as it goes);
 * - an fcntl write lock on the whole mailbox (an open file description
 *   lock where the system has them, so threads exclude each other too).
 * Waiting is polling, every 100 ms, until a deadline.
 */
#ifndef MODMTA_MBOX_H
#define MODMTA_MBOX_H

#include <stddef.h>
#include <sys/types.h>

#include <modmta/err.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A lock taken (not "modmta_mbox_lock": that is the function). */
typedef struct modmta_mbox_lk {
    int dotfd;    /* our dot-lock, kept open while held (its inode cannot
                   * be reused); -1 */
    off_t repair; /* mailbox size a dead writer of ours recorded before
                   * its append, or -1: cut the mailbox back to it */
} modmta_mbox_lk;

/* Take the dot-lock "<path>.lock", then the fcntl write lock on fd (the
 * open mailbox), polling until timeout_ms (0: one try). fd < 0: the
 * dot-lock alone, to open or create the mailbox under it, then call
 * modmta_mbox_lock_fd(). Returns 0, or (why filled, nothing held):
 *   MODMTA_E_TIMEOUT  someone holds a lock (why says which),
 *   MODMTA_E_STATE    path no longer names the file open on fd (it was
 *                     replaced or removed while we waited): reopen,
 *   MODMTA_E_PERM, MODMTA_E_NOSPACE, MODMTA_E_NOTFOUND (no such
 *                     directory), MODMTA_E_IO ...  from errno, as
 *                     modmta_err_from_errno (err.h) maps it,
 *   MODMTA_E_INVAL    a path too long.
 * why may be NULL. When a stale lock of ours noted a size, lk->repair
 * is that size and our dot-lock notes it in turn (a crash before the
 * repair leaves it to the next writer): cut the mailbox back to it before
 * anything else. */
int modmta_mbox_lock(const char *path, int fd, int timeout_ms, int stale_s,
                     modmta_mbox_lk *lk, char *why, size_t whylen);

/* The fcntl write lock on fd, the mailbox at path, polling until
 * timeout_ms; the dot-lock must be held. Returns as modmta_mbox_lock();
 * on failure the dot-lock is still held. */
int modmta_mbox_lock_fd(const char *path, int fd, int timeout_ms, char *why,
                        size_t whylen);

/* Record in our dot-lock the mailbox size before an append (size < 0:
 * none), for the repair after a crash. */
void modmta_mbox_lock_note(const modmta_mbox_lk *lk, off_t size);

/* 1 if "<path>.lock" still names our dot-lock (nobody took it for
 * stale), 0 if not. Check it before an act that another writer must not
 * miss, such as renaming a new mailbox over the old. */
int modmta_mbox_lock_held(const char *path, const modmta_mbox_lk *lk);

/* Drop the fcntl lock on fd (fd < 0: none), remove the dot-lock if it is
 * still ours, close lk->dotfd. Safe on a lock already released. */
void modmta_mbox_unlock(const char *path, int fd, modmta_mbox_lk *lk);

#ifdef __cplusplus
}
#endif

#endif
