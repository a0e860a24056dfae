// The emulated device of the CUDA-backend lane that CI runs without a GPU (tests/emu/): a host
// stand-in for the CUDA runtime calls lib/ and the CUDA-backend suites make (cuda_runtime.cc),
// and host twins of the launchers of kernels/kernels.h built from lib/reference (kernels.cc).
// It checks lib/cuda_backend.cc's orchestration: workspace regions, the order of the steps,
// the wire copies, the verdict, gates and commits, graph capture. The kernels themselves are
// checked by tests/unit/kernel_logic_test.cc here and by tests/kernel on a GPU.
//
// Memory is host memory. Work enqueued on a stream is queued and runs, in order, only when
// CUDA's rules say it must be done (cuda_runtime.cc), so missing synchronization shows as
// stale data. A capturing stream records the work instead; a graph launch replays it.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

namespace svemu {

// Queues fn on `stream` (runs it now on the legacy stream, after the blocking streams'
// work), or records it when `stream` is capturing.
void submit(cudaStream_t stream, std::function<void()> fn);

// Runs fn now, after the work queued on `stream` (or records it when capturing): the emulated
// NCCL's collectives, which block until every rank has come, so that no rank waits on a queue
// that another process would only run later.
void submitNow(cudaStream_t stream, std::function<void()> fn);

}  // namespace svemu
