// dgs_async (the parameter server of DGS) through the public API on loopback worlds: bits
// against a brute-force model of the server and the workers over random orders of service,
// asynchronous SGD without downlink compression, what the downlink holds back, the NaN
// policies, and the refusals of calls that do not form a push.
#include <limits>

#include "dgs_async_model.h"

namespace {

using namespace svtest;

// A push: worker w's call and the server's, grouped.
svResult_t push(World& wd, int w, const std::vector<float>& g) {
  svGroupStart();
  for (int r : {0, w}) {
    size_t bytes = wd.ws[r].size();
    svExchange(wd.buckets[r], r == 0 ? nullptr : g.data(), wd.out[r].data(), wd.ws[r].data(),
               &bytes, nullptr);
  }
  return svGroupEnd();
}

std::vector<float> stateOf(const World& wd, int r) {
  svBucketInfo_t info{};
  EXPECT_EQ(svBucketGetInfo(wd.buckets[r], &info), svSuccess);
  std::vector<float> s(info.stateFloats);
  EXPECT_EQ(svBucketGetResidual(wd.buckets[r], s.data()), svSuccess);
  return s;
}

int lastPeer(const World& wd, int r) {
  svBucketInfo_t info{};
  EXPECT_EQ(svBucketGetInfo(wd.buckets[r], &info), svSuccess);
  return info.lastPeer;
}

TEST(DgsAsync, MatchesTheModelOverRandomOrdersOfService) {
  std::mt19937_64 rng(testSeed() + 90);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (int W : {2, 3, 5}) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{100}, size_t{1000}}) {
      for (size_t k : {size_t{0}, size_t{1}, n / 10, n}) {
        if (k > n) continue;
        for (size_t downK : {size_t{0}, n / 7 + (n != 0)}) {
          SCOPED_TRACE("W " + std::to_string(W) + " n " + std::to_string(n) + " k " +
                       std::to_string(k) + " downK " + std::to_string(downK));
          const float m = (W + n) % 2 ? 0.9f : 0.5f;
          World wd(W, asyncConfig(n, k, m, downK));
          AsyncModel model(W, n, k, m, downK);
          EXPECT_EQ(wd.info().k, k);
          EXPECT_EQ(lastPeer(wd, 0), -1);
          for (int step = 0; step < 12; ++step) {
            const int w = 1 + static_cast<int>(rng() % (W - 1));
            const std::vector<float> g = rng() % 3 ? normal(n, rng) : ties(n, rng);
            ASSERT_EQ(push(wd, w, g), svSuccess) << svGetLastError(nullptr);
            expectSameBits(wd.out[w], model.push(w, g), "the reply");
            expectSameBits(wd.out[0], model.T, "the server's total");
            EXPECT_EQ(lastPeer(wd, 0), w);
            EXPECT_EQ(lastPeer(wd, w), 0);
          }
          expectSameBits(stateOf(wd, 0), model.serverState(), "the server's state");
          for (int w = 1; w < W; ++w) expectSameBits(stateOf(wd, w), model.u[w], "u");
          for (int r = 0; r < W; ++r) EXPECT_EQ(wd.seq(r), 0u) << "pushes are not collective";
        }
      }
    }
  }
}

