// The CUDA runtime calls of lib/ and the CUDA-backend suites, on the host (see emu.h): one
// device, memory from the host heap (filled with junk when allocated), streams that queue
// their work and run it only when something needs it done, events that mark a stream's position
// (stamped with the host clock when their record runs), and graph capture that records the work
// for replay under CUDA's rules (a wait on uncaptured work invalidates the capture; an
// allocation or a synchronous call is refused where the capture mode forbids it; an event last
// recorded in a capture cannot be queried or waited for). Calls outside this subset are not
// defined, so using one fails at link time.
//
// Work runs as late as CUDA's ordering rules allow: a stream's queue runs when it is
// synchronized or queried, when a stream waiting on one of its events reaches the wait, when
// an event of it is synchronized or queried, when the device is synchronized or memory is
// freed, and a blocking stream's queue also when the legacy default stream is used. The
// legacy stream's own work runs at once unless asynchronous work holds it back, except the
// copies and sets that CUDA lets return before they are done (cudaMemcpy into the device from
// pageable or device memory, cudaMemset of device memory), which wait there like other
// streams' work. So a host read of memory that no synchronization covers, or a stream
// that uses another's results without an event, sees stale data here, as it may on a GPU.
// Asynchronous work (svemu::submitAsync: the emulated NCCL's collectives) is done by another
// thread; until it is, queries of its stream or of a later event say cudaErrorNotReady and
// synchronizing calls wait, as on a GPU.
//
// SVEMU_SCHEDULE_SEED=s draws other schedules that CUDA allows, as concurrent streams on a GPU
// run at their own pace: each stream draws a pace at creation (never ahead, as above, or
// running what it can right after 1 in 8, 1 in 2 or every enqueue), and streams run in a
// shuffled order when several must. So one stream may run far ahead of another: work that
// reads another stream's results without an event, or that overwrites what a queued item of
// another stream still has to read, gives other bits under some seeds.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "emu.h"

