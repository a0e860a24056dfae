#include "timed.h"

#include <chrono>
#include <thread>
#include <utility>
#include <vector>

namespace signvote::detail {

namespace {

class TimedTransport final : public Transport {
 public:
  TimedTransport(std::unique_ptr<Transport> inner, std::shared_ptr<TransportTimes> times)
      : inner_(std::move(inner)), times_(std::move(times)) {}
  svResult_t allGather(const Sends& send, const Recvs& recv, size_t bytes) override {
    return timed([&] { return inner_->allGather(send, recv, bytes); });
  }
  svResult_t allToAll(const Sends& send, const Recvs& recv, size_t bytes) override {
    return timed([&] { return inner_->allToAll(send, recv, bytes); });
  }
  svResult_t reduceScatterSum(const Sends& send, const Recvs& recv, size_t count,
                              Elem type) override {
    return timed([&] { return inner_->reduceScatterSum(send, recv, count, type); });
  }
  svResult_t allReduceSum(const Sends& send, const Recvs& recv, size_t count,
                          Elem type) override {
    return timed([&] { return inner_->allReduceSum(send, recv, count, type); });
  }
  svResult_t send(int peer, const void* buf, size_t bytes, uint32_t slot) override {
    return timed([&] { return inner_->send(peer, buf, bytes, slot); });
  }
  svResult_t recv(const std::vector<int>& peers, void* buf, size_t bytes, uint32_t slot,
                  int* from) override {
    return timed([&] { return inner_->recv(peers, buf, bytes, slot, from); });
  }
  const std::string& error() const override { return inner_->error(); }

 private:
  template <class Call>
  svResult_t timed(Call call) {
    const auto t0 = std::chrono::steady_clock::now();
    const svResult_t r = call();
    times_->us +=
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
    ++times_->calls;
    return r;
  }
  std::unique_ptr<Transport> inner_;
  std::shared_ptr<TransportTimes> times_;
};

class TimedDeviceTransport final : public DeviceTransport {
 public:
  static constexpr size_t kPairs = 256;

  TimedDeviceTransport(std::unique_ptr<DeviceTransport> inner,
                       std::shared_ptr<TransportTimes> times, unsigned timeoutMs)
      : inner_(std::move(inner)), times_(std::move(times)), timeoutMs_(timeoutMs) {}
  ~TimedDeviceTransport() override {
    for (Pair& p : ring_) {
      if (p.start != nullptr) cudaEventDestroy(p.start);
      if (p.end != nullptr) cudaEventDestroy(p.end);
    }
  }
  svResult_t create() {
    ring_.resize(kPairs);
    for (Pair& p : ring_) {
      SVCUDACHECK_WHY(cudaEventCreate(&p.start), &error_);
      SVCUDACHECK_WHY(cudaEventCreate(&p.end), &error_);
    }
    return svSuccess;
  }

  svResult_t barrier(const CudaRanks& r) override {
    return timed(r.streams[0], [&] { return inner_->barrier(r); });
  }
  svResult_t allGather(const CudaRanks& r, const Sends& send, const Recvs& recv,
                       size_t bytes) override {
    return timed(r.streams[0], [&] { return inner_->allGather(r, send, recv, bytes); });
  }
  svResult_t allToAll(const CudaRanks& r, const Sends& send, const Recvs& recv,
                      size_t bytes) override {
    return timed(r.streams[0], [&] { return inner_->allToAll(r, send, recv, bytes); });
  }
  svResult_t hostAllGather(cudaStream_t stream, const void* mine, void* all,
                           size_t bytes) override {
    return timed(stream, [&] { return inner_->hostAllGather(stream, mine, all, bytes); });
  }
  svResult_t waitStream(cudaStream_t stream) override {
    own_ = false;
    return inner_->waitStream(stream);
  }
  svResult_t asyncError(std::string* why) override { return inner_->asyncError(why); }
  svResult_t settleTimes() override {
    own_ = true;
    while (pending_ > 0) SVCHECK(retireOldest(true));
    return svSuccess;
  }
  const std::string& error() const override { return own_ ? error_ : inner_->error(); }

 private:
  struct Pair {
    cudaEvent_t start = nullptr, end = nullptr;
  };

  template <class Call>
  svResult_t timed(cudaStream_t stream, Call call) {
    own_ = true;
    cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
    SVCUDACHECK_WHY(cudaStreamIsCapturing(stream, &capture), &error_);
    if (capture != cudaStreamCaptureStatusNone) {
      own_ = false;
      return call();
    }
    // Reclaim what finished without waiting; wait only when every pair is still in flight.
    while (pending_ > 0) {
      const svResult_t r = retireOldest(pending_ == kPairs);
      if (r == svInProgress) break;
      SVCHECK(r);
    }
    Pair& p = ring_[(oldest_ + pending_) % kPairs];
    SVCUDACHECK_WHY(cudaEventRecord(p.start, stream), &error_);
    own_ = false;
    SVCHECK(call());
    own_ = true;
    SVCUDACHECK_WHY(cudaEventRecord(p.end, stream), &error_);
    ++pending_;
    return svSuccess;
  }

  // Counts the oldest pending pair once its end event completed: svInProgress when it has not
  // and !wait; with wait, polls for up to timeoutMs_ (svTimeout after).
  svResult_t retireOldest(bool wait) {
    Pair& p = ring_[oldest_];
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs_);
    for (;;) {
      const cudaError_t q = cudaEventQuery(p.end);
      if (q == cudaSuccess) break;
      if (q != cudaErrorNotReady) SVCUDACHECK_WHY(q, &error_);
      cudaGetLastError();  // as PyTorch does: "not ready" must not reach a later launch check
      if (!wait) return svInProgress;
      if (std::chrono::steady_clock::now() > deadline) {
        error_ = "a timed transport call did not complete within timeoutMs = " +
                 std::to_string(timeoutMs_) + " ms";
        return svTimeout;
      }
      std::this_thread::yield();
    }
    float ms = 0;
    SVCUDACHECK_WHY(cudaEventElapsedTime(&ms, p.start, p.end), &error_);
    times_->us += 1e3 * static_cast<double>(ms);
    ++times_->calls;
    oldest_ = (oldest_ + 1) % kPairs;
    --pending_;
    return svSuccess;
  }

  std::unique_ptr<DeviceTransport> inner_;
  std::shared_ptr<TransportTimes> times_;
  unsigned timeoutMs_;
  std::vector<Pair> ring_;
  size_t oldest_ = 0, pending_ = 0;
  bool own_ = false;  // error() is this decorator's text, not the inner transport's
};

}  // namespace

std::unique_ptr<Transport> timedTransport(std::unique_ptr<Transport> inner,
                                          std::shared_ptr<TransportTimes> times) {
  return std::make_unique<TimedTransport>(std::move(inner), std::move(times));
}

std::unique_ptr<DeviceTransport> timedDeviceTransport(std::unique_ptr<DeviceTransport> inner,
                                                      std::shared_ptr<TransportTimes> times,
                                                      unsigned timeoutMs, std::string* why) {
  auto t = std::make_unique<TimedDeviceTransport>(std::move(inner), std::move(times), timeoutMs);
  if (t->create() != svSuccess) {
    *why = t->error();
    return nullptr;
  }
  return t;
}

}  // namespace signvote::detail
