// The caller's floating-point environment (rounding mode, x86's FTZ and DAZ, trapping
// exceptions) changes no bit the library computes and is the caller's again when a call returns.
#include <cfenv>
#include <cfloat>
#include <limits>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#endif

#include "world.h"

namespace {

using svtest::World;

#if defined(__x86_64__) || defined(__i386__)
constexpr unsigned kFtzDaz = 0x8040;  // MXCSR: flush to zero (bit 15), denormals are zero (bit 6)
unsigned ftzDaz() { return _mm_getcsr() & kFtzDaz; }
void setFtzDaz() { _mm_setcsr(_mm_getcsr() | kFtzDaz); }
#else
unsigned ftzDaz() { return 0; }
void setFtzDaz() {}
#endif

// Puts this thread's environment back whatever the test does in between.
struct KeepEnv {
  fenv_t env;
  KeepEnv() { fegetenv(&env); }
  ~KeepEnv() { fesetenv(&env); }
};

// Gradients with many subnormals (N(0, 1) times 2^-126: about two thirds below FLT_MIN), a few
// normal values, signed zeros and, on request, values that overflow or cancel to NaN in sums.
std::vector<std::vector<float>> tinyGrads(int W, size_t n, bool extremes, std::mt19937_64& rng) {
  std::vector<std::vector<float>> g(W);
  for (int r = 0; r < W; ++r) {
    g[r] = svtest::normal(n, rng);
    for (size_t i = 0; i < n; ++i) g[r][i] *= i % 10 == 3 ? 1.0f : FLT_MIN;
    g[r][5] = r % 2 ? -0.0f : 0.0f;
    if (extremes) {
      g[r][7] = FLT_MAX;                                                  // overflows a sum
      g[r][8] = r % 2 ? -std::numeric_limits<float>::infinity()           // inf - inf
                      : std::numeric_limits<float>::infinity();
    }
  }
  return g;
}

// Every scheme over three exchanges: one world in this thread's default environment, its twin
// with the rounding mode upward and, on x86, FTZ and DAZ set around each of its calls. Same
// codes, outputs, states and K; after each call the caller's mode, FTZ and DAZ are still set and
// no exception flag raised inside the library shows.
TEST(FpEnv, TheCallersRoundingAndFlushToZeroChangeNoBit) {
  const KeepEnv keep;
  std::mt19937_64 rng(svtest::testSeed() + 61);
  const int W = 3;
  const size_t n = 1000;
  for (const svBucketConfig_t& cfg : svtest::schemeCases(n)) {
    SCOPED_TRACE("scheme " + std::to_string(cfg.scheme) + ", format " +
                 std::to_string(cfg.format));
    World plain(W, cfg);
    fesetround(FE_UPWARD);
    setFtzDaz();
    const unsigned flushBits = ftzDaz();
    World other(W, cfg);  // bucket creation in that environment too (K from a density)
    fesetenv(FE_DFL_ENV);
    EXPECT_EQ(other.info().k, plain.info().k);
    for (int step = 0; step < 3; ++step) {
      const auto g = tinyGrads(W, n, false, rng);
      const svResult_t want = plain.exchange(g);
      fesetround(FE_UPWARD);
      setFtzDaz();
      feclearexcept(FE_ALL_EXCEPT);
      const svResult_t got = other.exchange(g);
      const int raised = fetestexcept(FE_ALL_EXCEPT);
      const int mode = fegetround();
      const unsigned flush = ftzDaz();
      fesetenv(FE_DFL_ENV);
      ASSERT_EQ(got, want) << svGetLastError(other.comms[0]);
      EXPECT_EQ(mode, FE_UPWARD);
      EXPECT_EQ(flush, flushBits);
      EXPECT_EQ(raised, 0) << "the library's exception flags reached the caller";
      for (int r = 0; r < W; ++r) {
        EXPECT_TRUE(svtest::sameBits(other.out[r], plain.out[r])) << "rank " << r;
        if (plain.info().stateFloats != 0) {
          EXPECT_TRUE(svtest::sameBits(other.residual(r), plain.residual(r))) << "rank " << r;
        }
      }
      EXPECT_EQ(svtest::lastK(other.buckets[0]), svtest::lastK(plain.buckets[0]));
    }
  }
}

#ifdef __GLIBC__
// A trainer that traps invalid operations, overflow and division by zero (feenableexcept, to
// find NaN at its source) does not get SIGFPE from the library: sums that overflow and
// inf - inf inside an exchange give the codes and bits of an untrapped run, and the traps are
// still on afterwards.
TEST(FpEnv, TrappingExceptionsInTheCallerDoNotTrapInTheLibrary) {
  const KeepEnv keep;
  std::mt19937_64 rng(svtest::testSeed() + 62);
  const int W = 2;
  const size_t n = 500;
  const int traps = FE_INVALID | FE_DIVBYZERO | FE_OVERFLOW;
  for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_PROPAGATE}) {
    svConfig_t config = SV_CONFIG_INITIALIZER;
    config.nonFinite = policy;
    for (const svBucketConfig_t& cfg : svtest::schemeCases(n)) {
      SCOPED_TRACE("policy " + std::to_string(policy) + ", scheme " +
                   std::to_string(cfg.scheme) + ", format " + std::to_string(cfg.format));
      World plain(W, cfg, &config), trapped(W, cfg, &config);
      for (int step = 0; step < 2; ++step) {
        const auto g = tinyGrads(W, n, true, rng);
        const svResult_t want = plain.exchange(g);
        feenableexcept(traps);
        const svResult_t got = trapped.exchange(g);
        const int enabled = fegetexcept();
        fesetenv(FE_DFL_ENV);
        ASSERT_EQ(got, want) << svGetLastError(trapped.comms[0]);
        EXPECT_EQ(enabled, traps);
        for (int r = 0; r < W; ++r)
          EXPECT_TRUE(svtest::sameBits(trapped.out[r], plain.out[r])) << "rank " << r;
      }
    }
  }
}
#endif

}  // namespace
