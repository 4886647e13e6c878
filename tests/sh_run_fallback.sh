#!/usr/bin/env bash
# `docket run` with fallback routing against tests/helpers/fake_openai.py on
# loopback: the PHI gate (nothing sent for a sensitive pipeline), redaction
# of planted identifiers, the API key kept out of every output, over_context
# routing only the chunks that do not fit, and kill -9 during a remote call
# followed by --resume.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
NOTES="$DK_SHARED/corpus/mtsamples/docs"
H="$DK_SOURCE_DIR/tests/helpers"
REC="python3 $H/records.py"
T=$(mktemp -d /tmp/docket-fb-XXXXXX)
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
nreq() { wc -l <"$T/req.log" | tr -d ' '; }
R() { "$DK_DOCKET" run "$@" -m "$MODEL" -t 1 --progress none --max-tokens 8 \
	--fallback-url "$URL" --fallback-model fm; }

# documents: real notes with planted identifiers
mkdir in
SURNAMES=(x Zabrowski Quillfeather Marchetti Okonkwo Lindqvist Haverbrook)
i=0
for f in $(ls "$NOTES" | sed -n 1,6p); do
	i=$((i + 1))
	{
		echo "Patient: Quentin ${SURNAMES[$i]}"
		echo "Date of visit: 03/14/2019"
		echo "Phone: (555) 867-530$i"
		echo "SSN: 123-45-678$i"
		echo "MRN: 99817264$i"
		echo "Email: qzab$i@example.org"
		echo
		head -c 600 "$NOTES/$f"
	} >"in/note$i.txt"
done
PLANTED="${SURNAMES[*]:1} Quentin 03/14/2019 867-530 123-45-678 99817264 qzab"

echo "== sensitive pipeline, no --allow-sensitive: nothing leaves"
rc=0
R summarize-records in -o refused.jsonl --fallback-when always 2>refused.err || rc=$?
[ "$rc" -eq 2 ] || { cat refused.err; fail "refused run exited $rc, expected 2"; }
[ "$(nreq)" -eq 0 ] || fail "a sensitive pipeline sent $(nreq) requests"
$REC check refused.jsonl --min 6 --task summarize
$REC field refused.jsonl 'r["status"] + " " + r["route"] + " " + r.get("error", "")' >refused.txt
[ "$(grep -c '^error local fallback refused: sensitive' refused.txt)" -eq 6 ] ||
	{ cat refused.txt; fail "refused records do not say why"; }
[ ! -e refused.jsonl.audit.jsonl ] || [ ! -s refused.jsonl.audit.jsonl ] || fail "audit lines without requests"

echo "== --allow-sensitive --redact: planted identifiers never sent; key kept secret"
export DK_TEST_FB_KEY="sk-docket-test-7c1e9a44b2f0d85e"
R summarize-records in -o red.jsonl --fallback-when always --allow-sensitive --redact \
	--fallback-key-env DK_TEST_FB_KEY 2>red.err || { cat red.err; fail "redacted run failed"; }
$REC check red.jsonl --min 6 --task summarize --status ok
[ "$($REC field red.jsonl 'r["route"]' | sort -u)" = fallback ] || fail "route is not fallback"
$REC field red.jsonl 'r["fallback"]["host"] + " " + r["fallback"]["model"]' | sort -u |
	grep -qx "127.0.0.1:$(cat "$T/port") fm-served" || fail "fallback host/model"
$REC field red.jsonl 'r["usage"]["prompt_tokens"] > 0' | sort -u | grep -qx True || fail "usage from the response"
n=$(nreq)
[ "$n" -ge 6 ] || fail "only $n requests"
for s in $PLANTED; do
	! grep -qF "$s" req.log || fail "'$s' was sent to the endpoint"
