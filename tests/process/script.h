// The script every multi-process transport test runs on its ranks and on a loopback world of
// the host backend, whose reports must agree byte for byte.
#pragma once

#include <cuda_runtime_api.h>

#include <random>
#include <vector>

#include "ranks.h"
#include "world.h"

namespace svtest {

// Host or device memory for the script's buffers (device: SV_BACKEND_CUDA communicators).
class Buffers {
 public:
  explicit Buffers(bool device) : device_(device) {
    if (device_) cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
  }
  ~Buffers() {
    for (void* p : owned_) device_ ? (void)cudaFree(p) : free(p);
    if (stream_) cudaStreamDestroy(stream_);
  }
  void* get(size_t bytes) {
    void* p = nullptr;
    if (device_) cudaMalloc(&p, bytes ? bytes : 1);
    else p = malloc(bytes ? bytes : 1);
    owned_.push_back(p);
    return p;
  }
  float* floats(const std::vector<float>& v) {
    auto* p = static_cast<float*>(get(v.size() * 4));
    copy(p, v.data(), v.size() * 4);
    return p;
  }
  std::vector<float> read(const float* p, size_t n) {
    std::vector<float> v(n);
    if (device_) cudaStreamSynchronize(stream_);
    copy(v.data(), p, n * 4);
    return v;
  }
  svStream_t stream() const { return reinterpret_cast<svStream_t>(stream_); }

 private:
  void copy(void* to, const void* from, size_t bytes) {
    if (bytes == 0) return;
    if (device_) {
      cudaMemcpy(to, from, bytes, cudaMemcpyDefault);
      cudaDeviceSynchronize();  // a pageable copy may return before its DMA lands
    } else {
      memcpy(to, from, bytes);
    }
  }
  bool device_;
  cudaStream_t stream_ = nullptr;
  std::vector<void*> owned_;
};

// Runs every case for the ranks `local` drives (all of a loopback world, one of a
// multi-process world): three grouped steps, each with kSides small dense buckets after the
// case's in the same group (so that SV_CHECK_GLOBAL's second fingerprint allgather carries
// several), and reports every output and the final state per local rank. Rank r's gradients
// depend only on (seed, case, n, step, r). device: the buffers are device memory.
inline std::vector<Report> script(const std::vector<svComm_t>& local, uint64_t seed,
                                  bool device = false) {
  constexpr size_t kSides = 2;
  const size_t L = local.size();
  std::vector<Report> reports(L);
  std::vector<int> ranks(L);
  for (size_t i = 0; i < L; ++i) EXPECT_EQ(svCommUserRank(local[i], &ranks[i]), 0);
  for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{1000}}) {
    const auto cfgs = schemeCases(n);
    for (size_t c = 0; c < cfgs.size(); ++c) {
      Buffers mem(device);
      // Bucket 0 is the case's, then kSides dense ones of 7, 8, ... elements.
      std::vector<svBucketConfig_t> cfg{cfgs[c]};
      for (size_t j = 0; j < kSides; ++j) cfg.push_back(bucketConfig(SV_SCHEME_DENSE, 7 + j));
      std::vector<std::vector<svBucket_t>> b(L, std::vector<svBucket_t>(cfg.size()));
      std::vector<std::vector<void*>> ws(L, std::vector<void*>(cfg.size()));
      std::vector<std::vector<size_t>> wsBytes(L, std::vector<size_t>(cfg.size()));
      for (size_t i = 0; i < L; ++i)
        for (size_t j = 0; j < cfg.size(); ++j) {
          EXPECT_EQ(svBucketCreate(&b[i][j], local[i], &cfg[j]), svSuccess)
              << svGetLastError(local[i]);
          svExchange(b[i][j], nullptr, nullptr, nullptr, &wsBytes[i][j], nullptr);
          ws[i][j] = mem.get(wsBytes[i][j]);
        }
      for (int step = 0; step < 3; ++step) {
        std::vector<std::vector<float*>> g(L), out(L);
        for (size_t i = 0; i < L; ++i) {
          std::mt19937_64 rng(seed ^ (c << 40) ^ (n << 20) ^ (uint64_t(step) << 12) ^ ranks[i]);
          for (size_t j = 0; j < cfg.size(); ++j) {
            const size_t m = cfg[j].count;
            g[i].push_back(mem.floats(j == 0 ? grads(1, m, rng)[0] : normal(m, rng)));
            out[i].push_back(mem.floats(std::vector<float>(m, 7.0f)));
          }
        }
        svGroupStart();
        for (size_t i = 0; i < L; ++i)
          for (size_t j = 0; j < cfg.size(); ++j) {
            size_t bytes = wsBytes[i][j];
            svExchange(b[i][j], g[i][j], out[i][j], ws[i][j], &bytes, mem.stream());
          }
        const svResult_t r = svGroupEnd();
        for (size_t i = 0; i < L; ++i) {
          reports[i].put(static_cast<int>(r));
          if (r != svSuccess) reports[i].put(std::string(svGetLastError(local[i])));
          for (size_t j = 0; j < cfg.size(); ++j) reports[i].put(mem.read(out[i][j], cfg[j].count));
        }
      }
      for (size_t i = 0; i < L; ++i) {
        svBucketInfo_t info{};
        svBucketGetInfo(b[i][0], &info);
        std::vector<float> state(info.stateFloats);
        if (info.stateFloats) svBucketGetResidual(b[i][0], state.data());
        svResult_t async = svSuccess;
        svCommGetAsyncError(local[i], &async);
        reports[i].put(static_cast<int>(async));
        reports[i].put(state);
        reports[i].put(info.lastK);
        for (svBucket_t bucket : b[i]) svBucketDestroy(bucket);
      }
    }
  }
  return reports;
}

// Every rank exited cleanly and reported exactly what the loopback world reported for it.
inline void expectSameReports(const std::vector<Ranks::Result>& results,
                              const std::vector<Report>& expect) {
  for (size_t r = 0; r < results.size(); ++r) {
    ASSERT_TRUE(results[r].exited && results[r].status == 0)
        << "rank " << r << " status " << results[r].status << " signal " << results[r].signal
        << ": " << results[r].report;
    const std::string& got = results[r].report;
    const std::string& want = expect[r].bytes;
    ASSERT_EQ(got.size(), want.size()) << "rank " << r;
    const auto diff = std::mismatch(got.begin(), got.end(), want.begin());
    EXPECT_TRUE(diff.first == got.end())
        << "rank " << r << " differs from the loopback world at byte "
        << (diff.first - got.begin()) << " of " << got.size();
  }
}

}  // namespace svtest
