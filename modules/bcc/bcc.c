/*
 * bcc: invisible copies, Postfix's always_bcc, sender_bcc_maps and
 * recipient_bcc_maps. At on_data (once per message) the module gathers
 * the copies every rule asks for, drops duplicates and addresses already
 * in the envelope, and adds each once with MODMTA_RCPT_NO_DSN: no header
 * names them, and a failure to deliver one is never reported to the
 * sender. Mail from <> gets no copies unless "bounces" is set.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/modmta.h>

#define BCC_ADDR_MAX (MODMTA_ADDR_PATH_MAX + 1)

struct bcc_conf {
    char *always;
    modmta_map *sender_map;
    modmta_map *recipient_map;
    int bounces;
};

struct bcc {
    struct bcc_conf conf;
    const modmta_host *host;
    char always[BCC_ADDR_MAX]; /* conf.always, canonical; "" if none */
};

static const modmta_option bcc_opts[] = {
    MODMTA_OPTION_STRING("always", struct bcc_conf, always, 0),
    MODMTA_OPTION_MAP("sender_map", struct bcc_conf, sender_map, 0),
    MODMTA_OPTION_MAP("recipient_map", struct bcc_conf, recipient_map, 0),
    MODMTA_OPTION_BOOL("bounces", struct bcc_conf, bounces, 0),
    MODMTA_OPTION_END
};

/* The copies of one message, without duplicates (txn arena). */
struct bcc_set {
    char **addrs;
    size_t n, cap;
};

/* ---- configuration ---- */

static void
bcc_destroy(void *inst)
{
    struct bcc *b = inst;

    if (b == NULL)
        return;
    modmta_conf_free_options(bcc_opts, &b->conf);
    free(b);
}

/* Canonical form of one address ("user@domain", or a bare "user"), into
 * out. 0 or MODMTA_E_INVAL. */
static int
bcc_canon(const char *in, char *out, size_t len)
{
    modmta_addr a;
    const char *end;

    if (modmta_addr_parse(in, MODMTA_ADDR_NO_BRACKETS |
                          MODMTA_ADDR_ALLOW_NODOMAIN, &a, &end) < 0 ||
        *end != '\0' || a.is_null)
        return MODMTA_E_INVAL;
    return modmta_addr_format(&a, out, len) < 0 ? MODMTA_E_INVAL : 0;
}

static void *
bcc_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct bcc *b = calloc(1, sizeof(*b));
    char path[300];

    if (b == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    b->host = host;
    if (modmta_conf_parse_options(conf, host, bcc_opts, &b->conf, err_r) < 0)
        goto fail;
    if (b->conf.always != NULL &&
        bcc_canon(b->conf.always, b->always, sizeof(b->always)) < 0) {
        snprintf(path, sizeof(path), "%s.always", modmta_host_path(host));
        modmta_err_set(err_r, path, "expected one address (user@domain)");
        goto fail;
    }
    return b;
fail:
    bcc_destroy(b);
    return NULL;
}

/* ---- the copies ---- */

/* Add addr to the set unless it is there or already a recipient. */
static int
bcc_set_add(modmta_ctx *ctx, struct bcc_set *s, const char *addr)
{
    char **na;
    size_t i;

    for (i = 0; i < s->n; i++)
        if (strcasecmp(s->addrs[i], addr) == 0)
            return 0;
    for (i = 0; i < modmta_rcpt_count(ctx); i++)
        if (strcasecmp(modmta_rcpt_at(ctx, i), addr) == 0)
            return 0;
    if (s->n == s->cap) {
        na = modmta_txn_alloc(ctx, (s->cap * 2 + 4) * sizeof(*na));
        if (na == NULL)
            return MODMTA_E_NOMEM;
        if (s->n > 0)
            memcpy(na, s->addrs, s->n * sizeof(*na));
        s->addrs = na;
        s->cap = s->cap * 2 + 4;
    }
    s->addrs[s->n] = modmta_txn_strdup(ctx, addr);
    return s->addrs[s->n++] != NULL ? 0 : MODMTA_E_NOMEM;
}

