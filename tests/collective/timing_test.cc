// svCommGetTimes on the host backend: timing is opt-in, counts exactly the transport calls each
// wire format makes (docs/formats.md), is part of the exchange's wall time, adds nothing for a
// refused call, and keeps its refusals without effect.
#include <chrono>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>

#include "world.h"

using namespace svtest;

namespace {

svConfig_t timedConfig() {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  c.timing = SV_TIMING_ON;
  return c;
}

svCommTimes_t timesOf(svComm_t c) {
  svCommTimes_t t{};
  EXPECT_EQ(svCommGetTimes(c, &t), svSuccess) << svGetLastError(c);
  return t;
}

}  // namespace

TEST(Timing, OffUnlessAskedFor) {
  svComm_t comms[2] = {};
  ASSERT_EQ(svCommInitLoopback(comms, 2, nullptr), svSuccess);
  svCommTimes_t t{7, 7.0};
  EXPECT_EQ(svCommGetTimes(comms[1], &t), svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(comms[1]), "svCommGetTimes"));
  EXPECT_TRUE(mentions(svGetLastError(comms[1]), "timing off"));
  EXPECT_EQ(t.calls, 7u);
  EXPECT_EQ(t.transportUs, 7.0);
  for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
}

TEST(Timing, BadArgumentsAreRefused) {
  svConfig_t c = timedConfig();
  c.timing = static_cast<svTiming_t>(7);
  svComm_t comms[2] = {};
  EXPECT_EQ(svCommInitLoopback(comms, 2, &c), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->timing = 7"));
  EXPECT_EQ(comms[0], nullptr);
  c = timedConfig();
  ASSERT_EQ(svCommInitLoopback(comms, 2, &c), svSuccess);
  EXPECT_EQ(svCommGetTimes(comms[0], nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(comms[0]), "times = NULL"));
  svCommTimes_t t{};
  EXPECT_EQ(svCommGetTimes(reinterpret_cast<svComm_t>(&t), &t), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "not a live communicator"));
  for (svComm_t comm : comms) EXPECT_EQ(svCommDestroy(comm), svSuccess);
}

TEST(Timing, TheEnvironmentTurnsItOn) {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  svComm_t comm = nullptr;
  setenv("SIGNVOTE_TIMING", "yes", 1);
  EXPECT_EQ(svCommInitLoopback(&comm, 1, &c), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "SIGNVOTE_TIMING = \"yes\""));
  setenv("SIGNVOTE_TIMING", "1", 1);
  ASSERT_EQ(svCommInitLoopback(&comm, 1, &c), svSuccess);
  svCommTimes_t t{7, 7.0};
  EXPECT_EQ(svCommGetTimes(comm, &t), svSuccess) << svGetLastError(comm);
  EXPECT_EQ(t.calls, 0u);
  EXPECT_EQ(t.transportUs, 0.0);
  EXPECT_EQ(svCommDestroy(comm), svSuccess);
  c.timing = SV_TIMING_OFF;  // the config wins over the environment
  ASSERT_EQ(svCommInitLoopback(&comm, 1, &c), svSuccess);
  EXPECT_EQ(svCommGetTimes(comm, &t), svInvalidUsage);
  EXPECT_EQ(svCommDestroy(comm), svSuccess);
  unsetenv("SIGNVOTE_TIMING");
}

