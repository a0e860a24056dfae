// ef_sign and Signum through the public API against brute-force models written here, over
// steps, world sizes and edge counts; the error-feedback invariant; NaN policies; config checks.
#include <limits>

#include "world.h"

namespace {

using namespace svtest;

struct EfModel {
  std::vector<std::vector<float>> e;
  std::vector<std::vector<float>> lastP, lastC;
  std::vector<float> step(const std::vector<std::vector<float>>& g) {
    const size_t W = g.size(), n = g[0].size();
    lastP.assign(W, std::vector<float>(n));
    lastC.assign(W, std::vector<float>(n));
    for (size_t r = 0; r < W; ++r) {
      for (size_t i = 0; i < n; ++i) lastP[r][i] = g[r][i] + e[r][i];
      lastC[r] = scaledSign(lastP[r].data(), n);
      for (size_t i = 0; i < n; ++i) e[r][i] = lastP[r][i] - lastC[r][i];
    }
    std::vector<float> out(n);
    for (size_t i = 0; i < n; ++i) {
      float s = lastC[0][i];
      for (size_t r = 1; r < W; ++r) s += lastC[r][i];
      out[i] = s / static_cast<float>(W);
    }
    return out;
  }
};

TEST(EfSign, MatchesTheModelOverStepsAndWorldSizes) {
  std::mt19937_64 rng(testSeed() + 50);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (int W : {1, 2, 3, 4, 7, 8, 15}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{64}, size_t{1000}, size_t{4097}}) {
      SCOPED_TRACE("W = " + std::to_string(W) + ", n = " + std::to_string(n));
      World w(W, bucketConfig(SV_SCHEME_EF_SIGN, n));
      ASSERT_EQ(w.info().format, SV_FORMAT_SCALED_SIGNS);
      EfModel m{std::vector<std::vector<float>>(W, std::vector<float>(n, 0.0f)), {}, {}};
      for (int step = 0; step < 4; ++step) {
        const auto g = grads(W, n, rng);
        const std::vector<float> expect = m.step(g);
        ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
        w.expectRanksAgree();
        for (int r = 0; r < W; ++r) {
          expectSameBits(w.out[r], expect, "output");
          expectSameBits(w.residual(r), m.e[r], "error state");
        }
      }
    }
  }
}

// c + e = p where p - c is exact (sign 0, or Sterbenz: c/2 <= |p| <= 2|c|), and within half an
// ulp of p - c elsewhere; checked in double arithmetic.
TEST(EfSign, SentPlusNewErrorIsTheAccumulatedInput) {
  std::mt19937_64 rng(testSeed() + 51);
  const int W = 3;
  const size_t n = 5000;
  World w(W, bucketConfig(SV_SCHEME_EF_SIGN, n));
  EfModel m{std::vector<std::vector<float>>(W, std::vector<float>(n, 0.0f)), {}, {}};
  size_t exact = 0, checked = 0;
  for (int step = 0; step < 5; ++step) {
    const auto g = grads(W, n, rng);
    m.step(g);
    ASSERT_EQ(w.exchange(g), svSuccess);
    for (int r = 0; r < W; ++r) {
      const std::vector<float> e = w.residual(r);
      for (size_t i = 0; i < n; ++i) {
        const double p = m.lastP[r][i], c = m.lastC[r][i];
        const double err = std::fabs((c + static_cast<double>(e[i])) - p);
        const bool sterbenz = c == 0.0 || (std::fabs(c) / 2 <= std::fabs(p) &&
                                           std::fabs(p) <= 2 * std::fabs(c));
        if (sterbenz) {
          ASSERT_EQ(err, 0.0) << "rank " << r << ", i " << i;
          ++exact;
        } else {
          const float d = e[i];
          const double halfUlp =
              0.5 * (std::nextafter(std::fabs(d), std::numeric_limits<float>::infinity()) -
                     std::fabs(d));
          ASSERT_LE(err, halfUlp) << "rank " << r << ", i " << i;
        }
        ++checked;
      }
    }
  }
  EXPECT_GT(exact, checked / 4);  // the exact case is common, so the test means something
}

