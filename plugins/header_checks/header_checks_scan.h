/* header_checks_scan: headers and body lines (header_checks_scan.c). */
#ifndef HEADER_CHECKS_SCAN_H
#define HEADER_CHECKS_SCAN_H

#include "header_checks_act.h"

/* Each return 1 when a rule ended the inspection (REJECT, DISCARD), 0
 * when it goes on, <0 on an error. */
int hc_scan_headers(struct hc_state *st, const struct hc_table *t);
/* The body lines of the spooled message, up to limit octets. */
int hc_scan_body(struct hc_state *st, const struct hc_table *t,
                 long long limit);

#endif
