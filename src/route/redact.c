/*
 * Rule-based PHI redactor.  Each detector scans the whole text and proposes
 * spans [s, e) with a type; overlapping spans are merged (the union is
 * replaced, so a partial overlap can never leak the tail of an identifier);
 * the merged spans are replaced left to right by placeholders drawn from the
 * map.  Detectors are plain byte scanners: ASCII rules, bytes >= 0x80 count
 * as letters so UTF-8 names are not cut in the middle.
 */
#include "docket/redact.h"

#include <stdlib.h>
#include <string.h>

#include "util/buf.h"

/* ------------------------------------------------------------------ types */

static const char *const phi_names[DK_PHI_COUNT] = {
	"NAME", "DATE", "PHONE", "EMAIL", "SSN", "MRN", "ID", "ADDRESS", "ZIP", "URL", "IP",
};

/* When two spans start together and are equally long, the lower rank wins
 * the type (the text is replaced either way). */
static const int phi_rank[DK_PHI_COUNT] = {
	[DK_PHI_EMAIL] = 0, [DK_PHI_URL] = 1, [DK_PHI_SSN] = 2, [DK_PHI_PHONE] = 3,
	[DK_PHI_DATE] = 4, [DK_PHI_IP] = 5, [DK_PHI_MRN] = 6, [DK_PHI_ZIP] = 7,
	[DK_PHI_ADDRESS] = 8, [DK_PHI_NAME] = 9, [DK_PHI_ID] = 10, /* ID last: the bare-number rule is the weakest */
};

const char *dk_phi_name(enum dk_phi t)
{
	return (unsigned)t < DK_PHI_COUNT ? phi_names[t] : "UNKNOWN";
}

struct dk_redact_params dk_redact_default_params(void)
{
	return (struct dk_redact_params){
		.types = (1u << DK_PHI_COUNT) - 1,
		.propagate_names = true,
	};
}

struct dk_redactor {
	struct dk_redact_params p;
};

struct dk_redactor *dk_redactor_new(const struct dk_redact_params *p)
{
	struct dk_redactor *r = calloc(1, sizeof *r);
	if (!r)
		return NULL;
	r->p = p ? *p : dk_redact_default_params();
	return r;
}

void dk_redactor_free(struct dk_redactor *r)
{
	free(r);
}

/* ------------------------------------------------------------------- map */

struct entry {
	int type;
	unsigned num;   /* the n of [TYPE_n] */
	char *val;
	size_t len;
};

struct dk_redact_map {
	struct entry *e;
	size_t n, cap;
	/* (type, value) -> entry index + 1, open addressing, 0 = empty */
	size_t *hash;
	size_t hcap;
	/* per type: placeholder number n -> entry index (numbers are dense) */
	size_t *bynum[DK_PHI_COUNT];
	size_t bycap[DK_PHI_COUNT];
	unsigned next[DK_PHI_COUNT];
	size_t count[DK_PHI_COUNT];
};

struct dk_redact_map *dk_redact_map_new(void)
{
	return calloc(1, sizeof(struct dk_redact_map));
}

void dk_redact_map_free(struct dk_redact_map *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++) {
		explicit_bzero(m->e[i].val, m->e[i].len);
		free(m->e[i].val);
	}
	free(m->e);
	free(m->hash);
	for (int t = 0; t < DK_PHI_COUNT; t++)
		free(m->bynum[t]);
	free(m);
}

size_t dk_redact_map_count(const struct dk_redact_map *m, enum dk_phi t)
{
	return m && (unsigned)t < DK_PHI_COUNT ? m->count[t] : 0;
}

size_t dk_redact_map_size(const struct dk_redact_map *m)
{
	return m ? m->n : 0;
}

static const struct entry *map_find_num(const struct dk_redact_map *m, int type, unsigned num)
{
	if (num == 0 || num > m->next[type])
		return NULL;
	return &m->e[m->bynum[type][num - 1]];
}

const char *dk_redact_map_value(const struct dk_redact_map *m, enum dk_phi t, unsigned n)
{
	if (!m || (unsigned)t >= DK_PHI_COUNT)
		return NULL;
	const struct entry *e = map_find_num(m, (int)t, n);
	return e ? e->val : NULL;
}

static uint64_t hash_of(int type, const char *v, size_t len)
{
	uint64_t h = 1469598103934665603ull ^ (uint64_t)type;
	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)v[i]) * 1099511628211ull;
	return h ^ (h >> 29);
}

static int rehash(struct dk_redact_map *m, size_t cap)
{
	size_t *h = calloc(cap, sizeof *h);
	if (!h)
		return -1;
	for (size_t i = 0; i < m->n; i++) {
		size_t k = hash_of(m->e[i].type, m->e[i].val, m->e[i].len) & (cap - 1);
		while (h[k])
			k = (k + 1) & (cap - 1);
		h[k] = i + 1;
	}
	free(m->hash);
	m->hash = h;
	m->hcap = cap;
	return 0;
}

/* The entry for (type, value), added when new; NULL when memory runs out. */
static const struct entry *map_get(struct dk_redact_map *m, int type, const char *v, size_t len)
{
	if ((m->n + 1) * 2 > m->hcap && rehash(m, m->hcap ? m->hcap * 2 : 64))
		return NULL;
	size_t k = hash_of(type, v, len) & (m->hcap - 1);
	for (; m->hash[k]; k = (k + 1) & (m->hcap - 1)) {
		const struct entry *e = &m->e[m->hash[k] - 1];
		if (e->type == type && e->len == len && !memcmp(e->val, v, len))
			return e;
	}
	if (m->n == m->cap) {
		size_t cap = m->cap ? m->cap * 2 : 16;
		struct entry *ne = realloc(m->e, cap * sizeof *ne);
		if (!ne)
			return NULL;
		m->e = ne;
		m->cap = cap;
	}
	if (m->next[type] == m->bycap[type]) {
		size_t cap = m->bycap[type] ? m->bycap[type] * 2 : 8;
		size_t *nb = realloc(m->bynum[type], cap * sizeof *nb);
		if (!nb)
			return NULL;
		m->bynum[type] = nb;
		m->bycap[type] = cap;
	}
	char *c = malloc(len + 1);
	if (!c)
		return NULL;
	memcpy(c, v, len);
	c[len] = 0;
	m->bynum[type][m->next[type]] = m->n;
	m->e[m->n] = (struct entry){.type = type, .num = ++m->next[type], .val = c, .len = len};
	m->hash[k] = m->n + 1;
	return &m->e[m->n++];
}

/* ------------------------------------------------------ character classes */

