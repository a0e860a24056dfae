// Planner: the modeled byte formulas of docs/formats.md and a well-formed workspace layout.
#include "common.h"
#include "plan.h"

namespace {

using namespace signvote::detail;

svBucketConfig_t config(svScheme_t s, size_t n, svVote_t vote = SV_VOTE_TERNARY) {
  svBucketConfig_t c = SV_BUCKET_CONFIG_INITIALIZER;
  c.scheme = s;
  c.count = n;
  c.vote = vote;
  return c;
}

TEST(Plan, ModeledBytesFollowTheDocumentedFormulas) {
  // N = 10000, W = 4: 157 words of 64 -> chunk of 40 words = 2560 elements.
  const auto c = config(SV_SCHEME_S3GD_MV, 10000);
  const uint64_t chunk = 2560, planeBytes = chunk / 8;
  EXPECT_EQ(modelWireBytes(SV_FORMAT_COUNTS, c, 100, 4), 3 * (64 + chunk * 1 + 2 * planeBytes));
  EXPECT_EQ(modelWireBytes(SV_FORMAT_COUNTS, c, 100, 200), 199 * (64 + 64 * 2 + 2 * 8));
  EXPECT_EQ(modelWireBytes(SV_FORMAT_SPARSE, c, 100, 4),
            3 * signvote::ref::sparseLayout(10000, 100).recordBytes());
  EXPECT_EQ(modelWireBytes(SV_FORMAT_SIGNS, config(SV_SCHEME_SIGNSGD_MV, 10000, SV_VOTE_BINARY), 0, 4),
            3 * (64 + 2 * planeBytes));
  EXPECT_EQ(modelWireBytes(SV_FORMAT_SIGNS, config(SV_SCHEME_SIGNSGD_MV, 10000), 0, 4),
            3 * (64 + 4 * planeBytes));
  EXPECT_EQ(modelWireBytes(SV_FORMAT_FP32, config(SV_SCHEME_DENSE, 10000), 0, 4),
            3 * (64 + 2 * chunk * 4));
  for (svFormat_t f : {SV_FORMAT_SPARSE, SV_FORMAT_COUNTS, SV_FORMAT_SIGNS, SV_FORMAT_FP32})
    EXPECT_EQ(modelWireBytes(f, c, 100, 1), 0u) << "one rank sends nothing";
}

TEST(Plan, WorkspaceRegionsAreAlignedAndDisjoint) {
  const CudaScratch scratch{100, 16, 300, 24, 500, 64};  // sizes as cudaScratchFor gives them
  for (const CudaScratch* cuda : {static_cast<const CudaScratch*>(nullptr), &scratch})
  for (svScheme_t s : {SV_SCHEME_DENSE, SV_SCHEME_SIGNSGD_MV, SV_SCHEME_S3GD_MV}) {
    for (int W : {1, 2, 7, 300}) {
      for (size_t n : {size_t{0}, size_t{1}, size_t{1000}, size_t{65537}}) {
        auto c = config(s, n);
        const uint64_t k = n / 7;
        for (svFormat_t f : {SV_FORMAT_AUTO, SV_FORMAT_SPARSE, SV_FORMAT_COUNTS, SV_FORMAT_SIGNS}) {
          if (s != SV_SCHEME_S3GD_MV && f != SV_FORMAT_AUTO) continue;
          c.format = f;
          const Plan p = makePlan(c, k, W, cuda);
          const WorkspaceLayout& L = p.ws;
          const Region all[] = {L.acc, L.sel, L.accU, L.entries, L.entryNeg, L.record, L.records,
                                L.votes, L.header, L.headers, L.countsSend, L.countsOwned,
                                L.countsBlocks, L.planesSend, L.planesRecv, L.resultOwn,
                                L.resultAll, L.fp32Send, L.fp32Blocks, L.fp32Sum, L.eNew,
                                L.downA, L.downSel, L.topkTemp, L.topkStatus, L.encTemp,
                                L.recordInfo, L.decTemp, L.ctrl};
          for (size_t i = 0; i < std::size(all); ++i) {
            if (all[i].bytes == 0) continue;
            EXPECT_EQ(all[i].offset % kWorkspaceAlign, 0u);
            EXPECT_LE(all[i].offset + all[i].bytes, L.total);
            for (size_t j = i + 1; j < std::size(all); ++j) {
              if (all[j].bytes == 0) continue;
              EXPECT_TRUE(all[i].offset + all[i].bytes <= all[j].offset ||
                          all[j].offset + all[j].bytes <= all[i].offset);
            }
          }
          EXPECT_NE(p.format, SV_FORMAT_AUTO);
          EXPECT_GE(p.chunk * W, n);
          EXPECT_EQ(p.chunk % 64, 0u);
          // The device path's owner sums: W received blocks, and dense padded to W chunks.
          const uint64_t blocks = cuda != nullptr ? W * p.chunk : 0;
          EXPECT_EQ(L.countsBlocks.bytes, p.format == SV_FORMAT_COUNTS ? blocks * p.countBytes : 0);
          if (p.format == SV_FORMAT_FP32) {
            const uint64_t floats = cuda != nullptr ? blocks : n;
            EXPECT_EQ(L.fp32Send.bytes, floats * 4);
            EXPECT_EQ(L.fp32Blocks.bytes, blocks * 4);
            EXPECT_EQ(L.fp32Sum.bytes, floats * 4);
          }
          EXPECT_EQ(L.ctrl.bytes, cuda != nullptr ? scratch.ctrl : 0);
        }
      }
    }
  }
}

// docs/formats.md: for W = 8 and N = 2^27 sparse records stay cheaper than the signs format up
// to a density of 7.4%; counts never undercuts signs; one rank plans as two.
TEST(Plan, S3gdAutoFormatFollowsTheModel) {
  auto c = config(SV_SCHEME_S3GD_MV, size_t{1} << 27);
  for (int W : {1, 2, 8, 64}) {
    for (double d : {0.001, 0.01, 0.072, 0.075, 0.3, 1.0}) {
      uint64_t k = 0;
      c.density = d;
      ASSERT_TRUE(resolveK(c, &k));
      const int w = W < 2 ? 2 : W;
      const uint64_t sparse = modelWireBytes(SV_FORMAT_SPARSE, c, k, w),
                     signs = modelWireBytes(SV_FORMAT_SIGNS, c, k, w);
      EXPECT_LT(signs, modelWireBytes(SV_FORMAT_COUNTS, c, k, w));
      EXPECT_EQ(makePlan(c, k, W).format, sparse <= signs ? SV_FORMAT_SPARSE : SV_FORMAT_SIGNS)
          << "W " << W << " density " << d;
      if (W == 8 && (d == 0.072 || d == 0.075)) {
        EXPECT_EQ(makePlan(c, k, W).format, d < 0.074 ? SV_FORMAT_SPARSE : SV_FORMAT_SIGNS);
      }
    }
  }
}

// Adaptive K sizes the workspace once for every K the rule can pick, from the largest K of
// each Elias-Fano range; checked here against every K of [kMin, N], on the host layout and on
// a CUDA layout whose scratch grows with K as the kernels' does (CUB's with its item count).
// The norm regions of the CUDA layouts sit at the same offsets for every K, since the norm
// runs before K_t is known.
TEST(Plan, AdaptiveWorkspaceHoldsTheLayoutOfEveryK) {
  const ScratchFn growing = [](const Plan& p, CudaScratch* s) {
    *s = CudaScratch{64 + p.n, 16, 100 + 4 * p.k, 24, 200 + 8 * p.sparse.highWords, 64,
                     8 + 4 * p.n / 2048};
    return true;
  };
  struct Case {
    svScheme_t scheme;
    svFormat_t format;
    size_t downK;
  };
  for (const Case& c : {Case{SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, 0},
                        Case{SV_SCHEME_S3GD_MV, SV_FORMAT_COUNTS, 0},
                        Case{SV_SCHEME_TOPK_EF, SV_FORMAT_AUTO, 0},
                        Case{SV_SCHEME_DGS, SV_FORMAT_AUTO, 7}})
    for (const ScratchFn& scratch : {ScratchFn{}, growing})
      for (int W : {1, 3})
        for (size_t n : {size_t{1}, size_t{33}, size_t{1000}, size_t{4097}}) {
          SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", W = " + std::to_string(W) +
                       ", n = " + std::to_string(n) + (scratch ? ", CUDA" : ", host"));
          svBucketConfig_t cfg = config(c.scheme, n);
          cfg.format = c.format;
          cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
          cfg.kMin = 1;
          cfg.downK = std::min(c.downK, n);
          if (c.scheme == SV_SCHEME_DGS) cfg.momentum = 0.9f;
          Plan bucket;
          size_t total = 0;
          ASSERT_TRUE(planWith(cfg, (n + 9) / 10, W, scratch, &bucket));
          ASSERT_TRUE(adaptiveWorkspaceBytes(bucket, cfg, scratch, &total));
          EXPECT_GE(total, bucket.ws.total);
          EXPECT_EQ(bucket.ws.normOut.bytes, scratch ? 8u : 0u);
          for (uint64_t kt = cfg.kMin; kt <= n; ++kt) {
            Plan p;
            ASSERT_TRUE(stepPlan(bucket, cfg, kt, scratch, &p));
            ASSERT_EQ(p.format, bucket.format);
            ASSERT_LE(p.ws.total, total) << "K = " << kt;
            ASSERT_EQ(p.ws.normOut.offset, bucket.ws.normOut.offset);
            ASSERT_EQ(p.ws.normTemp.offset, bucket.ws.normTemp.offset);
            ASSERT_EQ(p.ws.normTemp.bytes, bucket.ws.normTemp.bytes);
          }
        }
}

TEST(Plan, CountWidthGrowsWithWorldSize) {
  auto c = config(SV_SCHEME_S3GD_MV, 1000);
  c.format = SV_FORMAT_COUNTS;
  EXPECT_EQ(makePlan(c, 10, 127).countBytes, 1u);
  EXPECT_EQ(makePlan(c, 10, 128).countBytes, 2u);
}

}  // namespace
