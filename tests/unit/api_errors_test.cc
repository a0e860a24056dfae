// Bad input through the C API: each call returns its documented code, names the field (and the
// value) in svGetLastError, and has no effect: no output written, residual and sequence number
// unchanged, the communicator still usable.
#include <cuda_runtime_api.h>

#include <limits>
#include <string>
#include <thread>

#include "world.h"

namespace {

using namespace svtest;

TEST(ApiErrors, CommCreationArguments) {
  svComm_t c[2];
  EXPECT_EQ(svCommInitLoopback(nullptr, 2, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "comms = NULL"));
  EXPECT_EQ(svCommInitLoopback(c, 0, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "nranks = 0"));
  EXPECT_EQ(svCommInitLoopback(c, SV_MAX_RANKS + 1, nullptr), svInvalidArgument);
  svConfig_t cfg = SV_CONFIG_INITIALIZER;
  cfg.backend = static_cast<svBackend_t>(5);
  EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->backend = 5"));
  cfg = SV_CONFIG_INITIALIZER;
  cfg.version = (SIGNVOTE_MAJOR + 1) * 10000;  // a library of another major version
  EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->version"));
  cfg = SV_CONFIG_INITIALIZER;
  int devices = 0;
  if (const cudaError_t e = cudaGetDeviceCount(&devices); e != cudaSuccess || devices == 0) {
    cfg.backend = SV_BACKEND_CUDA;  // CI: no GPU, and no driver (CUDA's error says which)
    EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
    const std::string why = e != cudaSuccess ? cudaGetErrorString(e) : "no CUDA device";
    EXPECT_TRUE(mentions(svGetLastError(nullptr),
                         "SV_BACKEND_CUDA but no CUDA device is usable (" + why + ")"));
  }
  cfg = SV_CONFIG_INITIALIZER;
  cfg.nonFinite = static_cast<svNonFinitePolicy_t>(7);
  EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->nonFinite = 7"));
  cfg = SV_CONFIG_INITIALIZER;
  cfg.magic = 0;
  EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->magic"));
  cfg = SV_CONFIG_INITIALIZER;
  cfg.size = 8;
  EXPECT_EQ(svCommInitLoopback(c, 2, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->size = 8"));
}

// svCommInitFromNccl checks its own arguments before it asks NCCL anything, so a stand-in
// pointer is never dereferenced here; nothing is written to *comm on error.
TEST(ApiErrors, NcclCommCreationArguments) {
  auto* fake = reinterpret_cast<struct ncclComm*>(uintptr_t{0x1000});
  svComm_t c = reinterpret_cast<svComm_t>(uintptr_t{0x2000});
  const svComm_t before = c;
  EXPECT_EQ(svCommInitFromNccl(nullptr, fake, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "svCommInitFromNccl: comm = NULL"));
  EXPECT_EQ(svCommInitFromNccl(&c, nullptr, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "svCommInitFromNccl: nccl = NULL"));
  svConfig_t cfg = SV_CONFIG_INITIALIZER;  // SV_BACKEND_HOST
  EXPECT_EQ(svCommInitFromNccl(&c, fake, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->backend = 0; NCCL moves device memory"));
  cfg.nonFinite = static_cast<svNonFinitePolicy_t>(7);  // config fields come first
  EXPECT_EQ(svCommInitFromNccl(&c, fake, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "config->nonFinite = 7"));
  cfg = SV_CONFIG_INITIALIZER;
  cfg.size = 8;
  EXPECT_EQ(svCommInitFromNccl(&c, fake, &cfg), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "svCommInitFromNccl: config->size = 8"));
  int devices = 0;
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {  // CI: no GPU
    EXPECT_EQ(svCommInitFromNccl(&c, fake, nullptr), svInvalidArgument);  // defaults: CUDA
    EXPECT_TRUE(mentions(svGetLastError(nullptr), "SV_BACKEND_CUDA but no CUDA device"));
  }
  EXPECT_EQ(c, before);
}

TEST(ApiErrors, NullAndDestroyedHandles) {
  int rank = -1;
  EXPECT_EQ(svCommUserRank(nullptr, &rank), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "svCommUserRank: comm"));
  svComm_t c;
  ASSERT_EQ(svCommInitLoopback(&c, 1, nullptr), svSuccess);
  svBucket_t b;
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_DENSE, 4);
  ASSERT_EQ(svBucketCreate(&b, c, &cfg), svSuccess);
  EXPECT_EQ(svCommDestroy(c), svInvalidUsage);  // a live bucket
  EXPECT_TRUE(mentions(svGetLastError(c), "live buckets"));
  ASSERT_EQ(svBucketDestroy(b), svSuccess);
  ASSERT_EQ(svCommDestroy(c), svSuccess);
  EXPECT_EQ(svCommUserRank(c, &rank), svInvalidArgument);  // destroyed
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "not a live communicator"));
  size_t bytes = 0;
  EXPECT_EQ(svExchange(b, nullptr, nullptr, nullptr, &bytes, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(nullptr), "not a live bucket"));
  // A bucket handle is not a communicator.
  EXPECT_EQ(svCommUserRank(reinterpret_cast<svComm_t>(b), &rank), svInvalidArgument);
  EXPECT_EQ(svBucketCreate(&b, nullptr, &cfg), svInvalidArgument);
}

