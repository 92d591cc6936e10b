// Helpers shared by the CPU tests.
#pragma once
#include <gtest/gtest.h>

#include "attention/backend.h"
#include "attention/random.h"

namespace attn::test {

inline double maxAbsDiff(const Matrix& a, const MatrixD& b) { return (a.cast<double>() - b).cwiseAbs().maxCoeff(); }

inline double relDiff(const Matrix& a, const MatrixD& b) {
  const double den = b.norm();
  return den == 0 ? (a.cast<double>() - b).norm() : (a.cast<double>() - b).norm() / den;
}

inline MatrixD refAttention(const Matrix& q, const Matrix& k, const Matrix& v, const DenseAttentionOptions& o,
                            VectorD* lse = nullptr) {
  return referenceAttention(q.cast<double>(), k.cast<double>(), v.cast<double>(), o, lse);
}

}  // namespace attn::test
