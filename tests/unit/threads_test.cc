// Threads: different communicators on different threads at once, and a watchdog thread that
// polls and aborts a communicator another thread drives (NCCL's ncclCommGetAsyncError /
// ncclCommAbort pattern). The bits are checked here; the ThreadSanitizer lane of .ci/run
// checks that none of it races.
#include <atomic>
#include <set>
#include <thread>
#include <tuple>

#include "world.h"

using namespace svtest;

namespace {

// The outputs and states of `steps` exchanges of one scheme's world, concatenated.
std::vector<float> trace(const svBucketConfig_t& cfg, int W, int steps, uint64_t seed) {
  std::mt19937_64 rng(seed);
  World w(W, cfg);
  const bool stateful = w.info().stateFloats != 0;
  std::vector<float> t;
  for (int s = 0; s < steps; ++s) {
    EXPECT_EQ(w.exchange(grads(W, cfg.count, rng)), svSuccess) << svGetLastError(w.comms[0]);
    for (int r = 0; r < W; ++r) {
      t.insert(t.end(), w.out[r].begin(), w.out[r].end());
      if (stateful) {
        const std::vector<float> res = w.residual(r);
        t.insert(t.end(), res.begin(), res.end());
      }
    }
  }
  return t;
}

}  // namespace

// Every scheme's world on its own thread, all at once (creation and destruction included):
// each gives the bits of the same run made alone.
TEST(Threads, IndependentWorldsRunAtOnceAndGiveTheirOwnBits) {
  const int W = 3, steps = 6;
  const std::vector<svBucketConfig_t> cases = schemeCases(333);
  std::vector<std::vector<float>> together(cases.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < cases.size(); ++i)
    threads.emplace_back([&, i] { together[i] = trace(cases[i], W, steps, testSeed() + 200 + i); });
  for (std::thread& t : threads) t.join();
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<float> alone = trace(cases[i], W, steps, testSeed() + 200 + i);
    EXPECT_FALSE(alone.empty());
    EXPECT_TRUE(sameBits(together[i], alone)) << "case " << i << " (scheme " << cases[i].scheme
                                              << ")";
  }
}

// K_t and the bytes that follow it, as svBucketGetInfo reports the last exchange.
using Progress = std::tuple<size_t, size_t, uint64_t>;
Progress progressOf(svBucket_t b) {
  svBucketInfo_t i{};
  EXPECT_EQ(svBucketGetInfo(b, &i), svSuccess);
  return {i.lastK, i.lastRecordBytes, i.lastWireBytes};
}

// A watchdog thread polls svCommGetAsyncError, svCommGetSequence and svBucketGetInfo while
// this thread drives the world (adaptive K, so K_t and its bytes change), then aborts rank 1:
// every exchange before the abort took effect gives the twin world's bits, the first one after
// fails with svRemoteError and no effect, and every report the watchdog read is one the
// driving thread saw after an exchange (never K_t of one exchange with the bytes of another).
TEST(Threads, AWatchdogPollsAndAbortsAWorldInUse) {
  std::mt19937_64 rng(testSeed() + 210);
  const size_t n = 3000;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.density = 0.02;
  cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
  cfg.kMin = 1;
  World w(2, cfg), twin(2, cfg);
  std::atomic<bool> aborted{false}, ownerDone{false};
  std::string watchdogText;
  std::set<Progress> polled, driven{progressOf(w.buckets[0])};
  std::thread watchdog([&] {
    uint64_t last = 0;
    for (;;) {
      // Read before polling, so that the poll after the owner's last exchange still runs (the
      // owner may finish between the abort and the poll that sees it).
      const bool ownerWasDone = ownerDone.load();
      polled.insert(progressOf(w.buckets[0]));
      svResult_t async = svInternalError;
      uint64_t seq = 0;
      EXPECT_EQ(svCommGetAsyncError(w.comms[0], &async), svSuccess);
      EXPECT_EQ(svCommGetSequence(w.comms[0], &seq), svSuccess);
      EXPECT_GE(seq, last);
      last = seq;
      if (!aborted.load()) {
        EXPECT_EQ(async, svSuccess) << svGetLastError(w.comms[0]);
        if (seq >= 8) {
          EXPECT_EQ(svCommAbort(w.comms[1]), svSuccess);
          aborted.store(true);
        }
      } else if (async != svSuccess) {
        EXPECT_EQ(async, svRemoteError);
        watchdogText = svGetLastError(w.comms[0]);
        return;
      }
      if (ownerWasDone) return;
      std::this_thread::yield();
    }
  });
  bool failed = false;
  for (int step = 0; step < 100000 && !failed; ++step) {
    auto g = grads(2, n, rng);
    for (auto& v : g)
      for (float& x : v) x *= static_cast<float>(1 + step % 7);  // K_t follows the norm
    const World::Snapshot before = w.snapshot();
    const svResult_t r = w.exchange(g);
    if (r != svSuccess) {
      failed = true;
      EXPECT_EQ(r, svRemoteError);
      EXPECT_TRUE(aborted.load());
      EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "aborted by rank 1"));
      w.expectUnchanged(before);
      break;
    }
    driven.insert(progressOf(w.buckets[0]));
    ASSERT_EQ(twin.exchange(g), svSuccess);
    for (int q = 0; q < 2; ++q) {
      ASSERT_TRUE(sameBits(w.out[q], twin.out[q])) << "step " << step << ", rank " << q;
      ASSERT_TRUE(sameBits(w.residual(q), twin.residual(q))) << "step " << step << ", rank " << q;
    }
  }
  ownerDone.store(true);
  watchdog.join();
  EXPECT_TRUE(failed) << "the abort never reached the owner's exchanges";
  EXPECT_GE(w.seq(0), 8u);
  EXPECT_TRUE(mentions(watchdogText, "aborted by rank 1"));
  EXPECT_GE(driven.size(), 3u) << "K_t hardly changed";
  for (const Progress& p : polled)
    EXPECT_EQ(driven.count(p), 1u) << "K_t " << std::get<0>(p) << " with " << std::get<1>(p)
                                    << " record bytes and " << std::get<2>(p) << " wire bytes";
}