struct BadConfig {
  const char* name;
  void (*mutate)(svBucketConfig_t*);
  const char* needle;
};

TEST(ApiErrors, BucketConfigs) {
  const BadConfig cases[] = {
      {"k > count", [](svBucketConfig_t* c) { c->k = 101; }, "config->k = 101 exceeds config->count = 100"},
      {"count overflow", [](svBucketConfig_t* c) { c->count = SV_MAX_COUNT + 1; }, "config->count = 4294967296"},
      {"dtype", [](svBucketConfig_t* c) { c->datatype = static_cast<svDataType_t>(3); }, "config->datatype = 3"},
      {"scheme", [](svBucketConfig_t* c) { c->scheme = static_cast<svScheme_t>(9); }, "config->scheme = 9"},
      {"density > 1", [](svBucketConfig_t* c) { c->density = 1.5; }, "config->density = 1.5"},
      {"density < 0", [](svBucketConfig_t* c) { c->density = -0.1; }, "config->density = -0.1"},
      {"density NaN", [](svBucketConfig_t* c) { c->density = std::numeric_limits<double>::quiet_NaN(); }, "config->density = nan"},
      {"k and density", [](svBucketConfig_t* c) { c->k = 5; c->density = 0.1; }, "both"},
      {"rho", [](svBucketConfig_t* c) { c->rho = std::numeric_limits<float>::infinity(); }, "config->rho = inf"},
      {"binary s3gd", [](svBucketConfig_t* c) { c->vote = SV_VOTE_BINARY; }, "config->vote = SV_VOTE_BINARY"},
      {"vote", [](svBucketConfig_t* c) { c->vote = static_cast<svVote_t>(2); }, "config->vote = 2"},
      {"format for scheme", [](svBucketConfig_t* c) { c->format = SV_FORMAT_SCALED_SIGNS; }, "config->format = 5 cannot carry scheme s3gd_mv"},
      {"format", [](svBucketConfig_t* c) { c->format = static_cast<svFormat_t>(12); }, "config->format = 12"},
      {"magic", [](svBucketConfig_t* c) { c->magic = 1; }, "config->magic"},
      {"size", [](svBucketConfig_t* c) { c->size = 3; }, "config->size = 3"},
  };
  svComm_t c;
  ASSERT_EQ(svCommInitLoopback(&c, 1, nullptr), svSuccess);
  for (const BadConfig& bc : cases) {
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 100);
    bc.mutate(&cfg);
    svBucket_t b = reinterpret_cast<svBucket_t>(0x1);
    EXPECT_EQ(svBucketCreate(&b, c, &cfg), svInvalidArgument) << bc.name;
    EXPECT_EQ(b, reinterpret_cast<svBucket_t>(0x1)) << bc.name << ": output written";
    EXPECT_TRUE(mentions(svGetLastError(c), bc.needle)) << bc.name;
    EXPECT_TRUE(mentions(svGetLastError(c), "svBucketCreate")) << bc.name;
  }
  EXPECT_EQ(svCommDestroy(c), svSuccess);  // no bucket leaked from a failed create
}

