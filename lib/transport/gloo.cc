// The gloo transport: one rank per process, TCP. Only gloo's allgather and all-to-all are
// used; sums are formed here in rank order so that the bits match the loopback transport.
#include <gloo/allgather.h>
#include <gloo/alltoall.h>
#include <gloo/common/error.h>
#include <gloo/rendezvous/context.h>
#include <gloo/rendezvous/file_store.h>
#include <gloo/transport/tcp/device.h>
#include <gloo/transport/unbound_buffer.h>
#include <gloo/types.h>

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cctype>
#include <chrono>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "transport.h"

namespace signvote::detail {

namespace {

// Maps what gloo throws to the contract's codes; gloo's own text is kept.
svResult_t classify(const std::exception& e, std::string* why) {
  *why = e.what();
  std::string lower = *why;
  for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  if (dynamic_cast<const gloo::IoException*>(&e) != nullptr &&
      (lower.find("timed out") != std::string::npos || lower.find("timeout") != std::string::npos))
    return svTimeout;
  return svRemoteError;  // an enforce on a peer's bytes (sizes differ): the peer is at fault
}

constexpr uint8_t kPointSlotPrefix = 0xA5;

// What svCommAbort trips from any thread while this rank's calls may be waiting: every wait
// on a buffer of this transport, under way or later, then fails at once. (Closing the
// connections wakes only the peers: gloo does not wake a wait on a pair closed from this
// side, and the call that would, tcp::Pair::signalExceptionExternal, is declared in a header
// that includes gloo/common/memory.h, which Debian's libgloo-dev does not ship.)
class AbortSwitch {
 public:
  bool tripped() const {
    std::lock_guard<std::mutex> g(m_);
    return tripped_;
  }
  void trip() {
    std::lock_guard<std::mutex> g(m_);
    tripped_ = true;
    for (gloo::transport::UnboundBuffer* b : live_) {
      b->abortWaitSend();
      b->abortWaitRecv();
    }
  }
  void add(gloo::transport::UnboundBuffer* b) {
    std::lock_guard<std::mutex> g(m_);
    live_.push_back(b);
  }
  void remove(gloo::transport::UnboundBuffer* b) {
    std::lock_guard<std::mutex> g(m_);
    live_.erase(std::find(live_.begin(), live_.end(), b));
  }

 private:
  mutable std::mutex m_;
  bool tripped_ = false;
  std::vector<gloo::transport::UnboundBuffer*> live_;
};

constexpr const char* kAbortText = "connections closed by svCommAbort on this rank";

// gloo's buffer, whose waits throw once the switch is tripped. gloo's collectives use only the
// buffer's virtual calls and ignore a wait's "aborted" result, so the throw is what ends them.
// A wait that starts after the trip throws before it waits; one under way is woken by the
// trip's abortWait (set after tripped_, so no wait can miss both).
class AbortableBuffer final : public gloo::transport::UnboundBuffer {
 public:
  AbortableBuffer(std::shared_ptr<AbortSwitch> sw,
                  std::unique_ptr<gloo::transport::UnboundBuffer> inner)
      : UnboundBuffer(inner->ptr, inner->size), sw_(std::move(sw)), inner_(std::move(inner)) {
    sw_->add(inner_.get());
  }
  ~AbortableBuffer() override { sw_->remove(inner_.get()); }

  bool waitRecv(int* rank, std::chrono::milliseconds timeout) override {
    if (sw_->tripped() || !inner_->waitRecv(rank, timeout)) throw gloo::IoException(kAbortText);
    return true;
  }
  bool waitSend(int* rank, std::chrono::milliseconds timeout) override {
    if (sw_->tripped() || !inner_->waitSend(rank, timeout)) throw gloo::IoException(kAbortText);
    return true;
  }
  void abortWaitRecv() override { inner_->abortWaitRecv(); }
  void abortWaitSend() override { inner_->abortWaitSend(); }
  void send(int dstRank, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->send(dstRank, slot, offset, nbytes);
  }
  void recv(int srcRank, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->recv(srcRank, slot, offset, nbytes);
  }
  void recv(std::vector<int> srcRanks, uint64_t slot, size_t offset, size_t nbytes) override {
    inner_->recv(std::move(srcRanks), slot, offset, nbytes);
  }

