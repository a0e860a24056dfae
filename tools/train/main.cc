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
// models with a dense bucket, and it evaluates the mean of the ranks' models. dgs_async runs
// --ranks workers and a parameter server (runAsync).
#include <boost/program_options.hpp>
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "data.h"
#include "exchanger.h"
#include "mlp.h"
#include "models.h"
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
  if (s == "dgs_async") return SV_SCHEME_DGS_ASYNC;
  throw std::invalid_argument("--scheme '" + s + "' is not one of dense|signsgd_mv|s3gd_mv|"
                              "ef_sign|topk_ef|dgs|liec|dgs_async");
}

svBucketConfig_t bucketConfig(const Args& a) {
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = schemeOf(a.scheme);
  cfg.vote = a.vote == "binary" ? SV_VOTE_BINARY : SV_VOTE_TERNARY;
  const bool dgs = cfg.scheme == SV_SCHEME_DGS || cfg.scheme == SV_SCHEME_DGS_ASYNC;
  if (cfg.scheme == SV_SCHEME_S3GD_MV || cfg.scheme == SV_SCHEME_TOPK_EF || dgs)
    cfg.density = a.density;
  cfg.rho = a.rho;
  cfg.momentum = a.momentum;
  if (dgs) cfg.downDensity = a.downDensity;
  if (cfg.scheme == SV_SCHEME_LIEC) cfg.period = a.period;
  if (a.adaptive) {
    cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
    cfg.kMin = a.kMin;
    cfg.kBudget = a.kBudget;
    cfg.kWindow = a.kWindow;
  }
  return cfg;
}

// Rank r's next batch of samples from its shard, reshuffled at each pass.
struct Batches {
  Batches(const std::vector<std::vector<uint32_t>>& shards, int batch)
      : order(shards), cursor(shards.size(), 0), index(batch) {}
  const std::vector<uint32_t>& next(size_t r, std::mt19937_64& rng) {
    for (uint32_t& i : index) {
      if (cursor[r] == 0) std::shuffle(order[r].begin(), order[r].end(), rng);
      i = order[r][cursor[r]];
      cursor[r] = (cursor[r] + 1) % order[r].size();
    }
    return index;
  }
  std::vector<std::vector<uint32_t>> order;
  std::vector<size_t> cursor;
  std::vector<uint32_t> index;
};

void printHeader(const Args& a) {
  if (a.header)
    std::printf("scheme,split,labels,ranks,batch,lr,density,rho,momentum,seed,step,train_loss,"
                "test_acc,uplink_bits,wire_bits,adaptive,k_sum,down_density,period,"
                "sgd_momentum,buckets\n");
}

void printRow(const Args& a, int step, double loss, double acc, uint64_t upBits,
              uint64_t wireBits, uint64_t kSum) {
  std::printf("%s,%s,%d,%d,%d,%g,%g,%g,%g,%llu,%d,%.5f,%.4f,%llu,%llu,%d,%llu,%g,%u,%g,%s\n",
              a.scheme.c_str(), a.split.c_str(), a.labels, a.ranks, a.batch, a.lr, a.density,
              static_cast<double>(a.rho), static_cast<double>(a.momentum),
              static_cast<unsigned long long>(a.seed), step, loss, acc,
              static_cast<unsigned long long>(upBits), static_cast<unsigned long long>(wireBits),
              a.adaptive ? 1 : 0, static_cast<unsigned long long>(kSum), a.downDensity, a.period,
              static_cast<double>(a.sgdMomentum), a.buckets.c_str());
  std::fflush(stdout);
}

