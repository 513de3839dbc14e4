/*
 * pop3: the command line parser and the small wire formats (message
 * numbers, safe user names, APOP's digest), kept apart from the session
 * so they can be tested alone.
 */
#ifndef POP3_CMD_H
#define POP3_CMD_H

#include <stddef.h>

#define POP3_ARG_MAX 255 /* octets of one argument (RFC 2449: 255) */

enum pop3_verb {
    POP3_UNKNOWN = 0, POP3_USER, POP3_PASS, POP3_QUIT, POP3_STAT, POP3_LIST,
    POP3_RETR, POP3_DELE, POP3_NOOP, POP3_RSET, POP3_TOP, POP3_UIDL,
    POP3_CAPA, POP3_STLS, POP3_AUTH, POP3_APOP,
};

struct pop3_cmd {
    enum pop3_verb verb;
    int nargs;                      /* 0..2 */
    char arg[2][POP3_ARG_MAX + 1];  /* PASS: the whole rest in arg[0] */
};

/* Parse a command line (CRLF removed, len octets). 0, or MODMTA_E_INVAL
 * (NUL, control characters, empty, bad spacing, too many arguments),
 * MODMTA_E_LIMIT (an argument over POP3_ARG_MAX). An unknown keyword is
 * not an error: verb is POP3_UNKNOWN. */
int pop3_cmd_parse(const char *line, size_t len, struct pop3_cmd *c);
/* A message number: 1..999999999 in plain decimal; 0 if malformed. */
unsigned long pop3_cmd_num(const char *s);
/* A line count for TOP: 0..999999999; -1 if malformed. */
long pop3_cmd_lines(const char *s);
/* The mailbox file name of a login name (the part before '@', lower
 * case): 1..64 octets of atext or '.', no '/', no leading dot, no "..",
 * not ending in ".lock". 0, or MODMTA_E_INVAL. name holds 65 octets. */
int pop3_cmd_mailbox_name(const char *user, char *name);
/* Is digest (32 lower-case hex digits) right for the secret? APOP (RFC
 * 1939 section 7): MD5(stamp secret). Compared in constant time: 1
 * right, 0 wrong, MODMTA_E_TEMP when the digest cannot be computed.
 * (CRAM-MD5 and the other SASL mechanisms are libmodmta's, sasl.h.) */
int pop3_cmd_apop_check(const char *stamp, const char *secret,
                        const char *digest);

#endif
