/* Which recipients a deliver_pipe instance takes (README.md, "Keys"). */
#include <ctype.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>

#include "deliver_pipe.h"
#include "pipe_alias.h"
#include "pipe_argv.h"

static int
dpipe_domain_ours(const struct dpipe *d, const char *domain)
{
    size_t i;

    if (d->conf.domains == NULL)
        return domain[0] == '\0' ||
               modmta_host_is_local_domain(d->host, domain);
    for (i = 0; d->conf.domains[i] != NULL; i++)
        if (modmta_domain_equal(d->conf.domains[i], domain))
            return 1;
    return 0;
}

static enum dpipe_kind
dpipe_system_user(const char *user)
{
    struct passwd pw, *res = NULL;
    char buf[16384], name[MODMTA_ADDR_LOCAL_MAX * 2 + 1];
    size_t i;
    int e;

    for (i = 0; user[i] != '\0' && i + 1 < sizeof(name); i++)
        name[i] = (char)tolower((unsigned char)user[i]);
    name[i] = '\0';
    e = getpwnam_r(name, &pw, buf, sizeof(buf), &res);
    if (res != NULL)
        return DPIPE_OK;
    /* getpwnam_r(3): these also mean "no such user" */
    if (e == 0 || e == ENOENT || e == ESRCH || e == EBADF || e == EPERM)
        return DPIPE_UNKNOWN;
    return DPIPE_TEMP;
}

/* "users" as a map: the address, the address without its extension,
 * the local part, then the user without its extension (Postfix's
 * order). */
static enum dpipe_kind
dpipe_map_user(const struct dpipe *d, const char *rcpt,
               const struct dpipe_rcpt *r)
{
    char base[MODMTA_ADDR_PATH_MAX + 1];
    const char *keys[4] = { rcpt, NULL, r->mailbox, r->user };
    size_t i;

    if (r->domain[0] != '\0' &&
        (size_t)snprintf(base, sizeof(base), "%s@%s", r->user,
                         r->domain) < sizeof(base) &&
        strcmp(base, rcpt) != 0)
        keys[1] = base;
    for (i = 0; i < 4; i++) {
        int rc = keys[i] != NULL ? modmta_map_lookup(d->map, keys[i], NULL)
                                 : 0;

        if (rc < 0)
            return DPIPE_TEMP;
        if (rc > 0)
            return DPIPE_OK;
    }
    return DPIPE_UNKNOWN;
}

/* The instance's "recipient_delimiter", else the core's. */
static const char *
dpipe_delimiter(const struct dpipe *d)
{
    return d->conf.recipient_delimiter != NULL
               ? d->conf.recipient_delimiter
               : modmta_host_recipient_delimiter(d->host);
}

/* r->user and r->ext from the canonical address, not from the unquoted
 * local part: one that needs quotes (a space, an '@') is never cut, as
 * in every other module. 0 or <0. */
static int
dpipe_split(const struct dpipe *d, const char *rcpt, struct dpipe_rcpt *r)
{
    char base[MODMTA_ADDR_PATH_MAX + 1];
    const char *at;
    int rc = modmta_addr_split_extension(rcpt, dpipe_delimiter(d), base,
                                         sizeof(base), r->ext,
                                         sizeof(r->ext));

    if (rc < 0)
        return rc;
    if (rc == 0) {
        snprintf(r->user, sizeof(r->user), "%s", r->mailbox);
        return 0;
    }
    at = strrchr(base, '@');
    snprintf(r->user, sizeof(r->user), "%.*s",
             (int)(at != NULL ? (size_t)(at - base) : strlen(base)), base);
    return 0;
}

enum dpipe_kind
dpipe_classify(const struct dpipe *d, const char *rcpt, struct dpipe_rcpt *r)
{
    modmta_addr a;

    memset(r, 0, sizeof(*r));
    if (pipe_alias_note_of(rcpt, r->note))
        return d->conf.alias_commands ? DPIPE_ALIAS : DPIPE_NOT_OURS;
    if (d->conf.command == NULL ||
        modmta_addr_parse(rcpt, MODMTA_ADDR_NO_BRACKETS |
                          MODMTA_ADDR_ALLOW_NODOMAIN | MODMTA_ADDR_UTF8,
                          &a, NULL) < 0 ||
        !dpipe_domain_ours(d, a.domain))
        return DPIPE_NOT_OURS;
    snprintf(r->mailbox, sizeof(r->mailbox), "%s", a.local);
    snprintf(r->domain, sizeof(r->domain), "%s", a.domain);
    if (dpipe_split(d, rcpt, r) < 0)
        return DPIPE_NOT_OURS;
    if (d->system_users)
        return dpipe_system_user(r->user);
    if (d->map != NULL)
        return dpipe_map_user(d, rcpt, r);
    return DPIPE_OK;
}