// dgs_async: rank 0 of a world of ranks + 1 is the parameter server, ranks 1 .. ranks the
// workers, each with its own model and shard. A step is a round in which every worker, in an
// order drawn per round, takes the gradient at its own (stale) model, pushes lr * g and
// subtracts the server's reply. The evaluated model is the server's, theta_0 - T. Bits per
// worker and round: its push (uplink), its push and the reply (wire).
int runAsync(const Args& a, const train::Dataset& trainSet, const train::Dataset& testSet,
             const std::vector<std::vector<uint32_t>>& shards, const std::vector<float>& init,
             std::mt19937_64& rng) {
  if (a.backend != "host" || a.buckets != "model" || a.adaptive || a.sgdMomentum != 0.0f)
    throw std::invalid_argument("--scheme dgs_async trains on the host (--backend host), one "
                                "bucket for the model, without --adaptive-k or --sgd-momentum");
  svBucketConfig_t cfg = bucketConfig(a);
  cfg.count = init.size();
  std::vector<signvote::Comm> comms = signvote::Comm::loopback(a.ranks + 1);
  std::vector<signvote::Bucket> buckets;
  for (auto& c : comms) buckets.emplace_back(c, cfg);
  const size_t n = init.size();
  std::vector<std::vector<float>> theta(a.ranks, init);
  std::vector<float> grad(n), reply(n), total(n), eval(n), x(size_t(a.batch) * train::kIn);
  std::vector<uint8_t> y(a.batch);
  train::Mlp mlp(a.hidden);
  Batches batches(shards, a.batch);
  std::vector<int> order(a.ranks);
  const svBucketInfo_t info = buckets[1].info();
  uint64_t upBits = 0, wireBits = 0;
  double lossSum = 0;
  int lossCount = 0;
  printHeader(a);
  for (int step = 1; step <= a.steps; ++step) {
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), rng);
    for (int w : order) {
      trainSet.gather(batches.next(w, rng), x.data(), y.data());
      lossSum += mlp.lossAndGrad(theta[w], x.data(), y.data(), a.batch, &grad);
      ++lossCount;
      for (float& v : grad) v *= static_cast<float>(a.lr);
      signvote::group([&] {
        buckets[0].exchange(nullptr, total.data());
        buckets[w + 1].exchange(grad.data(), reply.data());
      });
      for (size_t i = 0; i < n; ++i) theta[w][i] -= reply[i];
    }
    upBits += 8 * info.recordBytes;
    wireBits += 8 * info.wireBytes;
    if (step % a.evalEvery == 0 || step == a.steps) {
      for (size_t i = 0; i < n; ++i) eval[i] = init[i] - total[i];
      printRow(a, step, lossSum / lossCount,
               mlp.accuracy(eval, testSet.images.data(), testSet.labels.data(), testSet.size()),
               upBits, wireBits, info.k * step);
      lossSum = 0;
      lossCount = 0;
    }
  }
  return 0;
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
  if (a.scheme == "dgs_async") return runAsync(a, trainSet, testSet, shards, init, rng);
  const svBucketConfig_t cfg = bucketConfig(a);
  const bool perRank = cfg.scheme == SV_SCHEME_LIEC;  // the ranks' models drift apart
  const bool dgs = cfg.scheme == SV_SCHEME_DGS;

  svConfig_t worldConfig = SV_CONFIG_INITIALIZER;
  worldConfig.backend = cuda ? SV_BACKEND_CUDA : SV_BACKEND_HOST;
  std::vector<signvote::Comm> comms = signvote::Comm::loopback(a.ranks, &worldConfig);
  const train::Streams streams(a.ranks, cuda);
  const train::Exchanger::Segments whole{{0, layout.size}};
  train::Exchanger buckets(comms, cfg, a.buckets == "tensor" ? layout.tensors() : whole,
                           streams.s);
  std::unique_ptr<train::Exchanger> averagers;  // liec: exact model averaging
  if (perRank) {
    svBucketConfig_t dense = SV_BUCKET_CONFIG_INITIALIZER;
    dense.scheme = SV_SCHEME_DENSE;
    averagers = std::make_unique<train::Exchanger>(comms, dense, whole, streams.s);
  }
  const train::ModelSetup setup{a.hidden, a.ranks, a.batch, static_cast<float>(a.lr), perRank,
                                dgs, &trainSet, &testSet, &init};
  const std::unique_ptr<train::Models> models =
      a.modelDevice == "cuda" ? train::makeDeviceModels(setup, streams.s, comms[0].get())
                              : train::makeHostModels(setup);
  uint64_t upBits = 0, wireBits = 0, kSum = 0;
  // dgs's output is the update itself (lr is inside SAMomentum).
  const float lr = dgs ? 1.0f : static_cast<float>(a.lr);

  Batches batches(shards, a.batch);
  printHeader(a);
  const auto start = std::chrono::steady_clock::now();
  for (int step = 1; step <= a.steps; ++step) {
    for (int r = 0; r < a.ranks; ++r) models->gradient(r, batches.next(r, rng));
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
      printRow(a, step, loss, models->accuracy(), upBits, wireBits, kSum);
    }
  }
  if (cuda) train::settle(comms[0].get());
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
      ("scheme", po::value(&a.scheme)->default_value(a.scheme), "dense | signsgd_mv | s3gd_mv | ef_sign | topk_ef | dgs | liec | dgs_async (host; --ranks workers and a server)")
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
