/* Run a delivery command with a time limit (see pipe_run.h). */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pipe_run.h"

#define PIPE_EX_OSERR 71 /* sysexits.h: the command could not be started */
#define PIPE_POLL_MS 50

/* The input as the command reads it: prefix, then the message with each
 * CRLF made LF. */
struct pipe_input {
    const char *prefix;
    size_t prefix_off;
    int fd;
    int eof;
    int cr;            /* the last chunk ended in a CR, held back */
    char buf[16384];
    size_t off, len;
};

static int64_t
pipe_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Refill in->buf; 0, or -1 on a read error. */
static int
pipe_input_fill(struct pipe_input *in)
{
    char raw[sizeof(in->buf) / 2];
    ssize_t n;
    size_t i;

    in->off = in->len = 0;
    if (in->prefix[in->prefix_off] != '\0') {
        size_t left = strlen(in->prefix + in->prefix_off);

        in->len = left < sizeof(in->buf) ? left : sizeof(in->buf);
        memcpy(in->buf, in->prefix + in->prefix_off, in->len);
        in->prefix_off += in->len;
        return 0;
    }
    do
        n = read(in->fd, raw, sizeof(raw));
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -1;
    if (n == 0) {
        in->eof = 1;
        if (in->cr)
            in->buf[in->len++] = '\r';
        in->cr = 0;
        return 0;
    }
    for (i = 0; i < (size_t)n; i++) {
        if (in->cr && raw[i] != '\n')
            in->buf[in->len++] = '\r';
        in->cr = raw[i] == '\r';
        if (!in->cr)
            in->buf[in->len++] = raw[i];
    }
    return 0;
}

/* In the child: only async-signal-safe calls until execve. */
static void
pipe_child(const struct pipe_job *j, int in_r, int out_w)
{
    static const char msg[] = "deliver_pipe: cannot execute ";
    struct sigaction sa;
    sigset_t none;
    int s;

    setsid();
    if (dup2(in_r, 0) < 0 || dup2(out_w, 1) < 0 || dup2(out_w, 2) < 0)
        _exit(PIPE_EX_OSERR);
    if (close_range(3, ~0U, 0) < 0)
        for (s = 3; s < 1024; s++)
            close(s);
    if (j->switch_user &&
        (setgroups(j->ngroups, j->groups) < 0 || setgid(j->gid) < 0 ||
         setuid(j->uid) < 0 || getuid() != j->uid || geteuid() != j->uid ||
         setuid(0) == 0))
        _exit(PIPE_EX_OSERR);
    if (chdir(j->cwd) < 0 && chdir("/") < 0)
        _exit(PIPE_EX_OSERR);
    /* Ignored signals (SIGPIPE) and the mask survive execve: reset them. */
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (s = 1; s < NSIG; s++)
        sigaction(s, &sa, NULL);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execve(j->argv[0], j->argv, j->envp);
    if (write(2, msg, sizeof(msg) - 1) > 0 &&
        write(2, j->argv[0], strlen(j->argv[0])) > 0)
        (void)!write(2, "\n", 1);
    _exit(PIPE_EX_OSERR);
}

static void
pipe_close(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void
pipe_keep_output(struct pipe_result *r, const char *buf, size_t n)
{
    size_t room = PIPE_OUTPUT_MAX - r->outlen;

    if (n > room) {
        r->truncated = 1;
        n = room;
    }
    memcpy(r->output + r->outlen, buf, n);
    r->outlen += n;
    r->output[r->outlen] = '\0';
}

/* 1 once the child has exited, then reaped with *ws. What it left
 * running in the background is killed first: it ran setsid(), so its
 * group's id is its pid, which the unreaped zombie keeps from reuse. */
static int
pipe_reap(pid_t pid, int *ws)
{
    siginfo_t si;

    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) < 0 ||
        si.si_pid != pid)
        return 0;
    kill(-pid, SIGKILL);
    while (waitpid(pid, ws, 0) < 0 && errno == EINTR)
        ;
    return 1;
}

/* Feed the input and read the output until the child is gone or the
 * deadline passes; the child is reaped and its process group killed
 * on every way out. */
