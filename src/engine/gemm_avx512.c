/*
 * AVX-512 VNNI gemm kernels for the 32-wide formats (Q4_0, Q4_1, Q8_0).
 *
 * Tile: up to 4 weight rows x 4 activation columns, 16 accumulators of
 * 8 floats.  Bit-identity with vec_dot (quant_x86.h, BLOCK32_KERNEL)
 * holds because every (row, column) pair gets exactly its float operations:
 * per pair of blocks t = f1*p1; t = fma(f0, p0, t); acc += t on the same
 * 8 lanes, where lane k of p is the exact integer dot of elements 4k..4k+3
 * and f = dx*dy; then the same horizontal sum and the same min term.  Only
 * the integer side is computed differently (exact either way): weights
 * become unsigned (nibbles, or q8 + 128) and the offset is taken back by
 * starting each lane at -offset*sum(y), a per-column value shared by all
 * rows of the tile.  No -ffast-math, no fp contraction (ISO C mode).
 */
#include "engine/gemm.h"

#include "engine/quant.h"
#include "engine/quant_impl.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <string.h>

#define KINLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 16")

enum { K_Q4_0, K_Q4_1, K_Q8_0 };

/* per block, the values of the 4 columns of a tile that every row reuses */
struct colblk {
	__m256i corr[4]; /* -offset * sum of each 4 activation bytes */
	float dy[4];     /* activation block scale */
	float sy[4];     /* Q8_1: d * sum(q) */
};

KINLINE float h2f(const void *p)
{
	uint16_t h;
	memcpy(&h, p, 2);
	return _cvtsh_ss(h);
}

KINLINE float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

KINLINE size_t wbytes(const int kind)
{
	return kind == K_Q4_0 ? sizeof(struct dk_block_q4_0)
	       : kind == K_Q4_1 ? sizeof(struct dk_block_q4_1)
				: sizeof(struct dk_block_q8_0);
}

KINLINE size_t ybytes(const int kind)
{
	return kind == K_Q4_1 ? sizeof(struct dk_block_q8_1) : sizeof(struct dk_block_q8_0);
}

/* offset of qs in an activation block */
KINLINE size_t yqs(const int kind)
{
	return kind == K_Q4_1 ? offsetof(struct dk_block_q8_1, qs) : offsetof(struct dk_block_q8_0, qs);
}

/* the column values of nc (<= 4) activation rows for blocks 0..nb */
static void colprep(const int kind, int nc, int64_t nb, const char *yq, size_t xrow,
		    struct colblk *cb)
{
	const size_t yb = ybytes(kind);
	const __m256i off = _mm256_set1_epi8(kind == K_Q8_0 ? (char)0x80 : 8);
	for (int64_t i = 0; i < nb; i++) {
		for (int c = 0; c < 4; c++) {
			if (c >= nc) {
				cb[i].corr[c] = _mm256_setzero_si256();
				cb[i].dy[c] = cb[i].sy[c] = 0;
				continue;
			}
			const char *b = yq + (size_t)c * xrow + (size_t)i * yb;
			cb[i].dy[c] = h2f(b);
			if (kind == K_Q4_1) {
				cb[i].sy[c] = h2f(b + offsetof(struct dk_block_q8_1, s));
				cb[i].corr[c] = _mm256_setzero_si256();
			} else {
				__m256i q = _mm256_loadu_si256((const __m256i *)(b + yqs(kind)));
				cb[i].corr[c] = _mm256_sub_epi32(
					_mm256_setzero_si256(), _mm256_dpbusd_epi32(_mm256_setzero_si256(), off, q));
				cb[i].sy[c] = 0;
			}
		}
	}
}

KINLINE __m256i idot(const int kind, const struct colblk *cb, int c, __m256i u, const char *yc)
{
	__m256i a = kind == K_Q4_1 ? _mm256_setzero_si256() : _mm256_load_si256(&cb->corr[c]);
	return _mm256_dpbusd_epi32(a, u, _mm256_loadu_si256((const __m256i *)yc));
}

/* Row-side scales of a 4-row tile for every block: dt[i*4 + r] = d of row
 * r (0 past nr), mt likewise the min (Q4_1).  Computed once per row block,
 * reused by every column group. */
