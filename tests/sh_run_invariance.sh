#!/usr/bin/env bash
# A record's bits depend on the document, the pipeline, the model and the
# generation settings, never on how the run was scheduled: for every shipped
# pipeline (and examples/pipelines/*), records are byte-identical, after
# dropping usage, timing_ms and created, with the prefix cache on or off,
# one sequence at a time, 1/8/16 sequences in flight, 1 or 2 threads, and
# --prefix-dir cold or warm.  Runs on the default model over examples/ plus
# a slice of ../shared/corpus (all three tasks), and on the tiny model.
set -euo pipefail
: "${DK_DOCKET:?}" "${DK_SHARED:?}" "${DK_SOURCE_DIR:?}"
MODEL=${DOCKET_MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf}
C="$DK_SHARED/corpus"
need() {
	[ -r "$1" ] && return 0
	echo "SKIP: $1 not found ($2)" >&2
	[ "${CI:-}" = true ] && { echo "FAIL: in CI this is a failure" >&2; exit 1; }
	exit 77
}
need "$MODEL" "scripts/fetch-model.sh"
need "$C/bbc_news/bbc/sport/199.txt" "../shared/corpus"
T=$(mktemp -d /tmp/docket-inv-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
S="$DK_SOURCE_DIR"

# normalised records: scheduling-dependent fields dropped, in id order
norm() { jq -cS 'del(.usage, .timing_ms, .created)' "$1" | sort; }

# matrix NAME MODEL PIPELINE INPUT...: the baseline run, then every other
# setting, each compared with the baseline byte for byte
matrix() {
	local name=$1 model=$2 pl=$3
	shift 3
	local d="$T/$name"
	mkdir -p "$d"
	local variants=("base|" "nocache|--no-prefix-cache" "one|--one-at-a-time" "seqs1|--seqs 1"
			"seqs16|--seqs 16" "threads1|--threads 1" "threads2|--threads 2"
			"pfxcold|--prefix-dir $d/pfx" "pfxwarm|--prefix-dir $d/pfx")
	local v n a
	for v in "${variants[@]}"; do
		n=${v%%|*}
		a=${v#*|}
		# shellcheck disable=SC2086
		"$DK_DOCKET" run "$pl" "$@" -m "$model" -o "$d/$n.jsonl" --progress none $a 2>"$d/$n.err" ||
			fail "$name/$n: exit $? ($(tail -1 "$d/$n.err"))"
		norm "$d/$n.jsonl" >"$d/$n.norm"
		[ -s "$d/$n.norm" ] || fail "$name/$n: no records"
		if ! cmp -s "$d/base.norm" "$d/$n.norm"; then
			diff <(tr ',' '\n' <"$d/base.norm") <(tr ',' '\n' <"$d/$n.norm") | head -20
			fail "$name: records with $a differ from the baseline's"
		fi
	done
	[ -n "$(ls "$d/pfx")" ] || fail "$name: --prefix-dir wrote no file"
	echo "ok $name: $(wc -l <"$d/base.norm") records identical under ${#variants[@]} settings"
}

NEWS=("$S/examples/news" "$C/bbc_news/bbc/sport/199.txt" "$C/bbc_news/bbc/tech/002.txt"
      "$C/bbc_news/bbc/business/001.txt")
RECEIPTS=("$S/examples/receipts" "$C/sroie_receipts/text/000.txt" "$C/sroie_receipts/text/003.txt")
NOTES=("$S/examples/records" "$C/mtsamples/docs/mts_0002.txt")

matrix classify "$MODEL" classify-files "${NEWS[@]}"
# the answer that the prefix cache once changed (sport 0.854 with the cache,
# politics 0.630 without): the label's first token went unscored
grep -q '"output":"politics"' <(grep budget-vote "$T/classify/base.norm") ||
	fail "budget-vote.txt is not labelled politics"
matrix extract "$MODEL" extract-fields "${RECEIPTS[@]}"
matrix summarize "$MODEL" summarize-records "${NOTES[@]}"
for p in "$S"/examples/pipelines/*.json; do
	matrix "example-$(basename "$p" .json)" "$MODEL" "$p" "${RECEIPTS[@]}"
done
TINY="$DK_SHARED/models/stories260K.gguf"
need "$TINY" "../shared/models"
matrix tiny-classify "$TINY" classify-files "$S/examples/news"
matrix tiny-summarize "$TINY" summarize-records "$S/examples/records"
