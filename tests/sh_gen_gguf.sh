#!/usr/bin/env bash
# bench_gen_gguf writes loadable random-weight models: tiny llama and qwen2
# shapes in q4_0/q8_0 (plus f16, q4_1 and the q4_k fallback to q8_0 for rows
# shorter than a super-block), and tiny qwen3, qwen3moe, phi3 and granite
# shapes, with the stories260K tokenizer copied.  docket
# inspect must read them, the tokenizer keys must match the source, prompts
# must tokenise as with the source model, generate -n 4 must run, output must
# be deterministic per seed, and bad arguments must fail cleanly.
set -u
DOCKET=${DK_DOCKET:?DK_DOCKET not set}
SHARED=${DK_SHARED:?DK_SHARED not set}
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
GEN=${DK_BUILD_DIR:?DK_BUILD_DIR not set}/bench/bench_gen_gguf
VOCAB="$SHARED/models/stories260K.gguf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
expect_line() { grep -Eq -- "$1" "$2" || fail "no line matching '$1' in $2"; }

if [ ! -x "$GEN" ]; then
	echo "FAIL: $GEN not built (cmake --build <dir> --target bench_gen_gguf)"
	exit 1
fi

"$DOCKET" inspect "$VOCAB" >"$TMP/src.txt" 2>&1 || fail "inspect of $VOCAB failed"
grep -E '^  tokenizer\.' "$TMP/src.txt" >"$TMP/src.tok"
"$DOCKET" generate -m "$VOCAB" -p "Once upon a time" -n 1 --json >"$TMP/src.json" 2>&1 ||
	fail "generate on $VOCAB failed: $(cat "$TMP/src.json")"
src_ids=$(grep -o '"prompt_ids":\[[0-9,]*\]' "$TMP/src.json")
[ -n "$src_ids" ] || fail "no prompt_ids from $VOCAB"

for shape in tiny tiny-qwen2; do
	for type in q4_0 q8_0 q4_1 f16 q4_k; do
		m="$TMP/$shape-$type.gguf"
		if ! "$GEN" --shape "$shape" --type "$type" --vocab-from "$VOCAB" --out "$m" \
			--seed 7 2>"$TMP/gen.err"; then
			fail "gen $shape $type: $(cat "$TMP/gen.err")"
			continue
		fi
		out="$TMP/$shape-$type.txt"
		"$DOCKET" inspect "$m" >"$out" 2>&1 || fail "inspect $shape $type: $(cat "$out")"
		arch=llama ntens=20
		[ "$shape" = tiny-qwen2 ] && arch=qwen2 ntens=26
		# K types need 256-element rows; 64-wide rows fall back to q8_0
		mt=$type
		[ "$type" = q4_k ] && mt=q8_0
		expect_line "^version +3$" "$out"
		expect_line "^alignment +32$" "$out"
		expect_line "^  general\.architecture +string +$arch$" "$out"
		expect_line "^  $arch\.embedding_length +uint32 +64$" "$out"
		expect_line "^  $arch\.block_count +uint32 +2$" "$out"
		expect_line "^  $arch\.vocab_size +uint32 +512$" "$out"
		expect_line "^tensors +$ntens$" "$out"
		expect_line "^  token_embd\.weight +$mt +64 x 512 " "$out"
		expect_line "^  blk\.1\.ffn_down\.weight +$mt +128 x 64 " "$out"
		expect_line "^  blk\.1\.attn_k\.weight +$mt +64 x 32 " "$out"
		expect_line "^  output_norm\.weight +f32 +64 " "$out"
		if [ "$arch" = qwen2 ]; then
			expect_line "^  blk\.0\.attn_q\.bias +f32 +64 " "$out"
			expect_line "^  blk\.0\.attn_v\.bias +f32 +32 " "$out"
		else
			grep -q 'attn_q\.bias' "$out" && fail "$shape has biases"
		fi
		grep -E '^  tokenizer\.' "$out" | diff -q - "$TMP/src.tok" >/dev/null ||
			fail "$shape $type: tokenizer keys differ from $VOCAB"
		size=$(stat -c %s "$m")
		[ $((size % 32)) = 0 ] || fail "$shape $type: size $size not a multiple of 32"
		case $type in q4_0 | q8_0) ;; *) continue ;; esac
		js="$TMP/$shape-$type.json"
		if "$DOCKET" generate -m "$m" -p "Once upon a time" -n 4 --ignore-eos --json \
			>"$js" 2>"$TMP/run.err"; then
			grep -qF "$src_ids" "$js" || fail "$shape $type: prompt_ids differ from $VOCAB: $(head -c 200 "$js")"
			n=$(grep -o '"ids":\[[0-9,]*\]' "$js" | tr -cd , | wc -c)
			[ "$n" = 3 ] || fail "$shape $type: expected 4 generated ids: $(head -c 200 "$js")"
		else
			fail "generate $shape $type: $(cat "$TMP/run.err")"
		fi
	done
