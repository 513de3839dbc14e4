/*
 * One SMTP server session (RFC 5321 with PIPELINING, SIZE, 8BITMIME,
 * ENHANCEDSTATUSCODES, STARTTLS, SMTPUTF8), run on its own thread with
 * blocking I/O. A listener whose protocol is not "smtp" is handed to the
 * module that serves it (chain_serve).
 */
#ifndef MODMTA_CORE_SMTP_SESSION_H
#define MODMTA_CORE_SMTP_SESSION_H

#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "config.h"
#include "generation.h"
#include "queue.h"
#include "scheduler.h"

struct smtp_session_args {
    generation *gen;                 /* reference taken over: released */
    int fd;                          /* connected socket: closed */
    struct sockaddr_storage peer;
    socklen_t peerlen;
    struct sockaddr_storage local;
    socklen_t locallen;
    const struct config_listener *listener; /* one of gen->cfg's */
    queue *queue;
    scheduler *sched;                /* NULL: nobody to notify */
    const volatile sig_atomic_t *shutting_down; /* NULL: never */
    const char *session_id;
    /* Early talkers: how long to watch for input before the greeting
     * (0: only what already arrived). */
    int greet_pause_ms;
    int no_rdns;                     /* 1: no reverse lookup ("unknown") */
    /* modmtatest --auth: once a HELO/EHLO is accepted, the client counts
     * as authenticated as this identity, as if an AUTH had succeeded
     * (the on_auth hooks run then). NULL: never (the daemon). */
    const char *auth_as;
    /* A local submission (core/submit.c, core/pickup.c): the caller's
     * uid as the kernel told it, and its login name, taken as the
     * authenticated identity from the greeting on. local_user NULL: a
     * network session. */
    const char *local_user;
    uid_t local_uid;
    /* Called with closing_arg right before fd is closed (the listener
     * forgets the descriptor number then). NULL: nothing to tell. */
    void (*closing)(void *closing_arg);
    void *closing_arg;
};

/* Run the session to its end. Everything in a is borrowed except the
 * generation reference and the fd; a itself is not freed. */
void smtp_session_run(const struct smtp_session_args *a);

#endif
