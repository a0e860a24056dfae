// Wire headers on the device (kernels.h: writeHeader, validateHeaders): the same fields and
// checks as lib/reference/wire.cc, with the checksum arithmetic shared through reference/mix.h.
#include <cstring>

#include "../common.cuh"
#include "reference/mix.h"

namespace signvote::kernels {
namespace {

__device__ uint32_t headerChecksum(ref::WireHeader h) {
  h.headerChecksum = 0;
  uint64_t w[8];
  memcpy(w, &h, sizeof(w));
  uint64_t x = 0;
  for (unsigned i = 0; i < 8; ++i) x ^= ref::checksumTerm(w[i], i);
  return ref::checksumFold(8, x);
}

__global__ void writeHeaderKernel(ref::WireHeader h, const RecordInfo* info,
                                  uint64_t payloadWords, const unsigned long long* nanCount,
                                  void* dst) {
  if (info != nullptr) {
    h.entries = info->entries;
    h.aux = info->aux;
    h.payloadChecksum = ref::checksumFold(payloadWords, info->checksumXor);
  }
  if (nanCount != nullptr && *nanCount != 0) h.flags |= ref::kFlagNonFinite;
  h.headerChecksum = headerChecksum(h);
  memcpy(dst, &h, sizeof(h));
}

__global__ void validateHeadersKernel(const char* base, size_t stride, int nranks,
                                      ref::HeaderExpect e, uint32_t* verdict) {
  const int s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= nranks) return;
  ref::WireHeader h;
  memcpy(&h, base + s * stride, sizeof(h));
  uint32_t v = kHeaderOk;
  if (h.magic != ref::kWireMagic || headerChecksum(h) != h.headerChecksum) v = kHeaderCorrupt;
  else if (h.version != SIGNVOTE_WIRE_VERSION) v = kHeaderMismatch;
  else if (h.rank != static_cast<uint32_t>(s)) v = kHeaderCorrupt;
  else if (h.scheme != e.scheme || h.format != e.format || h.vote != e.vote || h.seq != e.seq ||
           h.count != e.count || h.k != e.k)
    v = kHeaderMismatch;
  else if (h.entries > h.k || (h.flags & ~ref::kFlagNonFinite) != 0) v = kHeaderCorrupt;
  else if (h.flags & ref::kFlagNonFinite) v = kHeaderNonFinite;
  verdict[s] = v;
}

}  // namespace

cudaError_t writeHeader(const ref::WireHeader& tmpl, const RecordInfo* info,
                        uint64_t payloadWords, const unsigned long long* nanCount, void* dst,
                        cudaStream_t stream) {
  if (dst == nullptr) return cudaErrorInvalidValue;
  writeHeaderKernel<<<1, 1, 0, stream>>>(tmpl, info, payloadWords, nanCount, dst);
  return detail::launched();
}

cudaError_t validateHeaders(const void* base, size_t stride, int nranks,
                            const ref::HeaderExpect& expect, uint32_t* verdict,
                            cudaStream_t stream) {
  if (nranks <= 0 || base == nullptr || verdict == nullptr || stride < sizeof(ref::WireHeader))
    return cudaErrorInvalidValue;
  const unsigned threads = 128;
  validateHeadersKernel<<<(nranks + threads - 1) / threads, threads, 0, stream>>>(
      static_cast<const char*>(base), stride, nranks, expect, verdict);
  return detail::launched();
}

}  // namespace signvote::kernels
