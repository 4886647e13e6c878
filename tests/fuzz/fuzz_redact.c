/* Redactor on arbitrary bytes: no crash, and the local reversal is exact
 * (dk_unredact(dk_redact(x)) == x), also when one map spans two texts. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "docket/redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void roundtrip(const struct dk_redactor *r, const char *t, size_t n, struct dk_redact_map **m)
{
	char *out, *back;
	size_t ol, bl;
	if (dk_redact(r, t, n, &out, &ol, m) != DK_OK)
		abort();
	if (dk_unredact(*m, out, ol, &back, &bl) != DK_OK)
		abort();
	if (bl != n || memcmp(back, t, n))
		abort();
	free(out);
	free(back);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct dk_redactor *r;
	if (!r)
		r = dk_redactor_new(NULL);
	struct dk_redact_map *m = NULL;
	size_t half = size / 2;
	roundtrip(r, (const char *)data, half, &m);
	roundtrip(r, (const char *)data + half, size - half, &m);
	dk_redact_map_free(m);
	m = NULL;
	roundtrip(r, (const char *)data, size, &m);
	dk_redact_map_free(m);
	return 0;
}