static void
pipe_loop(pid_t pid, int in_w, int out_r, struct pipe_input *in,
          int64_t deadline, struct pipe_result *r)
{
    int reaped = 0;

    for (;;) {
        struct pollfd pf[2];
        nfds_t n = 0;
        int64_t left;
        char buf[4096];
        ssize_t got;

        if (!reaped)
            reaped = pipe_reap(pid, &r->ws);
        left = deadline - pipe_now_ms();
        if (!reaped && left <= 0) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);
            r->timed_out = 1;
            while (waitpid(pid, &r->ws, 0) < 0 && errno == EINTR)
                ;
            reaped = 1;
            break;
        }
        if (in_w >= 0 && in->off == in->len && !in->eof &&
            pipe_input_fill(in) < 0)
            in->eof = 1, in->len = 0;
        if (in_w >= 0 && in->off == in->len && in->eof)
            pipe_close(&in_w);
        if (in_w >= 0) {
            pf[n].fd = in_w;
            pf[n++].events = POLLOUT;
        }
        if (out_r >= 0) {
            pf[n].fd = out_r;
            pf[n++].events = POLLIN;
        }
        /* Once the child is gone, take the output that is there without
         * waiting for what it left running in the background. */
        if (poll(pf, n, reaped ? 0 : (int)(left < PIPE_POLL_MS
                                                ? left : PIPE_POLL_MS)) < 0 &&
            errno != EINTR)
            break;
        if (in_w >= 0 && pf[0].revents != 0) {
            got = write(in_w, in->buf + in->off, in->len - in->off);
            if (got > 0)
                in->off += (size_t)got;
            else if (got < 0 && errno != EAGAIN && errno != EINTR)
                pipe_close(&in_w); /* EPIPE: it stopped reading */
        }
        if (out_r >= 0 && pf[n - 1].revents != 0) {
            got = read(out_r, buf, sizeof(buf));
            if (got > 0)
                pipe_keep_output(r, buf, (size_t)got);
            else if (got == 0 || (errno != EAGAIN && errno != EINTR))
                pipe_close(&out_r);
        } else if (reaped) {
            pipe_close(&out_r);
        }
        if (reaped && (out_r < 0 || left <= 0 || r->truncated))
            break;
    }
    pipe_close(&in_w);
    pipe_close(&out_r);
    if (!reaped) { /* poll failed */
        kill(-pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &r->ws, 0) < 0 && errno == EINTR)
            ;
    }
}

static int
pipe_fail(struct pipe_result *r, int e, int *fds, size_t nfds)
{
    size_t i;

    for (i = 0; i < nfds; i++)
        pipe_close(&fds[i]);
    r->error = e;
    return -1;
}

int
pipe_run(const struct pipe_job *j, struct pipe_result *r)
{
    struct pipe_input *in;
    int fds[4] = { -1, -1, -1, -1 }; /* in_r, in_w, out_r, out_w */
    pid_t pid;

    memset(r, 0, sizeof(*r));
    if ((in = calloc(1, sizeof(*in))) == NULL)
        return pipe_fail(r, ENOMEM, fds, 0);
    in->prefix = j->prefix != NULL ? j->prefix : "";
    in->fd = j->input_fd;
    /* CLOEXEC: no other command started meanwhile inherits them */
    if (pipe2(fds, O_CLOEXEC) < 0 || pipe2(fds + 2, O_CLOEXEC) < 0 ||
        fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0 ||
        fcntl(fds[2], F_SETFL, O_NONBLOCK) < 0) {
        free(in);
        return pipe_fail(r, errno, fds, 4);
    }
    pid = fork();
    if (pid < 0) {
        free(in);
        return pipe_fail(r, errno, fds, 4);
    }
    if (pid == 0)
        pipe_child(j, fds[0], fds[3]);
    pipe_close(&fds[0]);
    pipe_close(&fds[3]);
    pipe_loop(pid, fds[1], fds[2], in, pipe_now_ms() + j->time_limit_ms, r);
    free(in);
    return 0;
}
