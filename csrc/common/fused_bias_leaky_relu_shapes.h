// Host-only layout logic of the fused bias + leaky ReLU kernels, shared by the
// CPU and CUDA glue. A tensor of shape (N, C, *) is walked as (outer, C,
// inner): NCHW-contiguous gives (N, C, prod(*)); channels_last gives
// (N * H * W, C, 1). Any other layout is made contiguous first.
#pragma once
#include <ATen/core/Tensor.h>

#include "common/tensor_checks.h"

namespace hrops {

struct FusedBiasLeakyReluDims {
  int64_t outer, C, inner;
};

// True where the kernels walk t in channels_last order (not also contiguous).
inline bool fused_bias_leaky_relu_channels_last(const at::Tensor& t) {
  return t.dim() == 4 && !t.is_contiguous() && t.is_contiguous(at::MemoryFormat::ChannelsLast);
}

// t in a layout the kernels walk: itself when contiguous or channels_last.
inline at::Tensor fused_bias_leaky_relu_layout(const at::Tensor& t) {
  return (t.is_contiguous() || fused_bias_leaky_relu_channels_last(t)) ? t : t.contiguous();
}

// `t` converted to the layout of `like` (which fused_bias_leaky_relu_layout produced).
inline at::Tensor fused_bias_leaky_relu_layout_like(const at::Tensor& t, const at::Tensor& like) {
  return t.contiguous(fused_bias_leaky_relu_channels_last(like) ? at::MemoryFormat::ChannelsLast
                                                   : at::MemoryFormat::Contiguous);
}

inline FusedBiasLeakyReluDims fused_bias_leaky_relu_dims(const at::Tensor& t) {
  const int64_t C = t.size(1);
  int64_t plane = 1;
  for (int64_t d = 2; d < t.dim(); ++d) plane *= t.size(d);
  if (fused_bias_leaky_relu_channels_last(t)) return {t.size(0) * plane, C, 1};
  return {t.size(0), C, plane};
}

inline void check_fused_bias_leaky_relu_args(const at::Tensor& x, const c10::optional<at::Tensor>& bias,
                                const char* x_name, double slope, double scale) {
  check_floating(x, x_name);
  TORCH_CHECK(x.dim() >= 2, x_name, " must have shape (N, C, *), got shape ", x.sizes());
  if (bias.has_value()) {
    check_same(x, x_name, *bias, "bias");
    TORCH_CHECK(bias->dim() == 1 && bias->size(0) == x.size(1), "bias must have shape (C,) = (",
                x.size(1), ",), got ", bias->sizes());
  }
  TORCH_CHECK(slope >= 0 && scale > 0,
              "negative_slope must be >= 0 and scale > 0 (the backward reads the input's sign "
              "from the output's), got ", slope, " and ", scale);
}

}  // namespace hrops
