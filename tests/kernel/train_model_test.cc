// The trainer's GPU model (tools/train/mlp_cuda.h) against its host model (mlp.h): loss and
// gradient up to rounding (cuBLAS and OpenBLAS sum in other orders), the accuracy count and its
// tie rule, and the step helpers bit for bit. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gpu.h"
#include "mlp.h"
#include "mlp_cuda.h"

namespace {

using svtest::DeviceArray;

struct Stream {
  Stream() { cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking); }
  ~Stream() { cudaStreamDestroy(s); }
  cudaStream_t s = nullptr;
};

// Random parameters with non-zero biases (init leaves them 0), pixels in [0, 1] with a third of
// them exactly 0 (as in Fashion-MNIST), labels 0..9.
std::vector<float> randomParams(const train::MlpLayout& l, std::mt19937_64& rng) {
  std::vector<float> p;
  l.init(&p, rng);
  std::uniform_real_distribution<float> u(-0.5f, 0.5f);
  for (size_t i = l.b1; i < l.w2; ++i) p[i] = u(rng);
  for (size_t i = l.b2; i < l.size; ++i) p[i] = u(rng);
  return p;
}
// Moves b1 until no pre-activation x W1^T + b1 lies within 1e-4 of 0, where the two models'
// roundings (a few 1e-6 at most here) could take opposite sides of the ReLU.
void clearOfTheKink(const train::MlpLayout& l, const std::vector<float>& x, int batch,
                    std::vector<float>* p) {
  std::vector<double> xw(size_t(batch) * l.hidden);
  for (int b = 0; b < batch; ++b)
    for (int j = 0; j < l.hidden; ++j)
      for (int k = 0; k < train::kIn; ++k)
        xw[size_t(b) * l.hidden + j] +=
            double(x[size_t(b) * train::kIn + k]) * (*p)[l.w1 + size_t(j) * train::kIn + k];
  for (int j = 0; j < l.hidden; ++j)
    for (int b = 0; b < batch; ++b)
      if (std::fabs(xw[size_t(b) * l.hidden + j] + (*p)[l.b1 + j]) < 1e-4) {
        (*p)[l.b1 + j] += 0.01f;
        b = -1;  // check unit j again from its first sample
      }
}

std::vector<float> randomPixels(size_t rows, std::mt19937_64& rng) {
  std::vector<float> x(rows * train::kIn);
  std::uniform_real_distribution<float> u(-0.5f, 1.0f);
  for (float& v : x) v = std::max(u(rng), 0.0f);
  return x;
}
std::vector<uint8_t> randomLabels(size_t rows, std::mt19937_64& rng) {
  std::vector<uint8_t> y(rows);
  for (uint8_t& v : y) v = static_cast<uint8_t>(rng() % train::kOut);
  return y;
}

bool sameBits(float a, float b) {
  return (std::isnan(a) && std::isnan(b)) || std::memcmp(&a, &b, sizeof a) == 0;
}

TEST(TrainModel, GradientMatchesTheHostModel) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Stream stream;
  for (int hidden : {100, 37})
    for (int batch : {1, 33, 64}) {
      SCOPED_TRACE("hidden " + std::to_string(hidden) + ", batch " + std::to_string(batch));
      const train::MlpLayout l(hidden);
      std::vector<float> p = randomParams(l, rng);
      const std::vector<float> x = randomPixels(batch, rng);
      const std::vector<uint8_t> y = randomLabels(batch, rng);
      clearOfTheKink(l, x, batch, &p);
      train::Mlp host(hidden);
      std::vector<float> want;
      const float wantLoss = host.lossAndGrad(p, x.data(), y.data(), batch, &want);

      // Misaligned (by one float) parameters and pixels; guards after the gradient.
      DeviceArray<float> dp(l.size, 1), dx(x.size(), 1), dg(l.size, 3);
      DeviceArray<uint8_t> dy(y.size());
      DeviceArray<double> loss(1);
      ASSERT_TRUE(dp.ok() && dx.ok() && dg.ok() && dy.ok() && loss.ok());
      dp.upload(p);
      dx.upload(x);
      dy.upload(y);
      loss.upload({0.5});
      train::CudaMlp gpu(hidden, 64, stream.s);
      gpu.lossAndGrad(dp.get(), dx.get(), dy.get(), batch, dg.get(), loss.get());
      CUDA_OK(cudaStreamSynchronize(stream.s));
      const std::vector<float> got = dg.download();
      EXPECT_TRUE(dg.guardIntact());
      // *lossSum grows by the loss.
      EXPECT_NEAR(loss.download()[0] - 0.5, wantLoss, 1e-5 * std::fabs(wantLoss));
      for (const auto& [at, count] : l.tensors()) {
        float scale = 0;
        for (size_t i = at; i < at + count; ++i) scale = std::max(scale, std::fabs(want[i]));
        ASSERT_GT(scale, 0.0f) << "tensor at " << at << " has a zero gradient: a useless case";
        for (size_t i = at; i < at + count; ++i)
          ASSERT_NEAR(got[i], want[i], 1e-4f * scale) << "element " << i;
      }
    }
}

