#!/usr/bin/env bash
# Ingest throughput: MB/s and files/s of the walk over a tree (default
# ../shared/corpus), split into stages:
#   detect   docket ls --fast   (walk + read + sha256 + libmagic)
#   extract  docket ls          (+ text extraction)
#   chunk    docket chunk       (+ chunking with the estimate + JSONL output)
# Usage: bench/ingest.sh [DOCKET] [TREE] [RUNS]   (best of RUNS, default 3)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${1:-$here/build/docket}
TREE=${2:-$here/../shared/corpus}
RUNS=${3:-3}
[ -x "$DOCKET" ] || { echo "no docket binary at $DOCKET (pass it as the first argument)" >&2; exit 1; }
[ -d "$TREE" ] || { echo "no tree at $TREE" >&2; exit 1; }

bytes=$(find -L "$TREE" -type f ! -name '.*' -printf '%s\n' | awk '{s+=$1} END {print s}')
files=$(find -L "$TREE" -type f ! -name '.*' | wc -l)
out=$(mktemp /tmp/docket-bench-ingest-XXXXXX)
trap 'rm -f "$out"' EXIT

best() { # best wall and CPU seconds of RUNS runs of "$@": prints "wall cpu"
	local b="" c=""
	for _ in $(seq "$RUNS"); do
		local r
		r=$( { TIMEFORMAT='%R %U %S'; time "$@" > "$out" 2>/dev/null; } 2>&1 )
		read -r w u s <<< "$r"
		b=$(awk -v w="$w" -v b="$b" 'BEGIN { if (b == "" || w < b) b = w; printf "%.3f", b }')
		c=$(awk -v t="$(awk -v u="$u" -v s="$s" 'BEGIN{print u+s}')" -v c="$c" 'BEGIN { if (c == "" || t < c) c = t; printf "%.3f", c }')
	done
	echo "$b $c"
}

echo "tree: $TREE ($files files, $(awk -v b="$bytes" 'BEGIN{printf "%.1f", b/1e6}') MB on disk), $(nproc) cores, best of $RUNS"
printf '%-8s %8s %8s %9s %9s %9s %s\n' stage wall_s cpu_s MB/s files/s cpuMB/s records
for stage in detect extract chunk; do
	case $stage in
	detect) r=$(best "$DOCKET" ls --json --fast "$TREE") ;;
	extract) r=$(best "$DOCKET" ls --json "$TREE") ;;
	chunk) r=$(best "$DOCKET" chunk -q "$TREE" -o -) ;;
	esac
	read -r t c <<< "$r"
	recs=$(grep -c '"path"' "$out" || true)
	[ "$stage" = chunk ] && recs=$(grep -c '"type":"document"' "$out" || true)
	# MB/s and files/s by wall clock; cpuMB/s by CPU time (stable on a loaded machine)
	printf '%-8s %8s %8s %9.1f %9.0f %9.1f %s\n' "$stage" "$t" "$c" "$(awk -v b="$bytes" -v t="$t" 'BEGIN{print b/1e6/t}')" \
		"$(awk -v f="$files" -v t="$t" 'BEGIN{print f/t}')" "$(awk -v b="$bytes" -v t="$c" 'BEGIN{print b/1e6/t}')" "$recs"
done
