/*
 * Token sampler.  All scratch is allocated in dk_sampler_new, so a call
 * allocates nothing.  Candidate sets are index lists into the logits vector:
 * top-k narrows them by partial selection (O(n)), top-p pops a binary heap
 * only as far as the cumulative mass needs, so a 49152-token vocabulary
 * never gets a full sort.
 */
#include "docket/sampler.h"

#include "engine/kernels/vec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* top-p buckets: -log(weight) in [0, DK_BKT_RANGE) split evenly, the rest
 * in the last bucket.  Only the order between buckets matters for
 * correctness; finer buckets just leave less to order inside the cut one. */
#define DK_NBKT 512
#define DK_BKT_RANGE 16.0f

struct dk_sampler {
	struct dk_sampler_params p;
	int32_t n_vocab;
	int32_t *idx;    /* candidate ids, n_vocab */
	float *prob;     /* probabilities aligned with idx, n_vocab */
	uint16_t *bkt;   /* top-p bucket of each candidate, n_vocab */
	double bmass[DK_NBKT];
	int32_t *count;  /* occurrences of each id in the history window, n_vocab */
	dk_token *hist;  /* ring of the last hist_cap accepted tokens */
	int32_t hist_cap, hist_len, hist_pos;
	uint64_t rng[4];
};

struct dk_sampler_params dk_sampler_default_params(void)
{
	return (struct dk_sampler_params){
		.temperature = 0.8f,
		.top_k = 40,
		.top_p = 0.95f,
		.min_p = 0.05f,
		.repeat_penalty = 1.0f,
		.freq_penalty = 0.0f,
		.presence_penalty = 0.0f,
		.penalty_last_n = 64,
		.seed = 0,
	};
}

/* ---- PRNG: splitmix64 to seed xoshiro256**; same stream on every platform ---- */

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t xoshiro_next(uint64_t s[4])
{
	uint64_t r = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return r;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
	return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
	uint64_t x = seed;
	for (int i = 0; i < 4; i++)
		s[i] = splitmix64(&x);
}

/* ---- lifecycle ---- */

struct dk_sampler *dk_sampler_new(const struct dk_sampler_params *p, int32_t n_vocab)
{
	if (n_vocab <= 0)
		return NULL;
	struct dk_sampler *s = calloc(1, sizeof *s);
	if (!s)
		return NULL;
	s->p = p ? *p : dk_sampler_default_params();
	s->n_vocab = n_vocab;
	s->hist_cap = s->p.penalty_last_n > 0 ? s->p.penalty_last_n : 0;
	s->idx = malloc((size_t)n_vocab * sizeof *s->idx);
	s->prob = malloc((size_t)n_vocab * sizeof *s->prob);
	s->bkt = malloc((size_t)n_vocab * sizeof *s->bkt);
	s->count = calloc((size_t)n_vocab, sizeof *s->count);
	s->hist = malloc((size_t)(s->hist_cap ? s->hist_cap : 1) * sizeof *s->hist);
	if (!s->idx || !s->prob || !s->bkt || !s->count || !s->hist) {
		dk_sampler_free(s);
		return NULL;
	}
	dk_sampler_reset(s);
	return s;
}

void dk_sampler_free(struct dk_sampler *s)
{
	if (!s)
		return;
	free(s->idx);
	free(s->prob);
	free(s->bkt);
	free(s->count);
	free(s->hist);
	free(s);
}

void dk_sampler_reset(struct dk_sampler *s)
{
	if (!s)
		return;
	memset(s->count, 0, (size_t)s->n_vocab * sizeof *s->count);
	s->hist_len = 0;
	s->hist_pos = 0;
	rng_seed(s->rng, s->p.seed);
}

void dk_sampler_accept(struct dk_sampler *s, dk_token t)
{
	if (!s || s->hist_cap == 0 || t < 0 || t >= s->n_vocab)
		return;
	if (s->hist_len == s->hist_cap) {
		s->count[s->hist[s->hist_pos]]--;
	} else {
		s->hist_len++;
	}
	s->hist[s->hist_pos] = t;
	s->count[t]++;
	s->hist_pos = (s->hist_pos + 1) % s->hist_cap;
}

