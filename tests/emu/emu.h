// The emulated device of the CUDA-backend lane that CI runs without a GPU (tests/emu/): a host
// stand-in for the CUDA runtime calls lib/ and the CUDA-backend suites make (cuda_runtime.cc),
// and host twins of the launchers of kernels/kernels.h built from lib/reference (kernels.cc).
// It checks lib/cuda_backend.cc's orchestration: workspace regions, the order of the steps,
// the wire copies, the verdict, gates and commits, graph capture. The kernels themselves are
// checked by tests/unit/kernel_logic_test.cc here and by tests/kernel on a GPU.
//
// Memory is host memory. Work enqueued on a stream runs at once, in enqueue order: one valid
// schedule of the streams' order and their events, since the host enqueues only what its
// recorded events allow. A capturing stream records the work instead; a graph launch replays
// it.
#pragma once

#include <cuda_runtime_api.h>

#include <functional>

namespace svemu {

// Runs fn now, or records it when `stream` is capturing.
void submit(cudaStream_t stream, std::function<void()> fn);

}  // namespace svemu
