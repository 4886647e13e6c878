/* Values as documents print them (runner/values.h): dates in their printed
 * forms, numbers with receipt locale habits, normalisations, grounding
 * across line breaks; and the schema checks extract applies to a grounded
 * value (format, pattern: docket/jsonschema.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/jsonschema.h"
#include "runner/values.h"

static const char *iso(const char *s, enum dk_date_order o)
{
	static char out[11];
	return dk_value_canonical_date(s, o, out) ? out : "-";
}

static void test_dates(void **state)
{
	(void)state;
	assert_string_equal(iso("25/12/2018", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso("12-01-19", DK_DATE_DMY), "2019-01-12");
	assert_string_equal(iso("12-01-19", DK_DATE_MDY), "2019-12-01");
	assert_string_equal(iso("2018.12.25", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso("2017-12-28 22:17PM", DK_DATE_DMY), "2017-12-28");
	/* a day above 12 settles the order either way */
	assert_string_equal(iso("12/28/2017", DK_DATE_DMY), "2017-12-28");
	assert_string_equal(iso("05 MAR 2018 18:24", DK_DATE_DMY), "2018-03-05");
	assert_string_equal(iso("25-DEC-18", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso("December 25, 2018", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso("Sept 3rd, 2019", DK_DATE_DMY), "2019-09-03");
	assert_string_equal(iso("25/12/2018 8:13:39 PM", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso("Date: 25/12/2018", DK_DATE_DMY), "2018-12-25");
	assert_string_equal(iso(" 1/2/99 ", DK_DATE_DMY), "1999-02-01");
	/* a time, a year with a time, an invalid day, a number: no date */
	assert_string_equal(iso("18:47:30", DK_DATE_DMY), "-");
	assert_string_equal(iso("2018 20:49:59", DK_DATE_DMY), "-");
	assert_string_equal(iso("31/02/2019", DK_DATE_DMY), "-");
	assert_string_equal(iso("29/02/2019", DK_DATE_DMY), "-");
	assert_string_equal(iso("29/02/2020", DK_DATE_DMY), "2020-02-29");
	assert_string_equal(iso("20.10", DK_DATE_DMY), "-");
	assert_string_equal(iso("1.2.3.4", DK_DATE_DMY), "-");
	assert_string_equal(iso("SALESPERSON", DK_DATE_DMY), "-");
	/* the document prints the date in another form */
	const char *doc = "DOCUMENT NO : TD01167104\nDATE:\n25/12/2018 8:13:39 PM\nCASHIER: MANIS";
	assert_true(dk_value_text_has_date(doc, "2018-12-25", DK_DATE_DMY));
	assert_false(dk_value_text_has_date(doc, "2018-12-26", DK_DATE_DMY));
	/* 03/04/2019 is either day */
	assert_true(dk_value_text_has_date("on 03/04/2019", "2019-03-04", DK_DATE_DMY));
	assert_true(dk_value_text_has_date("on 03/04/2019", "2019-04-03", DK_DATE_DMY));
}

static double num(const char *s)
{
	double v;
	return dk_value_find_number(s, &v) ? v : -12345;
}

static void test_numbers(void **state)
{
	(void)state;
	assert_float_equal(num("RM 30.00"), 30.0, 0);
	assert_float_equal(num("RM30.00"), 30.0, 0);
	assert_float_equal(num("30,00"), 30.0, 0);
	assert_float_equal(num("1,234.56"), 1234.56, 1e-9);
	assert_float_equal(num("1.234,56"), 1234.56, 1e-9);
	assert_float_equal(num("1,234"), 1234.0, 0);
	assert_float_equal(num("1.234.567"), 1234567.0, 0);
	assert_float_equal(num("9.000"), 9.0, 0); /* a price with three decimals */
	assert_float_equal(num("TOTAL: -RM 3.50"), -3.5, 0);
	assert_float_equal(num("-3.50"), -3.5, 0);
	assert_float_equal(num("\xe2\x82\xac 12,5"), 12.5, 1e-12);
	assert_float_equal(num("no number"), -12345, 0);
	/* grounding by value: the model's 12.100000000000011 is the printed 12.10 */
	double printed = 0;
	assert_true(dk_value_text_has_number("TOTAL: 12.10\nCASH 20.00", 12.100000000000011, &printed));
	assert_float_equal(printed, 12.1, 0);
	assert_true(dk_value_text_has_number("JUMLAH 30,00", 30.0, NULL));
	assert_false(dk_value_text_has_number("TOTAL: 12.10", 12.0, NULL));
	/* digits inside a word or a longer number are not that number */
	assert_false(dk_value_text_has_number("SH01 ZK09 9556939040116", 1.0, NULL));
	assert_false(dk_value_text_has_number("155.5 pounds", 15.5, NULL));
}

static char *norm(const char *v, enum dk_norm op)
{
	static char out[256];
	char *r = dk_value_normalize(v, op, DK_DATE_DMY);
	assert_non_null(r);
	snprintf(out, sizeof out, "%s", r);
	free(r);
	return out;
}

static void test_normalize(void **state)
{
	(void)state;
	assert_int_equal(dk_value_norm_find("collapse_spaces"), DK_NORM_COLLAPSE_SPACES);
	assert_int_equal(dk_value_norm_find("date"), DK_NORM_DATE);
	assert_int_equal(dk_value_norm_find("titlecase"), -1);
	assert_string_equal(dk_value_norm_name(DK_NORM_TRIM), "trim");
	assert_string_equal(norm("  NO.53,  JALAN \n SAGU 18 ", DK_NORM_TRIM), "NO.53,  JALAN \n SAGU 18");
	assert_string_equal(norm("NO.53,  JALAN \n SAGU 18", DK_NORM_COLLAPSE_SPACES), "NO.53, JALAN SAGU 18");
	assert_string_equal(norm("Jalan Sagu", DK_NORM_UPPER), "JALAN SAGU");
	assert_string_equal(norm("JALAN Sagu", DK_NORM_LOWER), "jalan sagu");
	assert_string_equal(norm("25/12/2018 8:13:39 PM", DK_NORM_DATE), "2018-12-25");
	/* not a date: left as it is, for the format check to judge */
	assert_string_equal(norm("18:47:30", DK_NORM_DATE), "18:47:30");
}

static void test_grounded(void **state)
{
	(void)state;
	const char *doc = "BOOK TA .K(TAMAN DAYA) SDN BND\n789417-W\nNO.53 55,57 & 59, JALAN SAGU 18,\n"
			  "TAMAN DAYA,\r\n81100 JOHOR BAHRU,\nJOHOR.\n";
	/* a span across line breaks (LF and CRLF), in any case */
	assert_true(dk_value_grounded(doc, "JALAN SAGU 18, TAMAN DAYA, 81100 johor bahru, JOHOR.", false));
	assert_true(dk_value_grounded(doc, "NO.53 55,57 & 59, JALAN SAGU 18,\nTAMAN DAYA", false));
	assert_false(dk_value_grounded(doc, "123 Main Street", false));
	assert_false(dk_value_grounded(doc, "", false));
	/* thousands separators */
	assert_true(dk_value_grounded("TOTAL 1,234.00", "1234.00", true));
	assert_true(dk_value_grounded(NULL, "anything", false));
}

static bool valid(const char *schema, const char *value)
{
	json_t *s = json_loads(schema, 0, NULL), *v = json_loads(value, JSON_DECODE_ANY, NULL);
	assert_non_null(s);
	assert_non_null(v);
	char err[256];
	bool ok = dk_schema_validate(s, v, err, sizeof err);
	json_decref(s);
	json_decref(v);
	return ok;
}

/* What extract checks a grounded value against: the field's format and
 * pattern (a time is not a date, a label word is not an address). */
static void test_format_pattern(void **state)
{
	(void)state;
	const char *date = "{\"type\": [\"string\", \"null\"], \"format\": \"date\"}";
	assert_true(valid(date, "\"2018-12-25\""));
	assert_true(valid(date, "null"));
	assert_false(valid(date, "\"18:47:30\""));
	assert_false(valid(date, "\"25/12/2018\""));
	const char *email = "{\"type\": \"string\", \"format\": \"email\"}";
	assert_true(valid(email, "\"ap@shop.example.com\""));
	assert_false(valid(email, "\"SALESPERSON\""));
	assert_false(valid(email, "\"a@b\""));
	const char *addr = "{\"type\": [\"string\", \"null\"], "
			   "\"pattern\": \"[0-9].*[A-Za-z]{3}|[A-Za-z]{3}.*[0-9]\"}";
	assert_true(valid(addr, "\"NO.53 55,57 & 59, JALAN SAGU 18\""));
	assert_false(valid(addr, "\"SALESPERSON\""));
	assert_false(valid(addr, "\"81100\""));
	/* \\d and anchors, as JSON Schema patterns write them */
	const char *post = "{\"type\": \"string\", \"pattern\": \"^\\\\d{5}$\"}";
	assert_true(valid(post, "\"81100\""));
	assert_false(valid(post, "\"811000\""));
	assert_true(valid("{\"type\": \"string\", \"pattern\": \"[\\\\d.]+ ?mg\"}", "\"2.5 mg\""));
	/* a pattern docket cannot read is refused when compiled */
	json_t *bad = json_loads("{\"type\": \"string\", \"pattern\": \"(unclosed\"}", 0, NULL);
	char *g = NULL;
	char err[256];
	assert_int_not_equal(dk_schema_to_gbnf(bad, &g, err, sizeof err), DK_OK);
	assert_non_null(strstr(err, "pattern"));
	json_decref(bad);
	/* a pattern is checked, not generated: the grammar is a plain string's */
	json_t *ok = json_loads("{\"type\": \"string\", \"pattern\": \"[0-9]\", \"format\": \"email\"}", 0, NULL);
	assert_int_equal(dk_schema_to_gbnf(ok, &g, err, sizeof err), DK_OK);
	assert_non_null(strstr(g, "jemail"));
	free(g);
	json_decref(ok);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dates),     cmocka_unit_test(test_numbers),
		cmocka_unit_test(test_normalize), cmocka_unit_test(test_grounded),
		cmocka_unit_test(test_format_pattern),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
