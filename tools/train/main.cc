// signvote-train: a small data-parallel trainer that links signvote the way a user's trainer
// does (public API only). W ranks in one process over the loopback transport, an MLP 784-H-10
// on Fashion-MNIST (Debian package dataset-fashion-mnist), IID or non-IID splits, every scheme
// of the library. The exchanges run on the host backend or, with --backend cuda, on the GPU.
// The model's math runs on the CPU (with --backend cuda, gradients are copied to device buffers
// and outputs back, which must give the host backend's bits, so the same CSV) or, with
// --model-device cuda, on the GPU, where gradients, exchanges and updates stay in device memory
// (the same CSV up to rounding: cuBLAS sums in other orders than OpenBLAS). Prints CSV rows
// (test accuracy every --eval-every steps, cumulative uplink bits: the rank's own message; wire
// bits: what it sends, which ring algorithms make equal to what it receives, so also its
// downlink). dgs gets lr * g and its output is the update itself. liec's ranks keep their own
// models (each applies its own error); on its averaging exchanges the trainer averages the
// models with a dense bucket, and it evaluates the mean of the ranks' models.
#include <boost/program_options.hpp>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_check.h"
#include "data.h"
#include "mlp.h"
#ifdef SIGNVOTE_TRAIN_GPU_MODEL
#include "mlp_cuda.h"
#endif
#include "signvote/signvote.hpp"

namespace po = boost::program_options;

namespace {

struct Args {
  std::string scheme = "s3gd_mv", split = "noniid", vote = "ternary", backend = "host",
              modelDevice = "host", dataDir, buckets = "model";
  int ranks = 10, batch = 64, steps = 1500, hidden = 100, evalEvery = 100, labels = 1;
  double density = 0.01, lr = 1e-3;
  float rho = 1.0f, momentum = 0.0f, sgdMomentum = 0.0f;
  double downDensity = 0.0;
  unsigned period = 0;
  bool adaptive = false;
  size_t kMin = 1, kBudget = 0;
  unsigned kWindow = 0;
  uint64_t seed = 1;
  bool header = true;
};

svScheme_t schemeOf(const std::string& s) {
  if (s == "dense") return SV_SCHEME_DENSE;
  if (s == "signsgd_mv") return SV_SCHEME_SIGNSGD_MV;
  if (s == "s3gd_mv") return SV_SCHEME_S3GD_MV;
  if (s == "ef_sign") return SV_SCHEME_EF_SIGN;
  if (s == "topk_ef") return SV_SCHEME_TOPK_EF;
  if (s == "dgs") return SV_SCHEME_DGS;
  if (s == "liec") return SV_SCHEME_LIEC;
  throw std::invalid_argument("--scheme '" + s + "' is not one of dense|signsgd_mv|s3gd_mv|"
                              "ef_sign|topk_ef|dgs|liec");
}

// Bytes a rank puts on the wire per step as its own message (uplink), by format.
uint64_t uplinkBytes(const svBucketInfo_t& info, uint64_t n, int ranks, svVote_t vote,
                     bool average) {
  const uint64_t words = (n + 63) / 64;
  switch (info.format) {
    case SV_FORMAT_SPARSE:
    case SV_FORMAT_SCALED_SIGNS:
    case SV_FORMAT_SPARSE_VALUES: return info.lastRecordBytes;  // follows K under adaptive K
    case SV_FORMAT_SIGNS: return 64 + (vote == SV_VOTE_BINARY ? 1 : 2) * words * 8;
    case SV_FORMAT_COUNTS: return 64 + words * 64 * (ranks <= 127 ? 1 : 2);
    case SV_FORMAT_CHUNK_SIGNS:  // its messages to the W owners; fp32 on averaging exchanges
      return average ? 64 + 4 * n : 64 + ranks * (2 * info.chunk / 64 + 1) * 8;
    default: return 64 + 4 * n;
  }
}

// Waits for the device and turns a verdict the device set (NaN under the error policy, corrupt
// or mismatched messages) into an exception.
void settle(svComm_t comm) {
  TRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  svResult_t verdict = svSuccess;
  signvote::check(svCommGetAsyncError(comm, &verdict), comm);
  if (verdict != svSuccess) throw signvote::Error(verdict, svGetLastError(comm));
}

// One stream per rank (none for the host backend); they outlive everything enqueued on them.
struct Streams {
  Streams(int ranks, bool cuda) {
    for (int r = 0; cuda && r < ranks; ++r)
      TRAIN_CUDA_CHECK(cudaStreamCreateWithFlags(&s.emplace_back(), cudaStreamNonBlocking));
  }
  ~Streams() {
    if (!s.empty()) cudaDeviceSynchronize();
    for (cudaStream_t t : s) cudaStreamDestroy(t);
  }
  Streams(const Streams&) = delete;
  Streams& operator=(const Streams&) = delete;
  std::vector<cudaStream_t> s;
};

template <typename T>
struct DeviceArray {
  explicit DeviceArray(size_t count) {
    TRAIN_CUDA_CHECK(
        cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(count, 1) * sizeof(T)));
  }
  ~DeviceArray() { cudaFree(p); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  T* p = nullptr;
};

// Per rank of a world, one bucket per segment (offset, count) of the parameter vector, and their
// grouped exchange: one segment is the whole model, one per tensor is the seeds' per-layer
// top-K. SV_BACKEND_HOST exchanges host vectors in place of them. SV_BACKEND_CUDA enqueues on
// device buffers (rank r on streams[r], device workspaces), or, for host vectors, copies them
// to device buffers, exchanges there, settles and copies the outputs back.
class Exchanger {
 public:
  using Segments = std::vector<std::pair<size_t, size_t>>;
  Exchanger(const std::vector<signvote::Comm>& comms, svBucketConfig_t cfg,
            const Segments& segments, const std::vector<cudaStream_t>& streams)
      : segments_(segments), W_(comms.size()), streams_(streams), comm0_(comms[0].get()) {
    for (const auto& segment : segments_) {
      n_ += segment.second;
      cfg.count = segment.second;
      for (const auto& c : comms) buckets_.emplace_back(c, cfg);
    }
    for (size_t b = 0; !streams_.empty() && b < buckets_.size(); ++b) {
      wsBytes_.push_back(std::max<size_t>(buckets_[b].info().workspaceBytes, 1));
      ws_.push_back(std::make_unique<DeviceArray<char>>(wsBytes_.back()));
    }
  }

