// The part of cuBLAS's contract that the trainer's GPU model relies on: cublasSgemm's
// column-major product with either operand transposed, leading dimensions past the rows, beta = 0
// ignoring what C held, and its argument refusals, which enqueue nothing. On a GPU this checks
// cuBLAS itself; on the SIMT emulator the twin (tests/simt/cublas.cc) that stands in for it.
// Skips without a GPU.
#include <cublas_v2.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gpu.h"

namespace {

using svtest::DeviceArray;

struct Blas {
  Blas() {
    cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
    if (cublasCreate(&handle) == CUBLAS_STATUS_SUCCESS) cublasSetStream(handle, stream);
  }
  ~Blas() {
    if (handle != nullptr) cublasDestroy(handle);
    cudaStreamDestroy(stream);
  }
  cublasHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
};

std::vector<float> randomFloats(size_t n, std::mt19937_64& rng) {
  std::vector<float> v(n);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (float& x : v) x = u(rng);
  return v;
}

TEST(CublasContract, SgemmIsTheColumnMajorProduct) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Blas blas;
  ASSERT_NE(blas.handle, nullptr);
  const float nan = std::nanf("");
  for (cublasOperation_t ta : {CUBLAS_OP_N, CUBLAS_OP_T})
    for (cublasOperation_t tb : {CUBLAS_OP_N, CUBLAS_OP_T})
      for (auto [m, n, k] : {std::array<int, 3>{1, 1, 1}, {3, 5, 7}, {33, 17, 64}, {0, 4, 3},
                             {4, 0, 3}, {5, 4, 0}})
        for (int pad : {0, 2})
          for (float beta : {0.0f, 0.5f}) {
            SCOPED_TRACE("op(A) " + std::to_string(ta) + ", op(B) " + std::to_string(tb) +
                         ", m n k " + std::to_string(m) + " " + std::to_string(n) + " " +
                         std::to_string(k) + ", pad " + std::to_string(pad) + ", beta " +
                         std::to_string(beta));
            const int rowsA = ta == CUBLAS_OP_N ? m : k, colsA = ta == CUBLAS_OP_N ? k : m;
            const int rowsB = tb == CUBLAS_OP_N ? k : n, colsB = tb == CUBLAS_OP_N ? n : k;
            const int lda = std::max(rowsA, 1) + pad, ldb = std::max(rowsB, 1) + pad;
            const int ldc = std::max(m, 1) + pad;
            const std::vector<float> a = randomFloats(size_t(lda) * colsA, rng);
            const std::vector<float> b = randomFloats(size_t(ldb) * colsB, rng);
            std::vector<float> c = randomFloats(size_t(ldc) * n, rng);
            if (beta == 0.0f && m > 0)  // C is not read: its NaN must not reach the result
              for (int j = 0; j < n; ++j) c[size_t(j) * ldc] = nan;
            DeviceArray<float> da(a.size()), db(b.size()), dc(c.size());
            ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
            da.upload(a);
            db.upload(b);
            dc.upload(c);
            const float alpha = 1.5f;
            ASSERT_EQ(cublasSgemm(blas.handle, ta, tb, m, n, k, &alpha, da.get(), lda, db.get(),
                                  ldb, &beta, dc.get(), ldc),
                      CUBLAS_STATUS_SUCCESS);
            CUDA_OK(cudaStreamSynchronize(blas.stream));
            const std::vector<float> got = dc.download();
            EXPECT_TRUE(dc.guardIntact());
            for (int j = 0; j < n; ++j)
              for (int i = 0; i < ldc; ++i) {
                const size_t at = size_t(j) * ldc + i;
                if (i >= m) {  // rows past m stay as they were
                  ASSERT_EQ(got[at], c[at]) << "row " << i << " of column " << j;
                  continue;
                }
                double want = 0, scale = 0;
                for (int p = 0; p < k; ++p) {
                  const double x = ta == CUBLAS_OP_N ? a[size_t(p) * lda + i]
                                                     : a[size_t(i) * lda + p];
                  const double y = tb == CUBLAS_OP_N ? b[size_t(j) * ldb + p]
                                                     : b[size_t(p) * ldb + j];
                  want += x * y;
                  scale += std::fabs(x * y);
                }
                want *= alpha;
                if (beta != 0.0f) want += double(beta) * c[at];
                ASSERT_NEAR(got[at], want, 1e-5 * (alpha * scale + 1))
                    << "C(" << i << ", " << j << ")";
              }
          }
}

