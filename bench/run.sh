#!/usr/bin/env bash
# Documents per second for each shipped pipeline, on N documents from
# ../shared/corpus with the default model (or $MODEL), in three modes:
#   batched   - the default: many sequences in flight, prefix cache on
#   nocache   - batched, prefix cache off (--no-prefix-cache)
#   serial    - one sequence at a time, no batching (--one-at-a-time)
# usage: bench/run.sh [N] [PIPELINE...]      (N default 200; env MODEL, THREADS, SHARED,
#        MODES="batched nocache serial")
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
SHARED=${SHARED:-$ROOT/../shared}
N=${1:-200}
shift || true
PIPES=("$@")
[ ${#PIPES[@]} -gt 0 ] || PIPES=(summarize-records classify-news extract-fields)
MODEL_ARGS=()
[ -n "${MODEL:-}" ] && MODEL_ARGS=(-m "$MODEL")
THREAD_ARGS=()
[ -n "${THREADS:-}" ] && THREAD_ARGS=(-t "$THREADS")
T=$(mktemp -d /tmp/docket-bench-XXXXXX)
trap 'rm -rf "$T"' EXIT

inputs() {
	case "$1" in
	summarize-records) ls "$SHARED"/corpus/mtsamples/docs/* | sort | sed -n "1,${N}p" ;;
	classify-news)
		# round-robin over the five topics
		for i in $(seq -f '%03g' 1 349); do
			for t in business entertainment politics sport tech; do
				f="$SHARED/corpus/bbc_news/bbc/$t/$i.txt"
				[ -f "$f" ] && echo "$f"
			done
		done | sed -n "1,${N}p" ;;
	extract-fields) ls "$SHARED"/corpus/sroie_receipts/text/*.txt | sort | sed -n "1,${N}p" ;;
	esac
}

printf '%-18s %-8s %6s %9s %10s %8s %9s\n' pipeline mode docs wall_s docs_per_s cache tok_per_s
for p in "${PIPES[@]}"; do
	inputs "$p" >"$T/list"
	for mode in ${MODES:-batched nocache serial}; do
		extra=()
		case $mode in
		nocache) extra=(--no-prefix-cache) ;;
		serial) extra=(--one-at-a-time) ;;
		esac
		pl=$p
		[ "$p" = classify-news ] && pl=$ROOT/examples/pipelines/classify-news.json
		"$DOCKET" run "$pl" - -o "$T/$p.$mode.jsonl" --report "$T/r.json" --progress none \
			"${MODEL_ARGS[@]}" "${THREAD_ARGS[@]}" "${extra[@]}" <"$T/list" 2>/dev/null || true
		python3 - "$T/r.json" "$p" "$mode" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:<18} {sys.argv[3]:<8} {r['documents']:>6} {r['wall_s']:>9.1f} {r['docs_per_s']:>10.3f} "
      f"{100 * r['cache_hit_rate']:>7.0f}% {r['tokens_per_s']:>9.0f}")
PY
	done
done