TEST(TrainModel, CountCorrectMatchesTheHostAndTakesTheFirstOfEqualLogits) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Stream stream;
  const int hidden = 100;
  const size_t n = 2500;  // three pieces of at most 1,000 rows, the last one short
  const train::MlpLayout l(hidden);
  const std::vector<float> x = randomPixels(n, rng);
  const std::vector<uint8_t> y = randomLabels(n, rng);
  DeviceArray<float> dp(l.size), dx(x.size());
  DeviceArray<uint8_t> dy(n);
  DeviceArray<unsigned long long> correct(1);
  ASSERT_TRUE(dp.ok() && dx.ok() && dy.ok() && correct.ok());
  dx.upload(x);
  dy.upload(y);
  train::CudaMlp gpu(hidden, 1000, stream.s);
  train::Mlp host(hidden);
  auto count = [&](const std::vector<float>& p) {
    dp.upload(p);
    correct.upload({7});  // grows by the count
    gpu.countCorrect(dp.get(), dx.get(), dy.get(), n, correct.get());
    EXPECT_EQ(cudaStreamSynchronize(stream.s), cudaSuccess);
    return static_cast<long long>(correct.download()[0]) - 7;
  };
  // Random parameters: samples whose two largest logits lie within rounding may go either way.
  const std::vector<float> p = randomParams(l, rng);
  const long long want = std::llround(host.accuracy(p, x.data(), y.data(), n) * double(n));
  EXPECT_NEAR(count(p), want, 2);
  // W2 = 0: every logit is b2's; equal largest ones go to the first of them.
  std::vector<float> tied = p;
  std::fill(tied.begin() + l.w2, tied.end(), 0.0f);
  tied[l.b2 + 3] = tied[l.b2 + 7] = 1.0f;
  EXPECT_EQ(count(tied), std::count(y.begin(), y.end(), 3));
  EXPECT_EQ(std::llround(host.accuracy(tied, x.data(), y.data(), n) * double(n)),
            std::count(y.begin(), y.end(), 3));
}

TEST(TrainModel, StepHelpersMatchTheHostBitForBit) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Stream stream;
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto random = [&](size_t n) {
    std::vector<float> v(n);
    for (float& e : v) e = nd(rng);
    return svtest::withSpecials(v, rng);
  };
  for (size_t n : {size_t(0), size_t(1), size_t(31), size_t(32), size_t(33), size_t(4099),
                   size_t(65537)})
    for (float mu : {0.0f, 0.9f}) {
      SCOPED_TRACE("n " + std::to_string(n) + ", mu " + std::to_string(mu));
      std::vector<float> p = random(n), v = random(n), u = random(n);
      DeviceArray<float> dp(n, 1), dv(n, 2), du(n, 3);
      ASSERT_TRUE(dp.ok() && dv.ok() && du.ok());
      dp.upload(p);
      dv.upload(v);
      du.upload(u);
      train::sgdStep(dp.get(), dv.get(), du.get(), n, 0.01f, mu, stream.s);
      train::sgdStep(p.data(), v.data(), u.data(), n, 0.01f, mu);
      // The three models of meanOf: p, v and u after the step.
      DeviceArray<float> models(3 * n), mean(n, 1);
      ASSERT_TRUE(models.ok() && mean.ok());
      // On the kernels' stream: a device-to-device cudaMemcpy may still run when it returns,
      // and the non-blocking stream would not wait for it.
      for (int m = 0; m < 3; ++m)
        CUDA_OK(cudaMemcpyAsync(models.get() + m * n, (m == 0 ? dp : m == 1 ? dv : du).get(),
                                n * 4, cudaMemcpyDeviceToDevice, stream.s));
      train::meanOf(models.get(), 3, n, mean.get(), stream.s);
      train::scale(du.get(), n, 0.37f, stream.s);
      CUDA_OK(cudaStreamSynchronize(stream.s));
      const std::vector<float> gp = dp.download(), gv = dv.download(), gm = mean.download(),
                               gu = du.download();
      for (size_t i = 0; i < n; ++i) {
        ASSERT_TRUE(sameBits(gp[i], p[i])) << "params " << i << ": " << gp[i] << " vs " << p[i];
        ASSERT_TRUE(sameBits(gv[i], v[i])) << "velocity " << i;
        const float m = ((p[i] + v[i]) + u[i]) / 3.0f;
        ASSERT_TRUE(sameBits(gm[i], m)) << "mean " << i << ": " << gm[i] << " vs " << m;
        ASSERT_TRUE(sameBits(gu[i], u[i] * 0.37f)) << "scale " << i;
      }
      EXPECT_TRUE(dp.guardIntact() && dv.guardIntact() && du.guardIntact() && mean.guardIntact());
    }
}

TEST(TrainModel, GatherPicksTheIndexedSamples) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Stream stream;
  const size_t samples = 50;
  const std::vector<float> images = randomPixels(samples, rng);
  const std::vector<uint8_t> labels = randomLabels(samples, rng);
  for (int rows : {1, 33, 64}) {
    std::vector<uint32_t> index(rows);
    for (uint32_t& i : index) i = static_cast<uint32_t>(rng() % samples);  // repeats allowed
    index.back() = samples - 1;
    DeviceArray<float> di(images.size()), x(size_t(rows) * train::kIn, 1);
    DeviceArray<uint8_t> dl(samples), y(rows, 1);
    DeviceArray<uint32_t> dx(rows);
    ASSERT_TRUE(di.ok() && x.ok() && dl.ok() && y.ok() && dx.ok());
    di.upload(images);
    dl.upload(labels);
    dx.upload(index);
    train::gatherBatch(di.get(), dl.get(), dx.get(), rows, x.get(), y.get(), stream.s);
    CUDA_OK(cudaStreamSynchronize(stream.s));
    const std::vector<float> gx = x.download();
    const std::vector<uint8_t> gy = y.download();
    for (int b = 0; b < rows; ++b) {
      ASSERT_EQ(gy[b], labels[index[b]]) << "row " << b;
      ASSERT_EQ(0, std::memcmp(&gx[size_t(b) * train::kIn], &images[index[b] * train::kIn],
                               train::kIn * 4))
          << "row " << b;
    }
    EXPECT_TRUE(x.guardIntact() && y.guardIntact());
  }
}

}  // namespace
