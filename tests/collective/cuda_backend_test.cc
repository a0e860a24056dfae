// SV_BACKEND_CUDA against SV_BACKEND_HOST through the public API: the same gradients through a
// host world and a CUDA world must give the same output and residual bits on every rank, step
// after step, for every scheme and format; NaN policies, the sticky device verdict, in-place
// buffers, one stream per rank or one for all, exchanges enqueued back to back, CUDA graph
// replay, and adaptive K. GPU only.
#include <cuda_runtime_api.h>

#include <chrono>
#include <limits>

#include "cuda_world.h"
#include "signvote/signvote.hpp"

namespace {

using namespace svtest;

struct Case {
  svScheme_t scheme;
  svFormat_t format;
  svVote_t vote;
  float momentum = 0.0f;      // signsgd_mv: Signum; topk_ef, dgs: their momentum
  double downDensity = 0.0;   // dgs: the downlink's secondary compression
  unsigned period = 0;        // liec: every period-th exchange averages
};
const Case kCases[] = {{SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, SV_VOTE_TERNARY},
                       {SV_SCHEME_S3GD_MV, SV_FORMAT_COUNTS, SV_VOTE_TERNARY},
                       {SV_SCHEME_S3GD_MV, SV_FORMAT_SIGNS, SV_VOTE_TERNARY},
                       {SV_SCHEME_SIGNSGD_MV, SV_FORMAT_SIGNS, SV_VOTE_TERNARY},
                       {SV_SCHEME_SIGNSGD_MV, SV_FORMAT_SIGNS, SV_VOTE_BINARY},
                       {SV_SCHEME_SIGNSGD_MV, SV_FORMAT_SIGNS, SV_VOTE_TERNARY, 0.9f},
                       {SV_SCHEME_DENSE, SV_FORMAT_FP32, SV_VOTE_TERNARY},
                       {SV_SCHEME_EF_SIGN, SV_FORMAT_SCALED_SIGNS, SV_VOTE_TERNARY},
                       {SV_SCHEME_TOPK_EF, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY},
                       {SV_SCHEME_TOPK_EF, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY, 0.9f},
                       {SV_SCHEME_DGS, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY, 0.5f},
                       {SV_SCHEME_DGS, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY, 0.5f, 0.05},
                       {SV_SCHEME_LIEC, SV_FORMAT_CHUNK_SIGNS, SV_VOTE_TERNARY},
                       {SV_SCHEME_LIEC, SV_FORMAT_CHUNK_SIGNS, SV_VOTE_TERNARY, 0.0f, 0.0, 2},
                       {SV_SCHEME_LIEC, SV_FORMAT_FP32, SV_VOTE_TERNARY}};

// The bucket of a case; the top-K schemes keep k (s3gd_mv with rho 0.9), momentum and the
// downlink density as the case says.
svBucketConfig_t caseConfig(const Case& c, size_t n, uint64_t k) {
  svBucketConfig_t cfg = bucketConfig(c.scheme, n);
  cfg.format = c.format;
  cfg.vote = c.vote;
  cfg.momentum = c.momentum;
  cfg.downDensity = c.downDensity;
  cfg.period = c.period;
  if (c.scheme == SV_SCHEME_S3GD_MV || c.scheme == SV_SCHEME_TOPK_EF ||
      c.scheme == SV_SCHEME_DGS)
    cfg.k = k;
  if (c.scheme == SV_SCHEME_S3GD_MV) cfg.rho = 0.9f;
  return cfg;
}
bool keepsState(const Case& c) {
  if (c.scheme == SV_SCHEME_LIEC) return c.format == SV_FORMAT_CHUNK_SIGNS;  // fp32: identity
  return c.scheme != SV_SCHEME_DENSE && (c.scheme != SV_SCHEME_SIGNSGD_MV || c.momentum != 0.0f);
}

TEST(CudaBackend, MatchesTheHostBackendStepByStep) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 40);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (const Case& c : kCases)
    for (int W : {1, 2, 3, 5, 8})
      for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{4097}, size_t{65537}})
        for (bool shared : {false, true}) {
          SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", format " +
                       std::to_string(c.format) + ", vote " + std::to_string(c.vote) +
                       ", W = " + std::to_string(W) + ", n = " + std::to_string(n) +
                       (shared ? ", one stream" : ", a stream per rank"));
          const svBucketConfig_t cfg = caseConfig(c, n, n / 10);
          World host(W, cfg);
          CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, shared);
          for (int step = 0; step < 3; ++step) {
            std::vector<std::vector<float>> grads(W);
            for (auto& v : grads) v = (step == 1) ? ties(n, rng) : normal(n, rng);
            ASSERT_EQ(host.exchange(grads), svSuccess) << svGetLastError(host.comms[0]);
            dev.upload(grads);
            ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
            for (int r = 0; r < W; ++r) {
              expectSameBits(dev.output(r), host.out[r], "output");
              if (keepsState(c))
                expectSameBits(dev.residual(r), host.residual(r), "residual");
            }
            ASSERT_EQ(dev.asyncError(0), svSuccess);
          }
        }
}

