/*
 * modmta: start-up, the privilege drop, signals, reload and shutdown.
 *
 * Order matters: load the config as the invoking user, bind the
 * listeners (root may be needed), drop privileges, and only then create
 * module instances, open the queue and accept clients — so create() runs
 * unprivileged at start exactly as at reload, and no client byte is read
 * with privileges.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modmta/log.h>

#include "conn_priv.h"
#include "log_priv.h"
#include "cluster.h"
#include "config.h"
#include "control.h"
#include "dispatch.h"
#include "generation.h"
#include "listener.h"
#include "modload.h"
#include "pickup.h"
#include "privs.h"
#include "queue.h"
#include "scheduler.h"
#include "smtp_session.h"
#include "submit.h"

#define SHUTDOWN_GRACE 10 /* seconds for sessions in flight to finish */

struct daemon {
    const char *config_path;     /* NULL: the embedded default */
    int is_root;
    struct listener_set *listeners;
    queue *q;
    scheduler *sched;
    dispatch *disp;              /* outbound deliveries */
    control *ctl;
    submit *sub;                 /* the local submission socket */
    pickup *pick;                /* the maildrop's reader */
    cluster *cl;                 /* reload --cluster (set under reload_lock) */
    pthread_mutex_t reload_lock; /* one reload at a time */
};

/* Read by every session between commands (conn interrupt flag). */
static volatile sig_atomic_t shutting_down;

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: modmta [-c FILE] [-D]   run (foreground unless -D)\n"
            "       modmta --check-config [-c FILE]\n"
            "       modmta --print-default-config\n"
            "       modmta --version\n"
            "Without -c, the embedded default serves SMTP on "
            "127.0.0.1:2525 with spool and mail under ./var.\n");
}

static void
print_errors(const char *path, const struct config_errors *errs)
{
    size_t i;

    /* Messages that name their file (syntax errors) need no prefix. */
    for (i = 0; i < errs->n; i++)
        if (errs->msgs[i][0] == '$')
            fprintf(stderr, "modmta: %s: %s\n", path ? path : "(default)",
                    errs->msgs[i]);
        else
            fprintf(stderr, "modmta: %s\n", errs->msgs[i]);
}

static char *
join_errors(const struct config_errors *errs)
{
    size_t i, len = 1;
    char *s;

    for (i = 0; i < errs->n; i++)
        len += strlen(errs->msgs[i]) + 1;
    s = malloc(len);
    if (s == NULL)
        return NULL;
    s[0] = '\0';
    for (i = 0; i < errs->n; i++) {
        strcat(s, errs->msgs[i]);
        strcat(s, "\n");
    }
    return s;
}

/* What a reload may not change: these are bound to the running process. */
static void
check_restart_only(const struct daemon *d, const struct config *old,
                   const struct config *cfg, struct config_errors *errs)
{
    if (!listeners_match(d->listeners, cfg))
        config_errors_add(errs, "$.listen", "listener names or addresses "
                          "changed: that needs a restart");
    if (strcmp(old->spool, cfg->spool) != 0)
        config_errors_add(errs, "$.spool", "changed: that needs a restart");
    if (strcmp(old->local.socket, cfg->local.socket) != 0 ||
        strcmp(old->local.maildrop, cfg->local.maildrop) != 0)
        config_errors_add(errs, "$.local_submission",
                          "socket or maildrop changed: that needs a restart");
    if (strcmp(old->control_socket, cfg->control_socket) != 0)
        config_errors_add(errs, "$.control_socket",
                          "changed: that needs a restart");
    if ((old->user == NULL) != (cfg->user == NULL) ||
        (old->user != NULL && strcmp(old->user, cfg->user) != 0))
        config_errors_add(errs, "$.user", "changed: that needs a restart");
}

