#!/usr/bin/env bash
# Quality of quantized inference as llama.cpp measures it: KL divergence
# from the F32 model, docket against llama.cpp on the same base file.
#
# For each MODEL: llama-quantize --allow-requantize makes its F32 copy (and
# the extra TYPES asked for); `docket perplexity --kl-divergence-base` makes
# the base from the F32 copy; then docket and llama-perplexity each measure
# the F32 copy, the file itself and each requantization against that base,
# both with the same threads, context and an F32 KV cache.  One table:
# mean KLD, top-token agreement and PPL(Q)/PPL(base), docket / llama.cpp.
# The F32 row checks the base: both engines' F32 paths agree to ~1e-6, and
# llama-perplexity reads docket's base file.
#
# usage: bench/kld.sh [MODEL.gguf[:TYPE,TYPE...]]...
#   default: the default model with Q4_0,Q8_0,Q4_K_M, and Gemma 3 270M
#   Q4_K_M when it is in the model cache
#   env: LLAMA_BIN (dir with llama-perplexity and llama-quantize; default
#        /opt/llamacpp-build/bin), DOCKET (default build/docket), THREADS
#        (default 2), CTX (default 512), CHUNKS (default all), TEXT
#        (default ../shared/reference/ppl-text.txt), WORK (the requantized
#        files, bases and logs; default build/kld, reused when present)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LLAMA_BIN=${LLAMA_BIN:-/opt/llamacpp-build/bin}
DOCKET=${DOCKET:-$ROOT/build/docket}
THREADS=${THREADS:-2}
CTX=${CTX:-512}
CHUNKS=${CHUNKS:--1}
TEXT=${TEXT:-$ROOT/../shared/reference/ppl-text.txt}
WORK=${WORK:-$ROOT/build/kld}
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/docket/models
for b in llama-perplexity llama-quantize; do
	[ -x "$LLAMA_BIN/$b" ] || { echo "kld: no $b in $LLAMA_BIN (set LLAMA_BIN)" >&2; exit 2; }
