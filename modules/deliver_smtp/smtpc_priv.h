/*
 * smtpc's insides, shared by its files (and its unit tests): the session,
 * the reply parser, the command lines, the dot-stuffer.
 */
#ifndef SMTPC_PRIV_H
#define SMTPC_PRIV_H

#include <arpa/inet.h>
#include <stddef.h>
#include <sys/types.h>

#include "smtpc.h"

/* A command line we build (RFC 5321 allows 512 octets plus what each
 * extension adds; Postfix's smtpd reads up to 2048). */
#define SMTPC_CMD_MAX 2048

struct smtpc_session {
    modmta_conn *conn;
    smtpc_role role;
    char *helo;
    struct smtpc_timeouts to;
    char *name;                    /* as the caller gave it */
    char addr[INET6_ADDRSTRLEN];   /* "" over a UNIX socket */
    int port;
    char *peer;                    /* "name[addr]", or the path */
    struct smtpc_ehlo ehlo;
    int dead;                      /* only smtpc_close() is left */
    int open_txn;                  /* MAIL accepted, transaction not ended */
    unsigned ntxn;
    long long opened_ms;           /* CLOCK_MONOTONIC */
};

/* A reply being parsed, line by line. */
struct smtpc_rparse {
    int code;                      /* of the first line */
    int nlines;
    char esc[16];
    char *text;
    size_t len, cap;
    const char *error;             /* why it is malformed */
};

/* ---- smtpc_reply.c ---- */
/* Feed one line (without its CRLF; may hold NULs). 0: more lines follow,
 * 1: the reply is complete, -1: malformed (p->error says why), -2: out of
 * memory. Start with a zeroed p; smtpc_rparse_take() or _free() after. */
int smtpc_rparse_line(struct smtpc_rparse *p, const char *line, size_t len);
/* Move the parsed reply into r (stage set); p is left empty. */
void smtpc_rparse_take(struct smtpc_rparse *p, const char *stage,
                       struct smtpc_reply *r);
void smtpc_rparse_free(struct smtpc_rparse *p);
/* Read one reply for stage within timeout_ms. 0 with r filled, or
 * SMTPC_FAILED with r the local reason (s is dead then). A 421 kills s
 * too (the server is closing), returned as 0. */
int smtpc_reply_read(smtpc_session *s, const char *stage, int timeout_ms,
                     struct smtpc_reply *r);
/* Fill r with a local reason (code 0); text from fmt. 0, or -1 when out
 * of memory (r's text is then a static "out of memory", which
 * smtpc_reply_clear knows not to free). */
int smtpc_reply_local(struct smtpc_reply *r, const char *stage,
                      const char *esc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* The conversation failed at stage: rc is MODMTA_E_TIMEOUT ("timed out"),
 * or another error ("lost connection"); doing: what we were at ("sending
 * message body"), NULL for the stage's default. Kills s, fills r,
 * returns SMTPC_FAILED. */
int smtpc_reply_lost(smtpc_session *s, int rc, const char *stage,
                     const char *doing, struct smtpc_reply *r);

/* ---- smtpc.c ---- */
/* Parse the text of an EHLO reply (lines joined by "\n", the first being
 * the server's name) into e. */
void smtpc_ehlo_parse(struct smtpc_ehlo *e, const char *text);
/* Queue line + CRLF and flush within timeout_ms; 0 or SMTPC_FAILED (r
 * filled, s dead). */
int smtpc_send(smtpc_session *s, const char *line, const char *stage,
               int timeout_ms, struct smtpc_reply *r);
/* One command and its reply: smtpc_send then smtpc_reply_read. */
int smtpc_command(smtpc_session *s, const char *line, const char *stage,
                  int timeout_ms, struct smtpc_reply *r);
long long smtpc_now_ms(void);
/* The cache counts a connection its session opened. */
void smtpc_cache_count_open(smtpc_cache *c);

/* ---- smtpc_txn.c ---- */
/* "MAIL FROM:<sender> SIZE=n ..." for a server offering e, into buf:
 * 0, or -1 (too long, or a control character: never sent). */
int smtpc_txn_mail_line(char *buf, size_t len, const struct smtpc_msg *m,
                        const struct smtpc_ehlo *e, off_t size);
/* "RCPT TO:<addr> NOTIFY=... ORCPT=...": 0 or -1 as above. */
int smtpc_txn_rcpt_line(char *buf, size_t len, const struct smtpc_rcpt *r,
                        const struct smtpc_ehlo *e);

/* ---- smtpc_data.c ---- */
/* Dot-stuffing state: copies content, turning each line end into CRLF and
 * doubling a '.' that starts a line (RFC 5321 section 4.5.2). */
struct smtpc_stuff {
    int bol;                       /* at the start of a line */
    int cr;                        /* the last octet was a CR */
};
void smtpc_stuff_init(struct smtpc_stuff *st);
/* Stuff len octets of in into out (room for 2 * len); returns the octets
 * written. */
size_t smtpc_stuff(struct smtpc_stuff *st, const char *in, size_t len,
                   char *out);
/* The end: a CRLF if the last line has none, then ".\r\n" (out: room for
 * 5). Returns the octets written. */
size_t smtpc_stuff_end(const struct smtpc_stuff *st, char *out);
/* Send the content of fd, stuffed and ended with ".", each block within
 * the data block timeout. 0; MODMTA_E_IO / MODMTA_E_TIMEOUT when the
 * connection failed; MODMTA_E_TEMP when fd could not be read (errno_r
 * set; the content was cut, so the session must not go on). */
int smtpc_data_send(smtpc_session *s, int fd, int *errno_r);

#endif
