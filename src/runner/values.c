/* Values as documents print them: dates, numbers, normalisations. */
#include "runner/values.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Letters and digits, and every byte of a multi-byte UTF-8 character
 * (a word may hold accented letters). */
static bool wordch(unsigned char c) { return isalnum(c) || c >= 0x80; }

/* Up to max digits at s: their value and count (0 when none). */
static int digits(const char *s, int max, int *val)
{
	int n = 0, v = 0;
	while (n < max && isdigit((unsigned char)s[n]))
		v = v * 10 + (s[n++] - '0');
	*val = v;
	return n;
}

static bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static bool valid_ymd(int y, int m, int d)
{
	static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m < 1 || m > 12)
		return false;
	if (!d)
		return true;
	if (d < 1 || d > mdays[m - 1])
		return false;
	return !(m == 2 && d == 29 && y && !leap(y));
}

static int full_year(int y, int ndig) { return ndig == 2 ? (y < 70 ? 2000 + y : 1900 + y) : y; }

/* A month name or its abbreviation at s (any case, "Sept" too): its number,
 * and *end past it (and past an abbreviation's period). */
static int read_month(const char *s, const char **end)
{
	static const char *const names[] = {"january", "february", "march",     "april",
					    "may",     "june",     "july",      "august",
					    "september", "october", "november", "december"};
	size_t n = 0;
	while (isalpha((unsigned char)s[n]))
		n++;
	if (n < 3)
		return 0;
	for (int m = 0; m < 12; m++) {
		size_t full = strlen(names[m]);
		bool abbrev = n == 3 || (m == 8 && n == 4);
		if ((n == full || abbrev) && !strncasecmp(s, names[m], n)) {
			*end = s + n + (abbrev && s[n] == '.');
			return m + 1;
		}
	}
	return 0;
}

/* An English ordinal suffix after a day number (3rd, 25th). */
static const char *skip_ordinal(const char *s)
{
	static const char *const suf[] = {"st", "nd", "rd", "th"};
	for (int i = 0; i < 4; i++)
		if (!strncasecmp(s, suf[i], 2) && !isalpha((unsigned char)s[2]))
			return s + 2;
	return s;
}

static bool date_end_ok(const char *e)
{
	unsigned char c = (unsigned char)*e;
	if (wordch(c))
		return false;
	/* 1.2.3.4 or 12/01/2019/5 is not a date */
	return !((c == '/' || c == '-' || c == '.') && isdigit((unsigned char)e[1]));
}

static bool read_numeric_date(const char *s, enum dk_date_order order, struct dk_date *out,
			      const char **end)
{
	int a, b, c;
	int na = digits(s, 4, &a);
	if (!na || isdigit((unsigned char)s[na]))
		return false;
	char sep = s[na];
	if (sep != '/' && sep != '-' && sep != '.')
		return false;
	const char *p = s + na + 1;
	int nb = digits(p, 2, &b);
	if (!nb || p[nb] != sep)
		return false;
	p += nb + 1;
	int nc = digits(p, 4, &c);
	if (!nc || isdigit((unsigned char)p[nc]))
		return false;
	p += nc;
	struct dk_date d = {0};
	if (na == 4) {
		if (nc > 2)
			return false;
		d = (struct dk_date){a, b, c, false};
	} else {
		if (na > 2 || (nc != 2 && nc != 4))
			return false;
		int y = full_year(c, nc);
		int day = order == DK_DATE_DMY ? a : b, mon = order == DK_DATE_DMY ? b : a;
		if (!valid_ymd(y, mon, day) && valid_ymd(y, day, mon)) {
			int t = day;
			day = mon;
			mon = t;
		}
		d = (struct dk_date){y, mon, day, a <= 12 && b <= 12 && a != b};
	}
	if (!d.d || !valid_ymd(d.y, d.m, d.d) || !date_end_ok(p))
		return false;
	*out = d;
	*end = p;
	return true;
}

