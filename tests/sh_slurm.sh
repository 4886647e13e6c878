#!/usr/bin/env bash
# The README's scale-out recipe on a real one-node Slurm cluster started
# here (munged, slurmctld, slurmd on loopback, all in a temp dir): the shipped
# examples/slurm/summarize.sbatch runs a 4-shard array and its dependent
# merge, while shard 0's docket is stopped partway and the task requeued;
# the merged output must hold every document exactly once, the same records
# as a single-machine run.  Also a structural check of
# examples/k8s/indexed-job.yaml.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_shared
MODEL="$DK_SHARED/models/stories260K.gguf"
H="$DK_SOURCE_DIR/tests/helpers"
EX="$DK_SOURCE_DIR/examples"
fail() { echo "FAIL: $*"; exit 1; }

echo "== examples/k8s/indexed-job.yaml"
python3 - "$EX/k8s/indexed-job.yaml" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
assert "\t" not in text, "tab in YAML"
try:
    import yaml
except ImportError:  # no PyYAML: the structural checks below still run on the text
    yaml = None
if yaml:
    docs = [d for d in yaml.safe_load_all(text) if d]
    kinds = [d["kind"] for d in docs]
    assert "PersistentVolumeClaim" in kinds, kinds
    job = next(d for d in docs if d["kind"] == "Job" and d["spec"].get("completionMode") == "Indexed")
    n = job["spec"]["completions"]
    pod = job["spec"]["template"]["spec"]
    cmd = " ".join(pod["containers"][0]["command"] + pod["containers"][0].get("args", []))
    claims = {v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v}
    assert claims, "no PVC volume"
else:
    n = int(re.search(r"^\s*completions:\s*(\d+)", text, re.M).group(1))
    assert re.search(r"^\s*completionMode:\s*Indexed", text, re.M), "not an Indexed Job"
    cmd = text
# the shard count in the command is the Job's completion count
m = re.search(r"--shard \"?\$\{?JOB_COMPLETION_INDEX\}?\"?/(\d+)", cmd)
assert m and int(m.group(1)) == n, f"--shard does not match completions {n}"
assert "--resume" in cmd, "a retried pod must resume"
PY

# The Slurm daemons: present with the packages scripts/install-deps.sh adds.
for c in munged mungekey munge unmunge slurmctld slurmd sbatch squeue scontrol sinfo scancel; do
	command -v "$c" >/dev/null && continue
	in_ci && fail "$c missing (slurm-wlm, munge: scripts/install-deps.sh); under CI=true a failure, not a skip"
	skip "$c missing (slurm-wlm, munge: scripts/install-deps.sh)"
done
[ "$(id -u)" -eq 0 ] || skip "the one-node cluster runs its daemons as root (SlurmUser=root)"

