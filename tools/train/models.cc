#include "models.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <stdexcept>
#include <string>

#include "mlp.h"
#ifdef SIGNVOTE_TRAIN_GPU_MODEL
#include "mlp_cuda.h"
#endif

namespace train {

namespace {

class HostModels : public Models {
 public:
  explicit HostModels(const ModelSetup& s)
      : mlp_(s.hidden), train_(*s.trainSet), test_(*s.testSet), dgs_(s.dgs), lr_(s.lr),
        models_(s.perRank ? s.ranks : 1, *s.init), grads_(s.ranks),
        outs_(s.ranks, std::vector<float>(s.init->size())),
        velocity_(models_.size(), std::vector<float>(s.init->size(), 0.0f)),
        x_(size_t(s.batch) * kIn), y_(s.batch) {}

  void gradient(int r, const std::vector<uint32_t>& index) override {
    train_.gather(index, x_.data(), y_.data());
    lossSum_ += mlp_.lossAndGrad(model(r), x_.data(), y_.data(), static_cast<int>(index.size()),
                                 &grads_[r]);
    ++lossCount_;
    if (dgs_)
      for (float& v : grads_[r]) v *= lr_;
  }
  void exchangeAndStep(Exchanger& buckets, float lr, float mu) override {
    buckets.exchange(grads_, outs_);
    for (size_t m = 0; m < models_.size(); ++m)
      sgdStep(models_[m].data(), velocity_[m].data(), outs_[m].data(), models_[m].size(), lr,
              mu);
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
  Mlp mlp_;
  const Dataset &train_, &test_;
  bool dgs_;
  float lr_;
  std::vector<std::vector<float>> models_, grads_, outs_, velocity_;
  std::vector<float> x_;
  std::vector<uint8_t> y_;
  double lossSum_ = 0;
  int lossCount_ = 0;
};

#ifdef SIGNVOTE_TRAIN_GPU_MODEL
// Two pinned staging slots per rank for the batch indices, used in turn, and an event per slot
// recorded after its copy. A copy from pageable memory would first wait for the rank's stream
// to drain, that is for the previous step; a slot is refilled only once its copy of two steps
// ago has run.
class IndexStaging {
 public:
  IndexStaging(size_t ranks, size_t batch) : batch_(batch), uploads_(ranks), events_(2 * ranks) {
    TRAIN_CUDA_CHECK(cudaHostAlloc(reinterpret_cast<void**>(&slots_),
                                   std::max<size_t>(2 * ranks * batch, 1) * 4,
                                   cudaHostAllocDefault));
    for (cudaEvent_t& e : events_)
      TRAIN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  }
  ~IndexStaging() {
    for (cudaEvent_t e : events_) {  // no copy may still read the slots
      cudaEventSynchronize(e);
      cudaEventDestroy(e);
    }
    cudaFreeHost(slots_);
  }
  IndexStaging(const IndexStaging&) = delete;
  IndexStaging& operator=(const IndexStaging&) = delete;

  // Enqueues the copy of `index` (batch entries) to dst on rank r's stream.
  void upload(size_t r, const std::vector<uint32_t>& index, uint32_t* dst, cudaStream_t stream) {
    const uint64_t u = uploads_[r]++;
    const size_t slot = 2 * r + (u & 1);
    if (u >= 2) TRAIN_CUDA_CHECK(cudaEventSynchronize(events_[slot]));
    uint32_t* staged = slots_ + slot * batch_;
    std::copy_n(index.begin(), batch_, staged);
    TRAIN_CUDA_CHECK(cudaMemcpyAsync(dst, staged, batch_ * 4, cudaMemcpyHostToDevice, stream));
    TRAIN_CUDA_CHECK(cudaEventRecord(events_[slot], stream));
  }