static inline unsigned char at(const char *t, size_t n, size_t i)
{
	return i < n ? (unsigned char)t[i] : 0;
}
static inline int dg(int c) { return c >= '0' && c <= '9'; }
static inline int up(int c) { return c >= 'A' && c <= 'Z'; }
static inline int lo(int c) { return c >= 'a' && c <= 'z'; }
static inline int al(int c) { return up(c) || lo(c) || c >= 0x80; }
static inline int alnum(int c) { return al(c) || dg(c); }
static inline int hex(int c) { return dg(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
static inline int lower(int c) { return up(c) ? c + 32 : c; }
static inline int sp(int c) { return c == ' ' || c == '\t'; }

/* Start of a word: nothing alphanumeric just before. */
static inline int wstart(const char *t, size_t n, size_t i)
{
	return i == 0 || !alnum(at(t, n, i - 1));
}

/* Length of w if t[i..] starts with it (case-insensitive), else 0. */
static size_t ci(const char *t, size_t n, size_t i, const char *w)
{
	size_t k = 0;
	for (; w[k]; k++)
		if (i + k >= n || lower((unsigned char)t[i + k]) != lower((unsigned char)w[k]))
			return 0;
	return k;
}

/* Like ci, but also requires a word end after the match when w ends in an
 * alphanumeric. */
static size_t ciw(const char *t, size_t n, size_t i, const char *w)
{
	size_t k = ci(t, n, i, w);
	if (k && alnum((unsigned char)w[k - 1]) && alnum(at(t, n, i + k)))
		return 0;
	return k;
}

/* Exact-case version of ciw. */
static size_t csw(const char *t, size_t n, size_t i, const char *w)
{
	size_t k = strlen(w);
	if (i + k > n || memcmp(t + i, w, k))
		return 0;
	if (alnum((unsigned char)w[k - 1]) && alnum(at(t, n, i + k)))
		return 0;
	return k;
}

static size_t digits(const char *t, size_t n, size_t i)
{
	size_t k = 0;
	while (dg(at(t, n, i + k)))
		k++;
	return k;
}

static unsigned num(const char *t, size_t i, size_t k)
{
	unsigned v = 0;
	for (size_t j = 0; j < k && j < 9; j++)
		v = v * 10 + (unsigned)(t[i + j] - '0');
	return v;
}

static size_t skip_sp(const char *t, size_t n, size_t i)
{
	while (sp(at(t, n, i)))
		i++;
	return i;
}

/* ------------------------------------------------------------------ spans */

struct span {
	size_t s, e;
	int type;
};

struct scan {
	const char *t;
	size_t n;
	uint32_t types;
	struct span *sp;
	size_t nsp, cap;
	int oom;
};

static void add(struct scan *sc, size_t s, size_t e, int type)
{
	if (e <= s || !(sc->types & (1u << type)))
		return;
	if (sc->nsp == sc->cap) {
		size_t cap = sc->cap ? sc->cap * 2 : 64;
		struct span *ns = realloc(sc->sp, cap * sizeof *ns);
		if (!ns) {
			sc->oom = 1;
			return;
		}
		sc->sp = ns;
		sc->cap = cap;
	}
	sc->sp[sc->nsp++] = (struct span){s, e, type};
}

/* ------------------------------------------------------------- detectors */

static const char *const months[][2] = {
	{"January", "Jan"}, {"February", "Feb"}, {"March", "Mar"}, {"April", "Apr"},
	{"May", "May"}, {"June", "Jun"}, {"July", "Jul"}, {"August", "Aug"},
	{"September", "Sept"}, {"September", "Sep"}, {"October", "Oct"},
	{"November", "Nov"}, {"December", "Dec"},
};

/* A month name at i (capitalised or all caps, full or abbreviated with an
 * optional '.'); returns its length. */
static size_t month_at(const char *t, size_t n, size_t i)
{
	if (!up(at(t, n, i)) || !wstart(t, n, i))
		return 0;
	for (size_t m = 0; m < sizeof months / sizeof months[0]; m++) {
		for (int f = 0; f < 2; f++) {
			size_t k = ciw(t, n, i, months[m][f]);
			if (!k)
				continue;
			/* "MAY" or "May", not "mAY": second letter's case decides */
			int allcaps = up(at(t, n, i + 1));
			for (size_t j = 1; j < k; j++)
				if (allcaps ? !up(at(t, n, i + j)) : !lo(at(t, n, i + j)))
					goto next;
			if (f == 1 && at(t, n, i + k) == '.')
				k++;
			return k;
		next:;
		}
	}
	return 0;
}

/* Day of month 1-31 with optional st/nd/rd/th; returns length. */
static size_t day_at(const char *t, size_t n, size_t i)
{
	size_t k = digits(t, n, i);
	if (k < 1 || k > 2)
		return 0;
	unsigned d = num(t, i, k);
	if (d < 1 || d > 31)
		return 0;
	static const char *const suf[] = {"st", "nd", "rd", "th", "ST", "ND", "RD", "TH"};
	for (size_t s = 0; s < 8; s++)
		if (ci(t, n, i + k, suf[s]) && !alnum(at(t, n, i + k + 2)))
			return k + 2;
	return alnum(at(t, n, i + k)) ? 0 : k;
}

/* A year after a textual month/day: 4 digits 1800-2199, or '23 / 23. */
static size_t year_at(const char *t, size_t n, size_t i, int allow2)
{
	size_t k = digits(t, n, i);
	if (k == 4 && !alnum(at(t, n, i + 4))) {
		unsigned y = num(t, i, 4);
		return y >= 1800 && y <= 2199 ? 4 : 0;
	}
	if (at(t, n, i) == '\'' && digits(t, n, i + 1) == 2 && !alnum(at(t, n, i + 3)))
		return 3;
	if (allow2 && k == 2 && !alnum(at(t, n, i + 2)))
		return 2;
	return 0;
}

static void detect_dates(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)t[i];
		if (dg(c) && wstart(t, n, i) && !(i && (t[i - 1] == '/' || t[i - 1] == '.'))) {
			/* "5-10/12/2020" is a range, but "001-2018/02/22" a glued
			 * receipt number: only a year-first date may follow "N-" */
			int glued = i > 1 && t[i - 1] == '-' && dg(at(t, n, i - 2));
			size_t a = digits(t, n, i);
			int s1 = at(t, n, i + a);
			if ((s1 == '/' || s1 == '-' || s1 == '.') && a <= 4) {
				size_t j = i + a + 1, b = digits(t, n, j);
				int s2 = at(t, n, j + b);
				if (b >= 1 && b <= 2 && s2 == s1) {
					size_t l = j + b + 1, cc = digits(t, n, l);
					size_t end = l + cc;
					/* a 4-digit year may run into a word ("21/05/2018TIME") */
					int after_ok = !(dg(at(t, n, end)) || (al(at(t, n, end)) && cc != 4)) &&
						!((at(t, n, end) == s1 || at(t, n, end) == '.') && dg(at(t, n, end + 1)));
					unsigned A = num(t, i, a), B = num(t, j, b), C = num(t, l, cc);
					int ok = 0;
					if (a == 4 && cc >= 1 && cc <= 2 && A >= 1800 && A <= 2199 && B >= 1 && B <= 12 &&
					    C >= 1 && C <= 31)
						ok = 1; /* 2023-01-02 */
					else if (a <= 2 && !glued && (cc == 4 || (cc == 2 && s1 != '.')) &&
						 ((A >= 1 && A <= 12 && B >= 1 && B <= 31) ||
						  (A >= 1 && A <= 31 && B >= 1 && B <= 12)) &&
						 (cc == 2 || (C >= 1800 && C <= 2199)))
						ok = 1; /* 01/02/2023, 1/2/23, 2.1.2023 */
					if (ok && after_ok) {
						add(sc, i, end, DK_PHI_DATE);
						i = end - 1;
						continue;
					}
				}
				/* month/year: 03/2019, 3-2019 */
				if (s1 != '.' && a <= 2 && digits(t, n, j) == 4 && !alnum(at(t, n, j + 4)) &&
				    !(at(t, n, j + 4) == s1 && dg(at(t, n, j + 5)))) {
					unsigned A = num(t, i, a), Y = num(t, j, 4);
					if (A >= 1 && A <= 12 && Y >= 1900 && Y <= 2199) {
						add(sc, i, j + 4, DK_PHI_DATE);
						i = j + 3;
						continue;
					}
				}
				/* 02-Jan-2023, 2-Jan-23 */
				if (s1 == '-' || s1 == '/' || s1 == '.') {
					size_t mk = month_at(t, n, j);
					if (mk && a <= 2 && num(t, i, a) >= 1 && num(t, i, a) <= 31 &&
					    (at(t, n, j + mk) == s1)) {
						size_t yk = year_at(t, n, j + mk + 1, 1);
						if (yk) {
							add(sc, i, j + mk + 1 + yk, DK_PHI_DATE);
							i = j + mk + yk;
							continue;
						}
					}
				}
			}
			/* 2 January 2023, 2nd of January, 2 Jan */
			size_t dk = day_at(t, n, i);
			if (dk) {
				size_t j = skip_sp(t, n, i + dk);
				if (j > i + dk || at(t, n, j) == '-') {
					if (at(t, n, j) == '-')
						j++;
					size_t ofk = ciw(t, n, j, "of");
					if (ofk && sp(at(t, n, j + ofk)))
						j = skip_sp(t, n, j + ofk);
					size_t mk = month_at(t, n, j);
					if (mk) {
						size_t end = j + mk;
						size_t y = end;
						if (at(t, n, y) == ',')
							y++;
						if (at(t, n, y) == '-')
							y++;
						else
							y = skip_sp(t, n, y);
						size_t yk = year_at(t, n, y, 0);
						if (yk)
							end = y + yk;
						add(sc, i, end, DK_PHI_DATE);
						i = end - 1;
						continue;
					}
				}
			}
			i += a - 1;
			continue;
		}
		/* Jan 2, 2023; January 2nd 2023; Jan-02-2023; January 2023; Jan 2 */
		if (up(c)) {
			size_t mk = month_at(t, n, i);
			if (!mk) {
				while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
					i++;
				continue;
			}
			size_t j = i + mk;
			int dash = at(t, n, j) == '-';
			j = dash ? j + 1 : skip_sp(t, n, j);
			if (j == i + mk)
				continue;
			size_t yk = year_at(t, n, j, 0);
			if (yk == 4) {
				add(sc, i, j + 4, DK_PHI_DATE);
				i = j + 3;
				continue;
			}
			size_t dk = day_at(t, n, j);
			if (dk) {
				size_t end = j + dk, y = end;
				if (at(t, n, y) == ',')
					y++;
				if (dash && at(t, n, y) == '-')
					y++;
				else
					y = skip_sp(t, n, y);
				yk = year_at(t, n, y, dash);
				if (yk)
					end = y + yk;
				add(sc, i, end, DK_PHI_DATE);
				i = end - 1;
			}
		}
	}
}

