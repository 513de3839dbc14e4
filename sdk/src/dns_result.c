/*
 * Lookup results (dns.h): the records of one answer, parsed once when it
 * arrives, read through the getters.
 */
#include <stdlib.h>
#include <string.h>

#include "dns_priv.h"

int
dns_result_build(int type, const char *canonical, int nxdomain, int secure,
                 char *const *data, const int *len,
                 modmta_dns_result **res_r)
{
    modmta_dns_result *res = calloc(1, sizeof(*res));
    size_t n = 0, cl = canonical != NULL ? strlen(canonical) : 0;
    int r = MODMTA_E_NOMEM;

    *res_r = NULL;
    while (data != NULL && data[n] != NULL)
        n++;
    if (res == NULL || (res->rr = calloc(n + 1, sizeof(*res->rr))) == NULL)
        goto fail;
    res->type = type;
    res->nxdomain = nxdomain;
    res->secure = secure;
    if (cl > 0 && canonical[cl - 1] == '.')
        cl--;
    if ((res->canonical = strndup(canonical != NULL ? canonical : "", cl))
        == NULL)
        goto fail;
    for (res->n = 0; res->n < n; res->n++) {
        const int l = len[res->n];

        r = l < 0 ? MODMTA_E_TEMP
                  : dns_wire_rdata(type, (const unsigned char *)data[res->n],
                                   (size_t)l, &res->rr[res->n]);
        if (r < 0) {
            dns_wire_rr_clear(&res->rr[res->n]);
            goto fail;
        }
    }
    *res_r = res;
    return n > 0 ? 1 : 0;
fail:
    modmta_dns_result_free(res);
    return r;
}

size_t
modmta_dns_count(const modmta_dns_result *res)
{
    return res != NULL ? res->n : 0;
}

int
modmta_dns_nxdomain(const modmta_dns_result *res)
{
    return res != NULL && res->nxdomain;
}

int
modmta_dns_secure(const modmta_dns_result *res)
{
    return res != NULL && res->secure;
}

const char *
modmta_dns_canonical(const modmta_dns_result *res)
{
    return res != NULL ? res->canonical : NULL;
}

const char *
modmta_dns_text_at(const modmta_dns_result *res, size_t i)
{
    if (res == NULL || i >= res->n || res->type == MODMTA_DNS_MX)
        return NULL;
    return res->rr[i].text;     /* NULL for types without text */
}

int
modmta_dns_mx_at(const modmta_dns_result *res, size_t i,
                 const char **host_r)
{
    if (res == NULL || i >= res->n || res->type != MODMTA_DNS_MX)
        return MODMTA_E_INVAL;
    *host_r = res->rr[i].text;
    return res->rr[i].pref;
}

int
modmta_dns_tlsa_at(const modmta_dns_result *res, size_t i, int *usage_r,
                   int *selector_r, int *mtype_r,
                   const unsigned char **data_r, size_t *len_r)
{
    const struct dns_rr *rr;

    if (res == NULL || i >= res->n || res->type != MODMTA_DNS_TLSA)
        return MODMTA_E_INVAL;
    rr = &res->rr[i];
    *usage_r = rr->usage;
    *selector_r = rr->selector;
    *mtype_r = rr->mtype;
    *data_r = rr->data;
    *len_r = rr->len;
    return 0;
}

void
modmta_dns_result_free(modmta_dns_result *res)
{
    if (res == NULL)
        return;
    for (size_t i = 0; i < res->n; i++)
        dns_wire_rr_clear(&res->rr[i]);
    free(res->rr);
    free(res->canonical);
    free(res);
}
