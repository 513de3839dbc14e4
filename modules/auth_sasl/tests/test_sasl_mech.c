/* Unit tests of the SASL wire formats (sasl_mech.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <modmta/err.h>

#include "sasl_mech.h"

static void
test_b64_roundtrip(void **state)
{
    char enc[64], dec[64];
    const char msg[] = "\0bob\0pw";

    assert_int_equal(sasl_b64_encode(msg, 7, enc, sizeof(enc)), 12);
    assert_string_equal(enc, "AGJvYgBwdw==");
    assert_int_equal(sasl_b64_decode(enc, 12, dec, sizeof(dec)), 7);
    assert_memory_equal(dec, msg, 7);
}

static void
test_b64_malformed(void **state)
{
    char dec[64];

    assert_int_equal(sasl_b64_decode("AGJvY", 5, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AG!v", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("A===", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("=AAA", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AA=A", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AA==AAAA", 8, dec, 64),
                     MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AB==", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AA A", 4, dec, 64), MODMTA_E_INVAL);
    assert_int_equal(sasl_b64_decode("AAAAAAAA", 8, dec, 6), MODMTA_E_LIMIT);
    assert_int_equal(sasl_b64_decode("", 0, dec, 64), 0);
}

static void
test_plain_ok(void **state)
{
    struct sasl_plain p;

    assert_int_equal(sasl_plain_parse("\0bob\0pw", 7, &p), 0);
    assert_string_equal(p.authcid, "bob");
    assert_string_equal(p.authzid, "");
    assert_memory_equal(p.passwd, "pw", 2);
    assert_int_equal(p.passwd_len, 2);
    assert_int_equal(sasl_plain_parse("bob\0bob\0pw", 10, &p), 0);
}

static void
test_plain_bad(void **state)
{
    struct sasl_plain p;
    char big[300 + 6];

    assert_int_equal(sasl_plain_parse("bobpw", 5, &p), MODMTA_E_INVAL);
    assert_int_equal(sasl_plain_parse("\0bobpw", 6, &p), MODMTA_E_INVAL);
    assert_int_equal(sasl_plain_parse("\0\0pw", 4, &p), MODMTA_E_INVAL);
    assert_int_equal(sasl_plain_parse("\0bob\0", 5, &p), MODMTA_E_INVAL);
    /* a third NUL: embedded in the password */
    assert_int_equal(sasl_plain_parse("\0bob\0p\0w", 8, &p),
                     MODMTA_E_INVAL);
    assert_int_equal(sasl_plain_parse("eve\0bob\0pw", 10, &p),
                     MODMTA_E_PERM);
    memset(big, 'a', sizeof(big));
    big[0] = '\0';
    big[4] = '\0';
    assert_int_equal(sasl_plain_parse(big, sizeof(big) - 1, &p),
                     MODMTA_E_INVAL);
}

static void
test_cram(void **state)
{
    /* RFC 2195's example */
    char msg[] = "tim b913a602c7eda7a495b4e6e7334d3890";
    char bad[] = "tim B913A602C7EDA7A495B4E6E7334D3890";
    char *user, *digest;
    const char *chal = "<1896.697170952@postoffice.reston.mci.net>";

    assert_int_equal(sasl_cram_parse(msg, strlen(msg), &user, &digest), 0);
    assert_string_equal(user, "tim");
    assert_int_equal(sasl_cram_check(chal, "tanstaaftanstaaf", digest), 1);
    assert_int_equal(sasl_cram_check(chal, "wrong", digest), 0);
    assert_int_equal(sasl_cram_parse(bad, strlen(bad), &user, &digest),
                     MODMTA_E_INVAL);
    assert_int_equal(sasl_cram_parse(msg, 3, &user, &digest),
                     MODMTA_E_INVAL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64_roundtrip),
        cmocka_unit_test(test_b64_malformed),
        cmocka_unit_test(test_plain_ok),
        cmocka_unit_test(test_plain_bad),
        cmocka_unit_test(test_cram),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
