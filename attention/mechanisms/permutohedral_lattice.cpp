// The permutohedral lattice (see permutohedral_lattice.h): embedding, enclosing simplices and barycentric
// weights as in Adams et al.'s reference code (permutohedral.h), PAM's blur [½ 1 ½] and slice constant α.
#include "attention/mechanisms/permutohedral_lattice.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "attention/types.h"

namespace attn::mech {
namespace {

/// Vertices by their first d coordinates (the last is minus their sum): open addressing over a flat key array.
class VertexTable {
 public:
  explicit VertexTable(Index dims) : d_(dims), slots_(1024, -1) {}
  Index size() const { return count_; }
  const std::int32_t* key(Index v) const { return keys_.data() + v * d_; }
  /// The vertex with this key, inserted when new and `insert`; −1 when absent and not inserted.
  Index find(const std::int32_t* key, bool insert) {
    if (insert && 2 * (count_ + 1) > Index(slots_.size())) grow();
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t s = hash(key) & mask;; s = (s + 1) & mask) {
      const Index v = slots_[s];
      if (v < 0) {
        if (!insert) return -1;
        if (count_ >= kMaxLatticeVertices) return -2;
        keys_.insert(keys_.end(), key, key + d_);
        slots_[s] = count_;
        return count_++;
      }
      if (std::equal(key, key + d_, keys_.data() + v * d_)) return v;
    }
  }

 private:
  std::size_t hash(const std::int32_t* key) const {
    std::uint64_t h = 1469598103934665603ull;
    for (Index k = 0; k < d_; ++k) {
      h ^= std::uint64_t(std::uint32_t(key[k]));
      h *= 1099511628211ull;
      h ^= h >> 29;
    }
    return std::size_t(h);
  }
  void grow() {
    std::vector<Index> bigger(slots_.size() * 2, -1);
    const std::size_t mask = bigger.size() - 1;
    for (Index v = 0; v < count_; ++v) {
      std::size_t s = hash(key(v)) & mask;
      while (bigger[s] >= 0) s = (s + 1) & mask;
      bigger[s] = v;
    }
    slots_ = std::move(bigger);
  }
  Index d_;
  std::vector<Index> slots_;
  std::vector<std::int32_t> keys_;
  Index count_ = 0;
};

/// A point's simplex: its d + 1 vertices' keys (d coordinates each) and barycentric weights.
struct Simplex {
  std::vector<std::int32_t> keys;  // (d + 1) × d
  std::vector<double> weights;     // d + 1
};

/// Embedding of f (d features) in the hyperplane Σx = 0 of R^(d+1) (PAM's matrix, Adams's scale √(2/3)(d+1)):
/// x_i = Σ_{j > i} c_j f_(j−1) − i·c_i f_(i−1), c_j = √(2/3)(d+1)/√(j(j+1)).
void elevate(const double* f, Index d, double* x) {
  std::fill(x, x + d + 1, 0.0);
  for (Index j = 1; j <= d; ++j) {
    const double c = std::sqrt(2.0 / 3.0) * double(d + 1) / std::sqrt(double(j * (j + 1)));
    const double t = f[j - 1] * c;
    for (Index i = 0; i < j; ++i) x[i] += t;
    x[j] -= double(j) * t;
  }
}

Simplex simplexOf(const double* f, Index d) {
  const Index d1 = d + 1;
  std::vector<double> x(static_cast<size_t>(d1)), greedy(static_cast<size_t>(d1));
  std::vector<Index> rank(static_cast<size_t>(d1), 0);
  elevate(f, d, x.data());
  // The nearest remainder-0 lattice point (coordinates multiples of d + 1), then the ranks of the differentials.
  Index sum = 0;
  for (Index i = 0; i < d1; ++i) {
    const double rd = std::round(x[size_t(i)] / double(d1));
    greedy[size_t(i)] = rd * double(d1);
    sum += Index(rd);
  }
  for (Index i = 0; i < d; ++i)
    for (Index j = i + 1; j < d1; ++j)
      if (x[size_t(i)] - greedy[size_t(i)] < x[size_t(j)] - greedy[size_t(j)]) ++rank[size_t(i)];
      else ++rank[size_t(j)];
  // Back onto the hyperplane: the coordinates with the smallest (sum > 0) or largest (sum < 0) differentials move.
  if (sum > 0) {
    for (Index i = 0; i < d1; ++i)
      if (rank[size_t(i)] >= d1 - sum) greedy[size_t(i)] -= double(d1), rank[size_t(i)] += sum - d1;
      else rank[size_t(i)] += sum;
  } else if (sum < 0) {
    for (Index i = 0; i < d1; ++i)
      if (rank[size_t(i)] < -sum) greedy[size_t(i)] += double(d1), rank[size_t(i)] += d1 + sum;
      else rank[size_t(i)] += sum;
  }
  std::vector<double> b(static_cast<size_t>(d1 + 1), 0.0);
  for (Index i = 0; i < d1; ++i) {
    const double delta = (x[size_t(i)] - greedy[size_t(i)]) / double(d1);
    b[size_t(d - rank[size_t(i)])] += delta;
    b[size_t(d1 - rank[size_t(i)])] -= delta;
  }
  b[0] += 1.0 + b[size_t(d1)];
  Simplex s;
  s.keys.resize(size_t(d1 * d));
  s.weights.assign(b.begin(), b.begin() + d1);
  // Vertex `remainder`: greedy + the canonical simplex's vertex, coordinate i shifted by remainder (rank i < d1 −
  // remainder) or remainder − (d + 1).
  for (Index r = 0; r < d1; ++r)
    for (Index i = 0; i < d; ++i) {
      const Index rk = rank[size_t(i)];
      const Index canonical = rk < d1 - r ? r : r - d1;
      s.keys[size_t(r * d + i)] = std::int32_t(std::lround(greedy[size_t(i)]) + canonical);
    }
  return s;
}

[[noreturn]] void tooLarge(Index dims, Index refine) {
  throw UserError("the permutohedral lattice would pass " + std::to_string(kMaxLatticeVertices) +
                  " vertices (features = " + std::to_string(dims) + ", refine = " + std::to_string(refine) +
                  "): lower refine or features, or raise sigma");
}

SparseMatrix fromTriplets(Index rows, Index cols, std::vector<std::vector<std::pair<std::int32_t, float>>>& by_row) {
  SparseMatrix m;
  m.rows = rows, m.cols = cols;
  m.row_ptr.reserve(size_t(rows + 1));
  m.row_ptr.push_back(0);
  for (auto& row : by_row) {
    for (const auto& [c, v] : row) m.col.push_back(c), m.value.push_back(v);
    m.row_ptr.push_back(Index(m.col.size()));
  }
  return m;
}

}  // namespace

