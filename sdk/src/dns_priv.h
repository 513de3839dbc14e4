/*
 * The resolver's core-only side (not installed): the chain makes one per
 * config generation from the "dns" key and lends it to every host.
 */
#ifndef MODMTA_DNS_PRIV_H
#define MODMTA_DNS_PRIV_H

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

#endif
