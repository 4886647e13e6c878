/* Pipelines: shipped files load, templates parse and render into segments,
 * load errors name file, line and field, the hash follows the content. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/pipeline.h"
#include "runner/values.h"
#include "testutil.h"

static char *tmp;

static const char *put(const char *name, const char *text)
{
	static char path[4096];
	snprintf(path, sizeof path, "%s/%s", tmp, name);
	assert_int_equal(dk_test_write_file(path, text, strlen(text)), 0);
	return path;
}

static void test_shipped(void **state)
{
	(void)state;
	char err[DK_ERRMSG_MAX];
	const char *names[] = {"summarize-records", "classify-files", "extract-fields"};
	enum dk_task tasks[] = {DK_TASK_SUMMARIZE, DK_TASK_CLASSIFY, DK_TASK_EXTRACT};
	for (int i = 0; i < 3; i++) {
		struct dk_pipeline *p = dk_pipeline_load(names[i], err, sizeof err);
		if (!p)
			fail_msg("%s: %s", names[i], err);
		assert_string_equal(p->name, names[i]);
		assert_int_equal(p->task, tasks[i]);
		assert_true(p->sensitive);
		assert_float_equal(p->temperature, 0, 0);
		assert_int_equal(strlen(p->hash), 64);
		assert_true(dk_tmpl_uses(p->user, "text"));
		if (tasks[i] == DK_TASK_SUMMARIZE)
			assert_non_null(p->reduce);
		if (tasks[i] == DK_TASK_CLASSIFY) {
			assert_int_equal(p->n_labels, 8);
			assert_string_equal(p->labels[7], "sensitive");
			assert_int_equal(p->max_chunks, 1); /* the head of a file */
			assert_true(dk_tmpl_uses(p->answer, "hints"));
			assert_false(p->calibrate);
			assert_true(p->hidden);
		}
		if (tasks[i] == DK_TASK_EXTRACT) {
			assert_int_equal(p->n_fields, 4);
			assert_string_equal(p->fields[3].name, "total");
			assert_string_equal(p->fields[3].type, "number");
		}
		dk_pipeline_free(p);
	}
	/* by path too */
	struct dk_pipeline *p = dk_pipeline_load(dk_test_src("pipelines/classify-files.json"), err, sizeof err);
	assert_non_null(p);
	dk_pipeline_free(p);
	/* the news topics moved to the examples, prompts resolved from there */
	p = dk_pipeline_load(dk_test_src("examples/pipelines/classify-news.json"), err, sizeof err);
	if (!p)
		fail_msg("classify-news: %s", err);
	assert_int_equal(p->n_labels, 5);
	assert_string_equal(p->labels[3], "sport");
	assert_true(p->calibrate);
	assert_false(p->hidden);
	dk_pipeline_free(p);
	assert_null(dk_pipeline_load("no-such-pipeline", err, sizeof err));
	assert_non_null(strstr(err, "no pipeline 'no-such-pipeline'"));
}

static void test_template(void **state)
{
	(void)state;
	char err[DK_ERRMSG_MAX];
	struct dk_tmpl *t = dk_tmpl_parse("t.txt", "A {{ labels }}\n<|x|>{{text}}!{{chunk_index}}", err, sizeof err);
	assert_non_null(t);
	assert_int_equal(t->n_parts, 6);
	assert_true(t->parts[1].is_var);
	assert_string_equal(t->parts[1].text, "labels");
	struct dk_tmpl_var vars[] = {{"text", "<|x|> doc"}, {"labels", "a, b"}};
	struct dk_segs s = {0};
	assert_int_equal(dk_tmpl_render(t, vars, 2, &s), 0);
	/* literal text is "special" (may spell control tokens), values are not */
	assert_int_equal(s.n, 5);
	assert_true(s.v[0].special);
	assert_string_equal(s.v[1].text, "a, b");
	assert_false(s.v[1].special);
	assert_string_equal(s.v[2].text, "\n<|x|>");
	assert_string_equal(s.v[3].text, "<|x|> doc");
	assert_false(s.v[3].special);
	char *j = dk_segs_join(&s);
	assert_string_equal(j, "A a, b\n<|x|><|x|> doc!");
	free(j);
	dk_segs_free(&s);
	dk_tmpl_free(t);

	assert_null(dk_tmpl_parse("t.txt", "line1\nline2 {{txet}}", err, sizeof err));
	assert_string_equal(err, "t.txt:2: unknown placeholder '{{txet}}' (known: text, path, name, member, "
				 "mime, bytes, labels, schema, chunk_index, chunk_count, summaries, field, "
				 "field_description, hints)");
	assert_null(dk_tmpl_parse("t.txt", "{{text", err, sizeof err));
	assert_non_null(strstr(err, "t.txt:1: unterminated"));
	assert_null(dk_tmpl_parse("t.txt", "{{}}", err, sizeof err));
}

