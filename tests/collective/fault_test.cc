// Faults injected into a whole exchange through a transport that wraps the loopback one: a
// faulty sender's bytes (every receiver sees them) give svCorruptInput on every rank with no
// effect; a failing collective breaks every communicator with the state untouched.
#include "fault_transport.h"
#include "world.h"

namespace {

using namespace svtest;

void inject(World& w, FaultTransport::Tamper t) { injectFaults(w.comms[0], std::move(t)); }

// One warm-up exchange, then the tampered one: every rank gets `code`, nothing changes.
void expectRefused(svBucketConfig_t cfg, int W, const char* collective,
                   const std::function<void(const Transport::Recvs&, size_t)>& corrupt,
                   svResult_t code, const char* text) {
  std::mt19937_64 rng(testSeed());
  World w(W, cfg);
  ASSERT_EQ(w.exchange(grads(W, cfg.count, rng)), svSuccess);
  bool armed = true, hit = false;
  inject(w, [&](int, const char* what, const Transport::Recvs& recv, size_t bytes) {
    if (armed && std::string(what) == collective) {
      corrupt(recv, bytes);
      hit = true;
      armed = false;
    }
    return svSuccess;
  });
  const World::Snapshot before = w.snapshot();
  EXPECT_EQ(w.exchange(grads(W, cfg.count, rng)), code);
  EXPECT_TRUE(hit);
  for (int r = 0; r < W; ++r) EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), text)) << r;
  w.expectUnchanged(before);
  EXPECT_EQ(w.exchange(grads(W, cfg.count, rng)), svSuccess);  // corrupt input breaks nothing
}

TEST(Fault, OutOfRangeVoteCountAtOneOwnerFailsEveryRank) {
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  cfg.density = 0.3;
  cfg.format = SV_FORMAT_COUNTS;
  // Only owner 1 sees the bad count; the others learn it from its poisoned result.
  expectRefused(cfg, 3, "reduceScatterSum",
                [](const Transport::Recvs& recv, size_t) { static_cast<int8_t*>(recv[1])[5] = 4; },
                svCorruptInput, "a vote result message is malformed");
}

TEST(Fault, MalformedSignPlanesFromOneSenderFailEveryRank) {
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, 777);
  // Sender 2's negative plane has a bit its nonzero plane lacks, at owner 0 only.
  expectRefused(cfg, 4, "allToAll",
                [](const Transport::Recvs& recv, size_t bytes) {
                  auto* block = reinterpret_cast<uint64_t*>(static_cast<char*>(recv[0]) +
                                                            2 * bytes);
                  const size_t words = bytes / 16;
                  block[0] &= ~uint64_t{1};
                  block[words] |= 1;
                },
                svCorruptInput, "a vote result message is malformed");
}

TEST(Fault, MalformedChunkSignsFailEveryRank) {
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_LIEC, 1000);
  expectRefused(cfg, 3, "allToAll",
                [](const Transport::Recvs& recv, size_t bytes) {
                  // The scale word of sender 0's message to owner 2: its sign bit set.
                  auto* msg = reinterpret_cast<uint64_t*>(static_cast<char*>(recv[2]));
                  msg[bytes / 8 - 1] |= uint64_t{1} << 31;
                },
                svCorruptInput, "a vote result message is malformed");
}

TEST(Fault, CorruptRecordOfOneSenderFailsEveryRank) {
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 4097);
  cfg.density = 0.01;
  cfg.format = SV_FORMAT_SPARSE;
  // A faulty sender: rank 1's record as every receiver got it has a flipped payload bit.
  expectRefused(cfg, 3, "allGather",
                [](const Transport::Recvs& recv, size_t bytes) {
                  for (void* r : recv) static_cast<char*>(r)[bytes + 64 + 3] ^= 0x10;
                },
                svCorruptInput, "the record from rank 1");
}

TEST(Fault, FailedCollectiveBreaksEveryCommunicatorAndKeepsTheState) {
  for (svScheme_t scheme : {SV_SCHEME_S3GD_MV, SV_SCHEME_LIEC, SV_SCHEME_DENSE}) {
    SCOPED_TRACE(scheme);
    std::mt19937_64 rng(testSeed());
    svBucketConfig_t cfg = bucketConfig(scheme, 500);
    if (scheme == SV_SCHEME_S3GD_MV) cfg.k = 20;
    World w(3, cfg);
    ASSERT_EQ(w.exchange(grads(3, cfg.count, rng)), svSuccess);
    // liec: the second collective (after the owners' step); the others have one.
    inject(w, [&](int call, const char*, const Transport::Recvs&, size_t) {
      return call == (scheme == SV_SCHEME_LIEC ? 1 : 0) ? svRemoteError : svSuccess;
    });
    const World::Snapshot before = w.snapshot();
    EXPECT_EQ(w.exchange(grads(3, cfg.count, rng)), svRemoteError);
    for (int r = 0; r < 3; ++r) {
      EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "injected failure"));
      EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "the communicator is broken"));
      svResult_t async = svSuccess;
      EXPECT_EQ(svCommGetAsyncError(w.comms[r], &async), svSuccess);
      EXPECT_EQ(async, svRemoteError);
    }
    w.expectUnchanged(before);
    EXPECT_EQ(w.exchange(grads(3, cfg.count, rng)), svRemoteError);  // sticky
    EXPECT_TRUE(mentions(svGetLastError(w.comms[1]), "injected failure"));
    w.expectUnchanged(before);
  }
}

}  // namespace
