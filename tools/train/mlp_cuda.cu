#include "mlp_cuda.h"

#include <cub/block/block_reduce.cuh>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "cuda_check.h"
#include "xent.h"

namespace train {

namespace {

constexpr int kThreads = 256;

unsigned blocksFor(size_t n) {
  return static_cast<unsigned>(std::max<size_t>((n + kThreads - 1) / kThreads, 1));
}

// m (rows x cols, row-major) += bias per column, then ReLU when relu is set.
__global__ void addBias(float* m, const float* bias, int rows, int cols, bool relu) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(rows) * cols) return;
  const float v = m[i] + bias[i % cols];
  m[i] = relu && v < 0.0f ? 0.0f : v;  // std::max(v, 0.0f), as mlp.cc: NaN and -0.0 stay
}

__global__ void xent(const float* logits, const uint8_t* y, int batch, float* dlogits,
                     double* losses) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < batch) losses[b] = softmaxXent(logits + size_t(b) * kOut, y[b], batch,
                                         dlogits + size_t(b) * kOut);
}

// One block: *lossSum += float(sum of losses / batch), in a fixed order (CUB's block reduction
// over a fixed block size), so the same bits every run.
__global__ void addMeanLoss(const double* losses, int batch, double* lossSum) {
  using Reduce = cub::BlockReduce<double, kThreads>;
  __shared__ typename Reduce::TempStorage temp;
  double part = 0;
  for (int b = threadIdx.x; b < batch; b += kThreads) part += losses[b];
  const double total = Reduce(temp).Sum(part);
  if (threadIdx.x == 0) *lossSum += double(static_cast<float>(total / batch));
}

// out[c] = sum over rows of m (rows x cols, row-major), in row order.
__global__ void columnSums(const float* m, int rows, int cols, float* out) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float s = 0.0f;
  for (int r = 0; r < rows; ++r) s += m[size_t(r) * cols + c];
  out[c] = s;
}

// ReLU's derivative: dh = 0 where h <= 0.
__global__ void reluMask(float* dh, const float* h, size_t n) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n && h[i] <= 0.0f) dh[i] = 0.0f;
}

__global__ void countArgmax(const float* logits, const uint8_t* y, int rows,
                            unsigned long long* correct) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b >= rows) return;
  const float* l = logits + size_t(b) * kOut;
  int best = 0;
  for (int c = 1; c < kOut; ++c)
    if (l[best] < l[c]) best = c;  // std::max_element's rule: the first of equals
  if (best == y[b]) atomicAdd(correct, 1ull);  // integer: order-free
}

__global__ void gather(const float* images, const uint8_t* labels, const uint32_t* index,
                       int rows, float* x, uint8_t* y) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= size_t(rows) * kIn) return;
  const size_t b = i / kIn, p = i % kIn;
  x[i] = images[size_t(index[b]) * kIn + p];
  if (p == 0) y[b] = labels[index[b]];
}

__global__ void scaleKernel(float* v, size_t n, float s) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) v[i] *= s;
}

__global__ void sgdKernel(float* params, float* velocity, const float* u, size_t n, float lr,
                          float mu) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  // Rounded as the host loop rounds (no fused multiply-add), so both give the same bits.
  float step = u[i];
  if (mu != 0.0f) step = velocity[i] = __fadd_rn(__fmul_rn(mu, velocity[i]), step);
  params[i] = __fsub_rn(params[i], __fmul_rn(lr, step));
}

__global__ void meanKernel(const float* models, int W, size_t n, float* mean) {
  const size_t i = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float s = models[i];
  for (int r = 1; r < W; ++r) s += models[size_t(r) * n + i];
  mean[i] = s / static_cast<float>(W);
}

template <typename T>
void allocate(T** p, size_t count) {
  TRAIN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(p), std::max<size_t>(count, 1) * sizeof(T)));
}

}  // namespace

CudaMlp::CudaMlp(int hidden, int maxRows, cudaStream_t stream)
    : l_(hidden), maxRows_(maxRows), stream_(stream) {
  try {
    TRAIN_CUDA_CHECK(cublasCreate(&blas_));
    TRAIN_CUDA_CHECK(cublasSetStream(blas_, stream_));
    // Plain fp32 products: TF32 would round the inputs to 10 bits of mantissa.
    TRAIN_CUDA_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));
    allocate(&h_, size_t(maxRows) * hidden);
    allocate(&dh_, size_t(maxRows) * hidden);
    allocate(&logits_, size_t(maxRows) * kOut);
    allocate(&dlogits_, size_t(maxRows) * kOut);
    allocate(&losses_, size_t(maxRows));
  } catch (...) {
    release();
    throw;
  }
}

CudaMlp::~CudaMlp() { release(); }

