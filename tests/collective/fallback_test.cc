// The opt-in dense fallback (svBucketConfig_t.linkBusBW, kernelUs): the link model's arithmetic
// from the bucket's own wire bytes, the choice at both sides of the break-even point, a
// fallen-back bucket being exactly a dense bucket, refusals without effect, and ranks that
// choose differently.
#include <cmath>
#include <limits>
#include <random>

#include "world.h"

using namespace svtest;

namespace {

svBucketInfo_t infoOf(int W, const svBucketConfig_t& c) {
  World w(W, c);
  return w.info();
}

svBucketConfig_t linked(svBucketConfig_t c, double busBW, double kernelUs) {
  c.linkBusBW = busBW;
  c.kernelUs = kernelUs;
  return c;
}

// bytes at `busBW` GB/s, in microseconds.
double us(uint64_t bytes, double busBW) { return static_cast<double>(bytes) / (busBW * 1e3); }

}  // namespace

TEST(Fallback, OffUnlessALinkIsGiven) {
  for (const svBucketConfig_t& c : schemeCases(1000)) {
    const svBucketInfo_t i = infoOf(3, c);
    EXPECT_EQ(i.scheme, c.scheme);
    EXPECT_EQ(i.denseFallback, 0);
    EXPECT_EQ(i.modeledUs, 0.0);
    EXPECT_EQ(i.modeledDenseUs, 0.0);
  }
}

// s3gd_mv at 1 % over 4 ranks on a 12 GB/s link: the model is the bucket's wire bytes at that
// rate, and the kernel time decides on either side of the break-even point.
TEST(Fallback, TheKernelTimeDecidesAtTheBreakEvenPoint) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_S3GD_MV, 100000);
  c.density = 0.01;
  const double bw = 12.0;
  const svBucketInfo_t plain = infoOf(4, c);
  ASSERT_LT(plain.wireBytes, plain.denseWireBytes);
  const double wireUs = us(plain.wireBytes, bw), denseUs = us(plain.denseWireBytes, bw);
  const double breakEven = denseUs - wireUs;  // the kernel time at which both take as long

  const svBucketInfo_t fast = infoOf(4, linked(c, bw, 0.0));
  EXPECT_EQ(fast.scheme, SV_SCHEME_S3GD_MV);
  EXPECT_EQ(fast.denseFallback, 0);
  EXPECT_DOUBLE_EQ(fast.modeledUs, wireUs);
  EXPECT_DOUBLE_EQ(fast.modeledDenseUs, denseUs);
  EXPECT_EQ(fast.wireBytes, plain.wireBytes);

  const svBucketInfo_t below = infoOf(4, linked(c, bw, 0.99 * breakEven));
  EXPECT_EQ(below.scheme, SV_SCHEME_S3GD_MV);
  EXPECT_EQ(below.denseFallback, 0);
  EXPECT_DOUBLE_EQ(below.modeledUs, 0.99 * breakEven + wireUs);

  const svBucketInfo_t above = infoOf(4, linked(c, bw, 1.01 * breakEven));
  EXPECT_EQ(above.scheme, SV_SCHEME_DENSE);
  EXPECT_EQ(above.denseFallback, 1);
  EXPECT_DOUBLE_EQ(above.modeledUs, 1.01 * breakEven + wireUs);  // the compressed side's
  EXPECT_DOUBLE_EQ(above.modeledDenseUs, denseUs);
  const svBucketInfo_t dense = infoOf(4, bucketConfig(SV_SCHEME_DENSE, 100000));
  EXPECT_EQ(above.format, SV_FORMAT_FP32);
  EXPECT_EQ(above.wireBytes, dense.wireBytes);
  EXPECT_EQ(above.k, dense.k);

  // A faster link moves the break-even kernel time down: the same kernel time loses there.
  const svBucketInfo_t nvlink = infoOf(4, linked(c, 360.0, 0.99 * breakEven));
  EXPECT_EQ(nvlink.denseFallback, 1);
}

