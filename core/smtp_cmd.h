/*
 * SMTP command lines (RFC 5321 section 4.1): the verb, and the paths and
 * ESMTP parameters of MAIL and RCPT (RFC 5321 4.1.2, RFC 1869/1870/6152/
 * 6531/4954/3461). Parsing is in place: the results point into the line.
 */
#ifndef MODMTA_CORE_SMTP_CMD_H
#define MODMTA_CORE_SMTP_CMD_H

#include <stddef.h>

#include <modmta/addr.h>

#define SMTP_LINE_MAX 512        /* octets, CRLF included (4.5.3.1.4) */
#define SMTP_AUTH_LINE_MAX 12288 /* AUTH with an initial response (4954) */
/* MAIL and RCPT lines, longer by what the parameters offered may add:
 * MAIL SIZE 26 (RFC 1870), BODY 14 (RFC 6152), SMTPUTF8 10 (RFC 6531),
 * RET and ENVID 100 (RFC 3461), AUTH 500 (RFC 4954); RCPT NOTIFY and
 * ORCPT 500 (RFC 3461). */
#define SMTP_MAIL_LINE_MAX (SMTP_LINE_MAX + 26 + 14 + 10 + 100 + 500)
#define SMTP_RCPT_LINE_MAX (SMTP_LINE_MAX + 500)
#define SMTP_VERB_MAX 16
#define SMTP_PARAMS_MAX 16
#define SMTP_ENVID_MAX 100       /* ENVID= value (RFC 3461 4.4) */
#define SMTP_ORCPT_MAX 500       /* ORCPT= value (RFC 3461 4.2) */

/* A reply for a failed check: code, enhanced status code, text. */
struct smtp_status {
    int code;
    const char *esc;
    const char *text;
};

struct smtp_cmd {
    char verb[SMTP_VERB_MAX];    /* upper case */
    char *args;                  /* after the spaces; "" when none */
};

struct smtp_param {
    char *keyword;               /* upper case */
    char *value;                 /* NULL when none */
};

struct smtp_path {
    modmta_addr addr;
    char str[2 * MODMTA_ADDR_PATH_MAX + 2]; /* local@domain, "" for <> */
    int utf8;                    /* str holds non-ASCII octets */
    struct smtp_param params[SMTP_PARAMS_MAX];
    size_t nparams;
};

/* MAIL FROM parameters, checked. */
struct smtp_mail_opts {
    long long size;              /* SIZE=, 0 when absent */
    int body8;                   /* BODY=8BITMIME */
    int utf8;                    /* SMTPUTF8 */
};

/* RCPT TO parameters, checked (RFC 3461 4.1, 4.2). */
struct smtp_rcpt_opts {
    unsigned notify;             /* QNOTIFY_* bits (queue.h), 0: none */
    const char *orcpt;           /* "addr-type;xtext" as given, or NULL */
};

/* The longest command line verb (upper case) may come in, in octets
 * with the CRLF. */
size_t smtp_cmd_line_max(const char *verb);
/* Split a line into verb and arguments; trailing spaces are dropped.
 * 0, or -1 when the verb is not 1-15 letters (answer 500 5.5.1). */
int smtp_cmd_parse(char *line, struct smtp_cmd *cmd);
/* Parse the arguments of MAIL ("FROM:<path> params") or RCPT
 * ("TO:<path> params"). qualify NULL: strict RFC 5321 paths (in angle
 * brackets; only <postmaster> without a domain). Otherwise, as Postfix
 * and Sendmail read what people type: the brackets may be left out, and
 * a path without a domain gets the domain qualify. 0, or -1 with st set
 * (501). */
int smtp_cmd_parse_path(char *args, int is_mail, const char *qualify,
                        struct smtp_path *p, struct smtp_status *st);
/* Check MAIL parameters against what we offer (SIZE, BODY, SMTPUTF8,
 * AUTH, and DSN's RET=FULL|HDRS and ENVID=xtext); size_limit 0: none.
 * 0, or -1 with st set (501, 504, 552, 553 or 555). */
int smtp_cmd_check_mail(const struct smtp_path *p, long long size_limit,
                        struct smtp_mail_opts *o, struct smtp_status *st);
/* Check RCPT parameters (DSN's NOTIFY and ORCPT) into o, and the
 * SMTPUTF8 rule. 0, or -1 with st set (501 for a malformed parameter,
 * 553 or 555). */
int smtp_cmd_check_rcpt(const struct smtp_path *p, int utf8,
                        struct smtp_rcpt_opts *o, struct smtp_status *st);
/* 1 if s is valid xtext (RFC 3461 section 4). */
int smtp_cmd_is_xtext(const char *s);
/* Decode the xtext s into out (outlen octets with the NUL): the decoded
 * length, or -1 when s is not xtext or does not fit. The result may hold
 * any octet but NUL (a "+00" is refused). */
long smtp_cmd_xtext_decode(const char *s, char *out, size_t outlen);
/* The MAIL FROM AUTH= value to keep (RFC 4954 section 5): value is the
 * parameter as checked by smtp_cmd_check_mail (xtext or "<>"). When the
 * client is trusted to assert it (trusted != 0) and it decodes to a
 * mailbox, the decoded mailbox; otherwise "<>". Malloc'd; NULL when out
 * of memory. */
char *smtp_cmd_auth_mailbox(const char *value, int trusted);

#endif
