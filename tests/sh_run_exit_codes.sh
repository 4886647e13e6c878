#!/usr/bin/env bash
# Every row of the README's `docket run` exit-code table, and the messages
# that go with them: usage/configuration 1 (nothing written), records in
# error 2, could not run 3, SIGINT 130 and SIGTERM 143 with a resume hint
# whose arguments are quoted for the shell.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
MODEL="$DK_SHARED/models/stories260K.gguf"
need "$MODEL" "stories260K (../shared/models)"
H="$DK_SOURCE_DIR/tests/helpers"
T=$(mktemp -d /tmp/docket-exit-XXXXXX)
trap 'chmod -R u+w "$T"; rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }
R() { "$DK_DOCKET" run -m "$MODEL" -t 1 --progress none --max-tokens 4 "$@"; }
# expect RC MESSAGE CMD...: exit status and a stderr line containing MESSAGE
expect() {
	local want=$1 msg=$2 rc=0
	shift 2
	"$@" 2>"$T/err" || rc=$?
	[ "$rc" -eq "$want" ] || { cat "$T/err"; fail "'$*' exited $rc, expected $want"; }
	[ -z "$msg" ] || grep -qF -- "$msg" "$T/err" || { cat "$T/err"; fail "'$*': no '$msg'"; }
}
python3 "$H/mkcorpus.py" in 4 1
cat > pl.json <<'JSON'
{"name": "exit-test", "task": "generate", "chunking": {"max_tokens": 64, "overlap_tokens": 0},
 "prompts": {"user": "u.txt"}, "generation": {"max_tokens": 4}}
JSON
printf 'Once upon a time {{text}}\n' > u.txt

echo "== 0: every document has a record (skipped ones count)"
expect 0 "" R pl.json in -o ok.jsonl

echo "== 1: usage and configuration, nothing written"
expect 1 "cannot open 'nope': no such file or directory" R pl.json in nope -o x1.jsonl
[ ! -e x1.jsonl ] || fail "a refused run wrote its output"
expect 1 "--seqs: bad value '0'" R pl.json in --seqs 0 -o x2.jsonl
expect 1 "--threads: bad value 'many'" R pl.json in -t many -o x2.jsonl
expect 1 "" R no-such-pipeline in -o x3.jsonl
expect 1 "already exists" R pl.json in -o ok.jsonl
expect 1 "max_tokens 4 -> 2" R pl.json in -o ok.jsonl --resume --max-tokens 2
expect 1 "prefix_cache (unset) -> false" R pl.json in -o ok.jsonl --resume --no-prefix-cache
[ ! -e x2.jsonl ] && [ ! -e x3.jsonl ] || fail "a refused run wrote its output"

echo "== 2: finished, some records in error"
python3 - <<'PY'
# a document whose prompt cannot fit the context is an error record
open("in/huge.txt", "w").write(("word " * 4000) + "\n")
PY
expect 2 "" R pl.json in -o e2.jsonl --ctx 64
grep -q '"status":"error"' e2.jsonl || fail "no error record"
rm in/huge.txt

echo "== 3: could not run"
expect 3 "cannot open model '$T/none.gguf': no such file or directory" \
	"$DK_DOCKET" run pl.json in -m "$T/none.gguf" -o x4.jsonl
[ ! -e x4.jsonl ] || fail "a run without a model wrote its output"
echo "not a model" > bad.gguf
expect 3 "cannot load '$T/bad.gguf': not a GGUF file" "$DK_DOCKET" run pl.json in -m "$T/bad.gguf" -o x5.jsonl
grep -o "cannot load" "$T/err" | wc -l | grep -qx 1 || fail "the model's message is doubled: $(cat "$T/err")"
mkdir ro && chmod 555 ro
if [ "$(id -u)" -ne 0 ]; then
	expect 3 "cannot open 'ro/out.jsonl': permission denied" R pl.json in -o ro/out.jsonl
fi
expect 3 "cannot open '/proc/version/x.jsonl'" R pl.json in -o /proc/version/x.jsonl
python3 - "$T/ok.jsonl" <<'PY' &
import fcntl, sys, time
f = open(sys.argv[1], "a"); fcntl.flock(f, fcntl.LOCK_EX); open(sys.argv[1] + ".locked", "w").close(); time.sleep(20)
PY
lp=$!
for _ in $(seq 100); do [ -e ok.jsonl.locked ] && break; sleep 0.1; done
expect 3 "is locked: another docket run is writing it" R pl.json in -o ok.jsonl --resume
kill $lp; wait $lp 2>/dev/null || true

echo "== 130 / 143: interrupted, flushed, a resume hint quoted for the shell"
python3 "$H/mkcorpus.py" big 60 2
for sig in INT TERM; do
	rm -f sig.jsonl*
	"$DK_DOCKET" run pl.json big --include '*.txt' -m "$MODEL" -t 1 --progress none --max-tokens 48 \
		-o sig.jsonl 2>sig.err &
	pid=$!
	for _ in $(seq 200); do [ -s sig.jsonl ] && break; sleep 0.05; done
	kill -$sig $pid
	rc=0
	wait $pid || rc=$?
	want=$([ $sig = INT ] && echo 130 || echo 143)
	if [ "$rc" -eq 0 ]; then
		echo "note: the run finished before SIG$sig arrived"
		continue
	fi
	[ "$rc" -eq "$want" ] || { cat sig.err; fail "SIG$sig: exit $rc, expected $want"; }
	grep -qF -- "--include '*.txt'" sig.err || { cat sig.err; fail "resume hint not quoted"; }
	# the hint, run as printed, finishes the job
	hint=$(grep -A1 "resume with" sig.err | tail -1)
	eval "${hint/docket/\"$DK_DOCKET\"}" 2>/dev/null || fail "the resume hint failed: $hint"
	python3 "$H/records.py" check sig.jsonl --min 60 >/dev/null || fail "resumed output"
done
echo "ok"
