// Host twins of the launchers of kernels/kernels.h for the emulated device (emu.h): each does
// what its contract in kernels.h says, through lib/reference where a reference step exists, on
// the stream (svemu::submit). Argument refusals follow the contracts; the scratch sizes are
// small stand-ins (the twins need no scratch), so the workspace layout is exercised with sizes
// of its own.
#include <cmath>
#include <cstring>
#include <vector>

#include "emu.h"
#include "kernels.h"
#include "logic.h"
#include "reference/mix.h"
#include "reference/schemes.h"
#include "reference/topk.h"

namespace signvote::kernels {
namespace {

constexpr size_t kScratch = 256;  // what every two-phase twin asks for

// The two-phase query: true when the call only asked for the size.
bool sizeOnly(void* temp, size_t* tempBytes) {
  if (temp == nullptr) *tempBytes = kScratch;
  return temp == nullptr;
}

bool closed(const uint32_t* gate) { return gate != nullptr && *gate != 0; }
bool isNaN(float x) { return std::isnan(x); }

uint64_t countNaN(const float* x, uint64_t n) {
  uint64_t c = 0;
  for (uint64_t i = 0; i < n; ++i) c += isNaN(x[i]);
  return c;
}

uint64_t checksumXor(const uint64_t* words, uint64_t count, uint64_t firstPosition = 0) {
  uint64_t x = 0;
  for (uint64_t w = 0; w < count; ++w) x ^= ref::checksumTerm(words[w], firstPosition + w);
  return x;
}

const ref::WireHeader& headerAt(const void* base, size_t stride, int s) {
  return *reinterpret_cast<const ref::WireHeader*>(static_cast<const char*>(base) + s * stride);
}
const uint64_t* payloadAt(const void* base, size_t stride, int s) {
  return reinterpret_cast<const uint64_t*>(static_cast<const char*>(base) + s * stride +
                                           sizeof(ref::WireHeader));
}

// flags[s] for a record whose checksum over `words` payload words is checked, and `valid`
// (computed only when entries <= K) tells the rest.
uint32_t recordFlags(const ref::WireHeader& h, const uint64_t* payload, uint64_t words,
                     bool valid) {
  uint32_t f = 0;
  if (ref::checksumFold(words, checksumXor(payload, words)) != h.payloadChecksum)
    f |= kRecordChecksum;
  if (!valid) f |= kRecordMalformed;
  return f;
}

// The flags of the W sparse records (valueWords value words after each payload);
// valid(entries, payload) is asked only when entries <= K.
template <class Valid>
void flagRecords(const void* records, size_t stride, int nranks, const ref::SparseLayout& s,
                 uint64_t valueWords, uint32_t* flags, Valid valid) {
  for (int r = 0; r < nranks; ++r) {
    const ref::WireHeader& h = headerAt(records, stride, r);
    const uint64_t* payload = payloadAt(records, stride, r);
    const bool ok = h.entries <= s.k && valid(h.entries, payload);
    flags[r] |= recordFlags(h, payload, s.payloadWords() + valueWords, ok);
  }
}

// The checks of addSparseVotes and sumSparseValues (valueWords after each payload); *asked
// when the call only asked for the scratch size.
cudaError_t recordArgs(void* temp, size_t* tempBytes, const ref::SparseLayout& s,
                       const void* records, size_t stride, int nranks, uint64_t valueWords,
                       const void* out, const uint32_t* flags, bool* asked) {
  if (tempBytes == nullptr || nranks <= 0) return cudaErrorInvalidValue;
  *asked = sizeOnly(temp, tempBytes);
  if (*asked) return cudaSuccess;
  if (*tempBytes < kScratch || records == nullptr || flags == nullptr || stride % 8 != 0 ||
      stride < s.recordBytes() + valueWords * 8 || (s.n > 0 && out == nullptr))
    return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

cudaError_t accumulateTopK(void* temp, size_t* tempBytes, const float* g, const float* residual,
                           float rho, uint64_t n, uint64_t k, svNonFinitePolicy_t policy,
                           float* acc, uint32_t* sel, TopKStatus* status, cudaStream_t stream) {
  if (tempBytes == nullptr || k > n || n > 0xFFFFFFFFull) return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  if (*tempBytes < kScratch || status == nullptr || (n > 0 && (g == nullptr || acc == nullptr)) ||
      (k > 0 && sel == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    *status = TopKStatus{};
    for (uint64_t i = 0; i < n; ++i) {
      float a = residual ? std::fma(rho, residual[i], g[i]) : g[i];
      if (isNaN(a)) {
        if (policy == SV_NONFINITE_IGNORE) a = 0.0f;
        else ++status->nanCount;
      }
      acc[i] = a;
    }
    if (k == 0) return;
    const uint32_t vstar = ref::selectTopKByMagnitude(acc, n, k, sel);
    status->vstar = status->prefix = vstar;
    status->prefixMask = 0x7FFFFFFFu;
    for (uint64_t j = 0; j < k; ++j) status->need += ref::magnitudeKey(acc[sel[j]]) == vstar;
    for (uint64_t i = 0; i < n; ++i)
      status->listCount += (ref::magnitudeKey(acc[i]) & 0x7FF00000u) >= (vstar & 0x7FF00000u);
  });
  return cudaSuccess;
}

cudaError_t squareNorm(void* temp, size_t* tempBytes, const float* x, uint64_t n,
                       svNonFinitePolicy_t policy, unsigned long long* out, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  if (*tempBytes < kScratch || out == nullptr || (n > 0 && x == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    const float s = ref::pairwiseSquareSum(x, n, policy);
    uint32_t bits;
    std::memcpy(&bits, &s, 4);
    *out = bits;
  });
  return cudaSuccess;
}

cudaError_t encodeSparse(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                         const float* acc, const uint32_t* sel, uint32_t* entries,
                         uint64_t* payload, RecordInfo* info, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  if (*tempBytes < kScratch || info == nullptr) return cudaErrorInvalidValue;
  const ref::SparseLayout s = layout;
  svemu::submit(stream, [=] {
    std::vector<uint8_t> negative(s.k);
    *info = RecordInfo{};
    info->entries = ref::s3gdEncodeSparse(s, acc, sel, entries, negative.data(), payload);
    info->checksumXor = checksumXor(payload, s.payloadWords());
  });
  return cudaSuccess;
}

cudaError_t writeHeader(const ref::WireHeader& tmpl, const RecordInfo* info,
                        uint64_t payloadWords, const unsigned long long* nanCount, void* dst,
                        cudaStream_t stream) {
  if (dst == nullptr) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    ref::WireHeader h = tmpl;
    if (info != nullptr) {
      h.entries = info->entries;
      h.aux = info->aux;
      h.payloadChecksum = ref::checksumFold(payloadWords, info->checksumXor);
    }
    if (nanCount != nullptr && *nanCount != 0) h.flags |= ref::kFlagNonFinite;
    ref::sealHeader(&h);
    std::memcpy(dst, &h, sizeof(h));
  });
  return cudaSuccess;
}

cudaError_t validateHeaders(const void* base, size_t stride, int nranks,
                            const ref::HeaderExpect& expect, uint32_t* verdict,
                            cudaStream_t stream) {
  if (nranks <= 0 || base == nullptr || verdict == nullptr || stride < sizeof(ref::WireHeader))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    for (int s = 0; s < nranks; ++s) {
      ref::WireHeader h;
      std::memcpy(&h, &headerAt(base, stride, s), sizeof(h));
      ref::HeaderExpect e = expect;
      e.rank = static_cast<uint32_t>(s);
      const char* why = nullptr;
      const svResult_t r = ref::validateHeader(h, e, &why);
      verdict[s] = r == svCorruptInput                  ? kHeaderCorrupt
                   : r == svMismatch                    ? kHeaderMismatch
                   : (h.flags & ref::kFlagNonFinite) != 0 ? kHeaderNonFinite
                                                          : kHeaderOk;
    }
  });
  return cudaSuccess;
}

