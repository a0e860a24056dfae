// The SIMT emulator: kernels/*.cu compiled as host C++ (cu2cc.py turns each launch into a
// Launch, below), so that the kernels themselves, not twins of them, run on the emulated
// device of tests/emu (emu.h) in CI.
//
// A launch is work on its stream (svemu::submit). Blocks run one after another, in an order
// drawn per launch; the threads of a block run on fibers (Boost.Context), in an order drawn
// afresh each time the block's barriers release them, until they reach a barrier: __syncthreads
// waits for the whole block, a warp operation (__ballot_sync, __shfl_down_sync,
// __reduce_add_sync) for its warp, whose mask must name exactly the warp's lanes that have not
// exited. A barrier that not every thread it names can reach (one some threads exited before, or
// two that different threads wait in) is reported, with the kernel's name, and the process
// aborts, as a kernel fault would end it.
//
// What it checks: the kernels' indexing, their use of shared memory and barriers under varying
// thread orders, that launches stay within their bounds and give them only memory the device
// reaches, the CUB and Thrust contracts they rely on (include/: host twins of the CUB and Thrust
// parts kernels/ uses, with CUB's barrier counts and its results left undefined where CUB leaves
// them so), and their results bit for bit against the host reference through the kernel and
// collective suites; in a ThreadSanitizer build, data races between its threads (the race check,
// simt.cc). What it cannot: real concurrency (threads between barriers, blocks, streams, run at
// once), the device's memory model, nvcc's code (its float rounding is pinned instead:
// SIGNVOTE_CUDA_FP in CMakeLists.txt, no contraction) and speed.
#pragma once

#include <cuda_runtime.h>
#include <math.h>  // the global fabsf, fmaf, signbit of device code

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "emu.h"

// CUDA's headers leave these to the device compiler. A __shared__ variable is a static of the
// OS thread that runs the grid only to name it (blockShared, below).
#undef __shared__
#define __shared__ static thread_local
#ifndef __launch_bounds__
#define __launch_bounds__(...)
#endif

namespace svsimt {

struct Builtins {  // threadIdx, blockIdx, blockDim, gridDim
  uint3 thread, block;
  dim3 blockDims, gridDims;
};
// The CUDA thread that runs on this OS thread now (inline: kernels read it at every threadIdx).
// An inline variable, defined with its constant initializer in every file that reads it, not an
// extern one: GCC reaches an extern thread_local through its initialisation wrapper and, at -O1
// with UBSan (the sanitizer build), tests the wrapper's result for null with the flags of an
// `add var@gottpoff(%rip), %reg` that the linker relaxes into a `lea`, which sets none, so the
// stale flags of the wrapper's own test reported a null current thread
// (Scheduler.BlockReduceLeavesOtherThreadsDistinctUndefinedValues).
inline thread_local const Builtins* runningBuiltins = nullptr;
inline const Builtins& current() { return *runningBuiltins; }

// Runs body(), the kernel call, once per thread of the grid (see above). `name` names the
// kernel in reports.
void runGrid(const char* name, dim3 grid, dim3 block, void (*body)(void*), void* arg);

// Reports a kernel's misuse of the device (or of CUB), or a launch's, and aborts, as a kernel
// fault would.
[[noreturn]] void misuse(const char* what);
// The storage of the running block for a __shared__ variable, which cu2cc.py declares as
// `key` and refers to through this: the first thread of the block to ask gets it filled as
// new device memory is (svemu::fillUndefined: NaN as float), so that a kernel that reads shared
// memory before writing it does not find the last block's values, or zeros. It is freed when
// the block ends.
void* blockStorage(const void* key, size_t bytes, size_t align);
template <class T>
T& blockShared(T& key) {
  return *static_cast<T*>(blockStorage(&key, sizeof(T), alignof(T)));
}
// __syncthreads.
void syncBlock();
// A warp operation: each lane of `mask` gives `value`; *all receives the values of lanes
// 0..31 (0 for lanes outside the mask). Returns the caller's lane.
unsigned warpExchange(unsigned mask, uint64_t value, uint64_t (&all)[32]);

template <class T>
uint64_t bitsOf(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "a register of 8 bytes");
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof v);
  return b;
}
template <class T>
T fromBits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof v);
  return v;
}

// k<<<grid, block, shared, stream>>>(args...) is Launch(grid, block, shared, stream)("k",
// [](auto... a) { k(a...); }, args...): the arguments are copied at the launch, as CUDA does,
// and a template kernel's parameters deduced from them, as nvcc does.
template <class Body, class... A>
struct Kernel {
  const char* name;
  Body body;
  std::tuple<A...> args;
};

class Launch {
 public:
  Launch(dim3 grid, dim3 block, size_t shared = 0, cudaStream_t stream = 0)
      : grid_(grid), block_(block), shared_(shared), stream_(stream) {}
  // The kernel's __launch_bounds__ (cu2cc.py adds it): nvcc fits its registers to that many
  // threads, and a launch of more fails (CUDA's error for a block past the kernel's
  // maxThreadsPerBlock: too many resources requested).
  Launch& bound(unsigned maxThreads) {
    bound_ = maxThreads;
    return *this;
  }

