// The objects behind the opaque handles, and a registry of live handles so that a destroyed
// or foreign pointer is reported as an invalid argument instead of being dereferenced.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "error.h"
#include "plan.h"
#include "reference/schemes.h"
#include "signvote/signvote.h"

struct CUevent_st;  // cudaEvent_t, without the CUDA headers

namespace signvote::detail {

class Transport;
class DeviceTransport;
struct TransportTimes;

// One communicator world: all its ranks in this process (loopback), or one (gloo, NCCL).
struct World {
  uint64_t id = 0;
  int nranks = 0;
  std::vector<svComm_t> ranks;  // nranks entries: this process's ranks, null once destroyed
  std::vector<int> local;       // the ranks this process drives, ascending
  bool checkCalls = false;      // allgather fingerprints before each exchange (SV_CHECK_GLOBAL)
  std::unique_ptr<Transport> transport;  // host backend
  // Its Transport::closer(), taken at creation: svCommAbort closes the connections with it
  // from any thread, also while another thread's exchange uses the transport (which may
  // reset it meanwhile).
  std::function<void()> closeConnections;
  // SV_BACKEND_CUDA: kept until the world goes (a borrowed NCCL communicator is the caller's
  // to abort), so that svCommGetAsyncError may ask it at any time.
  std::unique_ptr<DeviceTransport> device;
  // svConfig_t.timing on: what the timing decorator around the transport counted.
  std::shared_ptr<TransportTimes> times;
  uint32_t asyncBuckets = 0;  // dgs_async buckets created so far (their wire slots)
  ~World();
};

// Whether a communicator is sticky-broken, and what broke it. Set by the thread driving it or
// by svCommAbort from any thread; read by any thread (svCommGetAsyncError is a watchdog's
// call). The code and its text change together.
class Broken {
 public:
  svResult_t code() const noexcept { return code_.load(); }
  // The code; when it is not svSuccess, its text in *why.
  svResult_t get(ErrorText* why) const noexcept {
    if (code_.load() == svSuccess) return svSuccess;  // every exchange asks: no lock then
    std::lock_guard<std::mutex> g(m_);
    if (code_.load() != svSuccess) why->set(why_.c_str());
    return code_.load();
  }
  // Breaks it with code and why unless it is broken already: the first cause stays (an
  // exchange that fails because svCommAbort closed its connections reports its own failure,
  // and the later calls say "aborted").
  void set(svResult_t code, const char* why) noexcept { store(code, why, false); }
  // svCommAbort on its own rank: aborted now, whatever broke it before.
  void abort(const char* why) noexcept { store(svRemoteError, why, true); }

 private:
  void store(svResult_t code, const char* why, bool overrule) noexcept {
    std::lock_guard<std::mutex> g(m_);
    if (!overrule && code_.load() != svSuccess) return;
    why_.set(why);
    code_.store(code);
  }

  mutable std::mutex m_;
  std::atomic<svResult_t> code_{svSuccess};
  ErrorText why_;
};

}  // namespace signvote::detail

struct svComm {
  int rank = 0;
  int nranks = 1;
  svConfig_t config{};
  std::shared_ptr<signvote::detail::World> world;
  std::atomic<uint64_t> seq{0};  // completed exchanges (a watchdog may read it)
  signvote::detail::Broken broken;
  // The thread (its group state) whose exchange or open group uses this communicator, from
  // its first queued svExchange until its svGroupEnd; null when free.
  std::atomic<const void*> user{nullptr};
  int liveBuckets = 0;
  signvote::detail::SharedText lastError;
  // SV_BACKEND_CUDA (lib/cuda_backend.cc)
  int device = -1;
  CUevent_st* event = nullptr;  // recorded at the exchange's cross-rank barriers
  uint32_t* sticky = nullptr;   // mapped pinned word: the first failure the device detected
  uint64_t* hostSlot = nullptr;  // pinned, beside sticky: adaptive K's norm read back
};

struct svBucket {
  svComm_t comm = nullptr;
  svBucketConfig_t config{};
  signvote::detail::Plan plan;
  std::vector<float> residual;      // s3gd_mv, host backend
  float* deviceResidual = nullptr;  // s3gd_mv, SV_BACKEND_CUDA
  signvote::ref::AdaptiveState adaptive;  // SV_ADAPTIVE_K_NORM_RATIO, committed after success
  uint64_t exchanges = 0;  // successful exchanges of this bucket (liec's averaging period)
  uint64_t lastK = 0;
  uint64_t lastRecordBytes = 0, lastWireBytes = 0;  // of the last successful exchange
  // config is what the bucket runs; after a dense fallback, denseFallbackOf(the user's).
  bool denseFallback = false;
  signvote::detail::LinkModel link;  // zeros without config.linkBusBW
  int lastPeer = -1;        // dgs_async: see svBucketInfo_t.lastPeer
  // exchanges, lastK, lastRecordBytes, lastWireBytes and lastPeer change with each exchange:
  // the driving thread writes them under this lock and reads them without it; svBucketGetInfo,
  // which a watchdog thread may call, reads them under it.
  mutable std::mutex progress;
  uint32_t asyncSlot = 0;   // dgs_async: the bucket's number among its world's, for the wire
  std::vector<uint64_t> served;  // dgs_async server: pushes served per worker (their seq)
};

namespace signvote::detail {

// All of a world's new communicators or none (std::bad_alloc, nothing registered).
void registerComms(const std::vector<svComm_t>& comms);
void unregisterComm(svComm_t c);
bool isLiveComm(svComm_t c);
void registerBucket(svBucket_t b);  // std::bad_alloc: not registered
void unregisterBucket(svBucket_t b);
bool isLiveBucket(svBucket_t b);
size_t liveHandleCount();  // communicators and buckets
// The communicator's world has ranks in other processes (gloo).
inline bool multiProcess(svComm_t c) {
  return c->world->local.size() < static_cast<size_t>(c->nranks);
}

// svSuccess, or the stored error when comm is broken, with the text "<call>: the communicator is
// broken (<what broke it>); destroy it".
svResult_t refuseBroken(svComm_t comm, const char* call);

// A bucket call other than svExchange (destroy, residual access) holds the bucket's
// communicator like an exchange does, so that no other thread's exchange runs meanwhile.
struct CommClaim {
  svComm_t comm = nullptr;  // released on destruction when this call took it
  ~CommClaim() {
    if (comm != nullptr) comm->user.store(nullptr);
  }
};
// svInvalidUsage, naming `call`, when another thread's exchange or open group holds the
// communicator. Defined in exchange.cc, beside the thread's group state.
svResult_t claimComm(svComm_t comm, const char* call, CommClaim* claim);
// claimComm for the bucket's communicator; also svInvalidUsage when (refuseQueued) this
// thread's open group has an exchange of `bucket` queued.
svResult_t claimBucket(svBucket_t bucket, const char* call, bool refuseQueued, CommClaim* claim);

}  // namespace signvote::detail
