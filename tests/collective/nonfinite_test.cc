// NaN under each non-finite policy: error on every rank with no effect, ignore as +0.0,
// propagate as an all-NaN output with the state untouched.
#include <limits>

#include "world.h"

namespace {

using namespace svtest;

const float kNaN = std::numeric_limits<float>::quiet_NaN();

svConfig_t policy(svNonFinitePolicy_t p) {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  c.nonFinite = p;
  return c;
}

class NonFinite : public ::testing::TestWithParam<svScheme_t> {};

svBucketConfig_t configFor(svScheme_t scheme, size_t n) {
  svBucketConfig_t cfg = bucketConfig(scheme, n);
  if (scheme == SV_SCHEME_DGS) cfg.momentum = 0.9f;
  return cfg;
}

TEST_P(NonFinite, ErrorPolicyFailsEveryRankWithNoEffect) {
  std::mt19937_64 rng(testSeed());
  const svScheme_t scheme = GetParam();
  svBucketConfig_t cfg = configFor(scheme, 1000);
  if (scheme == SV_SCHEME_S3GD_MV || scheme == SV_SCHEME_TOPK_EF || scheme == SV_SCHEME_DGS)
    cfg.density = 0.01;
  World w(5, cfg);
  std::vector<std::vector<float>> g(5);
  for (auto& v : g) v = normal(1000, rng);
  ASSERT_EQ(w.exchange(g), svSuccess);  // build some residual first
  const World::Snapshot before = w.snapshot();
  g[3][123] = kNaN;
  EXPECT_EQ(w.exchange(g), svNonFiniteInput);
  for (int r = 0; r < 5; ++r) EXPECT_NE(std::string(svGetLastError(w.comms[r])).find("rank 3"), std::string::npos)
                                  << svGetLastError(w.comms[r]);
  w.expectUnchanged(before);
  // A NaN that appears only through the residual (inf - inf) is caught too.
  if (scheme == SV_SCHEME_S3GD_MV) {
    g[3][123] = 0.0f;
    std::vector<float> res(1000, 0.0f);
    res[7] = std::numeric_limits<float>::infinity();
    ASSERT_EQ(svBucketSetResidual(w.buckets[1], res.data()), svSuccess);
    g[1][7] = -std::numeric_limits<float>::infinity();
    const World::Snapshot s2 = w.snapshot();
    EXPECT_EQ(w.exchange(g), svNonFiniteInput);
    w.expectUnchanged(s2);
  }
}

TEST_P(NonFinite, IgnorePolicyTreatsNaNAsZero) {
  std::mt19937_64 rng(testSeed() + 1);
  const svScheme_t scheme = GetParam();
  svBucketConfig_t cfg = configFor(scheme, 500);
  cfg.k = 20;
  const svConfig_t ignore = policy(SV_NONFINITE_IGNORE);
  World withNaN(4, cfg, &ignore), withZero(4, cfg);
  std::vector<std::vector<float>> g(4);
  for (auto& v : g) v = normal(500, rng);
  auto z = g;
  for (int r = 0; r < 4; ++r)
    for (int i = r; i < 500; i += 37) {
      g[r][i] = (i % 2) ? kNaN : -kNaN;
      z[r][i] = 0.0f;
    }
  ASSERT_EQ(withNaN.exchange(g), svSuccess);
  ASSERT_EQ(withZero.exchange(z), svSuccess);
  for (int r = 0; r < 4; ++r) {
    EXPECT_TRUE(sameBits(withNaN.out[r], withZero.out[r]));
    if (withNaN.info().stateFloats != 0) {
      EXPECT_TRUE(sameBits(withNaN.residual(r), withZero.residual(r)));
    }
  }
}

TEST_P(NonFinite, PropagatePolicyGivesNaNOutputAndKeepsState) {
  std::mt19937_64 rng(testSeed() + 2);
  const svScheme_t scheme = GetParam();
  svBucketConfig_t cfg = configFor(scheme, 300);
  cfg.k = 30;
  const svConfig_t prop = policy(SV_NONFINITE_PROPAGATE);
  World w(3, cfg, &prop);
  const bool stateful = w.info().stateFloats != 0;
  std::vector<std::vector<float>> g(3);
  for (auto& v : g) v = normal(300, rng);
  ASSERT_EQ(w.exchange(g), svSuccess);
  const World::Snapshot before = w.snapshot();
  g[0][299] = kNaN;
  ASSERT_EQ(w.exchange(g), svSuccess);
  for (int r = 0; r < 3; ++r) {
    for (float x : w.out[r]) ASSERT_TRUE(std::isnan(x));
    if (stateful) {
      EXPECT_TRUE(sameBits(w.residual(r), before.res[r]));
    }
    EXPECT_EQ(w.seq(r), before.seq[r] + 1);  // a successful exchange
  }
}

INSTANTIATE_TEST_SUITE_P(AllSchemes, NonFinite,
                         ::testing::Values(SV_SCHEME_DENSE, SV_SCHEME_SIGNSGD_MV,
                                           SV_SCHEME_S3GD_MV, SV_SCHEME_EF_SIGN,
                                           SV_SCHEME_TOPK_EF, SV_SCHEME_DGS, SV_SCHEME_LIEC));

}  // namespace