TEST(CudaBackend, InPlaceExchangeMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 41);
  for (const Case& c : kCases) {
    const int W = 4;
    const size_t n = 10007;
    const svBucketConfig_t cfg = caseConfig(c, n, 100);
    World host(W, cfg);
    CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
    std::vector<std::vector<float>> grads(W);
    for (auto& v : grads) v = normal(n, rng);
    ASSERT_EQ(host.exchange(grads), svSuccess);
    dev.upload(grads);
    ASSERT_EQ(dev.exchange(true), svSuccess);
    for (int r = 0; r < W; ++r) expectSameBits(dev.output(r, true), host.out[r], "in place");
  }
}

// A checkpoint's restore and save: svBucketSetResidual from pageable host memory (rank 0) and
// from device memory (the others), then at once an exchange on the ranks' non-blocking
// streams, which must start from the state set (the host backend's bits from the same state);
// then svBucketGetResidual into device memory, read at once by a non-blocking stream. Each copy
// is complete on return (signvote.h): a copy CUDA lets return early (from pageable memory, or
// device to device) would leave the exchange or the reader the old contents.
TEST(CudaBackend, ResidualsSetAndGotAreCompleteOnReturn) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 49);
  const int W = 3;
  const size_t n = 1031;
  cudaStream_t reader = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&reader, cudaStreamNonBlocking), cudaSuccess);
  for (const Case& c : kCases) {
    if (!keepsState(c)) continue;
    SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", format " + std::to_string(c.format) +
                 ", momentum " + std::to_string(c.momentum));
    const svBucketConfig_t cfg = caseConfig(c, n, 40);
    World host(W, cfg);
    CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
    std::vector<std::vector<float>> grads(W);
    for (auto& v : grads) v = normal(n, rng);
    dev.upload(grads);
    // One state for every rank (dgs's downlink residual must be equal everywhere).
    const std::vector<float> state = normal(host.info().stateFloats, rng);
    DeviceArray<float> fromDevice(state.size());
    ASSERT_TRUE(fromDevice.ok());
    fromDevice.upload(state);
    for (int r = 0; r < W; ++r) {
      ASSERT_EQ(svBucketSetResidual(host.buckets[r], state.data()), svSuccess);
      ASSERT_EQ(svBucketSetResidual(dev.buckets[r], r == 0 ? static_cast<const void*>(state.data())
                                                             : fromDevice.get()),
                svSuccess)
          << svGetLastError(dev.comms[r]);
    }
    ASSERT_EQ(host.exchange(grads), svSuccess);
    ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
    DeviceArray<float> got(state.size());
    ASSERT_TRUE(got.ok());
    cudaDeviceSynchronize();  // the exchange is done; only the copy below is under test
    ASSERT_EQ(svBucketGetResidual(dev.buckets[1], got.get()), svSuccess);
    std::vector<float> read(state.size());
    ASSERT_EQ(cudaMemcpyAsync(read.data(), got.get(), read.size() * 4, cudaMemcpyDeviceToHost,
                              reader),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(reader), cudaSuccess);
    expectSameBits(read, host.residual(1), "residual got into device memory");
    for (int r = 0; r < W; ++r) {
      expectSameBits(dev.output(r), host.out[r], "output");
      expectSameBits(dev.residual(r), host.residual(r), "residual");
    }
  }
  cudaStreamDestroy(reader);
}

