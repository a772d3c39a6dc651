// Storage <-> float conversions for CUDA half types. torch's nvcc flags define
// __CUDA_NO_HALF_CONVERSIONS__, so the generic static_cast in common/haar.h
// cannot be used for them.
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "common/haar.h"

namespace hrops {

template <>
struct Convert<__half> {
  template <typename Acc>
  HROPS_HD static Acc load(__half v) { return static_cast<Acc>(__half2float(v)); }
  template <typename Acc>
  HROPS_HD static __half store(Acc v) { return __float2half_rn(static_cast<float>(v)); }
};

template <>
struct Convert<__nv_bfloat16> {
  template <typename Acc>
  HROPS_HD static Acc load(__nv_bfloat16 v) {
    return static_cast<Acc>(__bfloat162float(v));
  }
  template <typename Acc>
  HROPS_HD static __nv_bfloat16 store(Acc v) {
    return __float2bfloat16_rn(static_cast<float>(v));
  }
};

// Accumulation type: float for every storage type but double.
template <typename T> struct AccOf { using type = float; };
template <> struct AccOf<double> { using type = double; };

// `return expr` for the launcher of `dtype`, with T bound to its storage type:
//   HROPS_DISPATCH_DTYPE(dtype, T, kernel_launch<T>(args...))
#define HROPS_DISPATCH_DTYPE(dtype, T, ...)                      \
  switch (dtype) {                                               \
    case DType::kFloat32: { using T = float; return __VA_ARGS__; }          \
    case DType::kFloat64: { using T = double; return __VA_ARGS__; }         \
    case DType::kFloat16: { using T = __half; return __VA_ARGS__; }         \
    case DType::kBFloat16: { using T = __nv_bfloat16; return __VA_ARGS__; } \
  }                                                              \
  return cudaErrorInvalidValue

}  // namespace hrops
