// topk_ef's and dgs's kernels on the GPU against lib/reference, bit for bit: the step before
// the selection (momentum correction, v + u, NaN policies) followed by the in-place top-K; the
// sparse-values record (payload, values, checksum, header); the checks and rank-order float
// sums of W records, corrupted ones included; the gated selected copy. Edge sizes, misaligned
// pointers, +-0, +-inf, NaN and subnormals.
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"
#include "gpu.h"
#include "kernels.h"
#include "records.h"
#include "reference/schemes.h"
#include "reference/sparse_record.h"
#include "reference/topk.h"
#include "reference/wire.h"

namespace {

namespace ref = signvote::ref;
namespace k = signvote::kernels;
using svtest::DeviceArray;
using svtest::hostRecord;
using svtest::withSpecials;

const uint64_t kSizes[] = {0, 1, 31, 32, 33, 63, 64, 65, 127, 4095, 4097, 7919, 65537, 1048577};

TEST(ValuesKernel, TopkEfStepAndSelectionMatchTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 60);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    for (float momentum : {0.0f, 0.9f})
      for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE})
        for (uint64_t kk : {n / 10, uint64_t{1}, n}) {  // n/10 first: the one case CaseFilter keeps
          if (kk > n || !cases.take()) continue;
          SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(kk) +
                       ", momentum = " + std::to_string(momentum) + ", policy = " +
                       std::to_string(policy));
          const bool withU = momentum != 0.0f;
          const std::vector<float> g = withSpecials(svtest::normal(n, rng), rng);
          const std::vector<float> u = withSpecials(svtest::ties(n, rng), rng);
          std::vector<float> v = svtest::normal(n, rng, 4.0f);
          for (uint64_t i = 0; i < n; i += 11) v[i] = -g[i];  // cancellations: v + g = +0.0
          std::vector<float> uNew(n), vNew(n);
          std::vector<uint32_t> sel(kk);
          const bool nan = ref::topkEfAccumulateSelect(g.data(), withU ? u.data() : nullptr,
                                                       v.data(), momentum, n, kk, policy,
                                                       uNew.data(), vNew.data(), sel.data());

          DeviceArray<float> dg(n, n % 4), du(n, 1), dv(n, 2), duNew(n, 3), dvNew(n, 1);
          DeviceArray<uint32_t> dsel(kk, 2);
          DeviceArray<k::TopKStatus> status(1);
          dg.upload(g);
          du.upload(u);
          dv.upload(v);
          size_t bytes = 0;
          CUDA_OK(k::accumulateTopK(nullptr, &bytes, nullptr, nullptr, 1.0f, n, kk, policy,
                                    nullptr, nullptr, nullptr, nullptr));
          DeviceArray<char> temp(bytes);
          CUDA_OK(k::topkEfAccumulate(dg.get(), withU ? du.get() : nullptr, dv.get(), momentum,
                                      n, policy, withU ? duNew.get() : nullptr, dvNew.get(),
                                      nullptr));
          CUDA_OK(k::accumulateTopK(temp.get(), &bytes, dvNew.get(), nullptr, 1.0f, n, kk,
                                    policy, dvNew.get(), dsel.get(), status.get(), nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          const std::vector<float> gotV = dvNew.download();
          for (uint64_t i = 0; i < n; ++i)
            ASSERT_TRUE(svtest::sameBitsOrNaN(gotV[i], vNew[i]))
                << "v at " << i << ": " << gotV[i] << " vs " << vNew[i];
          if (withU) {
            const std::vector<float> gotU = duNew.download();
            for (uint64_t i = 0; i < n; ++i)
              ASSERT_TRUE(svtest::sameBitsOrNaN(gotU[i], uNew[i]))
                  << "u at " << i << ": " << gotU[i] << " vs " << uNew[i];
          }
          EXPECT_EQ(dsel.download(), sel);
          EXPECT_EQ(status.download()[0].nanCount != 0, nan);
          EXPECT_EQ(status.download()[0].nanCount, svtest::countNaN(vNew));
          EXPECT_TRUE(dvNew.guardIntact());
          EXPECT_TRUE(duNew.guardIntact());
          EXPECT_TRUE(dsel.guardIntact());
          EXPECT_TRUE(svtest::sameBits(dv.download(), v)) << "the state v is only read";
        }
  }
}

