/*
 * deliver_smtp: the SMTP transport. Claims every recipient whose domain
 * is not received here (and whatever the transport table routes), names
 * its destination — the transport table's entry, else the relayhost,
 * else the domain itself for an MX lookup — and delivers each group the
 * core hands it with xfer_deliver(). See README.md.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <idn2.h>

#include <modmta/modmta.h>

#include "nexthop.h"
#include "xfer.h"

struct dsmtp_conf {
    char *relayhost;
    modmta_map *transport;
    long long port;
    char *helo_name;
    char *tls;
    modmta_map *tls_policy;
    char *tls_ca_file;
    modmta_map *auth;
    int connection_cache;
    long long cache_idle;
    long long cache_lifetime;
    long long connect_timeout;
    long long command_timeout;
    long long data_timeout;
    long long max_addresses;
    long long max_sessions;
};

struct dsmtp {
    struct dsmtp_conf conf;
    struct nexthop relay;          /* conf.relayhost, parsed */
    struct xfer_conf x;
};

static const modmta_option dsmtp_opts[] = {
    MODMTA_OPTION_STRING("relayhost", struct dsmtp_conf, relayhost, 0),
    MODMTA_OPTION_MAP("transport", struct dsmtp_conf, transport, 0),
    MODMTA_OPTION_RANGE("port", struct dsmtp_conf, port, 0, 1, 65535),
    MODMTA_OPTION_STRING("helo_name", struct dsmtp_conf, helo_name, 0),
    MODMTA_OPTION_STRING("tls", struct dsmtp_conf, tls, 0),
    MODMTA_OPTION_MAP("tls_policy", struct dsmtp_conf, tls_policy, 0),
    MODMTA_OPTION_STRING("tls_ca_file", struct dsmtp_conf, tls_ca_file, 0),
    MODMTA_OPTION_MAP("auth", struct dsmtp_conf, auth, 0),
    MODMTA_OPTION_BOOL("connection_cache", struct dsmtp_conf, connection_cache,
                       0),
    MODMTA_OPTION_SECONDS("cache_idle", struct dsmtp_conf, cache_idle, 0, 1,
                          3600),
    MODMTA_OPTION_SECONDS("cache_lifetime", struct dsmtp_conf, cache_lifetime,
                          0, 1, 86400),
    MODMTA_OPTION_SECONDS("connect_timeout", struct dsmtp_conf,
                          connect_timeout, 0, 1, 3600),
    MODMTA_OPTION_SECONDS("command_timeout", struct dsmtp_conf,
                          command_timeout, 0, 1, 3600),
    MODMTA_OPTION_SECONDS("data_timeout", struct dsmtp_conf, data_timeout, 0,
                          1, 3600),
    MODMTA_OPTION_RANGE("max_addresses", struct dsmtp_conf, max_addresses, 0,
                        1, 64),
    MODMTA_OPTION_RANGE("max_sessions", struct dsmtp_conf, max_sessions, 0,
                        1, 64),
    MODMTA_OPTION_END
};

static void
dsmtp_destroy(void *inst)
{
    struct dsmtp *d = inst;

    if (d == NULL)
        return;
    smtpc_cache_free(d->x.cache);
    modmta_tls_client_free(d->x.tls);
    modmta_conf_free_options(dsmtp_opts, &d->conf);
    free(d);
}

static void
dsmtp_defaults(struct dsmtp_conf *c)
{
    c->port = 25;
    c->connection_cache = 1;
    c->cache_idle = 2;
    c->cache_lifetime = 300;
    c->connect_timeout = 30;
    c->command_timeout = 300;
    c->data_timeout = 600;
    c->max_addresses = 5;
    c->max_sessions = 2;
}

/* Credentials must not be readable by everyone (Postfix leaves that to
 * the administrator; a mail server should not). */
static int
dsmtp_check_auth_file(const json_t *conf, const modmta_host *h,
                      modmta_err *err_r)
{
    const char *spec = json_string_value(json_object_get(conf, "auth"));
    struct stat st;

    if (spec == NULL || strncmp(spec, "file:", 5) != 0 ||
        stat(spec + 5, &st) < 0)
        return 0;
    if (st.st_mode & S_IROTH)
        return xfer_conf_error(h, err_r, "auth", "the credentials file is "
                         "readable by everyone: chmod o-r it");
    return 0;
}

