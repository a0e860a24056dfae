// Exact top-K by magnitude (kernels.h: accumulateTopK). Radix select in three passes over the
// 31-bit magnitude key, digits 11/11/9 from bit 30 down, as ref::selectTopKByMagnitude:
//   pass 0   fused with the residual update: writes acc, counts NaN, histograms bits 30..20;
//   choose   one block scans the 2^b bins from the top and fixes the digit holding the K-th
//            largest key, updating prefix, mask and `need` on the device (no host round trip);
//   list     cub::DeviceSelect (stable) writes the indices whose pass-0 digit is at or above the
//            chosen one (logic.h: onCandidateList), in index order, into room for n/4; for
//            gradients that is about K plus a few % of n (AIR top-K's candidate buffer);
//   pass 1,2 histogram the next digit of the keys that match the prefix, reading only the
//            listed keys when the list fit, else all of acc (the "view" below);
//   gather   per tile of 4096 view positions, count keys above v* and equal to it; an exclusive
//            scan of the tile counts (cub::DeviceScan) gives every tile its output offset; each
//            tile then scatters its indices in order (BlockScan), taking keys equal to v* while
//            the global count of earlier ties is below `need`: exactly K, lowest-index ties,
//            and no per-element global atomics.
// With the list, acc is read twice in full (pass 0 and the list); without it, four times.
#include <cub/block/block_load.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>
#include <cub/device/device_select.cuh>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/tabulate_output_iterator.h>

#include "../common.cuh"

