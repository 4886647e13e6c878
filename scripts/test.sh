#!/usr/bin/env bash
# The test command: installs dependencies, fetches the default model,
# builds with warnings as errors and runs the whole suite under ctest.
#   DOCKET_SANITIZE=address,undefined scripts/test.sh   # sanitizer build
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh"
# Outside CI a failed fetch only warns (the default model's tests then show
# as skipped); CI must run them, so there (CI=true) it stops the script.
if ! "$root/scripts/fetch-model.sh" >/dev/null; then
	case "${CI:-}" in
	'' | false | 0) echo "docket: default model unavailable; its tests will show as skipped" >&2 ;;
	*) echo "docket: default model fetch failed, and under CI=true its tests must run" >&2; exit 1 ;;
	esac
fi
args=(-DDOCKET_WERROR=ON)
build=${DOCKET_BUILD_DIR:-$root/build}
if [ -n "${DOCKET_SANITIZE:-}" ]; then
	args+=(-DDOCKET_SANITIZE="$DOCKET_SANITIZE")
	build=${DOCKET_BUILD_DIR:-$root/build-sanitize}
fi
DOCKET_BUILD_DIR=$build "$root/scripts/build.sh" "${args[@]}"
cd "$build"
ctest --output-on-failure -j"$(nproc 2>/dev/null || echo 2)" "$@"
