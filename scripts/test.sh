#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite: CPU tests, Vulkan tests on
# whatever device exists (Mesa's lavapipe on a machine without a GPU; rerun with 4-wide subgroups),
# GUI tests under Xvfb, then the CPU suite again under AddressSanitizer + UBSan, then each parser's
# libFuzzer target for a short while (scripts/fuzz.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
start=$(date +%s)
bash scripts/setup.sh ci
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/attnlab-xdg.XXXXXX)}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
jobs=$(nproc)

echo "== all tests (cpu, gpu, gui)"
ctest --preset ci -j "$jobs"

echo "== gpu tests again with 4-wide subgroups (LP_NATIVE_VECTOR_WIDTH=128)"
LP_NATIVE_VECTOR_WIDTH=128 ctest --preset ci -L gpu -j "$jobs"

echo "== cpu tests under AddressSanitizer + UndefinedBehaviorSanitizer"
cmake --preset asan -DATTNLAB_WITH_QT=OFF -DATTNLAB_GPU_TESTS=OFF >/dev/null
cmake --build --preset asan --target attnlab_cpu_tests
ctest --preset asan -j "$jobs"

echo "== parsers under libFuzzer + ASan + UBSan (40 s each)"
bash scripts/fuzz.sh 40

echo "== done in $(( $(date +%s) - start )) s"
