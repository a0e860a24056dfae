// The CUDA runtime calls of lib/ and the CUDA-backend suites, on the host (see emu.h): one
// device, memory from the host heap, streams that queue their work and run it only when
// something needs it done, events that mark a stream's position (stamped with the host clock
// when their record runs), and graph capture that records the work for replay. Calls outside
// this subset are not defined, so using one fails at link time.
//
// Work runs as late as CUDA's ordering rules allow: a stream's queue runs when it is
// synchronized or queried, when a stream waiting on one of its events reaches the wait, when
// an event of it is synchronized or queried, when the device is synchronized or memory is
// freed, and a blocking stream's queue also when the legacy default stream (a synchronous
// copy or set) is used. So a host read of memory that no synchronization covers, or a stream
// that uses another's results without an event, sees stale data here, as it may on a GPU.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "emu.h"

namespace {

using Work = std::vector<std::function<void()>>;

// A capture begins on one stream, which owns the recorded work; another stream joins it by
// waiting on an event recorded in it (CUDA's fork and join), until the capture ends.
struct Stream {
  bool blocking = true;  // created without cudaStreamNonBlocking: the legacy stream waits for it
  std::deque<std::function<void()>> queue;  // enqueued, not yet run
  uint64_t enqueued = 0, ran = 0;
  std::unique_ptr<Work> owned;  // the capture this stream began
  Work* capture = nullptr;      // the capture it is part of, if any
};
struct Graph {
  Work work;
};
struct Event {
  std::chrono::steady_clock::time_point at;  // when its record ran
  Work* capture = nullptr;                    // recorded into this capture
  Stream* stream = nullptr;                   // recorded on this stream (null: legacy, done)
  uint64_t marker = 0;                        // done once the stream has run this many items
};

std::mutex mu;
std::map<const char*, size_t> deviceBlocks;  // cudaMalloc: base -> bytes
std::map<const char*, size_t> pinnedBlocks;  // cudaHostAlloc
std::vector<Stream*> streams;                // created by cudaStreamCreate*
std::vector<Event*> events;                  // created by cudaEventCreate*
cudaError_t lastError = cudaSuccess;

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

// Runs s's queue until `upTo` items have run (each in order; an item may run other streams'
// queues first, as a wait on their events).
void flush(Stream* s, uint64_t upTo = UINT64_MAX) {
  while (s != nullptr && s->ran < upTo && !s->queue.empty()) {
    std::function<void()> fn = std::move(s->queue.front());
    s->queue.pop_front();
    ++s->ran;
    fn();
  }
}

void flushAll(bool blockingOnly) {
  std::vector<Stream*> all;
  {
    std::lock_guard<std::mutex> lock(mu);
    all = streams;
  }
  for (Stream* s : all)
    if (!blockingOnly || s->blocking) flush(s);
}

cudaError_t fail(cudaError_t e) {
  lastError = e;
  return e;
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
  void* p = std::aligned_alloc(256, (std::max<size_t>(bytes, 1) + 255) / 256 * 256);
  if (p) {
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
    s->capture->push_back(std::move(fn));
  } else if (s) {
    s->queue.push_back(std::move(fn));
    ++s->enqueued;
  } else {  // the legacy stream: after the blocking streams' work
    flushAll(true);
    fn();
  }
}

void submitNow(cudaStream_t stream, std::function<void()> fn) {
  Stream* s = created(stream);
  if (s && s->capture) return s->capture->push_back(std::move(fn));
  if (s) flush(s);
  else flushAll(true);
  fn();
}

}  // namespace svemu

