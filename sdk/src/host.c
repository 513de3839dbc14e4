/* What the core tells a module instance: name, JSON path, host facts. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <netinet/in.h>

#include "conf_priv.h"
#include "ctx_priv.h"

static char *
host_strdup(const char *s)
{
    return s != NULL ? strdup(s) : NULL;
}

modmta_host *
modmta_host_new(const char *instance, const char *path, const char *hostname,
                const char *spool, char *const *local_domains, int is_root)
{
    modmta_host *h;
    size_t n = 0, i;

    h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    while (local_domains != NULL && local_domains[n] != NULL)
        n++;
    h->instance = host_strdup(instance ? instance : "core");
    h->path = host_strdup(path ? path : "$");
    h->hostname = host_strdup(hostname ? hostname : "localhost");
    h->spool = host_strdup(spool ? spool : ".");
    h->recipient_delimiter = strdup("");
    h->local_domains = calloc(n + 1, sizeof(char *));
    h->is_root = is_root;
    if (h->instance == NULL || h->path == NULL || h->hostname == NULL ||
        h->spool == NULL || h->local_domains == NULL ||
        h->recipient_delimiter == NULL) {
        modmta_host_free(h);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        h->local_domains[i] = strdup(local_domains[i]);
        if (h->local_domains[i] == NULL) {
            modmta_host_free(h);
            return NULL;
        }
    }
    return h;
}

void
modmta_host_free(modmta_host *h)
{
    size_t i;

    if (h == NULL)
        return;
    for (i = 0; h->local_domains != NULL && h->local_domains[i]; i++)
        free(h->local_domains[i]);
    free(h->local_domains);
    free(h->instance);
    free(h->path);
    free(h->hostname);
    free(h->spool);
    free(h->recipient_delimiter);
    conf_errors_free(h->errors);
    free(h);
}

int
modmta_host_set_recipient_delimiter(modmta_host *h, const char *delims)
{
    char *d = strdup(delims != NULL ? delims : "");

    if (d == NULL)
        return MODMTA_E_NOMEM;
    free(h->recipient_delimiter);
    h->recipient_delimiter = d;
    return 0;
}

const char *
modmta_host_recipient_delimiter(const modmta_host *h)
{
    return h->recipient_delimiter;
}

const char *
modmta_host_instance(const modmta_host *h)
{
    return h->instance;
}

const char *
modmta_host_path(const modmta_host *h)
{
    return h->path;
}

const char *
modmta_host_hostname(const modmta_host *h)
{
    return h->hostname;
}

const char *
modmta_host_spool(const modmta_host *h)
{
    return h->spool;
}

int
modmta_host_is_root(const modmta_host *h)
{
    return h->is_root;
}

int
modmta_host_is_local_domain(const modmta_host *h, const char *domain)
{
    size_t i, n;

    if (h == NULL || domain == NULL)
        return 0;
    n = strlen(domain);
    if (n > 0 && domain[n - 1] == '.')
        n--;
    for (i = 0; h->local_domains[i] != NULL; i++) {
        if (strlen(h->local_domains[i]) == n &&
            strncasecmp(h->local_domains[i], domain, n) == 0)
            return 1;
    }
    return 0;
}

void
modmta_host_set_shared(modmta_host *h, struct modmta_shared *shared)
{
    h->shared = shared;
}

void
modmta_host_set_net(modmta_host *h, struct modmta_dns *dns,
                    const struct sockaddr_storage *own, size_t nown)
{
    h->dns = dns;
    h->own = own;
    h->nown = nown;
}

static int
host_same_address(const struct sockaddr *a, const struct sockaddr_storage *b)
{
    const struct sockaddr_in *a4 = (const struct sockaddr_in *)a;
    const struct sockaddr_in *b4 = (const struct sockaddr_in *)b;
    const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)a;
    const struct sockaddr_in6 *b6 = (const struct sockaddr_in6 *)b;

    if (a->sa_family != b->ss_family)
        return 0;
    /* A listener on 0.0.0.0 answers on all of 127.0.0.0/8, addresses no
     * interface lists. */
    if (a->sa_family == AF_INET && b4->sin_addr.s_addr == htonl(INADDR_ANY)
        && (ntohl(a4->sin_addr.s_addr) >> 24) == 127)
        return a4->sin_port == b4->sin_port;
    if (a->sa_family == AF_INET)
        return a4->sin_port == b4->sin_port &&
               a4->sin_addr.s_addr == b4->sin_addr.s_addr;
    if (a->sa_family == AF_INET6)
        return a6->sin6_port == b6->sin6_port &&
               memcmp(&a6->sin6_addr, &b6->sin6_addr,
                      sizeof(a6->sin6_addr)) == 0;
    return 0;
}

int
modmta_host_is_own_address(const modmta_host *h, const struct sockaddr *sa,
                           socklen_t len)
{
    size_t i;

    if (h == NULL || sa == NULL || len < (socklen_t)sizeof(sa->sa_family))
        return 0;
    if ((sa->sa_family == AF_INET &&
         len < (socklen_t)sizeof(struct sockaddr_in)) ||
        (sa->sa_family == AF_INET6 &&
         len < (socklen_t)sizeof(struct sockaddr_in6)))
        return 0;
    for (i = 0; i < h->nown; i++)
        if (host_same_address(sa, &h->own[i]))
            return 1;
    return 0;
}

void
modmta_host_set_owners(modmta_host *h, const struct modmta_owner *owners,
                       size_t n)
{
    h->owners = owners;
    h->nowners = n;
}

/* Owners see the domain in lower case without its trailing dot, so a
 * module compares with strcmp against what it lowered at create(). */
int
modmta_host_is_inbound_domain(const modmta_host *h, const char *domain)
{
    char low[256];
    size_t i, n;

    if (h == NULL || domain == NULL || *domain == '\0')
        return 0;
    if (modmta_host_is_local_domain(h, domain))
        return 1;
    n = strlen(domain);
    if (domain[n - 1] == '.')
        n--;
    if (n == 0 || n >= sizeof(low))
        return 0;
    for (i = 0; i < n; i++)
        low[i] = (char)tolower((unsigned char)domain[i]);
    low[n] = '\0';
    for (i = 0; i < h->nowners; i++)
        if (h->owners[i].owns_domain(h->owners[i].inst, low) == 1)
            return 1;
    return 0;
}

int
modmta_is_inbound_domain(const modmta_ctx *ctx, const char *domain)
{
    return ctx != NULL && modmta_host_is_inbound_domain(ctx->host, domain);
}