  bool averageNext() const { return buckets_[0].info().averageNext; }
  // Sums over the segments of rank 0's last exchange: uplink bytes (see uplinkBytes), wire
  // bytes and K.
  void lastTotals(svVote_t vote, bool average, uint64_t* up, uint64_t* wire, uint64_t* k) const {
    for (size_t s = 0; s < segments_.size(); ++s) {
      const svBucketInfo_t info = buckets_[s * W_].info();
      *up += uplinkBytes(info, segments_[s].second, static_cast<int>(W_), vote, average);
      *wire += info.lastWireBytes;
      *k += info.lastK;
    }
  }

  // SV_BACKEND_CUDA: enqueues rank r's exchange of the device vector in + r * n into out + r * n
  // (out may be in) on streams[r], n the count of all segments.
  void enqueue(const float* in, float* out) {
    signvote::group([&] {
      for (size_t s = 0; s < segments_.size(); ++s)
        for (size_t r = 0; r < W_; ++r) {
          const size_t b = s * W_ + r;
          size_t bytes = wsBytes_[b];
          const size_t at = r * n_ + segments_[s].first;
          signvote::check(svExchange(buckets_[b].get(), in + at, out + at, ws_[b]->p, &bytes,
                                     streams_[r]),
                          comm0_);
        }
    });
  }