static int
dsmtp_setup(struct dsmtp *d, const json_t *conf, const modmta_host *h,
            modmta_err *err_r)
{
    struct dsmtp_conf *c = &d->conf;
    char why[300] = "", dest[256];     /* modmta_dlv_route's 255 */

    if (xfer_conf_helo(c->helo_name, h, err_r) < 0 ||
        dsmtp_check_auth_file(conf, h, err_r) < 0)
        return -1;
    if (c->relayhost != NULL &&
        (nexthop_parse(c->relayhost, 1, &d->relay, why, sizeof(why)) < 0 ||
         d->relay.kind != NEXTHOP_SMTP || d->relay.host[0] == '\0'))
        return xfer_conf_error(h, err_r, "relayhost",
                               why[0] ? why : "expected \"[host]:port\", "
                               "\"host:port\" or \"host\"");
    if (c->relayhost != NULL &&
        nexthop_format(&d->relay, "", dest, sizeof(dest)) < 0)
        return xfer_conf_error(h, err_r, "relayhost", "too long");
    if (xfer_tls_level(c->tls != NULL ? c->tls : "may", &d->x.tls_level) < 0)
        return xfer_conf_error(h, err_r, "tls", "expected \"none\", \"may\", "
                         "\"encrypt\" or \"verify\"");
    d->x.tls = modmta_tls_client_new(c->tls_ca_file, NULL, err_r);
    if (d->x.tls == NULL) {
        if (err_r != NULL && err_r->path[0] == '\0')
            xfer_conf_error(h, err_r, "tls_ca_file", err_r->msg);
        return -1;
    }
    if (c->connection_cache &&
        (d->x.cache = smtpc_cache_new((int)c->cache_idle * 1000,
                                      (int)c->cache_lifetime * 1000)) ==
            NULL)
        return xfer_conf_error(h, err_r, "connection_cache", "out of memory");
    d->x.helo = c->helo_name != NULL ? c->helo_name : modmta_host_hostname(h);
    d->x.port = (int)c->port;
    d->x.tls_policy = c->tls_policy;
    d->x.auth = c->auth;
    d->x.max_addrs = (int)c->max_addresses;
    d->x.max_sessions = (int)c->max_sessions;
    xfer_timeouts(&d->x.timeouts, c->connect_timeout, c->command_timeout,
                  c->data_timeout);
    return 0;
}