// Refused calls return CUBLAS_STATUS_INVALID_VALUE (NOT_INITIALIZED without a handle) and
// leave C as it was.
TEST(CublasContract, SgemmRefusesBadArgumentsAndEnqueuesNothing) {
  SV_REQUIRE_GPU();
  std::mt19937_64 rng(std::random_device{}());
  Blas blas;
  ASSERT_NE(blas.handle, nullptr);
  const int m = 6, n = 5, k = 4;
  const std::vector<float> a = randomFloats(size_t(m) * k, rng);
  const std::vector<float> b = randomFloats(size_t(k) * n, rng);
  const std::vector<float> c = randomFloats(size_t(m) * n, rng);
  DeviceArray<float> da(a.size()), db(b.size()), dc(c.size());
  ASSERT_TRUE(da.ok() && db.ok() && dc.ok());
  da.upload(a);
  db.upload(b);
  dc.upload(c);
  const float one = 1.0f, zero = 0.0f;
  struct Case {
    const char* what;
    cublasHandle_t handle;
    cublasOperation_t ta, tb;
    int m, n, k, lda, ldb, ldc;
    const float *alpha, *beta;
    cublasStatus_t want;
  };
  const cublasOperation_t bad = CUBLAS_OP_CONJG;  // "not supported in the current release"
  const Case cases[] = {
      {"no handle", nullptr, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k, m, &one, &zero,
       CUBLAS_STATUS_NOT_INITIALIZED},
      {"m < 0", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, -1, n, k, m, k, m, &one, &zero,
       CUBLAS_STATUS_INVALID_VALUE},
      {"k < 0", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, -1, m, k, m, &one, &zero,
       CUBLAS_STATUS_INVALID_VALUE},
      {"op(A) = conj(A)", blas.handle, bad, CUBLAS_OP_N, m, n, k, m, k, m, &one, &zero,
       CUBLAS_STATUS_INVALID_VALUE},
      {"lda < m for op(A) = A", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m - 1, k, m, &one,
       &zero, CUBLAS_STATUS_INVALID_VALUE},
      {"lda < k for op(A) = A^T", blas.handle, CUBLAS_OP_T, CUBLAS_OP_N, m, n, k, k - 1, k, m,
       &one, &zero, CUBLAS_STATUS_INVALID_VALUE},
      {"ldb < k for op(B) = B", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k - 1, m, &one,
       &zero, CUBLAS_STATUS_INVALID_VALUE},
      {"ldb < n for op(B) = B^T", blas.handle, CUBLAS_OP_N, CUBLAS_OP_T, m, n, k, m, n - 1, m,
       &one, &zero, CUBLAS_STATUS_INVALID_VALUE},
      {"ldc < m", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k, m - 1, &one, &zero,
       CUBLAS_STATUS_INVALID_VALUE},
      {"no alpha", blas.handle, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, m, k, m, nullptr, &zero,
       CUBLAS_STATUS_INVALID_VALUE},
  };
  for (const Case& t : cases) {
    EXPECT_EQ(cublasSgemm(t.handle, t.ta, t.tb, t.m, t.n, t.k, t.alpha, da.get(), t.lda,
                          db.get(), t.ldb, t.beta, dc.get(), t.ldc),
              t.want)
        << t.what;
  }
  CUDA_OK(cudaStreamSynchronize(blas.stream));
  EXPECT_EQ(dc.download(), c);
}

}  // namespace
