/*
 * masquerade: hide local host names behind a domain in the sender
 * addresses of outgoing mail. Sendmail's MASQUERADE_AS with
 * masquerade_envelope and masquerade_entire_domain, Postfix's
 * masquerade_domains and masquerade_exceptions, and a generic map with
 * Postfix smtp_generic_maps entries. See README.md for the rules.
 *
 * At on_data, for mail from a local sender, each address of the From,
 * Sender and Reply-To fields (and the envelope sender with "envelope") is:
 *   1. qualified with myorigin when it has no domain;
 *   2. when the message leaves (a recipient outside the inbound domains),
 *      replaced by its generic map entry ("user@domain", then
 *      "@domain"), if any: done;
 *   3. left as it is when its local part is an exception;
 *   4. masqueraded: with "as", a masqueraded domain becomes "as"; without
 *      it, a subdomain of a "domains" entry becomes that entry.
 * Recipients (To, Cc, the envelope) are never touched.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/modmta.h>

#include "addrlist.h"

#define MASQUERADE_ADDR_MAX 1024 /* one rewritten address, with its NUL */

struct masquerade_conf {
    char *as;
    int envelope;
    int entire_domain;
    char **exceptions;
    char **domains;     /* "example.com" or "!sub.example.com" */
    modmta_map *generic;
    char *myorigin;
};

struct masquerade {
    struct masquerade_conf conf;
    const modmta_host *host;
};

/* One message being rewritten. */
struct masquerade_msg {
    const struct masquerade *m;
    modmta_ctx *ctx;
    modmta_map *generic;    /* the generic map if the mail leaves, NULL */
};

static const modmta_option masquerade_opts[] = {
    MODMTA_OPTION_STRING("as", struct masquerade_conf, as, 0),
    MODMTA_OPTION_BOOL("envelope", struct masquerade_conf, envelope, 0),
    MODMTA_OPTION_BOOL("entire_domain", struct masquerade_conf, entire_domain,
                       0),
    MODMTA_OPTION_STRLIST("exceptions", struct masquerade_conf, exceptions, 0),
    MODMTA_OPTION_STRLIST("domains", struct masquerade_conf, domains, 0),
    MODMTA_OPTION_MAP("generic", struct masquerade_conf, generic, 0),
    MODMTA_OPTION_STRING("myorigin", struct masquerade_conf, myorigin, 0),
    MODMTA_OPTION_END
};

/* The header fields whose addresses are rewritten. */
static const char *const masquerade_fields[] = {"From", "Sender",
                                                "Reply-To"};

/* ---- configuration ---- */

static void
masquerade_destroy(void *inst)
{
    struct masquerade *m = inst;

    if (m == NULL)
        return;
    modmta_conf_free_options(masquerade_opts, &m->conf);
    free(m);
}

/* A host name: labels of letters, digits and '-', lower-cased in place. */
static int
masquerade_domain_ok(char *d)
{
    size_t i, label = 0;

    if (d == NULL || *d == '\0' || strlen(d) > 253)
        return 0;
    for (i = 0; d[i] != '\0'; i++) {
        d[i] = (char)tolower((unsigned char)d[i]);
        if (d[i] == '.') {
            if (label == 0)
                return 0;
            label = 0;
        } else if (isalnum((unsigned char)d[i]) || d[i] == '-') {
            label++;
        } else {
            return 0;
        }
    }
    return label > 0;
}

static int
masquerade_conf_check(struct masquerade *m, const modmta_host *host,
                      modmta_err *err_r)
{
    const char *base = modmta_host_path(host);
    char path[300];
    size_t i;

    if (m->conf.as != NULL && !masquerade_domain_ok(m->conf.as)) {
        snprintf(path, sizeof(path), "%s.as", base);
        modmta_err_set(err_r, path, "expected a domain name");
        return MODMTA_E_CONFIG;
    }
    if (m->conf.myorigin != NULL && !masquerade_domain_ok(m->conf.myorigin)) {
        snprintf(path, sizeof(path), "%s.myorigin", base);
        modmta_err_set(err_r, path, "expected a domain name");
        return MODMTA_E_CONFIG;
    }
    for (i = 0; m->conf.domains != NULL && m->conf.domains[i]; i++) {
        char *d = m->conf.domains[i];

        if (!masquerade_domain_ok(d + (*d == '!'))) {
            snprintf(path, sizeof(path), "%s.domains[%zu]", base, i);
            modmta_err_set(err_r, path, "expected a domain name, "
                           "optionally after '!'");
            return MODMTA_E_CONFIG;
        }
    }
    for (i = 0; m->conf.exceptions != NULL && m->conf.exceptions[i]; i++) {
        if (m->conf.exceptions[i][0] == '\0') {
            snprintf(path, sizeof(path), "%s.exceptions[%zu]", base, i);
            modmta_err_set(err_r, path, "empty exception");
            return MODMTA_E_CONFIG;
        }
    }
    return 0;
}

