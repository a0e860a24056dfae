// Test helpers: seeded random data (the seed is printed on failure), brute-force models.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace svtest {

// A fresh seed per test run unless SIGNVOTE_TEST_SEED is set; SCOPED_TRACE it.
inline uint64_t testSeed() {
  static const uint64_t seed = [] {
    const char* s = std::getenv("SIGNVOTE_TEST_SEED");
    return s ? std::strtoull(s, nullptr, 10) : std::random_device{}();
  }();
  return seed;
}

// Sizes above SVTEST_FULL_SWEEP_MAX (undefined: no limit) take only the first case of a
// test's inner loops: `CaseFilter cases(n); ... if (!cases.take()) continue;`. The sanitizer
// builds define it for the SIMT kernel suites, where each case of their largest sizes costs
// seconds; those sizes are there for the grid-stride loops' later passes (past 4096 blocks of
// 256 threads), which one case reaches. Every case of every size runs in the plain build and
// on a GPU.
class CaseFilter {
 public:
#ifdef SVTEST_FULL_SWEEP_MAX
  explicit CaseFilter(uint64_t n) : limited_(n > SVTEST_FULL_SWEEP_MAX) {}
#else
  explicit CaseFilter(uint64_t) {}
#endif
  bool take() { return !limited_ || taken_++ == 0; }

 private:
  bool limited_ = false;
  uint64_t taken_ = 0;
};

// An error text names what it should.
inline ::testing::AssertionResult mentions(const std::string& text, const std::string& needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not mention '" << needle << "'";
}

inline bool sameBits(float a, float b) { return std::memcmp(&a, &b, sizeof(float)) == 0; }
// Bitwise equality where a NaN matches any NaN: arithmetic on a NaN makes the GPU's canonical
// NaN but keeps the operand's payload on x86, and no exchange commits or outputs such a value
// (the policy fails the exchange or fills the output with one fixed NaN).
inline bool sameBitsOrNaN(float a, float b) {
  return sameBits(a, b) || (std::isnan(a) && std::isnan(b));
}
// NaN elements of v: what a kernel that counts NaN into a caller-zeroed counter must count.
inline uint64_t countNaN(const std::vector<float>& v) {
  uint64_t c = 0;
  for (float x : v) c += std::isnan(x);
  return c;
}
// Bitwise equality of two float arrays (NaN payloads and signed zeros included); empty is fine.
inline bool sameBits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

inline std::vector<float> normal(size_t n, std::mt19937_64& rng, float sigma = 1.0f) {
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(n);
  for (float& x : v) x = d(rng);
  return v;
}

// Few distinct magnitudes, both signs and both zeros: a tie-heavy input.
inline std::vector<float> ties(size_t n, std::mt19937_64& rng) {
  const float vals[] = {0.0f, -0.0f, 1.0f, -1.0f, 2.0f, -2.0f, 0.5f, -0.5f};
  std::uniform_int_distribution<int> d(0, 7);
  std::vector<float> v(n);
  for (float& x : v) x = vals[d(rng)];
  return v;
}

// One gradient per rank, each tie-heavy (one in three) or normal.
inline std::vector<std::vector<float>> grads(int W, size_t n, std::mt19937_64& rng) {
  std::vector<std::vector<float>> g(W);
  for (auto& v : g) v = (rng() % 3 == 0) ? ties(n, rng) : normal(n, rng);
  return g;
}

// Brute force: indices sorted by |x| descending, ties by lowest index; first k, index-sorted.
inline std::vector<uint32_t> bruteTopK(const std::vector<float>& x, size_t k) {
  std::vector<uint32_t> order(x.size());
  std::iota(order.begin(), order.end(), 0u);
  std::stable_sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
    const float fa = std::fabs(x[a]), fb = std::fabs(x[b]);
    if (std::isnan(fa) != std::isnan(fb)) return std::isnan(fa);  // NaN ranks first
    return fa > fb;
  });
  order.resize(k);
  std::sort(order.begin(), order.end());
  return order;
}

inline int signOf(float x) { return x < 0.0f ? -1 : x > 0.0f ? 1 : 0; }

// sum |x| over [lo, lo + width) of x[0, len) zero-padded, width a power of two, halving
// recursively: the tree the library documents (neighbours first), written differently.
inline float treeAbsSum(const float* x, size_t len, size_t lo, size_t width) {
  if (width == 1) return lo < len ? std::fabs(x[lo]) : 0.0f;
  return treeAbsSum(x, len, lo, width / 2) + treeAbsSum(x, len, lo + width / 2, width / 2);
}

// ef_sign's and liec's C(x) over len elements: scale * sign(x), scale = tree sum |x| / len,
// +0.0 where x == 0.
inline std::vector<float> scaledSign(const float* x, size_t len) {
  size_t width = 1;
  while (width < len) width *= 2;
  const float s = len ? treeAbsSum(x, len, 0, width) / static_cast<float>(len) : 0.0f;
  std::vector<float> c(len);
  for (size_t i = 0; i < len; ++i) c[i] = x[i] > 0.0f ? s : x[i] < 0.0f ? -s : 0.0f;
  return c;
}

// Fatal (within the calling helper) when a and b differ in any bit; names the first index.
inline void expectSameBits(const std::vector<float>& a, const std::vector<float>& b,
                           const char* what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_TRUE(sameBits(a[i], b[i])) << what << " differs at " << i << ": " << a[i] << " vs "
                                      << b[i];
}

}  // namespace svtest
