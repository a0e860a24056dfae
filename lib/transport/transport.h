// The byte-moving interface that lib/ drives. Transports move and sum buffers; they never run
// scheme code. Every call takes one entry per rank driven by this process (for the loopback
// transport: all ranks, entry r = rank r) and behaves as the NCCL collective of the same name.
#pragma once

#include <cstddef>
#include <vector>

#include "signvote/signvote.h"

namespace signvote::detail {

enum class Elem { kInt8, kInt16, kFloat32 };

class Transport {
 public:
  using Sends = std::vector<const void*>;
  using Recvs = std::vector<void*>;
  virtual ~Transport() = default;

  // recv[r] = the W blocks send[0], ..., send[W-1] of `bytes` each.
  virtual svResult_t allGather(const Sends& send, const Recvs& recv, size_t bytes) = 0;
  // send[r] holds W blocks of `bytes`, block d for rank d; recv[r] block s = send[s] block r.
  virtual svResult_t allToAll(const Sends& send, const Recvs& recv, size_t bytes) = 0;
  // send[r] holds W blocks of `count` elements; recv[r] = sum over s of send[s] block r.
  // Integer sums are exact; float sums run in rank order 0..W-1.
  virtual svResult_t reduceScatterSum(const Sends& send, const Recvs& recv, size_t count,
                                      Elem type) = 0;
  // recv[r] = sum over s of send[s] (count elements), float sums in rank order 0..W-1.
  virtual svResult_t allReduceSum(const Sends& send, const Recvs& recv, size_t count,
                                  Elem type) = 0;
};

// All W ranks of a world in this process, host memory.
class LoopbackHostTransport final : public Transport {
 public:
  explicit LoopbackHostTransport(int nranks) : nranks_(nranks) {}
  svResult_t allGather(const Sends& send, const Recvs& recv, size_t bytes) override;
  svResult_t allToAll(const Sends& send, const Recvs& recv, size_t bytes) override;
  svResult_t reduceScatterSum(const Sends& send, const Recvs& recv, size_t count,
                              Elem type) override;
  svResult_t allReduceSum(const Sends& send, const Recvs& recv, size_t count,
                          Elem type) override;

 private:
  int nranks_;
};

}  // namespace signvote::detail
