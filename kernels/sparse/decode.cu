// Sparse record decoding (kernels.h: addSparseVotes, sumSparseValues). Records are decoded in
// parallel: one thread per upper-bits word, its entries numbered by an exclusive scan of the
// words' popcounts (per tile with cub::BlockScan, across tiles with cub::DeviceScan). Each
// check of ref::decodeSparse becomes a local one (logic.h: decodeHighWord, paddingOk), plus
// one per record: the number of upper bits equals the header's entries.
// Votes go to votes[] by integer atomicAdd: the sums do not depend on the order. Values are
// float sums, whose bits do: one launch per record in rank order, after every check, adds a
// record that passed them (its indices strictly increase, so no two threads share one).
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
  uint64_t valueWords;  // the values array after the payload (sparse values), else 0
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

// What decodeKernel does with each entry.
enum class Visit { kVote, kCheckValues, kAddValues };

// grid (tiles, records rec0..): decode, then vote, check the values, or add them (kAddValues
// only for records whose flags are still zero).
template <Visit kVisit>
__global__ void __launch_bounds__(kThreads)
    decodeKernel(Layout s, RecordView r, uint64_t tiles, const uint64_t* prefix, unsigned rec0,
                 void* out, uint32_t* flags) {
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  __shared__ typename Scan::TempStorage scan;
  const unsigned rec = rec0 + blockIdx.y;
  const uint64_t entries = r.entries(rec);
  // Both conditions are uniform across the block: no thread reaches the barrier below.
  if (entries > s.k) {
    if (kVisit != Visit::kAddValues && blockIdx.x == 0 && threadIdx.x == 0)
      atomicOr(&flags[rec], kRecordMalformed);
    return;
  }
  if (kVisit == Visit::kAddValues && flags[rec] != 0) return;
  const uint64_t* payload = r.payload(rec);
  const uint64_t* values = payload + s.payloadWords();
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  const uint64_t bits = w < s.highWords ? payload[s.signWords + s.lowWords + w] : 0;
  uint64_t j;
  Scan(scan).ExclusiveSum(uint64_t{logic::popcount64(bits)}, j);
  j += prefix[uint64_t{rec} * tiles + blockIdx.x] - prefix[uint64_t{rec} * tiles];
  if (bits == 0) return;
  bool valuesOk = true;
  uint64_t e = j;  // the entry number decodeHighWord visits next
  const bool ok = logic::decodeHighWord(s, payload, entries, w, j, [&](uint64_t index,
                                                                       bool negative) {
    if constexpr (kVisit == Visit::kVote) {
      atomicAdd(&static_cast<int32_t*>(out)[index], negative ? -1 : 1);
    } else {
      const uint32_t v = logic::valueBits(values, e);
      if constexpr (kVisit == Visit::kCheckValues) {
        valuesOk &= logic::valueAgrees(v, negative);
      } else {
        float* sums = static_cast<float*>(out);
        sums[index] = __fadd_rn(sums[index], __uint_as_float(v));
      }
    }
    ++e;
  });
  if (kVisit != Visit::kAddValues && !(ok && valuesOk)) atomicOr(&flags[rec], kRecordMalformed);
}

// grid (tiles over payload and value words, W): zero padding and the checksum terms.
__global__ void __launch_bounds__(kThreads)
    paddingChecksumKernel(Layout s, RecordView r, unsigned long long* xors, uint32_t* flags) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const unsigned rec = blockIdx.y;
  const uint64_t entries = r.entries(rec);
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  const uint64_t sparseWords = s.payloadWords();
  uint64_t term = 0;
  if (w < sparseWords + r.valueWords) {
    const uint64_t word = r.payload(rec)[w];
    term = ref::checksumTerm(word, w);
    const bool ok = w < sparseWords ? logic::paddingOk(s, entries, w, word)
                                    : logic::valuesPaddingOk(w - sparseWords, entries, word);
    if (entries <= s.k && !ok) atomicOr(&flags[rec], kRecordMalformed);
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
  if (ref::checksumFold(s.payloadWords() + r.valueWords, xors[rec]) !=
      r.header(rec)->payloadChecksum)
    atomicOr(&flags[rec], kRecordChecksum);
}

size_t alignUp(size_t x) { return (x + 255) / 256 * 256; }

// The scratch of checkRecords: per (record, tile) popcounts and their prefix, per-record
// checksum accumulators, the scan's own scratch.
struct Scratch {
  uint64_t tiles = 0, slots = 0;
  size_t scanOff = 0, scanBytes = 0, total = 0;
  uint64_t *counts = nullptr, *prefix = nullptr;
  unsigned long long* xors = nullptr;
};

cudaError_t carve(const Layout& s, int nranks, void* temp, Scratch* out) {
  Scratch c;
  c.tiles = (s.highWords + kThreads - 1) / kThreads;
  c.slots = c.tiles * nranks;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(nullptr, c.scanBytes,
                                            static_cast<uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), c.slots));
  const size_t prefixOff = alignUp(c.slots * 8), xorsOff = 2 * alignUp(c.slots * 8);
  c.scanOff = xorsOff + alignUp(nranks * 8);
  c.total = c.scanOff + alignUp(c.scanBytes);
  if (temp != nullptr) {
    char* t = static_cast<char*>(temp);
    c.counts = reinterpret_cast<uint64_t*>(t);
    c.prefix = reinterpret_cast<uint64_t*>(t + prefixOff);
    c.xors = reinterpret_cast<unsigned long long*>(t + xorsOff);
  }
  *out = c;
  return cudaSuccess;
}

