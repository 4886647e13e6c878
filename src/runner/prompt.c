/* Prompts: pipeline templates and a chunk's values -> token prompts, with
 * the heads shared by sibling jobs (prefix warming) and free of document
 * text (prefix files). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/filehints.h"
#include "runner/run.h"
#include "util/buf.h"

int dk_prompt_tokenize(struct runner *R, struct tokv *t, const char *s, size_t len, bool add,
			  bool special)
{
	for (;;) {
		int room = t->cap - t->n;
		int k = dk_tokenize(R->tok, s, len, add, special, t->v ? t->v + t->n : NULL, room);
		if (k >= 0) {
			t->n += k;
			return 0;
		}
		int cap = t->cap ? t->cap : 256;
		while (cap - t->n < -k)
			cap *= 2;
		dk_token *v = realloc(t->v, (size_t)cap * sizeof *v);
		if (!v)
			return -1;
		t->v = v;
		t->cap = cap;
	}
}

int dk_prompt_count_tokens(void *ud, const char *text, size_t len)
{
	struct runner *R = ud;
	dk_token dummy[1];
	int k = dk_tokenize(R->tok, text, len, false, false, dummy, 0);
	return k < 0 ? -k : k;
}

/* Renders t into segs.  *split: byte offset of the first split_var
 * placeholder (-1: none asked); *doc (when not NULL): of the first
 * placeholder whose value is not the pipeline's; both stay (size_t)-1 when
 * there is none. */
static int render_tmpl(const struct dk_tmpl *t, const struct dk_var_values *vals, int split_var,
		       struct dk_segs *segs, size_t *split, size_t *doc)
{
	for (size_t i = 0; t && i < t->n_parts; i++) {
		const struct dk_tmpl_part *p = &t->parts[i];
		if (!p->is_var) {
			if (dk_segs_add(segs, p->text, strlen(p->text), true))
				return -1;
			continue;
		}
		int k = dk_var_find(p->text);
		if (k < 0) /* refused when the pipeline was loaded */
			continue;
		size_t off = 0;
		for (size_t s = 0; s < segs->n; s++)
			off += segs->v[s].len;
		if (split_var >= 0 && *split == (size_t)-1 && k == split_var)
			*split = off;
		if (doc && *doc == (size_t)-1 && dk_vars[k].scope != DK_SCOPE_PIPELINE)
			*doc = off;
		const char *v = vals->v[k];
		if (v && *v && dk_segs_add(segs, v, strlen(v), false))
			return -1;
	}
	return 0;
}

static size_t segs_bytes(const struct dk_segs *s)
{
	size_t off = 0;
	for (size_t k = 0; k < s->n; k++)
		off += s->v[k].len;
	return off;
}

/* Tokens of out (the whole of text, tokenized) that tokenizing text[0..split)
 * alone gives too: the head that does not depend on what follows split. */
static int common_head(struct runner *R, const char *text, size_t split, const struct tokv *out,
		       int *n)
{
	struct tokv pre = {0};
	if (dk_prompt_tokenize(R, &pre, text, split, true, false))
		return -1;
	int k = 0;
	while (k < pre.n && k < out->n && pre.v[k] == out->v[k])
		k++;
	*n = k;
	free(pre.v);
	return 0;
}

/*
 * The prompt of one job: [chat head] system [chat between] user [chat tail].
 * Template text may spell control tokens; substituted values never do.
 * *n_prefix: tokens before the first occurrence of split_var in the user
 * template (or all tokens when split_var is NULL).  *n_static: tokens
 * before the first document placeholder of either template (all tokens
 * when there is none): the head that holds nothing of the document.
 */