 private:
  size_t batch_;
  uint32_t* slots_ = nullptr;
  std::vector<uint64_t> uploads_;  // per rank
  std::vector<cudaEvent_t> events_;
};

// The model on the GPU (--model-device cuda): data sets copied to the device once; per step
// only the batch's sample indices go up (through IndexStaging). Rank r's forward and backward
// pass, its exchange and its SGD step are enqueued on its stream; the host runs at most two
// steps ahead and waits for nothing else between steps (adaptive K's norm aside, which the
// library waits for). Each rank updates its own replica of the model with its
// own output, as one GPU per rank would; the replicas must stay bit-identical (checked at every
// evaluation), except liec's, which differ by design until an averaging exchange.
class DeviceModels : public Models {
 public:
  DeviceModels(const ModelSetup& s, const std::vector<cudaStream_t>& streams, svComm_t comm0)
      : W_(s.ranks), batch_(s.batch), n_(s.init->size()), perRank_(s.perRank), dgs_(s.dgs),
        lr_(s.lr), streams_(streams), comm0_(comm0),
        trainImages_(s.trainSet->images.size()), testImages_(s.testSet->images.size()),
        trainLabels_(s.trainSet->size()), testLabels_(s.testSet->size()),
        testSize_(s.testSet->size()),
        models_(W_ * n_), grads_(W_ * n_), outs_(W_ * n_), velocity_(W_ * n_), evalModel_(n_),
        index_(W_ * batch_), staging_(W_, batch_), x_(W_ * batch_ * kIn), y_(W_ * batch_),
        lossSums_(W_), correct_(1) {
    upload(trainImages_.p, s.trainSet->images);
    upload(testImages_.p, s.testSet->images);
    upload(trainLabels_.p, s.trainSet->labels);
    upload(testLabels_.p, s.testSet->labels);
    for (size_t r = 0; r < W_; ++r)
      TRAIN_CUDA_CHECK(
          cudaMemcpy(models_.p + r * n_, s.init->data(), n_ * 4, cudaMemcpyHostToDevice));
    TRAIN_CUDA_CHECK(cudaMemset(velocity_.p, 0, W_ * n_ * 4));
    TRAIN_CUDA_CHECK(cudaMemset(lossSums_.p, 0, W_ * sizeof(double)));
    for (size_t r = 0; r < W_; ++r)  // rank 0's also evaluates, in pieces of 1,000 samples
      mlps_.push_back(std::make_unique<CudaMlp>(s.hidden, r == 0 ? std::max(s.batch, 1000)
                                                                 : s.batch,
                                                streams_[r]));
    // The copies and sets above ran on the legacy stream, which the ranks' non-blocking streams
    // do not wait for.
    TRAIN_CUDA_CHECK(cudaDeviceSynchronize());
  }

  void gradient(int r, const std::vector<uint32_t>& index) override {
    const size_t at = size_t(r) * batch_;
    staging_.upload(r, index, index_.p + at, streams_[r]);
    float* x = x_.p + at * kIn;
    gatherBatch(trainImages_.p, trainLabels_.p, index_.p + at, static_cast<int>(batch_), x,
                y_.p + at, streams_[r]);
    float* grad = grads_.p + r * n_;
    mlps_[r]->lossAndGrad(models_.p + r * n_, x, y_.p + at, static_cast<int>(batch_), grad,
                          lossSums_.p + r);
    if (dgs_) scale(grad, n_, lr_, streams_[r]);
    ++steps_;
  }
  void exchangeAndStep(Exchanger& buckets, float lr, float mu) override {
    buckets.enqueue(grads_.p, outs_.p);
    for (size_t r = 0; r < W_; ++r)
      sgdStep(models_.p + r * n_, velocity_.p + r * n_, outs_.p + r * n_, n_, lr, mu,
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
      meanOf(models_.p, static_cast<int>(W_), n_, evalModel_.p, streams_[0]);
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
  DeviceArray<float> models_, grads_, outs_, velocity_;  // W x n, rank-major
  DeviceArray<float> evalModel_;                         // n: liec's mean model
  DeviceArray<uint32_t> index_;
  IndexStaging staging_;
  DeviceArray<float> x_;
  DeviceArray<uint8_t> y_;
  DeviceArray<double> lossSums_;  // per rank, since the last takeLoss
  DeviceArray<unsigned long long> correct_;
  std::vector<std::unique_ptr<CudaMlp>> mlps_;  // per rank, on its stream
  uint64_t steps_ = 0;  // gradients since the last takeLoss
};

#endif  // SIGNVOTE_TRAIN_GPU_MODEL

}  // namespace

std::unique_ptr<Models> makeHostModels(const ModelSetup& setup) {
  return std::make_unique<HostModels>(setup);
}

std::unique_ptr<Models> makeDeviceModels(const ModelSetup& setup,
                                         const std::vector<cudaStream_t>& streams,
                                         svComm_t comm0) {
#ifdef SIGNVOTE_TRAIN_GPU_MODEL
  return std::make_unique<DeviceModels>(setup, streams, comm0);
#else
  (void)setup;
  (void)streams;
  (void)comm0;
  return nullptr;
#endif
}

}  // namespace train
