// signvote-bench: nccl-tests-style sweeps. Collective mode times one exchange of all ranks of a
// loopback world per bucket size and checks it bit for bit against straight_reference.cc;
// kernel mode (kernel_mode.cc) times the GPU kernels. The exit status is non-zero when any
// element is wrong.
#include <cuda_runtime_api.h>

#include <memory>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernel_mode.h"
#include "options.h"
#include "report.h"
#include "signvote/signvote.hpp"
#include "straight_reference.h"

namespace {

using Grads = std::vector<std::vector<float>>;  // [rank][element]


Grads randomGrads(int ranks, uint64_t count, std::mt19937_64& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  Grads g(ranks, std::vector<float>(count));
  for (auto& v : g)
    for (float& x : v) x = normal(rng);
  return g;
}

uint64_t countDifferent(const std::vector<float>& a, const std::vector<float>& b) {
  uint64_t wrong = 0;
  for (size_t i = 0; i < a.size(); ++i) wrong += std::memcmp(&a[i], &b[i], sizeof(float)) != 0;
  return wrong;
}

svBucketConfig_t bucketConfig(const bench::Options& o, uint64_t count) {
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = o.scheme;
  cfg.vote = o.vote;
  cfg.format = o.format;
  cfg.count = count;
  cfg.k = o.density != 0.0 ? 0 : o.k;
  cfg.density = o.density;
  cfg.rho = o.rho;
  const bool momentum = o.scheme == SV_SCHEME_SIGNSGD_MV || o.scheme == SV_SCHEME_TOPK_EF ||
                        o.scheme == SV_SCHEME_DGS;
  cfg.momentum = momentum ? o.momentum : 0.0f;
  if (o.scheme == SV_SCHEME_DGS) cfg.downDensity = o.downDensity;
  if (o.scheme == SV_SCHEME_LIEC) cfg.period = o.period;
  return cfg;
}

// One bucket size on one backend: W ranks' buckets, input sets 0..3 (3 rotate, 3 is for the
// check), outputs and workspaces.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual void load(int set, const Grads& g) = 0;
  virtual void step(int set) = 0;  // one grouped exchange of all ranks, complete on return
  virtual double timedUs(int warmup, int iters) = 0;
  virtual std::vector<float> output(int r) = 0;
  virtual std::vector<float> residual(int r) = 0;
  virtual svBucketInfo_t info() = 0;
};

class HostRunner final : public Runner {
 public:
  HostRunner(std::vector<signvote::Comm>& comms, const svBucketConfig_t& cfg)
      : sets_(4), outs_(comms.size(), std::vector<float>(cfg.count)) {
    for (auto& c : comms) buckets_.emplace_back(c, cfg);
  }
  void load(int set, const Grads& g) override { sets_[set] = g; }
  void step(int set) override {
    signvote::group([&] {
      for (size_t r = 0; r < buckets_.size(); ++r)
        buckets_[r].exchange(sets_[set][r].data(), outs_[r].data());
    });
  }
  double timedUs(int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) step(i % 3);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) step(i % 3);
    return std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0)
               .count() / iters;
  }
  std::vector<float> output(int r) override { return outs_[r]; }
  std::vector<float> residual(int r) override { return buckets_[r].residual(); }
  svBucketInfo_t info() override { return buckets_[0].info(); }

 private:
  std::vector<signvote::Bucket> buckets_;
  std::vector<Grads> sets_;
  std::vector<std::vector<float>> outs_;
};

