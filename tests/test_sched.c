/* The scheduler driven directly on the tiny model: admission order,
 * fairness, slot reuse, cancellation, KV pressure, score jobs that give
 * the same log-probability with the prefix cache on and off, and choice
 * tokens scored in one job as in one job each. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/model.h"
#include "runner/sched.h"
#include "testutil.h"

static struct dk_model *model;
static const struct dk_tokenizer *tok;
static int32_t nv;

static int setup(void **s)
{
	(void)s;
	if (dk_model_load(&model, dk_test_shared("models/stories260K.gguf"), NULL) != DK_OK)
		return -1;
	nv = dk_model_info(model)->n_vocab;
	tok = dk_model_tokenizer(model);
	return 0;
}

static int teardown(void **s)
{
	(void)s;
	dk_model_free(model);
	return 0;
}

/* What the callbacks saw, in order. */
#define MAX_DONE 64
struct seen {
	int order[MAX_DONE]; /* job tags in the order they finished */
	int n;
	int calls[MAX_DONE]; /* callbacks per tag */
	char *text[MAX_DONE];
	double logp[MAX_DONE];
	enum dk_finish finish[MAX_DONE];
	char *error[MAX_DONE];
	int n_cached[MAX_DONE];
	double choice[MAX_DONE][4];
	int n_choices[MAX_DONE];
};

struct tag {
	struct seen *seen;
	int id;
};

static void on_done(void *ud, const struct dk_job_result *r)
{
	struct tag *t = ud;
	struct seen *s = t->seen;
	s->order[s->n++] = t->id;
	s->calls[t->id]++;
	s->text[t->id] = strdup(r->text);
	s->logp[t->id] = r->logp;
	s->finish[t->id] = r->finish;
	s->error[t->id] = r->error ? strdup(r->error) : NULL;
	s->n_cached[t->id] = r->n_cached;
	s->n_choices[t->id] = r->n_choices;
	for (int k = 0; k < r->n_choices && k < 4; k++)
		s->choice[t->id][k] = r->choice_logp[k];
}

static void seen_free(struct seen *s)
{
	for (int i = 0; i < MAX_DONE; i++) {
		free(s->text[i]);
		free(s->error[i]);
	}
}

struct rig {
	struct dk_ctx *ctx;
	struct dk_sched *sched;
	struct seen seen;
	struct tag tags[MAX_DONE];
};

static void rig_init(struct rig *g, bool cache, int32_t nseq, int32_t blocks)
{
	memset(g, 0, sizeof *g);
	struct dk_ctx_params p = dk_ctx_default_params();
	p.n_ctx = 256;
	p.n_seq_max = nseq;
	p.n_batch = 64;
	p.n_threads = 1;
	p.prefix_cache = cache;
	p.kv_blocks = blocks;
	assert_int_equal(dk_ctx_new(&g->ctx, model, &p), DK_OK);
	struct dk_sched_params sp;
	dk_sched_default_params(&sp);
	sp.ctx = g->ctx;
	sp.tok = tok;
	sp.n_seq = nseq;
	sp.n_batch = 64;
	sp.n_ctx = 256;
	sp.n_vocab = nv;
	sp.prefix_cache = cache;
	assert_int_equal(dk_sched_new(&g->sched, &sp), DK_OK);
	for (int i = 0; i < MAX_DONE; i++)
		g->tags[i] = (struct tag){&g->seen, i};
}

static void rig_free(struct rig *g)
{
	dk_sched_free(g->sched);
	dk_ctx_free(g->ctx);
	seen_free(&g->seen);
}

/* n tokens: a head shared by every job (seed 0 for all), then a tail of the job's own */
static dk_token *prompt(int n, int shared, unsigned seed)
{
	dk_token *t = malloc((size_t)n * sizeof *t);
	t[0] = 1; /* BOS */
	for (int i = 1; i < n; i++) {
		unsigned k = i < shared ? 7u * (unsigned)i : seed * 131u + 17u * (unsigned)i;
		t[i] = (dk_token)(3 + k % (unsigned)(nv - 3));
	}
	return t;
}

