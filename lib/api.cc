// C entry points for communicators and buckets: validate every argument first, so that a
// failing call has no effect, then act.
#include <strings.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "cuda_backend.h"
#include "error.h"
#include "fpenv.h"
#include "handles.h"
#include "match.h"
#include "transport/timed.h"
#include "transport/transport.h"

using namespace signvote::detail;

namespace {

uint64_t newWorldId() {
  static std::atomic<uint64_t> next{1};
  return next++;
}

// The integer in an enum field of a user's struct, read without assuming it is one of the
// enumerators (loading an out-of-range enum value is undefined behaviour in C++).
template <class E>
int raw(const E& e) {
  int v;
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized here");
  std::memcpy(&v, &e, sizeof(v));
  return v;
}

const char* schemeName(svScheme_t s) {
  switch (s) {
    case SV_SCHEME_DENSE: return "dense";
    case SV_SCHEME_SIGNSGD_MV: return "signsgd_mv";
    case SV_SCHEME_S3GD_MV: return "s3gd_mv";
    case SV_SCHEME_EF_SIGN: return "ef_sign";
    case SV_SCHEME_TOPK_EF: return "topk_ef";
    case SV_SCHEME_DGS: return "dgs";
    case SV_SCHEME_LIEC: return "liec";
    case SV_SCHEME_DGS_ASYNC: return "dgs_async";
    default: return "?";
  }
}

svResult_t checkComm(svComm_t comm, const char* call) {
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument,
                "%s: comm = %p is not a live communicator (NULL, destroyed or never created)",
                call, static_cast<void*>(comm));
  return refuseBroken(comm, call);
}

svResult_t checkBucket(svBucket_t bucket, const char* call) {
  if (!isLiveBucket(bucket))
    return fail(nullptr, svInvalidArgument,
                "%s: bucket = %p is not a live bucket (NULL, destroyed or never created)", call,
                static_cast<void*>(bucket));
  return svSuccess;
}

svResult_t validateConfig(const svConfig_t& c, const char* call) {
  if (c.size != sizeof(svConfig_t))
    return fail(nullptr, svInvalidArgument, "%s: config->size = %zu, expected %zu (start from "
                "SV_CONFIG_INITIALIZER)", call, c.size, sizeof(svConfig_t));
  if (c.magic != SV_CONFIG_MAGIC)
    return fail(nullptr, svInvalidArgument, "%s: config->magic = 0x%08x, expected 0x%08x (start "
                "from SV_CONFIG_INITIALIZER)", call, c.magic, SV_CONFIG_MAGIC);
  if (c.version / 10000 != SIGNVOTE_MAJOR)
    return fail(nullptr, svInvalidArgument, "%s: config->version = %u is from another major "
                "version than this library (%d)", call, c.version, SIGNVOTE_VERSION_CODE);
  if (raw(c.backend) != SV_BACKEND_HOST && raw(c.backend) != SV_BACKEND_CUDA)
    return fail(nullptr, svInvalidArgument, "%s: config->backend = %d (supported: "
                "SV_BACKEND_HOST = 0, SV_BACKEND_CUDA = 1)", call, raw(c.backend));
  std::string why;
  if (c.backend == SV_BACKEND_CUDA && !cudaBackendAvailable(&why))
    return fail(nullptr, svInvalidArgument, "%s: config->backend = SV_BACKEND_CUDA but no CUDA "
                "device is usable (%s)", call, why.c_str());
  if (raw(c.nonFinite) < 0 || raw(c.nonFinite) >= SV_NUM_NONFINITE)
    return fail(nullptr, svInvalidArgument, "%s: config->nonFinite = %d (supported: 0 error, 1 "
                "ignore, 2 propagate)", call, raw(c.nonFinite));
  if (raw(c.check) < 0 || raw(c.check) >= SV_NUM_CHECKS)
    return fail(nullptr, svInvalidArgument, "%s: config->check = %d (supported: 0 default, 1 "
                "none, 2 global)", call, raw(c.check));
  if (raw(c.timing) < 0 || raw(c.timing) >= SV_NUM_TIMINGS)
    return fail(nullptr, svInvalidArgument, "%s: config->timing = %d (supported: 0 default, 1 "
                "off, 2 on)", call, raw(c.timing));
  return svSuccess;
}