done

# the other architectures' shapes: their tensors as llama.cpp names them,
# and docket loads and runs them
for spec in "tiny-qwen3 qwen3 blk.0.attn_q_norm.weight f32 64" \
	"tiny-qwen3moe qwen3moe blk.1.ffn_gate_exps.weight q8_0 64 x 32 x 16" \
	"tiny-phi3 phi3 blk.0.attn_qkv.weight q8_0 128 x 256" \
	"tiny-granite granite blk.0.ffn_gate.weight q8_0 128 x 384"; do
	set -- $spec
	shape=$1 arch=$2 tname=$3 ttype=$4
	shift 4
	m="$TMP/$shape.gguf"
	if ! "$GEN" --shape "$shape" --type q8_0 --vocab-from "$VOCAB" --out "$m" --seed 7 \
		2>"$TMP/gen.err"; then
		fail "gen $shape: $(cat "$TMP/gen.err")"
		continue
	fi
	out="$TMP/$shape.txt"
	"$DOCKET" inspect "$m" >"$out" 2>&1 || fail "inspect $shape: $(cat "$out")"
	expect_line "^  general\.architecture +string +$arch$" "$out"
	expect_line "^  ${tname//./\\.} +$ttype +$* " "$out"
	"$DOCKET" generate -m "$m" -p "Once upon a time" -n 4 --ignore-eos --json \
		>"$TMP/$shape.json" 2>"$TMP/run.err" || fail "generate $shape: $(cat "$TMP/run.err")"
done
expect_line "^  phi3\.rope\.scaling\.original_context_length +uint32 +256$" "$TMP/tiny-phi3.txt"
expect_line "^  rope_factors_long\.weight +f32 +12 " "$TMP/tiny-phi3.txt"
expect_line "^  granite\.logit_scale +float32 +8$" "$TMP/tiny-granite.txt"
expect_line "^  qwen3moe\.expert_used_count +uint32 +4$" "$TMP/tiny-qwen3moe.txt"

# deterministic per seed, different across seeds
"$GEN" --shape tiny --type q4_0 --vocab-from "$VOCAB" --out "$TMP/a.gguf" --seed 7 2>/dev/null
"$GEN" --shape tiny --type q4_0 --vocab-from "$VOCAB" --out "$TMP/b.gguf" --seed 8 2>/dev/null
cmp -s "$TMP/a.gguf" "$TMP/tiny-q4_0.gguf" || fail "same seed gave different files"
cmp -s "$TMP/b.gguf" "$TMP/tiny-q4_0.gguf" && fail "different seeds gave the same file"

# error paths
"$GEN" --shape nope --type q4_0 --vocab-from "$VOCAB" --out "$TMP/x.gguf" 2>"$TMP/e1"
[ $? = 2 ] || fail "unknown shape should exit 2"
expect_line "unknown shape 'nope'" "$TMP/e1"
"$GEN" --shape tiny --type q3_x --vocab-from "$VOCAB" --out "$TMP/x.gguf" 2>"$TMP/e2"
[ $? = 2 ] || fail "unknown type should exit 2"
"$GEN" --shape tiny --type q4_0 --vocab-from "$TMP/missing.gguf" --out "$TMP/x.gguf" 2>"$TMP/e3"
[ $? = 1 ] || fail "missing vocab file should exit 1"
expect_line "missing\.gguf" "$TMP/e3"
"$GEN" --shape tiny --type q4_0 --vocab-from "$VOCAB" --out "$TMP/nodir/x.gguf" 2>"$TMP/e4"
[ $? = 1 ] || fail "unwritable output should exit 1"
expect_line "cannot create" "$TMP/e4"
[ -e "$TMP/x.gguf" ] && fail "a failed run left $TMP/x.gguf"

if [ "$fails" != 0 ]; then
	echo "$fails failure(s)"
	exit 1
fi
echo "ok"
