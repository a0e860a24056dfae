// libFuzzer target: the C API's argument checks. The input chooses a communicator config, a
// world size, a bucket config (every field, valid or not, and one rank's config may differ)
// and a few grouped exchanges whose arguments may be broken (NULL, short or overlapping
// buffers, wrong handles), with gradients holding NaN, infinities and signed zeros. Promises
// checked (a broken one aborts, which libFuzzer reports as a crash):
//   - every refusal is one of the documented codes, names the call, and has no effect:
//     nothing created, outputs, residuals and sequence numbers unchanged;
//   - a twin world fed only the calls that succeeded gives bit-identical outputs and residuals
//     (so a refused call left no trace, and in-place or offset buffers change nothing);
//   - on success every rank's output is the same bits (liec: each adds its own error);
//   - handles are all destroyed without error and none stays registered.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "handles.h"
#include "signvote/signvote.h"

namespace {

// A broken promise: print it and abort, which libFuzzer reports as a crash.
#define require(ok)                                                                       \
  do {                                                                                    \
    if (!(ok)) {                                                                          \
      std::fprintf(stderr, "api_fuzz.cc:%d: broken promise: %s (last error: %s)\n",       \
                   __LINE__, #ok, svGetLastError(nullptr));                               \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

bool mentions(const char* text, const char* what) { return std::strstr(text, what) != nullptr; }

template <class T, size_t N>
T oneOf(FuzzedDataProvider& in, const T (&values)[N]) {
  return values[in.ConsumeIntegralInRange<size_t>(0, N - 1)];
}

// Stores any int in an enum field, as a C caller can; a C++ cast of a value outside the
// enum's range would be undefined behaviour.
template <class E>
void setRaw(E& field, int v) {
  static_assert(sizeof(E) == sizeof(int), "C enums are int-sized");
  std::memcpy(&field, &v, sizeof v);
}

float anyFloat(FuzzedDataProvider& in) {
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 0.5f, 0.9f, 2.0f, 1e-45f, -3.4e38f,
                           inf, -inf, std::numeric_limits<float>::quiet_NaN()};
  if (in.ConsumeBool()) return oneOf(in, special);
  const uint32_t bits = in.ConsumeIntegral<uint32_t>();
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

double anyDensity(FuzzedDataProvider& in) {
  const double special[] = {0.0, 0.001, 0.01, 0.1, 0.5, 1.0, 1.5, -0.1, 1e-300,
                            std::numeric_limits<double>::quiet_NaN(),
                            std::numeric_limits<double>::infinity()};
  return oneOf(in, special);
}

// Mostly valid sizes; large ones only where they are refused (no 16 GiB buckets).
size_t anyCount(FuzzedDataProvider& in) {
  const size_t special[] = {0, 1, 31, 32, 33, 63, 64, 65, 100, 127, 1000, 4097,
                            SV_MAX_COUNT + 1, std::numeric_limits<size_t>::max()};
  return in.ConsumeBool() ? oneOf(in, special) : in.ConsumeIntegralInRange<size_t>(0, 3000);
}

size_t anySmall(FuzzedDataProvider& in, size_t around) {
  const size_t special[] = {0, 1, 2, 3, around, around + 1, std::numeric_limits<size_t>::max()};
  return in.ConsumeBool() ? oneOf(in, special) : in.ConsumeIntegralInRange<size_t>(0, around + 2);
}

svConfig_t commConfig(FuzzedDataProvider& in) {
  svConfig_t c = SV_CONFIG_INITIALIZER;
  if (in.ConsumeProbability<float>() < 0.05f) c.size = in.ConsumeIntegral<uint8_t>();
  if (in.ConsumeProbability<float>() < 0.05f) c.magic ^= 1u << in.ConsumeIntegralInRange(0, 31);
  if (in.ConsumeProbability<float>() < 0.05f) c.version += 10000;
  if (in.ConsumeProbability<float>() < 0.05f) setRaw(c.backend, in.ConsumeIntegralInRange(0, 3));
  setRaw(c.nonFinite, in.ConsumeIntegralInRange(0, 3));
  if (in.ConsumeProbability<float>() < 0.05f) setRaw(c.check, in.ConsumeIntegralInRange(-1, 3));
  c.timeoutMs = in.ConsumeIntegral<unsigned>();
  if (in.ConsumeProbability<float>() < 0.2f) setRaw(c.timing, in.ConsumeIntegralInRange(-1, 3));
  return c;
}

// Each field keeps its default or takes another value, valid or not, so that valid configs of
// every scheme stay common while any field may be wrong.
svBucketConfig_t bucketConfig(FuzzedDataProvider& in) {
  svBucketConfig_t c = SV_BUCKET_CONFIG_INITIALIZER;
  auto often = [&] { return in.ConsumeBool(); };
  auto rarely = [&] { return in.ConsumeProbability<float>() < 0.05f; };
  if (rarely()) c.size = in.ConsumeIntegral<uint16_t>();
  if (rarely()) c.magic = in.ConsumeIntegral<unsigned>();
  if (rarely()) c.version = in.ConsumeIntegral<unsigned>();
  setRaw(c.scheme, rarely() ? in.ConsumeIntegralInRange(-1, 99) : in.ConsumeIntegralInRange(0, 7));
  if (rarely()) setRaw(c.datatype, in.ConsumeIntegralInRange(-1, 9));
  c.count = anyCount(in);
  const size_t n = c.count <= 3000 ? c.count : 100;
  if (often()) c.k = anySmall(in, n / 8);
  else c.density = anyDensity(in);
  if (rarely()) c.rho = anyFloat(in);
  else if (often()) c.rho = in.ConsumeBool() ? 0.0f : 0.5f;
  if (rarely()) setRaw(c.vote, in.ConsumeIntegralInRange(-1, 9));
  else if (often()) c.vote = SV_VOTE_BINARY;
  if (rarely()) setRaw(c.format, in.ConsumeIntegralInRange(-1, 99));
  else if (often()) setRaw(c.format, in.ConsumeIntegralInRange(0, 7));
  if (rarely()) c.momentum = anyFloat(in);
  else if (often()) c.momentum = in.ConsumeBool() ? 0.5f : 0.9f;
  const int adaptive = rarely() ? in.ConsumeIntegralInRange(-1, 9) : in.ConsumeIntegralInRange(0, 1);
  setRaw(c.adaptiveK, adaptive);
  if (adaptive != SV_ADAPTIVE_K_NONE || rarely()) {
    c.kMin = anySmall(in, n / 8);
    c.kBudget = often() ? 0 : anySmall(in, 8 * n);
    c.kWindow = in.ConsumeIntegralInRange<unsigned>(0, 9);
  }
  if (rarely()) c.downK = anySmall(in, n);
  else if (rarely()) c.downDensity = anyDensity(in);
  if (often()) c.period = in.ConsumeIntegralInRange<unsigned>(0, 5);
  if (rarely()) {  // the dense fallback's link model, valid or not
    c.linkBusBW = often() ? in.ConsumeFloatingPointInRange<double>(0.0, 400.0) : anyFloat(in);
    c.kernelUs = often() ? in.ConsumeFloatingPointInRange<double>(0.0, 100.0) : anyFloat(in);
  }
  return c;
}

bool sameBits(const float* a, const float* b, size_t n) {
  return n == 0 || std::memcmp(a, b, n * 4) == 0;
}

// One loopback world driven through the public API.
struct World {
  std::vector<svComm_t> comms;
  std::vector<svBucket_t> buckets;
  std::vector<std::vector<float>> out, res;
  std::vector<std::vector<unsigned char>> ws;
  std::vector<uint64_t> seq;
  bool ok = false;

  World(int W, const svConfig_t& config, const std::vector<svBucketConfig_t>& cfg)
      : comms(W, nullptr), buckets(W, nullptr), out(W), res(W), ws(W), seq(W, 0) {
    if (svCommInitLoopback(comms.data(), W, &config) != svSuccess) return;
    for (int r = 0; r < W; ++r) {
      svBucket_t b = nullptr;
      const svResult_t e = svBucketCreate(&b, comms[r], &cfg[r]);
      if (e != svSuccess) {
        require(e == svInvalidArgument || e == svInvalidUsage);
        require(b == nullptr);
        require(mentions(svGetLastError(comms[r]), "svBucketCreate"));
        return;
      }
      buckets[r] = b;
      svBucketInfo_t info{};
      require(svBucketGetInfo(b, &info) == svSuccess);
      size_t bytes = 12345;
      require(svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr) == svSuccess);
      require(bytes == info.workspaceBytes);
      ws[r].assign(bytes + 64, 0xA5);
      // Room for offset views, and for the workspace when a broken call passes recvbuff.
      out[r].assign(std::max<size_t>(cfg[r].count, bytes / 4 + 1) + 16, 7.0f);
      res[r].assign(info.stateFloats, 0.0f);
    }
    ok = true;
  }
  ~World() {
    for (svBucket_t b : buckets) require(svBucketDestroy(b) == svSuccess);
    for (svComm_t c : comms)
      if (c != nullptr) require(svCommDestroy(c) == svSuccess);
  }
  void snapshot() {
    for (size_t r = 0; r < comms.size(); ++r) {
      if (!res[r].empty()) require(svBucketGetResidual(buckets[r], res[r].data()) == svSuccess);
      require(svCommGetSequence(comms[r], &seq[r]) == svSuccess);
    }
  }
  bool unchanged(const std::vector<std::vector<float>>& outBefore) {
    const auto resBefore = res;
    const auto seqBefore = seq;
    snapshot();
    for (size_t r = 0; r < comms.size(); ++r) {
      if (!sameBits(out[r].data(), outBefore[r].data(), out[r].size())) return false;
      if (!sameBits(res[r].data(), resBefore[r].data(), res[r].size())) return false;
      if (seq[r] != seqBefore[r]) return false;
    }
    return true;
  }
};

// Whether svExchange must refuse broken argument `how` (see run) of a bucket of n elements
// needing `need` workspace bytes; `readsSend`: false for dgs_async's server, whose sendbuff
// is ignored.
bool mustRefuse(int how, size_t n, size_t need, bool readsSend) {
  switch (how) {
    case 1: return n > 0 && readsSend;   // NULL sendbuff
    case 2: return n > 0;                // NULL recvbuff
    case 3: return need > 0;             // one byte short
    case 5: return n > 1 && readsSend;   // recvbuff = sendbuff + 1 float: partial overlap
    case 6: return n > 0 && need > 0;    // workspace = recvbuff
    case 7: case 8: case 9: return true; // NULL size pointer, a comm as bucket, NULL bucket
    default: return false;               // 0: none, 4: in place (allowed)
  }
}

void run(FuzzedDataProvider& in) {
  const svConfig_t config = commConfig(in);
  int W = in.ConsumeIntegralInRange(1, 5);
  if (in.ConsumeProbability<float>() < 0.02f) W = in.ConsumeBool() ? 0 : SV_MAX_RANKS + 1;
  {
    std::vector<svComm_t> probe(W > 0 && W <= SV_MAX_RANKS ? W : 1, nullptr);
    const svResult_t e = svCommInitLoopback(probe.data(), W, &config);
    if (e != svSuccess) {  // a refused world: documented code, named, nothing written
      require(e == svInvalidArgument || e == svUnhandledCudaError);
      require(mentions(svGetLastError(nullptr), "svCommInitLoopback"));
      for (svComm_t c : probe) require(c == nullptr);
      return;
    }
    for (svComm_t c : probe) require(svCommDestroy(c) == svSuccess);
    if (config.backend == SV_BACKEND_CUDA) return;  // a GPU is there; this harness is host-only
  }
  std::vector<svBucketConfig_t> cfg(W, bucketConfig(in));
  if (W > 1 && in.ConsumeProbability<float>() < 0.1f) {  // one rank configured differently
    svBucketConfig_t& c = cfg[W - 1];
    switch (in.ConsumeIntegralInRange(0, 4)) {
      case 0: c.k += 1; break;
      case 1: c.rho = c.rho == 0.5f ? 0.25f : 0.5f; break;
      case 2: c.density = c.density == 0.5 ? 0.25 : 0.5; break;
      case 3: c.linkBusBW = 12.0; c.kernelUs = c.kernelUs == 1e6 ? 0.0 : 1e6; break;
      default: c.period += 1; break;
    }
  }
  World w(W, config, cfg), twin(W, config, cfg);
  if (!w.ok) return;
  require(twin.ok);
  const size_t n = cfg[0].count;
  const bool ownError = cfg[0].scheme == SV_SCHEME_LIEC;  // each rank adds its own error
  // dgs_async: a push is the server's call and one worker's; the outputs differ by role.
  const bool async = cfg[0].scheme == SV_SCHEME_DGS_ASYNC;
  uint32_t lcg = 12345;  // gradients once the input runs out (deterministic, as libFuzzer needs)
  const int steps = in.ConsumeIntegralInRange(1, 4);
  for (int step = 0; step < steps; ++step) {
    std::vector<std::vector<float>> g(W, std::vector<float>(n + 16));
    for (auto& v : g)
      for (float& x : v)
        x = in.remaining_bytes() ? anyFloat(in)
                                 : static_cast<float>((lcg = lcg * 1664525u + 1013904223u) >> 8) /
                                           (1 << 24) - 0.5f;
    // A state loaded on every rank of both worlds, as from a checkpoint. The same on all
    // ranks, because part of it may be shared (dgs's downlink residual is the same everywhere).
    // (Ranks whose dense fallback differs hold different states; their group is refused.)
    const bool sameStates = std::all_of(w.res.begin(), w.res.end(), [&](const auto& v) {
      return v.size() == w.res[0].size();
    });
    if (in.ConsumeProbability<float>() < 0.1f && !w.res[0].empty() && sameStates) {
      std::vector<float> s(w.res[0].size());
      for (float& x : s) x = anyFloat(in);
      for (int r = 0; r < W; ++r) {
        require(svBucketSetResidual(w.buckets[r], s.data()) == svSuccess);
        require(svBucketSetResidual(twin.buckets[r], s.data()) == svSuccess);
      }
    }
    const size_t offset = in.ConsumeIntegralInRange<size_t>(0, 3);  // floats off alignment
    const size_t wsOffset = in.ConsumeIntegralInRange<size_t>(0, 63);  // any byte address
    std::vector<std::vector<float>> plain(W);  // the twin's gradients, copied before any call
    for (int r = 0; r < W; ++r) plain[r].assign(g[r].begin() + offset, g[r].begin() + offset + n);
    w.snapshot();
    const auto outBefore = w.out;
    std::vector<int> ranks;
    for (int r = 0; r < W; ++r)
      if (!async || r == 0 || r == 1 + step % (W - 1)) ranks.push_back(r);
    const int broken = ranks[in.ConsumeIntegralInRange<size_t>(0, ranks.size() - 1)];
    const int how = in.ConsumeProbability<float>() < 0.4f ? in.ConsumeIntegralInRange(1, 9) : 0;
    const size_t need = w.ws[broken].size() - 64;
    bool refused = false;
    require(svGroupStart() == svSuccess);
    for (int r : ranks) {
      float* send = g[r].data() + offset;
      float* recv = w.out[r].data() + offset;
      void* ws = w.ws[r].data() + wsOffset;
      size_t bytes = w.ws[r].size() - 64;
      size_t* bytesPtr = &bytes;
      svBucket_t b = w.buckets[r];
      if (r == broken) {
        switch (how) {
          case 1: send = nullptr; break;
          case 2: recv = nullptr; break;
          case 3: bytes = bytes ? bytes - 1 : 0; break;
          case 4: recv = send; break;
          case 5: recv = send + 1; break;
          case 6: ws = recv; break;
          case 7: bytesPtr = nullptr; break;
          case 8: b = reinterpret_cast<svBucket_t>(w.comms[r]); break;
          case 9: b = nullptr; break;
          default: break;
        }
      }
      const svResult_t e = svExchange(b, send, recv, ws, bytesPtr, nullptr);
      require((e != svSuccess) ==
              (r == broken && mustRefuse(how, n, need, !(async && r == 0))));
      if (e != svSuccess) {
        require(e == svInvalidArgument);
        require(mentions(svGetLastError(nullptr), "svExchange"));
        refused = true;
      }
    }
    const svResult_t code = svGroupEnd();
    if (refused) require(code == svInvalidArgument);
    if (code != svSuccess) {
      require(code == svInvalidArgument || code == svNonFiniteInput || code == svMismatch);
      const char* text = svGetLastError(nullptr);
      require(mentions(text, "svGroupEnd") || mentions(text, "svExchange"));
      require(w.unchanged(outBefore));
      for (int r = 0; r < W; ++r) require(sameBits(g[r].data() + offset, plain[r].data(), n));
      continue;
    }
    if (how == 4 || how == 5)  // that rank's output went into its gradient buffer
      std::memcpy(w.out[broken].data() + offset, g[broken].data() + offset + (how == 5), n * 4);
    require(svGroupStart() == svSuccess);
    for (int r : ranks) {
      size_t bytes = twin.ws[r].size() - 64;
      require(svExchange(twin.buckets[r], plain[r].data(), twin.out[r].data(),
                         twin.ws[r].data(), &bytes, nullptr) == svSuccess);
    }
    require(svGroupEnd() == svSuccess);
    twin.snapshot();
    w.snapshot();
    for (int r = 0; r < W; ++r) {
      require(sameBits(w.out[r].data() + offset, twin.out[r].data(), n));
      require(sameBits(w.res[r].data(), twin.res[r].data(), w.res[r].size()));
      require(w.seq[r] == twin.seq[r]);
      if (!ownError && !async) require(sameBits(twin.out[r].data(), twin.out[0].data(), n));
    }
    for (auto& o : w.out) std::fill(o.begin(), o.end(), 7.0f);
    for (auto& o : twin.out) std::fill(o.begin(), o.end(), 7.0f);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const size_t live = signvote::detail::liveHandleCount();
  run(in);
  require(signvote::detail::liveHandleCount() == live);  // every handle destroyed
  return 0;
}
