// ef_sign's kernels on the GPU against lib/reference, bit for bit: the compression (p, planes,
// the tree-summed scale, the checksum terms), the record checks, the mean over W records and
// the error commit, and adaptive K's squared norm on the same tree; edge sizes around the
// 2048-value tiles and three tree levels, misaligned pointers, +-0, +-inf, NaN and subnormals.
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

// An ef_sign record's header, after its planes (at record + 64) are written: the scale in aux
// and the planes' checksum.
void sealScaledRecord(char* record, float scale, uint64_t words) {
  ref::WireHeader h{};
  uint32_t bits;
  std::memcpy(&bits, &scale, 4);
  h.aux = bits;
  h.payloadChecksum =
      ref::checksumWords(reinterpret_cast<const uint64_t*>(record + 64), 2 * words);
  std::memcpy(record, &h, sizeof(h));
}

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
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
      if (!cases.take()) continue;
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
      // Every NaN of p = g + e counted once (IGNORE leaves none in p).
      EXPECT_EQ(got.nans, svtest::countNaN(p));
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
    for (int W : {1, 2, 3, 7, 16, SV_MAX_RANKS}) {
      if (W == SV_MAX_RANKS && n > 64) continue;  // the largest world: one plane word each
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
        sealScaledRecord(records.data() + s * stride, scales[s], words);
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
        sealScaledRecord(r.data() + s * stride, scales[s], words);
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

// Adaptive K's squared norm: the host tree's bits on the edge sizes, with and without the
// special values (NaN as +0.0 under IGNORE only), and on values spanning 2^40 so that any
// other grouping of the adds would round differently.
TEST(ScaledKernel, SquareNormMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 53);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  std::uniform_int_distribution<int> ex(-20, 20);
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    for (int kind = 0; kind < 3; ++kind)
      for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
        if (!cases.take()) continue;
        SCOPED_TRACE("n = " + std::to_string(n) + ", kind " + std::to_string(kind) +
                     ", policy = " + std::to_string(policy));
        std::vector<float> g = svtest::normal(n, rng, 1e3f);
        if (kind == 1) g = withSpecials(std::move(g), rng);
        if (kind == 2)
          for (float& x : g) x = std::ldexp(1.0f + float(rng() % 1000) / 1000.0f, ex(rng));
        const float want = ref::pairwiseSquareSum(g.data(), n, policy);
        DeviceArray<float> dg(n, n % 4);
        DeviceArray<unsigned long long> out(1);
        dg.upload(g);
        out.upload({~0ull});
        size_t bytes = 0;
        CUDA_OK(k::squareNorm(nullptr, &bytes, nullptr, n, policy, nullptr, nullptr));
        DeviceArray<char> temp(bytes);
        CUDA_OK(k::squareNorm(temp.get(), &bytes, dg.get(), n, policy, out.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        const unsigned long long got = out.download()[0];
        EXPECT_EQ(got >> 32, 0u);
        float f;
        const auto b = static_cast<uint32_t>(got);
        std::memcpy(&f, &b, 4);
        EXPECT_TRUE(svtest::sameBitsOrNaN(f, want)) << f << " vs " << want;
        EXPECT_TRUE(temp.guardIntact() && out.guardIntact());
      }
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
  EXPECT_EQ(k::squareNorm(nullptr, nullptr, nullptr, 5, SV_NONFINITE_ERROR, nullptr, nullptr),
            cudaErrorInvalidValue);
  bytes = sizeof(temp);
  EXPECT_EQ(k::squareNorm(temp, &bytes, nullptr, 5, SV_NONFINITE_ERROR, nullptr, nullptr),
            cudaErrorInvalidValue);
}

}  // namespace

namespace {

bool sameBitsOrNaN(const std::vector<float>& a, const std::vector<float>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!svtest::sameBitsOrNaN(a[i], b[i])) return false;
  return true;
}

