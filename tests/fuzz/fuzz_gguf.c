/* Fuzz target: the GGUF reader must reject any malformed input cleanly. */
#include <stdint.h>
#include <stdio.h>

#include "docket/gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dk_gguf *g;
	if (dk_gguf_open_memory(&g, data, size, "fuzz.gguf") == DK_OK) {
		/* touch everything a caller may read */
		char buf[512];
		for (int64_t i = 0; i < dk_gguf_n_kv(g); i++)
			dk_gguf_kv_render(g, i, buf, sizeof buf);
		volatile uint8_t sink = 0;
		for (int64_t i = 0; i < dk_gguf_n_tensors(g); i++) {
			const struct dk_gguf_tensor *t = dk_gguf_tensor(g, i);
			if (t->nbytes)
				sink ^= ((const uint8_t *)t->data)[t->nbytes - 1];
		}
		(void)sink;
	}
	dk_gguf_free(g);
	return 0;
}
