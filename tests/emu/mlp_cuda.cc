// Host twins of tools/train/mlp_cuda.h for the emulated device (emu.h): the host model (mlp.h)
// on the stream, so that signvote-train's --model-device cuda path (DeviceModels, the index
// staging, the replica check) runs in CI. The twins give the host model's bits, which
// mlp_cuda.h promises only up to rounding.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "emu.h"
#include "mlp_cuda.h"

namespace train {

CudaMlp::CudaMlp(int hidden, int maxRows, cudaStream_t stream)
    : l_(hidden), maxRows_(maxRows), stream_(stream) {}

CudaMlp::~CudaMlp() = default;

void CudaMlp::lossAndGrad(const float* params, const float* x, const uint8_t* y, int batch,
                          float* grad, double* lossSum) {
  const MlpLayout l = l_;
  svemu::submit(stream_, [=] {
    Mlp mlp(l.hidden);
    std::vector<float> g;
    *lossSum += mlp.lossAndGrad(std::vector<float>(params, params + l.size), x, y, batch, &g);
    std::copy(g.begin(), g.end(), grad);
  });
}

void CudaMlp::countCorrect(const float* params, const float* x, const uint8_t* y, size_t n,
                           unsigned long long* correct) {
  const MlpLayout l = l_;
  svemu::submit(stream_, [=] {
    Mlp mlp(l.hidden);
    const double fraction = mlp.accuracy(std::vector<float>(params, params + l.size), x, y, n);
    *correct += static_cast<unsigned long long>(std::llround(fraction * double(n)));
  });
}

void gatherBatch(const float* images, const uint8_t* labels, const uint32_t* index, int rows,
                 float* x, uint8_t* y, cudaStream_t stream) {
  svemu::submit(stream, [=] {
    for (int b = 0; b < rows; ++b) {
      std::memcpy(x + size_t(b) * kIn, images + size_t(index[b]) * kIn, kIn * sizeof(float));
      y[b] = labels[index[b]];
    }
  });
}

void scale(float* v, size_t n, float s, cudaStream_t stream) {
  svemu::submit(stream, [=] {
    for (size_t i = 0; i < n; ++i) v[i] *= s;
  });
}

void sgdStep(float* params, float* velocity, const float* u, size_t n, float lr, float mu,
             cudaStream_t stream) {
  svemu::submit(stream, [=] { sgdStep(params, velocity, u, n, lr, mu); });
}

void meanOf(const float* models, int W, size_t n, float* mean, cudaStream_t stream) {
  svemu::submit(stream, [=] {
    for (size_t i = 0; i < n; ++i) {
      float sum = models[i];
      for (int r = 1; r < W; ++r) sum += models[size_t(r) * n + i];
      mean[i] = sum / static_cast<float>(W);
    }
  });
}

}  // namespace train
