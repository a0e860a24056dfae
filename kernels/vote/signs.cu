// Sign packing and voting over bit-planes (kernels.h: packSigns, voteSignPlanes), and Signum's
// momentum step before the packing (signumMomentum).
// packSigns: one warp per 64 elements, two __ballot_sync per plane give one 64-bit word in
// element order (bit e%64 of word e/64, as the host format), so no shuffle is needed.
// voteSignPlanes: one thread per 64 positions keeps vertical (bit-sliced) counters of the
// positive and negative votes and compares them bit-sliced (logic.h: voteWord): O(W log W)
// word operations per 64 positions, so the kernel is bound by reading the W planes.
#include "../common.cuh"

namespace signvote::kernels {
namespace {

using detail::isNaN;

constexpr unsigned kThreads = 256;

__global__ void __launch_bounds__(kThreads)
    packSignsKernel(const float* g, uint64_t n, bool ternary, uint64_t chunkWords,
                    uint64_t totalWords, bool ignoreNaN, uint64_t* out,
                    unsigned long long* nanCount) {
  const unsigned lane = threadIdx.x & 31;
  const unsigned planes = ternary ? 2 : 1;
  unsigned nans = 0;
  SV_WARP_STRIDE(gw, totalWords) {
    float v[2];
    detail::warpWordValues(g, n, gw, lane, ignoreNaN, v, &nans);
    const auto [nz, neg] = detail::ternaryWords(v);
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

__global__ void __launch_bounds__(kThreads)
    voteKernel(const uint64_t* recv, bool ternary, uint64_t chunkWords, int nranks,
               uint64_t* result, uint32_t* flags) {
  const uint64_t w = uint64_t{blockIdx.x} * kThreads + threadIdx.x;
  if (w >= chunkWords) return;
  const unsigned planes = ternary ? 2 : 1;
  uint64_t out[2];
  const uint64_t corrupt = logic::voteWord(nranks, ternary, [&](int s, unsigned plane) {
    return recv[(uint64_t(s) * planes + plane) * chunkWords + w];
  }, out);
  if (corrupt) atomicOr(flags, 1u);
  result[w] = out[0];
  if (ternary) result[chunkWords + w] = out[1];
}

__global__ void __launch_bounds__(kThreads)
    signumKernel(const float* g, const float* m, float beta, uint64_t n, bool ignoreNaN,
                 float* mNew) {
  const float omb = __fsub_rn(1.0f, beta);
  SV_GRID_STRIDE(i, n) {
    // The host's rounding: the product (1 - beta) * g first, then one fma.
    float v = __fmaf_rn(beta, m[i], __fmul_rn(omb, g[i]));
    if (ignoreNaN && isNaN(v)) v = 0.0f;
    mNew[i] = v;
  }
}

}  // namespace

cudaError_t signumMomentum(const float* g, const float* m, float beta, uint64_t n,
                           svNonFinitePolicy_t policy, float* mNew, cudaStream_t stream) {
  if (n > 0 && (g == nullptr || m == nullptr || mNew == nullptr)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  signumKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(
      g, m, beta, n, policy == SV_NONFINITE_IGNORE, mNew);
  return detail::launched();
}

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
