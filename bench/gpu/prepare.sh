#!/usr/bin/env bash
# Here (Debian 12, no GPU): builds the Qt-free attnlab-bench and the Vulkan test suite, and gathers what
# the GPU machine lacks into .gl/ (ignored by git): the Vulkan loader and validation-layer packages, the
# binaries, and the shared libraries they need beyond a stock machine (Google Benchmark).
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx '/.gl/' .git/info/exclude || echo /.gl/ >> .git/info/exclude
mkdir -p .gl/lib /tmp/amd64/partial
o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
ls .gl/libvulkan1*.deb >/dev/null 2>&1 || { apt-get $o update -q; (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 vulkan-validationlayers); }
cmake --preset bench -DATTNLAB_TESTS=ON >/dev/null
cmake --build --preset bench --target attnlab-bench attnlab_gpu_tests
cp build/bench/bench/attnlab-bench build/bench/tests/gpu/attnlab_gpu_tests .gl/
strip .gl/attnlab-bench .gl/attnlab_gpu_tests
cp -L /usr/lib/x86_64-linux-gnu/libbenchmark.so.1debian .gl/lib/
ls -la .gl .gl/lib
