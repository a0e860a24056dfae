// A transport that wraps a real one (loopback or gloo), runs each call, then lets a test edit
// what this process received or fail the call: faults injected into whole exchanges.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "handles.h"
#include "transport/transport.h"

namespace svtest {

using signvote::detail::Elem;
using signvote::detail::Transport;

class FaultTransport final : public Transport {
 public:
  // Called after each successful call with its index (from 0), its name ("allGather",
  // "allToAll", "reduceScatterSum", "allReduceSum", "recv"; sends are passed through), the
  // receive buffers and the bytes (elements for the sums) per block. A code other than
  // svSuccess fails the call.
  using Tamper = std::function<svResult_t(int call, const char* what, const Recvs& recv,
                                          size_t bytes)>;
  FaultTransport(std::unique_ptr<Transport> inner, Tamper t)
      : inner_(std::move(inner)), tamper_(std::move(t)) {}
  svResult_t allGather(const Sends& s, const Recvs& r, size_t bytes) override {
    return after(inner_->allGather(s, r, bytes), "allGather", r, bytes);
  }
  svResult_t allToAll(const Sends& s, const Recvs& r, size_t bytes) override {
    return after(inner_->allToAll(s, r, bytes), "allToAll", r, bytes);
  }
  svResult_t reduceScatterSum(const Sends& s, const Recvs& r, size_t count, Elem t) override {
    return after(inner_->reduceScatterSum(s, r, count, t), "reduceScatterSum", r, count);
  }
  svResult_t allReduceSum(const Sends& s, const Recvs& r, size_t count, Elem t) override {
    return after(inner_->allReduceSum(s, r, count, t), "allReduceSum", r, count);
  }
  svResult_t send(int peer, const void* buf, size_t bytes, uint32_t slot) override {
    return inner_->send(peer, buf, bytes, slot);
  }
  svResult_t recv(const std::vector<int>& peers, void* buf, size_t bytes, uint32_t slot,
                  int* from) override {
    return after(inner_->recv(peers, buf, bytes, slot, from), "recv", Recvs{buf}, bytes);
  }
  const std::string& error() const override {
    return error_.empty() ? inner_->error() : error_;
  }

 private:
  svResult_t after(svResult_t r, const char* what, const Recvs& recv, size_t bytes) {
    if (r != svSuccess) return r;
    r = tamper_(calls_++, what, recv, bytes);
    if (r != svSuccess) error_ = std::string("injected failure in ") + what;
    return r;
  }
  std::unique_ptr<Transport> inner_;
  Tamper tamper_;
  int calls_ = 0;
};

// Wraps the transport of comm's world (every rank of a loopback world shares it).
inline void injectFaults(svComm_t comm, FaultTransport::Tamper t) {
  auto& slot = comm->world->transport;
  slot = std::make_unique<FaultTransport>(std::move(slot), std::move(t));
}

}  // namespace svtest
