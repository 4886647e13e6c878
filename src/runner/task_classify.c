/* classify: one label per chunk or document from the pipeline's label
 * list, scored (not generated), calibrated against a content-free document. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/task.h"

/* --fail-on hits named on stderr, so a CI log says which files to look at */
#define FAIL_ON_NAMED 50

static void labels_json(struct runner *R, const double *probs, json_t **labels, const char **best)
{
	*labels = json_object();
	size_t bi = 0;
	for (size_t i = 0; i < R->pl->n_labels; i++) {
		json_object_set_new(*labels, R->pl->labels[i], json_real(round(probs[i] * 1e6) / 1e6));
		if (probs[i] > probs[bi])
			bi = i;
	}
	*best = R->pl->labels[bi];
}

/* Label distribution of one chunk.  Small models prefer some labels
 * whatever the text says; dividing by the probabilities they give a
 * content-free document ("contextual calibration", Zhao et al. 2021)
 * removes that bias. */
static void chunk_probs(struct runner *R, const struct cres *c, double *out)
{
	double mx = -INFINITY;
	size_t n = R->pl->n_labels;
	for (size_t i = 0; i < n; i++) {
		out[i] = c->logp[i] + (c->logp_tail ? c->logp_tail[i] : 0) - (R->calib ? R->calib[i] : 0);
		if (out[i] > mx)
			mx = out[i];
	}
	double sum = 0;
	for (size_t i = 0; i < n; i++)
		sum += out[i] = exp(out[i] - mx);
	for (size_t i = 0; i < n; i++)
		out[i] /= sum;
}

static bool fail_on_label(struct runner *R, const char *label)
{
	for (size_t i = 0; i < R->p->n_fail_on; i++)
		if (!strcmp(R->p->fail_on[i], label))
			return true;
	return false;
}

/* A classify output: the label distribution probs goes into rec, the
 * chosen label is returned (and counted, and named, when --fail-on names it). */
static json_t *label_output(struct runner *R, const struct doc *d, const double *probs, json_t *rec)
{
	json_t *labels;
	const char *best;
	labels_json(R, probs, &labels, &best);
	json_object_set_new(rec, "labels", labels);
	if (fail_on_label(R, best) && ++R->st->fail_on_hits <= FAIL_ON_NAMED)
		fprintf(stderr, "docket: --fail-on: '%s' is %s%s\n", d->path, best,
			R->st->fail_on_hits == FAIL_ON_NAMED ? " (further hits are counted, not named)"
							      : "");
	return json_string(best);
}

static json_t *classify_schema(const struct dk_pipeline *pl)
{
	json_t *en = json_array();
	for (size_t i = 0; i < pl->n_labels; i++)
		json_array_append_new(en, json_string(pl->labels[i]));
	return json_pack("{s:s, s:{s:{s:s, s:o}}, s:[s], s:b}", "type", "object", "properties",
			 "label", "type", "string", "enum", en, "required", "label",
			 "additionalProperties", 0);
}

/* The label an answer names: {"label": L}, or text equal to / containing a
 * label (case-insensitive).  -1 when none. */
static int answer_label(const struct dk_pipeline *pl, const char *content)
{
	json_t *j = json_loads(content, 0, NULL);
	const char *l = json_string_value(json_object_get(j, "label"));
	bool structured = json_is_object(j);
	char *t = dk_run_trim_dup(l ? l : content);
	json_decref(j);
	int found = -1;
	if (structured && !l) {
		free(t);
		return -1;
	}
	for (size_t i = 0; t && i < pl->n_labels && found < 0; i++)
		if (!strcasecmp(t, pl->labels[i]))
			found = (int)i;
	/* free text naming a label; an object must say it in "label" */
	for (size_t i = 0; t && !structured && i < pl->n_labels && found < 0; i++)
		if (strcasestr(t, pl->labels[i]))
			found = (int)i;
	free(t);
	return found;
}

/* Queues the labels of a content-free document; records wait for it. */
static void start_calibration(struct runner *R)
{
	if (!R->pl->calibrate)
		return;
	struct doc *d = calloc(1, sizeof *d);
	struct dk_chunk *c = calloc(1, sizeof *c);
	struct cres *cr = calloc(1, sizeof *cr);
	if (!d || !c || !cr) {
		free(d);
		free(c);
		free(cr);
		return;
	}
	d->is_calib = true;
	d->t0 = dk_run_now_ms();
	d->path = strdup("calibration");
	d->mime = strdup("text/plain");
	d->text = strdup("N/A");
	d->chunks = c;
	d->n_chunks = 1;
	d->cr = cr;
	c->count = 1;
	c->end = 3;
	c->tokens = dk_prompt_count_tokens(R, "N/A", 3);
	snprintf(c->id, sizeof c->id, "calibration");
	cr->want = true;
	d->next = R->docs;
	R->docs = d;
	R->n_open++;
	R->calib_pending = true;
	dk_run_spawn_chunk(R, d, 0);
	if (d->pending == 0)
		dk_run_doc_stage_done(R, d);
}

/* The labels after the prompt and the answer template: one job scores
 * every label's first token from the prompt's last position (one prefill
 * for all), and a label of several tokens gets a job for the rest. */
