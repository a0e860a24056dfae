// Element-wise steps around the votes (kernels.h): ternary counts, s3gd's selection planes,
// counts to planes, result checks, outputs, the residual commit and the dense clean copy.
// Grid-stride loops with scalar loads, so any element alignment works.
#include <cub/block/block_reduce.cuh>

#include "../common.cuh"

namespace signvote::kernels {
namespace {

using detail::isNaN;

constexpr unsigned kThreads = 256;

__device__ __forceinline__ bool closed(const uint32_t* gate) { return gate && *gate != 0; }

template <class T>
__global__ void ternaryScatterKernel(const float* acc, const uint32_t* sel, uint64_t k, T* out) {
  SV_GRID_STRIDE(j, k) {
    const float v = acc[sel[j]];
    out[sel[j]] = static_cast<T>(v < 0.0f ? -1 : v > 0.0f ? 1 : 0);
  }
}

__global__ void selectionPlanesKernel(const float* acc, const uint32_t* sel, uint64_t k,
                                      uint64_t chunkWords, uint64_t* out) {
  SV_GRID_STRIDE(j, k) {
    if (!logic::leadsWord(sel, j)) continue;
    uint64_t nz, neg;
    const uint64_t word = logic::selectionWord(acc, sel, k, j, &nz, &neg);
    uint64_t* block = out + word / chunkWords * 2 * chunkWords;
    block[word % chunkWords] = nz;
    block[chunkWords + word % chunkWords] = neg;
  }
}

template <class T>
__global__ void countsToPlanesKernel(const T* counts, uint64_t chunkWords, int nranks,
                                     uint64_t* planes, uint32_t* flags) {
  SV_GRID_STRIDE(w, chunkWords) {
    if (!logic::countsWord(counts + w * 64, nranks, &planes[w], &planes[chunkWords + w]))
      atomicOr(flags, 1u);
  }
}

__global__ void poisonKernel(const uint32_t* when, uint64_t chunkWords, uint64_t* planes) {
  if (*when == 0) return;
  SV_GRID_STRIDE(w, chunkWords) {
    planes[w] = 0;
    planes[chunkWords + w] = ~uint64_t{0};
  }
}

__global__ void checkPlanesKernel(const uint64_t* all, uint64_t chunkWords, uint64_t words,
                                  uint32_t* flags) {
  SV_GRID_STRIDE(i, words) {
    const uint64_t s = i / chunkWords, w = i % chunkWords;
    const uint64_t* block = all + s * 2 * chunkWords;
    if (block[chunkWords + w] & ~block[w]) atomicOr(flags, 1u);
  }
}

__global__ void planesToOutputKernel(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                                     uint64_t n, float* out, const uint32_t* gate) {
  if (closed(gate)) return;
  const uint64_t chunk = chunkWords * 64;
  SV_GRID_STRIDE(i, n) {
    const uint64_t* block = all + (i / chunk) * planes * chunkWords;
    const uint64_t e = i % chunk;
    const bool first = (block[e >> 6] >> (e & 63)) & 1;
    if (planes == 1) {
      out[i] = first ? -1.0f : 1.0f;
    } else {
      const bool neg = (block[chunkWords + (e >> 6)] >> (e & 63)) & 1;
      out[i] = !first ? 0.0f : neg ? -1.0f : 1.0f;
    }
  }
}

__global__ void votesToOutputKernel(const int32_t* votes, uint64_t n, float* out,
                                    const uint32_t* gate) {
  if (closed(gate)) return;
  SV_GRID_STRIDE(i, n) out[i] = votes[i] < 0 ? -1.0f : votes[i] > 0 ? 1.0f : 0.0f;
}

__global__ void copyKernel(const float* from, uint64_t n, float* to, const uint32_t* gate) {
  if (closed(gate)) return;
  SV_GRID_STRIDE(i, n) to[i] = from[i];
}

__global__ void zeroAtKernel(const uint32_t* sel, uint64_t k, float* residual,
                             const uint32_t* gate) {
  if (closed(gate)) return;
  SV_GRID_STRIDE(j, k) residual[sel[j]] = 0.0f;
}

__global__ void __launch_bounds__(kThreads)
    cleanCopyKernel(const float* g, uint64_t n, bool ignoreNaN, float* out,
                    unsigned long long* nanCount) {
  __shared__ typename cub::BlockReduce<uint32_t, kThreads>::TempStorage reduce;
  uint32_t nans = 0;
  SV_GRID_STRIDE(i, n) {
    float v = g[i];
    if (isNaN(v)) {
      if (ignoreNaN) v = 0.0f;
      else ++nans;
    }
    out[i] = v;
  }
  nans = cub::BlockReduce<uint32_t, kThreads>(reduce).Sum(nans);
  if (threadIdx.x == 0 && nans != 0) atomicAdd(nanCount, nans);
}

}  // namespace

cudaError_t s3gdTernary(const float* acc, const uint32_t* sel, uint64_t k, uint64_t padded,
                        unsigned countBytes, void* out, cudaStream_t stream) {
  if ((countBytes != 1 && countBytes != 2) || (padded > 0 && out == nullptr) ||
      (k > 0 && (acc == nullptr || sel == nullptr)))
    return cudaErrorInvalidValue;
  if (padded > 0) SVCUDACHECK(cudaMemsetAsync(out, 0, padded * countBytes, stream));
  if (k == 0) return cudaSuccess;
  const unsigned grid = detail::gridFor(k, kThreads);
  if (countBytes == 1)
    ternaryScatterKernel<<<grid, kThreads, 0, stream>>>(acc, sel, k, static_cast<int8_t*>(out));
  else
    ternaryScatterKernel<<<grid, kThreads, 0, stream>>>(acc, sel, k, static_cast<int16_t*>(out));
  return detail::launched();
}

cudaError_t s3gdPlanes(const float* acc, const uint32_t* sel, uint64_t k, uint64_t chunkWords,
                       int nranks, uint64_t* out, cudaStream_t stream) {
  const uint64_t words = uint64_t(nranks) * 2 * chunkWords;
  if (nranks <= 0 || (words > 0 && out == nullptr) ||
      (k > 0 && (acc == nullptr || sel == nullptr || chunkWords == 0)))
    return cudaErrorInvalidValue;
  if (words > 0) SVCUDACHECK(cudaMemsetAsync(out, 0, words * 8, stream));
  if (k == 0) return cudaSuccess;
  selectionPlanesKernel<<<detail::gridFor(k, kThreads), kThreads, 0, stream>>>(acc, sel, k,
                                                                              chunkWords, out);
  return detail::launched();
}

cudaError_t countsToPlanes(const void* counts, unsigned countBytes, uint64_t chunkWords,
                           int nranks, uint64_t* planes, uint32_t* flags, cudaStream_t stream) {
  if ((countBytes != 1 && countBytes != 2) || flags == nullptr ||
      (chunkWords > 0 && (counts == nullptr || planes == nullptr)))
    return cudaErrorInvalidValue;
  if (chunkWords == 0) return cudaSuccess;
  const unsigned grid = detail::gridFor(chunkWords, kThreads);
  if (countBytes == 1)
    countsToPlanesKernel<<<grid, kThreads, 0, stream>>>(static_cast<const int8_t*>(counts),
                                                         chunkWords, nranks, planes, flags);
  else
    countsToPlanesKernel<<<grid, kThreads, 0, stream>>>(static_cast<const int16_t*>(counts),
                                                         chunkWords, nranks, planes, flags);
  return detail::launched();
}

cudaError_t poisonPlanesWhen(const uint32_t* when, uint64_t chunkWords, uint64_t* planes,
                             cudaStream_t stream) {
  if (when == nullptr || (chunkWords > 0 && planes == nullptr)) return cudaErrorInvalidValue;
  if (chunkWords == 0) return cudaSuccess;
  poisonKernel<<<detail::gridFor(chunkWords, kThreads), kThreads, 0, stream>>>(when, chunkWords,
                                                                               planes);
  return detail::launched();
}

cudaError_t checkResultPlanes(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                              int nranks, uint32_t* flags, cudaStream_t stream) {
  if (flags == nullptr || nranks <= 0 || (chunkWords > 0 && all == nullptr))
    return cudaErrorInvalidValue;
  const uint64_t words = uint64_t(nranks) * chunkWords;
  if (planes != 2 || words == 0) return cudaSuccess;
  checkPlanesKernel<<<detail::gridFor(words, kThreads), kThreads, 0, stream>>>(all, chunkWords,
                                                                              words, flags);
  return detail::launched();
}

cudaError_t planesToOutput(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                           uint64_t n, float* out, const uint32_t* gate, cudaStream_t stream) {
  if ((planes != 1 && planes != 2) ||
      (n > 0 && (chunkWords == 0 || all == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  planesToOutputKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(
      all, planes, chunkWords, n, out, gate);
  return detail::launched();
}

cudaError_t votesToOutput(const int32_t* votes, uint64_t n, float* out, const uint32_t* gate,
                          cudaStream_t stream) {
  if (n > 0 && (votes == nullptr || out == nullptr)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  votesToOutputKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(votes, n, out,
                                                                             gate);
  return detail::launched();
}

cudaError_t s3gdCommit(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n,
                       float* residual, const uint32_t* gate, cudaStream_t stream) {
  if (k > n || (n > 0 && (acc == nullptr || residual == nullptr)) || (k > 0 && sel == nullptr))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  copyKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(acc, n, residual, gate);
  SVCUDACHECK(detail::launched());
  if (k == 0) return cudaSuccess;
  zeroAtKernel<<<detail::gridFor(k, kThreads), kThreads, 0, stream>>>(sel, k, residual, gate);
  return detail::launched();
}

cudaError_t cleanCopy(const float* g, uint64_t n, svNonFinitePolicy_t policy, float* out,
                      unsigned long long* nanCount, cudaStream_t stream) {
  if (nanCount == nullptr || (n > 0 && (g == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  cleanCopyKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(
      g, n, policy == SV_NONFINITE_IGNORE, out, nanCount);
  return detail::launched();
}

}  // namespace signvote::kernels