namespace {

// A stream's work: fn runs once ready() (null: always) says so. Asynchronous work
// (svemu::submitAsync) is done by another thread; its queue entry is only the wait for it.
struct Item {
  std::function<void()> fn;
  std::function<bool()> ready;
};
// What a capture recorded: work, or asynchronous work to start again at each launch.
struct Recorded {
  std::function<void()> fn;
  svemu::Launch launch;
};
using Work = std::vector<Recorded>;

// A capture begins on one stream, which owns the recorded work; another stream joins it by
// waiting on an event recorded in it (CUDA's fork and join), until the capture ends.
struct Stream {
  bool blocking = true;  // created without cudaStreamNonBlocking: the legacy stream waits for it
  int device = 0;        // current at its creation
  std::deque<Item> queue;  // enqueued, not yet run
  uint64_t enqueued = 0;
  // Items run so far; shared with asynchronous work waiting for its inputs on other threads.
  std::shared_ptr<std::atomic<uint64_t>> ran = std::make_shared<std::atomic<uint64_t>>(0);
  std::unique_ptr<Work> owned;  // the capture this stream began: its id (counted from 1, as
  unsigned long long captureId = 0;  // CUDA's), mode and thread
  cudaStreamCaptureMode captureMode = cudaStreamCaptureModeGlobal;
  std::thread::id captureThread;
  Work* capture = nullptr;  // the capture it is part of, if any
  unsigned pace = 0;  // SVEMU_SCHEDULE_SEED: runs what it can after 1 in `pace` enqueues
};
struct Graph {
  Work work;
};
struct Event {
  std::chrono::steady_clock::time_point at;  // when its record ran
  Work* capture = nullptr;                    // recorded into this capture
  Stream* stream = nullptr;                   // recorded on this stream (null: done)
  uint64_t marker = 0;                        // done once the stream has run this many items
};

std::mutex mu;
std::map<const char*, size_t> deviceBlocks;  // cudaMalloc: base -> bytes
std::map<const char*, size_t> pinnedBlocks;  // cudaHostAlloc
std::map<const char*, int> deviceOf;          // cudaMalloc: base -> the device current then
int deviceCount = 1;                          // svemu::setDeviceCount
thread_local int currentDevice = 0;
std::vector<Stream*> streams;                // created by cudaStreamCreate*
std::vector<Event*> events;                  // created by cudaEventCreate*
// Captures in progress that an invalid operation invalidated: cudaStreamEndCapture then fails
// and returns no graph, as CUDA's does.
std::vector<const Work*> invalidated;
cudaError_t lastError = cudaSuccess;
std::atomic<cudaError_t> queryError{cudaSuccess};  // svemu::failQueries
// The legacy default stream's queue: empty, so that its work runs at the call, unless
// asynchronous work is in flight on it.
Stream legacy;
// Streams with asynchronous work that waits for their items up to a marker.
std::vector<std::pair<Stream*, uint64_t>> awaited;

Stream* created(cudaStream_t s) {
  std::lock_guard<std::mutex> lock(mu);
  for (Stream* t : streams)
    if (reinterpret_cast<cudaStream_t>(t) == s) return t;
  return nullptr;  // the legacy and per-thread default streams
}

// Whether `w` is a capture still in progress (an event keeps its capture after it ended).
bool capturing(const Work* w) {
  std::lock_guard<std::mutex> lock(mu);
  for (const Stream* t : streams)
    if (w != nullptr && t->owned.get() == w) return true;
  return false;
}

bool flush(Stream* s, uint64_t upTo = UINT64_MAX, bool wait = true);

// Whether this thread is prohibited from a "potentially unsafe" call (one that may allocate or
// synchronize: CUDA's capture modes): a capture is in progress that some thread began in global
// mode or this thread in thread-local mode. The thread's own captures are then invalidated.
bool unsafeCallRefused() {
  const std::thread::id me = std::this_thread::get_id();
  std::lock_guard<std::mutex> lock(mu);
  bool refused = false;
  for (const Stream* t : streams)
    if (t->owned && (t->captureMode == cudaStreamCaptureModeGlobal ||
                     (t->captureMode == cudaStreamCaptureModeThreadLocal && t->captureThread == me)))
      refused = true;
  if (refused)
    for (const Stream* t : streams)
      if (t->owned && t->captureThread == me) invalidated.push_back(t->owned.get());
  return refused;
}

// SVEMU_SCHEDULE_SEED's generator (null: the lazy schedule alone); "random" draws a seed and
// prints it, so that a failing schedule can be replayed. Used by the thread that drives the
// device; the asynchronous work's threads never enqueue.
std::mt19937_64* scheduleRng() {
  static std::unique_ptr<std::mt19937_64> rng = []() -> std::unique_ptr<std::mt19937_64> {
    const char* env = std::getenv("SVEMU_SCHEDULE_SEED");
    if (env == nullptr || *env == '\0') return nullptr;
    uint64_t seed = std::strtoull(env, nullptr, 10);
    if (std::strcmp(env, "random") == 0) {
      seed = (uint64_t{std::random_device{}()} << 32) | std::random_device{}();
      std::fprintf(stderr, "emulated device: SVEMU_SCHEDULE_SEED=%llu\n",
                   static_cast<unsigned long long>(seed));
    }
    return std::make_unique<std::mt19937_64>(seed);
  }();
  return rng.get();
}

// Spins until ready(), running the items that asynchronous work waits for (another stream's,
// which the host would otherwise run only when that stream is waited for).
void waitFor(const std::function<bool()>& ready) {
  const auto start = std::chrono::steady_clock::now();
  unsigned spins = 0;
  while (!ready()) {
    std::vector<std::pair<Stream*, uint64_t>> inputs;
    {
      std::lock_guard<std::mutex> lock(mu);
      inputs.swap(awaited);
    }
    for (const auto& [s, marker] : inputs)
      if (!flush(s, marker, false)) {
        std::lock_guard<std::mutex> lock(mu);
        awaited.emplace_back(s, marker);
      }
    if (std::chrono::steady_clock::now() - start > std::chrono::minutes(2)) {
      std::fprintf(stderr, "emulated device: stream work waited two minutes for asynchronous "
                   "work (an NCCL collective whose peers never came)\n");
      _exit(9);
    }
    svemu::backOff(&spins);
  }
}

// Runs s's queue until `upTo` items have run (each in order; an item may run other streams'
// queues first, as a wait on their events). Without `wait`, stops at asynchronous work not
// yet done and returns false (a query).
bool flush(Stream* s, uint64_t upTo, bool wait) {
  while (s != nullptr && s->ran->load() < upTo && !s->queue.empty()) {
    if (const std::function<bool()> ready = s->queue.front().ready; ready && !ready()) {
      if (!wait) return false;
      waitFor(ready);
      continue;  // waitFor may have run this item and more (the work others wait for)
    }
    std::function<void()> fn = std::move(s->queue.front().fn);
    s->queue.pop_front();
    if (fn) fn();
    s->ran->fetch_add(1);  // after fn: asynchronous work reads what it wrote
  }
  return true;
}

void push(Stream* s, Item item) {
  s->queue.push_back(std::move(item));
  ++s->enqueued;
  if (std::mt19937_64* rng = scheduleRng(); rng && s->pace != 0 && (*rng)() % s->pace == 0)
    flush(s, UINT64_MAX, false);
}

// Every created stream's queue (or only the blocking ones').
bool flushCreated(bool blockingOnly, bool wait) {
  std::vector<Stream*> all;
  {
    std::lock_guard<std::mutex> lock(mu);
    all = streams;
  }
  if (std::mt19937_64* rng = scheduleRng()) std::shuffle(all.begin(), all.end(), *rng);
  bool done = true;
  for (Stream* s : all)
    if (!blockingOnly || s->blocking) done = flush(s, UINT64_MAX, wait) && done;
  return done;
}

// The same, then the legacy stream's.
bool flushAll(bool blockingOnly, bool wait = true) {
  const bool done = flushCreated(blockingOnly, wait);
  return flush(&legacy, UINT64_MAX, wait) && done;
}

// Runs fn now, after the work queued on `stream` (or records it when capturing): a copy into
// pageable memory returns only once it is done.
void submitNow(cudaStream_t stream, std::function<void()> fn) {
  Stream* s = created(stream);
  if (s && s->capture) return s->capture->push_back({std::move(fn), nullptr});
  if (s) flush(s);
  else flushAll(true);
  fn();
}

cudaError_t fail(cudaError_t e) {
  lastError = e;
  return e;
}
// What a wait or a query returns once it did its part: svemu::failQueries's error if one is set.
cudaError_t queried(cudaError_t e) {
  const cudaError_t q = queryError;
  return q != cudaSuccess ? fail(q) : e;
}

bool within(const std::map<const char*, size_t>& blocks, const void* p) {
  std::lock_guard<std::mutex> lock(mu);
  const char* c = static_cast<const char*>(p);
  auto it = blocks.upper_bound(c);
  if (it == blocks.begin()) return false;
  --it;
  return c < it->first + std::max<size_t>(it->second, 1);
}

void* allocate(std::map<const char*, size_t>& blocks, size_t bytes) {
  // Aligned as cudaMalloc's, and no larger than asked, so that AddressSanitizer reports an
  // access past the end as compute-sanitizer's memcheck would.
  void* p = nullptr;
  if (posix_memalign(&p, 256, std::max<size_t>(bytes, 1)) != 0) p = nullptr;
  if (p) {
    // CUDA leaves new memory undefined, and reused memory holds what it held; fresh host
    // pages are zero, which would pass code that forgets to clear what it reads
    // (compute-sanitizer's initcheck, in the GPU lane, finds what this misses).
    svemu::fillUndefined(p, bytes);
    std::lock_guard<std::mutex> lock(mu);
    blocks[static_cast<const char*>(p)] = bytes;
  }
  return p;
}

cudaError_t release(std::map<const char*, size_t>& blocks, void* p) {
  if (p == nullptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(mu);
    if (blocks.erase(static_cast<const char*>(p)) == 0) return fail(cudaErrorInvalidValue);
  }
  std::free(p);
  return cudaSuccess;
}

}  // namespace

