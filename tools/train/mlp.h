// A 784-H-10 multilayer perceptron (ReLU, softmax cross-entropy) whose parameters are one flat
// float vector, the bucket signvote exchanges. Matrix products go through CBLAS (OpenBLAS).
#pragma once

#include <cstdint>
#include <random>
#include <utility>
#include <vector>

namespace train {

class Mlp {
 public:
  explicit Mlp(int hidden);
  size_t size() const { return size_; }
  // The parameter tensors' (offset, count) in the flat vector: W1, b1, W2, b2.
  std::vector<std::pair<size_t, size_t>> tensors() const {
    return {{w1_, b1_ - w1_}, {b1_, w2_ - b1_}, {w2_, b2_ - w2_}, {b2_, size_ - b2_}};
  }
  // He-uniform weights, zero biases.
  void init(std::vector<float>* params, std::mt19937_64& rng) const;
  // Mean loss of the batch; grad (size()) receives the gradient of that mean.
  float lossAndGrad(const std::vector<float>& params, const float* x, const uint8_t* y, int batch,
                    std::vector<float>* grad);
  // Fraction of correctly classified samples.
  double accuracy(const std::vector<float>& params, const float* x, const uint8_t* y, size_t n);

 private:
  void forward(const std::vector<float>& params, const float* x, int batch);
  int hidden_;
  size_t w1_, b1_, w2_, b2_, size_;
  std::vector<float> h_, logits_, dlogits_, dh_;
};

}  // namespace train
