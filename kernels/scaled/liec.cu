// liec's chunk signs (kernels.h: liecCompress, checkChunkSigns, liecOwner, liecAverageOwner,
// liecOutput), same bits as lib/reference. Plane words by warp ballots (one warp per 64
// elements, as packSigns), scales by the tree of tree.h (one segment per owner chunk), element
// sums in rank order from rank 0's term, the host's float32 operations (never contracted).
#include "../common.cuh"
#include "tree.h"

namespace signvote::kernels {
namespace {

constexpr unsigned kThreads = 256;

// ref::chunkSignsWords and ref::ownerChunk's length, callable on the device.
SV_HD inline uint64_t messageWords(uint64_t chunkWords) { return 2 * chunkWords + 1; }
SV_HD inline uint64_t chunkLen(uint64_t n, uint64_t chunk, uint64_t d) {
  const uint64_t lo = d * chunk < n ? d * chunk : n;
  return n - lo < chunk ? n - lo : chunk;
}

__device__ __forceinline__ float scaleOf(uint64_t word) {
  return __uint_as_float(static_cast<uint32_t>(word));
}

// Element x of a chunk-signs message of chunkWords plane words.
__device__ __forceinline__ float messageValue(const uint64_t* msg, uint64_t chunkWords,
                                              uint64_t x) {
  return logic::planeValue(msg[x >> 6], msg[chunkWords + (x >> 6)], x & 63,
                           scaleOf(msg[2 * chunkWords]));
}

// Warp per 64 elements over the W chunks: clean = g (NaN as +0.0 under IGNORE, else counted),
// zero past n; both plane words of the element's chunk message.
__global__ void __launch_bounds__(kThreads)
    compressKernel(const float* g, uint64_t n, uint64_t chunkWords, uint64_t words,
                   bool ignoreNaN, float* clean, uint64_t* msgs, unsigned long long* nanCount) {
  const unsigned lane = threadIdx.x & 31;
  const uint64_t msgWords = messageWords(chunkWords);
  unsigned nans = 0;
  SV_WARP_STRIDE(w, words) {
    float v[2];
    detail::warpWordValues(g, n, w, lane, ignoreNaN, v, &nans);
    clean[64 * w + lane] = v[0];
    clean[64 * w + 32 + lane] = v[1];
    const auto [nz, neg] = detail::ternaryWords(v);
    if (lane == 0) {
      uint64_t* msg = msgs + (w / chunkWords) * msgWords;
      msg[w % chunkWords] = nz;
      msg[chunkWords + w % chunkWords] = neg;
    }
  }
  nans = __reduce_add_sync(~0u, nans);
  if (lane == 0 && nans != 0) atomicAdd(nanCount, nans);
}

// grid (tiles over chunkWords + 1 words, messages): message s is of owner `owner`'s chunk
// when owner >= 0, else of chunk s.
__global__ void __launch_bounds__(kThreads)
    checkKernel(const uint64_t* msgs, uint64_t chunkWords, uint64_t n, int owner,
                uint32_t* flags) {
  const uint64_t s = blockIdx.y;
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (w > chunkWords) return;
  const uint64_t* msg = msgs + s * messageWords(chunkWords);
  const uint64_t len = chunkLen(n, 64 * chunkWords, owner >= 0 ? uint64_t(owner) : s);
  const bool ok = w < chunkWords ? logic::chunkWordOk(msg[w], msg[chunkWords + w], w, len)
                                 : (msg[2 * chunkWords] >> 31) == 0;
  if (!ok) atomicOr(flags, 1u);
}

// Warp per 64 elements of the owner's chunk: a = mean of the W messages' values (rank order,
// divided by W) + e below len, +0.0 past it; the result's plane words.
__global__ void __launch_bounds__(kThreads)
    ownerKernel(const uint64_t* recv, int nranks, uint64_t chunkWords, uint64_t len,
                const float* e, float* a, uint64_t* result) {
  const unsigned lane = threadIdx.x & 31;
  const uint64_t msgWords = messageWords(chunkWords);
  const float w = static_cast<float>(nranks);
  SV_WARP_STRIDE(lw, chunkWords) {
    float v[2];
    for (unsigned h = 0; h < 2; ++h) {
      const uint64_t x = 64 * lw + 32 * h + lane;
      v[h] = 0.0f;
      if (x < len) {
        float sum = messageValue(recv, chunkWords, x);
        for (int s = 1; s < nranks; ++s)
          sum = __fadd_rn(sum, messageValue(recv + s * msgWords, chunkWords, x));
        v[h] = __fadd_rn(__fdiv_rn(sum, w), e[x]);
      }
      a[x] = v[h];
    }
    const auto [nz, neg] = detail::ternaryWords(v);
    if (lane == 0) {
      result[lw] = nz;
      result[chunkWords + lw] = neg;
    }
  }
}

// eNew = a - C(a) below len (ref::efSignCommit with the result's scale), e past it.
__global__ void __launch_bounds__(kThreads)
    ownerErrorKernel(const float* a, const float* e, uint64_t len, uint64_t chunk,
                     uint64_t* scaleWord, float* eNew) {
  const float scale = scaleOf(*scaleWord);
  SV_GRID_STRIDE(x, chunk) {
    eNew[x] = x < len ? __fsub_rn(a[x], logic::efSignValue(a[x], scale)) : e[x];
  }
}

// When the owner found a malformed message: the scale word every receiver rejects.
__global__ void poisonKernel(const uint32_t* bad, uint64_t* scaleWord) {
  if (*bad) *scaleWord = ~uint64_t{0};  // (ref: poisonResult in lib/exchange.cc)
}

__global__ void __launch_bounds__(kThreads)
    averageOwnerKernel(const float* sum, const float* e, float w, uint64_t chunk, float* a,
                       float* eNew) {
  SV_GRID_STRIDE(x, chunk) {
    a[x] = __fadd_rn(__fdiv_rn(sum[x], w), e[x]);
    eNew[x] = -0.0f;
  }
}

__global__ void __launch_bounds__(kThreads)
    outputKernel(const uint64_t* results, const uint64_t* own, const float* clean, uint64_t n,
                 uint64_t chunkWords, float* out, const uint32_t* gate) {
  if (gate && *gate) return;
  const uint64_t chunk = 64 * chunkWords, msgWords = messageWords(chunkWords);
  SV_GRID_STRIDE(i, n) {
    const uint64_t d = i / chunk, x = i % chunk;
    const float chat = messageValue(results + d * msgWords, chunkWords, x);
    const float c = messageValue(own + d * msgWords, chunkWords, x);
    out[i] = __fadd_rn(chat, __fsub_rn(clean[i], c));
  }
}

}  // namespace

cudaError_t liecCompress(void* temp, size_t* tempBytes, const float* g, uint64_t n,
                         uint64_t chunkWords, int nranks, svNonFinitePolicy_t policy,
                         float* clean, uint64_t* msgs, unsigned long long* nanCount,
                         cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS ||
      (n + 63) / 64 > chunkWords * nranks)
    return cudaErrorInvalidValue;
  const uint64_t chunk = 64 * chunkWords;
  const size_t bytes = detail::scaleTempBytes(chunk, nranks);
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  const uint64_t words = chunkWords * nranks;
  if (*tempBytes < bytes || nanCount == nullptr ||
      (words > 0 && (clean == nullptr || msgs == nullptr)) || (n > 0 && g == nullptr))
    return cudaErrorInvalidValue;
  const uint64_t msgWords = messageWords(chunkWords);
  if (words == 0)  // n = 0: every message is all zero (no planes, scale 0)
    return cudaMemsetAsync(msgs, 0, nranks * msgWords * 8, stream);
  compressKernel<<<detail::gridFor(words * 32, kThreads), kThreads, 0, stream>>>(
      g, n, chunkWords, words, policy == SV_NONFINITE_IGNORE, clean, msgs, nanCount);
  SVCUDACHECK(detail::launched());
  return detail::scales(temp, clean, n, chunk, nranks,
                        reinterpret_cast<unsigned long long*>(msgs + 2 * chunkWords), msgWords,
                        stream);
}

