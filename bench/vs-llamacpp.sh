#!/usr/bin/env bash
# docket against llama.cpp on the same GGUF files, one after the other in
# one script, same thread count: pp128/pp512/tg128 tok/s from llama-bench
# and from `docket bench`, with the ratios.  llama.cpp is not part of
# docket: build it outside the repo (e.g. from the llama-cpp-python sdist)
# and point LLAMA_BENCH at its llama-bench.
# usage: bench/vs-llamacpp.sh MODEL.gguf...
#   env: LLAMA_BENCH (default /opt/llamacpp-build/bin/llama-bench),
#        DOCKET (default build/docket), THREADS (default 2), REPS (default 2)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_BENCH=${LLAMA_BENCH:-/opt/llamacpp-build/bin/llama-bench}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
REPS=${REPS:-2}
[ -x "$LLAMA_BENCH" ] || { echo "vs-llamacpp: no llama-bench at $LLAMA_BENCH" >&2; exit 2; }
export LD_LIBRARY_PATH="$(dirname "$LLAMA_BENCH")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
printf '%-28s %-6s %10s %10s %7s\n' model test docket llama.cpp ratio
for m in "$@"; do
	echo "== $(basename "$m") (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	ll=$("$LLAMA_BENCH" -m "$m" -t "$THREADS" -p 128,512 -n 128 -r "$REPS" -o json)
	dk=$("$DOCKET" bench -m "$m" -t "$THREADS" -r "$REPS" --no-shared --no-bounds --json)
	python3 - "$m" "$ll" "$dk" <<'PY'
import json, os, sys
name, ll, dk = os.path.basename(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
ref = {}
for r in ll:
    key = f"pp{r['n_prompt']}" if r["n_prompt"] else f"tg{r['n_gen']}"
    ref[key] = r["avg_ts"]
for k in ("pp128", "pp512", "tg128"):
    print(f"{name:28s} {k:6s} {dk[k]:10.1f} {ref[k]:10.1f} {dk[k] / ref[k]:6.2f}x")
b = dk.get("batch_tg", {})
if b:
    print(f"{name:28s} batch  " + " ".join(f"{n}:{v:.0f}" for n, v in b.items())
          + f"  (16/1 = {b['16'] / b['1']:.2f}x)")
PY
done
