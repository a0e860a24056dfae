// Sparse records on the GPU against lib/reference: encodeSparse + writeHeader give the host's
// exact bytes, addSparseVotes gives the host's vote sums and the host's verdict on corrupted
// records, validateHeaders the host's verdict on corrupted headers.
#include <cmath>
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

struct Case {
  uint64_t n, k;
};
const Case kCases[] = {{1, 0}, {1, 1}, {2, 1}, {31, 5}, {32, 32}, {33, 1}, {64, 63},
                       {65, 64}, {100, 3}, {1000, 10}, {4097, 41}, {7919, 792},
                       {65537, 655}, {65537, 65536}, {104729, 1}, {(1u << 20) + 1, 10486}};

ref::WireHeader templateFor(uint64_t n, uint64_t kk, uint32_t rank) {
  return svtest::recordTemplate(SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, n, kk, rank, 7);
}

// acc with some exact zeros among the selected, and the exact top-K of it.
void makeSelection(uint64_t n, uint64_t kk, std::mt19937_64& rng, std::vector<float>* acc,
                   std::vector<uint32_t>* sel) {
  *acc = svtest::normal(n, rng);
  std::uniform_int_distribution<uint64_t> at(0, n - 1);
  for (uint64_t z = 0; z < n / 50 + 1; ++z) (*acc)[at(rng)] = (z & 1) ? 0.0f : -0.0f;
  sel->resize(kk);
  ref::selectTopKByMagnitude(acc->data(), n, kk, sel->data());
}

// Encodes on the device and returns the record bytes (header + payload).
::testing::AssertionResult deviceRecord(const ref::SparseLayout& L, const std::vector<float>& acc,
                                        const std::vector<uint32_t>& sel,
                                        const ref::WireHeader& tmpl, size_t offset,
                                        std::vector<uint64_t>* out) {
  DeviceArray<float> dacc(L.n, offset);
  DeviceArray<uint32_t> dsel(L.k, offset), dent(L.k);
  DeviceArray<uint64_t> rec(8 + L.payloadWords());
  DeviceArray<k::RecordInfo> info(1);
  dacc.upload(acc);
  dsel.upload(sel);
  size_t bytes = 0;
  cudaError_t e = k::encodeSparse(nullptr, &bytes, L, dacc.get(), dsel.get(), dent.get(),
                                  rec.get() + 8, info.get(), nullptr);
  DeviceArray<char> temp(bytes);
  if (e == cudaSuccess)
    e = k::encodeSparse(temp.get(), &bytes, L, dacc.get(), dsel.get(), dent.get(), rec.get() + 8,
                        info.get(), nullptr);
  if (e == cudaSuccess) e = k::writeHeader(tmpl, info.get(), L.payloadWords(), nullptr, rec.get(),
                                           nullptr);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) return ::testing::AssertionFailure() << cudaGetErrorString(e);
  if (!rec.guardIntact()) return ::testing::AssertionFailure() << "wrote past the record";
  *out = rec.download();
  return ::testing::AssertionSuccess();
}

TEST(SparseKernel, EncodeGivesTheHostBytes) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 10);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (const Case& c : kCases) {
    SCOPED_TRACE("n = " + std::to_string(c.n) + ", k = " + std::to_string(c.k));
    const ref::SparseLayout L = ref::sparseLayout(c.n, c.k);
    std::vector<float> acc;
    std::vector<uint32_t> sel;
    makeSelection(c.n, c.k, rng, &acc, &sel);
    const ref::WireHeader tmpl = templateFor(c.n, c.k, 3);
    std::vector<uint64_t> got;
    ASSERT_TRUE(deviceRecord(L, acc, sel, tmpl, c.n % 4, &got));
    EXPECT_EQ(got, hostRecord(L, acc, sel, tmpl));
  }
}

