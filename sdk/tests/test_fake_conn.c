/* The connection fake of libmodmta-test (modmta_test_conn): what the
 * client sent before the call is read by the server, what the server
 * writes is collected, a dialogue with a server on another thread, and
 * the client's hangup seen as end of file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/modmta.h>
#include <fake.h>

static void
test_input_and_output(void **state)
{
    modmta_test_conn *tc = modmta_test_conn_new("one\r\ntwo\r\n");
    modmta_conn *c = modmta_test_conn_get(tc);
    char line[64];

    assert_string_equal(modmta_test_conn_output(tc), "");
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 1000), 3);
    assert_string_equal(line, "one");
    modmta_conn_printf(c, "250 %s\r\n", line);
    modmta_conn_printf(c, "250 more\r\n");
    assert_string_equal(modmta_test_conn_output(tc),
                        "250 one\r\n250 more\r\n");
    assert_string_equal(modmta_test_conn_output(tc), "");
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 1000), 3);
    assert_string_equal(line, "two");
    /* nothing more sent: a read times out; after the hangup, EOF */
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 10),
                     MODMTA_E_TIMEOUT);
    modmta_test_conn_hangup(tc);
    assert_int_equal(modmta_conn_readline(c, line, sizeof(line), 1000),
                     MODMTA_E_IO);
    modmta_test_conn_free(tc);
}

/* A server that greets, then echoes lines until the client hangs up. */
static void *
echo(void *arg)
{
    modmta_conn *c = arg;
    char line[64];
    ssize_t n;

    modmta_conn_printf(c, "220 ready\r\n");
    while ((n = modmta_conn_readline(c, line, sizeof(line), 5000)) >= 0)
        modmta_conn_printf(c, "250 %s\r\n", line);
    modmta_conn_printf(c, "221 bye\r\n");
    modmta_conn_flush(c);
    return NULL;
}

static void
test_dialogue(void **state)
{
    modmta_test_conn *tc = modmta_test_conn_new(NULL);
    pthread_t th;

    assert_int_equal(pthread_create(&th, NULL, echo,
                                    modmta_test_conn_get(tc)), 0);
    assert_string_equal(modmta_test_conn_read_line(tc), "220 ready\r\n");
    modmta_test_conn_send(tc, "a\r\nb\r\n");
    assert_string_equal(modmta_test_conn_read_line(tc), "250 a\r\n");
    assert_string_equal(modmta_test_conn_read_line(tc), "250 b\r\n");
    modmta_test_conn_hangup(tc);
    assert_string_equal(modmta_test_conn_read_line(tc), "221 bye\r\n");
    pthread_join(th, NULL);
    modmta_test_conn_free(tc);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_input_and_output),
        cmocka_unit_test(test_dialogue),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
