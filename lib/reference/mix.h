// Arithmetic shared verbatim by the host backend and the CUDA kernels, so both produce the same
// bits by construction (the checksum of the wire format).
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define SV_HD __host__ __device__
#else
#define SV_HD
#endif

namespace signvote::ref {

// splitmix64 finaliser.
SV_HD inline uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

// Checksum of words[0..nwords) = fold(mix64(nwords) ^ XOR_i checksumTerm(words[i], i)): each
// term depends only on one word and its position, so the XOR can run in any order.
SV_HD inline uint64_t checksumTerm(uint64_t word, uint64_t position) {
  return mix64(word + 0x9E3779B97F4A7C15ull * (position + 1));
}
SV_HD inline uint32_t checksumFold(uint64_t nwords, uint64_t xorOfTerms) {
  const uint64_t acc = mix64(nwords) ^ xorOfTerms;
  return static_cast<uint32_t>(acc ^ (acc >> 32));
}

}  // namespace signvote::ref
