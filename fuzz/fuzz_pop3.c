/*
 * The POP3 command parser and its small wire formats (modules/pop3/
 * pop3_cmd.c): every input line is parsed; the arguments go through the
 * message-number, line-count and mailbox-name readers and APOP's digest
 * check, as the session would hand them over.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../modules/pop3/pop3_cmd.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
one_line(char *line, void *arg)
{
    struct pop3_cmd c;
    char name[65];

    (void)arg;
    if (pop3_cmd_parse(line, strlen(line), &c) < 0)
        return;
    if (c.nargs < 0 || c.nargs > 2)
        abort();
    for (int i = 0; i < c.nargs; i++) {
        if (strlen(c.arg[i]) > POP3_ARG_MAX)
            abort();
        pop3_cmd_num(c.arg[i]);
        pop3_cmd_lines(c.arg[i]);
        if (pop3_cmd_mailbox_name(c.arg[i], name) == 0 &&
            (strlen(name) > 64 || strchr(name, '/') != NULL ||
             name[0] == '.' || strstr(name, "..") != NULL))
            abort();
    }
    if (c.verb == POP3_APOP && c.nargs == 2)
        pop3_cmd_apop_check("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf",
                            c.arg[1]);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size);

    fuzz_each_line(s, one_line, NULL);
    free(s);
    return 0;
}
