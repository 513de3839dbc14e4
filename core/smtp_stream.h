/*
 * The message as a stream (ABI 1.6): after the end of DATA, before
 * on_data, the streaming hooks get the spooled message's header fields,
 * the end of the header block, then its body in chunks and an end mark.
 */
#ifndef MODMTA_CORE_SMTP_STREAM_H
#define MODMTA_CORE_SMTP_STREAM_H

#include <sys/types.h>

#include <modmta/ctx.h>

#include "chain.h"

/* Where the body starts in the spooled content whose header block is
 * hdr_len octets: after the empty line that ends it, if there is one.
 * -1 when the file cannot be read. */
off_t smtp_stream_body_offset(int fd, off_t hdr_len);
/* Set the body size in ctx, then run the hooks over the content in fd
 * (headers from ctx, the body from body_off). CONTINUE, or the message's
 * verdict with its reply in ctx (TEMPFAIL 451 when the file cannot be
 * read). */
modmta_verdict smtp_stream_run(struct chain *ch, modmta_ctx *ctx, int fd,
                               off_t body_off);

#endif
