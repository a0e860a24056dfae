// The kernels' per-word logic (kernels/logic.h) run on the host against lib/reference. These
// are the exact functions the CUDA kernels call, so this suite checks every bit manipulation of
// the GPU path in CI, where no GPU exists; the GPU suites (tests/kernel) check the parallel
// composition on a device.
#include <cstring>
#include <limits>

#include "common.h"
#include "logic.h"
#include "reference/schemes.h"
#include "reference/sparse_record.h"
#include "reference/topk.h"

namespace {

namespace ref = signvote::ref;
namespace logic = signvote::kernels::logic;

// The radix select and stable gather of kernels/topk/topk.cu, serialised: the pass-0
// histogram and its chosen bin by isChosenBin (exactly one must qualify), the candidate list
// (onCandidateList, kept when it fits in candidateListCap), passes 1 and 2 over the view (the
// list, or every key), then per-tile class sums over the view's positions, their exclusive
// prefix and gatherSlot per position. *listed: whether the list was kept.
std::vector<uint32_t> simulatedTopK(const std::vector<float>& x, uint64_t k, uint64_t tile,
                                    bool* listed = nullptr) {
  const uint64_t n = x.size();
  std::vector<uint32_t> keys(n), view;
  for (uint64_t i = 0; i < n; ++i) keys[i] = ref::magnitudeKey(x[i]);
  uint32_t prefix = 0, mask = 0, need = static_cast<uint32_t>(k);
  for (int pass = 0; pass < 3; ++pass) {
    const logic::PassSpec p = logic::passSpec(pass);
    const uint32_t nbins = 1u << p.bits;
    std::vector<uint32_t> hist(nbins);
    for (uint64_t j = 0; j < (pass == 0 ? n : view.size()); ++j) {
      const uint32_t u = keys[pass == 0 ? j : view[j]];
      if ((u & mask) == prefix) ++hist[(u >> p.shift) & (nbins - 1)];
    }
    uint32_t above = 0, winners = 0, chosen = 0, newNeed = 0;
    for (uint32_t q = 0; q < nbins; ++q) {  // from the top digit down, as the scan does
      const uint32_t d = nbins - 1 - q;
      if (logic::isChosenBin(above, hist[d], need)) {
        ++winners;
        chosen = d;
        newNeed = need - above;
      }
      above += hist[d];
    }
    EXPECT_EQ(winners, 1u) << "pass " << pass;
    prefix |= chosen << p.shift;
    mask |= (nbins - 1) << p.shift;
    need = newNeed;
    if (pass == 0) {
      for (uint64_t i = 0; i < n; ++i)
        if (logic::onCandidateList(keys[i], prefix, mask)) view.push_back(static_cast<uint32_t>(i));
      const bool kept = view.size() <= logic::candidateListCap(n);
      if (listed) *listed = kept;
      if (!kept) {
        view.resize(n);
        for (uint64_t i = 0; i < n; ++i) view[i] = static_cast<uint32_t>(i);
      }
    }
  }
  const uint32_t vstar = prefix;
  const uint64_t len = view.size(), tiles = (len + tile - 1) / tile;
  std::vector<uint64_t> tileSum(tiles), tilePrefix(tiles);
  for (uint64_t j = 0; j < len; ++j) tileSum[j / tile] += logic::classify(keys[view[j]], vstar);
  for (uint64_t t = 1; t < tiles; ++t) tilePrefix[t] = tilePrefix[t - 1] + tileSum[t - 1];
  std::vector<uint32_t> sel(k, 0xFFFFFFFFu);
  std::vector<int> hits(k);
  for (uint64_t t = 0; t < tiles; ++t) {
    uint64_t before = tilePrefix[t];
    for (uint64_t j = t * tile; j < std::min(len, (t + 1) * tile); ++j) {
      const uint64_t cls = logic::classify(keys[view[j]], vstar);
      const uint64_t slot = logic::gatherSlot(cls, before, need, k);
      if (slot < k) {
        sel[slot] = view[j];
        ++hits[slot];
      }
      before += cls;
    }
  }
  for (uint64_t j = 0; j < k; ++j) EXPECT_EQ(hits[j], 1) << "slot " << j;
  return sel;
}

TEST(KernelLogic, RadixSelectAndStableGatherMatchTheReference) {
  std::mt19937_64 rng(svtest::testSeed() + 30);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  int listedRuns = 0, fullRuns = 0;
  for (uint64_t n : {1u, 2u, 31u, 32u, 33u, 100u, 4095u, 4096u, 4097u, 7919u, 65537u}) {
    for (int data = 0; data < 3; ++data) {
      std::vector<float> x = data == 0 ? svtest::normal(n, rng) : svtest::ties(n, rng);
      if (data == 2)
        for (size_t i = 0; i < n; i += 7)
          x[i] = (i % 3 == 0)   ? std::numeric_limits<float>::infinity()
                 : (i % 3 == 1) ? std::numeric_limits<float>::quiet_NaN()
                                : -0.0f;
      for (uint64_t k : {uint64_t{1}, n / 2, n - 1, n, (n + 99) / 100}) {
        if (k == 0 || k > n) continue;
        SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k) + ", data " +
                     std::to_string(data));
        std::vector<uint32_t> expect(k);
        ref::selectTopKByMagnitude(x.data(), n, k, expect.data());
        for (uint64_t tile : {uint64_t{64}, uint64_t{4096}}) {
          bool listed = false;
          ASSERT_EQ(simulatedTopK(x, k, tile, &listed), expect) << "tile " << tile;
          ++(listed ? listedRuns : fullRuns);
        }
      }
    }
  }
  EXPECT_GT(listedRuns, 0);  // both views were exercised
  EXPECT_GT(fullRuns, 0);
}

