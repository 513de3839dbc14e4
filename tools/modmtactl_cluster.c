/*
 * modmtactl reload --cluster (modmtactl_cluster.h; the keys in core/cluster.h):
 * read the live nodes from the registry, publish a request ID on
 * ctl:reload, then poll each node's answer key until every node
 * answered or the timeout passed (each call to Redis ends by then too,
 * whatever redis.timeout says). One line per node on stdout.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <modmta/ctx.h>

#include "budget_priv.h"
#include "shared_priv.h"
#include "cluster.h"
#include "modmtactl_cluster.h"

#define CTL_CLUSTER_TIMEOUT 30      /* seconds, --timeout's default */
#define CTL_CLUSTER_TIMEOUT_MAX 3600
#define CTL_CLUSTER_POLL_MS 100
#define CTL_CLUSTER_ID_BYTES 16

static int ctl_cluster_args(int argc, char **argv, long *timeout_r);
static int ctl_cluster_new_id(char *id, size_t size);
static size_t ctl_cluster_poll(modmta_shared *s, const char *id,
                               char **names, char **answers, size_t n,
                               long long deadline, int *err_r);
static int ctl_cluster_print(char **names, char **answers, size_t n);
static int ctl_cluster_run(modmta_shared *s, long timeout);

static int
ctl_cluster_args(int argc, char **argv, long *timeout_r)
{
    int asked = 0, i;
    char *end;

    *timeout_r = CTL_CLUSTER_TIMEOUT;
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--cluster") == 0) {
            asked = 1;
            continue;
        }
        if (strcmp(argv[i], "--timeout") != 0 || i + 1 == argc)
            break;
        *timeout_r = strtol(argv[++i], &end, 10);
        if (*end != '\0' || end == argv[i] || *timeout_r < 1 ||
            *timeout_r > CTL_CLUSTER_TIMEOUT_MAX) {
            fprintf(stderr, "modmtactl: --timeout: expected seconds, 1 to "
                    "%d\n", CTL_CLUSTER_TIMEOUT_MAX);
            return -1;
        }
    }
    if (asked && i == argc)
        return 0;
    fprintf(stderr, "modmtactl: usage: modmtactl reload [--cluster "
            "[--timeout SECONDS]]\n");
    return -1;
}

/* A request ID: CTL_CLUSTER_ID_BYTES random bytes in hex. */
static int
ctl_cluster_new_id(char *id, size_t size)
{
    unsigned char b[CTL_CLUSTER_ID_BYTES];

    if (size < 2 * sizeof(b) + 1 ||
        getrandom(b, sizeof(b), 0) != (ssize_t)sizeof(b))
        return -1;
    for (size_t i = 0; i < sizeof(b); i++)
        snprintf(id + 2 * i, 3, "%02x", b[i]);
    return 0;
}

/* Fetch the answers still missing, until deadline: how many are still
 * missing. A store error leaves them missing and sets *err_r. */
static size_t
ctl_cluster_poll(modmta_shared *s, const char *id, char **names,
                 char **answers, size_t n, long long deadline, int *err_r)
{
    char key[MODMTA_SHARED_KEY_MAX + 1];
    size_t missing = 0;

    for (size_t i = 0; i < n; i++) {
        int rc;

        if (answers[i] != NULL)
            continue;
        if (cluster_now_ms() >= deadline)
            rc = 0;                     /* no time left to ask */
        else if (cluster_result_key(key, sizeof(key), id, names[i]) < 0)
            rc = MODMTA_E_INVAL;
        else
            rc = modmta_shared_get(s, key, &answers[i]);
        if (rc < 0)
            *err_r = rc;
        missing += answers[i] == NULL;
    }
    return missing;
}

/* One line per node; 0 when every one reloaded, else 1. */
static int
ctl_cluster_print(char **names, char **answers, size_t n)
{
    int rc = 0;

    for (size_t i = 0; i < n; i++) {
        const char *a = answers[i] != NULL ? answers[i] : "no answer";

        printf("%s: %s\n", names[i], a);
        if (strcmp(a, "reloaded") != 0)
            rc = 1;
    }
    return fflush(stdout) == 0 ? rc : 2;
}

static int
ctl_cluster_run(modmta_shared *s, long timeout)
{
    char id[2 * CTL_CLUSTER_ID_BYTES + 1], **names, **answers;
    long long deadline;
    size_t n, missing;
    int rc, err = 0;

    if ((rc = cluster_registry_live(s, &names, &n)) < 0) {
        fprintf(stderr, "modmtactl: cannot read the nodes from Redis: "
                "%s\n", modmta_strerror(rc));
        return 2;
    }
    if (n == 0) {
        fprintf(stderr, "modmtactl: no node is registered in this Redis "
                "under this prefix (are the nodes running with the same "
                "\"redis\" section?)\n");
        return 1;
    }
    answers = calloc(n, sizeof(*answers));
    if (answers == NULL || ctl_cluster_new_id(id, sizeof(id)) < 0) {
        fprintf(stderr, "modmtactl: cannot make a request ID\n");
        free(answers);
        cluster_registry_free(names, n);
        return 2;
    }
    if ((rc = modmta_shared_publish(s, CLUSTER_CHANNEL, id)) < 0) {
        fprintf(stderr, "modmtactl: cannot publish the request: %s\n",
                modmta_strerror(rc));
        free(answers);
        cluster_registry_free(names, n);
        return 2;
    }
    /* nobody listening: nobody will answer */
    deadline = cluster_now_ms() + (rc > 0 ? timeout * 1000 : 0);
    /* a slow Redis must not keep a poll past the deadline */
    budget_set(deadline);
    while ((missing = ctl_cluster_poll(s, id, names, answers, n, deadline,
                                       &err)) > 0 &&
           cluster_now_ms() < deadline)
        nanosleep(&(struct timespec){0, CTL_CLUSTER_POLL_MS * 1000000L},
                  NULL);
    budget_set(0);
    if (missing > 0 && err < 0)
        fprintf(stderr, "modmtactl: reading the answers: %s\n",
                modmta_strerror(err));
    rc = ctl_cluster_print(names, answers, n);
    for (size_t i = 0; i < n; i++)
        modmta_free(answers[i]);
    free(answers);
    cluster_registry_free(names, n);
    return rc;
}

int
ctl_cluster_reload(const struct config *cfg, int argc, char **argv)
{
    modmta_shared *s;
    modmta_err err;
    long timeout;
    int rc;

    if (ctl_cluster_args(argc, argv, &timeout) < 0)
        return 2;
    if (cfg->redis == NULL) {
        fprintf(stderr, "modmtactl: %s: reload --cluster needs a \"redis\" "
                "section: the nodes find each other through Redis\n",
                cfg->path);
        return 2;
    }
    /* hiredis writes with write(2): a closed connection must be an
     * error, not a SIGPIPE */
    signal(SIGPIPE, SIG_IGN);
    if ((s = modmta_shared_new(cfg->redis, &err)) == NULL) {
        fprintf(stderr, "modmtactl: %s: %s: %s\n", cfg->path, err.path,
                err.msg);
        return 2;
    }
    rc = ctl_cluster_run(s, timeout);
    modmta_shared_free(s);
    return rc;
}
