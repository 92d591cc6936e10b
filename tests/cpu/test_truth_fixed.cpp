// Truth pass (issue 19) for sparse-transformer, bp-transformer, transformer-on-a-diet, etc, multiscale and
// jukebox: each row's keys (and, for the span-node mechanisms, the level of the token or span that covers
// each key) are rebuilt here from the paper's definition — or, for BP-Transformer, from a port of the
// official graph builder — and compared with what the mechanism exposes, row by row, at sizes that are
// not multiples of the block, stride or span (causal and not). The count the fix is about is checked
// against the paper's numbers: BP-Transformer's entries per row, the Sparse Transformer's N√N growth.
#include <cmath>
#include <functional>
#include <sstream>

#include "attention/mechanism.h"
#include "test_util.h"

namespace attn {
namespace {

Inputs inputs(Index n, Generator g = Generator::Gaussian) { return test::mechanismInputs(g, n, 1); }
Result run(const std::string& id, const Inputs& in, std::map<std::string, std::string> params, bool causal) {
  return test::runMechanism(id, in, std::move(params), causal);
}

/// Expected keys of a row: (key, component index), any order.
using Row = std::vector<std::pair<Index, int>>;

/// Compares pattern p with want(i) row by row: the keys, and their components when `components`. Stops at
/// the first wrong row (one message, not thousands).
void expectRows(const Pattern& p, Index rows, const std::function<Row(Index)>& want, const std::string& what,
                bool components = true) {
  ASSERT_EQ(p.rows, rows) << what;
  for (Index i = 0; i < rows; ++i) {
    Row w = want(i);
    std::sort(w.begin(), w.end());
    Row got;
    for (Index e = p.row_ptr[size_t(i)]; e < p.row_ptr[size_t(i + 1)]; ++e)
      got.push_back({Index(p.col[size_t(e)]), components ? int(p.component[size_t(e)]) : 0});
    if (!components)
      for (auto& x : w) x.second = 0;
    if (got != w) {
      std::ostringstream s;
      s << what << ": row " << i << " has " << got.size() << " keys, the rule gives " << w.size() << ";";
      for (size_t t = 0; t < std::max(got.size(), w.size()); ++t)
        if (t >= got.size() || t >= w.size() || got[t] != w[t]) {
          s << " first difference at entry " << t << ": got "
            << (t < got.size() ? std::to_string(got[t].first) + "/" + std::to_string(got[t].second) : "-")
            << ", want " << (t < w.size() ? std::to_string(w[t].first) + "/" + std::to_string(w[t].second) : "-");
          break;
        }
      ADD_FAILURE() << s.str();
      return;
    }
  }
}

const Pattern& stepPattern(const Result& r, const std::string& title) {
  for (const Step& s : r.explanation.steps)
    if (s.title == title && s.view && s.view->pattern) return *s.view->pattern;
  throw std::runtime_error("no step " + title);
}

Index mod(Index a, Index l) { return ((a % l) + l) % l; }

// --- sparse-transformer ----------------------------------------------------------------------------------

TEST(TruthSparseTransformer, StridedPatternFollowsThePaperAtAnOrdinaryStride) {
  // Child et al. (3.2, strided): A¹(i) = {j : i − l < j ≤ i} (band), A²(i) = {j : (i − j) mod l = 0}, j ≤ i.
  // Bidirectional form: band |i − j| < l and the stride both ways. N = 103: not a multiple of l = 7 or of
  // the default l = ⌈√103⌉ = 11.
  const Index n = 103;
  const Inputs in = inputs(n);
  for (Index stride : {0, 7})
    for (bool causal : {true, false}) {
      const Index l = stride == 0 ? 11 : stride;
      const Result r = run("sparse-transformer", in, {{"variant", "strided"}, {"stride", std::to_string(stride)}}, causal);
      expectRows(*r.explanation.pattern, n, [&](Index i) {
        Row w;
        for (Index j = 0; j < n; ++j) {
          if (causal && j > i) continue;
          const bool band = causal ? (i - l < j && j <= i) : std::abs(i - j) < l;
          if (band) w.push_back({j, 0});
          else if (mod(i - j, l) == 0) w.push_back({j, 1});
        }
        return w;
      }, "strided l=" + std::to_string(l) + (causal ? " causal" : ""));
    }
}

TEST(TruthSparseTransformer, FixedPatternFollowsThePaperAtAnOrdinaryStride) {
  // Child et al. (3.2, fixed): A¹(i) = {j : ⌊j/l⌋ = ⌊i/l⌋}, A²(i) = {j : j mod l ∈ {l − c, …, l − 1}}, j ≤ i.
  // Bidirectional form: the whole block and every summary column. The default c is the paper's constant
  // 8, at most ⌈l/4⌉ (3 at l = 11).
  const Index n = 103;
  const Inputs in = inputs(n);
  struct Case {
    Index stride, summary, l, c;
  };
  for (const Case k : {Case{0, 0, 11, 3}, Case{7, 3, 7, 3}, Case{40, 0, 40, 8}})
    for (bool causal : {true, false}) {
      const Result r = run("sparse-transformer", in,
                           {{"variant", "fixed"}, {"stride", std::to_string(k.stride)}, {"summary", std::to_string(k.summary)}},
                           causal);
      expectRows(*r.explanation.pattern, n, [&](Index i) {
        Row w;
        for (Index j = 0; j < n; ++j) {
          if (causal && j > i) continue;
          if (j / k.l == i / k.l) w.push_back({j, 0});
          else if (j % k.l >= k.l - k.c) w.push_back({j, 1});
        }
        return w;
      }, "fixed l=" + std::to_string(k.l) + " c=" + std::to_string(k.c) + (causal ? " causal" : ""));
    }
}

TEST(TruthSparseTransformer, ScoredPairsGrowAsNRootNAtTheDefaults) {
  // The label says O(N√N·d): with l = ⌈√N⌉ and c a constant (8 from N ≈ 1000 on), a row scores
  // ≈ l + c·N/l ∝ √N keys, so 4× the tokens is 2× the keys per row (a c that grows with l makes the
  // summary columns c·N/l ∝ N: 4×).
  auto perRow = [](const std::string& variant, Index n) {
    CpuBackend cpu(2);
    const auto m = requireMechanism("sparse-transformer");
    RunOptions o;
    o.causal = true;
    o.explain = false;
    const Result r = m->run(inputs(n), Params::resolve(m->params(), {{"variant", variant}}), cpu, o);
    return r.cost.scored_pairs / double(n);
  };
  for (const char* variant : {"fixed", "strided"}) {
    const double small = perRow(variant, 1024), large = perRow(variant, 4096);
    std::printf("[ sparse-transformer %s causal ] keys per row: N=1024 %.1f, N=4096 %.1f (×%.2f; √4 = 2)\n", variant,
                small, large, large / small);
    EXPECT_GT(large / small, 1.6) << variant;
    EXPECT_LT(large / small, 2.5) << variant;
    EXPECT_LT(large, 6.0 * std::sqrt(4096.0)) << variant;  // ≈ (1/2 + c/2)·√N at most, c = 8
  }
}

// --- bp-transformer --------------------------------------------------------------------------------------

struct Span {
  Index begin, end;
  int level;
};

/// The official graph builder (yzh119/BPT graph_builder/builder.pyx, BinaryPartition.build_graph), ported
/// line by line: per token, the nodes that send it a top-down edge, plus its self loop. One change: the
/// right-hand "overlap" child is skipped when it lies past its level's end (the Cython indexes the next
/// level's first node there, which breaks the tiling at N not a power of two; at N = 2^p it never happens).
std::vector<std::vector<Span>> officialBpt(Index length, Index step, bool triu) {
  std::vector<Index> count;  // nodes per level
  for (Index n = length; n >= 2; n = (n + 1) >> 1) count.push_back(n);
  count.push_back(1);
  const Index levels = Index(count.size());
  auto span = [&](Index level, Index p) {
    return Span{p << level, std::min(length, (p + 1) << level), int(level)};
  };
  std::vector<std::vector<Span>> rows(static_cast<size_t>(length));
  for (Index i = 0; i < length; ++i) {
    auto& out = rows[size_t(i)];
    out.push_back(span(0, i));  // the self loop
    Index l_ptr = i - 1, r_ptr = i + 1;
    bool l_overlap = false, r_overlap = false;
    for (Index j = 0; j < levels; ++j) {
      for (Index k = 0; k < step; ++k) {
        if (!triu && r_ptr < count[size_t(j)]) {
          if (r_overlap) {
            const Index child = (r_ptr << 1) + 1;
            if (child < count[size_t(j - 1)]) out.push_back(span(j - 1, child));
          } else {
            out.push_back(span(j, r_ptr));
          }
          r_overlap = false;
        }
        r_ptr += 1;
        if (l_ptr >= 0) {
          out.push_back(l_overlap ? span(j - 1, l_ptr << 1) : span(j, l_ptr));
          l_overlap = false;
        }
        l_ptr -= 1;
      }
      if ((l_ptr & 1) == 0) l_overlap = true;
      if ((r_ptr & 1) == 1) r_overlap = true;
      r_ptr >>= 1;
      l_ptr >>= 1;  // arithmetic shift: −1 stays −1, as in C
    }
  }
  return rows;
}

TEST(TruthBpTransformer, RowsMatchTheOfficialGraphBuilder) {
  // Each row: the keys scored one by one (tokens), and the level of the token or span covering every
  // key (the Coverage step), against the official builder; and the entries per row. At k = 4 the child
  // that fills a gap is one of the k nodes of its level: 38.76 entries per row at N = 256 (not 41.0).
  struct Case {
    Index n, k;
  };
  for (const Case c : {Case{256, 4}, Case{256, 1}, Case{256, 3}, Case{100, 4}, Case{203, 2}})
    for (bool causal : {false, true}) {
      const Inputs in = inputs(c.n);
      const Result r = run("bp-transformer", in, {{"k", std::to_string(c.k)}}, causal);
      const auto official = officialBpt(c.n, c.k, causal);
      const std::string what = "N=" + std::to_string(c.n) + " k=" + std::to_string(c.k) + (causal ? " causal" : "");
      double entries = 0;
      for (const auto& row : official) entries += double(row.size());
      EXPECT_DOUBLE_EQ(r.cost.scored_pairs, entries) << what;
      expectRows(*r.explanation.pattern, c.n, [&](Index i) {
        Row w;
        for (const Span& s : official[size_t(i)])
          if (s.level == 0) w.push_back({s.begin, 0});
        return w;
      }, what + " tokens", false);
      expectRows(stepPattern(r, "Coverage"), c.n, [&](Index i) {
        Row w;
        for (const Span& s : official[size_t(i)])
          for (Index j = s.begin; j < s.end; ++j) w.push_back({j, s.level});
        return w;
      }, what + " coverage");
      if (c.n == 256 && !causal && (c.k == 4 || c.k == 1)) {  // the port's own figures (and CATALOG #14)
        EXPECT_NEAR(entries / 256.0, c.k == 4 ? 38.76 : 15.01, 0.005) << what;
        EXPECT_NEAR(r.cost.scored_pairs / 256.0, c.k == 4 ? 38.76 : 15.01, 0.005) << what;
      }
    }
}

// --- multiscale ------------------------------------------------------------------------------------------

TEST(TruthMultiscale, RetinaFollowsItsDefinitionAtAnOrdinarySetting) {
  // The teaching spec (CATALOG #26): w tokens on each side at scale 1; then at scale s = k^ℓ the gap up to
  // the next multiple of s is filled by blocks of scale k^(ℓ−1) and w blocks of scale s follow. Written
  // here as the boundaries of each scale's coverage: [b_ℓ, a_ℓ) at scale ℓ, [a_ℓ, b_(ℓ−1)) at scale ℓ − 1.
  struct Case {
    Index n, w, k;
  };
  for (const Case c : {Case{203, 8, 4}, Case{203, 3, 3}, Case{150, 2, 5}})
    for (bool causal : {true, false}) {
      const Inputs in = inputs(c.n);
      const Result r = run("multiscale", in, {{"window", std::to_string(c.w)}, {"factor", std::to_string(c.k)}}, causal);
      std::vector<std::vector<int>> level(static_cast<size_t>(c.n), std::vector<int>(size_t(c.n), -1));
      double entries = 0;
      for (Index i = 0; i < c.n; ++i) {
        auto& lv = level[size_t(i)];
        Index b = std::max<Index>(0, i - c.w), e = causal ? i + 1 : std::min(c.n, i + c.w + 1);
        for (Index j = b; j < e; ++j) lv[size_t(j)] = 0;
        entries += double(e - b);
        Index size = 1;
        for (int l = 1; b > 0 || (!causal && e < c.n); ++l) {
          const Index child = size;
          size *= c.k;
          const Index a = b / size * size, nb = std::max<Index>(0, a - c.w * size);
          for (Index j = a; j < b; ++j) lv[size_t(j)] = l - 1;
          for (Index j = nb; j < a; ++j) lv[size_t(j)] = l;
          entries += double((b - a) / child + (a - nb + size - 1) / size);
          b = nb;
          if (causal) continue;
          const Index ra = std::min(c.n, (e + size - 1) / size * size), ne = std::min(c.n, ra + c.w * size);
          for (Index j = e; j < ra; ++j) lv[size_t(j)] = l - 1;
          for (Index j = ra; j < ne; ++j) lv[size_t(j)] = l;
          entries += double((ra - e + child - 1) / child + (ne - ra + size - 1) / size);
          e = ne;
        }
      }
      const std::string what = "N=" + std::to_string(c.n) + " w=" + std::to_string(c.w) + " k=" + std::to_string(c.k) +
                               (causal ? " causal" : "");
      EXPECT_DOUBLE_EQ(r.cost.scored_pairs, entries) << what;
      expectRows(*r.explanation.pattern, c.n, [&](Index i) {
        Row w;
        for (Index j = 0; j < c.n; ++j)
          if (level[size_t(i)][size_t(j)] == 0) w.push_back({j, 0});
        return w;
      }, what + " tokens");
      expectRows(stepPattern(r, "Coverage"), c.n, [&](Index i) {
        Row w;
        for (Index j = 0; j < c.n; ++j)
          if (level[size_t(i)][size_t(j)] >= 0) w.push_back({j, level[size_t(i)][size_t(j)]});
        return w;
      }, what + " coverage");
    }
}

// --- etc -------------------------------------------------------------------------------------------------

TEST(TruthEtc, LongTokensSeeTheirRadiusAndEveryGlobalToken) {
  // l2l: |i − j| ≤ r (etcmodel: "a value of 1 would allow each token to only attend to 1 token to the
  // left and 1 token to the right"); l2g: every global token, here one per segment of 7 (the last one
  // shorter). N = 100, r = 5.
  const Index n = 100, radius = 5, seg = 7, globals = (n + seg - 1) / seg;
  const Inputs in = inputs(n);
  const Result r = run("etc", in, {{"radius", std::to_string(radius)}, {"segment", std::to_string(seg)}}, false);
  expectRows(*r.explanation.pattern, n, [&](Index i) {
    Row w;
    for (Index j = 0; j < n; ++j)
      if (std::abs(i - j) <= radius) w.push_back({j, 0});
    return w;
  }, "l2l");
  expectRows(stepPattern(r, "Coverage"), n, [&](Index i) {
    Row w;
    for (Index j = 0; j < n; ++j) w.push_back({j, std::abs(i - j) <= radius ? 0 : 1});
    return w;
  }, "coverage");
  double entries = 0;
  for (Index i = 0; i < n; ++i) entries += double(std::min(n - 1, i + radius) - std::max<Index>(0, i - radius) + 1 + globals);
  EXPECT_DOUBLE_EQ(r.cost.scored_pairs, entries);
  ASSERT_FALSE(r.explanation.special.empty());
  const auto& spans = r.explanation.special.back().spans;
  ASSERT_EQ(Index(spans.size()), globals);
  for (Index g = 0; g < globals; ++g) {
    EXPECT_EQ(spans[size_t(g)].begin, g * seg);
    EXPECT_EQ(spans[size_t(g)].end, std::min(n, (g + 1) * seg));
  }
}

// --- jukebox ---------------------------------------------------------------------------------------------

TEST(TruthJukebox, RowColumnAndPreviousRowMasksFollowThePaper) {
  // Rows of L (N = 103: the last row shorter; L = 7, and the default ⌈√103⌉ = 11). Causal (the paper):
  // row ⌊j/L⌋ = ⌊i/L⌋, j ≤ i; column j ≡ i (mod L), j ≤ i; previous row ⌊j/L⌋ = ⌊i/L⌋ − 1 (all of it).
  // Bidirectional form: the whole row, the whole column, the previous row.
  const Index n = 103;
  const Inputs in = inputs(n);
  for (Index length : {0, 7})
    for (const char* variant : {"row", "column", "previous-row"})
      for (bool causal : {true, false}) {
        const Index l = length == 0 ? 11 : length;
        const std::string v = variant;
        const Result r = run("jukebox", in, {{"variant", v}, {"row_length", std::to_string(length)}}, causal);
        expectRows(*r.explanation.pattern, n, [&](Index i) {
          Row w;
          for (Index j = 0; j < n; ++j) {
            if (v == "previous-row") {
              if (j / l == i / l - 1) w.push_back({j, 0});
              continue;
            }
            if (causal && j > i) continue;
            if (v == "row" ? j / l == i / l : j % l == i % l) w.push_back({j, 0});
          }
          return w;
        }, v + " L=" + std::to_string(l) + (causal ? " causal" : ""));
        // The first row has no previous row: output 0, as the official code's zero-padded block gives.
        if (v == "previous-row") {
          EXPECT_EQ(r.output.topRows(l).cwiseAbs().maxCoeff(), 0.0f);
        }
      }
}

// --- transformer-on-a-diet -------------------------------------------------------------------------------

TEST(TruthTransformerOnADiet, AuthorsAreThePapers) {
  // arXiv 2002.06170 and the authors' README (cgraywang/transformer-on-diet): Chenguang Wang, Zihao Ye,
  // Aston Zhang, Zheng Zhang, Alexander J. Smola.
  EXPECT_EQ(requireMechanism("transformer-on-a-diet")->info().paper,
            "Wang, Ye, Zhang, Zhang, Smola. Transformer on a Diet");
}

TEST(TruthTransformerOnADiet, LayerMasksFollowTheAuthorsCode) {
  // cgraywang/transformer-on-diet transformer_model.py, layer ℓ: dilated {i − t·b^ℓ : 0 ≤ t < k};
  // dilated-memory the union over layers 0..ℓ; cascade a causal window of w₀·m^ℓ. N = 75, layer 2,
  // k = 3, b = 3, w₀ = 3, m = 2 (window 12).
  const Index n = 75;
  const Inputs in = inputs(n);
  for (const char* variant : {"dilated", "dilated-memory", "cascade"})
    for (bool causal : {true, false}) {
      const std::string v = variant;
      const Result r = run("transformer-on-a-diet", in,
                           {{"variant", v}, {"layer", "2"}, {"layers", "3"}, {"kernel", "3"}, {"base", "3"},
                            {"w0", "3"}, {"growth", "2"}},
                           causal);
      expectRows(*r.explanation.pattern, n, [&](Index i) {
        std::vector<bool> seen(static_cast<size_t>(n), false);
        auto add = [&](Index j) {
          if (j >= 0 && j < n) seen[size_t(j)] = true;
        };
        if (v == "cascade") {
          for (Index t = 0; t < 12; ++t) add(i - t), add(causal ? i : i + t);
        } else {
          for (Index layer = v == "dilated" ? 2 : 0; layer <= 2; ++layer) {
            const Index d = Index(std::pow(3, layer));
            for (Index t = 0; t < 3; ++t) add(i - t * d), add(causal ? i : i + t * d);
          }
        }
        Row w;
        for (Index j = 0; j < n; ++j)
          if (seen[size_t(j)]) w.push_back({j, 0});
        return w;
      }, v + (causal ? " causal" : ""));
    }
}

}  // namespace
}  // namespace attn
