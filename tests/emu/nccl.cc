// The NCCL calls of lib/transport/nccl.cc, the NCCL process suite and signvote-bench, for the
// emulated device (emu.h): ranks are processes on this machine that meet in a shared-memory
// segment named by the unique id. A collective is asynchronous stream work, as on a GPU: the
// call (or a graph's launch) hands it to the communicator's thread, which waits until the
// stream's earlier work has run, then for every rank to come. There each rank writes what it
// sends into (sender, receiver) slots, the ranks meet at a barrier, each reads what it
// receives, and they meet again, in rounds of one slot when messages are longer. Meanwhile
// the stream's later work waits and queries say cudaErrorNotReady, so a host wait with a
// timeout can give up on a peer that never comes. ncclCommAbort ends the waits of its own
// collectives and, as a peer's closed connections would, makes every other rank's waits end
// with ncclRemoteError from ncclCommGetAsyncError; a collective that waits for a peer that
// neither comes nor aborts ends the process after two minutes. As NCCL's enqueue check does,
// a call on a communicator with an asynchronous error returns that error. emu.h's
// svemu::nccl* calls inject failures.
#include <fcntl.h>
#include <nccl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "emu.h"

namespace {

constexpr int kMaxRanks = 16;
constexpr size_t kSlot = size_t{1} << 18;  // bytes per (sender, receiver) slot and round
constexpr size_t kHeader = 4096;

struct Shared {  // the segment's head; the slots follow at kHeader
  std::atomic<uint64_t> arrived, generation;
  std::atomic<uint64_t> rounds[kMaxRanks];
  std::atomic<int> abortedBy;  // 1 + the first rank that called ncclCommAbort; 0: none
};
static_assert(sizeof(Shared) <= kHeader, "the segment's head fits");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "atomics work across processes");

struct Message {
  int peer;
  char* data;  // const for sends
  size_t bytes;
};

size_t segmentBytes(int n) { return kHeader + size_t(n) * n * kSlot; }

// A collective handed to its communicator's thread: it starts once inputsReady() and sets
// done when it ended, completed or given up.
struct Job {
  std::function<bool()> inputsReady;
  std::function<void()> run;
  std::shared_ptr<std::atomic<bool>> done;
};

}  // namespace

struct ncclComm {
  Shared* shared;
  char* slots;
  int n, rank;
  std::atomic<bool> aborted{false};               // ncclCommAbort was called on it
  std::atomic<int> asyncError{ncclSuccess};       // what ncclCommGetAsyncError says
  std::atomic<int> inProgressPolls{0};            // injected: polls still saying ncclInProgress
  std::mutex mu;
  std::condition_variable wake;
  std::deque<Job> jobs;
  bool stop = false;
  std::thread worker;
};

