/* Private: the compiled grammar's flat form, shared by the GBNF compiler
 * (grammar_parse.c) and the recognizer (grammar.c). */
#ifndef DK_ENGINE_GRAMMAR_IMPL_H
#define DK_ENGINE_GRAMMAR_IMPL_H

#include <stdint.h>

#include "docket/docket.h"

/* Lengths are saturated here: "cannot finish". */
#define DK_G_BIG (1 << 28)

enum { DK_EL_END = 0, DK_EL_REF = 1, DK_EL_CHAR = 2 };

/* One element of an alternative.  An alternative is a run of elements
 * ending in DK_EL_END.  val: rule id (REF) or charset id (CHAR). */
struct dk_gelem {
	int32_t type;
	int32_t val;
};

/* A set of code points: ASCII as a bitmap, the rest as sorted, disjoint,
 * surrogate-free ranges in dk_grammar.ranges[roff .. roff + 2*nr). */
struct dk_gcharset {
	uint64_t ascii[2];
	uint64_t first[4]; /* bytes that can start a member's UTF-8 encoding */
	int32_t roff, nr;
	int32_t minlen;    /* shortest UTF-8 length of a member; DK_G_BIG if empty */
};

struct dk_grammar {
	char err[DK_ERRMSG_MAX];
	struct dk_gelem *el;
	int32_t nel;
	int32_t *minrest;    /* [nel]: fewest bytes from this element to its END */
	int32_t *alt_start;  /* [nalts]: element index of each alternative */
	int32_t nalts;
	int32_t *rule_alt0;  /* [nrules]: first alternative of the rule */
	int32_t *rule_nalts; /* [nrules] */
	int32_t *rule_min;   /* [nrules]: fewest bytes of a sentence of the rule */
	char **rule_name;    /* [nrules] */
	int32_t nrules;
	struct dk_gcharset *cs;
	int32_t ncs;
	uint32_t *ranges;
	int32_t nranges;
	int32_t root;
};

#endif
