/*
 * Where mail for a domain goes (dns.h, RFC 5321 section 5.1, RFC 7505):
 * the MX lookup, then every kept host's AAAA and A lookups at once, so a
 * list takes at most two timeouts however many hosts it has.
 *
 * Choices: an MX host named like an IPv4 address ("10 192.0.2.1") is
 * not a host name (RFC 5321 5.1 wants a domain name there) and is left
 * out without a lookup, as Postfix does; so are the root (but for a null
 * MX) and a name repeated (the lowest preference counts). At most
 * DNS_MX_HOSTS_MAX hosts (the lowest preferences) and DNS_MX_ADDRS_MAX
 * addresses of each family per host (a random choice when a host has
 * more): more would only make a client wait longer on a dead domain.
 * Equal preferences and each host's addresses of one family are in a
 * random order, new on each call (Postfix's smtp_randomize_addresses).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "dns_priv.h"

struct mx_entry {
    char *host;
    int pref;
    int secure;
    struct sockaddr_storage sa;
    socklen_t salen;
    char addr[INET6_ADDRSTRLEN];
};

struct modmta_mx_list {
    size_t n;
    struct mx_entry e[DNS_MX_HOSTS_MAX * DNS_MX_ADDRS_MAX * 2];
};

/* One host's two lookups. */
struct mx_lookup {
    dns_query *q[2];            /* AAAA, A */
    int rc[2];
    modmta_dns_result *res[2];
};

static const int mx_types[2] = { MODMTA_DNS_AAAA, MODMTA_DNS_A };

static uint32_t dns_mx_random(void);
static int dns_mx_host_cmp(const void *a, const void *b);
static int dns_mx_literal(const char *domain, modmta_mx_list **list_r);
static int dns_mx_add(modmta_mx_list *l, const char *host, int pref,
                      int secure, const char *addr);
static int dns_mx_add_host(modmta_mx_list *l,
                           const struct dns_mx_host *h, int mx_secure,
                           const modmta_dns_result *res);
static int dns_mx_resolve(modmta_dns *r, const struct dns_mx_host *h,
                          size_t n, int mx_secure, modmta_mx_list **list_r);

/* getrandom() does not fail for 4 octets once the kernel's pool is
 * ready; if it did, 0 would only keep the order. */
static uint32_t
dns_mx_random(void)
{
    uint32_t v;

    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = 0;
    return v;
}

static int
dns_mx_host_cmp(const void *a, const void *b)
{
    const struct dns_mx_host *x = a, *y = b;

    if (x->pref != y->pref)
        return x->pref < y->pref ? -1 : 1;
    return x->key < y->key ? -1 : x->key > y->key;
}

size_t
dns_mx_pick(struct dns_mx_host *h, size_t n, size_t max)
{
    char name[DNS_NAME_MAX + 1];
    struct in_addr a4;
    size_t kept = 0;

    qsort(h, n, sizeof(*h), dns_mx_host_cmp);
    for (size_t i = 0; i < n && kept < max; i++) {
        size_t j = 0;

        if (dns_wire_name_check(h[i].name, name) < 0 ||
            inet_pton(AF_INET, name, &a4) == 1)
            continue;
        while (j < kept && strcasecmp(h[j].name, h[i].name) != 0)
            j++;
        if (j == kept)
            h[kept++] = h[i];
    }
    return kept;
}

int
dns_mx_is_null(const modmta_dns_result *res)
{
    return res->type == MODMTA_DNS_MX && res->n == 1 &&
           res->rr[0].pref == 0 && res->rr[0].text[0] == '\0';
}

/* "[192.0.2.1]", "[IPv6:2001:db8::1]" (RFC 5321 4.1.3): one server, no
 * lookup; its host is the address. */
