#include "match.h"

#include <cstring>

#include "handles.h"

namespace signvote::detail {

namespace {

const char* const kNames[Fingerprint::kFields] = {
    "library version", "the group's number of svExchange calls", "sequence number",
    "scheme", "datatype", "count", "k", "rho", "momentum", "adaptiveK", "kMin", "kBudget",
    "kWindow", "downK", "period", "the bucket's exchange count", "vote", "format",
    "comm nonFinite policy", "comm backend", "adaptive-K mean", "adaptive-K spent", "adaptive-K step"};

uint64_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

}  // namespace

Fingerprint fingerprintOf(const svBucket& b, uint64_t seq, uint64_t calls) {
  const svBucketConfig_t& c = b.config;
  const ref::AdaptiveState& a = b.adaptive;
  // Enumerations go through their integer value; bit patterns for floats, so -0.0 != +0.0
  // and a NaN matches itself.
  return Fingerprint{{static_cast<uint64_t>(SIGNVOTE_VERSION_CODE) << 16 | SIGNVOTE_WIRE_VERSION,
                      calls, seq, static_cast<uint64_t>(c.scheme),
                      static_cast<uint64_t>(c.datatype), c.count, b.plan.k, bits(c.rho),
                      bits(c.momentum), static_cast<uint64_t>(c.adaptiveK), c.kMin, c.kBudget,
                      c.kWindow, b.plan.downK, c.period, b.exchanges,
                      static_cast<uint64_t>(c.vote), static_cast<uint64_t>(c.format),
                      static_cast<uint64_t>(b.comm->config.nonFinite),
                      static_cast<uint64_t>(b.comm->config.backend),
                      bits(a.mean) | static_cast<uint64_t>(a.started) << 32,
                      a.spent, a.step}};
}

int firstDifference(const Fingerprint& a, const Fingerprint& b) {
  for (int f = 0; f < Fingerprint::kFields; ++f)
    if (a.v[f] != b.v[f]) return f;
  return -1;
}

const char* fieldName(int field) { return kNames[field]; }

Handshake handshakeOf(const svConfig_t& c) {
  return Handshake{{SIGNVOTE_VERSION_CODE, SIGNVOTE_WIRE_VERSION,
                    static_cast<uint64_t>(c.nonFinite), static_cast<uint64_t>(c.check)}};
}

int handshakeMismatch(const Handshake* all, int nranks, int* field) {
  for (int s = 1; s < nranks; ++s)
    for (int f = 0; f < Handshake::kFields; ++f)
      if (all[s].v[f] != all[0].v[f]) {
        *field = f;
        return s;
      }
  return -1;
}

const char* handshakeFieldName(int field) {
  static const char* const kFields[Handshake::kFields] = {
      "library version", "wire version", "config->nonFinite",
      "config->check (after SIGNVOTE_CHECK)"};
  return kFields[field];
}

}  // namespace signvote::detail