TEST(SparseKernel, HeaderCarriesTheNonFiniteFlag) {
  SV_REQUIRE_GPU();
  DeviceArray<uint64_t> dst(8);
  DeviceArray<unsigned long long> nan(1);
  nan.upload({2});
  ref::WireHeader h = templateFor(100, 0, 1);
  CUDA_OK(k::writeHeader(h, nullptr, 0, nan.get(), dst.get(), nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  h.flags = ref::kFlagNonFinite;
  ref::sealHeader(&h);
  std::vector<uint64_t> expect(8);
  std::memcpy(expect.data(), &h, 64);
  EXPECT_EQ(dst.download(), expect);
}

// Decodes W records on the device; returns the votes and the per-record flags.
::testing::AssertionResult deviceVotes(const ref::SparseLayout& L,
                                       const std::vector<std::vector<uint64_t>>& recs,
                                       std::vector<int32_t>* votes, std::vector<uint32_t>* flags) {
  const int W = static_cast<int>(recs.size());
  const size_t stride = recs[0].size();
  std::vector<uint64_t> flat;
  for (const auto& r : recs) flat.insert(flat.end(), r.begin(), r.end());
  DeviceArray<uint64_t> drec(flat.size());
  DeviceArray<int32_t> dvotes(L.n, 1);
  DeviceArray<uint32_t> dflags(W);
  drec.upload(flat);
  cudaMemset(dvotes.get(), 0, L.n * 4);
  cudaMemset(dflags.get(), 0, W * 4);
  size_t bytes = 0;
  cudaError_t e = k::addSparseVotes(nullptr, &bytes, L, drec.get(), stride * 8, W, dvotes.get(),
                                    dflags.get(), nullptr);
  DeviceArray<char> temp(bytes);
  if (e == cudaSuccess)
    e = k::addSparseVotes(temp.get(), &bytes, L, drec.get(), stride * 8, W, dvotes.get(),
                          dflags.get(), nullptr);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) return ::testing::AssertionFailure() << cudaGetErrorString(e);
  if (!dvotes.guardIntact()) return ::testing::AssertionFailure() << "a vote landed past N";
  *votes = dvotes.download();
  *flags = dflags.download();
  return ::testing::AssertionSuccess();
}

TEST(SparseKernel, VotesOfManyRecordsMatchTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 11);
  for (const Case& c : kCases) {
    for (int W : {1, 2, 3, 8, 15}) {
      SCOPED_TRACE("n = " + std::to_string(c.n) + ", k = " + std::to_string(c.k) +
                   ", W = " + std::to_string(W));
      const ref::SparseLayout L = ref::sparseLayout(c.n, c.k);
      std::vector<std::vector<uint64_t>> recs;
      std::vector<int32_t> expect(c.n, 0);
      for (int s = 0; s < W; ++s) {
        std::vector<float> acc;
        std::vector<uint32_t> sel;
        makeSelection(c.n, c.k, rng, &acc, &sel);
        recs.push_back(hostRecord(L, acc, sel, templateFor(c.n, c.k, s)));
        const auto* h = reinterpret_cast<const ref::WireHeader*>(recs.back().data());
        ASSERT_TRUE(ref::addSparseVotes(L, recs.back().data() + 8, h->entries, expect.data()));
      }
      std::vector<int32_t> votes;
      std::vector<uint32_t> flags;
      ASSERT_TRUE(deviceVotes(L, recs, &votes, &flags));
      EXPECT_EQ(flags, std::vector<uint32_t>(W, 0));
      EXPECT_EQ(votes, expect);
    }
  }
}

