#!/usr/bin/env bash
# Routing as a concurrent stage, against tests/helpers/fake_openai.py on
# loopback with a server that takes 1 s per answer:
#   - 32 documents routed remotely with --fallback-concurrency 8: the server
#     sees at least 6 requests at once, and every document gets one record;
#   - local decoding does not wait on the network: with slow remote chunks
#     in flight, the local chunks' records are written first;
#   - kill -9 while 8 calls are in flight, then --resume: no record lost,
#     none duplicated, and only the unanswered documents are asked again;
#   - invalid_output re-asks a document once, through the same stage.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
REC="python3 $H/records.py"
T=$(mktemp -d /tmp/docket-fbc-XXXXXX)
SRV=""
cleanup() {
	if [ -n "$SRV" ]; then kill "$SRV" 2>/dev/null || true; wait "$SRV" 2>/dev/null || true; fi
	rm -rf "$T"
}
trap cleanup EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }

python3 "$H/fake_openai.py" --port 0 --portfile "$T/port" --log "$T/req.log" 2>"$T/server.err" &
SRV=$!
for _ in $(seq 100); do [ -s "$T/port" ] && break; sleep 0.1; done
[ -s "$T/port" ] || fail "fake server did not start"
URL="http://127.0.0.1:$(cat "$T/port")/v1"
control() { curl -s -X POST --data "$1" "${URL%/v1}/control" >/dev/null; }
stat_of() { curl -s "${URL%/v1}/stats" | python3 -c "import json,sys; print(json.load(sys.stdin)['$1'])"; }
nreq() { wc -l <"$T/req.log" | tr -d ' '; }
slow_modes() { # slow_modes N: N answers of 1 s each
	python3 -c "import json; print(json.dumps({'modes': ['slow:1'] * $1}))"
}

mkdir in
for i in $(seq -w 1 32); do echo "Document number $i says hello." >"in/d$i.txt"; done
echo "{{text}}" >p.txt
cat >g.json <<JSON
{"name": "g", "task": "generate", "chunking": {"max_tokens": 2000, "overlap_tokens": 0},
 "prompts": {"user": "p.txt"}, "generation": {"max_tokens": 8}, "sensitive": false}
JSON
RUN=("$DK_DOCKET" run g.json in -m "$MODEL" -t 1 --progress none --max-tokens 8
	--fallback-url "$URL" --fallback-model fm --fallback-when always)

echo "== 32 documents, 1 s each, 8 in flight"
control '{"reset_log": true}'
control "$(slow_modes 32)"
t0=$(date +%s.%N)
"${RUN[@]}" -o c8.jsonl --fallback-concurrency 8 --report c8.report.json 2>c8.err ||
	{ cat c8.err; fail "concurrent run"; }
t1=$(date +%s.%N)
$REC check c8.jsonl --min 32 --status ok
[ "$(wc -l <c8.jsonl)" -eq 32 ] || fail "$(wc -l <c8.jsonl) records for 32 documents"
[ "$($REC field c8.jsonl 'r["route"]' | sort -u)" = fallback ] || fail "a record not routed"
[ "$(nreq)" -eq 32 ] || fail "$(nreq) requests for 32 documents"
peak=$(stat_of max_inflight)
[ "$peak" -ge 6 ] || fail "the server saw at most $peak requests at once (want >= 6)"
echo "32 documents in $(python3 -c "print(round($t1 - $t0, 1))") s; server peak $peak in flight"

echo "== --fallback-concurrency 1 is one at a time"
control '{"reset_log": true}'
control "$(slow_modes 3)"
mkdir in3
cp in/d01.txt in/d02.txt in/d03.txt in3/
"$DK_DOCKET" run g.json in3 -o c1.jsonl -m "$MODEL" -t 1 --progress none --max-tokens 8 \
	--fallback-url "$URL" --fallback-model fm --fallback-when always --fallback-concurrency 1 \
	2>c1.err || { cat c1.err; fail "serial run"; }
[ "$(stat_of max_inflight)" -eq 1 ] || fail "concurrency 1 had $(stat_of max_inflight) in flight"
rc=0
"$DK_DOCKET" run g.json in3 -o bad.jsonl -m "$MODEL" --fallback-url "$URL" --fallback-model fm \
	--fallback-when always --fallback-concurrency 0 2>bad.err || rc=$?
