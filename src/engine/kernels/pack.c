/* Repacking into the row-interleaved layout of pack.h (portable C); the
 * kernel is in pack_avx512.c. */
#include "engine/kernels/pack.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/kernels/quant.h"
#include "engine/kernels/quant_impl.h"

#define H2F(h) dk_fp16_to_fp32(h)

bool dk_pack_supported(enum dk_ttype t)
{
	if (dk_quant_level() < DK_KERNELS_AVX512)
		return false;
	return t == DK_TYPE_Q4_0 || t == DK_TYPE_Q4_1 || t == DK_TYPE_Q8_0;
}

/* the quants of one row's block and its scales, whatever the type */
static void block_parts(enum dk_ttype t, const uint8_t *b, const uint8_t **qs, uint16_t *d,
			uint16_t *m)
{
	switch (t) {
	case DK_TYPE_Q4_0: {
		const struct dk_block_q4_0 *x = (const void *)b;
		*qs = x->qs;
		memcpy(d, &x->d, 2);
		*m = 0;
		break;
	}
	case DK_TYPE_Q4_1: {
		const struct dk_block_q4_1 *x = (const void *)b;
		*qs = x->qs;
		memcpy(d, &x->d, 2);
		memcpy(m, &x->m, 2);
		break;
	}
	default: {
		const struct dk_block_q8_0 *x = (const void *)b;
		*qs = (const uint8_t *)x->qs;
		memcpy(d, &x->d, 2);
		*m = 0;
		break;
	}
	}
}

/* where block b of the group at q keeps its quants and its 16 scales d
 * (its 16 mins, for Q4_1, follow 32 halves later): see the layout in
 * pack.h */
static uint8_t *block_quants(const struct dk_pack *p, const uint8_t *q, int64_t b)
{
	return (uint8_t *)q + (size_t)(b / 2) * p->ubytes + (size_t)(b % 2) * p->qbytes;
}

static uint16_t *block_scales(const struct dk_pack *p, const uint8_t *q, int64_t b)
{
	return (uint16_t *)(q + (size_t)(b / 2) * p->ubytes + 2 * p->qbytes) +
	       (b % 2) * DK_PACK_ROWS;
}

struct dk_pack *dk_pack_new(enum dk_ttype t, const void *w, size_t wrow, int64_t ncols,
			    int64_t nrows)
{
	if (!(t == DK_TYPE_Q4_0 || t == DK_TYPE_Q4_1 || t == DK_TYPE_Q8_0) || ncols <= 0 ||
	    ncols % DK_QK || nrows <= 0)
		return NULL;
	struct dk_pack *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->type = t;
	p->ncols = ncols;
	p->nrows = nrows;
	p->nb = ncols / DK_QK;
	p->ngroups = (nrows + DK_PACK_ROWS - 1) / DK_PACK_ROWS;
	p->qbytes = t == DK_TYPE_Q8_0 ? 512 : 256;
	p->ubytes = 2 * p->qbytes + (size_t)(t == DK_TYPE_Q4_1 ? 128 : 64);
	p->gbytes = (size_t)((p->nb + 1) / 2) * p->ubytes;
	size_t total = p->gbytes * (size_t)p->ngroups;
	/* Decode streams every packed byte once per token: on 4 KiB pages
	 * that is a TLB miss every 4 KiB, so big matrices ask for huge pages */
	const size_t huge = (size_t)2 << 20;
	bool big = total >= huge;
	size_t alloc = big ? (total + huge - 1) & ~(huge - 1) : total;
	if (total / p->gbytes != (size_t)p->ngroups ||
	    !(p->data = aligned_alloc(big ? huge : 64, alloc))) {
		free(p);
		return NULL;
	}
#ifdef MADV_HUGEPAGE
	if (big)
		(void)madvise(p->data, alloc, MADV_HUGEPAGE);
#endif
	/* padded rows and the tail are zero: scale 0 makes their outputs 0 */
	memset(p->data, 0, total);
	const size_t bb = dk_ttype_row_bytes(t, DK_QK);
	for (int64_t g = 0; g < p->ngroups; g++) {
		uint8_t *q = p->data + (size_t)g * p->gbytes;
		for (int r = 0; r < DK_PACK_ROWS; r++) {
			int64_t row = g * DK_PACK_ROWS + r;
			if (row >= nrows)
				break;
			const uint8_t *wr = (const uint8_t *)w + (size_t)row * wrow;
			for (int64_t b = 0; b < p->nb; b++) {
				const uint8_t *qs;
				uint16_t d, m;
				block_parts(t, wr + (size_t)b * bb, &qs, &d, &m);
				uint8_t *qb = block_quants(p, q, b);
				int nv = (int)(p->qbytes / 64);
				for (int v = 0; v < nv; v++)
					for (int i = 0; i < 4; i++)
						qb[v * 64 + r * 4 + i] = t == DK_TYPE_Q8_0
										 ? (uint8_t)(qs[4 * v + i] ^ 0x80)
										 : qs[4 * v + i];
				uint16_t *ds = block_scales(p, q, b);
				ds[r] = d;
				if (t == DK_TYPE_Q4_1)
					ds[2 * DK_PACK_ROWS + r] = m;
			}
		}
		/* padding rows of Q8_0 hold 0x80 (= 0 after the flip), so their
		 * integer sums are 0 too, not just scaled by 0 */
		if (t == DK_TYPE_Q8_0 && (g + 1) * DK_PACK_ROWS > nrows) {
			int first = (int)(nrows - g * DK_PACK_ROWS);
			for (int64_t b = 0; b < p->nb; b++)
				for (int v = 0; v < 8; v++)
					memset(block_quants(p, q, b) + v * 64 + first * 4, 0x80,
					       (size_t)(DK_PACK_ROWS - first) * 4);
		}
	}
	return p;
}