// The checks past the size query (begin() has refused nranks <= 0 before it).
bool argsOk(const Layout& s, const void* records, size_t stride, uint64_t valueWords,
            const void* out, const uint32_t* flags) {
  return records != nullptr && flags != nullptr && stride % 8 == 0 &&
         stride >= s.recordBytes() + valueWords * 8 && (s.n == 0 || out != nullptr);
}

// Every check of every record, with kVisit's work per entry (votes, or the values' checks).
template <Visit kVisit>
cudaError_t checkRecords(const Layout& s, const RecordView& r, int nranks, const Scratch& c,
                         void* temp, void* out, uint32_t* flags, cudaStream_t stream) {
  SVCUDACHECK(cudaMemsetAsync(c.xors, 0, nranks * 8, stream));
  if (c.tiles > 0) {
    const dim3 grid(static_cast<unsigned>(c.tiles), static_cast<unsigned>(nranks));
    tilePopKernel<<<grid, kThreads, 0, stream>>>(s, r, c.tiles, c.counts);
    SVCUDACHECK(detail::launched());
    size_t scanBytes = c.scanBytes;
    SVCUDACHECK(cub::DeviceScan::ExclusiveSum(static_cast<char*>(temp) + c.scanOff, scanBytes,
                                              c.counts, c.prefix, c.slots, stream));
    decodeKernel<kVisit><<<grid, kThreads, 0, stream>>>(s, r, c.tiles, c.prefix, 0, out, flags);
    SVCUDACHECK(detail::launched());
  }
  const uint64_t wordTiles = (s.payloadWords() + r.valueWords + kThreads - 1) / kThreads;
  if (wordTiles > 0) {
    const dim3 grid(static_cast<unsigned>(wordTiles), static_cast<unsigned>(nranks));
    paddingChecksumKernel<<<grid, kThreads, 0, stream>>>(s, r, c.xors, flags);
    SVCUDACHECK(detail::launched());
  }
  finishKernel<<<(nranks + 127) / 128, 128, 0, stream>>>(s, r, nranks, c.tiles, c.counts,
                                                          c.prefix, c.xors, flags);
  return detail::launched();
}

// CUB's size query, then the argument checks both launchers share; *sizeOnly when the call
// only asked for the scratch size.
cudaError_t begin(void* temp, size_t* tempBytes, const Layout& s, const void* records,
                  size_t stride, int nranks, uint64_t valueWords, const void* out,
                  const uint32_t* flags, Scratch* c, bool* sizeOnly) {
  if (tempBytes == nullptr || nranks <= 0) return cudaErrorInvalidValue;
  SVCUDACHECK(carve(s, nranks, temp, c));
  *sizeOnly = temp == nullptr;
  if (*sizeOnly) {
    *tempBytes = c->total;
    return cudaSuccess;
  }
  if (*tempBytes < c->total || !argsOk(s, records, stride, valueWords, out, flags))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

cudaError_t addSparseVotes(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                           const void* records, size_t stride, int nranks, int32_t* votes,
                           uint32_t* flags, cudaStream_t stream) {
  Scratch c;
  bool sizeOnly = false;
  SVCUDACHECK(begin(temp, tempBytes, layout, records, stride, nranks, 0, votes, flags, &c,
                    &sizeOnly));
  if (sizeOnly) return cudaSuccess;
  const RecordView r{static_cast<const char*>(records), stride, 0};
  return checkRecords<Visit::kVote>(layout, r, nranks, c, temp, votes, flags, stream);
}

cudaError_t sumSparseValues(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                            const void* records, size_t stride, int nranks, float* sums,
                            uint32_t* flags, cudaStream_t stream) {
  const uint64_t valueWords = (layout.k + 1) / 2;
  Scratch c;
  bool sizeOnly = false;
  SVCUDACHECK(begin(temp, tempBytes, layout, records, stride, nranks, valueWords, sums, flags,
                    &c, &sizeOnly));
  if (sizeOnly) return cudaSuccess;
  const RecordView r{static_cast<const char*>(records), stride, valueWords};
  SVCUDACHECK(checkRecords<Visit::kCheckValues>(layout, r, nranks, c, temp, nullptr, flags,
                                                stream));
  if (layout.n > 0) SVCUDACHECK(cudaMemsetAsync(sums, 0, layout.n * 4, stream));
  if (c.tiles == 0) return cudaSuccess;
  for (int rec = 0; rec < nranks; ++rec) {
    decodeKernel<Visit::kAddValues><<<static_cast<unsigned>(c.tiles), kThreads, 0, stream>>>(
        layout, r, c.tiles, c.prefix, static_cast<unsigned>(rec), sums, flags);
    SVCUDACHECK(detail::launched());
  }
  return cudaSuccess;
}

}  // namespace signvote::kernels
