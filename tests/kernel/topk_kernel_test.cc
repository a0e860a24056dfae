// kernels::accumulateTopK against the host golden model (ref::selectTopKByMagnitude and
// ref::s3gdAccumulateSelect), bit for bit, on the edge table: sizes around warp, tile and
// power-of-two boundaries and primes, K in {0, 1, N/2, N-1, N, 1%, 10%}, ties, zeros of both
// signs, infinities, NaN under each policy, misaligned pointers, and graph replay.
#include <cmath>
#include <limits>

#include "common.h"
#include "gpu.h"
#include "kernels.h"
#include "reference/schemes.h"
#include "reference/topk.h"

namespace {

using signvote::kernels::TopKStatus;
using svtest::DeviceArray;

const uint64_t kSizes[] = {0, 1, 2, 31, 32, 33, 63, 64, 65, 127, 257, 1000, 2047, 2048, 2049,
                           4095, 4096, 4097, 7919, 65535, 65537, 104729, (1u << 20) - 1,
                           (1u << 20) + 1};

// 1% first: the one case of a size that CaseFilter limits keeps the candidate list.
std::vector<uint64_t> kValues(uint64_t n) {
  std::vector<uint64_t> ks = {(n + 99) / 100, 0, 1, n / 2, n ? n - 1 : 0, n, (n + 9) / 10};
  std::vector<uint64_t> out;
  for (uint64_t k : ks)
    if (k <= n && std::find(out.begin(), out.end(), k) == out.end()) out.push_back(k);
  return out;
}

struct TopKRun {
  std::vector<float> acc;
  std::vector<uint32_t> sel;
  TopKStatus status{};
};

// One accumulateTopK on the device; residual may be empty (plain selection of g).
::testing::AssertionResult runTopK(const std::vector<float>& g, const std::vector<float>& residual,
                                   float rho, uint64_t k, svNonFinitePolicy_t policy,
                                   size_t offset, TopKRun* out) {
  const uint64_t n = g.size();
  DeviceArray<float> dg(n, offset), dr(residual.size(), (offset + 1) % 4),
      dacc(n, (offset + 2) % 4);
  DeviceArray<uint32_t> dsel(k, (offset + 3) % 4);
  DeviceArray<TopKStatus> dst(1);
  dg.upload(g);
  dr.upload(residual);
  size_t bytes = 0;
  cudaError_t e = signvote::kernels::accumulateTopK(
      nullptr, &bytes, dg.get(), residual.empty() ? nullptr : dr.get(), rho, n, k, policy,
      dacc.get(), dsel.get(), dst.get(), nullptr);
  if (e != cudaSuccess) return ::testing::AssertionFailure() << "size query: " << cudaGetErrorString(e);
  DeviceArray<char> temp(bytes);
  e = signvote::kernels::accumulateTopK(temp.get(), &bytes, dg.get(),
                                        residual.empty() ? nullptr : dr.get(), rho, n, k, policy,
                                        dacc.get(), dsel.get(), dst.get(), nullptr);
  if (e == cudaSuccess) e = cudaDeviceSynchronize();
  if (e != cudaSuccess) return ::testing::AssertionFailure() << cudaGetErrorString(e);
  out->acc = dacc.download();
  out->sel = dsel.download();
  out->status = dst.download()[0];
  if (!dsel.guardIntact() || !dacc.guardIntact() || !temp.guardIntact())
    return ::testing::AssertionFailure() << "a kernel wrote past the end of an array";
  return ::testing::AssertionSuccess();
}

// Selections that kept the candidate list (at most n / 4 keys, kernels/logic.h) and those
// whose passes 1 and 2 and gather read every key.
struct Paths {
  int listed = 0, full = 0;
};

// Plain selection: the keys are g's own bits, so even NaN payloads must select identically.
// The candidate count is the host's: keys whose top 11 bits are at or above v*'s.
void checkSelect(const std::vector<float>& g, uint64_t k, size_t offset, Paths* paths = nullptr) {
  SCOPED_TRACE("n = " + std::to_string(g.size()) + ", k = " + std::to_string(k) +
               ", offset = " + std::to_string(offset));
  TopKRun run;
  ASSERT_TRUE(runTopK(g, {}, 0.0f, k, SV_NONFINITE_ERROR, offset, &run));
  std::vector<uint32_t> expect(k);
  const uint32_t vstar = signvote::ref::selectTopKByMagnitude(g.data(), g.size(), k, expect.data());
  ASSERT_EQ(run.sel, expect);
  uint64_t listed = 0;
  if (k > 0) {
    EXPECT_EQ(run.status.vstar, vstar);
    for (float x : g)
      listed += (signvote::ref::magnitudeKey(x) & 0x7FF00000u) >= (vstar & 0x7FF00000u);
    if (paths) ++(listed <= g.size() / 4 ? paths->listed : paths->full);
  }
  EXPECT_EQ(run.status.listCount, listed);
  EXPECT_EQ(run.status.nanCount, svtest::countNaN(g));
  for (size_t i = 0; i < g.size(); ++i) ASSERT_TRUE(svtest::sameBits(run.acc[i], g[i])) << i;
}

TEST(TopKKernel, NormalDataEveryEdgeSizeAndK) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed());
  SCOPED_TRACE("seed " + std::to_string(svtest::testSeed()));
  Paths paths;
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    for (uint64_t k : kValues(n))
      if (cases.take()) checkSelect(svtest::normal(n, rng), k, n % 4, &paths);
  }
  EXPECT_GT(paths.listed, 0);  // K = 1% and 10% of normal data keep the list,
  EXPECT_GT(paths.full, 0);    // K = N/2 and N cannot
}