// Random single-bit and single-word corruptions of the payload, with the checksum recomputed
// so that the structural checks are what must catch them: the device's malformed verdict must
// equal ref::decodeSparse's, and a corruption without a recomputed checksum is always caught.
TEST(SparseKernel, CorruptRecordsGetTheHostVerdict) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 12);
  int caught = 0, trials = 0;
  for (const Case& c : kCases) {
    const ref::SparseLayout L = ref::sparseLayout(c.n, c.k);
    if (L.payloadWords() == 0) continue;
    std::vector<float> acc;
    std::vector<uint32_t> sel;
    makeSelection(c.n, c.k, rng, &acc, &sel);
    const std::vector<uint64_t> good = hostRecord(L, acc, sel, templateFor(c.n, c.k, 0));
    std::uniform_int_distribution<size_t> word(8, good.size() - 1);
    for (int t = 0; t < 12; ++t) {
      std::vector<uint64_t> bad = good;
      const size_t w = word(rng);
      if (t % 3 == 0) bad[w] = rng();
      else bad[w] ^= uint64_t{1} << (rng() % 64);
      if (t % 4 == 1) {  // also lie about the entry count
        auto* h = reinterpret_cast<ref::WireHeader*>(bad.data());
        h->entries += (t % 8 == 1) ? 1 : -1;
      }
      const bool keepChecksum = (t % 2 == 0);
      auto* h = reinterpret_cast<ref::WireHeader*>(bad.data());
      if (!keepChecksum) h->payloadChecksum = ref::checksumWords(bad.data() + 8, L.payloadWords());
      std::vector<int32_t> scratch(c.n, 0);
      const bool hostOk = h->entries <= L.k &&
                          ref::addSparseVotes(L, bad.data() + 8, h->entries, scratch.data());
      std::vector<int32_t> votes;
      std::vector<uint32_t> flags;
      SCOPED_TRACE("n = " + std::to_string(c.n) + ", trial " + std::to_string(t));
      ASSERT_TRUE(deviceVotes(L, {bad}, &votes, &flags));
      EXPECT_EQ((flags[0] & k::kRecordMalformed) != 0, !hostOk);
      const bool checksumOk =
          ref::checksumWords(bad.data() + 8, L.payloadWords()) == h->payloadChecksum;
      EXPECT_EQ((flags[0] & k::kRecordChecksum) != 0, !checksumOk);
      ++trials;
      caught += flags[0] != 0;
    }
  }
  EXPECT_GT(caught, trials / 2);  // the corruptions are real
}

TEST(SparseKernel, HeaderVerdictsMatchTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 13);
  const int W = 6;
  const ref::HeaderExpect e{0, SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, SV_VOTE_TERNARY, 7, 1000, 10};
  for (int t = 0; t < 64; ++t) {
    std::vector<uint64_t> flat(8 * W);
    for (int s = 0; s < W; ++s) {
      ref::WireHeader h = templateFor(1000, 10, s);
      h.entries = 4;
      if (s == t % W) {
        auto* bytes = reinterpret_cast<unsigned char*>(&h);
        const int field = t / W;
        if (field == 0) h.flags = ref::kFlagNonFinite;
        else if (field == 1) h.flags = 2;
        else if (field == 2) h.entries = 11;
        else if (field == 3) h.seq = 8;
        else if (field == 4) h.version = 9;
        else if (field == 5) h.rank = 99;
        else bytes[rng() % 56] ^= 1u << (rng() % 8);
      }
      ref::sealHeader(&h);
      if (s == t % W && t / W == 7) h.headerChecksum ^= 1;
      std::memcpy(&flat[8 * s], &h, 64);
    }
    DeviceArray<uint64_t> d(flat.size());
    DeviceArray<uint32_t> verdict(W);
    d.upload(flat);
    CUDA_OK(k::validateHeaders(d.get(), 64, W, e, verdict.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    const std::vector<uint32_t> got = verdict.download();
    for (int s = 0; s < W; ++s) {
      ref::WireHeader h;
      std::memcpy(&h, &flat[8 * s], 64);
      ref::HeaderExpect es = e;
      es.rank = s;
      const char* why = "";
      const svResult_t r = ref::validateHeader(h, es, &why);
      const uint32_t expect = r == svCorruptInput ? k::kHeaderCorrupt
                              : r == svMismatch   ? k::kHeaderMismatch
                              : (h.flags & ref::kFlagNonFinite) ? k::kHeaderNonFinite
                                                                : k::kHeaderOk;
      EXPECT_EQ(got[s], expect) << "trial " << t << ", sender " << s << " (" << why << ")";
    }
  }
}

}  // namespace