extern "C" {

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : fail(cudaErrorInvalidDevice);
}
cudaError_t cudaMemGetInfo(size_t* freeBytes, size_t* total) {
  *freeBytes = *total = size_t{8} << 30;
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
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing (emulated device)";
    default: return "an error of the emulated device";
  }
}
cudaError_t cudaDeviceSynchronize(void) {
  flushAll(false);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = allocate(deviceBlocks, bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) {  // synchronizes the device, as CUDA's does
  flushAll(false);
  return release(deviceBlocks, p);
}
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  *p = allocate(pinnedBlocks, bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) {
  flushAll(false);
  return release(pinnedBlocks, p);
}
cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* a, const void* p) {
  *a = cudaPointerAttributes{};
  a->type = within(deviceBlocks, p)   ? cudaMemoryTypeDevice
            : within(pinnedBlocks, p) ? cudaMemoryTypeHost
                                      : cudaMemoryTypeUnregistered;
  a->devicePointer = a->type == cudaMemoryTypeUnregistered ? nullptr : const_cast<void*>(p);
  a->hostPointer = a->type == cudaMemoryTypeDevice ? nullptr : const_cast<void*>(p);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  svemu::submit(nullptr, [=] {
    if (bytes) std::memmove(dst, src, bytes);
  });
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
    svemu::submitNow(stream, [=] { std::memmove(dst, src, bytes); });
  } else {
    svemu::submit(stream, [=] { std::memmove(dst, src, bytes); });
  }
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  svemu::submit(nullptr, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  svemu::submit(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int flags) {
  auto* t = new Stream;
  t->blocking = (flags & cudaStreamNonBlocking) == 0;
  std::lock_guard<std::mutex> lock(mu);
  streams.push_back(t);
  *s = reinterpret_cast<cudaStream_t>(t);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  Stream* t = created(s);
  if (t == nullptr) return fail(cudaErrorInvalidResourceHandle);
  flush(t);  // its work completes, as on a GPU
  {
    std::lock_guard<std::mutex> lock(mu);
    streams.erase(std::find(streams.begin(), streams.end(), t));
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
  return cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t s) { return cudaStreamSynchronize(s); }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  Stream* t = created(s);
  const auto* ev = reinterpret_cast<Event*>(e);
  if (capturing(ev->capture)) {
    if (t && t->capture == ev->capture) return cudaSuccess;
    if (t == nullptr || t->capture) return fail(cudaErrorStreamCaptureIsolation);
    t->capture = ev->capture;  // joins the capture
    return cudaSuccess;
  }
  Stream* from = ev->stream;
  const uint64_t marker = ev->marker;  // the record current at this call, as in CUDA
  if (from == nullptr || from == t) return cudaSuccess;
  svemu::submit(s, [from, marker] {  // `from` may be destroyed by then, its work done
    if (created(reinterpret_cast<cudaStream_t>(from)) != nullptr) flush(from, marker);
  });
  return cudaSuccess;
}
cudaError_t cudaStreamIsCapturing(cudaStream_t s, cudaStreamCaptureStatus* status) {
  Stream* t = created(s);
  *status = t && t->capture ? cudaStreamCaptureStatusActive : cudaStreamCaptureStatusNone;
  return cudaSuccess;
}
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
  Stream* t = created(s);
  if (t == nullptr || t->capture) return fail(cudaErrorIllegalState);
  t->owned = std::make_unique<Work>();
  t->capture = t->owned.get();
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* graph) {
  Stream* t = created(s);
  if (t == nullptr || !t->owned) return fail(cudaErrorIllegalState);
  *graph = reinterpret_cast<cudaGraph_t>(new Graph{std::move(*t->owned)});
  std::lock_guard<std::mutex> lock(mu);
  for (Stream* joined : streams)  // CUDA requires them rejoined; the work is recorded either way
    if (joined->capture == t->owned.get()) joined->capture = nullptr;
  t->owned.reset();
  return cudaSuccess;
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
  for (const auto& fn : reinterpret_cast<Graph*>(exec)->work) svemu::submit(stream, fn);
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
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  auto* ev = reinterpret_cast<Event*>(e);
  {
    std::lock_guard<std::mutex> lock(mu);
    events.erase(std::find(events.begin(), events.end(), ev));
  }
  delete ev;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  auto* ev = reinterpret_cast<Event*>(e);
  Stream* t = created(stream);
  ev->capture = t ? t->capture : nullptr;
  svemu::submit(stream, [ev] { ev->at = std::chrono::steady_clock::now(); });
  if (!ev->capture) {
    ev->stream = t;
    ev->marker = t ? t->enqueued : 0;
  }
  return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t e) {
  const auto* ev = reinterpret_cast<Event*>(e);
  flush(ev->stream, ev->marker);
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t e) { return cudaEventSynchronize(e); }
// The host time between the two records' runs.
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(end)->at -
                                                 reinterpret_cast<Event*>(start)->at)
            .count();
  return cudaSuccess;
}

}  // extern "C"
