/*
 * deliver_pipe: hands a message to a command — procmail, a ticket
 * system, a list manager — as Postfix's pipe(8) and local(8)'s
 * mailbox_command do: one run per recipient, as a configured account
 * (never root), argv from a template without a shell, Postfix's
 * environment, a time limit, a size limit, the output in the DSN and the
 * exit status read per sysexits.h. It also runs alias's "|command"
 * targets from a trusted aliases file (pipe_alias.h). See README.md.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "pipe_alias.h"
#include "pipe_argv.h"
#include "pipe_run.h"
#include "pipe_status.h"

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
    int alias_commands;
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

static const modmta_opt dpipe_opts[] = {
    { "command", MODMTA_OPT_STRLIST, offsetof(struct dpipe_conf, command),
      0 },
    { "user", MODMTA_OPT_STRING, offsetof(struct dpipe_conf, user), 0 },
    { "domains", MODMTA_OPT_STRLIST, offsetof(struct dpipe_conf, domains),
      0 },
    { "users", MODMTA_OPT_JSON, offsetof(struct dpipe_conf, users), 0 },
    { "recipient_delimiter", MODMTA_OPT_STRING,
      offsetof(struct dpipe_conf, recipient_delimiter), 0 },
    { "time_limit", MODMTA_OPT_INT, offsetof(struct dpipe_conf, time_limit),
      0 },
    { "size_limit", MODMTA_OPT_INT, offsetof(struct dpipe_conf, size_limit),
      0 },
    { "headers", MODMTA_OPT_BOOL, offsetof(struct dpipe_conf, headers), 0 },
    { "alias_commands", MODMTA_OPT_BOOL,
      offsetof(struct dpipe_conf, alias_commands), 0 },
    { NULL, 0, 0, 0 },
};

/* ---- configuration ---- */

