#!/usr/bin/env bash
# classify-files, the CI labels, with the default model (or $MODEL):
#   1. speed: files/s over this repository's src/ (every file, one record
#      each), REPS runs, the median, with the CPU seconds each run used;
#   2. accuracy on the hand-labelled files of tests/data/classify-files-labels.json
#      (this repository's own and ../shared/corpus/file_type_samples_libmagic):
#      per-label recall and precision (bench/score_classify_files.py);
#   3. the rules alone (build/bench/bench_filehints: the label the facts in
#      the prompt suggest, from the files' bytes), and with ABLATION=1 the
#      model alone, without the facts in its prompt.
# usage: bench/classify_files.sh [REPS]   (default 3; env MODEL, THREADS (default 2), SHARED, DOCKET,
#        SPEED_ONLY=1 to stop after 1)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DOCKET=${DOCKET:-$ROOT/build/docket}
SHARED=${SHARED:-$ROOT/../shared}
REPS=${1:-3}
ARGS=(--progress none -t "${THREADS:-2}")
[ -n "${MODEL:-}" ] && ARGS+=(-m "$MODEL")
T=$(mktemp -d /tmp/docket-clsfiles-XXXXXX)
trap 'rm -rf "$T"' EXIT
LABELS="$ROOT/tests/data/classify-files-labels.json"
cd "$ROOT"
# as the labels spell it: relative to the repository
LIBMAGIC=$(python3 -c 'import os, sys; print(os.path.relpath(sys.argv[1]))' "$SHARED/corpus/file_type_samples_libmagic")

echo "== speed: src/ ($(find src -type f | wc -l) files), $REPS runs, ${THREADS:-2} threads"
for i in $(seq "$REPS"); do
	python3 - "$DOCKET" "$T/src.jsonl" "$T/rep.json" "${ARGS[@]}" <<'PY'
import json, os, resource, subprocess, sys, time
docket, out, rep, args = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
t0 = time.monotonic()
rc = subprocess.run([docket, "run", "classify-files", "src", "-o", out, "--overwrite",
                     "--report", rep] + args, stderr=subprocess.DEVNULL).returncode
wall = time.monotonic() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
r = json.load(open(rep))
files = sum(len(fs) for _, _, fs in os.walk("src"))
recs = sum(1 for _ in open(out))
print(f"run: {files / wall:.2f} files/s  wall {wall:.1f} s  cpu {ru.ru_utime + ru.ru_stime:.1f} s  "
      f"records {recs}/{files} (ok {r['ok']}, skipped {r['skipped']}, error {r['error']})  "
      f"load {os.getloadavg()[0]:.1f}  rc {rc}")
PY
done | tee "$T/speed"
python3 - "$T/speed" <<'PY'
import re, statistics, sys
fps = [float(re.search(r"run: ([\d.]+) files/s", l).group(1)) for l in open(sys.argv[1])]
cpu = [float(re.search(r"cpu ([\d.]+) s", l).group(1)) for l in open(sys.argv[1])]
print(f"median {statistics.median(fps):.2f} files/s (cpu {statistics.median(cpu):.1f} s a run; "
      "another load on the machine lowers files/s, not cpu)")
PY

[ "${SPEED_ONLY:-0}" = 1 ] && exit 0

# the labelled files: this repository's by path (an archive for its
# members), the libmagic samples as a tree
python3 -c 'import json, sys; [print(p) for p in sorted({p.split("!/")[0] for p in json.load(open(sys.argv[1])) if not p.startswith("../")})]' \
	"$LABELS" >"$T/repo.list"
run_set() { # run_set PIPELINE OUT
	"$DOCKET" run "$1" - "$LIBMAGIC" -o "$2" "${ARGS[@]}" <"$T/repo.list" 2>/dev/null || true
}
echo "== accuracy: $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' "$LABELS") hand-labelled files"
run_set classify-files "$T/acc.jsonl"
python3 bench/score_classify_files.py "$T/acc.jsonl" "$LABELS"
python3 - "$LABELS" "$T" <<'PY'
import json, sys
g = json.load(open(sys.argv[1]))
json.dump({p: l for p, l in g.items() if not p.startswith("../")}, open(sys.argv[2] + "/repo.json", "w"))
json.dump({p: l for p, l in g.items() if p.startswith("../")}, open(sys.argv[2] + "/libmagic.json", "w"))
PY
echo "-- this repository's files"
python3 bench/score_classify_files.py "$T/acc.jsonl" "$T/repo.json" | sed -n '2,12p'
echo "-- file_type_samples_libmagic"
python3 bench/score_classify_files.py "$T/acc.jsonl" "$T/libmagic.json" | sed -n '2,12p'

echo "== the rules alone: the label their facts suggest (\"none\": no rule spoke)"
{ grep -v '!/' "$T/repo.list"; find "$LIBMAGIC" -type f; } |
	"$(dirname "$DOCKET")/bench/bench_filehints" "$LIBMAGIC" 2>/dev/null |
	python3 -c '
import json, sys
for line in sys.stdin:
    path, hints = line.rstrip("\n").split("\t", 1)
    print(json.dumps({"source": {"path": path}, "status": "ok", "output": hints.rsplit("| Rules: ", 1)[1]}))
' >"$T/rules.jsonl"
python3 bench/score_classify_files.py "$T/rules.jsonl" "$LABELS" | grep -v "^no record"

if [ "${ABLATION:-0}" = 1 ]; then
	echo "== the model alone: no facts in the answer frame"
	python3 - "$ROOT" "$T" <<'PY'
import json, sys
root, t = sys.argv[1], sys.argv[2]
p = json.load(open(f"{root}/pipelines/classify-files.json"))
p.pop("$schema", None)
p["name"] = "classify-files-nofacts"
p["prompts"] = {k: f"{root}/pipelines/{v}" for k, v in p["prompts"].items()}
open(f"{t}/answer.txt", "w").write("File: {{path}} | Label:")
p["prompts"]["answer"] = f"{t}/answer.txt"
json.dump(p, open(f"{t}/nofacts.json", "w"))
PY
	run_set "$T/nofacts.json" "$T/nofacts.jsonl"
	python3 bench/score_classify_files.py "$T/nofacts.jsonl" "$LABELS"
fi
