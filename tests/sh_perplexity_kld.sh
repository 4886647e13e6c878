#!/bin/bash
# docket perplexity --kl-divergence-base / --kl-divergence on the tiny models:
# the base file's layout, a model against its own base (KLD 0 within the
# format's resolution, the same top token everywhere), the same bytes at
# every batch size, thread count and kernel level, and damaged or
# mismatched bases refused by name.
set -euo pipefail
D=${DK_DOCKET:?}
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
S=$DK_SHARED/models/stories260K.gguf
R=$DK_SHARED/models/llama-2-tiny-random-F16.gguf
TXT=$DK_SHARED/reference/ppl-text.txt
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# val NAME FILE: the number after "NAME" on its summary line
val() { awk -v k="$1" 'index($0, k) == 1 { for (i = 2; i <= NF; i++) if ($i ~ /^-?[0-9.]+$/) { print $i; exit } }' "$2"; }

for m in "$S" "$R"; do
	name=$(basename "$m" .gguf)
	"$D" perplexity -m "$m" -f "$TXT" -c 128 --chunks 8 -t 2 --kl-divergence-base "$T/$name.base" \
		>"$T/ppl.out" 2>/dev/null || fail "$name: writing the base failed"
	ppl=$(sed -n 's/^PPL = \([0-9.]*\).*/\1/p' "$T/ppl.out")
	# layout: "_logits_", n_ctx 128, the vocabulary, 8 chunks, then 8*128
	# tokens and 8*63 records of 2*ceil(n_vocab/2)+4 uint16
	[ "$(head -c 8 "$T/$name.base")" = "_logits_" ] || fail "$name: no magic"
	read -r nctx nvocab nchunk < <(od -An -t d4 -j 8 -N 12 "$T/$name.base")
	[ "$nctx $nchunk" = "128 8" ] || fail "$name: header n_ctx $nctx n_chunk $nchunk"
	want=$((20 + 4 * 8 * 128 + 8 * 63 * 2 * (2 * ((nvocab + 1) / 2) + 4)))
	size=$(wc -c <"$T/$name.base")
	[ "$size" -eq "$want" ] || fail "$name: $size bytes, want $want"

	"$D" perplexity -m "$m" --kl-divergence-base "$T/$name.base" --kl-divergence -t 2 \
		>"$T/kld.out" 2>"$T/kld.err" || fail "$name: reading the base failed: $(cat "$T/kld.err")"
	kld=$(val "mean     KLD" "$T/kld.out")
	top=$(val "same top p" "$T/kld.out")
	pq=$(val "PPL(Q) " "$T/kld.out")
	ratio=$(val "PPL(Q)/PPL(base)" "$T/kld.out")
	echo "$name: ppl $ppl, against its own base: PPL(Q) $pq, KLD $kld, same top $top%, ratio $ratio"
	awk -v k="$kld" 'BEGIN { exit !(k < 1e-5 && k > -1e-5) }' || fail "$name: KLD $kld against itself"
	[ "$top" = "100.000000" ] || fail "$name: same top $top% against itself"
	awk -v a="$pq" -v b="$ppl" 'BEGIN { exit !(a - b < 1e-3 * b && b - a < 1e-3 * b) }' ||
		fail "$name: PPL(Q) $pq is not the perplexity $ppl"
done

# the base is the logits' bits: the same file at every batch, thread count and level
# cmp_base LEVEL ARGS...
cmp_base() {
	DOCKET_KERNELS=$1 "$D" perplexity -m "$S" -f "$TXT" -c 128 --chunks 8 \
		--kl-divergence-base "$T/x.base" "${@:2}" >/dev/null 2>&1 || fail "$*: writing the base failed"
	cmp -s "$T/x.base" "$T/stories260K.base" || fail "base differs with: $*"
}
cmp_base "" -t 1
cmp_base "" -b 32 -t 2
for lvl in ref avx2 avx512; do cmp_base $lvl -t 2; done

# refused bases: one error line naming the file and the fault, a non-zero status
refuse() {
	local what=$1 pattern=$2
	shift 2
	if "$D" perplexity "$@" >/dev/null 2>"$T/err"; then fail "$what accepted"; fi
	[ "$(grep -c '^docket: ' "$T/err")" -eq 1 ] || fail "$what: not one error line: $(cat "$T/err")"
	grep -q "^docket: .*$pattern" "$T/err" || fail "$what: bad message: $(cat "$T/err")"
}
B=$T/stories260K.base
head -c 100000 "$B" >"$T/trunc.base"
refuse truncated "trunc.base' is truncated" -m "$S" --kl-divergence-base "$T/trunc.base" --kl-divergence
cat "$B" "$B" >"$T/long.base"
refuse overlong "longer than its header" -m "$S" --kl-divergence-base "$T/long.base" --kl-divergence
{ printf '_logitz_'; tail -c +9 "$B"; } >"$T/magic.base"
refuse "bad magic" "not a KL-divergence base" -m "$S" --kl-divergence-base "$T/magic.base" --kl-divergence
head -c 10 "$B" >"$T/short.base"
refuse "short file" "not a KL-divergence base" -m "$S" --kl-divergence-base "$T/short.base" --kl-divergence
# a token id past the vocabulary (the first token, little-endian 0x7fff)
{ head -c 20 "$B"; printf '\377\177\000\000'; tail -c +25 "$B"; } >"$T/tok.base"
refuse "bad token" "outside the vocabulary" -m "$S" --kl-divergence-base "$T/tok.base" --kl-divergence
refuse "missing base" "cannot open" -m "$S" --kl-divergence-base "$T/none.base" --kl-divergence
refuse "other vocabulary" "vocabulary of 512, this model has 32000" -m "$R" --kl-divergence-base "$B" --kl-divergence
refuse "other -c" "made with -c 128" -m "$S" --kl-divergence-base "$B" --kl-divergence -c 256
refuse "no base" "needs --kl-divergence-base" -m "$S" --kl-divergence
refuse "unwritable base" "cannot write '$T/no/dir/x.base'" -m "$S" -f "$TXT" -c 128 --chunks 1 --kl-divergence-base "$T/no/dir/x.base"
[ ! -e "$T/no/dir" ] || fail "unwritable base left a directory"

# a vocabulary that does not add BOS (the default model's) keeps each chunk's
# first token, as llama-perplexity does: its first chunk at -c 128 is within
# 1% of llama.cpp's 18.5479 (shared/reference/perplexity-real); with BOS
# put in it was 19.65
DM=$(default_model)
if [ -e "$DM" ] || in_ci; then
	need_default_model
	p1=$("$D" perplexity -m "$DM" -f "$TXT" -c 128 --chunks 1 -t 2 2>/dev/null |
		sed -n 's/^\[1\]\([0-9.]*\),.*/\1/p')
	echo "default model, first chunk at -c 128: $p1 (llama.cpp 18.5479)"
	awk -v p="$p1" 'BEGIN { exit !(p > 18.5479 * 0.99 && p < 18.5479 * 1.01) }' ||
		fail "default model's first chunk: $p1, llama.cpp 18.5479"
else
	echo "default model not cached: its BOS check not run"
fi
echo "sh_perplexity_kld: ok"
