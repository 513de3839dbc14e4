/*
 * The local submission socket (submit.c): a public UNIX stream socket,
 * mode 0666, for modmta-sendmail and mailq. The daemon takes the
 * caller's uid from SO_PEERCRED, never from what it says. The client's
 * first line is the request:
 *
 *   submit   the connection becomes a local SMTP session (220 follows)
 *   showq    the queue listing, as the control socket's "queue" answers
 *            it ("ok" and the listing), then the server closes
 *
 * Also prepares the directories ordinary users reach: the spool becomes
 * 0711 (traversable, not listable), the socket's directory 0755 and the
 * maildrop 3733 (see docs/architecture.md).
 */
#ifndef MODMTA_CORE_SUBMIT_H
#define MODMTA_CORE_SUBMIT_H

#include <sys/types.h>

#include <modmta/err.h>

#include "config.h"
#include "queue.h"

#define SUBMIT_REQUEST_MAX 64
#define SUBMIT_CLIENTS_MAX 100
/* One user's share: the others still get in while a user holds this
 * many connections (past it sendmail falls back to the maildrop). */
#define SUBMIT_CLIENTS_PER_UID 10

/* Run a local session on fd (owned: closed) for uid, whose login name
 * is user (borrowed for the call). Runs on the caller's thread. */
typedef void (*local_session_fn)(void *arg, int fd, uid_t uid,
                                 const char *user, const char *session_id);

typedef struct submit submit;

/* Prepare the directories, listen (a stale socket is replaced) and
 * start the accepting thread. */
submit *submit_start(const struct config *cfg, queue *q, local_session_fn fn,
                     void *arg, modmta_err *err_r);
/* Stop accepting, wait up to grace_s for running sessions (they see the
 * daemon's stop flag), remove the socket. Returns how many still run
 * (then s is left allocated: their threads use it). NULL: 0. */
unsigned long submit_stop(submit *s, int grace_s);

/* The login name of uid, or its number when it has none. */
void submit_user_name(uid_t uid, char *buf, size_t len);

#endif
