/* The scheduler: queue, slots, admission, the decode step and sampling. */
#include "runner/sched.h"

#include "docket/sampler.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/prefixes.h"
#include "util/buf.h"
#include "util/err.h"
#include "util/sha256.h"

struct job {
	struct dk_job_spec sp;
	dk_token *toks;
	int n_toks;
	uint64_t pkey;        /* hash of toks[0..n_prefix) */
	struct job *next;
	/* in flight */
	int slot;
	int n_past;
	int n_cached;
	bool warmed;
	dk_token last;
	int n_gen;
	struct dk_buf text;
	double logp;
	dk_token *choices;    /* the spec's, copied */
	double *choice_logp;
	int bfirst, bcount;
	enum dk_finish finish;
	char *error;
	struct dk_detok dt;
	struct dk_grammar_state *gs; /* borrowed from the slot while admitted */
	struct dk_span *span;        /* the copy constraint, while admitted */
};

struct slot {
	struct job *job;
	struct dk_sampler *smp;
	struct dk_grammar_state **gs; /* per grammar, kept across jobs: its mask caches stay warm */
};

struct dk_sched {
	struct dk_sched_params p;
	struct dk_prefixes *pfx;
	struct dk_batch *batch;
	float *scratch;
	struct slot *slots;
	struct job *q_head, *q_tail;
	int q_len;
	uint64_t n_decodes;
	bool warmed_up;       /* a first step has run (the first job's head is computed) */
	uint64_t warm[512];   /* heads known to be in the prefix cache */
	int n_warm, warm_pos;
	char err[DK_ERRMSG_MAX];
};

static uint64_t hash64(const void *p, size_t n)
{
	uint8_t d[32];
	dk_sha256(p, n, d);
	uint64_t k = 0;
	for (int i = 0; i < 8; i++)
		k = k << 8 | d[i];
	return k;
}

struct dk_job_spec dk_job_default_spec(void)
{
	struct dk_job_spec s;
	memset(&s, 0, sizeof s);
	s.kind = DK_JOB_GEN;
	s.sp = dk_sampler_default_params();
	s.grammar = -1;
	return s;
}

void dk_sched_default_params(struct dk_sched_params *p)
{
	memset(p, 0, sizeof *p);
	p->n_seq = 1;
	p->n_batch = 512;
	p->prefix_cache = true;
}

enum dk_status dk_sched_new(struct dk_sched **out, const struct dk_sched_params *p)
{
	*out = NULL;
	struct dk_sched *s = calloc(1, sizeof *s);
	if (!s)
		return DK_FATAL;
	s->p = *p;
	s->batch = dk_batch_new(p->n_batch);
	s->scratch = malloc((size_t)p->n_vocab * sizeof *s->scratch);
	s->slots = calloc((size_t)p->n_seq, sizeof *s->slots);
	if (!s->batch || !s->scratch || !s->slots) {
		dk_sched_free(s);
		return DK_FATAL;
	}
	*out = s;
	return DK_OK;
}

static void job_free(struct job *j)
{
	if (!j)
		return;
	free(j->toks);
	free(j->choices);
	free(j->choice_logp);
	dk_buf_free(&j->text);
	free(j->error);
	dk_span_free(j->span);
	free(j);
}

/* Hands j's result to its callback and frees it. */
static void job_end(struct job *j)
{
	struct dk_job_result r = {
		.finish = j->finish,
		.text = j->text.data ? j->text.data : "",
		.logp = j->logp,
		.choice_logp = j->choice_logp,
		.n_choices = j->choice_logp ? j->sp.n_choices : 0,
		.n_prompt = j->n_toks,
		.n_cached = j->n_cached,
		.n_gen = j->n_gen,
		.constrained = j->sp.grammar >= 0,
		.error = j->error,
	};
	if (j->sp.done)
		j->sp.done(j->sp.ud, &r);
	job_free(j);
}

void dk_sched_cancel_all(struct dk_sched *s)
{
	for (int i = 0; i < s->p.n_seq; i++) {
		struct job *j = s->slots[i].job;
		if (!j)
			continue;
		dk_kv_seq_clear(s->p.ctx, i);
		s->slots[i].job = NULL;
		j->finish = DK_FINISH_CANCELLED;
		job_end(j);
	}
	while (s->q_head) {
		struct job *j = s->q_head;
		s->q_head = j->next;
		s->q_len--;
		j->finish = DK_FINISH_CANCELLED;
		job_end(j);
	}
	s->q_tail = NULL;
	s->q_len = 0;
}

