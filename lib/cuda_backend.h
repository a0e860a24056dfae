// SV_BACKEND_CUDA: the exchange of a loopback world whose ranks live on one GPU, enqueued on
// each rank's stream with the kernels of kernels/ and device copies between the ranks'
// workspaces. No host synchronisation and no allocation happen in an exchange: failures the
// device detects (NaN under the error policy, corrupt or mismatched messages) close a device
// gate so that nothing is committed, and are stored in the communicator's sticky word, which
// svCommGetAsyncError reads once the stream work is done.
#pragma once

#include <string>
#include <vector>

#include "handles.h"

namespace signvote::detail {

// True when this build has the CUDA backend and a device is usable; *why says otherwise.
bool cudaBackendAvailable(std::string* why);

svResult_t cudaInitComm(svComm* comm);      // event, sticky word, current device
void cudaDestroyComm(svComm* comm);
svResult_t cudaScratchFor(const Plan& hostPlan, CudaScratch* out);
svResult_t cudaCreateResidual(svBucket* bucket);  // zero-filled device residual
void cudaDestroyResidual(svBucket* bucket);
// Synchronous copies of the residual to or from any memory (cudaMemcpyDefault).
svResult_t cudaCopyResidual(svBucket* bucket, void* dst, const void* src);
// svInvalidArgument text in *why when p is not device (or managed) memory.
bool cudaIsDevicePointer(const void* p);
// The first device-detected failure stored for comm (svSuccess when none).
svResult_t cudaStickyError(const svComm* comm);

struct CudaOp {
  svBucket_t bucket;
  const void* send;
  void* recv;
  void* ws;
  svStream_t stream;
};
// Enqueues one matched exchange (ops[r] is rank r's call). Returns svUnhandledCudaError with
// *why when a launch failed (the world must then be treated as broken).
svResult_t cudaRunMatched(const std::vector<CudaOp>& ops, uint64_t seq, std::string* why);

}  // namespace signvote::detail
