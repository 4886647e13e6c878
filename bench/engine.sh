#!/usr/bin/env bash
# Engine speed: `docket bench --json` on the default model, then on every
# synthetic model in $DKMODELS (default /tmp/dkmodels/*.gguf, if any), and a
# one-line-per-model summary at the end.  Raw JSON goes to $OUT (default
# bench-engine-<date>/) as <model>.json.  The machine's load average is
# printed with each run: figures taken on a busy machine are not comparable.
# usage: bench/engine.sh [EXTRA BENCH OPTIONS...]
#   env: DOCKET (default build/docket), THREADS (default: all cores),
#        MODEL (default model override), DKMODELS, OUT,
#        SYNTH_ARGS (extra options for the synthetic models; default
#        "--chunks 16 -r 2" since the larger ones are slow),
#        SKIP_TINY=1 to skip models under 1 MB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
DKMODELS=${DKMODELS:-/tmp/dkmodels}
OUT=${OUT:-bench-engine-$(date +%Y%m%d-%H%M%S)}
SYNTH_ARGS=${SYNTH_ARGS:---chunks 16 -r 2}
mkdir -p "$OUT"
ARGS=("$@")
[ -n "${THREADS:-}" ] && ARGS+=(-t "$THREADS")

run() { # name model-args...
	local name=$1
	shift
	echo "== $name (load: $(cut -d' ' -f1-3 /proc/loadavg))" >&2
	if "$DOCKET" bench --json "$@" "${ARGS[@]}" >"$OUT/$name.json"; then
		return 0
	fi
	echo "   failed" >&2
	rm -f "$OUT/$name.json"
}

if [ -n "${MODEL:-}" ]; then
	run default -m "$MODEL"
else
	run default
fi
shopt -s nullglob
for f in "$DKMODELS"/*.gguf; do
	if [ "${SKIP_TINY:-0}" = 1 ] && [ "$(stat -c %s "$f")" -lt 1000000 ]; then
		continue
	fi
	# shellcheck disable=SC2086
	run "$(basename "$f" .gguf)" -m "$f" $SYNTH_ARGS
done

python3 - "$OUT" <<'PY'
import json, os, sys
out = sys.argv[1]
rows = []
for fn in sorted(os.listdir(out)):
    if fn.endswith(".json"):
        d = json.load(open(os.path.join(out, fn)))
        rows.append((fn[:-5], d))
def f(v, w=8, p=1):
    return f"{v:{w}.{p}f}" if isinstance(v, (int, float)) else f"{'-':>{w}}"
print(f"{'model':<24} {'type':>5} {'MiB':>6} {'pp128':>8} {'pp512':>8} {'tg128':>8} "
      f"{'btg16':>8} {'btg32':>8} {'det%':>6} {'sp on/s':>8} {'sp off/s':>8} {'hit':>5} "
      f"{'pre rf':>6} {'dec rf':>6}")
for name, d in rows:
    m, b, sp, det = d["model"], d["batch_tg"], d.get("shared_prefix") or {}, d["deterministic"]
    bo = d["bounds"]
    cost = det.get("pp512_cost")
    print(f"{name:<24} {m['type']:>5} {m['weight_bytes'] / 2**20:6.1f} {f(d['pp128'])} {f(d['pp512'])} "
          f"{f(d['tg128'])} {f(b.get('16'))} {f(b.get('32'))} "
          f"{f(cost * 100 if cost is not None else None, 6)} "
          f"{f(sp.get('documents_per_second_cache_on'), 8, 2)} "
          f"{f(sp.get('documents_per_second_cache_off'), 8, 2)} "
          f"{f(sp.get('prefix_hit_rate'), 5, 2)} {f(bo.get('prefill_roofline_ratio'), 6, 3)} "
          f"{f(bo.get('decode_roofline_ratio'), 6, 3)}")
if rows:
    d = rows[0][1]
    print(f"\nthreads {d['threads']}, kernels {d.get('kernel_level')}, "
          f"sgemm {d['bounds']['sgemm_gflops']} GFLOP/s, read {d['bounds']['read_gbps']} GB/s; "
          f"det% = pp512 cost of deterministic mode (0 where no type takes OpenBLAS); "
          f"sp = shared-prefix documents/s; "
          f"rf = roofline ratio")
PY
echo "raw JSON in $OUT/" >&2