// Small integer gradients keep every float32 sum exact, so the identity holds bit for bit:
// with K = N and no downlink compression each worker's model after its reply is the
// server's, theta_0 - T, and T is the sum of every value pushed (asynchronous SGD).
TEST(DgsAsync, WithoutDownlinkCompressionIsAsynchronousSgd) {
  std::mt19937_64 rng(testSeed() + 91);
  const int W = 4;
  const size_t n = 257;
  World wd(W, asyncConfig(n, n, 0.5f, 0));
  std::vector<std::vector<float>> theta(W, std::vector<float>(n, 0.0f));
  std::vector<std::vector<double>> u(W, std::vector<double>(n, 0.0));
  std::vector<double> pushed(n, 0.0);
  std::uniform_int_distribution<int> d(-8, 8);
  // Rounds of the three workers in random order: 8 pushes each keep u within 8 fractional
  // bits and T within 18 significant ones.
  std::vector<int> order{1, 2, 3};
  for (int step = 0; step < 24; ++step) {
    if (step % 3 == 0) std::shuffle(order.begin(), order.end(), rng);
    const int w = order[step % 3];
    std::vector<float> g(n);
    for (size_t i = 0; i < n; ++i) {
      g[i] = static_cast<float>(d(rng));
      u[w][i] = 0.5 * u[w][i] + g[i];  // every coordinate is sent, so u keeps u'
      pushed[i] += u[w][i];
    }
    ASSERT_EQ(push(wd, w, g), svSuccess) << svGetLastError(nullptr);
    for (size_t i = 0; i < n; ++i) theta[w][i] -= wd.out[w][i];
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(static_cast<double>(wd.out[0][i]), pushed[i]) << "T at " << i;
      ASSERT_EQ(theta[w][i], -wd.out[0][i]) << "worker " << w << " at " << i;
    }
  }
}

// With downlink compression each reply has at most downK non-zeros, what a worker received
// adds up to the server's v_k bit for bit, and pushes of nothing drain T - v_k.
TEST(DgsAsync, TheDownlinkHoldsBackWhatItDoesNotSend) {
  std::mt19937_64 rng(testSeed() + 92);
  const int W = 3;
  const size_t n = 500, downK = 20;
  World wd(W, asyncConfig(n, 50, 0.9f, downK));
  std::vector<std::vector<float>> got(W, std::vector<float>(n, 0.0f));
  auto receive = [&](int w) {
    size_t nonzero = 0;
    for (size_t i = 0; i < n; ++i) {
      if (wd.out[w][i] != 0.0f) {
        ++nonzero;
        got[w][i] = got[w][i] + wd.out[w][i];
      }
    }
    EXPECT_LE(nonzero, downK);
  };
  for (int step = 0; step < 30; ++step) {
    const int w = 1 + step % (W - 1);
    ASSERT_EQ(push(wd, w, normal(n, rng)), svSuccess) << svGetLastError(nullptr);
    receive(w);
  }
  const std::vector<float> server = stateOf(wd, 0);
  for (int w = 1; w < W; ++w)
    expectSameBits(std::vector<float>(server.begin() + w * n, server.begin() + (w + 1) * n),
                   got[w], "v_k against the replies received");
  // Worker 1 pushes, then worker 2 drains T - v_2 with pushes of nothing (its u stays 0).
  std::vector<float> mine(n, 0.0f);
  World flow(W, asyncConfig(n, n / 5, 0.5f, downK));
  for (int step = 0; step < 4; ++step) ASSERT_EQ(push(flow, 1, normal(n, rng)), svSuccess);
  const std::vector<float> zero(n, 0.0f);
  for (size_t step = 0; step < n / downK + 2; ++step) {
    ASSERT_EQ(push(flow, 2, zero), svSuccess);
    for (size_t i = 0; i < n; ++i) mine[i] = mine[i] + flow.out[2][i];
  }
  const std::vector<float>& total = flow.out[0];
  float most = 0.0f, gap = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    most = std::max(most, std::fabs(total[i]));
    gap = std::max(gap, std::fabs(total[i] - mine[i]));
  }
  EXPECT_GT(most, 0.0f);
  EXPECT_LE(gap, 1e-6f * most) << "worker 2 received all of T";
}

