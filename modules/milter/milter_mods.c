/* milter: the modification replies at end of message, applied through
 * the SDK's milter actions as they arrive (milter_session.h). A reply
 * the milter did not negotiate, or a malformed one, is misbehaviour. */
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>

#include "milter_session.h"

/* The SDK's answer to an action: 0, or -2 (logged). */
static int
milter_mods_local(modmta_ctx *ctx, int r)
{
    if (r >= 0)
        return 0;
    modmta_log(ctx, MODMTA_LOG_ERR, "milter action failed: %s",
               modmta_strerror(r));
    return -2;
}

/* The SDK's answer to an envelope change: an address or parameters it
 * refuses (MODMTA_E_INVAL: a control character, '<', '>', over-long, a
 * bad ESMTP parameter) is the milter's fault, so -1 (misbehaviour: the
 * milter's error rule, default_action, decides); other errors as
 * milter_mods_local. */
static int
milter_mods_envelope(modmta_ctx *ctx, int r)
{
    if (r != MODMTA_E_INVAL)
        return milter_mods_local(ctx, r);
    modmta_log(ctx, MODMTA_LOG_ERR, "milter sent an envelope address or "
               "parameter modmta refuses (control character, '<', '>', "
               "over-long or bad ESMTP parameter)");
    return -1;
}

/* "<addr>" or "addr": the address without its brackets, in buf. */
static const char *
milter_mods_addr(const char *s, char *buf, size_t len)
{
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
        if (n - 2 >= len)
            return NULL;
        memcpy(buf, s + 1, n - 2);
        buf[n - 2] = '\0';
        return buf;
    }
    return s;
}

/* A header value from a milter, as modmta stores one: libmilter
 * programs fold with a bare LF ("\n\t"), which becomes CRLF; a line
 * break not followed by white space gets a tab, so a value is always
 * one header. Without HDR_LEADSPC modmta writes the space after the
 * colon itself; with it, the milter's own leading white space stands
 * for it. */
char *
milter_header_value(uint32_t proto, const char *v)
{
    char *out, *o;

    if (proto & MILTER_P_HDR_LEADSPC)
        v += strspn(v, " \t");
    out = malloc(strlen(v) * 3 + 1);
    if (out == NULL)
        return NULL;
    for (o = out; *v; v++) {
        if (*v != '\r' && *v != '\n') {
            *o++ = *v;
            continue;
        }
        if (v[0] == '\r' && v[1] == '\n')
            v++;
        *o++ = '\r';
        *o++ = '\n';
        if (v[1] != ' ' && v[1] != '\t')
            *o++ = '\t';
    }
    *o = '\0';
    return out;
}

static int
milter_mods_header(modmta_ctx *ctx, struct milter_peer *p,
                   struct milter_rd *rd, int code)
{
    const char *name, *raw;
    char *value;
    uint32_t idx = 0;
    int r;

    if (code != MILTER_R_ADDHEADER && milter_rd_u32(rd, &idx) < 0)
        return -1;
    if (milter_rd_str(rd, &name) < 0 || milter_rd_str(rd, &raw) < 0 ||
        name[0] == '\0')
        return -1;
    value = milter_header_value(p->proto, raw);
    if (value == NULL)
        return milter_mods_local(ctx, MODMTA_E_NOMEM);
    if (code == MILTER_R_ADDHEADER) {
        r = modmta_hdr_add(ctx, name, value);
    } else if (code == MILTER_R_INSHEADER) {
        r = modmta_hdr_insert(ctx, idx, name, value);
    } else {
        /* CHGHEADER: index from 1 among the headers of that name; an
         * empty value deletes; changing one that is not there adds it. */
        r = modmta_hdr_change(ctx, name, idx > 0 ? idx - 1 : 0,
                              value[0] ? value : NULL);
        if (r == MODMTA_E_NOTFOUND)
            r = value[0] ? modmta_hdr_add(ctx, name, value) : 0;
    }
    free(value);
    return milter_mods_local(ctx, r);
}

