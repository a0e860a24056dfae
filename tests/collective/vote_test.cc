// signsgd_mv and dense through the public API on loopback worlds of 1..16 ranks.
#include "world.h"

namespace {

using namespace svtest;

std::vector<std::vector<float>> gradients(int W, size_t n, std::mt19937_64& rng) {
  std::vector<std::vector<float>> g(W);
  for (auto& v : g) v = (rng() & 1) ? ties(n, rng) : normal(n, rng);
  return g;
}

float expectedVote(const std::vector<std::vector<float>>& g, size_t i, svVote_t vote) {
  int pos = 0, neg = 0;
  for (const auto& v : g) {
    if (v[i] < 0) ++neg;
    else if (v[i] > 0 || vote == SV_VOTE_BINARY) ++pos;
  }
  if (vote == SV_VOTE_BINARY) return neg > pos ? -1.0f : 1.0f;
  return static_cast<float>((pos > neg) - (neg > pos));
}

TEST(SignVote, MatchesElementwiseMajorityForEveryWorldSize) {
  std::mt19937_64 rng(testSeed());
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (svVote_t vote : {SV_VOTE_TERNARY, SV_VOTE_BINARY}) {
    for (int W = 1; W <= 16; ++W) {
      for (size_t n : {size_t{0}, size_t{1}, size_t{4}, size_t{100}, size_t{1000}, size_t{4097}}) {
        svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, n);
        cfg.vote = vote;
        World w(W, cfg);
        const auto g = gradients(W, n, rng);
        ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(nullptr);
        w.expectRanksAgree();
        for (size_t i = 0; i < n; ++i)
          ASSERT_TRUE(sameBits(w.out[0][i], expectedVote(g, i, vote)))
              << "W " << W << " n " << n << " i " << i << " vote " << vote;
        EXPECT_EQ(w.seq(0), 1u);
      }
    }
  }
}

TEST(SignVote, EvenWorldTiesFollowTheVoteMode) {
  for (svVote_t vote : {SV_VOTE_TERNARY, SV_VOTE_BINARY}) {
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, 3);
    cfg.vote = vote;
    World w(4, cfg);
    // Element 0: 2 vs 2. Element 1: all zeros. Element 2: +0.0 and -0.0 only.
    const std::vector<std::vector<float>> g = {
        {1.0f, 0.0f, -0.0f}, {-1.0f, 0.0f, 0.0f}, {2.0f, 0.0f, -0.0f}, {-3.0f, 0.0f, 0.0f}};
    ASSERT_EQ(w.exchange(g), svSuccess);
    w.expectRanksAgree();
    const float t = vote == SV_VOTE_BINARY ? 1.0f : 0.0f;
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(sameBits(w.out[0][i], t)) << "element " << i;
  }
}

TEST(Dense, MeanInRankOrder) {
  std::mt19937_64 rng(testSeed() + 1);
  for (int W : {1, 2, 3, 5, 8, 15}) {
    for (size_t n : {size_t{0}, size_t{4}, size_t{100}, size_t{1000}}) {
      World w(W, bucketConfig(SV_SCHEME_DENSE, n));
      auto g = gradients(W, n, rng);
      for (auto& v : g)
        for (float& x : v) x *= 1e3f;  // make rounding visible
      ASSERT_EQ(w.exchange(g), svSuccess);
      w.expectRanksAgree();
      for (size_t i = 0; i < n; ++i) {
        float s = g[0][i];
        for (int r = 1; r < W; ++r) s += g[r][i];
        ASSERT_TRUE(sameBits(w.out[0][i], s / static_cast<float>(W))) << "W " << W << " i " << i;
      }
    }
  }
}

TEST(Determinism, SameInputsSameBitsOnFreshWorlds) {
  std::mt19937_64 rng(testSeed() + 2);
  for (svScheme_t s : {SV_SCHEME_DENSE, SV_SCHEME_SIGNSGD_MV, SV_SCHEME_S3GD_MV}) {
    svBucketConfig_t cfg = bucketConfig(s, 5000);
    cfg.density = 0.05;
    const auto g1 = gradients(6, 5000, rng), g2 = gradients(6, 5000, rng);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      World w(6, cfg);
      ASSERT_EQ(w.exchange(g1), svSuccess);
      ASSERT_EQ(w.exchange(g2), svSuccess);  // s3gd: depends on the residual of step 1
      if (run == 0) first = w.out[3];
      else EXPECT_EQ(std::memcmp(first.data(), w.out[3].data(), first.size() * 4), 0);
    }
  }
}

}  // namespace
