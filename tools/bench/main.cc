// signvote-bench: nccl-tests-style sweeps. Collective mode times one exchange of all ranks of a
// loopback world (or, with --transport gloo or nccl, of one rank per process) per bucket size,
// and a dense allreduce of the same bytes beside it (the dense scheme; over NCCL, plain
// ncclAllReduce), and checks it bit for bit against straight_reference.cc;
// kernel mode (kernel_mode.cc) times the GPU kernels. The exit status is non-zero when any
// element is wrong.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <nccl.h>
#include <strings.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "kernel_mode.h"
#include "options.h"
#include "report.h"
#include "signvote/signvote.hpp"
#include "straight_reference.h"
#include "wire_mode.h"

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


// A gloo world's sum over the ranks of `count` floats each, through a dense bucket (its mean,
// times W; integers well below 2^24 / W come back exactly after rounding).
using RankSum = std::function<void(const float* mine, float* sum)>;
RankSum glooSum(signvote::Comm& comm, size_t count) {
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = SV_SCHEME_DENSE;
  cfg.count = count;
  auto bucket = std::make_shared<signvote::Bucket>(comm, cfg);
  const int W = comm.size();
  return [bucket, W, count](const float* mine, float* sum) {
    signvote::group([&] { bucket->exchange(mine, sum); });
    for (size_t i = 0; i < count; ++i) sum[i] *= static_cast<float>(W);
  };
}

// The microseconds comm spent in its transport's calls so far; -1 when its timing is off.
double transportUs(svComm_t comm) {
  svCommTimes_t t{};
  const svResult_t r = svCommGetTimes(comm, &t);
  if (r == svInvalidUsage) return -1;
  signvote::check(r, comm);
  return t.transportUs;
}

// One bucket size on one backend: W ranks' buckets, input sets 0..3 (3 rotate, 3 is for the
// check), outputs and workspaces.
class Runner {
 public:
  virtual ~Runner() = default;
  virtual void load(int set, const Grads& g) = 0;
  virtual void step(int set) = 0;  // one grouped exchange of all ranks, complete on return
  // Time of one of `iters` exchanges after `warmup` ones, and in *commUs the part of it inside
  // the transport's calls (-1 when not timed).
  virtual double timedUs(int warmup, int iters, double* commUs) = 0;
  virtual std::vector<float> output(int r) = 0;
  virtual std::vector<float> residual(int r) = 0;
  virtual svBucketInfo_t info() = 0;
  virtual std::vector<int> ranks() = 0;  // the ranks this process drives
  // dgs_async across processes: the workers the server served in the last step, in order, on
  // every process of the world (a collective call); otherwise empty (a loopback world serves
  // in rank order).
  virtual std::vector<int> served() { return {}; }
};

