// Host twins of the parts of CUB that kernels/ and the trainer's GPU model use, for the SIMT
// emulator (../simt.h). They keep CUB's contracts, not its code (BlockReduce also its order):
// the block collectives need the whole block (blockDim equal to BLOCK_THREADS) and take as many
// __syncthreads as CUB's default algorithms (BlockReduce: one, thread 0 alone gets the result,
// the others an undefined value; BlockScan: two; BlockLoad's warp transpose: one warp barrier,
// through its TempStorage), so a kernel that reuses a TempStorage without a barrier, or reads a
// result CUB leaves undefined, goes wrong here as it may on a GPU. The device-wide calls are
// stream work over the whole input.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "simt.h"

namespace cub {

namespace simt {
inline unsigned linearTid() {
  const auto& b = ::svsimt::current();
  return (b.thread.z * b.blockDims.y + b.thread.y) * b.blockDims.x + b.thread.x;
}
inline void needWholeBlock(unsigned threads, const char* what) {
  const auto& b = ::svsimt::current();
  if (b.blockDims.x * b.blockDims.y * b.blockDims.z != threads) ::svsimt::misuse(what);
}
// What CUB leaves undefined: a value that no correct result is likely to equal, another at
// each call (a splitmix64 sequence), so that undefined values combined by a wrong kernel do
// not cancel: one constant XORed by 255 threads of a block is the constant once, and by two
// blocks nothing; and one with equal halves vanishes in a checksum that folds 64 bits to 32.
template <class T>
T undefinedValue() {
  static std::atomic<uint64_t> calls{0};
  uint64_t z = (calls.fetch_add(1, std::memory_order_relaxed) + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return static_cast<T>(z ^ (z >> 31));
}
}  // namespace simt

// CUB's default algorithm (BLOCK_REDUCE_WARP_REDUCTIONS) in its order, which fixes the bits of
// a float reduction: each warp by shuffles down at offsets 1, 2, 4, 8, 16 (lane l combines its
// value with lane l + offset's, when that lane exists), then thread 0 folds the warps' results
// in warp order.
template <class T, int BLOCK_THREADS, int ALGORITHM = 0, int Y = 1, int Z = 1>
class BlockReduce {
 public:
  struct TempStorage {
    T slot[BLOCK_THREADS];
  };
  explicit BlockReduce(TempStorage& s) : s_(s) {}

  template <class Op>
  T Reduce(T x, Op op) {
    simt::needWholeBlock(BLOCK_THREADS, "cub::BlockReduce over a partial block");
    const unsigned t = simt::linearTid();
    s_.slot[t] = x;
    __syncthreads();
    if (t != 0) return simt::undefinedValue<T>();
    T r{};
    for (int w = 0; w < BLOCK_THREADS; w += 32) {
      T lane[32];
      const int last = std::min(32, BLOCK_THREADS - w) - 1;
      for (int l = 0; l <= last; ++l) lane[l] = s_.slot[w + l];
      for (int offset = 1; offset < 32; offset *= 2)
        for (int l = 0; l + offset <= last; ++l) lane[l] = op(lane[l], lane[l + offset]);
      r = w == 0 ? lane[0] : op(r, lane[0]);
    }
    return r;
  }
  T Sum(T x) {
    return Reduce(x, [](T a, T b) { return static_cast<T>(a + b); });
  }

 private:
  TempStorage& s_;
};

template <class T, int BLOCK_THREADS, int ALGORITHM = 0, int Y = 1, int Z = 1>
class BlockScan {
 public:
  struct TempStorage {
    T total[BLOCK_THREADS];
    T prefix[BLOCK_THREADS];
  };
  explicit BlockScan(TempStorage& s) : s_(s) {}

