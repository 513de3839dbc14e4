/*
 * The cluster's registry of nodes and the reload answers' keys (see
 * cluster.h): what a node writes and modmtactl reads.
 *
 * Redis cannot list keys cheaply (SCAN walks the whole database, the
 * redis: maps included), so the names live in one key, ctl:nodes, and
 * each name's ctl:node key says whether that node is alive: a node that
 * dies or hangs stops renewing it and Redis drops it after
 * CLUSTER_NODE_TTL_S, with no clock compared between machines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <modmta/ctx.h>
#include <modmta/log.h>

#include "cluster.h"

#define CLUSTER_NODES_KEY "ctl:nodes"
#define CLUSTER_LOCK_KEY "ctl:nodes:lock"
#define CLUSTER_LOCK_TTL_MS 10000L  /* several of redis.timeout's calls */

static int cluster_registry_node_key(char *buf, size_t size,
                                     const char *host);
static int cluster_registry_split(const char *text, char ***names_r,
                                  size_t *n_r);
static int cluster_registry_read(modmta_shared *s, char ***names_r,
                                 size_t *n_r);
static int cluster_registry_alive(modmta_shared *s, const char *host);
static int cluster_registry_listed(modmta_shared *s, const char *host);
static int cluster_registry_rewrite(modmta_shared *s, const char *host);
static int cluster_registry_add(modmta_shared *s, const char *host,
                                const char *owner);

static int
cluster_registry_node_key(char *buf, size_t size, const char *host)
{
    int n = snprintf(buf, size, "ctl:node:%s", host);

    return n < 0 || (size_t)n >= size ? MODMTA_E_INVAL : 0;
}

int
cluster_result_key(char *buf, size_t size, const char *id, const char *host)
{
    int n = snprintf(buf, size, "ctl:reload:%s:%s", id, host);

    return n < 0 || (size_t)n >= size ? MODMTA_E_INVAL : 0;
}

long long
cluster_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
cluster_id_valid(const char *id)
{
    size_t n;

    for (n = 0; id[n] != '\0'; n++)
        if (n >= CLUSTER_ID_MAX ||
            !((id[n] >= 'a' && id[n] <= 'z') ||
              (id[n] >= 'A' && id[n] <= 'Z') ||
              (id[n] >= '0' && id[n] <= '9') || id[n] == '-'))
            return 0;
    return n > 0;
}

