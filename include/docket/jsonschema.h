/*
 * JSON Schema for structured output: a compiler to a grammar (GBNF text or
 * a dk_grammar), and a validator of its own.
 *
 * Supported keywords (both sides agree on them):
 *   type (a name or a list; "string" "number" "integer" "boolean" "null"
 *   "object" "array"), nullable (OpenAPI), enum, const, properties,
 *   required, additionalProperties (false, true or a schema), items (one
 *   schema), minItems, maxItems, minLength, maxLength (in code points),
 *   anyOf, oneOf, format ("date", "time", "date-time", "uuid", "email"),
 *   pattern, $ref to "#", "#/definitions/NAME" or "#/$defs/NAME".
 * Annotations (title, description, default, examples, $schema, $id,
 * $comment, definitions, $defs, readOnly, writeOnly, deprecated) are
 * ignored.  Any other keyword is an error naming its path, e.g.
 * "schema: /properties/n: unsupported keyword 'minimum'".
 *
 * What the grammar generates is a subset of what the schema allows, so
 * every complete output validates:
 *   - properties come in the schema's order; optional ones may be left out;
 *     no properties beyond those declared are generated unless the object
 *     declares no properties (then any keys, values per
 *     additionalProperties);
 *   - whitespace is at most one space, or a newline and up to 16 spaces,
 *     after '{' '[' ',' ':' and before '}' ']';
 *   - numbers have at most 16 integer digits, 15 fraction digits and a
 *     two-digit exponent; strings use no \u escape of a surrogate or NUL;
 *   - oneOf is generated like anyOf (a grammar cannot exclude a value that
 *     matches two branches); the validator still checks "exactly one";
 *   - enum/const values that fail the rest of the schema are dropped;
 *   - format "date" is the pattern YYYY-MM-DD with month 01-12 and day
 *     01-31 (not checked against the month); "time" is
 *     HH:MM:SS[.ffffff](Z|+HH:MM); "date-time" is date "T" time; "email"
 *     is local@domain.tld in ASCII letters, digits and ._%+-;
 *   - pattern is checked, not generated: the grammar of a constrained
 *     string ignores it, so such an output can fail validation (extract
 *     makes a grounded field's failing value null).  It is read as POSIX
 *     extended syntax with \d \w \s (and \D \W \S outside brackets)
 *     and, as JSON Schema says, matches anywhere in the string unless
 *     anchored.
 */
#ifndef DOCKET_JSONSCHEMA_H
#define DOCKET_JSONSCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "docket/docket.h"
#include "docket/grammar.h"

/* GBNF text for schema (start rule "root"); *out is the caller's to free.
 * DK_SKIP with a message in err[n] when the schema is not supported. */
enum dk_status dk_schema_to_gbnf(const json_t *schema, char **out, char *err, size_t n);

/* The same, compiled: *out is NULL on failure (message in err). */
enum dk_status dk_schema_compile(const json_t *schema, struct dk_grammar **out, char *err, size_t n);

/* True if value satisfies schema; otherwise false with the first failure
 * in err[n], naming where: "/items/2: expected integer, got string". */
bool dk_schema_validate(const json_t *schema, const json_t *value, char *err, size_t n);

#endif