  // out[r] = rank r's output for host vector in[r] (out may be in).
  void exchange(const std::vector<std::vector<float>>& in, std::vector<std::vector<float>>& out) {
    if (streams_.empty()) {
      signvote::group([&] {
        for (size_t s = 0; s < segments_.size(); ++s)
          for (size_t r = 0; r < W_; ++r)
            buckets_[s * W_ + r].exchange(in[r].data() + segments_[s].first,
                                          out[r].data() + segments_[s].first);
      });
      return;
    }
    if (!staging_) staging_ = std::make_unique<DeviceArray<float>>(2 * W_ * n_);
    float *dIn = staging_->p, *dOut = staging_->p + W_ * n_;
    for (size_t r = 0; r < W_; ++r) {
      // On the rank's stream: a pageable cudaMemcpy may return before its DMA lands, and the
      // non-blocking streams would not wait for it.
      TRAIN_CUDA_CHECK(cudaMemcpyAsync(dIn + r * n_, in[r].data(), n_ * 4,
                                       cudaMemcpyHostToDevice, streams_[r]));
    }
    enqueue(dIn, dOut);
    settle(comm0_);
    for (size_t r = 0; r < W_; ++r)
      TRAIN_CUDA_CHECK(cudaMemcpy(out[r].data(), dOut + r * n_, n_ * 4, cudaMemcpyDeviceToHost));
  }

 private:
  Segments segments_;
  size_t W_, n_ = 0;
  std::vector<cudaStream_t> streams_;
  svComm_t comm0_;
  std::vector<signvote::Bucket> buckets_;  // segment-major: buckets_[s * W + r]
  std::vector<size_t> wsBytes_;            // per bucket (SV_BACKEND_CUDA)
  std::vector<std::unique_ptr<DeviceArray<char>>> ws_;
  std::unique_ptr<DeviceArray<float>> staging_;  // host vectors on SV_BACKEND_CUDA
};

// The W ranks' models and their step: on the CPU (HostModels) or the GPU (DeviceModels).
// liec's ranks keep their own models; the other schemes' outputs are equal on every rank, so
// one model stands for all of them (on the GPU, W replicas that must stay bit-identical).
class Models {
 public:
  virtual ~Models() = default;
  // Rank r's gradient on the samples `index` of the training set (times lr for dgs, whose
  // SAMomentum takes lr inside the momentum); its loss joins takeLoss's mean.
  virtual void gradient(int r, const std::vector<uint32_t>& index) = 0;
  // Exchanges the ranks' gradients and steps every model by its rank's output:
  // params -= lr * u, u the output or, with mu != 0, the heavy-ball buffer mu * u + output.
  virtual void exchangeAndStep(Exchanger& buckets, float lr, float mu) = 0;
  // Every rank's model becomes the exact mean of them (liec's averaging exchange).
  virtual void average(Exchanger& averagers) = 0;
  // The mean loss of the gradients since the last call.
  virtual double takeLoss() = 0;
  // Test accuracy of the model, or (liec) of the mean of the ranks' models summed in rank order.
  virtual double accuracy() = 0;
};

class HostModels : public Models {
 public:
  HostModels(const Args& a, const train::Dataset& trainSet, const train::Dataset& testSet,
             const std::vector<float>& init, bool perRank, bool dgs)
      : mlp_(a.hidden), train_(trainSet), test_(testSet), dgs_(dgs),
        lr_(static_cast<float>(a.lr)), models_(perRank ? a.ranks : 1, init), grads_(a.ranks),
        outs_(a.ranks, std::vector<float>(init.size())),
        velocity_(models_.size(), std::vector<float>(init.size(), 0.0f)),
        x_(size_t(a.batch) * train::kIn), y_(a.batch) {}

