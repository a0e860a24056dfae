// The script every multi-process transport test runs on its ranks and on a loopback world of
// the host backend, whose reports must agree byte for byte.
#pragma once

#include <cuda_runtime_api.h>

#include <random>
#include <vector>

#include "ranks.h"
#include "world.h"

namespace svtest {

// The scheme cases SV_BACKEND_CUDA implements (all but adaptive K, which it refuses).
inline std::vector<svBucketConfig_t> cudaSchemeCases(size_t n) {
  std::vector<svBucketConfig_t> v;
  for (const svBucketConfig_t& c : schemeCases(n))
    if (c.adaptiveK == SV_ADAPTIVE_K_NONE) v.push_back(c);
  return v;
}

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
    if (device_) cudaMemcpy(to, from, bytes, cudaMemcpyDefault);
    else memcpy(to, from, bytes);
  }
  bool device_;
  cudaStream_t stream_ = nullptr;
  std::vector<void*> owned_;
};

// Runs every case for the ranks `local` drives (all of a loopback world, one of a
// multi-process world): three grouped steps, each with a second (dense) bucket in the same
// group, and reports every output and the final state per local rank. Rank r's gradients
// depend only on (seed, case, n, step, r). cudaOnly: the cases of cudaSchemeCases; device: the
// buffers are device memory.
inline std::vector<Report> script(const std::vector<svComm_t>& local, uint64_t seed,
                                  bool cudaOnly = false, bool device = false) {
  std::vector<Report> reports(local.size());
  std::vector<int> ranks(local.size());
  for (size_t i = 0; i < local.size(); ++i) EXPECT_EQ(svCommUserRank(local[i], &ranks[i]), 0);
  for (size_t n : {size_t{0}, size_t{1}, size_t{33}, size_t{1000}}) {
    const auto cfgs = cudaOnly ? cudaSchemeCases(n) : schemeCases(n);
    for (size_t c = 0; c < cfgs.size(); ++c) {
      Buffers mem(device);
      const svBucketConfig_t side = bucketConfig(SV_SCHEME_DENSE, 7);
      std::vector<svBucket_t> b(local.size()), d(local.size());
      std::vector<void*> wb(local.size()), wd(local.size());
      std::vector<size_t> nb(local.size()), nd(local.size());
      for (size_t i = 0; i < local.size(); ++i) {
        EXPECT_EQ(svBucketCreate(&b[i], local[i], &cfgs[c]), svSuccess) << svGetLastError(local[i]);
        EXPECT_EQ(svBucketCreate(&d[i], local[i], &side), svSuccess);
        svExchange(b[i], nullptr, nullptr, nullptr, &nb[i], nullptr);
        wb[i] = mem.get(nb[i]);
        svExchange(d[i], nullptr, nullptr, nullptr, &nd[i], nullptr);
        wd[i] = mem.get(nd[i]);
      }
      for (int step = 0; step < 3; ++step) {
        std::vector<float*> g(local.size()), out(local.size()), gs(local.size()),
            outs(local.size());
        for (size_t i = 0; i < local.size(); ++i) {
          std::mt19937_64 rng(seed ^ (c << 40) ^ (n << 20) ^ (uint64_t(step) << 12) ^ ranks[i]);
          g[i] = mem.floats(grads(1, n, rng)[0]);
          gs[i] = mem.floats(normal(7, rng));
          out[i] = mem.floats(std::vector<float>(n, 7.0f));
          outs[i] = mem.floats(std::vector<float>(7, 7.0f));
        }
        svGroupStart();
        for (size_t i = 0; i < local.size(); ++i) {
          size_t bytes = nb[i];
          svExchange(b[i], g[i], out[i], wb[i], &bytes, mem.stream());
          bytes = nd[i];
          svExchange(d[i], gs[i], outs[i], wd[i], &bytes, mem.stream());
        }
        const svResult_t r = svGroupEnd();
        for (size_t i = 0; i < local.size(); ++i) {
          reports[i].put(static_cast<int>(r));
          if (r != svSuccess) reports[i].put(std::string(svGetLastError(local[i])));
          reports[i].put(mem.read(out[i], n));
          reports[i].put(mem.read(outs[i], 7));
        }
      }
      for (size_t i = 0; i < local.size(); ++i) {
        svBucketInfo_t info{};
        svBucketGetInfo(b[i], &info);
        std::vector<float> state(info.stateFloats);
        if (info.stateFloats) svBucketGetResidual(b[i], state.data());
        svResult_t async = svSuccess;
        svCommGetAsyncError(local[i], &async);
        reports[i].put(static_cast<int>(async));
        reports[i].put(state);
        reports[i].put(info.lastK);
        svBucketDestroy(b[i]);
        svBucketDestroy(d[i]);
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