// The defaults a config leaves to the environment: SIGNVOTE_TIMEOUT_MS, SIGNVOTE_CHECK,
// SIGNVOTE_TIMING.
svResult_t resolveEnvironment(svConfig_t* c, const char* call) {
  if (c->timeoutMs == 0) {
    const char* v = std::getenv("SIGNVOTE_TIMEOUT_MS");
    c->timeoutMs = 300000;
    if (v != nullptr) {
      char* end = nullptr;
      const unsigned long ms = std::strtoul(v, &end, 10);
      if (*v == '\0' || *end != '\0' || ms == 0 || ms > 0xffffffffu || *v == '-')
        return fail(nullptr, svInvalidArgument, "%s: SIGNVOTE_TIMEOUT_MS = \"%s\" is not a "
                    "number of milliseconds in [1, 4294967295]", call, v);
      c->timeoutMs = static_cast<unsigned>(ms);
    }
  }
  if (c->check == SV_CHECK_DEFAULT) {
    const char* v = std::getenv("SIGNVOTE_CHECK");
    c->check = SV_CHECK_GLOBAL;
    if (v != nullptr && strcasecmp(v, "none") == 0) c->check = SV_CHECK_NONE;
    else if (v != nullptr && strcasecmp(v, "global") != 0)
      return fail(nullptr, svInvalidArgument, "%s: SIGNVOTE_CHECK = \"%s\" (supported: global, "
                  "none)", call, v);
  }
  if (c->timing == SV_TIMING_DEFAULT) {
    const char* v = std::getenv("SIGNVOTE_TIMING");
    c->timing = SV_TIMING_OFF;
    if (v != nullptr && std::strcmp(v, "1") == 0) c->timing = SV_TIMING_ON;
    else if (v != nullptr && std::strcmp(v, "0") != 0)
      return fail(nullptr, svInvalidArgument, "%s: SIGNVOTE_TIMING = \"%s\" (supported: 1, 0)",
                  call, v);
  }
  return svSuccess;
}

// svConfig_t.timing on: puts the world's transport (the device one on SV_BACKEND_CUDA) behind
// the timing decorator. Before the ranks' CUDA state exists, so a failure only has to return.
svResult_t timeWorld(World& w, const svConfig_t& c, const char* call) {
  if (c.timing != SV_TIMING_ON) return svSuccess;
  w.times = std::make_shared<TransportTimes>();
  if (c.backend == SV_BACKEND_CUDA) {
    std::string why;
    w.device = timedDeviceTransport(std::move(w.device), w.times, c.timeoutMs, &why);
    if (w.device == nullptr)
      return fail(nullptr, svUnhandledCudaError, "%s: creating the CUDA events of "
                  "config->timing = SV_TIMING_ON failed (%s); nothing was created", call,
                  why.c_str());
  } else {
    w.transport = timedTransport(std::move(w.transport), w.times);
  }
  return svSuccess;
}

