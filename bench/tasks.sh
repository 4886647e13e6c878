#!/usr/bin/env bash
# Each shipped pipeline over ../shared/corpus, scored, and the same
# documents through llama-server with the same model and the same prompts:
#   classify-news      BBC news (round-robin over the five topics): accuracy,
#                      macro-F1, calibration (ECE, Brier); the example
#                      pipeline examples/pipelines/classify-news.json
#   extract-fields     SROIE receipts: exact and normalised match per field
#                      (bench/score_extract.py, the date truth as YYYY-MM-DD)
#   summarize-records  mtsamples notes of one chunk: share of summaries with
#                      unsupported items, preamble openings, cut off, length
# docket runs once with DOCKET_DUMP_PROMPTS, which writes every job's prompt
# as token ids; bench/tasks_llama.py sends those very tokens to llama-server
# (a grammar of the labels for classify, each field's JSON Schema as
# "json_schema" for extract) and writes records of the same shape for the
# same scorers; llama-server's summaries get the same support check
# (build/bench/bench_support).  Speed: REPS rounds alternated in this script,
# each a fresh llama-server (SLOTS slots, continuous batching, cache_prompt,
# SLOTS requests in flight) and a docket run (SLOTS sequences), same
# threads; docs/s is the median of the rounds on both sides, wall time of
# the whole batch (docket's includes loading the model; llama-server's
# excludes its start).
# llama.cpp is not part of docket: build it outside the repo and point
# LLAMA_SERVER at its llama-server.
# usage: bench/tasks.sh [N_CLASSIFY] [N_EXTRACT] [N_SUMMARIZE]   (defaults 100 100 20)
#   env: MODEL (default: the default model), LLAMA_SERVER (default
#        /opt/llamacpp-build/bin/llama-server), DOCKET (default build/docket),
#        THREADS (2), SLOTS (8), REPS (3), PORT (18090), SHARED (../shared),
#        TASKS ("classify extract summarize"), KEEP (a directory to keep the
#        records and dumps in)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
SUPPORT=${SUPPORT:-$ROOT/build/bench/bench_support}
LLAMA_SERVER=${LLAMA_SERVER:-/opt/llamacpp-build/bin/llama-server}
MODEL=${MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf}
SHARED=${SHARED:-$ROOT/../shared}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
REPS=${REPS:-3}
PORT=${PORT:-18090}
TASKS=${TASKS:-classify extract summarize}
NC=${1:-100}
NE=${2:-100}
NS=${3:-20}
C="$SHARED/corpus"
[ -x "$LLAMA_SERVER" ] || { echo "tasks.sh: no llama-server at $LLAMA_SERVER" >&2; exit 2; }
[ -x "$SUPPORT" ] || { echo "tasks.sh: no $SUPPORT (build the bench targets)" >&2; exit 2; }
[ -f "$MODEL" ] || { echo "tasks.sh: no model at $MODEL" >&2; exit 2; }
[ -d "$C" ] || { echo "tasks.sh: no corpus at $C" >&2; exit 2; }
T=$(mktemp -d /tmp/docket-tasks-XXXXXX)
# shellcheck source=bench/llama_server.sh
. "$ROOT/bench/llama_server.sh"
trap 'ls_stop; rm -f "$LS_LOG"; [ -n "${KEEP:-}" ] && mkdir -p "$KEEP" && cp "$T"/*.jsonl "$KEEP"/ 2>/dev/null; rm -rf "$T"' EXIT
DK=(-m "$MODEL" -t "$THREADS" --seqs "$SLOTS" --progress none)

# the documents
for i in $(seq -f '%03g' 1 400); do
	for t in business entertainment politics sport tech; do
		f="$C/bbc_news/bbc/$t/$i.txt"
		if [ -f "$f" ]; then echo "$f"; fi
	done
done | sed -n "1,${NC}p" >"$T/classify.in"
find "$C/sroie_receipts/text" -name '*.txt' | sort | sed -n "1,${NE}p" >"$T/extract.in"
# notes of one chunk under the pipeline's chunking: their map prompt is all
# the work, the same on both sides
"$DOCKET" chunk -m "$MODEL" --max-tokens 384 "$C/mtsamples/docs" -o "$T/chunks.jsonl" 2>/dev/null
python3 - "$T/chunks.jsonl" "$NS" >"$T/summarize.in" <<'PY'
import json, sys
docs = [json.loads(l) for l in open(sys.argv[1])]
one = sorted(d["path"] for d in docs if d.get("type") == "document" and d.get("chunks") == 1)
print("\n".join(one[:int(sys.argv[2])]))
PY

pipe() { # task -> the pipeline file
	case $1 in
	classify) echo "$ROOT/examples/pipelines/classify-news.json" ;;
	extract) echo "$ROOT/pipelines/extract-fields.json" ;;
	summarize) echo "$ROOT/pipelines/summarize-records.json" ;;
	esac
}
now() { date +%s.%N; }

score() { # task records.jsonl -> one JSON line of figures
	case $1 in
	classify) python3 "$ROOT/bench/score_classify.py" "$2" --json ;;
	extract) python3 "$ROOT/bench/score_extract.py" "$2" "$C/sroie_receipts/ground_truth.jsonl" \
			--pipeline "$ROOT/pipelines/extract-fields.json" --json ;;
	summarize) python3 "$ROOT/bench/score_summarize.py" "$2" --json ;;
	esac
}

