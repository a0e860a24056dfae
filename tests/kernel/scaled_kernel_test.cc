// ef_sign's kernels on the GPU against lib/reference, bit for bit: the compression (p, planes,
// the tree-summed scale, the checksum terms), the record checks, the mean over W records and
// the error commit; edge sizes around the 2048-value tiles and three tree levels, misaligned
// pointers, +-0, +-inf, NaN and subnormals.
#include <cmath>
#include <cstring>

#include "common.h"
#include "gpu.h"
#include "kernels.h"
#include "reference/schemes.h"
#include "reference/wire.h"

namespace {

namespace ref = signvote::ref;
namespace k = signvote::kernels;
using svtest::DeviceArray;
using svtest::withSpecials;

const uint64_t kSizes[] = {0,    1,    31,   32,   33,   63,    64,     65,     2047,
                           2048, 2049, 4097, 7919, 65537, 4194305, 4196353};

struct Compressed {
  std::vector<float> p;
  std::vector<uint64_t> planes;
  k::RecordInfo info{};
  unsigned long long nans = 0;
};

bool compressOnDevice(const std::vector<float>& g, const std::vector<float>& e,
                      svNonFinitePolicy_t policy, Compressed* out) {
  const uint64_t n = g.size(), words = (n + 63) / 64;
  DeviceArray<float> dg(n, n % 4), de(n, 1), dp(n, 2);
  DeviceArray<uint64_t> planes(2 * words);
  DeviceArray<k::RecordInfo> info(1);
  DeviceArray<unsigned long long> nans(1);
  dg.upload(g);
  de.upload(e);
  nans.upload({0});
  size_t bytes = 0;
  if (k::efSignCompress(nullptr, &bytes, nullptr, nullptr, n, policy, nullptr, nullptr, nullptr,
                        nullptr, nullptr) != cudaSuccess)
    return false;
  DeviceArray<char> temp(bytes);
  if (k::efSignCompress(temp.get(), &bytes, dg.get(), de.get(), n, policy, dp.get(),
                        planes.get(), info.get(), nans.get(), nullptr) != cudaSuccess ||
      cudaDeviceSynchronize() != cudaSuccess)
    return false;
  out->p = dp.download();
  out->planes = planes.download();
  out->info = info.download()[0];
  out->nans = nans.download()[0];
  return dp.guardIntact() && planes.guardIntact() && temp.guardIntact();
}

TEST(ScaledKernel, CompressMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 50);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : kSizes)
    for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", policy = " + std::to_string(policy));
      const std::vector<float> g = withSpecials(svtest::normal(n, rng, 1e3f), rng);
      // Ties and cancellations against g: p = 0 where e = -g.
      std::vector<float> e = svtest::ties(n, rng);
      for (uint64_t i = 0; i < n; i += 7) e[i] = -g[i];
      const uint64_t words = (n + 63) / 64;
      std::vector<float> p(n);
      std::vector<uint64_t> planes(2 * words);
      float scale = 0.0f;
      const bool nan = ref::efSignCompress(g.data(), e.data(), n, policy, p.data(),
                                           planes.data(), &scale);
      Compressed got;
      ASSERT_TRUE(compressOnDevice(g, e, policy, &got));
      for (uint64_t i = 0; i < n; ++i)
        ASSERT_TRUE(svtest::sameBitsOrNaN(got.p[i], p[i]))
            << i << ": " << got.p[i] << " vs " << p[i];
      EXPECT_EQ(got.planes, planes);
      EXPECT_EQ(got.nans != 0, nan);
      EXPECT_EQ(got.info.entries, 0u);
      EXPECT_EQ(got.info.aux >> 32, 0u);
      const float gotScale = [&] {
        float f;
        const uint32_t b = static_cast<uint32_t>(got.info.aux);
        std::memcpy(&f, &b, 4);
        return f;
      }();
      EXPECT_TRUE(svtest::sameBitsOrNaN(gotScale, scale)) << gotScale << " vs " << scale;
      EXPECT_EQ(ref::checksumFold(2 * words, got.info.checksumXor),
                ref::checksumWords(planes.data(), 2 * words));
    }
}

