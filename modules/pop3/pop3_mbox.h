/*
 * pop3: the mailbox side. Indexes an mbox (mboxrd, as store_mbox
 * writes it), sends a message as POP3 wants it (CRLF, '>From' unquoted,
 * dot-stuffed), takes store_mbox's locks, and applies deletions by a
 * crash-safe rewrite (new file, fsync, rename).
 */
#ifndef POP3_MBOX_H
#define POP3_MBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define POP3_UID_LEN 32 /* hex octets of a unique id */

struct pop3_msg {
    off_t off;       /* the From_ line */
    off_t body;      /* first line after the From_ line */
    off_t end;       /* end of the message (its separator blank excluded) */
    off_t next;      /* the next From_ line, or end of file */
    uint64_t size;   /* octets as sent: CRLF line ends, unquoted */
    char uid[POP3_UID_LEN + 24]; /* hex, then "-N" for a repeated message */
    int deleted;
};

struct pop3_index {
    struct pop3_msg *msgs;
    size_t n;
    off_t len; /* octets indexed (the file size then) */
};

/* Index the mbox open on fd, from offset 0 to its end. 0 or
 * MODMTA_E_NOMEM / MODMTA_E_IO. Text before the first From_ line is
 * ignored (not a message). */
int pop3_mbox_index(int fd, struct pop3_index *ix);
void pop3_mbox_index_free(struct pop3_index *ix);

/* Send message m through put (octets, length, arg), POP3-encoded, and
 * the terminating ".\r\n". body_lines < 0: all of it; else TOP: the
 * header section, the blank line and that many body lines. 0 or the
 * first negative code put or a read returned. */
typedef int (*pop3_mbox_put)(const char *buf, size_t len, void *arg);
int pop3_mbox_send(int fd, const struct pop3_msg *m, long body_lines,
                   pop3_mbox_put put, void *arg);

/* store_mbox's locks: the dot-lock "<path>.lock" (created exclusively,
 * holding "PID\n"; removed when its process is gone or it is older than
 * stale_s) then an fcntl write lock on fd; wait up to timeout_ms.
 * *lock_r identifies our dot-lock. 0, MODMTA_E_TIMEOUT, MODMTA_E_IO. */
struct pop3_lock {
    int fd; /* our dot-lock, kept open: its inode cannot be reused */
};
int pop3_mbox_lock(const char *path, int fd, int timeout_ms, int stale_s,
                   struct pop3_lock *lock_r);
/* 1 if the dot-lock at path is still ours (nobody took it as stale). */
int pop3_mbox_lock_held(const char *path, const struct pop3_lock *lock);
/* Drop the fcntl lock, and the dot-lock if it is still ours; close it. */
void pop3_mbox_unlock(const char *path, int fd, struct pop3_lock *lock);

/* Open path for reading (no symlinks, regular file); *fd_r = -1 when it
 * does not exist (an empty mailbox). 0, MODMTA_E_PERM, MODMTA_E_IO. */
int pop3_mbox_open(const char *path, int *fd_r);

/* Apply the deletions marked in snap (the session's index) to the
 * mailbox at path: lock, check that the mailbox still begins with the
 * snapshot's messages (deliveries since only appended), write the kept
 * messages and what was appended to a new file (same owner and mode),
 * fsync, rename over path, fsync the directory, unlock. 0 (also when
 * nothing was deleted), MODMTA_E_STATE (the mailbox was changed by
 * someone else: nothing deleted), MODMTA_E_TIMEOUT, MODMTA_E_IO. */
int pop3_mbox_expunge(const char *path, const struct pop3_index *snap,
                      int timeout_ms, int stale_s);

#endif
