/*
 * Grammar-constrained decoding.
 *
 * Three objects:
 *   - struct dk_grammar: a compiled grammar (from GBNF text, or from a JSON
 *     Schema through dk_schema_compile in docket/jsonschema.h).  Immutable
 *     once built: share it between sequences and threads.
 *   - struct dk_grammar_vocab: the byte string of every token plus the
 *     end-of-generation ids, arranged as a byte trie.  Built once per
 *     tokenizer, immutable, shareable.
 *   - struct dk_grammar_state: one per sequence.  Holds the parse position
 *     (a set of pushdown stacks) and its own scratch memory, so sequences of
 *     a batch are masked independently and may be handled from different
 *     threads, as long as each state is used by one thread at a time.
 *
 * GBNF text (the format llama.cpp users write):
 *   rule ::= alternative | alternative ...      (a rule may span lines)
 *   elements: "literal"  [a-z0-9_]  [^"\\]  .  rule-name  ( group )
 *   postfix:  *  +  ?  {m}  {m,}  {m,n}
 *   escapes in literals and classes: \n \r \t \\ \" \' \[ \] \- \^
 *     \xHH \uHHHH \UHHHHHHHH;  # starts a comment.
 * Characters are Unicode code points matched against UTF-8 bytes; a token
 * may end in the middle of a code point (the state remembers the partial
 * character).  Left recursion (a ::= a "x") is rejected when compiling.
 *
 * Masking: dk_grammar_apply walks the vocabulary trie against the state,
 * pruning a subtree at the first byte no stack can take, and sets the logit
 * of every token that cannot continue a valid output to -INFINITY.  Tokens
 * whose piece is empty (control tokens) are always masked, except the
 * end-of-generation ids, which are allowed exactly when the output so far is
 * a complete sentence of the grammar.
 *
 * Cost: each state memoises its parse states, their byte transitions and
 * their finished masks, so a state seen before (e.g. the inside of a JSON
 * string, which loops on itself) is masked from cache in ~0.05 ms on a 49k
 * vocabulary, and a trie subtree made only of bytes that loop is accepted
 * whole.  A bounded repetition (maxLength, x{0,80}) has a new state per
 * character and costs a walk (~1-3 ms on 49k tokens); dk_grammar_sample's
 * check-first path avoids most walks.  Memory: about n_vocab/8 * 256 bytes
 * of mask cache per state, plus its tables (rebuilt when they pass ~1M
 * stack nodes).
 */
#ifndef DOCKET_GRAMMAR_H
#define DOCKET_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"
#include "docket/tokenizer.h"

struct dk_grammar;
struct dk_grammar_vocab;
struct dk_grammar_state;

/* Compiles GBNF text (len bytes, need not be NUL-terminated) whose start
 * rule is named root (NULL: "root").  *out is set also on failure: read
 * dk_grammar_error (e.g. "line 3: undefined rule 'valu'"), then free. */
enum dk_status dk_grammar_parse(struct dk_grammar **out, const char *text, size_t len,
				const char *root);
/* Same, reading the text from a file (for --grammar FILE); messages are
 * prefixed with the path: "'x.gbnf': line 3: undefined rule 'valu'". */
enum dk_status dk_grammar_load_file(struct dk_grammar **out, const char *path, const char *root);
void dk_grammar_free(struct dk_grammar *g);
const char *dk_grammar_error(const struct dk_grammar *g);
/* Minimum number of bytes of any complete sentence (INT32_MAX/2 or more if
 * the grammar can never finish). */
int32_t dk_grammar_min_bytes(const struct dk_grammar *g);

/* A vocabulary from raw pieces: pieces[i] (lens[i] bytes, may hold NULs)
 * is what token i decodes to.  The strings are copied.  eog lists the
 * end-of-generation tokens (n_eog may be 0).  A piece of any length is
 * fine: the trie is built and walked with heap stacks, one frame per byte
 * of the longest piece (tokenizers cap pieces at DK_TOKEN_MAX_BYTES).
 * NULL when out of memory or when all pieces together pass 2 GiB. */
struct dk_grammar_vocab *dk_grammar_vocab_new(const char *const *pieces, const size_t *lens,
					      int32_t n_vocab, const dk_token *eog,
					      int32_t n_eog);
/* Same, from a tokenizer: pieces from dk_token_to_piece (special = false),
 * end-of-generation ids from dk_token_is_eog. */
struct dk_grammar_vocab *dk_grammar_vocab_from_tokenizer(const struct dk_tokenizer *t);
void dk_grammar_vocab_free(struct dk_grammar_vocab *v);
int32_t dk_grammar_vocab_size(const struct dk_grammar_vocab *v);
/* Borrowed piece of token id (length in *len); NULL if out of range. */
const char *dk_grammar_vocab_piece(const struct dk_grammar_vocab *v, dk_token id, size_t *len);
bool dk_grammar_vocab_is_eog(const struct dk_grammar_vocab *v, dk_token id);
/* Calls fn(ud, t) for every token t whose piece is a non-empty prefix of
 * p[0..n), shortest first (a walk down the trie: n steps at most). */
