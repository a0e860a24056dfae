// The per-word and per-element logic of the kernels, as __host__ __device__ functions: the
// .cu files compose them with CUB block and device primitives, and tests/unit/kernel_logic_test
// runs the very same functions on the host against lib/reference (so CI, which has no GPU,
// checks every bit manipulation of the kernels; only the parallel composition needs a GPU).
#pragma once

#include <cstdint>

#include "kernels.h"
#include "reference/mix.h"  // SV_HD
#include "reference/sparse_record.h"

namespace signvote::kernels::logic {

SV_HD inline unsigned popcount64(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __popcll(x);
#else
  return static_cast<unsigned>(__builtin_popcountll(x));
#endif
}

// Position of the lowest set bit; x != 0.
SV_HD inline unsigned lowestBit(uint64_t x) {
#if defined(__CUDA_ARCH__)
  return __ffsll(static_cast<long long>(x)) - 1;
#else
  return static_cast<unsigned>(__builtin_ctzll(x));
#endif
}

// ---- top-K radix select (kernels/topk) ----

struct PassSpec {
  unsigned shift, bits;
};
// Digits 11/11/9 over bits 30..0, most significant first (ref::selectTopKByMagnitude).
SV_HD constexpr PassSpec passSpec(int pass) {
  return pass == 0 ? PassSpec{20, 11} : pass == 1 ? PassSpec{9, 11} : PassSpec{0, 9};
}

// The bin holding the K-th largest key: fewer than `need` keys lie in higher bins (`above`)
// and at least `need` in this one and higher. Exactly one bin of a histogram satisfies this
// when 1 <= need <= total.
SV_HD inline bool isChosenBin(uint32_t above, uint32_t count, uint32_t need) {
  return count != 0 && above < need && above + count >= need;
}

// The candidate list after pass 0: the keys whose pass-0 digit is at or above the chosen one,
// in index order. Every key >= v* (whose digit is the chosen one) is on it, so passes 1 and 2
// and the gather over the list give the selection of a run over all keys.
SV_HD inline bool onCandidateList(uint32_t key, uint32_t prefix, uint32_t mask) {
  return (key & mask) >= prefix;
}
// The list's room (u32 entries in the scratch): a longer list is not kept, and passes 1, 2 and
// the gather read every key instead. Gradients at K <= 10% fit (about K plus 1-4% of N).
SV_HD constexpr uint64_t candidateListCap(uint64_t n) { return n / 4; }

// A key's class for the gather: 1 << 32 when above v*, 1 when equal, else 0, so that sums
// count both at once (each total stays below 2^32).
SV_HD inline uint64_t classify(uint32_t key, uint32_t vstar) {
  return key > vstar ? (uint64_t{1} << 32) : key == vstar ? 1 : 0;
}

// Output slot of an element of class `cls`, given the classes summed over all earlier
// elements (`before`): keys above v* take their place among the K, keys equal to v* only
// while fewer than `need` earlier ties were taken. Returns k when the element is not taken.
SV_HD inline uint64_t gatherSlot(uint64_t cls, uint64_t before, uint64_t need, uint64_t k) {
  const uint64_t gt = before >> 32, eq = before & 0xFFFFFFFFull;
  uint64_t slot = k;
  if (cls >> 32) slot = gt + (eq < need ? eq : need);
  else if (cls != 0 && eq < need) slot = gt + eq;
  return slot < k ? slot : k;
}

// ---- sparse records (kernels/sparse) ----

using Layout = ref::SparseLayout;
using ref::readBits;

// Sign word w of a record with m entries; negative(j) tells entry j's sign.
template <class Negative>
SV_HD uint64_t signWord(uint64_t w, uint64_t m, Negative negative) {
  uint64_t word = 0;
  const uint64_t end = 64 * w + 64 < m ? 64 * w + 64 : m;
  for (uint64_t j = 64 * w; j < end; ++j) word |= uint64_t{negative(j) ? 1u : 0u} << (j & 63);
  return word;
}

// Low-bits word w (L >= 1): entries floor(64w/L) .. floor((64w+63)/L) touch it.
SV_HD inline uint64_t lowWord(uint64_t w, uint64_t m, unsigned L, const uint32_t* entries) {
  const uint64_t first = 64 * w / L, last = (64 * w + 63) / L;
  const uint64_t lowMask = (uint64_t{1} << L) - 1;
  uint64_t word = 0;
  for (uint64_t j = first; j <= last && j < m; ++j) {
    const uint64_t off = j * L, v = entries[j] & lowMask;
    word |= off >= 64 * w ? v << (off - 64 * w) : v >> (64 * w - off);
  }
  return word;
}

// Upper-bits word w: the entries whose position (index >> L) + j falls in [64w, 64w + 64),
// found by binary search since positions strictly increase with j.
SV_HD inline uint64_t highWord(uint64_t w, uint64_t m, unsigned L, const uint32_t* entries) {
  uint64_t lo = 0, hi = m;
  while (lo < hi) {
    const uint64_t mid = lo + (hi - lo) / 2;
    if ((uint64_t{entries[mid]} >> L) + mid < 64 * w) lo = mid + 1;
    else hi = mid;
  }
  uint64_t word = 0;
  for (uint64_t j = lo; j < m; ++j) {
    const uint64_t p = (uint64_t{entries[j]} >> L) + j;
    if (p >= 64 * w + 64) break;
    word |= uint64_t{1} << (p & 63);
  }
  return word;
}

// Decodes upper-bits word w (bits = its value) whose first set bit is entry j, calling
// vote(index, negative) per entry; false at the first violation of ref::decodeSparse's rules
// that this word can see: position >= H, entry number >= entries, index >= N, or an index not
// above the previous one. The upper part (pos - j) never decreases and is equal to the previous
// entry's exactly when bit pos-1 is set; only then must the low part grow (with L = 0 an equal
// upper part repeats an index).
template <class Vote>
SV_HD bool decodeHighWord(const Layout& s, const uint64_t* payload, uint64_t entries, uint64_t w,
                          uint64_t j, Vote vote) {
  const uint64_t* signs = payload;
  const uint64_t* low = signs + s.signWords;
  const uint64_t* high = low + s.lowWords;
  const unsigned L = s.lowBits;
  for (uint64_t bits = high[w]; bits != 0; bits &= bits - 1, ++j) {
    const uint64_t pos = 64 * w + lowestBit(bits);
    if (pos >= s.highBits || j >= entries) return false;
    const uint64_t lowPart = readBits(low, j * L, L);
    const uint64_t index = ((pos - j) << L) | lowPart;
    if (index >= s.n) return false;
    const bool prevSet = pos > 0 && ((high[(pos - 1) >> 6] >> ((pos - 1) & 63)) & 1);
    if (prevSet && (L == 0 || lowPart <= readBits(low, (j - 1) * L, L))) return false;
    vote(index, ((signs[j >> 6] >> (j & 63)) & 1) != 0);
  }
  return true;
}

// Padding rule for payload word w (value `word`) of a record with `entries` <= K entries:
// sign bits at or past `entries` and low bits at or past entries*L must be zero.
SV_HD inline bool paddingOk(const Layout& s, uint64_t entries, uint64_t w, uint64_t word) {
  uint64_t used, first;
  if (w < s.signWords) {
    used = entries;
    first = 0;
  } else if (w < s.signWords + s.lowWords) {
    used = entries * s.lowBits;
    first = s.signWords;
  } else {
    return true;  // upper bits: checked by decodeHighWord and the bit count
  }
  const uint64_t bit0 = 64 * (w - first);
  const uint64_t keep = used <= bit0 ? 0 : used - bit0;
  const uint64_t mask = keep >= 64 ? 0 : ~((uint64_t{1} << keep) - 1);
  return (word & mask) == 0;
}

// ---- sparse values (topk_ef, dgs): the float32 array after the sparse payload ----

// Entry j's float32 bits: bits 32*(j%2) .. 32*(j%2)+31 of word j/2 (ref::encodeValues).
SV_HD inline uint32_t valueBits(const uint64_t* values, uint64_t j) {
  return static_cast<uint32_t>(values[j >> 1] >> (32 * (j & 1)));
}

// Values word vw of a record with m entries; bits(j) gives entry j's float32 bits.
template <class Bits>
SV_HD uint64_t valuesWord(uint64_t vw, uint64_t m, Bits bits) {
  uint64_t word = 0;
  for (uint64_t j = 2 * vw; j < 2 * vw + 2 && j < m; ++j)
    word |= uint64_t{bits(j)} << (32 * (j & 1));
  return word;
}

// ref::sparseValuesValid's rule for one sent value: a non-zero magnitude with its entry's sign.
SV_HD inline bool valueAgrees(uint32_t bits, bool negative) {
  return (bits & 0x7FFFFFFFu) != 0 && ((bits >> 31) != 0) == negative;
}

// ref::sparseValuesValid's padding rule for values word vw: the slots at or past `entries`
// hold zero bits.
SV_HD inline bool valuesPaddingOk(uint64_t vw, uint64_t entries, uint64_t word) {
  if (2 * vw >= entries) return word == 0;
  if (2 * vw + 1 >= entries) return (word >> 32) == 0;
  return true;
}

// ---- votes over bit-planes (kernels/vote) ----

constexpr int kCounterBits = 13;  // counts up to SV_MAX_RANKS = 4096

// c += x: one bit per position into `bits` vertical counter planes (ripple-carry).
SV_HD inline void addBits(uint64_t (&c)[kCounterBits], uint64_t x, int bits) {
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int b = 0; b < kCounterBits; ++b) {
    if (b < bits) {
      const uint64_t carry = c[b] & x;
      c[b] ^= x;
      x = carry;
    }
  }
}

