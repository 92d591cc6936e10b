#!/usr/bin/env bash
# Builds the parsers' libFuzzer targets (CMake preset "fuzz": clang, ASan + UBSan) and runs each on its
# seed corpus: fuzz/corpus/<parser>/ (well-formed files and every input that once found a bug) and the
# malformed files of tests/data. New inputs go to a scratch folder, so the repository is not changed.
# Usage: scripts/fuzz.sh [SECONDS per target, default 45] [parser ...]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
seconds=${1:-45}
shift || true
parsers=("$@")
[ ${#parsers[@]} -gt 0 ] || parsers=(npy npz safetensors results session png)
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake --preset fuzz "${launcher[@]}" >/dev/null
cmake --build --preset fuzz -j "$(nproc)"
scratch=$(mktemp -d /tmp/attnlab-fuzz.XXXXXX)
trap 'rm -rf "$scratch"' EXIT
for parser in "${parsers[@]}"; do
  seeds=(fuzz/corpus/"$parser")
  case $parser in
    npy) seeds+=(tests/data/bad_arrays) ;;  # each target gets every malformed array file: formats mix
    npz | safetensors) seeds+=(tests/data/bad_arrays fuzz/corpus/npy) ;;
    png) seeds+=(tests/data/png) ;;
  esac
  mkdir -p "$scratch/$parser"
  echo "== fuzz_$parser for $seconds s"
  # -rss_limit_mb: a parser that allocates what a crafted header claims fails here, as it would for a user.
  build/fuzz/fuzz/fuzz_"$parser" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
    -artifact_prefix="$scratch/" "$scratch/$parser" "${seeds[@]}" 2>&1 | grep -E '^(#[0-9]+ +DONE|stat::number_of_executed_units|==[0-9]+==ERROR|SUMMARY)|crash-|leak-|timeout-|oom-' || true
  if ls "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* "$scratch"/oom-* >/dev/null 2>&1; then
    mkdir -p build/fuzz/artifacts && cp "$scratch"/crash-* "$scratch"/leak-* "$scratch"/timeout-* "$scratch"/oom-* build/fuzz/artifacts/ 2>/dev/null || true
    echo "fuzz_$parser found a bug: its input is in build/fuzz/artifacts/ (run build/fuzz/fuzz/fuzz_$parser FILE)" >&2
    exit 1
  fi
done
