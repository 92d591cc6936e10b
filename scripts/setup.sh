#!/usr/bin/env bash
# Installs the Debian 12 packages attnlab needs (the list lives in scripts/debian-packages.txt)
# and configures + builds one CMake preset. Usage: scripts/setup.sh [preset [target...]]
# (default: the release preset, every target).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
preset=${1:-release}
shift || true
targets=()
(($#)) && targets=(--target "$@")
mapfile -t wanted < <(grep -vE '^\s*(#|$)' "$here/scripts/debian-packages.txt")
missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "attnlab: installing ${#missing[@]} missing package(s): ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -q "${missing[@]}"
fi
cd "$here"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" "${targets[@]}"