void dk_sched_free(struct dk_sched *s)
{
	if (!s)
		return;
	if (s->slots) {
		dk_sched_cancel_all(s);
		for (int i = 0; i < s->p.n_seq; i++) {
			dk_sampler_free(s->slots[i].smp);
			for (int g = 0; s->slots[i].gs && g < s->p.n_grammars; g++)
				dk_grammar_state_free(s->slots[i].gs[g]);
			free(s->slots[i].gs);
		}
	}
	free(s->slots);
	free(s->scratch);
	dk_batch_free(s->batch);
	free(s);
}

void dk_sched_set_prefixes(struct dk_sched *s, struct dk_prefixes *pfx) { s->pfx = pfx; }

int dk_sched_queued(const struct dk_sched *s) { return s->q_len; }

uint64_t dk_sched_decodes(const struct dk_sched *s) { return s->n_decodes; }

int dk_sched_active(const struct dk_sched *s)
{
	int n = 0;
	for (int i = 0; i < s->p.n_seq; i++)
		n += s->slots[i].job != NULL;
	return n;
}

const char *dk_sched_error(const struct dk_sched *s) { return s->err; }

enum dk_status dk_sched_submit(struct dk_sched *s, const struct dk_job_spec *spec, dk_token *toks,
			       int n_toks)
{
	struct job *j = calloc(1, sizeof *j);
	if (!j) {
		free(toks);
		return DK_FATAL;
	}
	j->sp = *spec;
	j->toks = toks;
	j->n_toks = n_toks;
	if (spec->kind == DK_JOB_SCORE && spec->n_choices > 0) {
		j->choices = malloc((size_t)spec->n_choices * sizeof *j->choices);
		j->choice_logp = calloc((size_t)spec->n_choices, sizeof *j->choice_logp);
		if (!j->choices || !j->choice_logp) {
			job_free(j);
			return DK_FATAL;
		}
		memcpy(j->choices, spec->choices, (size_t)spec->n_choices * sizeof *j->choices);
	} else {
		j->sp.n_choices = 0;
	}
	j->sp.choices = NULL;
	if (j->sp.n_prefix > n_toks)
		j->sp.n_prefix = n_toks;
	if (j->sp.n_static > n_toks)
		j->sp.n_static = n_toks;
	j->slot = -1;
	j->pkey = hash64(toks, (size_t)j->sp.n_prefix * sizeof *toks);
	if (s->q_tail)
		s->q_tail->next = j;
	else
		s->q_head = j;
	s->q_tail = j;
	s->q_len++;
	return DK_OK;
}

/* ---- prefix warming ---- */

static bool warm_has(const struct dk_sched *s, uint64_t k)
{
	for (int i = 0; i < s->n_warm; i++)
		if (s->warm[i] == k)
			return true;
	return false;
}

static void warm_add(struct dk_sched *s, uint64_t k)
{
	if (warm_has(s, k))
		return;
	int cap = (int)(sizeof s->warm / sizeof s->warm[0]);
	if (s->n_warm < cap)
		s->warm[s->n_warm++] = k;
	else {
		s->warm[s->warm_pos] = k;
		s->warm_pos = (s->warm_pos + 1) % cap;
	}
}

/* Jobs wait while another job is computing their shared prefix, so that
 * they find it in the prefix cache instead of computing it again. */
static bool eligible(const struct dk_sched *s, const struct job *j)
{
	if (!s->p.prefix_cache || j->sp.n_prefix < 16 || warm_has(s, j->pkey))
		return true;
	for (int i = 0; i < s->p.n_seq; i++) {
		const struct job *a = s->slots[i].job;
		if (a && !a->warmed && a->pkey == j->pkey)
			return false;
	}
	return true;
}

static struct job *pick(struct dk_sched *s)
{
	struct job *prev = NULL;
	int scanned = 0;
	for (struct job *j = s->q_head; j && scanned < 4 * s->p.n_seq; prev = j, j = j->next, scanned++) {
		if (!eligible(s, j))
			continue;
		if (prev)
			prev->next = j->next;
		else
			s->q_head = j->next;
		if (s->q_tail == j)
			s->q_tail = prev;
		s->q_len--;
		j->next = NULL;
		return j;
	}
	return NULL;
}

