// signvote-bench: nccl-tests-style sweeps. Collective mode times one exchange of all ranks of a
// loopback world per bucket size and checks it bit for bit against straight_reference.cc;
// kernel mode (kernel_mode.cc) times the GPU kernels. The exit status is non-zero when any
// element is wrong.
#include <cuda_runtime_api.h>

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

bench::Row runSize(const bench::Options& o, std::vector<signvote::Comm>& comms, uint64_t bytes,
                   std::mt19937_64& rng) {
  const uint64_t count = bytes / 4;
  const int W = o.ranks;
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = o.scheme;
  cfg.vote = o.vote;
  cfg.format = o.format;
  cfg.count = count;
  cfg.k = o.density != 0.0 ? 0 : o.k;
  cfg.density = o.density;
  cfg.rho = o.rho;
  std::vector<signvote::Bucket> buckets;
  for (int r = 0; r < W; ++r) buckets.emplace_back(comms[r], cfg);
  std::vector<std::vector<float>> outs(W, std::vector<float>(count));
  auto step = [&](const Grads& g) {
    signvote::group([&] {
      for (int r = 0; r < W; ++r) buckets[r].exchange(g[r].data(), outs[r].data());
    });
  };
  // Three input sets in rotation, so that repeated iterations do not see identical data.
  std::vector<Grads> sets;
  for (int s = 0; s < 3; ++s) sets.push_back(randomGrads(W, count, rng));
  for (int i = 0; i < o.warmup; ++i) step(sets[i % 3]);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) step(sets[i % 3]);
  const double us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count() /
      o.iters;

  uint64_t wrong = 0;
  const bool stateful = o.scheme == SV_SCHEME_S3GD_MV;
  for (int c = 0; c < o.checkIters; ++c) {
    const Grads fresh = randomGrads(W, count, rng);
    std::vector<std::vector<float>> residuals;
    if (stateful)
      for (int r = 0; r < W; ++r) residuals.push_back(buckets[r].residual());
    const auto& info = buckets[0].info();
    const std::vector<float> expect =
        bench::straightExchange({o.scheme, o.vote, o.rho, info.k, &fresh, &residuals});
    step(fresh);
    for (int r = 0; r < W; ++r) {
      wrong += countDifferent(outs[r], expect);
      if (stateful) wrong += countDifferent(buckets[r].residual(), residuals[r]);
    }
  }
  const svBucketInfo_t& info = buckets[0].info();
  return {bytes, count, info.k, info.format, info.wireBytes, info.denseWireBytes,
          info.bitsPerKept, us, static_cast<double>(bytes) / (us * 1e3), wrong};
}


int kernelMain(bench::Options o, const std::string& device) {
  if (!o.ranksGiven) o.ranks = 8;
  const std::string line = "backend CUDA kernels on " + device +
                           " (the loopback collective has no CUDA backend yet)";
  bench::printKernelHeader(o, line);
  std::vector<bench::KernelRow> rows;
  try {
    rows = bench::runKernelMode(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  if (!o.json.empty() && !bench::writeKernelJson(o.json, o, line, rows)) {
    std::fprintf(stderr, "signvote-bench: cannot write %s\n", o.json.c_str());
    return 3;
  }
  uint64_t wrong = 0;
  for (const auto& r : rows) wrong += r.wrong;
  std::printf("# wrong elements: %llu %s\n", static_cast<unsigned long long>(wrong),
              wrong == 0 ? "OK" : "FAILED");
  return wrong == 0 ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Options o;
  const int parsed = bench::parseOptions(argc, argv, &o);
  if (parsed != 0) return parsed == 1 ? 0 : 2;
  std::string device;
  const bool gpu = bench::cudaDevicePresent(&device);
  if (o.mode == bench::Mode::kKernels && !gpu) {
    // Exit 4 lets ctest report a skip; the GPU lane (SIGNVOTE_REQUIRE_GPU=1) wants a failure.
    const char* req = std::getenv("SIGNVOTE_REQUIRE_GPU");
    std::fprintf(stderr, "signvote-bench: --mode kernels needs a GPU (%s)\n", device.c_str());
    return req != nullptr && std::strcmp(req, "1") == 0 ? 1 : 4;
  }
  if (o.mode == bench::Mode::kKernels || (o.mode == bench::Mode::kAuto && gpu))
    return kernelMain(o, device);
  const std::string line =
      "backend host" + std::string(gpu ? " (--mode collective; " + device +
                                             " unused: the collective has no CUDA backend yet)"
                                       : " (" + device + ")");
  bench::printHeader(o, line);
  std::vector<bench::Row> rows;
  uint64_t wrong = 0;
  try {
    std::vector<signvote::Comm> comms = signvote::Comm::loopback(o.ranks);
    std::mt19937_64 rng(o.seed);
    for (uint64_t bytes = o.minBytes; bytes <= o.maxBytes;) {
      const bench::Row row = runSize(o, comms, bytes / 4 * 4, rng);
      bench::printRow(row);
      rows.push_back(row);
      wrong += row.wrong;
      const auto next = static_cast<uint64_t>(static_cast<double>(bytes) * o.stepFactor);
      bytes = std::max(next, bytes + 4);
    }
  } catch (const signvote::Error& e) {
    std::fprintf(stderr, "signvote-bench: %s\n", e.what());
    return 3;
  }
  if (!o.json.empty() && !bench::writeJson(o.json, o, line, rows)) {
    std::fprintf(stderr, "signvote-bench: cannot write %s\n", o.json.c_str());
    return 3;
  }
  std::printf("# wrong elements: %llu %s\n", static_cast<unsigned long long>(wrong),
              wrong == 0 ? "OK" : "FAILED");
  return wrong == 0 ? 0 : 1;
}
