// The byte-moving interface that lib/ drives. Transports move and sum buffers; they never run
// scheme code. Every call takes one entry per rank driven by this process, in rank order (the
// loopback transport: all ranks, entry r = rank r; gloo: this process's one rank) and behaves
// as the NCCL collective of the same name. A failure returns svRemoteError, svTimeout or
// svSystemError with its text in error(); the transport is then unusable.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
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
  // Point to point (dgs_async over a transport whose ranks live in different processes):
  // `bytes` from this process's one rank to `peer`, on channel `slot`.
  virtual svResult_t send(int peer, const void* buf, size_t bytes, uint32_t slot);
  // `bytes` from any of `peers` on channel `slot`, the first to arrive; *from = its rank.
  // Messages from one peer on one slot arrive in the order they were sent.
  virtual svResult_t recv(const std::vector<int>& peers, void* buf, size_t bytes, uint32_t slot,
                          int* from);
  virtual const std::string& error() const { return error_; }
  // What closes this process's connections to its peers from any thread, also while another
  // thread is inside a call (svCommAbort): peers waiting on this rank, and that call's own
  // waits, then fail at once. Safe to call after the transport is gone (it does nothing then).
  // Empty for transports without connections.
  virtual std::function<void()> closer() { return {}; }

 protected:
  std::string error_;
};

size_t elemSize(Elem t);
// out[i] = in[0][offset + i] + in[1][offset + i] + ... in that order (integers in int32, then
// narrowed; floats in float32): the one summation order every transport uses.
void sumInRankOrder(Elem t, const Transport::Sends& in, size_t offset, size_t count, void* out);

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

// One rank of a world that spans processes, over gloo's TCP transport. Float sums are formed
// by this library in rank order from an all-to-all (not by gloo's ring), so every rank, and
// the loopback transport, get the same bits.
struct GlooOptions {
  int nranks = 0, rank = 0;
  std::string store;   // file-store rendezvous directory
  std::string ifname;  // interface to bind ("" = this host's name)
  unsigned timeoutMs = 0;
};
// Connects to every peer; on failure returns null with the code and text in *code / *why.
std::unique_ptr<Transport> makeGlooTransport(const GlooOptions& o, svResult_t* code,
                                             std::string* why);

}  // namespace signvote::detail
