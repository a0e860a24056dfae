// Sparse record decoding and voting (kernels.h: addSparseVotes). Records are decoded in
// parallel: one thread per upper-bits word, its entries numbered by an exclusive scan of the
// words' popcounts (per tile with cub::BlockScan, across tiles with cub::DeviceScan). Each
// check of ref::decodeSparse becomes a local one (logic.h: decodeHighWord, paddingOk), plus
// one per record: the number of upper bits equals the header's entries.
// Votes go to votes[] by integer atomicAdd: the sums do not depend on the order.
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

#include "../common.cuh"
#include "reference/mix.h"

namespace signvote::kernels {
namespace {

using Layout = ref::SparseLayout;

constexpr unsigned kThreads = 256;
constexpr size_t kEntriesOffset = 40;  // offsetof(WireHeader, entries)

struct RecordView {
  const char* records;
  size_t stride;
  __device__ const uint64_t* payload(unsigned s) const {
    return reinterpret_cast<const uint64_t*>(records + s * stride + sizeof(ref::WireHeader));
  }
  __device__ uint64_t entries(unsigned s) const {
    return *reinterpret_cast<const uint64_t*>(records + s * stride + kEntriesOffset);
  }
  __device__ const ref::WireHeader* header(unsigned s) const {
    return reinterpret_cast<const ref::WireHeader*>(records + s * stride);
  }
};

using detail::XorOp;

// grid (tiles, W): popcount of each tile of upper-bits words.
__global__ void __launch_bounds__(kThreads)
    tilePopKernel(Layout s, RecordView r, uint64_t tiles, uint64_t* counts) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const uint64_t* high = r.payload(blockIdx.y) + s.signWords + s.lowWords;
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  uint64_t c = w < s.highWords ? __popcll(high[w]) : 0;
  c = Reduce(reduce).Sum(c);
  if (threadIdx.x == 0) counts[uint64_t{blockIdx.y} * tiles + blockIdx.x] = c;
}

// grid (tiles, W): decode and vote.
__global__ void __launch_bounds__(kThreads)
    decodeKernel(Layout s, RecordView r, uint64_t tiles, const uint64_t* prefix, int32_t* votes,
                 uint32_t* flags) {
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  const unsigned rec = blockIdx.y;
  const uint64_t entries = r.entries(rec);
  if (entries > s.k) {  // uniform across the block: no thread reaches the barrier below
    if (blockIdx.x == 0 && threadIdx.x == 0) atomicOr(&flags[rec], kRecordMalformed);
    return;
  }
  const uint64_t* payload = r.payload(rec);
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  const uint64_t bits = w < s.highWords ? payload[s.signWords + s.lowWords + w] : 0;
  uint64_t j;
  Scan(scan).ExclusiveSum(uint64_t{logic::popcount64(bits)}, j);
  j += prefix[uint64_t{rec} * tiles + blockIdx.x] - prefix[uint64_t{rec} * tiles];
  if (bits != 0 &&
      !logic::decodeHighWord(s, payload, entries, w, j, [&](uint64_t index, bool negative) {
        atomicAdd(&votes[index], negative ? -1 : 1);
      }))
    atomicOr(&flags[rec], kRecordMalformed);
}

// grid (tiles over payload words, W): zero padding and the payload checksum terms.
__global__ void __launch_bounds__(kThreads)
    paddingChecksumKernel(Layout s, RecordView r, unsigned long long* xors, uint32_t* flags) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const unsigned rec = blockIdx.y;
  const uint64_t entries = r.entries(rec);
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  uint64_t term = 0;
  if (w < s.payloadWords()) {
    const uint64_t word = r.payload(rec)[w];
    term = ref::checksumTerm(word, w);
    if (entries <= s.k && !logic::paddingOk(s, entries, w, word))
      atomicOr(&flags[rec], kRecordMalformed);
  }
  term = Reduce(reduce).Reduce(term, XorOp{});
  if (threadIdx.x == 0 && term != 0) atomicXor(&xors[rec], term);
}

// One thread per record: the bit count and the checksum.
__global__ void finishKernel(Layout s, RecordView r, int nranks, uint64_t tiles,
                             const uint64_t* counts, const uint64_t* prefix,
                             const unsigned long long* xors, uint32_t* flags) {
  const int rec = blockIdx.x * blockDim.x + threadIdx.x;
  if (rec >= nranks) return;
  const uint64_t first = uint64_t(rec) * tiles, last = first + tiles - 1;
  const uint64_t bitsSet = tiles == 0 ? 0 : prefix[last] + counts[last] - prefix[first];
  if (bitsSet != r.entries(rec)) atomicOr(&flags[rec], kRecordMalformed);
  if (ref::checksumFold(s.payloadWords(), xors[rec]) != r.header(rec)->payloadChecksum)
    atomicOr(&flags[rec], kRecordChecksum);
}

size_t alignUp(size_t x) { return (x + 255) / 256 * 256; }

}  // namespace

cudaError_t addSparseVotes(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                           const void* records, size_t stride, int nranks, int32_t* votes,
                           uint32_t* flags, cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || stride < layout.recordBytes() || stride % 8 != 0)
    return cudaErrorInvalidValue;
  const Layout& s = layout;
  const uint64_t tiles = (s.highWords + kThreads - 1) / kThreads;
  const uint64_t slots = tiles * nranks;
  size_t scanBytes = 0;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(nullptr, scanBytes, static_cast<uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), slots));
  const size_t countsOff = 0, prefixOff = alignUp(slots * 8), xorsOff = 2 * alignUp(slots * 8);
  const size_t scanOff = xorsOff + alignUp(nranks * 8);
  const size_t total = scanOff + alignUp(scanBytes);
  if (temp == nullptr) {
    *tempBytes = total;
    return cudaSuccess;
  }
  if (*tempBytes < total || records == nullptr || flags == nullptr ||
      (s.n > 0 && votes == nullptr))
    return cudaErrorInvalidValue;
  char* t = static_cast<char*>(temp);
  auto* counts = reinterpret_cast<uint64_t*>(t + countsOff);
  auto* prefix = reinterpret_cast<uint64_t*>(t + prefixOff);
  auto* xors = reinterpret_cast<unsigned long long*>(t + xorsOff);
  const RecordView r{static_cast<const char*>(records), stride};
  SVCUDACHECK(cudaMemsetAsync(xors, 0, nranks * 8, stream));
  if (tiles > 0) {
    const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(nranks));
    tilePopKernel<<<grid, kThreads, 0, stream>>>(s, r, tiles, counts);
    SVCUDACHECK(detail::launched());
    SVCUDACHECK(cub::DeviceScan::ExclusiveSum(t + scanOff, scanBytes, counts, prefix, slots,
                                              stream));
    decodeKernel<<<grid, kThreads, 0, stream>>>(s, r, tiles, prefix, votes, flags);
    SVCUDACHECK(detail::launched());
  }
  const uint64_t wordTiles = (s.payloadWords() + kThreads - 1) / kThreads;
  if (wordTiles > 0) {
    const dim3 grid(static_cast<unsigned>(wordTiles), static_cast<unsigned>(nranks));
    paddingChecksumKernel<<<grid, kThreads, 0, stream>>>(s, r, xors, flags);
    SVCUDACHECK(detail::launched());
  }
  finishKernel<<<(nranks + 127) / 128, 128, 0, stream>>>(s, r, nranks, tiles, counts, prefix,
                                                          xors, flags);
  return detail::launched();
}

}  // namespace signvote::kernels
