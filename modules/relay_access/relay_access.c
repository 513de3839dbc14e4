/*
 * relay_access: who may send through us. Closed by default: a recipient
 * outside the local domains is accepted only for a client in mynetworks,
 * an authenticated client, a client whose address a POP3 login recorded
 * (pop_before_smtp), a relay_domains destination, or an access table
 * RELAY; the access table (Sendmail's access(5)) also rejects, discards
 * or answers with its own error at connect, MAIL and RCPT.
 * See README.md for the keys, the order of the checks and the rules.
 */
#include <arpa/inet.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <modmta/modmta.h>

#include "access_table.h"

/* A mynetworks entry. */
struct relay_access_net {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    unsigned prefix;
};

struct relay_access_conf {
    char **mynetworks;
    char **relay_domains;
    json_t *access;
    int pop_before_smtp;
};

struct relay_access {
    struct relay_access_conf conf;
    struct relay_access_net *nets;
    size_t nnets;
    access_table *access; /* NULL without "access" */
    modmta_shared *shared; /* POP-before-SMTP's addresses */
};

/* The POP-before-SMTP contract with pop3 (both READMEs): a POP3 login
 * sets "popb4smtp:ADDRESS" (the client's address as inet_ntop writes
 * it, IPv4-mapped IPv6 as IPv4) to the user's name, with a TTL. */
#define RELAY_ACCESS_POPB4_KEY "popb4smtp:"

static const modmta_option relay_access_opts[] = {
    MODMTA_OPTION_STRLIST("mynetworks", struct relay_access_conf, mynetworks,
                          0),
    MODMTA_OPTION_STRLIST("relay_domains", struct relay_access_conf,
                          relay_domains, 0),
    MODMTA_OPTION_JSON("access", struct relay_access_conf, access, 0),
    MODMTA_OPTION_BOOL("pop_before_smtp", struct relay_access_conf,
                       pop_before_smtp, 0),
    MODMTA_OPTION_END
};

static const char *const relay_access_default_nets[] = {
    "127.0.0.0/8", "::1/128", NULL,
};

/* ---- addresses and networks ---- */

/* Text address into family and bytes; IPv4-mapped IPv6 counts as IPv4. */
static int
relay_access_ip(const char *s, int *family_r, unsigned char addr[16])
{
    if (inet_pton(AF_INET, s, addr) == 1) {
        *family_r = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, s, addr) != 1)
        return MODMTA_E_INVAL;
    *family_r = AF_INET6;
    if (memcmp(addr, "\0\0\0\0\0\0\0\0\0\0\xff\xff", 12) == 0) {
        memmove(addr, addr + 12, 4);
        *family_r = AF_INET;
    }
    return 0;
}

/* "ADDRESS/PREFIX" or "ADDRESS" (a single host). */
static int
relay_access_net_parse(const char *s, struct relay_access_net *n)
{
    char buf[INET6_ADDRSTRLEN + 8], *slash, *end;
    unsigned long prefix;
    unsigned max;

    if (strlen(s) >= sizeof(buf))
        return MODMTA_E_INVAL;
    snprintf(buf, sizeof(buf), "%s", s);
    if ((slash = strchr(buf, '/')) != NULL)
        *slash = '\0';
    if (strchr(buf, ':') != NULL) {
        if (inet_pton(AF_INET6, buf, n->addr) != 1)
            return MODMTA_E_INVAL;
        n->family = AF_INET6;
        max = 128;
    } else {
        if (inet_pton(AF_INET, buf, n->addr) != 1)
            return MODMTA_E_INVAL;
        n->family = AF_INET;
        max = 32;
    }
    n->prefix = max;
    if (slash != NULL) {
        prefix = strtoul(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' ||
            prefix > max)
            return MODMTA_E_INVAL;
        n->prefix = (unsigned)prefix;
    }
    return 0;
}

