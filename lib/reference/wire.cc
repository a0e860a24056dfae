#include "wire.h"

#include <cstring>

#include "mix.h"

namespace signvote::ref {

uint32_t checksumWords(const uint64_t* words, size_t nwords) {
  uint64_t acc = 0;
  for (size_t i = 0; i < nwords; ++i) acc ^= checksumTerm(words[i], i);
  return checksumFold(nwords, acc);
}

void sealHeader(WireHeader* h) {
  h->headerChecksum = 0;
  uint64_t w[8];
  std::memcpy(w, h, sizeof(w));
  h->headerChecksum = checksumWords(w, 8);
}

void sealRecord(WireHeader h, uint64_t* record, size_t payloadWords) {
  h.payloadChecksum = checksumWords(payloadOf(record), payloadWords);
  sealHeader(&h);
  std::memcpy(record, &h, sizeof(h));
}

svResult_t validateHeader(const WireHeader& h, const HeaderExpect& e, const char** why) {
  WireHeader copy = h;
  sealHeader(&copy);
  if (h.magic != kWireMagic) return *why = "bad magic", svCorruptInput;
  if (copy.headerChecksum != h.headerChecksum) return *why = "header checksum", svCorruptInput;
  if (h.version != SIGNVOTE_WIRE_VERSION) return *why = "wire version", svMismatch;
  if (h.rank != e.rank) return *why = "rank", svCorruptInput;
  if (h.scheme != e.scheme) return *why = "scheme", svMismatch;
  if (h.format != e.format) return *why = "format", svMismatch;
  if (h.vote != e.vote) return *why = "vote", svMismatch;
  if (h.seq != e.seq) return *why = "sequence number", svMismatch;
  if (h.count != e.count) return *why = "count", svMismatch;
  if (h.k != e.k) return *why = "k", svMismatch;
  if (h.entries > h.k) return *why = "entries > k", svCorruptInput;
  if ((h.flags & ~e.flags) != 0) return *why = "unknown flags", svCorruptInput;
  return svSuccess;
}

}  // namespace signvote::ref
