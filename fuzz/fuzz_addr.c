/*
 * The address parser (sdk/src/addr.c, addr_ext.c): the first octet picks
 * the parse flags, the rest is the path. A parsed address is formatted
 * again, and the formatted form must parse back to the same address (as
 * a bare local@domain); the split and extension functions run on it.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/addr.h>

#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
split_all(const char *addr)
{
    char local[MODMTA_ADDR_ENVELOPE_MAX], domain[MODMTA_ADDR_ENVELOPE_MAX];
    char base[MODMTA_ADDR_ENVELOPE_MAX], ext[MODMTA_ADDR_ENVELOPE_MAX];
    char tiny[4];

    modmta_addr_split(addr, local, sizeof(local), domain, sizeof(domain));
    modmta_addr_split(addr, tiny, sizeof(tiny), tiny, sizeof(tiny));
    modmta_addr_split_extension(addr, "+", base, sizeof(base), ext,
                                sizeof(ext));
    modmta_addr_split_extension(addr, "-+=", base, sizeof(base), ext,
                                sizeof(ext));
    modmta_addr_split_extension(addr, "+", tiny, sizeof(tiny), tiny,
                                sizeof(tiny));
    modmta_addr_envelope_ok(addr);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    modmta_addr a, b;
    char buf[2 * MODMTA_ADDR_PATH_MAX + 2], *s;
    const char *end;
    unsigned flags;

    if (size < 1)
        return 0;
    flags = data[0] & 0x0f;
    s = fuzz_cstr(data + 1, size - 1);
    if (s == NULL)
        return 0;
    split_all(s);
    if (modmta_addr_parse(s, flags, &a, &end) == 0) {
        if (end < s || end > s + strlen(s))
            abort();
        if (modmta_addr_format(&a, buf, sizeof(buf)) >= 0) {
            split_all(buf);
            modmta_domain_equal(a.domain, buf);
            /* what the format gives parses back (bare, any octet the
             * first parse allowed) to the same address */
            if (buf[0] != '\0' &&
                modmta_addr_parse(buf, flags | MODMTA_ADDR_NO_BRACKETS |
                                  MODMTA_ADDR_ALLOW_NODOMAIN, &b, NULL) == 0 &&
                (strcmp(a.local, b.local) != 0 ||
                 strcmp(a.domain, b.domain) != 0))
                abort();
        }
    }
    free(s);
    return 0;
}
