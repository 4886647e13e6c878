#!/usr/bin/env bash
# Structured output on real data with the default model (or $MODEL):
#   1. extract-fields on N SROIE receipts against ground_truth.jsonl, in four
#      ways: fields mode constrained (shipped) / free text, and object mode
#      (one JSON object per receipt) constrained / free text. Prints validity
#      and field accuracy (exact and normalised) for each.
#   2. examples/pipelines/classify-news.json on N BBC articles (round-robin over the five topics):
#      accuracy and calibration of the per-label probabilities.
# Decode speed with and without a constraint: build/bench/bench_grammar.
# usage: bench/structured.sh [N_RECEIPTS] [N_ARTICLES]   (defaults 100, 200; env MODEL, THREADS, SHARED)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
SHARED=${SHARED:-$ROOT/../shared}
NR=${1:-100}
NB=${2:-200}
ARGS=(--progress none)
[ -n "${MODEL:-}" ] && ARGS+=(-m "$MODEL")
[ -n "${THREADS:-}" ] && ARGS+=(-t "$THREADS")
T=$(mktemp -d /tmp/docket-structured-XXXXXX)
trap 'rm -rf "$T"' EXIT
C="$SHARED/corpus"

ls "$C"/sroie_receipts/text/*.txt | sort | sed -n "1,${NR}p" >"$T/receipts"
# object mode: the shipped pipeline with one generation per receipt
python3 - "$ROOT" "$T" <<'PY'
import json, sys
root, t = sys.argv[1], sys.argv[2]
p = json.load(open(f"{root}/pipelines/extract-fields.json"))
p.pop("$schema", None)
p["name"] = "extract-fields-object"
p["prompts"] = {"system": f"{root}/prompts/extract-system.txt", "user": f"{root}/prompts/extract-object-user.txt"}
p["extract"]["mode"] = "object"
p["generation"] = {"max_tokens": 160, "temperature": 0}
json.dump(p, open(f"{t}/object.json", "w"), indent=1)
PY
echo "== extract: $NR SROIE receipts"
for cfg in "fields constrained:extract-fields:" "fields free-text:extract-fields:--no-constrain" \
	   "object constrained:$T/object.json:" "object free-text:$T/object.json:--no-constrain"; do
	name=${cfg%%:*}; rest=${cfg#*:}; pipe=${rest%%:*}; flag=${rest#*:}
	out="$T/ext.${name// /-}.jsonl"
	s=$(date +%s.%N)
	"$DOCKET" run "$pipe" - -o "$out" "${ARGS[@]}" $flag <"$T/receipts" 2>/dev/null || true
	e=$(date +%s.%N)
	echo "-- $name ($(python3 -c "print(f'{$e - $s:.1f}')") s)"
	python3 "$ROOT/bench/score_extract.py" "$out" "$C/sroie_receipts/ground_truth.jsonl"
done

echo "== classify: $NB BBC articles"
for i in $(seq -f '%03g' 1 400); do
	for t in business entertainment politics sport tech; do
		f="$C/bbc_news/bbc/$t/$i.txt"
		[ -f "$f" ] && echo "$f"
	done
done | sed -n "1,${NB}p" >"$T/articles"
"$DOCKET" run "$ROOT/examples/pipelines/classify-news.json" - -o "$T/cls.jsonl" "${ARGS[@]}" <"$T/articles" 2>/dev/null || true
python3 "$ROOT/bench/score_classify.py" "$T/cls.jsonl"
