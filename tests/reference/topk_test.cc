// Exact top-K of the host golden model against a full sort.
#include <limits>

#include "common.h"
#include "reference/topk.h"

namespace {

using signvote::ref::kInfKey;
using signvote::ref::magnitudeKey;
using signvote::ref::selectTopKByMagnitude;

std::vector<uint32_t> select(const std::vector<float>& x, size_t k) {
  std::vector<uint32_t> out(k + 1, 0xDEADBEEFu);  // one guard element
  selectTopKByMagnitude(x.data(), x.size(), k, out.data());
  EXPECT_EQ(out[k], 0xDEADBEEFu) << "wrote past k";
  out.resize(k);
  return out;
}

void checkAllK(const std::vector<float>& x, std::mt19937_64& rng) {
  const size_t n = x.size();
  std::vector<size_t> ks = {0, 1, n / 2, n > 0 ? n - 1 : 0, n};
  std::uniform_int_distribution<size_t> d(0, n);
  for (int i = 0; i < 3; ++i) ks.push_back(d(rng));
  for (size_t k : ks) {
    if (k > n) continue;
    SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k));
    EXPECT_EQ(select(x, k), svtest::bruteTopK(x, k));
  }
}

const size_t kEdgeSizes[] = {0,    1,    2,    3,    31,   32,   33,    63,    64,    65,
                             97,   127,  128,  129,  1009, 2047, 2048,  2049,  4093,  65535,
                             65536, 65537, 65521, (1u << 20) - 1, (1u << 20) + 1};

TEST(TopK, EdgeSizesNormalData) {
  std::mt19937_64 rng(svtest::testSeed());
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (size_t n : kEdgeSizes) checkAllK(svtest::normal(n, rng), rng);
}

TEST(TopK, RandomSizes) {
  std::mt19937_64 rng(svtest::testSeed() + 1);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  std::uniform_int_distribution<size_t> d(0, 1u << 20);
  for (int i = 0; i < 6; ++i) checkAllK(svtest::normal(d(rng), rng, 1e-3f), rng);
}

TEST(TopK, HeavyTiesGoToLowestIndex) {
  std::mt19937_64 rng(svtest::testSeed() + 2);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (size_t n : kEdgeSizes) checkAllK(svtest::ties(n, rng), rng);
  // All equal magnitudes: the first k indices, whatever the signs.
  std::vector<float> eq(1000);
  for (size_t i = 0; i < eq.size(); ++i) eq[i] = (i % 3 == 0) ? -3.0f : 3.0f;
  const auto s = select(eq, 10);
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(s[i], i);
}

TEST(TopK, ZerosAndSignedZerosTie) {
  std::vector<float> z(257, 0.0f);
  for (size_t i = 0; i < z.size(); i += 2) z[i] = -0.0f;
  for (size_t k : {size_t{0}, size_t{1}, size_t{100}, size_t{256}, size_t{257}}) {
    const auto s = select(z, k);
    for (uint32_t i = 0; i < k; ++i) ASSERT_EQ(s[i], i) << "k = " << k;
  }
  // Zeros rank below every non-zero, subnormals included.
  std::vector<float> x(100, 0.0f);
  x[77] = std::numeric_limits<float>::denorm_min();
  x[3] = -0.0f;
  EXPECT_EQ(select(x, 1), std::vector<uint32_t>{77});
}

TEST(TopK, InfinitiesAndNaN) {
  std::mt19937_64 rng(svtest::testSeed() + 3);
  auto x = svtest::normal(4099, rng);
  const float inf = std::numeric_limits<float>::infinity();
  x[4098] = inf;
  x[17] = -inf;
  x[1000] = std::numeric_limits<float>::max();
  checkAllK(x, rng);
  EXPECT_EQ(select(x, 2), (std::vector<uint32_t>{17, 4098}));
  // NaN keys rank above inf (callers apply the NaN policy before selecting).
  EXPECT_GT(magnitudeKey(std::numeric_limits<float>::quiet_NaN()), kInfKey);
  EXPECT_GT(magnitudeKey(-std::numeric_limits<float>::quiet_NaN()), kInfKey);
  x[5] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_EQ(select(x, 2), (std::vector<uint32_t>{5, 17}));  // -inf and +inf tie: lowest index
  EXPECT_EQ(magnitudeKey(-0.0f), 0u);
  EXPECT_EQ(magnitudeKey(-inf), kInfKey);
}

}  // namespace