namespace svemu {

void submit(cudaStream_t stream, std::function<void()> fn) {
  Stream* s = created(stream);
  if (s && s->capture) {
    s->capture->push_back({std::move(fn), nullptr});
  } else if (s) {
    if (s->blocking && !legacy.queue.empty()) {  // after the legacy stream's work in flight
      const uint64_t marker = legacy.enqueued;
      push(s, {nullptr, [marker] { return flush(&legacy, marker, false); }});
    }
    push(s, {std::move(fn), nullptr});
  } else {  // the legacy stream: after the blocking streams' work
    flushCreated(true, true);
    if (legacy.queue.empty()) fn();
    else push(&legacy, {std::move(fn), nullptr});
  }
}

void launchFailed(cudaError_t e) { fail(e); }

void fillUndefined(void* p, size_t bytes) {
  constexpr uint64_t kWord = 0xFFFFFFFEFFFFFFFFull;  // little-endian: 0xFFFFFFFF, 0xFFFFFFFE
  auto* b = static_cast<unsigned char*>(p);
  size_t i = 0;
  for (; i + 8 <= bytes; i += 8) std::memcpy(b + i, &kWord, 8);
  for (; i < bytes; ++i) b[i] = i % 8 == 4 ? 0xFE : 0xFF;
}

namespace {
std::atomic<bool> hasKernelImage{true};
}  // namespace
void setKernelImage(bool present) { hasKernelImage = present; }
void setDeviceCount(int count) { deviceCount = count; }
Live live() {
  std::lock_guard<std::mutex> lock(mu);
  return {deviceBlocks.size(), pinnedBlocks.size(), streams.size(), events.size()};
}
void failQueries(cudaError_t e) { queryError = e; }
bool kernelImage() { return hasKernelImage; }

bool deviceReachable(const void* p) {
  if (p == nullptr) return false;
  // p may end an allocation (integer arithmetic: p - 1 may point before every object)
  const auto* last = reinterpret_cast<const char*>(reinterpret_cast<uintptr_t>(p) - 1);
  return within(deviceBlocks, p) || within(pinnedBlocks, p) || within(deviceBlocks, last) ||
         within(pinnedBlocks, last);
}

void submitAsync(cudaStream_t stream, Launch launch) {
  Stream* s = created(stream);
  if (s && s->capture) return s->capture->push_back({nullptr, std::move(launch)});
  if (s == nullptr) {  // the legacy stream: the blocking streams' work first, as submit()
    flushCreated(true, true);
    s = &legacy;
  }
  // Its inputs: the items queued before it, run now unless earlier asynchronous work holds
  // them back (then by whoever waits next, see waitFor).
  const uint64_t marker = s->enqueued;
  flush(s, marker, false);
  if (s->ran->load() < marker) {
    std::lock_guard<std::mutex> lock(mu);
    awaited.emplace_back(s, marker);
  }
  push(s, {nullptr, launch([ran = s->ran, marker] { return ran->load() >= marker; })});
}

}  // namespace svemu

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = deviceCount;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = currentDevice;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device < 0 || device >= deviceCount) return fail(cudaErrorInvalidDevice);
  currentDevice = device;
  return cudaSuccess;
}
// What the emulated device says it has (host memory, as much as the host gives).
constexpr size_t kDeviceBytes = size_t{8} << 30;

cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* total) {
  *freeBytes = *total = kDeviceBytes;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr || device != 0) return fail(cudaErrorInvalidValue);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "the emulated device (tests/emu; its times "
                "measure the host, not a GPU)");
  prop->major = 9;  // what CI compiles the kernels for
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->totalGlobalMem = kDeviceBytes;
  return cudaSuccess;
}
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr || device != 0) return fail(cudaErrorInvalidValue);
  switch (attr) {
    case cudaDevAttrComputeCapabilityMajor: *value = 9; return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor: *value = 0; return cudaSuccess;
    default: return fail(cudaErrorInvalidValue);  // not emulated
  }
}
cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
  if (attr == nullptr || func == nullptr) return fail(cudaErrorInvalidValue);
  if (!svemu::kernelImage()) return fail(cudaErrorNoKernelImageForDevice);
  *attr = cudaFuncAttributes{};
  attr->maxThreadsPerBlock = 1024;
  attr->binaryVersion = attr->ptxVersion = 90;
  return cudaSuccess;
}
cudaError_t cudaGetLastError(void) {
  const cudaError_t e = lastError;
  lastError = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return lastError; }
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess: return "no error (emulated device)";
    case cudaErrorInvalidValue: return "invalid argument (emulated device)";
    case cudaErrorMemoryAllocation: return "out of memory (emulated device)";
    case cudaErrorNoKernelImageForDevice:
      return "no kernel image is available for execution on the device (emulated device)";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing (emulated device)";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture (emulated device)";
    case cudaErrorCapturedEvent:
      return "operation not permitted on an event last recorded in a capturing stream (emulated "
             "device)";
    case cudaErrorStreamCaptureIsolation:
      return "dependency created on uncaptured work in another stream (emulated device)";
    default: return "an error of the emulated device";
  }
}
cudaError_t cudaDeviceSynchronize(void) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  flushAll(false);
  return queried(cudaSuccess);
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  *p = allocate(deviceBlocks, bytes);
  if (*p == nullptr) return fail(cudaErrorMemoryAllocation);
  std::lock_guard<std::mutex> lock(mu);
  deviceOf[static_cast<const char*>(*p)] = currentDevice;
  return cudaSuccess;
}
cudaError_t cudaFree(void* p) {  // synchronizes the device, as CUDA's does
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  flushAll(false);
  {
    std::lock_guard<std::mutex> lock(mu);
    deviceOf.erase(static_cast<const char*>(p));
  }
  return release(deviceBlocks, p);
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  *p = allocate(pinnedBlocks, bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  flushAll(false);
  return release(pinnedBlocks, p);
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  *a = cudaPointerAttributes{};
  a->type = within(deviceBlocks, p)   ? cudaMemoryTypeDevice
            : within(pinnedBlocks, p) ? cudaMemoryTypeHost
                                      : cudaMemoryTypeUnregistered;
  if (a->type == cudaMemoryTypeDevice) {
    std::lock_guard<std::mutex> lock(mu);
    a->device = std::prev(deviceOf.upper_bound(static_cast<const char*>(p)))->second;
  }
  a->devicePointer = a->type == cudaMemoryTypeUnregistered ? nullptr : const_cast<void*>(p);
  a->hostPointer = a->type == cudaMemoryTypeDevice ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

// The synchronous calls on device memory as CUDA documents them: a copy into host memory, or
// from pinned host memory, returns once it is done. A copy into the device from pageable host
// memory returns once the source is staged, its DMA possibly still in flight; one from device
// memory, and a memset of it, do not wait at all. Those stay queued on the legacy default
// stream, which blocking streams and later legacy calls wait for and non-blocking streams do
// not: a non-blocking stream that reads what they wrote without a synchronization first finds
// the old contents here, as it may on a GPU.
void legacyLater(std::function<void()> fn) {
  flushCreated(true, true);  // after the blocking streams' work, as every legacy call
  push(&legacy, {std::move(fn), nullptr});
}
cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  if (bytes == 0) return cudaSuccess;
  if (!within(deviceBlocks, dst) || within(pinnedBlocks, src)) {
    submitNow(nullptr, [=] { std::memmove(dst, src, bytes); });
  } else if (!within(deviceBlocks, src)) {  // pageable: staged now
    flushAll(true);  // CUDA synchronizes the legacy stream before it stages
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + bytes);
    legacyLater([=] { std::memcpy(dst, staged->data(), bytes); });
  } else {
    legacyLater([=] { std::memmove(dst, src, bytes); });
  }
  return cudaSuccess;
}
// Pageable host memory as CUDA treats it: a copy from it is staged before the call returns, so
// the caller may reuse the buffer at once; a copy into it returns only once it is done.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  auto pageable = [](const void* p) {
    return !within(deviceBlocks, p) && !within(pinnedBlocks, p);
  };
  if (pageable(src)) {
    auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                      static_cast<const char*>(src) + bytes);
    svemu::submit(stream, [=] { std::memcpy(dst, staged->data(), bytes); });
  } else if (pageable(dst)) {
    submitNow(stream, [=] { std::memmove(dst, src, bytes); });
  } else {
    svemu::submit(stream, [=] { std::memmove(dst, src, bytes); });
  }
  return cudaSuccess;
}
// CUDA refuses to set pageable host memory (where the device does not map it: no HMM).
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (unsafeCallRefused()) return fail(cudaErrorStreamCaptureUnsupported);
  if (bytes && !svemu::deviceReachable(dst)) return fail(cudaErrorInvalidValue);
  if (within(pinnedBlocks, dst)) submitNow(nullptr, [=] { std::memset(dst, value, bytes); });
  else legacyLater([=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  if (bytes && !svemu::deviceReachable(dst)) return fail(cudaErrorInvalidValue);
  svemu::submit(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  auto* t = new Stream;
  t->blocking = (flags & cudaStreamNonBlocking) == 0;
  t->device = currentDevice;
  if (std::mt19937_64* rng = scheduleRng())
    t->pace = std::array<unsigned, 4>{0, 8, 2, 1}[(*rng)() % 4];
  std::lock_guard<std::mutex> lock(mu);
  streams.push_back(t);
  *s = reinterpret_cast<cudaStream_t>(t);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamGetDevice(cudaStream_t s, int* device) {
  const Stream* t = created(s);
  *device = t ? t->device : currentDevice;  // the default streams: the current device's
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  Stream* t = created(s);
  if (t == nullptr) return fail(cudaErrorInvalidResourceHandle);
  flush(t);  // its work completes, as on a GPU
  {
    std::lock_guard<std::mutex> lock(mu);
    streams.erase(std::find(streams.begin(), streams.end(), t));
    awaited.erase(std::remove_if(awaited.begin(), awaited.end(),
                                 [t](const auto& a) { return a.first == t; }),
                  awaited.end());
    for (Event* e : events)
      if (e->stream == t) e->stream = nullptr;  // complete
  }
  delete t;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  Stream* t = created(s);
  if (t && t->capture) return fail(cudaErrorStreamCaptureUnsupported);
  if (t) flush(t);
  else flushAll(true);
  return queried(cudaSuccess);
}
cudaError_t cudaStreamQuery(cudaStream_t s) {
  Stream* t = created(s);
  if (t && t->capture) return fail(cudaErrorStreamCaptureUnsupported);
  return queried((t ? flush(t, UINT64_MAX, false) : flushAll(true, false)) ? cudaSuccess
                                                                             : cudaErrorNotReady);
}
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int flags) {
  Stream* t = created(s);
  const auto* ev = reinterpret_cast<Event*>(e);
  if (capturing(ev->capture)) {
    if (t && t->capture == ev->capture) return cudaSuccess;
    if (t == nullptr || t->capture) return fail(cudaErrorStreamCaptureIsolation);
    t->capture = ev->capture;  // joins the capture
    return cudaSuccess;
  }
  // The CUDA programming guide: "It is invalid to wait on a non-captured event from a stream
  // which is being captured without specifying the cudaEventWaitExternal flag"; the capture is
  // invalidated.
  if (t && t->capture && !(flags & cudaEventWaitExternal)) {
    std::lock_guard<std::mutex> lock(mu);
    invalidated.push_back(t->capture);
    return fail(cudaErrorStreamCaptureIsolation);
  }
  if (ev->capture) return fail(cudaErrorCapturedEvent);  // last recorded in a capture now ended
  Stream* from = ev->stream;
  const uint64_t marker = ev->marker;  // the record current at this call, as in CUDA
  if (from == nullptr || from == t) return cudaSuccess;
  auto ready = [from, marker] {  // `from` may be destroyed by then, its work done
    return (from != &legacy && created(reinterpret_cast<cudaStream_t>(from)) == nullptr) ||
           flush(from, marker, false);
  };
  if (t == nullptr) {  // the legacy stream waits at once
    waitFor(ready);
  } else if (t->capture) {  // recorded: the replay waits for the event's work of this call
    t->capture->push_back({[ready] { waitFor(ready); }, nullptr});
  } else {
    push(t, {nullptr, ready});
  }
  return cudaSuccess;
}
// The capture's status and id; nothing else is reported.
cudaError_t cudaStreamGetCaptureInfo(cudaStream_t s, cudaStreamCaptureStatus* status,
                                     unsigned long long* id, cudaGraph_t* graph,
                                     const cudaGraphNode_t** deps, const cudaGraphEdgeData** edges,
                                     size_t* numDeps) {
  if (graph != nullptr || deps != nullptr || edges != nullptr || numDeps != nullptr)
    return fail(cudaErrorNotSupported);
  Stream* t = created(s);
  std::lock_guard<std::mutex> lock(mu);
  const bool invalid = t && t->capture &&
                       std::find(invalidated.begin(), invalidated.end(), t->capture) !=
                           invalidated.end();
  *status = !(t && t->capture) ? cudaStreamCaptureStatusNone
            : invalid          ? cudaStreamCaptureStatusInvalidated
                               : cudaStreamCaptureStatusActive;
  if (id != nullptr) {
    *id = 0;
    for (const Stream* owner : streams)
      if (t && t->capture && owner->owned.get() == t->capture) *id = owner->captureId;
  }
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  return cudaStreamGetCaptureInfo(s, status);
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode) {
  Stream* t = created(s);
  if (t == nullptr || t->capture) return fail(cudaErrorIllegalState);
  static unsigned long long captures = 0;
  std::lock_guard<std::mutex> lock(mu);
  t->owned = std::make_unique<Work>();
  t->capture = t->owned.get();
  t->captureId = ++captures;
  t->captureMode = mode;
  t->captureThread = std::this_thread::get_id();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  Stream* t = created(s);
  if (t == nullptr || !t->owned) return fail(cudaErrorIllegalState);
  std::unique_lock<std::mutex> lock(mu);
  const auto bad = std::remove(invalidated.begin(), invalidated.end(), t->owned.get());
  const bool valid = bad == invalidated.end();
  invalidated.erase(bad, invalidated.end());  // its address may hold a later capture
  *graph = valid ? reinterpret_cast<cudaGraph_t>(new Graph{std::move(*t->owned)}) : nullptr;
  for (Stream* joined : streams)  // CUDA requires them rejoined; the work is recorded either way
    if (joined->capture == t->owned.get()) joined->capture = nullptr;
  t->owned.reset();
  lock.unlock();
  return valid ? cudaSuccess : fail(cudaErrorStreamCaptureInvalidated);
}
cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* count) {
  if (nodes != nullptr) return fail(cudaErrorNotSupported);
  *count = reinterpret_cast<Graph*>(graph)->work.size();
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  *exec = reinterpret_cast<cudaGraphExec_t>(new Graph(*reinterpret_cast<Graph*>(graph)));
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  for (const Recorded& r : reinterpret_cast<Graph*>(exec)->work) {
    if (r.launch) svemu::submitAsync(stream, r.launch);
    else svemu::submit(stream, r.fn);
  }
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete reinterpret_cast<Graph*>(graph);
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete reinterpret_cast<Graph*>(exec);
  return cudaSuccess;
}

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned int) {
  auto* ev = new Event;
  std::lock_guard<std::mutex> lock(mu);
  events.push_back(ev);
  *e = reinterpret_cast<cudaEvent_t>(ev);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
// An event whose record is still queued is kept until the process ends (CUDA frees it once
// the record is done).
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  auto* ev = reinterpret_cast<Event*>(e);
  static std::vector<std::unique_ptr<Event>> pending;
  std::lock_guard<std::mutex> lock(mu);
  const auto at = std::find(events.begin(), events.end(), ev);
  if (at == events.end()) return fail(cudaErrorInvalidResourceHandle);  // null or destroyed
  events.erase(at);
  if (ev->stream != nullptr && ev->stream->ran->load() < ev->marker) pending.emplace_back(ev);
  else delete ev;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  auto* ev = reinterpret_cast<Event*>(e);
  Stream* t = created(stream);
  ev->capture = t ? t->capture : nullptr;
  svemu::submit(stream, [ev] { ev->at = std::chrono::steady_clock::now(); });
  if (!ev->capture) {  // on the legacy stream, done unless queued behind work in flight
    ev->stream = t ? t : legacy.queue.empty() ? nullptr : &legacy;
    ev->marker = ev->stream ? ev->stream->enqueued : 0;
  }
  return cudaSuccess;
}
// An event last recorded in a capture stands for no work that runs: CUDA refuses to wait for it.
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  const auto* ev = reinterpret_cast<Event*>(e);
  if (ev->capture) return fail(cudaErrorCapturedEvent);
  flush(ev->stream, ev->marker);
  return queried(cudaSuccess);
}
cudaError_t cudaEventQuery(cudaEvent_t e) {
  const auto* ev = reinterpret_cast<Event*>(e);
  if (ev->capture) return fail(cudaErrorCapturedEvent);
  return queried(flush(ev->stream, ev->marker, false) ? cudaSuccess : cudaErrorNotReady);
}
// The host time between the two records' runs.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(end)->at -
                                                 reinterpret_cast<Event*>(start)->at)
            .count();
  return cudaSuccess;
}

}  // extern "C"