/* Digits with phone separators from i: counts digits, stops at anything
 * else; returns the end, *nd digits. */
static size_t digit_run(const char *t, size_t n, size_t i, int *nd)
{
	size_t j = i, last = i;
	*nd = 0;
	while (j < n) {
		int c = (unsigned char)t[j];
		if (dg(c)) {
			(*nd)++;
			last = j + 1;
		} else if (!(c == ' ' || c == '-' || c == '.' || c == '(' || c == ')')) {
			break;
		} else if (c == '.' && !dg(at(t, n, j + 1))) {
			break;
		}
		j++;
	}
	return last;
}

/* " x123", " ext. 123", " ext 123" after a phone number. */
static size_t extension(const char *t, size_t n, size_t e)
{
	size_t j = skip_sp(t, n, e);
	size_t k = ci(t, n, j, "ext");
	if (k) {
		j += k;
		if (at(t, n, j) == '.')
			j++;
	} else if (at(t, n, j) == 'x' || at(t, n, j) == 'X') {
		j++;
	} else {
		return e;
	}
	j = skip_sp(t, n, j);
	size_t d = digits(t, n, j);
	return d >= 1 && d <= 6 && !alnum(at(t, n, j + d)) ? j + d : e;
}

static void detect_phones(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)t[i];
		if (!(dg(c) || c == '(' || c == '+') || !wstart(t, n, i))
			continue;
		if (i && (dg(at(t, n, i - 1)) || ((t[i - 1] == '-' || t[i - 1] == '.' || t[i - 1] == '/') &&
						  dg(at(t, n, i - 2)))))
			continue;
		size_t j = i;
		int intl = 0;
		if (c == '+') {
			/* +CC then 7-14 more digits in groups */
			int nd;
			size_t e = digit_run(t, n, i + 1, &nd);
			if (nd >= 8 && nd <= 15 && !alnum(at(t, n, e))) {
				e = extension(t, n, e);
				add(sc, i, e, DK_PHI_PHONE);
				i = e - 1;
			}
			continue;
		}
		/* optional leading 1 */
		if (c == '1' && (at(t, n, i + 1) == '-' || at(t, n, i + 1) == ' ' || at(t, n, i + 1) == '.') &&
		    (dg(at(t, n, i + 2)) || at(t, n, i + 2) == '(')) {
			j = i + 2;
			intl = 1;
		}
		size_t area_end;
		int paren = 0;
		if (at(t, n, j) == '(') {
			if (digits(t, n, j + 1) != 3 || at(t, n, j + 4) != ')')
				continue;
			area_end = j + 5;
			paren = 1;
		} else {
			if (digits(t, n, j) != 3)
				continue;
			area_end = j + 3;
		}
		int s1 = at(t, n, area_end);
		size_t k = area_end;
		if (paren) {
			k = skip_sp(t, n, k);
			if (at(t, n, k) == '-')
				k++;
		} else if (s1 == '-' || s1 == '.' || (s1 == ' ' && intl)) {
			k++;
		} else {
			continue;
		}
		if (digits(t, n, k) != 3)
			continue;
		int s2 = at(t, n, k + 3);
		if (!(s2 == '-' || s2 == '.' || (s2 == ' ' && (paren || intl))))
			continue;
		if (!paren && !intl && s2 != s1)
			continue;
		size_t l = k + 4;
		if (digits(t, n, l) != 4 || alnum(at(t, n, l + 4)) ||
		    ((at(t, n, l + 4) == '-' || at(t, n, l + 4) == '.') && dg(at(t, n, l + 5))))
			continue;
		size_t e = extension(t, n, l + 4);
		add(sc, i, e, DK_PHI_PHONE);
		i = e - 1;
	}
}

static void detect_ssn(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i + 11 <= n; i++) {
		if (!dg(at(t, n, i)) || !wstart(t, n, i) || (i && t[i - 1] == '-' && dg(at(t, n, i - 2))))
			continue;
		if (digits(t, n, i) == 3 && t[i + 3] == '-' && digits(t, n, i + 4) == 2 && t[i + 6] == '-' &&
		    digits(t, n, i + 7) == 4 && !alnum(at(t, n, i + 11)) &&
		    !(at(t, n, i + 11) == '-' && dg(at(t, n, i + 12))))
			add(sc, i, i + 11, DK_PHI_SSN);
	}
}