static int
relay_access_net_match(const struct relay_access_net *n, int family,
                       const unsigned char *addr)
{
    unsigned full = n->prefix / 8, rest = n->prefix % 8;
    unsigned char mask;

    if (family != n->family || memcmp(addr, n->addr, full) != 0)
        return 0;
    if (rest == 0)
        return 1;
    mask = (unsigned char)(0xff << (8 - rest));
    return (addr[full] & mask) == (n->addr[full] & mask);
}

static int
relay_access_in_mynetworks(const struct relay_access *ra, const char *ip)
{
    unsigned char addr[16];
    int family;
    size_t i;

    if (relay_access_ip(ip, &family, addr) < 0)
        return 0;
    for (i = 0; i < ra->nnets; i++)
        if (relay_access_net_match(&ra->nets[i], family, addr))
            return 1;
    return 0;
}

/* "example.com" matches itself and its subdomains (Postfix's default
 * parent_domain_matches_subdomains), ".example.com" subdomains only. */
static int
relay_access_relay_domain(const struct relay_access *ra, const char *domain)
{
    size_t dlen = strlen(domain), rlen;
    char **rd;

    for (rd = ra->conf.relay_domains; rd != NULL && *rd != NULL; rd++) {
        rlen = strlen(*rd);
        if ((*rd)[0] != '.' && modmta_domain_equal(domain, *rd))
            return 1;
        if ((*rd)[0] == '.' && dlen > rlen &&
            strcasecmp(domain + dlen - rlen, *rd) == 0)
            return 1;
        if ((*rd)[0] != '.' && dlen > rlen + 1 &&
            domain[dlen - rlen - 1] == '.' &&
            strcasecmp(domain + dlen - rlen, *rd) == 0)
            return 1;
    }
    return 0;
}

/* ---- configuration ---- */

static void
relay_access_destroy(void *inst)
{
    struct relay_access *ra = inst;

    if (ra == NULL)
        return;
    access_table_close(ra->access);
    modmta_conf_free_options(relay_access_opts, &ra->conf);
    free(ra->nets);
    free(ra);
}

static int
relay_access_nets(struct relay_access *ra, const char *path,
                  modmta_err *err_r)
{
    const char *const *list = ra->conf.mynetworks != NULL
        ? (const char *const *)ra->conf.mynetworks
        : relay_access_default_nets;
    char epath[300];
    size_t n = 0, i;

    while (list[n] != NULL)
        n++;
    if ((ra->nets = calloc(n + 1, sizeof(*ra->nets))) == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return MODMTA_E_NOMEM;
    }
    for (i = 0; i < n; i++) {
        if (relay_access_net_parse(list[i], &ra->nets[i]) < 0) {
            snprintf(epath, sizeof(epath), "%s.mynetworks[%zu]", path, i);
            modmta_err_set(err_r, epath, "invalid network \"%s\" (expected "
                           "ADDRESS/PREFIX, IPv4 or IPv6)", list[i]);
            return MODMTA_E_CONFIG;
        }
    }
    ra->nnets = n;
    return 0;
}

static int
relay_access_domains(struct relay_access *ra, const char *path,
                     modmta_err *err_r)
{
    char **rd, epath[300];
    size_t i = 0;

    for (rd = ra->conf.relay_domains; rd != NULL && *rd != NULL; rd++) {
        size_t n = strlen(*rd);

        if (n > 0 && (*rd)[n - 1] == '.')
            (*rd)[--n] = '\0';
        if (n == 0 || strcmp(*rd, ".") == 0 || strpbrk(*rd, "@ \t") ||
            n > MODMTA_ADDR_DOMAIN_MAX) {
            snprintf(epath, sizeof(epath), "%s.relay_domains[%zu]", path, i);
            modmta_err_set(err_r, epath, "invalid domain \"%s\"", *rd);
            return MODMTA_E_CONFIG;
        }
        i++;
    }
    return 0;
}

