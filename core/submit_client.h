/*
 * The SMTP client of a local submission: one message over a connected
 * stream to a local session (core/submit.c's socket after "submit", or
 * pickup's socketpair). Used by modmta-sendmail and by pickup, so both
 * paths speak to the daemon the same way. Plain lockstep SMTP; the
 * caller sets the socket's timeouts.
 */
#ifndef MODMTA_CORE_SUBMIT_CLIENT_H
#define MODMTA_CORE_SUBMIT_CLIENT_H

#include <stddef.h>
#include <stdio.h>

struct submit_msg {
    const char *sender;            /* "" for <> */
    char *const *rcpts;
    size_t nrcpts;
    const char *data;              /* the message; lines end in LF or CRLF */
    size_t len;
};

enum submit_status {
    SUBMIT_QUEUED = 0,             /* 250 after the data */
    SUBMIT_TEMP,                   /* a 4xx ended it: try again later */
    SUBMIT_PERM,                   /* a 5xx ended it (MAIL, all RCPTs,
                                      the data) */
    SUBMIT_IO,                     /* the connection failed */
};

struct submit_result {
    enum submit_status status;
    char reply[512];               /* the reply that decided, or the
                                      I/O error */
    char **refused;                /* "<addr>: 550 5.1.1 ..." per refused
                                      recipient (malloc'ed) */
    size_t nrefused;
    int refused_perm;              /* some refusal was a 5xx */
};

/* Run HELO..QUIT for m on fd (not closed). trace: the dialogue is
 * printed there ("<<< ", ">>> " lines), NULL for none. Returns r->status. */
enum submit_status submit_client_send(int fd, const char *helo,
                                      const struct submit_msg *m,
                                      struct submit_result *r, FILE *trace);
void submit_result_free(struct submit_result *r);

#endif