// The list is what makes the device's top-K read acc twice instead of four times: for
// gradient-like data at the densities users run it must fit, and where it cannot (most keys
// tie at the K-th value, or K is most of N) the run over every key still selects exactly.
TEST(KernelLogic, CandidateListFitsForGradientsAndFallsBackOnTies) {
  std::mt19937_64 rng(svtest::testSeed() + 31);
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  const uint64_t n = 1u << 16;
  for (double density : {0.001, 0.01, 0.1}) {
    for (float sigma : {1e-4f, 1.0f, 3e3f}) {
      const std::vector<float> g = svtest::normal(n, rng, sigma);
      const uint64_t k = static_cast<uint64_t>(density * n);
      std::vector<uint32_t> expect(k);
      ref::selectTopKByMagnitude(g.data(), n, k, expect.data());
      bool listed = false;
      EXPECT_EQ(simulatedTopK(g, k, 4096, &listed), expect);
      EXPECT_TRUE(listed) << "density " << density << ", sigma " << sigma;
    }
  }
  std::vector<float> zeros(n, 0.0f);  // a frozen layer: every key ties at v* = 0
  for (size_t i = 0; i < n; i += 97) zeros[i] = svtest::normal(1, rng)[0];
  for (uint64_t k : {n / 50, n / 2}) {
    std::vector<uint32_t> expect(k);
    ref::selectTopKByMagnitude(zeros.data(), n, k, expect.data());
    bool listed = true;
    EXPECT_EQ(simulatedTopK(zeros, k, 4096, &listed), expect);
    EXPECT_FALSE(listed) << "k = " << k;
  }
}

struct HostRecord {
  ref::SparseLayout layout;
  std::vector<uint32_t> entries;
  std::vector<uint8_t> neg;
  std::vector<uint64_t> payload;
  uint64_t m = 0;
};

HostRecord makeRecord(uint64_t n, uint64_t k, std::mt19937_64& rng) {
  HostRecord r;
  r.layout = ref::sparseLayout(n, k);
  std::vector<float> acc = svtest::normal(n, rng);
  for (uint64_t i = 0; i < n; i += 13) acc[i] = 0.0f;  // selected zeros are not sent
  std::vector<uint32_t> sel(k);
  ref::selectTopKByMagnitude(acc.data(), n, k, sel.data());
  r.entries.resize(k);
  r.neg.resize(k);
  r.payload.resize(r.layout.payloadWords());
  r.m = ref::s3gdEncodeSparse(r.layout, acc.data(), sel.data(), r.entries.data(), r.neg.data(),
                              r.payload.data());
  return r;
}

