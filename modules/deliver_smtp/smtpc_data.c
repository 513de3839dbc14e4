/*
 * The content: the queue file streamed after DATA's 354, dot-stuffed
 * (RFC 5321 section 4.5.2), every line ended with CRLF (a bare LF becomes
 * CRLF, a last line without an end gets one) and the final ".".
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "smtpc_priv.h"

#define SMTPC_DATA_CHUNK 8192 /* on the stack, twice */

void
smtpc_stuff_init(struct smtpc_stuff *st)
{
    st->bol = 1;
    st->cr = 0;
}

size_t
smtpc_stuff(struct smtpc_stuff *st, const char *in, size_t len, char *out)
{
    size_t i, o = 0;
    char ch;

    for (i = 0; i < len; i++) {
        ch = in[i];
        if (st->bol && ch == '.')
            out[o++] = '.';
        if (ch == '\n' && !st->cr)
            out[o++] = '\r';
        out[o++] = ch;
        st->bol = ch == '\n';
        st->cr = ch == '\r';
    }
    return o;
}

size_t
smtpc_stuff_end(const struct smtpc_stuff *st, char *out)
{
    size_t o = 0;

    if (!st->bol) {
        if (!st->cr)
            out[o++] = '\r';
        out[o++] = '\n';
    }
    memcpy(out + o, ".\r\n", 3);
    return o + 3;
}

int
smtpc_data_send(smtpc_session *s, int fd, int *errno_r)
{
    char in[SMTPC_DATA_CHUNK], out[2 * SMTPC_DATA_CHUNK];
    struct smtpc_stuff st;
    ssize_t n;
    int rc;

    smtpc_stuff_init(&st);
    modmta_conn_set_timeout(s->conn, s->to.data_block_ms);
    if (lseek(fd, 0, SEEK_SET) < 0) {
        *errno_r = errno;
        return MODMTA_E_TEMP;
    }
    for (;;) {
        n = read(fd, in, sizeof(in));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *errno_r = errno;
            return MODMTA_E_TEMP;
        }
        if (n == 0)
            break;
        rc = modmta_conn_write(s->conn, out,
                               smtpc_stuff(&st, in, (size_t)n, out));
        if (rc < 0)
            return rc;
    }
    if ((rc = modmta_conn_write(s->conn, out, smtpc_stuff_end(&st, out))) < 0)
        return rc;
    return modmta_conn_flush(s->conn);
}
