// Tensor glue of the fused bias + leaky ReLU CUDA kernels. The bias gradient
// is a reduction of grad_x by ATen (one extra read of grad_x on the GPU).
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/sum.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <vector>

#include "common/fused_bias_leaky_relu_shapes.h"
#include "cuda/dtype_map.h"

namespace hrops {

// Raw-pointer launchers, defined in the .cu file next to the kernels.
// Fused bias + leaky ReLU over a tensor walked as contiguous (outer, C, inner);
// bias: contiguous (C,) or null. out: same layout as x.
cudaError_t launch_fused_bias_leaky_relu(DType dtype, const void* x, const void* bias, void* out,
                                         int64_t outer, int64_t C, int64_t inner, double slope,
                                         double scale, cudaStream_t stream);

// grad_x = (grad + shift[c]) * (out > 0 ? 1 : slope) * scale; grad, out and
// grad_x in the same (outer, C, inner) layout, shift contiguous (C,) or null.
cudaError_t launch_fused_bias_leaky_relu_backward(DType dtype, const void* grad, const void* out,
                                                  const void* shift, void* grad_x, int64_t outer,
                                                  int64_t C, int64_t inner, double slope,
                                                  double scale, cudaStream_t stream);

namespace {

at::Tensor fused_bias_leaky_relu_cuda(const at::Tensor& x_in,
                                      const c10::optional<at::Tensor>& bias, double slope,
                                      double scale) {
  check_fused_bias_leaky_relu_args(x_in, bias, "x", slope, scale);
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = fused_bias_leaky_relu_layout(x_in);
  at::Tensor out = at::empty_like(x);
  if (out.numel() == 0) return out;
  const FusedBiasLeakyReluDims d = fused_bias_leaky_relu_dims(x);
  const at::Tensor b = bias.has_value() ? bias->contiguous() : at::Tensor();
  C10_CUDA_CHECK(launch_fused_bias_leaky_relu(
      to_launch_dtype(x.scalar_type()), x.const_data_ptr(), b.defined() ? b.const_data_ptr() : nullptr,
      out.mutable_data_ptr(), d.outer, d.C, d.inner, slope, scale,
      c10::cuda::getCurrentCUDAStream()));
  return out;
}

std::tuple<at::Tensor, at::Tensor> fused_bias_leaky_relu_backward_cuda(
    const at::Tensor& grad_in, const at::Tensor& out_in, const c10::optional<at::Tensor>& shift,
    double slope, double scale, bool bias_grad) {
  check_fused_bias_leaky_relu_args(out_in, shift, "out", slope, scale);
  check_grad(grad_in, out_in, "out", out_in.sizes());
  const c10::cuda::CUDAGuard guard(out_in.device());
  const at::Tensor out = fused_bias_leaky_relu_layout(out_in);
  const at::Tensor grad = fused_bias_leaky_relu_layout_like(grad_in, out);
  const at::Tensor sh = shift.has_value() ? shift->contiguous() : at::Tensor();
  at::Tensor grad_x = at::empty_like(out);
  const FusedBiasLeakyReluDims d = fused_bias_leaky_relu_dims(out);
  C10_CUDA_CHECK(launch_fused_bias_leaky_relu_backward(
      to_launch_dtype(out.scalar_type()), grad.const_data_ptr(), out.const_data_ptr(),
      sh.defined() ? sh.const_data_ptr() : nullptr, grad_x.mutable_data_ptr(), d.outer, d.C,
      d.inner, slope, scale, c10::cuda::getCurrentCUDAStream()));
  if (!bias_grad) return {grad_x, at::empty({0}, out.options())};
  std::vector<int64_t> dims{0};
  for (int64_t k = 2; k < out.dim(); ++k) dims.push_back(k);
  const auto acc = out.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  return {grad_x, at::sum(grad_x, dims, false, acc).to(out.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(hrops_C, CUDA, m) {
  m.impl("fused_bias_leaky_relu", &fused_bias_leaky_relu_cuda);
  m.impl("_fused_bias_leaky_relu_backward", &fused_bias_leaky_relu_backward_cuda);
}

}  // namespace hrops
