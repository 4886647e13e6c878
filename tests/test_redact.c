/* PHI redactor: formats, planted identifiers in real mtsamples notes, no
 * over-redaction of clinical text, exact local reversal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/redact.h"
#include "testutil.h"

static struct dk_redactor *R;

static char *red(const char *in, struct dk_redact_map **m)
{
	char *out;
	size_t ol;
	assert_int_equal(dk_redact(R, in, strlen(in), &out, &ol, m), DK_OK);
	assert_int_equal(strlen(out), ol);
	return out;
}

/* Redacts in, checks the round trip, returns the redacted text. */
static char *red_rt(const char *in)
{
	struct dk_redact_map *m = NULL;
	char *out = red(in, &m);
	char *back;
	size_t bl;
	assert_int_equal(dk_unredact(m, out, strlen(out), &back, &bl), DK_OK);
	assert_int_equal(bl, strlen(in));
	assert_string_equal(back, in);
	free(back);
	dk_redact_map_free(m);
	return out;
}

static void expect(const char *in, const char *want)
{
	char *out = red_rt(in);
	if (strcmp(out, want))
		fail_msg("redact(\"%s\")\n  got  \"%s\"\n  want \"%s\"", in, out, want);
	free(out);
}

static void test_formats(void **state)
{
	(void)state;
	/* dates */
	expect("on 01/02/2023.", "on [DATE_1].");
	expect("on 1/2/23 and 2023-01-02", "on [DATE_1] and [DATE_2]");
	expect("seen Jan 2, 2023; Jan. 2, 2023", "seen [DATE_1]; [DATE_2]");
	expect("on 2 January 2023 and January 2nd, 2023", "on [DATE_1] and [DATE_2]");
	expect("since March 2019 and 03/2019", "since [DATE_1] and [DATE_2]");
	expect("on 02-Jan-2023 and 14.03.1962", "on [DATE_1] and [DATE_2]");
	expect("DOB: 3/14/1962.", "DOB: [DATE_1].");
	/* phones */
	expect("call (555) 123-4567 or 555-123-4568", "call [PHONE_1] or [PHONE_2]");
	expect("call 555.123.4567 x204", "call [PHONE_1]");
	expect("call +1 555 123 4567 or +44 20 7946 0958", "call [PHONE_1] or [PHONE_2]");
	expect("Fax: 555 123 4567.", "Fax: [PHONE_1].");
	/* email, url, ip */
	expect("mail j.doe+x@mail.example.org.", "mail [EMAIL_1].");
	expect("see https://portal.example.org/a?b=1, www.example.com.", "see [URL_1], [URL_2].");
	expect("host 10.0.12.7 and 2001:db8::8a2e:370:7334.", "host [IP_1] and [IP_2].");
	/* numbers after cues */
	expect("SSN 123-45-6789", "SSN [SSN_1]");
	expect("social security number: 123 45 6789", "social security number: [SSN_1]");
	expect("MRN: 00482133, Acct #: AC-99812", "MRN: [MRN_1], Acct #: [MRN_2]");
	expect("Medical record number 77-1234-X", "Medical record number [MRN_1]");
	expect("Member ID: XZ88812345; policy no. 55123", "Member ID: [MRN_1]; policy no. [MRN_2]");
	expect("License plate: 7ABC123; DEA # AB1234563", "License plate: [ID_1]; DEA # [ID_2]");
	expect("reference 84729931 noted", "reference [ID_1] noted");
	/* addresses, zip */
	expect("lives at 1425 West Maple Avenue, Apt 4B, Springfield, IL 62704-1234.",
	       "lives at [ADDRESS_1], [ADDRESS_2], IL [ZIP_1].");
	expect("P.O. Box 4471, Dayton, Ohio 45401", "[ADDRESS_1], [ADDRESS_2], Ohio [ZIP_1]");
	expect("zip code 90210", "zip code [ZIP_1]");
	/* names */
	expect("Patient: John Q. Smithfield, 45", "Patient: [NAME_1], 45");
	expect("Patient Name: Smithfield, John", "Patient Name: [NAME_1]");
	expect("seen by Dr. Alice Wong today", "seen by Dr. [NAME_1] today");
	expect("Mrs. O'Brien-Day's knee", "Mrs. [NAME_1]'s knee");
	expect("Dear Dr. Katz:", "Dear Dr. [NAME_1]:");
	expect("Sincerely, Robert Jones, MD", "Sincerely, [NAME_1], MD");
	expect("Mr. Smithfield is 45. Smithfield reports pain. SMITHFIELD agrees.",
	       "Mr. [NAME_1] is 45. [NAME_1] reports pain. [NAME_2] agrees.");
	expect("Electronically signed by: Maria Gonzalez-Ruiz, RN", "Electronically signed by: [NAME_1], RN");
	/* same value, same placeholder; different values count up */
	expect("01/02/2023, 01/03/2023, 01/02/2023", "[DATE_1], [DATE_2], [DATE_1]");
}

