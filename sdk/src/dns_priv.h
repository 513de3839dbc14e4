/*
 * The resolver's private side (not installed). The core makes one per
 * config generation from the "dns" key and lends it to every host; the
 * rest is what the resolver's files share (dns.c: libunbound and the
 * lookups in flight; dns_result.c; dns_wire.c: names and record data;
 * dns_mx.c: MX lists), split so the pure parts are testable without a
 * server.
 */
#ifndef MODMTA_DNS_PRIV_H
#define MODMTA_DNS_PRIV_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <modmta/dns.h>

/* A resolver asking `servers` (NULL: the system's resolv.conf; else
 * unbound forwarders "IP" or "IP@port", NULL-terminated), giving up on a
 * lookup after timeout_s seconds, validating DNSSEC with trust_anchor
 * (NULL: no validation). Cheap: nothing is opened or started until the
 * first lookup. NULL with err_r filled. */
modmta_dns *modmta_dns_new(char *const *servers, long timeout_s,
                           const char *trust_anchor, modmta_err *err_r);
/* Stops what the first lookup started; no lookup may be running. */
void modmta_dns_free(modmta_dns *r);

/* ---- inside libmodmta ---- */

/* Longest name in text, without the final dot (RFC 1035: 255 octets in
 * wire form). */
#define DNS_NAME_MAX 253
/* Room for a name from record data as text, every octet escaped. */
#define DNS_TEXT_MAX (4 * 255 + 1)

/* One lookup in flight (dns.c). */
typedef struct dns_query dns_query;

/* When lookups started now must end (CLOCK_MONOTONIC): after the
 * resolver's timeout, or at the running hook's deadline if that is
 * earlier (budget_priv.h). */
void dns_deadline(const modmta_dns *r, struct timespec *ts);
/* Start looking up name (checked, no final dot) / type. 0, or
 * MODMTA_E_TEMP (the resolver could not start: logged). */
int dns_query_start(modmta_dns *r, const char *name, int type,
                    dns_query **q_r);
/* Wait for q's answer until deadline and free q: the outcome as
 * modmta_dns_lookup() gives it. */
int dns_query_finish(modmta_dns *r, dns_query *q,
                     const struct timespec *deadline,
                     modmta_dns_result **res_r);

/* One record of a result, parsed (dns_wire.c). */
struct dns_rr {
    char *text;                /* A, AAAA, PTR, CNAME, TXT; MX host */
    int pref;                  /* MX */
    int usage, selector, mtype; /* TLSA */
    unsigned char *data;       /* TLSA association data */
    size_t len;
};

struct modmta_dns_result {
    int type;
    int nxdomain;
    int secure;
    char *canonical;
    size_t n;
    struct dns_rr *rr;
};

/* name checked as a domain name (labels of letters, digits, '-' and '_',
 * 1 to 63 octets each, 253 in all; one final dot allowed) and copied
 * into buf without its final dot. 0 or MODMTA_E_INVAL. */
int dns_wire_name_check(const char *name, char buf[DNS_NAME_MAX + 1]);
/* The uncompressed wire-format name at p (len octets available) as text
 * into out[DNS_TEXT_MAX]: labels joined by dots, no final dot ("" for the
 * root); an octet other than a letter, digit, '-', '_', '*' or '/' is
 * written \DDD. The octets the name takes, or -1 if it is malformed. */
int dns_wire_name_text(const unsigned char *p, size_t len, char *out);
/* Record data of `type` parsed into *rr (zeroed first; clear it with
 * dns_wire_rr_clear, after an error too). 0, MODMTA_E_TEMP (malformed),
 * MODMTA_E_NOMEM. */
int dns_wire_rdata(int type, const unsigned char *p, size_t len,
                   struct dns_rr *rr);
void dns_wire_rr_clear(struct dns_rr *rr);

/* A result from the records' data (dns_result.c): canonical may end in a
 * dot (removed). 1 (records), 0 (none), MODMTA_E_TEMP (a record is
 * malformed), MODMTA_E_NOMEM; *res_r is set for 1 and 0. */
int dns_result_build(int type, const char *canonical, int nxdomain,
                     int secure, char *const *data, const int *len,
                     modmta_dns_result **res_r);

/* An MX host before its addresses are known (dns_mx.c). */
struct dns_mx_host {
    const char *name;          /* borrowed from the MX result */
    int pref;
    uint32_t key;              /* random: the order among equal prefs */
};

/* At most this many MX hosts are kept, and this many addresses of each
 * family per host. */
#define DNS_MX_HOSTS_MAX 10
#define DNS_MX_ADDRS_MAX 5

/* Sort h by preference, then key; drop hosts that cannot be one (the
 * root, a name that is an IPv4 address) and repeats of a name (the
 * lowest preference stays); keep at most max. The count kept. */
size_t dns_mx_pick(struct dns_mx_host *h, size_t n, size_t max);
/* 1 if res is a null MX (RFC 7505: its one record is "." preference
 * 0). */
int dns_mx_is_null(const modmta_dns_result *res);

#endif
