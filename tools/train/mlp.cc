#include "mlp.h"

#include <cblas.h>

#include <algorithm>
#include <cmath>

#include "xent.h"

namespace train {

void MlpLayout::init(std::vector<float>* params, std::mt19937_64& rng) const {
  params->assign(size, 0.0f);
  std::uniform_real_distribution<float> u1(-std::sqrt(6.0f / kIn), std::sqrt(6.0f / kIn));
  std::uniform_real_distribution<float> u2(-std::sqrt(6.0f / hidden), std::sqrt(6.0f / hidden));
  for (size_t i = w1; i < b1; ++i) (*params)[i] = u1(rng);
  for (size_t i = w2; i < b2; ++i) (*params)[i] = u2(rng);
}

void Mlp::forward(const std::vector<float>& p, const float* x, int batch) {
  h_.resize(size_t(batch) * l_.hidden);
  logits_.resize(size_t(batch) * kOut);
  for (int b = 0; b < batch; ++b)
    std::copy(p.begin() + l_.b1, p.begin() + l_.w2, h_.begin() + size_t(b) * l_.hidden);
  // h = relu(x W1^T + b1)
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, l_.hidden, kIn, 1.0f, x, kIn,
              p.data() + l_.w1, kIn, 1.0f, h_.data(), l_.hidden);
  for (float& v : h_) v = std::max(v, 0.0f);
  for (int b = 0; b < batch; ++b)
    std::copy(p.begin() + l_.b2, p.begin() + l_.b2 + kOut, logits_.begin() + size_t(b) * kOut);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, batch, kOut, l_.hidden, 1.0f, h_.data(),
              l_.hidden, p.data() + l_.w2, l_.hidden, 1.0f, logits_.data(), kOut);
}

float Mlp::lossAndGrad(const std::vector<float>& p, const float* x, const uint8_t* y, int batch,
                       std::vector<float>* grad) {
  forward(p, x, batch);
  dlogits_.resize(size_t(batch) * kOut);
  double loss = 0;
  for (int b = 0; b < batch; ++b)
    loss += softmaxXent(&logits_[size_t(b) * kOut], y[b], batch, &dlogits_[size_t(b) * kOut]);
  grad->assign(l_.size, 0.0f);
  float* g = grad->data();
  // dW2 = dlogits^T h; db2 = column sums
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, kOut, l_.hidden, batch, 1.0f,
              dlogits_.data(), kOut, h_.data(), l_.hidden, 0.0f, g + l_.w2, l_.hidden);
  for (int b = 0; b < batch; ++b)
    for (int c = 0; c < kOut; ++c) g[l_.b2 + c] += dlogits_[size_t(b) * kOut + c];
  // dh = dlogits W2, masked by relu
  dh_.resize(size_t(batch) * l_.hidden);
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, batch, l_.hidden, kOut, 1.0f,
              dlogits_.data(), kOut, p.data() + l_.w2, l_.hidden, 0.0f, dh_.data(), l_.hidden);
  for (size_t i = 0; i < dh_.size(); ++i)
    if (h_[i] <= 0.0f) dh_[i] = 0.0f;
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l_.hidden, kIn, batch, 1.0f, dh_.data(),
              l_.hidden, x, kIn, 0.0f, g + l_.w1, kIn);
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < l_.hidden; ++j) g[l_.b1 + j] += dh_[size_t(b) * l_.hidden + j];
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

void sgdStep(float* params, float* velocity, const float* u, size_t n, float lr, float mu) {
  for (size_t i = 0; i < n; ++i) {
    float step = u[i];
    if (mu != 0.0f) step = velocity[i] = mu * velocity[i] + step;
    params[i] -= lr * step;
  }
}

}  // namespace train