TEST(DgsAsync, NonFinitePolicies) {
  std::mt19937_64 rng(testSeed() + 93);
  const size_t n = 100;
  for (svNonFinitePolicy_t policy :
       {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE, SV_NONFINITE_PROPAGATE}) {
    SCOPED_TRACE("policy " + std::to_string(policy));
    svConfig_t cc = SV_CONFIG_INITIALIZER;
    cc.nonFinite = policy;
    World wd(3, asyncConfig(n, 10, 0.9f, 5), &cc);
    AsyncModel model(3, n, 10, 0.9f, 5);
    model.policy = policy;
    for (int step = 0; step < 3; ++step) {
      const std::vector<float> g = normal(n, rng);
      ASSERT_EQ(push(wd, 1 + step % 2, g), svSuccess);
      model.push(1 + step % 2, g);
    }
    std::vector<float> g = normal(n, rng);
    g[17] = std::numeric_limits<float>::quiet_NaN();
    const World::Snapshot before = wd.snapshot();
    const std::vector<float> server = stateOf(wd, 0), worker = stateOf(wd, 2);
    const svResult_t r = push(wd, 2, g);
    if (policy == SV_NONFINITE_ERROR) {
      EXPECT_EQ(r, svNonFiniteInput);
      EXPECT_TRUE(mentions(svGetLastError(nullptr), "rank 2 had NaN input"))
          << svGetLastError(nullptr);
      wd.expectUnchanged(before);
      expectSameBits(stateOf(wd, 0), server, "server state");
    } else if (policy == SV_NONFINITE_PROPAGATE) {
      ASSERT_EQ(r, svSuccess) << svGetLastError(nullptr);
      EXPECT_TRUE(std::all_of(wd.out[2].begin(), wd.out[2].end(),
                              [](float x) { return std::isnan(x); }));
      expectSameBits(wd.out[0], model.T, "the server's total");
      expectSameBits(stateOf(wd, 0), server, "server state");
      expectSameBits(stateOf(wd, 2), worker, "worker state");
      EXPECT_EQ(lastPeer(wd, 0), 2);
    } else {
      ASSERT_EQ(r, svSuccess) << svGetLastError(nullptr);
      expectSameBits(wd.out[2], model.push(2, g), "the reply");
      expectSameBits(stateOf(wd, 0), model.serverState(), "server state");
    }
    // The pair goes on as the model says.
    const std::vector<float> next = normal(n, rng);
    ASSERT_EQ(push(wd, 2, next), svSuccess) << svGetLastError(nullptr);
    expectSameBits(wd.out[2], model.push(2, next), "the next reply");
  }
}

TEST(DgsAsync, CallsThatDoNotFormAPushAreRefusedWithNoEffect) {
  std::mt19937_64 rng(testSeed() + 94);
  const size_t n = 64;
  World wd(3, asyncConfig(n, 8, 0.9f, 0));
  ASSERT_EQ(push(wd, 1, normal(n, rng)), svSuccess);
  const std::vector<float> g = normal(n, rng);
  auto group = [&](std::vector<int> ranks) {
    svGroupStart();
    for (int r : ranks) {
      size_t bytes = wd.ws[r].size();
      EXPECT_EQ(svExchange(wd.buckets[r], g.data(), wd.out[r].data(), wd.ws[r].data(), &bytes,
                           nullptr),
                svSuccess);
    }
    return svGroupEnd();
  };
  const World::Snapshot before = wd.snapshot();
  const std::vector<float> server = stateOf(wd, 0);
  for (const std::vector<int>& ranks :
       {std::vector<int>{0, 1, 2}, {0}, {1}, {1, 2}}) {
    EXPECT_EQ(group(ranks), svInvalidUsage);
    EXPECT_TRUE(mentions(svGetLastError(nullptr), "dgs_async")) << svGetLastError(nullptr);
    wd.expectUnchanged(before);
  }
  size_t bytes = wd.ws[1].size();  // a loopback world's calls are grouped
  EXPECT_EQ(svExchange(wd.buckets[1], g.data(), wd.out[1].data(), wd.ws[1].data(), &bytes,
                       nullptr),
            svInvalidUsage);
  // With another scheme's exchange in the group.
  std::vector<svComm_t> other(1);
  ASSERT_EQ(svCommInitLoopback(other.data(), 1, nullptr), svSuccess);
  svBucketConfig_t dense = bucketConfig(SV_SCHEME_DENSE, n);
  svBucket_t db = nullptr;
  ASSERT_EQ(svBucketCreate(&db, other[0], &dense), svSuccess);
  std::vector<float> dout(n);
  svGroupStart();
  for (int r : {0, 1}) {
    size_t b = wd.ws[r].size();
    svExchange(wd.buckets[r], g.data(), wd.out[r].data(), wd.ws[r].data(), &b, nullptr);
  }
  size_t dbytes = 0;
  ASSERT_EQ(svExchange(db, nullptr, nullptr, nullptr, &dbytes, nullptr), svSuccess);
  std::vector<unsigned char> dws(dbytes);
  EXPECT_EQ(svExchange(db, g.data(), dout.data(), dws.data(), &dbytes, nullptr), svSuccess);
  EXPECT_EQ(svGroupEnd(), svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "another scheme")) << svGetLastError(nullptr);
  wd.expectUnchanged(before);
  EXPECT_EQ(svBucketDestroy(db), svSuccess);
  EXPECT_EQ(svCommDestroy(other[0]), svSuccess);
  expectSameBits(stateOf(wd, 0), server, "server state");
}