const std::pair<uint64_t, uint64_t> kRecordCases[] = {
    {1, 1}, {2, 1}, {31, 5}, {32, 32}, {33, 1}, {64, 63}, {65, 64}, {100, 3}, {1000, 10},
    {4097, 41}, {7919, 792}, {65537, 655}, {65537, 65536}, {(1u << 20) + 1, 10486}};

TEST(KernelLogic, EncodeWordsGiveTheReferencePayload) {
  std::mt19937_64 rng(svtest::testSeed() + 31);
  for (auto [n, k] : kRecordCases) {
    SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k));
    const HostRecord r = makeRecord(n, k, rng);
    const ref::SparseLayout& L = r.layout;
    for (uint64_t w = 0; w < L.payloadWords(); ++w) {
      uint64_t word;
      if (w < L.signWords)
        word = logic::signWord(w, r.m, [&](uint64_t j) { return r.neg[j] != 0; });
      else if (w < L.signWords + L.lowWords)
        word = logic::lowWord(w - L.signWords, r.m, L.lowBits, r.entries.data());
      else
        word = logic::highWord(w - L.signWords - L.lowWords, r.m, L.lowBits, r.entries.data());
      ASSERT_EQ(word, r.payload[w]) << "word " << w;
    }
  }
}

// decodeSparse as addSparseVotes composes it on the GPU: entry numbers from a prefix sum of
// popcounts, decodeHighWord per word, paddingOk per word, bit count == entries.
bool simulatedDecode(const ref::SparseLayout& L, const std::vector<uint64_t>& payload,
                     uint64_t entries, std::vector<int32_t>* votes) {
  const ref::SparseLayout& s = L;
  if (entries > L.k) return false;
  bool ok = true;
  uint64_t j = 0;
  const uint64_t* high = payload.data() + L.signWords + L.lowWords;
  for (uint64_t w = 0; w < L.highWords; ++w) {
    ok &= logic::decodeHighWord(s, payload.data(), entries, w, j,
                                [&](uint64_t index, bool negative) {
                                  (*votes)[index] += negative ? -1 : 1;
                                });
    j += logic::popcount64(high[w]);
  }
  for (uint64_t w = 0; w < L.payloadWords(); ++w) ok &= logic::paddingOk(s, entries, w, payload[w]);
  return ok && j == entries;
}

TEST(KernelLogic, DecodeAgreesWithTheReferenceOnValidAndCorruptRecords) {
  std::mt19937_64 rng(svtest::testSeed() + 32);
  int rejected = 0, trials = 0;
  for (auto [n, k] : kRecordCases) {
    const HostRecord r = makeRecord(n, k, rng);
    const ref::SparseLayout& L = r.layout;
    for (int t = 0; t < 40; ++t) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k) + ", trial " +
                   std::to_string(t));
      std::vector<uint64_t> p = r.payload;
      uint64_t entries = r.m;
      if (t > 0) {  // trial 0 is the valid record
        std::uniform_int_distribution<size_t> word(0, p.size() - 1);
        const size_t w = word(rng);
        if (t % 5 == 0) p[w] = rng();
        else p[w] ^= uint64_t{1} << (rng() % 64);
        if (t % 7 == 3) entries += (t & 1) ? 1 : -1;
        if (t % 11 == 4) std::swap(p[w], p[word(rng)]);
      }
      std::vector<int32_t> expect(n), got(n);
      const bool hostOk = ref::decodeSparse(L, p.data(), entries, [&](uint64_t i, bool neg) {
        expect[i] += neg ? -1 : 1;
      });
      const bool gpuOk = simulatedDecode(L, p, entries, &got);
      ASSERT_EQ(gpuOk, hostOk);
      if (hostOk) {
        ASSERT_EQ(got, expect);
      }
      ++trials;
      rejected += !hostOk;
    }
  }
  EXPECT_GT(rejected, trials / 2);
}