// An exchange with one bad argument on rank 1 of 3: the call fails at once, the group fails,
// and nothing changes on any rank.
struct BadCall {
  const char* name;
  svResult_t code;
  const char* needle;
  // Adjusts rank 1's arguments.
  void (*mutate)(World&, const void** send, void** recv, void** ws, size_t* bytes);
};

TEST(ApiErrors, ExchangeArgumentsHaveNoEffect) {
  const BadCall cases[] = {
      {"null send", svInvalidArgument, "sendbuff = NULL",
       [](World&, const void** s, void**, void**, size_t*) { *s = nullptr; }},
      {"null recv", svInvalidArgument, "recvbuff = NULL",
       [](World&, const void**, void** r, void**, size_t*) { *r = nullptr; }},
      {"small workspace", svInvalidArgument, "is less than the",
       [](World&, const void**, void**, void**, size_t* b) { *b -= 1; }},
      {"partial overlap", svInvalidArgument, "overlap partially",
       [](World&, const void** s, void** r, void**, size_t*) { *s = static_cast<float*>(*r) + 1; }},
      {"workspace overlaps output", svInvalidArgument, "overlaps sendbuff or recvbuff",
       [](World& w, const void**, void** r, void**, size_t*) { *r = w.ws[1].data(); }},
  };
  std::mt19937_64 rng(testSeed());
  for (const BadCall& bc : cases) {
    SCOPED_TRACE(bc.name);
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 777);
    cfg.k = 50;
    World w(3, cfg);
    std::vector<std::vector<float>> g(3);
    for (auto& v : g) v = normal(777, rng);
    ASSERT_EQ(w.exchange(g), svSuccess);
    std::vector<std::vector<float>> res, out;
    for (int r = 0; r < 3; ++r) {
      res.push_back(w.residual(r));
      std::fill(w.out[r].begin(), w.out[r].end(), 7.0f);
      out.push_back(w.out[r]);
    }
    ASSERT_EQ(svGroupStart(), svSuccess);
    for (int r = 0; r < 3; ++r) {
      const void* s = g[r].data();
      void* o = w.out[r].data();
      void* ws = w.ws[r].data();
      size_t bytes = w.ws[r].size();
      if (r == 1) {
        bc.mutate(w, &s, &o, &ws, &bytes);
        EXPECT_EQ(svExchange(w.buckets[r], s, o, ws, &bytes, nullptr), bc.code);
        EXPECT_TRUE(mentions(svGetLastError(w.comms[1]), bc.needle));
        EXPECT_TRUE(mentions(svGetLastError(w.comms[1]), "svExchange"));
      } else {
        EXPECT_EQ(svExchange(w.buckets[r], s, o, ws, &bytes, nullptr), svSuccess);
      }
    }
    EXPECT_EQ(svGroupEnd(), bc.code);
    EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "nothing ran"));
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(w.seq(r), 1u);
      EXPECT_EQ(std::memcmp(w.residual(r).data(), res[r].data(), 777 * 4), 0);
      EXPECT_EQ(std::memcmp(w.out[r].data(), out[r].data(), 777 * 4), 0);
    }
    ASSERT_EQ(w.exchange(g), svSuccess) << "the communicator must stay usable";
    EXPECT_EQ(w.seq(2), 2u);
  }
}

TEST(ApiErrors, WorkspaceQueryAndMissingSize) {
  World w(1, bucketConfig(SV_SCHEME_SIGNSGD_MV, 1000));
  size_t bytes = 0;
  EXPECT_EQ(svExchange(w.buckets[0], nullptr, nullptr, nullptr, &bytes, nullptr), svSuccess);
  EXPECT_EQ(bytes, w.info().workspaceBytes);
  EXPECT_GT(bytes, 0u);
  EXPECT_EQ(w.seq(0), 0u);  // a size query is not an exchange
  EXPECT_EQ(svExchange(w.buckets[0], nullptr, nullptr, w.ws[0].data(), nullptr, nullptr),
            svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "workspaceBytes = NULL"));
  bytes = 10;
  EXPECT_EQ(svExchange(w.buckets[0], nullptr, nullptr, w.ws[0].data(), &bytes, nullptr),
            svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "*workspaceBytes = 10 is less than the " +
                                                       std::to_string(w.info().workspaceBytes)));
}

