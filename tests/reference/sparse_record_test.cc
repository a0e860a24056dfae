// The Elias-Fano sparse record: round trips, the size formula, and rejection of malformed input.
#include <cmath>

#include "common.h"
#include "reference/sparse_record.h"

namespace {

using signvote::ref::decodeSparse;
using signvote::ref::encodeSparse;
using signvote::ref::SparseLayout;
using signvote::ref::sparseLayout;

struct Coded {
  std::vector<uint32_t> idx;
  std::vector<uint8_t> neg;
};

// A uniform random subset of [0, n) of the given size, in increasing order (selection
// sampling: keep i with probability still-needed / still-left).
Coded randomSet(uint64_t n, uint64_t entries, std::mt19937_64& rng) {
  Coded c;
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (uint64_t i = 0; i < n && c.idx.size() < entries; ++i)
    if (u(rng) * static_cast<double>(n - i) < static_cast<double>(entries - c.idx.size()))
      c.idx.push_back(static_cast<uint32_t>(i));
  c.neg.resize(c.idx.size());
  for (auto& b : c.neg) b = rng() & 1;
  return c;
}

std::vector<uint64_t> encode(const SparseLayout& l, const Coded& c) {
  std::vector<uint64_t> p(l.payloadWords() + 1, 0x5A5A5A5A5A5A5A5Aull);  // guard word
  encodeSparse(l, c.idx.data(), c.neg.data(), c.idx.size(), p.data());
  EXPECT_EQ(p.back(), 0x5A5A5A5A5A5A5A5Aull) << "wrote past the payload";
  p.pop_back();
  return p;
}

TEST(SparseRecord, SizeFormula) {
  for (uint64_t n : std::vector<uint64_t>{1, 2, 33, 1000, 1u << 20, 134217728, 4294967295}) {
    for (uint64_t k : std::vector<uint64_t>{0, 1, 7, n / 100, n / 2, n}) {
      if (k > n) continue;
      const SparseLayout l = sparseLayout(n, k);
      SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k));
      if (k == 0) {
        EXPECT_EQ(l.recordBytes(), 64u);
        continue;
      }
      // L = floor(log2(floor(n / k))) when n > k, computed here without bit tricks.
      unsigned L = 0;
      if (n > k)
        while ((uint64_t{2} << L) <= n / k) ++L;
      EXPECT_EQ(l.lowBits, L);
      EXPECT_EQ(l.highBits, k + ((n - 1) >> L) + 1);
      const uint64_t words = (k + 63) / 64 + (k * L + 63) / 64 + (l.highBits + 63) / 64;
      EXPECT_EQ(l.recordBytes(), 64 + 8 * words);
      // The documented bound: about K * (3 + log2(N/K)) bits plus word padding.
      const double payloadBits = 64.0 * l.payloadWords();
      EXPECT_LE(payloadBits, k * (3.0 + std::log2(static_cast<double>(n) / k)) + 3 * 64);
    }
  }
  // The design's example: N = 2^27, K = 1%: under 10 bits per kept coordinate with the header.
  const SparseLayout l = sparseLayout(134217728ull, 1342178ull);
  EXPECT_LT(8.0 * l.recordBytes() / 1342178.0, 10.0);
}

TEST(SparseRecord, RoundTrip) {
  std::mt19937_64 rng(svtest::testSeed());
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  for (uint64_t n : std::vector<uint64_t>{1, 31, 32, 33, 64, 65, 1021, 65537, 1u << 20}) {
    for (uint64_t k : std::vector<uint64_t>{1, 2, 63, 64, 65, n / 3 + 1, n}) {
      if (k > n) continue;
      const SparseLayout l = sparseLayout(n, k);
      for (uint64_t entries : {uint64_t{0}, k / 2, k}) {
        const Coded c = randomSet(n, entries, rng);
        const auto p = encode(l, c);
        Coded back;
        ASSERT_TRUE(decodeSparse(l, p.data(), entries, [&](uint64_t i, bool neg) {
          back.idx.push_back(static_cast<uint32_t>(i));
          back.neg.push_back(neg);
        })) << "n " << n << " k " << k << " entries " << entries;
        EXPECT_EQ(back.idx, c.idx);
        EXPECT_EQ(back.neg, c.neg);
      }
    }
  }
}

TEST(SparseRecord, RejectsMalformedPayloads) {
  std::mt19937_64 rng(svtest::testSeed() + 1);
  const uint64_t n = 5000, k = 100;
  const SparseLayout l = sparseLayout(n, k);
  const Coded c = randomSet(n, 90, rng);
  const auto good = encode(l, c);
  auto decodes = [&](const std::vector<uint64_t>& p, uint64_t entries) {
    return decodeSparse(l, p.data(), entries, [&](uint64_t i, bool) { ASSERT_LT(i, n); });
  };
  ASSERT_TRUE(decodes(good, 90));
  EXPECT_FALSE(decodes(good, 89));   // one upper bit too many
  EXPECT_FALSE(decodes(good, 91));   // one too few
  EXPECT_FALSE(decodes(good, k + 1));
  auto sign = good;
  sign[1] |= uint64_t{1} << 63;      // a sign bit beyond the entries
  EXPECT_FALSE(decodes(sign, 90));
  auto high = good;
  high.back() |= uint64_t{1} << 63;  // an upper bit past H, or one too many
  EXPECT_FALSE(decodes(high, 90));
  // Indices at or beyond N: set the last low bits and the last upper bit of a full record.
  std::vector<uint32_t> top = {static_cast<uint32_t>(n - 1)};
  std::vector<uint8_t> negs = {0};
  std::vector<uint64_t> p(l.payloadWords());
  encodeSparse(l, top.data(), negs.data(), 1, p.data());
  ASSERT_TRUE(decodes(p, 1));
  p[l.signWords] |= (uint64_t{1} << l.lowBits) - 1;  // low bits all ones -> index >= N
  EXPECT_FALSE(decodes(p, 1));
  // Random corruption never decodes out of range (the visitor asserts).
  for (int t = 0; t < 2000; ++t) {
    auto q = good;
    q[rng() % q.size()] ^= uint64_t{1} << (rng() % 64);
    decodes(q, 90);
  }
}

}  // namespace