/* ---- steps ---- */

static bool penalties_on(const struct dk_sampler_params *p)
{
	return p->repeat_penalty != 1.0f || p->freq_penalty != 0.0f || p->presence_penalty != 0.0f;
}

/* Each distinct token of the window is penalised once; its count is negated
 * while it is done so that repeats in the ring are skipped, then restored. */
static void apply_penalties(struct dk_sampler *s, float *logits)
{
	if (s->hist_len == 0 || !penalties_on(&s->p))
		return;
	const float rp = s->p.repeat_penalty, fp = s->p.freq_penalty, pp = s->p.presence_penalty;
	for (int32_t i = 0; i < s->hist_len; i++) {
		dk_token t = s->hist[i];
		int32_t c = s->count[t];
		if (c <= 0)
			continue;
		float l = logits[t];
		if (rp != 1.0f)
			l = l > 0.0f ? l / rp : l * rp;
		l -= (float)c * fp + pp;
		logits[t] = l;
		s->count[t] = -c;
	}
	for (int32_t i = 0; i < s->hist_len; i++) {
		dk_token t = s->hist[i];
		if (s->count[t] < 0)
			s->count[t] = -s->count[t];
	}
}

dk_token dk_argmax(const float *logits, int32_t n)
{
	/* the kernel choice is made once (pthread_once inside) */
	int32_t i = logits && n > 0 ? dk_vec_argmax_kernel()(logits, n) : -1;
	return i < 0 ? DK_TOKEN_NULL : (dk_token)i;
}

static inline void swap_i32(int32_t *a, int32_t *b)
{
	int32_t t = *a;
	*a = *b;
	*b = t;
}

/* Rearranges idx[0..n) so that its first k entries are the k largest
 * logits (in no particular order).  Quickselect with a three-way partition,
 * so runs of equal logits (common after masking) stay linear. */
static void select_top_k(int32_t *idx, int32_t n, int32_t k, const float *v)
{
	int32_t lo = 0, hi = n; /* the k-th boundary lies in [lo, hi) */
	uint64_t h = 0x2545f4914f6cdd1dULL;
	while (hi - lo > 1) {
		/* deterministic pseudo-random pivot guards against adversarial orders */
		h ^= h << 13;
		h ^= h >> 7;
		h ^= h << 17;
		float pv = v[idx[lo + (int32_t)(h % (uint64_t)(hi - lo))]];
		/* [lo,gt): > pv, [gt,i): == pv, [lt_end, hi): < pv */
		int32_t gt = lo, i = lo, lt = hi;
		while (i < lt) {
			float x = v[idx[i]];
			if (x > pv)
				swap_i32(&idx[gt++], &idx[i++]);
			else if (x < pv)
				swap_i32(&idx[i], &idx[--lt]);
			else
				i++;
		}
		if (k <= gt)
			hi = gt;
		else if (k <= lt)
			return; /* the boundary falls among the equal values */
		else
			lo = lt;
	}
}

/* Max-heap of idx by prob (prob aligned with idx, moved together). */
static void heap_sift(int32_t *idx, float *pr, int32_t n, int32_t i)
{
	for (;;) {
		int32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && pr[l] > pr[m])
			m = l;
		if (r < n && pr[r] > pr[m])
			m = r;
		if (m == i)
			return;
		swap_i32(&idx[i], &idx[m]);
		float t = pr[i];
		pr[i] = pr[m];
		pr[m] = t;
		i = m;
	}
}

/* Min-heap twin of heap_sift, for the streaming top-k. */
static void minheap_sift(int32_t *idx, float *v, int32_t n, int32_t i)
{
	for (;;) {
		int32_t l = 2 * i + 1, r = l + 1, m = i;
		if (l < n && v[l] < v[m])
			m = l;
		if (r < n && v[r] < v[m])
			m = r;
		if (m == i)
			return;
		swap_i32(&idx[i], &idx[m]);
		float t = v[i];
		v[i] = v[m];
		v[m] = t;
		i = m;
	}
}