TEST(ApiErrors, UngroupedMultiRankLoopbackIsInvalidUsage) {
  World w(2, bucketConfig(SV_SCHEME_DENSE, 10));
  std::vector<float> g(10, 1.0f);
  size_t bytes = w.ws[0].size();
  EXPECT_EQ(svExchange(w.buckets[0], g.data(), w.out[0].data(), w.ws[0].data(), &bytes, nullptr),
            svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "svGroupStart"));
  EXPECT_EQ(w.out[0][0], 7.0f);
  EXPECT_EQ(svGroupEnd(), svInvalidUsage);  // no group open
}

TEST(ApiErrors, MismatchedRanksFailEveryRank) {
  svComm_t c[3];
  ASSERT_EQ(svCommInitLoopback(c, 3, nullptr), svSuccess);
  svBucket_t b[3];
  for (int r = 0; r < 3; ++r) {
    svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, r == 2 ? 99 : 100);
    cfg.k = 5;
    ASSERT_EQ(svBucketCreate(&b[r], c[r], &cfg), svSuccess);
  }
  std::vector<std::vector<unsigned char>> ws(3, std::vector<unsigned char>(1 << 16));
  std::vector<std::vector<float>> g(3, std::vector<float>(100, 1.0f)), out(3, std::vector<float>(100, 7.0f));
  auto call = [&](int r) {
    size_t bytes = ws[r].size();
    return svExchange(b[r], g[r].data(), out[r].data(), ws[r].data(), &bytes, nullptr);
  };
  svGroupStart();
  for (int r = 0; r < 3; ++r) ASSERT_EQ(call(r), svSuccess);
  EXPECT_EQ(svGroupEnd(), svMismatch);
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(mentions(svGetLastError(c[r]), "rank 2"));
    EXPECT_TRUE(mentions(svGetLastError(c[r]), "field count"));
  }
  // A rank that skips its call.
  svGroupStart();
  ASSERT_EQ(call(0), svSuccess);
  ASSERT_EQ(call(1), svSuccess);
  EXPECT_EQ(svGroupEnd(), svMismatch);
  EXPECT_TRUE(mentions(svGetLastError(c[0]), "rank 2 made 0 svExchange calls"));
  for (int r = 0; r < 3; ++r) {
    uint64_t s = 9;
    EXPECT_EQ(svCommGetSequence(c[r], &s), svSuccess);
    EXPECT_EQ(s, 0u);
    EXPECT_EQ(out[r][0], 7.0f);
    EXPECT_EQ(svBucketDestroy(b[r]), svSuccess);
    EXPECT_EQ(svCommDestroy(c[r]), svSuccess);
  }
}

TEST(ApiErrors, SharedWorkspaceInOneGroupIsRefused) {
  World w(2, bucketConfig(SV_SCHEME_DENSE, 64));
  std::vector<float> g(64, 1.0f);
  svGroupStart();
  for (int r = 0; r < 2; ++r) {
    size_t bytes = w.ws[0].size();
    ASSERT_EQ(svExchange(w.buckets[r], g.data(), w.out[r].data(), w.ws[0].data(), &bytes, nullptr),
              svSuccess);
  }
  EXPECT_EQ(svGroupEnd(), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[1]), "share workspace"));
  EXPECT_EQ(w.out[0][0], 7.0f);
}

