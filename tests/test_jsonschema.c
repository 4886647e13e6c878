/* jsonschema: the validator on its own, the schema → grammar compiler
 * (what the grammar accepts and rejects), and the error messages. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/jsonschema.h"
#include "testutil.h"

static json_t *J(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad test json '%s': %s", text, e.text);
	return j;
}

/* validate(schema, value) == want; on failure the message contains needle */
static void V(const char *schema, const char *value, bool want, const char *needle)
{
	json_t *s = J(schema), *v = J(value);
	char err[512];
	bool ok = dk_schema_validate(s, v, err, sizeof err);
	if (ok != want)
		fail_msg("validate(%s, %s) = %d, want %d (%s)", schema, value, ok, want, err);
	if (!want && needle && !strstr(err, needle))
		fail_msg("validate(%s, %s): message '%s' lacks '%s'", schema, value, err, needle);
	json_decref(s);
	json_decref(v);
}

static void test_validator(void **state)
{
	(void)state;
	V("{\"type\":\"string\"}", "\"x\"", true, NULL);
	V("{\"type\":\"string\"}", "1", false, "expected string, got integer");
	V("{\"type\":\"integer\"}", "3", true, NULL);
	V("{\"type\":\"integer\"}", "3.0", true, NULL);
	V("{\"type\":\"integer\"}", "3.5", false, "expected integer");
	V("{\"type\":\"number\"}", "3", true, NULL);
	V("{\"type\":\"boolean\"}", "false", true, NULL);
	V("{\"type\":\"null\"}", "null", true, NULL);
	V("{\"type\":[\"string\",\"null\"]}", "null", true, NULL);
	V("{\"type\":[\"string\",\"null\"]}", "2", false, "expected one of");
	V("{\"type\":\"string\",\"nullable\":true}", "null", true, NULL);
	V("{\"type\":\"string\",\"nullable\":true}", "[]", false, NULL);
	V("{\"enum\":[\"a\",1,null]}", "1.0", true, NULL);
	V("{\"enum\":[\"a\",1,null]}", "\"b\"", false, "not in enum");
	V("{\"const\":{\"a\":[1,2]}}", "{\"a\":[1,2]}", true, NULL);
	V("{\"const\":{\"a\":[1,2]}}", "{\"a\":[2,1]}", false, "const");
	V("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"日本\"", true, NULL);
	V("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"日\"", false, "minLength");
	V("{\"type\":\"string\",\"maxLength\":3}", "\"abcd\"", false, "maxLength");
	V("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-02-29\"", true, NULL);
	V("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-13-01\"", false, "valid date");
	V("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-1-01\"", false, "valid date");
	V("{\"format\":\"date-time\"}", "\"2024-01-01T10:00:00Z\"", true, NULL);
	V("{\"format\":\"time\"}", "\"25:00:00Z\"", false, "valid time");
	V("{\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\"", true, NULL);
	V("{\"format\":\"hostname\"}", "\"a.b\"", false, "unsupported format");
	V("{\"format\":\"email\"}", "\"ap@shop.example.com\"", true, NULL);
	V("{\"format\":\"email\"}", "\"a@b\"", false, "valid email");
	V("{\"type\":\"string\",\"pattern\":\"^\\\\d{5}$\"}", "\"81100\"", true, NULL);
	V("{\"type\":\"string\",\"pattern\":\"^\\\\d{5}$\"}", "\"8110\"", false, "does not match the pattern");
	V("{\"type\":\"string\",\"pattern\":\"[0-9]\"}", "\"JALAN 5\"", true, NULL);
	V("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}", "[1]", true, NULL);
	V("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}", "[]", false, "minItems");
	V("{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":2}", "[1,2,3]", false, "maxItems");
	V("{\"type\":\"array\",\"items\":{\"type\":\"integer\"}}", "[1,\"x\"]", false, "/1: expected integer");
	const char *obj = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"},"
			  "\"b/c\":{\"type\":\"string\"}},\"required\":[\"a\"],\"additionalProperties\":false}";
	V(obj, "{\"a\":1}", true, NULL);
	V(obj, "{\"a\":1,\"b/c\":\"x\"}", true, NULL);
	V(obj, "{\"b/c\":\"x\"}", false, "missing required property 'a'");
	V(obj, "{\"a\":1,\"z\":2}", false, "'z' not allowed");
	V(obj, "{\"a\":1,\"b/c\":2}", false, "/b~1c: expected string");
	V("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":1,\"y\":\"no\"}", false, "/y: expected integer");
	V("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "\"x\"", true, NULL);
	V("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"string\"}]}", "[]", false, "anyOf");
	V("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1.5", true, NULL);
	V("{\"oneOf\":[{\"type\":\"integer\"},{\"type\":\"number\"}]}", "1", false, "2 oneOf branches");
	V("{\"$defs\":{\"n\":{\"type\":\"integer\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}", "[1,2]", true, NULL);
	V("{\"$defs\":{\"n\":{\"type\":\"integer\"}},\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/n\"}}", "[\"x\"]", false, "/0");
	V("true", "{}", true, NULL);
	V("false", "{}", false, "allows nothing");
	V("{\"type\":\"integer\",\"minimum\":3}", "5", false, "unsupported keyword 'minimum'");
	V("{\"title\":\"t\",\"description\":\"d\"}", "5", true, NULL);
}

