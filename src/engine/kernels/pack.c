/* Repacking into the row-interleaved layout of pack.h and its scalar
 * reference product (portable C); the kernels are in pack_avx512.c and
 * pack_k_avx512.c. */
#include "engine/kernels/pack.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "engine/kernels/quant.h"
#include "engine/kernels/quant_impl.h"

#define H2F(h) dk_fp16_to_fp32(h)

static bool is_k(enum dk_ttype t)
{
	return t == DK_TYPE_Q2_K || t == DK_TYPE_Q3_K || t == DK_TYPE_Q4_K || t == DK_TYPE_Q5_K ||
	       t == DK_TYPE_Q6_K;
}

bool dk_pack_has_layout(enum dk_ttype t)
{
	return t == DK_TYPE_Q4_0 || t == DK_TYPE_Q4_1 || t == DK_TYPE_Q5_0 || t == DK_TYPE_Q5_1 ||
	       t == DK_TYPE_Q8_0 || is_k(t);
}

bool dk_pack_supported(enum dk_ttype t)
{
	return dk_quant_level() >= DK_KERNELS_AVX512 && dk_pack_has_layout(t);
}

/* ---- how one type stores its quants (pack.h) */

enum store { S_BYTES, S_NIBBLES, S_CRUMBS };

static enum store store_of(enum dk_ttype t)
{
	switch (t) {
	case DK_TYPE_Q8_0: return S_BYTES;
	case DK_TYPE_Q2_K:
	case DK_TYPE_Q3_K: return S_CRUMBS;
	default: return S_NIBBLES;
	}
}

/* high bits kept as mask words */
static int xbits_of(enum dk_ttype t)
{
	switch (t) {
	case DK_TYPE_Q5_0:
	case DK_TYPE_Q5_1:
	case DK_TYPE_Q5_K:
	case DK_TYPE_Q3_K: return 1;
	case DK_TYPE_Q6_K: return 2;
	default: return 0;
	}
}

/* the stored u is q + off (Q6_K: 31 - q, see pack.h) */
static int off_of(enum dk_ttype t)
{
	switch (t) {
	case DK_TYPE_Q4_0: return 8;
	case DK_TYPE_Q5_0: return 16;
	case DK_TYPE_Q8_0: return 128;
	case DK_TYPE_Q3_K: return 4;
	default: return 0;
	}
}

static int u_of(enum dk_ttype t, int q)
{
	return t == DK_TYPE_Q6_K ? 31 - q : q + off_of(t);
}

static int q_of(enum dk_ttype t, int u)
{
	return t == DK_TYPE_Q6_K ? 31 - u : u - off_of(t);
}

static bool has_min(enum dk_ttype t)
{
	return t == DK_TYPE_Q4_1 || t == DK_TYPE_Q5_1 || t == DK_TYPE_Q2_K || t == DK_TYPE_Q4_K ||
	       t == DK_TYPE_Q5_K;
}

static size_t qbytes_of(enum dk_ttype t)
{
	size_t base = store_of(t) == S_BYTES ? 512 : store_of(t) == S_NIBBLES ? 256 : 128;
	return base + (size_t)xbits_of(t) * 64;
}

int dk_pack_k_nsub(enum dk_ttype t)
{
	return t == DK_TYPE_Q4_K || t == DK_TYPE_Q5_K ? 8 : 16;
}

/* byte of sub-block j's scale of row r, from the scales at sc: [j][r] for
 * 8 sub-blocks, [j/2][r][j%2] for 16 */
static size_t sc_at(enum dk_ttype t, int j, int r)
{
	return dk_pack_k_nsub(t) == 8 ? (size_t)j * DK_PACK_ROWS + (size_t)r
				      : (size_t)(j / 2) * 2 * DK_PACK_ROWS + 2 * (size_t)r + (size_t)(j % 2);
}

size_t dk_pack_k_sc(const struct dk_pack *p)
{
	return 8 * p->qbytes;
}

size_t dk_pack_k_mn(const struct dk_pack *p)
{
	return dk_pack_k_sc(p) + (size_t)dk_pack_k_nsub(p->type) * DK_PACK_ROWS;
}

size_t dk_pack_k_d(const struct dk_pack *p)
{
	return dk_pack_k_mn(p) + (has_min(p->type) ? (size_t)dk_pack_k_nsub(p->type) * DK_PACK_ROWS : 0);
}