// A group's calls run together at svGroupEnd, so a second exchange that sends the first one's
// output, or writes where it writes, is refused as a whole: nothing changes. The same group
// with separate buffers runs.
TEST(ApiErrors, ChainedOrSharedOutputsInOneGroupAreRefused) {
  const svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 64);
  World w(2, cfg);
  std::vector<svBucket_t> second(2);
  std::vector<std::vector<unsigned char>> ws2(2);
  std::vector<std::vector<float>> out2(2, std::vector<float>(64, 7.0f));
  for (int r = 0; r < 2; ++r) {
    ASSERT_EQ(svBucketCreate(&second[r], w.comms[r], &cfg), svSuccess);
    ws2[r].resize(w.ws[r].size());
  }
  std::mt19937_64 rng(testSeed() + 40);
  const std::vector<std::vector<float>> g = {normal(64, rng), normal(64, rng)};
  const World::Snapshot before = w.snapshot();
  enum Layout { kChained, kSharedOutput, kSeparate };
  for (Layout layout : {kChained, kSharedOutput, kSeparate}) {
    SCOPED_TRACE("layout " + std::to_string(layout));
    svGroupStart();
    for (int r = 0; r < 2; ++r) {
      size_t bytes = w.ws[r].size();
      ASSERT_EQ(svExchange(w.buckets[r], g[r].data(), w.out[r].data(), w.ws[r].data(), &bytes,
                           nullptr),
                svSuccess);
      const float* send = layout == kChained ? w.out[r].data() : g[r].data();
      float* recv = layout == kSharedOutput ? w.out[r].data() : out2[r].data();
      ASSERT_EQ(svExchange(second[r], send, recv, ws2[r].data(), &bytes, nullptr), svSuccess);
    }
    if (layout == kSeparate) {
      EXPECT_EQ(svGroupEnd(), svSuccess) << svGetLastError(w.comms[0]);
      EXPECT_TRUE(sameBits(out2[0], w.out[0]));  // the same bucket state and gradients
      continue;
    }
    EXPECT_EQ(svGroupEnd(), svInvalidArgument);
    EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "exchange #0 and #1"));
    EXPECT_TRUE(mentions(svGetLastError(w.comms[1]), "share workspace or output memory"));
    w.expectUnchanged(before);
    for (int r = 0; r < 2; ++r) {
      EXPECT_EQ(out2[r], std::vector<float>(64, 7.0f));
      std::vector<float> state(64, 1.0f);
      ASSERT_EQ(svBucketGetResidual(second[r], state.data()), svSuccess);
      EXPECT_EQ(state, std::vector<float>(64, 0.0f));
    }
  }
  for (svBucket_t b : second) EXPECT_EQ(svBucketDestroy(b), svSuccess);
}

TEST(ApiErrors, ResidualAccessors) {
  World w(1, bucketConfig(SV_SCHEME_DENSE, 8));
  std::vector<float> r(8);
  EXPECT_EQ(svBucketGetResidual(w.buckets[0], r.data()), svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "keeps no state"));
  World s(1, bucketConfig(SV_SCHEME_S3GD_MV, 8));
  EXPECT_EQ(svBucketGetResidual(s.buckets[0], nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(s.comms[0]), "dst = NULL"));
}

TEST(ApiErrors, ErrorStringsAreNamed) {
  for (int c = 0; c < svNumResults; ++c) EXPECT_STRNE(svGetErrorString(static_cast<svResult_t>(c)), "unknown result code");
  EXPECT_STREQ(svGetErrorString(static_cast<svResult_t>(99)), "unknown result code");
  int v = 0;
  EXPECT_EQ(svGetVersion(&v), svSuccess);
  EXPECT_EQ(v, SIGNVOTE_VERSION_CODE);
}

