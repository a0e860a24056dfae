// svExchange and groups: validate -> queue -> (at the outermost svGroupEnd) match ranks ->
// run every exchange into workspaces -> validate what arrived -> commit outputs and residuals.
// Nothing outside the workspaces is written before every exchange of the group succeeded,
// which is what makes failed calls and failed groups have no effect.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "async.h"
#include "cuda_backend.h"
#include "error.h"
#include "fpenv.h"
#include "handles.h"
#include "match.h"
#include "reference/schemes.h"
#include "reference/wire.h"
#include "transport/transport.h"

using signvote::detail::fail;

namespace signvote::detail {
namespace {

struct Op {
  svBucket_t bucket;
  const void* send;
  void* recv;
  void* ws;
  size_t wsBytes;
  svStream_t stream;
};

struct GroupState {
  int depth = 0;
  std::vector<Op> ops;
  svResult_t error = svSuccess;
  ErrorText errorText;
};
thread_local GroupState tg;

int rankOf(const Op& op) { return op.bucket->comm->rank; }

template <class T>
T* at(const Op& op, const Region& r) {
  return reinterpret_cast<T*>(static_cast<char*>(op.ws) + r.offset);
}

bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  const auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return an != 0 && bn != 0 && pa < pb + bn && pb < pa + an;
}

// Formats whose messages are whole records (header + payload) gathered from every rank.
bool hasRecords(const Plan& p) {
  return p.format == SV_FORMAT_SPARSE || p.format == SV_FORMAT_SCALED_SIGNS ||
         p.format == SV_FORMAT_SPARSE_VALUES;
}

// ---- what one matched exchange (one op per rank of a world) leaves for the commit ----
struct Outcome {
  bool propagateNaN = false;  // SV_NONFINITE_PROPAGATE fired: NaN output, no commit
};

ref::WireHeader makeHeader(const Plan& p, int rank, uint64_t seq, bool nan) {
  ref::WireHeader h = headerTemplate(p, rank, seq);
  h.flags = nan ? ref::kFlagNonFinite : 0;
  return h;
}

// Checks the W headers that rank `self` received; returns the verdict with the reason in *why.
svResult_t checkHeaders(const std::vector<const ref::WireHeader*>& hs, const Plan& p,
                        uint64_t seq, svNonFinitePolicy_t policy, Outcome* out,
                        std::string* why) {
  for (size_t s = 0; s < hs.size(); ++s) {
    const char* reason = "";
    const ref::HeaderExpect e{static_cast<uint32_t>(s), static_cast<uint8_t>(p.scheme),
                              static_cast<uint8_t>(p.format), static_cast<uint8_t>(p.vote),
                              seq, p.n, p.selects ? p.k : 0};
    const svResult_t r = ref::validateHeader(*hs[s], e, &reason);
    if (r != svSuccess) {
      *why = "the message from rank " + std::to_string(s) + " failed validation (" + reason + ")";
      return r;
    }
  }
  for (size_t s = 0; s < hs.size(); ++s) {
    if (hs[s]->flags & ref::kFlagNonFinite) {
      if (policy == SV_NONFINITE_PROPAGATE) {
        out->propagateNaN = true;
        return svSuccess;
      }
      *why = "rank " + std::to_string(s) +
             " had NaN input (nonFinite policy = SV_NONFINITE_ERROR; nothing was changed)";
      return svNonFiniteInput;
    }
  }
  return svSuccess;
}

// Points a collective's per-rank buffers at region `from` / `to` of each rank's workspace.
void pointAt(const std::vector<Op>& ops, const Region& from, const Region& to,
             Transport::Sends* sends, Transport::Recvs* recvs) {
  for (size_t r = 0; r < ops.size(); ++r) {
    (*sends)[r] = at<char>(ops[r], from);
    (*recvs)[r] = at<char>(ops[r], to);
  }
}

// Elements of owner chunk d.
uint64_t chunkLen(const Plan& p, int d) { return ref::ownerChunk(p.n, p.chunk, d).len; }

// An owner that finds a peer's message malformed still takes part in what follows (its
// peers in other processes cannot know) and sends a result no receiver accepts, so
// validateResult fails on every rank.
void poisonResult(const Op& op, const Plan& p) {
  uint64_t* own = at<uint64_t>(op, p.ws.resultOwn);
  if (p.format == SV_FORMAT_CHUNK_SIGNS) {
    own[2 * p.chunkWords] = ~uint64_t{0};  // a scale word with its high half set
    return;
  }
  std::fill(own, own + p.chunkWords, 0);  // negative bits without their nonzero bits
  std::fill(own + p.chunkWords, own + 2 * p.chunkWords, ~uint64_t{0});
}

// liec's owners: messages to the owners, each owner's step on its error, results to all.
// Averaging exchanges reduce-scatter the cleaned gradients instead and add the error.
svResult_t liecOwners(const std::vector<Op>& ops, const Plan& p, Transport& t) {
  const WorkspaceLayout& L = p.ws;
  Transport::Sends sends(ops.size());
  Transport::Recvs recvs(ops.size());
  auto collect = [&](const Region& from, const Region& to) {
    pointAt(ops, from, to, &sends, &recvs);
  };
  const uint64_t words = ref::chunkSignsWords(p.chunkWords);
  if (!p.average) {
    collect(L.planesSend, L.planesRecv);
    SVCHECK(t.allToAll(sends, recvs, words * 8));
    for (const Op& op : ops)
      if (!ref::liecOwner(at<uint64_t>(op, L.planesRecv), p.nranks, chunkLen(p, rankOf(op)),
                          p.chunkWords, op.bucket->residual.data(), at<float>(op, L.eNew),
                          at<uint64_t>(op, L.resultOwn)))
        poisonResult(op, p);
    collect(L.resultOwn, L.resultAll);
    return t.allGather(sends, recvs, words * 8);
  }
  collect(L.acc, L.fp32Sum);
  SVCHECK(t.reduceScatterSum(sends, recvs, p.chunk, Elem::kFloat32));
  const float w = static_cast<float>(p.nranks);
  for (const Op& op : ops) {
    const float* sum = at<float>(op, L.fp32Sum);
    const float* e = op.bucket->residual.data();
    float* a = at<float>(op, L.resultOwn);
    for (uint64_t x = 0; x < p.chunk; ++x) a[x] = sum[x] / w + e[x];
    std::fill(at<float>(op, L.eNew), at<float>(op, L.eNew) + p.chunk, -0.0f);
  }
  collect(L.resultOwn, L.resultAll);
  return t.allGather(sends, recvs, p.chunk * 4);
}

// Runs one exchange of a world into the workspaces: ops are the calls of the ranks this
// process drives, in rank order (all W ranks in a loopback world). Returns the verdict; *why
// names the cause. Every rank sees the same bytes, so every rank reaches the same verdict.
svResult_t runMatched(const std::vector<Op>& ops, const Plan& p, Transport& t, uint64_t seq,
                      Outcome* outcome,
                      std::string* why) {
  const int W = p.nranks;
  const svNonFinitePolicy_t policy = ops[0].bucket->comm->config.nonFinite;
  const WorkspaceLayout& L = p.ws;
  Transport::Sends sends(ops.size());
  Transport::Recvs recvs(ops.size());
  auto collect = [&](const Region& from, const Region& to) {
    pointAt(ops, from, to, &sends, &recvs);
  };
  const size_t planeBytes = p.chunkWords * 8;

  // Step 1: each rank's contribution.
  for (const Op& op : ops) {
    bool nan = false;
    const float* g = static_cast<const float*>(op.send);
    svBucket_t b = op.bucket;
    float scale = 0.0f;
    if (p.scheme == SV_SCHEME_S3GD_MV)
      nan = ref::s3gdAccumulateSelect(g, b->residual.data(), b->config.rho, p.n, p.k, policy,
                                      at<float>(op, L.acc), at<uint32_t>(op, L.sel));
    switch (p.format) {
      case SV_FORMAT_SPARSE:
        break;
      case SV_FORMAT_COUNTS:
        ref::s3gdTernary(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.n, p.chunk * W,
                         p.countBytes, at<void>(op, L.countsSend));
        break;
      case SV_FORMAT_SIGNS:
        if (p.scheme == SV_SCHEME_S3GD_MV) {  // the selection's ternary planes
          ref::s3gdPlanes(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.chunkWords, W,
                          at<uint64_t>(op, L.planesSend));
          break;
        }
        if (p.momentum != 0.0f) {  // Signum: vote on the new momentum
          nan = ref::signumMomentum(g, b->residual.data(), p.momentum, p.n, policy,
                                    at<float>(op, L.acc));
          g = at<float>(op, L.acc);
        }
        nan = ref::packSigns(g, p.n, p.vote, p.chunkWords, W, policy,
                             at<uint64_t>(op, L.planesSend)) || nan;
        break;
      case SV_FORMAT_SPARSE_VALUES:
        if (p.scheme == SV_SCHEME_DGS) {  // SAMomentum's u' = fma(m, u, g): s3gd's step
          nan = ref::s3gdAccumulateSelect(g, b->residual.data(), p.momentum, p.n, p.k, policy,
                                          at<float>(op, L.acc), at<uint32_t>(op, L.sel));
          break;
        }
        nan = ref::topkEfAccumulateSelect(
            g, p.momentum != 0.0f ? b->residual.data() + p.n : nullptr, b->residual.data(),
            p.momentum, p.n, p.k, policy, at<float>(op, L.accU), at<float>(op, L.acc),
            at<uint32_t>(op, L.sel));
        break;
      case SV_FORMAT_SCALED_SIGNS:
        nan = ref::efSignCompress(g, b->residual.data(), p.n, policy, at<float>(op, L.acc),
                                  reinterpret_cast<uint64_t*>(at<char>(op, L.record) +
                                                              kHeaderBytes),
                                  &scale);
        break;
      case SV_FORMAT_FP32:
        nan = ref::cleanCopy(g, p.n, policy, at<float>(op, L.fp32Send));
        break;
      case SV_FORMAT_CHUNK_SIGNS: {
        float* clean = at<float>(op, L.acc);
        nan = p.average ? ref::cleanCopy(g, p.n, policy, clean)
                        : ref::liecCompress(g, p.n, p.chunkWords, W, policy, clean,
                                            at<uint64_t>(op, L.planesSend));
        std::fill(clean + p.n, clean + W * p.chunk, 0.0f);  // the averaging reduce-scatter
        break;
      }
      default:
        return *why = "unplanned format", svInternalError;
    }
    ref::WireHeader h = makeHeader(p, rankOf(op), seq, nan);
    if (hasRecords(p)) {
      auto* payload = reinterpret_cast<uint64_t*>(at<char>(op, L.record) + kHeaderBytes);
      if (p.format != SV_FORMAT_SCALED_SIGNS) {
        h.entries = ref::s3gdEncodeSparse(p.sparse, at<float>(op, L.acc),
                                          at<uint32_t>(op, L.sel), at<uint32_t>(op, L.entries),
                                          at<uint8_t>(op, L.entryNeg), payload);
        if (p.format == SV_FORMAT_SPARSE_VALUES)
          ref::encodeValues(at<float>(op, L.acc), at<uint32_t>(op, L.entries), h.entries, p.k,
                            payload + p.sparse.payloadWords());
      } else {
        uint32_t bits;
        std::memcpy(&bits, &scale, 4);
        h.aux = bits;
      }
      ref::sealRecord(h, at<uint64_t>(op, L.record), (p.recordBytes - kHeaderBytes) / 8);
    } else {
      ref::sealHeader(&h);
      std::memcpy(at<char>(op, L.header), &h, sizeof(h));
    }
  }

  // Step 2: the wire, and the owners' votes in between.
  if (hasRecords(p)) {
    collect(L.record, L.records);
    SVCHECK(t.allGather(sends, recvs, p.recordBytes));
  } else {
    collect(L.header, L.headers);
    SVCHECK(t.allGather(sends, recvs, kHeaderBytes));
  }
  switch (p.format) {
    case SV_FORMAT_COUNTS:
      collect(L.countsSend, L.countsOwned);
      SVCHECK(t.reduceScatterSum(sends, recvs, p.chunk,
                                 p.countBytes == 1 ? Elem::kInt8 : Elem::kInt16));
      for (const Op& op : ops)
        if (!ref::countsToPlanes(at<void>(op, L.countsOwned), p.countBytes, p.chunkWords, W,
                                 at<uint64_t>(op, L.resultOwn)))
          poisonResult(op, p);  // a summed vote count is out of range
      break;
    case SV_FORMAT_SIGNS:
      collect(L.planesSend, L.planesRecv);
      SVCHECK(t.allToAll(sends, recvs, p.inPlanes * planeBytes));
      for (const Op& op : ops)  // binary planes cannot be malformed; ternary ones poison
        if (!ref::voteSignPlanes(at<uint64_t>(op, L.planesRecv), p.vote, p.chunkWords, W,
                                 at<uint64_t>(op, L.resultOwn)))
          poisonResult(op, p);  // a negative bit without its nonzero bit
      break;
    case SV_FORMAT_FP32:
      collect(L.fp32Send, L.fp32Sum);
      SVCHECK(t.allReduceSum(sends, recvs, p.n, Elem::kFloat32));
      break;
    case SV_FORMAT_CHUNK_SIGNS:
      SVCHECK(liecOwners(ops, p, t));
      break;
    default:
      break;
  }
  if (p.resultPlanes != 0) {
    collect(L.resultOwn, L.resultAll);
    SVCHECK(t.allGather(sends, recvs, p.resultPlanes * planeBytes));
  }

  // Step 3: every rank validates what it received. All ranks see the same bytes, so they
  // reach the same verdict; the first local rank's is returned, any disagreement is an
  // internal error.
  svResult_t verdict = svSuccess;
  for (size_t i = 0; i < ops.size(); ++i) {
    const Op& op = ops[i];
    std::vector<const ref::WireHeader*> hs(W);
    const size_t stride = hasRecords(p) ? p.recordBytes : kHeaderBytes;
    const char* base = at<char>(op, hasRecords(p) ? L.records : L.headers);
    for (int s = 0; s < W; ++s) hs[s] = reinterpret_cast<const ref::WireHeader*>(base + s * stride);
    Outcome o;
    std::string reason;
    svResult_t v = checkHeaders(hs, p, seq, policy, &o, &reason);
    if (v == svSuccess && !o.propagateNaN) {
      if (hasRecords(p)) {
        const uint64_t words = (p.recordBytes - kHeaderBytes) / 8;
        int32_t* votes = p.format == SV_FORMAT_SPARSE ? at<int32_t>(op, L.votes) : nullptr;
        if (votes) std::fill(votes, votes + p.n, 0);
        for (int s = 0; s < W && v == svSuccess; ++s) {
          const auto* payload = reinterpret_cast<const uint64_t*>(base + s * stride + kHeaderBytes);
          const ref::WireHeader& h = *hs[s];
          bool ok = ref::checksumWords(payload, words) == h.payloadChecksum;
          if (ok && p.format == SV_FORMAT_SPARSE)
            ok = ref::addSparseVotes(p.sparse, payload, h.entries, votes);
          if (ok && p.format == SV_FORMAT_SPARSE_VALUES)
            ok = ref::sparseValuesValid(p.sparse, payload, h.entries,
                                        payload + p.sparse.payloadWords());
          if (ok && p.format == SV_FORMAT_SCALED_SIGNS)
            ok = ref::scaledPlanesValid(payload, p.n) && (h.aux >> 32) == 0;
          if (!ok) {
            reason = "the record from rank " + std::to_string(s) + " is malformed";
            v = svCorruptInput;
          }
        }
      }
    }
    if (i == 0) {
      verdict = v;
      *outcome = o;
      *why = reason;
    } else if (v != verdict || o.propagateNaN != outcome->propagateNaN) {
      return *why = "ranks reached different verdicts", svInternalError;
    }
  }
  return verdict;
}

// Sized before the first commit of a group, so that committing never allocates: an
// allocation failing between two ranks' commits would leave them out of step.
struct CommitScratch {
  std::vector<const uint64_t*> planes;  // ef_sign: every rank's sign planes and scale
  std::vector<float> scales;
  void size(const Plan& p) {
    if (p.format != SV_FORMAT_SCALED_SIGNS) return;
    planes.resize(p.nranks);
    scales.resize(p.nranks);
  }
};

// Writes the output (and commits the residual) of one rank's validated exchange.
svResult_t commit(const Op& op, const Plan& p, const Outcome& o, CommitScratch& scratch) noexcept {
  const WorkspaceLayout& L = p.ws;
  float* out = static_cast<float*>(op.recv);
  if (o.propagateNaN) {
    std::fill(out, out + p.n, std::numeric_limits<float>::quiet_NaN());
    return svSuccess;
  }
  float* state = op.bucket->residual.data();
  if (p.scheme == SV_SCHEME_DGS) {
    ref::dgsCommit(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.n, p.momentum, state);
  } else if (p.format == SV_FORMAT_CHUNK_SIGNS) {
    std::copy_n(at<float>(op, L.eNew), p.chunk, state);
  } else if (p.selects) {  // s3gd's a, topk_ef's v (and u): the selected coordinates become +0.0
    ref::s3gdCommit(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.n, state);
    if (p.stateFloats == 2 * p.n)
      ref::s3gdCommit(at<float>(op, L.accU), at<uint32_t>(op, L.sel), p.k, p.n, state + p.n);
  } else if (p.momentum != 0.0f && p.n != 0) {
    std::memcpy(state, at<float>(op, L.acc), p.n * 4);
  }
  switch (p.format) {
    case SV_FORMAT_SPARSE_VALUES: {
      std::fill(out, out + p.n, 0.0f);
      for (int s = 0; s < p.nranks; ++s) {
        const char* rec = at<char>(op, L.records) + s * p.recordBytes;
        const auto* payload = reinterpret_cast<const uint64_t*>(rec + kHeaderBytes);
        ref::addSparseValues(p.sparse, payload,
                             reinterpret_cast<const ref::WireHeader*>(rec)->entries,
                             payload + p.sparse.payloadWords(), out);
      }
      const float w = static_cast<float>(p.nranks);
      for (uint64_t i = 0; i < p.n; ++i) out[i] = out[i] / w;
      if (p.downK != 0)
        ref::dgsDownlink(out, state + p.n, p.n, p.downK, at<float>(op, L.downA),
                         at<uint32_t>(op, L.downSel), out);
      return svSuccess;
    }
    case SV_FORMAT_CHUNK_SIGNS:
      if (p.average)
        std::copy_n(at<float>(op, L.resultAll), p.n, out);
      else
        ref::liecOutput(at<uint64_t>(op, L.resultAll), at<uint64_t>(op, L.planesSend),
                        at<float>(op, L.acc), p.n, p.chunkWords, out);
      return svSuccess;
    case SV_FORMAT_SCALED_SIGNS: {
      std::vector<const uint64_t*>& planes = scratch.planes;
      std::vector<float>& scales = scratch.scales;
      for (int s = 0; s < p.nranks; ++s) {
        const char* rec = at<char>(op, L.records) + s * p.recordBytes;
        const auto* h = reinterpret_cast<const ref::WireHeader*>(rec);
        const auto bits = static_cast<uint32_t>(h->aux);
        std::memcpy(&scales[s], &bits, 4);
        planes[s] = reinterpret_cast<const uint64_t*>(rec + kHeaderBytes);
      }
      ref::efSignMean(planes.data(), scales.data(), p.nranks, p.n, out);
      ref::efSignCommit(at<float>(op, L.acc), scales[op.bucket->comm->rank], p.n, state);
      return svSuccess;
    }
    case SV_FORMAT_SPARSE:
      ref::votesToOutput(at<int32_t>(op, L.votes), p.n, out);
      return svSuccess;
    case SV_FORMAT_COUNTS:
    case SV_FORMAT_SIGNS:
      // runGroup checked the planes with validateResult before any commit.
      ref::planesToOutput(at<uint64_t>(op, L.resultAll), p.resultPlanes, p.chunkWords, p.n, out);
      return svSuccess;
    case SV_FORMAT_FP32: {
      const float* sum = at<float>(op, L.fp32Sum);
      const float w = static_cast<float>(p.nranks);
      for (uint64_t i = 0; i < p.n; ++i) out[i] = sum[i] / w;
      return svSuccess;
    }
    default:
      return svInternalError;
  }
}

// Result planes must be well formed before commit writes them out.
bool validateResult(const Op& op, const Plan& p) {
  if (p.format == SV_FORMAT_CHUNK_SIGNS && !p.average) {
    const uint64_t words = ref::chunkSignsWords(p.chunkWords);
    for (int d = 0; d < p.nranks; ++d)
      if (!ref::chunkSignsValid(at<uint64_t>(op, p.ws.resultAll) + d * words, chunkLen(p, d),
                                p.chunkWords))
        return false;
    return true;
  }
  if (p.resultPlanes != 2) return true;
  const uint64_t* all = at<uint64_t>(op, p.ws.resultAll);
  for (int s = 0; s < p.nranks; ++s) {
    const uint64_t* block = all + static_cast<uint64_t>(s) * 2 * p.chunkWords;
    for (uint64_t w = 0; w < p.chunkWords; ++w)
      if (block[p.chunkWords + w] & ~block[w]) return false;
  }
  return true;
}

void setGroupError(const std::vector<Op>& ops, const char* text) noexcept {
  for (const Op& op : ops) op.bucket->comm->lastError.set(text);
  setLastError(nullptr, text);
}
void setGroupError(const std::vector<Op>& ops, const std::string& text) noexcept {
  setGroupError(ops, text.c_str());
}

// The rank that differs from rank 0's fingerprint first, and how; "" when all agree.
std::string mismatchText(size_t index, const std::vector<Fingerprint>& byRank) {
  for (size_t r = 1; r < byRank.size(); ++r) {
    const int f = firstDifference(byRank[0], byRank[r]);
    if (f >= 0)
      return "exchange #" + std::to_string(index) + " of rank " + std::to_string(r) +
             " differs from rank 0's in field " + fieldName(f) + " (" +
             std::to_string(byRank[r].v[f]) + " vs " + std::to_string(byRank[0].v[f]) + ")";
  }
  return "";
}

// Cross-call buffer checks of a group: workspaces and outputs must not overlap anything else;
// two calls may read the same input.
svResult_t checkGroupOverlaps(const std::vector<Op>& ops) {
  for (size_t i = 0; i < ops.size(); ++i) {
    for (size_t j = i + 1; j < ops.size(); ++j) {
      const Op &a = ops[i], &b = ops[j];
      const size_t an = a.bucket->plan.n * 4, bn = b.bucket->plan.n * 4;
      const bool bad = overlaps(a.ws, a.wsBytes, b.ws, b.wsBytes) ||
                       overlaps(a.ws, a.wsBytes, b.send, bn) ||
                       overlaps(a.ws, a.wsBytes, b.recv, bn) ||
                       overlaps(b.ws, b.wsBytes, a.send, an) ||
                       overlaps(b.ws, b.wsBytes, a.recv, an) ||
                       overlaps(a.recv, an, b.recv, bn) || overlaps(a.recv, an, b.send, bn) ||
                       overlaps(b.recv, bn, a.send, an);
      if (bad) {
        setGroupError(ops, "svGroupEnd: exchange #" + std::to_string(i) + " and #" +
                               std::to_string(j) +
                               " of the group share workspace or output memory; each call "
                               "needs its own workspace and recvbuff [invalid argument]");
        return svInvalidArgument;
      }
    }
  }
  return svSuccess;
}

struct Matched {
  std::vector<Op> ops;  // one per rank this process drives, in rank order
  size_t index = 0, calls = 0;  // its position in its group, and the group's calls per rank
  uint64_t seq;
  Outcome outcome;
  CommitScratch scratch;
  Plan plan;            // the bucket's plan, or this exchange's K under adaptive K
  float sumSquares = 0; // adaptive K: G, the ranks' squared gradient norms summed
};

// SV_CHECK_GLOBAL across processes, for the group's exchanges of one world (ms[from, to), in
// group order): every rank's fingerprints, allgathered by the host transport or (SV_BACKEND_CUDA)
// synchronously through the device transport. The first exchange goes alone: its fingerprint
// carries the number of calls, so once it matches the ranks agree on the size of one
// allgather of all the others. Two host round trips per world and group at most, however many
// buckets. *bad = the first exchange found mismatched (or whose check failed).
svResult_t checkGlobal(const std::vector<Matched>& ms, size_t from, size_t to, size_t* bad,
                       std::string* why) {
  World& world = *ms[from].ops[0].bucket->comm->world;
  const int W = ms[from].plan.nranks;
  const size_t L = ms[from].ops.size();
  for (size_t first = from, count = 1; first < to; first += count, count = to - first) {
    *bad = first;
    std::vector<Fingerprint> mine(L * count), all(L * W * count);
    Transport::Sends sends(L);
    Transport::Recvs recvs(L);
    for (size_t i = 0; i < L; ++i) {
      for (size_t f = 0; f < count; ++f) {
        const Matched& m = ms[first + f];
        mine[i * count + f] = fingerprintOf(*m.ops[i].bucket, m.seq, m.calls);
      }
      sends[i] = &mine[i * count];
      recvs[i] = &all[i * W * count];
    }
    const size_t bytes = count * sizeof(Fingerprint);
    if (world.device != nullptr) {
      for (size_t i = 0; i < L; ++i) {
        const svResult_t r = world.device->hostAllGather(
            reinterpret_cast<cudaStream_t>(ms[first].ops[i].stream), sends[i], recvs[i], bytes);
        if (r != svSuccess) {
          *why = "the fingerprint allgather of SV_CHECK_GLOBAL failed: " + world.device->error();
          return r;
        }
      }
    } else {
      SVCHECK(world.transport->allGather(sends, recvs, bytes));
    }
    std::vector<Fingerprint> byRank(W);
    for (size_t f = 0; f < count; ++f) {
      *bad = first + f;
      for (int r = 0; r < W; ++r) byRank[r] = all[r * count + f];
      *why = mismatchText(ms[first + f].index, byRank);
      if (!why->empty()) return svMismatch;
    }
  }
  return svSuccess;
}

// checkGlobal for every world of the group that checks calls (matched is contiguous by world).
svResult_t checkWorlds(const std::vector<Matched>& matched, size_t* bad, std::string* why) {
  for (size_t from = 0, to = 0; from < matched.size(); from = to) {
    const World* world = matched[from].ops[0].bucket->comm->world.get();
    to = from + 1;
    while (to < matched.size() && matched[to].ops[0].bucket->comm->world.get() == world) ++to;
    if (world->checkCalls) SVCHECK(checkGlobal(matched, from, to, bad, why));
  }
  return svSuccess;
}

// Adaptive K: G from every rank's squared norm (summed in rank order by the transport), then
// this exchange's plan. All ranks hold the same adaptive state (it only moves on success;
// the fingerprints compare it).
svResult_t planAdaptive(Matched& m, Transport& t) {
  const svBucket& b0 = *m.ops[0].bucket;
  const size_t L = m.ops.size();
  std::vector<float> norms(L), sums(L);
  Transport::Sends sends(L);
  Transport::Recvs recvs(L);
  for (size_t i = 0; i < L; ++i) {
    const svBucket& b = *m.ops[i].bucket;
    norms[i] = ref::pairwiseSquareSum(static_cast<const float*>(m.ops[i].send), b.plan.n,
                                      b.comm->config.nonFinite);
    sends[i] = &norms[i];
    recvs[i] = &sums[i];
  }
  SVCHECK(t.allReduceSum(sends, recvs, 1, Elem::kFloat32));
  m.sumSquares = sums[0];
  const uint64_t kt = ref::adaptiveK(b0.config, b0.plan.k, b0.adaptive, m.sumSquares);
  stepPlan(b0.plan, b0.config, kt, {}, &m.plan);  // cannot fail without scratchFor
  return svSuccess;
}

// planAdaptive on SV_BACKEND_CUDA: the ranks' norms on the device, read back on the host (its
// one wait per exchange), gathered across processes, summed in rank order as the host
// transports sum. A NaN norm under SV_NONFINITE_ERROR is the host backend's svNonFiniteInput
// (a NaN input is a NaN in the message), refused here before anything is enqueued.
svResult_t planAdaptiveCuda(Matched& m, const std::vector<CudaOp>& cops, std::string* why) {
  const svBucket& b0 = *m.ops[0].bucket;
  World& world = *b0.comm->world;
  const int W = m.plan.nranks;
  std::vector<float> local, norms(W);
  SVCHECK(cudaSquareNorms(cops, b0.plan, *world.device, &local, why));
  if (local.size() == norms.size()) {
    norms = local;
  } else if (const svResult_t r = world.device->hostAllGather(
                 reinterpret_cast<cudaStream_t>(cops[0].stream), local.data(), norms.data(),
                 sizeof(float));
             r != svSuccess) {
    *why = "the norm allgather of adaptive K failed: " + world.device->error();
    return r;
  }
  Transport::Sends in(W);
  for (int r = 0; r < W; ++r) in[r] = &norms[r];
  sumInRankOrder(Elem::kFloat32, in, 0, 1, &m.sumSquares);
  for (int r = 0; r < W && b0.comm->config.nonFinite == SV_NONFINITE_ERROR; ++r)
    if (std::isnan(norms[r]))
      return *why = "rank " + std::to_string(r) + " had NaN input (nonFinite policy = "
                    "SV_NONFINITE_ERROR; nothing was changed)",
             svNonFiniteInput;
  const uint64_t kt = ref::adaptiveK(b0.config, b0.plan.k, b0.adaptive, m.sumSquares);
  if (!stepPlan(b0.plan, b0.config, kt, scratchFnOf(b0.comm), &m.plan))
    return *why = "sizing the CUDA kernels for K_t = " + std::to_string(kt) + " failed",
           svUnhandledCudaError;
  return svSuccess;
}

// The bucket's record of a successful exchange (enqueued, on SV_BACKEND_CUDA). Adaptive K's
// state moves with every exchange that returns svSuccess, a propagated NaN included: its K_t
// went on the wire.
void noteExchange(svBucket& b, const Matched& m) {
  {
    std::lock_guard<std::mutex> g(b.progress);
    ++b.exchanges;
    b.lastK = m.plan.k;
    b.lastRecordBytes = m.plan.recordBytes;
    b.lastWireBytes = m.plan.wireBytes;
  }
  if (b.config.adaptiveK != SV_ADAPTIVE_K_NONE)
    b.adaptive = ref::adaptiveAdvance(b.config, b.adaptive, m.sumSquares, m.plan.k);
}

// Makes the communicators of `ops` sticky-broken with `code` (all of them, or with
// onlyMultiProcess those whose worlds have ranks in other processes). Those worlds' connections
// are closed, so peers still waiting on this rank fail at once instead of at their timeout.
void breakComms(const std::vector<Op>& ops, svResult_t code, const char* why,
                bool onlyMultiProcess = false) noexcept {
  for (const Op& op : ops) {
    svComm_t c = op.bucket->comm;
    if (onlyMultiProcess && !multiProcess(c)) continue;
    c->broken.set(code, why);
    if (multiProcess(c)) c->world->transport.reset();
  }
}

// Transport failures (and bugs) leave the ranks out of step: the communicators are broken.
bool breaksComm(svResult_t r) {
  return r == svUnhandledCudaError || r == svSystemError || r == svInternalError ||
         r == svRemoteError || r == svTimeout;
}

// A failed group: every call of it gets the error text naming the exchange, and a failure
// that leaves the ranks out of step breaks the communicators (`broken` then ends the text).
svResult_t failGroup(const std::vector<Op>& ops, const Matched& m, svResult_t r,
                     const char* what, const std::string& why, const char* broken) {
  std::string text = std::string(what) + " (bucket count = " +
                     std::to_string(m.ops[0].bucket->plan.n) + ", seq = " +
                     std::to_string(m.seq) + "): " + why;
  if (breaksComm(r)) {
    breakComms(ops, r, text.c_str());
    text += broken;
  }
  setGroupError(ops, text + " [" + svGetErrorString(r) + "]");
  return r;
}

// SV_BACKEND_CUDA: enqueue every matched exchange; the device decides and gates the commits
// (cuda_backend.h). SV_CHECK_GLOBAL compares every exchange of the group before any is
// enqueued, so a mismatch has no effect. A failed launch leaves the group partly enqueued, so
// every communicator of the group is broken (NCCL's rule for CUDA errors).
svResult_t runGroupCuda(const std::vector<Op>& ops, std::vector<Matched>& matched) {
  auto failed = [&](const Matched& m, svResult_t r, const std::string& why) {
    return failGroup(ops, m, r, "svGroupEnd: the CUDA exchange", why,
                     "; the communicators are broken, destroy them");
  };
  // A loopback exchange orders its ranks' streams with events; CUDA invalidates a capture that
  // waits on uncaptured work of another stream and refuses to merge two captures.
  for (const Matched& m : matched) {
    if (m.ops.size() < 2) continue;  // a rank per process (NCCL): one stream, nothing to compare
    const unsigned long long first = cudaCaptureId(m.ops[0].stream);
    for (size_t i = 1; i < m.ops.size(); ++i) {
      const Op& op = m.ops[i];
      const unsigned long long id = cudaCaptureId(op.stream);
      if (id == first) continue;
      char mine[40] = "not captured", theirs[40] = "not captured", text[640];
      if (id) std::snprintf(mine, sizeof(mine), "in capture %llu", id);
      if (first) std::snprintf(theirs, sizeof(theirs), "in capture %llu", first);
      std::snprintf(text, sizeof(text), "svGroupEnd: exchange #%zu (bucket count = %llu): rank "
                    "%d's stream = %p is %s but rank %d's stream = %p is %s; the ranks' streams "
                    "of an exchange must be in one capture or in none (fork them into the "
                    "capture: cudaEventRecord on the capturing stream, cudaStreamWaitEvent on "
                    "each other) [%s]", m.index,
                    static_cast<unsigned long long>(m.ops[0].bucket->plan.n),
                    op.bucket->comm->rank, static_cast<void*>(op.stream), mine,
                    m.ops[0].bucket->comm->rank, static_cast<void*>(m.ops[0].stream), theirs,
                    svGetErrorString(svInvalidUsage));
      setGroupError(ops, text);
      return svInvalidUsage;
    }
  }
  size_t bad = 0;
  std::string why;
  if (const svResult_t r = checkWorlds(matched, &bad, &why); r != svSuccess)
    return failed(matched[bad], r, why);
  std::vector<std::vector<CudaOp>> cops(matched.size());
  for (size_t j = 0; j < matched.size(); ++j)
    for (const Op& op : matched[j].ops)
      cops[j].push_back({op.bucket, op.send, op.recv, op.ws, op.stream});
  // Every adaptive K_t before anything is enqueued, so that a refusal has no effect.
  for (size_t j = 0; j < matched.size(); ++j) {
    if (matched[j].ops[0].bucket->config.adaptiveK == SV_ADAPTIVE_K_NONE) continue;
    why.clear();
    if (const svResult_t r = planAdaptiveCuda(matched[j], cops[j], &why); r != svSuccess)
      return failed(matched[j], r, why);
  }
  for (size_t j = 0; j < matched.size(); ++j) {
    const Matched& m = matched[j];
    why.clear();
    const svResult_t r =
        cudaRunMatched(cops[j], m.plan, m.seq, *m.ops[0].bucket->comm->world->device, &why);
    if (r != svSuccess) return failed(m, r, "enqueuing it failed: " + why);
  }
  // Counted at enqueue: a failure the device finds later stops every later exchange anyway.
  for (const Matched& m : matched)
    for (const Op& op : m.ops) noteExchange(*op.bucket, m);
  for (const Op& op : ops) ++op.bucket->comm->seq;
  return svSuccess;
}

// The group's exchanges per world, matched across the world's ranks this process drives.
// Worlds run in the order of their first call in the group, the same in every process when
// every rank makes its calls in the same order (NCCL's rule).
svResult_t matchGroup(const std::vector<Op>& ops, std::vector<Matched>* matched) {
  std::vector<World*> order;
  std::map<World*, std::vector<std::vector<Op>>> perWorld;  // per rank, in program order
  for (const Op& op : ops) {
    svComm_t c = op.bucket->comm;
    auto& v = perWorld[c->world.get()];
    if (v.empty()) {
      v.resize(c->nranks);
      order.push_back(c->world.get());
    }
    v[c->rank].push_back(op);
  }
  for (World* world : order) {
    const auto& byRank = perWorld[world];
    const int first = world->local[0];
    for (int r : world->local) {
      if (byRank[r].size() != byRank[first].size()) {
        setGroupError(ops, "svGroupEnd: rank " + std::to_string(r) + " made " +
                               std::to_string(byRank[r].size()) + " svExchange calls in this "
                               "group but rank " + std::to_string(first) + " made " +
                               std::to_string(byRank[first].size()) +
                               "; every rank of a loopback world must make the same calls "
                               "[" + svGetErrorString(svMismatch) + "]");
        return svMismatch;
      }
    }
    const size_t calls = byRank[first].size();
    for (size_t j = 0; j < calls; ++j) {
      Matched m;
      m.index = j;
      m.calls = calls;
      m.seq = byRank[first][j].bucket->comm->seq + j;
      std::vector<Fingerprint> prints;
      for (int r : world->local) {
        m.ops.push_back(byRank[r][j]);
        prints.push_back(fingerprintOf(*byRank[r][j].bucket, byRank[r][j].bucket->comm->seq + j,
                                       calls));
      }
      const std::string text = mismatchText(j, prints);
      if (!text.empty()) {
        setGroupError(ops, "svGroupEnd: " + text + " [" + svGetErrorString(svMismatch) + "]");
        return svMismatch;
      }
      const svBucket& b0 = *m.ops[0].bucket;
      m.plan = b0.plan;
      if (averagesNext(m.plan, b0.config, b0.exchanges)) {
        m.plan.average = true;
        m.plan.wireBytes = m.plan.averageWireBytes;
      }
      matched->push_back(std::move(m));
    }
  }
  return svSuccess;
}

// One matched exchange of the host backend into the workspaces, with its verdict.
svResult_t runHost(Matched& m, std::string* why) {
  Transport& t = *m.ops[0].bucket->comm->world->transport;
  if (m.ops[0].bucket->config.adaptiveK != SV_ADAPTIVE_K_NONE) SVCHECK(planAdaptive(m, t));
  SVCHECK(runMatched(m.ops, m.plan, t, m.seq, &m.outcome, why));
  m.scratch.size(m.plan);
  if (!m.outcome.propagateNaN)
    for (const Op& op : m.ops)
      if (!validateResult(op, m.plan))
        return *why = "a vote result message is malformed (an owner received a bad message)",
               svCorruptInput;
  return svSuccess;
}

svResult_t runGroup(std::vector<Op>& ops) {
  if (ops.empty()) return svSuccess;
  SVCHECK(checkGroupOverlaps(ops));
  if (std::any_of(ops.begin(), ops.end(), [](const Op& op) {
        return op.bucket->config.scheme == SV_SCHEME_DGS_ASYNC;
      })) {
    std::vector<AsyncCall> calls;
    for (const Op& op : ops) calls.push_back({op.bucket, op.send, op.recv, op.ws});
    return runAsyncGroup(calls);
  }
  std::vector<Matched> matched;
  SVCHECK(matchGroup(ops, &matched));
  if (ops[0].bucket->comm->config.backend == SV_BACKEND_CUDA) return runGroupCuda(ops, matched);
  auto failed = [&](const Matched& m, svResult_t r, const std::string& why) {
    const Transport& t = *m.ops[0].bucket->comm->world->transport;
    return failGroup(ops, m, r, "svExchange",
                     why.empty() ? "the transport failed: " + t.error() : why,
                     "; the communicator is broken, destroy it");
  };
  size_t bad = 0;
  std::string why;
  if (const svResult_t r = checkWorlds(matched, &bad, &why); r != svSuccess)
    return failed(matched[bad], r, why);
  for (Matched& m : matched) {
    why.clear();
    if (const svResult_t r = runHost(m, &why); r != svSuccess) return failed(m, r, why);
  }
  for (Matched& m : matched) {
    for (const Op& op : m.ops) {
      SVCHECK(commit(op, m.plan, m.outcome, m.scratch));
      noteExchange(*op.bucket, m);
    }
  }
  for (const Op& op : ops) ++op.bucket->comm->seq;
  return svSuccess;
}

// runGroup, out of host memory included, in the library's floating-point environment
// (fpenv.h). Nothing is committed before every allocation is made, so the ranks of this process
// are unchanged; a world with ranks in other processes is out of step (they may wait in a
// collective) and is broken, as for a transport failure.
svResult_t runGuarded(std::vector<Op>& ops, const char* call) noexcept {
  const FpEnvGuard fp;
  try {
    return runGroup(ops);
  } catch (const std::bad_alloc&) {
    const bool broken = std::any_of(ops.begin(), ops.end(),
                                    [](const Op& op) { return multiProcess(op.bucket->comm); });
    breakComms(ops, svSystemError, "out of host memory during an exchange", true);
    char text[256];
    std::snprintf(text, sizeof(text), "%s: out of host memory during the exchange; nothing was "
                  "committed%s [%s]", call, broken ? "; the communicators of multi-process "
                  "worlds are broken, destroy them" : "", svGetErrorString(svSystemError));
    setGroupError(ops, text);
    return svSystemError;
  }
}

// Frees the communicators of a group's exchanges for other threads when it goes out of scope.
struct ReleaseComms {
  const std::vector<Op>& ops;
  ~ReleaseComms() {
    for (const Op& op : ops) op.bucket->comm->user.store(nullptr);
  }
};

}  // namespace

