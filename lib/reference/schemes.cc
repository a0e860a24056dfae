#include "schemes.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "topk.h"

// The golden model's bits (DESIGN.md 1) assume IEEE binary32 floats, each operation rounded to
// float as it is made: not so with x87 arithmetic (i386's default, -mfpmath=387), which keeps
// intermediates in 80 bits.
static_assert(std::numeric_limits<float>::is_iec559, "float must be IEEE 754 binary32");
static_assert(FLT_EVAL_METHOD == 0, "float expressions must be evaluated in float (SSE, not x87)");

// The loops that call std::fma get a clone for CPUs with FMA, picked at load time (ifunc):
// x86-64's baseline has no FMA instruction, so std::fma is a call into libm per element there,
// three times slower. fma is correctly rounded either way, so both clones give the same bits;
// the build's -ffp-contract=off keeps the compiler from fusing anything else. Not under
// ThreadSanitizer: the resolver runs while the dynamic loader relocates the library, before
// TSan's runtime is set up, and a TSan build crashed there.
#if defined(__x86_64__) && defined(__gnu_linux__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(__SANITIZE_THREAD__)
#define SV_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#define SV_FMA_CLONES
#endif

namespace signvote::ref {

namespace {

inline bool isNaN(float x) { return magnitudeKey(x) > kInfKey; }

// memset for buffers that may be null when empty (count 0 needs no buffer).
inline void zero(void* p, size_t bytes) {
  if (bytes) std::memset(p, 0, bytes);
}

template <class T>
void ternaryInto(const float* acc, const uint32_t* sel, uint64_t k, uint64_t padded, T* out) {
  zero(out, padded * sizeof(T));
  for (uint64_t j = 0; j < k; ++j) {
    const float v = acc[sel[j]];
    out[sel[j]] = static_cast<T>(v < 0.0f ? -1 : v > 0.0f ? 1 : 0);
  }
}

template <class T>
bool countsToPlanesT(const T* c, uint64_t chunkWords, int nranks, uint64_t* planes) {
  uint64_t* nz = planes;
  uint64_t* neg = planes + chunkWords;
  for (uint64_t w = 0; w < chunkWords; ++w) {
    uint64_t a = 0, b = 0;
    for (unsigned bit = 0; bit < 64; ++bit) {
      const int v = c[w * 64 + bit];
      if (v > nranks || v < -nranks) return false;
      a |= uint64_t{v != 0} << bit;
      b |= uint64_t{v < 0} << bit;
    }
    nz[w] = a;
    neg[w] = b;
  }
  return true;
}

}  // namespace

SV_FMA_CLONES
bool s3gdAccumulateSelect(const float* g, const float* residual, float rho, uint64_t n,
                          uint64_t k, svNonFinitePolicy_t policy, float* acc, uint32_t* sel) {
  bool nan = false;
  for (uint64_t i = 0; i < n; ++i) {
    float a = std::fma(rho, residual[i], g[i]);
    if (isNaN(a)) {
      if (policy == SV_NONFINITE_IGNORE) a = 0.0f;
      else nan = true;
    }
    acc[i] = a;
  }
  selectTopKByMagnitude(acc, n, k, sel);
  return nan;
}

uint64_t s3gdEncodeSparse(const SparseLayout& layout, const float* acc, const uint32_t* sel,
                          uint32_t* entries, uint8_t* entryNeg, uint64_t* payload) {
  uint64_t m = 0;
  for (uint64_t j = 0; j < layout.k; ++j) {
    const float v = acc[sel[j]];
    if (v != 0.0f) {  // NaN compares unequal and is sent; its rank's flag fails the exchange
      entries[m] = sel[j];
      entryNeg[m] = std::signbit(v) ? 1 : 0;
      ++m;
    }
  }
  encodeSparse(layout, entries, entryNeg, m, payload);
  return m;
}

bool addSparseVotes(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                    int32_t* votes) {
  return decodeSparse(layout, payload, entries,
                      [votes](uint64_t i, bool negative) { votes[i] += negative ? -1 : 1; });
}

void s3gdTernary(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n, uint64_t padded,
                 unsigned countBytes, void* out) {
  (void)n;
  if (countBytes == 1) ternaryInto(acc, sel, k, padded, static_cast<int8_t*>(out));
  else ternaryInto(acc, sel, k, padded, static_cast<int16_t*>(out));
}

void s3gdPlanes(const float* acc, const uint32_t* sel, uint64_t k, uint64_t chunkWords,
                int nranks, uint64_t* out) {
  zero(out, static_cast<uint64_t>(nranks) * 2 * chunkWords * 8);
  for (uint64_t j = 0; j < k; ++j) {
    const float v = acc[sel[j]];
    const uint64_t word = sel[j] >> 6, bit = uint64_t{1} << (sel[j] & 63);
    uint64_t* block = out + word / chunkWords * 2 * chunkWords;
    if (v < 0.0f || v > 0.0f) block[word % chunkWords] |= bit;
    if (v < 0.0f) block[chunkWords + word % chunkWords] |= bit;
  }
}

bool countsToPlanes(const void* counts, unsigned countBytes, uint64_t chunkWords, int nranks,
                    uint64_t* planes) {
  return countBytes == 1
             ? countsToPlanesT(static_cast<const int8_t*>(counts), chunkWords, nranks, planes)
             : countsToPlanesT(static_cast<const int16_t*>(counts), chunkWords, nranks, planes);
}

void s3gdCommit(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n, float* residual) {
  if (n) std::memcpy(residual, acc, n * sizeof(float));
  for (uint64_t j = 0; j < k; ++j) residual[sel[j]] = 0.0f;
}

bool packSigns(const float* g, uint64_t n, svVote_t vote, uint64_t chunkWords, int nranks,
               svNonFinitePolicy_t policy, uint64_t* out) {
  const unsigned planes = vote == SV_VOTE_BINARY ? 1 : 2;
  const uint64_t total = static_cast<uint64_t>(nranks) * planes * chunkWords;
  zero(out, total * 8);
  bool nan = false;
  const uint64_t chunk = chunkWords * 64;
  for (uint64_t i = 0; i < n; ++i) {
    float v = g[i];
    if (isNaN(v)) {
      if (policy == SV_NONFINITE_IGNORE) v = 0.0f;
      else nan = true;
    }
    const uint64_t d = i / chunk, e = i % chunk;
    uint64_t* block = out + d * planes * chunkWords;
    const uint64_t bit = uint64_t{1} << (e & 63);
    if (vote == SV_VOTE_BINARY) {
      if (v < 0.0f) block[e >> 6] |= bit;  // +-0.0 and NaN vote +1
    } else {
      if (v != 0.0f) block[e >> 6] |= bit;                  // nonzero plane
      if (v < 0.0f) block[chunkWords + (e >> 6)] |= bit;    // negative plane
    }
  }
  return nan;
}

bool voteSignPlanes(const uint64_t* recv, svVote_t vote, uint64_t chunkWords, int nranks,
                    uint64_t* result) {
  const unsigned planes = vote == SV_VOTE_BINARY ? 1 : 2;
  for (uint64_t w = 0; w < chunkWords; ++w) {
    uint64_t nzOut = 0, negOut = 0;
    for (unsigned bit = 0; bit < 64; ++bit) {
      int pos = 0, neg = 0;
      for (int s = 0; s < nranks; ++s) {
        const uint64_t* block = recv + static_cast<uint64_t>(s) * planes * chunkWords;
        if (vote == SV_VOTE_BINARY) {
          if ((block[w] >> bit) & 1) ++neg; else ++pos;
        } else {
          const bool nz = (block[w] >> bit) & 1, ng = (block[chunkWords + w] >> bit) & 1;
          if (ng && !nz) return false;
          if (ng) ++neg; else if (nz) ++pos;
        }
      }
      nzOut |= uint64_t{pos != neg} << bit;
      negOut |= uint64_t{neg > pos} << bit;
    }
    if (vote == SV_VOTE_BINARY) {
      result[w] = negOut;  // ties go to +1
    } else {
      result[w] = nzOut;
      result[chunkWords + w] = negOut;
    }
  }
  return true;
}

bool planesToOutput(const uint64_t* all, unsigned planes, uint64_t chunkWords, uint64_t n,
                    float* out) {
  const uint64_t chunk = chunkWords * 64;
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t* block = all + (i / chunk) * planes * chunkWords;
    const uint64_t e = i % chunk;
    const bool first = (block[e >> 6] >> (e & 63)) & 1;
    if (planes == 1) {
      out[i] = first ? -1.0f : 1.0f;
    } else {
      const bool neg = (block[chunkWords + (e >> 6)] >> (e & 63)) & 1;
      if (neg && !first) return false;
      out[i] = !first ? 0.0f : neg ? -1.0f : 1.0f;
    }
  }
  return true;
}

