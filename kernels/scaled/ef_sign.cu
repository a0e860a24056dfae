// ef_sign's scaled signs (kernels.h: efSignCompress, checkScaledRecords, efSignMean,
// efSignCommit), same bits as lib/reference.
// compress: one warp per 64 elements writes p and, by two ballots, one word of each plane (as
// packSigns); then the scale by the pairwise tree of tree.h.
// mean: one thread per element, the W records' words are broadcast reads within a warp.
#include <cub/block/block_reduce.cuh>

#include <cstddef>
#include <cstring>

#include "../common.cuh"
#include "reference/mix.h"
#include "tree.h"

namespace signvote::kernels {
namespace {

using detail::isNaN;

constexpr unsigned kThreads = 256;

using detail::XorOp;

__global__ void __launch_bounds__(kThreads)
    compressKernel(const float* g, const float* e, uint64_t n, uint64_t words, bool ignoreNaN,
                   float* p, uint64_t* planes, RecordInfo* info, unsigned long long* nanCount) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const unsigned lane = threadIdx.x & 31;
  unsigned nans = 0;
  uint64_t terms = 0;
  SV_WARP_STRIDE(w, words) {
    float v[2];
    for (unsigned h = 0; h < 2; ++h) {
      const uint64_t i = 64 * w + 32 * h + lane;
      v[h] = 0.0f;
      if (i < n) {
        v[h] = __fadd_rn(g[i], e[i]);
        if (isNaN(v[h])) {
          if (ignoreNaN) v[h] = 0.0f;
          else ++nans;
        }
        p[i] = v[h];
      }
    }
    const auto [nz, neg] = detail::ternaryWords(v);
    if (lane == 0) {
      planes[w] = nz;
      planes[words + w] = neg;
      terms ^= ref::checksumTerm(nz, w) ^ ref::checksumTerm(neg, words + w);
    }
  }
  nans = __reduce_add_sync(~0u, nans);
  if (lane == 0 && nans != 0) atomicAdd(nanCount, nans);
  terms = Reduce(reduce).Reduce(terms, XorOp{});
  if (threadIdx.x == 0 && terms != 0) atomicXor(&info->checksumXor, terms);
}

__global__ void __launch_bounds__(kThreads)
    checkWordsKernel(const char* records, size_t stride, uint64_t n, uint64_t words,
                     unsigned long long* xors, uint32_t* flags) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const unsigned s = blockIdx.y;
  const auto* planes = reinterpret_cast<const uint64_t*>(records + s * stride + 64);
  uint64_t terms = 0;
  bool bad = false;
  SV_GRID_STRIDE(w, words) {
    const uint64_t nz = planes[w], neg = planes[words + w];
    bad |= !logic::scaledWordOk(nz, neg, w, n);
    terms ^= ref::checksumTerm(nz, w) ^ ref::checksumTerm(neg, words + w);
  }
  if (bad) atomicOr(&flags[s], kRecordMalformed);
  terms = Reduce(reduce).Reduce(terms, XorOp{});
  if (threadIdx.x == 0 && terms != 0) atomicXor(&xors[s], terms);
}

__global__ void checkHeadersKernel(const char* records, size_t stride, int nranks,
                                   uint64_t payloadWords, const unsigned long long* xors,
                                   uint32_t* flags) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= nranks) return;
  ref::WireHeader h;
  memcpy(&h, records + s * stride, sizeof(h));
  uint32_t f = 0;
  if (ref::checksumFold(payloadWords, xors[s]) != h.payloadChecksum) f |= kRecordChecksum;
  if ((h.aux >> 32) != 0) f |= kRecordMalformed;
  if (f) atomicOr(&flags[s], f);
}

__device__ __forceinline__ float scaleOf(const char* record) {
  return __uint_as_float(
      static_cast<uint32_t>(*reinterpret_cast<const uint64_t*>(record +
                                                                offsetof(ref::WireHeader, aux))));
}

