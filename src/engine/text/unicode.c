/*
 * UTF-8, code-point flags and the BPE pre-tokenizers.
 *
 * The pre-tokenizers reproduce what llama.cpp's regex splitting produces for
 * each tokenizer.ggml.pre.  A regex there is applied to each chunk left by
 * the previous one; its matches become words and so does every stretch of
 * unmatched text between them.  Regexes that mention \p{..} effectively see
 * one class per code point (letter, number, punctuation, mark, symbol,
 * other) and \s means White_Space; regexes with literal non-ASCII ranges see
 * the code points themselves, except that non-ASCII white space reads as
 * U+000B.  Each matcher below is written against those semantics
 * (leftmost match, ordered alternation, greedy quantifiers, no lookahead
 * past the chunk).
 */
#include "engine/text/unicode.h"

#include <stdlib.h>
#include <string.h>

uint32_t dk_utf8_decode(const char *str, size_t len, size_t *i)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t o = *i;
	unsigned c = s[o];
	if (!(c & 0x80)) {
		*i = o + 1;
		return c;
	}
	size_t n;
	uint32_t cp;
	if (!(c & 0x40)) {
		n = 0;
		cp = 0;
	} else if (!(c & 0x20)) {
		n = 2;
		cp = c & 0x1f;
	} else if (!(c & 0x10)) {
		n = 3;
		cp = c & 0x0f;
	} else if (!(c & 0x08)) {
		n = 4;
		cp = c & 0x07;
	} else {
		n = 0;
		cp = 0;
	}
	if (n == 0 || o + n > len)
		goto bad;
	for (size_t k = 1; k < n; k++) {
		if ((s[o + k] & 0xc0) != 0x80)
			goto bad;
		cp = (cp << 6) | (s[o + k] & 0x3f);
	}
	*i = o + n;
	return cp;
bad:
	*i = o + 1;
	return 0xFFFD;
}

