/*
 * deliver_lmtp: hands every recipient of its domains — or every local
 * recipient (local_domains and the domains modules receive for) — to one
 * LMTP server (RFC 2033), as Postfix's virtual_transport = lmtp:... hands
 * local mail to Dovecot. One reply per recipient after DATA: each
 * mailbox's own answer. The client is deliver_smtp's (xfer.h). See
 * README.md.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/modmta.h>

#include "nexthop.h"
#include "xfer.h"

struct dlmtp_conf {
    char *server;
    char **domains;
    modmta_map *users;
    char *helo_name;
    int connection_cache;
    long long connect_timeout;
    long long command_timeout;
    long long data_timeout;
};

struct dlmtp {
    struct dlmtp_conf conf;
    char dest[256];     /* "lmtp:unix:/path": modmta_dlv_route's 255 */
    struct xfer_conf x;
    const char *delims; /* the host's recipient_delimiter */
};

static const modmta_option dlmtp_opts[] = {
    MODMTA_OPTION_STRING("server", struct dlmtp_conf, server,
                         MODMTA_OPT_REQUIRED),
    MODMTA_OPTION_STRLIST("domains", struct dlmtp_conf, domains, 0),
    MODMTA_OPTION_MAP("users", struct dlmtp_conf, users, 0),
    MODMTA_OPTION_STRING("helo_name", struct dlmtp_conf, helo_name, 0),
    MODMTA_OPTION_BOOL("connection_cache", struct dlmtp_conf, connection_cache,
                       0),
    MODMTA_OPTION_SECONDS("connect_timeout", struct dlmtp_conf,
                          connect_timeout, 0, 1, 3600),
    MODMTA_OPTION_SECONDS("command_timeout", struct dlmtp_conf,
                          command_timeout, 0, 1, 3600),
    MODMTA_OPTION_SECONDS("data_timeout", struct dlmtp_conf, data_timeout, 0,
                          1, 3600),
    MODMTA_OPTION_END
};

static void
dlmtp_destroy(void *inst)
{
    struct dlmtp *d = inst;

    if (d == NULL)
        return;
    smtpc_cache_free(d->x.cache);
    modmta_conf_free_options(dlmtp_opts, &d->conf);
    free(d);
}

/* "unix:/path", "inet:host:port", or the same after "lmtp:". */
static int
dlmtp_server(struct dlmtp *d, const modmta_host *h, modmta_err *err_r)
{
    const char *s = d->conf.server;
    char spec[NEXTHOP_PATH_MAX + NEXTHOP_HOST_MAX], why[300];
    struct nexthop nh;
    int n;

    n = snprintf(spec, sizeof(spec), "%s%s",
                 strncmp(s, "lmtp:", 5) == 0 ? "" : "lmtp:", s);
    if (n < 0 || (size_t)n >= sizeof(spec))
        return xfer_conf_error(h, err_r, "server", "too long");
    if (nexthop_parse(spec, 0, &nh, why, sizeof(why)) < 0 ||
        (nh.kind != NEXTHOP_LMTP_UNIX && nh.kind != NEXTHOP_LMTP_INET))
        return xfer_conf_error(h, err_r, "server", "expected "
                               "\"unix:/path\" or \"inet:host:port\"");
    if (nexthop_format(&nh, "", d->dest, sizeof(d->dest)) < 0)
        return xfer_conf_error(h, err_r, "server", "too long");
    return 0;
}

/* Domain names, lower-cased; an empty list would claim nothing. */
static int
dlmtp_domains(struct dlmtp *d, const modmta_host *h, modmta_err *err_r)
{
    char key[40];
    size_t i;

    for (i = 0; d->conf.domains != NULL && d->conf.domains[i]; i++) {
        char *p = d->conf.domains[i];

        snprintf(key, sizeof(key), "domains[%zu]", i);
        if (*p == '\0' || strlen(p) > 253)
            return xfer_conf_error(h, err_r, key, "expected a domain name");
        for (; *p != '\0'; p++) {
            *p = (char)tolower((unsigned char)*p);
            if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
                return xfer_conf_error(h, err_r, key,
                                       "expected a domain name");
        }
    }
    if (d->conf.domains != NULL && i == 0)
        return xfer_conf_error(h, err_r, "domains", "empty: leave the key "
                               "out for every local recipient");
    return 0;
}

