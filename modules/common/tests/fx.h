/*
 * The local stores' unit tests share this fixture: a temp directory, a
 * mail directory inside it, a spooled message, a fake host for
 * example.com and localhost, a context, and an instance of the module
 * under test (modmta_descriptor, whichever module the test links).
 */
#ifndef MODULES_COMMON_TESTS_FX_H
#define MODULES_COMMON_TESTS_FX_H

#include <limits.h>

#include <modmta/modmta.h>

struct fx {
    char dir[512];      /* temp root */
    char mail[1024];    /* mail directory (create() makes it) */
    char msg[PATH_MAX]; /* the spooled message: FX_MSG */
    modmta_host *host;
    void *inst;
    modmta_ctx *ctx;
};

/* The spooled message: the core's Received (id QID1), a Subject, and a
 * body line starting with "From ". */
#define FX_MSG                                                     \
    "Received: from a.example by mx.test with ESMTP id QID1;\r\n"        \
    "\tThu, 1 Jan 1970 00:00:00 +0000\r\n"                               \
    "Subject: hello\r\n"                                                 \
    "\r\n"                                                               \
    "From here on\r\n"                                                   \
    "body\r\n"

/* A fixture for module `name`, the mail directory at <tmp>/<mail_sub>,
 * the instance made from conf_fmt ("%s": the mail directory). */
struct fx *fx_new(const char *name, const char *mail_sub,
                              const char *conf_fmt);
void fx_free(struct fx *fx);

/* create() from conf_fmt; NULL (and err filled) if it refuses. */
void *fx_make(struct fx *fx, const char *conf_fmt,
                    modmta_err *err);
/* Replace the instance (the test fails if create() refuses). */
void fx_use(struct fx *fx, const char *conf_fmt);

modmta_verdict fx_rcpt(struct fx *fx, const char *addr);
/* deliver() of the message from alice@remote.test. */
modmta_dstatus fx_deliver(struct fx *fx, const char *addr,
                                const char *qid, int maybe_done);

#endif
