#!/usr/bin/env bash
# kill -9 at >= 20 random moments during `docket run`, --resume each time;
# the final output must hold exactly the records of an uninterrupted run
# (none lost, none duplicated; compared ignoring timing fields).  Then a
# SIGTERM run: exit 143, a resume hint, and a resumable output.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
T=$(mktemp -d /tmp/docket-kill9-XXXXXX)
trap 'rm -rf "$T"' EXIT
python3 "$H/mkcorpus.py" "$T/in" 24 7
cat > "$T/p.json" <<JSON
{"name": "kill-test", "task": "summarize",
 "chunking": {"max_tokens": 40, "overlap_tokens": 4},
 "prompts": {"system": "$DK_SOURCE_DIR/prompts/summarize-system.txt",
             "user": "$DK_SOURCE_DIR/prompts/summarize-map.txt",
             "reduce": "$DK_SOURCE_DIR/prompts/summarize-reduce.txt"},
 "generation": {"max_tokens": 10, "reduce_max_tokens": 10}}
JSON
ARGS=(run "$T/p.json" "$T/in" -m "$MODEL" -t 1 --progress none)
run() { "$DK_DOCKET" "${ARGS[@]}" "$@"; }

start=$(date +%s%N)
run -o "$T/ref.jsonl" --seqs 1 2>"$T/ref.err"
ref_ms=$(( ($(date +%s%N) - start) / 1000000 ))
python3 "$H/records.py" check "$T/ref.jsonl" --min 26 >/dev/null
echo "uninterrupted run: $ref_ms ms, $(wc -l <"$T/ref.jsonl") records"

# kill points spread over the run; each attempt resumes the previous one
max_ms=$(( ref_ms / 4 > 60 ? ref_ms / 4 : 60 ))
kills=0 attempts=0
while [ "$kills" -lt 20 ]; do
	attempts=$((attempts + 1))
	[ "$attempts" -le 400 ] || { echo "FAIL: could not kill 20 times"; exit 1; }
	"$DK_DOCKET" "${ARGS[@]}" -o "$T/out.jsonl" --resume --seqs 5 2>>"$T/kill.err" &
	pid=$!
	ms=$(( RANDOM % max_ms + 5 ))
	sleep "$(printf '%d.%03d' $((ms / 1000)) $((ms % 1000)))"
	if kill -9 "$pid" 2>/dev/null; then
		wait "$pid" 2>/dev/null || true
		kills=$((kills + 1))
	else
		wait "$pid" || { echo "FAIL: run exited with $?"; tail -5 "$T/kill.err"; exit 1; }
		# it finished: start over so that every kill lands in a live run
		if [ "$kills" -lt 20 ]; then
			python3 "$H/records.py" compare "$T/ref.jsonl" "$T/out.jsonl" >/dev/null ||
				{ echo "FAIL: finished run differs"; python3 "$H/records.py" compare "$T/ref.jsonl" "$T/out.jsonl"; exit 1; }
			rm -f "$T/out.jsonl" "$T/out.jsonl.ckpt"
		fi
	fi
done
echo "killed $kills times in $attempts attempts; lines now: $(wc -l <"$T/out.jsonl" 2>/dev/null || echo 0)"
run -o "$T/out.jsonl" --resume --seqs 5 2>"$T/final.err"
python3 "$H/records.py" compare "$T/ref.jsonl" "$T/out.jsonl"

# SIGTERM: stops cleanly with 143 and a resume hint; the resume completes it
rm -f "$T/term.jsonl" "$T/term.jsonl.ckpt"
"$DK_DOCKET" "${ARGS[@]}" -o "$T/term.jsonl" --seqs 4 2>"$T/term.err" &
pid=$!
sleep "$(awk -v m="$ref_ms" 'BEGIN { printf "%.3f", m / 3000 }')"
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
cat "$T/term.err"
if [ "$rc" -eq 143 ]; then
	grep -q -- "--resume" "$T/term.err" || { echo "FAIL: no resume hint"; exit 1; }
	# the output ends with a complete line
	[ ! -s "$T/term.jsonl" ] || [ "$(tail -c1 "$T/term.jsonl" | od -An -c | tr -d ' ')" = '\n' ] ||
		{ echo "FAIL: torn line after SIGTERM"; exit 1; }
elif [ "$rc" -ne 0 ]; then
	echo "FAIL: SIGTERM exit status $rc"; exit 1
fi
run -o "$T/term.jsonl" --resume --seqs 4 2>/dev/null
python3 "$H/records.py" compare "$T/ref.jsonl" "$T/term.jsonl"
echo "PASS"
