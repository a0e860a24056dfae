// signvote-train: a small data-parallel trainer that links signvote the way a user's trainer
// does (public API only). W ranks in one process over the loopback transport, an MLP 784-H-10
// on Fashion-MNIST (Debian package dataset-fashion-mnist), IID or non-IID splits, every scheme
// of the library. The model's math runs on the CPU; the exchanges run on the host backend or,
// with --backend cuda, on the GPU (gradients copied to device buffers, outputs copied back),
// which must give the same bits, so the same CSV. Prints CSV rows (test accuracy every
// --eval-every steps, cumulative uplink bits: the rank's own message; wire bits: what it sends,
// which ring algorithms make equal to what it receives, so also its downlink).
// dgs gets lr * g and its output is the update itself. liec's ranks keep their own models (each
// applies its own error); on its averaging exchanges the trainer averages the models with a
// dense bucket, and it evaluates the mean of the ranks' models.
#include <boost/program_options.hpp>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "data.h"
#include "mlp.h"
#include "signvote/signvote.hpp"

namespace po = boost::program_options;

namespace {

struct Args {
  std::string scheme = "s3gd_mv", split = "noniid", vote = "ternary", backend = "host", dataDir,
              buckets = "model";
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

void cudaCheck(cudaError_t e, const char* what) {
  if (e != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(e));
}

// Per rank of a world, one bucket per segment (offset, count) of the parameter vector, and their
// grouped exchange of host vectors: one segment is the whole model, one per tensor is the
// seeds' per-layer top-K. SV_BACKEND_HOST exchanges in place of the vectors; SV_BACKEND_CUDA
// copies them to device buffers, exchanges there (device workspaces, a stream per rank), waits,
// checks the device's verdict and copies the outputs back.
class Exchanger {
 public:
  using Segments = std::vector<std::pair<size_t, size_t>>;
  Exchanger(const std::vector<signvote::Comm>& comms, svBucketConfig_t cfg,
            const Segments& segments, bool cuda)
      : segments_(segments), W_(comms.size()), cuda_(cuda), comm0_(comms[0].get()) {
    for (const auto& segment : segments_) {
      n_ += segment.second;
      cfg.count = segment.second;
      for (const auto& c : comms) buckets_.emplace_back(c, cfg);
    }
    if (!cuda_) return;
    for (size_t b = 0; b < buckets_.size(); ++b)
      wsBytes_.push_back(std::max<size_t>(buckets_[b].info().workspaceBytes, 1));
    for (size_t r = 0; r < W_; ++r) {
      for (void** p : {&in_.emplace_back(), &out_.emplace_back()})
        cudaCheck(cudaMalloc(p, std::max<size_t>(n_, 1) * 4), "cudaMalloc");
      cudaCheck(cudaStreamCreateWithFlags(&streams_.emplace_back(), cudaStreamNonBlocking),
                "cudaStreamCreate");
    }
    for (size_t bytes : wsBytes_) cudaCheck(cudaMalloc(&ws_.emplace_back(), bytes), "cudaMalloc");
  }
  ~Exchanger() {
    if (!cuda_) return;
    cudaDeviceSynchronize();
    for (void* p : in_) cudaFree(p);
    for (void* p : out_) cudaFree(p);
    for (void* p : ws_) cudaFree(p);
    for (cudaStream_t s : streams_) cudaStreamDestroy(s);
  }
  Exchanger(const Exchanger&) = delete;
  Exchanger& operator=(const Exchanger&) = delete;

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

  // out[r] = rank r's output for input in[r] (out may be in).
  void exchange(const std::vector<std::vector<float>>& in, std::vector<std::vector<float>>& out) {
    if (!cuda_) {
      signvote::group([&] {
        for (size_t s = 0; s < segments_.size(); ++s)
          for (size_t r = 0; r < W_; ++r)
            buckets_[s * W_ + r].exchange(in[r].data() + segments_[s].first,
                                          out[r].data() + segments_[s].first);
      });
      return;
    }
    for (size_t r = 0; r < W_; ++r)
      cudaCheck(cudaMemcpy(in_[r], in[r].data(), n_ * 4, cudaMemcpyHostToDevice), "cudaMemcpy");
    signvote::group([&] {
      for (size_t s = 0; s < segments_.size(); ++s)
        for (size_t r = 0; r < W_; ++r) {
          const size_t b = s * W_ + r;
          size_t bytes = wsBytes_[b];
          signvote::check(svExchange(buckets_[b].get(), static_cast<float*>(in_[r]) +
                                         segments_[s].first,
                                     static_cast<float*>(out_[r]) + segments_[s].first, ws_[b],
                                     &bytes, streams_[r]),
                          comm0_);
        }
    });
    cudaCheck(cudaDeviceSynchronize(), "cudaDeviceSynchronize");
    svResult_t verdict = svSuccess;
    signvote::check(svCommGetAsyncError(comm0_, &verdict), comm0_);
    if (verdict != svSuccess) throw signvote::Error(verdict, svGetLastError(comm0_));
    for (size_t r = 0; r < W_; ++r)
      cudaCheck(cudaMemcpy(out[r].data(), out_[r], n_ * 4, cudaMemcpyDeviceToHost), "cudaMemcpy");
  }

