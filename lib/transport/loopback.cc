#include <cstdint>
#include <cstring>

#include "transport.h"

namespace signvote::detail {

size_t elemSize(Elem t) { return t == Elem::kInt8 ? 1 : t == Elem::kInt16 ? 2 : 4; }

// Transports that drive every rank (loopback) pair dgs_async's calls in lib/ instead.
svResult_t Transport::send(int, const void*, size_t, uint32_t) {
  error_ = "this transport has no point-to-point send";
  return svInternalError;
}
svResult_t Transport::recv(const std::vector<int>&, void*, size_t, uint32_t, int*) {
  error_ = "this transport has no point-to-point receive";
  return svInternalError;
}

namespace {

template <class T, class Acc>
void sumBlocks(const Transport::Sends& in, size_t offset, size_t count, void* out) {
  T* o = static_cast<T*>(out);
  for (size_t i = 0; i < count; ++i) {
    Acc acc = static_cast<const T*>(in[0])[offset + i];
    for (size_t s = 1; s < in.size(); ++s) acc += static_cast<const T*>(in[s])[offset + i];
    o[i] = static_cast<T>(acc);
  }
}

}  // namespace

void sumInRankOrder(Elem t, const Transport::Sends& in, size_t offset, size_t count, void* out) {
  switch (t) {
    case Elem::kInt8: sumBlocks<int8_t, int32_t>(in, offset, count, out); break;
    case Elem::kInt16: sumBlocks<int16_t, int32_t>(in, offset, count, out); break;
    case Elem::kFloat32: sumBlocks<float, float>(in, offset, count, out); break;
  }
}

svResult_t LoopbackHostTransport::allGather(const Sends& send, const Recvs& recv, size_t bytes) {
  for (int r = 0; r < nranks_; ++r)
    for (int s = 0; s < nranks_; ++s)
      if (bytes) std::memcpy(static_cast<char*>(recv[r]) + s * bytes, send[s], bytes);
  return svSuccess;
}

svResult_t LoopbackHostTransport::allToAll(const Sends& send, const Recvs& recv, size_t bytes) {
  for (int r = 0; r < nranks_; ++r)
    for (int s = 0; s < nranks_; ++s)
      if (bytes)
        std::memcpy(static_cast<char*>(recv[r]) + s * bytes,
                    static_cast<const char*>(send[s]) + r * bytes, bytes);
  return svSuccess;
}

svResult_t LoopbackHostTransport::reduceScatterSum(const Sends& send, const Recvs& recv,
                                                   size_t count, Elem type) {
  for (int r = 0; r < nranks_; ++r) sumInRankOrder(type, send, r * count, count, recv[r]);
  return svSuccess;
}

svResult_t LoopbackHostTransport::allReduceSum(const Sends& send, const Recvs& recv, size_t count,
                                               Elem type) {
  if (count == 0) return svSuccess;
  sumInRankOrder(type, send, 0, count, recv[0]);
  for (int r = 1; r < nranks_; ++r) std::memcpy(recv[r], recv[0], count * elemSize(type));
  return svSuccess;
}

}  // namespace signvote::detail
