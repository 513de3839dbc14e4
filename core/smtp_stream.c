/*
 * The streaming hooks' driver (see smtp_stream.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <modmta/log.h>

#include "ctx_priv.h"
#include "smtp_stream.h"

/* A body chunk fits one milter body packet (65535 octets). */
#define STREAM_CHUNK 65535

off_t
smtp_stream_body_offset(int fd, off_t hdr_len)
{
    char eol[2];
    ssize_t n = pread(fd, eol, sizeof(eol), hdr_len);

    if (n < 0)
        return -1;
    return n == 2 && eol[0] == '\r' && eol[1] == '\n' ? hdr_len + 2
                                                      : hdr_len;
}

static modmta_verdict
stream_io_error(modmta_ctx *ctx)
{
    modmta_logf(MODMTA_LOG_ERR, "%s: cannot read the queue file: %s",
                ctx->queue_id, modmta_strerror(modmta_err_from_errno(errno)));
    modmta_ctx_reply_clear(ctx);
    modmta_ctx_reply_default(ctx, 451, "4.3.0",
                             "Error: queue file read error");
    return MODMTA_TEMPFAIL;
}

/* The body in chunks, then the end mark. */
static modmta_verdict
stream_body(struct chain *ch, modmta_ctx *ctx, unsigned char *done, int fd,
            off_t off)
{
    unsigned char *buf = malloc(STREAM_CHUNK);
    modmta_verdict v = MODMTA_CONTINUE;
    ssize_t n;

    if (buf == NULL) {
        errno = ENOMEM;
        return stream_io_error(ctx);
    }
    while (v == MODMTA_CONTINUE) {
        n = pread(fd, buf, STREAM_CHUNK, off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            v = stream_io_error(ctx);
            break;
        }
        if (n == 0) {
            v = chain_body(ch, ctx, done, NULL, 0);
            break;
        }
        off += n;
        v = chain_body(ch, ctx, done, buf, (size_t)n);
    }
    free(buf);
    return v;
}

modmta_verdict
smtp_stream_run(struct chain *ch, modmta_ctx *ctx, int fd, off_t body_off)
{
    modmta_verdict v = MODMTA_CONTINUE;
    unsigned char *done;
    struct stat st;

    if (fstat(fd, &st) < 0)
        return stream_io_error(ctx);
    modmta_ctx_set_body_size(ctx, st.st_size - body_off);
    if (!chain_streams(ch))
        return MODMTA_CONTINUE;
    done = calloc(chain_count(ch) + 1, 1);
    if (done == NULL) {
        errno = ENOMEM;
        return stream_io_error(ctx);
    }
    for (size_t i = 0; i < ctx->nhdrs && v == MODMTA_CONTINUE; i++)
        v = chain_header(ch, ctx, done, ctx->hdrs[i].name,
                         ctx->hdrs[i].value);
    if (v == MODMTA_CONTINUE)
        v = chain_eoh(ch, ctx, done);
    if (v == MODMTA_CONTINUE)
        v = stream_body(ch, ctx, done, fd, body_off);
    free(done);
    return v;
}