ref::WireHeader templateFor(uint64_t n, uint64_t kk, uint32_t rank) {
  return svtest::recordTemplate(SV_SCHEME_TOPK_EF, SV_FORMAT_SPARSE_VALUES, n, kk, rank, 3);
}

// Values spanning 2^40 (so that any other order of the adds rounds differently), both zeros
// (selected zeros are not sent) and +-inf; the exact top-K of them.
void makeSelection(uint64_t n, uint64_t kk, std::mt19937_64& rng, std::vector<float>* acc,
                   std::vector<uint32_t>* sel) {
  acc->resize(n);
  std::uniform_int_distribution<int> ex(-20, 20);
  for (float& x : *acc) x = std::ldexp((rng() & 1 ? -1.0f : 1.0f) * (1 + (rng() % 999) / 1e3f),
                                       ex(rng));
  std::uniform_int_distribution<uint64_t> at(0, n - 1);
  for (uint64_t z = 0; z < n / 40 + 1; ++z) (*acc)[at(rng)] = (z & 1) ? 0.0f : -0.0f;
  if (n > 100) (*acc)[at(rng)] = std::numeric_limits<float>::infinity();
  sel->resize(kk);
  ref::selectTopKByMagnitude(acc->data(), n, kk, sel->data());
}

// W ranks' records of random selections (makeSelection).
std::vector<std::vector<uint64_t>> randomRecords(const ref::SparseLayout& L, int W,
                                                 std::mt19937_64& rng) {
  std::vector<std::vector<uint64_t>> recs;
  for (int s = 0; s < W; ++s) {
    std::vector<float> acc;
    std::vector<uint32_t> sel;
    makeSelection(L.n, L.k, rng, &acc, &sel);
    recs.push_back(hostRecord(L, acc, sel, templateFor(L.n, L.k, s)));
  }
  return recs;
}

TEST(ValuesKernel, RecordsGiveTheHostBytes) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 61);
  for (uint64_t n : kSizes) {
    if (n == 0) continue;
    svtest::CaseFilter cases(n);
    for (uint64_t kk : {(n + 9) / 10, uint64_t{1}, uint64_t{2}, n}) {  // as above
      if (kk > n || !cases.take()) continue;
      SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(kk));
      const ref::SparseLayout L = ref::sparseLayout(n, kk);
      const uint64_t words = L.payloadWords() + (kk + 1) / 2;
      std::vector<float> acc;
      std::vector<uint32_t> sel;
      makeSelection(n, kk, rng, &acc, &sel);
      const ref::WireHeader tmpl = templateFor(n, kk, 2);
      DeviceArray<float> dacc(n, n % 4);
      DeviceArray<uint32_t> dsel(kk, 1), dent(kk, 3);
      DeviceArray<uint64_t> rec(8 + words);
      DeviceArray<k::RecordInfo> info(1);
      dacc.upload(acc);
      dsel.upload(sel);
      cudaMemset(rec.get(), 0xFF, (8 + words) * 8);  // every word must be written
      size_t bytes = 0;
      CUDA_OK(k::encodeSparse(nullptr, &bytes, L, nullptr, nullptr, nullptr, nullptr, nullptr,
                              nullptr));
      DeviceArray<char> temp(bytes);
      CUDA_OK(k::encodeSparse(temp.get(), &bytes, L, dacc.get(), dsel.get(), dent.get(),
                              rec.get() + 8, info.get(), nullptr));
      CUDA_OK(k::encodeValues(dacc.get(), dent.get(), kk, L.payloadWords(),
                              rec.get() + 8 + L.payloadWords(), info.get(), nullptr));
      CUDA_OK(k::writeHeader(tmpl, info.get(), words, nullptr, rec.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(rec.download(), hostRecord(L, acc, sel, tmpl));
      EXPECT_TRUE(rec.guardIntact());
    }
  }
}

