#include "mlp.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

namespace train {

namespace {
constexpr int kIn = 784, kOut = 10;
}

Mlp::Mlp(int hidden) : hidden_(hidden) {
  w1_ = 0;
  b1_ = w1_ + size_t(hidden) * kIn;
  w2_ = b1_ + hidden;
  b2_ = w2_ + size_t(kOut) * hidden;
  size_ = b2_ + kOut;
}

void Mlp::init(std::vector<float>* params, std::mt19937_64& rng) const {
  params->assign(size_, 0.0f);
  std::uniform_real_distribution<float> u1(-std::sqrt(6.0f / kIn), std::sqrt(6.0f / kIn));
  std::uniform_real_distribution<float> u2(-std::sqrt(6.0f / hidden_), std::sqrt(6.0f / hidden_));
  for (size_t i = w1_; i < b1_; ++i) (*params)[i] = u1(rng);
  for (size_t i = w2_; i < b2_; ++i) (*params)[i] = u2(rng);
}

void Mlp::forward(const std::vector<float>& p, const float* x, int batch) {
  h_.resize(size_t(batch) * hidden_);
  logits_.resize(size_t(batch) * kOut);
  for (int b = 0; b < batch; ++b)
    std::copy(p.begin() + b1_, p.begin() + w2_, h_.begin() + size_t(b) * hidden_);
  // h = relu(x W1^T + b1)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, hidden_, kIn, 1.0f, x, kIn,
              p.data() + w1_, kIn, 1.0f, h_.data(), hidden_);
  for (float& v : h_) v = std::max(v, 0.0f);
  for (int b = 0; b < batch; ++b)
    std::copy(p.begin() + b2_, p.begin() + b2_ + kOut, logits_.begin() + size_t(b) * kOut);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, kOut, hidden_, 1.0f, h_.data(),
              hidden_, p.data() + w2_, hidden_, 1.0f, logits_.data(), kOut);
}

float Mlp::lossAndGrad(const std::vector<float>& p, const float* x, const uint8_t* y, int batch,
                       std::vector<float>* grad) {
  forward(p, x, batch);
  dlogits_.resize(size_t(batch) * kOut);
  double loss = 0;
  for (int b = 0; b < batch; ++b) {
    float* l = &logits_[size_t(b) * kOut];
    const float mx = *std::max_element(l, l + kOut);
    double z = 0;
    for (int c = 0; c < kOut; ++c) z += std::exp(double(l[c] - mx));
    for (int c = 0; c < kOut; ++c) {
      const double pc = std::exp(double(l[c] - mx)) / z;
      dlogits_[size_t(b) * kOut + c] = static_cast<float>((pc - (c == y[b] ? 1.0 : 0.0)) / batch);
    }
    loss += std::log(z) - double(l[y[b]] - mx);
  }
  grad->assign(size_, 0.0f);
  float* g = grad->data();
  // dW2 = dlogits^T h; db2 = column sums
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kOut, hidden_, batch, 1.0f,
              dlogits_.data(), kOut, h_.data(), hidden_, 0.0f, g + w2_, hidden_);
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < kOut; ++c) g[b2_ + c] += dlogits_[size_t(b) * kOut + c];
  // dh = dlogits W2, masked by relu
  dh_.resize(size_t(batch) * hidden_);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, hidden_, kOut, 1.0f,
              dlogits_.data(), kOut, p.data() + w2_, hidden_, 0.0f, dh_.data(), hidden_);
  for (size_t i = 0; i < dh_.size(); ++i)
    if (h_[i] <= 0.0f) dh_[i] = 0.0f;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, hidden_, kIn, batch, 1.0f, dh_.data(),
              hidden_, x, kIn, 0.0f, g + w1_, kIn);
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < hidden_; ++j) g[b1_ + j] += dh_[size_t(b) * hidden_ + j];
  return static_cast<float>(loss / batch);
}

double Mlp::accuracy(const std::vector<float>& p, const float* x, const uint8_t* y, size_t n) {
  size_t correct = 0;
  const size_t chunk = 1000;
  for (size_t at = 0; at < n; at += chunk) {
    const int b = static_cast<int>(std::min(chunk, n - at));
    forward(p, x + at * kIn, b);
    for (int i = 0; i < b; ++i) {
      const float* l = &logits_[size_t(i) * kOut];
      correct += static_cast<size_t>(std::max_element(l, l + kOut) - l) == y[at + i];
    }
  }
  return n ? double(correct) / double(n) : 0.0;
}

}  // namespace train
