// The SIMT emulator's scheduler (simt.h): a grid's blocks one after another, a block's threads
// as fibers that run until they reach a barrier or exit.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include <boost/context/fiber.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(SVSIMT_RACE_CHECK)
#include <sanitizer/tsan_interface.h>
// ThreadSanitizer's dynamic annotations (its runtime defines them; no header declares them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
#endif

namespace svsimt {
namespace {

namespace bctx = boost::context;

// Fiber stacks, reused across blocks, each above a guard page so that an overflow faults
// instead of writing over its neighbour. One pool per OS thread (a fiber ends on the thread
// that made it, and every fiber of a grid ends before runGrid returns), so taking a stack
// needs no lock; a thread's stacks are unmapped when it exits. The tops of the stacks are
// staggered by a cache line each (64 colours): 68 KiB apart they would all fall in the same
// sets of the caches, and every switch between fibers touches a stack's top.
class StackPool {
 public:
  static constexpr size_t kSize = 64 * 1024;

  StackPool() = default;
  StackPool(const StackPool&) = delete;
  StackPool& operator=(const StackPool&) = delete;
  ~StackPool() {
    for (const bctx::stack_context& sc : free_)
      munmap(static_cast<char*>(sc.sp) - sc.size - page_, kSize + page_);
  }

  bctx::stack_context take() {
#if defined(SVSIMT_RACE_CHECK)
    // The race check: new memory each time, which ThreadSanitizer takes as never used.
    bctx::stack_context sc;
    sc.size = kSize;
    void* fresh = std::malloc(kSize);
    if (fresh == nullptr) {
      std::fprintf(stderr, "SIMT emulator: no memory for a fiber stack\n");
      std::abort();
    }
    sc.sp = static_cast<char*>(fresh) + kSize;
    return sc;
#else
    if (free_.empty()) {
      void* base = mmap(nullptr, kSize + page_, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED || mprotect(base, page_, PROT_NONE) != 0) {
        std::fprintf(stderr, "SIMT emulator: no memory for a fiber stack\n");
        std::abort();
      }
      bctx::stack_context sc;
      sc.size = kSize - made_++ % 64 * 64;
      sc.sp = static_cast<char*>(base) + page_ + sc.size;  // stacks grow down
      free_.push_back(sc);
    }
    const bctx::stack_context sc = free_.back();
    free_.pop_back();
    return sc;
#endif
  }
  void give(const bctx::stack_context& sc) {
#if defined(SVSIMT_RACE_CHECK)
    std::free(static_cast<char*>(sc.sp) - kSize);
#else
    free_.push_back(sc);
#endif
  }

