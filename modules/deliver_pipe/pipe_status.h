/*
 * pipe_status: what a command's wait status means for the recipient, per
 * sysexits.h as Postfix's pipe(8) and local(8) read it: EX_TEMPFAIL and
 * the other temporary codes defer, EX_NOUSER and the rest bounce with
 * their enhanced status code, death by a signal defers.
 */
#ifndef PIPE_STATUS_H
#define PIPE_STATUS_H

#include <modmta/modmta.h>

struct pipe_outcome {
    modmta_dstatus status; /* DELIVERED, DEFERRED or FAILED */
    int code;              /* 250, 451 or 550 */
    const char *esc;       /* "2.0.0", "4.3.0", "5.1.1" ... */
    char what[64];         /* "EX_NOUSER: user unknown" ... */
};

/* The outcome of a command that ended with wait status ws. */
void pipe_status_map(int ws, struct pipe_outcome *o);

#endif