void votesToOutput(const int32_t* votes, uint64_t n, float* out) {
  for (uint64_t i = 0; i < n; ++i) out[i] = votes[i] < 0 ? -1.0f : votes[i] > 0 ? 1.0f : 0.0f;
}

SV_FMA_CLONES
bool signumMomentum(const float* g, const float* m, float beta, uint64_t n,
                    svNonFinitePolicy_t policy, float* mNew) {
  const float omb = 1.0f - beta;
  bool nan = false;
  for (uint64_t i = 0; i < n; ++i) {
    float v = std::fma(beta, m[i], omb * g[i]);
    if (isNaN(v)) {
      if (policy == SV_NONFINITE_IGNORE) v = 0.0f;
      else nan = true;
    }
    mNew[i] = v;
  }
  return nan;
}

namespace {
// The fixed tree of docs/schemes.md over f(x[i]), zero-padded to a power of two.
template <class F>
float treeSum(const float* x, uint64_t n, F f) {
  if (n == 0) return 0.0f;
  uint64_t len = 1;
  while (len < n) len <<= 1;
  std::vector<float> s(len, 0.0f);
  for (uint64_t i = 0; i < n; ++i) s[i] = f(x[i]);
  for (uint64_t width = 1; width < len; width <<= 1)
    for (uint64_t i = 0; i < len; i += 2 * width) s[i] = s[i] + s[i + width];
  return s[0];
}
}  // namespace

