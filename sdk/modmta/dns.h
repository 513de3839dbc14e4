/*
 * modmta SDK: the resolver (ABI 1.3). Thread-safe: any number of threads
 * may look up at once. Every lookup ends within the configured timeout
 * ("dns": {"timeout": ...}); an MX list within twice that.
 *
 * One resolver per config generation, from the top-level "dns" key
 * (servers to ask, default the system's resolv.conf; DNSSEC validation
 * when a trust anchor is configured), reached with modmta_host_dns().
 * Lookups have three outcomes, like map lookups (STYLE.md rule 5):
 *   1                  records found,
 *   0                  the name does not exist (NXDOMAIN) or has no
 *                      record of that type (NODATA): a definite "no",
 *   MODMTA_E_TEMP      no answer (timeout, SERVFAIL, a DNSSEC-bogus
 *                      answer): try later, never treat it as "no".
 *   MODMTA_E_INVAL     a name that is not a domain name.
 * Names are ASCII (IDNs as A-labels): labels of letters, digits, '-'
 * and '_', a final dot allowed. Results are borrowed from the result
 * object and freed with it. Nothing is resolved from /etc/hosts.
 */
#ifndef MODMTA_DNS_H
#define MODMTA_DNS_H

#include <stddef.h>
#include <sys/socket.h>

#include <modmta/module.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct modmta_dns modmta_dns;
typedef struct modmta_dns_result modmta_dns_result;
typedef struct modmta_mx_list modmta_mx_list;

/* Record types (their DNS numbers). */
enum {
    MODMTA_DNS_A = 1,
    MODMTA_DNS_CNAME = 5,
    MODMTA_DNS_PTR = 12,
    MODMTA_DNS_MX = 15,
    MODMTA_DNS_TXT = 16,
    MODMTA_DNS_AAAA = 28,
    MODMTA_DNS_TLSA = 52,
};

/* The resolver of the instance's generation (never NULL). */
modmta_dns *modmta_host_dns(const modmta_host *h);

/* Look up name/type (any data type; not the meta types OPT, ANY, AXFR
 * ...: MODMTA_E_INVAL), following CNAMEs. *res_r is set when the result
 * is 1 or 0 (free it); NULL otherwise. A malformed record makes the
 * whole answer MODMTA_E_TEMP. */
int modmta_dns_lookup(modmta_dns *r, const char *name, int type,
                      modmta_dns_result **res_r);
size_t modmta_dns_count(const modmta_dns_result *res);
/* 1 if the name does not exist (NXDOMAIN), 0 if it exists (NODATA or
 * records). */
int modmta_dns_nxdomain(const modmta_dns_result *res);
/* 1 if the answer (or the denial) was validated by DNSSEC: only when
 * "dns" has a trust anchor; 0 otherwise. */
int modmta_dns_secure(const modmta_dns_result *res);
/* The name the records belong to, after CNAMEs (no final dot); the name
 * looked up when there was no CNAME. */
const char *modmta_dns_canonical(const modmta_dns_result *res);
/* Record i as text: A "192.0.2.1", AAAA "2001:db8::1", PTR and CNAME a
 * name (no final dot; an octet other than a letter, digit, '-', '_',
 * '*' or '/' written \DDD), TXT its strings concatenated as they are.
 * NULL for other types or a bad index. */
const char *modmta_dns_text_at(const modmta_dns_result *res, size_t i);
/* MX record i: its preference (>= 0) and host (no final dot; "" for a
 * null MX, RFC 7505). <0 for a bad index or another type. */
int modmta_dns_mx_at(const modmta_dns_result *res, size_t i,
                     const char **host_r);
/* TLSA record i (RFC 6698): usage, selector, matching type and the
 * association data. 0, or <0 for a bad index or another type. */
int modmta_dns_tlsa_at(const modmta_dns_result *res, size_t i, int *usage_r,
                       int *selector_r, int *mtype_r,
                       const unsigned char **data_r, size_t *len_r);
void modmta_dns_result_free(modmta_dns_result *res);

/* ---- where mail for a domain goes (RFC 5321 section 5.1) ---- */

/* Outcomes of modmta_dns_mx_list besides the negative errors. */
enum {
    MODMTA_MX_OK = 1,      /* servers listed */
    MODMTA_MX_NULL = 2,    /* null MX (RFC 7505): the domain takes no
                            * mail: fail at once, 5.1.10 */
    MODMTA_MX_NODOMAIN = 3, /* the domain does not exist: 5.1.2 */
    MODMTA_MX_NOHOST = 4,  /* MX records, but no host of them has an
                            * address (or the domain has neither MX nor
                            * address): 5.4.4 */
};

/* The servers for mail to `domain`: the MX hosts in preference order,
 * in random order among equal preferences (each call shuffles anew),
 * each host with its addresses (IPv6 first, then IPv4, each family in
 * random order); a domain with no MX record is its own server with
 * preference 0 (implicit MX, RFC 5321 5.1). A host whose address
 * lookups fail temporarily is left out; when that leaves no server at
 * all the result is MODMTA_E_TEMP. Left out too: an MX host named like
 * an IPv4 address ("10 192.0.2.1" names no host), the root (but a null
 * MX), a host named twice (its lowest preference counts). At most 10
 * hosts (the lowest preferences) and 5 addresses of each family per
 * host. A domain literal ("[192.0.2.1]", "[IPv6:2001:db8::1]") is not
 * looked up: it is its one server, its host the address. *list_r is set
 * for MODMTA_MX_OK only. Ports are 0: the caller sets its own
 * (modmta_mx_addr copies). MODMTA_E_INVAL for a domain that is neither a
 * name nor a literal. */
int modmta_dns_mx_list(modmta_dns *r, const char *domain,
                       modmta_mx_list **list_r);
/* Entries: one per address, in the order to try. */
size_t modmta_mx_count(const modmta_mx_list *l);
const char *modmta_mx_host(const modmta_mx_list *l, size_t i); /* MX name */
int modmta_mx_pref(const modmta_mx_list *l, size_t i);
/* Entry i's address with `port` set, into *sa_r; its length. 0 on a bad
 * index. */
socklen_t modmta_mx_addr(const modmta_mx_list *l, size_t i, int port,
                         struct sockaddr_storage *sa_r);
/* Entry i's address as text ("192.0.2.1", "2001:db8::1"). */
const char *modmta_mx_addr_text(const modmta_mx_list *l, size_t i);
/* 1 if entry i's host name was reached through a DNSSEC-validated MX
 * answer (for an implicit MX: a validated denial of MX) and its address
 * answer was validated too (for DANE, later); 0 for a domain literal. */
int modmta_mx_secure(const modmta_mx_list *l, size_t i);
void modmta_mx_list_free(modmta_mx_list *l);

#ifdef __cplusplus
}
#endif

#endif
