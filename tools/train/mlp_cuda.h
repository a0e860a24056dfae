// The MLP of mlp.h with its parameters, gradients and batches in GPU memory, for training with
// the model on the GPU (signvote-train --model-device cuda). Matrix products go through cuBLAS
// in fp32 (no TF32), the rest through small kernels; everything is enqueued on the stream given
// at construction, with no host synchronisation, so W of them on W streams train W ranks at
// once. Results equal Mlp's up to rounding (cuBLAS sums in other orders than OpenBLAS), not bit
// for bit. Run to run on one GPU they are the same bits: cuBLAS is reproducible on the same
// architecture and SM count, and no kernel here adds floats atomically.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "mlp.h"

namespace train {

class CudaMlp {
 public:
  // Scratch for batches of up to maxRows samples; the cuBLAS handle and every kernel use stream.
  CudaMlp(int hidden, int maxRows, cudaStream_t stream);
  ~CudaMlp();
  CudaMlp(const CudaMlp&) = delete;
  CudaMlp& operator=(const CudaMlp&) = delete;
  const MlpLayout& layout() const { return l_; }

  // Device pointers throughout. grad (layout().size floats) receives the gradient of the batch's
  // mean loss; *lossSum (a double) grows by that mean loss rounded to float, as Mlp returns it.
  void lossAndGrad(const float* params, const float* x, const uint8_t* y, int batch, float* grad,
                   double* lossSum);
  // *correct grows by the number of the n samples whose largest logit (the first of equals) is
  // their label; n may exceed maxRows (done in pieces).
  void countCorrect(const float* params, const float* x, const uint8_t* y, size_t n,
                    unsigned long long* correct);

 private:
  void forward(const float* params, const float* x, int rows);
  void release();
  MlpLayout l_;
  int maxRows_;
  cudaStream_t stream_;
  cublasHandle_t blas_ = nullptr;
  float *h_ = nullptr, *logits_ = nullptr, *dlogits_ = nullptr, *dh_ = nullptr;
  double* losses_ = nullptr;  // per sample
};

// The trainer's other device steps, on `stream`.
// x (rows x 784) and y gathered from the device copy of a data set by sample index.
void gatherBatch(const float* images, const uint8_t* labels, const uint32_t* index, int rows,
                 float* x, uint8_t* y, cudaStream_t stream);
// v *= s.
void scale(float* v, size_t n, float s, cudaStream_t stream);
// mlp.h's sgdStep on the GPU, with the same bits.
void sgdStep(float* params, float* velocity, const float* u, size_t n, float lr, float mu,
             cudaStream_t stream);
// mean = (models[0] + ... + models[W-1]) / W, summed in rank order; models are W consecutive
// vectors of n floats.
void meanOf(const float* models, int W, size_t n, float* mean, cudaStream_t stream);

}  // namespace train