  void gradient(int r, const std::vector<uint32_t>& index) override {
    for (size_t b = 0; b < index.size(); ++b) {
      std::copy_n(&train_.images[size_t(index[b]) * train::kIn], train::kIn,
                  &x_[b * train::kIn]);
      y_[b] = train_.labels[index[b]];
    }
    lossSum_ += mlp_.lossAndGrad(model(r), x_.data(), y_.data(), static_cast<int>(index.size()),
                                 &grads_[r]);
    ++lossCount_;
    if (dgs_)
      for (float& v : grads_[r]) v *= lr_;
  }
  void exchangeAndStep(Exchanger& buckets, float lr, float mu) override {
    buckets.exchange(grads_, outs_);
    for (size_t m = 0; m < models_.size(); ++m)
      train::sgdStep(models_[m].data(), velocity_[m].data(), outs_[m].data(), models_[m].size(),
                     lr, mu);
  }
  void average(Exchanger& averagers) override { averagers.exchange(models_, models_); }
  double takeLoss() override {
    const double mean = lossSum_ / lossCount_;
    lossSum_ = 0;
    lossCount_ = 0;
    return mean;
  }
  double accuracy() override {
    std::vector<float> evalModel = models_[0];
    for (size_t r = 1; r < models_.size(); ++r)
      for (size_t i = 0; i < evalModel.size(); ++i) evalModel[i] += models_[r][i];
    if (models_.size() > 1)
      for (float& v : evalModel) v /= static_cast<float>(models_.size());
    return mlp_.accuracy(evalModel, test_.images.data(), test_.labels.data(), test_.size());
  }

