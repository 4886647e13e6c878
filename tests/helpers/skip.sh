# Sourced by tests/sh_*.sh: how a shell test says it cannot run.  Exit 77 is
# what ctest shows as skipped (SKIP_RETURN_CODE in tests/CMakeLists.txt);
# under CI=true a missing default model or ../shared fails instead, since CI
# must run everything.

# skip REASON: one line on stderr, then exit 77.
skip() { echo "skipped: $*" >&2; exit 77; }

# in_ci: true when CI is set (and not "false" or "0"), as CI services set it.
in_ci() { case "${CI:-}" in '' | false | 0) return 1 ;; *) return 0 ;; esac; }

# need PATH WHAT: returns when PATH exists, else skips (under CI=true fails).
need() {
	[ -e "$1" ] && return 0
	if in_ci; then
		echo "failed: $2 missing at $1 (under CI=true this is a failure, not a skip)" >&2
		exit 1
	fi
	skip "$2 missing at $1"
}

# The default model as the CLI finds it: $DOCKET_MODEL, else the fetch cache.
default_model() {
	echo "${DOCKET_MODEL:-${XDG_CACHE_HOME:-$HOME/.cache}/docket/models/SmolLM2-135M-Instruct.Q4_1.gguf}"
}
need_default_model() { need "$(default_model)" "default model (scripts/fetch-model.sh)"; }
need_shared() { need "${DK_SHARED:?DK_SHARED not set}" "../shared (the shared test data)"; }