TEST(KernelLogic, BitSlicedVoteMatchesTheReferenceForEveryWorldSize) {
  std::mt19937_64 rng(svtest::testSeed() + 33);
  std::vector<int> worlds;
  for (int W = 1; W <= 16; ++W) worlds.push_back(W);
  for (int W : {31, 32, 33, 63, 64, 127, 128, 255, 1000, 4095, 4096}) worlds.push_back(W);
  for (int W : worlds) {
    for (bool ternary : {false, true}) {
      SCOPED_TRACE("W = " + std::to_string(W) + (ternary ? " ternary" : " binary"));
      const unsigned planes = ternary ? 2 : 1;
      const uint64_t cw = 3;
      std::vector<uint64_t> recv(W * planes * cw);
      for (int s = 0; s < W; ++s)
        for (uint64_t w = 0; w < cw; ++w) {
          uint64_t* b = recv.data() + s * planes * cw;
          // Word 0: uniform bits; word 1: mostly negative; word 2: mostly abstaining.
          const uint64_t a = rng(), c = rng();
          b[w] = w == 1 ? (a | c) : w == 2 ? (a & c) : a;
          if (ternary) {
            b[w] = w == 2 ? (a & c) : (a | c);
            b[cw + w] = b[w] & (w == 1 ? (rng() | rng()) : rng());
          }
        }
      std::vector<uint64_t> expect(planes * cw);
      ASSERT_TRUE(ref::voteSignPlanes(recv.data(), ternary ? SV_VOTE_TERNARY : SV_VOTE_BINARY,
                                      cw, W, expect.data()));
      for (uint64_t w = 0; w < cw; ++w) {
        uint64_t out[2];
        const uint64_t corrupt = logic::voteWord(W, ternary, [&](int s, unsigned plane) {
          return recv[(uint64_t(s) * planes + plane) * cw + w];
        }, out);
        EXPECT_EQ(corrupt, 0u);
        EXPECT_EQ(out[0], expect[w]) << "word " << w;
        if (ternary) {
          EXPECT_EQ(out[1], expect[cw + w]) << "word " << w;
        }
      }
    }
  }
}

TEST(KernelLogic, CorruptTernaryPlanesAreReported) {
  uint64_t planes[2 * 3] = {};  // W = 3, one word per plane per rank
  planes[2 * 1 + 1] = 0x10;     // rank 1: negative bit 4 without its nonzero bit
  uint64_t out[2];
  const uint64_t corrupt = logic::voteWord(3, true, [&](int s, unsigned plane) {
    return planes[2 * s + plane];
  }, out);
  EXPECT_EQ(corrupt, 0x10u);
}

TEST(KernelLogic, CountsWordMatchesTheReference) {
  std::mt19937_64 rng(svtest::testSeed() + 34);
  for (int W : {1, 2, 7, 127, 128, 4096}) {
    std::uniform_int_distribution<int> d(-W, W);
    std::vector<int16_t> c16(64);
    std::vector<int8_t> c8(64);
    for (int i = 0; i < 64; ++i) {
      c16[i] = static_cast<int16_t>(d(rng));
      c8[i] = static_cast<int8_t>(std::max(-127, std::min(127, static_cast<int>(c16[i]))));
    }
    uint64_t expect[2], nz, neg;
    ASSERT_TRUE(ref::countsToPlanes(c16.data(), 2, 1, W, expect));
    ASSERT_TRUE(logic::countsWord(c16.data(), W, &nz, &neg));
    EXPECT_EQ(nz, expect[0]);
    EXPECT_EQ(neg, expect[1]);
    if (W <= 127) {
      ASSERT_TRUE(ref::countsToPlanes(c8.data(), 1, 1, W, expect));
      ASSERT_TRUE(logic::countsWord(c8.data(), W, &nz, &neg));
      EXPECT_EQ(nz, expect[0]);
      EXPECT_EQ(neg, expect[1]);
      c8[17] = static_cast<int8_t>(-W - 1);
      EXPECT_EQ(logic::countsWord(c8.data(), W, &nz, &neg),
                ref::countsToPlanes(c8.data(), 1, 1, W, expect));
      EXPECT_FALSE(logic::countsWord(c8.data(), W, &nz, &neg));
    }
  }
}

