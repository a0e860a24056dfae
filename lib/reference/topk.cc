#include "topk.h"

#include <array>

namespace signvote::ref {

namespace {

// Calls visit(i) for every i < n except in blocks of 16 keys where maybe(key) holds for none:
// the test of a block is a loop the compiler vectorizes, so a skipped block costs no branch per
// key. After pass 0 few keys share the prefix, and few reach v*, so most blocks are skipped.
template <class Maybe, class Visit>
void visitBlocks(const float* x, size_t n, Maybe maybe, Visit visit) {
  constexpr size_t kBlock = 16;
  size_t i = 0;
  for (; i + kBlock <= n; i += kBlock) {
    uint32_t any = 0;
    for (size_t l = 0; l < kBlock; ++l) any |= maybe(magnitudeKey(x[i + l]));
    if (any)
      for (size_t l = i; l < i + kBlock; ++l) visit(l);
  }
  for (; i < n; ++i) visit(i);
}

}  // namespace

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
    auto count = [&](size_t i) {
      const uint32_t u = magnitudeKey(x[i]);
      if ((u & prefixMask) == prefix) ++hist[(u >> p.shift) & digitMask];
    };
    if (prefixMask == 0) {  // pass 0: every key counts
      for (size_t i = 0; i < n; ++i) count(i);
    } else {
      visitBlocks(x, n, [&](uint32_t u) { return (u & prefixMask) == prefix; }, count);
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
  // Stable gather: all keys above v*, and the first `need` keys equal to it. Keys are below
  // 2^31, so the block test may compare them as signed (SSE2 has no unsigned compare).
  size_t j = 0, ties = 0;
  auto take = [&](size_t i) {
    const uint32_t u = magnitudeKey(x[i]);
    if (u > vstar || (u == vstar && ties++ < need)) out[j++] = static_cast<uint32_t>(i);
  };
  const auto atLeast = static_cast<int32_t>(vstar);
  visitBlocks(x, n, [atLeast](uint32_t u) { return static_cast<int32_t>(u) >= atLeast; }, take);
  return vstar;
}

}  // namespace signvote::ref