TEST(TopKKernel, TiesAndSignedZerosTakeTheLowestIndices) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 1);
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    for (uint64_t k : kValues(n))
      if (cases.take()) checkSelect(svtest::ties(n, rng), k, (n + 1) % 4);
  }
  // All equal, all +0.0, all -0.0, and a mix of the two zeros.
  for (uint64_t n : {1u, 33u, 4097u, 65537u}) {
    for (float v : {1.5f, 0.0f, -0.0f}) checkSelect(std::vector<float>(n, v), n / 3, 1);
    std::vector<float> z(n);
    for (size_t i = 0; i < n; ++i) z[i] = (i % 3) ? 0.0f : -0.0f;
    checkSelect(z, n / 2, 2);
  }
}

TEST(TopKKernel, InfinitiesNaNAndSubnormals) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 2);
  const float specials[] = {std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(), 0.0f, -0.0f,
                            std::numeric_limits<float>::max()};
  for (uint64_t n : {5u, 64u, 1000u, 4097u, 65537u}) {
    std::vector<float> g = svtest::normal(n, rng);
    std::uniform_int_distribution<size_t> at(0, n - 1);
    for (int r = 0; r < 3; ++r)
      for (float s : specials) g[at(rng)] = s;
    for (uint64_t k : kValues(n)) checkSelect(g, k, k % 4);
  }
}

// The residual path: acc = fma(rho, residual, g) with the NaN policy, against
// ref::s3gdAccumulateSelect. A NaN's payload after fma is not part of the contract (the host
// keeps the input's, the GPU returns the canonical NaN), so NaN compares as NaN, and the
// selection is compared only where no NaN is left in acc.
TEST(TopKKernel, FusedResidualMatchesTheHostBitForBit) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 3);
  for (uint64_t n : kSizes) {
    svtest::CaseFilter cases(n);
    // Ignore first: under it the selection is compared (no NaN is left in acc).
    for (svNonFinitePolicy_t policy : {SV_NONFINITE_IGNORE, SV_NONFINITE_ERROR}) {
      std::vector<float> g = svtest::normal(n, rng), r = svtest::normal(n, rng, 0.3f);
      if (n > 8) {
        g[n / 3] = std::numeric_limits<float>::quiet_NaN();
        g[n / 2] = std::numeric_limits<float>::infinity();
        r[n / 2] = -std::numeric_limits<float>::infinity();  // inf - 0.9*inf: NaN
        g[n - 1] = -0.0f;
        r[n - 1] = 0.0f;
        g[n / 4] = std::numeric_limits<float>::denorm_min();
      }
      const float rho = 0.9f;
      for (uint64_t k : kValues(n)) {
        if (!cases.take()) continue;
        SCOPED_TRACE("n = " + std::to_string(n) + ", k = " + std::to_string(k) +
                     ", policy = " + std::to_string(policy));
        TopKRun run;
        ASSERT_TRUE(runTopK(g, r, rho, k, policy, k % 4, &run));
        std::vector<float> acc(n);
        std::vector<uint32_t> sel(k);
        const bool nan = signvote::ref::s3gdAccumulateSelect(g.data(), r.data(), rho, n, k,
                                                             policy, acc.data(), sel.data());
        for (size_t i = 0; i < n; ++i) {
          if (std::isnan(acc[i])) ASSERT_TRUE(std::isnan(run.acc[i])) << i;
          else ASSERT_TRUE(svtest::sameBits(run.acc[i], acc[i])) << i;
        }
        EXPECT_EQ(run.status.nanCount != 0, nan);
        EXPECT_EQ(run.status.nanCount, svtest::countNaN(acc));
        if (!nan) {
          ASSERT_EQ(run.sel, sel);
        }
      }
    }
  }
}