float pairwiseAbsSum(const float* x, uint64_t n) {
  return treeSum(x, n, [](float v) { return std::fabs(v); });
}

float pairwiseSquareSum(const float* x, uint64_t n, svNonFinitePolicy_t policy) {
  return treeSum(x, n, [policy](float v) {
    if (isNaN(v) && policy == SV_NONFINITE_IGNORE) return 0.0f;
    return v * v;
  });
}

uint64_t adaptiveK(const svBucketConfig_t& c, uint64_t kbar, const AdaptiveState& s, float G) {
  const uint64_t n = c.count;
  const float ratio = s.started ? G / s.mean : 1.0f;
  double want = static_cast<double>(kbar);
  if (std::isfinite(ratio)) want = std::round(static_cast<double>(kbar) * ratio);
  uint64_t k = want >= static_cast<double>(n) ? n : static_cast<uint64_t>(want);
  k = std::max<uint64_t>(std::min<uint64_t>(k, n), c.kMin);
  if (c.kBudget != 0) {
    const uint64_t later = c.kWindow - 1 - s.step;  // exchanges after this one in the window
    const uint64_t cap = c.kBudget - s.spent - c.kMin * later;
    k = std::min(k, cap);
  }
  return k;
}

AdaptiveState adaptiveAdvance(const svBucketConfig_t& c, AdaptiveState s, float G, uint64_t kt) {
  if (std::isfinite(G)) {  // a NaN or overflowing step does not move the mean
    s.mean = s.started ? std::fma(0.9f, s.mean, 0.1f * G) : G;
    s.started = true;
  }
  if (c.kBudget != 0) {
    s.spent += kt;
    if (++s.step == c.kWindow) s.spent = s.step = 0;
  }
  return s;
}

