/* milter: the end of DATA for one milter, from the spooled message
 * (headers and body, CRLF line ends, not dot-stuffed): DATA, each
 * header, EOH, the body in the largest chunks negotiated, EOM
 * (milter_session.h). Steps the milter left out are not sent, replies
 * it said it would not send are not waited for. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <modmta/log.h>

#include "milter_session.h"

/* The header block read so far and where the body starts. */
struct milter_msg {
    FILE *f;
    char *line;
    size_t cap;
    ssize_t len;    /* of the line read ahead, -1 at the end */
    off_t off;      /* where that line starts */
    char *hdr;      /* one header, continuation lines joined */
    size_t hlen, hcap;
    off_t body_off;
    int err;        /* a line could not be read */
};

static int
milter_msg_append(struct milter_msg *m, const char *s, size_t n)
{
    if (m->hlen + n + 1 > m->hcap) {
        size_t cap = (m->hlen + n + 1) * 2;
        char *p = realloc(m->hdr, cap);

        if (p == NULL)
            return -1;
        m->hdr = p;
        m->hcap = cap;
    }
    memcpy(m->hdr + m->hlen, s, n);
    m->hlen += n;
    m->hdr[m->hlen] = '\0';
    return 0;
}

/* The next line into m->line, its offset kept (no lseek per line). */
static void
milter_msg_getline(struct milter_msg *m)
{
    if (m->len > 0)
        m->off += m->len;
    m->len = getline(&m->line, &m->cap, m->f);
    /* getline() failing for want of memory sets no error flag: the milter
     * must not be shown a header block cut short */
    if (m->len < 0 && (ferror(m->f) || !feof(m->f)))
        m->err = 1;
}

/* The next header into m->hdr (CRLF of the last line removed): 1, 0 at
 * the end of the header block (body_off set), -1 on error. */
static int
milter_msg_next_header(struct milter_msg *m)
{
    off_t at = m->off;

    if (m->len <= 0 || m->line[0] == '\r' || m->line[0] == '\n' ||
        memchr(m->line, ':', (size_t)m->len) == NULL) {
        /* The empty line ends the block; a line that is no header
         * starts the body. */
        m->body_off = m->len > 0 && (m->line[0] == '\r' || m->line[0] == '\n')
                          ? at + m->len
                          : at;
        return 0;
    }
    m->hlen = 0;
    do {
        if (milter_msg_append(m, m->line, (size_t)m->len) < 0)
            return -1;
        milter_msg_getline(m);
    } while (m->len > 0 && (m->line[0] == ' ' || m->line[0] == '\t'));
    if (m->err)
        return -1; /* a continuation line could not be read */
    while (m->hlen > 0 &&
           (m->hdr[m->hlen - 1] == '\n' || m->hdr[m->hlen - 1] == '\r'))
        m->hdr[--m->hlen] = '\0';
    return 1;
}

static int
milter_msg_put_header(struct milter_peer *p, char *hdr)
{
    char *colon = strchr(hdr, ':');
    const char *value = colon + 1;
    char *name_end = colon;

    while (name_end > hdr && (name_end[-1] == ' ' || name_end[-1] == '\t'))
        name_end--;
    *name_end = '\0';
    if (!(p->proto & MILTER_P_HDR_LEADSPC))
        value += strspn(value, " \t");
    return milter_pkt_begin(&p->conn.out, MILTER_C_HEADER) < 0 ||
                   milter_pkt_str(&p->conn.out, hdr) < 0 ||
                   milter_pkt_str(&p->conn.out, value) < 0
               ? -1
               : (milter_pkt_end(&p->conn.out), 0);
}

/* Send one step; stop (return 1) on a verdict other than CONTINUE. */
static int
milter_msg_step(modmta_ctx *ctx, struct milter_sess *s, struct milter_peer *p,
                enum milter_stage st, uint32_t nr, modmta_verdict *v_r)
{
    *v_r = milter_exchange(ctx, s, p, st, (p->proto & nr) != 0,
                           st == MILTER_ST_DATA ? p->spec->command_ms
                                                : p->spec->message_ms);
    return *v_r != MODMTA_CONTINUE || p->failed || p->txn_done;
}

static int
milter_msg_headers(modmta_ctx *ctx, struct milter_sess *s,
                   struct milter_peer *p, struct milter_msg *m,
                   modmta_verdict *v_r)
{
    int r;

    milter_msg_getline(m);
    while ((r = milter_msg_next_header(m)) > 0) {
        if (p->proto & MILTER_P_NOHDRS)
            continue;
        if (milter_msg_put_header(p, m->hdr) < 0)
            return -1;
        if (milter_msg_step(ctx, s, p, MILTER_ST_HEADER, MILTER_P_NR_HDR,
                            v_r))
            return 1;
    }
    return m->err ? -1 : r;
}

