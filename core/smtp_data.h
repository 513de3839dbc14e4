/*
 * The DATA phase (RFC 5321 4.1.1.4, 4.5.2): reads the message after the
 * 354 reply up to CRLF.CRLF, removes dot-stuffing, writes the content to a
 * queue writer and parses the header block into the ctx.
 *
 * Strict line ends (SMTP smuggling): only CRLF ends a line, so only
 * CRLF "." CRLF ends the data; a bare CR or bare LF anywhere marks the
 * message bad (reject it once the end is seen: it is never queued).
 * A NUL octet marks it bad too: modules would see header text cut at the
 * NUL while the mailbox got all of it.
 * The size limit is checked while reading; an oversized or bad message
 * is read to its end but no longer written.
 */
#ifndef MODMTA_CORE_SMTP_DATA_H
#define MODMTA_CORE_SMTP_DATA_H

#include <stddef.h>

#include <modmta/conn.h>
#include <modmta/ctx.h>

#include "queue.h"

/* Header block kept for parsing, in octets and fields; past either the
 * rest counts as body for the hooks (the stored message is unchanged).
 * Bounded so a client cannot make one session hold ~12 times a huge
 * header block in memory. */
#define SMTP_DATA_HDR_MAX (256 * 1024)
#define SMTP_DATA_HDR_FIELDS 1000

struct smtp_data {
    /* set by the caller */
    modmta_conn *conn;
    queue_writer *w;
    modmta_ctx *ctx;         /* headers are added to it */
    long long limit;         /* message_size; 0: none */
    int timeout_ms;          /* per read */
    int stress_timeout_ms;   /* per read under stress (stress.h); 0: none */
    long long total_ms;      /* the whole DATA, from the call; 0: none */
    /* results */
    long long size;          /* octets from the client, unstuffed */
    long long hdr_len;       /* header block octets at the start of the
                              * content (the prepended header included) */
    int too_big;             /* over limit: answer 552 5.3.4 */
    int bad_eol;             /* bare CR or LF: answer 5xx */
    int bad_nul;             /* a NUL octet (RFC 5321 2.3.8): answer 5xx */
    int write_err;           /* a MODMTA_E_* from the writer, or 0 */
    /* reader state (private) */
    int state;
    int in_hdrs;
    int held;                /* the client's first line not yet known
                              * as a header: nothing written yet */
    char *hbuf;
    size_t hlen, hcap, line_start, cur_hdr, nfields;
    size_t first;            /* the client's first octet in hbuf */
};

/* Write `prepend` (the Received: header, CRLF-terminated lines) first,
 * then read the message. Returns 0 when the end of data was read (check
 * too_big, bad_eol, write_err), or MODMTA_E_TIMEOUT / MODMTA_E_IO when the
 * connection failed. Headers are added to ctx only for a good message.
 * Call smtp_data_done afterwards in every case. */
int smtp_data_read(struct smtp_data *d, const char *prepend, size_t plen);
void smtp_data_done(struct smtp_data *d);

/* The Received: header (RFC 5321 4.4) into a malloc'ed string; `rcpt` is
 * the single recipient or NULL; tls_version/cipher NULL when not TLS. */
char *smtp_data_received(const char *helo, const char *client_name,
                         const char *client_addr, const char *hostname,
                         const char *proto, const char *tls_version,
                         const char *tls_cipher, const char *queue_id,
                         const char *rcpt);
/* The Received: field of a local submission (sendmail, pickup):
 * "Received: by HOST (modmta invoked by uid N)\r\n\tid QID[ for <R>];
 * DATE\r\n", malloc'ed; NULL out of memory. */
char *smtp_data_received_local(const char *hostname, unsigned long uid,
                               const char *queue_id, const char *rcpt);

#endif
