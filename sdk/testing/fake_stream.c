/*
 * Fakes for the ABI 1.6 hooks and actions (fake.h, "streaming and
 * milter actions").
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "ctx_priv.h"
#include "fake.h"

void
modmta_test_set_local(modmta_ctx *ctx, const char *ip, int port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        modmta_ctx_set_local(ctx, (struct sockaddr *)in, sizeof(*in));
    } else if (inet_pton(AF_INET6, ip, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        modmta_ctx_set_local(ctx, (struct sockaddr *)in6, sizeof(*in6));
    }
}

void
modmta_test_set_auth_mech(modmta_ctx *ctx, const char *mech)
{
    modmta_ctx_set_auth_mech(ctx, mech);
}

void
modmta_test_set_tls_info(modmta_ctx *ctx, const char *version,
                         const char *cipher, int bits)
{
    modmta_ctx_set_tls(ctx, version != NULL);
    modmta_ctx_set_tls_info(ctx, version, cipher, bits);
}

void
modmta_test_set_body_size(modmta_ctx *ctx, off_t size)
{
    modmta_ctx_set_body_size(ctx, size);
}

void
modmta_test_set_body_path(modmta_ctx *ctx, const char *path)
{
    modmta_ctx_set_body_path(ctx, path);
}

int
modmta_test_body_replaced(const modmta_ctx *ctx)
{
    return ctx->body_fd >= 0;
}

size_t
modmta_test_reply_lines(const modmta_ctx *ctx, const char **text_r)
{
    if (text_r != NULL)
        *text_r = ctx->reply_nlines > 0 ? ctx->reply_multi : ctx->reply_text;
    return ctx->reply_nlines > 0 ? ctx->reply_nlines
                                 : ctx->reply_code != 0;
}

int
modmta_test_added_params(const modmta_ctx *ctx, const char *addr,
                         const char **notify_r, const char **orcpt_r)
{
    const struct ctx_rparam *rp = modmta_ctx_rcpt_params(ctx, addr);

    if (notify_r != NULL)
        *notify_r = rp != NULL ? rp->notify : NULL;
    if (orcpt_r != NULL)
        *orcpt_r = rp != NULL ? rp->orcpt : NULL;
    return rp != NULL;
}
