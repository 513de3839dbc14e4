/* header_checks_act: a matching rule's action (header_checks_act.c). */
#ifndef HEADER_CHECKS_ACT_H
#define HEADER_CHECKS_ACT_H

#include "header_checks.h"

/* One message's inspection. */
struct hc_state {
    modmta_ctx *ctx;
    modmta_verdict verdict; /* MODMTA_CONTINUE until REJECT or DISCARD */
    int held;               /* HOLD done */
};

/* Do r's action with its expanded text on the inspected line (what:
 * "header" or "body"); hname and idx name the header (NULL for a body
 * line). 1 when the inspection ends (REJECT, DISCARD), 0 to go on,
 * <0 an error (answer 451). */
int hc_act(struct hc_state *st, const struct hc_rule *r, const char *text,
           const char *what, const char *line, const char *hname, size_t idx);

#endif