static void rowprep(const int kind, int nr, int64_t nb, const char *w, size_t wrow, float *dt,
		    float *mt)
{
	const size_t wb = wbytes(kind);
	for (int64_t i = 0; i < nb; i++)
		for (int r = 0; r < 4; r++) {
			const char *b = w + (size_t)r * wrow + (size_t)i * wb;
			dt[i * 4 + r] = r < nr ? h2f(b) : 0.0f;
			if (kind == K_Q4_1)
				mt[i * 4 + r] = r < nr ? h2f(b + offsetof(struct dk_block_q4_1, m)) : 0.0f;
		}
}

/* f[i*16 + r*4 + c] = dx(r, i) * dy(c, i): the block scale products of a
 * tile, 16 per instruction; the kernel then reads them as broadcasts */
static void scaleprep(int64_t nb, const float *dt, const struct colblk *cb, float *f)
{
	const __m512i idx = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
	for (int64_t i = 0; i < nb; i++) {
		__m512 dx = _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(_mm_loadu_ps(dt + i * 4)));
		__m512 dy = _mm512_broadcast_f32x4(_mm_loadu_ps(cb[i].dy));
		_mm512_storeu_ps(f + i * 16, _mm512_mul_ps(dx, dy));
	}
}

/* weight block -> 32 unsigned bytes in element order */
KINLINE __m256i wq(const int kind, const char *b)
{
	if (kind == K_Q8_0) {
		__m256i q = _mm256_loadu_si256((const __m256i *)(b + offsetof(struct dk_block_q8_0, qs)));
		return _mm256_xor_si256(q, _mm256_set1_epi8((char)0x80));
	}
	size_t off = kind == K_Q4_1 ? offsetof(struct dk_block_q4_1, qs) : offsetof(struct dk_block_q4_0, qs);
	/* both halves get the 16 bytes (a load, no shuffle); the high half is
	 * shifted down a nibble */
	__m256i v = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(b + off)));
	v = _mm256_srlv_epi64(v, _mm256_set_epi64x(4, 4, 0, 0));
	return _mm256_and_si256(v, _mm256_set1_epi8(0x0F));
}

/* nr x nc outputs: y[c*ldy + r] for rows at w (wrow apart), columns at yq;
 * f from scaleprep, mt from rowprep (Q4_1) */
KINLINE void tile(const int kind, const int nr, const int nc, int64_t nb, const char *w, size_t wrow,
		  const char *yq, size_t xrow, const struct colblk *cb, const float *f,
		  const float *mt, float *y, int64_t ldy)
{
	const size_t wb = wbytes(kind), yb = ybytes(kind), yo = yqs(kind);
	__m256 acc[4][4];
	__m128 summ[4];
	UNROLL
	for (int r = 0; r < nr; r++) {
		summ[r] = _mm_setzero_ps();
		UNROLL
		for (int c = 0; c < nc; c++)
			acc[r][c] = _mm256_setzero_ps();
	}
	int64_t i = 0;
	for (; i + 1 < nb; i += 2) {
		UNROLL
		for (int r = 0; r < nr; r++) {
			const char *wr = w + (size_t)r * wrow + (size_t)i * wb;
			__m256i u0 = wq(kind, wr), u1 = wq(kind, wr + wb);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const char *yc = yq + (size_t)c * xrow + (size_t)i * yb + yo;
				__m256i p0 = idot(kind, &cb[i], c, u0, yc);
				__m256i p1 = idot(kind, &cb[i + 1], c, u1, yc + yb);
				__m256 t = _mm256_mul_ps(_mm256_set1_ps(f[(i + 1) * 16 + r * 4 + c]),
							 _mm256_cvtepi32_ps(p1));
				t = _mm256_fmadd_ps(_mm256_set1_ps(f[i * 16 + r * 4 + c]), _mm256_cvtepi32_ps(p0), t);
				acc[r][c] = _mm256_add_ps(acc[r][c], t);
			}
			if (kind == K_Q4_1) {
				__m128 a = _mm_mul_ps(_mm_set1_ps(mt[i * 4 + r]), _mm_loadu_ps(cb[i].sy));
				__m128 b = _mm_mul_ps(_mm_set1_ps(mt[(i + 1) * 4 + r]), _mm_loadu_ps(cb[i + 1].sy));
				summ[r] = _mm_add_ps(summ[r], _mm_add_ps(a, b));
			}
		}
	}
	if (i < nb) {
		UNROLL
		for (int r = 0; r < nr; r++) {
			__m256i u0 = wq(kind, w + (size_t)r * wrow + (size_t)i * wb);
			UNROLL
			for (int c = 0; c < nc; c++) {
				const char *yc = yq + (size_t)c * xrow + (size_t)i * yb + yo;
				__m256i p0 = idot(kind, &cb[i], c, u0, yc);
				acc[r][c] = _mm256_fmadd_ps(_mm256_set1_ps(f[i * 16 + r * 4 + c]),
							    _mm256_cvtepi32_ps(p0), acc[r][c]);
			}
			if (kind == K_Q4_1)
				summ[r] = _mm_add_ps(summ[r], _mm_mul_ps(_mm_set1_ps(mt[i * 4 + r]),
									 _mm_loadu_ps(cb[i].sy)));
		}
	}
	UNROLL
	for (int r = 0; r < nr; r++) {
		float m[4];
		_mm_storeu_ps(m, summ[r]);
		UNROLL
		for (int c = 0; c < nc; c++)
			/* "+ 0.0f" too: vec_dot adds it, and it turns -0 into +0 */
			y[(size_t)c * ldy + r] = hsum256(acc[r][c]) + (kind == K_Q4_1 ? m[c] : 0.0f);
	}
}

