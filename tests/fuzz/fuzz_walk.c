/* Fuzz target: the archive walk.  The input is written to a file and walked
 * as an archive (libarchive, nested archives, limits, member extraction)
 * with small limits.  Invariants: no crash, every record is complete, and
 * the walk ends. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "docket/ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char path[64];
	if (!path[0]) {
		snprintf(path, sizeof path, "%s/docket-fuzz-walk-%d.bin", access("/dev/shm", W_OK) ? "/tmp" : "/dev/shm",
			 (int)getpid());
	}
	FILE *f = fopen(path, "wb");
	if (!f)
		return 0;
	fwrite(data, 1, size, f);
	fclose(f);
	struct dk_ingest_params p = dk_ingest_default_params();
	p.max_member_bytes = 1 << 20;
	p.max_archive_bytes = 4 << 20;
	p.max_entries = 200;
	p.max_nesting = 3;
	p.pdftotext = "/nonexistent"; /* keep the fuzzer in-process */
	struct dk_ingest *ing;
	if (dk_ingest_new(&ing, &p) != DK_OK)
		abort();
	dk_ingest_add(ing, path);
	const struct dk_doc *d;
	enum dk_status st;
	size_t n = 0;
	while ((st = dk_ingest_next(ing, &d)) == DK_OK) {
		n++;
		if (!d->path || !d->mime || !d->charset)
			abort();
		if (d->action == DK_DOC_EXTRACT ? (!d->text || strlen(d->text) != d->text_len)
						: (!d->skip_reason || !d->detail))
			abort();
		if (n > 10000)
			abort();
	}
	if (st != DK_EOF || n == 0)
		abort();
	dk_ingest_free(ing);
	unlink(path);
	return 0;
}
