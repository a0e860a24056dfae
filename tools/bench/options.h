// signvote-bench command line (nccl-tests' flags where they exist).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "link_model.h"
#include "signvote/signvote.h"

namespace bench {

// auto: the GPU kernels when a CUDA device is present, else the collective on the host backend.
// wire: every scheme's planned wire bytes on each link, no device and no exchange.
enum class Mode { kAuto, kCollective, kKernels, kWire };
// Collective mode: one process drives a loopback world, or each process one rank over gloo
// (host backend) or NCCL (SV_BACKEND_CUDA, one GPU per process).
enum class Transport { kLoopback, kGloo, kNccl };

struct Options {
  Mode mode = Mode::kAuto;
  svBackend_t backend = SV_BACKEND_HOST;  // collective mode
  Transport transport = Transport::kLoopback;
  std::string store;                      // gloo, nccl: the rendezvous directory
  std::vector<uint64_t> counts;     // kernel and wire modes: bucket element counts
  std::vector<double> densities;    // kernel mode: K / N of the top-K rows
  std::vector<Link> links;          // kernel and wire modes: links of the step model
  uint64_t minBytes = 4096;
  uint64_t maxBytes = 4u << 20;
  double stepFactor = 4;
  int iters = 10;
  int warmup = 2;
  int checkIters = 1;
  int graphLaunches = 0;  // CUDA backend: launches of a graph of the timed iterations (0: none)
  bool split = true;      // collective mode: time the transport calls (svCommGetTimes)
  int ranks = 4;          // collective default; kernel mode uses 8 unless -r was given
  bool ranksGiven = false;
  svScheme_t scheme = SV_SCHEME_S3GD_MV;
  svVote_t vote = SV_VOTE_TERNARY;
  svFormat_t format = SV_FORMAT_AUTO;
  uint64_t k = 0;
  double density = 0.01;
  float rho = 1.0f;
  float momentum = 0.0f;  // dgs: 0.9 unless given
  double downDensity = 0.0;  // dgs: downlink secondary compression
  unsigned period = 0;       // liec: averaging period
  bool adaptive = false;     // s3gd_mv, topk_ef, dgs: adaptive K (Kbar from k / density)
  uint64_t kMin = 1, kBudget = 0;
  unsigned kWindow = 0;
  // Collective mode: the library's opt-in dense fallback (svBucketConfig_t.linkBusBW, kernelUs).
  double fallbackBusBW = 0;  // GB/s (0: off)
  double fallbackKernelUs = 0;
  uint64_t seed = 1;
  std::string json;
};

// Parses argv. Returns 0 to run, 1 after printing help, 2 on a bad command line (message
// printed to stderr).
int parseOptions(int argc, char** argv, Options* out);

// The bucket of o's scheme and settings over `count` elements.
svBucketConfig_t bucketConfig(const Options& o, uint64_t count);

const char* schemeName(svScheme_t s);
const char* formatName(svFormat_t f);
const char* voteName(svVote_t v);

}  // namespace bench
