// dgs_async's message checks (checkAsyncPush on the server, checkAsyncReply on the worker):
// well-formed messages pass; each kind of damage gets its verdict and names its reason.
#include <string>

#include "common.h"
#include "reference/schemes.h"
#include "reference/topk.h"

namespace {

using namespace signvote::ref;
using svtest::normal;
using svtest::testSeed;

constexpr uint64_t kSeq = 5;

// A dgs_async header from rank 0 with k, entries and aux 0, unsealed.
WireHeader dgsAsyncHeader(uint16_t flags, uint64_t n) {
  WireHeader h{};
  h.magic = kWireMagic;
  h.version = SIGNVOTE_WIRE_VERSION;
  h.flags = flags;
  h.scheme = SV_SCHEME_DGS_ASYNC;
  h.format = SV_FORMAT_SPARSE_VALUES;
  h.vote = SV_VOTE_TERNARY;
  h.seq = kSeq;
  h.count = n;
  return h;
}

// A sealed sparse-values record of x's exact top-k (header fields as a dgs_async message).
std::vector<uint64_t> valuesRecord(const std::vector<float>& x, uint64_t k, uint32_t rank,
                                   uint64_t aux, uint16_t flags) {
  const SparseLayout layout = sparseLayout(x.size(), k);
  const size_t words = layout.payloadWords() + (k + 1) / 2;
  std::vector<uint64_t> rec(8 + words, 0);
  std::vector<uint32_t> sel(k), entries(k);
  std::vector<uint8_t> neg(k);
  selectTopKByMagnitude(x.data(), x.size(), k, sel.data());
  WireHeader h = dgsAsyncHeader(flags, x.size());
  h.rank = rank;
  h.k = k;
  h.aux = aux;
  if (!(flags & (kFlagNonFinite | kFlagRejected))) {
    h.entries = s3gdEncodeSparse(layout, x.data(), sel.data(), entries.data(), neg.data(),
                                 rec.data() + 8);
    encodeValues(x.data(), entries.data(), h.entries, k, rec.data() + 8 + layout.payloadWords());
  }
  sealRecord(h, rec.data(), words);
  return rec;
}

// A dense reply: N floats after the header.
std::vector<uint64_t> denseReply(const std::vector<float>& d, uint16_t flags) {
  const size_t words = (d.size() + 1) / 2;
  std::vector<uint64_t> rec(8 + words, 0);
  if (!(flags & (kFlagNonFinite | kFlagRejected)) && !d.empty())
    std::memcpy(rec.data() + 8, d.data(), d.size() * 4);
  sealRecord(dgsAsyncHeader(flags, d.size()), rec.data(), words);
  return rec;
}

WireHeader& header(std::vector<uint64_t>& rec) {
  return *reinterpret_cast<WireHeader*>(rec.data());
}
void reseal(std::vector<uint64_t>& rec) { sealRecord(header(rec), rec.data(), rec.size() - 8); }

HeaderExpect expectFrom(uint32_t rank, uint64_t n, uint64_t k) {
  return {rank, SV_SCHEME_DGS_ASYNC, SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY, kSeq, n, k};
}

struct Verdict {
  svResult_t code, refusal = svSuccess;
  std::string why;
};
Verdict push(const std::vector<uint64_t>& rec, uint64_t n, uint64_t k, uint64_t downK) {
  const char* why = "";
  const svResult_t r = checkAsyncPush(rec.data(), rec.size() - 8, expectFrom(2, n, k),
                                      sparseLayout(n, k), downK, &why);
  return {r, svSuccess, why};
}
Verdict reply(const std::vector<uint64_t>& rec, uint64_t n, uint64_t downK, bool pushNaN) {
  const char* why = "";
  Verdict v{svSuccess, svSuccess, ""};
  v.code = checkAsyncReply(rec.data(), rec.size() - 8, expectFrom(0, n, downK), pushNaN,
                           &v.refusal, &why);
  v.why = why;
  return v;
}

TEST(AsyncMessages, PushChecks) {
  std::mt19937_64 rng(testSeed());
  for (uint64_t n : {1, 33, 1000}) {
    SCOPED_TRACE(n);
    const uint64_t k = (n + 9) / 10;
    const std::vector<float> x = normal(n, rng);
    EXPECT_EQ(push(valuesRecord(x, k, 2, 7, 0), n, k, 7).code, svSuccess);
    // A NaN push carries an empty payload, unchecked.
    EXPECT_EQ(push(valuesRecord(x, k, 2, 7, kFlagNonFinite), n, k, 7).code, svSuccess);

    const Verdict other = push(valuesRecord(x, k, 2, 6, 0), n, k, 7);
    EXPECT_EQ(other.code, svMismatch);
    EXPECT_EQ(other.why, "downK");
    const Verdict wrongRank = push(valuesRecord(x, k, 3, 7, 0), n, k, 7);
    EXPECT_EQ(wrongRank.code, svCorruptInput);
    EXPECT_EQ(wrongRank.why, "rank");

    std::vector<uint64_t> flipped = valuesRecord(x, k, 2, 7, 0);
    flipped[8] ^= 1;  // the checksum no longer matches
    EXPECT_EQ(push(flipped, n, k, 7).code, svCorruptInput);
    EXPECT_EQ(push(flipped, n, k, 7).why, "payload");
    std::vector<uint64_t> sign = valuesRecord(x, k, 2, 7, 0);
    sign[8 + sparseLayout(n, k).payloadWords()] ^= uint64_t{1} << 31;  // value 0 against its entry
    reseal(sign);
    EXPECT_EQ(push(sign, n, k, 7).code, svCorruptInput);
    std::vector<uint64_t> rejected = valuesRecord(x, k, 2, 7, kFlagRejected);  // a reply's flag
    EXPECT_EQ(push(rejected, n, k, 7).code, svCorruptInput);
    EXPECT_EQ(push(rejected, n, k, 7).why, "unknown flags");
  }
}

TEST(AsyncMessages, ReplyChecks) {
  std::mt19937_64 rng(testSeed());
  for (uint64_t n : {0, 1, 2, 33, 1000}) {
    SCOPED_TRACE(n);
    const std::vector<float> d = normal(n, rng);
    Verdict v = reply(denseReply(d, 0), n, 0, false);
    EXPECT_EQ(v.code, svSuccess);
    EXPECT_EQ(v.refusal, svSuccess);
    EXPECT_EQ(reply(denseReply(d, kFlagNonFinite), n, 0, true).code, svSuccess);
    v = reply(denseReply(d, kFlagNonFinite), n, 0, false);  // a NaN the push did not carry
    EXPECT_EQ(v.code, svRemoteError);
    EXPECT_EQ(v.why, "NaN flag");
    EXPECT_EQ(reply(denseReply(d, 0), n, 0, true).code, svRemoteError);

    for (svResult_t code : {svMismatch, svCorruptInput, svInternalError}) {
      std::vector<uint64_t> refused = denseReply(d, kFlagRejected);
      header(refused).aux = static_cast<uint64_t>(code);
      reseal(refused);
      v = reply(refused, n, 0, false);
      EXPECT_EQ(v.code, code == svInternalError ? svRemoteError : svSuccess) << code;
      EXPECT_EQ(v.refusal, code == svInternalError ? svSuccess : code) << code;
    }
    std::vector<uint64_t> withK = denseReply(d, 0);
    header(withK).k = 1;  // a dense reply has k = 0
    reseal(withK);
    EXPECT_EQ(reply(withK, n, 0, false).code, svRemoteError);
    if (n % 2 == 1) {  // the padding half of the last word must stay zero
      std::vector<uint64_t> pad = denseReply(d, 0);
      pad.back() |= uint64_t{1} << 40;
      reseal(pad);
      v = reply(pad, n, 0, false);
      EXPECT_EQ(v.code, svRemoteError);
      EXPECT_EQ(v.why, "payload");
    }
    if (n > 0) {
      std::vector<uint64_t> flipped = denseReply(d, 0);
      flipped[8] ^= 1;
      EXPECT_EQ(reply(flipped, n, 0, false).why, "payload checksum");

      const uint64_t downK = (n + 2) / 3;
      std::vector<uint64_t> sparse = valuesRecord(d, downK, 0, 0, 0);
      EXPECT_EQ(reply(sparse, n, downK, false).code, svSuccess);
      sparse[8 + sparseLayout(n, downK).payloadWords()] ^= uint64_t{1} << 31;
      reseal(sparse);
      v = reply(sparse, n, downK, false);
      EXPECT_EQ(v.code, svRemoteError);
      EXPECT_EQ(v.why, "payload");
    }
  }
}

}  // namespace
