// The NCCL transport with real processes sharing this machine's one GPU (nccl_ranks.h). A
// correctness run, not a speed run: every rank's output and state must be the bits of a
// loopback world of the host backend.
#include <chrono>
#include <thread>

#include "nccl_ranks.h"
#include "script.h"

namespace {

using namespace svtest;

TEST(Nccl, EveryCudaSchemeGivesTheLoopbackBits) {
  SV_REQUIRE_GPU_IF(gpuInAChild());
  const uint64_t seed = testSeed();
  SCOPED_TRACE("SIGNVOTE_TEST_SEED=" + std::to_string(seed));
  for (int W : {1, 2, 3}) {
    for (svCheck_t check : {SV_CHECK_GLOBAL, SV_CHECK_NONE}) {
      SCOPED_TRACE("W = " + std::to_string(W) + ", check = " + std::to_string(check));
      std::vector<svComm_t> comms(W);
      ASSERT_EQ(svCommInitLoopback(comms.data(), W, nullptr), svSuccess);
      const std::vector<Report> expect = script(comms, seed);
      for (svComm_t c : comms) ASSERT_EQ(svCommDestroy(c), svSuccess);

      // Unchecked worlds also run behind the timing decorator, which must change no bit.
      svConfig_t config = ncclConfig(check);
      config.timing = check == SV_CHECK_NONE ? SV_TIMING_ON : SV_TIMING_OFF;
      Ranks ranks(W, config, [&](const Ranks::Child& ch) {
        return script({ch.comm}, seed, true)[0].bytes;
      }, {}, ncclInit);
      expectSameReports(ranks.join(300), expect);
    }
  }
}

// Ranks that call with different counts: with SV_CHECK_GLOBAL every rank gets svMismatch
// naming the field, nothing is enqueued (output, residual and sequence untouched), and the
// next agreeing exchange works.
TEST(Nccl, MismatchedCallsFailOnEveryRankWithNoEffect) {
  SV_REQUIRE_GPU_IF(gpuInAChild());
  const int W = 3;
  Ranks ranks(W, ncclConfig(SV_CHECK_GLOBAL), [&](const Ranks::Child& ch) {
    Report rep;
    const size_t n = ch.rank == 1 ? 301 : 300;
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
    cfg.k = 30;
    Buffers mem(true);
    std::mt19937_64 rng(ch.rank + 1);
    float* g = mem.floats(normal(n, rng));
    float* out = mem.floats(std::vector<float>(n, 7.0f));
    svBucket_t b = nullptr;
    rep.put(static_cast<int>(svBucketCreate(&b, ch.comm, &cfg)));
    size_t bytes = 0;
    svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
    void* ws = mem.get(bytes);
    rep.put(static_cast<int>(svExchange(b, g, out, ws, &bytes, mem.stream())));
    rep.put(std::string(svGetLastError(ch.comm)));
    const std::vector<float> after = mem.read(out, n);
    std::vector<float> residual(n);
    svBucketGetResidual(b, residual.data());
    uint64_t seq = 99;
    svCommGetSequence(ch.comm, &seq);
    rep.put(static_cast<int>(std::all_of(after.begin(), after.end(),
                                         [](float v) { return v == 7.0f; }) &&
                             std::all_of(residual.begin(), residual.end(),
                                         [](float v) { return v == 0.0f; }) &&
                             seq == 0));
    svBucketDestroy(b);
    // The agreeing exchange afterwards.
    cfg.count = 300;
    svBucketCreate(&b, ch.comm, &cfg);
    rep.put(static_cast<int>(svExchange(b, g, out, ws, &bytes, mem.stream())));
    svResult_t async = svInternalError;
    mem.read(out, 300);
    svCommGetAsyncError(ch.comm, &async);
    rep.put(static_cast<int>(async));
    svBucketDestroy(b);
    return rep.bytes;
  }, {}, ncclInit);
  const auto results = ranks.join(120);
  for (int r = 0; r < W; ++r) {
    ASSERT_TRUE(results[r].exited && results[r].status == 0) << "rank " << r << ": "
                                                             << results[r].report;
    Reader in{results[r].report};
    EXPECT_EQ(in.get<int>(), svSuccess);
    EXPECT_EQ(in.get<int>(), svMismatch) << "rank " << r;
    const std::string text = in.text();
    EXPECT_NE(text.find("rank 1"), std::string::npos) << text;
    EXPECT_NE(text.find("count"), std::string::npos) << text;
    EXPECT_EQ(in.get<int>(), 1) << "rank " << r << ": the refused exchange had an effect";
    EXPECT_EQ(in.get<int>(), svSuccess) << "rank " << r;
    EXPECT_EQ(in.get<int>(), svSuccess) << "rank " << r;
  }
}

// A step captured in a CUDA graph and replayed gives, replay after replay, the bits of the same
// steps enqueued directly (the residual carried in place); under SV_CHECK_GLOBAL the capture
// is refused with no effect, since that check waits on the host.
TEST(Nccl, GraphReplayGivesTheSameBits) {
  SV_REQUIRE_GPU_IF(gpuInAChild());
  const uint64_t seed = testSeed();
  for (svCheck_t check : {SV_CHECK_NONE, SV_CHECK_GLOBAL}) {
    Ranks ranks(2, ncclConfig(check), [&](const Ranks::Child& ch) {
      Report rep;
      const size_t n = 1000;
      const int steps = 3;
      svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
      cfg.density = 0.05;
      Buffers mem(true);
      std::mt19937_64 rng(seed + ch.rank);
      std::vector<std::vector<float>> g;
      for (int s = 0; s < steps; ++s) g.push_back(grads(1, n, rng)[0]);
      float* in = mem.floats(g[0]);
      auto run = [&](bool graph) {
        float* out = mem.floats(std::vector<float>(n, 7.0f));  // fresh: "untouched" below
        std::vector<float> outs;
        svBucket_t b = nullptr;
        svBucketCreate(&b, ch.comm, &cfg);
        size_t bytes = 0;
        svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr);
        void* ws = mem.get(bytes);
        cudaStream_t s = reinterpret_cast<cudaStream_t>(mem.stream());
        cudaGraphExec_t exec = nullptr;
        int captured = -1;
        if (graph) {
          cudaGraph_t gr = nullptr;
          cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal);
          captured = svExchange(b, in, out, ws, &bytes, mem.stream());
          cudaStreamEndCapture(s, &gr);
          if (captured == svSuccess && gr != nullptr) cudaGraphInstantiate(&exec, gr, 0);
          if (gr != nullptr) cudaGraphDestroy(gr);
          rep.put(captured);
        }
        for (int step = 0; step < steps; ++step) {
          cudaMemcpyAsync(in, g[step].data(), n * 4, cudaMemcpyHostToDevice, s);
          if (exec != nullptr) cudaGraphLaunch(exec, s);
          else if (!graph) svExchange(b, in, out, ws, &bytes, mem.stream());
          const std::vector<float> o = mem.read(out, n);
          outs.insert(outs.end(), o.begin(), o.end());
        }
        std::vector<float> residual(n);
        svBucketGetResidual(b, residual.data());
        outs.insert(outs.end(), residual.begin(), residual.end());
        if (exec != nullptr) cudaGraphExecDestroy(exec);
        svBucketDestroy(b);
        return outs;
      };
      const std::vector<float> direct = run(false);
      const std::vector<float> replayed = run(true);
      rep.put(static_cast<int>(sameBits(direct, replayed)));
      rep.put(static_cast<int>(std::all_of(replayed.begin(), replayed.begin() + n,
                                           [](float v) { return v == 7.0f; })));
      return rep.bytes;
    }, {}, ncclInit);
    const auto results = ranks.join(120);
    for (int r = 0; r < 2; ++r) {
      ASSERT_TRUE(results[r].exited && results[r].status == 0) << results[r].report;
      Reader in{results[r].report};
      const int captured = in.get<int>();
      const int same = in.get<int>();
      const int untouched = in.get<int>();
      if (check == SV_CHECK_NONE) {
        EXPECT_EQ(captured, svSuccess) << "rank " << r;
        EXPECT_EQ(same, 1) << "rank " << r << ": replays differ from direct exchanges";
      } else {
        EXPECT_EQ(captured, svInvalidUsage) << "rank " << r;
        EXPECT_EQ(untouched, 1) << "rank " << r << ": the refused capture wrote the output";
      }
    }
  }
}

