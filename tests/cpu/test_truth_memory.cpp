// Truth pass (issue 19) for the memory / inducing-point / global-token mechanisms of CATALOG.md F4:
// set-transformer, star-transformer, compressive, gmat, memformer. Each test checks a paper's equation or
// schedule against an independent computation written here in plain loops (float64), not by calling the
// code under test: the ISAB's two hops with H as keys, the Star-Transformer's rounds with moving queries
// and keys on a wrapping ring, the Compressive Transformer's FIFO at unaligned sizes, GMAT's reads of its
// memory tokens, Memformer's read/write with an empty initial memory.
#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <set>

#include "attention/mechanism.h"
#include "attention/metrics.h"
#include "attention/random.h"
#include "test_util.h"

namespace attn {
namespace {

using test::errorVsExact;
using Row = Eigen::RowVectorXd;

Inputs inputs(Generator g, Index n, std::uint64_t seed = 1) { return test::mechanismInputs(g, n, seed); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params = {},
           bool causal = false) {
  return test::runMechanism(id, in, std::move(params), causal);
}

/// softmax(x) over the entries of x (float64).
VectorD softmax(const VectorD& x) {
  const VectorD e = (x.array() - x.maxCoeff()).exp().matrix();
  return e / e.sum();
}

/// Row-wise softmax(s·A·Bᵀ) in float64.
MatrixD softmaxRows(const MatrixD& a, const MatrixD& b, double s) {
  MatrixD p(a.rows(), b.rows());
  for (Index i = 0; i < a.rows(); ++i) p.row(i) = softmax((b * a.row(i).transpose()) * s).transpose();
  return p;
}

// --- set-transformer ---------------------------------------------------------------------------------------

// ISAB(X) = MAB(X, H), H = MAB(I, X) (Lee et al. 2019, eq. 9–10), one head, linear: A = softmax(s·I·Kᵀ),
// H_K = A·K, H_V = A·V, O = softmax(s·Q·H_Kᵀ)·H_V. The inducing points are the run's stand-in (k-means
// centroids, shown as the "inducing points" token set); the equations are computed here.
TEST(TruthMemory, SetTransformerSecondHopAttendsToTheInducingPointsOutputs) {
  const Inputs in = inputs(Generator::Clustered, 96);
  const double s = 1.0 / std::sqrt(double(in.q.cols()));
  for (Index m : {4, 12, 96}) {
    const Result r = run("set-transformer", in, {{"inducing", std::to_string(m)}});
    ASSERT_FALSE(r.explanation.special.empty());
    const MatrixD points = r.explanation.special[0].vectors.cast<double>();
    ASSERT_EQ(points.rows(), m);
    const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>(), v = in.v.cast<double>();
    const MatrixD a = softmaxRows(points, k, s);         // m×N: the inducing points read the set
    const MatrixD hk = a * k, hv = a * v;                 // H's keys and values
    const MatrixD b = softmaxRows(q, hk, s);              // N×m: the set reads H
    EXPECT_LT(relativeError(r.output, MatrixD(b * hv)), 1e-5) << "m = " << m;
    const Matrix w = r.explanation.weights.dense();
    EXPECT_LT((w.cast<double>() - b * a).cwiseAbs().maxCoeff(), 1e-5) << "m = " << m;  // A_eff = A(X←H)·A(I←X)
  }
}

// A different operator: no m reproduces softmax attention, because H's rows are softmax averages of the
// tokens. The floor is that blur: where the first hop is (numerically) the identity — orthogonal keys of
// large norm, every key an inducing point — the same two hops are exact attention.
TEST(TruthMemory, SetTransformerFloorIsTheFirstHopsBlur) {
  const auto st = requireMechanism("set-transformer");
  EXPECT_FALSE(st->info().approximates_softmax);
  const Inputs clustered = inputs(Generator::Clustered, 96);
  EXPECT_FALSE(st->exactLimit(clustered).has_value());
  const double floor = errorVsExact(run("set-transformer", clustered, {{"inducing", "96"}}), clustered, false);
  std::printf("[ set-transformer ] m = N on clustered tokens: rel. error %.3f\n", floor);
  EXPECT_GT(floor, 0.05);

  Inputs sharp = clustered;
  const Index n = 16;
  sharp.q = Rng(7).gaussian(n, n);
  sharp.k = Matrix::Identity(n, n) * 12.0f;  // s·k_i·k_j = 36 on the diagonal, 0 off it
  sharp.v = Rng(8).gaussian(n, 8);
  EXPECT_LT(errorVsExact(run("set-transformer", sharp, {{"inducing", "16"}}), sharp, false), 1e-4);
}

// --- star-transformer --------------------------------------------------------------------------------------

// The paper's Algorithm 1, linear (one head, identity value/output maps, no ReLU/LayerNorm): a node's state
// is a mix of the tokens and carries that mix of Q, K, V; satellite i attends with its state's query to
// [h_{i−1}, h_i, h_{i+1} (wrapping), e_i, s]; then s attends to [s; new h] with its own query.
MatrixD starRounds(const Inputs& in, Index rounds) {
  const Index n = in.n();
  const double sc = 1.0 / std::sqrt(double(in.q.cols()));
  const MatrixD q0 = in.q.cast<double>(), k0 = in.k.cast<double>(), v0 = in.v.cast<double>();
  MatrixD hq = q0, hk = k0, hv = v0;
  Row sq = q0.colwise().mean(), sk = k0.colwise().mean(), sv = v0.colwise().mean();
  for (Index t = 0; t < rounds; ++t) {
    MatrixD nq(n, hq.cols()), nk(n, hk.cols()), nv(n, hv.cols());
    for (Index i = 0; i < n; ++i) {
      std::vector<Row> cq, ck, cv;
      std::set<Index> ring{(i + n - 1) % n, i, (i + 1) % n};
      for (Index j : ring) cq.push_back(hq.row(j)), ck.push_back(hk.row(j)), cv.push_back(hv.row(j));
      cq.push_back(q0.row(i)), ck.push_back(k0.row(i)), cv.push_back(v0.row(i));
      cq.push_back(sq), ck.push_back(sk), cv.push_back(sv);
      VectorD x(Index(ck.size()));
      for (size_t c = 0; c < ck.size(); ++c) x(Index(c)) = sc * hq.row(i).dot(ck[c]);
      const VectorD a = softmax(x);
      nq.row(i).setZero(), nk.row(i).setZero(), nv.row(i).setZero();
      for (size_t c = 0; c < ck.size(); ++c)
        nq.row(i) += a(Index(c)) * cq[c], nk.row(i) += a(Index(c)) * ck[c], nv.row(i) += a(Index(c)) * cv[c];
    }
    hq = nq, hk = nk, hv = nv;
    VectorD x(n + 1);
    x(0) = sc * sq.dot(sk);
    for (Index j = 0; j < n; ++j) x(j + 1) = sc * sq.dot(hk.row(j));
    const VectorD b = softmax(x);
    Row q2 = b(0) * sq, k2 = b(0) * sk, v2 = b(0) * sv;
    for (Index j = 0; j < n; ++j) q2 += b(j + 1) * hq.row(j), k2 += b(j + 1) * hk.row(j), v2 += b(j + 1) * hv.row(j);
    sq = q2, sk = k2, sv = v2;
  }
  return hv;
}

TEST(TruthMemory, StarTransformerQueriesAndKeysMoveWithTheStates) {
  for (Generator g : {Generator::Local, Generator::Gaussian}) {
    const Inputs in = inputs(g, 40);
    for (Index rounds : {1, 2, 4}) {
      const Result r = run("star-transformer", in, {{"rounds", std::to_string(rounds)}});
      const double e = relativeError(r.output, starRounds(in, rounds));
      EXPECT_LT(e, 1e-5) << generatorName(g) << ", " << rounds << " rounds";
      const Matrix w = r.explanation.weights.dense();  // the V = I probe reproduces the output
      EXPECT_LT(relativeError(Matrix(w * in.v), MatrixD(r.output.cast<double>())), 1e-5);
    }
  }
}

// The ring wraps: after one round, token 0's weight on token N−1 is its ring weight α_left plus the relay's
// share α_relay/N, while a token off the ring gets α_relay/N only (the relay starts as the mean of all).
TEST(TruthMemory, StarTransformerRingWrapsAndTheRelayReachesEveryToken) {
  const Inputs in = inputs(Generator::Gaussian, 30);
  const Index n = 30;
  const Result r = run("star-transformer", in, {{"rounds", "1"}});
  const Matrix w = r.explanation.weights.dense();
  const double sc = 1.0 / std::sqrt(double(in.q.cols()));
  const MatrixD q = in.q.cast<double>(), k = in.k.cast<double>();
  for (Index i : {Index(0), Index(13), n - 1}) {
    const Index left = (i + n - 1) % n, right = (i + 1) % n;
    VectorD x(5);
    x << sc * q.row(i).dot(k.row(left)), sc * q.row(i).dot(k.row(i)), sc * q.row(i).dot(k.row(right)),
        sc * q.row(i).dot(k.row(i)), sc * q.row(i).dot(Row(k.colwise().mean()));
    const VectorD a = softmax(x);
    const double relay = a(4) / double(n);
    EXPECT_NEAR(w(i, left), a(0) + relay, 1e-6) << i;
    EXPECT_NEAR(w(i, right), a(2) + relay, 1e-6) << i;
    EXPECT_NEAR(w(i, i), a(1) + a(3) + relay, 1e-6) << i;
    double off_ring = 0;  // the largest departure from α_relay/N of a token off the ring
    for (Index j = 0; j < n; ++j)
      if (j != left && j != i && j != right) off_ring = std::max(off_ring, std::abs(double(w(i, j)) - relay));
    EXPECT_LT(off_ring, 1e-6) << i;
    EXPECT_TRUE(r.explanation.pattern->contains(i, left) && r.explanation.pattern->contains(i, right)) << i;
  }
}

// --- compressive -------------------------------------------------------------------------------------------

// The paper's schedule (Algorithm 1), simulated: a FIFO memory of n_m entries that starts as padding (the
// paper's zeros, here positions < 0 that are never attended); pushing a segment evicts the oldest entries
// beyond n_m, which f_c turns into ⌊evicted/c⌋ slots of c consecutive entries (the rest are dropped);
// the compressed FIFO keeps the newest n_cm slots. A query sees the real entries of both memories and its
// segment (up to itself when causal); a slot is the mean of its real positions.
struct Seen {
  std::set<Index> raw;
  std::vector<std::vector<Index>> slots;
};

std::vector<Seen> fifoSchedule(Index n, Index ns, Index nm, Index ncm, Index c, bool causal) {
  std::vector<Seen> seen(static_cast<size_t>(n));
  std::deque<Index> memory;
  for (Index j = -nm; j < 0; ++j) memory.push_back(j);
  std::deque<std::vector<Index>> compressed;
  for (Index s0 = 0; s0 < n; s0 += ns) {
    const Index end = std::min(n, s0 + ns);
    for (Index i = s0; i < end; ++i) {
      Seen& q = seen[size_t(i)];
      for (Index j : memory)
        if (j >= 0) q.raw.insert(j);
      for (Index j = s0; j < (causal ? i + 1 : end); ++j) q.raw.insert(j);
      for (const auto& slot : compressed) {
        std::vector<Index> real;
        for (Index j : slot)
          if (j >= 0) real.push_back(j);
        if (!real.empty()) q.slots.push_back(real);
      }
    }
    for (Index j = s0; j < end; ++j) memory.push_back(j);
    std::vector<Index> evicted;
    while (Index(memory.size()) > nm) evicted.push_back(memory.front()), memory.pop_front();
    for (Index g = 0; g + c <= Index(evicted.size()); g += c)
      compressed.push_back(std::vector<Index>(evicted.begin() + g, evicted.begin() + g + c));
    while (Index(compressed.size()) > ncm) compressed.pop_front();
  }
  return seen;
}

MatrixD attendSeen(const Inputs& in, const std::vector<Seen>& seen) {
  const Index n = in.n(), d = in.q.cols(), dv = in.v.cols();
  const double sc = 1.0 / std::sqrt(double(d));
  MatrixD out(n, dv);
  for (Index i = 0; i < n; ++i) {
    const Seen& q = seen[size_t(i)];
    const Index count = Index(q.raw.size() + q.slots.size());
    MatrixD keys(count, d), values(count, dv);
    Index t = 0;
    for (Index j : q.raw) keys.row(t) = in.k.row(j).cast<double>(), values.row(t++) = in.v.row(j).cast<double>();
    for (const auto& slot : q.slots) {
      keys.row(t).setZero(), values.row(t).setZero();
      for (Index j : slot) keys.row(t) += in.k.row(j).cast<double>(), values.row(t) += in.v.row(j).cast<double>();
      keys.row(t) /= double(slot.size()), values.row(t++) /= double(slot.size());
    }
    out.row(i) = softmax((keys * in.q.row(i).cast<double>().transpose()) * sc).transpose() * values;
  }
  return out;
}

TEST(TruthMemory, CompressiveFollowsThePapersFifoAtUnalignedSizes) {
  const Inputs in = inputs(Generator::Local, 150);
  // (n_s, n_m, n_cm, c): the unaligned setting, c not dividing n_s, n_s > n_m, the defaults.
  const std::vector<std::array<Index, 4>> settings{
      {20, 30, 8, 4}, {10, 7, 5, 3}, {12, 5, 6, 2}, {7, 20, 3, 2}, {32, 32, 16, 4}, {16, 0, 40, 4}};
  for (const auto& [ns, nm, ncm, c] : settings)
    for (bool causal : {true, false}) {
      const std::string what = "(" + std::to_string(ns) + ", " + std::to_string(nm) + ", " + std::to_string(ncm) +
                               ", " + std::to_string(c) + ") causal " + std::to_string(causal);
      const Result r = run("compressive", in,
                           {{"segment", std::to_string(ns)}, {"memory", std::to_string(nm)},
                            {"compressed", std::to_string(ncm)}, {"rate", std::to_string(c)}},
                           causal);
      const std::vector<Seen> seen = fifoSchedule(in.n(), ns, nm, ncm, c, causal);
      const Pattern& p = *r.explanation.pattern;  // the raw keys each query scores
      Index rows_differ = 0;
      for (Index i = 0; i < in.n(); ++i) {
        const std::set<Index> raw(p.col.begin() + p.row_ptr[size_t(i)], p.col.begin() + p.row_ptr[size_t(i + 1)]);
        rows_differ += raw != seen[size_t(i)].raw;
      }
      EXPECT_EQ(rows_differ, 0) << what;
      EXPECT_LT(relativeError(r.output, attendSeen(in, seen)), 1e-5) << what;  // the slots, through the output
    }
}

TEST(TruthMemory, CompressiveWithNothingCompressedIsExactAttention) {
  const Inputs in = inputs(Generator::Clustered, 120);
  // Causal: a memory covering the past, or slots of one position (c = 1) covering it.
  EXPECT_LT(errorVsExact(run("compressive", in, {{"segment", "16"}, {"memory", "120"}}, true), in, true), 1e-5);
  EXPECT_LT(errorVsExact(run("compressive", in, {{"segment", "16"}, {"memory", "8"}, {"compressed", "120"},
                                                 {"rate", "1"}}, true), in, true), 1e-5);
  // Either way: one segment of every token.
  for (bool causal : {false, true})
    EXPECT_LT(errorVsExact(run("compressive", in, {{"segment", "120"}}, causal), in, causal), 1e-5) << causal;
}

// --- gmat ------------------------------------------------------------------------------------------------

// A main token reads [its band; the M memory tokens], memory token t being the mean of the keys and values
// of the t-th of M equal segments; in the bottleneck (w = 0) it reads the memory tokens only.
TEST(TruthMemory, GmatMainTokensReadTheirBandAndTheMemoryTokens) {
  const Inputs in = inputs(Generator::Gaussian, 90);
  const Index n = 90, mem = 6;
  const double sc = 1.0 / std::sqrt(double(in.q.cols()));
  MatrixD mk(mem, in.k.cols()), mv(mem, in.v.cols());
  for (Index t = 0; t < mem; ++t) {
    const Index lo = t * n / mem, hi = (t + 1) * n / mem;
    mk.row(t) = in.k.middleRows(lo, hi - lo).cast<double>().colwise().mean();
    mv.row(t) = in.v.middleRows(lo, hi - lo).cast<double>().colwise().mean();
  }
  for (Index w : {0, 8}) {
    const Result r = run("gmat", in, {{"memory", std::to_string(mem)}, {"window", std::to_string(w)}});
    MatrixD expected(n, in.v.cols()), weights = MatrixD::Zero(n, n);
    for (Index i = 0; i < n; ++i) {
      std::vector<Index> band;
      if (w > 0)
        for (Index j = std::max<Index>(0, i - w / 2); j <= std::min(n - 1, i + w / 2); ++j) band.push_back(j);
      VectorD x(Index(band.size()) + mem);
      const Row q = in.q.row(i).cast<double>();
      for (size_t b = 0; b < band.size(); ++b) x(Index(b)) = sc * q.dot(in.k.row(band[b]).cast<double>());
      for (Index t = 0; t < mem; ++t) x(Index(band.size()) + t) = sc * q.dot(mk.row(t));
      const VectorD a = softmax(x);
      expected.row(i).setZero();
      for (size_t b = 0; b < band.size(); ++b) {
        expected.row(i) += a(Index(b)) * in.v.row(band[b]).cast<double>();
        weights(i, band[b]) += a(Index(b));
      }
      for (Index t = 0; t < mem; ++t) {
        const Index lo = t * n / mem, hi = (t + 1) * n / mem;
        expected.row(i) += a(Index(band.size()) + t) * mv.row(t);
        for (Index j = lo; j < hi; ++j) weights(i, j) += a(Index(band.size()) + t) / double(hi - lo);
      }
    }
    EXPECT_LT(relativeError(r.output, expected), 1e-5) << "w = " << w;
    EXPECT_LT((r.explanation.weights.dense().cast<double>() - weights).cwiseAbs().maxCoeff(), 1e-6) << "w = " << w;
  }
}

// --- memformer -------------------------------------------------------------------------------------------

// Read: a token attends to [the k slots, once written; its segment (causal within it)]. Write: slot t
// attends to [itself, once written; the segment's tokens] and moves its key and value by those weights.
// Before the first write the memory is empty; a slot's first write uses its random direction (the run's
// stand-in: Rng(seed, 41), unit variance) as its query, later writes its key.
MatrixD memformerModel(const Inputs& in, Index k, Index seg, bool causal, std::uint64_t seed) {
  const Index n = in.n();
  const double sc = 1.0 / std::sqrt(double(in.q.cols()));
  MatrixD sk = Rng(seed, 41).gaussian(k, in.q.cols()).cast<double>(), sv = MatrixD::Zero(k, in.v.cols());
  bool empty = true;
  MatrixD out(n, in.v.cols());
  for (Index s0 = 0; s0 < n; s0 += seg) {
    const Index len = std::min(seg, n - s0), held = empty ? 0 : k;
    const MatrixD tk = in.k.middleRows(s0, len).cast<double>(), tv = in.v.middleRows(s0, len).cast<double>();
    for (Index r0 = 0; r0 < len; ++r0) {
      const Index visible = causal ? r0 + 1 : len;
      VectorD x(held + visible);
      const Row q = in.q.row(s0 + r0).cast<double>();
      for (Index t = 0; t < held; ++t) x(t) = sc * q.dot(sk.row(t));
      for (Index j = 0; j < visible; ++j) x(held + j) = sc * q.dot(tk.row(j));
      const VectorD a = softmax(x);
      out.row(s0 + r0) = a.head(held).transpose() * sv.topRows(held);
      out.row(s0 + r0) += a.tail(visible).transpose() * tv.topRows(visible);
    }
    MatrixD nk(k, sk.cols()), nv(k, sv.cols());
    for (Index t = 0; t < k; ++t) {
      VectorD x(len + (empty ? 0 : 1));
      for (Index j = 0; j < len; ++j) x(j) = sc * sk.row(t).dot(tk.row(j));
      if (!empty) x(len) = sc * sk.row(t).squaredNorm();
      const VectorD a = softmax(x);
      nk.row(t) = a.head(len).transpose() * tk;
      nv.row(t) = a.head(len).transpose() * tv;
      if (!empty) nk.row(t) += a(len) * sk.row(t), nv.row(t) += a(len) * sv.row(t);
    }
    sk = nk, sv = nv;
    empty = false;
  }
  return out;
}

TEST(TruthMemory, MemformerFollowsItsReadAndWriteFromAnEmptyMemory) {
  const Inputs in = inputs(Generator::Local, 100);
  for (bool causal : {false, true})
    for (auto [k, seg] : std::vector<std::pair<Index, Index>>{{8, 20}, {3, 32}}) {
      const Result r = run("memformer", in, {{"slots", std::to_string(k)}, {"segment", std::to_string(seg)}}, causal);
      EXPECT_LT(relativeError(r.output, memformerModel(in, k, seg, causal, 1)), 1e-5)
          << "k = " << k << ", n_s = " << seg << ", causal " << causal;
    }
}

// Every row of the effective matrix sums to 1: no mass goes to empty slots (the first segment reads only
// its own tokens), and each written slot is a convex mix of past tokens.
TEST(TruthMemory, MemformerGivesNoWeightToEmptySlots) {
  for (Generator g : {Generator::Gaussian, Generator::Clustered}) {
    const Inputs in = inputs(g, 96);
    for (bool causal : {false, true}) {
      const Result r = run("memformer", in, {{"slots", "8"}, {"segment", "32"}}, causal);
      const Matrix w = r.explanation.weights.dense();
      const Eigen::VectorXf sums = w.rowwise().sum();
      EXPECT_LT((sums.array() - 1).abs().maxCoeff(), 1e-5) << generatorName(g) << ", causal " << causal;
      EXPECT_TRUE(w.topRows(32).rightCols(64).isZero(0)) << generatorName(g);  // the first segment sees itself
      EXPECT_TRUE(r.explanation.factors[0].value.topRows(32).isZero(0)) << generatorName(g);  // and no slot
    }
  }
}

}  // namespace
}  // namespace attn
