// dgs and liec through the public API against brute-force models written here, over steps,
// world sizes and edge counts; SAMomentum's identity, dgs at full density as momentum SGD,
// liec's identity-compressor and tau = 1 cases, its bounded server error; config checks.
#include <limits>

#include "world.h"

namespace {

using namespace svtest;

// ---- dgs ----

struct DgsModel {
  float m;
  size_t k, downK;
  std::vector<std::vector<float>> u;  // per rank
  std::vector<float> d;               // downlink residual, the same on every rank
  std::vector<float> step(const std::vector<std::vector<float>>& g) {
    const size_t W = g.size(), n = g[0].size();
    std::vector<float> sum(n, 0.0f);
    for (size_t r = 0; r < W; ++r) {
      std::vector<float> un(n);
      for (size_t i = 0; i < n; ++i) un[i] = std::fma(m, u[r][i], g[r][i]);
      std::vector<bool> sent(n, false);
      for (uint32_t i : bruteTopK(un, k)) sent[i] = true;
      for (size_t i = 0; i < n; ++i) {
        if (sent[i] && un[i] != 0.0f) sum[i] += un[i];
        u[r][i] = sent[i] ? un[i] : un[i] / m;
      }
    }
    for (float& x : sum) x = x / static_cast<float>(W);
    if (downK == 0) return sum;
    std::vector<float> a(n), out(n, 0.0f);
    for (size_t i = 0; i < n; ++i) a[i] = d[i] + sum[i];
    d = a;
    for (uint32_t i : bruteTopK(a, downK)) {
      out[i] = a[i];
      d[i] = 0.0f;
    }
    return out;
  }
};

svBucketConfig_t dgsConfig(size_t n, size_t k, float m, size_t downK = 0) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_DGS, n);
  c.k = k;
  c.momentum = m;
  c.downK = downK;
  return c;
}

TEST(Dgs, MatchesTheModelOverStepsAndWorldSizes) {
  std::mt19937_64 rng(testSeed() + 70);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (int W : {1, 2, 3, 7, 15}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{64}, size_t{1000}, size_t{4097}}) {
      for (size_t k : {size_t{0}, size_t{1}, n / 10, n}) {
        if (k > n) continue;
        const size_t downK = (W + n + k) % 2 ? n / 20 + (n != 0) : 0;
        SCOPED_TRACE("W = " + std::to_string(W) + ", n = " + std::to_string(n) + ", k = " +
                     std::to_string(k) + ", downK = " + std::to_string(downK));
        const float m = W % 2 ? 0.9f : 0.5f;
        World w(W, dgsConfig(n, k, m, downK));
        ASSERT_EQ(w.info().format, SV_FORMAT_SPARSE_VALUES);
        ASSERT_EQ(w.info().downK, downK);
        DgsModel model{m, k, downK, std::vector<std::vector<float>>(W, std::vector<float>(n)),
                       std::vector<float>(n, 0.0f)};
        for (int step = 0; step < 4; ++step) {
          const auto g = grads(W, n, rng);
          const std::vector<float> expect = model.step(g);
          ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
          w.expectRanksAgree();
          if (downK != 0) {
            const size_t nz = n - std::count(expect.begin(), expect.end(), 0.0f);
            EXPECT_LE(nz, downK);
          }
          for (int r = 0; r < W; ++r) {
            expectSameBits(w.out[r], expect, "output");
            std::vector<float> state = model.u[r];
            if (downK != 0) state.insert(state.end(), model.d.begin(), model.d.end());
            expectSameBits(w.residual(r), state, "state (u, then D)");
          }
        }
      }
    }
  }
}

