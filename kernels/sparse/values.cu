// topk_ef's and dgs's per-rank steps around the sparse record (kernels.h: topkEfAccumulate,
// encodeValues, copySelected). Element-wise and per-word: the same float32 operations as
// lib/reference (__fmaf_rn, __fadd_rn: never contracted), one writer per output word.
#include <cub/block/block_reduce.cuh>

#include "../common.cuh"
#include "reference/mix.h"

namespace signvote::kernels {
namespace {

constexpr unsigned kThreads = 256;

using detail::isNaN;
using detail::XorOp;

__global__ void __launch_bounds__(kThreads)
    topkEfKernel(const float* g, const float* u, const float* v, float momentum, uint64_t n,
                 bool ignoreNaN, float* uNew, float* vNew) {
  SV_GRID_STRIDE(i, n) {
    float ui = g[i];
    if (u != nullptr) {
      ui = __fmaf_rn(momentum, u[i], ui);
      if (ignoreNaN && isNaN(ui)) ui = 0.0f;
      uNew[i] = ui;
    }
    float vi = __fadd_rn(v[i], ui);
    if (ignoreNaN && isNaN(vi)) vi = 0.0f;
    vNew[i] = vi;
  }
}

__global__ void __launch_bounds__(kThreads)
    valuesKernel(const float* acc, const uint32_t* entries, uint64_t words, uint64_t firstWord,
                 uint64_t* values, RecordInfo* info) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const uint64_t m = info->entries;
  uint64_t terms = 0;
  SV_GRID_STRIDE(w, words) {
    const uint64_t word =
        logic::valuesWord(w, m, [&](uint64_t j) { return __float_as_uint(acc[entries[j]]); });
    values[w] = word;
    terms ^= ref::checksumTerm(word, firstWord + w);
  }
  terms = Reduce(reduce).Reduce(terms, XorOp{});
  if (threadIdx.x == 0 && terms != 0) atomicXor(&info->checksumXor, terms);
}

__global__ void __launch_bounds__(kThreads)
    zeroKernel(float* dst, uint64_t n, const uint32_t* gate) {
  if (gate && *gate) return;
  SV_GRID_STRIDE(i, n) dst[i] = 0.0f;
}

__global__ void __launch_bounds__(kThreads)
    copySelectedKernel(const float* src, const uint32_t* sel, uint64_t k, float* dst,
                       const uint32_t* gate) {
  if (gate && *gate) return;
  SV_GRID_STRIDE(j, k) dst[sel[j]] = src[sel[j]];
}

}  // namespace

cudaError_t topkEfAccumulate(const float* g, const float* u, const float* v, float momentum,
                             uint64_t n, svNonFinitePolicy_t policy, float* uNew, float* vNew,
                             cudaStream_t stream) {
  const bool withU = momentum != 0.0f;
  if (n > 0 && (g == nullptr || v == nullptr || vNew == nullptr ||
                withU != (u != nullptr) || withU != (uNew != nullptr)))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  topkEfKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(
      g, withU ? u : nullptr, v, momentum, n, policy == SV_NONFINITE_IGNORE, uNew, vNew);
  return detail::launched();
}

cudaError_t encodeValues(const float* acc, const uint32_t* entries, uint64_t k,
                         uint64_t firstWord, uint64_t* values, RecordInfo* info,
                         cudaStream_t stream) {
  const uint64_t words = (k + 1) / 2;
  if (info == nullptr || (words > 0 && (acc == nullptr || entries == nullptr || values == nullptr)))
    return cudaErrorInvalidValue;
  if (words == 0) return cudaSuccess;
  valuesKernel<<<detail::gridFor(words, kThreads), kThreads, 0, stream>>>(acc, entries, words,
                                                                          firstWord, values, info);
  return detail::launched();
}

cudaError_t copySelected(const float* src, const uint32_t* sel, uint64_t k, uint64_t n,
                         bool zeroOthers, float* dst, const uint32_t* gate, cudaStream_t stream) {
  if (k > n || (n > 0 && dst == nullptr) || (k > 0 && (src == nullptr || sel == nullptr)))
    return cudaErrorInvalidValue;
  if (zeroOthers && n > 0) {
    zeroKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(dst, n, gate);
    SVCUDACHECK(detail::launched());
  }
  if (k == 0) return cudaSuccess;
  copySelectedKernel<<<detail::gridFor(k, kThreads), kThreads, 0, stream>>>(src, sel, k, dst,
                                                                            gate);
  return detail::launched();
}

}  // namespace signvote::kernels
