/*
 * pop3: the mailbox side. Indexes an mbox (mboxrd, as store_mbox
 * writes it), sends a message as POP3 wants it (CRLF, '>From' unquoted,
 * dot-stuffed), takes the mailbox locks store_mbox takes (modmta/mbox.h),
 * and applies deletions by a crash-safe rewrite (new file, fsync,
 * rename).
 */
#ifndef POP3_MBOX_H
#define POP3_MBOX_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <modmta/mbox.h>

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

/* Open path for reading (no symlinks, regular file); *fd_r = -1 when it
 * does not exist (an empty mailbox). 0, MODMTA_E_PERM, MODMTA_E_IO. */
int pop3_mbox_open(const char *path, int *fd_r);

/* Open the mailbox at path, lock it, cut away the half message a
 * delivery killed mid-append left (*cut_r: octets cut, else 0), index
 * it into ix and unlock; *fd_r stays open (-1 and an empty index when
 * there is no mailbox). 0, MODMTA_E_TIMEOUT (locked by someone else),
 * MODMTA_E_PERM, MODMTA_E_NOMEM, MODMTA_E_IO. */
int pop3_mbox_load(const char *path, int timeout_ms, int stale_s, int *fd_r,
                   struct pop3_index *ix, off_t *cut_r);

/* Apply the deletions marked in snap (the session's index) to the
 * mailbox at path: lock (and cut away a killed delivery's half message),
 * check that the mailbox still begins with the snapshot's messages
 * (deliveries since only appended), write the kept messages and what was
 * appended to a new file (same owner and mode), fsync, rename over path,
 * fsync the directory, unlock. 0 (also when
 * nothing was deleted), MODMTA_E_STATE (the mailbox was changed by
 * someone else: nothing deleted), MODMTA_E_TIMEOUT, MODMTA_E_IO. */
int pop3_mbox_expunge(const char *path, const struct pop3_index *snap,
                      int timeout_ms, int stale_s);

#endif