// As a trainer runs: the gradients of several steps are already on the device and their
// exchanges are enqueued back to back, each into its own output, with no host synchronization
// in between. A rank's stream then starts the next exchange while the others may still read
// its last wire buffers, so this needs the exchange's own ordering (its final barrier on the
// loopback transport), which the step-by-step tests, synchronizing after each upload, do not.
TEST(CudaBackend, BackToBackExchangesNeedNoHostSync) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 48);
  const int W = 3, T = 4;
  const size_t n = 4099;
  for (const Case& c : kCases) {
    SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", format " + std::to_string(c.format) +
                 ", momentum " + std::to_string(c.momentum));
    const svBucketConfig_t cfg = caseConfig(c, n, 60);
    World host(W, cfg);
    CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
    std::vector<std::vector<void*>> g(T, std::vector<void*>(W)), out = g;
    std::vector<std::vector<std::vector<float>>> want(T);
    for (int t = 0; t < T; ++t) {
      std::vector<std::vector<float>> grads(W);
      for (auto& v : grads) v = normal(n, rng);
      ASSERT_EQ(host.exchange(grads), svSuccess);
      want[t] = host.out;
      for (int r = 0; r < W; ++r) {
        CUDA_OK(cudaMalloc(&g[t][r], n * 4));
        CUDA_OK(cudaMalloc(&out[t][r], n * 4));
        CUDA_OK(cudaMemcpy(g[t][r], grads[r].data(), n * 4, cudaMemcpyHostToDevice));
      }
    }
    CUDA_OK(cudaDeviceSynchronize());
    for (int t = 0; t < T; ++t) {
      svGroupStart();
      for (int r = 0; r < W; ++r) {
        size_t bytes = dev.wsBytes[r];
        svExchange(dev.buckets[r], g[t][r], out[t][r], dev.ws[r], &bytes, dev.streams[r]);
      }
      ASSERT_EQ(svGroupEnd(), svSuccess) << svGetLastError(dev.comms[0]);
    }
    CUDA_OK(cudaDeviceSynchronize());
    for (int t = 0; t < T; ++t)
      for (int r = 0; r < W; ++r) {
        std::vector<float> o(n);
        CUDA_OK(cudaMemcpy(o.data(), out[t][r], n * 4, cudaMemcpyDeviceToHost));
        SCOPED_TRACE("step " + std::to_string(t) + ", rank " + std::to_string(r));
        expectSameBits(o, want[t][r], "output");
        CUDA_OK(cudaFree(g[t][r]));
        CUDA_OK(cudaFree(out[t][r]));
      }
    if (keepsState(c))
      for (int r = 0; r < W; ++r) expectSameBits(dev.residual(r), host.residual(r), "residual");
    EXPECT_EQ(dev.asyncError(0), svSuccess);
  }
}

TEST(CudaBackend, NaNPoliciesAndTheStickyVerdict) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 42);
  const int W = 3;
  const size_t n = 5000;
  for (const Case& c : kCases) {
    const svBucketConfig_t cfg = caseConfig(c, n, 50);
    std::vector<std::vector<float>> grads(W);
    for (auto& v : grads) v = normal(n, rng);
    std::vector<std::vector<float>> bad = grads;
    bad[1][77] = std::numeric_limits<float>::quiet_NaN();
    {  // error: nothing changes, the verdict sticks, later exchanges have no effect either
      CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
      dev.upload(grads);
      ASSERT_EQ(dev.exchange(), svSuccess);
      const std::vector<float> out0 = dev.output(0);
      const std::vector<float> res0 = keepsState(c) ? dev.residual(2) : out0;
      dev.upload(bad);
      ASSERT_EQ(dev.exchange(), svSuccess);  // enqueued; the device decides
      EXPECT_EQ(dev.asyncError(0), svNonFiniteInput);
      EXPECT_EQ(dev.asyncError(2), svNonFiniteInput);
      expectSameBits(dev.output(0), out0, "output after a NaN");
      if (keepsState(c)) expectSameBits(dev.residual(2), res0, "residual");
      dev.upload(grads);
      ASSERT_EQ(dev.exchange(), svSuccess);
      expectSameBits(dev.output(0), out0, "output after the sticky verdict");
    }
    {  // ignore and propagate give the host backend's bits
      for (svNonFinitePolicy_t policy : {SV_NONFINITE_IGNORE, SV_NONFINITE_PROPAGATE}) {
        svConfig_t hc = SV_CONFIG_INITIALIZER;
        hc.nonFinite = policy;
        World host(W, cfg, &hc);
        CudaWorld dev(W, cfg, policy, true);
        ASSERT_EQ(host.exchange(bad), svSuccess);
        dev.upload(bad);
        ASSERT_EQ(dev.exchange(), svSuccess);
        EXPECT_EQ(dev.asyncError(0), svSuccess);
        for (int r = 0; r < W; ++r) {
          expectSameBits(dev.output(r), host.out[r], "output");
          if (keepsState(c))
            expectSameBits(dev.residual(r), host.residual(r), "residual");
        }
      }
    }
  }
}

