/*
 * modmtatest: run a config's module chain offline on one SMTP session
 * and show what each hook did (docs/sdk.md, modmtatest(8)).
 *
 * Nothing is bound and the configured spool is never written: the
 * daemon's own session code (smtp_session_run) runs on a thread, on one
 * end of a socketpair, with the chosen listener's settings, a made-up
 * client address and a spool in a temp dir that is removed at the end;
 * modmtatest_client.c is the client on the other end. No scheduler is
 * given to the session, so nothing is delivered: --route only asks the
 * deliver chain where each recipient would go (chain_route_dry).
 * Exit status: 0 the message was accepted for every recipient, 1
 * something was refused or deferred, 2 usage, config or system error.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <modmta/log.h>

#include "ctx_priv.h"
#include "deliver.h"
#include "generation.h"
#include "log_priv.h"
#include "modload.h"
#include "modmtatest.h"
#include "privs.h"
#include "smtp_data.h"
#include "smtp_session.h"

#define MT_DEFAULT_CONFIG "/etc/modmta/modmta.json"

enum {
    MT_OPT_CLIENT = 256, MT_OPT_HELO, MT_OPT_AUTH, MT_OPT_LISTENER,
    MT_OPT_RDNS, MT_OPT_ROUTE, MT_OPT_JSON,
};

static void mt_usage(FILE *f);
static void mt_errors(const char *path, struct config_errors *errs);
static int mt_options(struct mt_opts *o, int argc, char **argv);
static int mt_read_message(struct mt *t);
static int mt_generate(struct mt *t, const struct config *cfg);
static const struct config_listener *mt_listener(const struct config *cfg,
                                                 const char *name);
static int mt_peer(const char *addr, struct sockaddr_storage *ss,
                   socklen_t *len_r);
static int mt_privs(const struct config *cfg, int is_root);
static void *mt_session_main(void *arg);
static int mt_session(struct mt *t, generation *g, queue *q,
                      const struct sockaddr_storage *peer, socklen_t plen);
static int mt_collect(struct mt *t, queue *q);
static int mt_routes(struct mt *t, generation *g);
static void mt_rmtree(const char *dir);
static int mt_run(struct mt *t, generation *g,
                  const struct sockaddr_storage *peer, socklen_t plen);
static generation *mt_setup(struct mt *t, int is_root);
static int mt_find(const queue_env *env, void *arg);
static int mt_rm(const char *path, const struct stat *st, int flag,
                 struct FTW *f);

static void
mt_usage(FILE *f)
{
    fprintf(f,
        "usage: modmtatest [-c FILE] -f SENDER -r RCPT [-r RCPT ...]\n"
        "                  [--client ADDR] [--helo NAME] [--auth USER]\n"
        "                  [--listener NAME] [-m FILE] [--rdns] [--route]\n"
        "                  [--json]\n"
        "\n"
        "Run the config's module chain on one SMTP session, offline, and\n"
        "print each hook's verdict, reply and actions.\n"
        "\n"
        "  -c, --config FILE   the configuration (default "
        MT_DEFAULT_CONFIG ")\n"
        "  -f, --from SENDER   the envelope sender (\"\" for <>)\n"
        "  -r, --rcpt RCPT     a recipient (repeat for more)\n"
        "      --client ADDR   the client's IP address (default "
        "127.0.0.1)\n"
        "      --helo NAME     its EHLO name (default: [ADDR])\n"
        "      --auth USER     the client counts as authenticated as USER\n"
        "      --listener NAME the SMTP listener it connects to (default:\n"
        "                      the first one without implicit TLS)\n"
        "  -m, --message FILE  the message (\"-\": standard input; "
        "default:\n"
        "                      a short generated one)\n"
        "      --rdns          look up the client's name (default: "
        "\"unknown\")\n"
        "      --route         show where each recipient would be "
        "delivered\n"
        "      --json          print one JSON object instead of text\n"
        "  -V, --version       print the version and exit\n"
        "  -h, --help          print this help and exit\n"
        "\n"
        "Exit status: 0 accepted for every recipient, 1 refused or "
        "deferred,\n"
        "2 usage, configuration or system error.\n");
}

/* Config errors as modmta --check-config prints them; errs emptied. */
static void
mt_errors(const char *path, struct config_errors *errs)
{
    /* messages that name their file (syntax errors) need no prefix */
    for (size_t i = 0; i < errs->n; i++)
        if (errs->msgs[i][0] == '$')
            fprintf(stderr, "modmtatest: %s: %s\n", path, errs->msgs[i]);
        else
            fprintf(stderr, "modmtatest: %s\n", errs->msgs[i]);
    config_errors_free(errs);
}

