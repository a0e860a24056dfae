// Adaptive per-step K (SV_ADAPTIVE_K_NORM_RATIO, the documented stand-in rule): every rank picks
// the same K_t, an exchange with K_t gives the bits of a fixed-K bucket with K = K_t from the
// same state, the budget ledger holds, K_t follows the gradient norm, bad configs are refused.
#include <cmath>
#include <limits>
#include <set>

#include "world.h"

namespace {

using namespace svtest;

svBucketConfig_t adaptiveConfig(svScheme_t scheme, size_t n, size_t k) {
  svBucketConfig_t c = bucketConfig(scheme, n);
  c.k = k;
  c.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
  c.kMin = 2;
  if (scheme == SV_SCHEME_DGS) {
    c.momentum = 0.9f;
    c.downK = n / 50;
  }
  return c;
}

// s3gd_mv over 2000 elements, Kbar = 50, with a budget of Kbar per exchange over `window`.
svBucketConfig_t budgetConfig(size_t kMin, unsigned window) {
  svBucketConfig_t c = adaptiveConfig(SV_SCHEME_S3GD_MV, 2000, 50);
  c.kMin = kMin;
  c.kWindow = window;
  c.kBudget = window * c.k;
  return c;
}

TEST(AdaptiveK, EachExchangeEqualsAFixedKExchangeFromTheSameState) {
  std::mt19937_64 rng(testSeed() + 60);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (svScheme_t scheme : {SV_SCHEME_S3GD_MV, SV_SCHEME_TOPK_EF, SV_SCHEME_DGS}) {
    const int W = 4;
    const size_t n = 3001, kbar = 60;
    World w(W, adaptiveConfig(scheme, n, kbar));
    const float scales[] = {1.0f, 1.0f, 3.0f, 0.3f, 1.0f, 10.0f};
    std::set<size_t> seen;
    for (float scale : scales) {
      const auto g = scaledGrads(W, n, scale, rng);
      std::vector<std::vector<float>> before(W);
      for (int r = 0; r < W; ++r) before[r] = w.residual(r);
      ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
      const size_t kt = lastK(w.buckets[0]);
      seen.insert(kt);
      for (int r = 1; r < W; ++r) ASSERT_EQ(lastK(w.buckets[r]), kt) << "rank " << r;
      svBucketConfig_t fixed = adaptiveConfig(scheme, n, kt);
      fixed.adaptiveK = SV_ADAPTIVE_K_NONE;
      fixed.kMin = 0;
      fixed.format = w.info().format;
      World f(W, fixed);
      for (int r = 0; r < W; ++r)
        ASSERT_EQ(svBucketSetResidual(f.buckets[r], before[r].data()), svSuccess);
      ASSERT_EQ(f.exchange(g), svSuccess);
      for (int r = 0; r < W; ++r) {
        ASSERT_TRUE(sameBits(w.out[r], f.out[r])) << "output, scale " << scale;
        ASSERT_TRUE(sameBits(w.residual(r), f.residual(r))) << "state, scale " << scale;
      }
    }
    EXPECT_GE(seen.size(), 3u);  // K really moved
  }
}

TEST(AdaptiveK, FollowsTheGradientNorm) {
  std::mt19937_64 rng(testSeed() + 61);
  const int W = 3;
  const size_t n = 4000, kbar = 100;
  World w(W, adaptiveConfig(SV_SCHEME_S3GD_MV, n, kbar));
  ASSERT_EQ(w.exchange(scaledGrads(W, n, 1.0f, rng)), svSuccess);
  EXPECT_EQ(lastK(w.buckets[0]), kbar);  // the first exchange has nothing to compare with
  for (int s = 0; s < 5; ++s) ASSERT_EQ(w.exchange(scaledGrads(W, n, 1.0f, rng)), svSuccess);
  const size_t steady = lastK(w.buckets[0]);
  EXPECT_NEAR(static_cast<double>(steady), static_cast<double>(kbar), 0.2 * kbar);
  ASSERT_EQ(w.exchange(scaledGrads(W, n, 2.0f, rng)), svSuccess);  // G about 4 times E
  EXPECT_GT(lastK(w.buckets[0]), 3 * kbar);
  for (int s = 0; s < 30; ++s) ASSERT_EQ(w.exchange(scaledGrads(W, n, 1.0f, rng)), svSuccess);
  ASSERT_EQ(w.exchange(scaledGrads(W, n, 0.5f, rng)), svSuccess);  // G about E / 4
  EXPECT_LT(lastK(w.buckets[0]), kbar / 2);
  EXPECT_GE(lastK(w.buckets[0]), 2u);  // kMin
}

TEST(AdaptiveK, TheBudgetLedgerNeverOverspends) {
  std::mt19937_64 rng(testSeed() + 62);
  const int W = 2;
  const svBucketConfig_t cfg = budgetConfig(5, 7);
  const size_t n = cfg.count;
  World w(W, cfg);
  std::uniform_real_distribution<float> scale(0.2f, 4.0f);
  size_t spent = 0, capped = 0;
  for (int step = 0; step < 70; ++step) {
    ASSERT_EQ(w.exchange(scaledGrads(W, n, scale(rng), rng)), svSuccess);
    const size_t kt = lastK(w.buckets[1]);
    ASSERT_GE(kt, cfg.kMin);
    spent += kt;
    ASSERT_LE(spent, cfg.kBudget) << "step " << step;
    if (spent + (cfg.kWindow - 1 - step % cfg.kWindow) * cfg.kMin == cfg.kBudget) ++capped;
    if (step % cfg.kWindow == cfg.kWindow - 1) spent = 0;
  }
  EXPECT_GT(capped, 0u);  // the cap was reached, so the ledger was exercised
}

// An exchange whose output is NaN under SV_NONFINITE_PROPAGATE still put its K_t on the
// wire, so the ledger counts it (the mean E does not move: G is NaN); a refused one (error
// policy) moves nothing.
TEST(AdaptiveK, APropagatedNaNStillSpendsTheBudget) {
  std::mt19937_64 rng(testSeed() + 63);
  const int W = 2;
  const svBucketConfig_t cfg = budgetConfig(1, 3);
  const size_t n = cfg.count, kbar = cfg.k;
  for (svNonFinitePolicy_t policy : {SV_NONFINITE_PROPAGATE, SV_NONFINITE_ERROR}) {
    svConfig_t hc = SV_CONFIG_INITIALIZER;
    hc.nonFinite = policy;
    World w(W, cfg, &hc);
    ASSERT_EQ(w.exchange(scaledGrads(W, n, 1.0f, rng)), svSuccess);
    EXPECT_EQ(lastK(w.buckets[0]), kbar);
    auto bad = scaledGrads(W, n, 1.0f, rng);
    bad[1][5] = std::numeric_limits<float>::quiet_NaN();
    const bool spent = policy == SV_NONFINITE_PROPAGATE;
    ASSERT_EQ(w.exchange(bad), spent ? svSuccess : svNonFiniteInput);
    if (spent) {
      EXPECT_TRUE(std::isnan(w.out[0][0]));
      EXPECT_EQ(lastK(w.buckets[0]), kbar);  // G / E is NaN: K_t = Kbar
    }
    // G about 9 E wants 9 Kbar; the window has 3 Kbar - 50 - (50 if the NaN exchange spent).
    ASSERT_EQ(w.exchange(scaledGrads(W, n, 3.0f, rng)), svSuccess);
    EXPECT_EQ(lastK(w.buckets[1]), spent ? kbar : 2 * kbar - cfg.kMin);
  }
}

TEST(AdaptiveK, BadConfigurationsAreRefused) {
  svComm_t c;
  ASSERT_EQ(svCommInitLoopback(&c, 1, nullptr), svSuccess);
  struct Bad {
    void (*mutate)(svBucketConfig_t*);
    const char* needle;
  };
  const Bad cases[] = {
      {[](svBucketConfig_t* x) { x->kMin = 0; }, "config->kMin = 0"},
      {[](svBucketConfig_t* x) { x->kMin = 101; }, "config->kMin = 101"},
      {[](svBucketConfig_t* x) { x->kBudget = 10; x->kWindow = 6; }, "config->kBudget = 10"},
      {[](svBucketConfig_t* x) { x->kWindow = 3; }, "without config->kBudget"},
      {[](svBucketConfig_t* x) { x->scheme = SV_SCHEME_SIGNSGD_MV; x->k = 0; }, "top-K schemes"},
      {[](svBucketConfig_t* x) { x->adaptiveK = static_cast<svAdaptiveK_t>(9); },
       "config->adaptiveK = 9"},
      {[](svBucketConfig_t* x) { x->adaptiveK = SV_ADAPTIVE_K_NONE; }, "without config->adaptiveK"},
  };
  for (const Bad& b : cases) {
    svBucketConfig_t cfg = adaptiveConfig(SV_SCHEME_S3GD_MV, 100, 10);
    b.mutate(&cfg);
    svBucket_t bucket = nullptr;
    EXPECT_EQ(svBucketCreate(&bucket, c, &cfg), svInvalidArgument) << b.needle;
    EXPECT_EQ(bucket, nullptr);
    EXPECT_NE(std::string(svGetLastError(c)).find(b.needle), std::string::npos)
        << svGetLastError(c);
  }
  EXPECT_EQ(svCommDestroy(c), svSuccess);
}

}  // namespace
