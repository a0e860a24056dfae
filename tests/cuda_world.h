// A loopback world of SV_BACKEND_CUDA communicators driven through the public C API, for the
// GPU suites that compare it with the host backend's World (world.h).
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <vector>

#include "gpu.h"
#include "world.h"

namespace svtest {

// A CUDA world: device gradients, outputs and workspaces, one stream per rank (or one shared).
struct CudaWorld {
  int W;
  size_t n;
  std::vector<svComm_t> comms;
  std::vector<svBucket_t> buckets;
  std::vector<void*> ws, g, out;
  std::vector<size_t> wsBytes;
  std::vector<cudaStream_t> streams;

  CudaWorld(int nranks, const svBucketConfig_t& cfg, svNonFinitePolicy_t policy,
            bool sharedStream, svTiming_t timing = SV_TIMING_DEFAULT)
      : W(nranks), n(cfg.count), comms(nranks), buckets(nranks), ws(nranks), g(nranks),
        out(nranks), wsBytes(nranks), streams(nranks) {
    svConfig_t c = SV_CONFIG_INITIALIZER;
    c.backend = SV_BACKEND_CUDA;
    c.nonFinite = policy;
    c.timing = timing;
    EXPECT_EQ(svCommInitLoopback(comms.data(), W, &c), svSuccess) << svGetLastError(nullptr);
    for (int r = 0; r < W; ++r) {
      EXPECT_EQ(svBucketCreate(&buckets[r], comms[r], &cfg), svSuccess) << svGetLastError(comms[r]);
      EXPECT_EQ(svExchange(buckets[r], nullptr, nullptr, nullptr, &wsBytes[r], nullptr),
                svSuccess);
      cudaMalloc(&ws[r], std::max<size_t>(wsBytes[r], 1));
      cudaMalloc(&g[r], std::max<size_t>(n, 1) * 4);
      cudaMalloc(&out[r], std::max<size_t>(n, 1) * 4);
      cudaMemset(out[r], 0x7F, std::max<size_t>(n, 1) * 4);  // a sentinel no scheme produces
      if (sharedStream && r > 0) streams[r] = streams[0];
      else cudaStreamCreateWithFlags(&streams[r], cudaStreamNonBlocking);
    }
    cudaDeviceSynchronize();  // the sentinels (legacy stream) land before any exchange
  }
  ~CudaWorld() {
    cudaDeviceSynchronize();
    for (int r = 0; r < W; ++r) {
      EXPECT_EQ(svBucketDestroy(buckets[r]), svSuccess);
      EXPECT_EQ(svCommDestroy(comms[r]), svSuccess);
      cudaFree(ws[r]);
      cudaFree(g[r]);
      cudaFree(out[r]);
      if (r == 0 || streams[r] != streams[0]) cudaStreamDestroy(streams[r]);
    }
  }
  void upload(const std::vector<std::vector<float>>& grads) {
    for (int r = 0; r < W; ++r)
      if (n) cudaMemcpy(g[r], grads[r].data(), n * 4, cudaMemcpyHostToDevice);
    cudaDeviceSynchronize();  // a pageable copy may return before its DMA lands
  }
  // Enqueues one grouped exchange; inPlace uses g as the output too.
  svResult_t exchange(bool inPlace = false) {
    svGroupStart();
    for (int r = 0; r < W; ++r) {
      size_t bytes = wsBytes[r];
      svExchange(buckets[r], g[r], inPlace ? g[r] : out[r], ws[r], &bytes, streams[r]);
    }
    return svGroupEnd();
  }
  std::vector<float> output(int r, bool inPlace = false) {
    cudaDeviceSynchronize();
    std::vector<float> v(n);
    if (n) cudaMemcpy(v.data(), inPlace ? g[r] : out[r], n * 4, cudaMemcpyDeviceToHost);
    return v;
  }
  std::vector<float> residual(int r) {
    cudaDeviceSynchronize();
    svBucketInfo_t i{};
    EXPECT_EQ(svBucketGetInfo(buckets[r], &i), svSuccess);
    std::vector<float> v(i.stateFloats);
    if (!v.empty()) {
      EXPECT_EQ(svBucketGetResidual(buckets[r], v.data()), svSuccess);
    }
    return v;  // stateless schemes (svInvalidUsage there): empty
  }
  svCommTimes_t times(int r) {
    svCommTimes_t t{};
    EXPECT_EQ(svCommGetTimes(comms[r], &t), svSuccess) << svGetLastError(comms[r]);
    return t;
  }
  svResult_t asyncError(int r) {
    cudaDeviceSynchronize();
    svResult_t e = svSuccess;
    EXPECT_EQ(svCommGetAsyncError(comms[r], &e), svSuccess);
    return e;
  }
};

}  // namespace svtest