static int
mt_options(struct mt_opts *o, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"from", required_argument, NULL, 'f'},
        {"rcpt", required_argument, NULL, 'r'},
        {"message", required_argument, NULL, 'm'},
        {"client", required_argument, NULL, MT_OPT_CLIENT},
        {"helo", required_argument, NULL, MT_OPT_HELO},
        {"auth", required_argument, NULL, MT_OPT_AUTH},
        {"listener", required_argument, NULL, MT_OPT_LISTENER},
        {"rdns", no_argument, NULL, MT_OPT_RDNS},
        {"route", no_argument, NULL, MT_OPT_ROUTE},
        {"json", no_argument, NULL, MT_OPT_JSON},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    o->config = MT_DEFAULT_CONFIG;
    o->client = "127.0.0.1";
    if ((o->rcpts = calloc((size_t)argc, sizeof(*o->rcpts))) == NULL)
        return -1;
    while ((c = getopt_long(argc, argv, "c:f:r:m:Vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': o->config = optarg; break;
        case 'f': o->sender = optarg; break;
        case 'r': o->rcpts[o->nrcpts++] = optarg; break;
        case 'm': o->message = optarg; break;
        case MT_OPT_CLIENT: o->client = optarg; break;
        case MT_OPT_HELO: o->helo = optarg; break;
        case MT_OPT_AUTH: o->auth = optarg; break;
        case MT_OPT_LISTENER: o->listener = optarg; break;
        case MT_OPT_RDNS: o->rdns = 1; break;
        case MT_OPT_ROUTE: o->route = 1; break;
        case MT_OPT_JSON: o->json = 1; break;
        case 'V': printf("modmtatest %s\n", MODMTA_VERSION); exit(0);
        case 'h': mt_usage(stdout); exit(0);
        default: mt_usage(stderr); return -1;
        }
    }
    if (optind != argc)
        fprintf(stderr, "modmtatest: unexpected argument \"%s\"\n",
                argv[optind]);
    else if (o->sender == NULL)
        fprintf(stderr, "modmtatest: -f SENDER is required (-f '' for "
                "<>)\n");
    else if (o->nrcpts == 0)
        fprintf(stderr, "modmtatest: at least one -r RCPT is required\n");
    if (optind != argc || o->sender == NULL || o->nrcpts == 0) {
        mt_usage(stderr);
        return -1;
    }
    if (o->auth != NULL && *o->auth == '\0') {
        fprintf(stderr, "modmtatest: --auth: empty user name\n");
        return -1;
    }
    return 0;
}