cudaError_t addSparseVotes(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                           const void* records, size_t stride, int nranks, int32_t* votes,
                           uint32_t* flags, cudaStream_t stream) {
  bool asked = false;
  if (const cudaError_t e =
          recordArgs(temp, tempBytes, layout, records, stride, nranks, 0, votes, flags, &asked);
      e != cudaSuccess || asked)
    return e;
  const ref::SparseLayout s = layout;
  svemu::submit(stream, [=] {
    flagRecords(records, stride, nranks, s, 0, flags, [&](uint64_t m, const uint64_t* payload) {
      return ref::addSparseVotes(s, payload, m, votes);
    });
  });
  return cudaSuccess;
}

cudaError_t topkEfAccumulate(const float* g, const float* u, const float* v, float momentum,
                             uint64_t n, svNonFinitePolicy_t policy, float* uNew, float* vNew,
                             cudaStream_t stream) {
  const bool withU = momentum != 0.0f;
  if (n > 0 && (g == nullptr || v == nullptr || vNew == nullptr ||
                withU != (u != nullptr) || withU != (uNew != nullptr)))
    return cudaErrorInvalidValue;
  const bool ignore = policy == SV_NONFINITE_IGNORE;
  svemu::submit(stream, [=] {
    for (uint64_t i = 0; i < n; ++i) {
      float ui = g[i];
      if (withU) {
        ui = std::fma(momentum, u[i], ui);
        if (ignore && isNaN(ui)) ui = 0.0f;
        uNew[i] = ui;
      }
      float vi = v[i] + ui;
      if (ignore && isNaN(vi)) vi = 0.0f;
      vNew[i] = vi;
    }
  });
  return cudaSuccess;
}