done
grep -qF '[NAME_1]' req.log || fail "no placeholder in the requests"
# answers are restored locally: the echoed name comes back in the output
grep -qF Zabrowski red.jsonl || fail "placeholders not restored in the output"
[ "$(wc -l <red.jsonl.audit.jsonl)" -eq "$n" ] || fail "audit lines != requests ($n)"
python3 - "$DK_TEST_FB_KEY" <<'PY'
import json, sys
key = sys.argv[1]
for l in open("red.jsonl.audit.jsonl"):
    a = json.loads(l)
    assert len(a["sha256"]) == 64 and a["outcome"] == "ok" and a["redacted"], a
    assert "body" not in a and "messages" not in l and "Zabrowski" not in l, a
auth = {json.loads(l)["auth"] for l in open("req.log")}
assert auth == {"Bearer " + key}, auth
PY
for f in red.jsonl red.jsonl.audit.jsonl red.err; do
	! grep -qF "$DK_TEST_FB_KEY" "$f" || fail "the API key appears in $f"
done
# --no-fallback: the same run stays local and sends nothing
control '{"reset_log": true}'
R summarize-records in -o nofb.jsonl --fallback-when always --allow-sensitive --no-fallback 2>/dev/null
[ "$(nreq)" -eq 0 ] || fail "--no-fallback sent requests"
[ "$($REC field nofb.jsonl 'r["route"]' | sort -u)" = local ] || fail "--no-fallback route"

echo "== over_context routes exactly the chunks that do not fit"
mkdir oc
echo "Short note." >oc/a.txt
echo "Another short one." >oc/b.txt
head -c 1500 "$NOTES/$(ls "$NOTES" | sed -n 1p)" >oc/long.txt
echo "{{text}}" >p.txt
cat >oc.json <<JSON
{"name": "oc", "task": "generate", "chunking": {"max_tokens": 120, "overlap_tokens": 0},
 "prompts": {"user": "p.txt"}, "output": "per_chunk", "generation": {"max_tokens": 8},
 "sensitive": false}
JSON
control '{"reset_log": true}'
R oc.json oc -o oc.jsonl --ctx 64 --fallback-when over_context 2>oc.err || { cat oc.err; fail "over_context run"; }
$REC check oc.jsonl --per-chunk --min 4 --status ok
python3 - "$(nreq)" <<'PY'
import json, sys
recs = [json.loads(l) for l in open("oc.jsonl")]
fb = [r for r in recs if r["route"] == "fallback"]
loc = [r for r in recs if r["route"] == "local"]
assert fb and loc, [(r["route"], r["chunk"]["tokens"]) for r in recs]
# prompt = chunk + a few template tokens, plus 8 to generate, in 64
assert all(r["chunk"]["tokens"] + 8 > 56 for r in fb), [r["chunk"] for r in fb]
assert all(r["chunk"]["tokens"] + 8 <= 64 for r in loc), [r["chunk"] for r in loc]
assert {r["source"]["path"].split("/")[-1] for r in loc} >= {"a.txt", "b.txt"}
assert all(r["fallback"]["model"] == "fm-served" for r in fb)
assert int(sys.argv[1]) == len(fb), (sys.argv[1], len(fb))
PY
# the policy from the pipeline's own fallback block, no flags
cat >ocb.json <<JSON
{"name": "ocb", "task": "generate", "chunking": {"max_tokens": 120, "overlap_tokens": 0},
 "prompts": {"user": "p.txt"}, "output": "per_chunk", "generation": {"max_tokens": 8},
 "sensitive": true, "fallback": {"url": "$URL", "model": "fb-model", "when": ["over_context"],
 "allow_sensitive": true, "redact": true, "max_retries": 0, "timeout_ms": 20000}}
JSON
"$DK_DOCKET" run ocb.json oc -o ocb.jsonl -m "$MODEL" -t 1 --progress none --max-tokens 8 --ctx 64 \
	--audit ocb.audit 2>ocb.err || { cat ocb.err; fail "pipeline fallback block"; }
[ "$($REC field ocb.jsonl 'r["route"]' | grep -c fallback)" -eq "$($REC field oc.jsonl 'r["route"]' | grep -c fallback)" ] ||
	fail "pipeline block routed differently from the flags"
