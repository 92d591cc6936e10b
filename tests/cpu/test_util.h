// Helpers shared by the CPU tests.
#pragma once
#include <gtest/gtest.h>

#include <map>
#include <string>

#include "attention/backend.h"
#include "attention/inputs.h"
#include "attention/mechanism.h"
#include "attention/metrics.h"
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

// ---- the mechanism tests (test_mechanisms_f*.cpp) ----

/// Generated inputs with d = 32, dv = 16.
inline Inputs mechanismInputs(Generator g, Index n, std::uint64_t seed = 1, Index period = 32) {
  InputSpec s;
  s.generator = g;
  s.n = n;
  s.d = 32;
  s.dv = 16;
  s.seed = seed;
  s.period = period;
  return generate(s);
}

/// Runs a registered mechanism on the CPU backend with parameters given as text.
inline Result runMechanism(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
                           bool causal = false, std::uint64_t seed = 1) {
  CpuBackend cpu(2);
  const auto m = requireMechanism(id);
  RunOptions o;
  o.causal = causal;
  o.seed = seed;
  return m->run(in, Params::resolve(m->params(), params), cpu, o);
}

/// e_out of a result against the float64 exact attention of its inputs.
inline double errorVsExact(const Result& r, const Inputs& in, bool causal) {
  DenseAttentionOptions o;
  o.causal = causal;
  return relativeError(r.output, refAttention(in.q, in.k, in.v, o));
}

}  // namespace attn::test
