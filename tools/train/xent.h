// Softmax cross-entropy of one sample, the same code on the CPU (mlp.cc) and the GPU
// (mlp_cuda.cu): in double, shifted by the largest logit.
#pragma once

#include <cmath>

#include "mlp.h"

#if defined(__CUDACC__)
#define TRAIN_HD __host__ __device__
#else
#define TRAIN_HD
#endif

namespace train {

// Writes d[c] = (softmax(l)_c - [c == y]) / batch for the kOut logits l and returns the
// sample's loss, log(sum_c exp(l_c)) - l_y.
TRAIN_HD inline double softmaxXent(const float* l, int y, int batch, float* d) {
  float mx = l[0];
  for (int c = 1; c < kOut; ++c) mx = l[c] > mx ? l[c] : mx;
  double z = 0;
  for (int c = 0; c < kOut; ++c) z += ::exp(double(l[c] - mx));
  for (int c = 0; c < kOut; ++c) {
    const double pc = ::exp(double(l[c] - mx)) / z;
    d[c] = static_cast<float>((pc - (c == y ? 1.0 : 0.0)) / batch);
  }
  return ::log(z) - double(l[y] - mx);
}

}  // namespace train