static void *
masquerade_create(const json_t *conf, const modmta_host *host,
                  modmta_err *err_r)
{
    struct masquerade *m = calloc(1, sizeof(*m));

    if (m == NULL) {
        modmta_err_set(err_r, modmta_host_path(host), "out of memory");
        return NULL;
    }
    m->host = host;
    if (modmta_conf_parse_options(conf, host, masquerade_opts, &m->conf,
                                  err_r) < 0 ||
        masquerade_conf_check(m, host, err_r) < 0) {
        masquerade_destroy(m);
        return NULL;
    }
    return m;
}

/* ---- the rules ---- */

static const char *
masquerade_myorigin(const struct masquerade *m)
{
    return m->conf.myorigin != NULL ? m->conf.myorigin
                                    : modmta_host_hostname(m->host);
}

/* Is d in the "domains" list, as an exclusion (excl = 1) or not? */
static int
masquerade_listed(const struct masquerade *m, const char *d, int excl)
{
    size_t i;

    for (i = 0; m->conf.domains != NULL && m->conf.domains[i]; i++) {
        const char *e = m->conf.domains[i];

        if ((*e == '!') == excl && strcasecmp(e + excl, d) == 0)
            return 1;
    }
    return 0;
}

/* Sendmail mode ("as" set): the domain itself, then (entire_domain) each
 * parent, nearest first. A '!' entry stops; a local domain, a "domains"
 * entry or "as" itself (as a parent) masquerades. */
static const char *
masquerade_sendmail(const struct masquerade *m, const char *domain)
{
    const char *s = domain;

    if (modmta_domain_equal(domain, m->conf.as))
        return NULL;
    while (s != NULL) {
        if (masquerade_listed(m, s, 1))
            return NULL;
        if (modmta_host_is_local_domain(m->host, s) ||
            masquerade_listed(m, s, 0) ||
            (s != domain && modmta_domain_equal(s, m->conf.as)))
            return m->conf.as;
        if (!m->conf.entire_domain)
            return NULL;
        s = strchr(s, '.');
        s = s != NULL ? s + 1 : NULL;
    }
    return NULL;
}

/* Postfix mode: the first "domains" entry the domain equals (stop) or
 * is a subdomain of (a '!' entry stops, another one is the result). */
static const char *
masquerade_postfix(const struct masquerade *m, const char *domain)
{
    size_t dlen = strlen(domain), i;

    for (i = 0; m->conf.domains != NULL && m->conf.domains[i]; i++) {
        const char *e = m->conf.domains[i];
        int excl = *e == '!';
        size_t elen = strlen(e + excl);

        if (elen == dlen && strcasecmp(e + excl, domain) == 0)
            return NULL;
        if (elen < dlen && domain[dlen - elen - 1] == '.' &&
            strcasecmp(e + excl, domain + dlen - elen) == 0)
            return excl ? NULL : e;
    }
    return NULL;
}

static int
masquerade_is_exception(const struct masquerade *m, const char *local,
                        const char *domain)
{
    char full[MASQUERADE_ADDR_MAX];
    size_t i;

    snprintf(full, sizeof(full), "%s@%s", local, domain);
    for (i = 0; m->conf.exceptions != NULL && m->conf.exceptions[i]; i++) {
        const char *e = m->conf.exceptions[i];

        if (strcasecmp(e, strchr(e, '@') != NULL ? full : local) == 0)
            return 1;
    }
    return 0;
}

/* The generic map's entry for local@domain, then @domain, into out.
 * 1 found, 0 not found, <0 lookup error. A value that is not one
 * address is logged and ignored. */