// SV_BACKEND_HOST: the ranks this process drives (all of a loopback world, one of a gloo
// world), each exchange grouped. dgs_async: a step is a round of pushes, each worker's once:
// in rank order in a loopback world; across processes the server serves W - 1 pushes in the
// order they arrive and each worker pushes once.
class HostRunner final : public Runner {
 public:
  HostRunner(std::vector<signvote::Comm>& comms, const std::vector<int>& ranks,
             const svBucketConfig_t& cfg)
      : ranks_(ranks), comm0_(comms[0].get()), sets_(4),
        outs_(comms.size(), std::vector<float>(cfg.count)),
        async_(cfg.scheme == SV_SCHEME_DGS_ASYNC), W_(comms[0].size()) {
    for (auto& c : comms) buckets_.emplace_back(c, cfg);
    if (async_ && ranks_.size() == 1) orderSum_ = glooSum(comms[0], W_ - 1);  // served()
  }
  void load(int set, const Grads& g) override { sets_[set] = g; }
  void step(int set) override { run(set, true); }
  double timedUs(int warmup, int iters, double* commUs) override {
    for (int i = 0; i < warmup; ++i) run(i % 3, false);
    const double before = transportUs(comm0_);
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) run(i % 3, false);
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    *commUs = before < 0 ? -1 : (transportUs(comm0_) - before) / iters;
    return us / iters;
  }
  std::vector<float> output(int r) override { return outs_[local(r)]; }
  std::vector<float> residual(int r) override { return buckets_[local(r)].residual(); }
  svBucketInfo_t info() override { return buckets_[0].info(); }
  std::vector<int> ranks() override { return ranks_; }
  std::vector<int> served() override {
    if (!orderSum_) return {};
    // The server's list, zeros on the workers: the sum gives it back to every rank.
    std::vector<float> mine(static_cast<size_t>(W_ - 1), 0.0f), sum(mine.size());
    for (size_t i = 0; i < served_.size(); ++i) mine[i] = static_cast<float>(served_[i]);
    orderSum_(mine.data(), sum.data());
    std::vector<int> order;
    for (float x : sum) order.push_back(static_cast<int>(std::lround(x)));
    return order;
  }

 private:
  // One step; recordOrder: a server in its own process notes whom it served (for served(),
  // outside the timed loop).
  void run(int set, bool recordOrder) {
    if (async_) {
      served_.clear();
      if (ranks_.size() > 1) {  // a loopback world: the server with each worker in turn
        for (size_t w = 1; w < buckets_.size(); ++w)
          signvote::group([&] {
            buckets_[0].exchange(nullptr, outs_[0].data());
            buckets_[w].exchange(sets_[set][w].data(), outs_[w].data());
          });
      } else if (ranks_[0] == 0) {
        for (int w = 1; w < W_; ++w) {
          buckets_[0].exchange(nullptr, outs_[0].data());
          if (recordOrder) served_.push_back(buckets_[0].info().lastPeer);
        }
      } else {
        buckets_[0].exchange(sets_[set][ranks_[0]].data(), outs_[0].data());
      }
      return;
    }
    signvote::group([&] {
      for (size_t i = 0; i < buckets_.size(); ++i)
        buckets_[i].exchange(sets_[set][ranks_[i]].data(), outs_[i].data());
    });
  }
  size_t local(int r) const {
    return static_cast<size_t>(std::find(ranks_.begin(), ranks_.end(), r) - ranks_.begin());
  }
  std::vector<int> ranks_;
  svComm_t comm0_;
  std::vector<signvote::Bucket> buckets_;
  std::vector<Grads> sets_;
  std::vector<std::vector<float>> outs_;
  bool async_;
  int W_;
  std::vector<int> served_;  // dgs_async, a server in its own process: the last step's order
  RankSum orderSum_;  // dgs_async across processes
};

