// Wire formats shared by every backend (the GPU encoders must produce the same bits).
// docs/formats.md is the prose version of this file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "signvote/signvote.h"

namespace signvote::ref {

constexpr uint32_t kWireMagic = 0x31575653u;  // "SVW1" little-endian
constexpr uint16_t kFlagNonFinite = 1u << 0;  // this rank's input had a NaN
constexpr uint16_t kFlagRejected = 1u << 1;   // dgs_async reply: the push failed validation
                                              // (aux: the server's svResult_t)

// Every message starts with this header; all multi-byte fields little-endian.
struct WireHeader {
  uint32_t magic;
  uint16_t version;  // SIGNVOTE_WIRE_VERSION
  uint16_t flags;    // kFlag*
  uint32_t rank;     // sender
  uint8_t scheme;    // svScheme_t
  uint8_t format;    // svFormat_t
  uint8_t vote;      // svVote_t
  uint8_t reserved0;
  uint64_t seq;      // sender's sequence number for this exchange
  uint64_t count;    // N
  uint64_t k;        // K (s3gd_mv), else 0
  uint64_t entries;  // sparse records: coded entries (<= K); else 0
  uint64_t aux;      // scheme word: ef_sign's float32 scale in the low 32 bits; else 0
  uint32_t payloadChecksum;  // sparse records: checksum64 of the payload words, folded; else 0
  uint32_t headerChecksum;   // over the 64 bytes with this field zero
};
static_assert(sizeof(WireHeader) == 64, "the wire header is 64 bytes");

// The words after a message's 64-byte header.
template <class Word>
Word* payloadOf(Word* message) {
  return message + sizeof(WireHeader) / 8;
}

// Order-dependent checksum of 64-bit words, computable in parallel (each word is mixed with its
// position, results XORed), folded to 32 bits.
uint32_t checksumWords(const uint64_t* words, size_t nwords);

// Fills the header checksum in place.
void sealHeader(WireHeader* h);

// A record is the 64-byte header (8 words) then payloadWords words: fills h's payload checksum
// from record[8 ..], seals h and writes it to record[0 .. 8).
void sealRecord(WireHeader h, uint64_t* record, size_t payloadWords);

// What the receiver expects; validateHeader returns svSuccess or svCorruptInput / svMismatch
// with the reason in *why (a static string).
struct HeaderExpect {
  uint32_t rank;
  uint8_t scheme, format, vote;
  uint64_t seq, count, k;
  uint16_t flags = kFlagNonFinite;  // the flags the message may carry
};
svResult_t validateHeader(const WireHeader& h, const HeaderExpect& e, const char** why);

}  // namespace signvote::ref