static int
masquerade_generic(const struct masquerade_msg *msg, const char *local,
                   const char *domain, char *out, size_t outlen)
{
    char key[MASQUERADE_ADDR_MAX];
    char *v = NULL, *s, *e;
    modmta_addr a;
    const char *end;
    int r = 0, pass;

    for (pass = 0; pass < 2; pass++) {
        snprintf(key, sizeof(key), "%s@%s", pass ? "" : local, domain);
        r = modmta_map_lookup(msg->generic, key, &v);
        if (r != 0)
            break;
    }
    if (r <= 0)
        return r;
    for (s = v; isspace((unsigned char)*s); s++)
        ;
    for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
        ;
    *e = '\0';
    r = 0;
    if (modmta_addr_parse(s, MODMTA_ADDR_NO_BRACKETS, &a, &end) == 0 &&
        *end == '\0' && a.domain[0] != '\0' && strlen(s) < outlen) {
        snprintf(out, outlen, "%s", s);
        r = 1;
    } else {
        modmta_log(msg->ctx, MODMTA_LOG_WARN, "bad generic entry key=<%s> "
                   "map=%s: not one address", key,
                   modmta_map_name(msg->generic));
    }
    modmta_free(v);
    return r;
}

/* Rewrite one address: raw_local is its local part as written (kept in
 * the result), local the same unquoted (for lookups), domain "" when
 * unqualified. 1 with the new address in out, 0 unchanged, <0 error. */
static int
masquerade_addr(const struct masquerade_msg *msg, const char *raw_local,
                const char *local, const char *domain, char *out,
                size_t outlen)
{
    const struct masquerade *m = msg->m;
    char dom[MODMTA_ADDR_DOMAIN_MAX + 1];
    const char *to;
    size_t i;
    int r;

    snprintf(dom, sizeof(dom), "%s",
             domain[0] != '\0' ? domain : masquerade_myorigin(m));
    for (i = 0; dom[i] != '\0'; i++)
        dom[i] = (char)tolower((unsigned char)dom[i]);
    if (msg->generic != NULL) {
        r = masquerade_generic(msg, local, dom, out, outlen);
        if (r != 0)
            return r;
    }
    to = NULL;
    if (!masquerade_is_exception(m, local, dom))
        to = m->conf.as != NULL ? masquerade_sendmail(m, dom)
                                : masquerade_postfix(m, dom);
    if (to == NULL && domain[0] != '\0')
        return 0;
    if ((size_t)snprintf(out, outlen, "%s@%s", raw_local,
                         to != NULL ? to : dom) >= outlen)
        return 0;
    return 1;
}

/* ---- the envelope sender ---- */

/* Rewrite an envelope address "local@domain" (or "local"). */
static int
masquerade_envelope_addr(const struct masquerade_msg *msg, const char *addr,
                         char *out, size_t outlen)
{
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1];

    if (modmta_addr_split(addr, local, sizeof(local), domain,
                          sizeof(domain)) < 0)
        return 0;
    return masquerade_addr(msg, local, local, domain, out, outlen);
}

/* Mail from a local sender: not <>, and unqualified, in a local domain,
 * or an address the rules rewrite. */
