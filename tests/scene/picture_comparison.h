// Helpers shared by the view-model tests of the layouts over a picture (pixel, gates): a comparison on the
// synthetic picture's 24×16 grid, its subject, and a row of softmax attention computed here in double.
#pragma once
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "attention/backend.h"
#include "attention/mechanism.h"
#include "attention/runner.h"
#include "render/scene/build.h"

namespace attnlab::scene {

inline constexpr attn::Index k_w = 24, k_h = 16;  // the synthetic picture's grid: N = 384

inline std::shared_ptr<const attn::Comparison> imageComparison(const std::string& id,
                                                        attn::Generator generator = attn::Generator::Image) {
  attn::InputSpec spec;
  spec.n = k_w * k_h;
  spec.d = spec.dv = 16;
  spec.generator = generator;
  if (generator == attn::Generator::Image) spec.width = k_w;
  attn::CpuBackend cpu(2);
  const auto m = attn::requireMechanism(id);
  attn::CompareOptions o;
  o.with_reference = false;
  o.with_weight_metrics = false;
  return std::make_shared<const attn::Comparison>(attn::compare(attn::generate(spec), m, attn::Params::resolve(m->params(), {}), cpu, o));
}

inline Subject subjectOf(std::shared_ptr<const attn::Comparison> c) {
  Subject s;
  s.main = std::move(c);
  return s;
}

/// softmax(q_p · k_j / √d) over j, in double, written out here.
inline std::vector<double> softmaxRow(const attn::Inputs& in, attn::Index p) {
  std::vector<double> w(std::size_t(in.m()));
  double top = -1e300, sum = 0;
  for (attn::Index j = 0; j < in.m(); ++j) {
    double dot = 0;
    for (attn::Index c = 0; c < in.q.cols(); ++c) dot += double(in.q(p, c)) * double(in.k(j, c));
    w[std::size_t(j)] = dot / std::sqrt(double(in.q.cols()));
    top = std::max(top, w[std::size_t(j)]);
  }
  for (double& l : w) sum += (l = std::exp(l - top));
  for (double& l : w) l /= sum;
  return w;
}

}  // namespace attnlab::scene
