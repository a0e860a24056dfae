// What every rank of an exchange must agree on, as a fixed-size record: compared directly
// inside a loopback world and allgathered first across processes (SV_CHECK_GLOBAL).
#pragma once

#include <cstdint>

#include "signvote/signvote.h"

namespace signvote::detail {

struct Fingerprint {
  static constexpr int kFields = 23;
  uint64_t v[kFields];
};

// A call of a group of `calls` exchanges on this bucket, at sequence number seq.
Fingerprint fingerprintOf(const svBucket& b, uint64_t seq, uint64_t calls);
// The first field where a and b differ, or -1.
int firstDifference(const Fingerprint& a, const Fingerprint& b);
const char* fieldName(int field);

// What every rank of a multi-process world must share, compared once at creation so that ranks
// built or configured differently fail there rather than in the middle of training.
struct Handshake {
  static constexpr int kFields = 4;
  uint64_t v[kFields];  // library version, wire version, nonFinite, check (resolved)
};
Handshake handshakeOf(const svConfig_t& resolved);
// The first rank whose handshake differs from rank 0's, with the field in *field; -1 if none.
int handshakeMismatch(const Handshake* all, int nranks, int* field);
const char* handshakeFieldName(int field);

}  // namespace signvote::detail