 private:
  std::shared_ptr<AbortSwitch> sw_;
  std::unique_ptr<gloo::transport::UnboundBuffer> inner_;
};

class GlooTransport final : public Transport {
 public:
  GlooTransport(std::shared_ptr<gloo::Context> ctx, int nranks)
      : ctx_(std::move(ctx)), W_(nranks) {}

  svResult_t allGather(const Sends& send, const Recvs& recv, size_t bytes) override {
    return guarded([&] {
      if (bytes == 0) return;
      gloo::AllgatherOptions o(ctx_);
      o.setInput<char>(buffer(send[0], bytes));
      o.setOutput<char>(buffer(recv[0], bytes * W_));
      o.setTag(nextTag());
      gloo::allgather(o);
    });
  }

  svResult_t allToAll(const Sends& send, const Recvs& recv, size_t bytes) override {
    return guarded([&] { exchangeBlocks(send[0], recv[0], bytes); });
  }

  svResult_t reduceScatterSum(const Sends& send, const Recvs& recv, size_t count,
                              Elem type) override {
    return guarded([&] {
      const size_t bytes = count * elemSize(type);
      blocks_.resize(bytes * W_);
      exchangeBlocks(send[0], blocks_.data(), bytes);
      sum(type, blocks_.data(), count, recv[0]);
    });
  }

  // gloo's unbound buffers; the slots lie beyond the prefixes of gloo's collectives.
  svResult_t send(int peer, const void* buf, size_t bytes, uint32_t slot) override {
    return guarded([&] {
      const auto b = buffer(buf, bytes);
      b->send(peer, gloo::Slot::build(kPointSlotPrefix, slot));
      b->waitSend(ctx_->getTimeout());
    });
  }
  svResult_t recv(const std::vector<int>& peers, void* buf, size_t bytes, uint32_t slot,
                  int* from) override {
    return guarded([&] {
      const auto b = buffer(buf, bytes);
      b->recv(peers, gloo::Slot::build(kPointSlotPrefix, slot));
      b->waitRecv(from, ctx_->getTimeout());
    });
  }

  // First the close, which peers see at once; gloo closes each pair under the pair's lock, so
  // nothing more lands in this rank's buffers. Then the switch, which ends this rank's own
  // waits. Weak references: destroying the transport still closes everything, and a close
  // under way keeps the context until it is done.
  std::function<void()> closer() override {
    return [weak = std::weak_ptr<gloo::Context>(ctx_),
            weakSwitch = std::weak_ptr<AbortSwitch>(switch_)] {
      if (const std::shared_ptr<gloo::Context> ctx = weak.lock()) ctx->closeConnections();
      if (const std::shared_ptr<AbortSwitch> sw = weakSwitch.lock()) sw->trip();
    };
  }

  // A reduce-scatter over W equal chunks (the last zero-padded), then an allgather.
  svResult_t allReduceSum(const Sends& send, const Recvs& recv, size_t count,
                          Elem type) override {
    return guarded([&] {
      if (count == 0) return;
      const size_t es = elemSize(type), chunk = (count + W_ - 1) / W_;
      padded_.assign(chunk * W_ * es, 0);
      std::memcpy(padded_.data(), send[0], count * es);
      blocks_.resize(chunk * W_ * es);
      exchangeBlocks(padded_.data(), blocks_.data(), chunk * es);
      owned_.resize(chunk * es);
      sum(type, blocks_.data(), chunk, owned_.data());
      gathered_.resize(chunk * W_ * es);
      gloo::AllgatherOptions o(ctx_);
      o.setInput<char>(buffer(owned_.data(), owned_.size()));
      o.setOutput<char>(buffer(gathered_.data(), gathered_.size()));
      o.setTag(nextTag());
      gloo::allgather(o);
      std::memcpy(recv[0], gathered_.data(), count * es);
    });
  }

