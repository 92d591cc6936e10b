#!/usr/bin/env bash
# Here (Debian 12, no GPU): builds the Qt-free attnlab-bench and gathers what the GPU machine lacks
# into .gl/ (ignored by git): the Vulkan loader package, the binary, and the shared libraries it
# needs beyond a stock machine (Google Benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gl/' .git/info/exclude || echo /.gl/ >> .git/info/exclude
mkdir -p .gl/lib /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
ls .gl/libvulkan1*.deb >/dev/null 2>&1 || { apt-get $o update -q; (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2); }
cmake --preset bench -DATTNLAB_TESTS=OFF >/dev/null
cmake --build --preset bench --target attnlab-bench
cp build/bench/bench/attnlab-bench .gl/
strip .gl/attnlab-bench
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian .gl/lib/
ls -la .gl .gl/lib