// Checks and sums W records on the device; sums and per-record flags.
::testing::AssertionResult deviceSums(const ref::SparseLayout& L,
                                      const std::vector<std::vector<uint64_t>>& recs,
                                      std::vector<float>* sums, std::vector<uint32_t>* flags) {
  const int W = static_cast<int>(recs.size());
  const size_t stride = recs[0].size() * 8;
  std::vector<uint64_t> flat;
  for (const auto& r : recs) flat.insert(flat.end(), r.begin(), r.end());
  DeviceArray<uint64_t> drec(flat.size());
  DeviceArray<float> dsums(L.n, 1);
  DeviceArray<uint32_t> dflags(W);
  drec.upload(flat);
  cudaMemset(dflags.get(), 0, W * 4);
  size_t bytes = 0;
  cudaError_t e = k::sumSparseValues(nullptr, &bytes, L, nullptr, stride, W, nullptr, nullptr,
                                     nullptr);
  DeviceArray<char> temp(bytes);
  if (e == cudaSuccess)
    e = k::sumSparseValues(temp.get(), &bytes, L, drec.get(), stride, W, dsums.get(),
                           dflags.get(), nullptr);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) return ::testing::AssertionFailure() << cudaGetErrorString(e);
  if (!dsums.guardIntact()) return ::testing::AssertionFailure() << "a sum landed past N";
  *sums = dsums.download();
  *flags = dflags.download();
  return ::testing::AssertionSuccess();
}

// The host's sums of the records whose index is not `skip`, in rank order from +0.0.
std::vector<float> hostSums(const ref::SparseLayout& L,
                            const std::vector<std::vector<uint64_t>>& recs, int skip = -1) {
  std::vector<float> sums(L.n, 0.0f);
  for (int s = 0; s < static_cast<int>(recs.size()); ++s) {
    if (s == skip) continue;
    const auto* h = reinterpret_cast<const ref::WireHeader*>(recs[s].data());
    ref::addSparseValues(L, recs[s].data() + 8, h->entries,
                         recs[s].data() + 8 + L.payloadWords(), sums.data());
  }
  return sums;
}

void expectSameSums(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)  // inf - inf: the GPU's NaN is canonical
    ASSERT_TRUE(svtest::sameBitsOrNaN(got[i], want[i]))
        << i << ": " << got[i] << " vs " << want[i];
}

TEST(ValuesKernel, SumsOfManyRecordsFollowRankOrder) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 62);
  for (uint64_t n : {uint64_t{1}, uint64_t{33}, uint64_t{64}, uint64_t{4097}, uint64_t{65537}})
    for (uint64_t kk : {uint64_t{1}, (n + 2) / 3, n})
      for (int W : {1, 2, 3, 7, 16}) {
        SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(kk) +
                     ", W = " + std::to_string(W));
        const ref::SparseLayout L = ref::sparseLayout(n, kk);
        const std::vector<std::vector<uint64_t>> recs = randomRecords(L, W, rng);
        for (const auto& rec : recs) {
          const auto* h = reinterpret_cast<const ref::WireHeader*>(rec.data());
          ASSERT_TRUE(ref::sparseValuesValid(L, rec.data() + 8, h->entries,
                                             rec.data() + 8 + L.payloadWords()));
        }
        std::vector<float> sums;
        std::vector<uint32_t> flags;
        ASSERT_TRUE(deviceSums(L, recs, &sums, &flags));
        EXPECT_EQ(flags, std::vector<uint32_t>(W, 0));
        expectSameSums(sums, hostSums(L, recs));
      }
}