static int
masquerade_local_sender(const struct masquerade_msg *msg, const char *sender)
{
    char local[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    char domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    char out[MASQUERADE_ADDR_MAX];

    if (sender == NULL || sender[0] == '\0' ||
        modmta_addr_split(sender, local, sizeof(local), domain,
                          sizeof(domain)) < 0)
        return 0;
    if (domain[0] == '\0' ||
        modmta_host_is_local_domain(msg->m->host, domain))
        return 1;
    return masquerade_envelope_addr(msg, sender, out, sizeof(out));
}

/* ---- header fields ---- */

/* The addresses of one field value, rewritten. 1 with a new value in
 * *out_r (malloc'ed), 0 unchanged (or unparsable: left alone), <0. */
static int
masquerade_value(const struct masquerade_msg *msg, const char *value,
                 char **out_r)
{
    addrlist *l = malloc(sizeof(*l));
    char (*buf)[MASQUERADE_ADDR_MAX] = NULL;
    const char *repl[ADDRLIST_ADDRS_MAX] = {0};
    char raw[MASQUERADE_ADDR_MAX];
    int r = MODMTA_E_NOMEM, changed = 0;
    size_t i, n;

    if (l == NULL)
        return r;
    if (addrlist_parse(value, l) < 0 || l->n == 0) {
        free(l);
        return 0;
    }
    buf = malloc(l->n * sizeof(*buf));
    r = 0;
    for (i = 0; buf != NULL && i < l->n; i++) {
        const addrlist_addr *a = &l->addrs[i];

        n = a->local_end - a->start;
        if (n >= sizeof(raw))
            continue;
        memcpy(raw, value + a->start, n);
        raw[n] = '\0';
        r = masquerade_addr(msg, raw, a->local, a->domain, buf[i],
                            sizeof(buf[i]));
        if (r < 0)
            break;
        repl[i] = r ? buf[i] : NULL;
        changed |= r;
    }
    r = buf == NULL ? MODMTA_E_NOMEM : r < 0 ? r : 0;
    if (r == 0 && changed)
        r = addrlist_splice(value, l, repl, out_r) < 0 ? MODMTA_E_NOMEM : 1;
    free(buf);
    free(l);
    return r;
}

static int
masquerade_field(const struct masquerade_msg *msg, const char *name)
{
    modmta_ctx *ctx = msg->ctx;
    const char *v;
    char *nv;
    size_t idx;
    int r;

    for (idx = 0; (v = modmta_hdr_get(ctx, name, idx)) != NULL; idx++) {
        r = masquerade_value(msg, v, &nv);
        if (r <= 0) {
            if (r < 0)
                return r;
            continue;
        }
        modmta_log(ctx, MODMTA_LOG_INFO, "rewrite header=%s old=\"%s\" "
                   "new=\"%s\"", name, v, nv);
        r = modmta_hdr_change(ctx, name, idx, nv);
        free(nv);
        if (r < 0)
            return r;
    }
    return 0;
}

static int
masquerade_sender(const struct masquerade_msg *msg, const char *sender)
{
    char out[MASQUERADE_ADDR_MAX];
    int r;

    r = masquerade_envelope_addr(msg, sender, out, sizeof(out));
    if (r <= 0)
        return r;
    modmta_log(msg->ctx, MODMTA_LOG_INFO, "rewrite sender=<%s> new=<%s>",
               sender, out);
    return modmta_sender_set(msg->ctx, out);
}

/* 1 if the message leaves: a recipient outside the inbound domains (an
 * address without a domain, postmaster, is local). Postfix applies
 * smtp_generic_maps in its SMTP client, to mail that leaves. */
static int
masquerade_leaves(const modmta_ctx *ctx)
{
    for (size_t i = 0; i < modmta_rcpt_count(ctx); i++) {
        const char *at = strrchr(modmta_rcpt_at(ctx, i), '@');

        if (at != NULL && !modmta_is_inbound_domain(ctx, at + 1))
            return 1;
    }
    return 0;
}

static modmta_verdict
masquerade_on_data(void *inst, modmta_ctx *ctx)
{
    const struct masquerade *m = inst;
    const struct masquerade_msg msg = {
        .m = m, .ctx = ctx,
        .generic = masquerade_leaves(ctx) ? m->conf.generic : NULL,
    };
    const char *sender = modmta_sender(ctx);
    size_t i;
    int r;

    r = masquerade_local_sender(&msg, sender);
    for (i = 0; r > 0 && i < sizeof(masquerade_fields) /
                                 sizeof(masquerade_fields[0]); i++)
        if (masquerade_field(&msg, masquerade_fields[i]) < 0)
            r = MODMTA_E_TEMP;
    if (r > 0 && m->conf.envelope && masquerade_sender(&msg, sender) < 0)
        r = MODMTA_E_TEMP;
    if (r < 0) {
        modmta_log(ctx, MODMTA_LOG_WARN, "tempfail reason=\"%s\"",
                   modmta_strerror(r));
        modmta_reply(ctx, 451, "4.3.0", "Error: address rewriting failed, "
                     "try again later");
        return MODMTA_TEMPFAIL;
    }
    return MODMTA_CONTINUE;
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "masquerade",
    .version = "1.0.0",
    .caps = MODMTA_CAP_CHGHDRS | MODMTA_CAP_CHGFROM,
    .create = masquerade_create,
    .destroy = masquerade_destroy,
    .on_data = masquerade_on_data,
};
