// Exact top-K by magnitude: the host golden model of kernels/topk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace signvote::ref {

// |x| as an unsigned key: the float's bits with the sign cleared. For every non-NaN float,
// unsigned order of keys is the order of |x| (subnormals included), +0.0 and -0.0 both give 0,
// +-inf gives 0x7F800000 and every NaN a key above it.
inline uint32_t magnitudeKey(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof(u));
  return u & 0x7FFFFFFFu;
}
constexpr uint32_t kInfKey = 0x7F800000u;

// Writes to out[0..k) the indices of exactly k elements of x[0..n), in increasing index order:
// every element whose key is greater than the k-th largest key v*, then the elements equal to
// v* with the lowest indices. Requires k <= n. Returns v* (0 when k == 0). Three 11/11/9-bit
// radix passes over bits 30..0 find v*, one more pass gathers.
uint32_t selectTopKByMagnitude(const float* x, size_t n, size_t k, uint32_t* out);

}  // namespace signvote::ref