static int
daemon_reload(void *arg, char **errors_r)
{
    struct daemon *d = arg;
    struct config_errors errs = {0};
    struct config *cfg;
    generation *old, *g = NULL;

    pthread_mutex_lock(&d->reload_lock);
    cfg = config_load(d->config_path, &errs);
    old = generation_acquire();
    if (cfg != NULL)
        check_restart_only(d, old->cfg, cfg, &errs);
    if (cfg != NULL && errs.n == 0)
        g = generation_from_config(cfg, d->is_root, &errs);
    else
        config_free(cfg);
    generation_release(old);
    if (g == NULL) {
        size_t i;
        for (i = 0; i < errs.n; i++)
            modmta_logf(MODMTA_LOG_ERR, "reload failed, old configuration "
                        "kept: %s", errs.msgs[i]);
        if (errors_r != NULL)
            *errors_r = join_errors(&errs);
        config_errors_free(&errs);
        pthread_mutex_unlock(&d->reload_lock);
        return MODMTA_E_CONFIG;
    }
    modmta_log_setup(g->cfg->log_level, g->cfg->log_syslog,
                     g->cfg->log_facility);
    cluster_configure(d->cl, g->cfg);
    generation_install(g);
    pthread_mutex_unlock(&d->reload_lock);
    return 0;
}

static void
daemon_stats(void *arg, json_t *obj)
{
    struct daemon *d = arg;

    struct dispatch_stats ds;

    json_object_set_new(obj, "sessions",
                        json_integer((json_int_t)listeners_active(
                            d->listeners)));
    if (d->disp == NULL)
        return;
    dispatch_get_stats(d->disp, &ds);
    json_object_set_new(obj, "outbound", json_pack(
        "{s:I, s:I, s:I, s:I, s:I}",
        "threads", (json_int_t)ds.threads, "running", (json_int_t)ds.running,
        "waiting", (json_int_t)ds.waiting,
        "destinations", (json_int_t)ds.destinations,
        "down", (json_int_t)ds.down));
}

static void
daemon_session(void *arg, int fd, const struct sockaddr *peer,
               socklen_t peerlen, const char *listener_name,
               const char *session_id, void *live)
{
    struct daemon *d = arg;
    struct smtp_session_args a;
    generation *g = generation_acquire();
    size_t i;

    memset(&a, 0, sizeof(a));
    a.gen = g;
    a.fd = fd;
    a.closing = listener_session_closing;
    a.closing_arg = live;
    if (peerlen <= sizeof(a.peer)) {
        memcpy(&a.peer, peer, peerlen);
        a.peerlen = peerlen;
    }
    a.locallen = sizeof(a.local);
    if (getsockname(fd, (struct sockaddr *)&a.local, &a.locallen) < 0)
        a.locallen = 0;
    a.listener = NULL;
    for (i = 0; g != NULL && i < g->cfg->nlisteners; i++)
        if (strcmp(g->cfg->listeners[i].name, listener_name) == 0)
            a.listener = &g->cfg->listeners[i];
    if (a.listener == NULL) {
        /* Cannot happen: a reload never changes the listener set. */
        generation_release(g);
        listener_session_closing(live);
        close(fd);
        return;
    }
    a.queue = d->q;
    a.sched = d->sched;
    a.shutting_down = &shutting_down;
    a.session_id = session_id;
    a.greet_pause_ms = (int)g->cfg->limits.greet_pause;
    smtp_session_run(&a);
}

/* The soft limit the daemon was started with, for its children. */
static struct rlimit daemon_nofile_start;

/* In a forked child (deliver_pipe's commands, any module's): the
 * limit the daemon was given, not its raised one (programs using
 * select() break with descriptors past FD_SETSIZE). */
static void
daemon_restore_nofile(void)
{
    setrlimit(RLIMIT_NOFILE, &daemon_nofile_start);
}

/* Each session holds a descriptor: take the whole of the hard limit
 * (the listener keeps a reserve of it, docs/architecture.md). Called
 * after daemonize: its fork keeps the raised limit. */
static void
daemon_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        daemon_nofile_start = rl;
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
            modmta_logf(MODMTA_LOG_WARN, "cannot raise the open files "
                        "limit: %s", strerror(errno));
        else
            pthread_atfork(NULL, NULL, daemon_restore_nofile);
    }
}