static int dpipe_err(const modmta_host *h, modmta_err *err_r,
                     const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A config error at this instance's key. */
static int
dpipe_err(const modmta_host *h, modmta_err *err_r, const char *key,
          const char *fmt, ...)
{
    char path[300], msg[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    snprintf(path, sizeof(path), "%s.%s", modmta_host_path(h), key);
    modmta_err_set(err_r, path, "%s", msg);
    return MODMTA_E_CONFIG;
}

static void
dpipe_destroy(void *inst)
{
    struct dpipe *d = inst;

    if (d == NULL)
        return;
    if (d->map != NULL)
        modmta_map_close(d->map);
    modmta_conf_free(dpipe_opts, &d->conf);
    free(d);
}

static int
dpipe_conf_command(struct dpipe *d, modmta_err *err_r)
{
    char key[40], why[300];
    size_t i;

    if (d->conf.command == NULL) {
        if (d->conf.alias_commands)
            return 0;
        return dpipe_err(d->host, err_r, "command", "%s", "required (an "
                         "array: the program's absolute path, then its "
                         "arguments), unless alias_commands is true");
    }
    if (d->conf.command[0] == NULL || d->conf.command[0][0] != '/')
        return dpipe_err(d->host, err_r, "command[0]", "%s", "expected "
                         "the program's absolute path");
    for (i = 0; d->conf.command[i] != NULL; i++) {
        snprintf(key, sizeof(key), "command[%zu]", i);
        if (pipe_tmpl_check(d->conf.command[i], why, sizeof(why)) < 0)
            return dpipe_err(d->host, err_r, key, "%s", why);
    }
    if (strchr(d->conf.command[0], '$') != NULL)
        return dpipe_err(d->host, err_r, "command[0]", "%s", "the program "
                         "cannot come from a macro");
    return 0;
}

/* The passwd entry of name (or of uid when name is NULL) into a. */
static int
dpipe_getpw(const char *name, uid_t uid, struct dpipe_account *a)
{
    struct passwd pw, *res = NULL;
    char buf[16384];
    int n = DPIPE_GROUPS_MAX;

    if (name != NULL)
        getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    else
        getpwuid_r(uid, &pw, buf, sizeof(buf), &res);
    if (res == NULL)
        return -1;
    snprintf(a->name, sizeof(a->name), "%s", pw.pw_name);
    snprintf(a->home, sizeof(a->home), "%s",
             pw.pw_dir != NULL && pw.pw_dir[0] == '/' ? pw.pw_dir : "/");
    snprintf(a->shell, sizeof(a->shell), "%s",
             pw.pw_shell != NULL && pw.pw_shell[0] == '/' ? pw.pw_shell
                                                           : "/bin/sh");
    a->uid = pw.pw_uid;
    a->gid = pw.pw_gid;
    if (getgrouplist(pw.pw_name, pw.pw_gid, a->groups, &n) < 0)
        n = 0; /* more than DPIPE_GROUPS_MAX: the primary group only */
    if (n == 0) {
        a->groups[0] = pw.pw_gid;
        n = 1;
    }
    a->ngroups = (size_t)n;
    return 0;
}

/* Never root; a daemon that is not root can only run commands as
 * itself (privilege model: docs/architecture.md, "Start-up order"). */
static int
dpipe_conf_account(struct dpipe *d, modmta_err *err_r)
{
    struct dpipe_account *a = &d->acct;
    uid_t me = geteuid();

    if (d->conf.user == NULL && me == 0)
        return dpipe_err(d->host, err_r, "user", "%s", "required: the "
                         "daemon runs as root, and commands never do");
    if (dpipe_getpw(d->conf.user, me, a) < 0) {
        if (d->conf.user != NULL)
            return dpipe_err(d->host, err_r, "user", "no such user \"%s\"",
                             d->conf.user);
        /* the daemon's uid without a passwd entry */
        snprintf(a->name, sizeof(a->name), "#%lu", (unsigned long)me);
        snprintf(a->home, sizeof(a->home), "/");
        snprintf(a->shell, sizeof(a->shell), "/bin/sh");
        a->uid = me;
        a->gid = getegid();
    }
    if (a->uid == 0)
        return dpipe_err(d->host, err_r, "user", "user \"%s\" is root: "
                         "commands never run as root; choose an "
                         "unprivileged account", a->name);
    if (a->gid == 0)
        return dpipe_err(d->host, err_r, "user", "user \"%s\" has the root "
                         "group as its primary group: commands never run "
                         "with it; choose an unprivileged account", a->name);
    if (me != 0 && me != a->uid)
        return dpipe_err(d->host, err_r, "user", "the daemon runs as uid "
                         "%lu and cannot run commands as another user: "
                         "leave \"user\" out or name the daemon's own "
                         "user, not \"%s\"", (unsigned long)me, a->name);
    a->switch_user = me == 0;
    return 0;
}

static int
dpipe_conf_users(struct dpipe *d, modmta_err *err_r)
{
    const json_t *u = d->conf.users;
    char path[300];

    if (u == NULL || (json_is_string(u) &&
                      strcmp(json_string_value(u), "any") == 0))
        return 0;
    if (json_is_string(u) && strcmp(json_string_value(u), "system") == 0) {
        d->system_users = 1;
        return 0;
    }
    snprintf(path, sizeof(path), "%s.users", modmta_host_path(d->host));
    d->map = modmta_map_open_host(u, d->host, path, err_r);
    return d->map != NULL ? 0 : MODMTA_E_CONFIG;
}

static int
dpipe_conf_domains(struct dpipe *d, modmta_err *err_r)
{
    char key[40];
    size_t i;

    for (i = 0; d->conf.domains != NULL && d->conf.domains[i] != NULL; i++) {
        const char *p = d->conf.domains[i];

        snprintf(key, sizeof(key), "domains[%zu]", i);
        if (*p == '\0' || strlen(p) > 253 ||
            strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                      "0123456789.-") != strlen(p))
            return dpipe_err(d->host, err_r, key, "%s",
                             "expected a domain name");
    }
    if (d->conf.domains != NULL && i == 0)
        return dpipe_err(d->host, err_r, "domains", "%s", "empty: leave "
                         "the key out for every local recipient");
    return 0;
}

static int
dpipe_conf_limits(struct dpipe *d, modmta_err *err_r)
{
    const char *rd = d->conf.recipient_delimiter;

    if (d->conf.time_limit < 1 || d->conf.time_limit > DPIPE_TIME_LIMIT_MAX)
        return dpipe_err(d->host, err_r, "time_limit", "%s", "expected "
                         "seconds from 1 to 86400");
    if (rd != NULL && (*rd == '\0' || strlen(rd) > 8 ||
                       strpbrk(rd, "@\"\\ ") != NULL))
        return dpipe_err(d->host, err_r, "recipient_delimiter", "%s",
                         "expected 1 to 8 characters (\"+\", \"+-\"), "
                         "none of @ \" \\ or space");
    return 0;
}

static void *
dpipe_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct dpipe *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    d->host = host;
    d->conf.time_limit = 1000; /* Postfix's command_time_limit */
    d->conf.headers = 1;
    if (modmta_conf_parse(conf, host, dpipe_opts, &d->conf, err_r) < 0 ||
        dpipe_conf_command(d, err_r) < 0 ||
        dpipe_conf_account(d, err_r) < 0 ||
        dpipe_conf_users(d, err_r) < 0 ||
        dpipe_conf_domains(d, err_r) < 0 ||
        dpipe_conf_limits(d, err_r) < 0) {
        dpipe_destroy(d);
        return NULL;
    }
    return d;
}

