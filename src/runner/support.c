/* The support check of a summary against its source (support.h). */
#include "runner/support.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "runner/values.h"

static bool wordch(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* ---- units ---- */

enum unit {
	U_NONE, U_MG, U_G, U_MCG, U_KG, U_LB, U_ML, U_L, U_MMHG, U_MM, U_CM, U_M, U_INCH, U_PCT,
	U_UNITS, U_MEQ, U_MMOL, U_BPM, U_MIN, U_HOUR, U_DAY, U_WEEK, U_MONTH, U_YEAR, U_AGE,
};

/* Spellings of each unit, longest first where one starts another. */
static const struct {
	const char *s;
	enum unit u;
} units[] = {
	{"milligrams", U_MG}, {"milligram", U_MG}, {"mg", U_MG},
	{"micrograms", U_MCG}, {"microgram", U_MCG}, {"mcg", U_MCG}, {"\xc2\xb5g", U_MCG},
	{"kilograms", U_KG}, {"kilogram", U_KG}, {"kgs", U_KG}, {"kg", U_KG},
	{"grams", U_G}, {"gram", U_G}, {"gm", U_G}, {"g", U_G},
	{"pounds", U_LB}, {"pound", U_LB}, {"lbs", U_LB}, {"lb", U_LB},
	{"milliliters", U_ML}, {"milliliter", U_ML}, {"millilitres", U_ML}, {"millilitre", U_ML},
	{"ml", U_ML}, {"cc", U_ML},
	{"liters", U_L}, {"liter", U_L}, {"litres", U_L}, {"litre", U_L},
	{"mm hg", U_MMHG}, {"mmhg", U_MMHG},
	{"millimeters", U_MM}, {"millimeter", U_MM}, {"mm", U_MM},
	{"centimeters", U_CM}, {"centimeter", U_CM}, {"cm", U_CM},
	{"meters", U_M}, {"meter", U_M}, {"metres", U_M}, {"metre", U_M},
	{"inches", U_INCH}, {"inch", U_INCH},
	{"percent", U_PCT}, {"per cent", U_PCT}, {"%", U_PCT},
	{"units", U_UNITS}, {"unit", U_UNITS}, {"iu", U_UNITS},
	{"meq", U_MEQ}, {"mmol", U_MMOL}, {"bpm", U_BPM},
	{"minutes", U_MIN}, {"minute", U_MIN}, {"mins", U_MIN}, {"min", U_MIN},
	{"hours", U_HOUR}, {"hour", U_HOUR}, {"hrs", U_HOUR}, {"hr", U_HOUR},
	{"days", U_DAY}, {"day", U_DAY},
	{"weeks", U_WEEK}, {"week", U_WEEK}, {"wks", U_WEEK}, {"wk", U_WEEK},
	{"months", U_MONTH}, {"month", U_MONTH},
	{"year-old", U_AGE}, {"years-old", U_AGE}, {"year old", U_AGE}, {"years old", U_AGE},
	{"y/o", U_AGE}, {"yo", U_AGE},
	{"years", U_YEAR}, {"year", U_YEAR}, {"yrs", U_YEAR}, {"yr", U_YEAR},
};

/* The unit right after a number (after one space or hyphen, or none):
 * its kind, *end past it. */
static enum unit read_unit(const char *s, const char **end)
{
	const char *p = s;
	if (*p == ' ' || *p == '-')
		p++;
	for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
		size_t n = strlen(units[i].s);
		if (strncasecmp(p, units[i].s, n))
			continue;
		/* a word unit ends its word; % may be followed by anything */
		if (isalpha((unsigned char)units[i].s[n - 1]) && wordch((unsigned char)p[n]))
			continue;
		*end = p + n;
		return units[i].u;
	}
	*end = s;
	return U_NONE;
}

static bool same_unit(enum unit a, enum unit b)
{
	if ((a == U_AGE && b == U_YEAR) || (a == U_YEAR && b == U_AGE))
		return true;
	return a == b;
}

/* ---- the source's facts ---- */

struct num {
	double v;
	enum unit u;
};

struct facts {
	char *lower;         /* the source in lower case (ASCII letters) */
	struct num *nums;
	size_t n_nums, cap_nums;
	struct dk_date *dates;
	size_t n_dates, cap_dates;
};

static const char *const number_words[] = {
	"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
	"eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
	"nineteen", "twenty",
};
static const struct {
	const char *s;
	int v;
} tens[] = {{"thirty", 30}, {"forty", 40}, {"fifty", 50}, {"sixty", 60},
	    {"seventy", 70}, {"eighty", 80}, {"ninety", 90}, {"hundred", 100}};