static int email_local(int c)
{
	return alnum(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static void detect_emails(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 1; i + 1 < n; i++) {
		if (t[i] != '@')
			continue;
		size_t s = i;
		while (s > 0 && email_local((unsigned char)t[s - 1]))
			s--;
		while (s < i && t[s] == '.')
			s++;
		if (s == i)
			continue;
		size_t e = i + 1, lastdot = 0;
		while (e < n && (alnum(at(t, n, e)) || t[e] == '-' || (t[e] == '.' && alnum(at(t, n, e + 1))))) {
			if (t[e] == '.')
				lastdot = e;
			e++;
		}
		if (!lastdot || e - lastdot < 3)
			continue;
		add(sc, s, e, DK_PHI_EMAIL);
		i = e;
	}
}

static void detect_urls(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	static const char *const pre[] = {"https://", "http://", "ftp://", "www."};
	for (size_t i = 0; i < n; i++) {
		if (!wstart(t, n, i))
			continue;
		size_t k = 0;
		for (size_t p = 0; p < 4 && !k; p++)
			k = ci(t, n, i, pre[p]);
		if (!k || !alnum(at(t, n, i + k)))
			continue;
		size_t e = i + k;
		while (e < n) {
			int c = (unsigned char)t[e];
			if (c <= ' ' || c == '<' || c == '>' || c == '"' || c == '\'' || c == ',' || c == '(' ||
			    c == ')' || c == '[' || c == ']' || c == '{' || c == '}' || c == 0x7f)
				break;
			e++;
		}
		while (e > i + k && strchr(".;:!?", t[e - 1]))
			e--;
		add(sc, i, e, DK_PHI_URL);
		i = e;
	}
}

static void detect_ips(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		int c = (unsigned char)t[i];
		if (i && (alnum(at(t, n, i - 1)) || t[i - 1] == '.' || t[i - 1] == ':'))
			continue;
		if (dg(c)) {
			size_t j = i;
			int ok = 1;
			for (int o = 0; o < 4 && ok; o++) {
				size_t k = digits(t, n, j);
				if (k < 1 || k > 3 || num(t, j, k) > 255)
					ok = 0;
				j += k;
				if (ok && o < 3) {
					if (at(t, n, j) != '.')
						ok = 0;
					j++;
				}
			}
			if (ok && !alnum(at(t, n, j)) && !(at(t, n, j) == '.' && dg(at(t, n, j + 1)))) {
				add(sc, i, j, DK_PHI_IP);
				i = j - 1;
				continue;
			}
		}
		if (hex(c) || c == ':') {
			/* IPv6: hex groups and colons; "::" once, or exactly 7 colons */
			size_t j = i;
			int colons = 0, dbl = 0, grp = 0, glen = 0, bad = 0, hasdig = 0, groups = 0;
			while (j < n && (hex(at(t, n, j)) || t[j] == ':')) {
				if (t[j] == ':') {
					if (glen)
						groups++;
					if (at(t, n, j + 1) == ':') {
						if (dbl)
							bad = 1;
						dbl = 1;
						colons++;
						j++;
					}
					colons++;
					glen = 0;
				} else {
					if (dg(t[j]))
						hasdig = 1;
					if (++glen > 4)
						bad = 1;
				}
				j++;
				grp++;
			}
			if (glen)
				groups++;
			/* a trailing single ':' is punctuation ("addr:"), not part of it */
			if (j > i && t[j - 1] == ':' && !(j >= i + 2 && t[j - 2] == ':')) {
				j--;
				colons--;
			}
			if (!bad && hasdig && !alnum(at(t, n, j)) && groups >= 2 && colons <= 7 &&
			    ((dbl && colons >= 2) || colons == 7)) {
				add(sc, i, j, DK_PHI_IP);
				i = j - 1;
				continue;
			}
		}
		while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
			i++;
	}
}

/* Bare digit runs of 7+ (not part of a decimal or a grouped number), and
 * uppercase/digit tokens with 6+ digits: identifiers nobody labelled. */
static void detect_long_numbers(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (!alnum(at(t, n, i)) || !wstart(t, n, i))
			continue;
		size_t e = i;
		int nd = 0, lower_seen = 0;
		while (e < n && alnum(at(t, n, e))) {
			if (dg(t[e]))
				nd++;
			if (lo(at(t, n, e)) || at(t, n, e) >= 0x80)
				lower_seen = 1;
			e++;
		}
		int decimal = (i && (t[i - 1] == '.' || t[i - 1] == ',') && dg(at(t, n, i - 2))) ||
			      ((at(t, n, e) == '.' || at(t, n, e) == ',') && dg(at(t, n, e + 1)));
		if (!decimal && !lower_seen && (nd >= 7 || (nd >= 6 && e - i > (size_t)nd)))
			add(sc, i, e, DK_PHI_ID);
		i = e;
	}
}

/* ---------------------------------------------------------------- names */

static const char *const stop_words[] = {
	"the", "this", "that", "these", "he", "she", "they", "his", "her", "patient", "pt",
	"is", "was", "has", "had", "with", "and", "or", "of", "in", "on", "at", "to", "for",
	"a", "an", "mrn", "dob", "date", "age", "sex", "male", "female", "none", "unknown",
	"name", "phone", "address", "history", "chief", "complaint", "diagnosis", "procedure",
	"year", "years", "old", "hospital", "clinic", "department", "service", "room", "bed",
	"md", "do", "rn", "np", "pa", "phd", "dds", "mr", "mrs", "ms", "dr", "miss", "prof",
	"admitted", "seen", "here", "today", "yesterday", "who", "presents", "reports",
	"signed", "dictated", "transcribed", "by", "not", "no", "yes", "n/a", "na", "same",
	"see", "above", "below", "sir", "madam", "doctor", "colleague", "physician", "nurse",
	"medical", "record", "number", "account", "sincerely", "regards", "thank", "thanks",
	"department", "emergency", "cc", "id", "ssn", "fax", "tel", "email", "from", "to",
	"it", "we", "i", "there", "then", "however", "under", "indicated", "after", "before",
	"also", "if", "when", "but", "so", "as", "father", "mother", "brother", "sister", "wife",
	"husband", "son", "daughter", "family", "friend", "please", "thank", "you", "our", "your",
};

static int is_stop(const char *t, size_t s, size_t e)
{
	size_t l = e - s;
	for (size_t k = 0; k < sizeof stop_words / sizeof stop_words[0]; k++) {
		const char *w = stop_words[k];
		if (strlen(w) != l)
			continue;
		size_t j = 0;
		while (j < l && lower((unsigned char)t[s + j]) == w[j])
			j++;
		if (j == l)
			return 1;
	}
	return 0;
}

/* One name word at i: a capital (or non-ASCII) letter then letters,
 * apostrophes and inner hyphens ("O'Brien", "Smith-Jones"), or an initial
 * "J." / "J".  Returns its end (without a possessive "'s"), or i. */
static size_t name_word(const char *t, size_t n, size_t i)
{
	int c = at(t, n, i);
	if (!(up(c) || c >= 0xc0))
		return i;
	size_t e = i + 1;
	while (e < n && (al(at(t, n, e)) || ((t[e] == '\'' || t[e] == '-') && al(at(t, n, e + 1)))))
		e++;
	if (e - i >= 3 && t[e - 2] == '\'' && (t[e - 1] == 's' || t[e - 1] == 'S'))
		e -= 2;
	if (dg(at(t, n, e)))
		return i;
	if (e == i + 1 && at(t, n, e) == '.')
		return e + 1; /* initial */
	if (is_stop(t, i, e))
		return i;
	return e;
}

/* Up to maxw name words separated by single spaces (or one ", " for
 * "Last, First" when comma_ok); returns the end, or i when none. */
