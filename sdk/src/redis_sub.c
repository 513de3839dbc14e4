/*
 * The subscriber (redis_priv.h): one connection in subscribe mode and
 * one thread per client, started by the first subscription and joined
 * when the last one is removed (one that failed leaves it running,
 * without a connection, for the retry).
 *
 * Channels are counted: the first redis_sub_add of a channel sends
 * SUBSCRIBE, the last redis_sub_remove UNSUBSCRIBE. Other threads only
 * change the counts and wake the thread through a pipe; the thread
 * alone talks to Redis: it sends what the counts ask for, reads
 * messages and confirmations, and hands messages to deliver() with no
 * lock held. A connection quiet for REDIS_SUB_PING_MS gets a PING, and
 * one that does not answer within the command timeout is dropped, so a
 * Redis that vanished without closing is noticed. After any failure the
 * thread waits REDIS_RETRY_MS, connects again and subscribes to every
 * channel anew (what was published meanwhile is lost: pub/sub is not a
 * queue).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "budget_priv.h"
#include "redis_priv.h"

#define REDIS_SUB_PING_MS 5000

struct redis_chan {
    char *name;
    int refs;                   /* redis_sub_add calls not undone */
    int sent;                   /* SUBSCRIBE sent on this connection */
    int live;                   /* and confirmed */
    struct redis_chan *next;
};

struct redis_sub {
    struct redis *r;
    void (*deliver)(void *arg, const char *channel, const char *msg);
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;        /* a channel went live; a join ended */
    struct redis_chan *chans;
    int nrefs;                  /* the sum of the channels' refs */
    int wake[2];                /* others → the thread: look again */
    int running;                /* the thread exists, not joined */
    int stop;                   /* it must end */
    int stopping;               /* someone is joining it */
    pthread_t thread;
};

/* The thread's own state. */
struct redis_sub_io {
    redisContext *c;
    long long retry_at;         /* no connect before (ms) */
    long long quiet_since;      /* last input (ms) */
    long long ping_sent;        /* 0: no PING outstanding */
    int answered;               /* this connection answered */
    size_t sentinel;
    char where[REDIS_WHERE_MAX]; /* the server's address */
};

static void redis_sub_kick(struct redis_sub *s);
static int redis_sub_is_own_thread(const struct redis_sub *s);
static int redis_sub_wait(struct redis_sub *s, int fd, long long ms);
static struct redis_chan *redis_sub_find(struct redis_sub *s,
                                         const char *name);
static void redis_sub_gc(struct redis_sub *s);
static void redis_sub_stop(struct redis_sub *s);
static void redis_sub_reset(struct redis_sub *s);
static void redis_sub_drop(struct redis_sub *s, struct redis_sub_io *io,
                           const char *why);
static int redis_sub_sync(struct redis_sub *s, redisContext *c);
static int redis_sub_flush(redisContext *c);
static int redis_sub_reply(struct redis_sub *s, redisReply *reply,
                           char *why, size_t whylen);
static int redis_sub_read(struct redis_sub *s, struct redis_sub_io *io);
static void redis_sub_connect(struct redis_sub *s, struct redis_sub_io *io);
static void redis_sub_step(struct redis_sub *s, struct redis_sub_io *io);
static void *redis_sub_thread(void *arg);

struct redis_sub *
redis_sub_new(struct redis *r,
              void (*deliver)(void *arg, const char *channel,
                              const char *msg),
              void *arg)
{
    struct redis_sub *s = calloc(1, sizeof(*s));

    if (s == NULL)
        return NULL;
    if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
        free(s);
        return NULL;
    }
    s->r = r;
    s->deliver = deliver;
    s->arg = arg;
    pthread_mutex_init(&s->lock, NULL);
    redis_cond_init(&s->cond);
    return s;
}

static void
redis_sub_kick(struct redis_sub *s)
{
    ssize_t n = write(s->wake[1], "", 1);   /* full: a kick is pending */

    (void)n;
}

/* Wait up to ms (< 0: no limit) for a kick or, fd >= 0, input on fd:
 * 1 if fd has input (or hung up), else 0. */