svResult_t validateBucketConfig(svComm_t comm, const svBucketConfig_t& c, uint64_t* k) {
  const char* call = "svBucketCreate";
  if (c.size != sizeof(svBucketConfig_t))
    return fail(comm, svInvalidArgument, "%s: config->size = %zu, expected %zu (start from "
                "SV_BUCKET_CONFIG_INITIALIZER)", call, c.size, sizeof(svBucketConfig_t));
  if (c.magic != SV_BUCKET_CONFIG_MAGIC)
    return fail(comm, svInvalidArgument, "%s: config->magic = 0x%08x, expected 0x%08x", call,
                c.magic, SV_BUCKET_CONFIG_MAGIC);
  if (c.version / 10000 != SIGNVOTE_MAJOR)
    return fail(comm, svInvalidArgument, "%s: config->version = %u is from another major version "
                "than this library (%d)", call, c.version, SIGNVOTE_VERSION_CODE);
  if (raw(c.scheme) < 0 || raw(c.scheme) >= SV_NUM_SCHEMES)
    return fail(comm, svInvalidArgument, "%s: config->scheme = %d (supported: 0 dense, 1 "
                "signsgd_mv, 2 s3gd_mv, 3 ef_sign, 4 topk_ef, 5 dgs, 6 liec, 7 dgs_async)", call,
                raw(c.scheme));
  const bool dgs = c.scheme == SV_SCHEME_DGS || c.scheme == SV_SCHEME_DGS_ASYNC;
  if (c.scheme == SV_SCHEME_DGS_ASYNC) {
    if (comm->nranks < 2)
      return fail(comm, svInvalidArgument, "%s: config->scheme = dgs_async needs a server and a "
                  "worker, but comm has nranks = %d", call, comm->nranks);
    if (comm->config.backend != SV_BACKEND_HOST)
      return fail(comm, svInvalidArgument, "%s: config->scheme = dgs_async runs on the host "
                  "backend only (comm's backend is %d)", call, raw(comm->config.backend));
    if (raw(c.adaptiveK) != SV_ADAPTIVE_K_NONE || c.linkBusBW != 0.0)
      return fail(comm, svInvalidArgument, "%s: config->scheme = dgs_async takes neither "
                  "adaptiveK (%d) nor linkBusBW (%g)", call, raw(c.adaptiveK), c.linkBusBW);
  }
  if (raw(c.datatype) != svFloat32)
    return fail(comm, svInvalidArgument, "%s: config->datatype = %d is not supported (supported: "
                "svFloat32 = 0)", call, raw(c.datatype));
  if (c.count > SV_MAX_COUNT)
    return fail(comm, svInvalidArgument, "%s: config->count = %zu exceeds SV_MAX_COUNT = %llu "
                "(indices are 32-bit; split the bucket)", call, c.count, SV_MAX_COUNT);
  if (raw(c.vote) < 0 || raw(c.vote) >= SV_NUM_VOTES)
    return fail(comm, svInvalidArgument, "%s: config->vote = %d (supported: 0 ternary, 1 binary)",
                call, raw(c.vote));
  if (c.vote == SV_VOTE_BINARY && c.scheme == SV_SCHEME_S3GD_MV)
    return fail(comm, svInvalidArgument, "%s: config->vote = SV_VOTE_BINARY with scheme s3gd_mv "
                "(a sparse vote is ternary: unselected coordinates must stay 0)", call);
  if (raw(c.format) < 0 || raw(c.format) >= SV_NUM_FORMATS)
    return fail(comm, svInvalidArgument, "%s: config->format = %d is not a format", call,
                raw(c.format));
  const bool formatOk =
      c.format == SV_FORMAT_AUTO ||
      (c.scheme == SV_SCHEME_S3GD_MV &&
       (c.format == SV_FORMAT_SPARSE || c.format == SV_FORMAT_COUNTS ||
        c.format == SV_FORMAT_SIGNS)) ||
      (c.scheme == SV_SCHEME_SIGNSGD_MV && c.format == SV_FORMAT_SIGNS) ||
      (c.scheme == SV_SCHEME_DENSE && c.format == SV_FORMAT_FP32) ||
      (c.scheme == SV_SCHEME_EF_SIGN && c.format == SV_FORMAT_SCALED_SIGNS) ||
      ((c.scheme == SV_SCHEME_TOPK_EF || dgs) && c.format == SV_FORMAT_SPARSE_VALUES) ||
      (c.scheme == SV_SCHEME_LIEC &&
       (c.format == SV_FORMAT_CHUNK_SIGNS || c.format == SV_FORMAT_FP32));
  if (!formatOk)
    return fail(comm, svInvalidArgument, "%s: config->format = %d cannot carry scheme %s "
                "(s3gd_mv: sparse 1, counts 2 or signs 3; signsgd_mv: signs 3; dense: fp32 4; "
                "ef_sign: scaled signs 5; topk_ef, dgs, dgs_async: sparse values 6; liec: chunk "
                "signs 7 or fp32 4)",
                call, static_cast<int>(c.format), schemeName(c.scheme));
  if (c.scheme == SV_SCHEME_SIGNSGD_MV || c.scheme == SV_SCHEME_TOPK_EF) {
    if (!(c.momentum >= 0.0f && c.momentum < 1.0f))  // also rejects NaN
      return fail(comm, svInvalidArgument, "%s: config->momentum = %g is outside [0, 1)", call,
                  static_cast<double>(c.momentum));
  } else if (dgs) {
    if (!(c.momentum > 0.0f && c.momentum < 1.0f))
      return fail(comm, svInvalidArgument, "%s: config->momentum = %g is outside (0, 1) (dgs "
                  "divides the unsent momentum by it)", call, static_cast<double>(c.momentum));
  } else if (c.momentum != 0.0f) {
    return fail(comm, svInvalidArgument, "%s: config->momentum = %g with scheme %s (momentum is "
                "for signsgd_mv, topk_ef and dgs)", call, static_cast<double>(c.momentum),
                schemeName(c.scheme));
  }
  if (dgs) {
    uint64_t downK = 0;
    if (c.downDensity != 0.0 && c.downK != 0)
      return fail(comm, svInvalidArgument, "%s: config->downK = %zu and config->downDensity = %g "
                  "are both set; set one", call, c.downK, c.downDensity);
    if (!resolveDownK(c, &downK))
      return fail(comm, svInvalidArgument, "%s: config->downDensity = %g is outside (0, 1]",
                  call, c.downDensity);
    if (downK > c.count)
      return fail(comm, svInvalidArgument, "%s: config->downK = %zu exceeds config->count = %zu",
                  call, c.downK, c.count);
  } else if (c.downK != 0 || c.downDensity != 0.0) {
    return fail(comm, svInvalidArgument, "%s: config->downK = %zu, downDensity = %g with scheme "
                "%s (downlink compression is for dgs and dgs_async)", call, c.downK, c.downDensity,
                schemeName(c.scheme));
  }
  if (c.period != 0 && c.scheme != SV_SCHEME_LIEC)
    return fail(comm, svInvalidArgument, "%s: config->period = %u with scheme %s (the averaging "
                "period is for liec)", call, c.period, schemeName(c.scheme));
  if (!(std::isfinite(c.linkBusBW) && c.linkBusBW >= 0.0))
    return fail(comm, svInvalidArgument, "%s: config->linkBusBW = %g is not a finite bandwidth "
                ">= 0 (GB/s; 0: no dense fallback)", call, c.linkBusBW);
  if (!(std::isfinite(c.kernelUs) && c.kernelUs >= 0.0))
    return fail(comm, svInvalidArgument, "%s: config->kernelUs = %g is not a finite time >= 0 "
                "(microseconds)", call, c.kernelUs);
  if (c.kernelUs != 0.0 && c.linkBusBW == 0.0)
    return fail(comm, svInvalidArgument, "%s: config->kernelUs = %g is set without "
                "config->linkBusBW (the dense fallback's link)", call, c.kernelUs);
  if (raw(c.adaptiveK) < 0 || raw(c.adaptiveK) >= SV_NUM_ADAPTIVE_K)
    return fail(comm, svInvalidArgument, "%s: config->adaptiveK = %d (supported: 0 none, 1 "
                "norm ratio)", call, raw(c.adaptiveK));
  if (c.adaptiveK == SV_ADAPTIVE_K_NONE) {
    if (c.kMin != 0 || c.kBudget != 0 || c.kWindow != 0)
      return fail(comm, svInvalidArgument, "%s: config->kMin = %zu, kBudget = %zu, kWindow = %u "
                  "are set without config->adaptiveK", call, c.kMin, c.kBudget, c.kWindow);
  } else {
    if (c.scheme != SV_SCHEME_S3GD_MV && c.scheme != SV_SCHEME_TOPK_EF &&
        c.scheme != SV_SCHEME_DGS)
      return fail(comm, svInvalidArgument, "%s: config->adaptiveK with scheme %s (top-K schemes "
                  "only: s3gd_mv, topk_ef, dgs)", call, schemeName(c.scheme));
    if (c.kMin < 1 || c.kMin > c.count)
      return fail(comm, svInvalidArgument, "%s: config->kMin = %zu is outside [1, count = %zu]",
                  call, c.kMin, c.count);
    if (c.kBudget != 0 && (c.kWindow < 1 || c.kBudget / c.kWindow < c.kMin))
      return fail(comm, svInvalidArgument, "%s: config->kBudget = %zu cannot give kMin = %zu to "
                  "each of kWindow = %u exchanges", call, c.kBudget, c.kMin, c.kWindow);
    if (c.kBudget == 0 && c.kWindow != 0)
      return fail(comm, svInvalidArgument, "%s: config->kWindow = %u without config->kBudget",
                  call, c.kWindow);
  }
  *k = c.count;
  if (c.scheme == SV_SCHEME_S3GD_MV || c.scheme == SV_SCHEME_TOPK_EF || dgs) {
    if (c.density != 0.0 && c.k != 0)
      return fail(comm, svInvalidArgument, "%s: config->k = %zu and config->density = %g are both "
                  "set; set one", call, c.k, c.density);
    if (!resolveK(c, k))
      return fail(comm, svInvalidArgument, "%s: config->density = %g is outside (0, 1]", call,
                  c.density);
    if (*k > c.count)
      return fail(comm, svInvalidArgument, "%s: config->k = %zu exceeds config->count = %zu (K > "
                  "N is an error, never clamped)", call, c.k, c.count);
    if (!std::isfinite(c.rho))
      return fail(comm, svInvalidArgument, "%s: config->rho = %g is not finite", call,
                  static_cast<double>(c.rho));
  }
  return svSuccess;
}

