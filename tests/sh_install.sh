#!/usr/bin/env bash
# cmake --install into a temporary prefix: the binary, the shipped pipelines
# and prompts, the man page and the bash completion land where a user looks
# for them, and the installed binary, run from another directory, uses its
# own share/docket/pipelines (not the source tree it was built from).
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}" "${DK_BUILD_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
MODEL="$DK_SHARED/models/stories260K.gguf"
need "$MODEL" "stories260K (../shared/models)"
T=$(mktemp -d /tmp/docket-install-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
P="$T/prefix"
cmake --install "$DK_BUILD_DIR" --prefix "$P" >"$T/install.log" || { cat "$T/install.log"; fail "install"; }
for f in bin/docket share/docket/pipelines/summarize-records.json share/docket/pipelines/classify-files.json \
	share/docket/pipelines/extract-fields.json share/docket/prompts/summarize-map.txt \
	share/man/man1/docket.1 share/bash-completion/completions/docket; do
	[ -e "$P/$f" ] || fail "not installed: $f"
done
[ -x "$P/bin/docket" ] || fail "bin/docket is not executable"
"$P/bin/docket" --version | grep -Eq '^docket [0-9.]+ \(kernels (avx512|avx2|ref)\)$' || fail "--version"
"$P/bin/docket" version --json | python3 -c 'import json,sys; d=json.load(sys.stdin); assert d["version"] and d["kernels"]' ||
	fail "version --json"

# the installed pipeline is the one used: mark it, and its hash changes
python3 - "$P/share/docket/pipelines/summarize-records.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1])); p["description"] += " (installed copy)"
json.dump(p, open(sys.argv[1], "w"))
PY
mkdir "$T/elsewhere" "$T/elsewhere/in"
printf 'Once upon a time a cat sat on a mat.\n' >"$T/elsewhere/in/a.txt"
cd "$T/elsewhere"
env -u DOCKET_PIPELINES "$P/bin/docket" run summarize-records in -m "$MODEL" -t 1 --progress none \
	--max-tokens 4 -o out.jsonl 2>run.err || { cat run.err; fail "installed run"; }
env -u DOCKET_PIPELINES "$DK_DOCKET" run summarize-records in -m "$MODEL" -t 1 --progress none \
	--max-tokens 4 -o tree.jsonl 2>/dev/null || fail "build-tree run"
installed=$(python3 -c 'import json; print(json.loads(open("out.jsonl").readline())["pipeline"]["hash"])')
tree=$(python3 -c 'import json; print(json.loads(open("tree.jsonl").readline())["pipeline"]["hash"])')
[ "$installed" != "$tree" ] || fail "the installed docket used the source tree's pipeline"
"$P/bin/docket" ls --pipeline classify-files in >/dev/null || fail "ls --pipeline by name"

# the man page renders; the completion offers commands and pipeline names
if command -v man >/dev/null; then
	MANWIDTH=80 man -l "$P/share/man/man1/docket.1" 2>"$T/man.err" | grep -q "EXIT STATUS" || fail "man page"
	! grep -qi "warning" "$T/man.err" || fail "man page warnings: $(cat "$T/man.err")"
fi
out=$(PATH="$P/bin:$PATH" bash -c '
	. "$1"
	COMP_WORDS=(docket r); COMP_CWORD=1; _docket; echo "cmds: ${COMPREPLY[*]}"
	COMP_WORDS=(docket run summ); COMP_CWORD=2; _docket; echo "pipelines: ${COMPREPLY[*]}"
	COMP_WORDS=(docket run summarize-records in --no-pre); COMP_CWORD=4; _docket; echo "flags: ${COMPREPLY[*]}"
' _ "$P/share/bash-completion/completions/docket")
echo "$out" | grep -q "^cmds: run$" || fail "completion of commands: $out"
echo "$out" | grep -q "^pipelines: summarize-records$" || fail "completion of pipelines: $out"
echo "$out" | grep -q "^flags: --no-prefix-cache$" || fail "completion of flags: $out"
echo "ok"
