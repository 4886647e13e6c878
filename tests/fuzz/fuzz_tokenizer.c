/* Tokenizers on arbitrary bytes: no crash, ids in range, the capacity
 * protocol holds, pre-tokenizers cover their input exactly, and for valid
 * UTF-8 the byte-level BPE tokenizers give the text back unchanged.
 *
 * The first input byte picks the vocabulary and flags; the rest is text.
 * Vocabularies come from $DK_SHARED (ctest sets it); without it only the
 * pre-tokenizers are exercised. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/gguf.h"
#include "docket/tokenizer.h"
#include "engine/text/unicode.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const vocab_files[] = {
	"models/stories260K.gguf",        "vocab/ggml-vocab-gpt-2.gguf",
	"vocab/ggml-vocab-qwen2.gguf",    "vocab/ggml-vocab-deepseek-llm.gguf",
	"vocab/ggml-vocab-mpt.gguf",      "vocab/ggml-vocab-phi-3.gguf",
};
enum { NV = sizeof vocab_files / sizeof vocab_files[0] };
static struct dk_gguf *gg[NV];
static struct dk_tokenizer *tk[NV];
static int loaded;

static void load_all(void)
{
	loaded = 1;
	const char *sh = getenv("DK_SHARED");
	if (!sh || !*sh)
		return;
	for (int i = 0; i < NV; i++) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", sh, vocab_files[i]);
		if (dk_gguf_open(&gg[i], path) != DK_OK || dk_tokenizer_new(&tk[i], gg[i]) != DK_OK) {
			dk_tokenizer_free(tk[i]);
			dk_gguf_free(gg[i]);
			tk[i] = NULL;
			gg[i] = NULL;
		}
	}
}

static bool valid_utf8(const uint8_t *s, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t j = i;
		uint32_t cp = dk_utf8_decode((const char *)s, n, &j);
		if (cp == 0xFFFD && !(j - i == 3 && s[i] == 0xEF))
			return false;
		if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		char enc[4];
		if (dk_utf8_encode(cp, enc) != j - i)
			return false; /* overlong */
		i = j;
	}
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loaded)
		load_all();
	if (size < 1)
		return 0;
	uint8_t sel = data[0];
	const char *text = (const char *)data + 1;
	size_t len = size - 1;

	/* every pre-tokenizer: words are non-empty and tile the input */
	uint32_t *cps = malloc((len + 1) * sizeof *cps);
	size_t n = 0;
	for (size_t i = 0; i < len;)
		cps[n++] = dk_utf8_decode(text, len, &i);
	struct dk_pretok_buf pb = {0};
	for (int p = DK_PRE_DEFAULT; p <= DK_PRE_BLOOM; p++) {
		if (dk_pretokenize((enum dk_pretok)p, cps, n, &pb))
			abort();
		size_t sum = 0;
		for (size_t k = 0; k < pb.nlens; k++) {
			if (pb.lens[k] == 0)
				abort();
			sum += pb.lens[k];
		}
		if (sum != n)
			abort();
	}
	dk_pretok_buf_free(&pb);
	free(cps);

	struct dk_tokenizer *t = tk[(sel & 0x7f) % NV];
	if (!t)
		return 0;
	bool add_special = sel & 0x80, parse_special = (sel >> 3) & 1;
	int need = dk_tokenize(t, text, len, add_special, parse_special, NULL, 0);
	if (need > 0)
		abort(); /* capacity 0 can only hold nothing */
	need = -need;
	dk_token *ids = malloc(sizeof *ids * (size_t)(need + 1));
	if (dk_tokenize(t, text, len, add_special, parse_special, ids, need) != need)
		abort();
	int32_t nv = dk_tokenizer_n_vocab(t);
	struct dk_detok d;
	dk_detok_init(&d, t);
	size_t cap = 4 * len + 64, o = 0;
	char *back = malloc(cap);
	for (int i = 0; i < need; i++) {
		if (ids[i] < 0 || ids[i] >= nv)
			abort();
		int r = dk_detok_push(&d, ids[i], back + o, (int)(cap - o));
		if (r < 0)
			abort();
		o += (size_t)r;
	}
	int r = dk_detok_flush(&d, back + o, (int)(cap - o));
	if (r < 0)
		abort();
	o += (size_t)r;
	/* byte-level BPE without special parsing reproduces valid UTF-8 exactly */
	const char *m;
	size_t ml;
	bool bpe = dk_gguf_get_str(gg[(sel & 0x7f) % NV], "tokenizer.ggml.model", &m, &ml) &&
		   ml == 4 && !memcmp(m, "gpt2", 4);
	if (bpe && !add_special && !parse_special && valid_utf8(data + 1, len) &&
	    (o != len || memcmp(back, text, len)))
		abort();
	free(back);
	free(ids);
	return 0;
}
