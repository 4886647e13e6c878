#!/usr/bin/env bash
# A model whose vocabulary holds a 300 KB token (stories260K's tokenizer with
# token 300 replaced) used to crash `generate --grammar`, `--json-schema` and
# the extract pipeline: the grammar trie recursed once per byte.  Now the
# tokenizer refuses it with a message naming the file and the token, and a
# token at the limit (4096 bytes) is constrained normally through a trie
# 4096 levels deep, with a grammar that makes every level a new parse state.
set -u
D=${DK_DOCKET:?}; S=${DK_SHARED:?}; H=${DK_SOURCE_DIR:?}/tests/helpers
GEN=${DK_BUILD_DIR:?}/bench/bench_gen_gguf
VOCAB="$S/models/stories260K.gguf"
t=$(mktemp -d); trap 'rm -rf "$t"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
if [ ! -f "$VOCAB" ] || [ ! -x "$GEN" ] || ! command -v python3 >/dev/null; then
	echo "SKIP: needs $VOCAB, $GEN and python3"
	[ "${CI:-}" = true ] && exit 1
	exit 77
fi

for n in 307200 4096; do
	python3 "$H/gguf_vocab.py" "$t/v$n.gguf" 300 $n "$VOCAB" || fail "gguf_vocab.py $n"
	"$GEN" --shape tiny --type q8_0 --vocab-from "$t/v$n.gguf" --out "$t/m$n.gguf" --seed 1 \
		2>"$t/gen.err" || fail "bench_gen_gguf $n: $(cat "$t/gen.err")"
done
printf 'root ::= ("a" "b")*\n' >"$t/ab.gbnf"
printf '{"type":"object","properties":{"k":{"type":"string"}},"required":["k"]}\n' >"$t/s.json"

# the hostile one: a clean error (exit 3, no signal) on every path
want="token 300 is 307200 bytes (limit 4096)"
for args in "--grammar $t/ab.gbnf" "--json-schema $t/s.json" ""; do
	# shellcheck disable=SC2086
	err=$("$D" generate -m "$t/m307200.gguf" -t 1 -p "Once" -n 4 $args 2>&1 >/dev/null); rc=$?
	[ $rc -eq 3 ] || fail "generate $args on the hostile model: exit $rc ($err)"
	case "$err" in *"m307200.gguf"*"$want"*) ;; *) fail "generate $args message: $err";; esac
done
mkdir "$t/in" && echo "The cat sat on the mat." >"$t/in/a.txt"
cat >"$t/p.json" <<'J'
{"name":"x","task":"extract","schema":{"type":"object","properties":{"k":{"type":"string"}},"required":["k"]},
 "prompts":{"user":"u.txt"},"extract":{"mode":"object"},"generation":{"max_tokens":40,"temperature":0}}
J
printf '{{text}}\n{{schema}}\n' >"$t/u.txt"
err=$(cd "$t" && "$D" run p.json in -o out.jsonl -m "$t/m307200.gguf" -t 1 --progress none 2>&1 >/dev/null); rc=$?
[ $rc -ge 1 ] && [ $rc -lt 128 ] || fail "run extract on the hostile model: exit $rc ($err)"
case "$err" in *"$want"*) ;; *) fail "run extract message: $err";; esac

# at the limit: constrained generation works and follows the grammar
out=$("$D" generate -m "$t/m4096.gguf" -t 1 -p "Once" -n 6 --grammar "$t/ab.gbnf") ||
	fail "generate --grammar at the limit: exit $?"
printf '%s' "$out" | grep -Eqx '(ab)*a?' || fail "grammar output '$out'"
out=$("$D" generate -m "$t/m4096.gguf" -t 1 -p "Once" -n 40 --json-schema "$t/s.json" --json) ||
	fail "generate --json-schema at the limit: exit $?"
case "$out" in *'"text":"{'*) ;; *) fail "schema output: $out";; esac
echo PASS
