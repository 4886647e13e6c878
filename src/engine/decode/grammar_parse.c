/*
 * GBNF text → the flat grammar of grammar_impl.h.
 *
 * Groups and repetitions become anonymous rules: x* is r ::= x r | (empty),
 * which the recognizer runs without growing its stacks (a reference in last
 * position does not push a return point).  x{m,n} is m copies of x followed
 * by a chain of n-m nested optionals.  After parsing, every rule's shortest
 * sentence is computed (which also tells which rules are nullable) and left
 * recursion is rejected, because a recognizer that expands rules eagerly
 * would loop on it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docket/grammar.h"
#include "engine/decode/grammar_impl.h"
#include "util/buf.h"
#include "util/err.h"

/* Bounds that keep hostile input (the fuzzer) from exhausting memory. */
#define MAX_REPEAT 10000
#define MAX_ELEMS (1 << 21)
#define MAX_RULES (1 << 18)
#define MAX_NEST 200

struct bseq {
	struct dk_gelem *e;
	int32_t n, cap;
};

struct brule {
	char *name;
	int32_t line;     /* first reference or definition, for messages */
	bool defined;
	bool anon;
	struct bseq *alts;
	int32_t nalts, cap;
};

struct uvec {
	uint32_t *p;
	int32_t n, cap;
};

struct parser {
	const char *s;
	size_t len, i;
	int32_t line;
	int32_t nest;
	struct brule *rules;
	int32_t nrules, cap;
	struct dk_gcharset *cs;
	int32_t ncs, cscap;
	struct uvec ranges;
	int64_t nelems;
	char *err;
	bool failed;
};