static void test_no_over_redaction(void **state)
{
	(void)state;
	static const char *const keep[] = {
		"Vitals: blood pressure 124/78, pulse 72, temperature 98.6.",
		"BP 130/85 mmHg, HR 88, RR 16, O2 sat 98% on room air.",
		"Lisinopril 10 mg daily, metformin 500 mg b.i.d., aspirin 81 mg.",
		"Pain is 7/10. Vision 20/20. Take 1/2 tablet.",
		"Sodium 138, potassium 4.1, creatinine 1.2, glucose 105.",
		"WBC 11.5, hemoglobin 13.2, platelets 250,000.",
		"C5-6 disc herniation, T12-L1 fracture, grade 2-3 murmur.",
		"Follow up in 2 weeks at 10:30 a.m. The patient is a 45-year-old male.",
		"She has had 3 pregnancies, G3 P2 A1, since age 12.",
		"Potassium range 3.5-5.0; INR 2.5; dose 0.125 mg.",
		"May need physical therapy. March forward with the plan.",
		"The patient was seen in the emergency room.",
		"Diagnosis: Allergic rhinitis. Plan: Zyrtec 10 mg.",
		"He was taking Ortho Tri-Cyclen and Allegra.",
		"Estimated blood loss 150 mL. Fluids 2000 mL.",
		"EKG showed QRS 0.12 seconds, PR 160 ms, QTc 440.",
		"Patient: The patient is a 60-year-old female.",
		"Tumor measured 3.2 x 2.1 x 1.5 cm.",
	};
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		expect(keep[i], keep[i]);
}

/* Fake identifiers planted into real notes.  Each value must vanish; the
 * bare words of names are checked too. */
struct plant {
	const char *sentence; /* inserted text */
	const char *values[4]; /* what must not survive */
};

static const struct plant plants[] = {
	{"Patient: Jonathan Whitfield, ", {"Jonathan", "Whitfield"}},
	{"Patient Name: Quintessa Albright. ", {"Quintessa", "Albright"}},
	{"Whitfield was counseled again. ", {"Whitfield"}},
	{"DOB: 03/14/1962. ", {"03/14/1962"}},
	{"Admitted on Feb 7, 2021 and discharged 2021-02-11. ", {"Feb 7, 2021", "2021-02-11"}},
	{"Surgery on 9 September 2019. ", {"9 September 2019"}},
	{"Phone: (555) 867-5309. ", {"867-5309", "(555)"}},
	{"Call back at 555-201-7788 or fax 555.201.7789. ", {"555-201-7788", "555.201.7789"}},
	{"Email: jwhitfield1962@mailbox.example.net. ", {"jwhitfield1962", "mailbox.example.net"}},
	{"SSN 412-55-9087. ", {"412-55-9087"}},
	{"MRN: 48213377. ", {"48213377"}},
	{"Account number: ACC-5512093. ", {"ACC-5512093"}},
	{"Member ID: QHP88812345. ", {"QHP88812345"}},
	{"Address: 1425 West Maple Avenue, Springfield, IL 62704. ",
	 {"1425 West Maple Avenue", "Springfield", "62704"}},
	{"Portal: https://mychart.example-health.org/p/88123. ", {"mychart.example-health.org", "88123"}},
	{"Device IP 192.168.44.21. ", {"192.168.44.21"}},
	{"Driver's license number: D1234-5678-9012. ", {"D1234-5678-9012"}},
	{"License plate 7XQZ219. ", {"7XQZ219"}},
	{"Referred by Dr. Evangeline Okonkwo. ", {"Evangeline", "Okonkwo"}},
	{"Okonkwo will follow up. ", {"Okonkwo"}},
	{"Seen by Mr. Thaddeus Pemberton-Reyes on 12/01/2020. ",
	 {"Thaddeus", "Pemberton-Reyes", "12/01/2020"}},
	{"Contact: +1 312 555 0199. ", {"312 555 0199"}},
};

static char *plant_into(const char *note, size_t seed, size_t nplant)
{
	size_t len = strlen(note);
	size_t cap = len + 4096;
	char *o = malloc(cap);
	size_t k = 0;
	/* boundaries after ". " or ",", cycling plants over the note */
	size_t p = 0, step = len / (nplant + 1) + 1;
	for (size_t i = 0; i < nplant; i++) {
		size_t target = (i + 1) * step;
		size_t cut = target;
		while (cut < len && !(note[cut - 1] == ' ' && (note[cut - 2] == '.' || note[cut - 2] == ',')))
			cut++;
		if (cut > len)
			cut = len;
		if (cut < p)
			cut = p;
		memcpy(o + k, note + p, cut - p);
		k += cut - p;
		p = cut;
		const char *s = plants[(seed + i) % (sizeof plants / sizeof plants[0])].sentence;
		memcpy(o + k, s, strlen(s));
		k += strlen(s);
	}
	memcpy(o + k, note + p, len - p);
	k += len - p;
	o[k] = 0;
	return o;
}