/* 25 Dec 2018, 25-DEC-18, 25 December, 2018 (and 25 Dec with partial). */
static bool read_day_month(const char *s, bool partial, struct dk_date *out, const char **end)
{
	int day, y;
	int nd = digits(s, 2, &day);
	if (!nd || isdigit((unsigned char)s[nd]))
		return false;
	const char *p = skip_ordinal(s + nd);
	if (*p == ' ' || *p == '-' || *p == '/' || *p == '.')
		p++;
	const char *q;
	int m = read_month(p, &q);
	if (!m)
		return false;
	p = q;
	const char *yp = p;
	if (*yp == ',')
		yp++;
	if (*yp == ' ' || *yp == '-' || *yp == '/' || *yp == '.')
		yp++;
	int ny = digits(yp, 4, &y);
	if ((ny == 2 || ny == 4) && !isdigit((unsigned char)yp[ny])) {
		y = full_year(y, ny);
		p = yp + ny;
	} else if (partial) {
		y = 0;
	} else {
		return false;
	}
	if (!valid_ymd(y, m, day) || !date_end_ok(p))
		return false;
	*out = (struct dk_date){y, m, day, false};
	*end = p;
	return true;
}

/* December 25, 2018, Dec 25 2018 (and Dec 25, December 2018 with partial). */
static bool read_month_day(const char *s, bool partial, struct dk_date *out, const char **end)
{
	const char *p;
	int m = read_month(s, &p);
	if (!m)
		return false;
	if (*p == ' ' || *p == '-')
		p++;
	int a, y = 0, day = 0;
	int na = digits(p, 4, &a);
	if (!na || isdigit((unsigned char)p[na]))
		return false;
	if (na == 4) { /* December 2018 */
		if (!partial)
			return false;
		y = a;
		p += na;
	} else if (na <= 2) {
		day = a;
		p = skip_ordinal(p + na);
		const char *yp = p;
		if (*yp == ',')
			yp++;
		if (*yp == ' ')
			yp++;
		int ny = digits(yp, 4, &y);
		if (ny == 4 && !isdigit((unsigned char)yp[ny])) {
			p = yp + ny;
		} else if (partial) {
			y = 0;
		} else {
			return false;
		}
	} else {
		return false;
	}
	if (!valid_ymd(y, m, day) || !date_end_ok(p))
		return false;
	*out = (struct dk_date){y, m, day, false};
	*end = p;
	return true;
}

bool dk_value_read_date(const char *s, enum dk_date_order order, bool partial,
			struct dk_date *out, const char **end)
{
	if (isdigit((unsigned char)*s))
		return read_numeric_date(s, order, out, end) || read_day_month(s, partial, out, end);
	return isalpha((unsigned char)*s) && read_month_day(s, partial, out, end);
}

bool dk_value_read_time(const char *s, const char **end)
{
	int h, m, sec;
	int nh = digits(s, 2, &h);
	if (!nh || s[nh] != ':' || isdigit((unsigned char)s[nh]))
		return false;
	const char *p = s + nh + 1;
	if (digits(p, 2, &m) != 2 || m > 59)
		return false;
	p += 2;
	if (*p == ':' && digits(p + 1, 2, &sec) == 2 && sec <= 59) {
		p += 3;
		if (*p == '.' && isdigit((unsigned char)p[1]))
			for (p++; isdigit((unsigned char)*p);)
				p++;
	}
	const char *q = p;
	while (*q == ' ')
		q++;
	if ((toupper((unsigned char)q[0]) == 'A' || toupper((unsigned char)q[0]) == 'P')) {
		if (toupper((unsigned char)q[1]) == 'M' && !wordch((unsigned char)q[2]))
			p = q + 2;
		else if (q[1] == '.' && toupper((unsigned char)q[2]) == 'M' && q[3] == '.')
			p = q + 4;
	}
	/* receipts print "22:17PM": the 24-hour clock with a suffix */
	if (h > 23 || wordch((unsigned char)*p))
		return false;
	*end = p;
	return true;
}

