#include "attention/mechanisms/kernel_engine.h"

#include <Eigen/QR>
#include <algorithm>
#include <cmath>
#include <limits>

#include "attention/mechanisms/common.h"
#include "attention/random.h"

namespace attn::mech {

Matrix randomFeatures(Index m, Index d, bool orthogonal, std::uint64_t seed, std::uint64_t stream) {
  Rng rng(seed, stream);
  if (!orthogonal) return rng.gaussian(m, d);
  Matrix w(m, d);
  for (Index r0 = 0; r0 < m; r0 += d) {
    const Index rows = std::min(d, m - r0);
    const Eigen::MatrixXd g = rng.gaussian(d, d).cast<double>();
    const Eigen::HouseholderQR<Eigen::MatrixXd> qr(g);
    Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(d, d);
    // Haar-correct: Householder QR fixes the sign of R's diagonal (R_11 = −sign(g_11)·‖g_1‖, …), so
    // without this the first column of Q always has a negative first entry and each direction leans along
    // its own axis: E[exp(ω·x)] ≠ exp(‖x‖²/2) and the estimate is biased. Q·sign(diag R) is Haar-distributed
    // (Mezzadri 2007), so every column is uniform on the sphere.
    for (Index c = 0; c < d; ++c)
      if (qr.matrixQR()(c, c) < 0) q.col(c) = -q.col(c);
    for (Index r = 0; r < rows; ++r) {
      // Row norm of a fresh Gaussian vector (χ_d), so the marginal of each row stays N(0, I_d).
      double norm2 = 0;
      for (Index c = 0; c < d; ++c) {
        const double x = rng.normal();
        norm2 += x * x;
      }
      w.row(r0 + r) = (q.col(r).transpose() * std::sqrt(norm2)).cast<float>();
    }
  }
  return w;
}

RandomFeatures performerFeatures(const Inputs& in, FeatureMap map, Index m, bool orthogonal, bool hyperbolic,
                                 bool causal, std::uint64_t seed, std::uint64_t stream, Backend& backend) {
  const Index d = in.q.cols();
  RandomFeatures f;
  f.omega = randomFeatures(m, d, orthogonal, seed, stream);
  if (hyperbolic) {
    Matrix both(2 * m, d);
    both << f.omega, -f.omega;
    f.omega = std::move(both);
  }
  FeatureMapOptions o;
  o.map = map;
  o.projection = &f.omega;
  o.input_scale = float(std::pow(double(d), -0.25));
  if (map == FeatureMap::PositiveRandom) o.shift = FeatureShift::PerRow;
  f.phi_q = std::make_shared<const Matrix>(backend.featureMap(in.q, o));
  if (map == FeatureMap::PositiveRandom) o.shift = causal ? FeatureShift::None : FeatureShift::Global;
  f.phi_k = std::make_shared<const Matrix>(backend.featureMap(in.k, o));
  return f;
}

void planKernel(RunPlan& plan, const RunShape& s, double features, double directions, const std::string& parameter) {
  const double n = double(s.n), m = double(s.m), rows = double(std::max(s.n, s.m));
  plan.add(((n + m) * features + rows * directions * 2 + 3 * directions * double(s.d) +
            features * double(s.dv + 1) * 2 + 64 * features) *
               sizeof(float),
           "the features φ(Q), φ(K) ((N + M) × features)", parameter);
  plan.flops +=
      4.0 * n * features * double(s.dv) + 2.0 * m * features * double(s.dv) + 2.0 * (n + m) * directions * double(s.d);
}

KernelAttention attendKernel(const Inputs& in, std::shared_ptr<const Matrix> phi_q, std::shared_ptr<const Matrix> phi_k,
                             bool causal, Backend& backend, const RunOptions& options, Result& r,
                             float min_relative_normaliser) {
  const Index n = in.n(), m = in.m(), f = phi_q->cols(), dv = in.v.cols();
  if (causal && m != n) throw UserError("causal linear attention needs as many keys as queries");
  r.output = timedStage(r.cost, options, "attend", [&] { return backend.linearAttention(*phi_q, *phi_k, in.v, causal); });
  KernelAttention k;
  k.normaliser.resize(n);
  // The size of the terms the normaliser sums, Σ_r |φq_ir·z_ir|: a normaliser far below it has cancelled.
  Vector magnitude(n);
  if (causal) {
    Eigen::RowVectorXd z = Eigen::RowVectorXd::Zero(f);
    for (Index i = 0; i < n; ++i) {
      z += phi_k->row(i).cast<double>();
      k.normaliser(i) = float(phi_q->row(i).cast<double>().dot(z));
      magnitude(i) = float(phi_q->row(i).cast<double>().cwiseAbs().dot(z.cwiseAbs()));
    }
  } else {
    const Eigen::RowVectorXf z = phi_k->colwise().sum();
    k.normaliser = *phi_q * z.transpose();
    magnitude = phi_q->cwiseAbs() * z.cwiseAbs().transpose();
  }
  const float eps = min_relative_normaliser;
  auto kernel = std::make_shared<WeightKernel>();
  kernel->kind = WeightKernel::Kind::Linear;
  kernel->a = phi_q;
  kernel->b = phi_k;
  kernel->row_term.resize(n);
  for (Index i = 0; i < n; ++i) {
    const float den = k.normaliser(i);
    kernel->row_term(i) = den > 0 && den > eps * magnitude(i) && std::isfinite(den) ? 1.0f / den : 0.0f;
  }
  kernel->causal = causal;
  Index dropped = 0;
  for (Index i = 0; i < n; ++i)
    if (kernel->row_term(i) == 0) {
      ++k.nonpositive;
      if (k.normaliser(i) > 0) {
        r.output.row(i).setZero();
        ++dropped;
      }
    }
  r.explanation.weights = ImpliedWeights(std::move(kernel));
  if (k.nonpositive > 0)
    r.explanation.notes.push_back(std::to_string(k.nonpositive) + " of " + std::to_string(n) +
                                  " rows have a normaliser φ(q)·Σφ(k) ≤ 0" +
                                  (dropped ? " or cancelled below " + std::to_string(min_relative_normaliser) +
                                                 " of its terms' size (" + std::to_string(dropped) + ")"
                                           : std::string()) +
                                  ": their output is 0");
  r.cost.scored_pairs = 0;  // no pair is scored: the kernel is factorised
  r.cost.flops = 4.0 * double(n) * double(f) * double(dv) + 2.0 * double(m) * double(f) * double(dv);
  r.cost.peak_bytes = backend.peakBytes() + (n + m) * f * Index(sizeof(float)) + f * (dv + 1) * Index(sizeof(float)) +
                      n * dv * Index(sizeof(float));
  return k;
}

SlicedFavor slicedFavorAttention(const Inputs& in, const Matrix& omega, bool causal, Index slices, Backend& backend,
                                 const RunOptions& options, bool keep_states) {
  const Index n = in.n(), m = in.m(), d = in.q.cols(), dv = in.v.cols(), f = omega.rows();
  if (causal && m != n) throw UserError("causal linear attention needs as many keys as queries");
  SlicedFavor c;
  slices = std::clamp<Index>(slices, 1, std::max<Index>(1, m));
  c.slice = std::max<Index>(1, (m + slices - 1) / slices);
  c.out = Matrix::Zero(n, dv);
  c.normaliser = Vector::Zero(n);
  FeatureMapOptions o;
  o.map = FeatureMap::PositiveRandom;
  o.projection = &omega;
  o.input_scale = float(std::pow(double(d), -0.25));  // as performerFeatures
  Matrix state = Matrix::Zero(f, dv);
  Matrix z = Matrix::Zero(f, 1);
  auto keep = [&](Index end) {
    if (!keep_states) return;
    c.boundaries.push_back(end);
    c.states.push_back(state);
  };
  auto finish = [&](Index row, const Matrix& num, Index r, float den) {
    c.normaliser(row) = den;
    if (den > 0 && std::isfinite(den)) c.out.row(row) = num.row(r) / den;
  };
  if (!causal) {
    // Keys: performer shifts them all by one max, c = max_j,r (ω_r·x_j − ‖x_j‖²/2). A slice's features
    // come shifted by the slice's own max c_s; S and z are kept in the scale of the largest c so far.
    double shift = -std::numeric_limits<double>::infinity();
    for (Index a = 0; a < m; a += c.slice) {
      const Index len = std::min(c.slice, m - a);
      const Matrix x = in.k.middleRows(a, len) * o.input_scale;
      const Matrix u = backend.matmul(x, omega, true);  // len×f: ω·x
      double slice_shift = -std::numeric_limits<double>::infinity();
      for (Index j = 0; j < len; ++j) {
        const double half = 0.5 * double(x.row(j).squaredNorm());
        for (Index r = 0; r < f; ++r)
          if (!std::isnan(u(j, r))) slice_shift = std::max(slice_shift, double(u(j, r)) - half);
      }
      o.shift = FeatureShift::Global;
      Matrix fk = backend.featureMap(in.k.middleRows(a, len), o);
      if (std::isfinite(slice_shift)) {
        if (slice_shift > shift) {
          if (std::isfinite(shift)) {
            const float rescale = float(std::exp(shift - slice_shift));
            state *= rescale;
            z *= rescale;
          }
          shift = slice_shift;
        }
        fk *= float(std::exp(slice_shift - shift));
      }
      state += backend.matmul(Matrix(fk.transpose()), Matrix(in.v.middleRows(a, len)));
      z += fk.colwise().sum().transpose();
      keep(a + len);
      options.checkCancel();
    }
    o.shift = FeatureShift::PerRow;
    for (Index a = 0; a < n; a += c.slice) {
      const Index len = std::min(c.slice, n - a);
      const Matrix fq = backend.featureMap(in.q.middleRows(a, len), o);
      const Matrix num = backend.matmul(fq, state);
      const Matrix den = fq * z;
      for (Index r = 0; r < len; ++r) finish(a + r, num, r, den(r, 0));
      options.checkCancel();
    }
    return c;
  }
  for (Index a = 0; a < n; a += c.slice) {
    const Index len = std::min(c.slice, n - a);
    o.shift = FeatureShift::PerRow;
    const Matrix fq = backend.featureMap(in.q.middleRows(a, len), o);
    o.shift = FeatureShift::None;  // as performer's causal keys: a max over keys would see the future
    const Matrix fk = backend.featureMap(in.k.middleRows(a, len), o);
    const Matrix v = in.v.middleRows(a, len);
    Matrix local = backend.matmul(fq, fk, true);  // len×len
    for (Index r = 0; r < len; ++r)
      for (Index col = r + 1; col < len; ++col) local(r, col) = 0;
    const Matrix num = backend.matmul(fq, state) + backend.matmul(local, v);
    const Matrix den = fq * z + local.rowwise().sum();
    for (Index r = 0; r < len; ++r) finish(a + r, num, r, den(r, 0));
    state += backend.matmul(Matrix(fk.transpose()), v);
    z += fk.colwise().sum().transpose();
    keep(a + len);
    options.checkCancel();
  }
  return c;
}

double slicedFavorBytes(Index n, Index m, Index d, Index dv, Index slice, bool causal) {
  const double s = double(slice), f = double(m), dd = double(d), ddv = double(dv);
  // Output, ω, state. Per slice, causal: the q and k rows with the scaled copies the feature map makes (3d),
  // both feature blocks and φ(k)ᵀ (3m), the local products (s), v's rows and the numerators (4dv). Non-causal,
  // the key pass (the larger): k's rows and copies (3d), ω·x, φ(k) and φ(k)ᵀ (3m), v's rows (dv).
  const double per_slice = causal ? 3.0 * dd + 3.0 * f + s + 4.0 * ddv : 3.0 * dd + 3.0 * f + ddv;
  return 4.0 * (double(n) * ddv + f * dd + f * (ddv + 1) + s * per_slice);
}

}  // namespace attn::mech
