#!/usr/bin/env bash
# Installs the Debian packages docket builds and tests with.  Idempotent:
# does nothing when everything is present.  Needs root (or sudo).
set -euo pipefail

pkgs=(build-essential cmake pkg-config python3 python3-pip
      libopenblas-dev libjansson-dev libarchive-dev libmagic-dev libcurl4-openssl-dev
      libcmocka-dev
      # tests: archive fixtures, PDFs, libFuzzer runtime
      zstd xz-utils bzip2 p7zip-full cpio genisoimage poppler-utils zip binutils jq openssl
      clang libclang-rt-14-dev
      # tests: a one-node Slurm cluster (sh_slurm), node metrics
      slurm-wlm slurmctld slurmd munge prometheus-node-exporter)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "docket: installing ${missing[*]}" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO=sudo
# The packaged daemons (munged, slurmd, slurmctld, node-exporter) must not
# start on install: the tests start their own on private sockets and ports.
# invoke-rc.d and deb-systemd-invoke skip any start when policy-rc.d says
# 101; one is put in place only for the install, unless one is there already.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
	trap '$SUDO rm -f "$policy"' EXIT
	printf '#!/bin/sh\n# docket install-deps: no daemon starts during the install\nexit 101\n' |
		$SUDO tee "$policy" >/dev/null
	$SUDO chmod 755 "$policy"
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
