/*
 * What the parts of one delivery attempt share (deliver.c: the attempt;
 * deliver_job.c: groups and jobs; deliver_result.c: a recipient's
 * result into the envelope). Not used outside these files.
 */
#ifndef MODMTA_CORE_DELIVER_PRIV_H
#define MODMTA_CORE_DELIVER_PRIV_H

#include <limits.h>
#include <pthread.h>

#include <modmta/ctx.h>

#include "deliver.h"
#include "generation.h"

/* One attempt on one message. The message is claimed in the scheduler
 * for the attempt's whole life, so nothing else writes its envelope.
 * lock guards env's recipients, out and jobs_left while jobs run; it is
 * never held around I/O to a peer. */
struct deliver_run {
    char id[QUEUE_ID_MAX];
    queue *q;
    dispatch *d;                /* NULL: jobs run on the starting thread */
    generation *gen;            /* held until the attempt is finished */
    queue_env *env;
    char path[PATH_MAX];        /* the content */
    struct deliver_outcome out;
    deliver_done_fn *done;
    void *done_arg;
    pthread_mutex_t lock;
    size_t jobs_left;           /* references: the starter and each job */
    int cancelled;              /* a job was cancelled (shutdown) */
    int throttled;              /* a destination had no room for a job */
    int decided;                /* some recipient reached a final state */
};

/* The server a result came from, as a transport reported it. */
struct deliver_remote {
    const char *name;           /* NULL: none (local, or nothing reached) */
    const char *addr;           /* "192.0.2.1", NULL for a UNIX socket */
    int port;
    const char *tls_version;    /* NULL: not TLS */
    const char *tls_cipher;
};

/* One recipient's result, from a deliver() module, a route() verdict or
 * a deliver_msg() report. */
struct deliver_res {
    modmta_dstatus status;      /* DELIVERED RELAYED RELAYED_DSN DEFERRED
                                 * FAILED */
    int code;                   /* 0: no reply */
    const char *esc;            /* "" or NULL: none */
    const char *stage;          /* NULL: none */
    const char *text;
    const char *relay;          /* the instance, for a local result */
    struct deliver_remote remote;
};

/* deliver_result.c: record r's result in the envelope (state, reply,
 * mailq text), count it in run->out and log it. Lock held by the caller
 * when jobs may run concurrently. */
void deliver_result(struct deliver_run *run, queue_rcpt *r,
                    const struct deliver_res *res);

/* deliver_job.c: the recipients claimed by transports (indices into
 * env->rcpts with their claim), grouped into jobs for the dispatcher (or
 * run here, in order, when there is none). Each job holds a reference on
 * the run (jobs_left) and drops it when it ends. */
struct deliver_claim {
    size_t rcpt;                /* index in env->rcpts */
    size_t inst;                /* the claiming instance */
    const char *dest;           /* borrowed from the routing ctx */
};
void deliver_jobs_start(struct deliver_run *run,
                        const struct deliver_claim *claims, size_t n);

/* deliver.c: drop a reference on the run (the starter holds one, each
 * job one); the last finishes the attempt and frees the run. */
void deliver_run_unref(struct deliver_run *run);

/* deliver_ctx_for the run's message, whose connections give up when
 * the dispatcher stops. NULL out of memory. */
modmta_ctx *deliver_ctx_new(struct deliver_run *run, const char *sender);

#endif
