#!/usr/bin/env bash
# docket bench --quick on stories260K: one JSON object on stdout with every
# documented key, positive finite figures, a prefix hit rate in (0, 1) that
# matches the hit/miss token counts (and 0 with the cache off), progress on
# stderr only; the table mode prints its sections; bad options are usage
# errors (exit 1).  Sizes are tiny: this checks the command, not the speed.
set -u
DOCKET=${DK_DOCKET:?DK_DOCKET not set}
SHARED=${DK_SHARED:?DK_SHARED not set}
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL=$SHARED/models/stories260K.gguf
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

if ! "$DOCKET" bench -m "$MODEL" --quick --json -t 2 -r 2 >"$TMP/out.json" 2>"$TMP/err.txt"; then
	fail "bench --quick --json exited non-zero: $(cat "$TMP/err.txt")"
else
	grep -q '^bench: pp' "$TMP/err.txt" || fail "no progress lines on stderr"
	python3 - "$TMP/out.json" <<'PY' || fails=$((fails + 1))
import json, math, sys
d = json.load(open(sys.argv[1]))   # fails unless stdout is exactly one JSON value
bad = []
def pos(path, v):
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or v <= 0:
        bad.append(f"{path} = {v!r}, expected a positive number")
for k in ("pp128", "pp512", "tg128"):
    pos(k, d.get(k))
bt = d.get("batch_tg", {})
if sorted(bt) != ["1", "2"]:
    bad.append(f"batch_tg keys {sorted(bt)} != ['1', '2'] in --quick mode")
for k, v in bt.items():
    pos("batch_tg." + k, v)
m = d.get("model", {})
if m.get("path", "").split("/")[-1] != "stories260K.gguf":
    bad.append(f"model.path {m.get('path')!r}")
if m.get("params") != 292800:
    bad.append(f"model.params {m.get('params')} != 292800 (stories260K)")
for k in ("name", "type"):
    if not m.get(k):
        bad.append(f"model.{k} missing")
pos("model.weight_bytes", m.get("weight_bytes"))
if d.get("threads") != 2:
    bad.append(f"threads {d.get('threads')} != 2")
if d.get("quick") is not True:
    bad.append("quick is not true")
if d.get("kernel_level") not in ("ref", "avx2", "avx512"):
    bad.append(f"kernel_level {d.get('kernel_level')!r}")
sz = d.get("sizes", {})
if (sz.get("pp128"), sz.get("pp512"), sz.get("tg128")) != (16, 32, 8):
    bad.append(f"quick sizes {sz}")
sp = d.get("shared_prefix") or {}
if sp.get("n_chunks") != 4:
    bad.append(f"shared_prefix.n_chunks {sp.get('n_chunks')} != 4")
for k in ("seconds_cache_on", "seconds_cache_off",
          "documents_per_second_cache_on", "documents_per_second_cache_off"):
    pos("shared_prefix." + k, sp.get(k))
hr = sp.get("prefix_hit_rate")
if not isinstance(hr, float) or not 0 < hr < 1:
    bad.append(f"prefix_hit_rate {hr!r} not in (0, 1)")
else:
    h, mi = sp.get("hit_tokens", 0), sp.get("miss_tokens", 0)
    # the rate is of the shared tokens (4 documents x 32); the other one is
    # of every prompt token
    if abs(h / (4 * 32) - hr) > 1e-3:
        bad.append(f"prefix hit rate {hr} is not hit {h} / 128 shared prefix tokens")
    ph = sp.get("prompt_token_hit_rate")
    if h + mi == 0 or not isinstance(ph, float) or abs(h / (h + mi) - ph) > 1e-3:
        bad.append(f"prompt token hit rate {ph} does not match hit {h} / miss {mi}")
    # 4 documents of 32 shared + 16 own tokens: the first computes the prefix,
    # each later one can reuse at most its 32 prefix tokens.
    if h > 3 * 32:
        bad.append(f"hit_tokens {h} > 96, more than the shared prefixes")
    if h + mi != 4 * 48:
        bad.append(f"hit + miss = {h + mi}, expected 4 x 48 prompt tokens")
if sp.get("prefix_hit_rate_cache_off") != 0:
    bad.append(f"hit rate with the cache off {sp.get('prefix_hit_rate_cache_off')} != 0")
b = d.get("bounds", {})
for k in ("sgemm_gflops", "read_gbps", "prefill_roofline_ratio", "decode_roofline_ratio"):
    pos("bounds." + k, b.get(k))
