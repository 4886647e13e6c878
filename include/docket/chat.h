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
};

struct dk_chat_msg {
	const char *role;    /* "system", "user" or "assistant" */
	const char *content;
};

/* Family of a Jinja template text (NULL → DK_CHAT_UNKNOWN). */
enum dk_chat_family dk_chat_detect(const char *tmpl);
/* Family by name ("chatml", "llama2", "llama3", "mistral", "phi3", "gemma",
 * "zephyr", "raw"); DK_CHAT_UNKNOWN if the name is not known. */
enum dk_chat_family dk_chat_family_by_name(const char *name);
const char *dk_chat_family_name(enum dk_chat_family f);

/* Renders msgs; with add_assistant the text ends where the assistant's
 * reply begins.  bos is the model's BOS text when the family writes it
 * literally (llama2/mistral/gemma) — pass NULL when the tokenizer adds BOS
 * itself.  Returns a malloc'd NUL-terminated string (caller frees), or NULL
 * for DK_CHAT_UNKNOWN / out of memory. */
char *dk_chat_render(enum dk_chat_family f, const struct dk_chat_msg *msgs, size_t n,
		     bool add_assistant);

#endif