  void ExclusiveSum(T in, T& out) {
    T a[1] = {in}, b[1];
    ExclusiveSum(a, b);
    out = b[0];
  }
  template <int ITEMS>
  void ExclusiveSum(const T (&in)[ITEMS], T (&out)[ITEMS]) {
    simt::needWholeBlock(BLOCK_THREADS, "cub::BlockScan over a partial block");
    const unsigned t = simt::linearTid();
    T mine{};
    for (int j = 0; j < ITEMS; ++j) mine = static_cast<T>(mine + in[j]);
    s_.total[t] = mine;
    __syncthreads();
    if (t == 0) {
      T run{};
      for (int i = 0; i < BLOCK_THREADS; ++i) {
        s_.prefix[i] = run;
        run = static_cast<T>(run + s_.total[i]);
      }
    }
    __syncthreads();
    T run = s_.prefix[t];
    for (int j = 0; j < ITEMS; ++j) {
      const T x = in[j];  // in and out may be the same array
      out[j] = run;
      run = static_cast<T>(run + x);
    }
  }

 private:
  TempStorage& s_;
};

enum BlockLoadAlgorithm { BLOCK_LOAD_DIRECT, BLOCK_LOAD_WARP_TRANSPOSE };

template <class T, int BLOCK_THREADS, int ITEMS, BlockLoadAlgorithm ALGORITHM>
class BlockLoad {
  static_assert(ALGORITHM == BLOCK_LOAD_WARP_TRANSPOSE, "the twin models the warp transpose");
  static_assert(BLOCK_THREADS % 32 == 0, "CUB's warp transpose needs whole warps");

 public:
  struct TempStorage {
    T buf[BLOCK_THREADS * ITEMS];
  };
  explicit BlockLoad(TempStorage& s) : s_(s) {}

  // Blocked arrangement: items[j] = src[tid * ITEMS + j], or oob at and past `valid`. Each
  // warp loads its stretch striped into its part of the storage, then reads it blocked.
  void Load(const T* src, T (&items)[ITEMS], int valid, T oob) {
    simt::needWholeBlock(BLOCK_THREADS, "cub::BlockLoad over a partial block");
    const unsigned t = simt::linearTid(), lane = t % 32, warp = t / 32;
    T* mine = s_.buf + warp * 32 * ITEMS;
    for (int j = 0; j < ITEMS; ++j) {
      const int pos = static_cast<int>(warp * 32 * ITEMS) + j * 32 + static_cast<int>(lane);
      mine[j * 32 + lane] = pos < valid ? src[pos] : oob;
    }
    __syncwarp();
    for (int j = 0; j < ITEMS; ++j) items[j] = mine[lane * ITEMS + j];
  }

 private:
  TempStorage& s_;
};

namespace simt {
// The temporary storage the device-wide twins ask for; they check it is given.
constexpr size_t kDeviceTemp = 256;
inline bool sizeOnly(void* temp, size_t& bytes) {
  if (temp == nullptr) bytes = kDeviceTemp;
  return temp == nullptr;
}
}  // namespace simt

struct DeviceScan {
  template <class In, class Out, class Num>
  static cudaError_t ExclusiveSum(void* temp, size_t& bytes, In in, Out out, Num num,
                                  cudaStream_t stream = 0) {
    if (simt::sizeOnly(temp, bytes)) return cudaSuccess;
    if (bytes < simt::kDeviceTemp) return cudaErrorInvalidValue;
    ::svemu::submit(stream, [in, out, num] {
      using V = std::decay_t<decltype(in[0])>;
      V run{};
      for (Num i = 0; i < num; ++i) {
        const V x = in[i];
        out[i] = run;
        run = static_cast<V>(run + x);
      }
    });
    return cudaSuccess;
  }
};

struct DeviceSelect {
  // Stable: the selected items keep their order; *selected = their count.
  template <class In, class Out, class Selected, class Num, class Pred>
  static cudaError_t If(void* temp, size_t& bytes, In in, Out out, Selected selected, Num num,
                        Pred pred, cudaStream_t stream = 0) {
    if (simt::sizeOnly(temp, bytes)) return cudaSuccess;
    if (bytes < simt::kDeviceTemp) return cudaErrorInvalidValue;
    ::svemu::submit(stream, [in, out, selected, num, pred] {
      Num j = 0;
      for (Num i = 0; i < num; ++i) {
        const auto x = in[i];
        if (pred(x)) out[j++] = x;
      }
      *selected = j;
    });
    return cudaSuccess;
  }
};

}  // namespace cub
