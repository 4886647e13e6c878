/* SHA-256 (FIPS 180-4).  Used for model identity, chunk ids, configuration
 * hashes and the audit trail, so it must be exact; tested against the NIST
 * vectors. */
#ifndef DK_UTIL_SHA256_H
#define DK_UTIL_SHA256_H

#include <stddef.h>
#include <stdint.h>

struct dk_sha256 {
	uint32_t h[8];
	uint64_t len;      /* bytes hashed so far */
	uint8_t blk[64];
	size_t nblk;       /* bytes pending in blk */
};

void dk_sha256_init(struct dk_sha256 *s);
void dk_sha256_update(struct dk_sha256 *s, const void *data, size_t n);
void dk_sha256_final(struct dk_sha256 *s, uint8_t out[32]);
/* One-shot digest of data into out. */
void dk_sha256(const void *data, size_t n, uint8_t out[32]);
/* Lowercase hex of a digest; hex must hold 65 bytes. */
void dk_sha256_hex(const uint8_t d[32], char hex[65]);
/* Digest of a whole file as hex; returns 0, or -1 with errno set. */
int dk_sha256_file(const char *path, char hex[65]);

#endif
