#include "handles.h"

#include <mutex>
#include <unordered_set>

#include "transport/device.h"
#include "transport/transport.h"

namespace signvote::detail {

World::~World() = default;

namespace {
std::mutex gMutex;
// Separate sets, so that a bucket passed as a communicator (or the reverse) is rejected.
std::unordered_set<const void*>& liveComms() {
  static std::unordered_set<const void*> s;
  return s;
}
std::unordered_set<const void*>& liveBuckets() {
  static std::unordered_set<const void*> s;
  return s;
}
}  // namespace

void registerComms(const std::vector<svComm_t>& comms) {
  std::lock_guard<std::mutex> g(gMutex);
  for (size_t i = 0; i < comms.size(); ++i) {
    try {
      if (comms[i] != nullptr) liveComms().insert(comms[i]);
    } catch (const std::bad_alloc&) {
      for (size_t j = 0; j < i; ++j) liveComms().erase(comms[j]);
      throw;
    }
  }
}
void unregisterComm(svComm_t c) { std::lock_guard<std::mutex> g(gMutex); liveComms().erase(c); }
bool isLiveComm(svComm_t c) {
  std::lock_guard<std::mutex> g(gMutex);
  return liveComms().count(c) != 0;
}
void registerBucket(svBucket_t b) { std::lock_guard<std::mutex> g(gMutex); liveBuckets().insert(b); }
void unregisterBucket(svBucket_t b) { std::lock_guard<std::mutex> g(gMutex); liveBuckets().erase(b); }
bool isLiveBucket(svBucket_t b) {
  std::lock_guard<std::mutex> g(gMutex);
  return liveBuckets().count(b) != 0;
}

svResult_t refuseBroken(svComm_t comm, const char* call) {
  ErrorText why;
  const svResult_t code = comm->broken.get(&why);
  if (code == svSuccess) return svSuccess;
  return fail(comm, code, "%s: the communicator is broken (%s); destroy it", call, why.c_str());
}

size_t liveHandleCount() {
  std::lock_guard<std::mutex> g(gMutex);
  return liveComms().size() + liveBuckets().size();
}

}  // namespace signvote::detail