 private:
  const size_t page_ = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  std::vector<bctx::stack_context> free_;
  size_t made_ = 0;
};

StackPool& pool() {
  thread_local StackPool p;
  return p;
}

// A worker's stack is taken from the pool before its fiber is made (its bounds are needed for
// ASan); Boost.Context gives it back through this when the fiber ends.
struct PooledStack {
  void deallocate(bctx::stack_context& sc) noexcept { pool().give(sc); }
};

// AddressSanitizer must be told of every switch between stacks (a no-op without it): before
// one, the stack it goes to (save is null when the fiber that leaves ends); after it, in the
// fiber that resumed.
struct Span {
  const void* bottom = nullptr;
  size_t size = 0;
};
thread_local Span schedulerStack;  // learned by the first fiber it starts

void switching([[maybe_unused]] void** save, [[maybe_unused]] const Span& to) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_start_switch_fiber(save, to.bottom, to.size);
#endif
}
void switched([[maybe_unused]] void* save, [[maybe_unused]] Span* from) {
#if defined(__SANITIZE_ADDRESS__)
  __sanitizer_finish_switch_fiber(save, from ? &from->bottom : nullptr,
                                  from ? &from->size : nullptr);
#endif
}

enum class State : uint8_t { kReady, kBlockWait, kWarpWait, kDone };

struct Thread {
  Builtins b{};
  State state = State::kReady;
  bctx::fiber fiber;  // the worker that runs the thread, while it is suspended
  Span stack;         // the worker's
  bctx::fiber back;   // the scheduler, while the thread runs
  uint64_t value = 0;
  unsigned mask = 0;
  void* race = nullptr;  // its ThreadSanitizer fiber (race check)
  uint32_t blockWaits = 0, warpWaits = 0;
};

// One grid's blocks, run one after another on the same threads: what does not change between
// blocks (threadIdx, the dimensions) is set once per grid.
struct Block {
  Block(const char* name, dim3 grid, dim3 dims) : kernel(name) {
    const size_t n = size_t{dims.x} * dims.y * dims.z;
    threads.resize(n);
    snapshot.assign((n + 31) / 32 * 32, 0);
    order.resize(n);
    std::iota(order.begin(), order.end(), size_t{0});
    size_t i = 0;
    for (unsigned z = 0; z < dims.z; ++z)
      for (unsigned y = 0; y < dims.y; ++y)
        for (unsigned x = 0; x < dims.x; ++x) {
          Builtins& b = threads[i++].b;
          b.thread = uint3{x, y, z};
          b.blockDims = dims;
          b.gridDims = grid;
        }
  }
  const char* kernel;
  std::vector<Thread> threads;
  std::vector<size_t> order;  // a permutation of the threads, drawn afresh as they run
  std::vector<uint64_t> snapshot;  // per warp, 32 values: the last exchange each warp finished
  std::vector<std::pair<const void*, void*>> shared;  // __shared__ key -> this block's storage
  // The race check's synchronisation objects, new for each block: two for __syncthreads and
  // two per warp, each used by every other barrier, so that a thread that has already reached
  // the next barrier releases into the other one.
  std::unique_ptr<char[]> sync;
};

thread_local Thread* running = nullptr;
// Every change of the running thread goes through this, which keeps current() in step.
void setRunning(Thread* t) {
  running = t;
  runningBuiltins = t ? &t->b : nullptr;
}
thread_local Block* block = nullptr;

// The race check (SVSIMT_RACE_CHECK, in ThreadSanitizer builds, where the kernels are
// instrumented and this file is not): each CUDA thread of a block is a ThreadSanitizer fiber of
// its own, switched to without synchronisation, so that accesses of different threads that no
// barrier orders are reported as data races. Barriers release into and acquire from
// synchronisation objects, and atomics are atomic (simt.h). The emulator's own accesses and
// calls are not seen (its calls of the C library are ignored), so each fiber's calls in kernel
// code nest as on a thread. Threads get stacks of their own and blocks shared memory and
// synchronisation objects of their own, allocated anew (which clears ThreadSanitizer's history
// of the memory), so that reused memory is no false race. A thread starts after what its launch
// saw (handoff), and what a grid wrote is seen after it (gridEnd).
// A fiber carries what it did into the barriers it reaches later, so a fiber that ran in one
// block of a grid and then in another would order the first block before the second's
// barriers. ThreadSanitizer allows 8128 live threads and takes milliseconds to make one, so
// kGridFibers fibers make S = kGridFibers / (threads per block) sets, one block's worth each,
// and the blocks of a grid, in the (drawn) order they run, take the sets in turn. A grid of up
// to S blocks thus gets a fiber per thread, and its races between blocks are all found. In a
// larger grid, blocks on different sets are ordered by nothing, and a race between two blocks
// that share a set is found only for accesses before the later block's first barrier (in
// kernels without barriers, always). Which blocks share a set is drawn with the order, so a
// race between two given blocks is missed with a chance of about 1/S, one that many blocks
// take part in far more rarely. Races within a block are always found.
// Without the race check these are no-ops.
thread_local void* schedulerFiber = nullptr;  // the race check's fiber of the scheduler
thread_local char handoff, gridEnd;
#if defined(SVSIMT_RACE_CHECK)
constexpr bool kRaceCheck = true;
void ignoreBegin() {
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
}
void ignoreEnd() {
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
}
void raceRelease(void* p) { __tsan_release(p); }
void raceAcquire(void* p) { __tsan_acquire(p); }
void raceSwitch(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
void* raceCurrentFiber() { return __tsan_get_current_fiber(); }
// The pool of ThreadSanitizer fibers for the threads of grids, made as needed once per OS
// thread (up to kGridFibers, below ThreadSanitizer's limit of 8128 threads).
constexpr uint64_t kGridFibers = 7000;
void* raceFiber(size_t i) {
  thread_local std::vector<void*> fibers;
  while (fibers.size() <= i) fibers.push_back(__tsan_create_fiber(0));
  return fibers[i];
}
#else
constexpr bool kRaceCheck = false;
constexpr uint64_t kGridFibers = 0;
void ignoreBegin() {}
void ignoreEnd() {}
void raceRelease(void*) {}
void raceAcquire(void*) {}
void raceSwitch(void*) {}
void* raceCurrentFiber() { return nullptr; }
void* raceFiber(size_t) { return nullptr; }
#endif

[[noreturn]] void fault(const std::string& what) {
  if (block == nullptr)  // at a launch: no kernel runs yet
    std::fprintf(stderr, "SIMT emulator: %s\n", what.c_str());
  else
    std::fprintf(stderr, "SIMT emulator: kernel %s, block (%u,%u,%u): %s\n", block->kernel,
                 running ? running->b.block.x : 0, running ? running->b.block.y : 0,
                 running ? running->b.block.z : 0, what.c_str());
  std::fflush(stderr);
  std::abort();
}

// The orders of blocks and threads: SplitMix64 (Steele et al.), which draws them at a fraction
// of mt19937_64's cost (the shuffles were a tenth of the emulator's time), and a Fisher-Yates
// shuffle whose index is the high half of a 64 x 64-bit product (Lemire), with a bias below
// 2^-32 that no order check can tell. SVSIMT_SEED seeds it (default 1; "random" draws a seed and
// prints it, so that a failing order can be replayed).
class Orders {
 public:
  explicit Orders(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = state_ += 0x9e3779b97f4a7c15u;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
  }
  template <class T>
  void shuffle(std::vector<T>& v) {
    for (size_t i = v.size(); i > 1; --i) {
      const auto j = static_cast<size_t>((static_cast<unsigned __int128>(next()) * i) >> 64);
      std::swap(v[i - 1], v[j]);
    }
  }

 private:
  uint64_t state_;
};

Orders& orders() {
  thread_local Orders r = [] {
    const char* env = std::getenv("SVSIMT_SEED");
    uint64_t seed = env && *env ? std::strtoull(env, nullptr, 10) : 1;
    if (env && std::string(env) == "random") {
      seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
      std::fprintf(stderr, "SIMT emulator: SVSIMT_SEED=%llu\n",
                   static_cast<unsigned long long>(seed));
    }
    return Orders(seed);
  }();
  return r;
}

// Parks the running thread until the scheduler releases the barrier it waits at: `sync`, the
// barrier's synchronisation object, orders what the threads did before it before what they
// do after it (race check).
void suspend(State s, char* sync) {
  raceRelease(sync);
  Thread* t = running;
  t->state = s;
  void* save = nullptr;
  switching(&save, schedulerStack);
  raceSwitch(schedulerFiber);
  t->back = std::move(t->back).resume();
  switched(save, nullptr);
  setRunning(t);
  raceAcquire(sync);
}

// Releases the warps whose every live lane waits in a warp operation with the mask of the live
// lanes; true when one was released.
bool releaseWarps(Block& blk) {
  bool released = false;
  const size_t n = blk.threads.size();
  for (size_t w = 0; w * 32 < n; ++w) {
    const size_t first = w * 32, end = std::min(n, first + 32);
    unsigned live = 0, waiting = 0;
    bool agree = true;
    unsigned mask = 0;
    for (size_t i = first; i < end; ++i) {
      const Thread& t = blk.threads[i];
      if (t.state == State::kDone) continue;
      live |= 1u << (i - first);
      if (t.state != State::kWarpWait) continue;
      if (waiting != 0 && t.mask != mask) agree = false;
      mask = t.mask;
      waiting |= 1u << (i - first);
    }
    if (waiting == 0 || waiting != live) continue;
    if (!agree || mask != live)
      fault("a warp operation's mask " + std::to_string(mask) +
            " is not the warp's live lanes " + std::to_string(live) + " (warp " +
            std::to_string(w) + ")");
    for (size_t i = first; i < end; ++i) {
      Thread& t = blk.threads[i];
      blk.snapshot[w * 32 + (i - first)] = t.state == State::kWarpWait ? t.value : 0;
      if (t.state == State::kWarpWait) t.state = State::kReady;
    }
    released = true;
  }
  return released;
}

// Resumes f, a fiber that runs CUDA threads; when it suspends in one (running), that thread
// keeps it.
void resume(bctx::fiber&& f, const Span& stack, void* race) {
  void* save = nullptr;
  switching(&save, stack);
  raceSwitch(race);
  bctx::fiber r = std::move(f).resume();
  switched(save, nullptr);
  if (r) running->fiber = std::move(r);
  setRunning(nullptr);
}

// fibers: where the block's threads' ThreadSanitizer fibers start in the pool (race check).
void runBlock(Block& blk, uint3 blockIdx3, void (*body)(void*), void* arg, size_t fibers) {
  const size_t n = blk.threads.size();
  std::vector<size_t>& order = blk.order;
  if (kRaceCheck) {
    orders().shuffle(order);  // the threads' fibers in the pool
    blk.sync.reset(new char[2 + (n + 31) / 32 * 2]);
  }
  for (size_t i = 0; i < n; ++i) {
    Thread& t = blk.threads[i];  // its fibers were given back when it exited
    t.b.block = blockIdx3;
    t.state = State::kReady;
    t.blockWaits = t.warpWaits = 0;
    t.race = raceFiber(fibers + order[i]);
  }
  orders().shuffle(order);
  // A worker fiber starts the threads in `order` one after another on its stack; a thread
  // that suspends keeps the worker, and a new one starts the rest. So a thread needs a fiber of
  // its own only once it reaches a barrier, and a kernel without barriers runs on one stack.
  // The race check gives each thread a worker, on a new stack, of its own.
  size_t next = 0, done = 0;
  while (next < n) {
    bctx::stack_context sc = pool().take();
    const Span stack{static_cast<char*>(sc.sp) - sc.size, sc.size};
    auto worker = [&, stack](bctx::fiber&& back) {
      switched(nullptr, &schedulerStack);
      do {
        Thread& t = blk.threads[order[next++]];
        setRunning(&t);
        t.stack = stack;
        t.back = std::move(back);
        raceAcquire(&handoff);
        body(arg);
        raceRelease(&gridEnd);
        t.state = State::kDone;
        ++done;
        back = std::move(t.back);
      } while (!kRaceCheck && next < n);
      switching(nullptr, schedulerStack);
      raceSwitch(schedulerFiber);
      return std::move(back);
    };
    raceRelease(&handoff);
    resume(bctx::fiber(std::allocator_arg, bctx::preallocated(sc.sp, sc.size, sc), PooledStack{},
                       worker),
           stack, blk.threads[order[next]].race);
  }
  while (done < n) {
    if (!releaseWarps(blk)) {
      size_t atBarrier = 0;
      for (const Thread& t : blk.threads) atBarrier += t.state == State::kBlockWait;
      setRunning(&blk.threads[order[0]]);
      if (atBarrier != n - done)
        fault(std::to_string(atBarrier) + " threads wait in __syncthreads while " +
              std::to_string(n - done - atBarrier) + " wait in a warp operation");
      if (done != 0)
        fault("__syncthreads reached by " + std::to_string(atBarrier) + " threads after " +
              std::to_string(done) + " threads of the block exited");
      setRunning(nullptr);
      for (Thread& t : blk.threads) t.state = State::kReady;
    }
    orders().shuffle(order);
    for (size_t i : order) {
      Thread& t = blk.threads[i];
      if (t.state != State::kReady) continue;
      setRunning(&t);
      resume(std::move(t.fiber), t.stack, t.race);
    }
  }
  for (auto& [key, storage] : blk.shared) std::free(storage);
  blk.shared.clear();
  blk.sync.reset();
}

}  // namespace

void misuse(const char* what) { fault(what); }

void* blockStorage(const void* key, size_t bytes, size_t align) {
  void* p = nullptr;
  for (const auto& [k, storage] : block->shared)
    if (k == key) p = storage;
  if (p == nullptr) {
    const size_t a = std::max(align, alignof(std::max_align_t));
    ignoreBegin();  // neither counts as the thread's write (the race check)
    // Exactly the bytes declared (aligned_alloc would round them up to the alignment), so that
    // AddressSanitizer reports a write one element past a shared array.
    if (posix_memalign(&p, a, std::max<size_t>(bytes, 1)) != 0) p = nullptr;
    if (p != nullptr) svemu::fillUndefined(p, bytes);
    ignoreEnd();
    if (p == nullptr) fault("no host memory for shared memory");
    block->shared.emplace_back(key, p);
  }
  return p;
}

void syncBlock() {
  Thread* t = running;
  suspend(State::kBlockWait, kRaceCheck ? &block->sync[t->blockWaits++ % 2] : nullptr);
}

unsigned warpExchange(unsigned mask, uint64_t value, uint64_t (&all)[32]) {
  Thread* t = running;
  const size_t i = static_cast<size_t>(t - block->threads.data());
  t->value = value;
  t->mask = mask;
  suspend(State::kWarpWait, kRaceCheck ? &block->sync[2 + i / 32 * 2 + t->warpWaits++ % 2]
                                       : nullptr);
  ignoreBegin();
  std::copy_n(block->snapshot.begin() + static_cast<ptrdiff_t>(i / 32 * 32), 32, all);
  ignoreEnd();
  return static_cast<unsigned>(i % 32);
}

void runGrid(const char* name, dim3 grid, dim3 dims, void (*body)(void*), void* arg) {
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  std::vector<uint64_t> order(blocks);
  std::iota(order.begin(), order.end(), uint64_t{0});
  orders().shuffle(order);
  Block blk(name, grid, dims);
  Block* outer = block;
  block = &blk;
  schedulerFiber = raceCurrentFiber();
  ignoreBegin();  // the scheduler's calls of the C library (memset, memcpy) are intercepted
  // The race check's fibers: as many sets of one block's worth as kGridFibers holds, taken in
  // turn by the blocks in the order they run (see above).
  const uint64_t threads = blk.threads.size();
  const uint64_t sets = std::max<uint64_t>(1, kGridFibers / threads);
  uint64_t serial = 0;
  for (uint64_t b : order) {
    const uint3 idx{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                    static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
    runBlock(blk, idx, body, arg, serial++ % sets * threads);
  }
  ignoreEnd();
  raceAcquire(&gridEnd);
  block = outer;
}

}  // namespace svsimt