/* Small k: one sequential pass keeping the k largest in a min-heap at
 * idx[0..k) (keys in tmp[0..k)).  Most tokens only meet one comparison with
 * the heap's root, which is what makes top-40 of 49152 cheap.  Ties at the
 * cut keep the earlier (lower) id. */
static void heap_top_k(int32_t *idx, int32_t n, int32_t k, const float *v, float *tmp)
{
	for (int32_t i = 0; i < k; i++)
		tmp[i] = v[idx[i]];
	for (int32_t i = k / 2 - 1; i >= 0; i--)
		minheap_sift(idx, tmp, k, i);
	for (int32_t i = k; i < n; i++) {
		float x = v[idx[i]];
		if (x > tmp[0]) {
			idx[0] = idx[i];
			tmp[0] = x;
			minheap_sift(idx, tmp, k, 0);
		}
	}
}

/* Keeps the shortest run of most probable candidates, in descending order,
 * whose weight reaches target.  Pops a heap so only the kept prefix gets
 * ordered; on return idx/pr[0..ret) hold it, most probable first. */
static int32_t heap_top_p(int32_t *idx, float *pr, int32_t n, double target)
{
	for (int32_t i = n / 2 - 1; i >= 0; i--)
		heap_sift(idx, pr, n, i);
	double cum = 0.0;
	int32_t kept = 0, heap_n = n;
	/* popped items go to the end of the array, then get moved to the front */
	while (heap_n > 0) {
		cum += pr[0];
		heap_n--;
		swap_i32(&idx[0], &idx[heap_n]);
		float t = pr[0];
		pr[0] = pr[heap_n];
		pr[heap_n] = t;
		heap_sift(idx, pr, heap_n, 0);
		kept++;
		if (cum >= target)
			break;
	}
	/* kept items sit at [n-kept, n), smallest first: reversing the whole
	 * array brings them to the front, largest first */
	for (int32_t a = 0, b = n - 1; a < b; a++, b--) {
		swap_i32(&idx[a], &idx[b]);
		float t = pr[a];
		pr[a] = pr[b];
		pr[b] = t;
	}
	return kept;
}

/* Top-p without sorting the vocabulary.  Candidates are bucketed by
 * -log(weight) (bkt[i], computed with the weights); whole buckets are kept
 * while their mass stays below the target, and only the bucket where the
 * cumulative mass crosses it is ordered (by heap_top_p).  The result is the
 * same set a full descending sort would keep. */
static int32_t bucket_top_p(struct dk_sampler *s, int32_t n, double target)
{
	int32_t *idx = s->idx;
	float *pr = s->prob;
	uint16_t *bk = s->bkt;
	double cum = 0.0;
	int32_t cut = DK_NBKT - 1;
	for (int32_t b = 0; b < DK_NBKT; b++) {
		if (cum + s->bmass[b] >= target) {
			cut = b;
			break;
		}
		cum += s->bmass[b];
	}
	/* compact the kept buckets to the front, then split them: < cut | == cut */
	int32_t m = 0;
	for (int32_t i = 0; i < n; i++) {
		if (bk[i] <= cut) {
			idx[m] = idx[i];
			pr[m] = pr[i];
			bk[m] = bk[i];
			m++;
		}
	}
	int32_t lo = 0, hi = m;
	while (lo < hi) {
		if (bk[lo] < cut) {
			lo++;
		} else {
			hi--;
			swap_i32(&idx[lo], &idx[hi]);
			float t = pr[lo];
			pr[lo] = pr[hi];
			pr[hi] = t;
			uint16_t u = bk[lo];
			bk[lo] = bk[hi];
			bk[hi] = u;
		}
	}
	if (lo == m)
		return m;
	return lo + heap_top_p(idx + lo, pr + lo, m - lo, target - cum);
}