__global__ void __launch_bounds__(kThreads)
    meanKernel(const char* records, size_t stride, int nranks, uint64_t n, uint64_t words,
               float* out, const uint32_t* gate) {
  if (gate && *gate) return;
  const float w = static_cast<float>(nranks);
  SV_GRID_STRIDE(i, n) {
    const uint64_t bit = uint64_t{1} << (i & 63);
    float sum = 0.0f;
    for (int s = 0; s < nranks; ++s) {
      const char* rec = records + s * stride;
      const auto* planes = reinterpret_cast<const uint64_t*>(rec + 64);
      float c = 0.0f;
      if (planes[i >> 6] & bit) c = (planes[words + (i >> 6)] & bit) ? -scaleOf(rec) : scaleOf(rec);
      sum = s == 0 ? c : __fadd_rn(sum, c);  // the host starts from rank 0's term
    }
    out[i] = __fdiv_rn(sum, w);
  }
}

__global__ void __launch_bounds__(kThreads)
    commitKernel(const float* p, const RecordInfo* info, uint64_t n, float* e,
                 const uint32_t* gate) {
  if (gate && *gate) return;
  const float scale = __uint_as_float(static_cast<uint32_t>(info->aux));
  SV_GRID_STRIDE(i, n) e[i] = __fsub_rn(p[i], logic::efSignValue(p[i], scale));
}

}  // namespace

cudaError_t efSignCompress(void* temp, size_t* tempBytes, const float* g, const float* e,
                           uint64_t n, svNonFinitePolicy_t policy, float* p, uint64_t* planes,
                           RecordInfo* info, unsigned long long* nanCount, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  const size_t bytes = detail::scaleTempBytes(n, 1);
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  const uint64_t words = (n + 63) / 64;
  if (*tempBytes < bytes || info == nullptr || nanCount == nullptr ||
      (n > 0 && (g == nullptr || e == nullptr || p == nullptr || planes == nullptr)))
    return cudaErrorInvalidValue;
  SVCUDACHECK(cudaMemsetAsync(info, 0, sizeof(RecordInfo), stream));  // scale 0 when n = 0
  if (n == 0) return cudaSuccess;
  compressKernel<<<detail::gridFor(words * 32, kThreads), kThreads, 0, stream>>>(
      g, e, n, words, policy == SV_NONFINITE_IGNORE, p, planes, info, nanCount);
  SVCUDACHECK(detail::launched());
  return detail::scales(temp, p, n, n, 1, &info->aux, 1, stream);
}

cudaError_t checkScaledRecords(void* temp, size_t* tempBytes, const void* records,
                               size_t stride, int nranks, uint64_t n, uint32_t* flags,
                               cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS) return cudaErrorInvalidValue;
  const size_t bytes = static_cast<size_t>(nranks) * sizeof(unsigned long long);
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  const uint64_t words = (n + 63) / 64;
  if (*tempBytes < bytes || records == nullptr || flags == nullptr ||
      stride < sizeof(ref::WireHeader) + 2 * words * 8)
    return cudaErrorInvalidValue;
  auto* xors = static_cast<unsigned long long*>(temp);
  const auto* base = static_cast<const char*>(records);
  SVCUDACHECK(cudaMemsetAsync(xors, 0, bytes, stream));
  if (words > 0) {
    const dim3 grid(detail::gridFor(words, kThreads, 1024), static_cast<unsigned>(nranks));
    checkWordsKernel<<<grid, kThreads, 0, stream>>>(base, stride, n, words, xors, flags);
    SVCUDACHECK(detail::launched());
  }
  checkHeadersKernel<<<(nranks + 127) / 128, 128, 0, stream>>>(base, stride, nranks, 2 * words,
                                                                xors, flags);
  return detail::launched();
}

cudaError_t efSignMean(const void* records, size_t stride, int nranks, uint64_t n, float* out,
                       const uint32_t* gate, cudaStream_t stream) {
  if (nranks <= 0 || (n > 0 && (records == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  meanKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(
      static_cast<const char*>(records), stride, nranks, n, (n + 63) / 64, out, gate);
  return detail::launched();
}

cudaError_t efSignCommit(const float* p, const RecordInfo* info, uint64_t n, float* e,
                         const uint32_t* gate, cudaStream_t stream) {
  if (n > 0 && (p == nullptr || info == nullptr || e == nullptr)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  commitKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(p, info, n, e, gate);
  return detail::launched();
}

}  // namespace signvote::kernels