static void submit_gen(struct rig *g, int id, int n_toks, int shared, int max_tokens)
{
	struct dk_job_spec s = dk_job_default_spec();
	s.sp.temperature = 0;
	s.max_tokens = max_tokens;
	s.n_prefix = shared;
	s.done = on_done;
	s.ud = &g->tags[id];
	assert_int_equal(dk_sched_submit(g->sched, &s, prompt(n_toks, shared, (unsigned)id + 1), n_toks),
			 DK_OK);
}

static void submit_score(struct rig *g, int id, const dk_token *toks, int n, int score_from,
			 int shared)
{
	struct dk_job_spec s = dk_job_default_spec();
	s.kind = DK_JOB_SCORE;
	s.score_from = score_from;
	s.n_prefix = shared;
	s.done = on_done;
	s.ud = &g->tags[id];
	dk_token *copy = malloc((size_t)n * sizeof *copy);
	memcpy(copy, toks, (size_t)n * sizeof *copy);
	assert_int_equal(dk_sched_submit(g->sched, &s, copy, n), DK_OK);
}

/* Steps until idle; returns the most slots seen busy at once. */
static int drain(struct rig *g)
{
	int most = 0;
	for (int guard = 0; dk_sched_queued(g->sched) || dk_sched_active(g->sched); guard++) {
		assert_true(guard < 10000);
		assert_int_equal(dk_sched_step(g->sched), DK_OK);
		if (dk_sched_active(g->sched) > most)
			most = dk_sched_active(g->sched);
	}
	return most;
}

/* One slot: jobs run in the order they were submitted. */
static void test_admission_order(void **st)
{
	(void)st;
	struct rig g;
	rig_init(&g, false, 1, 0);
	for (int i = 0; i < 5; i++)
		submit_gen(&g, i, 20 + i, 0, 4);
	assert_int_equal(dk_sched_queued(g.sched), 5);
	drain(&g);
	assert_int_equal(g.seen.n, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g.seen.order[i], i);
		assert_int_equal(g.seen.calls[i], 1);
		assert_null(g.seen.error[i]);
	}
	rig_free(&g);
}

/* A long job does not hold back short ones queued behind it: they use the
 * other slot and finish first. */
static void test_fairness(void **st)
{
	(void)st;
	struct rig g;
	rig_init(&g, false, 2, 0);
	submit_gen(&g, 0, 20, 0, 60);
	for (int i = 1; i <= 4; i++)
		submit_gen(&g, i, 20, 0, 2);
	drain(&g);
	assert_int_equal(g.seen.n, 5);
	assert_int_equal(g.seen.order[4], 0);
	assert_int_equal(g.seen.finish[0], DK_FINISH_LENGTH);
	rig_free(&g);
}

/* Eight jobs through three slots: never more than three at once, and each
 * job's output is the one it gets alone. */
static void test_slot_reuse(void **st)
{
	(void)st;
	struct rig alone, many;
	rig_init(&alone, true, 1, 0);
	rig_init(&many, true, 3, 0);
	for (int i = 0; i < 8; i++) {
		submit_gen(&alone, i, 40, 32, 6 + i % 3);
		submit_gen(&many, i, 40, 32, 6 + i % 3);
	}
	drain(&alone);
	assert_int_equal(drain(&many), 3);
	assert_int_equal(many.seen.n, 8);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(many.seen.calls[i], 1);
		assert_string_equal(many.seen.text[i], alone.seen.text[i]);
	}
	/* the shared head was computed once, then served from the prefix cache */
	int cached = 0;
	for (int i = 0; i < 8; i++)
		cached += many.seen.n_cached[i] > 0;
	assert_true(cached >= 6);
	rig_free(&alone);
	rig_free(&many);
}

