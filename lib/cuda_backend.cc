#include "cuda_backend.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "error.h"
#include "kernels.h"
#include "reference/schemes.h"

namespace signvote::detail {

namespace k = signvote::kernels;

namespace {

// The control words of one exchange, per rank, in its workspace's ctrl region (u32 unless
// said): header verdicts [W], flags [W + 2] (one per record, the owner step's checker, the
// result planes' checker), gate, nanOut, then the u64 NaN count of the sign and dense formats.
struct Ctrl {
  uint32_t* verdicts;
  uint32_t* flags;
  uint32_t* gate;
  uint32_t* nanOut;
  unsigned long long* nanCount;
  static size_t nanOffset(int W) { return 8u * (W + 2); }  // the 2W + 4 words: 8-byte aligned
  static size_t bytes(int W) { return nanOffset(W) + 8; }
  Ctrl(void* base, int W) {
    auto* u = static_cast<uint32_t*>(base);
    verdicts = u;
    flags = u + W;
    gate = u + 2 * W + 2;
    nanOut = u + 2 * W + 3;
    nanCount = reinterpret_cast<unsigned long long*>(static_cast<char*>(base) + nanOffset(W));
  }
};

template <class T>
T* at(const CudaOp& op, const Region& r) {
  return reinterpret_cast<T*>(static_cast<char*>(op.ws) + r.offset);
}

}  // namespace

bool cudaBackendAvailable(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    *why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
    cudaGetLastError();
    return false;
  }
  // A device of an architecture the build left out would fail at the first exchange's first
  // launch and break the communicator; say so here, with the fix, and create nothing.
  const cudaError_t image = k::probeKernelImage();
  if (image == cudaSuccess) return true;
  int device = -1, major = 0, minor = 0;
  cudaGetDevice(&device);
  cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
  cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
  cudaGetLastError();  // the probe's error (not sticky), and any of the queries'
  char text[512];
  std::snprintf(text, sizeof(text), "device %d, compute capability %d.%d, cannot run this "
                "build's kernels, compiled for CMAKE_CUDA_ARCHITECTURES = %s: %s; rebuild "
                "signvote with -DCMAKE_CUDA_ARCHITECTURES=%d%d or a list that includes it",
                device, major, minor, k::kernelArchitectures(), cudaGetErrorString(image),
                major, minor);
  *why = text;
  return false;
}

svResult_t cudaInitComm(svComm* c) {
  if (cudaGetDevice(&c->device) != cudaSuccess) return svUnhandledCudaError;
  cudaEvent_t ev = nullptr;
  if (cudaEventCreateWithFlags(&ev, cudaEventDisableTiming) != cudaSuccess)
    return svUnhandledCudaError;
  // Two words of pinned memory: the sticky verdict, then the norm slot.
  void* pinned = nullptr;
  if (cudaHostAlloc(&pinned, 2 * sizeof(uint64_t), cudaHostAllocMapped) != cudaSuccess) {
    cudaEventDestroy(ev);
    return svSystemError;
  }
  *static_cast<volatile uint32_t*>(pinned) = 0;
  c->event = ev;
  c->sticky = static_cast<uint32_t*>(pinned);
  c->hostSlot = static_cast<uint64_t*>(pinned) + 1;
  return svSuccess;
}

void cudaDestroyComm(svComm* c) {
  if (c->event) cudaEventDestroy(c->event);
  if (c->sticky) cudaFreeHost(c->sticky);
  c->event = nullptr;
  c->sticky = nullptr;
  c->hostSlot = nullptr;
}