bool efSignCompress(const float* g, const float* e, uint64_t n, svNonFinitePolicy_t policy,
                    float* p, uint64_t* planes, float* scale) {
  bool nan = false;
  for (uint64_t i = 0; i < n; ++i) {
    float v = g[i] + e[i];
    if (isNaN(v)) {
      if (policy == SV_NONFINITE_IGNORE) v = 0.0f;
      else nan = true;
    }
    p[i] = v;
  }
  const uint64_t words = (n + 63) / 64;
  zero(planes, 2 * words * 8);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t bit = uint64_t{1} << (i & 63);
    if (p[i] != 0.0f) planes[i >> 6] |= bit;
    if (p[i] < 0.0f) planes[words + (i >> 6)] |= bit;
  }
  *scale = n == 0 ? 0.0f : pairwiseAbsSum(p, n) / static_cast<float>(n);
  return nan;
}

bool scaledPlanesValid(const uint64_t* planes, uint64_t n) {
  const uint64_t words = (n + 63) / 64;
  const uint64_t tail = (n & 63) ? ~((uint64_t{1} << (n & 63)) - 1) : 0;
  for (uint64_t w = 0; w < words; ++w) {
    const uint64_t nz = planes[w], neg = planes[words + w];
    if (neg & ~nz) return false;
    if (w == words - 1 && ((nz | neg) & tail)) return false;
  }
  return true;
}

void efSignMean(const uint64_t* const* planes, const float* scales, int nranks, uint64_t n,
                float* out) {
  const uint64_t words = (n + 63) / 64;
  auto term = [&](int s, uint64_t i) {
    const uint64_t bit = uint64_t{1} << (i & 63);
    if (!(planes[s][i >> 6] & bit)) return 0.0f;
    return (planes[s][words + (i >> 6)] & bit) ? -scales[s] : scales[s];
  };
  const float w = static_cast<float>(nranks);
  for (uint64_t i = 0; i < n; ++i) {
    float sum = term(0, i);
    for (int s = 1; s < nranks; ++s) sum += term(s, i);
    out[i] = sum / w;
  }
}

void efSignCommit(const float* p, float scale, uint64_t n, float* e) {
  for (uint64_t i = 0; i < n; ++i) {
    const float c = p[i] > 0.0f ? scale : p[i] < 0.0f ? -scale : 0.0f;
    e[i] = p[i] - c;
  }
}

SV_FMA_CLONES
bool topkEfAccumulateSelect(const float* g, const float* u, const float* v, float momentum,
                            uint64_t n, uint64_t k, svNonFinitePolicy_t policy, float* uNew,
                            float* vNew, uint32_t* sel) {
  bool nan = false;
  auto clean = [&](float x) {
    if (isNaN(x)) {
      if (policy == SV_NONFINITE_IGNORE) return 0.0f;
      nan = true;
    }
    return x;
  };
  for (uint64_t i = 0; i < n; ++i) {
    const float ui = momentum != 0.0f ? clean(std::fma(momentum, u[i], g[i])) : g[i];
    if (momentum != 0.0f) uNew[i] = ui;
    vNew[i] = clean(v[i] + ui);
  }
  selectTopKByMagnitude(vNew, n, k, sel);
  return nan;
}

namespace {
uint32_t valueBits(const uint64_t* words, uint64_t j) {
  return static_cast<uint32_t>(words[j >> 1] >> (32 * (j & 1)));
}
}  // namespace

void encodeValues(const float* v, const uint32_t* entries, uint64_t m, uint64_t k,
                  uint64_t* words) {
  zero(words, (k + 1) / 2 * 8);
  for (uint64_t j = 0; j < m; ++j) {
    uint32_t bits;
    std::memcpy(&bits, &v[entries[j]], 4);
    words[j >> 1] |= uint64_t{bits} << (32 * (j & 1));
  }
}

bool sparseValuesValid(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                       const uint64_t* values) {
  uint64_t j = 0;
  bool valuesOk = true;
  const bool decoded = decodeSparse(layout, payload, entries, [&](uint64_t, bool negative) {
    const uint32_t bits = valueBits(values, j++);
    valuesOk &= (bits & 0x7FFFFFFFu) != 0 && ((bits >> 31) != 0) == negative;
  });
  if (!decoded || !valuesOk) return false;
  for (uint64_t t = entries; t < 2 * ((layout.k + 1) / 2); ++t)
    if (valueBits(values, t) != 0) return false;
  return true;
}

