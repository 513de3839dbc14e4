/*
 * header_checks: Postfix's header_checks and body_checks (README.md).
 * Internal to the plugin; its unit test includes it.
 */
#ifndef HEADER_CHECKS_H
#define HEADER_CHECKS_H

#include <regex.h>
#include <stdio.h>

#include <modmta/modmta.h>

/* Actions of a rule (header_checks(5)). */
enum hc_action {
    HC_DUNNO = 0, /* DUNNO, OK: stop looking at this line */
    HC_REJECT,    /* REJECT, 4NN, 5NN */
    HC_DISCARD,
    HC_HOLD,
    HC_WARN,
    HC_INFO,
    HC_PREPEND,   /* headers only */
    HC_REPLACE,   /* headers only */
    HC_IGNORE,    /* headers only */
};

enum hc_kind { HC_MATCH, HC_IF, HC_ENDIF };

struct hc_rule {
    enum hc_kind kind;
    int negate;           /* !/pattern/ */
    regex_t re;           /* HC_MATCH, HC_IF */
    enum hc_action action;
    int code;             /* REJECT: 550, or the 4NN / 5NN given */
    char *text;           /* what follows the action, "" if nothing */
    size_t endif;         /* HC_IF: index of its HC_ENDIF */
    unsigned line;
};

struct hc_table {
    struct hc_rule *rules;
    size_t n;
};

/* Which file a table is: body_checks allow fewer actions. */
enum hc_file { HC_FILE_HEADER, HC_FILE_BODY };

/* modmta_reload's load() and free() of a table: arg points to an enum
 * hc_file. */
void *hc_table_load(FILE *f, const char *path, void *arg, modmta_err *err_r);
void hc_table_free(void *table);

/* The first rule matching s, walking if/endif as Postfix does: 1 with
 * the rule in *rule_r and its text with $1...$9 expanded in *text_r
 * (malloc'ed), 0 when none matches, MODMTA_E_NOMEM. */
int hc_match(const struct hc_table *t, const char *s,
             const struct hc_rule **rule_r, char **text_r);

/* Action names, for logs. */
const char *hc_action_name(enum hc_action a);

#endif