int dk_prompt_build(struct runner *R, const struct dk_tmpl *sys, const struct dk_tmpl *user,
		    const struct dk_var_values *vals, int split_var,
			struct tokv *out, int *n_prefix, int *n_static)
{
	struct dk_segs s_sys = {0}, s_user = {0}, all = {0};
	size_t split_user = (size_t)-1, dummy = (size_t)-1, doc_sys = (size_t)-1, doc_user = (size_t)-1;
	int rc = -1;
	char *rendered = NULL;
	if (render_tmpl(sys, vals, -1, &s_sys, &dummy, &doc_sys) ||
	    render_tmpl(user, vals, split_var, &s_user, &split_user, &doc_user))
		goto out;
	size_t split = (size_t)-1, doc = (size_t)-1;
	if (R->chat == DK_CHAT_RAW || R->chat == DK_CHAT_UNKNOWN) {
		for (size_t i = 0; i < s_sys.n; i++)
			dk_segs_add(&all, s_sys.v[i].text, s_sys.v[i].len, s_sys.v[i].special);
		if (s_sys.n)
			dk_segs_add(&all, "\n\n", 2, true);
		size_t base = segs_bytes(&all);
		for (size_t i = 0; i < s_user.n; i++)
			dk_segs_add(&all, s_user.v[i].text, s_user.v[i].len, s_user.v[i].special);
		if (split_user != (size_t)-1)
			split = base + split_user;
		doc = doc_sys != (size_t)-1 ? doc_sys : doc_user != (size_t)-1 ? base + doc_user : doc;
		/* one string: no chat control tokens to honour */
		char *j = dk_segs_join(&all);
		if (!j || dk_prompt_tokenize(R, out, j, strlen(j), true, false)) {
			free(j);
			goto out;
		}
		*n_prefix = *n_static = out->n;
		if ((split != (size_t)-1 && common_head(R, j, split, out, n_prefix)) ||
		    (doc != (size_t)-1 && common_head(R, j, doc, out, n_static))) {
			free(j);
			goto out;
		}
		free(j);
		rc = 0;
		goto out;
	}
	/* chat: render with markers where the contents go, then splice */
	struct dk_chat_msg msgs[2];
	size_t nm = 0;
	if (sys)
		msgs[nm++] = (struct dk_chat_msg){"system", "\x01S\x01"};
	msgs[nm++] = (struct dk_chat_msg){"user", "\x01U\x01"};
	rendered = dk_chat_render(R->chat, msgs, nm, true);
	if (!rendered)
		goto out;
	const char *ms = sys ? strstr(rendered, "\x01S\x01") : NULL;
	const char *mu = strstr(rendered, "\x01U\x01");
	if (!mu || (sys && (!ms || ms > mu)))
		goto out;
	const char *cur = rendered;
	if (ms) {
		dk_segs_add(&all, cur, (size_t)(ms - cur), true);
		if (doc_sys != (size_t)-1)
			doc = segs_bytes(&all) + doc_sys;
		for (size_t i = 0; i < s_sys.n; i++)
			dk_segs_add(&all, s_sys.v[i].text, s_sys.v[i].len, s_sys.v[i].special);
		cur = ms + 3;
	}
	dk_segs_add(&all, cur, (size_t)(mu - cur), true);
	size_t base = segs_bytes(&all);
	for (size_t i = 0; i < s_user.n; i++)
		dk_segs_add(&all, s_user.v[i].text, s_user.v[i].len, s_user.v[i].special);
	cur = mu + 3;
	dk_segs_add(&all, cur, strlen(cur), true);
	if (split_user != (size_t)-1)
		split = base + split_user;
	if (doc == (size_t)-1 && doc_user != (size_t)-1)
		doc = base + doc_user;
	/* segments are tokenized one by one, and a placeholder's value is a
	 * segment of its own: the heads end at segment boundaries */
	size_t off = 0;
	*n_prefix = *n_static = -1;
	for (size_t i = 0; i < all.n; i++) {
		if (split != (size_t)-1 && off >= split && *n_prefix < 0)
			*n_prefix = out->n;
		if (doc != (size_t)-1 && off >= doc && *n_static < 0)
			*n_static = out->n;
		if (dk_prompt_tokenize(R, out, all.v[i].text, all.v[i].len, i == 0, all.v[i].special))
			goto out;
		off += all.v[i].len;
	}
	if (*n_prefix < 0)
		*n_prefix = out->n;
	if (*n_static < 0)
		*n_static = out->n;
	rc = 0;
out:
	free(rendered);
	dk_segs_free(&s_sys);
	dk_segs_free(&s_user);
	dk_segs_free(&all);
	return rc;
}

