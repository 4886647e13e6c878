#!/usr/bin/env bash
# docket inspect on the shared stories260K model: the real header, metadata
# and tensor table, as text and JSON; the error paths (truncated file, not a
# GGUF file, missing file, bad arguments).
set -u
DOCKET=${DK_DOCKET:?DK_DOCKET not set}
SHARED=${DK_SHARED:?DK_SHARED not set}
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$SHARED/models/stories260K.gguf"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
# expect_line PATTERN FILE: some line matches the extended regex
expect_line() { grep -Eq -- "$1" "$2" || fail "no line matching '$1' in $2"; }

# ---- text ----
"$DOCKET" inspect "$MODEL" >"$TMP/out.txt" 2>"$TMP/err.txt"
rc=$?
[ "$rc" = 0 ] || fail "inspect exited $rc: $(cat "$TMP/err.txt")"
[ -s "$TMP/err.txt" ] && fail "inspect wrote to stderr: $(cat "$TMP/err.txt")"
expect_line '^version +3$' "$TMP/out.txt"
expect_line '^alignment +32$' "$TMP/out.txt"
expect_line '^size +1185376 bytes' "$TMP/out.txt"
expect_line '^metadata +19 keys$' "$TMP/out.txt"
expect_line '^  llama\.embedding_length +uint32 +64$' "$TMP/out.txt"
expect_line '^  llama\.block_count +uint32 +5$' "$TMP/out.txt"
expect_line '^  general\.architecture +string +llama$' "$TMP/out.txt"
expect_line '^  llama\.attention\.layer_norm_rms_epsilon +float32 +9\.99999975e-06$' "$TMP/out.txt"
expect_line "^  tokenizer\.ggml\.tokens +string\[512\] +'<unk>', '<s>', '</s>', '<0x00>'.*, \.\.\.$" "$TMP/out.txt"
expect_line '^  tokenizer\.ggml\.token_type +int32\[512\] +2, 3, 3, 6, ' "$TMP/out.txt"
expect_line '^  tokenizer\.ggml\.seperator_token_id +uint32 +4294967295$' "$TMP/out.txt"
expect_line '^tensors +48$' "$TMP/out.txt"
expect_line '^  token_embd\.weight +f32 +64 x 512 +131072 +0$' "$TMP/out.txt"
expect_line '^  output_norm\.weight +f32 +64 +256 +131072$' "$TMP/out.txt"
expect_line '^  blk\.4\.ffn_down\.weight +f32 +172 x 64 +44032 +1082880$' "$TMP/out.txt"
expect_line '^  blk\.4\.ffn_norm\.weight +f32 +64 +256 +1170944$' "$TMP/out.txt"
expect_line '^summary +48 tensors, 292800 parameters, 1171200 bytes' "$TMP/out.txt"
expect_line '^  f32 +48 tensors +1171200 bytes' "$TMP/out.txt"
n=$(grep -Ec '^  (token_embd|output|output_norm|blk\.[0-9]+\.[a-z_]+)\.weight ' "$TMP/out.txt")
[ "$n" = 48 ] || fail "expected 48 tensor lines, got $n"

# long strings are cut unless --full (the model's template is not long, so
# use a key from the vocab-only Phi-3 file whose chat template is)
PHI="$SHARED/vocab/ggml-vocab-phi-3.gguf"
if [ -f "$PHI" ]; then
	"$DOCKET" inspect "$PHI" >"$TMP/phi.txt" || fail "inspect phi-3 vocab failed"
	expect_line '^  tokenizer\.chat_template +string +\{\{ bos_token \}\}.*\.\.\. \([0-9]+ bytes\)$' "$TMP/phi.txt"
	"$DOCKET" inspect --full "$PHI" >"$TMP/phi-full.txt" || fail "inspect --full failed"
	line=$(grep '^  tokenizer\.chat_template ' "$TMP/phi-full.txt")
	case "$line" in
	*"... ("*) fail "--full still cut the template" ;;
	*"{% endif %}{% endfor %}") ;;
	*) fail "--full did not print the whole template: $line" ;;
	esac
fi

# ---- JSON ----
"$DOCKET" inspect --json "$MODEL" >"$TMP/out.json" || fail "inspect --json failed"
check_json() { # FILTER EXPECTED
	got=$(jq -c "$1" "$TMP/out.json" 2>&1)
	[ "$got" = "$2" ] || fail "json $1: got $got, want $2"
}
check_json '.version' '3'
check_json '.alignment' '32'
check_json '.file_size' '1185376'
check_json '.metadata | length' '19'
check_json '.metadata["llama.embedding_length"]' '64'
check_json '.metadata["general.architecture"]' '"llama"'
check_json '.metadata["tokenizer.ggml.tokens"].type' '"string"'
check_json '.metadata["tokenizer.ggml.tokens"].count' '512'
check_json '.metadata["tokenizer.ggml.tokens"].head[0:3]' '["<unk>","<s>","</s>"]'
check_json '.metadata["tokenizer.ggml.token_type"].head[0:4]' '[2,3,3,6]'
check_json '.metadata["tokenizer.ggml.scores"].type' '"float32"'
check_json '.tensors | length' '48'
check_json '.tensors[0]' '{"name":"token_embd.weight","type":"f32","shape":[64,512],"bytes":131072,"offset":0}'
check_json '[.tensors[] | select(.name == "blk.0.attn_k.weight")][0].shape' '[64,32]'
check_json '[.tensors[].bytes] | add' '1171200'
check_json '.summary' '{"tensors":48,"params":292800,"bytes_by_type":{"f32":1171200}}'

