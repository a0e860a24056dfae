// The device transport over a borrowed ncclComm_t: one rank per process (per GPU), buffers in
// device memory, every call enqueued on the exchange's stream. Allgathers are ncclAllGather;
// all-to-alls are grouped ncclSend/ncclRecv (NCCL >= 2.7, where ncclAlltoAll needs 2.28), the
// own block a device copy. Non-blocking communicators (ncclInProgress) are settled before the
// next NCCL call, as NCCL documents.
#include <nccl.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>

#include "device.h"

namespace signvote::detail {

namespace {

svResult_t fromNccl(ncclResult_t r) {
  switch (r) {
    case ncclSuccess: return svSuccess;
    case ncclUnhandledCudaError: return svUnhandledCudaError;
    case ncclSystemError: return svSystemError;
    case ncclRemoteError: return svRemoteError;
    default: return svInternalError;  // NCCL refused arguments this library formed: a bug here
  }
}

class NcclTransport final : public DeviceTransport {
 public:
  NcclTransport(ncclComm_t comm, int rank, int nranks, void* staging, void* pinned,
                size_t hostBytes, unsigned timeoutMs)
      : comm_(comm), rank_(rank), nranks_(nranks), staging_(static_cast<char*>(staging)),
        pinned_(static_cast<char*>(pinned)), hostBytes_(hostBytes), timeoutMs_(timeoutMs) {}
  // After a timeout or a peer's failure the stream may still hold NCCL work that waits for
  // a peer until the caller aborts its ncclComm_t; freeing would wait for it (cudaFree
  // synchronizes the device), and a failed svCommInitFromNccl would hang before it returned.
  // The buffers (nranks x hostBytes of device and of pinned memory) are then left allocated.
  ~NcclTransport() override {
    if (stuck_) {
      const bool done = stuckAt_ != nullptr && cudaEventQuery(stuckAt_) == cudaSuccess;
      cudaGetLastError();  // "not ready" must not reach a later launch check
      if (stuckAt_ != nullptr) cudaEventDestroy(stuckAt_);
      if (!done) return;
    }
    cudaFree(staging_);
    cudaFreeHost(pinned_);
  }

  svResult_t barrier(const CudaRanks&) override { return svSuccess; }

  svResult_t allGather(const CudaRanks& r, const Sends& send, const Recvs& recv,
                       size_t bytes) override {
    if (bytes == 0) return svSuccess;
    return check(ncclAllGather(send[0], recv[0], bytes, ncclUint8, comm_, r.streams[0]),
                 "ncclAllGather", r.streams[0]);
  }

  svResult_t allToAll(const CudaRanks& r, const Sends& send, const Recvs& recv,
                      size_t bytes) override {
    if (bytes == 0) return svSuccess;
    const char* from = static_cast<const char*>(send[0]);
    char* to = static_cast<char*>(recv[0]);
    cudaStream_t s = r.streams[0];
    SVCUDACHECK_WHY(cudaMemcpyAsync(to + rank_ * bytes, from + rank_ * bytes, bytes,
                                    cudaMemcpyDeviceToDevice, s), &error_);
    if (nranks_ == 1) return svSuccess;
    ncclResult_t first = ncclGroupStart();
    for (int peer = 0; peer < nranks_ && first == ncclSuccess; ++peer) {
      if (peer == rank_) continue;
      first = ncclSend(from + peer * bytes, bytes, ncclUint8, peer, comm_, s);
      if (first == ncclSuccess)
        first = ncclRecv(to + peer * bytes, bytes, ncclUint8, peer, comm_, s);
    }
    const ncclResult_t end = ncclGroupEnd();  // closes the group even after a failed call
    return check(first != ncclSuccess ? first : end, "grouped ncclSend/ncclRecv (all-to-all)",
                 s);
  }

  // In pieces of the staging buffers' share per rank (a group's fingerprints can be more).
  // Through pinned host memory: a copy to pageable memory returns only when it is done, so it
  // would wait for a peer that never comes where wait() gives up after timeoutMs.
  svResult_t hostAllGather(cudaStream_t s, const void* mine, void* all, size_t bytes) override {
    for (size_t off = 0; off < bytes; off += hostBytes_) {
      const size_t piece = std::min(hostBytes_, bytes - off);
      char* own = staging_ + rank_ * piece;
      std::memcpy(pinned_, static_cast<const char*>(mine) + off, piece);
      SVCUDACHECK_WHY(cudaMemcpyAsync(own, pinned_, piece, cudaMemcpyHostToDevice, s), &error_);
      SVCHECK(check(ncclAllGather(own, staging_, piece, ncclUint8, comm_, s), "ncclAllGather",
                    s));
      SVCUDACHECK_WHY(cudaMemcpyAsync(pinned_, staging_, piece * nranks_, cudaMemcpyDeviceToHost,
                                      s),
                      &error_);
      SVCHECK(wait(s, "ncclAllGather (host-visible)"));
      for (int r = 0; r < nranks_; ++r)
        std::memcpy(static_cast<char*>(all) + r * bytes + off, pinned_ + r * piece, piece);
    }
    return svSuccess;
  }