// s3gdPlanes as the kernel composes it: zeroed planes, then each word written by its leading
// entry, over selections with dense runs, isolated entries, the last word of a padded world and
// values that cast no vote (+-0.0, NaN).
TEST(KernelLogic, SelectionWordsGiveTheReferencePlanes) {
  std::mt19937_64 rng(svtest::testSeed() + 35);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f, -0.0f, nan, inf, -inf, 1.0f, -1.0f};
  for (int W : {1, 2, 3, 13}) {
    for (uint64_t n : {1ull, 31ull, 64ull, 65ull, 1000ull, 4099ull}) {
      const uint64_t cw = (((n + 63) / 64) + W - 1) / W;
      for (double density : {0.0, 0.01, 0.3, 1.0}) {
        std::vector<float> acc(n);
        for (float& x : acc)
          x = rng() % 4 == 0 ? special[rng() % 7] : std::ldexp(float(rng() % 1000) - 500.0f, -7);
        std::vector<uint32_t> sel;
        for (uint64_t i = 0; i < n; ++i)
          if (std::uniform_real_distribution<double>(0, 1)(rng) < density) sel.push_back(i);
        const uint64_t k = sel.size();
        std::vector<uint64_t> expect(W * 2 * cw), got(W * 2 * cw, 0);
        ref::s3gdPlanes(acc.data(), sel.data(), k, cw, W, expect.data());
        for (uint64_t j = 0; j < k; ++j) {
          if (!logic::leadsWord(sel.data(), j)) continue;
          uint64_t nz, neg;
          const uint64_t word = logic::selectionWord(acc.data(), sel.data(), k, j, &nz, &neg);
          ASSERT_EQ(word, sel[j] >> 6);
          uint64_t* block = got.data() + word / cw * 2 * cw;
          ASSERT_EQ(block[word % cw] | block[cw + word % cw], 0u) << "word written twice";
          block[word % cw] = nz;
          block[cw + word % cw] = neg;
        }
        EXPECT_EQ(got, expect) << "W " << W << " n " << n << " density " << density;
      }
    }
  }
}

// ef_sign's scale as the kernels cut it: tiles of kTreeTile values summed by the tree, then the
// tile sums the same way, level after level, equal the host's one tree over the whole bucket
// (zero padding inside a tile adds +0.0). Exponents spread over 2^60 so that any other
// grouping of the adds would round differently.
TEST(KernelLogic, TiledTreeLevelsGiveThePairwiseSum) {
  std::mt19937_64 rng(svtest::testSeed() + 36);
  std::uniform_int_distribution<int> ex(-30, 30);
  for (uint64_t n : {1ull, 2047ull, 2048ull, 2049ull, 6145ull, 4194304ull, 4194305ull}) {
    std::vector<float> x(n);
    for (float& v : x) v = std::ldexp(1.0f + float(rng() % 4096) / 4096.0f, ex(rng)) *
                           (rng() % 2 ? -1.0f : 1.0f);
    if (n > 3) x[n / 2] = std::numeric_limits<float>::denorm_min();
    std::vector<float> level = x;
    do {
      std::vector<float> next(logic::treeTiles(level.size()));
      for (uint64_t t = 0; t < next.size(); ++t) {
        std::vector<float> tile(logic::kTreeTile, 0.0f);
        for (uint64_t j = 0; j < logic::kTreeTile && t * logic::kTreeTile + j < level.size(); ++j)
          tile[j] = level[t * logic::kTreeTile + j];
        next[t] = ref::pairwiseAbsSum(tile.data(), tile.size());
      }
      level = next;
    } while (level.size() > 1);
    EXPECT_TRUE(svtest::sameBits(level[0], ref::pairwiseAbsSum(x.data(), n))) << n;
  }
}