// liec: each rank's uplink messages, every owner's step, the ranks' outputs and the averaging
// owner step, against lib/reference; chunks from one word to three tree levels' worth, empty
// last chunks (W > words), a malformed message at one owner.
TEST(LiecKernel, CompressOwnerAndOutputMatchTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 53);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : {uint64_t{1}, uint64_t{63}, uint64_t{65}, uint64_t{1000}, uint64_t{4097},
                     uint64_t{65537}, uint64_t{4194305}}) {
    svtest::CaseFilter cases(n);
    for (int W : {1, 2, 3, 7})
      for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
        if ((n > 100000 && W != 1) || !cases.take()) continue;
        SCOPED_TRACE("n = " + std::to_string(n) + ", W = " + std::to_string(W) +
                     ", policy = " + std::to_string(policy));
        const uint64_t cw = ((n + 63) / 64 + W - 1) / W, chunk = 64 * cw;
        const uint64_t words = ref::chunkSignsWords(cw);
        std::vector<std::vector<uint64_t>> msgs(W, std::vector<uint64_t>(W * words));
        std::vector<std::vector<float>> cleans(W, std::vector<float>(W * chunk));
        DeviceArray<float> dg(n, 1), dclean(W * chunk, 2);
        DeviceArray<uint64_t> dmsgs(W * words);
        DeviceArray<unsigned long long> nans(1);
        size_t bytes = 0;
        CUDA_OK(k::liecCompress(nullptr, &bytes, nullptr, n, cw, W, policy, nullptr, nullptr,
                                nullptr, nullptr));
        DeviceArray<char> temp(bytes);
        for (int s = 0; s < W; ++s) {
          std::vector<float> g = svtest::ties(n, rng);
          if (s == 0) g = withSpecials(svtest::normal(n, rng), rng);
          if (policy == SV_NONFINITE_ERROR) {
            // Every NaN counted once; then they go, since a NaN scale's bits are the platform's.
            dg.upload(g);
            nans.upload({0});
            CUDA_OK(k::liecCompress(temp.get(), &bytes, dg.get(), n, cw, W, policy, dclean.get(),
                                    dmsgs.get(), nans.get(), nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            EXPECT_EQ(nans.download()[0], svtest::countNaN(g)) << "rank " << s;
            for (float& x : g)
              if (std::isnan(x)) x = 2.0f;
          }
          const bool nan = ref::liecCompress(g.data(), n, cw, W, policy, cleans[s].data(),
                                             msgs[s].data());
          dg.upload(g);
          nans.upload({0});
          CUDA_OK(k::liecCompress(temp.get(), &bytes, dg.get(), n, cw, W, policy, dclean.get(),
                                  dmsgs.get(), nans.get(), nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_EQ(dmsgs.download(), msgs[s]) << "rank " << s;
          const std::vector<float> got = dclean.download();
          for (uint64_t i = 0; i < W * chunk; ++i)
            ASSERT_TRUE(svtest::sameBits(got[i], i < n ? cleans[s][i] : 0.0f)) << i;
          EXPECT_EQ(nans.download()[0] != 0, nan);
          EXPECT_TRUE(dclean.guardIntact());
          EXPECT_TRUE(dmsgs.guardIntact());
        }

        // Every owner's step; then the outputs of every rank from the gathered results.
        std::vector<uint64_t> results(W * words);
        for (int d = 0; d < W; ++d) {
          const uint64_t len = ref::ownerChunk(n, chunk, d).len;
          std::vector<uint64_t> recv;
          for (int s = 0; s < W; ++s)
            recv.insert(recv.end(), msgs[s].begin() + d * words, msgs[s].begin() + (d + 1) * words);
          std::vector<float> e = svtest::normal(chunk, rng, 0.5f);
          for (uint64_t x = 0; x < chunk; x += 5) e[x] = -0.0f;
          std::vector<float> eNew(chunk);
          ASSERT_TRUE(ref::liecOwner(recv.data(), W, len, cw, e.data(), eNew.data(),
                                     results.data() + d * words));
          DeviceArray<uint64_t> drecv(recv.size(), 1), dres(words, 2);
          DeviceArray<float> de(chunk, 3), da(chunk), deNew(chunk, 1);
          DeviceArray<uint32_t> flags(1);
          drecv.upload(recv);
          de.upload(e);
          flags.upload({0});
          size_t ob = 0;
          CUDA_OK(k::liecOwner(nullptr, &ob, nullptr, W, n, d, cw, nullptr, nullptr, nullptr,
                               nullptr, nullptr, nullptr));
          DeviceArray<char> otemp(ob);
          CUDA_OK(k::liecOwner(otemp.get(), &ob, drecv.get(), W, n, d, cw, de.get(), da.get(),
                               deNew.get(), dres.get(), flags.get(), nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_EQ(flags.download()[0], 0u) << "owner " << d;
          const std::vector<uint64_t> gotRes = dres.download();
          EXPECT_TRUE(std::equal(gotRes.begin(), gotRes.end(), results.begin() + d * words))
              << "owner " << d;
          // inf - inf (rank 0's infinite scale) in e: the NaN's bits are the platform's.
          EXPECT_TRUE(sameBitsOrNaN(deNew.download(), eNew)) << "owner " << d;
          EXPECT_TRUE(dres.guardIntact());
          EXPECT_TRUE(deNew.guardIntact());
          if (d == W - 1) {  // a negative scale from the last sender: flagged and poisoned
            recv[(W - 1) * words + 2 * cw] |= uint64_t{1} << 31;
            drecv.upload(recv);
            CUDA_OK(k::liecOwner(otemp.get(), &ob, drecv.get(), W, n, d, cw, de.get(), da.get(),
                                 deNew.get(), dres.get(), flags.get(), nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            EXPECT_EQ(flags.download()[0], 1u);
            EXPECT_EQ(dres.download()[2 * cw], ~uint64_t{0});
            DeviceArray<uint32_t> seen(1);
            seen.upload({0});
            CUDA_OK(k::checkChunkSigns(dres.get(), 1, cw, n, d, seen.get(), nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            EXPECT_EQ(seen.download()[0], 1u);
          }
        }
        DeviceArray<uint64_t> dresults(results.size()), down(W * words);
        DeviceArray<uint32_t> flags(1), gate(1);
        dresults.upload(results);
        flags.upload({0});
        CUDA_OK(k::checkChunkSigns(dresults.get(), W, cw, n, -1, flags.get(), nullptr));
        DeviceArray<float> out(n, 1);
        float sentinel;  // the bytes 0x7F of the memset below
        const uint32_t sentinelBits = 0x7F7F7F7Fu;
        std::memcpy(&sentinel, &sentinelBits, 4);
        for (int r = 0; r < W; ++r) {
          std::vector<float> expect(n);
          ref::liecOutput(results.data(), msgs[r].data(), cleans[r].data(), n, cw,
                          expect.data());
          down.upload(msgs[r]);
          dclean.upload(cleans[r]);
          for (uint32_t closed : {1u, 0u}) {
            CUDA_OK(cudaMemset(out.get(), 0x7F, n * 4));
            gate.upload({closed});
            CUDA_OK(k::liecOutput(dresults.get(), down.get(), dclean.get(), n, cw, out.get(),
                                  gate.get(), nullptr));
            CUDA_OK(cudaDeviceSynchronize());
            const std::vector<float> got = out.download();
            for (uint64_t i = 0; i < n; ++i)
              ASSERT_TRUE(closed ? svtest::sameBits(got[i], sentinel)
                                 : svtest::sameBitsOrNaN(got[i], expect[i]))
                  << "rank " << r << ", element " << i;
          }
        }
        EXPECT_EQ(flags.download()[0], 0u);
        EXPECT_TRUE(out.guardIntact());

        // The averaging owner step: a = sum / W + e, eNew = -0.0.
        const std::vector<float> sum = svtest::normal(chunk, rng, 3.0f),
                                 e = svtest::ties(chunk, rng);
        DeviceArray<float> dsum(chunk, 1), de(chunk, 2), da(chunk, 3), deNew(chunk);
        dsum.upload(sum);
        de.upload(e);
        CUDA_OK(k::liecAverageOwner(dsum.get(), de.get(), W, chunk, da.get(), deNew.get(),
                                    nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<float> a(chunk);
        for (uint64_t x = 0; x < chunk; ++x) a[x] = sum[x] / static_cast<float>(W) + e[x];
        EXPECT_TRUE(svtest::sameBits(da.download(), a));
        EXPECT_TRUE(svtest::sameBits(deNew.download(), std::vector<float>(chunk, -0.0f)));
      }
  }
}

// The largest world (SV_MAX_RANKS): the last owner's step over every rank's message for its
// one-word chunk, as the host's; one rank more is refused.
TEST(LiecKernel, TheLargestWorldMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 55);
  constexpr int W = SV_MAX_RANKS;
  const uint64_t cw = 1, chunk = 64, words = ref::chunkSignsWords(cw), n = W * chunk - 7;
  const int d = W - 1;
  const uint64_t len = ref::ownerChunk(n, chunk, d).len;
  // A rank's message for chunk d depends only on the chunk's values: one chunk compressed alone.
  std::vector<uint64_t> recv(W * words);
  std::vector<float> clean(chunk);
  for (int s = 0; s < W; ++s)
    ASSERT_FALSE(ref::liecCompress(svtest::ties(len, rng).data(), len, cw, 1,
                                   SV_NONFINITE_ERROR, clean.data(), recv.data() + s * words));
  const std::vector<float> e = svtest::normal(chunk, rng, 0.5f);
  std::vector<float> eNew(chunk);
  std::vector<uint64_t> result(words);
  ASSERT_TRUE(ref::liecOwner(recv.data(), W, len, cw, e.data(), eNew.data(), result.data()));

  size_t bytes = 0;
  EXPECT_EQ(k::liecOwner(nullptr, &bytes, nullptr, W + 1, n, d, cw, nullptr, nullptr, nullptr,
                         nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::liecCompress(nullptr, &bytes, nullptr, n, cw, W + 1, SV_NONFINITE_ERROR, nullptr,
                            nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  CUDA_OK(k::liecCompress(nullptr, &bytes, nullptr, n, cw, W, SV_NONFINITE_ERROR, nullptr,
                          nullptr, nullptr, nullptr));
  EXPECT_GT(bytes, 0u);
  CUDA_OK(k::liecOwner(nullptr, &bytes, nullptr, W, n, d, cw, nullptr, nullptr, nullptr, nullptr,
                       nullptr, nullptr));
  DeviceArray<char> temp(bytes);
  DeviceArray<uint64_t> drecv(recv.size(), 1), dres(words, 2);
  DeviceArray<float> de(chunk, 3), da(chunk), deNew(chunk, 1);
  DeviceArray<uint32_t> flags(1);
  drecv.upload(recv);
  de.upload(e);
  flags.upload({0});
  CUDA_OK(k::liecOwner(temp.get(), &bytes, drecv.get(), W, n, d, cw, de.get(), da.get(),
                       deNew.get(), dres.get(), flags.get(), nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(flags.download()[0], 0u);
  EXPECT_EQ(dres.download(), result);
  EXPECT_TRUE(svtest::sameBits(deNew.download(), eNew));
  EXPECT_TRUE(dres.guardIntact());
  EXPECT_TRUE(deNew.guardIntact());
}

// Many threads find a fault at once: every plane word of one rank's ef_sign record, and of
// every liec chunk message, holds a negative bit without its nonzero bit (records resealed).
// The verdicts are the host checks', for the faulty records only. Under the race check
// (simt.race_malformed_words) a plain |= in place of a check's atomicOr is reported here.
TEST(ScaledKernel, EveryWordMalformedGivesTheVerdict) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 54);
  const uint64_t n = 4097, words = (n + 63) / 64;
  const int W = 3;
  {
    const uint64_t stride = 64 + 16 * words;
    std::vector<char> records(W * stride);
    std::vector<uint32_t> want(W);
    for (int s = 0; s < W; ++s) {
      const std::vector<float> g = svtest::normal(n, rng), e = svtest::ties(n, rng);
      std::vector<float> p(n);
      auto* planes = reinterpret_cast<uint64_t*>(records.data() + s * stride + 64);
      float scale = 0.0f;
      ref::efSignCompress(g.data(), e.data(), n, SV_NONFINITE_ERROR, p.data(), planes, &scale);
      if (s == 1)
        for (uint64_t w = 0; w < words; ++w) {
          planes[w] = 0;
          planes[words + w] = ~uint64_t{0};
        }
      want[s] = ref::scaledPlanesValid(planes, n) ? 0u : uint32_t{k::kRecordMalformed};
      sealScaledRecord(records.data() + s * stride, scale, words);
    }
    DeviceArray<char> drec(records.size());
    DeviceArray<uint32_t> flags(W);
    drec.upload(records);
    flags.upload(std::vector<uint32_t>(W, 0));
    size_t bytes = 0;
    CUDA_OK(k::checkScaledRecords(nullptr, &bytes, nullptr, stride, W, n, nullptr, nullptr));
    DeviceArray<char> temp(bytes);
    CUDA_OK(k::checkScaledRecords(temp.get(), &bytes, drec.get(), stride, W, n, flags.get(),
                                  nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ(want[1], uint32_t{k::kRecordMalformed});
    EXPECT_EQ(flags.download(), want);
  }
  {
    const uint64_t cw = (words + W - 1) / W, chunk = 64 * cw, mw = ref::chunkSignsWords(cw);
    std::vector<uint64_t> msgs(W * mw);
    std::vector<float> clean(W * chunk);
    const std::vector<float> g = svtest::ties(n, rng);
    ref::liecCompress(g.data(), n, cw, W, SV_NONFINITE_ERROR, clean.data(), msgs.data());
    DeviceArray<uint64_t> dmsgs(msgs.size());
    DeviceArray<uint32_t> flags(1);
    for (bool corrupt : {false, true}) {
      std::vector<uint64_t> m = msgs;
      int invalid = 0;
      for (int s = 0; s < W; ++s) {
        if (corrupt)
          for (uint64_t w = 0; w < cw; ++w) {
            m[s * mw + w] = 0;
            m[s * mw + cw + w] = ~uint64_t{0};
          }
        const uint64_t first = s * chunk, len = n > first ? std::min(chunk, n - first) : 0;
        invalid += !ref::chunkSignsValid(&m[s * mw], len, cw);
      }
      EXPECT_EQ(invalid, corrupt ? W : 0);
      dmsgs.upload(m);
      flags.upload({0});
      CUDA_OK(k::checkChunkSigns(dmsgs.get(), W, cw, n, -1, flags.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(flags.download()[0], invalid ? 1u : 0u);
    }
  }
}

}  // namespace