 private:
  std::vector<float>& model(int r) { return models_[models_.size() > 1 ? r : 0]; }
  train::Mlp mlp_;
  const train::Dataset &train_, &test_;
  bool dgs_;
  float lr_;
  std::vector<std::vector<float>> models_, grads_, outs_, velocity_;
  std::vector<float> x_;
  std::vector<uint8_t> y_;
  double lossSum_ = 0;
  int lossCount_ = 0;
};

#ifdef SIGNVOTE_TRAIN_GPU_MODEL
// The model on the GPU (--model-device cuda): data sets copied to the device once; per step
// only the batch's sample indices go up. Rank r's forward and backward pass, its exchange and
// its SGD step are enqueued on its stream, with no host wait between steps (adaptive K's norm
// aside, which the library waits for). Each rank updates its own replica of the model with its
// own output, as one GPU per rank would; the replicas must stay bit-identical (checked at every
// evaluation), except liec's, which differ by design until an averaging exchange.
class DeviceModels : public Models {
 public:
  DeviceModels(const Args& a, const train::Dataset& trainSet, const train::Dataset& testSet,
               const std::vector<float>& init, bool perRank, bool dgs,
               const std::vector<cudaStream_t>& streams, svComm_t comm0)
      : W_(a.ranks), batch_(a.batch), n_(init.size()), perRank_(perRank), dgs_(dgs),
        lr_(static_cast<float>(a.lr)), streams_(streams), comm0_(comm0),
        trainImages_(trainSet.images.size()), testImages_(testSet.images.size()),
        trainLabels_(trainSet.size()), testLabels_(testSet.size()), testSize_(testSet.size()),
        models_(W_ * n_), grads_(W_ * n_), outs_(W_ * n_), velocity_(W_ * n_), evalModel_(n_),
        index_(W_ * batch_), x_(W_ * batch_ * train::kIn), y_(W_ * batch_), lossSums_(W_),
        correct_(1) {
    upload(trainImages_.p, trainSet.images);
    upload(testImages_.p, testSet.images);
    upload(trainLabels_.p, trainSet.labels);
    upload(testLabels_.p, testSet.labels);
    for (size_t r = 0; r < W_; ++r)
      TRAIN_CUDA_CHECK(cudaMemcpy(models_.p + r * n_, init.data(), n_ * 4, cudaMemcpyHostToDevice));
    TRAIN_CUDA_CHECK(cudaMemset(velocity_.p, 0, W_ * n_ * 4));
    TRAIN_CUDA_CHECK(cudaMemset(lossSums_.p, 0, W_ * sizeof(double)));
    for (size_t r = 0; r < W_; ++r)  // rank 0's also evaluates, in pieces of 1,000 samples
      mlps_.push_back(std::make_unique<train::CudaMlp>(a.hidden, r == 0 ? std::max(a.batch, 1000)
                                                                        : a.batch,
                                                       streams_[r]));
    // The copies and sets above ran on the legacy stream, which the ranks' non-blocking streams
    // do not wait for.
    TRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void gradient(int r, const std::vector<uint32_t>& index) override {
    const size_t at = size_t(r) * batch_;
    // From pageable memory: the call returns once the indices are staged, so the caller may
    // reuse `index`.
    TRAIN_CUDA_CHECK(cudaMemcpyAsync(index_.p + at, index.data(), batch_ * 4,
                                     cudaMemcpyHostToDevice, streams_[r]));
    float* x = x_.p + at * train::kIn;
    train::gatherBatch(trainImages_.p, trainLabels_.p, index_.p + at, static_cast<int>(batch_),
                       x, y_.p + at, streams_[r]);
    float* grad = grads_.p + r * n_;
    mlps_[r]->lossAndGrad(models_.p + r * n_, x, y_.p + at, static_cast<int>(batch_), grad,
                          lossSums_.p + r);
    if (dgs_) train::scale(grad, n_, lr_, streams_[r]);
    ++steps_;
  }
  void exchangeAndStep(Exchanger& buckets, float lr, float mu) override {
    buckets.enqueue(grads_.p, outs_.p);
    for (size_t r = 0; r < W_; ++r)
      train::sgdStep(models_.p + r * n_, velocity_.p + r * n_, outs_.p + r * n_, n_, lr, mu,
                     streams_[r]);
  }
  void average(Exchanger& averagers) override {
    averagers.enqueue(models_.p, models_.p);
  }
  double takeLoss() override {
    settle(comm0_);
    std::vector<double> sums(W_);
    TRAIN_CUDA_CHECK(cudaMemcpy(sums.data(), lossSums_.p, W_ * sizeof(double),
                                cudaMemcpyDeviceToHost));
    for (size_t r = 0; r < W_; ++r)
      TRAIN_CUDA_CHECK(cudaMemsetAsync(lossSums_.p + r, 0, sizeof(double), streams_[r]));
    const double mean = std::accumulate(sums.begin(), sums.end(), 0.0) / double(steps_);
    steps_ = 0;
    return mean;
  }
  double accuracy() override {
    settle(comm0_);
    if (!perRank_) checkReplicas();
    const float* model = models_.p;
    if (perRank_) {
      train::meanOf(models_.p, static_cast<int>(W_), n_, evalModel_.p, streams_[0]);
      model = evalModel_.p;
    }
    TRAIN_CUDA_CHECK(cudaMemsetAsync(correct_.p, 0, sizeof(unsigned long long), streams_[0]));
    mlps_[0]->countCorrect(model, testImages_.p, testLabels_.p, testSize_, correct_.p);
    unsigned long long correct = 0;
    TRAIN_CUDA_CHECK(cudaMemcpyAsync(&correct, correct_.p, sizeof correct,
                                     cudaMemcpyDeviceToHost, streams_[0]));
    TRAIN_CUDA_CHECK(cudaStreamSynchronize(streams_[0]));
    return testSize_ ? double(correct) / double(testSize_) : 0.0;
  }

 private:
  template <typename T>
  static void upload(T* dst, const std::vector<T>& src) {
    TRAIN_CUDA_CHECK(cudaMemcpy(dst, src.data(), src.size() * sizeof(T), cudaMemcpyHostToDevice));
  }
  // Every rank got the same outputs, so every replica must hold the same bits.
  void checkReplicas() const {
    std::vector<float> all(W_ * n_);
    TRAIN_CUDA_CHECK(cudaMemcpy(all.data(), models_.p, all.size() * 4, cudaMemcpyDeviceToHost));
    for (size_t r = 1; r < W_; ++r)
      if (std::memcmp(&all[r * n_], all.data(), n_ * 4) != 0)
        throw std::runtime_error("rank " + std::to_string(r) +
                                 "'s model replica differs from rank 0's");
  }
  size_t W_, batch_, n_;
  bool perRank_, dgs_;
  float lr_;
  std::vector<cudaStream_t> streams_;
  svComm_t comm0_;
  DeviceArray<float> trainImages_, testImages_;
  DeviceArray<uint8_t> trainLabels_, testLabels_;
  size_t testSize_;
  DeviceArray<float> models_, grads_, outs_, velocity_, evalModel_;  // W x n, rank-major
  DeviceArray<uint32_t> index_;
  DeviceArray<float> x_;
  DeviceArray<uint8_t> y_;
  DeviceArray<double> lossSums_;  // per rank, since the last takeLoss
  DeviceArray<unsigned long long> correct_;
  std::vector<std::unique_ptr<train::CudaMlp>> mlps_;  // per rank, on its stream
  uint64_t steps_ = 0;  // gradients since the last takeLoss
};
#endif  // SIGNVOTE_TRAIN_GPU_MODEL

svBucketConfig_t bucketConfig(const Args& a) {
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = schemeOf(a.scheme);
  cfg.vote = a.vote == "binary" ? SV_VOTE_BINARY : SV_VOTE_TERNARY;
  if (cfg.scheme == SV_SCHEME_S3GD_MV || cfg.scheme == SV_SCHEME_TOPK_EF ||
      cfg.scheme == SV_SCHEME_DGS)
    cfg.density = a.density;
  cfg.rho = a.rho;
  cfg.momentum = a.momentum;
  if (cfg.scheme == SV_SCHEME_DGS) cfg.downDensity = a.downDensity;
  if (cfg.scheme == SV_SCHEME_LIEC) cfg.period = a.period;
  if (a.adaptive) {
    cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
    cfg.kMin = a.kMin;
    cfg.kBudget = a.kBudget;
    cfg.kWindow = a.kWindow;
  }
  return cfg;
}

int run(const Args& a) {
  const bool cuda = a.backend == "cuda";
  if (cuda) {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::cerr << "signvote-train: --backend cuda needs a GPU (none found)\n";
      return 4;  // the benchmark's "skipped" code
    }
  }
  const train::Dataset trainSet = train::loadFashionMnist(a.dataDir, "train");
  const train::Dataset testSet = train::loadFashionMnist(a.dataDir, "t10k");
  std::mt19937_64 rng(a.seed);
  const auto shards = a.split == "iid" ? train::splitIid(trainSet, a.ranks, rng)
                                       : train::splitByLabels(trainSet, a.ranks, a.labels, rng);
  const train::MlpLayout layout(a.hidden);
  std::vector<float> init;
  layout.init(&init, rng);
  const svBucketConfig_t cfg = bucketConfig(a);
  const bool perRank = cfg.scheme == SV_SCHEME_LIEC;  // the ranks' models drift apart
  const bool dgs = cfg.scheme == SV_SCHEME_DGS;

