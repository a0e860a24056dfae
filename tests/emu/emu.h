// The emulated device of the CUDA-backend lane that CI runs without a GPU (tests/emu/): a host
// stand-in for the CUDA runtime calls lib/ and the CUDA-backend suites make (cuda_runtime.cc),
// and host twins of the launchers of kernels/kernels.h built from lib/reference (kernels.cc).
// It checks lib/cuda_backend.cc's orchestration: workspace regions, the order of the steps,
// the wire copies, the verdict, gates and commits, graph capture. The kernels themselves are
// checked by tests/unit/kernel_logic_test.cc, by the SIMT emulator (tests/simt: the real
// kernels on this device instead of the twins) and by tests/kernel on a GPU.
//
// Memory is host memory. Work enqueued on a stream is queued and runs, in order, only when
// CUDA's rules say it must be done (cuda_runtime.cc), so missing synchronization shows as
// stale data; SVEMU_SCHEDULE_SEED draws schedules in which streams keep their own pace instead.
// Asynchronous work (submitAsync) is done by another thread meanwhile. A capturing stream
// records the work instead; a graph launch replays it.
#pragma once

#include <cuda_runtime_api.h>

#include <sched.h>

#include <chrono>
#include <functional>
#include <thread>

namespace svemu {

// Queues fn on `stream` (runs it now on the legacy stream, after the blocking streams' work,
// unless asynchronous work is in flight there), or records it when `stream` is capturing.
void submit(cudaStream_t stream, std::function<void()> fn);

// Sets the error cudaGetLastError returns next, as a launch that fails does (the SIMT
// emulator's launches, tests/simt).
void launchFailed(cudaError_t e);

// What memory CUDA leaves undefined holds here (new device memory, a block's shared memory):
// 32-bit words alternately 0xFFFFFFFF and 0xFFFFFFFE, NaN as floats and nearly all ones as
// flags and counts, and 64-bit words with unequal halves, which a checksum that folds 64 bits
// to 32 by XOR does not lose, as it would lose all ones.
void fillUndefined(void* p, size_t bytes);

// Whether a kernel may be given p: memory of cudaMalloc or cudaHostAlloc (up to one past the
// end, which a kernel given no elements there does not read). Pageable host memory is not:
// on a GPU the kernel's access faults.
bool deviceReachable(const void* p);

// Whether the emulated device has an image of the kernels (initially it has): without one,
// cudaFuncGetAttributes and the SIMT emulator's launches fail with
// cudaErrorNoKernelImageForDevice, as on a GPU of an architecture the build left out.
void setKernelImage(bool present);
bool kernelImage();
// How many devices the emulated runtime reports (1 unless a test says otherwise): they share
// the one emulated device's memory and streams, but cudaMalloc's memory belongs to the device
// current then (cudaPointerGetAttributes says which) and a stream to the device current at its
// creation (cudaStreamGetDevice), so checks of a pointer's or a stream's device can run.
void setDeviceCount(int count);

// What the emulated runtime holds now, so that a test can check that a teardown gave back
// what its setup took.
struct Live {
  size_t device = 0, pinned = 0;  // allocations of cudaMalloc, cudaHostAlloc
  size_t streams = 0, events = 0;
  bool operator==(const Live& o) const {
    return device == o.device && pinned == o.pinned && streams == o.streams &&
           events == o.events;
  }
};
Live live();
// From now on the calls that wait for or ask about work (cudaStreamQuery, cudaStreamSynchronize,
// cudaEventQuery, cudaEventSynchronize, cudaDeviceSynchronize) still run it but return `e`
// (cudaSuccess: as before), as every call does on a GPU after a kernel's fault (a sticky
// error such as cudaErrorIllegalAddress). Other calls go on as before.
void failQueries(cudaError_t e);

// Work that another thread does, as a GPU would (the emulated NCCL's collectives, done by a
// communicator's thread once every rank has come). `launch` is called when the work is
// enqueued: on the call, or on each launch of a graph that recorded it. It starts the work,
// which must not begin before inputsReady() says the stream's earlier work has run, and
// returns done(). The stream's later work waits until done() is true; cudaStreamQuery and
// cudaEventQuery say cudaErrorNotReady meanwhile, as on a GPU, so a host wait with a timeout
// can give up on a collective whose peers never come.
using Launch = std::function<std::function<bool()>(std::function<bool()> inputsReady)>;
void submitAsync(cudaStream_t stream, Launch launch);

// One step of a wait for another thread or process: a yield, and once the wait is long a short
// sleep, so that waiting ranks leave the two cores of CI to the ones that work.
inline void backOff(unsigned* spins) {
  if (++*spins < 64) sched_yield();
  else std::this_thread::sleep_for(std::chrono::microseconds(50));
}

// Failures of the emulated NCCL (nccl.cc), for tests of lib/transport/nccl.cc's error paths;
// they act in this process only, results are ncclResult_t values.
// The nth (1 = the next) later call of `call` ("ncclSend", "ncclRecv", "ncclAllGather",
// "ncclAllReduce", "ncclGroupEnd") returns `result` and enqueues nothing; a failed call in a
// group drops the group, whose ncclGroupEnd returns it too.
void ncclFailCall(const char* call, int nth, int result);
// From now on every call that enqueues work enqueues it and returns ncclInProgress, and the
// communicator's ncclCommGetAsyncError says ncclInProgress `polls` times after it (-1: for
// ever; 0: back to blocking behaviour), as a non-blocking communicator may.
void ncclReturnInProgress(int polls);
// From now on every ncclCommGetAsyncError reports `result` (ncclSuccess: stop).
void ncclSetAsyncError(int result);

}  // namespace svemu
