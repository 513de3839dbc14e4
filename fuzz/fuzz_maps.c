/*
 * The map-file parsers as an administrator's file meets them: the
 * input, after a first octet that picks the format, is written to a
 * file and opened the way modules open it, then looked up by keys taken
 * from its own lines and by fixed ones:
 *   0  file:     Postfix-style tables (virtusertable, generic, transport,
 *                access files as plain maps); values split as list
 *                values are (modmta_map_list_split)
 *   1  aliases:  aliases(5) with continuation lines, quoting, "|cmd",
 *                "/file" and ":include:" targets
 *   2  cidr:     CIDR tables (IPv4 and IPv6 networks)
 *   3  access:   relay_access's access table (Connect:/From:/To: tags,
 *                actions), its own reader over the file format
 *   4  passdb:   file: passdbs (user:{SCHEME}secret lines)
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <modmta/log.h>
#include <modmta/modmta.h>

#include "../modules/relay_access/access_table.h"
#include "fuzz_input.h"
#include "log_priv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char path[256];

static const char *const fixed_keys[] = {
    "alice", "alice@example.org", "example.org", "@example.org",
    "127.0.0.1", "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1", "",
    "MAILER-DAEMON", "postmaster",
};

/* The first word of every line: the keys the file itself defines. */
struct keys {
    char *words[64];
    size_t n;
};

static void
line_key(char *line, void *arg)
{
    struct keys *k = arg;
    size_t len = strcspn(line, " \t:");

    if (k->n < 64 && len > 0 && len < 300)
        k->words[k->n++] = strndup(line, len);
}

static void
map_lookups(modmta_map *m, const struct keys *k)
{
    char *value;
    modmta_err err;

    for (size_t i = 0; i < sizeof(fixed_keys) / sizeof(*fixed_keys) + k->n;
         i++) {
        const char *key = i < k->n ? k->words[i] : fixed_keys[i - k->n];

        if (modmta_map_lookup(m, key, &value) == 1) {
            char **items = modmta_map_list_split(value, &err);

            for (size_t j = 0; items != NULL && items[j] != NULL; j++)
                free(items[j]);
            free(items);
            modmta_free(value);
        }
    }
}

static void
access_lookups(access_table *t, const struct keys *k)
{
    access_result r;

    for (size_t i = 0; i < sizeof(fixed_keys) / sizeof(*fixed_keys) + k->n;
         i++) {
        const char *key = i < k->n ? k->words[i] : fixed_keys[i - k->n];

        access_table_client(t, key, "192.0.2.1", &r);
        access_table_client(t, "mail.example.org", key, &r);
        access_table_address(t, ACCESS_FROM, key, &r);
        access_table_address(t, ACCESS_TO, key, &r);
    }
}

static void
passdb_lookups(modmta_passdb *db, const struct keys *k)
{
    char *secret;

    for (size_t i = 0; i < k->n; i++) {
        /* only plain-text entries are compared: a crypt() per key
         * would slow the fuzzer down to no purpose */
        if (modmta_passdb_secret(db, k->words[i], &secret) == 1) {
            modmta_passdb_verify(db, k->words[i], secret, strlen(secret));
            modmta_passdb_secret_free(secret);
        }
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"file", "aliases", "cidr"};
    struct keys k = {{0}, 0};
    char spec[300], *text;
    json_t *j;
    modmta_err err;

    if (path[0] == '\0') {
        modmta_log_setup(MODMTA_LOG_ERR - 1, 0, NULL); /* quiet */
        snprintf(path, sizeof(path), "%s/map", fuzz_tmpdir("maps"));
    }
    if (size < 1 || data[0] % 8 > 4 ||
        fuzz_write_file(path, data + 1, size - 1) < 0)
        return 0;
    if ((text = fuzz_cstr(data + 1, size - 1)) == NULL)
        return 0;
    fuzz_each_line(text, line_key, &k);
    free(text);
    if (data[0] % 8 < 3) {
        modmta_map *m;

        snprintf(spec, sizeof(spec), "%s:%s", types[data[0] % 8], path);
        j = json_string(spec);
        if ((m = modmta_map_open(j, "$.map", &err)) != NULL) {
            map_lookups(m, &k);
            modmta_map_close(m);
        }
        json_decref(j);
    } else if (data[0] % 8 == 3) {
        access_table *t;

        snprintf(spec, sizeof(spec), "file:%s", path);
        j = json_string(spec);
        if ((t = access_table_open(j, NULL, "$.access", &err)) != NULL) {
            access_lookups(t, &k);
            access_table_close(t);
        }
        json_decref(j);
    } else {
        modmta_passdb *db;

        snprintf(spec, sizeof(spec), "file:%s", path);
        if ((db = modmta_passdb_open(spec, "$.passdb", &err)) != NULL) {
            passdb_lookups(db, &k);
            modmta_passdb_close(db);
        }
    }
    for (size_t i = 0; i < k.n; i++)
        free(k.words[i]);
    return 0;
}