  svConfig_t worldConfig = SV_CONFIG_INITIALIZER;
  worldConfig.backend = cuda ? SV_BACKEND_CUDA : SV_BACKEND_HOST;
  std::vector<signvote::Comm> comms = signvote::Comm::loopback(a.ranks, &worldConfig);
  const Streams streams(a.ranks, cuda);
  const Exchanger::Segments whole{{0, layout.size}};
  Exchanger buckets(comms, cfg, a.buckets == "tensor" ? layout.tensors() : whole, streams.s);
  std::unique_ptr<Exchanger> averagers;  // liec: exact model averaging
  if (perRank) {
    svBucketConfig_t dense = SV_BUCKET_CONFIG_INITIALIZER;
    dense.scheme = SV_SCHEME_DENSE;
    averagers = std::make_unique<Exchanger>(comms, dense, whole, streams.s);
  }
  std::unique_ptr<Models> models;
#ifdef SIGNVOTE_TRAIN_GPU_MODEL
  if (a.modelDevice == "cuda")
    models = std::make_unique<DeviceModels>(a, trainSet, testSet, init, perRank, dgs, streams.s,
                                            comms[0].get());
#endif
  if (!models) models = std::make_unique<HostModels>(a, trainSet, testSet, init, perRank, dgs);
  uint64_t upBits = 0, wireBits = 0, kSum = 0;
  // dgs's output is the update itself (lr is inside SAMomentum).
  const float lr = dgs ? 1.0f : static_cast<float>(a.lr);

