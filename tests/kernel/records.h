// Records built on the host for the kernel suites: a header template and the host encoder's
// sealed record (sparse, or sparse values with the float32 values after the payload).
#pragma once

#include <vector>

#include "reference/schemes.h"
#include "reference/sparse_record.h"
#include "reference/wire.h"

namespace svtest {

inline signvote::ref::WireHeader recordTemplate(svScheme_t scheme, svFormat_t format,
                                                uint64_t n, uint64_t k, uint32_t rank,
                                                uint64_t seq) {
  namespace ref = signvote::ref;
  ref::WireHeader h{};
  h.magic = ref::kWireMagic;
  h.version = SIGNVOTE_WIRE_VERSION;
  h.rank = rank;
  h.scheme = static_cast<uint8_t>(scheme);
  h.format = static_cast<uint8_t>(format);
  h.vote = SV_VOTE_TERNARY;
  h.seq = seq;
  h.count = n;
  h.k = k;
  return h;
}

// Header, payload and (format SV_FORMAT_SPARSE_VALUES) values for the selection sel of acc,
// sealed over everything after the header.
inline std::vector<uint64_t> hostRecord(const signvote::ref::SparseLayout& L,
                                        const std::vector<float>& acc,
                                        const std::vector<uint32_t>& sel,
                                        signvote::ref::WireHeader tmpl) {
  namespace ref = signvote::ref;
  const uint64_t valueWords = tmpl.format == SV_FORMAT_SPARSE_VALUES ? (L.k + 1) / 2 : 0;
  std::vector<uint64_t> rec(8 + L.payloadWords() + valueWords);
  std::vector<uint32_t> entries(L.k);
  std::vector<uint8_t> neg(L.k);
  tmpl.entries = ref::s3gdEncodeSparse(L, acc.data(), sel.data(), entries.data(), neg.data(),
                                       rec.data() + 8);
  if (valueWords != 0)
    ref::encodeValues(acc.data(), entries.data(), tmpl.entries, L.k,
                      rec.data() + 8 + L.payloadWords());
  ref::sealRecord(tmpl, rec.data(), L.payloadWords() + valueWords);
  return rec;
}

}  // namespace svtest
