// Exact top-K by magnitude (kernels.h: accumulateTopK). Radix select in three passes over the
// 31-bit magnitude key, digits 11/11/9 from bit 30 down, as ref::selectTopKByMagnitude:
//   pass 0   fused with the residual update: writes acc, counts NaN, histograms bits 30..20;
//   choose   one block scans the 2^b bins from the top and fixes the digit holding the K-th
//            largest key, updating prefix, mask and `need` on the device (no host round trip);
//   pass 1,2 re-read acc and histogram the next digit of the keys that match the prefix;
//   gather   per tile of 4096 elements, count keys above v* and equal to it; an exclusive scan
//            of the tile counts (cub::DeviceScan) gives every tile its output offset; each tile
//            then scatters its indices in order (BlockScan), taking keys equal to v* while the
//            global count of earlier ties is below `need`: exactly K, lowest-index ties, and no
//            per-element global atomics.
#include <cub/block/block_load.cuh>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>
#include <cub/device/device_scan.cuh>

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

template <int kPass>
__global__ void __launch_bounds__(kThreads)
    filterHistKernel(const float* acc, uint64_t n, uint32_t* hist, const TopKStatus* status) {
  constexpr PassSpec p = passSpec(kPass);
  constexpr uint32_t digitMask = (1u << p.bits) - 1;
  __shared__ uint32_t bins[kBins];
  for (unsigned b = threadIdx.x; b < kBins; b += kThreads) bins[b] = 0;
  const uint32_t prefix = status->prefix, mask = status->prefixMask;
  __syncthreads();
  const uint64_t stride = uint64_t{gridDim.x} * kThreads;
  for (uint64_t i = uint64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += stride) {
    const uint32_t u = magnitudeKey(acc[i]);
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

__device__ __forceinline__ uint64_t classify(float x, uint32_t vstar) {
  return logic::classify(magnitudeKey(x), vstar);
}

__global__ void __launch_bounds__(kThreads)
    tileCountKernel(const float* acc, uint64_t n, const TopKStatus* status, uint64_t* counts) {
  using Reduce = cub::BlockReduce<uint64_t, kThreads>;
  __shared__ typename Reduce::TempStorage reduce;
  const uint32_t vstar = status->vstar;
  const uint64_t base = uint64_t{blockIdx.x} * kTile;
  uint64_t c = 0;
  for (unsigned j = 0; j < kItems; ++j) {
    const uint64_t i = base + j * kThreads + threadIdx.x;
    if (i < n) c += classify(acc[i], vstar);
  }
  c = Reduce(reduce).Sum(c);
  if (threadIdx.x == 0) counts[blockIdx.x] = c;
}

__global__ void __launch_bounds__(kThreads)
    tileScatterKernel(const float* acc, uint64_t n, uint64_t k, const TopKStatus* status,
                      const uint64_t* tilePrefix, uint32_t* sel) {
  using Load = cub::BlockLoad<float, kThreads, kItems, cub::BLOCK_LOAD_WARP_TRANSPOSE>;
  using Scan = cub::BlockScan<uint64_t, kThreads>;
  __shared__ union {
    typename Load::TempStorage load;
    typename Scan::TempStorage scan;
  } smem;
  const uint32_t vstar = status->vstar;
  const uint64_t need = status->need;
  const uint64_t base = uint64_t{blockIdx.x} * kTile;
  const uint64_t valid = n - base < kTile ? n - base : kTile;
  float x[kItems];
  // Items past n load as 0.0f and are masked out below.
  Load(smem.load).Load(acc + base, x, static_cast<int>(valid), 0.0f);
  __syncthreads();
  uint64_t cls[kItems], mine = 0;
  for (unsigned j = 0; j < kItems; ++j) {
    const uint64_t local = uint64_t{threadIdx.x} * kItems + j;
    cls[j] = local < valid ? classify(x[j], vstar) : 0;
    mine += cls[j];
  }
  uint64_t before;
  Scan(smem.scan).ExclusiveSum(mine, before);
  before += tilePrefix[blockIdx.x];
  for (unsigned j = 0; j < kItems; ++j) {
    const uint64_t slot = logic::gatherSlot(cls[j], before, need, k);
    if (slot < k) sel[slot] = static_cast<uint32_t>(base + uint64_t{threadIdx.x} * kItems + j);
    before += cls[j];
  }
}

struct Scratch {
  uint32_t* hist;  // 3 passes x kBins
  uint64_t* tileCounts;
  uint64_t* tilePrefix;
  void* scanTemp;
  size_t scanBytes;
  size_t total;
};

size_t alignUp(size_t x) { return (x + 255) / 256 * 256; }

cudaError_t carve(void* temp, uint64_t n, Scratch* s) {
  const uint64_t tiles = (n + kTile - 1) / kTile;
  size_t scanBytes = 0;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(nullptr, scanBytes, static_cast<uint64_t*>(nullptr),
                                            static_cast<uint64_t*>(nullptr), tiles));
  char* p = static_cast<char*>(temp);
  size_t off = 0;
  auto take = [&](size_t bytes) {
    void* r = p ? p + off : nullptr;
    off += alignUp(bytes);
    return r;
  };
  s->hist = static_cast<uint32_t*>(take(3 * kBins * sizeof(uint32_t)));
  s->tileCounts = static_cast<uint64_t*>(take(tiles * sizeof(uint64_t)));
  s->tilePrefix = static_cast<uint64_t*>(take(tiles * sizeof(uint64_t)));
  s->scanTemp = take(scanBytes);
  s->scanBytes = scanBytes;
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
  filterHistKernel<1><<<grid, kThreads, 0, stream>>>(acc, n, s.hist + kBins, status);
  SVCUDACHECK(detail::launched());
  chooseKernel<1><<<1, kChooseThreads, 0, stream>>>(s.hist + kBins, status, k32);
  SVCUDACHECK(detail::launched());
  filterHistKernel<2><<<grid, kThreads, 0, stream>>>(acc, n, s.hist + 2 * kBins, status);
  SVCUDACHECK(detail::launched());
  chooseKernel<2><<<1, kChooseThreads, 0, stream>>>(s.hist + 2 * kBins, status, k32);
  SVCUDACHECK(detail::launched());

  const uint64_t tiles = (n + kTile - 1) / kTile;
  tileCountKernel<<<static_cast<unsigned>(tiles), kThreads, 0, stream>>>(acc, n, status,
                                                                         s.tileCounts);
  SVCUDACHECK(detail::launched());
  size_t scanBytes = s.scanBytes;
  SVCUDACHECK(cub::DeviceScan::ExclusiveSum(s.scanTemp, scanBytes, s.tileCounts, s.tilePrefix,
                                            tiles, stream));
  tileScatterKernel<<<static_cast<unsigned>(tiles), kThreads, 0, stream>>>(acc, n, k, status,
                                                                           s.tilePrefix, sel);
  return detail::launched();
}

}  // namespace signvote::kernels
