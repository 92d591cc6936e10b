// Kernels built for wider vector units than the project's baseline (AVX2), chosen at run time.
// Nothing here names an Eigen type: the translation units behind it see Eigen under another namespace
// (see CMakeLists.txt), so only plain pointers cross this boundary.
#pragma once
#include <cstdint>

namespace attn::wide {

/// C = A·Bᵀ in float: A is m×k, B is n×k, C is m×n, all row-major with the given row strides.
/// Built with AVX-512 (F, VL, DQ, BW): call it only where the CPU has them (attn::avx512Available()).
void multiplyTransposedAvx512(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                              std::int64_t ldc, std::int64_t m, std::int64_t n, std::int64_t k);

}  // namespace attn::wide
