// NCCL's failures through lib/transport/nccl.cc (docs/faults.md, row 18), injected into the
// emulated NCCL (emu.h: svemu::ncclFailCall, ncclReturnInProgress, ncclSetAsyncError) between
// forked ranks: a failed call, a peer that aborts, a non-blocking communicator's
// ncclInProgress, settled or not, an asynchronous error, and a device fault that a host wait
// meets (svemu::failQueries). Real NCCL and CUDA cannot be made to fail on cue, so these run on
// the emulated device only.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <thread>

#include "emu.h"
#include "process/nccl_ranks.h"
#include "process/script.h"

namespace {

using namespace svtest;

// One s3gd_mv bucket of a rank, with its buffers on the device.
struct Step {
  static constexpr size_t n = 1000;
  Buffers mem{true};
  svBucket_t b = nullptr;
  void* ws = nullptr;
  size_t bytes = 0;
  std::mt19937_64 rng;

  Step(svComm_t comm, uint64_t seed) : rng(seed) {
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
    cfg.k = 30;
    svBucketCreate(&b, comm, &cfg);
    svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
    ws = mem.get(bytes);
  }
  ~Step() { svBucketDestroy(b); }
  // One exchange of fresh gradients into `out` (7.0f before it).
  svResult_t exchange(float** out) {
    float* g = mem.floats(grads(1, n, rng)[0]);
    *out = mem.floats(std::vector<float>(n, 7.0f));
    size_t size = bytes;
    return svExchange(b, g, *out, ws, &size, mem.stream());
  }
  std::vector<float> residual() {
    std::vector<float> r(n);
    svBucketGetResidual(b, r.data());
    return r;
  }
  bool untouched(const float* out) {
    const std::vector<float> v = mem.read(out, n);
    return std::all_of(v.begin(), v.end(), [](float x) { return x == 7.0f; });
  }
  // A healthy exchange first (its result and whether it left the output alone), then the
  // residual that the failing one must keep.
  void healthy(Report& rep) {
    float* out = nullptr;
    rep.put(static_cast<int>(exchange(&out)));
    rep.put(static_cast<int>(untouched(out)));
    before = residual();
  }
  // After the failing exchange into `out`: whether it had an effect, and the sequence.
  void effects(Report& rep, svComm_t comm, const float* out) {
    rep.put(static_cast<int>(untouched(out)));
    rep.put(static_cast<int>(sameBits(residual(), before)));
    uint64_t seq = 99;
    svCommGetSequence(comm, &seq);
    rep.put(seq);
  }
  std::vector<float> before;
};

// The results a fault case saw: each call's code and the communicator's last error text then.
struct Result {
  int code;
  std::string text;
};
using Seen = std::vector<Result>;
void note(Seen& seen, svResult_t code, svComm_t comm) {
  seen.push_back({static_cast<int>(code), svGetLastError(comm)});
}

// Two ranks over the emulated NCCL: a healthy exchange, then `fault`, which notes what it saw
// and leaves its failing exchange's output in *out; then the rank aborts its ncclComm_t and
// reports the failing exchange's effects, and destroys its bucket and communicator. Each rank
// must have exited cleanly, seen the healthy exchange, kept its output and residual, counted
// seq(rank) exchanges, and got back from svCommDestroy every allocation, stream and event that
// svCommInitFromNccl and the exchanges took (a transport that gave up waiting keeps its
// buffers only while its work may still wait for a peer, which the abort ended); `expect`
// checks what it saw.
void runFault(const svConfig_t& config,
              const std::function<void(const Ranks::Child&, Step&, Seen&, float**)>& fault,
              const std::function<uint64_t(int)>& seq,
              const std::function<void(int, const Seen&)>& expect) {
  svemu::Live before;  // in each child: what the runtime held before svCommInitFromNccl
  Ranks ranks(2, config, [&](const Ranks::Child& ch) {
    Report rep;
    {
      Step st(ch.comm, 11 + ch.rank);
      st.healthy(rep);
      float* out = nullptr;
      Seen seen;
      fault(ch, st, seen, &out);
      rep.put(static_cast<uint64_t>(seen.size()));
      for (const Result& r : seen) {
        rep.put(r.code);
        rep.put(r.text);
      }
      ncclCommAbort(borrowedNccl());
      st.effects(rep, ch.comm, out);
    }
    rep.put(static_cast<int>(svCommDestroy(ch.comm)));  // Ranks's own destroy is refused then
    rep.put(static_cast<int>(svemu::live() == before));
    return rep.bytes;
  }, {}, [&](int rank, int W, const std::string& store, const svConfig_t& c, svComm_t* comm,
             std::string* why) {
    if (const svResult_t j = ncclJoin(rank, W, store, &borrowedNccl(), why); j != svSuccess)
      return j;
    before = svemu::live();
    return ncclBorrow(c, comm, why);
  });
  const auto results = ranks.join(120);
  for (int r = 0; r < 2; ++r) {
    SCOPED_TRACE("rank " + std::to_string(r));
    ASSERT_TRUE(results[r].exited && results[r].status == 0) << results[r].report;
    Reader in{results[r].report};
    EXPECT_EQ(in.get<int>(), svSuccess);
    EXPECT_EQ(in.get<int>(), 0) << "the healthy exchange wrote no output";
    Seen seen(in.get<uint64_t>());
    for (Result& s : seen) {
      s.code = in.get<int>();
      s.text = in.text();
    }
    expect(r, seen);
    EXPECT_EQ(in.get<int>(), 1) << "the failed exchange wrote its output";
    EXPECT_EQ(in.get<int>(), 1) << "the failed exchange changed the residual";
    EXPECT_EQ(in.get<uint64_t>(), seq(r)) << "sequence numbers";
    EXPECT_EQ(in.get<int>(), svSuccess) << "svCommDestroy";
    EXPECT_EQ(in.get<int>(), 1) << "svCommDestroy left allocations, streams or events behind";
  }
}

// Whether `path` exists within `seconds`: one rank's word to another across the fork.
bool awaitFile(const std::string& path, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (access(path.c_str(), F_OK) != 0) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return true;
}

// The first code other than svSuccess that svCommGetAsyncError reports within `seconds`.
svResult_t awaitAsyncError(svComm_t comm, double seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  svResult_t code = svSuccess;
  while (svCommGetAsyncError(comm, &code) == svSuccess && code == svSuccess &&
         std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return code;
}

// Rank 1's ncclAllGather fails in the second exchange: that rank gets NCCL's code mapped, the
// call named, its communicator broken, output, residual and sequence untouched, and it aborts
// its ncclComm_t as docs/faults.md asks, once rank 0's exchange was enqueued (svSuccess; it
// waits for rank 1). When rank 1 aborts at once, rank 0 learns it from svCommGetAsyncError (NCCL's
// remote error; the emulated NCCL ends the wait then), and its next exchange fails at its
// first NCCL call, which returns that error (NCCL's enqueue check), with no effect and the
// communicator broken. When rank 1 stays silent for longer
// than the timeout, rank 0's svCommGetTimes, which waits for the timed calls, gives up after
// timeoutMs (svTimeout) instead of hanging, and rank 0's own abort ends the wait. Either way
// the device refuses what never came: rank 0's output and residual stay.
TEST(NcclFault, FailedCallBreaksThatRankAndThePeerNeitherHangsNorCommits) {
  for (const bool silent : {false, true}) {
    SCOPED_TRACE(silent ? "rank 1 silent for 8 s" : "rank 1 aborts at once");
    svConfig_t config = ncclConfig(SV_CHECK_NONE);
    config.timing = SV_TIMING_ON;
    config.timeoutMs = 3000;
    char dir[] = "/tmp/signvote-fault-XXXXXX";
    ASSERT_NE(mkdtemp(dir), nullptr);
    const std::string enqueued = std::string(dir) + "/rank0-enqueued";
    runFault(config, [&](const Ranks::Child& ch, Step& st, Seen& seen, float** out) {
      if (ch.rank == 1) svemu::ncclFailCall("ncclAllGather", 1, ncclSystemError);
      note(seen, st.exchange(out), ch.comm);
      if (ch.rank == 0) std::fclose(std::fopen(enqueued.c_str(), "w"));
      float* again = nullptr;
      if (ch.rank == 1) {
        note(seen, st.exchange(&again), ch.comm);
        // Not before rank 0's exchange is enqueued: NCCL refuses calls after a peer's abort.
        if (!awaitFile(enqueued, 30)) seen.push_back({-1, "rank 0 never enqueued"});
        if (silent) std::this_thread::sleep_for(std::chrono::seconds(8));
      } else if (silent) {
        svCommTimes_t times{};
        note(seen, svCommGetTimes(ch.comm, &times), ch.comm);
      } else {
        note(seen, awaitAsyncError(ch.comm, 30), ch.comm);
        note(seen, st.exchange(&again), ch.comm);
        seen.push_back({st.untouched(again) ? 1 : 0, "the next exchange kept its output"});
      }
    }, [](int r) { return r == 1 ? 1 : 2; },  // rank 0's exchange was enqueued
    [&](int r, const Seen& seen) {
      ASSERT_EQ(seen.size(), r == 0 && !silent ? 4u : 2u);
      if (r == 1) {
        EXPECT_EQ(seen[0].code, svSystemError) << seen[0].text;
        EXPECT_NE(seen[0].text.find("ncclAllGather"), std::string::npos) << seen[0].text;
        EXPECT_NE(seen[0].text.find("broken"), std::string::npos) << seen[0].text;
        EXPECT_EQ(seen[1].code, svSystemError) << "the broken communicator took another exchange";
        EXPECT_NE(seen[1].text.find("the communicator is broken"), std::string::npos)
            << seen[1].text;
        return;
      }
      EXPECT_EQ(seen[0].code, svSuccess) << "enqueued, as NCCL enqueues: " << seen[0].text;
      EXPECT_EQ(seen[1].code, silent ? svTimeout : svRemoteError) << seen[1].text;
      EXPECT_NE(seen[1].text.find(silent ? "timeoutMs = 3000" : "NCCL reports"),
                std::string::npos)
          << seen[1].text;
      if (silent) return;
      EXPECT_EQ(seen[2].code, svRemoteError) << seen[2].text;
      EXPECT_NE(seen[2].text.find("nccl"), std::string::npos) << seen[2].text;
      EXPECT_NE(seen[2].text.find("broken"), std::string::npos) << seen[2].text;
      EXPECT_EQ(seen[3].code, 1) << seen[3].text;
    });
    std::remove(enqueued.c_str());
    rmdir(dir);
  }
}

// A non-blocking communicator answers ncclInProgress and settles later: every NCCL call of the
// handshake, the checks and the exchanges is waited out (ncclCommGetAsyncError says
// ncclInProgress three times after each), and the ranks get the loopback world's bits.
TEST(NcclFault, InProgressIsWaitedOut) {
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  const int W = 2;
  std::vector<svComm_t> comms(W);
  ASSERT_EQ(svCommInitLoopback(comms.data(), W, nullptr), svSuccess);
  const std::vector<Report> expect = script(comms, seed);
  for (svComm_t c : comms) ASSERT_EQ(svCommDestroy(c), svSuccess);
  for (svCheck_t check : {SV_CHECK_GLOBAL, SV_CHECK_NONE}) {
    SCOPED_TRACE("check = " + std::to_string(check));
    Ranks ranks(W, ncclConfig(check), [&](const Ranks::Child& ch) {
      return script({ch.comm}, seed, true)[0].bytes;
    }, {}, [](int rank, int w, const std::string& store, const svConfig_t& c, svComm_t* comm,
              std::string* why) {
      svemu::ncclReturnInProgress(3);
      return ncclInit(rank, w, store, c, comm, why);
    });
    expectSameReports(ranks.join(300), expect);
  }
}

// An ncclInProgress that never settles, and an asynchronous error NCCL reports: the exchange
// fails within config->timeoutMs (svTimeout) or at its first NCCL call, which returns the
// error (NCCL's code mapped), names what it waited for or called, breaks the communicator and
// has no effect; svCommGetAsyncError reports NCCL's error with its text.
TEST(NcclFault, UnsettledCallsAndAsyncErrorsBreakTheCommunicatorWithNoEffect) {
  for (const bool unsettled : {true, false}) {
    SCOPED_TRACE(unsettled ? "ncclInProgress for ever" : "ncclSystemError reported");
    svConfig_t config = ncclConfig(SV_CHECK_GLOBAL);
    config.timeoutMs = 3000;
    runFault(config, [&](const Ranks::Child& ch, Step& st, Seen& seen, float** out) {
      if (unsettled) svemu::ncclReturnInProgress(-1);
      else svemu::ncclSetAsyncError(ncclSystemError);
      svResult_t async = svSuccess;
      svCommGetAsyncError(ch.comm, &async);
      note(seen, async, ch.comm);
      note(seen, st.exchange(out), ch.comm);
    }, [](int) { return 1; },
    [&](int, const Seen& seen) {
      ASSERT_EQ(seen.size(), 2u);
      if (unsettled) {
        EXPECT_EQ(seen[0].code, svSuccess) << "ncclInProgress is not an error: " << seen[0].text;
        EXPECT_EQ(seen[1].code, svTimeout) << seen[1].text;
        EXPECT_NE(seen[1].text.find("timeoutMs = 3000"), std::string::npos) << seen[1].text;
      } else {
        EXPECT_EQ(seen[0].code, svSystemError) << seen[0].text;
        EXPECT_NE(seen[0].text.find("NCCL reports"), std::string::npos) << seen[0].text;
        EXPECT_EQ(seen[1].code, svSystemError) << seen[1].text;
        EXPECT_NE(seen[1].text.find("ncclAllGather"), std::string::npos) << seen[1].text;
      }
      EXPECT_NE(seen[1].text.find("broken"), std::string::npos) << seen[1].text;
    });
  }
}

// A kernel's fault (a sticky CUDA error, such as an illegal address) that a host wait meets:
// rank 0's device answers its queries with cudaErrorIllegalAddress during the second exchange,
// whose fingerprint allgather (SV_CHECK_GLOBAL) rank 0 waits for on the host. That exchange
// fails at once with CUDA's error named (svUnhandledCudaError), not after config->timeoutMs as
// if a peer were missing, breaks the communicator and has no effect. Rank 1's exchange was
// enqueued (the allgather completed) before rank 0 aborts its ncclComm_t, and its device
// refuses what rank 0 never sent. The test clears the error after the exchange to read rank
// 0's memory, which a GPU would not allow.
TEST(NcclFault, AFaultedDeviceIsReportedNotWaitedOut) {
  svConfig_t config = ncclConfig(SV_CHECK_GLOBAL);
  config.timeoutMs = 20000;
  char dir[] = "/tmp/signvote-fault-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  const std::string enqueued = std::string(dir) + "/rank1-enqueued";
  runFault(config, [&](const Ranks::Child& ch, Step& st, Seen& seen, float** out) {
    if (ch.rank == 0) svemu::failQueries(cudaErrorIllegalAddress);
    const auto start = std::chrono::steady_clock::now();
    note(seen, st.exchange(out), ch.comm);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::steady_clock::now() - start);
    svemu::failQueries(cudaSuccess);
    seen.push_back({ms.count() < 10000 ? 1 : 0, std::to_string(ms.count()) + " ms"});
    if (ch.rank == 1) std::fclose(std::fopen(enqueued.c_str(), "w"));
    else if (!awaitFile(enqueued, 30)) seen.push_back({-1, "rank 1 never enqueued"});
  }, [](int r) { return r == 0 ? 1 : 2; },
  [&](int r, const Seen& seen) {
    ASSERT_EQ(seen.size(), 2u);
    EXPECT_EQ(seen[1].code, 1) << "the exchange waited " << seen[1].text;
    if (r == 1) {
      EXPECT_EQ(seen[0].code, svSuccess) << "enqueued: " << seen[0].text;
      return;
    }
    EXPECT_EQ(seen[0].code, svUnhandledCudaError) << seen[0].text;
    EXPECT_NE(seen[0].text.find(cudaGetErrorString(cudaErrorIllegalAddress)), std::string::npos)
        << seen[0].text;
    EXPECT_NE(seen[0].text.find("broken"), std::string::npos) << seen[0].text;
  });
  std::remove(enqueued.c_str());
  rmdir(dir);
}

}  // namespace
