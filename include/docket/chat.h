/*
 * Chat prompts: recognise the family of a model's tokenizer.chat_template
 * (a Jinja text) and render messages in that family's format.  docket does
 * not run Jinja: the common families are recognised by their markers and
 * rendered by code that is tested against the templates' known outputs.
 */
#ifndef DOCKET_CHAT_H
#define DOCKET_CHAT_H

#include <stdbool.h>
#include <stddef.h>

enum dk_chat_family {
	DK_CHAT_UNKNOWN = 0,
	DK_CHAT_CHATML,   /* <|im_start|>role\n...<|im_end|>\n  (SmolLM2, Qwen) */
	DK_CHAT_LLAMA2,   /* [INST] <<SYS>>...<</SYS>> ... [/INST] */
	DK_CHAT_LLAMA3,   /* <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|> */
	DK_CHAT_MISTRAL,  /* [INST] ... [/INST] without <<SYS>> */
	DK_CHAT_PHI3,     /* <|user|>\n...<|end|>\n<|assistant|>\n */
	DK_CHAT_GEMMA,    /* <start_of_turn>user\n...<end_of_turn>\n */
	DK_CHAT_ZEPHYR,   /* <|user|>\n...</s>\n<|assistant|>\n */
	DK_CHAT_RAW,      /* no template: contents concatenated */
	DK_CHAT_GRANITE,  /* <|start_of_role|>user<|end_of_role|>...<|end_of_text|>\n */
	DK_CHAT_PHI4,     /* <|user|>...<|end|><|assistant|>  (Phi-4-mini: no newlines) */
};

struct dk_chat_msg {
	const char *role;    /* "system", "user" or "assistant" */
	const char *content;
};

/* Family of a Jinja template text (NULL → DK_CHAT_UNKNOWN). */
enum dk_chat_family dk_chat_detect(const char *tmpl);
/* Family by name ("chatml", "llama2", "llama3", "mistral", "phi3", "phi4",
 * "gemma", "zephyr", "granite", "raw"); DK_CHAT_UNKNOWN if the name is not
 * known. */
enum dk_chat_family dk_chat_family_by_name(const char *name);
const char *dk_chat_family_name(enum dk_chat_family f);

/* Renders msgs; with add_assistant the text ends where the assistant's
 * reply begins.  Writes no leading BOS: for a tokenizer that adds BOS itself
 * (see dk_chat_render_ex for one that does not).  Returns a malloc'd
 * NUL-terminated string (caller frees), or NULL for DK_CHAT_UNKNOWN, a role
 * the family cannot express, or out of memory. */
char *dk_chat_render(enum dk_chat_family f, const struct dk_chat_msg *msgs, size_t n,
		     bool add_assistant);

/*
 * Per family, with S/U/A the system/user/assistant contents (and
 * add_assistant):
 *   chatml   <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n
 *            <|im_start|>assistant\n          (any role name is written as is)
 *   llama3   [BOS]<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>...
 *            <|start_header_id|>assistant<|end_header_id|>\n\n   (contents trimmed)
 *   llama2   [BOS][INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] U2 [/INST]
 *            (user and assistant contents stripped, as the Meta template does)
 *   mistral  [BOS][INST] S\n\nU [/INST]A</s>[INST] U2 [/INST]
 *            (the template has no system role: it joins the next user turn)
 *   phi3     [BOS]<|system|>\nS<|end|>\n<|user|>\nU<|end|>\n<|assistant|>\n
 *   phi4     <|system|>S<|end|><|user|>U<|end|><|assistant|>
 *   zephyr   <|system|>\nS</s>\n<|user|>\nU</s>\n<|assistant|>\n
 *   granite  <|start_of_role|>system<|end_of_role|>S<|end_of_text|>\n
 *            <|start_of_role|>user<|end_of_role|>U<|end_of_text|>\n
 *            <|start_of_role|>assistant<|end_of_role|>
 *            (Granite's template writes a dated default system turn when
 *            there is none; docket writes none: its records must not
 *            depend on the day)
 *   gemma    [BOS]<start_of_turn>user\nS\n\nU<end_of_turn>\n<start_of_turn>model\n
 *            (no system role: it joins the next user turn; contents trimmed)
 *   raw      contents joined by "\n"
 * [BOS] is written only when opts->bos is given.  The inner "<s>" of llama2
 * and the "</s>" after assistant turns are opts->bos / opts->eos, defaulting
 * to "<s>" / "</s>".  A system turn with no user turn after it (families
 * without a system role) is written as a user turn of its own.
 */
struct dk_chat_opts {
	/* Used as a first system turn when msgs has none (and n > 0), the way
	 * some templates insert one (see dk_chat_style); NULL: none. */
	const char *default_system;
	/* The model's BOS text, to be written literally where the family's
	 * template writes bos_token first: pass it when the tokenizer does NOT
	 * add BOS itself; NULL otherwise. */
	const char *bos;
	const char *eos; /* EOS text written after assistant turns; NULL: "</s>" */
};
/* dk_chat_render with options (NULL: as dk_chat_render). */
char *dk_chat_render_ex(enum dk_chat_family f, const struct dk_chat_msg *msgs, size_t n,
			bool add_assistant, const struct dk_chat_opts *opts);

/* What a template adds to its family's format. */
struct dk_chat_style {
	enum dk_chat_family family;
	/* The system text the template inserts when a conversation has none
	 * (ChatML variants: SmolLM2's "You are a helpful AI assistant named
	 * SmolLM, trained by Hugging Face", Qwen2's "You are a helpful
	 * assistant"), unescaped; malloc'd, NULL when the template has none. */
	char *default_system;
};
/* dk_chat_detect plus the variant details.  Returns st->family; clear st
 * with dk_chat_style_clear whatever the result. */
enum dk_chat_family dk_chat_detect_style(const char *tmpl, struct dk_chat_style *st);
void dk_chat_style_clear(struct dk_chat_style *st);

#endif
