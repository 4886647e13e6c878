/*
 * Chat templates by family.  The formats are those the families' published
 * Jinja templates produce (see the table in chat.h); recognising a family
 * from its markers is enough because the templates within a family differ
 * only in details we model explicitly (BOS/EOS text, a default system turn).
 */
#include "docket/chat.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

static const struct {
	enum dk_chat_family f;
	const char *name;
} family_names[] = {
	{DK_CHAT_CHATML, "chatml"}, {DK_CHAT_LLAMA2, "llama2"}, {DK_CHAT_LLAMA3, "llama3"},
	{DK_CHAT_MISTRAL, "mistral"}, {DK_CHAT_PHI3, "phi3"}, {DK_CHAT_GEMMA, "gemma"},
	{DK_CHAT_ZEPHYR, "zephyr"}, {DK_CHAT_RAW, "raw"}, {DK_CHAT_GRANITE, "granite"},
	{DK_CHAT_PHI4, "phi4"},
};

enum dk_chat_family dk_chat_family_by_name(const char *name)
{
	if (!name)
		return DK_CHAT_UNKNOWN;
	for (size_t i = 0; i < sizeof family_names / sizeof family_names[0]; i++)
		if (strcmp(name, family_names[i].name) == 0)
			return family_names[i].f;
	return DK_CHAT_UNKNOWN;
}

const char *dk_chat_family_name(enum dk_chat_family f)
{
	for (size_t i = 0; i < sizeof family_names / sizeof family_names[0]; i++)
		if (family_names[i].f == f)
			return family_names[i].name;
	return "unknown";
}

/* ---- detection ---- */

enum dk_chat_family dk_chat_detect(const char *t)
{
	if (!t || !*t)
		return DK_CHAT_UNKNOWN;
	/* the most specific markers first: a ChatML or Llama 3 template may
	 * mention other families' tokens in comments or tool prompts, the
	 * reverse is rare */
	if (strstr(t, "<|im_start|>"))
		return DK_CHAT_CHATML;
	if (strstr(t, "<|start_header_id|>"))
		return DK_CHAT_LLAMA3;
	if (strstr(t, "<start_of_turn>"))
		return DK_CHAT_GEMMA;
	if (strstr(t, "<|start_of_role|>"))
		return DK_CHAT_GRANITE;
	/* Phi-4-mini writes '<|' + role + '|>' + content, with no newline */
	if (strstr(t, "<|end|>") && strstr(t, "'|>' + message['content']"))
		return DK_CHAT_PHI4;
	if (strstr(t, "[INST]"))
		return strstr(t, "<<SYS>>") ? DK_CHAT_LLAMA2 : DK_CHAT_MISTRAL;
	if (strstr(t, "<|user|>")) {
		if (strstr(t, "<|end|>"))
			return DK_CHAT_PHI3;
		if (strstr(t, "</s>") || strstr(t, "eos_token"))
			return DK_CHAT_ZEPHYR;
	}
	return DK_CHAT_UNKNOWN;
}

/* Reads a Jinja string literal's body from p up to (not including) the
 * marker end, undoing \n \t \\ \' \" escapes.  Fails (NULL) if the body
 * leaves the literal (an unescaped quote: the text is built from pieces,
 * e.g. messages[0]['content'], so it is not a fixed default). */
static char *literal_until(const char *p, const char *end)
{
	const char *e = strstr(p, end);
	if (!e)
		return NULL;
	struct dk_buf b = {0};
	for (const char *q = p; q < e; q++) {
		char c = *q;
		if (c == '\'' || c == '"') {
			dk_buf_free(&b);
			return NULL;
		}
		if (c == '\\' && q + 1 < e) {
			q++;
			switch (*q) {
			case 'n': c = '\n'; break;
			case 't': c = '\t'; break;
			case 'r': c = '\r'; break;
			default: c = *q; break; /* \\ \' \" */
			}
		}
		if (dk_buf_putc(&b, c) != 0) {
			dk_buf_free(&b);
			return NULL;
		}
	}
	return dk_buf_steal(&b);
}

/* A ChatML template that writes a fixed system turn itself (for a
 * conversation without one) spells it as one literal:
 * '<|im_start|>system\nTEXT<|im_end|>\n'.  The newline may be a real one or
 * the two characters \n, depending on how the template was stored. */
static char *chatml_default_system(const char *t)
{
	static const char head[] = "<|im_start|>system";
	for (const char *p = strstr(t, head); p; p = strstr(p + 1, head)) {
		const char *q = p + sizeof head - 1;
		if (*q == '\n')
			q++;
		else if (q[0] == '\\' && q[1] == 'n')
			q += 2;
		else
			continue;
		char *s = literal_until(q, "<|im_end|>");
		if (s && *s)
			return s;
		free(s);
	}
	return NULL;
}

enum dk_chat_family dk_chat_detect_style(const char *tmpl, struct dk_chat_style *st)
{
	st->family = dk_chat_detect(tmpl);
	st->default_system = NULL;
	if (st->family == DK_CHAT_CHATML)
		st->default_system = chatml_default_system(tmpl);
	return st->family;
}

