/*
 * modmtatest, the plugin test runner: a config's chain run offline on one
 * made-up SMTP session. The parts: setup and the session (modmtatest.c),
 * the client side of the dialogue (modmtatest_client.c), the tracer that
 * records each hook call and what it did (modmtatest_trace.c), and the
 * report (modmtatest_report.c).
 *
 * The session is the daemon's own (smtp_session_run) on one end of a
 * socketpair, on its own thread, with a spool in a temp dir; the client
 * speaks SMTP on the other end. Everything the two threads share is in
 * struct mt under mt.lock; the tracer runs on the session's thread (and,
 * for --route, on the main thread once the session has ended).
 */
#ifndef MODMTATEST_H
#define MODMTATEST_H

#include <pthread.h>
#include <stddef.h>

#include <modmta/ctx.h>

#include "chain.h"
#include "config.h"
#include "queue.h"

#define MT_EXIT_ACCEPTED 0
#define MT_EXIT_REFUSED 1
#define MT_EXIT_USAGE 2

/* Something a hook did, seen in the ctx after its call: kind is
 * "rewrite", "claim", "add_rcpt", "add_header", "note"... (the list is in
 * modmtatest(8)), value what to show. */
struct mt_action {
    const char *kind;
    char *value;
};

/* One hook call of one instance. */
struct mt_call {
    char *instance;
    const char *hook;
    char *arg;                    /* NULL: none */
    int success;                  /* on_auth */
    modmta_verdict returned;
    modmta_verdict verdict;
    int timed_out;
    int code;                     /* the reply the module left, 0: none */
    char esc[16];
    char *text;
    double ms;
    struct mt_action *actions;
    size_t nactions;
};

/* One client command (NULL: the connection, answered by the greeting;
 * "route <addr>" for --route), the calls it caused, the reply. */
struct mt_step {
    char *command;
    struct mt_call *calls;
    size_t ncalls;
    int code;                     /* 0: no reply (closed, or a route) */
    char **lines;                 /* the reply's texts, without the code */
    size_t nlines;
};

/* A recipient's route (--route). */
struct mt_route {
    int done;
    struct chain_route r;
    const char *instance;         /* claiming, offered or deciding */
    char *dest;
    int code;
    char esc[16];
    char *text;
};

struct mt_opts {
    const char *config;           /* NULL: the embedded default */
    const char *client;
    const char *helo;             /* NULL: [client] */
    const char *auth;
    const char *listener;         /* NULL: the first plain SMTP one */
    const char *sender;
    const char **rcpts;
    size_t nrcpts;
    const char *message;          /* NULL: a generated one; "-": stdin */
    int rdns;
    int route;
    int json;
};

struct mt {
    struct mt_opts o;
    const struct config_listener *listener;
    char *msg;                    /* the message as read or generated */
    size_t msglen;
    pthread_mutex_t lock;         /* steps, nsteps, cur, data_step */
    struct mt_step *steps;
    size_t nsteps;
    size_t cur;                   /* the step hook calls belong to */
    size_t data_step;             /* the end of data (on_queued's step) */
    int have_data_step;
    struct mt_snap *snap;         /* the ctx before the running call */
    /* what the session left in the spool (mt_collect) */
    queue_env *env;
    char path[4096];              /* its content */
    struct mt_route *routes;      /* env->nrcpts, with --route */
    char *headers;                /* the stored header block */
};

/* modmtatest_client.c: the dialogue on fd, each command a step. */
void mt_dialogue(struct mt *t, int fd);

/* modmtatest_trace.c: the chain tracer (chain_set_trace's fn, arg t). */
void mt_trace(void *arg, modmta_ctx *ctx, const struct chain_call *call);
/* A new step (command copied, NULL for none) made the current one;
 * its index, or -1 out of memory. Takes t->lock. */
long mt_step_new(struct mt *t, const char *command);
/* The steps and the tracer's state. */
void mt_trace_free(struct mt *t);

/* modmtatest_report.c: print everything, as text or JSON; returns the
 * exit status (MT_EXIT_ACCEPTED or MT_EXIT_REFUSED). */
int mt_report(const struct mt *t, const struct config *cfg);

/* What the client got, from the steps. */
struct mt_outcome {
    const char *result;           /* "accepted", "discarded", "refused",
                                   * "deferred" */
    const struct mt_step *failed; /* the first refused or deferred step,
                                   * or NULL */
    int status;                   /* the exit status */
};
void mt_outcome(const struct mt *t, struct mt_outcome *out);
const char *mt_verdict_name(modmta_verdict v);
/* 1 for a --route step. */
int mt_is_route(const struct mt_step *st);
/* The instance whose action kind ("claim", "add_rcpt") named addr last,
 * or NULL. */
const char *mt_actor(const struct mt *t, const char *kind, const char *addr);
/* A route in words ("claimed", "deliver", "discarded", "failed",
 * "deferred"). */
const char *mt_route_status(const struct mt_route *rt);

/* modmtatest_json.c: the same as one JSON object on stdout. */
int mt_report_json(const struct mt *t, const struct config *cfg,
                   const struct mt_outcome *out);

#endif
