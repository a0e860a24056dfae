#include "sparse_record.h"

#include <cstring>

namespace signvote::ref {

SparseLayout sparseLayout(uint64_t n, uint64_t k) {
  SparseLayout s;
  s.n = n;
  s.k = k;
  if (k == 0) return s;
  s.lowBits = n > k ? 63u - static_cast<unsigned>(__builtin_clzll(n / k)) : 0u;
  s.highBits = k + ((n - 1) >> s.lowBits) + 1;
  s.signWords = (k + 63) / 64;
  s.lowWords = (k * s.lowBits + 63) / 64;
  s.highWords = (s.highBits + 63) / 64;
  return s;
}

void encodeSparse(const SparseLayout& layout, const uint32_t* idx, const uint8_t* negative,
                  uint64_t entries, uint64_t* payload) {
  if (layout.payloadWords()) std::memset(payload, 0, 8 * layout.payloadWords());
  uint64_t* signs = payload;
  uint64_t* low = payload + layout.signWords;
  uint64_t* high = low + layout.lowWords;
  const unsigned L = layout.lowBits;
  const uint64_t lowMask = L == 0 ? 0 : ((uint64_t{1} << L) - 1);
  for (uint64_t j = 0; j < entries; ++j) {
    const uint64_t i = idx[j];
    if (negative[j]) signs[j >> 6] |= uint64_t{1} << (j & 63);
    if (L != 0) {
      const uint64_t off = j * L, v = i & lowMask;
      const unsigned s = off & 63;
      low[off >> 6] |= v << s;
      if (s + L > 64) low[(off >> 6) + 1] |= v >> (64 - s);
    }
    const uint64_t pos = (i >> L) + j;
    high[pos >> 6] |= uint64_t{1} << (pos & 63);
  }
}

}  // namespace signvote::ref
