# shellcheck shell=bash
# Sourced by the bench/vs-llama-server*.sh scripts: starts and stops one
# llama-server.  Needs LLAMA_SERVER, MODEL, THREADS and PORT set; LS_EXTRA
# (optional) holds more llama-server arguments, e.g. "--poll 0".
#   ls_start SLOTS CTX   start it with SLOTS slots sharing CTX tokens of
#                        KV, continuous batching; wait until it answers;
#                        sets URL and VOCAB (the model's vocabulary size)
#   ls_stop              stop it (also done on exit)
LS_PID=
LS_LOG=$(mktemp)
trap 'ls_stop; rm -f "$LS_LOG"' EXIT
LD_LIBRARY_PATH="$(dirname "$LLAMA_SERVER")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

ls_start() {
	URL=http://127.0.0.1:$PORT
	"$LLAMA_SERVER" -m "$MODEL" -t "$THREADS" -tb "$THREADS" -np "$1" -c "$2" \
		-cb --host 127.0.0.1 --port "$PORT" --no-webui ${LS_EXTRA:-} >"$LS_LOG" 2>&1 &
	LS_PID=$!
	for _ in $(seq 300); do
		curl -sf "$URL/health" >/dev/null 2>&1 && break
		kill -0 "$LS_PID" 2>/dev/null || { cat "$LS_LOG" >&2; echo "llama-server exited" >&2; exit 1; }
		sleep 0.2
	done
	curl -sf "$URL/health" >/dev/null 2>&1 ||
		{ cat "$LS_LOG" >&2; echo "llama-server did not answer on $URL within 60 s" >&2; exit 1; }
	# shellcheck disable=SC2034 # read by the sourcing script
	VOCAB=$(curl -sf "$URL/v1/models" |
		python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["meta"]["n_vocab"])')
}

ls_stop() {
	[ -n "$LS_PID" ] || return 0
	kill "$LS_PID" 2>/dev/null || true
	wait "$LS_PID" 2>/dev/null || true
	LS_PID=
}