static void *
dsmtp_create(const json_t *conf, const modmta_host *host, modmta_err *err_r)
{
    struct dsmtp *d = calloc(1, sizeof(*d));

    if (d == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    dsmtp_defaults(&d->conf);
    if (modmta_conf_parse_options(conf, host, dsmtp_opts, &d->conf,
                                  err_r) < 0 ||
        dsmtp_setup(d, conf, host, err_r) < 0) {
        dsmtp_destroy(d);
        return NULL;
    }
    return d;
}

/* ---- routing ---- */

/* The transport table's entry for rcpt (Postfix's transport(5) order:
 * the address, the domain, each parent domain as ".parent", then "*").
 * 1 found (*value_r to free), 0 none, <0 lookup error. */
static int
dsmtp_transport_entry(modmta_map *m, const char *rcpt, const char *domain,
                      char **value_r)
{
    int rc;

    if ((rc = modmta_map_lookup(m, rcpt, value_r)) != 0 ||
        (rc = modmta_map_lookup(m, domain, value_r)) != 0)
        return rc;
    for (const char *p = strchr(domain, '.'); p != NULL;
         p = strchr(p + 1, '.'))
        if ((rc = modmta_map_lookup(m, p, value_r)) != 0)
            return rc;
    return modmta_map_lookup(m, "*", value_r);
}

static modmta_verdict
dsmtp_route_to(modmta_ctx *ctx, const struct nexthop *nh, const char *domain)
{
    char dest[300];

    switch (nh->kind) {
    case NEXTHOP_LOCAL:
        return MODMTA_CONTINUE;
    case NEXTHOP_ERROR:
        modmta_reply(ctx, nh->esc[0] == '4' ? 450 : 550, nh->esc, "%s",
                     nh->text);
        return nh->esc[0] == '4' ? MODMTA_TEMPFAIL : MODMTA_REJECT;
    default:
        break;
    }
    if (nexthop_format(nh, domain, dest, sizeof(dest)) < 0 ||
        modmta_dlv_route(ctx, dest) < 0) {
        modmta_reply(ctx, 451, "4.3.5", "bad destination for %s", domain);
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_ACCEPT;
}

/* A domain in UTF-8 (an SMTPUTF8 recipient) in its A-label form, in
 * place (IDNA2008, as Postfix converts it for routing: DNS and the
 * tables know the ASCII form). -1 if it is not a valid IDN. */
static int
dsmtp_ascii_domain(char *domain, size_t len)
{
    char *ascii = NULL;
    int rc = 0;

    for (const char *p = domain; *p != '\0'; p++)
        if ((unsigned char)*p >= 0x80)
            rc = 1;
    if (rc == 0)
        return 0;
    if (idn2_to_ascii_8z(domain, &ascii, IDN2_NONTRANSITIONAL) != IDN2_OK ||
        strlen(ascii) >= len)
        rc = -1;
    else
        memcpy(domain, ascii, strlen(ascii) + 1);
    idn2_free(ascii);
    return rc < 0 ? -1 : 0;
}

static modmta_verdict
dsmtp_route(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct dsmtp *d = inst;
    const char *at = strrchr(rcpt, '@');
    char domain[256], why[300], *value = NULL;
    struct nexthop nh;
    size_t i;
    int rc;

    if (at == NULL || at[1] == '\0' || strlen(at + 1) >= sizeof(domain))
        return MODMTA_CONTINUE;     /* a bare local name: not ours */
    for (i = 0; at[1 + i] != '\0'; i++)
        domain[i] = (char)tolower((unsigned char)at[1 + i]);
    domain[i] = '\0';
    if (dsmtp_ascii_domain(domain, sizeof(domain)) < 0) {
        modmta_reply(ctx, 550, "5.1.2", "<%s>: bad internationalized domain "
                     "name", rcpt);
        return MODMTA_REJECT;
    }
    if (d->conf.transport != NULL) {
        rc = dsmtp_transport_entry(d->conf.transport, rcpt, domain, &value);
        if (rc < 0) {
            modmta_reply(ctx, 451, "4.3.0", "transport table lookup "
                         "failed");
            return MODMTA_TEMPFAIL;
        }
        if (rc > 0) {
            rc = nexthop_parse(value, 0, &nh, why, sizeof(why));
            modmta_free(value);
            if (rc < 0) {
                modmta_log(ctx, MODMTA_LOG_ERR, "transport entry for <%s>: "
                           "%s", rcpt, why);
                modmta_reply(ctx, 451, "4.3.5", "bad transport table "
                             "entry");
                return MODMTA_TEMPFAIL;
            }
            return dsmtp_route_to(ctx, &nh, domain);
        }
    }
    if (modmta_is_inbound_domain(ctx, domain))
        return MODMTA_CONTINUE;
    if (d->conf.relayhost != NULL)
        return dsmtp_route_to(ctx, &d->relay, domain);
    memset(&nh, 0, sizeof(nh));
    nh.kind = NEXTHOP_SMTP;
    nh.mx = 1;
    return dsmtp_route_to(ctx, &nh, domain);
}

static void
dsmtp_deliver_msg(void *inst, modmta_ctx *ctx, const char *dest)
{
    struct dsmtp *d = inst;

    xfer_deliver(&d->x, ctx, dest);
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "deliver_smtp",
    .version = "1.0.0",
    .create = dsmtp_create,
    .destroy = dsmtp_destroy,
    .route = dsmtp_route,
    .deliver_msg = dsmtp_deliver_msg,
};