namespace signvote::kernels {
namespace {

using detail::isNaN;
using detail::magnitudeKey;

constexpr unsigned kThreads = 256;
constexpr unsigned kItems = 16;
constexpr uint64_t kTile = uint64_t{kThreads} * kItems;
constexpr unsigned kBins = 2048;
constexpr unsigned kChooseThreads = 1024;

using logic::passSpec;
using logic::PassSpec;

template <bool kResidual>
__global__ void __launch_bounds__(kThreads)
    accumulateHistKernel(const float* g, const float* residual, float rho, uint64_t n,
                         bool ignoreNaN, float* acc, uint32_t* hist, TopKStatus* status) {
  // Selecting in place (acc == g, no residual) writes only the NaN it replaces.
  const bool inPlace = !kResidual && acc == g;
  __shared__ uint32_t bins[kBins];
  __shared__ typename cub::BlockReduce<uint32_t, kThreads>::TempStorage reduce;
  for (unsigned b = threadIdx.x; b < kBins; b += kThreads) bins[b] = 0;
  __syncthreads();
  uint32_t nans = 0;
  const uint64_t stride = uint64_t{gridDim.x} * kThreads;
  for (uint64_t i = uint64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    float a = kResidual ? __fmaf_rn(rho, residual[i], g[i]) : g[i];
    bool replaced = false;
    if (isNaN(a)) {
      if (ignoreNaN) {
        a = 0.0f;
        replaced = true;
      } else {
        ++nans;
      }
    }
    if (!inPlace || replaced) acc[i] = a;
    atomicAdd(&bins[magnitudeKey(a) >> 20], 1u);
  }
  __syncthreads();
  for (unsigned b = threadIdx.x; b < kBins; b += kThreads)
    if (bins[b] != 0) atomicAdd(&hist[b], bins[b]);
  nans = cub::BlockReduce<uint32_t, kThreads>(reduce).Sum(nans);
  if (threadIdx.x == 0 && nans != 0) atomicAdd(&status->nanCount, nans);
}

// The candidate list's room: indices and their keys, so that the passes after it read the keys
// in order instead of gathering acc (a 32-byte sector per listed key).
struct List {
  uint32_t* index;
  uint32_t* key;
};

// What passes 1 and 2 and the gather read: positions 0..len of the candidate list when it
// fit in its room, else all of acc (position j is index j). The same for every thread.
struct View {
  uint64_t len;
  const uint32_t *index, *key;  // nullptr: no list
  const float* acc;
  __device__ uint32_t keyAt(uint64_t j) const { return key ? key[j] : magnitudeKey(acc[j]); }
  __device__ uint32_t indexAt(uint64_t j) const {
    return index ? index[j] : static_cast<uint32_t>(j);
  }
};

__device__ __forceinline__ View viewOf(const TopKStatus* status, List list, const float* acc,
                                       uint64_t n) {
  const uint64_t listed = status->listCount;
  return listed <= logic::candidateListCap(n) ? View{listed, list.index, list.key, acc}
                                              : View{n, nullptr, nullptr, acc};
}

// Index i is on the candidate list (status holds pass 0's prefix and mask).
struct OnList {
  const float* acc;
  const TopKStatus* status;
  __device__ bool operator()(uint32_t i) const {
    return logic::onCandidateList(magnitudeKey(acc[i]), status->prefix, status->prefixMask);
  }
};

// The list's writer: entries past the room are dropped (the count still counts them). The key
// is read again where the predicate just read it, from cache.
struct ListWriter {
  List list;
  const float* acc;
  uint64_t cap;
  __device__ void operator()(ptrdiff_t j, uint32_t i) const {
    if (static_cast<uint64_t>(j) >= cap) return;
    list.index[j] = i;
    list.key[j] = magnitudeKey(acc[i]);
  }
};

template <int kPass>
__global__ void __launch_bounds__(kThreads)
    filterHistKernel(const float* acc, List list, uint64_t n, uint32_t* hist,
                     const TopKStatus* status) {
  constexpr PassSpec p = passSpec(kPass);
  constexpr uint32_t digitMask = (1u << p.bits) - 1;
  __shared__ uint32_t bins[kBins];
  for (unsigned b = threadIdx.x; b < kBins; b += kThreads) bins[b] = 0;
  const uint32_t prefix = status->prefix, mask = status->prefixMask;
  const View v = viewOf(status, list, acc, n);
  __syncthreads();
  const uint64_t stride = uint64_t{gridDim.x} * kThreads;
  for (uint64_t j = uint64_t{blockIdx.x} * kThreads + threadIdx.x; j < v.len; j += stride) {
    const uint32_t u = v.keyAt(j);
    if ((u & mask) == prefix) atomicAdd(&bins[(u >> p.shift) & digitMask], 1u);
  }
  __syncthreads();
  for (unsigned b = threadIdx.x; b <= digitMask; b += kThreads)
    if (bins[b] != 0) atomicAdd(&hist[b], bins[b]);
}

// Finds the digit d of this pass such that (keys with a larger digit) < need <= (keys with a
// digit >= d), among the keys matching the prefix so far.
template <int kPass>
__global__ void __launch_bounds__(kChooseThreads)
    chooseKernel(const uint32_t* hist, TopKStatus* status, uint32_t k) {
  constexpr PassSpec p = passSpec(kPass);
  constexpr unsigned nbins = 1u << p.bits;
  using Scan = cub::BlockScan<uint32_t, kChooseThreads>;
  __shared__ typename Scan::TempStorage scan;
  const uint32_t need = kPass == 0 ? k : status->need;
  // Thread t owns positions 2t and 2t+1 counted from the top digit down.
  uint32_t count[2], above[2];
  for (unsigned j = 0; j < 2; ++j) {
    const unsigned q = 2 * threadIdx.x + j;
    count[j] = q < nbins ? hist[nbins - 1 - q] : 0;
  }
  Scan(scan).ExclusiveSum(count, above);
  for (unsigned j = 0; j < 2; ++j) {
    const unsigned q = 2 * threadIdx.x + j;
    if (q < nbins && logic::isChosenBin(above[j], count[j], need)) {
      const uint32_t digit = nbins - 1 - q;
      const uint32_t prefix = (kPass == 0 ? 0u : status->prefix) | (digit << p.shift);
      status->prefix = prefix;
      status->prefixMask = (kPass == 0 ? 0u : status->prefixMask) | ((nbins - 1) << p.shift);
      status->need = need - above[j];
      if (kPass == 2) status->vstar = prefix;
    }
  }
}

// Tiles of kTile view positions, block-strided. Every one of the `slots` tile counts of the
// scratch is written (zero past the view), since the scan runs over all of them.
__global__ void __launch_bounds__(kThreads)
    tileCountKernel(const float* acc, List list, uint64_t n, uint64_t slots,
                    const TopKStatus* status, uint64_t* counts) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const uint32_t vstar = status->vstar;
  const View v = viewOf(status, list, acc, n);
  for (uint64_t t = blockIdx.x; t < slots; t += gridDim.x) {
    const uint64_t base = t * kTile;
    if (base >= v.len) {  // uniform across the block
      if (threadIdx.x == 0) counts[t] = 0;
      continue;
    }
    uint64_t c = 0;
    for (unsigned j = 0; j < kItems; ++j) {
      const uint64_t pos = base + j * kThreads + threadIdx.x;
      if (pos < v.len) c += logic::classify(v.keyAt(pos), vstar);
    }
    c = Reduce(reduce).Sum(c);
    if (threadIdx.x == 0) counts[t] = c;
    __syncthreads();  // `reduce` is reused by the next tile
  }
}

__global__ void __launch_bounds__(kThreads)
    tileScatterKernel(const float* acc, List list, uint64_t n, uint64_t k,
                      const TopKStatus* status, const uint64_t* tilePrefix, uint32_t* sel) {
  using Load = cub::BlockLoad<float, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
  using LoadKey = cub::BlockLoad<uint32_t, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  __shared__ union {
    typename Load::TempStorage load;
    typename LoadKey::TempStorage loadKey;
    typename Scan::TempStorage scan;
  } smem;
  const uint32_t vstar = status->vstar;
  const uint64_t need = status->need;
  const View v = viewOf(status, list, acc, n);
  const uint64_t tiles = (v.len + kTile - 1) / kTile;
  for (uint64_t t = blockIdx.x; t < tiles; t += gridDim.x) {
    const uint64_t base = t * kTile;
    const uint64_t valid = v.len - base < kTile ? v.len - base : kTile;
    const uint64_t first = uint64_t{threadIdx.x} * kItems;  // blocked: positions first + j
    uint32_t key[kItems];
    // Positions past the view load as key 0 and are masked out below.
    if (v.key) {
      LoadKey(smem.loadKey).Load(v.key + base, key, static_cast<int>(valid), 0u);
    } else {
      float x[kItems];
      Load(smem.load).Load(acc + base, x, static_cast<int>(valid), 0.0f);
      for (unsigned j = 0; j < kItems; ++j) key[j] = magnitudeKey(x[j]);
    }
    __syncthreads();
    uint64_t cls[kItems], mine = 0;
    for (unsigned j = 0; j < kItems; ++j) {
      cls[j] = first + j < valid ? logic::classify(key[j], vstar) : 0;
      mine += cls[j];
    }
    uint64_t before;
    Scan(smem.scan).ExclusiveSum(mine, before);
    before += tilePrefix[t];
    for (unsigned j = 0; j < kItems; ++j) {
      const uint64_t slot = logic::gatherSlot(cls[j], before, need, k);
      if (slot < k) sel[slot] = v.indexAt(base + first + j);
      before += cls[j];
    }
    __syncthreads();  // `smem` is reused by the next tile
  }
}

struct Scratch {
  uint32_t* hist;  // 3 passes x kBins
  List list;       // the candidate list's room
  uint64_t* tileCounts;
  uint64_t* tilePrefix;
  void* scanTemp;
  void* listTemp;
  size_t scanBytes, listBytes;
  size_t total;
};

size_t alignUp(size_t x) { return (x + 255) / 256 * 256; }

using ListInput = thrust::counting_iterator<uint32_t>;
using ListOutput = thrust::tabulate_output_iterator<ListWriter>;

// The candidate list by cub::DeviceSelect (size query when temp == nullptr).
cudaError_t selectList(void* temp, size_t& bytes, const float* acc, List list, uint64_t n,
                       TopKStatus* status, cudaStream_t stream) {
  return cub::DeviceSelect::If(temp, bytes, ListInput(0),
                               ListOutput(ListWriter{list, acc, logic::candidateListCap(n)}),
                               status ? &status->listCount : nullptr,
                               static_cast<int64_t>(n), OnList{acc, status}, stream);
}

cudaError_t carve(void* temp, uint64_t n, Scratch* s) {
  const uint64_t tiles = (n + kTile - 1) / kTile;
  size_t scanBytes = 0, listBytes = 0;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(nullptr, scanBytes, static_cast<uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), tiles));
  SVCUDACHECK(selectList(nullptr, listBytes, nullptr, List{}, n, nullptr, nullptr));
  char* p = static_cast<char*>(temp);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    void* r = p ? p + off : nullptr;
    off += alignUp(bytes);
    return r;
  };
  const size_t room = logic::candidateListCap(n) * sizeof(uint32_t);
  s->hist = static_cast<uint32_t*>(take(3 * kBins * sizeof(uint32_t)));
  s->list = {static_cast<uint32_t*>(take(room)), static_cast<uint32_t*>(take(room))};
  s->tileCounts = static_cast<uint64_t*>(take(tiles * sizeof(uint64_t)));
  s->tilePrefix = static_cast<uint64_t*>(take(tiles * sizeof(uint64_t)));
  s->scanTemp = take(scanBytes);
  s->listTemp = take(listBytes);
  s->scanBytes = scanBytes;
  s->listBytes = listBytes;
  s->total = off;
  return cudaSuccess;
}

}  // namespace

