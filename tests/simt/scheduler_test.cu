// The SIMT emulator's own promises (simt.h), which every simt.* suite relies on: threads run in
// orders drawn afresh at each launch and after each barrier, blocks in a drawn order, the
// built-ins name each thread of a 3-D launch once, each block finds its shared memory filled
// with junk, cub::BlockReduce leaves junk of its own in each thread it gives no result, a
// barrier some thread cannot reach aborts naming the kernel, and so does a launch given a
// pointer the device cannot reach; a launch past the kernel's bounds fails. A scheduler that
// ran threads in index order would still pass every kernel suite while checking nothing of the
// kernels' order-independence; these tests fail then.
#include <cub/block/block_reduce.cuh>
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include "gpu.h"

#include <algorithm>
#include <numeric>
#include <set>
#include <vector>

namespace {

// Each thread takes the next slot of a phase and writes its index there, so that `order`
// holds the threads in the order they ran, per phase; a barrier separates the phases.
__global__ void logOrder(unsigned* counters, unsigned* order, int phases) {
  for (int p = 0; p < phases; ++p) {
    const unsigned slot = atomicAdd(&counters[p], 1u);
    order[p * blockDim.x + slot] = threadIdx.x;
    if (p + 1 < phases) __syncthreads();
  }
}

// Thread 0 of each block logs the block's index in the order the blocks ran.
__global__ void logBlocks(unsigned* counter, unsigned* order) {
  if (threadIdx.x == 0) order[atomicAdd(counter, 1u)] = blockIdx.x;
}

// Each thread of a 3-D launch writes its coordinates into the cell of its linear index.
__global__ void writeCoordinates(unsigned* cells) {
  const unsigned tx = threadIdx.x, ty = threadIdx.y, tz = threadIdx.z;
  const unsigned bx = blockIdx.x, by = blockIdx.y, bz = blockIdx.z;
  const unsigned block = bx + gridDim.x * (by + gridDim.y * bz);
  const unsigned thread = tx + blockDim.x * (ty + blockDim.y * tz);
  const unsigned i = block * blockDim.x * blockDim.y * blockDim.z + thread;
  cells[i * 2] = tx | ty << 8 | tz << 16;
  cells[i * 2 + 1] = bx | by << 8 | bz << 16;
}

// Each thread of a 3-D block gives its linear index to a warp shuffle: a warp is the threads of
// 32 consecutive linear indices (x fastest, then y, then z), as on the device.
__global__ void shuffleLinearIndex(unsigned* out) {
  const unsigned linear = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[linear] = __shfl_down_sync(0xFFFFFFFFu, linear, 1);
}

// Thread 0 of each block reads the block's shared word before writing it.
__global__ void readSharedFirst(unsigned* out) {
  __shared__ unsigned words[2];
  if (threadIdx.x == 0) {
    out[2 * blockIdx.x] = words[0];
    out[2 * blockIdx.x + 1] = words[1];
    words[0] = words[1] = blockIdx.x;
  }
}

// Each thread writes what cub::BlockReduce gave it for the sum of the linear indices. Written
// with threadIdx on both sides, the form in which the sanitizer build once read the current
// thread through stale flags (runningBuiltins, simt.h).
__global__ void blockReduceResults(unsigned long long* out) {
  using Reduce = cub::BlockReduce<unsigned long long, 128>;
  __shared__ typename Reduce::TempStorage storage;
  out[threadIdx.x] = Reduce(storage).Sum(threadIdx.x);
}

__global__ void exitBeforeBarrier() {
  if (threadIdx.x < 16) return;
  __syncthreads();
}

__global__ void ballotAfterExit(unsigned* out) {
  if (threadIdx.x % 2 == 0) return;
  out[threadIdx.x] = __ballot_sync(0xFFFFFFFFu, 1);
}

// Each of the first n threads writes its index at p.
__global__ void writeIndex(unsigned* p, unsigned n) {
  if (threadIdx.x < n) p[threadIdx.x] = threadIdx.x;
}

// Compiled for at most 64 threads a block.
__global__ void __launch_bounds__(64) bounded(unsigned* out) { out[threadIdx.x] = threadIdx.x; }

using Words = svtest::DeviceArray<unsigned>;

// Zeroes the slot counters.
void zero(Words& w) { w.upload(std::vector<unsigned>(w.size(), 0)); }

std::vector<unsigned> identity(size_t n) {
  std::vector<unsigned> v(n);
  std::iota(v.begin(), v.end(), 0u);
  return v;
}

bool isPermutation(const std::vector<unsigned>& v) {
  const std::vector<unsigned> all = identity(v.size());
  return std::is_permutation(v.begin(), v.end(), all.begin());
}

// Over 800 launches of 8 threads, each thread runs first about 100 times (binomial, standard
// deviation 9.4): outside [40, 160] is more than 6 deviations, which a uniform draw misses with
// a chance of about 1e-9, and which a scheduler favouring some thread fails.
TEST(Scheduler, EveryThreadRunsFirstAboutEquallyOften) {
  constexpr unsigned kThreads = 8, kLaunches = 800;
  Words counters(kLaunches), order(kLaunches * kThreads);
  zero(counters);
  for (unsigned l = 0; l < kLaunches; ++l)
    logOrder<<<1, kThreads>>>(counters.get() + l, order.get() + l * kThreads, 1);
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> all = order.download();
  std::vector<unsigned> first(kThreads, 0);
  for (unsigned l = 0; l < kLaunches; ++l) {
    const std::vector<unsigned> one(all.begin() + l * kThreads, all.begin() + (l + 1) * kThreads);
    ASSERT_TRUE(isPermutation(one)) << "launch " << l;
    ++first[one[0]];
  }
  for (unsigned t = 0; t < kThreads; ++t) {
    EXPECT_GE(first[t], 40u) << "thread " << t;
    EXPECT_LE(first[t], 160u) << "thread " << t;
  }
}

// 256 threads (8 warps) and 3 barriers: each phase's order is a permutation, none is the index
// order, and no two phases share one (a chance of 1/256! each for a uniform draw).
TEST(Scheduler, OrdersAreDrawnAfreshAfterEachBarrier) {
  constexpr unsigned kThreads = 256;
  constexpr int kPhases = 4;
  Words counters(kPhases), order(kPhases * kThreads);
  zero(counters);
  logOrder<<<1, kThreads>>>(counters.get(), order.get(), kPhases);
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> all = order.download();
  std::set<std::vector<unsigned>> seen;
  for (int p = 0; p < kPhases; ++p) {
    const std::vector<unsigned> one(all.begin() + p * kThreads,
                                    all.begin() + (p + 1) * kThreads);
    ASSERT_TRUE(isPermutation(one)) << "phase " << p;
    EXPECT_NE(one, identity(kThreads)) << "phase " << p;
    EXPECT_TRUE(seen.insert(one).second) << "phase " << p << " repeats an earlier order";
  }
}

// 64 blocks: they run one after another in a drawn order (a permutation, not the index order),
// and two launches draw different orders.
TEST(Scheduler, BlocksRunInADrawnOrder) {
  constexpr unsigned kBlocks = 64;
  Words counters(2), order(2 * kBlocks);
  zero(counters);
  for (unsigned l = 0; l < 2; ++l)
    logBlocks<<<kBlocks, 32>>>(counters.get() + l, order.get() + l * kBlocks);
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> all = order.download();
  const std::vector<unsigned> a(all.begin(), all.begin() + kBlocks), b(all.begin() + kBlocks,
                                                                         all.end());
  ASSERT_TRUE(isPermutation(a));
  ASSERT_TRUE(isPermutation(b));
  EXPECT_NE(a, identity(kBlocks));
  EXPECT_NE(a, b);
}

// A 3-D grid of 3-D blocks: every thread of every block runs once, with its own coordinates
// (the blocks reuse the emulator's threads, whose blockIdx must follow).
TEST(Scheduler, BuiltinsNameEachThreadOfA3DLaunchOnce) {
  const dim3 grid(3, 2, 5), block(4, 3, 2);
  const unsigned threads = 3 * 2 * 5 * 4 * 3 * 2;
  Words cells(2 * threads);  // 0xA5 bytes where no thread wrote
  writeCoordinates<<<grid, block>>>(cells.get());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> got = cells.download();
  unsigned i = 0;
  for (unsigned bz = 0; bz < grid.z; ++bz)
    for (unsigned by = 0; by < grid.y; ++by)
      for (unsigned bx = 0; bx < grid.x; ++bx)
        for (unsigned tz = 0; tz < block.z; ++tz)
          for (unsigned ty = 0; ty < block.y; ++ty)
            for (unsigned tx = 0; tx < block.x; ++tx, ++i) {
              ASSERT_EQ(got[i * 2], tx | ty << 8 | tz << 16) << "cell " << i;
              ASSERT_EQ(got[i * 2 + 1], bx | by << 8 | bz << 16) << "cell " << i;
            }
}

// Warps of a 3-D block: lane l + 1 of a warp holds the next linear index; the last lane keeps
// its own.
TEST(Scheduler, WarpsAreConsecutiveLinearIndices) {
  const dim3 block(8, 4, 3);
  const unsigned threads = 8 * 4 * 3;
  Words out(threads);
  shuffleLinearIndex<<<1, block>>>(out.get());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> got = out.download();
  for (unsigned l = 0; l < threads; ++l)
    EXPECT_EQ(got[l], l % 32 == 31 ? l : l + 1) << "linear index " << l;
}

// Every block, not only the first, finds its shared memory filled as new memory is
// (svemu::fillUndefined: 32-bit words alternately all ones and 0xFFFFFFFE), never the value the
// block before it left.
TEST(Scheduler, EachBlockFindsFreshSharedMemory) {
  constexpr unsigned kBlocks = 16;
  Words out(2 * kBlocks);
  readSharedFirst<<<kBlocks, 32>>>(out.get());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> got = out.download();
  for (unsigned b = 0; b < kBlocks; ++b) {
    EXPECT_EQ(got[2 * b], 0xFFFFFFFFu) << "block " << b;
    EXPECT_EQ(got[2 * b + 1], 0xFFFFFFFEu) << "block " << b;
  }
}

// cub::BlockReduce gives thread 0 the result and every other thread a value of its own, so
// that undefined results combined by a wrong kernel (XORed by every thread, say) do not cancel.
TEST(Scheduler, BlockReduceLeavesOtherThreadsDistinctUndefinedValues) {
  svtest::DeviceArray<unsigned long long> out(128);
  blockReduceResults<<<1, 128>>>(out.get());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned long long> got = out.download();
  EXPECT_EQ(got[0], 127u * 128u / 2);
  const std::set<unsigned long long> others(got.begin() + 1, got.end());
  EXPECT_EQ(others.size(), 127u);
  EXPECT_EQ(others.count(got[0]), 0u);
}

TEST(SchedulerDeathTest, BarrierAfterSomeThreadsExitedAbortsNamingTheKernel) {
  EXPECT_DEATH(
      {
        exitBeforeBarrier<<<2, 64>>>();
        cudaDeviceSynchronize();
      },
      "kernel exitBeforeBarrier, block .*__syncthreads reached by 48 threads after 16");
}

TEST(SchedulerDeathTest, WarpOperationOverExitedLanesAbortsNamingTheKernel) {
  EXPECT_DEATH(
      {
        Words out(32);
        ballotAfterExit<<<1, 32>>>(out.get());
        cudaDeviceSynchronize();
      },
      "kernel ballotAfterExit, block .*a warp operation's mask 4294967295 is not the warp's "
      "live lanes 2863311530");
}

// Kernels reach device memory and pinned host memory; a pointer one past the end of an
// allocation is accepted too (a kernel given no elements there reads nothing).
TEST(Scheduler, KernelsTakeDeviceAndPinnedPointers) {
  Words out(32);
  writeIndex<<<1, 32>>>(out.get(), 32);
  unsigned* pinned = nullptr;
  CUDA_OK(cudaHostAlloc(reinterpret_cast<void**>(&pinned), 32 * sizeof(unsigned), 0));
  writeIndex<<<1, 32>>>(pinned, 32);
  unsigned* device = nullptr;
  CUDA_OK(cudaMalloc(reinterpret_cast<void**>(&device), 32 * sizeof(unsigned)));
  writeIndex<<<1, 32>>>(device + 32, 0);
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(out.download(), identity(32));
  EXPECT_EQ(std::vector<unsigned>(pinned, pinned + 32), identity(32));
  CUDA_OK(cudaFree(device));
  CUDA_OK(cudaFreeHost(pinned));
}

// A launch of more threads than the kernel's __launch_bounds__ fails, as on the device, where
// nvcc fitted the kernel's registers to the bound; up to it, the launch runs.
TEST(Scheduler, LaunchBeyondTheKernelsBoundsFails) {
  Words out(128);
  bounded<<<1, 128>>>(out.get());
  EXPECT_EQ(cudaGetLastError(), cudaErrorLaunchOutOfResources);
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(out.download(), std::vector<unsigned>(128, 0xA5A5A5A5u));  // nothing ran
  bounded<<<1, 64>>>(out.get());
  CUDA_OK(cudaGetLastError());
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<unsigned> got = out.download();
  EXPECT_EQ(std::vector<unsigned>(got.begin(), got.begin() + 64), identity(64));
}

// The emulated device under the emulator refuses to set pageable host memory, as CUDA does,
// and sets device and pinned memory.
TEST(EmulatedDevice, MemsetRefusesPageableHostMemory) {
  std::vector<unsigned> host(4, 7u);
  EXPECT_EQ(cudaMemsetAsync(host.data(), 0, 16, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemset(host.data(), 0, 16), cudaErrorInvalidValue);
  EXPECT_EQ(cudaGetLastError(), cudaErrorInvalidValue);
  EXPECT_EQ(host, std::vector<unsigned>(4, 7u));
  Words device(4);
  unsigned* pinned = nullptr;
  CUDA_OK(cudaHostAlloc(reinterpret_cast<void**>(&pinned), 16, 0));
  CUDA_OK(cudaMemsetAsync(device.get(), 0, 16, nullptr));
  CUDA_OK(cudaMemset(pinned, 0, 16));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(device.download(), std::vector<unsigned>(4, 0u));
  EXPECT_EQ(std::vector<unsigned>(pinned, pinned + 4), std::vector<unsigned>(4, 0u));
  CUDA_OK(cudaFreeHost(pinned));
}

// On a GPU a kernel that uses a pageable host pointer faults; here it would just work, so the
// launch aborts.
TEST(SchedulerDeathTest, PageableHostPointerAbortsNamingTheKernel) {
  EXPECT_DEATH(
      {
        std::vector<unsigned> host(32);
        writeIndex<<<1, 32>>>(host.data(), 32);
        cudaDeviceSynchronize();
      },
      "launch of writeIndex: argument 1 is not device or pinned memory");
}

}  // namespace
