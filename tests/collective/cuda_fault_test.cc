// Faults injected into SV_BACKEND_CUDA exchanges through a device transport that wraps the
// loopback one (the device twin of fault_test.cc): bytes a faulty sender put on the wire, or
// that one owner received, end in svCorruptInput on every rank through the device verdict,
// with outputs and states untouched; a failing collective breaks every communicator at
// enqueue. GPU only.
#include <cuda_runtime_api.h>

#include <functional>

#include "cuda_world.h"
#include "handles.h"
#include "transport/device.h"

namespace {

using namespace svtest;
using signvote::detail::CudaRanks;
using signvote::detail::DeviceTransport;

// Runs the real collective, then lets `tamper` enqueue edits of what the ranks received on
// their streams (call index, collective name, ranks, receive buffers, bytes per block) or fail
// the call. A loopback rank's received bytes are written on its own stream, so an edit
// enqueued there lands after them.
class FaultDeviceTransport final : public DeviceTransport {
 public:
  using Tamper = std::function<svResult_t(int call, const char* what, const CudaRanks& r,
                                          const Recvs& recv, size_t bytes)>;
  FaultDeviceTransport(std::unique_ptr<DeviceTransport> inner, Tamper t)
      : inner_(std::move(inner)), tamper_(std::move(t)) {}
  svResult_t barrier(const CudaRanks& r) override { return inner_->barrier(r); }
  svResult_t allGather(const CudaRanks& r, const Sends& s, const Recvs& recv,
                       size_t bytes) override {
    return after(inner_->allGather(r, s, recv, bytes), "allGather", r, recv, bytes);
  }
  svResult_t allToAll(const CudaRanks& r, const Sends& s, const Recvs& recv,
                      size_t bytes) override {
    return after(inner_->allToAll(r, s, recv, bytes), "allToAll", r, recv, bytes);
  }
  svResult_t hostAllGather(cudaStream_t s, const void* mine, void* all, size_t bytes) override {
    return inner_->hostAllGather(s, mine, all, bytes);
  }
  svResult_t waitStream(cudaStream_t s) override { return inner_->waitStream(s); }
  svResult_t asyncError(std::string* why) override { return inner_->asyncError(why); }

 private:
  svResult_t after(svResult_t res, const char* what, const CudaRanks& r, const Recvs& recv,
                   size_t bytes) {
    if (res != svSuccess) return res;
    res = tamper_(calls_++, what, r, recv, bytes);
    if (res != svSuccess) error_ = std::string("injected failure in ") + what;
    return res;
  }
  std::unique_ptr<DeviceTransport> inner_;
  Tamper tamper_;
  int calls_ = 0;
};

void inject(CudaWorld& w, FaultDeviceTransport::Tamper t) {
  auto& slot = w.comms[0]->world->device;
  slot = std::make_unique<FaultDeviceTransport>(std::move(slot), std::move(t));
}

// Sets `len` bytes at recv[d] + offset to `value` on rank d's stream.
void setBytes(const CudaRanks& r, const DeviceTransport::Recvs& recv, size_t d, size_t offset,
              int value, size_t len) {
  ASSERT_EQ(cudaMemsetAsync(static_cast<char*>(recv[d]) + offset, value, len, r.streams[d]),
            cudaSuccess);
}

struct Result {
  std::vector<std::vector<float>> out, state;
};
Result snapshot(CudaWorld& w) {
  Result s;
  for (int r = 0; r < w.W; ++r) {
    s.out.push_back(w.output(r));
    s.state.push_back(w.residual(r));
  }
  return s;
}

// One warm-up exchange, then the tampered one (its nth `collective` call, counted from 1,
// `corrupt` edits): it is enqueued, every rank's device verdict is svCorruptInput, nothing
// changed, and later exchanges have no effect either.
void expectRefused(const svBucketConfig_t& cfg, int W, const char* collective,
                   const std::function<void(const CudaRanks&, const DeviceTransport::Recvs&,
                                            size_t)>& corrupt,
                   int nth = 1) {
  std::mt19937_64 rng(testSeed());
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  CudaWorld w(W, cfg, SV_NONFINITE_ERROR, false);
  w.upload(grads(W, cfg.count, rng));
  ASSERT_EQ(w.exchange(), svSuccess) << svGetLastError(w.comms[0]);
  for (int r = 0; r < W; ++r) ASSERT_EQ(w.asyncError(r), svSuccess);
  bool hit = false;
  int seen = 0;
  inject(w, [&](int, const char* what, const CudaRanks& r, const DeviceTransport::Recvs& recv,
                size_t bytes) {
    if (std::string(what) == collective && ++seen == nth) {
      corrupt(r, recv, bytes);
      hit = true;
    }
    return svSuccess;
  });
  const Result before = snapshot(w);
  w.upload(grads(W, cfg.count, rng));
  ASSERT_EQ(w.exchange(), svSuccess);  // enqueued; the device decides
  EXPECT_TRUE(hit);
  for (int r = 0; r < W; ++r) {
    EXPECT_EQ(w.asyncError(r), svCorruptInput) << "rank " << r;
    EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "the device rejected an exchange"));
  }
  const Result after = snapshot(w);
  for (int r = 0; r < W; ++r) {
    expectSameBits(after.out[r], before.out[r], "output");
    expectSameBits(after.state[r], before.state[r], "state");
  }
}

TEST(CudaFault, CorruptRecordOfOneSenderFailsEveryRank) {
  SV_REQUIRE_GPU();
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 4097);
  cfg.density = 0.01;
  cfg.format = SV_FORMAT_SPARSE;
  // Rank 1's record as every receiver got it: a payload word overwritten.
  expectRefused(cfg, 3, "allGather", [](const CudaRanks& r, const auto& recv, size_t bytes) {
    for (size_t d = 0; d < recv.size(); ++d) setBytes(r, recv, d, bytes + 64, 0xA5, 8);
  });
}

