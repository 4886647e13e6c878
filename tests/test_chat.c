/* chat: family detection on realistic template texts (and the real ones in
 * shared/vocab and the default model), rendering of every family against
 * the strings their Jinja templates produce. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/chat.h"
#include "docket/gguf.h"
#include "testutil.h"

/* ---- fixtures: template texts as the families publish them ---- */

/* SmolLM2-Instruct (the default model's template) */
static const char T_SMOLLM2[] =
	"{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
	"{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
	"Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
	"message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\n' }}{% endif %}";

/* plain ChatML (OpenHermes, Dolphin), stored with escaped newlines */
static const char T_CHATML[] =
	"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
	"message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|im_start|>assistant\\n' }}{% endif %}";

/* Qwen2.5-style: system built from messages[0] in one branch, a fixed
 * default in the other, with an escaped quote inside the literal */
static const char T_QWEN25[] =
	"{%- if messages[0]['role'] == 'system' %}\n"
	"    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
	"{%- else %}\n"
	"    {{- '<|im_start|>system\\nYou are Qwen, created by Alibaba Cloud. You\\'re a helpful "
	"assistant.<|im_end|>\\n' }}\n"
	"{%- endif %}\n"
	"{%- for message in messages %}{%- if not (message.role == 'system' and loop.first) %}"
	"{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}"
	"{%- endif %}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}"
	"{%- endif %}\n";

/* Meta-Llama-3-8B-Instruct */
static const char T_LLAMA3[] =
	"{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
	"'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | "
	"trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}"
	"{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}"
	"{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

/* Llama-2-7b-chat-hf */
static const char T_LLAMA2[] =
	"{% if messages[0]['role'] == 'system' %}{% set loop_messages = messages[1:] %}{% set "
	"system_message = messages[0]['content'] %}{% else %}{% set loop_messages = messages %}"
	"{% set system_message = false %}{% endif %}{% for message in loop_messages %}{% if "
	"(message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation "
	"roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if loop.index0 "
	"== 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
	"'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] "
	"%}{% endif %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() "
	"+ ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ ' '  + content.strip() + ' ' "
	"+ eos_token }}{% endif %}{% endfor %}";

/* Mistral-7B-Instruct-v0.1 */
static const char T_MISTRAL[] =
	"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') != "
	"(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
	"user/assistant/user/assistant/...') }}{% endif %}{% if message['role'] == 'user' %}"
	"{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
	"%}{{ message['content'] + eos_token}}{% else %}{{ raise_exception('Only user and "
	"assistant roles are supported!') }}{% endif %}{% endfor %}";

/* Phi-3-mini-4k-instruct */
static const char T_PHI3[] =
	"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
	"message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
	"message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}"
	"{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if "
	"add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";

/* zephyr-7b-beta (stored with real newlines between the tags) */
static const char T_ZEPHYR[] =
	"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\n' + "
	"message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n"
	"{{ '<|system|>\n' + message['content'] + eos_token }}\n{% elif message['role'] == "
	"'assistant' %}\n{{ '<|assistant|>\n'  + message['content'] + eos_token }}\n{% endif %}\n"
	"{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n"
	"{% endfor %}";

/* gemma-2b-it */
static const char T_GEMMA[] =
	"{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role "
	"not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == "
	"'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must "
	"alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == "
	"'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}"
	"{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + "
	"'<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}"
	"{{'<start_of_turn>model\n'}}{% endif %}";

/* Phi-4-mini-instruct: no newline after the role tags */
static const char T_PHI4[] =
	"{% for message in messages %}{% if message['role'] == 'system' and 'tools' in message and "
	"message['tools'] is not none %}{{ '<|' + message['role'] + '|>' + message['content'] + "
	"'<|tool|>' + message['tools'] + '<|/tool|>' + '<|end|>' }}{% else %}{{ '<|' + "
	"message['role'] + '|>' + message['content'] + '<|end|>' }}{% endif %}{% endfor %}{% if "
	"add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}";

/* granite-3.3-2b-instruct, its message loop (the default system turn it
 * builds before is dated, see chat.h) */
static const char T_GRANITE[] =
	"{%- for message in loop_messages %}\n     {{- '<|start_of_role|>' + message['role'] + "
	"'<|end_of_role|>' + message['content'] + '<|end_of_text|>\n' }}\n     {%- if loop.last "
	"and add_generation_prompt %}\n         {{- '<|start_of_role|>assistant' }}\n"
	"{%- if controls %}{{- ' ' + controls | tojson()}}{%- endif %}\n"
	"{{- '<|end_of_role|>' }}\n     {%- endif %}\n {%- endfor %}";

