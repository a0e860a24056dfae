// GPU test helpers: skip without a device (fail instead under SIGNVOTE_REQUIRE_GPU=1, which the
// GPU lane sets), device buffers with a chosen misalignment, a CUDA check for tests, and the
// special values the kernel suites plant in random inputs.
#pragma once

#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace svtest {

inline bool gpuPresent() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

inline bool gpuRequired() {
  const char* s = std::getenv("SIGNVOTE_REQUIRE_GPU");
  return s != nullptr && std::strcmp(s, "1") == 0;
}

// Free device memory in bytes (0 without a device).
inline size_t gpuFreeBytes() {
  size_t freeBytes = 0, total = 0;
  return cudaMemGetInfo(&freeBytes, &total) == cudaSuccess ? freeBytes : 0;
}

// g with +-0.0, +-inf, +-NaN and the smallest subnormal at random positions (when not empty).
inline std::vector<float> withSpecials(std::vector<float> g, std::mt19937_64& rng) {
  if (g.empty()) return g;
  std::uniform_int_distribution<size_t> at(0, g.size() - 1);
  using L = std::numeric_limits<float>;
  for (float s : {0.0f, -0.0f, L::infinity(), -L::infinity(), L::quiet_NaN(), -L::quiet_NaN(),
                  L::denorm_min()})
    g[at(rng)] = s;
  return g;
}

}  // namespace svtest

// Skips the test unless `present` (fails instead under SIGNVOTE_REQUIRE_GPU=1).
#define SV_REQUIRE_GPU_IF(present)                                                        \
  do {                                                                                    \
    if (!(present)) {                                                                     \
      if (::svtest::gpuRequired()) FAIL() << "SIGNVOTE_REQUIRE_GPU=1 but no CUDA device"; \
      GTEST_SKIP() << "no CUDA device";                                                   \
    }                                                                                     \
  } while (0)
#define SV_REQUIRE_GPU() SV_REQUIRE_GPU_IF(::svtest::gpuPresent())

#define CUDA_OK(call)                                                             \
  do {                                                                            \
    const cudaError_t sv_t_err_ = (call);                                         \
    ASSERT_EQ(sv_t_err_, cudaSuccess) << #call << ": " << cudaGetErrorString(sv_t_err_); \
  } while (0)

namespace svtest {

// n elements of T on the device starting `offset` elements past a 256-byte aligned allocation
// (offset 1..3 gives the misaligned pointers of the edge table), with 16 guard elements
// after them filled with a pattern that check() verifies was not overwritten. The fill and
// upload() are complete on return: a memset, or a pageable cudaMemcpy's DMA, may still be in
// flight on the legacy stream, which work on non-blocking streams does not wait for.
template <class T>
class DeviceArray {
 public:
  DeviceArray(size_t n, size_t offset = 0) : n_(n), offset_(offset) {
    bytes_ = (n + offset + kGuard) * sizeof(T);
    if (cudaMalloc(&base_, bytes_) != cudaSuccess) base_ = nullptr;
    if (base_) cudaMemset(base_, 0xA5, bytes_);
    cudaDeviceSynchronize();
  }
  ~DeviceArray() { if (base_) cudaFree(base_); }
  DeviceArray(const DeviceArray&) = delete;
  DeviceArray& operator=(const DeviceArray&) = delete;
  bool ok() const { return base_ != nullptr; }
  T* get() const { return static_cast<T*>(base_) + offset_; }
  size_t size() const { return n_; }
  void upload(const std::vector<T>& v) {
    if (!v.empty()) cudaMemcpy(get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();
  }
  std::vector<T> download() const {
    std::vector<T> v(n_);
    if (n_) cudaMemcpy(v.data(), get(), n_ * sizeof(T), cudaMemcpyDeviceToHost);
    return v;
  }
  // The guard bytes past the array are untouched.
  bool guardIntact() const {
    std::vector<unsigned char> g(kGuard * sizeof(T));
    cudaMemcpy(g.data(), get() + n_, g.size(), cudaMemcpyDeviceToHost);
    for (unsigned char c : g)
      if (c != 0xA5) return false;
    return true;
  }

 private:
  static constexpr size_t kGuard = 16;
  void* base_ = nullptr;
  size_t n_, offset_, bytes_ = 0;
};

}  // namespace svtest