TEST(EfSign, NaNPolicies) {
  const int W = 3;
  const size_t n = 300;
  std::mt19937_64 rng(testSeed() + 52);
  auto g = grads(W, n, rng);
  g[1][17] = std::numeric_limits<float>::quiet_NaN();
  {
    World w(W, bucketConfig(SV_SCHEME_EF_SIGN, n));
    EXPECT_EQ(w.exchange(g), svNonFiniteInput);
    for (int r = 0; r < W; ++r) {
      expectSameBits(w.residual(r), std::vector<float>(n, 0.0f), "state after NaN");
      EXPECT_EQ(w.seq(r), 0u);
    }
  }
  {
    svConfig_t c = SV_CONFIG_INITIALIZER;
    c.nonFinite = SV_NONFINITE_IGNORE;
    World w(W, bucketConfig(SV_SCHEME_EF_SIGN, n), &c);
    auto clean = g;
    clean[1][17] = 0.0f;
    EfModel m{std::vector<std::vector<float>>(W, std::vector<float>(n, 0.0f)), {}, {}};
    const std::vector<float> expect = m.step(clean);
    ASSERT_EQ(w.exchange(g), svSuccess);
    for (int r = 0; r < W; ++r) expectSameBits(w.out[r], expect, "output with NaN ignored");
  }
}

// Signum: m = fma(beta, m, (1 - beta) * g), then the sign vote on m.
TEST(Signum, MatchesTheModelOverStepsVotesAndWorldSizes) {
  std::mt19937_64 rng(testSeed() + 53);
  for (svVote_t vote : {SV_VOTE_TERNARY, SV_VOTE_BINARY})
    for (int W : {1, 2, 3, 5, 8, 16})
      for (size_t n : {size_t{1}, size_t{63}, size_t{65}, size_t{1000}}) {
        SCOPED_TRACE("W = " + std::to_string(W) + ", n = " + std::to_string(n) + ", vote " +
                     std::to_string(vote));
        svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, n);
        cfg.vote = vote;
        cfg.momentum = 0.9f;
        World w(W, cfg);
        std::vector<std::vector<float>> m(W, std::vector<float>(n, 0.0f));
        for (int step = 0; step < 4; ++step) {
          const auto g = grads(W, n, rng);
          std::vector<float> expect(n);
          for (size_t i = 0; i < n; ++i) {
            int pos = 0, neg = 0;
            for (int r = 0; r < W; ++r) {
              m[r][i] = std::fma(0.9f, m[r][i], (1.0f - 0.9f) * g[r][i]);
              if (m[r][i] < 0.0f) ++neg;
              else if (m[r][i] > 0.0f || vote == SV_VOTE_BINARY) ++pos;
            }
            expect[i] = vote == SV_VOTE_BINARY ? (neg > pos ? -1.0f : 1.0f)
                                               : static_cast<float>((pos > neg) - (neg > pos));
          }
          ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
          for (int r = 0; r < W; ++r) {
            expectSameBits(w.out[r], expect, "output");
            expectSameBits(w.residual(r), m[r], "momentum");
          }
        }
      }
}

TEST(Signum, ZeroMomentumIsPlainSignSgdWithNoState) {
  std::mt19937_64 rng(testSeed() + 54);
  const int W = 5;
  const size_t n = 777;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, n);
  World plain(W, cfg);
  std::vector<float> probe(n);
  EXPECT_EQ(svBucketGetResidual(plain.buckets[0], probe.data()), svInvalidUsage);
  EXPECT_NE(std::string(svGetLastError(plain.comms[0])).find("without momentum"),
            std::string::npos);
  cfg.momentum = 0.5f;
  World signum(W, cfg);
  const auto g = grads(W, n, rng);
  ASSERT_EQ(plain.exchange(g), svSuccess);
  ASSERT_EQ(signum.exchange(g), svSuccess);  // first step from m = 0: sign(0.5 g) = sign(g)
  for (int r = 0; r < W; ++r) expectSameBits(signum.out[r], plain.out[r], "first Signum step");
}

TEST(Signum, BadMomentumIsRefusedWithNoEffect) {
  svComm_t c;
  ASSERT_EQ(svCommInitLoopback(&c, 1, nullptr), svSuccess);
  for (float beta : {1.0f, -0.1f, 2.0f, std::numeric_limits<float>::quiet_NaN()}) {
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, 10);
    cfg.momentum = beta;
    svBucket_t b = nullptr;
    EXPECT_EQ(svBucketCreate(&b, c, &cfg), svInvalidArgument);
    EXPECT_EQ(b, nullptr);
    EXPECT_NE(std::string(svGetLastError(c)).find("config->momentum"), std::string::npos);
  }
  for (svScheme_t s : {SV_SCHEME_S3GD_MV, SV_SCHEME_EF_SIGN, SV_SCHEME_DENSE}) {  // no momentum
    svBucketConfig_t cfg = bucketConfig(s, 10);
    cfg.k = s == SV_SCHEME_S3GD_MV ? 1 : 0;
    cfg.momentum = 0.5f;
    svBucket_t b = nullptr;
    EXPECT_EQ(svBucketCreate(&b, c, &cfg), svInvalidArgument);
    EXPECT_NE(std::string(svGetLastError(c)).find("momentum is for signsgd_mv, topk_ef and dgs"),
              std::string::npos);
  }
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_EF_SIGN, 10);
  cfg.format = SV_FORMAT_SIGNS;
  svBucket_t b = nullptr;
  EXPECT_EQ(svBucketCreate(&b, c, &cfg), svInvalidArgument);
  EXPECT_EQ(svCommDestroy(c), svSuccess);
}

