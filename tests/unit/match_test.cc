// The creation handshake of multi-process worlds (gloo, NCCL): which rank and field differ.
#include "common.h"
#include "match.h"

namespace {

using namespace signvote::detail;

TEST(Handshake, AgreeingRanksPassAndTheFirstDifferingRankIsNamed) {
  svConfig_t cfg = SV_CONFIG_INITIALIZER;
  cfg.check = SV_CHECK_GLOBAL;
  const Handshake base = handshakeOf(cfg);
  for (int W = 1; W <= 6; ++W) {
    std::vector<Handshake> all(W, base);
    int field = -7;
    EXPECT_EQ(handshakeMismatch(all.data(), W, &field), -1);
    EXPECT_EQ(field, -7) << "untouched when all agree";
  }
  std::vector<Handshake> all(5, base);
  svConfig_t other = cfg;
  other.nonFinite = SV_NONFINITE_PROPAGATE;
  all[3] = handshakeOf(other);
  other = cfg;
  other.check = SV_CHECK_NONE;
  all[4] = handshakeOf(other);
  int field = -1;
  EXPECT_EQ(handshakeMismatch(all.data(), 5, &field), 3);
  EXPECT_STREQ(handshakeFieldName(field), "config->nonFinite");
  all[3] = base;
  EXPECT_EQ(handshakeMismatch(all.data(), 5, &field), 4);
  EXPECT_STREQ(handshakeFieldName(field), "config->check (after SIGNVOTE_CHECK)");
  all[4] = base;
  all[1].v[0] += 1;  // a rank built from another library version
  EXPECT_EQ(handshakeMismatch(all.data(), 5, &field), 1);
  EXPECT_STREQ(handshakeFieldName(field), "library version");
  all[1] = base;
  all[2].v[1] += 1;
  EXPECT_EQ(handshakeMismatch(all.data(), 5, &field), 2);
  EXPECT_STREQ(handshakeFieldName(field), "wire version");
  // Rank 0 is the reference: when it alone differs, rank 1 is the first to differ from it.
  all[2] = base;
  all[0].v[2] += 1;
  EXPECT_EQ(handshakeMismatch(all.data(), 5, &field), 1);
}

}  // namespace