typedef void (*tile_fn)(int64_t nb, const char *w, size_t wrow, const char *yq, size_t xrow,
			const struct colblk *cb, const float *f, const float *mt, float *y, int64_t ldy);

#define TILE(kind, nr, nc)                                                                        \
	static void tile_##kind##_##nr##nc(int64_t nb, const char *w, size_t wrow, const char *yq, \
					   size_t xrow, const struct colblk *cb, const float *f,      \
					   const float *mt, float *y, int64_t ldy)                   \
	{                                                                                         \
		tile(kind, nr, nc, nb, w, wrow, yq, xrow, cb, f, mt, y, ldy);                      \
	}
#define TILES_R(kind, nr) TILE(kind, nr, 1) TILE(kind, nr, 2) TILE(kind, nr, 3) TILE(kind, nr, 4)
#define TILES(kind) TILES_R(kind, 1) TILES_R(kind, 2) TILES_R(kind, 3) TILES_R(kind, 4)
#define TAB_R(kind, nr) { tile_##kind##_##nr##1, tile_##kind##_##nr##2, tile_##kind##_##nr##3, tile_##kind##_##nr##4 }
#define TAB(kind) { TAB_R(kind, 1), TAB_R(kind, 2), TAB_R(kind, 3), TAB_R(kind, 4) }

TILES(K_Q4_0)
TILES(K_Q4_1)
TILES(K_Q8_0)

static const tile_fn tiles[3][4][4] = { TAB(K_Q4_0), TAB(K_Q4_1), TAB(K_Q8_0) };

/* Rows are taken in blocks whose weights stay in L2 while every column
 * group streams past them; within a block, 4-row tiles. */
#define L2_WEIGHTS (256 * 1024)

