// SV_BACKEND_CUDA: the exchange of a world whose ranks live on GPUs, enqueued on each local
// rank's stream with the kernels of kernels/ and a DeviceTransport between the ranks'
// workspaces (device copies in a loopback world on one GPU, NCCL across processes). No host
// synchronisation and no allocation happen in an exchange: failures the device detects (NaN
// under the error policy, corrupt or mismatched messages) close a device gate so that nothing
// is committed, and are stored in the communicator's sticky word, which svCommGetAsyncError
// reads once the stream work is done.
#pragma once

#include <string>
#include <vector>

#include "handles.h"
#include "transport/device.h"

namespace signvote::detail {

// True when this build has the CUDA backend and a device is usable; *why says otherwise.
bool cudaBackendAvailable(std::string* why);

svResult_t cudaInitComm(svComm* comm);      // event, sticky word, current device
void cudaDestroyComm(svComm* comm);
svResult_t cudaScratchFor(const Plan& hostPlan, CudaScratch* out);
// cudaScratchFor as planWith takes it on SV_BACKEND_CUDA; empty on the host backend.
ScratchFn scratchFnOf(const svComm* comm);
// The device residual, as the host's at creation; *why has CUDA's error on failure.
svResult_t cudaCreateResidual(svBucket* bucket, std::string* why);
void cudaDestroyResidual(svBucket* bucket);
// Synchronous copies of the residual to or from any memory (cudaMemcpyDefault).
svResult_t cudaCopyResidual(svBucket* bucket, void* dst, const void* src);
// The device whose memory p is: its ordinal; kAnyDevice for managed memory; -1 when p is
// not device memory.
constexpr int kAnyDevice = -2;
int cudaMemoryDevice(const void* p);
// The calling thread's current device (-1 when CUDA cannot say).
int cudaCurrentDevice();
// svInvalidUsage, naming `call`, unless comm's device is current: the device memory and
// kernels of a call go to the current device.
svResult_t cudaCheckCurrentDevice(svComm_t comm, const char* call);
// The device `stream` belongs to (-1 when CUDA cannot say).
int cudaStreamDevice(svStream_t stream);
// The capture sequence `stream` is part of (cudaStreamGetCaptureInfo's id); 0 when it is not
// being captured into a CUDA graph.
unsigned long long cudaCaptureId(svStream_t stream);
// The first device-detected failure stored for comm (svSuccess when none).
svResult_t cudaStickyError(const svComm* comm);

struct CudaOp {
  svBucket_t bucket;
  const void* send;
  void* recv;
  void* ws;
  svStream_t stream;
};
// Adaptive K: norms[i] = the squared norm of ops[i].send (kernels::squareNorm into the norm
// regions of p, the bucket's plan), read back through the communicator's pinned slot after
// t.waitStream on each op's stream. svUnhandledCudaError (a call failed) or the wait's code
// (svTimeout, an NCCL error) with *why; nothing else is enqueued.
svResult_t cudaSquareNorms(const std::vector<CudaOp>& ops, const Plan& p, DeviceTransport& t,
                           std::vector<float>* norms, std::string* why);

// Enqueues one matched exchange of plan p (the bucket's, or liec's averaging exchange): ops
// holds the calls of the ranks this process drives, in rank order (all W in a loopback world,
// one over NCCL), moved by t. Returns svUnhandledCudaError (a launch failed) or the
// transport's code, with *why; the world must then be treated as broken.
svResult_t cudaRunMatched(const std::vector<CudaOp>& ops, const Plan& p, uint64_t seq,
                          DeviceTransport& t, std::string* why);

}  // namespace signvote::detail
