// The fixed pairwise tree (tree.h): the scales of the scaled-sign schemes, and squareNorm
// (kernels.h) for adaptive K. One 2048-value tile per block and level: each thread
// sums 8 consecutive values as a tree in registers, the warp sums its lanes by __shfl_down
// with widths 1..16 (lane l then holds l's and l+w's pair exactly when l is a multiple of 2w,
// the host tree's pairs), thread 0 sums the 8 warps the same way. Levels repeat until one value
// per segment is left (logic.h: kTreeTile); blockIdx.y is the segment.
#include "tree.h"

#include "../common.cuh"

namespace signvote::kernels::detail {
namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kPerThread = logic::kTreeTile / kThreads;  // 8
static_assert(kPerThread == 8, "the register tree below sums 8 values");

__device__ __forceinline__ float sum8(const float (&v)[8]) {
  return __fadd_rn(__fadd_rn(__fadd_rn(v[0], v[1]), __fadd_rn(v[2], v[3])),
                   __fadd_rn(__fadd_rn(v[4], v[5]), __fadd_rn(v[6], v[7])));
}

SV_HD inline uint64_t segmentLen(uint64_t total, uint64_t stride, uint64_t s) {
  const uint64_t lo = s * stride < total ? s * stride : total;
  return total - lo < stride ? total - lo : stride;
}

// What the tree sums: |x| (the scales: every level takes |.|, the last divides by the
// segment's length), or x * x on the first level (adaptive K's norm, NaN as +0.0 or not; the
// last level writes the sum itself).
enum class Term : uint8_t { kAbsMean, kSquare, kSquareNaNZero };

__device__ __forceinline__ float term(float x, Term t, bool first) {
  if (t == Term::kAbsMean) return fabsf(x);
  if (!first) return x;
  return t == Term::kSquareNaNZero && isNaN(x) ? 0.0f : __fmul_rn(x, x);
}

// One level: dst[s * gridDim.x + b] = the tree sum of the terms over tile b of segment s (count
// values from src + s * stride, zero-padded; on the first level the segment's own length).
// The last level (dst == nullptr) writes the slot.
__global__ void __launch_bounds__(kThreads)
    levelKernel(const float* src, uint64_t stride, uint64_t count, bool first, Term t,
                float* dst, uint64_t total, uint64_t stride0, unsigned long long* slots,
                uint64_t slotStride) {
  __shared__ float warpSums[kThreads / 32];
  const uint64_t s = blockIdx.y;
  const float* seg = src + s * stride;
  if (first) count = segmentLen(total, stride0, s);
  const uint64_t base = uint64_t{blockIdx.x} * logic::kTreeTile + threadIdx.x * kPerThread;
  float v[kPerThread];
  for (unsigned j = 0; j < kPerThread; ++j)
    v[j] = base + j < count ? term(seg[base + j], t, first) : 0.0f;
  float sum = sum8(v);
  for (unsigned width = 1; width < 32; width <<= 1)
    sum = __fadd_rn(sum, __shfl_down_sync(~0u, sum, width));
  if ((threadIdx.x & 31) == 0) warpSums[threadIdx.x / 32] = sum;
  __syncthreads();
  if (threadIdx.x != 0) return;
  float w[8];
  for (unsigned j = 0; j < 8; ++j) w[j] = warpSums[j];
  const float total8 = sum8(w);
  if (dst != nullptr) {
    dst[s * gridDim.x + blockIdx.x] = total8;
    return;
  }
  if (t != Term::kAbsMean) {
    slots[s * slotStride] = __float_as_uint(total8);
    return;
  }
  const uint64_t len = segmentLen(total, stride0, s);
  slots[s * slotStride] =
      len == 0 ? 0 : __float_as_uint(__fdiv_rn(total8, __ull2float_rn(len)));
}

uint64_t tileFloats(uint64_t stride, uint64_t segments) {
  return stride > logic::kTreeTile ? logic::treeTiles(stride) * segments : 1;
}

cudaError_t run(void* temp, const float* src, uint64_t total, uint64_t stride,
                uint64_t segments, Term t, unsigned long long* slots, uint64_t slotStride,
                cudaStream_t stream) {
  if (segments == 0) return cudaSuccess;
  float* bufs[2] = {static_cast<float*>(temp),
                    static_cast<float*>(temp) + tileFloats(stride, segments)};
  const float* from = src;
  uint64_t fromStride = stride, count = stride;
  for (int level = 0;; ++level) {
    const uint64_t tiles = logic::treeTiles(count);
    float* to = tiles <= 1 ? nullptr : bufs[level & 1];
    const dim3 grid(static_cast<unsigned>(tiles ? tiles : 1), static_cast<unsigned>(segments));
    levelKernel<<<grid, kThreads, 0, stream>>>(from, fromStride, count, level == 0, t, to,
                                               total, stride, slots, slotStride);
    SVCUDACHECK(launched());
    if (to == nullptr) return cudaSuccess;
    from = to;
    fromStride = tiles;
    count = tiles;
  }
}

}  // namespace

size_t scaleTempBytes(uint64_t stride, uint64_t segments) {
  return 2 * tileFloats(stride, segments) * sizeof(float);  // two ping-pong buffers
}

cudaError_t scales(void* temp, const float* src, uint64_t total, uint64_t stride,
                   uint64_t segments, unsigned long long* slots, uint64_t slotStride,
                   cudaStream_t stream) {
  return run(temp, src, total, stride, segments, Term::kAbsMean, slots, slotStride, stream);
}

cudaError_t squareSum(void* temp, const float* src, uint64_t n, bool nanAsZero,
                      unsigned long long* slot, cudaStream_t stream) {
  return run(temp, src, n, n, 1, nanAsZero ? Term::kSquareNaNZero : Term::kSquare, slot, 1,
             stream);
}

}  // namespace signvote::kernels::detail

namespace signvote::kernels {

cudaError_t squareNorm(void* temp, size_t* tempBytes, const float* x, uint64_t n,
                       svNonFinitePolicy_t policy, unsigned long long* out, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  const size_t bytes = detail::scaleTempBytes(n, 1);
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  if (*tempBytes < bytes || out == nullptr || (n > 0 && x == nullptr))
    return cudaErrorInvalidValue;
  return detail::squareSum(temp, x, n, policy == SV_NONFINITE_IGNORE, out, stream);
}

}  // namespace signvote::kernels
