// The fixed pairwise tree of ref::pairwiseAbsSum on the device: the scales of the scaled-sign
// schemes (ef_sign, liec: sum |x| divided by the element count, for one or many segments of an
// array) and adaptive K's squared norm (ref::pairwiseSquareSum). Internal to kernels/.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace signvote::kernels::detail {

// Segment s of `segments` is src[s * stride, s * stride + len(s)) with
// len(s) = min(stride, total - min(total, s * stride)) (liec's owner chunks; one segment of
// stride = total for ef_sign). For each, *(slots + s * slotStride) = the float32 bits of
// tree sum |x| / float(len(s)) in the low half, or 0 when len(s) = 0. The tree runs level by
// level in tiles of logic::kTreeTile values, ping-ponging through temp (scaleTempBytes);
// each segment is read up to its own length only.
size_t scaleTempBytes(uint64_t stride, uint64_t segments);
cudaError_t scales(void* temp, const float* src, uint64_t total, uint64_t stride,
                   uint64_t segments, unsigned long long* slots, uint64_t slotStride,
                   cudaStream_t stream);

// *slot = the float32 bits of the tree sum of src[i] * src[i] over [0, n) in the low half
// (+0.0 when n = 0), NaN terms as +0.0 when nanAsZero; temp holds scaleTempBytes(n, 1).
cudaError_t squareSum(void* temp, const float* src, uint64_t n, bool nanAsZero,
                      unsigned long long* slot, cudaStream_t stream);

}  // namespace signvote::kernels::detail
