// The race check's own test (SIMT emulator in a ThreadSanitizer build, simt.cc): four kernels,
// each run racy, which the check must report, or correct, which it must not.
//   race_probe shared|warp|global|barrier-global|large-grid racy|correct
// shared: threads read a neighbour's shared memory with or without __syncthreads between;
// warp: lanes do the same through __syncwarp; global: every block's thread 0 writes one word,
// or a word of its own; barrier-global: the same after a __syncthreads, which orders nothing
// between blocks; large-grid: barrier-global in a grid of 16,384 threads, more than the check
// has fibers for.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>

namespace {

__global__ void sharedKernel(int* out, bool correct) {
  __shared__ int v[64];
  v[threadIdx.x] = static_cast<int>(threadIdx.x);
  if (correct) __syncthreads();
  out[blockIdx.x * 64 + threadIdx.x] = v[(threadIdx.x + 1) % 64];
}

__global__ void warpKernel(int* out, bool correct) {
  __shared__ int v[32];
  v[threadIdx.x] = static_cast<int>(threadIdx.x) * 2;
  if (correct) __syncwarp();
  out[blockIdx.x * 32 + threadIdx.x] = v[31 - threadIdx.x];
}

__global__ void globalKernel(int* out, bool correct) {
  if (threadIdx.x == 0) out[correct ? blockIdx.x : 0] = static_cast<int>(blockIdx.x);
}

__global__ void barrierGlobalKernel(int* out, bool correct) {
  __syncthreads();
  if (threadIdx.x == 0) out[correct ? blockIdx.x : 0] = static_cast<int>(blockIdx.x);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr,
                 "usage: race_probe shared|warp|global|barrier-global|large-grid racy|correct\n");
    return 2;
  }
  const bool correct = std::strcmp(argv[2], "correct") == 0;
  int* out = nullptr;
  if (cudaMalloc(reinterpret_cast<void**>(&out), 128 * sizeof(int)) != cudaSuccess) return 1;
  if (std::strcmp(argv[1], "shared") == 0) {
    sharedKernel<<<2, 64>>>(out, correct);
  } else if (std::strcmp(argv[1], "warp") == 0) {
    warpKernel<<<2, 32>>>(out, correct);
  } else if (std::strcmp(argv[1], "global") == 0) {
    globalKernel<<<8, 32>>>(out, correct);
  } else if (std::strcmp(argv[1], "barrier-global") == 0) {
    barrierGlobalKernel<<<8, 32>>>(out, correct);
  } else if (std::strcmp(argv[1], "large-grid") == 0) {
    barrierGlobalKernel<<<64, 256>>>(out, correct);
  } else {
    return 2;
  }
  if (cudaDeviceSynchronize() != cudaSuccess) return 1;
  cudaFree(out);
  std::printf("race_probe %s %s: done\n", argv[1], argv[2]);
  return 0;
}
