// Dense float products that choose the widest vector unit the CPU has at run time.
#pragma once
#include "attention/types.h"

namespace attn {

/// The instruction set a kernel runs with. Auto: AVX-512 where the CPU (and the OS) support it, else
/// the AVX2 baseline every build assumes.
enum class Isa { Auto, Avx2, Avx512 };

/// True when this CPU runs AVX-512 F, VL, DQ and BW with the OS saving their registers.
bool avx512Available();

/// a·bᵀ (a: m×k, b: n×k) in float. Row blocks of row-major matrices (middleRows) are read in place.
/// Isa::Avx512 where it is not available throws std::logic_error.
Matrix multiplyTransposed(const Eigen::Ref<const Matrix>& a, const Eigen::Ref<const Matrix>& b, Isa isa = Isa::Auto);

}  // namespace attn