static void expect_error(const char *json, const char *want)
{
	char err[DK_ERRMSG_MAX];
	const char *path = put("p.json", json);
	struct dk_pipeline *p = dk_pipeline_load(path, err, sizeof err);
	if (p)
		fail_msg("loaded, expected error '%s'", want);
	const char *msg = strstr(err, "p.json");
	if (!msg || !strstr(msg, want))
		fail_msg("got '%s', expected '%s'", err, want);
}

static void test_errors(void **state)
{
	(void)state;
	put("u.txt", "Summarize: {{text}}\n");
	put("r.txt", "Combine: {{summaries}}\n");
	expect_error("{\"name\": \"x\",\n \"task\": \"summarize\",\n \"prompts\": {\"user\": \"u.txt\"},\n"
		     " \"generation\": {\n   \"max_tokens\": \"ten\"}}",
		     "p.json:5: generation.max_tokens: expected an integer, got a string");
	expect_error("{\"name\": \"x\", \"task\": \"sumarize\", \"prompts\": {\"user\": \"u.txt\"}}",
		     "p.json:1: task: 'sumarize' is not one of summarize, classify, extract, generate");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\"}", "missing required field 'prompts'");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"u.txt\"},\n\"colour\": 1}",
		     "p.json:4: colour: unknown field");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"missing.txt\"}}",
		     "p.json:3: prompts.user: cannot read prompt file");
	expect_error("{\"name\": \"x\",\n\"task\": \"classify\",\n\"prompts\": {\"user\": \"u.txt\"},\n\"labels\": [\"a\"]}",
		     "p.json:4: labels: a classify pipeline needs 'labels' with at least two labels");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"u.txt\"},\n"
		     "\"output\": \"per_page\"}",
		     "p.json:4: output: expected \"per_chunk\" or \"per_document\"");
	expect_error("{\"name\": \"x\", \"task\": \"summarize\",\n  \"prompts\": {\"user\": \"u.txt\",}}",
		     "p.json:2:");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"r.txt\"}}",
		     "prompts.user: the user prompt must contain {{text}}");
	put("f.txt", "{{text}} What is the {{field}}?");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\",\n"
		     "\"minimum\": 0}}}}",
		     "p.json:4: schema: /properties/a/minimum: unsupported keyword 'minimum'");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"u.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}}}",
		     "p.json:3: prompts.user: an extract prompt must contain {{field}}");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}},\n"
		     "\"extract\": {\"mode\": \"table\"}}",
		     "p.json:5: extract.mode: expected \"fields\" or \"object\"");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}},\n"
		     "\"extract\": {\"constrained\": 1}}",
		     "p.json:5: extract.constrained: expected true or false, got an integer");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}},\n"
		     "\"extract\": {\"normalize\": {\"b\": [\"trim\"]}}}",
		     "p.json:5: extract.normalize.b: not a field of the schema");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}},\n"
		     "\"extract\": {\"normalize\": {\"a\": [\"trim\", \"titlecase\"]}}}",
		     "extract.normalize.a: item 1: expected one of trim, collapse_spaces, lower, upper, date");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {}}},\n"
		     "\"extract\": {\"date_order\": \"ymd\"}}",
		     "p.json:5: extract.date_order: expected \"dmy\" or \"mdy\"");
	expect_error("{\"name\": \"x\",\n\"task\": \"extract\",\n\"prompts\": {\"user\": \"f.txt\"},\n"
		     "\"schema\": {\"type\": \"object\", \"properties\": {\"a\": {\"type\": \"number\"}}},\n"
		     "\"extract\": {\"line_start\": [\"a\"]}}",
		     "p.json:5: extract.line_start: item 0: not a free-text field of the schema that admits null");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"chunking\": {\"max_tokens\": 100,\n"
		     "  \"overlap_tokens\": 60},\n\"prompts\": {\"user\": \"u.txt\"}}",
		     "p.json:4: chunking.overlap_tokens: must be at most half of max_tokens (50)");
	expect_error("{\"name\": \"x\",\n\"task\": \"classify\",\n\"prompts\": {\"user\": \"u.txt\"},\n"
		     "\"labels\": [\"a\", \"b\"],\n\"classify\": {\"scope\": \"middle\"}}",
		     "p.json:5: classify.scope: expected \"head\" or \"all\"");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"u.txt\"},\n"
		     "\"classify\": {\"scope\": \"all\"}}",
		     "p.json:4: classify: only for a classify pipeline");
	put("bad.txt", "{{text}} {{oops}}");
	expect_error("{\"name\": \"x\",\n\"task\": \"summarize\",\n\"prompts\": {\"user\": \"bad.txt\"}}",
		     "prompts.user: ");
}

