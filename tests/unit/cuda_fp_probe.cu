// Compiled to PTX only, with the kernels' floating-point options (SIGNVOTE_CUDA_FP);
// cuda_fp_check.cmake reads the PTX. Each line is one that nvcc's defaults or --use_fast_math
// would compile differently from the host.
__global__ void fpProbe(const float* a, float* out) {
  out[0] = a[0] * a[1] + a[2];  // contracted to fma.rn.f32 under --fmad=true
  out[1] = a[3] - a[4] * a[5];  // likewise, with the product negated
  out[2] = a[6] / a[7];         // div.approx or div.full under --prec-div=false
  out[3] = sqrtf(a[8]);         // sqrt.approx under --prec-sqrt=false
  out[4] = a[9] * a[10];        // mul.ftz under --ftz=true
}
