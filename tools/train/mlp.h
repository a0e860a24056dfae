// A 784-H-10 multilayer perceptron (ReLU, softmax cross-entropy) whose parameters are one flat
// float vector, the bucket signvote exchanges. Matrix products go through CBLAS (OpenBLAS).
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace train {

constexpr int kIn = 784, kOut = 10;

// Where the tensors lie in the flat parameter vector: W1 (hidden x 784, row-major), b1, W2
// (10 x hidden), b2. Shared by the host model and the GPU one (mlp_cuda.h).
struct MlpLayout {
  explicit MlpLayout(int hiddenUnits)
      : hidden(hiddenUnits),
        w1(0),
        b1(size_t(hiddenUnits) * kIn),
        w2(b1 + size_t(hiddenUnits)),
        b2(w2 + size_t(kOut) * size_t(hiddenUnits)),
        size(b2 + kOut) {}
  // The parameter tensors' (offset, count): W1, b1, W2, b2.
  std::vector<std::pair<size_t, size_t>> tensors() const {
    return {{w1, b1 - w1}, {b1, w2 - b1}, {w2, b2 - w2}, {b2, size - b2}};
  }
  // He-uniform weights, zero biases.
  void init(std::vector<float>* params, std::mt19937_64& rng) const;
  int hidden;
  size_t w1, b1, w2, b2, size;
};

class Mlp {
 public:
  explicit Mlp(int hidden) : l_(hidden) {}
  const MlpLayout& layout() const { return l_; }
  // Mean loss of the batch; grad (size()) receives the gradient of that mean.
  float lossAndGrad(const std::vector<float>& params, const float* x, const uint8_t* y, int batch,
                    std::vector<float>* grad);
  // Fraction of correctly classified samples.
  double accuracy(const std::vector<float>& params, const float* x, const uint8_t* y, size_t n);

 private:
  void forward(const std::vector<float>& params, const float* x, int batch);
  MlpLayout l_;
  std::vector<float> h_, logits_, dlogits_, dh_;
};

// The trainer's SGD step on an exchanged update u: with mu != 0, velocity = mu * velocity + u
// and params -= lr * velocity; else params -= lr * u. mlp_cuda.h's sgdStep gives the same bits.
void sgdStep(float* params, float* velocity, const float* u, size_t n, float lr, float mu);

}  // namespace train
