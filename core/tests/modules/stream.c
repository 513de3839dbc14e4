/*
 * A module using every hook and action of ABI 1.6, for the e2e test
 * tests/e2e/test_stream.py. It logs what it sees (INFO):
 *   "abort sender=<S>"                          on_abort
 *   "header NAME folded=0|1"                    on_header
 *   "eoh", "body size=N end=M"                  on_eoh, the end of body
 *     (N the octets of the chunks, M modmta_body_size)
 *   "data local=A:P mech=M tls=V/C/B"           on_data (NULL: "-")
 * and, in on_data, acts on the message's Subject:
 *   "insert"    modmta_hdr_insert at index 1 ("X-Inserted: at-one")
 *   "replace"   the body becomes "replaced body\r\nline two\r\n"
 *   "lines"     REJECT with a three-line 550 reply
 *   "params"    sender new@localhost with RET=HDRS ENVID=e2e-envid, and
 *               an added recipient carol@localhost with NOTIFY=NEVER and
 *               ORCPT=rfc822;carol+40orig.test
 *   "longer"    the Subject gets much longer (a header edit that changes
 *               the header block's length)
 * With "accept_stream": true it returns ACCEPT from its first on_header
 * (it wants no more of the stream); with "eoh": "reject" it rejects at
 * on_eoh (554 5.7.0 stream says no).
 */
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

struct stream {
    int accept_stream;
    int eoh_reject;
};

/* Per session: the body octets seen this message. */
struct stream_sess {
    long long body;
};

static void *
stream_create(const json_t *conf, const modmta_host *host, modmta_err *err)
{
    struct stream *st = calloc(1, sizeof(*st));
    const char *eoh = json_string_value(json_object_get(conf, "eoh"));

    if (st == NULL) {
        modmta_err_set(err, NULL, "out of memory");
        return NULL;
    }
    st->accept_stream = json_is_true(json_object_get(conf, "accept_stream"));
    st->eoh_reject = eoh != NULL && strcmp(eoh, "reject") == 0;
    return st;
}

static void
stream_destroy(void *inst)
{
    free(inst);
}

static struct stream_sess *
stream_sess(void *inst, modmta_ctx *ctx)
{
    struct stream_sess *ss = modmta_ctx_get_data(ctx, inst);

    if (ss == NULL && (ss = calloc(1, sizeof(*ss))) != NULL &&
        modmta_ctx_set_data(ctx, inst, ss, free) < 0) {
        free(ss);
        ss = NULL;
    }
    return ss;
}

static modmta_verdict
stream_on_header(void *inst, modmta_ctx *ctx, const char *name,
                 const char *value)
{
    struct stream *st = inst;
    struct stream_sess *ss = stream_sess(inst, ctx);

    if (ss == NULL)
        return MODMTA_TEMPFAIL;
    if (strcmp(name, "Received") == 0)
        ss->body = 0; /* the first field: a new message */
    modmta_log(ctx, MODMTA_LOG_INFO, "header %s folded=%d", name,
               strstr(value, "\r\n\t") != NULL);
    return st->accept_stream ? MODMTA_ACCEPT : MODMTA_CONTINUE;
}

static modmta_verdict
stream_on_eoh(void *inst, modmta_ctx *ctx)
{
    struct stream *st = inst;

    modmta_log(ctx, MODMTA_LOG_INFO, "eoh");
    if (st->eoh_reject) {
        modmta_reply(ctx, 554, "5.7.0", "stream says no");
        return MODMTA_REJECT;
    }
    return MODMTA_CONTINUE;
}

static modmta_verdict
stream_on_body(void *inst, modmta_ctx *ctx, const unsigned char *chunk,
               size_t len)
{
    struct stream_sess *ss = stream_sess(inst, ctx);

    if (ss == NULL)
        return MODMTA_TEMPFAIL;
    if (chunk != NULL) {
        ss->body += (long long)len;
        return MODMTA_CONTINUE;
    }
    modmta_log(ctx, MODMTA_LOG_INFO, "body size=%lld end=%lld", ss->body,
               (long long)modmta_body_size(ctx));
    return MODMTA_CONTINUE;
}

static void
stream_on_abort(void *inst, modmta_ctx *ctx)
{
    modmta_log(ctx, MODMTA_LOG_INFO, "abort sender=<%s>",
               modmta_sender(ctx) != NULL ? modmta_sender(ctx) : "?");
}

static const char *
dash(const char *s)
{
    return s != NULL ? s : "-";
}

/* The action the Subject names; 0, or a failed call's error. */
static int
stream_act(modmta_ctx *ctx, const char *subject)
{
    static const char *const lines[] = {
        "first line of three", "second line", "third and last line",
    };
    int rc;

    if (strcmp(subject, "insert") == 0)
        return modmta_hdr_insert(ctx, 1, "X-Inserted", "at-one");
    if (strcmp(subject, "replace") == 0) {
        rc = modmta_body_replace(ctx, "replaced body\r\n", 15);
        return rc < 0 ? rc : modmta_body_replace(ctx, "line two\r\n", 10);
    }
    if (strcmp(subject, "lines") == 0)
        return modmta_reply_lines(ctx, 550, "5.7.1", lines, 3);
    if (strcmp(subject, "params") == 0) {
        rc = modmta_sender_set_params(ctx, "new@localhost",
                                      "RET=HDRS ENVID=e2e-envid");
        return rc < 0 ? rc
                      : modmta_rcpt_add_params(ctx, "carol@localhost",
                                               "NOTIFY=NEVER "
                                               "ORCPT=rfc822;carol+40orig.test");
    }
    if (strcmp(subject, "longer") == 0)
        return modmta_hdr_change(ctx, "Subject", 0,
                                 "longer: a subject that makes the header "
                                 "block longer than it was");
    return 0;
}

static modmta_verdict
stream_on_data(void *inst, modmta_ctx *ctx)
{
    const char *subject = modmta_hdr_get(ctx, "Subject", 0);
    int rc;

    modmta_log(ctx, MODMTA_LOG_INFO, "data local=%s:%d mech=%s tls=%s/%s/%d",
               dash(modmta_local_addr(ctx)), modmta_local_port(ctx),
               dash(modmta_auth_mech(ctx)), dash(modmta_tls_version(ctx)),
               dash(modmta_tls_cipher(ctx)), modmta_tls_cipher_bits(ctx));
    if (subject == NULL)
        return MODMTA_CONTINUE;
    rc = stream_act(ctx, subject);
    if (rc < 0) {
        modmta_reply(ctx, 451, "4.3.0", "stream: %s failed: %s", subject,
                     modmta_strerror(rc));
        return MODMTA_TEMPFAIL;
    }
    return strcmp(subject, "lines") == 0 ? MODMTA_REJECT : MODMTA_CONTINUE;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "stream",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDHDRS | MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM
            | MODMTA_CAP_ADDRCPT | MODMTA_CAP_CHGBODY,
    .create = stream_create,
    .destroy = stream_destroy,
    .on_data = stream_on_data,
    .on_header = stream_on_header,
    .on_eoh = stream_on_eoh,
    .on_body = stream_on_body,
    .on_abort = stream_on_abort,
};
