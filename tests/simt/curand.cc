// Host twins of the cuRAND calls that signvote-bench's kernel mode makes (its inputs), for
// signvote-bench-simt: normal floats from the host's generator, written as stream work on the
// emulated device. Kernel mode checks every kernel against lib/reference on the inputs it copies
// back, so only their kind matters, not cuRAND's bits.
#include <curand.h>

#include <random>

#include "emu.h"

struct curandGenerator_st {
  std::mt19937_64 rng;
  cudaStream_t stream = nullptr;
};

extern "C" {

curandStatus_t curandCreateGenerator(curandGenerator_t* g, curandRngType_t) {
  if (g == nullptr) return CURAND_STATUS_NOT_INITIALIZED;
  *g = new curandGenerator_st;
  return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandDestroyGenerator(curandGenerator_t g) {
  delete g;
  return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandSetStream(curandGenerator_t g, cudaStream_t stream) {
  g->stream = stream;
  return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandSetPseudoRandomGeneratorSeed(curandGenerator_t g, unsigned long long seed) {
  g->rng.seed(seed);
  return CURAND_STATUS_SUCCESS;
}

curandStatus_t curandGenerateNormal(curandGenerator_t g, float* out, size_t n, float mean,
                                    float stddev) {
  if (n % 2 != 0) return CURAND_STATUS_LENGTH_NOT_MULTIPLE;  // as cuRAND's pseudo generators
  svemu::submit(g->stream, [g, out, n, mean, stddev] {
    std::normal_distribution<float> d(mean, stddev);
    for (size_t i = 0; i < n; ++i) out[i] = d(g->rng);
  });
  return CURAND_STATUS_SUCCESS;
}

}  // extern "C"