/* element e (< 32) of row r in the quants at qb: its unsigned value u */
static int get_u(enum dk_ttype t, const uint8_t *qb, int r, int e)
{
	int v = e / 4, i = 4 * r + e % 4, u, base;
	switch (store_of(t)) {
	case S_BYTES:
		return qb[v * 64 + i];
	case S_NIBBLES: {
		uint8_t by = qb[(v & 3) * 64 + i];
		u = v < 4 ? by & 0xF : by >> 4;
		base = 4;
		qb += 256;
		break;
	}
	default:
		u = (qb[(v / 4) * 64 + i] >> (2 * (v & 3))) & 3;
		base = 2;
		qb += 128;
		break;
	}
	for (int b = 0; b < xbits_of(t); b++) {
		uint64_t word;
		memcpy(&word, qb + (size_t)(b * 8 + v) * 8, 8);
		u |= (int)((word >> i) & 1) << (base + b);
	}
	return u;
}

/* the 32 values u[e] of row r into the quants at qb (its mask words
 * zeroed before): 4 bytes per stored vector, one word per mask */
static void put_row(enum dk_ttype t, uint8_t *qb, int r, const int u[32])
{
	uint32_t by;
	switch (store_of(t)) {
	case S_BYTES:
		for (int v = 0; v < 8; v++) {
			by = 0;
			for (int i = 0; i < 4; i++)
				by |= (uint32_t)(u[4 * v + i] & 0xFF) << (8 * i);
			memcpy(qb + v * 64 + 4 * r, &by, 4);
		}
		return;
	case S_NIBBLES:
		for (int v = 0; v < 4; v++) {
			by = 0;
			for (int i = 0; i < 4; i++)
				by |= (uint32_t)((u[4 * v + i] & 0xF) | (u[16 + 4 * v + i] & 0xF) << 4) << (8 * i);
			memcpy(qb + v * 64 + 4 * r, &by, 4);
		}
		break;
	default:
		for (int h = 0; h < 2; h++) {
			by = 0;
			for (int k = 0; k < 4; k++)
				for (int i = 0; i < 4; i++)
					by |= (uint32_t)(u[4 * (4 * h + k) + i] & 3) << (8 * i + 2 * k);
			memcpy(qb + h * 64 + 4 * r, &by, 4);
		}
		break;
	}
	const int base = store_of(t) == S_NIBBLES ? 4 : 2;
	uint8_t *xm = qb + (store_of(t) == S_NIBBLES ? 256 : 128);
	for (int b = 0; b < xbits_of(t); b++)
		for (int v = 0; v < 8; v++) {
			uint64_t word, bits = 0;
			for (int i = 0; i < 4; i++)
				bits |= (uint64_t)((u[4 * v + i] >> (base + b)) & 1) << i;
			memcpy(&word, xm + (size_t)(b * 8 + v) * 8, 8);
			word |= bits << (4 * r);
			memcpy(xm + (size_t)(b * 8 + v) * 8, &word, 8);
		}
}

/* ---- 32-element blocks */