/* The value of the number word at s (one, Twelve, forty), *end past it; -1 when none. */
static int read_number_word(const char *s, const char **end)
{
	size_t n = 0;
	while (isalpha((unsigned char)s[n]))
		n++;
	for (size_t i = 0; i < sizeof number_words / sizeof number_words[0]; i++)
		if (strlen(number_words[i]) == n && !strncasecmp(s, number_words[i], n)) {
			*end = s + n;
			return (int)i;
		}
	for (size_t i = 0; i < sizeof tens / sizeof tens[0]; i++)
		if (strlen(tens[i].s) == n && !strncasecmp(s, tens[i].s, n)) {
			*end = s + n;
			return tens[i].v;
		}
	return -1;
}

static int add_num(struct facts *f, double v, enum unit u)
{
	if (f->n_nums == f->cap_nums) {
		size_t cap = f->cap_nums ? f->cap_nums * 2 : 64;
		struct num *n = realloc(f->nums, cap * sizeof *n);
		if (!n)
			return -1;
		f->nums = n;
		f->cap_nums = cap;
	}
	f->nums[f->n_nums++] = (struct num){v, u};
	return 0;
}

static int add_date(struct facts *f, struct dk_date d)
{
	if (f->n_dates == f->cap_dates) {
		size_t cap = f->cap_dates ? f->cap_dates * 2 : 16;
		struct dk_date *n = realloc(f->dates, cap * sizeof *n);
		if (!n)
			return -1;
		f->dates = n;
		f->cap_dates = cap;
	}
	f->dates[f->n_dates++] = d;
	return 0;
}

/* A number starts at p: a digit not inside a word or another number. */
static bool num_start(const char *text, const char *p)
{
	if (!isdigit((unsigned char)*p))
		return false;
	if (p == text)
		return true;
	unsigned char b = (unsigned char)p[-1];
	if (wordch(b))
		return false;
	return !((b == '.' || b == ',') && p - 1 > text && isdigit((unsigned char)p[-2]));
}

/* Reads a number (no currency: the summary's "$" is not part of it) at p. */
static bool read_plain_number(const char *p, double *v, const char **end)
{
	return isdigit((unsigned char)*p) && dk_value_read_number(p, v, end);
}

static void facts_free(struct facts *f)
{
	free(f->lower);
	free(f->nums);
	free(f->dates);
}

static int facts_read(struct facts *f, const char *src)
{
	memset(f, 0, sizeof *f);
	size_t n = strlen(src);
	if (!(f->lower = malloc(n + 1)))
		return -1;
	for (size_t i = 0; i <= n; i++)
		f->lower[i] = (char)tolower((unsigned char)src[i]);
	for (const char *p = src; *p;) {
		bool start = p == src || !wordch((unsigned char)p[-1]);
		const char *e;
		struct dk_date d;
		if (start && dk_value_read_date(p, DK_DATE_DMY, true, &d, &e) && add_date(f, d))
			return -1;
		double v;
		if (num_start(src, p) && read_plain_number(p, &v, &e)) {
			const char *ue;
			if (add_num(f, v, read_unit(e, &ue)))
				return -1;
			p = e;
			continue;
		}
		int w;
		if (start && isalpha((unsigned char)*p) && (w = read_number_word(p, &e)) >= 0) {
			const char *ue;
			if (add_num(f, w, read_unit(e, &ue)))
				return -1;
			p = e;
			continue;
		}
		p++;
	}
	return 0;
}

/* Does the source hold word (n bytes) as a whole word, in any case? */
static bool has_word(const struct facts *f, const char *word, size_t n)
{
	char w[128];
	if (n == 0 || n >= sizeof w)
		return false;
	for (size_t i = 0; i < n; i++)
		w[i] = (char)tolower((unsigned char)word[i]);
	w[n] = 0;
	for (const char *p = f->lower; (p = strstr(p, w)); p++) {
		bool before = p == f->lower || !wordch((unsigned char)p[-1]);
		if (before && !wordch((unsigned char)p[n]))
			return true;
	}
	return false;
}

/* Does the source have the text s (n bytes) as written, not inside a longer number or word? */
static bool has_literal(const struct facts *f, const char *s, size_t n)
{
	return has_word(f, s, n);
}