// Replays `graph` (one exchange captured from dev) `steps` times on dev.streams[0], each on
// fresh gradients that host exchanges too; every rank's output (and state) must match.
void replayMatchesHost(World& host, CudaWorld& dev, cudaGraph_t graph, int steps, bool state,
                       std::mt19937_64& rng) {
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<float>> grads(dev.W);
    for (auto& v : grads) v = normal(dev.n, rng);
    ASSERT_EQ(host.exchange(grads), svSuccess);
    dev.upload(grads);
    CUDA_OK(cudaGraphLaunch(exec, dev.streams[0]));
    CUDA_OK(cudaStreamSynchronize(dev.streams[0]));
    for (int r = 0; r < dev.W; ++r) {
      expectSameBits(dev.output(r), host.out[r], "replayed output");
      if (state) expectSameBits(dev.residual(r), host.residual(r), "replayed residual");
    }
  }
  cudaGraphExecDestroy(exec);
}

// Captured in both of CUDA's strict modes: global (PyTorch's default, under which the capturing
// thread may make no "potentially unsafe" call, such as one that may synchronize) and
// thread-local.
TEST(CudaBackend, GraphReplayGivesTheSameBits) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 43);
  const int W = 4;
  const size_t n = 30011;
  for (const Case& c : kCases) {
    for (const cudaStreamCaptureMode mode :
         {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal}) {
      // A replay repeats the captured exchange's kind; liec's averaging period alternates kinds
      // (signvote.h: capture one graph per kind).
      if (c.period != 0) continue;
      SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", format " + std::to_string(c.format) +
                   ", momentum " + std::to_string(c.momentum) + ", capture mode " +
                   std::to_string(mode));
      const svBucketConfig_t cfg = caseConfig(c, n, 300);
      World host(W, cfg);
      CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, true);  // one stream: the whole step is one graph
      cudaGraph_t graph;
      CUDA_OK(cudaStreamBeginCapture(dev.streams[0], mode));
      ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
      CUDA_OK(cudaStreamEndCapture(dev.streams[0], &graph));
      replayMatchesHost(host, dev, graph, 3, keepsState(c), rng);
      cudaGraphDestroy(graph);
    }
  }
}

// A loopback world's exchange orders its ranks' streams with events, which CUDA allows under
// capture only inside one capture: a capturing stream may not wait on another stream's
// uncaptured work (the capture is invalidated), nor two captures merge. Ranks' streams that
// are partly captured, or in different captures, are refused with no effect: nothing is
// captured or run, sequence numbers stay, the communicators stay usable. Streams forked into
// one capture (an event recorded on the first, waited on by the others) replay the host's bits.
TEST(CudaBackend, TheRanksStreamsMustBeInOneCaptureOrNone) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 53);
  const int W = 3;
  const size_t n = 5003;
  const svBucketConfig_t cfg = caseConfig(kCases[0], n, 100);
  World host(W, cfg);
  CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
  auto expectRefusedWithNoEffect = [&](const std::vector<int>& captured) {
    for (int r : captured)
      CUDA_OK(cudaStreamBeginCapture(dev.streams[r], cudaStreamCaptureModeThreadLocal));
    EXPECT_EQ(dev.exchange(), svInvalidUsage);
    const std::string text = svGetLastError(dev.comms[0]);
    EXPECT_NE(text.find("in one capture or in none"), std::string::npos) << text;
    for (int r : captured) {
      cudaGraph_t graph = nullptr;
      CUDA_OK(cudaStreamEndCapture(dev.streams[r], &graph));  // not invalidated
      size_t nodes = 1;
      CUDA_OK(cudaGraphGetNodes(graph, nullptr, &nodes));
      EXPECT_EQ(nodes, 0u);
      cudaGraphDestroy(graph);
    }
    for (int r = 0; r < W; ++r) {
      uint64_t seq = 1;
      EXPECT_EQ(svCommGetSequence(dev.comms[r], &seq), svSuccess);
      EXPECT_EQ(seq, 0u);
    }
  };
  {
    SCOPED_TRACE("rank 0's stream captured, the others not");
    expectRefusedWithNoEffect({0});
  }
  {
    SCOPED_TRACE("rank 2's stream captured, the others not");
    expectRefusedWithNoEffect({2});
  }
  {
    SCOPED_TRACE("every stream in a capture of its own");
    expectRefusedWithNoEffect({0, 1, 2});
  }
  // Forked into rank 0's capture and joined back before it ends.
  cudaEvent_t fork, join[W];
  CUDA_OK(cudaEventCreateWithFlags(&fork, cudaEventDisableTiming));
  for (auto& e : join) CUDA_OK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(dev.streams[0], cudaStreamCaptureModeThreadLocal));
  CUDA_OK(cudaEventRecord(fork, dev.streams[0]));
  for (int r = 1; r < W; ++r) CUDA_OK(cudaStreamWaitEvent(dev.streams[r], fork, 0));
  ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
  for (int r = 1; r < W; ++r) {
    CUDA_OK(cudaEventRecord(join[r], dev.streams[r]));
    CUDA_OK(cudaStreamWaitEvent(dev.streams[0], join[r], 0));
  }
  CUDA_OK(cudaStreamEndCapture(dev.streams[0], &graph));
  replayMatchesHost(host, dev, graph, 2, true, rng);
  for (int r = 0; r < W; ++r) EXPECT_EQ(dev.asyncError(r), svSuccess);
  cudaGraphDestroy(graph);
  cudaEventDestroy(fork);
  for (auto& e : join) cudaEventDestroy(e);
}

