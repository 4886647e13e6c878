/*
 * The support check of a summary: the facts a reader would check first
 * (numbers, dates, times, doses and measurements, capitalised names),
 * each looked up in the text the summary was made from.  Lexical and
 * cheap: it says "this item is nowhere in the source", a signal for a
 * reviewer and for --fail-on-unsupported, not a proof.  A paraphrase
 * ("two weeks" for "14 days") is reported; a wrong fact in lower-case
 * words is not seen.
 *
 * What counts as an item, and when it is supported:
 *   - a date (25/12/2018, 2018-12-25, March 3, 2019, March 2019): the
 *     source prints the same date in any of those forms (a numeric date
 *     whose day and month could swap matches either way);
 *   - a time (8:30, 20:13:39 PM) or a ratio (120/80): the source has it
 *     as written;
 *   - a number, with the unit that follows it when it has one (500 mg,
 *     36 mmHg, 70%, 23-year-old, 3 weeks): the source prints the same
 *     value (1,000 is 1000; seven is 7) followed by the same unit (mg is
 *     milligrams, % is percent), or any number of that value when the
 *     summary gives no unit.  List markers ("1. ") are not items;
 *   - a word that starts with a capital letter (Allegra, EASD,
 *     Roux-en-Y), except "I", single letters and titles (Dr, Mrs): the
 *     source has the word, in any case.  A sentence's first word is
 *     capitalised whatever it is, so there only a word shaped like a name
 *     is an item: one with a capital or a digit after its first letter
 *     (EASD, McDonald, COVID-19), not "Regular" or "Overall".  The first
 *     word of a list item ("12. Viagra") is an item unless it is a
 *     function word ("2. The"): lists are where names are enumerated.
 * Each unsupported item is listed once, as the summary writes it, in the
 * order it first appears.
 */
#ifndef DK_RUNNER_SUPPORT_H
#define DK_RUNNER_SUPPORT_H

#include <jansson.h>

/* The items of summary that source does not contain: a JSON array of
 * strings (new reference; empty when all are found), NULL when out of
 * memory. */
json_t *dk_support_check(const char *summary, const char *source);

/*
 * The length of text up to the end of its last complete sentence (its
 * '.', '!' or '?' and any closing quote or bracket), or 0 when it has none.
 * A period that ends an abbreviation (Dr., e.g.), an initial (J.), a list
 * marker ("2.") or a number (2.5) ends no sentence.  For cutting the
 * partial sentence a generation that ran out of tokens leaves at its end.
 */
size_t dk_support_complete_len(const char *text);

#endif