/* ADDRCPT, ADDRCPT_PAR (with ESMTP parameters), DELRCPT. */
static int
milter_mods_rcpt(modmta_ctx *ctx, const struct milter_peer *p,
                 struct milter_rd *rd, int code)
{
    uint32_t need = code == MILTER_R_ADDRCPT       ? MILTER_A_ADDRCPT
                    : code == MILTER_R_ADDRCPT_PAR ? MILTER_A_ADDRCPT_PAR
                                                   : MILTER_A_DELRCPT;
    const char *s, *args = NULL, *addr;
    char buf[1024];

    if (!(p->actions & need) || milter_rd_str(rd, &s) < 0 ||
        (code == MILTER_R_ADDRCPT_PAR && rd->left > 0 &&
         milter_rd_str(rd, &args) < 0))
        return -1;
    addr = milter_mods_addr(s, buf, sizeof(buf));
    if (addr == NULL || addr[0] == '\0')
        return -1;
    if (code == MILTER_R_DELRCPT)
        return milter_mods_local(ctx, modmta_rcpt_remove(ctx, addr));
    if (args != NULL && args[0] != '\0')
        return milter_mods_envelope(ctx,
                                    modmta_rcpt_add_params(ctx, addr, args));
    return milter_mods_envelope(ctx, modmta_rcpt_add(ctx, addr));
}

/* CHGFROM: the new sender and, optionally, its ESMTP parameters. */
static int
milter_mods_from(modmta_ctx *ctx, struct milter_rd *rd)
{
    const char *s, *args = NULL, *addr;
    char buf[1024];

    if (milter_rd_str(rd, &s) < 0 ||
        (rd->left > 0 && milter_rd_str(rd, &args) < 0))
        return -1;
    addr = milter_mods_addr(s, buf, sizeof(buf));
    if (addr == NULL)
        return -1;
    if (args != NULL && args[0] != '\0')
        return milter_mods_envelope(
            ctx, modmta_sender_set_params(ctx, addr, args));
    return milter_mods_envelope(ctx, modmta_sender_set(ctx, addr));
}

int
milter_mods_apply(modmta_ctx *ctx, struct milter_peer *p)
{
    struct milter_rd rd = {.p = p->conn.data, .left = p->conn.len};
    int code = p->conn.code;
    const char *s;

    switch (code) {
    case MILTER_R_ADDHEADER:
        if (!(p->actions & MILTER_A_ADDHDRS))
            return -1;
        return milter_mods_header(ctx, p, &rd, code);
    case MILTER_R_INSHEADER:
        if (!(p->actions & MILTER_A_ADDHDRS))
            return -1;
        return milter_mods_header(ctx, p, &rd, code);
    case MILTER_R_CHGHEADER:
        if (!(p->actions & MILTER_A_CHGHDRS))
            return -1;
        return milter_mods_header(ctx, p, &rd, code);
    case MILTER_R_ADDRCPT:
    case MILTER_R_ADDRCPT_PAR:
    case MILTER_R_DELRCPT:
        return milter_mods_rcpt(ctx, p, &rd, code);
    case MILTER_R_CHGFROM:
        if (!(p->actions & MILTER_A_CHGFROM))
            return -1;
        return milter_mods_from(ctx, &rd);
    case MILTER_R_QUARANTINE:
        if (!(p->actions & MILTER_A_QUARANTINE) || milter_rd_str(&rd, &s) < 0)
            return -1;
        return milter_mods_local(ctx, modmta_quarantine(ctx, s));
    case MILTER_R_REPLBODY:
        if (!(p->actions & MILTER_A_CHGBODY))
            return -1;
        return milter_mods_local(
            ctx, modmta_body_replace(ctx, p->conn.data, p->conn.len));
    default:
        return -1;
    }
}