// K = N sends every non-zero u: each rank runs plain momentum u = fma(m, u, g) and the output
// is the mean of the momenta, which is momentum SGD on the mean gradient.
TEST(Dgs, FullDensityIsMomentumSgd) {
  std::mt19937_64 rng(testSeed() + 71);
  const int W = 4;
  const size_t n = 777;
  World w(W, dgsConfig(n, n, 0.7f));
  std::vector<std::vector<float>> u(W, std::vector<float>(n, 0.0f));
  for (int step = 0; step < 6; ++step) {
    const auto g = grads(W, n, rng);
    ASSERT_EQ(w.exchange(g), svSuccess);
    std::vector<float> mean(n, 0.0f);
    for (int r = 0; r < W; ++r)
      for (size_t i = 0; i < n; ++i) {
        u[r][i] = std::fma(0.7f, u[r][i], g[r][i]);
        mean[i] += u[r][i];
      }
    for (float& x : mean) x = x / static_cast<float>(W);
    for (int r = 0; r < W; ++r) {
      expectSameBits(w.out[r], mean, "output");
      expectSameBits(w.residual(r), u[r], "momentum");
    }
  }
}

// SAMomentum (Yan et al., eq. 16): a coordinate held back T - 1 steps and then sent carries
// m * u_c + (its T gradients summed), u_c its momentum when last sent. K = 1 of 2: coordinate
// 0 takes the slot (large gradients) until step T, where its gradient cancels its momentum.
// m = 0.5 and dyadic values keep every float32 step exact, so the identity holds bit for bit.
TEST(Dgs, HeldBackCoordinateCarriesMomentumPlusItsGradients) {
  const float m = 0.5f;
  World w(1, dgsConfig(2, 1, m));
  float u0 = 0.0f;  // coordinate 0's momentum (it is sent, so kept, every step but T)
  float uc = 0.0f;  // coordinate 1's momentum when it was last sent
  for (int T : {5, 3, 1, 4}) {
    float sum = 0.0f;
    for (int t = 1; t <= T; ++t) {
      const float g0 = t == T ? -(m * u0) : 1048576.0f, g1 = static_cast<float>(t);
      sum += g1;
      ASSERT_EQ(w.exchange({{g0, g1}}), svSuccess);
      u0 = m * u0 + g0;
      if (t < T) {
        ASSERT_EQ(w.out[0][0], u0) << "coordinate 0 sent at step " << t;
        ASSERT_EQ(w.out[0][1], 0.0f) << "coordinate 1 held back at step " << t;
      }
    }
    ASSERT_EQ(u0, 0.0f);
    const float expect = m * uc + sum;
    ASSERT_EQ(w.out[0][1], expect) << "T = " << T;
    uc = expect;
  }
}

TEST(Dgs, BadConfigIsRefusedWithNoEffect) {
  svComm_t c;
  ASSERT_EQ(svCommInitLoopback(&c, 1, nullptr), svSuccess);
  struct Case {
    svBucketConfig_t cfg;
    const char* text;
  };
  svBucketConfig_t noMomentum = dgsConfig(100, 10, 0.0f);
  svBucketConfig_t bigDown = dgsConfig(100, 10, 0.9f, 101);
  svBucketConfig_t bothDown = dgsConfig(100, 10, 0.9f, 5);
  bothDown.downDensity = 0.1;
  svBucketConfig_t downOnS3gd = bucketConfig(SV_SCHEME_S3GD_MV, 100);
  downOnS3gd.downK = 3;
  svBucketConfig_t periodOnDgs = dgsConfig(100, 10, 0.9f);
  periodOnDgs.period = 4;
  svBucketConfig_t liecSparse = bucketConfig(SV_SCHEME_LIEC, 100);
  liecSparse.format = SV_FORMAT_SPARSE;
  const Case cases[] = {{noMomentum, "config->momentum = 0 is outside (0, 1)"},
                        {bigDown, "config->downK = 101 exceeds config->count = 100"},
                        {bothDown, "are both set"},
                        {downOnS3gd, "downlink compression is for dgs"},
                        {periodOnDgs, "config->period = 4 with scheme dgs"},
                        {liecSparse, "cannot carry scheme liec"}};
  for (const Case& k : cases) {
    svBucket_t b = reinterpret_cast<svBucket_t>(&c);  // must stay untouched
    EXPECT_EQ(svBucketCreate(&b, c, &k.cfg), svInvalidArgument);
    EXPECT_EQ(b, reinterpret_cast<svBucket_t>(&c));
    EXPECT_NE(std::string(svGetLastError(c)).find(k.text), std::string::npos)
        << svGetLastError(c);
  }
  EXPECT_EQ(svCommDestroy(c), svSuccess);
}

// ---- liec ----