svResult_t claimComm(svComm_t comm, const char* call, CommClaim* claim) {
  const void* user = nullptr;
  if (comm->user.compare_exchange_strong(user, &tg)) {
    claim->comm = comm;
    return svSuccess;
  }
  if (user != &tg)
    return fail(nullptr, svInvalidUsage, "%s: comm (rank %d) is in use by another thread's "
                "exchange or open group; use one thread per communicator", call, comm->rank);
  return svSuccess;
}

svResult_t claimBucket(svBucket_t bucket, const char* call, bool refuseQueued,
                       CommClaim* claim) {
  svComm_t comm = bucket->comm;
  SVCHECK(claimComm(comm, call, claim));
  if (refuseQueued)
    for (const Op& op : tg.ops)
      if (op.bucket == bucket)
        return fail(comm, svInvalidUsage, "%s: bucket = %p has an exchange queued in this "
                    "thread's open group; call svGroupEnd first", call,
                    static_cast<void*>(bucket));
  return svSuccess;
}

namespace {

// Records an error made inside a group so that svGroupEnd fails too.
svResult_t noteGroupError(svResult_t r) {
  if (r != svSuccess && tg.depth > 0 && tg.error == svSuccess) {
    tg.error = r;
    tg.errorText.set(threadLastError());
  }
  return r;
}

svResult_t exchangeChecked(svBucket_t bucket, const void* sendbuff, void* recvbuff,
                           void* workspace, size_t* workspaceBytes, svStream_t stream) {
  if (!isLiveBucket(bucket))
    return fail(nullptr, svInvalidArgument,
                "svExchange: bucket = %p is not a live bucket (NULL, destroyed or never created)",
                static_cast<void*>(bucket));
  svComm_t comm = bucket->comm;
  SVCHECK(refuseBroken(comm, "svExchange"));
  if (workspaceBytes == nullptr)
    return fail(comm, svInvalidArgument, "svExchange: workspaceBytes = NULL");
  const Plan& p = bucket->plan;
  const size_t need = workspaceBytesFor(p);
  if (workspace == nullptr) {
    *workspaceBytes = need;
    return svSuccess;
  }
  if (*workspaceBytes < need)
    return fail(comm, svInvalidArgument,
                "svExchange: *workspaceBytes = %zu is less than the %zu bytes this bucket needs "
                "(query them with workspace = NULL)", *workspaceBytes, need);
  const size_t bytes = p.n * 4;
  // dgs_async's server reads no gradient: its sendbuff is ignored.
  const bool readsSend = !(bucket->config.scheme == SV_SCHEME_DGS_ASYNC && comm->rank == 0);
  if (!readsSend) sendbuff = nullptr;
  for (const auto& [field, ptr] : {std::pair<const char*, const void*>{"sendbuff", sendbuff},
                                   {"recvbuff", recvbuff}})
    if (p.n > 0 && reinterpret_cast<uintptr_t>(ptr) % sizeof(float) != 0)
      return fail(comm, svInvalidArgument, "svExchange: %s = %p is not aligned to its element "
                  "type (float32, 4 bytes)", field, ptr);
  if (p.n > 0 && sendbuff == nullptr && readsSend)
    return fail(comm, svInvalidArgument, "svExchange: sendbuff = NULL with count = %llu",
                static_cast<unsigned long long>(p.n));
  if (p.n > 0 && recvbuff == nullptr)
    return fail(comm, svInvalidArgument, "svExchange: recvbuff = NULL with count = %llu",
                static_cast<unsigned long long>(p.n));
  if (sendbuff != nullptr && sendbuff != recvbuff && overlaps(sendbuff, bytes, recvbuff, bytes))
    return fail(comm, svInvalidArgument, "svExchange: sendbuff = %p and recvbuff = %p overlap "
                "partially (only exact in-place, sendbuff == recvbuff, is allowed)",
                sendbuff, recvbuff);
  if (overlaps(workspace, need, sendbuff, bytes) || overlaps(workspace, need, recvbuff, bytes))
    return fail(comm, svInvalidArgument, "svExchange: workspace = %p overlaps sendbuff or "
                "recvbuff", workspace);
  if (comm->config.backend == SV_BACKEND_CUDA) {
    const std::pair<const char*, const void*> buffers[] = {
        {"sendbuff", p.n ? sendbuff : nullptr},
        {"recvbuff", p.n ? recvbuff : nullptr},
        {"workspace", p.ws.total ? workspace : nullptr}};
    for (const auto& [field, ptr] : buffers) {
      if (ptr == nullptr) continue;
      const int owner = cudaMemoryDevice(ptr);
      if (owner == -1)
        return fail(comm, svInvalidArgument, "svExchange: %s = %p is not device memory (the "
                    "communicator's backend is SV_BACKEND_CUDA)", field, ptr);
      // The kernels run on comm's device: another device's memory would fault there.
      if (owner != kAnyDevice && owner != comm->device)
        return fail(comm, svInvalidArgument, "svExchange: %s = %p is memory of device %d, but "
                    "comm (rank %d) is on device %d", field, ptr, owner, comm->rank,
                    comm->device);
    }
    SVCHECK(cudaCheckCurrentDevice(comm, "svExchange"));
    // Work enqueued on another device's stream fails at launch, with part of the step enqueued.
    const int streamDevice = cudaStreamDevice(stream);
    if (streamDevice >= 0 && streamDevice != comm->device)
      return fail(comm, svInvalidArgument, "svExchange: stream = %p belongs to device %d, but "
                  "comm (rank %d) is on device %d", static_cast<void*>(stream), streamDevice,
                  comm->rank, comm->device);
    // SV_CHECK_GLOBAL waits on the host for the peers' fingerprints, which a capture cannot.
    if (comm->world->checkCalls && cudaCaptureId(stream) != 0)
      return fail(comm, svInvalidUsage, "svExchange: stream = %p is being captured, and comm "
                  "(rank %d) checks every exchange on the host (SV_CHECK_GLOBAL); create it "
                  "with config->check = SV_CHECK_NONE (or SIGNVOTE_CHECK=none) to capture",
                  static_cast<void*>(stream), comm->rank);
    // Adaptive K reads the gradient norm back on the host to size the transfers.
    if (bucket->config.adaptiveK != SV_ADAPTIVE_K_NONE && cudaCaptureId(stream) != 0)
      return fail(comm, svInvalidUsage, "svExchange: stream = %p is being captured, and the "
                  "bucket has config->adaptiveK = %d, whose exchanges wait on the host for the "
                  "gradient norm; use a fixed K to capture", static_cast<void*>(stream),
                  static_cast<int>(bucket->config.adaptiveK));
  }
  const Op op{bucket, sendbuff, recvbuff, alignWorkspace(workspace), p.ws.total, stream};
  if (tg.depth == 0 && comm->world->local.size() > 1)
    return fail(comm, svInvalidUsage,
                "svExchange: the loopback communicator has nranks = %d, all driven from this "
                "thread; call svExchange once per rank between svGroupStart and svGroupEnd",
                comm->nranks);
  // Allocate before taking the communicator, so that running out of memory cannot keep it.
  std::vector<Op> single;
  if (tg.depth > 0)
    tg.ops.reserve(tg.ops.size() + 1);
  else
    single.push_back(op);
  // One thread at a time per communicator. The text goes to this thread's last error only:
  // the communicator's own text belongs to the thread using it.
  const void* user = nullptr;
  if (!comm->user.compare_exchange_strong(user, &tg) && user != &tg)
    return fail(nullptr, svInvalidUsage,
                "svExchange: comm (rank %d) is in use by another thread's exchange or open "
                "group; use one thread per communicator", comm->rank);
  if (user == nullptr && comm->broken.code() != svSuccess) {  // aborted since the check above
    comm->user.store(nullptr);
    return refuseBroken(comm, "svExchange");
  }
  if (tg.depth > 0) {
    tg.ops.push_back(op);  // released at svGroupEnd
    return svSuccess;
  }
  const ReleaseComms release{single};
  return runGuarded(single, "svExchange");
}

}  // namespace
}  // namespace signvote::detail

