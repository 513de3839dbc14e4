/*
 * Listeners: the sockets of "listen", bound before the privilege drop,
 * one accept thread each, each accepted session on a thread of its own
 * (a thread between sessions waits a while for the next: see
 * listener_park in listener.c). Enforces the
 * session limits (limits.max_sessions overall, max_sessions_per_client per
 * client address; over them: 421 4.7.0 and close) with the values of the
 * generation current at accept time, so a reload changes them, and the
 * descriptor budget (RLIMIT_NOFILE less a reserve; see
 * docs/architecture.md); feeds stress mode (stress.h).
 * The session table (counts per client, live fds) is owned by this file
 * and guarded by its own mutex.
 */
#ifndef MODMTA_CORE_LISTENER_H
#define MODMTA_CORE_LISTENER_H

#include <sys/socket.h>

#include <modmta/err.h>

#include "config.h"

struct listener_set;

/* A new session, run on a thread that runs nothing else meanwhile (it
 * may have run sessions before). It owns fd (closes it), and
 * calls listener_session_closing(live) right before closing it. */
typedef void (*listener_session_fn)(void *arg, int fd,
                                    const struct sockaddr *peer,
                                    socklen_t peerlen,
                                    const char *listener_name,
                                    const char *session_id, void *live);

struct listener_set *listeners_bind(const struct config *cfg,
                                    modmta_err *err_r);
/* 1 if cfg listens on exactly the same names and addresses (a reload may
 * change a listener's tls/auth/protocol, not its socket). */
int listeners_match(const struct listener_set *ls, const struct config *cfg);
int listeners_start(struct listener_set *ls, listener_session_fn fn,
                    void *arg, modmta_err *err_r);
/* Stop accepting and close the listening sockets. */
void listeners_stop(struct listener_set *ls);
/* Wait up to grace_s for sessions to end (idle ones answer 421 when they
 * see the shutdown flag); then shut down the sockets of the remaining
 * ones both ways and wait up to 10 s more. listeners_active() tells
 * whether some session still runs. */
void listeners_drain(struct listener_set *ls, int grace_s);
unsigned long listeners_active(struct listener_set *ls);
void listeners_free(struct listener_set *ls);
/* The session of live is about to close its socket: listeners_drain
 * must not touch that descriptor number any more. NULL: nothing. */
void listener_session_closing(void *live);

#endif