/* A local submission (submit.c, pickup.c): a session of the first
 * listener speaking SMTP, marked local with the caller's uid. */
static void
daemon_local_session(void *arg, int fd, uid_t uid, const char *user,
                     const char *session_id)
{
    struct daemon *d = arg;
    struct smtp_session_args a;
    generation *g = generation_acquire();
    size_t i;

    memset(&a, 0, sizeof(a));
    a.gen = g;
    a.fd = fd;
    a.peer.ss_family = AF_UNIX;
    a.peerlen = sizeof(sa_family_t);
    for (i = 0; g != NULL && i < g->cfg->nlisteners && a.listener == NULL;
         i++)
        if (strcmp(g->cfg->listeners[i].protocol, "smtp") == 0)
            a.listener = &g->cfg->listeners[i];
    if (a.listener == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "%s: local submission refused: no "
                    "listener speaks smtp", session_id);
        generation_release(g);
        close(fd);
        return;
    }
    a.queue = d->q;
    a.sched = d->sched;
    a.shutting_down = &shutting_down;
    a.session_id = session_id;
    a.no_rdns = 1;
    a.local_user = user;
    a.local_uid = uid;
    smtp_session_run(&a);
}

/* Who the daemon becomes: "user", or nobody for the embedded default;
 * root without "user" only with "run_as_root". NULL: stay as is. */
static const char *
daemon_target_user(const struct daemon *d, const struct config *cfg,
                   int *fatal_r)
{
    *fatal_r = 0;
    if (!d->is_root) {
        if (cfg->user != NULL)
            modmta_logf(MODMTA_LOG_NOTICE, "not started as root: \"user\": "
                        "\"%s\" ignored, running as uid %ld", cfg->user,
                        (long)getuid());
        return NULL;
    }
    if (cfg->user != NULL)
        return cfg->user;
    if (d->config_path == NULL)
        return "nobody";
    if (cfg->run_as_root) {
        modmta_logf(MODMTA_LOG_WARN, "running as root (\"run_as_root\": "
                    "true): every module runs with full privileges");
        return NULL;
    }
    fprintf(stderr, "modmta: %s: refusing to run as root without \"user\": "
            "set \"user\" to an unprivileged account (e.g. \"modmta\"), or "
            "\"run_as_root\": true if you really mean it\n", cfg->path);
    *fatal_r = 1;
    return NULL;
}

/* The spool (and, for the embedded default, ./var) belong to the user the
 * daemon becomes. */
static int
daemon_prepare_dirs(const struct daemon *d, const struct config *cfg,
                    const char *user)
{
    uid_t uid = geteuid();
    gid_t gid = getegid();
    modmta_err err;

    if (user != NULL && privs_lookup(user, &uid, &gid) < 0) {
        fprintf(stderr, "modmta: %s: $.user: no such user \"%s\"\n",
                cfg->path, user);
        return -1;
    }
    if (d->config_path == NULL && d->is_root &&
        (privs_prepare_dir("./var", 0755, uid, gid, &err) < 0 ||
         privs_prepare_dir("./var/mail", 0755, uid, gid, &err) < 0)) {
        fprintf(stderr, "modmta: %s\n", err.msg);
        return -1;
    }
    if (privs_prepare_dir(cfg->spool, 0700, uid, gid, &err) < 0) {
        fprintf(stderr, "modmta: %s: $.spool: %s\n", cfg->path, err.msg);
        return -1;
    }
    return 0;
}