// The creation handshake (match.h) of a multi-process world: `gather` allgathers every rank's
// Handshake (it returns the transport's code and fills *err on failure).
template <class Gather>
svResult_t handshake(const char* call, Gather gather, const svConfig_t& c, int rank, int nranks) {
  const Handshake mine = handshakeOf(c);
  std::vector<Handshake> all(static_cast<size_t>(nranks));
  std::string err;
  const svResult_t r = gather(&mine, all.data(), sizeof(Handshake), &err);
  if (r != svSuccess)
    return fail(nullptr, r == svUnhandledCudaError || r == svTimeout ? r : svRemoteError,
                "%s: rank %d: the creation handshake failed (%s); nothing was created", call,
                rank, err.c_str());
  int field = 0;
  const int s = handshakeMismatch(all.data(), nranks, &field);
  if (s >= 0)
    return fail(nullptr, svMismatch, "%s: rank %d differs from rank 0 in %s (%llu vs %llu); "
                "nothing was created", call, s, handshakeFieldName(field),
                static_cast<unsigned long long>(all[s].v[field]),
                static_cast<unsigned long long>(all[0].v[field]));
  return svSuccess;
}

// A new world of nranks ranks, those in `local` driven by this process (none created yet).
std::shared_ptr<World> newWorld(int nranks, std::vector<int> local, const svConfig_t& cfg) {
  auto world = std::make_shared<World>();
  world->id = newWorldId();
  world->nranks = nranks;
  world->local = std::move(local);
  world->ranks.assign(nranks, nullptr);
  // Multi-process worlds check calls by fingerprints; a loopback world sees them all anyway.
  world->checkCalls = world->local.size() < static_cast<size_t>(nranks) &&
                      cfg.check == SV_CHECK_GLOBAL;
  return world;
}

// Rank r of world (not yet registered).
std::unique_ptr<svComm> newRank(const std::shared_ptr<World>& world, int r,
                                const svConfig_t& cfg) {
  auto c = std::make_unique<svComm>();
  c->rank = r;
  c->nranks = world->nranks;
  c->config = cfg;
  c->world = world;
  world->ranks[r] = c.get();
  return c;
}

}  // namespace

extern "C" svResult_t svGetVersion(int* version) {
  if (version == nullptr) return fail(nullptr, svInvalidArgument, "svGetVersion: version = NULL");
  *version = SIGNVOTE_VERSION_CODE;
  return svSuccess;
}

