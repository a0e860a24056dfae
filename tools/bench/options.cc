#include "options.h"

#include <boost/program_options.hpp>
#include <cctype>
#include <cstdlib>
#include <iostream>
#include <stdexcept>

namespace po = boost::program_options;

namespace bench {

namespace {

// "64", "64K", "16M", "1G" (binary multiples, as nccl-tests).
uint64_t parseSize(const std::string& s) {
  if (s.empty() || !std::isdigit(static_cast<unsigned char>(s[0])))
    throw std::invalid_argument("'" + s + "' is not a size");
  size_t pos = 0;
  const unsigned long long v = std::stoull(s, &pos);
  uint64_t mult = 1;
  if (pos < s.size()) {
    switch (std::toupper(static_cast<unsigned char>(s[pos]))) {
      case 'K': mult = 1ull << 10; break;
      case 'M': mult = 1ull << 20; break;
      case 'G': mult = 1ull << 30; break;
      default: throw std::invalid_argument("bad size suffix in '" + s + "'");
    }
    if (pos + 1 != s.size()) throw std::invalid_argument("trailing characters in '" + s + "'");
  }
  return v * mult;
}

std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = s.find(',', start);
    out.push_back(s.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

template <class E>
E pick(const std::string& v, const char* what, std::initializer_list<std::pair<const char*, E>> m) {
  for (const auto& [name, e] : m)
    if (v == name) return e;
  std::string names;
  for (const auto& [name, e] : m) names += std::string(names.empty() ? "" : "|") + name;
  throw std::invalid_argument(std::string("--") + what + " '" + v + "' is not one of " + names);
}

}  // namespace

std::vector<Link> parseLinks(const std::string& list) {
  std::vector<Link> links;
  for (const std::string& e : splitList(list)) {
    if (e == "nvlink8") {
      links.push_back({e, 360e9});
    } else if (e == "ndr") {
      links.push_back({e, 46e9});
    } else if (e == "100gbe") {
      links.push_back({e, 12e9});
    } else {
      size_t used = 0;
      double gbps = 0;
      try {
        gbps = std::stod(e, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used == 0 || e.substr(used) != "gbps" || !(gbps > 0.0))
        throw std::invalid_argument("--links entry '" + e + "' is not nvlink8, ndr, 100gbe or "
                                    "<x>gbps with x > 0");
      links.push_back({e, gbps * 1e9 / 8});
    }
  }
  return links;
}

const char* schemeName(svScheme_t s) {
  switch (s) {
    case SV_SCHEME_DENSE: return "dense";
    case SV_SCHEME_SIGNSGD_MV: return "signsgd_mv";
    case SV_SCHEME_EF_SIGN: return "ef_sign";
    case SV_SCHEME_TOPK_EF: return "topk_ef";
    case SV_SCHEME_DGS: return "dgs";
    case SV_SCHEME_LIEC: return "liec";
    case SV_SCHEME_DGS_ASYNC: return "dgs_async";
    default: return "s3gd_mv";
  }
}
const char* formatName(svFormat_t f) {
  switch (f) {
    case SV_FORMAT_SPARSE: return "sparse";
    case SV_FORMAT_COUNTS: return "counts";
    case SV_FORMAT_SIGNS: return "signs";
    case SV_FORMAT_FP32: return "fp32";
    case SV_FORMAT_SCALED_SIGNS: return "scaled";
    case SV_FORMAT_SPARSE_VALUES: return "values";
    case SV_FORMAT_CHUNK_SIGNS: return "chunks";
    default: return "auto";
  }
}
svBucketConfig_t bucketConfig(const Options& o, uint64_t count) {
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.scheme = o.scheme;
  cfg.vote = o.vote;
  cfg.format = o.format;
  cfg.count = count;
  cfg.k = o.density != 0.0 ? 0 : o.k;
  cfg.density = o.density;
  cfg.rho = o.rho;
  const bool dgs = o.scheme == SV_SCHEME_DGS || o.scheme == SV_SCHEME_DGS_ASYNC;
  const bool momentum = o.scheme == SV_SCHEME_SIGNSGD_MV || o.scheme == SV_SCHEME_TOPK_EF || dgs;
  cfg.momentum = momentum ? o.momentum : 0.0f;
  if (dgs) cfg.downDensity = o.downDensity;
  if (o.scheme == SV_SCHEME_LIEC) cfg.period = o.period;
  cfg.linkBusBW = o.fallbackBusBW;
  cfg.kernelUs = o.fallbackKernelUs;
  if (o.adaptive) {
    cfg.adaptiveK = SV_ADAPTIVE_K_NORM_RATIO;
    cfg.kMin = o.kMin;
    cfg.kBudget = o.kBudget;
    cfg.kWindow = o.kWindow;
  }
  return cfg;
}

const char* voteName(svVote_t v) { return v == SV_VOTE_BINARY ? "binary" : "ternary"; }

int parseOptions(int argc, char** argv, Options* out) {
  Options o;
  std::string minB = "4K", maxB = "4M", scheme = "s3gd_mv", vote = "ternary", format = "auto";
  std::string mode = "auto", counts = "1M,16M", densities = "0.001,0.01,0.1", backend = "host";
  std::string transport = "loopback", links = "nvlink8,ndr,100gbe", fallbackLink;
  po::options_description desc(
      "signvote-bench: time and check signvote exchanges over a range of bucket sizes\n"
      "Options");
  desc.add_options()
      ("help,h", "print this help")
      ("mode", po::value(&mode)->default_value(mode), "auto | collective | kernels | wire (auto: kernels when a CUDA device is present, else the collective on the host backend; wire: every scheme's planned wire bytes per --counts entry and their time on each of --links, no device, no exchange)")
      ("backend", po::value(&backend)->default_value(backend), "collective mode: host | cuda (SV_BACKEND_CUDA, one GPU)")
      ("transport", po::value(&transport)->default_value(transport), "collective mode: loopback (all ranks in this process) | gloo (one rank per process over TCP; host backend) | nccl (one rank per process and GPU over NCCL; CUDA backend, dense column: ncclAllReduce). gloo and nccl ranks are started by mpirun -np N, torchrun, or with SIGNVOTE_RANK and SIGNVOTE_NRANKS set")
      ("store", po::value(&o.store), "gloo, nccl: rendezvous directory every rank can reach, empty or absent, one per run (default: $SIGNVOTE_STORE)")
      ("counts", po::value(&counts)->default_value(counts), "kernel and wire modes: bucket element counts, comma-separated (K/M/G suffixes)")
      ("densities", po::value(&densities)->default_value(densities), "kernel mode: K/N of the top-K rows, comma-separated")
      ("links", po::value(&links)->default_value(links), "kernel and wire modes: links of the step model (kernel mode: after each pipeline row): nvlink8 (~360 GB/s busbw), ndr (~46 GB/s), 100gbe (~12 GB/s), <x>gbps; comma-separated")
      ("minbytes,b", po::value(&minB)->default_value(minB), "smallest bucket in bytes (K/M/G suffixes)")
      ("maxbytes,e", po::value(&maxB)->default_value(maxB), "largest bucket in bytes")
      ("stepfactor,f", po::value(&o.stepFactor)->default_value(o.stepFactor), "multiply the size by this between rows")
      ("iters,n", po::value(&o.iters)->default_value(o.iters), "timed iterations per size")
      ("warmup_iters,w", po::value(&o.warmup)->default_value(o.warmup), "untimed warm-up iterations")
      ("cudagraph,G", po::value(&o.graphLaunches)->default_value(o.graphLaunches), "CUDA backend: capture the timed iterations in a CUDA graph and launch it this many times, as nccl-tests' -G (0: launch directly; over NCCL the per-exchange host check must be off, SIGNVOTE_CHECK unset)")
      ("split", po::value(&o.split)->default_value(o.split), "collective mode: create the communicators with timing on (svConfig_t.timing) and split each exchange's time into comm (inside the transport's calls, svCommGetTimes) and kernel (the rest); 0: time without it (CUDA: no events around the transport calls). Not under --cudagraph, whose replays are not timed")
      ("check,c", po::value(&o.checkIters)->default_value(o.checkIters), "checked iterations (fresh data, compared with a straightforward reference)")
      ("ranks,r", po::value(&o.ranks)->default_value(o.ranks), "ranks of the loopback world (kernel mode: records and sign planes voted on; kernel and wire modes: default 8)")
      ("scheme", po::value(&scheme)->default_value(scheme), "dense | signsgd_mv | s3gd_mv | ef_sign | topk_ef | dgs | liec | dgs_async (host backend)")
      ("momentum", po::value(&o.momentum)->default_value(o.momentum), "signsgd_mv: Signum's beta; topk_ef: DGC's momentum correction; in [0, 1); dgs: SAMomentum in (0, 1), 0.9 when not given")
      ("down-density", po::value(&o.downDensity)->default_value(o.downDensity), "dgs: downlink secondary compression, downK = ceil(x * count); 0: off")
      ("period", po::value(&o.period)->default_value(o.period), "liec: every period-th exchange averages; 0: never")
      ("vote", po::value(&vote)->default_value(vote), "ternary | binary (signsgd_mv)")
      ("format", po::value(&format)->default_value(format), "auto | sparse | counts | signs | fp32 | scaled | values | chunks")
      ("k", po::value(&o.k), "s3gd_mv, topk_ef, dgs: kept coordinates per rank (instead of --density)")
      ("density", po::value(&o.density)->default_value(o.density), "s3gd_mv, topk_ef, dgs: K = ceil(density * count)")
      ("rho", po::value(&o.rho)->default_value(o.rho), "s3gd_mv: residual decay")
      ("adaptive-k", po::bool_switch(&o.adaptive), "s3gd_mv, topk_ef, dgs: adaptive per-step K (SV_ADAPTIVE_K_NORM_RATIO; --k / --density give Kbar; collective mode; the check uses each exchange's K_t)")
      ("kmin", po::value(&o.kMin)->default_value(o.kMin), "adaptive K: the smallest K")
      ("kbudget", po::value(&o.kBudget)->default_value(o.kBudget), "adaptive K: most K summed over a window of --kwindow exchanges (0: no budget)")
      ("kwindow", po::value(&o.kWindow)->default_value(o.kWindow), "adaptive K: exchanges per budget window")
      ("fallback-link", po::value(&fallbackLink), "collective mode: the library's opt-in dense fallback on this link (one --links entry): each bucket whose modeled exchange, --fallback-kernel-us plus its wire bytes at the link's busbw, is not faster than an fp32 ring allreduce's becomes a dense bucket (the row says so; checked against the dense reference)")
      ("fallback-kernel-us", po::value(&o.fallbackKernelUs)->default_value(o.fallbackKernelUs), "with --fallback-link: the per-rank kernel time the compressed exchange spends beyond a dense one (svBucketConfig_t.kernelUs)")
      ("seed", po::value(&o.seed)->default_value(o.seed), "random seed of the gradients")
      ("json,J", po::value(&o.json), "also write the results as JSON to this file");
  try {
    po::variables_map vm;
    po::store(po::parse_command_line(argc, argv, desc), vm);
    if (vm.count("help")) {
      std::cout << desc << "\n";
      return 1;
    }
    po::notify(vm);
    o.minBytes = parseSize(minB);
    o.maxBytes = parseSize(maxB);
    o.scheme = pick<svScheme_t>(scheme, "scheme", {{"dense", SV_SCHEME_DENSE},
                                                   {"signsgd_mv", SV_SCHEME_SIGNSGD_MV},
                                                   {"s3gd_mv", SV_SCHEME_S3GD_MV},
                                                   {"ef_sign", SV_SCHEME_EF_SIGN},
                                                   {"topk_ef", SV_SCHEME_TOPK_EF},
                                                   {"dgs", SV_SCHEME_DGS},
                                                   {"liec", SV_SCHEME_LIEC},
                                                   {"dgs_async", SV_SCHEME_DGS_ASYNC}});
    if ((o.scheme == SV_SCHEME_DGS || o.scheme == SV_SCHEME_DGS_ASYNC) &&
        vm["momentum"].defaulted())
      o.momentum = 0.9f;
    o.vote = pick<svVote_t>(vote, "vote", {{"ternary", SV_VOTE_TERNARY}, {"binary", SV_VOTE_BINARY}});
    o.format = pick<svFormat_t>(format, "format", {{"auto", SV_FORMAT_AUTO}, {"sparse", SV_FORMAT_SPARSE},
                                                   {"counts", SV_FORMAT_COUNTS}, {"signs", SV_FORMAT_SIGNS},
                                                   {"fp32", SV_FORMAT_FP32},
                                                   {"scaled", SV_FORMAT_SCALED_SIGNS},
                                                   {"values", SV_FORMAT_SPARSE_VALUES},
                                                   {"chunks", SV_FORMAT_CHUNK_SIGNS}});
    if (vm.count("k")) o.density = 0.0;
    o.mode = pick<Mode>(mode, "mode", {{"auto", Mode::kAuto}, {"collective", Mode::kCollective},
                                       {"kernels", Mode::kKernels}, {"wire", Mode::kWire}});
    o.backend = pick<svBackend_t>(backend, "backend", {{"host", SV_BACKEND_HOST},
                                                        {"cuda", SV_BACKEND_CUDA}});
    o.transport = pick<Transport>(transport, "transport", {{"loopback", Transport::kLoopback},
                                                              {"gloo", Transport::kGloo},
                                                              {"nccl", Transport::kNccl}});
    if (o.transport != Transport::kLoopback) {
      const std::string t = "--transport " + transport;
      if (o.mode == Mode::kKernels || o.mode == Mode::kWire)
        throw std::invalid_argument(t + " runs the collective (--mode collective)");
      if (o.transport == Transport::kGloo && o.backend != SV_BACKEND_HOST)
        throw std::invalid_argument(t + " moves host memory (--backend host)");
      if (o.transport == Transport::kNccl) {
        if (!vm["backend"].defaulted() && o.backend != SV_BACKEND_CUDA)
          throw std::invalid_argument(t + " moves device memory (--backend cuda)");
        o.backend = SV_BACKEND_CUDA;
      }
      o.mode = Mode::kCollective;
      if (o.store.empty() && std::getenv("SIGNVOTE_STORE")) o.store = std::getenv("SIGNVOTE_STORE");
      if (o.store.empty())
        throw std::invalid_argument(t + " needs --store DIR (or SIGNVOTE_STORE)");
    }
    o.links = parseLinks(links);
    if (!fallbackLink.empty()) {
      std::vector<Link> one;
      try {
        one = parseLinks(fallbackLink);
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(std::string("--fallback-link: ") + e.what());
      }
      if (one.size() != 1)
        throw std::invalid_argument("--fallback-link takes one link, not '" + fallbackLink + "'");
      if (o.mode == Mode::kKernels || o.mode == Mode::kWire)
        throw std::invalid_argument("--fallback-link applies to the collective's buckets "
                                    "(--mode collective)");
      o.mode = Mode::kCollective;
      o.fallbackBusBW = one[0].bytesPerSec / 1e9;
    } else if (!vm["fallback-kernel-us"].defaulted()) {
      throw std::invalid_argument("--fallback-kernel-us needs --fallback-link");
    }
    for (const std::string& c : splitList(counts)) {
      const uint64_t n = parseSize(c);
      if (n == 0 || n > 0xFFFFFFFFull)
        throw std::invalid_argument("--counts entry '" + c + "' is not in [1, 2^32 - 1]");
      o.counts.push_back(n);
    }
    for (const std::string& d : splitList(densities)) {
      size_t used = 0;
      const double v = std::stod(d, &used);
      if (used != d.size() || !(v > 0.0 && v <= 1.0))
        throw std::invalid_argument("--densities entry '" + d + "' is not in (0, 1]");
      o.densities.push_back(v);
    }
    o.ranksGiven = !vm["ranks"].defaulted();
    if (o.ranks < 1 || o.ranks > SV_MAX_RANKS)
      throw std::invalid_argument("--ranks must be in [1, " + std::to_string(SV_MAX_RANKS) + "]");
    if (o.minBytes < 4 || o.maxBytes < o.minBytes)
      throw std::invalid_argument("need 4 <= --minbytes <= --maxbytes");
    if (!(o.stepFactor > 1.0)) throw std::invalid_argument("--stepfactor must be > 1");
    if (o.graphLaunches < 0)
      throw std::invalid_argument("--cudagraph must be >= 0");
    if (o.graphLaunches > 0 && o.backend != SV_BACKEND_CUDA)
      throw std::invalid_argument("--cudagraph captures CUDA streams (--backend cuda or "
                                  "--transport nccl)");
    if (o.graphLaunches > 0) o.split = false;
    if (o.adaptive) {
      if (o.scheme != SV_SCHEME_S3GD_MV && o.scheme != SV_SCHEME_TOPK_EF &&
          o.scheme != SV_SCHEME_DGS)
        throw std::invalid_argument("--adaptive-k is for the top-K schemes (s3gd_mv, topk_ef, "
                                    "dgs)");
      if (o.mode == Mode::kKernels || o.mode == Mode::kWire)
        throw std::invalid_argument("--adaptive-k runs the collective (--mode collective)");
      o.mode = Mode::kCollective;
      if (o.graphLaunches > 0)
        throw std::invalid_argument("--adaptive-k waits on the host for each exchange's norm, "
                                    "which a CUDA graph cannot (--cudagraph 0)");
    }
    if (o.scheme == SV_SCHEME_DGS_ASYNC) {
      // A round of pushes, each worker's once: in rank order on the loopback transport, in
      // arrival order over gloo (the server shares its order for the check).
      if (o.transport == Transport::kNccl || o.backend != SV_BACKEND_HOST ||
          o.mode == Mode::kKernels || o.mode == Mode::kWire || o.adaptive ||
          o.fallbackBusBW != 0.0)
        throw std::invalid_argument("--scheme dgs_async runs the collective mode on the host "
                                    "backend (loopback or gloo), without --adaptive-k or "
                                    "--fallback-link");
      if (o.ranks < 2) throw std::invalid_argument("--scheme dgs_async needs --ranks >= 2");
      o.mode = Mode::kCollective;
    }
    if (o.iters < 1 || o.warmup < 0 || o.checkIters < 0)
      throw std::invalid_argument("need --iters >= 1, --warmup_iters >= 0, --check >= 0");
  } catch (const std::exception& e) {
    std::cerr << "signvote-bench: " << e.what() << "\n" << desc << "\n";
    return 2;
  }
  *out = o;
  return 0;
}

}  // namespace bench