cudaError_t checkChunkSigns(const uint64_t* msgs, int count, uint64_t chunkWords, uint64_t n,
                            int owner, uint32_t* flags, cudaStream_t stream) {
  if (count <= 0 || count > SV_MAX_RANKS || owner < -1 || owner >= SV_MAX_RANKS ||
      msgs == nullptr || flags == nullptr)
    return cudaErrorInvalidValue;
  const dim3 grid(detail::gridFor(chunkWords + 1, kThreads, 1u << 20),
                  static_cast<unsigned>(count));
  checkKernel<<<grid, kThreads, 0, stream>>>(msgs, chunkWords, n, owner, flags);
  return detail::launched();
}

cudaError_t liecOwner(void* temp, size_t* tempBytes, const uint64_t* recv, int nranks,
                      uint64_t n, int owner, uint64_t chunkWords, const float* e, float* a,
                      float* eNew, uint64_t* result, uint32_t* flags, cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS || owner < 0 ||
      owner >= nranks)
    return cudaErrorInvalidValue;
  const uint64_t chunk = 64 * chunkWords;
  const size_t bytes = detail::scaleTempBytes(chunk, 1);
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  if (*tempBytes < bytes || recv == nullptr || result == nullptr || flags == nullptr ||
      (chunk > 0 && (e == nullptr || a == nullptr || eNew == nullptr)))
    return cudaErrorInvalidValue;
  const uint64_t len = chunkLen(n, chunk, owner);
  SVCUDACHECK(checkChunkSigns(recv, nranks, chunkWords, n, owner, flags, stream));
  uint64_t* scaleWord = result + 2 * chunkWords;
  if (chunk > 0) {
    ownerKernel<<<detail::gridFor(chunkWords * 32, kThreads), kThreads, 0, stream>>>(
        recv, nranks, chunkWords, len, e, a, result);
    SVCUDACHECK(detail::launched());
  }
  SVCUDACHECK(detail::scales(temp, a, len, chunk, 1,
                             reinterpret_cast<unsigned long long*>(scaleWord), 1, stream));
  if (chunk > 0) {
    ownerErrorKernel<<<detail::gridFor(chunk, kThreads), kThreads, 0, stream>>>(
        a, e, len, chunk, scaleWord, eNew);
    SVCUDACHECK(detail::launched());
  }
  poisonKernel<<<1, 1, 0, stream>>>(flags, scaleWord);
  return detail::launched();
}

cudaError_t liecAverageOwner(const float* sum, const float* e, int nranks, uint64_t chunk,
                             float* a, float* eNew, cudaStream_t stream) {
  if (nranks <= 0 || (chunk > 0 && (sum == nullptr || e == nullptr || a == nullptr ||
                                    eNew == nullptr)))
    return cudaErrorInvalidValue;
  if (chunk == 0) return cudaSuccess;
  averageOwnerKernel<<<detail::gridFor(chunk, kThreads), kThreads, 0, stream>>>(
      sum, e, static_cast<float>(nranks), chunk, a, eNew);
  return detail::launched();
}

cudaError_t liecOutput(const uint64_t* results, const uint64_t* own, const float* clean,
                       uint64_t n, uint64_t chunkWords, float* out, const uint32_t* gate,
                       cudaStream_t stream) {
  if (n > 0 && (results == nullptr || own == nullptr || clean == nullptr || out == nullptr ||
                chunkWords == 0))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  outputKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(results, own, clean, n,
                                                                      chunkWords, out, gate);
  return detail::launched();
}

}  // namespace signvote::kernels
