#!/usr/bin/env bash
# Structured output through `docket run` on stories260K.gguf, a model that
# has never seen JSON: schema-constrained extract (object mode with a
# nested schema, and fields mode) writes values that parse and validate in
# every record; the same pipeline unconstrained does not, and says so
# (schema_valid false, schema_error); a generation budget that cannot hold
# the shortest valid object is refused before any work.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
T=$(mktemp -d /tmp/docket-st-XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'echo "FAIL: ${BASH_SOURCE[0]##*/}:$LINENO: exit $?" >&2' ERR
cd "$T"
python3 "$H/mkcorpus.py" in 8 0
printf 'Story:\n{{text}}\nFill in {{schema}}\n' >obj.txt
printf '{{text}}\nThe {{field}} is' >fld.txt
cat >schema.json <<'JSON'
{"type": "object",
 "properties": {
   "title": {"type": "string", "maxLength": 24},
   "mood": {"enum": ["happy", "sad", "calm"]},
   "pages": {"type": ["integer", "null"]},
   "tags": {"type": "array", "items": {"type": "string", "maxLength": 8}, "minItems": 1, "maxItems": 3},
   "day": {"type": "string", "format": "date"},
   "done": {"type": "boolean"}
 },
 "required": ["title", "mood", "tags", "day", "done"],
 "additionalProperties": false}
JSON
python3 - <<'PY'
import json
s = json.load(open("schema.json"))
base = {"task": "extract", "schema": s, "generation": {"max_tokens": 200, "temperature": 0}}
json.dump(dict(base, name="obj", prompts={"user": "obj.txt"}, extract={"mode": "object"}), open("obj.json", "w"))
json.dump(dict(base, name="fld", prompts={"user": "fld.txt"}, extract={"mode": "fields", "grounded": False},
               generation={"max_tokens": 48, "temperature": 0}), open("fld.json", "w"))
json.dump(dict(base, name="tiny", prompts={"user": "obj.txt"}, extract={"mode": "object"},
               generation={"max_tokens": 20}), open("tiny.json", "w"))
PY
R() { "$DK_DOCKET" run "$@" -m "$MODEL" -t 1 --progress none; }

# every record must hold a value of the schema: checked here without docket
cat >check.py <<'PY'
import json, re, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
want_valid = sys.argv[2] == "valid"
assert len(recs) >= 8, len(recs)
def ok(o):
    if not isinstance(o, dict) or set(o) - {"title", "mood", "pages", "tags", "day", "done"}:
        return False
    if any(k not in o for k in ("title", "mood", "tags", "day", "done")):
        return False
    return (isinstance(o["title"], str) and len(o["title"]) <= 24 and o["mood"] in ("happy", "sad", "calm")
            and (o.get("pages") is None or (isinstance(o["pages"], int) and not isinstance(o["pages"], bool)))
            and isinstance(o["tags"], list) and 1 <= len(o["tags"]) <= 3
            and all(isinstance(t, str) and len(t) <= 8 for t in o["tags"])
            and re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", o["day"]) is not None
            and isinstance(o["done"], bool))
for r in recs:
    if r["status"] != "ok":
        continue
    good = ok(r["output"])
    if want_valid:
        assert good and r["schema_valid"] is True and r["finish_reason"] == "stop", r
    else:
        assert r["schema_valid"] is False and r["schema_error"], r
        assert not good, r
print(sys.argv[1], "ok:", next(r["output"] for r in recs if r["status"] == "ok"))
PY
R obj.json in -o obj.jsonl
python3 check.py obj.jsonl valid
R fld.json in -o fld.jsonl
python3 check.py fld.jsonl valid
R obj.json in -o free.jsonl --no-constrain
python3 check.py free.jsonl invalid
grep -q '"schema_error":"the answer holds no JSON object"' free.jsonl

# the constrained and free runs are different configurations: no resume across
rc=0; R obj.json in -o obj.jsonl --resume --no-constrain 2>err.txt || rc=$?
[ "$rc" = 1 ] && grep -q "configuration" err.txt || { cat err.txt; echo "FAIL: resume across --no-constrain: rc $rc"; exit 1; }

# a budget too small for any valid object: refused up front, exit 1
rc=0; R tiny.json in -o tiny.jsonl 2>err.txt || rc=$?
[ "$rc" = 1 ] && grep -q "generation.max_tokens 20 cannot hold the shortest valid object" err.txt ||
	{ cat err.txt; echo "FAIL: tiny budget: rc $rc"; exit 1; }
echo PASS
