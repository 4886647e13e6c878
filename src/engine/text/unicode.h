/*
 * Unicode support for the tokenizers: UTF-8 decoding the way llama.cpp does
 * it (so that invalid input tokenizes identically), per-code-point
 * category/White_Space flags from generated tables (unicode_data.c, made by
 * scripts/gen-unicode-tables.py), GPT-2's byte<->unicode mapping, and the
 * BPE pre-tokenizers: hand-written matchers equivalent to the regexes that
 * each tokenizer.ggml.pre names, run over code points.
 */
#ifndef DK_ENGINE_UNICODE_H
#define DK_ENGINE_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Low 3 bits: general-category class (0 = unassigned/unknown). */
enum {
	DK_UC_OTHER = 0, DK_UC_L = 1, DK_UC_N = 2, DK_UC_P = 3, DK_UC_M = 4,
	DK_UC_S = 5, DK_UC_Z = 6, DK_UC_C = 7,
	DK_UC_CLASS = 0x07,
	DK_UC_WS = 0x08, /* White_Space property */
};

extern const char dk_unicode_version[];
extern const uint16_t dk_unicode_stage1[0x110000 >> 8];
extern const uint8_t dk_unicode_stage2[][256];

static inline unsigned dk_unicode_flags(uint32_t cp)
{
	if (cp >= 0x110000)
		return DK_UC_OTHER;
	return dk_unicode_stage2[dk_unicode_stage1[cp >> 8]][cp & 0xff];
}
static inline unsigned dk_unicode_class(uint32_t cp) { return dk_unicode_flags(cp) & DK_UC_CLASS; }
static inline bool dk_unicode_is_ws(uint32_t cp) { return dk_unicode_flags(cp) & DK_UC_WS; }

/* Length of the UTF-8 sequence a lead byte announces, from its high nibble
 * (continuation bytes count as 1).  Not a validity check. */
static inline size_t dk_utf8_len(unsigned char c)
{
	static const unsigned char lut[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
	return lut[c >> 4];
}

/* Decodes one code point at s[*i] (len bytes total), advancing *i.  A
 * malformed sequence yields U+FFFD and advances one byte.  Overlong forms
 * and surrogates are accepted (as llama.cpp does). */
uint32_t dk_utf8_decode(const char *s, size_t len, size_t *i);
/* Encodes cp (up to 0x1FFFFF) into out (4 bytes); returns the length. */
size_t dk_utf8_encode(uint32_t cp, char *out);

/* GPT-2 byte-level mapping: byte b -> a printable code point. */
uint32_t dk_unicode_byte_to_cp(uint8_t b);
/* Inverse; -1 when cp is not the image of a byte. */
int dk_unicode_cp_to_byte(uint32_t cp);

/* ---- pre-tokenizers ---- */
enum dk_pretok {
	DK_PRE_DEFAULT,
	DK_PRE_GPT2,           /* gpt-2, mpt, olmo, jais, phi-2, ... */
	DK_PRE_LLAMA3,         /* llama-bpe, llama3, dbrx, smaug-bpe, ... */
	DK_PRE_QWEN2,          /* qwen2, stablelm2, megrez, ... */
	DK_PRE_QWEN35,
	DK_PRE_GPT4O,
	DK_PRE_DEEPSEEK_LLM,
	DK_PRE_DEEPSEEK_CODER,
	DK_PRE_FALCON,
	DK_PRE_STARCODER,      /* starcoder, refact, command-r, smollm, ... */
	DK_PRE_CHATGLM4,
	DK_PRE_VIKING,
	DK_PRE_BLOOM,          /* bloom, poro-chat, gpt3-finnish */
};

/* Maps a tokenizer.ggml.pre name to its pre-tokenizer; false if unknown.
 * *ignore_merges / *add_bos get the vocab defaults llama.cpp ties to the
 * name (left untouched otherwise). */
bool dk_pretok_from_name(const char *name, size_t len, enum dk_pretok *out, bool *ignore_merges,
			 bool *add_bos);

/* Splits cps[0..n) into words.  Word lengths (in code points, all > 0,
 * summing to n) are appended to *lens (grown as needed).
 * Free with dk_pretok_buf_free.  Returns 0, or -1 when memory
 * runs out. */
struct dk_pretok_buf {
	uint32_t *lens, *tmp;
	size_t nlens, caplens, ntmp, captmp;
};
int dk_pretokenize(enum dk_pretok p, const uint32_t *cps, size_t n, struct dk_pretok_buf *b);
void dk_pretok_buf_free(struct dk_pretok_buf *b);

#endif
