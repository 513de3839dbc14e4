/*
 * Shared by the local stores: scanning a message's header section for a
 * Delivered-To naming a recipient (the mail-loop check, as Postfix's
 * local(8) makes it) and for the word pair "id QUEUEID" of the core's
 * Received header (store_mbox's search for a message already delivered).
 * Headers are unfolded before they are looked at.
 */
#ifndef MODULES_COMMON_HDR_SCAN_H
#define MODULES_COMMON_HDR_SCAN_H

#include <stddef.h>

typedef struct hdr_scan {
    const char *rcpt;     /* the Delivered-To looked for */
    const char *queue_id; /* NULL: not looked for */
    int saw_rcpt;
    int saw_id;
    char *hdr; /* the header being collected (free() it when done) */
    size_t hdr_len, hdr_cap;
} hdr_scan;

/* Length of line without its LF or CRLF. */
size_t hdr_scan_chomp(const char *line, size_t n);

/* Feed one header-section line (line end removed). 1 at the blank line
 * that ends the section, 0 to go on, <0 (MODMTA_E_NOMEM) on error. */
int hdr_scan_line(hdr_scan *sc, const char *line, size_t n);

/* Look at the header collected so far (the section ended without a blank
 * line), then forget it. */
void hdr_scan_flush(hdr_scan *sc);

/* 1 if the header section of the message file (CRLF or LF line ends) has
 * a Delivered-To naming rcpt (any case, with or without angle brackets),
 * 0 if not, MODMTA_E_IO if it cannot be read. */
int hdr_scan_has_loop(const char *message, const char *rcpt);

#endif