size_t dk_utf8_encode(uint32_t cp, char *out)
{
	unsigned char *o = (unsigned char *)out;
	if (cp < 0x80) {
		o[0] = (unsigned char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (unsigned char)(0xc0 | (cp >> 6));
		o[1] = (unsigned char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (unsigned char)(0xe0 | (cp >> 12));
		o[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (unsigned char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (unsigned char)(0xf0 | ((cp >> 18) & 0x07));
	o[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (unsigned char)(0x80 | (cp & 0x3f));
	return 4;
}

/* GPT-2 keeps the printable Latin-1 bytes as themselves and moves the rest
 * (controls, space, DEL, NBSP, soft hyphen) to U+0100 upwards, in order. */
static bool byte_is_kept(unsigned b)
{
	return (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae);
}

uint32_t dk_unicode_byte_to_cp(uint8_t b)
{
	if (byte_is_kept(b))
		return b;
	unsigned n = 0;
	for (unsigned k = 0; k < b; k++)
		n += !byte_is_kept(k);
	return 256 + n;
}

int dk_unicode_cp_to_byte(uint32_t cp)
{
	if (cp < 256)
		return byte_is_kept(cp) ? (int)cp : -1;
	if (cp >= 256 + 68)
		return -1;
	unsigned n = cp - 256;
	for (unsigned k = 0; k < 256; k++)
		if (!byte_is_kept(k) && n-- == 0)
			return (int)k;
	return -1;
}

/* ---- pre-tokenizer names ---- */

struct pre_name {
	const char *name;
	enum dk_pretok pre;
	bool ignore_merges, add_bos;
};

static const struct pre_name pre_names[] = {
	{"default", DK_PRE_DEFAULT, false, false},
	{"llama3", DK_PRE_LLAMA3, true, true},
	{"llama-v3", DK_PRE_LLAMA3, true, true},
	{"llama-bpe", DK_PRE_LLAMA3, true, true},
	{"falcon3", DK_PRE_LLAMA3, true, true},
	{"falcon-h1", DK_PRE_LLAMA3, true, true},
	{"pixtral", DK_PRE_LLAMA3, true, true},
	{"midm-2.0", DK_PRE_LLAMA3, true, true},
	{"lfm2", DK_PRE_LLAMA3, true, true},
	{"dbrx", DK_PRE_LLAMA3, false, false},
	{"smaug-bpe", DK_PRE_LLAMA3, false, false},
	{"deepseek-llm", DK_PRE_DEEPSEEK_LLM, false, false},
	{"deepseek-coder", DK_PRE_DEEPSEEK_CODER, false, false},
	{"falcon", DK_PRE_FALCON, false, false},
	{"mpt", DK_PRE_GPT2, false, false},
	{"starcoder", DK_PRE_STARCODER, false, false},
	{"gpt-2", DK_PRE_GPT2, false, false},
	{"phi-2", DK_PRE_GPT2, false, false},
	{"jina-es", DK_PRE_GPT2, false, false},
	{"jina-de", DK_PRE_GPT2, false, false},
	{"gigachat", DK_PRE_GPT2, false, false},
	{"jina-v1-en", DK_PRE_GPT2, false, false},
	{"jina-v2-es", DK_PRE_GPT2, false, false},
	{"jina-v2-de", DK_PRE_GPT2, false, false},
	{"jina-v2-code", DK_PRE_GPT2, false, false},
	{"roberta-bpe", DK_PRE_GPT2, false, false},
	{"olmo", DK_PRE_GPT2, false, false},
	{"jais", DK_PRE_GPT2, false, false},
	{"trillion", DK_PRE_GPT2, false, false},
	{"refact", DK_PRE_STARCODER, false, false},
	{"command-r", DK_PRE_STARCODER, false, false},
	{"smollm", DK_PRE_STARCODER, false, false},
	{"codeshell", DK_PRE_STARCODER, false, false},
	{"exaone", DK_PRE_STARCODER, false, false},
	{"minerva-7b", DK_PRE_STARCODER, false, false},
	{"qwen2", DK_PRE_QWEN2, false, false},
	{"deepseek-r1-qwen", DK_PRE_QWEN2, false, false},
	{"stablelm2", DK_PRE_QWEN2, false, false},
	{"megrez", DK_PRE_QWEN2, false, false},
	{"hunyuan", DK_PRE_QWEN2, false, false},
	{"qwen35", DK_PRE_QWEN35, false, false},
	{"gpt-4o", DK_PRE_GPT4O, false, false},
	{"llama4", DK_PRE_GPT4O, false, false},
	{"chatglm-bpe", DK_PRE_CHATGLM4, false, false},
	{"viking", DK_PRE_VIKING, false, false},
	{"bloom", DK_PRE_BLOOM, false, false},
	{"poro-chat", DK_PRE_BLOOM, false, false},
	{"gpt3-finnish", DK_PRE_BLOOM, false, false},
};

bool dk_pretok_from_name(const char *name, size_t len, enum dk_pretok *out, bool *ignore_merges,
			 bool *add_bos)
{
	for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
		const struct pre_name *p = &pre_names[i];
		if (strlen(p->name) == len && !memcmp(p->name, name, len)) {
			*out = p->pre;
			if (p->ignore_merges)
				*ignore_merges = true;
			if (p->add_bos)
				*add_bos = true;
			return true;
		}
	}
	return false;
}

/* ---- splitting ---- */

static int push(uint32_t **a, size_t *n, size_t *cap, size_t v)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		uint32_t *p = realloc(*a, nc * sizeof *p);
		if (!p)
			return -1;
		*a = p;
		*cap = nc;
	}
	(*a)[(*n)++] = (uint32_t)v;
	return 0;
}

struct out {
	uint32_t **a;
	size_t *n, *cap;
	int err;
};

static void emit(struct out *o, size_t len)
{
	if (len && push(o->a, o->n, o->cap, len))
		o->err = -1;
}

/* Code-point views.  cls(): the class a \p{..} regex sees; ws(): \s. */
static inline unsigned cls(uint32_t c) { return dk_unicode_class(c); }
static inline bool ws(uint32_t c) { return dk_unicode_is_ws(c); }
static inline bool is_l(uint32_t c) { return cls(c) == DK_UC_L; }
static inline bool is_n(uint32_t c) { return cls(c) == DK_UC_N; }
static inline bool is_p(uint32_t c) { return cls(c) == DK_UC_P; }
static inline bool is_lm(uint32_t c) { unsigned k = cls(c); return k == DK_UC_L || k == DK_UC_M; }
/* What a regex with literal non-ASCII ranges sees. */
static inline uint32_t lit(uint32_t c) { return c > 0x7f && ws(c) ? 0x0b : c; }

static bool is_crlf(uint32_t c) { return c == '\r' || c == '\n'; }
static bool is_digit(uint32_t c) { return c >= '0' && c <= '9'; }

/* [\p{P}\$\+<=>\^~\|]  (falcon adds the backtick) */
static bool is_default_punct(uint32_t c)
{
	return is_p(c) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' ||
	       c == '~' || c == '|';
}
static bool is_falcon_punct(uint32_t c) { return is_default_punct(c) || c == '`'; }

/* [一-龥ࠀ-一가-퟿] */
static bool is_cjk(uint32_t c)
{
	c = lit(c);
	return (c >= 0x4e00 && c <= 0x9fa5) || (c >= 0x0800 && c <= 0x4e00) ||
	       (c >= 0xac00 && c <= 0xd7ff);
}

/* deepseek-llm's letter class, as code-point ranges. */
static const uint32_t ds_letters[][2] = {
	{0x41, 0x5a}, {0x61, 0x7a}, {0xb5, 0xb5}, {0xc0, 0xd6}, {0xd8, 0xf6}, {0xf8, 0x1ba},
	{0x1bc, 0x1bf}, {0x1c4, 0x293}, {0x295, 0x2af}, {0x370, 0x373}, {0x376, 0x377},
	{0x37b, 0x37d}, {0x37f, 0x37f}, {0x386, 0x386}, {0x388, 0x38a}, {0x38c, 0x38c},
	{0x38e, 0x3a1}, {0x3a3, 0x3f5}, {0x3f7, 0x481}, {0x48a, 0x52f}, {0x531, 0x556},
	{0x10a0, 0x10c5}, {0x13a0, 0x13f5}, {0x13f8, 0x13fd}, {0x1c90, 0x1cba}, {0x1cbd, 0x1cbf},
	{0x1d00, 0x1d2b}, {0x1d6b, 0x1d77}, {0x1d79, 0x1d9a}, {0x1e00, 0x1f15}, {0x1f18, 0x1f1d},
	{0x1f20, 0x1f45}, {0x1f48, 0x1f4d}, {0x1f50, 0x1f57}, {0x1f59, 0x1f59}, {0x1f5b, 0x1f5b},
	{0x1f5d, 0x1f5d}, {0x1f5f, 0x1f7d}, {0x1f80, 0x1fb4}, {0x1fb6, 0x1fbc}, {0x1fbe, 0x1fbe},
	{0x1fc2, 0x1fc4}, {0x1fc6, 0x1fcc}, {0x1fd0, 0x1fd3}, {0x1fd6, 0x1fdb}, {0x1fe0, 0x1fec},
	{0x1ff2, 0x1ff4}, {0x1ff6, 0x1ffc}, {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210a, 0x2113},
	{0x2115, 0x2115}, {0x2119, 0x211d}, {0x2124, 0x2124}, {0x2126, 0x2126}, {0x2128, 0x2128},
	{0x212a, 0x212d}, {0x212f, 0x2134}, {0x2139, 0x2139}, {0x213c, 0x213f}, {0x2145, 0x2149},
	{0x214e, 0x214e}, {0x2183, 0x2184}, {0x2c00, 0x2c7b}, {0x2c7e, 0x2ce4}, {0x2ceb, 0x2cee},
	{0x2cf2, 0x2cf3}, {0xa640, 0xa66d}, {0xa680, 0xa69b}, {0xa722, 0xa76f}, {0xa771, 0xa787},
	{0xa78b, 0xa78e}, {0xab70, 0xabbf}, {0xfb00, 0xfb06}, {0xfb13, 0xfb17}, {0xff21, 0xff3a},
	{0xff41, 0xff5a}, {0x10400, 0x1044f}, {0x104b0, 0x104d3}, {0x104d8, 0x104fb},
	{0x10c80, 0x10cb2}, {0x10cc0, 0x10cf2}, {0x118a0, 0x118df}, {0x1e900, 0x1e943},
};

static bool is_ds_letter(uint32_t c)
{
	c = lit(c);
	size_t lo = 0, hi = sizeof ds_letters / sizeof ds_letters[0];
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (c < ds_letters[mid][0])
			hi = mid;
		else if (c > ds_letters[mid][1])
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* [!-/:-~！-／：-～‘-‟　-。] */
static bool is_ds_punct(uint32_t c)
{
	c = lit(c);
	return (c >= 0x21 && c <= 0x2f) || (c >= 0x3a && c <= 0x7e) || (c >= 0xff01 && c <= 0xff0f) ||
	       (c >= 0xff1a && c <= 0xff5e) || (c >= 0x2018 && c <= 0x201f) ||
	       (c >= 0x3000 && c <= 0x3002);
}

/* [^(\s|.,!?…。，、।۔،)] */
static bool is_bloom_word(uint32_t c)
{
	c = lit(c);
	if (ws(c))
		return false;
	switch (c) {
	case '(': case ')': case '|': case '.': case ',': case '!': case '?':
	case 0x2026: case 0x3002: case 0xff0c: case 0x3001: case 0x0964: case 0x06d4: case 0x060c:
		return false;
	default:
		return true;
	}
}

static bool is_space(uint32_t c) { return c == ' '; }

/* A regex of the form  PFX? RUN{min,max}  (PFX optional, max 0 = no limit),
 * applied to one chunk: matches and the gaps between them become words. */
struct simple_re {
	bool (*pfx)(uint32_t);
	bool (*run)(uint32_t);
	size_t min, max;
};

static size_t simple_match(const struct simple_re *re, const uint32_t *c, size_t p, size_t e)
{
	size_t q = p;
	if (!re->run(c[q])) {
		if (!re->pfx || !re->pfx(c[q]) || q + 1 >= e || !re->run(c[q + 1]))
			return 0;
		q++;
	}
	size_t k = 0;
	while (q + k < e && re->run(c[q + k]) && (!re->max || k < re->max))
		k++;
	if (k < re->min)
		return 0;
	return q + k - p;
}

static void split_simple(const struct simple_re *re, const uint32_t *c, size_t s, size_t e,
			 struct out *o)
{
	size_t gap = s;
	for (size_t p = s; p < e;) {
		size_t m = simple_match(re, c, p, e);
		if (!m) {
			p++;
			continue;
		}
		emit(o, p - gap);
		emit(o, m);
		p += m;
		gap = p;
	}
	emit(o, e - gap);
}

/* \s+$ : the chunk's trailing white space. */
static void split_trailing_ws(const uint32_t *c, size_t s, size_t e, struct out *o)
{
	size_t t = e;
	while (t > s && ws(lit(c[t - 1])))
		t--;
	emit(o, t - s);
	emit(o, e - t);
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S) */
static void split_gpt2(const uint32_t *c, size_t s, size_t e, struct out *o)
{
	size_t prev = s;
#define TOK(end) do { emit(o, (end) - prev); prev = (end); } while (0)
	for (size_t p = s; p < e;) {
		uint32_t cp = c[p];
		if (cp == '\'' && p + 1 < e) {
			uint32_t n1 = c[p + 1];
			if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
				p += 2;
				TOK(p);
				continue;
			}
			if (p + 2 < e) {
				uint32_t n2 = c[p + 2];
				if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
				    (n1 == 'l' && n2 == 'l')) {
					p += 3;
					TOK(p);
					continue;
				}
			}
		}
		/* the class that decides, looking past one optional space */
		size_t q = (cp == ' ' && p + 1 < e) ? p + 1 : p;
		bool past_space = cp == ' ';
		if (past_space && p + 1 >= e) {
			/* a lone trailing space: only \s+ can take it */
		} else {
			uint32_t d = c[q];
			if (is_l(d)) {
				p = q;
				while (p < e && is_l(c[p]))
					p++;
				TOK(p);
				continue;
			}
			if (is_n(d)) {
				p = q;
				while (p < e && is_n(c[p]))
					p++;
				TOK(p);
				continue;
			}
			if (!ws(d)) {
				p = q;
				while (p < e && !ws(c[p]) && !is_l(c[p]) && !is_n(c[p]))
					p++;
				TOK(p);
				continue;
			}
		}
		size_t nws = 0;
		while (p + nws < e && ws(c[p + nws]))
			nws++;
		if (nws > 1 && p + nws < e) {
			p += nws - 1;
			TOK(p);
			continue;
		}
		if (nws > 0) {
			p += nws;
			TOK(p);
			continue;
		}
		p++;
		TOK(p);
	}
#undef TOK
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}
 *   | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * with D = max_digits; marks=true reads \p{L} as [\p{L}\p{M}] (qwen35). */
static void split_llama3(const uint32_t *c, size_t s, size_t e, size_t max_digits, bool marks,
			 struct out *o)
{
	size_t prev = s;
	bool (*letter)(uint32_t) = marks ? is_lm : is_l;
#define TOK(end) do { emit(o, (end) - prev); prev = (end); } while (0)
	for (size_t p = s; p < e;) {
		uint32_t cp = c[p];
		if (cp == '\'' && p + 1 < e) {
			uint32_t n1 = c[p + 1] | (c[p + 1] < 0x80 ? 0x20 : 0);
			if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd') {
				p += 2;
				TOK(p);
				continue;
			}
			if (p + 2 < e) {
				uint32_t n2 = c[p + 2] | (c[p + 2] < 0x80 ? 0x20 : 0);
				if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
				    (n1 == 'l' && n2 == 'l')) {
					p += 3;
					TOK(p);
					continue;
				}
			}
		}
		if (!is_crlf(cp) && !is_n(cp)) {
			/* cp is a letter, or a valid one-character prefix */
			if (letter(cp) || (p + 1 < e && letter(c[p + 1]))) {
				p++;
				while (p < e && letter(c[p]))
					p++;
				TOK(p);
				continue;
			}
		}
		if (is_n(cp)) {
			size_t k = 0;
			while (p < e && is_n(c[p]) && k < max_digits) {
				p++;
				k++;
			}
			TOK(p);
			continue;
		}
		{
			size_t q = p;
			if (cp == ' ' && p + 1 < e)
				q = p + 1;
			uint32_t d = c[q];
			if (!(cp == ' ' && p + 1 >= e) && !ws(d) && !letter(d) && !is_n(d)) {
				p = q;
				while (p < e && !ws(c[p]) && !letter(c[p]) && !is_n(c[p]))
					p++;
				while (p < e && is_crlf(c[p]))
					p++;
				TOK(p);
				continue;
			}
		}
		size_t nws = 0, last_nl = 0;
		while (p + nws < e && ws(c[p + nws])) {
			if (is_crlf(c[p + nws]))
				last_nl = p + nws + 1;
			nws++;
		}
		if (last_nl) {
			p = last_nl;
			TOK(p);
			continue;
		}
		if (nws > 1 && p + nws < e) {
			p += nws - 1;
			TOK(p);
			continue;
		}
		if (nws > 0) {
			p += nws;
			TOK(p);
			continue;
		}
		p++;
		TOK(p);
	}
#undef TOK
}

