#!/usr/bin/env bash
# Torch install time for the Classroom workflow, cache cold and warm, on this machine:
#   cold: a fresh venv, then `pip install torch==2.13.0` and requirements.txt with no pip cache
#         (where the wheel comes from a local folder, the download of the 192 MB wheel is not
#         counted: on a GitHub runner add its download time);
#   warm: what actions/cache/restore does with the saved venv: unpack a zstd tarball of it.
# [TORCH_INDEX=] bash bench/install_speed.sh [PYTHON]   (default python3; needs about 2 GB of free disk)
set -euo pipefail
PY="${1:-python3}"
REPO="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$(date +%s.%N)
"$PY" -m venv "$work/venv"
# TORCH_INDEX= (empty) installs from the index pip is configured with (a local wheel folder here)
INDEX="${TORCH_INDEX-https://download.pytorch.org/whl/cpu}"
"$work/venv/bin/python" -m pip install --quiet --no-cache-dir torch==2.13.0 ${INDEX:+--index-url "$INDEX"}
"$work/venv/bin/python" -m pip install --quiet --no-cache-dir -r "$REPO/requirements.txt"
t1=$(date +%s.%N)
comp=gzip; command -v zstd >/dev/null && comp=zstd
tar -C "$work" -c venv | $comp > "$work/venv.tar.$comp"
size=$(du -m "$work/venv.tar.$comp" | cut -f1)
rm -rf "$work/venv"
t2=$(date +%s.%N)
$comp -dc "$work/venv.tar.$comp" | tar -C "$work" -x
"$work/venv/bin/python" -c "import torch" >/dev/null
t3=$(date +%s.%N)
printf 'cold (fresh venv, pip install, no cache): %.1f s\n' "$(echo "$t1 - $t0" | bc)"
printf 'warm (restore the cached venv: %s MB %s tarball, then import torch): %.1f s\n' "$size" "$comp" "$(echo "$t3 - $t2" | bc)"