/* ---- recipients ---- */

static int
dpipe_domain_ours(const struct dpipe *d, const char *domain)
{
    size_t i;

    if (d->conf.domains == NULL)
        return domain[0] == '\0' ||
               modmta_host_is_local_domain(d->host, domain);
    for (i = 0; d->conf.domains[i] != NULL; i++)
        if (modmta_domain_equal(d->conf.domains[i], domain))
            return 1;
    return 0;
}

static enum dpipe_kind
dpipe_system_user(const char *user)
{
    struct passwd pw, *res = NULL;
    char buf[16384], name[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    size_t i;
    int e;

    for (i = 0; user[i] != '\0' && i + 1 < sizeof(name); i++)
        name[i] = (char)tolower((unsigned char)user[i]);
    name[i] = '\0';
    e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res != NULL)
        return DPIPE_OK;
    /* getpwnam_r(3): these also mean "no such user" */
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
        return DPIPE_UNKNOWN;
    return DPIPE_TEMP;
}

/* "users" as a map: the address, the local part, then the user without
 * its extension (Postfix's order). */
static enum dpipe_kind
dpipe_map_user(const struct dpipe *d, const char *rcpt,
               const struct dpipe_rcpt *r)
{
    const char *keys[3] = { rcpt, r->mailbox, r->user };
    size_t i;

    for (i = 0; i < 3; i++) {
        int rc = modmta_map_lookup(d->map, keys[i], NULL);

        if (rc < 0)
            return DPIPE_TEMP;
        if (rc > 0)
            return DPIPE_OK;
    }
    return DPIPE_UNKNOWN;
}