cudaError_t encodeValues(const float* acc, const uint32_t* entries, uint64_t k,
                         uint64_t firstWord, uint64_t* values, RecordInfo* info,
                         cudaStream_t stream) {
  const uint64_t words = (k + 1) / 2;
  if (info == nullptr || (words > 0 && (acc == nullptr || entries == nullptr || values == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    ref::encodeValues(acc, entries, info->entries, k, values);
    info->checksumXor ^= checksumXor(values, words, firstWord);
  });
  return cudaSuccess;
}

cudaError_t sumSparseValues(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                            const void* records, size_t stride, int nranks, float* sums,
                            uint32_t* flags, cudaStream_t stream) {
  const uint64_t valueWords = (layout.k + 1) / 2;
  bool asked = false;
  if (const cudaError_t e = recordArgs(temp, tempBytes, layout, records, stride, nranks,
                                       valueWords, sums, flags, &asked);
      e != cudaSuccess || asked)
    return e;
  const ref::SparseLayout s = layout;
  svemu::submit(stream, [=] {
    flagRecords(records, stride, nranks, s, valueWords, flags,
                [&](uint64_t m, const uint64_t* payload) {
                  return ref::sparseValuesValid(s, payload, m, payload + s.payloadWords());
                });
    for (uint64_t i = 0; i < s.n; ++i) sums[i] = 0.0f;
    for (int r = 0; r < nranks; ++r) {
      if (flags[r] != 0) continue;
      const uint64_t* payload = payloadAt(records, stride, r);
      ref::addSparseValues(s, payload, headerAt(records, stride, r).entries,
                           payload + s.payloadWords(), sums);
    }
  });
  return cudaSuccess;
}

cudaError_t copySelected(const float* src, const uint32_t* sel, uint64_t k, uint64_t n,
                         bool zeroOthers, float* dst, const uint32_t* gate, cudaStream_t stream) {
  if (k > n || (n > 0 && dst == nullptr) || (k > 0 && (src == nullptr || sel == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (closed(gate)) return;
    if (zeroOthers)
      for (uint64_t i = 0; i < n; ++i) dst[i] = 0.0f;
    for (uint64_t j = 0; j < k; ++j) dst[sel[j]] = src[sel[j]];
  });
  return cudaSuccess;
}

cudaError_t efSignCompress(void* temp, size_t* tempBytes, const float* g, const float* e,
                           uint64_t n, svNonFinitePolicy_t policy, float* p, uint64_t* planes,
                           RecordInfo* info, unsigned long long* nanCount, cudaStream_t stream) {
  if (tempBytes == nullptr) return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  if (*tempBytes < kScratch || info == nullptr || nanCount == nullptr ||
      (n > 0 && (g == nullptr || e == nullptr || p == nullptr || planes == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    *info = RecordInfo{};
    if (n == 0) return;
    float scale = 0.0f;
    ref::efSignCompress(g, e, n, policy, p, planes, &scale);
    if (policy != SV_NONFINITE_IGNORE)
      for (uint64_t i = 0; i < n; ++i) *nanCount += isNaN(g[i] + e[i]);
    uint32_t bits;
    std::memcpy(&bits, &scale, 4);
    info->aux = bits;
    info->checksumXor = checksumXor(planes, 2 * ((n + 63) / 64));
  });
  return cudaSuccess;
}

cudaError_t checkScaledRecords(void* temp, size_t* tempBytes, const void* records,
                               size_t stride, int nranks, uint64_t n, uint32_t* flags,
                               cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS) return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  const uint64_t words = 2 * ((n + 63) / 64);
  if (*tempBytes < kScratch || records == nullptr || flags == nullptr ||
      stride < sizeof(ref::WireHeader) + words * 8)
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    for (int r = 0; r < nranks; ++r) {
      const ref::WireHeader& h = headerAt(records, stride, r);
      const uint64_t* planes = payloadAt(records, stride, r);
      const bool valid = ref::scaledPlanesValid(planes, n) && (h.aux >> 32) == 0;
      flags[r] |= recordFlags(h, planes, words, valid);
    }
  });
  return cudaSuccess;
}