/* ---- admission ---- */

static void finish_job(struct dk_sched *s, struct job *j, enum dk_finish why)
{
	struct slot *sl = &s->slots[j->slot];
	j->finish = why;
	j->gs = NULL;
	dk_kv_seq_clear(s->p.ctx, j->slot);
	sl->job = NULL;
	job_end(j);
}

/* Gives job j the slot's state for its grammar, back at the start and past
 * the forced bytes. */
static int grammar_begin(struct dk_sched *s, struct slot *sl, struct job *j)
{
	if (!sl->gs) {
		sl->gs = calloc((size_t)s->p.n_grammars, sizeof *sl->gs);
		if (!sl->gs)
			return -1;
	}
	struct dk_grammar_state **g = &sl->gs[j->sp.grammar];
	if (!*g && !(*g = dk_grammar_state_new(s->p.grammars[j->sp.grammar], s->p.gvocab)))
		return -1;
	dk_grammar_state_reset(*g);
	if (j->sp.forced) {
		if (dk_grammar_accept_bytes(*g, j->sp.forced, strlen(j->sp.forced)) != DK_OK)
			return -1;
		if (!j->text.len)
			dk_buf_puts(&j->text, j->sp.forced);
	}
	j->gs = *g;
	return 0;
}

static int admit(struct dk_sched *s, int slot, struct job *j)
{
	struct slot *sl = &s->slots[slot];
	struct dk_ctx *ctx = s->p.ctx;
	dk_kv_seq_clear(ctx, slot);
	j->slot = slot;
	if (s->pfx && dk_prefixes_load(s->pfx, ctx, j->toks, j->sp.n_static) != DK_OK)
		fprintf(stderr, "docket: %s; computing the instructions instead\n",
			dk_prefixes_error(s->pfx));
	/* a score job reads logits from its last prompt token on: the attached
	 * prefix must stop before it */
	int first_logits = j->sp.kind == DK_JOB_SCORE ? j->sp.score_from - 1 : j->n_toks - 1;
	j->n_past = s->p.prefix_cache
			    ? dk_kv_seq_reuse_prefix(ctx, slot, j->toks, j->n_toks, first_logits)
			    : 0;
	if (j->n_past < 0)
		j->n_past = 0;
	j->n_cached = j->n_past;
	if (getenv("DOCKET_DEBUG_SCHED"))
		fprintf(stderr, "admit slot %d: %d tokens, prefix %d key %016llx%s, reused %d\n", slot,
			j->n_toks, j->sp.n_prefix, (unsigned long long)j->pkey,
			warm_has(s, j->pkey) ? " warm" : "", j->n_past);
	if (j->n_past >= j->sp.n_prefix) {
		j->warmed = true;
		warm_add(s, j->pkey);
	}
	dk_sampler_free(sl->smp);
	sl->smp = NULL;
	if (j->sp.kind == DK_JOB_GEN) {
		sl->smp = dk_sampler_new(&j->sp.sp, s->p.n_vocab);
		if (!sl->smp)
			return -1;
		/* The prompt's last tokens are in the penalty window, as in docket
		 * generate and llama.cpp, so a pipeline's repeat_penalty means the
		 * same there and here. */
		int last = j->sp.sp.penalty_last_n;
		for (int i = last > 0 && j->n_toks > last ? j->n_toks - last : 0; last > 0 && i < j->n_toks;
		     i++)
			dk_sampler_accept(sl->smp, j->toks[i]);
		dk_detok_init(&j->dt, s->p.tok);
		if (j->sp.grammar >= 0 && grammar_begin(s, sl, j))
			return -1;
		if (j->sp.span && s->p.gvocab &&
		    !(j->span = dk_span_new(j->sp.span, j->sp.span_len, s->p.gvocab,
					    j->sp.span_end ? j->sp.span_end : "")))
			return -1;
		size_t nf = j->sp.forced ? strlen(j->sp.forced) : 0;
		if (j->span && nf > j->sp.span_skip)
			dk_span_accept_bytes(j->span, j->sp.forced + j->sp.span_skip, nf - j->sp.span_skip);
	}
	j->last = DK_TOKEN_NULL;
	sl->job = j;
	return 0;
}

