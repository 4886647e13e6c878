/*
 * Tokenizers read from a GGUF vocabulary:
 *   - "llama": SentencePiece-style BPE over scores, with byte fallback
 *     (<0xNN> tokens) and the "▁" space marker;
 *   - "gpt2": byte-level BPE over merges, split first by the pre-tokenizer
 *     named in tokenizer.ggml.pre (gpt-2/default, llama-bpe, qwen2, smollm,
 *     deepseek-llm, deepseek-coder, falcon, starcoder, refact, mpt,
 *     command-r, ...).
 * Output matches llama.cpp's tokenizer token for token.
 *
 * The tokenizer borrows strings from the dk_gguf it was built from: keep the
 * gguf open for the tokenizer's lifetime.
 */
#ifndef DOCKET_TOKENIZER_H
#define DOCKET_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/gguf.h"

typedef int32_t dk_token;
#define DK_TOKEN_NULL ((dk_token)-1)

/* Token attributes (tokenizer.ggml.token_type). */
enum dk_token_kind {
	DK_TOK_NORMAL = 1, DK_TOK_UNKNOWN = 2, DK_TOK_CONTROL = 3,
	DK_TOK_USER_DEFINED = 4, DK_TOK_UNUSED = 5, DK_TOK_BYTE = 6,
};

struct dk_tokenizer;

/* Longest token text a vocabulary may hold.  Real vocabularies stay far
 * below it (the longest in llama.cpp's test vocabularies, command-r's and
 * mpt's runs of 512 spaces, are 1024 bytes), and every consumer of pieces
 * (grammar tries, detokenizer buffers, special-token matching) then has a
 * known bound.  A longer token is taken for a damaged or hostile file: the
 * tokenizer refuses to load, naming the file and the token ("cannot load
 * tokenizer from 'x.gguf': token 5012 is 307200 bytes (limit 4096)"),
 * rather than drop it silently and generate differently from llama.cpp. */
#define DK_TOKEN_MAX_BYTES 4096

/* Builds from a gguf's tokenizer.* metadata; *out set also on failure
 * (read dk_tokenizer_error, then free).  g is borrowed for the lifetime. */
enum dk_status dk_tokenizer_new(struct dk_tokenizer **out, const struct dk_gguf *g);
void dk_tokenizer_free(struct dk_tokenizer *t);
const char *dk_tokenizer_error(const struct dk_tokenizer *t);

/* Tokenizes len bytes of text into out (capacity max).
 * add_special: add BOS/EOS as the vocab's add_bos_token/add_eos_token say.
 * parse_special: text spelling a control/user-defined token (e.g.
 * "<|im_start|>") becomes that token; otherwise it is plain text.
 * Returns the number of tokens; when more than max are needed, returns
 * -(needed) and writes nothing useful. */
int dk_tokenize(const struct dk_tokenizer *t, const char *text, size_t len, bool add_special,
		bool parse_special, dk_token *out, int max);

/* The bytes a token stands for (byte tokens decoded, "▁" → ' ', gpt2
 * byte-unicode mapped back).  Control tokens give "" unless special is
 * true, then their text.  Returns the length; -(needed) if n is too small. */
int dk_token_to_piece(const struct dk_tokenizer *t, dk_token id, char *buf, int n, bool special);
/* The token's raw vocabulary string (borrowed, length in *len). */
const char *dk_token_text(const struct dk_tokenizer *t, dk_token id, size_t *len);
enum dk_token_kind dk_token_kind(const struct dk_tokenizer *t, dk_token id);
float dk_token_score(const struct dk_tokenizer *t, dk_token id);

int32_t dk_tokenizer_n_vocab(const struct dk_tokenizer *t);
dk_token dk_tokenizer_bos(const struct dk_tokenizer *t); /* DK_TOKEN_NULL if none */
dk_token dk_tokenizer_eos(const struct dk_tokenizer *t);
dk_token dk_tokenizer_eot(const struct dk_tokenizer *t); /* end of turn, e.g. <|im_end|> */
bool dk_tokenizer_add_bos(const struct dk_tokenizer *t);
/* True for tokens that end generation (eos, eot, and the like). */
bool dk_token_is_eog(const struct dk_tokenizer *t, dk_token id);
/* Looks a token up by its exact vocabulary text; DK_TOKEN_NULL if absent. */
dk_token dk_tokenizer_find(const struct dk_tokenizer *t, const char *text, size_t len);

/*
 * Streaming detokenizer: feed tokens one at a time and get back only
 * complete UTF-8; an incomplete sequence split across tokens is held until
 * it completes (or flushed as is by dk_detok_flush).  SPM's leading space of
 * the first token after BOS is kept (llama.cpp keeps it too).
 */
struct dk_detok {
	const struct dk_tokenizer *tok;
	char pending[8];
	int npending;
};
void dk_detok_init(struct dk_detok *d, const struct dk_tokenizer *t);
/* Appends the complete bytes for id to out (capacity n); returns bytes
 * written, or -(needed). */
int dk_detok_push(struct dk_detok *d, dk_token id, char *out, int n);
int dk_detok_flush(struct dk_detok *d, char *out, int n);

#endif
