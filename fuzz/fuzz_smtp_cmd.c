/*
 * The SMTP command parser (core/smtp_cmd.c): every line of the input is
 * split into verb and arguments; MAIL and RCPT arguments go through the
 * path parser, strict and lenient (qualify), then the parameter checks,
 * and the xtext values (ENVID, ORCPT, AUTH) through the decoders the
 * session would run them through.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "smtp_cmd.h"

static void
check_params(struct smtp_path *p, int is_mail)
{
    struct smtp_status st;
    char out[SMTP_ORCPT_MAX + 1];

    if (is_mail) {
        struct smtp_mail_opts o;

        memset(&o, 0, sizeof(o));
        if (smtp_cmd_check_mail(p, 1000000, &o, &st) < 0)
            return;
        for (size_t i = 0; i < p->nparams; i++) {
            const char *v = p->params[i].value;

            if (v == NULL)
                continue;
            if (strcmp(p->params[i].keyword, "AUTH") == 0) {
                free(smtp_cmd_auth_mailbox(v, 1));
                free(smtp_cmd_auth_mailbox(v, 0));
            } else if (strcmp(p->params[i].keyword, "ENVID") == 0) {
                smtp_cmd_xtext_decode(v, out, sizeof(out));
            }
        }
    } else {
        struct smtp_rcpt_opts o;

        memset(&o, 0, sizeof(o));
        if (smtp_cmd_check_rcpt(p, p->utf8, &o, &st) < 0)
            return;
        if (o.orcpt != NULL) {
            const char *semi = strchr(o.orcpt, ';');

            if (semi != NULL)
                smtp_cmd_xtext_decode(semi + 1, out, sizeof(out));
        }
    }
}

static void
one_line(char *line, void *arg)
{
    struct smtp_cmd cmd;
    struct smtp_status st;
    struct smtp_path *p;
    size_t max;
    char *copy;
    int is_mail;

    (void)arg;
    if (smtp_cmd_parse(line, &cmd) < 0)
        return;
    max = smtp_cmd_line_max(cmd.verb);
    if (strlen(line) + 2 > max)
        return; /* the session refuses it before parsing (500 5.5.6) */
    is_mail = strcmp(cmd.verb, "MAIL") == 0;
    if (!is_mail && strcmp(cmd.verb, "RCPT") != 0)
        return;
    p = calloc(1, sizeof(*p));
    copy = strdup(cmd.args);
    if (p == NULL || copy == NULL)
        goto out;
    if (smtp_cmd_parse_path(cmd.args, is_mail, NULL, p, &st) == 0)
        check_params(p, is_mail);
    memset(p, 0, sizeof(*p));
    if (smtp_cmd_parse_path(copy, is_mail, "mx.test", p, &st) == 0)
        check_params(p, is_mail);
out:
    free(copy);
    free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);

    fuzz_each_line(s, one_line, NULL);
    free(s);
    return 0;
}