void dk_chat_style_clear(struct dk_chat_style *st)
{
	if (!st)
		return;
	free(st->default_system);
	st->default_system = NULL;
	st->family = DK_CHAT_UNKNOWN;
}

/* ---- rendering ---- */

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Appends s with leading/trailing whitespace removed (Jinja's trim,
 * Python's strip() on ASCII whitespace). */
static int put_trimmed(struct dk_buf *b, const char *s)
{
	size_t n = strlen(s);
	while (n && is_space(*s)) {
		s++;
		n--;
	}
	while (n && is_space(s[n - 1]))
		n--;
	return dk_buf_append(b, s, n);
}

static int put_trailing_stripped(struct dk_buf *b, const char *s)
{
	size_t n = strlen(s);
	while (n && is_space(s[n - 1]))
		n--;
	return dk_buf_append(b, s, n);
}

enum role { R_SYSTEM, R_USER, R_ASSISTANT, R_OTHER };

static enum role role_of(const char *r)
{
	if (!r)
		return R_OTHER;
	if (strcmp(r, "system") == 0)
		return R_SYSTEM;
	if (strcmp(r, "user") == 0)
		return R_USER;
	if (strcmp(r, "assistant") == 0)
		return R_ASSISTANT;
	return R_OTHER;
}

/* Families whose template writes each turn the same way, differing only by
 * the header and trailer of a turn. */
static int render_uniform(struct dk_buf *b, enum dk_chat_family f, const struct dk_chat_msg *m,
			  size_t n, bool add_assistant, const char *eos)
{
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *role = m[i].role, *c = m[i].content ? m[i].content : "";
		switch (f) {
		case DK_CHAT_CHATML:
			rc |= dk_buf_printf(b, "<|im_start|>%s\n%s<|im_end|>\n", role, c);
			break;
		case DK_CHAT_LLAMA3:
			rc |= dk_buf_printf(b, "<|start_header_id|>%s<|end_header_id|>\n\n", role);
			rc |= put_trimmed(b, c);
			rc |= dk_buf_puts(b, "<|eot_id|>");
			break;
		case DK_CHAT_PHI3:
			rc |= dk_buf_printf(b, "<|%s|>\n%s<|end|>\n", role, c);
			break;
		case DK_CHAT_PHI4:
			rc |= dk_buf_printf(b, "<|%s|>%s<|end|>", role, c);
			break;
		case DK_CHAT_GRANITE:
			rc |= dk_buf_printf(b, "<|start_of_role|>%s<|end_of_role|>%s<|end_of_text|>\n",
					    role, c);
			break;
		case DK_CHAT_ZEPHYR:
			rc |= dk_buf_printf(b, "<|%s|>\n%s%s\n", role, c, eos);
			break;
		default:
			return -1;
		}
	}
	if (add_assistant && rc == 0) {
		switch (f) {
		case DK_CHAT_CHATML: rc = dk_buf_puts(b, "<|im_start|>assistant\n"); break;
		case DK_CHAT_LLAMA3:
			rc = dk_buf_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
			break;
		case DK_CHAT_PHI3:
		case DK_CHAT_ZEPHYR: rc = dk_buf_puts(b, "<|assistant|>\n"); break;
		case DK_CHAT_PHI4: rc = dk_buf_puts(b, "<|assistant|>"); break;
		case DK_CHAT_GRANITE:
			rc = dk_buf_puts(b, "<|start_of_role|>assistant<|end_of_role|>");
			break;
		default: break;
		}
	}
	return rc;
}

/* One user turn of Llama 2, Mistral or Gemma, with pending system text
 * (or NULL) folded in the way the family does it. */
static int inst_user(struct dk_buf *b, enum dk_chat_family f, const char *sys, const char *c,
		     bool first, const char *bos)
{
	int rc = 0;
	if (f == DK_CHAT_LLAMA2) {
		/* the template writes bos_token before every [INST]; the tokenizer
		 * (or the caller's leading BOS) supplies only the first */
		if (!first)
			rc |= dk_buf_puts(b, bos ? bos : "<s>");
		rc |= dk_buf_puts(b, "[INST] ");
		if (sys) {
			/* Meta's template strips '<<SYS>>...' + content as one string */
			rc |= dk_buf_printf(b, "<<SYS>>\n%s\n<</SYS>>\n\n", sys);
			rc |= put_trailing_stripped(b, c);
		} else {
			rc |= put_trimmed(b, c);
		}
		rc |= dk_buf_puts(b, " [/INST]");
	} else if (f == DK_CHAT_MISTRAL) {
		rc |= dk_buf_puts(b, "[INST] ");
		if (sys)
			rc |= dk_buf_printf(b, "%s\n\n", sys);
		rc |= dk_buf_printf(b, "%s [/INST]", c);
	} else {
		rc |= dk_buf_puts(b, "<start_of_turn>user\n");
		if (sys)
			rc |= dk_buf_printf(b, "%s\n\n", sys);
		rc |= put_trimmed(b, c);
		rc |= dk_buf_puts(b, "<end_of_turn>\n");
	}
	return rc;
}