static void *
relay_access_create(const json_t *conf, const modmta_host *host,
                    modmta_err *err_r)
{
    const char *path = modmta_host_path(host);
    struct relay_access *ra = calloc(1, sizeof(*ra));
    char apath[300];

    if (ra == NULL) {
        modmta_err_set(err_r, path, "out of memory");
        return NULL;
    }
    if (modmta_conf_parse_options(conf, host, relay_access_opts, &ra->conf,
                          err_r) < 0 ||
        relay_access_nets(ra, path, err_r) < 0 ||
        relay_access_domains(ra, path, err_r) < 0)
        goto fail;
    ra->shared = modmta_host_shared(host);
    if (ra->conf.access != NULL) {
        snprintf(apath, sizeof(apath), "%s.access", path);
        ra->access = access_table_open(ra->conf.access, host, apath,
                                       err_r);
        if (ra->access == NULL)
            goto fail;
    }
    return ra;
fail:
    relay_access_destroy(ra);
    return NULL;
}

/* ---- replies and logs ---- */

static const char *
relay_access_str(const char *s)
{
    return s != NULL ? s : "";
}

/* One line per refusal: who, what, and the rule that decided. */
static void
relay_access_log(modmta_ctx *ctx, const char *what, const char *rcpt,
                 const char *rule)
{
    modmta_log(ctx, MODMTA_LOG_INFO,
               "%s: client=%s[%s] from=<%s> to=<%s> rule=%s", what,
               modmta_client_name(ctx), modmta_client_addr(ctx),
               relay_access_str(modmta_sender(ctx)),
               relay_access_str(rcpt), rule);
}

static void
relay_access_log_rule(modmta_ctx *ctx, const char *what, const char *rcpt,
                      const access_result *r)
{
    char rule[ACCESS_RULE_MAX + 8];

    snprintf(rule, sizeof(rule), "access:%s", r->rule);
    relay_access_log(ctx, what, rcpt, rule);
}

/* 451: a lookup failed (rule: which one), never "denied". */
static modmta_verdict
relay_access_tempfail_rule(modmta_ctx *ctx, const char *rcpt,
                           const char *rule)
{
    relay_access_log(ctx, "tempfail", rcpt, rule);
    modmta_reply(ctx, 451, "4.3.0", "Temporary lookup failure");
    return MODMTA_TEMPFAIL;
}

static modmta_verdict
relay_access_tempfail(modmta_ctx *ctx, const char *rcpt)
{
    return relay_access_tempfail_rule(ctx, rcpt, "access:lookup-error");
}

/* ERROR:nnn text: the table's own reply. */
static modmta_verdict
relay_access_error(modmta_ctx *ctx, const access_result *r)
{
    modmta_reply(ctx, r->code, r->esc[0] != '\0' ? r->esc : NULL, "%s",
                 r->text[0] != '\0' ? r->text : "Access denied");
    return r->code / 100 == 4 ? MODMTA_TEMPFAIL : MODMTA_REJECT;
}

/* REJECT and ERROR at any step, DISCARD at MAIL and RCPT. `subject`
 * names what the default text is about ("Sender address"). Returns
 * CONTINUE when the result does not end the step. */
static modmta_verdict
relay_access_act(modmta_ctx *ctx, const access_result *r, const char *rcpt,
                 const char *addr, const char *subject)
{
    switch (r->action) {
    case ACCESS_REJECT:
        relay_access_log_rule(ctx, "reject", rcpt, r);
        if (subject == NULL)
            modmta_reply(ctx, 554, "5.7.1", "Access denied");
        else
            modmta_reply(ctx, 550, "5.7.1", "<%s>: %s rejected: Access "
                         "denied", addr, subject);
        return MODMTA_REJECT;
    case ACCESS_ERROR:
        relay_access_log_rule(ctx, "reject", rcpt, r);
        return relay_access_error(ctx, r);
    case ACCESS_DISCARD:
        if (subject == NULL)
            return MODMTA_CONTINUE; /* acted on at MAIL */
        relay_access_log_rule(ctx, "discard", rcpt, r);
        return MODMTA_DISCARD;
    default:
        return MODMTA_CONTINUE;
    }
}