static int
milter_msg_body(modmta_ctx *ctx, struct milter_sess *s, struct milter_peer *p,
                struct milter_msg *m, modmta_verdict *v_r)
{
    char *buf;
    size_t n;
    int r = 0;

    if (fseeko(m->f, m->body_off, SEEK_SET) < 0)
        return -1;
    buf = malloc(p->chunk);
    if (buf == NULL)
        return -1;
    p->skip_body = 0;
    while (!p->skip_body && (n = fread(buf, 1, p->chunk, m->f)) > 0) {
        if (milter_pkt_begin(&p->conn.out, MILTER_C_BODY) < 0 ||
            milter_pkt_bytes(&p->conn.out, buf, n) < 0) {
            r = -1;
            break;
        }
        milter_pkt_end(&p->conn.out);
        if (milter_msg_step(ctx, s, p, MILTER_ST_BODY, MILTER_P_NR_BODY,
                            v_r)) {
            r = 1;
            break;
        }
    }
    if (r == 0 && ferror(m->f))
        r = -1;
    free(buf);
    return r;
}

/* DATA, headers, EOH, body: 0 to go on to EOM, 1 decided (*v_r), -1 a
 * local error. */
static int
milter_msg_content(modmta_ctx *ctx, struct milter_sess *s,
                   struct milter_peer *p, struct milter_msg *m,
                   modmta_verdict *v_r)
{
    int r;

    if (!(p->proto & MILTER_P_NODATA)) {
        if (milter_macros_put(ctx, p, MILTER_ST_DATA, NULL) < 0 ||
            milter_pkt_empty(&p->conn.out, MILTER_C_DATA) < 0)
            return -1;
        if (milter_msg_step(ctx, s, p, MILTER_ST_DATA, MILTER_P_NR_DATA, v_r))
            return 1;
    }
    r = milter_msg_headers(ctx, s, p, m, v_r);
    if (r != 0)
        return r;
    if (!(p->proto & MILTER_P_NOEOH)) {
        if (milter_macros_put(ctx, p, MILTER_ST_EOH, NULL) < 0 ||
            milter_pkt_empty(&p->conn.out, MILTER_C_EOH) < 0)
            return -1;
        if (milter_msg_step(ctx, s, p, MILTER_ST_EOH, MILTER_P_NR_EOH, v_r))
            return 1;
    }
    if (!(p->proto & MILTER_P_NOBODY))
        return milter_msg_body(ctx, s, p, m, v_r);
    return 0;
}

modmta_verdict
milter_message(modmta_ctx *ctx, struct milter_sess *s, struct milter_peer *p)
{
    struct milter_msg m = {.len = -1};
    modmta_verdict v = MODMTA_CONTINUE;
    int fd, r;

    fd = open(modmta_message_path(ctx), O_RDONLY | O_CLOEXEC);
    m.f = fd >= 0 ? fdopen(fd, "r") : NULL;
    if (m.f == NULL) {
        if (fd >= 0)
            close(fd);
        r = -1;
    } else {
        r = milter_msg_content(ctx, s, p, &m, &v);
        fclose(m.f);
    }
    free(m.line);
    free(m.hdr);
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_ERR, "milter=%s error=\"cannot read the "
                   "queued message for it (or out of memory)\"",
                   p->spec->name);
        modmta_reply(ctx, 451, "4.3.0", "Error: cannot read the message");
        return MODMTA_TEMPFAIL;
    }
    if (r == 0) {
        if (milter_macros_put(ctx, p, MILTER_ST_EOM, NULL) < 0 ||
            milter_pkt_empty(&p->conn.out, MILTER_C_BODYEOB) < 0) {
            modmta_reply(ctx, 451, "4.3.0", "Error: out of memory");
            return MODMTA_TEMPFAIL;
        }
        v = milter_exchange(ctx, s, p, MILTER_ST_EOM, 0,
                            p->spec->message_ms);
        /* A message that reached EOM needs no ABORT; one decided
         * earlier does. */
        p->in_txn = 0;
        /* Answered CONTINUE, libmilter rests at the end of message. */
        p->at_rest = v == MODMTA_CONTINUE && !p->failed && !p->txn_done;
    }
    return v;
}