using namespace signvote::detail;

extern "C" svResult_t svExchange(svBucket_t bucket, const void* sendbuff, void* recvbuff,
                                 void* workspace, size_t* workspaceBytes, svStream_t stream) {
  try {
    return noteGroupError(exchangeChecked(bucket, sendbuff, recvbuff, workspace, workspaceBytes,
                                           stream));
  } catch (const std::bad_alloc&) {
    return noteGroupError(fail(isLiveBucket(bucket) ? bucket->comm : nullptr, svSystemError,
                               "svExchange: out of host memory; nothing was changed"));
  }
}

extern "C" svResult_t svGroupStart(void) {
  ++tg.depth;
  return svSuccess;
}

extern "C" svResult_t svGroupEnd(void) {
  if (tg.depth == 0)
    return fail(nullptr, svInvalidUsage, "svGroupEnd: no matching svGroupStart");
  if (--tg.depth > 0) return svSuccess;
  std::vector<Op> ops = std::move(tg.ops);
  tg.ops.clear();
  const ReleaseComms release{ops};
  const svResult_t err = tg.error;
  tg.error = svSuccess;
  if (err != svSuccess) {
    char text[1200];
    std::snprintf(text, sizeof(text), "svGroupEnd: nothing ran because a call in the group "
                  "failed: %s", tg.errorText.c_str());
    setGroupError(ops, text);
    return err;
  }
  return runGuarded(ops, "svGroupEnd");
}
