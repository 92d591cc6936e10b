#!/usr/bin/env bash
# Makes the .deb from a build tree with CPack into a scratch folder and checks what it holds and what
# it depends on. Usage: check_deb.sh CPACK BUILD_DIR. Prints what is wrong and exits 1 on any failure.
set -uo pipefail
cpack=$1 build=$2
scratch=$(mktemp -d /tmp/attnlab-deb-test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

"$cpack" -G DEB -B "$scratch" --config "$build/CPackConfig.cmake" >"$scratch/cpack.log" 2>&1 ||
  { cat "$scratch/cpack.log"; echo "FAIL: cpack -G DEB"; exit 1; }
debs=("$scratch"/attnlab_*.deb)
[ -s "${debs[0]}" ] || { echo "FAIL: no attnlab_*.deb in $(ls "$scratch")"; exit 1; }
deb=${debs[0]}

dpkg-deb -c "$deb" | awk '{print $6}' >"$scratch/files.txt"
for f in ./usr/bin/attnlab ./usr/share/applications/attnlab.desktop ./usr/share/icons/hicolor/scalable/apps/attnlab.svg \
         ./usr/share/icons/hicolor/48x48/apps/attnlab.png ./usr/share/doc/attnlab/README.md; do
  grep -qxF "$f" "$scratch/files.txt" || fail "the package lacks $f"
done
[ "$(dpkg-deb -f "$deb" Package)" = attnlab ] || fail "Package is '$(dpkg-deb -f "$deb" Package)'"
[ "$(dpkg-deb -f "$deb" Section)" = science ] || fail "Section is '$(dpkg-deb -f "$deb" Section)'"
depends=$(dpkg-deb -f "$deb" Depends)
# dpkg-shlibdeps's share (the Qt libraries the binary links) and the packages no linker sees.
for p in libqt6gui6 libqt6widgets6 libvulkan1 fonts-dejavu-core 'mesa-vulkan-drivers | vulkan-icd'; do
  case ", $depends," in *", $p"[\ ,]*) ;; *) fail "Depends lacks $p: $depends" ;; esac
done
# Stripped: the build's line tables are for debugging here, not for users.
dpkg-deb -x "$deb" "$scratch/root"
readelf -S "$scratch/root/usr/bin/attnlab" | grep -q '\.debug_' && fail "/usr/bin/attnlab in the package is not stripped"

[ "$failures" -eq 0 ] && echo "$(basename "$deb"): $(du -k "$deb" | cut -f1) KiB; Depends: $depends"
[ "$failures" -eq 0 ]