TEST(CudaFault, WrongSignOfASentValueFailsEveryRank) {
  SV_REQUIRE_GPU();
  for (svScheme_t scheme : {SV_SCHEME_TOPK_EF, SV_SCHEME_DGS}) {
    SCOPED_TRACE(scheme);
    svBucketConfig_t cfg = bucketConfig(scheme, 1000);
    cfg.k = 50;
    if (scheme == SV_SCHEME_DGS) cfg.momentum = 0.5f;
    // Rank 2's last sent value (K is even: the last 4 bytes of its record) as every receiver
    // got it: +0.0, which no sender sends.
    expectRefused(cfg, 3, "allGather", [](const CudaRanks& r, const auto& recv, size_t bytes) {
      for (size_t d = 0; d < recv.size(); ++d) setBytes(r, recv, d, 3 * bytes - 4, 0x00, 4);
    });
  }
}

TEST(CudaFault, MalformedSignPlanesAtOneOwnerFailEveryRank) {
  SV_REQUIRE_GPU();
  for (svScheme_t scheme : {SV_SCHEME_SIGNSGD_MV, SV_SCHEME_S3GD_MV}) {
    SCOPED_TRACE(scheme);
    svBucketConfig_t cfg = bucketConfig(scheme, 777);
    if (scheme == SV_SCHEME_S3GD_MV) {
      cfg.density = 0.3;
      cfg.format = SV_FORMAT_SIGNS;
    }
    // Sender 2's block at owner 0: the first nonzero word cleared under an all-ones negative
    // word. Only owner 0 sees it; the others learn it from its poisoned result.
    expectRefused(cfg, 4, "allToAll", [](const CudaRanks& r, const auto& recv, size_t bytes) {
      setBytes(r, recv, 0, 2 * bytes, 0x00, 8);
      setBytes(r, recv, 0, 2 * bytes + bytes / 2, 0xFF, 8);
    });
  }
}

TEST(CudaFault, OutOfRangeVoteCountAtOneOwnerFailsEveryRank) {
  SV_REQUIRE_GPU();
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  cfg.density = 0.3;
  cfg.format = SV_FORMAT_COUNTS;
  // Rank 2's int8 count of one coordinate as owner 1 received it: 127, beyond any sum of 3.
  expectRefused(cfg, 3, "allToAll", [](const CudaRanks& r, const auto& recv, size_t bytes) {
    setBytes(r, recv, 1, 2 * bytes + 5, 0x7F, 1);
  });
}

TEST(CudaFault, CorruptScaledSignsFailEveryRank) {
  SV_REQUIRE_GPU();
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_EF_SIGN, 3000);
  // Rank 0's scale word (the header's aux) with high bits: the header checksum no longer
  // matches either, so the header verdict reports it first.
  expectRefused(cfg, 3, "allGather", [](const CudaRanks& r, const auto& recv, size_t) {
    for (size_t d = 0; d < recv.size(); ++d) setBytes(r, recv, d, 52, 0xFF, 4);
  });
}

// The header is sound and only the payload is not: a word of rank 1's packed signs as every
// receiver got it. The record check's payload checksum (checkScaledRecords) must catch it.
TEST(CudaFault, CorruptScaledSignsPayloadFailsEveryRank) {
  SV_REQUIRE_GPU();
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_EF_SIGN, 3000);
  expectRefused(cfg, 3, "allGather", [](const CudaRanks& r, const auto& recv, size_t bytes) {
    for (size_t d = 0; d < recv.size(); ++d) setBytes(r, recv, d, bytes + 64 + 8, 0xA5, 8);
  });
}

// liec's chunk-signs messages (docs/formats.md): the scale word's high half, which must be
// zero. At owner 0, in sender 2's message (the all-to-all): the owner poisons its result and
// every receiver rejects it. In owner 1's result as every receiver got it (the allgather after
// the headers'): every receiver's check rejects it.
TEST(CudaFault, MalformedChunkSignsFailEveryRank) {
  SV_REQUIRE_GPU();
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_LIEC, 2000);
  {
    SCOPED_TRACE("at an owner");
    expectRefused(cfg, 3, "allToAll", [](const CudaRanks& r, const auto& recv, size_t bytes) {
      setBytes(r, recv, 0, 3 * bytes - 4, 0x01, 1);
    });
  }
  {
    SCOPED_TRACE("in an owner's result");
    expectRefused(cfg, 3, "allGather", [](const CudaRanks& r, const auto& recv, size_t bytes) {
      for (size_t d = 0; d < recv.size(); ++d) setBytes(r, recv, d, 2 * bytes - 4, 0x01, 1);
    }, 2);
  }
}

TEST(CudaFault, FailedCollectiveBreaksEveryCommunicatorAndKeepsTheState) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed());
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 500);
  cfg.k = 20;
  CudaWorld w(3, cfg, SV_NONFINITE_ERROR, false);
  w.upload(grads(3, cfg.count, rng));
  ASSERT_EQ(w.exchange(), svSuccess);
  const Result before = snapshot(w);
  inject(w, [](int, const char*, const CudaRanks&, const auto&, size_t) {
    return svRemoteError;
  });
  w.upload(grads(3, cfg.count, rng));
  EXPECT_EQ(w.exchange(), svRemoteError);
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "injected failure")) << r;
    expectSameBits(w.residual(r), before.state[r], "state");
  }
  EXPECT_NE(w.exchange(), svSuccess);  // broken: refused at once
}

}  // namespace