cudaError_t efSignMean(const void* records, size_t stride, int nranks, uint64_t n, float* out,
                       const uint32_t* gate, cudaStream_t stream) {
  if (nranks <= 0 || (n > 0 && (records == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (closed(gate) || n == 0) return;
    std::vector<const uint64_t*> planes(nranks);
    std::vector<float> scales(nranks);
    for (int r = 0; r < nranks; ++r) {
      planes[r] = payloadAt(records, stride, r);
      const auto bits = static_cast<uint32_t>(headerAt(records, stride, r).aux);
      std::memcpy(&scales[r], &bits, 4);
    }
    ref::efSignMean(planes.data(), scales.data(), nranks, n, out);
  });
  return cudaSuccess;
}

cudaError_t efSignCommit(const float* p, const RecordInfo* info, uint64_t n, float* e,
                         const uint32_t* gate, cudaStream_t stream) {
  if (n > 0 && (p == nullptr || info == nullptr || e == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (closed(gate) || n == 0) return;
    const auto bits = static_cast<uint32_t>(info->aux);
    float scale;
    std::memcpy(&scale, &bits, 4);
    ref::efSignCommit(p, scale, n, e);
  });
  return cudaSuccess;
}

cudaError_t liecCompress(void* temp, size_t* tempBytes, const float* g, uint64_t n,
                         uint64_t chunkWords, int nranks, svNonFinitePolicy_t policy,
                         float* clean, uint64_t* msgs, unsigned long long* nanCount,
                         cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS ||
      (n + 63) / 64 > chunkWords * nranks)
    return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  const uint64_t total = 64 * chunkWords * nranks;
  if (*tempBytes < kScratch || nanCount == nullptr ||
      (total > 0 && (clean == nullptr || msgs == nullptr)) || (n > 0 && g == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (policy != SV_NONFINITE_IGNORE) *nanCount += countNaN(g, n);
    ref::liecCompress(g, n, chunkWords, nranks, policy, clean, msgs);
    for (uint64_t i = n; i < total; ++i) clean[i] = 0.0f;
  });
  return cudaSuccess;
}

