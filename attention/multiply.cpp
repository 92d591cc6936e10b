#include "attention/multiply.h"

#include "attention/wide/multiply.h"

#include <stdexcept>

namespace attn {

bool avx512Available() {
#if defined(__x86_64__) && defined(__GNUC__)
  // libgcc's probe also checks that the OS saves the 512-bit state (XCR0). Initialised here in case this
  // runs during static initialisation, before libgcc's own constructor.
  __builtin_cpu_init();
  static const bool available = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw");
  return available;
#else
  return false;
#endif
}

Matrix multiplyTransposed(const Eigen::Ref<const Matrix>& a, const Eigen::Ref<const Matrix>& b, Isa isa) {
  if (a.cols() != b.cols()) throw std::logic_error("multiplyTransposed: the factors' inner sizes differ");
  if (isa == Isa::Avx512 && !avx512Available()) throw std::logic_error("multiplyTransposed: no AVX-512 on this CPU");
  const bool wide = isa == Isa::Avx512 || (isa == Isa::Auto && avx512Available());
  Matrix c(a.rows(), b.rows());
  if (wide && c.size() > 0 && a.cols() > 0) {
    wide::multiplyTransposedAvx512(a.data(), a.outerStride(), b.data(), b.outerStride(), c.data(), c.cols(), a.rows(),
                                   b.rows(), a.cols());
  } else {
    c.noalias() = a * b.transpose();
  }
  return c;
}

}  // namespace attn