// CUDA's rules that the test above relies on, held against the device it runs on (the emulated
// runtime follows them too): a capturing stream's wait on an event recorded outside the capture
// invalidates the capture, so ending it fails and gives no graph, unless the wait is marked
// cudaEventWaitExternal; an event recorded in a capture cannot be queried (the timed transport
// records none under capture for this reason).
TEST(CudaContract, ACaptureCannotWaitOnUncapturedWorkOfAnotherStream) {
  SV_REQUIRE_GPU();
  cudaStream_t a, b;
  CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  CUDA_OK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  cudaEvent_t e;
  CUDA_OK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  cudaGraph_t graph = nullptr;
  CUDA_OK(cudaStreamBeginCapture(a, cudaStreamCaptureModeThreadLocal));
  CUDA_OK(cudaEventRecord(e, b));
  const cudaError_t wait = cudaStreamWaitEvent(a, e, 0);
  const cudaError_t end = cudaStreamEndCapture(a, &graph);
  cudaGetLastError();
  EXPECT_TRUE(wait != cudaSuccess || end != cudaSuccess)
      << "wait: " << cudaGetErrorString(wait) << ", end: " << cudaGetErrorString(end);
  EXPECT_EQ(graph, nullptr);
  if (graph != nullptr) cudaGraphDestroy(graph);
  graph = nullptr;
  CUDA_OK(cudaStreamBeginCapture(a, cudaStreamCaptureModeThreadLocal));
  CUDA_OK(cudaEventRecord(e, b));
  CUDA_OK(cudaStreamWaitEvent(a, e, cudaEventWaitExternal));
  CUDA_OK(cudaStreamEndCapture(a, &graph));
  EXPECT_NE(graph, nullptr);
  if (graph != nullptr) cudaGraphDestroy(graph);
  // An event last recorded in a capture cannot be queried, until it is recorded again outside.
  CUDA_OK(cudaStreamBeginCapture(a, cudaStreamCaptureModeThreadLocal));
  CUDA_OK(cudaEventRecord(e, a));
  CUDA_OK(cudaStreamEndCapture(a, &graph));
  EXPECT_EQ(cudaEventQuery(e), cudaErrorCapturedEvent);
  cudaGetLastError();
  CUDA_OK(cudaEventRecord(e, b));
  CUDA_OK(cudaEventSynchronize(e));
  if (graph != nullptr) cudaGraphDestroy(graph);
  cudaEventDestroy(e);
  cudaStreamDestroy(a);
  cudaStreamDestroy(b);
}

// The capture modes that the emulated runtime follows, so that CI sees an exchange that would
// allocate or synchronize under capture: the capturing thread may not allocate in global or
// thread-local mode (it may in relaxed mode).
TEST(CudaContract, ACapturingThreadMayAllocateOnlyInRelaxedMode) {
  SV_REQUIRE_GPU();
  cudaStream_t a;
  CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  for (const cudaStreamCaptureMode mode :
       {cudaStreamCaptureModeGlobal, cudaStreamCaptureModeThreadLocal,
        cudaStreamCaptureModeRelaxed}) {
    SCOPED_TRACE("capture mode " + std::to_string(mode));
    CUDA_OK(cudaStreamBeginCapture(a, mode));
    void* p = nullptr;
    const cudaError_t malloc = cudaMalloc(&p, 256);
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(a, &graph);
    cudaGetLastError();
    if (mode == cudaStreamCaptureModeRelaxed) {
      EXPECT_EQ(malloc, cudaSuccess) << cudaGetErrorString(malloc);
      EXPECT_EQ(end, cudaSuccess) << cudaGetErrorString(end);
    } else {
      EXPECT_NE(malloc, cudaSuccess);
    }
    if (malloc == cudaSuccess) cudaFree(p);
    if (graph != nullptr) cudaGraphDestroy(graph);
  }
  cudaStreamDestroy(a);
}