// acc == g without a residual: the selection of g itself; only a NaN replaced under
// SV_NONFINITE_IGNORE is written back.
TEST(TopKKernel, InPlaceSelectionWritesOnlyReplacedNaN) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 6);
  for (svNonFinitePolicy_t policy : {SV_NONFINITE_ERROR, SV_NONFINITE_IGNORE}) {
    const uint64_t n = 70001, k = 700;
    std::vector<float> g = svtest::normal(n, rng);
    g[5] = -std::numeric_limits<float>::quiet_NaN();
    g[n - 2] = std::numeric_limits<float>::quiet_NaN();
    DeviceArray<float> dg(n, 3);
    DeviceArray<uint32_t> dsel(k);
    DeviceArray<TopKStatus> st(1);
    dg.upload(g);
    size_t bytes = 0;
    CUDA_OK(signvote::kernels::accumulateTopK(nullptr, &bytes, dg.get(), nullptr, 0.0f, n, k,
                                              policy, dg.get(), dsel.get(), st.get(), nullptr));
    DeviceArray<char> temp(bytes);
    CUDA_OK(signvote::kernels::accumulateTopK(temp.get(), &bytes, dg.get(), nullptr, 0.0f, n, k,
                                              policy, dg.get(), dsel.get(), st.get(), nullptr));
    CUDA_OK(cudaDeviceSynchronize());
    std::vector<float> expect = g;
    if (policy == SV_NONFINITE_IGNORE) expect[5] = expect[n - 2] = 0.0f;
    const std::vector<float> got = dg.download();
    for (uint64_t i = 0; i < n; ++i) ASSERT_TRUE(svtest::sameBits(got[i], expect[i])) << i;
    std::vector<uint32_t> sel(k);
    signvote::ref::selectTopKByMagnitude(expect.data(), n, k, sel.data());
    EXPECT_EQ(dsel.download(), sel);
  }
}

TEST(TopKKernel, ReplayedGraphGivesTheSameBits) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(svtest::testSeed() + 4);
  const uint64_t n = 300007, k = 3001;
  const std::vector<float> g = svtest::normal(n, rng), r = svtest::normal(n, rng);
  DeviceArray<float> dg(n), dr(n), dacc(n);
  DeviceArray<uint32_t> dsel(k);
  DeviceArray<TopKStatus> dst(1);
  dg.upload(g);
  dr.upload(r);
  size_t bytes = 0;
  CUDA_OK(signvote::kernels::accumulateTopK(nullptr, &bytes, dg.get(), dr.get(), 1.0f, n, k,
                                            SV_NONFINITE_ERROR, dacc.get(), dsel.get(),
                                            dst.get(), nullptr));
  DeviceArray<char> temp(bytes);
  cudaStream_t s;
  CUDA_OK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  CUDA_OK(signvote::kernels::accumulateTopK(temp.get(), &bytes, dg.get(), dr.get(), 1.0f, n, k,
                                            SV_NONFINITE_ERROR, dacc.get(), dsel.get(),
                                            dst.get(), s));
  CUDA_OK(cudaStreamEndCapture(s, &graph));
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  std::vector<float> acc(n);
  std::vector<uint32_t> expect(k);
  signvote::ref::s3gdAccumulateSelect(g.data(), r.data(), 1.0f, n, k, SV_NONFINITE_ERROR,
                                      acc.data(), expect.data());
  for (int rep = 0; rep < 3; ++rep) {
    CUDA_OK(cudaMemsetAsync(dsel.get(), 0xFF, k * 4, s));
    CUDA_OK(cudaGraphLaunch(exec, s));
    CUDA_OK(cudaStreamSynchronize(s));
    ASSERT_EQ(dsel.download(), expect) << "replay " << rep;
  }
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(s);
}