done
[ -x "$DOCKET" ] || { echo "kld: no docket at $DOCKET" >&2; exit 2; }
[ -r "$TEXT" ] || { echo "kld: cannot read $TEXT" >&2; exit 2; }
export LD_LIBRARY_PATH="$LLAMA_BIN${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
mkdir -p "$WORK"
rm -f "$WORK/notes"
if [ $# -eq 0 ]; then
	set -- "$CACHE/SmolLM2-135M-Instruct.Q4_1.gguf:Q4_0,Q8_0,Q4_K_M"
	[ -e "$CACHE/gemma-3-270m-q4_k_m.gguf" ] && set -- "$@" "$CACHE/gemma-3-270m-q4_k_m.gguf"
fi

log() { echo "kld: $* (load $(cut -d' ' -f1-3 /proc/loadavg))" >&2; }

# requant IN TYPE OUT: llama-quantize, once
requant() {
	[ -s "$3" ] && return 0
	log "llama-quantize $(basename "$1") $2"
	"$LLAMA_BIN/llama-quantize" --allow-requantize "$1" "$3.tmp" "$2" >"$3.log" 2>&1 ||
		{ echo "kld: llama-quantize failed, see $3.log" >&2; exit 1; }
	mv "$3.tmp" "$3"
}

# measure FILE BASE NAME: one table row (docket's columns "-" when it
# cannot run the file, with its message below the table)
measure() {
	local f=$1 base=$2 name=$3 dk=$WORK/$3.docket.log ll=$WORK/$3.llama.log
	log "docket $name"
	if ! "$DOCKET" perplexity -m "$f" --kl-divergence-base "$base" --kl-divergence \
		-t "$THREADS" --chunks "$CHUNKS" >"$dk" 2>&1; then
		grep -q '^docket: ' "$dk" || { echo "kld: docket failed, see $dk" >&2; exit 1; }
		echo "$name: $(grep -m1 '^docket: ' "$dk")" >>"$WORK/notes"
		: >"$dk"
	fi
	log "llama-perplexity $name"
	"$LLAMA_BIN/llama-perplexity" -m "$f" --kl-divergence-base "$base" --kl-divergence \
		-t "$THREADS" -c "$CTX" -b "$CTX" --chunks "$CHUNKS" -ctk f32 -ctv f32 -fa off \
		>"$ll" 2>&1 || { echo "kld: llama-perplexity failed, see $ll" >&2; exit 1; }
	python3 - "$name" "$dk" "$ll" <<'PY'
import re, sys
name, dk, ll = sys.argv[1], open(sys.argv[2]).read(), open(sys.argv[3]).read()
def num(text, label, who):
    m = re.search(r"^" + re.escape(label) + r"\s*:?\s*(-?[0-9.]+)", text, re.M)
    if not m:
        sys.exit(f"kld: no '{label}' in {who}'s {name} log")
    return float(m.group(1))
l = (num(ll, "Mean    KLD:", "llama.cpp"), num(ll, "Same top p:", "llama.cpp"),
     num(ll, "Mean PPL(Q)/PPL(base)", "llama.cpp"))
if dk:
    d = (num(dk, "mean     KLD", "docket"), num(dk, "same top p", "docket"),
         num(dk, "PPL(Q)/PPL(base)", "docket"))
    flag = "" if d[0] <= l[0] and d[1] >= l[1] else "  <- docket loses more"
    print(f"{name:34s} {d[0]:10.6f} {l[0]:10.6f} {d[1]:8.3f} {l[1]:8.3f} {d[2]:9.5f} {l[2]:9.5f}{flag}",
          flush=True)
else:
    print(f"{name:34s} {'-':>10s} {l[0]:10.6f} {'-':>8s} {l[1]:8.3f} {'-':>9s} {l[2]:9.5f}", flush=True)
PY
}

echo "KL divergence from the F32 copy; -c $CTX, $THREADS threads, F32 KV cache, $(basename "$TEXT")"
printf '%-34s %10s %10s %8s %8s %9s %9s\n' "" "mean KLD" "" "same top" "%" "PPL/base" ""
printf '%-34s %10s %10s %8s %8s %9s %9s\n' file docket llama.cpp docket llama docket llama
for arg in "$@"; do
	m=${arg%%:*}
	types=
	[ "$arg" != "$m" ] && types=${arg#*:}
	[ -r "$m" ] || { echo "kld: cannot read $m" >&2; exit 2; }
	stem=$(basename "$m" .gguf)
	f32=$WORK/$stem.F32.gguf
	requant "$m" F32 "$f32"
	base=$WORK/$stem.F32.c$CTX.kld
	if [ ! -s "$base" ]; then
		log "docket base $stem"
		if ! "$DOCKET" perplexity -m "$f32" -f "$TEXT" -c "$CTX" -t "$THREADS" --chunks "$CHUNKS" \
			--kl-divergence-base "$base" >"$base.log" 2>&1; then
			grep -q '^docket: ' "$base.log" || { echo "kld: docket base failed, see $base.log" >&2; exit 1; }
			# docket cannot run it: llama.cpp's F32 path makes the base instead
			echo "$stem: base from llama-perplexity ($(grep -m1 '^docket: ' "$base.log"))" >>"$WORK/notes"
			log "llama-perplexity base $stem"
			"$LLAMA_BIN/llama-perplexity" -m "$f32" -f "$TEXT" -c "$CTX" -b "$CTX" -t "$THREADS" \
				--chunks "$CHUNKS" -ctk f32 -ctv f32 -fa off --kl-divergence-base "$base" \
				>"$base.log" 2>&1 || { echo "kld: llama base failed, see $base.log" >&2; exit 1; }
		fi
	fi
	measure "$f32" "$base" "$stem.F32"
	measure "$m" "$base" "$stem"
	for t in ${types//,/ }; do
		q=$WORK/$stem.$t.gguf
		requant "$m" "$t" "$q"
		measure "$q" "$base" "$stem.$t"
	done
done
[ -s "$WORK/notes" ] && { echo; cat "$WORK/notes"; }
exit 0