/* Fills free slots from the queue.  The first job runs alone for one step:
 * it computes the prompt head every job shares (system prompt,
 * instructions), which the others then find in the prefix cache. */
static enum dk_status admit_all(struct dk_sched *s)
{
	for (int i = 0; i < s->p.n_seq && s->q_head; i++) {
		if (s->slots[i].job)
			continue;
		if (s->p.prefix_cache && !s->warmed_up && i > 0)
			break;
		struct job *j = pick(s);
		if (!j)
			break;
		if (admit(s, i, j)) {
			s->slots[i].job = NULL;
			j->finish = DK_FINISH_CANCELLED;
			job_end(j);
			return dk_err(s->err, sizeof s->err, DK_FATAL, "out of memory");
		}
	}
	return DK_OK;
}

/* ---- sampling ---- */

static bool hit_stop(struct job *j, size_t added)
{
	for (size_t i = 0; i < j->sp.n_stop; i++) {
		size_t sl = strlen(j->sp.stop[i]);
		if (!sl)
			continue;
		size_t from = j->text.len > added + sl ? j->text.len - added - sl : 0;
		char *hit = strstr(j->text.data + from, j->sp.stop[i]);
		if (hit) {
			j->text.len = (size_t)(hit - j->text.data);
			j->text.data[j->text.len] = 0;
			return true;
		}
	}
	return false;
}

/* Samples the next token of a generate job from logits. */
static void sample(struct dk_sched *s, struct job *j, const float *logits)
{
	struct slot *sl = &s->slots[j->slot];
	memcpy(s->scratch, logits, (size_t)s->p.n_vocab * sizeof *s->scratch);
	dk_token t;
	if (j->span)
		dk_span_apply(j->span, s->scratch, j->sp.max_tokens - j->n_gen);
	if (j->gs) {
		/* the budget keeps room to close the structure */
		t = dk_grammar_sample(j->gs, sl->smp, s->scratch, j->sp.max_tokens - j->n_gen);
		if (t == DK_TOKEN_NULL && j->span) {
			/* nothing both copies and fits the grammar: the grammar alone */
			dk_span_free(j->span);
			j->span = NULL;
			memcpy(s->scratch, logits, (size_t)s->p.n_vocab * sizeof *s->scratch);
			t = dk_grammar_sample(j->gs, sl->smp, s->scratch, j->sp.max_tokens - j->n_gen);
		}
		if (t == DK_TOKEN_NULL) {
			if (!dk_grammar_is_complete(j->gs)) {
				const char *why = dk_grammar_state_error(j->gs);
				char m[DK_ERRMSG_MAX];
				snprintf(m, sizeof m, "constrained decoding: %s",
					 why && *why ? why : "no token can continue the output");
				j->error = strdup(m);
			}
			finish_job(s, j, DK_FINISH_STOP);
			return;
		}
	} else {
		t = dk_sampler_sample(sl->smp, s->scratch);
	}
	if (j->span)
		dk_span_accept(j->span, t);
	dk_sampler_accept(sl->smp, t);
	if (!j->sp.ignore_eog && dk_token_is_eog(s->p.tok, t)) {
		finish_job(s, j, DK_FINISH_STOP);
		return;
	}
	j->n_gen++;
	char piece[256];
	int n = dk_detok_push(&j->dt, t, piece, sizeof piece);
	size_t added = 0;
	if (n > 0) {
		dk_buf_append(&j->text, piece, (size_t)n);
		added = (size_t)n;
	}
	/* a grammar says where the output ends: stop strings are for free text
	 * (a newline inside a JSON object is whitespace, not the end) */
	if (!j->gs && j->text.data && hit_stop(j, added)) {
		finish_job(s, j, DK_FINISH_STOP);
		return;
	}
	if (j->gs && !dk_grammar_can_continue(j->gs)) {
		finish_job(s, j, DK_FINISH_STOP);
		return;
	}
	if (j->n_gen >= j->sp.max_tokens || j->n_past + 1 >= s->p.n_ctx) {
		finish_job(s, j, DK_FINISH_LENGTH);
		return;
	}
	j->last = t;
}

