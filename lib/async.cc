// dgs_async (signvote.h, SV_SCHEME_DGS_ASYNC): a worker's push and the server's reply.
// Either side validates what it received before anything is committed; the server commits
// only after its reply left, the worker only after the reply passed its checks. Pushes leave
// the communicator's sequence number alone: it numbers the collective exchanges, which every
// rank must count alike, and a server serves more pushes than any worker makes.
#include "async.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "error.h"
#include "handles.h"
#include "match.h"
#include "plan.h"
#include "reference/schemes.h"
#include "reference/topk.h"
#include "transport/transport.h"

namespace signvote::detail {
namespace {

template <class T>
T* at(const AsyncCall& c, const Region& r) {
  return reinterpret_cast<T*>(static_cast<char*>(c.ws) + r.offset);
}
const Plan& planOf(const AsyncCall& c) { return c.bucket->plan; }
using ref::payloadOf;

// The worker's push into its workspace's record: u' = fma(m, u, g), its top-K and their
// values. A NaN left in u' (SV_NONFINITE_ERROR or PROPAGATE) sends a flagged, empty record.
void buildPush(const AsyncCall& c) {
  const Plan& p = planOf(c);
  svBucket_t b = c.bucket;
  const WorkspaceLayout& L = p.ws;
  const bool nan = ref::s3gdAccumulateSelect(static_cast<const float*>(c.send),
                                             b->residual.data(), p.momentum, p.n, p.k,
                                             b->comm->config.nonFinite, at<float>(c, L.acc),
                                             at<uint32_t>(c, L.sel));
  ref::WireHeader h = headerTemplate(p, b->comm->rank, b->exchanges);
  h.aux = p.downK;  // so that a server with another downlink K refuses the push
  uint64_t* record = at<uint64_t>(c, L.record);
  uint64_t* payload = payloadOf(record);
  const size_t words = (p.recordBytes - kHeaderBytes) / 8;
  std::fill(payload, payload + words, 0);
  if (nan) {
    h.flags = ref::kFlagNonFinite;
  } else {
    h.entries = ref::s3gdEncodeSparse(p.sparse, at<float>(c, L.acc), at<uint32_t>(c, L.sel),
                                      at<uint32_t>(c, L.entries), at<uint8_t>(c, L.entryNeg),
                                      payload);
    ref::encodeValues(at<float>(c, L.acc), at<uint32_t>(c, L.entries), h.entries, p.k,
                      payload + p.sparse.payloadWords());
  }
  ref::sealRecord(h, record, words);
}

// What the server's reply carries: a NaN echo, a refusal (aux: the server's verdict) or D.
struct Reply {
  svResult_t verdict = svSuccess;  // the server's: svSuccess, or why it refused the push
  bool nan = false;                // the push was flagged NaN (and refused or propagated)
  std::string why;
};

// The server's step on the push from worker `from` in its record region: validates it, forms
// t = T + values (acc), a = t - v_from (downA) and the reply (reply region), all in the
// workspace.
Reply serve(const AsyncCall& c, int from) {
  const Plan& p = planOf(c);
  svBucket_t b = c.bucket;
  const WorkspaceLayout& L = p.ws;
  const svNonFinitePolicy_t policy = b->comm->config.nonFinite;
  const uint64_t* record = at<uint64_t>(c, L.record);
  const auto& h = *reinterpret_cast<const ref::WireHeader*>(record);
  const uint64_t* payload = payloadOf(record);
  uint64_t* reply = at<uint64_t>(c, L.reply);
  const size_t replyWords = (p.replyBytes - kHeaderBytes) / 8;
  std::fill(payloadOf(reply), payloadOf(reply) + replyWords, 0);
  ref::WireHeader r = headerTemplate(p, 0, h.seq);
  r.k = p.downK;

  Reply out;
  const char* reason = "";
  const ref::HeaderExpect e{static_cast<uint32_t>(from), static_cast<uint8_t>(p.scheme),
                            static_cast<uint8_t>(p.format), static_cast<uint8_t>(p.vote),
                            b->served[from], p.n, p.k};
  out.verdict = ref::checkAsyncPush(record, (p.recordBytes - kHeaderBytes) / 8, e, p.sparse,
                                    p.downK, &reason);
  if (out.verdict != svSuccess) {
    out.why = "the push of rank " + std::to_string(from) + " failed validation (" + reason + ")";
    r.flags = ref::kFlagRejected;
    r.aux = static_cast<uint64_t>(out.verdict);
  } else if (h.flags & ref::kFlagNonFinite) {
    out.nan = true;
    r.flags = ref::kFlagNonFinite;
    if (policy != SV_NONFINITE_PROPAGATE) {
      out.verdict = svNonFiniteInput;
      out.why = "rank " + std::to_string(from) +
                " had NaN input (nonFinite policy = SV_NONFINITE_ERROR; nothing was changed)";
    }
  } else {
    float* t = at<float>(c, L.acc);
    float* a = at<float>(c, L.downA);
    const float* T = b->residual.data();
    const float* v = T + static_cast<uint64_t>(from) * p.n;
    std::copy_n(T, p.n, t);
    ref::addSparseValues(p.sparse, payload, h.entries, payload + p.sparse.payloadWords(), t);
    for (uint64_t i = 0; i < p.n; ++i) a[i] = t[i] - v[i];
    if (p.downK == 0) {
      if (p.n != 0) std::memcpy(payloadOf(reply), a, p.n * 4);
    } else {
      const ref::SparseLayout down = ref::sparseLayout(p.n, p.downK);
      uint32_t* sel = at<uint32_t>(c, L.downSel);
      ref::selectTopKByMagnitude(a, p.n, p.downK, sel);
      r.entries = ref::s3gdEncodeSparse(down, a, sel, at<uint32_t>(c, L.entries),
                                        at<uint8_t>(c, L.entryNeg), payloadOf(reply));
      ref::encodeValues(a, at<uint32_t>(c, L.entries), r.entries, p.downK,
                        payloadOf(reply) + down.payloadWords());
    }
  }
  ref::sealRecord(r, reply, replyWords);
  return out;
}

// The server's commit after its reply left: T = t, v_from += D, recvbuff = T.
void commitServer(const AsyncCall& c, int from, const Reply& done) {
  const Plan& p = planOf(c);
  svBucket_t b = c.bucket;
  float* T = b->residual.data();
  if (!done.nan) {
    const WorkspaceLayout& L = p.ws;
    const float* a = at<float>(c, L.downA);
    float* v = T + static_cast<uint64_t>(from) * p.n;
    if (p.downK == 0) {
      for (uint64_t i = 0; i < p.n; ++i) v[i] = v[i] + a[i];
    } else {  // D is a on the reply's entries (the selection's non-zeros), +0.0 elsewhere
      const auto& r = *reinterpret_cast<const ref::WireHeader*>(at<char>(c, L.reply));
      const uint32_t* entries = at<uint32_t>(c, L.entries);
      for (uint64_t j = 0; j < r.entries; ++j) v[entries[j]] = v[entries[j]] + a[entries[j]];
    }
    std::copy_n(at<float>(c, L.acc), p.n, T);
  }
  std::copy_n(T, p.n, static_cast<float*>(c.recv));
  ++b->served[from];
  std::lock_guard<std::mutex> g(b->progress);
  b->lastPeer = from;
}

// The worker's check of the reply in its reply region. A refusal or a NaN echo is a verdict
// (no effect); anything malformed sets *broken: the server has committed what this rank
// cannot apply.
svResult_t checkReply(const AsyncCall& c, bool* broken, std::string* why) {
  const Plan& p = planOf(c);
  svBucket_t b = c.bucket;
  const auto& push = *reinterpret_cast<const ref::WireHeader*>(at<char>(c, p.ws.record));
  const ref::HeaderExpect e{0, static_cast<uint8_t>(p.scheme), static_cast<uint8_t>(p.format),
                            static_cast<uint8_t>(p.vote), b->exchanges, p.n, p.downK};
  const bool nan = (push.flags & ref::kFlagNonFinite) != 0;
  svResult_t refusal = svSuccess;
  const char* reason = "";
  *broken = ref::checkAsyncReply(at<uint64_t>(c, p.ws.reply), (p.replyBytes - kHeaderBytes) / 8,
                                 e, nan, &refusal, &reason) != svSuccess;
  if (*broken) {
    *why = std::string("the server's reply is malformed (") + reason + ")";
    return svRemoteError;
  }
  if (refusal != svSuccess) {
    *why = "the server refused this rank's push (it differs from what the server expects or "
           "is malformed; nothing was changed)";
    return refusal;
  }
  if (nan && b->comm->config.nonFinite != SV_NONFINITE_PROPAGATE) {
    *why = "this rank had NaN input (nonFinite policy = SV_NONFINITE_ERROR; nothing was "
           "changed)";
    return svNonFiniteInput;
  }
  return svSuccess;
}

// The worker's commit of a checked reply: u as dgs's (unless NaN propagated), recvbuff = D.
void commitWorker(const AsyncCall& c) {
  const Plan& p = planOf(c);
  const WorkspaceLayout& L = p.ws;
  float* out = static_cast<float*>(c.recv);
  const uint64_t* reply = at<uint64_t>(c, L.reply);
  const auto& r = *reinterpret_cast<const ref::WireHeader*>(reply);
  if (r.flags & ref::kFlagNonFinite) {
    std::fill(out, out + p.n, std::numeric_limits<float>::quiet_NaN());
  } else {
    ref::dgsCommit(at<float>(c, L.acc), at<uint32_t>(c, L.sel), p.k, p.n, p.momentum,
                   c.bucket->residual.data());
    if (p.downK == 0) {
      if (p.n != 0) std::memcpy(out, payloadOf(reply), p.n * 4);
    } else {
      const ref::SparseLayout down = ref::sparseLayout(p.n, p.downK);
      std::fill(out, out + p.n, 0.0f);
      ref::addSparseValues(down, payloadOf(reply), r.entries,
                           payloadOf(reply) + down.payloadWords(), out);
    }
  }
  std::lock_guard<std::mutex> g(c.bucket->progress);
  ++c.bucket->exchanges;
}

void setText(const std::vector<AsyncCall>& calls, const std::string& text) noexcept {
  for (const AsyncCall& c : calls) c.bucket->comm->lastError.set(text.c_str());
  setLastError(nullptr, text.c_str());
}

svResult_t refuse(const std::vector<AsyncCall>& calls, const char* call,
                  const std::string& why) {
  setText(calls, std::string(call) + ": " + why + "; nothing ran [" +
                     svGetErrorString(svInvalidUsage) + "]");
  return svInvalidUsage;
}

// The pair's verdict as every call's error text; a broken communicator is closed (its peers
// waiting on it fail at once) and stays broken.
svResult_t report(const std::vector<AsyncCall>& calls, const char* call, svResult_t code,
                  const std::string& why, svComm_t brokenComm) {
  const svBucket& b = *calls[0].bucket;
  std::string text = std::string(call) + " (dgs_async, bucket count = " +
                     std::to_string(b.plan.n) + ", rank " + std::to_string(b.comm->rank) +
                     "): " + why;
  if (brokenComm != nullptr) {
    brokenComm->broken.set(code, text.c_str());
    if (multiProcess(brokenComm)) brokenComm->world->transport.reset();
    text += "; the communicator is broken, destroy it";
  }
  setText(calls, text + " [" + svGetErrorString(code) + "]");
  return code;
}

// Loopback: the server's and one worker's calls; the wire is a copy between workspaces.
svResult_t runPair(const std::vector<AsyncCall>& calls, const char* call) {
  const AsyncCall& s = calls[0].bucket->comm->rank == 0 ? calls[0] : calls[1];
  const AsyncCall& w = calls[0].bucket->comm->rank == 0 ? calls[1] : calls[0];
  if (s.bucket->comm->rank != 0 || w.bucket->comm->rank == 0 ||
      s.bucket->comm->world != w.bucket->comm->world)
    return refuse(calls, call, "a loopback world runs a dgs_async exchange as a group of the "
                  "server's (rank 0) and one worker's call of one world");
  Fingerprint fs = fingerprintOf(*s.bucket, 0, 2), fw = fingerprintOf(*w.bucket, 0, 2);
  fs.v[15] = fw.v[15] = 0;  // the bucket's exchange count differs by role
  if (const int f = firstDifference(fs, fw); f >= 0) {
    setText(calls, std::string(call) + ": the dgs_async buckets of rank 0 and rank " +
                       std::to_string(w.bucket->comm->rank) + " differ in " + fieldName(f) +
                       " [" + svGetErrorString(svMismatch) + "]");
    return svMismatch;
  }
  const Plan& p = planOf(w);
  buildPush(w);
  std::memcpy(at<char>(s, p.ws.record), at<char>(w, p.ws.record), p.recordBytes);
  const Reply done = serve(s, w.bucket->comm->rank);
  std::memcpy(at<char>(w, p.ws.reply), at<char>(s, p.ws.reply), p.replyBytes);
  bool broken = false;
  std::string why;
  const svResult_t v = checkReply(w, &broken, &why);
  if (v != done.verdict || broken) return report(calls, call, svInternalError,
                                                 "the server and the worker disagree", nullptr);
  if (v != svSuccess) return report(calls, call, v, done.why, nullptr);
  commitServer(s, w.bucket->comm->rank, done);
  commitWorker(w);
  return svSuccess;
}

// A multi-process world: this process's one rank, server or worker.
svResult_t runOne(const AsyncCall& c, const std::vector<AsyncCall>& calls, const char* call) {
  svComm_t comm = c.bucket->comm;
  Transport& t = *comm->world->transport;
  const Plan& p = planOf(c);
  const uint32_t slot = c.bucket->asyncSlot;
  int from = 0;
  auto transportFailed = [&](svResult_t r) {
    return report(calls, call, r, "the transport failed: " + t.error(), comm);
  };
  if (comm->rank == 0) {
    std::vector<int> workers;
    for (int r = 1; r < comm->nranks; ++r) workers.push_back(r);
    if (svResult_t r = t.recv(workers, at<char>(c, p.ws.record), p.recordBytes, slot, &from);
        r != svSuccess)
      return transportFailed(r);
    const Reply done = serve(c, from);
    if (svResult_t r = t.send(from, at<char>(c, p.ws.reply), p.replyBytes, slot); r != svSuccess)
      return transportFailed(r);
    if (done.verdict != svSuccess) return report(calls, call, done.verdict, done.why, nullptr);
    commitServer(c, from, done);
  } else {
    buildPush(c);
    if (svResult_t r = t.send(0, at<char>(c, p.ws.record), p.recordBytes, slot); r != svSuccess)
      return transportFailed(r);
    if (svResult_t r = t.recv({0}, at<char>(c, p.ws.reply), p.replyBytes, slot, &from);
        r != svSuccess)
      return transportFailed(r);
    bool broken = false;
    std::string why;
    const svResult_t v = checkReply(c, &broken, &why);
    if (v != svSuccess) return report(calls, call, v, why, broken ? comm : nullptr);
    commitWorker(c);
  }
  return svSuccess;
}

}  // namespace

svResult_t runAsyncGroup(const std::vector<AsyncCall>& calls) {
  const char* call = calls.size() == 1 ? "svExchange" : "svGroupEnd";
  for (const AsyncCall& c : calls)
    if (c.bucket->config.scheme != SV_SCHEME_DGS_ASYNC)
      return refuse(calls, call, "a group with a dgs_async exchange holds another scheme's "
                    "exchange; run it in a group of its own");
  if (multiProcess(calls[0].bucket->comm)) {
    if (calls.size() != 1)
      return refuse(calls, call, "dgs_async exchanges of a multi-process world run one at a "
                    "time, outside groups");
    return runOne(calls[0], calls, call);
  }
  if (calls.size() != 2)
    return refuse(calls, call, "a loopback world runs a dgs_async exchange as a group of "
                  "exactly two calls, the server's (rank 0) and one worker's (this group "
                  "has " + std::to_string(calls.size()) + ")");
  return runPair(calls, call);
}

}  // namespace signvote::detail