/* Cancelling ends running and queued jobs alike, each callback once. */
static void test_cancellation(void **st)
{
	(void)st;
	struct rig g;
	rig_init(&g, false, 2, 0);
	for (int i = 0; i < 5; i++)
		submit_gen(&g, i, 20, 0, 50);
	assert_int_equal(dk_sched_step(g.sched), DK_OK);
	assert_int_equal(dk_sched_active(g.sched), 2);
	assert_int_equal(dk_sched_queued(g.sched), 3);
	dk_sched_cancel_all(g.sched);
	assert_int_equal(dk_sched_active(g.sched), 0);
	assert_int_equal(dk_sched_queued(g.sched), 0);
	assert_int_equal(g.seen.n, 5);
	for (int i = 0; i < 5; i++) {
		assert_int_equal(g.seen.calls[i], 1);
		assert_int_equal(g.seen.finish[i], DK_FINISH_CANCELLED);
	}
	/* the scheduler goes on after a cancel */
	submit_gen(&g, 5, 20, 0, 3);
	drain(&g);
	assert_int_equal(g.seen.calls[5], 1);
	assert_int_equal(g.seen.finish[5], DK_FINISH_LENGTH);
	rig_free(&g);
}

/* A KV cache too small for every slot at once: the step never fails as a
 * whole, each job ends once, and a job that completes has its uncontended
 * output (one that does not fit says so). */
static void test_kv_pressure(void **st)
{
	(void)st;
	struct rig alone, tight;
	rig_init(&alone, false, 1, 0);
	rig_init(&tight, false, 4, 6); /* 96 positions for four 40-token jobs */
	for (int i = 0; i < 6; i++) {
		submit_gen(&alone, i, 30, 0, 10);
		submit_gen(&tight, i, 30, 0, 10);
	}
	drain(&alone);
	drain(&tight);
	assert_int_equal(tight.seen.n, 6);
	int ok = 0;
	for (int i = 0; i < 6; i++) {
		assert_int_equal(tight.seen.calls[i], 1);
		if (tight.seen.error[i]) {
			assert_non_null(strstr(tight.seen.error[i], "kv cache full"));
		} else {
			assert_string_equal(tight.seen.text[i], alone.seen.text[i]);
			ok++;
		}
	}
	assert_true(ok >= 1);
	rig_free(&alone);
	rig_free(&tight);
}

/* A score job's log-probability does not depend on the prefix cache, also
 * when the cached blocks reach past the first scored position (the attach
 * must stop before the first position whose logits are read). */
static void test_score_prefix_cache(void **st)
{
	(void)st;
	dk_token *toks = prompt(64, 64, 1);
	double want[4];
	for (int on = 1; on >= 0; on--) {
		struct rig g;
		rig_init(&g, on, 2, 0);
		/* the first job caches all of 0..47 (three blocks); the second
		 * scores from 40, inside the third block */
		submit_score(&g, 0, toks, 64, 60, 16);
		drain(&g);
		submit_score(&g, 1, toks, 64, 40, 16);
		submit_score(&g, 2, toks, 50, 35, 16);
		submit_score(&g, 3, toks, 64, 60, 16);
		drain(&g);
		for (int i = 0; i < 4; i++) {
			assert_null(g.seen.error[i]);
			if (on)
				want[i] = g.seen.logp[i];
			else if (g.seen.logp[i] != want[i])
				fail_msg("score job %d: %.17g with the prefix cache, %.17g without", i,
					 want[i], g.seen.logp[i]);
		}
		if (on) {
			assert_true(g.seen.n_cached[1] > 0 && g.seen.n_cached[1] <= 39);
			assert_true(g.seen.n_cached[3] >= 48);
		}
		rig_free(&g);
	}
	free(toks);
}

/* The log-probability of each choice token after a prompt, from one job,
 * is bit for bit what a score job of prompt + that token gives; a score job
 * with choices also scores its own tail. */
/* The prompt's last tokens are in the repeat-penalty window, as in docket
 * generate and llama.cpp: greedy after "Tom and Lily. Tom and Lily. ..."
 * picks a token of the prompt; with a crushing penalty it must not. */
