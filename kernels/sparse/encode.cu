// Sparse record encoding (kernels.h: encodeSparse), same bits as ref::encodeSparse. The
// entries are compacted with cub::DeviceSelect (stable: index order is kept); then every
// payload word is built by one thread from the entries that touch it, so nothing is written
// twice, no atomics touch the payload and the padding comes out zero:
//   sign word w   entries 64w .. 64w+63
//   low word w    entries floor(64w/L) .. floor((64w+63)/L)
//   high word w   the entries whose Elias-Fano position (index >> L) + j falls in the word,
//                 found by binary search (positions strictly increase with j).
#include <cub/block/block_reduce.cuh>
#include <cub/device/device_select.cuh>

#include "../common.cuh"
#include "reference/mix.h"

namespace signvote::kernels {
namespace {

using detail::Layout;

constexpr unsigned kThreads = 256;

struct NonZeroAt {
  const float* acc;
  __device__ bool operator()(uint32_t index) const { return acc[index] != 0.0f; }
};

struct XorOp {
  __device__ uint64_t operator()(uint64_t a, uint64_t b) const { return a ^ b; }
};

__device__ uint64_t signWord(uint64_t w, uint64_t m, const float* acc, const uint32_t* entries) {
  uint64_t word = 0;
  const uint64_t end = 64 * w + 64 < m ? 64 * w + 64 : m;
  for (uint64_t j = 64 * w; j < end; ++j)
    word |= uint64_t{__float_as_uint(acc[entries[j]]) >> 31} << (j & 63);
  return word;
}

__device__ uint64_t lowWord(uint64_t w, uint64_t m, unsigned L, const uint32_t* entries) {
  const uint64_t first = 64 * w / L, last = (64 * w + 63) / L;
  const uint64_t lowMask = (uint64_t{1} << L) - 1;
  uint64_t word = 0;
  for (uint64_t j = first; j <= last && j < m; ++j) {
    const uint64_t off = j * L, v = entries[j] & lowMask;
    word |= off >= 64 * w ? v << (off - 64 * w) : v >> (64 * w - off);
  }
  return word;
}

__device__ uint64_t highWord(uint64_t w, uint64_t m, unsigned L, const uint32_t* entries) {
  auto pos = [&](uint64_t j) { return (uint64_t{entries[j]} >> L) + j; };
  uint64_t lo = 0, hi = m;  // first j with pos(j) >= 64w
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if (pos(mid) < 64 * w) lo = mid + 1;
    else hi = mid;
  }
  uint64_t word = 0;
  for (uint64_t j = lo; j < m; ++j) {
    const uint64_t p = pos(j);
    if (p >= 64 * w + 64) break;
    word |= uint64_t{1} << (p & 63);
  }
  return word;
}

__global__ void __launch_bounds__(kThreads)
    buildWordsKernel(Layout s, const float* acc, const uint32_t* entries, uint64_t* payload,
                     RecordInfo* info) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const uint64_t m = info->entries;
  const uint64_t total = s.payloadWords();
  uint64_t terms = 0;
  const uint64_t stride = uint64_t{gridDim.x} * kThreads;
  for (uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x; w < total; w += stride) {
    uint64_t word;
    if (w < s.signWords) word = signWord(w, m, acc, entries);
    else if (w < s.signWords + s.lowWords) word = lowWord(w - s.signWords, m, s.lowBits, entries);
    else word = highWord(w - s.signWords - s.lowWords, m, s.lowBits, entries);
    payload[w] = word;
    terms ^= ref::checksumTerm(word, w);
  }
  terms = Reduce(reduce).Reduce(terms, XorOp{});
  if (threadIdx.x == 0) atomicXor(&info->checksumXor, terms);
}

}  // namespace

cudaError_t encodeSparse(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                         const float* acc, const uint32_t* sel, uint32_t* entries,
                         uint64_t* payload, RecordInfo* info, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  const auto k = static_cast<int64_t>(layout.k);
  size_t bytes = 0;
  SVCUDACHECK(cub::DeviceSelect::If(nullptr, bytes, sel, entries,
                                    static_cast<unsigned long long*>(nullptr), k,
                                    NonZeroAt{acc}));
  if (temp == nullptr) {
    *tempBytes = bytes;
    return cudaSuccess;
  }
  if (*tempBytes < bytes || info == nullptr) return cudaErrorInvalidValue;
  SVCUDACHECK(cudaMemsetAsync(info, 0, sizeof(RecordInfo), stream));
  if (k > 0)
    SVCUDACHECK(cub::DeviceSelect::If(temp, bytes, sel, entries, &info->entries, k,
                                      NonZeroAt{acc}, stream));
  const Layout s = detail::toDevice(layout);
  if (s.payloadWords() == 0) return cudaSuccess;
  buildWordsKernel<<<detail::gridFor(s.payloadWords(), kThreads), kThreads, 0, stream>>>(
      s, acc, entries, payload, info);
  return detail::launched();
}

}  // namespace signvote::kernels