svResult_t cudaScratchFor(const Plan& p, CudaScratch* out) {
  CudaScratch s;
  if (p.selects) {  // the scratch depends on n only, so dgs's downlink selection shares it
    if (k::accumulateTopK(nullptr, &s.topk, nullptr, nullptr, 1.0f, p.n, p.k, SV_NONFINITE_ERROR,
                          nullptr, nullptr, nullptr, nullptr) != cudaSuccess)
      return svUnhandledCudaError;
    s.topkStatus = sizeof(k::TopKStatus);
    if (k::squareNorm(nullptr, &s.norm, nullptr, p.n, SV_NONFINITE_ERROR, nullptr, nullptr) !=
        cudaSuccess)
      return svUnhandledCudaError;
  }
  if (p.format == SV_FORMAT_SCALED_SIGNS) {
    if (k::efSignCompress(nullptr, &s.encode, nullptr, nullptr, p.n, SV_NONFINITE_ERROR,
                          nullptr, nullptr, nullptr, nullptr, nullptr) != cudaSuccess ||
        k::checkScaledRecords(nullptr, &s.decode, nullptr, p.recordBytes, p.nranks, p.n,
                              nullptr, nullptr) != cudaSuccess)
      return svUnhandledCudaError;
    s.recordInfo = sizeof(k::RecordInfo);
  }
  if (p.format == SV_FORMAT_SPARSE || p.format == SV_FORMAT_SPARSE_VALUES) {
    const cudaError_t decode =
        p.format == SV_FORMAT_SPARSE
            ? k::addSparseVotes(nullptr, &s.decode, p.sparse, nullptr, p.recordBytes, p.nranks,
                                nullptr, nullptr, nullptr)
            : k::sumSparseValues(nullptr, &s.decode, p.sparse, nullptr, p.recordBytes,
                                 p.nranks, nullptr, nullptr, nullptr);
    if (k::encodeSparse(nullptr, &s.encode, p.sparse, nullptr, nullptr, nullptr, nullptr,
                        nullptr, nullptr) != cudaSuccess ||
        decode != cudaSuccess)
      return svUnhandledCudaError;
    s.recordInfo = sizeof(k::RecordInfo);
  }
  if (p.format == SV_FORMAT_CHUNK_SIGNS) {  // the uplink's and the owner's trees share it
    size_t owner = 0;
    if (k::liecCompress(nullptr, &s.encode, nullptr, p.n, p.chunkWords, p.nranks,
                        SV_NONFINITE_ERROR, nullptr, nullptr, nullptr, nullptr) != cudaSuccess ||
        k::liecOwner(nullptr, &owner, nullptr, p.nranks, p.n, 0, p.chunkWords, nullptr, nullptr,
                     nullptr, nullptr, nullptr, nullptr) != cudaSuccess)
      return svUnhandledCudaError;
    s.encode = std::max(s.encode, owner);
  }
  s.ctrl = Ctrl::bytes(p.nranks);
  *out = s;
  return svSuccess;
}

ScratchFn scratchFnOf(const svComm* comm) {
  if (comm->config.backend != SV_BACKEND_CUDA) return {};
  return [](const Plan& p, CudaScratch* s) { return cudaScratchFor(p, s) == svSuccess; };
}

svResult_t cudaCreateResidual(svBucket* b, std::string* why) {
  const size_t bytes = b->plan.stateFloats * sizeof(float);
  if (bytes == 0) return svSuccess;
  void* p = nullptr;
  if (const cudaError_t e = cudaMalloc(&p, bytes); e != cudaSuccess) {
    *why = cudaCallText("cudaMalloc", e, __FILE__, __LINE__);
    return e == cudaErrorMemoryAllocation ? svSystemError : svUnhandledCudaError;
  }
  // liec's error starts as -0.0 (the additive identity), every other state as +0.0.
  const std::vector<float> init(b->plan.stateFloats,
                                b->plan.format == SV_FORMAT_CHUNK_SIGNS ? -0.0f : 0.0f);
  // A pageable cudaMemcpy may return before its DMA lands, and exchanges on non-blocking streams
  // would not wait for the legacy stream.
  cudaError_t e = cudaMemcpy(p, init.data(), bytes, cudaMemcpyHostToDevice);
  if (e == cudaSuccess) e = cudaStreamSynchronize(cudaStreamLegacy);
  if (e != cudaSuccess) {
    *why = cudaCallText("cudaMemcpy", e, __FILE__, __LINE__);
    cudaFree(p);
    cudaGetLastError();
    return svUnhandledCudaError;
  }
  b->deviceResidual = static_cast<float*>(p);
  return svSuccess;
}

void cudaDestroyResidual(svBucket* b) {
  if (b->deviceResidual) cudaFree(b->deviceResidual);
  b->deviceResidual = nullptr;
}

