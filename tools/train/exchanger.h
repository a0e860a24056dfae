// The trainer's exchanges through signvote's public API: one bucket per segment of the
// parameter vector and rank, exchanged as one group, on the host backend or SV_BACKEND_CUDA;
// and the CUDA resources they need.
#pragma once

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "cuda_check.h"
#include "signvote/signvote.hpp"

namespace train {

// Waits for the device and turns a verdict the device set (NaN under the error policy, corrupt
// or mismatched messages) into an exception.
void settle(svComm_t comm);

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
            const Segments& segments, const std::vector<cudaStream_t>& streams);

  bool averageNext() const { return buckets_[0].info().averageNext; }
  // Sums over the segments of rank 0's last exchange: uplink bytes (see uplinkBytes), wire
  // bytes and K.
  void lastTotals(svVote_t vote, bool average, uint64_t* up, uint64_t* wire,
                  uint64_t* k) const;

  // SV_BACKEND_CUDA: enqueues rank r's exchange of the device vector in + r * n into out + r * n
  // (out may be in) on streams[r], n the count of all segments.
  void enqueue(const float* in, float* out);

  // out[r] = rank r's output for host vector in[r] (out may be in).
  void exchange(const std::vector<std::vector<float>>& in,
                std::vector<std::vector<float>>& out);

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

}  // namespace train