/* Field types from nullable/compound schemas, grounding and the extract block. */
/* classify reads a document's head unless the pipeline asks for all of it */
static void test_classify_scope(void **state)
{
	(void)state;
	put("u.txt", "Sort: {{text}}\n");
	const char *head = "{\"name\": \"x\", \"task\": \"classify\", \"prompts\": {\"user\": \"u.txt\"},"
			   " \"labels\": [\"a\", \"b\"]}";
	const char *all = "{\"name\": \"x\", \"task\": \"classify\", \"prompts\": {\"user\": \"u.txt\"},"
			  " \"labels\": [\"a\", \"b\"], \"classify\": {\"scope\": \"all\"}}";
	const char *sum = "{\"name\": \"x\", \"task\": \"summarize\", \"prompts\": {\"user\": \"u.txt\"}}";
	const char *texts[] = {head, all, sum};
	size_t want[] = {1, 0, 0};
	for (int i = 0; i < 3; i++) {
		const char *path = put("p.json", texts[i]);
		char err[DK_ERRMSG_MAX];
		struct dk_pipeline *p = dk_pipeline_load(path, err, sizeof err);
		if (!p)
			fail_msg("%s", err);
		assert_int_equal(p->max_chunks, want[i]);
		assert_true(p->calibrate);
		dk_pipeline_free(p);
	}
	char err[DK_ERRMSG_MAX];
	struct dk_pipeline *p = dk_pipeline_load(
		put("p.json", "{\"name\": \"x\", \"task\": \"classify\", \"prompts\": {\"user\": \"u.txt\"},"
			      " \"labels\": [\"a\", \"b\"], \"classify\": {\"calibrate\": false},"
			      " \"input\": {\"hidden\": true}}"),
		err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_false(p->calibrate);
	assert_true(p->hidden);
	assert_int_equal(p->max_chunks, 1);
	dk_pipeline_free(p);
	assert_null(dk_pipeline_load(put("p.json", "{\"name\": \"x\", \"task\": \"classify\", \"prompts\": "
						  "{\"user\": \"u.txt\"}, \"labels\": [\"a\", \"b\"], "
						  "\"classify\": {\"calibrate\": 1}}"),
				     err, sizeof err));
	assert_non_null(strstr(err, "classify.calibrate"));
}

static void test_extract_fields(void **state)
{
	(void)state;
	char err[DK_ERRMSG_MAX];
	put("o.txt", "{{text}} Fill in: {{schema}}");
	struct dk_pipeline *p = dk_pipeline_load(
		put("p.json", "{\"name\": \"x\", \"task\": \"extract\", \"prompts\": {\"user\": \"o.txt\"},"
			      " \"extract\": {\"mode\": \"object\", \"grounded\": false},"
			      " \"schema\": {\"type\": \"object\", \"properties\": {"
			      "\"total\": {\"type\": [\"null\", \"number\"]},"
			      "\"when\": {\"type\": \"string\", \"format\": \"date\"},"
			      "\"kind\": {\"enum\": [\"a\", \"b\"]},"
			      "\"items\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
			      "\"name\": {\"type\": \"string\", \"nullable\": true, \"description\": \"who\"}}}}"),
		err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->extract_mode, DK_EXTRACT_OBJECT);
	assert_true(p->constrained);
	assert_false(p->grounded);
	assert_int_equal(p->n_fields, 5);
	const char *types[] = {"number", "string", "string", "array", "string"};
	const bool ground[] = {true, false, false, false, true};
	for (size_t i = 0; i < 5; i++) {
		assert_string_equal(p->fields[i].type, types[i]);
		assert_int_equal(p->fields[i].ground, ground[i]);
	}
	assert_string_equal(p->fields[4].description, "who");
	assert_string_equal(p->fields[0].schema_json, "{\"type\":[\"null\",\"number\"]}");
	dk_pipeline_free(p);

	/* the example object-mode pipeline loads, nested schema and all */
	char path[4096];
	snprintf(path, sizeof path, "%s/examples/pipelines/receipt-items.json", getenv("DK_SOURCE_DIR"));
	p = dk_pipeline_load(path, err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->extract_mode, DK_EXTRACT_OBJECT);
	assert_string_equal(p->fields[2].name, "items");
	assert_string_equal(p->fields[2].type, "array");
	assert_false(p->fields[2].ground);
	dk_pipeline_free(p);

	/* the shipped pipeline: fields mode, constrained, grounded and copied by
	 * default; a date read as printed and written YYYY-MM-DD, an address
	 * that must hold a number and a word, started at a scored line */
	p = dk_pipeline_load("extract-fields", err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_int_equal(p->extract_mode, DK_EXTRACT_FIELDS);
	assert_true(p->constrained && p->grounded && p->copy);
	assert_int_equal(p->date_order, DK_DATE_DMY);
	assert_non_null(p->answer);
	assert_string_equal(p->fields[1].name, "date");
	assert_string_equal(p->fields[1].format, "date");
	assert_true(p->fields[1].ground);
	assert_false(p->fields[1].plain);
	assert_string_equal(p->fields[2].name, "address");
	assert_true(p->fields[2].ground && p->fields[2].line_start);
	assert_int_equal(p->fields[2].n_normalize, 1);
	assert_int_equal(p->fields[2].normalize[0], DK_NORM_COLLAPSE_SPACES);
	assert_false(p->fields[0].line_start);
	dk_pipeline_free(p);
}

static void test_hash(void **state)
{
	(void)state;
	char err[DK_ERRMSG_MAX];
	put("u.txt", "Summarize: {{text}}\n");
	struct dk_pipeline *a = dk_pipeline_load(
		put("p.json", "{\"name\": \"x\", \"task\": \"summarize\", \"prompts\": {\"user\": \"u.txt\"}}"), err,
		sizeof err);
	assert_non_null(a);
	assert_int_equal(a->chunk_tokens, 384);
	assert_int_equal(a->max_tokens, 128);
	assert_false(a->per_chunk);
	struct dk_pipeline *b = dk_pipeline_load(
		put("p.json", "{\n  \"prompts\": {\"user\": \"u.txt\"},\n  \"task\": \"summarize\",\n  \"name\": \"x\"\n}\n"),
		err, sizeof err);
	assert_non_null(b);
	assert_string_equal(a->hash, b->hash); /* formatting and key order do not matter */
	put("u.txt", "Summarise: {{text}}\n");
	struct dk_pipeline *c = dk_pipeline_load(
		put("p.json", "{\"name\": \"x\", \"task\": \"summarize\", \"prompts\": {\"user\": \"u.txt\"}}"), err,
		sizeof err);
	assert_non_null(c);
	assert_string_not_equal(a->hash, c->hash); /* the prompt text does */
	dk_pipeline_free(a);
	dk_pipeline_free(b);
	dk_pipeline_free(c);
	dk_pipeline_free(NULL);
}

static void test_fallback_block(void **state)
{
	(void)state;
	char err[DK_ERRMSG_MAX];
	put("u.txt", "{{text}}");
	struct dk_pipeline *p = dk_pipeline_load(
		put("p.json", "{\"name\": \"x\", \"task\": \"generate\", \"prompts\": {\"user\": \"u.txt\"},"
			      " \"sensitive\": false, \"output\": \"per_chunk\", \"fallback\": {\"url\": "
			      "\"https://api.example.com/v1\", \"model\": \"m\", \"key_env\": \"K\", \"when\": "
			      "[\"error\", \"too-long\"]}, \"generation\": {\"stop\": [\"\\n\"], \"temperature\": 0.7}}"),
		err, sizeof err);
	if (!p)
		fail_msg("%s", err);
	assert_true(p->has_fallback);
	assert_false(p->sensitive);
	assert_true(p->per_chunk);
	assert_string_equal(p->fallback.base_url, "https://api.example.com/v1");
	assert_string_equal(p->fallback.model, "m");
	assert_int_equal(p->fallback.when, DK_FALLBACK_LOCAL_ERROR | DK_FALLBACK_OVER_CONTEXT);
	assert_string_equal(p->stop[0], "\n");
	assert_float_equal(p->temperature, 0.7, 1e-6);
	dk_pipeline_free(p);
}

int main(void)
{
	tmp = dk_test_tmpdir();
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shipped),
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_classify_scope),
		cmocka_unit_test(test_extract_fields),
		cmocka_unit_test(test_hash),
		cmocka_unit_test(test_fallback_block),
	};
	int rc = dk_test_run_group(tests, NULL, NULL);
	char cmd[4200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
	dk_test_run(cmd, NULL);
	free(tmp);
	return rc;
}
