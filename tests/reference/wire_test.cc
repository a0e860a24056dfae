// Message headers: sealing, and validation naming the failing field.
#include <string>

#include "common.h"
#include "reference/wire.h"

namespace {

using namespace signvote::ref;

WireHeader good() {
  WireHeader h{};
  h.magic = kWireMagic;
  h.version = SIGNVOTE_WIRE_VERSION;
  h.rank = 3;
  h.scheme = SV_SCHEME_S3GD_MV;
  h.format = SV_FORMAT_SPARSE;
  h.vote = SV_VOTE_TERNARY;
  h.seq = 41;
  h.count = 1000;
  h.k = 10;
  h.entries = 9;
  sealHeader(&h);
  return h;
}

const HeaderExpect kExpect{3, SV_SCHEME_S3GD_MV, SV_FORMAT_SPARSE, SV_VOTE_TERNARY, 41, 1000, 10};

std::string verdict(const WireHeader& h, svResult_t* code) {
  const char* why = "";
  *code = validateHeader(h, kExpect, &why);
  return why;
}

TEST(Wire, GoodHeaderPasses) {
  svResult_t c;
  verdict(good(), &c);
  EXPECT_EQ(c, svSuccess);
}

TEST(Wire, EveryFieldIsChecked) {
  struct Case {
    void (*mutate)(WireHeader*);
    svResult_t code;
    const char* why;
  };
  const Case cases[] = {
      {[](WireHeader* h) { h->magic ^= 1; }, svCorruptInput, "bad magic"},
      {[](WireHeader* h) { h->version += 1; }, svMismatch, "wire version"},
      {[](WireHeader* h) { h->rank = 2; }, svCorruptInput, "rank"},
      {[](WireHeader* h) { h->scheme = SV_SCHEME_DENSE; }, svMismatch, "scheme"},
      {[](WireHeader* h) { h->format = SV_FORMAT_COUNTS; }, svMismatch, "format"},
      {[](WireHeader* h) { h->vote = SV_VOTE_BINARY; }, svMismatch, "vote"},
      {[](WireHeader* h) { h->seq = 40; }, svMismatch, "sequence number"},
      {[](WireHeader* h) { h->count = 999; }, svMismatch, "count"},
      {[](WireHeader* h) { h->k = 11; }, svMismatch, "k"},
      {[](WireHeader* h) { h->entries = 11; }, svCorruptInput, "entries > k"},
      {[](WireHeader* h) { h->flags = 0x8000; }, svCorruptInput, "unknown flags"},
  };
  for (const Case& c : cases) {
    WireHeader h = good();
    c.mutate(&h);
    sealHeader(&h);  // a well-formed header that says something else
    svResult_t code;
    EXPECT_EQ(verdict(h, &code), c.why);
    EXPECT_EQ(code, c.code) << c.why;
  }
}

TEST(Wire, ChecksumCatchesEveryBitFlip) {
  const WireHeader h0 = good();
  for (int bit = 0; bit < 64 * 8; ++bit) {
    WireHeader h = h0;
    reinterpret_cast<unsigned char*>(&h)[bit / 8] ^= static_cast<unsigned char>(1u << (bit % 8));
    svResult_t code;
    verdict(h, &code);
    EXPECT_NE(code, svSuccess) << "bit " << bit;
  }
}

TEST(Wire, PayloadChecksumDependsOnOrder) {
  const uint64_t a[2] = {1, 2}, b[2] = {2, 1};
  EXPECT_NE(checksumWords(a, 2), checksumWords(b, 2));
  EXPECT_NE(checksumWords(a, 1), checksumWords(a, 2));
}

}  // namespace