cudaError_t checkChunkSigns(const uint64_t* msgs, int count, uint64_t chunkWords, uint64_t n,
                            int owner, uint32_t* flags, cudaStream_t stream) {
  if (count <= 0 || count > SV_MAX_RANKS || owner < -1 || owner >= SV_MAX_RANKS ||
      msgs == nullptr || flags == nullptr)
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    const uint64_t words = ref::chunkSignsWords(chunkWords);
    for (int s = 0; s < count; ++s) {
      const uint64_t len = ref::ownerChunk(n, 64 * chunkWords, owner >= 0 ? owner : s).len;
      if (!ref::chunkSignsValid(msgs + s * words, len, chunkWords)) *flags |= 1u;
    }
  });
  return cudaSuccess;
}

cudaError_t liecOwner(void* temp, size_t* tempBytes, const uint64_t* recv, int nranks,
                      uint64_t n, int owner, uint64_t chunkWords, const float* e, float* a,
                      float* eNew, uint64_t* result, uint32_t* flags, cudaStream_t stream) {
  if (tempBytes == nullptr || nranks <= 0 || nranks > SV_MAX_RANKS || owner < 0 ||
      owner >= nranks)
    return cudaErrorInvalidValue;
  if (sizeOnly(temp, tempBytes)) return cudaSuccess;
  const uint64_t chunk = 64 * chunkWords;
  if (*tempBytes < kScratch || recv == nullptr || result == nullptr || flags == nullptr ||
      (chunk > 0 && (e == nullptr || a == nullptr || eNew == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    const uint64_t len = ref::ownerChunk(n, chunk, owner).len;
    if (!ref::liecOwner(recv, nranks, len, chunkWords, e, eNew, result)) {
      *flags |= 1u;
      result[2 * chunkWords] = ~uint64_t{0};  // what every receiver's check rejects
    }
  });
  return cudaSuccess;
}

cudaError_t liecAverageOwner(const float* sum, const float* e, int nranks, uint64_t chunk,
                             float* a, float* eNew, cudaStream_t stream) {
  if (nranks <= 0 || (chunk > 0 && (sum == nullptr || e == nullptr || a == nullptr ||
                                    eNew == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    for (uint64_t x = 0; x < chunk; ++x) {
      a[x] = sum[x] / static_cast<float>(nranks) + e[x];
      eNew[x] = -0.0f;
    }
  });
  return cudaSuccess;
}

cudaError_t liecOutput(const uint64_t* results, const uint64_t* own, const float* clean,
                       uint64_t n, uint64_t chunkWords, float* out, const uint32_t* gate,
                       cudaStream_t stream) {
  if (n > 0 && (results == nullptr || own == nullptr || clean == nullptr || out == nullptr ||
                chunkWords == 0))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (!closed(gate) && n > 0) ref::liecOutput(results, own, clean, n, chunkWords, out);
  });
  return cudaSuccess;
}

cudaError_t packSigns(const float* g, uint64_t n, svVote_t vote, uint64_t chunkWords,
                      int nranks, svNonFinitePolicy_t policy, uint64_t* out,
                      unsigned long long* nanCount, cudaStream_t stream) {
  const uint64_t totalWords = uint64_t(nranks) * chunkWords;
  if (nranks <= 0 || totalWords * 64 < n || (n > 0 && g == nullptr) || nanCount == nullptr ||
      (totalWords > 0 && out == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (totalWords == 0) return;
    if (policy != SV_NONFINITE_IGNORE) *nanCount += countNaN(g, n);
    ref::packSigns(g, n, vote, chunkWords, nranks, policy, out);
  });
  return cudaSuccess;
}

