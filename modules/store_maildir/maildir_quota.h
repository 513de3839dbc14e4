/*
 * store_maildir: Maildir++ quota, the "maildirsize" file Dovecot's
 * maildir quota backend (and Courier) read and write:
 *
 *   104857600S,1000C          the limits: octets (S) and messages (C)
 *   4242 3                    then one line per change: octets, messages
 *   -1200 -1                  (a removal, as a reader writes it)
 *
 * The usage is the sum of the lines. The file is rebuilt from the
 * Maildir (new/ and cur/ of the INBOX and of every ".folder") when it is
 * missing, unreadable, its limits differ from ours, it has grown past
 * 5120 octets, or it says "over quota" and is older than 15 minutes (the
 * Maildir++ rules, which Dovecot follows).
 */
#ifndef STORE_MAILDIR_QUOTA_H
#define STORE_MAILDIR_QUOTA_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#define MAILDIR_QUOTA_FILE "maildirsize"
#define MAILDIR_QUOTA_FILE_MAX 5120
#define MAILDIR_QUOTA_STALE_S (15 * 60)

/* Limits; 0 means no limit. */
typedef struct maildir_quota {
    long long bytes;
    long long count;
} maildir_quota;

typedef struct maildir_usage {
    long long bytes;
    long long count;
} maildir_usage;

/* A size: digits with an optional unit k, M, G or T (powers of 1024, as
 * Dovecot's quota rules; any case, "B" after it allowed: "100M", "1GB",
 * "512k", "1048576"). 0, or -1 for anything else or an overflow. */
int maildir_quota_parse_size(const char *s, long long *out);

/* A per-user rule, as a "quotas" map holds it, in Dovecot's limit
 * syntax: "storage=100M" (kilobytes without a unit, as Dovecot),
 * "bytes=104857600", "messages=1000", several separated by ':', ',' or
 * spaces, an optional leading "*:" (a Dovecot quota_rule pasted as is),
 * a bare size for the octets ("100M"), or "none" (no limit). Items
 * absent keep q's value. 0, or -1 for a malformed rule (q unchanged). */
int maildir_quota_parse_rule(const char *s, maildir_quota *q);

/* The limits line: "104857600S,1000C", "1000C", "104857600S". */
void maildir_quota_definition(const maildir_quota *q, char *out,
                              size_t len);

/* Bound of one value of a maildirsize change line (1 PiB, a billion
 * billion messages never): larger ones make the file rebuilt. */
#define MAILDIR_QUOTA_VALUE_MAX (1LL << 50)

/* Parse a maildirsize file's text: 1 with the usage filled if its limits
 * are q's, every line parses and the totals are not negative, 0 if it
 * must be rebuilt. */
int maildir_quota_parse(const char *text, size_t len,
                        const maildir_quota *q, maildir_usage *u);

/* 1 if adding a message of `size` octets to usage u passes a limit. */
int maildir_quota_over(const maildir_quota *q, const maildir_usage *u,
                       long long size);

/* The usage maildirsize records for the Maildir open at mdfd: 1 (u and
 * *mtime_r filled), 0 if it is missing or must be rebuilt, <0 on a read
 * error. Never follows a symbolic link. */
int maildir_quota_read(int mdfd, const maildir_quota *q, maildir_usage *u,
                       time_t *mtime_r);

/* Count the Maildir open at mdfd (new/ and cur/ of the INBOX and of each
 * ".folder") and write a new maildirsize (as tmpname in tmp/, open at
 * tmpfd, then renamed over the old one; chowned to uid:gid if
 * set_owner). 0 or a negative MODMTA_E_*. A delivery tries to hold the
 * Maildir's lock exclusively around it (maildir_quota_lock); without
 * it the count may drift. */
int maildir_quota_rebuild(int mdfd, int tmpfd, const maildir_quota *q,
                          const char *tmpname, int set_owner, uid_t uid,
                          gid_t gid, maildir_usage *u);

/* Append one change line ("<bytes> <count>\n") in a single write. 0, or a
 * negative MODMTA_E_*. A missing file is left missing (the next delivery
 * rebuilds it); one that is not a regular file with a single link owned
 * by the Maildir's owner is not written (MODMTA_E_INVAL). */
int maildir_quota_add(int mdfd, long long bytes, long long count);

/* A delivery being counted takes the Maildir's lock shared, from the
 * message's link into new/ to its change line appended; a rebuild takes
 * it exclusively, from the count to the rename. So a message is either
 * in a rebuild's count and its line in the file the rebuild replaces,
 * or not counted and its line in the new file: two deliveries rebuilding
 * at once lose no line and count none twice. The lock is flock(2) on
 * mdfd, an open of the Maildir of the delivery's own (a lock belongs to
 * its open file, so threads of one process exclude each other too).
 *
 * 1 if taken; 0 if not after MAILDIR_QUOTA_LOCK_WAIT_MS or if flock
 * fails on this file system: the caller goes on without it, and the
 * count may drift, as any Maildir++ writer's, until the next rebuild.
 * A Maildir whose lock was not had in that time is only tried once,
 * without waiting, for the next minute (until it is had again). The
 * lock only keeps the count exact; the Maildir's owner, who can hold
 * it, can write maildirsize anyway. Released with
 * maildir_quota_unlock, never by close() alone: a child forked by
 * another thread (deliver_pipe) shares the open file, and with it the
 * lock, until it execs. */
#define MAILDIR_QUOTA_LOCK_WAIT_MS 3000
int maildir_quota_lock(int mdfd, int exclusive);
void maildir_quota_unlock(int mdfd);

#endif