/* ---- the step ---- */

/* One dk_decode over every live sequence: decode tokens first, then
 * prefill chunks in the space left. */
static enum dk_status decode(struct dk_sched *s)
{
	struct dk_batch *b = s->batch;
	struct dk_ctx *ctx = s->p.ctx;
	dk_batch_clear(b);
	int budget = s->p.n_batch;
	for (int i = 0; i < s->p.n_seq; i++) {
		struct job *j = s->slots[i].job;
		if (!j)
			continue;
		j->bcount = 0;
		if (j->n_past >= j->n_toks && j->last != DK_TOKEN_NULL && budget > 0) {
			j->bfirst = b->n_tokens;
			dk_batch_add(b, j->last, j->n_past, i, true);
			j->bcount = 1;
			budget--;
		}
	}
	for (int i = 0; i < s->p.n_seq && budget > 0; i++) {
		struct job *j = s->slots[i].job;
		if (!j || j->n_past >= j->n_toks)
			continue;
		int m = j->n_toks - j->n_past;
		if (m > budget)
			m = budget;
		j->bfirst = b->n_tokens;
		for (int k = 0; k < m; k++) {
			int t = j->n_past + k;
			bool want = j->sp.kind == DK_JOB_GEN
					    ? t == j->n_toks - 1
					    : (t >= j->sp.score_from - 1 && t < j->n_toks - 1) ||
						      (j->sp.n_choices && t == j->n_toks - 1);
			dk_batch_add(b, j->toks[t], t, i, want);
		}
		j->bcount = m;
		budget -= m;
	}
	if (b->n_tokens == 0)
		return DK_OK;
	enum dk_status st = dk_decode(ctx, b);
	s->n_decodes++;
	if (st == DK_FATAL)
		return dk_err(s->err, sizeof s->err, DK_FATAL, "decode failed: %s", dk_ctx_error(ctx));
	for (int i = 0; i < s->p.n_seq; i++) {
		struct job *j = s->slots[i].job;
		if (!j || !j->bcount)
			continue;
		if (st != DK_OK) {
			j->error = strdup(dk_ctx_error(ctx));
			finish_job(s, j, DK_FINISH_STOP);
			continue;
		}
		if (j->n_past < j->n_toks) { /* prefill */
			int first = j->n_past;
			j->n_past += j->bcount;
			if (j->sp.kind == DK_JOB_SCORE)
				for (int t = first; t < j->n_past; t++) {
					if (t >= j->sp.score_from - 1 && t < j->n_toks - 1) {
						const float *l = dk_logits(ctx, j->bfirst + t - first);
						if (l)
							j->logp += dk_log_softmax_at(l, s->p.n_vocab, j->toks[t + 1]);
					}
					if (j->sp.n_choices && t == j->n_toks - 1) {
						const float *l = dk_logits(ctx, j->bfirst + t - first);
						for (int k = 0; l && k < j->sp.n_choices; k++)
							j->choice_logp[k] = dk_log_softmax_at(l, s->p.n_vocab, j->choices[k]);
					}
				}
			if (!j->warmed && j->n_past >= j->sp.n_prefix) {
				j->warmed = true;
				warm_add(s, j->pkey);
			}
			if (s->pfx && first < j->sp.n_static && j->n_past >= j->sp.n_static &&
			    dk_prefixes_save(s->pfx, ctx, j->slot, j->toks, j->sp.n_static) != DK_OK)
				fprintf(stderr, "docket: %s; the next run computes the instructions again\n",
					dk_prefixes_error(s->pfx));
			if (j->n_past == j->n_toks) {
				if (j->sp.kind == DK_JOB_SCORE)
					finish_job(s, j, DK_FINISH_STOP);
				else
					sample(s, j, dk_logits(ctx, j->bfirst + j->bcount - 1));
			}
		} else {
			j->n_past++;
			sample(s, j, dk_logits(ctx, j->bfirst));
		}
	}
	return DK_OK;
}

enum dk_status dk_sched_step(struct dk_sched *s)
{
	enum dk_status st = admit_all(s);
	if (st != DK_OK || !dk_sched_active(s))
		return st;
	st = decode(s);
	s->warmed_up = true;
	return st;
}
