/*
 * pipe_alias: how alias hands a "|command" target to deliver_pipe. A
 * trusted command becomes a recipient "alias-command-HASH@alias-command.
 * invalid" (HASH: 16 hex digits of the command's FNV-1a) and a
 * transaction note "alias.command.HASH" holding the command. Notes are
 * set by modules only, and deliver_pipe runs a command only from a note:
 * a client that names such an address itself gets nothing run (it is
 * refused at RCPT, and has no note at delivery). Shared by modules/alias
 * and modules/deliver_pipe; docs/modules.md tells the rule.
 */
#ifndef PIPE_ALIAS_H
#define PIPE_ALIAS_H

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define PIPE_ALIAS_DOMAIN "alias-command.invalid"
#define PIPE_ALIAS_LOCAL "alias-command-"
#define PIPE_ALIAS_NOTE "alias.command."

/* The hash of cmd as 16 hex digits into hex[17]. */
static inline void
pipe_alias_hash(const char *cmd, char hex[17])
{
    uint64_t h = 14695981039346656037ULL;

    for (; *cmd != '\0'; cmd++)
        h = (h ^ (unsigned char)*cmd) * 1099511628211ULL;
    snprintf(hex, 17, "%016llx", (unsigned long long)h);
}

/* The recipient for cmd into addr[64], its note's name into note[64]. */
static inline void
pipe_alias_names(const char *cmd, char addr[64], char note[64])
{
    char hex[17];

    pipe_alias_hash(cmd, hex);
    snprintf(addr, 64, "%s%s@%s", PIPE_ALIAS_LOCAL, hex, PIPE_ALIAS_DOMAIN);
    snprintf(note, 64, "%s%s", PIPE_ALIAS_NOTE, hex);
}

/* rcpt's note name into note[64] if rcpt has the form of such a
 * recipient: 1, else 0. */
static inline int
pipe_alias_note_of(const char *rcpt, char note[64])
{
    size_t l = sizeof(PIPE_ALIAS_LOCAL) - 1;
    const char *at = strrchr(rcpt, '@');

    if (at == NULL || strcasecmp(at + 1, PIPE_ALIAS_DOMAIN) != 0 ||
        strncasecmp(rcpt, PIPE_ALIAS_LOCAL, l) != 0 ||
        at - (rcpt + l) != 16 || strspn(rcpt + l, "0123456789abcdef") < 16)
        return 0;
    snprintf(note, 64, "%s%.16s", PIPE_ALIAS_NOTE, rcpt + l);
    return 1;
}

#endif