static enum dpipe_kind
dpipe_classify(const struct dpipe *d, const char *rcpt, struct dpipe_rcpt *r)
{
    modmta_addr a;

    memset(r, 0, sizeof(*r));
    if (pipe_alias_note_of(rcpt, r->note))
        return d->conf.alias_commands ? DPIPE_ALIAS : DPIPE_NOT_OURS;
    if (d->conf.command == NULL ||
        modmta_addr_parse(rcpt, MODMTA_ADDR_NO_BRACKETS |
                          MODMTA_ADDR_ALLOW_NODOMAIN | MODMTA_ADDR_UTF8,
                          &a, NULL) < 0 ||
        !dpipe_domain_ours(d, a.domain))
        return DPIPE_NOT_OURS;
    snprintf(r->mailbox, sizeof(r->mailbox), "%s", a.local);
    snprintf(r->domain, sizeof(r->domain), "%s", a.domain);
    if (pipe_split_local(a.local, d->conf.recipient_delimiter, r->user,
                         sizeof(r->user), r->ext, sizeof(r->ext)) < 0)
        return DPIPE_NOT_OURS;
    if (d->system_users)
        return dpipe_system_user(r->user);
    if (d->map != NULL)
        return dpipe_map_user(d, rcpt, r);
    return DPIPE_OK;
}

/* The alias command recipients' domain is received here, never relayed:
 * so a client naming one meets dpipe_on_rcpt, not a relay rule. */
static int
dpipe_owns_domain(void *inst, const char *domain)
{
    const struct dpipe *d = inst;

    return d->conf.alias_commands &&
           modmta_domain_equal(domain, PIPE_ALIAS_DOMAIN);
}

static modmta_verdict
dpipe_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct dpipe_rcpt r;

    switch (dpipe_classify(inst, rcpt, &r)) {
    case DPIPE_OK:
        return MODMTA_ACCEPT;
    case DPIPE_ALIAS:
        /* Only alias's own rewrite, with its note, names a command. */
        if (modmta_rcpt_is_rewritten(ctx) &&
            modmta_note_get_str(ctx, r.note, NULL) == 1)
            return MODMTA_ACCEPT;
        modmta_reply(ctx, 550, "5.1.1", "<%s>: Recipient address "
                     "rejected: User unknown", rcpt);
        return MODMTA_REJECT;
    case DPIPE_TEMP:
        modmta_reply(ctx, 451, "4.3.0", "<%s>: temporary user lookup "
                     "failure", rcpt);
        return MODMTA_TEMPFAIL;
    default:
        return MODMTA_CONTINUE;
    }
}

static modmta_verdict
dpipe_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct dpipe_rcpt r;
    const char *dest;

    switch (dpipe_classify(inst, rcpt, &r)) {
    case DPIPE_OK:
        dest = DPIPE_DEST_COMMAND;
        break;
    case DPIPE_ALIAS:
        dest = DPIPE_DEST_ALIAS;
        break;
    case DPIPE_TEMP:
        modmta_reply(ctx, 451, "4.3.0", "temporary user lookup failure");
        return MODMTA_TEMPFAIL;
    default:
        return MODMTA_CONTINUE;
    }
    if (modmta_dlv_route(ctx, dest) < 0) {
        modmta_reply(ctx, 451, "4.3.5", "cannot route to the command");
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_ACCEPT;
}

/* ---- delivery ---- */

/* The command's output for the DSN: printable, lines kept. */
static void
dpipe_output_text(const struct pipe_result *res, const char *what,
                  char *buf, size_t len)
{
    size_t o, i, n = res->outlen;

    while (n > 0 && (res->output[n - 1] == '\n' || res->output[n - 1] == ' '))
        n--;
    o = (size_t)snprintf(buf, len, "%s%s", what, n > 0 ? ": " : "");
    for (i = 0; i < n && o + 4 < len; i++) {
        unsigned char c = (unsigned char)res->output[i];

        buf[o++] = (c == '\n' || (c >= 0x20 && c != 0x7f)) ? (char)c : '?';
    }
    if ((res->truncated || i < n) && o + 4 < len)
        o += (size_t)snprintf(buf + o, len - o, "...");
    buf[o < len ? o : len - 1] = '\0';
}

/* A Delivered-To naming rcpt already in the queued message's header: a
 * loop (local(8) checks the same). 1, 0, or -1 when it cannot be read.
 * The delivery context has no parsed headers: the file is read. */