/* A byte vocabulary (every byte a token) for driving grammars by text. */
static struct dk_grammar_vocab *byte_vocab(void)
{
	static char bytes[256];
	const char *p[257];
	size_t l[257];
	for (int i = 0; i < 256; i++) {
		bytes[i] = (char)i;
		p[i] = &bytes[i];
		l[i] = 1;
	}
	p[256] = "";
	l[256] = 0;
	dk_token eog = 256;
	return dk_grammar_vocab_new(p, l, 257, &eog, 1);
}

static struct dk_grammar *schema_grammar(const char *schema)
{
	json_t *s = J(schema);
	struct dk_grammar *g;
	char err[512];
	if (dk_schema_compile(s, &g, err, sizeof err) != DK_OK)
		fail_msg("compile %s: %s", schema, err);
	json_decref(s);
	return g;
}

static bool gaccepts(const struct dk_grammar *g, const char *text)
{
	struct dk_grammar_vocab *v = byte_vocab();
	struct dk_grammar_state *st = dk_grammar_state_new(g, v);
	bool ok = dk_grammar_accept_bytes(st, text, strlen(text)) == DK_OK && dk_grammar_is_complete(st);
	dk_grammar_state_free(st);
	dk_grammar_vocab_free(v);
	return ok;
}

/* The grammar of schema accepts text iff want; whatever it accepts must
 * also parse and validate. */
static void G(const char *schema, const char *text, bool want)
{
	struct dk_grammar *g = schema_grammar(schema);
	bool ok = gaccepts(g, text);
	if (ok != want)
		fail_msg("grammar(%s) on %s: %d, want %d", schema, text, ok, want);
	if (ok) {
		json_t *s = J(schema), *v = J(text);
		char err[512];
		if (!dk_schema_validate(s, v, err, sizeof err))
			fail_msg("grammar accepted %s but validator says %s", text, err);
		json_decref(s);
		json_decref(v);
	}
	dk_grammar_free(g);
}

