#!/usr/bin/env bash
# Unattended runs: with stderr a file, a timestamped progress line every
# --log-interval seconds with done/total; with --metrics, Debian's
# prometheus-node-exporter (started here on loopback, textfile collector on
# the metrics directory) serves docket's series during the run and after,
# with the right values and node_textfile_scrape_error 0.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
MODEL="$DK_SHARED/models/stories260K.gguf"
need "$MODEL" "stories260K (../shared/models)"
NE=$(command -v prometheus-node-exporter || true)
[ -n "$NE" ] || { in_ci && { echo "failed: prometheus-node-exporter missing (scripts/install-deps.sh)" >&2; exit 1; }
	skip "prometheus-node-exporter not installed (scripts/install-deps.sh)"; }
T=$(mktemp -d /tmp/docket-metrics-XXXXXX)
ne_pid=
cleanup() { [ -z "$ne_pid" ] || kill "$ne_pid" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$T"; }
trap cleanup EXIT
cd "$T"
fail() { echo "FAIL: $*"; [ ! -f run.err ] || tail -5 run.err; exit 1; }
python3 "$DK_SOURCE_DIR/tests/helpers/mkcorpus.py" in 60 4
mkdir prom
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$NE" --web.listen-address="127.0.0.1:$port" --collector.disable-defaults --collector.textfile \
	--collector.textfile.directory="$T/prom" >ne.log 2>&1 &
ne_pid=$!
scrape() { python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
	"http://127.0.0.1:$port/metrics"; }
for _ in $(seq 100); do scrape >/dev/null 2>&1 && break; sleep 0.1; done
scrape >/dev/null || { cat ne.log; fail "node_exporter did not answer"; }

cat > pl.json <<'JSON'
{"name": "metrics-test", "task": "generate", "chunking": {"max_tokens": 64, "overlap_tokens": 0},
 "prompts": {"user": "u.txt"}, "generation": {"max_tokens": 48}, "sensitive": false}
JSON
printf 'Once upon a time {{text}}\n' > u.txt
"$DK_DOCKET" run pl.json in -m "$MODEL" -t 1 --seqs 2 --log-interval 1 --metrics prom/docket.prom \
	-o out.jsonl 2>run.err &
pid=$!
during=
for _ in $(seq 300); do
	kill -0 "$pid" 2>/dev/null || break
	m=$(scrape 2>/dev/null || true)
	# node_exporter sorts the labels: match them in any order
	if grep -qE '^docket_run_in_progress\{[^}]*pipeline="metrics-test"[^}]*\} 1$' <<<"$m"; then
		during=$m
		break
	fi
	sleep 0.1
done
wait "$pid" || fail "the run exited $?"
[ -n "$during" ] || fail "node_exporter never served docket's series during the run"
after=$(scrape)
val() { grep "^$1{" <<<"$after" | grep -F -- "$2" | awk '{print $NF}'; }
n_ok=$(grep -c '"status":"ok"' out.jsonl)
n_sk=$(grep -c '"status":"skipped"' out.jsonl)
[ "$(val docket_documents_total 'status="ok"')" = "$n_ok" ] || fail "ok: $(val docket_documents_total 'status="ok"') vs $n_ok"
[ "$(val docket_documents_total 'status="skipped"')" = "$n_sk" ] || fail "skipped count"
[ "$(val docket_documents_total 'status="error"')" = 0 ] || fail "error count"
[ "$(val docket_run_in_progress '')" = 0 ] || fail "still in progress after the end"
[ "$(val docket_run_success '')" = 1 ] || fail "run_success"
ts=$(val docket_run_last_success_timestamp_seconds '')
python3 -c "import sys,time; t=float(sys.argv[1]); assert abs(time.time()-t) < 600" "$ts" || fail "last success '$ts'"
grep -q '^node_textfile_scrape_error 0$' <<<"$after" || fail "textfile scrape error: $(grep scrape_error <<<"$after")"
[ "$(val docket_tokens_total 'kind="completion"')" -gt 0 ] || fail "no completion tokens"

# the log lines: timestamped, at the interval, with the counted total
lines=$(grep -cE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z docket: [0-9]+/[0-9?]+ documents' run.err || true)
[ "$lines" -ge 2 ] || fail "expected progress lines every second, got $lines: $(head -3 run.err)"
grep -qE 'docket: [0-9]+/62 documents \([0-9.]+%\)' run.err || fail "no total of 62 documents in: $(head -3 run.err)"

# a failed run keeps the last success's timestamp and says it failed
"$DK_DOCKET" run pl.json in -m "$MODEL" -t 1 --ctx 64 --max-tokens 48 --metrics prom/docket.prom \
	-o fail.jsonl 2>/dev/null && fail "a run whose prompts do not fit should exit 2"
after=$(scrape)
[ "$(val docket_run_success '')" = 0 ] || fail "run_success after a failed run"
[ "$(val docket_run_last_success_timestamp_seconds '')" = "$ts" ] || fail "the last success was lost"
echo "ok"
