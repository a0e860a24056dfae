// Out of host memory (faults row 20). This binary replaces the global operator new so that the
// n-th allocation of one API call throws std::bad_alloc (or, "exhausted", every allocation from
// the n-th on), and sweeps n over every allocation the call makes: each failure must return
// svSystemError naming the call, create nothing and change nothing, and the call must work
// once memory is back.
#include <cstdlib>
#include <new>

#include "handles.h"
#include "world.h"

namespace {

// Allocations left before one fails in this thread; -1: none fails.
thread_local long gLeft = -1;
thread_local bool gExhausted = false;  // once one failed, all later ones fail too
thread_local long gFailures = 0;

void* allocate(size_t bytes, size_t align) {
  if (gLeft == 0) {
    if (!gExhausted) gLeft = -1;
    ++gFailures;
    throw std::bad_alloc();
  }
  if (gLeft > 0) --gLeft;
  void* p = nullptr;
  if (posix_memalign(&p, align < sizeof(void*) ? sizeof(void*) : align, bytes ? bytes : 1) != 0)
    throw std::bad_alloc();
  return p;
}

}  // namespace

void* operator new(size_t n) { return allocate(n, alignof(std::max_align_t)); }
void* operator new[](size_t n) { return allocate(n, alignof(std::max_align_t)); }
void* operator new(size_t n, std::align_val_t a) { return allocate(n, static_cast<size_t>(a)); }
void* operator new[](size_t n, std::align_val_t a) { return allocate(n, static_cast<size_t>(a)); }
void* operator new(size_t n, const std::nothrow_t&) noexcept {
  try {
    return allocate(n, alignof(std::max_align_t));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
// GCC (with inlining, as at -O1) takes these for free() on memory from the standard operator
// new; here both are the replacements above, which pair posix_memalign with free.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t, std::align_val_t) noexcept { std::free(p); }

namespace {

using namespace svtest;
using signvote::detail::liveHandleCount;

// Runs call() with the n-th allocation failing, for n = 0, 1, ... until a run makes no
// allocation fail; check(code, failed) judges each run. Returns how many runs failed one.
template <class Call, class Check>
long sweep(bool exhausted, Call call, Check check) {
  long failedRuns = 0;
  for (long n = 0;; ++n) {
    gFailures = 0;
    gExhausted = exhausted;
    gLeft = n;
    const svResult_t code = call();
    gLeft = -1;
    gExhausted = false;
    const bool failed = gFailures != 0;
    check(code, failed);
    if (::testing::Test::HasFatalFailure() || !failed) break;
    ++failedRuns;
    if (n > 100000) {
      ADD_FAILURE() << "the sweep did not end";
      break;
    }
  }
  return failedRuns;
}

void expectOutOfMemory(svResult_t code, const char* text, const char* call) {
  EXPECT_EQ(code, svSystemError) << text;
  EXPECT_TRUE(mentions(text, call));
  EXPECT_TRUE(mentions(text, "out of host memory"));
}

class Alloc : public ::testing::TestWithParam<bool> {};  // exhausted: every later one fails too

TEST_P(Alloc, CommCreationCreatesNothing) {
  const size_t live = liveHandleCount();
  std::vector<svComm_t> comms(5, nullptr);
  const long failed = sweep(GetParam(), [&] { return svCommInitLoopback(comms.data(), 5, nullptr); },
                            [&](svResult_t code, bool oom) {
                              if (!oom) return;
                              expectOutOfMemory(code, svGetLastError(nullptr),
                                                "svCommInitLoopback");
                              for (svComm_t c : comms) EXPECT_EQ(c, nullptr);
                              EXPECT_EQ(liveHandleCount(), live);
                            });
  EXPECT_GT(failed, 2);
  for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
  EXPECT_EQ(liveHandleCount(), live);
}

TEST_P(Alloc, BucketCreationCreatesNothing) {
  for (const svBucketConfig_t& cfg : schemeCases(1000)) {
    SCOPED_TRACE(cfg.scheme);
    svComm_t comms[3];
    ASSERT_EQ(svCommInitLoopback(comms, 3, nullptr), svSuccess);
    const size_t live = liveHandleCount();
    svBucket_t b = nullptr;
    const long failed = sweep(GetParam(), [&] { return svBucketCreate(&b, comms[1], &cfg); },
                              [&](svResult_t code, bool oom) {
                                if (!oom) {
                                  EXPECT_EQ(code, svSuccess);
                                  return;
                                }
                                expectOutOfMemory(code, svGetLastError(comms[1]),
                                                  "svBucketCreate");
                                EXPECT_EQ(b, nullptr);
                                EXPECT_EQ(liveHandleCount(), live);
                              });
    EXPECT_GT(failed, 0);
    EXPECT_EQ(svCommDestroy(comms[1]), svInvalidUsage);  // the bucket made at the end counts
    EXPECT_EQ(svBucketDestroy(b), svSuccess);
    for (svComm_t c : comms) EXPECT_EQ(svCommDestroy(c), svSuccess);
  }
}

// Every allocation of a grouped exchange fails in turn: each time every rank's output, state
// and sequence number are untouched and the world stays usable; the exchange that finally
// succeeds gives the bits of a twin world that never ran out of memory.
TEST_P(Alloc, ExchangeChangesNothingAndTheWorldStaysUsable) {
  std::mt19937_64 rng(testSeed());
  for (const svBucketConfig_t& cfg : schemeCases(300)) {
    SCOPED_TRACE(cfg.scheme);
    const int W = 3;
    World w(W, cfg), twin(W, cfg);
    for (int step = 0; step < 2; ++step) {
      const auto g = grads(W, cfg.count, rng);
      const World::Snapshot before = w.snapshot();
      const long failed = sweep(GetParam(), [&] { return w.exchange(g); },
                                [&](svResult_t code, bool oom) {
                                  if (!oom) {
                                  EXPECT_EQ(code, svSuccess);
                                  return;
                                }
                                  expectOutOfMemory(code, svGetLastError(nullptr),
                                                    "svGroupEnd");
                                  for (int r = 0; r < W; ++r)
                                    EXPECT_TRUE(mentions(svGetLastError(w.comms[r]),
                                                         "out of host memory"));
                                  w.expectUnchanged(before);
                                });
      EXPECT_GT(failed, 0);
      ASSERT_EQ(twin.exchange(g), svSuccess);
      const World::Snapshot a = w.snapshot(), b = twin.snapshot();
      for (int r = 0; r < W; ++r) {
        EXPECT_TRUE(sameBits(a.out[r], b.out[r])) << "output of rank " << r;
        EXPECT_TRUE(sameBits(a.res[r], b.res[r])) << "state of rank " << r;
      }
    }
  }
}

// A call made inside a group that runs out of memory fails the group; nothing runs.
TEST_P(Alloc, ExchangeInAGroupFailsTheGroup) {
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_SIGNSGD_MV, 64);
  World w(2, cfg);
  std::mt19937_64 rng(testSeed() + 1);
  const auto g = grads(2, 64, rng);
  const World::Snapshot before = w.snapshot();
  ASSERT_EQ(svGroupStart(), svSuccess);
  size_t bytes = w.ws[0].size();
  ASSERT_EQ(svExchange(w.buckets[0], g[0].data(), w.out[0].data(), w.ws[0].data(), &bytes,
                       nullptr), svSuccess);
  bytes = w.ws[1].size();
  gExhausted = GetParam();
  gLeft = 0;
  const svResult_t code = svExchange(w.buckets[1], g[1].data(), w.out[1].data(),
                                     w.ws[1].data(), &bytes, nullptr);
  gLeft = -1;
  gExhausted = false;
  expectOutOfMemory(code, svGetLastError(nullptr), "svExchange");
  EXPECT_EQ(svGroupEnd(), svSystemError);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "nothing ran"));
  w.expectUnchanged(before);
  EXPECT_EQ(w.exchange(g), svSuccess);
}

INSTANTIATE_TEST_SUITE_P(OneOrEvery, Alloc, ::testing::Bool(),
                         [](const auto& p) { return p.param ? "Exhausted" : "OneFails"; });

}  // namespace