struct LiecModel {
  size_t chunk;
  unsigned period;
  std::vector<std::vector<float>> e;  // per owner, chunk floats
  uint64_t done = 0;
  // Returns each rank's output.
  std::vector<std::vector<float>> step(const std::vector<std::vector<float>>& g) {
    const size_t W = g.size(), n = g[0].size();
    std::vector<std::vector<float>> out(W, std::vector<float>(n));
    const bool average = period != 0 && (done + 1) % period == 0;
    ++done;
    for (size_t d = 0; d < W; ++d) {
      const size_t lo = std::min(n, d * chunk), len = std::min(n - lo, chunk);
      if (average) {
        for (size_t x = 0; x < len; ++x) {
          float s = g[0][lo + x];
          for (size_t r = 1; r < W; ++r) s += g[r][lo + x];
          for (size_t r = 0; r < W; ++r) out[r][lo + x] = s / static_cast<float>(W) + e[d][x];
        }
        std::fill(e[d].begin(), e[d].end(), -0.0f);
        continue;
      }
      std::vector<std::vector<float>> c(W);
      for (size_t r = 0; r < W; ++r) c[r] = scaledSign(g[r].data() + lo, len);
      std::vector<float> a(len);
      for (size_t x = 0; x < len; ++x) {
        float s = c[0][x];
        for (size_t r = 1; r < W; ++r) s += c[r][x];
        a[x] = s / static_cast<float>(W) + e[d][x];
      }
      const std::vector<float> chat = scaledSign(a.data(), len);
      for (size_t x = 0; x < len; ++x) {
        e[d][x] = a[x] - chat[x];
        for (size_t r = 0; r < W; ++r) out[r][lo + x] = chat[x] + (g[r][lo + x] - c[r][x]);
      }
    }
    return out;
  }
};

svBucketConfig_t liecConfig(size_t n, unsigned period) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_LIEC, n);
  c.period = period;
  return c;
}

TEST(Liec, MatchesTheModelOverStepsAndWorldSizes) {
  std::mt19937_64 rng(testSeed() + 80);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (int W : {1, 2, 3, 5, 8, 15}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{64}, size_t{65}, size_t{1000},
                     size_t{4097}}) {
      for (unsigned period : {0u, 3u}) {
        SCOPED_TRACE("W = " + std::to_string(W) + ", n = " + std::to_string(n) +
                     ", period = " + std::to_string(period));
        World w(W, liecConfig(n, period));
        const svBucketInfo_t info = w.info();
        ASSERT_EQ(info.format, SV_FORMAT_CHUNK_SIGNS);
        ASSERT_EQ(info.chunk % 64, 0u);
        ASSERT_GE(info.chunk * W, n);
        ASSERT_EQ(info.stateFloats, info.chunk);
        LiecModel model{info.chunk, period,
                        std::vector<std::vector<float>>(W, std::vector<float>(info.chunk, -0.0f))};
        for (int step = 0; step < 7; ++step) {
          const auto g = grads(W, n, rng);
          EXPECT_EQ(w.info().averageNext, period != 0 && (step + 1) % period == 0);
          const auto expect = model.step(g);
          ASSERT_EQ(w.exchange(g), svSuccess) << svGetLastError(w.comms[0]);
          for (int r = 0; r < W; ++r) {
            expectSameBits(w.out[r], expect[r], "output");
            expectSameBits(w.residual(r), model.e[r], "owner error");
          }
        }
      }
    }
  }
}

// The outputs differ per rank, but only by each rank's own error g_i - c_i.
TEST(Liec, RanksDifferByTheirOwnErrorOnly) {
  std::mt19937_64 rng(testSeed() + 81);
  const int W = 4;
  const size_t n = 3000;
  World w(W, liecConfig(n, 0));
  const auto g = grads(W, n, rng);
  ASSERT_EQ(w.exchange(g), svSuccess);
  const size_t chunk = w.info().chunk;
  bool differ = false;
  for (int r = 1; r < W; ++r) {
    for (size_t d = 0; d * chunk < n; ++d) {
      const size_t lo = d * chunk, len = std::min(n - lo, chunk);
      const auto c0 = scaledSign(&g[0][lo], len), cr = scaledSign(&g[r][lo], len);
      for (size_t x = 0; x < len; ++x) {
        // out_r - (g_r - c_r) is c_hat on every rank, up to the rounding of the final add.
        const double hat0 = double(w.out[0][lo + x]) - (double(g[0][lo + x]) - c0[x]);
        const double hatr = double(w.out[r][lo + x]) - (double(g[r][lo + x]) - cr[x]);
        ASSERT_NEAR(hat0, hatr, 1e-5 * (1 + std::fabs(hat0)));
        differ |= w.out[0][lo + x] != w.out[r][lo + x];
      }
    }
  }
  EXPECT_TRUE(differ);
}