  template <class Body, class... A>
  void operator()(const char* name, Body body, A&&... a) const {
    const uint64_t threads = uint64_t{block_.x} * block_.y * block_.z;
    if (threads == 0 || threads > 1024 || grid_.x == 0 || grid_.y == 0 || grid_.z == 0 ||
        grid_.y > 65535 || grid_.z > 65535 || shared_ > 0)  // no kernel takes dynamic shared
      return svemu::launchFailed(cudaErrorInvalidConfiguration);
    if (threads > bound_) return svemu::launchFailed(cudaErrorLaunchOutOfResources);
    if (!svemu::kernelImage()) return svemu::launchFailed(cudaErrorNoKernelImageForDevice);
    size_t i = 0;
    (checkArgument(name, ++i, a), ...);
    using K = Kernel<Body, std::decay_t<A>...>;
    auto k = std::make_shared<K>(K{name, body, {std::forward<A>(a)...}});
    const dim3 g = grid_, b = block_;
    // A graph that captured the launch replays it, so the arguments live as long as the work.
    svemu::submit(stream_, [k, g, b] { runGrid(k->name, g, b, &call<K>, k.get()); });
  }

 private:
  // A pointer argument names memory the device reaches (or is null): a pageable host pointer
  // would fault on a GPU when the kernel uses it, and here it would just work. Pointers inside
  // struct arguments are not seen.
  template <class T>
  static void checkArgument(const char* name, size_t i, const T& a) {
    if constexpr (std::is_pointer_v<std::decay_t<T>>) {
      if (a != nullptr && !svemu::deviceReachable(a))
        misuse((std::string("launch of ") + name + ": argument " + std::to_string(i) +
                " is not device or pinned memory")
                   .c_str());
    }
  }
  template <class K>
  static void call(void* p) {
    auto* k = static_cast<K*>(p);
    std::apply(k->body, k->args);  // each thread gets its own copy
  }
  dim3 grid_, block_;
  size_t shared_;
  cudaStream_t stream_;
  unsigned bound_ = 1024;
};

}  // namespace svsimt

#define threadIdx (::svsimt::current().thread)
#define blockIdx (::svsimt::current().block)
#define blockDim (::svsimt::current().blockDims)
#define gridDim (::svsimt::current().gridDims)

inline void __syncthreads() { ::svsimt::syncBlock(); }

inline void __syncwarp(unsigned mask = ~0u) {
  uint64_t all[32];
  ::svsimt::warpExchange(mask, 0, all);
}

inline unsigned __ballot_sync(unsigned mask, int predicate) {
  uint64_t all[32];
  ::svsimt::warpExchange(mask, predicate != 0, all);
  unsigned r = 0;
  for (unsigned l = 0; l < 32; ++l) r |= (all[l] != 0 ? 1u : 0u) << l;
  return r;
}

template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  uint64_t all[32];
  const unsigned lane = ::svsimt::warpExchange(mask, ::svsimt::bitsOf(value), all);
  const unsigned w = static_cast<unsigned>(width);
  if (lane % w + delta >= w) return value;  // past the segment: the lane keeps its own
  return ::svsimt::fromBits<T>(all[lane + delta]);
}

inline unsigned __reduce_add_sync(unsigned mask, unsigned value) {
  uint64_t all[32];
  ::svsimt::warpExchange(mask, value, all);
  unsigned r = 0;
  for (unsigned l = 0; l < 32; ++l) r += static_cast<unsigned>(all[l]);
  return r;
}

// Atomics: the threads of the emulator never run at the same time, but ThreadSanitizer (the
// race check, simt.cc) must see them as atomic, relaxed as on the device.
namespace svsimt {
template <class T, class Op>
T atomicApply(T* p, T v, Op op) {
  static_assert(std::is_integral_v<T>, "the kernels' atomics are on integers");
#if defined(__SANITIZE_THREAD__)
  T old = __atomic_load_n(p, __ATOMIC_RELAXED);
  while (!__atomic_compare_exchange_n(p, &old, op(old, v), false, __ATOMIC_RELAXED,
                                      __ATOMIC_RELAXED)) {
  }
  return old;
#else
  return std::exchange(*p, op(*p, v));
#endif
}
}  // namespace svsimt
template <class T, class U>
T atomicAdd(T* p, U v) {
  return ::svsimt::atomicApply(p, static_cast<T>(v), std::plus<T>());
}
template <class T, class U>
T atomicOr(T* p, U v) {
  return ::svsimt::atomicApply(p, static_cast<T>(v), std::bit_or<T>());
}
template <class T, class U>
T atomicXor(T* p, U v) {
  return ::svsimt::atomicApply(p, static_cast<T>(v), std::bit_xor<T>());
}

// Rounded to nearest like the host's IEEE operations; the host build must not contract
// (CMake: -ffp-contract=off). A NaN result is the device's one NaN, 0x7FFFFFFF, whatever the
// operands: GPUs keep no NaN payload, while x86 returns a NaN operand's payload (quieted) or
// 0xFFC00000 for an invalid operation (inf - inf, 0 * inf). So a test that compares the
// kernels' bits with the host's where the arithmetic makes or passes on a NaN fails here as it
// would on a GPU. kernels/ does all its float arithmetic through these: compiled with nvcc's
// defaults, its PTX has no add, sub, mul or div without a rounding suffix.
namespace svsimt {
inline float deviceNaN(float r) { return r == r ? r : fromBits<float>(0x7FFFFFFFu); }
}  // namespace svsimt
inline float __fadd_rn(float a, float b) { return ::svsimt::deviceNaN(a + b); }
inline float __fsub_rn(float a, float b) { return ::svsimt::deviceNaN(a - b); }
inline float __fmul_rn(float a, float b) { return ::svsimt::deviceNaN(a * b); }
inline float __fdiv_rn(float a, float b) { return ::svsimt::deviceNaN(a / b); }
inline float __fmaf_rn(float a, float b, float c) {
  return ::svsimt::deviceNaN(std::fma(a, b, c));
}
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline float __ull2float_rn(unsigned long long x) { return static_cast<float>(x); }
inline unsigned __float_as_uint(float x) { return ::svsimt::bitsOf(x) & 0xFFFFFFFFu; }
inline float __uint_as_float(unsigned x) { return ::svsimt::fromBits<float>(x); }
