// Host twins of the cuBLAS calls that the trainer's GPU model makes (tools/train/mlp_cuda.cu),
// for the SIMT emulator: the handle, its stream, its math mode and cublasSgemm, which checks its
// arguments as cuBLAS documents and enqueues OpenBLAS's column-major product as stream work on
// the emulated device. Only plain fp32 is modeled: a math mode that allows TF32 or other
// shortcuts is refused (CUBLAS_STATUS_NOT_SUPPORTED), so a change to one shows here instead of
// giving fp32 results that the GPU would not. Scalars are read at the call (host pointer mode).
// tests/kernel/cublas_contract_test.cc holds the twin, and cuBLAS on a GPU, to that contract.
#include <cblas.h>
#include <cublas_v2.h>

#include <algorithm>

#include "emu.h"

struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

CBLAS_TRANSPOSE blasOp(cublasOperation_t op) {
  return op == CUBLAS_OP_N ? CblasNoTrans : CblasTrans;
}

}  // namespace

extern "C" {

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  return mode == CUBLAS_DEFAULT_MATH || mode == CUBLAS_PEDANTIC_MATH
             ? CUBLAS_STATUS_SUCCESS
             : CUBLAS_STATUS_NOT_SUPPORTED;
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN (the twin returns no other status)";
  }
}

// C (m x n) = alpha op(A) op(B) + beta C, column-major; C is not read when beta is 0.
cublasStatus_t cublasSgemm(cublasHandle_t handle, cublasOperation_t transa,
                           cublasOperation_t transb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta,
                           float* C, int ldc) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto known = [](cublasOperation_t op) {
    return op == CUBLAS_OP_N || op == CUBLAS_OP_T || op == CUBLAS_OP_C;  // C = T for reals
  };
  const int rowsA = transa == CUBLAS_OP_N ? m : k, rowsB = transb == CUBLAS_OP_N ? k : n;
  if (!known(transa) || !known(transb) || m < 0 || n < 0 || k < 0 || alpha == nullptr ||
      beta == nullptr || lda < std::max(1, rowsA) || ldb < std::max(1, rowsB) ||
      ldc < std::max(1, m))
    return CUBLAS_STATUS_INVALID_VALUE;
  const float a = *alpha, b = *beta;
  svemu::submit(handle->stream, [=] {
    if (m == 0 || n == 0) return;
    cblas_sgemm(CblasColMajor, blasOp(transa), blasOp(transb), m, n, k, a, A, lda, B, ldb, b, C,
                ldc);
  });
  return CUBLAS_STATUS_SUCCESS;
}

}  // extern "C"