static void perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void perr(struct parser *p, const char *fmt, ...)
{
	if (p->failed)
		return;
	p->failed = true;
	char msg[DK_ERRMSG_MAX - 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	dk_err(p->err, DK_ERRMSG_MAX, DK_FATAL, "line %d: %s", (int)p->line, msg);
}

static void *grow(void *ptr, int32_t *cap, int32_t need, size_t sz)
{
	if (need <= *cap)
		return ptr;
	int32_t c = *cap ? *cap : 8;
	while (c < need)
		c *= 2;
	void *q = realloc(ptr, (size_t)c * sz);
	if (q)
		*cap = c;
	return q;
}

static int uvec_push(struct uvec *v, uint32_t x)
{
	uint32_t *q = grow(v->p, &v->cap, v->n + 1, sizeof *q);
	if (!q)
		return -1;
	v->p = q;
	v->p[v->n++] = x;
	return 0;
}

static int seq_push(struct parser *p, struct bseq *q, int32_t type, int32_t val)
{
	if (++p->nelems > MAX_ELEMS) {
		perr(p, "grammar too large");
		return -1;
	}
	struct dk_gelem *e = grow(q->e, &q->cap, q->n + 1, sizeof *e);
	if (!e) {
		perr(p, "out of memory");
		return -1;
	}
	q->e = e;
	q->e[q->n++] = (struct dk_gelem){type, val};
	return 0;
}

static int32_t new_rule(struct parser *p, const char *name, size_t n, bool anon)
{
	if (p->nrules >= MAX_RULES) {
		perr(p, "too many rules");
		return -1;
	}
	struct brule *r = grow(p->rules, &p->cap, p->nrules + 1, sizeof *r);
	if (!r) {
		perr(p, "out of memory");
		return -1;
	}
	p->rules = r;
	struct brule *nr = &p->rules[p->nrules];
	memset(nr, 0, sizeof *nr);
	nr->name = strndup(name, n);
	if (!nr->name) {
		perr(p, "out of memory");
		return -1;
	}
	nr->anon = anon;
	nr->line = p->line;
	return p->nrules++;
}

static struct bseq *new_alt(struct parser *p, int32_t rule)
{
	struct brule *r = &p->rules[rule];
	struct bseq *a = grow(r->alts, &r->cap, r->nalts + 1, sizeof *a);
	if (!a) {
		perr(p, "out of memory");
		return NULL;
	}
	r->alts = a;
	memset(&r->alts[r->nalts], 0, sizeof *r->alts);
	return &r->alts[r->nalts++];
}

static int32_t anon_rule(struct parser *p, int32_t parent)
{
	char nm[64];
	const char *base = parent >= 0 ? p->rules[parent].name : "anon";
	snprintf(nm, sizeof nm, "%.40s-%d", base, (int)p->nrules);
	return new_rule(p, nm, strlen(nm), true);
}

static int32_t find_rule(struct parser *p, const char *name, size_t n)
{
	for (int32_t i = 0; i < p->nrules; i++)
		if (!p->rules[i].anon && strlen(p->rules[i].name) == n &&
		    memcmp(p->rules[i].name, name, n) == 0)
			return i;
	return -1;
}

/* ---- character sets ---- */

static int cmp_range(const void *a, const void *b)
{
	const uint32_t *x = a, *y = b;
	return x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0;
}

static bool ranges_hit(const uint32_t *r, int32_t nr, uint32_t lo, uint32_t hi)
{
	for (int32_t i = 0; i < nr; i++) {
		if (r[2 * i] > hi)
			return false;
		if (r[2 * i + 1] >= lo)
			return true;
	}
	return false;
}

/* Builds a charset from nr (lo,hi) pairs in r (sorted here), optionally
 * complemented; returns its id or -1. */
static int32_t make_charset(struct parser *p, uint32_t *r, int32_t nr, bool negate)
{
	if (nr > 1)
		qsort(r, (size_t)nr, 2 * sizeof *r, cmp_range);
	/* merge */
	int32_t m = 0;
	for (int32_t i = 0; i < nr; i++) {
		if (r[2 * i] > r[2 * i + 1])
			continue;
		if (m && r[2 * i] <= r[2 * (m - 1) + 1] + 1) {
			if (r[2 * i + 1] > r[2 * (m - 1) + 1])
				r[2 * (m - 1) + 1] = r[2 * i + 1];
		} else {
			r[2 * m] = r[2 * i];
			r[2 * m + 1] = r[2 * i + 1];
			m++;
		}
	}
	/* complement (into a fresh list) and remove surrogates */
	uint32_t *out = malloc(((size_t)m + 3) * 4 * sizeof *out);
	if (!out) {
		perr(p, "out of memory");
		return -1;
	}
	int32_t no = 0;
	if (negate) {
		uint32_t next = 0;
		for (int32_t i = 0; i < m; i++) {
			if (r[2 * i] > next) {
				out[2 * no] = next;
				out[2 * no + 1] = r[2 * i] - 1;
				no++;
			}
			next = r[2 * i + 1] + 1;
		}
		if (next <= 0x10FFFF) {
			out[2 * no] = next;
			out[2 * no + 1] = 0x10FFFF;
			no++;
		}
	} else {
		if (m)
			memcpy(out, r, (size_t)m * 2 * sizeof *r);
		no = m;
	}
	struct dk_gcharset c;
	memset(&c, 0, sizeof c);
	c.roff = p->ranges.n;
	for (int32_t i = 0; i < no; i++) {
		uint32_t lo = out[2 * i], hi = out[2 * i + 1];
		if (hi > 0x10FFFF)
			hi = 0x10FFFF;
		for (; lo <= hi && lo < 0x80; lo++)
			c.ascii[lo >> 6] |= 1ull << (lo & 63);
		if (lo > hi)
			continue;
		/* split around the surrogates */
		uint32_t parts[4];
		int np = 0;
		if (lo < 0xD800) {
			parts[np++] = lo;
			parts[np++] = hi < 0xD7FF ? hi : 0xD7FF;
		}
		if (hi > 0xDFFF) {
			parts[np++] = lo > 0xE000 ? lo : 0xE000;
			parts[np++] = hi;
		}
		for (int k = 0; k < np; k += 2) {
			if (uvec_push(&p->ranges, parts[k]) || uvec_push(&p->ranges, parts[k + 1])) {
				free(out);
				perr(p, "out of memory");
				return -1;
			}
			c.nr++;
		}
	}
	free(out);
	const uint32_t *rr = p->ranges.p + c.roff;
	c.minlen = DK_G_BIG;
	if (c.ascii[0] | c.ascii[1])
		c.minlen = 1;
	else if (c.nr)
		c.minlen = rr[0] < 0x800 ? 2 : rr[0] < 0x10000 ? 3 : 4;
	c.first[0] = c.ascii[0];
	c.first[1] = c.ascii[1];
	for (uint32_t b = 0xC2; b <= 0xF4; b++) {
		int len = b <= 0xDF ? 2 : b <= 0xEF ? 3 : 4;
		uint32_t v = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
		int rem = len - 1;
		uint32_t lo = v << (6 * rem), hi = lo | ((1u << (6 * rem)) - 1);
		uint32_t mn = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
		if (lo < mn)
			lo = mn;
		if (hi > 0x10FFFF)
			hi = 0x10FFFF;
		if (lo <= hi && ranges_hit(rr, c.nr, lo, hi))
			c.first[b >> 6] |= 1ull << (b & 63);
	}
	struct dk_gcharset *ncs = grow(p->cs, &p->cscap, p->ncs + 1, sizeof *ncs);
	if (!ncs) {
		perr(p, "out of memory");
		return -1;
	}
	p->cs = ncs;
	p->cs[p->ncs] = c;
	return p->ncs++;
}

static int32_t single_charset(struct parser *p, uint32_t cp)
{
	uint32_t r[2] = {cp, cp};
	return make_charset(p, r, 1, false);
}

/* ---- lexing ---- */

static bool at_end(struct parser *p) { return p->i >= p->len; }
static int cur(struct parser *p) { return p->i < p->len ? (unsigned char)p->s[p->i] : -1; }

static bool is_word(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
	       c == '-';
}

/* Skips blanks and comments on the current line. */
static void skip_blank(struct parser *p)
{
	while (!at_end(p)) {
		int c = cur(p);
		if (c == ' ' || c == '\t' || c == '\r') {
			p->i++;
		} else if (c == '#') {
			while (!at_end(p) && cur(p) != '\n')
				p->i++;
		} else {
			break;
		}
	}
}

static void skip_all(struct parser *p)
{
	for (;;) {
		skip_blank(p);
		if (cur(p) == '\n') {
			p->i++;
			p->line++;
		} else {
			return;
		}
	}
}

/* True if the text at i starts a rule definition "name ::=". */
static bool at_rule_start(struct parser *p)
{
	size_t j = p->i;
	if (j >= p->len || !is_word((unsigned char)p->s[j]))
		return false;
	while (j < p->len && is_word((unsigned char)p->s[j]))
		j++;
	while (j < p->len && (p->s[j] == ' ' || p->s[j] == '\t' || p->s[j] == '\r'))
		j++;
	return j + 3 <= p->len && memcmp(p->s + j, "::=", 3) == 0;
}

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes one UTF-8 character of the grammar text; invalid bytes stand for
 * themselves (as code points 0x80-0xFF). */
static uint32_t read_utf8(struct parser *p)
{
	const unsigned char *s = (const unsigned char *)p->s;
	unsigned char b = s[p->i];
	int len = b < 0x80 ? 1 : b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 1;
	if (len == 1 || p->i + (size_t)len > p->len) {
		p->i++;
		return b;
	}
	uint32_t v = b & (len == 2 ? 0x1F : len == 3 ? 0x0F : 0x07);
	for (int k = 1; k < len; k++) {
		unsigned char c = s[p->i + (size_t)k];
		if ((c & 0xC0) != 0x80) {
			p->i++;
			return b;
		}
		v = v << 6 | (c & 0x3F);
	}
	p->i += (size_t)len;
	return v;
}

/* One character of a literal or class, escapes decoded.  -1 on error. */
static int64_t read_char(struct parser *p)
{
	if (at_end(p)) {
		perr(p, "unexpected end of text");
		return -1;
	}
	int c = cur(p);
	if (c == '\n') {
		perr(p, "unterminated literal or class");
		return -1;
	}
	if (c != '\\')
		return read_utf8(p);
	p->i++;
	if (at_end(p)) {
		perr(p, "unexpected end of text after '\\'");
		return -1;
	}
	c = cur(p);
	p->i++;
	int ndig = 0;
	switch (c) {
	case 'n': return '\n';
	case 'r': return '\r';
	case 't': return '\t';
	case '0': return 0;
	case '\\': case '"': case '\'': case '[': case ']': case '-': case '^': case '/':
	case '.': case '(': case ')': case '|': case '*': case '+': case '?': case '{': case '}':
		return c;
	case 'x': ndig = 2; break;
	case 'u': ndig = 4; break;
	case 'U': ndig = 8; break;
	default:
		perr(p, "unknown escape '\\%c'", c);
		return -1;
	}
	uint32_t v = 0;
	for (int k = 0; k < ndig; k++) {
		int h = hexval(cur(p));
		if (h < 0) {
			perr(p, "bad hex escape");
			return -1;
		}
		v = v * 16 + (uint32_t)h;
		p->i++;
	}
	if (v > 0x10FFFF) {
		perr(p, "code point out of range");
		return -1;
	}
	return v;
}

/* ---- syntax ---- */

static int parse_alternates(struct parser *p, int32_t rule, bool nested);

/* Wraps seq->e[from..n) as one element: returns it (REF to a new rule when
 * there is more than one) and truncates the sequence to from. */
static int take_unit(struct parser *p, int32_t rule, struct bseq **seqp, int32_t from,
		     struct dk_gelem *unit, int32_t alt_rule, int32_t alt_idx)
{
	struct bseq *seq = *seqp;
	if (seq->n - from == 1) {
		*unit = seq->e[from];
		seq->n = from;
		return 0;
	}
	int32_t r = anon_rule(p, rule);
	if (r < 0)
		return -1;
	/* rules array may have moved */
	seq = *seqp = &p->rules[alt_rule].alts[alt_idx];
	struct bseq *a = new_alt(p, r);
	if (!a)
		return -1;
	seq = *seqp = &p->rules[alt_rule].alts[alt_idx];
	for (int32_t k = from; k < seq->n; k++)
		if (seq_push(p, a, seq->e[k].type, seq->e[k].val))
			return -1;
	p->rules[r].defined = true;
	seq->n = from;
	*unit = (struct dk_gelem){DK_EL_REF, r};
	return 0;
}

/* A rule r ::= x r | (empty); returns r. */
static int32_t star_rule(struct parser *p, int32_t parent, struct dk_gelem x)
{
	int32_t r = anon_rule(p, parent);
	if (r < 0)
		return -1;
	struct bseq *a = new_alt(p, r);
	if (!a || seq_push(p, a, x.type, x.val) || seq_push(p, a, DK_EL_REF, r))
		return -1;
	if (!new_alt(p, r))
		return -1;
	p->rules[r].defined = true;
	return r;
}

/* r ::= x next | (empty), or r ::= x | (empty) when next < 0. */
static int32_t opt_rule(struct parser *p, int32_t parent, struct dk_gelem x, int32_t next)
{
	int32_t r = anon_rule(p, parent);
	if (r < 0)
		return -1;
	struct bseq *a = new_alt(p, r);
	if (!a || seq_push(p, a, x.type, x.val))
		return -1;
	if (next >= 0 && seq_push(p, a, DK_EL_REF, next))
		return -1;
	if (!new_alt(p, r))
		return -1;
	p->rules[r].defined = true;
	return r;
}

static long read_int(struct parser *p)
{
	skip_blank(p);
	if (cur(p) < '0' || cur(p) > '9')
		return -1;
	long v = 0;
	while (cur(p) >= '0' && cur(p) <= '9') {
		v = v * 10 + (cur(p) - '0');
		if (v > MAX_REPEAT) {
			perr(p, "repetition count over %d", MAX_REPEAT);
			return -2;
		}
		p->i++;
	}
	return v;
}

static int apply_postfix(struct parser *p, int32_t rule, int32_t alt_idx, int32_t from)
{
	int c = cur(p);
	long m, n;
	if (c == '*') { m = 0; n = -1; p->i++; }
	else if (c == '+') { m = 1; n = -1; p->i++; }
	else if (c == '?') { m = 0; n = 1; p->i++; }
	else if (c == '{') {
		p->i++;
		m = read_int(p);
		if (m < 0) {
			if (m == -1)
				perr(p, "expected a number after '{'");
			return -1;
		}
		skip_blank(p);
		if (cur(p) == ',') {
			p->i++;
			skip_blank(p);
			if (cur(p) == '}') {
				n = -1;
			} else {
				n = read_int(p);
				if (n < 0) {
					if (n == -1)
						perr(p, "expected a number or '}' after ','");
					return -1;
				}
			}
		} else {
			n = m;
		}
		skip_blank(p);
		if (cur(p) != '}') {
			perr(p, "expected '}'");
			return -1;
		}
		p->i++;
		if (n >= 0 && n < m) {
			perr(p, "repetition {%ld,%ld} has max below min", m, n);
			return -1;
		}
	} else {
		return 0;
	}
	struct bseq *seq = &p->rules[rule].alts[alt_idx];
	if (seq->n == from) {
		perr(p, "repetition without an element");
		return -1;
	}
	struct dk_gelem x;
	if (take_unit(p, rule, &seq, from, &x, rule, alt_idx))
		return -1;
	for (long k = 0; k < m; k++) {
		seq = &p->rules[rule].alts[alt_idx];
		if (seq_push(p, seq, x.type, x.val))
			return -1;
	}
	int32_t tail = -1;
	if (n < 0) {
		tail = star_rule(p, rule, x);
	} else {
		for (long k = 0; k < n - m; k++) {
			tail = opt_rule(p, rule, x, tail);
			if (tail < 0)
				return -1;
		}
	}
	if (p->failed)
		return -1;
	if (tail >= 0) {
		seq = &p->rules[rule].alts[alt_idx];
		if (seq_push(p, seq, DK_EL_REF, tail))
			return -1;
	}
	return 0;
}

/* Parses one alternative into a new alt of rule.  Stops before '|', ')',
 * the end, or (at top level) a newline followed by a new rule. */
static int parse_sequence(struct parser *p, int32_t rule, bool nested)
{
	if (!new_alt(p, rule))
		return -1;
	int32_t alt_idx = p->rules[rule].nalts - 1;
	for (;;) {
		skip_blank(p);
		if (cur(p) == '\n') {
			size_t save = p->i;
			int32_t sline = p->line;
			skip_all(p);
			if (!nested && (at_end(p) || at_rule_start(p))) {
				p->i = save;
				p->line = sline;
				return 0;
			}
		}
		if (at_end(p))
			return 0;
		int c = cur(p);
		if (c == '|' || c == ')')
			return 0;
		struct bseq *seq = &p->rules[rule].alts[alt_idx];
		int32_t from = seq->n;
		if (c == '"') {
			p->i++;
			while (cur(p) != '"') {
				int64_t ch = read_char(p);
				if (ch < 0)
					return -1;
				int32_t cs = single_charset(p, (uint32_t)ch);
				if (cs < 0)
					return -1;
				seq = &p->rules[rule].alts[alt_idx];
				if (seq_push(p, seq, DK_EL_CHAR, cs))
					return -1;
			}
			p->i++;
			if (seq->n == from) /* "" matches nothing; a postfix on it is moot */
				continue;
		} else if (c == '[') {
			p->i++;
			bool neg = false;
			if (cur(p) == '^') {
				neg = true;
				p->i++;
			}
			struct uvec r = {0};
			while (cur(p) != ']') {
				int64_t lo = read_char(p), hi;
				if (lo < 0) {
					free(r.p);
					return -1;
				}
				hi = lo;
				if (cur(p) == '-' && p->i + 1 < p->len && p->s[p->i + 1] != ']') {
					p->i++;
					hi = read_char(p);
					if (hi < 0) {
						free(r.p);
						return -1;
					}
					if (hi < lo) {
						free(r.p);
						perr(p, "character range out of order");
						return -1;
					}
				}
				if (uvec_push(&r, (uint32_t)lo) || uvec_push(&r, (uint32_t)hi)) {
					free(r.p);
					perr(p, "out of memory");
					return -1;
				}
			}
			p->i++;
			int32_t cs = make_charset(p, r.p, r.n / 2, neg);
			free(r.p);
			if (cs < 0)
				return -1;
			seq = &p->rules[rule].alts[alt_idx];
			if (seq_push(p, seq, DK_EL_CHAR, cs))
				return -1;
		} else if (c == '.') {
			p->i++;
			int32_t cs = make_charset(p, NULL, 0, true);
			if (cs < 0)
				return -1;
			seq = &p->rules[rule].alts[alt_idx];
			if (seq_push(p, seq, DK_EL_CHAR, cs))
				return -1;
		} else if (c == '(') {
			p->i++;
			if (++p->nest > MAX_NEST) {
				perr(p, "groups nested too deep");
				return -1;
			}
			int32_t g = anon_rule(p, rule);
			if (g < 0)
				return -1;
			p->rules[g].defined = true;
			if (parse_alternates(p, g, true))
				return -1;
			p->nest--;
			skip_all(p);
			if (cur(p) != ')') {
				perr(p, "expected ')'");
				return -1;
			}
			p->i++;
			seq = &p->rules[rule].alts[alt_idx];
			if (seq_push(p, seq, DK_EL_REF, g))
				return -1;
		} else if (is_word(c)) {
			size_t s0 = p->i;
			while (is_word(cur(p)))
				p->i++;
			size_t n = p->i - s0;
			int32_t r = find_rule(p, p->s + s0, n);
			if (r < 0)
				r = new_rule(p, p->s + s0, n, false);
			if (r < 0)
				return -1;
			seq = &p->rules[rule].alts[alt_idx];
			if (seq_push(p, seq, DK_EL_REF, r))
				return -1;
		} else {
			perr(p, "unexpected character '%c'", c >= 32 && c < 127 ? c : '?');
			return -1;
		}
		skip_blank(p);
		if (apply_postfix(p, rule, alt_idx, from))
			return -1;
		skip_blank(p);
		if (cur(p) == '*' || cur(p) == '+' || cur(p) == '?' || cur(p) == '{') {
			perr(p, "stacked repetition operators");
			return -1;
		}
	}
}

static int parse_alternates(struct parser *p, int32_t rule, bool nested)
{
	if (nested)
		skip_all(p);
	if (parse_sequence(p, rule, nested))
		return -1;
	for (;;) {
		if (nested)
			skip_all(p);
		else
			skip_blank(p);
		if (cur(p) != '|')
			return 0;
		p->i++;
		if (nested)
			skip_all(p);
		if (parse_sequence(p, rule, nested))
			return -1;
	}
}

static int parse_rules(struct parser *p)
{
	for (;;) {
		skip_all(p);
		if (at_end(p))
			return 0;
		if (!is_word(cur(p))) {
			perr(p, "expected a rule name");
			return -1;
		}
		size_t s0 = p->i;
		while (is_word(cur(p)))
			p->i++;
		size_t n = p->i - s0;
		skip_blank(p);
		if (p->i + 3 > p->len || memcmp(p->s + p->i, "::=", 3) != 0) {
			perr(p, "expected '::=' after '%.*s'", (int)(n > 40 ? 40 : n), p->s + s0);
			return -1;
		}
		p->i += 3;
		int32_t r = find_rule(p, p->s + s0, n);
		if (r >= 0 && p->rules[r].defined) {
			perr(p, "rule '%s' defined twice", p->rules[r].name);
			return -1;
		}
		if (r < 0)
			r = new_rule(p, p->s + s0, n, false);
		if (r < 0)
			return -1;
		p->rules[r].defined = true;
		p->rules[r].line = p->line;
		if (parse_alternates(p, r, false))
			return -1;
		skip_blank(p);
		if (!at_end(p) && cur(p) != '\n') {
			int c = cur(p);
			perr(p, "unexpected character '%c'", c >= 32 && c < 127 ? c : '?');
			return -1;
		}
	}
}

/* ---- compile ---- */

static int32_t sat_add(int32_t a, int32_t b)
{
	int64_t s = (int64_t)a + b;
	return s >= DK_G_BIG ? DK_G_BIG : (int32_t)s;
}

static int32_t elem_min(const struct dk_grammar *g, struct dk_gelem e)
{
	if (e.type == DK_EL_CHAR)
		return g->cs[e.val].minlen;
	if (e.type == DK_EL_REF)
		return g->rule_min[e.val];
	return 0;
}

/* Iterative DFS over "can start with" edges; returns a rule on a cycle or -1. */
static int32_t find_left_recursion(const struct dk_grammar *g)
{
	int32_t nr = g->nrules;
	int32_t *eoff = calloc((size_t)nr + 1, sizeof *eoff);
	int32_t cnt = 0;
	for (int pass = 0; pass < 2; pass++) {
		int32_t *edges = pass ? malloc(((size_t)cnt + 1) * sizeof *edges) : NULL;
		if (pass && !edges) {
			free(eoff);
			return -2;
		}
		cnt = 0;
		for (int32_t r = 0; r < nr; r++) {
			if (!pass && !eoff)
				return -2;
			if (!pass)
				eoff[r] = cnt;
			for (int32_t a = 0; a < g->rule_nalts[r]; a++) {
				for (int32_t k = g->alt_start[g->rule_alt0[r] + a]; g->el[k].type == DK_EL_REF; k++) {
					if (pass)
						edges[cnt] = g->el[k].val;
					cnt++;
					if (g->rule_min[g->el[k].val] != 0)
						break;
				}
			}
		}
		if (!pass) {
			eoff[nr] = cnt;
			continue;
		}
		uint8_t *color = calloc((size_t)nr, 1);
		int32_t *st = malloc(((size_t)nr + 1) * 2 * sizeof *st);
		int32_t found = -1;
		if (!color || !st)
			found = -2;
		for (int32_t s = 0; s < nr && found == -1; s++) {
			if (color[s])
				continue;
			int32_t sp = 0;
			st[0] = s;
			st[1] = eoff[s];
			color[s] = 1;
			sp = 1;
			while (sp > 0 && found == -1) {
				int32_t r = st[2 * (sp - 1)], *ei = &st[2 * (sp - 1) + 1];
				if (*ei >= eoff[r + 1]) {
					color[r] = 2;
					sp--;
					continue;
				}
				int32_t t = edges[(*ei)++];
				if (color[t] == 1) {
					found = t;
				} else if (color[t] == 0) {
					color[t] = 1;
					st[2 * sp] = t;
					st[2 * sp + 1] = eoff[t];
					sp++;
				}
			}
		}
		free(color);
		free(st);
		free(edges);
		free(eoff);
		return found;
	}
	return -2;
}

static enum dk_status compile(struct dk_grammar *g, struct parser *p, const char *root)
{
	for (int32_t r = 0; r < p->nrules; r++) {
		if (!p->rules[r].defined) {
			p->line = p->rules[r].line;
			perr(p, "undefined rule '%s'", p->rules[r].name);
			return DK_FATAL;
		}
	}
	int32_t ri = find_rule(p, root, strlen(root));
	if (ri < 0)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "no rule named '%s'", root);
	int64_t nel = 0, nalts = 0;
	for (int32_t r = 0; r < p->nrules; r++) {
		nalts += p->rules[r].nalts;
		for (int32_t a = 0; a < p->rules[r].nalts; a++)
			nel += p->rules[r].alts[a].n + 1;
	}
	g->nrules = p->nrules;
	g->nalts = (int32_t)nalts;
	g->nel = (int32_t)nel;
	g->el = malloc(((size_t)nel + 1) * sizeof *g->el);
	g->minrest = malloc(((size_t)nel + 1) * sizeof *g->minrest);
	g->alt_start = malloc(((size_t)nalts + 1) * sizeof *g->alt_start);
	g->rule_alt0 = malloc((size_t)p->nrules * sizeof *g->rule_alt0);
	g->rule_nalts = malloc((size_t)p->nrules * sizeof *g->rule_nalts);
	g->rule_min = malloc((size_t)p->nrules * sizeof *g->rule_min);
	g->rule_name = calloc((size_t)p->nrules, sizeof *g->rule_name);
	if (!g->el || !g->minrest || !g->alt_start || !g->rule_alt0 || !g->rule_nalts || !g->rule_min ||
	    !g->rule_name)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "out of memory");
	int32_t ie = 0, ia = 0;
	for (int32_t r = 0; r < p->nrules; r++) {
		g->rule_alt0[r] = ia;
		g->rule_nalts[r] = p->rules[r].nalts;
		g->rule_min[r] = DK_G_BIG;
		g->rule_name[r] = p->rules[r].name;
		p->rules[r].name = NULL;
		for (int32_t a = 0; a < p->rules[r].nalts; a++) {
			g->alt_start[ia++] = ie;
			struct bseq *q = &p->rules[r].alts[a];
			for (int32_t k = 0; k < q->n; k++)
				g->el[ie++] = q->e[k];
			g->el[ie++] = (struct dk_gelem){DK_EL_END, 0};
		}
	}
	g->cs = p->cs;
	g->ncs = p->ncs;
	p->cs = NULL;
	g->ranges = p->ranges.p;
	g->nranges = p->ranges.n;
	p->ranges.p = NULL;
	g->root = ri;

	/* shortest sentences: relax until stable (anonymous rules come after
	 * their users, so sweeping backwards settles most in one pass) */
	for (bool changed = true; changed;) {
		changed = false;
		for (int32_t r = g->nrules - 1; r >= 0; r--) {
			int32_t best = g->rule_min[r];
			for (int32_t a = 0; a < g->rule_nalts[r]; a++) {
				int32_t s = 0;
				for (int32_t k = g->alt_start[g->rule_alt0[r] + a]; g->el[k].type != DK_EL_END; k++)
					s = sat_add(s, elem_min(g, g->el[k]));
				if (s < best)
					best = s;
			}
			if (best < g->rule_min[r]) {
				g->rule_min[r] = best;
				changed = true;
			}
		}
	}
	for (int32_t a = 0; a < g->nalts; a++) {
		int32_t k = g->alt_start[a];
		while (g->el[k].type != DK_EL_END)
			k++;
		g->minrest[k] = 0;
		for (int32_t j = k - 1; j >= g->alt_start[a]; j--)
			g->minrest[j] = sat_add(elem_min(g, g->el[j]), g->minrest[j + 1]);
	}
	int32_t lr = find_left_recursion(g);
	if (lr == -2)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "out of memory");
	if (lr >= 0)
		return dk_err(g->err, sizeof g->err, DK_FATAL, "left recursion in rule '%s' (a rule that can start with "
			      "itself, or a repetition of something that can match nothing)",
			      g->rule_name[lr]);
	return DK_OK;
}