static void test_compile_accepts(void **state)
{
	(void)state;
	G("{\"type\":\"string\"}", "\"hé\\n\\u00e9\"", true);
	G("{\"type\":\"string\"}", "\"a\\ud800\"", false); /* lone surrogate */
	G("{\"type\":\"string\"}", "\"a\\u0000\"", false);
	G("{\"type\":\"string\"}", "\"tab\there\"", false); /* raw control char */
	G("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"日本\"", true);
	G("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"a\"", false);
	G("{\"type\":\"string\",\"minLength\":2,\"maxLength\":3}", "\"abcd\"", false);
	G("{\"type\":\"integer\"}", "-12", true);
	G("{\"type\":\"integer\"}", "012", false);
	G("{\"type\":\"integer\"}", "1.5", false);
	G("{\"type\":\"number\"}", "-0.5e+10", true);
	G("{\"type\":\"number\"}", "1e400", false); /* exponent bounded */
	G("{\"type\":\"number\"}", "12345678901234567", false); /* 17 digits */
	G("{\"type\":\"boolean\"}", "true", true);
	G("{\"type\":[\"boolean\",\"null\"]}", "null", true);
	G("{\"type\":\"integer\",\"nullable\":true}", "null", true);
	G("{\"enum\":[\"a b\",2,{\"x\":null}]}", "{\"x\":null}", true);
	G("{\"enum\":[\"a b\",2,{\"x\":null}]}", "\"a b\"", true);
	G("{\"enum\":[\"a b\",2,{\"x\":null}]}", "3", false);
	G("{\"type\":\"string\",\"enum\":[\"a\",2]}", "2", false); /* filtered by type */
	G("{\"const\":\"q\\\"\"}", "\"q\\\"\"", true);
	G("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-12-31\"", true);
	G("{\"type\":\"string\",\"format\":\"date\"}", "\"2024-12-32\"", false);
	G("{\"type\":\"string\",\"format\":\"date-time\"}", "\"2024-12-31T23:59:59.5+01:00\"", true);
	G("{\"type\":\"string\",\"format\":\"uuid\"}", "\"123e4567-e89b-12d3-a456-426614174000\"", true);
	const char *arr = "{\"type\":\"array\",\"items\":{\"type\":\"integer\"},\"minItems\":1,\"maxItems\":3}";
	G(arr, "[1]", true);
	G(arr, "[ 1, 2,\n  3 ]", true);
	G(arr, "[]", false);
	G(arr, "[1,2,3,4]", false);
	G(arr, "[1,\"a\"]", false);
	G("{\"type\":\"array\",\"maxItems\":0}", "[]", true);
	G("{\"type\":\"array\"}", "[1,\"a\",{\"k\":[null]}]", true);
	G("{\"type\":\"array\"}", "[1,]", false);
	G("{\"type\":\"array\"}", "[1  ]", false); /* one space at most */
	const char *obj = "{\"type\":\"object\",\"properties\":{\"name\":{\"type\":\"string\"},"
			  "\"age\":{\"type\":\"integer\"},\"tags\":{\"type\":\"array\",\"items\":{\"type\":\"string\"}}},"
			  "\"required\":[\"age\"],\"additionalProperties\":false}";
	G(obj, "{\"name\":\"x\",\"age\":3,\"tags\":[\"a\"]}", true);
	G(obj, "{\"age\":3}", true);
	G(obj, "{\"age\": 3, \"tags\": []}", true);
	G(obj, "{\n  \"name\": \"x\",\n  \"age\": 3\n}", true);
	G(obj, "{\"name\":\"x\"}", false); /* age required */
	G(obj, "{\"age\":3,\"name\":\"x\"}", false); /* order is the schema's */
	G(obj, "{\"age\":3,\"other\":1}", false);
	G(obj, "{,\"age\":3}", false);
	G("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"integer\"}}}", "{}", true);
	G("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":1,\"y\":2}", true);
	G("{\"type\":\"object\",\"additionalProperties\":{\"type\":\"integer\"}}", "{\"x\":\"1\"}", false);
	G("{\"type\":\"object\",\"additionalProperties\":false}", "{}", true);
	G("{\"type\":\"object\",\"additionalProperties\":false}", "{\"a\":1}", false);
	G("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}}]}", "[true]", true);
	G("{\"anyOf\":[{\"type\":\"integer\"},{\"type\":\"array\",\"items\":{\"type\":\"boolean\"}}]}", "\"s\"", false);
	G("{\"oneOf\":[{\"type\":\"string\"},{\"type\":\"null\"}]}", "null", true);
	/* recursion through $ref */
	const char *tree = "{\"$defs\":{\"node\":{\"type\":\"object\",\"properties\":{\"v\":{\"type\":\"integer\"},"
			   "\"kids\":{\"type\":\"array\",\"items\":{\"$ref\":\"#/$defs/node\"}}},\"required\":[\"v\"],"
			   "\"additionalProperties\":false}},\"$ref\":\"#/$defs/node\"}";
	G(tree, "{\"v\":1,\"kids\":[{\"v\":2},{\"v\":3,\"kids\":[]}]}", true);
	G(tree, "{\"v\":1,\"kids\":[{}]}", false);
	G("{}", "{\"any\":[1,2.5,\"x\",null,true]}", true);
	G("true", "\"anything\"", true);
}