// A bucket created while this thread captures in global mode (as a trainer building buckets
// lazily inside its first captured step would): CUDA refuses the state's allocation, and the
// error says so in CUDA's words instead of "out of memory"; nothing is created, and the same
// call works once the capture has ended.
TEST(CudaBackend, BucketCreationUnderCaptureNamesCudasError) {
  SV_REQUIRE_GPU();
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  cfg.k = 10;
  CudaWorld dev(2, cfg, SV_NONFINITE_ERROR, false);
  cudaStream_t a;
  CUDA_OK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  CUDA_OK(cudaStreamBeginCapture(a, cudaStreamCaptureModeGlobal));
  const svBucket_t unset = reinterpret_cast<svBucket_t>(&cfg);
  svBucket_t b = unset;
  const svResult_t r = svBucketCreate(&b, dev.comms[0], &cfg);
  const std::string text = svGetLastError(dev.comms[0]);
  cudaGraph_t graph = nullptr;
  cudaStreamEndCapture(a, &graph);  // invalidated by the refused allocation
  cudaGetLastError();
  if (graph != nullptr) cudaGraphDestroy(graph);
  EXPECT_EQ(r, svUnhandledCudaError);
  EXPECT_EQ(b, unset) << "a handle was written";
  for (const char* part : {"svBucketCreate: allocating the state (1000 floats) on device 0 "
                           "failed: cudaMalloc: ", "; nothing was created"})
    EXPECT_NE(text.find(part), std::string::npos) << "missing \"" << part << "\" in: " << text;
  ASSERT_EQ(svBucketCreate(&b, dev.comms[0], &cfg), svSuccess) << svGetLastError(dev.comms[0]);
  EXPECT_EQ(svBucketDestroy(b), svSuccess);
  cudaStreamDestroy(a);
}

// Timing changes no bit; each exchange adds the same number of timed transport calls to
// every rank (an averaging liec exchange its own), their time lies within the exchange's wall
// time, and an exchange enqueued under capture is not timed, nor are its replays.
TEST(CudaBackend, TimingCountsTheTransportCalls) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 47);
  const int W = 3;
  const size_t n = 20011;
  for (const Case& c : kCases) {
    SCOPED_TRACE("scheme " + std::to_string(c.scheme) + " format " + std::to_string(c.format));
    const svBucketConfig_t cfg = caseConfig(c, n, 200);
    World host(W, cfg);
    CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false, SV_TIMING_ON);
    uint64_t perExchange = 0;
    for (int step = 0; step < 3; ++step) {
      std::vector<std::vector<float>> grads(W);
      for (auto& v : grads) v = normal(n, rng);
      ASSERT_EQ(host.exchange(grads), svSuccess);
      dev.upload(grads);
      const svCommTimes_t before = dev.times(0);
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
      CUDA_OK(cudaDeviceSynchronize());
      const double wallUs = std::chrono::duration<double, std::micro>(
                                std::chrono::steady_clock::now() - t0).count();
      const svCommTimes_t after = dev.times(0);
      for (int r = 1; r < W; ++r) EXPECT_EQ(dev.times(r).calls, after.calls);
      const uint64_t calls = after.calls - before.calls;
      EXPECT_GT(calls, 0u);
      if (c.period == 0) {
        if (step == 0) perExchange = calls;
        EXPECT_EQ(calls, perExchange);
      }
      EXPECT_GT(after.transportUs, before.transportUs);
      EXPECT_LE(after.transportUs - before.transportUs, wallUs);
      for (int r = 0; r < W; ++r) expectSameBits(dev.output(r), host.out[r], "timed output");
    }
  }
  const svBucketConfig_t cfg = caseConfig(kCases[0], n, 200);
  CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, true, SV_TIMING_ON);
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(dev.streams[0], cudaStreamCaptureModeThreadLocal));
  ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
  CUDA_OK(cudaStreamEndCapture(dev.streams[0], &graph));
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_OK(cudaGraphLaunch(exec, dev.streams[0]));
  CUDA_OK(cudaStreamSynchronize(dev.streams[0]));
  EXPECT_EQ(dev.times(0).calls, 0u);
  EXPECT_EQ(dev.times(0).transportUs, 0.0);
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
}

