#!/usr/bin/env bash
# End-to-end `docket run` / `batch` / `merge` on stories260K.gguf: the three
# shipped pipelines by name from another directory, record fields, output
# formats, incremental runs, shards + merge, refusals, repair of a torn or
# corrupt output, locking, exit codes, reports.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
REC="python3 $H/records.py"
T=$(mktemp -d /tmp/docket-e2e-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"   # shipped pipelines must be found from any directory
python3 "$H/mkcorpus.py" in 6 3
D() { "$DK_DOCKET" "$@"; }
R() { D run "$@" -m "$MODEL" -t 1 --progress none --max-tokens 8; }
fail() { echo "FAIL: $*"; exit 1; }
expect_rc() { local want=$1; shift; local rc=0; "$@" 2>"$T/last.err" || rc=$?; [ "$rc" -eq "$want" ] || { cat "$T/last.err"; fail "'$*' exited $rc, expected $want"; }; }

echo "== shipped pipelines"
R summarize-records in -o sum.jsonl 2>/dev/null
$REC check sum.jsonl --min 7 --task summarize
[ "$($REC field sum.jsonl 'r["status"]' | sort | uniq -c | tr -s ' ')" = " 6 ok
 2 skipped" ] || fail "summarize statuses"
# the pipeline's globs leave out blob.bin: a record says so, nothing is dropped
[ "$($REC field sum.jsonl 'r.get("skip_reason")' | sort | uniq -c | tr -s ' ')" = " 6 None
 1 empty
 1 excluded" ] || fail "summarize skip reasons"
$REC field sum.jsonl 'r.get("skip_reason")' | grep -q empty || fail "empty file not skipped as empty"
$REC field sum.jsonl 'r["pipeline"]["name"]' | grep -qx summarize-records || fail "pipeline name"
R classify-files in -o cls.jsonl --report rep.json 2>/dev/null
$REC check cls.jsonl --min 6 --task classify
python3 - <<'PY'
import json
r = json.load(open("rep.json"))
assert r["ok"] >= 6 and r["error"] == 0 and r["wall_s"] > 0, r
assert 0 <= r["cache_hit_rate"] <= 1 and r["tokens"]["prompt"] > 0, r
kv = r["kv_cache"]
# the engine counts what the records count: prompt tokens served and computed
assert kv["hit_tokens"] == r["tokens"]["cached"] and kv["hit_tokens"] > 0, r
assert kv["hit_tokens"] + kv["miss_tokens"] == r["tokens"]["prompt"], r
assert kv["evictions"] >= 0 and kv["blocks"] > 0, r
PY
R extract-fields in -o ext.jsonl 2>/dev/null
$REC check ext.jsonl --min 6 --task extract
$REC field ext.jsonl 'sorted(r["output"]) if r["status"] == "ok" else "-"' | grep -q "\['address', 'company', 'date', 'total'\]" || fail "extract fields"
# total's schema is number or null, and stories260K answers null for all six
# (the grep -v ... || true here before could not fail)
totals=$($REC field ext.jsonl 'repr(r["output"]["total"]) if r["status"] == "ok" else "-"' | sort | uniq -c | tr -s ' ')
[ "$totals" = " 2 -
 6 None" ] || fail "extract totals: $totals" # the two are empty.txt and the excluded blob.bin

echo "== per-chunk output and openai-batch format"
cat > pc.json <<JSON
{"name": "pc", "task": "generate", "chunking": {"max_tokens": 24, "overlap_tokens": 0},
 "prompts": {"user": "$DK_SOURCE_DIR/prompts/summarize-map.txt"}, "output": "per_chunk",
 "generation": {"max_tokens": 6}}
JSON
R pc.json in -o pc.jsonl 2>/dev/null
$REC check pc.jsonl --per-chunk --min 8
python3 - <<'PY'
import json
recs = [json.loads(l) for l in open("pc.jsonl")]
multi = [r for r in recs if r.get("chunk") and r["chunk"]["count"] > 1]
assert multi, "no multi-chunk document"
ids = {r["id"] for r in recs}
assert len(ids) == len(recs)
PY
R pc.json in -o oa.jsonl --format openai-batch 2>/dev/null
python3 - <<'PY'
import json
for l in open("oa.jsonl"):
    r = json.loads(l)
    assert r["id"].startswith("batch_req_") and r["custom_id"], r
    if r["response"]:
        b = r["response"]["body"]
        assert r["response"]["status_code"] == 200 and b["object"] == "chat.completion"
        assert isinstance(b["choices"][0]["message"]["content"], str)
        assert b["usage"]["total_tokens"] == b["usage"]["prompt_tokens"] + b["usage"]["completion_tokens"]
    else:
        assert r["error"]["message"]
PY

echo "== docket batch"
cat > req.jsonl <<'JSON'
{"custom_id": "a", "method": "POST", "url": "/v1/chat/completions", "body": {"model": "x", "messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 6}}
{"custom_id": "b", "method": "POST", "url": "/v1/chat/completions", "body": {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "The cat"}]}], "max_completion_tokens": 4, "temperature": 0}}
{"custom_id": "c", "method": "POST", "url": "/v1/embeddings", "body": {"input": "x"}}
not json
JSON
expect_rc 2 D batch req.jsonl -o bo.jsonl -m "$MODEL" -t 1 --progress none
python3 - <<'PY'
import json
rs = {}
for l in open("bo.jsonl"):
    r = json.loads(l); rs[r["custom_id"]] = r
assert set(rs) == {"a", "b", "c", "line 4"}, rs.keys()
a = rs["a"]["response"]
assert a["status_code"] == 200 and a["body"]["model"] == "x" and a["body"]["usage"]["completion_tokens"] <= 6
assert rs["b"]["response"]["body"]["usage"]["completion_tokens"] <= 4
assert rs["c"]["response"]["status_code"] == 400 and "not supported" in rs["c"]["error"]["message"]
assert rs["line 4"]["error"]
PY
# batch resume skips what is done
expect_rc 0 D batch req.jsonl -o bo.jsonl --resume -m "$MODEL" -t 1 --progress none
[ "$(wc -l <bo.jsonl)" -eq 4 ] || fail "batch resume duplicated lines"

echo "== incremental"
cp -r in inc
R summarize-records inc -o inc.jsonl 2>/dev/null
n0=$(wc -l <inc.jsonl)
echo "A brand new file about a dog and a ball." >inc/new.txt
echo "Changed text: the girl saw a bird." >inc/g0/doc000.txt
R summarize-records inc -o inc.jsonl --incremental 2>inc.err
n1=$(wc -l <inc.jsonl)
[ "$n1" -eq $((n0 + 2)) ] || { cat inc.err; fail "incremental added $((n1 - n0)) records, expected 2"; }
grep -q "unchanged" inc.err || fail "no unchanged count"
R summarize-records inc -o inc.jsonl --incremental 2>/dev/null
[ "$(wc -l <inc.jsonl)" -eq "$n1" ] || fail "second incremental run added records"

echo "== shards and merge"
for k in 0 1 2; do R summarize-records in -o s$k.jsonl --shard $k/3 2>/dev/null; done
D merge all.jsonl s0.jsonl s1.jsonl s2.jsonl 2>/dev/null
$REC compare sum.jsonl all.jsonl
cat s0.jsonl s1.jsonl s2.jsonl | python3 -c "import sys,json; ids=[json.loads(l)['id'] for l in sys.stdin]; assert len(ids)==len(set(ids)), 'shards overlap'"
expect_rc 1 R summarize-records in -o bad.jsonl --shard 3/3
expect_rc 1 D merge all.jsonl s0.jsonl

echo "== refusals"
expect_rc 1 R summarize-records in -o sum.jsonl               # exists
grep -q -- "--resume" last.err || fail "exists message"
expect_rc 1 R summarize-records in -o sum.jsonl --resume --temperature 0.5 # config mismatch
grep -q "different configuration" last.err || fail "mismatch message"
expect_rc 1 R summarize-records in -o sum.jsonl --resume --no-deterministic # records may differ
grep -q "different configuration" last.err || fail "deterministic mismatch message"
R summarize-records in -o sum.jsonl --resume --deterministic 2>last.err # same config: nothing to do
grep -q "8 already done" last.err || { cat last.err; fail "resume did not skip"; }
expect_rc 1 R no-such-pipeline in -o x.jsonl
printf '{"name": "b", "task": "summarize",\n "prompts": {"user": "u.txt"},\n "generation": {"temperature": "hot"}}\n' >b.json
echo 'Hi {{text}} {{nope}}' >u.txt
expect_rc 1 R b.json in -o x.jsonl
grep -q "u.txt:1: unknown placeholder '{{nope}}'" last.err || { cat last.err; fail "placeholder message"; }
echo '{{text}}' >u.txt
expect_rc 1 R b.json in -o x.jsonl
grep -q "b.json:3: generation.temperature: expected a number" last.err || { cat last.err; fail "field message"; }

echo "== torn and corrupt output"
cp sum.jsonl torn.jsonl; cp sum.jsonl.ckpt torn.jsonl.ckpt
head -c -40 sum.jsonl >torn.jsonl                         # torn last line
R summarize-records in -o torn.jsonl --resume 2>last.err
grep -q "torn" last.err || fail "torn line not reported"
$REC compare sum.jsonl torn.jsonl
{ head -n 2 sum.jsonl; echo '{"id": broken'; sed -n 2p sum.jsonl; tail -n +3 sum.jsonl | sed -n 1,2p; } >cor.jsonl
cp sum.jsonl.ckpt cor.jsonl.ckpt
R summarize-records in -o cor.jsonl --resume 2>last.err
grep -q "dropped 1 unreadable and 1 repeated" last.err || { cat last.err; fail "corrupt lines not reported"; }
$REC compare sum.jsonl cor.jsonl

echo "== lock"
python3 - "$T/sum.jsonl" <<'PY' &
import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[1] + ".locked", "w").close(); time.sleep(20)
PY
lp=$!
for _ in $(seq 100); do [ -e sum.jsonl.locked ] && break; sleep 0.1; done
expect_rc 3 R summarize-records in -o sum.jsonl --resume
grep -q "locked" last.err || fail "lock message"
kill $lp; wait $lp 2>/dev/null || true

echo "== exit codes"
expect_rc 2 R summarize-records in -o tl.jsonl --ctx 64    # every prompt too long: error records
$REC field tl.jsonl 'r.get("error", "")' | grep -q "too-long" || fail "too-long error"
expect_rc 2 R summarize-records in -o mf.jsonl --ctx 64 --max-failures 1
[ "$($REC field mf.jsonl 'r["status"]' | grep -c error)" -le 2 ] || fail "max-failures did not stop"
label=$($REC field cls.jsonl 'r["output"]' | grep -v None | sed -n 1p)
expect_rc 2 R classify-files in -o fo.jsonl --fail-on "$label"
expect_rc 1 R classify-files in -o fo2.jsonl --fail-on nolabel
echo PASS
