/*
 * pipe_argv: the argument vector and the environment of a delivery
 * command, built from the configured template without a shell. Postfix
 * pipe(8)'s macros: "${recipient}" (or "$recipient") is replaced inside
 * one argument, whatever the address holds; "$$" is a "$". Address data
 * never becomes a separate argument, an option or shell syntax.
 */
#ifndef PIPE_ARGV_H
#define PIPE_ARGV_H

#include <stddef.h>

/* Longest expanded argument or environment string. */
#define PIPE_ARG_MAX 4096

/* What one delivery expands from. Every field is a string, "" when
 * empty (the null sender, no extension). */
struct pipe_vars {
    const char *sender;
    const char *recipient;
    const char *original_recipient;
    const char *mailbox;   /* local part, extension included */
    const char *user;      /* local part without the extension */
    const char *extension; /* after the recipient delimiter */
    const char *domain;
    const char *nexthop;   /* the domain: there is no transport map */
    const char *queue_id;
    const char *size;      /* message size in octets, decimal */
    /* the account the command runs as */
    const char *logname;
    const char *home;
    const char *shell;
};

/* 0 if t is a valid template (known macros, "$$"), else -1 with why. */
int pipe_tmpl_check(const char *t, char *why, size_t len);

/* t expanded (malloc'ed), NULL when out of memory or over PIPE_ARG_MAX. */
char *pipe_tmpl_expand(const char *t, const struct pipe_vars *v);

/* Each template expanded: a NULL-terminated vector, NULL on failure. */
char **pipe_argv_new(char *const *tmpl, const struct pipe_vars *v);

/* The command's whole environment ("NAME=value", NULL-terminated), as
 * Postfix's local(8) sets it, PATH fixed; NULL on failure. */
char **pipe_env_new(const struct pipe_vars *v);

void pipe_strv_free(char **v);

#endif
