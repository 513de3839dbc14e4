/*
 * A node's side of the cluster control (cluster.h): one thread that
 * subscribes to ctl:reload, keeps the node registered, and serves the
 * reload requests.
 *
 * The subscription belongs to the daemon, not to a generation: the
 * thread keeps a store of its own, made from the "redis" section, and
 * makes a new one only when a reload changes that section. A
 * generation's store lives as long as its last session, so a
 * subscription on it would outlive or precede the generation it serves;
 * and the store that brought a request must carry its answer, even when
 * that very reload moves the node to another Redis.
 *
 * The subscription callback only queues the request ID (it runs on the
 * store's thread and must be short): this thread runs the reload, the
 * code path of SIGHUP.
 *
 * A node's registration is a lease whose owner is the node's identity:
 * the machine's name and boot ID and the control socket's path. A
 * daemon restarted after a crash is the same owner and takes its name
 * back at once; another daemon with the same "hostname" is a different
 * owner, is told so in its log, and ignores reload requests (the answer
 * key is the name's: the registered node's answer is the one reported).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <modmta/ctx.h>
#include <modmta/log.h>

#include "shared_priv.h"
#include "cluster.h"

#define CLUSTER_OWNER_MAX 256
#define CLUSTER_PENDING_MAX 8     /* requests waiting for the thread */

enum cluster_state {
    CLUSTER_OUT,        /* not registered yet */
    CLUSTER_IN,         /* registered */
    CLUSTER_TAKEN,      /* the name is another node's (logged) */
    CLUSTER_DOWN        /* Redis cannot be reached (logged) */
};

struct cluster {
    struct control_ops ops;
    char owner[CLUSTER_OWNER_MAX];
    pthread_t thread;
    pthread_mutex_t lock;       /* the fields down to the thread's own */
    pthread_cond_t cond;        /* something for the thread to do */
    int stop;
    int changed;                /* want_* hold a configuration to follow */
    json_t *want_redis;
    char *want_host;
    char ids[CLUSTER_PENDING_MAX][CLUSTER_ID_MAX + 1];
    size_t nids;
    /* the thread's own */
    json_t *redis;              /* the section store was made from */
    char *host;
    modmta_shared *store;       /* NULL: no redis section */
    modmta_shared_sub *sub;
    enum cluster_state state;
};

static void cluster_identity(char *buf, size_t size, const char *socket);
static void cluster_message(void *arg, const char *channel,
                            const char *msg);
static char *cluster_answer(int rc, const char *errors);
static void cluster_serve(cluster *cl, const char *id);
static long cluster_beat(cluster *cl);
static modmta_shared *cluster_open(const json_t *redis);
static void cluster_leave(cluster *cl);
static void cluster_close(cluster *cl);
static void cluster_apply(cluster *cl, json_t *redis, char *host);
static void cluster_wait(cluster *cl, long long until_ms);
static void *cluster_thread(void *arg);

/* "NODENAME/BOOT-ID/SOCKET", made a valid lease owner (no space or
 * control character). */
