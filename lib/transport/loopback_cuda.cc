#include <string>

#include "device.h"

namespace signvote::detail {

namespace {

class LoopbackCudaTransport final : public DeviceTransport {
 public:
  svResult_t barrier(const CudaRanks& r) override {
    const size_t L = r.streams.size();
    for (size_t s = 0; s < L; ++s)
      SVCUDACHECK_WHY(cudaEventRecord(r.events[s], r.streams[s]), &error_);
    for (size_t d = 0; d < L; ++d)
      for (size_t s = 0; s < L; ++s)
        if (s != d && r.streams[s] != r.streams[d])
          SVCUDACHECK_WHY(cudaStreamWaitEvent(r.streams[d], r.events[s], 0), &error_);
    return svSuccess;
  }

  svResult_t allGather(const CudaRanks& r, const Sends& send, const Recvs& recv,
                       size_t bytes) override {
    return copies(r, send, recv, bytes, false);
  }

  svResult_t allToAll(const CudaRanks& r, const Sends& send, const Recvs& recv,
                      size_t bytes) override {
    return copies(r, send, recv, bytes, true);
  }

  svResult_t hostAllGather(cudaStream_t, const void*, void*, size_t) override {
    error_ = "hostAllGather is not used in loopback worlds";
    return svInternalError;
  }

  svResult_t asyncError(std::string*) override { return svSuccess; }

 private:
  // Rank d's stream copies every block d receives (the world's ranks are all local here).
  svResult_t copies(const CudaRanks& r, const Sends& send, const Recvs& recv, size_t bytes,
                    bool toAll) {
    if (bytes == 0) return svSuccess;
    const size_t W = r.streams.size();
    for (size_t d = 0; d < W; ++d)
      for (size_t s = 0; s < W; ++s) {
        const char* from = static_cast<const char*>(send[s]) + (toAll ? d * bytes : 0);
        char* to = static_cast<char*>(recv[d]) + s * bytes;
        if (from != to)  // an in-place allgather's own block
          SVCUDACHECK_WHY(
              cudaMemcpyAsync(to, from, bytes, cudaMemcpyDeviceToDevice, r.streams[d]), &error_);
      }
    return svSuccess;
  }
};

}  // namespace

std::unique_ptr<DeviceTransport> makeLoopbackCudaTransport() {
  return std::make_unique<LoopbackCudaTransport>();
}

}  // namespace signvote::detail