void dk_grammar_vocab_prefixes(const struct dk_grammar_vocab *v, const char *p, size_t n,
			       void (*fn)(void *ud, dk_token t), void *ud);

/* A fresh state at the start of g.  g and v are borrowed: keep them alive
 * until the state is freed.  NULL when out of memory. */
struct dk_grammar_state *dk_grammar_state_new(const struct dk_grammar *g,
					      const struct dk_grammar_vocab *v);
void dk_grammar_state_free(struct dk_grammar_state *s);
/* Back to the start of the grammar, keeping what the state has learnt
 * (its transition tables and cached masks): reuse one state per batch slot
 * across documents of the same grammar and later documents mask faster. */
void dk_grammar_state_reset(struct dk_grammar_state *s);
/* An independent copy (for forking a sequence); NULL when out of memory.
 * The copy starts with empty caches. */
struct dk_grammar_state *dk_grammar_state_clone(const struct dk_grammar_state *s);
const char *dk_grammar_state_error(const struct dk_grammar_state *s);

/*
 * Masks logits[n_vocab]: every token that cannot continue a valid output
 * becomes -INFINITY, the others are left as they were.
 *
 * budget: how many tokens may still be sampled, this one included (< 0: no
 * limit).  With a budget, a token is kept only if the shortest way to close
 * the grammar after it fits in budget - 1 tokens (counting one token per
 * byte, which is what a vocabulary with single-byte tokens guarantees), so
 * a run that follows the mask always ends complete before the budget runs
 * out.  If the budget is already too small for that, the plain mask is used
 * (the caller will then run out: finish_reason "length").
 *
 * Returns the number of tokens left allowed (0: nothing can follow; the
 * state is dead or finished), or -1 when the state hit an internal limit
 * (message in dk_grammar_state_error).
 */
int32_t dk_grammar_apply(struct dk_grammar_state *s, float *logits, int32_t budget);
/* The same decision for a single token (budget as above, < 0: none),
 * without touching logits.  Cheap (a few table lookups), which allows the
 * usual fast path: sample from the unmasked logits; if the token is
 * allowed take it, otherwise mask a copy of the logits with
 * dk_grammar_apply and sample again.  Without truncation (top-k/top-p)
 * this draws from exactly the masked distribution (rejection sampling);
 * greedy picks the same token either way.  Unlike dk_grammar_apply it
 * does not fall back when the budget is too small. */
bool dk_grammar_token_allowed(struct dk_grammar_state *s, dk_token t, int32_t budget);

/*
 * One constrained sampling step with the fast path above: samples from
 * logits with smp; if the grammar allows that token (within budget) it is
 * taken, otherwise the original logits are masked and sampled again.  The
 * chosen token is accepted into the state (not into smp: call
 * dk_sampler_accept).  logits[n_vocab] is scratch.  Returns the token, or
 * DK_TOKEN_NULL when nothing may follow (finished, dead, or an internal
 * limit: see dk_grammar_state_error).
 */
struct dk_sampler;
dk_token dk_grammar_sample(struct dk_grammar_state *s, struct dk_sampler *smp, float *logits,
			   int32_t budget);

/* Advances past token t.  An end-of-generation token is accepted when the
 * output is complete and finishes the state.  DK_SKIP: t is not allowed
 * here (state unchanged, message says why); DK_FATAL: internal limit. */
enum dk_status dk_grammar_accept_token(struct dk_grammar_state *s, dk_token t);
/* Advances past raw bytes (e.g. a forced prefix).  Same results. */
enum dk_status dk_grammar_accept_bytes(struct dk_grammar_state *s, const char *p, size_t n);

/* The bytes accepted so far form a complete sentence: EOG may come now. */
bool dk_grammar_is_complete(const struct dk_grammar_state *s);
/* More bytes may still follow (false once an EOG token was accepted). */
bool dk_grammar_can_continue(const struct dk_grammar_state *s);
bool dk_grammar_allows_eog(const struct dk_grammar_state *s);
/* An EOG token was accepted. */
bool dk_grammar_is_finished(const struct dk_grammar_state *s);
/* Fewest bytes that complete the output from here (0 when complete);
 * an upper bound on the tokens needed when the vocabulary has every
 * single-byte token.  Reserve this much of the generation budget. */
int32_t dk_grammar_min_bytes_to_close(const struct dk_grammar_state *s);

/* ---- classification helpers ---- */

/* GBNF text for a choice among labels: root ::= "l1" | "l2" | ...
 * Caller frees.  NULL when out of memory or n_labels < 1. */
char *dk_grammar_labels_gbnf(const char *const *labels, int32_t n_labels);

#endif