TEST(DgsAsync, DifferingOrRestartedBucketsAreRefusedWithNoEffect) {
  std::mt19937_64 rng(testSeed() + 95);
  const size_t n = 80;
  std::vector<svComm_t> comms(2);
  ASSERT_EQ(svCommInitLoopback(comms.data(), 2, nullptr), svSuccess);
  const svBucketConfig_t good = asyncConfig(n, 8, 0.9f, 4);
  svBucketConfig_t other = good;
  other.downK = 5;
  svBucket_t server = nullptr, worker = nullptr, differs = nullptr;
  ASSERT_EQ(svBucketCreate(&server, comms[0], &good), svSuccess);
  ASSERT_EQ(svBucketCreate(&worker, comms[1], &good), svSuccess);
  ASSERT_EQ(svBucketCreate(&differs, comms[1], &other), svSuccess);
  size_t bytes = 0;
  ASSERT_EQ(svExchange(server, nullptr, nullptr, nullptr, &bytes, nullptr), svSuccess);
  std::vector<unsigned char> ws0(bytes), ws1(bytes + 4096);
  std::vector<float> out0(n, 7.0f), out1(n, 7.0f), g = normal(n, rng);
  auto pair = [&](svBucket_t w) {
    svGroupStart();
    size_t b0 = ws0.size(), b1 = ws1.size();
    svExchange(server, nullptr, out0.data(), ws0.data(), &b0, nullptr);
    svExchange(w, g.data(), out1.data(), ws1.data(), &b1, nullptr);
    return svGroupEnd();
  };
  EXPECT_EQ(pair(differs), svMismatch);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "differ in downK")) << svGetLastError(nullptr);
  ASSERT_EQ(pair(worker), svSuccess) << svGetLastError(nullptr);
  // A worker whose bucket was created anew starts its count at 0; the server has served 1.
  ASSERT_EQ(svBucketDestroy(worker), svSuccess);
  ASSERT_EQ(svBucketCreate(&worker, comms[1], &good), svSuccess);
  std::vector<float> state(2 * n), after(2 * n);
  ASSERT_EQ(svBucketGetResidual(server, state.data()), svSuccess);
  const std::vector<float> o0 = out0, o1 = out1;
  EXPECT_EQ(pair(worker), svMismatch);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "failed validation (sequence number)"))
      << svGetLastError(nullptr);
  ASSERT_EQ(svBucketGetResidual(server, after.data()), svSuccess);
  EXPECT_TRUE(sameBits(state, after));
  EXPECT_TRUE(sameBits(o0, out0));
  EXPECT_TRUE(sameBits(o1, out1));
  for (svBucket_t b : {server, worker, differs}) EXPECT_EQ(svBucketDestroy(b), svSuccess);
  for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
}