static int
redis_sub_wait(struct redis_sub *s, int fd, long long ms)
{
    struct pollfd p[2] = {{.fd = s->wake[0], .events = POLLIN},
                          {.fd = fd, .events = POLLIN}};
    char buf[64];

    if (poll(p, fd >= 0 ? 2 : 1, ms < 0 ? -1 : ms > 60000 ? 60000
                                                           : (int)ms) <= 0)
        return 0;
    if (p[0].revents != 0)
        while (read(s->wake[0], buf, sizeof(buf)) > 0)
            ;
    return fd >= 0 && p[1].revents != 0;
}

static struct redis_chan *
redis_sub_find(struct redis_sub *s, const char *name)
{
    struct redis_chan *ch;

    for (ch = s->chans; ch != NULL && strcmp(ch->name, name) != 0;
         ch = ch->next)
        ;
    return ch;
}

/* Forget the channels nobody wants and that are not subscribed (lock
 * held). */
static void
redis_sub_gc(struct redis_sub *s)
{
    struct redis_chan **pp = &s->chans, *ch;

    while ((ch = *pp) != NULL) {
        if (ch->refs == 0 && !ch->sent) {
            *pp = ch->next;
            free(ch->name);
            free(ch);
        } else {
            pp = &ch->next;
        }
    }
}

/* End the thread and wait for it (lock held, dropped meanwhile). */
static void
redis_sub_stop(struct redis_sub *s)
{
    s->stop = 1;
    s->stopping = 1;
    redis_sub_kick(s);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL);
    pthread_mutex_lock(&s->lock);
    s->running = 0;
    s->stop = 0;
    s->stopping = 0;
    redis_sub_reset(s);
    pthread_cond_broadcast(&s->cond);
}