void CudaMlp::release() {
  for (void* p : {static_cast<void*>(h_), static_cast<void*>(dh_), static_cast<void*>(logits_),
                  static_cast<void*>(dlogits_), static_cast<void*>(losses_)})
    cudaFree(p);
  if (blas_ != nullptr) cublasDestroy(blas_);
}

// cuBLAS is column-major: a row-major r x c matrix is its c x r transpose there, so each
// row-major product C = A B below is computed as C^T = B^T A^T.
void CudaMlp::forward(const float* p, const float* x, int rows) {
  const float one = 1.0f, zero = 0.0f;
  const int H = l_.hidden;
  // h = relu(x W1^T + b1): h^T (H x rows) = W1 (H x 784) x^T.
  TRAIN_CUDA_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, H, rows, kIn, &one, p + l_.w1,
                               kIn, x, kIn, &zero, h_, H));
  addBias<<<blocksFor(size_t(rows) * H), kThreads, 0, stream_>>>(h_, p + l_.b1, rows, H, true);
  // logits = h W2^T + b2.
  TRAIN_CUDA_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, kOut, rows, H, &one, p + l_.w2,
                               H, h_, H, &zero, logits_, kOut));
  addBias<<<blocksFor(size_t(rows) * kOut), kThreads, 0, stream_>>>(logits_, p + l_.b2, rows,
                                                                     kOut, false);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void CudaMlp::lossAndGrad(const float* p, const float* x, const uint8_t* y, int batch,
                          float* grad, double* lossSum) {
  if (batch < 1 || batch > maxRows_)
    throw std::invalid_argument("CudaMlp::lossAndGrad: batch " + std::to_string(batch) +
                                " is outside [1, " + std::to_string(maxRows_) + "]");
  forward(p, x, batch);
  const float one = 1.0f, zero = 0.0f;
  const int H = l_.hidden;
  xent<<<blocksFor(batch), kThreads, 0, stream_>>>(logits_, y, batch, dlogits_, losses_);
  addMeanLoss<<<1, kThreads, 0, stream_>>>(losses_, batch, lossSum);
  // dW2 (10 x H) = dlogits^T h: dW2^T (H x 10) = h^T dlogits.
  TRAIN_CUDA_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, H, kOut, batch, &one, h_, H,
                               dlogits_, kOut, &zero, grad + l_.w2, H));
  columnSums<<<1, kOut, 0, stream_>>>(dlogits_, batch, kOut, grad + l_.b2);
  // dh (batch x H) = dlogits W2, masked by ReLU: dh^T = W2^T dlogits^T.
  TRAIN_CUDA_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, H, batch, kOut, &one, p + l_.w2,
                               H, dlogits_, kOut, &zero, dh_, H));
  reluMask<<<blocksFor(size_t(batch) * H), kThreads, 0, stream_>>>(dh_, h_, size_t(batch) * H);
  // dW1 (H x 784) = dh^T x: dW1^T (784 x H) = x^T dh.
  TRAIN_CUDA_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_T, kIn, H, batch, &one, x, kIn, dh_,
                               H, &zero, grad + l_.w1, kIn));
  columnSums<<<blocksFor(H), kThreads, 0, stream_>>>(dh_, batch, H, grad + l_.b1);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void CudaMlp::countCorrect(const float* p, const float* x, const uint8_t* y, size_t n,
                           unsigned long long* correct) {
  for (size_t at = 0; at < n; at += size_t(maxRows_)) {
    const int rows = static_cast<int>(std::min(size_t(maxRows_), n - at));
    forward(p, x + at * kIn, rows);
    countArgmax<<<blocksFor(rows), kThreads, 0, stream_>>>(logits_, y + at, rows, correct);
  }
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void gatherBatch(const float* images, const uint8_t* labels, const uint32_t* index, int rows,
                 float* x, uint8_t* y, cudaStream_t stream) {
  gather<<<blocksFor(size_t(rows) * kIn), kThreads, 0, stream>>>(images, labels, index, rows, x,
                                                                 y);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void scale(float* v, size_t n, float s, cudaStream_t stream) {
  scaleKernel<<<blocksFor(n), kThreads, 0, stream>>>(v, n, s);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void sgdStep(float* params, float* velocity, const float* u, size_t n, float lr, float mu,
             cudaStream_t stream) {
  sgdKernel<<<blocksFor(n), kThreads, 0, stream>>>(params, velocity, u, n, lr, mu);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

void meanOf(const float* models, int W, size_t n, float* mean, cudaStream_t stream) {
  meanKernel<<<blocksFor(n), kThreads, 0, stream>>>(models, W, n, mean);
  TRAIN_CUDA_CHECK(cudaGetLastError());
}

}  // namespace train
