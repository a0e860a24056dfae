// Sign packing, bit-plane votes, counts and outputs on the GPU against lib/reference, bit for
// bit, over world sizes 1..15 plus large ones (gloo's habit) and edge sizes.
#include <cmath>
#include <limits>

#include "common.h"
#include "gpu.h"
#include "kernels.h"
#include "reference/schemes.h"
#include "reference/topk.h"

namespace {

namespace ref = signvote::ref;
namespace k = signvote::kernels;
using svtest::DeviceArray;
using svtest::withSpecials;

const uint64_t kSizes[] = {0, 1, 31, 32, 33, 63, 64, 65, 127, 1000, 4097, 7919, 65537};

uint64_t chunkWordsFor(uint64_t n, int W) { return ((n + 63) / 64 + W - 1) / W; }

TEST(VoteKernel, PackSignsMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 20);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : kSizes)
    for (int W : {1, 2, 3, 5, 8, 15, 64})
      for (svVote_t vote : {SV_VOTE_BINARY, SV_VOTE_TERNARY})
        for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
          SCOPED_TRACE("n = " + std::to_string(n) + ", W = " + std::to_string(W) +
                       ", vote = " + std::to_string(vote) + ", policy = " +
                       std::to_string(policy));
          const std::vector<float> g = withSpecials(svtest::ties(n, rng), rng);
          const uint64_t cw = chunkWordsFor(n, W);
          const unsigned planes = vote == SV_VOTE_BINARY ? 1 : 2;
          std::vector<uint64_t> expect(W * planes * cw);
          const bool nan = ref::packSigns(g.data(), n, vote, cw, W, policy, expect.data());
          DeviceArray<float> dg(n, n % 4);
          DeviceArray<uint64_t> out(expect.size());
          DeviceArray<unsigned long long> nans(1);
          dg.upload(g);
          nans.upload({0});
          CUDA_OK(k::packSigns(dg.get(), n, vote, cw, W, policy, out.get(), nans.get(), nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_EQ(out.download(), expect);
          EXPECT_EQ(nans.download()[0] != 0, nan);
          EXPECT_EQ(nans.download()[0],
                    policy == SV_NONFINITE_IGNORE ? 0 : svtest::countNaN(g));
          EXPECT_TRUE(out.guardIntact());
        }
}

// Signum's momentum step: the host's two roundings bit for bit, with +-0, +-inf and NaN in both
// the gradient and the momentum (inf - inf makes NaN), misaligned, under both NaN policies.
TEST(VoteKernel, SignumMomentumMatchesTheHost) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 24);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : kSizes)
    for (float beta : {0.9f, 0.5f, 1e-7f, 0.99999994f})
      for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
        SCOPED_TRACE("n = " + std::to_string(n) + ", beta = " + std::to_string(beta) +
                     ", policy = " + std::to_string(policy));
        const std::vector<float> g = withSpecials(svtest::normal(n, rng, 1e3f), rng);
        const std::vector<float> m = withSpecials(svtest::ties(n, rng), rng);
        std::vector<float> expect(n);
        ref::signumMomentum(g.data(), m.data(), beta, n, policy, expect.data());
        DeviceArray<float> dg(n, n % 3), dm(n, 1), out(n, 2);
        dg.upload(g);
        dm.upload(m);
        CUDA_OK(k::signumMomentum(dg.get(), dm.get(), beta, n, policy, out.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        const std::vector<float> got = out.download();
        for (uint64_t i = 0; i < n; ++i)
          ASSERT_TRUE(svtest::sameBitsOrNaN(got[i], expect[i]))
              << i << ": " << got[i] << " vs " << expect[i] << " (g " << g[i] << ", m " << m[i]
              << ")";
        EXPECT_TRUE(out.guardIntact());
      }
  EXPECT_EQ(k::signumMomentum(nullptr, nullptr, 0.9f, 5, SV_NONFINITE_ERROR, nullptr, nullptr),
            cudaErrorInvalidValue);
}