extern "C" svResult_t svCommInitLoopback(svComm_t* comms, int nranks, const svConfig_t* config) {
  if (comms == nullptr)
    return fail(nullptr, svInvalidArgument, "svCommInitLoopback: comms = NULL");
  if (nranks < 1 || nranks > SV_MAX_RANKS)
    return fail(nullptr, svInvalidArgument, "svCommInitLoopback: nranks = %d is outside [1, %d]",
                nranks, SV_MAX_RANKS);
  const svConfig_t defaults = SV_CONFIG_INITIALIZER;
  svConfig_t cfg = config ? *config : defaults;
  SVCHECK(validateConfig(cfg, "svCommInitLoopback"));
  SVCHECK(resolveEnvironment(&cfg, "svCommInitLoopback"));
  try {
    std::vector<int> all(nranks);
    for (int r = 0; r < nranks; ++r) all[r] = r;
    const std::shared_ptr<World> world = newWorld(nranks, all, cfg);
    world->transport = std::make_unique<LoopbackHostTransport>(nranks);
    std::vector<std::unique_ptr<svComm>> made;
    for (int r = 0; r < nranks; ++r) made.push_back(newRank(world, r, cfg));
    if (cfg.backend == SV_BACKEND_CUDA) world->device = makeLoopbackCudaTransport();
    SVCHECK(timeWorld(*world, cfg, "svCommInitLoopback"));
    if (cfg.backend == SV_BACKEND_CUDA) {
      for (int r = 0; r < nranks; ++r) {
        const svResult_t e = cudaInitComm(made[r].get());
        if (e != svSuccess) {
          for (auto& c : made) cudaDestroyComm(c.get());
          return fail(nullptr, e, "svCommInitLoopback: creating the CUDA event and status word "
                      "of rank %d failed; nothing was created", r);
        }
      }
    }
    try {
      registerComms(world->ranks);
    } catch (const std::bad_alloc&) {
      for (auto& c : made) cudaDestroyComm(c.get());
      throw;
    }
    for (int r = 0; r < nranks; ++r) comms[r] = made[r].release();
  } catch (const std::bad_alloc&) {
    return fail(nullptr, svSystemError, "svCommInitLoopback: out of host memory (nranks = %d); "
                "nothing was created", nranks);
  }
  return svSuccess;
}

extern "C" svResult_t svCommInitGloo(svComm_t* comm, int nranks, int rank, const char* store,
                                     const svConfig_t* config) {
  const char* call = "svCommInitGloo";
  if (comm == nullptr) return fail(nullptr, svInvalidArgument, "%s: comm = NULL", call);
  if (nranks < 1 || nranks > SV_MAX_RANKS)
    return fail(nullptr, svInvalidArgument, "%s: nranks = %d is outside [1, %d]", call, nranks,
                SV_MAX_RANKS);
  if (rank < 0 || rank >= nranks)
    return fail(nullptr, svInvalidArgument, "%s: rank = %d is outside [0, nranks = %d)", call,
                rank, nranks);
  if (store == nullptr || *store == '\0')
    return fail(nullptr, svInvalidArgument, "%s: store = %s (a rendezvous directory every rank "
                "can reach)", call, store ? "\"\"" : "NULL");
  const svConfig_t defaults = SV_CONFIG_INITIALIZER;
  svConfig_t cfg = config ? *config : defaults;
  SVCHECK(validateConfig(cfg, call));
  if (cfg.backend != SV_BACKEND_HOST)
    return fail(nullptr, svInvalidArgument, "%s: config->backend = %d; the gloo transport "
                "moves host memory only (SV_BACKEND_HOST = 0)", call, raw(cfg.backend));
  SVCHECK(resolveEnvironment(&cfg, call));
  try {
    GlooOptions o;
    o.nranks = nranks;
    o.rank = rank;
    o.store = store;
    if (const char* ifname = std::getenv("SIGNVOTE_SOCKET_IFNAME")) o.ifname = ifname;
    o.timeoutMs = cfg.timeoutMs;
    svResult_t code = svSuccess;
    std::string why;
    std::unique_ptr<Transport> transport = makeGlooTransport(o, &code, &why);
    if (transport == nullptr)
      return fail(nullptr, code, "%s: rank %d of %d could not connect to its peers through store "
                  "\"%s\" within config->timeoutMs = %u: %s; nothing was created", call, rank,
                  nranks, store, cfg.timeoutMs, why.c_str());
    Transport& t = *transport;
    SVCHECK(handshake(call, [&t](const void* mine, void* all, size_t bytes, std::string* err) {
      const svResult_t r = t.allGather({mine}, {all}, bytes);
      *err = t.error();
      return r;
    }, cfg, rank, nranks));
    std::unique_ptr<svComm> c = newRank(newWorld(nranks, {rank}, cfg), rank, cfg);
    c->world->closeConnections = transport->closer();
    c->world->transport = std::move(transport);
    SVCHECK(timeWorld(*c->world, cfg, call));
    registerComms(c->world->ranks);
    *comm = c.release();
  } catch (const std::bad_alloc&) {
    return fail(nullptr, svSystemError, "%s: out of host memory (nranks = %d); nothing was "
                "created", call, nranks);
  }
  return svSuccess;
}