static int
dpipe_loop(const char *path, const char *rcpt)
{
    static const char name[] = "Delivered-To:";
    FILE *f = fopen(path, "re");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int found = 0;

    if (f == NULL)
        return -1;
    while (!found && (n = getline(&line, &cap, f)) > 0) {
        char *v = line + sizeof(name) - 1;

        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0)
            break; /* the end of the header */
        if (strncasecmp(line, name, sizeof(name) - 1) != 0)
            continue;
        v += strspn(v, " \t");
        found = strcasecmp(v, rcpt) == 0;
    }
    free(line);
    fclose(f);
    return found;
}

struct dpipe_one {
    struct dpipe *d;
    modmta_ctx *ctx;
    size_t i;
    const char *rcpt;
    struct dpipe_rcpt r;
    const char *command;          /* an alias's, else NULL */
};

static void
dpipe_result(struct dpipe_one *o, modmta_dstatus st, int code,
             const char *esc, const char *text)
{
    modmta_dlv_result(o->ctx, o->i, st, code, esc, NULL, text);
}

/* An alias's command line is the trusted file's: sh runs it as is, as
 * local(8) does. */
static char **
dpipe_shell_argv(const char *command)
{
    char **argv = calloc(4, sizeof(*argv));

    if (argv == NULL)
        return NULL;
    argv[0] = strdup("/bin/sh");
    argv[1] = strdup("-c");
    argv[2] = strdup(command);
    if (argv[0] == NULL || argv[1] == NULL || argv[2] == NULL) {
        pipe_strv_free(argv);
        return NULL;
    }
    return argv;
}

/* argv, environment and input prefix; 0 or -1 (out of memory). */
static int
dpipe_prepare(struct dpipe_one *o, char ***argv_r, char ***envp_r,
              char **prefix_r)
{
    const struct dpipe_account *a = &o->d->acct;
    const char *orig = modmta_dlv_rcpt_original(o->ctx, o->i);
    const char *sender = modmta_sender(o->ctx);
    char size[32];
    struct pipe_vars v = {
        .sender = sender != NULL ? sender : "",
        .recipient = o->rcpt,
        .original_recipient = orig != NULL ? orig : o->rcpt,
        .mailbox = o->r.mailbox, .user = o->r.user,
        .extension = o->r.ext, .domain = o->r.domain,
        .nexthop = o->r.domain,
        .queue_id = modmta_queue_id(o->ctx) ? modmta_queue_id(o->ctx) : "",
        .size = size, .logname = a->name, .home = a->home,
        .shell = a->shell,
    };
    size_t plen;

    snprintf(size, sizeof(size), "%lld",
             (long long)modmta_message_size(o->ctx));
    *argv_r = o->command != NULL ? dpipe_shell_argv(o->command)
                                 : pipe_argv_new(o->d->conf.command, &v);
    *envp_r = pipe_env_new(&v);
    plen = strlen(v.sender) + strlen(o->rcpt) + 64;
    *prefix_r = malloc(plen);
    if (*argv_r == NULL || *envp_r == NULL || *prefix_r == NULL)
        return -1;
    if (o->d->conf.headers)
        snprintf(*prefix_r, plen, "Return-Path: <%s>\nDelivered-To: %s\n",
                 v.sender, o->rcpt);
    else
        (*prefix_r)[0] = '\0';
    return 0;
}

