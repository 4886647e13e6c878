/* docket generate: run the engine on one prompt (a debugging and checking
 * tool; the batch job is `docket run`). */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "docket/chat.h"
#include "docket/grammar.h"
#include "docket/jsonschema.h"
#include "docket/model.h"
#include "docket/sampler.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: docket generate [-m MODEL] -p PROMPT [options]\n"
		"  -m, --model PATH       GGUF model (default: $DOCKET_MODEL or the default model)\n"
		"  -p, --prompt TEXT      the prompt\n"
		"  -f, --file FILE        read the prompt from FILE\n"
		"      --chat             wrap the prompt as a user message in the model's chat template\n"
		"      --system TEXT      system message (with --chat)\n"
		"      --template-system  without --system, use the default system message the\n"
		"                         model's template inserts (off: small quantized models\n"
		"                         such as SmolLM2-135M Q4_1 answer worse with it)\n"
		"      --chat-template F  chatml|llama2|llama3|mistral|phi3|phi4|gemma|zephyr|granite|raw\n"
		"  -n, --n-predict N      tokens to generate (default 128)\n"
		"      --temp T           temperature (default 0 = greedy)\n"
		"      --top-k K  --top-p P  --min-p P  --repeat-penalty R  --seed S\n"
		"      --top-probs K      report the K most probable tokens per step (raw softmax)\n"
		"      --json             print one JSON object: prompt_ids, ids, text, top\n"
		"      --ignore-eos       keep generating past end-of-generation tokens\n"
		"      --grammar FILE     constrain the output with a GBNF grammar\n"
		"      --json-schema FILE constrain the output to JSON valid against a JSON Schema\n"
		"      --kv f16|f32       KV cache type (default f32, exact; f16 halves KV memory)\n"
		"      --no-deterministic let a long prompt take OpenBLAS where it is faster (F16/F32\n"
		"                         weights, CPUs without AVX-512 VNNI): logits then depend on\n"
		"                         batching and threads, within float rounding (default: on)\n"
		"  -c, --ctx N            context size (default: prompt + n, at most the model's)\n"
		"  -t, --threads N        threads (default: physical cores)\n");
}

static char *read_all(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	size_t cap = 1 << 16, len = 0, k;
	char *p = malloc(cap + 1);
	while (p && (k = fread(p + len, 1, cap - len, f)) > 0) {
		len += k;
		if (len == cap) {
			char *q = realloc(p, 2 * cap + 1);
			if (!q) { free(p); p = NULL; break; }
			p = q;
			cap *= 2;
		}
	}
	fclose(f);
	if (p) { p[len] = 0; *n = len; }
	return p;
}

/* A JSON string of bytes that may not be valid UTF-8 (a byte token, half a
 * character): invalid sequences become U+FFFD.  Exact bytes are reported
 * separately ("bytes"). */
static json_t *json_bytes_string(const char *p, size_t n)
{
	char *o = malloc(n * 3 + 1);
	size_t k = 0;
	if (!o)
		return json_string("");
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)p[i];
		size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
		bool ok = len > 0 && i + len <= n;
		for (size_t j = 1; ok && j < len; j++)
			ok = ((unsigned char)p[i + j] >> 6) == 2;
		if (ok) {
			memcpy(o + k, p + i, len);
			k += len;
			i += len;
		} else {
			memcpy(o + k, "\xEF\xBF\xBD", 3);
			k += 3;
			i++;
		}
	}
	json_t *j = json_stringn(o, k);
	free(o);
	return j ? j : json_string("");
}

static json_t *piece_json(const struct dk_tokenizer *tok, dk_token id)
{
	char buf[256];
	int n = dk_token_to_piece(tok, id, buf, sizeof buf, true);
	if (n < 0) n = 0;
	json_t *bytes = json_array();
	for (int i = 0; i < n; i++)
		json_array_append_new(bytes, json_integer((unsigned char)buf[i]));
	json_t *o = json_object();
	json_object_set_new(o, "piece", json_bytes_string(buf, (size_t)n));
	json_object_set_new(o, "bytes", bytes);
	return o;
}