void
cluster_registry_free(char **names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The lines of text (NULL: none), empty ones skipped. */
static int
cluster_registry_split(const char *text, char ***names_r, size_t *n_r)
{
    char **names = NULL;
    size_t n = 0;

    *names_r = NULL;
    *n_r = 0;
    while (text != NULL && *text != '\0') {
        size_t len = strcspn(text, "\n");
        char **more;

        if (len > 0) {
            if ((more = realloc(names, (n + 1) * sizeof(*names))) == NULL)
                goto oom;
            names = more;
            if ((names[n] = strndup(text, len)) == NULL)
                goto oom;
            n++;
        }
        text += len + (text[len] == '\n');
    }
    *names_r = names;
    *n_r = n;
    return 0;
oom:
    cluster_registry_free(names, n);
    return MODMTA_E_NOMEM;
}

/* The names ctl:nodes lists. */
static int
cluster_registry_read(modmta_shared *s, char ***names_r, size_t *n_r)
{
    char *text;
    int rc;

    *names_r = NULL;
    *n_r = 0;
    if ((rc = modmta_shared_get(s, CLUSTER_NODES_KEY, &text)) < 0)
        return rc;
    rc = cluster_registry_split(text, names_r, n_r);
    modmta_free(text);
    return rc;
}

/* 1 host's ctl:node key exists, 0 not, <0 error. */
static int
cluster_registry_alive(modmta_shared *s, const char *host)
{
    char key[MODMTA_SHARED_KEY_MAX + 1];

    if (cluster_registry_node_key(key, sizeof(key), host) < 0)
        return 0;
    return modmta_shared_get(s, key, NULL);
}

/* 1 ctl:nodes lists host, 0 not, <0 error. */
static int
cluster_registry_listed(modmta_shared *s, const char *host)
{
    char **names;
    size_t n;
    int rc, found = 0;

    if ((rc = cluster_registry_read(s, &names, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n && !found; i++)
        found = strcmp(names[i], host) == 0;
    cluster_registry_free(names, n);
    return found;
}

/* ctl:nodes anew: the names listed whose node is alive (or cannot be
 * told: kept), and host. The caller holds the lock. */
static int
cluster_registry_rewrite(modmta_shared *s, const char *host)
{
    char **names, *out;
    size_t n, len = strlen(host) + 2;
    int rc;

    if ((rc = cluster_registry_read(s, &names, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        len += strlen(names[i]) + 1;
    if ((out = malloc(len)) == NULL) {
        cluster_registry_free(names, n);
        return MODMTA_E_NOMEM;
    }
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(names[i], host) == 0 ||
            cluster_registry_alive(s, names[i]) == 0)
            continue;
        strcat(strcat(out, names[i]), "\n");
    }
    strcat(strcat(out, host), "\n");
    cluster_registry_free(names, n);
    rc = modmta_shared_set(s, CLUSTER_NODES_KEY, out, 0);
    free(out);
    return rc;
}

/* Add host to ctl:nodes under the lock. 0 done or left for the next
 * beat (another node holds the lock), <0 error. */
static int
cluster_registry_add(modmta_shared *s, const char *host, const char *owner)
{
    int rc = modmta_shared_lease(s, CLUSTER_LOCK_KEY, owner,
                                 CLUSTER_LOCK_TTL_MS);

    if (rc <= 0)
        return rc;
    rc = cluster_registry_rewrite(s, host);
    modmta_shared_release(s, CLUSTER_LOCK_KEY, owner);
    return rc;
}

int
cluster_registry_join(modmta_shared *s, const char *host, const char *owner,
                      char **holder_r)
{
    char key[MODMTA_SHARED_KEY_MAX + 1];
    int rc;

    *holder_r = NULL;
    if ((rc = cluster_registry_node_key(key, sizeof(key), host)) < 0)
        return rc;
    rc = modmta_shared_lease(s, key, owner, CLUSTER_NODE_TTL_S * 1000L);
    if (rc == 0) {
        if (modmta_shared_get(s, key, holder_r) < 0)
            *holder_r = NULL;
        return 0;
    }
    if (rc < 0 || (rc = cluster_registry_listed(s, host)) < 0)
        return rc;
    if (rc == 0 && (rc = cluster_registry_add(s, host, owner)) < 0)
        return rc;
    return 1;
}

void
cluster_registry_leave(modmta_shared *s, const char *host, const char *owner)
{
    char key[MODMTA_SHARED_KEY_MAX + 1];

    if (cluster_registry_node_key(key, sizeof(key), host) == 0)
        modmta_shared_release(s, key, owner);
}

static int
cluster_registry_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int
cluster_registry_live(modmta_shared *s, char ***names_r, size_t *n_r)
{
    char **names;
    size_t n, live = 0;
    int rc;

    *names_r = NULL;
    *n_r = 0;
    if ((rc = cluster_registry_read(s, &names, &n)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = cluster_registry_alive(s, names[i])) < 0) {
            for (; i < n; i++)
                names[live++] = names[i];
            cluster_registry_free(names, live);
            return rc;
        }
        if (rc == 1)
            names[live++] = names[i];
        else
            free(names[i]);
    }
    if (live > 1)       /* names is NULL when ctl:nodes is absent */
        qsort(names, live, sizeof(*names), cluster_registry_cmp);
    *names_r = names;
    *n_r = live;
    return 0;
}