svResult_t cudaCopyResidual(svBucket* b, void* dst, const void* src) {
  const size_t bytes = b->plan.stateFloats * sizeof(float);
  if (bytes == 0) return svSuccess;
  const cudaError_t e = dst ? cudaMemcpy(dst, b->deviceResidual, bytes, cudaMemcpyDefault)
                            : cudaMemcpy(b->deviceResidual, src, bytes, cudaMemcpyDefault);
  // A device-to-device cudaMemcpy may return before it completes; the API promises a copy.
  if (e != cudaSuccess || cudaStreamSynchronize(cudaStreamLegacy) != cudaSuccess)
    return svUnhandledCudaError;
  return svSuccess;
}

int cudaMemoryDevice(const void* p) {
  cudaPointerAttributes a{};
  if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return a.type == cudaMemoryTypeDevice ? a.device : a.type == cudaMemoryTypeManaged ? kAnyDevice
                                                                                     : -1;
}

std::string cudaCallText(const char* call, cudaError_t e, const char* file, int line) {
  cudaGetLastError();  // a launch error would otherwise be reported again by the next call
  return std::string(call) + ": " + cudaGetErrorString(e) + " (" + file + ":" +
         std::to_string(line) + ")";
}

int cudaCurrentDevice() {
  int d = -1;
  if (cudaGetDevice(&d) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return d;
}

svResult_t cudaCheckCurrentDevice(svComm_t comm, const char* call) {
  const int device = cudaCurrentDevice();
  if (device == comm->device) return svSuccess;
  return fail(comm, svInvalidUsage, "%s: the current CUDA device is %d but comm (rank %d) was "
              "created on device %d; call cudaSetDevice(%d) first", call, device, comm->rank,
              comm->device, comm->device);
}

int cudaStreamDevice(svStream_t stream) {
  int d = -1;
  if (cudaStreamGetDevice(reinterpret_cast<cudaStream_t>(stream), &d) != cudaSuccess) {
    cudaGetLastError();
    return -1;
  }
  return d;
}

unsigned long long cudaCaptureId(svStream_t stream) {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  unsigned long long id = 0;
  if (cudaStreamGetCaptureInfo(reinterpret_cast<cudaStream_t>(stream), &st, &id) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return st == cudaStreamCaptureStatusNone ? 0 : id;
}

svResult_t cudaStickyError(const svComm* c) {
  if (c->sticky == nullptr) return svSuccess;
  return static_cast<svResult_t>(*static_cast<const volatile uint32_t*>(c->sticky));
}

#define SV_LAUNCH(call) SVCUDACHECK_WHY(call, why)
#define SV_WIRE(call)                                           \
  do {                                                          \
    const svResult_t sv_wire_res_ = (call);                     \
    if (sv_wire_res_ != svSuccess) {                            \
      *why = std::string(#call) + ": " + t.error();             \
      traceFrame(__FILE__, __LINE__, sv_wire_res_);             \
      return sv_wire_res_;                                      \
    }                                                           \
  } while (0)

namespace {

// dst = blocks[0] + blocks[1] + ... + blocks[W-1] (count elements each, in rank order): the
// owner's half of a reduce-scatter, so every transport gives the host backend's bits.
svResult_t sumBlocks(const char* blocks, int W, uint64_t count, unsigned elemBytes, bool isFloat,
                     void* dst, cudaStream_t s, std::string* why) {
  const size_t bytes = count * elemBytes;
  if (bytes == 0) return svSuccess;
  SV_LAUNCH(cudaMemcpyAsync(dst, blocks, bytes, cudaMemcpyDeviceToDevice, s));
  for (int r = 1; r < W; ++r)
    SV_LAUNCH(k::addInto(dst, blocks + r * bytes, count, elemBytes, isFloat, s));
  return svSuccess;
}

}  // namespace

svResult_t cudaSquareNorms(const std::vector<CudaOp>& ops, const Plan& p, DeviceTransport& t,
                           std::vector<float>* norms, std::string* why) {
  const svNonFinitePolicy_t policy = ops[0].bucket->comm->config.nonFinite;
  for (const CudaOp& op : ops) {
    const auto s = reinterpret_cast<cudaStream_t>(op.stream);
    auto* out = at<unsigned long long>(op, p.ws.normOut);
    size_t bytes = p.ws.normTemp.bytes;
    SV_LAUNCH(k::squareNorm(at<void>(op, p.ws.normTemp), &bytes,
                            static_cast<const float*>(op.send), p.n, policy, out, s));
    // Into pinned memory: a copy into pageable memory would block here, without t's timeout.
    SV_LAUNCH(cudaMemcpyAsync(op.bucket->comm->hostSlot, out, 8, cudaMemcpyDeviceToHost, s));
  }
  norms->resize(ops.size());
  for (size_t i = 0; i < ops.size(); ++i) {
    if (const svResult_t r = t.waitStream(reinterpret_cast<cudaStream_t>(ops[i].stream));
        r != svSuccess)
      return *why = "waiting for adaptive K's norm failed: " + t.error(), r;
    const auto bits = static_cast<uint32_t>(*ops[i].bucket->comm->hostSlot);
    std::memcpy(&(*norms)[i], &bits, 4);
  }
  return svSuccess;
}

svResult_t cudaRunMatched(const std::vector<CudaOp>& ops, const Plan& p, uint64_t seq,
                          DeviceTransport& t, std::string* why) {
  const int W = p.nranks;
  const size_t local = ops.size();
  const svNonFinitePolicy_t policy = ops[0].bucket->comm->config.nonFinite;
  const WorkspaceLayout& L = p.ws;
  CudaRanks ranks;
  for (const CudaOp& op : ops) {
    ranks.ranks.push_back(op.bucket->comm->rank);
    ranks.streams.push_back(reinterpret_cast<cudaStream_t>(op.stream));
    ranks.events.push_back(reinterpret_cast<cudaEvent_t>(op.bucket->comm->event));
  }
  DeviceTransport::Sends sends(local);
  DeviceTransport::Recvs recvs(local);
  // ownBlockBytes != 0: the send is this rank's block of `to` (an in-place allgather).
  auto collect = [&](const Region& from, const Region& to, size_t ownBlockBytes = 0) {
    for (size_t i = 0; i < local; ++i) {
      recvs[i] = at<char>(ops[i], to);
      sends[i] = ownBlockBytes ? at<char>(ops[i], to) + ranks.ranks[i] * ownBlockBytes
                               : at<char>(ops[i], from);
    }
  };
  const size_t planeBytes = p.chunkWords * 8;

  // Step 1: each rank's contribution and its sealed header.
  for (size_t i = 0; i < local; ++i) {
    const CudaOp& op = ops[i];
    cudaStream_t s = ranks.streams[i];
    const Ctrl c(at<void>(op, L.ctrl), W);
    SV_LAUNCH(cudaMemsetAsync(at<void>(op, L.ctrl), 0, L.ctrl.bytes, s));
    const auto* g = static_cast<const float*>(op.send);
    const ref::WireHeader tmpl = headerTemplate(p, ranks.ranks[i], seq);
    size_t bytes = 0;
    if (p.selects) {
      auto* status = at<k::TopKStatus>(op, L.topkStatus);
      float* acc = at<float>(op, L.acc);
      uint32_t* sel = at<uint32_t>(op, L.sel);
      float* state = op.bucket->deviceResidual;
      bytes = L.topkTemp.bytes;
      if (p.scheme == SV_SCHEME_TOPK_EF) {  // v + fma(momentum, u, g), then its top-K in place
        const bool withU = p.momentum != 0.0f;
        SV_LAUNCH(k::topkEfAccumulate(g, withU ? state + p.n : nullptr, state, p.momentum, p.n,
                                      policy, withU ? at<float>(op, L.accU) : nullptr, acc, s));
        SV_LAUNCH(k::accumulateTopK(at<void>(op, L.topkTemp), &bytes, acc, nullptr, 1.0f, p.n,
                                    p.k, policy, acc, sel, status, s));
      } else {  // s3gd_mv's a = fma(rho, a, g); dgs's SAMomentum u = fma(m, u, g)
        const float rho = p.scheme == SV_SCHEME_DGS ? p.momentum : op.bucket->config.rho;
        SV_LAUNCH(k::accumulateTopK(at<void>(op, L.topkTemp), &bytes, g, state, rho, p.n, p.k,
                                    policy, acc, sel, status, s));
      }
      if (p.format == SV_FORMAT_SPARSE || p.format == SV_FORMAT_SPARSE_VALUES) {
        char* record = at<char>(op, L.record);
        auto* info = at<k::RecordInfo>(op, L.recordInfo);
        auto* payload = reinterpret_cast<uint64_t*>(record + kHeaderBytes);
        uint32_t* entries = at<uint32_t>(op, L.entries);
        bytes = L.encTemp.bytes;
        SV_LAUNCH(k::encodeSparse(at<void>(op, L.encTemp), &bytes, p.sparse, acc, sel, entries,
                                  payload, info, s));
        if (p.format == SV_FORMAT_SPARSE_VALUES)
          SV_LAUNCH(k::encodeValues(acc, entries, p.k, p.sparse.payloadWords(),
                                    payload + p.sparse.payloadWords(), info, s));
        SV_LAUNCH(k::writeHeader(tmpl, info, (p.recordBytes - kHeaderBytes) / 8,
                                 &status->nanCount, record, s));
      } else {
        if (p.format == SV_FORMAT_COUNTS)
          SV_LAUNCH(k::s3gdTernary(acc, sel, p.k, p.chunk * W, p.countBytes,
                                   at<void>(op, L.countsSend), s));
        else
          SV_LAUNCH(k::s3gdPlanes(acc, sel, p.k, p.chunkWords, W,
                                  at<uint64_t>(op, L.planesSend), s));
        SV_LAUNCH(k::writeHeader(tmpl, nullptr, 0, &status->nanCount, at<void>(op, L.header), s));
      }
    } else if (p.format == SV_FORMAT_SCALED_SIGNS) {
      char* record = at<char>(op, L.record);
      auto* info = at<k::RecordInfo>(op, L.recordInfo);
      bytes = L.encTemp.bytes;
      SV_LAUNCH(k::efSignCompress(at<void>(op, L.encTemp), &bytes, g,
                                  op.bucket->deviceResidual, p.n, policy, at<float>(op, L.acc),
                                  reinterpret_cast<uint64_t*>(record + kHeaderBytes), info,
                                  c.nanCount, s));
      SV_LAUNCH(k::writeHeader(tmpl, info, (p.recordBytes - kHeaderBytes) / 8, c.nanCount,
                               record, s));
    } else if (p.format == SV_FORMAT_CHUNK_SIGNS) {
      float* clean = at<float>(op, L.acc);  // W chunks: the averaging all-to-all's blocks
      if (p.average) {
        SV_LAUNCH(k::cleanCopy(g, p.n, policy, clean, c.nanCount, s));
        if (W * p.chunk > p.n)
          SV_LAUNCH(cudaMemsetAsync(clean + p.n, 0, (W * p.chunk - p.n) * 4, s));
      } else {
        bytes = L.encTemp.bytes;
        SV_LAUNCH(k::liecCompress(at<void>(op, L.encTemp), &bytes, g, p.n, p.chunkWords, W,
                                  policy, clean, at<uint64_t>(op, L.planesSend), c.nanCount,
                                  s));
      }
      SV_LAUNCH(k::writeHeader(tmpl, nullptr, 0, c.nanCount, at<void>(op, L.header), s));
    } else if (p.format == SV_FORMAT_SIGNS) {
      if (p.momentum != 0.0f) {  // Signum: vote on the new momentum (committed if all pass)
        SV_LAUNCH(k::signumMomentum(g, op.bucket->deviceResidual, p.momentum, p.n, policy,
                                    at<float>(op, L.acc), s));
        g = at<float>(op, L.acc);
      }
      SV_LAUNCH(k::packSigns(g, p.n, p.vote, p.chunkWords, W, policy,
                             at<uint64_t>(op, L.planesSend), c.nanCount, s));
      SV_LAUNCH(k::writeHeader(tmpl, nullptr, 0, c.nanCount, at<void>(op, L.header), s));
    } else {
      float* clean = at<float>(op, L.fp32Send);
      SV_LAUNCH(k::cleanCopy(g, p.n, policy, clean, c.nanCount, s));
      if (L.fp32Send.bytes > p.n * 4)  // the padding of the last owner's chunk
        SV_LAUNCH(cudaMemsetAsync(clean + p.n, 0, L.fp32Send.bytes - p.n * 4, s));
      SV_LAUNCH(k::writeHeader(tmpl, nullptr, 0, c.nanCount, at<void>(op, L.header), s));
    }
  }
  SV_WIRE(t.barrier(ranks));

  // Step 2: the wire, with the owners' steps in between.
  const bool records = p.format == SV_FORMAT_SPARSE || p.format == SV_FORMAT_SCALED_SIGNS ||
                       p.format == SV_FORMAT_SPARSE_VALUES;
  if (records) {
    collect(L.record, L.records);
    SV_WIRE(t.allGather(ranks, sends, recvs, p.recordBytes));
  } else {
    collect(L.header, L.headers);
    SV_WIRE(t.allGather(ranks, sends, recvs, kHeaderBytes));
  }
  if (p.format == SV_FORMAT_COUNTS) {
    collect(L.countsSend, L.countsBlocks);
    SV_WIRE(t.allToAll(ranks, sends, recvs, p.chunk * p.countBytes));
    for (size_t i = 0; i < local; ++i) {
      SVCHECK(sumBlocks(at<char>(ops[i], L.countsBlocks), W, p.chunk, p.countBytes, false,
                        at<void>(ops[i], L.countsOwned), ranks.streams[i], why));
      uint32_t* bad = Ctrl(at<void>(ops[i], L.ctrl), W).flags + W;
      SV_LAUNCH(k::countsToPlanes(at<void>(ops[i], L.countsOwned), p.countBytes, p.chunkWords,
                                  W, at<uint64_t>(ops[i], L.resultOwn), bad, ranks.streams[i]));
      SV_LAUNCH(k::poisonPlanesWhen(bad, p.chunkWords, at<uint64_t>(ops[i], L.resultOwn),
                                    ranks.streams[i]));
    }
  } else if (p.format == SV_FORMAT_SIGNS) {
    collect(L.planesSend, L.planesRecv);
    SV_WIRE(t.allToAll(ranks, sends, recvs, p.inPlanes * planeBytes));
    for (size_t i = 0; i < local; ++i) {  // binary planes cannot be malformed
      uint32_t* bad = Ctrl(at<void>(ops[i], L.ctrl), W).flags + W;
      SV_LAUNCH(k::voteSignPlanes(at<uint64_t>(ops[i], L.planesRecv), p.vote, p.chunkWords, W,
                                  at<uint64_t>(ops[i], L.resultOwn), bad, ranks.streams[i]));
      if (p.resultPlanes == 2)
        SV_LAUNCH(k::poisonPlanesWhen(bad, p.chunkWords, at<uint64_t>(ops[i], L.resultOwn),
                                      ranks.streams[i]));
    }
  } else if (p.format == SV_FORMAT_FP32) {
    collect(L.fp32Send, L.fp32Blocks);
    SV_WIRE(t.allToAll(ranks, sends, recvs, p.chunk * 4));
    for (size_t i = 0; i < local; ++i)
      SVCHECK(sumBlocks(at<char>(ops[i], L.fp32Blocks), W, p.chunk, 4, true,
                        at<float>(ops[i], L.fp32Sum) + ranks.ranks[i] * p.chunk,
                        ranks.streams[i], why));
    SV_WIRE(t.barrier(ranks));
    collect(L.fp32Sum, L.fp32Sum, p.chunk * 4);
    SV_WIRE(t.allGather(ranks, sends, recvs, p.chunk * 4));
  } else if (p.format == SV_FORMAT_CHUNK_SIGNS && !p.average) {
    const size_t msgBytes = ref::chunkSignsWords(p.chunkWords) * 8;
    collect(L.planesSend, L.planesRecv);
    SV_WIRE(t.allToAll(ranks, sends, recvs, msgBytes));
    for (size_t i = 0; i < local; ++i) {
      const CudaOp& op = ops[i];
      size_t bytes = L.encTemp.bytes;
      SV_LAUNCH(k::liecOwner(at<void>(op, L.encTemp), &bytes, at<uint64_t>(op, L.planesRecv), W,
                             p.n, ranks.ranks[i], p.chunkWords, op.bucket->deviceResidual,
                             at<float>(op, L.fp32Sum), at<float>(op, L.eNew),
                             at<uint64_t>(op, L.resultOwn),
                             Ctrl(at<void>(op, L.ctrl), W).flags + W, ranks.streams[i]));
    }
    SV_WIRE(t.barrier(ranks));
    collect(L.resultOwn, L.resultAll);
    SV_WIRE(t.allGather(ranks, sends, recvs, msgBytes));
    for (size_t i = 0; i < local; ++i)
      SV_LAUNCH(k::checkChunkSigns(at<uint64_t>(ops[i], L.resultAll), W, p.chunkWords, p.n, -1,
                                   Ctrl(at<void>(ops[i], L.ctrl), W).flags + W + 1,
                                   ranks.streams[i]));
  } else if (p.format == SV_FORMAT_CHUNK_SIGNS) {  // averaging: the owners' float32 means
    collect(L.acc, L.fp32Blocks);
    SV_WIRE(t.allToAll(ranks, sends, recvs, p.chunk * 4));
    for (size_t i = 0; i < local; ++i) {
      SVCHECK(sumBlocks(at<char>(ops[i], L.fp32Blocks), W, p.chunk, 4, true,
                        at<float>(ops[i], L.fp32Sum), ranks.streams[i], why));
      SV_LAUNCH(k::liecAverageOwner(at<float>(ops[i], L.fp32Sum), ops[i].bucket->deviceResidual,
                                    W, p.chunk, at<float>(ops[i], L.resultOwn),
                                    at<float>(ops[i], L.eNew), ranks.streams[i]));
    }
    SV_WIRE(t.barrier(ranks));
    collect(L.resultOwn, L.resultAll);
    SV_WIRE(t.allGather(ranks, sends, recvs, p.chunk * 4));
  }
  if (p.resultPlanes != 0) {
    SV_WIRE(t.barrier(ranks));
    collect(L.resultOwn, L.resultAll);
    SV_WIRE(t.allGather(ranks, sends, recvs, p.resultPlanes * planeBytes));
    for (size_t i = 0; i < local; ++i)
      SV_LAUNCH(k::checkResultPlanes(at<uint64_t>(ops[i], L.resultAll), p.resultPlanes,
                                     p.chunkWords, W,
                                     Ctrl(at<void>(ops[i], L.ctrl), W).flags + W + 1,
                                     ranks.streams[i]));
  }

  // Step 3: every rank checks what it received and decides; step 4: gated commit.
  const ref::HeaderExpect expect{0, static_cast<uint8_t>(p.scheme),
                                 static_cast<uint8_t>(p.format), static_cast<uint8_t>(p.vote),
                                 seq, p.n, p.selects ? p.k : 0};
  for (size_t i = 0; i < local; ++i) {
    const CudaOp& op = ops[i];
    cudaStream_t s = ranks.streams[i];
    const Ctrl c(at<void>(op, L.ctrl), W);
    const size_t stride = records ? p.recordBytes : kHeaderBytes;
    const char* base = at<char>(op, records ? L.records : L.headers);
    size_t bytes = L.decTemp.bytes;
    SV_LAUNCH(k::validateHeaders(base, stride, W, expect, c.verdicts, s));
    if (p.format == SV_FORMAT_SPARSE) {
      SV_LAUNCH(cudaMemsetAsync(at<int32_t>(op, L.votes), 0, p.n * 4, s));
      SV_LAUNCH(k::addSparseVotes(at<void>(op, L.decTemp), &bytes, p.sparse, base, stride, W,
                                  at<int32_t>(op, L.votes), c.flags, s));
    } else if (p.format == SV_FORMAT_SPARSE_VALUES) {
      SV_LAUNCH(k::sumSparseValues(at<void>(op, L.decTemp), &bytes, p.sparse, base, stride, W,
                                   at<float>(op, L.votes), c.flags, s));
    } else if (p.format == SV_FORMAT_SCALED_SIGNS) {
      SV_LAUNCH(k::checkScaledRecords(at<void>(op, L.decTemp), &bytes, base, stride, W, p.n,
                                      c.flags, s));
    }
    SV_LAUNCH(k::decideVerdict(c.verdicts, W, c.flags, W + 2, policy, op.bucket->comm->sticky,
                               c.gate, c.nanOut, s));
    auto* out = static_cast<float*>(op.recv);
    float* state = op.bucket->deviceResidual;
    if (p.scheme == SV_SCHEME_DGS) {  // SAMomentum: u / m, the sent coordinates keep u
      SV_LAUNCH(k::divideGated(at<float>(op, L.acc), p.n, p.momentum, state, c.gate, s));
      SV_LAUNCH(k::copySelected(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.n, false,
                                state, c.gate, s));
    } else if (p.selects) {  // s3gd's a, topk_ef's v (and u): +0.0 at the selection
      SV_LAUNCH(k::s3gdCommit(at<float>(op, L.acc), at<uint32_t>(op, L.sel), p.k, p.n, state,
                              c.gate, s));
      if (p.scheme == SV_SCHEME_TOPK_EF && p.momentum != 0.0f)
        SV_LAUNCH(k::s3gdCommit(at<float>(op, L.accU), at<uint32_t>(op, L.sel), p.k, p.n,
                                state + p.n, c.gate, s));
    } else if (p.format == SV_FORMAT_CHUNK_SIGNS) {  // the owner's new error (gated copy)
      SV_LAUNCH(k::s3gdCommit(at<float>(op, L.eNew), nullptr, 0, p.chunk, state, c.gate, s));
    } else if (p.scheme == SV_SCHEME_EF_SIGN)
      SV_LAUNCH(k::efSignCommit(at<float>(op, L.acc), at<k::RecordInfo>(op, L.recordInfo), p.n,
                                state, c.gate, s));
    else if (p.momentum != 0.0f)  // Signum's m: s3gdCommit with K = 0 is the gated copy
      SV_LAUNCH(k::s3gdCommit(at<float>(op, L.acc), nullptr, 0, p.n, state, c.gate, s));
    switch (p.format) {
      case SV_FORMAT_SPARSE:
        SV_LAUNCH(k::votesToOutput(at<int32_t>(op, L.votes), p.n, out, c.gate, s));
        break;
      case SV_FORMAT_SPARSE_VALUES: {
        float* sums = at<float>(op, L.votes);
        if (p.downK == 0) {
          SV_LAUNCH(k::divideGated(sums, p.n, static_cast<float>(W), out, c.gate, s));
          break;
        }
        // dgs's downlink: A = D + G (fma(1, D, G) is that one rounding), its top-downK is the
        // output, D keeps the rest. NaN (inf - inf) stays in A as on the host: the error policy
        // only counts it, and that count is not read.
        float* d = state + p.n;
        SV_LAUNCH(k::divideGated(sums, p.n, static_cast<float>(W), sums, c.gate, s));
        bytes = L.topkTemp.bytes;
        SV_LAUNCH(k::accumulateTopK(at<void>(op, L.topkTemp), &bytes, sums, d, 1.0f, p.n,
                                    p.downK, SV_NONFINITE_ERROR, at<float>(op, L.downA),
                                    at<uint32_t>(op, L.downSel),
                                    at<k::TopKStatus>(op, L.topkStatus), s));
        SV_LAUNCH(k::copySelected(at<float>(op, L.downA), at<uint32_t>(op, L.downSel), p.downK,
                                  p.n, true, out, c.gate, s));
        SV_LAUNCH(k::s3gdCommit(at<float>(op, L.downA), at<uint32_t>(op, L.downSel), p.downK,
                                p.n, d, c.gate, s));
        break;
      }
      case SV_FORMAT_SCALED_SIGNS:
        SV_LAUNCH(k::efSignMean(base, stride, W, p.n, out, c.gate, s));
        break;
      case SV_FORMAT_CHUNK_SIGNS:
        if (p.average)  // the gathered means (s3gdCommit with K = 0 is the gated copy)
          SV_LAUNCH(k::s3gdCommit(at<float>(op, L.resultAll), nullptr, 0, p.n, out, c.gate, s));
        else
          SV_LAUNCH(k::liecOutput(at<uint64_t>(op, L.resultAll), at<uint64_t>(op, L.planesSend),
                                  at<float>(op, L.acc), p.n, p.chunkWords, out, c.gate, s));
        break;
      case SV_FORMAT_COUNTS:
      case SV_FORMAT_SIGNS:
        SV_LAUNCH(k::planesToOutput(at<uint64_t>(op, L.resultAll), p.resultPlanes, p.chunkWords,
                                    p.n, out, c.gate, s));
        break;
      default:
        SV_LAUNCH(k::divideGated(at<float>(op, L.fp32Sum), p.n, static_cast<float>(W), out,
                                 c.gate, s));
        break;
    }
    SV_LAUNCH(k::fillNaNWhen(out, p.n, c.nanOut, s));
  }
  // No rank may reuse its workspace (the next exchange) while another still reads it.
  SV_WIRE(t.barrier(ranks));
  return svSuccess;
}

}  // namespace signvote::detail