void addSparseValues(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                     const uint64_t* values, float* sums) {
  uint64_t j = 0;
  decodeSparse(layout, payload, entries, [&](uint64_t index, bool) {
    const uint32_t bits = valueBits(values, j++);
    float x;
    std::memcpy(&x, &bits, 4);
    sums[index] += x;
  });
}

void dgsCommit(const float* uNew, const uint32_t* sel, uint64_t k, uint64_t n, float m,
               float* u) {
  for (uint64_t i = 0; i < n; ++i) u[i] = uNew[i] / m;
  for (uint64_t j = 0; j < k; ++j) u[sel[j]] = uNew[sel[j]];
}

void dgsDownlink(const float* g, float* d, uint64_t n, uint64_t k, float* a, uint32_t* sel,
                 float* out) {
  for (uint64_t i = 0; i < n; ++i) a[i] = d[i] + g[i];
  selectTopKByMagnitude(a, n, k, sel);
  std::fill(out, out + n, 0.0f);
  for (uint64_t j = 0; j < k; ++j) out[sel[j]] = a[sel[j]];
  s3gdCommit(a, sel, k, n, d);
}

svResult_t checkAsyncPush(const uint64_t* record, size_t payloadWords, const HeaderExpect& e,
                          const SparseLayout& layout, uint64_t downK, const char** why) {
  const auto& h = *reinterpret_cast<const WireHeader*>(record);
  const uint64_t* payload = payloadOf(record);
  if (const svResult_t r = validateHeader(h, e, why); r != svSuccess) return r;
  if (h.aux != downK) return *why = "downK", svMismatch;
  if (h.flags & kFlagNonFinite) return svSuccess;
  if (checksumWords(payload, payloadWords) != h.payloadChecksum ||
      !sparseValuesValid(layout, payload, h.entries, payload + layout.payloadWords()))
    return *why = "payload", svCorruptInput;
  return svSuccess;
}

svResult_t checkAsyncReply(const uint64_t* reply, size_t payloadWords, const HeaderExpect& e,
                           bool pushNaN, svResult_t* refusal, const char** why) {
  const auto& r = *reinterpret_cast<const WireHeader*>(reply);
  const uint64_t* payload = payloadOf(reply);
  HeaderExpect expect = e;
  expect.flags = kFlagNonFinite | kFlagRejected;
  *refusal = svSuccess;
  if (validateHeader(r, expect, why) != svSuccess) return svRemoteError;
  if (r.flags & kFlagRejected) {
    if (r.aux != svMismatch && r.aux != svCorruptInput)
      return *why = "unknown refusal", svRemoteError;
    *refusal = static_cast<svResult_t>(r.aux);
    return svSuccess;
  }
  if (((r.flags & kFlagNonFinite) != 0) != pushNaN) return *why = "NaN flag", svRemoteError;
  if (checksumWords(payload, payloadWords) != r.payloadChecksum)
    return *why = "payload checksum", svRemoteError;
  bool ok;
  if (e.k != 0) {
    const SparseLayout down = sparseLayout(e.count, e.k);
    ok = sparseValuesValid(down, payload, r.entries, payload + down.payloadWords());
  } else {  // N floats; an odd count leaves the last word's high half as padding
    ok = r.entries == 0 && (e.count % 2 == 0 || (payload[payloadWords - 1] >> 32) == 0);
  }
  return ok ? svSuccess : (*why = "payload", svRemoteError);
}

void chunkSignsEncode(const float* x, uint64_t len, uint64_t chunkWords, uint64_t* msg) {
  zero(msg, chunkSignsWords(chunkWords) * 8);
  for (uint64_t i = 0; i < len; ++i) {
    const uint64_t bit = uint64_t{1} << (i & 63);
    if (x[i] != 0.0f) msg[i >> 6] |= bit;
    if (x[i] < 0.0f) msg[chunkWords + (i >> 6)] |= bit;
  }
  const float scale = len == 0 ? 0.0f : pairwiseAbsSum(x, len) / static_cast<float>(len);
  uint32_t bits;
  std::memcpy(&bits, &scale, 4);
  msg[2 * chunkWords] = bits;
}

