/*
 * Values as documents print them: dates, numbers with the locale habits of
 * receipts and notes, and the normalisations an extract field may ask for.
 * Shared by extract (reading and grounding a field's value) and the
 * summary support check (finding a summary's numbers and dates in its
 * source).  Pure functions over NUL-terminated UTF-8 text; nothing here
 * knows of runs or records.
 */
#ifndef DK_RUNNER_VALUES_H
#define DK_RUNNER_VALUES_H

#include <stdbool.h>
#include <stddef.h>

/* Which of two small numbers comes first in a numeric date whose order the
 * numbers do not settle (03/04/2019). */
enum dk_date_order { DK_DATE_DMY, DK_DATE_MDY };

/* A calendar date; y or d is 0 when the text does not give it
 * ("March 2019", "March 3"). */
struct dk_date {
	int y, m, d;
	bool swappable; /* numeric with day and month both <= 12 and different:
			   the other order reads as a date too */
};

/*
 * Reads a date that starts at s: numeric (25/12/2018, 12-01-19,
 * 2018.12.25, 2018-12-25: day, month and year separated by one of / - .,
 * a two-digit year meaning 20yy below 70 and 19yy from 70) or with a month
 * name or its three-letter abbreviation, any case (25 Dec 2018,
 * 25-DEC-18, December 25, 2018, Dec 25 2018).  partial allows a month
 * name without day or without year.  A date must be followed by a
 * character that is not a letter or digit.  On success *out is set and
 * *end points just past the date.
 */
bool dk_value_read_date(const char *s, enum dk_date_order order, bool partial,
			struct dk_date *out, const char **end);

/* Reads a time of day at s (8:13, 20:13:39, 8:13:39 PM): true and *end past it. */
bool dk_value_read_time(const char *s, const char **end);

/*
 * Reads a number as printed at s: an optional sign and currency (RM, MYR,
 * $, USD, EUR, €, £, ...), then digits with separators.  Which separator is
 * the decimal one is read from the number itself: with both '.' and ','
 * the later one; a single ',' followed by other than three digits is a
 * decimal comma (30,00); a single '.' is a decimal point (9.000 is nine);
 * repeated ones, and ',' before three digits, group thousands.  *end: past
 * the number.  false when s holds no number there.
 */
bool dk_value_read_number(const char *s, double *out, const char **end);

/* The first number in s (after any text before it), as dk_value_read_number. */
bool dk_value_find_number(const char *s, double *out);

/* Two numbers read from text are the same value (a model's 12.100000000000011
 * is the printed 12.10). */
bool dk_value_same_number(double a, double b);

/* Does text print a number equal to x (anywhere, as dk_value_read_number reads it)? */
bool dk_value_text_has_number(const char *text, double x, double *printed);

/*
 * s read as a date: a full date at its start, after a label if any
 * ("Date: 25/12/2018"); what follows the date is not part of it
 * (25/12/2018 8:13:39 PM is the date 2018-12-25).  false when s does not
 * start with a full date (18:47:30, 2018 20:49:59).  out: "YYYY-MM-DD".
 */
bool dk_value_canonical_date(const char *s, enum dk_date_order order, char out[11]);

/* Does text print the date ymd ("YYYY-MM-DD") in any form dk_value_read_date reads? */
bool dk_value_text_has_date(const char *text, const char *ymd, enum dk_date_order order);

/* Normalisations a field's value goes through before grounding and output. */
enum dk_norm {
	DK_NORM_TRIM,            /* leading and trailing whitespace removed */
	DK_NORM_COLLAPSE_SPACES, /* every run of whitespace (line breaks too) is one space */
	DK_NORM_LOWER,
	DK_NORM_UPPER,
	DK_NORM_DATE,            /* a value that reads as a date becomes YYYY-MM-DD */
	DK_NORM_COUNT
};
/* The normalisation named name ("trim", "collapse_spaces", "lower",
 * "upper", "date"), or -1. */
int dk_value_norm_find(const char *name);
const char *dk_value_norm_name(enum dk_norm n);
/* v after op (malloc'd), or NULL when out of memory. */
char *dk_value_normalize(const char *v, enum dk_norm op, enum dk_date_order order);

/*
 * Does doc contain value, comparing letters without case and every run of
 * whitespace (a line break too) as one space?  A value that is a span of
 * the document across its line breaks is found.  drop_commas: commas are
 * ignored on both sides (numbers printed with thousands separators).
 */
bool dk_value_grounded(const char *doc, const char *value, bool drop_commas);

#endif