# ---- whether docket can run it ----
expect_line '^can run +yes$' "$TMP/out.txt"
check_json '.can_run' 'true'
check_json '.why_not' 'null'
if [ -f "$PHI" ]; then # a vocabulary-only file: no weights
	expect_line "^can run +no — missing tensor 'token_embd\\.weight'$" "$TMP/phi.txt"
fi
FALCON="$SHARED/vocab/ggml-vocab-falcon.gguf"
if [ -f "$FALCON" ]; then # an architecture docket lacks
	"$DOCKET" inspect "$FALCON" >"$TMP/falcon.txt" || fail "inspect falcon vocab failed"
	expect_line "^can run +no — architecture 'falcon' is not supported \\(llama, " "$TMP/falcon.txt"
	"$DOCKET" inspect --json "$FALCON" |
		jq -e '.can_run == false and (.why_not | test("architecture .falcon."))' >/dev/null ||
		fail "json can_run of the falcon vocab"
fi
# the same model with output_norm.weight's type byte set to f16: a tensor type
# docket does not run there (the norms must be f32)
python3 - "$MODEL" "$TMP/f16norm.gguf" <<'PY'
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
name = b"output_norm.weight"
i = b.index(struct.pack("<Q", len(name)) + name) + 8 + len(name)
nd = struct.unpack_from("<I", b, i)[0]
struct.pack_into("<I", b, i + 4 + 8 * nd, 1)
open(sys.argv[2], "wb").write(b)
PY
"$DOCKET" inspect "$TMP/f16norm.gguf" >"$TMP/f16norm.txt" 2>&1 || fail "inspect f16norm: $(cat "$TMP/f16norm.txt")"
expect_line "^can run +no — tensor 'output_norm\.weight' has type f16, which is not supported there$" \
	"$TMP/f16norm.txt"
expect_line '^  output_norm\.weight +f16 +64 ' "$TMP/f16norm.txt"

# ---- errors: one line on stderr, exit 3 ----
head -c 5000 "$MODEL" >"$TMP/trunc.gguf"
"$DOCKET" inspect "$TMP/trunc.gguf" >"$TMP/o" 2>"$TMP/e"
rc=$?
[ "$rc" = 3 ] || fail "truncated file: exit $rc, want 3"
[ "$(wc -l <"$TMP/e")" = 1 ] || fail "truncated file: want one stderr line, got: $(cat "$TMP/e")"
grep -q "^docket: cannot load '$TMP/trunc.gguf': .*truncated" "$TMP/e" ||
	fail "truncated file message: $(cat "$TMP/e")"
[ -s "$TMP/o" ] && fail "truncated file: something on stdout"
# truncated inside the tensor data: the header reads but a tensor runs past the end
head -c 1000000 "$MODEL" >"$TMP/short.gguf"
"$DOCKET" inspect --json "$TMP/short.gguf" >"$TMP/o" 2>"$TMP/e"
rc=$?
[ "$rc" = 3 ] || fail "short data: exit $rc, want 3"
grep -q "^docket: cannot load '$TMP/short.gguf': " "$TMP/e" || fail "short data message: $(cat "$TMP/e")"

printf 'not a model\n' >"$TMP/text.gguf"
"$DOCKET" inspect "$TMP/text.gguf" >/dev/null 2>"$TMP/e"
rc=$?
[ "$rc" = 3 ] || fail "text file: exit $rc, want 3"
grep -q "^docket: cannot load '$TMP/text.gguf': " "$TMP/e" || fail "text file message: $(cat "$TMP/e")"

"$DOCKET" inspect "$TMP/missing.gguf" >/dev/null 2>"$TMP/e"
rc=$?
[ "$rc" = 3 ] || fail "missing file: exit $rc, want 3"
grep -q "^docket: cannot load '$TMP/missing.gguf'" "$TMP/e" || fail "missing file message: $(cat "$TMP/e")"

"$DOCKET" inspect "$MODEL" "$MODEL" >/dev/null 2>&1
rc=$?
[ "$rc" = 1 ] || fail "two models: exit $rc, want 1"
"$DOCKET" inspect --bogus "$MODEL" >/dev/null 2>&1
rc=$?
[ "$rc" = 1 ] || fail "unknown option: exit $rc, want 1"
"$DOCKET" inspect --help >"$TMP/o" 2>&1 || fail "--help failed"
grep -q '^usage: docket inspect' "$TMP/o" || fail "--help text"

if [ "$fails" != 0 ]; then
	echo "$fails check(s) failed"
	exit 1
fi
echo "all inspect checks passed"
