// s3gd_mv through the public API: exact top-K + ternary vote against a brute-force model, the
// residual invariant, and the sparse, counts and signs formats giving identical bits.
#include "world.h"

namespace {

using namespace svtest;

// Brute-force step for one rank: returns the selection, updates the residual.
struct Model {
  std::vector<std::vector<float>> res;
  float rho;
  size_t k;
  std::vector<float> step(const std::vector<std::vector<float>>& g) {
    const size_t n = g[0].size();
    std::vector<int> votes(n, 0);
    for (size_t r = 0; r < g.size(); ++r) {
      std::vector<float> a(n);
      for (size_t i = 0; i < n; ++i) a[i] = std::fma(rho, res[r][i], g[r][i]);
      const auto S = bruteTopK(a, k);
      res[r] = a;
      for (uint32_t i : S) {
        votes[i] += signOf(a[i]);
        res[r][i] = 0.0f;
      }
    }
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) out[i] = static_cast<float>((votes[i] > 0) - (votes[i] < 0));
    return out;
  }
};

TEST(S3gd, MatchesBruteForceOverStepsWorldSizesAndFormats) {
  std::mt19937_64 rng(testSeed());
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (svFormat_t format : {SV_FORMAT_SPARSE, SV_FORMAT_COUNTS, SV_FORMAT_SIGNS}) {
    for (int W = 1; W <= 16; ++W) {
      for (size_t n : {size_t{1}, size_t{33}, size_t{100}, size_t{1000}}) {
        for (size_t k : {size_t{0}, size_t{1}, n / 10, n - 1, n}) {
          for (float rho : {1.0f, 0.5f, 0.0f}) {
            if (W > 4 && rho == 0.5f) continue;  // keep the matrix small
            svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
            cfg.k = k;
            cfg.rho = rho;
            cfg.format = format;
            World w(W, cfg);
            ASSERT_EQ(w.info().format, format);
            Model m{std::vector<std::vector<float>>(W, std::vector<float>(n, 0.0f)), rho, k};
            SCOPED_TRACE("format " + std::to_string(format) + " W " + std::to_string(W) + " n " +
                         std::to_string(n) + " k " + std::to_string(k));
            for (int step = 0; step < 3; ++step) {
              const auto g = grads(W, n, rng);
              ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(nullptr);
              const auto expect = m.step(g);
              w.expectRanksAgree();
              expectSameBits(w.out[0], expect, "output");
              for (int r = 0; r < W; ++r) expectSameBits(w.residual(r), m.res[r], "residual");
            }
          }
        }
      }
    }
  }
}

TEST(S3gd, SparseCountsAndSignsFormatsGiveIdenticalBits) {
  std::mt19937_64 rng(testSeed() + 1);
  for (int W : {2, 3, 8, 13, 64}) {
    for (size_t n : {size_t{31}, size_t{32}, size_t{65}, size_t{4099}, size_t{65537}}) {
      if (W == 64 && n > 4099) continue;
      for (double density : {0.02, 0.5}) {
        svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
        cfg.density = density;
        cfg.format = SV_FORMAT_SPARSE;
        World sparse(W, cfg);
        cfg.format = SV_FORMAT_COUNTS;
        World counts(W, cfg);
        cfg.format = SV_FORMAT_SIGNS;
        World signs(W, cfg);
        SCOPED_TRACE("W " + std::to_string(W) + " n " + std::to_string(n) + " density " +
                     std::to_string(density));
        for (int step = 0; step < 4; ++step) {
          auto g = grads(W, n, rng);
          if (step == 3)  // ties, zeros and infinities among the kept magnitudes
            for (int r = 0; r < W; ++r)
              for (size_t i = 0; i < n; i += 3)
                g[r][i] = i % 2 ? -0.0f : (i % 5 ? 2.0f : -std::numeric_limits<float>::infinity());
          ASSERT_EQ(sparse.exchange(g), svSuccess);
          ASSERT_EQ(counts.exchange(g), svSuccess);
          ASSERT_EQ(signs.exchange(g), svSuccess);
          for (int r = 0; r < W; ++r) {
            expectSameBits(sparse.out[r], counts.out[r], "output, counts");
            expectSameBits(sparse.out[r], signs.out[r], "output, signs");
            expectSameBits(sparse.residual(r), counts.residual(r), "residual, counts");
            expectSameBits(sparse.residual(r), signs.residual(r), "residual, signs");
          }
        }
      }
    }
  }
}

TEST(S3gd, ResidualInvariantSentPlusResidualIsAccumulated) {
  // For every coordinate, either it was sent (selected: the residual is +0.0 and the coordinate
  // is in the exact top-K of the accumulated value) or the residual keeps the accumulated value
  // bit for bit.
  std::mt19937_64 rng(testSeed() + 2);
  const size_t n = 20011, k = 200;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.k = k;
  World w(3, cfg);
  for (int step = 0; step < 5; ++step) {
    const auto g = grads(3, n, rng);
    std::vector<std::vector<float>> acc(3, std::vector<float>(n));
    for (int r = 0; r < 3; ++r) {
      const auto before = w.residual(r);
      for (size_t i = 0; i < n; ++i) acc[r][i] = std::fma(1.0f, before[i], g[r][i]);
    }
    ASSERT_EQ(w.exchange(g), svSuccess);
    for (int r = 0; r < 3; ++r) {
      const auto after = w.residual(r);
      const auto S = bruteTopK(acc[r], k);
      std::vector<bool> sent(n, false);
      for (uint32_t i : S) sent[i] = true;
      for (size_t i = 0; i < n; ++i) {
        if (sent[i]) ASSERT_TRUE(sameBits(after[i], 0.0f)) << i;
        else ASSERT_TRUE(sameBits(after[i], acc[r][i])) << i;
      }
    }
  }
}