static void spawn(struct runner *R, struct doc *d, size_t ci, struct chunk_vars *cv)
{
	const struct dk_pipeline *pl = R->pl;
	struct cres *cr = &d->cr[ci];
	struct tokv t = {0};
	int n_prefix = 0, n_static = 0;
	size_t n = pl->n_labels;
	cr->logp = calloc(n, sizeof *cr->logp);
	dk_token *first = calloc(n, sizeof *first);
	struct tokv *lab = calloc(n, sizeof *lab);
	if (!cr->logp || !first || !lab) {
		free(first);
		free(lab);
		dk_run_oom(R, d->path);
		return;
	}
	bool word_next;
	if (dk_prompt_build(R, pl->system, pl->user, &cv->vals, -1, &t, &n_prefix, &n_static) ||
	    dk_prompt_answer_prefix(R, &cv->vals, &t, &word_next)) {
		cr->error = strdup("cannot render the prompt");
		goto out;
	}
	int n_prompt = t.n;
	bool tails = false;
	for (size_t i = 0; i < n; i++) {
		char s[512];
		snprintf(s, sizeof s, "%s%s", word_next ? " " : "", pl->labels[i]);
		if (dk_prompt_tokenize(R, &lab[i], s, strlen(s), false, false) || lab[i].n == 0) {
			cr->error = strdup("cannot tokenize a label");
			goto out;
		}
		first[i] = lab[i].v[0];
		tails |= lab[i].n > 1;
	}
	if (tails && !(cr->logp_tail = calloc(n, sizeof *cr->logp_tail))) {
		dk_run_oom(R, d->path);
		goto out;
	}
	for (int k = -1; k < (int)n && !cr->error; k++) {
		if (k >= 0 && lab[k].n < 2)
			continue;
		/* k = -1: the prompt, every label's first token; else label k's tail */
		struct tokv full = {0};
		full.cap = n_prompt + (k >= 0 ? lab[k].n : 0);
		full.v = malloc((size_t)full.cap * sizeof *full.v);
		struct job *j = full.v ? dk_run_job_new(R, d, (int)ci, k, DK_JOB_SCORE, ROLE_LABEL) : NULL;
		if (!j) {
			free(full.v);
			dk_run_oom(R, d->path);
			break;
		}
		memcpy(full.v, t.v, (size_t)n_prompt * sizeof *t.v);
		full.n = n_prompt;
		if (k >= 0) {
			memcpy(full.v + n_prompt, lab[k].v, (size_t)lab[k].n * sizeof *full.v);
			full.n += lab[k].n;
			j->spec.score_from = n_prompt + 1;
		} else {
			j->spec.score_from = n_prompt;
			j->spec.choices = first;
			j->spec.n_choices = (int)n;
		}
		dk_run_submit(R, j, &full, n_prompt, n_static, &cr->error, &cr->reason);
	}
out:
	for (size_t i = 0; i < n; i++)
		free(lab[i].v);
	free(lab);
	free(first);
	free(t.v);
}

static void job_result(struct runner *R, struct doc *d, struct cres *c, const struct job *j,
		       const struct dk_job_result *r)
{
	if (j->sub < 0) {
		for (int i = 0; i < r->n_choices && i < (int)R->pl->n_labels; i++)
			c->logp[i] = r->choice_logp[i];
	} else if (c->logp_tail) {
		c->logp_tail[j->sub] = r->logp;
	}
}

/* A chunk's label distribution, or the mean of the chunks' distributions. */
static json_t *output(struct runner *R, struct doc *d, size_t c0, size_t c1, json_t *rec,
		      struct task_verdict *v)
{
	const struct dk_pipeline *pl = R->pl;
	if (c1 - c0 == 1) {
		double *pr = calloc(pl->n_labels, sizeof *pr);
		if (!pr) {
			dk_run_oom(R, d->path);
			return json_null();
		}
		chunk_probs(R, &d->cr[c0], pr);
		json_t *out = label_output(R, d, pr, rec);
		free(pr);
		return out;
	}
	size_t n = pl->n_labels;
	double *acc = calloc(n, sizeof *acc), *pr = calloc(n, sizeof *pr);
	if (!acc || !pr) {
		free(acc);
		free(pr);
		dk_run_oom(R, d->path);
		return json_null();
	}
	for (size_t c = c0; c < c1; c++) {
		chunk_probs(R, &d->cr[c], pr);
		for (size_t i = 0; i < n; i++)
			acc[i] += pr[i] / (double)(c1 - c0);
	}
	json_t *out = label_output(R, d, acc, rec);
	free(acc);
	free(pr);
	return out;
}

static json_t *remote_schema(const struct runner *R) { return classify_schema(R->pl); }

/* A remote answer is a label, not a distribution: all mass on it. */
static char *remote_answer(struct runner *R, struct cres *c, const char *content)
{
	const struct dk_pipeline *pl = R->pl;
	int k = answer_label(pl, content);
	if (k < 0)
		return strdup("fallback: the answer names none of the labels");
	if (!c->logp)
		c->logp = calloc(pl->n_labels, sizeof *c->logp);
	free(c->logp_tail);
	c->logp_tail = NULL;
	for (size_t i = 0; c->logp && i < pl->n_labels; i++)
		c->logp[i] = (int)i == k ? 0 : -1e4;
	return NULL;
}

/* The content-free document's label log-probabilities, the bias every
 * chunk's are divided by. */
static void calibrated(struct runner *R, struct doc *d)
{
	size_t n = R->pl->n_labels;
	if (d->cr[0].error)
		return;
	R->calib = malloc(n * sizeof *R->calib);
	for (size_t i = 0; R->calib && i < n; i++)
		R->calib[i] = d->cr[0].logp[i] + (d->cr[0].logp_tail ? d->cr[0].logp_tail[i] : 0);
}

const struct dk_task_ops dk_task_classify = {
	.start = start_calibration,
	.calibrated = calibrated,
	.spawn = spawn,
	.job_result = job_result,
	.output = output,
	.remote_schema = remote_schema,
	.remote_answer = remote_answer,
};