static int
daemonize(const char *pid_file)
{
    pid_t pid = fork();
    int fd;

    if (pid < 0)
        return -1;
    if (pid > 0)
        _exit(0);
    setsid();
    fd = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (fd >= 0) {
        dup2(fd, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        if (fd > 2)
            close(fd);
    }
    if (pid_file != NULL) {
        FILE *f = fopen(pid_file, "we");
        if (f == NULL)
            return -1;
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    return 0;
}

/* The cluster control, on the current configuration. Under the reload
 * lock: a reload through the control socket (already serving) comes
 * either before, and its configuration is the one given here, or after,
 * and finds d->cl to tell. */
static int
daemon_start_cluster(struct daemon *d, const struct control_ops *ops,
                     modmta_err *err_r)
{
    generation *g;

    pthread_mutex_lock(&d->reload_lock);
    g = generation_acquire();
    d->cl = cluster_start(ops, g->cfg, err_r);
    generation_release(g);
    pthread_mutex_unlock(&d->reload_lock);
    return d->cl != NULL ? 0 : -1;
}

static int
daemon_start(struct daemon *d, struct config *cfg, int background)
{
    struct config_errors errs = {0};
    const char *user;
    generation *g;
    modmta_err err;
    struct control_ops ops = {daemon_reload, daemon_stats, d};
    int fatal;

    user = daemon_target_user(d, cfg, &fatal);
    if (fatal || daemon_prepare_dirs(d, cfg, user) < 0)
        return -1;
    d->listeners = listeners_bind(cfg, &err);
    if (d->listeners == NULL) {
        fprintf(stderr, "modmta: %s\n", err.msg);
        return -1;
    }
    if (background || cfg->daemonize) {
        /* stderr goes away: log to syslog from here on. */
        modmta_log_setup(cfg->log_level, 1, cfg->log_facility);
        if (daemonize(cfg->pid_file) < 0)
            return -1;
    }
    /* dlopen as root: the files may be out of the user's reach. */
    if (user != NULL && modload_preload(cfg, &errs) > 0) {
        print_errors(d->config_path, &errs);
        config_errors_free(&errs);
        return -1;
    }
    if (user != NULL && privs_drop(user, &err) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s: %s", err.path, err.msg);
        return -1;
    }
    g = generation_from_config(cfg, d->is_root, &errs);
    if (g == NULL) {
        print_errors(d->config_path, &errs);
        config_errors_free(&errs);
        return -1;
    }
    generation_install(g);
    d->q = queue_open(g->cfg->spool, &err);
    if (d->q == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "queue: %s", err.msg);
        return -1;
    }
    d->sched = scheduler_new(d->q, (int)g->cfg->queue.workers, &err);
    d->disp = dispatch_new((int)g->cfg->queue.outbound_workers, &err);
    if (d->sched == NULL || d->disp == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "scheduler: %s", err.msg);
        return -1;
    }
    scheduler_set_dispatch(d->sched, d->disp);
    scheduler_set_active_limit(d->sched,
                               (unsigned long)g->cfg->queue.active_limit);
    d->ctl = control_start(g->cfg->control_socket, d->q, d->sched, &ops,
                           &err);
    if (d->ctl == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "control socket: %s", err.msg);
        return -1;
    }
    d->sub = submit_start(g->cfg, d->q, daemon_local_session, d, &err);
    if (d->sub == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "local submission: %s", err.msg);
        return -1;
    }
    if (daemon_start_cluster(d, &ops, &err) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "%s", err.msg);
        return -1;
    }
    daemon_raise_nofile();
    if (scheduler_start(d->sched) < 0 ||
        listeners_start(d->listeners, daemon_session, d, &err) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "cannot start: %s", err.msg);
        return -1;
    }
    /* After the scheduler: what pickup queues is delivered at once. */
    d->pick = pickup_start(g->cfg, g->cfg->limits.message_size, d->q,
                           d->sched, daemon_local_session, d, &err);
    if (d->pick == NULL) {
        modmta_logf(MODMTA_LOG_ERR, "%s", err.msg);
        return -1;
    }
    modmta_logf(MODMTA_LOG_INFO, "started version=%s uid=%ld config=%s",
                MODMTA_VERSION, (long)getuid(), g->cfg->path);
    return 0;
}