double latticeVertexBound(Index n, Index m, Index dims, Index refine) {
  double bound = double(n + m) * double(dims + 1);
  if (refine > 1) bound *= std::pow(2.0 * double(refine * refine) + 1.0, double(dims));
  return std::min(bound, double(kMaxLatticeVertices));
}

Lattice buildLattice(const MatrixD& fq, const MatrixD& fk, Index refine) {
  const Index d = fq.cols(), d1 = d + 1, n = fq.rows(), m = fk.rows();
  if (fk.cols() != d) throw UserError("the permutohedral lattice needs queries and keys with the same features");
  if (d < 1) throw UserError("the permutohedral lattice needs at least one feature");
  refine = std::max<Index>(refine, 1);
  VertexTable table(d);
  std::vector<Index> q_vertex(static_cast<size_t>(n * d1)), k_vertex(static_cast<size_t>(m * d1));
  std::vector<double> q_weight(static_cast<size_t>(n * d1)), k_weight(static_cast<size_t>(m * d1));
  std::vector<double> scaled(static_cast<size_t>(d));
  auto place = [&](const MatrixD& f, Index count, std::vector<Index>& vertex, std::vector<double>& weight) {
    for (Index p = 0; p < count; ++p) {
      for (Index k = 0; k < d; ++k) scaled[size_t(k)] = f(p, k) * double(refine);
      const Simplex s = simplexOf(scaled.data(), d);
      for (Index r = 0; r < d1; ++r) {
        const Index v = table.find(s.keys.data() + r * d, true);
        if (v < 0) tooLarge(d, refine);
        vertex[size_t(p * d1 + r)] = v;
        weight[size_t(p * d1 + r)] = s.weights[size_t(r)];
      }
    }
  };
  place(fk, m, k_vertex, k_weight);
  place(fq, n, q_vertex, q_weight);
  // The neighbours of vertex key along direction j: every coordinate +1 and coordinate j − d (and the opposite);
  // j = d moves every coordinate by ±1.
  std::vector<std::int32_t> nb(static_cast<size_t>(d)), cur;
  auto neighbour = [&](const std::int32_t* key, Index j, int sign) {
    for (Index k = 0; k < d; ++k) nb[size_t(k)] = key[k] + sign;
    if (j < d) nb[size_t(j)] = key[j] - sign * std::int32_t(d);
    return nb.data();
  };
  if (refine > 1)  // the vertices r² rounds of blur reach
    for (Index round = 0; round < refine * refine; ++round)
      for (Index j = 0; j < d1; ++j) {
        const Index before = table.size();
        for (Index v = 0; v < before; ++v)
          for (int sign : {1, -1}) {
            cur.assign(table.key(v), table.key(v) + d);  // a copy: inserting may move the keys
            if (table.find(neighbour(cur.data(), j, sign), true) < 0) tooLarge(d, refine);
          }
      }
  Lattice lat;
  lat.dims = d, lat.refine = refine, lat.vertices = table.size();
  const Index l = lat.vertices;
  {  // splat: vertex ← key
    std::vector<std::vector<std::pair<std::int32_t, float>>> rows(static_cast<size_t>(l));
    lat.key_mass.assign(size_t(l), 0.0);
    for (Index p = 0; p < m; ++p)
      for (Index r = 0; r < d1; ++r) {
        const Index v = k_vertex[size_t(p * d1 + r)];
        rows[size_t(v)].push_back({std::int32_t(p), float(k_weight[size_t(p * d1 + r)])});
        lat.key_mass[size_t(v)] += k_weight[size_t(p * d1 + r)];
      }
    lat.splat = fromTriplets(l, m, rows);
  }
  // Blur along direction j: 2·[(1 − 2a)·I + a·(P + Pᵀ)] over the vertices present. a = ¼ at r = 1 (PAM's [½ 1 ½]);
  // each pass adds 3a/r² to the kernel's variance in feature units (the d + 1 directions' steps, squared length
  // 3d/(2(d+1))/r², form a regular simplex frame), the splat and slice ¼/r²: r² passes with a = (1 − 1/(4r²))/3
  // keep the total at 1, the Gaussian's.
  const double a = (1.0 - 1.0 / (4.0 * double(refine * refine))) / 3.0;
  for (Index j = 0; j < d1; ++j) {
    std::vector<std::vector<std::pair<std::int32_t, float>>> rows(static_cast<size_t>(l));
    for (Index v = 0; v < l; ++v) {
      rows[size_t(v)].push_back({std::int32_t(v), float(2 * (1 - 2 * a))});
      for (int sign : {1, -1}) {
        const Index u = table.find(neighbour(table.key(v), j, sign), false);
        if (u >= 0) rows[size_t(v)].push_back({std::int32_t(u), float(2 * a)});
      }
    }
    lat.blur.push_back(fromTriplets(l, l, rows));
  }
  {  // slice: query ← vertex, α·weights
    const double alpha = 1.0 / (1.0 + std::pow(2.0, -double(d)));
    std::vector<std::vector<std::pair<std::int32_t, float>>> rows(static_cast<size_t>(n));
    for (Index p = 0; p < n; ++p)
      for (Index r = 0; r < d1; ++r)
        rows[size_t(p)].push_back({std::int32_t(q_vertex[size_t(p * d1 + r)]), float(alpha * q_weight[size_t(p * d1 + r)])});
    lat.slice = fromTriplets(n, l, rows);
  }
  // Positions in feature space: the embedding's columns are orthogonal, each of squared norm (2/3)(d+1)².
  lat.positions.resize(l, d);
  std::vector<double> x(static_cast<size_t>(d1));
  for (Index v = 0; v < l; ++v) {
    double last = 0;
    for (Index k = 0; k < d; ++k) x[size_t(k)] = table.key(v)[k], last -= table.key(v)[k];
    x[size_t(d)] = last;
    for (Index j = 1; j <= d; ++j) {
      const double c = std::sqrt(2.0 / 3.0) * double(d + 1) / std::sqrt(double(j * (j + 1)));
      double dot = -double(j) * x[size_t(j)];
      for (Index i = 0; i < j; ++i) dot += x[size_t(i)];
      lat.positions(v, j - 1) = dot * c / (2.0 / 3.0 * double(d1 * d1)) / double(refine);
    }
  }
  return lat;
}

}  // namespace attn::mech
