// Header-only C++17 wrapper over signvote.h: move-only RAII handles, and every non-success
// result thrown as signvote::Error (code() plus svGetLastError's text). No exception crosses
// the C ABI; this header is compiled into the caller.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "signvote/signvote.h"

namespace signvote {

class Error : public std::runtime_error {
 public:
  Error(svResult_t code, const std::string& what) : std::runtime_error(what), code_(code) {}
  svResult_t code() const noexcept { return code_; }

 private:
  svResult_t code_;
};

// Throws for anything but svSuccess; the message is svGetLastError(comm), or the code's name.
inline void check(svResult_t r, svComm_t comm = nullptr) {
  if (r == svSuccess) return;
  std::string text = svGetLastError(comm);
  if (text.empty()) text = svGetErrorString(r);
  throw Error(r, text);
}

class Comm {
 public:
  Comm() = default;
  explicit Comm(svComm_t c) : c_(c) {}
  Comm(Comm&& o) noexcept : c_(std::exchange(o.c_, nullptr)) {}
  Comm& operator=(Comm&& o) noexcept {
    if (this != &o) {
      reset();
      c_ = std::exchange(o.c_, nullptr);
    }
    return *this;
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  ~Comm() { reset(); }

  // The nranks ranks of a new loopback world.
  static std::vector<Comm> loopback(int nranks, const svConfig_t* config = nullptr) {
    std::vector<svComm_t> raw(nranks > 0 ? nranks : 1);
    check(svCommInitLoopback(raw.data(), nranks, config));
    std::vector<Comm> out;
    out.reserve(raw.size());
    for (svComm_t c : raw) out.emplace_back(c);
    return out;
  }

  // Rank `rank` of a world spanning processes, over gloo (see svCommInitGloo).
  static Comm gloo(int nranks, int rank, const std::string& store,
                   const svConfig_t* config = nullptr) {
    svComm_t c = nullptr;
    check(svCommInitGloo(&c, nranks, rank, store.c_str(), config));
    return Comm(c);
  }
  // This process's rank over a borrowed NCCL communicator (see svCommInitFromNccl); the
  // ncclComm_t must outlive the Comm.
  static Comm nccl(struct ncclComm* nccl, const svConfig_t* config = nullptr) {
    svComm_t c = nullptr;
    check(svCommInitFromNccl(&c, nccl, config));
    return Comm(c);
  }

  int rank() const { int r = 0; check(svCommUserRank(c_, &r), c_); return r; }
  int size() const { int n = 0; check(svCommCount(c_, &n), c_); return n; }
  uint64_t sequence() const { uint64_t s = 0; check(svCommGetSequence(c_, &s), c_); return s; }
  // Requires timing on at creation (svConfig_t.timing); see svCommGetTimes.
  svCommTimes_t times() const { svCommTimes_t t{}; check(svCommGetTimes(c_, &t), c_); return t; }
  svComm_t get() const noexcept { return c_; }
  void reset() noexcept {
    if (c_ != nullptr) svCommDestroy(c_);
    c_ = nullptr;
  }

 private:
  svComm_t c_ = nullptr;
};

class Bucket {
 public:
  Bucket() = default;
  Bucket(const Comm& comm, const svBucketConfig_t& config)
      : comm_(comm.get()), count_(config.count) {
    check(svBucketCreate(&b_, comm_, &config), comm_);
    check(svBucketGetInfo(b_, &info_), comm_);
  }
  Bucket(Bucket&& o) noexcept
      : b_(std::exchange(o.b_, nullptr)), comm_(o.comm_), count_(o.count_), info_(o.info_),
        workspace_(std::move(o.workspace_)) {}
  Bucket& operator=(Bucket&& o) noexcept {
    if (this != &o) {
      reset();
      b_ = std::exchange(o.b_, nullptr);
      comm_ = o.comm_;
      count_ = o.count_;
      info_ = o.info_;
      workspace_ = std::move(o.workspace_);
    }
    return *this;
  }
  Bucket(const Bucket&) = delete;
  Bucket& operator=(const Bucket&) = delete;
  ~Bucket() { reset(); }

  // Queried on each call: the last* fields and averageNext change with every exchange.
  svBucketInfo_t info() const {
    svBucketInfo_t i{};
    check(svBucketGetInfo(b_, &i), comm_);
    return i;
  }
  svBucket_t get() const noexcept { return b_; }

  // The workspace one exchange needs (svExchange's size query).
  size_t workspaceBytes() const noexcept { return info_.workspaceBytes; }
  // Exchanges with the caller's workspace of `bytes` (at least workspaceBytes()): device
  // memory on SV_BACKEND_CUDA, where the call enqueues on `stream`; host memory on the host
  // backend. Each call in one group needs its own workspace. For a loopback world of more
  // than one rank, call inside signvote::group().
  void exchange(const float* send, float* recv, void* workspace, size_t bytes,
                svStream_t stream = nullptr) {
    check(svExchange(b_, send, recv, workspace, &bytes, stream), comm_);
  }
  // Host backend only: the same with a host workspace this object allocates on its first use
  // and keeps.
  void exchange(const float* send, float* recv, svStream_t stream = nullptr) {
    if (workspace_.empty()) workspace_.resize(info_.workspaceBytes > 0 ? info_.workspaceBytes : 1);
    exchange(send, recv, workspace_.data(), workspace_.size(), stream);
  }
  // The bucket's state vector (info().stateFloats floats; see svBucketCreate).
  std::vector<float> residual() const {
    std::vector<float> r(info_.stateFloats);
    check(svBucketGetResidual(b_, r.data()), comm_);
    return r;
  }
  void setResidual(const std::vector<float>& r) {
    if (r.size() != info_.stateFloats)
      throw Error(svInvalidArgument, "signvote::Bucket::setResidual: size " +
                                         std::to_string(r.size()) + " != stateFloats " +
                                         std::to_string(info_.stateFloats));
    check(svBucketSetResidual(b_, r.data()), comm_);
  }
  size_t count() const noexcept { return count_; }
  void reset() noexcept {
    if (b_ != nullptr) svBucketDestroy(b_);
    b_ = nullptr;
  }

 private:
  svBucket_t b_ = nullptr;
  svComm_t comm_ = nullptr;
  size_t count_ = 0;
  svBucketInfo_t info_{};
  std::vector<unsigned char> workspace_;
};

// Runs body between svGroupStart and svGroupEnd; a call that throws inside still closes the
// group (and svGroupEnd then reports the error of the failed call).
inline void group(const std::function<void()>& body) {
  check(svGroupStart());
  try {
    body();
  } catch (...) {
    svGroupEnd();
    throw;
  }
  check(svGroupEnd());
}

}  // namespace signvote
