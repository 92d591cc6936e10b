// Seeded random numbers that are bit-identical on every platform (std::normal_distribution is not:
// its algorithm is implementation-defined), so a seed reproduces a figure anywhere.
#pragma once
#include <cmath>
#include <cstdint>
#include <random>

#include "attention/types.h"

namespace attn {

class Rng {
 public:
  explicit Rng(std::uint64_t seed, std::uint64_t stream = 0) : engine_(seed * 0x9E3779B97F4A7C15ull + stream) {}
  /// Uniform in [0, 1).
  double uniform() { return double(engine_() >> 11) * 0x1.0p-53; }
  /// Uniform integer in [0, n).
  std::uint64_t below(std::uint64_t n) { return n == 0 ? 0 : engine_() % n; }
  /// Standard normal (Box–Muller, cached pair).
  double normal() {
    if (has_spare_) {
      has_spare_ = false;
      return spare_;
    }
    double u1 = 0;
    do u1 = uniform();
    while (u1 <= 0);
    const double u2 = uniform();
    const double r = std::sqrt(-2.0 * std::log(u1));
    spare_ = r * std::sin(2 * M_PI * u2);
    has_spare_ = true;
    return r * std::cos(2 * M_PI * u2);
  }
  /// rows×cols matrix of N(0, σ²) entries, filled row by row.
  Matrix gaussian(Index rows, Index cols, double sigma = 1.0) {
    Matrix m(rows, cols);
    for (Index i = 0; i < rows; ++i)
      for (Index j = 0; j < cols; ++j) m(i, j) = static_cast<float>(sigma * normal());
    return m;
  }

 private:
  std::mt19937_64 engine_;
  double spare_ = 0;
  bool has_spare_ = false;
};

}  // namespace attn