static void expect_compile_error(const char *schema, const char *needle)
{
	json_t *s = J(schema);
	struct dk_grammar *g = (struct dk_grammar *)1;
	char err[512];
	assert_int_equal(dk_schema_compile(s, &g, err, sizeof err), DK_SKIP);
	assert_null(g);
	if (!strstr(err, needle))
		fail_msg("compile(%s): '%s' lacks '%s'", schema, err, needle);
	json_decref(s);
}

static void test_compile_errors(void **state)
{
	(void)state;
	expect_compile_error("{\"properties\":{\"date\":{\"type\":\"string\",\"format\":\"hostname\"}}}",
			     "schema: /properties/date/format: unsupported format 'hostname'");
	expect_compile_error("{\"type\":\"string\",\"pattern\":\"(a\"}", "schema: /pattern: not a pattern");
	expect_compile_error("{\"type\":\"integer\",\"minimum\":1}", "schema: /minimum: unsupported keyword 'minimum'");
	expect_compile_error("{\"type\":\"strin\"}", "/type: unknown type 'strin'");
	expect_compile_error("{\"type\":\"string\",\"maxLength\":-1}", "/maxLength: must be a non-negative integer");
	expect_compile_error("{\"type\":\"array\",\"minItems\":3,\"maxItems\":2}", "maxItems below minItems");
	expect_compile_error("{\"type\":\"array\",\"items\":[{\"type\":\"string\"}]}", "/items: tuple form");
	expect_compile_error("{\"$ref\":\"http://x/y\"}", "/$ref: cannot resolve");
	expect_compile_error("{\"type\":\"string\",\"enum\":[1,2]}", "/enum: no value satisfies");
	expect_compile_error("{\"type\":\"object\",\"anyOf\":[{}]}", "anyOf beside 'type'");
	expect_compile_error("{\"type\":\"object\",\"required\":[\"a\"],\"additionalProperties\":false}",
			     "/required/0: required property 'a'");
	expect_compile_error("false", "matches nothing");
	expect_compile_error("3", "must be an object or a boolean");
	expect_compile_error("{\"$ref\":\"#\"}", "left recursion");
	expect_compile_error("{\"type\":\"string\",\"maxLength\":100000}", "more than the supported");
	expect_compile_error("{\"anyOf\":[]}", "non-empty array");
}

static void test_gbnf_text(void **state)
{
	(void)state;
	json_t *s = J("{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"boolean\"}},\"required\":[\"a\"]}");
	char *text, err[256];
	assert_int_equal(dk_schema_to_gbnf(s, &text, err, sizeof err), DK_OK);
	assert_non_null(strstr(text, "root ::= s0\n"));
	assert_non_null(strstr(text, "\"\\\"a\\\"\" \":\" ws s1"));
	assert_non_null(strstr(text, "ws ::="));
	free(text);
	json_decref(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_validator),
		cmocka_unit_test(test_compile_accepts),
		cmocka_unit_test(test_compile_errors),
		cmocka_unit_test(test_gbnf_text),
	};
	return dk_test_run_group(tests, NULL, NULL);
}
