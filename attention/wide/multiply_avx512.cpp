// Built with -mavx512f -mavx512vl -mavx512dq -mavx512bw. Eigen is seen here as `attnlab_eigen_avx512`,
// so none of its templates, instantiated for 512-bit vectors, can merge with the AVX2 instantiations of
// the rest of the program (the linker keeps one copy of each same-named inline function, and would run
// AVX-512 code on machines without it). tests/cpu/CMakeLists.txt checks the object defines no shared
// (weak) symbol outside that namespace.
#define Eigen attnlab_eigen_avx512
#include <Eigen/Core>

#include "attention/wide/multiply.h"

namespace attn::wide {

void multiplyTransposedAvx512(const float* a, std::int64_t lda, const float* b, std::int64_t ldb, float* c,
                              std::int64_t ldc, std::int64_t m, std::int64_t n, std::int64_t k) {
  using Rows = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using In = Eigen::Map<const Rows, Eigen::Unaligned, Eigen::OuterStride<>>;
  using Out = Eigen::Map<Rows, Eigen::Unaligned, Eigen::OuterStride<>>;
  const In lhs(a, m, k, Eigen::OuterStride<>(lda));
  const In rhs(b, n, k, Eigen::OuterStride<>(ldb));
  Out out(c, m, n, Eigen::OuterStride<>(ldc));
  out.noalias() = lhs * rhs.transpose();
}

}  // namespace attn::wide