/* The client's Connect: entry, or none without a table. */
static int
relay_access_client(struct relay_access *ra, modmta_ctx *ctx,
                    access_result *r)
{
    memset(r, 0, sizeof(*r));
    if (ra->access == NULL)
        return 0;
    return access_table_client(ra->access, modmta_client_name(ctx),
                               modmta_client_addr(ctx), r);
}

static int
relay_access_address(struct relay_access *ra, access_tag tag,
                     const char *addr, access_result *r)
{
    memset(r, 0, sizeof(*r));
    if (ra->access == NULL)
        return 0;
    return access_table_address(ra->access, tag, addr, r);
}

/* ---- hooks ---- */

static modmta_verdict
relay_access_on_connect(void *inst, modmta_ctx *ctx)
{
    access_result r;

    if (relay_access_client(inst, ctx, &r) < 0)
        return relay_access_tempfail(ctx, NULL);
    return relay_access_act(ctx, &r, NULL, NULL, NULL);
}

static modmta_verdict
relay_access_on_mail(void *inst, modmta_ctx *ctx, const char *sender)
{
    access_result r;

    if (relay_access_client(inst, ctx, &r) < 0)
        return relay_access_tempfail(ctx, NULL);
    if (r.action == ACCESS_DISCARD) {
        relay_access_log_rule(ctx, "discard", NULL, &r);
        return MODMTA_DISCARD;
    }
    if (relay_access_address(inst, ACCESS_FROM, sender, &r) < 0)
        return relay_access_tempfail(ctx, NULL);
    return relay_access_act(ctx, &r, NULL, sender,
                            "Sender address");
}

/* A recipient whose local part routes elsewhere (percent hack, bang
 * path, an '@' hidden by quotes). */
static int
relay_access_routed(const char *local)
{
    return strpbrk(local, "@%!") != NULL;
}

static modmta_verdict
relay_access_deny(modmta_ctx *ctx, const char *rcpt, const char *rule)
{
    relay_access_log(ctx, "reject", rcpt, rule);
    modmta_reply(ctx, 554, "5.7.1", "<%s>: Relay access denied", rcpt);
    return MODMTA_REJECT;
}

/* The client may relay: mynetworks, AUTH, or a Connect: RELAY entry. */
static int
relay_access_trusted(struct relay_access *ra, modmta_ctx *ctx,
                     const access_result *client)
{
    return client->action == ACCESS_RELAY || modmta_auth_user(ctx) != NULL ||
           relay_access_in_mynetworks(ra, modmta_client_addr(ctx));
}

/* A To: RELAY from the full address or a domain key. "user@" names no
 * domain: were it honoured, it would open relaying to that user at every
 * domain in the world. */
static int
relay_access_to_relay(const access_result *to)
{
    return to->action == ACCESS_RELAY && !to->user_key;
}

/* POP-before-SMTP: 1 if a POP3 login recorded the client's address
 * (*user_r: the user it recorded, malloc'ed), 0 if not or when the
 * option is off, <0 when the shared state cannot say. */
static int
relay_access_popb4(const struct relay_access *ra, modmta_ctx *ctx,
                   char **user_r)
{
    char key[sizeof(RELAY_ACCESS_POPB4_KEY) + INET6_ADDRSTRLEN];
    char text[INET6_ADDRSTRLEN];
    unsigned char addr[16];
    int family;

    *user_r = NULL;
    if (!ra->conf.pop_before_smtp ||
        relay_access_ip(modmta_client_addr(ctx), &family, addr) < 0)
        return 0;
    inet_ntop(family, addr, text, sizeof(text));
    snprintf(key, sizeof(key), RELAY_ACCESS_POPB4_KEY "%s", text);
    return modmta_shared_get(ra->shared, key, user_r);
}