// Adaptive K: the top-K cases with K_t chosen per exchange (optionally under a budget).
bool selects(const Case& c) {
  return c.scheme == SV_SCHEME_S3GD_MV || c.scheme == SV_SCHEME_TOPK_EF ||
         c.scheme == SV_SCHEME_DGS;
}
svBucketConfig_t adaptiveConfig(const Case& c, size_t n, bool budget) {
  svBucketConfig_t cfg = caseConfig(c, n, n / 50 + 1);
  cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
  cfg.kMin = 1;
  if (budget) {
    cfg.kWindow = 4;
    cfg.kBudget = 4 * cfg.k;
  }
  return cfg;
}

// The device's norm (read back on the host) gives the host backend's K_t, and every exchange
// its bits, as the gradient scale moves K_t up and down.
TEST(CudaBackend, AdaptiveKMatchesTheHostBackend) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 44);
  SCOPED_TRACE("seed " + std::to_string(testSeed()));
  for (const Case& c : kCases) {
    if (!selects(c)) continue;
    for (int W : {1, 3, 5})
      for (size_t n : {size_t{33}, size_t{4097}, size_t{65537}})
        for (bool budget : {false, true}) {
          SCOPED_TRACE("scheme " + std::to_string(c.scheme) + ", format " +
                       std::to_string(c.format) + ", W = " + std::to_string(W) + ", n = " +
                       std::to_string(n) + (budget ? ", with a budget" : ""));
          const svBucketConfig_t cfg = adaptiveConfig(c, n, budget);
          World host(W, cfg);
          CudaWorld dev(W, cfg, SV_NONFINITE_ERROR, false);
          for (float scale : {1.0f, 1.0f, 3.0f, 0.3f, 1.0f, 10.0f, 0.1f}) {
            const auto grads = scaledGrads(W, n, scale, rng);
            ASSERT_EQ(host.exchange(grads), svSuccess) << svGetLastError(host.comms[0]);
            dev.upload(grads);
            ASSERT_EQ(dev.exchange(), svSuccess) << svGetLastError(dev.comms[0]);
            for (int r = 0; r < W; ++r) {
              ASSERT_EQ(lastK(dev.buckets[r]), lastK(host.buckets[r])) << "scale " << scale;
              expectSameBits(dev.output(r), host.out[r], "output");
              expectSameBits(dev.residual(r), host.residual(r), "residual");
            }
          }
          ASSERT_EQ(dev.asyncError(0), svSuccess);
        }
  }
}

// A NaN input under the error policy: the host reads G before enqueuing anything, so the call
// fails as on the host backend (svNonFiniteInput, nothing changed, the communicator healthy)
// instead of through the sticky device verdict. Under propagate both give NaN outputs and
// their adaptive state moves the same way.
TEST(CudaBackend, AdaptiveKRefusesNaNBeforeEnqueuing) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 45);
  const int W = 3;
  const size_t n = 5000;
  const Case c{SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, SV_VOTE_TERNARY};
  const svBucketConfig_t cfg = adaptiveConfig(c, n, true);
  for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_PROPAGATE}) {
    SCOPED_TRACE("policy " + std::to_string(policy));
    svConfig_t hc = SV_CONFIG_INITIALIZER;
    hc.nonFinite = policy;
    World host(W, cfg, &hc);
    CudaWorld dev(W, cfg, policy, false);
    auto bad = scaledGrads(W, n, 1.0f, rng);
    bad[1][77] = std::numeric_limits<float>::quiet_NaN();
    for (int step = 0; step < 5; ++step) {
      const auto grads = step == 2 ? bad : scaledGrads(W, n, step == 3 ? 4.0f : 1.0f, rng);
      const svResult_t want = host.exchange(grads);
      ASSERT_EQ(want, step == 2 && policy == SV_NONFINITE_ERROR ? svNonFiniteInput : svSuccess);
      dev.upload(grads);
      ASSERT_EQ(dev.exchange(), want) << svGetLastError(dev.comms[0]);
      if (want != svSuccess) {
        EXPECT_NE(std::string(svGetLastError(dev.comms[0])).find("rank 1 had NaN input"),
                  std::string::npos)
            << svGetLastError(dev.comms[0]);
      }
      uint64_t hostSeq = 0, devSeq = 0;
      ASSERT_EQ(svCommGetSequence(host.comms[0], &hostSeq), svSuccess);
      ASSERT_EQ(svCommGetSequence(dev.comms[0], &devSeq), svSuccess);
      EXPECT_EQ(devSeq, hostSeq);
      for (int r = 0; r < W; ++r) {
        ASSERT_EQ(lastK(dev.buckets[r]), lastK(host.buckets[r])) << "step " << step;
        if (want == svSuccess) expectSameBits(dev.output(r), host.out[r], "output");
        expectSameBits(dev.residual(r), host.residual(r), "residual");
      }
      ASSERT_EQ(dev.asyncError(0), svSuccess);
    }
  }
}