extern "C" svResult_t svCommInitFromNccl(svComm_t* comm, struct ncclComm* nccl,
                                         const svConfig_t* config) {
  const char* call = "svCommInitFromNccl";
  if (comm == nullptr) return fail(nullptr, svInvalidArgument, "%s: comm = NULL", call);
  if (nccl == nullptr)
    return fail(nullptr, svInvalidArgument, "%s: nccl = NULL (pass this rank's ncclComm_t)",
                call);
  svConfig_t cfg = SV_CONFIG_INITIALIZER;
  cfg.backend = SV_BACKEND_CUDA;
  if (config != nullptr) cfg = *config;
  SVCHECK(validateConfig(cfg, call));
  if (cfg.backend != SV_BACKEND_CUDA)
    return fail(nullptr, svInvalidArgument, "%s: config->backend = %d; NCCL moves device memory "
                "only (SV_BACKEND_CUDA = 1)", call, raw(cfg.backend));
  SVCHECK(resolveEnvironment(&cfg, call));
  int nranks = 0, rank = 0, device = -1, current = -1;
  std::string why;
  if (ncclCommFacts(nccl, &nranks, &rank, &device, &why) != svSuccess)
    return fail(nullptr, svInvalidArgument, "%s: nccl = %p: NCCL cannot report its size, rank "
                "and device (%s); nothing was created", call, static_cast<void*>(nccl),
                why.c_str());
  if (nranks < 1 || nranks > SV_MAX_RANKS)
    return fail(nullptr, svInvalidArgument, "%s: nccl has %d ranks, outside [1, %d]", call,
                nranks, SV_MAX_RANKS);
  if (cudaGetDevice(&current) != cudaSuccess || current != device)
    return fail(nullptr, svInvalidUsage, "%s: the current CUDA device is %d but nccl's is %d; "
                "call cudaSetDevice(%d) first", call, current, device, device);
  try {
    svResult_t code = svSuccess;
    std::unique_ptr<DeviceTransport> transport = makeNcclTransport(
        nccl, rank, nranks, std::max(sizeof(Handshake), sizeof(Fingerprint)), cfg.timeoutMs,
        &code, &why);
    if (transport == nullptr)
      return fail(nullptr, code, "%s: rank %d: %s; nothing was created", call, rank,
                  why.c_str());
    DeviceTransport& t = *transport;
    // The handshake runs on the legacy default stream, which waits for the caller's work.
    SVCHECK(handshake(call, [&t](const void* mine, void* all, size_t bytes, std::string* err) {
      const svResult_t r = t.hostAllGather(nullptr, mine, all, bytes);
      *err = t.error();
      return r;
    }, cfg, rank, nranks));
    std::unique_ptr<svComm> c = newRank(newWorld(nranks, {rank}, cfg), rank, cfg);
    c->world->device = std::move(transport);
    SVCHECK(timeWorld(*c->world, cfg, call));
    const svResult_t e = cudaInitComm(c.get());
    if (e != svSuccess)
      return fail(nullptr, e, "%s: creating the CUDA event and status word of rank %d failed; "
                  "nothing was created", call, rank);
    try {
      registerComms(c->world->ranks);
    } catch (const std::bad_alloc&) {
      cudaDestroyComm(c.get());
      throw;
    }
    *comm = c.release();
  } catch (const std::bad_alloc&) {
    return fail(nullptr, svSystemError, "%s: out of host memory (nranks = %d); nothing was "
                "created", call, nranks);
  }
  return svSuccess;
}

extern "C" svResult_t svCommDestroy(svComm_t comm) {
  if (comm == nullptr) return svSuccess;
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument, "svCommDestroy: comm = %p is not a live communicator",
                static_cast<void*>(comm));
  if (comm->liveBuckets != 0)
    return fail(comm, svInvalidUsage, "svCommDestroy: comm (rank %d) still has %d live buckets; "
                "destroy them first", comm->rank, comm->liveBuckets);
  unregisterComm(comm);
  cudaDestroyComm(comm);
  comm->world->ranks[comm->rank] = nullptr;
  delete comm;
  return svSuccess;
}

extern "C" svResult_t svCommUserRank(svComm_t comm, int* rank) {
  SVCHECK(checkComm(comm, "svCommUserRank"));
  if (rank == nullptr) return fail(comm, svInvalidArgument, "svCommUserRank: rank = NULL");
  *rank = comm->rank;
  return svSuccess;
}

extern "C" svResult_t svCommCount(svComm_t comm, int* nranks) {
  SVCHECK(checkComm(comm, "svCommCount"));
  if (nranks == nullptr) return fail(comm, svInvalidArgument, "svCommCount: nranks = NULL");
  *nranks = comm->nranks;
  return svSuccess;
}

extern "C" svResult_t svCommGetSequence(svComm_t comm, uint64_t* seq) {
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument, "svCommGetSequence: comm = %p is not a live "
                "communicator", static_cast<void*>(comm));
  if (seq == nullptr) return fail(comm, svInvalidArgument, "svCommGetSequence: seq = NULL");
  *seq = comm->seq;
  return svSuccess;
}

extern "C" svResult_t svCommGetAsyncError(svComm_t comm, svResult_t* asyncError) {
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument, "svCommGetAsyncError: comm = %p is not a live "
                "communicator", static_cast<void*>(comm));
  if (asyncError == nullptr)
    return fail(comm, svInvalidArgument, "svCommGetAsyncError: asyncError = NULL");
  ErrorText broken;
  svResult_t code = comm->broken.get(&broken);
  const char* source = broken.c_str();
  std::string nccl;
  if (code == svSuccess && (code = cudaStickyError(comm)) != svSuccess)
    source = "the device rejected an exchange (the communicator's first such failure; every "
             "later exchange of it had no effect)";
  if (code == svSuccess && comm->world->device != nullptr &&
      (code = comm->world->device->asyncError(&nccl)) != svSuccess)
    source = nccl.c_str();
  *asyncError = code;
  if (code != svSuccess) {  // the call succeeded; its last error names what it reports
    char text[1024];
    std::snprintf(text, sizeof(text), "svCommGetAsyncError: %.900s [%s]", source,
                  svGetErrorString(code));
    setLastError(comm, text);
  }
  return svSuccess;
}