namespace {

void waitedTooLong(std::chrono::steady_clock::time_point start, const ncclComm* c) {
  if (std::chrono::steady_clock::now() - start > std::chrono::minutes(2)) {
    std::fprintf(stderr, "emulated NCCL: rank %d waited two minutes for its peers\n", c->rank);
    _exit(9);
  }
}

// Whether the communicator's collectives have ended: aborted here, or by a peer (then
// ncclRemoteError, as NCCL reports a peer's closed connections).
bool ended(ncclComm* c) {
  if (c->aborted.load()) return true;
  if (c->shared->abortedBy.load() == 0) return false;
  int none = ncclSuccess;
  c->asyncError.compare_exchange_strong(none, ncclRemoteError);
  return true;
}

// false: the communicator ended while waiting.
bool barrier(ncclComm* c) {
  Shared* s = c->shared;
  const uint64_t g = s->generation.load();
  if (s->arrived.fetch_add(1) + 1 == uint64_t(c->n)) {
    s->arrived.store(0);
    s->generation.fetch_add(1);
    return true;
  }
  const auto start = std::chrono::steady_clock::now();
  unsigned spins = 0;
  while (s->generation.load() == g) {
    if (ended(c)) return false;
    waitedTooLong(start, c);
    svemu::backOff(&spins);
  }
  return true;
}

char* slot(ncclComm* c, int from, int to) {
  return c->slots + (size_t(from) * c->n + to) * kSlot;
}

// Every rank calls it with its messages to and from the other ranks; it stops when the
// communicator ends.
void exchange(ncclComm* c, const std::vector<Message>& sends, const std::vector<Message>& recvs) {
  uint64_t mine = 0;
  for (const auto* list : {&sends, &recvs})
    for (const Message& m : *list) mine = std::max<uint64_t>(mine, (m.bytes + kSlot - 1) / kSlot);
  c->shared->rounds[c->rank].store(mine);
  if (!barrier(c)) return;
  uint64_t rounds = 0;
  for (int r = 0; r < c->n; ++r) rounds = std::max(rounds, c->shared->rounds[r].load());
  if (!barrier(c)) return;  // everyone has read the rounds before they are written again
  for (uint64_t round = 0; round < rounds; ++round) {
    const size_t off = round * kSlot;
    for (const Message& m : sends)
      if (off < m.bytes)
        std::memcpy(slot(c, c->rank, m.peer), m.data + off, std::min(kSlot, m.bytes - off));
    if (!barrier(c)) return;
    for (const Message& m : recvs)
      if (off < m.bytes)
        std::memcpy(m.data + off, slot(c, m.peer, c->rank), std::min(kSlot, m.bytes - off));
    if (!barrier(c)) return;
  }
}

// The communicator's thread: its collectives in the order they were enqueued, each once the
// stream's earlier work has run (what the GPU would do without the host).
void serve(ncclComm* c) {
  for (;;) {
    Job job;
    {
      std::unique_lock<std::mutex> lock(c->mu);
      c->wake.wait(lock, [c] { return c->stop || !c->jobs.empty(); });
      if (c->jobs.empty()) return;
      job = std::move(c->jobs.front());
      c->jobs.pop_front();
    }
    const auto start = std::chrono::steady_clock::now();
    bool go = true;
    unsigned spins = 0;
    while (go && !job.inputsReady()) {
      go = !ended(c);
      waitedTooLong(start, c);
      svemu::backOff(&spins);
    }
    if (go && !ended(c)) job.run();
    job.done->store(true);
  }
}

// The collective `run` as stream work of `stream`, in call order on the communicator.
void enqueue(ncclComm* c, cudaStream_t stream, std::function<void()> run) {
  svemu::submitAsync(stream, [c, run](std::function<bool()> inputsReady) {
    auto done = std::make_shared<std::atomic<bool>>(false);
    {
      std::lock_guard<std::mutex> lock(c->mu);
      c->jobs.push_back({std::move(inputsReady), run, done});
    }
    c->wake.notify_one();
    return std::function<bool()>([done] { return done->load(); });
  });
}

// Injected failures (svemu::ncclFailCall, ncclReturnInProgress, ncclSetAsyncError).
struct Failure {
  std::string call;
  int left;  // calls of it still to pass
  ncclResult_t result;
};
std::mutex injectMu;
std::vector<Failure> failures;
int inProgressPolls = 0;  // > 0 or -1: every launching call returns ncclInProgress
ncclResult_t injectedAsync = ncclSuccess;

// What ncclCommGetAsyncError says of c; a poll (`consume`) counts down an injected
// ncclInProgress.
ncclResult_t asyncState(ncclComm* c, bool consume) {
  {
    std::lock_guard<std::mutex> lock(injectMu);
    if (injectedAsync != ncclSuccess) return injectedAsync;
  }
  ended(c);  // a peer's abort shows here
  int polls = c->inProgressPolls.load();
  while (consume && polls != 0 &&
         !c->inProgressPolls.compare_exchange_weak(polls, polls - (polls > 0))) {
  }
  if (polls != 0) return ncclInProgress;
  return static_cast<ncclResult_t>(c->asyncError.load());
}

// What the injected failures make of this call of `call` on c. As NCCL's enqueue check
// (ncclCommEnsureReady), a call on a communicator whose asynchronous error is set returns that
// error, and one made while the previous call is still ncclInProgress is refused.
ncclResult_t injected(const char* call, ncclComm* c) {
  if (const ncclResult_t state = asyncState(c, false); state != ncclSuccess)
    return state == ncclInProgress ? ncclInvalidArgument : state;
  std::lock_guard<std::mutex> lock(injectMu);
  for (auto it = failures.begin(); it != failures.end(); ++it) {
    if (it->call != call || --it->left > 0) continue;
    const ncclResult_t r = it->result;
    failures.erase(it);
    return r;
  }
  return ncclSuccess;
}

// A launching call's result: ncclInProgress when injected, the work enqueued all the same
// (a non-blocking communicator still enqueueing it when the call returned).
ncclResult_t launched(ncclComm* c) {
  std::lock_guard<std::mutex> lock(injectMu);
  if (inProgressPolls == 0) return ncclSuccess;
  c->inProgressPolls.store(inProgressPolls);
  return ncclInProgress;
}

size_t typeBytes(ncclDataType_t t) {
  switch (t) {
    case ncclInt8: case ncclUint8: return 1;
    case ncclFloat16: case ncclBfloat16: return 2;
    case ncclInt32: case ncclUint32: case ncclFloat32: return 4;
    default: return 8;
  }
}

// Group calls (ncclGroupStart .. ncclGroupEnd) of this thread.
thread_local int groupDepth = 0;
struct Pending {
  ncclComm* comm = nullptr;
  cudaStream_t stream = nullptr;
  std::vector<Message> sends, recvs;
  ncclResult_t failed = ncclSuccess;  // a call of the group failed: ncclGroupEnd drops it
};
thread_local Pending pending;

ncclResult_t point(bool send, const void* buf, size_t count, ncclDataType_t type, int peer,
                   ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr || peer < 0 || peer >= comm->n || (pending.comm && pending.comm != comm))
    return ncclInvalidArgument;
  if (const ncclResult_t r = injected(send ? "ncclSend" : "ncclRecv", comm); r != ncclSuccess) {
    pending.comm = comm;
    pending.failed = r;
    if (groupDepth == 0) ncclGroupEnd();
    return r;
  }
  pending.comm = comm;
  pending.stream = stream;
  const Message m{peer, static_cast<char*>(const_cast<void*>(buf)), count * typeBytes(type)};
  (send ? pending.sends : pending.recvs).push_back(m);
  if (groupDepth == 0) return ncclGroupEnd();  // a lone call is its own group
  return ncclSuccess;
}

}  // namespace