static void test_prompt_penalty(void **st)
{
	(void)st;
	const char *text = "Tom and Lily. Tom and Lily. Tom and Lily. Tom and Lily. Tom and";
	dk_token toks[64];
	int n = dk_tokenize(tok, text, strlen(text), true, false, toks, 64);
	assert_true(n > 8 && n < 64);
	char first[2][64];
	for (int k = 0; k < 2; k++) {
		struct rig g;
		rig_init(&g, true, 1, 0);
		struct dk_job_spec s = dk_job_default_spec();
		s.sp.temperature = 0;
		s.sp.repeat_penalty = k ? 1e30f : 1.0f;
		s.sp.penalty_last_n = 64;
		s.max_tokens = 1;
		s.done = on_done;
		s.ud = &g.tags[0];
		dk_token *copy = malloc((size_t)n * sizeof *copy);
		memcpy(copy, toks, (size_t)n * sizeof *copy);
		assert_int_equal(dk_sched_submit(g.sched, &s, copy, n), DK_OK);
		drain(&g);
		assert_non_null(g.seen.text[0]);
		snprintf(first[k], sizeof first[k], "%s", g.seen.text[0]);
		rig_free(&g);
	}
	bool in_prompt[2] = {false, false};
	for (int i = 0; i < n; i++) {
		char piece[64];
		int m = dk_token_to_piece(tok, toks[i], piece, (int)sizeof piece - 1, false);
		if (m <= 0)
			continue;
		piece[m] = 0;
		for (int k = 0; k < 2; k++)
			in_prompt[k] |= strcmp(piece, first[k]) == 0;
	}
	assert_true(in_prompt[0]);  /* the case is meaningful */
	assert_false(in_prompt[1]); /* and the penalty reached the prompt */
}

static void test_score_choices(void **st)
{
	(void)st;
	dk_token *toks = prompt(41, 41, 1);
	const dk_token choice[4] = {5, 17, (dk_token)(nv - 1), 5};
	for (int on = 1; on >= 0; on--) {
		struct rig g;
		rig_init(&g, on, 4, 0);
		struct dk_job_spec s = dk_job_default_spec();
		s.kind = DK_JOB_SCORE;
		s.score_from = 40;
		s.n_prefix = 40;
		s.choices = choice;
		s.n_choices = 4;
		s.done = on_done;
		s.ud = &g.tags[0];
		dk_token *copy = malloc(40 * sizeof *copy);
		memcpy(copy, toks, 40 * sizeof *copy);
		assert_int_equal(dk_sched_submit(g.sched, &s, copy, 40), DK_OK);
		/* the same with a scored tail: token 40 of toks */
		s.score_from = 40;
		s.ud = &g.tags[5];
		copy = malloc(41 * sizeof *copy);
		memcpy(copy, toks, 41 * sizeof *copy);
		assert_int_equal(dk_sched_submit(g.sched, &s, copy, 41), DK_OK);
		for (int k = 0; k < 4; k++) {
			dk_token t[41];
			memcpy(t, toks, 40 * sizeof *t);
			t[40] = choice[k];
			submit_score(&g, 1 + k, t, 41, 40, 40);
		}
		drain(&g);
		assert_int_equal(g.seen.n_choices[0], 4);
		assert_int_equal(g.seen.n_choices[1], 0);
		assert_true(g.seen.logp[0] == 0); /* nothing of its own to score */
		for (int k = 0; k < 4; k++) {
			assert_true(g.seen.choice[0][k] < 0);
			if (g.seen.choice[0][k] != g.seen.logp[1 + k])
				fail_msg("choice %d: %.17g in one job, %.17g alone", k, g.seen.choice[0][k],
					 g.seen.logp[1 + k]);
		}
		assert_true(g.seen.choice[0][0] == g.seen.choice[0][3]);
		/* the job over 41 tokens: choices after token 40, its tail is token 40 */
		assert_int_equal(g.seen.n_choices[5], 4);
		dk_token t[41];
		memcpy(t, toks, 41 * sizeof *t);
		submit_score(&g, 9, t, 41, 40, 40);
		drain(&g);
		assert_true(g.seen.logp[5] == g.seen.logp[9]);
		rig_free(&g);
	}
	free(toks);
}

int main(void)
{
	/* the group setup loads a model from ../shared, and a setup cannot skip */
	dk_test_require(dk_test_shared_root(), "../shared (the shared test data)");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_admission_order), cmocka_unit_test(test_fairness),
		cmocka_unit_test(test_slot_reuse),      cmocka_unit_test(test_cancellation),
		cmocka_unit_test(test_kv_pressure),     cmocka_unit_test(test_score_prefix_cache),
		cmocka_unit_test(test_score_choices),   cmocka_unit_test(test_prompt_penalty),
	};
	return dk_test_run_group(tests, setup, teardown);
}
