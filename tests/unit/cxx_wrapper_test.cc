// The header-only C++ wrapper: RAII, exceptions carrying the code and the text, groups.
#include <stdlib.h>

#include "common.h"
#include "signvote/signvote.hpp"

namespace {

TEST(CxxWrapper, ExchangeInAGroup) {
  auto comms = signvote::Comm::loopback(3);
  ASSERT_EQ(comms.size(), 3u);
  EXPECT_EQ(comms[2].rank(), 2);
  EXPECT_EQ(comms[0].size(), 3);
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.count = 64;
  cfg.k = 4;
  std::vector<signvote::Bucket> b;
  for (auto& c : comms) b.emplace_back(c, cfg);
  std::vector<std::vector<float>> g(3, std::vector<float>(64, 0.5f)), out(3, std::vector<float>(64));
  for (int r = 0; r < 3; ++r) g[r][10 + r] = -9.0f;
  signvote::group([&] {
    for (int r = 0; r < 3; ++r) b[r].exchange(g[r].data(), out[r].data());
  });
  // Each rank's 4 picks: its -9 plus indices 0..2 (ties at 0.5 by lowest index).
  for (int i = 0; i < 64; ++i) {
    const float expect = (i >= 10 && i < 13) ? -1.0f : i < 3 ? 1.0f : 0.0f;
    EXPECT_EQ(out[1][i], expect) << i;
  }
  EXPECT_EQ(comms[0].sequence(), 1u);
  EXPECT_EQ(b[0].residual()[10], 0.0f);
  EXPECT_EQ(b[0].residual()[20], 0.5f);
}

// The caller's workspace (any address, at least workspaceBytes()) gives the owned one's bits;
// a short one throws naming the size, with no effect.
TEST(CxxWrapper, ExchangeWithTheCallersWorkspace) {
  std::mt19937_64 rng(svtest::testSeed());
  auto owned = signvote::Comm::loopback(2), given = signvote::Comm::loopback(2);
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.count = 1000;
  cfg.k = 30;
  std::vector<signvote::Bucket> a, b;
  for (int r = 0; r < 2; ++r) {
    a.emplace_back(owned[r], cfg);
    b.emplace_back(given[r], cfg);
  }
  const size_t need = b[0].workspaceBytes();
  ASSERT_GT(need, 0u);
  std::vector<std::vector<unsigned char>> ws(2, std::vector<unsigned char>(need + 3));
  std::vector<std::vector<float>> outA(2, std::vector<float>(1000)), outB = outA;
  for (int step = 0; step < 3; ++step) {
    std::vector<std::vector<float>> g = {svtest::normal(1000, rng), svtest::normal(1000, rng)};
    signvote::group([&] {
      for (int r = 0; r < 2; ++r) a[r].exchange(g[r].data(), outA[r].data());
    });
    signvote::group([&] {
      for (int r = 0; r < 2; ++r)
        b[r].exchange(g[r].data(), outB[r].data(), ws[r].data() + 3, need);
    });
    for (int r = 0; r < 2; ++r) {
      svtest::expectSameBits(outB[r], outA[r], "output");
      svtest::expectSameBits(b[r].residual(), a[r].residual(), "residual");
    }
  }
  const std::vector<float> before = b[0].residual(), out0 = outB[0];
  std::vector<float> g(1000, 1.0f);
  try {
    signvote::group([&] {
      b[0].exchange(g.data(), outB[0].data(), ws[0].data(), need - 1);
      b[1].exchange(g.data(), outB[1].data(), ws[1].data(), need);
    });
    ADD_FAILURE() << "a short workspace was accepted";
  } catch (const signvote::Error& e) {
    EXPECT_EQ(e.code(), svInvalidArgument);
    EXPECT_TRUE(svtest::mentions(e.what(), std::to_string(need))) << e.what();
  }
  svtest::expectSameBits(b[0].residual(), before, "residual after the refusal");
  svtest::expectSameBits(outB[0], out0, "output after the refusal");
  EXPECT_EQ(given[0].sequence(), 3u);
}

TEST(CxxWrapper, TimesNeedTimingOn) {
  auto plain = signvote::Comm::loopback(1);
  EXPECT_THROW(plain[0].times(), signvote::Error);
  svConfig_t config = SV_CONFIG_INITIALIZER;
  config.timing = SV_TIMING_ON;
  auto timed = signvote::Comm::loopback(2, &config);
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.count = 64;
  cfg.k = 4;
  cfg.format = SV_FORMAT_SPARSE;
  std::vector<signvote::Bucket> b;
  for (auto& c : timed) b.emplace_back(c, cfg);
  std::vector<float> g(64, 0.5f);
  std::vector<std::vector<float>> out(2, std::vector<float>(64));
  signvote::group([&] {
    for (int r = 0; r < 2; ++r) b[r].exchange(g.data(), out[r].data());
  });
  EXPECT_EQ(timed[1].times().calls, 1u);  // the records' allgather
}

TEST(CxxWrapper, ErrorsThrowWithCodeAndText) {
  auto comms = signvote::Comm::loopback(1);
  svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
  cfg.count = 10;
  cfg.k = 11;
  try {
    signvote::Bucket b(comms[0], cfg);
    FAIL() << "no exception";
  } catch (const signvote::Error& e) {
    EXPECT_EQ(e.code(), svInvalidArgument);
    EXPECT_NE(std::string(e.what()).find("config->k = 11"), std::string::npos) << e.what();
  }
  EXPECT_THROW(signvote::Comm::loopback(0), signvote::Error);
  // A failing call inside group() still closes the group, and the group's error is thrown.
  auto two = signvote::Comm::loopback(2);
  cfg.k = 1;
  signvote::Bucket b0(two[0], cfg), b1(two[1], cfg);
  std::vector<float> g(10, 1.0f), o(10);
  EXPECT_THROW(signvote::group([&] {
                 b0.exchange(g.data(), o.data());
                 b1.exchange(nullptr, o.data());
               }),
               signvote::Error);
  EXPECT_EQ(svGroupEnd(), svInvalidUsage) << "the group must be closed";
}

// A one-rank gloo world in this process: no group is needed, and a bad rank throws.
TEST(CxxWrapper, GlooCommOfOneRank) {
  char dir[] = "/tmp/signvote-gloo-XXXXXX";
  ASSERT_NE(mkdtemp(dir), nullptr);
  setenv("SIGNVOTE_SOCKET_IFNAME", "lo", 1);
  {
    signvote::Comm comm = signvote::Comm::gloo(1, 0, dir);
    EXPECT_EQ(comm.size(), 1);
    svBucketConfig_t cfg = SV_BUCKET_CONFIG_INITIALIZER;
    cfg.count = 100;
    cfg.k = 3;
    signvote::Bucket b(comm, cfg);
    std::vector<float> g(100, 0.25f), out(100, 7.0f);
    g[40] = -2.0f;
    b.exchange(g.data(), out.data());
    EXPECT_EQ(out[40], -1.0f);
    EXPECT_EQ(out[0], 1.0f);   // ties at 0.25 go to the lowest indices: 0 and 1
    EXPECT_EQ(out[2], 0.0f);
    EXPECT_EQ(comm.sequence(), 1u);
  }
  try {
    signvote::Comm::gloo(1, 5, dir);
    ADD_FAILURE() << "rank 5 of 1 was accepted";
  } catch (const signvote::Error& e) {
    EXPECT_EQ(e.code(), svInvalidArgument);
    EXPECT_TRUE(svtest::mentions(e.what(), "rank = 5"));
  }
  (void)!system((std::string("rm -rf ") + dir).c_str());
}

// Comm::nccl throws the C API's refusal (nothing of NCCL is touched before the arguments pass).
TEST(CxxWrapper, NcclCommRefusalThrows) {
  svConfig_t host = SV_CONFIG_INITIALIZER;  // SV_BACKEND_HOST
  try {
    signvote::Comm::nccl(reinterpret_cast<struct ncclComm*>(uintptr_t{0x1000}), &host);
    ADD_FAILURE() << "a host-backend config was accepted";
  } catch (const signvote::Error& e) {
    EXPECT_EQ(e.code(), svInvalidArgument);
    EXPECT_TRUE(svtest::mentions(e.what(), "config->backend = 0"));
  }
}

}  // namespace
