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
.gl/attnlab-bench --benchmark_filter='^dense/vulkan.*/N:(1024|2048|4096|8192|16384)/' --benchmark_min_time=0.2 \
  --benchmark_out="$out/bench.json" --benchmark_out_format=json | tee "$out/bench.txt"
.gl/attnlab-bench --no-check --benchmark_filter='^mechanism/.*/vulkan/N:(1024|4096)/' --benchmark_min_time=0.1 \
  | tee "$out/mechanisms.txt"
python3 bench/gpu/compare.py "$out/bench.json" | tee "$out/table.md"