// svCommAbort breaks every rank of the world with svRemoteError, naming the aborting rank; the
// residuals stay as they were and readable, and everything can still be destroyed.
TEST(Abort, BreaksEveryRankAndKeepsTheState) {
  std::mt19937_64 rng(testSeed() + 90);
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 500);
  cfg.k = 25;
  World w(3, cfg);
  ASSERT_EQ(w.exchange(grads(3, 500, rng)), svSuccess);
  std::vector<std::vector<float>> before;
  for (int r = 0; r < 3; ++r) before.push_back(w.residual(r));
  const std::vector<float> out0 = w.out[0];
  EXPECT_EQ(svCommAbort(w.comms[1]), svSuccess);
  EXPECT_EQ(svCommAbort(w.comms[1]), svSuccess);  // again: still fine
  EXPECT_EQ(w.exchange(grads(3, 500, rng)), svRemoteError);
  for (int r = 0; r < 3; ++r) {
    EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "aborted by rank 1"));
    svResult_t async = svSuccess;
    EXPECT_EQ(svCommGetAsyncError(w.comms[r], &async), svSuccess);
    EXPECT_EQ(async, svRemoteError);
    EXPECT_TRUE(mentions(svGetLastError(w.comms[r]), "svCommGetAsyncError: aborted by rank 1"));
    expectSameBits(w.residual(r), before[r], "residual after abort");
    EXPECT_EQ(w.seq(r), 1u);
  }
  expectSameBits(w.out[0], out0, "output after abort");
  svBucket_t extra = nullptr;
  EXPECT_EQ(svBucketCreate(&extra, w.comms[2], &cfg), svRemoteError);
  EXPECT_EQ(extra, nullptr);
  EXPECT_EQ(svCommAbort(nullptr), svInvalidArgument);
}

// A communicator belongs to the thread whose open group queued work on it: another thread's
// svExchange meanwhile is svInvalidUsage with no effect, and the owner's group still runs.
TEST(ApiErrors, OneThreadPerCommunicator) {
  std::mt19937_64 rng(testSeed() + 91);
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 200);
  cfg.k = 9;
  World w(2, cfg);
  const auto g = grads(2, 200, rng);
  ASSERT_EQ(svGroupStart(), svSuccess);
  size_t bytes = w.ws[0].size();
  ASSERT_EQ(svExchange(w.buckets[0], g[0].data(), w.out[0].data(), w.ws[0].data(), &bytes,
                       nullptr), svSuccess);
  svResult_t call = svSuccess, end = svSuccess;
  std::string text;
  std::vector<unsigned char> ws(w.ws[0].size());
  std::vector<float> out(200, 7.0f);
  std::thread([&] {
    svGroupStart();
    size_t b = ws.size();
    call = svExchange(w.buckets[0], g[0].data(), out.data(), ws.data(), &b, nullptr);
    text = svGetLastError(nullptr);
    end = svGroupEnd();
  }).join();
  EXPECT_EQ(call, svInvalidUsage);
  EXPECT_EQ(end, svInvalidUsage);
  EXPECT_TRUE(mentions(text.c_str(), "in use by another thread"));
  EXPECT_EQ(out, std::vector<float>(200, 7.0f));
  bytes = w.ws[1].size();
  ASSERT_EQ(svExchange(w.buckets[1], g[1].data(), w.out[1].data(), w.ws[1].data(), &bytes,
                       nullptr), svSuccess);
  EXPECT_EQ(svGroupEnd(), svSuccess);
  EXPECT_EQ(w.seq(0), 1u);
  // Free again once the group ended: another thread may now drive the world.
  std::thread([&] { call = w.exchange(g); }).join();
  EXPECT_EQ(call, svSuccess);
  EXPECT_EQ(w.seq(1), 2u);
}