void dk_pack_free(struct dk_pack *p)
{
	if (!p)
		return;
	free(p->data);
	free(p);
}

int64_t dk_pack_groups(const struct dk_pack *p) { return p->ngroups; }
int64_t dk_pack_rows(const struct dk_pack *p) { return p->nrows; }
size_t dk_pack_bytes(const struct dk_pack *p) { return p->gbytes * (size_t)p->ngroups; }

/* activation block j of column c: scale, Q8_1 sum term, quants */
static const int8_t *act_block(enum dk_ttype t, const void *xq, size_t xrow, int32_t c, int64_t b,
			       float *dy, float *sy)
{
	const uint8_t *row = (const uint8_t *)xq + (size_t)c * xrow;
	if (t == DK_TYPE_Q4_1) {
		const struct dk_block_q8_1 *y = (const struct dk_block_q8_1 *)row + b;
		*dy = H2F(y->d);
		*sy = H2F(y->s);
		return y->qs;
	}
	const struct dk_block_q8_0 *y = (const struct dk_block_q8_0 *)row + b;
	*dy = H2F(y->d);
	*sy = 0;
	return y->qs;
}

void dk_pack_gemm_ref(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy)
{
	const enum dk_ttype t = p->type;
	for (int64_t g = g0; g < g1; g++) {
		const uint8_t *q = p->data + (size_t)g * p->gbytes;
		for (int r = 0; r < DK_PACK_ROWS && g * DK_PACK_ROWS + r < p->nrows; r++)
			for (int32_t c = 0; c < T; c++) {
				float sum = 0;
				for (int64_t b = 0; b < p->nb; b++) {
					float dy, sy;
					const int8_t *ys = act_block(t, xq, xrow, c, b, &dy, &sy);
					const uint8_t *qb = block_quants(p, q, b);
					const uint16_t *ds = block_scales(p, q, b);
					int isum = 0;
					for (int e = 0; e < DK_QK; e++) {
						int w;
						if (t == DK_TYPE_Q8_0) {
							w = (int)qb[(e / 4) * 64 + r * 4 + e % 4] - 128;
						} else {
							int k = e % 16;
							uint8_t by = qb[(k / 4) * 64 + r * 4 + k % 4];
							w = e < 16 ? by & 0xF : by >> 4;
							if (t == DK_TYPE_Q4_0)
								w -= 8;
						}
						isum += w * ys[e];
					}
					float dx = H2F(ds[r]);
					if (t == DK_TYPE_Q4_1)
						sum += (float)isum * (dx * dy) + H2F(ds[2 * DK_PACK_ROWS + r]) * sy;
					else
						sum += (float)isum * (dx * dy);
				}
				y[(size_t)c * ldy + g * DK_PACK_ROWS + r] = sum;
			}
	}
}

void dk_pack_gemm(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq, size_t xrow,
		  int32_t T, float *y, int64_t ldy)
{
	if (dk_quant_level() >= DK_KERNELS_AVX512)
		dk_pack_gemm_avx512(p, g0, g1, xq, xrow, T, y, ldy);
	else
		dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
}
