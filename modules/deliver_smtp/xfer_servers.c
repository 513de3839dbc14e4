/*
 * The servers of a destination, in the order to try them (xfer.h): a
 * UNIX socket, a host's addresses, or a domain's MX hosts, with the mail
 * loop cut off. Each failure is a reason for every recipient.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "xfer_priv.h"

/* The reason no server can be listed, for every recipient. */
static int
xfer_no_servers(struct xfer_servers *sv, modmta_dstatus st, const char *esc,
                const char *fmt, const char *name)
{
    sv->status = st;
    snprintf(sv->esc, sizeof(sv->esc), "%s", esc);
    snprintf(sv->text, sizeof(sv->text), fmt, name);
    return -1;
}

static int
xfer_push(struct xfer_servers *sv, const char *name, int pref,
          const struct sockaddr_storage *ss, socklen_t len)
{
    struct xfer_server *s;
    const void *a;

    if (sv->n == XFER_SERVERS_MAX)
        return 0;
    s = &sv->s[sv->n++];
    memset(s, 0, sizeof(*s));
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->pref = pref;
    memcpy(&s->sa, ss, len);
    s->salen = len;
    a = ss->ss_family == AF_INET
            ? (const void *)&((const struct sockaddr_in *)ss)->sin_addr
            : (const void *)&((const struct sockaddr_in6 *)ss)->sin6_addr;
    inet_ntop(ss->ss_family, a, s->addr, sizeof(s->addr));
    return 0;
}

/* An address literal ("192.0.2.1", "IPv6:2001:db8::1", "::1") into ss. */
static socklen_t
xfer_literal(const char *host, int port, struct sockaddr_storage *ss)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

    memset(ss, 0, sizeof(*ss));
    if (strncasecmp(host, "IPv6:", 5) == 0)
        host += 5;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        return sizeof(*s4);
    }
    if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        return sizeof(*s6);
    }
    return 0;
}

/* A host's own addresses (no MX lookup): AAAA then A. */
static int
xfer_host_addrs(struct xfer_servers *sv, modmta_dns *dns, const char *host,
                int port)
{
    static const int types[] = {MODMTA_DNS_AAAA, MODMTA_DNS_A};
    struct sockaddr_storage ss;
    int temp = 0, any = 0;
    socklen_t len;

    if ((len = xfer_literal(host, port, &ss)) > 0)
        return xfer_push(sv, host, 0, &ss, len);
    for (size_t t = 0; t < 2; t++) {
        modmta_dns_result *res = NULL;
        int rc = modmta_dns_lookup(dns, host, types[t], &res);

        if (rc == MODMTA_E_INVAL) {
            return xfer_no_servers(sv, MODMTA_FAILED, "5.1.2",
                                   "bad host name: %s", host);
        }
        temp |= rc < 0;
        for (size_t i = 0; rc > 0 && i < modmta_dns_count(res); i++) {
            len = xfer_literal(modmta_dns_text_at(res, i), port, &ss);
            if (len > 0 && xfer_push(sv, host, 0, &ss, len) == 0)
                any = 1;
        }
        modmta_dns_result_free(res);
    }
    if (any)
        return 0;
    if (temp)
        return xfer_no_servers(sv, MODMTA_DEFERRED, "4.4.3",
                               "Host or domain name not found: temporary "
                               "failure looking up %s", host);
    return xfer_no_servers(sv, MODMTA_FAILED, "5.4.4",
                           "Host or domain name not found: %s has no "
                           "address", host);
}

static int
xfer_mx_hosts(struct xfer_servers *sv, modmta_dns *dns, const char *domain,
              int port)
{
    modmta_mx_list *l = NULL;
    struct sockaddr_storage ss;
    socklen_t len;
    int rc = modmta_dns_mx_list(dns, domain, &l);

    switch (rc) {
    case MODMTA_MX_OK:
        break;
    case MODMTA_MX_NULL:
        return xfer_no_servers(sv, MODMTA_FAILED, "5.1.10", "Recipient "
                               "address rejected: %s has a null MX (it "
                               "accepts no mail, RFC 7505)", domain);
    case MODMTA_MX_NODOMAIN:
        return xfer_no_servers(sv, MODMTA_FAILED, "5.1.2", "Host or domain "
                               "name not found: %s does not exist", domain);
    case MODMTA_MX_NOHOST:
        return xfer_no_servers(sv, MODMTA_FAILED, "5.4.4", "Host or domain "
                               "name not found: no mail server of %s has an "
                               "address", domain);
    case MODMTA_E_INVAL:
        return xfer_no_servers(sv, MODMTA_FAILED, "5.1.2",
                               "bad domain name: %s", domain);
    default:
        return xfer_no_servers(sv, MODMTA_DEFERRED, "4.4.3", "Host or "
                               "domain name not found: temporary failure "
                               "looking up %s", domain);
    }
    for (size_t i = 0; i < modmta_mx_count(l); i++) {
        len = modmta_mx_addr(l, i, port, &ss);
        if (len > 0)
            xfer_push(sv, modmta_mx_host(l, i), modmta_mx_pref(l, i), &ss,
                      len);
    }
    modmta_mx_list_free(l);
    return 0;
}

/* RFC 5321 5.1: when an MX is this host, only better ones may be used;
 * none left means the mail would come back (Postfix: "mail for X loops
 * back to myself"). Hosts without MX lookup are this host or not. */
static int
xfer_cut_loop(struct xfer_servers *sv, const modmta_host *h,
              const char *name)
{
    for (size_t i = 0; i < sv->n; i++) {
        const struct xfer_server *s = &sv->s[i];

        if (!modmta_host_is_own_address(h, (const struct sockaddr *)&s->sa,
                                        s->salen))
            continue;
        /* everything at this preference or worse goes */
        while (i > 0 && sv->s[i - 1].pref == s->pref)
            i--;
        sv->n = i;
        break;
    }
    if (sv->n > 0)
        return 0;
    return xfer_no_servers(sv, MODMTA_FAILED, "5.4.6",
                           "mail for %s loops back to myself", name);
}

int
xfer_servers_get(struct xfer_servers *sv, modmta_ctx *ctx,
                 const struct nexthop *nh, int default_port)
{
    const modmta_host *h = modmta_ctx_host(ctx);
    modmta_dns *dns = modmta_host_dns(h);
    int port = nh->port ? nh->port : default_port;
    int rc;

    memset(sv, 0, sizeof(*sv));
    if (nh->kind == NEXTHOP_LMTP_UNIX) {
        struct xfer_server *s = &sv->s[sv->n++];

        snprintf(s->name, sizeof(s->name), "%s", nh->path);
        s->unix_path = nh->path;
        return 0;
    }
    if (nh->kind == NEXTHOP_SMTP && nh->mx)
        rc = xfer_mx_hosts(sv, dns, nh->host, port);
    else
        rc = xfer_host_addrs(sv, dns, nh->host, port);
    if (rc < 0)
        return rc;
    return xfer_cut_loop(sv, h, nh->host);
}
