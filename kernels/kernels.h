// CUDA kernels of every per-rank step of the schemes, each bit-identical to its host model in
// lib/reference/ (the golden model; see tests/kernel/). Host-callable launchers; no NCCL, no
// allocation, no host synchronisation: everything is enqueued on `stream` in order, so a whole
// step can be captured in a CUDA graph. Pointers are device pointers unless said otherwise; no
// alignment is required beyond the element type's (misaligned starts are supported).
//
// Launchers that need scratch memory follow CUB's two-phase pattern: with temp == nullptr they
// only store the bytes needed in *tempBytes and enqueue nothing. Every launcher returns the
// first CUDA error met while enqueuing (the launch's own, or CUB's).
//
// Device-side verdicts: kernels that validate data received from other ranks OR a flag into a
// caller-zeroed u32 (`flags`); kernels that commit results take an optional `gate` (a device
// u32): when it is non-null and non-zero at run time the kernel writes nothing. That is how a
// failed exchange leaves outputs and residuals untouched without a round trip to the host.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "reference/sparse_record.h"
#include "reference/wire.h"
#include "signvote/signvote.h"

namespace signvote::kernels {

// ---- top-K (kernels/topk) -----------------------------------------------------------------

// Device-resident facts of one selection.
struct TopKStatus {
  uint32_t vstar;               // the K-th largest key (bits & 0x7FFFFFFF); 0 when K = 0
  uint32_t need;                // keys equal to vstar that are taken (the lowest indices)
  uint32_t prefix, prefixMask;  // radix state between passes
  unsigned long long nanCount;  // NaN values of acc left in place (policy error / propagate)
  unsigned long long listCount;  // keys on the candidate list (kept when <= n / 4); 0 if K = 0
};

// acc = residual ? fma(rho, residual, g) : g, in float32 (__fmaf_rn, as std::fma on the host);
// a NaN in acc becomes +0.0 under SV_NONFINITE_IGNORE and is counted otherwise. Then
// sel[0..k) = the exact top-K of |acc| in increasing index order: every key above the K-th
// largest key v*, then the keys equal to v* with the lowest indices (+0.0 and -0.0 tie).
// NaN keys rank above +inf; which NaN is kept is unspecified, since a NaN fails or poisons the
// exchange under every policy that keeps it. acc may alias g (in place, without a residual,
// nothing is written but replaced NaN); k <= n; n < 2^32.
// Cost: one pass over g (and residual) writing acc, and one over acc listing the keys whose top
// digit is at or above the K-th's; the two filter passes and the two gather passes (count per
// tile, then a stable scatter) read only those when they are at most n / 4 (gradients at
// K <= 10%), else all of acc. No per-element global atomics. temp holds the list's room (its
// indices and keys: 2n bytes).
cudaError_t accumulateTopK(void* temp, size_t* tempBytes, const float* g, const float* residual,
                           float rho, uint64_t n, uint64_t k, svNonFinitePolicy_t policy,
                           float* acc, uint32_t* sel, TopKStatus* status, cudaStream_t stream);

// Adaptive K's squared norm (kernels/scaled/tree.cu): the low half of *out = the float32 bits
// of ref::pairwiseSquareSum(x, n, policy), the tree summed level by level in tiles as the
// scales are (+0.0 when n = 0; a NaN term, kept unless SV_NONFINITE_IGNORE, makes the sum a
// NaN whose payload may differ from the host's). Two-phase: temp holds the tile sums.
cudaError_t squareNorm(void* temp, size_t* tempBytes, const float* x, uint64_t n,
                       svNonFinitePolicy_t policy, unsigned long long* out, cudaStream_t stream);

// ---- sparse records (kernels/sparse) --------------------------------------------------------

// Device facts of one encoded record.
struct RecordInfo {
  unsigned long long entries;      // coded entries (selected coordinates with acc != 0)
  unsigned long long checksumXor;  // XOR of ref::checksumTerm over the payload words
  unsigned long long aux;          // the header's aux (ef_sign: the scale's bits), else 0
};

// The payload of ref::s3gdEncodeSparse, same bits: entries = sel[j] with acc[sel[j]] != 0
// (NaN included), in order; every payload word is written (padding zero). `entries` is scratch
// of layout.k u32. info receives the entry count and the payload's checksum terms.
cudaError_t encodeSparse(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                         const float* acc, const uint32_t* sel, uint32_t* entries,
                         uint64_t* payload, RecordInfo* info, cudaStream_t stream);

// Writes the 64-byte header `tmpl` to dst (device) after filling in, from device memory when
// the pointer is non-null: entries and aux (info->entries, info->aux), the payload checksum (from
// info->checksumXor over payloadWords words) and the non-finite flag (*nanCount != 0); then
// seals it (ref::sealHeader).
cudaError_t writeHeader(const ref::WireHeader& tmpl, const RecordInfo* info,
                        uint64_t payloadWords, const unsigned long long* nanCount, void* dst,
                        cudaStream_t stream);

// Verdict codes of validateHeaders, one u32 per sender.
enum HeaderVerdict : uint32_t {
  kHeaderOk = 0,
  kHeaderCorrupt = 1,   // magic, checksum, rank, entries > k, unknown flags
  kHeaderMismatch = 2,  // version, scheme, format, vote, seq, count, k
  kHeaderNonFinite = 3  // valid, and the sender had a NaN
};
// Checks the W headers at base + s*stride against what rank s should have sent (the same
// checks as ref::validateHeader); verdict[s] receives one HeaderVerdict.
cudaError_t validateHeaders(const void* base, size_t stride, int nranks,
                            const ref::HeaderExpect& expect, uint32_t* verdict,
                            cudaStream_t stream);

// Record flags (ORed into flags[s], caller-zeroed, one u32 per record).
enum RecordFlag : uint32_t {
  kRecordChecksum = 1u << 0,   // payload checksum differs from the header's
  kRecordMalformed = 1u << 1,  // entries > K, bit count, index order or range, padding
};
// For the W records at records + s*stride (64-byte header, then the payload): verifies each
// record as ref::decodeSparse does (plus the header's payload checksum) and adds its votes
// (-1 negative, +1 otherwise) into votes[0..n) (caller-zeroed). A malformed record may add
// votes for in-range indices before it is flagged, never outside [0, n).
cudaError_t addSparseVotes(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                           const void* records, size_t stride, int nranks, int32_t* votes,
                           uint32_t* flags, cudaStream_t stream);

// ---- sparse values: topk_ef's and dgs's records (kernels/sparse/values.cu, decode.cu) ------

// ref::topkEfAccumulateSelect before its selection: uNew = fma(momentum, u, g) when momentum
// != 0 (u and uNew then non-null), vNew = v + uNew (v + g without momentum), each NaN becoming
// +0.0 under SV_NONFINITE_IGNORE and left in place otherwise. accumulateTopK in place on vNew
// then selects and counts the NaN (a NaN in uNew always makes vNew NaN, so that count is the
// host's verdict). uNew and vNew may not alias u or v (the state commits later, gated).
cudaError_t topkEfAccumulate(const float* g, const float* u, const float* v, float momentum,
                             uint64_t n, svNonFinitePolicy_t policy, float* uNew, float* vNew,
                             cudaStream_t stream);

// ref::encodeValues, same bits: values[0..ceil(k/2)) from acc at entries[0..info->entries)
// (encodeSparse fills both earlier on the stream); every word is written, padding zero. The
// words' checksum terms, at payload positions firstWord + w, are XORed into info->checksumXor.
cudaError_t encodeValues(const float* acc, const uint32_t* entries, uint64_t k,
                         uint64_t firstWord, uint64_t* values, RecordInfo* info,
                         cudaStream_t stream);

// For the W sparse-values records at records + s*stride (header, sparse payload, then
// ceil(K/2) value words): flags[s] (caller-zeroed) |= kRecordChecksum when the checksum over
// payload and values differs from the header's, kRecordMalformed for what
// ref::sparseValuesValid refuses (the decode rules, a zero value or one whose sign is not its
// entry's, non-zero padding). Then sums[0..n) = +0.0 and, record after record in rank order,
// every record whose flags stayed zero adds its values, sums[index] = sums[index] + value in
// float32: ref::addSparseValues' bits. A failed record adds nothing.
cudaError_t sumSparseValues(void* temp, size_t* tempBytes, const ref::SparseLayout& layout,
                            const void* records, size_t stride, int nranks, float* sums,
                            uint32_t* flags, cudaStream_t stream);

// dst[sel[j]] = src[sel[j]] for j < k (sel in range); with zeroOthers every other element of
// dst[0..n) becomes +0.0 (dgs's downlink output; without it, SAMomentum's commit of the sent
// coordinates after divideGated). Gated.
cudaError_t copySelected(const float* src, const uint32_t* sel, uint64_t k, uint64_t n,
                         bool zeroOthers, float* dst, const uint32_t* gate, cudaStream_t stream);

// ---- ef_sign's scaled signs (kernels/scaled) -------------------------------------------------

// ref::efSignCompress, same bits: p = g + e (NaN as +0.0 under IGNORE, else counted into
// *nanCount, caller-zeroed), the record payload `planes` (nonzero then negative, ceil(n/64)
// words each, padding zero), and in *info (zeroed here) entries = 0, the payload's checksum
// terms and aux = the float32 bits of scale = pairwiseAbsSum(p) / float(n) (0 when n = 0), the
// tree summed level by level in tiles (logic.h: kTreeTile). Two-phase: temp holds the tile
// sums. p may not alias g or e.
cudaError_t efSignCompress(void* temp, size_t* tempBytes, const float* g, const float* e,
                           uint64_t n, svNonFinitePolicy_t policy, float* p, uint64_t* planes,
                           RecordInfo* info, unsigned long long* nanCount, cudaStream_t stream);

// For the W scaled-signs records at records + s*stride (header, then the planes of n
// elements): flags[s] |= kRecordChecksum when the payload checksum differs from the header's,
// kRecordMalformed when a negative bit lacks its nonzero bit, a bit lies at or past n, or aux
// has high bits (ref: the host's checks). Two-phase: temp holds W checksum accumulators.
cudaError_t checkScaledRecords(void* temp, size_t* tempBytes, const void* records,
                               size_t stride, int nranks, uint64_t n, uint32_t* flags,
                               cudaStream_t stream);

// ref::efSignMean over the W records (scale_s from header s's aux): out[i] = the c_s[i] summed
// in rank order, divided by float(W). Gated.
cudaError_t efSignMean(const void* records, size_t stride, int nranks, uint64_t n, float* out,
                       const uint32_t* gate, cudaStream_t stream);

// ref::efSignCommit: e = p - c with this rank's scale (info->aux from efSignCompress). Gated.
cudaError_t efSignCommit(const float* p, const RecordInfo* info, uint64_t n, float* e,
                         const uint32_t* gate, cudaStream_t stream);

// ---- liec's chunk signs (kernels/scaled/liec.cu) ------------------------------------------

// ref::liecCompress, same bits: clean[0..W*chunk) = g with NaN as +0.0 under IGNORE (else
// counted into *nanCount, caller-zeroed), zero past n; msgs = one chunk-signs message per
// owner chunk (planes nonzero and negative of chunkWords words, then the scale word: the tree
// sum of |clean| over the chunk divided by its length, 0 for an empty chunk). Two-phase: temp
// holds the tree's tile sums.
cudaError_t liecCompress(void* temp, size_t* tempBytes, const float* g, uint64_t n,
                         uint64_t chunkWords, int nranks, svNonFinitePolicy_t policy,
                         float* clean, uint64_t* msgs, unsigned long long* nanCount,
                         cudaStream_t stream);

// ref::chunkSignsValid over `count` messages: every message is of owner `owner`'s chunk (any
// owner of the world, whatever `count`), or with owner = -1 message s is of chunk s. *flags |= 1
// when any is malformed.
cudaError_t checkChunkSigns(const uint64_t* msgs, int count, uint64_t chunkWords, uint64_t n,
                            int owner, uint32_t* flags, cudaStream_t stream);

// ref::liecOwner for owner `owner`: checks the W received messages (*flags |= 1), a = their
// mean (rank order, / W) + e below the chunk's length and +0.0 past it, result = the message
// of a, eNew = a - C(a) (e past the length); a malformed message makes the result's scale
// word all ones, which every receiver's checkChunkSigns rejects (ref: poisonResult).
// Two-phase: temp holds the tree's tile sums.
cudaError_t liecOwner(void* temp, size_t* tempBytes, const uint64_t* recv, int nranks,
                      uint64_t n, int owner, uint64_t chunkWords, const float* e, float* a,
                      float* eNew, uint64_t* result, uint32_t* flags, cudaStream_t stream);

// An averaging exchange's owner step: a = sum / W + e, eNew = -0.0 over the chunk.
cudaError_t liecAverageOwner(const float* sum, const float* e, int nranks, uint64_t chunk,
                             float* a, float* eNew, cudaStream_t stream);

// ref::liecOutput: out[i] = c_hat[i] + (clean[i] - c[i]) from the gathered results and this
// rank's own messages. Gated.
cudaError_t liecOutput(const uint64_t* results, const uint64_t* own, const float* clean,
                       uint64_t n, uint64_t chunkWords, float* out, const uint32_t* gate,
                       cudaStream_t stream);

// ---- signs, counts, planes, outputs (kernels/vote) -----------------------------------------

// ref::packSigns: nranks blocks of `planes` (binary 1: negative; ternary 2: nonzero, negative)
// planes of chunkWords words; every word is written. NaN packs as +0.0 under IGNORE, else it is
// counted into *nanCount (device, caller-zeroed) and packs as ref::packSigns packs it.
cudaError_t packSigns(const float* g, uint64_t n, svVote_t vote, uint64_t chunkWords,
                      int nranks, svNonFinitePolicy_t policy, uint64_t* out,
                      unsigned long long* nanCount, cudaStream_t stream);

// ref::signumMomentum: mNew = fma(beta, m, (1 - beta) * g), NaN as +0.0 under IGNORE; any
// other NaN stays for packSigns to count. mNew may not alias m (the state commits later).
cudaError_t signumMomentum(const float* g, const float* m, float beta, uint64_t n,
                           svNonFinitePolicy_t policy, float* mNew, cudaStream_t stream);

// ref::voteSignPlanes over nranks received blocks, by bit-sliced counters. A ternary block with
// a negative bit lacking its nonzero bit sets *flags |= 1.
cudaError_t voteSignPlanes(const uint64_t* recv, svVote_t vote, uint64_t chunkWords,
                           int nranks, uint64_t* result, uint32_t* flags, cudaStream_t stream);

// ref::s3gdTernary: out[0..padded) = 0 then sign(acc) at the selection (int8 or int16).
cudaError_t s3gdTernary(const float* acc, const uint32_t* sel, uint64_t k, uint64_t padded,
                        unsigned countBytes, void* out, cudaStream_t stream);

// ref::s3gdPlanes: nranks blocks of (nonzero, negative) planes of chunkWords words, set at the
// selection (strictly increasing, below nranks * chunkWords * 64) by sign(acc); every word is
// written.
cudaError_t s3gdPlanes(const float* acc, const uint32_t* sel, uint64_t k, uint64_t chunkWords,
                       int nranks, uint64_t* out, cudaStream_t stream);

// ref::countsToPlanes; a count outside [-nranks, nranks] sets *flags |= 1.
cudaError_t countsToPlanes(const void* counts, unsigned countBytes, uint64_t chunkWords,
                           int nranks, uint64_t* planes, uint32_t* flags, cudaStream_t stream);

// The owner's half of "every rank reaches the same verdict": when *when != 0 (its own check
// of what it received failed), the ternary result block becomes zero nonzero bits under
// all-ones negative bits, which checkResultPlanes rejects on every rank (ref: poisonResult in
// lib/exchange.cc).
cudaError_t poisonPlanesWhen(const uint32_t* when, uint64_t chunkWords, uint64_t* planes,
                             cudaStream_t stream);

// Sets *flags |= 1 when a ternary result block has a negative bit without its nonzero bit
// (ref: the validateResult step of lib/exchange.cc). Run it before planesToOutput.
cudaError_t checkResultPlanes(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                              int nranks, uint32_t* flags, cudaStream_t stream);

// ref::planesToOutput for well-formed planes (checked by checkResultPlanes). Gated.
cudaError_t planesToOutput(const uint64_t* all, unsigned planes, uint64_t chunkWords,
                           uint64_t n, float* out, const uint32_t* gate, cudaStream_t stream);

// ref::votesToOutput. Gated.
cudaError_t votesToOutput(const int32_t* votes, uint64_t n, float* out, const uint32_t* gate,
                          cudaStream_t stream);

// ref::s3gdCommit: residual = acc, then +0.0 at the selection. Gated.
cudaError_t s3gdCommit(const float* acc, const uint32_t* sel, uint64_t k, uint64_t n,
                       float* residual, const uint32_t* gate, cudaStream_t stream);

// ref::cleanCopy; NaN counted into *nanCount unless IGNORE replaces it by +0.0.
cudaError_t cleanCopy(const float* g, uint64_t n, svNonFinitePolicy_t policy, float* out,
                      unsigned long long* nanCount, cudaStream_t stream);

// ---- the end of an exchange (kernels/vote/verdict.cu) ----------------------------------------

// One thread decides the exchange from the W header verdicts and the checkers' flags, in the
// host backend's order: the first corrupt or mismatched header (by sender), then NaN (svNonFinite
// Input, or under SV_NONFINITE_PROPAGATE a NaN output), then any non-zero flag (svCorruptInput).
// *sticky (device-visible; may be mapped host memory) keeps the first failure code of the
// communicator; *gate = 1 when nothing may be committed (a failure now or before, or NaN
// propagation), *nanOut = 1 when the output must be NaN.
cudaError_t decideVerdict(const uint32_t* headerVerdicts, int nranks, const uint32_t* flags,
                          int nflags, svNonFinitePolicy_t policy, uint32_t* sticky,
                          uint32_t* gate, uint32_t* nanOut, cudaStream_t stream);

// out[0..n) = NaN (0x7FC00000) when *when != 0.
cudaError_t fillNaNWhen(float* out, uint64_t n, const uint32_t* when, cudaStream_t stream);

// out[i] = sum[i] / w, correctly rounded (the host's division). Gated.
cudaError_t divideGated(const float* sum, uint64_t n, float w, float* out, const uint32_t* gate,
                        cudaStream_t stream);

// Whether the current device can run this build's kernels: cudaSuccess, or what CUDA says of a
// device for which they have no image (cudaErrorNoKernelImageForDevice: compiled for other
// architectures, CMAKE_CUDA_ARCHITECTURES). Enqueues nothing; that error is not sticky.
cudaError_t probeKernelImage();
// The architectures the kernels were compiled for (CMAKE_CUDA_ARCHITECTURES, e.g. "90").
const char* kernelArchitectures();

// An owner's sum step (lib/cuda_backend.cc): dst[i] = dst[i] + src[i] for int8 / int16 (exact
// for vote counts) or float32 (one rounding per step, so W steps in rank order give the host's
// sum). Any other element type is refused at any count (cudaErrorInvalidValue, nothing enqueued).
cudaError_t addInto(void* dst, const void* src, uint64_t count, unsigned elemBytes, bool isFloat,
                    cudaStream_t stream);

}  // namespace signvote::kernels