static int
dns_mx_literal(const char *domain, modmta_mx_list **list_r)
{
    size_t len = strlen(domain);
    unsigned char bin[sizeof(struct in6_addr)];
    char text[INET6_ADDRSTRLEN + 5];
    int af = AF_INET;
    const char *a = text;
    modmta_mx_list *l;

    if (len < 3 || domain[len - 1] != ']' || len - 2 >= sizeof(text))
        return MODMTA_E_INVAL;
    memcpy(text, domain + 1, len - 2);
    text[len - 2] = '\0';
    if (strncasecmp(text, "IPv6:", 5) == 0) {
        af = AF_INET6;
        a += 5;
    }
    if (inet_pton(af, a, bin) != 1)
        return MODMTA_E_INVAL;
    inet_ntop(af, bin, text, sizeof(text));
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return MODMTA_E_NOMEM;
    if (dns_mx_add(l, text, 0, 0, text) < 0) {
        modmta_mx_list_free(l);
        return MODMTA_E_NOMEM;
    }
    *list_r = l;
    return MODMTA_MX_OK;
}

/* One entry; addr is an address as inet_ntop() wrote it. */
static int
dns_mx_add(modmta_mx_list *l, const char *host, int pref, int secure,
           const char *addr)
{
    struct mx_entry *e = &l->e[l->n];
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&e->sa;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&e->sa;

    if (inet_pton(AF_INET6, addr, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        e->salen = sizeof(*s6);
    } else if (inet_pton(AF_INET, addr, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        e->salen = sizeof(*s4);
    } else {
        return MODMTA_E_INVAL;
    }
    if ((e->host = strdup(host)) == NULL)
        return MODMTA_E_NOMEM;
    e->pref = pref;
    e->secure = secure;
    strcpy(e->addr, addr);
    l->n++;
    return 0;
}

/* h's addresses from one lookup (res may be NULL): at most
 * DNS_MX_ADDRS_MAX, in a random order. */
static int
dns_mx_add_host(modmta_mx_list *l, const struct dns_mx_host *h,
                int mx_secure, const modmta_dns_result *res)
{
    size_t idx[DNS_MX_ADDRS_MAX], n = modmta_dns_count(res), k = 0;

    /* a random sample of k from n (Knuth's algorithm S), then shuffled */
    for (size_t i = 0; i < n && k < DNS_MX_ADDRS_MAX; i++)
        if (((uint64_t)dns_mx_random() * (n - i) >> 32) < DNS_MX_ADDRS_MAX - k)
            idx[k++] = i;
    for (size_t i = k; i > 1; i--) {
        size_t j = (size_t)((uint64_t)dns_mx_random() * i >> 32), t = idx[j];

        idx[j] = idx[i - 1];
        idx[i - 1] = t;
    }
    for (size_t i = 0; i < k; i++) {
        int e = dns_mx_add(l, h->name, h->pref, mx_secure && res->secure,
                           res->rr[idx[i]].text);

        if (e == MODMTA_E_NOMEM)
            return e;
    }
    return 0;
}

/* The addresses of the n hosts, looked up all at once. */
static int
dns_mx_resolve(modmta_dns *r, const struct dns_mx_host *h, size_t n,
               int mx_secure, modmta_mx_list **list_r)
{
    struct mx_lookup lk[DNS_MX_HOSTS_MAX];
    struct timespec deadline;
    modmta_mx_list *l = calloc(1, sizeof(*l));
    int temp = 0, e = l != NULL ? 0 : MODMTA_E_NOMEM;

    memset(lk, 0, sizeof(lk));
    dns_deadline(r, &deadline);
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < 2; t++)
            lk[i].rc[t] = dns_query_start(r, h[i].name, mx_types[t],
                                          &lk[i].q[t]);
    for (size_t i = 0; i < n; i++)
        for (int t = 0; t < 2; t++)
            if (lk[i].q[t] != NULL)
                lk[i].rc[t] = dns_query_finish(r, lk[i].q[t], &deadline,
                                               &lk[i].res[t]);
    for (size_t i = 0; i < n; i++) {
        size_t before = l != NULL ? l->n : 0;

        for (int t = 0; t < 2 && e == 0; t++)
            e = dns_mx_add_host(l, &h[i], mx_secure, lk[i].res[t]);
        /* a host with no address from a failed lookup: temporary */
        if (l != NULL && l->n == before &&
            (lk[i].rc[0] < 0 || lk[i].rc[1] < 0))
            temp = 1;
        modmta_dns_result_free(lk[i].res[0]);
        modmta_dns_result_free(lk[i].res[1]);
    }
    if (e == 0 && l->n > 0) {
        *list_r = l;
        return MODMTA_MX_OK;
    }
    modmta_mx_list_free(l);
    return e < 0 ? e : temp ? MODMTA_E_TEMP : MODMTA_MX_NOHOST;
}

int
modmta_dns_mx_list(modmta_dns *r, const char *domain,
                   modmta_mx_list **list_r)
{
    struct dns_mx_host h[DNS_MX_HOSTS_MAX], *all = NULL;
    char name[DNS_NAME_MAX + 1];
    struct timespec deadline;
    modmta_dns_result *mx;
    dns_query *q;
    size_t n;
    int e;

    *list_r = NULL;
    if (domain != NULL && domain[0] == '[')
        return dns_mx_literal(domain, list_r);
    if (dns_wire_name_check(domain, name) < 0)
        return MODMTA_E_INVAL;
    dns_deadline(r, &deadline);
    if ((e = dns_query_start(r, name, MODMTA_DNS_MX, &q)) < 0 ||
        (e = dns_query_finish(r, q, &deadline, &mx)) < 0)
        return e;
    if (mx->nxdomain) {
        e = MODMTA_MX_NODOMAIN;
    } else if (dns_mx_is_null(mx)) {
        e = MODMTA_MX_NULL;
    } else if (mx->n == 0) {
        /* no MX: the domain is its own server (implicit MX) */
        h[0] = (struct dns_mx_host){ .name = name, .pref = 0 };
        e = dns_mx_resolve(r, h, 1, mx->secure, list_r);
    } else if ((all = calloc(mx->n, sizeof(*all))) == NULL) {
        e = MODMTA_E_NOMEM;
    } else {
        for (size_t i = 0; i < mx->n; i++)
            all[i] = (struct dns_mx_host){ .name = mx->rr[i].text,
                                           .pref = mx->rr[i].pref,
                                           .key = dns_mx_random() };
        n = dns_mx_pick(all, mx->n, DNS_MX_HOSTS_MAX);
        memcpy(h, all, n * sizeof(*h));
        e = n > 0 ? dns_mx_resolve(r, h, n, mx->secure, list_r)
                  : MODMTA_MX_NOHOST;
    }
    free(all);
    modmta_dns_result_free(mx);
    return e;
}

size_t
modmta_mx_count(const modmta_mx_list *l)
{
    return l != NULL ? l->n : 0;
}

const char *
modmta_mx_host(const modmta_mx_list *l, size_t i)
{
    return l != NULL && i < l->n ? l->e[i].host : NULL;
}

int
modmta_mx_pref(const modmta_mx_list *l, size_t i)
{
    return l != NULL && i < l->n ? l->e[i].pref : MODMTA_E_INVAL;
}

socklen_t
modmta_mx_addr(const modmta_mx_list *l, size_t i, int port,
               struct sockaddr_storage *sa_r)
{
    if (l == NULL || i >= l->n)
        return 0;
    *sa_r = l->e[i].sa;
    if (sa_r->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)sa_r)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)sa_r)->sin_port = htons((uint16_t)port);
    return l->e[i].salen;
}

const char *
modmta_mx_addr_text(const modmta_mx_list *l, size_t i)
{
    return l != NULL && i < l->n ? l->e[i].addr : NULL;
}

int
modmta_mx_secure(const modmta_mx_list *l, size_t i)
{
    return l != NULL && i < l->n && l->e[i].secure;
}

void
modmta_mx_list_free(modmta_mx_list *l)
{
    if (l == NULL)
        return;
    for (size_t i = 0; i < l->n; i++)
        free(l->e[i].host);
    free(l);
}