static int inst_assistant(struct dk_buf *b, enum dk_chat_family f, const char *c, const char *eos)
{
	int rc = 0;
	if (f == DK_CHAT_LLAMA2) {
		rc |= dk_buf_putc(b, ' ');
		rc |= put_trimmed(b, c);
		rc |= dk_buf_printf(b, " %s", eos);
	} else if (f == DK_CHAT_MISTRAL) {
		rc |= dk_buf_printf(b, "%s%s", c, eos);
	} else {
		rc |= dk_buf_puts(b, "<start_of_turn>model\n");
		rc |= put_trimmed(b, c);
		rc |= dk_buf_puts(b, "<end_of_turn>\n");
	}
	return rc;
}

/* Llama 2, Mistral and Gemma: user/assistant turns only; system text joins
 * the user turn after it, or stands as a user turn of its own when none
 * follows. */
static int render_inst(struct dk_buf *b, enum dk_chat_family f, const struct dk_chat_msg *m,
		       size_t n, bool add_assistant, const char *bos, const char *eos)
{
	const char *sys = NULL;
	bool first = true;
	int rc = 0;
	for (size_t i = 0; i < n && rc == 0; i++) {
		const char *c = m[i].content ? m[i].content : "";
		switch (role_of(m[i].role)) {
		case R_SYSTEM:
			if (sys) {
				rc |= inst_user(b, f, sys, "", first, bos);
				first = false;
			}
			sys = c;
			break;
		case R_USER:
			rc |= inst_user(b, f, sys, c, first, bos);
			sys = NULL;
			first = false;
			break;
		case R_ASSISTANT:
			if (sys) {
				rc |= inst_user(b, f, sys, "", first, bos);
				sys = NULL;
				first = false;
			}
			rc |= inst_assistant(b, f, c, eos);
			break;
		default:
			return -1;
		}
	}
	if (sys && rc == 0)
		rc |= inst_user(b, f, sys, "", first, bos);
	if (add_assistant && rc == 0 && f == DK_CHAT_GEMMA)
		rc = dk_buf_puts(b, "<start_of_turn>model\n");
	return rc;
}

char *dk_chat_render_ex(enum dk_chat_family f, const struct dk_chat_msg *msgs, size_t n,
			bool add_assistant, const struct dk_chat_opts *o)
{
	if (f == DK_CHAT_UNKNOWN || (n && !msgs))
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!msgs[i].role || !*msgs[i].role)
			return NULL;
	const char *eos = o && o->eos ? o->eos : "</s>";
	const char *bos = o ? o->bos : NULL;

	/* a default system turn goes in front when the conversation has none */
	const struct dk_chat_msg *m = msgs;
	struct dk_chat_msg *tmp = NULL;
	if (o && o->default_system && n > 0 && role_of(msgs[0].role) != R_SYSTEM) {
		tmp = malloc((n + 1) * sizeof *tmp);
		if (!tmp)
			return NULL;
		tmp[0] = (struct dk_chat_msg){"system", o->default_system};
		memcpy(tmp + 1, msgs, n * sizeof *tmp);
		m = tmp;
		n++;
	}

	struct dk_buf b = {0};
	int rc = dk_buf_puts(&b, ""); /* so that an empty render is "" and not NULL */
	switch (f) {
	case DK_CHAT_LLAMA3:
	case DK_CHAT_PHI3:
	case DK_CHAT_LLAMA2:
	case DK_CHAT_MISTRAL:
	case DK_CHAT_GEMMA:
		if (bos)
			rc |= dk_buf_puts(&b, bos);
		break;
	default:
		break;
	}
	switch (f) {
	case DK_CHAT_CHATML:
	case DK_CHAT_LLAMA3:
	case DK_CHAT_PHI3:
	case DK_CHAT_PHI4:
	case DK_CHAT_ZEPHYR:
	case DK_CHAT_GRANITE:
		rc |= render_uniform(&b, f, m, n, add_assistant, eos);
		break;
	case DK_CHAT_LLAMA2:
	case DK_CHAT_MISTRAL:
	case DK_CHAT_GEMMA:
		rc |= render_inst(&b, f, m, n, add_assistant, bos, eos);
		break;
	case DK_CHAT_RAW:
		for (size_t i = 0; i < n; i++) {
			if (i)
				rc |= dk_buf_putc(&b, '\n');
			rc |= dk_buf_puts(&b, m[i].content ? m[i].content : "");
		}
		break;
	default:
		rc = -1;
		break;
	}
	free(tmp);
	if (rc != 0) {
		dk_buf_free(&b);
		return NULL;
	}
	return dk_buf_steal(&b);
}

char *dk_chat_render(enum dk_chat_family f, const struct dk_chat_msg *msgs, size_t n,
		     bool add_assistant)
{
	return dk_chat_render_ex(f, msgs, n, add_assistant, NULL);
}
