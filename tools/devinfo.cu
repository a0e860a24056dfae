// signvote-devinfo: the facts every recorded GPU measurement carries (device, driver, clocks,
// measured device-to-device copy bandwidth), as one JSON object on stdout. Exits 1 without a
// GPU. The copy is timed by CUDA events over a 1 GiB buffer (median of 20 after 3 warm-ups);
// GB/s counts bytes read plus bytes written, as nccl-tests and nvbandwidth do for copies.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <vector>

#define CUDACHECK(cmd)                                                                    \
  do {                                                                                    \
    cudaError_t e_ = (cmd);                                                               \
    if (e_ != cudaSuccess) {                                                              \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #cmd,                   \
                   cudaGetErrorString(e_));                                               \
      return 1;                                                                           \
    }                                                                                     \
  } while (0)

int main() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    std::fprintf(stderr, "signvote-devinfo: no CUDA device\n");
    return 1;
  }
  cudaDeviceProp p{};
  CUDACHECK(cudaGetDeviceProperties(&p, 0));
  int driver = 0, runtime = 0, smClock = 0, memClock = 0;
  CUDACHECK(cudaDriverGetVersion(&driver));
  CUDACHECK(cudaRuntimeGetVersion(&runtime));
  cudaDeviceGetAttribute(&smClock, cudaDevAttrClockRate, 0);
  cudaDeviceGetAttribute(&memClock, cudaDevAttrMemoryClockRate, 0);
  const size_t bytes = size_t{1} << 30;
  void *a = nullptr, *b = nullptr;
  CUDACHECK(cudaMalloc(&a, bytes));
  CUDACHECK(cudaMalloc(&b, bytes));
  CUDACHECK(cudaMemset(a, 1, bytes));
  cudaEvent_t t0, t1;
  CUDACHECK(cudaEventCreate(&t0));
  CUDACHECK(cudaEventCreate(&t1));
  std::vector<float> ms;
  for (int i = 0; i < 23; ++i) {
    CUDACHECK(cudaEventRecord(t0));
    CUDACHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
    CUDACHECK(cudaEventRecord(t1));
    CUDACHECK(cudaEventSynchronize(t1));
    float m = 0;
    CUDACHECK(cudaEventElapsedTime(&m, t0, t1));
    if (i >= 3) ms.push_back(m);
  }
  std::sort(ms.begin(), ms.end());
  const double med = ms[ms.size() / 2];
  std::printf("{\"device\": \"%s\", \"sm\": \"%d%d\", \"sms\": %d, \"memory_bytes\": %zu, "
              "\"driver_version\": %d, \"runtime_version\": %d, \"sm_clock_khz\": %d, "
              "\"mem_clock_khz\": %d, \"copy_bytes\": %zu, \"copy_ms_median\": %.4f, "
              "\"copy_gbps\": %.1f}\n",
              p.name, p.major, p.minor, p.multiProcessorCount, p.totalGlobalMem, driver, runtime,
              smClock, memClock, bytes, med, 2.0 * bytes / (med * 1e6));
  cudaFree(a);
  cudaFree(b);
  return 0;
}
