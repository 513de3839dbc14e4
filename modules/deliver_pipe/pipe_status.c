/* Exit status of a delivery command to a delivery result (sysexits.h). */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

#include "pipe_status.h"

struct pipe_sysexit {
    int status;
    int temporary;
    const char *esc;
    const char *name;
    const char *text;
};

/* sysexits.h 64..78; the temporary ones are those a retry may cure. */
static const struct pipe_sysexit pipe_sysexits[] = {
    { 64, 0, "5.3.0", "EX_USAGE", "command line usage error" },
    { 65, 0, "5.6.0", "EX_DATAERR", "data format error" },
    { 66, 0, "5.3.0", "EX_NOINPUT", "cannot open input" },
    { 67, 0, "5.1.1", "EX_NOUSER", "user unknown" },
    { 68, 0, "5.1.2", "EX_NOHOST", "host name unknown" },
    { 69, 0, "5.3.0", "EX_UNAVAILABLE", "service unavailable" },
    { 70, 0, "5.3.0", "EX_SOFTWARE", "internal software error" },
    { 71, 1, "4.3.0", "EX_OSERR", "system resource problem" },
    { 72, 0, "5.3.0", "EX_OSFILE", "critical OS file missing" },
    { 73, 0, "5.2.0", "EX_CANTCREAT", "cannot create output file" },
    { 74, 1, "4.3.0", "EX_IOERR", "input/output error" },
    { 75, 1, "4.3.0", "EX_TEMPFAIL", "temporary failure" },
    { 76, 0, "5.5.0", "EX_PROTOCOL", "remote error in protocol" },
    { 77, 0, "5.7.0", "EX_NOPERM", "permission denied" },
    { 78, 0, "5.3.5", "EX_CONFIG", "local configuration error" },
};

void
pipe_status_map(int ws, struct pipe_outcome *o)
{
    size_t i;
    int st;

    memset(o, 0, sizeof(*o));
    if (WIFSIGNALED(ws) || !WIFEXITED(ws)) {
        o->status = MODMTA_DEFERRED;
        o->code = 451;
        o->esc = "4.3.0";
        snprintf(o->what, sizeof(o->what), "command killed by signal %d",
                 WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
        return;
    }
    st = WEXITSTATUS(ws);
    if (st == 0) {
        o->status = MODMTA_DELIVERED;
        o->code = 250;
        o->esc = "2.0.0";
        snprintf(o->what, sizeof(o->what), "delivered to command");
        return;
    }
    for (i = 0; i < sizeof(pipe_sysexits) / sizeof(pipe_sysexits[0]); i++) {
        const struct pipe_sysexit *x = &pipe_sysexits[i];

        if (x->status != st)
            continue;
        o->status = x->temporary ? MODMTA_DEFERRED : MODMTA_FAILED;
        o->code = x->temporary ? 451 : 550;
        o->esc = x->esc;
        snprintf(o->what, sizeof(o->what), "%s: %s", x->name, x->text);
        return;
    }
    /* Not a sysexits.h code: permanent, as Sendmail and Postfix take it. */
    o->status = MODMTA_FAILED;
    o->code = 550;
    o->esc = "5.3.0";
    snprintf(o->what, sizeof(o->what), "command exited with status %d", st);
}
