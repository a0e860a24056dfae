// A loopback world of W ranks with one bucket each, host buffers and workspaces, driven only
// through the public C API.
#pragma once

#include <string>
#include <vector>

#include "common.h"
#include "signvote/signvote.h"

namespace svtest {

struct World {
  int W = 0;
  std::vector<svComm_t> comms;
  std::vector<svBucket_t> buckets;
  std::vector<std::vector<unsigned char>> ws;
  std::vector<std::vector<float>> out;

  World(int nranks, const svBucketConfig_t& cfg, const svConfig_t* config = nullptr)
      : W(nranks), comms(nranks), buckets(nranks), ws(nranks), out(nranks) {
    EXPECT_EQ(svCommInitLoopback(comms.data(), W, config), svSuccess) << svGetLastError(nullptr);
    for (int r = 0; r < W; ++r) {
      EXPECT_EQ(svBucketCreate(&buckets[r], comms[r], &cfg), svSuccess)
          << svGetLastError(comms[r]);
      size_t bytes = 0;
      EXPECT_EQ(svExchange(buckets[r], nullptr, nullptr, nullptr, &bytes, nullptr), svSuccess);
      ws[r].resize(bytes);
      out[r].assign(cfg.count, 7.0f);  // a sentinel no scheme produces
    }
  }
  ~World() {
    for (svBucket_t b : buckets) EXPECT_EQ(svBucketDestroy(b), svSuccess);
    for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
  }

  // One grouped exchange of all ranks; g[r] is rank r's gradient.
  svResult_t exchange(const std::vector<std::vector<float>>& g) {
    svGroupStart();
    for (int r = 0; r < W; ++r) {
      size_t bytes = ws[r].size();
      svExchange(buckets[r], g[r].data(), out[r].data(), ws[r].data(), &bytes, nullptr);
    }
    return svGroupEnd();
  }

  std::vector<float> residual(int r) const {
    std::vector<float> v(info().stateFloats);
    EXPECT_EQ(svBucketGetResidual(buckets[r], v.data()), svSuccess);
    return v;
  }
  uint64_t seq(int r) const {
    uint64_t s = 0;
    EXPECT_EQ(svCommGetSequence(comms[r], &s), svSuccess);
    return s;
  }
  svBucketInfo_t info() const {
    svBucketInfo_t i{};
    EXPECT_EQ(svBucketGetInfo(buckets[0], &i), svSuccess);
    return i;
  }
  // What an exchange may change: outputs, states (empty for stateless schemes), sequences.
  struct Snapshot {
    std::vector<std::vector<float>> out, res;
    std::vector<uint64_t> seq;
  };
  Snapshot snapshot() const {
    Snapshot s;
    const bool stateful = info().stateFloats != 0;
    for (int r = 0; r < W; ++r) {
      s.out.push_back(out[r]);
      s.res.push_back(stateful ? residual(r) : std::vector<float>());
      s.seq.push_back(seq(r));
    }
    return s;
  }
  void expectUnchanged(const Snapshot& s) const {
    const Snapshot now = snapshot();
    for (int r = 0; r < W; ++r) {
      EXPECT_TRUE(sameBits(now.out[r], s.out[r])) << "output of rank " << r;
      EXPECT_TRUE(sameBits(now.res[r], s.res[r])) << "state of rank " << r;
      EXPECT_EQ(now.seq[r], s.seq[r]) << "sequence of rank " << r;
    }
  }
  // Every rank's output is bit-identical to rank 0's.
  void expectRanksAgree() const {
    for (int r = 1; r < W; ++r)
      ASSERT_TRUE(sameBits(out[r], out[0])) << "rank " << r << " differs from rank 0";
  }
};

// svBucketInfo_t.lastK of a bucket: the K of its last exchange (adaptive K moves it).
inline size_t lastK(svBucket_t b) {
  svBucketInfo_t i{};
  EXPECT_EQ(svBucketGetInfo(b, &i), svSuccess);
  return i.lastK;
}

// W ranks' normal gradients times `scale` (adaptive K follows their norm).
inline std::vector<std::vector<float>> scaledGrads(int W, size_t n, float scale,
                                                   std::mt19937_64& rng) {
  std::vector<std::vector<float>> g(W);
  for (auto& v : g) {
    v = normal(n, rng);
    for (float& x : v) x *= scale;
  }
  return g;
}

inline svBucketConfig_t bucketConfig(svScheme_t scheme, size_t count) {
  svBucketConfig_t c = SV_BUCKET_CONFIG_INITIALIZER;
  c.scheme = scheme;
  c.count = count;
  return c;
}

// One bucket config per scheme and format (and adaptive K when n > 0), for tests that sweep
// them all.
inline std::vector<svBucketConfig_t> schemeCases(size_t n) {
  std::vector<svBucketConfig_t> v;
  auto add = [&](svScheme_t scheme, auto&& edit) {
    svBucketConfig_t c = bucketConfig(scheme, n);
    edit(c);
    v.push_back(c);
  };
  add(SV_SCHEME_S3GD_MV, [](auto& c) { c.density = 0.1; c.format = SV_FORMAT_SPARSE; });
  add(SV_SCHEME_S3GD_MV, [](auto& c) { c.density = 0.3; c.rho = 0.5f; c.format = SV_FORMAT_COUNTS; });
  add(SV_SCHEME_S3GD_MV, [](auto& c) { c.density = 0.2; c.format = SV_FORMAT_SIGNS; });
  add(SV_SCHEME_SIGNSGD_MV, [](auto&) {});
  add(SV_SCHEME_SIGNSGD_MV, [](auto& c) { c.vote = SV_VOTE_BINARY; });
  add(SV_SCHEME_SIGNSGD_MV, [](auto& c) { c.momentum = 0.9f; });
  add(SV_SCHEME_DENSE, [](auto&) {});
  add(SV_SCHEME_EF_SIGN, [](auto&) {});
  add(SV_SCHEME_TOPK_EF, [](auto& c) { c.density = 0.1; c.momentum = 0.9f; });
  add(SV_SCHEME_DGS, [](auto& c) { c.density = 0.1; c.momentum = 0.5f; c.downDensity = 0.05; });
  add(SV_SCHEME_LIEC, [](auto& c) { c.period = 2; });
  if (n > 0)
    add(SV_SCHEME_S3GD_MV, [](auto& c) {
      c.density = 0.05;
      c.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
      c.kMin = 1;
    });
  return v;
}

}  // namespace svtest