// A rank that joins NCCL but never calls svCommInitFromNccl: the other's creation handshake
// gives up after config->timeoutMs and says so, long before the missing rank leaves (it waits
// through pinned host memory, where a copy into pageable memory would block until the peer
// came). NCCL connects its blocking communicators at init here (NCCL_RUNTIME_CONNECT=0): with
// its default lazy connection, the first collective's call itself would wait for the peer,
// inside NCCL, where no signvote timeout can act (docs/faults.md, row 18).
TEST(Nccl, CreationTimesOutWithoutAPeer) {
  SV_REQUIRE_GPU_IF(gpuInAChild());
  svConfig_t config = ncclConfig(SV_CHECK_GLOBAL);
  config.timeoutMs = 3000;
  const int stayOutMs = 12000;
  Ranks ranks(2, config, [](const Ranks::Child&) { return std::string(); }, {},
              [&](int rank, int W, const std::string& store, const svConfig_t& c,
                  svComm_t* comm, std::string* why) {
                setenv("NCCL_RUNTIME_CONNECT", "0", 1);
                if (rank == 0) {
                  const int64_t start = monotonicNs();
                  const svResult_t r = ncclInit(rank, W, store, c, comm, why);
                  *why += "|" + std::to_string((monotonicNs() - start) / 1000000);
                  return r;
                }
                ncclComm_t nccl = nullptr;
                if (const svResult_t j = ncclJoin(rank, W, store, &nccl, why); j != svSuccess)
                  return j;
                std::this_thread::sleep_for(std::chrono::milliseconds(stayOutMs));
                *why = "rank 1 stayed out";
                return svInternalError;
              });
  const auto results = ranks.join(60);
  ASSERT_TRUE(results[0].exited) << "rank 0 hung: " << results[0].report;
  EXPECT_EQ(results[0].status, 3) << "rank 0 was created without its peer";
  const std::string& text = results[0].report;
  const size_t bar = text.rfind('|');
  ASSERT_NE(bar, std::string::npos) << text;
  EXPECT_NE(text.find("timeoutMs = 3000"), std::string::npos) << text;
  const long ms = std::stol(text.substr(bar + 1));
  EXPECT_GE(ms, 3000) << text;
  EXPECT_LT(ms, stayOutMs) << "rank 0 waited for its peer to leave: " << text;
}

// Ranks configured differently fail at creation, all of them, naming the field.
TEST(Nccl, CreationHandshakeRefusesDifferentPolicies) {
  SV_REQUIRE_GPU_IF(gpuInAChild());
  Ranks ranks(2, ncclConfig(SV_CHECK_GLOBAL), [](const Ranks::Child&) { return std::string(); },
              [](int r, svConfig_t& c) {
                if (r == 1) c.nonFinite = SV_NONFINITE_IGNORE;
              },
              ncclInit);
  const auto results = ranks.join(120);
  for (int r = 0; r < 2; ++r) {
    EXPECT_EQ(results[r].status, 3) << "rank " << r << " was created: " << results[r].report;
    EXPECT_NE(results[r].report.find("config->nonFinite"), std::string::npos)
        << results[r].report;
  }
}

}  // namespace