TEST(KernelLogic, ScaledWordChecksMatchTheReference) {
  std::mt19937_64 rng(svtest::testSeed() + 37);
  for (uint64_t n : {1ull, 63ull, 64ull, 65ull, 200ull}) {
    const uint64_t words = (n + 63) / 64;
    for (int trial = 0; trial < 200; ++trial) {
      std::vector<uint64_t> planes(2 * words);
      for (uint64_t w = 0; w < words; ++w) {
        planes[w] = rng();
        planes[words + w] = planes[w] & rng();
        if (trial % 3 == 0) planes[words + w] |= rng() & rng() & rng();  // stray negatives
      }
      if (trial % 2 == 0 && n % 64 != 0)  // no bits past n, except now and then
        for (uint64_t* p : {&planes[words - 1], &planes[2 * words - 1]})
          *p &= (trial % 4 == 0) ? ~uint64_t{0} : (uint64_t{1} << (n % 64)) - 1;
      bool ok = true;
      for (uint64_t w = 0; w < words; ++w)
        ok &= logic::scaledWordOk(planes[w], planes[words + w], w, n);
      EXPECT_EQ(ok, ref::scaledPlanesValid(planes.data(), n)) << n << " " << trial;
    }
  }
}

}  // namespace

namespace {

// A sparse-values record (topk_ef, dgs) of random values with zeros, -0.0 and +-inf among them.
struct ValuesRecord {
  HostRecord r;
  std::vector<float> acc;
  std::vector<uint64_t> values;
};

ValuesRecord makeValuesRecord(uint64_t n, uint64_t k, std::mt19937_64& rng) {
  ValuesRecord v;
  v.r.layout = ref::sparseLayout(n, k);
  v.acc = svtest::normal(n, rng);
  for (uint64_t i = 0; i < n; i += 13) v.acc[i] = (i % 26 == 0) ? 0.0f : -0.0f;
  for (uint64_t i = 5; i < n; i += 97)
    v.acc[i] = (i & 1 ? -1.0f : 1.0f) * std::numeric_limits<float>::infinity();
  std::vector<uint32_t> sel(k);
  ref::selectTopKByMagnitude(v.acc.data(), n, k, sel.data());
  v.r.entries.resize(k);
  v.r.neg.resize(k);
  v.r.payload.resize(v.r.layout.payloadWords());
  v.r.m = ref::s3gdEncodeSparse(v.r.layout, v.acc.data(), sel.data(), v.r.entries.data(),
                                v.r.neg.data(), v.r.payload.data());
  v.values.resize((k + 1) / 2);
  ref::encodeValues(v.acc.data(), v.r.entries.data(), v.r.m, k, v.values.data());
  return v;
}

// sumSparseValues' checks as the kernels compose them: decodeHighWord with valueAgrees per
// entry (numbered from the popcount prefix), paddingOk and valuesPaddingOk per word, the bit
// count; then, for a valid record, the adds in entry order.
bool simulatedValues(const ref::SparseLayout& L, const std::vector<uint64_t>& payload,
                     const std::vector<uint64_t>& values, uint64_t entries,
                     std::vector<float>* sums) {
  if (entries > L.k) return false;
  bool ok = true;
  uint64_t j = 0;
  const uint64_t* high = payload.data() + L.signWords + L.lowWords;
  std::vector<std::pair<uint64_t, float>> adds;
  for (uint64_t w = 0; w < L.highWords; ++w) {
    uint64_t e = j;
    ok &= logic::decodeHighWord(L, payload.data(), entries, w, j, [&](uint64_t index, bool neg) {
      const uint32_t bits = logic::valueBits(values.data(), e++);
      ok &= logic::valueAgrees(bits, neg);
      float x;
      std::memcpy(&x, &bits, 4);
      adds.emplace_back(index, x);
    });
    j += logic::popcount64(high[w]);
  }
  for (uint64_t w = 0; w < L.payloadWords(); ++w) ok &= logic::paddingOk(L, entries, w, payload[w]);
  for (uint64_t w = 0; w < values.size(); ++w)
    ok &= logic::valuesPaddingOk(w, entries, values[w]);
  if (!ok || j != entries) return false;
  for (auto [index, x] : adds) (*sums)[index] += x;
  return true;
}

TEST(KernelLogic, ValuesWordsGiveTheReferenceArray) {
  std::mt19937_64 rng(svtest::testSeed() + 38);
  for (auto [n, k] : kRecordCases) {
    SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k));
    const ValuesRecord v = makeValuesRecord(n, k, rng);
    for (uint64_t w = 0; w < v.values.size(); ++w) {
      const uint64_t word = logic::valuesWord(w, v.r.m, [&](uint64_t j) {
        uint32_t bits;
        std::memcpy(&bits, &v.acc[v.r.entries[j]], 4);
        return bits;
      });
      ASSERT_EQ(word, v.values[w]) << "word " << w;
    }
  }
}

