/*
 * The control socket (control.c): a UNIX stream socket, mode 0600, that
 * modmtactl talks to. One request line per connection, one response, then
 * the server closes the connection. A response is a status line, "ok" or
 * "error: TEXT", then the body lines; all lines end in "\n".
 *
 * Requests: queue | show ID | flush | delete ID | hold ID | release ID |
 *           reload | stats
 * (documented for users in docs/operations.md).
 *
 * One thread accepts and serves connections one after another; a client
 * that sends nothing is dropped after CONTROL_TIMEOUT seconds.
 */
#ifndef MODMTA_CORE_CONTROL_H
#define MODMTA_CORE_CONTROL_H

#include <jansson.h>

#include "queue.h"
#include "scheduler.h"

#define CONTROL_LINE_MAX 1024
#define CONTROL_TIMEOUT 10

/* What the daemon lends the control socket. Callbacks run on the control
 * thread. */
struct control_ops {
    /* Build and install a new generation. 0 on success; on failure a
     * negative MODMTA_E_* and, in *errors_r, a malloc'ed text listing
     * every error, one per line (freed by the caller). NULL: "reload"
     * answers an error. */
    int (*reload)(void *arg, char **errors_r);
    /* Add the daemon's own counters (e.g. "sessions") to obj, the
     * "stats" answer. May be NULL. */
    void (*stats)(void *arg, json_t *obj);
    void *arg;
};

typedef struct control control;

/* Listen on path (a stale socket file there is removed; anything else
 * there, or a daemon still answering on it, is an error) and start the
 * accepting thread. The socket is created under umask 0177: call this
 * before other threads create files or directories. ops is copied. */
control *control_start(const char *path, queue *q, scheduler *s,
                       const struct control_ops *ops, modmta_err *err_r);
/* Stop accepting (a request being served finishes), join the thread,
 * remove the socket file. NULL is a no-op. */
void control_stop(control *c);

/* Run one request line (no line end) and return the whole response text,
 * status line included, malloc'ed; NULL only out of memory. Used by the
 * control thread, and directly by tests. s may be NULL for "queue" and
 * "show", which only read the queue. */
char *control_execute(queue *q, scheduler *s, const struct control_ops *ops,
                      const char *line);
/* The "queue" response (mailq's listing); reasons 0 leaves out the
 * quarantine reasons (for users other than root and the daemon's: as
 * Postfix's showq, a held message shows only its "!"). */
char *control_showq(queue *q, int reasons);

#endif
