/*
 * Standalone driver for the fuzz targets when libFuzzer is not used.
 *
 *   fuzz_x [--seconds N] [--seed S] PATH...
 *
 * Every PATH (file, or directory of files) is fed to LLVMFuzzerTestOneInput
 * as is; then, for N seconds (default 0), random mutations of those inputs
 * (bit flips, byte sets, truncations, splices, interesting integers) are fed
 * too.  Deterministic for a given seed.  AFL++ can drive the same binary
 * with a single file argument (afl-fuzz ... -- ./fuzz_x @@).
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct input { uint8_t *p; size_t n; };
static struct input *inputs;
static size_t ninputs;

static void add_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return;
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	if (n < 0 || n > (64 << 20)) { fclose(f); return; }
	uint8_t *p = malloc((size_t)n + 1);
	if (p && fread(p, 1, (size_t)n, f) == (size_t)n) {
		inputs = realloc(inputs, (ninputs + 1) * sizeof *inputs);
		inputs[ninputs++] = (struct input){p, (size_t)n};
	} else {
		free(p);
	}
	fclose(f);
}

static void add_path(const char *path)
{
	struct stat st;
	if (stat(path, &st) != 0)
		return;
	if (!S_ISDIR(st.st_mode)) { add_file(path); return; }
	DIR *d = opendir(path);
	if (!d)
		return;
	struct dirent *e;
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char buf[4096];
		snprintf(buf, sizeof buf, "%s/%s", path, e->d_name);
		add_path(buf);
	}
	closedir(d);
}

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }

int main(int argc, char **argv)
{
	double seconds = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
			rng = strtoull(argv[++i], NULL, 0) | 1;
		else
			add_path(argv[i]);
	}
	for (size_t i = 0; i < ninputs; i++)
		LLVMFuzzerTestOneInput(inputs[i].p, inputs[i].n);
	if (ninputs == 0) {
		static const uint8_t empty[1];
		LLVMFuzzerTestOneInput(empty, 0);
		inputs = calloc(1, sizeof *inputs);
		inputs[0].p = calloc(1, 16);
		inputs[0].n = 16;
		ninputs = 1;
	}
	size_t runs = 0;
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	uint8_t *buf = NULL;
	size_t cap = 0;
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 >= seconds)
			break;
		struct input *in = &inputs[next() % ninputs];
		size_t n = in->n;
		if (cap < n + 64) { cap = n + 64; buf = realloc(buf, cap); }
		memcpy(buf, in->p, n);
		int nmut = 1 + (int)(next() % 8);
		for (int m = 0; m < nmut; m++) {
			size_t pos = n ? next() % n : 0;
			switch (next() % 6) {
			case 0: if (n) buf[pos] ^= (uint8_t)(1u << (next() % 8)); break;
			case 1: if (n) buf[pos] = (uint8_t)next(); break;
			case 2: if (n) n = next() % n; break; /* truncate */
			case 3: { /* interesting integers */
				static const uint32_t v[] = {0, 1, 0x7f, 0x80, 0xff, 0xffff, 0x7fffffff, 0xffffffff, 0x10000};
				uint32_t x = v[next() % (sizeof v / sizeof v[0])];
				if (n >= 4) { pos = next() % (n - 3); memcpy(buf + pos, &x, 4); }
				break;
			}
			case 4: { /* splice from another input */
				struct input *o = &inputs[next() % ninputs];
				if (o->n && n) {
					size_t src = next() % o->n, len = 1 + next() % 32;
					if (src + len > o->n) len = o->n - src;
					if (pos + len > n) len = n - pos;
					memcpy(buf + pos, o->p + src, len);
				}
				break;
			}
			case 5: if (n + 8 < cap) { memmove(buf + pos + 8, buf + pos, n - pos); n += 8; } break;
			}
		}
		LLVMFuzzerTestOneInput(buf, n);
		runs++;
	}
	fprintf(stderr, "fuzz: %zu seed inputs, %zu mutated runs, no crash\n", ninputs, runs);
	free(buf);
	return 0;
}