// With one rank nothing crosses a link: both sides model 0 us and the tie goes to dense.
TEST(Fallback, OneRankFallsBackOnATie) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  c.density = 0.01;
  const svBucketInfo_t i = infoOf(1, linked(c, 12.0, 0.0));
  EXPECT_EQ(i.modeledUs, 0.0);
  EXPECT_EQ(i.modeledDenseUs, 0.0);
  EXPECT_EQ(i.denseFallback, 1);
  EXPECT_EQ(i.scheme, SV_SCHEME_DENSE);
}

// liec's averaging exchanges move float32: the model charges their share of a period. Adaptive
// K is modeled at the configured K.
TEST(Fallback, LiecPeriodAndAdaptiveKAreModeledPerExchange) {
  const double bw = 46.0;
  svBucketConfig_t liec = bucketConfig(SV_SCHEME_LIEC, 10000);
  liec.period = 4;
  const uint64_t signs = infoOf(4, liec).wireBytes;
  svBucketConfig_t identity = bucketConfig(SV_SCHEME_LIEC, 10000);
  identity.format = SV_FORMAT_FP32;
  const uint64_t fp32 = infoOf(4, identity).wireBytes;
  ASSERT_LT(signs, fp32);
  EXPECT_DOUBLE_EQ(infoOf(4, linked(liec, bw, 2.0)).modeledUs,
                   2.0 + (3.0 * signs + fp32) / 4.0 / (bw * 1e3));
  liec.period = 0;
  EXPECT_DOUBLE_EQ(infoOf(4, linked(liec, bw, 2.0)).modeledUs, 2.0 + us(signs, bw));

  svBucketConfig_t adaptive = bucketConfig(SV_SCHEME_TOPK_EF, 10000);
  adaptive.k = 100;
  const uint64_t fixedWire = infoOf(4, adaptive).wireBytes;
  adaptive.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
  adaptive.kMin = 10;
  EXPECT_DOUBLE_EQ(infoOf(4, linked(adaptive, bw, 0.0)).modeledUs, us(fixedWire, bw));
}

// A fallen-back bucket of any scheme is a dense bucket: same plan, no state, the dense bits.
TEST(Fallback, AFallenBackBucketIsADenseBucket) {
  SCOPED_TRACE(testSeed());
  std::mt19937_64 rng(testSeed());
  for (const size_t n : {size_t{1}, size_t{33}, size_t{1000}}) {
    for (const int W : {1, 3}) {
      const svBucketConfig_t denseCfg = bucketConfig(SV_SCHEME_DENSE, n);
      for (const svBucketConfig_t& c : schemeCases(n)) {
        if (c.scheme == SV_SCHEME_DENSE) continue;
        SCOPED_TRACE(::testing::Message() << "scheme " << c.scheme << " format " << c.format
                                          << " n " << n << " W " << W);
        // A link so fast that no kernel time is worth saving its bytes.
        World fell(W, linked(c, 1e9, 1e3)), dense(W, denseCfg);
        const svBucketInfo_t i = fell.info(), d = dense.info();
        EXPECT_EQ(i.scheme, SV_SCHEME_DENSE);
        EXPECT_EQ(i.denseFallback, 1);
        EXPECT_LE(i.modeledDenseUs, i.modeledUs);
        EXPECT_EQ(i.format, d.format);
        EXPECT_EQ(i.k, d.k);
        EXPECT_EQ(i.wireBytes, d.wireBytes);
        EXPECT_EQ(i.workspaceBytes, d.workspaceBytes);
        EXPECT_EQ(i.stateFloats, 0u);
        float state = 0.0f;
        EXPECT_EQ(svBucketGetResidual(fell.buckets[0], &state), svInvalidUsage);
        EXPECT_TRUE(mentions(svGetLastError(fell.comms[0]), "dense fallback"));
        for (int step = 0; step < 3; ++step) {
          const auto g = grads(W, n, rng);
          ASSERT_EQ(fell.exchange(g), svSuccess) << svGetLastError(fell.comms[0]);
          ASSERT_EQ(dense.exchange(g), svSuccess) << svGetLastError(dense.comms[0]);
          for (int r = 0; r < W; ++r) EXPECT_TRUE(sameBits(fell.out[r], dense.out[r]));
        }
      }
    }
  }
}