TEST(VoteKernel, PlaneVotesMatchTheHostForEveryWorldSize) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 21);
  std::vector<int> worlds;
  for (int W = 1; W <= 15; ++W) worlds.push_back(W);
  for (int W : {16, 31, 64, 127, 128, 1000, 4096}) worlds.push_back(W);
  for (int W : worlds)
    for (uint64_t cw : {uint64_t{1}, uint64_t{3}, uint64_t{257}})
      for (svVote_t vote : {SV_VOTE_BINARY, SV_VOTE_TERNARY}) {
        if (uint64_t(W) * cw > 200000) continue;
        SCOPED_TRACE("W = " + std::to_string(W) + ", chunkWords = " + std::to_string(cw) +
                     ", vote = " + std::to_string(vote));
        const unsigned planes = vote == SV_VOTE_BINARY ? 1 : 2;
        std::vector<uint64_t> recv(W * planes * cw);
        // Biased bits so that ties and near-ties both happen.
        for (int s = 0; s < W; ++s)
          for (uint64_t w = 0; w < cw; ++w) {
            const uint64_t a = rng(), b = rng() & rng();
            uint64_t* block = recv.data() + s * planes * cw;
            if (planes == 1) {
              block[w] = a;
            } else {
              block[w] = a | b;       // nonzero
              block[cw + w] = a & ~b;  // negative implies nonzero
            }
          }
        std::vector<uint64_t> expect(planes * cw);
        ASSERT_TRUE(ref::voteSignPlanes(recv.data(), vote, cw, W, expect.data()));
        DeviceArray<uint64_t> drecv(recv.size()), result(expect.size());
        DeviceArray<uint32_t> flags(1);
        drecv.upload(recv);
        flags.upload({0});
        CUDA_OK(k::voteSignPlanes(drecv.get(), vote, cw, W, result.get(), flags.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_EQ(result.download(), expect);
        EXPECT_EQ(flags.download()[0], 0u);
        if (planes == 2) {  // a negative bit without its nonzero bit is flagged
          uint64_t* last = recv.data() + (W - 1) * 2 * cw;
          last[cw / 2] &= ~uint64_t{1};
          last[cw + cw / 2] |= 1;
          drecv.upload(recv);
          CUDA_OK(k::voteSignPlanes(drecv.get(), vote, cw, W, result.get(), flags.get(),
                                    nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_EQ(flags.download()[0], 1u);
        }
      }
}

TEST(VoteKernel, TernaryCountsPlanesAndOutputs) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 22);
  for (uint64_t n : kSizes)
    for (int W : {1, 2, 7, 127, 128}) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", W = " + std::to_string(W));
      const unsigned cb = W <= 127 ? 1 : 2;
      const uint64_t cw = chunkWordsFor(n, W), padded = cw * 64 * W;
      // s3gdTernary
      std::vector<float> acc = withSpecials(svtest::ties(n, rng), rng);
      const uint64_t kk = n / 3;
      std::vector<uint32_t> sel(kk);
      for (float& x : acc)
        if (std::isnan(x)) x = 1.0f;  // ternary input comes from a NaN-free exchange
      ref::selectTopKByMagnitude(acc.data(), n, kk, sel.data());
      std::vector<char> expectT(padded * cb);
      ref::s3gdTernary(acc.data(), sel.data(), kk, n, padded, cb, expectT.data());
      DeviceArray<float> dacc(n, 1);
      DeviceArray<uint32_t> dsel(kk, 2);
      DeviceArray<char> dt(padded * cb, cb);  // off 16-byte alignment, aligned to the counts
      dacc.upload(acc);
      dsel.upload(sel);
      CUDA_OK(k::s3gdTernary(dacc.get(), dsel.get(), kk, padded, cb, dt.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(dt.download(), expectT);

      // s3gdPlanes, with NaN back among the selected values (it casts no vote).
      if (kk > 0) acc[sel[kk / 2]] = std::numeric_limits<float>::quiet_NaN();
      dacc.upload(acc);
      std::vector<uint64_t> expectP(W * 2 * cw);
      ref::s3gdPlanes(acc.data(), sel.data(), kk, cw, W, expectP.data());
      DeviceArray<uint64_t> dp(expectP.size(), 1);
      CUDA_OK(k::s3gdPlanes(dacc.get(), dsel.get(), kk, cw, W, dp.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(dp.download(), expectP);

      // countsToPlanes on random in-range counts of one chunk, then one out of range.
      std::vector<char> counts(cw * 64 * cb);
      std::uniform_int_distribution<int> cnt(-W, W);
      for (uint64_t i = 0; i < cw * 64; ++i) {
        const int v = cnt(rng);
        if (cb == 1) counts[i] = static_cast<char>(v);
        else std::memcpy(&counts[2 * i], &v, 2);  // little-endian low half
      }
      std::vector<uint64_t> planes(2 * cw);
      ASSERT_TRUE(ref::countsToPlanes(counts.data(), cb, cw, W, planes.data()));
      DeviceArray<char> dcounts(counts.size());
      DeviceArray<uint64_t> dplanes(2 * cw);
      DeviceArray<uint32_t> flags(1);
      dcounts.upload(counts);
      flags.upload({0});
      CUDA_OK(k::countsToPlanes(dcounts.get(), cb, cw, W, dplanes.get(), flags.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(dplanes.download(), planes);
      EXPECT_EQ(flags.download()[0], 0u);
      // poisonPlanesWhen: nothing while the flag is clear; then planes every rank rejects.
      CUDA_OK(k::poisonPlanesWhen(flags.get(), cw, dplanes.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      EXPECT_EQ(dplanes.download(), planes);
      if (cb == 1 && W < 127 && cw > 0) {  // (n = 0 has no count to corrupt)
        counts[cw * 64 - 1] = static_cast<char>(W + 1);
        dcounts.upload(counts);
        CUDA_OK(k::countsToPlanes(dcounts.get(), cb, cw, W, dplanes.get(), flags.get(), nullptr));
        CUDA_OK(k::poisonPlanesWhen(flags.get(), cw, dplanes.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_EQ(flags.download()[0], 1u);
        std::vector<uint64_t> poisoned(2 * cw, 0);
        std::fill(poisoned.begin() + cw, poisoned.end(), ~uint64_t{0});
        EXPECT_EQ(dplanes.download(), poisoned);
        DeviceArray<uint32_t> seen(1);
        seen.upload({0});
        CUDA_OK(k::checkResultPlanes(dplanes.get(), 2, cw, 1, seen.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_EQ(seen.download()[0], 1u);
      }

      // planesToOutput (binary and ternary) and checkResultPlanes over W blocks.
      for (unsigned np : {1u, 2u}) {
        std::vector<uint64_t> all(W * np * cw);
        for (int s = 0; s < W; ++s)
          for (uint64_t w = 0; w < cw; ++w) {
            uint64_t* b = all.data() + s * np * cw;
            b[w] = rng();
            if (np == 2) b[cw + w] = b[w] & rng();
          }
        std::vector<float> expectOut(n);
        ASSERT_TRUE(ref::planesToOutput(all.data(), np, cw, n, expectOut.data()));
        DeviceArray<uint64_t> dall(all.size());
        DeviceArray<float> out(n, 2);
        dall.upload(all);
        flags.upload({0});
        CUDA_OK(k::checkResultPlanes(dall.get(), np, cw, W, flags.get(), nullptr));
        CUDA_OK(k::planesToOutput(dall.get(), np, cw, n, out.get(), flags.get(), nullptr));
        CUDA_OK(cudaDeviceSynchronize());
        EXPECT_EQ(flags.download()[0], 0u);
        const std::vector<float> got = out.download();
        for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], expectOut[i])) << i;
        if (np == 2 && cw > 0) {  // malformed: flagged, and the gate keeps out untouched
          all[(W - 1) * 2 * cw] &= ~uint64_t{1};
          all[(W - 1) * 2 * cw + cw] |= 1;
          dall.upload(all);
          CUDA_OK(cudaMemset(out.get(), 0x7F, n * 4));
          CUDA_OK(k::checkResultPlanes(dall.get(), np, cw, W, flags.get(), nullptr));
          CUDA_OK(k::planesToOutput(dall.get(), np, cw, n, out.get(), flags.get(), nullptr));
          CUDA_OK(cudaDeviceSynchronize());
          EXPECT_EQ(flags.download()[0], 1u);
          for (float x : out.download()) ASSERT_TRUE(std::isnan(x) || x > 1e38f);
        }
      }
    }
}

// The owners' sum step: each supported type against the host's sum, one rounding per float
// addition; another element type is refused at any count, and nothing is written.
TEST(VoteKernel, AddIntoSumsEachTypeAndRefusesOthers) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 24);
  std::uniform_int_distribution<int> small(-60, 60);
  for (uint64_t n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<float> a = withSpecials(svtest::normal(n, rng), rng);
    const std::vector<float> b = withSpecials(svtest::normal(n, rng), rng);
    std::vector<float> sum(n);
    for (uint64_t i = 0; i < n; ++i) sum[i] = a[i] + b[i];
    DeviceArray<float> da(n, 1), db(n, 3);
    da.upload(a);
    db.upload(b);
    CUDA_OK(k::addInto(da.get(), db.get(), n, 4, true, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    // Any NaN for a NaN: the GPU returns its canonical NaN, the host the payload of an operand.
    const std::vector<float> got = da.download();
    for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBitsOrNaN(got[i], sum[i])) << i;
    EXPECT_TRUE(da.guardIntact());

    std::vector<int8_t> c8(n), d8(n), s8(n);
    std::vector<int16_t> c16(n), d16(n), s16(n);
    for (uint64_t i = 0; i < n; ++i) {
      c8[i] = static_cast<int8_t>(small(rng));
      d8[i] = static_cast<int8_t>(small(rng));
      s8[i] = static_cast<int8_t>(c8[i] + d8[i]);
      c16[i] = static_cast<int16_t>(small(rng) * 250);
      d16[i] = static_cast<int16_t>(small(rng) * 250);
      s16[i] = static_cast<int16_t>(c16[i] + d16[i]);
    }
    DeviceArray<int8_t> e8(n, 1), f8(n, 2);
    DeviceArray<int16_t> e16(n, 1), f16(n, 3);
    e8.upload(c8);
    f8.upload(d8);
    e16.upload(c16);
    f16.upload(d16);
    CUDA_OK(k::addInto(e8.get(), f8.get(), n, 1, false, nullptr));
    CUDA_OK(k::addInto(e16.get(), f16.get(), n, 2, false, nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_EQ(e8.download(), s8);
    EXPECT_EQ(e16.download(), s16);
    EXPECT_TRUE(e8.guardIntact());
    EXPECT_TRUE(e16.guardIntact());

    // Refusals, none of which may write: the sums above stay.
    for (uint64_t count : {uint64_t{0}, n}) {
      EXPECT_EQ(k::addInto(da.get(), db.get(), count, 2, true, nullptr), cudaErrorInvalidValue);
      EXPECT_EQ(k::addInto(da.get(), db.get(), count, 8, true, nullptr), cudaErrorInvalidValue);
      EXPECT_EQ(k::addInto(da.get(), db.get(), count, 4, false, nullptr), cudaErrorInvalidValue);
      EXPECT_EQ(k::addInto(e8.get(), f8.get(), count, 0, false, nullptr), cudaErrorInvalidValue);
    }
    if (n > 0) {
      EXPECT_EQ(k::addInto(nullptr, db.get(), n, 4, true, nullptr), cudaErrorInvalidValue);
      EXPECT_EQ(k::addInto(da.get(), nullptr, n, 4, true, nullptr), cudaErrorInvalidValue);
    }
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(svtest::sameBits(da.download(), got));
    EXPECT_EQ(e8.download(), s8);
  }
}

// The dense mean's division and the NaN fill of the exchange's end: the host's correctly
// rounded quotient where the gate is open or absent, nothing where it is closed; the fill only
// when asked; a missing array refused with nothing written.
TEST(VoteKernel, GatedDivisionAndNaNFill) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 25);
  for (uint64_t n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    const std::vector<float> sum = withSpecials(svtest::normal(n, rng, 1e3f), rng);
    const std::vector<float> before = svtest::normal(n, rng);
    const float w = 7.0f;  // no power of two: every quotient is rounded
    std::vector<float> mean(n);
    for (uint64_t i = 0; i < n; ++i) mean[i] = sum[i] / w;
    DeviceArray<float> dsum(n, n % 4), out(n, 1);
    DeviceArray<uint32_t> gate(1);
    dsum.upload(sum);
    for (int g : {-1, 1, 0}) {  // no gate, closed, open
      out.upload(before);
      gate.upload({g == 1 ? 1u : 0u});
      CUDA_OK(k::divideGated(dsum.get(), n, w, out.get(), g < 0 ? nullptr : gate.get(),
                             nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      const std::vector<float> got = out.download();
      for (uint64_t i = 0; i < n; ++i)
        ASSERT_TRUE(g == 1 ? svtest::sameBits(got[i], before[i])
                           : svtest::sameBitsOrNaN(got[i], mean[i]))
            << "gate " << g << ", " << i << ": " << got[i];
    }
    const std::vector<float> kept = out.download();
    if (n > 0) {
      EXPECT_EQ(k::divideGated(nullptr, n, w, out.get(), nullptr, nullptr),
                cudaErrorInvalidValue);
      EXPECT_EQ(k::divideGated(dsum.get(), n, w, nullptr, nullptr, nullptr),
                cudaErrorInvalidValue);
      EXPECT_EQ(k::fillNaNWhen(nullptr, n, gate.get(), nullptr), cudaErrorInvalidValue);
    }
    EXPECT_EQ(k::fillNaNWhen(out.get(), n, nullptr, nullptr), cudaErrorInvalidValue);
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(svtest::sameBits(out.download(), kept));

    gate.upload({0});
    CUDA_OK(k::fillNaNWhen(out.get(), n, gate.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(svtest::sameBits(out.download(), kept));
    gate.upload({1});
    CUDA_OK(k::fillNaNWhen(out.get(), n, gate.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    const float nan = std::numeric_limits<float>::quiet_NaN();  // 0x7FC00000
    EXPECT_TRUE(svtest::sameBits(out.download(), std::vector<float>(n, nan)));
    EXPECT_TRUE(out.guardIntact());
  }
}

TEST(VoteKernel, VotesCommitAndCleanCopy) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 23);
  for (uint64_t n : kSizes) {
    SCOPED_TRACE("n = " + std::to_string(n));
    std::vector<int32_t> votes(n);
    std::uniform_int_distribution<int> v(-3, 3);
    for (int32_t& x : votes) x = v(rng);
    std::vector<float> expect(n);
    ref::votesToOutput(votes.data(), n, expect.data());
    DeviceArray<int32_t> dv(n, 1);
    DeviceArray<float> out(n, 3);
    DeviceArray<uint32_t> gate(1);
    dv.upload(votes);
    gate.upload({0});
    CUDA_OK(k::votesToOutput(dv.get(), n, out.get(), gate.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> got = out.download();
    for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], expect[i])) << i;

    // s3gdCommit: open gate commits as the host does; a closed gate changes nothing.
    const std::vector<float> acc = withSpecials(svtest::normal(n, rng), rng);
    const uint64_t kk = n / 7;
    std::vector<uint32_t> sel(kk);
    ref::selectTopKByMagnitude(acc.data(), n, kk, sel.data());
    std::vector<float> residual(n);
    ref::s3gdCommit(acc.data(), sel.data(), kk, n, residual.data());
    DeviceArray<float> dacc(n, 2), dres(n, 1);
    DeviceArray<uint32_t> dsel(kk);
    dacc.upload(acc);
    dsel.upload(sel);
    const std::vector<float> before = svtest::normal(n, rng);
    dres.upload(before);
    gate.upload({1});
    CUDA_OK(k::s3gdCommit(dacc.get(), dsel.get(), kk, n, dres.get(), gate.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    got = dres.download();
    for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], before[i])) << i;
    gate.upload({0});
    CUDA_OK(k::s3gdCommit(dacc.get(), dsel.get(), kk, n, dres.get(), gate.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    got = dres.download();
    for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], residual[i])) << i;
    EXPECT_TRUE(dres.guardIntact());

    for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
      std::vector<float> clean(n);
      const bool nan = ref::cleanCopy(acc.data(), n, policy, clean.data());
      DeviceArray<unsigned long long> nans(1);
      nans.upload({0});
      CUDA_OK(k::cleanCopy(dacc.get(), n, policy, dres.get(), nans.get(), nullptr));
      CUDA_OK(cudaDeviceSynchronize());
      got = dres.download();
      for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], clean[i])) << i;
      EXPECT_EQ(nans.download()[0] != 0, nan);
      EXPECT_EQ(nans.download()[0], svtest::countNaN(clean));  // IGNORE leaves none
    }
    // Refused with nothing written: no counter (n = 0 too), no input, no output.
    const std::vector<float> kept = dres.download();
    DeviceArray<unsigned long long> nans(1);
    EXPECT_EQ(k::cleanCopy(dacc.get(), n, SV_NONFINITE_ERROR, dres.get(), nullptr, nullptr),
              cudaErrorInvalidValue);
    if (n > 0) {
      EXPECT_EQ(k::cleanCopy(nullptr, n, SV_NONFINITE_ERROR, dres.get(), nans.get(), nullptr),
                cudaErrorInvalidValue);
      EXPECT_EQ(k::cleanCopy(dacc.get(), n, SV_NONFINITE_ERROR, nullptr, nans.get(), nullptr),
                cudaErrorInvalidValue);
    }
    CUDA_OK(cudaDeviceSynchronize());
    EXPECT_TRUE(svtest::sameBits(dres.download(), kept));
  }
}

}  // namespace
