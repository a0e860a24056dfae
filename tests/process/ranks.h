// W real processes, one rank each of a multi-process world (gloo over TCP on the loopback
// interface, or another transport through an Init). The parent forks them, can signal them,
// and collects what each reports; no child ever returns into GoogleTest (it reports through a
// pipe and _exits), and nothing outlives `join`.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "common.h"
#include "signvote/signvote.h"

namespace svtest {

inline int64_t monotonicNs() {
  timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);  // one clock for every process of the machine
  return int64_t{t.tv_sec} * 1000000000 + t.tv_nsec;
}

// What a child appends to its report: plain bytes, read back in the same order.
struct Report {
  std::string bytes;
  template <class T>
  void put(const T& v) {
    bytes.append(reinterpret_cast<const char*>(&v), sizeof(T));
  }
  void put(const std::string& s) {
    put(static_cast<uint64_t>(s.size()));
    bytes += s;
  }
  void put(const std::vector<float>& v) {
    put(static_cast<uint64_t>(v.size()));
    bytes.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(float));
  }
};

struct Reader {
  const std::string& bytes;
  size_t at = 0;
  template <class T>
  T get() {
    T v{};
    if (at + sizeof(T) <= bytes.size()) std::memcpy(&v, bytes.data() + at, sizeof(T));
    at += sizeof(T);
    return v;
  }
  std::string text() {
    const auto n = get<uint64_t>();
    std::string s = at + n <= bytes.size() ? bytes.substr(at, n) : std::string();
    at += n;
    return s;
  }
};

class Ranks {
 public:
  struct Child {
    int rank;
    svComm_t comm;
    int readyFd;
    // Tells the parent this rank reached its steady state (see waitReady).
    void ready() const {
      const char c = 'R';
      (void)!write(readyFd, &c, 1);
    }
  };
  // The child's work; its return value is the child's report.
  using Body = std::function<std::string(const Child&)>;
  // Creates rank `rank` of a W-rank world whose rendezvous directory is `store`; on failure
  // *why is what the child reports.
  using Init = std::function<svResult_t(int rank, int W, const std::string& store,
                                        const svConfig_t& config, svComm_t* comm,
                                        std::string* why)>;
  struct Result {
    bool exited = false;  // exited normally (with status), not by a signal
    int status = -1;
    int signal = 0;
    std::string report;  // status 0: the body's report; status 3: the init error text
  };

  // Forks W ranks of a world whose rendezvous directory is fresh; each calls init (default
  // svCommInitGloo) with config, runs body, destroys its communicator and reports.
  // edit (optional) changes rank r's config before it connects.
  Ranks(int W, const svConfig_t& config, const Body& body,
        const std::function<void(int, svConfig_t&)>& edit = {}, const Init& init = {})
      : W_(W), init_(init) {
    char dir[] = "/tmp/signvote-gloo-XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    store_ = dir;
    setenv("SIGNVOTE_SOCKET_IFNAME", "lo", 1);
    for (int r = 0; r < W; ++r) {
      int out[2], ready[2];
      EXPECT_EQ(pipe(out), 0);
      EXPECT_EQ(pipe(ready), 0);
      const pid_t pid = fork();
      if (pid == 0) {
        close(out[0]);
        close(ready[0]);
        svConfig_t mine = config;
        if (edit) edit(r, mine);
        runChild(r, mine, body, out[1], ready[1]);
      }
      close(out[1]);
      close(ready[1]);
      pids_.push_back(pid);
      outFds_.push_back(out[0]);
      readyFds_.push_back(ready[0]);
    }
  }
  ~Ranks() { join(0); }

  pid_t pid(int r) const { return pids_[r]; }
  const std::string& store() const { return store_; }

  // Blocks until rank r called ready() (false if it exited first or `seconds` passed).
  bool waitReady(int r, double seconds) {
    pollfd p{readyFds_[r], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(seconds * 1000)) != 1) return false;
    char c;
    return read(readyFds_[r], &c, 1) == 1;
  }

  // Collects every report; ranks still running after `seconds` are SIGKILLed (a hang fails
  // the test instead of hanging it), and so is rank `abandon` once the others are done.
  std::vector<Result> join(double seconds, int abandon = -1) {
    if (joined_) return results_;
    joined_ = true;
    results_.resize(W_);
    const int64_t deadline = monotonicNs() + static_cast<int64_t>(seconds * 1e9);
    std::vector<bool> open(W_, true);
    for (int left = W_ - (abandon >= 0 ? 1 : 0); left > 0;) {
      std::vector<pollfd> fds;
      for (int r = 0; r < W_; ++r)
        if (open[r]) fds.push_back({outFds_[r], POLLIN, 0});
      const int64_t waitMs = (deadline - monotonicNs()) / 1000000;
      if (waitMs <= 0 || poll(fds.data(), fds.size(), static_cast<int>(waitMs)) <= 0) break;
      for (const pollfd& p : fds) {
        if (!(p.revents & (POLLIN | POLLHUP))) continue;
        const int r = static_cast<int>(std::find(outFds_.begin(), outFds_.end(), p.fd) -
                                       outFds_.begin());
        char buf[65536];
        const ssize_t n = read(p.fd, buf, sizeof(buf));
        if (n > 0) {
          results_[r].report.append(buf, n);
        } else {
          open[r] = false;
          if (r != abandon) --left;
        }
      }
    }
    for (int r = 0; r < W_; ++r) {
      kill(pids_[r], SIGKILL);  // no-op for the ranks that exited
      int st = 0;
      waitpid(pids_[r], &st, 0);
      results_[r].exited = WIFEXITED(st) && !open[r];
      results_[r].status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
      results_[r].signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
      close(outFds_[r]);
      close(readyFds_[r]);
    }
    std::string rm = "rm -rf '" + store_ + "'";
    (void)!system(rm.c_str());
    return results_;
  }

 private:
  [[noreturn]] void runChild(int rank, const svConfig_t& config, const Body& body, int outFd,
                             int readyFd) {
    std::string report;
    int status = 0;
    svComm_t comm = nullptr;
    std::string why;
    const svResult_t made =
        init_ ? init_(rank, W_, store_, config, &comm, &why)
              : svCommInitGloo(&comm, W_, rank, store_.c_str(), &config);
    if (made != svSuccess) {
      report = init_ ? why : svGetLastError(nullptr);
      status = 3;
    } else {
      report = body(Child{rank, comm, readyFd});
      svCommDestroy(comm);
    }
    for (size_t at = 0; at < report.size();) {
      const ssize_t n = write(outFd, report.data() + at, report.size() - at);
      if (n <= 0) break;
      at += n;
    }
    _exit(status);
  }

  int W_;
  Init init_;
  std::string store_;
  std::vector<pid_t> pids_;
  std::vector<int> outFds_, readyFds_;
  bool joined_ = false;
  std::vector<Result> results_;
};

}  // namespace svtest