static void
daemon_stop(struct daemon *d)
{
    unsigned long local_left;
    generation *g;

    shutting_down = 1;
    modmta_logf(MODMTA_LOG_INFO, "stopping: sessions=%lu",
                d->listeners ? listeners_active(d->listeners) : 0UL);
    if (d->listeners != NULL) {
        listeners_stop(d->listeners);
        listeners_drain(d->listeners, SHUTDOWN_GRACE);
    }
    pickup_stop(d->pick);
    local_left = submit_stop(d->sub, SHUTDOWN_GRACE);
    control_stop(d->ctl);
    /* No reload from here on; the node leaves the cluster's list. */
    cluster_stop(d->cl);
    d->cl = NULL;
    /* Message workers first (no new jobs), then the outbound threads:
     * their cut-short attempts give their messages back to the
     * scheduler. */
    if (d->sched != NULL)
        scheduler_stop(d->sched);
    if (d->disp != NULL)
        dispatch_stop(d->disp);
    if (local_left > 0 ||
        (d->listeners != NULL && listeners_active(d->listeners) > 0)) {
        /* A session thread still runs and uses all of it: leave it to
         * the exit rather than free what the thread may touch. */
        modmta_logf(MODMTA_LOG_WARN, "stopped with sessions=%lu still "
                    "running", local_left + (d->listeners != NULL
                    ? listeners_active(d->listeners) : 0));
        return;
    }
    scheduler_free(d->sched);
    queue_close(d->q);
    listeners_free(d->listeners);
    g = generation_acquire();
    if (g != NULL) {
        generation_release(g); /* ours */
        generation_release(g); /* the current one's */
    }
    /* Last: the transports' cached connections, closed with the
     * generation, still watch the dispatcher's stop flag. */
    dispatch_free(d->disp);
    modload_unload_all();
    modmta_logf(MODMTA_LOG_INFO, "stopped");
}

/* Signals are taken synchronously by the main thread only. */
static int
daemon_run_signals(struct daemon *d, const sigset_t *set)
{
    int sig;

    for (;;) {
        if (sigwait(set, &sig) != 0)
            continue;
        if (sig == SIGHUP) {
            modmta_logf(MODMTA_LOG_INFO, "reload requested (SIGHUP)");
            daemon_reload(d, NULL);
            continue;
        }
        modmta_logf(MODMTA_LOG_INFO, "signal=%s", strsignal(sig));
        daemon_stop(d);
        return 0;
    }
}

static int
check_config(const char *path, int is_root)
{
    struct config_errors errs = {0};
    generation *g = generation_build(path, is_root, &errs);

    if (g == NULL) {
        print_errors(path, &errs);
        fprintf(stderr, "modmta: %zu error%s\n", errs.n,
                errs.n == 1 ? "" : "s");
        config_errors_free(&errs);
        return 1;
    }
    generation_release(g);
    modload_unload_all();
    printf("modmta: %s: configuration OK\n", path ? path : "(default)");
    return 0;
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"print-default-config", no_argument, NULL, 'P'},
        {"daemon", no_argument, NULL, 'D'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct daemon d;
    struct config_errors errs = {0};
    struct config *cfg;
    int c, check = 0, background = 0;
    sigset_t set;

    memset(&d, 0, sizeof(d));
    pthread_mutex_init(&d.reload_lock, NULL);
    while ((c = getopt_long(argc, argv, "c:DVh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': d.config_path = optarg; break;
        case 'C': check = 1; break;
        case 'D': background = 1; break;
        case 'P': fputs(config_default_text(), stdout); return 0;
        case 'V': printf("modmta %s\n", MODMTA_VERSION); return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    d.is_root = geteuid() == 0;
    signal(SIGPIPE, SIG_IGN);
    if (check)
        return check_config(d.config_path, d.is_root);

    cfg = config_load(d.config_path, &errs);
    if (cfg == NULL) {
        print_errors(d.config_path, &errs);
        config_errors_free(&errs);
        return 1;
    }
    modmta_log_setup(cfg->log_level, cfg->log_syslog, cfg->log_facility);
    /* Every thread inherits this mask: only sigwait() sees these. */
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    umask(077);
    if (daemon_start(&d, cfg, background) < 0) {
        modmta_logf(MODMTA_LOG_ERR, "not started");
        return 1;
    }
    return daemon_run_signals(&d, &set);
}
