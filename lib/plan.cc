#include "plan.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "reference/schemes.h"

namespace signvote::detail {

namespace {

uint64_t ceilDiv(uint64_t a, uint64_t b) { return (a + b - 1) / b; }

struct Chunking {
  uint64_t chunkWords, chunk;
};
Chunking chunking(uint64_t n, int nranks) {
  const uint64_t words = ceilDiv(n, 64);
  const uint64_t cw = ceilDiv(words, static_cast<uint64_t>(nranks));
  return {cw, cw * 64};
}

unsigned countBytesFor(int nranks) { return nranks <= 127 ? 1u : 2u; }
unsigned inPlanesFor(svVote_t vote) { return vote == SV_VOTE_BINARY ? 1u : 2u; }

class Carver {
 public:
  Region take(size_t bytes) {
    if (bytes == 0) return {};
    Region r{total_, bytes};
    total_ += (bytes + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
    return r;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

}  // namespace

namespace {
bool resolve(size_t k, double density, uint64_t count, uint64_t* out) {
  if (density == 0.0) {
    *out = k;
    return true;
  }
  if (!(density > 0.0 && density <= 1.0)) return false;  // also rejects NaN
  // density <= 1 and count <= 2^32 (exact in double) keep the product <= count.
  *out = static_cast<uint64_t>(std::ceil(density * static_cast<double>(count)));
  return true;
}
}  // namespace

bool resolveK(const svBucketConfig_t& config, uint64_t* k) {
  return resolve(config.k, config.density, config.count, k);
}

bool resolveDownK(const svBucketConfig_t& config, uint64_t* k) {
  return resolve(config.downK, config.downDensity, config.count, k);
}

uint64_t modelWireBytes(svFormat_t format, const svBucketConfig_t& config, uint64_t k,
                        int nranks) {
  const uint64_t peers = static_cast<uint64_t>(nranks - 1);
  const Chunking c = chunking(config.count, nranks);
  const uint64_t planeBytes = c.chunkWords * 8;
  switch (format) {
    case SV_FORMAT_SPARSE:
      return peers * ref::sparseLayout(config.count, k).recordBytes();
    case SV_FORMAT_COUNTS:
      return peers * (kHeaderBytes + c.chunk * countBytesFor(nranks) + 2 * planeBytes);
    case SV_FORMAT_SIGNS: {
      const unsigned planes = inPlanesFor(config.vote);
      return peers * (kHeaderBytes + 2 * planes * planeBytes);
    }
    case SV_FORMAT_FP32:
      return peers * (kHeaderBytes + 2 * c.chunk * 4);
    case SV_FORMAT_SCALED_SIGNS:
      return peers * (kHeaderBytes + 2 * ceilDiv(config.count, 64) * 8);
    case SV_FORMAT_SPARSE_VALUES:
      return peers * (ref::sparseLayout(config.count, k).recordBytes() + ceilDiv(k, 2) * 8);
    case SV_FORMAT_CHUNK_SIGNS:  // header allgather, all-to-all to the owners, allgather back
      return peers * (kHeaderBytes + 2 * ref::chunkSignsWords(c.chunkWords) * 8);
    default:
      return 0;
  }
}

LinkModel modelLink(const Plan& p, const svBucketConfig_t& config) {
  // bytes / (GB/s) = ns; / 1e3 = us. liec's period: (tau - 1) compressed exchanges and one
  // averaging exchange.
  const double perUs = config.linkBusBW * 1e3;
  double wire = static_cast<double>(p.wireBytes);
  if (p.format == SV_FORMAT_CHUNK_SIGNS && config.period != 0)
    wire = ((config.period - 1.0) * wire + static_cast<double>(p.averageWireBytes)) /
           config.period;
  LinkModel m;
  m.us = config.kernelUs + wire / perUs;
  m.denseUs = static_cast<double>(p.denseWireBytes) / perUs;
  return m;
}

svBucketConfig_t denseFallbackOf(const svBucketConfig_t& config) {
  svBucketConfig_t d = SV_BUCKET_CONFIG_INITIALIZER;
  d.scheme = SV_SCHEME_DENSE;
  d.datatype = config.datatype;
  d.count = config.count;
  d.linkBusBW = config.linkBusBW;
  d.kernelUs = config.kernelUs;
  return d;
}

Plan makePlan(const svBucketConfig_t& config, uint64_t k, int nranks, const CudaScratch* cuda) {
  Plan p;
  p.scheme = config.scheme;
  p.vote = config.vote;
  p.n = config.count;
  p.k = k;
  p.nranks = nranks;
  p.format = config.format;
  if (p.format == SV_FORMAT_AUTO) {
    switch (config.scheme) {
      case SV_SCHEME_DENSE: p.format = SV_FORMAT_FP32; break;
      case SV_SCHEME_SIGNSGD_MV: p.format = SV_FORMAT_SIGNS; break;
      case SV_SCHEME_EF_SIGN: p.format = SV_FORMAT_SCALED_SIGNS; break;
      case SV_SCHEME_TOPK_EF:
      case SV_SCHEME_DGS:
      case SV_SCHEME_DGS_ASYNC: p.format = SV_FORMAT_SPARSE_VALUES; break;
      case SV_SCHEME_LIEC: p.format = SV_FORMAT_CHUNK_SIGNS; break;
      default: {  // s3gd_mv: the signs format's 4 bits per element always undercut counts
        const int w = nranks < 2 ? 2 : nranks;
        p.format = modelWireBytes(SV_FORMAT_SPARSE, config, k, w) <=
                           modelWireBytes(SV_FORMAT_SIGNS, config, k, w)
                       ? SV_FORMAT_SPARSE
                       : SV_FORMAT_SIGNS;
      }
    }
  }
  p.momentum = config.momentum;
  const bool async = config.scheme == SV_SCHEME_DGS_ASYNC;
  p.selects = config.scheme == SV_SCHEME_S3GD_MV || config.scheme == SV_SCHEME_TOPK_EF ||
              config.scheme == SV_SCHEME_DGS || async;
  if (config.scheme == SV_SCHEME_DGS || async) resolveDownK(config, &p.downK);
  const Chunking c = chunking(p.n, nranks);
  p.chunk = c.chunk;
  p.chunkWords = c.chunkWords;
  const bool liec = p.format == SV_FORMAT_CHUNK_SIGNS;
  p.stateful = p.selects || config.scheme == SV_SCHEME_EF_SIGN || p.momentum != 0.0f || liec;
  p.stateFloats = !p.stateful ? 0
                  : liec      ? p.chunk
                  : (config.scheme == SV_SCHEME_TOPK_EF && p.momentum != 0.0f) ||
                          (config.scheme == SV_SCHEME_DGS && p.downK != 0)
                      ? 2 * p.n
                      : p.n;
  p.wireBytes = modelWireBytes(p.format, config, k, nranks);
  p.denseWireBytes = 2ull * (nranks - 1) * ceilDiv(p.n, nranks) * 4;
  if (liec) p.averageWireBytes = modelWireBytes(SV_FORMAT_FP32, config, k, nranks);

  const uint64_t W = static_cast<uint64_t>(nranks);
  const size_t planeBytes = p.chunkWords * 8;
  Carver carve;
  WorkspaceLayout& ws = p.ws;
  if (cuda != nullptr && config.adaptiveK != SV_ADAPTIVE_K_NONE) {
    ws.normOut = carve.take(8);
    ws.normTemp = carve.take(cuda->norm);
  }
  if (p.stateful) ws.acc = carve.take((liec ? W * p.chunk : p.n) * 4);
  if (config.scheme == SV_SCHEME_TOPK_EF && p.momentum != 0.0f) ws.accU = carve.take(p.n * 4);
  if (p.downK != 0 || async) {
    ws.downA = carve.take(p.n * 4);
    ws.downSel = carve.take(p.downK * 4);
  }
  if (p.selects) ws.sel = carve.take(k * 4);
  if (p.format != SV_FORMAT_SPARSE && p.format != SV_FORMAT_SCALED_SIGNS &&
      p.format != SV_FORMAT_SPARSE_VALUES) {
    ws.header = carve.take(kHeaderBytes);
    ws.headers = carve.take(W * kHeaderBytes);
  }
  switch (p.format) {
    case SV_FORMAT_SPARSE:
    case SV_FORMAT_SPARSE_VALUES:
      p.sparse = ref::sparseLayout(p.n, k);
      p.recordBytes = p.sparse.recordBytes() +
                      (p.format == SV_FORMAT_SPARSE_VALUES ? ceilDiv(k, 2) * 8 : 0);
      if (async) {  // the worker's push and the server's reply; the server reuses entries
        p.replyBytes = asyncReplyBytes(p.n, p.downK);
        ws.entries = carve.take(std::max(k, p.downK) * 4);
        ws.entryNeg = carve.take(std::max(k, p.downK));
        ws.record = carve.take(p.recordBytes);
        ws.reply = carve.take(p.replyBytes);
        // One push and its reply; dense: a gradient up and the model difference down.
        p.wireBytes = p.recordBytes + p.replyBytes;
        p.denseWireBytes = 2 * p.n * 4;
        break;
      }
      ws.entries = carve.take(k * 4);
      ws.entryNeg = carve.take(k);
      ws.record = carve.take(p.recordBytes);
      ws.records = carve.take(W * p.recordBytes);
      ws.votes = carve.take(p.n * 4);
      break;
    case SV_FORMAT_SCALED_SIGNS:
      p.recordBytes = kHeaderBytes + 2 * ceilDiv(p.n, 64) * 8;
      ws.record = carve.take(p.recordBytes);
      ws.records = carve.take(W * p.recordBytes);
      break;
    case SV_FORMAT_COUNTS:
      p.countBytes = countBytesFor(nranks);
      p.resultPlanes = 2;
      ws.countsSend = carve.take(W * p.chunk * p.countBytes);
      ws.countsOwned = carve.take(p.chunk * p.countBytes);
      // Device transports only move bytes: the owner sums what an all-to-all brought it.
      if (cuda != nullptr) ws.countsBlocks = carve.take(W * p.chunk * p.countBytes);
      break;
    case SV_FORMAT_SIGNS:
      p.inPlanes = inPlanesFor(p.vote);
      p.resultPlanes = p.inPlanes;
      ws.planesSend = carve.take(W * p.inPlanes * planeBytes);
      ws.planesRecv = carve.take(W * p.inPlanes * planeBytes);
      break;
    case SV_FORMAT_FP32: {
      // The device path sums by owner chunks (all-to-all, rank-order sum, allgather).
      const uint64_t floats = cuda != nullptr ? W * p.chunk : p.n;
      ws.fp32Send = carve.take(floats * 4);
      if (cuda != nullptr) ws.fp32Blocks = carve.take(floats * 4);
      ws.fp32Sum = carve.take(floats * 4);
      break;
    }
    case SV_FORMAT_CHUNK_SIGNS: {
      const size_t msg = ref::chunkSignsWords(p.chunkWords) * 8;
      const size_t result = std::max<size_t>(msg, p.chunk * 4);
      ws.planesSend = carve.take(W * msg);
      ws.planesRecv = carve.take(W * msg);
      ws.resultOwn = carve.take(result);
      ws.resultAll = carve.take(W * result);
      ws.fp32Sum = carve.take(p.chunk * 4);
      ws.eNew = carve.take(p.chunk * 4);
      // The device's averaging exchange: the owner sums what an all-to-all brought it.
      if (cuda != nullptr) ws.fp32Blocks = carve.take(W * p.chunk * 4);
      break;
    }
    default:
      break;
  }
  if (p.resultPlanes != 0) {
    ws.resultOwn = carve.take(p.resultPlanes * planeBytes);
    ws.resultAll = carve.take(W * p.resultPlanes * planeBytes);
  }
  if (cuda != nullptr) {
    ws.topkTemp = carve.take(cuda->topk);
    ws.topkStatus = carve.take(cuda->topkStatus);
    ws.encTemp = carve.take(cuda->encode);
    ws.recordInfo = carve.take(cuda->recordInfo);
    ws.decTemp = carve.take(cuda->decode);
    ws.ctrl = carve.take(cuda->ctrl);
  }
  ws.total = carve.total();
  return p;
}

bool planWith(const svBucketConfig_t& config, uint64_t k, int nranks,
              const ScratchFn& scratchFor, Plan* out) {
  *out = makePlan(config, k, nranks);
  if (!scratchFor) return true;
  CudaScratch s;
  if (!scratchFor(*out, &s)) return false;
  *out = makePlan(config, k, nranks, &s);
  return true;
}

bool stepPlan(const Plan& bucketPlan, const svBucketConfig_t& config, uint64_t kt,
              const ScratchFn& scratchFor, Plan* out) {
  svBucketConfig_t c = config;
  c.format = bucketPlan.format;
  return planWith(c, kt, bucketPlan.nranks, scratchFor, out);
}

bool adaptiveWorkspaceBytes(const Plan& bucketPlan, const svBucketConfig_t& config,
                            const ScratchFn& scratchFor, size_t* bytes) {
  // Within the K range where L = floor(log2(N/K)) is constant every region grows with K (the
  // kernels' scratch too: CUB's grows with its item count), so the largest K of each range
  // (N >> L) and kMin bound all the others.
  std::vector<uint64_t> ks{config.kMin};
  for (unsigned L = 0; L < 64 && (config.count >> L) >= config.kMin; ++L)
    ks.push_back(config.count >> L);
  size_t most = 0;
  for (uint64_t k : ks) {
    Plan p;
    if (!stepPlan(bucketPlan, config, k, scratchFor, &p)) return false;
    most = std::max(most, p.ws.total);
  }
  *bytes = most;
  return true;
}

ref::WireHeader headerTemplate(const Plan& p, int rank, uint64_t seq) {
  ref::WireHeader h{};
  h.magic = ref::kWireMagic;
  h.version = SIGNVOTE_WIRE_VERSION;
  h.rank = static_cast<uint32_t>(rank);
  h.scheme = static_cast<uint8_t>(p.scheme);
  h.format = static_cast<uint8_t>(p.format);
  h.vote = static_cast<uint8_t>(p.vote);
  h.seq = seq;
  h.count = p.n;
  h.k = p.selects ? p.k : 0;
  return h;
}

}  // namespace signvote::detail