extern "C" {

const char* ncclGetErrorString(ncclResult_t result) {
  return result == ncclSuccess ? "no error (emulated NCCL)" : "an error of the emulated NCCL";
}
const char* ncclGetLastError(ncclComm_t) { return ""; }
ncclResult_t ncclGetVersion(int* version) {
  *version = NCCL_VERSION_CODE;
  return ncclSuccess;
}

ncclResult_t ncclGetUniqueId(ncclUniqueId* id) {
  static std::atomic<unsigned> serial{0};
  std::memset(id->internal, 0, sizeof(id->internal));
  const auto t = std::chrono::steady_clock::now().time_since_epoch().count();
  std::snprintf(id->internal, sizeof(id->internal), "/svemu-nccl-%d-%u-%llx", int(getpid()),
                serial++, static_cast<unsigned long long>(t));
  return ncclSuccess;
}

ncclResult_t ncclCommInitRank(ncclComm_t* comm, int nranks, ncclUniqueId id, int rank) {
  if (nranks < 1 || nranks > kMaxRanks || rank < 0 || rank >= nranks) return ncclInvalidArgument;
  id.internal[sizeof(id.internal) - 1] = '\0';
  const int fd = shm_open(id.internal, O_CREAT | O_RDWR, 0600);
  if (fd < 0) return ncclSystemError;
  const size_t bytes = segmentBytes(nranks);
  void* p = ftruncate(fd, static_cast<off_t>(bytes)) == 0
                ? mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                : MAP_FAILED;
  close(fd);
  if (p == MAP_FAILED) return ncclSystemError;
  auto* c = new ncclComm;
  c->shared = static_cast<Shared*>(p);
  c->slots = static_cast<char*>(p) + kHeader;
  c->n = nranks;
  c->rank = rank;
  barrier(c);  // every rank has the segment open: its name can go
  if (rank == 0) shm_unlink(id.internal);
  c->worker = std::thread(serve, c);
  *comm = c;
  return ncclSuccess;
}

ncclResult_t ncclCommCount(const ncclComm_t comm, int* count) {
  *count = comm->n;
  return ncclSuccess;
}
ncclResult_t ncclCommUserRank(const ncclComm_t comm, int* rank) {
  *rank = comm->rank;
  return ncclSuccess;
}
ncclResult_t ncclCommCuDevice(const ncclComm_t, int* device) {
  *device = 0;
  return ncclSuccess;
}
ncclResult_t ncclCommGetAsyncError(ncclComm_t comm, ncclResult_t* state) {
  *state = asyncState(comm, true);
  return ncclSuccess;
}
// Destroy waits for the communicator's collectives to end; abort ends them first.
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  {
    std::lock_guard<std::mutex> lock(comm->mu);
    comm->stop = true;
  }
  comm->wake.notify_one();
  comm->worker.join();
  munmap(comm->shared, segmentBytes(comm->n));
  delete comm;
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  comm->aborted.store(true);
  int none = 0;
  comm->shared->abortedBy.compare_exchange_strong(none, comm->rank + 1);
  return ncclCommDestroy(comm);
}