static int word_present(const char *hay, const char *w)
{
	/* offsets, not pointers: gcc 12 -O3 misreads the pointer walk as
	 * dangling once this is inlined next to free(out) */
	size_t l = strlen(w), n = strlen(hay);
	for (size_t i = 0; i + l <= n; i++) {
		if (memcmp(hay + i, w, l) != 0)
			continue;
		int before = i > 0 && isalnum((unsigned char)hay[i - 1]);
		int after = isalnum((unsigned char)hay[i + l]);
		if (!before && !after)
			return 1;
	}
	return 0;
}

static void test_planted_mtsamples(void **state)
{
	(void)state;
	size_t nplants = sizeof plants / sizeof plants[0];
	size_t notes = 0, checked = 0;
	for (int id = 1; id <= 440 && notes < 40; id += 11) {
		char path[64];
		snprintf(path, sizeof path, "corpus/mtsamples/docs/mts_%04d.txt", id);
		char *note = dk_test_read_file(dk_test_shared(path), NULL);
		if (!note)
			continue;
		notes++;
		/* plants whose values already occur in the note would prove nothing */
		char *text = plant_into(note, (size_t)id, nplants);
		struct dk_redact_map *m = NULL;
		char *out = red(text, &m);
		for (size_t i = 0; i < nplants; i++) {
			for (int v = 0; v < 4 && plants[i].values[v]; v++) {
				if (strstr(note, plants[i].values[v]))
					continue;
				checked++;
				if (strstr(out, plants[i].values[v]) || word_present(out, plants[i].values[v]))
					fail_msg("mts_%04d: planted '%s' survived", id, plants[i].values[v]);
			}
		}
		char *back;
		size_t bl;
		assert_int_equal(dk_unredact(m, out, strlen(out), &back, &bl), DK_OK);
		assert_string_equal(back, text);
		free(back);
		free(out);
		dk_redact_map_free(m);
		free(text);
		free(note);
	}
	assert_true(notes > 0);
	assert_true(checked > 100);
}