TEST(TopKKernel, InvalidArgumentsEnqueueNothing) {
  SV_REQUIRE_GPU();
  DeviceArray<float> g(64), acc(64);
  DeviceArray<uint32_t> sel(64);
  DeviceArray<TopKStatus> st(1);
  size_t bytes = 0;
  EXPECT_EQ(signvote::kernels::accumulateTopK(nullptr, &bytes, g.get(), nullptr, 0.0f, 64, 65,
                                              SV_NONFINITE_ERROR, acc.get(), sel.get(), st.get(),
                                              nullptr),
            cudaErrorInvalidValue);
  EXPECT_EQ(signvote::kernels::accumulateTopK(nullptr, nullptr, g.get(), nullptr, 0.0f, 64, 1,
                                              SV_NONFINITE_ERROR, acc.get(), sel.get(), st.get(),
                                              nullptr),
            cudaErrorInvalidValue);
  CUDA_OK(signvote::kernels::accumulateTopK(nullptr, &bytes, g.get(), nullptr, 0.0f, 64, 1,
                                            SV_NONFINITE_ERROR, acc.get(), sel.get(), st.get(),
                                            nullptr));
  DeviceArray<char> temp(bytes);
  size_t small = bytes - 1;
  const std::vector<float> before = acc.download();
  EXPECT_EQ(signvote::kernels::accumulateTopK(temp.get(), &small, g.get(), nullptr, 0.0f, 64, 1,
                                              SV_NONFINITE_ERROR, acc.get(), sel.get(), st.get(),
                                              nullptr),
            cudaErrorInvalidValue);
  // Each pointer missing alone (n > 0, k > 0): the input, the output, the selection, the status.
  const std::vector<TopKStatus> statusBefore = st.download();
  for (int missing = 0; missing < 4; ++missing) {
    SCOPED_TRACE("missing pointer " + std::to_string(missing));
    EXPECT_EQ(signvote::kernels::accumulateTopK(
                  temp.get(), &bytes, missing == 0 ? nullptr : g.get(), nullptr, 0.0f, 64, 1,
                  SV_NONFINITE_ERROR, missing == 1 ? nullptr : acc.get(),
                  missing == 2 ? nullptr : sel.get(), missing == 3 ? nullptr : st.get(), nullptr),
              cudaErrorInvalidValue);
  }
  CUDA_OK(cudaDeviceSynchronize());
  const std::vector<float> after = acc.download();
  EXPECT_EQ(std::memcmp(before.data(), after.data(), 64 * 4), 0);
  EXPECT_EQ(std::memcmp(statusBefore.data(), st.download().data(), sizeof(TopKStatus)), 0);
}

// Sizes of 2^31 elements and more (8 GiB per array), when SIGNVOTE_TEST_HUGE=1 and the device
// has the memory: selection in place (acc aliases g) at K = 0.1%.
TEST(TopKKernel, HugeBucketInPlace) {
  SV_REQUIRE_GPU();
  const char* huge = std::getenv("SIGNVOTE_TEST_HUGE");
  if (huge == nullptr || std::strcmp(huge, "1") != 0) GTEST_SKIP() << "set SIGNVOTE_TEST_HUGE=1";
  const uint64_t n = (uint64_t{1} << 31) + 5, k = n / 1000;
  if (svtest::gpuFreeBytes() < n * 4 + k * 4 + (uint64_t{1} << 30))
    GTEST_SKIP() << "not enough device memory";
  std::mt19937_64 rng(svtest::testSeed() + 5);
  std::vector<float> g(n);
  std::normal_distribution<float> d;
  for (float& x : g) x = d(rng);
  DeviceArray<float> dg(n);
  DeviceArray<uint32_t> dsel(k);
  DeviceArray<TopKStatus> st(1);
  ASSERT_TRUE(dg.ok() && dsel.ok());
  dg.upload(g);
  size_t bytes = 0;
  CUDA_OK(signvote::kernels::accumulateTopK(nullptr, &bytes, dg.get(), nullptr, 0.0f, n, k,
                                            SV_NONFINITE_ERROR, dg.get(), dsel.get(), st.get(),
                                            nullptr));
  DeviceArray<char> temp(bytes);
  CUDA_OK(signvote::kernels::accumulateTopK(temp.get(), &bytes, dg.get(), nullptr, 0.0f, n, k,
                                            SV_NONFINITE_ERROR, dg.get(), dsel.get(), st.get(),
                                            nullptr));
  CUDA_OK(cudaDeviceSynchronize());
  std::vector<uint32_t> expect(k);
  signvote::ref::selectTopKByMagnitude(g.data(), n, k, expect.data());
  ASSERT_EQ(dsel.download(), expect);
}

}  // namespace
