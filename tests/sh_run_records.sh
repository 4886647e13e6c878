#!/usr/bin/env bash
# Records account for every input and describe themselves:
# - a file the pipeline's globs leave out is a skipped "excluded" record, and
#   `docket ls --pipeline` says the same; a run that processed nothing warns;
# - --fail-on names the files that hit;
# - every record carries docket.version, docket.settings and created; the
#   report the settings themselves; generate/summarize records finish_reason;
# - a non-UTF-8 file name is escaped, never dropped;
# - a sensitive pipeline's output, checkpoint and report are 0600;
# - --incremental on a changed document: the new record supersedes the old,
#   and merge yields the current set; merge refuses shards of two settings.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
MODEL="$DK_SHARED/models/stories260K.gguf"
need "$MODEL" "stories260K (../shared/models)"
T=$(mktemp -d /tmp/docket-records-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
umask 022
fail() { echo "FAIL: $*"; exit 1; }
R() { "$DK_DOCKET" run -m "$MODEL" -t 1 --progress none "$@"; }
mkdir -p tree/src
printf 'The cat sat on the mat.\n' > tree/a.txt
printf 'The dog ran in the park.\n' > tree/b.txt
printf 'int main(void) { return 0; }\n' > tree/src/main.c
printf 'A bird sang.\n' > "tree/caf$(printf '\xe9').txt" # Latin-1 name, not UTF-8
printf 'Once upon a time: {{text}}\nThe story is about' > u.txt
cat > cls.json <<'JSON'
{"name": "cls", "task": "classify", "input": {"include": ["*.txt"]},
 "chunking": {"max_tokens": 64, "overlap_tokens": 0}, "prompts": {"user": "u.txt"},
 "labels": ["cats", "dogs"], "output": "per_document", "sensitive": true}
JSON
cat > gen.json <<'JSON'
{"name": "gen", "task": "generate", "chunking": {"max_tokens": 64, "overlap_tokens": 0},
 "prompts": {"user": "u.txt"}, "generation": {"max_tokens": 3}, "sensitive": false}
JSON

echo "== excluded files are records; ls agrees"
R cls.json tree -o c.jsonl --report c.report.json 2>c.err
[ "$(wc -l <c.jsonl)" -eq 4 ] || fail "expected 4 records, got $(wc -l <c.jsonl)"
jq -s -e 'map(select(.source.path == "tree/src/main.c")) | length == 1 and .[0].status == "skipped"
	and .[0].skip_reason == "excluded"' c.jsonl >/dev/null || fail "main.c is not an excluded record"
"$DK_DOCKET" ls --pipeline cls.json tree >ls.txt
grep -E '^excluded .* tree/src/main.c$' ls.txt >/dev/null || fail "ls --pipeline does not show main.c excluded"
grep -q '4 files: 3 to extract, 1 skipped' ls.txt || fail "ls count: $(tail -1 ls.txt)"
R cls.json tree/src -o only-c.jsonl 2>only.err
grep -q "warning: no document was processed: all 1 were skipped (1 excluded" only.err ||
	fail "no warning for a run that processed nothing: $(cat only.err)"
mkdir empty
R cls.json tree empty -o e.jsonl 2>e.err
grep -q "warning: 'empty' holds no documents" e.err || fail "no warning for an empty input"

echo "== records describe themselves"
v=$("$DK_DOCKET" --version | awk '{print $2}')
jq -s -e --arg v "$v" 'all(.[]; .docket.version == $v and (.docket.settings | test("^[0-9a-f]{64}$"))
	and (.created | test("^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z$")))' c.jsonl >/dev/null ||
	fail "version, settings or created missing"
[ "$(jq -r .docket.settings c.jsonl | sort -u | wc -l)" -eq 1 ] || fail "one run, several settings"
[ "$(jq -r .docket.settings c.jsonl | head -1)" = "$(jq -r .settings.hash c.report.json)" ] ||
	fail "the report's settings hash is not the records'"
jq -e '.settings.values.model_sha256 | test("^[0-9a-f]{64}$")' c.report.json >/dev/null ||
	fail "the report lacks the settings"
jq -s -e 'any(.[]; .source.path == "tree/caf\ufffd.txt" and .status == "ok")' c.jsonl >/dev/null || fail "a non-UTF-8 name lost: $(jq -c .source.path c.jsonl)"
R gen.json tree/a.txt -o g.jsonl --max-tokens 2 2>/dev/null
jq -e '.finish_reason == "length"' g.jsonl >/dev/null || fail "a cut-off text is not flagged"

echo "== a sensitive pipeline's files are private"
for f in c.jsonl c.jsonl.ckpt c.report.json; do
	[ "$(stat -c %a "$f")" = 600 ] || fail "$f is $(stat -c %a "$f")"
done
[ "$(stat -c %a g.jsonl)" = 644 ] || fail "a non-sensitive output is $(stat -c %a g.jsonl)"

echo "== --fail-on names the files"
rc=0
R cls.json tree -o f.jsonl --fail-on cats --fail-on dogs 2>f.err || rc=$?
[ "$rc" -eq 2 ] || fail "--fail-on exit $rc"
[ "$(grep -c "^docket: --fail-on: 'tree/" f.err)" -eq 3 ] || fail "hits not named: $(cat f.err)"

echo "== --incremental: the current set"
R gen.json tree -o inc.jsonl 2>/dev/null
printf 'The cat sat on the hat.\n' > tree/a.txt
R gen.json tree -o inc.jsonl --incremental 2>inc.err
grep -q "3 unchanged" inc.err || fail "$(cat inc.err)"
old=$(jq -r 'select(.source.path == "tree/a.txt" and .supersedes == null) | .id' inc.jsonl)
[ -n "$old" ] || fail "the old record is gone"
jq -s -e --arg o "$old" 'any(.[]; .source.path == "tree/a.txt" and .supersedes == [$o])' inc.jsonl \
	>/dev/null || fail "the new record does not supersede the old"
"$DK_DOCKET" merge cur.jsonl inc.jsonl 2>m.err
grep -q "1 superseded" m.err || fail "$(cat m.err)"
[ "$(wc -l <cur.jsonl)" -eq 4 ] && ! jq -r .id cur.jsonl | grep -qx "$old" || fail "merge kept the superseded record"
# the README's jq line gives the same set
jq -c -s '([.[] | .supersedes // [] | .[]]) as $old | .[] | select(.id as $i | $old | index($i) | not)' \
	inc.jsonl | jq -r .id | sort >jq.ids
jq -r .id cur.jsonl | sort | cmp -s - jq.ids || fail "the README's jq line disagrees with merge"

echo "== merge refuses shards made with different settings"
R gen.json tree -o s0.jsonl --shard 0/2 2>/dev/null
R gen.json tree -o s1.jsonl --shard 1/2 --max-tokens 2 2>/dev/null
rc=0
"$DK_DOCKET" merge all.jsonl s0.jsonl s1.jsonl 2>mm.err || rc=$?
[ "$rc" -eq 1 ] && grep -q "different settings (max_tokens 3 -> 2" mm.err || fail "merge: $rc $(cat mm.err)"
[ ! -e all.jsonl ] || fail "a refused merge wrote its output"
R gen.json tree -o s1.jsonl --shard 1/2 --overwrite 2>/dev/null
"$DK_DOCKET" merge all.jsonl s0.jsonl s1.jsonl 2>/dev/null || fail "shards of one run refused"
[ "$(wc -l <all.jsonl)" -eq 4 ] || fail "merged $(wc -l <all.jsonl) records"
echo "ok"
