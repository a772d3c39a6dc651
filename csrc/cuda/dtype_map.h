// Maps torch dtypes to the launcher's DType (host-only, used by the glue).
#pragma once
#include <c10/core/ScalarType.h>
#include <c10/util/Exception.h>

#include "cuda/launch_dtype.h"

namespace hrops {

inline DType to_launch_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::kFloat: return DType::kFloat32;
    case c10::kDouble: return DType::kFloat64;
    case c10::kHalf: return DType::kFloat16;
    case c10::kBFloat16: return DType::kBFloat16;
    default: TORCH_CHECK(false, "hrops CUDA kernels support float32, float64, float16 and bfloat16, got ", t);
  }
}

}  // namespace hrops