// topk_ef (DGC-style): u = fma(m, u, g); v = v + u; S = top-K of |v| (full stable sort here);
// the mean of the sent values; v[S] = u[S] = 0.
struct TopkEfModel {
  float momentum;
  size_t k;
  std::vector<std::vector<float>> u, v;
  std::vector<std::vector<float>> lastV;  // v before masking
  std::vector<float> step(const std::vector<std::vector<float>>& g) {
    const size_t W = g.size(), n = g[0].size();
    std::vector<float> sum(n, 0.0f);
    std::vector<std::vector<float>> sent(W, std::vector<float>(n, 0.0f));
    std::vector<std::vector<bool>> has(W, std::vector<bool>(n, false));
    lastV.assign(W, {});
    for (size_t r = 0; r < W; ++r) {
      for (size_t i = 0; i < n; ++i) {
        if (momentum != 0.0f) u[r][i] = std::fma(momentum, u[r][i], g[r][i]);
        v[r][i] = v[r][i] + (momentum != 0.0f ? u[r][i] : g[r][i]);
      }
      lastV[r] = v[r];
      for (uint32_t i : bruteTopK(v[r], k)) {
        if (v[r][i] != 0.0f) {
          sent[r][i] = v[r][i];
          has[r][i] = true;
        }
        v[r][i] = 0.0f;
        if (momentum != 0.0f) u[r][i] = 0.0f;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      for (size_t r = 0; r < W; ++r)
        if (has[r][i]) sum[i] += sent[r][i];
      sum[i] = sum[i] / static_cast<float>(W);
    }
    return sum;
  }
};

TEST(TopkEf, MatchesTheModelOverStepsWorldSizesAndMomentum) {
  std::mt19937_64 rng(testSeed() + 55);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (float momentum : {0.0f, 0.9f})
    for (int W : {1, 2, 3, 8})
      for (size_t n : {size_t{1}, size_t{33}, size_t{1000}})
        for (size_t k : {size_t{0}, size_t{1}, n / 10, n}) {
          SCOPED_TRACE("W = " + std::to_string(W) + ", n = " + std::to_string(n) + ", k = " +
                       std::to_string(k) + ", momentum " + std::to_string(momentum));
          svBucketConfig_t cfg = bucketConfig(SV_SCHEME_TOPK_EF, n);
          cfg.k = k;
          cfg.momentum = momentum;
          World w(W, cfg);
          ASSERT_EQ(w.info().format, SV_FORMAT_SPARSE_VALUES);
          ASSERT_EQ(w.info().stateFloats, momentum != 0.0f ? 2 * n : n);
          TopkEfModel m{momentum, k, std::vector<std::vector<float>>(W, std::vector<float>(n)),
                        std::vector<std::vector<float>>(W, std::vector<float>(n)), {}};
          for (int step = 0; step < 3; ++step) {
            const auto g = grads(W, n, rng);
            const std::vector<float> expect = m.step(g);
            ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
            w.expectRanksAgree();
            for (int r = 0; r < W; ++r) {
              expectSameBits(w.out[r], expect, "output");
              std::vector<float> modelState = m.v[r];
              if (momentum != 0.0f)
                modelState.insert(modelState.end(), m.u[r].begin(), m.u[r].end());
              expectSameBits(w.residual(r), modelState, "state");
            }
          }
        }
}

// One rank: the output is what was sent (x / 1 = x), so sent + new v = the accumulated v.
TEST(TopkEf, SentPlusNewResidualIsTheAccumulatedValue) {
  std::mt19937_64 rng(testSeed() + 56);
  const size_t n = 2000, k = 150;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_TOPK_EF, n);
  cfg.k = k;
  World w(1, cfg);
  std::vector<float> v(n, 0.0f);
  for (int step = 0; step < 5; ++step) {
    const auto g = grads(1, n, rng);
    for (size_t i = 0; i < n; ++i) v[i] = v[i] + g[0][i];
    ASSERT_EQ(w.exchange(g), svSuccess);
    const std::vector<float> res = w.residual(0);
    size_t sent = 0;
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(w.out[0][i] + res[i], v[i]) << "step " << step << ", i " << i;
      ASSERT_TRUE(w.out[0][i] == 0.0f || res[i] == 0.0f);
      sent += w.out[0][i] != 0.0f;
    }
    EXPECT_LE(sent, k);
    v = res;
  }
}

}  // namespace