static size_t name_seq(const char *t, size_t n, size_t i, int maxw, int comma_ok, int *nw)
{
	size_t e = i, j = i;
	*nw = 0;
	while (*nw < maxw) {
		size_t w = name_word(t, n, j);
		if (w == j)
			break;
		e = w;
		(*nw)++;
		size_t k = e;
		if (at(t, n, k) == ',' && comma_ok && *nw == 1 && at(t, n, k + 1) == ' ' &&
		    name_word(t, n, k + 2) > k + 2 && at(t, n, name_word(t, n, k + 2)) != ',') {
			j = k + 2;
			continue;
		}
		if (at(t, n, k) != ' ')
			break;
		j = k + 1;
	}
	/* a trailing initial's '.' ends the sentence as often as the name */
	return e;
}

static size_t skip_title(const char *t, size_t n, size_t i)
{
	static const char *const titles[] = {"Mrs.", "Mrs", "Mr.", "Mr", "Ms.", "Ms", "Miss", "Dr.", "Dr",
					     "Prof.", "MRS.", "MR.", "MS.", "DR."};
	for (size_t k = 0; k < sizeof titles / sizeof titles[0]; k++) {
		size_t l = csw(t, n, i, titles[k]);
		if (l && sp(at(t, n, i + l)))
			return skip_sp(t, n, i + l);
	}
	return i;
}

/* Labels after which a name follows (matched case-insensitively, at a word
 * start; the colon is part of the label where shown). */
static const char *const name_labels[] = {
	"patient name:", "patient name", "patient's name:", "pt name:", "pt. name:", "name of patient:",
	"patient:", "pt:", "name:", "full name:", "dear", "sincerely,", "signed:", "signed by:", "signed by",
	"electronically signed by:", "electronically signed by", "dictated by:", "dictated by",
	"transcribed by:", "transcribed by", "attending:", "attending physician:", "referring physician:",
	"referring doctor:", "primary care physician:", "pcp:", "surgeon:", "assistant:", "assistant surgeon:",
	"anesthesiologist:", "provider:", "physician:", "doctor:", "nurse:", "resident:", "author:",
	"mother:", "father:", "spouse:", "wife:", "husband:", "son:", "daughter:", "guardian:",
	"contact:", "emergency contact:", "next of kin:", "attn:", "c/o", "name of spouse/partner:",
	"referred by", "cosigned by:", "reviewed by:", "witness:",
};

static void detect_names(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (!wstart(t, n, i) || !al(at(t, n, i)))
			continue;
		/* titles: case-sensitive, must be followed by a name */
		size_t j = skip_title(t, n, i);
		if (j > i) {
			int nw;
			size_t e = name_seq(t, n, j, 3, 0, &nw);
			if (nw)
				add(sc, j, e, DK_PHI_NAME);
			i = (e > j ? e : j) - 1;
			continue;
		}
		size_t best = 0;
		for (size_t k = 0; k < sizeof name_labels / sizeof name_labels[0]; k++) {
			size_t l = ciw(t, n, i, name_labels[k]);
			if (l > best)
				best = l;
		}
		if (best) {
			j = i + best;
			while (j < n && (sp(at(t, n, j)) || t[j] == ':' || t[j] == ',' || t[j] == '-' ||
					 t[j] == '\n' || t[j] == '\r') && j < i + best + 8)
				j++;
			j = skip_title(t, n, j);
			int nw;
			size_t e = name_seq(t, n, j, 4, 1, &nw);
			if (nw)
				add(sc, j, e, DK_PHI_NAME);
			i = (e > j ? e : i + best) - 1;
			continue;
		}
		/* "First Last, MD": capitalised words right before a credential */
		if (up(at(t, n, i))) {
			int nw;
			size_t e = name_seq(t, n, i, 3, 0, &nw);
			if (nw >= 2) {
				size_t k = e;
				if (at(t, n, k) == ',')
					k++;
				k = skip_sp(t, n, k);
				static const char *const cred[] = {"M.D.", "MD", "D.O.", "DO", "RN", "NP", "PA-C",
								   "PhD", "Ph.D.", "DDS", "DPM", "FACS", "MBBS"};
				for (size_t c = 0; c < sizeof cred / sizeof cred[0]; c++) {
					if (k > e && csw(t, n, k, cred[c])) {
						add(sc, i, e, DK_PHI_NAME);
						break;
					}
				}
			}
			while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
				i++;
		}
	}
}

struct nword {
	const char *p;
	size_t l;
};

/* Order by length, then by upper-cased bytes: a word and its all-caps form
 * sort together. */
static int nword_cmp_key(const char *a, size_t al_, const char *b, size_t bl)
{
	if (al_ != bl)
		return al_ < bl ? -1 : 1;
	for (size_t i = 0; i < al_; i++) {
		int x = (unsigned char)a[i], y = (unsigned char)b[i];
		x = lo(x) ? x - 32 : x;
		y = lo(y) ? y - 32 : y;
		if (x != y)
			return x - y;
	}
	return 0;
}

static int nword_cmp(const void *a, const void *b)
{
	const struct nword *x = a, *y = b;
	return nword_cmp_key(x->p, x->l, y->p, y->l);
}

/* Later uses of the words of known names, as whole words, same case or all
 * caps: "Smithfield" after "Mr. John Smithfield". */
static void propagate_names(struct scan *sc, const struct dk_redact_map *m)
{
	const char *t = sc->t;
	size_t n = sc->n;
	/* words from this text's NAME spans and the map's NAME values */
	struct nword *w = NULL;
	size_t nw = 0, cap = 0;
	size_t nspan = sc->nsp;
	size_t total = nspan + (m ? m->n : 0);
	for (size_t s = 0; s < total; s++) {
		const char *p;
		size_t l;
		if (s < nspan) {
			if (sc->sp[s].type != DK_PHI_NAME)
				continue;
			p = t + sc->sp[s].s;
			l = sc->sp[s].e - sc->sp[s].s;
		} else {
			const struct entry *en = &m->e[s - nspan];
			if (en->type != DK_PHI_NAME)
				continue;
			p = en->val;
			l = en->len;
		}
		for (size_t a = 0; a < l;) {
			while (a < l && !al((unsigned char)p[a]))
				a++;
			size_t b = a;
			while (b < l && (al((unsigned char)p[b]) || p[b] == '\'' || p[b] == '-'))
				b++;
			if (b - a >= 2 && !is_stop(p, a, b)) {
				if (nw == cap) {
					cap = cap ? cap * 2 : 16;
					struct nword *nwp = realloc(w, cap * sizeof *w);
					if (!nwp) {
						sc->oom = 1;
						free(w);
						return;
					}
					w = nwp;
				}
				w[nw++] = (struct nword){p + a, b - a};
			}
			a = b;
		}
	}
	if (!nw) {
		free(w);
		return;
	}
	qsort(w, nw, sizeof *w, nword_cmp);
	for (size_t i = 0; i < n; i++) {
		if (!al(at(t, n, i)) || !wstart(t, n, i))
			continue;
		size_t e = i;
		while (e < n && (al(at(t, n, e)) || ((t[e] == '\'' || t[e] == '-') && al(at(t, n, e + 1)))))
			e++;
		size_t l = e - i;
		if (l >= 2 && !dg(at(t, n, e))) {
			/* first word with an equal key */
			size_t lo_ = 0, hi = nw;
			while (lo_ < hi) {
				size_t mid = (lo_ + hi) / 2;
				if (nword_cmp_key(w[mid].p, w[mid].l, t + i, l) < 0)
					lo_ = mid + 1;
				else
					hi = mid;
			}
			for (size_t k = lo_; k < nw && !nword_cmp_key(w[k].p, w[k].l, t + i, l); k++) {
				int same = !memcmp(t + i, w[k].p, l), caps = 1;
				for (size_t j = 0; j < l && !same && caps; j++)
					if (!up((unsigned char)t[i + j]) && (unsigned char)t[i + j] < 0x80)
						caps = 0;
				if (same || caps) {
					add(sc, i, e, DK_PHI_NAME);
					break;
				}
			}
		}
		i = e;
	}
	free(w);
}

