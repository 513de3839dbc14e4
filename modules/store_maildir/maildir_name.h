/*
 * store_maildir: file names in a Maildir. A delivery's name is unique
 * (time, microseconds, PID, as Dovecot makes them) and carries a token
 * derived from the queue ID and the recipient, so that after a crash the
 * delivery can be found again (new/, cur/ after a reader moved it, or a
 * left-over in tmp/):
 *
 *   1764000000.M123456P4242Q<queue id>R<16 hex digits>.mx.example.org
 *       in tmp/, then in new/ with ",S=<size>,W=<size with CRLF>"
 *
 * S= and W= are what Dovecot reads to know a message's size without a
 * stat (and its quota uses S=).
 */
#ifndef STORE_MAILDIR_NAME_H
#define STORE_MAILDIR_NAME_H

#include <stddef.h>
#include <sys/time.h>
#include <sys/types.h>

/* Room for a token: 'Q', a queue ID (at most 64 octets kept), 'R', 16
 * hex digits. */
#define MAILDIR_TOKEN_MAX 84
/* Room for a whole name (NAME_MAX). */
#define MAILDIR_NAME_MAX 256
/* The longest folder name an address extension may give. */
#define MAILDIR_FOLDER_MAX 64

/* The token of a delivery: "Q<queue_id>R<hash of rcpt>"; the recipient
 * is hashed lower-cased (FNV-1a, 64 bits). Octets of the queue ID other
 * than letters and digits become '_'. 0, or -1 if it does not fit. */
int maildir_name_token(const char *queue_id, const char *rcpt, char *out,
                       size_t len);

/* The unique base name (tmp/); the host name's octets other than letters,
 * digits, '-' and '.' are written "\ooo" (so '/', ':' and ',' never
 * appear). 0, or -1 if it does not fit. */
int maildir_name_unique(const struct timeval *tv, pid_t pid,
                        const char *token, const char *host, char *out,
                        size_t len);

/* The name in new/: base followed by ",S=<size>,W=<vsize>". */
int maildir_name_final(const char *base, long long size, long long vsize,
                       char *out, size_t len);

/* 1 if a directory entry (in tmp/, new/ or cur/, with or without ":2,"
 * flags) is the delivery whose token this is. */
int maildir_name_has_token(const char *name, const char *token);

/* The size a name carries as ",S=<n>" before any ":", or -1. */
long long maildir_name_size(const char *name);

/* The Maildir++ folder for an address extension: 1 with the name, lower
 * case, in out (room for MAILDIR_FOLDER_MAX + 1) when ext is 1 to
 * MAILDIR_FOLDER_MAX letters, digits, '-' or '_' and not "inbox" in
 * any case; else 0 (deliver into INBOX): nothing an extension holds may
 * name another directory ("..", "/"), a hidden file, a sub-folder ('.')
 * or odd octets. The writer files into an existing folder whose name
 * matches it in any case ("Spam" for "spam"). */
int maildir_folder_name(const char *ext, char *out);

#endif