// The identity compressor (format fp32) is plain averaged SGD: dense, bit for bit.
TEST(Liec, IdentityCompressorIsDenseAveraging) {
  std::mt19937_64 rng(testSeed() + 82);
  for (int W : {1, 3, 8}) {
    const size_t n = 1001;
    svBucketConfig_t cfg = liecConfig(n, 5);
    cfg.format = SV_FORMAT_FP32;
    World liec(W, cfg), dense(W, bucketConfig(SV_SCHEME_DENSE, n));
    EXPECT_EQ(liec.info().stateFloats, 0u);
    for (int step = 0; step < 6; ++step) {
      const auto g = grads(W, n, rng);
      ASSERT_EQ(liec.exchange(g), svSuccess);
      ASSERT_EQ(dense.exchange(g), svSuccess);
      for (int r = 0; r < W; ++r) expectSameBits(liec.out[r], dense.out[0], "output");
    }
  }
}

// tau = 1: every exchange averages, the error stays -0.0, so the output is the dense mean.
TEST(Liec, PeriodOneIsFullPrecisionAveraging) {
  std::mt19937_64 rng(testSeed() + 83);
  const int W = 5;
  const size_t n = 2049;
  World liec(W, liecConfig(n, 1)), dense(W, bucketConfig(SV_SCHEME_DENSE, n));
  EXPECT_EQ(liec.info().averageNext, 1);
  for (int step = 0; step < 5; ++step) {
    const auto g = grads(W, n, rng);
    ASSERT_EQ(liec.exchange(g), svSuccess);
    ASSERT_EQ(dense.exchange(g), svSuccess);
    for (int r = 0; r < W; ++r) expectSameBits(liec.out[r], dense.out[0], "output");
  }
  // Averaging exchanges move float32: the header, a reduce-scatter and an allgather of chunks.
  EXPECT_EQ(liec.info().lastWireBytes, (W - 1) * (64 + 8 * liec.info().chunk));
}

// The owners' error stays bounded over 1,000 random steps: ||e|| <= sqrt(q) / (1 - sqrt(q))
// times the largest ||mean c|| <= mean ||g_i||, where q = 1 - ||a||_1^2 / (len ||a||^2) is
// about 1 - 2/pi for normal data; q = 1/2 gives the bound 2.42 used here.
TEST(Liec, ServerErrorStaysBounded) {
  std::mt19937_64 rng(testSeed() + 84);
  const int W = 4;
  const size_t n = 1000;
  World w(W, liecConfig(n, 0));
  double gMax = 0, eLast = 0, eMax = 0;
  for (int step = 0; step < 1000; ++step) {
    std::vector<std::vector<float>> g(W);
    double gMean = 0;
    for (auto& v : g) {
      v = normal(n, rng, 0.5f + (step % 7) * 0.25f);
      double s = 0;
      for (float x : v) s += double(x) * x;
      gMean += std::sqrt(s) / W;
    }
    gMax = std::max(gMax, gMean);
    ASSERT_EQ(w.exchange(g), svSuccess);
    double e2 = 0;
    for (int r = 0; r < W; ++r)
      for (float x : w.residual(r)) e2 += double(x) * x;
    eLast = std::sqrt(e2);
    eMax = std::max(eMax, eLast);
    ASSERT_TRUE(std::isfinite(eLast));
  }
  EXPECT_LE(eMax, 2.42 * gMax);
  EXPECT_GT(eLast, 0.01 * gMax);  // an error is really being carried
}

}  // namespace
