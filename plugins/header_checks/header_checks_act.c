/*
 * header_checks_act: what a matching rule does to the message, in the
 * order Postfix's cleanup does it: REJECT and DISCARD end the
 * inspection, HOLD holds the message and goes on (a later REJECT still
 * rejects), the header edits go to the SDK's milter actions.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "header_checks_act.h"

/* The enhanced status code at the start of text ("5.7.1 text") of class
 * cls, into esc; text moves past it. */
static const char *
hc_act_esc(const char *text, int cls, char *esc, size_t len)
{
    size_t n = strspn(text, "0123456789.");

    if (n >= 5 && n < len && text[0] == '0' + cls && text[1] == '.' &&
        (text[n] == ' ' || text[n] == '\0')) {
        memcpy(esc, text, n);
        esc[n] = '\0';
        text += n;
        return text + strspn(text, " ");
    }
    snprintf(esc, len, "%d.7.1", cls);
    return text;
}

static int
hc_act_reject(struct hc_state *st, const struct hc_rule *r, const char *text)
{
    char esc[16];
    int cls = r->code / 100;

    text = hc_act_esc(text, cls, esc, sizeof(esc));
    if (*text == '\0')
        text = cls == 4 ? "Message content deferred"
                        : "Message content rejected";
    modmta_reply(st->ctx, r->code, esc, "%s", text);
    st->verdict = cls == 4 ? MODMTA_TEMPFAIL : MODMTA_REJECT;
    return 1;
}

/* Split "Name: value" (text of PREPEND, REPLACE) into name and value,
 * the value's newlines (of a folded header put in with $N) as CRLF.
 * 0 or MODMTA_E_INVAL, MODMTA_E_NOMEM. */
static int
hc_act_header(const char *text, char **name_r, char **value_r)
{
    const char *colon = strchr(text, ':'), *v;
    size_t n = 0;
    char *out;

    if (colon == NULL || colon == text)
        return MODMTA_E_INVAL;
    for (const char *p = text; p < colon; p++)
        if (*p <= ' ' || *p > '~')
            return MODMTA_E_INVAL;
    for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
        ;
    *name_r = strndup(text, (size_t)(colon - text));
    *value_r = out = malloc(strlen(v) * 2 + 1);
    if (*name_r == NULL || out == NULL) {
        free(*name_r);
        free(out);
        return MODMTA_E_NOMEM;
    }
    for (; *v != '\0'; v++) {
        if (*v == '\n' && (n == 0 || out[n - 1] != '\r'))
            out[n++] = '\r';
        out[n++] = *v;
    }
    out[n] = '\0';
    return 0;
}

/* PREPEND and REPLACE of the header called name (its idx-th). */
static int
hc_act_edit(struct hc_state *st, const struct hc_rule *r, const char *text,
            const char *name, size_t idx)
{
    char *nname, *nvalue;
    int e = hc_act_header(text, &nname, &nvalue);

    if (e == 0) {
        if (r->action == HC_PREPEND) {
            e = modmta_hdr_add(st->ctx, nname, nvalue);
        } else if (strcasecmp(nname, name) == 0) {
            e = modmta_hdr_change(st->ctx, name, idx, nvalue);
        } else {
            e = modmta_hdr_delete(st->ctx, name, idx);
            if (e == 0)
                e = modmta_hdr_add(st->ctx, nname, nvalue);
        }
        free(nname);
        free(nvalue);
    }
    if (e < 0 && e != MODMTA_E_NOMEM)
        modmta_log(st->ctx, MODMTA_LOG_WARN, "%s: %s: %.200s",
                   hc_action_name(r->action), e == MODMTA_E_INVAL
                   ? "not a header line" : modmta_strerror(e), text);
    return e == MODMTA_E_NOMEM ? e : 0;
}

int
hc_act(struct hc_state *st, const struct hc_rule *r, const char *text,
       const char *what, const char *line, const char *hname, size_t idx)
{
    const char *act = r->code != 550 && r->action == HC_REJECT
                          ? "reject" : hc_action_name(r->action);

    if (r->action != HC_DUNNO)
        modmta_log(st->ctx, r->action == HC_WARN ? MODMTA_LOG_WARN
                                                 : MODMTA_LOG_INFO,
                   "%s: %s %.200s from=<%s>%s%s", act, what, line,
                   modmta_sender(st->ctx), *text != '\0' ? ": " : "",
                   text);
    switch (r->action) {
    case HC_REJECT:
        return hc_act_reject(st, r, text);
    case HC_DISCARD:
        st->verdict = MODMTA_DISCARD;
        return 1;
    case HC_HOLD:
        if (!st->held &&
            modmta_quarantine(st->ctx, *text != '\0' ? text
                                                     : "header_checks HOLD")
                < 0)
            return MODMTA_E_TEMP;
        st->held = 1;
        return 0;
    case HC_IGNORE:
        return modmta_hdr_delete(st->ctx, hname, idx) == MODMTA_E_NOMEM
                   ? MODMTA_E_NOMEM : 0;
    case HC_PREPEND:
    case HC_REPLACE:
        return hc_act_edit(st, r, text, hname, idx);
    default: /* DUNNO, OK, WARN, INFO */
        return 0;
    }
}
