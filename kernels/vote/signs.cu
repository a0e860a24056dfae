// Sign packing and voting over bit-planes (kernels.h: packSigns, voteSignPlanes).
// packSigns: one warp per 64 elements, two __ballot_sync per plane give one 64-bit word in
// element order (bit e%64 of word e/64, as the host format), so no shuffle is needed.
// voteSignPlanes: one thread per 64 positions keeps vertical (bit-sliced) counters of the
// positive and negative votes, added with ripple-carry half adders, then compares them
// bit-sliced from the top bit down: O(W log W) word operations per 64 positions, memory-bound.
#include "../common.cuh"

namespace signvote::kernels {
namespace {

using detail::isNaN;

constexpr unsigned kThreads = 256;
constexpr int kCounterBits = 13;  // counts up to SV_MAX_RANKS = 4096

__global__ void __launch_bounds__(kThreads)
    packSignsKernel(const float* g, uint64_t n, bool ternary, uint64_t chunkWords,
                    uint64_t totalWords, bool ignoreNaN, uint64_t* out,
                    unsigned long long* nanCount) {
  const unsigned lane = threadIdx.x & 31;
  const uint64_t warp = (uint64_t{blockIdx.x} * kThreads + threadIdx.x) / 32;
  const uint64_t warps = uint64_t{gridDim.x} * kThreads / 32;
  const unsigned planes = ternary ? 2 : 1;
  unsigned nans = 0;
  for (uint64_t gw = warp; gw < totalWords; gw += warps) {
    float v[2];
    for (unsigned h = 0; h < 2; ++h) {
      const uint64_t i = 64 * gw + 32 * h + lane;
      v[h] = i < n ? g[i] : 0.0f;
      if (isNaN(v[h])) {
        if (ignoreNaN) v[h] = 0.0f;
        else ++nans;
      }
    }
    const uint64_t neg = __ballot_sync(~0u, v[0] < 0.0f) |
                         uint64_t{__ballot_sync(~0u, v[1] < 0.0f)} << 32;
    const uint64_t nz = __ballot_sync(~0u, v[0] != 0.0f) |
                        uint64_t{__ballot_sync(~0u, v[1] != 0.0f)} << 32;
    if (lane == 0) {
      const uint64_t d = gw / chunkWords, w = gw % chunkWords;
      uint64_t* block = out + d * planes * chunkWords;
      if (ternary) {
        block[w] = nz;
        block[chunkWords + w] = neg;
      } else {
        block[w] = neg;  // +-0.0 and NaN vote +1
      }
    }
  }
  nans = __reduce_add_sync(~0u, nans);
  if (lane == 0 && nans != 0) atomicAdd(nanCount, nans);
}

// C += x, one bit per position, over `bits` vertical bit-planes.
__device__ __forceinline__ void addBits(uint64_t (&c)[kCounterBits], uint64_t x, int bits) {
#pragma unroll
  for (int b = 0; b < kCounterBits; ++b) {
    if (b < bits) {
      const uint64_t carry = c[b] & x;
      c[b] ^= x;
      x = carry;
    }
  }
}

__global__ void __launch_bounds__(kThreads)
    voteKernel(const uint64_t* recv, bool ternary, uint64_t chunkWords, int nranks,
               uint64_t* result, uint32_t* flags) {
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (w >= chunkWords) return;
  const int bits = 32 - __clz(nranks);
  const unsigned planes = ternary ? 2 : 1;
  uint64_t pos[kCounterBits] = {}, neg[kCounterBits] = {};
  uint64_t corrupt = 0;
  for (int s = 0; s < nranks; ++s) {
    const uint64_t* block = recv + uint64_t(s) * planes * chunkWords;
    if (ternary) {
      const uint64_t nz = block[w], ng = block[chunkWords + w];
      corrupt |= ng & ~nz;
      addBits(pos, nz & ~ng, bits);
      addBits(neg, ng, bits);
    } else {
      addBits(neg, block[w], bits);
    }
  }
  if (corrupt) atomicOr(flags, 1u);
  // gt: neg > other, eq: neg == other, bit-sliced from the top bit down. For binary votes the
  // other side is the constant floor(W/2): neg > W/2 exactly when neg > W - neg.
  uint64_t gt = 0, eq = ~uint64_t{0};
  const unsigned half = static_cast<unsigned>(nranks) / 2;
#pragma unroll
  for (int b = kCounterBits - 1; b >= 0; --b) {
    if (b < bits) {
      const uint64_t other = ternary ? pos[b] : (((half >> b) & 1) ? ~uint64_t{0} : 0);
      gt |= eq & neg[b] & ~other;
      eq &= ~(neg[b] ^ other);
    }
  }
  if (ternary) {
    result[w] = ~eq;
    result[chunkWords + w] = gt;
  } else {
    result[w] = gt;  // ties go to +1
  }
}

}  // namespace

cudaError_t packSigns(const float* g, uint64_t n, svVote_t vote, uint64_t chunkWords,
                      int nranks, svNonFinitePolicy_t policy, uint64_t* out,
                      unsigned long long* nanCount, cudaStream_t stream) {
  const uint64_t totalWords = uint64_t(nranks) * chunkWords;
  if (nranks <= 0 || totalWords * 64 < n || (n > 0 && g == nullptr) || nanCount == nullptr ||
      (totalWords > 0 && out == nullptr))
    return cudaErrorInvalidValue;
  if (totalWords == 0) return cudaSuccess;
  packSignsKernel<<<detail::gridFor(totalWords * 32, kThreads), kThreads, 0, stream>>>(
      g, n, vote != SV_VOTE_BINARY, chunkWords, totalWords, policy == SV_NONFINITE_IGNORE, out,
      nanCount);
  return detail::launched();
}

cudaError_t voteSignPlanes(const uint64_t* recv, svVote_t vote, uint64_t chunkWords,
                           int nranks, uint64_t* result, uint32_t* flags, cudaStream_t stream) {
  if (nranks <= 0 || nranks > SV_MAX_RANKS || flags == nullptr ||
      (chunkWords > 0 && (recv == nullptr || result == nullptr)))
    return cudaErrorInvalidValue;
  if (chunkWords == 0) return cudaSuccess;
  voteKernel<<<static_cast<unsigned>((chunkWords + kThreads - 1) / kThreads), kThreads, 0,
               stream>>>(recv, vote != SV_VOTE_BINARY, chunkWords, nranks, result, flags);
  return detail::launched();
}

}  // namespace signvote::kernels
