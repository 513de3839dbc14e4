/*
 * The Redis client (not installed): what shared_redis.c is built on.
 *
 * redis.c     the client for one "redis" config object: a pool of
 *             blocking hiredis contexts shared by every thread, one
 *             command per call with a deadline.
 * redis_conn.c making a connection: the socket (no name is ever
 *             resolved), AUTH, SELECT, and with Sentinel the master's
 *             discovery and its ROLE check.
 * redis_sub.c the subscriber: one connection and thread for pub/sub.
 *
 * Nothing connects before the first command. A context that failed in
 * any way is freed, never reused; a failed connect, or a server that
 * cannot serve (READONLY, LOADING...), holds further attempts back for
 * REDIS_RETRY_MS, answering MODMTA_E_TEMP at once meanwhile when no
 * connection is open, so a dead or refusing Redis is not hammered.
 *
 * hiredis writes with write(2): the process must ignore SIGPIPE (the
 * daemon does; so must a tool that uses the shared state).
 */
#ifndef MODMTA_REDIS_PRIV_H
#define MODMTA_REDIS_PRIV_H

#include <pthread.h>
#include <stddef.h>
#include <sys/socket.h>

#include <hiredis/hiredis.h>
#include <jansson.h>

#include <modmta/err.h>

#define REDIS_RETRY_MS 1000
#define REDIS_POOL_MAX 64

#define REDIS_WHERE_MAX 112

/* A server address: IPv4, IPv6 or a UNIX socket; text for the log. */
struct redis_addr {
    struct sockaddr_storage ss;
    socklen_t len;
    char text[REDIS_WHERE_MAX];
};

/* The settings of a "redis" object (redis.c fills it). */
struct redis_cfg {
    struct redis_addr address;  /* without Sentinel */
    struct redis_addr *sentinels;
    size_t nsentinels;          /* > 0: ask them for master's address */
    char *master;
    char *password;             /* NULL: no AUTH; never logged */
    long long db;
    int pool;
    int timeout_ms;
    int connect_timeout_ms;
};

struct redis;

/* The client for cfg, a "redis" object (keys absent take their
 * defaults; wrong ones are reported with their path). Connects nothing.
 * NULL with err_r filled. */
struct redis *redis_new(const json_t *cfg, modmta_err *err_r);
void redis_free(struct redis *r);
const struct redis_cfg *redis_get_cfg(const struct redis *r);

/* Run one command, argv-style, on a pooled connection, all within the
 * command timeout: 0 with *reply_r (never an error reply; free it with
 * freeReplyObject), MODMTA_E_INVAL for an error that is the data's
 * (WRONGTYPE, not an integer, overflow), MODMTA_E_TEMP for everything
 * else (no connection, timeout, a server that cannot serve: READONLY,
 * LOADING...), MODMTA_E_NOMEM. */
int redis_command(struct redis *r, int argc, const char **argv,
                  const size_t *lens, redisReply **reply_r);

/* Log a failure (where: the server's address, or NULL when why names
 * it), at most once a minute for the same text. */
void redis_note(struct redis *r, const char *where, const char *why);
/* Log that the server at where answers again, if a failure was the last
 * thing logged. */
void redis_note_ok(struct redis *r, const char *where);

/* ---- redis_conn.c ---- */

/* "IP:port", "[IPv6]:port" or an absolute socket path into a; -1 with
 * why filled. No name resolution. */
int redis_conn_parse(const char *s, struct redis_addr *a, char *why,
                     size_t whylen);
/* A connection to the server cfg names, ready for commands (AUTH, SELECT
 * done; with Sentinel, a verified master), with deadline_ms
 * (CLOCK_MONOTONIC) bounding it all and no connect longer than
 * cfg->connect_timeout_ms; where_r gets the server's address. NULL with
 * why filled. *sentinel (kept by the caller) is the sentinel to ask
 * first; it becomes the one that answered, or the one after the last
 * that failed. */
redisContext *redis_conn_open(const struct redis_cfg *cfg,
                              long long deadline_ms, size_t *sentinel,
                              char where_r[REDIS_WHERE_MAX], char *why,
                              size_t whylen);
/* Set c's socket timeouts to ms (> 0). 0, or -1 (c is dead then). */
int redis_conn_timeout(redisContext *c, long ms);
/* Run a command on c: a reply, or NULL with why filled (c is dead). */
redisReply *redis_conn_command(redisContext *c, int argc, const char **argv,
                               const size_t *lens, char *why, size_t whylen);
/* CLOCK_MONOTONIC in milliseconds. */
long long redis_now_ms(void);
/* A condition variable whose timed waits take CLOCK_MONOTONIC
 * deadlines, as every deadline here is. */
void redis_cond_init(pthread_cond_t *cond);

/* ---- redis_sub.c ---- */

struct redis_sub;

/* The subscriber of r: no connection or thread until redis_sub_add.
 * deliver(arg, channel, msg) runs on the subscriber's thread for each
 * message. NULL out of memory. */
struct redis_sub *redis_sub_new(struct redis *r,
                                void (*deliver)(void *arg,
                                                const char *channel,
                                                const char *msg),
                                void *arg);
/* Subscribe to channel (counted: one SUBSCRIBE per channel), waiting up
 * to the command timeout for Redis to confirm it: 0, or MODMTA_E_TEMP
 * (then nothing is subscribed), MODMTA_E_NOMEM. */
int redis_sub_add(struct redis_sub *s, const char *channel);
/* Undo one redis_sub_add; the last one for channel unsubscribes. */
void redis_sub_remove(struct redis_sub *s, const char *channel);
/* Stop the thread (not from deliver), close the connection, free. */
void redis_sub_free(struct redis_sub *s);

#endif
