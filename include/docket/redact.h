/*
 * PHI redactor: replaces identifiers that rules can find with typed,
 * numbered placeholders ("[NAME_1]", "[DATE_2]") before text leaves the
 * machine, and restores them in what comes back.  The placeholder -> value
 * map never leaves the process ("reversible only locally").
 *
 * What the rules find (plain C scanner, no regex library):
 *   NAME     words after titles (Mr./Mrs./Ms./Miss/Dr./Prof.), after labels
 *            ("Patient:", "Patient Name:", "Name:", "Dear", "Signed by",
 *            "Dictated by:", "Surgeon:", "Mother:", ...), before credentials
 *            (", MD", ", RN", ...); then every later whole-word use of those
 *            names in the same map (so "Smithfield" alone is caught too)
 *   DATE     1/2/23, 01/02/2023, 2023-01-02, 01.02.2023, 03/2019, Jan 2, 2023,
 *            January 2nd 2023, 2 January 2023, 02-Jan-2023, January 2023
 *   PHONE    (555) 123-4567, 555-123-4567, 555.123.4567, +1 555 123 4567,
 *            +44 20 7946 0958, extensions; any 7-15 digits after phone/fax cues
 *   EMAIL, URL (http/https/ftp/www.), IP (IPv4, IPv6)
 *   SSN      123-45-6789; 9 digits after "SSN"/"social security"
 *   MRN      numbers after MRN / medical record / chart / account / member /
 *            policy / group / subscriber / claim / encounter / FIN cues
 *   ID       numbers after licence / plate / VIN / DEA / NPI / passport /
 *            serial / "ID" cues, and any bare run of 7+ digits
 *   ADDRESS  number + capitalised words + street suffix (+ unit, + ", City,
 *            ST"), P.O. boxes, the city before "ST 12345"
 *   ZIP      5 or 5-4 digits after a state (abbreviation or name) or a ZIP cue
 * Not found: names with no cue ("saw John today"), free-text places,
 * ages over 89, relatives' names without a label, identifiers spelled out in
 * words.  Clinical numbers are left alone: "BP 124/78", "10/10 pain",
 * "5 mg", "2.5-5.0", times "10:30".
 *
 * Text that already looks like a placeholder ("[DATE_1]") is itself replaced
 * by a placeholder, so dk_unredact(dk_redact(x)) == x byte for byte, always.
 *
 * Threads: a dk_redactor is immutable after _new and may be shared; a map
 * belongs to one thread at a time.
 */
#ifndef DOCKET_REDACT_H
#define DOCKET_REDACT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "docket/docket.h"

enum dk_phi {
	DK_PHI_NAME,
	DK_PHI_DATE,
	DK_PHI_PHONE,
	DK_PHI_EMAIL,
	DK_PHI_SSN,
	DK_PHI_MRN,
	DK_PHI_ID,
	DK_PHI_ADDRESS,
	DK_PHI_ZIP,
	DK_PHI_URL,
	DK_PHI_IP,
	DK_PHI_COUNT
};

/* Upper-case type name used in placeholders and audit counts ("NAME"). */
const char *dk_phi_name(enum dk_phi t);

struct dk_redact_params {
	uint32_t types;      /* bitmask of (1u << DK_PHI_x) to redact; default all */
	bool propagate_names; /* also redact later cue-less uses of found names (default true) */
};

struct dk_redact_params dk_redact_default_params(void);

struct dk_redactor;
struct dk_redact_map;

/* p NULL = defaults.  NULL only when memory runs out. */
struct dk_redactor *dk_redactor_new(const struct dk_redact_params *p);
void dk_redactor_free(struct dk_redactor *r);

/* An empty map; dk_redact creates one when *map is NULL. */
struct dk_redact_map *dk_redact_map_new(void);
/* Wipes the stored values before freeing them.  NULL is a no-op. */
void dk_redact_map_free(struct dk_redact_map *m);

/*
 * Redacts text[0..len) (any bytes; NUL bytes are kept).  *out gets a
 * malloc'd, NUL-terminated copy with placeholders (caller frees), *out_len
 * its length (may be NULL).  *map: NULL = a new map is created (caller
 * frees); otherwise the given map is extended, so the same value keeps the
 * same placeholder across every text redacted with one map (e.g. the system
 * and user messages of one request).  DK_OK, or DK_FATAL when memory runs
 * out (*out NULL).
 */
enum dk_status dk_redact(const struct dk_redactor *r, const char *text, size_t len,
			 char **out, size_t *out_len, struct dk_redact_map **map);

/* Replaces every "[TYPE_n]" known to map by its value; unknown placeholders
 * and everything else are copied.  *out malloc'd, caller frees. */
enum dk_status dk_unredact(const struct dk_redact_map *map, const char *text, size_t len,
			   char **out, size_t *out_len);

/* Occurrences replaced so far for a type (all dk_redact calls on map). */
size_t dk_redact_map_count(const struct dk_redact_map *map, enum dk_phi t);
/* Distinct values stored. */
size_t dk_redact_map_size(const struct dk_redact_map *map);
/* Value behind "[TYPE_n]" (NUL-terminated, borrowed while map lives), or NULL. */
const char *dk_redact_map_value(const struct dk_redact_map *map, enum dk_phi t, unsigned n);

#endif