/* The whole corpus: round trip exact, little redacted, figures printed. */
static void test_corpus_rate(void **state)
{
	(void)state;
	DIR *d = opendir(dk_test_shared("corpus/mtsamples/docs"));
	assert_non_null(d);
	struct dirent *e;
	size_t total_in = 0, total_red = 0, docs = 0, counts[DK_PHI_COUNT] = {0};
	while ((e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		char rel[512];
		snprintf(rel, sizeof rel, "corpus/mtsamples/docs/%s", e->d_name);
		size_t n;
		char *t = dk_test_read_file(dk_test_shared(rel), &n);
		if (!t)
			continue;
		struct dk_redact_map *m = NULL;
		char *out;
		size_t ol;
		assert_int_equal(dk_redact(R, t, n, &out, &ol, &m), DK_OK);
		char *back;
		size_t bl;
		assert_int_equal(dk_unredact(m, out, ol, &back, &bl), DK_OK);
		assert_int_equal(bl, n);
		assert_memory_equal(back, t, n);
		for (int ty = 0; ty < DK_PHI_COUNT; ty++)
			counts[ty] += dk_redact_map_count(m, ty);
		total_in += n;
		total_red += bl > ol ? bl - ol : 0;
		docs++;
		free(back);
		free(out);
		free(t);
		dk_redact_map_free(m);
	}
	closedir(d);
	size_t all = 0;
	for (int ty = 0; ty < DK_PHI_COUNT; ty++)
		all += counts[ty];
	printf("# redact over %zu mtsamples notes (%zu bytes, net %zu bytes shorter): %zu placeholders, %.2f per note;",
	       docs, total_in, total_red, all, (double)all / (double)(docs ? docs : 1));
	for (int ty = 0; ty < DK_PHI_COUNT; ty++)
		printf(" %s=%zu", dk_phi_name(ty), counts[ty]);
	printf("\n");
	assert_true(docs >= 400);
	/* the notes are already de-identified (dates, "Dr. X" style names
	 * remain): a couple of placeholders per note, nothing like wholesale
	 * redaction of clinical text */
	assert_true(all < docs * 5 / 2);
	assert_true(counts[DK_PHI_PHONE] + counts[DK_PHI_SSN] + counts[DK_PHI_EMAIL] < 20);
}

/* Date recall on real receipts (SROIE): the ground-truth date of each
 * receipt, where it appears verbatim in the OCR text, must be gone. */
static void test_sroie_dates(void **state)
{
	(void)state;
	char *gt = dk_test_read_file(dk_test_shared("corpus/sroie_receipts/ground_truth.jsonl"), NULL);
	assert_non_null(gt);
	size_t present = 0, missed = 0;
	for (char *line = strtok(gt, "\n"); line; line = strtok(NULL, "\n")) {
		/* "date": "25/12/2018" and "text_file": "text/000.txt" */
		char *d = strstr(line, "\"date\": \""), *tf = strstr(line, "\"text_file\": \"");
		if (!d || !tf)
			continue;
		d += 9;
		tf += 14;
		char date[64], rel[128];
		size_t dl = strcspn(d, "\""), tl = strcspn(tf, "\"");
		if (!dl || dl >= sizeof date || tl >= 100)
			continue;
		memcpy(date, d, dl);
		date[dl] = 0;
		snprintf(rel, sizeof rel, "corpus/sroie_receipts/%.*s", (int)tl, tf);
		size_t n;
		char *text = dk_test_read_file(dk_test_shared(rel), &n);
		if (!text)
			continue;
		if (strstr(text, date)) {
			present++;
			struct dk_redact_map *m = NULL;
			char *out;
			assert_int_equal(dk_redact(R, text, n, &out, NULL, &m), DK_OK);
			if (strstr(out, date)) {
				missed++;
				print_message("sroie %s: date '%s' kept\n", rel, date);
			}
			free(out);
			dk_redact_map_free(m);
		}
		free(text);
	}
	free(gt);
	printf("# sroie date recall: %zu of %zu redacted\n", present - missed, present);
	assert_true(present >= 400);
	assert_true(missed * 100 <= present * 2); /* >= 98% */
}

static void test_map_shared_and_literals(void **state)
{
	(void)state;
	struct dk_redact_map *m = NULL;
	char *a = red("Patient: Ada Lovelace, DOB 12/10/1915.", &m);
	char *b = red("Lovelace was seen 12/10/1915 and 01/01/2020.", &m);
	assert_string_equal(a, "Patient: [NAME_1], DOB [DATE_1].");
	assert_string_equal(b, "[NAME_2] was seen [DATE_1] and [DATE_2].");
	assert_string_equal(dk_redact_map_value(m, DK_PHI_NAME, 2), "Lovelace");
	assert_int_equal(dk_redact_map_count(m, DK_PHI_DATE), 3);
	/* an answer that reuses and invents placeholders */
	const char *ans = "[NAME_1] ([NAME_2]) born [DATE_1]; [DATE_9] unknown; [NAME_1";
	char *u;
	size_t ul;
	assert_int_equal(dk_unredact(m, ans, strlen(ans), &u, &ul), DK_OK);
	assert_string_equal(u, "Ada Lovelace (Lovelace) born 12/10/1915; [DATE_9] unknown; [NAME_1");
	free(u);
	free(a);
	free(b);
	dk_redact_map_free(m);
	/* text that already looks like a placeholder survives the round trip */
	char *o = red_rt("keep [DATE_1] and [NAME_7] literally, date 01/02/2023");
	assert_null(strstr(o, "01/02/2023"));
	free(o);
	/* disabled types are left alone */
	struct dk_redact_params p = dk_redact_default_params();
	p.types &= ~(1u << DK_PHI_DATE);
	struct dk_redactor *r2 = dk_redactor_new(&p);
	char *out;
	struct dk_redact_map *m2 = NULL;
	assert_int_equal(dk_redact(r2, "on 01/02/2023 call 555-123-4567", 31, &out, NULL, &m2), DK_OK);
	assert_string_equal(out, "on 01/02/2023 call [PHONE_1]");
	free(out);
	dk_redact_map_free(m2);
	dk_redactor_free(r2);
	/* empty and NUL-containing input */
	struct dk_redact_map *m3 = NULL;
	assert_int_equal(dk_redact(R, "a\0b 555-123-4567", 16, &out, NULL, &m3), DK_OK);
	assert_memory_equal(out, "a\0b [PHONE_1]", 13);
	free(out);
	assert_int_equal(dk_redact(R, "", 0, &out, NULL, &m3), DK_OK);
	assert_string_equal(out, "");
	free(out);
	dk_redact_map_free(m3);
	dk_redact_map_free(NULL);
	dk_redactor_free(NULL);
}

static int setup(void **state)
{
	(void)state;
	R = dk_redactor_new(NULL);
	return R ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	dk_redactor_free(R);
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_no_over_redaction),
		cmocka_unit_test(test_planted_mtsamples),
		cmocka_unit_test(test_corpus_rate),
		cmocka_unit_test(test_sroie_dates),
		cmocka_unit_test(test_map_shared_and_literals),
	};
	return dk_test_run_group(tests, setup, teardown);
}
