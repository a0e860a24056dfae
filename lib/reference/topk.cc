#include "topk.h"

#include <array>

namespace signvote::ref {

uint32_t selectTopKByMagnitude(const float* x, size_t n, size_t k, uint32_t* out) {
  if (k == 0) return 0;
  if (k == n) {  // everything is selected; v* is the smallest key
    uint32_t vmin = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; ++i) {
      out[i] = static_cast<uint32_t>(i);
      const uint32_t u = magnitudeKey(x[i]);
      if (u < vmin) vmin = u;
    }
    return vmin;
  }
  // Find v* digit by digit, most significant first; `need` is the rank of v* among the keys
  // that share the prefix found so far.
  struct Pass { unsigned shift, bits; };
  constexpr Pass kPasses[3] = {{20, 11}, {9, 11}, {0, 9}};
  uint32_t prefix = 0, prefixMask = 0;
  size_t need = k;
  std::array<size_t, 2048> hist;  // on the stack: selection never allocates
  for (const Pass& p : kPasses) {
    std::fill(hist.begin(), hist.end(), 0);
    const uint32_t digitMask = (1u << p.bits) - 1;
    for (size_t i = 0; i < n; ++i) {
      const uint32_t u = magnitudeKey(x[i]);
      if ((u & prefixMask) == prefix) ++hist[(u >> p.shift) & digitMask];
    }
    uint32_t digit = digitMask;
    for (;; --digit) {
      if (hist[digit] >= need) break;
      need -= hist[digit];
    }
    prefix |= digit << p.shift;
    prefixMask |= digitMask << p.shift;
  }
  const uint32_t vstar = prefix;
  // Stable gather: all keys above v*, and the first `need` keys equal to it.
  size_t j = 0, ties = 0;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t u = magnitudeKey(x[i]);
    if (u > vstar || (u == vstar && ties++ < need)) out[j++] = static_cast<uint32_t>(i);
  }
  return vstar;
}

}  // namespace signvote::ref