/* ------------------------------------------------------- cue + number */

enum cue_kind { CUE_MRN, CUE_ID, CUE_PHONE, CUE_SSN, CUE_ZIP };

struct cue {
	const char *w;
	int cs; /* case-sensitive (short all-caps cues that are also words) */
	int kind;
};

static const struct cue cues[] = {
	{"MRN", 1, CUE_MRN}, {"MR#", 1, CUE_MRN}, {"MR #", 1, CUE_MRN}, {"MR no", 1, CUE_MRN},
	{"medical record number", 0, CUE_MRN}, {"medical record no", 0, CUE_MRN},
	{"medical record #", 0, CUE_MRN}, {"medical record", 0, CUE_MRN}, {"record number", 0, CUE_MRN},
	{"record no", 0, CUE_MRN}, {"record #", 0, CUE_MRN}, {"chart number", 0, CUE_MRN},
	{"chart no", 0, CUE_MRN}, {"chart #", 0, CUE_MRN}, {"chart", 0, CUE_MRN},
	{"account number", 0, CUE_MRN}, {"account no", 0, CUE_MRN}, {"account #", 0, CUE_MRN},
	{"account", 0, CUE_MRN}, {"acct", 0, CUE_MRN}, {"acct #", 0, CUE_MRN}, {"acct no", 0, CUE_MRN},
	{"member id", 0, CUE_MRN}, {"member number", 0, CUE_MRN}, {"member #", 0, CUE_MRN},
	{"member no", 0, CUE_MRN}, {"policy number", 0, CUE_MRN}, {"policy no", 0, CUE_MRN},
	{"policy #", 0, CUE_MRN}, {"policy", 0, CUE_MRN}, {"group number", 0, CUE_MRN},
	{"group #", 0, CUE_MRN}, {"group no", 0, CUE_MRN}, {"subscriber id", 0, CUE_MRN},
	{"subscriber number", 0, CUE_MRN}, {"insurance id", 0, CUE_MRN}, {"claim number", 0, CUE_MRN},
	{"claim #", 0, CUE_MRN}, {"claim no", 0, CUE_MRN}, {"encounter number", 0, CUE_MRN},
	{"encounter #", 0, CUE_MRN}, {"encounter id", 0, CUE_MRN}, {"visit number", 0, CUE_MRN},
	{"visit #", 0, CUE_MRN}, {"FIN", 1, CUE_MRN}, {"patient id", 0, CUE_MRN},
	{"patient number", 0, CUE_MRN}, {"patient #", 0, CUE_MRN}, {"beneficiary number", 0, CUE_MRN},
	{"beneficiary id", 0, CUE_MRN}, {"hospital number", 0, CUE_MRN}, {"case number", 0, CUE_MRN},
	{"case #", 0, CUE_MRN}, {"case no", 0, CUE_MRN}, {"accession number", 0, CUE_MRN},
	{"accession #", 0, CUE_MRN}, {"accession no", 0, CUE_MRN}, {"unit number", 0, CUE_MRN},
	{"license number", 0, CUE_ID}, {"licence number", 0, CUE_ID}, {"license no", 0, CUE_ID},
	{"licence no", 0, CUE_ID}, {"license #", 0, CUE_ID}, {"licence #", 0, CUE_ID},
	{"license", 0, CUE_ID}, {"licence", 0, CUE_ID}, {"driver's license", 0, CUE_ID},
	{"drivers license", 0, CUE_ID}, {"DL", 1, CUE_ID}, {"DL#", 1, CUE_ID}, {"license plate", 0, CUE_ID},
	{"plate number", 0, CUE_ID}, {"plate no", 0, CUE_ID}, {"plate #", 0, CUE_ID},
	{"tag number", 0, CUE_ID}, {"VIN", 1, CUE_ID}, {"DEA", 1, CUE_ID}, {"DEA #", 1, CUE_ID},
	{"NPI", 1, CUE_ID}, {"passport number", 0, CUE_ID}, {"passport no", 0, CUE_ID},
	{"passport", 0, CUE_ID}, {"serial number", 0, CUE_ID}, {"serial no", 0, CUE_ID},
	{"serial #", 0, CUE_ID}, {"device id", 0, CUE_ID}, {"certificate number", 0, CUE_ID},
	{"certificate #", 0, CUE_ID}, {"employee id", 0, CUE_ID}, {"badge", 0, CUE_ID}, {"ID", 1, CUE_ID},
	{"ID#", 1, CUE_ID}, {"ID number", 0, CUE_ID}, {"id no", 0, CUE_ID},
	{"phone", 0, CUE_PHONE}, {"telephone", 0, CUE_PHONE}, {"tel", 0, CUE_PHONE}, {"fax", 0, CUE_PHONE},
	{"cell", 0, CUE_PHONE}, {"mobile", 0, CUE_PHONE}, {"pager", 0, CUE_PHONE}, {"beeper", 0, CUE_PHONE},
	{"home phone", 0, CUE_PHONE}, {"work phone", 0, CUE_PHONE}, {"contact number", 0, CUE_PHONE},
	{"SSN", 1, CUE_SSN}, {"SS#", 1, CUE_SSN}, {"social security number", 0, CUE_SSN},
	{"social security no", 0, CUE_SSN}, {"social security #", 0, CUE_SSN}, {"social security", 0, CUE_SSN},
	{"zip", 0, CUE_ZIP}, {"zip code", 0, CUE_ZIP}, {"zipcode", 0, CUE_ZIP}, {"postal code", 0, CUE_ZIP},
};

/* Skips what sits between a cue and its value: spaces, ':', '#', '-',
 * '=', and "number"/"no."/"is"/"of". */
static size_t skip_cue_tail(const char *t, size_t n, size_t j)
{
	for (int guard = 0; guard < 8; guard++) {
		size_t k = j;
		while (k < n && (sp(at(t, n, k)) || t[k] == ':' || t[k] == '#' || t[k] == '-' || t[k] == '=' || t[k] == '.' ||
				 t[k] == ','))
			k++;
		size_t l = 0;
		static const char *const fill[] = {"number", "num", "no.", "no", "is", "was", "of"};
		for (size_t f = 0; f < sizeof fill / sizeof fill[0] && !l; f++)
			l = ciw(t, n, k, fill[f]);
		if (l) {
			j = k + l;
			continue;
		}
		return k;
	}
	return j;
}

