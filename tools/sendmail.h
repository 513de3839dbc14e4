/*
 * modmta-sendmail: the sendmail(8) interface (sendmail.c), its option
 * parser (sendmail_opts.c) and the message editing it does before
 * submission (sendmail_msg.c). Exit statuses are sysexits.h's.
 */
#ifndef MODMTA_SENDMAIL_H
#define MODMTA_SENDMAIL_H

#include <stddef.h>
#include <stdio.h>

enum sm_mode {
    SM_DELIVER = 0,     /* -bm: the message on stdin (the default) */
    SM_SMTP,            /* -bs: SMTP on stdin and stdout */
    SM_MAILQ,           /* -bp, or called as mailq */
    SM_FLUSH,           /* -q */
    SM_NEWALIASES,      /* -bi, -I, or called as newaliases */
    SM_IGNORE,          /* -q30m: a daemon's queue interval, no-op */
};

struct sm_opts {
    enum sm_mode mode;
    const char *config;       /* -C FILE */
    const char *sender;       /* -f or -r */
    const char *fullname;     /* -F */
    const char *aliases;      /* -oA FILE: the aliases file for -bi */
    int extract;              /* -t */
    int ignore_dots;          /* -i, -oi: a lone "." does not end input */
    int mail_errors;          /* -oem: errors are mailed back, -oep
                                 (the default): printed */
    int verbose;              /* -v: the SMTP dialogue on stderr */
    char **rcpts;             /* the operands (borrowed from argv) */
    size_t nrcpts;
};

/* Parse argv (argv[0] picks the mode: mailq, newaliases). 0, or an
 * EX_USAGE status with the message in err. */
int sm_parse_opts(int argc, char **argv, struct sm_opts *o, char *err,
                  size_t errlen);

/* A message being built: text with LF line ends. */
struct sm_buf {
    char *p;
    size_t len, cap;
};

/* Append n bytes (b stays NUL-terminated). 0 or -1. */
int sm_append(struct sm_buf *b, const char *p, size_t n);

/* Read the message from in: to EOF with ignore_dots, else to a line
 * holding only "." as well. A leading mbox "From " line is dropped.
 * 0; -1 out of memory; -2 over max (0: no limit); -3 the input could
 * not be read to its end (errno says why). */
int sm_read_message(FILE *in, int ignore_dots, long long max,
                    struct sm_buf *b);

/* The length of the header block (up to and including the empty line,
 * or all of it when there is no body). */
size_t sm_header_len(const char *p, size_t len);

/* The recipients of To:, Cc: and Bcc: fields in the header block
 * (addresses of RFC 5322 address lists: display names, comments and
 * group names dropped), appended to *list; bare names qualified with
 * @domain. 0 or -1 out of memory. */
int sm_extract_rcpts(const char *hdr, size_t len, const char *domain,
                     char ***list, size_t *n);

/* Remove every field called name (with its continuation lines) from
 * the header block of b. */
void sm_remove_field(struct sm_buf *b, const char *name);

/* 1 if the header block of b has a field called name. */
int sm_has_field(const struct sm_buf *b, const char *name);

/* Insert text (whole lines) at the start of b. 0 or -1. */
int sm_prepend(struct sm_buf *b, const char *text);

/* addr with @domain added when it has no @, malloc'ed. */
char *sm_qualify(const char *addr, const char *domain);

#endif