cudaError_t signumMomentum(const float* g, const float* m, float beta, uint64_t n,
                           svNonFinitePolicy_t policy, float* mNew, cudaStream_t stream) {
  if (n > 0 && (g == nullptr || m == nullptr || mNew == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (n > 0) ref::signumMomentum(g, m, beta, n, policy, mNew);
  });
  return cudaSuccess;
}

cudaError_t voteSignPlanes(const uint64_t* recv, svVote_t vote, uint64_t chunkWords,
                           int nranks, uint64_t* result, uint32_t* flags, cudaStream_t stream) {
  if (nranks <= 0 || nranks > SV_MAX_RANKS || flags == nullptr ||
      (chunkWords > 0 && (recv == nullptr || result == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (chunkWords > 0 && !ref::voteSignPlanes(recv, vote, chunkWords, nranks, result))
      *flags |= 1u;
  });
  return cudaSuccess;
}

cudaError_t s3gdTernary(const float* acc, const uint32_t* sel, uint64_t k, uint64_t padded,
                        unsigned countBytes, void* out, cudaStream_t stream) {
  if ((countBytes != 1 && countBytes != 2) || (padded > 0 && out == nullptr) ||
      (k > 0 && (acc == nullptr || sel == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (padded > 0) ref::s3gdTernary(acc, sel, k, padded, padded, countBytes, out);
  });
  return cudaSuccess;
}

cudaError_t s3gdPlanes(const float* acc, const uint32_t* sel, uint64_t k, uint64_t chunkWords,
                       int nranks, uint64_t* out, cudaStream_t stream) {
  const uint64_t words = uint64_t(nranks) * 2 * chunkWords;
  if (nranks <= 0 || (words > 0 && out == nullptr) ||
      (k > 0 && (acc == nullptr || sel == nullptr || chunkWords == 0)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (words > 0) ref::s3gdPlanes(acc, sel, k, chunkWords, nranks, out);
  });
  return cudaSuccess;
}

cudaError_t countsToPlanes(const void* counts, unsigned countBytes, uint64_t chunkWords,
                           int nranks, uint64_t* planes, uint32_t* flags, cudaStream_t stream) {
  if ((countBytes != 1 && countBytes != 2) || flags == nullptr ||
      (chunkWords > 0 && (counts == nullptr || planes == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (chunkWords > 0 && !ref::countsToPlanes(counts, countBytes, chunkWords, nranks, planes))
      *flags |= 1u;
  });
  return cudaSuccess;
}

cudaError_t poisonPlanesWhen(const uint32_t* when, uint64_t chunkWords, uint64_t* planes,
                             cudaStream_t stream) {
  if (when == nullptr || (chunkWords > 0 && planes == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (*when == 0) return;
    for (uint64_t w = 0; w < chunkWords; ++w) {
      planes[w] = 0;
      planes[chunkWords + w] = ~uint64_t{0};
    }
  });
  return cudaSuccess;
}

cudaError_t checkResultPlanes(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                              int nranks, uint32_t* flags, cudaStream_t stream) {
  if (flags == nullptr || nranks <= 0 || (chunkWords > 0 && all == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (planes != 2) return;
    for (int s = 0; s < nranks; ++s)
      for (uint64_t w = 0; w < chunkWords; ++w) {
        const uint64_t* block = all + uint64_t(s) * 2 * chunkWords;
        if (block[chunkWords + w] & ~block[w]) *flags |= 1u;
      }
  });
  return cudaSuccess;
}

cudaError_t planesToOutput(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                           uint64_t n, float* out, const uint32_t* gate, cudaStream_t stream) {
  if ((planes != 1 && planes != 2) ||
      (n > 0 && (chunkWords == 0 || all == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (!closed(gate) && n > 0) ref::planesToOutput(all, planes, chunkWords, n, out);
  });
  return cudaSuccess;
}

cudaError_t votesToOutput(const int32_t* votes, uint64_t n, float* out, const uint32_t* gate,
                          cudaStream_t stream) {
  if (n > 0 && (votes == nullptr || out == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (!closed(gate)) ref::votesToOutput(votes, n, out);
  });
  return cudaSuccess;
}

cudaError_t s3gdCommit(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n,
                       float* residual, const uint32_t* gate, cudaStream_t stream) {
  if (k > n || (n > 0 && (acc == nullptr || residual == nullptr)) || (k > 0 && sel == nullptr))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (closed(gate) || n == 0) return;
    std::memmove(residual, acc, n * 4);
    for (uint64_t j = 0; j < k; ++j) residual[sel[j]] = 0.0f;
  });
  return cudaSuccess;
}

cudaError_t cleanCopy(const float* g, uint64_t n, svNonFinitePolicy_t policy, float* out,
                      unsigned long long* nanCount, cudaStream_t stream) {
  if (nanCount == nullptr || (n > 0 && (g == nullptr || out == nullptr)))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (policy != SV_NONFINITE_IGNORE) *nanCount += countNaN(g, n);
    ref::cleanCopy(g, n, policy, out);
  });
  return cudaSuccess;
}