bool chunkSignsValid(const uint64_t* msg, uint64_t len, uint64_t chunkWords) {
  for (uint64_t w = 0; w < chunkWords; ++w) {
    const uint64_t nz = msg[w], neg = msg[chunkWords + w];
    const uint64_t first = w * 64;
    const uint64_t valid = first >= len            ? 0
                           : len - first >= 64     ? ~uint64_t{0}
                                                   : (uint64_t{1} << (len - first)) - 1;
    if ((neg & ~nz) || (nz & ~valid)) return false;
  }
  const uint64_t s = msg[2 * chunkWords];
  return (s >> 31) == 0;  // high half empty, sign bit clear
}

float chunkSignsValue(const uint64_t* msg, uint64_t chunkWords, uint64_t e) {
  const uint64_t bit = uint64_t{1} << (e & 63);
  if (!(msg[e >> 6] & bit)) return 0.0f;
  const auto bits = static_cast<uint32_t>(msg[2 * chunkWords]);
  float scale;
  std::memcpy(&scale, &bits, 4);
  return (msg[chunkWords + (e >> 6)] & bit) ? -scale : scale;
}

bool liecCompress(const float* g, uint64_t n, uint64_t chunkWords, int nranks,
                  svNonFinitePolicy_t policy, float* clean, uint64_t* msgs) {
  const bool nan = cleanCopy(g, n, policy, clean);
  const uint64_t chunk = chunkWords * 64, words = chunkSignsWords(chunkWords);
  for (int d = 0; d < nranks; ++d) {
    const ChunkSpan c = ownerChunk(n, chunk, d);
    chunkSignsEncode(clean + c.lo, c.len, chunkWords, msgs + d * words);
  }
  return nan;
}

bool liecOwner(const uint64_t* recv, int nranks, uint64_t len, uint64_t chunkWords,
               const float* e, float* eNew, uint64_t* result) {
  const uint64_t words = chunkSignsWords(chunkWords);
  for (int s = 0; s < nranks; ++s)
    if (!chunkSignsValid(recv + s * words, len, chunkWords)) return false;
  const float w = static_cast<float>(nranks);
  std::vector<float> a(len);
  for (uint64_t x = 0; x < len; ++x) {
    float sum = chunkSignsValue(recv, chunkWords, x);
    for (int s = 1; s < nranks; ++s) sum += chunkSignsValue(recv + s * words, chunkWords, x);
    a[x] = sum / w + e[x];
  }
  chunkSignsEncode(a.data(), len, chunkWords, result);
  float scale;
  const auto bits = static_cast<uint32_t>(result[2 * chunkWords]);
  std::memcpy(&scale, &bits, 4);
  efSignCommit(a.data(), scale, len, eNew);
  std::copy(e + len, e + chunkWords * 64, eNew + len);
  return true;
}

void liecOutput(const uint64_t* results, const uint64_t* own, const float* clean, uint64_t n,
                uint64_t chunkWords, float* out) {
  const uint64_t chunk = chunkWords * 64, words = chunkSignsWords(chunkWords);
  for (uint64_t i = 0; i < n; ++i) {
    const uint64_t d = i / chunk, x = i % chunk;
    const float chat = chunkSignsValue(results + d * words, chunkWords, x);
    const float c = chunkSignsValue(own + d * words, chunkWords, x);
    out[i] = chat + (clean[i] - c);
  }
}

bool cleanCopy(const float* g, uint64_t n, svNonFinitePolicy_t policy, float* out) {
  bool nan = false;
  for (uint64_t i = 0; i < n; ++i) {
    float v = g[i];
    if (isNaN(v)) {
      if (policy == SV_NONFINITE_IGNORE) v = 0.0f;
      else nan = true;
    }
    out[i] = v;
  }
  return nan;
}

}  // namespace signvote::ref
