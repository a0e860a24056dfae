# cmake -DPTX=<the probe's PTX> -P cuda_fp_check.cmake: the probe's arithmetic must come out as
# the host's, one IEEE round-to-nearest operation per source operation: no fused multiply-add,
# no approximate division or square root, no flush of subnormals to zero.
file(READ "${PTX}" ptx)
set(failed "")
foreach(op mul.rn.f32 add.rn.f32 sub.rn.f32 div.rn.f32 sqrt.rn.f32)
  string(FIND "${ptx}" "${op}" at)
  if(at EQUAL -1)
    string(APPEND failed "\n  no ${op}")
  endif()
endforeach()
set(fused "(fma|mad)\\.[a-z0-9.]*f32")
set(inexact "[a-z]+[a-z0-9.]*\\.(approx|full|ftz)[a-z0-9.]*")
string(REGEX MATCHALL "${fused}|${inexact}" bad "${ptx}")
if(bad)
  list(REMOVE_DUPLICATES bad)
  string(APPEND failed "\n  found: ${bad}")
endif()
if(failed)
  message(FATAL_ERROR "${PTX}: the kernels' floating-point options do not give the host's "
                      "rounding (SIGNVOTE_CUDA_FP in CMakeLists.txt):${failed}")
endif()
message(STATUS "cuda_fp_options OK: mul, add, sub, div and sqrt rounded to nearest, no fma")
