#!/usr/bin/env bash
# `docket run --prefix-dir`: the pipeline's instructions are computed once
# and kept on disk for the next run; the file holds the instructions' tokens
# and nothing of any document (not its name either); records are the same
# with and without it; a damaged file is replaced, never fatal; refusals.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
T=$(mktemp -d /tmp/docket-pfx-XXXXXX)
trap 'rm -rf "$T"' EXIT
cd "$T"
fail() { echo "FAIL: $*"; exit 1; }
R() { "$DK_DOCKET" run pl.json "$@" -m "$MODEL" -t 1 --progress none --max-tokens 6; }
report() { python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))" "$@"; }

python3 "$H/mkcorpus.py" a 5 1
python3 "$H/mkcorpus.py" b 5 2
# other documents under other names: a head that held a name would differ
for f in b/*/*.txt; do mv "$f" "$(dirname "$f")/other-$(basename "$f")"; done

SYSTEM="Once upon a time there was a little girl who liked to read stories about the sun, the sea and the big green tree in the park."
printf '%s' "$SYSTEM" > system.txt
printf 'File {{name}} says:\n{{text}}\n' > user.txt
cat > pl.json <<JSON
{"name": "pfx", "task": "generate", "chunking": {"max_tokens": 64, "overlap_tokens": 0},
 "prompts": {"system": "system.txt", "user": "user.txt"}, "generation": {"max_tokens": 6}}
JSON

echo "== no prefix dir: the baseline records"
R a -o base.jsonl 2>/dev/null

echo "== first run computes the instructions and writes them"
R a -o one.jsonl --prefix-dir pfx --report one.json 2>one.err
[ "$(ls pfx | wc -l)" -eq 1 ] || fail "expected one prefix file, got: $(ls pfx)"
F=$(ls pfx)
case "$F" in *-f16-*.dkkv) ;; *) fail "file name '$F'";; esac
[ "$(report one.json 'r["prefix_files"]["saved"]')" = 1 ] || fail "saved count"
[ "$(report one.json 'r["prefix_files"]["loaded"]')" = 0 ] || fail "loaded count"
[ "$(stat -c %a pfx)" = 700 ] || fail "prefix directory mode $(stat -c %a pfx)"

echo "== the file holds the instructions' tokens, whole blocks of them, and no more"
HEAD_IDS=$("$DK_DOCKET" tokenize -m "$MODEL" --ids "$(printf '%s\n\nFile ' "$SYSTEM")")
python3 - "pfx/$F" "$HEAD_IDS" <<'PY'
import struct, sys
data = open(sys.argv[1], "rb").read()
head = [int(x) for x in sys.argv[2].split()]
assert data[:8] == b"DKKVPFX4", data[:8]
n_layer, kv_dim, esize, block, n_blocks = struct.unpack_from("<5I", data, 72)
assert block == 16 and esize == 2, (block, esize)
# the numerics the blocks were computed with (dk_ctx_numerics)
assert data[92:124].rstrip(b"\0") == b"portable", data[92:124]
n = n_blocks * block
toks = list(struct.unpack_from("<%di" % n, data, 124))
# the head ends before {{name}}: at most the tokens of system + "\n\nFile "
assert 32 <= n <= len(head), (n, len(head))
assert len(head) - n < 16 + 2, (n, len(head))
assert toks == head[:n], (toks, head[:n])
PY

echo "== the next run loads them; its records are the same"
R a -o two.jsonl --prefix-dir pfx --report two.json 2>two.err
[ "$(report two.json 'r["prefix_files"]["loaded"]')" = 1 ] || { cat two.err; fail "not loaded"; }
[ "$(report two.json 'r["prefix_files"]["saved"]')" = 0 ] || fail "saved again"
LOADED=$(report two.json 'r["prefix_files"]["loaded_tokens"]')
[ "$LOADED" -ge 32 ] || fail "loaded $LOADED tokens"
C1=$(report one.json 'r["tokens"]["cached"]')
C2=$(report two.json 'r["tokens"]["cached"]')
[ "$C2" -eq $((C1 + LOADED)) ] || fail "cached tokens $C1 -> $C2, loaded $LOADED"
cmp -s <(python3 -c "import json,sys; [print(json.loads(l)['id'], json.loads(l)['output']) for l in open(sys.argv[1])]" base.jsonl | sort) \
       <(python3 -c "import json,sys; [print(json.loads(l)['id'], json.loads(l)['output']) for l in open(sys.argv[1])]" two.jsonl | sort) ||
	fail "records differ with a loaded prefix"
! grep -q "instructions" two.err || { cat two.err; fail "warnings on a clean load"; }

echo "== every kernel level loads it (portable numerics) and gives the same records"
for lv in ref avx2 avx512; do
	DOCKET_KERNELS=$lv R a -o lv-$lv.jsonl --prefix-dir pfx --report lv-$lv.json 2>lv.err
	[ "$(report lv-$lv.json 'r["prefix_files"]["loaded"]')" = 1 ] || { cat lv.err; fail "not loaded at $lv"; }
	cmp -s <(python3 -c "import json,sys; [print(json.loads(l)['id'], json.loads(l)['output']) for l in open(sys.argv[1])]" base.jsonl | sort) \
	       <(python3 -c "import json,sys; [print(json.loads(l)['id'], json.loads(l)['output']) for l in open(sys.argv[1])]" lv-$lv.jsonl | sort) ||
		fail "records differ at level $lv with a loaded prefix"
done

echo "== a file computed with OpenBLAS (other numerics) is refused by name and recomputed"
mkdir pfxblas
DOCKET_PREFILL=blas R a -o blas.jsonl --prefix-dir pfxblas --no-deterministic 2>/dev/null
[ "$(ls pfxblas)" = "$F" ] || fail "the OpenBLAS run wrote '$(ls pfxblas)'"
python3 -c "import sys; d=open(sys.argv[1],'rb').read(); assert d[92:124].startswith(b'kernels='), d[92:124]" "pfxblas/$F"
cp "pfxblas/$F" pfx/
R a -o five.jsonl --prefix-dir pfx --report five.json 2>five.err
grep -q "computed with numerics 'kernels=" five.err || { cat five.err; fail "blas file not refused"; }
[ "$(report five.json 'r["prefix_files"]["loaded"]')" = 0 ] || fail "blas file loaded"
[ "$(report five.json 'r["prefix_files"]["saved"]')" = 1 ] || fail "blas file not replaced"

echo "== other documents under other names make the same file, byte for byte"
R b -o b.jsonl --prefix-dir pfxb 2>/dev/null
[ "$(ls pfxb)" = "$F" ] || fail "another corpus made '$(ls pfxb)', not '$F'"
cmp -s "pfx/$F" "pfxb/$F" || fail "the prefix file depends on the documents"

echo "== a damaged file is reported by name, the run goes on, the file is replaced"
head -c 500 "pfx/$F" > cut && mv cut "pfx/$F"
R a -o three.jsonl --prefix-dir pfx --report three.json 2>three.err
grep -q "$F' is truncated; computing the instructions instead" three.err || { cat three.err; fail "no warning"; }
[ "$(report three.json 'r["prefix_files"]["saved"]')" = 1 ] || fail "not rewritten"
cmp -s "pfx/$F" "pfxb/$F" || fail "rewritten file differs"
R a -o four.jsonl --prefix-dir pfx --report four.json 2>/dev/null
[ "$(report four.json 'r["prefix_files"]["loaded"]')" = 1 ] || fail "rewritten file not loaded"

echo "== refusals, with nothing written"
rc=0; R a -o x.jsonl --prefix-dir pfx --no-prefix-cache 2>err || rc=$?
[ "$rc" -eq 1 ] && grep -q "needs the prefix cache" err || fail "--no-prefix-cache: rc $rc $(cat err)"
rc=0; R a -o x.jsonl --prefix-dir system.txt 2>err || rc=$?
[ "$rc" -eq 1 ] && grep -q "'system.txt' is not a directory" err || fail "file as dir: rc $rc $(cat err)"
[ ! -e x.jsonl ] || fail "an output was written by a refused run"
echo '{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"messages":[{"role":"user","content":"hi"}]}}' > in.jsonl
rc=0; "$DK_DOCKET" batch in.jsonl -o bo.jsonl -m "$MODEL" --prefix-dir pfx 2>err || rc=$?
[ "$rc" -eq 1 ] && grep -q "prefix-dir is for pipelines" err || fail "batch: rc $rc $(cat err)"
echo "ok"
