/* A module built against the frozen ABI 1.0 headers (sdk/tests/abi10/,
 * never edited), as a third party built one then: it must keep loading
 * and working in every 1.x daemon. It uses the 1.0 tables and calls of
 * each kind:
 *   - an option table (modmta_opt as 1.0 laid it out): "tag" (string,
 *     required), "reject" (a map of local parts to a reply text);
 *   - ehlo() offers XFROZEN, a verb (1.0's modmta_verb) that asks for one
 *     line through the connection and answers "250 2.0.0 frozen10 ARGS
 *     LINE";
 *   - on_helo keeps the HELO name as session data (with a destructor);
 *   - on_rcpt rejects a local part found in "reject" (550 5.7.1 with the
 *     map's value), else CONTINUE;
 *   - on_data adds "X-Frozen10: tag=TAG helo=HELO rcpts=N" (ADDHDRS) and
 *     logs a line. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/modmta.h>

#if MODMTA_ABI_MAJOR != 1 || MODMTA_ABI_MINOR != 0
#error "frozen10 must be built against the ABI 1.0 headers"
#endif

struct frozen10 {
    char *tag;
    modmta_map *reject;
};

static const modmta_opt frozen10_opts[] = {
    { "tag", MODMTA_OPT_STRING, offsetof(struct frozen10, tag),
      MODMTA_OPT_REQUIRED },
    { "reject", MODMTA_OPT_MAP, offsetof(struct frozen10, reject), 0 },
    { NULL, 0, 0, 0 }
};

static void
frozen10_destroy(void *inst)
{
    modmta_conf_free(frozen10_opts, inst);
    free(inst);
}

static void *
frozen10_create(const json_t *conf, const modmta_host *host,
                modmta_err *err_r)
{
    struct frozen10 *f = calloc(1, sizeof(*f));

    if (f == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    if (modmta_conf_parse(conf, host, frozen10_opts, f, err_r) != 0) {
        frozen10_destroy(f);
        return NULL;
    }
    return f;
}

static void
frozen10_ehlo(void *inst, modmta_ctx *ctx)
{
    modmta_ehlo_add(ctx, "XFROZEN");
}

static modmta_verdict
frozen10_verb(void *inst, modmta_ctx *ctx, modmta_conn *conn,
              const char *args)
{
    char line[128];
    ssize_t n;

    modmta_conn_printf(conn, "334 go ahead\r\n");
    n = modmta_conn_readline(conn, line, sizeof(line), 30000);
    if (n < 0) {
        modmta_reply(ctx, 501, "5.5.2", "frozen10: %s",
                     modmta_strerror((int)n));
        return MODMTA_REJECT;
    }
    modmta_reply(ctx, 250, "2.0.0", "frozen10 %s %s", args, line);
    return MODMTA_ACCEPT;
}

static const modmta_verb frozen10_verbs[] = {
    { "XFROZEN", frozen10_verb },
    { NULL, NULL }
};

static modmta_verdict
frozen10_on_helo(void *inst, modmta_ctx *ctx, const char *helo)
{
    char *copy = strdup(helo);

    if (copy == NULL || modmta_ctx_set_data(ctx, inst, copy, free) != 0) {
        free(copy);
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

static modmta_verdict
frozen10_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct frozen10 *f = inst;
    char local[256], domain[256], *why = NULL;
    int rc;

    if (f->reject == NULL ||
        modmta_addr_split(rcpt, local, sizeof(local), domain,
                          sizeof(domain)) != 0)
        return MODMTA_CONTINUE;
    rc = modmta_map_lookup(f->reject, local, &why);
    if (rc < 0)
        return MODMTA_TEMPFAIL;
    if (rc == 0)
        return MODMTA_CONTINUE;
    modmta_reply(ctx, 550, "5.7.1", "%s", why);
    modmta_free(why);
    return MODMTA_REJECT;
}

static modmta_verdict
frozen10_on_data(void *inst, modmta_ctx *ctx)
{
    struct frozen10 *f = inst;
    const char *helo = modmta_ctx_get_data(ctx, inst);
    char value[512];

    snprintf(value, sizeof(value), "tag=%s helo=%s rcpts=%zu", f->tag,
             helo != NULL ? helo : "-", modmta_rcpt_count(ctx));
    if (modmta_hdr_add(ctx, "X-Frozen10", value) != 0)
        return MODMTA_TEMPFAIL;
    modmta_log(ctx, MODMTA_LOG_INFO, "frozen10 tagged from=<%s> %s",
               modmta_sender(ctx), value);
    return MODMTA_CONTINUE;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "frozen10",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDHDRS,
    .create = frozen10_create,
    .destroy = frozen10_destroy,
    .on_helo = frozen10_on_helo,
    .on_rcpt = frozen10_on_rcpt,
    .on_data = frozen10_on_data,
    .ehlo = frozen10_ehlo,
    .verbs = frozen10_verbs,
};