 private:
  Segments segments_;
  size_t W_, n_ = 0;
  bool cuda_;
  svComm_t comm0_;
  std::vector<signvote::Bucket> buckets_;  // segment-major: buckets_[s * W + r]
  std::vector<size_t> wsBytes_;            // per bucket
  std::vector<void*> in_, out_, ws_;
  std::vector<cudaStream_t> streams_;
};

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
  train::Mlp mlp(a.hidden);
  std::vector<float> init;
  mlp.init(&init, rng);
  const size_t n = mlp.size();
  const bool perRank = a.scheme == "liec";  // the ranks' models drift apart between averages
  std::vector<std::vector<float>> models(perRank ? a.ranks : 1, init);
  auto model = [&](int r) -> std::vector<float>& { return models[perRank ? r : 0]; };

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
  svConfig_t worldConfig = SV_CONFIG_INITIALIZER;
  worldConfig.backend = cuda ? SV_BACKEND_CUDA : SV_BACKEND_HOST;
  std::vector<signvote::Comm> comms = signvote::Comm::loopback(a.ranks, &worldConfig);
  const Exchanger::Segments whole{{0, n}};
  Exchanger buckets(comms, cfg, a.buckets == "tensor" ? mlp.tensors() : whole, cuda);
  std::unique_ptr<Exchanger> averagers;  // liec: exact model averaging
  if (perRank) {
    svBucketConfig_t dense = SV_BUCKET_CONFIG_INITIALIZER;
    dense.scheme = SV_SCHEME_DENSE;
    averagers = std::make_unique<Exchanger>(comms, dense, whole, cuda);
  }
  uint64_t upBits = 0, wireBits = 0, kSum = 0;
  const float lr = static_cast<float>(a.lr);

  std::vector<std::vector<float>> grads(a.ranks), outs(a.ranks, std::vector<float>(n));
  // --sgd-momentum: heavy-ball on the exchanged update, buf = mu * buf + out, per model.
  std::vector<std::vector<float>> velocity(models.size(), std::vector<float>(n, 0.0f));
  std::vector<std::vector<uint32_t>> order = shards;
  std::vector<size_t> cursor(a.ranks, 0);
  std::vector<float> x(size_t(a.batch) * 784);
  std::vector<uint8_t> y(a.batch);
  if (a.header)
    std::printf("scheme,split,labels,ranks,batch,lr,density,rho,momentum,seed,step,train_loss,"
                "test_acc,uplink_bits,wire_bits,adaptive,k_sum,down_density,period,"
                "sgd_momentum,buckets\n");
  double lossSum = 0;
  int lossCount = 0;
  for (int step = 1; step <= a.steps; ++step) {
    for (int r = 0; r < a.ranks; ++r) {
      for (int b = 0; b < a.batch; ++b) {
        if (cursor[r] == 0) std::shuffle(order[r].begin(), order[r].end(), rng);
        const uint32_t i = order[r][cursor[r]];
        cursor[r] = (cursor[r] + 1) % order[r].size();
        std::copy_n(&trainSet.images[size_t(i) * 784], 784, &x[size_t(b) * 784]);
        y[b] = trainSet.labels[i];
      }
      lossSum += mlp.lossAndGrad(model(r), x.data(), y.data(), a.batch, &grads[r]);
      ++lossCount;
      if (cfg.scheme == SV_SCHEME_DGS)  // SAMomentum takes lr inside the momentum
        for (float& v : grads[r]) v *= lr;
    }
    const bool average = perRank && buckets.averageNext();
    buckets.exchange(grads, outs);
    const float scale = cfg.scheme == SV_SCHEME_DGS ? 1.0f : lr;
    for (size_t m = 0; m < models.size(); ++m) {
      std::vector<float>& update = a.sgdMomentum != 0.0f ? velocity[m] : outs[m];
      if (a.sgdMomentum != 0.0f)
        for (size_t i = 0; i < n; ++i) update[i] = a.sgdMomentum * update[i] + outs[m][i];
      for (size_t i = 0; i < n; ++i) models[m][i] -= scale * update[i];
    }
    uint64_t up = 0, wire = 0;
    buckets.lastTotals(cfg.vote, average, &up, &wire, &kSum);
    if (average) {  // every rank's model becomes the exact mean
      averagers->exchange(models, models);
      uint64_t k = 0;
      averagers->lastTotals(cfg.vote, false, &up, &wire, &k);
    }
    upBits += 8 * up;
    wireBits += 8 * wire;
    if (step % a.evalEvery == 0 || step == a.steps) {
      std::vector<float> evalModel = models[0];
      if (perRank) {  // the mean of the ranks' models, summed in rank order
        for (int r = 1; r < a.ranks; ++r)
          for (size_t i = 0; i < n; ++i) evalModel[i] += models[r][i];
        for (float& v : evalModel) v /= static_cast<float>(a.ranks);
      }
      const double acc =
          mlp.accuracy(evalModel, testSet.images.data(), testSet.labels.data(), testSet.size());
      std::printf("%s,%s,%d,%d,%d,%g,%g,%g,%g,%llu,%d,%.5f,%.4f,%llu,%llu,%d,%llu,%g,%u,%g,%s\n",
                  a.scheme.c_str(), a.split.c_str(), a.labels, a.ranks, a.batch, a.lr, a.density,
                  static_cast<double>(a.rho), static_cast<double>(a.momentum),
                  static_cast<unsigned long long>(a.seed), step, lossSum / lossCount, acc,
                  static_cast<unsigned long long>(upBits),
                  static_cast<unsigned long long>(wireBits), a.adaptive ? 1 : 0,
                  static_cast<unsigned long long>(kSum), a.downDensity, a.period,
                  static_cast<double>(a.sgdMomentum), a.buckets.c_str());
      std::fflush(stdout);
      lossSum = 0;
      lossCount = 0;
    }
  }
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
      ("backend", po::value(&a.backend)->default_value(a.backend), "host | cuda: where the exchanges run (the model stays on the CPU)")
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
