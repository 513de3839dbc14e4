/*
 * The maildrop file: what modmta-sendmail leaves when the daemon does
 * not answer, and pickup (core/pickup.c) feeds to a local session.
 *
 *   MODMTA-MAILDROP 1\n
 *   U uid\n                 (optional: only in a file pickup wrote for
 *                           recipients to try again, owned by the daemon;
 *                           ignored in any other file)
 *   S sender\n              (empty after "S " for <>)
 *   R recipient\n           (one or more)
 *   \n
 *   the message, lines ending in LF
 *
 * The file's owner is the submitter (the directory is 3733); the group
 * read bit (mode 0640) marks it complete. See docs/architecture.md.
 */
#ifndef MODMTA_CORE_MAILDROP_H
#define MODMTA_CORE_MAILDROP_H

#include <stddef.h>

#include <modmta/addr.h>

#include "submit_client.h"

#define MAILDROP_MAGIC "MODMTA-MAILDROP 1\n"
#define MAILDROP_RCPTS_MAX 10000
#define MAILDROP_ADDR_MAX MODMTA_ADDR_ENVELOPE_MAX
#define MAILDROP_COMPLETE_MODE 0640

/* Parse buf (borrowed: m->data points into it). Returns 0 and fills m
 * (m->rcpts and the strings malloc'ed: maildrop_free), or -1 with why
 * in err. */
int maildrop_parse(const char *buf, size_t len, struct submit_msg *m,
                   char *err, size_t errlen);
/* The "U uid" line of buf, or -1 when it has none. */
long maildrop_uid(const char *buf, size_t len);
void maildrop_free(struct submit_msg *m);

/* Write m as a new complete file in dir; its name into name_r. 0, or -1
 * with errno set and the failing step in err. */
int maildrop_write(const char *dir, const struct submit_msg *m,
                   char *name_r, size_t namelen, char *err, size_t errlen);
/* The same with a "U uid" line (uid >= 0): pickup's file of the
 * recipients to try again on behalf of the submitter uid. */
int maildrop_write_for(const char *dir, const struct submit_msg *m, long uid,
                       char *name_r, size_t namelen, char *err,
                       size_t errlen);

/* 1 if addr may stand in a maildrop file or an SMTP command: the SDK's
 * envelope rule (modmta_addr_envelope_ok). */
int maildrop_addr_ok(const char *addr);

#endif