[ "$rc" -eq 1 ] && grep -q "fallback-concurrency" bad.err || { cat bad.err; fail "concurrency 0: rc $rc"; }

echo "== local chunks are not held up by remote ones"
# long documents go remote (over_context) slowly; short ones decode locally meanwhile
mkdir mix
for i in 1 2 3 4; do head -c 1500 /dev/zero | tr '\0' 'a' | sed 's/aaaa/word /g' >"mix/long$i.txt"; done
for i in 1 2 3 4 5 6; do echo "Short note $i." >"mix/short$i.txt"; done
cat >oc.json <<JSON
{"name": "oc", "task": "generate", "chunking": {"max_tokens": 2000, "overlap_tokens": 0},
 "prompts": {"user": "p.txt"}, "generation": {"max_tokens": 8}, "sensitive": false}
JSON
control '{"reset_log": true}'
control "$(python3 -c "import json; print(json.dumps({'modes': ['slow:2'] * 4}))")"
"$DK_DOCKET" run oc.json mix -o mix.jsonl -m "$MODEL" -t 1 --progress none --ctx 64 \
	--fallback-url "$URL" --fallback-model fm --fallback-when over_context 2>mix.err ||
	{ cat mix.err; fail "mixed run"; }
$REC check mix.jsonl --min 10 --status ok
python3 - <<'PY' || fail "local records waited for remote ones"
import json
recs = [json.loads(l) for l in open("mix.jsonl")]
routes = [r["route"] for r in recs]
assert routes.count("fallback") == 4 and routes.count("local") == 6, routes
# every local record is written before the first remote answer is in
first_fb = routes.index("fallback")
assert first_fb == 6, routes
PY

echo "== invalid_output: a failing local answer is asked remotely, once"
control '{"reset_log": true}'
"$DK_DOCKET" run extract-fields in3 -o inv.jsonl -m "$MODEL" -t 1 --progress none --max-tokens 8 \
	--fallback-url "$URL" --fallback-model fm --fallback-when invalid_output --allow-sensitive \
	2>inv.err || { cat inv.err; fail "invalid_output run"; }
$REC check inv.jsonl --min 3
[ "$($REC field inv.jsonl 'r["route"]' | sort -u)" = fallback ] || fail "invalid output not routed"
[ "$(nreq)" -eq 3 ] || fail "$(nreq) requests for 3 invalid answers"

echo "== kill -9 with 8 calls in flight, then --resume"
control '{"reset_log": true}'
control "$(slow_modes 32)"
# docket itself in the background (not a function's subshell) so kill -9 hits it
"${RUN[@]}" -o k.jsonl --fallback-concurrency 8 2>k.err &
pid=$!
for _ in $(seq 200); do [ -s k.jsonl ] && [ "$(wc -l <k.jsonl)" -ge 8 ] && break; sleep 0.05; done
sleep 0.5 # the second wave of 8 is on the wire
inflight_at_kill=$(($(nreq) - $(wc -l <k.jsonl)))
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
got=$(wc -l <k.jsonl)
sent=$(nreq)
[ "$got" -ge 8 ] && [ "$got" -lt 32 ] || fail "kill landed after $got records"
[ "$inflight_at_kill" -ge 6 ] || fail "only $inflight_at_kill calls in flight at the kill"
control '{"modes": []}'
"${RUN[@]}" -o k.jsonl --fallback-concurrency 8 --resume 2>resume.err || { cat resume.err; fail "resume"; }
$REC check k.jsonl --min 32 --status ok # fails on a duplicate id
[ "$(wc -l <k.jsonl)" -eq 32 ] || fail "$(wc -l <k.jsonl) records after resume, want 32"
$REC compare k.jsonl c8.jsonl >/dev/null || fail "resumed records differ from the uninterrupted run"
# the resume asked exactly for the documents without a record
[ "$(($(nreq) - sent))" -eq $((32 - got)) ] ||
	fail "resume sent $(($(nreq) - sent)) requests for $((32 - got)) missing records"
echo "killed with $inflight_at_kill in flight after $got records; resume asked for $((32 - got))"
echo "ok"