// Corruptions of the last record, resealed so that the structural checks must catch them (and
// once not resealed, for the checksum): the device flags what the host rejects, and a flagged
// record adds nothing while the others still add in rank order.
TEST(ValuesKernel, CorruptRecordsAreFlaggedAndAddNothing) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 63);
  const int W = 3;
  int caught = 0, trials = 0;
  for (uint64_t n : {uint64_t{33}, uint64_t{1000}, uint64_t{65537}}) {
    const uint64_t kk = n / 7 + 1;
    const ref::SparseLayout L = ref::sparseLayout(n, kk);
    const uint64_t words = L.payloadWords() + (kk + 1) / 2;
    const std::vector<std::vector<uint64_t>> good = randomRecords(L, W, rng);
    for (int t = 0; t < 14; ++t) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", trial " + std::to_string(t));
      std::vector<std::vector<uint64_t>> recs = good;
      std::vector<uint64_t>& bad = recs[W - 1];
      auto* h = reinterpret_cast<ref::WireHeader*>(bad.data());
      uint64_t* values = bad.data() + 8 + L.payloadWords();
      const uint64_t used = h->entries;
      const uint64_t j = used ? rng() % used : 0;
      switch (t % 7) {
        case 0: values[j / 2] ^= uint64_t{0x80000000} << (32 * (j & 1)); break;  // a sign
        case 1: values[j / 2] &= ~(uint64_t{0x7FFFFFFF} << (32 * (j & 1))); break;  // zero
        case 2: values[(kk + 1) / 2 - 1] |= uint64_t{1} << 63; break;  // padding, or a sign
        case 3: bad[8 + rng() % L.payloadWords()] ^= uint64_t{1} << (rng() % 64); break;
        case 4: h->entries = used ? used - 1 : 1; break;
        case 5: values[j / 2] ^= uint64_t{1} << (32 * (j & 1) + 3); break;  // another value
        default: bad[8 + rng() % words] = rng(); break;
      }
      const bool reseal = t != 6;
      if (reseal) h->payloadChecksum = ref::checksumWords(bad.data() + 8, words);
      const bool checksumOk = ref::checksumWords(bad.data() + 8, words) == h->payloadChecksum;
      const bool valid = h->entries <= L.k &&
                         ref::sparseValuesValid(L, bad.data() + 8, h->entries, values);
      std::vector<float> sums;
      std::vector<uint32_t> flags;
      ASSERT_TRUE(deviceSums(L, recs, &sums, &flags));
      EXPECT_EQ(flags[0] | flags[1], 0u);
      EXPECT_EQ((flags[W - 1] & k::kRecordMalformed) != 0, !valid);
      EXPECT_EQ((flags[W - 1] & k::kRecordChecksum) != 0, !checksumOk);
      expectSameSums(sums, hostSums(L, recs, flags[W - 1] != 0 ? W - 1 : -1));
      ++trials;
      caught += flags[W - 1] != 0;
    }
  }
  EXPECT_GT(caught, trials / 2);
}

TEST(ValuesKernel, CopySelectedIsGated) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 64);
  for (uint64_t n : {uint64_t{1}, uint64_t{65}, uint64_t{7919}}) {
    const std::vector<float> src = withSpecials(svtest::normal(n, rng), rng);
    const std::vector<float> before = svtest::ties(n, rng);
    const uint64_t kk = n / 3 + 1;
    std::vector<uint32_t> sel(kk);
    ref::selectTopKByMagnitude(src.data(), n, kk, sel.data());
    DeviceArray<float> dsrc(n, 1), dst(n, 2);
    DeviceArray<uint32_t> dsel(kk, 3), gate(1);
    dsrc.upload(src);
    dsel.upload(sel);
    for (bool zeroOthers : {false, true})
      for (uint32_t g : {1u, 0u}) {
        dst.upload(before);
        gate.upload({g});
        CUDA_OK(k::copySelected(dsrc.get(), dsel.get(), kk, n, zeroOthers, dst.get(), gate.get(),
                                nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        std::vector<float> want = g ? before : zeroOthers ? std::vector<float>(n, 0.0f) : before;
        if (!g)
          for (uint32_t i : sel) want[i] = src[i];
        EXPECT_TRUE(svtest::sameBits(dst.download(), want)) << n << " " << zeroOthers << " " << g;
        EXPECT_TRUE(dst.guardIntact());
      }
  }
}

TEST(ValuesKernel, InvalidArgumentsEnqueueNothing) {
  SV_REQUIRE_GPU();
  DeviceArray<float> a(8), b(8), c(8);
  // Momentum without the u buffers, or u without momentum.
  EXPECT_EQ(k::topkEfAccumulate(a.get(), nullptr, b.get(), 0.9f, 8, SV_NONFINITE_ERROR, nullptr,
                                c.get(), nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::topkEfAccumulate(a.get(), b.get(), b.get(), 0.0f, 8, SV_NONFINITE_ERROR, c.get(),
                                c.get(), nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::encodeValues(a.get(), nullptr, 3, 0, nullptr, nullptr, nullptr),
            cudaErrorInvalidValue);
  const ref::SparseLayout L = ref::sparseLayout(100, 10);
  size_t bytes = 0;
  CUDA_OK(k::sumSparseValues(nullptr, &bytes, L, nullptr, 0, 2, nullptr, nullptr, nullptr));
  DeviceArray<char> temp(bytes), recs(4096);
  DeviceArray<uint32_t> flags(2);
  // A stride that leaves out the values.
  EXPECT_EQ(k::sumSparseValues(temp.get(), &bytes, L, recs.get(), L.recordBytes(), 2, a.get(),
                               flags.get(), nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(k::copySelected(a.get(), nullptr, 9, 8, false, b.get(), nullptr, nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaDeviceSynchronize(), cudaSuccess);
}

}  // namespace
