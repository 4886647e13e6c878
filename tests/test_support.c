/* The summary support check: numbers, dates, doses and capitalised names
 * found and not found in a source, sentence-initial capitals, and cutting
 * a trailing partial sentence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "runner/support.h"

/* The unsupported items of summary against source, as one string "a|b|c". */
static char *check(const char *summary, const char *source)
{
	json_t *u = dk_support_check(summary, source);
	assert_non_null(u);
	static char buf[1024];
	buf[0] = 0;
	size_t i;
	json_t *v;
	json_array_foreach(u, i, v) {
		if (i)
			strcat(buf, "|");
		strcat(buf, json_string_value(v));
	}
	json_decref(u);
	return buf;
}

static const char *note =
	"SUBJECTIVE:,  This 23-year-old white female presents with complaint of allergies. "
	"She used to have allergies when she lived in Seattle. She tried Claritin, and Zyrtec. "
	"Her platelets fell to 10 on 9/24/07. I increased her prednisone to 60 mg a day for "
	"two weeks. Blood pressure 120/80, pulse 72. Ejection fraction of 70%. She weighs "
	"155.5 pounds. Seen by Dr. Smith at 8:30 a.m. on March 3, 2019. Total 1,250 units.";

static void test_numbers(void **state)
{
	(void)state;
	assert_string_equal(check("Her platelets were 10.", note), "");
	assert_string_equal(check("Her platelets were 12.", note), "12");
	/* 1,250 is 1250; 155.5 is not 15.5 */
	assert_string_equal(check("She received 1250 units.", note), "");
	assert_string_equal(check("She weighs 155.5 pounds.", note), "");
	assert_string_equal(check("She weighs 15.5 pounds.", note), "15.5 pounds");
	/* a number word in the source supports the digits */
	assert_string_equal(check("Prednisone for 2 weeks.", note), "");
	assert_string_equal(check("Prednisone for 3 weeks.", note), "3 weeks");
	/* percentages and ages */
	assert_string_equal(check("Ejection fraction 70%.", note), "");
	assert_string_equal(check("Ejection fraction 70 percent.", note), "");
	assert_string_equal(check("Ejection fraction 75%.", note), "75%");
	assert_string_equal(check("A 23-year-old woman.", note), "");
	assert_string_equal(check("A 32-year-old woman.", note), "32-year-old");
	/* list markers are not facts */
	assert_string_equal(check("1. Allergies.\n2. Claritin helped.", note), "");
	assert_string_equal(check("Allergies. 2. Claritin helped.", note), "");
}

static void test_doses(void **state)
{
	(void)state;
	assert_string_equal(check("Prednisone 60 mg daily.", note), "");
	assert_string_equal(check("Prednisone 60mg daily.", note), "");
	assert_string_equal(check("Prednisone 60 milligrams daily.", note), "");
	/* the number is in the source, but with another unit */
	assert_string_equal(check("Prednisone 60 mcg daily.", note), "60 mcg");
	assert_string_equal(check("Prednisone 500 mg daily.", note), "500 mg");
	/* a dose source and summary agree on, with its unit spelled on the source side */
	assert_string_equal(check("Metformin 500 mg.", "Metformin 500 milligrams twice a day."), "");
	assert_string_equal(check("Metformin 500 mg.", "Metformin 250 mg twice a day."), "500 mg");
}

static void test_dates_times(void **state)
{
	(void)state;
	assert_string_equal(check("Platelets fell on 9/24/07.", note), "");
	assert_string_equal(check("Platelets fell on 9/25/07.", note), "9/25/07");
	assert_string_equal(check("Seen on March 3, 2019.", note), "");
	/* the same day in other forms */
	assert_string_equal(check("Seen on 3 March 2019.", note), "");
	assert_string_equal(check("Seen on 2019-03-03.", note), "");
	assert_string_equal(check("Seen in March 2019.", note), "");
	assert_string_equal(check("Seen on March 4, 2019.", note), "March 4, 2019");
	assert_string_equal(check("Seen at 8:30.", note), "");
	assert_string_equal(check("Seen at 9:30.", note), "9:30");
	assert_string_equal(check("Blood pressure 120/80.", note), "");
	assert_string_equal(check("Blood pressure 130/80.", note), "130/80");
	/* an abbreviation that opens a sentence is name-shaped: the source spells it out */
	assert_string_equal(check("BP 120/80.", note), "BP");
}

static void test_names(void **state)
{
	(void)state;
	/* found in any case; a mid-sentence capital is a name */
	assert_string_equal(check("She tried Zyrtec and claritin.", note), "");
	assert_string_equal(check("She tried Allegra and Zyrtec.", note), "Allegra");
	assert_string_equal(check("She lived in SEATTLE.", note), "");
	assert_string_equal(check("She moved to Portland from Seattle.", note), "Portland");
	/* titles and "I" are not names; the name after the title is */
	assert_string_equal(check("I saw Dr. Smith.", note), "");
	assert_string_equal(check("I saw Dr. Jones.", note), "Jones");
	/* a sentence's first word is capitalised anyway: only name-shaped ones count */
	assert_string_equal(check("Overall, she is well. Regular exercise helps.", note), "");
	assert_string_equal(check("EASD was diagnosed.", note), "EASD");
	assert_string_equal(check("Possible COVID-19 exposure.", note), "COVID-19");
	/* a list item's first word is a name unless it is a function word */
	assert_string_equal(check("Meds: 1. Claritin, 2. Viagra.\n3. The rest.", note), "Viagra");
	/* a possessive is the name */
	assert_string_equal(check("Smith's patient.", note), "");
	/* each item once, in order */
	assert_string_equal(check("Allegra, then Allegra again, then 99 and Xyzal.", note),
			    "Allegra|99|Xyzal");
}

static void test_empty(void **state)
{
	(void)state;
	assert_string_equal(check("", note), "");
	assert_string_equal(check("Take Allegra 5 mg.", ""), "Allegra|5 mg");
}

static void test_complete_len(void **state)
{
	(void)state;
	const char *t = "She has allergies. She tried Claritin and";
	assert_int_equal(dk_support_complete_len(t), strlen("She has allergies."));
	/* abbreviations, initials, decimals and list markers end no sentence */
	assert_int_equal(dk_support_complete_len("Seen by Dr. Smith and J. Doe for 2.5 h"), 0);
	assert_int_equal(dk_support_complete_len("1. The left ventricle is normal.\n2. The aortic"),
			 strlen("1. The left ventricle is normal."));
	/* a closing quote or bracket belongs to the sentence */
	assert_int_equal(dk_support_complete_len("She said \"no.\" Then"), strlen("She said \"no.\""));
	assert_int_equal(dk_support_complete_len("Done! Is it? Yes"), strlen("Done! Is it?"));
	assert_int_equal(dk_support_complete_len("No sentence end here"), 0);
	assert_int_equal(dk_support_complete_len("Room No. 5 is"), 0);
	assert_int_equal(dk_support_complete_len("Ends well."), strlen("Ends well."));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numbers),   cmocka_unit_test(test_doses),
		cmocka_unit_test(test_dates_times), cmocka_unit_test(test_names),
		cmocka_unit_test(test_empty),     cmocka_unit_test(test_complete_len),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
