/*
 * bench_gguf_parse: times dk_gguf_open_memory on synthetic GGUF files with
 * many metadata keys and many tensors (the shapes a hostile file would use
 * to make a loader quadratic), then every key and tensor lookup.
 *
 *   bench_gguf_parse [--keys N] [--tensors N]     (defaults 80000, 80000)
 *
 * Prints one line per file: counts, size, open seconds, lookup seconds.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "docket/gguf.h"
#include "util/buf.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void put_u32(struct dk_buf *b, uint32_t v) { dk_buf_append(b, &v, 4); }
static void put_u64(struct dk_buf *b, uint64_t v) { dk_buf_append(b, &v, 8); }
static void put_str(struct dk_buf *b, const char *s)
{
	put_u64(b, strlen(s));
	dk_buf_append(b, s, strlen(s));
}

/* nk u32 keys "bench.key.<i>" = i, nt one-element f32 tensors "t.<i>". */
static struct dk_buf make(long nk, long nt)
{
	struct dk_buf b = {0};
	char name[64];
	put_u32(&b, 0x46554747u);
	put_u32(&b, 3);
	put_u64(&b, (uint64_t)nt);
	put_u64(&b, (uint64_t)nk);
	for (long i = 0; i < nk; i++) {
		snprintf(name, sizeof name, "bench.key.%ld", i);
		put_str(&b, name);
		put_u32(&b, DK_GGUF_UINT32);
		put_u32(&b, (uint32_t)i);
	}
	for (long i = 0; i < nt; i++) {
		snprintf(name, sizeof name, "t.%ld", i);
		put_str(&b, name);
		put_u32(&b, 1);
		put_u64(&b, 8);
		put_u32(&b, DK_TYPE_F32);
		put_u64(&b, (uint64_t)i * 32);
	}
	while (b.len % 32)
		dk_buf_putc(&b, 0);
	for (long i = 0; i < nt; i++)
		for (int k = 0; k < 32; k++)
			dk_buf_putc(&b, 0);
	return b;
}

static int run(long nk, long nt)
{
	struct dk_buf b = make(nk, nt);
	struct dk_gguf *g;
	double t0 = now();
	enum dk_status st = dk_gguf_open_memory(&g, b.data, b.len, "bench.gguf");
	double t1 = now();
	if (st != DK_OK) {
		fprintf(stderr, "bench_gguf_parse: %s\n", dk_gguf_error(g));
		dk_gguf_free(g);
		dk_buf_free(&b);
		return 1;
	}
	char name[64];
	long bad = 0;
	for (long i = 0; i < nk; i++) {
		uint32_t v;
		snprintf(name, sizeof name, "bench.key.%ld", i);
		bad += !dk_gguf_get_u32(g, name, &v) || v != (uint32_t)i;
	}
	for (long i = 0; i < nt; i++) {
		snprintf(name, sizeof name, "t.%ld", i);
		bad += dk_gguf_tensor_by_name(g, name) != dk_gguf_tensor(g, i);
	}
	double t2 = now();
	printf("keys %7ld  tensors %7ld  %6.1f MB  open %8.3f s  lookups %8.3f s%s\n", nk, nt,
	       (double)b.len / 1e6, t1 - t0, t2 - t1, bad ? "  LOOKUPS WRONG" : "");
	dk_gguf_free(g);
	dk_buf_free(&b);
	return bad != 0;
}

int main(int argc, char **argv)
{
	long nk = 80000, nt = 80000;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--keys") && i + 1 < argc) {
			nk = atol(argv[++i]);
		} else if (!strcmp(argv[i], "--tensors") && i + 1 < argc) {
			nt = atol(argv[++i]);
		} else {
			fprintf(stderr, "usage: bench_gguf_parse [--keys N] [--tensors N]\n");
			return 2;
		}
	}
	int rc = run(nk, 0);
	rc |= run(0, nt);
	return rc;
}
