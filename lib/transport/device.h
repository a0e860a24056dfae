// The byte-moving interface of SV_BACKEND_CUDA exchanges: device buffers, stream-ordered, no
// host synchronisation. Like the host Transport it takes one entry per rank this process
// drives, in rank order, and never runs scheme code; sums are formed by lib/ (an all-to-all,
// then the owner adds its W blocks in rank order), so every transport gives the same bits.
//   loopback  all W ranks on one GPU, one stream each: device copies, with barrier() ordering
//             the ranks' streams by events so a rank reads a peer's buffer only once written
//   nccl      this process's one rank over the caller's ncclComm_t (ncclAllGather and grouped
//             ncclSend/ncclRecv); barrier() is empty, NCCL orders its own transfers
// A failure returns svUnhandledCudaError, svSystemError, svRemoteError or svInternalError with
// its text in error(); the world is then broken.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "../error.h"
#include "signvote/signvote.h"

struct ncclComm;

// SVCHECK's CUDA sibling: a failed CUDA call stores its text in *(why) (a std::string*) and
// returns svUnhandledCudaError.
#define SVCUDACHECK_WHY(call, why)                                                      \
  do {                                                                                  \
    const cudaError_t sv_cuda_res_ = (call);                                            \
    if (sv_cuda_res_ != cudaSuccess) {                                                  \
      *(why) = ::signvote::detail::cudaCallText(#call, sv_cuda_res_, __FILE__, __LINE__); \
      ::signvote::detail::traceFrame(__FILE__, __LINE__, svUnhandledCudaError);         \
      return svUnhandledCudaError;                                                      \
    }                                                                                   \
  } while (0)

namespace signvote::detail {

// "call: CUDA's text (file:line)", for the check above.
std::string cudaCallText(const char* call, cudaError_t e, const char* file, int line);

struct CudaRanks {
  std::vector<int> ranks;             // [local index] the rank
  std::vector<cudaStream_t> streams;  // [local index]
  std::vector<cudaEvent_t> events;    // [local index], re-recorded at each barrier
};

class DeviceTransport {
 public:
  using Sends = std::vector<const void*>;
  using Recvs = std::vector<void*>;
  virtual ~DeviceTransport() = default;
  // Every local stream waits until every rank reached this point of its stream.
  virtual svResult_t barrier(const CudaRanks& r) = 0;
  // recv[i] + s*bytes = rank s's send, for every rank s. In place when send[i] is
  // recv[i] + rank*bytes.
  virtual svResult_t allGather(const CudaRanks& r, const Sends& send, const Recvs& recv,
                               size_t bytes) = 0;
  // recv[i] + s*bytes = rank s's send + rank*bytes.
  virtual svResult_t allToAll(const CudaRanks& r, const Sends& send, const Recvs& recv,
                              size_t bytes) = 0;
  // Synchronous: all[s*bytes ..] = rank s's `mine` (host memory), before any further work of
  // `stream`. Used across processes by SV_CHECK_GLOBAL (fingerprints) and adaptive K (norms);
  // loopback worlds have every rank's value locally.
  virtual svResult_t hostAllGather(cudaStream_t stream, const void* mine, void* all,
                                   size_t bytes) = 0;
  // Waits on the host until `stream`'s work is done. NCCL: up to the timeout (svTimeout) and
  // watching NCCL's asynchronous errors, since that work may wait for a peer.
  virtual svResult_t waitStream(cudaStream_t stream) {
    SVCUDACHECK_WHY(cudaStreamSynchronize(stream), &error_);
    return svSuccess;
  }
  // A failure the transport learnt of outside a call (NCCL's asynchronous errors), with its
  // text in *why; svSuccess when none. Safe to call from any thread.
  virtual svResult_t asyncError(std::string* why) = 0;
  // The timing decorator (timed.h) waits here, up to its timeout, for the timed calls still in
  // flight and counts them; the others have nothing to settle.
  virtual svResult_t settleTimes() { return svSuccess; }
  virtual const std::string& error() const { return error_; }

 protected:
  std::string error_;
};

std::unique_ptr<DeviceTransport> makeLoopbackCudaTransport();

// The borrowed communicator's size, rank and device; svInvalidArgument with *why when NCCL
// refuses to tell (a destroyed or failed communicator).
svResult_t ncclCommFacts(ncclComm* comm, int* nranks, int* rank, int* device, std::string* why);

// One rank (`rank` of `nranks`) over a borrowed NCCL communicator, which it never destroys.
// hostAllGather stages `hostBytes` per rank at a time (device and pinned host buffers) and gives
// up after timeoutMs (svTimeout).
// Null with *code and *why set when its device staging buffer cannot be allocated.
std::unique_ptr<DeviceTransport> makeNcclTransport(ncclComm* comm, int rank, int nranks,
                                                   size_t hostBytes, unsigned timeoutMs,
                                                   svResult_t* code, std::string* why);

}  // namespace signvote::detail