dk_token dk_sampler_sample(struct dk_sampler *s, float *logits)
{
	if (!s || !logits)
		return DK_TOKEN_NULL;
	const struct dk_sampler_params *p = &s->p;
	const int32_t nv = s->n_vocab;

	apply_penalties(s, logits);
	/* a temperature so small that 1/t overflows is greedy in all but name */
	if (p->temperature <= 0.0f || !isfinite(1.0f / p->temperature))
		return dk_argmax(logits, nv);

	int32_t *idx = s->idx;
	float *pr = s->prob;
	int32_t n = 0;
	float mx = -INFINITY;
	for (int32_t i = 0; i < nv; i++) {
		/* -inf is a mask; NaN is treated as one too rather than poisoning the sums */
		float l = logits[i];
		if (l > -INFINITY) {
			idx[n++] = i;
			mx = l > mx ? l : mx;
		}
	}
	if (n == 0)
		return DK_TOKEN_NULL;

	if (p->top_k > 0 && p->top_k < n) {
		if (p->top_k <= n / 16)
			heap_top_k(idx, n, p->top_k, logits, pr);
		else
			select_top_k(idx, n, p->top_k, logits);
		n = p->top_k;
	}

	/* temperature, then unnormalised softmax weights: the best has weight 1
	 * (top-k keeps the maximum, so mx is still right) */
	const float inv_t = 1.0f / p->temperature;
	if (mx == INFINITY) /* weights would be inf/inf: an infinite logit just wins */
		return dk_argmax(logits, nv);
	const bool top_p = p->top_p < 1.0f && n > 1;
	double sum = 0.0;
	if (top_p) {
		const float bscale = (float)DK_NBKT / DK_BKT_RANGE;
		memset(s->bmass, 0, sizeof s->bmass);
		for (int32_t i = 0; i < n; i++) {
			float d = (mx - logits[idx[i]]) * inv_t;
			float e = expf(-d);
			pr[i] = e;
			sum += e;
			/* d >= 0; fminf also sends +inf to the last bucket */
			int32_t b = (int32_t)fminf(d * bscale, (float)(DK_NBKT - 1));
			s->bkt[i] = (uint16_t)b;
			s->bmass[b] += e;
		}
	} else {
		for (int32_t i = 0; i < n; i++) {
			float e = expf((logits[idx[i]] - mx) * inv_t);
			pr[i] = e;
			sum += e;
		}
	}

	if (top_p) {
		double target = (double)(p->top_p > 0.0f ? p->top_p : 0.0f) * sum;
		n = bucket_top_p(s, n, target);
		sum = 0.0;
		for (int32_t i = 0; i < n; i++)
			sum += pr[i];
	}

	if (p->min_p > 0.0f && n > 1) {
		/* the most probable candidate has weight exp(0) = 1 (unnormalised);
		 * top-p always keeps it */
		const float cut = p->min_p;
		int32_t m = 0;
		sum = 0.0;
		for (int32_t i = 0; i < n; i++) {
			if (pr[i] >= cut) {
				idx[m] = idx[i];
				pr[m] = pr[i];
				sum += pr[i];
				m++;
			}
		}
		n = m;
	}

	double r = rng_uniform(s->rng) * sum;
	double cum = 0.0;
	for (int32_t i = 0; i < n; i++) {
		cum += pr[i];
		if (r < cum)
			return idx[i];
	}
	/* rounding left r at the very top: the last candidate with weight */
	for (int32_t i = n - 1; i >= 0; i--)
		if (pr[i] > 0.0f)
			return idx[i];
	return idx[0];
}