/* one row's block b: its 32 quants q and its fp16 scale d (and min m) */
static void block_parts(enum dk_ttype t, const uint8_t *blk, int q[DK_QK], uint16_t *d,
			uint16_t *m)
{
	*m = 0;
	switch (t) {
	case DK_TYPE_Q4_0:
	case DK_TYPE_Q4_1: {
		const uint8_t *qs = t == DK_TYPE_Q4_0 ? ((const struct dk_block_q4_0 *)blk)->qs
						      : ((const struct dk_block_q4_1 *)blk)->qs;
		for (int j = 0; j < 16; j++) {
			q[j] = qs[j] & 0xF;
			q[j + 16] = qs[j] >> 4;
		}
		break;
	}
	case DK_TYPE_Q5_0:
	case DK_TYPE_Q5_1: {
		const uint8_t *qs = t == DK_TYPE_Q5_0 ? ((const struct dk_block_q5_0 *)blk)->qs
						      : ((const struct dk_block_q5_1 *)blk)->qs;
		const uint8_t *qhp = t == DK_TYPE_Q5_0 ? ((const struct dk_block_q5_0 *)blk)->qh
						       : ((const struct dk_block_q5_1 *)blk)->qh;
		uint32_t qh;
		memcpy(&qh, qhp, 4);
		for (int j = 0; j < 16; j++) {
			q[j] = (qs[j] & 0xF) | (int)(((qh >> j) & 1) << 4);
			q[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
		}
		break;
	}
	default: {
		const struct dk_block_q8_0 *x = (const void *)blk;
		for (int j = 0; j < DK_QK; j++)
			q[j] = x->qs[j] + 128;
		break;
	}
	}
	/* every 32-element block starts with d, and Q4_1/Q5_1 then m */
	memcpy(d, blk, 2);
	if (has_min(t))
		memcpy(m, blk + 2, 2);
}

/* where block b of the group at q keeps its quants and its 16 scales d
 * (its 16 mins, for Q4_1/Q5_1, follow 32 halves later) */
static uint8_t *block_quants(const struct dk_pack *p, const uint8_t *q, int64_t b)
{
	return (uint8_t *)q + (size_t)(b / 2) * p->ubytes + (size_t)(b % 2) * p->qbytes;
}

static uint16_t *block_scales(const struct dk_pack *p, const uint8_t *q, int64_t b)
{
	return (uint16_t *)(q + (size_t)(b / 2) * p->ubytes + 2 * p->qbytes) +
	       (b % 2) * DK_PACK_ROWS;
}

static void pack_row32(const struct dk_pack *p, uint8_t *q, int r, const uint8_t *wr)
{
	const enum dk_ttype t = p->type;
	const size_t bb = dk_ttype_row_bytes(t, DK_QK);
	for (int64_t b = 0; b < p->nb; b++) {
		int qv[DK_QK];
		uint16_t d, m;
		block_parts(t, wr + (size_t)b * bb, qv, &d, &m);
		put_row(t, block_quants(p, q, b), r, qv);
		uint16_t *ds = block_scales(p, q, b);
		ds[r] = d;
		if (has_min(t))
			ds[2 * DK_PACK_ROWS + r] = m;
	}
}

/* ---- K formats */

static void pack_row_k(const struct dk_pack *p, uint8_t *q, int r, const uint8_t *wr)
{
	const enum dk_ttype t = p->type;
	const size_t bb = dk_ttype_row_bytes(t, DK_QK_K);
	const int nsub = dk_pack_k_nsub(t);
	for (int64_t b = 0; b < p->nb; b++) {
		const uint8_t *blk = wr + (size_t)b * bb;
		uint8_t *u = q + (size_t)b * p->ubytes;
		int qv[DK_QK_K], sc[16], mn[16];
		dk_quant_k_unpack(t, blk, qv, sc, mn);
		for (int e = 0; e < DK_QK_K; e++)
			qv[e] = u_of(t, qv[e]);
		for (int c = 0; c < 8; c++)
			put_row(t, u + (size_t)c * p->qbytes, r, qv + 32 * c);
		for (int j = 0; j < nsub; j++) {
			u[dk_pack_k_sc(p) + sc_at(t, j, r)] = (uint8_t)sc[j];
			if (has_min(t))
				u[dk_pack_k_mn(p) + (size_t)(j / 2) * 2 * DK_PACK_ROWS + 2 * r + j % 2] =
					(uint8_t)mn[j];
		}
		/* d (and dmin) sit at the end of every K block */
		uint16_t *ds = (uint16_t *)(u + dk_pack_k_d(p));
		size_t dpos = t == DK_TYPE_Q4_K || t == DK_TYPE_Q5_K ? 0 : bb - (has_min(t) ? 4 : 2);
		memcpy(&ds[r], blk + dpos, 2);
		if (has_min(t))
			memcpy(&ds[DK_PACK_ROWS + r], blk + dpos + 2, 2);
	}
}

struct dk_pack *dk_pack_new(enum dk_ttype t, const void *w, size_t wrow, int64_t ncols,
			    int64_t nrows)
{
	if (!dk_pack_has_layout(t) || ncols <= 0 || ncols % dk_ttype_block(t) || nrows <= 0)
		return NULL;
	struct dk_pack *p = calloc(1, sizeof *p);
	if (!p)
		return NULL;
	p->type = t;
	p->ncols = ncols;
	p->nrows = nrows;
	p->nb = ncols / dk_ttype_block(t);
	p->ngroups = (nrows + DK_PACK_ROWS - 1) / DK_PACK_ROWS;
	p->qbytes = qbytes_of(t);
	if (is_k(t)) {
		p->ubytes = dk_pack_k_d(p) + 64;
		p->gbytes = (size_t)p->nb * p->ubytes;
	} else {
		p->ubytes = 2 * p->qbytes + (size_t)(has_min(t) ? 128 : 64);
		p->gbytes = (size_t)((p->nb + 1) / 2) * p->ubytes;
	}
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
	for (int64_t g = 0; g < p->ngroups; g++) {
		uint8_t *q = p->data + (size_t)g * p->gbytes;
		for (int r = 0; r < DK_PACK_ROWS; r++) {
			int64_t row = g * DK_PACK_ROWS + r;
			if (row >= nrows)
				break;
			const uint8_t *wr = (const uint8_t *)w + (size_t)row * wrow;
			if (is_k(t))
				pack_row_k(p, q, r, wr);
			else
				pack_row32(p, q, r, wr);
		}
		/* padding rows of Q8_0 hold 0x80 (= 0 after the offset), so their
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

/* ---- the reference product */

/* activation block b of column c: scale, Q8_1 sum term, quants */
static const int8_t *act_block(enum dk_ttype t, const void *xq, size_t xrow, int32_t c, int64_t b,
			       float *dy, float *sy)
{
	const uint8_t *row = (const uint8_t *)xq + (size_t)c * xrow;
	if (has_min(t)) {
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

static float dot32(const struct dk_pack *p, const uint8_t *q, int r, const void *xq, size_t xrow,
		   int32_t c)
{
	const enum dk_ttype t = p->type;
	float sum = 0;
	for (int64_t b = 0; b < p->nb; b++) {
		float dy, sy;
		const int8_t *ys = act_block(t, xq, xrow, c, b, &dy, &sy);
		const uint8_t *qb = block_quants(p, q, b);
		const uint16_t *ds = block_scales(p, q, b);
		int isum = 0;
		for (int e = 0; e < DK_QK; e++)
			isum += q_of(t, get_u(t, qb, r, e)) * ys[e];
		float dx = H2F(ds[r]);
		if (has_min(t))
			sum += (float)isum * (dx * dy) + H2F(ds[2 * DK_PACK_ROWS + r]) * sy;
		else
			sum += (float)isum * (dx * dy);
	}
	return sum;
}

static float dot_k(const struct dk_pack *p, const uint8_t *q, int r, const void *xq, size_t xrow,
		   int32_t c)
{
	const enum dk_ttype t = p->type;
	const int nsub = dk_pack_k_nsub(t), len = DK_QK_K / nsub;
	const struct dk_block_q8_k *ys =
		(const struct dk_block_q8_k *)((const uint8_t *)xq + (size_t)c * xrow);
	float sum = 0;
	for (int64_t b = 0; b < p->nb; b++) {
		const uint8_t *u = q + (size_t)b * p->ubytes;
		const struct dk_block_q8_k *y = &ys[b];
		int isum = 0, msum = 0;
		for (int j = 0; j < nsub; j++) {
			int s = 0;
			for (int l = 0; l < len; l++) {
				int e = j * len + l;
				s += q_of(t, get_u(t, u + (size_t)(e / 32) * p->qbytes, r, e % 32)) * y->qs[e];
			}
			int sc = u[dk_pack_k_sc(p) + sc_at(t, j, r)];
			if (t == DK_TYPE_Q3_K || t == DK_TYPE_Q6_K)
				sc = (int8_t)sc;
			isum += sc * s;
			if (has_min(t)) {
				int bs = 0;
				for (int l = 0; l < len / 16; l++)
					bs += y->bsums[j * len / 16 + l];
				msum += u[dk_pack_k_mn(p) + (size_t)(j / 2) * 2 * DK_PACK_ROWS + 2 * r + j % 2] * bs;
			}
		}
		const uint16_t *ds = (const uint16_t *)(u + dk_pack_k_d(p));
		float dmin = has_min(t) ? H2F(ds[DK_PACK_ROWS + r]) : 0.0f;
		sum += y->d * (H2F(ds[r]) * (float)isum - dmin * (float)msum);
	}
	return sum;
}

void dk_pack_gemm_ref(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy)
{
	for (int64_t g = g0; g < g1; g++) {
		const uint8_t *q = p->data + (size_t)g * p->gbytes;
		for (int r = 0; r < DK_PACK_ROWS && g * DK_PACK_ROWS + r < p->nrows; r++)
			for (int32_t c = 0; c < T; c++)
				y[(size_t)c * ldy + g * DK_PACK_ROWS + r] =
					is_k(p->type) ? dot_k(p, q, r, xq, xrow, c)
						      : dot32(p, q, r, xq, xrow, c);
	}
}

void dk_pack_gemm(const struct dk_pack *p, int64_t g0, int64_t g1, const void *xq, size_t xrow,
		  int32_t T, float *y, int64_t ldy)
{
	if (dk_quant_level() < DK_KERNELS_AVX512)
		dk_pack_gemm_ref(p, g0, g1, xq, xrow, T, y, ldy);
	else if (is_k(p->type))
		dk_pack_gemm_k_avx512(p, g0, g1, xq, xrow, T, y, ldy);
	else
		dk_pack_gemm_avx512(p, g0, g1, xq, xrow, T, y, ldy);
}
