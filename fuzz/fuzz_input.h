/* Helpers shared by the harnesses: the fuzzer's octets as C strings. */
#ifndef MODMTA_FUZZ_INPUT_H
#define MODMTA_FUZZ_INPUT_H

#include <stddef.h>
#include <stdint.h>

/* data[0..size) as a malloc'd NUL-terminated string (a NUL inside ends
 * it early, as it would any C string parser's input); NULL out of
 * memory. */
char *fuzz_cstr(const uint8_t *data, size_t size);

/* Cut s in place at each "\n" (a "\r\n" loses its CR too), calling fn
 * on every line. */
void fuzz_each_line(char *s, void (*fn)(char *line, void *arg), void *arg);

/* A temporary directory for this process (modmta-fuzz-NAME-XXXXXX in
 * /dev/shm, else /tmp),
 * made once and removed at exit; the fuzzer dies if it cannot be made. */
const char *fuzz_tmpdir(const char *name);

/* Write data[0..size) to path (created or truncated); 0 or -1. */
int fuzz_write_file(const char *path, const void *data, size_t size);

#endif