/* Appends the pipeline's answer template (the start of the model's reply).
 * *word_next (may be NULL) says it ends inside a sentence ("The category
 * is"): what follows is a new word, and BPE vocabularies spell a word with
 * its leading space (" sport"), which is how the model expects to see it. */
int dk_prompt_answer_prefix(struct runner *R, const struct dk_var_values *vals, struct tokv *t,
			 bool *word_next)
{
	if (word_next)
		*word_next = false;
	if (!R->pl->answer)
		return 0;
	struct dk_segs sg = {0};
	size_t dummy = (size_t)-1;
	int rc = render_tmpl(R->pl->answer, vals, -1, &sg, &dummy, NULL);
	char *a = rc ? NULL : dk_segs_join(&sg);
	if (!a || dk_prompt_tokenize(R, t, a, strlen(a), false, false))
		rc = -1;
	if (a && *a && word_next)
		*word_next = !isspace((unsigned char)a[strlen(a) - 1]);
	free(a);
	dk_segs_free(&sg);
	return rc;
}

char *dk_prompt_render_text(const struct dk_tmpl *t, const struct dk_var_values *vals)
{
	struct dk_segs segs = {0};
	size_t dummy = (size_t)-1;
	char *s = NULL;
	if (!render_tmpl(t, vals, -1, &segs, &dummy, NULL))
		s = dk_segs_join(&segs);
	dk_segs_free(&segs);
	return s;
}

void dk_prompt_chunk_vars_init(const struct runner *R, const struct doc *d, size_t ci,
			    const char *text, struct chunk_vars *cv)
{
	const struct dk_pipeline *pl = R->pl;
	const struct dk_chunk *c = &d->chunks[ci];
	memset(&cv->labels, 0, sizeof cv->labels);
	memset(&cv->hints, 0, sizeof cv->hints);
	snprintf(cv->idx, sizeof cv->idx, "%d", c->index + 1);
	snprintf(cv->cnt, sizeof cv->cnt, "%d", c->count);
	snprintf(cv->bytes, sizeof cv->bytes, "%llu", (unsigned long long)d->bytes);
	for (size_t i = 0; i < pl->n_labels; i++)
		dk_buf_printf(&cv->labels, "%s%s", i ? ", " : "", pl->labels[i]);
	const char *base = strrchr(d->path, '/');
	base = base ? base + 1 : d->path;
	struct dk_var_values *v = &cv->vals;
	memset(v, 0, sizeof *v);
	v->v[DK_VAR_TEXT] = text ? text : "";
	v->v[DK_VAR_PATH] = d->path;
	v->v[DK_VAR_NAME] = base;
	v->v[DK_VAR_MEMBER] = d->member ? d->member : "";
	v->v[DK_VAR_MIME] = d->mime;
	v->v[DK_VAR_BYTES] = cv->bytes;
	v->v[DK_VAR_LABELS] = cv->labels.data ? cv->labels.data : "";
	v->v[DK_VAR_SCHEMA] = pl->schema_json ? pl->schema_json : "";
	v->v[DK_VAR_CHUNK_INDEX] = cv->idx;
	v->v[DK_VAR_CHUNK_COUNT] = cv->cnt;
	if (dk_tmpl_uses(pl->user, "hints") || dk_tmpl_uses(pl->system, "hints") ||
	    dk_tmpl_uses(pl->answer, "hints")) {
		const char *rel = dk_filehints_rel(d->path, R->inputs, R->n_inputs);
		/* out of memory: the prompt goes without hints */
		if (dk_filehints_describe(rel, d->text, d->text ? strlen(d->text) : 0, &cv->hints))
			dk_buf_clear(&cv->hints);
		v->v[DK_VAR_HINTS] = cv->hints.data ? cv->hints.data : "";
	}
}

void dk_prompt_chunk_vars_free(struct chunk_vars *cv)
{
	dk_buf_free(&cv->labels);
	dk_buf_free(&cv->hints);
}