for task in $TASKS; do
	P=$(pipe "$task")
	N=$(wc -l <"$T/$task.in")
	echo "== $task: $N documents ($(basename "$P" .json)), $REPS rounds alternated (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	DOCKET_DUMP_PROMPTS="$T/$task.dump.jsonl" "$DOCKET" run "$P" - "${DK[@]}" -o "$T/$task.dk.jsonl" \
		--overwrite <"$T/$task.in" 2>/dev/null || true
	: >"$T/$task.times"
	for r in $(seq "$REPS"); do
		ls_start "$SLOTS" $((SLOTS * 2048))
		python3 "$ROOT/bench/tasks_llama.py" --url "$URL" --task "$task" --dump "$T/$task.dump.jsonl" \
			--pipeline "$P" --out "$T/$task.ls.jsonl" --conc "$SLOTS" >"$T/ls.json"
		ls_stop
		s=$(now)
		"$DOCKET" run "$P" - "${DK[@]}" -o "$T/$task.dkt.jsonl" --overwrite <"$T/$task.in" 2>/dev/null || true
		e=$(now)
		python3 - "$T/ls.json" "$s" "$e" "$T/$task.dkt.jsonl" >>"$T/$task.times" <<'PY'
import json, sys
ls = json.load(open(sys.argv[1]))
n = sum(1 for _ in open(sys.argv[4]))
print(json.dumps({"ls_docs": ls["documents"], "ls_s": ls["seconds"], "dk_docs": n,
                  "dk_s": float(sys.argv[3]) - float(sys.argv[2]), "pattern_dropped": ls["pattern_dropped"]}))
PY
		echo "   round $r: $(tail -1 "$T/$task.times")" >&2
	done
	if [ "$task" = summarize ]; then
		"$SUPPORT" <"$T/$task.ls.jsonl" >"$T/$task.ls2.jsonl" && mv "$T/$task.ls2.jsonl" "$T/$task.ls.jsonl"
	fi
	score "$task" "$T/$task.dk.jsonl" >"$T/$task.dk.score"
	score "$task" "$T/$task.ls.jsonl" >"$T/$task.ls.score"
done

python3 - "$T" "$(basename "$MODEL")" "$THREADS" "$SLOTS" "$TASKS" <<'PY'
import json, statistics, sys
t, model, threads, slots, tasks = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5].split()
print(f"{model}, {threads} threads, {slots} in flight; docs/s: median of the rounds, alternated")
print(f"{'task':<10} {'figure':<34} {'docket':>10} {'llama-server':>13}")
def row(task, name, a, b, fmt):
    f = lambda v: "n/a" if v is None else format(v, fmt)
    print(f"{task:<10} {name:<34} {f(a):>10} {f(b):>13}")
for task in tasks:
    dk = json.load(open(f"{t}/{task}.dk.score"))
    ls = json.load(open(f"{t}/{task}.ls.score"))
    times = [json.loads(l) for l in open(f"{t}/{task}.times")]
    if task == "classify":
        row(task, f"records", dk["records"], ls["records"], "d")
        row(task, "accuracy", dk["accuracy"], ls["accuracy"], ".3f")
        row(task, "macro-F1", dk["macro_f1"], ls["macro_f1"], ".3f")
        row(task, "ECE (lower is better)", dk["ece"], ls["ece"], ".3f")
        row(task, "Brier (lower is better)", dk["brier"], ls["brier"], ".3f")
    elif task == "extract":
        row(task, "records", dk["records"], ls["records"], "d")
        for f in dk["exact"]:
            a = f"{100 * dk['exact'][f]:.1f}/{100 * dk['normalised'][f]:.1f}%"
            b = f"{100 * ls['exact'][f]:.1f}/{100 * ls['normalised'][f]:.1f}%"
            print(f"{task:<10} {f + ' exact/normalised':<34} {a:>10} {b:>13}")
        row(task, "mean exact", dk["exact_mean"], ls["exact_mean"], ".3f")
        row(task, "mean normalised", dk["normalised_mean"], ls["normalised_mean"], ".3f")
        for f, k in dk["format_fail"].items():
            row(task, f"{f}: values failing format date", k, ls["format_fail"][f], "d")
    else:
        row(task, "summaries", dk["records"], ls["records"], "d")
        row(task, "with unsupported items", dk["unsupported_share"], ls["unsupported_share"], ".3f")
        row(task, "preamble openings", dk["preamble_share"], ls["preamble_share"], ".3f")
        row(task, "cut off (finish length)", dk["length_share"], ls["length_share"], ".3f")
        row(task, "ending mid-sentence", dk["mid_sentence_share"], ls["mid_sentence_share"], ".3f")
        row(task, "mean words", dk["mean_words"], ls["mean_words"], ".1f")
    dks = statistics.median(x["dk_docs"] / x["dk_s"] for x in times)
    lss = statistics.median(x["ls_docs"] / x["ls_s"] for x in times)
    row(task, f"docs/s ({len(times)} rounds)", dks, lss, ".3f")
    print(f"{task:<10} {'docket / llama-server speed':<34} {dks / lss:>10.2f}x")
PY
