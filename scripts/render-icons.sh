#!/usr/bin/env bash
# Remakes the PNG renders of assets/attnlab.svg (48, 128 and 256 px, the sizes installed into the hicolor
# icon theme) with Qt's SVG renderer. Run it after changing the SVG and commit the PNGs; the build does
# not run it. Extra sizes to look at: bash scripts/render-icons.sh 16 32 (written to /tmp).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
tool=$(mktemp -d /tmp/attnlab-render-icon.XXXXXX)
trap 'rm -rf "$tool"' EXIT
# Qt 6 wants position-independent code (-fPIC) in whatever links it.
read -ra qt <<<"$(pkg-config --cflags --libs Qt6Svg Qt6Gui)"
g++ -std=c++17 -O1 -fPIC "$here/scripts/render_icon.cpp" -o "$tool/render_icon" "${qt[@]}"
export QT_QPA_PLATFORM=offscreen XDG_RUNTIME_DIR="$tool"
if [ $# -gt 0 ]; then
  for size in "$@"; do
    "$tool/render_icon" "$here/assets/attnlab.svg" "/tmp/attnlab-$size.png" "$size"
    echo "/tmp/attnlab-$size.png"
  done
  exit 0
fi
for size in 48 128 256; do
  "$tool/render_icon" "$here/assets/attnlab.svg" "$here/assets/attnlab-$size.png" "$size"
  echo "assets/attnlab-$size.png"
done