// The host wait cannot be captured: refused with no effect (an empty graph, seq unchanged).
TEST(CudaBackend, AdaptiveKIsRefusedUnderCapture) {
  SV_REQUIRE_GPU();
  const Case c{SV_SCHEME_TOPK_EF, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY};
  CudaWorld dev(2, adaptiveConfig(c, 1000, false), SV_NONFINITE_ERROR, true);
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(dev.streams[0], cudaStreamCaptureModeThreadLocal));
  EXPECT_EQ(dev.exchange(), svInvalidUsage);
  CUDA_OK(cudaStreamEndCapture(dev.streams[0], &graph));
  size_t nodes = 1;
  CUDA_OK(cudaGraphGetNodes(graph, nullptr, &nodes));
  EXPECT_EQ(nodes, 0u);
  cudaGraphDestroy(graph);
  EXPECT_NE(std::string(svGetLastError(dev.comms[0])).find("config->adaptiveK = 1"),
            std::string::npos)
      << svGetLastError(dev.comms[0]);
  uint64_t seq = 1;
  EXPECT_EQ(svCommGetSequence(dev.comms[0], &seq), svSuccess);
  EXPECT_EQ(seq, 0u);
}

// The C++ wrapper on SV_BACKEND_CUDA: Bucket::exchange with the caller's device workspaces,
// all ranks on one stream, gives the host backend's bits.
TEST(CudaBackend, CxxWrapperWithDeviceWorkspaces) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(testSeed() + 44);
  const int W = 3;
  const size_t n = 4097;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.k = 40;
  World host(W, cfg);
  svConfig_t config = SV_CONFIG_INITIALIZER;
  config.backend = SV_BACKEND_CUDA;
  std::vector<signvote::Comm> comms = signvote::Comm::loopback(W, &config);
  std::vector<signvote::Bucket> buckets;
  std::vector<void*> ws(W), g(W), out(W);
  for (int r = 0; r < W; ++r) {
    buckets.emplace_back(comms[r], cfg);
    CUDA_OK(cudaMalloc(&ws[r], buckets[r].workspaceBytes()));
    CUDA_OK(cudaMalloc(&g[r], n * 4));
    CUDA_OK(cudaMalloc(&out[r], n * 4));
  }
  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  for (int step = 0; step < 3; ++step) {
    std::vector<std::vector<float>> grads(W);
    for (auto& v : grads) v = normal(n, rng);
    ASSERT_EQ(host.exchange(grads), svSuccess);
    for (int r = 0; r < W; ++r)
      CUDA_OK(cudaMemcpy(g[r], grads[r].data(), n * 4, cudaMemcpyHostToDevice));
    CUDA_OK(cudaDeviceSynchronize());
    signvote::group([&] {
      for (int r = 0; r < W; ++r)
        buckets[r].exchange(static_cast<const float*>(g[r]), static_cast<float*>(out[r]), ws[r],
                            buckets[r].workspaceBytes(), stream);
    });
    CUDA_OK(cudaStreamSynchronize(stream));
    for (int r = 0; r < W; ++r) {
      std::vector<float> o(n);
      CUDA_OK(cudaMemcpy(o.data(), out[r], n * 4, cudaMemcpyDeviceToHost));
      expectSameBits(o, host.out[r], "output");
      expectSameBits(buckets[r].residual(), host.residual(r), "residual");
    }
  }
  buckets.clear();
  CUDA_OK(cudaStreamDestroy(stream));
  for (int r = 0; r < W; ++r) {
    cudaFree(ws[r]);
    cudaFree(g[r]);
    cudaFree(out[r]);
  }
}

TEST(CudaBackend, HostPointersAreRefusedWithNoEffect) {
  SV_REQUIRE_GPU();
  const size_t n = 100;
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, n);
  cfg.k = 5;
  CudaWorld dev(1, cfg, SV_NONFINITE_ERROR, false);
  std::vector<float> hostBuf(n, 1.0f);
  size_t bytes = dev.wsBytes[0];
  EXPECT_EQ(svExchange(dev.buckets[0], hostBuf.data(), dev.out[0], dev.ws[0], &bytes, nullptr),
            svInvalidArgument);
  EXPECT_NE(std::string(svGetLastError(dev.comms[0])).find("sendbuff"), std::string::npos);
  uint64_t seq = 1;
  EXPECT_EQ(svCommGetSequence(dev.comms[0], &seq), svSuccess);
  EXPECT_EQ(seq, 0u);
}

}  // namespace
