// The device-side end of an exchange (kernels.h): the verdict from the received headers and
// the checkers' flags, the gated NaN fill, the gated dense mean, and the transport's reduction.
#include <type_traits>

#include "../common.cuh"

namespace signvote::kernels {
namespace {

constexpr unsigned kThreads = 256;

__global__ void decideKernel(const uint32_t* verdicts, int nranks, const uint32_t* flags,
                             int nflags, bool propagate, uint32_t* sticky, uint32_t* gate,
                             uint32_t* nanOut) {
  const uint32_t before = *static_cast<volatile uint32_t*>(sticky);
  const logic::Decision d = logic::decide(verdicts, nranks, flags, nflags, propagate, before);
  if (before == 0 && d.code != 0) *static_cast<volatile uint32_t*>(sticky) = d.code;
  *gate = d.gate;
  *nanOut = d.nanOut;
}

__global__ void fillNaNKernel(float* out, uint64_t n, const uint32_t* when) {
  if (*when == 0) return;
  SV_GRID_STRIDE(i, n) out[i] = __uint_as_float(0x7FC00000u);
}

__global__ void divideKernel(const float* sum, uint64_t n, float w, float* out,
                             const uint32_t* gate) {
  if (gate && *gate != 0) return;
  SV_GRID_STRIDE(i, n) out[i] = __fdiv_rn(sum[i], w);
}

template <class T>
__global__ void addIntoKernel(T* dst, const T* src, uint64_t count) {
  SV_GRID_STRIDE(i, count) {
    if constexpr (std::is_same_v<T, float>) dst[i] = __fadd_rn(dst[i], src[i]);
    else dst[i] = static_cast<T>(dst[i] + src[i]);
  }
}

}  // namespace

cudaError_t decideVerdict(const uint32_t* headerVerdicts, int nranks, const uint32_t* flags,
                          int nflags, svNonFinitePolicy_t policy, uint32_t* sticky,
                          uint32_t* gate, uint32_t* nanOut, cudaStream_t stream) {
  if (nranks <= 0 || headerVerdicts == nullptr || (nflags > 0 && flags == nullptr) ||
      sticky == nullptr || gate == nullptr || nanOut == nullptr)
    return cudaErrorInvalidValue;
  decideKernel<<<1, 1, 0, stream>>>(headerVerdicts, nranks, flags, nflags,
                                    policy == SV_NONFINITE_PROPAGATE, sticky, gate, nanOut);
  return detail::launched();
}

cudaError_t fillNaNWhen(float* out, uint64_t n, const uint32_t* when, cudaStream_t stream) {
  if (when == nullptr || (n > 0 && out == nullptr)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  fillNaNKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(out, n, when);
  return detail::launched();
}

cudaError_t divideGated(const float* sum, uint64_t n, float w, float* out, const uint32_t* gate,
                        cudaStream_t stream) {
  if (n > 0 && (sum == nullptr || out == nullptr)) return cudaErrorInvalidValue;
  if (n == 0) return cudaSuccess;
  divideKernel<<<detail::gridFor(n, kThreads), kThreads, 0, stream>>>(sum, n, w, out, gate);
  return detail::launched();
}

cudaError_t probeKernelImage() {
  cudaFuncAttributes attr;
  return cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(&decideKernel));
}

const char* kernelArchitectures() { return SIGNVOTE_CUDA_ARCHITECTURES; }

cudaError_t addInto(void* dst, const void* src, uint64_t count, unsigned elemBytes, bool isFloat,
                    cudaStream_t stream) {
  // The type is checked before the empty case, so that a bad one is refused at any count.
  if ((count > 0 && (dst == nullptr || src == nullptr)) ||
      !(isFloat ? elemBytes == 4 : elemBytes == 1 || elemBytes == 2))
    return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  const unsigned grid = detail::gridFor(count, kThreads);
  if (isFloat)
    addIntoKernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(dst),
                                                 static_cast<const float*>(src), count);
  else if (elemBytes == 1)
    addIntoKernel<<<grid, kThreads, 0, stream>>>(static_cast<int8_t*>(dst),
                                                 static_cast<const int8_t*>(src), count);
  else
    addIntoKernel<<<grid, kThreads, 0, stream>>>(static_cast<int16_t*>(dst),
                                                 static_cast<const int16_t*>(src), count);
  return detail::launched();
}

}  // namespace signvote::kernels