/* A currency sign or code at s: past it, else s. */
static const char *skip_currency(const char *s)
{
	static const char *const cur[] = {"US$", "S$", "RM", "MYR", "USD", "EUR", "GBP", "SGD",
					  "$",   "\xe2\x82\xac", "\xc2\xa3", "\xc2\xa5", NULL};
	for (size_t i = 0; cur[i]; i++) {
		size_t n = strlen(cur[i]);
		if (!strncmp(s, cur[i], n) && !isalpha((unsigned char)s[n])) {
			s += n;
			while (*s == ' ')
				s++;
			return s;
		}
	}
	return s;
}

bool dk_value_read_number(const char *s, double *out, const char **end)
{
	const char *p = s;
	bool neg = false;
	if (*p == '-' || *p == '+')
		neg = *p++ == '-';
	p = skip_currency(p);
	if (*p == '-' && isdigit((unsigned char)p[1])) {
		neg = true;
		p++;
	}
	if (!isdigit((unsigned char)*p))
		return false;
	/* the extent: digits, and separators between digits */
	const char *a = p;
	int dots = 0, commas = 0;
	const char *last_dot = NULL, *last_comma = NULL;
	while (isdigit((unsigned char)*p) ||
	       ((*p == '.' || *p == ',' || *p == '\'') && isdigit((unsigned char)p[1]))) {
		if (*p == '.') {
			dots++;
			last_dot = p;
		} else if (*p == ',') {
			commas++;
			last_comma = p;
		}
		p++;
	}
	char dec = 0;
	if (dots && commas)
		dec = last_dot > last_comma ? '.' : ',';
	else if (dots == 1)
		dec = '.';
	else if (commas == 1 && strspn(last_comma + 1, "0123456789") != 3)
		dec = ',';
	char num[80];
	size_t k = 0;
	if (neg)
		num[k++] = '-';
	for (const char *q = a; q < p && k < sizeof num - 1; q++) {
		if (isdigit((unsigned char)*q))
			num[k++] = *q;
		else if (*q == dec && ((dec == '.' && q == last_dot) || (dec == ',' && q == last_comma)))
			num[k++] = '.';
	}
	num[k] = 0;
	*out = strtod(num, NULL);
	*end = p;
	return true;
}

bool dk_value_find_number(const char *s, double *out)
{
	for (const char *p = s; *p; p++) {
		const char *e;
		if ((p == s || !isdigit((unsigned char)p[-1])) && dk_value_read_number(p, out, &e))
			return true;
	}
	return false;
}

bool dk_value_same_number(double a, double b)
{
	return fabs(a - b) <= 1e-9 * fmax(1.0, fabs(a));
}

bool dk_value_text_has_number(const char *text, double x, double *printed)
{
	for (const char *p = text; *p; p++) {
		if (!isdigit((unsigned char)*p) || (p > text && (wordch((unsigned char)p[-1]) ||
		    ((p[-1] == '.' || p[-1] == ',') && p - 1 > text && isdigit((unsigned char)p[-2])))))
			continue;
		double v;
		const char *e;
		if (dk_value_read_number(p, &v, &e)) {
			if (dk_value_same_number(fabs(v), fabs(x))) {
				if (printed)
					*printed = x < 0 ? -fabs(v) : fabs(v);
				return true;
			}
			p = e - 1;
		}
	}
	return false;
}

bool dk_value_canonical_date(const char *s, enum dk_date_order order, char out[11])
{
	while (isspace((unsigned char)*s))
		s++;
	/* a label before it: "Date: 25/12/2018" */
	const char *l = s;
	while (isalpha((unsigned char)*l) || *l == ' ')
		l++;
	if (*l == ':' && l > s) {
		for (s = l + 1; isspace((unsigned char)*s);)
			s++;
	}
	struct dk_date d;
	const char *e;
	if (!dk_value_read_date(s, order, false, &d, &e))
		return false;
	/* validated: a four-digit year, month 1-12, day 1-31 */
	char tmp[32];
	snprintf(tmp, sizeof tmp, "%04d-%02d-%02d", d.y % 10000, d.m % 100, d.d % 100);
	memcpy(out, tmp, 11);
	return true;
}

