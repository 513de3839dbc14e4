/*
 * The resolver (dns.h). This first part holds only the configuration the
 * chain gives it; the lookups come with libunbound (issue 9, point 2).
 */
#include <stdlib.h>
#include <string.h>

#include "ctx_priv.h"
#include "dns_priv.h"

struct modmta_dns {
    char **servers;             /* NULL: resolv.conf */
    long timeout_s;
    char *trust_anchor;
};

static void
dns_strlist_free(char **l)
{
    for (size_t i = 0; l != NULL && l[i] != NULL; i++)
        free(l[i]);
    free(l);
}

modmta_dns *
modmta_dns_new(char *const *servers, long timeout_s, const char *trust_anchor,
               modmta_err *err_r)
{
    modmta_dns *r = calloc(1, sizeof(*r));
    size_t n = 0;

    if (r == NULL)
        goto nomem;
    r->timeout_s = timeout_s > 0 ? timeout_s : 10;
    if (trust_anchor != NULL &&
        (r->trust_anchor = strdup(trust_anchor)) == NULL)
        goto nomem;
    if (servers != NULL) {
        while (servers[n] != NULL)
            n++;
        if ((r->servers = calloc(n + 1, sizeof(char *))) == NULL)
            goto nomem;
        for (size_t i = 0; i < n; i++)
            if ((r->servers[i] = strdup(servers[i])) == NULL)
                goto nomem;
    }
    return r;
nomem:
    modmta_dns_free(r);
    modmta_err_set(err_r, "$.dns", "out of memory");
    return NULL;
}

void
modmta_dns_free(modmta_dns *r)
{
    if (r == NULL)
        return;
    dns_strlist_free(r->servers);
    free(r->trust_anchor);
    free(r);
}

modmta_dns *
modmta_host_dns(const modmta_host *h)
{
    return h->dns;
}
