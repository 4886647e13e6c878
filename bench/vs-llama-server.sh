#!/usr/bin/env bash
# docket against llama-server on the shared-prefix batch workload, one after
# the other in one script, same model file and thread count:
#   llama-server: SLOTS slots, continuous batching, cache_prompt, fed by
#                 bench/llama_server_load.py with SLOTS requests in flight
#   docket:       `docket bench` shared_prefix (cache on), at SLOTS and at
#                 docket's default of 16 sequences in flight
# 64 documents of (400 shared + 300 own) tokens, 64 greedy tokens each.
# llama.cpp is not part of docket: build it outside the repo (e.g. from the
# llama-cpp-python sdist) and point LLAMA_SERVER at its llama-server.
# usage: bench/vs-llama-server.sh MODEL.gguf
#   env: LLAMA_SERVER (default /opt/llamacpp-build/bin/llama-server),
#        DOCKET (default build/docket), THREADS (default 2), SLOTS (default 8),
#        DOCS (default 64), PORT (default 18089)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_SERVER=${LLAMA_SERVER:-/opt/llamacpp-build/bin/llama-server}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
SLOTS=${SLOTS:-8}
DOCS=${DOCS:-64}
PORT=${PORT:-18089}
MODEL=${1:?usage: vs-llama-server.sh MODEL.gguf}
[ -x "$LLAMA_SERVER" ] || { echo "vs-llama-server: no llama-server at $LLAMA_SERVER" >&2; exit 2; }
# shellcheck source=bench/llama_server.sh
. "$ROOT/bench/llama_server.sh"
# 764 tokens per document; the KV pool holds every slot's document
ls_start "$SLOTS" $((SLOTS * 800))
echo "== $(basename "$MODEL"): llama-server, $SLOTS slots (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
LS=$(python3 "$ROOT/bench/llama_server_load.py" --url "$URL" --vocab "$VOCAB" --docs "$DOCS" --conc "$SLOTS")
ls_stop
echo "== docket bench shared_prefix, $SLOTS and 16 in flight" >&2
D8=$("$DOCKET" bench -m "$MODEL" -t "$THREADS" -r 1 --json --shared-only --chunks "$DOCS" --parallel "$SLOTS")
D16=$("$DOCKET" bench -m "$MODEL" -t "$THREADS" -r 1 --json --shared-only --chunks "$DOCS" --parallel 16)
python3 - "$LS" "$D8" "$D16" "$SLOTS" <<'PY'
import json, sys
ls, d8, d16, slots = json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]
print(f"{'engine':34s} {'seconds':>8s} {'docs/s':>8s} {'prefix hit':>10s} {'ratio':>7s}")
print(f"{'llama-server, ' + slots + ' slots':34s} {ls['seconds']:8.1f} {ls['docs_per_s']:8.3f} "
      f"{ls['prefix_hit_rate']:10.3f} {1:6.2f}x")
for name, d in ((f"docket, {slots} in flight", d8), ("docket, 16 in flight", d16)):
    sp = d["shared_prefix"]
    dps = sp["n_chunks"] / sp["seconds_cache_on"]
    print(f"{name:34s} {sp['seconds_cache_on']:8.1f} {dps:8.3f} {sp['prefix_hit_rate']:10.3f} "
          f"{dps / ls['docs_per_s']:6.2f}x")
PY