static void detect_cued(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (!wstart(t, n, i) || !al(at(t, n, i)))
			continue;
		size_t best = 0;
		int kind = -1;
		for (size_t c = 0; c < sizeof cues / sizeof cues[0]; c++) {
			size_t l = cues[c].cs ? csw(t, n, i, cues[c].w) : ciw(t, n, i, cues[c].w);
			if (l > best) {
				best = l;
				kind = cues[c].kind;
			}
		}
		if (!best) {
			while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
				i++;
			continue;
		}
		size_t j = skip_cue_tail(t, n, i + best);
		if (j - (i + best) > 12) {
			i += best - 1;
			continue;
		}
		if (kind == CUE_PHONE || kind == CUE_SSN) {
			int nd;
			size_t s = j, e = digit_run(t, n, j, &nd);
			if (at(t, n, s) == '(' || dg(at(t, n, s))) {
				int lo_ = kind == CUE_SSN ? 9 : 7, hi = kind == CUE_SSN ? 9 : 15;
				if (nd >= lo_ && nd <= hi && !alnum(at(t, n, e))) {
					if (kind == CUE_PHONE)
						e = extension(t, n, e);
					add(sc, s, e, kind == CUE_SSN ? DK_PHI_SSN : DK_PHI_PHONE);
					i = e - 1;
					continue;
				}
			}
		} else if (kind == CUE_ZIP) {
			size_t d = digits(t, n, j);
			if (d == 5) {
				size_t e = j + 5;
				if (at(t, n, e) == '-' && digits(t, n, e + 1) == 4)
					e += 5;
				if (!alnum(at(t, n, e))) {
					add(sc, j, e, DK_PHI_ZIP);
					i = e - 1;
					continue;
				}
			}
		} else {
			/* an optional short all-caps prefix ("CA D1234567") */
			size_t s = j;
			if (kind == CUE_ID && up(at(t, n, s)) && up(at(t, n, s + 1)) && sp(at(t, n, s + 2)) &&
			    alnum(at(t, n, s + 3)))
				s += 3;
			size_t e = s;
			int nd = 0;
			while (e < n && (alnum(at(t, n, e)) ||
					 ((t[e] == '-' || t[e] == '/' || t[e] == '.') && alnum(at(t, n, e + 1)) && e > s))) {
				if (dg(t[e]))
					nd++;
				e++;
			}
			if (nd >= 2 && e - s >= 3) {
				add(sc, j, e, kind == CUE_ID ? DK_PHI_ID : DK_PHI_MRN);
				i = e - 1;
				continue;
			}
		}
		i += best - 1;
	}
}

/* ----------------------------------------------------------- addresses */

static const char *const street_suffix[] = {
	"Street", "St", "Avenue", "Ave", "Av", "Road", "Rd", "Boulevard", "Blvd", "Lane", "Ln", "Drive",
	"Dr", "Court", "Ct", "Place", "Pl", "Way", "Terrace", "Ter", "Parkway", "Pkwy", "Circle", "Cir",
	"Highway", "Hwy", "Square", "Sq", "Trail", "Trl", "Path", "Alley", "Crescent", "Close", "Row",
	"Pike", "Plaza", "Loop", "Run", "Freeway", "Expressway", "Turnpike", "Route", "Rte",
};

static const char *const states[] = {
	"AL", "AK", "AZ", "AR", "CA", "CO", "CT", "DE", "FL", "GA", "HI", "ID", "IL", "IN", "IA", "KS",
	"KY", "LA", "ME", "MD", "MA", "MI", "MN", "MS", "MO", "MT", "NE", "NV", "NH", "NJ", "NM", "NY",
	"NC", "ND", "OH", "OK", "OR", "PA", "RI", "SC", "SD", "TN", "TX", "UT", "VT", "VA", "WA", "WV",
	"WI", "WY", "DC", "PR", "GU", "VI", "AS", "MP",
	"Alabama", "Alaska", "Arizona", "Arkansas", "California", "Colorado", "Connecticut", "Delaware",
	"Florida", "Georgia", "Hawaii", "Idaho", "Illinois", "Indiana", "Iowa", "Kansas", "Kentucky",
	"Louisiana", "Maine", "Maryland", "Massachusetts", "Michigan", "Minnesota", "Mississippi",
	"Missouri", "Montana", "Nebraska", "Nevada", "New Hampshire", "New Jersey", "New Mexico",
	"New York", "North Carolina", "North Dakota", "Ohio", "Oklahoma", "Oregon", "Pennsylvania",
	"Rhode Island", "South Carolina", "South Dakota", "Tennessee", "Texas", "Utah", "Vermont",
	"Virginia", "Washington", "West Virginia", "Wisconsin", "Wyoming",
};

static size_t state_at(const char *t, size_t n, size_t i)
{
	if (!wstart(t, n, i))
		return 0;
	size_t best = 0;
	for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
		size_t l = csw(t, n, i, states[k]);
		if (l > best)
			best = l;
	}
	return best;
}

/* City words right before a state: ", Springfield, IL" -> the span of
 * "Springfield"; walks back over up to 3 capitalised words. */
static void city_before(struct scan *sc, size_t st)
{
	const char *t = sc->t;
	size_t n = sc->n;
	size_t j = st;
	while (j > 0 && sp(t[j - 1]))
		j--;
	if (j > 0 && t[j - 1] == ',')
		j--;
	while (j > 0 && sp(t[j - 1]))
		j--;
	size_t e = j, s = j;
	for (int w = 0; w < 3; w++) {
		size_t b = s;
		while (b > 0 && (al((unsigned char)t[b - 1]) || t[b - 1] == '.' || t[b - 1] == '\''))
			b--;
		if (b == s || !up(at(t, n, b)) || is_stop(t, b, s))
			break;
		s = b;
		if (s > 0 && t[s - 1] == ' ' && s > 1 && al((unsigned char)t[s - 2]))
			s--;
		else
			break;
	}
	while (s < e && sp(t[s]))
		s++;
	if (s < e && up(at(t, n, s)))
		add(sc, s, e, DK_PHI_ADDRESS);
}

static void detect_zip_states(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (!up(at(t, n, i)) || !wstart(t, n, i))
			continue;
		size_t l = state_at(t, n, i);
		if (l) {
			size_t j = i + l;
			if (at(t, n, j) == ',')
				j++;
			size_t k = skip_sp(t, n, j);
			if (k > j || (k == j && at(t, n, i + l) == ',')) {
				if (digits(t, n, k) == 5 && !(at(t, n, k + 5) == '.' && dg(at(t, n, k + 6)))) {
					size_t e = k + 5;
					if (at(t, n, e) == '-' && digits(t, n, e + 1) == 4)
						e += 5;
					if (!alnum(at(t, n, e))) {
						add(sc, k, e, DK_PHI_ZIP);
						city_before(sc, i);
						i = e - 1;
						continue;
					}
				}
			}
		}
		while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
			i++;
	}
}

