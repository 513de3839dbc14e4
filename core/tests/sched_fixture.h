/*
 * Helpers shared by the scheduler, delivery and control tests: a spool in
 * a temp directory and messages committed into it.
 */
#ifndef MODMTA_TEST_SCHED_FIXTURE_H
#define MODMTA_TEST_SCHED_FIXTURE_H

#include <time.h>

#include "queue.h"

#define FIX_RCPTS 8
#define FIX_BODY "From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"

struct fix {
    char dir[64];                 /* the temp directory */
    char spool[96];               /* <dir>/spool */
    queue *q;
};

struct fix_msg {
    const char *sender;
    const char *rcpts[FIX_RCPTS]; /* NULL-terminated unless full */
    const char *status[FIX_RCPTS]; /* per rcpt, may be NULL */
    queue_rcpt_state state[FIX_RCPTS]; /* per rcpt, default pending */
    unsigned notify[FIX_RCPTS];   /* per rcpt, QNOTIFY_* (0: not given) */
    time_t arrival;               /* 0: now */
    time_t next_retry;
    int held;
    const char *quarantine;
};

/* cmocka setup/teardown: *state is a struct fix with the queue open. */
int fix_setup(void **state);
int fix_teardown(void **state);
/* Commit a message; its ID goes to id_r. */
void fix_put(struct fix *fx, const struct fix_msg *m,
             char id_r[QUEUE_ID_MAX]);
/* 1 if the message is still queued. */
int fix_exists(struct fix *fx, const char *id);

#endif