SV_HD inline int counterBits(int nranks) {
  int b = 0;
  while (b < 31 && (nranks >> b) != 0) ++b;
  return b;
}

// ref::voteSignPlanes for one word of 64 positions; word(s, plane) reads rank s's plane.
// Binary: result[0] = negative wins (ties +1). Ternary: result[0] = nonzero (pos != neg),
// result[1] = negative (neg > pos). Returns the positions where a ternary input had a negative
// bit without its nonzero bit.
template <class Word>
SV_HD uint64_t voteWord(int nranks, bool ternary, Word word, uint64_t* result) {
  const int bits = counterBits(nranks);
  uint64_t pos[kCounterBits] = {}, neg[kCounterBits] = {};
  uint64_t corrupt = 0;
  for (int s = 0; s < nranks; ++s) {
    if (ternary) {
      const uint64_t nz = word(s, 0), ng = word(s, 1);
      corrupt |= ng & ~nz;
      addBits(pos, nz & ~ng, bits);
      addBits(neg, ng, bits);
    } else {
      addBits(neg, word(s, 0), bits);
    }
  }
  // gt: neg > other, eq: neg == other, from the top bit down. For binary votes the other side
  // is the constant floor(W/2): neg > W/2 exactly when neg > W - neg.
  uint64_t gt = 0, eq = ~uint64_t{0};
  const unsigned half = static_cast<unsigned>(nranks) / 2;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int b = kCounterBits - 1; b >= 0; --b) {
    if (b < bits) {
      const uint64_t other = ternary ? pos[b] : (((half >> b) & 1) ? ~uint64_t{0} : 0);
      gt |= eq & neg[b] & ~other;
      eq &= ~(neg[b] ^ other);
    }
  }
  if (ternary) {
    result[0] = ~eq;
    result[1] = gt;
  } else {
    result[0] = gt;
  }
  return corrupt;
}