# the int8 bound: 0 where the CPU has no packed kernel, else measured, and
# the batch ratio taken at the largest batch of at most 16 sequences
i8 = b.get("int8_gops")
if i8 == 0:
    for k in ("prefill_int8_ratio", "batch_roofline_ratio"):
        if b.get(k, 0) is not None:
            bad.append(f"{k} {b.get(k)!r} without an int8 bound (want null)")
else:
    for k in ("int8_gops", "prefill_int8_ratio", "batch_roofline_ratio"):
        pos("bounds." + k, b.get(k))
    want = max(int(s) for s in bt if int(s) <= 16)
    if b.get("batch_roofline_sequences") != want:
        bad.append(f"batch_roofline_sequences {b.get('batch_roofline_sequences')} != {want}")
    if isinstance(i8, (int, float)) and isinstance(b.get("batch_roofline_ratio"), float):
        # ratio / aggregate is the work per token over the bound: the same
        # for pp512 against prefill_int8_ratio (which leaves the logits out)
        per_tok = b["batch_roofline_ratio"] / bt[str(want)] * i8 * 1e9
        pre_tok = b["prefill_int8_ratio"] / d["pp512"] * i8 * 1e9
        if not pre_tok < per_tok < 3 * pre_tok:
            bad.append(f"ops per token: batch {per_tok:.3g}, prefill {pre_tok:.3g}")
det = d.get("deterministic", {})
for k in ("pp512_on", "pp512_off"):
    pos("deterministic." + k, det.get(k))
if det.get("pp512_on") != d.get("pp512"):
    bad.append("deterministic.pp512_on differs from pp512")
# no type on OpenBLAS: the same kernels, so the same figure and no cost
if not det.get("blas_types") and (det.get("pp512_off") != det.get("pp512_on") or det.get("pp512_cost") != 0):
    bad.append(f"deterministic off without OpenBLAS: {det}")
if det.get("decode_cost") != 0:
    bad.append(f"deterministic.decode_cost {det.get('decode_cost')}")
for x in bad:
    print("FAIL:", x)
sys.exit(1 if bad else 0)
PY
fi

# On the reference kernels there is no packed int8 kernel: the bound reads 0
# and its ratios are null, not made up.
if ! DOCKET_KERNELS=ref "$DOCKET" bench -m "$MODEL" --quick --json -t 1 -r 1 --no-shared \
	>"$TMP/ref.json" 2>"$TMP/err3.txt"; then
	fail "bench on the reference kernels exited non-zero: $(cat "$TMP/err3.txt")"
else
	python3 - "$TMP/ref.json" <<'PY' || fails=$((fails + 1))
import json, sys
b = json.load(open(sys.argv[1]))["bounds"]
bad = []
if b.get("int8_gops") != 0:
    bad.append(f"int8_gops {b.get('int8_gops')!r} on the reference kernels")
for k in ("prefill_int8_ratio", "batch_roofline_ratio"):
    if k not in b or b[k] is not None:
        bad.append(f"{k} {b.get(k, 'missing')!r}, want null")
for x in bad:
    print("FAIL:", x)
sys.exit(1 if bad else 0)
PY
fi

# Table mode: readable sections on stdout, nothing JSON.
if ! "$DOCKET" bench -m "$MODEL" --quick -t 1 -r 1 --no-bounds >"$TMP/out.txt" 2>"$TMP/err2.txt"; then
	fail "bench --quick (table) exited non-zero: $(cat "$TMP/err2.txt")"
else
	for w in "pp16" "pp32" "tg8" "batch_tg x2" "shared prefix" "cache on" "cache off"; do
		grep -q "$w" "$TMP/out.txt" || fail "table lacks '$w'"
	done
	grep -q "bounds:" "$TMP/out.txt" && fail "--no-bounds still printed bounds"
	grep -q "^bench:" "$TMP/out.txt" && fail "progress lines on stdout"
fi

# Errors: usage errors exit 1, a missing model exits non-zero with a message.
"$DOCKET" bench -m "$MODEL" --bogus >/dev/null 2>&1
[ $? -eq 1 ] || fail "unknown option did not exit 1"
"$DOCKET" bench -m "$MODEL" -r 0 >/dev/null 2>&1
[ $? -eq 1 ] || fail "-r 0 did not exit 1"
"$DOCKET" bench -m "$MODEL" --kv q4 >/dev/null 2>&1
[ $? -eq 1 ] || fail "--kv q4 did not exit 1"
out=$("$DOCKET" bench -m "$TMP/none.gguf" --quick --json 2>&1 >/dev/null)
rc=$?
{ [ $rc -ne 0 ] && echo "$out" | grep -q "none.gguf"; } || fail "missing model: rc $rc, '$out'"

if [ $fails -ne 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "ok"
