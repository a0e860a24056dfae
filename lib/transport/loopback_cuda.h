// The loopback transport for device memory: W ranks on one GPU, each with its own stream.
// Collectives are device copies (and, for sums, kernels/ addInto steps in rank order) enqueued
// on the receiving rank's stream; barrier() orders the ranks' streams with events so a rank
// reads another's buffer only after that rank wrote it. Like the host transport it moves and
// sums bytes and never runs scheme code.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <vector>

namespace signvote::detail {

struct CudaRanks {
  std::vector<cudaStream_t> streams;  // [rank]
  std::vector<cudaEvent_t> events;    // [rank], one per rank, re-recorded at each barrier
};

enum class CudaElem { kInt8, kInt16, kFloat32 };

// Every rank's stream waits until every rank reached this point of its stream.
cudaError_t cudaBarrier(const CudaRanks& r);
// recv[r] + s*bytes = send[s], for all r, s.
cudaError_t cudaAllGather(const CudaRanks& r, const std::vector<const void*>& send,
                          const std::vector<void*>& recv, size_t bytes);
// recv[r] + s*bytes = send[s] + r*bytes.
cudaError_t cudaAllToAll(const CudaRanks& r, const std::vector<const void*>& send,
                         const std::vector<void*>& recv, size_t bytes);
// recv[r][0..count) = sum over s, in rank order, of send[s] + offset(r) (offset(r) = r*count
// for reduce-scatter, 0 for allreduce).
cudaError_t cudaReduceSum(const CudaRanks& r, const std::vector<const void*>& send,
                          const std::vector<void*>& recv, size_t count, CudaElem type,
                          bool scatter);

}  // namespace signvote::detail