cudaError_t decideVerdict(const uint32_t* headerVerdicts, int nranks, const uint32_t* flags,
                          int nflags, svNonFinitePolicy_t policy, uint32_t* sticky,
                          uint32_t* gate, uint32_t* nanOut, cudaStream_t stream) {
  if (nranks <= 0 || headerVerdicts == nullptr || (nflags > 0 && flags == nullptr) ||
      sticky == nullptr || gate == nullptr || nanOut == nullptr)
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    const logic::Decision d = logic::decide(headerVerdicts, nranks, flags, nflags,
                                            policy == SV_NONFINITE_PROPAGATE, *sticky);
    if (*sticky == 0 && d.code != 0) *sticky = d.code;
    *gate = d.gate;
    *nanOut = d.nanOut;
  });
  return cudaSuccess;
}

cudaError_t fillNaNWhen(float* out, uint64_t n, const uint32_t* when, cudaStream_t stream) {
  if (when == nullptr || (n > 0 && out == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (*when == 0) return;
    const uint32_t nanBits = 0x7FC00000u;
    for (uint64_t i = 0; i < n; ++i) std::memcpy(&out[i], &nanBits, 4);
  });
  return cudaSuccess;
}

cudaError_t divideGated(const float* sum, uint64_t n, float w, float* out, const uint32_t* gate,
                        cudaStream_t stream) {
  if (n > 0 && (sum == nullptr || out == nullptr)) return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    if (closed(gate)) return;
    for (uint64_t i = 0; i < n; ++i) out[i] = sum[i] / w;
  });
  return cudaSuccess;
}

// The emulated runtime answers for the device (svemu::setKernelImage).
cudaError_t probeKernelImage() {
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&probeKernelImage));
}

const char* kernelArchitectures() { return "none (host twins of the kernels)"; }

cudaError_t addInto(void* dst, const void* src, uint64_t count, unsigned elemBytes, bool isFloat,
                    cudaStream_t stream) {
  if ((count > 0 && (dst == nullptr || src == nullptr)) ||
      !(isFloat ? elemBytes == 4 : elemBytes == 1 || elemBytes == 2))
    return cudaErrorInvalidValue;
  svemu::submit(stream, [=] {
    for (uint64_t i = 0; i < count; ++i) {
      if (isFloat) static_cast<float*>(dst)[i] += static_cast<const float*>(src)[i];
      else if (elemBytes == 1)
        static_cast<int8_t*>(dst)[i] = static_cast<int8_t>(static_cast<int8_t*>(dst)[i] +
                                                           static_cast<const int8_t*>(src)[i]);
      else
        static_cast<int16_t*>(dst)[i] = static_cast<int16_t>(
            static_cast<int16_t*>(dst)[i] + static_cast<const int16_t*>(src)[i]);
    }
  });
  return cudaSuccess;
}

}  // namespace signvote::kernels