int dk_cmd_generate(int argc, char **argv)
{
	enum { O_CHAT = 256, O_SYSTEM, O_TMPL, O_TEMP, O_TOPK, O_TOPP, O_MINP, O_REP, O_SEED,
	       O_TOPPROBS, O_JSON, O_IGNEOS, O_KV, O_GRAMMAR, O_SCHEMA, O_TSYS, O_DET, O_NODET, O_HELP };
	static const struct option opts[] = {
		{"model", required_argument, 0, 'm'}, {"prompt", required_argument, 0, 'p'},
		{"file", required_argument, 0, 'f'}, {"chat", no_argument, 0, O_CHAT},
		{"system", required_argument, 0, O_SYSTEM}, {"chat-template", required_argument, 0, O_TMPL},
		{"n-predict", required_argument, 0, 'n'}, {"temp", required_argument, 0, O_TEMP},
		{"top-k", required_argument, 0, O_TOPK}, {"top-p", required_argument, 0, O_TOPP},
		{"min-p", required_argument, 0, O_MINP}, {"repeat-penalty", required_argument, 0, O_REP},
		{"seed", required_argument, 0, O_SEED}, {"top-probs", required_argument, 0, O_TOPPROBS},
		{"json", no_argument, 0, O_JSON}, {"ignore-eos", no_argument, 0, O_IGNEOS},
		{"kv", required_argument, 0, O_KV}, {"ctx", required_argument, 0, 'c'},
		{"template-system", no_argument, 0, O_TSYS}, {"grammar", required_argument, 0, O_GRAMMAR}, {"json-schema", required_argument, 0, O_SCHEMA},
		{"deterministic", no_argument, 0, O_DET}, {"no-deterministic", no_argument, 0, O_NODET},
		{"threads", required_argument, 0, 't'}, {"help", no_argument, 0, O_HELP}, {0, 0, 0, 0}};
	const char *model = NULL, *prompt = NULL, *file = NULL, *system = NULL, *tmpl = NULL;
	const char *grammar_path = NULL, *schema_path = NULL;
	bool chat = false, as_json = false, ignore_eos = false, tsys = false, det = true;
	int n_predict = 128, top_probs = 0, n_ctx = 0, threads = 0;
	enum dk_ttype kvt = DK_TYPE_F32; /* fidelity first: see README */
	struct dk_sampler_params sp = dk_sampler_default_params();
	sp.temperature = 0;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "m:p:f:n:c:t:", opts, NULL)) != -1) {
		switch (c) {
		case 'm': model = optarg; break;
		case 'p': prompt = optarg; break;
		case 'f': file = optarg; break;
		case 'n': n_predict = atoi(optarg); break;
		case 'c': n_ctx = atoi(optarg); break;
		case 't': threads = atoi(optarg); break;
		case O_CHAT: chat = true; break;
		case O_SYSTEM: system = optarg; break;
		case O_TMPL: tmpl = optarg; chat = true; break;
		case O_TEMP: sp.temperature = strtof(optarg, NULL); break;
		case O_TOPK: sp.top_k = atoi(optarg); break;
		case O_TOPP: sp.top_p = strtof(optarg, NULL); break;
		case O_MINP: sp.min_p = strtof(optarg, NULL); break;
		case O_REP: sp.repeat_penalty = strtof(optarg, NULL); break;
		case O_SEED: sp.seed = strtoull(optarg, NULL, 0); break;
		case O_TOPPROBS: top_probs = atoi(optarg); break;
		case O_JSON: as_json = true; break;
		case O_IGNEOS: ignore_eos = true; break;
		case O_GRAMMAR: grammar_path = optarg; break;
		case O_TSYS: tsys = true; chat = true; break;
		case O_SCHEMA: schema_path = optarg; break;
		case O_DET: det = true; break;
		case O_NODET: det = false; break;
		case O_KV:
			if (!strcmp(optarg, "f16")) kvt = DK_TYPE_F16;
			else if (!strcmp(optarg, "f32")) kvt = DK_TYPE_F32;
			else { dk_cli_error("--kv must be f16 or f32, not '%s'", optarg); return DK_EXIT_USAGE; }
			break;
		case O_HELP: usage(stdout); return DK_EXIT_OK;
		default: usage(stderr); return DK_EXIT_USAGE;
		}
	}
	if (!prompt && !file) {
		dk_cli_error("generate needs a prompt (-p TEXT or -f FILE)");
		return DK_EXIT_USAGE;
	}
	if (n_predict < 0 || top_probs < 0 || top_probs > 1000) {
		dk_cli_error("bad -n or --top-probs value");
		return DK_EXIT_USAGE;
	}
	char *owned = NULL;
	size_t plen = 0;
	if (file) {
		owned = read_all(file, &plen);
		if (!owned) {
			dk_cli_error("cannot read '%s': %m", file);
			return DK_EXIT_USAGE;
		}
		prompt = owned;
	}
	const char *mpath = dk_cli_model_path(model);
	if (!mpath) { free(owned); return DK_EXIT_FATAL; }

	int rc = DK_EXIT_FATAL;
	struct dk_model *m = NULL;
	struct dk_ctx *ctx = NULL;
	struct dk_batch *batch = NULL;
	struct dk_sampler *smp = NULL;
	char *rendered = NULL;
	dk_token *ids = NULL;
	float *work = NULL, *probs = NULL;
	json_t *top = NULL, *gen_ids = NULL, *schema = NULL;
	struct dk_grammar *gram = NULL;
	struct dk_grammar_vocab *gvocab = NULL;
	struct dk_grammar_state *gst = NULL;
	const char *finish = "length";
	if (grammar_path && schema_path) {
		dk_cli_error("give --grammar or --json-schema, not both");
		free(owned);
		return DK_EXIT_USAGE;
	}
	if (grammar_path && dk_grammar_load_file(&gram, grammar_path, NULL) != DK_OK) {
		dk_cli_error("%s", dk_grammar_error(gram));
		dk_grammar_free(gram);
		free(owned);
		return DK_EXIT_USAGE;
	}
	if (schema_path) {
		json_error_t je;
		char err[512];
		schema = json_load_file(schema_path, 0, &je);
		if (!schema) {
			dk_cli_error("cannot read schema '%s': line %d: %s", schema_path, je.line, je.text);
			free(owned);
			return DK_EXIT_USAGE;
		}
		if (dk_schema_compile(schema, &gram, err, sizeof err) != DK_OK) {
			dk_cli_error("'%s': %s", schema_path, err);
			json_decref(schema);
			dk_grammar_free(gram);
			free(owned);
			return DK_EXIT_USAGE;
		}
	}
	if (dk_model_load(&m, mpath, NULL) != DK_OK) {
		dk_cli_error("%s", dk_model_error(m));
		goto out;
	}
	const struct dk_model_info *hp = dk_model_info(m);
	const struct dk_tokenizer *tok = dk_model_tokenizer(m);
	const char *text = prompt;
	if (chat) {
		struct dk_chat_msg msgs[2];
		size_t nm = 0;
		char err[512];
		if (system)
			msgs[nm++] = (struct dk_chat_msg){"system", system};
		msgs[nm++] = (struct dk_chat_msg){"user", prompt};
		rendered = dk_model_chat_render(m, tmpl, msgs, nm, true, tsys, err, sizeof err);
		if (!rendered) {
			dk_cli_error("%s", err);
			rc = DK_EXIT_USAGE;
			goto out;
		}
		text = rendered;
	}
	size_t tlen = strlen(text);
	int cap = (int)tlen + 16;
	ids = malloc((size_t)cap * sizeof *ids);
	int n_prompt = ids ? dk_tokenize(tok, text, tlen, true, true, ids, cap) : -1;
	if (n_prompt <= 0) {
		dk_cli_error(n_prompt == 0 ? "the prompt is empty" : "cannot tokenize the prompt");
		rc = DK_EXIT_USAGE;
		goto out;
	}
	if (n_ctx <= 0) {
		n_ctx = n_prompt + n_predict + 1;
		if (n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
	}
	if (n_prompt + n_predict > n_ctx) {
		dk_cli_error("prompt (%d tokens) + %d to generate exceed the context of %d tokens",
			     n_prompt, n_predict, n_ctx);
		rc = DK_EXIT_USAGE;
		goto out;
	}
	struct dk_ctx_params cp = dk_ctx_default_params();
	cp.n_ctx = n_ctx;
	cp.n_batch = n_prompt < 512 ? (n_prompt < 1 ? 1 : n_prompt) : 512;
	cp.n_threads = threads;
	cp.kv_type = kvt;
	cp.deterministic = det;
	if (dk_ctx_new(&ctx, m, &cp) != DK_OK) {
		dk_cli_error("%s", dk_ctx_error(ctx));
		goto out;
	}
	batch = dk_batch_new(cp.n_batch);
	smp = dk_sampler_new(&sp, hp->n_vocab);
	work = malloc((size_t)hp->n_vocab * sizeof *work);
	probs = malloc((size_t)hp->n_vocab * sizeof *probs);
	if (!batch || !smp || !work || !probs) {
		dk_cli_error("out of memory");
		goto out;
	}
	if (gram) {
		gvocab = dk_grammar_vocab_from_tokenizer(tok);
		gst = gvocab ? dk_grammar_state_new(gram, gvocab) : NULL;
		if (!gst) {
			dk_cli_error("out of memory building the grammar's vocabulary");
			goto out;
		}
	}
	for (int i = 0; i < n_prompt; i++)
		dk_sampler_accept(smp, ids[i]);
	/* prompt in batches; logits only for the last token */
	int done = 0;
	while (done < n_prompt) {
		dk_batch_clear(batch);
		int k = n_prompt - done < cp.n_batch ? n_prompt - done : cp.n_batch;
		for (int i = 0; i < k; i++)
			dk_batch_add(batch, ids[done + i], done + i, 0, done + i == n_prompt - 1);
		if (dk_decode(ctx, batch) != DK_OK) {
			dk_cli_error("%s", dk_ctx_error(ctx));
			goto out;
		}
		done += k;
	}
	int last = batch->n_tokens - 1;
	top = json_array();
	gen_ids = json_array();
	struct dk_buf_text { char *p; size_t n, cap; } out = {0};
	struct dk_detok dt;
	dk_detok_init(&dt, tok);
	char piece[512];
	int pos = n_prompt;
	for (int step = 0; step < n_predict; step++) {
		const float *lg = dk_logits(ctx, last);
		if (top_probs > 0) {
			dk_softmax(lg, probs, hp->n_vocab);
			json_t *st = json_array();
			/* K best by probability (ties: lower id first) */
			int *best = calloc((size_t)top_probs, sizeof *best);
			int nb = 0;
			for (int i = 0; i < hp->n_vocab; i++) {
				int j = nb < top_probs ? nb++ : top_probs;
				if (j == top_probs) {
					if (!(probs[i] > probs[best[top_probs - 1]])) continue;
					j = top_probs - 1;
				}
				while (j > 0 && probs[i] > probs[best[j - 1]]) { best[j] = best[j - 1]; j--; }
				best[j] = i;
			}
			for (int j = 0; j < nb; j++) {
				json_t *e = piece_json(tok, best[j]);
				json_object_set_new(e, "id", json_integer(best[j]));
				json_object_set_new(e, "prob", json_real(probs[best[j]]));
				json_object_set_new(e, "logprob", json_real(log(probs[best[j]])));
				json_array_append_new(st, e);
			}
			free(best);
			json_array_append_new(top, st);
		}
		memcpy(work, lg, (size_t)hp->n_vocab * sizeof *work);
		dk_token t = gst ? dk_grammar_sample(gst, smp, work, n_predict - step)
				 : dk_sampler_sample(smp, work);
		if (t == DK_TOKEN_NULL) {
			finish = gst && dk_grammar_is_complete(gst) ? "stop" : "error";
			break;
		}
		dk_sampler_accept(smp, t);
		if ((!ignore_eos || gst) && dk_token_is_eog(tok, t)) {
			finish = "stop";
			break;
		}
		json_array_append_new(gen_ids, json_integer(t));
		int np = dk_detok_push(&dt, t, piece, sizeof piece);
		if (np > 0) {
			if (as_json) {
				if (out.n + (size_t)np + 1 > out.cap) {
					out.cap = (out.n + (size_t)np + 1) * 2;
					out.p = realloc(out.p, out.cap);
				}
				memcpy(out.p + out.n, piece, (size_t)np);
				out.n += (size_t)np;
			} else {
				fwrite(piece, 1, (size_t)np, stdout);
				fflush(stdout);
			}
		}
		if (gst && dk_grammar_is_complete(gst) && !dk_grammar_can_continue(gst)) {
			finish = "stop"; /* nothing may follow: an EOG would be forced */
			break;
		}
		if (step + 1 == n_predict)
			break;
		dk_batch_clear(batch);
		dk_batch_add(batch, t, pos++, 0, true);
		if (dk_decode(ctx, batch) != DK_OK) {
			dk_cli_error("%s", dk_ctx_error(ctx));
			goto out;
		}
		last = 0;
	}
	int np = dk_detok_flush(&dt, piece, sizeof piece);
	if (as_json) {
		if (np > 0) {
			out.p = realloc(out.p, out.n + (size_t)np + 1);
			memcpy(out.p + out.n, piece, (size_t)np);
			out.n += (size_t)np;
		}
		json_t *pid = json_array();
		for (int i = 0; i < n_prompt; i++)
			json_array_append_new(pid, json_integer(ids[i]));
		json_t *o = json_object();
		json_object_set_new(o, "prompt_ids", pid);
		json_object_set(o, "ids", gen_ids);
		json_object_set_new(o, "text", json_bytes_string(out.p ? out.p : "", out.n));
		if (top_probs > 0)
			json_object_set(o, "top", top);
		json_object_set_new(o, "finish_reason", json_string(finish));
		if (gst)
			json_object_set_new(o, "grammar_complete", json_boolean(dk_grammar_is_complete(gst)));
		if (schema) {
			json_error_t je;
			char verr[256] = "";
			json_t *val = json_loadb(out.p ? out.p : "", out.n, JSON_DECODE_ANY, &je);
			bool ok = val && dk_schema_validate(schema, val, verr, sizeof verr);
			json_object_set_new(o, "schema_valid", json_boolean(ok));
			if (val)
				json_object_set_new(o, "output", val);
		}
		char *s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
		if (!s) {
			dk_cli_error("cannot encode the result as JSON");
			json_decref(o);
			goto out;
		}
		puts(s);
		free(s);
		json_decref(o);
	} else {
		if (np > 0)
			fwrite(piece, 1, (size_t)np, stdout);
		putchar('\n');
	}
	free(out.p);
	rc = DK_EXIT_OK;
out:
	json_decref(top);
	json_decref(gen_ids);
	json_decref(schema);
	dk_grammar_state_free(gst);
	dk_grammar_vocab_free(gvocab);
	dk_grammar_free(gram);
	free(work);
	free(probs);
	free(ids);
	free(rendered);
	dk_sampler_free(smp);
	dk_batch_free(batch);
	dk_ctx_free(ctx);
	dk_model_free(m);
	free(owned);
	return rc;
}
