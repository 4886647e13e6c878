#!/usr/bin/env bash
# docket against llama.cpp on the same GGUF files, same thread count, in one
# script: pp512 and tg128 tok/s from llama-bench and from `docket bench`,
# docket's batched decode at 16 sequences, and the ratios, as one table.
# Rounds alternate the two engines (one llama-bench -r 1, then one docket
# bench -r 1, REPS times per file, each after its own warm-up), and every
# figure is the median of its REPS rounds, so a load swing on this shared
# host falls on both sides.  llama.cpp is not part of docket: build it
# outside the repo (e.g. from the llama-cpp-python sdist) and point
# LLAMA_BENCH at its llama-bench.
#
# usage: bench/vs-llamacpp.sh [MODEL.gguf...]
#   With no MODEL: the default model requantized with llama.cpp's
#   llama-quantize --allow-requantize to Q4_K_M, Q5_K_M, Q6_K and Q8_0
#   (kept in QDIR and reused).  On SmolLM2-135M, rows of 576 are not whole
#   256-element super-blocks, so llama-quantize stores those matrices as
#   Q5_0 (Q4_K_M), Q5_1 (Q5_K_M) or Q8_0 (Q6_K) and only ffn_down (and
#   some attn_v) as K formats.
#   env: LLAMA_BENCH (default /opt/llamacpp-build/bin/llama-bench),
#        LLAMA_QUANTIZE (default: llama-quantize beside LLAMA_BENCH),
#        DOCKET (default build/docket), THREADS (default 2), REPS (default
#        3), QDIR (default ${XDG_CACHE_HOME:-~/.cache}/docket/vs-llamacpp),
#        QTYPES (default "Q4_K_M Q5_K_M Q6_K Q8_0"), DOCKET_MODEL (the
#        model to requantize, default the cached default model)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_BENCH=${LLAMA_BENCH:-/opt/llamacpp-build/bin/llama-bench}
LLAMA_QUANTIZE=${LLAMA_QUANTIZE:-$(dirname "$LLAMA_BENCH")/llama-quantize}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
QDIR=${QDIR:-${XDG_CACHE_HOME:-$HOME/.cache}/docket/vs-llamacpp}
QTYPES=${QTYPES:-Q4_K_M Q5_K_M Q6_K Q8_0}
[ -x "$LLAMA_BENCH" ] || { echo "vs-llamacpp: no llama-bench at $LLAMA_BENCH" >&2; exit 2; }
[ -x "$DOCKET" ] || { echo "vs-llamacpp: no docket at $DOCKET" >&2; exit 2; }
export LD_LIBRARY_PATH="$(dirname "$LLAMA_BENCH")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

models=("$@")
if [ ${#models[@]} -eq 0 ]; then
	[ -x "$LLAMA_QUANTIZE" ] || { echo "vs-llamacpp: no llama-quantize at $LLAMA_QUANTIZE" >&2; exit 2; }
	src=${DOCKET_MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf}
	[ -r "$src" ] || { echo "vs-llamacpp: no default model at $src (scripts/fetch-model.sh)" >&2; exit 2; }
	mkdir -p "$QDIR"
	base=$(basename "$src" .gguf)
	for t in $QTYPES; do
		out="$QDIR/$base.requant-$t.gguf"
		if [ ! -s "$out" ]; then
			echo "== llama-quantize $t -> $out" >&2
			"$LLAMA_QUANTIZE" --allow-requantize "$src" "$out.tmp" "$t" "$THREADS" >"$out.log" 2>&1 ||
				{ echo "vs-llamacpp: llama-quantize $t failed, see $out.log" >&2; exit 1; }
			mv "$out.tmp" "$out"
		fi
		models+=("$out")
	done
fi

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
for m in "${models[@]}"; do
	name=$(basename "$m" .gguf)
	for r in $(seq 1 "$REPS"); do
		echo "== $name round $r/$REPS (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
		cut -d' ' -f1 /proc/loadavg >>"$TMP/load"
		"$LLAMA_BENCH" -m "$m" -t "$THREADS" -p 512 -n 128 -r 1 -o json >"$TMP/$name.ll.$r.json"
		"$DOCKET" bench -m "$m" -t "$THREADS" -r 1 --no-shared --no-bounds --json \
			>"$TMP/$name.dk.$r.json"
	done
done

python3 - "$TMP" "$REPS" "$THREADS" "${models[@]}" <<'PY'
import json, os, statistics, sys
tmp, reps, threads, models = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
med = statistics.median
print(f"{'model':34s} {'pp512 docket':>12s} {'llama.cpp':>9s} {'ratio':>6s}"
      f" {'tg128 docket':>12s} {'llama.cpp':>9s} {'ratio':>6s}"
      f" {'b16 docket':>10s} {'b16/tg':>6s}")
for m in models:
    name = os.path.basename(m)[:-5] if m.endswith(".gguf") else os.path.basename(m)
    ll = {"pp512": [], "tg128": []}
    dk = {"pp512": [], "tg128": [], "b16": []}
    for r in range(1, reps + 1):
        for row in json.load(open(f"{tmp}/{name}.ll.{r}.json")):
            key = f"pp{row['n_prompt']}" if row["n_prompt"] else f"tg{row['n_gen']}"
            ll[key].append(row["avg_ts"])
        d = json.load(open(f"{tmp}/{name}.dk.{r}.json"))
        dk["pp512"].append(d["pp512"])
        dk["tg128"].append(d["tg128"])
        dk["b16"].append(d.get("batch_tg", {}).get("16", float("nan")))
    p, q = med(dk["pp512"]), med(ll["pp512"])
    t, u = med(dk["tg128"]), med(ll["tg128"])
    b = med(dk["b16"])
    print(f"{name[-34:]:34s} {p:12.1f} {q:9.1f} {p / q:5.2f}x {t:12.1f} {u:9.1f} {t / u:5.2f}x"
          f" {b:10.1f} {b / t:5.2f}x")
load = [float(x) for x in open(f"{tmp}/load")]
print(f"(medians of {reps} alternated rounds, {threads} threads; b16 ="
      " docket's batched decode, 16 sequences, total tok/s; b16/tg = that over docket's single"
      f" stream; 1-minute load average at the rounds' starts {min(load):.1f}-{max(load):.1f})")
PY