bool dk_value_text_has_date(const char *text, const char *ymd, enum dk_date_order order)
{
	for (const char *p = text; *p; p++) {
		if (p > text && wordch((unsigned char)p[-1]))
			continue;
		struct dk_date d;
		const char *e;
		if (!dk_value_read_date(p, order, false, &d, &e))
			continue;
		char a[16], b[16];
		snprintf(a, sizeof a, "%04d-%02d-%02d", d.y % 10000, d.m, d.d);
		snprintf(b, sizeof b, "%04d-%02d-%02d", d.y % 10000, d.d, d.m);
		if (!strcmp(a, ymd) || (d.swappable && !strcmp(b, ymd)))
			return true;
	}
	return false;
}

static const char *const norm_names[DK_NORM_COUNT] = {"trim", "collapse_spaces", "lower", "upper",
						       "date"};

int dk_value_norm_find(const char *name)
{
	for (int i = 0; i < DK_NORM_COUNT; i++)
		if (!strcmp(name, norm_names[i]))
			return i;
	return -1;
}

const char *dk_value_norm_name(enum dk_norm n)
{
	return (unsigned)n < DK_NORM_COUNT ? norm_names[n] : "?";
}

char *dk_value_normalize(const char *v, enum dk_norm op, enum dk_date_order order)
{
	char *o = strdup(v);
	if (!o)
		return NULL;
	size_t n = strlen(o);
	switch (op) {
	case DK_NORM_TRIM: {
		size_t a = 0;
		while (a < n && isspace((unsigned char)o[a]))
			a++;
		while (n > a && isspace((unsigned char)o[n - 1]))
			n--;
		memmove(o, o + a, n - a);
		o[n - a] = 0;
		break;
	}
	case DK_NORM_COLLAPSE_SPACES: {
		char *w = o;
		for (const char *r = o; *r; r++) {
			if (isspace((unsigned char)*r)) {
				if (w == o || w[-1] != ' ')
					*w++ = ' ';
			} else {
				*w++ = *r;
			}
		}
		*w = 0;
		break;
	}
	case DK_NORM_LOWER:
		for (char *r = o; *r; r++)
			*r = (char)tolower((unsigned char)*r);
		break;
	case DK_NORM_UPPER:
		for (char *r = o; *r; r++)
			*r = (char)toupper((unsigned char)*r);
		break;
	case DK_NORM_DATE: {
		char iso[11];
		if (dk_value_canonical_date(o, order, iso)) {
			free(o);
			o = strdup(iso);
		}
		break;
	}
	case DK_NORM_COUNT:
		break;
	}
	return o;
}

/* Lowercase with runs of whitespace as one space (malloc'd). */
static char *norm_ws(const char *s, bool drop_commas)
{
	size_t n = strlen(s);
	char *o = malloc(n + 1), *w = o;
	if (!o)
		return NULL;
	bool sp = true;
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (drop_commas && c == ',')
			continue;
		if (isspace(c)) {
			if (!sp)
				*w++ = ' ';
			sp = true;
		} else {
			*w++ = (char)tolower(c);
			sp = false;
		}
	}
	while (w > o && w[-1] == ' ')
		w--;
	*w = 0;
	return o;
}

bool dk_value_grounded(const char *doc, const char *value, bool drop_commas)
{
	if (!doc)
		return true;
	char *a = norm_ws(doc, drop_commas), *b = norm_ws(value, drop_commas);
	bool ok = a && b && *b && strstr(a, b);
	free(a);
	free(b);
	return ok;
}
