// Device helpers shared by the kernel families, and the launchers' check macro.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "kernels.h"
#include "logic.h"

// The kernels' member of the SVCHECK family: returns the CUDA error of `call` from the
// enclosing launcher; SIGNVOTE_DEBUG tracing happens in lib/ where the error is turned into an
// svResult_t, so the location is kept in the message there.
#define SVCUDACHECK(call)                          \
  do {                                             \
    const cudaError_t sv_cuda_res_ = (call);       \
    if (sv_cuda_res_ != cudaSuccess) return sv_cuda_res_; \
  } while (0)

// A grid-stride loop over [0, n) in the launch's x dimension.
#define SV_GRID_STRIDE(i, n)                                                  \
  for (uint64_t i = uint64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < (n); \
       i += uint64_t{gridDim.x} * blockDim.x)

// A warp-stride loop over [0, n) in the launch's x dimension: one iteration per warp, the same
// iterations for all its lanes (the ballots inside need the whole warp; blocks are whole warps).
#define SV_WARP_STRIDE(w, n)                                                          \
  for (uint64_t w = (uint64_t{blockIdx.x} * blockDim.x + threadIdx.x) / 32; w < (n); \
       w += uint64_t{gridDim.x} * blockDim.x / 32)

namespace signvote::kernels::detail {

// XOR as a CUB reduction operator (the order-free checksum terms of reference/mix.h).
struct XorOp {
  __device__ uint64_t operator()(uint64_t a, uint64_t b) const { return a ^ b; }
};

constexpr uint32_t kAbsMask = 0x7FFFFFFFu;
constexpr uint32_t kInfKey = 0x7F800000u;

__device__ __forceinline__ uint32_t magnitudeKey(float x) { return __float_as_uint(x) & kAbsMask; }
__device__ __forceinline__ bool isNaN(float x) { return magnitudeKey(x) > kInfKey; }

// Grid for a grid-stride loop over n items with `threads` per block: enough blocks to fill the
// device several times over, never more than the items need.
inline unsigned gridFor(uint64_t n, unsigned threads, unsigned maxBlocks = 4096) {
  const uint64_t need = (n + threads - 1) / threads;
  return static_cast<unsigned>(need < 1 ? 1 : need > maxBlocks ? maxBlocks : need);
}

// One 64-bit plane word from a warp holding elements 64w + lane (lo) and 64w + 32 + lane (hi):
// bit e % 64 is element e's predicate, the host's bit order.
__device__ __forceinline__ uint64_t ballot64(bool lo, bool hi) {
  return __ballot_sync(~0u, lo) | uint64_t{__ballot_sync(~0u, hi)} << 32;
}

// The ternary plane words (nonzero: v != 0, negative: v < 0; NaN is nonzero, not negative) of
// a warp whose lanes hold the two values of one 64-element word (see ballot64).
struct PlaneWords {
  uint64_t nz, neg;
};
__device__ __forceinline__ PlaneWords ternaryWords(const float (&v)[2]) {
  return {ballot64(v[0] != 0.0f, v[1] != 0.0f), ballot64(v[0] < 0.0f, v[1] < 0.0f)};
}

// The warp's two values of 64-element word w (this lane's elements 64w + lane and
// 64w + 32 + lane): +0.0 past n; a NaN becomes +0.0 under ignoreNaN and is counted into *nans
// otherwise (packSigns' and liec's uplink loops).
__device__ __forceinline__ void warpWordValues(const float* g, uint64_t n, uint64_t w,
                                               unsigned lane, bool ignoreNaN, float (&v)[2],
                                               unsigned* nans) {
  for (unsigned h = 0; h < 2; ++h) {
    const uint64_t i = 64 * w + 32 * h + lane;
    v[h] = i < n ? g[i] : 0.0f;
    if (isNaN(v[h])) {
      if (ignoreNaN) v[h] = 0.0f;
      else ++*nans;
    }
  }
}

// The launch status of the last kernel launched from this thread.
inline cudaError_t launched() { return cudaGetLastError(); }

}  // namespace signvote::kernels::detail
