// The SIMT emulator's scheduler (simt.h): a grid's blocks one after another, a block's threads
// as fibers that run until they reach a barrier or exit.
#include "simt.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <numeric>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/context/fiber.hpp>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#endif

namespace svsimt {
namespace {

namespace bctx = boost::context;

// Fiber stacks, reused across blocks, each above a guard page so that an overflow faults
// instead of writing over its neighbour.
class StackPool {
 public:
  static constexpr size_t kSize = 64 * 1024;

  bctx::stack_context take() {
    std::lock_guard<std::mutex> lock(mu_);
    if (free_.empty()) {
      const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
      void* base = mmap(nullptr, kSize + page, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (base == MAP_FAILED || mprotect(base, page, PROT_NONE) != 0) {
        std::fprintf(stderr, "SIMT emulator: no memory for a fiber stack\n");
        std::abort();
      }
      free_.push_back(static_cast<char*>(base) + page + kSize);  // stacks grow down
    }
    bctx::stack_context sc;
    sc.sp = free_.back();
    sc.size = kSize;
    free_.pop_back();
    return sc;
  }
  void give(const bctx::stack_context& sc) {
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(sc.sp);
  }

 private:
  std::mutex mu_;
  std::vector<void*> free_;
};

StackPool& pool() {
  static StackPool* p = new StackPool;  // fibers may outlive static destruction order
  return *p;
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
};

struct Block {
  const char* kernel = nullptr;
  std::vector<Thread> threads;
  std::vector<uint64_t> snapshot;  // per warp, 32 values: the last exchange each warp finished
};

thread_local Thread* running = nullptr;
thread_local Block* block = nullptr;
thread_local uint64_t blockSerial = 0;  // counts the blocks run on this OS thread
thread_local std::unordered_map<void*, uint64_t> sharedFilled;  // variable -> its block

[[noreturn]] void fault(const std::string& what) {
  std::fprintf(stderr, "SIMT emulator: kernel %s, block (%u,%u,%u): %s\n",
               block ? block->kernel : "?", running ? running->b.block.x : 0,
               running ? running->b.block.y : 0, running ? running->b.block.z : 0,
               what.c_str());
  std::fflush(stderr);
  std::abort();
}

// SVSIMT_SEED draws the orders of blocks and threads (default 1; "random" draws a seed and
// prints it, so that a failing order can be replayed).
std::mt19937_64& rng() {
  thread_local std::mt19937_64 r = [] {
    const char* env = std::getenv("SVSIMT_SEED");
    uint64_t seed = env && *env ? std::strtoull(env, nullptr, 10) : 1;
    if (env && std::string(env) == "random") {
      seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
      std::fprintf(stderr, "SIMT emulator: SVSIMT_SEED=%llu\n",
                   static_cast<unsigned long long>(seed));
    }
    return std::mt19937_64(seed);
  }();
  return r;
}

void suspend(State s) {
  Thread* t = running;
  t->state = s;
  void* save = nullptr;
  switching(&save, schedulerStack);
  t->back = std::move(t->back).resume();
  switched(save, nullptr);
  running = t;
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
void resume(bctx::fiber&& f, const Span& stack) {
  void* save = nullptr;
  switching(&save, stack);
  bctx::fiber r = std::move(f).resume();
  switched(save, nullptr);
  if (r) running->fiber = std::move(r);
  running = nullptr;
}

void runBlock(Block& blk, uint3 blockIdx3, dim3 grid, dim3 dims, void (*body)(void*),
              void* arg) {
  const size_t n = size_t{dims.x} * dims.y * dims.z;
  ++blockSerial;
  blk.threads.clear();
  blk.threads.resize(n);
  blk.snapshot.assign((n + 31) / 32 * 32, 0);
  for (size_t i = 0; i < n; ++i) {
    Thread& t = blk.threads[i];
    t.b.thread = uint3{static_cast<unsigned>(i % dims.x),
                       static_cast<unsigned>(i / dims.x % dims.y),
                       static_cast<unsigned>(i / (size_t{dims.x} * dims.y))};
    t.b.block = blockIdx3;
    t.b.blockDims = dims;
    t.b.gridDims = grid;
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::shuffle(order.begin(), order.end(), rng());
  // A worker fiber starts the threads in `order` one after another on its stack; a thread
  // that suspends keeps the worker, and a new one starts the rest. So a thread needs a fiber of
  // its own only once it reaches a barrier, and a kernel without barriers runs on one stack.
  size_t next = 0, done = 0;
  while (next < n) {
    bctx::stack_context sc = pool().take();
    const Span stack{static_cast<char*>(sc.sp) - sc.size, sc.size};
    auto worker = [&, stack](bctx::fiber&& back) {
      switched(nullptr, &schedulerStack);
      while (next < n) {
        Thread& t = blk.threads[order[next++]];
        running = &t;
        t.stack = stack;
        t.back = std::move(back);
        body(arg);
        t.state = State::kDone;
        ++done;
        back = std::move(t.back);
      }
      switching(nullptr, schedulerStack);
      return std::move(back);
    };
    resume(bctx::fiber(std::allocator_arg, bctx::preallocated(sc.sp, sc.size, sc), PooledStack{},
                       worker),
           stack);
  }
  while (done < n) {
    if (!releaseWarps(blk)) {
      size_t atBarrier = 0;
      for (const Thread& t : blk.threads) atBarrier += t.state == State::kBlockWait;
      running = &blk.threads[order[0]];
      if (atBarrier != n - done)
        fault(std::to_string(atBarrier) + " threads wait in __syncthreads while " +
              std::to_string(n - done - atBarrier) + " wait in a warp operation");
      if (done != 0)
        fault("__syncthreads reached by " + std::to_string(atBarrier) + " threads after " +
              std::to_string(done) + " threads of the block exited");
      running = nullptr;
      for (Thread& t : blk.threads) t.state = State::kReady;
    }
    std::shuffle(order.begin(), order.end(), rng());
    for (size_t i : order) {
      Thread& t = blk.threads[i];
      if (t.state != State::kReady) continue;
      running = &t;
      resume(std::move(t.fiber), t.stack);
    }
  }
}

}  // namespace

const Builtins& current() { return running->b; }

void misuse(const char* what) { fault(what); }

void sharedDeclared(void* p, size_t bytes) {
  uint64_t& filled = sharedFilled[p];
  if (filled == blockSerial) return;
  std::memset(p, 0xFF, bytes);
  filled = blockSerial;
}

void syncBlock() { suspend(State::kBlockWait); }

unsigned warpExchange(unsigned mask, uint64_t value, uint64_t (&all)[32]) {
  Thread* t = running;
  const size_t i = static_cast<size_t>(t - block->threads.data());
  t->value = value;
  t->mask = mask;
  suspend(State::kWarpWait);
  std::copy_n(block->snapshot.begin() + static_cast<ptrdiff_t>(i / 32 * 32), 32, all);
  return static_cast<unsigned>(i % 32);
}

void runGrid(const char* name, dim3 grid, dim3 dims, void (*body)(void*), void* arg) {
  const uint64_t blocks = uint64_t{grid.x} * grid.y * grid.z;
  std::vector<uint64_t> order(blocks);
  std::iota(order.begin(), order.end(), uint64_t{0});
  std::shuffle(order.begin(), order.end(), rng());
  Block blk;
  blk.kernel = name;
  Block* outer = block;
  block = &blk;
  for (uint64_t b : order) {
    const uint3 idx{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                    static_cast<unsigned>(b / (uint64_t{grid.x} * grid.y))};
    runBlock(blk, idx, grid, dims, body, arg);
  }
  block = outer;
}

}  // namespace svsimt