/* The client may relay through POP-before-SMTP: 1 (logged with the
 * user), 0, or <0 (the store could not say). */
static int
relay_access_popb4_ok(const struct relay_access *ra, modmta_ctx *ctx,
                      const char *rcpt)
{
    char *user = NULL, rule[96];
    size_t i;
    int r = relay_access_popb4(ra, ctx, &user);

    if (r == 1) {
        /* the value comes from the store: only printable, no quote */
        for (i = 0; user[i] != '\0' && i < 64; i++)
            if (user[i] <= ' ' || user[i] >= 0x7f || user[i] == '"')
                user[i] = '?';
        user[i] = '\0';
        snprintf(rule, sizeof(rule), "pop-before-smtp user=\"%s\"", user);
        relay_access_log(ctx, "relay", rcpt, rule);
    }
    modmta_free(user);
    return r;
}

static modmta_verdict
relay_access_on_rcpt(void *inst, modmta_ctx *ctx, const char *rcpt)
{
    struct relay_access *ra = inst;
    char local[MODMTA_ADDR_PATH_MAX * 2], domain[MODMTA_ADDR_DOMAIN_MAX + 1];
    access_result client, to;
    int trusted, inbound, popb4 = 0;
    modmta_verdict v;

    if (modmta_addr_split(rcpt, local, sizeof(local), domain,
                          sizeof(domain)) < 0)
        return relay_access_deny(ctx, rcpt, "syntax");
    /* Local domains and those a module owns (virtual): received here,
     * even when also listed in relay_domains. */
    inbound = domain[0] == '\0' || modmta_is_inbound_domain(ctx, domain);
    /* The admin's alias or virtual entry may point outside. */
    if (modmta_rcpt_is_rewritten(ctx))
        return inbound ? MODMTA_CONTINUE : MODMTA_ACCEPT;
    if (relay_access_client(ra, ctx, &client) < 0 ||
        relay_access_address(ra, ACCESS_TO, rcpt, &to) < 0)
        return relay_access_tempfail(ctx, rcpt);
    trusted = relay_access_trusted(ra, ctx, &client);
    /* POP-before-SMTP trusts as mynetworks does; the store is asked
     * only when that decides. */
    if (!trusted && relay_access_routed(local)) {
        if ((popb4 = relay_access_popb4_ok(ra, ctx, rcpt)) < 0)
            return relay_access_tempfail_rule(ctx, rcpt,
                                              "pop-before-smtp:store-error");
        if (popb4 == 0)
            return relay_access_deny(ctx, rcpt, "routing");
        trusted = 1;
    }
    if ((v = relay_access_act(ctx, &to, rcpt, rcpt, "Recipient address")) !=
        MODMTA_CONTINUE)
        return v;
    if (inbound)
        return MODMTA_CONTINUE; /* a mailbox, alias or virtual claims it */
    if (trusted || relay_access_to_relay(&to) ||
        relay_access_relay_domain(ra, domain))
        return MODMTA_ACCEPT;
    if ((popb4 = relay_access_popb4_ok(ra, ctx, rcpt)) < 0)
        return relay_access_tempfail_rule(ctx, rcpt,
                                          "pop-before-smtp:store-error");
    if (popb4 == 1)
        return MODMTA_ACCEPT;
    return relay_access_deny(ctx, rcpt, "relay");
}

MODMTA_MODULE = {
    .abi = MODMTA_ABI_VERSION,
    .size = sizeof(modmta_module),
    .sig = MODMTA_BUILD_SIG,
    .name = "relay_access",
    .version = "1.0.0",
    .create = relay_access_create,
    .destroy = relay_access_destroy,
    .on_connect = relay_access_on_connect,
    .on_mail = relay_access_on_mail,
    .on_rcpt = relay_access_on_rcpt,
};
