// Bit-plane steps of the voting formats against per-element models.
#include "common.h"
#include "reference/schemes.h"

namespace {

using namespace signvote::ref;

TEST(Planes, PackVoteUnpackMatchesElementwiseVote) {
  std::mt19937_64 rng(svtest::testSeed());
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (svVote_t vote : {SV_VOTE_TERNARY, SV_VOTE_BINARY}) {
    for (int W : {1, 2, 3, 4, 7, 8, 16}) {
      for (uint64_t n : {1ull, 63ull, 64ull, 65ull, 1000ull}) {
        const uint64_t chunkWords = ((n + 63) / 64 + W - 1) / W, planes = vote == SV_VOTE_BINARY ? 1 : 2;
        std::vector<std::vector<float>> g(W);
        std::vector<std::vector<uint64_t>> sent(W, std::vector<uint64_t>(W * planes * chunkWords));
        for (int r = 0; r < W; ++r) {
          g[r] = svtest::ties(n, rng);
          EXPECT_FALSE(packSigns(g[r].data(), n, vote, chunkWords, W, SV_NONFINITE_ERROR,
                                 sent[r].data()));
        }
        // Owner o receives block o of every rank, votes, and everyone unpacks all results.
        std::vector<uint64_t> all(W * planes * chunkWords);
        for (int o = 0; o < W; ++o) {
          std::vector<uint64_t> recv(W * planes * chunkWords);
          for (int s = 0; s < W; ++s)
            std::copy_n(sent[s].begin() + o * planes * chunkWords, planes * chunkWords,
                        recv.begin() + s * planes * chunkWords);
          ASSERT_TRUE(voteSignPlanes(recv.data(), vote, chunkWords, W,
                                     all.data() + o * planes * chunkWords));
        }
        std::vector<float> out(n);
        ASSERT_TRUE(planesToOutput(all.data(), planes, chunkWords, n, out.data()));
        for (uint64_t i = 0; i < n; ++i) {
          int pos = 0, neg = 0;
          for (int r = 0; r < W; ++r) {
            if (g[r][i] < 0) ++neg;
            else if (g[r][i] > 0 || vote == SV_VOTE_BINARY) ++pos;
          }
          const float expect = vote == SV_VOTE_BINARY ? (neg > pos ? -1.0f : 1.0f)
                                                      : static_cast<float>((pos > neg) - (neg > pos));
          ASSERT_TRUE(svtest::sameBits(out[i], expect)) << "W " << W << " n " << n << " i " << i;
        }
      }
    }
  }
}

TEST(Planes, MalformedTernaryPlanesAreRejected) {
  // A negative bit without its nonzero bit.
  std::vector<uint64_t> recv = {0x0, 0x1};
  std::vector<uint64_t> result(2);
  EXPECT_FALSE(voteSignPlanes(recv.data(), SV_VOTE_TERNARY, 1, 1, result.data()));
  std::vector<float> out(10);
  EXPECT_FALSE(planesToOutput(recv.data(), 2, 1, 10, out.data()));
  // Counts outside [-W, W].
  std::vector<int8_t> counts(64, 0);
  counts[5] = 3;
  std::vector<uint64_t> planes(2);
  EXPECT_FALSE(countsToPlanes(counts.data(), 1, 1, 2, planes.data()));
  counts[5] = -2;
  ASSERT_TRUE(countsToPlanes(counts.data(), 1, 1, 2, planes.data()));
  EXPECT_EQ(planes[0], uint64_t{1} << 5);
  EXPECT_EQ(planes[1], uint64_t{1} << 5);
}

}  // namespace

namespace {

// LIEC's compressor C(x) = (||x||_1 / len) sign(x) is a contraction:
// ||C(x) - x||^2 <= (1 - ||x||_1^2 / (len ||x||^2)) ||x||^2 (checked in double with a float32
// rounding allowance), on normal, tie-heavy and sparse chunks of edge lengths.
TEST(ChunkSigns, ScaledSignIsAContraction) {
  std::mt19937_64 rng(svtest::testSeed() + 5);
  for (uint64_t len : {1ull, 2ull, 31ull, 64ull, 97ull, 1000ull, 4096ull}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> x = kind == 1 ? svtest::ties(len, rng) : svtest::normal(len, rng);
      if (kind == 2)
        for (uint64_t i = 0; i < len; ++i)
          if (rng() % 10) x[i] = 0.0f;
      const uint64_t words = (len + 63) / 64;
      std::vector<uint64_t> msg(chunkSignsWords(words));
      chunkSignsEncode(x.data(), len, words, msg.data());
      ASSERT_TRUE(chunkSignsValid(msg.data(), len, words));
      double l1 = 0, l2 = 0, err = 0;
      for (uint64_t i = 0; i < len; ++i) {
        l1 += std::fabs(x[i]);
        l2 += double(x[i]) * x[i];
        const double d = double(chunkSignsValue(msg.data(), words, i)) - x[i];
        err += d * d;
      }
      const double bound = l2 == 0 ? 0 : (1 - l1 * l1 / (len * l2)) * l2;
      EXPECT_LE(err, bound + 1e-5 * l2) << "len " << len << ", kind " << kind;
    }
  }
}

// A message with a bit past its length, a negative bit without its nonzero bit, a negative
// scale or anything in the scale word's high half is refused.
TEST(ChunkSigns, MalformedMessagesAreRefused) {
  std::mt19937_64 rng(svtest::testSeed() + 6);
  const uint64_t len = 70, words = 2;
  std::vector<float> x = svtest::normal(len, rng);
  x[5] = 0.0f;
  std::vector<uint64_t> good(chunkSignsWords(words));
  chunkSignsEncode(x.data(), len, words, good.data());
  ASSERT_TRUE(chunkSignsValid(good.data(), len, words));
  auto bad = [&](uint64_t word, uint64_t bits) {
    std::vector<uint64_t> m = good;
    m[word] ^= bits;
    return !chunkSignsValid(m.data(), len, words);
  };
  EXPECT_TRUE(bad(1, uint64_t{1} << 6));                     // element 70: past len
  EXPECT_TRUE(bad(words, uint64_t{1} << 5));                 // element 5 (zero): negative only
  EXPECT_TRUE(bad(2 * words, uint64_t{1} << 31));           // negative scale
  EXPECT_TRUE(bad(2 * words, uint64_t{1} << 40));           // high half
}

}  // namespace