  std::vector<std::vector<uint32_t>> order = shards;
  std::vector<size_t> cursor(a.ranks, 0);
  std::vector<uint32_t> index(a.batch);
  if (a.header)
    std::printf("scheme,split,labels,ranks,batch,lr,density,rho,momentum,seed,step,train_loss,"
                "test_acc,uplink_bits,wire_bits,adaptive,k_sum,down_density,period,"
                "sgd_momentum,buckets\n");
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= a.steps; ++step) {
    for (int r = 0; r < a.ranks; ++r) {
      for (int b = 0; b < a.batch; ++b) {
        if (cursor[r] == 0) std::shuffle(order[r].begin(), order[r].end(), rng);
        index[b] = order[r][cursor[r]];
        cursor[r] = (cursor[r] + 1) % order[r].size();
      }
      models->gradient(r, index);
    }
    const bool average = perRank && buckets.averageNext();
    models->exchangeAndStep(buckets, lr, a.sgdMomentum);
    uint64_t up = 0, wire = 0;
    buckets.lastTotals(cfg.vote, average, &up, &wire, &kSum);
    if (average) {
      models->average(*averagers);
      uint64_t k = 0;
      averagers->lastTotals(cfg.vote, false, &up, &wire, &k);
    }
    upBits += 8 * up;
    wireBits += 8 * wire;
    if (step % a.evalEvery == 0 || step == a.steps) {
      const double loss = models->takeLoss();
      const double acc = models->accuracy();
      std::printf("%s,%s,%d,%d,%d,%g,%g,%g,%g,%llu,%d,%.5f,%.4f,%llu,%llu,%d,%llu,%g,%u,%g,%s\n",
                  a.scheme.c_str(), a.split.c_str(), a.labels, a.ranks, a.batch, a.lr, a.density,
                  static_cast<double>(a.rho), static_cast<double>(a.momentum),
                  static_cast<unsigned long long>(a.seed), step, loss, acc,
                  static_cast<unsigned long long>(upBits),
                  static_cast<unsigned long long>(wireBits), a.adaptive ? 1 : 0,
                  static_cast<unsigned long long>(kSum), a.downDensity, a.period,
                  static_cast<double>(a.sgdMomentum), a.buckets.c_str());
      std::fflush(stdout);
    }
  }
  if (cuda) settle(comms[0].get());
  // Wall time of the training loop (evaluations included), on stderr: the CSV stays the same.
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::fprintf(stderr, "signvote-train: %d steps in %.3f s, %.3f ms per step (model on %s, "
               "exchanges on %s)\n", a.steps, s, 1e3 * s / a.steps, a.modelDevice.c_str(),
               a.backend.c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args a;
  // The Debian package's folder, or SIGNVOTE_FASHION_MNIST (the GPU lane unpacks the package
  // beside the checkout: tools/gpu-deps.sh).
  const char* dataEnv = std::getenv("SIGNVOTE_FASHION_MNIST");
  a.dataDir = dataEnv != nullptr && *dataEnv != '\0' ? dataEnv : "/usr/share/datasets/fashion-mnist";
  po::options_description desc("signvote-train: data-parallel MLP on Fashion-MNIST through "
                               "signvote\nOptions");
  desc.add_options()
      ("help,h", "print this help")
      ("scheme", po::value(&a.scheme)->default_value(a.scheme), "dense | signsgd_mv | s3gd_mv | ef_sign | topk_ef | dgs | liec")
      ("vote", po::value(&a.vote)->default_value(a.vote), "ternary | binary (signsgd_mv)")
      ("backend", po::value(&a.backend)->default_value(a.backend), "host | cuda: where the exchanges run")
      ("model-device", po::value(&a.modelDevice)->default_value(a.modelDevice), "host | cuda: where the model's math runs (cuda needs --backend cuda)")
      ("density", po::value(&a.density)->default_value(a.density), "s3gd_mv, topk_ef, dgs: K / N")
      ("rho", po::value(&a.rho)->default_value(a.rho), "s3gd_mv: residual decay")
      ("momentum", po::value(&a.momentum)->default_value(a.momentum), "Signum / topk_ef momentum; dgs: SAMomentum in (0, 1)")
      ("down-density", po::value(&a.downDensity)->default_value(a.downDensity), "dgs: downlink secondary compression density (0: off)")
      ("period", po::value(&a.period)->default_value(a.period), "liec: averaging period tau (0: never)")
      ("sgd-momentum", po::value(&a.sgdMomentum)->default_value(a.sgdMomentum), "heavy-ball momentum of the trainer on the exchanged update (0: plain SGD)")
      ("buckets", po::value(&a.buckets)->default_value(a.buckets), "model: one bucket | tensor: one per parameter tensor (the seeds' per-layer top-K), exchanged as one group")
      ("ranks,r", po::value(&a.ranks)->default_value(a.ranks), "data-parallel ranks")
      ("batch", po::value(&a.batch)->default_value(a.batch), "samples per rank per step")
      ("steps", po::value(&a.steps)->default_value(a.steps), "training steps")
      ("lr", po::value(&a.lr)->default_value(a.lr), "step size")
      ("hidden", po::value(&a.hidden)->default_value(a.hidden), "hidden units")
      ("split", po::value(&a.split)->default_value(a.split), "iid | noniid")
      ("labels", po::value(&a.labels)->default_value(a.labels), "non-IID: labels per rank")
      ("eval-every", po::value(&a.evalEvery)->default_value(a.evalEvery), "steps between test evaluations")
      ("adaptive-k", "s3gd_mv, topk_ef, dgs: SV_ADAPTIVE_K_NORM_RATIO (K from --density is Kbar)")
      ("kmin", po::value(&a.kMin)->default_value(a.kMin), "adaptive K: smallest K")
      ("kbudget", po::value(&a.kBudget)->default_value(a.kBudget), "adaptive K: sum of K per window (0: none)")
      ("kwindow", po::value(&a.kWindow)->default_value(a.kWindow), "adaptive K: exchanges per budget window")
      ("seed", po::value(&a.seed)->default_value(a.seed), "seed of the split, the batches and the weights")
      ("data-dir", po::value(&a.dataDir)->default_value(a.dataDir), "folder of the gzipped IDX files (default: SIGNVOTE_FASHION_MNIST, else the Debian package's)")
      ("no-header", "omit the CSV header line");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 0;
    }
    po::notify(vm);
    a.header = !vm.count("no-header");
    a.adaptive = vm.count("adaptive-k") != 0;
    if (a.split != "iid" && a.split != "noniid")
      throw std::invalid_argument("--split must be iid or noniid");
    if (a.buckets != "model" && a.buckets != "tensor")
      throw std::invalid_argument("--buckets must be model or tensor");
    if (a.backend != "host" && a.backend != "cuda")
      throw std::invalid_argument("--backend must be host or cuda");
    if (a.modelDevice != "host" && a.modelDevice != "cuda")
      throw std::invalid_argument("--model-device must be host or cuda");
    if (a.modelDevice == "cuda" && a.backend != "cuda")
      throw std::invalid_argument("--model-device cuda needs --backend cuda (the gradients stay "
                                  "on the GPU)");
#ifndef SIGNVOTE_TRAIN_GPU_MODEL
    if (a.modelDevice == "cuda")
      throw std::invalid_argument("--model-device cuda: this build has no cuBLAS");
#endif
    if (a.ranks < 1 || a.batch < 1 || a.steps < 1 || a.hidden < 1 || a.evalEvery < 1)
      throw std::invalid_argument("--ranks, --batch, --steps, --hidden, --eval-every must be >= 1");
    schemeOf(a.scheme);
  } catch (const std::exception& e) {
    std::cerr << "signvote-train: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  try {
    return run(a);
  } catch (const std::exception& e) {
    std::cerr << "signvote-train: " << e.what() << "\n";
    return 3;
  }
}