// Pushes are not collective exchanges: a dense bucket of the same world still matches its
// ranks' calls afterwards, whatever the pushes did to each rank.
TEST(DgsAsync, CollectiveBucketsOfTheSameWorldKeepWorking) {
  std::mt19937_64 rng(testSeed() + 96);
  const size_t n = 50;
  World wd(3, asyncConfig(n, 5, 0.9f, 0));
  for (int step = 0; step < 3; ++step) ASSERT_EQ(push(wd, 1, normal(n, rng)), svSuccess);
  std::vector<svBucket_t> dense(3);
  const svBucketConfig_t dc = bucketConfig(SV_SCHEME_DENSE, n);
  std::vector<std::vector<float>> g(3), out(3, std::vector<float>(n));
  std::vector<std::vector<unsigned char>> ws(3);
  for (int r = 0; r < 3; ++r) {
    ASSERT_EQ(svBucketCreate(&dense[r], wd.comms[r], &dc), svSuccess);
    size_t bytes = 0;
    svExchange(dense[r], nullptr, nullptr, nullptr, &bytes, nullptr);
    ws[r].resize(bytes);
    g[r] = normal(n, rng);
  }
  svGroupStart();
  for (int r = 0; r < 3; ++r) {
    size_t bytes = ws[r].size();
    svExchange(dense[r], g[r].data(), out[r].data(), ws[r].data(), &bytes, nullptr);
  }
  EXPECT_EQ(svGroupEnd(), svSuccess) << svGetLastError(nullptr);
  for (size_t i = 0; i < n; ++i)
    EXPECT_EQ(out[2][i], (g[0][i] + g[1][i] + g[2][i]) / 3.0f);
  for (int r = 0; r < 3; ++r) EXPECT_EQ(wd.seq(r), 1u);
  for (svBucket_t b : dense) EXPECT_EQ(svBucketDestroy(b), svSuccess);
}

TEST(DgsAsync, ConfigChecks) {
  std::vector<svComm_t> one(1), two(2);
  ASSERT_EQ(svCommInitLoopback(one.data(), 1, nullptr), svSuccess);
  ASSERT_EQ(svCommInitLoopback(two.data(), 2, nullptr), svSuccess);
  svBucket_t b = nullptr;
  const svBucketConfig_t good = asyncConfig(100, 10, 0.9f, 0);
  EXPECT_EQ(svBucketCreate(&b, one[0], &good), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(one[0]), "needs a server and a worker"));
  svBucketConfig_t c = good;
  c.momentum = 0.0f;
  EXPECT_EQ(svBucketCreate(&b, two[0], &c), svInvalidArgument);
  c = good;
  c.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
  c.kMin = 1;
  EXPECT_EQ(svBucketCreate(&b, two[0], &c), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(two[0]), "takes neither adaptiveK"));
  c = good;
  c.format = SV_FORMAT_SPARSE;
  EXPECT_EQ(svBucketCreate(&b, two[0], &c), svInvalidArgument);
  c = good;
  c.downK = 101;
  EXPECT_EQ(svBucketCreate(&b, two[0], &c), svInvalidArgument);
  EXPECT_EQ(b, nullptr);
  // The info: the server's state holds T and one v_k per rank; the wire model a push and
  // its reply.
  svBucket_t s = nullptr, w = nullptr;
  ASSERT_EQ(svBucketCreate(&s, two[0], &good), svSuccess);
  ASSERT_EQ(svBucketCreate(&w, two[1], &good), svSuccess);
  svBucketInfo_t is{}, iw{};
  ASSERT_EQ(svBucketGetInfo(s, &is), svSuccess);
  ASSERT_EQ(svBucketGetInfo(w, &iw), svSuccess);
  EXPECT_EQ(is.stateFloats, 200u);
  EXPECT_EQ(iw.stateFloats, 100u);
  EXPECT_EQ(is.format, SV_FORMAT_SPARSE_VALUES);
  EXPECT_EQ(is.wireBytes, is.recordBytes + 64 + 50 * 8);
  EXPECT_EQ(is.lastPeer, -1);
  EXPECT_EQ(iw.lastPeer, 0);
  EXPECT_EQ(svBucketDestroy(s), svSuccess);
  EXPECT_EQ(svBucketDestroy(w), svSuccess);
  for (svComm_t x : {one[0], two[0], two[1]}) EXPECT_EQ(svCommDestroy(x), svSuccess);
}

}  // namespace
