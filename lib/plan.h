// Planning: everything about a bucket that depends only on its configuration and the world
// size (so every rank computes the same plan): K, the wire format, sizes, the workspace layout.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>

#include "reference/sparse_record.h"
#include "reference/wire.h"
#include "signvote/signvote.h"

namespace signvote::detail {

constexpr size_t kHeaderBytes = 64;
constexpr size_t kWorkspaceAlign = 256;

// Offsets into the caller's workspace (host backend); a size of 0 means unused.
struct Region {
  size_t offset = 0, bytes = 0;
};
struct WorkspaceLayout {
  Region acc;          // the new state before commit (s3gd's a, Signum's m, ef_sign's p, dgs's
                       // u); liec: the cleaned gradient, zero-padded to W chunks
  Region sel;          // s3gd, topk_ef, dgs: selected indices, K u32
  Region accU;         // topk_ef with momentum: the new u before commit
  Region entries;      // sparse: non-zero selected indices, K u32
  Region entryNeg;     // sparse: their signs, K u8
  Region record;       // sparse, scaled signs: own record (header + payload)
  Region records;      // sparse, scaled signs: W records gathered
  Region votes;        // sparse: per-coordinate vote sums, N i32; sparse values on
                       // SV_BACKEND_CUDA: the value sums, N float32
  Region header;       // non-sparse: own header
  Region headers;      // non-sparse: W headers gathered
  Region countsSend;   // counts: ternary values laid out as W chunks
  Region countsOwned;  // counts: this rank's chunk of summed counts
  Region countsBlocks; // counts, SV_BACKEND_CUDA: the W ranks' counts of the owned chunk
  Region planesSend;   // signs: W messages of inPlanes bit-planes of one chunk; liec: W
                       // chunk-signs messages
  Region planesRecv;   // signs, liec: W received messages for the owned chunk
  Region resultOwn;    // counts/signs: owned chunk of the result bit-planes; liec: the owner's
                       // message, or its float32 chunk on an averaging exchange
  Region resultAll;    // counts/signs/liec: W chunks of results
  Region fp32Send;     // dense: cleaned copy of the gradient (CUDA: zero-padded to W chunks)
  Region fp32Blocks;   // dense, liec averaging, SV_BACKEND_CUDA: the W ranks' blocks of the
                       // owned chunk
  Region fp32Sum;      // dense: allreduce output (CUDA: W chunks); liec: the owned chunk's
                       // float32 sums (CUDA, compressed exchanges: the owner's a)
  Region eNew;         // liec: the owner's new error before commit
  Region downA;        // dgs downlink: A = D + G, N floats
  Region downSel;      // dgs downlink: its selection, downK u32
  Region reply;        // dgs_async: the server's reply (built by the server, received by a
                       // worker)
  // SV_BACKEND_CUDA only (device scratch of the kernels and the exchange's control words)
  Region normOut, normTemp;     // adaptive K: squareNorm's result and scratch, carved first so
                                // that every K's layout has them at the same offsets
  Region topkTemp, topkStatus;  // top-K schemes: accumulateTopK scratch, TopKStatus
  Region encTemp, recordInfo;   // records: encodeSparse / efSignCompress scratch, RecordInfo
  Region decTemp;               // records: addSparseVotes / sumSparseValues /
                                // checkScaledRecords scratch
  Region ctrl;                  // header verdicts, flags, gate, NaN words (see cuda_backend.cc)
  size_t total = 0;
};

struct Plan;

// Scratch sizes of the CUDA kernels for one bucket (filled by cuda_backend.cc).
struct CudaScratch {
  size_t topk = 0, topkStatus = 0, encode = 0, recordInfo = 0, decode = 0, ctrl = 0;
  size_t norm = 0;  // top-K schemes: squareNorm's scratch (used under adaptive K only)
};
// Sizes the CUDA scratch of a plan made without it; false when the kernels cannot say.
using ScratchFn = std::function<bool(const Plan&, CudaScratch*)>;

struct Plan {
  svScheme_t scheme;
  svVote_t vote;
  svFormat_t format;  // resolved
  uint64_t n = 0, k = 0;
  int nranks = 1;
  ref::SparseLayout sparse;  // sparse format
  uint64_t chunk = 0;        // elements per owner chunk (a multiple of 64), W chunks cover N
  uint64_t chunkWords = 0;   // chunk / 64
  unsigned countBytes = 0;   // counts: 1 (W <= 127) or 2
  unsigned inPlanes = 0;     // signs: 1 (binary) or 2 (ternary: nonzero, negative)
  unsigned resultPlanes = 0; // counts/signs: 1 (binary: negative) or 2 (nonzero, negative)
  bool stateful = false;     // a state vector per bucket (s3gd_mv, ef_sign, Signum, topk_ef)
  bool selects = false;      // the scheme keeps an exact top-K (s3gd_mv, topk_ef, dgs)
  uint64_t stateFloats = 0;  // floats of state (count, or 2 x count for topk_ef with momentum)
  float momentum = 0.0f;     // Signum's beta
  uint64_t recordBytes = 0;  // sparse, scaled signs: one record, header included
  uint64_t downK = 0;        // dgs: downlink K (0: off)
  uint64_t replyBytes = 0;   // dgs_async: the server's reply (see asyncReplyBytes)
  bool average = false;      // liec: this exchange is an averaging exchange
  uint64_t wireBytes = 0, denseWireBytes = 0;
  uint64_t averageWireBytes = 0;  // liec: wireBytes of an averaging exchange
  WorkspaceLayout ws;
};

// dgs_async's reply: with downK = 0, the header and count float32 values (A), padded to 8
// bytes; else a sparse-values record of (count, downK).
inline uint64_t asyncReplyBytes(uint64_t n, uint64_t downK) {
  if (downK == 0) return kHeaderBytes + (n + 1) / 2 * 8;
  return ref::sparseLayout(n, downK).recordBytes() + (downK + 1) / 2 * 8;
}

// Resolves K from config (density or k); returns false when density is out of range.
bool resolveK(const svBucketConfig_t& config, uint64_t* k);
// The same for dgs's downlink K (downDensity or downK).
bool resolveDownK(const svBucketConfig_t& config, uint64_t* k);

// Modeled bytes a rank sends per exchange for `format` (see svBucketInfo_t); nranks >= 1.
uint64_t modelWireBytes(svFormat_t format, const svBucketConfig_t& config, uint64_t k, int nranks);

// Builds the plan for a validated config. config.format AUTO picks the fewest modeled bytes
// among the scheme's formats, computed for max(nranks, 2) so that one rank plans as two.
// With `cuda`, the workspace also holds the CUDA backend's regions.
Plan makePlan(const svBucketConfig_t& config, uint64_t k, int nranks,
              const CudaScratch* cuda = nullptr);

// makePlan, with the CUDA kernels' regions when scratchFor is set (SV_BACKEND_CUDA): they are
// sized from the plan without them. False when scratchFor fails.
bool planWith(const svBucketConfig_t& config, uint64_t k, int nranks,
              const ScratchFn& scratchFor, Plan* out);

// Adaptive K: the plan of one exchange with K = kt (the bucket's resolved format kept), and
// the workspace bytes that hold the plan of every K in [config.kMin, config.count]. False when
// scratchFor fails.
bool stepPlan(const Plan& bucketPlan, const svBucketConfig_t& config, uint64_t kt,
              const ScratchFn& scratchFor, Plan* out);
bool adaptiveWorkspaceBytes(const Plan& bucketPlan, const svBucketConfig_t& config,
                            const ScratchFn& scratchFor, size_t* bytes);

// The link model of a config with linkBusBW > 0 (see svBucketConfig_t.linkBusBW): modeled
// microseconds of one exchange of plan p and of a dense one; the bucket falls back to dense
// when denseUs <= us.
struct LinkModel {
  double us = 0, denseUs = 0;
  bool denseWins() const { return denseUs <= us; }
};
LinkModel modelLink(const Plan& p, const svBucketConfig_t& config);
// The dense bucket that replaces `config` after a fallback: same count and link settings.
svBucketConfig_t denseFallbackOf(const svBucketConfig_t& config);

// liec: whether the exchange after `done` successful ones is an averaging exchange.
inline bool averagesNext(const Plan& p, const svBucketConfig_t& config, uint64_t done) {
  return p.format == SV_FORMAT_CHUNK_SIGNS && config.period != 0 &&
         (done + 1) % config.period == 0;
}

// The header every message of this exchange starts with, before sealing (backends fill
// entries, checksums and the non-finite flag).
ref::WireHeader headerTemplate(const Plan& p, int rank, uint64_t seq);

// The bytes svExchange asks for: the layout plus the slack to align any base address to
// kWorkspaceAlign, so that a workspace may start anywhere (CUB's habit).
inline size_t workspaceBytesFor(const Plan& p) {
  return p.ws.total ? p.ws.total + kWorkspaceAlign - 1 : 0;
}
inline void* alignWorkspace(void* ws) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(ws);
  return reinterpret_cast<void*>((a + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign);
}

}  // namespace signvote::detail
