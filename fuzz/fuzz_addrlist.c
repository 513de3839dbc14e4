/*
 * masquerade's address-list rewriter (modules/masquerade/addrlist.c):
 * the input is a header field value (From:, To:, Cc:, folding kept).
 * A parsed list is spliced with every other address replaced, as
 * masquerading rewrites it; the result must parse again to the same
 * number of addresses (or pass a length limit: it grew).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/err.h>

#include "../modules/masquerade/addrlist.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static addrlist l, again; /* 34 KiB each: not on the stack */
    const char *repl[ADDRLIST_ADDRS_MAX];
    char *value = fuzz_cstr(data, size), *out = NULL;

    if (value == NULL)
        return 0;
    if (addrlist_parse(value, &l) == 0) {
        for (size_t i = 0; i < l.n; i++) {
            if (l.addrs[i].start > l.addrs[i].local_end ||
                l.addrs[i].local_end > l.addrs[i].end ||
                l.addrs[i].end > size)
                abort();
            repl[i] = i % 2 == 0 ? "user@masq.example" : NULL;
        }
        if (addrlist_splice(value, &l, repl, &out) == 0) {
            /* a limit may be passed now (longer), never the syntax */
            int rc = addrlist_parse(out, &again);

            if (rc == MODMTA_E_INVAL || (rc == 0 && again.n != l.n))
                abort();
            free(out);
        }
    }
    free(value);
    return 0;
}
