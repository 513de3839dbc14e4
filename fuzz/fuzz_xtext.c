/*
 * The xtext decoder (RFC 3461 section 4; core/smtp_cmd.c) that reads
 * ENVID, ORCPT and AUTH= values: any input, into buffers of every small
 * size and a large one. A decoded value must fit the buffer, hold no
 * NUL, and be refused exactly when the input is not xtext.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"
#include "smtp_cmd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstr(data, size), out[1024];
    size_t lens[] = {1, 2, 3, 8, sizeof(out)};

    if (s == NULL)
        return 0;
    for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
        long n = smtp_cmd_xtext_decode(s, out, lens[i]);

        if (n >= 0 && ((size_t)n >= lens[i] || strlen(out) != (size_t)n))
            abort();
        if (n >= 0 && !smtp_cmd_is_xtext(s))
            abort();
    }
    free(smtp_cmd_auth_mailbox(s, 1));
    free(s);
    return 0;
}
