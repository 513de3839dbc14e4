/*
 * deliver_pipe's instance, shared by its files: deliver_pipe.c
 * (configuration, the hooks), dpipe_rcpt.c (which recipients are its),
 * dpipe_deliver.c (running the command for each).
 */
#ifndef DELIVER_PIPE_H
#define DELIVER_PIPE_H

#include <limits.h>
#include <sys/types.h>

#include <modmta/modmta.h>

#define DPIPE_TIME_LIMIT_MAX 86400
#define DPIPE_GROUPS_MAX 256
#define DPIPE_DEST_COMMAND "command"
#define DPIPE_DEST_ALIAS "alias"

struct dpipe_conf {
    char **command;
    char *user;
    char **domains;
    json_t *users;
    char *recipient_delimiter;
    long long time_limit;
    long long size_limit;
    int headers;
    int from_line;
    int alias_commands;
    int allow_daemon_user; /* commands may run as the daemon's own uid */
};

/* The account commands run as. */
struct dpipe_account {
    char name[64];
    char home[PATH_MAX];
    char shell[PATH_MAX];
    uid_t uid;
    gid_t gid;
    gid_t groups[DPIPE_GROUPS_MAX];
    size_t ngroups;
    int switch_user; /* the daemon runs as root: the child changes ids */
};

struct dpipe {
    struct dpipe_conf conf;
    const modmta_host *host;
    int system_users;  /* "users": "system" */
    modmta_map *map;   /* "users": a map */
    struct dpipe_account acct;
};

/* A recipient as the command sees it. */
struct dpipe_rcpt {
    char mailbox[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char user[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char ext[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    char note[64]; /* an alias command's note */
};

enum dpipe_kind {
    DPIPE_NOT_OURS = 0,
    DPIPE_UNKNOWN = 1, /* our domain, but "users" does not know it */
    DPIPE_TEMP = 2,    /* the users lookup failed */
    DPIPE_OK = 3,      /* the configured command */
    DPIPE_ALIAS = 4,   /* an alias's "|command" */
};

/* What rcpt is to instance d, its parts in *r. */
enum dpipe_kind dpipe_classify(const struct dpipe *d, const char *rcpt,
                               struct dpipe_rcpt *r);

/* deliver_msg(): one command per recipient of the group. */
void dpipe_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest);

#endif
