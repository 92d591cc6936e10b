#!/usr/bin/env bash
# One measurement on a GPU machine (see docs/benchmarks.md): run from the repository root with the
# Qt-free attnlab-bench and its libraries in .gl/ (bench/gpu/prepare.sh puts them there), e.g.
#   bash bench/gpu/measure.sh "$OUT"
set -euo pipefail
out=${1:-/tmp/attnlab-measure}
mkdir -p "$out"
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=${VK_DRIVER_FILES:-/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json}
export LD_LIBRARY_PATH=$PWD/.gl/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
# The Vulkan test suite on this GPU (every kernel against the float64 CPU reference, the tensor-core path
# included), with the validation layer when its package was unpacked above.
if [ -x .gl/attnlab_gpu_tests ]; then
  export VK_LAYER_PATH=/usr/share/vulkan/explicit_layer.d
  mkdir -p /tmp/attnlab-xdg
  ATTNLAB_REQUIRE_GPU=1 XDG_RUNTIME_DIR=/tmp/attnlab-xdg timeout "${GPU_TESTS_TIMEOUT:-240}" \
    .gl/attnlab_gpu_tests --gtest_brief=1 > "$out/gpu_tests.txt" 2>&1 || true
  grep -E "^\[  (PASSED|FAILED|SKIPPED)|^\[  FAILED|Failure|validation" "$out/gpu_tests.txt" | head -40
  tail -3 "$out/gpu_tests.txt"
fi
.gl/attnlab-bench --benchmark_filter='^dense/vulkan.*/N:(1024|2048|4096|8192|16384)/' --benchmark_min_time=0.2 \
  --benchmark_out="$out/bench.json" --benchmark_out_format=json | tee "$out/bench.txt"
python3 bench/gpu/compare.py "$out/bench.json" | tee "$out/table.md"
# The viewport's re-pool on a zoom or pan step at N = 16384 (the GUI's pan/zoom target without Qt).
.gl/attnlab-bench --no-check --benchmark_filter='^viewport/repool/vulkan/' --benchmark_min_time=0.2 | tee "$out/viewport.txt"
timeout "${MECHANISMS_TIMEOUT:-150}" .gl/attnlab-bench --no-check --benchmark_filter='^mechanism/.*/vulkan/N:(1024|4096)/' \
  --benchmark_min_time=0.1 > "$out/mechanisms.txt" 2>&1 || true
tail -60 "$out/mechanisms.txt"