cudaError_t accumulateTopK(void* temp, size_t* tempBytes, const float* g, const float* residual,
                           float rho, uint64_t n, uint64_t k, svNonFinitePolicy_t policy,
                           float* acc, uint32_t* sel, TopKStatus* status, cudaStream_t stream) {
  if (tempBytes == nullptr || k > n || n > 0xFFFFFFFFull) return cudaErrorInvalidValue;
  Scratch s{};
  SVCUDACHECK(carve(temp, n, &s));
  if (temp == nullptr) {
    *tempBytes = s.total;
    return cudaSuccess;
  }
  if (*tempBytes < s.total || status == nullptr || (n > 0 && (g == nullptr || acc == nullptr)) ||
      (k > 0 && sel == nullptr))
    return cudaErrorInvalidValue;
  SVCUDACHECK(cudaMemsetAsync(status, 0, sizeof(TopKStatus), stream));
  if (n == 0) return cudaSuccess;
  SVCUDACHECK(cudaMemsetAsync(s.hist, 0, 3 * kBins * sizeof(uint32_t), stream));
  const unsigned grid = detail::gridFor(n, kThreads);
  const bool ignore = policy == SV_NONFINITE_IGNORE;
  if (residual)
    accumulateHistKernel<true><<<grid, kThreads, 0, stream>>>(g, residual, rho, n, ignore, acc,
                                                              s.hist, status);
  else
    accumulateHistKernel<false><<<grid, kThreads, 0, stream>>>(g, nullptr, rho, n, ignore, acc,
                                                               s.hist, status);
  SVCUDACHECK(detail::launched());
  if (k == 0) return cudaSuccess;
  const auto k32 = static_cast<uint32_t>(k);
  chooseKernel<0><<<1, kChooseThreads, 0, stream>>>(s.hist, status, k32);
  SVCUDACHECK(detail::launched());
  size_t listBytes = s.listBytes;
  SVCUDACHECK(selectList(s.listTemp, listBytes, acc, s.list, n, status, stream));
  filterHistKernel<1><<<grid, kThreads, 0, stream>>>(acc, s.list, n, s.hist + kBins, status);
  SVCUDACHECK(detail::launched());
  chooseKernel<1><<<1, kChooseThreads, 0, stream>>>(s.hist + kBins, status, k32);
  SVCUDACHECK(detail::launched());
  filterHistKernel<2><<<grid, kThreads, 0, stream>>>(acc, s.list, n, s.hist + 2 * kBins, status);
  SVCUDACHECK(detail::launched());
  chooseKernel<2><<<1, kChooseThreads, 0, stream>>>(s.hist + 2 * kBins, status, k32);
  SVCUDACHECK(detail::launched());

  // The gather's tiles are block-strided, so its grid need not cover a full view.
  const uint64_t tiles = (n + kTile - 1) / kTile;
  const unsigned tileGrid = static_cast<unsigned>(tiles < 2048 ? tiles : 2048);
  tileCountKernel<<<tileGrid, kThreads, 0, stream>>>(acc, s.list, n, tiles, status, s.tileCounts);
  SVCUDACHECK(detail::launched());
  size_t scanBytes = s.scanBytes;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(s.scanTemp, scanBytes, s.tileCounts, s.tilePrefix,
                                            tiles, stream));
  tileScatterKernel<<<tileGrid, kThreads, 0, stream>>>(acc, s.list, n, k, status, s.tilePrefix,
                                                       sel);
  return detail::launched();
}

}  // namespace signvote::kernels
