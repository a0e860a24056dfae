// Sparse record encoding (kernels.h: encodeSparse), same bits as ref::encodeSparse. The
// entries are compacted with cub::DeviceSelect (stable: index order is kept); then every
// payload word is built by one thread from the entries that touch it, so nothing is written
// twice, no atomics touch the payload and the padding comes out zero:
// (logic.h: signWord, lowWord, highWord).
#include <cub/block/block_reduce.cuh>
#include <cub/device/device_select.cuh>

#include "../common.cuh"
#include "reference/mix.h"

namespace signvote::kernels {
namespace {

using Layout = ref::SparseLayout;

constexpr unsigned kThreads = 256;

struct NonZeroAt {
  const float* acc;
  __device__ bool operator()(uint32_t index) const { return acc[index] != 0.0f; }
};

using detail::XorOp;

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
    if (w < s.signWords)
      word = logic::signWord(w, m, [&](uint64_t j) { return signbit(acc[entries[j]]); });
    else if (w < s.signWords + s.lowWords)
      word = logic::lowWord(w - s.signWords, m, s.lowBits, entries);
    else
      word = logic::highWord(w - s.signWords - s.lowWords, m, s.lowBits, entries);
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
  const Layout& s = layout;
  if (s.payloadWords() == 0) return cudaSuccess;
  buildWordsKernel<<<detail::gridFor(s.payloadWords(), kThreads), kThreads, 0, stream>>>(
      s, acc, entries, payload, info);
  return detail::launched();
}

}  // namespace signvote::kernels