enum dk_status dk_grammar_parse(struct dk_grammar **out, const char *text, size_t len,
				const char *root)
{
	struct dk_grammar *g = calloc(1, sizeof *g);
	*out = g;
	if (!g)
		return DK_FATAL;
	struct parser p;
	memset(&p, 0, sizeof p);
	p.s = text ? text : "";
	p.len = text ? len : 0;
	p.line = 1;
	p.err = g->err;
	enum dk_status st = DK_OK;
	if (parse_rules(&p) || p.failed)
		st = DK_FATAL;
	if (st == DK_OK) {
		st = compile(g, &p, root ? root : "root");
		if (p.failed)
			st = DK_FATAL;
	}
	for (int32_t r = 0; r < p.nrules; r++) {
		free(p.rules[r].name);
		for (int32_t a = 0; a < p.rules[r].nalts; a++)
			free(p.rules[r].alts[a].e);
		free(p.rules[r].alts);
	}
	free(p.rules);
	free(p.cs);
	free(p.ranges.p);
	return st;
}

enum dk_status dk_grammar_load_file(struct dk_grammar **out, const char *path, const char *root)
{
	*out = NULL;
	FILE *f = fopen(path, "rb");
	struct dk_buf b = {0};
	char chunk[65536];
	size_t n;
	int bad = !f;
	while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0 && !bad)
		bad = dk_buf_append(&b, chunk, n) || b.len > (64u << 20);
	if (f && ferror(f))
		bad = 1;
	if (f)
		fclose(f);
	if (bad) {
		struct dk_grammar *g = calloc(1, sizeof *g);
		*out = g;
		if (g)
			dk_err(g->err, sizeof g->err, DK_FATAL, "cannot read '%s': %s", path,
			       b.len > (64u << 20) ? "file too large" : strerror(errno ? errno : EIO));
		dk_buf_free(&b);
		return DK_FATAL;
	}
	enum dk_status st = dk_grammar_parse(out, b.data ? b.data : "", b.len, root);
	dk_buf_free(&b);
	if (st != DK_OK && *out) {
		char msg[DK_ERRMSG_MAX];
		snprintf(msg, sizeof msg, "%s", (*out)->err);
		dk_err((*out)->err, sizeof (*out)->err, st, "'%s': %s", path, msg);
	}
	return st;
}

void dk_grammar_free(struct dk_grammar *g)
{
	if (!g)
		return;
	if (g->rule_name)
		for (int32_t r = 0; r < g->nrules; r++)
			free(g->rule_name[r]);
	free(g->rule_name);
	free(g->el);
	free(g->minrest);
	free(g->alt_start);
	free(g->rule_alt0);
	free(g->rule_nalts);
	free(g->rule_min);
	free(g->cs);
	free(g->ranges);
	free(g);
}

const char *dk_grammar_error(const struct dk_grammar *g)
{
	return g ? g->err : "out of memory";
}

int32_t dk_grammar_min_bytes(const struct dk_grammar *g)
{
	return g->rule_min[g->root];
}