TEST(KernelLogic, ValuesChecksAndSumsAgreeWithTheReference) {
  std::mt19937_64 rng(svtest::testSeed() + 39);
  int rejected = 0, trials = 0;
  for (auto [n, k] : kRecordCases) {
    const ValuesRecord v = makeValuesRecord(n, k, rng);
    const ref::SparseLayout& L = v.r.layout;
    for (int t = 0; t < 40; ++t) {
      SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k) + ", trial " +
                   std::to_string(t));
      std::vector<uint64_t> p = v.r.payload, values = v.values;
      uint64_t entries = v.r.m;
      if (t > 0) {  // trial 0 is the valid record
        std::uniform_int_distribution<size_t> value(0, values.size() - 1);
        const size_t w = value(rng);
        switch (t % 6) {
          case 0: values[w] ^= uint64_t{1} << 31; break;                 // a sign
          case 1: values[w] ^= uint64_t{1} << 63; break;                 // the other sign
          case 2: values[w] &= 0xFFFFFFFF00000000ull; break;             // a zero value
          case 3: values[values.size() - 1] |= uint64_t{1} << 62; break; // padding
          case 4: p[rng() % p.size()] ^= uint64_t{1} << (rng() % 64); break;
          default: entries += (t & 1) ? 1 : -1; break;
        }
      }
      const bool hostOk = ref::sparseValuesValid(L, p.data(), entries, values.data());
      std::vector<float> got(n, 0.0f);
      ASSERT_EQ(simulatedValues(L, p, values, entries, &got), hostOk);
      if (hostOk) {
        std::vector<float> expect(n, 0.0f);
        ref::addSparseValues(L, p.data(), entries, values.data(), expect.data());
        ASSERT_TRUE(svtest::sameBits(got, expect));
      }
      ++trials;
      rejected += !hostOk;
    }
  }
  EXPECT_GT(rejected, trials / 2);
}

}  // namespace

namespace {

TEST(KernelLogic, ChunkSignsWordsMatchTheReference) {
  std::mt19937_64 rng(svtest::testSeed() + 40);
  for (uint64_t chunkWords : {1ull, 2ull, 5ull})
    for (uint64_t len : {uint64_t{0}, uint64_t{1}, uint64_t{63}, uint64_t{64}, uint64_t{65},
                         64 * chunkWords - 1, 64 * chunkWords}) {
      if (len > 64 * chunkWords) continue;
      for (int trial = 0; trial < 100; ++trial) {
        std::vector<uint64_t> msg(2 * chunkWords + 1);
        const std::vector<float> x = svtest::ties(len, rng);
        ref::chunkSignsEncode(x.data(), len, chunkWords, msg.data());
        if (trial % 2 == 1) {  // corrupt a plane or the scale now and then
          const size_t w = rng() % msg.size();
          msg[w] ^= uint64_t{1} << (rng() % 64);
        }
        bool ok = (msg[2 * chunkWords] >> 31) == 0;
        for (uint64_t w = 0; w < chunkWords; ++w)
          ok &= logic::chunkWordOk(msg[w], msg[chunkWords + w], w, len);
        EXPECT_EQ(ok, ref::chunkSignsValid(msg.data(), len, chunkWords)) << len << " " << trial;
        float scale;
        const auto bits = static_cast<uint32_t>(msg[2 * chunkWords]);
        std::memcpy(&scale, &bits, 4);
        for (uint64_t e = 0; e < 64 * chunkWords; ++e)
          ASSERT_TRUE(svtest::sameBits(
              logic::planeValue(msg[e >> 6], msg[chunkWords + (e >> 6)], e & 63, scale),
              ref::chunkSignsValue(msg.data(), chunkWords, e)));
      }
    }
}

}  // namespace