/* Qwen3-0.6B, its end: ChatML with an optional empty think block */
static const char T_QWEN3[] =
	"{%- for message in messages %}{{- '<|im_start|>' + message.role + '\n' + message.content + "
	"'<|im_end|>' + '\n' }}{%- endfor %}{%- if add_generation_prompt %}\n    {{- "
	"'<|im_start|>assistant\n' }}\n    {%- if enable_thinking is defined and enable_thinking "
	"is false %}\n        {{- '<think>\n\n</think>\n\n' }}\n    {%- endif %}\n{%- endif %}";

/* Command-R (not a family we render) and a plain Alpaca-style text */
static const char T_COMMANDR[] =
	"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
	"{{ '<|START_OF_TURN_TOKEN|><|USER_TOKEN|>' + message['content'] + "
	"'<|END_OF_TURN_TOKEN|>' }}{% endif %}{% endfor %}";
static const char T_ALPACA[] =
	"{% for message in messages %}### Instruction:\n{{ message['content'] }}\n\n{% endfor %}"
	"### Response:\n";

static void test_detect(void **state)
{
	(void)state;
	assert_int_equal(dk_chat_detect(T_SMOLLM2), DK_CHAT_CHATML);
	assert_int_equal(dk_chat_detect(T_CHATML), DK_CHAT_CHATML);
	assert_int_equal(dk_chat_detect(T_QWEN25), DK_CHAT_CHATML);
	assert_int_equal(dk_chat_detect(T_LLAMA3), DK_CHAT_LLAMA3);
	assert_int_equal(dk_chat_detect(T_LLAMA2), DK_CHAT_LLAMA2);
	assert_int_equal(dk_chat_detect(T_MISTRAL), DK_CHAT_MISTRAL);
	assert_int_equal(dk_chat_detect(T_PHI3), DK_CHAT_PHI3);
	assert_int_equal(dk_chat_detect(T_ZEPHYR), DK_CHAT_ZEPHYR);
	assert_int_equal(dk_chat_detect(T_GEMMA), DK_CHAT_GEMMA);
	assert_int_equal(dk_chat_detect(T_PHI4), DK_CHAT_PHI4);
	assert_int_equal(dk_chat_detect(T_GRANITE), DK_CHAT_GRANITE);
	assert_int_equal(dk_chat_detect(T_QWEN3), DK_CHAT_CHATML);
	assert_int_equal(dk_chat_detect(T_COMMANDR), DK_CHAT_UNKNOWN);
	assert_int_equal(dk_chat_detect(T_ALPACA), DK_CHAT_UNKNOWN);
	assert_int_equal(dk_chat_detect(""), DK_CHAT_UNKNOWN);
	assert_int_equal(dk_chat_detect(NULL), DK_CHAT_UNKNOWN);
	/* <|user|> alone, with neither <|end|> nor an EOS: not enough to tell */
	assert_int_equal(dk_chat_detect("{{ '<|user|>\n' + message['content'] }}"),
			 DK_CHAT_UNKNOWN);
}

static void test_detect_style(void **state)
{
	(void)state;
	struct dk_chat_style st;
	assert_int_equal(dk_chat_detect_style(T_SMOLLM2, &st), DK_CHAT_CHATML);
	assert_string_equal(st.default_system,
			    "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
	dk_chat_style_clear(&st);
	assert_null(st.default_system);
	/* the branch built from messages[0] is not a default; the fixed one is,
	 * with its escaped quote undone */
	assert_int_equal(dk_chat_detect_style(T_QWEN25, &st), DK_CHAT_CHATML);
	assert_string_equal(st.default_system,
			    "You are Qwen, created by Alibaba Cloud. You're a helpful assistant.");
	dk_chat_style_clear(&st);
	assert_int_equal(dk_chat_detect_style(T_CHATML, &st), DK_CHAT_CHATML);
	assert_null(st.default_system);
	dk_chat_style_clear(&st);
	assert_int_equal(dk_chat_detect_style(T_LLAMA2, &st), DK_CHAT_LLAMA2);
	assert_null(st.default_system);
	dk_chat_style_clear(&st);
	assert_int_equal(dk_chat_detect_style(NULL, &st), DK_CHAT_UNKNOWN);
	dk_chat_style_clear(&st);
}

static void test_names(void **state)
{
	(void)state;
	const char *names[] = {"chatml", "llama2", "llama3", "mistral", "phi3",
			       "phi4",   "gemma",  "zephyr", "granite", "raw"};
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
		enum dk_chat_family f = dk_chat_family_by_name(names[i]);
		assert_int_not_equal(f, DK_CHAT_UNKNOWN);
		assert_string_equal(dk_chat_family_name(f), names[i]);
	}
	assert_int_equal(dk_chat_family_by_name("alpaca"), DK_CHAT_UNKNOWN);
	assert_int_equal(dk_chat_family_by_name(NULL), DK_CHAT_UNKNOWN);
	assert_string_equal(dk_chat_family_name(DK_CHAT_UNKNOWN), "unknown");
}

