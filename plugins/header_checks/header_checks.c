/*
 * header_checks: Postfix's header_checks and body_checks, written against
 * the public SDK only. Rule files in regexp_table(5) format
 * (header_checks_table.c), re-read when they change through the SDK's
 * reload helper; applied at on_data to each logical header and to the
 * body lines (header_checks_scan.c). README.md has the keys and what
 * differs from Postfix.
 */
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "header_checks_scan.h"

/* Postfix's body_checks_size_limit */
#define HC_BODY_LIMIT_DEFAULT 51200

struct hc_conf {
    char *header_checks;
    char *body_checks;
    long long body_limit;
};

struct hc {
    modmta_reload *headers; /* NULL: no header_checks */
    modmta_reload *body;    /* NULL: no body_checks */
    long long body_limit;
};

static const modmta_option hc_opts[] = {
    MODMTA_OPTION_STRING("header_checks", struct hc_conf, header_checks, 0),
    MODMTA_OPTION_STRING("body_checks", struct hc_conf, body_checks, 0),
    MODMTA_OPTION_SIZE("body_checks_size_limit", struct hc_conf, body_limit,
                       0, 0, LLONG_MAX),
    MODMTA_OPTION_END
};

/* load() arguments: which kind of file */
static enum hc_file hc_file_header = HC_FILE_HEADER;
static enum hc_file hc_file_body = HC_FILE_BODY;

static void hc_destroy(void *inst);

/* Open path (may be NULL: nothing to open) as the file of key. */
static int
hc_open(const char *path, const char *key, enum hc_file *kind,
        const modmta_host *host, modmta_reload **r_out, modmta_err *err_r)
{
    char jpath[300];

    if (path == NULL)
        return 0;
    snprintf(jpath, sizeof(jpath), "%s.%s", modmta_host_path(host), key);
    *r_out = modmta_reload_open(path, hc_table_load, hc_table_free, kind,
                                jpath, err_r);
    return *r_out != NULL ? 0 : MODMTA_E_CONFIG;
}

static void *
hc_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct hc_conf c = { .body_limit = HC_BODY_LIMIT_DEFAULT };
    struct hc *hc = calloc(1, sizeof(*hc));
    int r;

    if (hc == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    r = modmta_conf_parse_options(conf, host, hc_opts, &c, err_r);
    if (r == 0 && c.header_checks == NULL && c.body_checks == NULL) {
        r = modmta_conf_error(host, err_r, NULL, "nothing to check: give "
                              "header_checks, body_checks or both");
    }
    if (r == 0)
        r = hc_open(c.header_checks, "header_checks", &hc_file_header, host,
                    &hc->headers, err_r);
    if (r == 0)
        r = hc_open(c.body_checks, "body_checks", &hc_file_body, host,
                    &hc->body, err_r);
    hc->body_limit = c.body_limit;
    modmta_conf_free_options(hc_opts, &c);
    if (r < 0) {
        hc_destroy(hc);
        return NULL;
    }
    return hc;
}

static void
hc_destroy(void *inst)
{
    struct hc *hc = inst;

    if (hc == NULL)
        return;
    modmta_reload_close(hc->headers);
    modmta_reload_close(hc->body);
    free(hc);
}

static modmta_verdict
hc_on_data(void *inst, modmta_ctx *ctx)
{
    const struct hc *hc = inst;
    struct hc_state st = { .ctx = ctx, .verdict = MODMTA_CONTINUE };
    void *t;
    int r = 0;

    if (hc->headers != NULL) {
        t = modmta_reload_acquire(hc->headers);
        r = hc_scan_headers(&st, t);
        modmta_reload_release(hc->headers, t);
    }
    if (r == 0 && hc->body != NULL && hc->body_limit > 0) {
        t = modmta_reload_acquire(hc->body);
        r = hc_scan_body(&st, t, hc->body_limit);
        modmta_reload_release(hc->body, t);
    }
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_ERR, "inspection failed: %s",
                   modmta_strerror(r));
        modmta_reply(ctx, 451, "4.3.0", "Temporary failure in content "
                     "inspection, try again later");
        return MODMTA_TEMPFAIL;
    }
    return st.verdict;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "header_checks",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDHDRS | MODMTA_CAP_CHGHDRS | MODMTA_CAP_QUARANTINE,
    .create = hc_create,
    .destroy = hc_destroy,
    .on_data = hc_on_data,
};
