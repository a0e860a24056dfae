// The NCCL calls of lib/transport/nccl.cc, the NCCL process suite and signvote-bench, for the
// emulated device (emu.h): ranks are processes on this machine that meet in a shared-memory
// segment named by the unique id. A collective is stream work that runs at the call, after
// its stream's queued work (or in a graph's replay): each rank writes what it sends into
// (sender, receiver) slots, the ranks meet at a barrier, each reads what it receives, and they
// meet again, in rounds of one slot when messages are longer. Collectives block until every
// rank has come (a missing peer ends the process after two minutes), so what NCCL leaves to
// the stream, a wait that a timeout can end, is not emulated.
#include <fcntl.h>
#include <nccl.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "emu.h"

namespace {

constexpr int kMaxRanks = 16;
constexpr size_t kSlot = size_t{1} << 18;  // bytes per (sender, receiver) slot and round
constexpr size_t kHeader = 4096;

struct Shared {  // the segment's head; the slots follow at kHeader
  std::atomic<uint64_t> arrived, generation;
  std::atomic<uint64_t> rounds[kMaxRanks];
};
static_assert(sizeof(Shared) <= kHeader, "the segment's head fits");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "atomics work across processes");

struct Message {
  int peer;
  char* data;  // const for sends
  size_t bytes;
};

size_t segmentBytes(int n) { return kHeader + size_t(n) * n * kSlot; }

}  // namespace

struct ncclComm {
  Shared* shared;
  char* slots;
  int n, rank;
};

namespace {

void barrier(ncclComm* c) {
  Shared* s = c->shared;
  const uint64_t g = s->generation.load();
  if (s->arrived.fetch_add(1) + 1 == uint64_t(c->n)) {
    s->arrived.store(0);
    s->generation.fetch_add(1);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  while (s->generation.load() == g) {
    if (std::chrono::steady_clock::now() - start > std::chrono::minutes(2)) {
      std::fprintf(stderr, "emulated NCCL: rank %d waited two minutes for its peers\n", c->rank);
      _exit(9);
    }
    sched_yield();
  }
}

char* slot(ncclComm* c, int from, int to) {
  return c->slots + (size_t(from) * c->n + to) * kSlot;
}

// Every rank calls it with its messages to and from the other ranks.
void exchange(ncclComm* c, const std::vector<Message>& sends, const std::vector<Message>& recvs) {
  uint64_t mine = 0;
  for (const auto* list : {&sends, &recvs})
    for (const Message& m : *list) mine = std::max<uint64_t>(mine, (m.bytes + kSlot - 1) / kSlot);
  c->shared->rounds[c->rank].store(mine);
  barrier(c);
  uint64_t rounds = 0;
  for (int r = 0; r < c->n; ++r) rounds = std::max(rounds, c->shared->rounds[r].load());
  barrier(c);  // everyone has read the rounds before they are written again
  for (uint64_t round = 0; round < rounds; ++round) {
    const size_t off = round * kSlot;
    for (const Message& m : sends)
      if (off < m.bytes)
        std::memcpy(slot(c, c->rank, m.peer), m.data + off, std::min(kSlot, m.bytes - off));
    barrier(c);
    for (const Message& m : recvs)
      if (off < m.bytes)
        std::memcpy(m.data + off, slot(c, m.peer, c->rank), std::min(kSlot, m.bytes - off));
    barrier(c);
  }
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
};
thread_local Pending pending;

ncclResult_t point(bool send, const void* buf, size_t count, ncclDataType_t type, int peer,
                   ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr || peer < 0 || peer >= comm->n || (pending.comm && pending.comm != comm))
    return ncclInvalidArgument;
  pending.comm = comm;
  pending.stream = stream;
  const Message m{peer, static_cast<char*>(const_cast<void*>(buf)), count * typeBytes(type)};
  (send ? pending.sends : pending.recvs).push_back(m);
  if (groupDepth == 0) return ncclGroupEnd(), ncclSuccess;  // a lone call is its own group
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
  auto* c = new ncclComm{static_cast<Shared*>(p), static_cast<char*>(p) + kHeader, nranks, rank};
  barrier(c);  // every rank has the segment open: its name can go
  if (rank == 0) shm_unlink(id.internal);
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
ncclResult_t ncclCommGetAsyncError(ncclComm_t, ncclResult_t* state) {
  *state = ncclSuccess;
  return ncclSuccess;
}
ncclResult_t ncclCommDestroy(ncclComm_t comm) {
  if (comm == nullptr) return ncclSuccess;
  munmap(comm->shared, segmentBytes(comm->n));
  delete comm;
  return ncclSuccess;
}
ncclResult_t ncclCommAbort(ncclComm_t comm) { return ncclCommDestroy(comm); }

ncclResult_t ncclGroupStart() {
  ++groupDepth;
  return ncclSuccess;
}
ncclResult_t ncclGroupEnd() {
  if (groupDepth > 0 && --groupDepth > 0) return ncclSuccess;
  Pending p = std::move(pending);
  pending = Pending{};
  if (p.comm == nullptr) return ncclSuccess;
  svemu::submitNow(p.stream, [p] { exchange(p.comm, p.sends, p.recvs); });
  return ncclSuccess;
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
  const size_t bytes = count * typeBytes(type);
  svemu::submitNow(stream, [=] {
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
  return ncclSuccess;
}

// Sums float32 in rank order (the benchmark's dense yardstick); other types and operations are
// not emulated.
ncclResult_t ncclAllReduce(const void* send, void* recv, size_t count, ncclDataType_t type,
                           ncclRedOp_t op, ncclComm_t comm, cudaStream_t stream) {
  if (comm == nullptr || groupDepth > 0 || type != ncclFloat32 || op != ncclSum)
    return ncclInvalidArgument;
  svemu::submitNow(stream, [=] {
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
  return ncclSuccess;
}

}  // extern "C"