static void drive(const int kind, enum dk_ttype type, int64_t ncols, const void *w, size_t wrow,
		  int64_t nrows, const void *xq, size_t xrow, int32_t T, float *y, int64_t ldy)
{
	const int64_t nb = ncols / DK_QK;
	/* 1 or 2 columns amortise the tile set-up badly: vec_dot_n takes them
	 * (bit-identical either way), a lone 3 still gains from a tile */
	int32_t tg = T < 3 ? 0 : T % 4 == 3 ? T : T - T % 4;
	if (tg < T) {
		const struct dk_qtraits *tr = dk_quant_traits(type);
		for (int64_t r = 0; r < nrows; r++)
			tr->vec_dot_n(ncols, y + (size_t)tg * ldy + r, (size_t)ldy,
				      (const char *)w + (size_t)r * wrow,
				      (const char *)xq + (size_t)tg * xrow, xrow, T - tg);
		if (tg == 0)
			return;
		T = tg;
	}
	int64_t rb = (int64_t)(L2_WEIGHTS / (wrow ? wrow : 1)) & ~(int64_t)3;
	if (rb < 4)
		rb = 4;
	if (rb > ((nrows + 3) & ~(int64_t)3))
		rb = (nrows + 3) & ~(int64_t)3;
	/* scratch: column values, scale products, row scales and mins */
	size_t ncb = (size_t)nb * sizeof(struct colblk), nf = (size_t)nb * 16 * sizeof(float);
	size_t nrt = (size_t)(rb / 4) * (size_t)nb * 4 * sizeof(float);
	char *sp = dk_gemm_scratch(ncb + nf + 2 * nrt);
	if (!sp) { /* out of memory: the per-row kernel needs no scratch */
		const struct dk_qtraits *tr = dk_quant_traits(type);
		for (int64_t r = 0; r < nrows; r++)
			tr->vec_dot_n(ncols, y + r, (size_t)ldy, (const char *)w + (size_t)r * wrow, xq,
				      xrow, T);
		return;
	}
	struct colblk *cb = (struct colblk *)sp;
	float *f = (float *)(sp + ncb), *dt = (float *)(sp + ncb + nf), *mt = (float *)(sp + ncb + nf + nrt);
	for (int64_t r0 = 0; r0 < nrows; r0 += rb) {
		int64_t r1 = nrows - r0 < rb ? nrows : r0 + rb;
		for (int64_t r = r0; r < r1; r += 4) {
			int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
			size_t o = (size_t)((r - r0) / 4) * (size_t)nb * 4;
			rowprep(kind, nr, nb, (const char *)w + (size_t)r * wrow, wrow, dt + o, mt + o);
		}
		for (int32_t j = 0; j < T; j += 4) {
			int nc = T - j < 4 ? T - j : 4;
			const char *yj = (const char *)xq + (size_t)j * xrow;
			colprep(kind, nc, nb, yj, xrow, cb);
			for (int64_t r = r0; r < r1; r += 4) {
				int nr = r1 - r < 4 ? (int)(r1 - r) : 4;
				size_t o = (size_t)((r - r0) / 4) * (size_t)nb * 4;
				scaleprep(nb, dt + o, cb, f);
				tiles[kind][nr - 1][nc - 1](nb, (const char *)w + (size_t)r * wrow, wrow, yj,
							    xrow, cb, f, mt + o, y + (size_t)j * ldy + r, ldy);
			}
		}
	}
}

static void gemm_q4_0(int64_t ncols, const void *w, size_t wrow, int64_t nrows, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy)
{
	drive(K_Q4_0, DK_TYPE_Q4_0, ncols, w, wrow, nrows, xq, xrow, T, y, ldy);
}

static void gemm_q4_1(int64_t ncols, const void *w, size_t wrow, int64_t nrows, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy)
{
	drive(K_Q4_1, DK_TYPE_Q4_1, ncols, w, wrow, nrows, xq, xrow, T, y, ldy);
}

static void gemm_q8_0(int64_t ncols, const void *w, size_t wrow, int64_t nrows, const void *xq,
		      size_t xrow, int32_t T, float *y, int64_t ldy)
{
	drive(K_Q8_0, DK_TYPE_Q8_0, ncols, w, wrow, nrows, xq, xrow, T, y, ldy);
}

dk_gemm_fn dk_gemm_avx512_kernel(enum dk_ttype t)
{
	switch (t) {
	case DK_TYPE_Q4_0: return gemm_q4_0;
	case DK_TYPE_Q4_1: return gemm_q4_1;
	case DK_TYPE_Q8_0: return gemm_q8_0;
	default: return NULL;
	}
}

#else /* other architectures: no kernels */

dk_gemm_fn dk_gemm_avx512_kernel(enum dk_ttype t)
{
	(void)t;
	return NULL;
}

#endif
