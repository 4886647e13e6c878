#!/usr/bin/env bash
# summarize records carry finish_reason, trimmed and unsupported; with
# --fail-on-unsupported a summary that names what its source does not
# (stories260K invents names) exits 2 and names the file on stderr, one
# whose items are all in its source exits 0, and the flag is refused for
# a pipeline that is not summarize (exit 1, README's exit codes).
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
MODEL="$DK_SHARED/models/stories260K.gguf"
need "$MODEL" "stories260K (../shared/models)"
T=$(mktemp -d /tmp/docket-unsup-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }
R() { "$DK_DOCKET" run pl.json -m "$MODEL" -t 1 --progress none "$@"; }
mkdir invented named
echo "the little dog ran to the park and played with a ball all day." > invented/a.txt
echo "a cat sat on the mat. it was happy." > invented/b.txt
echo "Tim, Lily, Ben, Sue, Max, Tom, Anna, Sam, Mia, Jack, Sara, Lucy and Spot went to the park with mom and dad one day." > named/c.txt
cat > pl.json <<'JSON'
{"name": "unsupported-test", "task": "summarize", "chunking": {"max_tokens": 64, "overlap_tokens": 0},
 "prompts": {"user": "u.txt", "answer": "a.txt"}, "generation": {"max_tokens": 24}}
JSON
printf 'Once upon a time {{text}}\n' > u.txt
printf 'One day,' > a.txt

echo "== without the flag: exit 0, every record says how it ended and what is unsupported"
R invented -o plain.jsonl
python3 - plain.jsonl <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 2, recs
hits = 0
for r in recs:
    assert r["status"] == "ok", r
    assert r["finish_reason"] in ("stop", "length"), r
    assert isinstance(r["unsupported"], list), r
    src = open(r["source"]["path"]).read().lower()
    for item in r["unsupported"]:
        assert item.lower() not in src, (item, r["source"]["path"])
    hits += bool(r["unsupported"])
    # a cut-off generation ends at a sentence, the cut part is recorded
    if r.get("trimmed"):
        assert r["finish_reason"] == "length", r
        assert r["output"].rstrip()[-1] in ".!?\"')", r["output"]
assert hits, "stories260K should name someone its source does not: %r" % recs
PY

echo "== --fail-on-unsupported: exit 2, each file named"
rc=0
R invented -o flagged.jsonl --fail-on-unsupported 2>err || rc=$?
[ "$rc" -eq 2 ] || { cat err; fail "exited $rc, expected 2"; }
grep -q "^docket: --fail-on-unsupported: 'invented/a.txt' has 1 unsupported item" err ||
	{ cat err; fail "a.txt not named"; }
grep -q "summaries with unsupported items (--fail-on-unsupported)" err || { cat err; fail "no summary line"; }
# the flag changes the exit status, not the records
cmp <(python3 -c 'import json,sys; [print(json.loads(l)["output"], json.loads(l)["unsupported"]) for l in open(sys.argv[1])]' plain.jsonl) \
	<(python3 -c 'import json,sys; [print(json.loads(l)["output"], json.loads(l)["unsupported"]) for l in open(sys.argv[1])]' flagged.jsonl) ||
	fail "the records differ with the flag"

echo "== --fail-on-unsupported, every item found: exit 0"
R named -o named.jsonl --fail-on-unsupported 2>err || { cat err; fail "exited $?, expected 0"; }
python3 -c 'import json,sys; r=json.loads(open(sys.argv[1]).readline()); assert r["unsupported"] == [], r' named.jsonl

echo "== only for summarize: exit 1"
cat > cls.json <<'JSON'
{"name": "cls-test", "task": "classify", "prompts": {"user": "u.txt"}, "labels": ["a", "b"]}
JSON
rc=0
"$DK_DOCKET" run cls.json named -m "$MODEL" -o x.jsonl --fail-on-unsupported 2>err || rc=$?
[ "$rc" -eq 1 ] || { cat err; fail "exited $rc, expected 1"; }
grep -q "only for a summarize pipeline" err || { cat err; fail "no message"; }
[ ! -e x.jsonl ] || fail "a refused run wrote its output"
echo "ok"