// Destroying or overwriting a bucket whose exchange is queued (this thread's open group) or
// running (another thread's) is refused with no effect; reading from the owning thread is not.
TEST(ApiErrors, WorkInFlightKeepsItsBucket) {
  std::mt19937_64 rng(testSeed() + 92);
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 300);
  cfg.k = 17;
  World w(2, cfg), twin(2, cfg);
  const auto g0 = grads(2, 300, rng), g1 = grads(2, 300, rng);
  ASSERT_EQ(w.exchange(g0), svSuccess);
  ASSERT_EQ(twin.exchange(g0), svSuccess);
  const std::vector<float> residual = w.residual(0), junk = normal(300, rng);
  ASSERT_EQ(svGroupStart(), svSuccess);
  size_t bytes = w.ws[0].size();
  ASSERT_EQ(svExchange(w.buckets[0], g1[0].data(), w.out[0].data(), w.ws[0].data(), &bytes,
                       nullptr), svSuccess);
  EXPECT_EQ(svBucketDestroy(w.buckets[0]), svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "svBucketDestroy"));
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "queued in this thread's open group"));
  EXPECT_EQ(svBucketSetResidual(w.buckets[0], junk.data()), svInvalidUsage);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "svBucketSetResidual"));
  EXPECT_TRUE(sameBits(w.residual(0), residual));  // reading is allowed
  EXPECT_EQ(svCommDestroy(w.comms[0]), svInvalidUsage);
  svResult_t destroy = svSuccess, set = svSuccess, get = svSuccess;
  std::string text;
  std::vector<float> got(300, 7.0f);
  std::thread([&] {
    destroy = svBucketDestroy(w.buckets[0]);
    text = svGetLastError(nullptr);
    set = svBucketSetResidual(w.buckets[0], junk.data());
    get = svBucketGetResidual(w.buckets[0], got.data());
  }).join();
  EXPECT_EQ(destroy, svInvalidUsage);
  EXPECT_EQ(set, svInvalidUsage);
  EXPECT_EQ(get, svInvalidUsage);
  EXPECT_TRUE(mentions(text, "svBucketDestroy"));
  EXPECT_TRUE(mentions(text, "in use by another thread"));
  EXPECT_EQ(got, std::vector<float>(300, 7.0f));
  bytes = w.ws[1].size();
  ASSERT_EQ(svExchange(w.buckets[1], g1[1].data(), w.out[1].data(), w.ws[1].data(), &bytes,
                       nullptr), svSuccess);
  ASSERT_EQ(svGroupEnd(), svSuccess);
  ASSERT_EQ(twin.exchange(g1), svSuccess);
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(sameBits(w.out[r], twin.out[r])) << r;
    EXPECT_TRUE(sameBits(w.residual(r), twin.residual(r))) << r;
  }
  // Once the group ended, another thread may destroy it (World's destructor tolerates none).
  svBucket_t b0 = w.buckets[0];
  std::thread([&] { destroy = svBucketDestroy(b0); }).join();
  EXPECT_EQ(destroy, svSuccess);
  w.buckets[0] = nullptr;
}

// A workspace may start at any address; gradients and outputs must be float-aligned.
TEST(ApiErrors, WorkspaceAtAnyAddressAndFloatAlignedBuffers) {
  std::mt19937_64 rng(testSeed() + 93);
  svBucketConfig_t cfg = bucketConfig(SV_SCHEME_S3GD_MV, 1000);
  cfg.density = 0.05;
  World w(2, cfg), twin(2, cfg);
  for (size_t offset : {size_t{1}, size_t{3}, size_t{8}, size_t{100}, size_t{255}}) {
    const auto g = grads(2, 1000, rng);
    std::vector<std::vector<unsigned char>> ws(2);
    ASSERT_EQ(svGroupStart(), svSuccess);
    for (int r = 0; r < 2; ++r) {
      ws[r].assign(w.ws[r].size() + offset, 0xCD);
      size_t bytes = w.ws[r].size();
      EXPECT_EQ(svExchange(w.buckets[r], g[r].data(), w.out[r].data(), ws[r].data() + offset,
                           &bytes, nullptr), svSuccess);
    }
    ASSERT_EQ(svGroupEnd(), svSuccess);
    ASSERT_EQ(twin.exchange(g), svSuccess);
    for (int r = 0; r < 2; ++r) {
      EXPECT_TRUE(sameBits(w.out[r], twin.out[r])) << offset;
      EXPECT_TRUE(sameBits(w.residual(r), twin.residual(r))) << offset;
    }
  }
  std::vector<unsigned char> bytes(1000 * 4 + 8);
  size_t wsBytes = w.ws[0].size();
  ASSERT_EQ(svGroupStart(), svSuccess);
  EXPECT_EQ(svExchange(w.buckets[0], bytes.data() + 1, w.out[0].data(), w.ws[0].data(),
                       &wsBytes, nullptr), svInvalidArgument);
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "sendbuff"));
  EXPECT_TRUE(mentions(svGetLastError(w.comms[0]), "aligned"));
  EXPECT_EQ(svGroupEnd(), svInvalidArgument);
}

}  // namespace