/* -m FILE or -m -: the whole of it into t->msg. */
static int
mt_read_message(struct mt *t)
{
    const char *path = t->o.message;
    /* not blocking in open(): a FIFO is refused below, not waited for */
    int fd = strcmp(path, "-") == 0 ? 0 : open(path, O_RDONLY | O_NONBLOCK |
                                                   O_NOCTTY | O_CLOEXEC);
    size_t cap = 0;
    struct stat st;
    ssize_t n = 0;
    char *nb;

    if (fd < 0) {
        fprintf(stderr, "modmtatest: %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fd != 0 && (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))) {
        fprintf(stderr, "modmtatest: %s: not a regular file\n", path);
        close(fd);
        return -1;
    }
    do {
        if (t->msglen == cap) {
            cap = cap == 0 ? 65536 : cap * 2;
            if ((nb = realloc(t->msg, cap)) == NULL) {
                errno = ENOMEM;
                n = -1;
                break;
            }
            t->msg = nb;
        }
        n = read(fd, t->msg + t->msglen, cap - t->msglen);
        if (n > 0)
            t->msglen += (size_t)n;
    } while (n > 0 || (n < 0 && errno == EINTR));
    if (n < 0)
        fprintf(stderr, "modmtatest: %s: %s\n", path, strerror(errno));
    if (fd != 0)
        close(fd);
    return n == 0 ? 0 : -1;
}

/* No -m: a short message with the envelope's addresses. */
static int
mt_generate(struct mt *t, const struct config *cfg)
{
    char date[64], *to = NULL, *n;
    int null = *t->o.sender == '\0', len;
    time_t now = time(NULL);
    struct tm tm;

    for (size_t i = 0; i < t->o.nrcpts; i++) {
        n = NULL;
        if (asprintf(&n, "%s%s<%s>", to != NULL ? to : "",
                     i > 0 ? ", " : "", t->o.rcpts[i]) < 0)
            n = NULL;
        free(to);
        if ((to = n) == NULL)
            break;
    }
    localtime_r(&now, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S %z", &tm);
    len = to == NULL ? -1 :
          asprintf(&t->msg, "From: %s%s%s\r\nTo: %s\r\n"
                   "Subject: modmtatest\r\nDate: %s\r\n"
                   "Message-ID: <%lld.%ld@%s>\r\n\r\n"
                   "A message made by modmtatest.\r\n",
                   null ? "MAILER-DAEMON@" : "<",
                   null ? cfg->hostname : t->o.sender, null ? "" : ">",
                   to, date, (long long)now, (long)getpid(),
                   cfg->hostname);
    free(to);
    if (len < 0) {
        t->msg = NULL;
        fprintf(stderr, "modmtatest: out of memory\n");
        return -1;
    }
    t->msglen = (size_t)len;
    return 0;
}

/* --listener NAME, or the first SMTP listener a plain client can use. */
static const struct config_listener *
mt_listener(const struct config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nlisteners; i++) {
        const struct config_listener *l = &cfg->listeners[i];

        if (name != NULL && strcmp(l->name, name) != 0)
            continue;
        if (strcmp(l->protocol, "smtp") == 0 && l->tls != TLS_IMPLICIT)
            return l;
        if (name != NULL) {
            fprintf(stderr, "modmtatest: listener \"%s\": %s\n", name,
                    l->tls == TLS_IMPLICIT
                        ? "implicit TLS (modmtatest speaks plain SMTP)"
                        : "not an SMTP listener");
            return NULL;
        }
    }
    if (name != NULL)
        fprintf(stderr, "modmtatest: %s: no listener \"%s\"\n", cfg->path,
                name);
    else
        fprintf(stderr, "modmtatest: %s: no SMTP listener without "
                "implicit TLS\n", cfg->path);
    return NULL;
}

static int
mt_peer(const char *addr, struct sockaddr_storage *ss, socklen_t *len_r)
{
    struct addrinfo hints, *res;
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_flags = AI_NUMERICHOST;
    hints.ai_socktype = SOCK_STREAM;
    if ((rc = getaddrinfo(addr, NULL, &hints, &res)) != 0) {
        fprintf(stderr, "modmtatest: --client %s: not an IP address\n",
                addr);
        return -1;
    }
    memcpy(ss, res->ai_addr, res->ai_addrlen);
    *len_r = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* As the daemon: started as root with "user", load the modules, then
 * become that user before any module instance exists. */
static int
mt_privs(const struct config *cfg, int is_root)
{
    struct config_errors errs = {0};
    modmta_err err;

    if (!is_root || cfg->user == NULL)
        return 0;
    if (modload_preload(cfg, &errs) > 0) {
        mt_errors(cfg->path, &errs);
        return -1;
    }
    if (privs_drop(cfg->user, &err) < 0) {
        fprintf(stderr, "modmtatest: %s: %s: %s\n", cfg->path, err.path,
                err.msg);
        return -1;
    }
    return 0;
}

static void *
mt_session_main(void *arg)
{
    smtp_session_run(arg);
    return NULL;
}

/* The session on its thread, the dialogue here. */
static int
mt_session(struct mt *t, generation *g, queue *q,
           const struct sockaddr_storage *peer, socklen_t plen)
{
    struct smtp_session_args a;
    pthread_t th;
    int sv[2];

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        fprintf(stderr, "modmtatest: socketpair: %s\n", strerror(errno));
        return -1;
    }
    memset(&a, 0, sizeof(a));
    a.gen = g;
    a.fd = sv[0];
    memcpy(&a.peer, peer, plen);
    a.peerlen = plen;
    memcpy(&a.local, &t->listener->sa, t->listener->salen);
    a.locallen = t->listener->salen;
    a.listener = t->listener;
    a.queue = q;
    a.session_id = "modmtatest";
    a.greet_pause_ms = (int)g->cfg->limits.greet_pause;
    a.no_rdns = !t->o.rdns;
    a.auth_as = t->o.auth;
    generation_ref(g);          /* the session's, released by it */
    if (mt_step_new(t, NULL) < 0 ||
        pthread_create(&th, NULL, mt_session_main, &a) != 0) {
        fprintf(stderr, "modmtatest: cannot start the session\n");
        generation_release(g);
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    mt_dialogue(t, sv[1]);
    close(sv[1]);               /* a session still reading sees the end */
    pthread_join(th, NULL);
    return 0;
}

static int
mt_find(const queue_env *env, void *arg)
{
    snprintf(arg, QUEUE_ID_MAX, "%s", env->id);
    return 1;
}

/* The message the session queued, if any: its envelope and the header
 * block as stored. */
static int
mt_collect(struct mt *t, queue *q)
{
    /* the session keeps header blocks to this size (our Received: on
     * top): what is past it is body to the hooks */
    size_t cap = SMTP_DATA_HDR_MAX + 4096, len = 0;
    char id[QUEUE_ID_MAX] = "", *end;
    ssize_t n;
    int fd, rc;

    if (queue_foreach(q, mt_find, id) < 0 || id[0] == '\0')
        return 0;
    if ((rc = queue_load(q, id, &t->env)) < 0 ||
        (rc = queue_content_path(q, id, t->path, sizeof(t->path))) < 0) {
        fprintf(stderr, "modmtatest: %s: %s\n", id, modmta_strerror(rc));
        return -1;
    }
    if ((t->headers = malloc(cap + 1)) == NULL ||
        (fd = open(t->path, O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "modmtatest: %s: %s\n", t->path, strerror(errno));
        return -1;
    }
    while (len < cap && (n = read(fd, t->headers + len, cap - len)) > 0)
        len += (size_t)n;
    close(fd);
    t->headers[len] = '\0';
    /* the session refuses NUL octets: the block is one string */
    if ((end = strstr(t->headers, "\r\n\r\n")) != NULL)
        end[2] = '\0';
    return 0;
}

/* --route: each recipient through the deliver chain, nothing delivered;
 * the route() calls are traced into a step of their own. */
static int
mt_routes(struct mt *t, generation *g)
{
    const queue_env *env = t->env;

    t->routes = calloc(env->nrcpts + 1, sizeof(*t->routes));
    if (t->routes == NULL)
        return -1;
    for (size_t i = 0; i < env->nrcpts; i++) {
        const queue_rcpt *r = &env->rcpts[i];
        struct mt_route *rt = &t->routes[i];
        char cmd[600];
        modmta_ctx *ctx;

        snprintf(cmd, sizeof(cmd), "route <%s>", r->addr);
        if (mt_step_new(t, cmd) < 0 ||
            (ctx = deliver_ctx_for(g, env, t->path,
                                   deliver_rcpt_sender(env, r))) == NULL)
            return -1;
        modmta_ctx_set_dlv_orcpt(ctx, r->orcpt);
        chain_route_dry(g->chain, ctx, r->addr, &rt->r);
        rt->done = 1;
        rt->instance = rt->r.claimed || rt->r.offered
                           ? chain_instance_at(g->chain, rt->r.inst)
                           : ctx->decided_by;
        rt->dest = rt->r.dest != NULL ? strdup(rt->r.dest) : NULL;
        rt->r.dest = NULL;      /* lived in the ctx */
        rt->code = ctx->reply_code;
        snprintf(rt->esc, sizeof(rt->esc), "%s", ctx->reply_esc);
        rt->text = ctx->reply_code != 0 ? strdup(ctx->reply_text) : NULL;
        modmta_ctx_free(ctx);
    }
    return 0;
}

static int
mt_rm(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    if (remove(path) < 0)
        fprintf(stderr, "modmtatest: cannot remove %s: %s\n", path,
                strerror(errno));
    return 0;
}

/* The temp spool and everything in it (nothing outside: no symlink is
 * followed). */
static void
mt_rmtree(const char *dir)
{
    nftw(dir, mt_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* The session in a temp spool, what it left, the routes, the report. */
static int
mt_run(struct mt *t, generation *g, const struct sockaddr_storage *peer,
       socklen_t plen)
{
    const char *tmpdir = getenv("TMPDIR");
    char spool[4096];
    modmta_err err;
    queue *q;
    int rc = MT_EXIT_USAGE;

    snprintf(spool, sizeof(spool), "%s/modmtatest.XXXXXX",
             tmpdir != NULL && *tmpdir != '\0' ? tmpdir : "/tmp");
    if (mkdtemp(spool) == NULL) {
        fprintf(stderr, "modmtatest: %s: %s\n", spool, strerror(errno));
        return MT_EXIT_USAGE;
    }
    if ((q = queue_open(spool, &err)) == NULL) {
        fprintf(stderr, "modmtatest: temp spool: %s\n", err.msg);
    } else if (mt_session(t, g, q, peer, plen) == 0 &&
               mt_collect(t, q) == 0 &&
               (!t->o.route || t->env == NULL || mt_routes(t, g) == 0)) {
        rc = mt_report(t, g->cfg);
    } else {
        fprintf(stderr, "modmtatest: the run failed\n");
    }
    if (q != NULL)
        queue_close(q);
    mt_rmtree(spool);
    return rc;
}

/* The config, the message, the privileges, the generation; NULL after
 * saying why. */
static generation *
mt_setup(struct mt *t, int is_root)
{
    struct config_errors errs = {0};
    struct config *cfg;
    generation *g;

    if ((cfg = config_load(t->o.config, &errs)) == NULL) {
        mt_errors(t->o.config, &errs);
        return NULL;
    }
    modmta_log_setup(cfg->log_level, 0, NULL);
    if ((t->listener = mt_listener(cfg, t->o.listener)) == NULL ||
        (t->o.message != NULL ? mt_read_message(t) : mt_generate(t, cfg))
            < 0 ||
        mt_privs(cfg, is_root) < 0) {
        config_free(cfg);
        return NULL;
    }
    if ((g = generation_from_config(cfg, is_root, &errs)) == NULL)
        mt_errors(t->o.config, &errs);
    return g;
}

int
main(int argc, char **argv)
{
    struct sockaddr_storage peer;
    socklen_t plen;
    generation *g = NULL;
    struct mt t;
    int rc = MT_EXIT_USAGE;
    char helo[80];

    memset(&t, 0, sizeof(t));
    pthread_mutex_init(&t.lock, NULL);
    signal(SIGPIPE, SIG_IGN);
    umask(077);
    if (mt_options(&t.o, argc, argv) == 0 &&
        mt_peer(t.o.client, &peer, &plen) == 0) {
        if (t.o.helo == NULL) {
            snprintf(helo, sizeof(helo), peer.ss_family == AF_INET6
                     ? "[IPv6:%s]" : "[%s]", t.o.client);
            t.o.helo = helo;
        }
        g = mt_setup(&t, geteuid() == 0);
    }
    if (g != NULL) {
        chain_set_trace(g->chain, mt_trace, &t);
        rc = mt_run(&t, g, &peer, plen);
    }
    mt_trace_free(&t);
    for (size_t i = 0; t.routes != NULL && i < t.env->nrcpts; i++) {
        free(t.routes[i].dest);
        free(t.routes[i].text);
    }
    free(t.routes);
    queue_env_free(t.env);
    free(t.headers);
    free(t.msg);
    free(t.o.rcpts);
    generation_release(g);
    modload_unload_all();
    return rc;
}