/* A map value: addresses separated by commas or white space. One that
 * does not parse is logged and skipped. */
static int
bcc_set_add_list(modmta_ctx *ctx, struct bcc_set *s, const char *value,
                 const char *key)
{
    char item[BCC_ADDR_MAX], canon[BCC_ADDR_MAX];
    size_t n;
    int r;

    while (*value != '\0') {
        value += strspn(value, ", \t");
        n = strcspn(value, ", \t");
        if (n == 0)
            break;
        if (n < sizeof(item)) {
            memcpy(item, value, n);
            item[n] = '\0';
        }
        if (n >= sizeof(item) || bcc_canon(item, canon, sizeof(canon)) < 0) {
            modmta_log(ctx, MODMTA_LOG_WARN, "bad map entry key=<%s>: "
                       "\"%.*s\" is not an address", key, (int)n, value);
        } else if ((r = bcc_set_add(ctx, s, canon)) < 0) {
            return r;
        }
        value += n;
    }
    return 0;
}

/* Look addr up as "user@domain", then "user" (local domains only), then
 * "@domain"; add what the first hit names. 0 or <0 (lookup error). */
static int
bcc_lookup(const struct bcc *b, modmta_ctx *ctx, modmta_map *map,
           struct bcc_set *s, const char *addr)
{
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    char key[BCC_ADDR_MAX * 2];
    char *v = NULL;
    int r;

    if (modmta_addr_split(addr, local, sizeof(local), domain,
                          sizeof(domain)) < 0)
        return 0;
    snprintf(key, sizeof(key), "%s", addr);
    r = modmta_map_lookup(map, key, &v);
    if (r == 0 && (domain[0] == '\0' ||
                   modmta_host_is_local_domain(b->host, domain))) {
        snprintf(key, sizeof(key), "%s", local);
        r = modmta_map_lookup(map, key, &v);
    }
    if (r == 0 && domain[0] != '\0') {
        snprintf(key, sizeof(key), "@%s", domain);
        r = modmta_map_lookup(map, key, &v);
    }
    if (r <= 0)
        return r;
    r = bcc_set_add_list(ctx, s, v, key);
    modmta_free(v);
    return r;
}

static int
bcc_collect(const struct bcc *b, modmta_ctx *ctx, struct bcc_set *s)
{
    const char *sender = modmta_sender(ctx);
    size_t i;
    int r = 0;

    if (b->always[0] != '\0')
        r = bcc_set_add(ctx, s, b->always);
    if (r == 0 && b->conf.sender_map != NULL && sender[0] != '\0')
        r = bcc_lookup(b, ctx, b->conf.sender_map, s, sender);
    for (i = 0; r == 0 && b->conf.recipient_map != NULL &&
                i < modmta_rcpt_count(ctx); i++)
        r = bcc_lookup(b, ctx, b->conf.recipient_map, s,
                       modmta_rcpt_at(ctx, i));
    return r;
}

static modmta_verdict
bcc_on_data(void *inst, modmta_ctx *ctx)
{
    const struct bcc *b = inst;
    struct bcc_set s = {0};
    const char *sender = modmta_sender(ctx);
    size_t i;
    int r;

    if (sender == NULL || (sender[0] == '\0' && !b->conf.bounces))
        return MODMTA_CONTINUE;
    r = bcc_collect(b, ctx, &s);
    for (i = 0; r == 0 && i < s.n; i++) {
        r = modmta_rcpt_add_flags(ctx, s.addrs[i], MODMTA_RCPT_NO_DSN);
        if (r == 0)
            modmta_log(ctx, MODMTA_LOG_INFO, "bcc rcpt=<%s>", s.addrs[i]);
    }
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_WARN, "tempfail reason=\"%s\"",
                   modmta_strerror(r));
        modmta_reply(ctx, 451, "4.3.0", "Error: bcc lookup failed, "
                     "try again later");
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "bcc",
    .version = "1.0.0",
    .caps = MODMTA_CAP_ADDRCPT,
    .create = bcc_create,
    .destroy = bcc_destroy,
    .on_data = bcc_on_data,
};