// ref::countsToPlanes for one word: 64 counts -> (nonzero, negative); false when a count is
// outside [-nranks, nranks].
template <class T>
SV_HD bool countsWord(const T* c, int nranks, uint64_t* nz, uint64_t* neg) {
  uint64_t a = 0, b = 0;
  bool ok = true;
  for (unsigned bit = 0; bit < 64; ++bit) {
    const int v = c[bit];
    ok &= v <= nranks && v >= -nranks;
    a |= uint64_t{v != 0} << bit;
    b |= uint64_t{v < 0} << bit;
  }
  *nz = a;
  *neg = b;
  return ok;
}

// ref::s3gdPlanes, one word per selection run: entry j leads its 64-element word when no
// earlier entry lies in it (sel is strictly increasing). The leader builds the whole word from
// entries j.. (at most 64), so no two threads write one word and every word is set once.
SV_HD inline bool leadsWord(const uint32_t* sel, uint64_t j) {
  return j == 0 || (sel[j - 1] >> 6) != (sel[j] >> 6);
}
// The (nonzero, negative) bits of the word entry j leads; returns the word's index (sel[j]/64).
SV_HD inline uint64_t selectionWord(const float* acc, const uint32_t* sel, uint64_t k, uint64_t j,
                                    uint64_t* nz, uint64_t* neg) {
  const uint64_t word = sel[j] >> 6;
  uint64_t a = 0, b = 0;
  for (; j < k && (sel[j] >> 6) == word; ++j) {
    const float v = acc[sel[j]];
    const uint64_t bit = uint64_t{1} << (sel[j] & 63);
    if (v < 0.0f || v > 0.0f) a |= bit;  // NaN and +-0.0 cast no vote
    if (v < 0.0f) b |= bit;
  }
  *nz = a;
  *neg = b;
  return word;
}