TEST(S3gd, CoordinatesNobodySelectedStayZero) {
  // Disjoint supports: rank r's largest values sit in its own block; nobody else votes there.
  const int W = 4;
  const size_t n = 400, k = 10;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.k = k;
  World w(W, cfg);
  std::vector<std::vector<float>> g(W, std::vector<float>(n, 0.001f));
  for (int r = 0; r < W; ++r)
    for (size_t j = 0; j < k; ++j) g[r][r * 100 + j] = (j % 2) ? 5.0f : -5.0f;
  ASSERT_EQ(w.exchange(g), svSuccess);
  w.expectRanksAgree();
  for (size_t i = 0; i < n; ++i) {
    const size_t j = i % 100;
    const float expect = j < k ? ((j % 2) ? 1.0f : -1.0f) : 0.0f;
    ASSERT_TRUE(sameBits(w.out[0][i], expect)) << i;
  }
}

TEST(S3gd, SelectedZerosCastNoVote) {
  // K larger than the non-zeros: the selected zeros (and -0.0) must not vote, and the residual
  // of a selected -0.0 becomes +0.0.
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 6);
  cfg.k = 4;
  for (svFormat_t f : {SV_FORMAT_SPARSE, SV_FORMAT_COUNTS, SV_FORMAT_SIGNS}) {
    cfg.format = f;
    World w(1, cfg);
    const std::vector<float> negZeros(6, -0.0f);
    ASSERT_EQ(svBucketSetResidual(w.buckets[0], negZeros.data()), svSuccess);
    // acc = fma(1, -0.0, g) = {-0, 3, +0, -0, +0, -0}
    ASSERT_EQ(w.exchange({{-0.0f, 3.0f, 0.0f, -0.0f, 0.0f, -0.0f}}), svSuccess);
    const std::vector<float> expect = {0.0f, 1.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    expectSameBits(w.out[0], expect, "output");
    // Selected: 1 (the only non-zero) then the lowest-index zeros 0, 2, 3.
    expectSameBits(w.residual(0), {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, -0.0f}, "residual");
  }
}

TEST(S3gd, InfinityVotesWithItsSign) {
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 5);
  cfg.k = 1;
  World w(3, cfg);
  const float inf = std::numeric_limits<float>::infinity();
  ASSERT_EQ(w.exchange({{0, 0, -inf, 1, 0}, {0, 0, -inf, 2, 0}, {inf, 0, 0, 0, 0}}), svSuccess);
  expectSameBits(w.out[0], {1.0f, 0.0f, -1.0f, 0.0f, 0.0f}, "output");
}

TEST(S3gd, DensityResolvesToCeil) {
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  cfg.density = 0.0015;
  World w(2, cfg);
  EXPECT_EQ(w.info().k, 2u);
}

TEST(S3gd, PlannerPicksFewerModeledBytes) {
  // Sparse when W*K is small relative to N, signs when supports would cover the bucket.
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1 << 20);
  cfg.density = 0.001;
  World few(8, cfg);
  EXPECT_EQ(few.info().format, SV_FORMAT_SPARSE);
  cfg.density = 0.5;
  World many(8, cfg);
  EXPECT_EQ(many.info().format, SV_FORMAT_SIGNS);
  // The chosen format never models more bytes than the others.
  for (double d : {0.001, 0.01, 0.02, 0.1, 0.5}) {
    cfg.density = d;
    cfg.format = SV_FORMAT_SPARSE;
    World s(8, cfg);
    cfg.format = SV_FORMAT_COUNTS;
    World c(8, cfg);
    cfg.format = SV_FORMAT_SIGNS;
    World p(8, cfg);
    cfg.format = SV_FORMAT_AUTO;
    World a(8, cfg);
    EXPECT_EQ(a.info().wireBytes,
              std::min({s.info().wireBytes, c.info().wireBytes, p.info().wireBytes}))
        << d;
    // Sparse: W-1 records. Counts: W-1 headers + int8 chunks + 2-bit result chunks. Signs: W-1
    // headers + 2-bit chunks each way.
    const uint64_t chunk = ((1u << 20) / 64 + 7) / 8 * 64;
    EXPECT_EQ(s.info().wireBytes, 7 * s.info().recordBytes);
    EXPECT_EQ(c.info().wireBytes, 7 * (64 + chunk + chunk / 4));
    EXPECT_EQ(p.info().wireBytes, 7 * (64 + chunk / 2));
    EXPECT_EQ(s.info().denseWireBytes, 2ull * 7 * (1u << 17) * 4);
  }
}

TEST(S3gd, CountZeroIsAConsistentNoOp) {
  World w(3, bucketConfig(SV_SCHEME_S3GD_MV, 0));
  ASSERT_EQ(w.exchange({{}, {}, {}}), svSuccess);
  EXPECT_EQ(w.seq(2), 1u);
}

}  // namespace