extern "C" svResult_t svCommGetTimes(svComm_t comm, svCommTimes_t* times) {
  const char* call = "svCommGetTimes";
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument, "%s: comm = %p is not a live communicator", call,
                static_cast<void*>(comm));
  if (times == nullptr) return fail(comm, svInvalidArgument, "%s: times = NULL", call);
  World& w = *comm->world;
  if (w.times == nullptr)
    return fail(comm, svInvalidUsage, "%s: comm (rank %d) was created with timing off "
                "(config->timing = SV_TIMING_ON or SIGNVOTE_TIMING=1 turns it on)", call,
                comm->rank);
  CommClaim claim;
  SVCHECK(claimComm(comm, call, &claim));
  if (w.device != nullptr) {
    const svResult_t r = w.device->settleTimes();
    if (r != svSuccess) {
      char text[1024];
      std::snprintf(text, sizeof(text), "%s: waiting for the timed transport calls failed: "
                    "%.900s", call, w.device->error().c_str());
      comm->broken.set(r, text);
      return fail(comm, r, "%s", text);
    }
  }
  times->calls = w.times->calls;
  times->transportUs = w.times->us;
  return svSuccess;
}

extern "C" svResult_t svCommAbort(svComm_t comm) {
  if (!isLiveComm(comm))
    return fail(nullptr, svInvalidArgument, "svCommAbort: comm = %p is not a live communicator",
                static_cast<void*>(comm));
  char text[64];
  std::snprintf(text, sizeof(text), "aborted by rank %d (svCommAbort)", comm->rank);
  for (svComm_t peer : comm->world->ranks)
    if (peer != nullptr) peer->broken.set(svRemoteError, text);
  comm->broken.abort(text);
  // Closing a gloo world's connections makes peers waiting on this rank fail at once, also
  // while another thread's exchange uses the transport (whose waits then fail at once too).
  // The communicator is never held here, and the transport goes with the world.
  if (comm->world->closeConnections) {
    try {
      comm->world->closeConnections();
    } catch (const std::exception&) {  // closing is best effort; the world is broken anyway
    }
  }
  return svSuccess;
}

extern "C" svResult_t svBucketCreate(svBucket_t* bucket, svComm_t comm,
                                     const svBucketConfig_t* config) {
  const FpEnvGuard fp;  // K from a density and the link model: the same on every rank
  SVCHECK(checkComm(comm, "svBucketCreate"));
  if (bucket == nullptr) return fail(comm, svInvalidArgument, "svBucketCreate: bucket = NULL");
  if (config == nullptr) return fail(comm, svInvalidArgument, "svBucketCreate: config = NULL");
  uint64_t k = 0;
  SVCHECK(validateBucketConfig(comm, *config, &k));
  const bool cuda = comm->config.backend == SV_BACKEND_CUDA;
  if (cuda) SVCHECK(cudaCheckCurrentDevice(comm, "svBucketCreate"));  // the state's device
  std::unique_ptr<svBucket> b;
  try {
    b = std::make_unique<svBucket>();
    b->comm = comm;
    b->config = *config;
    if (config->linkBusBW > 0.0) {  // wire bytes need no CUDA scratch
      b->link = modelLink(makePlan(*config, k, comm->nranks), *config);
      b->denseFallback = config->scheme != SV_SCHEME_DENSE && b->link.denseWins();
      if (b->denseFallback) {
        b->config = denseFallbackOf(*config);
        k = b->config.count;
      }
    }
    const svBucketConfig_t& c = b->config;
    const ScratchFn scratchFor = scratchFnOf(comm);
    if (!planWith(c, k, comm->nranks, scratchFor, &b->plan) ||
        (c.adaptiveK != SV_ADAPTIVE_K_NONE &&
         !adaptiveWorkspaceBytes(b->plan, c, scratchFor, &b->plan.ws.total)))
      return fail(comm, svUnhandledCudaError, "svBucketCreate: sizing the CUDA kernels' "
                  "workspace failed (config->count = %zu)", config->count);
    b->lastK = b->plan.selects ? k : c.count;
    if (c.scheme == SV_SCHEME_DGS_ASYNC) {
      // The server keeps T and each worker's v_k; its pushes are told apart per bucket.
      if (comm->rank == 0) {
        b->plan.stateFloats = c.count * comm->nranks;
        b->served.assign(comm->nranks, 0);
      }
      b->lastPeer = comm->rank == 0 ? -1 : 0;
      b->asyncSlot = comm->world->asyncBuckets++;
    }
    b->lastRecordBytes = b->plan.recordBytes;
    b->lastWireBytes = b->plan.wireBytes;
    if (cuda) {
      std::string why;
      if (const svResult_t r = b->plan.stateful ? cudaCreateResidual(b.get(), &why) : svSuccess;
          r != svSuccess)
        return fail(comm, r, "svBucketCreate: allocating the state (%llu floats) on device %d "
                    "failed: %.400s; nothing was created",
                    static_cast<unsigned long long>(b->plan.stateFloats), comm->device,
                    why.c_str());
    } else if (b->plan.stateful) {
      // liec's error starts at -0.0, the float32 additive identity (see SV_SCHEME_LIEC).
      b->residual.assign(b->plan.stateFloats,
                         b->plan.format == SV_FORMAT_CHUNK_SIGNS ? -0.0f : 0.0f);
    }
    registerBucket(b.get());
  } catch (const std::bad_alloc&) {
    if (b) cudaDestroyResidual(b.get());
    return fail(comm, svSystemError, "svBucketCreate: out of host memory (config->count = %zu); "
                "nothing was created", config->count);
  }
  *bucket = b.release();
  ++comm->liveBuckets;
  return svSuccess;
}

