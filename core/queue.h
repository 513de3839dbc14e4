/*
 * The durable queue (queue.c), in <spool>; X is one character of the ID
 * (hashed subdirectories, see queue.c for the full on-disk format):
 *   tmp/X/    messages being received (content ID.msg)
 *   queue/X/  committed messages: ID.msg is the content, from its first
 *             octet; its envelope (JSON) is in the file's extended
 *             attribute, superseded by ID.env once queue_update ran (or
 *             from the start on a file system without user xattrs).
 *             The content's rename into queue/X/ is the commit point.
 * A message is acknowledged only after content and envelope are durable,
 * the content renamed into queue/X/ and queue/X/ fsync'ed (shared by
 * concurrent commits) (queue_writer_commit).
 * Thread-safe: every function may be called from any thread; a message is
 * delivered by one worker at a time (the scheduler's rule, not this file's).
 */
#ifndef MODMTA_CORE_QUEUE_H
#define MODMTA_CORE_QUEUE_H

#include <stddef.h>
#include <sys/types.h>
#include <time.h>

#include <modmta/err.h>

#define QUEUE_ID_MAX 32

typedef struct queue queue;
typedef struct queue_writer queue_writer;

typedef enum queue_rcpt_state {
    QRCPT_PENDING = 0,
    QRCPT_DELIVERED = 1,
    QRCPT_FAILED = 2,     /* bounced: a DSN was or will be sent */
} queue_rcpt_state;

/* RFC 3461 NOTIFY, as the client gave it at RCPT; 0: not given (then
 * failures are reported, and delays when queue.delay_warning is set). */
enum {
    QNOTIFY_NEVER = 1u << 0,
    QNOTIFY_SUCCESS = 1u << 1,
    QNOTIFY_FAILURE = 1u << 2,
    QNOTIFY_DELAY = 1u << 3,
};

typedef struct queue_rcpt {
    char *addr;
    char *orcpt;          /* address the client gave (before rewriting) */
    queue_rcpt_state state;
    char *status;         /* the last attempt as mailq shows it: "host
                           * mx1.remote.test[192.0.2.1] said: 451 4.3.0
                           * try later (in reply to RCPT TO command)",
                           * or a local reason ("4.2.2 mailbox full") */
    int dsn_sent;         /* a DSN covering this final state (failed, or
                           * delivered with NOTIFY=SUCCESS) was queued */
    int no_dsn;           /* a copy a module added never to be reported
                           * on (MODMTA_RCPT_NO_DSN): like NOTIFY=NEVER,
                           * a failure is logged, then dropped. The
                           * client's NOTIFY=NEVER is in notify. */
    char *sender;         /* envelope sender of this recipient (a list's
                           * owner-NAME), NULL: the message's sender */
    /* envelope version 2 */
    unsigned notify;      /* QNOTIFY_*, 0: not given */
    char *orcpt_param;    /* ORCPT=... as the client gave it (xtext
                           * encoded: "rfc822;bob+40example.org"), NULL */
    int code;             /* the last reply's code, 0: none (local reason
                           * or no attempt yet) */
    char *esc;            /* its enhanced status code ("4.3.0"), NULL */
    char *text;           /* its text (multi-line joined with "\n") */
    char *stage;          /* the command it answered ("RCPT TO"), NULL */
    char *remote;         /* the server's name ("mx1.remote.test"), NULL:
                           * no server (local delivery, nothing reached) */
    char *remote_addr;    /* "192.0.2.1:25", "[2001:db8::1]:25", a socket
                           * path; NULL with remote */
    int delay_sent;       /* a delay warning covered this recipient */
    int relayed;          /* delivered to a next hop without DSN: a
                           * success notice says "relayed" */
} queue_rcpt;

/* A MAIL FROM parameter kept for delivery (BODY, SMTPUTF8, RET, ENVID). */
typedef struct queue_param {
    char *name;           /* upper case */
    char *value;          /* "" when given without a value */
} queue_param;

/* A transaction note (ctx.h, ABI 1.5): a string, or the integer num
 * when str is NULL. */
typedef struct queue_note {
    char *name;
    char *str;
    long long num;
} queue_note;

