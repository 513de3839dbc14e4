/*
 * The SASL decoders both AUTH commands run (sdk/src/sasl.c, base64.c):
 * the first input line is "MECHANISM [initial-response]", each further
 * line an answer to a challenge, until the exchange ends; complete
 * credentials are checked against a file passdb of plain-text secrets.
 * The strict base64 codec also runs on every line alone: what it
 * decodes must encode back to the same text.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/base64.h>
#include <modmta/log.h>
#include <modmta/passdb.h>
#include <modmta/sasl.h>

#include "fuzz_input.h"
#include "log_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static modmta_passdb *db;

struct exchange {
    modmta_sasl *x;
    int r;        /* last result; -1 before the first line */
};

static void
setup(void)
{
    static const char entries[] = "alice:{PLAIN}secret\n"
                                  "bob@example.org:{PLAIN}pass word\n";
    char path[256], spec[300];
    modmta_err err;

    modmta_log_setup(MODMTA_LOG_ERR - 1, 0, NULL); /* quiet */
    snprintf(path, sizeof(path), "%s/passdb", fuzz_tmpdir("sasl"));
    snprintf(spec, sizeof(spec), "file:%s", path);
    if (fuzz_write_file(path, entries, sizeof(entries) - 1) < 0 ||
        (db = modmta_passdb_open(spec, "$.passdb", &err)) == NULL)
        abort();
}

static void
base64_roundtrip(const char *line)
{
    size_t len = strlen(line), cap = len / 4 * 3 + 3;
    unsigned char *raw = malloc(cap);
    char *again = malloc(len + 4);
    long n;

    if (raw != NULL && again != NULL &&
        (n = modmta_base64_decode(line, len, raw, cap)) >= 0 &&
        (modmta_base64_encode(raw, (size_t)n, again, len + 4) < 0 ||
         strcmp(again, line) != 0))
        abort();
    free(raw);
    free(again);
}

static void
one_line(char *line, void *arg)
{
    struct exchange *e = arg;

    base64_roundtrip(line);
    if (e->r == -1) {
        char *sp = strchr(line, ' ');
        unsigned mech;

        if (sp != NULL)
            *sp = '\0';
        mech = modmta_sasl_mech(line);
        if (mech == 0 || (e->x = modmta_sasl_new(mech, "mx.test")) == NULL) {
            e->r = MODMTA_SASL_CANCEL;
            return;
        }
        e->r = modmta_sasl_start(e->x, sp != NULL ? sp + 1 : NULL);
    } else if (e->r == MODMTA_SASL_NEXT) {
        if (modmta_sasl_challenge(e->x) == NULL)
            abort();
        e->r = modmta_sasl_step(e->x, line, strlen(line));
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct exchange e = {NULL, -1};
    char *s;

    if (db == NULL)
        setup();
    if ((s = fuzz_cstr(data, size)) == NULL)
        return 0;
    fuzz_each_line(s, one_line, &e);
    if (e.x != NULL) {
        if (e.r == MODMTA_SASL_DONE)
            modmta_sasl_verify(e.x, db);
        modmta_sasl_user(e.x);
        modmta_sasl_free(e.x);
    }
    free(s);
    return 0;
}