int
redis_sub_add(struct redis_sub *s, const char *channel)
{
    long long deadline = budget_cut(redis_now_ms()
                                    + redis_get_cfg(s->r)->timeout_ms);
    struct timespec ts = {deadline / 1000, (deadline % 1000) * 1000000};
    struct redis_chan *ch;
    int rc = 0;

    pthread_mutex_lock(&s->lock);
    while (s->stopping)
        pthread_cond_wait(&s->cond, &s->lock);
    if ((ch = redis_sub_find(s, channel)) == NULL) {
        if ((ch = calloc(1, sizeof(*ch))) == NULL ||
            (ch->name = strdup(channel)) == NULL) {
            free(ch);
            pthread_mutex_unlock(&s->lock);
            return MODMTA_E_NOMEM;
        }
        ch->next = s->chans;
        s->chans = ch;
    }
    ch->refs++;
    s->nrefs++;
    if (!s->running) {
        if (pthread_create(&s->thread, NULL, redis_sub_thread, s) == 0)
            s->running = 1;
        else
            rc = MODMTA_E_NOMEM;
    }
    redis_sub_kick(s);
    /* from a callback, the thread that would confirm is this one */
    while (rc == 0 && !ch->live && !redis_sub_is_own_thread(s) &&
           pthread_cond_timedwait(&s->cond, &s->lock, &ts) != ETIMEDOUT)
        ;
    if (rc == 0 && !ch->live && !redis_sub_is_own_thread(s)) {
        rc = MODMTA_E_TEMP;
        if (!budget_spent())
            redis_note(s->r, NULL, "SUBSCRIBE: not confirmed within the "
                       "timeout");
    }
    if (rc < 0) {
        /* The thread stays (idle without channels): a caller retrying
         * every second during an outage must not start one each time.
         * Woken, it unsubscribes what was sent for nothing. */
        ch->refs--;
        s->nrefs--;
        redis_sub_kick(s);
        redis_sub_gc(s);
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

void
redis_sub_remove(struct redis_sub *s, const char *channel)
{
    struct redis_chan *ch;

    pthread_mutex_lock(&s->lock);
    ch = redis_sub_find(s, channel);
    if (ch != NULL && ch->refs > 0) {
        ch->refs--;
        s->nrefs--;
        redis_sub_kick(s);
        if (s->nrefs == 0 && s->running && !s->stopping &&
            !redis_sub_is_own_thread(s))
            redis_sub_stop(s);
    }
    pthread_mutex_unlock(&s->lock);
}

/* 1 when called on the subscriber's thread (from deliver; lock held). */
static int
redis_sub_is_own_thread(const struct redis_sub *s)
{
    return s->running && pthread_equal(s->thread, pthread_self());
}

void
redis_sub_free(struct redis_sub *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->lock);
    if (s->running)
        redis_sub_stop(s);
    pthread_mutex_unlock(&s->lock);
    while (s->chans != NULL) {
        struct redis_chan *ch = s->chans;

        s->chans = ch->next;
        free(ch->name);
        free(ch);
    }
    close(s->wake[0]);
    close(s->wake[1]);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    free(s);
}

/* ---- the thread ---- */

/* No channel is subscribed any more (lock held). */
static void
redis_sub_reset(struct redis_sub *s)
{
    for (struct redis_chan *ch = s->chans; ch != NULL; ch = ch->next)
        ch->sent = ch->live = 0;
    redis_sub_gc(s);
}

/* Close the connection after a failure (lock not held): every channel
 * is subscribed again on the next one, after REDIS_RETRY_MS. */
static void
redis_sub_drop(struct redis_sub *s, struct redis_sub_io *io, const char *why)
{
    redisFree(io->c);
    io->c = NULL;
    io->retry_at = redis_now_ms() + REDIS_RETRY_MS;
    pthread_mutex_lock(&s->lock);
    redis_sub_reset(s);
    pthread_mutex_unlock(&s->lock);
    redis_note(s->r, io->where, why);
}

/* Queue SUBSCRIBE for the channels wanted and not sent, UNSUBSCRIBE for
 * those sent and no longer wanted (lock held). 0, or -1 (no memory). */
static int
redis_sub_sync(struct redis_sub *s, redisContext *c)
{
    const char *argv[2];

    for (struct redis_chan *ch = s->chans; ch != NULL; ch = ch->next) {
        if ((ch->refs > 0) == ch->sent)
            continue;
        argv[0] = ch->refs > 0 ? "SUBSCRIBE" : "UNSUBSCRIBE";
        argv[1] = ch->name;
        if (redisAppendCommandArgv(c, 2, argv, NULL) != REDIS_OK)
            return -1;
        ch->sent = ch->refs > 0;
        ch->live = 0;
    }
    redis_sub_gc(s);
    return 0;
}

/* Send what is queued (bounded by the socket's timeout). */
static int
redis_sub_flush(redisContext *c)
{
    int done = 0;

    while (!done)
        if (redisBufferWrite(c, &done) != REDIS_OK)
            return -1;
    return 0;
}

/* One reply in subscribe mode: 0, or -1 with why filled (drop). */
static int
redis_sub_reply(struct redis_sub *s, redisReply *reply, char *why,
                size_t whylen)
{
    struct redis_chan *ch;
    const char *kind;

    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(why, whylen, "subscriber: %s", reply->str);
        return -1;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING) {
        snprintf(why, whylen, "subscriber: unexpected reply");
        return -1;
    }
    kind = reply->element[0]->str;
    if (strcmp(kind, "message") == 0 && reply->elements == 3 &&
        reply->element[2]->type == REDIS_REPLY_STRING) {
        s->deliver(s->arg, reply->element[1]->str, reply->element[2]->str);
    } else if (strcmp(kind, "subscribe") == 0) {
        pthread_mutex_lock(&s->lock);
        ch = redis_sub_find(s, reply->element[1]->str);
        if (ch != NULL && ch->sent) {
            ch->live = 1;
            pthread_cond_broadcast(&s->cond);
        }
        pthread_mutex_unlock(&s->lock);
    }
    /* "unsubscribe", "pong": nothing to do */
    return 0;
}

