// Host-only argument checks used by the CPU and CUDA tensor glue. The Python
// functional layer validates first and raises ValueError with friendlier
// messages; these keep the raw kernels safe when called directly.
#pragma once
#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

namespace hrops {

inline void check_floating(const at::Tensor& t, const char* name) {
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name,
              " must be a floating-point tensor (float32, float64, float16 or bfloat16), got ",
              t.scalar_type());
}

inline void check_dim(const at::Tensor& t, int64_t dim, const char* name, const char* shape) {
  TORCH_CHECK(t.dim() == dim, name, " must be a ", dim, "-D tensor of shape ", shape, ", got shape ",
              t.sizes());
}

inline void check_same(const at::Tensor& a, const char* a_name, const at::Tensor& b,
                       const char* b_name) {
  TORCH_CHECK(a.device() == b.device(), a_name, " and ", b_name,
              " must be on the same device, got ", a.device(), " and ", b.device());
  TORCH_CHECK(a.scalar_type() == b.scalar_type(), a_name, " and ", b_name,
              " must have the same dtype, got ", a.scalar_type(), " and ", b.scalar_type());
}

// The gradient of an op's output: same device, dtype and shape as `out_sizes`.
inline void check_grad(const at::Tensor& grad, const at::Tensor& like, const char* like_name,
                       at::IntArrayRef out_sizes) {
  check_same(like, like_name, grad, "grad");
  TORCH_CHECK(grad.sizes() == out_sizes, "grad must have the output's shape ", out_sizes,
              ", got ", grad.sizes());
}

}  // namespace hrops
