#!/usr/bin/env bash
# docket against llama-server on the shared-prefix batch workload, same model
# file, thread count and number of sequences in flight, rounds alternated in
# one script, median of REPS rounds on both sides:
#   llama-server: SLOTS slots, continuous batching, cache_prompt, fed by
#                 bench/llama_server_load.py with SLOTS requests in flight
#                 (a fresh server each round: no prompt cache carried over)
#   docket:       `docket bench --shared-only` (the scheduler `docket run`
#                 uses, src/runner/sched.c), cache on, SLOTS in flight
# 64 documents of (400 shared + 300 own) tokens, 64 greedy tokens each.
# llama.cpp is not part of docket: build it outside the repo (e.g. from the
# llama-cpp-python sdist) and point LLAMA_SERVER at its llama-server.
# usage: bench/vs-llama-server.sh MODEL.gguf
#   env: LLAMA_SERVER (default /opt/llamacpp-build/bin/llama-server),
#        DOCKET (default build/docket), THREADS (default 2), SLOTS (default 8),
#        DOCS (default 64), REPS (default 3), PORT (default 18089)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_SERVER=${LLAMA_SERVER:-/opt/llamacpp-build/bin/llama-server}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
DOCS=${DOCS:-64}
REPS=${REPS:-3}
PORT=${PORT:-18089}
MODEL=${1:?usage: vs-llama-server.sh MODEL.gguf}
[ -x "$LLAMA_SERVER" ] || { echo "vs-llama-server: no llama-server at $LLAMA_SERVER" >&2; exit 2; }
# shellcheck source=bench/llama_server.sh
. "$ROOT/bench/llama_server.sh"
# 764 tokens per document; the KV pool holds every slot's document
LS_RUNS=()
DK_RUNS=()
for r in $(seq "$REPS"); do
	ls_start "$SLOTS" $((SLOTS * 800))
	echo "== round $r/$REPS: llama-server, $SLOTS slots (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	LS_RUNS+=("$(python3 "$ROOT/bench/llama_server_load.py" --url "$URL" --vocab "$VOCAB" --docs "$DOCS" --conc "$SLOTS")")
	ls_stop
	echo "== round $r/$REPS: docket, $SLOTS in flight" >&2
	DK_RUNS+=("$("$DOCKET" bench -m "$MODEL" -t "$THREADS" -r 1 --json --shared-only --chunks "$DOCS" --parallel "$SLOTS")")
done
python3 - "$SLOTS" "$(basename "$MODEL")" "${#LS_RUNS[@]}" "${LS_RUNS[@]}" "${DK_RUNS[@]}" <<'PY'
import json, statistics, sys
slots, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
ls = [json.loads(a) for a in sys.argv[4:4 + n]]
dk = [json.loads(a)["shared_prefix"] for a in sys.argv[4 + n:4 + 2 * n]]
ls_s = [x["seconds"] for x in ls]
dk_s = [x["seconds_cache_on"] for x in dk]
docs = dk[0]["n_chunks"]
ms_ls, ms_dk = statistics.median(ls_s), statistics.median(dk_s)
print(f"{name}: {docs} documents, {slots} in flight, median of {n} rounds (alternated)")
print(f"{'engine':28s} {'median s':>9s} {'docs/s':>8s} {'prefix hit':>10s}  rounds (s)")
print(f"{'llama-server, ' + slots + ' slots':28s} {ms_ls:9.1f} {docs / ms_ls:8.3f} "
      f"{statistics.median(x['prefix_hit_rate'] for x in ls):10.3f}  {' '.join(f'{v:.1f}' for v in ls_s)}")
print(f"{'docket, ' + slots + ' in flight':28s} {ms_dk:9.1f} {docs / ms_dk:8.3f} "
      f"{statistics.median(x['prefix_hit_rate'] for x in dk):10.3f}  {' '.join(f'{v:.1f}' for v in dk_s)}")
print(f"docket / llama-server: {ms_ls / ms_dk:.2f}x")
PY