// ---- ef_sign (kernels/scaled) ----

// The tree of ref::pairwiseAbsSum cut into aligned tiles of kTreeTile values: a level sums each
// tile by the tree (zero-padded), the next level sums the tile sums the same way, until one
// value is left. The host tree restricted to an aligned power-of-two block is that block's
// tree, and the padding adds +0.0, which changes no sum of magnitudes.
constexpr unsigned kTreeTile = 2048;
SV_HD inline uint64_t treeTiles(uint64_t count) { return (count + kTreeTile - 1) / kTreeTile; }

// ref::scaledPlanesValid for word w of the planes of an n-element record.
SV_HD inline bool scaledWordOk(uint64_t nz, uint64_t neg, uint64_t w, uint64_t n) {
  const uint64_t words = (n + 63) / 64;
  const uint64_t tail = (n & 63) ? ~((uint64_t{1} << (n & 63)) - 1) : 0;
  return (neg & ~nz) == 0 && !(w == words - 1 && ((nz | neg) & tail) != 0);
}

// ef_sign's c for one element: +-scale where p != 0 by its sign, +0.0 where p == 0 (and NaN).
SV_HD inline float efSignValue(float p, float scale) {
  return p > 0.0f ? scale : p < 0.0f ? -scale : 0.0f;
}

// ---- liec's chunk signs (kernels/scaled/liec.cu) ----

// ref::chunkSignsValid for plane word w of a chunk of len elements: negative implies nonzero,
// no bit at or past len.
SV_HD inline bool chunkWordOk(uint64_t nz, uint64_t neg, uint64_t w, uint64_t len) {
  const uint64_t first = 64 * w;
  const uint64_t valid = first >= len            ? 0
                         : len - first >= 64     ? ~uint64_t{0}
                                                 : (uint64_t{1} << (len - first)) - 1;
  return (neg & ~nz) == 0 && (nz & ~valid) == 0;
}

// ref::chunkSignsValue: -scale, +0.0 or +scale from bit `bit` of the plane words nz and neg.
SV_HD inline float planeValue(uint64_t nz, uint64_t neg, unsigned bit, float scale) {
  if (!((nz >> bit) & 1)) return 0.0f;
  return ((neg >> bit) & 1) ? -scale : scale;
}

// ---- the verdict (kernels.h: decideVerdict) ----

struct Decision {
  uint32_t code;    // the first failure found now (svResult_t), 0 when none
  uint32_t gate;    // 1: nothing may be committed
  uint32_t nanOut;  // 1: the output must be NaN
};

// decideVerdict's rule, in the host backend's order: the first corrupt or mismatched header
// by sender, then NaN (svNonFiniteInput, or a NaN output under propagate), then any non-zero
// flag (svCorruptInput). `before` is the communicator's sticky failure, 0 when none.
SV_HD inline Decision decide(const uint32_t* verdicts, int nranks, const uint32_t* flags,
                             int nflags, bool propagate, uint32_t before) {
  uint32_t code = 0;
  bool nan = false;
  for (int s = 0; s < nranks && code == 0; ++s) {
    if (verdicts[s] == kHeaderCorrupt) code = svCorruptInput;
    else if (verdicts[s] == kHeaderMismatch) code = svMismatch;
    nan |= verdicts[s] == kHeaderNonFinite;
  }
  if (code == 0 && nan && !propagate) code = svNonFiniteInput;
  for (int f = 0; code == 0 && !nan && f < nflags; ++f)
    if (flags[f] != 0) code = svCorruptInput;
  return {code, (before != 0 || code != 0 || nan) ? 1u : 0u,
          (before == 0 && code == 0 && nan) ? 1u : 0u};
}

}  // namespace signvote::kernels::logic
