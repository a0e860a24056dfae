// libFuzzer target: every check the host backend runs on bytes that come from a peer (headers,
// sparse records, sparse values, scaled and chunk sign planes, vote counts, sign-plane votes,
// dgs_async's pushes and replies) on arbitrary bytes, each in a buffer of exactly the size the
// plan gives it, so that AddressSanitizer sees any read or write past it. Decoders that accept
// a message must also keep their promises (indices below N, one vote per entry, no NaN scale
// made up). The corpus holds valid messages (dgs_async's pushes and replies among them, made
// by the golden model), so that mutations start past the header and checksum checks.
// Input: 1 selector byte, 4 bytes N, 4 bytes K, 1 byte W, 4 bytes of entries, then the message.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "reference/schemes.h"
#include "reference/sparse_record.h"
#include "reference/wire.h"

using namespace signvote::ref;

namespace {

struct Reader {
  const uint8_t* p;
  size_t left;
  uint32_t u32() {
    uint32_t v = 0;
    const size_t take = left < 4 ? left : 4;
    std::memcpy(&v, p, take);
    p += take;
    left -= take;
    return v;
  }
  uint8_t u8() {
    if (left == 0) return 0;
    --left;
    return *p++;
  }
  // Exactly `words` words: the message bytes, zero-padded when the input is short.
  std::vector<uint64_t> words(size_t words) {
    std::vector<uint64_t> w(words, 0);
    const size_t take = left < words * 8 ? left : words * 8;
    if (take) std::memcpy(w.data(), p, take);
    p += take;
    left -= take;
    return w;
  }
};

void require(bool ok) {
  if (!ok) std::abort();  // a broken promise: libFuzzer reports it as a crash
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Reader in{data, size};
  const unsigned what = in.u8() % 9;
  const uint64_t n = in.u32() % 5000;
  const uint64_t k = in.u32() % (n + 1);
  const int W = 1 + in.u8() % 16;
  const uint64_t chunkWords = ((n + 63) / 64 + W - 1) / W;
  const uint32_t entriesRaw = in.u32();
  switch (what) {
    case 0:
    case 1: {  // sparse record, optionally followed by values
      const SparseLayout layout = sparseLayout(n, k);
      const uint64_t entries = entriesRaw % (k + 2);  // also one past K
      std::vector<uint64_t> payload = in.words(layout.payloadWords());
      std::vector<int32_t> votes(n, 0);
      if (what == 0) {
        if (addSparseVotes(layout, payload.data(), entries, votes.data())) {
          uint64_t cast = 0;
          for (int32_t v : votes) cast += static_cast<uint64_t>(v < 0 ? -v : v);
          require(cast == entries);
        }
        break;
      }
      std::vector<uint64_t> values = in.words((k + 1) / 2);
      if (sparseValuesValid(layout, payload.data(), entries, values.data())) {
        std::vector<float> sums(n, 0.0f);
        addSparseValues(layout, payload.data(), entries, values.data(), sums.data());
        uint64_t nonzero = 0;
        for (float s : sums) nonzero += s != 0.0f;
        require(nonzero == entries);  // distinct indices, non-zero values
      }
      break;
    }
    case 2: {  // ef_sign's scaled sign planes
      std::vector<uint64_t> planes = in.words(2 * ((n + 63) / 64));
      if (scaledPlanesValid(planes.data(), n)) {
        std::vector<float> out(n);
        const uint64_t* one = planes.data();
        const float scale = 1.0f;
        efSignMean(&one, &scale, 1, n, out.data());
      }
      break;
    }
    case 3: {  // liec's owner step on W chunk-signs messages
      const uint64_t words = chunkSignsWords(chunkWords);
      std::vector<uint64_t> recv = in.words(W * words);
      const uint64_t len = entriesRaw % (chunkWords * 64 + 1);
      std::vector<float> e(chunkWords * 64, -0.0f), eNew(chunkWords * 64);
      std::vector<uint64_t> result(words);
      bool finite = true;  // every scale finite: then the owner's own message is well formed
      for (int s = 0; s < W; ++s)
        finite &= ((recv[s * words + 2 * chunkWords] >> 23) & 0xFF) != 0xFF;
      if (liecOwner(recv.data(), W, len, chunkWords, e.data(), eNew.data(), result.data()) &&
          finite)
        require(chunkSignsValid(result.data(), len, chunkWords));
      break;
    }
    case 4: {  // s3gd_mv's summed counts
      const unsigned countBytes = (entriesRaw & 1) ? 2 : 1;
      std::vector<uint64_t> counts = in.words((chunkWords * 64 * countBytes + 7) / 8);
      std::vector<uint64_t> planes(2 * chunkWords);
      countsToPlanes(counts.data(), countBytes, chunkWords, W, planes.data());
      break;
    }
    case 5: {  // signsgd_mv's sign-plane vote, then the output
      const svVote_t vote = (entriesRaw & 1) ? SV_VOTE_BINARY : SV_VOTE_TERNARY;
      const unsigned planes = vote == SV_VOTE_BINARY ? 1 : 2;
      std::vector<uint64_t> recv = in.words(W * planes * chunkWords);
      std::vector<uint64_t> result(planes * chunkWords);
      if (voteSignPlanes(recv.data(), vote, chunkWords, W, result.data())) {
        std::vector<float> out(chunkWords * 64 < n ? chunkWords * 64 : n);
        require(planesToOutput(result.data(), planes, chunkWords, out.size(), out.data()));
      }
      break;
    }
    case 7:
    case 8: {  // dgs_async: a push (server) or a reply (worker), whole messages
      const bool push = what == 7;
      const uint64_t downK = push ? entriesRaw % (n + 1) : k;  // the reply's K is the downlink K
      const SparseLayout layout = sparseLayout(n, k);
      const size_t payloadWords = push || k != 0 ? layout.payloadWords() + (k + 1) / 2
                                                 : (n + 1) / 2;
      std::vector<uint64_t> rec = in.words(8 + payloadWords);
      const HeaderExpect e{push ? 1 + entriesRaw % 15 : 0, SV_SCHEME_DGS_ASYNC,
                           SV_FORMAT_SPARSE_VALUES, SV_VOTE_TERNARY, entriesRaw >> 24, n, k};
      auto& h = *reinterpret_cast<WireHeader*>(rec.data());
      if (entriesRaw & (1u << 20)) {  // past the header: its expected fields, sealed
        h.magic = kWireMagic;
        h.version = SIGNVOTE_WIRE_VERSION;
        h.rank = e.rank;
        h.scheme = e.scheme;
        h.format = e.format;
        h.vote = e.vote;
        h.seq = e.seq;
        h.count = n;
        h.k = k;
        sealRecord(h, rec.data(), payloadWords);
      }
      const uint64_t* payload = rec.data() + 8;
      const char* why = nullptr;
      if (push) {
        const svResult_t r = checkAsyncPush(rec.data(), payloadWords, e, layout, downK, &why);
        require(r == svSuccess || why != nullptr);
        if (r == svSuccess && !(h.flags & kFlagNonFinite)) {
          std::vector<float> t(n, 0.0f);
          addSparseValues(layout, payload, h.entries, payload + layout.payloadWords(), t.data());
          uint64_t nonzero = 0;
          for (float x : t) nonzero += x != 0.0f;
          require(nonzero == h.entries);
        }
        break;
      }
      svResult_t refusal = svSuccess;
      const bool nan = (entriesRaw >> 21) & 1;
      const svResult_t r = checkAsyncReply(rec.data(), payloadWords, e, nan, &refusal, &why);
      require(r == svSuccess || (r == svRemoteError && why != nullptr));
      require(refusal == svSuccess || refusal == svMismatch || refusal == svCorruptInput);
      if (r == svSuccess && refusal == svSuccess && k != 0) {
        std::vector<float> d(n, 0.0f);
        addSparseValues(layout, payload, h.entries, payload + layout.payloadWords(), d.data());
      } else if (r == svSuccess && refusal == svSuccess) {
        require(h.entries == 0 && (n % 2 == 0 || (payload[payloadWords - 1] >> 32) == 0));
      }
      break;
    }
    default: {  // a header against what the receiver expects
      std::vector<uint64_t> bytes = in.words(sizeof(WireHeader) / 8);
      WireHeader h;
      std::memcpy(&h, bytes.data(), sizeof(h));
      const HeaderExpect e{entriesRaw % 16, static_cast<uint8_t>(entriesRaw >> 8),
                           static_cast<uint8_t>(entriesRaw >> 16), 0, entriesRaw >> 24, n, k};
      const char* why = nullptr;
      const svResult_t r = validateHeader(h, e, &why);
      require(r == svSuccess || why != nullptr);
      break;
    }
  }
  return 0;
}
