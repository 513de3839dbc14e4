/*
 * deliver_pipe: hands a message to a command — procmail, a ticket
 * system, a list manager — as Postfix's pipe(8) and local(8)'s
 * mailbox_command do: one run per recipient, as a configured account
 * (never root), argv from a template without a shell, Postfix's
 * environment, a time limit, a size limit, the output in the DSN and the
 * exit status read per sysexits.h. It also runs alias's "|command"
 * targets from a trusted aliases file (pipe_alias.h). This file: the
 * configuration and the hooks. See README.md.
 */
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/modmta.h>

#include "deliver_pipe.h"
#include "pipe_alias.h"
#include "pipe_argv.h"

static const modmta_option dpipe_opts[] = {
    MODMTA_OPTION_STRLIST("command", struct dpipe_conf, command, 0),
    MODMTA_OPTION_STRING("user", struct dpipe_conf, user, 0),
    MODMTA_OPTION_STRLIST("domains", struct dpipe_conf, domains, 0),
    MODMTA_OPTION_JSON("users", struct dpipe_conf, users, 0),
    MODMTA_OPTION_STRING("recipient_delimiter", struct dpipe_conf,
                         recipient_delimiter, 0),
    MODMTA_OPTION_SECONDS("time_limit", struct dpipe_conf, time_limit, 0, 1,
                          DPIPE_TIME_LIMIT_MAX),
    MODMTA_OPTION_SIZE("size_limit", struct dpipe_conf, size_limit, 0, 0,
                       LLONG_MAX),
    MODMTA_OPTION_BOOL("headers", struct dpipe_conf, headers, 0),
    MODMTA_OPTION_BOOL("from_line", struct dpipe_conf, from_line, 0),
    MODMTA_OPTION_BOOL("alias_commands", struct dpipe_conf, alias_commands,
                       0),
    MODMTA_OPTION_BOOL("allow_daemon_user", struct dpipe_conf,
                       allow_daemon_user, 0),
    MODMTA_OPTION_END
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
    modmta_conf_free_options(dpipe_opts, &d->conf);
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
 * itself (privilege model: docs/architecture.md, "Start-up order"), and
 * only when the administrator says so: a command running as the daemon
 * can read and change its queue and use its control socket (Postfix's
 * pipe(8) refuses mail_owner for the same reason). */
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
    if (me != 0 && !d->conf.allow_daemon_user)
        return dpipe_err(d->host, err_r, "user", "commands would run as "
                         "the daemon's own user \"%s\" (uid %lu), which "
                         "owns the queue and the control socket: run the "
                         "daemon as root (run_as_root) and name an "
                         "unprivileged account, or set \"allow_daemon_user\""
                         ": true to accept that risk", a->name,
                         (unsigned long)me);
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
dpipe_conf_delimiter(struct dpipe *d, modmta_err *err_r)
{
    const char *rd = d->conf.recipient_delimiter;

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
    if (modmta_conf_parse_options(conf, host, dpipe_opts, &d->conf,
                                  err_r) < 0 ||
        dpipe_conf_command(d, err_r) < 0 ||
        dpipe_conf_account(d, err_r) < 0 ||
        dpipe_conf_users(d, err_r) < 0 ||
        dpipe_conf_domains(d, err_r) < 0 ||
        dpipe_conf_delimiter(d, err_r) < 0) {
        dpipe_destroy(d);
        return NULL;
    }
    return d;
}

/* ---- hooks ---- */

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