void dk_softmax(const float *logits, float *probs, int32_t n)
{
	if (n <= 0)
		return;
	float mx = -INFINITY;
	for (int32_t i = 0; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	if (mx == -INFINITY) {
		memset(probs, 0, (size_t)n * sizeof *probs);
		return;
	}
	float sum = 0.0f;
	for (int32_t i = 0; i < n; i++) {
		probs[i] = expf(logits[i] - mx);
		sum += probs[i];
	}
	const float inv = 1.0f / sum;
	for (int32_t i = 0; i < n; i++)
		probs[i] *= inv;
}

/* ---- scoring: log softmax and constrained label choice ---- */

double dk_log_softmax_at(const float *logits, int32_t n, dk_token t)
{
	float mx = -INFINITY;
	for (int32_t i = 0; i < n; i++)
		if (logits[i] > mx)
			mx = logits[i];
	if (mx == -INFINITY)
		return -INFINITY;
	double sum = 0;
	for (int32_t i = 0; i < n; i++)
		sum += exp((double)logits[i] - mx);
	return (double)logits[t] - mx - log(sum);
}

static int cmp_seq(const dk_token *a, int32_t na, const dk_token *b, int32_t nb)
{
	int32_t n = na < nb ? na : nb;
	for (int32_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return na < nb ? -1 : na > nb;
}

struct label_seqs {
	const dk_token *const *toks;
	const int32_t *ntoks;
};

static int cmp_label(const void *a, const void *b, void *ctx)
{
	const struct label_seqs *l = ctx;
	int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
	return cmp_seq(l->toks[x], l->ntoks[x], l->toks[y], l->ntoks[y]);
}

enum dk_status dk_label_probs(const dk_token *const *toks, const int32_t *ntoks, int32_t n_labels,
			      int32_t n_vocab, dk_logits_fn logits_fn, void *ud, double *probs,
			      double *logp)
{
	if (n_labels < 1 || n_vocab < 1)
		return DK_SKIP;
	int32_t maxlen = 0;
	for (int32_t i = 0; i < n_labels; i++) {
		if (ntoks[i] < 1)
			return DK_SKIP;
		for (int32_t k = 0; k < ntoks[i]; k++)
			if (toks[i][k] < 0 || toks[i][k] >= n_vocab)
				return DK_SKIP;
		if (ntoks[i] > maxlen)
			maxlen = ntoks[i];
	}
	int32_t *order = malloc((size_t)n_labels * sizeof *order);
	double *lp = calloc((size_t)n_labels, sizeof *lp);
	double *lse = calloc((size_t)maxlen, sizeof *lse);
	/* logits after each prefix length of the current label, so that a
	 * label sharing a prefix with the previous one reuses them */
	float *cache = malloc((size_t)maxlen * (size_t)n_vocab * sizeof *cache);
	enum dk_status st = DK_OK;
	if (!order || !lp || !lse || !cache) {
		st = DK_FATAL;
		goto out;
	}
	for (int32_t i = 0; i < n_labels; i++)
		order[i] = i;
	struct label_seqs ls = {toks, ntoks};
	qsort_r(order, (size_t)n_labels, sizeof *order, cmp_label, &ls);
	int32_t have = 0; /* cache[k] valid for k < have */
	for (int32_t oi = 0; oi < n_labels; oi++) {
		int32_t i = order[oi];
		if (oi > 0) {
			int32_t j = order[oi - 1], shared = 0;
			while (shared < ntoks[i] && shared < ntoks[j] && toks[i][shared] == toks[j][shared])
				shared++;
			if (have > shared + 1)
				have = shared + 1;
		}
		for (int32_t k = 0; k < ntoks[i]; k++) {
			float *lg = cache + (size_t)k * (size_t)n_vocab;
			if (k >= have) {
				if (logits_fn(ud, toks[i], k, lg)) {
					st = DK_FATAL;
					goto out;
				}
				float mx = -INFINITY;
				for (int32_t t = 0; t < n_vocab; t++)
					if (lg[t] > mx)
						mx = lg[t];
				double sum = 0;
				for (int32_t t = 0; t < n_vocab && mx > -INFINITY; t++)
					sum += exp((double)lg[t] - mx);
				lse[k] = mx > -INFINITY ? mx + log(sum) : INFINITY;
				have = k + 1;
			}
			lp[i] += (double)lg[toks[i][k]] - lse[k];
		}
	}
	double mx = -INFINITY;
	for (int32_t i = 0; i < n_labels; i++)
		if (lp[i] > mx)
			mx = lp[i];
	double sum = 0;
	for (int32_t i = 0; i < n_labels; i++)
		sum += mx > -INFINITY ? exp(lp[i] - mx) : 1.0;
	for (int32_t i = 0; i < n_labels; i++) {
		probs[i] = (mx > -INFINITY ? exp(lp[i] - mx) : 1.0) / sum;
		if (logp)
			logp[i] = lp[i];
	}
out:
	free(order);
	free(lp);
	free(lse);
	free(cache);
	return st;
}