#define BENCH_CHECK_CUDA(call)                                                            \
  do {                                                                                    \
    const cudaError_t bench_e_ = (call);                                                  \
    if (bench_e_ != cudaSuccess)                                                          \
      throw signvote::Error(svUnhandledCudaError, std::string(#call) + ": " +             \
                                                      cudaGetErrorString(bench_e_));      \
  } while (0)

// Device time in us of one of `iters` calls of enqueue(i) on `streams` (the first one times
// them). With graphLaunches > 0 the iters are captured once into a CUDA graph (the other
// streams fork from the first and rejoin it) and the graph is launched that many times, as
// nccl-tests' -G does.
double timeStreams(const std::vector<cudaStream_t>& streams, int iters, int graphLaunches,
                   const std::function<void(int)>& enqueue) {
  cudaStream_t s0 = streams[0];
  std::vector<cudaEvent_t> ev(streams.size() + 2);
  for (cudaEvent_t& e : ev) BENCH_CHECK_CUDA(cudaEventCreate(&e));
  cudaEvent_t t0 = ev[0], t1 = ev[1];
  cudaGraphExec_t exec = nullptr;
  if (graphLaunches > 0) {
    cudaGraph_t graph = nullptr;
    BENCH_CHECK_CUDA(cudaStreamBeginCapture(s0, cudaStreamCaptureModeThreadLocal));
    BENCH_CHECK_CUDA(cudaEventRecord(ev[2], s0));
    for (size_t i = 1; i < streams.size(); ++i)
      BENCH_CHECK_CUDA(cudaStreamWaitEvent(streams[i], ev[2], 0));
    for (int i = 0; i < iters; ++i) enqueue(i);
    for (size_t i = 1; i < streams.size(); ++i) {
      BENCH_CHECK_CUDA(cudaEventRecord(ev[2 + i], streams[i]));
      BENCH_CHECK_CUDA(cudaStreamWaitEvent(s0, ev[2 + i], 0));
    }
    BENCH_CHECK_CUDA(cudaStreamEndCapture(s0, &graph));
    BENCH_CHECK_CUDA(cudaGraphInstantiate(&exec, graph, 0));
    cudaGraphDestroy(graph);
    BENCH_CHECK_CUDA(cudaGraphLaunch(exec, s0));  // upload and first run, untimed
  }
  BENCH_CHECK_CUDA(cudaEventRecord(t0, s0));
  if (exec != nullptr) {
    for (int l = 0; l < graphLaunches; ++l) BENCH_CHECK_CUDA(cudaGraphLaunch(exec, s0));
  } else {
    for (int i = 0; i < iters; ++i) enqueue(i);
  }
  BENCH_CHECK_CUDA(cudaEventRecord(t1, s0));
  BENCH_CHECK_CUDA(cudaEventSynchronize(t1));
  float ms = 0;
  BENCH_CHECK_CUDA(cudaEventElapsedTime(&ms, t0, t1));
  if (exec != nullptr) cudaGraphExecDestroy(exec);
  for (cudaEvent_t e : ev) cudaEventDestroy(e);
  return 1e3 * ms / (static_cast<double>(iters) * std::max(graphLaunches, 1));
}

// The input sets of one bucket size in device memory, [set][local rank], shared by the runners
// of that size (timed, checked, dense) so that device memory holds them once.
class DeviceSets {
 public:
  DeviceSets(const std::vector<int>& ranks, uint64_t n) : ranks_(ranks), n_(n) {}
  ~DeviceSets() {
    for (auto& set : in_)
      for (void* p : set) cudaFree(p);
  }
  void load(int set, const Grads& g) {
    if (in_[set].empty()) {
      for (size_t i = 0; i < ranks_.size(); ++i) {
        void* p = nullptr;
        BENCH_CHECK_CUDA(cudaMalloc(&p, n_ ? 4 * n_ : 1));
        in_[set].push_back(p);
      }
    }
    for (size_t i = 0; i < ranks_.size(); ++i)
      BENCH_CHECK_CUDA(cudaMemcpy(in_[set][i], g[ranks_[i]].data(), 4 * n_,
                                  cudaMemcpyHostToDevice));
    // A pageable copy may return before its DMA lands; the exchanges' non-blocking streams do
    // not wait for the legacy stream.
    BENCH_CHECK_CUDA(cudaDeviceSynchronize());
  }
  void* at(int set, size_t i) const { return in_[set][i]; }

 private:
  std::vector<int> ranks_;
  uint64_t n_;
  std::vector<void*> in_[4];
};

// SV_BACKEND_CUDA: the ranks this process drives (all of a loopback world, one over NCCL),
// device buffers, one stream per rank, device time by CUDA events (a loopback exchange ends
// with a barrier of all ranks' streams, so the first stream sees the whole step).
class CudaRunner final : public Runner {
 public:
  CudaRunner(const std::vector<svComm_t>& comms, const std::vector<int>& ranks,
             const svBucketConfig_t& cfg, std::shared_ptr<DeviceSets> sets, int graphLaunches)
      : ranks_(ranks), n_(cfg.count), graphLaunches_(graphLaunches), comm0_(comms[0]),
        sets_(std::move(sets)) {
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
  }
  ~CudaRunner() override {
    cudaDeviceSynchronize();
    for (svBucket_t b : buckets_) svBucketDestroy(b);
    for (void* p : owned_) cudaFree(p);
    for (cudaStream_t s : streams_) cudaStreamDestroy(s);
  }
  void load(int set, const Grads& g) override { sets_->load(set, g); }
  void step(int set) override {
    enqueue(set);
    BENCH_CHECK_CUDA(cudaDeviceSynchronize());
    svResult_t e = svSuccess;
    signvote::check(svCommGetAsyncError(comm0_, &e), comm0_);
    if (e != svSuccess) throw signvote::Error(e, "the device reported a failed exchange");
  }
  double timedUs(int warmup, int iters, double* commUs) override {
    for (int i = 0; i < warmup; ++i) enqueue(i % 3);
    // Waits for the warm-up's timed calls, so that `before` counts all of them.
    const double before = graphLaunches_ > 0 ? -1 : transportUs(comm0_);
    const double us =
        timeStreams(streams_, iters, graphLaunches_, [this](int i) { enqueue(i % 3); });
    *commUs = before < 0 ? -1 : (transportUs(comm0_) - before) / iters;
    return us;
  }
  std::vector<float> output(int r) override {
    std::vector<float> v(n_);
    BENCH_CHECK_CUDA(cudaMemcpy(v.data(), outs_[local(r)], 4 * n_, cudaMemcpyDeviceToHost));
    return v;
  }
  std::vector<float> residual(int r) override {
    std::vector<float> v(info().stateFloats);  // 2 x count for topk_ef's u, dgs's downlink
    signvote::check(svBucketGetResidual(buckets_[local(r)], v.data()), comm0_);
    return v;
  }
  svBucketInfo_t info() override {
    svBucketInfo_t i{};
    signvote::check(svBucketGetInfo(buckets_[0], &i), comm0_);
    return i;
  }
  std::vector<int> ranks() override { return ranks_; }

 private:
  size_t local(int r) const {
    return static_cast<size_t>(std::find(ranks_.begin(), ranks_.end(), r) - ranks_.begin());
  }
  void* alloc(size_t bytes) {
    void* p = nullptr;
    BENCH_CHECK_CUDA(cudaMalloc(&p, bytes ? bytes : 1));
    owned_.push_back(p);
    return p;
  }
  void enqueue(int set) {
    signvote::group([&] {
      for (size_t i = 0; i < buckets_.size(); ++i) {
        size_t bytes = wsBytes_[i];
        signvote::check(svExchange(buckets_[i], sets_->at(set, i), outs_[i], ws_[i], &bytes,
                                   streams_[i]), comm0_);
      }
    });
  }
  std::vector<int> ranks_;
  uint64_t n_;
  int graphLaunches_;
  svComm_t comm0_;
  std::vector<svBucket_t> buckets_;
  std::vector<size_t> wsBytes_;
  std::vector<void*> ws_, outs_, owned_;
  std::shared_ptr<DeviceSets> sets_;
  std::vector<cudaStream_t> streams_;
};

// Makes the runner of one bucket config on this process's ranks.
using MakeRunner = std::function<std::unique_ptr<Runner>(const svBucketConfig_t&)>;
// The dense column's time in us for a bucket of `count` floats; empty: the dense scheme.
using DenseTimer = std::function<double(uint64_t count)>;

// The timing and the check of one bucket size, one runner alive at a time (device memory): the
// scheme timed, then the dense scheme on the same inputs, then the check on fresh buckets
// (every rank's state is the initial one, the same everywhere): each process knows every
// rank's gradients (one seeded stream) and follows every rank's state in the reference, and
// compares its own ranks' outputs and states. Returns this process's row.
bench::Row runSize(const bench::Options& o, const MakeRunner& make, const DenseTimer& dense,
                   const svBucketConfig_t& cfg, uint64_t bytes, std::mt19937_64& rng) {
  const uint64_t count = bytes / 4;
  const int W = o.ranks;
  // Three input sets in rotation, so that repeated iterations do not see identical data.
  std::vector<Grads> sets;
  for (int s = 0; s < 3; ++s) sets.push_back(randomGrads(W, count, rng));
  auto timed = [&](const svBucketConfig_t& c, svBucketInfo_t* info, double* commUs) {
    const std::unique_ptr<Runner> run = make(c);
    for (int s = 0; s < 3; ++s) run->load(s, sets[s]);
    if (info != nullptr) *info = run->info();
    return run->timedUs(o.warmup, o.iters, commUs);
  };
  svBucketInfo_t info{};
  double commUs = -1, denseCommUs = -1;
  const double us = timed(cfg, &info, &commUs);
  svBucketConfig_t denseCfg = SV_BUCKET_CONFIG_INITIALIZER;
  denseCfg.scheme = SV_SCHEME_DENSE;
  denseCfg.count = cfg.count;
  const double denseUs = dense ? dense(cfg.count) : timed(denseCfg, nullptr, &denseCommUs);
  sets.clear();
  const std::unique_ptr<Runner> fresh = make(cfg);
  uint64_t wrong = 0;
  const bool stateful = info.stateFloats != 0;
  const std::vector<int> mine = fresh->ranks();
  std::vector<std::vector<float>> residuals;
  if (stateful && info.scheme == SV_SCHEME_DGS_ASYNC) {
    // The server's state (T, then v_1 .. v_{W-1}) is its own; a fresh bucket's is zeros.
    for (int r = 0; r < W; ++r)
      residuals.push_back(std::find(mine.begin(), mine.end(), r) != mine.end()
                              ? fresh->residual(r)
                              : std::vector<float>(r == 0 ? W * count : count, 0.0f));
  } else if (stateful) {
    residuals.assign(W, fresh->residual(mine[0]));
  }
  for (int c = 0; c < o.checkIters; ++c) {
    const Grads g = randomGrads(W, count, rng);
    const svBucketInfo_t now = fresh->info();
    fresh->load(3, g);
    fresh->step(3);
    const std::vector<int> order = fresh->served();
    // Adaptive K: the reference keeps the K_t the library chose (its rule is tested apart).
    const uint64_t k = o.adaptive ? fresh->info().lastK : info.k;
    // info.scheme: dense after the library's fallback (--fallback-link).
    const std::vector<std::vector<float>> expect = bench::straightExchange(
        {info.scheme, o.vote, o.rho, o.momentum, k, now.downK, now.chunk, now.averageNext != 0,
         info.format == SV_FORMAT_FP32, &g, &residuals, &order});
    for (int r : mine) {
      wrong += countDifferent(fresh->output(r), expect[r]);
      if (stateful) wrong += countDifferent(fresh->residual(r), residuals[r]);
    }
  }
  bench::Row row{bytes, count, info.k, info.format, info.wireBytes, info.denseWireBytes,
                 info.bitsPerKept, us, static_cast<double>(bytes) / (us * 1e3), wrong, denseUs,
                 commUs, W};
  row.denseFallback = info.denseFallback != 0;
  row.modeledUs = info.modeledUs;
  row.modeledDenseUs = info.modeledDenseUs;
  return row;
}

// A multi-process world's ranks agree on a row: #wrong summed, times averaged (as nccl-tests
// does), through a sum of kFields floats over the ranks, exact for fewer than 2^22 wrong
// elements.
class AcrossRanks {
 public:
  static constexpr int kFields = 4;
  AcrossRanks(int nranks, RankSum sum) : nranks_(nranks), sum_(std::move(sum)) {}
  void combine(bench::Row* row) {
    const float mine[kFields] = {static_cast<float>(row->wrong), static_cast<float>(row->timeUs),
                                 static_cast<float>(row->denseUs),
                                 static_cast<float>(row->commUs)};
    float sum[kFields];
    sum_(mine, sum);
    row->wrong = static_cast<uint64_t>(std::llround(static_cast<double>(sum[0])));
    row->timeUs = sum[1] / nranks_;
    row->denseUs = sum[2] / nranks_;
    if (row->commUs >= 0) row->commUs = sum[3] / nranks_;  // every rank times, or none
    row->algbwGBs = static_cast<double>(row->bytes) / (row->timeUs * 1e3);
  }

 private:
  int nranks_;
  RankSum sum_;
};

#define BENCH_CHECK_NCCL(call)                                                         \
  do {                                                                                 \
    const ncclResult_t bench_n_ = (call);                                              \
    if (bench_n_ != ncclSuccess)                                                       \
      throw signvote::Error(svSystemError, std::string(#call) + ": " +                 \
                                               ncclGetErrorString(bench_n_));          \
  } while (0)

// One rank of an NCCL world on this process's GPU: rank 0 publishes NCCL's unique id in the
// store directory (torch's file:// rendezvous), the others wait up to two minutes for it.
struct NcclWorld {
  ncclComm_t nccl = nullptr;
  svComm_t comm = nullptr;
  int rank = 0, nranks = 1, device = 0;
  bool checked = false;  // SV_CHECK_GLOBAL: each exchange waits for the fingerprints
  NcclWorld(int r, int n, const std::string& store, svTiming_t timing)
      : rank(r), nranks(n) {
    int devices = 1;
    BENCH_CHECK_CUDA(cudaGetDeviceCount(&devices));
    const char* local = std::getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    if (local == nullptr) local = std::getenv("LOCAL_RANK");
    device = (local != nullptr ? std::atoi(local) : r) % devices;
    BENCH_CHECK_CUDA(cudaSetDevice(device));
    ncclUniqueId id{};
    mkdir(store.c_str(), 0777);
    const std::string path = store + "/nccl-id";
    if (r == 0) {
      BENCH_CHECK_NCCL(ncclGetUniqueId(&id));
      std::ofstream(path + ".tmp", std::ios::binary).write(id.internal, sizeof(id.internal));
      std::rename((path + ".tmp").c_str(), path.c_str());
    } else {
      const auto until = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      std::ifstream in;
      while (!(in = std::ifstream(path, std::ios::binary)).is_open()) {
        if (std::chrono::steady_clock::now() > until)
          throw signvote::Error(svTimeout, "no NCCL id from rank 0 in " + path);
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      in.read(id.internal, sizeof(id.internal));
    }
    BENCH_CHECK_NCCL(ncclCommInitRank(&nccl, n, id, r));
    svConfig_t cfg = SV_CONFIG_INITIALIZER;
    cfg.backend = SV_BACKEND_CUDA;
    cfg.timing = timing;
    // Timed without the per-exchange host check unless SIGNVOTE_CHECK asks for it (the
    // library resolves and validates the variable).
    const char* env = std::getenv("SIGNVOTE_CHECK");
    if (env == nullptr) cfg.check = SV_CHECK_NONE;
    signvote::check(svCommInitFromNccl(&comm, nccl, &cfg));
    checked = env != nullptr && strcasecmp(env, "none") != 0;
  }
  ~NcclWorld() {
    if (comm) svCommDestroy(comm);
    if (nccl) ncclCommDestroy(nccl);
  }

  // The yardstick: ncclAllReduce (sum) of `count` floats, device time per call (in a graph
  // too under -G).
  double allReduceUs(uint64_t count, int warmup, int iters, int graphLaunches) const {
    void* buf = nullptr;
    cudaStream_t s = nullptr;
    BENCH_CHECK_CUDA(cudaMalloc(&buf, count ? 4 * count : 4));
    BENCH_CHECK_CUDA(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    // On s: a cudaMemset may still run when it returns, and s would not wait for it.
    BENCH_CHECK_CUDA(cudaMemsetAsync(buf, 0, count ? 4 * count : 4, s));
    auto call = [&](int) {
      BENCH_CHECK_NCCL(ncclAllReduce(buf, buf, count, ncclFloat32, ncclSum, nccl, s));
    };
    for (int i = 0; i < warmup; ++i) call(i);
    const double us = timeStreams({s}, iters, graphLaunches, call);
    cudaStreamDestroy(s);
    cudaFree(buf);
    return us;
  }

  RankSum sum() const {
    return [this](const float* mine, float* sum) {
      const size_t bytes = AcrossRanks::kFields * sizeof(float);
      float* d = nullptr;
      BENCH_CHECK_CUDA(cudaMalloc(&d, bytes));
      BENCH_CHECK_CUDA(cudaMemcpy(d, mine, bytes, cudaMemcpyHostToDevice));
      BENCH_CHECK_NCCL(ncclAllReduce(d, d, AcrossRanks::kFields, ncclFloat32, ncclSum, nccl,
                                     cudaStreamLegacy));
      BENCH_CHECK_CUDA(cudaMemcpy(sum, d, bytes, cudaMemcpyDeviceToHost));
      cudaFree(d);
    };
  }
};

// One rank of a gloo or NCCL world, placed by the launcher's environment: SIGNVOTE_RANK and
// SIGNVOTE_NRANKS, else Open MPI's (mpirun), MPICH's (PMI) or torchrun's variables.
struct Placement {
  int rank = 0, nranks = 0;
  std::string from;
};
Placement placement() {
  const char* pairs[][2] = {{"SIGNVOTE_RANK", "SIGNVOTE_NRANKS"},
                            {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"},
                            {"PMI_RANK", "PMI_SIZE"},
                            {"RANK", "WORLD_SIZE"}};
  for (const auto& p : pairs) {
    const char* rank = std::getenv(p[0]);
    const char* size = std::getenv(p[1]);
    if (rank == nullptr || size == nullptr) continue;
    char* end1 = nullptr;
    char* end2 = nullptr;
    const long r = std::strtol(rank, &end1, 10), n = std::strtol(size, &end2, 10);
    if (*rank == '\0' || *end1 != '\0' || *size == '\0' || *end2 != '\0' || n < 1 ||
        n > SV_MAX_RANKS || r < 0 || r >= n)
      throw signvote::Error(svInvalidArgument, std::string(p[0]) + " = '" + rank + "' and " +
                                                   p[1] + " = '" + size +
                                                   "' are not a rank and a world size");
    return {static_cast<int>(r), static_cast<int>(n), std::string(p[0]) + "/" + p[1]};
  }
  throw signvote::Error(svInvalidArgument,
                        "--transport gloo/nccl: no rank in the environment; launch one process per "
                        "rank with mpirun, torchrun, or SIGNVOTE_RANK and SIGNVOTE_NRANKS set");
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

int wireMain(bench::Options o) {
  if (!o.ranksGiven) o.ranks = 8;
  std::vector<bench::WireRow> rows;
  try {
    rows = bench::runWireMode(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  return bench::finishRun(o, "wire", "none (planned bytes only)", bench::wireRecords(rows), 0);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  const int parsed = bench::parseOptions(argc, argv, &o);
  if (parsed != 0) return parsed == 1 ? 0 : 2;
  if (o.mode == bench::Mode::kWire) return wireMain(o);
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
  std::vector<bench::Row> rows;
  uint64_t wrong = 0;
  std::string line;
  bool printer = true;  // gloo, nccl: only rank 0 prints
  try {
    std::vector<signvote::Comm> hostComms;  // the ranks this process drives
    std::vector<int> ranks;
    std::vector<svComm_t> cudaComms;
    std::unique_ptr<NcclWorld> nccl;
    std::unique_ptr<AcrossRanks> across;
    DenseTimer dense;
    svConfig_t config = SV_CONFIG_INITIALIZER;  // the communicators' (backend set below)
    config.timing = o.split ? SV_TIMING_ON : SV_TIMING_OFF;
    if (o.transport != bench::Transport::kLoopback) {
      const Placement at = placement();
      if (o.ranksGiven && o.ranks != at.nranks)
        throw signvote::Error(svInvalidArgument, "--ranks " + std::to_string(o.ranks) +
                                                     " but the launcher started " +
                                                     std::to_string(at.nranks));
      o.ranks = at.nranks;
      printer = at.rank == 0;
      ranks.push_back(at.rank);
      if (o.transport == bench::Transport::kGloo) {
        hostComms.push_back(signvote::Comm::gloo(at.nranks, at.rank, o.store, &config));
        across = std::make_unique<AcrossRanks>(at.nranks,
                                               glooSum(hostComms[0], AcrossRanks::kFields));
        line = "backend host, transport gloo (" + std::to_string(at.nranks) +
               " processes over TCP, placed by " + at.from +
               "; time: one exchange, averaged over the ranks)";
        if (o.scheme == SV_SCHEME_DGS_ASYNC)
          line += "; dgs_async: time of one round, each worker's push to rank 0, served in "
                  "arrival order";
      } else {
        nccl = std::make_unique<NcclWorld>(at.rank, at.nranks, o.store, config.timing);
        cudaComms.push_back(nccl->comm);
        across = std::make_unique<AcrossRanks>(at.nranks, nccl->sum());
        const NcclWorld* w = nccl.get();
        dense = [w, &o](uint64_t count) {
          return w->allReduceUs(count, o.warmup, o.iters, o.graphLaunches);
        };
        int version = 0;
        ncclGetVersion(&version);
        line = "backend CUDA, transport nccl (" + std::to_string(at.nranks) +
               " processes, placed by " + at.from + ", NCCL " + std::to_string(version) +
               ", rank 0 on " + device + "; check " + (nccl->checked ? "global" : "none") +
               "; dense column: ncclAllReduce sum; time: device time of one exchange, " +
               "averaged over the ranks)";
      }
    } else if (o.backend == SV_BACKEND_CUDA) {
      svConfig_t cc = config;
      cc.backend = SV_BACKEND_CUDA;
      cudaComms.assign(o.ranks, nullptr);
      signvote::check(svCommInitLoopback(cudaComms.data(), o.ranks, &cc));
      for (int r = 0; r < o.ranks; ++r) ranks.push_back(r);
      line = "backend CUDA (loopback world of " + std::to_string(o.ranks) + " ranks on " +
             device + ", one stream per rank; time: device time of one exchange of all ranks)";
    } else {
      hostComms = signvote::Comm::loopback(o.ranks, &config);
      for (int r = 0; r < o.ranks; ++r) ranks.push_back(r);
      line = "backend host" + std::string(gpu ? " (--backend cuda runs the collective on " +
                                                    device + ")"
                                              : " (" + device + ")");
      if (o.scheme == SV_SCHEME_DGS_ASYNC)
        line += "; dgs_async: time of one round, each worker's push to rank 0 in rank order";
    }
    if (printer) bench::printHeader(o, line);
    std::mt19937_64 rng(o.seed);
    for (uint64_t bytes = o.minBytes; bytes <= o.maxBytes;) {
      const uint64_t b = bytes / 4 * 4;
      const svBucketConfig_t cfg = bench::bucketConfig(o, b / 4);
      MakeRunner make;
      if (o.backend == SV_BACKEND_CUDA) {
        auto sets = std::make_shared<DeviceSets>(ranks, cfg.count);
        make = [&, sets](const svBucketConfig_t& c) {
          return std::unique_ptr<Runner>(
              new CudaRunner(cudaComms, ranks, c, sets, o.graphLaunches));
        };
      } else {
        make = [&](const svBucketConfig_t& c) {
          return std::unique_ptr<Runner>(new HostRunner(hostComms, ranks, c));
        };
      }
      bench::Row row = runSize(o, make, dense, cfg, b, rng);
      if (across) across->combine(&row);
      if (printer) bench::printRow(row);
      rows.push_back(row);
      wrong += row.wrong;
      const auto next = static_cast<uint64_t>(static_cast<double>(bytes) * o.stepFactor);
      bytes = std::max(next, bytes + 4);
    }
    if (nccl == nullptr)
      for (svComm_t c : cudaComms)
        if (c) svCommDestroy(c);
  } catch (const signvote::Error& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  if (!printer) return wrong == 0 ? 0 : 1;
  return bench::finishRun(o, "collective", line, bench::jsonRecords(rows), wrong);
}