// A tree sum that depends on the order: values spanning 2^40, so every regrouping of the adds
// would round differently; three tree levels (4194305 > 2048^2).
TEST(ScaledKernel, ScaleFollowsTheHostTreeAcrossLevels) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 51);
  for (uint64_t n : {uint64_t{2049}, uint64_t{65537}, uint64_t{4194305}}) {
    std::vector<float> g(n), e(n, 0.0f);
    std::uniform_int_distribution<int> ex(-20, 20);
    for (float& x : g) x = std::ldexp(1.0f + float(rng() % 1000) / 1000.0f, ex(rng));
    std::vector<float> p(n);
    std::vector<uint64_t> planes(2 * ((n + 63) / 64));
    float scale = 0.0f;
    ref::efSignCompress(g.data(), e.data(), n, SV_NONFINITE_ERROR, p.data(), planes.data(),
                        &scale);
    Compressed got;
    ASSERT_TRUE(compressOnDevice(g, e, SV_NONFINITE_ERROR, &got));
    uint32_t want;
    std::memcpy(&want, &scale, 4);
    EXPECT_EQ(static_cast<uint32_t>(got.info.aux), want) << n;
  }
}

// W records as ranks would send them, then the device's checks, mean and commit.
TEST(ScaledKernel, RecordChecksMeanAndCommitMatchTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 52);
  for (uint64_t n : {uint64_t{1}, uint64_t{63}, uint64_t{64}, uint64_t{1000}, uint64_t{65537}})
    for (int W : {1, 2, 3, 7, 16}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", W = " + std::to_string(W));
      const uint64_t words = (n + 63) / 64, stride = 64 + 16 * words;
      std::vector<char> records(W * stride);
      std::vector<const uint64_t*> planePtrs(W);
      std::vector<float> scales(W), p0(n);
      for (int s = 0; s < W; ++s) {
        const std::vector<float> g = svtest::ties(n, rng), e = svtest::normal(n, rng);
        std::vector<float> p(n);
        auto* planes = reinterpret_cast<uint64_t*>(records.data() + s * stride + 64);
        ref::efSignCompress(g.data(), e.data(), n, SV_NONFINITE_ERROR, p.data(), planes,
                            &scales[s]);
        if (s == 0) p0 = p;
        ref::WireHeader h{};
        uint32_t bits;
        std::memcpy(&bits, &scales[s], 4);
        h.aux = bits;
        h.payloadChecksum = ref::checksumWords(planes, 2 * words);
        std::memcpy(records.data() + s * stride, &h, sizeof(h));
        planePtrs[s] = planes;
      }
      std::vector<float> mean(n), err(n);
      ref::efSignMean(planePtrs.data(), scales.data(), W, n, mean.data());
      ref::efSignCommit(p0.data(), scales[0], n, err.data());

      DeviceArray<char> drec(records.size());
      DeviceArray<uint32_t> flags(W), gate(1);
      DeviceArray<float> out(n, 1), dp(n, 3), de(n, 2);
      DeviceArray<k::RecordInfo> info(1);
      drec.upload(records);
      flags.upload(std::vector<uint32_t>(W, 0));
      dp.upload(p0);
      k::RecordInfo own{};
      own.aux = reinterpret_cast<const ref::WireHeader*>(records.data())->aux;
      info.upload({own});
      size_t bytes = 0;
      CUDA_OK(k::checkScaledRecords(nullptr, &bytes, nullptr, stride, W, n, nullptr, nullptr));
      DeviceArray<char> temp(bytes);
      CUDA_OK(k::checkScaledRecords(temp.get(), &bytes, drec.get(), stride, W, n, flags.get(),
                                    nullptr));
      for (uint32_t g : {1u, 0u}) {  // closed: nothing written; open: the host's bits
        gate.upload({g});
        CUDA_OK(k::efSignMean(drec.get(), stride, W, n, out.get(), gate.get(), nullptr));
        CUDA_OK(k::efSignCommit(dp.get(), info.get(), n, de.get(), gate.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        if (g) {
          EXPECT_FALSE(svtest::sameBits(out.download(), mean));
          continue;
        }
        EXPECT_TRUE(svtest::sameBits(out.download(), mean));
        EXPECT_TRUE(svtest::sameBits(de.download(), err));
      }
      EXPECT_EQ(flags.download(), std::vector<uint32_t>(W, 0));
      EXPECT_TRUE(out.guardIntact());
      EXPECT_TRUE(de.guardIntact());

      // Corruptions the host rejects: a negative bit without its nonzero bit, a bit past n, a
      // payload that no longer matches its checksum, high bits in aux.
      auto flagsAfter = [&](auto&& corrupt) {
        std::vector<char> bad = records;
        corrupt(bad);
        drec.upload(bad);
        flags.upload(std::vector<uint32_t>(W, 0));
        EXPECT_EQ(k::checkScaledRecords(temp.get(), &bytes, drec.get(), stride, W, n,
                                        flags.get(), nullptr),
                  cudaSuccess);
        EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
        return flags.download();
      };
      const int s = W - 1;
      auto planes = [&](std::vector<char>& r) {
        return reinterpret_cast<uint64_t*>(r.data() + s * stride + 64);
      };
      auto reseal = [&](std::vector<char>& r) {
        auto* h = reinterpret_cast<ref::WireHeader*>(r.data() + s * stride);
        h->payloadChecksum = ref::checksumWords(planes(r), 2 * words);
      };
      std::vector<uint32_t> f = flagsAfter([&](std::vector<char>& r) {
        planes(r)[words + words - 1] |= uint64_t{1} << ((n - 1) & 63);
        planes(r)[words - 1] &= ~(uint64_t{1} << ((n - 1) & 63));
        reseal(r);
      });
      EXPECT_EQ(f[s], static_cast<uint32_t>(k::kRecordMalformed));
      if (n % 64 != 0) {
        f = flagsAfter([&](std::vector<char>& r) {
          planes(r)[words - 1] |= uint64_t{1} << 63;
          reseal(r);
        });
        EXPECT_EQ(f[s], static_cast<uint32_t>(k::kRecordMalformed));
      }
      f = flagsAfter([&](std::vector<char>& r) { planes(r)[0] ^= 1; });
      EXPECT_NE(f[s] & k::kRecordChecksum, 0u);
      f = flagsAfter([&](std::vector<char>& r) {
        reinterpret_cast<ref::WireHeader*>(r.data() + s * stride)->aux |= uint64_t{1} << 40;
      });
      EXPECT_EQ(f[s], static_cast<uint32_t>(k::kRecordMalformed));
      for (int o = 0; o < s; ++o) EXPECT_EQ(f[o], 0u) << o;
    }
}

TEST(ScaledKernel, InvalidArgumentsEnqueueNothing) {
  SV_REQUIRE_GPU();
  size_t bytes = 0;
  EXPECT_EQ(k::efSignCompress(nullptr, nullptr, nullptr, nullptr, 5, SV_NONFINITE_ERROR, nullptr,
                              nullptr, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  char temp[64];
  bytes = sizeof(temp);
  EXPECT_EQ(k::efSignCompress(temp, &bytes, nullptr, nullptr, 5, SV_NONFINITE_ERROR, nullptr,
                              nullptr, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::checkScaledRecords(nullptr, &bytes, nullptr, 64, 0, 5, nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::efSignMean(nullptr, 80, 2, 5, nullptr, nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(k::efSignCommit(nullptr, nullptr, 5, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace
