// The sparse record of s3gd_mv: WireHeader, then three bit arrays of 64-bit little-endian
// words, bits numbered LSB first:
//   signs[ceil(K/64)]      bit j = 1 if entry j is negative
//   low  [ceil(K*L/64)]    entry j's low L bits at bit offset j*L
//   high [ceil(H/64)]      bit (index_j >> L) + j set (Elias-Fano upper bits, unary)
// with L = floor(log2(floor(N/K))) when N > K (else 0) and H = K + ((N-1) >> L) + 1 (0 if K = 0).
// The layout depends only on (N, K), so records have a fixed size and need no size exchange.
// A record codes `entries` <= K strictly increasing indices: the selected coordinates whose
// value is non-zero (selected zeros cast no vote and are not sent).
#pragma once

#include <cstddef>
#include <cstdint>

#include "mix.h"  // SV_HD: the layout and readBits are shared with kernels/

namespace signvote::ref {

struct SparseLayout {
  uint64_t n = 0, k = 0;
  unsigned lowBits = 0;  // L
  uint64_t highBits = 0; // H
  size_t signWords = 0, lowWords = 0, highWords = 0;
  SV_HD size_t payloadWords() const { return signWords + lowWords + highWords; }
  SV_HD size_t recordBytes() const { return 64 + 8 * payloadWords(); }
};

SparseLayout sparseLayout(uint64_t n, uint64_t k);

// payload must hold layout.payloadWords() words; it is fully overwritten.
void encodeSparse(const SparseLayout& layout, const uint32_t* idx, const uint8_t* negative,
                  uint64_t entries, uint64_t* payload);

// Calls visit(index, negative) for each entry in index order. Returns false, possibly after
// some calls, when the payload is malformed: wrong number of upper bits, an index >= N, indices
// not strictly increasing, or non-zero padding bits. Never reads outside the payload.
template <class Visit>
bool decodeSparse(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                  Visit&& visit);

// ---- implementation of the template ----
SV_HD inline uint64_t readBits(const uint64_t* words, uint64_t bitOffset, unsigned width) {
  if (width == 0) return 0;
  const uint64_t w = bitOffset >> 6;
  const unsigned s = bitOffset & 63;
  uint64_t v = words[w] >> s;
  if (s + width > 64) v |= words[w + 1] << (64 - s);
  return width == 64 ? v : (v & ((uint64_t{1} << width) - 1));
}

template <class Visit>
bool decodeSparse(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                  Visit&& visit) {
  if (entries > layout.k) return false;
  const uint64_t* signs = payload;
  const uint64_t* low = payload + layout.signWords;
  const uint64_t* high = low + layout.lowWords;
  const unsigned L = layout.lowBits;
  // Padding beyond the coded entries must be zero, so each record has one valid encoding.
  auto tailIsZero = [](const uint64_t* words, size_t nwords, uint64_t usedBits) {
    for (size_t w = usedBits >> 6; w < nwords; ++w) {
      const unsigned keep = (w == (usedBits >> 6)) ? (usedBits & 63) : 0;
      const uint64_t mask = keep == 0 ? ~uint64_t{0} : ~((uint64_t{1} << keep) - 1);
      if (words[w] & mask) return false;
    }
    return true;
  };
  if (!tailIsZero(signs, layout.signWords, entries)) return false;
  if (!tailIsZero(low, layout.lowWords, entries * L)) return false;
  uint64_t j = 0;
  uint64_t prev = 0;
  for (size_t w = 0; w < layout.highWords; ++w) {
    uint64_t bits = high[w];
    while (bits != 0) {
      const uint64_t pos = (uint64_t{w} << 6) + static_cast<unsigned>(__builtin_ctzll(bits));
      bits &= bits - 1;
      if (j >= entries || pos >= layout.highBits) return false;
      const uint64_t index = ((pos - j) << L) | readBits(low, j * L, L);
      if (index >= layout.n || (j > 0 && index <= prev)) return false;
      visit(index, ((signs[j >> 6] >> (j & 63)) & 1) != 0);
      prev = index;
      ++j;
    }
  }
  return j == entries;
}

}  // namespace signvote::ref
