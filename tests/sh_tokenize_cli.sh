#!/bin/bash
# docket tokenize on stories260K: ids, pieces, flags, -f verbatim, errors.
set -euo pipefail
D=${DK_DOCKET:?}
M=${DK_SHARED:?}/models/stories260K.gguf
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { [ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"; }

# the same ids llama.cpp's server gave (shared/reference/greedy)
expect ids "$("$D" tokenize -m "$M" --ids "Once upon a time")" "1 403 407 261 378"
expect no-bos "$("$D" tokenize -m "$M" --ids --no-bos "Once upon a time")" "403 407 261 378"
expect model-env "$(DOCKET_MODEL="$M" "$D" tokenize --ids 'Mom said, "')" "1 392 287 336 432 313"

# one line per token: id, tab, escaped piece
out=$("$D" tokenize -m "$M" "Once upon")
expect pieces "$out" "$(printf '1\t<s>\n403\t Once\n407\t upon')"

# -f reads bytes verbatim: a real tab and newline, and a backslash-n pair
printf 'a\tb\\n\n' > "$T/in.txt"
out=$("$D" tokenize -m "$M" --no-bos -f "$T/in.txt")
printf '%s\n' "$out" | grep -qx "$(printf '12\t\\\\t')" || fail "tab not escaped: $out"
printf '%s\n' "$out" | grep -qx "$(printf '13\t\\\\n')" || fail "newline not escaped: $out"
printf '%s\n' "$out" | grep -q '\\\\' || fail "backslash not kept: $out"

# special tokens: parsed by default, plain text with --no-special
expect special "$("$D" tokenize -m "$M" --ids --no-bos '<s>')" "1"
out=$("$D" tokenize -m "$M" --ids --no-bos --no-special '<s>')
case " $out " in *" 1 "*) fail "--no-special still parsed <s>: $out" ;; esac

# empty text: just BOS
expect empty "$("$D" tokenize -m "$M" --ids '')" "1"

# errors: one line on stderr, non-zero status
if "$D" tokenize -m "$T/missing.gguf" x 2>"$T/err"; then fail "missing model accepted"; fi
[ "$(wc -l < "$T/err")" -eq 1 ] || fail "error is not one line: $(cat "$T/err")"
grep -q '^docket: .*missing.gguf' "$T/err" || fail "bad message: $(cat "$T/err")"
if "$D" tokenize -m "$M" 2>"$T/err"; then fail "no text accepted"; fi
grep -q '^docket: ' "$T/err" || fail "bad usage message: $(cat "$T/err")"
if "$D" tokenize -m "$M" -f "$T/nope.txt" 2>"$T/err"; then fail "missing file accepted"; fi
grep -q "^docket: cannot read '$T/nope.txt'" "$T/err" || fail "bad message: $(cat "$T/err")"
echo "sh_tokenize_cli: ok"