static void
dpipe_run_one(struct dpipe_one *o)
{
    const struct dpipe_account *a = &o->d->acct;
    struct pipe_result *res = calloc(1, sizeof(*res));
    struct pipe_outcome out;
    char **argv = NULL, **envp = NULL, *prefix = NULL;
    char text[1024];
    struct pipe_job j;
    int fd = -1;

    if (res == NULL || dpipe_prepare(o, &argv, &envp, &prefix) < 0) {
        dpipe_result(o, MODMTA_DEFERRED, 451, "4.3.0", "out of memory");
        goto done;
    }
    fd = open(modmta_message_path(o->ctx), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        dpipe_result(o, MODMTA_DEFERRED, 451, "4.3.0",
                     "cannot read the queued message");
        goto done;
    }
    memset(&j, 0, sizeof(j));
    j.argv = argv;
    j.envp = envp;
    j.switch_user = a->switch_user;
    j.uid = a->uid;
    j.gid = a->gid;
    j.groups = a->groups;
    j.ngroups = a->ngroups;
    j.cwd = a->home;
    j.input_fd = fd;
    j.prefix = prefix;
    j.time_limit_ms = o->d->conf.time_limit * 1000;
    if (pipe_run(&j, res) < 0) {
        snprintf(text, sizeof(text), "cannot run %s: %s", argv[0],
                 strerror(res->error));
        dpipe_result(o, MODMTA_DEFERRED, 451, "4.3.0", text);
        goto done;
    }
    if (res->timed_out) {
        snprintf(out.what, sizeof(out.what), "command time limit exceeded "
                 "(%llds): killed", o->d->conf.time_limit);
        out.status = MODMTA_DEFERRED;
        out.code = 451;
        out.esc = "4.3.0";
    } else {
        pipe_status_map(res->ws, &out);
    }
    dpipe_output_text(res, out.what, text, sizeof(text));
    modmta_log(o->ctx, MODMTA_LOG_INFO, "command=%s user=%s status=%s",
               argv[0], a->name, out.what);
    dpipe_result(o, out.status, out.code, out.esc, text);
done:
    if (fd >= 0)
        close(fd);
    pipe_strv_free(argv);
    pipe_strv_free(envp);
    free(prefix);
    free(res);
}

static void
dpipe_deliver_one(struct dpipe *d, modmta_ctx *ctx, size_t i)
{
    struct dpipe_one o = { .d = d, .ctx = ctx, .i = i,
                           .rcpt = modmta_dlv_rcpt_at(ctx, i) };
    enum dpipe_kind k = dpipe_classify(d, o.rcpt, &o.r);
    char text[128];

    if (k == DPIPE_ALIAS &&
        modmta_note_get_str(ctx, o.r.note, &o.command) != 1) {
        dpipe_result(&o, MODMTA_FAILED, 550, "5.1.1",
                     "no such alias command");
        return;
    }
    if (k != DPIPE_ALIAS && k != DPIPE_OK) {
        dpipe_result(&o, MODMTA_DEFERRED, 451, "4.3.0",
                     "recipient no longer handled by this command");
        return;
    }
    if (d->conf.size_limit > 0 &&
        modmta_message_size(ctx) > (off_t)d->conf.size_limit) {
        snprintf(text, sizeof(text), "message too large for the command "
                 "(limit %lld octets)", d->conf.size_limit);
        dpipe_result(&o, MODMTA_FAILED, 552, "5.2.3", text);
        return;
    }
    switch (dpipe_loop(modmta_message_path(ctx), o.rcpt)) {
    case 0:
        break;
    case 1:
        dpipe_result(&o, MODMTA_FAILED, 554, "5.4.6",
                     "mail forwarding loop (Delivered-To)");
        return;
    default:
        dpipe_result(&o, MODMTA_DEFERRED, 451, "4.3.0",
                     "cannot read the queued message");
        return;
    }
    dpipe_run_one(&o);
}

static void
dpipe_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    size_t i, n = modmta_dlv_rcpt_count(ctx);

    (void)dest;
    for (i = 0; i < n; i++)
        dpipe_deliver_one(inst, ctx, i);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "deliver_pipe",
    .version = "1.0.0",
    .create = dpipe_create,
    .destroy = dpipe_destroy,
    .on_rcpt = dpipe_on_rcpt,
    .owns_domain = dpipe_owns_domain,
    .route = dpipe_route,
    .deliver_msg = dpipe_deliver_msg,
};