/* ---- rendering ---- */

static const struct dk_chat_msg SU[] = {{"system", "You are terse."}, {"user", "Hi there"}};
static const struct dk_chat_msg U[] = {{"user", "What is 2+2?"}};
static const struct dk_chat_msg MT[] = {
	{"user", "Hello"}, {"assistant", "Hi! How can I help?"}, {"user", "Tell a joke"}};
/* whitespace around contents: the families that trim must trim */
static const struct dk_chat_msg WS[] = {{"user", "  padded \n"}};

static void expect(enum dk_chat_family f, const struct dk_chat_msg *m, size_t n, bool add,
		   const struct dk_chat_opts *o, const char *want)
{
	char *got = dk_chat_render_ex(f, m, n, add, o);
	assert_non_null(got);
	if (strcmp(got, want) != 0)
		fail_msg("%s:\n got  [%s]\n want [%s]", dk_chat_family_name(f), got, want);
	free(got);
}

static void test_render_chatml(void **state)
{
	(void)state;
	const enum dk_chat_family F = DK_CHAT_CHATML;
	expect(F, SU, 2, true, NULL,
	       "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
	       "<|im_start|>assistant\n");
	expect(F, U, 1, true, NULL, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
	expect(F, U, 1, false, NULL, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
	expect(F, MT, 3, true, NULL,
	       "<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi! How can I help?"
	       "<|im_end|>\n<|im_start|>user\nTell a joke<|im_end|>\n<|im_start|>assistant\n");
	expect(F, WS, 1, false, NULL, "<|im_start|>user\n  padded \n<|im_end|>\n");

	/* SmolLM2's template: its default system turn when none is given, and
	 * only then */
	struct dk_chat_style st;
	dk_chat_detect_style(T_SMOLLM2, &st);
	struct dk_chat_opts o = {.default_system = st.default_system};
	expect(F, U, 1, true, &o,
	       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
	       "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
	expect(F, SU, 2, true, &o,
	       "<|im_start|>system\nYou are terse.<|im_end|>\n<|im_start|>user\nHi there<|im_end|>\n"
	       "<|im_start|>assistant\n");
	expect(F, MT, 3, true, &o,
	       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
	       "Face<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n<|im_start|>assistant\nHi! How "
	       "can I help?<|im_end|>\n<|im_start|>user\nTell a joke<|im_end|>\n"
	       "<|im_start|>assistant\n");
	/* no messages: the template's loop never runs, so no default either */
	expect(F, NULL, 0, true, &o, "<|im_start|>assistant\n");
	/* ChatML writes no BOS even when asked */
	o.bos = "<s>";
	expect(F, U, 1, false, &o,
	       "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
	       "Face<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n");
	dk_chat_style_clear(&st);
}

static void test_render_llama3(void **state)
{
	(void)state;
	const enum dk_chat_family F = DK_CHAT_LLAMA3;
	expect(F, SU, 2, true, NULL,
	       "<|start_header_id|>system<|end_header_id|>\n\nYou are terse.<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
	/* BOS is the tokenizer's unless the caller says otherwise */
	struct dk_chat_opts o = {.bos = "<|begin_of_text|>"};
	expect(F, U, 1, true, &o,
	       "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
	expect(F, MT, 3, true, NULL,
	       "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
	       "<|start_header_id|>user<|end_header_id|>\n\nTell a joke<|eot_id|>"
	       "<|start_header_id|>assistant<|end_header_id|>\n\n");
	expect(F, WS, 1, false, NULL, "<|start_header_id|>user<|end_header_id|>\n\npadded<|eot_id|>");
}

static void test_render_llama2(void **state)
{
	(void)state;
	const enum dk_chat_family F = DK_CHAT_LLAMA2;
	expect(F, SU, 2, true, NULL,
	       "[INST] <<SYS>>\nYou are terse.\n<</SYS>>\n\nHi there [/INST]");
	expect(F, U, 1, true, NULL, "[INST] What is 2+2? [/INST]");
	/* add_generation_prompt changes nothing: the template ends at [/INST] */
	expect(F, U, 1, false, NULL, "[INST] What is 2+2? [/INST]");
	expect(F, MT, 3, true, NULL,
	       "[INST] Hello [/INST] Hi! How can I help? </s><s>[INST] Tell a joke [/INST]");
	struct dk_chat_opts o = {.bos = "<s>"};
	const struct dk_chat_msg sum[] = {{"system", "S"},
					  {"user", "U1 "},
					  {"assistant", " A1"},
					  {"user", "U2"}};
	expect(F, sum, 4, true, &o,
	       "<s>[INST] <<SYS>>\nS\n<</SYS>>\n\nU1 [/INST] A1 </s><s>[INST] U2 [/INST]");
	expect(F, WS, 1, false, NULL, "[INST] padded [/INST]");
}

static void test_render_mistral(void **state)
{
	(void)state;
	const enum dk_chat_family F = DK_CHAT_MISTRAL;
	expect(F, U, 1, true, NULL, "[INST] What is 2+2? [/INST]");
	struct dk_chat_opts o = {.bos = "<s>"};
	expect(F, U, 1, true, &o, "<s>[INST] What is 2+2? [/INST]");
	expect(F, MT, 3, true, &o,
	       "<s>[INST] Hello [/INST]Hi! How can I help?</s>[INST] Tell a joke [/INST]");
	/* no system role in the template: system text leads the first user turn */
	expect(F, SU, 2, true, NULL, "[INST] You are terse.\n\nHi there [/INST]");
	/* a system turn with nothing after it still reaches the model */
	const struct dk_chat_msg s_only[] = {{"system", "Be brief."}};
	expect(F, s_only, 1, true, NULL, "[INST] Be brief.\n\n [/INST]");
}

static void test_render_phi3_zephyr(void **state)
{
	(void)state;
	expect(DK_CHAT_PHI3, SU, 2, true, NULL,
	       "<|system|>\nYou are terse.<|end|>\n<|user|>\nHi there<|end|>\n<|assistant|>\n");
	expect(DK_CHAT_PHI3, U, 1, true, NULL, "<|user|>\nWhat is 2+2?<|end|>\n<|assistant|>\n");
	expect(DK_CHAT_PHI3, MT, 3, true, NULL,
	       "<|user|>\nHello<|end|>\n<|assistant|>\nHi! How can I help?<|end|>\n<|user|>\n"
	       "Tell a joke<|end|>\n<|assistant|>\n");
	expect(DK_CHAT_ZEPHYR, SU, 2, true, NULL,
	       "<|system|>\nYou are terse.</s>\n<|user|>\nHi there</s>\n<|assistant|>\n");
	expect(DK_CHAT_ZEPHYR, U, 1, true, NULL, "<|user|>\nWhat is 2+2?</s>\n<|assistant|>\n");
	expect(DK_CHAT_ZEPHYR, MT, 3, true, NULL,
	       "<|user|>\nHello</s>\n<|assistant|>\nHi! How can I help?</s>\n<|user|>\nTell a "
	       "joke</s>\n<|assistant|>\n");
	struct dk_chat_opts o = {.eos = "<|endoftext|>"};
	expect(DK_CHAT_ZEPHYR, U, 1, false, &o, "<|user|>\nWhat is 2+2?<|endoftext|>\n");
}

static void test_render_phi4_granite(void **state)
{
	(void)state;
	expect(DK_CHAT_PHI4, SU, 2, true, NULL,
	       "<|system|>You are terse.<|end|><|user|>Hi there<|end|><|assistant|>");
	expect(DK_CHAT_PHI4, MT, 3, true, NULL,
	       "<|user|>Hello<|end|><|assistant|>Hi! How can I help?<|end|><|user|>Tell a "
	       "joke<|end|><|assistant|>");
	expect(DK_CHAT_PHI4, U, 1, false, NULL, "<|user|>What is 2+2?<|end|>");
	expect(DK_CHAT_GRANITE, SU, 2, true, NULL,
	       "<|start_of_role|>system<|end_of_role|>You are terse.<|end_of_text|>\n"
	       "<|start_of_role|>user<|end_of_role|>Hi there<|end_of_text|>\n"
	       "<|start_of_role|>assistant<|end_of_role|>");
	expect(DK_CHAT_GRANITE, MT, 3, false, NULL,
	       "<|start_of_role|>user<|end_of_role|>Hello<|end_of_text|>\n"
	       "<|start_of_role|>assistant<|end_of_role|>Hi! How can I help?<|end_of_text|>\n"
	       "<|start_of_role|>user<|end_of_role|>Tell a joke<|end_of_text|>\n");
	/* Qwen3 with thinking on (its default) is plain ChatML */
	expect(DK_CHAT_CHATML, U, 1, true, NULL,
	       "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
}

static void test_render_gemma(void **state)
{
	(void)state;
	const enum dk_chat_family F = DK_CHAT_GEMMA;
	expect(F, U, 1, true, NULL,
	       "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n");
	struct dk_chat_opts o = {.bos = "<bos>"};
	expect(F, SU, 2, true, &o,
	       "<bos><start_of_turn>user\nYou are terse.\n\nHi there<end_of_turn>\n"
	       "<start_of_turn>model\n");
	expect(F, MT, 3, true, NULL,
	       "<start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\nHi! How can I help?"
	       "<end_of_turn>\n<start_of_turn>user\nTell a joke<end_of_turn>\n"
	       "<start_of_turn>model\n");
	expect(F, WS, 1, false, NULL, "<start_of_turn>user\npadded<end_of_turn>\n");
}

static void test_render_raw_and_errors(void **state)
{
	(void)state;
	expect(DK_CHAT_RAW, SU, 2, true, NULL, "You are terse.\nHi there");
	expect(DK_CHAT_RAW, U, 1, true, NULL, "What is 2+2?");
	assert_null(dk_chat_render(DK_CHAT_UNKNOWN, U, 1, true));
	const struct dk_chat_msg tool[] = {{"tool", "42"}};
	/* strict families refuse roles they cannot write; ChatML writes any */
	assert_null(dk_chat_render(DK_CHAT_LLAMA2, tool, 1, true));
	assert_null(dk_chat_render(DK_CHAT_GEMMA, tool, 1, true));
	const struct dk_chat_msg norole[] = {{NULL, "x"}};
	assert_null(dk_chat_render(DK_CHAT_CHATML, norole, 1, true));
	char *s = dk_chat_render(DK_CHAT_CHATML, tool, 1, false);
	assert_string_equal(s, "<|im_start|>tool\n42<|im_end|>\n");
	free(s);
	s = dk_chat_render(DK_CHAT_CHATML, U, 1, true);
	assert_string_equal(s, "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
	free(s);
}

/* ---- the real templates stored in model files ---- */

static char *template_of(const char *path)
{
	struct dk_gguf *g = NULL;
	char *out = NULL;
	if (dk_gguf_open(&g, path) == DK_OK) {
		const char *s;
		size_t n;
		if (dk_gguf_get_str(g, "tokenizer.chat_template", &s, &n))
			out = strndup(s, n);
	} else {
		fail_msg("%s", dk_gguf_error(g));
	}
	dk_gguf_free(g);
	return out;
}

static void test_real_templates(void **state)
{
	(void)state;
	struct dk_chat_style st;
	char *t = template_of(dk_test_shared("vocab/ggml-vocab-qwen2.gguf"));
	assert_non_null(t);
	assert_int_equal(dk_chat_detect_style(t, &st), DK_CHAT_CHATML);
	assert_string_equal(st.default_system, "You are a helpful assistant");
	dk_chat_style_clear(&st);
	free(t);

	t = template_of(dk_test_shared("vocab/ggml-vocab-phi-3.gguf"));
	assert_non_null(t);
	assert_int_equal(dk_chat_detect(t), DK_CHAT_PHI3);
	free(t);

	/* command-r's template is a family docket does not render */
	t = template_of(dk_test_shared("vocab/ggml-vocab-command-r.gguf"));
	assert_non_null(t);
	assert_int_equal(dk_chat_detect(t), DK_CHAT_UNKNOWN);
	free(t);
}

static void test_default_model_template(void **state)
{
	(void)state;
	const char *m = dk_test_need_default_model();
	char *t = template_of(m);
	assert_non_null(t);
	struct dk_chat_style st;
	assert_int_equal(dk_chat_detect_style(t, &st), DK_CHAT_CHATML);
	assert_string_equal(st.default_system,
			    "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
	/* the fixture above is this very text */
	assert_string_equal(t, T_SMOLLM2);
	dk_chat_style_clear(&st);
	free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_detect),
		cmocka_unit_test(test_detect_style),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_render_chatml),
		cmocka_unit_test(test_render_llama3),
		cmocka_unit_test(test_render_llama2),
		cmocka_unit_test(test_render_mistral),
		cmocka_unit_test(test_render_phi3_zephyr),
		cmocka_unit_test(test_render_phi4_granite),
		cmocka_unit_test(test_render_gemma),
		cmocka_unit_test(test_render_raw_and_errors),
		cmocka_unit_test(test_real_templates),
		cmocka_unit_test(test_default_model_template),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
