#!/usr/bin/env bash
# The CI gate of README and examples/ci: `docket run classify-files TREE
# --fail-on sensitive` with the default model over a small repository that
# holds a fake secret.  It exits 2 and names that file (and only it) on
# stderr; every file has a record (the binary one a skipped record, the
# dot-files too); without the secret the same command exits 0.  The secrets
# are assembled at run time, so this script holds none.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SOURCE_DIR:?}"
. "$DK_SOURCE_DIR/tests/helpers/skip.sh"
need_default_model
MODEL=$(default_model)
T=$(mktemp -d /tmp/docket-gate-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
cd "$T"
mkdir -p repo/src repo/tests repo/docs repo/config repo/.github/workflows
cat >repo/src/main.c <<'EOF'
#include <stdio.h>

int main(int argc, char **argv)
{
	const char *name = argc > 1 ? argv[1] : "world";
	printf("hello, %s\n", name);
	return 0;
}
EOF
cat >repo/tests/test_main.py <<'EOF'
import subprocess

def test_hello():
    out = subprocess.run(["./main", "ci"], capture_output=True, text=True).stdout
    assert out == "hello, ci\n"
EOF
cat >repo/README.md <<'EOF'
# hello

A program that greets. Build it with `make`, run the tests with `pytest`.
EOF
cat >repo/docs/usage.md <<'EOF'
# Usage

Run `./main NAME` to be greeted by name.
EOF
cat >repo/Makefile <<'EOF'
main: src/main.c
	cc -O2 -o main src/main.c
EOF
cat >repo/.github/workflows/ci.yml <<'EOF'
on: push
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make && pytest
EOF
printf 'port: 8080\nlog_level: info\n' >repo/config/app.yaml
printf '\x00\x01\x02\x03binary\x00' >repo/logo.bin
# the fake secret: a database password and an AWS key id in a settings file
{
	printf 'database:\n  host: db.internal\n  user: app\n'
	printf '  password: %s%s\n' "Zq8v" "-r3al-Pa55w0rd"
	printf 'aws:\n  access_key_id: %s%s\n' "AKIA" "Q7WERTY2UIOP4ASD"
} >repo/config/production.yaml

R() { "$DK_DOCKET" run classify-files "$@" -m "$MODEL" -t 2 --progress none; }
rc=0
R repo -o out.jsonl --fail-on sensitive 2>err || rc=$?
cat err
[ "$rc" -eq 2 ] || fail "--fail-on sensitive exited $rc, expected 2"
grep -qF -- "--fail-on: 'repo/config/production.yaml' is sensitive" err || fail "the secret file is not named"
[ "$(grep -c -- '--fail-on:' err)" -eq 1 ] || fail "files other than the secret named: $(grep -- '--fail-on:' err)"
grep -q "1 file(s) got a --fail-on label" err || fail "no count of the files that failed"

python3 - out.jsonl <<'PY'
import json, sys
recs = {json.loads(l)["source"]["path"]: json.loads(l) for l in open(sys.argv[1])}
for p, r in sorted(recs.items()):
    print(p, r["status"], r.get("output"), r.get("skip_reason", ""))
want = {"repo/src/main.c", "repo/tests/test_main.py", "repo/README.md", "repo/docs/usage.md",
        "repo/Makefile", "repo/.github/workflows/ci.yml", "repo/config/app.yaml",
        "repo/config/production.yaml", "repo/logo.bin"}
assert set(recs) == want, set(recs) ^ want
assert recs["repo/logo.bin"]["status"] == "skipped" and recs["repo/logo.bin"]["skip_reason"] == "binary"
ok = {p: r["output"] for p, r in recs.items() if r["status"] == "ok"}
assert ok["repo/config/production.yaml"] == "sensitive", ok
assert [p for p, l in ok.items() if l == "sensitive"] == ["repo/config/production.yaml"], ok
for r in recs.values():
    if r["status"] == "ok":
        assert set(r["labels"]) == {"source", "test", "documentation", "configuration", "build",
                                    "data", "generated", "sensitive"}, r["labels"]
        assert abs(sum(r["labels"].values()) - 1) < 1e-4, r["labels"]
PY

# the secret gone, the gate passes
rm repo/config/production.yaml
R repo -o out2.jsonl --fail-on sensitive 2>err2 || { cat err2; fail "the clean tree did not pass the gate"; }
! grep -q -- "--fail-on:" err2 || fail "a file named in a clean tree: $(cat err2)"
echo PASS