static void detect_addresses(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (!wstart(t, n, i))
			continue;
		/* P.O. Box 123 */
		size_t pk = 0;
		static const char *const pob[] = {"P.O. Box", "PO Box", "P O Box", "Post Office Box", "P.O.Box"};
		for (size_t p = 0; p < 5 && !pk; p++)
			pk = ci(t, n, i, pob[p]);
		if (pk) {
			size_t j = skip_sp(t, n, i + pk);
			size_t d = digits(t, n, j);
			if (d) {
				add(sc, i, j + d, DK_PHI_ADDRESS);
				i = j + d - 1;
				continue;
			}
		}
		size_t d = digits(t, n, i);
		if (!d || d > 6) {
			while (alnum(at(t, n, i)) && i + 1 < n && alnum(at(t, n, i + 1)))
				i++;
			continue;
		}
		size_t j = i + d;
		if (up(at(t, n, j)) && !alnum(at(t, n, j + 1)))
			j++; /* 12B */
		else if (at(t, n, j) == '-' && dg(at(t, n, j + 1)))
			j += 1 + digits(t, n, j + 1);
		if (at(t, n, j) != ' ') {
			i = j;
			continue;
		}
		j++;
		/* up to 5 words: directions, ordinals, capitalised names; the
		 * last must be a street suffix */
		size_t end = 0;
		for (int w = 0; w < 5; w++) {
			size_t s = j;
			size_t e = s;
			if (dg(at(t, n, e))) {
				e += digits(t, n, e);
				if (!(ci(t, n, e, "st") || ci(t, n, e, "nd") || ci(t, n, e, "rd") || ci(t, n, e, "th")))
					break;
				e += 2;
			} else if (up(at(t, n, e))) {
				while (e < n && (al(at(t, n, e)) || t[e] == '\''))
					e++;
			} else {
				break;
			}
			if (alnum(at(t, n, e)))
				break;
			if (w > 0) {
				for (size_t k = 0; k < sizeof street_suffix / sizeof street_suffix[0]; k++) {
					if (csw(t, n, s, street_suffix[k]) == e - s) {
						end = e;
						if (at(t, n, e) == '.')
							end = e + 1;
						break;
					}
				}
				if (end)
					break;
			}
			if (at(t, n, e) == '.' && e - s <= 2)
				e++; /* "N." */
			if (at(t, n, e) != ' ')
				break;
			j = e + 1;
		}
		if (!end) {
			i += d - 1;
			continue;
		}
		/* unit: ", Apt 4B", " Suite 200", " #12" */
		size_t k = end;
		if (at(t, n, k) == ',')
			k++;
		k = skip_sp(t, n, k);
		static const char *const unit[] = {"Apartment", "Apt.", "Apt", "Suite", "Ste.", "Ste", "Unit",
						   "Room", "Rm.", "Rm", "Floor", "Fl.", "Bldg", "Building", "#"};
		for (size_t u = 0; u < sizeof unit / sizeof unit[0]; u++) {
			size_t l = ci(t, n, k, unit[u]);
			if (!l || (alnum((unsigned char)unit[u][l - 1]) && alnum(at(t, n, k + l))))
				continue;
			size_t v = skip_sp(t, n, k + l);
			if (at(t, n, v) == '#')
				v++;
			size_t ve = v;
			while (ve < n && alnum(at(t, n, ve)))
				ve++;
			if (ve > v && ve - v <= 6) {
				end = ve;
				break;
			}
		}
		add(sc, i, end, DK_PHI_ADDRESS);
		i = end - 1;
	}
}

/* Text that already looks like one of our placeholders. */
static void detect_placeholders(struct scan *sc)
{
	const char *t = sc->t;
	size_t n = sc->n;
	for (size_t i = 0; i < n; i++) {
		if (t[i] != '[')
			continue;
		for (int ty = 0; ty < DK_PHI_COUNT; ty++) {
			size_t l = strlen(phi_names[ty]);
			if (i + l + 3 > n || memcmp(t + i + 1, phi_names[ty], l) || t[i + 1 + l] != '_')
				continue;
			size_t d = digits(t, n, i + 2 + l);
			if (d && at(t, n, i + 2 + l + d) == ']') {
				/* typed regardless of the enabled set: round trip must hold */
				uint32_t keep = sc->types;
				sc->types |= 1u << ty;
				add(sc, i, i + 3 + l + d, ty);
				sc->types = keep;
			}
		}
	}
}

/* ---------------------------------------------------------------- driver */

static int span_cmp(const void *a, const void *b)
{
	const struct span *x = a, *y = b;
	if (x->s != y->s)
		return x->s < y->s ? -1 : 1;
	if (x->e != y->e)
		return x->e > y->e ? -1 : 1;
	return phi_rank[x->type] - phi_rank[y->type];
}

static int put_placeholder(struct dk_buf *b, const struct entry *e)
{
	return dk_buf_printf(b, "[%s_%u]", phi_names[e->type], e->num);
}

enum dk_status dk_redact(const struct dk_redactor *r, const char *text, size_t len, char **out,
			 size_t *out_len, struct dk_redact_map **mapp)
{
	*out = NULL;
	if (out_len)
		*out_len = 0;
	struct dk_redact_map *m = *mapp;
	int created = 0;
	if (!m) {
		m = dk_redact_map_new();
		if (!m)
			return DK_FATAL;
		created = 1;
	}
	struct scan sc = {.t = text ? text : "", .n = text ? len : 0, .types = r->p.types};
	detect_placeholders(&sc);
	detect_urls(&sc);
	detect_emails(&sc);
	detect_ssn(&sc);
	detect_phones(&sc);
	detect_dates(&sc);
	detect_ips(&sc);
	detect_cued(&sc);
	detect_addresses(&sc);
	detect_zip_states(&sc);
	detect_names(&sc);
	detect_long_numbers(&sc);
	if (r->p.propagate_names && (r->p.types & (1u << DK_PHI_NAME)))
		propagate_names(&sc, m);

	struct dk_buf b = {0};
	int fail = sc.oom;
	if (!fail && sc.nsp)
		qsort(sc.sp, sc.nsp, sizeof *sc.sp, span_cmp);
	/* merge overlaps: the union goes, typed by the first (widest) span */
	size_t w = 0;
	for (size_t k = 0; k < sc.nsp && !fail; k++) {
		if (w && sc.sp[k].s < sc.sp[w - 1].e) {
			if (sc.sp[k].e > sc.sp[w - 1].e)
				sc.sp[w - 1].e = sc.sp[k].e;
			continue;
		}
		sc.sp[w++] = sc.sp[k];
	}
	size_t pos = 0;
	for (size_t k = 0; k < w && !fail; k++) {
		const struct span *s = &sc.sp[k];
		const struct entry *e = map_get(m, s->type, sc.t + s->s, s->e - s->s);
		if (!e || dk_buf_append(&b, sc.t + pos, s->s - pos) || put_placeholder(&b, e)) {
			fail = 1;
			break;
		}
		m->count[s->type]++;
		pos = s->e;
	}
	if (!fail && dk_buf_append(&b, sc.t + pos, sc.n - pos))
		fail = 1;
	free(sc.sp);
	if (fail) {
		dk_buf_free(&b);
		if (created)
			dk_redact_map_free(m);
		return DK_FATAL;
	}
	if (out_len)
		*out_len = b.len;
	*out = dk_buf_steal(&b);
	*mapp = m;
	return DK_OK;
}

enum dk_status dk_unredact(const struct dk_redact_map *m, const char *text, size_t len, char **out,
			   size_t *out_len)
{
	struct dk_buf b = {0};
	size_t pos = 0;
	*out = NULL;
	if (out_len)
		*out_len = 0;
	if (!text) {
		text = "";
		len = 0;
	}
	for (size_t i = 0; i < len && m; i++) {
		if (text[i] != '[')
			continue;
		for (int ty = 0; ty < DK_PHI_COUNT; ty++) {
			size_t l = strlen(phi_names[ty]);
			if (i + l + 3 > len || memcmp(text + i + 1, phi_names[ty], l) || text[i + 1 + l] != '_')
				continue;
			size_t d = digits(text, len, i + 2 + l);
			if (!d || d > 9 || at(text, len, i + 2 + l + d) != ']')
				continue;
			const struct entry *e = map_find_num(m, ty, num(text, i + 2 + l, d));
			if (!e)
				continue;
			if (dk_buf_append(&b, text + pos, i - pos) || dk_buf_append(&b, e->val, e->len))
				goto oom;
			pos = i + 3 + l + d;
			i = pos - 1;
			break;
		}
	}
	if (dk_buf_append(&b, text + pos, len - pos))
		goto oom;
	if (out_len)
		*out_len = b.len;
	*out = dk_buf_steal(&b);
	return DK_OK;
oom:
	dk_buf_free(&b);
	return DK_FATAL;
}