 private:
  template <class F>
  svResult_t guarded(F&& f) {
    try {
      f();
      return svSuccess;
    } catch (const std::bad_alloc&) {
      error_ = "out of host memory";
      return svSystemError;
    } catch (const std::exception& e) {  // gloo's IoException, EnforceNotMet, ...
      return classify(e, &error_);
    }
  }

  void exchangeBlocks(const void* in, void* out, size_t bytes) {
    if (bytes == 0) return;
    if (W_ == 1) {
      std::memcpy(out, in, bytes);
      return;
    }
    gloo::AlltoallOptions o(ctx_);
    o.setInput<char>(buffer(in, bytes * W_));
    o.setOutput<char>(buffer(out, bytes * W_));
    o.setTag(nextTag());
    gloo::alltoall(o);
  }

  // Every buffer handed to gloo: its waits end when svCommAbort trips the switch.
  std::unique_ptr<gloo::transport::UnboundBuffer> buffer(const void* p, size_t bytes) {
    return std::make_unique<AbortableBuffer>(
        switch_, ctx_->createUnboundBuffer(const_cast<void*>(p), bytes));
  }

  // The W received blocks of count elements, added in rank order.
  void sum(Elem t, const char* blocks, size_t count, void* out) const {
    Sends in(W_);
    for (int s = 0; s < W_; ++s) in[s] = blocks + s * count * elemSize(t);
    sumInRankOrder(t, in, 0, count, out);
  }

  // Every rank issues the same operations in the same order, so the counters agree.
  uint32_t nextTag() { return tag_++; }

  std::shared_ptr<gloo::Context> ctx_;
  std::shared_ptr<AbortSwitch> switch_ = std::make_shared<AbortSwitch>();
  int W_;
  uint32_t tag_ = 0;
  std::vector<char> blocks_, padded_, owned_, gathered_;
};

}  // namespace

std::unique_ptr<Transport> makeGlooTransport(const GlooOptions& o, svResult_t* code,
                                             std::string* why) {
  // gloo writes to sockets without MSG_NOSIGNAL, so a peer that died raises SIGPIPE, whose
  // default action kills this process before the error can be reported. Ignore it, as Python
  // does at startup, unless the application installed a handler of its own.
  struct sigaction old {};
  if (sigaction(SIGPIPE, nullptr, &old) == 0 && old.sa_handler == SIG_DFL)
    std::signal(SIGPIPE, SIG_IGN);
  try {
    gloo::transport::tcp::attr attr;
    if (!o.ifname.empty()) attr.iface = o.ifname;
    auto device = gloo::transport::tcp::CreateDevice(attr);
    // The store may be absent (one level is made; every rank tries, so EEXIST is fine).
    if (mkdir(o.store.c_str(), 0700) != 0 && errno != EEXIST) {
      *code = svSystemError;
      *why = std::string("cannot create the store directory: ") + std::strerror(errno);
      return nullptr;
    }
    gloo::rendezvous::FileStore store(o.store);
    auto ctx = std::make_shared<gloo::rendezvous::Context>(o.rank, o.nranks);
    ctx->setTimeout(std::chrono::milliseconds(o.timeoutMs));
    ctx->connectFullMesh(store, device);
    return std::make_unique<GlooTransport>(std::move(ctx), o.nranks);
  } catch (const std::bad_alloc&) {
    *code = svSystemError;
    *why = "out of host memory";
  } catch (const std::exception& e) {
    *code = classify(e, why);
  }
  return nullptr;
}

}  // namespace signvote::detail