static bool has_number(const struct facts *f, double v, enum unit u)
{
	for (size_t i = 0; i < f->n_nums; i++)
		if (dk_value_same_number(f->nums[i].v, v) && (u == U_NONE || same_unit(u, f->nums[i].u)))
			return true;
	return false;
}

static bool date_matches(const struct dk_date *a, const struct dk_date *b)
{
	return a->m == b->m && (!a->y || !b->y || a->y == b->y) && (!a->d || !b->d || a->d == b->d);
}

static bool has_date(const struct facts *f, const struct dk_date *d)
{
	struct dk_date sw = *d;
	if (d->swappable) {
		sw.m = d->d;
		sw.d = d->m;
	}
	for (size_t i = 0; i < f->n_dates; i++) {
		const struct dk_date *s = &f->dates[i];
		struct dk_date ss = *s;
		if (s->swappable) {
			ss.m = s->d;
			ss.d = s->m;
		}
		if (date_matches(d, s) || date_matches(&sw, s) || date_matches(d, &ss) ||
		    date_matches(&sw, &ss))
			return true;
	}
	return false;
}

/* ---- the summary's items ---- */

static const char *const titles[] = {"dr", "mr", "mrs", "ms", "prof", "st"};
/* Words that open a list item as they open any sentence. */
static const char *const function_words[] = {
	"a", "after", "all", "also", "an", "and", "as", "at", "before", "both", "but", "by",
	"during", "each", "for", "from", "he", "her", "his", "if", "in", "it", "its", "no", "not",
	"of", "on", "or", "she", "that", "the", "their", "there", "these", "they", "this", "to",
	"was", "we", "were", "when", "which", "with", "without",
};

static bool in_list(const char *const *l, size_t n, const char *w, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(l[i]) == len && !strncasecmp(l[i], w, len))
			return true;
	return false;
}

/* A capital inside the word, or a digit (EASD, McDonald, COVID-19): a
 * name whatever its place in the sentence. */
static bool name_shaped(const char *w, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (isupper((unsigned char)w[i]) || isdigit((unsigned char)w[i]))
			return true;
	return false;
}

/* Adds the item s[0..n) to out unless it is there (in any case). */
static int add_item(json_t *out, const char *s, size_t n)
{
	while (n && (s[n - 1] == ' ' || s[n - 1] == '-'))
		n--;
	size_t i;
	json_t *v;
	json_array_foreach(out, i, v) {
		if (json_string_length(v) == n && !strncasecmp(json_string_value(v), s, n))
			return 0;
	}
	return json_array_append_new(out, json_stringn(s, n));
}

/* A list marker: a small number followed by "." or ")" and a space, at
 * the start of a line or after the end of a sentence or item ("... done.
 * 2. The", "Hypertension, 2. High cholesterol"). */
