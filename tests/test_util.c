/* util: sha256 against FIPS 180-4 vectors, growable buffer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>
#include <string.h>

#include "util/buf.h"
#include "util/sha256.h"
#include "testutil.h"

static void hex_of(const char *s, size_t n, char hex[65])
{
	uint8_t d[32];
	dk_sha256(s, n, d);
	dk_sha256_hex(d, hex);
}

static void test_sha256_vectors(void **state)
{
	(void)state;
	char hex[65];
	hex_of("", 0, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	hex_of("abc", 3, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	hex_of(m, strlen(m), hex);
	assert_string_equal(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
	/* one million 'a', fed in uneven pieces to exercise the block joins */
	struct dk_sha256 s;
	dk_sha256_init(&s);
	char a[997];
	memset(a, 'a', sizeof a);
	size_t left = 1000000;
	while (left) {
		size_t k = left < sizeof a ? left : sizeof a;
		dk_sha256_update(&s, a, k);
		left -= k;
	}
	uint8_t d[32];
	dk_sha256_final(&s, d);
	dk_sha256_hex(d, hex);
	assert_string_equal(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

static void test_buf(void **state)
{
	(void)state;
	struct dk_buf b = {0};
	assert_int_equal(dk_buf_puts(&b, "abc"), 0);
	assert_int_equal(dk_buf_printf(&b, "-%d-", 42), 0);
	for (int i = 0; i < 1000; i++)
		dk_buf_putc(&b, 'x');
	assert_int_equal(b.len, 3 + 4 + 1000);
	assert_memory_equal(b.data, "abc-42-x", 8);
	assert_int_equal(b.data[b.len], 0);
	char *s = dk_buf_steal(&b);
	assert_null(b.data);
	assert_int_equal(strlen(s), 1007);
	free(s);
	s = dk_buf_steal(&b);
	assert_string_equal(s, "");
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sha256_vectors),
		cmocka_unit_test(test_buf),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