#define BENCH_CHECK_CUDA(call)                                                            \
  do {                                                                                    \
    const cudaError_t bench_e_ = (call);                                                  \
    if (bench_e_ != cudaSuccess)                                                          \
      throw signvote::Error(svUnhandledCudaError, std::string(#call) + ": " +             \
                                                      cudaGetErrorString(bench_e_));      \
  } while (0)

// SV_BACKEND_CUDA: device buffers, one stream per rank, device time by CUDA events (the
// exchange ends with a barrier of all ranks' streams, so rank 0's stream sees the whole step).
class CudaRunner final : public Runner {
 public:
  CudaRunner(const std::vector<svComm_t>& comms, const svBucketConfig_t& cfg)
      : W_(static_cast<int>(comms.size())), n_(cfg.count), comm0_(comms[0]) {
    for (svComm_t c : comms) {
      svBucket_t b = nullptr;
      signvote::check(svBucketCreate(&b, c, &cfg), c);
      buckets_.push_back(b);
      size_t bytes = 0;
      signvote::check(svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr), c);
      wsBytes_.push_back(bytes);
      ws_.push_back(alloc(bytes));
      outs_.push_back(alloc(4 * n_));
      cudaStream_t s;
      BENCH_CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
      streams_.push_back(s);
    }
    for (int set = 0; set < 4; ++set)
      for (int r = 0; r < W_; ++r) in_[set].push_back(alloc(4 * n_));
    BENCH_CHECK_CUDA(cudaEventCreate(&t0_));
    BENCH_CHECK_CUDA(cudaEventCreate(&t1_));
  }
  ~CudaRunner() override {
    cudaDeviceSynchronize();
    for (svBucket_t b : buckets_) svBucketDestroy(b);
    for (void* p : owned_) cudaFree(p);
    for (cudaStream_t s : streams_) cudaStreamDestroy(s);
    cudaEventDestroy(t0_);
    cudaEventDestroy(t1_);
  }
  void load(int set, const Grads& g) override {
    for (int r = 0; r < W_; ++r)
      BENCH_CHECK_CUDA(cudaMemcpy(in_[set][r], g[r].data(), 4 * n_, cudaMemcpyHostToDevice));
  }
  void step(int set) override {
    enqueue(set);
    BENCH_CHECK_CUDA(cudaDeviceSynchronize());
    svResult_t e = svSuccess;
    signvote::check(svCommGetAsyncError(comm0_, &e), comm0_);
    if (e != svSuccess) throw signvote::Error(e, "the device reported a failed exchange");
  }
  double timedUs(int warmup, int iters) override {
    for (int i = 0; i < warmup; ++i) enqueue(i % 3);
    BENCH_CHECK_CUDA(cudaEventRecord(t0_, streams_[0]));
    for (int i = 0; i < iters; ++i) enqueue(i % 3);
    BENCH_CHECK_CUDA(cudaEventRecord(t1_, streams_[0]));
    BENCH_CHECK_CUDA(cudaEventSynchronize(t1_));
    float ms = 0;
    BENCH_CHECK_CUDA(cudaEventElapsedTime(&ms, t0_, t1_));
    return 1e3 * ms / iters;
  }
  std::vector<float> output(int r) override {
    std::vector<float> v(n_);
    BENCH_CHECK_CUDA(cudaMemcpy(v.data(), outs_[r], 4 * n_, cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<float> residual(int r) override {
    std::vector<float> v(n_);
    signvote::check(svBucketGetResidual(buckets_[r], v.data()), comm0_);
    return v;
  }
  svBucketInfo_t info() override {
    svBucketInfo_t i{};
    signvote::check(svBucketGetInfo(buckets_[0], &i), comm0_);
    return i;
  }

 private:
  void* alloc(size_t bytes) {
    void* p = nullptr;
    BENCH_CHECK_CUDA(cudaMalloc(&p, bytes ? bytes : 1));
    owned_.push_back(p);
    return p;
  }
  void enqueue(int set) {
    signvote::group([&] {
      for (int r = 0; r < W_; ++r) {
        size_t bytes = wsBytes_[r];
        signvote::check(svExchange(buckets_[r], in_[set][r], outs_[r], ws_[r], &bytes,
                                   streams_[r]), comm0_);
      }
    });
  }
  int W_;
  uint64_t n_;
  svComm_t comm0_;
  std::vector<svBucket_t> buckets_;
  std::vector<size_t> wsBytes_;
  std::vector<void*> ws_, outs_, owned_;
  std::vector<void*> in_[4];
  std::vector<cudaStream_t> streams_;
  cudaEvent_t t0_, t1_;
};

bench::Row runSize(const bench::Options& o, Runner& run, uint64_t bytes, std::mt19937_64& rng) {
  const uint64_t count = bytes / 4;
  const int W = o.ranks;
  // Three input sets in rotation, so that repeated iterations do not see identical data.
  for (int s = 0; s < 3; ++s) run.load(s, randomGrads(W, count, rng));
  const double us = run.timedUs(o.warmup, o.iters);
  uint64_t wrong = 0;
  const svBucketInfo_t info = run.info();
  const bool stateful = info.stateFloats != 0;
  for (int c = 0; c < o.checkIters; ++c) {
    const Grads fresh = randomGrads(W, count, rng);
    std::vector<std::vector<float>> residuals;
    if (stateful)
      for (int r = 0; r < W; ++r) residuals.push_back(run.residual(r));
    const svBucketInfo_t now = run.info();
    const std::vector<std::vector<float>> expect = bench::straightExchange(
        {o.scheme, o.vote, o.rho, o.momentum, info.k, now.downK, now.chunk,
         now.averageNext != 0, info.format == SV_FORMAT_FP32, &fresh, &residuals});
    run.load(3, fresh);
    run.step(3);
    for (int r = 0; r < W; ++r) {
      wrong += countDifferent(run.output(r), expect[r]);
      if (stateful) wrong += countDifferent(run.residual(r), residuals[r]);
    }
  }
  return {bytes, count, info.k, info.format, info.wireBytes, info.denseWireBytes,
          info.bitsPerKept, us, static_cast<double>(bytes) / (us * 1e3), wrong};
}

int kernelMain(bench::Options o, const std::string& device) {
  if (!o.ranksGiven) o.ranks = 8;
  const std::string line = "backend CUDA kernels on " + device;
  bench::printKernelHeader(o, line);
  std::vector<bench::KernelRow> rows;
  try {
    rows = bench::runKernelMode(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  uint64_t wrong = 0;
  for (const auto& r : rows) wrong += r.wrong;
  return bench::finishRun(o, "kernels", line, bench::kernelRecords(rows), wrong);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  const int parsed = bench::parseOptions(argc, argv, &o);
  if (parsed != 0) return parsed == 1 ? 0 : 2;
  std::string device;
  const bool gpu = bench::cudaDevicePresent(&device);
  // Without a GPU, exit 4 lets ctest report a skip; the GPU lane (SIGNVOTE_REQUIRE_GPU=1)
  // wants a failure.
  const char* req = std::getenv("SIGNVOTE_REQUIRE_GPU");
  const int noGpu = req != nullptr && std::strcmp(req, "1") == 0 ? 1 : 4;
  if (o.mode == bench::Mode::kKernels && !gpu) {
    std::fprintf(stderr, "signvote-bench: --mode kernels needs a GPU (%s)\n", device.c_str());
    return noGpu;
  }
  if (o.mode == bench::Mode::kKernels || (o.mode == bench::Mode::kAuto && gpu))
    return kernelMain(o, device);
  if (o.backend == SV_BACKEND_CUDA && !gpu) {
    std::fprintf(stderr, "signvote-bench: --backend cuda needs a GPU (%s)\n", device.c_str());
    return noGpu;
  }
  const std::string line =
      o.backend == SV_BACKEND_CUDA
          ? "backend CUDA (loopback world of " + std::to_string(o.ranks) + " ranks on " + device +
                ", one stream per rank; time: device time of one exchange of all ranks)"
          : "backend host" + std::string(gpu ? " (--backend cuda runs the collective on " +
                                                   device + ")"
                                             : " (" + device + ")");
  bench::printHeader(o, line);
  std::vector<bench::Row> rows;
  uint64_t wrong = 0;
  try {
    std::vector<signvote::Comm> hostComms;
    std::vector<svComm_t> cudaComms(o.ranks);
    if (o.backend == SV_BACKEND_CUDA) {
      svConfig_t cc = SV_CONFIG_INITIALIZER;
      cc.backend = SV_BACKEND_CUDA;
      signvote::check(svCommInitLoopback(cudaComms.data(), o.ranks, &cc));
    } else {
      hostComms = signvote::Comm::loopback(o.ranks);
    }
    std::mt19937_64 rng(o.seed);
    for (uint64_t bytes = o.minBytes; bytes <= o.maxBytes;) {
      const uint64_t b = bytes / 4 * 4;
      const svBucketConfig_t cfg = bucketConfig(o, b / 4);
      std::unique_ptr<Runner> run;
      if (o.backend == SV_BACKEND_CUDA) run = std::make_unique<CudaRunner>(cudaComms, cfg);
      else run = std::make_unique<HostRunner>(hostComms, cfg);
      const bench::Row row = runSize(o, *run, b, rng);
      bench::printRow(row);
      rows.push_back(row);
      wrong += row.wrong;
      const auto next = static_cast<uint64_t>(static_cast<double>(bytes) * o.stepFactor);
      bytes = std::max(next, bytes + 4);
    }
    for (svComm_t c : cudaComms)
      if (c) svCommDestroy(c);
  } catch (const signvote::Error& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  return bench::finishRun(o, "collective", line, bench::jsonRecords(rows), wrong);
}