/* Read what arrived and handle every whole reply: 0, or -1 (dropped). */
static int
redis_sub_read(struct redis_sub *s, struct redis_sub_io *io)
{
    redisReply *reply;
    char why[512];
    int rc = 0;

    if (redisBufferRead(io->c) != REDIS_OK) {
        snprintf(why, sizeof(why), "subscriber: %s", io->c->errstr);
        redis_sub_drop(s, io, why);
        return -1;
    }
    io->quiet_since = redis_now_ms();
    io->ping_sent = 0;
    if (!io->answered) {
        io->answered = 1;
        redis_note_ok(s->r, io->where);
    }
    for (;;) {
        reply = NULL;
        if (redisGetReplyFromReader(io->c, (void **)&reply) != REDIS_OK) {
            snprintf(why, sizeof(why), "subscriber: %s", io->c->errstr);
            rc = -1;
        } else if (reply == NULL) {
            break;
        } else {
            rc = redis_sub_reply(s, reply, why, sizeof(why));
            freeReplyObject(reply);
        }
        if (rc < 0) {
            redis_sub_drop(s, io, why);
            return -1;
        }
    }
    return 0;
}

static void
redis_sub_connect(struct redis_sub *s, struct redis_sub_io *io)
{
    const struct redis_cfg *cfg = redis_get_cfg(s->r);
    char why[512];

    io->c = redis_conn_open(cfg, redis_now_ms() + cfg->timeout_ms,
                            &io->sentinel, io->where, why, sizeof(why));
    if (io->c != NULL && redis_conn_timeout(io->c, cfg->timeout_ms) < 0) {
        snprintf(why, sizeof(why), "%s: subscriber: %s", io->where,
                 io->c->errstr);
        redisFree(io->c);
        io->c = NULL;
    }
    if (io->c == NULL) {
        io->retry_at = redis_now_ms() + REDIS_RETRY_MS;
        redis_note(s->r, NULL, why);
        return;
    }
    io->quiet_since = redis_now_ms();
    io->ping_sent = 0;
    io->answered = 0;
}

/* One turn of the thread (lock held on entry and on return). */
static void
redis_sub_step(struct redis_sub *s, struct redis_sub_io *io)
{
    const char *ping[] = {"PING"};
    long long now = redis_now_ms(), wait;
    int rc;

    if (s->nrefs == 0) {                /* nothing wanted: no connection */
        if (io->c != NULL) {
            redisFree(io->c);
            io->c = NULL;
            redis_sub_reset(s);
        }
        pthread_mutex_unlock(&s->lock);
        redis_sub_wait(s, -1, -1);
        pthread_mutex_lock(&s->lock);
        return;
    }
    if (io->c == NULL) {
        pthread_mutex_unlock(&s->lock);
        if (now < io->retry_at)
            redis_sub_wait(s, -1, io->retry_at - now);
        else
            redis_sub_connect(s, io);
        pthread_mutex_lock(&s->lock);
        return;
    }
    rc = redis_sub_sync(s, io->c);
    pthread_mutex_unlock(&s->lock);
    if (rc < 0 || redis_sub_flush(io->c) < 0) {
        redis_sub_drop(s, io, rc < 0 ? "subscriber: out of memory"
                                     : "subscriber: write failed");
    } else {
        wait = io->ping_sent != 0
                   ? io->ping_sent + redis_get_cfg(s->r)->timeout_ms - now
                   : io->quiet_since + REDIS_SUB_PING_MS - now;
        if (wait > 0 && redis_sub_wait(s, io->c->fd, wait))
            (void)redis_sub_read(s, io);
        else if (wait <= 0 && io->ping_sent != 0)
            redis_sub_drop(s, io, "subscriber: no answer to PING");
        else if (wait <= 0 &&
                 (redisAppendCommandArgv(io->c, 1, ping, NULL) != REDIS_OK ||
                  redis_sub_flush(io->c) < 0))
            redis_sub_drop(s, io, "subscriber: PING failed");
        else if (wait <= 0)
            io->ping_sent = now;
    }
    pthread_mutex_lock(&s->lock);
}

static void *
redis_sub_thread(void *arg)
{
    struct redis_sub *s = arg;
    struct redis_sub_io io = {0};

    pthread_mutex_lock(&s->lock);
    while (!s->stop)
        redis_sub_step(s, &io);
    pthread_mutex_unlock(&s->lock);
    if (io.c != NULL)
        redisFree(io.c);
    return NULL;
}