$REC field ocb.jsonl 'r.get("fallback", {}).get("model", "-")' | grep -qx fb-model-served || fail "block model"
[ -s ocb.audit ] && [ ! -e ocb.jsonl.audit.jsonl ] || fail "--audit FILE not used"
# a typo in a privacy setting is a load error
sed 's/"allow_sensitive"/"allow_sensitiv"/' ocb.json >typo.json
! "$DK_DOCKET" run typo.json oc -o typo.jsonl -m "$MODEL" 2>typo.err || fail "typo accepted"
grep -q allow_sensitiv typo.err || { cat typo.err; fail "typo not named"; }
# the same with a sensitive pipeline: the long chunks stay errors that say why
sed 's/"sensitive": false/"sensitive": true/' oc.json >ocs.json
control '{"reset_log": true}'
R ocs.json oc -o ocs.jsonl --ctx 64 --fallback-when over_context 2>/dev/null || true
[ "$(nreq)" -eq 0 ] || fail "sensitive over_context sent requests"
$REC field ocs.jsonl 'r.get("error", "")' | grep -q '^too-long: .*(fallback refused: sensitive' ||
	fail "too-long refusal reason"

echo "== kill -9 during a remote call, then --resume (one call at a time)"
cat >g.json <<JSON
{"name": "g", "task": "generate", "chunking": {"max_tokens": 2000, "overlap_tokens": 0},
 "prompts": {"user": "p.txt"}, "generation": {"max_tokens": 8}}
JSON
FB=(--fallback-when always --allow-sensitive)
R g.json in -o ref.jsonl "${FB[@]}" 2>/dev/null
$REC check ref.jsonl --min 6 --status ok
control '{"reset_log": true}'
control '{"modes": ["slow:0.6", "slow:0.6", "slow:0.6", "slow:0.6", "slow:0.6", "slow:0.6"]}'
# docket itself in the background (not a function's subshell) so kill -9 hits it
"$DK_DOCKET" run g.json in -o k.jsonl "${FB[@]}" -m "$MODEL" -t 1 --progress none --max-tokens 8 \
	--fallback-url "$URL" --fallback-model fm --fallback-concurrency 1 2>/dev/null &
pid=$!
for _ in $(seq 100); do [ -s k.jsonl ] && [ "$(wc -l <k.jsonl)" -ge 2 ] && break; sleep 0.05; done
sleep 0.3 # inside the next call
kill -9 "$pid" 2>/dev/null || true
wait "$pid" 2>/dev/null || true
got=$(wc -l <k.jsonl)
[ "$got" -ge 1 ] && [ "$got" -lt 6 ] || fail "kill landed after $got records"
sent=$(nreq)
control '{"modes": []}'
R g.json in -o k.jsonl "${FB[@]}" --resume 2>resume.err || { cat resume.err; fail "resume"; }
$REC compare ref.jsonl k.jsonl
# when the kill landed inside a call (the usual case), that chunk was asked again
if [ "$sent" -gt "$got" ]; then
	[ "$(nreq)" -eq $((6 + sent - got)) ] || fail "resume sent $(nreq) requests in all"
else
	echo "note: the kill landed between calls"
fi
[ "$($REC field k.jsonl 'r["id"]' | sort | uniq -d | wc -l)" -eq 0 ] || fail "duplicate records"

echo "== the routing settings are part of the configuration: no resume across them"
rc=0
R g.json in -o k.jsonl --resume --no-fallback 2>mix.err || rc=$?
[ "$rc" -eq 1 ] && grep -q "configuration" mix.err || { cat mix.err; fail "resume without the fallback: rc $rc"; }
rc=0
R g.json in -o k.jsonl --resume --fallback-when always 2>mix.err || rc=$?
[ "$rc" -eq 1 ] || { cat mix.err; fail "resume without --allow-sensitive: rc $rc"; }
echo "ok"