static void *
dlmtp_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct dlmtp *d = calloc(1, sizeof(*d));
    struct dlmtp_conf *c;

    if (d == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    c = &d->conf;
    d->delims = modmta_host_recipient_delimiter(host);
    c->connection_cache = 1;
    c->connect_timeout = 30;
    c->command_timeout = 300;
    c->data_timeout = 600;
    if (modmta_conf_parse_options(conf, host, dlmtp_opts, c, err_r) < 0 ||
        dlmtp_server(d, host, err_r) < 0 ||
        dlmtp_domains(d, host, err_r) < 0 ||
        xfer_conf_helo(c->helo_name, host, err_r) < 0)
        goto fail;
    if (c->connection_cache &&
        (d->x.cache = smtpc_cache_new(2000, 300000)) == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        goto fail;
    }
    d->x.helo = c->helo_name != NULL ? c->helo_name
                                     : modmta_host_hostname(host);
    d->x.tls_level = XFER_TLS_NONE;
    d->x.max_addrs = 5;
    d->x.max_sessions = 2;
    xfer_timeouts(&d->x.timeouts, c->connect_timeout, c->command_timeout,
                  c->data_timeout);
    return d;
fail:
    dlmtp_destroy(d);
    return NULL;
}

/* Its domains, or (none configured) a local recipient. */
static int
dlmtp_mine(const struct dlmtp *d, modmta_ctx *ctx, const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');

    if (d->conf.domains == NULL)
        return at == NULL || modmta_is_inbound_domain(ctx, at + 1);
    if (at == NULL)
        return 0;
    for (size_t i = 0; d->conf.domains[i] != NULL; i++)
        if (strcasecmp(d->conf.domains[i], at + 1) == 0)
            return 1;
    return 0;
}

/* key in the users map, then key without its extension (an exact entry
 * wins). 1, 0, or <0 on a lookup error. */
static int
dlmtp_user_lookup(const struct dlmtp *d, const char *key)
{
    char base[MODMTA_ADDR_PATH_MAX * 2], ext[MODMTA_ADDR_PATH_MAX * 2];
    int rc = modmta_map_lookup(d->conf.users, key, NULL);

    if (rc != 0 ||
        modmta_addr_split_extension(key,
                                    d->delims, base, sizeof(base), ext,
                                    sizeof(ext)) != 1)
        return rc;
    return modmta_map_lookup(d->conf.users, base, NULL);
}

/* Is rcpt in the users map, by its address, then its local part (each
 * as is, then without its extension: Postfix's order)? 1, 0, or <0 on
 * a lookup error. */
static int
dlmtp_user_known(const struct dlmtp *d, const char *rcpt)
{
    const char *at = strrchr(rcpt, '@');
    char local[256];
    int rc = dlmtp_user_lookup(d, rcpt);

    if (rc != 0 || at == NULL || (size_t)(at - rcpt) >= sizeof(local))
        return rc;
    memcpy(local, rcpt, (size_t)(at - rcpt));
    local[at - rcpt] = '\0';
    return dlmtp_user_lookup(d, local);
}

/* At RCPT: the recipients this instance delivers are claimed, so that a
 * domain only the LMTP server holds is received at all. With "users"
 * (Postfix's virtual_mailbox_maps) an unknown user is refused here, as
 * DESIGN.md wants; without it the server's own answer comes at
 * delivery, as a DSN. */
static modmta_verdict
dlmtp_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct dlmtp *d = inst;
    int rc;

    if (!dlmtp_mine(d, ctx, rcpt))
        return MODMTA_CONTINUE;
    if (d->conf.users == NULL)
        return MODMTA_ACCEPT;
    rc = dlmtp_user_known(d, rcpt);
    if (rc > 0)
        return MODMTA_ACCEPT;
    if (rc < 0) {
        modmta_reply(ctx, 451, "4.3.0", "<%s>: users table lookup failed",
                     rcpt);
        return MODMTA_TEMPFAIL;
    }
    modmta_reply(ctx, 550, "5.1.1", "<%s>: Recipient address rejected: "
                 "User unknown", rcpt);
    return MODMTA_REJECT;
}

static modmta_verdict
dlmtp_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct dlmtp *d = inst;

    if (!dlmtp_mine(d, ctx, rcpt))
        return MODMTA_CONTINUE;
    if (modmta_dlv_route(ctx, d->dest) < 0) {
        modmta_reply(ctx, 451, "4.3.5", "bad LMTP destination");
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_ACCEPT;
}

static void
dlmtp_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    struct dlmtp *d = inst;

    xfer_deliver(&d->x, ctx, dest);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "deliver_lmtp",
    .version = "1.0.0",
    .create = dlmtp_create,
    .destroy = dlmtp_destroy,
    .on_rcpt = dlmtp_on_rcpt,
    .route = dlmtp_route,
    .deliver_msg = dlmtp_deliver_msg,
};