// When compression pays, the link settings change nothing: the same outputs and states as a
// bucket without them.
TEST(Fallback, APayingSchemeRunsUnchanged) {
  SCOPED_TRACE(testSeed());
  std::mt19937_64 rng(testSeed());
  svBucketConfig_t c = bucketConfig(SV_SCHEME_S3GD_MV, 4099);
  c.density = 0.01;
  World plain(3, c), kept(3, linked(c, 12.0, 1.0));
  ASSERT_EQ(kept.info().denseFallback, 0);
  for (int step = 0; step < 3; ++step) {
    const auto g = grads(3, c.count, rng);
    ASSERT_EQ(plain.exchange(g), svSuccess);
    ASSERT_EQ(kept.exchange(g), svSuccess);
    for (int r = 0; r < 3; ++r) {
      EXPECT_TRUE(sameBits(kept.out[r], plain.out[r]));
      EXPECT_TRUE(sameBits(kept.residual(r), plain.residual(r)));
    }
  }
}

TEST(Fallback, BadSettingsAreRefusedWithoutEffect) {
  svComm_t comm = nullptr;
  ASSERT_EQ(svCommInitLoopback(&comm, 1, nullptr), svSuccess);
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case {
    double busBW, kernelUs;
    const char* says;
  };
  const Case cases[] = {{nan, 0.0, "config->linkBusBW = nan"},
                        {-1.0, 0.0, "config->linkBusBW = -1"},
                        {inf, 0.0, "config->linkBusBW = inf"},
                        {12.0, nan, "config->kernelUs = nan"},
                        {12.0, -0.5, "config->kernelUs = -0.5"},
                        {12.0, inf, "config->kernelUs = inf"},
                        {0.0, 3.0, "config->kernelUs = 3 is set without config->linkBusBW"}};
  for (const Case& k : cases) {
    svBucketConfig_t c = linked(bucketConfig(SV_SCHEME_S3GD_MV, 100), k.busBW, k.kernelUs);
    c.k = 3;
    svBucket_t b = nullptr;
    EXPECT_EQ(svBucketCreate(&b, comm, &c), svInvalidArgument);
    EXPECT_EQ(b, nullptr);
    EXPECT_TRUE(mentions(svGetLastError(comm), "svBucketCreate"));
    EXPECT_TRUE(mentions(svGetLastError(comm), k.says));
  }
  EXPECT_EQ(svCommDestroy(comm), svSuccess);
}

// Ranks whose settings lead to different choices run different schemes: the group is refused
// as a mismatch, with no effect.
TEST(Fallback, RanksThatChooseDifferentlyMismatch) {
  svBucketConfig_t c = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  c.density = 0.01;
  svComm_t comms[2] = {};
  ASSERT_EQ(svCommInitLoopback(comms, 2, nullptr), svSuccess);
  const svBucketConfig_t cfg[2] = {linked(c, 12.0, 0.0), linked(c, 12.0, 1e6)};
  svBucket_t b[2] = {};
  std::vector<std::vector<unsigned char>> ws(2);
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(svBucketCreate(&b[r], comms[r], &cfg[r]), svSuccess);
    size_t bytes = 0;
    ASSERT_EQ(svExchange(b[r], nullptr, nullptr, nullptr, &bytes, nullptr), svSuccess);
    ws[r].resize(bytes);
  }
  std::mt19937_64 rng(testSeed());
  const auto g = grads(2, c.count, rng);
  std::vector<std::vector<float>> out(2, std::vector<float>(c.count, 7.0f));
  svGroupStart();
  for (int r = 0; r < 2; ++r) {
    size_t bytes = ws[r].size();
    svExchange(b[r], g[r].data(), out[r].data(), ws[r].data(), &bytes, nullptr);
  }
  EXPECT_EQ(svGroupEnd(), svMismatch);
  EXPECT_TRUE(mentions(svGetLastError(comms[0]), "scheme"));
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(out[r], std::vector<float>(c.count, 7.0f));
    uint64_t seq = 1;
    EXPECT_EQ(svCommGetSequence(comms[r], &seq), svSuccess);
    EXPECT_EQ(seq, 0u);
    EXPECT_EQ(svBucketDestroy(b[r]), svSuccess);
    EXPECT_EQ(svCommDestroy(comms[r]), svSuccess);
  }
}
