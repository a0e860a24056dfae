// Host golden model of every per-rank step of the schemes. lib/exchange.cc strings these
// together with transport collectives; the GPU kernels must reproduce each step bit for bit.
// Bit-planes: a chunk of C elements (C a multiple of 64) is C/64 little-endian 64-bit words per
// plane, element e at bit e%64 of word e/64. Plane sets: binary {negative}; ternary {nonzero,
// negative}, where negative implies nonzero.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "signvote/signvote.h"
#include "sparse_record.h"
#include "wire.h"

namespace signvote::ref {

// ---- s3gd_mv ----
// acc = fma(rho, residual, g) in float32 (also dgs's u' = fma(m, u, g)). NaN results are
// replaced by +0.0 under SV_NONFINITE_IGNORE. Then sel = exact top-K of |acc| (see topk.h).
// Returns true when a NaN was found (and not ignored).
bool s3gdAccumulateSelect(const float* g, const float* residual, float rho, uint64_t n,
                          uint64_t k, svNonFinitePolicy_t policy, float* acc, uint32_t* sel);

// Sparse record payload from the selection: entries = the selected coordinates with non-zero
// acc, in index order. Returns the number of entries.
uint64_t s3gdEncodeSparse(const SparseLayout& layout, const float* acc, const uint32_t* sel,
                          uint32_t* entries, uint8_t* entryNeg, uint64_t* payload);

// Adds the record's votes (-1 for negative, +1 otherwise) into votes[0..n). False if malformed.
bool addSparseVotes(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                    int32_t* votes);

// Ternary values sign(acc) on the selection, 0 elsewhere, as int8 (countBytes 1) or int16
// (countBytes 2) into out[0 .. nranks*chunk) (zero padding beyond n).
void s3gdTernary(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n, uint64_t padded,
                 unsigned countBytes, void* out);

// The signs format's ternary planes of s3gd_mv: nranks blocks of two planes (nonzero,
// negative) of chunkWords words, set at the selection by sign(acc) (a NaN or a zero casts no
// vote, as in s3gdTernary), every other bit zero.
void s3gdPlanes(const float* acc, const uint32_t* sel, uint64_t k, uint64_t chunkWords,
                int nranks, uint64_t* out);

// Owner step of the counts format: summed counts of one chunk -> ternary result planes. False
// when a count is outside [-nranks, nranks] (a corrupt contribution).
bool countsToPlanes(const void* counts, unsigned countBytes, uint64_t chunkWords, int nranks,
                    uint64_t* planes);

// Commit: residual = acc with residual[sel] = +0.0.
void s3gdCommit(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n, float* residual);

// ---- signsgd_mv ----
// Packs the signs of g into nranks destination blocks of `planes` planes of chunkWords words
// each (block d covers elements [d*chunk, (d+1)*chunk)). Returns true when a NaN was found
// (not ignored); under SV_NONFINITE_IGNORE a NaN packs as +0.0.
bool packSigns(const float* g, uint64_t n, svVote_t vote, uint64_t chunkWords, int nranks,
               svNonFinitePolicy_t policy, uint64_t* out);

// Owner step: recv holds nranks blocks of the owned chunk's planes; writes the result planes.
// False when a ternary input has a negative bit without its nonzero bit.
bool voteSignPlanes(const uint64_t* recv, svVote_t vote, uint64_t chunkWords, int nranks,
                    uint64_t* result);

// ---- Signum (signsgd_mv with momentum) ----
// mNew = fma(beta, m, (1 - beta) * g) in float32 ((1 - beta) and the product rounded first);
// NaN results become +0.0 under SV_NONFINITE_IGNORE. Returns true when a NaN was found (and not
// ignored).
bool signumMomentum(const float* g, const float* m, float beta, uint64_t n,
                    svNonFinitePolicy_t policy, float* mNew);

// ---- ef_sign ----
// sum |x[i]| by a fixed binary tree: level 1 adds neighbours (x0+x1, x2+x3, ...), each level
// then adds neighbouring partial sums, the array padded with zeros to a power of two; float32.
// Any aligned power-of-two block is summed exactly as a GPU block reduction sums it.
float pairwiseAbsSum(const float* x, uint64_t n);
// The same tree over x[i]^2 (float32 products); NaN counts as 0 under SV_NONFINITE_IGNORE.
float pairwiseSquareSum(const float* x, uint64_t n, svNonFinitePolicy_t policy);
// p = g + e (float32; NaN becomes +0.0 under IGNORE), scale = pairwiseAbsSum(p) / float(n),
// planes = ternary sign planes of p (nonzero, negative) over ceil(n/64) words each, padding
// zero. Returns true when a NaN was found (not ignored).
bool efSignCompress(const float* g, const float* e, uint64_t n, svNonFinitePolicy_t policy,
                    float* p, uint64_t* planes, float* scale);
// True when planes (2 x ceil(n/64) words) are well formed: negative implies nonzero, no bit at
// or past n.
bool scaledPlanesValid(const uint64_t* planes, uint64_t n);
// out[i] = (c_0[i] + c_1[i] + ... + c_{W-1}[i]) / W in float32, in rank order, with
// c_s[i] = -scale_s, +0.0 or +scale_s from rank s's planes.
void efSignMean(const uint64_t* const* planes, const float* scales, int nranks, uint64_t n,
                float* out);
// e = p - c with c as above (so e = p where sign(p) = 0).
void efSignCommit(const float* p, float scale, uint64_t n, float* e);

// ---- topk_ef (DGC-style top-K values) ----
// uNew = fma(momentum, u, g) (uNew = g and u unused when momentum == 0), vNew = v + uNew, NaN
// in either becoming +0.0 under IGNORE; sel = exact top-K of |vNew| (topk.h). Returns true
// when a NaN was found (and not ignored).
bool topkEfAccumulateSelect(const float* g, const float* u, const float* v, float momentum,
                            uint64_t n, uint64_t k, svNonFinitePolicy_t policy, float* uNew,
                            float* vNew, uint32_t* sel);
// The values array that follows a sparse payload: entry j's float32 bits in bits
// 32*(j%2) .. 32*(j%2)+31 of word j/2, ceil(K/2) words, padding zero.
void encodeValues(const float* v, const uint32_t* entries, uint64_t m, uint64_t k,
                  uint64_t* words);
// True when the sparse payload decodes (decodeSparse) and its values agree: non-zero, the same
// sign bit as the entry's, zero padding past `entries`.
bool sparseValuesValid(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                       const uint64_t* values);
// sums[index] += value for each entry of a valid record (call per rank, in rank order).
void addSparseValues(const SparseLayout& layout, const uint64_t* payload, uint64_t entries,
                     const uint64_t* values, float* sums);

// ---- dgs (SAMomentum; see signvote.h) ----
// The step before sending is s3gd_mv's with rho = m: uNew = fma(m, u, g), then its top-K.
// u = uNew on the selection, uNew / m (float32) elsewhere.
void dgsCommit(const float* uNew, const uint32_t* sel, uint64_t k, uint64_t n, float m,
               float* u);
// Downlink secondary compression: a = d + g (float32), sel = exact top-K of |a|; out = a on
// sel and +0.0 elsewhere; d = a with sel set to +0.0. g may alias out.
void dgsDownlink(const float* g, float* d, uint64_t n, uint64_t k, float* a, uint32_t* sel,
                 float* out);

// ---- dgs_async (docs/formats.md) ----
// The server's check of a push: the 64-byte header then payloadWords words, a sparse-values
// record of `layout` (e: from the worker served, its push count as seq) whose aux carries the
// worker's downlink K. svSuccess, or svMismatch / svCorruptInput with the reason in *why (a
// static string). A push flagged NaN carries no payload to check.
svResult_t checkAsyncPush(const uint64_t* record, size_t payloadWords, const HeaderExpect& e,
                          const SparseLayout& layout, uint64_t downK, const char** why);
// The worker's check of the reply to its push (e: from rank 0, its own seq, k = downK; the
// flags NaN and rejected allowed): svSuccess when the reply is well formed, with the server's
// verdict in *refusal (svSuccess: D follows, N floats when downK = 0, else a sparse-values
// record of (N, downK); svMismatch or svCorruptInput: the push was refused); svRemoteError
// when it is not, with the reason in *why. A reply echoes the push's NaN flag.
svResult_t checkAsyncReply(const uint64_t* reply, size_t payloadWords, const HeaderExpect& e,
                           bool pushNaN, svResult_t* refusal, const char** why);

// Owner chunk d of n elements cut in chunks of `chunk`: its first element and its length
// (the last chunks may be short or empty).
struct ChunkSpan {
  uint64_t lo, len;
};
inline ChunkSpan ownerChunk(uint64_t n, uint64_t chunk, int d) {
  const uint64_t lo = std::min<uint64_t>(n, static_cast<uint64_t>(d) * chunk);
  return {lo, std::min<uint64_t>(n - lo, chunk)};
}

// ---- liec (chunk signs; see signvote.h) ----
// A chunk-signs message holds len <= 64 * chunkWords elements of x as a nonzero plane and a
// negative plane of chunkWords words each, then one word with the float32 bits of the scale
// sum(|x|) / len (the ef_sign tree; 0 when len = 0) in its low half.
inline uint64_t chunkSignsWords(uint64_t chunkWords) { return 2 * chunkWords + 1; }
void chunkSignsEncode(const float* x, uint64_t len, uint64_t chunkWords, uint64_t* msg);
// Well formed: negative implies nonzero, no bit at or past len, a scale that is not negative
// and nothing in the high half of its word.
bool chunkSignsValid(const uint64_t* msg, uint64_t len, uint64_t chunkWords);
// Element e of the message: -scale, +0.0 or +scale.
float chunkSignsValue(const uint64_t* msg, uint64_t chunkWords, uint64_t e);
// One rank's uplink: clean = g with NaN as +0.0 under IGNORE, then one message per owner chunk
// d (elements [d * 64 * chunkWords, ...) of n) into msgs, d after d. Returns true when a NaN
// was found (not ignored).
bool liecCompress(const float* g, uint64_t n, uint64_t chunkWords, int nranks,
                  svNonFinitePolicy_t policy, float* clean, uint64_t* msgs);
// Owner of a chunk of len elements: recv holds the nranks messages for it in rank order, e its
// error (64 * chunkWords floats). a = mean of the messages' values + e, result = the message
// of a, eNew = a - C(a) (e past len copied). False when a message is malformed.
bool liecOwner(const uint64_t* recv, int nranks, uint64_t len, uint64_t chunkWords,
               const float* e, float* eNew, uint64_t* result);
// Rank output: out[x] = c_hat[x] + (clean[x] - c[x]), c_hat from the gathered result messages,
// c from the rank's own uplink messages.
void liecOutput(const uint64_t* results, const uint64_t* own, const float* clean, uint64_t n,
                uint64_t chunkWords, float* out);

// ---- adaptive K (SV_ADAPTIVE_K_NORM_RATIO; see signvote.h) ----
struct AdaptiveState {
  bool started = false;  // E holds a value
  float mean = 0.0f;     // E, the running mean of G
  uint64_t spent = 0;    // K_t summed over this window
  uint64_t step = 0;     // exchanges done in this window
};
// K_t for global squared norm G (kbar: the configured K).
uint64_t adaptiveK(const svBucketConfig_t& c, uint64_t kbar, const AdaptiveState& s, float G);
// The state after a successful exchange that used K_t.
AdaptiveState adaptiveAdvance(const svBucketConfig_t& c, AdaptiveState s, float G, uint64_t kt);

// ---- all voting formats ----
// Output from nranks blocks of result planes (binary 1 plane, ternary 2): -1.0f, +0.0f or
// +1.0f per element. False when a ternary block has a negative bit without nonzero.
bool planesToOutput(const uint64_t* all, unsigned planes, uint64_t chunkWords, uint64_t n,
                    float* out);
// Output from per-coordinate vote sums: sign(votes[i]) as -1.0f, +0.0f, +1.0f.
void votesToOutput(const int32_t* votes, uint64_t n, float* out);

// ---- dense ----
// Copies g, replacing NaN by +0.0 under SV_NONFINITE_IGNORE. Returns true when a NaN was found
// (not ignored).
bool cleanCopy(const float* g, uint64_t n, svNonFinitePolicy_t policy, float* out);

}  // namespace signvote::ref