T=$(mktemp -d /tmp/docket-slurm-XXXXXX)
pids=()
cleanup() {
	# Jobs first, so that no slurmstepd outlives its slurmd, then the daemons.
	if [ -n "${SLURM_CONF:-}" ] && [ ${#pids[@]} -gt 1 ]; then
		scancel --full --quiet --user=root 2>/dev/null || true
		for _ in $(seq 50); do
			[ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
			sleep 0.2
		done
	fi
	local p left
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
	# Whatever a job left (slurmstepd, docket) still works in the temp dir.
	cd /
	for _ in $(seq 25); do
		left=$(in_tmp)
		[ -z "$left" ] && break
		sleep 0.2
	done
	# shellcheck disable=SC2086 # a list of pids
	[ -z "$left" ] || kill -9 $left 2>/dev/null || true
	rm -rf "$T"
}
in_tmp() { # the pids of processes whose working directory is in $T
	local d c
	for d in /proc/[0-9]*; do
		c=$(readlink "$d/cwd" 2>/dev/null) || continue
		[[ $c == "$T" || $c == "$T"/* ]] && echo "${d#/proc/}"
	done
	return 0
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
# munged wants every directory above its socket searchable by all.
chmod 755 "$T"
cd "$T"
dump() { # on failure: what the daemons and the jobs said
	local f
	for f in "$T"/*.log "$T"/*.err; do [ -e "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done
	squeue 2>/dev/null || true
}
diag() { dump; fail "$*"; }

echo "== one-node cluster"
mungekey --create --keyfile="$T/munge.key" 2>"$T/mungekey.err" || diag "mungekey"
munged -F --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
	--log-file="$T/munged.log" --seed-file="$T/munged.seed" 2>"$T/munged.err" &
pids+=($!)
for _ in $(seq 50); do [ -S "$T/munge.sock" ] && break; sleep 0.1; done
munge -S "$T/munge.sock" -n </dev/null | unmunge -S "$T/munge.sock" >/dev/null 2>&1 || diag "munged"

ports=$(python3 -c '
import socket
s = [socket.socket() for _ in range(2)]
for x in s: x.bind(("127.0.0.1", 0))
print(*[x.getsockname()[1] for x in s])')
read -r ctld_port d_port <<<"$ports"
node=$(hostname -s)
mkdir -p "$T/state" "$T/spool"
cat >"$T/slurm.conf" <<EOF
ClusterName=dockettest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge.sock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
KillWait=5
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/slurmctld.log
SlurmdLogFile=$T/slurmd.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=256 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$T/slurmctld.err" 2>&1 &
pids+=($!)
slurmd -D -f "$SLURM_CONF" -N "$node" >"$T/slurmd.err" 2>&1 &
pids+=($!)

# The single-machine reference, computed while the cluster comes up.
# Inputs by a relative path, as records carry it: the shards' sizes then do
# not depend on the temp dir's name (jobs run in the directory they were
# submitted from).
python3 "$H/mkcorpus.py" in 24 11
cat >"$T/p.json" <<JSON
{"name": "slurm-test", "task": "generate",
 "prompts": {"user": "$DK_SOURCE_DIR/prompts/summarize-map.txt"},
 "generation": {"max_tokens": 8}}
JSON
# --seqs 1: shard 0's 9 records come one at a time, so it stops partway.
ARGS=(-m "$MODEL" --seqs 1 --sync-every 1)
"$DK_DOCKET" run "$T/p.json" in -o "$T/ref.jsonl" -t 1 --progress none "${ARGS[@]}" 2>"$T/ref.err" ||
	diag "single-machine run"
docs=$(wc -l <"$T/ref.jsonl")
[ "$docs" -eq 26 ] || fail "single-machine run: $docs records, expected 26"

for _ in $(seq 150); do
	[ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && break
	for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || diag "a daemon exited"; done
	sleep 0.2
done
[ "$(sinfo -h -o %t 2>/dev/null)" = idle ] || diag "node $node not idle: $(sinfo -h -o %t 2>&1)"
# Only loopback: the daemons' listening sockets, from /proc/net/tcp{,6}.
python3 - "$ctld_port" "$d_port" <<'PY' || diag "a daemon listens beyond loopback"
import sys
ports = {int(p) for p in sys.argv[1:]}
seen = []
for f in ("/proc/net/tcp", "/proc/net/tcp6"):
    try:
        lines = open(f).read().splitlines()[1:]
    except OSError:
        continue
    for l in lines:
        local, state = l.split()[1], l.split()[3]
        addr, port = local.split(":")
        if state == "0A" and int(port, 16) in ports:
            seen.append(addr)
            assert addr == "0100007F", f"listening on {addr}:{int(port, 16)}"
assert seen, "no listening socket found"
PY

echo "== the shipped array job, shard 0 requeued partway"
# For task 0's first run only: docket is stopped once it has written two
# records, so that the requeue is sure to land in the middle of the shard.
cat >"$T/docket-pause" <<EOF
#!/usr/bin/env bash
if [ "\$SLURM_ARRAY_TASK_ID" = 0 ] && [ "\${SLURM_RESTART_COUNT:-0}" -eq 0 ]; then
	"$DK_DOCKET" "\$@" & pid=\$!
	until [ -s "$T/out/out.0.jsonl" ] && [ "\$(wc -l <"$T/out/out.0.jsonl")" -ge 2 ]; do
		kill -0 \$pid 2>/dev/null || exit 9
		sleep 0.01
	done
	kill -STOP \$pid
	touch "$T/paused"
	wait \$pid
	exit
fi
exec "$DK_DOCKET" "\$@"
EOF
chmod +x "$T/docket-pause"
start=$(date +%s)
SHARDS=4 DOCKET="$T/docket-pause" PIPELINE="$T/p.json" SBATCH_ARGS="--cpus-per-task=1" \
	"$EX/slurm/summarize.sbatch" in "$T/out" "${ARGS[@]}" >"$T/submit.out" 2>"$T/submit.err" ||
	diag "submit: $(cat "$T/submit.err")"
array=$(awk '$1 == "shards" { print $2 }' "$T/submit.out")
merge=$(awk '$1 == "merge" { print $2 }' "$T/submit.out")
[ -n "$array" ] && [ -n "$merge" ] || diag "submit printed: $(cat "$T/submit.out")"

for _ in $(seq 300); do [ -e "$T/paused" ] && break; sleep 0.1; done
[ -e "$T/paused" ] || diag "task 0 never reached two records"
partial=$(wc -l <"$T/out/out.0.jsonl")
scontrol requeue "${array}_0" || diag "requeue"
# A requeued job waits out its credential's lifetime (120 s) before it may
# start again; a test need not. But slurmd refuses a credential issued in the
# same second as the revocation (it compares whole seconds), so two seconds on.
for _ in $(seq 100); do
	[[ $(scontrol show job "${array}_0") == *JobState=PENDING* ]] &&
		scontrol update JobId="${array}_0" StartTime=now+2 2>/dev/null && break
	sleep 0.1
done

for _ in $(seq 900); do
	[ -z "$(squeue -h -o %i)" ] && break
	sleep 0.1
done
[ -z "$(squeue -h -o %i)" ] || diag "jobs still queued after 90 s"
echo "array, requeue and merge: $(($(date +%s) - start)) s"
state=$(scontrol show job "$merge")
[[ $state == *JobState=COMPLETED* ]] || diag "merge job: $(grep -o 'JobState=[A-Z]*' <<<"$state")"

log0="$T/docket-summarize-${array}_0.log"
[ -e "$log0" ] || diag "no log for task 0"
grep -q "DUE TO JOB REQUEUE" "$log0" || diag "task 0 was not requeued"
done0=$(sed -n 's/.*; \([0-9]*\) already done.*/\1/p' "$log0" | tail -n 1)
n0=$(wc -l <"$T/out/out.0.jsonl")
echo "task 0: $partial records when stopped, $done0 kept by --resume, $n0 in all"
[ -n "$done0" ] && [ "$done0" -ge 2 ] && [ "$done0" -lt "$n0" ] ||
	{ cat "$log0"; fail "task 0 was not resumed partway"; }

python3 "$H/records.py" compare "$T/ref.jsonl" "$T/out/all.jsonl" || { dump; fail "merged output differs"; }
[ "$(wc -l <"$T/out/all.jsonl")" -eq "$docs" ] || fail "merged output: not one record per document"
# the four shards split the documents: none twice, none left out
cat "$T"/out/out.[0-3].jsonl | python3 -c '
import json, sys
ids = [json.loads(l)["id"] for l in sys.stdin]
assert len(ids) == len(set(ids)) == int(sys.argv[1]), (len(ids), len(set(ids)))' "$docs" ||
	fail "shards overlap or lose documents"
echo PASS
