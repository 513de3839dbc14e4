/* Delivery: the command run for each recipient, its result reported. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "deliver_pipe.h"
#include "store_out.h"
#include "pipe_argv.h"
#include "pipe_run.h"
#include "pipe_status.h"

/* The command's output for the DSN and the queue listing (mailq shows
 * one status line per recipient): one line, each control character a
 * space, trailing white space dropped. */
static void
dpipe_output_text(const struct pipe_result *res, const char *what,
                  char *buf, size_t len)
{
    size_t o, i, n = res->outlen;

    while (n > 0 && ((unsigned char)res->output[n - 1] <= ' ' ||
                     res->output[n - 1] == 0x7f))
        n--;
    o = (size_t)snprintf(buf, len, "%s%s", what, n > 0 ? ": " : "");
    for (i = 0; i < n && o + 4 < len; i++) {
        unsigned char c = (unsigned char)res->output[i];

        buf[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
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
    ssize_t n = 0;
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
    /* getline() failing for want of memory sets no error flag: a header
     * left unread cannot be called free of the loop */
    if (!found && n < 0 && (ferror(f) || !feof(f)))
        found = -1;
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

/* addr at p + *o, cleaned as the stores write one (store_addr_char):
 * one line, and with no_space one word. len covers it (the caller
 * sized p). */
static void
dpipe_put_addr(char *p, size_t *o, const char *addr, int no_space)
{
    for (; *addr != '\0'; addr++)
        p[(*o)++] = store_addr_char((unsigned char)*addr, no_space);
    p[*o] = '\0';
}

/* What goes before the message on the command's input, as local(8)
 * writes it: the From_ line ("from_line"), then Return-Path,
 * X-Original-To (when the client's address is known) and Delivered-To
 * ("headers"), each address on one line whatever it holds. Malloc'ed,
 * NULL when out of memory. */
static char *
dpipe_prefix(const struct dpipe *d, const char *sender, const char *orig,
             const char *rcpt)
{
    /* the sender twice (From_ line, Return-Path), the fixed text < 128 */
    size_t len = 2 * strlen(sender) + (orig ? strlen(orig) : 0) +
                 strlen(rcpt) + 128;
    char *p = malloc(len), date[32];
    size_t o = 0;
    time_t now = time(NULL);
    struct tm tm;

    if (p == NULL)
        return NULL;
    p[0] = '\0';
    if (d->conf.from_line && localtime_r(&now, &tm) != NULL &&
        strftime(date, sizeof(date), "%a %b %e %H:%M:%S %Y", &tm) > 0) {
        o += (size_t)snprintf(p + o, len - o, "From ");
        dpipe_put_addr(p, &o, sender[0] != '\0' ? sender : "MAILER-DAEMON",
                       1);
        o += (size_t)snprintf(p + o, len - o, " %s\n", date);
    }
    if (d->conf.headers) {
        o += (size_t)snprintf(p + o, len - o, "Return-Path: <");
        dpipe_put_addr(p, &o, sender, 0);
        if (orig != NULL) {
            o += (size_t)snprintf(p + o, len - o, ">\nX-Original-To: ");
            dpipe_put_addr(p, &o, orig, 0);
            o += (size_t)snprintf(p + o, len - o, "\n");
        } else {
            o += (size_t)snprintf(p + o, len - o, ">\n");
        }
        o += (size_t)snprintf(p + o, len - o, "Delivered-To: ");
        dpipe_put_addr(p, &o, rcpt, 0);
        snprintf(p + o, len - o, "\n");
    }
    return p;
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

    snprintf(size, sizeof(size), "%lld",
             (long long)modmta_message_size(o->ctx));
    *argv_r = o->command != NULL ? dpipe_shell_argv(o->command)
                                 : pipe_argv_new(o->d->conf.command, &v);
    *envp_r = pipe_env_new(&v);
    *prefix_r = dpipe_prefix(o->d, v.sender, orig, o->rcpt);
    return *argv_r == NULL || *envp_r == NULL || *prefix_r == NULL ? -1 : 0;
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

void
dpipe_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    size_t i, n = modmta_dlv_rcpt_count(ctx);

    (void)dest;
    for (i = 0; i < n; i++)
        dpipe_deliver_one(inst, ctx, i);
}