  svResult_t waitStream(cudaStream_t s) override { return wait(s, "the stream's work"); }

  svResult_t asyncError(std::string* why) override {
    ncclResult_t state = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &state);
    if (r != ncclSuccess) state = r;
    if (state == ncclSuccess || state == ncclInProgress) return svSuccess;
    *why = std::string("NCCL reports ") + ncclGetErrorString(state) + ": " +
           ncclGetLastError(comm_);
    return fromNccl(state);
  }

 private:
  using Clock = std::chrono::steady_clock;
  bool late(Clock::time_point start) const {
    return Clock::now() - start > std::chrono::milliseconds(timeoutMs_);
  }

  // A call's result; ncclInProgress (non-blocking communicators) is waited out first.
  svResult_t check(ncclResult_t r, const char* what, cudaStream_t s) {
    const auto start = Clock::now();
    while (r == ncclInProgress) {
      if (late(start)) return timedOut(what, s);
      sched_yield();
      if (ncclCommGetAsyncError(comm_, &r) != ncclSuccess) break;
    }
    if (r == ncclSuccess) return svSuccess;
    error_ = std::string(what) + ": " + ncclGetErrorString(r) + " (" + ncclGetLastError(comm_) +
             ")";
    return fromNccl(r);
  }

  // Marks `s`'s work so far as possibly waiting for a peer (see the destructor).
  void mayBeStuck(cudaStream_t s) {
    stuck_ = true;
    if (stuckAt_ == nullptr &&
        cudaEventCreateWithFlags(&stuckAt_, cudaEventDisableTiming) != cudaSuccess)
      stuckAt_ = nullptr;
    if (stuckAt_ != nullptr && cudaEventRecord(stuckAt_, s) != cudaSuccess) {
      cudaEventDestroy(stuckAt_);
      stuckAt_ = nullptr;
    }
  }

  svResult_t timedOut(const char* what, cudaStream_t s) {
    mayBeStuck(s);
    error_ = std::string(what) + " did not complete within config->timeoutMs = " +
             std::to_string(timeoutMs_) + " ms; a peer may be missing (abort the NCCL "
             "communicator with ncclCommAbort)";
    return svTimeout;
  }

  // Waits for the stream while watching NCCL's asynchronous error, so that a failed or
  // missing peer gives an error instead of a hang.
  svResult_t wait(cudaStream_t s, const char* what) {
    const auto start = Clock::now();
    for (;;) {
      const cudaError_t q = cudaStreamQuery(s);
      if (q != cudaSuccess && q != cudaErrorNotReady) SVCUDACHECK_WHY(q, &error_);
      if (q == cudaErrorNotReady) cudaGetLastError();  // as in timed.cc
      std::string why;  // also once the work is done: what NCCL moved may be wrong
      const svResult_t a = asyncError(&why);
      if (a != svSuccess) return mayBeStuck(s), error_ = why, a;
      if (q == cudaSuccess) return svSuccess;
      if (late(start)) return timedOut(what, s);
      sched_yield();
    }
  }

  ncclComm_t comm_;
  int rank_, nranks_;
  char* staging_;  // device: nranks x hostBytes
  char* pinned_;   // pinned host: nranks x hostBytes
  size_t hostBytes_;
  unsigned timeoutMs_;
  bool stuck_ = false;              // a wait gave up: work may be waiting for a peer
  cudaEvent_t stuckAt_ = nullptr;   // recorded after that work
};

}  // namespace

svResult_t ncclCommFacts(ncclComm* comm, int* nranks, int* rank, int* device, std::string* why) {
  ncclResult_t r = ncclCommCount(comm, nranks);
  if (r == ncclSuccess) r = ncclCommUserRank(comm, rank);
  if (r == ncclSuccess) r = ncclCommCuDevice(comm, device);
  if (r == ncclSuccess) return svSuccess;
  *why = std::string(ncclGetErrorString(r)) + ": " + ncclGetLastError(comm);
  return svInvalidArgument;
}

std::unique_ptr<DeviceTransport> makeNcclTransport(ncclComm* comm, int rank, int nranks,
                                                   size_t hostBytes, unsigned timeoutMs,
                                                   svResult_t* code, std::string* why) {
  void *staging = nullptr, *pinned = nullptr;
  const bool onDevice = cudaMalloc(&staging, hostBytes * nranks) == cudaSuccess;
  if (!onDevice || cudaMallocHost(&pinned, hostBytes * nranks) != cudaSuccess) {
    *why = std::string("allocating ") + std::to_string(hostBytes * nranks) + " bytes of " +
           (onDevice ? "pinned host" : "device") + " memory failed: " +
           cudaGetErrorString(cudaGetLastError());
    *code = svSystemError;
    cudaFree(staging);
    return nullptr;
  }
  try {
    return std::make_unique<NcclTransport>(comm, rank, nranks, staging, pinned, hostBytes,
                                           timeoutMs);
  } catch (...) {
    cudaFree(staging);
    cudaFreeHost(pinned);
    throw;
  }
}

}  // namespace signvote::detail