typedef struct queue_env {
    char id[QUEUE_ID_MAX];
    char *sender;         /* "" for <> */
    queue_rcpt *rcpts;
    size_t nrcpts;
    time_t arrival;
    char *client_addr;    /* "127.0.0.1", or "local" */
    char *client_name;
    char *helo;
    char *protocol;       /* "ESMTP", "ESMTPS", ... */
    char *auth_user;      /* NULL if none */
    char *auth_param;     /* MAIL FROM AUTH= (RFC 4954), decoded; "<>"
                             when not trusted; NULL if not given */
    char *quarantine;     /* NULL, or the reason: held, never delivered */
    int attempts;
    time_t next_retry;    /* 0: now */
    int held;             /* modmtactl hold */
    off_t size;           /* content size */
    queue_param *params;  /* envelope version 2: MAIL parameters a next
                           * hop needs; NULL when none */
    size_t nparams;
    queue_note *notes;    /* envelope version 3: the transaction's notes,
                           * in the order set; NULL when none */
    size_t nnotes;
    /* not stored: set by queue_load for a message found at queue_open
     * (after a crash or restart) whose delivery may have been under way */
    int recovered;
} queue_env;

/* Create the spool layout if missing (mode 0700), remove interrupted
 * commits and temp files, remember which messages were found (they load
 * with recovered = 1). */
queue *queue_open(const char *spool, modmta_err *err_r);
void queue_close(queue *q);
const char *queue_spool(const queue *q);

/* ---- receiving ---- */
/* NULL with errno set (ENOSPC: no room for the file) and err_r filled. */
queue_writer *queue_writer_new(queue *q, modmta_err *err_r);
const char *queue_writer_id(const queue_writer *w);
/* Path of the content being written (for on_data hooks). */
const char *queue_writer_path(const queue_writer *w);
/* The spool file's descriptor (for the descriptor budget). */
int queue_writer_fd(const queue_writer *w);
off_t queue_writer_size(const queue_writer *w);
/* Append content. MODMTA_E_NOSPACE on a full disk, MODMTA_E_IO else. */
int queue_writer_write(queue_writer *w, const void *buf, size_t len);
/* Apply the milter actions on the content, once per message at the end
 * of DATA: its first `old_len` octets (the header block) become `hdr`;
 * body_fd >= 0: the rest becomes an empty line and the whole content of
 * body_fd (a replaced body). All in the same file: the same header
 * length and no new body is one write; a header block that grows or
 * shrinks moves the body once, and a new body is copied in once
 * (copy_file_range), so header edits cost at most one copy of the
 * message whatever their number. */
int queue_writer_rebuild(queue_writer *w, off_t old_len, const char *hdr,
                         size_t hdr_len, int body_fd);
/* Make the message durable (env->id is set from the writer). Frees w
 * whatever the result. 0 on success; else nothing was committed. */
int queue_writer_commit(queue_writer *w, queue_env *env);
void queue_writer_abort(queue_writer *w);

/* ---- queued messages ---- */
/* 0, MODMTA_E_NOTFOUND, or another error. *env_r freed by caller. */
int queue_load(queue *q, const char *id, queue_env **env_r);
/* Durably replace the envelope (write tmp, fsync, rename). If that
 * fails, env is kept in memory in the file's stead (see queue.c). */
int queue_update(queue *q, const queue_env *env);
/* queue_update, except that a failure leaves what the queue reads as it
 * was: for a change an administrator is told failed (hold, release). */
int queue_update_or_fail(queue *q, const queue_env *env);
/* Remove a message (content first: without it there is no message). */
int queue_remove(queue *q, const char *id);
/* "<spool>/queue/X/ID.msg" into buf: the content alone. */
int queue_content_path(const queue *q, const char *id, char *buf, size_t len);
/* Call cb for every committed message, in arrival order; stop when cb
 * returns non-zero. */
int queue_foreach(queue *q, int (*cb)(const queue_env *env, void *arg),
                  void *arg);
void queue_env_free(queue_env *env);
/* The envelope's JSON text as stored (ID.env, else the embedded one),
 * NUL-terminated, into *json_r (caller frees). 0, MODMTA_E_NOTFOUND, or
 * another error. */
int queue_env_read(queue *q, const char *id, char **json_r, size_t *len_r);
/* A new ID, unique across restarts and nodes' clocks alike. */
void queue_new_id(char id[QUEUE_ID_MAX]);
/* 1 if s looks like a queue ID (guards paths built from ctl input). */
int queue_id_valid(const char *s);

#endif
