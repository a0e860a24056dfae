// The trainer's one check for CUDA runtime and cuBLAS calls: a failure throws
// std::runtime_error naming the file, the line, the call and the error.
#pragma once

#include <cuda_runtime_api.h>
#ifdef SIGNVOTE_TRAIN_GPU_MODEL
#include <cublas_v2.h>
#endif

#include <stdexcept>
#include <string>

namespace train {

inline void cudaCheckAt(cudaError_t e, const char* call, const char* file, int line) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                             cudaGetErrorString(e));
}

#ifdef SIGNVOTE_TRAIN_GPU_MODEL
inline void cudaCheckAt(cublasStatus_t e, const char* call, const char* file, int line) {
  if (e != CUBLAS_STATUS_SUCCESS)
    throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + call + ": " +
                             cublasGetStatusString(e));
}
#endif

}  // namespace train

#define TRAIN_CUDA_CHECK(call) ::train::cudaCheckAt((call), #call, __FILE__, __LINE__)