static void
cluster_identity(char *buf, size_t size, const char *socket)
{
    char boot[64] = "";
    struct utsname u;
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

    if (f != NULL) {
        if (fgets(boot, sizeof(boot), f) == NULL)
            boot[0] = '\0';
        boot[strcspn(boot, "\n")] = '\0';
        fclose(f);
    }
    if (boot[0] == '\0')
        snprintf(boot, sizeof(boot), "pid%ld-%lld", (long)getpid(),
                 (long long)time(NULL));
    if (uname(&u) < 0)
        snprintf(u.nodename, sizeof(u.nodename), "unknown");
    snprintf(buf, size, "%s/%s/%s", u.nodename, boot, socket);
    for (char *p = buf; *p != '\0'; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            *p = '_';
}

/* On the store's thread: queue the request for ours. */
static void
cluster_message(void *arg, const char *channel, const char *msg)
{
    cluster *cl = arg;

    if (!cluster_id_valid(msg)) {
        modmta_logf(MODMTA_LOG_WARN, "cluster: ignored a request on %s "
                    "that is not a request ID", channel);
        return;
    }
    pthread_mutex_lock(&cl->lock);
    if (cl->nids < CLUSTER_PENDING_MAX) {
        memcpy(cl->ids[cl->nids++], msg, strlen(msg) + 1);
        pthread_cond_signal(&cl->cond);
    } else {
        modmta_logf(MODMTA_LOG_WARN, "cluster: reload id=%s dropped: %d "
                    "requests already waiting", msg, CLUSTER_PENDING_MAX);
    }
    pthread_mutex_unlock(&cl->lock);
}

/* The value of a reload's answer: "reloaded", or "error: " and the
 * errors (one a line in errors) joined with "; ". NULL out of memory. */
static char *
cluster_answer(int rc, const char *errors)
{
    size_t cap = MODMTA_SHARED_VALUE_MAX + 1, len;
    char *v;

    if (rc == 0)
        return strdup("reloaded");
    if (errors == NULL || errors[0] == '\0')
        errors = modmta_strerror(rc);
    if ((v = malloc(cap)) == NULL)
        return NULL;
    len = (size_t)snprintf(v, cap, "error: ");
    while (*errors != '\0' && len < cap - 1) {
        size_t n = strcspn(errors, "\n");

        if (n > 0) {
            len += (size_t)snprintf(v + len, cap - len, "%s%.*s",
                                    len > 7 ? "; " : "", (int)n, errors);
            len = len < cap - 1 ? len : cap - 1;
        }
        errors += n + (errors[n] == '\n');
    }
    return v;
}

/* Reload for request id and answer it, if this node holds its name: the
 * answer's key is the name's, so a second node with the same hostname
 * must neither write it (modmtactl would report its reload as the
 * other's) nor reload unreported. */
static void
cluster_serve(cluster *cl, const char *id)
{
    char key[MODMTA_SHARED_KEY_MAX + 1], *errors = NULL, *answer;
    int rc;

    if (cl->store == NULL)
        return;
    if (cl->state != CLUSTER_IN)        /* it may be ours again by now */
        (void)cluster_beat(cl);
    if (cl->state != CLUSTER_IN) {
        modmta_logf(MODMTA_LOG_WARN, "cluster: reload id=%s ignored: "
                    "node=%s is not registered (%s)", id, cl->host,
                    cl->state == CLUSTER_TAKEN
                        ? "another node holds this hostname"
                        : "Redis cannot be reached");
        return;
    }
    modmta_logf(MODMTA_LOG_INFO, "cluster: reload requested id=%s", id);
    rc = cl->ops.reload != NULL ? cl->ops.reload(cl->ops.arg, &errors)
                                : MODMTA_E_UNSUPPORTED;
    answer = cluster_answer(rc, errors);
    free(errors);
    if (answer == NULL)
        rc = MODMTA_E_NOMEM;
    else if ((rc = cluster_result_key(key, sizeof(key), id, cl->host)) == 0)
        rc = modmta_shared_set(cl->store, key, answer,
                               CLUSTER_RESULT_TTL_S * 1000L);
    if (rc < 0)
        modmta_logf(MODMTA_LOG_ERR, "cluster: reload id=%s: cannot give "
                    "the answer: %s", id, modmta_strerror(rc));
    else
        modmta_logf(MODMTA_LOG_INFO, "cluster: reload id=%s answered "
                    "\"%.200s\"", id, answer);
    free(answer);
}

/* Subscribe if not yet, register: the seconds until the next beat. */
static long
cluster_beat(cluster *cl)
{
    char *holder = NULL;
    int rc = 0;

    if (cl->sub == NULL)
        rc = modmta_shared_subscribe(cl->store, CLUSTER_CHANNEL,
                                     cluster_message, cl, &cl->sub);
    if (rc == 0)
        rc = cluster_registry_join(cl->store, cl->host, cl->owner, &holder);
    if (rc < 0) {
        if (cl->state != CLUSTER_DOWN)
            modmta_logf(MODMTA_LOG_WARN, "cluster: node=%s not %s for "
                        "reload --cluster: %s; retrying", cl->host,
                        cl->sub == NULL ? "subscribed" : "registered",
                        modmta_strerror(rc));
        cl->state = CLUSTER_DOWN;
        return CLUSTER_RETRY_S;
    }
    if (rc == 0 && cl->state != CLUSTER_TAKEN)
        modmta_logf(MODMTA_LOG_WARN, "cluster: node=%s: another node "
                    "registered this hostname (%s): each node needs a "
                    "\"hostname\" of its own; this one is left out of "
                    "reload --cluster (it neither reloads nor answers)",
                    cl->host,
                    holder != NULL ? holder : "gone since");
    else if (rc == 1 && cl->state != CLUSTER_IN)
        modmta_logf(MODMTA_LOG_NOTICE, "cluster: node=%s registered, "
                    "listening on %s", cl->host, CLUSTER_CHANNEL);
    cl->state = rc == 1 ? CLUSTER_IN : CLUSTER_TAKEN;
    modmta_free(holder);
    return CLUSTER_BEAT_S;
}

/* A store for the thread alone: one pooled connection is enough. */
static modmta_shared *
cluster_open(const json_t *redis)
{
    json_t *own = json_deep_copy(redis);
    modmta_shared *s = NULL;
    modmta_err err;

    if (own != NULL && json_object_set_new(own, "pool", json_integer(1)) == 0)
        s = modmta_shared_new(own, &err);
    else
        modmta_err_set(&err, "$.redis", "out of memory");
    if (s == NULL)
        modmta_logf(MODMTA_LOG_ERR, "cluster: %s: %s", err.path, err.msg);
    json_decref(own);
    return s;
}

/* Give the name back if this node may hold it. */
static void
cluster_leave(cluster *cl)
{
    if (cl->store != NULL &&
        (cl->state == CLUSTER_IN || cl->state == CLUSTER_DOWN))
        cluster_registry_leave(cl->store, cl->host, cl->owner);
}

/* Leave the registry and the channel, drop the store. */
static void
cluster_close(cluster *cl)
{
    cluster_leave(cl);
    modmta_shared_unsubscribe(cl->sub);
    modmta_shared_free(cl->store);
    json_decref(cl->redis);
    cl->sub = NULL;
    cl->store = NULL;
    cl->redis = NULL;
    cl->state = CLUSTER_OUT;
}

/* Follow a configuration (takes redis and host). */
static void
cluster_apply(cluster *cl, json_t *redis, char *host)
{
    int same_redis = redis == NULL ? cl->redis == NULL
                                   : json_equal(redis, cl->redis);

    if (cl->host != NULL && same_redis && strcmp(host, cl->host) == 0) {
        json_decref(redis);
        free(host);
        return;
    }
    if (cl->host != NULL)
        modmta_logf(MODMTA_LOG_INFO, "cluster: node=%s: %s changed", host,
                    same_redis ? "hostname" : "redis section");
    if (same_redis) {
        cluster_leave(cl);
        json_decref(redis);
    } else {
        cluster_close(cl);
        cl->redis = redis;
        if (redis != NULL)
            cl->store = cluster_open(redis);
    }
    free(cl->host);
    cl->host = host;
    cl->state = CLUSTER_OUT;
}

/* Under the lock: wait for work, or until until_ms (< 0: no limit). */
static void
cluster_wait(cluster *cl, long long until_ms)
{
    struct timespec ts;

    if (until_ms < 0) {
        pthread_cond_wait(&cl->cond, &cl->lock);
        return;
    }
    ts.tv_sec = until_ms / 1000;
    ts.tv_nsec = (until_ms % 1000) * 1000000;
    pthread_cond_timedwait(&cl->cond, &cl->lock, &ts);
}

/* Requests first (each answered through the store that brought it),
 * then a new configuration, then the beat. */
static void *
cluster_thread(void *arg)
{
    cluster *cl = arg;
    long long beat_at = 0;

    pthread_mutex_lock(&cl->lock);
    while (!cl->stop) {
        if (cl->nids > 0) {
            char id[CLUSTER_ID_MAX + 1];

            memcpy(id, cl->ids[0], sizeof(id));
            memmove(cl->ids[0], cl->ids[1], --cl->nids * sizeof(cl->ids[0]));
            pthread_mutex_unlock(&cl->lock);
            cluster_serve(cl, id);
        } else if (cl->changed) {
            json_t *redis = cl->want_redis;
            char *host = cl->want_host;

            cl->want_redis = NULL;
            cl->want_host = NULL;
            cl->changed = 0;
            pthread_mutex_unlock(&cl->lock);
            cluster_apply(cl, redis, host);
            beat_at = 0;
        } else if (cl->store != NULL && cluster_now_ms() >= beat_at) {
            pthread_mutex_unlock(&cl->lock);
            beat_at = cluster_now_ms() + cluster_beat(cl) * 1000;
        } else {
            cluster_wait(cl, cl->store != NULL ? beat_at : -1);
            continue;
        }
        pthread_mutex_lock(&cl->lock);
    }
    pthread_mutex_unlock(&cl->lock);
    cluster_close(cl);
    return NULL;
}

cluster *
cluster_start(const struct control_ops *ops, const struct config *cfg,
              modmta_err *err_r)
{
    cluster *cl = calloc(1, sizeof(*cl));
    pthread_condattr_t attr;
    int rc;

    if (cl == NULL) {
        modmta_err_set(err_r, NULL, "cluster: out of memory");
        return NULL;
    }
    cl->ops = *ops;
    cluster_identity(cl->owner, sizeof(cl->owner), cfg->control_socket);
    pthread_mutex_init(&cl->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&cl->cond, &attr);
    pthread_condattr_destroy(&attr);
    cluster_configure(cl, cfg);
    if (cl->want_host == NULL) {
        modmta_err_set(err_r, NULL, "cluster: out of memory");
        rc = ENOMEM;
    } else if ((rc = pthread_create(&cl->thread, NULL, cluster_thread,
                                    cl)) != 0) {
        modmta_err_set(err_r, NULL, "cluster: cannot start: %s",
                       strerror(rc));
    }
    if (rc != 0) {
        json_decref(cl->want_redis);
        free(cl->want_host);
        pthread_mutex_destroy(&cl->lock);
        pthread_cond_destroy(&cl->cond);
        free(cl);
        return NULL;
    }
    return cl;
}

void
cluster_configure(cluster *cl, const struct config *cfg)
{
    json_t *redis;
    char *host;

    if (cl == NULL)
        return;
    redis = cfg->redis != NULL ? json_deep_copy(cfg->redis) : NULL;
    host = strdup(cfg->hostname);
    if (host == NULL || (cfg->redis != NULL && redis == NULL)) {
        modmta_logf(MODMTA_LOG_ERR, "cluster: out of memory: the new "
                    "configuration's redis section is not followed");
        json_decref(redis);
        free(host);
        return;
    }
    pthread_mutex_lock(&cl->lock);
    json_decref(cl->want_redis);
    free(cl->want_host);
    cl->want_redis = redis;
    cl->want_host = host;
    cl->changed = 1;
    pthread_cond_signal(&cl->cond);
    pthread_mutex_unlock(&cl->lock);
}

void
cluster_stop(cluster *cl)
{
    if (cl == NULL)
        return;
    pthread_mutex_lock(&cl->lock);
    cl->stop = 1;
    pthread_cond_signal(&cl->cond);
    pthread_mutex_unlock(&cl->lock);
    pthread_join(cl->thread, NULL);
    json_decref(cl->want_redis);
    free(cl->want_host);
    free(cl->host);
    pthread_mutex_destroy(&cl->lock);
    pthread_cond_destroy(&cl->cond);
    free(cl);
}