// Each format's exchange makes a fixed sequence of transport calls (docs/formats.md); the
// ranks of the world share it; a refused exchange adds none; the time is within the wall
// time around the exchanges.
TEST(Timing, CountsEveryCallOfEachFormat) {
  std::mt19937_64 rng(testSeed() + 1301);
  const size_t n = 3001;
  struct Case {
    svBucketConfig_t cfg;
    uint64_t calls;  // per exchange
  };
  auto with = [&](svScheme_t scheme, svFormat_t format, auto&& edit) {
    svBucketConfig_t c = bucketConfig(scheme, n);
    c.format = format;
    edit(c);
    return c;
  };
  const Case cases[] = {
      // the records' allgather
      {with(SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, [](auto& c) { c.density = 0.01; }), 1},
      // the headers' allgather, the planes' all-to-all, the result planes' allgather
      {with(SV_SCHEME_S3GD_MV, SV_FORMAT_SIGNS, [](auto& c) { c.density = 0.2; }), 3},
      // the headers' allgather, the float32 allreduce
      {with(SV_SCHEME_DENSE, SV_FORMAT_AUTO, [](auto&) {}), 2},
      // adaptive K adds the one-float allreduce of the norms
      {with(SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE,
            [](auto& c) {
              c.density = 0.01;
              c.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
              c.kMin = 1;
            }),
       2},
  };
  for (const Case& tc : cases) {
    SCOPED_TRACE(std::string("scheme ") + std::to_string(tc.cfg.scheme) + " format " +
                 std::to_string(tc.cfg.format));
    const svConfig_t config = timedConfig();
    World w(3, tc.cfg, &config);
    const auto g = grads(3, n, rng);
    const auto t0 = std::chrono::steady_clock::now();
    for (int step = 0; step < 4; ++step) ASSERT_EQ(w.exchange(g), svSuccess);
    const double wallUs =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    for (int r = 0; r < 3; ++r) {
      const svCommTimes_t t = timesOf(w.comms[r]);
      EXPECT_EQ(t.calls, 4 * tc.calls) << "rank " << r;
      EXPECT_GT(t.transportUs, 0.0);
      EXPECT_LE(t.transportUs, wallUs);
    }
    // A refused exchange (rank 2 passes a NULL output) adds nothing.
    const svCommTimes_t before = timesOf(w.comms[0]);
    svGroupStart();
    for (int r = 0; r < 3; ++r) {
      size_t bytes = w.ws[r].size();
      svExchange(w.buckets[r], g[r].data(), r == 2 ? nullptr : w.out[r].data(), w.ws[r].data(),
                 &bytes, nullptr);
    }
    EXPECT_EQ(svGroupEnd(), svInvalidArgument);
    const svCommTimes_t after = timesOf(w.comms[0]);
    EXPECT_EQ(after.calls, before.calls);
    EXPECT_EQ(after.transportUs, before.transportUs);
  }
}

// Timing changes no bit of any scheme's output or state.
TEST(Timing, ChangesNoBit) {
  const size_t n = 777;
  for (const svBucketConfig_t& cfg : schemeCases(n)) {
    SCOPED_TRACE(std::to_string(cfg.scheme));
    std::mt19937_64 rng(testSeed() + 1302);
    const svConfig_t config = timedConfig();
    World timed(4, cfg, &config), plain(4, cfg);
    for (int step = 0; step < 3; ++step) {
      const auto g = grads(4, n, rng);
      ASSERT_EQ(timed.exchange(g), svSuccess) << svGetLastError(nullptr);
      ASSERT_EQ(plain.exchange(g), svSuccess);
      const World::Snapshot a = timed.snapshot(), b = plain.snapshot();
      for (int r = 0; r < 4; ++r) {
        EXPECT_TRUE(sameBits(a.out[r], b.out[r])) << "rank " << r;
        EXPECT_TRUE(sameBits(a.res[r], b.res[r])) << "rank " << r;
      }
    }
    EXPECT_GT(timesOf(timed.comms[0]).calls, 0u);
  }
}

// The query holds the communicator: refused while another thread's open group uses it.
TEST(Timing, RefusedWhileAnotherThreadHoldsTheComm) {
  std::mt19937_64 rng(testSeed() + 1303);
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 100);
  cfg.k = 5;
  const svConfig_t config = timedConfig();
  World w(2, cfg, &config);
  const auto g = grads(2, 100, rng);
  ASSERT_EQ(svGroupStart(), svSuccess);
  size_t bytes = w.ws[0].size();
  ASSERT_EQ(svExchange(w.buckets[0], g[0].data(), w.out[0].data(), w.ws[0].data(), &bytes,
                       nullptr), svSuccess);
  svResult_t r = svSuccess;
  std::string text;
  svCommTimes_t t{7, 7.0};
  std::thread([&] {
    r = svCommGetTimes(w.comms[0], &t);
    text = svGetLastError(nullptr);
  }).join();
  EXPECT_EQ(r, svInvalidUsage);
  EXPECT_TRUE(mentions(text, "svCommGetTimes"));
  EXPECT_TRUE(mentions(text, "in use by another thread"));
  EXPECT_EQ(t.calls, 7u);
  EXPECT_EQ(svCommGetTimes(w.comms[0], &t), svSuccess);  // the owning thread may ask
  EXPECT_EQ(t.calls, 0u);
  bytes = w.ws[1].size();
  ASSERT_EQ(svExchange(w.buckets[1], g[1].data(), w.out[1].data(), w.ws[1].data(), &bytes,
                       nullptr), svSuccess);
  ASSERT_EQ(svGroupEnd(), svSuccess);
  EXPECT_EQ(timesOf(w.comms[1]).calls, 1u);
}
