#!/usr/bin/env bash
# Smoke test on the default model (SmolLM2-135M-Instruct Q4_1): the chat
# answer to a factual question.  Skips (exit 77), saying so, when the model
# has not been fetched (scripts/fetch-model.sh); under CI=true fails instead.
set -u
D=${DK_DOCKET:?}
. "${BASH_SOURCE[0]%/*}/helpers/skip.sh"
need_default_model
M=$(default_model)
out=$("$D" generate --chat -p "What is the capital of France?" -n 24 -t 1 -m "$M") || { echo "FAIL: exit $?"; exit 1; }
echo "answer: $out"
case "$out" in *Paris*) ;; *) echo "FAIL: no 'Paris' in the answer"; exit 1;; esac
# the same through the default-model lookup (no -m)
out=$(DOCKET_MODEL="$M" "$D" generate --chat -p "What is the capital of France?" -n 24 -t 1) || exit 1
case "$out" in *Paris*) ;; *) echo "FAIL: default lookup: $out"; exit 1;; esac
echo "sh_engine_default_model: ok"
