#!/usr/bin/env bash
# Batched decode, docket against llama-server, one after the other in one
# script, same model file and thread count: how much 16 sequences decoded
# together gain over one, for each engine on this machine.
#   llama-server: 1 slot (4 requests, one at a time), then 16 slots (48
#                 requests, 16 in flight: continuous batching), each request
#                 16 prompt tokens and 64 greedy tokens (EOS ignored), fed
#                 by bench/llama_server_load.py; the aggregate is the mean
#                 of the server's own per-request decode rates times the
#                 requests in flight (prompt and HTTP time excluded), and
#                 generated tokens / wall seconds beside it
#   docket:       `docket bench` batch_tg at 1 and 16 sequences (16-token
#                 prompts, 64 steps)
# Rounds alternate the two engines, so both see the same host.
# usage: bench/vs-llama-server-decode.sh MODEL.gguf
#   env: LLAMA_SERVER (default /opt/llamacpp-build/bin/llama-server),
#        DOCKET (default build/docket), THREADS (default 2), ROUNDS
#        (default 2), PORT (default 18090)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_SERVER=${LLAMA_SERVER:-/opt/llamacpp-build/bin/llama-server}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-2}
PORT=${PORT:-18090}
MODEL=${1:?usage: vs-llama-server-decode.sh MODEL.gguf}
[ -x "$LLAMA_SERVER" ] || { echo "vs-llama-server-decode: no llama-server at $LLAMA_SERVER" >&2; exit 2; }
# shellcheck source=bench/llama_server.sh
. "$ROOT/bench/llama_server.sh"

OUT=$(mktemp)
trap 'ls_stop; rm -f "$LS_LOG" "$OUT"' EXIT

load() { # TAG SLOTS DOCS: one line "TAG {json}" into OUT
	ls_start "$2" $(($2 * 128))
	local r
	r=$(python3 "$ROOT/bench/llama_server_load.py" --url "$URL" --vocab "$VOCAB" --docs "$3" \
		--prefix 0 --chunk 16 --gen 64 --conc "$2")
	ls_stop
	echo "$1 $r" >>"$OUT"
}

for r in $(seq "$ROUNDS"); do
	echo "== round $r: llama-server 1 and 16 slots, docket bench (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	load ls1 1 4
	load ls16 16 48
	d=$("$DOCKET" bench -m "$MODEL" -t "$THREADS" -r 3 --json --no-shared --no-bounds)
	echo "dk $(echo "$d" | python3 -c 'import json,sys; print(json.dumps(json.load(sys.stdin)))')" >>"$OUT"
done
python3 - "$OUT" <<'PY'
import json, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1])]
ls1 = [json.loads(j) for k, j in rows if k == "ls1"]
ls16 = [json.loads(j) for k, j in rows if k == "ls16"]
dk = [json.loads(j)["batch_tg"] for k, j in rows if k == "dk"]
print(f"{'round':>5s} {'engine':14s} {'1 seq tok/s':>12s} {'16 seq tok/s':>13s} {'16/1':>6s}   (wall-clock aggregates)")
for i in range(len(dk)):
    a1 = ls1[i]["decode_tok_per_s_per_request"]
    a16 = ls16[i]["decode_tok_per_s_per_request"] * ls16[i]["in_flight"]
    print(f"{i + 1:5d} {'llama-server':14s} {a1:12.1f} {a16:13.1f} {a16 / a1:5.2f}x   "
          f"({ls1[i]['generated_tok_per_s']:.1f}, {ls16[i]['generated_tok_per_s']:.1f})")
    d1, d16 = dk[i]["1"], dk[i]["16"]
    print(f"{i + 1:5d} {'docket':14s} {d1:12.1f} {d16:13.1f} {d16 / d1:5.2f}x   "
          f"(docket/llama-server at 16: {d16 / a16:.2f}x)")
PY
