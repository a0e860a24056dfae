#include "loopback_cuda.h"

#include "kernels.h"

namespace signvote::detail {

#define SV_TRY(call)                              \
  do {                                            \
    const cudaError_t sv_e_ = (call);             \
    if (sv_e_ != cudaSuccess) return sv_e_;       \
  } while (0)

namespace {
size_t elemBytes(CudaElem t) { return t == CudaElem::kInt8 ? 1 : t == CudaElem::kInt16 ? 2 : 4; }
}  // namespace

cudaError_t cudaBarrier(const CudaRanks& r) {
  const size_t W = r.streams.size();
  for (size_t s = 0; s < W; ++s) SV_TRY(cudaEventRecord(r.events[s], r.streams[s]));
  for (size_t d = 0; d < W; ++d)
    for (size_t s = 0; s < W; ++s)
      if (s != d && r.streams[s] != r.streams[d])
        SV_TRY(cudaStreamWaitEvent(r.streams[d], r.events[s], 0));
  return cudaSuccess;
}

cudaError_t cudaAllGather(const CudaRanks& r, const std::vector<const void*>& send,
                          const std::vector<void*>& recv, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  const size_t W = r.streams.size();
  for (size_t d = 0; d < W; ++d)
    for (size_t s = 0; s < W; ++s)
      SV_TRY(cudaMemcpyAsync(static_cast<char*>(recv[d]) + s * bytes, send[s], bytes,
                             cudaMemcpyDeviceToDevice, r.streams[d]));
  return cudaSuccess;
}

cudaError_t cudaAllToAll(const CudaRanks& r, const std::vector<const void*>& send,
                         const std::vector<void*>& recv, size_t bytes) {
  if (bytes == 0) return cudaSuccess;
  const size_t W = r.streams.size();
  for (size_t d = 0; d < W; ++d)
    for (size_t s = 0; s < W; ++s)
      SV_TRY(cudaMemcpyAsync(static_cast<char*>(recv[d]) + s * bytes,
                             static_cast<const char*>(send[s]) + d * bytes, bytes,
                             cudaMemcpyDeviceToDevice, r.streams[d]));
  return cudaSuccess;
}

cudaError_t cudaReduceSum(const CudaRanks& r, const std::vector<const void*>& send,
                          const std::vector<void*>& recv, size_t count, CudaElem type,
                          bool scatter) {
  if (count == 0) return cudaSuccess;
  const size_t W = r.streams.size(), eb = elemBytes(type);
  for (size_t d = 0; d < W; ++d) {
    const size_t offset = scatter ? d * count * eb : 0;
    SV_TRY(cudaMemcpyAsync(recv[d], static_cast<const char*>(send[0]) + offset, count * eb,
                           cudaMemcpyDeviceToDevice, r.streams[d]));
    for (size_t s = 1; s < W; ++s)
      SV_TRY(kernels::addInto(recv[d], static_cast<const char*>(send[s]) + offset, count,
                              static_cast<unsigned>(eb), type == CudaElem::kFloat32,
                              r.streams[d]));
  }
  return cudaSuccess;
}

}  // namespace signvote::detail
