#!/usr/bin/env bash
# Installs a build tree into a scratch DESTDIR with prefix /usr (as the .deb does) and checks the result.
# Usage: check_install.sh CMAKE BUILD_DIR SOURCE_DIR. Prints what is wrong and exits 1 on any failure.
set -uo pipefail
cmake=$1 build=$2 source=$3
scratch=$(mktemp -d /tmp/attnlab-install-test.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
root=$scratch/root usr=$scratch/root/usr
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

DESTDIR=$root "$cmake" --install "$build" --prefix /usr >"$scratch/install.log" 2>&1 ||
  { cat "$scratch/install.log"; echo "FAIL: cmake --install"; exit 1; }

# Everything under the prefix: a rule with an absolute destination would escape DESTDIR's /usr.
outside=$(find "$root" -mindepth 1 -maxdepth 1 ! -name usr)
[ -z "$outside" ] || fail "installed outside the prefix: $outside"

# The layout: binaries, the desktop entry, the hicolor icons, the documentation.
for f in bin/attnlab share/applications/attnlab.desktop share/icons/hicolor/scalable/apps/attnlab.svg \
         share/doc/attnlab/README.md; do
  [ -s "$usr/$f" ] || fail "missing /usr/$f"
done
[ -x "$usr/bin/attnlab" ] || fail "/usr/bin/attnlab is not executable"
# A PNG in hicolor/<n>x<n>/apps must be n×n pixels (width and height are bytes 16-23, big-endian).
for n in 48 128 256; do
  png=$usr/share/icons/hicolor/${n}x${n}/apps/attnlab.png
  if [ ! -s "$png" ]; then fail "missing /usr/share/icons/hicolor/${n}x${n}/apps/attnlab.png"; continue; fi
  size=$(od -An -tu1 -j16 -N8 "$png" | awk '{print $1*16777216+$2*65536+$3*256+$4 "x" $5*16777216+$6*65536+$7*256+$8}')
  [ "$size" = "${n}x${n}" ] || fail "hicolor/${n}x${n}/apps/attnlab.png is $size pixels"
done

# The desktop entry (Desktop Entry Specification 1.5): groups and Key=Value lines only, [Desktop Entry]
# first, no key twice in a group, the keys an application needs, and names that resolve in the install.
entry=$usr/share/applications/attnlab.desktop
if [ -s "$entry" ]; then
  problems=$(awk '
    /^[ \t]*(#|$)/ { next }
    /^\[[^][]+\]$/ { group = $0; if (!seen_group++ && group != "[Desktop Entry]") print "first group is " group; next }
    !seen_group { print "line before any group: " $0; next }
    /^[A-Za-z0-9-]+(\[[^]]+\])?=/ { key = substr($0, 1, index($0, "=") - 1)
                                    if (seen[group, key]++) print "key twice: " key; next }
    { print "not Key=Value: " $0 }' "$entry")
  [ -z "$problems" ] || fail "attnlab.desktop: $problems"
  value() { sed -n "/^\[Desktop Entry\]/,/^\[/{s/^$1=//p}" "$entry" | head -n1; }
  [ "$(value Type)" = Application ] || fail "attnlab.desktop: Type is '$(value Type)', not Application"
  [ -n "$(value Name)" ] || fail "attnlab.desktop: no Name"
  program=$(value Exec | awk '{print $1}')
  [[ -n $program && -x $usr/bin/$program ]] || fail "attnlab.desktop: Exec's program '$program' is not in /usr/bin"
  tryexec=$(value TryExec)
  [ -z "$tryexec" ] || [ -x "$usr/bin/$tryexec" ] || fail "attnlab.desktop: TryExec '$tryexec' is not in /usr/bin"
  icon=$(value Icon)
  [[ -n $icon && -s $usr/share/icons/hicolor/scalable/apps/$icon.svg ]] ||
    fail "attnlab.desktop: Icon '$icon' is not in the hicolor theme"
  [ "$(value Terminal)" = false ] || fail "attnlab.desktop: Terminal is not false"
  case "$(value Categories)" in *\;) ;; *) fail "attnlab.desktop: Categories does not end with ';'" ;; esac
  if command -v desktop-file-validate >/dev/null; then
    errors=$(desktop-file-validate "$entry" 2>&1 | grep -v ': hint: ')
    [ -z "$errors" ] || fail "desktop-file-validate: $errors"
  fi
fi

# The installed binary runs from its own place: no run path, and no path of the source or build tree in
# what it loads (debug sections aside), so nothing is read from either at run time.
if [ -x "$usr/bin/attnlab" ]; then
  readelf -d "$usr/bin/attnlab" | grep -E 'R(UN)?PATH' && fail "/usr/bin/attnlab has a run path"
  strip --strip-debug -o "$scratch/attnlab.nodebug" "$usr/bin/attnlab"
  for tree in "$(realpath "$source")" "$(realpath "$build")"; do
    grep -qaF "$tree" "$scratch/attnlab.nodebug" && fail "/usr/bin/attnlab holds the path $tree"
  done
  mkdir -p "$scratch/home" "$scratch/work" "$scratch/xdg" && chmod 700 "$scratch/xdg"
  installed() {
    (cd "$scratch/work" && env -i PATH="$usr/bin:/usr/bin:/bin" HOME="$scratch/home" XDG_RUNTIME_DIR="$scratch/xdg" \
      QT_QPA_PLATFORM=offscreen attnlab "$@")
  }
  installed list >"$scratch/list.txt" 2>&1 || fail "attnlab list: $(cat "$scratch/list.txt")"
  grep -q '^exact ' "$scratch/list.txt" || fail "attnlab list does not list exact: $(head -n3 "$scratch/list.txt")"
  installed render --mechanism exact --n 64 --backend cpu --out x.png >"$scratch/render.txt" 2>&1 ||
    fail "attnlab render: $(cat "$scratch/render.txt")"
  [ "$(od -An -c -j1 -N3 "$scratch/work/x.png" 2>/dev/null | tr -d ' ')" = PNG ] || fail "attnlab render wrote no PNG"
fi

[ "$failures" -eq 0 ] && echo "installed into $usr: layout, desktop entry and binary are right"
[ "$failures" -eq 0 ]
