#!/usr/bin/env bash
# The test command: installs dependencies, fetches the default model,
# builds with warnings as errors and runs the whole suite under ctest.
#   DOCKET_SANITIZE=address,undefined scripts/test.sh   # sanitizer build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
# The real-model tests skip (with a message) only if the fetch fails.
"$root/scripts/fetch-model.sh" >/dev/null || echo "docket: default model unavailable; its tests will skip" >&2
args=(-DDOCKET_WERROR=ON)
build=${DOCKET_BUILD_DIR:-$root/build}
if [ -n "${DOCKET_SANITIZE:-}" ]; then
	args+=(-DDOCKET_SANITIZE="$DOCKET_SANITIZE")
	build=${DOCKET_BUILD_DIR:-$root/build-sanitize}
fi
DOCKET_BUILD_DIR=$build "$root/scripts/build.sh" "${args[@]}"
cd "$build"
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@"
