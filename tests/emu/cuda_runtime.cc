// The CUDA runtime calls of lib/ and the CUDA-backend suites, on the host (see emu.h): one
// device, memory from the host heap, streams that run their work when it is enqueued, events
// that are always complete (stamped with the host clock when their record runs), and graph
// capture that records the work for replay. Calls outside this subset are not defined, so
// using one fails at link time.
#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
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
  std::unique_ptr<Work> owned;  // the capture this stream began
  Work* capture = nullptr;      // the capture it is part of, if any
};
struct Graph {
  Work work;
};
struct Event {
  std::chrono::steady_clock::time_point at;  // when its record ran
  Work* capture = nullptr;                    // recorded into this capture
};

std::mutex mu;
std::map<const char*, size_t> deviceBlocks;  // cudaMalloc: base -> bytes
std::map<const char*, size_t> pinnedBlocks;  // cudaHostAlloc
std::vector<Stream*> streams;                // created by cudaStreamCreate*
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
  if (s && s->capture) s->capture->push_back(std::move(fn));
  else fn();
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
cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
  *p = allocate(deviceBlocks, bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaFree(void* p) { return release(deviceBlocks, p); }
cudaError_t cudaHostAlloc(void** p, size_t bytes, unsigned int) {
  *p = allocate(pinnedBlocks, bytes);
  return *p ? cudaSuccess : fail(cudaErrorMemoryAllocation);
}
cudaError_t cudaMallocHost(void** p, size_t bytes) { return cudaHostAlloc(p, bytes, 0); }
cudaError_t cudaFreeHost(void* p) { return release(pinnedBlocks, p); }
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
  if (bytes) std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind,
                            cudaStream_t stream) {
  svemu::submit(stream, [=] {
    if (bytes) std::memmove(dst, src, bytes);
  });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  svemu::submit(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned int) {
  auto* t = new Stream;
  std::lock_guard<std::mutex> lock(mu);
  streams.push_back(t);
  *s = reinterpret_cast<cudaStream_t>(t);
  return cudaSuccess;
}
cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamDestroy(cudaStream_t s) {
  Stream* t = created(s);
  if (t == nullptr) return fail(cudaErrorInvalidResourceHandle);
  {
    std::lock_guard<std::mutex> lock(mu);
    streams.erase(std::find(streams.begin(), streams.end(), t));
  }
  delete t;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
  Stream* t = created(s);
  return t && t->capture ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess;
}
cudaError_t cudaStreamQuery(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned int) {
  Stream* t = created(s);
  Work* capture = reinterpret_cast<Event*>(e)->capture;
  if (!capturing(capture) || (t && t->capture == capture)) return cudaSuccess;
  if (t == nullptr || t->capture) return fail(cudaErrorStreamCaptureIsolation);
  t->capture = capture;  // joins the capture
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
  *e = reinterpret_cast<cudaEvent_t>(new Event);
  return cudaSuccess;
}
cudaError_t cudaEventCreate(cudaEvent_t* e) { return cudaEventCreateWithFlags(e, 0); }
cudaError_t cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<Event*>(e);
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t stream) {
  auto* ev = reinterpret_cast<Event*>(e);
  Stream* t = created(stream);
  ev->capture = t ? t->capture : nullptr;
  svemu::submit(stream, [ev] { ev->at = std::chrono::steady_clock::now(); });
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t) { return cudaSuccess; }
cudaError_t cudaEventSynchronize(cudaEvent_t) { return cudaSuccess; }
// The host time between the two records (work runs as it is enqueued).
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  *ms = std::chrono::duration<float, std::milli>(reinterpret_cast<Event*>(end)->at -
                                                 reinterpret_cast<Event*>(start)->at)
            .count();
  return cudaSuccess;
}

}  // extern "C"
