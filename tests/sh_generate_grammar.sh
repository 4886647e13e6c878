#!/usr/bin/env bash
# docket generate --grammar / --json-schema on stories260K (a model that has
# never seen JSON): the output must parse and validate; bad grammar and
# schema files are usage errors naming the file.
set -u
D=${DK_DOCKET:?}; M=${DK_SHARED:?}/models/stories260K.gguf
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$t/s.json" <<'J'
{"type":"object","properties":{"name":{"type":"string","maxLength":12},"age":{"type":"integer"},
 "tags":{"type":"array","items":{"enum":["a","b"]},"maxItems":2}},"required":["name","age","tags"],
 "additionalProperties":false}
J
for p in "Once upon a time" "The dog" "Lily said"; do
	out=$("$D" generate -m "$M" -t 1 -p "$p" --json-schema "$t/s.json" -n 80 --json) || fail "generate exited $?"
	python3 - "$out" <<'P' || fail "schema output for '$p': $out"
import json, sys
d = json.loads(sys.argv[1])
assert d["schema_valid"] is True, d
assert d["finish_reason"] == "stop", d
o = json.loads(d["text"])
assert set(o) == {"name", "age", "tags"} and isinstance(o["age"], int), o
assert len(o["name"]) <= 12 and all(x in ("a", "b") for x in o["tags"]), o
P
done

printf 'root ::= ("yes" | "no") "."\n' > "$t/yn.gbnf"
out=$("$D" generate -m "$M" -t 1 -p "Once upon a time" --grammar "$t/yn.gbnf" -n 8) || fail "grammar run"
case "$out" in yes.|no.) ;; *) fail "grammar output '$out'";; esac

# a budget too small to close the structure: reported, not silently broken
out=$("$D" generate -m "$M" -t 1 -p "Once" --json-schema "$t/s.json" -n 3 --json) || fail "short run"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["finish_reason"]=="length" and d["schema_valid"] is False, d' "$out" \
	|| fail "short budget: $out"

printf 'root ::= undefined-rule\n' > "$t/bad.gbnf"
err=$("$D" generate -m "$M" -p x --grammar "$t/bad.gbnf" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || fail "bad grammar exit $rc"
case "$err" in *bad.gbnf*) ;; *) fail "bad grammar message: $err";; esac
printf '{"type":"integer","minimum":3}' > "$t/bad.json"
err=$("$D" generate -m "$M" -p x --json-schema "$t/bad.json" 2>&1 >/dev/null); rc=$?
[ $rc -eq 1 ] || fail "bad schema exit $rc"
case "$err" in *minimum*) ;; *) fail "bad schema message: $err";; esac
# --json with byte tokens in the top list (invalid UTF-8 pieces) stays valid JSON
out=$("$D" generate -m "$M" -t 1 -p "Once upon a time" -n 4 --top-probs 60 --json) || fail "top-probs json exited $?"
python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert len(d["top"])==4 and len(d["top"][0])==60' "$out" || fail "top-probs json: $out"
echo "sh_generate_grammar: ok"
