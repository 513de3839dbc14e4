/*
 * pipe_run: run one delivery command. The child gets a new session
 * (its own process group), the message on standard input (what the
 * caller prepends, then the spooled message with LF line ends),
 * standard output and error on one pipe, the given environment and no
 * other descriptor; it runs as the given account. When it exits, and
 * after the time limit, the whole process group is killed: nothing it
 * started outlives the delivery. The process must ignore SIGPIPE
 * (the daemon does): a command may exit without reading its input.
 */
#ifndef PIPE_RUN_H
#define PIPE_RUN_H

#include <stddef.h>
#include <sys/types.h>

struct pipe_job {
    char *const *argv;      /* argv[0] an absolute path */
    char *const *envp;
    int switch_user;        /* set the ids below (the daemon is root) */
    uid_t uid;
    gid_t gid;
    const gid_t *groups;    /* supplementary groups */
    size_t ngroups;
    const char *cwd;        /* the account's home; "/" if it cannot */
    int input_fd;           /* the spooled message (CRLF line ends) */
    const char *prefix;     /* prepended to the input as is; may be "" */
    long long time_limit_ms;
};

#define PIPE_OUTPUT_MAX 4096

struct pipe_result {
    int ws;          /* wait status (valid unless error) */
    int timed_out;   /* killed at the time limit */
    int error;       /* errno of a failure to start: nothing ran */
    size_t outlen;   /* octets kept of the output (at most PIPE_OUTPUT_MAX) */
    int truncated;   /* there was more */
    char output[PIPE_OUTPUT_MAX + 1];
};

/* 0 when the command ran (r->ws, r->timed_out), -1 when it could not
 * start (r->error). */
int pipe_run(const struct pipe_job *j, struct pipe_result *r);

#endif