/* GPT-4o's letters: "upper" is a letter other than a-z, "lower" one other
 * than A-Z (so a letter outside ASCII is both, as the regex's
 * (?=\p{L})[^a-z] and (?=\p{L})[^A-Z] read it). */
static bool is_up(uint32_t c) { return is_l(c) && !(c >= 'a' && c <= 'z'); }
static bool is_lo(uint32_t c) { return is_l(c) && !(c >= 'A' && c <= 'Z'); }

/* The end of an optional '[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD]
 * at p (p when there is none). */
static size_t contraction_end(const uint32_t *c, size_t p, size_t e)
{
	if (p + 1 >= e || c[p] != '\'')
		return p;
	uint32_t n1 = c[p + 1] < 0x80 ? c[p + 1] | 0x20 : 0;
	if (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')
		return p + 2;
	if (p + 2 < e) {
		uint32_t n2 = c[p + 2] < 0x80 ? c[p + 2] | 0x20 : 0;
		if ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') || (n1 == 'l' && n2 == 'l'))
			return p + 3;
	}
	return p;
}

/* upper* lower+ contraction? from q, backtracking as the regex does: the
 * end, or 0 when it does not match. */
static size_t gpt4o_word_a(const uint32_t *c, size_t q, size_t e)
{
	size_t u = q;
	while (u < e && is_up(c[u]))
		u++;
	size_t j = u;
	if (!(u < e && is_lo(c[u]))) {
		/* upper* gives back letters until lower+ can start */
		while (j > q && !is_lo(c[j - 1]))
			j--;
		if (j == q)
			return 0;
		j--;
	}
	while (j < e && is_lo(c[j]))
		j++;
	return contraction_end(c, j, e);
}

/* upper+ lower* contraction? from q: the end, or 0. */
static size_t gpt4o_word_b(const uint32_t *c, size_t q, size_t e)
{
	if (q >= e || !is_up(c[q]))
		return 0;
	size_t u = q;
	while (u < e && is_up(c[u]))
		u++;
	while (u < e && is_lo(c[u]))
		u++;
	return contraction_end(c, u, e);
}

/* [^\r\n\p{L}\p{N}]?(?:upper*lower+|upper+lower*)(?:'s|'t|'re|'ve|'m|'ll|'d)?
 *   |\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
 * (GPT-4o, Phi-4-mini, Llama 4; contractions case-sensitive as [sS]) */
static void split_gpt4o(const uint32_t *c, size_t s, size_t e, struct out *o)
{
	size_t prev = s;
#define TOK(end) do { emit(o, (end) - prev); prev = (end); } while (0)
	for (size_t p = s; p < e;) {
		uint32_t cp = c[p];
		/* the words, with the one-character prefix tried first */
		size_t q = !is_crlf(cp) && !is_l(cp) && !is_n(cp) ? p + 1 : p;
		size_t z = 0;
		if (q < e && is_l(c[q])) {
			z = gpt4o_word_a(c, q, e);
			if (!z)
				z = gpt4o_word_b(c, q, e);
		}
		if (z) {
			p = z;
			TOK(p);
			continue;
		}
		if (is_n(cp)) {
			size_t k = 0;
			while (p < e && is_n(c[p]) && k < 3) {
				p++;
				k++;
			}
			TOK(p);
			continue;
		}
		{
			size_t r = p;
			if (cp == ' ' && p + 1 < e)
				r = p + 1;
			uint32_t d = c[r];
			if (!(cp == ' ' && p + 1 >= e) && !ws(d) && !is_l(d) && !is_n(d)) {
				p = r;
				while (p < e && !ws(c[p]) && !is_l(c[p]) && !is_n(c[p]))
					p++;
				while (p < e && (is_crlf(c[p]) || c[p] == '/'))
					p++;
				TOK(p);
				continue;
			}
		}
		size_t nws = 0, last_nl = 0;
		while (p + nws < e && ws(c[p + nws])) {
			if (is_crlf(c[p + nws]))
				last_nl = p + nws + 1;
			nws++;
		}
		if (last_nl) {
			p = last_nl;
			TOK(p);
			continue;
		}
		if (nws > 1 && p + nws < e) {
			p += nws - 1;
			TOK(p);
			continue;
		}
		if (nws > 0) {
			p += nws;
			TOK(p);
			continue;
		}
		p++;
		TOK(p);
	}
#undef TOK
}

enum stage_kind { ST_SIMPLE, ST_GPT2, ST_LLAMA3, ST_QWEN2, ST_QWEN35, ST_GPT4O, ST_TRAILING_WS };

struct stage {
	enum stage_kind kind;
	struct simple_re re;
};

#define SIMPLE(p, r, mn, mx) {ST_SIMPLE, {p, r, mn, mx}}
#define CUSTOM(k) {k, {NULL, NULL, 0, 0}}

static const struct stage st_default[] = {
	SIMPLE(NULL, is_default_punct, 1, 0), CUSTOM(ST_GPT2), SIMPLE(NULL, is_n, 1, 0),
	SIMPLE(NULL, is_digit, 3, 3)};
static const struct stage st_gpt2[] = {CUSTOM(ST_GPT2)};
static const struct stage st_llama3[] = {CUSTOM(ST_LLAMA3)};
static const struct stage st_qwen2[] = {CUSTOM(ST_QWEN2)};
static const struct stage st_qwen35[] = {CUSTOM(ST_QWEN35)};
static const struct stage st_gpt4o[] = {CUSTOM(ST_GPT4O)};
static const struct stage st_ds_llm[] = {
	SIMPLE(NULL, is_crlf, 1, 1), SIMPLE(ws, is_ds_letter, 1, 0), SIMPLE(ws, is_ds_punct, 1, 0),
	CUSTOM(ST_TRAILING_WS), SIMPLE(NULL, is_cjk, 1, 0), SIMPLE(NULL, is_n, 1, 0)};
static const struct stage st_ds_coder[] = {
	SIMPLE(NULL, is_crlf, 1, 1), SIMPLE(ws, is_l, 1, 0), SIMPLE(ws, is_p, 1, 0),
	SIMPLE(NULL, is_cjk, 1, 0), SIMPLE(NULL, is_n, 1, 1)};
static const struct stage st_falcon[] = {
	SIMPLE(NULL, is_falcon_punct, 1, 0), CUSTOM(ST_GPT2), SIMPLE(NULL, is_digit, 3, 3)};
static const struct stage st_starcoder[] = {SIMPLE(NULL, is_n, 1, 1), CUSTOM(ST_GPT2)};
static const struct stage st_viking[] = {SIMPLE(is_space, is_bloom_word, 1, 0),
					 SIMPLE(NULL, is_n, 1, 1)};
static const struct stage st_bloom[] = {SIMPLE(is_space, is_bloom_word, 1, 0)};

#define STAGES(a) a, sizeof a / sizeof a[0]

int dk_pretokenize(enum dk_pretok pre, const uint32_t *cps, size_t n, struct dk_pretok_buf *b)
{
	const struct stage *st;
	size_t nst;
	switch (pre) {
	case DK_PRE_GPT2: st = st_gpt2; nst = 1; break;
	case DK_PRE_LLAMA3: case DK_PRE_CHATGLM4: st = st_llama3; nst = 1; break;
	case DK_PRE_QWEN2: st = st_qwen2; nst = 1; break;
	case DK_PRE_QWEN35: st = st_qwen35; nst = 1; break;
	case DK_PRE_GPT4O: st = st_gpt4o; nst = 1; break;
	case DK_PRE_DEEPSEEK_LLM: st = st_ds_llm; nst = sizeof st_ds_llm / sizeof *st; break;
	case DK_PRE_DEEPSEEK_CODER: st = st_ds_coder; nst = sizeof st_ds_coder / sizeof *st; break;
	case DK_PRE_FALCON: st = st_falcon; nst = sizeof st_falcon / sizeof *st; break;
	case DK_PRE_STARCODER: st = st_starcoder; nst = sizeof st_starcoder / sizeof *st; break;
	case DK_PRE_VIKING: st = st_viking; nst = sizeof st_viking / sizeof *st; break;
	case DK_PRE_BLOOM: st = st_bloom; nst = 1; break;
	case DK_PRE_DEFAULT:
	default: st = st_default; nst = sizeof st_default / sizeof *st; break;
	}
	b->nlens = 0;
	if (n == 0)
		return 0;
	if (push(&b->lens, &b->nlens, &b->caplens, n))
		return -1;
	for (size_t k = 0; k < nst; k++) {
		b->ntmp = 0;
		struct out o = {&b->tmp, &b->ntmp, &b->captmp, 0};
		size_t s = 0;
		for (size_t i = 0; i < b->nlens && !o.err; i++) {
			size_t e = s + b->lens[i];
			switch (st[k].kind) {
			case ST_SIMPLE: split_simple(&st[k].re, cps, s, e, &o); break;
			case ST_GPT2: split_gpt2(cps, s, e, &o); break;
			case ST_LLAMA3: split_llama3(cps, s, e, 3, false, &o); break;
			case ST_QWEN2: split_llama3(cps, s, e, 1, false, &o); break;
			case ST_QWEN35: split_llama3(cps, s, e, 1, true, &o); break;
			case ST_GPT4O: split_gpt4o(cps, s, e, &o); break;
			case ST_TRAILING_WS: split_trailing_ws(cps, s, e, &o); break;
			}
			s = e;
		}
		if (o.err)
			return -1;
		uint32_t *t = b->lens;
		size_t tc = b->caplens;
		b->lens = b->tmp;
		b->caplens = b->captmp;
		b->nlens = b->ntmp;
		b->tmp = t;
		b->captmp = tc;
	}
	return 0;
}

void dk_pretok_buf_free(struct dk_pretok_buf *b)
{
	if (!b)
		return;
	free(b->lens);
	free(b->tmp);
	memset(b, 0, sizeof *b);
}