ncclResult_t ncclGroupStart() {
  ++groupDepth;
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  if (groupDepth > 0 && --groupDepth > 0) return ncclSuccess;
  Pending p = std::move(pending);
  pending = Pending{};
  if (p.comm == nullptr) return ncclSuccess;
  if (p.failed != ncclSuccess) return p.failed;
  if (const ncclResult_t r = injected("ncclGroupEnd", p.comm); r != ncclSuccess) return r;
  enqueue(p.comm, p.stream, [p] { exchange(p.comm, p.sends, p.recvs); });
  return launched(p.comm);
}
ncclResult_t ncclSend(const void* buf, size_t count, ncclDataType_t type, int peer,
                      ncclComm_t comm, cudaStream_t stream) {
  return point(true, buf, count, type, peer, comm, stream);
}
ncclResult_t ncclRecv(void* buf, size_t count, ncclDataType_t type, int peer, ncclComm_t comm,
                      cudaStream_t stream) {
  return point(false, buf, count, type, peer, comm, stream);
}

ncclResult_t ncclAllGather(const void* send, void* recv, size_t count, ncclDataType_t type,
                           ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr || groupDepth > 0) return ncclInvalidArgument;
  if (const ncclResult_t r = injected("ncclAllGather", comm); r != ncclSuccess) return r;
  const size_t bytes = count * typeBytes(type);
  enqueue(comm, stream, [=] {
    char* out = static_cast<char*>(recv);
    std::memmove(out + comm->rank * bytes, send, bytes);  // in place when send is that block
    std::vector<Message> sends, recvs;
    for (int peer = 0; peer < comm->n; ++peer) {
      if (peer == comm->rank) continue;
      sends.push_back({peer, out + comm->rank * bytes, bytes});
      recvs.push_back({peer, out + peer * bytes, bytes});
    }
    exchange(comm, sends, recvs);
  });
  return launched(comm);
}

// Sums float32 in rank order (the benchmark's dense yardstick); other types and operations are
// not emulated.
ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr || groupDepth > 0 || type != ncclFloat32 || op != ncclSum)
    return ncclInvalidArgument;
  if (const ncclResult_t r = injected("ncclAllReduce", comm); r != ncclSuccess) return r;
  enqueue(comm, stream, [=] {
    std::vector<float> all(count * comm->n);
    std::memcpy(&all[count * comm->rank], send, count * 4);
    std::vector<Message> sends, recvs;
    for (int peer = 0; peer < comm->n; ++peer) {
      if (peer == comm->rank) continue;
      sends.push_back({peer, reinterpret_cast<char*>(&all[count * comm->rank]), count * 4});
      recvs.push_back({peer, reinterpret_cast<char*>(&all[count * peer]), count * 4});
    }
    exchange(comm, sends, recvs);
    auto* out = static_cast<float*>(recv);
    for (size_t i = 0; i < count; ++i) {
      float sum = all[i];
      for (int r = 1; r < comm->n; ++r) sum += all[count * r + i];
      out[i] = sum;
    }
  });
  return launched(comm);
}

}  // extern "C"

namespace svemu {

void ncclFailCall(const char* call, int nth, int result) {
  std::lock_guard<std::mutex> lock(injectMu);
  failures.push_back({call, nth, static_cast<ncclResult_t>(result)});
}

void ncclReturnInProgress(int polls) {
  std::lock_guard<std::mutex> lock(injectMu);
  inProgressPolls = polls;
}

void ncclSetAsyncError(int result) {
  std::lock_guard<std::mutex> lock(injectMu);
  injectedAsync = static_cast<ncclResult_t>(result);
}

}  // namespace svemu
