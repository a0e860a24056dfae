// Ranks over NCCL for the process suites (nccl_test.cc, and emu/nccl_fault_test.cc on the
// emulated NCCL): W processes share this machine's one GPU, each made to look like its own host
// (NCCL_HOSTID), so NCCL connects them through its socket transport on lo. The parent never
// touches CUDA (a CUDA context does not survive fork); it learns whether a GPU is there from a
// child.
#pragma once

#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>

#include "gpu.h"
#include "ranks.h"
#include "world.h"

namespace svtest {

inline bool gpuInAChild() {
  const pid_t pid = fork();
  if (pid == 0) _exit(gpuPresent() ? 0 : 1);
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

// This rank's NCCL communicator, made by ncclInit: it lives until the child exits (it must
// outlive the svComm), unless a test aborts it.
inline ncclComm_t& borrowedNccl() {
  static ncclComm_t comm = nullptr;
  return comm;
}

// Rank 0 publishes NCCL's unique id in the store directory; the others wait for it.
inline svResult_t ncclJoin(int rank, int W, const std::string& store, ncclComm_t* nccl,
                           std::string* why) {
  const std::string host = "signvote-test-host-" + std::to_string(rank);
  setenv("NCCL_HOSTID", host.c_str(), 1);
  setenv("NCCL_SOCKET_IFNAME", "lo", 1);
  setenv("NCCL_IB_DISABLE", "1", 1);
  ncclUniqueId id{};
  const std::string path = store + "/nccl-id";
  if (rank == 0) {
    if (ncclGetUniqueId(&id) != ncclSuccess) return *why = "ncclGetUniqueId failed", svSystemError;
    std::ofstream(path + ".tmp", std::ios::binary).write(id.internal, sizeof(id.internal));
    std::rename((path + ".tmp").c_str(), path.c_str());
  } else {
    const int64_t deadline = monotonicNs() + int64_t{60} * 1000000000;
    std::ifstream in;
    while (!(in = std::ifstream(path, std::ios::binary)).is_open()) {
      if (monotonicNs() > deadline) return *why = "no NCCL id from rank 0", svTimeout;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    in.read(id.internal, sizeof(id.internal));
  }
  const ncclResult_t r = ncclCommInitRank(nccl, W, id, rank);
  if (r != ncclSuccess) {
    *why = std::string("ncclCommInitRank: ") + ncclGetErrorString(r);
    return svSystemError;
  }
  return svSuccess;
}

// svCommInitFromNccl on this rank's NCCL communicator (ncclJoin's), its error in *why.
inline svResult_t ncclBorrow(const svConfig_t& config, svComm_t* comm, std::string* why) {
  const svResult_t e = svCommInitFromNccl(comm, borrowedNccl(), &config);
  if (e != svSuccess) *why = svGetLastError(nullptr);
  return e;
}

inline svResult_t ncclInit(int rank, int W, const std::string& store, const svConfig_t& config,
                           svComm_t* comm, std::string* why) {
  if (const svResult_t j = ncclJoin(rank, W, store, &borrowedNccl(), why); j != svSuccess)
    return j;
  return ncclBorrow(config, comm, why);
}

inline svConfig_t ncclConfig(svCheck_t check) {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  c.backend = SV_BACKEND_CUDA;
  c.timeoutMs = 60000;
  c.check = check;
  return c;
}

}  // namespace svtest