extern "C" svResult_t svBucketDestroy(svBucket_t bucket) {
  if (bucket == nullptr) return svSuccess;
  SVCHECK(checkBucket(bucket, "svBucketDestroy"));
  CommClaim claim;
  SVCHECK(claimBucket(bucket, "svBucketDestroy", true, &claim));
  unregisterBucket(bucket);
  cudaDestroyResidual(bucket);
  --bucket->comm->liveBuckets;
  delete bucket;
  return svSuccess;
}

extern "C" svResult_t svBucketGetInfo(svBucket_t bucket, svBucketInfo_t* info) {
  SVCHECK(checkBucket(bucket, "svBucketGetInfo"));
  if (info == nullptr)
    return fail(bucket->comm, svInvalidArgument, "svBucketGetInfo: info = NULL");
  const Plan& p = bucket->plan;
  svBucketInfo_t i{};
  i.k = p.selects ? p.k : p.n;
  i.format = p.format;
  i.recordBytes = p.recordBytes;
  i.wireBytes = p.wireBytes;
  i.denseWireBytes = p.denseWireBytes;
  i.bitsPerKept = ((p.format == SV_FORMAT_SPARSE || p.format == SV_FORMAT_SPARSE_VALUES) &&
                   p.k != 0)
                      ? 8.0 * static_cast<double>(i.recordBytes) / static_cast<double>(p.k)
                      : 0.0;
  i.workspaceBytes = workspaceBytesFor(p);
  i.stateFloats = p.stateFloats;
  i.downK = p.downK;
  i.chunk = p.chunk;
  i.scheme = bucket->config.scheme;
  i.denseFallback = bucket->denseFallback;
  i.modeledUs = bucket->link.us;
  i.modeledDenseUs = bucket->link.denseUs;
  {
    std::lock_guard<std::mutex> g(bucket->progress);
    i.lastK = bucket->lastK;
    i.lastRecordBytes = bucket->lastRecordBytes;
    i.lastWireBytes = bucket->lastWireBytes;
    i.averageNext = averagesNext(p, bucket->config, bucket->exchanges);
    i.lastPeer = bucket->lastPeer;
  }
  *info = i;
  return svSuccess;
}

namespace {
svResult_t residualAccess(svBucket_t bucket, const void* ptr, const char* call,
                          const char* field, bool writes, CommClaim* claim) {
  SVCHECK(checkBucket(bucket, call));
  // Reading is allowed while this thread's group has the bucket queued; writing is not.
  SVCHECK(claimBucket(bucket, call, writes, claim));
  if (!bucket->plan.stateful)
    return fail(bucket->comm, svInvalidUsage, "%s: scheme %s%s keeps no state", call,
                schemeName(bucket->config.scheme),
                bucket->denseFallback ? " (the link model's dense fallback)"
                : bucket->config.scheme == SV_SCHEME_SIGNSGD_MV ? " without momentum" : "");
  if (ptr == nullptr && bucket->config.count > 0)
    return fail(bucket->comm, svInvalidArgument, "%s: %s = NULL with count = %zu", call, field,
                bucket->config.count);
  return svSuccess;
}
}  // namespace

extern "C" svResult_t svBucketGetResidual(svBucket_t bucket, void* dst) {
  CommClaim claim;
  SVCHECK(residualAccess(bucket, dst, "svBucketGetResidual", "dst", false, &claim));
  if (bucket->comm->config.backend == SV_BACKEND_CUDA) {
    if (cudaCopyResidual(bucket, dst, nullptr) != svSuccess)
      return fail(bucket->comm, svUnhandledCudaError, "svBucketGetResidual: cudaMemcpy failed");
    return svSuccess;
  }
  if (!bucket->residual.empty())
    std::memcpy(dst, bucket->residual.data(), bucket->residual.size() * sizeof(float));
  return svSuccess;
}

extern "C" svResult_t svBucketSetResidual(svBucket_t bucket, const void* src) {
  CommClaim claim;
  SVCHECK(residualAccess(bucket, src, "svBucketSetResidual", "src", true, &claim));
  if (bucket->comm->config.backend == SV_BACKEND_CUDA) {
    if (cudaCopyResidual(bucket, nullptr, src) != svSuccess)
      return fail(bucket->comm, svUnhandledCudaError, "svBucketSetResidual: cudaMemcpy failed");
    return svSuccess;
  }
  if (!bucket->residual.empty())
    std::memcpy(bucket->residual.data(), src, bucket->residual.size() * sizeof(float));
  return svSuccess;
}
