#!/usr/bin/env bash
# A CI gate over a repository: every file gets a label (source, test,
# documentation, configuration, build, data, generated, sensitive), and the
# job fails when any file looks like it holds a secret or personal data.
#   examples/ci/gate.sh [TREE] [extra docket run options...]
# Exit 0: no file is sensitive; 2: some are (each named on stderr, the
# labels of all in $OUT); 1 or 3: docket could not run.
set -euo pipefail
TREE=${1:-.}
shift || true
OUT=${OUT:-file-labels.jsonl}
DOCKET=${DOCKET:-docket}
rc=0
# build outputs are not the repository's files; .git is left out by the pipeline
"$DOCKET" run classify-files "$TREE" -o "$OUT" --overwrite --exclude 'build/**' \
	--fail-on sensitive "$@" || rc=$?
# a table of the labels, for the job log
python3 - "$OUT" <<'PY'
import collections, json, sys
n = collections.Counter()
for line in open(sys.argv[1]):
    r = json.loads(line)
    n[r["output"] if r["status"] == "ok" else r["status"]] += 1
print("  ".join(f"{k}: {v}" for k, v in n.most_common()))
PY
exit "$rc"