static bool list_marker(const char *text, const char *p, const char *e)
{
	const char *b = p;
	while (b > text && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	if (b > text && !strchr("\n.:;,", b[-1]))
		return false;
	return e - p <= 2 && (*e == '.' || *e == ')') && (e[1] == ' ' || e[1] == '\n');
}

/* A capitalised word at p (letters, digits, inner hyphens and apostrophes);
 * *n: its length without a possessive 's. */
static const char *read_word(const char *p, size_t *n)
{
	const char *e = p;
	for (;;) {
		while (wordch((unsigned char)*e))
			e++;
		if ((*e == '-' || *e == '\'') && wordch((unsigned char)e[1]))
			e++;
		else
			break;
	}
	*n = (size_t)(e - p);
	if (*n > 2 && p[*n - 2] == '\'' && (p[*n - 1] == 's' || p[*n - 1] == 'S'))
		*n -= 2;
	return e;
}

/* A hyphenated name whose parts the source has one by one is found too. */
static bool word_found(const struct facts *f, const char *w, size_t n)
{
	if (has_word(f, w, n))
		return true;
	if (!memchr(w, '-', n))
		return false;
	const char *p = w, *end = w + n;
	while (p < end) {
		const char *q = memchr(p, '-', (size_t)(end - p));
		if (!q)
			q = end;
		if (q - p > 1 && !has_word(f, p, (size_t)(q - p)))
			return false;
		p = q + 1;
	}
	return true;
}

/* Does the '.' at p end a sentence, or an abbreviation, initial or list marker? */
static bool ends_sentence(const char *text, const char *p)
{
	static const char *const abbrev[] = {"dr", "mr", "mrs", "ms", "prof", "st", "vs", "e.g",
					     "i.e", "approx", "fig"};
	if (*p != '.')
		return true;
	const char *w = p;
	while (w > text && (wordch((unsigned char)w[-1]) || (w[-1] == '.' && w - 1 > text &&
							      wordch((unsigned char)w[-2]))))
		w--;
	size_t n = (size_t)(p - w);
	if (n == 1 && isupper((unsigned char)*w))
		return false;
	if (in_list(abbrev, sizeof abbrev / sizeof *abbrev, w, n))
		return false;
	const char *nx = p + 1;
	while (*nx == ' ')
		nx++;
	if (n == 2 && !strncasecmp(w, "no", 2) && isdigit((unsigned char)*nx))
		return false; /* No. 5 */
	/* "2." at the start of a line numbers a list item */
	bool num = n > 0 && n <= 2 && isdigit((unsigned char)w[0]) && isdigit((unsigned char)w[n - 1]);
	const char *b = w;
	while (b > text && (b[-1] == ' ' || b[-1] == '\t'))
		b--;
	return !(num && (b == text || b[-1] == '\n'));
}

json_t *dk_support_check(const char *summary, const char *source)
{
	struct facts f;
	json_t *out = json_array();
	if (!out || facts_read(&f, source ? source : "")) {
		json_decref(out);
		facts_free(&f);
		return NULL;
	}
	bool sentence = true;
	bool item = false; /* right after a list marker */
	int rc = 0;
	for (const char *p = summary; *p && !rc;) {
		unsigned char c = (unsigned char)*p;
		bool start = p == summary || !wordch((unsigned char)p[-1]);
		if (!start || (!isalnum(c))) {
			if (c == '.')
				sentence = ends_sentence(summary, p);
			else if (c == '!' || c == '?' || c == '\n')
				sentence = true;
			else if (c == ':')
				sentence = isspace((unsigned char)p[1]);
			else if (!isspace(c) && c != '"' && c != '\'' && c != '(' && c != '*' && c != '-')
				sentence = item = false;
			p++;
			continue;
		}
		const char *e;
		struct dk_date d;
		double v;
		if (dk_value_read_date(p, DK_DATE_DMY, true, &d, &e)) {
			if (!has_date(&f, &d) && !has_literal(&f, p, (size_t)(e - p)))
				rc = add_item(out, p, (size_t)(e - p));
			p = e;
			sentence = item = false;
			continue;
		}
		if (isdigit(c)) {
			const char *q = p;
			while (isdigit((unsigned char)*q))
				q++;
			if (dk_value_read_time(p, &e) ||
			    (*q == '/' && isdigit((unsigned char)q[1]))) { /* a time, a ratio: as written */
				if (!dk_value_read_time(p, &e))
					for (e = q + 1; isdigit((unsigned char)*e) ||
							(*e == '/' && isdigit((unsigned char)e[1]));)
						e++;
				if (!has_literal(&f, p, (size_t)(e - p)))
					rc = add_item(out, p, (size_t)(e - p));
				p = e;
				sentence = item = false;
				continue;
			}
			if (read_plain_number(p, &v, &e)) {
				if (list_marker(summary, p, e)) {
					p = e + 1;
					sentence = false;
					item = true;
					continue;
				}
				const char *ue;
				enum unit u = read_unit(e, &ue);
				if (!has_number(&f, v, u))
					rc = add_item(out, p, (size_t)(ue - p));
				p = ue;
				sentence = item = false;
				continue;
			}
		}
		size_t n;
		e = read_word(p, &n);
		bool skip = !isupper(c) || n < 2 || in_list(titles, sizeof titles / sizeof *titles, p, n) ||
			    (sentence && !name_shaped(p, n)) ||
			    (item && in_list(function_words, sizeof function_words / sizeof *function_words,
					     p, n));
		if (!skip && !word_found(&f, p, n))
			rc = add_item(out, p, n);
		p = e;
		sentence = item = false;
	}
	facts_free(&f);
	if (rc) {
		json_decref(out);
		return NULL;
	}
	return out;
}

size_t dk_support_complete_len(const char *text)
{
	size_t best = 0;
	for (const char *p = text; *p; p++) {
		if (*p != '.' && *p != '!' && *p != '?')
			continue;
		const char *e = p + 1;
		while (*e == '"' || *e == '\'' || *e == ')' || *e == ']')
			e++;
		if ((*e && !isspace((unsigned char)*e)) || !ends_sentence(text, p))
			continue;
		best = (size_t)(e - text);
	}
	return best;
}
